/* main.c - mmsbfs: options, start-up, diagnostics, the session loop.
 *
 *   mmsbfs [options] STORE MOUNTPOINT
 *
 * Start-up, in this order (spec: .fusefs-spec.md, "Start-up"):
 *   1. parse options (unknown ones: exit 1);
 *   2. without -f: fork; the child does 3-5 and reports through a pipe, the
 *      parent exits 0 or 1 only then, so `mmsbfs S M && ls M` works.  The
 *      fork comes before the store is opened: the core starts threads at
 *      open and threads do not survive fork (hence no fuse_daemonize());
 *   3. block SIGINT/SIGTERM/SIGHUP, so that every thread the core, the
 *      notifier and libfuse start inherits them blocked and only the main
 *      thread (in the loop) takes them;
 *   4. refuse what would go wrong before anything is created (startup.c:
 *      MOUNTPOINT not an empty directory, STORE and MOUNTPOINT nested),
 *      take the one-daemon-per-store lock on STORE (naming the holder's
 *      pid when refused), open the store (recovery may take a while;
 *      -ENOTEMPTY: a foreign non-empty directory), detach a stale mount
 *      on MOUNTPOINT (a GETATTR forced through statx fails with ENOTCONN:
 *      umount2(MNT_DETACH), else fusermount3),
 *      create the session and mount (always default_permissions and
 *      auto_unmount), hook /dev/fuse (wire.c), start the notifier and the
 *      control socket for mmsbctl (ctl.c; without it the mount still works:
 *      a warning).  The stale mount goes only once the store is open, so
 *      that MOUNTPOINT shows the plain directory for as short a time as
 *      possible and not at all when the store cannot be opened.
 *      On a failure from here on, a store this process created is removed
 *      before the verdict is reported, so a refused mount leaves nothing;
 *   5. report success, switch diagnostics to syslog when daemonized (to
 *      STORE/mmsbfs.log when no syslog daemon listens), tell systemd
 *      READY=1 when $NOTIFY_SOCKET is set (Type=notify);
 *   6. run the loop until unmount or a signal, then tear down: notifier,
 *      control socket, unmount, session (destroy frees the inode table),
 *      store close (final checkpoint and sync).
 *
 * Exit status: 0 after a clean unmount or SIGTERM/SIGINT/SIGHUP, 1 on any
 * start-up or loop error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <syslog.h>
#include <unistd.h>

#include "ctl.h"
#include "feed.h"
#include "xattr.h"
#include "inode.h"
#include "metrics.h"
#include "notify.h"
#include "startup.h"
#include "wire.h"

#define MAIN_THREADS_DEFAULT 4u
#define MAIN_THREADS_MAX 256u
#define MAIN_SYNC_INTERVAL_DEFAULT 1000u /* ms */
#define MAIN_MSG_CAP 1024u		 /* longest diagnostic line */
#define MAIN_STALE_TRIES 8		 /* stacked stale mounts detached at most */

/* The process-wide diagnostic sink: the one mutable global (STYLE 2.10
 * allows the default diag sink), because libfuse's log hook carries no
 * user pointer.  During a daemon's start-up, lines go to the report pipe
 * (the parent prints them); afterwards to syslog, or to STORE/mmsbfs.log
 * when no syslog daemon listens (/dev/log missing), so that nothing is
 * lost; in the foreground to stderr.  With -o log=FILE every line is also
 * appended to FILE with a timestamp. */
static struct {
	pthread_mutex_t lock; /* protects report_fd, to_syslog, log_fd and sink_fd */
	int report_fd;	      /* daemon start-up: the report pipe, else -1 */
	bool to_syslog;	      /* daemonized and started: syslog(3) */
	int log_fd;	      /* -o log=FILE (O_APPEND), else -1 */
	int sink_fd;	      /* daemonized without syslog: STORE/mmsbfs.log, else -1 */
	atomic_int level;     /* drop messages above this syslog level */
} main_diag = {PTHREAD_MUTEX_INITIALIZER, -1, false, -1, -1, MMSB_DIAG_INFO};

#define MAIN_FALLBACK_LOG "mmsbfs.log" /* in STORE: messages of a daemon without syslog */

