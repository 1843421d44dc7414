/* test_holes.c - sparse pages: holes cost no memory, no checkpoint bytes and
 * no time-travel memory; SEEK_DATA/SEEK_HOLE answer from the chunk map; the
 * memory budget (max_memory) refuses writes with -ENOSPC and nothing else.
 *
 * Memory is measured as the change of this process's VmRSS, which counts
 * pages really backed (a hole read through the zero page does not count). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "fx.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)
#define CHUNK (64u << 10)
#define BIG (16 * GiB)
#define RSS_SLACK (48 * MiB) /* what the test may grow by: far below any page size here */

static uint64_t rss(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long kb = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void truncate_to(struct fx *fx, uint64_t id, uint64_t size)
{
	struct mmsb_txn *t;

	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_truncate(t, id, size), 0);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
}

/* Offsets written in the sparse page, and what is written there. */
static const uint64_t spots[] = {0, GiB + 12345, 8 * GiB, BIG - 5};
static const char mark[] = "hole";

static void check_spots(ssize_t (*rd)(void *, uint64_t, uint64_t, void *, size_t), void *h, uint64_t id)
{
	static uint8_t buf[MiB], zero[MiB];
	size_t i;

	for (i = 0; i < MMSB_ARRAY_SIZE(spots); i++) {
		uint64_t at = spots[i] >= MiB / 2 ? spots[i] - MiB / 2 : 0;
		size_t want = at + MiB > BIG ? (size_t)(BIG - at) : MiB;

		assert_int_equal(rd(h, id, at, buf, MiB), (ssize_t)want);
		assert_memory_equal(buf + (spots[i] - at), mark, 4);
		memset(buf + (spots[i] - at), 0, 4);
		assert_memory_equal(buf, zero, want); /* the rest of the MiB: a hole */
	}
}

static ssize_t rd_head(void *h, uint64_t id, uint64_t off, void *buf, size_t len)
{
	return mmsb_read(h, id, off, buf, len);
}

static ssize_t rd_snap(void *h, uint64_t id, uint64_t off, void *buf, size_t len)
{
	return mmsb_snap_read(h, id, off, buf, len);
}

static uint64_t ckpt_bytes(struct fx *fx)
{
	struct mmsb_ckpt_info ci[64];
	ssize_t n = mmsb_checkpoints(fx->st, ci, MMSB_ARRAY_SIZE(ci));

	assert_true(n > 0);
	return ci[n - 1].file_bytes;
}

/* The whole story of the report: a 16 GiB sparse page, a checkpoint, a
 * reopen from it and reads at old epochs, all within RSS_SLACK. */
