/* test_fault.c - injected I/O failures (tests/fakes/io_fake.c): a failed log
 * append leaves the head unchanged and the store usable; an fsync failure
 * makes the store read-only for good and is never retried; a failed
 * checkpoint leaves no file behind. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io_fake.h"
#include "mmsb.h"

struct fx {
	char tmp[64];
	char dir[96];
	struct io_fake f;
	struct mmsb_store *st;
	uint64_t page;
};

static void quiet(void *arg, int level, const char *msg)
{
	(void)arg;
	if (getenv("MMSB_TEST_DIAG"))
		fprintf(stderr, "diag %d: %s\n", level, msg);
}

static int open_with(struct fx *fx, const struct mmsb_io_ops *io, struct mmsb_store **st)
{
	struct mmsb_store_opts o;

	mmsb_store_opts_init(&o);
	o.diag_fn = quiet;
	o.ckpt_at_close = false;
	o.ckpt_log_bytes = 0;
	o.io = io;
	return mmsb_store_open(fx->dir, &o, st);
}

static uint64_t write_txn(struct mmsb_store *st, uint64_t id, const char *s, int *rc)
{
	struct mmsb_txn *t;
	uint64_t e = 0;

	assert_int_equal(mmsb_txn_begin(st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_write(t, id, 0, s, strlen(s)), (ssize_t)strlen(s));
	*rc = mmsb_txn_commit(t, &e);
	return e;
}

static void expect(struct mmsb_store *st, uint64_t id, const char *want)
{
	char buf[64] = {0};

	assert_int_equal(mmsb_read(st, id, 0, buf, sizeof(buf) - 1), (ssize_t)strlen(want));
	assert_string_equal(buf, want);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct mmsb_txn *t;
	struct mmsb_attr a;
	int rc;

	assert_non_null(fx);
	strcpy(fx->tmp, "/tmp/mmsb-fault-XXXXXX");
	assert_non_null(mkdtemp(fx->tmp));
	snprintf(fx->dir, sizeof(fx->dir), "%s/s", fx->tmp);
	io_fake_init(&fx->f);
	assert_int_equal(open_with(fx, &fx->f.ops, &fx->st), 0);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_create(t, MMSB_ROOT_ID, "p", MMSB_T_PAGE, 0644, 0, 0, NULL, &a), 0);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	fx->page = a.id;
	assert_int_equal(write_txn(fx->st, fx->page, "hello", &rc), 2);
	assert_int_equal(rc, 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	mmsb_store_close(fx->st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->tmp);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

/* Reopen with the plain POSIX table: exactly the committed epochs. */
static void reopen_check(struct fx *fx, uint64_t head, const char *want)
{
	mmsb_store_close(fx->st);
	fx->st = NULL;
	assert_int_equal(open_with(fx, NULL, &fx->st), 0);
	assert_int_equal(mmsb_store_head(fx->st), head);
	expect(fx->st, fx->page, want);
	assert_int_equal(mmsb_store_verify(fx->st), 0);
}

static void append_error(struct fx *fx, int err, bool short_first)
{
	int rc;

	if (short_first) {
		fx->f.short_at = fx->f.calls[IO_FAKE_PWRITE] + 1;
		io_fake_fail(&fx->f, IO_FAKE_PWRITE, 2, err, false);
	} else {
		io_fake_fail(&fx->f, IO_FAKE_PWRITE, 1, err, false);
	}
	write_txn(fx->st, fx->page, "HELLO", &rc);
	assert_int_equal(rc, err);
	assert_int_equal(mmsb_store_head(fx->st), 2);
	expect(fx->st, fx->page, "hello");
	{
		struct mmsb_snap *s;

		assert_int_equal(mmsb_snap_open(fx->st, 3, &s), -ENOENT);
	}
	/* the cut-back worked: the next transaction gets epoch 3 */
	assert_false(mmsb_store_is_read_only(fx->st));
	assert_int_equal(write_txn(fx->st, fx->page, "world", &rc), 3);
	assert_int_equal(rc, 0);
	expect(fx->st, fx->page, "world");
	reopen_check(fx, 3, "world");
}

static void pwrite_eio_in_commit(void **state)
{
	append_error(*state, -EIO, false);
}

static void pwrite_enospc_in_commit(void **state)
{
	append_error(*state, -ENOSPC, false);
}

static void short_write_then_eio(void **state)
{
	append_error(*state, -EIO, true);
}

static void short_write_alone_is_retried(void **state)
{
	struct fx *fx = *state;
	int rc;

	fx->f.short_at = fx->f.calls[IO_FAKE_PWRITE] + 1;
	assert_int_equal(write_txn(fx->st, fx->page, "HELLO", &rc), 3);
	assert_int_equal(rc, 0);
	reopen_check(fx, 3, "HELLO");
}

static void fsync_failure_is_sticky(void **state)
{
	struct fx *fx = *state;
	struct mmsb_txn *t;
	unsigned calls;
	int rc;

	assert_int_equal(write_txn(fx->st, fx->page, "again", &rc), 3);
	assert_int_equal(rc, 0);
	io_fake_fail(&fx->f, IO_FAKE_FSYNC, 1, -EIO, false);
	assert_int_equal(mmsb_store_sync(fx->st), -EIO);
	calls = fx->f.calls[IO_FAKE_FSYNC];
	assert_true(mmsb_store_is_read_only(fx->st));
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), -EROFS);
	assert_true(mmsb_store_sync(fx->st) < 0); /* not retried, still failed */
	assert_int_equal(fx->f.calls[IO_FAKE_FSYNC], calls);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), -EROFS);
	/* reads keep working */
	expect(fx->st, fx->page, "again");
	assert_int_equal(mmsb_store_head(fx->st), 3);
	mmsb_store_close(fx->st);
	assert_int_equal(fx->f.calls[IO_FAKE_FSYNC], calls); /* close does not retry either */
	fx->st = NULL;
	/* the page cache still has the bytes: a reopen sees every commit */
	assert_int_equal(open_with(fx, NULL, &fx->st), 0);
	assert_int_equal(mmsb_store_head(fx->st), 3);
	expect(fx->st, fx->page, "again");
}