static const char *const main_level_names[] = {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"};

/* ---- diagnostics ------------------------------------------------------------ */

/* One timestamped line to a log file: "2026-01-02T03:04:05.678Z mmsbfs[PID] info: msg". */
static void main_diag_file(int fd, int level, const char *msg)
{
	char line[MAIN_MSG_CAP + 96], stamp[32];
	struct timespec ts;
	struct tm tm;
	int len;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	len = snprintf(line, sizeof(line), "%s.%03ldZ mmsbfs[%d] %s: %s\n", stamp, ts.tv_nsec / 1000000L, (int)getpid(),
		       main_level_names[level & 7], msg);
	if (len > (int)sizeof(line) - 1) {
		len = (int)sizeof(line) - 1;
		line[len - 1] = '\n';
	}
	if (write(fd, line, (size_t)len) < 0) /* one O_APPEND write: whole lines */
		len = 0;
}

static void main_diag_emit(int level, const char *msg)
{
	char line[MAIN_MSG_CAP + 16];
	int len, fd;

	if (level > atomic_load(&main_diag.level))
		return;
	pthread_mutex_lock(&main_diag.lock);
	if (main_diag.log_fd >= 0)
		main_diag_file(main_diag.log_fd, level, msg);
	if (main_diag.sink_fd >= 0) {
		if (main_diag.sink_fd != main_diag.log_fd)
			main_diag_file(main_diag.sink_fd, level, msg);
	} else if (main_diag.to_syslog) {
		syslog(level, "%s", msg);
	} else {
		fd = main_diag.report_fd >= 0 ? main_diag.report_fd : STDERR_FILENO;
		len = snprintf(line, sizeof(line), "mmsbfs: %s\n", msg);
		if (len > (int)sizeof(line) - 1)
			len = (int)sizeof(line) - 1;
		if (write(fd, line, (size_t)len) < 0) /* one write: whole lines */
			len = 0;
	}
	pthread_mutex_unlock(&main_diag.lock);
}

/* Route diagnostics: report_fd >= 0 (daemon start-up), or syslog. */
static void main_diag_route(int report_fd, bool to_syslog)
{
	pthread_mutex_lock(&main_diag.lock);
	main_diag.report_fd = report_fd;
	main_diag.to_syslog = to_syslog;
	pthread_mutex_unlock(&main_diag.lock);
}

void mmsbfs_diag(struct mmsbfs *fs, int level, const char *fmt, ...)
{
	char msg[MAIN_MSG_CAP];
	va_list ap;

	(void)fs;
	if (level > atomic_load(&main_diag.level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	main_diag_emit(level, msg);
}

void mmsbfs_diag_core(void *arg, int level, const char *msg)
{
	main_diag_emit(level, msg);
}

/* libfuse's messages end in a newline and often start with "fuse: ". */
static void main_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char msg[MAIN_MSG_CAP];
	size_t len;

	if ((int)level > atomic_load(&main_diag.level))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len > 0 && msg[len - 1] == '\n')
		msg[--len] = '\0';
	if (len > 0)
		main_diag_emit((int)level, msg);
}

/* ---- options ---------------------------------------------------------------- */

static const struct fuse_opt main_opt_spec[] = {
	{"sync=%s", offsetof(struct mmsbfs_opts, sync), 0},
	{"sync_interval=%s", offsetof(struct mmsbfs_opts, sync_interval_arg), 0},
	{"ckpt_bytes=%s", offsetof(struct mmsbfs_opts, ckpt_bytes), 0},
	{"cache=%s", offsetof(struct mmsbfs_opts, cache), 0},
	{"max_memory=%s", offsetof(struct mmsbfs_opts, max_memory), 0},
	{"threads=%s", offsetof(struct mmsbfs_opts, threads_arg), 0},
	{"keep=%s", offsetof(struct mmsbfs_opts, keep), 0},
	{"metrics=%s", offsetof(struct mmsbfs_opts, metrics), 0},
	{"ro", offsetof(struct mmsbfs_opts, read_only), 1},
	{"rw", offsetof(struct mmsbfs_opts, read_only), 0},
	{"allow_other", offsetof(struct mmsbfs_opts, allow_other), 1},
	{"show_epochs", offsetof(struct mmsbfs_opts, show_epochs), 1},
	{"nokillpriv_v2", offsetof(struct mmsbfs_opts, no_killpriv_v2), 1},
	{"cached_writes", offsetof(struct mmsbfs_opts, cached_writes), 1},
	{"clone_fd", offsetof(struct mmsbfs_opts, clone_fd), 1},
	{"allow_exec", offsetof(struct mmsbfs_opts, allow_exec), 1},
	{"exec_timeout=%s", offsetof(struct mmsbfs_opts, exec_timeout_arg), 0},
	{"gpu=%s", offsetof(struct mmsbfs_opts, gpu), 0},
	{"gpu_mem=%s", offsetof(struct mmsbfs_opts, gpu_mem), 0},
	{"nonempty", offsetof(struct mmsbfs_opts, nonempty), 1},
	{"log=%s", offsetof(struct mmsbfs_opts, log_file), 0},
	{"loglevel=%s", offsetof(struct mmsbfs_opts, log_level), 0},
	{"show_mmsb_xattrs", offsetof(struct mmsbfs_opts, show_mmsb_xattrs), 1},
	{"-v", offsetof(struct mmsbfs_opts, verbose), 1},
	{"--verbose", offsetof(struct mmsbfs_opts, verbose), 1},
	{"nosuid", offsetof(struct mmsbfs_opts, nosuid), 1},
	{"nodev", offsetof(struct mmsbfs_opts, nodev), 1},
	{"noexec", offsetof(struct mmsbfs_opts, noexec), 1},
	{"debug", offsetof(struct mmsbfs_opts, debug), 1},
	{"-d", offsetof(struct mmsbfs_opts, debug), 1},
	{"-f", offsetof(struct mmsbfs_opts, foreground), 1},
	{"-s", offsetof(struct mmsbfs_opts, single), 1},
	{"-h", offsetof(struct mmsbfs_opts, show_help), 1},
	{"--help", offsetof(struct mmsbfs_opts, show_help), 1},
	{"-V", offsetof(struct mmsbfs_opts, show_version), 1},
	{"--version", offsetof(struct mmsbfs_opts, show_version), 1},
	FUSE_OPT_KEY("default_permissions", FUSE_OPT_KEY_DISCARD), /* always on */
	FUSE_OPT_KEY("auto_unmount", FUSE_OPT_KEY_DISCARD),	   /* always on */
	FUSE_OPT_END,
};

static int main_opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct mmsbfs_opts *o = data;

	if (key == FUSE_OPT_KEY_NONOPT) {
		char **slot = o->store == NULL ? &o->store : o->mountpoint == NULL ? &o->mountpoint : NULL;

		if (slot == NULL) {
			fprintf(stderr, "mmsbfs: unexpected argument '%s'\n", arg);
			return -1;
		}
		*slot = strdup(arg);
		return *slot != NULL ? 0 : -1;
	}
	if (key == FUSE_OPT_KEY_OPT && arg[0] != '-')
		return mmsbfs_generic_opt(o, arg) < 0 ? -1 : 0; /* mount(8)'s options (startup.c) */
	fprintf(stderr, "mmsbfs: unknown option '%s'\n", arg);
	return -1;
}