static void sparse_page_costs_nothing(void **state)
{
	struct fx *fx = *state;
	uint64_t base = rss(), id = fx_page(fx, "f", NULL, 0), e_ck = 0, e1, v;
	struct mmsb_attr a;
	struct mmsb_stats s;
	struct mmsb_snap *sn;
	double t0;
	size_t i;

	truncate_to(fx, id, BIG);
	for (i = 0; i < MMSB_ARRAY_SIZE(spots); i++)
		fx_write(fx, id, spots[i], mark, 4);
	e1 = fx_write(fx, id, 2 * GiB, "x", 1);
	assert_true(rss() < base + RSS_SLACK);
	assert_int_equal(mmsb_getattr(fx->st, id, &a), 0);
	assert_int_equal(a.size, BIG);
	assert_true(a.alloc_bytes <= 5 * CHUNK); /* st_blocks: data chunks, not the size */
	mmsb_store_stats(fx->st, &s);
	assert_true(s.mem_used <= 5 * CHUNK + MiB);

	t0 = now();
	assert_int_equal(mmsb_checkpoint(fx->st, &e_ck), 0);
	assert_true(now() - t0 < 10.0);	   /* was minutes: 16 GiB scanned and compressed */
	assert_true(ckpt_bytes(fx) < MiB); /* was ~64 MiB of compressed zeros */
	assert_true(rss() < base + RSS_SLACK);
	fx_write(fx, id, 2 * GiB, "y", 1); /* after the checkpoint: copy-on-write of data chunks only */
	assert_true(rss() < base + RSS_SLACK);

	fx_reopen(fx); /* loads the checkpoint: hole blocks stay unbacked */
	assert_true(rss() < base + RSS_SLACK);
	check_spots(rd_head, fx->st, id);

	assert_int_equal(mmsb_snap_open(fx->st, e1, &sn), 0); /* checkpoint plus deltas */
	check_spots(rd_snap, sn, id);
	assert_int_equal(mmsb_snap_seek(sn, id, CHUNK, true, &v), 0);
	assert_int_equal(v, GiB + 12345 - 12345 % CHUNK);
	assert_int_equal(mmsb_snap_seek(sn, id, GiB + 12345, false, &v), 0);
	assert_int_equal(v, GiB + CHUNK);
	mmsb_snap_close(sn);
	assert_int_equal(mmsb_snap_open(fx->st, e_ck + 1, &sn), 0);
	check_spots(rd_snap, sn, id);
	mmsb_snap_close(sn);
	assert_true(rss() < base + RSS_SLACK);

	/* a view of the head shares its buffers: the next write copies the
	 * data chunks, not 16 GiB */
	mmsb_store_stats(fx->st, &s);
	assert_int_equal(mmsb_snap_open(fx->st, s.head, &sn), 0);
	fx_write(fx, id, 3 * GiB, "w", 1);
	assert_true(rss() < base + RSS_SLACK);
	check_spots(rd_snap, sn, id);
	assert_int_equal(mmsb_snap_read(sn, id, 3 * GiB, &v, 1), 1);
	assert_int_equal(v & 0xff, 0); /* the view keeps the bytes of its epoch */
	mmsb_snap_close(sn);
	assert_int_equal(mmsb_seek(fx->st, id, 2 * GiB + CHUNK, true, &v), 0);
	assert_int_equal(v, 3 * GiB);
}

static void seek_answers_from_the_map(void **state)
{
	struct fx *fx = *state;
	uint64_t id = fx_page(fx, "f", NULL, 0), v = 0;

	truncate_to(fx, id, 4 * GiB);
	assert_int_equal(mmsb_seek(fx->st, id, 0, true, &v), -ENXIO); /* all hole */
	assert_int_equal(mmsb_seek(fx->st, id, 0, false, &v), 0);
	assert_int_equal(v, 0);
	fx_write(fx, id, 3 * MiB + 7, "abc", 3);
	fx_write(fx, id, 4 * GiB - 1, "z", 1);
	assert_int_equal(mmsb_seek(fx->st, id, 0, true, &v), 0);
	assert_int_equal(v, 3 * MiB);
	assert_int_equal(mmsb_seek(fx->st, id, 3 * MiB + 100, true, &v), 0);
	assert_int_equal(v, 3 * MiB + 100); /* inside data: where we are */
	assert_int_equal(mmsb_seek(fx->st, id, 3 * MiB, false, &v), 0);
	assert_int_equal(v, 3 * MiB + CHUNK);
	assert_int_equal(mmsb_seek(fx->st, id, 3 * MiB + CHUNK, true, &v), 0);
	assert_int_equal(v, 4 * GiB - CHUNK);
	assert_int_equal(mmsb_seek(fx->st, id, 4 * GiB - 2, false, &v), 0);
	assert_int_equal(v, 4 * GiB); /* the implicit hole at the end */
	assert_int_equal(mmsb_seek(fx->st, id, 4 * GiB, true, &v), -ENXIO);
	assert_int_equal(mmsb_seek(fx->st, id, 4 * GiB, false, &v), -ENXIO);
	/* shrinking drops data chunks: they become holes again */
	truncate_to(fx, id, 3 * MiB + 8);
	assert_int_equal(mmsb_seek(fx->st, id, 3 * MiB + CHUNK / 2, true, &v), -ENXIO);
	truncate_to(fx, id, 3 * MiB);
	assert_int_equal(mmsb_seek(fx->st, id, 0, true, &v), -ENXIO);
	assert_int_equal(mmsb_seek(fx->st, id, 0, false, &v), 0);
	assert_int_equal(v, 0);
}

