/* test_pages.c - GPU pages through the core API.
 *
 *   test_pages gpu   pages really in GPU memory (exits 77 without a GPU)
 *   test_pages cpu   the CPU backend (MMSB_GPU_CPU): same semantics, host memory
 *
 * Moves pages to the GPU and back, writes deltas (applied by kernel
 * batches), recomputes a derived GPU page from GPU parents (on the GPU) and
 * from a mix (on the CPU), checkpoints, reopens, and reads time-travel views;
 * every byte is compared with a model kept on the host.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "fx.h"
#include "mmsb.h"

#define PAGE (1u << 20) /* 1 MiB pages: several blocks and lanes */

static enum mmsb_gpu_mode mode;

/* A store with GPU pages where mode says. */
static int setup(void **state)
{
	struct fx *fx;

	fx_setup(state);
	fx = *state;
	fx->o.gpu = mode;
	fx_reopen(fx);
	return 0;
}

static void expect_page(struct mmsb_store *st, struct mmsb_snap *s, uint64_t id, const uint8_t *want, size_t n)
{
	uint8_t *got = malloc(n + 16);
	ssize_t r = s ? mmsb_snap_read(s, id, 0, got, n + 16) : mmsb_read(st, id, 0, got, n + 16);

	assert_int_equal(r, (ssize_t)n);
	assert_memory_equal(got, want, n);
	free(got);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
}

static void location_rules(void **state)
{
	struct fx *fx = *state;
	uint64_t p = fx_page(fx, "p", "abc", 3);

	assert_int_equal(fx_setx(fx, p, "user.mmsb.location", "tpu"), -EINVAL);
	assert_int_equal(fx_setx(fx, MMSB_ROOT_ID, "user.mmsb.location", "gpu"), -EINVAL);
	assert_int_equal(fx_setx(fx, p, "user.mmsb.location", "gpu"), 0);
	expect_page(fx->st, NULL, p, (const uint8_t *)"abc", 3);
	assert_int_equal(fx_setx(fx, p, "user.mmsb.location", "cpu"), 0);
	expect_page(fx->st, NULL, p, (const uint8_t *)"abc", 3);
	if (mode == MMSB_GPU_CPU && mmsb_kern_gpu_probe(&(struct mmsb_kern_gpu_info){0}) < 0) {
		/* without a GPU and without the CPU backend, gpu is refused */
		fx->o.gpu = MMSB_GPU_AUTO;
		fx_reopen(fx);
		assert_int_equal(fx_setx(fx, p, "user.mmsb.location", "gpu"), -ENODEV);
		assert_int_equal(fx_setx(fx, p, "user.mmsb.location", "cpu"), 0);
	}
}

