/* bench_core.c - microbenchmarks of libmmsb (see bench/README.md).
 *
 * Sections (select with --only=LIST, e.g. --only=1,3):
 *   1  delta diff / apply on 64 MiB pages, next to memcpy of the same size
 *   2  commit rate and latency (SYNC_NONE, SYNC_COMMIT, group commit)
 *   3  page creation and small writes (the prototype's alloc / sparse targets)
 *   4  checkpoint write and load (compressible and random page data)
 *   5  log replay at open
 *   6  time-travel read latency vs. log length since the last checkpoint
 *
 * Every number is the median of several runs (the machine is noisy).  Stores
 * are created under --dir (default /tmp) and removed afterwards.  --quick
 * shrinks sizes and repetitions for a fast smoke run; its numbers are less
 * stable.  Only the public API (mmsb.h) and the delta codec (delta.h) are
 * used.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "delta.h"
#include "mmsb.h"

#define KiB (1024ull)
#define MiB (1024ull * 1024)
#define GiB (1024ull * 1024 * 1024)

#define CHECK(x)                                                                                                 \
	do {                                                                                                     \
		long long rc_ = (long long)(x);                                                                  \
		if (rc_ < 0) {                                                                                   \
			fprintf(stderr, "bench_core: %s:%d: %s: %s\n", __FILE__, __LINE__, #x, strerror((int)-rc_)); \
			exit(1);                                                                                 \
		}                                                                                                \
	} while (0)

struct cfg {
	bool quick;
	const char *dir;   /* parent of the benchmark stores */
	unsigned sections; /* bit k: section k */
	int runs;	   /* repetitions for medians */
};

/* ---- helpers ------------------------------------------------------------------ */

/* Quantile q of v[0..n), nearest rank (sorts v). */
static uint64_t quantile(uint64_t *v, size_t n, double q)
{
	size_t k;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	k = (size_t)(q * (double)n + 0.999999);
	if (k == 0)
		k = 1;
	return v[(k > n ? n : k) - 1];
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1, v;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		v = rng_next(&s);
		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] = (uint8_t)rng_next(&s);
}

/* Text-like bytes: words from a small vocabulary and numbers (LZ4 packs
 * this to roughly a third to a half). */
static void fill_text(uint8_t *p, size_t n, uint64_t seed)
{
	static const char *const words[] = {
		"epoch", "page", "delta", "commit", "store", "the", "of", "and", "write", "read",
		"checkpoint", "log", "segment", "frame", "record", "value", "node", "tree", "time", "travel",
		"weights", "layer", "tensor", "gradient", "batch", "loss", "step", "model", "float", "index",
		"alpha", "beta",
	};
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
	size_t i = 0;

	while (i < n) {
		uint64_t r = rng_next(&s);
		char tmp[32];
		int len;

		if ((r & 7) == 0)
			len = snprintf(tmp, sizeof(tmp), "%u.%02u ", (unsigned)(r >> 8) % 10000, (unsigned)(r >> 24) % 100);
		else
			len = snprintf(tmp, sizeof(tmp), "%s%c", words[(r >> 8) % (sizeof(words) / sizeof(words[0]))],
				       (r >> 16) % 11 == 0 ? '\n' : ' ');
		if ((size_t)len > n - i)
			len = (int)(n - i);
		memcpy(p + i, tmp, (size_t)len);
		i += (size_t)len;
	}
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fprintf(stderr, "bench_core: out of memory (%zu bytes)\n", n);
		exit(1);
	}
	return p;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	remove(path);
	return 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Evict the files under path from the page cache (they are synced first;
 * POSIX_FADV_DONTNEED drops clean pages only).  No root needed. */
static int drop_cb(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	int fd;

	(void)sb;
	(void)f;
	if (flag != FTW_F)
		return 0;
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		fdatasync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
	return 0;
}

static void drop_cache(const char *path)
{
	nftw(path, drop_cb, 16, FTW_PHYS);
}

static void diag_sink(void *arg, int level, const char *msg)
{
	(void)arg;
	if (level <= MMSB_DIAG_WARNING)
		fprintf(stderr, "  [mmsb] %s\n", msg);
}

/* Options for benchmark stores: no automatic or closing checkpoints unless
 * a benchmark asks, quiet diagnostics. */
static void bench_opts(struct mmsb_store_opts *o, enum mmsb_sync sync)
{
	mmsb_store_opts_init(o);
	o->sync = sync;
	o->ckpt_log_bytes = 0;
	o->ckpt_at_close = false;
	o->diag_level = MMSB_DIAG_WARNING;
	o->diag_fn = diag_sink;
}

/* Store directories made by store_path, removed at exit even after a
 * failed CHECK. */
static char *made[16];

static void cleanup(void)
{
	size_t i;

	for (i = 0; i < sizeof(made) / sizeof(made[0]); i++)
		if (made[i]) {
			rm_rf(made[i]);
			free(made[i]);
			made[i] = NULL;
		}
}

/* A fresh, empty store directory under cfg->dir. */
static char *store_path(const struct cfg *c, const char *name)
{
	char *p = xmalloc(PATH_MAX);
	size_t i;

	snprintf(p, PATH_MAX, "%s/mmsb-bench-%s-XXXXXX", c->dir, name);
	if (!mkdtemp(p)) {
		fprintf(stderr, "bench_core: mkdtemp %s: %s\n", p, strerror(errno));
		exit(1);
	}
	for (i = 0; i < sizeof(made) / sizeof(made[0]); i++)
		if (!made[i]) {
			made[i] = strdup(p);
			break;
		}
	return p;
}

