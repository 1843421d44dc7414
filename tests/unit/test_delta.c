/* test_delta.c - unit tests of delta.c: diff/apply round trips of both
 * encodings, a seeded randomized round trip, compare() against a byte loop,
 * ranges(), LZ4 pack/unpack, and rejection of malformed bodies by both
 * mmsb_delta_check and mmsb_delta_apply.
 *
 * The randomized tests use a fixed seed; MMSB_TEST_SEED=<n> in the
 * environment picks another (the seed is printed on failure).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delta.h"
#include "err.h"
#include "format.h"

#define GUARD 64	/* bytes of 0xa5 on each side of a page under apply */
#define GUARD_BYTE 0xa5

/* ---- helpers ------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void) /* splitmix64 */
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t n)
{
	return n ? rng() % n : 0;
}

static void rng_fill(uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)rng();
}

static void rng_seed_from_env(void)
{
	const char *s = getenv("MMSB_TEST_SEED");

	rng_state = s ? strtoull(s, NULL, 0) : 0x5eed0fdeu;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	assert_non_null(p);
	return p;
}

/* A page with guard bytes on both sides. */
struct gpage {
	uint8_t *mem;  /* GUARD | page[size] | GUARD */
	uint8_t *page; /* mem + GUARD */
	size_t size;   /* page bytes */
};

static void gpage_new(struct gpage *g, const uint8_t *init, size_t size)
{
	g->mem = xmalloc(size + 2 * GUARD);
	g->page = g->mem + GUARD;
	g->size = size;
	memset(g->mem, GUARD_BYTE, size + 2 * GUARD);
	if (size)
		memcpy(g->page, init, size);
}

static void gpage_check_guards(const struct gpage *g)
{
	size_t i;

	for (i = 0; i < GUARD; i++) {
		assert_int_equal(g->mem[i], GUARD_BYTE);
		assert_int_equal(g->page[g->size + i], GUARD_BYTE);
	}
}

static void gpage_free(struct gpage *g)
{
	free(g->mem);
	g->mem = g->page = NULL;
}

/* What a write does to the page, the plain way: *after (malloc'd) gets the
 * page extended with zeros to max(cur_size, off + len) and src copied in;
 * *before gets the old page extended the same way. */
static size_t plain_write(const uint8_t *cur, size_t cur_size, size_t off, const uint8_t *src, size_t len,
			  uint8_t **before, uint8_t **after)
{
	size_t size = off + len > cur_size ? off + len : cur_size;

	*before = xmalloc(size);
	*after = xmalloc(size);
	memset(*before, 0, size);
	if (cur_size)
		memcpy(*before, cur, cur_size);
	memcpy(*after, *before, size);
	if (len)
		memcpy(*after + off, src, len);
	return size;
}

static size_t uvlen(uint64_t v)
{
	size_t n = 1;

	for (; v >= 0x80; v >>= 7)
		n++;
	return n;
}

/* The sizes of both encodings of the change before -> after, the slow way:
 * RUNS with runs split at 8 or more equal bytes (delta.c's DELTA_MERGE_GAP),
 * BITMAP over [first, last changed byte]. */
static void ref_sizes(const uint8_t *before, const uint8_t *after, size_t size, size_t *runs, size_t *bitmap)
{
	size_t i, s = 0, e = 0, prev_end = 0, n_runs = 0, body = 0, changed = 0, lo = 0;
	int open = 0;

	for (i = 0; i < size; i++) {
		if (before[i] == after[i])
			continue;
		if (!changed)
			lo = i;
		changed++;
		if (open && i - e >= 8) { /* close the run [s, e) */
			body += uvlen(s - prev_end) + uvlen(e - s) + (e - s);
			prev_end = e;
			n_runs++;
			open = 0;
		}
		if (!open) {
			s = i;
			open = 1;
		}
		e = i + 1;
	}
	if (open) {
		body += uvlen(s - prev_end) + uvlen(e - s) + (e - s);
		n_runs++;
	}
	*runs = uvlen(n_runs) + body;
	*bitmap = changed ? uvlen(lo) + uvlen(e - lo) + (e - lo + 7) / 8 + changed : 0;
}

struct rt_result {
	struct mmsb_delta_info info;
	size_t body_len;
	uint64_t covered;
};

/* Diff, check and apply one write; assert that the applied page equals the
 * plain write and that info is exact. */
static void roundtrip(const uint8_t *cur, size_t cur_size, size_t off, const uint8_t *src, size_t len,
		      struct rt_result *r)
{
	struct mmsb_buf out = {0};
	uint8_t *before, *after;
	size_t size = plain_write(cur, cur_size, off, src, len, &before, &after), i;
	uint64_t changed = 0, lo = 0, hi = 0;
	struct gpage g;

	for (i = 0; i < size; i++) {
		if (before[i] != after[i]) {
			if (!changed)
				lo = i;
			hi = i + 1;
			changed++;
		}
	}
	/* out already holds bytes: diff must append, not overwrite */
	assert_int_equal(mmsb_buf_put(&out, "xyz", 3), 0);
	assert_int_equal(mmsb_delta_diff(cur, cur_size, off, src, len, &out, &r->info), 0);
	assert_memory_equal(out.p, "xyz", 3);
	r->body_len = out.len - 3;
	assert_int_equal(r->info.changed, changed);
	if (changed) {
		assert_int_equal(r->info.lo, lo);
		assert_int_equal(r->info.hi, hi);
		assert_true(r->info.enc == MMSB_ENC_RUNS || r->info.enc == MMSB_ENC_BITMAP);
	} else {
		assert_int_equal(r->body_len, 0);
		assert_int_equal(r->info.enc, MMSB_ENC_RUNS);
	}