static void main_usage(FILE *f)
{
	fprintf(f,
		"usage: mmsbfs [options] STORE MOUNTPOINT\n"
		"\n"
		"Mount the MMSB page store in directory STORE (created if missing) on\n"
		"MOUNTPOINT.  See mmsbfs(8).\n"
		"\n"
		"options:\n"
		"    -f                     stay in the foreground\n"
		"    -v, --verbose          debug messages from mmsbfs and the store\n"
		"    -d, -o debug           -v, libfuse's request trace, and -f\n"
		"    -s                     single-threaded\n"
		"    -h, --help             this help\n"
		"    -V, --version          versions\n"
		"    -o sync=none|commit|interval  durability policy (default none)\n"
		"    -o sync_interval=MS    interval sync period (default 1000)\n"
		"    -o ckpt_bytes=N[kmg]   checkpoint after N bytes of log, or as much as the\n"
		"                           newest checkpoint when more (0 off; default 256m)\n"
		"    -o cache=N[kmg]        time-travel page cache (default 256m)\n"
		"    -o max_memory=N[kmgt]  page bytes in memory, at most: writes past it get\n"
		"                           ENOSPC (holes are free; default half of RAM)\n"
		"    -o ro                  read-only mount\n"
		"    -o allow_other         let other users in\n"
		"    -o show_epochs         list epochs/ in the root directory\n"
		"    -o threads=N           worker threads (default 4)\n"
		"    -o clone_fd            one /dev/fuse descriptor per worker\n"
		"    -o nokillpriv_v2       keep the kernel's GETXATTR before every write\n"
		"    -o cached_writes       writers use the page cache (a write(2) may\n"
		"                           then span two epochs)\n"
		"    -o nosuid,nodev,noexec passed to the kernel\n"
		"    -o allow_exec          run exec: recompute operations (as this daemon's user)\n"
		"    -o exec_timeout=MS     kill an exec: recompute after MS (default 10000)\n"
		"    -o gpu=auto|cpu        GPU pages in GPU memory (auto), or served from\n"
		"                           host memory by the CPU kernels (cpu)\n"
		"    -o gpu_mem=N[kmgt]     at most N bytes of GPU memory for GPU pages; a page\n"
		"                           that does not fit gets ENOSPC at setfattr\n"
		"    -o keep=RULE[:RULE...] retention after each checkpoint: an age (7d, 12h),\n"
		"                           epochs (100000e) and/or disk use (10G); never\n"
		"                           drops a tagged epoch\n"
		"    -o metrics=HOST:PORT   serve Prometheus metrics at http://HOST:PORT/metrics\n"
		"    -o nonempty            mount over a non-empty directory\n"
		"    -o log=FILE            append every message to FILE, timestamped\n"
		"    -o loglevel=LEVEL      err, warning, notice, info (default) or debug\n"
		"    -o show_mmsb_xattrs    listxattr lists user.mmsb.* too (hidden by default,\n"
		"                           so that copy tools carry only the user's attributes)\n"
		"    -o sync                the same as -o sync=commit\n"
		"    mount(8)'s generic options are accepted: defaults, rw, ro, suid, nosuid,\n"
		"    dev, nodev, exec, noexec, the atime family, fsname=, subtype=, auto,\n"
		"    noauto, user, nofail, _netdev, x-*, comment=; see mmsbfs(8)\n");
}

