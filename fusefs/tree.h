/* tree.h - file-system semantics of mmsbfs over the core: the live tree,
 * the reserved `epochs` name, epochs/ and the read-only snapshot views.
 *
 * Every function takes the daemon, FUSE inos and decoded arguments, and
 * returns >= 0 or -errno; it never replies (ops.c does).  Inos are
 * resolved here: live ino == core id, synthetic inos through inode.c.
 *
 * Rules applied here (spec: .fusefs-spec.md):
 *   - anything that would modify epochs/ or a snapshot: -EROFS;
 *   - `epochs` in the root: create/mkdir/symlink/mknod/rename onto it
 *     -EEXIST, unlink/rmdir/rename of it -EBUSY;
 *   - every modification is one core transaction (one epoch at most);
 *   - suid/sgid are cleared when the kernel asks (MMSBFS_KILL_SUIDGID).
 */
#ifndef MMSBFS_TREE_H
#define MMSBFS_TREE_H

#include <sys/statvfs.h>

#include "inode.h"
#include "mmsbfs.h"

enum mmsbfs_kind {
	MMSBFS_K_LIVE = 0,   /* a node of the live tree (ino == core id) */
	MMSBFS_K_EPOCHS = 1, /* the epochs/ directory */
	MMSBFS_K_HEAD = 2,   /* the epochs/head symlink */
	MMSBFS_K_SNAP = 3,   /* a node inside epochs/N/ */
	MMSBFS_K_TAG = 4,    /* an epochs/NAME symlink of a tag */
	MMSBFS_K_FEED = 5,   /* epochs/.changes, the change feed */
};

/* What an ino names, pinned for one request (mmsbfs_tree_get/put). */
struct mmsbfs_node {
	enum mmsbfs_kind kind;	 /* see above */
	fuse_ino_t ino;		 /* the FUSE ino */
	uint64_t id;		 /* LIVE, SNAP: core node id */
	uint64_t epoch;		 /* SNAP: the snapshot's epoch */
	struct mmsb_snap *snap;	 /* SNAP: borrowed until put */
	struct mmsbfs_snode sn;	 /* SNAP: the pinned table entry */
};

/* Who is asking (from fuse_req_ctx). */
struct mmsbfs_caller {
	uint32_t uid; /* fsuid of the calling process */
	uint32_t gid; /* fsgid of the calling process */
};

/* Resolve ino.  -ESTALE for a synthetic ino the table does not know. */
int mmsbfs_tree_get(struct mmsbfs *fs, fuse_ino_t ino, struct mmsbfs_node *n);
void mmsbfs_tree_put(struct mmsbfs *fs, struct mmsbfs_node *n);
/* Core attributes of a LIVE or SNAP node; -ENODATA for EPOCHS/HEAD. */
int mmsbfs_tree_node_attr(struct mmsbfs *fs, const struct mmsbfs_node *n, struct mmsb_attr *a);

/* Look name up in parent.  A live name that does not exist gives 0 with
 * e->ino == 0 (a negative entry the kernel may cache for the live timeout).
 * On success with e->ino != 0 one lookup was counted: if the reply cannot
 * be delivered, call mmsbfs_tree_forget(fs, e->ino, 1). */
int mmsbfs_tree_lookup(struct mmsbfs *fs, fuse_ino_t parent, const char *name, struct fuse_entry_param *e);
/* FORGET: synthetic entries lose n lookups; live nodes ignore it. */
void mmsbfs_tree_forget(struct mmsbfs *fs, fuse_ino_t ino, uint64_t n);

int mmsbfs_tree_getattr(struct mmsbfs *fs, fuse_ino_t ino, struct stat *out, double *timeout);
/* to_set: FUSE_SET_ATTR_* bits.  All changes are one transaction. */
int mmsbfs_tree_setattr(struct mmsbfs *fs, fuse_ino_t ino, const struct stat *in, int to_set,
			struct stat *out, double *timeout);