	if (changed) { /* the smaller encoding, RUNS on a tie */
		size_t runs, bitmap;

		ref_sizes(before, after, size, &runs, &bitmap);
		assert_int_equal(r->body_len, runs <= bitmap ? runs : bitmap);
		assert_int_equal(r->info.enc, runs <= bitmap ? MMSB_ENC_RUNS : MMSB_ENC_BITMAP);
	}

	r->covered = UINT64_MAX;
	assert_int_equal(mmsb_delta_check(size, r->info.enc, out.p + 3, r->body_len, &r->covered), 0);
	assert_true(r->covered >= changed);
	if (r->info.enc == MMSB_ENC_BITMAP)
		assert_int_equal(r->covered, changed);
	if (changed) /* every covered byte lies below hi */
		assert_int_equal(mmsb_delta_check(hi - 1, r->info.enc, out.p + 3, r->body_len, NULL), -EUCLEAN);

	gpage_new(&g, before, size);
	assert_int_equal(mmsb_delta_apply(g.page, size, r->info.enc, out.p + 3, r->body_len), 0);
	gpage_check_guards(&g);
	if (size)
		assert_memory_equal(g.page, after, size);
	gpage_free(&g);
	mmsb_buf_free(&out);
	free(before);
	free(after);
}

/* ---- round trips ------------------------------------------------------------ */

static void rt_one_cluster_is_runs(void **state)
{
	uint8_t cur[4096], src[4096];
	struct rt_result r;

	rng_fill(cur, sizeof(cur));
	memcpy(src, cur, sizeof(src));
	for (int i = 1000; i < 1100; i++)
		src[i] ^= 0x5a;
	roundtrip(cur, sizeof(cur), 0, src, sizeof(src), &r);
	assert_int_equal(r.info.enc, MMSB_ENC_RUNS);
	assert_int_equal(r.info.changed, 100);
	assert_int_equal(r.body_len, 1 + 2 + 1 + 100); /* n_runs | gap 1000 | len 100 | bytes */

	/* small gaps (< 8 equal bytes) stay inside one run */
	memcpy(src, cur, sizeof(src));
	for (int i = 0; i < 50; i++) { /* 50 changed, 5 equal, 50 changed */
		src[2000 + i] ^= 1;
		src[2055 + i] ^= 1;
	}
	roundtrip(cur, sizeof(cur), 0, src, sizeof(src), &r);
	assert_int_equal(r.info.enc, MMSB_ENC_RUNS);
	assert_int_equal(r.info.changed, 100);
	assert_int_equal(r.covered, 105);
	assert_int_equal(r.body_len, 1 + 2 + 1 + 105);
}

static void rt_scattered_is_bitmap(void **state)
{
	static uint8_t cur[65536], src[65536];
	struct rt_result r;
	size_t i;

	rng_fill(cur, sizeof(cur));
	memcpy(src, cur, sizeof(src));
	for (i = 3; i < sizeof(src); i += 4) /* runs would merge into one big run */
		src[i] ^= 0x80;
	roundtrip(cur, sizeof(cur), 0, src, sizeof(src), &r);
	assert_int_equal(r.info.enc, MMSB_ENC_BITMAP);
	assert_int_equal(r.info.changed, sizeof(src) / 4);
	assert_true(r.body_len < sizeof(src) * 3 / 8 + 16);

	memcpy(src, cur, sizeof(src));
	for (i = 7; i < sizeof(src); i += 10) /* gaps of 9: a run header each */
		src[i] ^= 0x01;
	roundtrip(cur, sizeof(cur), 0, src, sizeof(src), &r);
	assert_int_equal(r.info.enc, MMSB_ENC_BITMAP);

	/* and at an offset, over part of the page */
	roundtrip(cur, sizeof(cur), 1234, src + 1234, 4321, &r);
	assert_int_equal(r.info.enc, MMSB_ENC_BITMAP);
}

static void rt_many_runs(void **state)
{
	static uint8_t cur[65536], src[65536];
	struct rt_result r;
	struct mmsb_buf out = {0};
	size_t i, n = 0;

	rng_fill(cur, sizeof(cur));
	memcpy(src, cur, sizeof(src));
	for (i = 10; i < 20000; i += 40, n++) /* 500 runs: a 2-byte n_runs */
		src[i] ^= 0xff;
	roundtrip(cur, sizeof(cur), 0, src, sizeof(src), &r);
	assert_int_equal(r.info.enc, MMSB_ENC_RUNS);
	assert_int_equal(r.info.changed, n);
	assert_int_equal(mmsb_delta_diff(cur, sizeof(cur), 0, src, sizeof(src), &out, &r.info), 0);
	assert_int_equal(out.p[0], (n & 0x7f) | 0x80);
	assert_int_equal(out.p[1], n >> 7);
	mmsb_buf_free(&out);
}