/* Remove a directory made by store_path and forget it. */
static void store_remove(char *p)
{
	size_t i;

	rm_rf(p);
	for (i = 0; i < sizeof(made) / sizeof(made[0]); i++)
		if (made[i] && strcmp(made[i], p) == 0) {
			free(made[i]);
			made[i] = NULL;
		}
	free(p);
}

static uint64_t create_page(struct mmsb_store *st, uint64_t parent, const char *name)
{
	struct mmsb_txn *t;
	struct mmsb_attr a;

	CHECK(mmsb_txn_begin(st, MMSB_SRC_USER, &t));
	CHECK(mmsb_txn_create(t, parent, name, MMSB_T_PAGE, 0644, 0, 0, NULL, &a));
	CHECK(mmsb_txn_commit(t, NULL));
	return a.id;
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

static double gbps(uint64_t bytes, double ns)
{
	return ns > 0 ? (double)bytes / ns : 0; /* bytes/ns == GB/s */
}

static const char *human(uint64_t b, char *buf, size_t cap)
{
	if (b >= GiB)
		snprintf(buf, cap, "%.2f GiB", (double)b / (double)GiB);
	else if (b >= MiB)
		snprintf(buf, cap, "%.1f MiB", (double)b / (double)MiB);
	else if (b >= KiB)
		snprintf(buf, cap, "%.1f KiB", (double)b / (double)KiB);
	else
		snprintf(buf, cap, "%" PRIu64 " B", b);
	return buf;
}

static void section(const char *title)
{
	printf("\n== %s ==\n", title);
	fflush(stdout);
}

/* ---- machine ------------------------------------------------------------------- */

static void fs_of(const char *dir, char *out, size_t cap)
{
	char real[PATH_MAX], line[4096], best[2200] = "unknown";
	size_t best_len = 0;
	FILE *f;

	if (!realpath(dir, real))
		snprintf(real, sizeof(real), "%s", dir);
	f = fopen("/proc/self/mounts", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char src[1024], mnt[1024], type[64];
		size_t l;

		if (sscanf(line, "%1023s %1023s %63s", src, mnt, type) != 3)
			continue;
		l = strlen(mnt);
		if (strncmp(real, mnt, l) == 0 && (real[l] == '/' || real[l] == '\0' || l == 1) && l >= best_len) {
			best_len = l;
			snprintf(best, sizeof(best), "%s (%s on %s)", type, src, mnt);
		}
	}
	if (f)
		fclose(f);
	snprintf(out, cap, "%s", best);
}

static void print_machine(const struct cfg *c)
{
	char model[256] = "unknown", line[512], fs[2200], date[64];
	struct utsname u;
	time_t t = time(NULL);
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "model name", 10) == 0) {
			char *p = strchr(line, ':');

			if (p) {
				snprintf(model, sizeof(model), "%s", p + 2);
				model[strcspn(model, "\n")] = '\0';
			}
			break;
		}
	if (f)
		fclose(f);
	uname(&u);
	fs_of(c->dir, fs, sizeof(fs));
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S %Z", localtime(&t));
	printf("bench_core (libmmsb %s)  %s  mode=%s  runs=%d\n", MMSB_VERSION_STRING, date, c->quick ? "quick" : "full",
	       c->runs);
	printf("cpu: %s, %ld online cores; kernel %s %s\n", model, sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release);
	printf("stores under %s: %s\n", c->dir, fs);
	fflush(stdout);
}

/* ---- 1. delta diff / apply ------------------------------------------------------------ */

