/* test_conc.c - concurrent transactions checked against a serial model.
 *
 * N_WRITERS threads run random transactions through the public API at the
 * same time: writes, truncates and xattr sets on pages shared by all of them
 * (never removed), creates and unlinks of pages private to one thread (so
 * that each thread knows which of its operations must succeed), multi-op
 * transactions, aborted ones, "stamp" transactions that fill both stamp
 * pages with one value (written in halves, with a yield between), and page
 * writes (mmsb_page_write, the parallel path: random bytes into a shared or
 * private page, or a whole third stamp page).  Every committed transaction
 * or page write is recorded with the epoch it got and its operations.
 * Meanwhile N_READERS threads read the head (mmsb_read, mmsb_getattr,
 * mmsb_store_head) and snapshots of it, and check that they only ever see
 * committed states: a stamp page is never torn (every byte belongs to one
 * write), never shows the stamp of an aborted transaction, both stamp pages
 * of a transaction agree inside one snapshot, and the head never goes back.
 * Automatic checkpoints run during the storm.
 *
 * Afterwards:
 *   - the epochs are unique and dense: head before + 1 .. head after;
 *   - the recorded transactions replayed serially in epoch order on a small
 *     in-memory model give exactly the head's pages (names, sizes, bytes,
 *     the xattr);
 *   - the same after closing and reopening the store;
 *   - snapshots (mmsb_snap_*) of several epochs equal the model replayed up
 *     to each of them.
 *
 * Nothing here is timed: the outcome does not depend on the interleaving.
 * Worker threads never call cmocka (it is not thread-safe): they record the
 * first failure, stop, and the main thread reports it.
 * MMSB_CONC_TXNS sets the transactions per writer (700), MMSB_CONC_SEED the
 * seed (1).  A watchdog aborts with each writer's state when no transaction
 * ends for MMSB_CONC_STALL_S seconds (60): a deadlock, not a slow run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fx.h"
#include "mmsb.h"

#define N_WRITERS 4		  /* writer threads */
#define N_READERS 2		  /* reader threads */
#define N_SHARED 6		  /* pages every writer changes */
#define N_PRIV 3		  /* private page names per writer */
#define N_STAMP 2		  /* stamp pages, always written together */
#define STAMP_BYTES 8192u	  /* size of a stamp page */
#define WRITE_OFF_MAX (48u << 10) /* writes start below this */
#define WRITE_LEN_MAX 4096u	  /* and are at most this long */
#define TRUNC_MAX (64u << 10)	  /* truncates to at most this */
#define PAGE_MAX TRUNC_MAX	  /* no page grows past this (TRUNC_MAX >= WRITE_OFF_MAX + WRITE_LEN_MAX) */
#define XV_MAX 32u		  /* xattr value length */
#define OPS_MAX 4		  /* operations per transaction */
#define XNAME "user.c"		  /* the one xattr name used */

#define STAMP_BIT (1ull << 62)	/* set in every stamp */
#define POISON_BIT (1ull << 61) /* stamps of transactions that abort */

/* ---- operations and their bytes ------------------------------------------ */

enum op_kind { OP_WRITE = 1, OP_TRUNC, OP_CREATE, OP_UNLINK, OP_SETX };

/* One successful operation of a committed transaction. */
struct op {
	uint8_t kind;  /* enum op_kind */
	int slot;      /* create/unlink: private name index (writer * N_PRIV + k) */
	uint64_t id;   /* the page (create: the new page's id) */
	uint64_t off;  /* write: offset; truncate: new size */
	uint32_t len;  /* write: bytes; setx: value length */
	uint64_t seed; /* write, setx: what op_bytes() makes (STAMP_BIT: a stamp) */
};

/* A committed transaction. */
struct txrec {
	uint64_t epoch;		 /* what commit returned */
	unsigned writer;	 /* which thread */
	unsigned n_ops;		 /* used entries of ops */
	struct op ops[OPS_MAX]; /* in the order they were applied */
};

static uint8_t stamp_byte(uint64_t stamp)
{
	return (uint8_t)((stamp * 0x9E3779B97F4A7C15ull) >> 56);
}

/* A stamp page: the stamp, then one byte value derived from it. */
static void stamp_fill(uint8_t *buf, uint64_t stamp)
{
	memcpy(buf, &stamp, sizeof(stamp));
	memset(buf + sizeof(stamp), stamp_byte(stamp), STAMP_BYTES - sizeof(stamp));
}

