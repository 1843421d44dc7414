/* bench_engine.c - timing helpers for bench_engine.sh: the engine under load,
 * measured with plain syscalls so that peers (tmpfs, bindfs,
 * fuse-overlayfs) run the same code in the same run.
 *
 *   bench_engine fill FILE SIZE_MIB
 *       sequential 1 MiB write(2)s of pseudo-random (incompressible) bytes
 *       into FILE (created or truncated), each write timed on its own;
 *       prints MB/s over the whole run (open to close) and the p50, p99 and
 *       max single-write latency.
 *   bench_engine pwlat FILE SECONDS [CMD ARGS...]
 *       4 KiB pwrite(2)s at random aligned offsets in the first 1 MiB of
 *       FILE, each timed.  With CMD: CMD is started as a child and the loop
 *       runs until it exits (at least 200 writes); its wall time is printed
 *       too.  Without: the loop runs SECONDS.
 *   bench_engine headread MNT SECONDS WRITES
 *       head read latency of one thread: each sample is a 4 KiB pread(2) of
 *       MNT/hr_read (opened O_RDWR: mmsbfs serves such opens with direct
 *       I/O, so every read reaches the daemon) plus a statx(2) of the
 *       unrelated MNT/hr_stat with AT_STATX_FORCE_SYNC (the kernel must ask
 *       the daemon: no attribute cache).  First SECONDS idle, then while a
 *       second thread does WRITES 4 KiB writes to MNT/hr_src, each of which
 *       triggers the recompute of MNT/hr_child (bench_engine.sh gives it an
 *       exec: operation that sleeps 1 s).  Prints p50/p99/max of both phases
 *       and the writes' durations.
 *
 * Prints "name value unit" lines; bench_engine.sh collects them.  Exits 1
 * with a message on any syscall error.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define MIB (1u << 20)

static void die(const char *what)
{
	fprintf(stderr, "bench_engine: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t rnd_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static void fill_random(void *buf, size_t len, uint64_t *seed)
{
	uint64_t *p = buf;

	for (size_t i = 0; i < len / 8; i++)
		p[i] = rnd_next(seed);
}

/* A growable array of latencies in ns. */
struct lat {
	uint64_t *v;  /* samples */
	size_t n;     /* used */
	size_t cap;   /* allocated */
};

static void lat_add(struct lat *l, uint64_t ns)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4096;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		if (!l->v)
			die("realloc");
	}
	l->v[l->n++] = ns;
}

/* Print NAME_n, NAME_p50, NAME_p99, NAME_max in µs (sorts l). */
static void lat_report(const char *name, struct lat *l)
{
	if (l->n == 0) {
		printf("%s_n 0\n", name);
		return;
	}
	qsort(l->v, l->n, sizeof(*l->v), cmp_u64);
	printf("%s_n %zu\n%s_p50 %.2f us\n%s_p99 %.2f us\n%s_max %.2f us\n", name, l->n, name,
	       l->v[l->n / 2] / 1000.0, name, l->v[l->n * 99 / 100] / 1000.0, name, l->v[l->n - 1] / 1000.0);
}

static int cmd_fill(const char *path, unsigned mib)
{
	uint64_t seed = 0x9E3779B97F4A7C15ull, t0, t1, t;
	struct lat l = {0};
	char *buf = malloc(MIB);
	int fd;

	if (!buf)
		die("malloc");
	t0 = now_ns();
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0)
		die(path);
	for (unsigned i = 0; i < mib; i++) {
		ssize_t r;

		fill_random(buf, MIB, &seed); /* before the clock: not part of the write */
		t = now_ns();
		r = write(fd, buf, MIB);
		if (r != (ssize_t)MIB) {
			if (r >= 0)
				errno = EIO;
			die("write");
		}
		lat_add(&l, now_ns() - t);
	}
	if (close(fd) < 0)
		die("close");
	t1 = now_ns();
	printf("fill_mbps %.1f MB/s\n", (double)mib * MIB / 1e6 / ((double)(t1 - t0) / 1e9));
	lat_report("fill_write", &l);
	free(l.v);
	free(buf);
	return 0;
}