static void bench_delta(const struct cfg *c)
{
	const size_t n = 64 * MiB;
	uint8_t *cur = xmalloc(n), *src = xmalloc(n), *page = xmalloc(n), *dst = xmalloc(n);
	double *tv = xmalloc((size_t)c->runs * sizeof(double));
	double t_memcpy;
	struct mmsb_buf out = {0};
	uint64_t s = 42, t0;
	int r, k;
	char h1[32];

	section("1. delta diff/apply on a 64 MiB page (mmsb_delta_diff, mmsb_delta_check, mmsb_delta_apply)");
	fill_random(cur, n, 1);
	memcpy(page, cur, n); /* fault everything in */
	memcpy(dst, cur, n);
	for (r = 0; r < c->runs; r++) {
		t0 = now_ns();
		memcpy(dst, page, n);
		tv[r] = (double)(now_ns() - t0);
		__asm__ volatile("" : : "r"(dst) : "memory");
	}
	t_memcpy = median(tv, (size_t)c->runs);
	printf("memcpy 64 MiB: %.2f ms, %.2f GB/s\n\n", t_memcpy / 1e6, gbps(n, t_memcpy));
	printf("%-22s %10s %-6s %10s %9s %9s %9s %10s %9s %10s %8s\n", "case", "changed", "enc", "body", "diff",
	       "check", "apply", "apply", "apply", "apply", "apply/");
	printf("%-22s %10s %-6s %10s %9s %9s %9s %10s %9s %10s %8s\n", "", "bytes", "", "", "GB/s", "ms", "ms",
	       "ns/chg.B", "chg.GB/s", "page GB/s", "memcpy");
	for (k = 0; k < 3; k++) {
		static const char *const names[] = {"dense (100%)", "scattered 1% (1 B)", "clustered 1% (512 B)"};
		struct mmsb_delta_info info;
		double t_diff, t_check, t_apply;
		size_t j;

		memcpy(src, cur, n);
		if (k == 0) {
			fill_random(src, n, 2);
			for (j = 0; j < n; j++)
				if (src[j] == cur[j])
					src[j] ^= 1;
		} else if (k == 1) {
			for (j = 0; j < n / 100; j++) {
				size_t pos = (size_t)(rng_next(&s) % n);

				src[pos] = cur[pos] ^ (uint8_t)(1 + rng_next(&s) % 255);
			}
		} else {
			for (j = 0; j < n / 100 / 512; j++) {
				size_t pos = (size_t)(rng_next(&s) % (n - 512)), q;

				for (q = 0; q < 512; q++)
					src[pos + q] = cur[pos + q] ^ (uint8_t)(q | 1);
			}
		}
		/* diff (one warm-up) */
		for (r = -1; r < c->runs; r++) {
			out.len = 0;
			t0 = now_ns();
			CHECK(mmsb_delta_diff(cur, n, 0, src, n, &out, &info));
			if (r >= 0)
				tv[r] = (double)(now_ns() - t0);
		}
		t_diff = median(tv, (size_t)c->runs);
		for (r = 0; r < c->runs; r++) {
			t0 = now_ns();
			CHECK(mmsb_delta_check(n, info.enc, out.p, out.len, NULL));
			tv[r] = (double)(now_ns() - t0);
		}
		t_check = median(tv, (size_t)c->runs);
		memcpy(page, cur, n);
		for (r = -1; r < c->runs; r++) {
			t0 = now_ns();
			CHECK(mmsb_delta_apply(page, n, info.enc, out.p, out.len));
			if (r >= 0)
				tv[r] = (double)(now_ns() - t0);
		}
		t_apply = median(tv, (size_t)c->runs);
		if (memcmp(page, src, n) != 0) {
			fprintf(stderr, "bench_core: delta %s: applied page differs from the source\n", names[k]);
			exit(1);
		}
		printf("%-22s %10" PRIu64 " %-6s %10s %9.2f %9.3f %9.3f %10.3f %9.2f %10.2f %7.2fx\n", names[k],
		       info.changed, info.enc == MMSB_ENC_RUNS ? "RUNS" : "BITMAP", human(out.len, h1, sizeof(h1)),
		       gbps(n, t_diff), t_check / 1e6, t_apply / 1e6, t_apply / (double)info.changed,
		       gbps(info.changed, t_apply), gbps(n, t_apply), t_apply / t_memcpy);
		fflush(stdout);
	}
	printf("(diff GB/s: 64 MiB of page compared and encoded per second; check: mmsb_delta_check (validation\n"
	       " only, as replay does before applying); apply ns/chg.B: per changed byte;\n"
	       " page GB/s: 64 MiB / apply time; apply/memcpy: apply time over memcpy of the whole 64 MiB page)\n");
	mmsb_buf_free(&out);
	free(cur);
	free(src);
	free(page);
	free(dst);
	free(tv);
}

/* ---- 2. commit rate ----------------------------------------------------------------------- */

#define COMMIT_PAGE (1 * MiB)

struct committer {
	struct mmsb_store *st;
	uint64_t id;
	size_t wlen;
	int n;
	uint64_t seed;
	uint64_t *lat; /* n latencies */
	pthread_barrier_t *bar;
};

static void *commit_loop(void *arg)
{
	struct committer *w = arg;
	uint8_t *buf = xmalloc(w->wlen);
	uint64_t s = w->seed;
	int i;

	if (w->bar)
		pthread_barrier_wait(w->bar);
	for (i = 0; i < w->n; i++) {
		uint64_t off = (rng_next(&s) % (COMMIT_PAGE / w->wlen)) * w->wlen, t0;

		fill_random(buf, w->wlen, rng_next(&s));
		t0 = now_ns();
		write1(w->st, w->id, off, buf, w->wlen);
		w->lat[i] = now_ns() - t0;
	}
	free(buf);
	return NULL;
}

struct commit_res {
	double rate;	     /* commits/s, median over runs */
	uint64_t p50, p99;   /* ns, over all commits of all runs */
	double per_sync;     /* commits per log fsync */
};

/* runs x (threads x n) commits of wlen-byte random writes, each thread on
 * its own 1 MiB page, in a fresh store. */
static struct commit_res run_commits(const struct cfg *c, enum mmsb_sync sync, size_t wlen, int threads, int n)
{
	struct mmsb_store_opts o;
	struct mmsb_store *st;
	struct committer w[8];
	pthread_t th[8];
	pthread_barrier_t bar;
	struct commit_res res = {0};
	struct mmsb_stats s0, s1;
	size_t total = (size_t)c->runs * (size_t)threads * (size_t)n, m = 0;
	uint64_t *lat = xmalloc(total * sizeof(*lat));
	double *rates = xmalloc((size_t)c->runs * sizeof(double));
	uint8_t *init = xmalloc(COMMIT_PAGE);
	char *dir = store_path(c, "commit");
	uint64_t syncs = 0, commits = 0;
	int r, i;

