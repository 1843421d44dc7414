/* startup.c - generic mount options, start-up checks, the daemon lock,
 * undo of a failed mount, sd_notify (startup.h).
 *
 * Generic options.  mount(8) runs /sbin/mount.fuse3, which runs
 *   mmsbfs STORE MOUNTPOINT -o OPTS
 * after dropping _netdev, nofail, auto, noauto, user, users and nouser, and
 * adding dev,suid when run by root (libfuse util/mount.fuse.c); libmount has
 * already dropped x-* and comment= from fstab lines, but `mount -o` passes
 * them.  The other options reach mmsbfs as written, so every option of
 * mount(8)'s "FILESYSTEM-INDEPENDENT MOUNT OPTIONS" has to be accepted here.
 * The kernel keeps atime to itself on FUSE inodes (S_NOATIME), so the atime
 * family changes nothing; noatime is still passed on, so that the mount
 * table shows what the user asked for (libfuse refuses nodiratime).
 * A mount is always nosuid,nodev: libfuse mounts through fusermount3 for
 * auto_unmount and passes it only the negative flags, and the device nodes
 * of a store are metadata only.  suid and dev (which mount.fuse3 adds to
 * every mount by root) are therefore accepted and change nothing.
 *
 * The daemon lock.  The core locks STORE/LOCK only for read-write opens
 * (offline readers such as `mmsbctl --store` must not be shut out), so a
 * read-only daemon could start next to a read-write one and both served
 * the same control socket name.  Every daemon therefore takes flock(2) on
 * the STORE directory itself: one daemon per store, whatever its options.
 * /proc/locks gives the holder's pid for the message.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "startup.h"

/* ---- generic mount options ---------------------------------------------------- */

enum gen_kind {
	GEN_IGNORE,  /* for mount(8), mount.fuse3 or systemd; nothing to do */
	GEN_KERNEL,  /* passed on to the kernel as it is */
	GEN_POSITIVE, /* the positive form of a no* flag: sets it to -1 (suid: nosuid = -1) */
	GEN_SYNC,    /* "sync": the strictest durability, -o sync=commit */
	GEN_NOTE,    /* accepted, but mmsbfs keeps its own value: say so */
	GEN_REFUSE,  /* meaningless for mmsbfs: refused with a reason */
};

struct gen_opt {
	const char *name;  /* option name; ending in '=' or '-': a prefix */
	enum gen_kind kind; /* what to do with it */
	size_t off;	    /* GEN_POSITIVE: offset of the int flag in mmsbfs_opts */
	const char *why;    /* GEN_NOTE, GEN_REFUSE: the message */
};

static const struct gen_opt gen_opts[] = {
	{"defaults", GEN_IGNORE, 0, NULL},
	{"auto", GEN_IGNORE, 0, NULL},
	{"noauto", GEN_IGNORE, 0, NULL},
	{"nofail", GEN_IGNORE, 0, NULL},
	{"_netdev", GEN_IGNORE, 0, NULL},
	{"user", GEN_IGNORE, 0, NULL},
	{"users", GEN_IGNORE, 0, NULL},
	{"nouser", GEN_IGNORE, 0, NULL},
	{"owner", GEN_IGNORE, 0, NULL},
	{"group", GEN_IGNORE, 0, NULL},
	{"x-", GEN_IGNORE, 0, NULL},
	{"comment=", GEN_IGNORE, 0, NULL},
	{"async", GEN_IGNORE, 0, NULL},
	{"atime", GEN_IGNORE, 0, NULL},
	{"relatime", GEN_IGNORE, 0, NULL},
	{"norelatime", GEN_IGNORE, 0, NULL},
	{"strictatime", GEN_IGNORE, 0, NULL},
	{"nostrictatime", GEN_IGNORE, 0, NULL},
	{"diratime", GEN_IGNORE, 0, NULL},
	{"lazytime", GEN_IGNORE, 0, NULL},
	{"nolazytime", GEN_IGNORE, 0, NULL},
	{"iversion", GEN_IGNORE, 0, NULL},
	{"noiversion", GEN_IGNORE, 0, NULL},
	{"loud", GEN_IGNORE, 0, NULL},
	{"silent", GEN_IGNORE, 0, NULL},
	{"noatime", GEN_KERNEL, 0, NULL},
	{"nodiratime", GEN_IGNORE, 0, NULL},
	{"dirsync", GEN_KERNEL, 0, NULL},
	{"suid", GEN_IGNORE, 0, NULL}, /* always nosuid,nodev: see the header */
	{"dev", GEN_IGNORE, 0, NULL},
	{"exec", GEN_POSITIVE, offsetof(struct mmsbfs_opts, noexec), NULL},
	{"sync", GEN_SYNC, 0, NULL},
	{"fsname=", GEN_NOTE, 0, "ignored: the source of an mmsbfs mount is always its store's absolute path"},
	{"subtype=", GEN_NOTE, 0, "ignored: the type of an mmsbfs mount is always fuse.mmsbfs"},
	{"uid=", GEN_REFUSE, 0, "not supported: each page keeps its own owner (chown)"},
	{"gid=", GEN_REFUSE, 0, "not supported: each page keeps its own group (chgrp)"},
	{"umask=", GEN_REFUSE, 0, "not supported: each page keeps its own mode (chmod)"},
};

