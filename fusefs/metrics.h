/* metrics.h - the optional Prometheus endpoint (-o metrics=ADDR:PORT).
 *
 * A small HTTP/1.0 server on one thread: GET /metrics answers the store's
 * statistics in the Prometheus text exposition format (version 0.0.4; the
 * same text as `mmsbctl stats --prometheus`, ctl/ctlcmd.c); any other
 * path is 404, any other method 405.  One connection at a time, each
 * closed after its answer; a client gets CTL_METRICS_IO_MS to send its
 * request.  No authentication: bind it to loopback (127.0.0.1) or a
 * trusted network only (mmsbfs(8)).
 */
#ifndef MMSBFS_METRICS_H
#define MMSBFS_METRICS_H

#include "ctlcmd.h"
#include "mmsb.h"

struct mmsbfs_metrics;

/* Check "HOST:PORT" (IPv4 address or name, "[v6]:PORT"; PORT 1-65535)
 * without binding.  0 or -EINVAL. */
int mmsbfs_metrics_check(const char *addr);

/* Bind addr and start the server thread.  st must stay open until
 * mmsbfs_metrics_stop() returns.  Returns 0, -EINVAL (bad address),
 * -EADDRINUSE, or another socket/bind/thread error. */
int mmsbfs_metrics_start(struct mmsb_store *st, const char *addr, ctl_extra_stats_fn extra, void *arg,
			 struct mmsbfs_metrics **out);

/* Stop the thread (a request being answered finishes first), close the
 * socket and free.  NULL-safe. */
void mmsbfs_metrics_stop(struct mmsbfs_metrics *m);

#endif
