/* ctlcmd.h - the mmsbctl commands, executed against an open store.
 *
 * One implementation of every command, shared by the daemon's control
 * server (fusefs/ctl.c, over STORE/ctl.sock) and by mmsbctl's offline mode
 * (mmsbctl --store DIR, store opened read-only).  A command produces a
 * result table as text lines:
 *
 *   line 1    the header: field names separated by TAB.  A name may carry
 *             a type suffix ":u" (unsigned decimal), ":b" (a byte count,
 *             unsigned decimal), ":d" (a duration, decimal nanoseconds),
 *             ":t" (time, decimal
 *             nanoseconds since 1970, 0 = none), ":l" (a list: items
 *             separated by '\n' inside the field); no suffix: a string.
 *   line 2..  one record per line, the same number of fields.
 *
 * Fields are escaped (ctl_escape): '\\' -> "\\\\", TAB -> "\\t",
 * LF -> "\\n", CR -> "\\r"; a field never contains a raw TAB or LF.  The
 * first field of a record is never "OK" nor "ERR" (every table begins with
 * a number, a fixed word or an absolute path), so the wire protocol can end
 * a response with those words (see fusefs/ctl.h).
 *
 * Epochs are taken everywhere as a decimal number, a tag name or "head"
 * (ctl_resolve_epoch).
 *
 * This module does no socket I/O and keeps no state between calls; it
 * writes to stdout/stderr never.  It uses nothing from libmmsb but mmsb.h.
 */
#ifndef MMSB_CTLCMD_H
#define MMSB_CTLCMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mmsb.h"

#if defined(__GNUC__)
#define CTL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CTL_PRINTF(f, a)
#endif

#define CTL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define CTL_MSG_MAX 512u	 /* longest error message, NUL included */
#define CTL_ARGS_MAX 256u	 /* most fields in one request line */
#define CTL_REQUEST_MAX 65536u	 /* longest request line, LF included */

/* A growable text buffer (grown in place; p stays NUL-terminated). */
struct ctl_buf {
	char *p;    /* bytes, NUL-terminated; NULL while empty */
	size_t len; /* bytes in use, NUL excluded */
	size_t cap; /* bytes allocated */
};

int ctl_buf_put(struct ctl_buf *b, const void *s, size_t n); /* 0 or -ENOMEM */
int ctl_buf_puts(struct ctl_buf *b, const char *s);
int ctl_buf_printf(struct ctl_buf *b, const char *fmt, ...) CTL_PRINTF(2, 3);
void ctl_buf_free(struct ctl_buf *b); /* NULL-safe, leaves b empty */

/* Append s escaped as one field (see the header comment). */
int ctl_escape(struct ctl_buf *b, const char *s);
/* Split a line (no LF) in place into at most cap fields, unescaping each.
 * Returns the number of fields, or -EINVAL (bad escape, too many fields). */
int ctl_split(char *line, char **fields, size_t cap);

/* errno <-> its symbolic name ("ENOENT"); unknown: "EIO" / EIO. */
const char *ctl_errno_name(int e);
int ctl_errno_value(const char *name);

/* Emit one extra statistic (name and value) into a stats result. */
typedef void (*ctl_emit_fn)(void *ectx, const char *name, uint64_t value);
/* Supplier of extra statistics (the daemon's FUSE op counts): calls emit
 * once per counter.  Must not block. */
typedef void (*ctl_extra_stats_fn)(void *arg, ctl_emit_fn emit, void *ectx);

/* What a command runs against. */
struct ctl_env {
	struct mmsb_store *st;		 /* the open store (borrowed) */
	pid_t daemon_pid;		 /* serving daemon, 0 in offline mode */
	ctl_extra_stats_fn extra_stats;	 /* NULL: none */
	void *extra_arg;		 /* for extra_stats */
};

/* A command's output. */
struct ctl_result {
	struct ctl_buf out;	  /* header + records, each line LF-terminated */
	char msg[CTL_MSG_MAX];	  /* on failure: what went wrong (and what to do) */
	bool usage;		  /* on failure: the arguments were malformed */
};

/* Command flags (struct ctl_cmd.flags). */
enum {
	CTL_F_WRITE = 1 << 0,	/* changes the store: needs a daemon */
	CTL_F_RECORD = 1 << 1,	/* result is one record (shown as key: value) */
	CTL_F_CLIENT = 1 << 2,	/* implemented by mmsbctl itself (export) */
	CTL_F_STREAM = 1 << 3,	/* streams until interrupted: daemon only (watch) */
	CTL_F_HIDDEN = 1 << 4,	/* internal, left out of help (resolve) */
};

/* The command table (help text lives here, once). */
struct ctl_cmd {
	const char *name;  /* verb */
	unsigned flags;	   /* CTL_F_* */
	const char *args;  /* synopsis of the arguments */
	const char *help;  /* one-paragraph description */
};

const struct ctl_cmd *ctl_cmd_find(const char *name); /* NULL: unknown */
const struct ctl_cmd *ctl_cmd_at(size_t i);	      /* i-th entry, NULL past the end */

/* Run argv[0] with arguments argv[1..argc-1] (as the user typed them).
 * res must be zeroed by the caller; res->out is filled even on failure
 * (verify reports problems and then fails).  Returns 0 or -errno with
 * res->msg set.  Thread-safe: any number of commands may run at once on
 * one store.  Commands flagged CTL_F_CLIENT or CTL_F_STREAM give -ENOTSUP. */
int ctl_exec(const struct ctl_env *env, int argc, char *const *argv, struct ctl_result *res);
void ctl_result_free(struct ctl_result *res); /* frees res->out */

/* Resolve a decimal number, a tag name or "head" to a retained epoch.
 * -ENOENT (msg says why: unknown tag, beyond head, compacted away),
 * -EINVAL (empty). */
int ctl_resolve_epoch(struct mmsb_store *st, const char *s, uint64_t *out, char *msg, size_t cap);

/* ---- watch lines (shared with fusefs/ctl.c) ---------------------------- */

/* The header of a watch stream, LF included. */
extern const char ctl_watch_header[];

/* Paths of a commit's changes, NUL-separated into paths, each node once
 * (mmsb_path at head; a node gone from head is "#ID").  *n gets the count.
 * Call only where the store may be read (the commit hook qualifies). */
int ctl_commit_paths(struct mmsb_store *st, const struct mmsb_commit_info *ci, struct ctl_buf *paths, size_t *n);

/* One watch record for ci, LF-terminated, appended to out; paths/n from
 * ctl_commit_paths.  With filters (root-relative paths, nf > 0) only the
 * paths at or under one of them are listed, and when none is, nothing is
 * appended and 0 is returned; otherwise returns 1. */
int ctl_watch_line(const struct mmsb_commit_info *ci, const struct ctl_buf *paths, size_t n,
		   const char *const *filters, size_t nf, struct ctl_buf *out);

/* True when path is filter or lies under it ("" and "/" match all). */
bool ctl_path_under(const char *path, const char *filter);

/* Append the result of "stats" (its header and one record) to out in the
 * Prometheus text exposition format (version 0.0.4): every field becomes a
 * metric "mmsb_<name>" with HELP and TYPE lines; counters end in _total,
 * durations are in seconds.  0, -EINVAL (not a stats result), -ENOMEM. */
int ctl_prometheus(const char *stats, struct ctl_buf *out);

#endif
