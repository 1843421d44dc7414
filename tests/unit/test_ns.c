/* test_ns.c - record application (src/ns.c): every record kind, applied
 * through the store API and checked at the head, then rebuilt by replay.
 *
 * Each step is one transaction producing one kind of record (CREATE of a
 * directory, page and symlink, MKNOD, LINK, WRITE, TRUNCATE, SETATTR,
 * SETXATTR, RMXATTR, RENAME plain, replacing and exchanging, UNLINK,
 * RMDIR).  After each commit the head is checked against what the record
 * must do, and the whole tree at that epoch is written down as text (via a
 * snapshot).  Then every epoch is read back by time travel (which replays
 * the records since the nearest checkpoint) and must give the same text,
 * before and after a reopen (checkpoint, then replay of the log tail).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx.h"
#include "mmsb.h"

#define N_STEPS 20	   /* at most this many steps */
#define DUMP_CAP 8192	   /* text of one epoch's tree */
#define DIR_CAP 32	   /* entries of one directory */

/* ---- the tree at an epoch as text ---------------------------------------- */

struct dump {
	char s[DUMP_CAP]; /* one line per name, in path order */
	size_t len;
};

struct dirents {
	char name[DIR_CAP][64];
	uint64_t id[DIR_CAP];
	unsigned n;
};

static void put(struct dump *d, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(d->s + d->len, sizeof(d->s) - d->len, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(d->s) - d->len);
	d->len += (size_t)n;
}

static int add_ent(void *arg, const char *name, const struct mmsb_attr *a, uint64_t cookie)
{
	struct dirents *e = arg;
	unsigned i;

	(void)cookie;
	assert_true(e->n < DIR_CAP && strlen(name) < sizeof(e->name[0]));
	for (i = e->n; i > 0 && strcmp(e->name[i - 1], name) > 0; i--) { /* sorted by name */
		strcpy(e->name[i], e->name[i - 1]);
		e->id[i] = e->id[i - 1];
	}
	strcpy(e->name[i], name);
	e->id[i] = a->id;
	e->n++;
	return 0;
}

static void dump_node(struct mmsb_snap *sn, const char *path, uint64_t id, struct dump *d);

static void dump_dir(struct mmsb_snap *sn, const char *path, uint64_t id, struct dump *d)
{
	struct dirents *e = calloc(1, sizeof(*e));
	char sub[256];
	unsigned i;

	assert_non_null(e);
	assert_int_equal(mmsb_snap_readdir(sn, id, 0, add_ent, e), 0);
	for (i = 0; i < e->n; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", path, e->name[i]);
		dump_node(sn, sub, e->id[i], d);
	}
	free(e);
}

/* path type mode uid gid nlink size rdev mtime | bytes or target | xattrs */
static void dump_node(struct mmsb_snap *sn, const char *path, uint64_t id, struct dump *d)
{
	char buf[256], list[256], val[64];
	struct mmsb_attr a;
	ssize_t n, i, v;

	assert_int_equal(mmsb_snap_getattr(sn, id, &a), 0);
	put(d, "%s #%" PRIu64 " t%d %o %u:%u n%u s%" PRIu64 " r%" PRIx64 " m%" PRId64 " |", path, a.id, a.type,
	    a.mode, a.uid, a.gid, a.nlink, a.size, a.rdev, a.mtime_ns);
	if (a.type == MMSB_T_PAGE) {
		n = mmsb_snap_read(sn, id, 0, buf, sizeof(buf));
		assert_int_equal(n, (ssize_t)a.size);
		put(d, " %.*s", (int)n, buf);
	} else if (a.type == MMSB_T_SYMLINK) {
		n = mmsb_snap_readlink(sn, id, buf, sizeof(buf));
		assert_int_equal(n, (ssize_t)a.size);
		put(d, " -> %.*s", (int)n, buf);
	}
	n = mmsb_snap_listxattr(sn, id, list, sizeof(list));
	assert_true(n >= 0);
	for (i = 0; i < n; i += (ssize_t)strlen(list + i) + 1) {
		v = mmsb_snap_getxattr(sn, id, list + i, val, sizeof(val));
		assert_true(v >= 0);
		put(d, " %s=%.*s", list + i, (int)v, val);
	}
	put(d, "\n");
	if (a.type == MMSB_T_DIR)
		dump_dir(sn, path, id, d);
}

static void dump_epoch(struct mmsb_store *st, uint64_t epoch, struct dump *d)
{
	struct mmsb_snap *sn;

	assert_int_equal(mmsb_snap_open(st, epoch, &sn), 0);
	d->len = 0;
	d->s[0] = '\0';
	dump_node(sn, "", MMSB_ROOT_ID, d);
	mmsb_snap_close(sn);
}

