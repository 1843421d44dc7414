/* ctlcmd.c - the mmsbctl commands over an open store (ctlcmd.h).
 *
 * Layout of this file:
 *   buffers, escaping, errno names      (the text format of ctlcmd.h)
 *   argument parsing                    (one parser, per-command option masks)
 *   epoch resolution                    (number | tag | head)
 *   the commands                        (one cmd_* function each)
 *   the command table and ctl_exec
 *   watch lines                         (formatting shared with fusefs/ctl.c)
 *
 * What it does not do: sockets, output rendering (tables, JSON), export
 * (the client writes files, see tools/export.c), streaming (watch is served
 * by fusefs/ctl.c, which uses ctl_watch_line).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlcmd.h"

#define CTL_PATH_CAP 4096u	  /* longest path shown (longer: "#ID") */
#define CTL_RANGES_SHOWN 16u	  /* diff: byte ranges listed per path */
#define CTL_WATCH_PATHS 1024u	  /* watch: paths collected per commit */

/* ---- buffers, escaping, errno names ---------------------------------------- */

int ctl_buf_put(struct ctl_buf *b, const void *s, size_t n)
{
	size_t need = b->len + n + 1, cap;
	char *p;

	if (need > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < need)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int ctl_buf_puts(struct ctl_buf *b, const char *s)
{
	return ctl_buf_put(b, s, strlen(s));
}

int ctl_buf_printf(struct ctl_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n, rc;
	char *big;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return ctl_buf_put(b, small, (size_t)n);
	big = malloc((size_t)n + 1);
	if (big == NULL)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	rc = ctl_buf_put(b, big, (size_t)n);
	free(big);
	return rc;
}

void ctl_buf_free(struct ctl_buf *b)
{
	if (b == NULL)
		return;
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

int ctl_escape(struct ctl_buf *b, const char *s)
{
	const char *run = s;
	int rc = 0;

	for (; rc == 0 && *s; s++) {
		const char *rep = *s == '\\' ? "\\\\" : *s == '\t' ? "\\t" : *s == '\n' ? "\\n" : *s == '\r' ? "\\r" : NULL;

		if (rep == NULL)
			continue;
		rc = ctl_buf_put(b, run, (size_t)(s - run));
		if (rc == 0)
			rc = ctl_buf_put(b, rep, 2);
		run = s + 1;
	}
	return rc ? rc : ctl_buf_put(b, run, (size_t)(s - run));
}

/* Unescape one field in place; returns 0 or -EINVAL. */
static int ctl_unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (*s != '\\') {
			*w++ = *s;
			continue;
		}
		s++;
		switch (*s) {
		case '\\': *w++ = '\\'; break;
		case 't': *w++ = '\t'; break;
		case 'n': *w++ = '\n'; break;
		case 'r': *w++ = '\r'; break;
		default: return -EINVAL;
		}
	}
	*w = '\0';
	return 0;
}

int ctl_split(char *line, char **fields, size_t cap)
{
	size_t n = 0;
	char *p = line, *tab;

	for (;;) {
		if (n == cap)
			return -EINVAL;
		fields[n++] = p;
		tab = strchr(p, '\t');
		if (tab != NULL)
			*tab = '\0';
		if (ctl_unescape(p) < 0)
			return -EINVAL;
		if (tab == NULL)
			return (int)n;
		p = tab + 1;
	}
}

/* errno names that commands and the server can produce. */
static const struct {
	int e;		  /* errno value */
	const char *name; /* its symbolic name */
} ctl_errnos[] = {
	{EPERM, "EPERM"},	{ENOENT, "ENOENT"},	{EIO, "EIO"},	      {E2BIG, "E2BIG"},
	{ENOMEM, "ENOMEM"},	{EACCES, "EACCES"},	{EBUSY, "EBUSY"},     {EEXIST, "EEXIST"},
	{ENOTDIR, "ENOTDIR"},	{EISDIR, "EISDIR"},	{EINVAL, "EINVAL"},   {EFBIG, "EFBIG"},
	{ENOSPC, "ENOSPC"},	{EROFS, "EROFS"},	{ERANGE, "ERANGE"},   {ENAMETOOLONG, "ENAMETOOLONG"},
	{ENOTEMPTY, "ENOTEMPTY"}, {ELOOP, "ELOOP"},	{ENODATA, "ENODATA"}, {EBADMSG, "EBADMSG"},
	{ENOTSUP, "ENOTSUP"},	{EUCLEAN, "EUCLEAN"},	{ESHUTDOWN, "ESHUTDOWN"}, {EPROTO, "EPROTO"},
	{ETIMEDOUT, "ETIMEDOUT"}, {ECONNREFUSED, "ECONNREFUSED"}, {EAGAIN, "EAGAIN"},
};

const char *ctl_errno_name(int e)
{
	size_t i;

	for (i = 0; i < CTL_ARRAY_SIZE(ctl_errnos); i++)
		if (ctl_errnos[i].e == e)
			return ctl_errnos[i].name;
	return "EIO";
}

int ctl_errno_value(const char *name)
{
	size_t i;

	for (i = 0; i < CTL_ARRAY_SIZE(ctl_errnos); i++)
		if (strcmp(ctl_errnos[i].name, name) == 0)
			return ctl_errnos[i].e;
	return EIO;
}

/* Set res->msg; returns rc (negative errno) for `return fail(...)`. */
static int fail(struct ctl_result *res, int rc, const char *fmt, ...) CTL_PRINTF(3, 4);
static int fail(struct ctl_result *res, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
	va_end(ap);
	return rc;
}

static int usage(struct ctl_result *res, const char *verb, const char *fmt, ...) CTL_PRINTF(3, 4);
static int usage(struct ctl_result *res, const char *verb, const char *fmt, ...)
{
	const struct ctl_cmd *c = ctl_cmd_find(verb);
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	res->usage = true;
	return fail(res, -EINVAL, "%s: usage: mmsbctl %s%s%s", what, verb, c && *c->args ? " " : "",
		    c ? c->args : "");
}

/* ---- argument parsing ------------------------------------------------------ */

/* Options a command may take (bits of ctl_spec.opts). */
enum {
	O_TAG = 1 << 0,	   /* --tag NAME */
	O_SINCE = 1 << 1,  /* --since E */
	O_UNTIL = 1 << 2,  /* --until E */
	O_N = 1 << 3,	   /* -n N */
	O_BEFORE = 1 << 4, /* --before E */
	O_STAT = 1 << 5,   /* --stat */
	O_FORCE = 1 << 6,  /* --force */
	O_PROM = 1 << 7,   /* --prometheus (rendering: the table is the same) */
};

/* Parsed arguments of one command. */
struct ctl_args {
	const char *pos[CTL_ARGS_MAX]; /* positional arguments */
	size_t npos;		       /* entries in pos */
	const char *tag;	       /* --tag */
	const char *since, *until;     /* --since, --until */
	const char *n;		       /* -n */
	const char *before;	       /* --before */
	bool stat, force;	       /* --stat, --force */
	bool prometheus;	       /* --prometheus (stats: mmsbctl renders) */
};

