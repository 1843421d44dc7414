/* bench_ckpt.c - what a checkpoint costs (see bench/results-ckpt.txt).
 *
 *   A  checkpoint after changing 1 MiB of a store of --size bytes, next to a
 *      full checkpoint of it (every page rewritten first, so that every
 *      block is new): wall time of mmsb_checkpoint and bytes written.
 *      Two layouts: pages of 64 MiB ("many"), and one page of --size ("one",
 *      whose every block a change makes the writer hash).
 *   B  bytes on disk (log + checkpoints) after writing --size sequentially
 *      in 1 MiB writes into a fresh store with the default options
 *      (automatic checkpoints, checkpoint at close), then closing.
 *
 * Random (incompressible) page bytes; medians of --runs runs.  Only the
 * public API (mmsb.h) is used, so the same source builds against any
 * libmmsb (results-ckpt.txt compares with the full-image checkpoints of
 * format 1.2).
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "mmsb.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

#define CHECK(x)                                                                                              \
	do {                                                                                                  \
		int rc_ = (int)(x);                                                                           \
		if (rc_ < 0) {                                                                                \
			fprintf(stderr, "bench_ckpt: %s:%d: %s: %s\n", __FILE__, __LINE__, #x, strerror(-rc_)); \
			exit(1);                                                                              \
		}                                                                                             \
	} while (0)

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i + 8 <= n; i += 8) {
		s ^= s >> 12;
		s ^= s << 25;
		s ^= s >> 27;
		uint64_t v = s * 0x2545F4914F6CDD1Dull;
		memcpy(p + i, &v, 8);
	}
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t write1(struct mmsb_store *st, uint64_t id, uint64_t off, const void *buf, size_t len)
{
	struct mmsb_txn *t;
	uint64_t e = 0;

	CHECK(mmsb_txn_begin(st, MMSB_SRC_USER, &t));
	CHECK(mmsb_txn_write(t, id, off, buf, len));
	CHECK(mmsb_txn_commit(t, &e));
	return e;
}

static uint64_t create_page(struct mmsb_store *st, const char *name)
{
	struct mmsb_txn *t;
	struct mmsb_attr a;

	CHECK(mmsb_txn_begin(st, MMSB_SRC_USER, &t));
	CHECK(mmsb_txn_create(t, MMSB_ROOT_ID, name, MMSB_T_PAGE, 0644, 0, 0, NULL, &a));
	CHECK(mmsb_txn_commit(t, NULL));
	return a.id;
}

static void quiet(void *arg, int level, const char *msg)
{
	(void)arg;
	if (level <= MMSB_DIAG_WARNING)
		fprintf(stderr, "  [mmsb] %s\n", msg);
}

static char *fresh_dir(const char *base, const char *name)
{
	char *p = malloc(PATH_MAX);

	snprintf(p, PATH_MAX, "%s/mmsb-bench-%s-XXXXXX", base, name);
	if (!p || !mkdtemp(p)) {
		fprintf(stderr, "bench_ckpt: mkdtemp under %s: %s\n", base, strerror(errno));
		exit(1);
	}
	strcat(p, "/s");
	return p;
}

/* Write every page of the store whole (seed: its bytes). */
static void write_all(struct mmsb_store *st, const uint64_t *ids, uint64_t n, uint64_t pagesz, uint8_t *buf,
		      uint64_t seed)
{
	for (uint64_t p = 0; p < n; p++)
		for (uint64_t off = 0; off < pagesz; off += 64 * MiB) {
			uint64_t len = pagesz - off < 64 * MiB ? pagesz - off : 64 * MiB;

			fill_random(buf, len, seed * 1000003 + p * 4099 + off / MiB);
			write1(st, ids[p], off, buf, len);
		}
}

/* The time (ns) and file bytes of one mmsb_checkpoint after the log is durable. */
static double timed_ckpt(struct mmsb_store *st, uint64_t *bytes)
{
	struct mmsb_stats s;
	uint64_t t0, e;

	CHECK(mmsb_store_sync(st));
	t0 = now_ns();
	CHECK(mmsb_checkpoint(st, &e));
	t0 = now_ns() - t0;
	mmsb_store_stats(st, &s);
	*bytes = s.ckpt_write_bytes;
	return (double)t0;
}

