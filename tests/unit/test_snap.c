/* test_snap.c - time-travel views (snap.c) of many epochs against a model
 * of every epoch: closed views are kept idle for reuse (SNAP_IDLE_MAX of
 * them, the oldest freed with its cached bytes), a reused view is the same
 * view with its pages still materialized (a cache hit), a rebuilt or
 * derived one materializes them again (a miss), the cache bound
 * (cache_bytes) drops a view's other pages, and whichever way a view was
 * made -- built, derived from a neighbour, reused, across a checkpoint --
 * it reads exactly its epoch. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx.h"
#include "mmsb.h"
#include "store_int.h" /* SNAP_IDLE_MAX, the idle list */

#define MAX_E 80
#define PSZ 8192 /* page p's largest size */

/* Page p at every epoch, and page q's lifetime. */
struct model {
	uint64_t p, q;		      /* node ids */
	uint64_t head;		      /* newest epoch made */
	uint64_t size[MAX_E + 1];     /* p's size at each epoch */
	uint8_t bytes[MAX_E + 1][PSZ]; /* p's bytes at each epoch */
	uint64_t q_from, q_until;     /* q exists in epochs [q_from, q_until) */
};

static struct model m; /* one test at a time */

/* One epoch of history: mostly small writes to p, a truncate every 7th, q
 * created at 10 and unlinked at 30. */
static void step(struct fx *fx)
{
	uint64_t e = m.head + 1, off;
	struct mmsb_txn *t;
	struct mmsb_attr a;
	uint8_t w[24];

	assert_true(e <= MAX_E);
	m.size[e] = m.size[e - 1];
	memcpy(m.bytes[e], m.bytes[e - 1], PSZ);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	if (e == 10) {
		assert_int_equal(mmsb_txn_create(t, MMSB_ROOT_ID, "q", MMSB_T_PAGE, 0644, 0, 0, NULL, &a), 0);
		assert_int_equal(mmsb_txn_write(t, a.id, 0, "qqq", 3), 3);
		m.q = a.id;
		m.q_from = e;
	} else if (e == 30) {
		assert_int_equal(mmsb_txn_unlink(t, MMSB_ROOT_ID, "q"), 0);
		m.q_until = e;
	} else if (e % 7 == 0) {
		uint64_t size = 4096 + (e * 97) % 4096;

		assert_int_equal(mmsb_txn_truncate(t, m.p, size), 0);
		if (size > m.size[e])
			memset(m.bytes[e] + m.size[e], 0, size - m.size[e]);
		m.size[e] = size;
	} else {
		off = (e * 131) % (m.size[e] - sizeof(w));
		memset(w, (int)(0x40 + e), sizeof(w));
		w[0] = (uint8_t)e;
		assert_int_equal(mmsb_txn_write(t, m.p, off, w, sizeof(w)), (ssize_t)sizeof(w));
		memcpy(m.bytes[e] + off, w, sizeof(w));
	}
	assert_int_equal(mmsb_txn_commit(t, &e), 0);
	assert_int_equal(e, m.head + 1);
	m.head = e;
}

/* Page p (8192 bytes) at epoch 1, then epochs 2..n. */
static void history(struct fx *fx, uint64_t n)
{
	uint64_t i;

	memset(&m, 0, sizeof(m));
	for (i = 0; i < PSZ; i++)
		m.bytes[1][i] = (uint8_t)(i * 7 + 1);
	m.size[1] = PSZ;
	m.p = fx_page(fx, "p", m.bytes[1], PSZ);
	m.head = 1;
	assert_int_equal(mmsb_store_head(fx->st), 1);
	while (m.head < n)
		step(fx);
}

/* The view reads exactly epoch e of the model. */
static void check_view(struct mmsb_snap *s, uint64_t e)
{
	static uint8_t buf[PSZ + 64];
	struct mmsb_attr a;
	ssize_t n;

	assert_int_equal(mmsb_snap_epoch(s), e);
	assert_int_equal(mmsb_snap_lookup(s, MMSB_ROOT_ID, "p", &a), 0);
	assert_int_equal(a.id, m.p);
	assert_int_equal(a.size, m.size[e]);
	n = mmsb_snap_read(s, m.p, 0, buf, sizeof(buf));
	assert_int_equal(n, (ssize_t)m.size[e]);
	assert_memory_equal(buf, m.bytes[e], m.size[e]);
	if (e >= m.q_from && m.q_from && (!m.q_until || e < m.q_until)) {
		assert_int_equal(mmsb_snap_lookup(s, MMSB_ROOT_ID, "q", &a), 0);
		assert_int_equal(mmsb_snap_read(s, m.q, 0, buf, sizeof(buf)), 3);
		assert_memory_equal(buf, "qqq", 3);
	} else {
		assert_int_equal(mmsb_snap_lookup(s, MMSB_ROOT_ID, "q", &a), -ENOENT);
	}
}

static struct mmsb_stats stats(struct fx *fx)
{
	struct mmsb_stats s;

	mmsb_store_stats(fx->st, &s);
	return s;
}

