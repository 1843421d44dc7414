/* feed.h - the change feed: epochs/.changes, one line per committed epoch.
 *
 * A read-only file whose size grows with every commit:
 *   EPOCH TIME SOURCE BYTES PATH[,PATH...]\n
 * (TIME in ISO 8601 UTC with nanoseconds, BYTES the bytes its writes
 * changed, PATH the changed nodes, "#ID" for one gone from the tree).  The
 * daemon keeps the newest MMSBFS_FEED_BYTES of it; a read from before that
 * starts at the oldest line kept.  `tail -f` follows it (its size changes),
 * and poll(2) on an open descriptor reports POLLIN when a line arrived after
 * what it last read.  The daemon sees every commit, including the ones it
 * makes itself (propagation, restore), which inotify cannot report.
 */
#ifndef MMSBFS_FEED_H
#define MMSBFS_FEED_H

#include "mmsbfs.h"

#define MMSBFS_FEED_NAME ".changes"
#define MMSBFS_FEED_BYTES (1u << 20) /* lines kept */

struct mmsbfs_feed;

int mmsbfs_feed_new(struct mmsbfs_feed **out);
void mmsbfs_feed_free(struct mmsbfs_feed *f);
/* The commit hook's part: format and append ci's line (reads paths from st). */
void mmsbfs_feed_commit(struct mmsbfs_feed *f, struct mmsb_store *st, const struct mmsb_commit_info *ci);
/* Bytes ever appended (the file's size). */
uint64_t mmsbfs_feed_size(struct mmsbfs_feed *f);
/* Copy what lies at [off, off + size) (from the oldest kept line when off is
 * older); returns the bytes, 0 at the end. */
ssize_t mmsbfs_feed_read(struct mmsbfs_feed *f, uint64_t off, char *buf, size_t size);
/* One open of the feed by who (copied): read through it with
 * mmsbfs_feed_read_as.  Its first member is the read offset poll uses.
 * 0 or -ENOMEM. */
struct mmsbfs_feed_reader;
int mmsbfs_feed_open(struct mmsbfs_feed *f, struct mmsb_store *st, const struct mmsb_cred *who,
		     struct mmsbfs_feed_reader **out);
void mmsbfs_feed_close(struct mmsbfs_feed_reader *r);
/* mmsbfs_feed_read as r may see it: for a reader other than uid 0, each
 * line lists only the paths r could find by itself (mmsb_path_visible: search
 * on every directory above, read on the one holding the name), judged when
 * the line is read; "#ID" entries (gone from the tree) are dropped; BYTES
 * counts the listed paths' writes; the room left is blanks, so lines keep
 * their length and offsets match the file's size.  -ENOMEM. */
ssize_t mmsbfs_feed_read_as(struct mmsbfs_feed *f, struct mmsbfs_feed_reader *r, uint64_t off, char *buf,
			    size_t size);
/* Poll: POLLIN when data lies past pos; otherwise keeps ph (replacing an
 * earlier one) to be notified at the next line.  Takes ownership of ph. */
unsigned mmsbfs_feed_poll(struct mmsbfs_feed *f, uint64_t pos, struct fuse_pollhandle *ph);

#endif
