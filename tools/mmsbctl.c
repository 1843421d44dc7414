/* mmsbctl.c - drive a running mmsbfs, or read a store offline.
 *
 *   mmsbctl [--mount DIR | --store DIR] [--json] COMMAND [ARGS...]
 *
 * With a daemon: the command goes over STORE/ctl.sock (fusefs/ctl.h) and
 * runs there (ctl/ctlcmd.c).  Without one (the socket is missing or
 * refuses connections): the read commands open the store read-only and run
 * the same code here; write commands fail and say to mount first.
 * Exit status: 0 success, 1 failure, 2 usage error.  Documented in
 * mmsbctl(1).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mmsbctl.h"

#define EXIT_USAGE 2

/* The command line. */
struct mctl_opts {
	const char *mount;  /* --mount DIR */
	const char *store;  /* --store DIR */
	bool json;	    /* --json */
	bool help;	    /* -h, --help */
	bool version;	    /* -V, --version */
	int argc;	    /* command and its arguments */
	char **argv;	    /* (global options removed; malloc'd array) */
};

/* What a run needs besides the options. */
struct mctl_run {
	const struct mctl_opts *o;  /* options */
	const struct ctl_cmd *cmd;  /* the command */
	struct mctl_target t;	    /* mount and store */
	char msg[MCTL_MSG_MAX];	    /* message for the user */
};

static void mctl_usage(FILE *f)
{
	const struct ctl_cmd *c;
	size_t i;

	fputs("usage: mmsbctl [--mount DIR | --store DIR] [--json] COMMAND [ARGS...]\n"
	      "       mmsbctl help COMMAND | mmsbctl COMMAND --help\n\n"
	      "Drive a running mmsbfs (found from --mount, the mount holding the current directory, or the only\n"
	      "mmsbfs mount), or read a store offline when no daemon serves it (--store DIR).\n\n"
	      "commands:\n",
	      f);
	for (i = 0; (c = ctl_cmd_at(i)) != NULL; i++)
		if (!(c->flags & CTL_F_HIDDEN))
			fprintf(f, "  %-12s %s\n", c->name, c->args);
	fputs("\noptions:\n"
	      "  --mount DIR  the mmsbfs mount to drive\n"
	      "  --store DIR  the store directory (its daemon, or offline read-only access)\n"
	      "  --json       print one JSON document (watch: one JSON object per line)\n"
	      "  -h, --help   this help; -V, --version: the version\n"
	      "\nSee mmsbctl(1).\n",
	      f);
}