static void section_a(const char *base, uint64_t size, int runs, bool one)
{
	uint64_t pagesz = one ? size : 64 * MiB, n = size / pagesz, *ids = calloc(n, sizeof(*ids));
	uint8_t *buf = malloc(64 * MiB);
	double *tf = calloc((size_t)runs, sizeof(double)), *ti = calloc((size_t)runs, sizeof(double));
	uint64_t bf = 0, bi = 0, kept;
	char *dir = fresh_dir(base, "ckpt");
	struct mmsb_store_opts o;
	struct mmsb_store *st;

	mmsb_store_opts_init(&o);
	o.sync = MMSB_SYNC_NONE;
	o.ckpt_log_bytes = 0;
	o.ckpt_at_close = false;
	o.diag_fn = quiet;
	o.segment_bytes = 64 * MiB;
	CHECK(mmsb_store_open(dir, &o, &st));
	for (uint64_t p = 0; p < n; p++) {
		char name[32];

		snprintf(name, sizeof(name), "page%04" PRIu64, p);
		ids[p] = create_page(st, name);
	}
	for (int r = 0; r < runs; r++) {
		uint64_t e;

		/* full: every block new */
		write_all(st, ids, n, pagesz, buf, (uint64_t)r + 1);
		tf[r] = timed_ckpt(st, &bf);
		/* incremental: 1 MiB at a random 4 KiB-aligned place */
		fill_random(buf, MiB, 77 + (uint64_t)r);
		write1(st, ids[(uint64_t)r * 7 % n], ((uint64_t)r * 2654435761u % (pagesz - MiB)) & ~4095ull, buf, MiB);
		ti[r] = timed_ckpt(st, &bi);
		CHECK(mmsb_checkpoint(st, &e));
		CHECK(mmsb_compact(st, e, 0, &kept)); /* the old log and files go */
	}
	printf("%-5s %6.2f GiB  full: %9.1f ms %10.1f MiB   1 MiB changed: %8.1f ms %8.2f MiB   time %5.2f%%  bytes %5.2f%%\n",
	       one ? "one" : "many", (double)size / GiB, median(tf, (size_t)runs) / 1e6, (double)bf / MiB, median(ti, (size_t)runs) / 1e6,
	       (double)bi / MiB, 100 * median(ti, (size_t)runs) / median(tf, (size_t)runs), 100.0 * (double)bi / (double)bf);
	fflush(stdout);
	mmsb_store_close(st);
	dir[strlen(dir) - 2] = '\0';
	rm_rf(dir);
	free(dir);
	free(ids);
	free(buf);
	free(tf);
	free(ti);
}

static void section_b(const char *base, uint64_t size)
{
	char *dir = fresh_dir(base, "seq"), path[PATH_MAX + 8];
	uint8_t *buf = malloc(MiB);
	struct mmsb_store_opts o;
	struct mmsb_store *st;
	uint64_t id, t0, log, ck;

	mmsb_store_opts_init(&o); /* the defaults: checkpoints every 256 MiB of log and at close */
	o.diag_fn = quiet;
	CHECK(mmsb_store_open(dir, &o, &st));
	id = create_page(st, "seq");
	t0 = now_ns();
	for (uint64_t off = 0; off < size; off += MiB) {
		fill_random(buf, MiB, off / MiB + 1);
		write1(st, id, off, buf, MiB);
	}
	mmsb_store_close(st);
	t0 = now_ns() - t0;
	snprintf(path, sizeof(path), "%s/log", dir);
	log = dir_bytes(path);
	snprintf(path, sizeof(path), "%s/ckpt", dir);
	ck = dir_bytes(path);
	printf("%.2f GiB written sequentially (1 MiB writes, defaults, then close; %.1f s): on disk %.3f GiB = log %.3f + "
	       "checkpoints %.3f (%.2fx the data)\n",
	       (double)size / GiB, (double)t0 / 1e9, (double)(log + ck) / GiB, (double)log / GiB, (double)ck / GiB,
	       (double)(log + ck) / (double)size);
	fflush(stdout);
	dir[strlen(dir) - 2] = '\0';
	rm_rf(dir);
	free(dir);
	free(buf);
}

int main(int argc, char **argv)
{
	const char *base = "/tmp", *only = "AB";
	double gib = 1;
	int runs = 3;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			base = argv[++i];
		else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
			gib = atof(argv[++i]);
		else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			only = argv[++i];
		else {
			fprintf(stderr, "usage: bench_ckpt [--dir DIR] [--size GiB] [--runs N] [--only AB]\n");
			return 2;
		}
	}
	if (runs < 1 || gib <= 0)
		return 2;
	if (strchr(only, 'A')) {
		printf("A. checkpoint after changing 1 MiB vs a full checkpoint (random bytes; medians of %d)\n", runs);
		section_a(base, (uint64_t)(gib * GiB), runs, false);
		section_a(base, (uint64_t)(gib * GiB), runs, true);
	}
	if (strchr(only, 'B')) {
		printf("B. bytes on disk after a sequential write into a fresh store\n");
		section_b(base, (uint64_t)(gib * GiB));
	}
	return 0;
}