static const struct gen_opt *gen_find(const char *arg)
{
	size_t i, len;

	for (i = 0; i < sizeof(gen_opts) / sizeof(gen_opts[0]); i++) {
		len = strlen(gen_opts[i].name);
		if (gen_opts[i].name[len - 1] == '=' || gen_opts[i].name[len - 1] == '-') {
			if (strncmp(arg, gen_opts[i].name, len) == 0)
				return &gen_opts[i];
		} else if (strcmp(arg, gen_opts[i].name) == 0) {
			return &gen_opts[i];
		}
	}
	return NULL;
}

int mmsbfs_generic_opt(struct mmsbfs_opts *o, const char *arg)
{
	const struct gen_opt *g = gen_find(arg);
	char *s;

	if (g == NULL) {
		fprintf(stderr, "mmsbfs: unknown option '%s' (see mmsbfs --help)\n", arg);
		return -EINVAL;
	}
	switch (g->kind) {
	case GEN_IGNORE:
		return 0;
	case GEN_KERNEL:
		return fuse_opt_add_opt(&o->kernel_opts, arg) < 0 ? -ENOMEM : 0;
	case GEN_POSITIVE:
		*(int *)((char *)o + g->off) = -1;
		return 0;
	case GEN_SYNC:
		s = strdup("commit");
		if (s == NULL)
			return -ENOMEM;
		free(o->sync);
		o->sync = s;
		return 0;
	case GEN_NOTE:
		fprintf(stderr, "mmsbfs: -o %s: %s\n", arg, g->why);
		return 0;
	case GEN_REFUSE:
	default:
		fprintf(stderr, "mmsbfs: -o %s: %s\n", arg, g->why);
		return -EINVAL;
	}
}

/* ---- start-up checks ------------------------------------------------------------ */

/* path made canonical: realpath, or for a path whose last component does not
 * exist yet, realpath of its parent plus that name.  NULL when neither
 * resolves (the caller falls back to the absolute path as given). */
static char *su_canonical(const char *abs)
{
	char *p = realpath(abs, NULL), *copy, *slash, *parent, *out;

	if (p != NULL || errno != ENOENT)
		return p;
	copy = strdup(abs);
	if (copy == NULL)
		return NULL;
	for (size_t len = strlen(copy); len > 1 && copy[len - 1] == '/'; len--)
		copy[len - 1] = '\0'; /* "store/" names "store" */
	slash = strrchr(copy, '/');
	if (slash == NULL || slash[1] == '\0') {
		free(copy);
		return NULL;
	}
	*slash = '\0';
	parent = realpath(copy[0] != '\0' ? copy : "/", NULL);
	out = parent != NULL ? malloc(strlen(parent) + strlen(slash + 1) + 2) : NULL;
	if (out != NULL)
		sprintf(out, "%s/%s", strcmp(parent, "/") == 0 ? "" : parent, slash + 1);
	free(parent);
	free(copy);
	return out;
}

