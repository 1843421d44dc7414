/* prop.c - dependency edges and propagation.
 *
 * SEMANTICS
 *
 * user.mmsb.deps names a page's parents (paths from the root, separated by
 * newlines or commas); user.mmsb.recompute names its operation: copy,
 * concat, xor, add|min|max|sum:<u8|u16|u32|u64|i32|i64|f32|f64> (semantics,
 * NaN and summation order: kernels/kern.h), or exec:COMMAND.  Setting deps resolves the paths to pages
 * in that state: the edges then follow the parents through renames, and the
 * attribute keeps the text as it was set.  A parent that is removed leaves
 * its dependents with a dangling edge: their next recompute fails.
 *
 * At commit, before the transaction is logged, every page derived from a page
 * whose bytes it changed (or whose deps/recompute it set) is recomputed, in
 * topological order, exactly once: a diamond's join is recomputed after both
 * of its parents.  The results are ordinary WRITE/TRUNCATE records of the
 * same transaction flagged MMSB_FRF_PROPAGATED (history shows source
 * "propagation"), holding only the bytes that changed.  Replay applies those
 * records; it never recomputes, so a replayed history is exactly the one
 * that was lived, exec: results included.
 *
 * A recompute that fails (a parent gone, sizes that do not fit, an exec: that
 * fails or times out) leaves the child unchanged and sets the read-only
 * user.mmsb.error to a one-line reason, in the same transaction; the next
 * successful recompute removes it.
 *
 * EXEC
 *
 * exec:COMMAND runs `/bin/sh -c 'COMMAND "$@"' sh FILE...` where each FILE
 * holds one parent's bytes at the committing epoch (a private temporary
 * copy: the epoch is not readable through the mount until it commits), with
 * MMSB_EPOCH and MMSB_CHILD in the environment; its standard output becomes
 * the child's bytes.  It runs as the daemon's user, only when the store was
 * opened with allow_exec, and is killed after exec_timeout_ms.  In a page
 * write (mmsb_page_write) it runs holding only the stripes of the pages the
 * propagation reads and writes: writers of those pages wait, nobody else.
 * In a transaction every writer waits (the transaction holds the gate) but
 * readers do not: they read the committed state (st->stable, store_int.h).
 * Either way COMMAND must not write to the pages involved.
 *
 * PAGE WRITES
 *
 * A page write's records are deferred (txn.c): the head changes only at its
 * commit.  Its propagation reads the pages it changed through overlays
 * (txn_page_view), private copies with its records applied.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "perm.h"
#include "prop.h"
#include "stats.h"
#include "store_int.h"

#define EXEC_OUT_MAX (256u << 20) /* bytes an exec: may produce */

extern char **environ;

static bool is_name(const char *name, const char *want)
{
	return strcmp(name, want) == 0;
}

int prop_parse(const char *val, size_t len, struct prop_spec *out)
{
	char name[32];

	while (len && (val[len - 1] == '\n' || val[len - 1] == ' ' || val[len - 1] == '\r'))
		len--;
	while (len && (*val == ' ' || *val == '\t')) {
		val++;
		len--;
	}
	memset(out, 0, sizeof(*out));
	if (len > 5 && memcmp(val, "exec:", 5) == 0) {
		out->exec = true;
		out->cmd = val + 5;
		out->cmd_len = len - 5;
		return memchr(out->cmd, '\0', out->cmd_len) ? -EINVAL : 0;
	}
	if (len == 0 || len >= sizeof(name) || memchr(val, '\0', len))
		return -EINVAL;
	memcpy(name, val, len);
	name[len] = '\0';
	return mmsb_kern_op_parse(name, &out->op, &out->elem);
}

/* Can the operation work on parents of these sizes? */
static bool sizes_fit(const struct prop_spec *sp, const uint64_t *len, size_t n)
{
	size_t sz[MMSB_DEPS_MAX], out, i;

	if (sp->exec)
		return n >= 1;
	for (i = 0; i < n; i++)
		sz[i] = (size_t)len[i];
	return n >= 1 && mmsb_kern_recompute_len(sp->op, sp->elem, sz, n, &out) == 0;
}

/* A set of node ids in visiting order (small open-addressing index). */
struct idset {
	uint64_t *v;	   /* members, in insertion order */
	size_t n, cap;
	size_t *slots;	   /* hash slots: index into v plus one (0 = empty) */
	size_t n_slots;
};

static uint64_t idhash(uint64_t id)
{
	return id * 0x9E3779B97F4A7C15ull;
}

