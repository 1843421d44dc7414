/* mmsb.h - public API of libmmsb, the versioned in-memory page store.
 *
 * A store is a tree of directories, pages (regular files) and symlinks whose
 * bytes live in memory.  Every change is made inside a transaction; commit
 * gives it the next global epoch (dense, from 1; epoch 0 is the empty store),
 * appends its records and a commit marker to the transaction log (TLog) in the
 * store directory, and only then publishes it to readers.  Checkpoints hold
 * the full state at an epoch, written incrementally (a checkpoint stores the
 * 1 MiB blocks that changed since the previous one and refers to the
 * others in older checkpoint files); any retained epoch can be opened read-only
 * (time travel).  The on-disk format is specified in mmsb(5).
 *
 * This header is the whole boundary: fusefs/, ctl/ and tools/ use nothing else.
 * Conventions (err.h): functions return >= 0 on success, -errno on failure,
 * and write their OUT parameters only on success.  Handles are opaque.
 *
 * Threads: a store may be used from any number of threads.  Readers (the
 * head readers below, views) run in parallel and never wait for a writer's
 * work: a page write (mmsb_page_write) holds them up only while its record
 * is copied into the page, after its log append; a transaction holds them up
 * from begin to end, except while it runs an exec: recompute (then they read
 * the epoch before it).  Page writes to different pages run in parallel,
 * their propagation included: only the epoch, the log append and the
 * publication are serial.
 * Transactions are serialized with each other and with page writes (one at
 * a time, as in LMDB).  Concurrent committers share fsyncs (group commit).
 */
#ifndef MMSB_H
#define MMSB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MMSB_VERSION_STRING "0.1.0"

struct mmsb_store; /* an open store directory */
struct mmsb_txn;   /* a transaction in progress */
struct mmsb_snap;  /* a read-only view of one epoch */
struct mmsb_io_ops;

#define MMSB_ROOT_ID 1u /* node id of the root directory; ids are never reused */
#define MMSB_NAME_MAX 255u
#define MMSB_XATTR_NAME_MAX 255u
#define MMSB_XATTR_SIZE_MAX 65536u
/* Per-node caps on stored extended attributes (mmsb(5), XATTRS).  A set that
 * would exceed one fails with -ENOSPC, as ext4 does when an inode's xattr
 * space is full.  LIST_MAX keeps every name list (with the virtual names a
 * frontend adds) under Linux's XATTR_LIST_MAX of 65536 bytes, so listxattr(2)
 * never fails with E2BIG. */
#define MMSB_XATTR_COUNT_MAX 1024u	  /* attributes per node */
#define MMSB_XATTR_LIST_MAX 61440u	  /* sum of (name length + 1) per node */
#define MMSB_XATTR_TOTAL_MAX (1u << 20)	  /* sum of name and value bytes per node */

enum mmsb_type {
	MMSB_T_DIR = 1,
	MMSB_T_PAGE = 2,
	MMSB_T_SYMLINK = 3,
	MMSB_T_FIFO = 4, /* special files: metadata only, no bytes */
	MMSB_T_SOCK = 5,
	MMSB_T_CHR = 6,	 /* devices: rdev names the device */
	MMSB_T_BLK = 7,
};
#define MMSB_T_MAX MMSB_T_BLK
#define MMSB_LINK_MAX 65000u /* names of one page; -EMLINK past it */

/* Who caused a transaction; recorded in its commit marker. */
enum mmsb_source {
	MMSB_SRC_USER = 0,
	MMSB_SRC_PROPAGATION = 1,
	MMSB_SRC_RESTORE = 2,
	MMSB_SRC_SYSTEM = 3, /* internal (e.g. a location change by the daemon) */
};

/* Durability policy, chosen at open. */
enum mmsb_sync {
	MMSB_SYNC_NONE = 0,	/* written to the log before commit returns; durable on mmsb_store_sync() */
	MMSB_SYNC_COMMIT = 1,	/* every commit is durable before it returns (group commit) */
	MMSB_SYNC_INTERVAL = 2, /* a background thread syncs every sync_interval_ms */
};

/* GPU pages (user.mmsb.location = gpu). */
enum mmsb_gpu_mode {
	MMSB_GPU_AUTO = 0, /* CUDA managed memory when a GPU answers; else setting gpu fails (-ENODEV) */
	MMSB_GPU_CPU = 1,  /* accept gpu and serve those pages with the CPU kernel table (tests, CPU-only hosts) */
};

/* Diagnostic levels use syslog numbers. */
enum mmsb_diag_level {
	MMSB_DIAG_ERR = 3,
	MMSB_DIAG_WARNING = 4,
	MMSB_DIAG_NOTICE = 5,
	MMSB_DIAG_INFO = 6,
	MMSB_DIAG_DEBUG = 7,
};

