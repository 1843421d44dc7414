/* tree.c - live tree, epochs/ and snapshot views over the core (tree.h).
 *
 * Live operations map one-to-one onto core transactions: begin, one or a
 * few mmsb_txn_* calls, commit (or abort on the first error, so a failed
 * request changes nothing).  A request that changes no byte commits no
 * epoch (the core decides).  Reads go to the head readers (mmsb_read...)
 * or, under epochs/N, to the snapshot readers (mmsb_snap_...).
 *
 * epochs/ is built on the fly, as ZFS builds .zfs: its listing is the
 * checkpoints, the tags and `head`, and any retained N resolves on lookup.
 * Nothing under it can be changed (-EROFS), and snapshot files are
 * immutable, so they get the long snapshot timeouts and keep_cache; head
 * and the tags move, so their symlinks are never cached.
 *
 * Readdir offsets: 1 after ".", 2 after "..", 3 after the root's `epochs`
 * entry (-o show_epochs); a core entry with cookie c (c >= 1) gets c + 3.
 * In epochs/, checkpoint N gets N + 3, a tag 2^61 + its ino's hash, and
 * `head` the largest offset.  Tags are symlinks NAME -> N, as head is.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <time.h>

#include "feed.h"
#include "tree.h"
#include "wire.h"

#define TREE_OFF_DOT 1u	      /* readdir offset after "." */
#define TREE_OFF_DOTDOT 2u    /* after ".." */
#define TREE_OFF_EPOCHS 3u    /* after the root's `epochs` entry; core cookies start above */
#define TREE_OFF_HEAD INT64_MAX /* after epochs/head: the end */
#define TREE_CKPT_STACK 64u   /* checkpoints listed without allocating */
#define TREE_TAG_STACK 32u    /* tags listed without allocating */
#define TREE_OFF_TAGS (UINT64_C(1) << 61) /* + (tag ino - MMSBFS_INO_TAG): after a tag */

/* ---- resolving inos ------------------------------------------------------ */

int mmsbfs_tree_get(struct mmsbfs *fs, fuse_ino_t ino, struct mmsbfs_node *n)
{
	int rc;

	memset(n, 0, sizeof(*n));
	n->ino = ino;
	if (!mmsbfs_ino_is_synth(ino)) {
		n->kind = MMSBFS_K_LIVE;
		n->id = ino;
		return 0;
	}
	if (ino == MMSBFS_INO_EPOCHS || ino == MMSBFS_INO_HEAD || ino == MMSBFS_INO_FEED) {
		n->kind = ino == MMSBFS_INO_EPOCHS ? MMSBFS_K_EPOCHS : ino == MMSBFS_INO_HEAD ? MMSBFS_K_HEAD : MMSBFS_K_FEED;
		return 0;
	}
	if (ino >= MMSBFS_INO_TAG && ino < MMSBFS_INO_EROOT) {
		n->kind = MMSBFS_K_TAG; /* whether the tag still exists is checked on use */
		return 0;
	}
	rc = mmsbfs_itab_get(fs->itab, ino, &n->sn);
	if (rc < 0)
		return rc;
	n->kind = MMSBFS_K_SNAP;
	n->id = n->sn.id;
	n->epoch = n->sn.epoch;
	n->snap = n->sn.snap;
	return 0;
}

void mmsbfs_tree_put(struct mmsbfs *fs, struct mmsbfs_node *n)
{
	if (n->kind == MMSBFS_K_SNAP)
		mmsbfs_itab_put(fs->itab, &n->sn);
	n->kind = MMSBFS_K_LIVE;
	n->snap = NULL;
}

int mmsbfs_tree_node_attr(struct mmsbfs *fs, const struct mmsbfs_node *n, struct mmsb_attr *a)
{
	switch (n->kind) {
	case MMSBFS_K_LIVE:
		return mmsb_getattr(fs->st, n->id, a);
	case MMSBFS_K_SNAP:
		return mmsb_snap_getattr(n->snap, n->id, a);
	default:
		return -ENODATA;
	}
}

/* ---- attributes ---------------------------------------------------------- */

static struct timespec tree_ts(int64_t ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	if (ts.tv_nsec < 0) {
		ts.tv_sec--;
		ts.tv_nsec += 1000000000;
	}
	return ts;
}

static int64_t tree_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int64_t tree_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return tree_ns(&ts);
}

static mode_t tree_type_bits(enum mmsb_type t)
{
	switch (t) {
	case MMSB_T_DIR:
		return S_IFDIR;
	case MMSB_T_SYMLINK:
		return S_IFLNK;
	case MMSB_T_FIFO:
		return S_IFIFO;
	case MMSB_T_SOCK:
		return S_IFSOCK;
	case MMSB_T_CHR:
		return S_IFCHR;
	case MMSB_T_BLK:
		return S_IFBLK;
	default:
		return S_IFREG;
	}
}

static void tree_fill_stat(const struct mmsb_attr *a, uint64_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = tree_type_bits(a->type) | (a->mode & 07777);
	st->st_nlink = a->nlink;
	st->st_rdev = (dev_t)a->rdev;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blksize = MMSBFS_BLKSIZE;
	st->st_blocks = (blkcnt_t)((a->alloc_bytes + 511) / 512); /* holes excluded */
	st->st_atim = tree_ts(a->atime_ns);
	st->st_mtim = tree_ts(a->mtime_ns);
	st->st_ctim = tree_ts(a->ctime_ns);
}

/* epochs/ looks like a read-only directory owned like the root. */
static int tree_epochs_stat(struct mmsbfs *fs, struct stat *st)
{
	struct mmsb_attr root;
	int rc = mmsb_getattr(fs->st, MMSB_ROOT_ID, &root);

	if (rc < 0)
		return rc;
	root.type = MMSB_T_DIR;
	root.mode = 0555;
	root.nlink = 2;
	root.size = 0;
	tree_fill_stat(&root, MMSBFS_INO_EPOCHS, st);
	return 0;
}

/* epochs/head and the tag links: symlinks whose target is an epoch in
 * decimal. */
static int tree_link_stat(struct mmsbfs *fs, fuse_ino_t ino, uint64_t epoch, struct stat *st)
{
	char target[24];
	int rc = tree_epochs_stat(fs, st);

	if (rc < 0)
		return rc;
	st->st_ino = ino;
	st->st_mode = S_IFLNK | 0777;
	st->st_nlink = 1;
	st->st_size = snprintf(target, sizeof(target), "%" PRIu64, epoch);
	st->st_blocks = 0;
	return 0;
}