static unsigned n_idle(struct mmsb_store *st)
{
	unsigned n;

	pthread_mutex_lock(&st->snap_mu);
	n = st->n_idle;
	pthread_mutex_unlock(&st->snap_mu);
	return n;
}

static void quiet_reopen(struct fx *fx, size_t cache_bytes)
{
	fx->o.ckpt_log_bytes = 0; /* checkpoints only where a test makes one */
	fx->o.ckpt_at_close = false;
	if (cache_bytes)
		fx->o.cache_bytes = cache_bytes;
	fx_reopen(fx);
}

/* ---- the idle list ---------------------------------------------------------------- */

/* SNAP_IDLE_MAX + 3 views opened, read and closed one after another: the
 * newest SNAP_IDLE_MAX stay idle with their pages (cache_bytes is exactly
 * theirs), the 3 oldest are freed.  Opening a kept one again gives the same
 * view and its read is a hit; opening a freed one builds it again (a
 * miss).  Both read exactly their epoch. */
static void idle_views_kept_and_evicted(void **state)
{
	struct fx *fx = *state;
	enum { N = SNAP_IDLE_MAX + 3 };
	struct mmsb_snap *v[N], *s;
	uint64_t loaded[N], kept = 0;
	struct mmsb_stats a, b;
	uint8_t buf[1];
	unsigned i;

	quiet_reopen(fx, 0);
	history(fx, 40);
	for (i = 0; i < N; i++) {
		struct mmsb_stats c;

		a = stats(fx);
		assert_int_equal(mmsb_snap_open(fx->st, 2 + i, &v[i]), 0);
		assert_int_equal(mmsb_snap_read(v[i], m.p, 0, buf, 1), 1);
		b = stats(fx);
		assert_int_equal(b.cache_misses, a.cache_misses + 1); /* p materialized */
		assert_true(b.cache_bytes > a.cache_bytes);
		check_view(v[i], 2 + i);
		c = stats(fx);
		loaded[i] = c.cache_bytes - a.cache_bytes;
		mmsb_snap_close(v[i]);
		assert_int_equal(n_idle(fx->st), i + 1 < SNAP_IDLE_MAX ? i + 1 : SNAP_IDLE_MAX);
	}
	for (i = N - SNAP_IDLE_MAX; i < N; i++)
		kept += loaded[i];
	assert_int_equal(stats(fx).cache_bytes, kept); /* the freed views' bytes went with them */

	for (i = N - SNAP_IDLE_MAX; i < N; i++) { /* reused: same view, pages still there */
		a = stats(fx);
		assert_int_equal(mmsb_snap_open(fx->st, 2 + i, &s), 0);
		assert_ptr_equal(s, v[i]);
		check_view(s, 2 + i);
		b = stats(fx);
		assert_int_equal(b.cache_misses, a.cache_misses);
		assert_true(b.cache_hits > a.cache_hits);
		assert_int_equal(b.cache_bytes, a.cache_bytes);
		mmsb_snap_close(s);
	}
	for (i = 0; i < N - SNAP_IDLE_MAX; i++) { /* freed: built again */
		a = stats(fx);
		assert_int_equal(mmsb_snap_open(fx->st, 2 + i, &s), 0);
		assert_int_equal(mmsb_snap_read(s, m.p, 0, buf, 1), 1);
		b = stats(fx);
		assert_int_equal(b.cache_misses, a.cache_misses + 1);
		check_view(s, 2 + i);
		mmsb_snap_close(s);
	}
	assert_int_equal(n_idle(fx->st), SNAP_IDLE_MAX);
}

/* A view held open is never evicted from the idle list, however many
 * others come and go, and two opens of one epoch share it. */
static void open_views_are_not_evicted(void **state)
{
	struct fx *fx = *state;
	struct mmsb_snap *held, *again, *s;
	struct mmsb_stats a, b;
	unsigned i;

	quiet_reopen(fx, 0);
	history(fx, 3 * SNAP_IDLE_MAX + 10);
	assert_int_equal(mmsb_snap_open(fx->st, 5, &held), 0);
	check_view(held, 5);
	for (i = 0; i < 2 * SNAP_IDLE_MAX; i++) {
		assert_int_equal(mmsb_snap_open(fx->st, 8 + i, &s), 0);
		check_view(s, 8 + i);
		mmsb_snap_close(s);
	}
	assert_int_equal(n_idle(fx->st), SNAP_IDLE_MAX);
	assert_int_equal(mmsb_snap_open(fx->st, 5, &again), 0);
	assert_ptr_equal(again, held);
	a = stats(fx);
	check_view(again, 5);
	b = stats(fx);
	assert_int_equal(b.cache_misses, a.cache_misses); /* its page stayed */
	mmsb_snap_close(again);
	check_view(held, 5); /* still ours after the other reference went */
	mmsb_snap_close(held);
	assert_int_equal(n_idle(fx->st), SNAP_IDLE_MAX);
}

/* ---- the cache bound -------------------------------------------------------------------- */

