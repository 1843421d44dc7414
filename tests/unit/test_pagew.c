/* test_pagew.c - page writes (mmsb_page_write) and readers that do not wait
 * (src/txn.c, src/store.c).
 *
 * A page write must be indistinguishable, in what it leaves, from the
 * transaction it replaces: the same epochs, the same bytes at every epoch,
 * the same log (reopening replays to the same head), no epoch for the same
 * bytes.  Several threads writing pages at once get dense, distinct epochs,
 * and replaying their writes one by one in epoch order gives the head.  A
 * reader is never held up by a transaction's exec: recompute and never
 * sees its uncommitted records.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fx.h"
#include "mmsb.h"

#define PAGE 8192

static void bytes_at(struct mmsb_store *st, uint64_t epoch, uint64_t id, uint8_t *out, size_t len,
		     uint64_t *size)
{
	struct mmsb_snap *s;
	struct mmsb_attr a;

	assert_int_equal(mmsb_snap_open(st, epoch, &s), 0);
	assert_int_equal(mmsb_snap_getattr(s, id, &a), 0);
	*size = a.size;
	memset(out, 0, len);
	assert_true(mmsb_snap_read(s, id, 0, out, len) >= 0);
	mmsb_snap_close(s);
}

/* Epochs, no-op rewrites, growth, time travel and replay. */
static void semantics(void **state)
{
	struct fx *fx = *state;
	uint8_t buf[PAGE], got[PAGE], want[3][PAGE];
	uint64_t id = fx_page(fx, "p", NULL, 0), e[3], e0 = mmsb_store_head(fx->st), size, e2;
	int k;

	memset(want, 0, sizeof(want));
	for (k = 0; k < 3; k++) {
		memset(buf, 'a' + k, sizeof(buf));
		assert_int_equal(mmsb_page_write(fx->st, MMSB_SRC_USER, id, (uint64_t)k * 1000, buf, 3000, &e[k]),
				 3000);
		assert_int_equal(e[k], e0 + 1 + (uint64_t)k);
		if (k)
			memcpy(want[k], want[k - 1], PAGE);
		memset(want[k] + k * 1000, 'a' + k, 3000);
	}
	/* the same bytes again: nothing recorded */
	memset(buf, 'c', sizeof(buf));
	assert_int_equal(mmsb_page_write(fx->st, MMSB_SRC_USER, id, 2000, buf, 3000, &e2), 3000);
	assert_int_equal(e2, 0);
	assert_int_equal(mmsb_store_head(fx->st), e[2]);
	for (k = 0; k < 3; k++) {
		bytes_at(fx->st, e[k], id, got, PAGE, &size);
		assert_int_equal(size, (uint64_t)k * 1000 + 3000);
		assert_memory_equal(got, want[k], PAGE);
	}
	assert_int_equal(mmsb_read(fx->st, id, 0, got, PAGE), 5000);
	assert_memory_equal(got, want[2], 5000);
	fx_reopen(fx);
	assert_int_equal(mmsb_store_head(fx->st), e[2]);
	memset(got, 0, sizeof(got));
	assert_int_equal(mmsb_read(fx->st, id, 0, got, PAGE), 5000);
	assert_memory_equal(got, want[2], 5000);
	/* not a page, or no node */
	assert_int_equal(mmsb_page_write(fx->st, MMSB_SRC_USER, MMSB_ROOT_ID, 0, buf, 1, NULL), -EISDIR);
	assert_int_equal(mmsb_page_write(fx->st, MMSB_SRC_USER, 999999, 0, buf, 1, NULL), -ENOENT);
}

/* A page with a dependent takes a transaction: its child follows in the
 * same epoch. */
static void parent_recomputes(void **state)
{
	struct fx *fx = *state;
	uint64_t p = fx_page(fx, "parent", "xyz", 3), c = fx_page(fx, "child", NULL, 0), e;
	uint8_t got[8] = {0};

	assert_int_equal(fx_setx(fx, c, "user.mmsb.deps", "parent"), 0);
	assert_int_equal(fx_setx(fx, c, "user.mmsb.recompute", "copy"), 0);
	assert_int_equal(mmsb_page_write(fx->st, MMSB_SRC_USER, p, 0, "hello", 5, &e), 5);
	assert_int_equal(e, mmsb_store_head(fx->st));
	assert_int_equal(mmsb_read(fx->st, c, 0, got, sizeof(got)), 5);
	assert_memory_equal(got, "hello", 5);
}