/* N with an optional k/m/g/t suffix (powers of 1024), into *out. */
static int main_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || s[0] == '-')
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (*end != '\0' || (shift != 0 && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* A whole decimal number in [min, max] for option name into *out; else a
 * message and -EINVAL ("threads=0", "threads=4x", "threads=-1"). */
static int main_parse_count(const char *name, const char *s, unsigned min, unsigned max, unsigned *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || s[0] == '+' || v < min || v > max) {
		fprintf(stderr, "mmsbfs: bad -o %s=%s: a whole number from %u to %u\n", name, s, min, max);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

/* Apply the command line to the core's options; 0 or -EINVAL (reported). */
static int main_store_opts(const struct mmsbfs_opts *o, struct mmsb_store_opts *so)
{
	uint64_t v;

	so->create = !o->read_only;
	so->read_only = o->read_only;
	so->ckpt_at_close = !o->read_only;
	so->sync_interval_ms = MAIN_SYNC_INTERVAL_DEFAULT;
	if (o->sync_interval_arg != NULL &&
	    main_parse_count("sync_interval", o->sync_interval_arg, 1, 86400000u, &so->sync_interval_ms) < 0)
		return -EINVAL;
	if (o->exec_timeout_arg != NULL &&
	    main_parse_count("exec_timeout", o->exec_timeout_arg, 1, 86400000u, &so->exec_timeout_ms) < 0)
		return -EINVAL;
	if (o->keep != NULL && mmsb_keep_parse(o->keep, &so->keep) < 0)
		return fprintf(stderr,
			       "mmsbfs: bad -o keep=%s: rules like 7d (s, min, h, d, w), 100000e (epochs) or 10G "
			       "(B, K, M, G, T) separated by ':', each kind once\n",
			       o->keep),
		       -EINVAL;
	if (o->keep != NULL && o->read_only)
		return fprintf(stderr, "mmsbfs: -o keep= needs a read-write mount\n"), -EINVAL;
	if (o->metrics != NULL && mmsbfs_metrics_check(o->metrics) < 0)
		return fprintf(stderr, "mmsbfs: bad -o metrics=%s: HOST:PORT (e.g. 127.0.0.1:9464)\n", o->metrics),
		       -EINVAL;
	if (o->sync != NULL) {
		if (strcmp(o->sync, "none") == 0)
			so->sync = MMSB_SYNC_NONE;
		else if (strcmp(o->sync, "commit") == 0)
			so->sync = MMSB_SYNC_COMMIT;
		else if (strcmp(o->sync, "interval") == 0)
			so->sync = MMSB_SYNC_INTERVAL;
		else
			return fprintf(stderr, "mmsbfs: bad -o sync=%s (none, commit or interval)\n", o->sync), -EINVAL;
	}
	if (o->ckpt_bytes != NULL) {
		if (main_parse_size(o->ckpt_bytes, &v) < 0)
			return fprintf(stderr, "mmsbfs: bad -o ckpt_bytes=%s\n", o->ckpt_bytes), -EINVAL;
		so->ckpt_log_bytes = v;
	}
	if (o->cache != NULL) {
		if (main_parse_size(o->cache, &v) < 0 || v > SIZE_MAX)
			return fprintf(stderr, "mmsbfs: bad -o cache=%s\n", o->cache), -EINVAL;
		so->cache_bytes = (size_t)v;
	}
	if (o->max_memory != NULL) {
		if (main_parse_size(o->max_memory, &v) < 0 || v == 0)
			return fprintf(stderr, "mmsbfs: bad -o max_memory=%s\n", o->max_memory), -EINVAL;
		so->max_memory = v;
	}
	so->allow_exec = o->allow_exec != 0;
	if (o->gpu != NULL) {
		if (strcmp(o->gpu, "auto") == 0)
			so->gpu = MMSB_GPU_AUTO;
		else if (strcmp(o->gpu, "cpu") == 0)
			so->gpu = MMSB_GPU_CPU;
		else
			return fprintf(stderr, "mmsbfs: bad -o gpu=%s (auto or cpu)\n", o->gpu), -EINVAL;
	}
	if (o->gpu_mem != NULL) {
		if (main_parse_size(o->gpu_mem, &v) < 0 || v == 0)
			return fprintf(stderr, "mmsbfs: bad -o gpu_mem=%s (N[kmgt], above 0)\n", o->gpu_mem), -EINVAL;
		so->gpu_mem = v;
	}
	return 0;
}

/* STORE as an absolute path without resolving it (it may not exist yet,
 * and a stale mount point cannot be resolved). */
static char *main_absolute(const char *path)
{
	char cwd[PATH_MAX], *abs;

	if (path[0] == '/')
		return strdup(path);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return NULL;
	abs = malloc(strlen(cwd) + strlen(path) + 2);
	if (abs != NULL)
		sprintf(abs, "%s/%s", cwd, path);
	return abs;
}

/* The message level the options ask for: -o loglevel=, else debug with -v
 * or -d, else info.  -EINVAL (reported) for a bad name. */
static int main_log_level(const struct mmsbfs_opts *o)
{
	int l;

	if (o->log_level == NULL)
		return o->verbose || o->debug ? MMSB_DIAG_DEBUG : MMSB_DIAG_INFO;
	for (l = MMSB_DIAG_ERR; l <= MMSB_DIAG_DEBUG; l++)
		if (strcmp(o->log_level, main_level_names[l]) == 0)
			return l;
	fprintf(stderr, "mmsbfs: bad -o loglevel=%s (err, warning, notice, info or debug)\n", o->log_level);
	return -EINVAL;
}

static int main_parse(int argc, char **argv, struct mmsbfs_opts *o)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct mmsb_store_opts so;
	int rc = fuse_opt_parse(&args, o, main_opt_spec, main_opt_proc);

	fuse_opt_free_args(&args);
	if (rc < 0)
		return -EINVAL;
	if (o->show_help || o->show_version)
		return 0;
	if (o->store == NULL || o->mountpoint == NULL) {
		fprintf(stderr, "mmsbfs: %s\n", o->store == NULL ? "missing STORE" : "missing MOUNTPOINT");
		return -EINVAL;
	}
	if (o->debug)
		o->foreground = 1;
	o->threads = MAIN_THREADS_DEFAULT;
	if (o->threads_arg != NULL && main_parse_count("threads", o->threads_arg, 1, MAIN_THREADS_MAX, &o->threads) < 0)
		return -EINVAL;
	if (main_log_level(o) < 0)
		return -EINVAL;
	o->store_abs = main_absolute(o->store);
	o->mnt_abs = main_absolute(o->mountpoint);
	if (o->store_abs == NULL || o->mnt_abs == NULL)
		return -ENOMEM;
	mmsb_store_opts_init(&so);
	return main_store_opts(o, &so); /* reports bad values here, before any fork */
}

/* ---- start-up ------------------------------------------------------------------ */

/* Run fusermount3 -u -z mnt (unprivileged fallback); 0 if it succeeded. */
static int main_fusermount_lazy(const char *mnt)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-z", "--", mnt, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* A daemon killed without unmounting leaves "Transport endpoint is not
 * connected" behind (libfuse#41); detach it and go on.  The check forces a
 * GETATTR: a plain stat(2) may be answered from attributes the kernel
 * still holds for the dead mount's root. */
static void main_clean_stale(const char *mnt)
{
	struct statx stx;
	int i, rc;

	for (i = 0; i < MAIN_STALE_TRIES; i++) {
		if (statx(AT_FDCWD, mnt, AT_STATX_FORCE_SYNC, STATX_TYPE, &stx) == 0 || errno != ENOTCONN)
			return;
		if (geteuid() == 0 && umount2(mnt, MNT_DETACH) == 0)
			rc = 0;
		else
			rc = main_fusermount_lazy(mnt);
		mmsbfs_diag(NULL, MMSB_DIAG_NOTICE, "%s: %s stale mount (transport endpoint not connected)", mnt,
			    rc == 0 ? "detached a" : "could not detach a");
		if (rc < 0)
			return;
	}
}

/* Parent of a daemon: copy the child's start-up diagnostics to stderr,
 * then exit with its verdict.  The report is the diagnostic lines, a NUL,
 * and "OK" or the error message. */
static void main_parent(int fd, pid_t child)
{
	char buf[16384], *nul;
	size_t got = 0;
	ssize_t n;
	int status = 0;

	while ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0 || (n < 0 && errno == EINTR)) {
		got += n > 0 ? (size_t)n : 0;
		if (got == sizeof(buf) - 1) { /* flood of diagnostics: pass them on */
			nul = memchr(buf, '\0', got);
			if (nul != NULL)
				continue;
			fwrite(buf, 1, got, stderr);
			got = 0;
		}
	}
	buf[got] = '\0';
	nul = memchr(buf, '\0', got);
	fwrite(buf, 1, nul != NULL ? (size_t)(nul - buf) : got, stderr);
	if (nul != NULL && strcmp(nul + 1, "OK") == 0)
		exit(0);
	if (nul != NULL) {
		fprintf(stderr, "mmsbfs: %s\n", nul + 1);
	} else {
		waitpid(child, &status, 0);
		fprintf(stderr, "mmsbfs: the daemon died during start-up (wait status 0x%x)\n", status);
	}
	exit(1);
}

/* Fork; the parent waits for the child's report and exits with it (does
 * not return).  Returns, in the child, the write end of the report pipe;
 * the child's stdio is /dev/null from here on, so that neither it nor a
 * helper it spawns (fusermount3) holds the caller's terminal or pipes. */
static int main_daemonize(void)
{
	int p[2], fd;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		main_parent(p[0], pid);
	}
	close(p[0]);
	setsid();
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	main_diag_route(p[1], false);
	return p[1];
}

