/* bench_prop.c - cost of propagation in the library: a write to the head of
 * a chain of N copy pages (N = 10, 100) or to the parent of a fan-out of
 * 1000, committed with MMSB_SYNC_NONE; reports the median commit time and
 * the time per recomputed page (hop), next to a commit with no dependents.
 *
 * Usage: bench_prop [--quick] [DIR]   (DIR: where to put the store, default /tmp)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "mmsb.h"

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_prop: %s: %s\n", what, strerror(-rc));
	exit(1);
}

static uint64_t mkpage(struct mmsb_store *st, const char *name, const char *deps)
{
	struct mmsb_txn *t;
	struct mmsb_attr a;
	int rc = mmsb_txn_begin(st, MMSB_SRC_USER, &t);

	if (rc == 0)
		rc = mmsb_txn_create(t, MMSB_ROOT_ID, name, MMSB_T_PAGE, 0644, 0, 0, NULL, &a);
	if (rc == 0 && !deps)
		rc = (int)mmsb_txn_write(t, a.id, 0, "0123456789abcdef", 16) < 0 ? -EIO : 0;
	if (rc == 0 && deps)
		rc = mmsb_txn_setxattr(t, a.id, "user.mmsb.deps", deps, strlen(deps), 0);
	if (rc == 0 && deps)
		rc = mmsb_txn_setxattr(t, a.id, "user.mmsb.recompute", "copy", 4, 0);
	if (rc == 0)
		rc = mmsb_txn_commit(t, NULL);
	if (rc < 0)
		die("create", rc);
	return a.id;
}

/* Median ns of `reps` commits that each change 4 bytes of page id. */
static uint64_t time_writes(struct mmsb_store *st, uint64_t id, int reps)
{
	uint64_t *v = malloc((size_t)reps * sizeof(*v)), med;
	int i;

	for (i = 0; i < reps; i++) {
		struct mmsb_txn *t;
		uint32_t x = (uint32_t)i * 2654435761u;
		uint64_t t0 = now_ns();
		int rc = mmsb_txn_begin(st, MMSB_SRC_USER, &t);

		if (rc == 0)
			rc = mmsb_txn_write(t, id, 0, &x, sizeof(x)) < 0 ? -EIO : 0;
		if (rc == 0)
			rc = mmsb_txn_commit(t, NULL);
		if (rc < 0)
			die("write", rc);
		v[i] = now_ns() - t0;
	}
	qsort(v, (size_t)reps, sizeof(*v), cmp_u64);
	med = v[reps / 2];
	free(v);
	return med;
}

static void run(const char *base, const char *shape, int n, int reps, uint64_t solo)
{
	struct mmsb_store_opts o;
	struct mmsb_store *st;
	char dir[512], cmd[600], name[32], dep[32];
	uint64_t head, med;
	int i, rc;

	snprintf(dir, sizeof(dir), "%s/bench-prop-%d-%s", base, n, shape);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		die("rm", -EIO);
	mmsb_store_opts_init(&o);
	o.ckpt_log_bytes = 0;
	o.ckpt_at_close = false;
	rc = mmsb_store_open(dir, &o, &st);
	if (rc < 0)
		die("open", rc);
	head = mkpage(st, "p0", NULL);
	for (i = 1; i <= n; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		snprintf(dep, sizeof(dep), "p%d", strcmp(shape, "chain") == 0 ? i - 1 : 0);
		mkpage(st, name, dep);
	}
	med = time_writes(st, head, reps);
	printf("%-8s %5d  %10.1f  %10.2f  %10.2f\n", shape, n, (double)med / 1000.0,
	       (double)(med > solo ? med - solo : 0) / n / 1000.0, (double)med / (n + 1) / 1000.0);
	mmsb_store_close(st);
	if (system(cmd) != 0)
		die("rm", -EIO);
}

int main(int argc, char **argv)
{
	bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	const char *base = argc > 1 + quick ? argv[1 + quick] : "/tmp";
	int reps = quick ? 50 : 400;
	struct mmsb_store_opts o;
	struct mmsb_store *st;
	char dir[512], cmd[600];
	uint64_t solo;
	int rc;

	snprintf(dir, sizeof(dir), "%s/bench-prop-solo", base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	mmsb_store_opts_init(&o);
	o.ckpt_log_bytes = 0;
	o.ckpt_at_close = false;
	rc = mmsb_store_open(dir, &o, &st);
	if (rc < 0)
		die("open", rc);
	solo = time_writes(st, mkpage(st, "solo", NULL), reps);
	mmsb_store_close(st);
	if (system(cmd) != 0)
		return 1;
	printf("propagation in the library (median of %d commits; a commit with no dependents: %.1f us)\n", reps,
	       (double)solo / 1000.0);
	printf("%-8s %5s  %10s  %10s  %10s\n", "shape", "pages", "commit_us", "hop_us", "us/page");
	run(base, "chain", 10, reps, solo);
	run(base, "chain", 100, reps / 4 + 1, solo);
	run(base, "fanout", 1000, reps / 20 + 3, solo);
	return 0;
}