	bench_opts(&o, sync);
	CHECK(mmsb_store_open(dir, &o, &st));
	for (i = 0; i < threads; i++) {
		char name[32];

		snprintf(name, sizeof(name), "p%d", i);
		w[i].id = create_page(st, MMSB_ROOT_ID, name);
		fill_random(init, COMMIT_PAGE, 100 + (uint64_t)i);
		write1(st, w[i].id, 0, init, COMMIT_PAGE);
	}
	CHECK(mmsb_store_sync(st));
	for (r = 0; r < c->runs; r++) {
		uint64_t t0;

		mmsb_store_stats(st, &s0);
		pthread_barrier_init(&bar, NULL, (unsigned)threads + 1);
		for (i = 0; i < threads; i++) {
			w[i].st = st;
			w[i].wlen = wlen;
			w[i].n = n;
			w[i].seed = 1000 * (uint64_t)r + (uint64_t)i + 1;
			w[i].lat = lat + m + (size_t)i * (size_t)n;
			w[i].bar = &bar;
			pthread_create(&th[i], NULL, commit_loop, &w[i]);
		}
		pthread_barrier_wait(&bar);
		t0 = now_ns();
		for (i = 0; i < threads; i++)
			pthread_join(th[i], NULL);
		rates[r] = (double)threads * n / ((double)(now_ns() - t0) / 1e9);
		pthread_barrier_destroy(&bar);
		mmsb_store_stats(st, &s1);
		syncs += s1.n_syncs - s0.n_syncs;
		commits += (uint64_t)threads * (uint64_t)n;
		m += (size_t)threads * (size_t)n;
	}
	mmsb_store_close(st);
	store_remove(dir);
	res.rate = median(rates, (size_t)c->runs);
	res.p50 = quantile(lat, m, 0.50);
	res.p99 = quantile(lat, m, 0.99);
	res.per_sync = syncs ? (double)commits / (double)syncs : 0;
	free(lat);
	free(rates);
	free(init);
	return res;
}

static void bench_commit(const struct cfg *c)
{
	static const size_t wlens[] = {4096, 64};
	int n_none = c->quick ? 2000 : 20000, n_sync = c->quick ? 200 : 2000, n_group = c->quick ? 100 : 1000;
	size_t k;
	int t;

	section("2. commit rate: one random write per transaction (begin + write + commit), own 1 MiB page");
	printf("%-14s %-12s %8s %12s %10s %10s %12s\n", "write", "sync", "threads", "commits/s", "p50 us", "p99 us",
	       "commits/fsync");
	for (k = 0; k < 2; k++) {
		struct commit_res rn = run_commits(c, MMSB_SYNC_NONE, wlens[k], 1, n_none);
		struct commit_res rs = run_commits(c, MMSB_SYNC_COMMIT, wlens[k], 1, n_sync);

		printf("%-14s %-12s %8d %12.0f %10.1f %10.1f %12s\n", wlens[k] == 4096 ? "4 KiB random" : "64 B random",
		       "NONE", 1, rn.rate, (double)rn.p50 / 1e3, (double)rn.p99 / 1e3, "-");
		printf("%-14s %-12s %8d %12.0f %10.1f %10.1f %12.2f\n", "", "COMMIT", 1, rs.rate, (double)rs.p50 / 1e3,
		       (double)rs.p99 / 1e3, rs.per_sync);
		fflush(stdout);
	}
	printf("group commit (MMSB_SYNC_COMMIT, 4 KiB writes, one page per thread):\n");
	for (t = 1; t <= 4; t++) {
		struct commit_res rg = run_commits(c, MMSB_SYNC_COMMIT, 4096, t, n_group);

		printf("%-14s %-12s %8d %12.0f %10.1f %10.1f %12.2f\n", "4 KiB random", "COMMIT", t, rg.rate,
		       (double)rg.p50 / 1e3, (double)rg.p99 / 1e3, rg.per_sync);
		fflush(stdout);
	}
	printf("(latency: begin..commit return, including the fsync wait under COMMIT; commits/fsync from\n"
	       " mmsb_stats.n_syncs)\n");
}

/* ---- 3. allocation and small writes ------------------------------------------------------- */

struct lat_sum {
	double p50, mean, p99; /* us */
};

static struct lat_sum lat_summary(uint64_t *v, size_t n)
{
	struct lat_sum r;
	double sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		sum += (double)v[i];
	r.mean = n ? sum / (double)n / 1e3 : 0;
	r.p50 = (double)quantile(v, n, 0.50) / 1e3;
	r.p99 = (double)quantile(v, n, 0.99) / 1e3;
	return r;
}

static void alloc_row(const char *what, struct lat_sum l, const char *target)
{
	printf("%-54s %8.3f %8.3f %8.2f   %s\n", what, l.p50, l.mean, l.p99, target);
}

