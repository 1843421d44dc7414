/* test_txn.c - transactions under allocation failure (src/txn.c).
 *
 * This program is linked with -Wl,--wrap=realloc: every realloc of libmmsb
 * and of this file goes through wrap_realloc below, which can fail the Nth
 * call from a point on.  A rename that replaces a victim is retried with
 * the failure at every realloc it makes: it either fails with -ENOMEM
 * (then abort leaves the head as it was) or succeeds, and then its commit
 * reports the victim's removal as well as the rename.  Committing after a
 * failed dependency setxattr gives a head that reopening (replay)
 * reproduces.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx.h"
#include "mmsb.h"

void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

static long fail_in; /* fail the call when this reaches 0; < 0: never */

void *__wrap_realloc(void *p, size_t n)
{
	if (fail_in >= 0 && fail_in-- == 0)
		return NULL;
	return __real_realloc(p, n);
}

/* What the commit hook saw of the last commit. */
struct seen {
	size_t n;			  /* changes reported */
	struct mmsb_change_rec ch[64];	  /* the first of them */
};

static void on_commit(void *arg, const struct mmsb_commit_info *ci)
{
	struct seen *s = arg;

	s->n = ci->n_changes;
	memcpy(s->ch, ci->changes, (ci->n_changes < 64 ? ci->n_changes : 64) * sizeof(s->ch[0]));
}

static bool seen_has(const struct seen *s, enum mmsb_change kind, uint64_t id)
{
	size_t i;

	for (i = 0; i < s->n && i < 64; i++)
		if (s->ch[i].kind == kind && s->ch[i].id == id)
			return true;
	return false;
}

#define N_FILES 15 /* fills the change list to one below its first growth */

static uint64_t lookup_id(struct fx *fx, const char *name)
{
	struct mmsb_attr a;

	if (mmsb_lookup(fx->st, MMSB_ROOT_ID, name, &a) < 0)
		return 0;
	return a.id;
}

/* Create N_FILES pages f0.. in one transaction, then rename f0 onto f1
 * with the kth realloc of the rename failing. Returns the rename's result;
 * the transaction is committed on success, aborted otherwise. */
static int rename_failing_at(struct fx *fx, long k, uint64_t ids[N_FILES])
{
	struct mmsb_txn *t;
	struct mmsb_attr a;
	char name[16];
	int i, rc;

	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	for (i = 0; i < N_FILES; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		assert_int_equal(mmsb_txn_create(t, MMSB_ROOT_ID, name, MMSB_T_PAGE, 0644, 0, 0, NULL, &a), 0);
		ids[i] = a.id;
	}
	fail_in = k;
	rc = mmsb_txn_rename(t, MMSB_ROOT_ID, "f0", MMSB_ROOT_ID, "f1", 0);
	fail_in = -1;
	if (rc == 0)
		assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	else
		mmsb_txn_abort(t);
	return rc;
}

static void rename_victim_noted_under_enomem(void **state)
{
	struct fx *fx = *state;
	struct seen s = {0};
	uint64_t ids[N_FILES];
	long k;
	int rc = -ENOMEM;

	fx->o.commit_fn = on_commit;
	fx->o.commit_arg = &s;
	fx_reopen(fx);
	for (k = 0; k < 64 && rc == -ENOMEM; k++) {
		rc = rename_failing_at(fx, k, ids);
		if (rc == -ENOMEM) { /* nothing of the transaction remains */
			assert_int_equal(lookup_id(fx, "f0"), 0);
			assert_int_equal(lookup_id(fx, "f1"), 0);
		}
	}
	assert_int_equal(rc, 0);
	assert_int_equal(lookup_id(fx, "f0"), 0);
	assert_int_equal(lookup_id(fx, "f1"), ids[0]);
	assert_int_equal(s.n, N_FILES + 2); /* the creates, the rename, the victim */
	assert_true(seen_has(&s, MMSB_CH_RENAME, ids[0]));
	assert_true(seen_has(&s, MMSB_CH_UNLINK, ids[1])); /* was lost when realloc failed */
	assert_true(k > 1); /* the sweep did reach a failing realloc */
	fx_reopen(fx); /* and the log agrees */
	assert_int_equal(lookup_id(fx, "f1"), ids[0]);
}

/* In one transaction: create page a, page p, set p's user.mmsb.deps to
 * "a" with the kth realloc of setxattr failing, and commit whatever the
 * setxattr returned.  Returns setxattr's result; *crc gets commit's. */
static int deps_failing_at(struct fx *fx, long k, int *crc)
{
	struct mmsb_txn *t;
	struct mmsb_attr a;
	int rc;

	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_create(t, MMSB_ROOT_ID, "a", MMSB_T_PAGE, 0644, 0, 0, NULL, &a), 0);
	assert_int_equal(mmsb_txn_create(t, MMSB_ROOT_ID, "p", MMSB_T_PAGE, 0644, 0, 0, NULL, &a), 0); /* a: now p */
	fail_in = k;
	rc = mmsb_txn_setxattr(t, a.id, "user.mmsb.deps", "a", 1, 0);
	fail_in = -1;
	*crc = mmsb_txn_commit(t, NULL);
	return rc;
}

static ssize_t head_deps(struct fx *fx, uint64_t id)
{
	char v[16];

	return mmsb_getxattr(fx->st, id, "user.mmsb.deps", v, sizeof(v));
}

/* After a failed operation the transaction stays usable and commits what
 * it did before, unless the failure stopped half-way through applying a
 * record (here: the xattr set, its edge not): commit must then refuse, or
 * the head would hold a change the log does not. */
static void commit_after_enomem_matches_log(void **state)
{
	struct fx *fx = *state;
	int rc = -ENOMEM, crc, n_refused = 0;
	uint64_t p;
	ssize_t deps;
	long k;

	for (k = 0; k < 64 && rc == -ENOMEM; k++) {
		rc = deps_failing_at(fx, k, &crc);
		p = lookup_id(fx, "p");
		deps = p ? head_deps(fx, p) : -ENOENT;
		if (rc == -ENOMEM && crc < 0) { /* refused: nothing remains */
			n_refused++;
			assert_int_equal(crc, -ENOMEM);
			assert_int_equal(p, 0);
		} else if (rc == -ENOMEM) { /* the creates only */
			assert_int_equal(crc, 0);
			assert_int_not_equal(p, 0);
			assert_int_equal(deps, -ENODATA);
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(crc, 0);
			assert_int_equal(deps, 1);
		}
		fx_reopen(fx); /* replay gives the head that was shown */
		assert_int_equal(lookup_id(fx, "p"), p);
		if (p) {
			struct mmsb_txn *t;

			assert_int_equal(head_deps(fx, p), deps);
			assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
			assert_int_equal(mmsb_txn_unlink(t, MMSB_ROOT_ID, "p"), 0);
			assert_int_equal(mmsb_txn_unlink(t, MMSB_ROOT_ID, "a"), 0);
			assert_int_equal(mmsb_txn_commit(t, NULL), 0);
		}
	}
	assert_int_equal(rc, 0);
	assert_true(n_refused > 0); /* a failure came after the head changed */
}

int main(void)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test_setup_teardown(rename_victim_noted_under_enomem, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(commit_after_enomem_matches_log, fx_setup, fx_teardown),
	};

	fail_in = -1;
	return cmocka_run_group_tests_name("txn", t, NULL, NULL);
}