/* Index of id in s->v, or -1. */
static ssize_t idset_find(const struct idset *s, uint64_t id)
{
	size_t i;

	if (!s->n_slots)
		return -1;
	for (i = idhash(id) & (s->n_slots - 1); s->slots[i]; i = (i + 1) & (s->n_slots - 1))
		if (s->v[s->slots[i] - 1] == id)
			return (ssize_t)(s->slots[i] - 1);
	return -1;
}

static bool idset_has(const struct idset *s, uint64_t id)
{
	return idset_find(s, id) >= 0;
}

static int idset_add(struct idset *s, uint64_t id)
{
	size_t i;

	if (idset_has(s, id))
		return 0;
	if ((s->n + 1) * 2 > s->n_slots) {
		size_t ns = s->n_slots ? s->n_slots * 2 : 64, k;
		size_t *sl = calloc(ns, sizeof(*sl));

		if (!sl)
			return -ENOMEM;
		free(s->slots);
		s->slots = sl;
		s->n_slots = ns;
		for (k = 0; k < s->n; k++) {
			for (i = idhash(s->v[k]) & (ns - 1); sl[i]; i = (i + 1) & (ns - 1))
				;
			sl[i] = k + 1;
		}
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		uint64_t *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = id;
	for (i = idhash(id) & (s->n_slots - 1); s->slots[i]; i = (i + 1) & (s->n_slots - 1))
		;
	s->slots[i] = s->n;
	return 0;
}

static void idset_free(struct idset *s)
{
	free(s->v);
	free(s->slots);
}

/* Does walking the parents from any of ids[0..n) reach target?  Every node
 * is visited at most once (a visited set shared by all the starts and an
 * explicit stack): O(nodes + edges) of the graph above ids whatever its
 * shape (a ladder of L levels costs 2L visits, not 2^L) or depth (no
 * recursion).  1 (*via: the index in ids), 0, or -ENOMEM. */
static int push(uint64_t **stack, size_t *sp, size_t *cap, uint64_t id)
{
	if (*sp == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		uint64_t *v = realloc(*stack, nc * sizeof(*v));

		if (!v)
			return -ENOMEM;
		*stack = v;
		*cap = nc;
	}
	(*stack)[(*sp)++] = id;
	return 0;
}

static int reaches(struct ns *ns, const uint64_t *ids, size_t n, uint64_t target, size_t *via)
{
	struct idset seen = {0};
	uint64_t *stack = NULL;
	size_t sp = 0, cap = 0, i;
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		if (idset_has(&seen, ids[i]))
			continue;
		rc = idset_add(&seen, ids[i]);
		sp = 0;
		if (rc == 0)
			rc = push(&stack, &sp, &cap, ids[i]);
		while (sp > 0 && rc == 0) {
			struct ns_node *x = ns_get(ns, stack[--sp]);
			uint16_t j;

			if (x && x->id == target) {
				*via = i;
				rc = 1;
				break;
			}
			for (j = 0; x && j < x->n_deps && rc == 0; j++) {
				if (idset_has(&seen, x->deps[j]))
					continue;
				rc = idset_add(&seen, x->deps[j]);
				if (rc == 0)
					rc = push(&stack, &sp, &cap, x->deps[j]);
			}
		}
	}
	free(stack);
	idset_free(&seen);
	return rc;
}

/* Refuse a dependency operation on n with rc: the reason ("RULE: PATH:
 * why") into t->why and the daemon log.  Returns rc. */
static int refuse(struct mmsb_txn *t, const struct ns_node *n, const char *rule, int rc, const char *fmt, ...)
	MMSB_PRINTF(5, 6);
static int refuse(struct mmsb_txn *t, const struct ns_node *n, const char *rule, int rc, const char *fmt, ...)
{
	char path[4096], why[256];
	va_list ap;

	if (ns_path(t->st->ns, n->id, path, sizeof(path)) < 0)
		snprintf(path, sizeof(path), "#%" PRIu64, n->id);
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(t->why, sizeof(t->why), "%s: %.120s: %s", rule, path[0] ? path : "/", why);
	mmsb_diag(&t->st->diag, MMSB_DIAG_NOTICE, "%s (%s)", t->why, strerror(-rc));
	return rc;
}

