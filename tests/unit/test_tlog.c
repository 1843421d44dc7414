/* test_tlog.c - the transaction log on its own (tlog.h), below the store:
 * segment roll and the files it leaves, group commit (several threads
 * appending and syncing share fsyncs, and a sync returns only once its own
 * append is durable), a torn tail cut at every offset of the last
 * transaction with everything before it kept, damage in the middle reported
 * and skipped (never cut), and injected I/O failures (tests/fakes/io_fake.c):
 * a failed append is cut back, a failed fsync or roll is sticky. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "format.h"
#include "fx.h"
#include "io_fake.h"
#include "rec.h"
#include "tlog.h"

#define SEED 0x5eed5eed12345678ull
#define MAX_EPOCHS 512
#define NAME_CAP 32 /* "user.k" and any unsigned */

struct tl {
	char dir[64];		       /* the store directory (temporary) */
	int dirfd;		       /* open on dir */
	struct io_fake f;	       /* the I/O table the log uses */
	struct mmsb_diag diag;	       /* counts messages by level */
	struct tlog_opts o;	       /* options of every open */
	struct mmsb_tlog *log;	       /* open log, or NULL */
	unsigned n_err, n_notice;      /* diag messages at ERR / NOTICE since the last reset */
	uint32_t seg[MAX_EPOCHS + 1];  /* where the append of epoch e landed */
	uint64_t off[MAX_EPOCHS + 1];
	uint64_t len[MAX_EPOCHS + 1];  /* bytes of its frames */
	uint64_t seen[MAX_EPOCHS + 1]; /* epochs the last scan delivered, in order */
	unsigned n_seen;
};

static void count_diag(void *arg, int level, const char *msg)
{
	struct tl *t = arg;

	if (level == MMSB_DIAG_ERR)
		t->n_err++;
	if (level == MMSB_DIAG_NOTICE)
		t->n_notice++;
	if (getenv("MMSB_TEST_DIAG"))
		fprintf(stderr, "diag %d: %s\n", level, msg);
}

/* Records of epoch e: 1 + e % 3 SETXATTR frames on node e, of varied
 * lengths, whose bytes are a function of (e, k). */
static unsigned n_recs(uint64_t e)
{
	return 1 + (unsigned)(e % 3);
}

static void make_rec(uint64_t e, unsigned k, uint8_t *val, char *name, struct mmsb_rec *r)
{
	uint32_t vlen = (uint32_t)((e * 7 + k * 13) % 50);

	memset(val, (int)(e + k), vlen);
	snprintf(name, NAME_CAP, "user.k%u", k);
	memset(r, 0, sizeof(*r));
	r->type = MMSB_FR_SETXATTR;
	r->epoch = e;
	r->node = e;
	r->time = (int64_t)e * 1000;
	r->u.xattr.name_len = (uint16_t)strlen(name);
	r->u.xattr.name = name;
	r->u.xattr.value_len = vlen;
	r->u.xattr.value = val;
}

/* The frames of transaction e (its records, then its COMMIT), plus `extra`
 * value bytes in its first record (a large transaction). */
static void txn_frames(uint64_t e, uint32_t extra, struct mmsb_buf *out)
{
	struct mmsb_rec r;
	unsigned k;

	out->len = 0;
	for (k = 0; k < n_recs(e); k++) {
		uint8_t *val = calloc(1, 64 + extra);
		char name[NAME_CAP];

		assert_non_null(val);
		make_rec(e, k, val, name, &r);
		if (k == 0 && extra) {
			memset(val + r.u.xattr.value_len, 0xee, extra);
			r.u.xattr.value_len += extra;
		}
		assert_true(mmsb_rec_encode(&r, SEED, out) > 0);
		free(val);
	}
	memset(&r, 0, sizeof(r));
	r.type = MMSB_FR_COMMIT;
	r.epoch = e;
	r.time = (int64_t)e * 1000;
	r.u.commit.n_frames = n_recs(e);
	r.u.commit.source = 1;
	r.u.commit.changed = e;
	assert_true(mmsb_rec_encode(&r, SEED, out) > 0);
}

/* Recovery callback: every transaction delivered must be exactly what
 * txn_frames made (nothing before a cut is lost or altered). */