/* Print text wrapped at 76 columns, indented. */
static void mctl_wrap(FILE *f, const char *s, int indent)
{
	int col = indent, len;

	fprintf(f, "%*s", indent, "");
	while (*s) {
		len = (int)strcspn(s, " ");
		if (col > indent && col + 1 + len > 76) {
			fprintf(f, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%.*s", len, s);
		col += len;
		s += len;
		while (*s == ' ')
			s++;
	}
	fputc('\n', f);
}

static int mctl_cmd_help(const char *name)
{
	const struct ctl_cmd *c = ctl_cmd_find(name);

	if (c == NULL) {
		fprintf(stderr, "mmsbctl: unknown command '%s': see 'mmsbctl --help'\n", name);
		return EXIT_USAGE;
	}
	printf("usage: mmsbctl [--mount DIR | --store DIR] [--json] %s%s%s\n\n", c->name, *c->args ? " " : "", c->args);
	mctl_wrap(stdout, c->help, 2);
	printf("\n  E may be an epoch number, a tag name or 'head'.%s\n",
	       c->flags & (CTL_F_WRITE | CTL_F_STREAM) ? " Needs a running daemon." : " Works offline (--store) too.");
	return 0;
}

/* Match "--name VALUE" / "--name=VALUE" at argv[*k]. */
static bool mctl_opt_value(int argc, char **argv, int *k, const char *name, const char **val)
{
	size_t len = strlen(name);

	if (strncmp(argv[*k], name, len) != 0)
		return false;
	if (argv[*k][len] == '=') {
		*val = argv[*k] + len + 1;
		return true;
	}
	if (argv[*k][len] != '\0')
		return false;
	*val = *k + 1 < argc ? argv[++*k] : NULL;
	return true;
}

/* Global options may appear anywhere before "--". */
static int mctl_parse(int argc, char **argv, struct mctl_opts *o)
{
	bool dashdash = false;
	const char *val;
	int k;

	o->argv = calloc((size_t)argc + 1, sizeof(char *));
	if (o->argv == NULL)
		return -ENOMEM;
	for (k = 1; k < argc; k++) {
		const char *s = argv[k];

		if (dashdash) {
			o->argv[o->argc++] = argv[k];
		} else if (mctl_opt_value(argc, argv, &k, "--mount", &val) ||
			   mctl_opt_value(argc, argv, &k, "--store", &val)) {
			if (val == NULL)
				return fprintf(stderr, "mmsbctl: %s needs a directory: see 'mmsbctl --help'\n", s),
				       -EINVAL;
			*(strncmp(s, "--mount", 7) == 0 ? &o->mount : &o->store) = val;
		} else if (strcmp(s, "--json") == 0) {
			o->json = true;
		} else if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			o->help = true;
		} else if (strcmp(s, "-V") == 0 || strcmp(s, "--version") == 0) {
			o->version = true;
		} else {
			dashdash = strcmp(s, "--") == 0 && o->argc > 0;
			o->argv[o->argc++] = argv[k];
		}
	}
	if (o->mount && o->store)
		return fprintf(stderr, "mmsbctl: --mount and --store exclude each other: give one\n"), -EINVAL;
	return 0;
}

/* Make absolute paths inside the mount root-relative (the daemon's view). */
static void mctl_relativize(struct mctl_run *r)
{
	size_t len = r->t.mount ? strlen(r->t.mount) : 0;
	int k;

	if (len == 0 || strcmp(r->cmd->name, "export") == 0)
		return;
	for (k = 1; k < r->o->argc; k++) {
		char *a = r->o->argv[k];

		if (strncmp(a, r->t.mount, len) == 0 && (a[len] == '/' || a[len] == '\0'))
			r->o->argv[k] = a[len] ? a + len + 1 : a + len;
	}
}

static int mctl_error(const char *msg, int rc)
{
	fprintf(stderr, "mmsbctl: %s\n", msg);
	return rc;
}

/* status: put the mount point first in the record (only mmsbctl knows it). */
static int mctl_add_mount(struct mctl_run *r, struct ctl_buf *out)
{
	struct ctl_buf b = {0};
	char *nl = out->p ? strchr(out->p, '\n') : NULL;
	int rc;

	if (strcmp(r->cmd->name, "status") != 0 || nl == NULL)
		return 0;
	rc = ctl_buf_puts(&b, "mount\t");
	if (rc == 0)
		rc = ctl_buf_put(&b, out->p, (size_t)(nl - out->p) + 1);
	if (rc == 0)
		rc = ctl_escape(&b, r->t.mount ? r->t.mount : "");
	if (rc == 0)
		rc = ctl_buf_puts(&b, "\t");
	if (rc == 0)
		rc = ctl_buf_puts(&b, nl + 1);
	if (rc < 0) {
		ctl_buf_free(&b);
		return rc;
	}
	ctl_buf_free(out);
	*out = b;
	return 0;
}

/* Show a result (rows even on failure: verify reports, then fails). */
static int mctl_show(struct mctl_run *r, const char *out, int rc, bool usage)
{
	bool stat = false, prom = false;
	int k;

	if (out != NULL && *out && strchr(out, '\n') != NULL && (rc == 0 || strchr(strchr(out, '\n') + 1, '\n'))) {
		for (k = 1; k < r->o->argc; k++) {
			stat = stat || strcmp(r->o->argv[k], "--stat") == 0;
			prom = prom || strcmp(r->o->argv[k], "--prometheus") == 0;
		}
		if (prom && rc == 0 && strcmp(r->cmd->name, "stats") == 0) {
			struct ctl_buf p = {0};

			rc = ctl_prometheus(out, &p);
			if (rc == 0)
				fputs(p.p ? p.p : "", stdout);
			else
				snprintf(r->msg, sizeof(r->msg), "cannot format the statistics: %s", strerror(-rc));
			ctl_buf_free(&p);
			fflush(stdout);
			return rc == 0 ? 0 : mctl_error(r->msg, 1);
		}
		mctl_render(stdout, out, r->o->json, (r->cmd->flags & CTL_F_RECORD) != 0);
		if (stat && !r->o->json && strcmp(r->cmd->name, "diff") == 0)
			mctl_render_diffstat(stdout, out);
	}
	fflush(stdout);
	if (rc == 0)
		return 0;
	return mctl_error(r->msg, usage ? EXIT_USAGE : 1);
}

static bool mctl_is_usage(const char *msg)
{
	return strstr(msg, ": usage: mmsbctl") != NULL || strncmp(msg, "unknown command", 15) == 0;
}

/* ---- with a daemon ---------------------------------------------------------------- */

static int mctl_watch(struct mctl_run *r, struct mctl_reader *rd)
{
	char *line, *header = NULL;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		rc = mctl_read_line(rd, &line);
		if (rc < 0) {
			free(header);
			return mctl_error("the daemon stopped: the watch ended", 1);
		}
		if (strncmp(line, "ERR\t", 4) == 0) {
			char *f[3];

			free(header);
			if (ctl_split(line, f, 3) == 3)
				return mctl_error(f[2], mctl_is_usage(f[2]) ? EXIT_USAGE : 1);
			return mctl_error("malformed answer from the daemon", 1);
		}
		if (header == NULL) {
			header = strdup(line);
			if (header == NULL)
				return mctl_error("out of memory", 1);
			if (!r->o->json)
				mctl_render_stream(stdout, header, header, false);
			continue;
		}
		if (strncmp(line, "lost\t", 5) == 0) {
			if (r->o->json)
				printf("{\"lost\": %s}\n", line + 5);
			else
				printf("lost %s epoch(s): this reader was too slow\n", line + 5);
			fflush(stdout);
			continue;
		}
		mctl_render_stream(stdout, header, line, r->o->json);
	}
}