/* Twelve 64 KiB pages under a bound of four: reading them all through one
 * view keeps cache_bytes within the bound (the view drops its other
 * pages), a dropped page is materialized again on the next read (a miss)
 * with exactly its bytes, and the page read last is still there (a hit). */
static void cache_bound_drops_pages(void **state)
{
	struct fx *fx = *state;
	enum { NP = 12, SZ = 64 << 10 };
	uint64_t id[NP], bound = 4 * (uint64_t)SZ, e;
	static uint8_t want[NP][SZ], buf[SZ];
	struct mmsb_stats a, b;
	struct mmsb_snap *s;
	char name[32];
	unsigned i, k;

	quiet_reopen(fx, (size_t)bound);
	for (i = 0; i < NP; i++) {
		for (k = 0; k < SZ; k++)
			want[i][k] = (uint8_t)(i * 31 + k % 251 + 1);
		snprintf(name, sizeof(name), "p%u", i);
		id[i] = fx_page(fx, name, want[i], SZ);
	}
	for (i = 0; i < NP; i++) { /* one more record each, so each page has a log to replay */
		e = fx_write(fx, id[i], 100 + i, "xyz", 3);
		if (i < NP / 2)
			memcpy(want[i] + 100 + i, "xyz", 3);
	}
	assert_int_equal(mmsb_store_head(fx->st), 2 * NP);
	(void)e;
	assert_int_equal(mmsb_snap_open(fx->st, NP + NP / 2, &s), 0); /* half the writes in */
	for (i = 0; i < NP; i++) {
		assert_int_equal(mmsb_snap_read(s, id[i], 0, buf, SZ), SZ);
		assert_memory_equal(buf, want[i], SZ);
		assert_true(stats(fx).cache_bytes <= bound);
	}
	assert_true(stats(fx).cache_bytes > 0);
	a = stats(fx);
	assert_int_equal(mmsb_snap_read(s, id[NP - 1], 0, buf, SZ), SZ); /* last read: still there */
	b = stats(fx);
	assert_int_equal(b.cache_misses, a.cache_misses);
	assert_memory_equal(buf, want[NP - 1], SZ);
	assert_int_equal(mmsb_snap_read(s, id[0], 0, buf, SZ), SZ); /* dropped: again */
	a = stats(fx);
	assert_int_equal(a.cache_misses, b.cache_misses + 1);
	assert_memory_equal(buf, want[0], SZ);
	assert_true(a.cache_bytes <= bound);
	mmsb_snap_close(s);
}

/* ---- exactness ---------------------------------------------------------------------------- */

/* 60 epochs with a checkpoint at 25: every epoch opened in a scrambled
 * order, twice (built, derived from a neighbour, or reused), reads exactly
 * its epoch; so does a reused view after the head moved on, a view read
 * again after a later one was derived from it (shared pages copied on
 * change), and every epoch after a reopen of the store. */
static void reused_view_reads_its_epoch(void **state)
{
	struct fx *fx = *state;
	struct mmsb_snap *s, *t, *u;
	uint64_t ck, e;
	unsigned k, pass;

	quiet_reopen(fx, 0);
	history(fx, 25);
	assert_int_equal(mmsb_checkpoint(fx->st, &ck), 0);
	assert_int_equal(ck, 25);
	while (m.head < 60)
		step(fx);
	for (pass = 0; pass < 2; pass++)
		for (k = 0; k < 59; k++) { /* 17 is prime to 59: every epoch 1..59 once */
			e = (k * 17) % 59 + 1;
			assert_int_equal(mmsb_snap_open(fx->st, e, &s), 0);
			check_view(s, e);
			mmsb_snap_close(s);
		}

	/* derived from an open view: both stay exact */
	assert_int_equal(mmsb_snap_open(fx->st, 20, &s), 0);
	check_view(s, 20);
	assert_int_equal(mmsb_snap_open(fx->st, 23, &t), 0);
	check_view(t, 23);
	check_view(s, 20);
	assert_int_equal(mmsb_snap_open(fx->st, 27, &u), 0); /* from the checkpoint */
	check_view(u, 27);
	check_view(t, 23);

	/* the head moves on: kept and idle views still show their epoch */
	mmsb_snap_close(t);
	while (m.head < 70)
		step(fx);
	assert_int_equal(mmsb_snap_open(fx->st, 23, &t), 0);
	check_view(t, 23);
	check_view(s, 20);
	check_view(u, 27);
	mmsb_snap_close(s);
	mmsb_snap_close(t);
	mmsb_snap_close(u);
	for (e = 60; e < 70; e++) {
		assert_int_equal(mmsb_snap_open(fx->st, e, &s), 0);
		check_view(s, e);
		mmsb_snap_close(s);
	}

	fx_reopen(fx);
	for (e = 1; e <= 70; e++) {
		assert_int_equal(mmsb_snap_open(fx->st, e, &s), 0);
		check_view(s, e);
		mmsb_snap_close(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(idle_views_kept_and_evicted, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(open_views_are_not_evicted, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(cache_bound_drops_pages, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(reused_view_reads_its_epoch, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("snap", tests, NULL, NULL);
}