/* Is buf a whole stamp page?  Returns its stamp, or 0 when torn. */
static uint64_t stamp_check(const uint8_t *buf)
{
	uint64_t stamp;
	uint8_t b;

	memcpy(&stamp, buf, sizeof(stamp));
	if (!(stamp & STAMP_BIT))
		return 0;
	b = stamp_byte(stamp);
	for (size_t i = sizeof(stamp); i < STAMP_BYTES; i++)
		if (buf[i] != b)
			return 0;
	return stamp;
}

/* The bytes of a write or setx (len of them) into buf. */
static void op_bytes(const struct op *o, uint8_t *buf)
{
	static _Thread_local uint8_t page[STAMP_BYTES];
	uint64_t s = o->seed | 1;

	if (o->seed & STAMP_BIT) { /* the slice [off, off + len) of a stamp page */
		stamp_fill(page, o->seed);
		memcpy(buf, page + o->off, o->len);
		return;
	}
	for (uint32_t i = 0; i < o->len; i++)
		buf[i] = (uint8_t)fx_rnd_next(&s);
}

/* ---- shared state of a run ------------------------------------------------ */

struct run {
	char tmp[64];			   /* temporary directory */
	char dir[80];			   /* the store inside it */
	struct mmsb_store_opts o;	   /* every open uses these */
	struct mmsb_store *st;		   /* the open store */
	uint64_t shared[N_SHARED];	   /* ids of the shared pages */
	uint64_t stamp[N_STAMP];	   /* ids of the stamp pages */
	uint64_t pstamp;		   /* a stamp page written only by whole-page page writes */
	uint64_t head0;			   /* head before the writers start */
	unsigned txns;			   /* transactions per writer */
	uint64_t seed;			   /* base seed */
	atomic_int writers_left;	   /* writers still running */
	atomic_ullong progress;		   /* transactions ended so far (the watchdog's) */
	atomic_int phase[N_WRITERS];	   /* what each writer does now (enum phase) */
	atomic_int failed;		   /* set by the first failure */
	pthread_mutex_t fail_mu;	   /* guards fail_msg */
	char fail_msg[512];		   /* the first failure */
	atomic_uint reader_ids;		   /* hands out reader numbers */
	atomic_ullong reader_iters;	   /* reads the readers made */
	atomic_ullong reader_snaps;	   /* snapshots the readers checked */
	struct txrec *rec[N_WRITERS];	   /* committed transactions per writer */
	size_t n_rec[N_WRITERS];	   /* their number */
	atomic_ullong aborted;		   /* transactions aborted on purpose */
};

static void tfail(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tfail(struct run *r, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&r->fail_mu);
	if (!atomic_load(&r->failed)) {
		va_start(ap, fmt);
		vsnprintf(r->fail_msg, sizeof(r->fail_msg), fmt, ap);
		va_end(ap);
		atomic_store(&r->failed, 1);
	}
	pthread_mutex_unlock(&r->fail_mu);
}

static void quiet(void *arg, int level, const char *msg)
{
	(void)arg;
	if (getenv("MMSB_TEST_DIAG"))
		fprintf(stderr, "diag %d: %s\n", level, msg);
	(void)level;
	(void)msg;
}

static void priv_name(char *buf, size_t cap, int slot)
{
	snprintf(buf, cap, "p%d_%d", slot / N_PRIV, slot % N_PRIV);
}

/* ---- writers --------------------------------------------------------------- */

/* Where a writer is, for the watchdog's report. */
enum phase { PH_IDLE, PH_BEGIN, PH_OPS, PH_COMMIT, PH_ABORT, PH_PAGEW, PH_DONE };
static const char *const phase_name[] = {"between transactions", "in begin", "in its operations",
					 "in commit", "in abort", "in a page write", "done"};

struct writer {
	struct run *r;		 /* the run */
	unsigned w;		 /* writer number */
	uint64_t rng;		 /* its random state */
	uint64_t priv[N_PRIV];	 /* ids of its private pages, 0 = none (committed state) */
	uint64_t seq;		 /* stamps issued */
	size_t cap;		 /* allocated records */
};

/* A page to change: a shared one or one of the writer's private ones. */
static uint64_t pick_page(struct writer *wr, const uint64_t *priv)
{
	unsigned k = fx_rnd(&wr->rng, N_PRIV);

	if (priv[k] && fx_rnd(&wr->rng, 5) < 2)
		return priv[k];
	return wr->r->shared[fx_rnd(&wr->rng, N_SHARED)];
}

/* One random operation into o, applied through txn.  priv is the
 * transaction's view of the private pages.  Returns 0, or -1 after a
 * failure was recorded. */
