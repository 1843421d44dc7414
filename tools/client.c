/* client.c - finding the daemon, the socket protocol, the offline store.
 *
 * Finding the daemon.  mmsbfs mounts with fsname=<absolute store path> and
 * subtype=mmsbfs, so /proc/self/mountinfo lists each mount as
 *   ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - fuse.mmsbfs STORE SUPEROPTS
 * with spaces, tabs, newlines and backslashes written as octal escapes.
 * The control socket is STORE/ctl.sock (protocol: fusefs/ctl.h).
 *
 * A socket path longer than sun_path is reached through
 * /proc/self/fd/N/ctl.sock, N an O_PATH descriptor of the store directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mmsbctl.h"

#define MCTL_FSTYPE "fuse.mmsbfs"
#define MCTL_SOCK_NAME "ctl.sock"
#define MCTL_MOUNTS_MAX 64u /* mmsbfs mounts considered */

/* ---- /proc/self/mountinfo ---------------------------------------------------- */

/* One mmsbfs mount. */
struct mctl_mount {
	char *mnt;   /* mount point */
	char *store; /* mount source: the store path */
};

/* Decode mountinfo's octal escapes in place. */
static void mctl_unoctal(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
		    s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* Parse one mountinfo line; true (and *m filled) for an mmsbfs mount. */
static bool mctl_parse_mountinfo(char *line, struct mctl_mount *m)
{
	char *f[8], *sep, *save = NULL, *tok;
	int n = 0;

	sep = strstr(line, " - ");
	if (sep == NULL)
		return false;
	*sep = '\0';
	for (tok = strtok_r(line, " ", &save); tok && n < 5; tok = strtok_r(NULL, " ", &save))
		f[n++] = tok;
	if (n < 5)
		return false;
	m->mnt = f[4];
	save = NULL;
	tok = strtok_r(sep + 3, " \n", &save);
	if (tok == NULL || strcmp(tok, MCTL_FSTYPE) != 0)
		return false;
	m->store = strtok_r(NULL, " \n", &save);
	if (m->store == NULL)
		return false;
	mctl_unoctal(m->mnt);
	mctl_unoctal(m->store);
	return true;
}

/* The mmsbfs mounts, strings strdup'd.  Returns the count or -errno. */
static int mctl_list_mounts(struct mctl_mount *out, size_t cap)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t lcap = 0, n = 0;
	struct mctl_mount m;
	int rc = 0;

	if (f == NULL)
		return -errno;
	while (n < cap && getline(&line, &lcap, f) > 0) {
		if (!mctl_parse_mountinfo(line, &m))
			continue;
		out[n].mnt = strdup(m.mnt);
		out[n].store = strdup(m.store);
		if (out[n].mnt == NULL || out[n].store == NULL) {
			rc = -ENOMEM;
			n++;
			break;
		}
		n++;
	}
	free(line);
	fclose(f);
	if (rc < 0) {
		while (n--) {
			free(out[n].mnt);
			free(out[n].store);
		}
		return rc;
	}
	return (int)n;
}

/* Length of the mount point prefix of path, or 0 when path is not in it. */
static size_t mctl_prefix(const char *mnt, const char *path)
{
	size_t len = strlen(mnt);

	if (strcmp(mnt, "/") == 0)
		return 1;
	if (strncmp(path, mnt, len) == 0 && (path[len] == '\0' || path[len] == '/'))
		return len;
	return 0;
}

/* The mount holding path (longest prefix); -1 if none.  Of mounts stacked
 * on one mount point, the last in mountinfo is the one on top, the one a
 * path reaches: ties go to the later entry. */
static int mctl_mount_of(const struct mctl_mount *m, int n, const char *path)
{
	size_t best = 0, len;
	int i, at = -1;

	for (i = 0; i < n; i++) {
		len = mctl_prefix(m[i].mnt, path);
		if (len > 0 && len >= best) {
			best = len;
			at = i;
		}
	}
	return at;
}

/* An absolute form of dir: realpath, else cwd + dir (a FUSE mount that is
 * not ours cannot be stat'ed, but its name still matches mountinfo). */
static char *mctl_abspath(const char *dir)
{
	char *p = realpath(dir, NULL), cwd[PATH_MAX];
	size_t len;

	if (p != NULL || dir[0] == '/')
		return p != NULL ? p : strdup(dir);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return NULL;
	len = strlen(cwd) + strlen(dir) + 2;
	p = malloc(len);
	if (p != NULL)
		snprintf(p, len, "%s/%s", cwd, dir);
	return p;
}

