/* bench_fs.c - file-system microbenchmarks with plain syscalls, for any
 * directory (a mount of mmsbfs, tmpfs, bindfs...), so peers are measured by
 * the same code in the same run.
 *
 *   bench_fs meta DIR [N]        create, stat, unlink rates of N empty files
 *   bench_fs pwrite DIR [N]      4 KiB pwrite latency on one file (median, p99)
 *   bench_fs pwrite-gpu MNT [N]  mmsbfs only: the same on a page moved to the
 *                                GPU (user.mmsb.location=gpu)
 *   bench_fs travel MNT [N]      mmsbfs only: first read of epochs/E/f for N
 *                                different epochs E (open + 4 KiB read), after
 *                                N one-byte writes
 *   bench_fs prop MNT            mmsbfs only: cost of a write whose commit
 *                                recomputes a chain of 10 / 100 copy pages or a
 *                                fan-out of 1000 (per hop = (t - t0) / pages)
 *
 * Prints "name value unit" lines; bench_fs.sh collects them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static void die(const char *what)
{
	fprintf(stderr, "bench_fs: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void meta(const char *dir, int n)
{
	char path[4096];
	uint64_t t0, t1, t2, t3;
	struct stat st;
	int i, fd;

	t0 = now_ns();
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/m%06d", dir, i);
		fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0644);
		if (fd < 0)
			die(path);
		close(fd);
	}
	t1 = now_ns();
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/m%06d", dir, i);
		if (stat(path, &st) < 0)
			die(path);
	}
	t2 = now_ns();
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/m%06d", dir, i);
		if (unlink(path) < 0)
			die(path);
	}
	t3 = now_ns();
	printf("create %.0f ops/s\nstat %.0f ops/s\nunlink %.0f ops/s\n", n * 1e9 / (double)(t1 - t0),
	       n * 1e9 / (double)(t2 - t1), n * 1e9 / (double)(t3 - t2));
}

static void report(const char *name, uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	printf("%s_p50 %.2f us\n%s_p99 %.2f us\n", name, v[n / 2] / 1000.0, name, v[n * 99 / 100] / 1000.0);
}

/* 4 KiB pwrites over the first 1 MiB of DIR/pw; with location "gpu" the
 * page is moved to the GPU first (mmsbfs only). */
static void pwrites(const char *dir, int n, const char *location)
{
	char path[4096], buf[4096];
	uint64_t *v = malloc((size_t)n * sizeof(*v));
	int fd, i;

	snprintf(path, sizeof(path), "%s/pw", dir);
	fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
	if (fd < 0 || !v)
		die(path);
	if (location && (ftruncate(fd, 256 * 4096) < 0 ||
			 fsetxattr(fd, "user.mmsb.location", location, strlen(location), 0) < 0))
		die("setting user.mmsb.location");
	for (i = 0; i < n; i++) {
		uint64_t t0;

		/* every write changes its bytes: pass p over the 256 blocks
		 * writes p + 1 (i & 0xff would rewrite what the same block got
		 * one pass earlier, and a store that elides identical rewrites
		 * would time no-ops) */
		memset(buf, (i / 256 + 1) & 0xff, sizeof(buf));
		t0 = now_ns();
		if (pwrite(fd, buf, sizeof(buf), (off_t)(i % 256) * 4096) != (ssize_t)sizeof(buf))
			die("pwrite");
		v[i] = now_ns() - t0;
	}
	close(fd);
	unlink(path);
	report(location ? "pwrite4k_gpu" : "pwrite4k", v, n);
	free(v);
}

static uint64_t head_epoch(const char *mnt)
{
	char v[32] = "";
	ssize_t r = getxattr(mnt, "user.mmsb.head", v, sizeof(v) - 1);

	if (r < 0)
		die("getxattr user.mmsb.head (not an mmsbfs mount?)");
	v[r] = '\0';
	return strtoull(v, NULL, 10);
}