static int collect(void *arg, const struct tlog_txn *x)
{
	struct tl *t = arg;
	unsigned k;

	assert_true(t->n_seen < MAX_EPOCHS);
	t->seen[t->n_seen++] = x->epoch;
	assert_int_equal(x->n, n_recs(x->epoch));
	assert_int_equal(x->changed, x->epoch);
	assert_int_equal(x->time, (int64_t)x->epoch * 1000);
	for (k = 0; k < x->n; k++) {
		const struct mmsb_rec *r = &x->recs[k];
		struct mmsb_rec want;
		uint8_t val[64];
		char name[NAME_CAP];

		make_rec(x->epoch, k, val, name, &want);
		assert_int_equal(r->type, MMSB_FR_SETXATTR);
		assert_int_equal(r->epoch, x->epoch);
		assert_int_equal(r->node, x->epoch);
		assert_int_equal(r->u.xattr.name_len, want.u.xattr.name_len);
		assert_memory_equal(r->u.xattr.name, name, want.u.xattr.name_len);
		if (r->u.xattr.value_len == want.u.xattr.value_len && want.u.xattr.value_len)
			assert_memory_equal(r->u.xattr.value, val, want.u.xattr.value_len);
		else if (r->u.xattr.value_len != want.u.xattr.value_len)
			assert_true(k == 0 && r->u.xattr.value_len > want.u.xattr.value_len); /* extra */
	}
	return 0;
}

static int setup(void **state)
{
	struct tl *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	strcpy(t->dir, "/tmp/mmsb-tlog-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	t->dirfd = open(t->dir, O_RDONLY | O_DIRECTORY);
	assert_true(t->dirfd >= 0);
	io_fake_init(&t->f);
	t->diag = (struct mmsb_diag){.fn = count_diag, .arg = t, .level = MMSB_DIAG_DEBUG};
	t->o = (struct tlog_opts){.io = &t->f.ops, .diag = &t->diag, .seed = SEED,
				  .segment_bytes = 64u << 20};
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tl *t = *state;

	mmsb_tlog_close(t->log);
	close(t->dirfd);
	fx_rmtree(t->dir);
	free(t);
	return 0;
}

/* Open and recover from epoch `from` (0: all); returns recover's result. */
static int reopen(struct tl *t, uint64_t from, struct tlog_recovery *res)
{
	mmsb_tlog_close(t->log);
	t->log = NULL;
	t->n_seen = t->n_err = t->n_notice = 0;
	assert_int_equal(mmsb_tlog_open(t->dirfd, &t->o, &t->log), 0);
	return mmsb_tlog_recover(t->log, from, collect, t, res);
}

/* Append transaction e (txn_frames); where it landed goes to t->seg/off/len. */
static int try_append(struct tl *t, uint64_t e, uint32_t extra)
{
	struct mmsb_buf b = {0};
	int rc;

	txn_frames(e, extra, &b);
	rc = mmsb_tlog_append(t->log, e, b.p, b.len, &t->seg[e], &t->off[e]);
	t->len[e] = b.len;
	mmsb_buf_free(&b);
	return rc;
}

static void append_big(struct tl *t, uint64_t e, uint32_t extra)
{
	assert_int_equal(try_append(t, e, extra), 0);
}

static void append(struct tl *t, uint64_t e)
{
	append_big(t, e, 0);
}

static void expect_seen(const struct tl *t, uint64_t first, uint64_t last)
{
	uint64_t e;

	assert_int_equal(t->n_seen, last + 1 - first);
	for (e = first; e <= last; e++)
		assert_int_equal(t->seen[e - first], e);
}

static char *seg_path(const struct tl *t, uint64_t first)
{
	static char p[128];

	snprintf(p, sizeof(p), "%s/%s/%016" PRIx64 ".log", t->dir, MMSB_LOG_DIR, first);
	return p;
}

static uint64_t file_size(const char *path)
{
	struct stat s;

	assert_int_equal(stat(path, &s), 0);
	return (uint64_t)s.st_size;
}

static void read_file(const char *path, struct mmsb_buf *b)
{
	int fd = open(path, O_RDONLY);
	uint64_t n = file_size(path);

	assert_true(fd >= 0);
	b->len = 0;
	assert_int_equal(mmsb_buf_reserve(b, n), 0);
	assert_int_equal(pread(fd, b->p, n, 0), (ssize_t)n);
	b->len = n;
	close(fd);
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, n, 0), (ssize_t)n);
	close(fd);
}

/* A fresh log (recovered empty) holding epochs 1..n; epoch `big` carries
 * `extra` more value bytes. */
