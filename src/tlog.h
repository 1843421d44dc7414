/* tlog.h - the transaction log: segment files, append, group commit, and
 * the recovery scan.  Algorithms and the validity rule: tlog.c. */
#ifndef MMSB_TLOG_H
#define MMSB_TLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "diag.h"
#include "io.h"
#include "rec.h"

struct mmsb_tlog;

struct tlog_opts {
	const struct mmsb_io_ops *io;
	const struct mmsb_diag *diag;
	uint64_t seed;		/* checksum seed (sb_seed) */
	uint64_t segment_bytes; /* roll past this size */
	bool read_only;
};

/* One committed transaction found by the recovery scan.  Records point into
 * the scan buffer: valid during the callback only. */
struct tlog_txn {
	uint64_t epoch;
	int64_t time;
	uint8_t source;
	uint64_t changed;	    /* from the commit marker */
	uint32_t n;		    /* records before the commit marker */
	const struct mmsb_rec *recs;
	const uint64_t *offs;	    /* file offset of each record's frame */
	const uint32_t *lens;	    /* frame length of each record */
	uint32_t seg;		    /* segment ordinal */
	uint64_t bytes;		    /* frame bytes, commit marker included */
};
typedef int (*tlog_txn_fn)(void *arg, const struct tlog_txn *t);

/* Open the log directory (created if missing and not read-only).
 * -ENOMEM, -EIO, -EUCLEAN (a segment name or header is invalid). */
int mmsb_tlog_open(int store_dirfd, const struct tlog_opts *o, struct mmsb_tlog **out);
void mmsb_tlog_close(struct mmsb_tlog *log);

/* What the recovery scan found. */
struct tlog_recovery {
	uint64_t last;	    /* the epoch after which the sequence ends (0: none) */
	uint32_t n_damage;  /* damaged places skipped (frames, segment tails, missing segments) */
	uint32_t n_header;  /* damaged segment headers (their records were read without them) */
	bool end_damaged;   /* the log ends in damage, not a torn tail: what followed `last` is lost */
};

/* Scan every segment from the one holding epoch `from` (0: all) in order and call fn for each committed transaction,
 * in increasing epoch order.  A torn transaction at the tail is discarded
 * (and cut off the file unless read-only) with a NOTICE.  Damage (see the
 * rule in tlog.c) is reported at ERR and skipped: the scan resumes at the
 * next valid frame or segment, so fn sees an epoch jump over what was lost;
 * the caller decides what the loss means.  Then prepares for appending after
 * the last transaction (a new segment if needed).  -EUCLEAN only for
 * overlapping segment names, -ENOTSUP, -EIO, -ENOMEM, or fn's error. */
int mmsb_tlog_recover(struct mmsb_tlog *log, uint64_t from, tlog_txn_fn fn, void *arg, struct tlog_recovery *res);
/* The first epoch of the segment recovery starts at to reach epoch skip_to:
 * recovery with from = skip_to skips the segments before it (they hold only
 * older epochs), which bounds open time by the log after a checkpoint. */
uint64_t mmsb_tlog_scan_start(struct mmsb_tlog *log, uint64_t skip_to);
/* Scan the segments that start before epoch `before` (those recovery
 * skipped), the same way: damage reported and skipped.  Never truncates. */
int mmsb_tlog_scan_before(struct mmsb_tlog *log, uint64_t before, tlog_txn_fn fn, void *arg, struct tlog_recovery *res);

/* Append the frames of one transaction of epoch `epoch` (buf, len) at the
 * end of the log, rolling to a new segment first if the current one is
 * full.  *seg and *off get where the first frame landed.  On a write error
 * the partial append is cut off again.  -EROFS after an unrecoverable
 * failure, -EIO, -ENOSPC. */
int mmsb_tlog_append(struct mmsb_tlog *log, uint64_t epoch, const void *buf, size_t len, uint32_t *seg,
		     uint64_t *off);

/* Make every appended byte durable; concurrent callers share one fsync.
 * An fsync failure is sticky: this and every later append/sync fail. */
int mmsb_tlog_sync(struct mmsb_tlog *log);

/* Read len bytes of segment seg at off.  -ENOENT for a dropped segment. */
int mmsb_tlog_read(struct mmsb_tlog *log, uint32_t seg, uint64_t off, void *buf, size_t len);

/* Delete the segments that hold only epochs <= epoch (never the current).
 * Returns the number deleted. */
int mmsb_tlog_drop_upto(struct mmsb_tlog *log, uint64_t epoch);

/* Bytes of the segments mmsb_tlog_drop_upto(log, epoch) would keep. */
uint64_t mmsb_tlog_bytes_kept(struct mmsb_tlog *log, uint64_t epoch);

struct tlog_stats {
	uint64_t bytes, n_segments, n_syncs;
	uint64_t first_epoch; /* first epoch of the oldest segment */
};
void mmsb_tlog_stats(struct mmsb_tlog *log, struct tlog_stats *s);
bool mmsb_tlog_failed(struct mmsb_tlog *log);

#endif