/* Option spelling -> bit, and where its value goes. */
static const struct {
	const char *name; /* as typed */
	unsigned bit;	  /* O_* */
	size_t off;	  /* offsetof the const char * (valued) or bool (flag) */
	bool valued;	  /* takes a value */
} ctl_opts[] = {
	{"--tag", O_TAG, offsetof(struct ctl_args, tag), true},
	{"--since", O_SINCE, offsetof(struct ctl_args, since), true},
	{"--until", O_UNTIL, offsetof(struct ctl_args, until), true},
	{"-n", O_N, offsetof(struct ctl_args, n), true},
	{"--limit", O_N, offsetof(struct ctl_args, n), true},
	{"--before", O_BEFORE, offsetof(struct ctl_args, before), true},
	{"--stat", O_STAT, offsetof(struct ctl_args, stat), false},
	{"--force", O_FORCE, offsetof(struct ctl_args, force), false},
	{"--prometheus", O_PROM, offsetof(struct ctl_args, prometheus), false},
};

/* Match argument s against option i ("--x" or "--x=v"); *val gets v. */
static bool ctl_opt_match(size_t i, const char *s, const char **val)
{
	size_t len = strlen(ctl_opts[i].name);

	*val = NULL;
	if (strncmp(s, ctl_opts[i].name, len) != 0)
		return false;
	if (s[len] == '\0')
		return true;
	if (s[len] == '=' && ctl_opts[i].valued) {
		*val = s + len + 1;
		return true;
	}
	return false;
}

/* Parse argv[1..] with the options allowed by mask.  -EINVAL (usage). */
static int ctl_parse(int argc, char *const *argv, unsigned mask, struct ctl_args *a, struct ctl_result *res)
{
	bool opts_done = false;
	const char *val;
	size_t i;
	int k;

	memset(a, 0, sizeof(*a));
	for (k = 1; k < argc; k++) {
		const char *s = argv[k];

		if (!opts_done && strcmp(s, "--") == 0) {
			opts_done = true;
			continue;
		}
		if (opts_done || s[0] != '-' || s[1] == '\0') {
			if (a->npos == CTL_ARGS_MAX)
				return usage(res, argv[0], "too many arguments");
			a->pos[a->npos++] = s;
			continue;
		}
		for (i = 0; i < CTL_ARRAY_SIZE(ctl_opts); i++)
			if ((ctl_opts[i].bit & mask) && ctl_opt_match(i, s, &val))
				break;
		if (i == CTL_ARRAY_SIZE(ctl_opts))
			return usage(res, argv[0], "unknown option '%s'", s);
		if (!ctl_opts[i].valued) {
			*(bool *)((char *)a + ctl_opts[i].off) = true;
			continue;
		}
		if (val == NULL && k + 1 == argc)
			return usage(res, argv[0], "option %s needs a value", ctl_opts[i].name);
		*(const char **)((char *)a + ctl_opts[i].off) = val != NULL ? val : argv[++k];
	}
	return 0;
}

/* Parse a decimal count; -EINVAL (usage) if it is not one. */
static int ctl_parse_count(const char *verb, const char *opt, const char *s, uint64_t *out, struct ctl_result *res)
{
	char *end;

	errno = 0;
	if (!isdigit((unsigned char)s[0]))
		return usage(res, verb, "%s wants a number, not '%s'", opt, s);
	*out = strtoull(s, &end, 10);
	if (*end != '\0' || errno != 0)
		return usage(res, verb, "%s wants a number, not '%s'", opt, s);
	return 0;
}

/* ---- epoch resolution -------------------------------------------------------- */

static bool ctl_all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

int ctl_resolve_epoch(struct mmsb_store *st, const char *s, uint64_t *out, char *msg, size_t cap)
{
	uint64_t e, head = mmsb_store_head(st), oldest = mmsb_store_oldest(st);
	int rc;

	if (*s == '\0')
		return snprintf(msg, cap, "empty epoch: give a number, a tag name or 'head'"), -EINVAL;
	if (strcmp(s, "head") == 0) {
		*out = head;
		return 0;
	}
	if (ctl_all_digits(s)) {
		errno = 0;
		e = strtoull(s, NULL, 10);
		if (errno != 0 || e > head)
			return snprintf(msg, cap, "epoch %s is beyond head (%" PRIu64 "): see 'mmsbctl status'", s, head),
			       -ENOENT;
	} else {
		rc = mmsb_tag_get(st, s, &e);
		if (rc < 0)
			return snprintf(msg, cap, "unknown epoch or tag '%s': see 'mmsbctl tags' and 'mmsbctl checkpoints'", s),
			       rc;
	}
	if (e < oldest)
		return snprintf(msg, cap,
				"epoch %" PRIu64 " is no longer retained (history before %" PRIu64 " was compacted)", e,
				oldest),
		       -ENOENT;
	*out = e;
	return 0;
}

static int ctl_epoch_arg(const struct ctl_env *env, const char *s, uint64_t *out, struct ctl_result *res)
{
	return ctl_resolve_epoch(env->st, s, out, res->msg, sizeof(res->msg));
}

/* Strip leading '/' and a trailing '/' (not the root) for the core's paths. */
static const char *ctl_relpath(const char *p)
{
	while (*p == '/')
		p++;
	return p;
}

/* Path of id at head into buf, or "#ID" when it is gone. */
static const char *ctl_id_path(struct mmsb_store *st, uint64_t id, char *buf, size_t cap)
{
	ssize_t n = mmsb_path(st, id, buf, cap);

	if (n < 0)
		snprintf(buf, cap, "#%" PRIu64, id);
	else if (n == 0)
		snprintf(buf, cap, "/");
	return buf;
}

/* ---- the commands ------------------------------------------------------------- */

static int ctl_out(struct ctl_result *res, const char *line)
{
	return ctl_buf_puts(&res->out, line);
}

static int cmd_checkpoint(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res)
{
	uint64_t e = 0;
	int rc;

	if (a->tag != NULL && !mmsb_tag_name_ok(a->tag))
		return fail(res, -EINVAL,
			    "bad tag name '%s': use 1-64 of [A-Za-z0-9._-], not all digits, not 'head', not starting with '.'",
			    a->tag);
	rc = mmsb_checkpoint(env->st, &e);
	if (rc < 0)
		return fail(res, rc, "checkpoint failed: %s", strerror(-rc));
	if (a->tag != NULL && (rc = mmsb_tag_set(env->st, a->tag, e)) < 0)
		return fail(res, rc, "checkpoint %" PRIu64 " taken, but tagging it '%s' failed: %s", e, a->tag,
			    strerror(-rc));
	rc = ctl_out(res, "epoch:u\ttag\n");
	if (rc == 0)
		rc = ctl_buf_printf(&res->out, "%" PRIu64 "\t", e);
	if (rc == 0)
		rc = ctl_escape(&res->out, a->tag ? a->tag : "");
	return rc ? rc : ctl_out(res, "\n");
}

/* Tags, sorted by epoch, into *out (caller frees).  Returns the count. */
static ssize_t ctl_load_tags(struct mmsb_store *st, struct mmsb_tag **out)
{
	ssize_t n = mmsb_tags(st, NULL, 0), m;
	struct mmsb_tag *t;

	*out = NULL;
	if (n <= 0)
		return n;
	t = calloc((size_t)n + 8, sizeof(*t)); /* + slack: tags set meanwhile */
	if (t == NULL)
		return -ENOMEM;
	m = mmsb_tags(st, t, (size_t)n + 8);
	if (m < 0) {
		free(t);
		return m;
	}
	*out = t;
	return m < n + 8 ? m : n + 8;
}

