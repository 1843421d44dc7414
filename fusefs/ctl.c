/* ctl.c - the control socket server (ctl.h).
 *
 * Threads:
 *   accept thread   polls the listening socket and the stop eventfd;
 *                   checks SO_PEERCRED and the connection cap, then starts
 *                   a detached connection thread.
 *   connection      reads one request, runs it (ctl/ctlcmd.c) and
 *                   writes the answer; or, for watch, registers a watcher
 *                   and forwards its queue until the client goes away.
 *   commit hook     (the committing thread) mmsbfs_ctl_commit: formats one
 *                   record per watcher and appends it to that watcher's
 *                   bounded queue, then pokes its eventfd.  It takes
 *                   c->lock then w->lock, both held only for memory work.
 *
 * Lock order: c->lock before w->lock.  No store call is made with either
 * held, except that the hook formats records under c->lock from paths it
 * resolved (mmsb_path) before taking it.
 *
 * Stop: `stopping` is set and the stop eventfd made readable (never
 * drained), which every poll() here includes; the accept thread is joined,
 * then stop waits until the connection count drops to zero.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"

#define CTL_WATCH_LINES 4096u	      /* records queued per watcher */
#define CTL_WATCH_BYTES (4u << 20)    /* bytes queued per watcher */
#define CTL_REQUEST_MS 30000	      /* a client must send its request within this */
#define CTL_SEND_MS 60000	      /* a client must take each chunk within this */

/* One watch connection's queue. */
struct ctl_watcher {
	struct ctl_watcher *next;  /* list link (protected by ctl->lock) */
	pthread_mutex_t lock;	   /* protects q, nq, lost */
	struct ctl_buf q;	   /* queued records, LF-terminated */
	size_t nq;		   /* records in q */
	uint64_t lost;		   /* records dropped since the last send */
	int efd;		   /* eventfd poked by the hook */
	const char *const *filters; /* root-relative paths (immutable while listed) */
	size_t nf;		   /* entries in filters */
};

struct mmsbfs_ctl {
	struct mmsb_store *st;		   /* the store (borrowed) */
	mmsbfs_ctl_stats_fn extra_stats;   /* daemon counters for stats, or NULL */
	void *extra_arg;		   /* for extra_stats */
	uid_t uid;			   /* the daemon's effective uid */
	pid_t pid;			   /* the daemon's pid */
	int lfd;			   /* listening socket */
	int stopfd;			   /* eventfd, readable once stopping */
	char *path;			   /* socket file */
	dev_t dev;			   /* ... as bound: removed at stop only if */
	ino_t ino;			   /* ... it is still this file */
	pthread_t acceptor;		   /* the accept thread */
	bool accepting;			   /* acceptor started and not joined */
	atomic_bool stopping;		   /* set by stop */
	atomic_uint nwatch;		   /* watchers listed (hook fast path) */
	pthread_mutex_t lock;		   /* protects watchers, nconn */
	pthread_cond_t idle;		   /* signalled when nconn drops */
	struct ctl_watcher *watchers;	   /* listed watchers */
	unsigned nconn;			   /* connection threads alive */
};

/* A connection handed to its thread. */
struct ctl_conn {
	struct mmsbfs_ctl *c; /* the server */
	int fd;		      /* the client socket (owned) */
};

/* ---- I/O helpers -------------------------------------------------------------- */

