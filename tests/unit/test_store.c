/* test_store.c - the public API end to end: transactions, epochs, reopen,
 * checkpoints, time travel, history, diff, restore, compaction, orphans. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fx.h"
#include "mmsb.h"

/* One-shot helpers: each is one transaction. */
static uint64_t create(struct mmsb_store *st, uint64_t parent, const char *name, enum mmsb_type t)
{
	struct mmsb_txn *txn;
	struct mmsb_attr a;
	uint64_t e;

	assert_int_equal(mmsb_txn_begin(st, MMSB_SRC_USER, &txn), 0);
	assert_int_equal(mmsb_txn_create(txn, parent, name, t, 0644, 0, 0, NULL, &a), 0);
	assert_int_equal(mmsb_txn_commit(txn, &e), 0);
	assert_true(e > 0);
	return a.id;
}

static void expect_bytes(struct mmsb_store *st, uint64_t id, const char *want)
{
	char buf[256];
	ssize_t n = mmsb_read(st, id, 0, buf, sizeof(buf));

	assert_int_equal(n, (ssize_t)strlen(want));
	assert_memory_equal(buf, want, strlen(want));
}

static void write_read_reopen(void **state)
{
	struct fx *fx = *state;
	uint64_t id = create(fx->st, MMSB_ROOT_ID, "page", MMSB_T_PAGE), e1, e2;
	struct mmsb_attr a;

	assert_int_equal(mmsb_store_head(fx->st), 1);
	e1 = fx_write(fx, id, 0, "hello world", 11);
	assert_int_equal(e1, 2);
	e2 = fx_write(fx, id, 6, "WORLD", 5);
	assert_int_equal(e2, 3);
	assert_int_equal(fx_write(fx, id, 6, "WORLD", 5), 0); /* no change: no epoch */
	assert_int_equal(mmsb_store_head(fx->st), 3);
	expect_bytes(fx->st, id, "hello WORLD");
	fx_reopen(fx);
	expect_bytes(fx->st, id, "hello WORLD");
	assert_int_equal(mmsb_lookup(fx->st, MMSB_ROOT_ID, "page", &a), 0);
	assert_int_equal(a.version, 2);
	assert_int_equal(a.epoch, 3);
	assert_int_equal(mmsb_store_head(fx->st), 3);
}

static void time_travel_every_epoch(void **state)
{
	struct fx *fx = *state;
	uint64_t id = create(fx->st, MMSB_ROOT_ID, "p", MMSB_T_PAGE), ck;
	char want[64][16];
	int i;

	for (i = 0; i < 40; i++) {
		snprintf(want[i], sizeof(want[i]), "v%03d", i);
		fx_write(fx, id, (uint64_t)(i % 3), want[i], 4);
		if (i == 20)
			assert_int_equal(mmsb_checkpoint(fx->st, &ck), 0);
	}
	for (int pass = 0; pass < 2; pass++) {
		char cur[16] = "";

		for (i = 0; i < 40; i++) {
			struct mmsb_snap *s;
			char buf[16] = {0};

			memcpy(cur + i % 3, want[i], 4);
			assert_int_equal(mmsb_snap_open(fx->st, (uint64_t)i + 2, &s), 0);
			assert_int_equal(mmsb_snap_read(s, id, 0, buf, sizeof(buf)), (ssize_t)strlen(cur));
			assert_string_equal(buf, cur);
			mmsb_snap_close(s);
		}
		fx_reopen(fx);
	}
	struct mmsb_snap *s;
	struct mmsb_attr a;

	assert_int_equal(mmsb_snap_open(fx->st, 1, &s), 0);
	assert_int_equal(mmsb_snap_lookup(s, MMSB_ROOT_ID, "p", &a), 0);
	assert_int_equal(a.size, 0);
	mmsb_snap_close(s);
	assert_int_equal(mmsb_snap_open(fx->st, 0, &s), 0);
	assert_int_equal(mmsb_snap_lookup(s, MMSB_ROOT_ID, "p", &a), -ENOENT);
	mmsb_snap_close(s);
	assert_int_equal(mmsb_snap_open(fx->st, 1000, &s), -ENOENT);
}