static ssize_t ctl_load_ckpts(struct mmsb_store *st, struct mmsb_ckpt_info **out)
{
	ssize_t n = mmsb_checkpoints(st, NULL, 0), m;
	struct mmsb_ckpt_info *c;

	*out = NULL;
	if (n <= 0)
		return n;
	c = calloc((size_t)n + 8, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	m = mmsb_checkpoints(st, c, (size_t)n + 8);
	if (m < 0) {
		free(c);
		return m;
	}
	*out = c;
	return m < n + 8 ? m : n + 8;
}

/* The tags naming epoch e, '\n'-separated, escaped as one field. */
static int ctl_tags_of(struct ctl_buf *b, const struct mmsb_tag *t, size_t nt, uint64_t e)
{
	struct ctl_buf list = {0};
	size_t i;
	int rc = 0;

	for (i = 0; rc == 0 && i < nt; i++)
		if (t[i].epoch == e)
			rc = ctl_buf_printf(&list, "%s%s", list.len ? "\n" : "", t[i].name);
	if (rc == 0)
		rc = ctl_escape(b, list.p ? list.p : "");
	ctl_buf_free(&list);
	return rc;
}

static int cmd_checkpoints(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res)
{
	struct mmsb_ckpt_info *c = NULL;
	struct mmsb_tag *t = NULL;
	ssize_t nc, nt, i;
	int rc;

	nc = ctl_load_ckpts(env->st, &c);
	nt = nc < 0 ? 0 : ctl_load_tags(env->st, &t);
	rc = nc < 0 ? (int)nc : nt < 0 ? (int)nt : 0;
	if (rc < 0)
		rc = fail(res, rc, "cannot list checkpoints: %s", strerror(-rc));
	if (rc == 0)
		rc = ctl_out(res, "epoch:u\ttime:t\tbytes:b\ttags:l\n");
	for (i = 0; rc == 0 && i < nc; i++) {
		rc = ctl_buf_printf(&res->out, "%" PRIu64 "\t%" PRId64 "\t%" PRIu64 "\t", c[i].epoch, c[i].time_ns,
				    c[i].file_bytes);
		if (rc == 0)
			rc = ctl_tags_of(&res->out, t, (size_t)nt, c[i].epoch);
		if (rc == 0)
			rc = ctl_out(res, "\n");
	}
	free(c);
	free(t);
	return rc;
}

static int cmd_tags(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res)
{
	struct mmsb_ckpt_info *c = NULL;
	struct mmsb_epoch_info ei;
	struct mmsb_tag *t = NULL;
	ssize_t nc, nt, i, j;
	uint64_t cbytes;
	int rc;

	nt = ctl_load_tags(env->st, &t);
	nc = nt < 0 ? 0 : ctl_load_ckpts(env->st, &c);
	rc = nt < 0 ? (int)nt : nc < 0 ? (int)nc : 0;
	if (rc < 0)
		rc = fail(res, rc, "cannot list tags: %s", strerror(-rc));
	if (rc == 0)
		rc = ctl_out(res, "epoch:u\tname\ttime:t\tepoch_time:t\tckpt_bytes:b\n");
	for (i = 0; rc == 0 && i < nt; i++) {
		if (mmsb_epoch_info(env->st, t[i].epoch, &ei) < 0)
			ei.time_ns = 0;
		for (cbytes = 0, j = 0; j < nc; j++)
			if (c[j].epoch == t[i].epoch)
				cbytes = c[j].file_bytes;
		rc = ctl_buf_printf(&res->out, "%" PRIu64 "\t", t[i].epoch);
		if (rc == 0)
			rc = ctl_escape(&res->out, t[i].name);
		if (rc == 0)
			rc = ctl_buf_printf(&res->out, "\t%" PRId64 "\t%" PRId64 "\t%" PRIu64 "\n", t[i].time_ns,
					    ei.time_ns, cbytes);
	}
	free(c);
	free(t);
	return rc;
}

static int cmd_tag(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res)
{
	uint64_t e;
	int rc;

	if (!mmsb_tag_name_ok(a->pos[0]))
		return fail(res, -EINVAL,
			    "bad tag name '%s': use 1-64 of [A-Za-z0-9._-], not all digits, not 'head', not starting with '.'",
			    a->pos[0]);
	rc = ctl_epoch_arg(env, a->pos[1], &e, res);
	if (rc < 0)
		return rc;
	rc = mmsb_tag_set(env->st, a->pos[0], e);
	if (rc < 0)
		return fail(res, rc, "cannot tag epoch %" PRIu64 " as '%s': %s", e, a->pos[0], strerror(-rc));
	rc = ctl_buf_printf(&res->out, "epoch:u\tname\n%" PRIu64 "\t", e);
	if (rc == 0)
		rc = ctl_escape(&res->out, a->pos[0]);
	return rc ? rc : ctl_out(res, "\n");
}

static int cmd_untag(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res)
{
	uint64_t e = 0;
	int rc = mmsb_tag_get(env->st, a->pos[0], &e);

	if (rc == 0)
		rc = mmsb_tag_remove(env->st, a->pos[0]);
	if (rc == -ENOENT)
		return fail(res, rc, "no tag named '%s': see 'mmsbctl tags'", a->pos[0]);
	if (rc < 0)
		return fail(res, rc, "cannot remove tag '%s': %s", a->pos[0], strerror(-rc));
	rc = ctl_buf_printf(&res->out, "epoch:u\tname\n%" PRIu64 "\t", e);
	if (rc == 0)
		rc = ctl_escape(&res->out, a->pos[0]);
	return rc ? rc : ctl_out(res, "\n");
}

static const char *ctl_sync_name(enum mmsb_sync s)
{
	return s == MMSB_SYNC_COMMIT ? "commit" : s == MMSB_SYNC_INTERVAL ? "interval" : "none";
}

/* status: one record.  last_ckpt is empty when there is no checkpoint. */
static int cmd_status(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res)
{
	struct mmsb_epoch_info hi = {0}, ci = {0};
	ssize_t ntags = mmsb_tags(env->st, NULL, 0);
	char last[32] = "";
	struct mmsb_stats s;
	int rc;

	mmsb_store_stats(env->st, &s);
	mmsb_epoch_info(env->st, s.head, &hi);
	if (s.n_ckpts > 0) {
		mmsb_epoch_info(env->st, s.last_ckpt, &ci);
		snprintf(last, sizeof(last), "%" PRIu64, s.last_ckpt);
	}
	rc = ctl_out(res, "store\tdaemon:u\taccess\tsync\thead:u\thead_time:t\toldest:u\tpages:u\tdirs:u\t"
			  "symlinks:u\tbytes:b\tlog_bytes:b\tsegments:u\tcheckpoints:u\tckpt_bytes:b\t"
			  "last_ckpt:u\tlast_ckpt_time:t\ttags:u\n");
	if (rc == 0)
		rc = ctl_escape(&res->out, mmsb_store_dir(env->st));
	if (rc == 0)
		rc = ctl_buf_printf(&res->out, "\t%ld\t%s\t%s\t%" PRIu64 "\t%" PRId64 "\t%" PRIu64, (long)env->daemon_pid,
				    mmsb_store_is_read_only(env->st) ? "read-only" : "read-write",
				    ctl_sync_name(mmsb_store_sync_mode(env->st)), s.head, hi.time_ns, s.oldest);
	if (rc == 0)
		rc = ctl_buf_printf(&res->out,
				    "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64
				    "\t%" PRIu64 "\t%" PRIu64 "\t%s\t%" PRId64 "\t%zd\n",
				    s.n_pages, s.n_dirs, s.n_symlinks, s.page_bytes, s.log_bytes, s.n_segments, s.n_ckpts,
				    s.ckpt_bytes, last, ci.time_ns, ntags < 0 ? (ssize_t)0 : ntags);
	return rc;
}

/* Extra stats: appended as "name:u" to the header and value to the row. */
struct ctl_extra {
	struct ctl_buf names;  /* "\tname:u"... */
	struct ctl_buf values; /* "\tvalue"... */
	int rc;		       /* first error */
};

static void ctl_extra_emit(void *ectx, const char *name, uint64_t value)
{
	struct ctl_extra *x = ectx;

	if (x->rc == 0)
		x->rc = ctl_buf_puts(&x->names, "\t");
	if (x->rc == 0)
		x->rc = ctl_escape(&x->names, name);
	if (x->rc == 0)
		x->rc = ctl_buf_printf(&x->names, ":u");
	if (x->rc == 0)
		x->rc = ctl_buf_printf(&x->values, "\t%" PRIu64, value);
}

static int cmd_stats(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res)
{
	struct ctl_extra x = {0};
	struct mmsb_stats s;
	int rc;

	mmsb_store_stats(env->st, &s);
	if (env->extra_stats != NULL)
		env->extra_stats(env->extra_arg, ctl_extra_emit, &x);
	rc = x.rc;
	if (rc == 0)
		rc = ctl_out(res, "head:u\toldest:u\tlast_ckpt:u\tpages:u\tdirs:u\tsymlinks:u\tpage_bytes:b\t"
				  "commits:u\trecords:u\tdeltas:u\tdelta_bytes:b\tdelta_record_bytes:b\tlog_bytes:b\t"
				  "segments:u\tcheckpoints:u\tckpt_bytes:b\tsyncs:u\tcommit_p50_ns:d\tcommit_p99_ns:d\t"
				  "sync_p50_ns:d\tsync_p99_ns:d\tapply_p50_ns:d\tapply_p99_ns:d\treplay_bytes:b\t"
				  "replay_ns:d\tckpt_write_bytes:b\tckpt_write_ns:d\tcache_bytes:b\tcache_hits:u\t"
				  "cache_misses:u");
	if (rc == 0)
		rc = ctl_buf_put(&res->out, x.names.p ? x.names.p : "", x.names.len);
	if (rc == 0)
		rc = ctl_buf_printf(&res->out,
				    "\n%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64
				    "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64
				    "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64,
				    s.head, s.oldest, s.last_ckpt, s.n_pages, s.n_dirs, s.n_symlinks, s.page_bytes,
				    s.n_commits, s.n_records, s.n_deltas, s.delta_bytes, s.delta_record_bytes,
				    s.log_bytes, s.n_segments, s.n_ckpts, s.ckpt_bytes, s.n_syncs);
	if (rc == 0)
		rc = ctl_buf_printf(&res->out,
				    "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64
				    "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64
				    "\t%" PRIu64,
				    s.commit_p50_ns, s.commit_p99_ns, s.sync_p50_ns, s.sync_p99_ns, s.apply_p50_ns,
				    s.apply_p99_ns, s.replay_bytes, s.replay_ns, s.ckpt_write_bytes, s.ckpt_write_ns,
				    s.cache_bytes, s.cache_hits, s.cache_misses);
	if (rc == 0)
		rc = ctl_buf_put(&res->out, x.values.p ? x.values.p : "", x.values.len);
	if (rc == 0)
		rc = ctl_out(res, "\n");
	ctl_buf_free(&x.names);
	ctl_buf_free(&x.values);
	return rc;
}

/* log: entries are collected first (the core holds its lock during the
 * walk, and mmsb_path must not be called from inside it); with -n only the
 * newest N are kept, in a ring. */
struct ctl_log {
	struct mmsb_hist_entry *e; /* ring (limit > 0) or growing array */
	size_t n;		   /* entries seen */
	size_t cap;		   /* allocated entries */
	uint64_t limit;		   /* -n, 0 = all */
	int rc;			   /* -ENOMEM */
};

static int ctl_log_add(void *arg, const struct mmsb_hist_entry *he)
{
	struct ctl_log *l = arg;
	struct mmsb_hist_entry *p;
	size_t cap;

	if (l->limit) {
		l->e[l->n % l->limit] = *he;
		l->n++;
		return 0;
	}
	if (l->n == l->cap) {
		cap = l->cap ? l->cap * 2 : 256;
		p = realloc(l->e, cap * sizeof(*p));
		if (p == NULL)
			return l->rc = -ENOMEM, 1;
		l->e = p;
		l->cap = cap;
	}
	l->e[l->n++] = *he;
	return 0;
}

static int ctl_log_emit(const struct ctl_env *env, struct ctl_log *l, struct ctl_result *res)
{
	size_t first = 0, count = l->n, i;
	char path[CTL_PATH_CAP];
	int rc = ctl_out(res, "epoch:u\ttime:t\tsource\tchange\tpath\tbytes:b\n");

	if (l->limit && l->n > l->limit) {
		first = l->n % l->limit;
		count = l->limit;
	}
	for (i = 0; rc == 0 && i < count; i++) {
		const struct mmsb_hist_entry *he = &l->e[l->limit ? (first + i) % l->limit : i];

		rc = ctl_buf_printf(&res->out, "%" PRIu64 "\t%" PRId64 "\t%s\t%s\t", he->epoch, he->time_ns,
				    mmsb_source_name(he->source), mmsb_change_name(he->kind));
		if (rc == 0)
			rc = ctl_escape(&res->out, ctl_id_path(env->st, he->id, path, sizeof(path)));
		if (rc == 0)
			rc = ctl_buf_printf(&res->out, "\t%" PRIu64 "\n", he->bytes);
	}
	return rc;
}

static int cmd_log(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res)
{
	uint64_t since = 0, until = mmsb_store_head(env->st), id = 0;
	struct ctl_log l = {0};
	struct mmsb_attr at;
	int rc = 0;

	if (a->n != NULL)
		rc = ctl_parse_count("log", "-n", a->n, &l.limit, res);
	if (rc == 0 && a->since != NULL)
		rc = ctl_epoch_arg(env, a->since, &since, res);
	if (rc == 0 && a->until != NULL)
		rc = ctl_epoch_arg(env, a->until, &until, res);
	if (rc == 0 && a->npos == 1) {
		rc = mmsb_resolve(env->st, ctl_relpath(a->pos[0]), &at);
		if (rc < 0)
			return fail(res, rc, "%s: no such path at head (%s): for a removed path use 'mmsbctl log' "
					     "without PATH",
				    a->pos[0], strerror(-rc));
		id = at.id;
	}
	if (rc == 0 && l.limit) {
		l.e = calloc(l.limit < 1u << 20 ? l.limit : 1u << 20, sizeof(*l.e));
		l.limit = l.limit < 1u << 20 ? l.limit : 1u << 20;
		rc = l.e ? 0 : -ENOMEM;
	}
	if (rc == 0)
		rc = mmsb_history(env->st, id, since, until, ctl_log_add, &l);
	if (rc == -EUCLEAN) { /* what is there, then the error */
		rc = l.rc ? l.rc : ctl_log_emit(env, &l, res);
		if (rc == 0)
			rc = fail(res, -EUCLEAN,
				  "the log records of some epochs in this range are damaged (see 'mmsbctl verify'): "
				  "the history above is incomplete");
		free(l.e);
		return rc;
	}
	if (rc == 0)
		rc = l.rc;
	if (rc == 0)
		rc = ctl_log_emit(env, &l, res);
	else if (res->msg[0] == '\0')
		rc = fail(res, rc, "cannot read the history: %s", strerror(-rc));
	free(l.e);
	return rc;
}

/* diff: one record per path.  Records are collected first: the core calls
 * back holding the snapshots' locks, and an added or removed page's size
 * (its bytes changed) is read from a snapshot after the walk. */
struct ctl_diff_rec {
	char kind;	/* '+', '-', 'M' or 'A' (mmsb_diff_fn) */
	char *path;	/* relative path, malloc'd */
	uint64_t bytes; /* bytes changed */
	char *ranges;	/* "off+len" items, '\n'-separated, malloc'd (NULL: none) */
};

struct ctl_diff {
	struct ctl_diff_rec *r; /* records, in the core's order */
	size_t n, cap;		/* records used / allocated */
	bool stat;		/* --stat: no ranges */
	int rc;			/* first error */
};

static const char *ctl_diff_kind(char k)
{
	return k == '+' ? "added" : k == '-' ? "removed" : k == 'M' ? "modified" : "attrs";
}

static int ctl_diff_one(void *arg, char kind, const char *path, const struct mmsb_range *r, size_t n)
{
	struct ctl_diff *d = arg;
	struct ctl_buf ranges = {0};
	struct ctl_diff_rec *rec;
	size_t i;
	int rc = 0;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;

		rec = realloc(d->r, cap * sizeof(*rec));
		if (rec == NULL)
			return d->rc = -ENOMEM, 1;
		d->r = rec;
		d->cap = cap;
	}
	rec = &d->r[d->n];
	*rec = (struct ctl_diff_rec){.kind = kind, .path = strdup(*path ? path : "/")};
	for (i = 0; i < n; i++)
		rec->bytes += r[i].len;
	for (i = 0; rc == 0 && !d->stat && i < n && i < CTL_RANGES_SHOWN; i++)
		rc = ctl_buf_printf(&ranges, "%s%" PRIu64 "+%" PRIu64, i ? "\n" : "", r[i].off, r[i].len);
	if (rc == 0 && !d->stat && n > CTL_RANGES_SHOWN)
		rc = ctl_buf_printf(&ranges, "\n(%zu more)", n - CTL_RANGES_SHOWN);
	rec->ranges = ranges.p;
	d->n++;
	if (rc == 0 && rec->path == NULL)
		rc = -ENOMEM;
	d->rc = rc;
	return rc != 0;
}