static void log_of(struct tl *t, uint64_t n, uint64_t big, uint32_t extra)
{
	struct tlog_recovery res;
	uint64_t e;

	assert_int_equal(reopen(t, 0, &res), 0);
	for (e = 1; e <= n; e++)
		append_big(t, e, e == big ? extra : 0);
}

/* Close the log and read the file of the segment starting at `first`. */
static void close_and_read(struct tl *t, uint64_t first, struct mmsb_buf *b)
{
	mmsb_tlog_close(t->log);
	t->log = NULL;
	read_file(seg_path(t, first), b);
}

/* Close the log and flip a bit of byte off of the segment starting at
 * `first`.  Returns the file's size. */
static uint64_t damage_at(struct tl *t, uint64_t first, uint64_t off)
{
	struct mmsb_buf b = {0};
	uint64_t size;

	close_and_read(t, first, &b);
	assert_true(off < b.len);
	b.p[off] ^= 0x10;
	write_file(seg_path(t, first), b.p, b.len);
	size = b.len;
	mmsb_buf_free(&b);
	return size;
}

/* Open and recover the whole log: it finds `last`, n_damage damaged places
 * and a damaged end or not (the transactions seen are in t->seen). */
static void expect_recovery(struct tl *t, uint64_t last, uint32_t n_damage, bool end_damaged)
{
	struct tlog_recovery res;

	assert_int_equal(reopen(t, 0, &res), 0);
	assert_int_equal(res.last, last);
	assert_int_equal(res.n_damage, n_damage);
	assert_int_equal(res.end_damaged, end_damaged);
	assert_int_equal(res.n_header, 0);
}

/* ---- segment roll -------------------------------------------------------------- */

/* A segment rolls once it holds segment_bytes (never before its first
 * transaction, and a transaction never spans two): each file is named by
 * the first epoch in it, every frame reads back where append said it
 * landed, and recovery reads all of them in order, or from the segment
 * holding a later epoch. */
static void segment_roll(void **state)
{
	struct tl *t = *state;
	struct tlog_recovery res;
	struct tlog_stats s;
	struct mmsb_buf b = {0}, got = {0};
	uint64_t e, first[64], n_first = 0, kept;
	int dropped;

	t->o.segment_bytes = 1024;
	log_of(t, 60, 30, 5000); /* epoch 30: larger than a segment */
	for (e = 1; e <= 60; e++) {
		if (e == 1 || t->seg[e] != t->seg[e - 1]) {
			assert_true(e == 1 || t->seg[e] == t->seg[e - 1] + 1);
			assert_int_equal(t->off[e], MMSB_SEG_HDR_SIZE); /* a new segment starts with it */
			first[n_first++] = e;
		} else {
			assert_int_equal(t->off[e], t->off[e - 1] + t->len[e - 1]);
			assert_true(t->off[e] < t->o.segment_bytes); /* no roll while below the bound */
		}
		txn_frames(e, e == 30 ? 5000 : 0, &b);
		assert_int_equal(b.len, t->len[e]);
		assert_int_equal(mmsb_buf_reserve(&got, b.len), 0);
		assert_int_equal(mmsb_tlog_read(t->log, t->seg[e], t->off[e], got.p, b.len), 0);
		assert_memory_equal(got.p, b.p, b.len);
	}
	assert_true(n_first > 5);
	assert_int_equal(t->seg[31], t->seg[30] + 1); /* the big one fills its segment */
	mmsb_tlog_stats(t->log, &s);
	assert_int_equal(s.n_segments, n_first);
	assert_int_equal(s.first_epoch, 1);
	for (e = 0; e < n_first; e++) { /* the files: full ones at least the bound */
		uint64_t last = e + 1 < n_first ? first[e + 1] - 1 : 60;

		assert_int_equal(file_size(seg_path(t, first[e])), t->off[last] + t->len[last]);
		if (e + 1 < n_first)
			assert_true(t->off[last] + t->len[last] >= t->o.segment_bytes);
	}
	assert_int_equal(mmsb_tlog_sync(t->log), 0);

	expect_recovery(t, 60, 0, false);
	expect_seen(t, 1, 60);
	append(t, 61); /* appending resumes in the last segment */
	assert_int_equal(t->seg[61], t->seg[60]);
	assert_int_equal(mmsb_tlog_append(t->log, 63, b.p, b.len, &t->seg[0], &t->off[0]), -EINVAL);

	/* from a later epoch: the segment holding it, then on */
	for (e = n_first; e-- > 0;)
		if (first[e] <= 45)
			break;
	assert_int_equal(mmsb_tlog_scan_start(t->log, 45), first[e]);
	assert_int_equal(reopen(t, 45, &res), 0);
	expect_seen(t, first[e], 61);
	t->n_seen = 0;
	assert_int_equal(mmsb_tlog_scan_before(t->log, first[e], collect, t, &res), 0);
	expect_seen(t, 1, first[e] - 1);

	/* dropping: segments holding only epochs <= 40 go, as bytes_kept said */
	kept = mmsb_tlog_bytes_kept(t->log, 40);
	dropped = mmsb_tlog_drop_upto(t->log, 40);
	for (e = 0; e < n_first && first[e] <= 41; e++)
		;
	assert_int_equal(dropped, e - 1); /* all but the last segment starting at or before 41 */
	mmsb_tlog_stats(t->log, &s);
	assert_int_equal(s.bytes, kept);
	assert_int_equal(s.first_epoch, first[dropped]);
	assert_int_equal(access(seg_path(t, first[0]), F_OK), -1);
	assert_int_equal(access(seg_path(t, first[dropped]), F_OK), 0);
	assert_int_equal(mmsb_tlog_read(t->log, t->seg[1], t->off[1], got.p, 8), -ENOENT);
	mmsb_buf_free(&b);
	mmsb_buf_free(&got);
}

