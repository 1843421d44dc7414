/* test_kern.c - the CUDA kernel table against the CPU reference, byte for
 * byte, on seeded random inputs (kern_suite.h), plus GPU-only checks:
 * page_alloc refuses more than the free GPU memory (-ENOSPC), and a batch of
 * thousands of 4 KiB pages.  Exits 77 (meson: SKIP) without a GPU.
 * MMSB_TEST_QUICK=1 runs a smaller set (for compute-sanitizer).
 */
#include "kern_suite.h"

/* 2048 4 KiB pages of one pool, a random delta each, in one batch. */
static void many_pages(const struct mmsb_kern_ops *k)
{
	const size_t n_pages = 2048, psz = 4096, n = n_pages * psz;
	uint8_t *pool = NULL, *ref = malloc(n), *got = malloc(n);
	struct mmsb_kern_batch *b = NULL;
	struct mmsb_buf body = {0};
	size_t i;

	t_fill(ref, n);
	CHECK(k->page_alloc(n, (void **)&pool) == 0);
	CHECK(k->copy_in(pool, ref, n) == 0);
	CHECK(k->batch_new(&b) == 0);
	for (i = 0; i < n_pages; i++) {
		uint8_t enc = 0;
		size_t len;

		body.len = 0;
		len = t_make_delta(ref + i * psz, psz, &body, &enc);
		CHECK(mmsb_kern_batch_add(b, pool + i * psz, psz, enc, body.p, len) == 0);
		CHECK(mmsb_delta_apply(ref + i * psz, psz, enc, body.p, len) == 0);
	}
	CHECK(k->apply_batch(b) == 0);
	CHECK(k->sync() == 0);
	CHECK(k->copy_out(got, pool, n) == 0);
	CHECK_BYTES("2048 pages", got, ref, n);
	CHECK(k->batch_free(b) == 0);
	CHECK(k->page_free(pool) == 0);
	mmsb_buf_free(&body);
	free(ref);
	free(got);
}

int main(void)
{
	struct mmsb_kern_gpu_info gi;
	const struct mmsb_kern_ops *k;
	void *p = NULL;

	t_init();
	if (mmsb_kern_gpu_probe(&gi) < 0) {
		printf("test_kern: no GPU (or CUDA not built): SKIP\n");
		return 77;
	}
	k = mmsb_kern_select(true);
	if (strcmp(k->name, "cuda") != 0) {
		printf("test_kern: GPU present but the CUDA table is unusable (no kernel image?): SKIP\n");
		return 77;
	}
	printf("test_kern: %s (cc %d.%d, %d SMs, concurrentManagedAccess=%d, %.1f of %.1f GiB free, runtime %d, "
	       "driver %d)\n",
	       gi.name, gi.cc_major, gi.cc_minor, gi.n_sms, gi.concurrent_managed, gi.free_bytes / 1073741824.0,
	       gi.total_bytes / 1073741824.0, gi.runtime_version, gi.driver_version);
	CHECK(mmsb_kern_select(false) == mmsb_kern_cpu());
	/* never more than the free GPU memory */
	CHECK(k->page_alloc((size_t)gi.total_bytes + 4096, &p) == -ENOSPC && p == NULL);
	CHECK(k->page_alloc((size_t)gi.free_bytes, &p) == -ENOSPC && p == NULL);
	suite_run(k, !t_quick);
	many_pages(k);
	CHECK(k->sync() == 0);
	if (t_failures) {
		fprintf(stderr, "test_kern: %d failures (seed %llu)\n", t_failures, t_seed);
		return 1;
	}
	printf("test_kern: ok (seed %llu)\n", t_seed);
	return 0;
}