static int random_op(struct writer *wr, struct mmsb_txn *txn, uint64_t *priv, struct op *o)
{
	static _Thread_local uint8_t buf[WRITE_LEN_MAX];
	struct run *r = wr->r;
	unsigned k = fx_rnd(&wr->rng, N_PRIV), c = fx_rnd(&wr->rng, 100);
	char name[32];
	struct mmsb_attr a;
	ssize_t n;
	int rc;

	memset(o, 0, sizeof(*o));
	o->slot = (int)(wr->w * N_PRIV + k);
	priv_name(name, sizeof(name), o->slot);
	if (c < 8) { /* create or unlink a private page */
		if (priv[k] == 0) {
			o->kind = OP_CREATE;
			rc = mmsb_txn_create(txn, MMSB_ROOT_ID, name, MMSB_T_PAGE, 0644, 0, 0, NULL, &a);
			if (rc < 0) {
				tfail(r, "writer %u: create %s: %d", wr->w, name, rc);
				return -1;
			}
			o->id = priv[k] = a.id;
		} else {
			o->kind = OP_UNLINK;
			o->id = priv[k];
			rc = mmsb_txn_unlink(txn, MMSB_ROOT_ID, name);
			if (rc < 0) {
				tfail(r, "writer %u: unlink %s: %d", wr->w, name, rc);
				return -1;
			}
			priv[k] = 0;
		}
		return 0;
	}
	o->id = pick_page(wr, priv);
	if (c < 18) {
		o->kind = OP_TRUNC;
		o->off = fx_rnd(&wr->rng, TRUNC_MAX + 1);
		rc = mmsb_txn_truncate(txn, o->id, o->off);
		if (rc < 0) {
			tfail(r, "writer %u: truncate %" PRIu64 " to %" PRIu64 ": %d", wr->w, o->id, o->off, rc);
			return -1;
		}
	} else if (c < 26) {
		o->kind = OP_SETX;
		o->len = 1 + fx_rnd(&wr->rng, XV_MAX);
		o->seed = fx_rnd_next(&wr->rng) & ~(STAMP_BIT | POISON_BIT);
		op_bytes(o, buf);
		rc = mmsb_txn_setxattr(txn, o->id, XNAME, buf, o->len, 0);
		if (rc < 0) {
			tfail(r, "writer %u: setxattr %" PRIu64 ": %d", wr->w, o->id, rc);
			return -1;
		}
	} else {
		o->kind = OP_WRITE;
		o->off = fx_rnd(&wr->rng, WRITE_OFF_MAX);
		o->len = 1 + fx_rnd(&wr->rng, WRITE_LEN_MAX);
		o->seed = fx_rnd_next(&wr->rng) & ~(STAMP_BIT | POISON_BIT);
		op_bytes(o, buf);
		n = mmsb_txn_write(txn, o->id, o->off, buf, o->len);
		if (n != (ssize_t)o->len) {
			tfail(r, "writer %u: write %" PRIu64 " @%" PRIu64 "+%u: %zd", wr->w, o->id, o->off, o->len, n);
			return -1;
		}
	}
	return 0;
}

/* Write both stamp pages with one stamp (poisoned: then aborted), in
 * halves: first halves, a yield, second halves, so that a reader that could
 * see a transaction in flight would find torn or poisoned pages. */
static int stamp_ops(struct writer *wr, struct mmsb_txn *txn, bool poison, struct txrec *t)
{
	static _Thread_local uint8_t buf[STAMP_BYTES];
	uint64_t stamp = STAMP_BIT | ((uint64_t)wr->w << 32) | ++wr->seq;
	ssize_t n;

	if (poison)
		stamp |= POISON_BIT;
	stamp_fill(buf, stamp);
	for (unsigned half = 0; half < 2; half++) {
		for (unsigned i = 0; i < N_STAMP; i++) {
			struct op *o = &t->ops[t->n_ops++];

			memset(o, 0, sizeof(*o));
			o->kind = OP_WRITE;
			o->id = wr->r->stamp[i];
			o->off = half * (STAMP_BYTES / 2);
			o->len = STAMP_BYTES / 2;
			o->seed = stamp;
			n = mmsb_txn_write(txn, o->id, o->off, buf + o->off, o->len);
			if (n != (ssize_t)o->len) {
				tfail(wr->r, "writer %u: stamp write: %zd", wr->w, n);
				return -1;
			}
		}
		sched_yield();
	}
	return 0;
}