/* Pages of odd sizes with data, zeroed data and holes round-trip through a
 * checkpoint byte for byte (the reader checks every block). */
static void ckpt_round_trip_with_holes(void **state)
{
	struct fx *fx = *state;
	static const uint64_t sizes[] = {MiB, 3 * MiB + 100, 9 * MiB - 1, 2 * MiB};
	uint64_t ids[MMSB_ARRAY_SIZE(sizes)], e;
	uint8_t *want[MMSB_ARRAY_SIZE(sizes)], *got = malloc(9 * MiB);
	static uint8_t blob[200000];
	size_t i, j;

	assert_non_null(got);
	for (j = 0; j < sizeof(blob); j++)
		blob[j] = (uint8_t)(j * 2654435761u >> 13);
	for (i = 0; i < MMSB_ARRAY_SIZE(sizes); i++) {
		char name[8];

		snprintf(name, sizeof(name), "p%zu", i);
		want[i] = calloc(1, sizes[i]);
		assert_non_null(want[i]);
		ids[i] = fx_page(fx, name, NULL, 0);
		truncate_to(fx, ids[i], sizes[i]);
		for (j = 0; j < 3; j++) { /* data straddling blocks and chunks */
			uint64_t at = (sizes[i] / 3) * j + j * 777;
			size_t n = at + sizeof(blob) > sizes[i] ? (size_t)(sizes[i] - at) : sizeof(blob);

			fx_write(fx, ids[i], at, blob, n);
			memcpy(want[i] + at, blob, n);
		}
		fx_write(fx, ids[i], sizes[i] - 1, "E", 1); /* the last (partial) block */
		want[i][sizes[i] - 1] = 'E';
	}
	memset(blob, 0, sizeof(blob)); /* zeros over data: a data chunk, all zero */
	fx_write(fx, ids[1], 0, blob, sizeof(blob));
	memset(want[1], 0, sizeof(blob));
	assert_int_equal(mmsb_checkpoint(fx->st, &e), 0);
	fx_reopen(fx);
	for (i = 0; i < MMSB_ARRAY_SIZE(sizes); i++) {
		assert_int_equal(mmsb_read(fx->st, ids[i], 0, got, sizes[i]), (ssize_t)sizes[i]);
		assert_memory_equal(got, want[i], sizes[i]);
		free(want[i]);
	}
	free(got);
}

/* max_memory: writes past it get -ENOSPC, change nothing and leave the
 * store usable; holes and truncates are free; freeing makes room. */