/* Diagnostic sink: one line, no trailing newline.  Must be thread-safe. */
typedef void (*mmsb_diag_fn)(void *arg, int level, const char *msg);

/* Credentials of whoever asks for a checked operation (permission rule of
 * dependencies: mmsb(5), XATTRS).  uid 0 passes every check
 * (CAP_DAC_OVERRIDE). */
struct mmsb_cred {
	uint32_t uid;		/* file-system uid */
	uint32_t gid;		/* file-system gid */
	size_t n_groups;	/* entries in groups */
	const uint32_t *groups; /* supplementary groups (borrowed for the call) */
};

/* The supplementary groups of user uid (primary group gid): at most cap
 * into out.  Returns how many there are (more than cap: call again with a
 * larger buffer), or -errno.  Used for the owner of a derived page when it
 * is recomputed (no process of the owner is at hand then). */
typedef int (*mmsb_groups_fn)(void *arg, uint32_t uid, uint32_t gid, uint32_t *out, size_t cap);

/* Retention: history dropped automatically after each checkpoint (the
 * same compaction as mmsb_compact(), at a checkpoint boundary).  Each field
 * is a limit; history that breaks any of them is dropped, but never an
 * epoch a tag names, never more than the limits require, and time travel
 * keeps working back to the new oldest epoch.  All zero: keep everything. */
struct mmsb_keep {
	int64_t age_ns;	 /* drop epochs committed longer ago than this; 0 = no limit */
	uint64_t epochs; /* keep at most the newest this many epochs; 0 = no limit */
	uint64_t bytes;	 /* keep log + checkpoints on disk within this; 0 = no limit */
};

/* Parse a retention spec into *out: rules separated by ':', each a number
 * with a unit: "7d" (age: s, min, h, d, w), "100000e" (epochs), "10G"
 * (bytes: B, K/k, M, G/g, T/t, powers of 1024), e.g. "7d:10G".  A rule may
 * appear once.  Returns 0 or -EINVAL (bad number or unit, zero, repeat). */
int mmsb_keep_parse(const char *spec, struct mmsb_keep *out);

struct mmsb_commit_info;
/* Called once for every committed epoch, outside the store's locks, on the
 * committing thread.  May read the store; must not begin a transaction.
 * Hooks of successive commits may run concurrently.  Committed epochs are
 * consecutive (head + 1 at open, then + 1 per commit), so a hook that needs
 * them in order may wait for the hook of ci->epoch - 1. */
typedef void (*mmsb_commit_fn)(void *arg, const struct mmsb_commit_info *ci);

struct mmsb_store_opts {
	bool create;		      /* create the store directory if missing */
	bool read_only;		      /* open read-only (also serves a damaged store up to the damage) */
	enum mmsb_sync sync;	      /* durability policy */
	unsigned sync_interval_ms;    /* for MMSB_SYNC_INTERVAL */
	uint64_t ckpt_log_bytes;      /* automatic checkpoint after this much log, or as much as
				       * the newest checkpoint file when that is more; 0 = never */
	bool ckpt_at_close;	      /* checkpoint at close when the log has grown */
	uint64_t segment_bytes;	      /* roll to a new log segment past this size */
	size_t cache_bytes;	      /* bound of materialized time-travel pages */
	uint32_t lz4_min_bytes;	      /* compress delta payloads at least this large; 0 = never (256 KiB
				       * and more: only if their first 32 KiB compress) */
	bool allow_exec;	      /* allow exec: recompute operations (they run as this process) */
	enum mmsb_gpu_mode gpu;	      /* where user.mmsb.location=gpu pages live */
	uint64_t gpu_mem;	      /* cap on the GPU memory GPU pages take (process-wide); 0 = none */
	unsigned exec_timeout_ms;     /* kill an exec: recompute after this long */
	int diag_level;		      /* drop messages above this level */
	mmsb_diag_fn diag_fn;	      /* NULL: stderr */
	void *diag_arg;
	mmsb_commit_fn commit_fn;     /* NULL: none */
	void *commit_arg;
	mmsb_groups_fn groups_fn;     /* NULL: getgrouplist(3) of uid's passwd name */
	void *groups_arg;	      /* for groups_fn */
	const struct mmsb_io_ops *io; /* NULL: the POSIX table (tests inject faults here) */
	struct mmsb_keep keep;	      /* retention, applied after each checkpoint (read-write) */
	uint64_t max_memory;	      /* page bytes that hold data, at most: a write, truncate or
				       * recompute that needs more gets -ENOSPC (holes are free) */
};

/* The default max_memory: half of physical RAM or of the cgroup's memory.max,
 * whichever is lower. */