/* Keep committed transaction t (epoch) for the replay. */
static int keep(struct writer *wr, struct txrec *t, uint64_t epoch, uint64_t *last)
{
	struct run *r = wr->r;

	if (epoch <= *last) {
		tfail(r, "writer %u: epoch %" PRIu64 " after its own %" PRIu64, wr->w, epoch, *last);
		return -1;
	}
	*last = epoch;
	t->epoch = epoch;
	if (r->n_rec[wr->w] == wr->cap) {
		wr->cap = wr->cap ? 2 * wr->cap : 256;
		r->rec[wr->w] = realloc(r->rec[wr->w], wr->cap * sizeof(*t));
		if (!r->rec[wr->w]) {
			tfail(r, "writer %u: out of memory", wr->w);
			return -1;
		}
	}
	r->rec[wr->w][r->n_rec[wr->w]++] = *t;
	return 0;
}

/* One mmsb_page_write (its own epoch, in parallel with other page writes):
 * a whole stamp page, or random bytes into a shared or private page. */
static int page_write_op(struct writer *wr, struct txrec *t, uint64_t *epoch)
{
	static _Thread_local uint8_t buf[STAMP_BYTES > WRITE_LEN_MAX ? STAMP_BYTES : WRITE_LEN_MAX];
	struct op *o = &t->ops[t->n_ops++];
	ssize_t n;

	memset(o, 0, sizeof(*o));
	o->kind = OP_WRITE;
	if (fx_rnd(&wr->rng, 2) == 0) {
		o->id = wr->r->pstamp;
		o->len = STAMP_BYTES;
		o->seed = STAMP_BIT | ((uint64_t)wr->w << 32) | ++wr->seq;
	} else {
		o->id = pick_page(wr, wr->priv);
		o->off = fx_rnd(&wr->rng, WRITE_OFF_MAX);
		o->len = 1 + fx_rnd(&wr->rng, WRITE_LEN_MAX);
		o->seed = fx_rnd_next(&wr->rng) & ~(STAMP_BIT | POISON_BIT);
	}
	op_bytes(o, buf);
	n = mmsb_page_write(wr->r->st, MMSB_SRC_USER, o->id, o->off, buf, o->len, epoch);
	if (n != (ssize_t)o->len) {
		tfail(wr->r, "writer %u: page write %" PRIu64 " @%" PRIu64 "+%u: %zd", wr->w, o->id, o->off, o->len, n);
		return -1;
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct writer *wr = arg;
	struct run *r = wr->r;
	uint64_t last = 0;

	for (unsigned i = 0; i < r->txns && !atomic_load(&r->failed); i++) {
		struct mmsb_txn *txn;
		struct txrec t = {.writer = wr->w};
		uint64_t priv[N_PRIV], epoch = 0;
		unsigned kind = fx_rnd(&wr->rng, 100);
		bool abort_it = kind < 10 || (kind >= 90 && kind < 93);
		int rc;

		if (kind >= 60 && kind < 90) {
			atomic_store(&r->phase[wr->w], PH_PAGEW);
			rc = page_write_op(wr, &t, &epoch);
			atomic_store(&r->phase[wr->w], PH_IDLE);
			if (rc < 0)
				break;
			atomic_fetch_add(&r->progress, 1);
			if (epoch && keep(wr, &t, epoch, &last) < 0)
				break;
			continue;
		}
		memcpy(priv, wr->priv, sizeof(priv));
		atomic_store(&r->phase[wr->w], PH_BEGIN);
		rc = mmsb_txn_begin(r->st, MMSB_SRC_USER, &txn);
		atomic_store(&r->phase[wr->w], PH_OPS);
		if (rc < 0) {
			tfail(r, "writer %u: begin: %d", wr->w, rc);
			break;
		}
		if (kind >= 90) { /* a stamp transaction; a few of them abort */
			rc = stamp_ops(wr, txn, abort_it, &t);
		} else {
			unsigned n = 1 + fx_rnd(&wr->rng, OPS_MAX);

			rc = 0;
			for (unsigned j = 0; j < n && rc == 0; j++)
				rc = random_op(wr, txn, priv, &t.ops[t.n_ops++]);
		}
		if (rc < 0) {
			mmsb_txn_abort(txn);
			break;
		}
		if (abort_it) {
			atomic_store(&r->phase[wr->w], PH_ABORT);
			mmsb_txn_abort(txn);
			atomic_store(&r->phase[wr->w], PH_IDLE);
			atomic_fetch_add(&r->aborted, 1);
			atomic_fetch_add(&r->progress, 1);
			continue;
		}
		atomic_store(&r->phase[wr->w], PH_COMMIT);
		rc = mmsb_txn_commit(txn, &epoch);
		atomic_store(&r->phase[wr->w], PH_IDLE);
		atomic_fetch_add(&r->progress, 1);
		if (rc < 0) {
			tfail(r, "writer %u: commit: %d", wr->w, rc);
			break;
		}
		memcpy(wr->priv, priv, sizeof(priv));
		if (epoch == 0)
			continue; /* changed nothing: no epoch, nothing to replay */
		if (keep(wr, &t, epoch, &last) < 0)
			break;
	}
	atomic_store(&r->phase[wr->w], PH_DONE);
	atomic_fetch_sub(&r->writers_left, 1);
	return NULL;
}

/* ---- the reader ------------------------------------------------------------ */

static void *reader_main(void *arg)
{
	struct run *r = arg;
	static _Thread_local uint8_t buf[STAMP_BYTES], buf2[STAMP_BYTES];
	uint64_t rng = r->seed * 77 + 5 + atomic_fetch_add(&r->reader_ids, 1), last_head = 0, iters = 0, snaps = 0;
	struct mmsb_attr a;

	do {
		uint64_t h = mmsb_store_head(r->st), s;
		unsigned i = fx_rnd(&rng, N_STAMP + 1); /* N_STAMP: the page-write stamp page */
		uint64_t sid = i < N_STAMP ? r->stamp[i] : r->pstamp;
		ssize_t n;
		int rc;

		if (h < last_head) {
			tfail(r, "reader: head went back from %" PRIu64 " to %" PRIu64, last_head, h);
			break;
		}
		last_head = h;
		n = mmsb_read(r->st, sid, 0, buf, STAMP_BYTES);
		if (n != (ssize_t)STAMP_BYTES) {
			tfail(r, "reader: read of stamp page %u: %zd", i, n);
			break;
		}
		s = stamp_check(buf);
		if (s == 0 || (s & POISON_BIT)) {
			memcpy(&s, buf, sizeof(s));
			tfail(r, "reader: stamp page %u %s (stamp %#" PRIx64 ")", i,
			      (s & POISON_BIT) ? "shows an aborted transaction" : "is torn", s);
			break;
		}
		rc = mmsb_getattr(r->st, sid, &a);
		if (rc < 0 || a.size != STAMP_BYTES) {
			tfail(r, "reader: getattr of stamp page %u: %d, size %" PRIu64, i, rc, rc < 0 ? 0 : a.size);
			break;
		}
		rc = mmsb_getattr(r->st, r->shared[fx_rnd(&rng, N_SHARED)], &a);
		if (rc < 0 || a.type != MMSB_T_PAGE || a.size > PAGE_MAX) {
			tfail(r, "reader: getattr of a shared page: %d, size %" PRIu64, rc, rc < 0 ? 0 : a.size);
			break;
		}
		if (fx_rnd(&rng, 256) == 0) { /* one snapshot: both stamp pages carry one stamp */
			struct mmsb_snap *sn = NULL;
			uint64_t s0, s1;

			rc = mmsb_snap_open(r->st, h, &sn);
			if (rc < 0) {
				tfail(r, "reader: snap_open(%" PRIu64 "): %d", h, rc);
				break;
			}
			n = mmsb_snap_read(sn, r->stamp[0], 0, buf, STAMP_BYTES);
			s0 = n == (ssize_t)STAMP_BYTES ? stamp_check(buf) : 0;
			n = mmsb_snap_read(sn, r->stamp[1], 0, buf2, STAMP_BYTES);
			s1 = n == (ssize_t)STAMP_BYTES ? stamp_check(buf2) : 0;
			mmsb_snap_close(sn);
			if (s0 == 0 || s0 != s1 || (s0 & POISON_BIT)) {
				tfail(r, "reader: snapshot %" PRIu64 ": stamps %#" PRIx64 " and %#" PRIx64, h, s0, s1);
				break;
			}
			snaps++;
		}
		iters++;
	} while (atomic_load(&r->writers_left) > 0 && !atomic_load(&r->failed));
	atomic_fetch_add(&r->reader_iters, iters);
	atomic_fetch_add(&r->reader_snaps, snaps);
	return NULL;
}

/* ---- the watchdog ------------------------------------------------------------ */

/* A deadlock would hang the test until meson's timeout with nothing said:
 * when no transaction ends and no read completes for MMSB_CONC_STALL_S
 * seconds (60), say where every writer is and abort.  It judges progress,
 * never speed. */
static void *watchdog_main(void *arg)
{
	struct run *r = arg;
	unsigned limit = getenv("MMSB_CONC_STALL_S") ? (unsigned)atoi(getenv("MMSB_CONC_STALL_S")) : 60, still = 0;
	unsigned long long last = atomic_load(&r->progress);

	while (atomic_load(&r->writers_left) > 0) {
		unsigned long long now;

		sleep(1);
		now = atomic_load(&r->progress);
		still = now == last ? still + 1 : 0;
		last = now;
		if (still >= limit) {
			fprintf(stderr, "test_conc: no transaction ended for %u s (deadlock?):\n",
				limit);
			for (unsigned w = 0; w < N_WRITERS; w++)
				fprintf(stderr, "  writer %u: %s\n", w, phase_name[atomic_load(&r->phase[w])]);
			abort();
		}
	}
	return NULL;
}

/* ---- the model ------------------------------------------------------------- */

struct mpage {
	uint64_t id;	      /* node id */
	bool live;	      /* exists (has its name) */
	int slot;	      /* private name index, -1: shared or stamp */
	uint8_t *d;	      /* bytes (cap of them allocated) */
	size_t size, cap;     /* size, allocation */
	bool has_x;	      /* XNAME is set */
	uint8_t x[XV_MAX];    /* its value */
	uint32_t xlen;	      /* its length */
};

struct model {
	struct mpage *p;		/* every page ever seen */
	size_t n, cap;			/* used, allocated */
	uint64_t slot_id[N_WRITERS * N_PRIV]; /* private name -> id, 0 = none */
};

static struct mpage *m_find(struct model *m, uint64_t id)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->p[i].id == id)
			return &m->p[i];
	return NULL;
}