static void budget_refuses_with_enospc(void **state)
{
	struct fx *fx = *state;
	uint8_t *buf = malloc(8 * MiB), *back = malloc(8 * MiB);
	uint64_t id, id2, e0, e1;
	struct mmsb_txn *t;
	struct mmsb_stats s;
	ssize_t w;

	assert_non_null(buf);
	assert_non_null(back);
	fx->o.max_memory = 12 * MiB;
	fx_reopen(fx);
	memset(buf, 0xab, 8 * MiB);
	id = fx_page(fx, "a", buf, 8 * MiB);
	id2 = fx_page(fx, "big", NULL, 0);
	truncate_to(fx, id2, BIG); /* a hole: free */
	mmsb_store_stats(fx->st, &s);
	assert_int_equal(s.mem_limit, 12 * MiB);
	e0 = s.head;

	memset(buf, 0xcd, 8 * MiB);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	w = mmsb_txn_write(t, id2, GiB, buf, 8 * MiB); /* 16 MiB in all: past the budget */
	assert_int_equal(w, -ENOSPC);
	mmsb_txn_abort(t);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_write(t, id2, 0, buf, 4 * MiB), 4 * MiB); /* fits */
	assert_int_equal(mmsb_txn_commit(t, &e1), 0);
	assert_true(e1 > e0);
	assert_int_equal(mmsb_read(fx->st, id, 0, back, 8 * MiB), 8 * MiB);
	memset(buf, 0xab, 8 * MiB);
	assert_memory_equal(back, buf, 8 * MiB); /* earlier data intact */

	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_truncate(t, id, 0), 0); /* frees 8 MiB */
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_write(t, id2, 2 * GiB, buf, 8 * MiB), 8 * MiB);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	mmsb_store_stats(fx->st, &s);
	assert_true(s.mem_used <= 12 * MiB + MiB);

	fx->o.max_memory = 2 * MiB; /* a store larger than its budget still opens */
	fx_reopen(fx);
	assert_int_equal(mmsb_read(fx->st, id2, 2 * GiB, back, 8 * MiB), 8 * MiB);
	assert_memory_equal(back, buf, 8 * MiB);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_write(t, id2, 5 * GiB, "q", 1), -ENOSPC);
	assert_int_equal(mmsb_txn_write(t, id2, 2 * GiB, "q", 1), 1); /* in a data chunk: no new memory */
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	free(buf);
	free(back);
}

/* A recompute whose output cannot fit the budget fails like any recompute
 * (the child keeps its bytes and gets user.mmsb.error) instead of building
 * 16 GiB of zeros in memory. */
static void recompute_of_sparse_parent_is_bounded(void **state)
{
	struct fx *fx = *state;
	uint64_t base, f, g;
	char err[256];
	ssize_t n;

	fx->o.max_memory = 64 * MiB;
	fx_reopen(fx);
	base = rss();
	f = fx_page(fx, "f", "abc", 3);
	g = fx_page(fx, "g", "old", 3);
	truncate_to(fx, f, BIG);
	assert_int_equal(fx_setx(fx, g, "user.mmsb.recompute", "copy"), 0);
	assert_int_equal(fx_setx(fx, g, "user.mmsb.deps", "f"), 0);
	n = mmsb_getxattr(fx->st, g, "user.mmsb.error", err, sizeof(err) - 1);
	assert_true(n > 0);
	err[n] = '\0';
	assert_non_null(strstr(err, "max_memory"));
	assert_int_equal(mmsb_read(fx->st, g, 0, err, 3), 3);
	assert_memory_equal(err, "old", 3);
	assert_true(rss() < base + RSS_SLACK);
	truncate_to(fx, f, MiB); /* fits again: the next change recomputes */
	n = mmsb_getxattr(fx->st, g, "user.mmsb.error", err, sizeof(err));
	assert_int_equal(n, -ENODATA);
	assert_int_equal(mmsb_read(fx->st, g, 0, err, 3), 3);
	assert_memory_equal(err, "abc", 3);
}

/* Random writes (some of zeros, some past the end), truncates across the
 * 1 MiB line either way, checkpoints, reopens and old-epoch reads of one page
 * against a plain buffer; after each step every nonzero byte lies in data that
 * SEEK_DATA/SEEK_HOLE report, and every epoch reads back as it was. */
#define MODEL_MAX (6 * MiB)
#define MODEL_STEPS 120

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void check_model(struct fx *fx, uint64_t id, const uint8_t *want, uint64_t size, uint8_t *got)
{
	uint64_t off = 0, data, hole, i;

	assert_int_equal(mmsb_read(fx->st, id, 0, got, MODEL_MAX), (ssize_t)size);
	assert_memory_equal(got, want, size);
	while (off < size) { /* the ranges outside data must be zero */
		int rc = mmsb_seek(fx->st, id, off, true, &data);

		if (rc == -ENXIO)
			data = size;
		else
			assert_int_equal(rc, 0);
		for (i = off; i < data; i++)
			assert_int_equal(want[i], 0);
		if (data >= size)
			break;
		assert_int_equal(mmsb_seek(fx->st, id, data, false, &hole), 0);
		assert_true(hole > data && hole <= size);
		off = hole;
	}
}