uint64_t mmsb_default_max_memory(void);

/* Fill *o with the defaults: create, read-write, MMSB_SYNC_NONE, checkpoint
 * every 256 MiB of log and at close, 64 MiB segments, 256 MiB cache. */
void mmsb_store_opts_init(struct mmsb_store_opts *o);

/* Open (and recover) the store in directory dir.
 * Recovery loads the newest valid checkpoint and replays the log after it.
 * A torn transaction at the tail is discarded whole (NOTICE).  Damage followed
 * by valid records is corruption: a read-write open fails with -EUCLEAN and a
 * diagnostic naming segment, offset and check; a read-only open serves every
 * epoch before the damage.
 * Returns 0, or -ENOENT (no store and !create), -EINVAL (not an MMSB store),
 * -ENOTEMPTY (no store, create, and dir holds other files: a store is only
 * created in an empty or absent directory), -ENOTSUP (unknown incompat feature / major version), -EBUSY (locked by
 * another process), -EUCLEAN, -EBADMSG, -EIO, -ENOMEM. */
int mmsb_store_open(const char *dir, const struct mmsb_store_opts *o, struct mmsb_store **out);

/* Close: stops background work, takes a final checkpoint if configured,
 * syncs, releases the lock.  NULL-safe.  Errors go to the diag sink. */
void mmsb_store_close(struct mmsb_store *st);

/* Make every committed epoch durable.  -EIO after an fsync failure, which
 * also makes the store read-only for good (fsync is never retried). */
int mmsb_store_sync(struct mmsb_store *st);

uint64_t mmsb_store_head(struct mmsb_store *st);	   /* newest committed epoch */
uint64_t mmsb_store_oldest(struct mmsb_store *st);	   /* oldest retained epoch */
/* True when writes return -EROFS: opened read-only, or the log failed
 * (an unrecoverable write or fsync error).  Takes no lock: a failure may
 * follow right after it answered false. */
bool mmsb_store_is_read_only(struct mmsb_store *st);
/* The store directory (owned by the store, valid until close). */
const char *mmsb_store_dir(struct mmsb_store *st);
/* The durability policy the store was opened with (opts->sync). */
enum mmsb_sync mmsb_store_sync_mode(struct mmsb_store *st);

/* ---- attributes ----------------------------------------------------- */

struct mmsb_attr {
	uint64_t id;	   /* node id (inode number) */
	uint64_t parent;   /* parent directory id (root: itself) */
	enum mmsb_type type;
	uint32_t mode;	   /* permission bits only (07777) */
	uint32_t uid, gid;
	uint32_t nlink;	   /* dirs: 2 + subdirs; others: their names (0: unlinked while open) */
	uint64_t size;	   /* bytes (symlink: target length) */
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint64_t version;  /* number of byte changes applied to the page (writes and truncates) */
	uint64_t epoch;	   /* epoch of the last change to this node */
	uint64_t birth;	   /* epoch that created it */
	uint64_t rdev;	   /* MMSB_T_CHR, MMSB_T_BLK: the device (a dev_t); else 0 */
	uint64_t alloc_bytes; /* memory holding its bytes (holes excluded): st_blocks * 512 */
};

/* Attribute changes; valid says which fields apply. */
enum {
	MMSB_SET_MODE = 1 << 0,
	MMSB_SET_UID = 1 << 1,
	MMSB_SET_GID = 1 << 2,
	MMSB_SET_ATIME = 1 << 3,
	MMSB_SET_MTIME = 1 << 4,
};
struct mmsb_setattr {
	uint32_t valid;
	uint32_t mode, uid, gid;
	int64_t atime_ns, mtime_ns;
};

/* ---- reading the head --------------------------------------------------
 * These read the newest committed state.  Buffers are the caller's.  Each
 * call takes the store's read lock for its duration: any thread may call
 * them, except one holding a transaction (see mmsb_txn_getattr). */

/* Attributes of name in directory parent (a hard link gives its node's).
 * -ENOENT (no parent, unlinked parent, no such name), -ENOTDIR. */
int mmsb_lookup(struct mmsb_store *st, uint64_t parent, const char *name, struct mmsb_attr *out);
/* Attributes of node id, also of an orphan still referenced (mmsb_ref).
 * -ENOENT. */
int mmsb_getattr(struct mmsb_store *st, uint64_t id, struct mmsb_attr *out);
/* Resolve a '/'-separated path relative to the root ("" or "/" is the root). */
int mmsb_resolve(struct mmsb_store *st, const char *path, struct mmsb_attr *out);
/* Path of node id at head, into buf (no leading '/', root is "").
 * Returns the length, -ENOENT, or -ERANGE when cap is too small. */