/* Refuse a deps value that did not resolve (rc from ns_deps_resolve). */
static int refuse_deps(struct mmsb_txn *t, const struct ns_node *n, int rc, const char *val,
		       const struct ns_deps_bad *b)
{
	int pl = b->len > 200 ? 200 : (int)b->len;
	const char *p = val + b->off;
	char deny[4096] = "";

	switch (rc) {
	case -ENOENT:
		return refuse(t, n, "deps", rc, "parent '%.*s' not found", pl, p);
	case -ENOTDIR:
		return refuse(t, n, "deps", rc, "parent '%.*s': a component of the path is not a directory", pl, p);
	case -EISDIR:
		return refuse(t, n, "deps", rc, "parent '%.*s' is a directory, not a page", pl, p);
	case -EACCES:
		if (ns_path(t->st->ns, b->deny, deny, sizeof(deny)) < 0)
			deny[0] = '\0';
		return refuse(t, n, "deps", rc, "parent '%.*s': permission denied: uid %u may not %s '/%.200s'", pl, p,
			      t->cred.uid, ns_get(t->st->ns, b->deny) && ns_get(t->st->ns, b->deny)->type == MMSB_T_DIR
						   ? "search"
						   : "read",
			      deny);
	case -EINVAL:
		if (b->len == 0)
			return refuse(t, n, "deps", rc, "no parent named");
		if (b->idx == MMSB_DEPS_MAX)
			return refuse(t, n, "deps", rc, "more than %u parents", MMSB_DEPS_MAX);
		return refuse(t, n, "deps", rc, "parent '%.*s' is not a page", pl, p);
	}
	return refuse(t, n, "deps", rc, "parent '%.*s': %s", pl, p, strerror(-rc));
}

/* Why a recompute value does not parse. */
static int refuse_op(struct mmsb_txn *t, const struct ns_node *n, const char *val, size_t len)
{
	const char *colon = memchr(val, ':', len);
	int vl = len > 64 ? 64 : (int)len;
	struct prop_spec sp;
	char probe[40];

	while (vl && (val[vl - 1] == '\n' || val[vl - 1] == ' '))
		vl--;
	if (colon && colon - val < 16) {
		snprintf(probe, sizeof(probe), "%.*s:u8", (int)(colon - val), val);
		if (prop_parse(probe, strlen(probe), &sp) == 0)
			return refuse(t, n, "recompute", -EINVAL, "%.*s: unknown element type", vl, val);
	}
	return refuse(t, n, "recompute", -EINVAL, "%.*s: unknown operation", vl, val);
}

/* May the caller read the parents n already has (setting recompute)? */
static int check_old_parents(struct mmsb_txn *t, struct ns_node *n)
{
	uint64_t deny = 0;
	uint16_t i;

	for (i = 0; t->has_cred && i < n->n_deps; i++) {
		struct ns_node *p = ns_get(t->st->ns, n->deps[i]);
		char path[4096];

		if (!p || perm_may_read(t->st->ns, p, &t->cred, &deny) == 0)
			continue;
		if (ns_path(t->st->ns, p->id, path, sizeof(path)) < 0)
			snprintf(path, sizeof(path), "#%" PRIu64, p->id);
		return refuse(t, n, "recompute", -EACCES, "parent '%.200s': permission denied for uid %u", path,
			      t->cred.uid);
	}
	return 0;
}