static void rt_past_end(void **state)
{
	uint8_t cur[100], src[300];
	struct rt_result r;

	rng_fill(cur, sizeof(cur));
	rng_fill(src, sizeof(src));

	/* entirely past the end, leaving a hole of zeros */
	roundtrip(cur, sizeof(cur), 200, src, 50, &r);
	assert_true(r.info.lo >= 200);

	/* straddling the end: one run across cur_size */
	memcpy(src, cur + 80, 20);
	src[19] ^= 1;
	src[20] = 7;
	roundtrip(cur, sizeof(cur), 80, src, 40, &r);
	assert_int_equal(r.info.lo, 99);
	assert_int_equal(r.info.enc, MMSB_ENC_RUNS);

	/* zeros past the end change nothing */
	memset(src, 0, sizeof(src));
	roundtrip(cur, sizeof(cur), 150, src, 100, &r);
	assert_int_equal(r.info.changed, 0);

	/* empty page; empty write */
	rng_fill(src, sizeof(src));
	roundtrip(NULL, 0, 0, src, sizeof(src), &r);
	roundtrip(NULL, 0, 77, src, 1, &r);
	roundtrip(cur, sizeof(cur), 50, src, 0, &r);
	assert_int_equal(r.info.changed, 0);
	roundtrip(cur, sizeof(cur), 500, src, 0, &r);
	assert_int_equal(r.info.changed, 0);
}

static void rt_no_change(void **state)
{
	uint8_t cur[5000];
	struct rt_result r;
	struct mmsb_buf out = {0};
	struct mmsb_delta_info info;

	rng_fill(cur, sizeof(cur));
	roundtrip(cur, sizeof(cur), 0, cur, sizeof(cur), &r);
	assert_int_equal(r.body_len, 0);
	roundtrip(cur, sizeof(cur), 33, cur + 33, 3000, &r);
	assert_int_equal(r.body_len, 0);
	assert_int_equal(mmsb_delta_diff(cur, sizeof(cur), 0, cur, sizeof(cur), &out, &info), 0);
	assert_int_equal(out.len, 0);
	assert_int_equal(info.changed, 0);
	/* the empty body is the empty delta for either encoding */
	assert_int_equal(mmsb_delta_check(0, MMSB_ENC_BITMAP, NULL, 0, NULL), 0);
	assert_int_equal(mmsb_delta_apply(cur, sizeof(cur), MMSB_ENC_BITMAP, NULL, 0), 0);
	mmsb_buf_free(&out);
}

static void rt_full_change(void **state)
{
	static uint8_t cur[8192], src[8192];
	struct rt_result r;
	size_t i;

	rng_fill(cur, sizeof(cur));
	for (i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)~cur[i];
	roundtrip(cur, sizeof(cur), 0, src, sizeof(src), &r);
	assert_int_equal(r.info.enc, MMSB_ENC_RUNS);
	assert_int_equal(r.info.changed, sizeof(src));
	assert_int_equal(r.body_len, 1 + 1 + 2 + sizeof(src));

	/* random data: about 1/256 of bytes stay equal, runs still merge */
	rng_fill(src, sizeof(src));
	roundtrip(cur, sizeof(cur), 0, src, sizeof(src), &r);
	assert_int_equal(r.info.enc, MMSB_ENC_RUNS);
	assert_true(r.body_len < sizeof(src) + 64);
}

static void rt_one_byte_in_64mib(void **state)
{
	const size_t size = (size_t)64 << 20;
	uint8_t *cur = xmalloc(size), *src = xmalloc(size);
	struct mmsb_buf out = {0};
	struct mmsb_delta_info info;
	size_t i;

	for (i = 0; i < size; i += 8)
		mmsb_put_le64(cur + i, i * 0x9e3779b97f4a7c15ull);
	memcpy(src, cur, size);
	src[50000017] ^= 0x10;
	assert_int_equal(mmsb_delta_diff(cur, size, 0, src, size, &out, &info), 0);
	assert_int_equal(info.changed, 1);
	assert_int_equal(info.lo, 50000017);
	assert_int_equal(info.hi, 50000018);
	assert_true(out.len < 20);
	assert_int_equal(mmsb_delta_check(size, info.enc, out.p, out.len, NULL), 0);
	assert_int_equal(mmsb_delta_apply(cur, size, info.enc, out.p, out.len), 0);
	assert_memory_equal(cur, src, size);

	/* the same at the very last byte, and past the end of the page */
	out.len = 0;
	src[size - 1] ^= 1;
	assert_int_equal(mmsb_delta_diff(cur, size, 0, src, size, &out, &info), 0);
	assert_int_equal(info.changed, 1);
	assert_true(out.len < 20);
	out.len = 0;
	memset(src, 0, 4096);
	src[4095] = 1;
	assert_int_equal(mmsb_delta_diff(cur, size, size + 100, src, 4096, &out, &info), 0);
	assert_int_equal(info.changed, 1);
	assert_int_equal(info.lo, size + 100 + 4095);
	assert_true(out.len < 20);
	mmsb_buf_free(&out);
	free(cur);
	free(src);
}

static void diff_rejects_overflowing_write(void **state)
{
	uint8_t src[4] = {1, 2, 3, 4};
	struct mmsb_buf out = {0};
	struct mmsb_delta_info info;

	assert_int_equal(mmsb_delta_diff(NULL, 0, UINT64_MAX - 2, src, 4, &out, &info), -EINVAL);
	assert_int_equal(out.len, 0);
	assert_int_equal(mmsb_delta_diff(NULL, 0, UINT64_MAX - 4, src, 4, &out, &info), 0);
	assert_int_equal(info.hi, UINT64_MAX);
	assert_int_equal(mmsb_delta_check(UINT64_MAX, info.enc, out.p, out.len, NULL), 0);
	mmsb_buf_free(&out);
}