ssize_t mmsb_path(struct mmsb_store *st, uint64_t id, char *buf, size_t cap);
/* Read up to len bytes at off; returns bytes read (0 at or past EOF),
 * -ENOENT, -EISDIR. */
ssize_t mmsb_read(struct mmsb_store *st, uint64_t id, uint64_t off, void *buf, size_t len);
/* Copy up to cap bytes of symlink id's target into buf, not NUL-terminated;
 * returns the bytes copied (a longer target is cut at cap).  -ENOENT,
 * -EINVAL (not a symlink). */
ssize_t mmsb_readlink(struct mmsb_store *st, uint64_t id, char *buf, size_t cap);
/* lseek(2) SEEK_DATA (data) or SEEK_HOLE from off: *out gets the offset of
 * the next data / hole at or after off (the end of the page is a hole).
 * Unwritten ranges of a page are holes; data is reported in 64 KiB chunks.
 * -ENXIO (off at or past the end, or no data after off), -ENOENT, -EISDIR,
 * -EINVAL (not a page). */
int mmsb_seek(struct mmsb_store *st, uint64_t id, uint64_t off, bool data, uint64_t *out);

/* Could c find path (relative to the root) by itself: search on every
 * directory from the root down to the one holding it, and read on that one
 * (its name is listed there)?  The root is visible to all; uid 0 sees
 * everything.  0, -EACCES, -ENOENT (path names nothing now). */
int mmsb_path_visible(struct mmsb_store *st, const char *path, const struct mmsb_cred *c);

/* Directory listing: calls fn for each entry after cookie `from` (0 = start),
 * in a stable order; each entry carries the cookie to resume after it.
 * Entries not renamed or removed during a listing are returned exactly once.
 * fn returns nonzero to stop.  Returns 0, -ENOENT, -ENOTDIR. */
typedef int (*mmsb_dirent_fn)(void *arg, const char *name, const struct mmsb_attr *a, uint64_t cookie);
int mmsb_readdir(struct mmsb_store *st, uint64_t dir, uint64_t from, mmsb_dirent_fn fn, void *arg);

/* Extended attributes.  getxattr with cap 0 returns the size.  Returns the
 * value size, -ENODATA, -ERANGE, -ENOENT.  listxattr returns NUL-separated
 * names like listxattr(2). */
ssize_t mmsb_getxattr(struct mmsb_store *st, uint64_t id, const char *name, void *buf, size_t cap);
ssize_t mmsb_listxattr(struct mmsb_store *st, uint64_t id, char *buf, size_t cap);

/* Open references.  A page or symlink unlinked (or replaced by rename) while
 * referenced lives on outside the tree as an orphan: reads, writes and
 * truncates through its id keep working, unlogged (it is in no epoch), until
 * the last reference is dropped.  mmsb_ref returns 0 or -ENOENT. */
int mmsb_ref(struct mmsb_store *st, uint64_t id);
/* Drop one reference taken by mmsb_ref; the last one frees an orphan.  An
 * id that is gone is ignored.  Takes the store's write lock. */
void mmsb_unref(struct mmsb_store *st, uint64_t id);

/* ---- transactions -------------------------------------------------------
 * begin waits for the previous writer.  Each operation either applies fully
 * or returns an error having changed nothing; the transaction stays usable.
 * The exception is an error (-ENOMEM, or a device error of a GPU page) that
 * strikes after a record began to change the head: the transaction is then
 * spoiled, and commit aborts it and returns that error.
 * commit returns the new epoch in *epoch (0 when nothing changed: no record,
 * no epoch).  abort undoes whatever the transaction applied.  A transaction
 * must be ended (commit or abort) by the thread that began it.
 * Every write returns -EROFS on a read-only or failed store. */

/* Begin a transaction caused by src: waits for the store's write lock, which
 * it holds until commit or abort (page writes and head readers wait; see
 * Threads above).  *out belongs to the store (there is one transaction at a
 * time).  -EROFS. */
int mmsb_txn_begin(struct mmsb_store *st, enum mmsb_source src, struct mmsb_txn **out);
/* Run the recomputations (user.mmsb.recompute), append the records and a
 * commit marker to the log, make the new epoch the head, call the commit
 * hook and, with MMSB_SYNC_COMMIT, wait until the epoch is durable.  epoch
 * may be NULL.  txn ends whatever the result.  Before the append, an error
 * leaves the head as it was before begin: that of a spoiled transaction
 * (above), -ENOMEM, or the log's (-EROFS, -EIO, -ENOSPC).  A durability
 * failure after it (-EIO, MMSB_SYNC_COMMIT only) leaves the epoch the head
 * but not durable, and the store read-only (see mmsb_store_sync). */