static void namespace_ops(void **state)
{
	struct fx *fx = *state;
	uint64_t d = create(fx->st, MMSB_ROOT_ID, "dir", MMSB_T_DIR);
	uint64_t p = create(fx->st, d, "a", MMSB_T_PAGE), q = create(fx->st, d, "b", MMSB_T_PAGE);
	struct mmsb_txn *t;
	struct mmsb_attr a;

	fx_write(fx, p, 0, "AAA", 3);
	fx_write(fx, q, 0, "BBB", 3);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_rename(t, d, "a", d, "b", MMSB_RENAME_NOREPLACE), -EEXIST);
	assert_int_equal(mmsb_txn_rename(t, d, "a", d, "b", MMSB_RENAME_EXCHANGE), 0);
	assert_int_equal(mmsb_txn_rmdir(t, MMSB_ROOT_ID, "dir"), -ENOTEMPTY);
	assert_int_equal(mmsb_txn_unlink(t, MMSB_ROOT_ID, "dir"), -EISDIR);
	assert_int_equal(mmsb_txn_setxattr(t, q, "user.k", "v1", 2, MMSB_XATTR_REPLACE), -ENODATA);
	assert_int_equal(mmsb_txn_setxattr(t, q, "user.k", "v1", 2, 0), 0);
	assert_int_equal(mmsb_txn_setxattr(t, q, "user.k", "v2", 2, MMSB_XATTR_CREATE), -EEXIST);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	assert_int_equal(mmsb_lookup(fx->st, d, "a", &a), 0);
	assert_int_equal(a.id, q);
	fx_reopen(fx);
	assert_int_equal(mmsb_lookup(fx->st, d, "b", &a), 0);
	assert_int_equal(a.id, p);
	expect_bytes(fx->st, p, "AAA");
	{
		char v[8];

		assert_int_equal(mmsb_getxattr(fx->st, q, "user.k", v, sizeof(v)), 2);
		assert_memory_equal(v, "v1", 2);
	}
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_rename(t, d, "a", d, "b", 0), 0); /* replaces p */
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	assert_int_equal(mmsb_getattr(fx->st, p, &a), -ENOENT);
	fx_reopen(fx);
	assert_int_equal(mmsb_lookup(fx->st, d, "b", &a), 0);
	assert_int_equal(a.id, q);
	assert_int_equal(mmsb_lookup(fx->st, d, "a", &a), -ENOENT);
}

static void orphan_lives_while_referenced(void **state)
{
	struct fx *fx = *state;
	uint64_t p = create(fx->st, MMSB_ROOT_ID, "tmp", MMSB_T_PAGE), head;
	struct mmsb_txn *t;

	fx_write(fx, p, 0, "data", 4);
	assert_int_equal(mmsb_ref(fx->st, p), 0);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_unlink(t, MMSB_ROOT_ID, "tmp"), 0);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	head = mmsb_store_head(fx->st);
	expect_bytes(fx->st, p, "data");
	assert_int_equal(fx_write(fx, p, 4, "more", 4), 0); /* unlogged: no epoch */
	expect_bytes(fx->st, p, "datamore");
	assert_int_equal(mmsb_store_head(fx->st), head);
	mmsb_unref(fx->st, p);
	assert_int_equal(mmsb_read(fx->st, p, 0, (char[4]){0}, 4), -ENOENT);
}

static int count_hist(void *arg, const struct mmsb_hist_entry *e)
{
	(*(int *)arg)++;
	(void)e;
	return 0;
}

struct diff_seen {
	char kinds[16];
	char paths[16][32];
	uint64_t off, len;
	int n;
};

static int record_diff(void *arg, char kind, const char *path, const struct mmsb_range *r, size_t n)
{
	struct diff_seen *d = arg;

	if (d->n < 16) {
		d->kinds[d->n] = kind;
		snprintf(d->paths[d->n], sizeof(d->paths[0]), "%s", path);
		if (n) {
			d->off = r[0].off;
			d->len = r[0].len;
		}
		d->n++;
	}
	return 0;
}