/* ---- group commit ---------------------------------------------------------------- */

#define GC_THREADS 8

/* An I/O table whose first fsync, once armed, waits until every thread
 * has appended: the other threads' syncs then arrive while it runs. */
struct gate {
	struct tl *t;
	struct mmsb_io_ops ops;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_mutex_t append_mu; /* appends are serial (the store's commit_mu) */
	bool armed;		   /* the next fsync waits for n_appended == GC_THREADS */
	unsigned n_appended;
	unsigned n_fsync;	   /* fsyncs seen */
	bool timed_out;
	uint64_t durable;	   /* bytes of the segment a finished fsync covered */
	uint64_t next_epoch;
};

static int gate_fsync(void *ctx, int fd)
{
	struct gate *g = ctx;
	struct stat s;
	int rc;

	if (fstat(fd, &s) < 0) /* what this fsync will cover at least */
		s.st_size = 0;
	pthread_mutex_lock(&g->mu);
	if (g->armed) {
		struct timespec until;

		g->armed = false;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 20;
		while (g->n_appended < GC_THREADS && !g->timed_out)
			if (pthread_cond_timedwait(&g->cond, &g->mu, &until) == ETIMEDOUT)
				g->timed_out = true;
	}
	pthread_mutex_unlock(&g->mu);
	rc = mmsb_io_posix.fsync(NULL, fd);
	pthread_mutex_lock(&g->mu);
	g->n_fsync++;
	if ((uint64_t)s.st_size > g->durable)
		g->durable = (uint64_t)s.st_size;
	pthread_mutex_unlock(&g->mu);
	return rc;
}

struct gc_arg {
	struct gate *g;
	uint64_t epoch, end; /* its transaction and where it ends */
	uint64_t durable;    /* what was durable when its sync returned */
	int rc;
};

static void *gc_thread(void *p)
{
	struct gc_arg *a = p;
	struct gate *g = a->g;
	struct mmsb_buf b = {0};
	uint32_t seg;
	uint64_t off;

	pthread_mutex_lock(&g->append_mu);
	a->epoch = ++g->next_epoch;
	txn_frames(a->epoch, 0, &b);
	a->rc = mmsb_tlog_append(g->t->log, a->epoch, b.p, b.len, &seg, &off);
	pthread_mutex_unlock(&g->append_mu);
	a->end = off + b.len;
	mmsb_buf_free(&b);
	pthread_mutex_lock(&g->mu);
	g->n_appended++;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->mu);
	if (a->rc == 0)
		a->rc = mmsb_tlog_sync(g->t->log);
	pthread_mutex_lock(&g->mu);
	a->durable = g->durable;
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

/* Eight threads append and sync while the first fsync is held up: the
 * others wait for it and then share one more, so two fsyncs at most serve
 * eight commits (one each without group commit), and no sync returns
 * before an fsync that started after its append has finished. */