/* A page write to the top of a chain and a diamond: every derived page
 * follows in the same epoch (the deferred records read through overlays),
 * and replay reproduces them. */
static void propagation_in_page_write(void **state)
{
	struct fx *fx = *state;
	uint64_t a = fx_page(fx, "a", "1234", 4), b = fx_page(fx, "b", NULL, 0), c = fx_page(fx, "c", NULL, 0),
		 d = fx_page(fx, "d", NULL, 0), e, e2;
	uint8_t got[16];
	int k;

	assert_int_equal(fx_setx(fx, b, "user.mmsb.deps", "a"), 0);
	assert_int_equal(fx_setx(fx, b, "user.mmsb.recompute", "copy"), 0);
	assert_int_equal(fx_setx(fx, c, "user.mmsb.deps", "b"), 0);
	assert_int_equal(fx_setx(fx, c, "user.mmsb.recompute", "copy"), 0);
	assert_int_equal(fx_setx(fx, d, "user.mmsb.deps", "b,c"), 0);
	assert_int_equal(fx_setx(fx, d, "user.mmsb.recompute", "concat"), 0);
	assert_int_equal(mmsb_page_write(fx->st, MMSB_SRC_USER, a, 2, "xyzw", 4, &e), 4);
	assert_int_equal(e, mmsb_store_head(fx->st));
	for (k = 0; k < 2; k++) {
		memset(got, 0, sizeof(got));
		assert_int_equal(mmsb_read(fx->st, b, 0, got, sizeof(got)), 6);
		assert_memory_equal(got, "12xyzw", 6);
		assert_int_equal(mmsb_read(fx->st, c, 0, got, sizeof(got)), 6);
		assert_memory_equal(got, "12xyzw", 6);
		assert_int_equal(mmsb_read(fx->st, d, 0, got, sizeof(got)), 12);
		assert_memory_equal(got, "12xyzw12xyzw", 12);
		fx_reopen(fx);
	}
	/* a shorter parent: children shrink in the same epoch */
	assert_int_equal(mmsb_page_write(fx->st, MMSB_SRC_USER, a, 0, "QQ", 2, &e2), 2);
	assert_int_equal(e2, e + 1);
	assert_int_equal(mmsb_read(fx->st, d, 0, got, sizeof(got)), 12);
	assert_memory_equal(got, "QQxyzwQQxyzw", 12);
}

/* ---- several writers ------------------------------------------------------------------ */

#define WRITERS 4
#define ROUNDS 300
#define SHARED 3 /* pages every writer writes */

struct wlog {
	uint64_t epoch, id, off;
	uint32_t len;
	uint8_t val;
};

struct writer {
	struct mmsb_store *st;
	uint64_t ids[WRITERS + SHARED]; /* own page first, then the shared ones */
	unsigned seed;
	struct wlog log[ROUNDS];
	size_t n;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[4096];
	size_t i;

	for (i = 0; i < ROUNDS; i++) {
		unsigned r = (unsigned)rand_r(&w->seed);
		struct wlog *l = &w->log[w->n];

		l->id = r % 2 ? w->ids[0] : w->ids[1 + (r >> 1) % SHARED];
		l->off = (r >> 4) % (PAGE - 1);
		l->len = 1 + (uint32_t)((r >> 16) % (PAGE - l->off < sizeof(buf) ? PAGE - l->off : sizeof(buf)));
		l->val = (uint8_t)(1 + (r >> 8) % 250);
		memset(buf, l->val, l->len);
		if (mmsb_page_write(w->st, MMSB_SRC_USER, l->id, l->off, buf, l->len, &l->epoch) != (ssize_t)l->len)
			return (void *)1;
		if (l->epoch)
			w->n++;
	}
	return NULL;
}

static int cmp_epoch(const void *a, const void *b)
{
	const struct wlog *x = a, *y = b;

	return x->epoch < y->epoch ? -1 : x->epoch > y->epoch;
}