static void fsync_failure_in_sync_commit_mode(void **state)
{
	struct fx *fx = *state;
	struct mmsb_store_opts o;
	struct mmsb_txn *t;
	uint64_t e = 0;

	mmsb_store_close(fx->st);
	mmsb_store_opts_init(&o);
	o.diag_fn = quiet;
	o.ckpt_at_close = false;
	o.sync = MMSB_SYNC_COMMIT;
	o.io = &fx->f.ops;
	assert_int_equal(mmsb_store_open(fx->dir, &o, &fx->st), 0);
	io_fake_fail(&fx->f, IO_FAKE_FSYNC, 1, -EIO, false);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_write(t, fx->page, 0, "sync!", 5), 5);
	assert_int_equal(mmsb_txn_commit(t, &e), -EIO);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), -EROFS);
	assert_true(mmsb_store_is_read_only(fx->st));
}

static unsigned ckpt_files(struct fx *fx, bool *tmp_left)
{
	char path[200];
	struct dirent *de;
	unsigned n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/ckpt", fx->dir);
	d = opendir(path);
	assert_non_null(d);
	*tmp_left = false;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (strncmp(de->d_name, ".tmp", 4) == 0)
			*tmp_left = true;
		else
			n++;
	}
	closedir(d);
	return n;
}

static void ckpt_failure(struct fx *fx, enum io_fake_op op, int err)
{
	uint64_t ck = 0;
	bool tmp;
	int rc;

	assert_int_equal(ckpt_files(fx, &tmp), 0);
	/* the log is durable first, so the fault hits the checkpoint's own I/O */
	assert_int_equal(mmsb_store_sync(fx->st), 0);
	io_fake_fail(&fx->f, op, 1, err, false);
	rc = mmsb_checkpoint(fx->st, &ck);
	assert_int_equal(rc, err);
	assert_int_equal(ckpt_files(fx, &tmp), 0);
	assert_false(tmp);
	{
		struct mmsb_ckpt_info ci[4];

		assert_int_equal(mmsb_checkpoints(fx->st, ci, 4), 0);
	}
	/* the store still works */
	assert_false(mmsb_store_is_read_only(fx->st));
	assert_int_equal(write_txn(fx->st, fx->page, "after", &rc), 3);
	assert_int_equal(rc, 0);
	expect(fx->st, fx->page, "after");
	/* and a later checkpoint succeeds */
	assert_int_equal(mmsb_checkpoint(fx->st, &ck), 0);
	assert_int_equal(ck, 3);
	assert_int_equal(ckpt_files(fx, &tmp), 1);
	assert_false(tmp);
	reopen_check(fx, 3, "after");
}

static void ckpt_pwrite_eio(void **state)
{
	ckpt_failure(*state, IO_FAKE_PWRITE, -EIO);
}

static void ckpt_pwrite_enospc(void **state)
{
	ckpt_failure(*state, IO_FAKE_PWRITE, -ENOSPC);
}

static void ckpt_fsync_eio(void **state)
{
	ckpt_failure(*state, IO_FAKE_FSYNC, -EIO);
}

static void ckpt_rename_eio(void **state)
{
	ckpt_failure(*state, IO_FAKE_RENAME, -EIO);
}

/* A damaged superblock copy whose rewrite fails (rename EIO) does not stop
 * the read-write open; verify still reports it; the next open repairs it. */
static void superblock_repair_fails(void **state)
{
	struct fx *fx = *state;
	char path[160];
	uint8_t b;
	int fd;

	mmsb_store_close(fx->st);
	fx->st = NULL;
	snprintf(path, sizeof(path), "%s/mmsb.super", fx->dir);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, 128 + 9), 1);
	b ^= 0x10;
	assert_int_equal(pwrite(fd, &b, 1, 128 + 9), 1);
	close(fd);
	io_fake_fail(&fx->f, IO_FAKE_RENAME, 1, -EIO, false);
	assert_int_equal(open_with(fx, &fx->f.ops, &fx->st), 0);
	expect(fx->st, fx->page, "hello");
	assert_true(mmsb_store_verify(fx->st) < 0);
	reopen_check(fx, 2, "hello"); /* repaired: verify is clean */
}

int main(void)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test_setup_teardown(pwrite_eio_in_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(pwrite_enospc_in_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(short_write_then_eio, setup, teardown),
		cmocka_unit_test_setup_teardown(short_write_alone_is_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(fsync_failure_is_sticky, setup, teardown),
		cmocka_unit_test_setup_teardown(fsync_failure_in_sync_commit_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(ckpt_pwrite_eio, setup, teardown),
		cmocka_unit_test_setup_teardown(ckpt_pwrite_enospc, setup, teardown),
		cmocka_unit_test_setup_teardown(ckpt_fsync_eio, setup, teardown),
		cmocka_unit_test_setup_teardown(ckpt_rename_eio, setup, teardown),
		cmocka_unit_test_setup_teardown(superblock_repair_fails, setup, teardown),
	};

	return cmocka_run_group_tests_name("fault", t, NULL, NULL);
}