static int cmd_pwlat(const char *path, double seconds, char **cmd)
{
	uint64_t seed = 42, t0, t, end;
	struct lat l = {0};
	char buf[4096];
	pid_t child = 0;
	int fd, status = 0, done = 0;

	fd = open(path, O_CREAT | O_RDWR, 0644);
	if (fd < 0)
		die(path);
	fill_random(buf, sizeof(buf), &seed);
	for (unsigned i = 0; i < MIB / 4096; i++) /* the file exists at its full size first */
		if (pwrite(fd, buf, sizeof(buf), (off_t)i * 4096) != (ssize_t)sizeof(buf))
			die("pwrite");
	t0 = now_ns();
	end = t0 + (uint64_t)(seconds * 1e9);
	if (cmd && cmd[0]) {
		child = fork();
		if (child < 0)
			die("fork");
		if (child == 0) {
			execvp(cmd[0], cmd);
			_exit(127);
		}
	}
	for (;;) {
		if (child) {
			if (!done && waitpid(child, &status, WNOHANG) == child) {
				done = 1;
				printf("cmd_wall %.3f s\n", (double)(now_ns() - t0) / 1e9);
			}
			if (done && l.n >= 200)
				break;
		} else if (now_ns() >= end) {
			break;
		}
		buf[0] = (char)rnd_next(&seed); /* every write changes bytes */
		t = now_ns();
		if (pwrite(fd, buf, sizeof(buf), (off_t)(rnd_next(&seed) % (MIB / 4096)) * 4096) != (ssize_t)sizeof(buf))
			die("pwrite");
		lat_add(&l, now_ns() - t);
	}
	close(fd);
	lat_report("pwrite", &l);
	free(l.v);
	if (child && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		fprintf(stderr, "bench_engine: %s failed (status %d)\n", cmd[0], status);
		return 1;
	}
	return 0;
}

/* ---- headread ---------------------------------------------------------- */

struct hr {
	const char *mnt;     /* the mount */
	unsigned writes;     /* how many triggering writes */
	atomic_int busy;     /* 1 while the writer is in its phase */
	atomic_int done;     /* 1 when the writer finished */
	struct lat wlat;     /* the writes' durations */
	int err;             /* errno of a failed write, else 0 */
};

static void *hr_writer(void *arg)
{
	struct hr *h = arg;
	char path[4096], buf[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/hr_src", h->mnt);
	fd = open(path, O_WRONLY);
	if (fd < 0) {
		h->err = errno;
		atomic_store(&h->done, 1);
		return NULL;
	}
	atomic_store(&h->busy, 1);
	for (unsigned i = 0; i < h->writes; i++) {
		uint64_t t = now_ns();

		memset(buf, 'a' + (int)(i % 26), sizeof(buf));
		if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)) {
			h->err = errno ? errno : EIO;
			break;
		}
		lat_add(&h->wlat, now_ns() - t);
	}
	close(fd);
	atomic_store(&h->done, 1);
	return NULL;
}

static void hr_sample(int rfd, const char *spath, struct lat *l)
{
	char buf[4096];
	struct statx sx;
	uint64_t t = now_ns();

	if (pread(rfd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		die("pread hr_read");
	if (statx(AT_FDCWD, spath, AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &sx) < 0)
		die("statx hr_stat");
	lat_add(l, now_ns() - t);
}

static int cmd_headread(const char *mnt, double seconds, unsigned writes)
{
	char rpath[4096], spath[4096];
	struct lat idle = {0}, busy = {0};
	struct hr h = {.mnt = mnt, .writes = writes};
	pthread_t th;
	uint64_t end;
	int rfd;

	snprintf(rpath, sizeof(rpath), "%s/hr_read", mnt);
	snprintf(spath, sizeof(spath), "%s/hr_stat", mnt);
	rfd = open(rpath, O_RDWR);
	if (rfd < 0)
		die(rpath);
	end = now_ns() + (uint64_t)(seconds * 1e9);
	while (now_ns() < end)
		hr_sample(rfd, spath, &idle);
	if (pthread_create(&th, NULL, hr_writer, &h) != 0)
		die("pthread_create");
	while (!atomic_load(&h.busy) && !atomic_load(&h.done))
		;
	while (!atomic_load(&h.done))
		hr_sample(rfd, spath, &busy);
	pthread_join(th, NULL);
	close(rfd);
	if (h.err) {
		errno = h.err;
		die("write hr_src");
	}
	lat_report("read_idle", &idle);
	lat_report("read_busy", &busy);
	lat_report("trigger_write", &h.wlat);
	free(idle.v);
	free(busy.v);
	free(h.wlat.v);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 4 && strcmp(argv[1], "fill") == 0)
		return cmd_fill(argv[2], (unsigned)strtoul(argv[3], NULL, 10));
	if (argc >= 4 && strcmp(argv[1], "pwlat") == 0)
		return cmd_pwlat(argv[2], strtod(argv[3], NULL), argv + 4);
	if (argc >= 5 && strcmp(argv[1], "headread") == 0)
		return cmd_headread(argv[2], strtod(argv[3], NULL), (unsigned)strtoul(argv[4], NULL, 10));
	fprintf(stderr, "usage: bench_engine fill FILE SIZE_MIB\n"
			"       bench_engine pwlat FILE SECONDS [CMD ARGS...]\n"
			"       bench_engine headread MNT SECONDS WRITES\n");
	return 2;
}
