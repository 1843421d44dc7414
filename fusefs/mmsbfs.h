/* mmsbfs.h - internal header of the mmsbfs daemon (fusefs/ only).
 *
 * mmsbfs is a thin FUSE low-level frontend over libmmsb (src/mmsb.h, the
 * only core header it includes).  The behaviour it implements is specified
 * in .fusefs-spec.md and documented for users in mmsbfs(8).
 *
 * Module map (each .c has its own header comment):
 *   main.c    options, start-up (stale mount clean-up, fork+pipe daemon),
 *             diagnostics, signals, the session loop and teardown
 *   ops.c     the fuse_lowlevel_ops table: thin handlers (decode, call, reply)
 *   tree.c    live tree and epochs/ semantics over the core
 *   inode.c   synthetic inode table for epochs/ (lookup counts, snapshots)
 *   xattr.c   virtual, reserved and stored extended attributes
 *   notify.c  notifier thread: kernel cache invalidations after commits
 *   wire.c    /dev/fuse I/O hook: INIT capabilities libfuse 3.14 lacks
 *   ctl.c     the control socket mmsbctl talks to (STORE/ctl.sock)
 *   feed.c    epochs/.changes, the change feed (watch lines)
 *   metrics.c the -o metrics= Prometheus endpoint
 *   startup.c mount(8)'s generic options, start-up checks, the one-daemon-
 *             per-store lock, undo of a failed mount, sd_notify
 * ctl.c, feed.c and metrics.c run the mmsbctl commands and watch lines of
 * ctl/ctlcmd.h (a library of its own, also linked by mmsbctl); fusefs/
 * includes nothing from tools/.
 *
 * Conventions (STYLE.md): functions return >= 0 on success and -errno on
 * failure; the sign flips once, in ops.c, at fuse_reply_err().  There is no
 * mutable global state except the process-wide diagnostic sink in main.c
 * (libfuse's log hook has no user pointer).
 *
 * Inode numbers.  A live node's FUSE ino is its core id (root 1 ==
 * FUSE_ROOT_ID); core ids are never reused and nodes live independently of
 * the kernel's lookup counts.  Everything under epochs/ uses synthetic inos
 * from the reserved range >= MMSBFS_INO_SYNTH:
 *
 *   MMSBFS_INO_EPOCHS           the epochs/ directory
 *   MMSBFS_INO_HEAD             the epochs/head symlink
 *   MMSBFS_INO_TAG + h          the epochs/NAME symlink of a tag, h a 59-bit
 *                               hash of NAME (tags are few: an ino is
 *                               mapped back by scanning mmsb_tags())
 *   MMSBFS_INO_EROOT + N        the root of epochs/N (so readdir of epochs/
 *                               can give d_ino without opening a snapshot)
 *   MMSBFS_INO_SNODE + h        any other snapshot node, h a 60-bit hash of
 *                               (epoch, id): stable, so readdir's d_ino
 *                               equals st_ino without counting a lookup
 *   MMSBFS_INO_SCOUNT + k       the rare node whose hash collides, k from a
 *                               counter
 */
#ifndef MMSBFS_H
#define MMSBFS_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mmsb.h"

#define MMSBFS_INO_SYNTH (UINT64_C(1) << 62)			 /* first synthetic ino */
#define MMSBFS_INO_EPOCHS (MMSBFS_INO_SYNTH + 0)		 /* epochs/ */
#define MMSBFS_INO_HEAD (MMSBFS_INO_SYNTH + 1)			 /* epochs/head */
#define MMSBFS_INO_FEED (MMSBFS_INO_SYNTH + 2)			 /* epochs/.changes (feed.h) */
#define MMSBFS_INO_TAG (MMSBFS_INO_SYNTH + (UINT64_C(1) << 59))	 /* + 59-bit hash of a tag name */
#define MMSBFS_INO_EROOT (MMSBFS_INO_SYNTH + (UINT64_C(1) << 60)) /* + epoch N (< 2^60) */
#define MMSBFS_INO_SNODE (MMSBFS_INO_SYNTH + (UINT64_C(1) << 61)) /* + 60-bit hash */
#define MMSBFS_INO_SCOUNT (MMSBFS_INO_SNODE + (UINT64_C(1) << 60)) /* + counter */
#define MMSBFS_EPOCH_MAX ((UINT64_C(1) << 60) - 1)		 /* largest epoch with an EROOT ino */