/* Is path inside (or equal to) dir?  Both canonical. */
static bool su_within(const char *path, const char *dir)
{
	size_t len = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return true;
	return strncmp(path, dir, len) == 0 && (path[len] == '\0' || path[len] == '/');
}

/* 1: the directory has entries, 0: empty, -errno: cannot tell. */
static int su_dir_has_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int found = 0;

	if (d == NULL)
		return -errno;
	while (!found && (e = readdir(d)) != NULL)
		found = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return found;
}

static int su_check_mountpoint(const struct mmsbfs_opts *o, char *err, size_t cap)
{
	struct stat s;
	int rc;

	if (stat(o->mnt_abs, &s) < 0) {
		if (errno == ENOTCONN)
			return 0; /* a dead mount: detached later (main_clean_stale) */
		rc = -errno;
		snprintf(err, cap, "%s: %s (the mount point must be an existing directory)", o->mountpoint,
			 strerror(-rc));
		return rc;
	}
	if (!S_ISDIR(s.st_mode)) {
		snprintf(err, cap, "%s: not a directory (the mount point must be a directory)", o->mountpoint);
		return -ENOTDIR;
	}
	if (o->nonempty)
		return 0;
	rc = su_dir_has_entries(o->mnt_abs);
	if (rc > 0) {
		snprintf(err, cap,
			 "%s: mount point is not empty (the mount would hide its files): empty it, or mount with "
			 "-o nonempty",
			 o->mountpoint);
		return -ENOTEMPTY;
	}
	return 0;
}

static int su_check_overlap(const struct mmsbfs_opts *o, char *err, size_t cap)
{
	char *store = su_canonical(o->store_abs), *mnt = su_canonical(o->mnt_abs);
	const char *s = store != NULL ? store : o->store_abs, *m = mnt != NULL ? mnt : o->mnt_abs;
	int rc = 0;

	if (strcmp(s, m) == 0) {
		snprintf(err, cap, "%s: the store and the mount point are the same directory: give two directories",
			 o->store);
		rc = -EINVAL;
	} else if (su_within(s, m)) {
		snprintf(err, cap, "%s: the store is inside the mount point %s: the mount would hide it", o->store,
			 o->mountpoint);
		rc = -EINVAL;
	} else if (su_within(m, s)) {
		snprintf(err, cap, "%s: the mount point is inside the store %s: give a directory outside it",
			 o->mountpoint, o->store);
		rc = -EINVAL;
	}
	free(store);
	free(mnt);
	return rc;
}

int mmsbfs_startup_check(const struct mmsbfs_opts *o, struct mmsbfs_startup *su, char *err, size_t cap)
{
	struct stat s;
	int rc;

	su->lock_fd = -1;
	su->created_dir = su->was_empty = su->committed = false;
	rc = su_check_overlap(o, err, cap);
	if (rc == 0)
		rc = su_check_mountpoint(o, err, cap);
	if (rc < 0)
		return rc;
	if (stat(o->store_abs, &s) < 0) {
		rc = -errno;
		if (rc == -ENOENT)
			return 0; /* created by a read-write mount, reported by a read-only one */
		snprintf(err, cap, "%s: %s", o->store, strerror(-rc));
		return rc;
	}
	if (!S_ISDIR(s.st_mode)) {
		snprintf(err, cap, "%s: not a directory (a store is a directory)", o->store);
		return -ENOTDIR;
	}
	su->was_empty = su_dir_has_entries(o->store_abs) == 0;
	return 0;
}

/* ---- the daemon lock ------------------------------------------------------------- */