static struct mpage *m_add(struct model *m, uint64_t id, int slot)
{
	struct mpage *p;

	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->p = realloc(m->p, m->cap * sizeof(*m->p));
		assert_non_null(m->p);
	}
	p = &m->p[m->n++];
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->live = true;
	p->slot = slot;
	return p;
}

static void m_resize(struct mpage *p, size_t size)
{
	if (size > p->cap) {
		p->cap = size;
		p->d = realloc(p->d, p->cap);
		assert_non_null(p->d);
	}
	if (size > p->size)
		memset(p->d + p->size, 0, size - p->size);
	p->size = size;
}

static void m_free(struct model *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->p[i].d);
	free(m->p);
	memset(m, 0, sizeof(*m));
}

/* The state right after setup (epoch head0). */
static void m_init(struct model *m, const struct run *r)
{
	uint8_t buf[STAMP_BYTES];

	memset(m, 0, sizeof(*m));
	for (unsigned i = 0; i < N_SHARED; i++)
		m_add(m, r->shared[i], -1);
	stamp_fill(buf, STAMP_BIT);
	for (unsigned i = 0; i <= N_STAMP; i++) {
		struct mpage *p = m_add(m, i < N_STAMP ? r->stamp[i] : r->pstamp, -1);

		m_resize(p, STAMP_BYTES);
		memcpy(p->d, buf, STAMP_BYTES);
	}
}