static void bench_alloc(const struct cfg *c)
{
	struct mmsb_store_opts o;
	struct mmsb_store *st;
	struct mmsb_txn *t;
	struct mmsb_attr a;
	const int batch = c->quick ? 2000 : 10000, single = c->quick ? 1000 : 5000, iters = c->quick ? 2000 : 20000;
	size_t nb = (size_t)c->runs * (size_t)batch, m = 0;
	uint64_t *lb = xmalloc(nb * sizeof(uint64_t)), *lat = xmalloc((size_t)iters * sizeof(uint64_t)),
		 *lw = xmalloc((size_t)iters * sizeof(uint64_t));
	double *tc = xmalloc((size_t)c->runs * sizeof(double));
	char *dir = store_path(c, "alloc"), name[64];
	struct lat_sum l;
	uint8_t buf[1024];
	uint64_t id, t0, t1, t2, tb;
	int r, i, k;

	section("3. page allocation and small writes (SYNC_NONE)");
	bench_opts(&o, MMSB_SYNC_NONE);
	CHECK(mmsb_store_open(dir, &o, &st));
	printf("%-54s %8s %8s %8s   %s\n", "operation (microseconds)", "p50", "mean", "p99", "prototype target");

	/* (a) many creates in one transaction, each run in a new directory */
	for (r = -1; r < c->runs; r++) {
		uint64_t d;

		snprintf(name, sizeof(name), "batch%d", r + 1);
		CHECK(mmsb_txn_begin(st, MMSB_SRC_USER, &t));
		CHECK(mmsb_txn_create(t, MMSB_ROOT_ID, name, MMSB_T_DIR, 0755, 0, 0, NULL, &a));
		CHECK(mmsb_txn_commit(t, NULL));
		d = a.id;
		CHECK(mmsb_txn_begin(st, MMSB_SRC_USER, &t));
		tb = now_ns();
		for (i = 0; i < batch; i++) {
			snprintf(name, sizeof(name), "page%06d", i);
			t0 = now_ns();
			CHECK(mmsb_txn_create(t, d, name, MMSB_T_PAGE, 0644, 0, 0, NULL, NULL));
			if (r >= 0)
				lb[m++] = now_ns() - t0;
		}
		CHECK(mmsb_txn_commit(t, NULL));
		if (r >= 0)
			tc[r] = (double)(now_ns() - tb) / batch;
	}
	alloc_row("create empty page, inside a txn (batch of creates)", lat_summary(lb, m), "< 1 us");
	printf("%-54s %8s %8.3f %8s   %s\n", "  same, with the commit amortized over the batch", "-",
	       median(tc, (size_t)c->runs) / 1e3, "-", "< 1 us");

	/* (b) one create per transaction */
	CHECK(mmsb_txn_begin(st, MMSB_SRC_USER, &t));
	CHECK(mmsb_txn_create(t, MMSB_ROOT_ID, "single", MMSB_T_DIR, 0755, 0, 0, NULL, &a));
	CHECK(mmsb_txn_commit(t, NULL));
	for (i = 0; i < single; i++) {
		snprintf(name, sizeof(name), "page%06d", i);
		t0 = now_ns();
		CHECK(mmsb_txn_begin(st, MMSB_SRC_USER, &t));
		CHECK(mmsb_txn_create(t, a.id, name, MMSB_T_PAGE, 0644, 0, 0, NULL, NULL));
		CHECK(mmsb_txn_commit(t, NULL));
		lat[i] = now_ns() - t0;
	}
	alloc_row("create empty page, own txn (begin+create+commit)", lat_summary(lat, (size_t)single), "< 1 us");
	fflush(stdout);

	/* (c) sparse and dense 1 KiB writes, end to end */
	for (k = 0; k < 2; k++) {
		id = create_page(st, MMSB_ROOT_ID, k == 0 ? "sparse" : "dense");
		fill_random(buf, sizeof(buf), 7);
		write1(st, id, 0, buf, sizeof(buf));
		for (i = 0; i < iters; i++) {
			int j;

			if (k == 0)
				for (j = 0; j < 10; j++) /* 10 of 1024 bytes (~1%) change, as in cpu_sparse */
					buf[j] ^= 0xff;
			else
				fill_random(buf, sizeof(buf), 1000 + (uint64_t)i);
			t0 = now_ns();
			CHECK(mmsb_txn_begin(st, MMSB_SRC_USER, &t));
			t1 = now_ns();
			CHECK(mmsb_txn_write(t, id, 0, buf, sizeof(buf)));
			t2 = now_ns();
			CHECK(mmsb_txn_commit(t, NULL));
			lat[i] = now_ns() - t0;
			lw[i] = t2 - t1;
		}
		alloc_row(k == 0 ? "sparse delta: 1 KiB page, 10 B changed, begin..commit"
				 : "dense delta: 1 KiB page, all 1024 B new, begin..commit",
			  lat_summary(lat, (size_t)iters), k == 0 ? "< 50 us" : "< 500 us");
		l = lat_summary(lw, (size_t)iters);
		alloc_row("  of which mmsb_txn_write (diff + encode + apply)", l, "");
		fflush(stdout);
	}
	printf("(each operation timed on its own; \"amortized\": median over runs of (creates + commit) / %d)\n", batch);
	mmsb_store_close(st);
	store_remove(dir);
	free(lb);
	free(lat);
	free(lw);
	free(tc);
}

/* ---- 4. checkpoint write and load --------------------------------------------------------- */

static void populate(struct mmsb_store *st, uint64_t total, uint64_t pagesz, bool text)
{
	uint8_t *buf = xmalloc(pagesz);
	uint64_t p;

	for (p = 0; p < total / pagesz; p++) {
		char name[32];
		uint64_t id;

		snprintf(name, sizeof(name), "page%02" PRIu64, p);
		id = create_page(st, MMSB_ROOT_ID, name);
		if (text)
			fill_text(buf, pagesz, p + 1);
		else
			fill_random(buf, pagesz, p + 1);
		write1(st, id, 0, buf, pagesz);
	}
	free(buf);
}

/* Write every page of populate() again with other bytes of the same kind. */
static void rewrite_all(struct mmsb_store *st, uint64_t total, uint64_t pagesz, bool text, uint64_t round)
{
	uint8_t *buf = xmalloc(pagesz);
	uint64_t p;

	for (p = 0; p < total / pagesz; p++) {
		char name[32];
		struct mmsb_attr a;

		snprintf(name, sizeof(name), "page%02" PRIu64, p);
		CHECK(mmsb_resolve(st, name, &a));
		if (text)
			fill_text(buf, pagesz, p + 1 + round * 1000);
		else
			fill_random(buf, pagesz, p + 1 + round * 1000);
		write1(st, a.id, 0, buf, pagesz);
	}
	free(buf);
}