/* ---- the steps ------------------------------------------------------------- */

struct run {
	struct fx *fx;
	struct mmsb_txn *t;
	uint64_t epoch[N_STEPS]; /* the epoch of step i */
	struct dump *text;	 /* [N_STEPS]: the tree after step i */
	unsigned n;		 /* steps done */
};

static struct mmsb_txn *begin(struct run *r)
{
	assert_int_equal(mmsb_txn_begin(r->fx->st, MMSB_SRC_USER, &r->t), 0);
	return r->t;
}

/* Commit the step; record its epoch and its tree. */
static void commit(struct run *r)
{
	uint64_t e = 0;

	assert_int_equal(mmsb_txn_commit(r->t, &e), 0);
	assert_int_equal(e, mmsb_store_head(r->fx->st)); /* one step, one epoch */
	assert_true(r->n < N_STEPS);
	r->epoch[r->n] = e;
	dump_epoch(r->fx->st, e, &r->text[r->n]);
	r->n++;
}

static uint64_t id_of(struct run *r, uint64_t parent, const char *name)
{
	struct mmsb_attr a;
	int rc = mmsb_lookup(r->fx->st, parent, name, &a);

	return rc == 0 ? a.id : 0;
}

static struct mmsb_attr attr_of(struct run *r, uint64_t id)
{
	struct mmsb_attr a;

	assert_int_equal(mmsb_getattr(r->fx->st, id, &a), 0);
	return a;
}

static void expect_bytes(struct run *r, uint64_t id, const char *want)
{
	char buf[64];
	ssize_t n = mmsb_read(r->fx->st, id, 0, buf, sizeof(buf));

	assert_int_equal(n, (ssize_t)strlen(want));
	assert_memory_equal(buf, want, strlen(want));
}

