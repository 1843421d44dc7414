/* bench_open.c - what opening a store costs as its retained history grows.
 *
 *   bench_open [N_EPOCHS] [DIR]
 *
 * Builds a store of N small epochs (one 16-byte write each, default
 * 1,000,000), checkpoints the head and closes it; then opens it again (in
 * this process, cold index, warm page cache) and reports the open time and
 * the resident memory the open added, per retained epoch, then what the
 * first time-travel read before the checkpoint costs (the index of older
 * history, when it is loaded lazily).  Results: bench/results-open.txt. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "mmsb.h"

static uint64_t rss_bytes(void)
{
	char line[256];
	uint64_t kb = 0;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %" SCNu64, &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_open: %s: %s\n", what, strerror(-rc));
	exit(1);
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000, i, e = 0, t0, t1, r0, r1;
	char tmp[] = "/tmp/mmsb-bench-open-XXXXXX", dir[64];
	struct mmsb_store_opts o;
	struct mmsb_store *st;
	struct mmsb_attr a;
	struct mmsb_snap *sn;
	uint8_t buf[16];
	int rc;

	if (argc > 2)
		snprintf(dir, sizeof(dir), "%s", argv[2]);
	else if (!mkdtemp(tmp))
		return 1;
	else
		snprintf(dir, sizeof(dir), "%s/s", tmp);
	mmsb_store_opts_init(&o);
	o.ckpt_log_bytes = 0;
	o.ckpt_at_close = true;
	o.diag_level = getenv("BENCH_DIAG") ? MMSB_DIAG_DEBUG : MMSB_DIAG_NOTICE;
	rc = mmsb_store_open(dir, &o, &st);
	if (rc < 0)
		die("create", rc);
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		struct mmsb_txn *t;

		memset(buf, (int)('a' + i % 26), sizeof(buf));
		rc = mmsb_txn_begin(st, MMSB_SRC_USER, &t);
		if (rc == 0 && i == 0)
			rc = mmsb_txn_create(t, MMSB_ROOT_ID, "f", MMSB_T_PAGE, 0644, 0, 0, NULL, &a);
		if (rc == 0)
			rc = mmsb_txn_write(t, a.id, (i * 16) % 4096, buf, sizeof(buf)) < 0 ? -EIO : 0;
		if (rc == 0)
			rc = mmsb_txn_commit(t, &e);
		if (rc < 0)
			die("commit", rc);
	}
	t1 = now_ns();
	mmsb_store_close(st); /* checkpoint of the head at close */
	printf("built %" PRIu64 " epochs in %.2f s\n", n, (double)(t1 - t0) / 1e9);

	r0 = rss_bytes();
	t0 = now_ns();
	rc = mmsb_store_open(dir, &o, &st);
	t1 = now_ns();
	if (rc < 0)
		die("open", rc);
	r1 = rss_bytes();
	printf("open after a checkpoint: %.3f s, RSS +%.1f MiB (%.1f B per retained epoch)\n", (double)(t1 - t0) / 1e9,
	       (double)(r1 - r0) / 1048576.0, (double)(r1 - r0) / (double)n);
	t0 = now_ns();
	rc = mmsb_snap_open(st, n / 2, &sn);
	if (rc == 0)
		rc = (int)mmsb_snap_read(sn, a.id, 0, buf, sizeof(buf));
	t1 = now_ns();
	if (rc < 0)
		die("time travel", rc);
	mmsb_snap_close(sn);
	printf("first read of epoch %" PRIu64 ": %.3f s, RSS now +%.1f MiB\n", n / 2, (double)(t1 - t0) / 1e9,
	       (double)(rss_bytes() - r0) / 1048576.0);
	mmsb_store_close(st);
	if (argc <= 2) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
		if (system(cmd) != 0)
			return 1;
	}
	return 0;
}