/* Reopen dir runs times (cold: page cache dropped first); medians of the
 * wall time and of mmsb_stats replay_bytes / replay_ns.  A failed open is a
 * finding, not a benchmark error: it is reported, the store is kept for
 * inspection (store_keep) and -1 is returned. */
static bool keep_failed; /* a store was kept after a failure */

static int reopen_runs(const struct cfg *c, const char *dir, bool cold, uint64_t expect_bytes, double *wall,
		       double *replay_ns, uint64_t *replay_bytes)
{
	double *tw = xmalloc((size_t)c->runs * sizeof(double)), *tr = xmalloc((size_t)c->runs * sizeof(double));
	struct mmsb_store_opts o;
	struct mmsb_store *st;
	struct mmsb_stats s;
	int r, rc = 0;

	bench_opts(&o, MMSB_SYNC_NONE);
	o.create = false;
	for (r = 0; r < c->runs && rc == 0; r++) {
		uint64_t t0;

		if (cold)
			drop_cache(dir);
		t0 = now_ns();
		rc = mmsb_store_open(dir, &o, &st);
		if (rc < 0) {
			printf("FAILED: %s reopen %d of %s: mmsb_store_open: %s (store kept for inspection)\n",
			       cold ? "cold" : "warm", r + 1, dir, strerror(-rc));
			fflush(stdout);
			keep_failed = true;
			rc = -1;
			break;
		}
		tw[r] = (double)(now_ns() - t0);
		mmsb_store_stats(st, &s);
		tr[r] = (double)s.replay_ns;
		*replay_bytes = s.replay_bytes;
		if (expect_bytes && s.page_bytes != expect_bytes) {
			printf("FAILED: reopened store %s holds %" PRIu64 " page bytes, expected %" PRIu64 "\n", dir,
			       s.page_bytes, expect_bytes);
			keep_failed = true;
			rc = -1;
		}
		mmsb_store_close(st);
	}
	*wall = rc == 0 ? median(tw, (size_t)c->runs) : 0;
	*replay_ns = rc == 0 ? median(tr, (size_t)c->runs) : 0;
	free(tw);
	free(tr);
	return rc;
}

/* Forget a store directory without removing it. */
static void store_keep(char *p)
{
	size_t i;

	for (i = 0; i < sizeof(made) / sizeof(made[0]); i++)
		if (made[i] && strcmp(made[i], p) == 0) {
			free(made[i]);
			made[i] = NULL;
		}
	free(p);
}

static void bench_ckpt(const struct cfg *c)
{
	const uint64_t total = c->quick ? 256 * MiB : 1 * GiB, pagesz = 64 * MiB;
	double *tv = xmalloc((size_t)c->runs * sizeof(double)), *ts = xmalloc((size_t)c->runs * sizeof(double));
	int kind;
	char h1[32], h2[32];

	section("4. checkpoint write (mmsb_checkpoint) and load (close + mmsb_store_open)");
	printf("page data: %s in %" PRIu64 " pages of 64 MiB; checkpoint after mmsb_store_sync (log already durable)\n",
	       human(total, h1, sizeof(h1)), total / pagesz);
	printf("%-13s %10s %7s %11s %11s %11s %11s %11s %11s\n", "data", "file", "ratio", "write ms", "write GB/s",
	       "(stats)", "load ms", "load GB/s", "cold GB/s");
	for (kind = 0; kind < 2; kind++) {
		struct mmsb_store_opts o;
		struct mmsb_store *st;
		struct mmsb_stats s;
		struct mmsb_attr a;
		char *dir = store_path(c, kind == 0 ? "ckpt-text" : "ckpt-random");
		uint64_t e, kept, file = 0, rb;
		double t_write, t_stats, wall_warm, wall_cold, rns;
		uint8_t one;
		int r;

		bench_opts(&o, MMSB_SYNC_NONE);
		o.segment_bytes = 16 * MiB; /* compaction then leaves little log to scan */
		CHECK(mmsb_store_open(dir, &o, &st));
		populate(st, total, pagesz, kind == 0);
		CHECK(mmsb_resolve(st, "page00", &a));
		for (r = 0; r < c->runs; r++) {
			uint64_t t0;

			/* checkpoints are incremental: every block new, so that
			 * this one is full (bench_ckpt measures the others) */
			if (r > 0)
				rewrite_all(st, total, pagesz, kind == 0, (uint64_t)r);
			one = (uint8_t)(r + 1); /* a new epoch, in a fresh small segment */
			write1(st, a.id, 0, &one, 1);
			CHECK(mmsb_store_sync(st));
			t0 = now_ns();
			CHECK(mmsb_checkpoint(st, &e));
			tv[r] = (double)(now_ns() - t0);
			mmsb_store_stats(st, &s);
			ts[r] = (double)s.ckpt_write_ns;
			file = s.ckpt_write_bytes;
			/* drop the previous checkpoint and the big segments */
#ifdef MMSB_COMPACT_FORCE
			CHECK(mmsb_compact(st, e, 0, &kept));
#else
			CHECK(mmsb_compact(st, e, &kept));
#endif
		}
		t_write = median(tv, (size_t)c->runs);
		t_stats = median(ts, (size_t)c->runs);
		mmsb_store_stats(st, &s);
		mmsb_store_close(st);
		if (reopen_runs(c, dir, false, s.page_bytes, &wall_warm, &rns, &rb) < 0 ||
		    reopen_runs(c, dir, true, s.page_bytes, &wall_cold, &rns, &rb) < 0) {
			store_keep(dir);
			continue;
		}
		printf("%-13s %10s %6.2f%% %11.1f %11.3f %11.3f %11.1f %11.3f %11.3f\n", kind == 0 ? "compressible" : "random",
		       human(file, h2, sizeof(h2)), 100.0 * (double)file / (double)s.page_bytes, t_write / 1e6,
		       gbps(s.page_bytes, t_write), gbps(s.page_bytes, t_stats), wall_warm / 1e6,
		       gbps(s.page_bytes, wall_warm), gbps(s.page_bytes, wall_cold));
		fflush(stdout);
		store_remove(dir);
	}
	printf("(GB/s of page bytes; ratio: checkpoint file / page bytes; write ms: mmsb_checkpoint wall time, incl.\n"
	       " fsync+rename; (stats): mmsb_stats.ckpt_write_ns; load: mmsb_store_open of the compacted store, page\n"
	       " cache warm; cold: after POSIX_FADV_DONTNEED on every store file)\n");
	free(tv);
	free(ts);
}