/* Mutate a copy of cur[off..off+len) into src in one of several styles. */
static void random_write(const uint8_t *cur, size_t cur_size, size_t off, uint8_t *src, size_t len)
{
	size_t i, n;

	for (i = 0; i < len; i++) /* start from what is there (or zero) */
		src[i] = off + i < cur_size ? cur[off + i] : 0;
	switch (rng_below(7)) {
	case 0: /* scattered bytes */
		n = rng_below(len / 4 + 2);
		for (i = 0; i < n && len; i++)
			src[rng_below(len)] = (uint8_t)rng();
		break;
	case 1: /* a few clusters */
		n = rng_below(4) + 1;
		for (i = 0; i < n && len; i++) {
			size_t a = rng_below(len), b = a + rng_below(len - a + 1);

			rng_fill(src + a, b - a);
		}
		break;
	case 2: /* everything */
		rng_fill(src, len);
		break;
	case 3: /* dense single-bit flips at a stride */
		n = rng_below(16) + 1;
		for (i = rng_below(n); i < len; i += n)
			src[i] ^= (uint8_t)(1u << rng_below(8));
		break;
	case 4: /* a stride over part of it, then a few clusters */
		n = rng_below(6) + 2;
		for (i = rng_below(n); i < len / 2 + rng_below(len / 2 + 1); i += n)
			src[i] ^= 0x20;
		for (n = rng_below(3); n-- && len;)
			src[rng_below(len)] ^= 0x40;
		break;
	case 5: /* zeros */
		memset(src, 0, len);
		break;
	default: /* nothing */
		break;
	}
}

static void rt_randomized(void **state)
{
	uint8_t *cur = xmalloc(20000), *src = xmalloc(20000);
	struct rt_result r;
	int iter, seen[3] = {0};

	rng_seed_from_env();
	printf("# seed 0x%llx\n", (unsigned long long)rng_state);
	for (iter = 0; iter < 5000; iter++) {
		size_t cur_size = (size_t)rng_below(iter % 10 ? 4097 : 20000);
		size_t off = (size_t)rng_below(cur_size + 300);
		size_t len = (size_t)rng_below(iter % 7 ? 2049 : 20001);

		rng_fill(cur, cur_size);
		if (rng_below(4) == 0) /* pages with zero stretches */
			memset(cur + rng_below(cur_size + 1) / 2, 0, cur_size / 2);
		random_write(cur, cur_size, off, src, len);
		roundtrip(cur_size ? cur : NULL, cur_size, off, src, len, &r);
		seen[r.info.changed ? r.info.enc : 0]++;
	}
	/* the generator reached all three outcomes */
	assert_true(seen[0] > 100 && seen[MMSB_ENC_RUNS] > 100 && seen[MMSB_ENC_BITMAP] > 100);
	free(cur);
	free(src);
}

/* Dense writes: almost every byte changes, with equal stretches of 1 to 9
 * bytes planted at every alignment (over the old bytes and past the page
 * end), so runs must end exactly at 8 equal bytes in a row wherever they
 * fall and nowhere else.  The dense-stretch skip of the encoder crosses
 * words by their last byte only: these are its edge cases. */
static void rt_dense_with_equal_stretches(void **state)
{
	uint8_t *cur = xmalloc(70000), *src = xmalloc(70000);
	struct rt_result r;
	int iter;

	rng_seed_from_env();
	for (iter = 0; iter < 400; iter++) {
		size_t cur_size = (size_t)rng_below(iter % 3 ? 40000 : 70000);
		size_t off = (size_t)rng_below(cur_size / 2 + 64);
		size_t len = 1 + (size_t)rng_below(30000), i, k;

		rng_fill(cur, cur_size);
		for (i = 0; i < len; i++) /* every byte differs from the page (or from zero) */
			src[i] = (uint8_t)((off + i < cur_size ? cur[off + i] : 0) ^ (1 + rng_below(255)));
		for (k = rng_below(len / 64 + 2); k; k--) { /* equal stretches */
			size_t at = (size_t)rng_below(len), n = 1 + (size_t)rng_below(9);

			for (i = at; i < at + n && i < len; i++)
				src[i] = off + i < cur_size ? cur[off + i] : 0;
		}
		roundtrip(cur_size ? cur : NULL, cur_size, off, src, len, &r);
	}
	free(cur);
	free(src);
}

/* ---- ranges and compare ---------------------------------------------------- */

struct range_log {
	uint64_t off[4096]; /* ranges seen */
	uint64_t len[4096];
	size_t n;	    /* ranges seen */
	size_t stop_after;  /* return nonzero after this many (0: never) */
};

static int log_range(void *arg, uint64_t off, uint64_t len)
{
	struct range_log *l = arg;

	assert_true(l->n < 4096);
	l->off[l->n] = off;
	l->len[l->n] = len;
	l->n++;
	return l->stop_after && l->n >= l->stop_after;
}