/* An added page's bytes are all new, a removed page's all gone: its size at
 * the epoch where it exists. */
static void ctl_diff_sizes(struct mmsb_store *st, struct ctl_diff *d, uint64_t e1, uint64_t e2)
{
	struct mmsb_snap *s1 = NULL, *s2 = NULL;
	struct mmsb_attr at;
	size_t i;

	for (i = 0; i < d->n; i++) {
		struct ctl_diff_rec *r = &d->r[i];
		struct mmsb_snap **s = r->kind == '+' ? &s2 : r->kind == '-' ? &s1 : NULL;

		if (s == NULL)
			continue;
		if (*s == NULL && mmsb_snap_open(st, r->kind == '+' ? e2 : e1, s) < 0)
			continue;
		if (mmsb_snap_resolve(*s, ctl_relpath(r->path), &at) == 0 && at.type == MMSB_T_PAGE)
			r->bytes = at.size;
	}
	mmsb_snap_close(s1);
	mmsb_snap_close(s2);
}

static int ctl_diff_emit(const struct ctl_diff *d, struct ctl_result *res)
{
	struct ctl_buf *b = &res->out;
	size_t i;
	int rc = ctl_out(res, d->stat ? "change\tpath\tbytes:b\n" : "change\tpath\tbytes:b\tranges:l\n");

	for (i = 0; rc == 0 && i < d->n; i++) {
		rc = ctl_buf_printf(b, "%s\t", ctl_diff_kind(d->r[i].kind));
		if (rc == 0)
			rc = ctl_escape(b, d->r[i].path);
		if (rc == 0)
			rc = ctl_buf_printf(b, "\t%" PRIu64, d->r[i].bytes);
		if (rc == 0 && !d->stat) {
			rc = ctl_buf_puts(b, "\t");
			if (rc == 0)
				rc = ctl_escape(b, d->r[i].ranges ? d->r[i].ranges : "");
		}
		if (rc == 0)
			rc = ctl_buf_puts(b, "\n");
	}
	return rc;
}