static void deltas_recompute_checkpoint_travel(void **state)
{
	struct fx *fx = *state;
	uint8_t *a = malloc(PAGE), *b = malloc(PAGE), *sum = malloc(PAGE), *at_e1 = malloc(PAGE);
	uint64_t pa, pb, pc, pm, e1, e2, ck;
	struct mmsb_snap *s;
	size_t i;

	fill(a, PAGE, 1);
	fill(b, PAGE, 2);
	pa = fx_page(fx, "a", a, PAGE);
	pb = fx_page(fx, "b", b, PAGE);
	pc = fx_page(fx, "c", NULL, 0);
	pm = fx_page(fx, "mix", NULL, 0);
	assert_int_equal(fx_setx(fx, pa, "user.mmsb.location", "gpu"), 0);
	assert_int_equal(fx_setx(fx, pb, "user.mmsb.location", "gpu"), 0);
	assert_int_equal(fx_setx(fx, pc, "user.mmsb.location", "gpu"), 0);
	/* c = a + b over u8 (all on the GPU: recomputed there) */
	assert_int_equal(fx_setx(fx, pc, "user.mmsb.deps", "a,b"), 0);
	assert_int_equal(fx_setx(fx, pc, "user.mmsb.recompute", "add:u8"), 0);
	/* mix = c xor "x" pattern page on the CPU (a mixed recompute) */
	assert_int_equal(fx_setx(fx, pm, "user.mmsb.deps", "c"), 0);
	assert_int_equal(fx_setx(fx, pm, "user.mmsb.recompute", "copy"), 0);
	for (i = 0; i < PAGE; i++)
		sum[i] = (uint8_t)(a[i] + b[i]);
	expect_page(fx->st, NULL, pc, sum, PAGE);
	expect_page(fx->st, NULL, pm, sum, PAGE);

	/* scattered small deltas to a GPU page, each one epoch */
	for (i = 0; i < 64; i++) {
		uint8_t v[3] = {(uint8_t)i, (uint8_t)(i * 3), (uint8_t)(i * 7)};
		size_t off = (i * 16411) % (PAGE - 3);

		memcpy(a + off, v, 3);
		e1 = fx_write(fx, pa, off, v, 3);
	}
	for (i = 0; i < PAGE; i++)
		sum[i] = (uint8_t)(a[i] + b[i]);
	memcpy(at_e1, sum, PAGE);
	expect_page(fx->st, NULL, pa, a, PAGE);
	expect_page(fx->st, NULL, pc, sum, PAGE);
	assert_int_equal(mmsb_checkpoint(fx->st, &ck), 0);
	memset(b + 100, 0xee, 5000);
	e2 = fx_write(fx, pb, 100, b + 100, 5000);
	for (i = 0; i < PAGE; i++)
		sum[i] = (uint8_t)(a[i] + b[i]);
	expect_page(fx->st, NULL, pc, sum, PAGE);
	expect_page(fx->st, NULL, pm, sum, PAGE);

	fx_reopen(fx); /* checkpoint + tail replay: pages go back to the GPU */
	expect_page(fx->st, NULL, pa, a, PAGE);
	expect_page(fx->st, NULL, pc, sum, PAGE);
	assert_int_equal(mmsb_getxattr(fx->st, pc, "user.mmsb.location", NULL, 0), 3);
	assert_int_equal(mmsb_snap_open(fx->st, e1, &s), 0);
	expect_page(fx->st, s, pc, at_e1, PAGE);
	mmsb_snap_close(s);
	assert_int_equal(mmsb_snap_open(fx->st, e2, &s), 0);
	expect_page(fx->st, s, pc, sum, PAGE);
	mmsb_snap_close(s);
	assert_int_equal(mmsb_store_verify(fx->st), 0);
	/* grow and shrink a GPU page */
	{
		struct mmsb_txn *t;

		assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
		assert_int_equal(mmsb_txn_truncate(t, pa, 10), 0);
		assert_int_equal(mmsb_txn_write(t, pa, PAGE, "end", 3), 3);
		assert_int_equal(mmsb_txn_commit(t, NULL), 0);
		memset(a + 10, 0, PAGE - 10);
		a = realloc(a, PAGE + 3);
		memcpy(a + PAGE, "end", 3);
		expect_page(fx->st, NULL, pa, a, PAGE + 3);
	}
	free(a);
	free(b);
	free(sum);
	free(at_e1);
	(void)ck;
}

/* Page writes (mmsb_page_write) to a GPU page: deferred like a host
 * page's, applied by the device queue at commit, each one epoch; growth
 * past gpu_mem is refused before anything is logged. */
static void page_writes(void **state)
{
	struct fx *fx = *state;
	uint8_t *a = malloc(PAGE + 4096);
	uint64_t p, e, e_mid = 0, h;
	struct mmsb_snap *s;
	uint8_t *mid = malloc(PAGE);
	size_t i;

	fill(a, PAGE, 9);
	p = fx_page(fx, "g", a, PAGE);
	assert_int_equal(fx_setx(fx, p, "user.mmsb.location", "gpu"), 0);
	for (i = 0; i < 48; i++) {
		uint8_t v[64];
		size_t off = (i * 24593) % (PAGE - sizeof(v));

		memset(v, (int)(i + 1), sizeof(v));
		memcpy(a + off, v, sizeof(v));
		h = mmsb_store_head(fx->st);
		assert_int_equal(mmsb_page_write(fx->st, MMSB_SRC_USER, p, off, v, sizeof(v), &e), (ssize_t)sizeof(v));
		assert_int_equal(e, h + 1);
		if (i == 20) {
			e_mid = e;
			memcpy(mid, a, PAGE);
		}
	}
	/* past the end: the page grows on the device */
	memset(a + PAGE, 0x5a, 4096);
	assert_int_equal(mmsb_page_write(fx->st, MMSB_SRC_USER, p, PAGE, a + PAGE, 4096, NULL), 4096);
	expect_page(fx->st, NULL, p, a, PAGE + 4096);
	assert_int_equal(mmsb_snap_open(fx->st, e_mid, &s), 0);
	expect_page(fx->st, s, p, mid, PAGE);
	mmsb_snap_close(s);
	fx_reopen(fx);
	expect_page(fx->st, NULL, p, a, PAGE + 4096);
	assert_int_equal(mmsb_getxattr(fx->st, p, "user.mmsb.location", NULL, 0), 3);
	/* a cap: growing by 4 MiB more is refused, nothing logged */
	fx->o.gpu_mem = 2 * PAGE;
	fx_reopen(fx);
	h = mmsb_store_head(fx->st);
	assert_int_equal(mmsb_page_write(fx->st, MMSB_SRC_USER, p, 4 * PAGE, "x", 1, NULL), -ENOSPC);
	assert_int_equal(mmsb_store_head(fx->st), h);
	expect_page(fx->st, NULL, p, a, PAGE + 4096);
	free(a);
	free(mid);
}

