/* inode.h - synthetic inode table for the nodes under epochs/.
 *
 * Live nodes need no table: their ino is the core id.  A snapshot node
 * (epochs/N/...) is keyed by (epoch, core id) and gets a synthetic ino (see
 * mmsbfs.h for the ranges).  Each entry carries the kernel's lookup count
 * (nlookup: +1 per fuse_reply_entry/fuse_reply_create/readdirplus entry,
 * -n per FORGET) and a pin count for requests in flight; it is freed when
 * both are zero.  Every entry holds a reference on its epoch's snapshot
 * (one mmsb_snap_open per epoch, shared by all entries of that epoch); the
 * snapshot is closed with the epoch's last entry.
 *
 * It does not know about the live tree, names or attributes (tree.c).
 * Thread-safe: one mutex, never held across a core call that may block for
 * long (mmsb_snap_open runs outside it).
 */
#ifndef MMSBFS_INODE_H
#define MMSBFS_INODE_H

#include <stdint.h>

#include "mmsbfs.h"

struct mmsbfs_itab;

/* A pinned snapshot node, as handed out by mmsbfs_itab_get(). */
struct mmsbfs_snode {
	uint64_t ino;		/* synthetic ino */
	uint64_t epoch;		/* the snapshot's epoch */
	uint64_t id;		/* core node id inside the snapshot */
	struct mmsb_snap *snap; /* borrowed: valid until mmsbfs_itab_put() */
	void *pin;		/* the entry (private to inode.c) */
};

/* Create an empty table over store st.  -ENOMEM. */
int mmsbfs_itab_new(struct mmsb_store *st, struct mmsbfs_itab **out);

/* Free every entry and close every snapshot, whatever the lookup counts
 * (at unmount they drop to zero without FORGETs).  NULL-safe. */
void mmsbfs_itab_free(struct mmsbfs_itab *t);

/* Find or create the entry for (epoch, id) and add one lookup.  Opens the
 * epoch's snapshot when no entry of that epoch exists.  *ino gets the
 * synthetic ino.  -ENOENT (epoch not retained), -ENOMEM, -EOVERFLOW (epoch
 * too large for a root ino). */
int mmsbfs_itab_lookup(struct mmsbfs_itab *t, uint64_t epoch, uint64_t id, uint64_t *ino);

/* Undo n lookups of ino; frees the entry at zero (when unpinned).  An
 * unknown ino is ignored (debug builds assert); an underflow aborts, as the
 * lookup-count contract of fuse_lowlevel.h has been broken. */
void mmsbfs_itab_forget(struct mmsbfs_itab *t, uint64_t ino, uint64_t n);

/* Pin the entry of ino for the duration of a request.  -ENOENT when the
 * kernel names an ino it has forgotten (should not happen), -ESTALE. */
int mmsbfs_itab_get(struct mmsbfs_itab *t, uint64_t ino, struct mmsbfs_snode *out);
void mmsbfs_itab_put(struct mmsbfs_itab *t, const struct mmsbfs_snode *n);

/* The ino of (epoch, id) if the kernel knows it, else 0.  No count change:
 * for the d_ino of "..". */
uint64_t mmsbfs_itab_peek(struct mmsbfs_itab *t, uint64_t epoch, uint64_t id);

/* The ino (epoch, id) gets unless its hash collides: what readdir gives as
 * d_ino for an entry the kernel has not looked up.  Pure function. */
uint64_t mmsbfs_itab_ino_of(uint64_t epoch, uint64_t id);

/* Number of live entries (tests and diagnostics). */
uint64_t mmsbfs_itab_count(struct mmsbfs_itab *t);

#endif