static int cmd_diff(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res)
{
	struct ctl_diff d = {.stat = a->stat};
	const char *paths[CTL_ARGS_MAX];
	uint64_t e1, e2;
	size_t i, np = a->npos - 2;
	int rc = ctl_epoch_arg(env, a->pos[0], &e1, res);

	if (rc == 0)
		rc = ctl_epoch_arg(env, a->pos[1], &e2, res);
	if (rc < 0)
		return rc;
	for (i = 0; i < np; i++)
		paths[i] = ctl_relpath(a->pos[2 + i]);
	rc = mmsb_diff(env->st, e1, e2, np ? paths : NULL, np, ctl_diff_one, &d);
	if (rc == 0)
		rc = d.rc;
	if (rc == 0) {
		ctl_diff_sizes(env->st, &d, e1, e2);
		rc = ctl_diff_emit(&d, res);
	}
	for (i = 0; i < d.n; i++) {
		free(d.r[i].path);
		free(d.r[i].ranges);
	}
	free(d.r);
	if (rc < 0)
		return fail(res, rc, "cannot diff %" PRIu64 " and %" PRIu64 ": %s", e1, e2, strerror(-rc));
	return 0;
}

static int cmd_restore(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res)
{
	const char *paths[CTL_ARGS_MAX];
	size_t i, np = a->npos - 1;
	uint64_t e, ne = 0;
	struct mmsb_attr at;
	struct mmsb_snap *sn;
	int rc = ctl_epoch_arg(env, a->pos[0], &e, res);

	if (rc < 0)
		return rc;
	for (i = 0; i < np; i++)
		paths[i] = ctl_relpath(a->pos[1 + i]);
	rc = mmsb_restore(env->st, e, np ? paths : NULL, np, &ne);
	if (rc == -ENOENT && np) {
		for (i = 0; i < np; i++) {
			bool at_head = mmsb_resolve(env->st, paths[i], &at) == 0, at_e = false;

			if (!at_head && mmsb_snap_open(env->st, e, &sn) == 0) {
				at_e = mmsb_snap_resolve(sn, paths[i], &at) == 0;
				mmsb_snap_close(sn);
			}
			if (!at_head && !at_e)
				return fail(res, rc, "%s exists neither at epoch %" PRIu64 " nor at head: nothing to restore",
					    a->pos[1 + i], e);
		}
	}
	if (rc < 0)
		return fail(res, rc, "cannot restore epoch %" PRIu64 ": %s", e, strerror(-rc));
	return ctl_buf_printf(&res->out, "epoch:u\tfrom:u\n%" PRIu64 "\t%" PRIu64 "\n", ne, e);
}

static int cmd_sync(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res)
{
	uint64_t head = mmsb_store_head(env->st);
	int rc = mmsb_store_sync(env->st);

	if (rc < 0)
		return fail(res, rc, "sync failed: %s (after a failed fsync the store stays read-only: "
				     "unmount, check the disk, remount)",
			    strerror(-rc));
	return ctl_buf_printf(&res->out, "durable:u\tsync\n%" PRIu64 "\t%s\n", head,
			      ctl_sync_name(mmsb_store_sync_mode(env->st)));
}