static void travel(const char *mnt, int n)
{
	char path[4096], buf[4096];
	uint64_t *epochs = malloc((size_t)n * sizeof(*epochs)), *v = malloc((size_t)n * sizeof(*v));
	int fd, i;

	snprintf(path, sizeof(path), "%s/tt", mnt);
	fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
	if (fd < 0 || !epochs || !v)
		die(path);
	memset(buf, 'x', sizeof(buf));
	if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		die("pwrite");
	for (i = 0; i < n; i++) {
		char c = (char)('a' + i % 26);

		if (pwrite(fd, &c, 1, i % 4096) != 1)
			die("pwrite");
		epochs[i] = head_epoch(mnt);
	}
	close(fd);
	for (i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		snprintf(path, sizeof(path), "%s/epochs/%llu/tt", mnt, (unsigned long long)epochs[(i * 7919) % n]);
		fd = open(path, O_RDONLY);
		if (fd < 0 || read(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			die(path);
		close(fd);
		v[i] = now_ns() - t0;
	}
	report("travel_read", v, n);
	free(epochs);
	free(v);
}

static void mkpage(const char *mnt, const char *name, const char *dep)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", mnt, name);
	fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
	if (fd < 0)
		die(path);
	if (!dep && pwrite(fd, "0123456789abcdef", 16, 0) != 16)
		die("pwrite");
	close(fd);
	if (dep && (setxattr(path, "user.mmsb.deps", dep, strlen(dep), 0) < 0 ||
		    setxattr(path, "user.mmsb.recompute", "copy", 4, 0) < 0))
		die("setxattr");
}

/* Median ns of reps 4-byte pwrites to MNT/name. */
static uint64_t time_writes(const char *mnt, const char *name, int reps)
{
	uint64_t *v = malloc((size_t)reps * sizeof(*v)), med;
	char path[4096];
	int fd, i;

	snprintf(path, sizeof(path), "%s/%s", mnt, name);
	fd = open(path, O_RDWR);
	if (fd < 0 || !v)
		die(path);
	for (i = 0; i < reps; i++) {
		uint32_t x = (uint32_t)i * 2654435761u + 1;
		uint64_t t0 = now_ns();

		if (pwrite(fd, &x, sizeof(x), 0) != sizeof(x))
			die("pwrite");
		v[i] = now_ns() - t0;
	}
	close(fd);
	qsort(v, (size_t)reps, sizeof(*v), cmp_u64);
	med = v[reps / 2];
	free(v);
	return med;
}

static void prop(const char *mnt)
{
	static const struct {
		const char *shape;
		int n, reps;
	} runs[] = {{"chain", 10, 200}, {"chain", 100, 60}, {"fanout", 1000, 20}};
	char name[32], dep[32], dir[4096];
	uint64_t solo, t;
	size_t r;
	int i;

	mkpage(mnt, "solo", NULL);
	solo = time_writes(mnt, "solo", 300);
	printf("prop_solo_write %.1f us\n", solo / 1000.0);
	for (r = 0; r < sizeof(runs) / sizeof(runs[0]); r++) {
		snprintf(dir, sizeof(dir), "%s/%s%d", mnt, runs[r].shape, runs[r].n);
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			die(dir);
		snprintf(name, sizeof(name), "%s%d/p0", runs[r].shape, runs[r].n);
		mkpage(mnt, name, NULL);
		for (i = 1; i <= runs[r].n; i++) {
			snprintf(name, sizeof(name), "%s%d/p%d", runs[r].shape, runs[r].n, i);
			snprintf(dep, sizeof(dep), "%s%d/p%d", runs[r].shape, runs[r].n,
				 runs[r].shape[0] == 'c' ? i - 1 : 0);
			mkpage(mnt, name, dep);
		}
		snprintf(name, sizeof(name), "%s%d/p0", runs[r].shape, runs[r].n);
		t = time_writes(mnt, name, runs[r].reps);
		printf("prop_%s%d_write %.1f us\nprop_%s%d_hop %.2f us\n", runs[r].shape, runs[r].n, t / 1000.0,
		       runs[r].shape, runs[r].n, (double)(t > solo ? t - solo : 0) / runs[r].n / 1000.0);
	}
}

int main(int argc, char **argv)
{
	int n = argc > 3 ? atoi(argv[3]) : 0;

	if (argc < 3) {
		fprintf(stderr, "usage: bench_fs meta|pwrite|pwrite-gpu|travel|prop DIR [N]\n");
		return 2;
	}
	if (strcmp(argv[1], "meta") == 0)
		meta(argv[2], n ? n : 5000);
	else if (strcmp(argv[1], "pwrite") == 0)
		pwrites(argv[2], n ? n : 20000, NULL);
	else if (strcmp(argv[1], "pwrite-gpu") == 0)
		pwrites(argv[2], n ? n : 20000, "gpu");
	else if (strcmp(argv[1], "travel") == 0)
		travel(argv[2], n ? n : 500);
	else if (strcmp(argv[1], "prop") == 0)
		prop(argv[2]);
	else
		return fprintf(stderr, "bench_fs: unknown mode %s\n", argv[1]), 2;
	return 0;
}
