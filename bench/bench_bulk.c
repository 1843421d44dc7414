/* bench_bulk.c - the bulk write path of the engine, without FUSE: one page
 * written sequentially in 1 MiB mmsb_page_write calls (what mmsbfs does for
 * each 1 MiB write(2)), into a fresh store in DIR.  Prints throughput, the
 * process CPU time per GiB and the largest single write latency.
 *
 *   bench_bulk DIR [MiB] [ckpt]     (default 1024 MiB; "ckpt": automatic
 *                                    checkpoints on, as mmsbfs has them)
 *
 * The data is pseudo-random (incompressible), as media, weights or
 * ciphertext are.  bench/bench_bulk.sh runs the same workload through the
 * mount next to FUSE peers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"
#include "mmsb.h"

#define MiB (1u << 20)

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "bench_bulk: %s: %s\n", what, strerror(-rc));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	struct mmsb_store_opts o;
	struct mmsb_store *st;
	struct mmsb_txn *t;
	struct mmsb_attr a;
	uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1024, i, t0, t1, max = 0, x = 0x9e3779b97f4a7c15ull;
	uint64_t *buf = malloc(MiB);
	double c0, c1;
	size_t k;

	if (argc < 2 || !buf) {
		fprintf(stderr, "usage: bench_bulk DIR [MiB] [ckpt]\n");
		return 2;
	}
	mmsb_store_opts_init(&o);
	o.ckpt_at_close = false;
	if (!(argc > 3 && strcmp(argv[3], "ckpt") == 0))
		o.ckpt_log_bytes = 0;
	check(mmsb_store_open(argv[1], &o, &st), "open");
	check(mmsb_txn_begin(st, MMSB_SRC_USER, &t), "begin");
	check(mmsb_txn_create(t, MMSB_ROOT_ID, "bulk", MMSB_T_PAGE, 0644, 0, 0, NULL, &a), "create");
	check(mmsb_txn_commit(t, NULL), "commit");
	c0 = cpu_s();
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		uint64_t w0;
		ssize_t rc;

		for (k = 0; k < MiB / 8; k++) { /* xorshift: new bytes every write */
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[k] = x;
		}
		w0 = now_ns();
		rc = mmsb_page_write(st, MMSB_SRC_USER, a.id, i * MiB, buf, MiB, NULL);
		check(rc < 0 ? (int)rc : 0, "write");
		w0 = now_ns() - w0;
		if (w0 > max)
			max = w0;
	}
	t1 = now_ns();
	c1 = cpu_s();
	printf("bulk %llu MiB: %.1f MB/s  cpu %.2f s/GiB (generating the data included)  max write %.1f ms\n",
	       (unsigned long long)n, (double)n * MiB / ((double)(t1 - t0) / 1e9) / 1e6, (c1 - c0) * 1024.0 / (double)n,
	       (double)max / 1e6);
	mmsb_store_close(st);
	free(buf);
	return 0;
}