/* verify: a private read-only handle whose diag sink is captured, so the
 * report reaches the caller (the daemon's own sink goes to its log). */
struct ctl_capture {
	pthread_mutex_t lock; /* protects out, n_err, rc */
	struct ctl_buf out;   /* "level\tmessage\n" records */
	size_t n_err;	      /* messages at ERR or worse */
	int rc;		      /* first -ENOMEM */
};

static void ctl_capture_diag(void *arg, int level, const char *msg)
{
	struct ctl_capture *c = arg;
	const char *name = level <= MMSB_DIAG_ERR ? "error" : level == MMSB_DIAG_WARNING ? "warning" : "notice";
	int rc;

	pthread_mutex_lock(&c->lock);
	c->n_err += level <= MMSB_DIAG_ERR;
	rc = ctl_buf_printf(&c->out, "%s\t", name);
	if (rc == 0)
		rc = ctl_escape(&c->out, msg);
	if (rc == 0)
		rc = ctl_buf_puts(&c->out, "\n");
	if (rc < 0 && c->rc == 0)
		c->rc = rc;
	pthread_mutex_unlock(&c->lock);
}

static int cmd_verify(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res)
{
	struct ctl_capture cap = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct mmsb_store_opts o;
	struct mmsb_store *vst = NULL;
	struct mmsb_epoch_range lost[16];
	uint64_t head = 0;
	ssize_t nck = 0, nlost = 0;
	size_t i;
	int rc, vrc;

	mmsb_store_opts_init(&o);
	o.create = false;
	o.read_only = true;
	o.ckpt_at_close = false;
	o.diag_level = MMSB_DIAG_NOTICE;
	o.diag_fn = ctl_capture_diag;
	o.diag_arg = &cap;
	vrc = mmsb_store_open(mmsb_store_dir(env->st), &o, &vst);
	if (vrc == 0) {
		vrc = mmsb_store_verify(vst);
		head = mmsb_store_head(vst);
		nck = mmsb_checkpoints(vst, NULL, 0);
		nlost = mmsb_lost_epochs(vst, lost, (sizeof(lost) / sizeof(lost[0])));
		mmsb_store_close(vst);
	}
	rc = ctl_out(res, "level\tmessage\n");
	if (rc == 0)
		rc = ctl_buf_put(&res->out, cap.out.p ? cap.out.p : "", cap.out.len);
	for (i = 0; rc == 0 && i < (size_t)nlost && i < (sizeof(lost) / sizeof(lost[0])); i++)
		rc = ctl_buf_printf(&res->out, "lost\tepochs %" PRIu64 "-%" PRIu64 " cannot be read (their log records "
					       "are damaged)\n",
				    lost[i].first, lost[i].last);
	if (vrc == 0 && cap.n_err > 0)
		vrc = -EUCLEAN; /* damage found on the way (e.g. a malformed tags line) */
	if (rc == 0 && vrc == 0)
		rc = ctl_buf_printf(&res->out, "ok\tverified %zd checkpoint(s) and the log up to epoch %" PRIu64
					       ": every checksum and structure is valid\n",
				    nck, head);
	ctl_buf_free(&cap.out);
	pthread_mutex_destroy(&cap.lock);
	if (rc == 0)
		rc = cap.rc;
	if (rc == 0 && vrc < 0)
		rc = fail(res, vrc, "the store is damaged (%s, %zu error(s) above): mount it with -o ro to read the "
				    "epochs before the damage, or restore the store from a backup",
			  strerror(-vrc), cap.n_err);
	return rc;
}

static int cmd_compact(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res)
{
	struct mmsb_tag *t0 = NULL, *t1 = NULL;
	struct ctl_buf dropped = {0};
	ssize_t n0, n1, i, j;
	uint64_t before, kept = 0;
	int rc;

	if (a->before == NULL)
		return usage(res, "compact", "--before E is required");
	rc = ctl_epoch_arg(env, a->before, &before, res);
	if (rc < 0)
		return rc;
	n0 = ctl_load_tags(env->st, &t0);
	rc = mmsb_compact(env->st, before, a->force ? MMSB_COMPACT_FORCE : 0, &kept);
	if (rc == -ENOENT)
		rc = fail(res, rc, "no checkpoint at or before epoch %" PRIu64 ": take one first with 'mmsbctl checkpoint'",
			  before);
	else if (rc == -EBUSY)
		rc = fail(res, rc, "a tag names an epoch that compaction would drop: remove it with 'mmsbctl untag' or "
				   "pass --force");
	else if (rc < 0)
		rc = fail(res, rc, "compaction failed: %s", strerror(-rc));
	n1 = rc == 0 ? ctl_load_tags(env->st, &t1) : 0;
	for (i = 0; rc == 0 && i < n0; i++) {
		for (j = 0; j < n1 && strcmp(t0[i].name, t1[j].name) != 0; j++)
			;
		if (j == n1 || n1 < 0)
			rc = ctl_buf_printf(&dropped, "%s%s", dropped.len ? "\n" : "", t0[i].name);
	}
	if (rc == 0)
		rc = ctl_buf_printf(&res->out, "oldest:u\tdropped_tags:l\n%" PRIu64 "\t", kept);
	if (rc == 0)
		rc = ctl_escape(&res->out, dropped.p ? dropped.p : "");
	if (rc == 0)
		rc = ctl_out(res, "\n");
	ctl_buf_free(&dropped);
	free(t0);
	free(t1);
	return rc;
}

static int cmd_resolve(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res)
{
	uint64_t e;
	int rc = ctl_epoch_arg(env, a->pos[0], &e, res);

	if (rc < 0)
		return rc;
	return ctl_buf_printf(&res->out, "epoch:u\thead:u\n%" PRIu64 "\t%" PRIu64 "\n", e, mmsb_store_head(env->st));
}

/* ---- the command table and ctl_exec -------------------------------------------- */

typedef int (*ctl_cmd_fn)(const struct ctl_env *env, const struct ctl_args *a, struct ctl_result *res);

/* How to run a command (parallel to ctl_cmds[]). */
struct ctl_spec {
	ctl_cmd_fn fn;	    /* NULL: not run here (client or stream) */
	unsigned opts;	    /* O_* allowed */
	size_t min, max;    /* positional arguments */
};