static void sparse_model(void **state)
{
	struct fx *fx = *state;
	uint8_t *want = calloc(1, MODEL_MAX), *got = malloc(MODEL_MAX), *buf = malloc(MiB);
	uint8_t *at[MODEL_STEPS + 1];
	uint64_t sizes[MODEL_STEPS + 1], epochs[MODEL_STEPS + 1], x = 0x9e3779b97f4a7c15ull, size = 0, id, ck;
	struct mmsb_stats st;
	int i, k;

	assert_non_null(want);
	assert_non_null(got);
	assert_non_null(buf);
	id = fx_page(fx, "m", NULL, 0);
	for (i = 0; i < MODEL_STEPS; i++) {
		uint64_t r = rnd(&x) % 100, off, len;
		struct mmsb_txn *t;

		if (r < 55) { /* a write, sometimes of zeros, sometimes past the end */
			len = 1 + rnd(&x) % (rnd(&x) % 4 ? 4096 : MiB);
			off = rnd(&x) % (MODEL_MAX - len);
			for (k = 0; k < (int)len; k++)
				buf[k] = r < 10 ? 0 : (uint8_t)rnd(&x);
			assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
			assert_int_equal(mmsb_txn_write(t, id, off, buf, len), (ssize_t)len);
			assert_int_equal(mmsb_txn_commit(t, NULL), 0);
			memcpy(want + off, buf, len);
			if (off + len > size)
				size = off + len;
		} else if (r < 85) { /* a truncate, across PBUF_MAP_MIN either way */
			uint64_t ns = rnd(&x) % 3 == 0 ? rnd(&x) % 4096 : rnd(&x) % MODEL_MAX;

			truncate_to(fx, id, ns);
			if (ns < size)
				memset(want + ns, 0, size - ns);
			size = ns;
		} else if (r < 93) {
			assert_int_equal(mmsb_checkpoint(fx->st, &ck), 0);
		} else {
			fx_reopen(fx);
		}
		check_model(fx, id, want, size, got);
		mmsb_store_stats(fx->st, &st);
		epochs[i] = st.head;
		sizes[i] = size;
		at[i] = malloc(size ? size : 1);
		assert_non_null(at[i]);
		memcpy(at[i], want, size);
	}
	for (i = 0; i < MODEL_STEPS; i += 7) { /* time travel: every 7th state */
		struct mmsb_snap *sn;

		assert_int_equal(mmsb_snap_open(fx->st, epochs[i], &sn), 0);
		assert_int_equal(mmsb_snap_read(sn, id, 0, got, MODEL_MAX), (ssize_t)sizes[i]);
		assert_memory_equal(got, at[i], sizes[i]);
		mmsb_snap_close(sn);
	}
	for (i = 0; i < MODEL_STEPS; i++)
		free(at[i]);
	free(want);
	free(got);
	free(buf);
}

/* Byte i of the lazy-copy test page before any change. */
static uint8_t pat(uint64_t i)
{
	return (uint8_t)(i * 2654435761u >> 13) | 1;
}

/* Compare [0, size) of the head (snap NULL) or a view with want. */
static void check_all(struct fx *fx, struct mmsb_snap *sn, uint64_t id, const uint8_t *want, uint64_t size)
{
	static uint8_t buf[4 * MiB];
	uint64_t off;

	for (off = 0; off < size; off += sizeof(buf)) {
		size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);

		assert_int_equal(sn ? mmsb_snap_read(sn, id, off, buf, n) : mmsb_read(fx->st, id, off, buf, n),
				 (ssize_t)n);
		assert_memory_equal(buf, want + off, n);
	}
}

/* A write to a page a view (or a checkpoint) shares makes a lazy copy: it
 * copies the 64 KiB chunks it changes, not the page (was: all 64 MiB, and
 * a multi-second stall for a GiB page); reads, truncation, a second view
 * and growth see the right bytes; once the view is gone the rest moves in
 * without a copy. */