static int mctl_pick(struct mctl_mount *m, int n, const char *mount_opt, const char *store_opt, struct mctl_target *t,
		     char *msg, size_t cap)
{
	char cwd[PATH_MAX], *abs = NULL;
	int at = -1, i;

	if (store_opt != NULL) {
		t->store = realpath(store_opt, NULL);
		if (t->store == NULL)
			return snprintf(msg, cap, "%s: %s: give the store directory of an mmsbfs mount", store_opt,
					strerror(errno)),
			       -ENOENT;
		for (i = 0; i < n && at < 0; i++)
			if (strcmp(m[i].store, t->store) == 0)
				at = i;
	} else if (mount_opt != NULL) {
		abs = mctl_abspath(mount_opt);
		at = abs ? mctl_mount_of(m, n, abs) : -1;
		if (at < 0)
			snprintf(msg, cap, "%s is not in an mmsbfs mount: give its mount point (see 'mount -t %s')",
				 mount_opt, MCTL_FSTYPE);
		free(abs);
		if (at < 0)
			return -ENOENT;
	} else {
		if (getcwd(cwd, sizeof(cwd)) != NULL)
			at = mctl_mount_of(m, n, cwd);
		if (at < 0 && n == 1)
			at = 0;
		if (at < 0 && n == 0)
			return snprintf(msg, cap, "no mmsbfs mount found: mount a store with mmsbfs, or use --store DIR"),
			       -ENOENT;
		if (at < 0)
			return snprintf(msg, cap, "%d mmsbfs mounts: say which with --mount DIR or --store DIR", n),
			       -EINVAL;
	}
	if (at >= 0) {
		t->mount = strdup(m[at].mnt);
		if (t->store == NULL)
			t->store = strdup(m[at].store);
	}
	return t->store == NULL ? -ENOMEM : 0;
}

int mctl_find_target(const char *mount_opt, const char *store_opt, struct mctl_target *t, char *msg, size_t cap)
{
	struct mctl_mount m[MCTL_MOUNTS_MAX];
	int n = mctl_list_mounts(m, MCTL_MOUNTS_MAX), rc, i;

	t->mount = t->store = NULL;
	if (n < 0) {
		n = 0; /* no /proc: only --store can work */
		if (store_opt == NULL)
			return snprintf(msg, cap, "cannot read /proc/self/mountinfo: %s: use --store DIR", strerror(-n)),
			       -ENOENT;
	}
	rc = mctl_pick(m, n, mount_opt, store_opt, t, msg, cap);
	for (i = 0; i < n; i++) {
		free(m[i].mnt);
		free(m[i].store);
	}
	if (rc < 0)
		mctl_target_free(t);
	return rc;
}

void mctl_target_free(struct mctl_target *t)
{
	free(t->mount);
	free(t->store);
	t->mount = t->store = NULL;
}

/* ---- the socket ---------------------------------------------------------------- */

/* Explain a refused connection: who owns the socket (or the store). */
static int mctl_eacces(const char *store, const char *path, char *msg, size_t cap)
{
	struct stat sb;

	if (stat(path, &sb) < 0 && stat(store, &sb) < 0)
		return snprintf(msg, cap, "permission denied: cannot reach %s: run mmsbctl as the daemon's user or root",
				path),
		       -EACCES;
	return snprintf(msg, cap, "permission denied: the socket belongs to uid %u: run mmsbctl as that user or root",
			(unsigned)sb.st_uid),
	       -EACCES;
}

int mctl_connect(const char *store, int *fd, char *msg, size_t cap)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[PATH_MAX + 16];
	int s, dfd = -1, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", store, MCTL_SOCK_NAME);
	if (strlen(path) < sizeof(sa.sun_path)) {
		memcpy(sa.sun_path, path, strlen(path) + 1);
	} else {
		dfd = open(store, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			rc = -errno;
		snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dfd, MCTL_SOCK_NAME);
	}
	s = rc < 0 ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (rc == 0 && s < 0)
		rc = -errno;
	if (rc == 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		rc = -errno;
	if (dfd >= 0)
		close(dfd);
	if (rc == 0) {
		*fd = s;
		return 0;
	}
	if (s >= 0)
		close(s);
	if (rc == -EACCES || rc == -EPERM)
		return mctl_eacces(store, path, msg, cap);
	snprintf(msg, cap, "cannot connect to %s: %s", path, strerror(-rc));
	return rc;
}

