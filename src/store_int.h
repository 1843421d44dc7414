/* store_int.h - the store's internals, shared by store.c (open, recovery,
 * transactions, checkpoints), snap.c (time-travel views) and travel.c
 * (history, diff, restore, compaction).  Nothing outside src/ includes it.
 *
 * NAMES, the rule for every module of src/ and kernels/:
 *   - The public API (mmsb.h, exported by libmmsb.so through libmmsb.map)
 *     and the kernel table (kernels/kern.h): mmsb_<module>_<verb>,
 *     struct mmsb_<x>, MMSB_<X>.
 *   - Modules whose subject is bytes -- the foundation (diag, io, sum, buf,
 *     stats, format.h), the codecs (delta, rec) and the files (tlog, ckpt)
 *     -- name their functions mmsb_<module>_<verb> too (mmsb_tlog_append,
 *     mmsb_ckpt_load, mmsb_rec_decode); their other types take the bare
 *     module name (struct tlog_opts, struct ckpt_ctx).
 *   - Modules whose subject is the store's in-memory state use the bare
 *     module name for functions and types: ns_ (pbuf_ for page buffers),
 *     hist_ (the log index: "hist" means nothing else; latency histograms
 *     are struct mmsb_lat in stats.h), snap_, txn_, store_, tags_, perm_,
 *     prop_, retain_; inside kernels/, kern_ and kq_ (kern_int.h).  Older
 *     exceptions: struct mmsb_hist and struct mmsb_mem.
 *   - Static functions drop mmsb_ and keep their module's name
 *     (tlog_scan, snap_replay_meta).
 * A new module picks by the same test (bytes: mmsb_; in-memory state: bare).
 * Names are not changed only to follow the rule: a module changes with
 * real work on it.  The static library libmmsb.a, which the daemon, mmsbctl
 * and the tests link, exports every non-static name, so none may collide.
 *
 * Locks, in the order they are taken:
 *   st->gate	  rwlock: writers.  A transaction (mmsb_txn_begin) holds it
 *		  for writing from begin to end; a page write (mmsb_page_write)
 *		  holds it for reading, so page writes run together and never
 *		  overlap a transaction.
 *   st->page_mu[] one mutex per stripe of page ids: page writes to one page
 *		  (one stripe) take turns; a page write holds one stripe.
 *   st->commit_mu the commit of a page write: epoch, log append, publish.
 *   snap->mu	  a view's page loading.
 *   st->lock	  rwlock: the head (ns, hist, oldest).  Readers hold it for
 *		  reading, briefly; a transaction for writing from begin to
 *		  end (it applies its records as it goes); a page write only
 *		  while its record is applied (after the log append).
 *   st->ck_mu	  checkpointer state.
 * st->snap_mu, st->tag_mu and st->fast_mu are leaves.  A transaction
 * never takes the mutex of a shared view: restore works on a private one.
 *
 * Readers never wait for a page write's work (diff, LZ4, log append).  A
 * transaction that may run an exec: recompute publishes a clone of the
 * committed head as st->stable before its first record, and releases
 * st->lock while the command runs: readers then read st->stable
 * (store_ns), and never the transaction's uncommitted records.
 */
#ifndef MMSB_STORE_INT_H
#define MMSB_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "ckpt.h"
#include "diag.h"
#include "hist.h"
#include "io.h"
#include "kern.h"
#include "mmsb.h"
#include "ns.h"
#include "rec.h"
#include "stats.h"
#include "tlog.h"

#define SNAP_IDLE_MAX 8 /* closed snapshots kept for reuse */
#define PAGE_STRIPES 64 /* stripes of page-write mutexes (a power of two) */

/* A page as a page write with propagation sees it: the head's bytes with
 * the transaction's deferred records applied (a private copy). */
struct txn_ovl {
	uint64_t id;	 /* the page */
	struct pbuf *pb; /* its bytes (host memory, charged to no budget) */
	uint64_t size;	 /* its size */
};