/* Wait for fd (events) or stop; 1 ready, 0 stop, -ETIMEDOUT, -errno. */
static int ctl_wait(struct mmsbfs_ctl *c, int fd, short events, int ms)
{
	struct pollfd p[2] = {{fd, events, 0}, {c->stopfd, POLLIN, 0}};
	int n;

	for (;;) {
		n = poll(p, 2, ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		if (p[1].revents)
			return 0;
		return 1;
	}
}

static int ctl_send_all(struct mmsbfs_ctl *c, int fd, const char *p, size_t n)
{
	ssize_t w;
	int rc;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			rc = ctl_wait(c, fd, POLLOUT, CTL_SEND_MS);
			if (rc <= 0)
				return rc == 0 ? -ESHUTDOWN : rc;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int ctl_send_err(struct mmsbfs_ctl *c, int fd, int rc, const char *msg)
{
	struct ctl_buf b = {0};
	int r = ctl_buf_printf(&b, "ERR\t%s\t", ctl_errno_name(-rc));

	if (r == 0)
		r = ctl_escape(&b, msg);
	if (r == 0)
		r = ctl_buf_puts(&b, "\n");
	if (r == 0)
		r = ctl_send_all(c, fd, b.p, b.len);
	ctl_buf_free(&b);
	return r;
}

/* Read the request line into line (NUL-terminated, LF stripped). */
static int ctl_read_request(struct mmsbfs_ctl *c, int fd, struct ctl_buf *line)
{
	char tmp[4096], *nl;
	ssize_t n;
	int rc;

	for (;;) {
		rc = ctl_wait(c, fd, POLLIN, CTL_REQUEST_MS);
		if (rc <= 0)
			return rc == 0 ? -ESHUTDOWN : rc;
		n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return n == 0 ? -ECONNRESET : -errno;
		rc = ctl_buf_put(line, tmp, (size_t)n);
		if (rc < 0)
			return rc;
		nl = memchr(line->p, '\n', line->len);
		if (nl != NULL) {
			*nl = '\0';
			line->len = (size_t)(nl - line->p);
			return 0;
		}
		if (line->len > CTL_REQUEST_MAX)
			return -E2BIG;
	}
}

/* ---- watch ---------------------------------------------------------------------- */

static void ctl_watch_list(struct mmsbfs_ctl *c, struct ctl_watcher *w, bool add)
{
	struct ctl_watcher **pp;

	pthread_mutex_lock(&c->lock);
	if (add) {
		w->next = c->watchers;
		c->watchers = w;
		atomic_fetch_add(&c->nwatch, 1);
	} else {
		for (pp = &c->watchers; *pp && *pp != w; pp = &(*pp)->next)
			;
		if (*pp == w) {
			*pp = w->next;
			atomic_fetch_sub(&c->nwatch, 1);
		}
	}
	pthread_mutex_unlock(&c->lock);
}

/* Send what is queued: "lost N" first if records were dropped. */
static int ctl_watch_flush(struct mmsbfs_ctl *c, int fd, struct ctl_watcher *w)
{
	struct ctl_buf q;
	uint64_t lost, v;
	char head[48];
	int rc = 0;

	if (read(w->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	pthread_mutex_lock(&w->lock);
	q = w->q;
	lost = w->lost;
	w->q = (struct ctl_buf){0};
	w->nq = 0;
	w->lost = 0;
	pthread_mutex_unlock(&w->lock);
	if (lost) {
		snprintf(head, sizeof(head), "lost\t%llu\n", (unsigned long long)lost);
		rc = ctl_send_all(c, fd, head, strlen(head));
	}
	if (rc == 0 && q.len)
		rc = ctl_send_all(c, fd, q.p, q.len);
	ctl_buf_free(&q);
	return rc;
}

/* Serve a watch until the client leaves or the daemon stops. */
static int ctl_watch_loop(struct mmsbfs_ctl *c, int fd, struct ctl_watcher *w)
{
	struct pollfd p[3] = {{fd, POLLIN | POLLRDHUP, 0}, {w->efd, POLLIN, 0}, {c->stopfd, POLLIN, 0}};
	char junk[256];
	int rc = ctl_send_all(c, fd, ctl_watch_header, strlen(ctl_watch_header));

	while (rc == 0) {
		if (poll(p, 3, -1) < 0) {
			rc = errno == EINTR ? 0 : -errno;
			continue;
		}
		if (p[2].revents)
			return ctl_send_err(c, fd, -ESHUTDOWN, "the daemon is stopping");
		if (p[1].revents)
			rc = ctl_watch_flush(c, fd, w);
		if (rc == 0 && p[0].revents) {
			ssize_t n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);

			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				return 0; /* the client went away */
		}
	}
	return rc;
}

static int ctl_watch(struct mmsbfs_ctl *c, int fd, int argc, char **argv)
{
	struct ctl_watcher w = {.lock = PTHREAD_MUTEX_INITIALIZER};
	int i, rc;

	for (i = 1; i < argc; i++)
		if (argv[i][0] == '-' && argv[i][1] != '\0')
			return ctl_send_err(c, fd, -EINVAL, "unknown option for watch: usage: mmsbctl watch [PATH...]");
	w.filters = (const char *const *)argv + 1;
	w.nf = (size_t)argc - 1;
	w.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w.efd < 0)
		return ctl_send_err(c, fd, -errno, "cannot start a watch: out of file descriptors");
	ctl_watch_list(c, &w, true);
	rc = ctl_watch_loop(c, fd, &w);
	ctl_watch_list(c, &w, false);
	close(w.efd);
	ctl_buf_free(&w.q);
	pthread_mutex_destroy(&w.lock);
	return rc;
}

/* Queue one record for w, or count it lost (rec NULL: it could not be
 * formatted; queue full).  w->lock is taken here. */
static void ctl_watch_push(struct ctl_watcher *w, const struct ctl_buf *rec)
{
	uint64_t one = 1;

	pthread_mutex_lock(&w->lock);
	if (rec == NULL || w->nq >= CTL_WATCH_LINES || w->q.len + rec->len > CTL_WATCH_BYTES ||
	    ctl_buf_put(&w->q, rec->p, rec->len) < 0)
		w->lost++;
	else
		w->nq++;
	pthread_mutex_unlock(&w->lock);
	if (write(w->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, the reader is awake anyway */
	}
}

void mmsbfs_ctl_commit(struct mmsbfs_ctl *c, const struct mmsb_commit_info *ci)
{
	struct ctl_buf paths = {0}, rec = {0};
	struct ctl_watcher *w;
	size_t n = 0;

	if (c == NULL || atomic_load(&c->nwatch) == 0 || atomic_load(&c->stopping))
		return;
	if (ctl_commit_paths(c->st, ci, &paths, &n) < 0)
		n = 0; /* out of memory: the record still goes out, without paths */
	pthread_mutex_lock(&c->lock);
	for (w = c->watchers; w != NULL; w = w->next) {
		int r;

		rec.len = 0;
		r = ctl_watch_line(ci, &paths, n, w->filters, w->nf, &rec);
		if (r != 0)
			ctl_watch_push(w, r > 0 ? &rec : NULL);
	}
	pthread_mutex_unlock(&c->lock);
	ctl_buf_free(&rec);
	ctl_buf_free(&paths);
}

/* ---- one connection -------------------------------------------------------------------- */

static int ctl_serve(struct mmsbfs_ctl *c, int fd)
{
	struct ctl_env env = {c->st, c->pid, c->extra_stats, c->extra_arg};
	struct ctl_buf line = {0};
	struct ctl_result res = {0};
	char **argv = calloc(CTL_ARGS_MAX, sizeof(char *));
	int argc = argv ? 0 : -ENOMEM, rc;

	rc = argc < 0 ? argc : ctl_read_request(c, fd, &line);
	if (rc == -E2BIG)
		return ctl_send_err(c, fd, rc, "request line too long"), free(argv), ctl_buf_free(&line), rc;
	if (rc == 0 && (argc = ctl_split(line.p ? line.p : (char *)"", argv, CTL_ARGS_MAX)) < 0)
		rc = ctl_send_err(c, fd, -EINVAL, "malformed request: see fusefs/ctl.h");
	else if (rc == 0 && strcmp(argv[0], "watch") == 0)
		rc = ctl_watch(c, fd, argc, argv);
	else if (rc == 0) {
		rc = ctl_exec(&env, argc, argv, &res);
		if (res.out.len && ctl_send_all(c, fd, res.out.p, res.out.len) < 0)
			rc = 0; /* the client left: nothing more to say */
		else if (rc == 0)
			ctl_send_all(c, fd, "OK\n", 3);
		else
			ctl_send_err(c, fd, rc, res.msg);
		ctl_result_free(&res);
	}
	ctl_buf_free(&line);
	free(argv);
	return rc;
}

static void *ctl_conn_main(void *arg)
{
	struct ctl_conn *cn = arg;
	struct mmsbfs_ctl *c = cn->c;

	ctl_serve(c, cn->fd);
	close(cn->fd);
	free(cn);
	pthread_mutex_lock(&c->lock);
	c->nconn--;
	pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- accepting ------------------------------------------------------------------------------ */

/* Refuse or hand a fresh connection to a new thread; closes fd if refused. */
static void ctl_admit(struct mmsbfs_ctl *c, int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct ctl_conn *cn;
	pthread_attr_t at;
	pthread_t t;
	char msg[128];
	bool full;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || (cr.uid != 0 && cr.uid != c->uid)) {
		snprintf(msg, sizeof(msg), "permission denied: the socket belongs to uid %u", (unsigned)c->uid);
		ctl_send_err(c, fd, -EACCES, msg);
		close(fd);
		return;
	}
	pthread_mutex_lock(&c->lock);
	full = c->nconn >= MMSBFS_CTL_CONN_MAX;
	if (!full)
		c->nconn++;
	pthread_mutex_unlock(&c->lock);
	cn = full ? NULL : malloc(sizeof(*cn));
	if (cn != NULL) {
		*cn = (struct ctl_conn){c, fd};
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, ctl_conn_main, cn) == 0) {
			pthread_attr_destroy(&at);
			return;
		}
		pthread_attr_destroy(&at);
		free(cn);
	}
	ctl_send_err(c, fd, -EBUSY, full ? "too many control connections: try again" : "cannot start a thread");
	close(fd);
	if (!full) {
		pthread_mutex_lock(&c->lock);
		c->nconn--;
		pthread_mutex_unlock(&c->lock);
	}
}

static void *ctl_accept_main(void *arg)
{
	struct mmsbfs_ctl *c = arg;
	int fd, rc;

	for (;;) {
		rc = ctl_wait(c, c->lfd, POLLIN, -1);
		if (rc == 0)
			return NULL;
		if (rc < 0)
			continue;
		fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				usleep(100000); /* let connections end */
			continue;
		}
		ctl_admit(c, fd);
	}
}