/* Ask the daemon what E names; *epoch on success. */
static int mctl_resolve_online(struct mctl_run *r, int fd, const char *e, uint64_t *epoch)
{
	char *argv[] = {"resolve", (char *)e};
	struct mctl_reader rd = {.fd = fd};
	struct ctl_buf out = {0};
	const char *row;
	int rc = mctl_send(fd, 2, argv);

	if (rc < 0)
		snprintf(r->msg, sizeof(r->msg), "cannot talk to the daemon: %s", strerror(-rc));
	if (rc == 0)
		rc = mctl_read_response(&rd, &out, r->msg, sizeof(r->msg));
	row = rc == 0 && out.p ? strchr(out.p, '\n') : NULL;
	if (rc == 0 && row == NULL)
		rc = -EPROTO, snprintf(r->msg, sizeof(r->msg), "malformed answer from the daemon");
	if (rc == 0)
		*epoch = strtoull(row + 1, NULL, 10);
	ctl_buf_free(&out);
	ctl_buf_free(&rd.buf);
	return rc;
}

static int mctl_export_online(struct mctl_run *r, int fd, const char *e, const char *dir)
{
	uint64_t epoch = 0;
	int rc = mctl_resolve_online(r, fd, e, &epoch);

	if (rc == 0 && r->t.mount != NULL)
		rc = mctl_export_mount(r->t.mount, epoch, dir, r->msg, sizeof(r->msg));
	else if (rc == 0) {
		struct mmsb_store *st = NULL;

		rc = mctl_open_offline(r->t.store, true, &st, r->msg, sizeof(r->msg));
		if (rc == 0)
			rc = mctl_export_store(st, epoch, dir, r->msg, sizeof(r->msg));
		mmsb_store_close(st);
	}
	if (rc < 0)
		return mctl_error(r->msg, 1);
	printf("exported epoch %" PRIu64 " to %s\n", epoch, dir);
	return 0;
}