#define MMSBFS_EPOCHS_NAME "epochs" /* reserved name in the root directory */
#define MMSBFS_HEAD_NAME "head"	    /* epochs/head */

#define MMSBFS_LIVE_TIMEOUT 1.0	   /* s: entry/attr validity in the live tree */
#define MMSBFS_SNAP_TIMEOUT 86400.0 /* s: epochs/N is immutable */
#define MMSBFS_BLKSIZE 131072u	   /* st_blksize: I/O size hint for tools */

/* Marker bit that wire.c sets in a request's open flags (WRITE, OPEN,
 * CREATE) or in st_mode (SETATTR) when the kernel asks the file system to
 * kill suid/sgid (FUSE_HANDLE_KILLPRIV_V2).  Bit 31 is no open flag and no
 * mode bit; handlers mask it off. */
#define MMSBFS_KILL_SUIDGID (1u << 31)

enum mmsbfs_sync_sel {
	MMSBFS_SYNC_DEFAULT = 0, /* not given: the core's default (none) */
	MMSBFS_SYNC_SET = 1,	 /* -o sync=... given */
};

/* Parsed command line.  Strings are owned (fuse_opt allocates them). */
struct mmsbfs_opts {
	char *store;		   /* STORE argument as given */
	char *mountpoint;	   /* MOUNTPOINT argument as given */
	char *store_abs;	   /* STORE made absolute (the daemon chdirs to /) */
	char *mnt_abs;		   /* MOUNTPOINT made absolute */
	char *sync;		   /* -o sync=none|commit|interval */
	char *ckpt_bytes;	   /* -o ckpt_bytes=N[kmg] */
	char *cache;		   /* -o cache=N[kmg] */
	char *max_memory;	   /* -o max_memory=N[kmgt] */
	char *sync_interval_arg;   /* -o sync_interval=MS (checked: 1..86400000) */
	char *threads_arg;	   /* -o threads=N (checked: 1..MAIN_THREADS_MAX) */
	unsigned threads;	   /* max worker threads: threads_arg or the default */
	char *keep;		   /* -o keep=RULES: retention (mmsb_keep_parse) */
	char *metrics;		   /* -o metrics=HOST:PORT: Prometheus endpoint */
	int foreground;		   /* -f (or -d) */
	int debug;		   /* -d: libfuse debug output, debug diagnostics */
	int single;		   /* -s: single-threaded loop */
	int show_help;		   /* -h, --help */
	int show_version;	   /* -V, --version */
	int read_only;		   /* -o ro */
	int allow_other;	   /* -o allow_other */
	int show_epochs;	   /* -o show_epochs: list epochs in the root */
	int no_killpriv_v2;	   /* -o nokillpriv_v2: keep the per-write GETXATTR */
	int cached_writes;	   /* -o cached_writes: no direct I/O for writers */
	int nosuid, nodev, noexec; /* 1: -o nosuid/nodev/noexec, -1: -o exec (the last
				    * given wins), 0: not given (nosuid,nodev: libfuse's default) */
	int clone_fd;		   /* -o clone_fd: one /dev/fuse fd per worker */
	int allow_exec;		   /* -o allow_exec: exec: recompute operations run */
	char *exec_timeout_arg;	   /* -o exec_timeout=MS (checked: 1..86400000) */
	char *gpu;		   /* -o gpu=auto|cpu: where GPU pages live */
	char *gpu_mem;		   /* -o gpu_mem=N[kmgt]: cap on the GPU memory of GPU pages */
	char *kernel_opts;	   /* generic options passed on to the kernel (noatime, ...) */
	int nonempty;		   /* -o nonempty: mount over a non-empty directory */
	char *log_file;		   /* -o log=FILE: append every message, timestamped */
	char *log_level;	   /* -o loglevel=err|warning|notice|info|debug */
	int verbose;		   /* -v: debug messages (without libfuse's request trace) */
	int show_mmsb_xattrs;	   /* -o show_mmsb_xattrs: listxattr lists user.mmsb.* */
};