int mmsb_txn_commit(struct mmsb_txn *txn, uint64_t *epoch);
/* Undo everything txn applied (the head is rebuilt when it changed) and end
 * it. */
void mmsb_txn_abort(struct mmsb_txn *txn);

/* One write(2) to page id as its own epoch: mmsb_txn_begin, mmsb_txn_write
 * and mmsb_txn_commit in one call, made for parallel writers.  A page in
 * host memory takes a path of its own: the delta (and the recomputation of
 * the pages derived from it, exec: included) is made while only writers of
 * the same pages wait, and the commit (epoch, log append, publication) is
 * the one serial step; head readers wait only while the bytes are copied
 * into the pages.  An unlinked page, a write over 64 MiB, and a write to a
 * page with dependents whose propagation reaches a GPU page, more than 64
 * pages or more than 16 MiB of pages to change take a transaction.  The same bytes record nothing (*epoch 0).  Returns len, or
 * the errors of mmsb_txn_write and mmsb_txn_commit; -ENOSPC when max_memory
 * would be passed.  epoch may be NULL. */
ssize_t mmsb_page_write(struct mmsb_store *st, enum mmsb_source src, uint64_t id, uint64_t off, const void *buf,
			size_t len, uint64_t *epoch);

/* Create a page, directory or symlink (target: symlink text, else NULL).
 * -EEXIST, -ENOENT (parent), -ENOTDIR, -ENAMETOOLONG, -EINVAL (bad name). */
int mmsb_txn_create(struct mmsb_txn *txn, uint64_t parent, const char *name, enum mmsb_type type,
		    uint32_t mode, uint32_t uid, uint32_t gid, const char *target, struct mmsb_attr *out);
/* Create a fifo, socket, character or block device node (rdev: the device
 * of MMSB_T_CHR/MMSB_T_BLK, else ignored).  Other types: -EINVAL.  Same
 * errors as mmsb_txn_create. */
int mmsb_txn_mknod(struct mmsb_txn *txn, uint64_t parent, const char *name, enum mmsb_type type, uint32_t mode,
		   uint32_t uid, uint32_t gid, uint64_t rdev, struct mmsb_attr *out);
/* Give node id one more name (link(2)): it then has nlink names, all equal;
 * removing one keeps the others.  -ENOENT (no node, unlinked node or no
 * parent), -EPERM (a directory), -EEXIST, -ENOTDIR, -ENAMETOOLONG, -EINVAL
 * (bad name), -EMLINK (MMSB_LINK_MAX names). */
int mmsb_txn_link(struct mmsb_txn *txn, uint64_t id, uint64_t newparent, const char *newname,
		  struct mmsb_attr *out);
/* Write len bytes at off; only the bytes that differ become a delta.
 * Returns len, or -ENOENT, -EISDIR, -EFBIG, -ENOMEM. */
ssize_t mmsb_txn_write(struct mmsb_txn *txn, uint64_t id, uint64_t off, const void *buf, size_t len);
/* Set page id's size; bytes past the old end read as zeros.  The same size
 * records nothing.  An orphan (unlinked, still referenced) changes in
 * memory only.  -ENOENT, -EISDIR, -EINVAL (not a page), -EFBIG (past
 * 16 TiB), -ENOMEM. */
int mmsb_txn_truncate(struct mmsb_txn *txn, uint64_t id, uint64_t size);
/* Remove a name of a non-directory (-EISDIR for a directory; the node lives
 * on while it has other names) / an empty directory
 * (-ENOTDIR, -ENOTEMPTY). */
int mmsb_txn_unlink(struct mmsb_txn *txn, uint64_t parent, const char *name);
int mmsb_txn_rmdir(struct mmsb_txn *txn, uint64_t parent, const char *name);
#define MMSB_RENAME_NOREPLACE 1u
#define MMSB_RENAME_EXCHANGE 2u
/* rename(2) semantics, including replacing a target and both flags.  Two
 * names of one node: nothing happens (0), as POSIX says.
 * -ENOENT, -EEXIST, -EISDIR, -ENOTDIR, -ENOTEMPTY, -EINVAL (dir into itself). */
int mmsb_txn_rename(struct mmsb_txn *txn, uint64_t parent, const char *name, uint64_t newparent,
		    const char *newname, unsigned flags);
/* Change the attributes sa->valid names (MMSB_SET_*; mode keeps its 07777
 * bits) and ctime; valid == 0 records nothing.  No permission check: the
 * caller decides.  -ENOENT, -EINVAL (unknown bits in valid), -ENOMEM. */