pid_t mmsbfs_lock_holder(const char *path)
{
	FILE *f;
	char line[256], kind[16];
	unsigned maj, min;
	unsigned long ino;
	struct stat s;
	int pid, found = -ENOENT;

	if (stat(path, &s) < 0)
		return -errno;
	f = fopen("/proc/locks", "re");
	if (f == NULL)
		return -errno;
	while (found < 0 && fgets(line, sizeof(line), f) != NULL) {
		/* "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; a waiter has "->" */
		if (strstr(line, "->") != NULL ||
		    sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%lu", kind, &pid, &maj, &min, &ino) != 5)
			continue;
		if (strcmp(kind, "FLOCK") == 0 && maj == major(s.st_dev) && min == minor(s.st_dev) &&
		    ino == (unsigned long)s.st_ino && pid > 0)
			found = pid;
	}
	fclose(f);
	return found;
}

/* Is a fuse.mmsbfs mount of this store still mounted?  Its mount point into
 * mnt (when not NULL). */
static bool su_store_mounted(const char *store_abs, char *mnt, size_t cap)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192], fstype[64], source[4096], point[4096];
	bool found = false;

	if (f == NULL)
		return true; /* cannot tell: do not wait */
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		char *sep = strstr(line, " - ");

		if (sep == NULL || sscanf(sep + 3, "%63s %4095s", fstype, source) != 2 ||
		    sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1)
			continue;
		mmsbfs_unescape(source);
		found = strcmp(fstype, "fuse.mmsbfs") == 0 && strcmp(source, store_abs) == 0;
		if (found && mnt != NULL) {
			mmsbfs_unescape(point);
			snprintf(mnt, cap, "%s", point);
		}
	}
	fclose(f);
	return found;
}

int mmsbfs_startup_lock(const struct mmsbfs_opts *o, struct mmsbfs_startup *su, char *err, size_t cap)
{
	char mnt[4096] = "";
	int fd, rc, waited;
	pid_t pid;

	if (!o->read_only && mkdir(o->store_abs, 0700) == 0)
		su->created_dir = true;
	fd = open(o->store_abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			snprintf(err, cap, "%s: %s", o->store, strerror(-rc));
		return rc;
	}
	for (waited = 0;; waited++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			su->lock_fd = fd;
			return 0;
		}
		rc = -errno;
		if (rc != -EWOULDBLOCK && rc != -EINTR)
			break;
		/* `fusermount3 -u M && mmsbfs S M`: the previous daemon may still be
		 * closing the store (final checkpoint) after its mount is gone; wait
		 * for it, but fail at once when a daemon still serves a mount of S */
		rc = -EBUSY;
		if (su_store_mounted(o->store_abs, mnt, sizeof(mnt)) || waited == 600)
			break;
		if (waited == 10)
			fprintf(stderr, "mmsbfs: %s: waiting for the previous daemon to close the store\n", o->store);
		usleep(100000);
	}
	close(fd);
	if (rc == -EBUSY) {
		pid = mmsbfs_lock_holder(o->store_abs);
		if (pid > 0)
			snprintf(err, cap, "%s: store is in use by mmsbfs process %d%s%s (one daemon per store, %s)",
				 o->store, (int)pid, mnt[0] ? " mounted on " : "", mnt,
				 o->read_only ? "read-only or not" : "whatever its options");
		else
			snprintf(err, cap, "%s: store is in use by another mmsbfs", o->store);
	} else {
		snprintf(err, cap, "%s: cannot lock the store: %s", o->store, strerror(-rc));
	}
	return rc;
}

/* ---- undo --------------------------------------------------------------------- */

static int su_rm_one(const char *path, const struct stat *s, int flag, struct FTW *ftw)
{
	if (ftw->level == 0)
		return 0; /* STORE itself: the caller decides */
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void mmsbfs_startup_finish(const struct mmsbfs_opts *o, struct mmsbfs_startup *su)
{
	/* only with the lock held: then no other daemon can have written there */
	if (!su->committed && su->lock_fd >= 0 && (su->created_dir || su->was_empty)) {
		nftw(o->store_abs, su_rm_one, 16, FTW_DEPTH | FTW_PHYS);
		if (su->created_dir)
			rmdir(o->store_abs);
	}
	if (su->lock_fd >= 0)
		close(su->lock_fd);
	su->lock_fd = -1;
}

/* ---- sd_notify ------------------------------------------------------------------ */

void mmsbfs_sd_notify(const char *sock, const char *state)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	size_t len;
	int fd;

	if (sock == NULL || (sock[0] != '/' && sock[0] != '@'))
		return;
	len = strlen(sock);
	if (len >= sizeof(addr.sun_path))
		return;
	memcpy(addr.sun_path, sock, len);
	if (sock[0] == '@')
		addr.sun_path[0] = '\0'; /* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		len = 0;
	close(fd);
}