static void lazy_copy_after_share(void **state)
{
	struct fx *fx = *state;
	const uint64_t size = 64 * MiB;
	uint8_t *want = malloc(128 * MiB), *orig = malloc(size), *piece = malloc(MiB);
	uint64_t id = fx_page(fx, "lazy", NULL, 0), base, off, i;
	struct mmsb_snap *sn, *sn2;
	struct mmsb_stats s;

	assert_non_null(want);
	assert_non_null(orig);
	assert_non_null(piece);
	for (i = 0; i < size; i++)
		orig[i] = pat(i);
	for (off = 0; off < size; off += MiB)
		fx_write(fx, id, off, orig + off, MiB);
	memcpy(want, orig, size);
	mmsb_store_stats(fx->st, &s);
	assert_int_equal(mmsb_snap_open(fx->st, s.head, &sn), 0); /* shares the page's buffer */
	base = rss();

	fx_write(fx, id, 10 * MiB + 1, "abc", 3); /* one chunk copied in */
	memcpy(want + 10 * MiB + 1, "abc", 3);
	memset(piece, 0x5a, MiB);
	fx_write(fx, id, 20 * MiB, piece, MiB); /* 16 whole chunks: nothing copied */
	memset(want + 20 * MiB, 0x5a, MiB);
	assert_true(rss() < base + 8 * MiB); /* was 64 MiB: the whole page */
	check_all(fx, NULL, id, want, size);
	check_all(fx, sn, id, orig, size); /* the view keeps its epoch */

	truncate_to(fx, id, 30 * MiB + 100); /* cuts inside a pending chunk */
	truncate_to(fx, id, 40 * MiB);
	memset(want + 30 * MiB + 100, 0, 10 * MiB - 100);
	check_all(fx, NULL, id, want, 40 * MiB);

	mmsb_store_stats(fx->st, &s); /* a second view shares the lazy copy: settled by copying first */
	assert_int_equal(mmsb_snap_open(fx->st, s.head, &sn2), 0);
	fx_write(fx, id, 5 * MiB, "x", 1);
	check_all(fx, sn2, id, want, 40 * MiB);
	want[5 * MiB] = 'x';
	check_all(fx, NULL, id, want, 40 * MiB);
	check_all(fx, sn, id, orig, size);
	mmsb_snap_close(sn);
	mmsb_snap_close(sn2);

	/* the views are gone: the next write moves what is pending, then a
	 * write far past the end grows the page */
	fx_write(fx, id, 7 * MiB, "y", 1);
	want[7 * MiB] = 'y';
	check_all(fx, NULL, id, want, 40 * MiB);
	mmsb_store_stats(fx->st, &s);
	assert_int_equal(mmsb_snap_open(fx->st, s.head, &sn), 0);
	fx_write(fx, id, 33 * MiB, "z", 1); /* lazy again, over a buffer that is not */
	mmsb_snap_close(sn);
	fx_write(fx, id, 34 * MiB, "w", 1); /* moved in: pieces of two mappings */
	memset(piece, 0xc3, MiB);
	fx_write(fx, id, 120 * MiB, piece, MiB); /* growth: pieces moved again */
	want[33 * MiB] = 'z';
	want[34 * MiB] = 'w';
	memset(want + 40 * MiB, 0, 80 * MiB);
	memset(want + 120 * MiB, 0xc3, MiB);
	check_all(fx, NULL, id, want, 121 * MiB);
	fx_reopen(fx); /* and what the log says agrees */
	check_all(fx, NULL, id, want, 121 * MiB);
	free(want);
	free(orig);
	free(piece);
}

int main(void)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test_setup_teardown(sparse_page_costs_nothing, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(seek_answers_from_the_map, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(ckpt_round_trip_with_holes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(budget_refuses_with_enospc, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(recompute_of_sparse_parent_is_bounded, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(sparse_model, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(lazy_copy_after_share, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("holes", t, NULL, NULL);
}