int mmsb_txn_setattr(struct mmsb_txn *txn, uint64_t id, const struct mmsb_setattr *sa);
#define MMSB_XATTR_CREATE 1u
#define MMSB_XATTR_REPLACE 2u
/* -EEXIST / -ENODATA per flags, -ERANGE / -E2BIG for oversized names/values,
 * -ENOSPC past a per-node cap (MMSB_XATTR_*_MAX).  Dependency attributes:
 * -ENOENT / -ENOTDIR a parent path, -EISDIR a directory as parent, -EINVAL
 * (not a page, bad operation, sizes), -EACCES (mmsb_txn_set_cred), -ELOOP a
 * cycle, -EPERM exec: not allowed; mmsb_txn_why() says which and why. */
int mmsb_txn_setxattr(struct mmsb_txn *txn, uint64_t id, const char *name, const void *value, size_t len,
		      unsigned flags);
/* Remove extended attribute name of node id.  Removing a dependency
 * attribute (user.mmsb.deps, user.mmsb.recompute) is checked as setting
 * one is (mmsb_txn_set_cred; mmsb_txn_why() says why it was refused).
 * -ENOENT, -ERANGE (empty or oversized name), -ENODATA (not set),
 * -ENOMEM, and the dependency errors of mmsb_txn_setxattr. */
int mmsb_txn_removexattr(struct mmsb_txn *txn, uint64_t id, const char *name);
/* Check this transaction's dependency operations against cred (copied):
 * setting user.mmsb.deps or user.mmsb.recompute then requires that cred may
 * read every parent (search on every directory of its path, read on the
 * page), else -EACCES.  Without it (library use, replay) nothing is checked.
 * Lasts until commit or abort.  0 or -ENOMEM. */
int mmsb_txn_set_cred(struct mmsb_txn *txn, const struct mmsb_cred *cred);
/* Why the last refused dependency operation of txn was refused: one line
 * naming the rule and the path ("" when none).  Valid until the next call on
 * txn; copy it before mmsb_txn_abort(). */
const char *mmsb_txn_why(const struct mmsb_txn *txn);
/* Reads inside a transaction (they see its changes).  The head readers
 * above must not be called by the thread that holds a transaction. */
/* Same results and errors as mmsb_getattr, mmsb_lookup and mmsb_read. */
int mmsb_txn_getattr(struct mmsb_txn *txn, uint64_t id, struct mmsb_attr *out);
int mmsb_txn_lookup(struct mmsb_txn *txn, uint64_t parent, const char *name, struct mmsb_attr *out);
ssize_t mmsb_txn_read(struct mmsb_txn *txn, uint64_t id, uint64_t off, void *buf, size_t len);

/* ---- commit events ------------------------------------------------------ */

enum mmsb_change {
	MMSB_CH_CREATE = 1,
	MMSB_CH_WRITE,
	MMSB_CH_TRUNCATE,
	MMSB_CH_UNLINK,
	MMSB_CH_RMDIR,
	MMSB_CH_RENAME,
	MMSB_CH_SETATTR,
	MMSB_CH_SETXATTR,
	MMSB_CH_RMXATTR,
	MMSB_CH_LINK,	/* id got a new name in parent */
	MMSB_CH_MKNOD,	/* a special file was created */
};

struct mmsb_change_rec {
	enum mmsb_change kind;
	enum mmsb_source source; /* PROPAGATION for recomputed pages, else the txn's */
	uint64_t id;	   /* the node changed */
	uint64_t parent;   /* for create/unlink/rmdir/rename: the (old) parent */
	uint64_t bytes;	   /* write: bytes changed; truncate: new size */
};

struct mmsb_commit_info {
	uint64_t epoch;
	int64_t time_ns;		    /* wall clock at commit */
	enum mmsb_source source;
	size_t n_changes;
	const struct mmsb_change_rec *changes; /* valid during the callback only */
	uint64_t bytes_changed;		    /* total bytes changed by writes */
};

/* ---- checkpoints --------------------------------------------------------- */

/* Checkpoint the head (if the newest checkpoint is older) and wait for it to
 * be durable.  Writers are not blocked while it is written.  *epoch gets its
 * epoch.  -EBUSY never: concurrent callers wait and share. */
int mmsb_checkpoint(struct mmsb_store *st, uint64_t *epoch);

struct mmsb_ckpt_info {
	uint64_t epoch;
	int64_t time_ns;
	uint64_t file_bytes;
};
/* List checkpoints, oldest first, into out (at most cap).  Returns the
 * total number (which may exceed cap). */
ssize_t mmsb_checkpoints(struct mmsb_store *st, struct mmsb_ckpt_info *out, size_t cap);

/* A range of epochs, both ends included. */
struct mmsb_epoch_range {
	uint64_t first, last;
};
/* The epochs a damaged store cannot reconstruct (their log records are lost
 * and no later checkpoint at or before them helps), oldest first: reading
 * them fails with -EUCLEAN.  Fills up to cap; returns how many there are. */