/* sun_path for path: itself, or /proc/self/fd/DIRFD/NAME when too long
 * (*dfd then gets an O_PATH descriptor of the directory, to close). */
static int ctl_sockaddr(const char *path, struct sockaddr_un *sa, int *dfd)
{
	const char *slash = strrchr(path, '/');
	char *dir;

	*dfd = -1;
	sa->sun_family = AF_UNIX;
	if (strlen(path) < sizeof(sa->sun_path)) {
		memcpy(sa->sun_path, path, strlen(path) + 1);
		return 0;
	}
	if (slash == NULL || strlen(slash + 1) > 64)
		return -ENAMETOOLONG;
	dir = strndup(path, (size_t)(slash - path));
	if (dir == NULL)
		return -ENOMEM;
	*dfd = open(*dir ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (*dfd < 0)
		return -errno;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", *dfd, slash + 1);
	return 0;
}

/* Remove a stale socket file at path; -EADDRINUSE if a server answers. */
static int ctl_clear_stale(const struct sockaddr_un *sa, const char *path)
{
	struct stat sb;
	int s, rc = 0;

	if (lstat(path, &sb) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(sb.st_mode))
		return -EEXIST;
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
		rc = -EADDRINUSE;
	close(s);
	if (rc == 0 && unlink(path) < 0 && errno != ENOENT)
		rc = -errno;
	return rc;
}

static int ctl_listen(struct mmsbfs_ctl *c)
{
	struct sockaddr_un sa = {0};
	struct stat sb;
	int dfd, rc = ctl_sockaddr(c->path, &sa, &dfd);

	if (rc == 0)
		rc = ctl_clear_stale(&sa, c->path);
	if (rc == 0 && (c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		rc = -errno;
	if (rc == 0 && bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		rc = -errno;
	/* no connection can arrive before listen(): chmod first */
	if (rc == 0 && (chmod(c->path, 0600) < 0 || lstat(c->path, &sb) < 0))
		rc = -errno;
	if (rc == 0) {
		c->dev = sb.st_dev;
		c->ino = sb.st_ino;
		if (listen(c->lfd, 64) < 0)
			rc = -errno;
		if (rc < 0)
			unlink(c->path);
	}
	if (dfd >= 0)
		close(dfd);
	return rc;
}

int mmsbfs_ctl_start(struct mmsb_store *st, const char *sock_path, mmsbfs_ctl_stats_fn extra_stats, void *arg,
		     struct mmsbfs_ctl **out)
{
	struct mmsbfs_ctl *c = calloc(1, sizeof(*c));
	size_t len;
	int rc = c ? 0 : -ENOMEM;

	*out = NULL;
	if (rc < 0)
		return rc;
	*c = (struct mmsbfs_ctl){.st = st, .extra_stats = extra_stats, .extra_arg = arg, .uid = geteuid(),
				 .pid = getpid(), .lfd = -1, .lock = PTHREAD_MUTEX_INITIALIZER,
				 .idle = PTHREAD_COND_INITIALIZER};
	c->stopfd = eventfd(0, EFD_CLOEXEC);
	if (c->stopfd < 0)
		rc = -errno;
	len = strlen(mmsb_store_dir(st)) + sizeof(MMSBFS_CTL_SOCK_NAME) + 1;
	c->path = sock_path ? strdup(sock_path) : malloc(len);
	if (rc == 0 && c->path == NULL)
		rc = -ENOMEM;
	if (rc == 0 && sock_path == NULL)
		snprintf(c->path, len, "%s/%s", mmsb_store_dir(st), MMSBFS_CTL_SOCK_NAME);
	if (rc == 0)
		rc = ctl_listen(c);
	if (rc == 0) {
		rc = -pthread_create(&c->acceptor, NULL, ctl_accept_main, c);
		c->accepting = rc == 0;
		if (rc < 0)
			unlink(c->path);
	}
	if (rc < 0) {
		atomic_store(&c->stopping, true);
		mmsbfs_ctl_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void mmsbfs_ctl_stop(struct mmsbfs_ctl *c)
{
	uint64_t one = 1;
	struct stat sb;

	if (c == NULL)
		return;
	atomic_store(&c->stopping, true);
	if (c->stopfd >= 0 && write(c->stopfd, &one, sizeof(one)) < 0) {
		/* cannot fail for a fresh eventfd; nothing else to do */
	}
	if (c->accepting) {
		pthread_join(c->acceptor, NULL);
		c->accepting = false;
	}
	if (c->lfd >= 0) {
		close(c->lfd);
		c->lfd = -1;
		if (c->path && lstat(c->path, &sb) == 0 && sb.st_dev == c->dev && sb.st_ino == c->ino)
			unlink(c->path);
	}
	pthread_mutex_lock(&c->lock);
	while (c->nconn > 0)
		pthread_cond_wait(&c->idle, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

void mmsbfs_ctl_free(struct mmsbfs_ctl *c)
{
	if (c == NULL)
		return;
	mmsbfs_ctl_stop(c);
	if (c->stopfd >= 0)
		close(c->stopfd);
	pthread_cond_destroy(&c->idle);
	pthread_mutex_destroy(&c->lock);
	free(c->path);
	free(c);
}