/* Commands that may run long enough to deserve a progress line. */
static bool mctl_long(const struct ctl_cmd *c)
{
	static const char *const names[] = {"verify", "compact", "restore", "checkpoint"};
	size_t i;

	for (i = 0; i < CTL_ARRAY_SIZE(names); i++)
		if (strcmp(c->name, names[i]) == 0)
			return true;
	return false;
}

static int mctl_online(struct mctl_run *r, int fd)
{
	struct mctl_progress prog;
	struct mctl_reader rd = {.fd = fd};
	struct ctl_buf out = {0};
	int rc, ex;

	if (r->cmd->flags & CTL_F_CLIENT)
		return mctl_export_online(r, fd, r->o->argv[1], r->o->argv[2]);
	rc = mctl_send(fd, r->o->argc, r->o->argv);
	/* a daemon that refuses us says why before closing: read it */
	if ((rc == -EPIPE || rc == -ECONNRESET) && !(r->cmd->flags & CTL_F_STREAM))
		rc = 0;
	if (rc < 0) {
		snprintf(r->msg, sizeof(r->msg), "cannot send the request to the daemon: %s", strerror(-rc));
		return mctl_error(r->msg, 1);
	}
	if (r->cmd->flags & CTL_F_STREAM) {
		ex = mctl_watch(r, &rd);
		ctl_buf_free(&rd.buf);
		return ex;
	}
	if (mctl_long(r->cmd)) {
		mctl_progress_begin(&prog, r->cmd->name);
		rd.prog = &prog;
	}
	rc = mctl_read_response(&rd, &out, r->msg, sizeof(r->msg));
	if (rd.prog != NULL)
		mctl_progress_end(rd.prog);
	if (rc == 0)
		mctl_add_mount(r, &out);
	ex = mctl_show(r, out.p, rc, rc < 0 && mctl_is_usage(r->msg));
	ctl_buf_free(&out);
	ctl_buf_free(&rd.buf);
	return ex;
}

/* ---- offline ------------------------------------------------------------------------ */

/* A command run offline on its own thread, so that this one can draw a
 * progress line while it runs. */
struct mctl_job {
	struct mctl_run *r;	/* the run */
	struct mmsb_store *st;	/* the store (borrowed) */
	struct ctl_result *res; /* its result */
	int rc;			/* ctl_exec's return */
	atomic_bool done;	/* set last by the job */
};

static void *mctl_job_main(void *arg)
{
	struct mctl_job *j = arg;

	j->rc = ctl_exec(&(struct ctl_env){.st = j->st}, j->r->o->argc, j->r->o->argv, j->res);
	atomic_store(&j->done, true);
	return NULL;
}

static int mctl_exec_offline(struct mctl_run *r, struct mmsb_store *st, struct ctl_result *res)
{
	struct mctl_job j = {.r = r, .st = st, .res = res};
	struct mctl_progress prog;
	pthread_t t;

	mctl_progress_begin(&prog, r->cmd->name);
	if (!mctl_long(r->cmd) || !prog.on || pthread_create(&t, NULL, mctl_job_main, &j) != 0)
		return ctl_exec(&(struct ctl_env){.st = st}, r->o->argc, r->o->argv, res);
	while (!atomic_load(&j.done)) {
		usleep(50000);
		mctl_progress_add(&prog, 0, 0);
	}
	pthread_join(t, NULL);
	mctl_progress_end(&prog);
	return j.rc;
}