ssize_t mmsb_lost_epochs(struct mmsb_store *st, struct mmsb_epoch_range *out, size_t cap);

/* Drop history before the newest checkpoint at or before `before`: earlier
 * checkpoints and log segments are deleted (a checkpoint file whose blocks
 * a retained checkpoint refers to stays until none does) and time travel
 * before it stops working.  *kept gets the new oldest epoch.  -ENOENT if no such checkpoint,
 * -EBUSY if a tag names a dropped epoch (MMSB_COMPACT_FORCE drops such tags
 * too), -EROFS. */
#define MMSB_COMPACT_FORCE 1u
int mmsb_compact(struct mmsb_store *st, uint64_t before, unsigned flags, uint64_t *kept);

/* ---- tags: names for epochs ---------------------------------------------
 * A tag names a retained epoch (mmsbctl checkpoint --tag, epochs/NAME).
 * Names are 1..64 bytes of [A-Za-z0-9._-], not all digits, not "head", not
 * starting with '.'.  Tags live in STORE/tags, replaced atomically. */
#define MMSB_TAG_MAX 64
struct mmsb_tag {
	char name[MMSB_TAG_MAX + 1];
	uint64_t epoch;
	int64_t time_ns; /* when the tag was set */
};
/* Set (or move) a tag.  -EINVAL bad name, -ENOENT epoch not retained, -EROFS. */
int mmsb_tag_set(struct mmsb_store *st, const char *name, uint64_t epoch);
/* -ENOENT when there is no such tag. */
int mmsb_tag_remove(struct mmsb_store *st, const char *name);
/* The epoch tag name names, into *epoch.  -ENOENT when there is none. */
int mmsb_tag_get(struct mmsb_store *st, const char *name, uint64_t *epoch);
/* Tags sorted by epoch into out (at most cap); returns the total number. */
ssize_t mmsb_tags(struct mmsb_store *st, struct mmsb_tag *out, size_t cap);
/* Is name a valid tag name (the rules above)?  Needs no store. */
bool mmsb_tag_name_ok(const char *name);

/* ---- time travel ----------------------------------------------------------
 * A snapshot is a read-only view of the whole tree at a retained epoch.  Its
 * cost is the nearest checkpoint at or before it plus the log since; page bytes
 * are materialized on first read from that checkpoint and the page's own
 * deltas, and kept in a bounded cache.  Snapshots are refcounted and shared:
 * open returns a reference, close drops it.  -ENOENT for an epoch past head
 * or before retained history.
 *
 * The readers below are the head's at the snapshot's epoch.  Each locks the
 * snapshot's own mutex, so several threads may read one snapshot (they take
 * turns); none blocks writers of the head.  Buffers are the caller's; the
 * snapshot is the store's and must be closed before mmsb_store_close. */

/* A reference to the snapshot at epoch into *out (an open or idle one is
 * shared).  Building one reads the nearest checkpoint and the log since:
 * -ENOENT, -ENOMEM, or an error reading them (-EIO, -EUCLEAN: damaged). */
int mmsb_snap_open(struct mmsb_store *st, uint64_t epoch, struct mmsb_snap **out);
/* Drop a reference; after the last one the view stays idle for reuse (a
 * few are kept, the oldest freed).  NULL-safe.  Closing more often than
 * opening aborts the process. */
void mmsb_snap_close(struct mmsb_snap *snap);
/* The epoch snap shows (it never changes; no lock). */
uint64_t mmsb_snap_epoch(const struct mmsb_snap *snap);
/* As mmsb_lookup, mmsb_getattr, mmsb_resolve and mmsb_path. */
int mmsb_snap_lookup(struct mmsb_snap *snap, uint64_t parent, const char *name, struct mmsb_attr *out);
int mmsb_snap_getattr(struct mmsb_snap *snap, uint64_t id, struct mmsb_attr *out);
int mmsb_snap_resolve(struct mmsb_snap *snap, const char *path, struct mmsb_attr *out);
ssize_t mmsb_snap_path(struct mmsb_snap *snap, uint64_t id, char *buf, size_t cap);
/* As mmsb_read.  A page's bytes are materialized on its first read (from
 * the checkpoint and the page's deltas, briefly under the store's read
 * lock), so this may also return -ENOMEM, -EIO or -EUCLEAN (damage). */