/* -o gpu_mem: a page that does not fit the cap is refused with ENOSPC at
 * setfattr and stays where it was (bytes, location); nothing moves by
 * itself; giving room back lets it in. */
static void gpu_mem_cap(void **state)
{
	struct fx *fx = *state;
	uint8_t *big = malloc(2 * PAGE), *small = malloc(PAGE / 2);
	char loc[8];
	uint64_t pb, ps, used0;

	fill(big, 2 * PAGE, 5);
	fill(small, PAGE / 2, 6);
	fx->o.gpu_mem = 2 * PAGE; /* 2 MiB for GPU pages */
	fx_reopen(fx);
	used0 = mmsb_kern_gpu_used();
	pb = fx_page(fx, "big", big, 2 * PAGE);
	ps = fx_page(fx, "small", small, PAGE / 2);
	assert_int_equal(fx_setx(fx, ps, "user.mmsb.location", "gpu"), 0);
	assert_int_equal(mmsb_kern_gpu_used(), used0 + PAGE / 2);
	/* 0.5 MiB taken: 2 MiB more passes the cap */
	assert_int_equal(fx_setx(fx, pb, "user.mmsb.location", "gpu"), -ENOSPC);
	assert_int_equal(mmsb_getxattr(fx->st, pb, "user.mmsb.location", loc, sizeof(loc)), -ENODATA);
	expect_page(fx->st, NULL, pb, big, 2 * PAGE);
	expect_page(fx->st, NULL, ps, small, PAGE / 2);
	/* growing a GPU page past the cap fails the write, nothing moves */
	{
		struct mmsb_txn *t;

		assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
		assert_int_equal(mmsb_txn_write(t, ps, 2 * PAGE, "x", 1), -ENOSPC);
		mmsb_txn_abort(t);
	}
	assert_int_equal(mmsb_getxattr(fx->st, ps, "user.mmsb.location", loc, sizeof(loc)), 3);
	expect_page(fx->st, NULL, ps, small, PAGE / 2);
	/* the small page back to host memory: now the big one fits */
	assert_int_equal(fx_setx(fx, ps, "user.mmsb.location", "cpu"), 0);
	assert_int_equal(mmsb_kern_gpu_used(), used0);
	assert_int_equal(fx_setx(fx, pb, "user.mmsb.location", "gpu"), 0);
	assert_int_equal(mmsb_kern_gpu_used(), used0 + 2 * PAGE);
	expect_page(fx->st, NULL, pb, big, 2 * PAGE);
	free(big);
	free(small);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test_setup_teardown(location_rules, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(deltas_recompute_checkpoint_travel, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(gpu_mem_cap, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(page_writes, setup, fx_teardown),
	};
	struct mmsb_kern_gpu_info gi;

	mode = argc > 1 && strcmp(argv[1], "cpu") == 0 ? MMSB_GPU_CPU : MMSB_GPU_AUTO;
	if (mode == MMSB_GPU_AUTO) {
		if (mmsb_kern_gpu_probe(&gi) < 0) {
			printf("test_pages: no GPU: skipped\n");
			return 77;
		}
		printf("test_pages: %s (cc %d.%d, concurrent managed access %d)\n", gi.name, gi.cc_major, gi.cc_minor,
		       gi.concurrent_managed);
	}
	return cmocka_run_group_tests_name(mode == MMSB_GPU_CPU ? "pages-cpu" : "pages-gpu", t, NULL, NULL);
}