/* ---- 5. replay ------------------------------------------------------------------------------ */

static void bench_replay(const struct cfg *c)
{
	const uint64_t big = c->quick ? 256 * MiB : 1 * GiB;
	const int n4k = c->quick ? 20000 : 100000, n64 = c->quick ? 50000 : 200000;
	int kind;
	char h1[32];

	section("5. replay at open (no checkpoint: the whole log is replayed)");
	printf("%-28s %9s %10s %10s %11s %11s %11s %11s\n", "log", "txns", "log bytes", "open ms", "replay GB/s",
	       "txns/s", "wall GB/s", "cold GB/s");
	for (kind = 0; kind < 3; kind++) {
		static const char *const names[] = {"1 MiB random writes", "4 KiB random writes", "64 B random writes"};
		struct mmsb_store_opts o;
		struct mmsb_store *st;
		struct mmsb_stats s;
		char *dir = store_path(c, "replay");
		uint64_t n, i, seed = 5, rb = 0, rb2 = 0, logb;
		double wall, rns, wall_cold, rns_cold;
		size_t wlen = kind == 0 ? MiB : kind == 1 ? 4096 : 64;
		uint64_t pagesz = kind == 0 ? 64 * MiB : kind == 1 ? 64 * MiB : MiB;
		uint64_t npages = kind == 0 ? big / pagesz : 1;
		uint8_t *buf = xmalloc(wlen);
		uint64_t ids[64];

		n = kind == 0 ? big / wlen : kind == 1 ? (uint64_t)n4k : (uint64_t)n64;
		bench_opts(&o, MMSB_SYNC_NONE);
		CHECK(mmsb_store_open(dir, &o, &st));
		for (i = 0; i < npages; i++) {
			char name[32];

			snprintf(name, sizeof(name), "page%02" PRIu64, i);
			ids[i] = create_page(st, MMSB_ROOT_ID, name);
		}
		for (i = 0; i < n; i++) {
			uint64_t p, off;

			if (kind == 0) { /* fill the pages in order */
				p = i / (pagesz / wlen);
				off = (i % (pagesz / wlen)) * wlen;
			} else {
				p = 0;
				off = (rng_next(&seed) % (pagesz / wlen)) * wlen;
			}
			fill_random(buf, wlen, 77 + i);
			write1(st, ids[p], off, buf, wlen);
		}
		CHECK(mmsb_store_sync(st));
		mmsb_store_stats(st, &s);
		logb = s.log_bytes;
		mmsb_store_close(st);
		if (reopen_runs(c, dir, false, s.page_bytes, &wall, &rns, &rb) < 0 ||
		    reopen_runs(c, dir, true, s.page_bytes, &wall_cold, &rns_cold, &rb2) < 0) {
			store_keep(dir);
			free(buf);
			continue;
		}
		printf("%-28s %9" PRIu64 " %10s %10.1f %11.3f %11.0f %11.3f %11.3f\n", names[kind], n + npages,
		       human(logb, h1, sizeof(h1)), wall / 1e6, gbps(rb, rns), (double)(n + npages) / (rns / 1e9),
		       gbps(rb, wall), gbps(rb2, rns_cold));
		fflush(stdout);
		store_remove(dir);
		free(buf);
	}
	printf("(replay GB/s: mmsb_stats replay_bytes / replay_ns (log read + checksum + decode + apply + index);\n"
	       " wall GB/s: replay_bytes / whole mmsb_store_open; page cache warm except \"cold\" (fadvise DONTNEED))\n");
}

/* ---- 6. time travel -------------------------------------------------------------------------- */