/* The serial model: every logged write applied in epoch order. */
static void check_against_model(struct mmsb_store *st, struct writer *w, uint64_t e0, uint64_t *ids, size_t n_ids)
{
	struct wlog *all = calloc(WRITERS * ROUNDS, sizeof(*all));
	uint8_t (*model)[PAGE] = calloc(n_ids, PAGE);
	uint64_t *size = calloc(n_ids, sizeof(*size));
	uint8_t got[PAGE];
	size_t n = 0, i, j;

	assert_non_null(all);
	assert_non_null(model);
	assert_non_null(size);
	for (i = 0; i < WRITERS; i++)
		for (j = 0; j < w[i].n; j++)
			all[n++] = w[i].log[j];
	qsort(all, n, sizeof(*all), cmp_epoch);
	assert_int_equal(mmsb_store_head(st), e0 + n); /* dense */
	for (i = 0; i < n; i++) {
		assert_int_equal(all[i].epoch, e0 + 1 + i); /* distinct, consecutive */
		for (j = 0; ids[j] != all[i].id; j++)
			;
		memset(model[j] + all[i].off, all[i].val, all[i].len);
		if (all[i].off + all[i].len > size[j])
			size[j] = all[i].off + all[i].len;
	}
	for (j = 0; j < n_ids; j++) {
		struct mmsb_attr a;

		assert_int_equal(mmsb_getattr(st, ids[j], &a), 0);
		assert_int_equal(a.size, size[j]);
		memset(got, 0, sizeof(got));
		assert_int_equal(mmsb_read(st, ids[j], 0, got, PAGE), (ssize_t)size[j]);
		assert_memory_equal(got, model[j], PAGE);
	}
	free(all);
	free(model);
	free(size);
}

static void parallel_writers(void **state)
{
	struct fx *fx = *state;
	struct writer *w = calloc(WRITERS, sizeof(*w));
	uint64_t ids[WRITERS + SHARED], e0;
	pthread_t th[WRITERS];
	char name[16];
	size_t i;

	assert_non_null(w);
	for (i = 0; i < WRITERS + SHARED; i++) {
		snprintf(name, sizeof(name), "p%zu", i);
		ids[i] = fx_page(fx, name, NULL, 0);
	}
	e0 = mmsb_store_head(fx->st);
	for (i = 0; i < WRITERS; i++) {
		w[i].st = fx->st;
		w[i].seed = 17u + (unsigned)i;
		w[i].ids[0] = ids[i];
		memcpy(w[i].ids + 1, ids + WRITERS, SHARED * sizeof(ids[0]));
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	}
	for (i = 0; i < WRITERS; i++) {
		void *ret;

		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
	}
	check_against_model(fx->st, w, e0, ids, WRITERS + SHARED);
	fx_reopen(fx); /* the log in epoch order replays to the same head */
	check_against_model(fx->st, w, e0, ids, WRITERS + SHARED);
	free(w);
}

/* ---- readers and an exec: recompute ---------------------------------------------------- */

struct reader {
	struct mmsb_store *st;
	uint64_t parent, other;
	atomic_bool stop;
	atomic_ulong reads_during_exec; /* reads completed while the command ran */
	atomic_bool saw_uncommitted;
	const char *flag;
};

static bool running(const struct reader *r)
{
	FILE *f = fopen(r->flag, "r");

	if (f)
		fclose(f);
	return f != NULL;
}

/* A read between two sightings of the command's mark happened while the
 * command ran, so before the commit: it must have been served, and must
 * show the parent's committed bytes. */
static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint8_t b[8], pb[8];

	while (!atomic_load(&r->stop)) {
		struct mmsb_attr a;
		bool before = running(r), ok;

		ok = mmsb_getattr(r->st, r->other, &a) == 0 && mmsb_read(r->st, r->other, 0, b, 4) == 4 &&
		     mmsb_read(r->st, r->parent, 0, pb, 4) == 4;
		if (!ok || !running(r))
			continue;
		if (memcmp(pb, "new!", 4) == 0)
			atomic_store(&r->saw_uncommitted, true);
		if (before)
			atomic_fetch_add(&r->reads_during_exec, 1);
	}
	return NULL;
}

/* The set-up both exec tests share: a store allowing exec:, pages parent
 * ("old!"), child and other, and child = a command over parent that marks
 * its run with the file flag (in the new directory tmpl): it creates the
 * mark, waits 0.6 s, prints its input and removes the mark. */
struct exec_pages {
	uint64_t parent, child, other;
};

static struct exec_pages exec_setup(struct fx *fx, char *tmpl, char *flag, size_t flag_cap)
{
	struct exec_pages x;
	char cmd[300];