static const struct ctl_cmd ctl_cmds[] = {
	{"checkpoint", CTL_F_WRITE | CTL_F_RECORD, "[--tag NAME]",
	 "Take a checkpoint of the head (a full, compressed, checksummed copy of the state) and print its "
	 "epoch. With --tag, also name that epoch: epochs/NAME then shows it."},
	{"checkpoints", 0, "", "List the retained checkpoints: epoch, time, size on disk and tags."},
	{"tags", 0, "", "List the tags: epoch, name, when the tag was set, the epoch's time and the size of a "
			"checkpoint at that epoch (0: none)."},
	{"tag", CTL_F_WRITE | CTL_F_RECORD, "NAME EPOCH", "Name EPOCH (a number, a tag or head) NAME, or move NAME there."},
	{"untag", CTL_F_WRITE | CTL_F_RECORD, "NAME", "Remove the tag NAME (the epoch itself stays)."},
	{"status", CTL_F_RECORD, "",
	 "Show the mount point, store, daemon, access, durability mode, head and oldest epochs, pages, bytes, "
	 "log size and the last checkpoint."},
	{"stats", CTL_F_RECORD, "[--prometheus]",
	 "Show the core's counters and latencies (p50/p99) and, from a daemon, its FUSE operation counts. "
	 "--prometheus prints them in the Prometheus text exposition format (what the daemon's -o metrics= "
	 "endpoint serves)."},
	{"log", 0, "[PATH] [--since E] [--until E] [-n N]",
	 "Show the history, oldest first: epoch, time, source (user, propagation, restore, system), change, "
	 "path and bytes changed (for a truncate: the new size). With PATH only that node's changes; -n keeps "
	 "the newest N."},
	{"diff", 0, "E1 E2 [PATH...] [--stat]",
	 "Show the paths added, removed, modified (with the changed byte ranges) or with changed attributes "
	 "between two epochs, optionally within some subtrees. --stat leaves out the ranges and adds a summary."},
	{"restore", CTL_F_WRITE | CTL_F_RECORD, "E [PATH...]",
	 "Make the head equal to epoch E, for the whole tree or some paths, as one new epoch (history is "
	 "kept). A path absent at E is removed at head. Readers of the mount see the result at once."},
	{"sync", CTL_F_WRITE | CTL_F_RECORD, "", "Make every committed epoch durable (fsync the log)."},
	{"watch", CTL_F_STREAM, "[PATH...]",
	 "Print one line per committed epoch (epoch, time, source, pages, bytes, paths) until interrupted; "
	 "with PATHs only epochs touching them. 'lost N' means N epochs were dropped because the reader was "
	 "too slow."},
	{"verify", 0, "",
	 "Re-read every checkpoint and the whole log, checking every checksum and structure; report each "
	 "problem. Exits 1 when anything is damaged."},
	{"compact", CTL_F_WRITE | CTL_F_RECORD, "--before E [--force]",
	 "Drop the history before the newest checkpoint at or before E; time travel before it stops working. "
	 "Refuses to drop a tagged epoch unless --force (which drops the tag)."},
	{"export", CTL_F_CLIENT, "E DIR",
	 "Write the tree at epoch E into the new or empty directory DIR as plain files: page bytes, "
	 "directories, symlinks, modes, times and user.* extended attributes."},
	{"resolve", CTL_F_HIDDEN | CTL_F_RECORD, "E", "Print the epoch that E names."},
};

static const struct ctl_spec ctl_specs[] = {
	{cmd_checkpoint, O_TAG, 0, 0},
	{cmd_checkpoints, 0, 0, 0},
	{cmd_tags, 0, 0, 0},
	{cmd_tag, 0, 2, 2},
	{cmd_untag, 0, 1, 1},
	{cmd_status, 0, 0, 0},
	{cmd_stats, O_PROM, 0, 0},
	{cmd_log, O_SINCE | O_UNTIL | O_N, 0, 1},
	{cmd_diff, O_STAT, 2, CTL_ARGS_MAX},
	{cmd_restore, 0, 1, CTL_ARGS_MAX},
	{cmd_sync, 0, 0, 0},
	{NULL, 0, 0, CTL_ARGS_MAX},
	{cmd_verify, 0, 0, 0},
	{cmd_compact, O_BEFORE | O_FORCE, 0, 0},
	{NULL, 0, 2, 2},
	{cmd_resolve, 0, 1, 1},
};
_Static_assert(CTL_ARRAY_SIZE(ctl_cmds) == CTL_ARRAY_SIZE(ctl_specs), "one spec per command");

const struct ctl_cmd *ctl_cmd_at(size_t i)
{
	return i < CTL_ARRAY_SIZE(ctl_cmds) ? &ctl_cmds[i] : NULL;
}

const struct ctl_cmd *ctl_cmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < CTL_ARRAY_SIZE(ctl_cmds); i++)
		if (strcmp(ctl_cmds[i].name, name) == 0)
			return &ctl_cmds[i];
	return NULL;
}

int ctl_exec(const struct ctl_env *env, int argc, char *const *argv, struct ctl_result *res)
{
	const struct ctl_cmd *c = argc > 0 ? ctl_cmd_find(argv[0]) : NULL;
	const struct ctl_spec *sp;
	struct ctl_args *a;
	int rc;

	if (c == NULL)
		return res->usage = true,
		       fail(res, -EINVAL, "unknown command '%s': see 'mmsbctl --help'", argc > 0 ? argv[0] : "");
	sp = &ctl_specs[c - ctl_cmds];
	if (sp->fn == NULL)
		return fail(res, -ENOTSUP, "%s is not run by the store: use mmsbctl", c->name);
	if ((c->flags & CTL_F_WRITE) && mmsb_store_is_read_only(env->st))
		return fail(res, -EROFS, "the store %s is read-only: %s", mmsb_store_dir(env->st),
			    env->daemon_pid ? "remount it without -o ro" : "no daemon serves it; mount it first");
	a = malloc(sizeof(*a)); /* ~2 KiB: off the (possibly small) thread stack */
	if (a == NULL)
		return fail(res, -ENOMEM, "out of memory");
	rc = ctl_parse(argc, argv, sp->opts, a, res);
	if (rc == 0 && (a->npos < sp->min || a->npos > sp->max))
		rc = usage(res, c->name, a->npos < sp->min ? "missing argument" : "too many arguments");
	if (rc == 0)
		rc = sp->fn(env, a, res);
	if (rc < 0 && res->msg[0] == '\0')
		fail(res, rc, "%s: %s", c->name, strerror(-rc));
	free(a);
	return rc;
}

void ctl_result_free(struct ctl_result *res)
{
	ctl_buf_free(&res->out);
}

/* ---- watch lines ------------------------------------------------------------------ */

const char ctl_watch_header[] = "epoch:u\ttime:t\tsource\tpages:u\tbytes:b\tpaths:l\n";

static int ctl_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int ctl_commit_paths(struct mmsb_store *st, const struct mmsb_commit_info *ci, struct ctl_buf *paths, size_t *n)
{
	uint64_t *ids = malloc((ci->n_changes ? ci->n_changes : 1) * sizeof(*ids));
	char path[CTL_PATH_CAP];
	size_t i, k = 0;
	int rc = ids ? 0 : -ENOMEM;

	for (i = 0; rc == 0 && i < ci->n_changes; i++)
		ids[i] = ci->changes[i].id;
	if (rc == 0)
		qsort(ids, ci->n_changes, sizeof(*ids), ctl_cmp_u64);
	for (i = 0; rc == 0 && i < ci->n_changes; i++) {
		if (i > 0 && ids[i] == ids[i - 1])
			continue;
		if (k == CTL_WATCH_PATHS) {
			rc = ctl_buf_put(paths, "...", 4); /* truncated list */
			k++;
			break;
		}
		ctl_id_path(st, ids[i], path, sizeof(path));
		rc = ctl_buf_put(paths, path, strlen(path) + 1);
		k++;
	}
	free(ids);
	if (rc == 0)
		*n = k;
	return rc;
}

bool ctl_path_under(const char *path, const char *filter)
{
	size_t len;

	filter = ctl_relpath(filter);
	path = ctl_relpath(path);
	len = strlen(filter);
	while (len > 0 && filter[len - 1] == '/')
		len--;
	if (len == 0)
		return true;
	return strncmp(path, filter, len) == 0 && (path[len] == '\0' || path[len] == '/');
}