static int mctl_write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int mctl_send(int fd, int argc, char *const *argv)
{
	struct ctl_buf b = {0};
	int i, rc = 0;

	for (i = 0; rc == 0 && i < argc; i++) {
		if (i > 0)
			rc = ctl_buf_puts(&b, "\t");
		if (rc == 0)
			rc = ctl_escape(&b, argv[i]);
	}
	if (rc == 0)
		rc = ctl_buf_puts(&b, "\n");
	if (rc == 0 && b.len > CTL_REQUEST_MAX)
		rc = -E2BIG;
	if (rc == 0)
		rc = mctl_write_all(fd, b.p, b.len);
	ctl_buf_free(&b);
	return rc;
}

int mctl_read_line(struct mctl_reader *r, char **line)
{
	char tmp[65536], *nl;
	ssize_t n;
	int rc;

	for (;;) {
		nl = r->buf.len > r->off ? memchr(r->buf.p + r->off, '\n', r->buf.len - r->off) : NULL;
		if (nl != NULL) {
			*nl = '\0';
			*line = r->buf.p + r->off;
			r->off = (size_t)(nl - r->buf.p) + 1;
			return 0;
		}
		if (r->off > 0) { /* compact: keep only the unread part */
			memmove(r->buf.p, r->buf.p + r->off, r->buf.len - r->off);
			r->buf.len -= r->off;
			r->off = 0;
		}
		if (r->prog != NULL && r->prog->on) {
			struct pollfd pfd = {.fd = r->fd, .events = POLLIN};

			mctl_progress_add(r->prog, 0, 0); /* redraws when due */
			if (poll(&pfd, 1, 100) == 0)
				continue;
		}
		n = recv(r->fd, tmp, sizeof(tmp), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		rc = ctl_buf_put(&r->buf, tmp, (size_t)n);
		if (rc < 0)
			return rc;
	}
}

int mctl_read_response(struct mctl_reader *r, struct ctl_buf *out, char *msg, size_t cap)
{
	char *line, *f[3];
	int rc, n;

	for (;;) {
		rc = mctl_read_line(r, &line);
		if (rc < 0)
			return snprintf(msg, cap, "the daemon closed the connection before answering: see its log"),
			       -EPROTO;
		if (strcmp(line, "OK") == 0)
			return 0;
		if (strncmp(line, "ERR\t", 4) == 0) {
			n = ctl_split(line, f, 3);
			if (n < 3)
				return snprintf(msg, cap, "malformed answer from the daemon"), -EPROTO;
			snprintf(msg, cap, "%s", f[2]);
			return -ctl_errno_value(f[1]);
		}
		rc = ctl_buf_puts(out, line);
		if (rc == 0)
			rc = ctl_buf_puts(out, "\n");
		if (rc < 0)
			return snprintf(msg, cap, "out of memory"), rc;
	}
}

/* ---- offline ---------------------------------------------------------------------- */

static void mctl_offline_diag(void *arg, int level, const char *msg)
{
	fprintf(stderr, "mmsbctl: store: %s\n", msg);
}

int mctl_open_offline(const char *store, bool quiet, struct mmsb_store **out, char *msg, size_t cap)
{
	struct mmsb_store_opts o;
	int rc;

	mmsb_store_opts_init(&o);
	o.create = false;
	o.read_only = true;
	o.ckpt_at_close = false;
	o.diag_level = quiet ? 0 : MMSB_DIAG_WARNING;
	o.diag_fn = mctl_offline_diag;
	rc = mmsb_store_open(store, &o, out);
	if (rc == -ENOENT)
		snprintf(msg, cap, "%s: no MMSB store there: check the path", store);
	else if (rc == -EINVAL)
		snprintf(msg, cap, "%s: not an MMSB store: check the path", store);
	else if (rc == -EACCES || rc == -EPERM)
		snprintf(msg, cap, "%s: permission denied: run mmsbctl as the store's owner or root", store);
	else if (rc < 0)
		snprintf(msg, cap, "%s: cannot open the store read-only: %s", store, strerror(-rc));
	return rc;
}
