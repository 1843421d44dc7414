/* mmsbctl.h - internal header of the mmsbctl client (tools/ only).
 *
 *   mmsbctl.c  options, help, dispatch: daemon (socket) or offline store
 *   client.c   finding the daemon (/proc/self/mountinfo), the socket
 *              protocol (fusefs/ctl.h), the offline store
 *   render.c   result tables (ctlcmd.h) as aligned text or JSON
 *   export.c   export E DIR: from MOUNT/epochs/E or from a snapshot
 *
 * Conventions as everywhere (STYLE.md): -errno returns; messages for the
 * user go into caller buffers and are printed once, by mmsbctl.c.
 */
#ifndef MMSBCTL_H
#define MMSBCTL_H

#include <stdbool.h>
#include <stdio.h>

#include "ctlcmd.h"

#define MCTL_MSG_MAX 1024u /* longest message to the user */

/* Where the daemon (or the store) is. */
struct mctl_target {
	char *mount; /* mount point, absolute (NULL: none found) */
	char *store; /* store directory, absolute */
};

/* Find the target from --mount DIR, --store DIR or neither (the mount that
 * holds the current directory, else the only mmsbfs mount).  -ENOENT,
 * -EINVAL (ambiguous) with msg set. */
int mctl_find_target(const char *mount_opt, const char *store_opt, struct mctl_target *t, char *msg, size_t cap);
void mctl_target_free(struct mctl_target *t);

/* Connect to STORE/ctl.sock.  *fd on success.  -ENOENT / -ECONNREFUSED:
 * no daemon answers; -EACCES (msg names the socket's owner); others. */
int mctl_connect(const char *store, int *fd, char *msg, size_t cap);

/* Send one request line (argv escaped, TAB-separated). */
int mctl_send(int fd, int argc, char *const *argv);

/* Buffered line reader over a socket. */
/* A progress line on stderr (progress.c): shown only on a terminal. */
struct mctl_progress {
	bool on;	 /* draw (stderr is a terminal, or MMSB_PROGRESS=1) */
	bool shown;	 /* a line is on the screen */
	const char *what; /* "export", "verify"... */
	uint64_t items;	 /* files done (0: show the time only) */
	uint64_t bytes;	 /* bytes done */
	int64_t t0_ms;	 /* start (monotonic ms) */
	int64_t last_ms; /* last redraw */
	int64_t delay_ms; /* nothing shown before this much time */
};
void mctl_progress_begin(struct mctl_progress *p, const char *what);
/* Count items and bytes done (both may be 0: a tick) and redraw if due. */
void mctl_progress_add(struct mctl_progress *p, uint64_t items, uint64_t bytes);
/* Erase the line. */
void mctl_progress_end(struct mctl_progress *p);

struct mctl_reader {
	int fd;			    /* the socket */
	struct ctl_buf buf;	    /* bytes read, not yet returned */
	size_t off;		    /* start of the unread part of buf */
	struct mctl_progress *prog; /* ticked while waiting, or NULL */
};
/* Next line (LF stripped) into *line, valid until the next call.
 * 0, -ECONNRESET at EOF, or -errno. */
int mctl_read_line(struct mctl_reader *r, char **line);

/* Read a whole response: result lines into out (LF-terminated) until the
 * final line.  Returns 0 for OK, or -errno of the ERR line with msg set;
 * -EPROTO when the connection ends early. */
int mctl_read_response(struct mctl_reader *r, struct ctl_buf *out, char *msg, size_t cap);

/* Open the store read-only (offline mode).  quiet: drop its diagnostics. */
int mctl_open_offline(const char *store, bool quiet, struct mmsb_store **out, char *msg, size_t cap);

/* Render a result table (ctlcmd.h format).  record: one record as
 * "key: value" lines (JSON: an object); else a table (JSON: an array). */
int mctl_render(FILE *f, const char *text, bool json, bool record);
/* Render one streamed record against header (watch): a fixed-width line,
 * or one JSON object per line.  line == header: the column titles. */
int mctl_render_stream(FILE *f, const char *header, const char *line, bool json);
/* The diff --stat summary line ("3 added, ..."). */
void mctl_render_diffstat(FILE *f, const char *text);
/* v bytes for people: exact below 1024, else "1.50 KiB", "16.0 MiB"... */
void mctl_human_bytes(uint64_t v, char *buf, size_t cap);

/* export: write the tree at epoch into dir (new or empty).  From the mount
 * (mount != NULL: MOUNT/epochs/EPOCH) or from an open store (st). */
int mctl_export_mount(const char *mount, uint64_t epoch, const char *dir, char *msg, size_t cap);
int mctl_export_store(struct mmsb_store *st, uint64_t epoch, const char *dir, char *msg, size_t cap);

#endif