struct mmsb_txn {
	struct mmsb_store *st;
	enum mmsb_source src;
	uint64_t epoch;		       /* the epoch it will commit as */
	int64_t time;		       /* its time, in every record */
	uint32_t n_recs;	       /* records applied */
	uint64_t changed;	       /* bytes changed by its writes */
	int poisoned;		       /* 0, or the -errno of an apply that stopped half-way:
					* abort must reload, commit refuses */
	struct mmsb_buf frames;	       /* encoded frames */
	struct mmsb_buf diff;	       /* scratch: delta of the write in progress */
	struct mmsb_buf pack;	       /* scratch: LZ4 of it */
	struct mmsb_buf scratch;       /* scratch for ns_apply */
	struct mmsb_change_rec *changes; /* for the commit hook */
	size_t n_changes, cap_changes;
	struct hist_rec *recs;	       /* index entries of its records (off relative to frames) */
	uint32_t cap_recs;
	uint64_t t0;		       /* begin time (monotonic) */
	uint8_t rec_flags;	       /* MMSB_FRF_* for the records being made */
	uint64_t *rewired;	       /* pages whose deps or recompute changed */
	size_t n_rewired, cap_rewired;
	struct mmsb_buf prop_out;      /* scratch: a recompute's result */
	struct mmsb_buf window;	       /* scratch: bytes of a GPU page copied out */
	bool has_cred;		       /* cred applies (mmsb_txn_set_cred) */
	struct mmsb_cred cred;	       /* the caller; groups point at cred_groups */
	uint32_t *cred_groups;	       /* copy of the caller's supplementary groups */
	size_t cap_cred_groups;	       /* entries allocated in cred_groups */
	struct mmsb_cred owner;	       /* cache: the last derived page owner's credentials */
	bool owner_ok;		       /* owner holds a looked-up user */
	uint32_t *owner_groups;	       /* owner's supplementary groups */
	size_t cap_owner_groups;       /* entries allocated in owner_groups */
	char why[400];		       /* why the last dependency operation was refused */
	/* page writes (mmsb_page_write): the record is made without touching
	 * the head, and applied at commit */
	bool stable;		       /* this transaction published st->stable */
	bool deferred;		       /* records are kept for the commit, not applied */
	bool multi;		       /* more than one deferred record (propagation) */
	struct mmsb_rec pend;	       /* the first deferred record (its raw body in hold) */
	struct mmsb_buf hold;	       /* the unpacked body of pend */
	struct txn_ovl *ovl;	       /* pages the deferred records changed, as t reads them */
	size_t n_ovl, cap_ovl;
	struct mmsb_txn *next_free;    /* st->fast_free list */
};

struct mmsb_snap {
	struct mmsb_store *st;
	uint64_t epoch;
	uint32_t refs;	     /* protected by st->snap_mu */
	struct ns *ns;	     /* the tree at epoch; pages may be unloaded */
	uint64_t base;	     /* checkpoint epoch the tree was built from (0: empty) */
	bool from_head;	     /* a clone of the head (pages shared with it) */
	struct ckpt_table *ck_tab; /* that checkpoint's block table and files; NULL if none */
	pthread_mutex_t mu;  /* protects page loading and reads of ns */
	uint64_t loaded_bytes; /* bytes of pages it materialized (protected by mu) */
	struct mmsb_snap *next; /* idle list (protected by st->snap_mu) */
};

struct mmsb_store {
	char *dir;			/* store directory path */
	int dirfd, ckdirfd, lockfd;	/* store dir, ckpt/, LOCK */
	struct mmsb_store_opts o;	/* options as opened */
	struct mmsb_diag diag;		/* sink */
	const struct mmsb_io_ops *io;	/* I/O table */
	const struct mmsb_kern_ops *kern; /* kernel table for CPU pages (the reference) */
	const struct mmsb_kern_ops *gpu;  /* CUDA table where GPU pages live; NULL: none */
	bool gpu_ok;			  /* location gpu accepted (a GPU, or MMSB_GPU_CPU) */
	uint64_t seed;			/* checksum seed */
	int64_t ctime;			/* store creation time */
	uint8_t sb[MMSB_SB_SIZE];	/* the superblock as read or written (protected by lock) */
	uint32_t incompat;		/* its incompat features (protected by lock) */
	_Atomic bool read_only;		/* opened read-only, forced by ro_compat bits, or set when
					 * reloading the head failed; read without a lock */
	bool damaged;			/* read-only open stopped at damage */
	struct mmsb_epoch_range *lost;	/* epochs whose log records are lost, sorted (protected by lock) */
	size_t n_lost;
	unsigned sb_bad;		/* superblock copies found damaged at open (bit k: copy k) */
	uint32_t n_bad_ckpts;		/* checkpoints found damaged (dropped from ckpts) */