static int mctl_offline(struct mctl_run *r)
{
	struct ctl_result res = {0};
	struct mmsb_store *st;
	uint64_t epoch = 0;
	int rc, ex;

	if (r->cmd->flags & (CTL_F_WRITE | CTL_F_STREAM)) {
		snprintf(r->msg, sizeof(r->msg), "no daemon is running on %s; mount it first (mmsbfs %s MOUNTPOINT)",
			 r->t.store, r->t.store);
		return mctl_error(r->msg, 1);
	}
	rc = mctl_open_offline(r->t.store, strcmp(r->cmd->name, "verify") == 0, &st, r->msg, sizeof(r->msg));
	if (rc < 0)
		return mctl_error(r->msg, 1);
	if (r->cmd->flags & CTL_F_CLIENT) {
		rc = ctl_resolve_epoch(st, r->o->argv[1], &epoch, r->msg, sizeof(r->msg));
		if (rc == 0)
			rc = mctl_export_store(st, epoch, r->o->argv[2], r->msg, sizeof(r->msg));
		mmsb_store_close(st);
		if (rc < 0)
			return mctl_error(r->msg, 1);
		printf("exported epoch %" PRIu64 " to %s\n", epoch, r->o->argv[2]);
		return 0;
	}
	rc = mctl_exec_offline(r, st, &res);
	snprintf(r->msg, sizeof(r->msg), "%s", res.msg);
	if (rc == 0)
		mctl_add_mount(r, &res.out);
	ex = mctl_show(r, res.out.p, rc, res.usage);
	ctl_result_free(&res);
	mmsb_store_close(st);
	return ex;
}

/* ---- main ---------------------------------------------------------------------------- */

/* Checks made before any connection: command known, export's arguments. */
static int mctl_precheck(struct mctl_run *r)
{
	int k, npos = 0;

	r->cmd = ctl_cmd_find(r->o->argv[0]);
	if (r->cmd == NULL) {
		fprintf(stderr, "mmsbctl: unknown command '%s': see 'mmsbctl --help'\n", r->o->argv[0]);
		return EXIT_USAGE;
	}
	if (!(r->cmd->flags & CTL_F_CLIENT))
		return 0;
	for (k = 1; k < r->o->argc; k++)
		npos += r->o->argv[k][0] != '-' || r->o->argv[k][1] == '\0';
	if (npos != 2 || r->o->argc != 3) {
		fprintf(stderr, "mmsbctl: export takes an epoch and a directory: usage: mmsbctl export E DIR\n");
		return EXIT_USAGE;
	}
	return 0;
}

static int mctl_main(struct mctl_opts *o)
{
	struct mctl_run r = {.o = o};
	int fd = -1, rc, ex;

	if (strcmp(o->argv[0], "help") == 0)
		return o->argc > 1 ? mctl_cmd_help(o->argv[1]) : (mctl_usage(stdout), 0);
	if (o->help)
		return mctl_cmd_help(o->argv[0]);
	ex = mctl_precheck(&r);
	if (ex != 0)
		return ex;
	rc = mctl_find_target(o->mount, o->store, &r.t, r.msg, sizeof(r.msg));
	if (rc < 0)
		return mctl_error(r.msg, rc == -EINVAL ? EXIT_USAGE : 1);
	mctl_relativize(&r);
	rc = mctl_connect(r.t.store, &fd, r.msg, sizeof(r.msg));
	if (rc == 0)
		ex = mctl_online(&r, fd);
	else if (rc == -ENOENT || rc == -ECONNREFUSED)
		ex = mctl_offline(&r);
	else
		ex = mctl_error(r.msg, 1);
	if (fd >= 0)
		close(fd);
	mctl_target_free(&r.t);
	return ex;
}

int main(int argc, char **argv)
{
	struct mctl_opts o = {0};
	int ex;

	if (mctl_parse(argc, argv, &o) < 0) {
		free(o.argv);
		return EXIT_USAGE;
	}
	if (o.version) {
		printf("mmsbctl %s\n", MMSB_VERSION_STRING);
		ex = 0;
	} else if (o.argc == 0) {
		mctl_usage(o.help ? stdout : stderr);
		ex = o.help ? 0 : EXIT_USAGE;
	} else {
		ex = mctl_main(&o);
	}
	free(o.argv);
	return ex;
}