static void run_steps(struct run *r)
{
	const uint64_t root = MMSB_ROOT_ID;
	struct mmsb_setattr sa = {.valid = MMSB_SET_MODE | MMSB_SET_UID | MMSB_SET_MTIME,
				  .mode = 0600, .uid = 7, .mtime_ns = 1234567890};
	uint64_t d, p, s, f, c, t;
	struct mmsb_attr a;
	char buf[64];

	/* CREATE: a directory, a page in it, a symlink */
	assert_int_equal(mmsb_txn_create(begin(r), root, "d", MMSB_T_DIR, 0755, 0, 0, NULL, &a), 0);
	commit(r);
	d = id_of(r, root, "d");
	assert_true(d && attr_of(r, d).type == MMSB_T_DIR && attr_of(r, root).nlink == 3);
	assert_int_equal(mmsb_txn_create(begin(r), d, "p", MMSB_T_PAGE, 0644, 1, 2, NULL, &a), 0);
	commit(r);
	p = id_of(r, d, "p");
	assert_true(p && attr_of(r, p).size == 0 && attr_of(r, p).uid == 1 && attr_of(r, p).gid == 2);
	assert_int_equal(mmsb_txn_create(begin(r), root, "s", MMSB_T_SYMLINK, 0777, 0, 0, "d/p", &a), 0);
	commit(r);
	s = id_of(r, root, "s");
	assert_int_equal(mmsb_readlink(r->fx->st, s, buf, sizeof(buf)), 3);
	/* WRITE: new bytes, then a change in the middle past a gap */
	assert_int_equal(mmsb_txn_write(begin(r), p, 0, "hello world", 11), 11);
	commit(r);
	expect_bytes(r, p, "hello world");
	assert_int_equal(mmsb_txn_write(begin(r), p, 6, "W", 1), 1);
	commit(r);
	expect_bytes(r, p, "hello World");
	/* MKNOD: a fifo and a character device */
	assert_int_equal(mmsb_txn_mknod(begin(r), root, "f", MMSB_T_FIFO, 0600, 0, 0, 0, &a), 0);
	commit(r);
	f = id_of(r, root, "f");
	assert_true(f && attr_of(r, f).type == MMSB_T_FIFO && attr_of(r, f).rdev == 0);
	assert_int_equal(mmsb_txn_mknod(begin(r), root, "c", MMSB_T_CHR, 0620, 0, 5, 0x0000000100000003ull, &a), 0);
	commit(r);
	c = id_of(r, root, "c");
	assert_true(c && attr_of(r, c).rdev == 0x0000000100000003ull && attr_of(r, c).gid == 5);
	/* LINK: p gets a second name */
	assert_int_equal(mmsb_txn_link(begin(r), p, root, "q", &a), 0);
	commit(r);
	assert_int_equal(id_of(r, root, "q"), p);
	assert_int_equal(attr_of(r, p).nlink, 2);
	/* TRUNCATE */
	assert_int_equal(mmsb_txn_truncate(begin(r), p, 5), 0);
	commit(r);
	expect_bytes(r, p, "hello");
	/* SETATTR */
	assert_int_equal(mmsb_txn_setattr(begin(r), p, &sa), 0);
	commit(r);
	a = attr_of(r, p);
	assert_true(a.mode == 0600 && a.uid == 7 && a.gid == 2 && a.mtime_ns == 1234567890);
	/* SETXATTR, RMXATTR */
	assert_int_equal(mmsb_txn_setxattr(begin(r), p, "user.k", "v1", 2, 0), 0);
	commit(r);
	assert_int_equal(mmsb_getxattr(r->fx->st, p, "user.k", buf, sizeof(buf)), 2);
	assert_int_equal(mmsb_txn_setxattr(begin(r), d, "user.dir", "x", 1, 0), 0);
	commit(r);
	assert_int_equal(mmsb_txn_removexattr(begin(r), p, "user.k"), 0);
	commit(r);
	assert_int_equal(mmsb_getxattr(r->fx->st, p, "user.k", buf, sizeof(buf)), -ENODATA);
	/* RENAME: to another directory; onto a victim; exchange */
	assert_int_equal(mmsb_txn_rename(begin(r), d, "p", root, "r", 0), 0);
	commit(r);
	assert_true(id_of(r, d, "p") == 0 && id_of(r, root, "r") == p);
	assert_int_equal(mmsb_txn_create(begin(r), root, "t", MMSB_T_PAGE, 0644, 0, 0, NULL, &a), 0);
	t = a.id;
	assert_int_equal(mmsb_txn_write(r->t, t, 0, "T", 1), 1);
	commit(r);
	assert_int_equal(mmsb_txn_rename(begin(r), root, "t", root, "f", 0), 0);
	commit(r);
	assert_true(id_of(r, root, "t") == 0 && id_of(r, root, "f") == t);
	assert_int_equal(mmsb_getattr(r->fx->st, f, &a), -ENOENT); /* the fifo is gone */
	assert_int_equal(mmsb_txn_rename(begin(r), root, "s", root, "c", MMSB_RENAME_EXCHANGE), 0);
	commit(r);
	assert_true(id_of(r, root, "s") == c && id_of(r, root, "c") == s);
	/* UNLINK one name of p, RMDIR d */
	assert_int_equal(mmsb_txn_unlink(begin(r), root, "q"), 0);
	commit(r);
	assert_true(id_of(r, root, "q") == 0 && attr_of(r, p).nlink == 1);
	assert_int_equal(mmsb_txn_rmdir(begin(r), root, "d"), 0);
	commit(r);
	assert_true(id_of(r, root, "d") == 0 && attr_of(r, root).nlink == 2);
}

/* Every epoch, read by time travel, is the tree written down after it. */
static void check_every_epoch(struct run *r, const char *when)
{
	struct dump *now = malloc(sizeof(*now));
	unsigned i;

	assert_non_null(now);
	for (i = 0; i < r->n; i++) {
		dump_epoch(r->fx->st, r->epoch[i], now);
		if (strcmp(now->s, r->text[i].s) != 0)
			fail_msg("%s: epoch %" PRIu64 " (step %u) differs:\n--- then\n%s--- now\n%s", when,
				 r->epoch[i], i, r->text[i].s, now->s);
	}
	free(now);
}

static void every_record_kind_applies_and_replays(void **state)
{
	struct run r = {.fx = *state};
	uint64_t ck;

	r.text = calloc(N_STEPS, sizeof(*r.text));
	assert_non_null(r.text);
	run_steps(&r);
	assert_int_equal(r.n, 19);
	check_every_epoch(&r, "after the steps");
	fx_reopen(r.fx); /* replay of the whole log */
	assert_int_equal(mmsb_store_head(r.fx->st), r.epoch[r.n - 1]);
	check_every_epoch(&r, "after replay");
	assert_int_equal(mmsb_checkpoint(r.fx->st, &ck), 0);
	assert_int_equal(ck, r.epoch[r.n - 1]);
	fx_reopen(r.fx); /* from the checkpoint */
	check_every_epoch(&r, "after checkpoint and reopen");
	free(r.text);
}

int main(void)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test_setup_teardown(every_record_kind_applies_and_replays, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("ns", t, NULL, NULL);
}
