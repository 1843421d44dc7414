/* kern_int.h - shared by kern_host.c, kern_cpu.c, kern_cuda.cu and
 * kern_nocuda.c only.  Nothing outside kernels/ includes it.
 *
 * The batch: the folded lanes of every delta added since the last reset, in
 * three parallel arrays (the "compact layout" of kern.h), plus an
 * open-addressing index from lane address to lane number used only while
 * adding (it is never shipped to the GPU).
 */
#ifndef MMSB_KERN_INT_H
#define MMSB_KERN_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kern.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KERN_LANE 16		       /* bytes per lane */
#define KERN_LANE_PARTIAL ((uint64_t)1) /* addr bit 0: write byte by byte */
#define KERN_LANE_INDEXED ((uint64_t)2) /* addr bit 1: in the fold index (host side only) */

struct kern_page_ref {
	void *p;
	uint64_t size;
};

/* A page of a batch (the fold's fast path): its first delta's lanes are
 * appended as they come, [start, end), outside the lane index -- the lanes
 * of one delta are distinct and ascending, so nothing needs folding.  A
 * second delta to the page moves those lanes into the index (hashed), and
 * from then on its lanes are folded through it. */
struct kern_pent {
	uint64_t page;	     /* page address (the key) */
	uint32_t start, end; /* lanes of its first delta */
	uint32_t slot;	     /* its slot in ptab */
	bool hashed;	     /* its lanes are in the lane index */
};

struct mmsb_kern_batch {
	const struct mmsb_kern_ops *ops; /* the table that made it */

	/* lanes, n of cap (host memory from host_alloc) */
	uint8_t *data;	 /* cap * 16 */
	uint64_t *addr;	 /* lane address | KERN_LANE_PARTIAL */
	uint16_t *mask;	 /* bit j <=> byte j of the lane is written */
	size_t n, cap;

	/* fold index: hidx[h] = lane number + 1, 0 = empty; hcap a power of two,
	 * kept at most half full */
	uint32_t *hidx;
	size_t hcap;
	size_t n_indexed; /* lanes in hidx (KERN_LANE_INDEXED set) */
	uint32_t *lslot;  /* cap entries: slot of an indexed lane in hidx (for clearing) */

	/* page index: pents in insertion order, ptab[h] = entry + 1 (open
	 * addressing, ptcap a power of two, at most half full) */
	struct kern_pent *pents;
	size_t n_pents, pents_cap;
	uint32_t *ptab;
	size_t ptcap;
	struct kern_pent *cur; /* the page being added to */

	/* distinct pages added (consecutive repeats dropped): the cuda table
	 * checks each is GPU memory */
	struct kern_page_ref *pages;
	size_t n_pages, pages_cap;

	/* allocator of data/addr/mask (pinned for cuda); NULL -> malloc/free */
	void *(*host_alloc)(size_t n);
	void (*host_free)(void *p);

	/* backend state (cuda): device copies of the arrays and the event of the
	 * last apply; wait() blocks until that apply no longer reads the host
	 * arrays (NULL for cpu) */
	void *dev;
	size_t dev_cap;
	void *ev;
	bool pending;
	bool uploaded; /* dev holds the lanes as they are now (cleared on change) */
	void (*wait)(struct mmsb_kern_batch *b);
};

/* ---- the asynchronous apply queue of a device table ------------------------
 * Deltas to device pages are folded into the OPEN batch (kq_enqueue, which
 * only touches host memory) and applied later: the open batch is SUBMITTED
 * (handed to the backend, which may apply it asynchronously) by the flusher
 * thread (at once when it is awake; a writer wakes it only when it has
 * slept KQ_NAP_NS without work, so a stream of writes costs no wakeups and
 * its deltas go out in batches), once it holds KQ_MAX_LANES lanes, or when
 * an operation needs it (kq_submit, kq_wait_page, kq_drain).  Batches
 * are numbered (seq) in submission order; a backend finishes them in that
 * order, so "seq s finished" means every batch up to s did.
 *
 * What a reader waits for: the last batch that touched its page.  Each page
 * (its start address) hashes to a slot of last[]; the slot keeps the highest
 * seq of any page that hashes there, so a read waits for its own page's last
 * batch, or (on a collision) a later one -- never an earlier one. */
#define KQ_SLOTS 16384		   /* last[] entries (a power of two) */
#define KQ_BATCHES 8		   /* batches in flight or open at most */
#define KQ_MAX_LANES ((size_t)1 << 16) /* submit an open batch this large at once */
#define KQ_NAP_NS 200000L	       /* the flusher's idle nap, before it waits for a signal */

struct kern_queue;