	pthread_rwlock_t gate;		/* transactions (write) / page writes (read) */
	pthread_mutex_t page_mu[PAGE_STRIPES]; /* page writes to one stripe of ids */
	pthread_mutex_t commit_mu;	/* a page write's epoch, append and publish */
	pthread_mutex_t fast_mu;	/* protects fast_free */
	struct mmsb_txn *fast_free;	/* idle page-write transactions (their buffers kept) */
	_Atomic bool need_reload;	/* a published page write failed to apply: rebuild the head */
	struct ns *stable;		/* the committed state while a transaction may run an
					 * exec: recompute (set and cleared under st->lock
					 * held for writing); else NULL */
	pthread_rwlock_t lock;		/* readers / the one writer: ns, hist, ckpts */
	struct ns *ns;			/* head state (protected by lock) */
	struct mmsb_hist hist;		/* log index (protected by lock) */
	uint64_t hist_from;		/* epochs in (oldest, hist_from) not indexed yet (lock) */
	struct mmsb_tlog *log;		/* the log (own locking) */
	_Atomic uint64_t head;		/* newest committed epoch */
	uint64_t oldest;		/* oldest retained epoch (protected by lock) */
	struct mmsb_txn txn;		/* the one transaction (owned by the lock holder) */

	pthread_mutex_t ck_mu;		/* checkpointer state below */
	pthread_cond_t ck_cond;		/* work to do / work done */
	struct ckpt_info *ckpts;	/* retained checkpoints, oldest first (ck_mu) */
	struct ckpt_table *ck_tab;	/* the newest checkpoint's block table: the next one refers to it (ck_mu) */
	struct ckpt_info *ck_held;	/* files before the oldest epoch that retained checkpoints still
					 * refer to: on disk, not checkpoints any more (ck_mu) */
	size_t n_ck_held;
	size_t n_ckpts;
	uint64_t ck_want;		/* a checkpoint at >= this epoch is wanted (ck_mu) */
	uint64_t ck_done;		/* newest checkpoint written (ck_mu) */
	int ck_err;			/* last checkpoint error (ck_mu) */
	uint64_t log_since_ckpt;	/* log bytes past the newest checkpoint (ck_mu) */
	bool stop;			/* threads exit (ck_mu) */
	pthread_t ck_thread, sync_thread;
	bool ck_started, sync_started;

	pthread_mutex_t tag_mu;		/* protects tags */
	struct mmsb_tag *tags;		/* sorted by epoch (tag_mu) */
	size_t n_tags;

	pthread_mutex_t snap_mu;	/* snapshot sharing */
	struct mmsb_snap *idle;		/* closed snapshots kept for reuse (snap_mu) */
	unsigned n_idle;
	struct mmsb_snap **open;	/* every live snapshot (snap_mu) */
	size_t n_open, cap_open;
	_Atomic uint64_t cache_bytes;	/* bytes materialized by snapshots */
	struct mmsb_mem mem;		/* budget of the head's page bytes (o.max_memory) */
	_Atomic uint64_t cache_hits, cache_misses;

	/* statistics */
	_Atomic uint64_t n_commits, n_records, n_deltas, delta_bytes, delta_record_bytes;
	uint64_t replay_bytes, replay_ns;
	_Atomic uint64_t ckpt_write_bytes, ckpt_write_ns;
	struct mmsb_lat h_commit, h_sync, h_apply; /* latencies of commit, log sync, record apply */
};

/* Log bytes past the newest checkpoint that call for the next one (ck_mu
 * held): ckpt_log_bytes, or as much as the newest checkpoint file when that
 * is more, so that automatic checkpoints of a large store never write more
 * than the log grew (a fixed trigger rewrites the whole store every
 * ckpt_log_bytes: quadratic in its size); 0: never. */
static inline uint64_t store_ckpt_due(const struct mmsb_store *st)
{
	uint64_t last = st->n_ckpts ? st->ckpts[st->n_ckpts - 1].file_bytes : 0;

	if (!st->o.ckpt_log_bytes)
		return 0;
	return last > st->o.ckpt_log_bytes ? last : st->o.ckpt_log_bytes;
}

/* The index entry of record r, whose frame is at (seg, off, len). */
static inline struct hist_rec store_hist_rec(const struct mmsb_rec *r, uint32_t seg, uint64_t off, uint32_t len)
{
	struct hist_rec hr = {.epoch = r->epoch, .node = r->node, .off = off, .seg = seg, .len = len,
			      .type = r->type, .flags = r->flags};

	if (r->type == MMSB_FR_WRITE) {
		hr.size = r->u.write.size;
		hr.changed = r->u.write.changed > UINT32_MAX ? UINT32_MAX : (uint32_t)r->u.write.changed;
	} else if (r->type == MMSB_FR_TRUNCATE) {
		hr.size = r->u.truncate.size;
	}
	return hr;
}