static void group_commit(void **state)
{
	struct tl *t = *state;
	static struct gate g; /* outlives a failed assertion: teardown closes the log through it */
	struct gc_arg a[GC_THREADS];
	pthread_t th[GC_THREADS];
	struct tlog_stats s0, s1;
	unsigned i, n0;

	memset(&g, 0, sizeof(g));
	g.t = t;
	g.ops = mmsb_io_posix;
	g.ops.ctx = &g;
	g.ops.fsync = gate_fsync;
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cond, NULL);
	pthread_mutex_init(&g.append_mu, NULL);
	t->o.io = &g.ops;
	log_of(t, 0, 0, 0);
	mmsb_tlog_stats(t->log, &s0);
	n0 = g.n_fsync;
	g.armed = true;
	for (i = 0; i < GC_THREADS; i++) {
		a[i] = (struct gc_arg){.g = &g};
		assert_int_equal(pthread_create(&th[i], NULL, gc_thread, &a[i]), 0);
	}
	for (i = 0; i < GC_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_false(g.timed_out);
	for (i = 0; i < GC_THREADS; i++) {
		assert_int_equal(a[i].rc, 0);
		assert_true(a[i].durable >= a[i].end); /* its append was covered */
	}
	mmsb_tlog_stats(t->log, &s1);
	assert_true(s1.n_syncs - s0.n_syncs >= 1);
	assert_true(s1.n_syncs - s0.n_syncs <= 2);
	assert_int_equal(g.n_fsync - n0, s1.n_syncs - s0.n_syncs);
	assert_int_equal(mmsb_tlog_sync(t->log), 0); /* nothing new: no fsync */
	assert_int_equal(g.n_fsync - n0, s1.n_syncs - s0.n_syncs);
	expect_recovery(t, GC_THREADS, 0, false);
	expect_seen(t, 1, GC_THREADS);
	mmsb_tlog_close(t->log); /* it uses g's table */
	t->log = NULL;
	t->o.io = &t->f.ops;
	pthread_mutex_destroy(&g.mu);
	pthread_cond_destroy(&g.cond);
	pthread_mutex_destroy(&g.append_mu);
}

struct stress_arg {
	struct tl *t;
	pthread_mutex_t *mu;
	uint64_t *next;
	int rc;
};

static void *stress_thread(void *p)
{
	struct stress_arg *a = p;
	struct mmsb_buf b = {0};
	uint32_t seg;
	uint64_t off;
	int i;

	for (i = 0; i < 50 && a->rc == 0; i++) {
		pthread_mutex_lock(a->mu);
		++*a->next;
		txn_frames(*a->next, 0, &b);
		a->rc = mmsb_tlog_append(a->t->log, *a->next, b.p, b.len, &seg, &off);
		pthread_mutex_unlock(a->mu);
		if (a->rc == 0)
			a->rc = mmsb_tlog_sync(a->t->log);
	}
	mmsb_buf_free(&b);
	return NULL;
}

/* Four threads each commit 50 transactions (append + sync) across segment
 * rolls: every sync succeeds, never more fsyncs than syncs, and recovery
 * reads all 200 epochs in order. */
