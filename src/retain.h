/* retain.h - the retention policy (mmsb_store_opts.keep): which checkpoint
 * to compact at after a checkpoint.  The choice is a pure function
 * (retain_select) so its rules can be tested without a store; retain_apply
 * gathers the store's facts and calls mmsb_compact().
 */
#ifndef MMSB_RETAIN_H
#define MMSB_RETAIN_H

#include <stddef.h>
#include <stdint.h>

#include "mmsb.h"

/* A checkpoint the history could be compacted at. */
struct retain_ckpt {
	uint64_t epoch;	     /* its epoch */
	int64_t time_ns;     /* that epoch's commit time (0: unknown, never dropped by age) */
	uint64_t bytes_kept; /* log + checkpoints left on disk after compacting at it */
};

/* The epoch to compact at (one of c[].epoch), or 0 to keep everything.
 * c: the retained checkpoints, oldest first.  head, now_ns: the store's
 * head and the wall clock.  oldest: the current oldest retained epoch
 * (compacting at or before it does nothing).  min_tag: the oldest tagged
 * epoch >= oldest, UINT64_MAX when none (never compacted past).
 * bytes_now: log + checkpoints on disk now.
 * Rules (each a limit; the largest cut wins, made at a checkpoint):
 *   age     the newest checkpoint whose epoch is at least age_ns old
 *   epochs  the newest checkpoint at or before head - epochs
 *   bytes   when bytes_now is over: the oldest checkpoint whose bytes_kept
 *           fits (the newest when none does) */
uint64_t retain_select(const struct mmsb_keep *k, const struct retain_ckpt *c, size_t n, uint64_t head,
		       int64_t now_ns, uint64_t oldest, uint64_t min_tag, uint64_t bytes_now);

/* True when any rule is set. */
static inline int retain_on(const struct mmsb_keep *k)
{
	return k->age_ns > 0 || k->epochs > 0 || k->bytes > 0;
}

struct mmsb_store;
/* Apply st->o.keep: compact at retain_select()'s choice.  Called by the
 * checkpoint thread after each checkpoint, holding no lock.  Returns 0 (or
 * nothing to do), or mmsb_compact()'s error (reported to the diag sink;
 * -EBUSY: a tag was set meanwhile, the next checkpoint tries again). */
int retain_apply(struct mmsb_store *st);

#endif