/* Report the start-up result: to the parent (daemon) or stderr (-f). */
static void main_report(int report_fd, const char *msg)
{
	size_t len = strlen(msg);

	if (report_fd < 0) {
		if (len > 0)
			fprintf(stderr, "mmsbfs: %s\n", msg);
		return;
	}
	pthread_mutex_lock(&main_diag.lock);
	if (write(report_fd, "", 1) < 0 || write(report_fd, len > 0 ? msg : "OK", len > 0 ? len : 2) < 0)
		len = 0;
	pthread_mutex_unlock(&main_diag.lock);
}

static const char *main_open_error(int rc, bool read_only)
{
	switch (rc) {
	case -EBUSY:
		return "store is in use by another process";
	case -EUCLEAN:
	case -EBADMSG:
		if (read_only)
			return "the store is damaged beyond what a read-only mount can serve (see the messages "
			       "above; 'mmsbctl --store STORE verify' lists the damage)";
		return "the store is damaged where no checkpoint covers it (see the messages above); "
		       "refusing a read-write mount: mount with -o ro to read every epoch that can be rebuilt";
	case -EINVAL:
		return "not an MMSB store";
	case -ENOTSUP:
		return "store format not supported by this mmsbfs (written by a newer version?)";
	case -ENOENT:
		return "no such store (a read-only mount does not create one)";
	case -ENOTEMPTY:
		return "not an MMSB store, and not empty: a new store needs an empty or absent directory";
	default:
		return NULL;
	}
}

/* The core's commit hook: feeds `mmsbctl watch` and the notifier. */
static void main_commit(void *arg, const struct mmsb_commit_info *ci)
{
	struct mmsbfs *fs = arg;
	uint64_t ticket;

	/* Watchers, the feed and the notifier see the epochs in order: hooks of
	 * concurrent commits run concurrently, and epochs are consecutive (mmsb.h),
	 * so each waits for the one before it. */
	pthread_mutex_lock(&fs->hook_mu);
	while (fs->hook_next != 0 && fs->hook_next < ci->epoch)
		pthread_cond_wait(&fs->hook_cond, &fs->hook_mu);
	pthread_mutex_unlock(&fs->hook_mu);
	mmsbfs_ctl_commit(atomic_load_explicit(&fs->ctl, memory_order_acquire), ci);
	mmsbfs_feed_commit(fs->feed, fs->st, ci);
	ticket = mmsbfs_notify_queue(fs, ci);
	pthread_mutex_lock(&fs->hook_mu);
	if (fs->hook_next != 0)
		fs->hook_next = ci->epoch + 1;
	pthread_cond_broadcast(&fs->hook_cond);
	pthread_mutex_unlock(&fs->hook_mu);
	/* The reply to this request waits for its invalidations, out of order:
	 * one may be held up by a later request's kernel locks. */
	mmsbfs_notify_wait(fs, ticket);
}

/* The daemon's own counters for `mmsbctl stats`. */
static void main_extra_stats(void *arg, ctl_emit_fn emit, void *ectx)
{
	struct mmsbfs *fs = arg;

	emit(ectx, "fuse.getxattr_capability", atomic_load(&fs->n_capability));
	emit(ectx, "fuse.killpriv_v2", mmsbfs_wire_killpriv_v2(fs->wire));
	emit(ectx, "fuse.direct_writes", mmsbfs_wire_dio_mmap(fs->wire));
	emit(ectx, "fuse.snapshot_inodes", fs->itab != NULL ? mmsbfs_itab_count(fs->itab) : 0);
}