static int tree_head_stat(struct mmsbfs *fs, struct stat *st)
{
	return tree_link_stat(fs, MMSBFS_INO_HEAD, mmsb_store_head(fs->st), st);
}

static int tree_feed_stat(struct mmsbfs *fs, struct stat *st)
{
	struct stat root;
	int rc = tree_epochs_stat(fs, &root);

	if (rc < 0)
		return rc;
	*st = root;
	st->st_ino = MMSBFS_INO_FEED;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)mmsbfs_feed_size(fs->feed);
	st->st_blocks = 0;
	return 0;
}

static bool tree_is_link(fuse_ino_t ino)
{
	return ino == MMSBFS_INO_HEAD || (ino >= MMSBFS_INO_TAG && ino < MMSBFS_INO_EROOT);
}

/* The ino of tag name: FNV-1a, folded into the 59-bit tag range. */
static uint64_t tree_tag_ino(const char *name)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (; *name != '\0'; name++)
		h = (h ^ (unsigned char)*name) * UINT64_C(0x100000001b3);
	return MMSBFS_INO_TAG + ((h ^ (h >> 59)) & ((UINT64_C(1) << 59) - 1));
}

/* All tags, into *out (free it unless it is stack).  Returns the count. */
static ssize_t tree_tags(struct mmsbfs *fs, struct mmsb_tag *stack, size_t cap, struct mmsb_tag **out)
{
	ssize_t n = mmsb_tags(fs->st, stack, cap);

	*out = stack;
	if (n > (ssize_t)cap) {
		cap = (size_t)n + 8;
		*out = calloc(cap, sizeof(**out));
		if (*out == NULL)
			return -ENOMEM;
		n = mmsb_tags(fs->st, *out, cap);
	}
	return n > (ssize_t)cap ? (ssize_t)cap : n;
}

/* The epoch the tag behind ino names now; -ENOENT once it is gone. */
static int tree_tag_epoch(struct mmsbfs *fs, fuse_ino_t ino, uint64_t *epoch)
{
	struct mmsb_tag stack[TREE_TAG_STACK], *tags;
	ssize_t n = tree_tags(fs, stack, TREE_TAG_STACK, &tags), i;
	int rc = n < 0 ? (int)n : -ENOENT;

	for (i = 0; i < n && rc == -ENOENT; i++) {
		if (tree_tag_ino(tags[i].name) == ino) {
			*epoch = tags[i].epoch;
			rc = 0;
		}
	}
	if (tags != stack)
		free(tags);
	return rc;
}

static void tree_entry_timeouts(struct fuse_entry_param *e, double t)
{
	e->attr_timeout = t;
	e->entry_timeout = t;
}

int mmsbfs_tree_getattr(struct mmsbfs *fs, fuse_ino_t ino, struct stat *out, double *timeout)
{
	struct mmsbfs_node n;
	struct mmsb_attr a;
	int rc = mmsbfs_tree_get(fs, ino, &n);

	if (rc < 0)
		return rc;
	*timeout = MMSBFS_LIVE_TIMEOUT;
	switch (n.kind) {
	case MMSBFS_K_EPOCHS:
		rc = tree_epochs_stat(fs, out);
		break;
	case MMSBFS_K_HEAD:
		*timeout = 0;
		rc = tree_head_stat(fs, out);
		break;
	case MMSBFS_K_FEED:
		*timeout = 0; /* it grows: tail -f watches its size */
		rc = tree_feed_stat(fs, out);
		break;
	case MMSBFS_K_TAG: {
		uint64_t epoch;

		*timeout = 0; /* a tag may move */
		rc = tree_tag_epoch(fs, ino, &epoch);
		if (rc == 0)
			rc = tree_link_stat(fs, ino, epoch, out);
		break;
	}
	default:
		rc = mmsbfs_tree_node_attr(fs, &n, &a);
		if (rc == 0)
			tree_fill_stat(&a, ino, out);
		if (n.kind == MMSBFS_K_SNAP)
			*timeout = MMSBFS_SNAP_TIMEOUT;
	}
	mmsbfs_tree_put(fs, &n);
	return rc;
}

/* ---- transactions ---------------------------------------------------------- */

/* Clear S_ISUID, and S_ISGID when group-executable (a lone S_ISGID marks
 * mandatory locking and stays), as write(2), truncate(2) and chown(2) by a
 * caller without CAP_FSETID do.  Part of the caller's transaction. */
static int tree_kill_suidgid(struct mmsb_txn *txn, uint64_t id)
{
	struct mmsb_setattr sa = {0};
	struct mmsb_attr a;
	uint32_t kill = S_ISUID;
	int rc = mmsb_txn_getattr(txn, id, &a);

	if (rc < 0)
		return rc;
	if (a.mode & S_IXGRP)
		kill |= S_ISGID;
	if (a.type == MMSB_T_DIR || (a.mode & kill) == 0)
		return 0;
	sa.valid = MMSB_SET_MODE;
	sa.mode = a.mode & ~kill;
	return mmsb_txn_setattr(txn, id, &sa);
}

/* Only live nodes can change: epochs/ and everything below are -EROFS. */
static int tree_check_writable(struct mmsbfs *fs, fuse_ino_t ino)
{
	if (mmsbfs_ino_is_synth(ino))
		return -EROFS;
	return fs->read_only ? -EROFS : 0;
}

static bool tree_is_reserved(fuse_ino_t parent, const char *name)
{
	return parent == MMSB_ROOT_ID && strcmp(name, MMSBFS_EPOCHS_NAME) == 0;
}

/* ---- lookup ------------------------------------------------------------------ */