struct kern_queue_backend {
	/* Start applying b (async allowed).  Called without the queue's lock,
	 * by one thread at a time per batch.  0 or -errno (then b counts as
	 * finished, and the error is reported by the next kq_wait/kq_drain). */
	int (*submit)(struct mmsb_kern_batch *b);
	/* Has b's submitted apply finished?  block: wait until it has. */
	bool (*done)(struct mmsb_kern_batch *b, bool block);
	/* A new empty batch of the backend (0 or -errno), and its release. */
	int (*batch_new)(struct mmsb_kern_batch **out);
	int (*batch_free)(struct mmsb_kern_batch *b);
};

struct kq_slot {
	struct mmsb_kern_batch *b; /* NULL: unused */
	uint64_t seq;		   /* its number while submitted or open */
	bool submitting;	   /* handed out for submission, not back yet */
};

struct kern_queue {
	const struct kern_queue_backend *be; /* how batches are made and applied */
	bool threaded;			     /* a flusher thread submits open batches */
	pthread_mutex_t mu;		     /* guards every field below */
	pthread_cond_t cv;		     /* flusher wakeup; submissions done */
	bool started;			     /* flusher thread running */
	bool flusher_idle;		     /* flusher waits on cv for work */
	struct mmsb_kern_batch *open;	     /* batch collecting deltas (seq next_seq), or NULL */
	uint64_t next_seq;		     /* seq the open batch gets; submitted ones are lower */
	uint64_t done_seq;		     /* every batch with seq <= done_seq has finished */
	struct kq_slot fly[KQ_BATCHES];	     /* submitted (or submitting) batches, by seq % KQ_BATCHES */
	struct mmsb_kern_batch *spare[KQ_BATCHES]; /* finished batches for reuse */
	int n_spare;
	int n_alloc;			     /* batches made (at most KQ_BATCHES) */
	bool in_submit;			     /* a submission is under way (they go in seq order) */
	pthread_cond_t wake;		     /* the flusher waits here */
	int err;			     /* first error of a submission not yet reported */
	uint64_t last[KQ_SLOTS];	     /* highest seq that touched a page of this slot */
	uint64_t n_submits, n_enqueued;	     /* counters (tests, bench) */
};

/* Set up q (static storage is fine: call once).  threaded: start a flusher
 * thread at the first enqueue; otherwise open batches wait for a reason to
 * be submitted. */
void kq_init(struct kern_queue *q, const struct kern_queue_backend *be, bool threaded);
/* Fold a delta to page[0..page_size) into the open batch (kern.h enqueue). */
int kq_enqueue(struct kern_queue *q, void *page, uint64_t page_size, uint8_t enc, const uint8_t *body,
	       size_t len);
/* Submit the open batch (not waiting for it).  0 or a pending error. */
int kq_submit(struct kern_queue *q);
/* Wait until every delta queued for page has been applied. */
int kq_wait_page(struct kern_queue *q, const void *page);
/* Submit everything and wait for all of it. */
int kq_drain(struct kern_queue *q);

/* Device memory accounting (-o gpu_mem): page_alloc of a device table takes
 * n bytes with kern_acct_take (-ENOSPC past the cap), page_free gives them
 * back with kern_acct_give (the size is remembered per pointer). */
int kern_acct_take(void *p, size_t n);
void kern_acct_give(void *p);
/* Would n more bytes fit under the cap? */
bool kern_acct_fits(size_t n);

/* Set up / tear down the host side of a batch (kern_host.c).  init zeroes
 * *b first.  Returns 0 or -ENOMEM. */
int kern_batch_init(struct mmsb_kern_batch *b, const struct mmsb_kern_ops *ops, void *(*host_alloc)(size_t),
		    void (*host_free)(void *));
void kern_batch_release(struct mmsb_kern_batch *b);

/* Apply a batch on the CPU (kern_cpu.c); any batch, any host memory. */
void kern_cpu_apply_lanes(const struct mmsb_kern_batch *b);

/* Size checks of recompute, plus the overlap rule (kern_host.c). */
int kern_recompute_check(enum mmsb_kern_op op, enum mmsb_kern_elem elem, const void *out, size_t out_len,
			 const void *const *in, const size_t *in_len, size_t n_in);
bool kern_overlap(const void *a, size_t an, const void *b, size_t bn);

/* The CUDA table after a successful probe, else NULL (kern_cuda.cu, or
 * kern_nocuda.c when CUDA is not built). */
const struct mmsb_kern_ops *kern_cuda_table(void);
/* The queue of the cuda table k, or NULL when k is not it. */
struct kern_queue *kern_cuda_queue(const struct mmsb_kern_ops *k);

#ifdef __cplusplus
}
#endif

#endif
