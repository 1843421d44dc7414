/* fx.c - the store fixture of fx.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx.h"

static void fx_quiet(void *arg, int level, const char *msg)
{
	(void)arg;
	(void)level;
	(void)msg;
}

void fx_reopen(struct fx *fx)
{
	mmsb_store_close(fx->st);
	fx->st = NULL;
	assert_int_equal(mmsb_store_open(fx->dir, &fx->o, &fx->st), 0);
}

int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/mmsb-fx-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	strcat(fx->dir, "/s");
	mmsb_store_opts_init(&fx->o);
	fx->o.diag_fn = fx_quiet;
	fx_reopen(fx);
	*state = fx;
	return 0;
}

void fx_rmtree(const char *dir)
{
	char cmd[160];

	assert_true(strlen(dir) < sizeof(cmd) - 16);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int fx_teardown(void **state)
{
	struct fx *fx = *state;

	mmsb_store_close(fx->st);
	fx->dir[strlen(fx->dir) - 2] = '\0'; /* the temporary directory around it */
	fx_rmtree(fx->dir);
	free(fx);
	return 0;
}

uint64_t fx_page(struct fx *fx, const char *name, const void *bytes, size_t len)
{
	return fx_page_in(fx->st, name, bytes, len);
}

uint64_t fx_page_in(struct mmsb_store *st, const char *name, const void *bytes, size_t len)
{
	struct mmsb_txn *t;
	struct mmsb_attr a;

	assert_int_equal(mmsb_txn_begin(st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_create(t, MMSB_ROOT_ID, name, MMSB_T_PAGE, 0644, 0, 0, NULL, &a), 0);
	if (len)
		assert_int_equal(mmsb_txn_write(t, a.id, 0, bytes, len), (ssize_t)len);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	return a.id;
}

uint64_t fx_write(struct fx *fx, uint64_t id, uint64_t off, const void *bytes, size_t len)
{
	struct mmsb_txn *t;
	uint64_t e;

	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_write(t, id, off, bytes, len), (ssize_t)len);
	assert_int_equal(mmsb_txn_commit(t, &e), 0);
	return e;
}

int fx_setx(struct fx *fx, uint64_t id, const char *name, const char *val)
{
	struct mmsb_txn *t;
	int rc;

	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	rc = mmsb_txn_setxattr(t, id, name, val, strlen(val), 0);
	if (rc == 0)
		assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	else
		mmsb_txn_abort(t);
	return rc;
}