int prop_check_xattr(struct mmsb_txn *t, struct ns_node *n, const char *name, const void *value, size_t len)
{
	struct ns *ns = t->st->ns;
	const struct ns_xattr *ox;
	uint64_t ids[MMSB_DEPS_MAX], lens[MMSB_DEPS_MAX];
	struct ns_deps_bad bad = {0};
	bool deps = is_name(name, MMSB_XATTR_DEPS);
	const char *rule = deps ? "deps" : "recompute";
	struct prop_spec sp;
	size_t i, via = 0;
	ssize_t nd;
	int rc;

	if (is_name(name, MMSB_XATTR_ERROR))
		return -EPERM; /* only recomputes set it */
	if (!deps && !is_name(name, MMSB_XATTR_RECOMPUTE))
		return 0;
	if (n->type != MMSB_T_PAGE)
		return refuse(t, n, rule, n->type == MMSB_T_DIR ? -EISDIR : -EINVAL, "only pages can be derived");
	if (!value)
		return 0; /* removing either just stops recomputing */
	if (deps) {
		nd = ns_deps_resolve(ns, value, len, ids, MMSB_DEPS_MAX, &bad, t->has_cred ? &t->cred : NULL);
		if (nd < 0)
			return refuse_deps(t, n, (int)nd, value, &bad);
		rc = reaches(ns, ids, (size_t)nd, n->id, &via);
		if (rc < 0)
			return rc;
		if (rc > 0) {
			/* locate path number via: resolving with room for via ids
			 * stops there, with bad saying where it lies */
			ns_deps_resolve(ns, value, len, ids, via, &bad, NULL);
			return refuse(t, n, "deps", -ELOOP, "parent '%.*s' depends on this page (a cycle)",
				      bad.len > 200 ? 200 : (int)bad.len, (const char *)value + bad.off);
		}
		ox = ns_xattr_find(n, MMSB_XATTR_RECOMPUTE, strlen(MMSB_XATTR_RECOMPUTE));
		if (!ox || prop_parse((const char *)ox->value, ox->len, &sp) < 0)
			return 0;
	} else {
		if (prop_parse(value, len, &sp) < 0)
			return refuse_op(t, n, value, len);
		if (sp.exec && !t->st->o.allow_exec)
			return refuse(t, n, "recompute", -EPERM, "exec: operations are not allowed on this mount");
		rc = check_old_parents(t, n);
		if (rc < 0)
			return rc;
		nd = n->n_deps;
		if (nd) /* n->deps is NULL without edges */
			memcpy(ids, n->deps, (size_t)nd * sizeof(*ids));
	}
	for (i = 0; i < (size_t)nd; i++) {
		struct ns_node *p = ns_get(ns, ids[i]);

		if (!p)
			return 0; /* a dangling edge: reported at recompute time */
		lens[i] = p->size;
	}
	if (nd == 0 || sizes_fit(&sp, lens, (size_t)nd))
		return 0;
	return refuse(t, n, rule, -EINVAL, "parent sizes do not fit the operation");
}

/* ---- exec: ------------------------------------------------------------------------- */

struct exec_job {
	struct mmsb_store *st;
	const struct prop_spec *sp;
	const struct ns_node *child;
	const uint8_t *const *in;
	const uint64_t *len;
	size_t n;
	uint64_t epoch;
	char *err;
	size_t errcap;
};

static int write_file(const char *path, const uint8_t *p, uint64_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), rc = 0;

	if (fd < 0)
		return -errno;
	while (n > 0 && rc == 0) {
		ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);

		if (w < 0 && errno != EINTR)
			rc = -errno;
		else if (w > 0) {
			p += w;
			n -= (uint64_t)w;
		}
	}
	close(fd);
	return rc;
}

/* Read the child's stdout (and its stderr's first line) until it exits or
 * the deadline passes.  Returns 0, -ETIMEDOUT, -EFBIG, -ENOMEM. */