/* mmsbfs.h: undo mountinfo's octal escapes in place. */
void mmsbfs_unescape(char *s)
{
	char *d = s;

	for (; *s; s++, d++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
		    s[3] <= '7') {
			*d = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*d = *s;
		}
	}
	*d = '\0';
}

/* Is a fuse.mmsbfs mount of this store (its fsname) still mounted? */
static bool main_store_mounted(const char *store_abs)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192];
	bool found = false;

	if (f == NULL)
		return true; /* cannot tell: do not wait */
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		char *sep = strstr(line, " - "), fstype[64], source[4096];

		if (sep == NULL || sscanf(sep + 3, "%63s %4095s", fstype, source) != 2)
			continue;
		mmsbfs_unescape(source);
		found = strcmp(fstype, "fuse.mmsbfs") == 0 && strcmp(source, store_abs) == 0;
	}
	fclose(f);
	return found;
}

/* Open the store into fs->st; on failure, *err gets the message. */
static int main_open_store(struct mmsbfs *fs, const struct mmsbfs_opts *o, char *err, size_t cap)
{
	struct mmsb_store_opts so;
	const char *why;
	int rc;

	mmsb_store_opts_init(&so);
	rc = main_store_opts(o, &so); /* validated by main_parse() already */
	if (rc < 0)
		return snprintf(err, cap, "bad options"), rc;
	rc = mmsbfs_feed_new(&fs->feed); /* the commit hook feeds it from the start */
	if (rc < 0)
		return snprintf(err, cap, "out of memory"), rc;
	so.diag_level = atomic_load(&main_diag.level);
	so.diag_fn = mmsbfs_diag_core;
	so.diag_arg = fs;
	so.commit_fn = main_commit;
	so.commit_arg = fs;
	rc = mmsb_store_open(o->store_abs, &so, &fs->st);
	/* `fusermount3 -u M && mmsbfs S M`: the previous daemon may still be
	 * closing the store (final checkpoint) after its mount is gone; wait
	 * for it, but fail at once when a daemon still serves a mount of S */
	for (int waited = 0; rc == -EBUSY && !main_store_mounted(o->store_abs) && waited < 600; waited++) {
		if (waited == 10)
			fprintf(stderr, "mmsbfs: %s: waiting for the previous daemon to close the store\n", o->store);
		usleep(100000);
		rc = mmsb_store_open(o->store_abs, &so, &fs->st);
	}
	if (rc < 0) {
		why = main_open_error(rc, o->read_only);
		snprintf(err, cap, "%s: %s", o->store, why != NULL ? why : strerror(-rc));
		return rc;
	}
	fs->read_only = mmsb_store_is_read_only(fs->st);
	pthread_mutex_lock(&fs->hook_mu); /* before the first commit: the session is not up yet */
	fs->hook_next = mmsb_store_head(fs->st) + 1;
	pthread_mutex_unlock(&fs->hook_mu);
	return 0;
}

/* The kernel-side mount options.  Returns a malloc'd "-o" string. */
static char *main_mount_opts(const struct mmsbfs_opts *o)
{
	char *mo = NULL, *fsname = malloc(strlen(o->store_abs) + 8);
	int rc = fsname == NULL ? -1 : 0;

	if (rc == 0)
		sprintf(fsname, "fsname=%s", o->store_abs);
	rc = rc < 0 ? rc : fuse_opt_add_opt(&mo, "default_permissions,auto_unmount,subtype=mmsbfs");
	rc = rc < 0 ? rc : fuse_opt_add_opt_escaped(&mo, fsname);
	if (rc == 0 && o->allow_other)
		rc = fuse_opt_add_opt(&mo, "allow_other");
	if (rc == 0 && o->read_only)
		rc = fuse_opt_add_opt(&mo, "ro");
	if (rc == 0 && o->nosuid)
		rc = fuse_opt_add_opt(&mo, o->nosuid > 0 ? "nosuid" : "suid");
	if (rc == 0 && o->nodev)
		rc = fuse_opt_add_opt(&mo, o->nodev > 0 ? "nodev" : "dev");
	if (rc == 0 && o->noexec)
		rc = fuse_opt_add_opt(&mo, o->noexec > 0 ? "noexec" : "exec");
	if (rc == 0 && o->kernel_opts != NULL)
		rc = fuse_opt_add_opt(&mo, o->kernel_opts);
	free(fsname);
	if (rc < 0) {
		free(mo);
		return NULL;
	}
	return mo;
}

/* Create the session and mount it on the mount point. */
static int main_mount(struct mmsbfs *fs, const struct mmsbfs_opts *o, char *err, size_t cap)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char *mo = main_mount_opts(o), *mnt = realpath(o->mnt_abs, NULL);
	int rc = mo != NULL ? 0 : -ENOMEM;

	if (rc == 0 && (fuse_opt_add_arg(&args, "mmsbfs") < 0 || fuse_opt_add_arg(&args, "-o") < 0 ||
			fuse_opt_add_arg(&args, mo) < 0 || (o->debug && fuse_opt_add_arg(&args, "-d") < 0)))
		rc = -ENOMEM;
	if (rc == 0) {
		fs->se = fuse_session_new(&args, &mmsbfs_ops, sizeof(mmsbfs_ops), fs);
		if (fs->se == NULL)
			rc = -EINVAL;
	}
	if (rc == 0 && fuse_session_mount(fs->se, mnt != NULL ? mnt : o->mnt_abs) != 0)
		rc = -EIO;
	if (rc == 0 && !(o->no_killpriv_v2 && o->cached_writes) && mmsbfs_wire_install(fs) < 0)
		mmsbfs_diag(fs, MMSB_DIAG_WARNING, "cannot hook /dev/fuse: no KILLPRIV_V2, no direct writes");
	if (rc < 0)
		snprintf(err, cap, "%s: cannot mount (see the messages above)", o->mountpoint);
	fuse_opt_free_args(&args);
	free(mo);
	free(mnt);
	return rc;
}