static void m_apply(struct model *m, const struct txrec *t)
{
	static uint8_t buf[STAMP_BYTES > WRITE_LEN_MAX ? STAMP_BYTES : WRITE_LEN_MAX];

	for (unsigned i = 0; i < t->n_ops; i++) {
		const struct op *o = &t->ops[i];
		struct mpage *p = o->kind == OP_CREATE ? NULL : m_find(m, o->id);

		if (o->kind != OP_CREATE) {
			assert_non_null(p);
			assert_true(p->live);
		}
		switch (o->kind) {
		case OP_CREATE:
			assert_null(m_find(m, o->id)); /* ids are never reused */
			m_add(m, o->id, o->slot);
			m->slot_id[o->slot] = o->id;
			break;
		case OP_UNLINK:
			p->live = false;
			m->slot_id[o->slot] = 0;
			break;
		case OP_TRUNC:
			m_resize(p, o->off);
			break;
		case OP_SETX:
			op_bytes(o, buf);
			p->has_x = true;
			p->xlen = o->len;
			memcpy(p->x, buf, o->len);
			break;
		case OP_WRITE:
			op_bytes(o, buf);
			if (o->off + o->len > p->size)
				m_resize(p, o->off + o->len);
			memcpy(p->d + o->off, buf, o->len);
			break;
		default:
			fail_msg("bad op kind %u", o->kind);
		}
	}
}