struct mmsbfs_itab;
struct mmsbfs_notify;
struct mmsbfs_wire;
struct mmsbfs_ctl;
struct mmsbfs_feed;
struct mmsbfs_metrics;

/* The daemon.  Reached through fuse_req_userdata(); one per process. */
struct mmsbfs {
	struct mmsb_store *st;		     /* the open store; set before the session starts */
	struct fuse_session *se;	     /* the FUSE session (NULL until created) */
	struct mmsbfs_itab *itab;	     /* synthetic inodes under epochs/ */
	_Atomic(struct mmsbfs_notify *) notify; /* notifier; NULL when not running */
	_Atomic(struct mmsbfs_ctl *) ctl;    /* control socket server (ctl.c); NULL when not running */
	struct mmsbfs_metrics *metrics;	     /* -o metrics= server (metrics.c); NULL when off */
	struct mmsbfs_feed *feed;	     /* epochs/.changes (feed.c); set before the store opens */
	pthread_mutex_t hook_mu;	     /* the commit hook's epoch order (main.c) */
	pthread_cond_t hook_cond;	     /* hook_next moved */
	uint64_t hook_next;		     /* epoch whose hook goes next; 0: any (hook_mu) */
	struct mmsbfs_wire *wire;	     /* /dev/fuse hook state (NULL: not installed) */
	const struct mmsbfs_opts *opts;	     /* command line (owned by main) */
	bool show_epochs;		     /* list epochs/ in the root's readdir */
	bool read_only;			     /* store opened read-only */
	int diag_level;			     /* drop messages above this syslog level */
	atomic_bool diag_syslog;	     /* daemonized: diagnostics go to syslog */
	atomic_uint_fast64_t n_capability;   /* GETXATTR security.capability answered */
	_Atomic(struct mmsbfs_refusals *) refusals; /* why dependency attributes were refused (xattr.c) */
};

/* ---- diagnostics (main.c) ------------------------------------------------ */

#define MMSBFS_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* One line to stderr (foreground) or syslog (daemon), "mmsbfs: " prefixed.
 * Thread-safe.  Messages above fs->diag_level are dropped. */
void mmsbfs_diag(struct mmsbfs *fs, int level, const char *fmt, ...) MMSBFS_PRINTF(3, 4);

/* The core's diag sink (mmsb_store_opts.diag_fn); arg is the struct mmsbfs. */
void mmsbfs_diag_core(void *arg, int level, const char *msg);

/* Undo /proc/self/mountinfo's octal escapes (\040 for a space) in place. */
void mmsbfs_unescape(char *s);

/* ---- helpers shared by the modules -------------------------------------- */

/* End txn: commit if rc >= 0, else abort.  Returns rc, or the commit's
 * error. */
static inline int mmsbfs_txn_end(struct mmsb_txn *txn, int rc)
{
	uint64_t epoch;
	int crc;

	if (rc < 0) {
		mmsb_txn_abort(txn);
		return rc;
	}
	crc = mmsb_txn_commit(txn, &epoch);
	return crc < 0 ? crc : rc;
}

/* True for inos in the reserved synthetic range (epochs/ and below). */
static inline bool mmsbfs_ino_is_synth(fuse_ino_t ino)
{
	return ino >= MMSBFS_INO_SYNTH;
}

/* ops.c: the operations table handed to fuse_session_new(). */
extern const struct fuse_lowlevel_ops mmsbfs_ops;

#endif