ssize_t mmsb_snap_read(struct mmsb_snap *snap, uint64_t id, uint64_t off, void *buf, size_t len);
/* As mmsb_readlink, mmsb_readdir, mmsb_getxattr and mmsb_listxattr. */
ssize_t mmsb_snap_readlink(struct mmsb_snap *snap, uint64_t id, char *buf, size_t cap);
int mmsb_snap_seek(struct mmsb_snap *snap, uint64_t id, uint64_t off, bool data, uint64_t *out);
int mmsb_snap_readdir(struct mmsb_snap *snap, uint64_t dir, uint64_t from, mmsb_dirent_fn fn, void *arg);
ssize_t mmsb_snap_getxattr(struct mmsb_snap *snap, uint64_t id, const char *name, void *buf, size_t cap);
ssize_t mmsb_snap_listxattr(struct mmsb_snap *snap, uint64_t id, char *buf, size_t cap);

/* ---- history, diff, restore -------------------------------------------- */

struct mmsb_hist_entry {
	uint64_t epoch;
	int64_t time_ns;
	enum mmsb_source source;
	enum mmsb_change kind;
	uint64_t id;
	uint64_t bytes; /* write: bytes changed; truncate: new size */
};
/* Walk the changes to node id (or all nodes when id == 0) with epochs in
 * [since, until], oldest first.  fn returns nonzero to stop.  Returns 0. */
typedef int (*mmsb_hist_fn)(void *arg, const struct mmsb_hist_entry *e);
int mmsb_history(struct mmsb_store *st, uint64_t id, uint64_t since, uint64_t until, mmsb_hist_fn fn, void *arg);

struct mmsb_epoch_info {
	uint64_t epoch;
	int64_t time_ns;
	enum mmsb_source source;
	uint32_t n_records;
	uint64_t bytes_changed;
};
int mmsb_epoch_info(struct mmsb_store *st, uint64_t epoch, struct mmsb_epoch_info *out);

/* Difference between two retained epochs: for each path that differs, fn gets
 * the kind ('+' added, '-' removed, 'M' bytes, 'A' attributes/xattrs only),
 * the path, and for 'M' the changed byte ranges (sorted, disjoint).  Paths
 * restricts to those subtrees (NULL: all).  Returns 0, -ENOENT. */
struct mmsb_range {
	uint64_t off, len;
};
typedef int (*mmsb_diff_fn)(void *arg, char kind, const char *path, const struct mmsb_range *r, size_t n);
int mmsb_diff(struct mmsb_store *st, uint64_t e1, uint64_t e2, const char *const *paths, size_t n_paths,
	      mmsb_diff_fn fn, void *arg);

/* Make the head equal to epoch e, for the whole tree (paths NULL) or for
 * those paths, as one new transaction with source RESTORE.  History is kept.
 * *epoch gets the new epoch (0 if nothing differed).  -ENOENT for an unknown
 * epoch, or for a path that exists neither at e nor at head. */
int mmsb_restore(struct mmsb_store *st, uint64_t e, const char *const *paths, size_t n_paths, uint64_t *epoch);

/* ---- statistics ------------------------------------------------------------ */

struct mmsb_stats {
	uint64_t head, oldest, last_ckpt;
	uint64_t n_pages, n_dirs, n_symlinks;
	uint64_t page_bytes;		 /* sum of page sizes */
	uint64_t n_commits;		 /* since open */
	uint64_t n_records;		 /* since open */
	uint64_t n_deltas, delta_bytes;	 /* write records and bytes changed, since open */
	uint64_t delta_record_bytes;	 /* encoded size of those records */
	uint64_t log_bytes, n_segments;	 /* retained log on disk */
	uint64_t n_ckpts, ckpt_bytes;	 /* retained checkpoints on disk */
	uint64_t n_syncs;		 /* fsyncs of the log since open */
	uint64_t commit_p50_ns, commit_p99_ns; /* commit latency (excluding sync) */
	uint64_t sync_p50_ns, sync_p99_ns;
	uint64_t apply_p50_ns, apply_p99_ns;   /* applying one record to memory */
	uint64_t replay_bytes, replay_ns;      /* recovery at open */
	uint64_t ckpt_write_bytes, ckpt_write_ns; /* last checkpoint written */
	uint64_t cache_bytes, cache_hits, cache_misses; /* time-travel page cache */
	uint64_t indexed_epochs;	       /* epochs in the time-travel index (older ones load on first need) */
	uint64_t mem_used, mem_limit;	 /* page bytes holding data, and max_memory */
};
void mmsb_store_stats(struct mmsb_store *st, struct mmsb_stats *out);

/* ---- verification ---------------------------------------------------------- */

/* Re-read every log segment and checkpoint, checking every checksum and
 * structure; report problems through the diag sink.  Returns 0 if clean,
 * -EUCLEAN / -EBADMSG on the first class of damage found (it keeps going to
 * report all), -EIO on read errors. */
int mmsb_store_verify(struct mmsb_store *st);

const char *mmsb_source_name(enum mmsb_source s);
const char *mmsb_change_name(enum mmsb_change c);

#endif