static void bench_travel(const struct cfg *c)
{
	const size_t pagesz = 64 * KiB;
	static const uint64_t lens_full[] = {0, 1, 10, 100, 1000, 10000};
	const int nlens = c->quick ? 5 : 6;
	const uint64_t maxw = lens_full[nlens - 1];
	uint8_t *page = xmalloc(pagesz), *got = xmalloc(pagesz), **expect = xmalloc((size_t)nlens * sizeof(uint8_t *));
	double *to = xmalloc((size_t)c->runs * sizeof(double)), *trd = xmalloc((size_t)c->runs * sizeof(double));
	struct mmsb_store_opts o;
	struct mmsb_store *st;
	char *dir = store_path(c, "travel"), h1[32];
	uint64_t id, base, e, w, seed = 9, t0, t1, t2;
	uint8_t small[64];
	int li, r;

	section("6. time travel: mmsb_snap_open + mmsb_snap_read of one 64 KiB page at an uncached epoch");
	bench_opts(&o, MMSB_SYNC_NONE);
	CHECK(mmsb_store_open(dir, &o, &st));
	id = create_page(st, MMSB_ROOT_ID, "tt");
	fill_random(page, pagesz, 3);
	write1(st, id, 0, page, pagesz);
	CHECK(mmsb_checkpoint(st, &base));
	for (li = 0; li < nlens; li++)
		expect[li] = NULL;
	expect[0] = xmalloc(pagesz);
	memcpy(expect[0], page, pagesz);
	for (w = 1; w <= maxw + 1; w++) { /* one past the last length: every epoch measured is < head */
		uint64_t off = rng_next(&seed) % (pagesz - sizeof(small));

		fill_random(small, sizeof(small), w);
		memcpy(page + off, small, sizeof(small));
		write1(st, id, off, small, sizeof(small));
		for (li = 1; li < nlens; li++)
			if (lens_full[li] == w) {
				expect[li] = xmalloc(pagesz);
				memcpy(expect[li], page, pagesz);
			}
	}
	CHECK(mmsb_store_sync(st));
	printf("checkpoint at epoch %" PRIu64 "; then %" PRIu64 " transactions writing 64 B each (log %s)\n", base,
	       maxw + 1, human(dir_bytes(dir), h1, sizeof(h1)));
	printf("%-28s %6s %12s %12s %12s %12s\n", "writes since checkpoint", "runs", "open us", "read us", "total us",
	       "us/record");
	for (li = 0; li < nlens; li++) {
		uint64_t len = lens_full[li];
		int runs = len == 0 ? 1 : (uint64_t)c->runs < len ? c->runs : (int)len;
		double mo, mr;

		for (r = 0; r < runs; r++) {
			struct mmsb_snap *sn;
			ssize_t got_n;

			e = base + len - (uint64_t)r; /* a different epoch each run: nothing cached */
			t0 = now_ns();
			CHECK(mmsb_snap_open(st, e, &sn));
			t1 = now_ns();
			got_n = mmsb_snap_read(sn, id, 0, got, pagesz);
			t2 = now_ns();
			CHECK(got_n);
			mmsb_snap_close(sn);
			if (r == 0 && ((size_t)got_n != pagesz || memcmp(got, expect[li], pagesz) != 0)) {
				fprintf(stderr, "bench_core: time travel to epoch %" PRIu64 " read wrong bytes\n", e);
				exit(1);
			}
			to[r] = (double)(t1 - t0);
			trd[r] = (double)(t2 - t1);
		}
		mo = median(to, (size_t)runs);
		mr = median(trd, (size_t)runs);
		if (len)
			snprintf(h1, sizeof(h1), "%.3f", (mo + mr) / 1e3 / (double)len);
		else
			snprintf(h1, sizeof(h1), "-");
		printf("%-28" PRIu64 " %6d %12.1f %12.1f %12.1f %12s\n", len, runs, mo / 1e3, mr / 1e3, (mo + mr) / 1e3,
		       h1);
		fflush(stdout);
	}
	t0 = now_ns();
	CHECK(mmsb_read(st, id, 0, got, pagesz));
	t1 = now_ns();
	printf("(reference: mmsb_read of the same page at head: %.1f us; open: snapshot build (checkpoint node table\n"
	       " + metadata replay of the log since it); read: page materialization (checkpoint block + the page's own\n"
	       " deltas, one pread each); row 0 reads the checkpoint epoch itself)\n",
	       (double)(t1 - t0) / 1e3);
	mmsb_store_close(st);
	store_remove(dir);
	for (li = 0; li < nlens; li++)
		free(expect[li]);
	free(expect);
	free(page);
	free(got);
	free(to);
	free(trd);
}

/* ---- main ------------------------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: bench_core [--quick] [--dir DIR] [--runs N] [--only=1,2,...]\n"
			"  --quick   smaller sizes, fewer runs (smoke test)\n"
			"  --dir     where benchmark stores are created (default /tmp)\n"
			"  --runs    repetitions per median (default 5, quick 3)\n"
			"  --only    sections: 1 delta, 2 commit, 3 alloc, 4 checkpoint, 5 replay, 6 time travel\n");
}

int main(int argc, char **argv)
{
	struct cfg c = {.quick = false, .dir = "/tmp", .sections = 0x7e, .runs = 0};
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			c.quick = true;
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			c.dir = argv[++i];
		} else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
			c.runs = atoi(argv[++i]);
		} else if (strncmp(argv[i], "--only=", 7) == 0) {
			const char *p;

			c.sections = 0;
			for (p = argv[i] + 7; *p; p++)
				if (*p >= '1' && *p <= '6')
					c.sections |= 1u << (*p - '0');
		} else {
			usage();
			return 2;
		}
	}
	if (c.runs <= 0)
		c.runs = c.quick ? 3 : 5;
	atexit(cleanup);
	print_machine(&c);
	if (c.sections & (1u << 1))
		bench_delta(&c);
	if (c.sections & (1u << 2))
		bench_commit(&c);
	if (c.sections & (1u << 3))
		bench_alloc(&c);
	if (c.sections & (1u << 4))
		bench_ckpt(&c);
	if (c.sections & (1u << 5))
		bench_replay(&c);
	if (c.sections & (1u << 6))
		bench_travel(&c);
	if (keep_failed)
		printf("\nSOME MEASUREMENTS FAILED (see FAILED lines above)\n");
	return keep_failed ? 1 : 0;
}