/* Compare the head (sn NULL) or a snapshot with the model. */
static void m_compare(struct model *m, struct mmsb_store *st, struct mmsb_snap *sn, const char *what)
{
	static uint8_t buf[PAGE_MAX + 16];
	uint8_t xv[XV_MAX + 8];
	struct mmsb_attr a;
	ssize_t n;
	int rc;

	for (size_t i = 0; i < m->n; i++) {
		struct mpage *p = &m->p[i];

		rc = sn ? mmsb_snap_getattr(sn, p->id, &a) : mmsb_getattr(st, p->id, &a);
		if (!p->live) {
			if (rc != -ENOENT)
				fail_msg("%s: page %" PRIu64 " was unlinked, getattr gives %d", what, p->id, rc);
			continue;
		}
		if (rc != 0)
			fail_msg("%s: page %" PRIu64 ": getattr %d", what, p->id, rc);
		if (a.type != MMSB_T_PAGE || a.size != p->size)
			fail_msg("%s: page %" PRIu64 ": type %d size %" PRIu64 ", model %zu", what, p->id, a.type, a.size,
				 p->size);
		n = sn ? mmsb_snap_read(sn, p->id, 0, buf, sizeof(buf)) : mmsb_read(st, p->id, 0, buf, sizeof(buf));
		if (n != (ssize_t)p->size)
			fail_msg("%s: page %" PRIu64 ": read %zd, model size %zu", what, p->id, n, p->size);
		if (p->size && memcmp(buf, p->d, p->size) != 0) {
			size_t j = 0;

			while (buf[j] == p->d[j])
				j++;
			fail_msg("%s: page %" PRIu64 ": bytes differ from the model at %zu", what, p->id, j);
		}
		n = sn ? mmsb_snap_getxattr(sn, p->id, XNAME, xv, sizeof(xv))
		       : mmsb_getxattr(st, p->id, XNAME, xv, sizeof(xv));
		if (p->has_x ? (n != (ssize_t)p->xlen || memcmp(xv, p->x, p->xlen) != 0) : n != -ENODATA)
			fail_msg("%s: page %" PRIu64 ": xattr gives %zd, model %d/%u", what, p->id, n, p->has_x, p->xlen);
	}
	for (int s = 0; s < N_WRITERS * N_PRIV; s++) {
		char name[32];

		priv_name(name, sizeof(name), s);
		rc = sn ? mmsb_snap_lookup(sn, MMSB_ROOT_ID, name, &a) : mmsb_lookup(st, MMSB_ROOT_ID, name, &a);
		if (m->slot_id[s] ? (rc != 0 || a.id != m->slot_id[s]) : rc != -ENOENT)
			fail_msg("%s: name %s: lookup %d id %" PRIu64 ", model id %" PRIu64, what, name, rc,
				 rc == 0 ? a.id : 0, m->slot_id[s]);
	}
}

/* ---- the test ---------------------------------------------------------------- */

static int cmp_rec(const void *a, const void *b)
{
	const struct txrec *x = a, *y = b;

	return x->epoch < y->epoch ? -1 : x->epoch > y->epoch;
}