int ctl_watch_line(const struct mmsb_commit_info *ci, const struct ctl_buf *paths, size_t n,
		   const char *const *filters, size_t nf, struct ctl_buf *out)
{
	struct ctl_buf list = {0};
	const char *p = paths->p;
	size_t i, j, shown = 0;
	int rc = 0;

	for (i = 0; rc == 0 && i < n; i++, p += strlen(p) + 1) {
		bool keep = nf == 0;

		for (j = 0; !keep && j < nf; j++)
			keep = ctl_path_under(p, filters[j]);
		if (!keep)
			continue;
		rc = ctl_buf_printf(&list, "%s%s", shown ? "\n" : "", p);
		shown++;
	}
	if (rc == 0 && nf > 0 && shown == 0) {
		ctl_buf_free(&list);
		return 0;
	}
	if (rc == 0)
		rc = ctl_buf_printf(out, "%" PRIu64 "\t%" PRId64 "\t%s\t%zu\t%" PRIu64 "\t", ci->epoch, ci->time_ns,
				    mmsb_source_name(ci->source), n, ci->bytes_changed);
	if (rc == 0)
		rc = ctl_escape(out, list.p ? list.p : "");
	if (rc == 0)
		rc = ctl_buf_puts(out, "\n");
	ctl_buf_free(&list);
	return rc < 0 ? rc : 1;
}

/* ---- Prometheus text exposition ------------------------------------------------ */

/* How a stats field is exposed.  Fields not listed (the daemon's own
 * values, "fuse.*") are gauges named after the field. */
static const struct {
	const char *field;  /* stats column name */
	const char *metric; /* metric name after "mmsb_" */
	const char *type;   /* "gauge" or "counter" */
	const char *help;   /* HELP text */
} ctl_prom_map[] = {
	{"head", "head_epoch", "gauge", "Newest committed epoch."},
	{"oldest", "oldest_epoch", "gauge", "Oldest retained epoch (time travel reaches back to it)."},
	{"last_ckpt", "last_checkpoint_epoch", "gauge", "Epoch of the newest checkpoint."},
	{"pages", "pages", "gauge", "Pages (regular files) at head."},
	{"dirs", "directories", "gauge", "Directories at head."},
	{"symlinks", "symlinks", "gauge", "Symbolic links at head."},
	{"page_bytes", "page_bytes", "gauge", "Sum of the page sizes at head."},
	{"commits", "commits_total", "counter", "Transactions committed since the store was opened."},
	{"records", "records_total", "counter", "Log records written since the store was opened."},
	{"deltas", "deltas_total", "counter", "Write records since the store was opened."},
	{"delta_bytes", "delta_bytes_total", "counter", "Bytes changed by writes since the store was opened."},
	{"delta_record_bytes", "delta_record_bytes_total", "counter", "Encoded size of the write records."},
	{"log_bytes", "log_bytes", "gauge", "Retained transaction log on disk."},
	{"segments", "log_segments", "gauge", "Retained log segments."},
	{"checkpoints", "checkpoints", "gauge", "Retained checkpoints."},
	{"ckpt_bytes", "checkpoint_bytes", "gauge", "Retained checkpoints on disk."},
	{"syncs", "log_syncs_total", "counter", "fsyncs of the log since the store was opened."},
	{"commit_p50_ns", "commit_p50_seconds", "gauge", "Median commit latency (excluding sync)."},
	{"commit_p99_ns", "commit_p99_seconds", "gauge", "99th percentile commit latency (excluding sync)."},
	{"sync_p50_ns", "sync_p50_seconds", "gauge", "Median log fsync latency."},
	{"sync_p99_ns", "sync_p99_seconds", "gauge", "99th percentile log fsync latency."},
	{"apply_p50_ns", "apply_p50_seconds", "gauge", "Median time to apply one record to memory."},
	{"apply_p99_ns", "apply_p99_seconds", "gauge", "99th percentile time to apply one record."},
	{"replay_bytes", "replay_bytes", "gauge", "Log replayed when the store was opened."},
	{"replay_ns", "replay_seconds", "gauge", "Time spent replaying the log at open."},
	{"ckpt_write_bytes", "checkpoint_write_bytes", "gauge", "Size of the last checkpoint written."},
	{"ckpt_write_ns", "checkpoint_write_seconds", "gauge", "Time to write the last checkpoint."},
	{"cache_bytes", "cache_bytes", "gauge", "Time-travel page cache in use."},
	{"cache_hits", "cache_hits_total", "counter", "Time-travel page cache hits."},
	{"cache_misses", "cache_misses_total", "counter", "Time-travel page cache misses."},
};

/* A metric name of [a-zA-Z0-9_] from s (other bytes become '_'). */
static int ctl_prom_name(struct ctl_buf *b, const char *s)
{
	int rc = 0;

	for (; rc == 0 && *s; s++) {
		char c = *s;

		rc = ctl_buf_put(b, (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ? &c : "_",
				 1);
	}
	return rc;
}

int ctl_prometheus(const char *stats, struct ctl_buf *out)
{
	char *copy = strdup(stats), *nl, *vals, *hdr[CTL_ARGS_MAX], *val[CTL_ARGS_MAX];
	int nh, nv, i, rc = copy ? 0 : -ENOMEM;

	nl = copy ? strchr(copy, '\n') : NULL;
	if (rc == 0 && nl == NULL)
		rc = -EINVAL;
	if (rc < 0) {
		free(copy);
		return rc;
	}
	*nl = '\0';
	if ((nl = strchr(nl + 1, '\n')) != NULL)
		*nl = '\0';
	vals = copy + strlen(copy) + 1;
	nh = ctl_split(copy, hdr, CTL_ARGS_MAX);
	nv = ctl_split(vals, val, CTL_ARGS_MAX);
	if (nh < 0 || nv != nh)
		rc = -EINVAL;
	for (i = 0; rc == 0 && i < nh; i++) {
		char *colon = strrchr(hdr[i], ':');
		bool ns = colon && strcmp(colon, ":d") == 0;
		size_t k;

		if (colon)
			*colon = '\0';
		for (k = 0; k < CTL_ARRAY_SIZE(ctl_prom_map) && strcmp(ctl_prom_map[k].field, hdr[i]) != 0; k++)
			;
		if (k < CTL_ARRAY_SIZE(ctl_prom_map))
			rc = ctl_buf_printf(out, "# HELP mmsb_%s %s\n# TYPE mmsb_%s %s\nmmsb_%s ", ctl_prom_map[k].metric,
					    ctl_prom_map[k].help, ctl_prom_map[k].metric, ctl_prom_map[k].type,
					    ctl_prom_map[k].metric);
		else {
			/* the daemon's own values ("fuse.snapshot_inodes") */
			rc = ctl_buf_puts(out, "# HELP mmsb_");
			if (rc == 0)
				rc = ctl_prom_name(out, hdr[i]);
			if (rc == 0)
				rc = ctl_buf_printf(out, " Daemon value %s.\n# TYPE mmsb_", hdr[i]);
			if (rc == 0)
				rc = ctl_prom_name(out, hdr[i]);
			if (rc == 0)
				rc = ctl_buf_puts(out, " gauge\nmmsb_");
			if (rc == 0)
				rc = ctl_prom_name(out, hdr[i]);
			if (rc == 0)
				rc = ctl_buf_puts(out, " ");
		}
		if (rc == 0 && ns)
			rc = ctl_buf_printf(out, "%.9f\n", (double)strtoull(val[i], NULL, 10) / 1e9);
		else if (rc == 0)
			rc = ctl_buf_printf(out, "%s\n", *val[i] ? val[i] : "0");
	}
	free(copy);
	return rc;
}