/* ---- running --------------------------------------------------------------------- */

static void main_block_signals(sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

/* Daemon, started: diagnostics to syslog (or, when no syslog daemon
 * listens and there is no -o log=, to STORE/mmsbfs.log), out of the
 * caller's cwd. */
static void main_detach(int report_fd, const struct mmsbfs_opts *o)
{
	char *path;
	int fd = -1;

	if (o->log_file == NULL && access("/dev/log", F_OK) < 0) {
		path = malloc(strlen(o->store_abs) + sizeof(MAIN_FALLBACK_LOG) + 1);
		if (path != NULL) {
			sprintf(path, "%s/%s", o->store_abs, MAIN_FALLBACK_LOG);
			fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		}
		free(path);
	}
	if (fd < 0)
		openlog("mmsbfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	pthread_mutex_lock(&main_diag.lock);
	main_diag.sink_fd = fd >= 0 ? fd : main_diag.log_fd; /* -o log=FILE: that file only */
	pthread_mutex_unlock(&main_diag.lock);
	main_diag_route(-1, main_diag.sink_fd < 0);
	close(report_fd);
	if (chdir("/") < 0)
		return;
}

static int main_loop(struct mmsbfs *fs, const struct mmsbfs_opts *o)
{
	struct fuse_loop_config *cfg;
	int rc;

	if (o->single)
		return fuse_session_loop(fs->se);
	cfg = fuse_loop_cfg_create();
	if (cfg == NULL)
		return -ENOMEM;
	fuse_loop_cfg_set_max_threads(cfg, o->threads);
	fuse_loop_cfg_set_clone_fd(cfg, o->clone_fd ? 1 : 0);
	rc = fuse_session_loop_mt(fs->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return rc;
}

static void main_teardown(struct mmsbfs *fs, struct mmsbfs_notify *nt, struct mmsbfs_ctl *ctl, bool signals)
{
	atomic_store(&fs->notify, NULL);
	mmsbfs_notify_stop(nt);
	mmsbfs_metrics_stop(fs->metrics); /* before the store closes */
	fs->metrics = NULL;
	mmsbfs_ctl_stop(ctl); /* before the store closes: commands finish first */
	if (fs->se != NULL) {
		if (signals)
			fuse_remove_signal_handlers(fs->se);
		fuse_session_unmount(fs->se);
		fuse_session_destroy(fs->se); /* calls destroy: frees the inode table */
		fs->se = NULL;
	}
	mmsbfs_itab_free(fs->itab); /* if destroy never ran (no INIT) */
	fs->itab = NULL;
	mmsb_store_close(fs->st); /* final checkpoint, sync */
	fs->st = NULL;
	mmsbfs_feed_free(fs->feed); /* after the last commit hook */
	fs->feed = NULL;
	mmsbfs_xattr_refusals_free(atomic_exchange(&fs->refusals, NULL));
	atomic_store(&fs->ctl, NULL);
	mmsbfs_ctl_free(ctl);
	mmsbfs_notify_free(nt);
	mmsbfs_wire_free(fs->wire);
	fs->wire = NULL;
}

/* The control socket for mmsbctl.  Without it the mount still works, so
 * a failure is a warning. */
static void main_start_ctl(struct mmsbfs *fs, struct mmsbfs_ctl **ctl)
{
	int rc = mmsbfs_ctl_start(fs->st, NULL, main_extra_stats, fs, ctl);

	if (rc < 0) {
		mmsbfs_diag(fs, MMSB_DIAG_WARNING, "%s/%s: no control socket (mmsbctl needs it): %s", mmsb_store_dir(fs->st),
			    MMSBFS_CTL_SOCK_NAME, strerror(-rc));
		*ctl = NULL;
		return;
	}
	atomic_store_explicit(&fs->ctl, *ctl, memory_order_release);
}

/* Steps 3-6 of the header comment.  report_fd < 0 in the foreground;
 * sd_sock: $NOTIFY_SOCKET (systemd), or NULL. */
static int main_serve(struct mmsbfs *fs, const struct mmsbfs_opts *o, int report_fd, const char *sd_sock)
{
	struct mmsbfs_notify *nt = NULL;
	struct mmsbfs_ctl *ctl = NULL;
	char err[MAIN_MSG_CAP] = "", ready[MAIN_MSG_CAP];
	struct mmsbfs_startup su;
	bool signals = false;
	sigset_t old;
	int rc;

	main_block_signals(&old);
	rc = mmsbfs_startup_check(o, &su, err, sizeof(err)); /* before anything is created */
	if (rc == 0) {
		rc = mmsbfs_startup_lock(o, &su, err, sizeof(err));
		if (rc == -ENOENT && err[0] == '\0')
			rc = 0; /* no store and a read-only mount: the open says so */
	}
	if (rc == 0)
		rc = main_open_store(fs, o, err, sizeof(err));
	if (rc == 0 && mmsbfs_itab_new(fs->st, &fs->itab) < 0)
		rc = -ENOMEM, snprintf(err, sizeof(err), "out of memory");
	if (rc == 0) {
		main_clean_stale(o->mnt_abs);
		rc = main_mount(fs, o, err, sizeof(err));
	}
	if (rc == 0 && (rc = mmsbfs_notify_start(fs, &nt)) < 0)
		snprintf(err, sizeof(err), "cannot start the notifier thread: %s", strerror(-rc));
	if (rc == 0) {
		atomic_store_explicit(&fs->notify, nt, memory_order_release);
		main_start_ctl(fs, &ctl); /* commands may commit from here on */
	}
	if (rc == 0 && o->metrics != NULL &&
	    (rc = mmsbfs_metrics_start(fs->st, o->metrics, main_extra_stats, fs, &fs->metrics)) < 0)
		snprintf(err, sizeof(err), "-o metrics=%s: cannot listen: %s", o->metrics, strerror(-rc));
	if (rc == 0 && !(signals = fuse_set_signal_handlers(fs->se) == 0))
		rc = -EIO, snprintf(err, sizeof(err), "cannot install signal handlers");
	if (rc < 0) { /* undo before the verdict: nothing is left once mmsbfs has exited */
		main_teardown(fs, nt, ctl, signals);
		mmsbfs_startup_finish(o, &su);
		main_report(report_fd, err);
		return 1;
	}
	su.committed = true;
	main_report(report_fd, err);
	if (report_fd >= 0)
		main_detach(report_fd, o);
	snprintf(ready, sizeof(ready), "READY=1\nSTATUS=%s mounted on %s\nMAINPID=%d", o->store_abs, o->mnt_abs,
		 (int)getpid());
	mmsbfs_sd_notify(sd_sock, ready);
	mmsbfs_diag(fs, MMSB_DIAG_INFO, "%s mounted on %s%s%s", o->store_abs, o->mnt_abs,
		    fs->read_only ? " (read-only)" : "", fs->wire != NULL ? "" : " (no /dev/fuse hook)");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	rc = main_loop(fs, o);
	main_block_signals(NULL);
	if (rc < 0)
		mmsbfs_diag(fs, MMSB_DIAG_ERR, "session loop failed: %s", strerror(-rc));
	mmsbfs_sd_notify(sd_sock, "STOPPING=1\nSTATUS=unmounting, final checkpoint");
	mmsbfs_diag(fs, MMSB_DIAG_INFO, "%s unmounted from %s (%" PRIu64 " GETXATTR security.capability answered%s)",
		    o->store_abs, o->mnt_abs, (uint64_t)atomic_load(&fs->n_capability),
		    mmsbfs_wire_killpriv_v2(fs->wire) ? ", KILLPRIV_V2 on" : "");
	main_teardown(fs, nt, ctl, signals);
	mmsbfs_startup_finish(o, &su);
	mmsbfs_diag(fs, MMSB_DIAG_INFO, "%s closed", o->store_abs);
	return rc < 0 ? 1 : 0;
}

static void main_free_opts(struct mmsbfs_opts *o)
{
	free(o->store);
	free(o->mountpoint);
	free(o->store_abs);
	free(o->mnt_abs);
	free(o->sync);
	free(o->ckpt_bytes);
	free(o->gpu);
	free(o->gpu_mem);
	free(o->cache);
	free(o->max_memory);
	free(o->kernel_opts);
	free(o->log_file);
	free(o->log_level);
	free(o->threads_arg);
	free(o->sync_interval_arg);
	free(o->exec_timeout_arg);
	free(o->keep);
	free(o->metrics);
}

int main(int argc, char **argv)
{
	struct mmsbfs_opts o = {0};
	struct mmsbfs fs = {0};
	int report_fd = -1, rc;
	char *sd_sock;

	fuse_set_log_func(main_fuse_log);
	rc = main_parse(argc, argv, &o);
	if (rc < 0 || o.show_help || o.show_version) {
		if (rc < 0)
			fprintf(stderr, "usage: mmsbfs [options] STORE MOUNTPOINT (mmsbfs --help for more)\n");
		else if (o.show_version)
			printf("mmsbfs %s\nlibmmsb %s\nFUSE library %s\n", MMSB_VERSION_STRING, MMSB_VERSION_STRING,
			       fuse_pkgversion());
		else
			main_usage(stdout);
		main_free_opts(&o);
		return rc < 0 ? 1 : 0;
	}
	atomic_store(&main_diag.level, main_log_level(&o));
	if (o.log_file != NULL) { /* opened here: a relative FILE is the caller's, errors reach the terminal */
		main_diag.log_fd = open(o.log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (main_diag.log_fd < 0) {
			fprintf(stderr, "mmsbfs: -o log=%s: %s\n", o.log_file, strerror(errno));
			main_free_opts(&o);
			return 1;
		}
	}
	/* systemd's readiness socket: ours alone, not for exec: recomputes */
	sd_sock = getenv("NOTIFY_SOCKET") != NULL ? strdup(getenv("NOTIFY_SOCKET")) : NULL;
	unsetenv("NOTIFY_SOCKET");
	fs.opts = &o;
	fs.show_epochs = o.show_epochs != 0;
	if (!o.foreground) {
		report_fd = main_daemonize();
		if (report_fd < 0) {
			fprintf(stderr, "mmsbfs: cannot fork: %s\n", strerror(-report_fd));
			free(sd_sock);
			main_free_opts(&o);
			return 1;
		}
	}
	pthread_mutex_init(&fs.hook_mu, NULL);
	pthread_cond_init(&fs.hook_cond, NULL);
	rc = main_serve(&fs, &o, report_fd, sd_sock);
	free(sd_sock);
	pthread_cond_destroy(&fs.hook_cond);
	pthread_mutex_destroy(&fs.hook_mu);
	main_free_opts(&o);
	return rc;
}
