/* notify.h - keeps the kernel's caches coherent with daemon-side changes.
 *
 * The kernel sees every change a user makes through the mount and updates
 * its own caches.  It does not see what the daemon changes by itself:
 * restores, propagation (recomputed pages, also when they commit in the
 * user's own epoch), system transactions.  The core reports every commit
 * to the daemon's commit hook (main.c), which hands it to
 * mmsbfs_notify_queue(); the changes the kernel cannot know about are
 * queued for a dedicated notifier thread that sends FUSE_NOTIFY_INVAL_INODE /
 * INVAL_ENTRY / DELETE.  It must be a
 * thread that serves no request: a notification sent from a request
 * thread can deadlock against the kernel locks held for that request
 * (libfuse doc/README.notifications, FUSE-NOTES finding 5).
 *
 * The committing thread waits (bounded) until its commit's notifications
 * are sent, so that a reader who runs after the write, restore or
 * recompute returns does not hit stale cached pages.
 *
 * inotify still never fires for these changes (no fsnotify over FUSE).
 */
#ifndef MMSBFS_NOTIFY_H
#define MMSBFS_NOTIFY_H

#include "mmsbfs.h"

struct mmsbfs_notify;

/* Start the notifier thread for fs (fs->se and fs->st must be set).
 * -ENOMEM, or the error of pthread_create. */
int mmsbfs_notify_start(struct mmsbfs *fs, struct mmsbfs_notify **out);

/* Stop the thread (before the session is destroyed); pending and later
 * notifications are dropped: the connection is going away.  The hook stays
 * safe to call until mmsbfs_notify_free().  NULL-safe, idempotent. */
void mmsbfs_notify_stop(struct mmsbfs_notify *nt);

/* Free it, once no commit can run any more (after mmsb_store_close() and
 * with fs->notify already NULL).  Stops the thread if needed.  NULL-safe. */
void mmsbfs_notify_free(struct mmsbfs_notify *nt);

/* From the core's commit hook: queue what the kernel must be told of this
 * commit.  Returns a ticket for mmsbfs_notify_wait(), 0 when nothing was
 * queued.  Cheap for the common case (a user commit that changed only what
 * the request named); never blocks on the kernel. */
uint64_t mmsbfs_notify_queue(struct mmsbfs *fs, const struct mmsb_commit_info *ci);

/* Wait (bounded) until the notifications of ticket are sent.  Called by the
 * committer after its place in the hooks' epoch order is given up, so that
 * a notification stuck behind a later request cannot hold up other hooks. */
void mmsbfs_notify_wait(struct mmsbfs *fs, uint64_t ticket);

#endif