static int exec_collect(struct exec_job *j, int out_fd, int err_fd, struct mmsb_buf *out, char *first, size_t fcap)
{
	uint64_t deadline = mmsb_now_ns() + (uint64_t)j->st->o.exec_timeout_ms * 1000000u;
	size_t flen = 0;
	int open_fds = 2;

	first[0] = '\0';
	while (open_fds) {
		struct pollfd pf[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
		uint64_t now = mmsb_now_ns();
		int k;

		if (now >= deadline)
			return -ETIMEDOUT;
		if (poll(pf, 2, (int)((deadline - now) / 1000000u) + 1) < 0 && errno != EINTR)
			return -errno;
		for (k = 0; k < 2; k++) {
			char tmp[65536];
			ssize_t r;

			if (pf[k].fd < 0 || !(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(pf[k].fd, tmp, sizeof(tmp));
			if (r <= 0) {
				if (k == 0)
					out_fd = -1;
				else
					err_fd = -1;
				open_fds--;
				continue;
			}
			if (k == 0) {
				if (out->len + (size_t)r > EXEC_OUT_MAX)
					return -EFBIG;
				if (mmsb_buf_put(out, tmp, (size_t)r) < 0)
					return -ENOMEM;
			} else if (flen + 1 < fcap) {
				size_t c = (size_t)r < fcap - 1 - flen ? (size_t)r : fcap - 1 - flen;

				memcpy(first + flen, tmp, c);
				flen += c;
				first[flen] = '\0';
			}
		}
	}
	first[strcspn(first, "\n")] = '\0';
	return 0;
}

static int exec_run(struct exec_job *j, const char *dir, char **files, struct mmsb_buf *out)
{
	char *cmd = malloc(j->sp->cmd_len + 8), env_epoch[40], env_child[4200], first[200], **argv, *envp[64];
	int po[2] = {-1, -1}, pe[2] = {-1, -1}, rc, status = 0;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	size_t i, ne = 0;
	pid_t pid = -1;

	argv = calloc(j->n + 5, sizeof(*argv));
	if (!cmd || !argv) {
		free(cmd);
		free(argv);
		return -ENOMEM;
	}
	memcpy(cmd, j->sp->cmd, j->sp->cmd_len);
	strcpy(cmd + j->sp->cmd_len, " \"$@\"");
	argv[0] = "sh";
	argv[1] = "-c";
	argv[2] = cmd;
	argv[3] = "sh";
	for (i = 0; i < j->n; i++)
		argv[4 + i] = files[i];
	snprintf(env_epoch, sizeof(env_epoch), "MMSB_EPOCH=%" PRIu64, j->epoch);
	strcpy(env_child, "MMSB_CHILD=");
	if (ns_path(j->st->ns, j->child->id, env_child + 11, sizeof(env_child) - 11) < 0)
		env_child[11] = '\0';
	for (i = 0; environ[i] && ne < MMSB_ARRAY_SIZE(envp) - 3; i++)
		if (strncmp(environ[i], "PATH=", 5) == 0 || strncmp(environ[i], "HOME=", 5) == 0 ||
		    strncmp(environ[i], "LANG=", 5) == 0)
			envp[ne++] = environ[i];
	envp[ne++] = env_epoch;
	envp[ne++] = env_child;
	envp[ne] = NULL;
	rc = pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0 ? -errno : 0;
	if (rc == 0) {
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
		posix_spawn_file_actions_adddup2(&fa, po[1], 1);
		posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
		posix_spawn_file_actions_addchdir_np(&fa, dir);
		posix_spawnattr_init(&at);
		posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
		posix_spawnattr_setpgroup(&at, 0);
		rc = -posix_spawn(&pid, "/bin/sh", &fa, &at, argv, envp);
		posix_spawn_file_actions_destroy(&fa);
		posix_spawnattr_destroy(&at);
		close(po[1]);
		close(pe[1]);
	}
	if (rc == 0) {
		rc = exec_collect(j, po[0], pe[0], out, first, sizeof(first));
		if (rc < 0)
			kill(-pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	if (po[0] >= 0)
		close(po[0]);
	if (pe[0] >= 0)
		close(pe[0]);
	if (rc == -ETIMEDOUT)
		snprintf(j->err, j->errcap, "exec: timed out after %u ms", j->st->o.exec_timeout_ms);
	else if (rc == -EFBIG)
		snprintf(j->err, j->errcap, "exec: output larger than %u bytes", EXEC_OUT_MAX);
	else if (rc < 0)
		snprintf(j->err, j->errcap, "exec: %s", strerror(-rc));
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(j->err, j->errcap, "exec: %s %d%s%s", WIFEXITED(status) ? "exit status" : "killed by signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), first[0] ? ": " : "", first);
		rc = -ECHILD;
	}
	free(cmd);
	free(argv);
	return rc;
}

static int prop_exec(struct exec_job *j, struct mmsb_buf *out)
{
	const char *tmp = getenv("TMPDIR");
	char dir[512], **files = calloc(j->n, sizeof(*files));
	size_t i;
	int rc = 0;

	out->len = 0;
	snprintf(dir, sizeof(dir), "%s/mmsb-exec-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!files || !mkdtemp(dir)) {
		free(files);
		snprintf(j->err, j->errcap, "exec: cannot make a temporary directory");
		return -EIO;
	}
	for (i = 0; i < j->n && rc == 0; i++) {
		files[i] = malloc(strlen(dir) + 32);
		if (!files[i]) {
			rc = -ENOMEM;
			break;
		}
		sprintf(files[i], "%s/parent-%zu", dir, i + 1);
		rc = write_file(files[i], j->in[i], j->len[i]);
	}
	if (rc < 0)
		snprintf(j->err, j->errcap, "exec: cannot stage the parents: %s", strerror(-rc));
	else
		rc = exec_run(j, dir, files, out);
	for (i = 0; i < j->n; i++) {
		if (files[i])
			unlink(files[i]);
		free(files[i]);
	}
	free(files);
	rmdir(dir);
	return rc;
}

/* ---- running propagation ----------------------------------------------------------------- */

static int set_error(struct mmsb_txn *t, struct ns_node *c, const char *msg);

/* Recompute child c from its parents, as records of t. */
/* The parents of a recompute as the operation will read them. */
struct parents {
	const uint8_t *in[MMSB_DEPS_MAX]; /* host bytes, or device bytes when dev */
	uint64_t len[MMSB_DEPS_MAX];
	size_t sz[MMSB_DEPS_MAX];
	struct mmsb_buf *tmp;		  /* GPU parents copied out (host side only) */
	uint16_t n;
	const struct mmsb_kern_ops *dev;  /* all parents and the child on this device */
};

/* Built-in operation on the GPU: output into device memory, then copied out
 * (the log needs the bytes that changed). */
static int compute_dev(struct mmsb_txn *t, const struct prop_spec *sp, struct parents *pa, size_t out_len)
{
	const struct mmsb_kern_ops *k = pa->dev;
	void *out = NULL;
	int rc = out_len ? k->page_alloc(out_len, &out) : 0;

	if (rc == 0)
		rc = k->recompute(sp->op, sp->elem, out, out_len, (const void *const *)pa->in, pa->sz, pa->n);
	if (rc == 0 && out_len)
		rc = k->copy_out(t->prop_out.p, out, out_len);
	k->page_free(out);
	return rc;
}

static int compute(struct mmsb_txn *t, const struct ns_node *c, const struct prop_spec *sp, struct parents *pa,
		   char *err, size_t errcap)
{
	size_t out_len;
	int rc;

	if (sp->exec) {
		struct exec_job j = {t->st, sp, c, pa->in, pa->len, pa->n, t->epoch, err, errcap};

		if (!t->st->o.allow_exec) {
			snprintf(err, errcap, "exec: recompute operations are not allowed on this mount");
			return -EPERM;
		}
		if (!t->stable)
			return prop_exec(&j, &t->prop_out);
		/* readers read st->stable meanwhile: the command may take its
		 * time without holding them up.  Nothing changes the head
		 * but mmsb_ref/mmsb_unref (the gate keeps every writer out),
		 * and the parents' buffers stay as they are */
		pthread_rwlock_unlock(&t->st->lock);
		rc = prop_exec(&j, &t->prop_out);
		pthread_rwlock_wrlock(&t->st->lock);
		return rc;
	}
	rc = mmsb_kern_recompute_len(sp->op, sp->elem, pa->sz, pa->n, &out_len);
	/* the output is built in memory, then written to the child: both must
	 * fit the memory budget (sparse parents make this reachable cheaply) */
	if (rc == 0 && out_len && (rc = mmsb_mem_charge(&t->st->mem, 2 * (uint64_t)out_len)) == 0)
		mmsb_mem_uncharge(&t->st->mem, 2 * (uint64_t)out_len);
	if (rc == -ENOSPC) {
		snprintf(err, errcap, "output of %zu bytes does not fit max_memory", out_len);
		return rc;
	}
	t->prop_out.len = 0;
	if (rc == 0)
		rc = mmsb_buf_reserve(&t->prop_out, out_len + 1);
	if (rc == 0 && pa->dev)
		rc = compute_dev(t, sp, pa, out_len);
	else if (rc == 0)
		rc = t->st->kern->recompute(sp->op, sp->elem, t->prop_out.p, out_len, (const void *const *)pa->in,
					    pa->sz, pa->n);
	if (rc == 0)
		t->prop_out.len = out_len;
	if (rc == -EINVAL)
		snprintf(err, errcap, "parent sizes do not fit the operation");
	return rc;
}

/* Gather c's parents.  When c and every parent are GPU pages of one device
 * the operation runs there; otherwise on the CPU, with GPU parents copied
 * out.  Returns 0, -ENOENT (a parent is gone: err says which), -ENOMEM, -EIO. */
/* The credentials of c's owner: uid, gid and the supplementary groups the
 * store's groups_fn gives (cached for the transaction).  NULL on -ENOMEM. */
static const struct mmsb_cred *owner_cred(struct mmsb_txn *t, const struct ns_node *c)
{
	mmsb_groups_fn fn = t->st->o.groups_fn ? t->st->o.groups_fn : perm_groups_default;
	int n;

	if (t->owner_ok && t->owner.uid == c->uid && t->owner.gid == c->gid)
		return &t->owner;
	t->owner = (struct mmsb_cred){c->uid, c->gid, 0, t->owner_groups};
	t->owner_ok = true;
	if (c->uid == 0)
		return &t->owner; /* passes every check: no lookup */
	for (;;) {
		n = fn(t->st->o.groups_arg, c->uid, c->gid, t->owner_groups, t->cap_owner_groups);
		if (n < 0 || (size_t)n <= t->cap_owner_groups)
			break;
		uint32_t *g = realloc(t->owner_groups, (size_t)n * sizeof(*g));

		if (!g) {
			t->owner_ok = false;
			return NULL;
		}
		t->owner_groups = g;
		t->cap_owner_groups = (size_t)n;
	}
	/* a failed lookup counts no supplementary group: it can only deny */
	t->owner.n_groups = n > 0 ? (size_t)n : 0;
	t->owner.groups = t->owner_groups;
	return &t->owner;
}

/* May c's owner still read parent p?  -EACCES with the reason in err. */
static int parent_readable(struct mmsb_txn *t, const struct ns_node *c, const struct ns_node *p, uint16_t i,
			   char *err, size_t errcap)
{
	const struct mmsb_cred *who = owner_cred(t, c);
	char path[4096], deny[4096];
	uint64_t d = 0;

	if (!who)
		return -ENOMEM;
	if (perm_may_read(t->st->ns, p, who, &d) == 0)
		return 0;
	if (ns_path(t->st->ns, p->id, path, sizeof(path)) < 0)
		path[0] = '\0';
	if (ns_path(t->st->ns, d, deny, sizeof(deny)) < 0)
		deny[0] = '\0';
	snprintf(err, errcap, "parent %u of %u ('%.80s'): permission denied: owner uid %u may not %s '/%.80s'", i + 1,
		 c->n_deps, path, c->uid, d == p->id ? "read" : "search", deny);
	return -EACCES;
}

static int gather(struct mmsb_txn *t, const struct ns_node *c, bool exec, struct parents *pa, char *err,
		  size_t errcap)
{
	static const uint8_t empty[1];
	struct ns *ns = t->st->ns;
	const struct pbuf *pb;
	uint64_t size;
	uint16_t i;
	int rc = 0;

	pa->n = c->n_deps;
	pa->dev = exec ? NULL : c->dev;
	for (i = 0; i < c->n_deps; i++) {
		struct ns_node *p = ns_get(ns, c->deps[i]);

		if (!p || p->orphan || p->type != MMSB_T_PAGE) {
			snprintf(err, errcap, "parent %u of %u (node %" PRIu64 ") was removed", i + 1, c->n_deps,
				 c->deps[i]);
			return -ENOENT;
		}
		rc = parent_readable(t, c, p, i, err, errcap);
		if (rc < 0)
			return rc;
		txn_page_view(t, p, &pb, &size); /* a page write's own changes included */
		pa->len[i] = size;
		pa->sz[i] = (size_t)size;
		if (size && (!pb->k || pb->k != c->dev))
			pa->dev = NULL;
	}
	for (i = 0; i < c->n_deps && rc == 0; i++) {
		txn_page_view(t, ns_get(ns, c->deps[i]), &pb, &size);
		pa->in[i] = size ? pb->data : empty;
		if (pa->dev || !size || !pb->k)
			continue;
		if (!pa->tmp && !(pa->tmp = calloc(c->n_deps, sizeof(*pa->tmp))))
			return -ENOMEM;
		pa->in[i] = pbuf_view(pb, 0, size, &pa->tmp[i], &rc);
	}
	return rc;
}

static void parents_free(struct parents *pa)
{
	uint16_t i;

	for (i = 0; pa->tmp && i < pa->n; i++)
		mmsb_buf_free(&pa->tmp[i]);
	free(pa->tmp);
	free(pa);
}

/* Recompute child c from its parents, as records of t. */
static int recompute_one(struct mmsb_txn *t, struct ns_node *c)
{
	const struct ns_xattr *rx = ns_xattr_find(c, MMSB_XATTR_RECOMPUTE, strlen(MMSB_XATTR_RECOMPUTE));
	struct parents *pa;
	uint64_t id = c->id;
	char err[256] = "";
	struct prop_spec sp;
	int rc;

	if (!rx || !c->n_deps)
		return 0;
	if (prop_parse((const char *)rx->value, rx->len, &sp) < 0)
		return set_error(t, c, "unknown recompute operation");
	pa = calloc(1, sizeof(*pa));
	if (!pa)
		return -ENOMEM;
	rc = gather(t, c, sp.exec, pa, err, sizeof(err));
	if (rc == 0)
		rc = compute(t, c, &sp, pa, err, sizeof(err));
	parents_free(pa);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		return set_error(t, c, err[0] ? err : strerror(-rc));
	t->rec_flags = MMSB_FRF_PROPAGATED;
	rc = t->prop_out.len ? (int)mmsb_txn_write(t, id, 0, t->prop_out.p, t->prop_out.len) : 0;
	c = ns_get(t->st->ns, id);
	if (rc >= 0 && txn_page_size(t, c) > t->prop_out.len)
		rc = mmsb_txn_truncate(t, id, t->prop_out.len);
	if (rc >= 0 && ns_xattr_find(c, MMSB_XATTR_ERROR, strlen(MMSB_XATTR_ERROR)))
		rc = mmsb_txn_removexattr(t, id, MMSB_XATTR_ERROR);
	t->rec_flags = 0;
	return rc < 0 ? rc : 0;
}

static int set_error(struct mmsb_txn *t, struct ns_node *c, const char *msg)
{
	int rc;

	char path[4096];

	if (ns_path(t->st->ns, c->id, path, sizeof(path)) < 0)
		snprintf(path, sizeof(path), "#%" PRIu64, c->id);
	mmsb_diag(&t->st->diag, MMSB_DIAG_NOTICE, "recompute: %s: epoch %" PRIu64 ": %s (child unchanged)", path,
		  t->epoch, msg);
	t->rec_flags = MMSB_FRF_PROPAGATED;
	rc = txn_setxattr_raw(t, c->id, MMSB_XATTR_ERROR, msg, strlen(msg), 0);
	t->rec_flags = 0;
	return rc == -ENOMEM ? rc : 0;
}

/* Seeds: pages whose bytes t changed, and pages t rewired. */
static int collect(struct mmsb_txn *t, struct idset *all, struct idset *redo)
{
	struct ns *ns = t->st->ns;
	size_t i, k;
	int rc = 0;

	for (i = 0; i < t->n_changes && rc == 0; i++)
		if (t->changes[i].kind == MMSB_CH_WRITE || t->changes[i].kind == MMSB_CH_TRUNCATE)
			rc = idset_add(all, t->changes[i].id);
	for (i = 0; i < t->n_rewired && rc == 0; i++) {
		rc = idset_add(all, t->rewired[i]);
		if (rc == 0)
			rc = idset_add(redo, t->rewired[i]);
	}
	/* everything downstream (the set grows while we walk it) */
	for (k = 0; k < all->n && rc == 0; k++) {
		struct ns_node *n = ns_get(ns, all->v[k]);
		uint32_t j;

		for (j = 0; n && j < n->n_kids && rc == 0; j++) {
			rc = idset_add(all, n->kids[j]);
			if (rc == 0)
				rc = idset_add(redo, n->kids[j]);
		}
	}
	return rc;
}

int prop_run(struct mmsb_txn *t)
{
	struct ns *ns = t->st->ns;
	struct idset all = {0}, redo = {0};
	uint32_t *indeg = NULL;
	uint64_t *queue = NULL;
	size_t *seen = NULL;
	size_t i, head = 0, tail = 0;
	int rc = collect(t, &all, &redo);

	if (rc < 0 || redo.n == 0)
		goto out;
	indeg = calloc(all.n, sizeof(*indeg));
	queue = malloc(all.n * sizeof(*queue));
	seen = calloc(all.n, sizeof(*seen));
	if (!indeg || !queue || !seen) {
		rc = -ENOMEM;
		goto out;
	}
	/* Kahn's algorithm over the affected subgraph: indeg counts the
	 * distinct parents in it (a kids list holds each child once); seen[x]
	 * = i + 1 marks parent x as counted for node i, so a page naming the
	 * same parent many times costs one pass, not a quadratic one */
	for (i = 0; i < all.n; i++) {
		struct ns_node *n = ns_get(ns, all.v[i]);
		uint16_t j;

		for (j = 0; n && j < n->n_deps; j++) {
			ssize_t x = idset_find(&all, n->deps[j]);

			if (x >= 0 && seen[x] != i + 1) {
				seen[x] = i + 1;
				indeg[i]++;
			}
		}
		if (!indeg[i])
			queue[tail++] = all.v[i];
	}
	while (head < tail && rc == 0) {
		uint64_t id = queue[head++];
		struct ns_node *n = ns_get(ns, id);
		uint32_t j;

		if (n && idset_has(&redo, id))
			rc = recompute_one(t, n);
		n = ns_get(ns, id);
		for (j = 0; n && j < n->n_kids; j++) {
			ssize_t x = idset_find(&all, n->kids[j]);

			if (x >= 0 && indeg[x] && --indeg[x] == 0)
				queue[tail++] = all.v[x];
		}
	}
out:
	free(indeg);
	free(queue);
	free(seen);
	idset_free(&all);
	idset_free(&redo);
	return rc;
}