/* Create a page (S_IFREG or type 0), directory (S_IFDIR), symlink (S_IFLNK,
 * target != NULL), fifo, socket, or character or block device (rdev) named
 * name in parent; no file type: -EINVAL. */
int mmsbfs_tree_mknod(struct mmsbfs *fs, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev,
		      const char *target, const struct mmsbfs_caller *who, struct fuse_entry_param *e);
/* link(2): one more name for live node ino.  -EROFS for a name under
 * epochs/, -EXDEV for a snapshot's node, -EPERM for a directory, and
 * mmsb_txn_link's errors. */
int mmsbfs_tree_link(struct mmsbfs *fs, fuse_ino_t ino, fuse_ino_t newparent, const char *newname,
		     struct fuse_entry_param *e);
/* create(2): a page, opened with fi->flags (takes an open reference).  If
 * the reply fails, call mmsbfs_tree_release() and mmsbfs_tree_forget(). */
int mmsbfs_tree_create(struct mmsbfs *fs, fuse_ino_t parent, const char *name, mode_t mode,
		       const struct mmsbfs_caller *who, struct fuse_file_info *fi, struct fuse_entry_param *e);
int mmsbfs_tree_unlink(struct mmsbfs *fs, fuse_ino_t parent, const char *name);
int mmsbfs_tree_rmdir(struct mmsbfs *fs, fuse_ino_t parent, const char *name);
/* flags: RENAME_NOREPLACE, RENAME_EXCHANGE; anything else -EINVAL. */
int mmsbfs_tree_rename(struct mmsbfs *fs, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		       const char *newname, unsigned flags);
/* Symlink target into buf (NUL-terminated); returns its length. */
ssize_t mmsbfs_tree_readlink(struct mmsbfs *fs, fuse_ino_t ino, char *buf, size_t cap);

/* open(2): checks the flags, takes an open reference on live pages (an
 * unlinked open page stays usable), truncates for O_TRUNC, and fills the
 * open flags (keep_cache, noflush).  Pair with mmsbfs_tree_release(). */
int mmsbfs_tree_open(struct mmsbfs *fs, fuse_ino_t ino, struct fuse_file_info *fi);
void mmsbfs_tree_release(struct mmsbfs *fs, fuse_ino_t ino);
ssize_t mmsbfs_tree_read(struct mmsbfs *fs, fuse_ino_t ino, uint64_t off, char *buf, size_t size);
/* One write(2) (or one WRITE of mmap writeback) = one transaction.
 * flags: the file's open flags (MMSBFS_KILL_SUIDGID may be set). */
ssize_t mmsbfs_tree_write(struct mmsbfs *fs, fuse_ino_t ino, uint64_t off, const char *buf, size_t size,
			  int flags);
/* posix_fallocate(3) (mode 0): grow the page to off+len; other modes -EOPNOTSUPP. */
int mmsbfs_tree_fallocate(struct mmsbfs *fs, fuse_ino_t ino, int mode, uint64_t off, uint64_t len);
/* fsync/fdatasync/fsyncdir: every committed epoch becomes durable. */
int mmsbfs_tree_fsync(struct mmsbfs *fs, fuse_ino_t ino);

int mmsbfs_tree_opendir(struct mmsbfs *fs, fuse_ino_t ino, struct fuse_file_info *fi);
/* Fill buf (size bytes) with entries after offset off; returns the bytes
 * used (0 at the end).  plus: readdirplus (counts lookups of snapshot
 * entries, as fuse_add_direntry_plus() promises the kernel). */
ssize_t mmsbfs_tree_readdir(struct mmsbfs *fs, fuse_req_t req, fuse_ino_t ino, uint64_t off, char *buf,
			    size_t size, bool plus);

int mmsbfs_tree_statfs(struct mmsbfs *fs, struct statvfs *out);

/* Decimal epoch number from an epochs/ name: digits only, no leading zero
 * (except "0"), no overflow.  -ENOENT for anything else. */
int mmsbfs_tree_parse_epoch(const char *name, uint64_t *epoch);

#endif