static void history_diff_restore(void **state)
{
	struct fx *fx = *state;
	uint64_t p = create(fx->st, MMSB_ROOT_ID, "p", MMSB_T_PAGE), e0, e1, e2, er;
	struct diff_seen d = {0};
	int n = 0;
	struct mmsb_attr a;
	char big[10000];

	memset(big, 'x', sizeof(big));
	e0 = fx_write(fx, p, 0, big, sizeof(big));
	e1 = fx_write(fx, p, 5000, "YY", 2);
	create(fx->st, MMSB_ROOT_ID, "q", MMSB_T_PAGE);
	e2 = mmsb_store_head(fx->st);
	assert_int_equal(mmsb_history(fx->st, p, 0, UINT64_MAX, count_hist, &n), 0);
	assert_int_equal(n, 3); /* create + 2 writes */
	assert_int_equal(mmsb_diff(fx->st, e0, e2, NULL, 0, record_diff, &d), 0);
	assert_int_equal(d.n, 2);
	assert_true(memchr(d.kinds, 'M', 2) && memchr(d.kinds, '+', 2));
	assert_int_equal(d.off, 5000);
	assert_int_equal(d.len, 2);
	/* restore the whole tree to e0: q goes, p's bytes come back */
	assert_int_equal(mmsb_restore(fx->st, e0, NULL, 0, &er), 0);
	assert_true(er > e2);
	assert_int_equal(mmsb_lookup(fx->st, MMSB_ROOT_ID, "q", &a), -ENOENT);
	{
		char buf[2];

		assert_int_equal(mmsb_read(fx->st, p, 5000, buf, 2), 2);
		assert_memory_equal(buf, "xx", 2);
	}
	/* restore one path to e1 (history is kept: e1 still readable) */
	assert_int_equal(mmsb_restore(fx->st, e1, (const char *const[]){"p"}, 1, &er), 0);
	{
		char buf[2];

		assert_int_equal(mmsb_read(fx->st, p, 5000, buf, 2), 2);
		assert_memory_equal(buf, "YY", 2);
	}
	assert_int_equal(mmsb_restore(fx->st, e1, (const char *const[]){"nope"}, 1, &er), -ENOENT);
	fx_reopen(fx);
	assert_int_equal(mmsb_lookup(fx->st, MMSB_ROOT_ID, "q", &a), -ENOENT);
}

static void compact_drops_history(void **state)
{
	struct fx *fx = *state;
	uint64_t p, ck, kept;
	struct mmsb_snap *s;
	int i;

	fx->o.segment_bytes = 4096; /* several segments, so some can be dropped */
	fx_reopen(fx);
	p = create(fx->st, MMSB_ROOT_ID, "p", MMSB_T_PAGE);
	for (i = 0; i < 200; i++)
		fx_write(fx, p, (uint64_t)i * 10, "0123456789", 10);
	assert_int_equal(mmsb_tag_set(fx->st, "early", 5), 0);
	assert_int_equal(mmsb_tag_set(fx->st, "123", 5), -EINVAL);
	assert_int_equal(mmsb_tag_set(fx->st, "head", 5), -EINVAL);
	assert_int_equal(mmsb_tag_set(fx->st, "late", 100000), -ENOENT);
	assert_int_equal(mmsb_checkpoint(fx->st, &ck), 0);
	for (i = 0; i < 50; i++)
		fx_write(fx, p, 0, i % 2 ? "a" : "b", 1);
	assert_int_equal(mmsb_tag_set(fx->st, "after", ck + 1), 0);
	assert_int_equal(mmsb_compact(fx->st, ck, 0, &kept), -EBUSY); /* would drop "early" */
	fx_reopen(fx);
	{
		struct mmsb_tag tg[4];
		uint64_t e;

		assert_int_equal(mmsb_tags(fx->st, tg, 4), 2);
		assert_string_equal(tg[0].name, "early");
		assert_int_equal(mmsb_tag_get(fx->st, "after", &e), 0);
		assert_int_equal(e, ck + 1);
	}
	assert_int_equal(mmsb_compact(fx->st, ck, MMSB_COMPACT_FORCE, &kept), 0);
	assert_int_equal(mmsb_tag_get(fx->st, "early", &kept), -ENOENT);
	assert_int_equal(kept, ck);
	assert_int_equal(mmsb_snap_open(fx->st, ck - 1, &s), -ENOENT);
	assert_int_equal(mmsb_snap_open(fx->st, ck + 10, &s), 0);
	mmsb_snap_close(s);
	fx_reopen(fx);
	assert_int_equal(mmsb_store_oldest(fx->st), ck);
	assert_int_equal(mmsb_store_head(fx->st), ck + 50);
	assert_int_equal(mmsb_store_verify(fx->st), 0);
}

/* A truncate that shrinks a page whose buffer a checkpoint capture or a
 * view still shares must not touch the shared bytes or run past the copy. */