int mmsbfs_tree_parse_epoch(const char *name, uint64_t *epoch)
{
	uint64_t v = 0;
	const char *p;

	if (name[0] == '\0' || (name[0] == '0' && name[1] != '\0'))
		return -ENOENT;
	for (p = name; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
			return -ENOENT;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*epoch = v;
	return 0;
}

/* Count one lookup of (epoch, a->id) and fill e for it. */
static int tree_snap_entry(struct mmsbfs *fs, uint64_t epoch, const struct mmsb_attr *a,
			   struct fuse_entry_param *e)
{
	uint64_t ino;
	int rc = mmsbfs_itab_lookup(fs->itab, epoch, a->id, &ino);

	if (rc < 0)
		return rc;
	e->ino = ino;
	tree_fill_stat(a, ino, &e->attr);
	tree_entry_timeouts(e, MMSBFS_SNAP_TIMEOUT);
	return 0;
}

/* epochs/NAME: `head` or a retained epoch number (opens its snapshot). */
static int tree_lookup_epochs(struct mmsbfs *fs, const char *name, struct fuse_entry_param *e)
{
	struct mmsbfs_snode sn;
	struct mmsb_attr a;
	uint64_t epoch, ino;
	int rc;

	if (strcmp(name, MMSBFS_HEAD_NAME) == 0) {
		e->ino = MMSBFS_INO_HEAD;
		tree_entry_timeouts(e, 0);
		return tree_head_stat(fs, &e->attr);
	}
	if (strcmp(name, MMSBFS_FEED_NAME) == 0) {
		e->ino = MMSBFS_INO_FEED;
		e->entry_timeout = MMSBFS_SNAP_TIMEOUT; /* the name never goes away */
		e->attr_timeout = 0;
		return tree_feed_stat(fs, &e->attr);
	}
	if (mmsbfs_tree_parse_epoch(name, &epoch) < 0) {
		rc = mmsb_tag_get(fs->st, name, &epoch); /* epochs/NAME -> N */
		if (rc < 0)
			return rc == -EINVAL ? -ENOENT : rc;
		e->ino = tree_tag_ino(name);
		tree_entry_timeouts(e, 0);
		return tree_link_stat(fs, e->ino, epoch, &e->attr);
	}
	if (epoch > mmsb_store_head(fs->st))
		return -ENOENT; /* cheap check before opening anything */
	rc = mmsbfs_itab_lookup(fs->itab, epoch, MMSB_ROOT_ID, &ino);
	if (rc < 0)
		return rc == -EOVERFLOW ? -ENOENT : rc;
	rc = mmsbfs_itab_get(fs->itab, ino, &sn);
	if (rc == 0) {
		rc = mmsb_snap_getattr(sn.snap, MMSB_ROOT_ID, &a);
		mmsbfs_itab_put(fs->itab, &sn);
	}
	if (rc < 0) {
		mmsbfs_itab_forget(fs->itab, ino, 1);
		return rc;
	}
	e->ino = ino;
	tree_fill_stat(&a, ino, &e->attr);
	tree_entry_timeouts(e, MMSBFS_SNAP_TIMEOUT);
	return 0;
}

static int tree_lookup_live(struct mmsbfs *fs, fuse_ino_t parent, const char *name, struct fuse_entry_param *e)
{
	struct mmsb_attr a;
	int rc;

	if (tree_is_reserved(parent, name)) {
		e->ino = MMSBFS_INO_EPOCHS;
		e->entry_timeout = MMSBFS_SNAP_TIMEOUT; /* the name never goes away */
		e->attr_timeout = MMSBFS_LIVE_TIMEOUT;
		return tree_epochs_stat(fs, &e->attr);
	}
	rc = mmsb_lookup(fs->st, parent, name, &a);
	if (rc == -ENOENT) {
		e->ino = 0; /* negative entry: the kernel sees every user create */
		tree_entry_timeouts(e, MMSBFS_LIVE_TIMEOUT);
		return 0;
	}
	if (rc < 0)
		return rc;
	e->ino = a.id;
	tree_fill_stat(&a, a.id, &e->attr);
	tree_entry_timeouts(e, MMSBFS_LIVE_TIMEOUT);
	return 0;
}

int mmsbfs_tree_lookup(struct mmsbfs *fs, fuse_ino_t parent, const char *name, struct fuse_entry_param *e)
{
	struct mmsbfs_node n;
	struct mmsb_attr a;
	int rc;

	memset(e, 0, sizeof(*e));
	if (strlen(name) > MMSB_NAME_MAX)
		return -ENAMETOOLONG; /* no name that long exists: no negative entry either */
	rc = mmsbfs_tree_get(fs, parent, &n);
	if (rc < 0)
		return rc;
	switch (n.kind) {
	case MMSBFS_K_LIVE:
		rc = tree_lookup_live(fs, parent, name, e);
		break;
	case MMSBFS_K_EPOCHS:
		rc = tree_lookup_epochs(fs, name, e);
		break;
	case MMSBFS_K_HEAD:
	case MMSBFS_K_TAG:
	case MMSBFS_K_FEED:
		rc = -ENOTDIR;
		break;
	case MMSBFS_K_SNAP:
		rc = mmsb_snap_lookup(n.snap, n.id, name, &a);
		if (rc == 0)
			rc = tree_snap_entry(fs, n.epoch, &a, e);
		break;
	}
	mmsbfs_tree_put(fs, &n);
	return rc;
}

void mmsbfs_tree_forget(struct mmsbfs *fs, fuse_ino_t ino, uint64_t n)
{
	/* Live nodes live independently of the kernel's counts (FUSE-NOTES
	 * finding 9); epochs/ and head are permanent. */
	if (ino >= MMSBFS_INO_EROOT)
		mmsbfs_itab_forget(fs->itab, ino, n);
}

/* ---- setattr --------------------------------------------------------------- */

static void tree_setattr_times(const struct stat *in, int to_set, struct mmsb_setattr *sa)
{
	int64_t now = 0;

	if (to_set & (FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW))
		now = tree_now_ns();
	if (to_set & FUSE_SET_ATTR_ATIME) {
		sa->valid |= MMSB_SET_ATIME;
		sa->atime_ns = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? now : tree_ns(&in->st_atim);
	}
	if (to_set & FUSE_SET_ATTR_MTIME) {
		sa->valid |= MMSB_SET_MTIME;
		sa->mtime_ns = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? now : tree_ns(&in->st_mtim);
	}
}

static int tree_setattr_txn(struct mmsb_txn *txn, uint64_t id, const struct stat *in, int to_set,
			    struct mmsb_attr *out)
{
	struct mmsb_setattr sa = {0};
	int rc = 0;

	if (to_set & FUSE_SET_ATTR_SIZE)
		rc = in->st_size < 0 ? -EINVAL : mmsb_txn_truncate(txn, id, (uint64_t)in->st_size);
	if (rc == 0 && (in->st_mode & MMSBFS_KILL_SUIDGID) && !(to_set & FUSE_SET_ATTR_MODE))
		rc = tree_kill_suidgid(txn, id);
	if (to_set & FUSE_SET_ATTR_MODE) {
		sa.valid |= MMSB_SET_MODE;
		sa.mode = in->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		sa.valid |= MMSB_SET_UID;
		sa.uid = in->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		sa.valid |= MMSB_SET_GID;
		sa.gid = in->st_gid;
	}
	tree_setattr_times(in, to_set, &sa);
	if (rc == 0 && sa.valid != 0)
		rc = mmsb_txn_setattr(txn, id, &sa);
	if (rc == 0)
		rc = mmsb_txn_getattr(txn, id, out);
	return rc;
}

int mmsbfs_tree_setattr(struct mmsbfs *fs, fuse_ino_t ino, const struct stat *in, int to_set,
			struct stat *out, double *timeout)
{
	struct mmsb_txn *txn;
	struct mmsb_attr a;
	int rc = tree_check_writable(fs, ino);

	if (rc < 0)
		return rc;
	rc = mmsb_txn_begin(fs->st, MMSB_SRC_USER, &txn);
	if (rc < 0)
		return rc;
	rc = mmsbfs_txn_end(txn, tree_setattr_txn(txn, ino, in, to_set, &a));
	if (rc < 0)
		return rc;
	tree_fill_stat(&a, ino, out);
	*timeout = MMSBFS_LIVE_TIMEOUT;
	return 0;
}

/* ---- creating and removing names ---------------------------------------------- */

static int tree_check_create(struct mmsbfs *fs, fuse_ino_t parent, const char *name)
{
	if (tree_is_link(parent))
		return -ENOTDIR;
	if (tree_is_reserved(parent, name))
		return -EEXIST;
	return tree_check_writable(fs, parent);
}

/* New nodes in a set-group-ID directory take its group; new directories
 * inherit the bit (BSD semantics, as ext4 does). */
static int tree_inherit_gid(struct mmsb_txn *txn, uint64_t parent, enum mmsb_type type, uint32_t *gid,
			    uint32_t *mode)
{
	struct mmsb_attr p;
	int rc = mmsb_txn_getattr(txn, parent, &p);

	if (rc < 0)
		return rc;
	if (p.type != MMSB_T_DIR)
		return -ENOTDIR;
	if (p.mode & S_ISGID) {
		*gid = p.gid;
		if (type == MMSB_T_DIR)
			*mode |= S_ISGID;
	}
	return 0;
}

static int tree_type_of(mode_t mode, const char *target, enum mmsb_type *type)
{
	static const struct {
		mode_t fmt;
		enum mmsb_type type;
	} special[] = {{S_IFIFO, MMSB_T_FIFO}, {S_IFSOCK, MMSB_T_SOCK}, {S_IFCHR, MMSB_T_CHR}, {S_IFBLK, MMSB_T_BLK}};
	size_t i;

	for (i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		if ((mode & S_IFMT) == special[i].fmt) {
			*type = special[i].type;
			return target == NULL ? 0 : -EINVAL;
		}
	switch (mode & S_IFMT) {
	case 0:
	case S_IFREG:
		*type = MMSB_T_PAGE;
		return 0;
	case S_IFDIR:
		*type = MMSB_T_DIR;
		return 0;
	case S_IFLNK:
		*type = MMSB_T_SYMLINK;
		return target != NULL ? 0 : -EINVAL;
	default:
		return -EINVAL; /* not a file type */
	}
}

/* The entry of a node just made in the live tree (create, mknod, link). */
static void tree_live_entry(const struct mmsb_attr *a, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->id;
	tree_fill_stat(a, a->id, &e->attr);
	tree_entry_timeouts(e, MMSBFS_LIVE_TIMEOUT);
}

int mmsbfs_tree_mknod(struct mmsbfs *fs, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev,
		      const char *target, const struct mmsbfs_caller *who, struct fuse_entry_param *e)
{
	uint32_t m = (uint32_t)(mode & 07777), gid = who->gid;
	enum mmsb_type type = MMSB_T_PAGE;
	struct mmsb_txn *txn;
	struct mmsb_attr a;
	int rc = tree_check_create(fs, parent, name); /* -EROFS before -EPERM */

	if (rc == 0)
		rc = tree_type_of(mode, target, &type);
	if (rc == 0)
		rc = mmsb_txn_begin(fs->st, MMSB_SRC_USER, &txn);
	if (rc < 0)
		return rc;
	rc = tree_inherit_gid(txn, parent, type, &gid, &m);
	if (rc == 0 && type > MMSB_T_SYMLINK)
		rc = mmsb_txn_mknod(txn, parent, name, type, m, who->uid, gid, (uint64_t)rdev, &a);
	else if (rc == 0)
		rc = mmsb_txn_create(txn, parent, name, type, type == MMSB_T_SYMLINK ? 0777 : m, who->uid, gid,
				     target, &a);
	rc = mmsbfs_txn_end(txn, rc);
	if (rc < 0)
		return rc;
	tree_live_entry(&a, e);
	return 0;
}

static void tree_open_flags(struct mmsbfs *fs, struct fuse_file_info *fi, bool snapshot)
{
	fi->fh = 0;
	fi->keep_cache = 1; /* coherent: daemon-side changes are invalidated (notify.c) */
	/* Writers bypass the page cache so that one write(2) is one WRITE,
	 * one epoch (wire.h); the kernel drops cached pages a direct write
	 * covers, and shared mmap still works through the page cache. */
	fi->direct_io = !snapshot && (fi->flags & O_ACCMODE) != O_RDONLY && mmsbfs_wire_dio_mmap(fs->wire);
	/* FLUSH only matters for writers: it writes back dirty mmap pages at
	 * close, so a writable open keeps it; a read-only one saves the
	 * round trip at every close. */
	fi->noflush = snapshot || (fi->flags & O_ACCMODE) == O_RDONLY;
}

int mmsbfs_tree_create(struct mmsbfs *fs, fuse_ino_t parent, const char *name, mode_t mode,
		       const struct mmsbfs_caller *who, struct fuse_file_info *fi, struct fuse_entry_param *e)
{
	int rc = mmsbfs_tree_mknod(fs, parent, name, (mode & 07777) | S_IFREG, 0, NULL, who, e);

	if (rc < 0)
		return rc;
	rc = mmsb_ref(fs->st, e->ino); /* -ENOENT if removed in between */
	if (rc < 0)
		return rc;
	tree_open_flags(fs, fi, false);
	return 0;
}

int mmsbfs_tree_link(struct mmsbfs *fs, fuse_ino_t ino, fuse_ino_t newparent, const char *newname,
		     struct fuse_entry_param *e)
{
	struct mmsb_txn *txn;
	struct mmsb_attr a;
	int rc = tree_check_create(fs, newparent, newname); /* a name in epochs/: -EROFS */

	if (rc == 0 && mmsbfs_ino_is_synth(ino))
		rc = -EXDEV; /* a snapshot's node into the live tree: another tree */
	if (rc == 0)
		rc = mmsb_txn_begin(fs->st, MMSB_SRC_USER, &txn);
	if (rc < 0)
		return rc;
	rc = mmsbfs_txn_end(txn, mmsb_txn_link(txn, ino, newparent, newname, &a));
	if (rc < 0)
		return rc;
	tree_live_entry(&a, e);
	return 0;
}

static int tree_remove(struct mmsbfs *fs, fuse_ino_t parent, const char *name, bool dir)
{
	struct mmsb_txn *txn;
	int rc;

	if (tree_is_reserved(parent, name))
		return -EBUSY; /* like a mount point */
	if (tree_is_link(parent))
		return -ENOTDIR;
	rc = tree_check_writable(fs, parent);
	if (rc == 0)
		rc = mmsb_txn_begin(fs->st, MMSB_SRC_USER, &txn);
	if (rc < 0)
		return rc;
	rc = dir ? mmsb_txn_rmdir(txn, parent, name) : mmsb_txn_unlink(txn, parent, name);
	return mmsbfs_txn_end(txn, rc);
}

int mmsbfs_tree_unlink(struct mmsbfs *fs, fuse_ino_t parent, const char *name)
{
	return tree_remove(fs, parent, name, false);
}

int mmsbfs_tree_rmdir(struct mmsbfs *fs, fuse_ino_t parent, const char *name)
{
	return tree_remove(fs, parent, name, true);
}

int mmsbfs_tree_rename(struct mmsbfs *fs, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		       const char *newname, unsigned flags)
{
	unsigned mflags = 0;
	struct mmsb_txn *txn;
	int rc;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL; /* RENAME_WHITEOUT and unknown flags */
	if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		return -EINVAL;
	if (tree_is_reserved(parent, name))
		return -EBUSY;
	if (tree_is_reserved(newparent, newname))
		return -EEXIST;
	rc = tree_check_writable(fs, parent);
	if (rc == 0)
		rc = tree_check_writable(fs, newparent);
	if (rc == 0)
		rc = mmsb_txn_begin(fs->st, MMSB_SRC_USER, &txn);
	if (rc < 0)
		return rc;
	mflags |= (flags & RENAME_NOREPLACE) ? MMSB_RENAME_NOREPLACE : 0;
	mflags |= (flags & RENAME_EXCHANGE) ? MMSB_RENAME_EXCHANGE : 0;
	rc = mmsb_txn_rename(txn, parent, name, newparent, newname, mflags);
	return mmsbfs_txn_end(txn, rc);
}

ssize_t mmsbfs_tree_readlink(struct mmsbfs *fs, fuse_ino_t ino, char *buf, size_t cap)
{
	struct mmsbfs_node n;
	ssize_t len;
	int rc = mmsbfs_tree_get(fs, ino, &n);

	if (rc < 0)
		return rc;
	switch (n.kind) {
	case MMSBFS_K_LIVE:
		len = mmsb_readlink(fs->st, n.id, buf, cap - 1);
		break;
	case MMSBFS_K_SNAP:
		len = mmsb_snap_readlink(n.snap, n.id, buf, cap - 1);
		break;
	case MMSBFS_K_HEAD:
		len = snprintf(buf, cap, "%" PRIu64, mmsb_store_head(fs->st));
		break;
	case MMSBFS_K_TAG: {
		uint64_t epoch = 0;

		rc = tree_tag_epoch(fs, ino, &epoch);
		len = rc < 0 ? rc : snprintf(buf, cap, "%" PRIu64, epoch);
		break;
	}
	default:
		len = -EINVAL;
	}
	mmsbfs_tree_put(fs, &n);
	if (len >= 0)
		buf[(size_t)len < cap ? (size_t)len : cap - 1] = '\0';
	return len;
}

/* ---- open files ------------------------------------------------------------------ */

static int tree_truncate_on_open(struct mmsbfs *fs, uint64_t id, int flags)
{
	struct mmsb_setattr sa = {0};
	struct mmsb_attr a;
	struct mmsb_txn *txn;
	int rc = mmsb_txn_begin(fs->st, MMSB_SRC_USER, &txn);

	if (rc < 0)
		return rc;
	rc = mmsb_txn_getattr(txn, id, &a);
	if (rc == 0 && a.size > 0) {
		rc = mmsb_txn_truncate(txn, id, 0);
	} else if (rc == 0 && a.type == MMSB_T_PAGE) {
		/* already empty: O_TRUNC still marks mtime and ctime (POSIX open()) */
		sa.valid = MMSB_SET_MTIME;
		sa.mtime_ns = tree_now_ns();
		rc = mmsb_txn_setattr(txn, id, &sa);
	}
	if (rc == 0 && (flags & MMSBFS_KILL_SUIDGID))
		rc = tree_kill_suidgid(txn, id);
	return mmsbfs_txn_end(txn, rc);
}

int mmsbfs_tree_open(struct mmsbfs *fs, fuse_ino_t ino, struct fuse_file_info *fi)
{
	bool writing = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
	int rc;

	if (ino == MMSBFS_INO_FEED) { /* read position kept for poll (ops.c) */
		if (writing)
			return -EROFS;
		fi->direct_io = 1;
		fi->fh = (uint64_t)(uintptr_t)calloc(1, sizeof(uint64_t));
		return fi->fh ? 0 : -ENOMEM;
	}
	if (mmsbfs_ino_is_synth(ino)) {
		if (writing)
			return -EROFS;
		tree_open_flags(fs, fi, true);
		return 0;
	}
	if (writing && fs->read_only)
		return -EROFS;
	rc = mmsb_ref(fs->st, ino);
	if (rc < 0)
		return rc;
	if (fi->flags & O_TRUNC) { /* FUSE_CAP_ATOMIC_O_TRUNC: no extra SETATTR */
		rc = tree_truncate_on_open(fs, ino, fi->flags);
		if (rc < 0) {
			mmsb_unref(fs->st, ino);
			return rc;
		}
	}
	tree_open_flags(fs, fi, false);
	return 0;
}

void mmsbfs_tree_release(struct mmsbfs *fs, fuse_ino_t ino)
{
	if (!mmsbfs_ino_is_synth(ino))
		mmsb_unref(fs->st, ino);
}

ssize_t mmsbfs_tree_read(struct mmsbfs *fs, fuse_ino_t ino, uint64_t off, char *buf, size_t size)
{
	struct mmsbfs_node n;
	ssize_t len;
	int rc;

	if (!mmsbfs_ino_is_synth(ino)) /* the hot path: no pinning */
		return mmsb_read(fs->st, ino, off, buf, size);
	rc = mmsbfs_tree_get(fs, ino, &n);
	if (rc < 0)
		return rc;
	len = n.kind == MMSBFS_K_SNAP ? mmsb_snap_read(n.snap, n.id, off, buf, size) : -EISDIR;
	mmsbfs_tree_put(fs, &n);
	return len;
}

ssize_t mmsbfs_tree_write(struct mmsbfs *fs, fuse_ino_t ino, uint64_t off, const char *buf, size_t size,
			  int flags)
{
	struct mmsb_txn *txn;
	struct mmsb_attr a;
	ssize_t len;
	int rc = tree_check_writable(fs, ino);


	/* the common case (no set-ID bit to clear): writers run in parallel */
	if (rc == 0 && (!(flags & MMSBFS_KILL_SUIDGID) ||
			(mmsb_getattr(fs->st, ino, &a) == 0 && !(a.mode & (S_ISUID | S_ISGID)))))
		return mmsb_page_write(fs->st, MMSB_SRC_USER, ino, off, buf, size, NULL);
	if (rc == 0)
		rc = mmsb_txn_begin(fs->st, MMSB_SRC_USER, &txn);
	if (rc < 0)
		return rc;
	if (flags & MMSBFS_KILL_SUIDGID)
		rc = tree_kill_suidgid(txn, ino);
	len = rc < 0 ? rc : mmsb_txn_write(txn, ino, off, buf, size);
	rc = mmsbfs_txn_end(txn, len < 0 ? (int)len : 0);
	return rc < 0 ? rc : len;
}

int mmsbfs_tree_lseek(struct mmsbfs *fs, fuse_ino_t ino, uint64_t off, int whence, uint64_t *out)
{
	struct mmsbfs_node n;
	int rc;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (!mmsbfs_ino_is_synth(ino))
		return mmsb_seek(fs->st, ino, off, whence == SEEK_DATA, out);
	rc = mmsbfs_tree_get(fs, ino, &n);
	if (rc < 0)
		return rc;
	if (n.kind == MMSBFS_K_SNAP) {
		rc = mmsb_snap_seek(n.snap, n.id, off, whence == SEEK_DATA, out);
	} else { /* the other synthetic files (the change feed): all data */
		struct stat st;
		double timeout;

		rc = mmsbfs_tree_getattr(fs, ino, &st, &timeout);
		if (rc == 0 && S_ISDIR(st.st_mode))
			rc = -EISDIR;
		else if (rc == 0 && off >= (uint64_t)st.st_size)
			rc = -ENXIO;
		else if (rc == 0)
			*out = whence == SEEK_DATA ? off : (uint64_t)st.st_size;
	}
	mmsbfs_tree_put(fs, &n);
	return rc;
}

int mmsbfs_tree_fallocate(struct mmsbfs *fs, fuse_ino_t ino, int mode, uint64_t off, uint64_t len)
{
	struct mmsb_txn *txn;
	struct mmsb_attr a;
	int rc = tree_check_writable(fs, ino);

	if (rc == 0 && mode != 0)
		rc = -EOPNOTSUPP; /* no holes to punch: pages are dense */
	if (rc == 0 && off + len < off)
		rc = -EFBIG;
	if (rc == 0)
		rc = mmsb_txn_begin(fs->st, MMSB_SRC_USER, &txn);
	if (rc < 0)
		return rc;
	rc = mmsb_txn_getattr(txn, ino, &a);
	if (rc == 0 && a.type != MMSB_T_PAGE)
		rc = -ENODEV;
	if (rc == 0 && a.size < off + len)
		rc = mmsb_txn_truncate(txn, ino, off + len);
	return mmsbfs_txn_end(txn, rc);
}

int mmsbfs_tree_fsync(struct mmsbfs *fs, fuse_ino_t ino)
{
	if (mmsbfs_ino_is_synth(ino) || fs->read_only)
		return 0; /* nothing of ours to make durable */
	return mmsb_store_sync(fs->st);
}

/* ---- directories ------------------------------------------------------------------ */

int mmsbfs_tree_opendir(struct mmsbfs *fs, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fi->fh = 0;
	if (ino >= MMSBFS_INO_EROOT) {
		/* A snapshot directory never changes: let the kernel keep its
		 * listing. */
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	return 0;
}

/* State of one readdir request while the core calls back. */
struct tree_dirfill {
	struct mmsbfs *fs;	/* the daemon */
	fuse_req_t req;		/* for fuse_add_direntry*() */
	char *buf;		/* reply buffer */
	size_t size;		/* its capacity */
	size_t used;		/* bytes filled */
	bool plus;		/* readdirplus */
	enum mmsbfs_kind kind;	/* LIVE or SNAP directory */
	uint64_t epoch;		/* SNAP: the epoch (entries are counted lookups) */
	int rc;			/* error raised inside a callback */
};

/* Add one entry; e->ino == 0 adds no lookup.  Returns 1 when it does not
 * fit (stop), else 0. */
static int tree_dir_add(struct tree_dirfill *df, const char *name, const struct fuse_entry_param *e, uint64_t off)
{
	size_t room = df->size - df->used, need;

	if (df->plus)
		need = fuse_add_direntry_plus(df->req, df->buf + df->used, room, name, e, (off_t)off);
	else
		need = fuse_add_direntry(df->req, df->buf + df->used, room, name, &e->attr, (off_t)off);
	if (need > room)
		return 1;
	df->used += need;
	return 0;
}

/* Room for one more entry named name?  (Checked before counting a lookup
 * that a full buffer would have to take back.) */
static bool tree_dir_fits(const struct tree_dirfill *df, const char *name)
{
	size_t need = df->plus ? fuse_add_direntry_plus(df->req, NULL, 0, name, NULL, 0)
			       : fuse_add_direntry(df->req, NULL, 0, name, NULL, 0);

	return need <= df->size - df->used;
}

static int tree_dirent_cb(void *arg, const char *name, const struct mmsb_attr *a, uint64_t cookie)
{
	struct tree_dirfill *df = arg;
	struct fuse_entry_param e;

	if (cookie == 0 || cookie > (uint64_t)INT64_MAX - TREE_OFF_EPOCHS) {
		df->rc = -EOVERFLOW; /* the core's cookies do not fit FUSE offsets */
		return 1;
	}
	if (!tree_dir_fits(df, name))
		return 1;
	memset(&e, 0, sizeof(e));
	if (df->kind == MMSBFS_K_SNAP && df->plus) {
		df->rc = tree_snap_entry(df->fs, df->epoch, a, &e);
		if (df->rc < 0)
			return 1;
	} else {
		uint64_t ino = a->id;

		if (df->kind == MMSBFS_K_SNAP) { /* d_ino only: no lookup counted */
			ino = mmsbfs_itab_peek(df->fs->itab, df->epoch, a->id);
			if (ino == 0)
				ino = mmsbfs_itab_ino_of(df->epoch, a->id);
		}
		tree_fill_stat(a, ino, &e.attr);
		e.ino = df->kind == MMSBFS_K_LIVE ? a->id : 0;
		tree_entry_timeouts(&e, MMSBFS_LIVE_TIMEOUT);
	}
	return tree_dir_add(df, name, &e, cookie + TREE_OFF_EPOCHS);
}

/* "." and "..": never counted as lookups (e.ino == 0). */
static int tree_dir_dots(struct tree_dirfill *df, uint64_t off, uint64_t self, uint64_t parent)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.attr.st_mode = S_IFDIR;
	e.attr.st_ino = self;
	if (off < TREE_OFF_DOT && tree_dir_add(df, ".", &e, TREE_OFF_DOT))
		return 1;
	e.attr.st_ino = parent;
	if (off < TREE_OFF_DOTDOT && tree_dir_add(df, "..", &e, TREE_OFF_DOTDOT))
		return 1;
	return 0;
}

static int tree_readdir_live(struct tree_dirfill *df, fuse_ino_t ino, uint64_t off)
{
	struct fuse_entry_param e;
	struct mmsb_attr a;
	int rc = 0;

	if (off < TREE_OFF_DOTDOT) {
		rc = mmsb_getattr(df->fs->st, ino, &a);
		if (rc == 0 && a.type != MMSB_T_DIR)
			rc = -ENOTDIR;
		if (rc < 0)
			return rc;
		if (tree_dir_dots(df, off, ino, a.parent))
			return 0;
	}
	if (off < TREE_OFF_EPOCHS && ino == MMSB_ROOT_ID && df->fs->show_epochs) {
		memset(&e, 0, sizeof(e));
		e.ino = MMSBFS_INO_EPOCHS;
		e.entry_timeout = MMSBFS_SNAP_TIMEOUT;
		e.attr_timeout = MMSBFS_LIVE_TIMEOUT;
		rc = tree_epochs_stat(df->fs, &e.attr);
		if (rc < 0 || tree_dir_add(df, MMSBFS_EPOCHS_NAME, &e, TREE_OFF_EPOCHS))
			return rc;
	}
	rc = mmsb_readdir(df->fs->st, ino, off < TREE_OFF_EPOCHS ? 0 : off - TREE_OFF_EPOCHS, tree_dirent_cb, df);
	return rc < 0 ? rc : df->rc;
}

static int tree_readdir_snap(struct tree_dirfill *df, const struct mmsbfs_node *n, uint64_t off)
{
	struct mmsb_attr a;
	uint64_t parent;
	int rc;

	if (off < TREE_OFF_DOTDOT) {
		rc = mmsb_snap_getattr(n->snap, n->id, &a);
		if (rc == 0 && a.type != MMSB_T_DIR)
			rc = -ENOTDIR;
		if (rc < 0)
			return rc;
		parent = n->id == MMSB_ROOT_ID ? MMSBFS_INO_EPOCHS : mmsbfs_itab_peek(df->fs->itab, n->epoch, a.parent);
		if (tree_dir_dots(df, off, n->ino, parent != 0 ? parent : n->ino))
			return 0;
	}
	df->kind = MMSBFS_K_SNAP;
	df->epoch = n->epoch;
	rc = mmsb_snap_readdir(n->snap, n->id, off < TREE_OFF_EPOCHS ? 0 : off - TREE_OFF_EPOCHS, tree_dirent_cb, df);
	return rc < 0 ? rc : df->rc;
}

static int tree_tag_cmp(const void *a, const void *b)
{
	uint64_t x = tree_tag_ino(((const struct mmsb_tag *)a)->name);
	uint64_t y = tree_tag_ino(((const struct mmsb_tag *)b)->name);

	return x < y ? -1 : x > y;
}

/* The tags of epochs/, in ino order (stable offsets while tags come and
 * go).  Returns 1 when the buffer is full, 0, or -errno. */
static int tree_readdir_tags(struct tree_dirfill *df, uint64_t off)
{
	struct mmsb_tag stack[TREE_TAG_STACK], *tags;
	ssize_t n = tree_tags(df->fs, stack, TREE_TAG_STACK, &tags), i;
	struct fuse_entry_param e;
	int rc = n < 0 ? (int)n : 0;

	if (n > 1)
		qsort(tags, (size_t)n, sizeof(*tags), tree_tag_cmp);
	for (i = 0; i < n && rc == 0; i++) {
		uint64_t ino = tree_tag_ino(tags[i].name), toff = TREE_OFF_TAGS + (ino - MMSBFS_INO_TAG);

		if (toff <= off)
			continue;
		memset(&e, 0, sizeof(e));
		e.ino = ino; /* not in the inode table: its lookup count is moot */
		rc = tree_link_stat(df->fs, ino, tags[i].epoch, &e.attr);
		if (rc == 0 && tree_dir_add(df, tags[i].name, &e, toff))
			rc = 1;
	}
	if (tags != stack)
		free(tags);
	return rc;
}

/* epochs/: ".", "..", the checkpoint epochs (ascending), the tags and
 * `head`. */
static int tree_readdir_epochs(struct tree_dirfill *df, uint64_t off)
{
	struct mmsb_ckpt_info stack[TREE_CKPT_STACK], *ck = stack;
	size_t cap = TREE_CKPT_STACK;
	struct fuse_entry_param e;
	ssize_t n, i;
	int rc = 0;

	if (tree_dir_dots(df, off, MMSBFS_INO_EPOCHS, MMSB_ROOT_ID))
		return 0;
	n = mmsb_checkpoints(df->fs->st, ck, cap);
	if (n > (ssize_t)cap) { /* more than fit the stack: list them all */
		cap = (size_t)n + 16;
		ck = calloc(cap, sizeof(*ck));
		if (ck == NULL)
			return -ENOMEM;
		n = mmsb_checkpoints(df->fs->st, ck, cap);
	}
	if (n > (ssize_t)cap)
		n = (ssize_t)cap;
	for (i = 0; i < n && rc == 0; i++) {
		char name[24];

		if (ck[i].epoch > MMSBFS_EPOCH_MAX || ck[i].epoch + TREE_OFF_EPOCHS <= off)
			continue;
		memset(&e, 0, sizeof(e)); /* e.ino 0: a stat will look it up */
		e.attr.st_mode = S_IFDIR;
		e.attr.st_ino = MMSBFS_INO_EROOT + ck[i].epoch;
		snprintf(name, sizeof(name), "%" PRIu64, ck[i].epoch);
		if (tree_dir_add(df, name, &e, ck[i].epoch + TREE_OFF_EPOCHS))
			rc = 1;
	}
	if (ck != stack)
		free(ck);
	if (rc == 0)
		rc = tree_readdir_tags(df, off);
	if (rc == 0 && off < (uint64_t)TREE_OFF_HEAD - 1) {
		memset(&e, 0, sizeof(e));
		e.ino = MMSBFS_INO_FEED; /* permanent too */
		rc = tree_feed_stat(df->fs, &e.attr);
		if (rc == 0 && tree_dir_add(df, MMSBFS_FEED_NAME, &e, (uint64_t)TREE_OFF_HEAD - 1))
			rc = 1;
	}
	if (rc == 0 && off < (uint64_t)TREE_OFF_HEAD) {
		memset(&e, 0, sizeof(e));
		e.ino = MMSBFS_INO_HEAD; /* permanent: its lookup count is moot */
		rc = tree_head_stat(df->fs, &e.attr);
		if (rc == 0)
			tree_dir_add(df, MMSBFS_HEAD_NAME, &e, (uint64_t)TREE_OFF_HEAD);
	}
	return rc < 0 ? rc : 0;
}

ssize_t mmsbfs_tree_readdir(struct mmsbfs *fs, fuse_req_t req, fuse_ino_t ino, uint64_t off, char *buf,
			    size_t size, bool plus)
{
	struct tree_dirfill df = {.fs = fs, .req = req, .buf = buf, .size = size, .plus = plus};
	struct mmsbfs_node n;
	int rc = mmsbfs_tree_get(fs, ino, &n);

	if (rc < 0)
		return rc;
	switch (n.kind) {
	case MMSBFS_K_LIVE:
		rc = tree_readdir_live(&df, ino, off);
		break;
	case MMSBFS_K_EPOCHS:
		rc = tree_readdir_epochs(&df, off);
		break;
	case MMSBFS_K_SNAP:
		rc = tree_readdir_snap(&df, &n, off);
		break;
	default:
		rc = -ENOTDIR;
	}
	mmsbfs_tree_put(fs, &n);
	/* Entries already in the buffer were counted: deliver them. */
	return df.used > 0 || rc >= 0 ? (ssize_t)df.used : rc;
}

/* ---- statfs ------------------------------------------------------------------------ */

/* MemAvailable from /proc/meminfo, in bytes; 0 if unreadable. */
static uint64_t tree_mem_available(void)
{
	char line[128];
	unsigned long long kb = 0;
	FILE *f = fopen("/proc/meminfo", "re");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb * 1024;
}

/* df(1) shows MMSB's own use and the real headroom (mmsbfs(8), LIMITATIONS):
 *   used   = the pages at head (their bytes live in memory)
 *          + the store's files (log and checkpoints on the store's disk);
 *   avail  = what a write can still consume: it needs memory for the page
 *            and disk for its log record, so the smaller of MemAvailable
 *            and the store file system's free space;
 *   blocks = used + avail.
 * Neither the machine's memory nor the disk's capacity alone would say how
 * full the store is: other programs use both. */
int mmsbfs_tree_statfs(struct mmsbfs *fs, struct statvfs *out)
{
	const uint64_t files = UINT64_C(1) << 40, bs = 4096;
	uint64_t avail, used, nodes;
	struct mmsb_stats s;
	struct statvfs disk;
	struct sysinfo si;

	if (sysinfo(&si) < 0)
		return -errno;
	avail = tree_mem_available();
	if (avail == 0)
		avail = ((uint64_t)si.freeram + si.bufferram) * si.mem_unit;
	if (statvfs(mmsb_store_dir(fs->st), &disk) == 0 && (uint64_t)disk.f_bavail * disk.f_frsize < avail)
		avail = (uint64_t)disk.f_bavail * disk.f_frsize;
	mmsb_store_stats(fs->st, &s);
	used = s.page_bytes + s.log_bytes + s.ckpt_bytes;
	nodes = s.n_pages + s.n_dirs + s.n_symlinks;
	memset(out, 0, sizeof(*out));
	out->f_bsize = bs;
	out->f_frsize = bs;
	out->f_blocks = (fsblkcnt_t)((used + bs - 1) / bs + avail / bs);
	out->f_bfree = (fsblkcnt_t)(avail / bs);
	out->f_bavail = out->f_bfree;
	out->f_files = (fsfilcnt_t)files;
	out->f_ffree = (fsfilcnt_t)(nodes < files ? files - nodes : 0);
	out->f_favail = out->f_ffree;
	out->f_namemax = MMSB_NAME_MAX;
	return 0;
}