/* store.c */
int store_reload(struct mmsb_store *st);
/* The committed head, for a reader holding st->lock for reading: st->ns,
 * or st->stable while a transaction runs an exec: recompute with st->lock
 * released (the head then holds its uncommitted records). */
static inline struct ns *store_ns(const struct mmsb_store *st)
{
	return st->stable ? st->stable : st->ns;
}
/* Publish a clone of the head (committed: t has applied no record yet) as
 * st->stable; st->lock held for writing.  -ENOMEM (nothing published). */
int store_stable_publish(struct mmsb_txn *t);
/* Withdraw it (st->lock held for writing), when t ends. */
void store_stable_withdraw(struct mmsb_txn *t);
/* Record incompat feature bits in the superblock (replaced atomically and
 * durably) unless already there; called under st->lock before the first
 * record that needs them.  0, or the I/O error. */
int store_feature_set(struct mmsb_store *st, uint32_t incompat);
/* Set st->oldest from the log's first segment and the checkpoints (what
 * recovery computes).  ck_mu held or no other thread running. */
int store_find_oldest(struct mmsb_store *st);
/* Record a compaction at epoch (STORE/compacted), durably. */
int store_write_compacted(struct mmsb_store *st, uint64_t epoch);
/* The checkpoint to build a view of epoch e from: 0 means the empty store. */
uint64_t store_base_ckpt(struct mmsb_store *st, uint64_t e);
struct ckpt_ctx store_ckpt_ctx(struct mmsb_store *st);
/* 0 if epoch e can be rebuilt exactly from checkpoint base (0: the empty
 * store) and the retained log, else -EUCLEAN: a record in (base, e] is lost
 * or base is not usable.  st->lock held. */
int store_epoch_readable(struct mmsb_store *st, uint64_t base, uint64_t e);
/* Make sure the log index covers epoch e (and history lost before it is
 * known): indexes the segments recovery skipped on first need.  st->lock
 * not held.  -ENOMEM, -EIO. */
int store_hist_need(struct mmsb_store *st, uint64_t e);
/* Forget checkpoint epoch (found damaged after open): views fall back to an
 * older one.  st->ck_mu not held. */
void store_ckpt_drop(struct mmsb_store *st, uint64_t epoch, int why);
/* Checkpoints before `oldest` leave st->ckpts; those whose files stay (a
 * retained checkpoint refers to them) go to st->ck_held.  ck_mu held or no
 * other thread running. */
void store_ckpts_drop_before(struct mmsb_store *st, uint64_t oldest);

/* tags.c */
int tags_load(struct mmsb_store *st);
/* Tags naming epochs < keep: -EBUSY, or with force remove them. */
int tags_before(struct mmsb_store *st, uint64_t keep, bool force);

/* txn.c: the bytes and size of page n as transaction t reads them (its
 * deferred records included). */
void txn_page_view(const struct mmsb_txn *t, const struct ns_node *n, const struct pbuf **pb, uint64_t *size);
uint64_t txn_page_size(const struct mmsb_txn *t, const struct ns_node *n);
/* txn.c: free the buffers of a transaction (not t itself). */
void txn_free(struct mmsb_txn *t);
/* txn.c: setxattr without the dependency checks (recomputes use it). */
int txn_setxattr_raw(struct mmsb_txn *t, uint64_t id, const char *name, const void *value, size_t len,
		     unsigned flags);

/* snap.c */
void snap_free(struct mmsb_snap *s);
/* Read the frame of index record hr from the log and decode it into r (its
 * bytes in buf): views, and the checkpointer finding what changed.  No lock
 * needed (the log has its own).  -ENOENT (its segment was dropped), -EIO,
 * -EBADMSG, -EUCLEAN (a short segment, or not the frame the index names),
 * -ENOMEM. */
int snap_read_rec(struct mmsb_store *st, const struct hist_rec *hr, struct mmsb_buf *buf, struct mmsb_rec *r);
void snap_drop_all(struct mmsb_store *st);
/* Materialize page n of s if needed; s->mu held (or s private).  locked:
 * the caller holds st->lock already (a transaction). */
int snap_load_page(struct mmsb_snap *s, struct ns_node *n, bool locked);
/* Build a private, unshared view of epoch e (st->lock not held). */
int snap_build(struct mmsb_store *st, uint64_t e, struct mmsb_snap **out);

#endif