	fx->o.allow_exec = true;
	fx_reopen(fx);
	assert_non_null(mkdtemp(tmpl));
	snprintf(flag, flag_cap, "%s/running", tmpl);
	x.parent = fx_page(fx, "parent", "old!", 4);
	x.child = fx_page(fx, "child", NULL, 0);
	x.other = fx_page(fx, "other", "abcd", 4);
	assert_int_equal(fx_setx(fx, x.child, "user.mmsb.deps", "parent"), 0);
	snprintf(cmd, sizeof(cmd), "exec:touch %s; sleep 0.6; cat \"$1\"; rm -f %s; :", flag, flag);
	assert_int_equal(fx_setx(fx, x.child, "user.mmsb.recompute", cmd), 0);
	return x;
}

static void readers_during_exec(void **state)
{
	struct fx *fx = *state;
	char tmpl[] = "/tmp/mmsb-pagew-XXXXXX", flag[96];
	struct reader r = {0};
	struct mmsb_txn *t;
	pthread_t th;
	uint64_t p, c, e;
	uint8_t got[8] = {0};
	struct exec_pages x = exec_setup(fx, tmpl, flag, sizeof(flag));

	/* reads counted between two sightings of the mark happened while the
	 * transaction held the gate */
	p = x.parent;
	c = x.child;
	r.st = fx->st;
	r.parent = p;
	r.other = x.other;
	r.flag = flag;
	assert_int_equal(pthread_create(&th, NULL, reader_main, &r), 0);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_write(t, p, 0, "new!", 4), 4);
	assert_int_equal(mmsb_txn_commit(t, &e), 0);
	atomic_store(&r.stop, true);
	pthread_join(th, NULL);
	assert_true(atomic_load(&r.reads_during_exec) > 0);
	assert_false(atomic_load(&r.saw_uncommitted));
	assert_int_equal(mmsb_read(fx->st, c, 0, got, sizeof(got)), 4);
	assert_memory_equal(got, "new!", 4);
	rmdir(tmpl);
}

struct other_writer {
	struct mmsb_store *st;
	uint64_t id;
	const char *flag;
	atomic_bool stop;
	atomic_ulong writes_during_exec; /* epochs committed while the command ran */
	int err;
};

static void *other_writer_main(void *arg)
{
	struct other_writer *w = arg;
	uint32_t i = 0;

	while (!atomic_load(&w->stop)) {
		FILE *f = fopen(w->flag, "r");
		bool before = f != NULL;
		uint64_t e;

		if (f)
			fclose(f);
		i++;
		if (mmsb_page_write(w->st, MMSB_SRC_USER, w->id, 0, &i, sizeof(i), &e) != sizeof(i)) {
			w->err = 1;
			return NULL;
		}
		f = fopen(w->flag, "r");
		if (f) {
			fclose(f);
			if (before && e)
				atomic_fetch_add(&w->writes_during_exec, 1);
		}
	}
	return NULL;
}

/* A page write whose propagation runs an exec: holds only the stripes of
 * the pages involved: another page's writes commit meanwhile (in epochs
 * before it), and the result is the one a serial run gives. */
static void writers_during_exec(void **state)
{
	struct fx *fx = *state;
	char tmpl[] = "/tmp/mmsb-pagew-XXXXXX", flag[96];
	struct other_writer w = {0};
	pthread_t th;
	uint64_t p, c, e;
	uint8_t got[8] = {0};
	struct exec_pages x = exec_setup(fx, tmpl, flag, sizeof(flag));

	p = x.parent;
	c = x.child;
	w.st = fx->st;
	w.id = x.other;
	w.flag = flag;
	assert_int_equal(pthread_create(&th, NULL, other_writer_main, &w), 0);
	assert_int_equal(mmsb_page_write(fx->st, MMSB_SRC_USER, p, 0, "new!", 4, &e), 4);
	atomic_store(&w.stop, true);
	pthread_join(th, NULL);
	assert_int_equal(w.err, 0);
	assert_true(atomic_load(&w.writes_during_exec) > 0);
	assert_int_equal(mmsb_read(fx->st, c, 0, got, sizeof(got)), 4);
	assert_memory_equal(got, "new!", 4);
	fx_reopen(fx);
	memset(got, 0, sizeof(got));
	assert_int_equal(mmsb_read(fx->st, c, 0, got, sizeof(got)), 4);
	assert_memory_equal(got, "new!", 4);
	rmdir(tmpl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(semantics, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(parent_recomputes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(propagation_in_page_write, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(parallel_writers, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(writers_during_exec, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(readers_during_exec, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
