/* ctl.h - the daemon's control socket (STORE/ctl.sock), served for mmsbctl.
 *
 * Protocol (one request per connection):
 *   request   one line: VERB TAB ARG TAB ARG ... LF, each field escaped as
 *             in ctl/ctlcmd.h ('\\', TAB, LF, CR as \\ \t \n \r);
 *   response  the result table of ctl/ctlcmd.h (a header line, then
 *             records), then a final line: "OK", or
 *             "ERR" TAB <errno name> TAB <message>.  A record's first field
 *             is never "OK" or "ERR".  Records may precede ERR (verify).
 *   watch     "watch [PATH...]": the header line, then one record per
 *             committed epoch touching PATH (all epochs without PATHs),
 *             until the client closes; "lost" TAB N replaces N records
 *             dropped because the client read too slowly; at daemon stop
 *             "ERR\tESHUTDOWN\t...".
 * Access: the socket file is mode 0600 and each connection's SO_PEERCRED
 * must be root or the daemon's uid, else "ERR\tEACCES\t...".  At most
 * MMSBFS_CTL_CONN_MAX connections are served at once (else ERR EBUSY).
 *
 * The commands themselves are ctl/ctlcmd.c, shared with mmsbctl's
 * offline mode; this module only moves bytes and feeds watchers.
 */
#ifndef MMSBFS_CTL_H
#define MMSBFS_CTL_H

#include "ctlcmd.h"
#include "mmsb.h"

#define MMSBFS_CTL_SOCK_NAME "ctl.sock" /* in the store directory */
#define MMSBFS_CTL_CONN_MAX 16u		/* connections served at once */

struct mmsbfs_ctl;

/* Supplier of the daemon's own counters for `stats` (FUSE op counts):
 * calls emit(ectx, "fuse.lookup", n) once per counter; must not block. */
typedef ctl_extra_stats_fn mmsbfs_ctl_stats_fn;

/* Create the socket (sock_path, or STORE/ctl.sock when NULL; a stale
 * socket file is replaced), and start the accept thread.  st must stay
 * open until mmsbfs_ctl_stop() returns.  extra_stats may be NULL.
 * Returns 0, or -EADDRINUSE (another live server answers on the path),
 * -EEXIST (the path is not a socket), -ENOMEM, or a socket/bind error. */
int mmsbfs_ctl_start(struct mmsb_store *st, const char *sock_path, mmsbfs_ctl_stats_fn extra_stats, void *arg,
		     struct mmsbfs_ctl **out);

/* Feed a committed epoch to the watchers.  Call it from the store's commit
 * hook (outside the store locks).  Never blocks on a client: each watcher
 * has a bounded queue; on overflow the record is dropped and counted.
 * A no-op with no watchers, and after mmsbfs_ctl_stop().  c may be NULL. */
void mmsbfs_ctl_commit(struct mmsbfs_ctl *c, const struct mmsb_commit_info *ci);

/* Stop accepting, end every connection (watchers get ERR ESHUTDOWN;
 * a command in progress finishes first), join the threads, and remove the
 * socket file (if it is still ours).  Call before mmsb_store_close().
 * NULL-safe, idempotent. */
void mmsbfs_ctl_stop(struct mmsbfs_ctl *c);

/* Free it once no commit hook can run any more (after mmsb_store_close()).
 * Stops it first if needed.  NULL-safe. */
void mmsbfs_ctl_free(struct mmsbfs_ctl *c);

#endif