static void ranges_are_maximal(void **state)
{
	/* RUNS: runs at 2..4, 4..5 (gap 0: touching), 10..11 */
	const uint8_t runs[] = {3, 2, 2, 'a', 'b', 0, 1, 'c', 5, 1, 'd'};
	/* BITMAP: base 100, span 11, bits 0,1,2, 5, 9,10 */
	const uint8_t bm[] = {100, 11, 0x27, 0x06, 1, 2, 3, 4, 5, 6};
	struct range_log l = {0};

	assert_int_equal(mmsb_delta_ranges(MMSB_ENC_RUNS, runs, sizeof(runs), log_range, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.off[0], 2);
	assert_int_equal(l.len[0], 3);
	assert_int_equal(l.off[1], 10);
	assert_int_equal(l.len[1], 1);

	memset(&l, 0, sizeof(l));
	assert_int_equal(mmsb_delta_ranges(MMSB_ENC_BITMAP, bm, sizeof(bm), log_range, &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.off[0], 100);
	assert_int_equal(l.len[0], 3);
	assert_int_equal(l.off[1], 105);
	assert_int_equal(l.len[1], 1);
	assert_int_equal(l.off[2], 109);
	assert_int_equal(l.len[2], 2);

	/* fn asks to stop */
	memset(&l, 0, sizeof(l));
	l.stop_after = 1;
	assert_int_equal(mmsb_delta_ranges(MMSB_ENC_RUNS, runs, sizeof(runs), log_range, &l), 0);
	assert_int_equal(l.n, 1);
	memset(&l, 0, sizeof(l));
	l.stop_after = 2;
	assert_int_equal(mmsb_delta_ranges(MMSB_ENC_BITMAP, bm, sizeof(bm), log_range, &l), 0);
	assert_int_equal(l.n, 2);

	/* invalid: fn is never called */
	memset(&l, 0, sizeof(l));
	assert_int_equal(mmsb_delta_ranges(MMSB_ENC_RUNS, runs, sizeof(runs) - 1, log_range, &l), -EUCLEAN);
	assert_int_equal(l.n, 0);
	assert_int_equal(mmsb_delta_ranges(MMSB_ENC_RUNS, NULL, 0, log_range, &l), 0);
	assert_int_equal(l.n, 0);
}

/* Check that l holds exactly the maximal ranges where mask[] is 1. */
static void assert_ranges_match(const struct range_log *l, const uint8_t *mask, size_t n)
{
	size_t i = 0, k = 0;

	while (i < n) {
		size_t j;

		if (!mask[i]) {
			i++;
			continue;
		}
		for (j = i; j < n && mask[j]; j++)
			;
		assert_true(k < l->n);
		assert_int_equal(l->off[k], i);
		assert_int_equal(l->len[k], j - i);
		k++;
		i = j;
	}
	assert_int_equal(k, l->n);
}

static void compare_matches_byte_loop(void **state)
{
	static uint8_t a[3000], b[3000], mask[3000];
	static struct range_log l;
	int iter;

	rng_seed_from_env();
	for (iter = 0; iter < 3000; iter++) {
		size_t alen = (size_t)rng_below(sizeof(a) + 1), blen = (size_t)rng_below(4) ? alen : (size_t)rng_below(sizeof(b) + 1);
		size_t top = alen > blen ? alen : blen, i, n;

		rng_fill(a, alen);
		memcpy(b, a, blen < alen ? blen : alen);
		if (blen > alen)
			rng_fill(b + alen, blen - alen);
		n = rng_below(40);
		for (i = 0; i < n && blen; i++) { /* clusters and singles, some equal again */
			size_t at = (size_t)rng_below(blen), k = (size_t)rng_below(rng_below(2) ? 2 : 70);

			for (; k-- && at < blen; at++)
				b[at] = (uint8_t)rng_below(3);
		}
		for (i = 0; i < top; i++)
			mask[i] = i >= alen || i >= blen || a[i] != b[i];
		memset(&l, 0, sizeof(l));
		assert_int_equal(mmsb_delta_compare(a, alen, b, blen, log_range, &l), 0);
		assert_ranges_match(&l, mask, top);
	}

	/* stop early */
	memset(a, 0, 100);
	memset(b, 0, 100);
	b[10] = b[20] = b[30] = 1;
	memset(&l, 0, sizeof(l));
	l.stop_after = 2;
	assert_int_equal(mmsb_delta_compare(a, 100, b, 100, log_range, &l), 0);
	assert_int_equal(l.n, 2);
	memset(&l, 0, sizeof(l));
	assert_int_equal(mmsb_delta_compare(a, 0, b, 0, log_range, &l), 0);
	assert_int_equal(l.n, 0);
}

/* ---- LZ4 ------------------------------------------------------------------------ */

static size_t text_like(uint8_t *p, size_t n)
{
	static const char *words[] = {"page ", "delta ", "epoch ", "commit ", "the ", "of ", "snapshot\n",
				      "write ", "mmsb ", "log "};
	size_t i = 0;

	while (i < n) {
		const char *w = words[rng_below(MMSB_ARRAY_SIZE(words))];
		size_t k = strlen(w);

		if (k > n - i)
			k = n - i;
		memcpy(p + i, w, k);
		i += k;
	}
	return n;
}

static void pack_roundtrip(void **state)
{
	static uint8_t body[1 << 16];
	struct mmsb_buf out = {0}, raw = {0};

	text_like(body, sizeof(body));
	assert_int_equal(mmsb_buf_put(&out, "hdr", 3), 0);
	assert_int_equal(mmsb_delta_pack(body, sizeof(body), &out), 1);
	assert_memory_equal(out.p, "hdr", 3);
	assert_true(out.len - 3 <= sizeof(body) * 7 / 8);
	assert_int_equal(mmsb_get_le32(out.p + 3), sizeof(body));
	assert_int_equal(mmsb_buf_put(&raw, "r", 1), 0);
	assert_int_equal(mmsb_delta_unpack(out.p + 3, out.len - 3, sizeof(body), &raw), 0);
	assert_int_equal(raw.len, 1 + sizeof(body));
	assert_memory_equal(raw.p + 1, body, sizeof(body));

	/* raw_len over max_raw */
	raw.len = 0;
	assert_int_equal(mmsb_delta_unpack(out.p + 3, out.len - 3, sizeof(body) - 1, &raw), -EUCLEAN);
	assert_int_equal(raw.len, 0);

	/* random bytes do not compress: nothing appended */
	rng_fill(body, sizeof(body));
	out.len = 0;
	assert_int_equal(mmsb_delta_pack(body, sizeof(body), &out), 0);
	assert_int_equal(out.len, 0);
	assert_int_equal(mmsb_delta_pack(body, 0, &out), 0);
	assert_int_equal(mmsb_delta_pack(body, 4, &out), 0);
	assert_int_equal(out.len, 0);

	/* small but compressible */
	memset(body, 'z', 40);
	assert_int_equal(mmsb_delta_pack(body, 40, &out), 1);
	raw.len = 0;
	assert_int_equal(mmsb_delta_unpack(out.p, out.len, 40, &raw), 0);
	assert_int_equal(raw.len, 40);
	assert_memory_equal(raw.p, body, 40);
	mmsb_buf_free(&out);
	mmsb_buf_free(&raw);
}

/* A large body is compressed only if its first 32 KiB compress: bulk
 * writes of incompressible data do not pay a whole LZ4 pass. */
static void pack_probes_large_bodies(void **state)
{
	const size_t len = 1u << 20;
	uint8_t *body = malloc(len);
	struct mmsb_buf out = {0}, raw = {0};

	assert_non_null(body);
	text_like(body, len); /* compressible throughout: packed */
	assert_int_equal(mmsb_delta_pack(body, len, &out), 1);
	assert_int_equal(mmsb_delta_unpack(out.p, out.len, len, &raw), 0);
	assert_int_equal(raw.len, len);
	assert_memory_equal(raw.p, body, len);

	/* an incompressible head: given up at the probe, although the
	 * whole body (zeros after the head) would save far more than 1/8 */
	memset(body, 0, len);
	rng_fill(body, 32u << 10);
	out.len = 0;
	assert_int_equal(mmsb_delta_pack(body, len, &out), 0);
	assert_int_equal(out.len, 0);

	/* below the probing size the whole body decides, as before */
	assert_int_equal(mmsb_delta_pack(body, (256u << 10) - 1, &out), 1);
	mmsb_buf_free(&out);
	mmsb_buf_free(&raw);
	free(body);
}

static void unpack_rejects_corruption(void **state)
{
	static uint8_t body[1 << 14], bad[(1 << 14) + 64];
	struct mmsb_buf out = {0}, raw = {0};
	size_t n, i;
	int rc, iter;

	rng_seed_from_env();
	text_like(body, sizeof(body));
	assert_int_equal(mmsb_delta_pack(body, sizeof(body), &out), 1);
	n = out.len;

	assert_int_equal(mmsb_delta_unpack(out.p, 3, 1 << 20, &raw), -EUCLEAN); /* no raw_len */
	assert_int_equal(mmsb_delta_unpack(out.p, 4, 1 << 20, &raw), -EUCLEAN); /* no block */
	for (i = 5; i < n; i += 97)						/* truncated block */
		assert_int_equal(mmsb_delta_unpack(out.p, i, 1 << 20, &raw), -EUCLEAN);
	assert_int_equal(mmsb_delta_unpack(out.p, n - 1, 1 << 20, &raw), -EUCLEAN);

	memcpy(bad, out.p, n); /* trailing garbage */
	bad[n] = 0;
	assert_int_equal(mmsb_delta_unpack(bad, n + 1, 1 << 20, &raw), -EUCLEAN);

	memcpy(bad, out.p, n); /* raw_len one too small, one too big, zero */
	mmsb_put_le32(bad, sizeof(body) - 1);
	assert_int_equal(mmsb_delta_unpack(bad, n, 1 << 20, &raw), -EUCLEAN);
	mmsb_put_le32(bad, sizeof(body) + 1);
	assert_int_equal(mmsb_delta_unpack(bad, n, 1 << 20, &raw), -EUCLEAN);
	mmsb_put_le32(bad, 0);
	assert_int_equal(mmsb_delta_unpack(bad, n, 1 << 20, &raw), -EUCLEAN);
	mmsb_put_le32(bad, UINT32_MAX);
	assert_int_equal(mmsb_delta_unpack(bad, n, SIZE_MAX, &raw), -EUCLEAN);
	assert_int_equal(raw.len, 0);

	for (iter = 0; iter < 2000; iter++) { /* random damage: never out of bounds */
		memcpy(bad, out.p, n);
		for (i = rng_below(4) + 1; i--;)
			bad[rng_below(n)] ^= (uint8_t)(rng() | 1);
		raw.len = 0;
		rc = mmsb_delta_unpack(bad, n, sizeof(body), &raw);
		assert_true(rc == 0 || rc == -EUCLEAN);
		assert_int_equal(raw.len, rc == 0 ? mmsb_get_le32(bad) : 0);
	}
	mmsb_buf_free(&out);
	mmsb_buf_free(&raw);
}

/* ---- malformed bodies ------------------------------------------------------------ */

struct bad_case {
	const char *what;
	uint8_t enc;
	uint64_t size;
	uint8_t body[40];
	size_t len;
};

#define U64MAX_VARINT 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01

static const struct bad_case bad_cases[] = {
	{"enc 0", 0, 100, {1, 0, 1, 'a'}, 4},
	{"enc 3", 3, 100, {1, 0, 1, 'a'}, 4},
	{"runs: truncated n_runs", MMSB_ENC_RUNS, 100, {0x80}, 1},
	{"runs: n_runs 0", MMSB_ENC_RUNS, 100, {0}, 1},
	{"runs: truncated gap", MMSB_ENC_RUNS, 100, {1, 0x85}, 2},
	{"runs: truncated len", MMSB_ENC_RUNS, 100, {1, 3}, 2},
	{"runs: 11-byte uvarint", MMSB_ENC_RUNS, 100, {1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 1, 'a'}, 14},
	{"runs: uvarint past 64 bits", MMSB_ENC_RUNS, 100, {1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, 1, 'a'}, 13},
	{"runs: len 0", MMSB_ENC_RUNS, 100, {1, 5, 0, 'a'}, 4},
	{"runs: run past size", MMSB_ENC_RUNS, 10, {1, 9, 2, 'a', 'b'}, 5},
	{"runs: run starts at size", MMSB_ENC_RUNS, 10, {1, 10, 1, 'a'}, 4},
	{"runs: gap overflows", MMSB_ENC_RUNS, UINT64_MAX, {2, 0, 1, 'a', U64MAX_VARINT, 1, 'b'}, 17},
	{"runs: len overflows", MMSB_ENC_RUNS, UINT64_MAX, {1, 5, U64MAX_VARINT, 'a'}, 13},
	{"runs: len past body", MMSB_ENC_RUNS, 100, {1, 0, 5, 'a', 'b', 'c', 'd'}, 7},
	{"runs: trailing byte", MMSB_ENC_RUNS, 100, {1, 0, 1, 'a', 'x'}, 5},
	{"runs: missing run", MMSB_ENC_RUNS, 100, {2, 0, 1, 'a'}, 4},
	{"runs: huge n_runs", MMSB_ENC_RUNS, 100, {U64MAX_VARINT, 0, 1, 'a'}, 13},
	{"bitmap: truncated base", MMSB_ENC_BITMAP, 100, {0x80}, 1},
	{"bitmap: truncated span", MMSB_ENC_BITMAP, 100, {0}, 1},
	{"bitmap: span 0", MMSB_ENC_BITMAP, 100, {0, 0, 'a'}, 3},
	{"bitmap: past size", MMSB_ENC_BITMAP, 10, {5, 6, 0x21, 'a', 'b'}, 5},
	{"bitmap: base at size", MMSB_ENC_BITMAP, 10, {10, 1, 0x01, 'a'}, 4},
	{"bitmap: base + span overflows", MMSB_ENC_BITMAP, UINT64_MAX, {U64MAX_VARINT, 2, 0x03, 'a', 'b'}, 15},
	{"bitmap: truncated bitmap", MMSB_ENC_BITMAP, 100, {0, 9}, 2},
	{"bitmap: truncated bitmap 2", MMSB_ENC_BITMAP, 100, {0, 9, 0x01}, 3},
	{"bitmap: first bit clear", MMSB_ENC_BITMAP, 100, {0, 3, 0x04, 'a'}, 4},
	{"bitmap: last bit clear", MMSB_ENC_BITMAP, 100, {0, 3, 0x01, 'a'}, 4},
	{"bitmap: last bit clear 2", MMSB_ENC_BITMAP, 100, {0, 9, 0x01, 0x00, 'a'}, 5},
	{"bitmap: bit past span", MMSB_ENC_BITMAP, 100, {0, 3, 0x0d, 'a', 'b', 'c'}, 6},
	{"bitmap: bit past span 2", MMSB_ENC_BITMAP, 100, {0, 9, 0x01, 0x03, 'a', 'b', 'c'}, 7},
	{"bitmap: short payload", MMSB_ENC_BITMAP, 100, {0, 3, 0x05, 'a'}, 4},
	{"bitmap: trailing byte", MMSB_ENC_BITMAP, 100, {0, 3, 0x05, 'a', 'b', 'c'}, 6},
	{"bitmap: no payload", MMSB_ENC_BITMAP, 100, {0, 1, 0x01}, 3},
};

/* Bodies that look odd but are valid. */
static const struct bad_case good_cases[] = {
	{"runs: overlong uvarints", MMSB_ENC_RUNS, 100, {0x81, 0x00, 0x85, 0x80, 0x00, 0x81, 0x00, 'a'}, 8},
	{"runs: touching runs", MMSB_ENC_RUNS, 100, {2, 5, 1, 'a', 0, 2, 'b', 'c'}, 8},
	{"runs: last byte of the page", MMSB_ENC_RUNS, 10, {1, 9, 1, 'a'}, 4},
	{"runs: max offset", MMSB_ENC_RUNS, UINT64_MAX, {1, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 'a'}, 13},
	{"bitmap: one byte", MMSB_ENC_BITMAP, 100, {99, 1, 0x01, 'a'}, 4},
	{"bitmap: span 9", MMSB_ENC_BITMAP, 100, {0, 9, 0x01, 0x01, 'a', 'b'}, 6},
	{"bitmap: 64 bits", MMSB_ENC_BITMAP, 100, {30, 64, 0xff, 0, 0, 0, 0, 0, 0, 0x80, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 19},
};

static void malformed_rejected(void **state)
{
	uint8_t zeros[128] = {0};
	struct gpage g;
	size_t i, k;

	for (i = 0; i < MMSB_ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		uint64_t changed = 12345;

		print_message("bad: %s\n", c->what);
		assert_int_equal(mmsb_delta_check(c->size, c->enc, c->body, c->len, &changed), -EUCLEAN);
		assert_int_equal(changed, 12345); /* untouched on failure */
		if (c->size > sizeof(zeros))
			continue; /* no page that big to apply to */
		gpage_new(&g, zeros, (size_t)c->size);
		assert_int_equal(mmsb_delta_apply(g.page, c->size, c->enc, c->body, c->len), -EUCLEAN);
		gpage_check_guards(&g);
		gpage_free(&g);
	}
	for (i = 0; i < MMSB_ARRAY_SIZE(good_cases); i++) {
		const struct bad_case *c = &good_cases[i];
		uint64_t changed = 0;

		print_message("good: %s\n", c->what);
		assert_int_equal(mmsb_delta_check(c->size, c->enc, c->body, c->len, &changed), 0);
		assert_true(changed > 0);
		/* every strict non-empty prefix of a valid body is invalid */
		for (k = 1; k < c->len; k++) {
			if (mmsb_delta_check(c->size, c->enc, c->body, k, NULL) != -EUCLEAN)
				fail_msg("%s: prefix %zu accepted", c->what, k);
		}
		if (c->size > sizeof(zeros))
			continue;
		gpage_new(&g, zeros, (size_t)c->size);
		assert_int_equal(mmsb_delta_apply(g.page, c->size, c->enc, c->body, c->len), 0);
		gpage_check_guards(&g);
		gpage_free(&g);
	}
}

/* Damaged versions of valid bodies: check and apply agree, apply stays in
 * bounds, and whatever check accepts applies cleanly. */
static void check_and_apply_agree(void **state)
{
	static uint8_t cur[2048], src[2048], bad[2100];
	struct mmsb_buf out = {0};
	struct mmsb_delta_info info;
	struct gpage g;
	int iter, k;

	rng_seed_from_env();
	for (iter = 0; iter < 20000; iter++) {
		size_t size = (size_t)rng_below(sizeof(cur)) + 1, len, n;
		uint64_t c1 = 0;
		uint8_t enc;
		int rc1, rc2;

		rng_fill(cur, size);
		random_write(cur, size, 0, src, size);
		out.len = 0;
		assert_int_equal(mmsb_delta_diff(cur, size, 0, src, size, &out, &info), 0);
		len = out.len;
		memcpy(bad, out.p, len);
		enc = info.enc;
		switch (rng_below(4)) {
		case 0: /* truncate */
			len = len ? (size_t)rng_below(len) : 0;
			break;
		case 1: /* extend */
			n = (size_t)rng_below(4) + 1;
			rng_fill(bad + len, n);
			len += n;
			break;
		case 2: /* flip bytes */
			for (k = (int)rng_below(3) + 1; k-- && len;)
				bad[rng_below(len)] ^= (uint8_t)(rng() | 1);
			break;
		default: /* wrong encoding or smaller page */
			if (rng_below(2))
				enc = (uint8_t)(MMSB_ENC_RUNS + MMSB_ENC_BITMAP - enc);
			else
				size = (size_t)rng_below(size);
			break;
		}
		rc1 = mmsb_delta_check(size, enc, bad, len, &c1);
		gpage_new(&g, cur, size);
		rc2 = mmsb_delta_apply(g.page, size, enc, bad, len);
		gpage_check_guards(&g);
		gpage_free(&g);
		assert_true(rc1 == 0 || rc1 == -EUCLEAN);
		assert_int_equal(rc1, rc2);
	}
	mmsb_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test(rt_one_cluster_is_runs),
		cmocka_unit_test(rt_scattered_is_bitmap),
		cmocka_unit_test(rt_many_runs),
		cmocka_unit_test(rt_past_end),
		cmocka_unit_test(rt_no_change),
		cmocka_unit_test(rt_full_change),
		cmocka_unit_test(rt_one_byte_in_64mib),
		cmocka_unit_test(diff_rejects_overflowing_write),
		cmocka_unit_test(rt_randomized),
		cmocka_unit_test(rt_dense_with_equal_stretches),
		cmocka_unit_test(ranges_are_maximal),
		cmocka_unit_test(compare_matches_byte_loop),
		cmocka_unit_test(pack_roundtrip),
		cmocka_unit_test(pack_probes_large_bodies),
		cmocka_unit_test(unpack_rejects_corruption),
		cmocka_unit_test(malformed_rejected),
		cmocka_unit_test(check_and_apply_agree),
	};

	return cmocka_run_group_tests_name("delta", t, NULL, NULL);
}