static void concurrent_model(void **state)
{
	struct run *r = calloc(1, sizeof(*r));
	struct writer wr[N_WRITERS];
	pthread_t wth[N_WRITERS], rth[N_READERS], dog;
	struct txrec *all;
	size_t total = 0;
	uint8_t stamp0[STAMP_BYTES];
	struct model m;
	uint64_t check_at[8];
	unsigned n_check = 0;
	char cmd[128];

	(void)state;
	assert_non_null(r);
	r->txns = getenv("MMSB_CONC_TXNS") ? (unsigned)atoi(getenv("MMSB_CONC_TXNS")) : 700;
	r->seed = getenv("MMSB_CONC_SEED") ? (uint64_t)atoll(getenv("MMSB_CONC_SEED")) : 1;
	pthread_mutex_init(&r->fail_mu, NULL);
	strcpy(r->tmp, "/tmp/mmsb-conc-XXXXXX");
	assert_non_null(mkdtemp(r->tmp));
	snprintf(r->dir, sizeof(r->dir), "%s/s", r->tmp);
	mmsb_store_opts_init(&r->o);
	r->o.diag_fn = quiet;
	r->o.ckpt_log_bytes = 6u << 20; /* several automatic checkpoints during the storm */
	r->o.segment_bytes = 1u << 20;	/* and several segments */
	r->o.cache_bytes = 1u << 20;
	assert_int_equal(mmsb_store_open(r->dir, &r->o, &r->st), 0);

	for (unsigned i = 0; i < N_SHARED; i++) {
		char name[16];

		snprintf(name, sizeof(name), "s%u", i);
		r->shared[i] = fx_page_in(r->st, name, NULL, 0);
	}
	stamp_fill(stamp0, STAMP_BIT);
	for (unsigned i = 0; i < N_STAMP; i++) {
		char name[16];

		snprintf(name, sizeof(name), "stamp%u", i);
		r->stamp[i] = fx_page_in(r->st, name, stamp0, STAMP_BYTES);
	}
	r->pstamp = fx_page_in(r->st, "pstamp", stamp0, STAMP_BYTES);
	r->head0 = mmsb_store_head(r->st);

	/* the storm */
	atomic_store(&r->writers_left, N_WRITERS);
	for (unsigned w = 0; w < N_WRITERS; w++) {
		memset(&wr[w], 0, sizeof(wr[w]));
		wr[w].r = r;
		wr[w].w = w;
		wr[w].rng = (r->seed * 1000003u + w) | 1;
		assert_int_equal(pthread_create(&wth[w], NULL, writer_main, &wr[w]), 0);
	}
	for (unsigned i = 0; i < N_READERS; i++)
		assert_int_equal(pthread_create(&rth[i], NULL, reader_main, r), 0);
	assert_int_equal(pthread_create(&dog, NULL, watchdog_main, r), 0);
	for (unsigned w = 0; w < N_WRITERS; w++)
		pthread_join(wth[w], NULL);
	for (unsigned i = 0; i < N_READERS; i++)
		pthread_join(rth[i], NULL);
	pthread_join(dog, NULL);
	if (atomic_load(&r->failed))
		fail_msg("seed %" PRIu64 ": %s", r->seed, r->fail_msg);

	/* epochs: unique and dense */
	for (unsigned w = 0; w < N_WRITERS; w++)
		total += r->n_rec[w];
	all = malloc((total ? total : 1) * sizeof(*all));
	assert_non_null(all);
	total = 0;
	for (unsigned w = 0; w < N_WRITERS; w++) {
		memcpy(all + total, r->rec[w], r->n_rec[w] * sizeof(*all));
		total += r->n_rec[w];
	}
	qsort(all, total, sizeof(*all), cmp_rec);
	for (size_t i = 0; i < total; i++)
		if (all[i].epoch != r->head0 + 1 + i)
			fail_msg("epochs are not dense and unique: transaction %zu of %zu got epoch %" PRIu64 ", want %" PRIu64
				 " (writer %u)",
				 i, total, all[i].epoch, r->head0 + 1 + i, all[i].writer);
	assert_int_equal(mmsb_store_head(r->st), r->head0 + total);
	print_message("conc: %zu committed transactions (epochs %" PRIu64 "..%" PRIu64 "), %llu aborted, %llu"
		      " reader iterations, %llu snapshots\n",
		      total, r->head0 + 1, r->head0 + total, (unsigned long long)atomic_load(&r->aborted),
		      (unsigned long long)atomic_load(&r->reader_iters), (unsigned long long)atomic_load(&r->reader_snaps));

	/* the serial replay equals the head, before and after a reopen */
	m_init(&m, r);
	for (size_t i = 0; i < total; i++)
		m_apply(&m, &all[i]);
	m_compare(&m, r->st, NULL, "head after the storm");
	mmsb_store_close(r->st);
	r->st = NULL;
	assert_int_equal(mmsb_store_open(r->dir, &r->o, &r->st), 0);
	assert_int_equal(mmsb_store_head(r->st), r->head0 + total);
	m_compare(&m, r->st, NULL, "head after reopen");
	m_free(&m);

	/* time travel: a few epochs, each against the model replayed up to it */
	check_at[n_check++] = r->head0;
	for (unsigned k = 1; k <= 5; k++)
		check_at[n_check++] = r->head0 + total * k / 6;
	check_at[n_check++] = r->head0 + total;
	m_init(&m, r);
	for (size_t i = 0, c = 0; c < n_check; c++) {
		struct mmsb_snap *sn = NULL;
		char what[64];

		while (i < total && all[i].epoch <= check_at[c])
			m_apply(&m, &all[i++]);
		assert_int_equal(mmsb_snap_open(r->st, check_at[c], &sn), 0);
		snprintf(what, sizeof(what), "snapshot of epoch %" PRIu64, check_at[c]);
		m_compare(&m, r->st, sn, what);
		mmsb_snap_close(sn);
	}
	m_free(&m);

	mmsb_store_close(r->st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", r->tmp);
	assert_int_equal(system(cmd), 0);
	for (unsigned w = 0; w < N_WRITERS; w++)
		free(r->rec[w]);
	free(all);
	pthread_mutex_destroy(&r->fail_mu);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(concurrent_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