static void group_commit_stress(void **state)
{
	struct tl *t = *state;
	struct stress_arg a[4];
	pthread_t th[4];
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	uint64_t next = 0;
	struct tlog_stats s;
	unsigned i;

	t->o.segment_bytes = 4096;
	log_of(t, 0, 0, 0);
	for (i = 0; i < 4; i++) {
		a[i] = (struct stress_arg){.t = t, .mu = &mu, .next = &next};
		assert_int_equal(pthread_create(&th[i], NULL, stress_thread, &a[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(a[i].rc, 0);
	}
	mmsb_tlog_stats(t->log, &s);
	assert_true(s.n_syncs <= 200);
	assert_true(s.n_segments > 1);
	expect_recovery(t, 200, 0, false);
	expect_seen(t, 1, 200);
}

/* ---- torn tail ---------------------------------------------------------------------- */

/* Five transactions; the last one's bytes end at every offset from its
 * start to its last byte (a crash during its append).  Recovery keeps
 * epochs 1..4 exactly, reports no damage, cuts the file back to the end of
 * epoch 4 and appends after it. */
static void torn_tail_every_offset(void **state)
{
	struct tl *t = *state;
	struct mmsb_buf whole = {0};
	const char *path = seg_path(t, 1);
	uint64_t cut, start;

	log_of(t, 5, 5, 100); /* epoch 5: three frames, 300+ bytes */
	close_and_read(t, 1, &whole);
	start = t->off[5];
	assert_int_equal(whole.len, start + t->len[5]);
	for (cut = start; cut < whole.len; cut++) {
		write_file(path, whole.p, cut);
		expect_recovery(t, 4, 0, false);
		expect_seen(t, 1, 4);
		assert_int_equal(t->n_err, 0);
		assert_int_equal(t->n_notice, cut > start ? 1 : 0);
		assert_int_equal(file_size(path), start); /* the torn bytes are cut off */
		append(t, 5);
		assert_int_equal(t->off[5], start);
		assert_int_equal(mmsb_tlog_sync(t->log), 0);
		expect_recovery(t, 5, 0, false);
	}
	mmsb_buf_free(&whole);
}

/* The file may also end in blocks allocated but never written: the last
 * transaction's bytes zero from any of its frame boundaries to the end,
 * the size unchanged.  That is a torn tail too. */
static void torn_tail_unwritten_blocks(void **state)
{
	struct tl *t = *state;
	struct mmsb_buf whole = {0}, frames = {0}, torn = {0};
	const char *path = seg_path(t, 1);
	uint64_t at, start;
	unsigned n = 0;

	log_of(t, 5, 0, 0);
	close_and_read(t, 1, &whole);
	start = t->off[5];
	txn_frames(5, 0, &frames);
	for (at = 0; at < frames.len; n++) { /* each frame boundary of epoch 5 */
		struct mmsb_rec r;
		int64_t flen = mmsb_rec_decode(frames.p + at, frames.len - at, SEED, &r, NULL);

		assert_true(flen > 0);
		torn.len = 0;
		assert_int_equal(mmsb_buf_put(&torn, whole.p, whole.len), 0);
		memset(torn.p + start + at, 0, whole.len - start - at);
		write_file(path, torn.p, torn.len);
		expect_recovery(t, 4, 0, false);
		expect_seen(t, 1, 4);
		assert_int_equal(file_size(path), start);
		at += (uint64_t)flen;
	}
	assert_int_equal(n, n_recs(5) + 1);
	mmsb_buf_free(&whole);
	mmsb_buf_free(&frames);
	mmsb_buf_free(&torn);
}

/* ---- damage ---------------------------------------------------------------------------- */

/* A checksum mismatch in a frame of epoch 3 of 6, every byte present: it
 * is reported (ERR, n_damage), epoch 3 is skipped, the scan resumes at
 * epoch 4 (the callback sees the jump), and nothing is cut off. */
static void damaged_checksum_in_the_middle(void **state)
{
	struct tl *t = *state;
	uint64_t size;

	log_of(t, 6, 0, 0);
	size = damage_at(t, 1, t->off[3] + MMSB_FR_HDR_SIZE + 2); /* a payload byte of its first frame */
	expect_recovery(t, 6, 1, false);
	assert_int_equal(t->n_seen, 5);
	assert_int_equal(t->seen[1], 2);
	assert_int_equal(t->seen[2], 4); /* the jump over what was lost */
	assert_int_equal(t->seen[4], 6);
	assert_true(t->n_err >= 1);
	assert_int_equal(file_size(seg_path(t, 1)), size); /* damage is never cut */
}

/* The last frame of the log, complete but failing its checksum, was
 * written whole: damage, not a torn tail.  Reported, end_damaged, kept. */
static void damaged_last_frame_is_not_torn(void **state)
{
	struct tl *t = *state;
	uint64_t size;

	log_of(t, 4, 0, 0);
	size = damage_at(t, 1, t->off[4] + t->len[4] - 3); /* in the COMMIT of epoch 4 */
	expect_recovery(t, 3, 1, true);
	expect_seen(t, 1, 3);
	assert_true(t->n_err >= 1);
	assert_int_equal(file_size(seg_path(t, 1)), size);
}

/* Damage in a segment that is not the last: the scan skips to the next
 * segment and goes on; the file is kept whole. */
static void damage_skips_to_the_next_segment(void **state)
{
	struct tl *t = *state;
	uint64_t e, first2 = 0, size;

	t->o.segment_bytes = 1024;
	log_of(t, 20, 0, 0);
	for (e = 2; e <= 20 && !first2; e++)
		if (t->seg[e] != t->seg[1])
			first2 = e;
	assert_true(first2 > 2);
	assert_true(t->seg[20] > t->seg[first2]); /* at least three segments */
	size = damage_at(t, 1, t->off[first2 - 1] + MMSB_FR_HDR_SIZE); /* the last transaction of segment 1 */
	expect_recovery(t, 20, 1, false);
	assert_int_equal(t->n_seen, 19);
	assert_int_equal(t->seen[first2 - 2], first2); /* first2 - 1 is missing */
	assert_int_equal(file_size(seg_path(t, 1)), size);
}

/* ---- injected I/O failures --------------------------------------------------------------- */

/* A short write then ENOSPC in the middle of an append: the append fails,
 * the partial frames are cut off, the same epoch appends again, and
 * recovery sees no damage. */
static void failed_append_is_cut_back(void **state)
{
	struct tl *t = *state;
	uint64_t end;

	log_of(t, 3, 0, 0);
	end = t->off[3] + t->len[3];
	t->f.short_at = t->f.calls[IO_FAKE_PWRITE] + 1;
	io_fake_fail(&t->f, IO_FAKE_PWRITE, 2, -ENOSPC, false);
	assert_int_equal(try_append(t, 4, 0), -ENOSPC);
	assert_int_equal(file_size(seg_path(t, 1)), end);
	assert_false(mmsb_tlog_failed(t->log));
	append(t, 4);
	assert_int_equal(t->off[4], end);
	assert_int_equal(mmsb_tlog_sync(t->log), 0);
	expect_recovery(t, 4, 0, false);
	expect_seen(t, 1, 4);
}

/* An fsync failure is sticky and never retried: sync fails, and so does
 * every later append (-EROFS) and sync, without another fsync. */
static void fsync_failure_is_sticky(void **state)
{
	struct tl *t = *state;
	unsigned n;

	log_of(t, 1, 0, 0);
	io_fake_fail(&t->f, IO_FAKE_FSYNC, 1, -EIO, false);
	assert_int_equal(mmsb_tlog_sync(t->log), -EIO);
	assert_true(mmsb_tlog_failed(t->log));
	n = t->f.calls[IO_FAKE_FSYNC];
	assert_int_equal(try_append(t, 2, 0), -EROFS);
	assert_int_equal(mmsb_tlog_sync(t->log), -EIO);
	assert_int_equal(t->f.calls[IO_FAKE_FSYNC], n);
}

/* Rolling to a new segment fails: on ENOSPC the log stays usable and the
 * next append rolls; on EIO it fails for good (-EROFS after), and what was
 * committed before is all there at the next open. */
static void failed_roll(void **state)
{
	struct tl *t = *state;

	t->o.segment_bytes = 1; /* every transaction after the first in a segment rolls */
	log_of(t, 1, 0, 0);
	io_fake_fail(&t->f, IO_FAKE_OPEN, 1, -ENOSPC, false);
	assert_int_equal(try_append(t, 2, 0), -ENOSPC);
	assert_false(mmsb_tlog_failed(t->log));
	assert_int_equal(access(seg_path(t, 2), F_OK), -1);
	append(t, 2);
	assert_int_equal(t->seg[2], t->seg[1] + 1);
	assert_int_equal(access(seg_path(t, 2), F_OK), 0);
	io_fake_fail(&t->f, IO_FAKE_OPEN, 1, -EIO, false);
	assert_int_equal(try_append(t, 3, 0), -EIO);
	assert_true(mmsb_tlog_failed(t->log));
	assert_int_equal(try_append(t, 3, 0), -EROFS);
	expect_recovery(t, 2, 0, false);
	expect_seen(t, 1, 2);
	append(t, 3); /* and it goes on after a reopen */
	assert_int_equal(t->seg[3], t->seg[2] + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(segment_roll, setup, teardown),
		cmocka_unit_test_setup_teardown(group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(group_commit_stress, setup, teardown),
		cmocka_unit_test_setup_teardown(torn_tail_every_offset, setup, teardown),
		cmocka_unit_test_setup_teardown(torn_tail_unwritten_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(damaged_checksum_in_the_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(damaged_last_frame_is_not_torn, setup, teardown),
		cmocka_unit_test_setup_teardown(damage_skips_to_the_next_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(failed_append_is_cut_back, setup, teardown),
		cmocka_unit_test_setup_teardown(fsync_failure_is_sticky, setup, teardown),
		cmocka_unit_test_setup_teardown(failed_roll, setup, teardown),
	};

	return cmocka_run_group_tests_name("tlog", tests, NULL, NULL);
}