static void shrink_shared_page(void **state)
{
	struct fx *fx = *state;
	uint64_t p = create(fx->st, MMSB_ROOT_ID, "p", MMSB_T_PAGE), e;
	struct mmsb_snap *s;
	struct mmsb_txn *t;
	char big[20000], buf[20000];

	memset(big, 'q', sizeof(big));
	e = fx_write(fx, p, 0, big, sizeof(big));
	assert_int_equal(mmsb_snap_open(fx->st, e, &s), 0); /* shares the buffer */
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_truncate(t, p, 10), 0);
	assert_int_equal(mmsb_txn_truncate(t, p, 30), 0);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	assert_int_equal(mmsb_snap_read(s, p, 0, buf, sizeof(buf)), (ssize_t)sizeof(big));
	assert_memory_equal(buf, big, sizeof(big));
	mmsb_snap_close(s);
	assert_int_equal(mmsb_read(fx->st, p, 0, buf, sizeof(buf)), 30);
	assert_memory_equal(buf, "qqqqqqqqqq\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 30);
}

static void second_open_is_busy(void **state)
{
	struct fx *fx = *state;
	struct mmsb_store_opts o = fx->o;
	struct mmsb_store *st2;

	assert_int_equal(mmsb_store_open(fx->dir, &o, &st2), -EBUSY);
	o.read_only = true;
	assert_int_equal(mmsb_store_open(fx->dir, &o, &st2), 0);
	mmsb_store_close(st2);
}

/* A store is created only in an empty directory: a directory with the
 * user's files is refused and left exactly as it was (no LOCK, no log/). */
static void create_refuses_foreign_dir(void **state)
{
	struct fx *fx = *state;
	struct mmsb_store_opts o = fx->o;
	struct mmsb_store *st2 = NULL;
	char dir[512], path[600];
	struct stat s;
	int fd;

	snprintf(dir, sizeof(dir), "%s/foreign", fx->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/file.txt", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mmsb_store_open(dir, &o, &st2), -ENOTEMPTY);
	assert_null(st2);
	snprintf(path, sizeof(path), "%s/LOCK", dir);
	assert_int_equal(stat(path, &s), -1);
	snprintf(path, sizeof(path), "%s/log", dir);
	assert_int_equal(stat(path, &s), -1);
	snprintf(path, sizeof(path), "%s/file.txt", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mmsb_store_open(dir, &o, &st2), 0); /* empty: a new store */
	mmsb_store_close(st2);
}

/* The checkpoints the store has once it has n, or after wait_ms. */
static uint64_t ckpts_within(struct mmsb_store *st, uint64_t n, unsigned wait_ms)
{
	struct mmsb_stats s;
	unsigned waited = 0;

	for (;;) {
		mmsb_store_stats(st, &s);
		if (s.n_ckpts >= n || waited >= wait_ms)
			return s.n_ckpts;
		usleep(10000);
		waited += 10;
	}
}

/* Automatic checkpoints come after ckpt_log_bytes of log, or after as much
 * log as the newest checkpoint file when that is larger. */
static void ckpt_trigger_grows_with_store(void **state)
{
	struct fx *fx = *state;
	size_t big = 2u << 20, i;
	uint8_t *r = malloc(big + 1);
	uint64_t x = 88172645463325252ull, id, n0;
	struct mmsb_stats s;

	assert_non_null(r);
	for (i = 0; i <= big; i++) { /* incompressible: the checkpoint file is about 2 MiB */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		r[i] = (uint8_t)(x >> 24);
	}
	fx->o.ckpt_log_bytes = 64u << 10;
	fx_reopen(fx);
	mmsb_store_stats(fx->st, &s);
	n0 = s.n_ckpts;
	id = fx_page(fx, "big", r, big); /* 2 MiB of log: past 64 KiB */
	assert_int_equal(ckpts_within(fx->st, n0 + 1, 10000), n0 + 1);
	for (i = 0; i < 8; i++) /* 256 KiB more: past 64 KiB, short of the 2 MiB file */
		assert_true(fx_write(fx, id, i * 65536, r + 1 + i * 65536, 32768) > 0);
	assert_int_equal(ckpts_within(fx->st, n0 + 2, 500), n0 + 1);
	assert_true(fx_write(fx, id, 0, r + 1, big) > 0); /* 2 MiB more: due */
	assert_int_equal(ckpts_within(fx->st, n0 + 2, 10000), n0 + 2);
	free(r);
}

int main(void)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test_setup_teardown(write_read_reopen, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(time_travel_every_epoch, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(namespace_ops, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(orphan_lives_while_referenced, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(history_diff_restore, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(create_refuses_foreign_dir, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(compact_drops_history, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(shrink_shared_page, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(second_open_is_busy, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(ckpt_trigger_grows_with_store, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("store", t, NULL, NULL);
}
