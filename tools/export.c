/* export.c - mmsbctl export E DIR: the tree at epoch E as plain files.
 *
 * One walker over a small source interface with two implementations:
 *   - the mount: MOUNT/epochs/E read with plain syscalls (daemon running);
 *   - a snapshot: mmsb_snap_* on a store opened read-only (offline).
 * What is written: directories, pages (their bytes), symlinks, fifos,
 * sockets and device nodes (mknod(2); devices need CAP_MKNOD, else they
 * are skipped with a warning), hard links (a node with several names is
 * written once, its other names are link(2)s to it), permission
 * bits, atime/mtime, and user.* extended attributes except the virtual
 * read-only ones (user.mmsb.id, .epoch, .version, .head, ...), which
 * describe the store rather than the data.  Ownership is not copied.
 * Directories get their mode and times after their contents are written.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mmsbctl.h"

#define EXP_CHUNK (1u << 20)	 /* bytes copied per read */
#define EXP_XATTR_LIST 65536u	 /* listxattr buffer */

/* What the walker needs to know of a node. */
struct exp_node {
	enum mmsb_type type; /* any node type */
	uint32_t mode;	     /* permission bits */
	uint64_t ino;	     /* identity: equal for names of one node */
	uint32_t nlink;	     /* names of the node (dirs: ignored) */
	uint64_t rdev;	     /* devices: the device */
	int64_t atime_ns;    /* times to set */
	int64_t mtime_ns;
};

/* A source of nodes, addressed by root-relative path ("" is the root). */
struct exp_src {
	int (*stat)(void *a, const char *path, struct exp_node *n);
	int (*list)(void *a, const char *path, struct ctl_buf *names); /* NUL-separated */
	int (*copy)(void *a, const char *path, int dst);		  /* page bytes into dst */
	ssize_t (*readlink)(void *a, const char *path, char *buf, size_t cap);
	ssize_t (*listxattr)(void *a, const char *path, char *buf, size_t cap);
	ssize_t (*getxattr)(void *a, const char *path, const char *name, void *buf, size_t cap);
	void *arg; /* the source's state */
};

/* A node with several names, and where its first name was written. */
struct exp_link {
	uint64_t ino; /* exp_node.ino */
	char *dpath;  /* malloc'd target path */
};

/* State of one export. */
struct exp_run {
	const struct exp_src *src; /* where from */
	const char *dst;	   /* target root directory */
	char *msg;		   /* error message buffer */
	size_t cap;		   /* its size */
	bool xattr_warned;	   /* target refused user xattrs once */
	bool dev_warned;	   /* device nodes could not be made once */
	struct exp_link *links;	   /* nodes with several names written so far */
	size_t n_links, cap_links; /* used / allocated entries of links */
	char *xbuf;		   /* EXP_XATTR_LIST bytes for names */
	char *vbuf;		   /* MMSB_XATTR_SIZE_MAX bytes for a value */
	struct mctl_progress prog; /* files and bytes written, on a terminal */
};

/* ---- source: the mount ----------------------------------------------------------- */

static int exp_full(const char *base, const char *path, char *out, size_t cap)
{
	if ((size_t)snprintf(out, cap, "%s%s%s", base, *path ? "/" : "", path) >= cap)
		return -ENAMETOOLONG;
	return 0;
}

static int fs_stat(void *a, const char *path, struct exp_node *n)
{
	char full[PATH_MAX];
	struct stat sb;
	int rc = exp_full(a, path, full, sizeof(full));

	if (rc == 0 && lstat(full, &sb) < 0)
		rc = -errno;
	if (rc < 0)
		return rc;
	n->type = S_ISDIR(sb.st_mode)	? MMSB_T_DIR
		  : S_ISLNK(sb.st_mode) ? MMSB_T_SYMLINK
		  : S_ISFIFO(sb.st_mode) ? MMSB_T_FIFO
		  : S_ISSOCK(sb.st_mode) ? MMSB_T_SOCK
		  : S_ISCHR(sb.st_mode) ? MMSB_T_CHR
		  : S_ISBLK(sb.st_mode) ? MMSB_T_BLK
					: MMSB_T_PAGE;
	n->mode = sb.st_mode & 07777;
	n->ino = sb.st_ino;
	n->nlink = (uint32_t)sb.st_nlink;
	n->rdev = sb.st_rdev;
	n->atime_ns = (int64_t)sb.st_atim.tv_sec * 1000000000 + sb.st_atim.tv_nsec;
	n->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
	return 0;
}

static int fs_list(void *a, const char *path, struct ctl_buf *names)
{
	char full[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rc = exp_full(a, path, full, sizeof(full));

	if (rc < 0)
		return rc;
	d = opendir(full);
	if (d == NULL)
		return -errno;
	while (rc == 0 && (errno = 0, de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			rc = ctl_buf_put(names, de->d_name, strlen(de->d_name) + 1);
	if (rc == 0 && errno != 0)
		rc = -errno;
	closedir(d);
	return rc;
}

static int exp_write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fs_copy(void *a, const char *path, int dst)
{
	char full[PATH_MAX], *buf = malloc(EXP_CHUNK);
	int fd = -1, rc = buf ? exp_full(a, path, full, sizeof(full)) : -ENOMEM;
	ssize_t n = 1;

	if (rc == 0 && (fd = open(full, O_RDONLY | O_CLOEXEC)) < 0)
		rc = -errno;
	while (rc == 0 && n > 0) {
		n = read(fd, buf, EXP_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -errno;
		else
			rc = exp_write_all(dst, buf, (size_t)n);
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static ssize_t fs_readlink(void *a, const char *path, char *buf, size_t cap)
{
	char full[PATH_MAX];
	int rc = exp_full(a, path, full, sizeof(full));
	ssize_t n = rc < 0 ? rc : readlink(full, buf, cap);

	return n < 0 && rc == 0 ? -errno : n;
}

static ssize_t fs_listxattr(void *a, const char *path, char *buf, size_t cap)
{
	char full[PATH_MAX];
	int rc = exp_full(a, path, full, sizeof(full));
	ssize_t n = rc < 0 ? rc : llistxattr(full, buf, cap);

	return n < 0 && rc == 0 ? -errno : n;
}

static ssize_t fs_getxattr(void *a, const char *path, const char *name, void *buf, size_t cap)
{
	char full[PATH_MAX];
	int rc = exp_full(a, path, full, sizeof(full));
	ssize_t n = rc < 0 ? rc : lgetxattr(full, name, buf, cap);

	return n < 0 && rc == 0 ? -errno : n;
}

/* ---- source: a snapshot ------------------------------------------------------------- */

static int snap_stat(void *a, const char *path, struct exp_node *n)
{
	struct mmsb_attr at;
	int rc = mmsb_snap_resolve(a, path, &at);

	if (rc < 0)
		return rc;
	n->type = at.type;
	n->mode = at.mode;
	n->ino = at.id;
	n->nlink = at.nlink;
	n->rdev = at.rdev;
	n->atime_ns = at.atime_ns;
	n->mtime_ns = at.mtime_ns;
	return 0;
}

static int snap_list_one(void *arg, const char *name, const struct mmsb_attr *a, uint64_t cookie)
{
	return ctl_buf_put(arg, name, strlen(name) + 1) < 0;
}

static int snap_list(void *a, const char *path, struct ctl_buf *names)
{
	struct mmsb_attr at;
	int rc = mmsb_snap_resolve(a, path, &at);

	return rc < 0 ? rc : mmsb_snap_readdir(a, at.id, 0, snap_list_one, names);
}

static int snap_copy(void *a, const char *path, int dst)
{
	char *buf = malloc(EXP_CHUNK);
	struct mmsb_attr at;
	uint64_t off = 0;
	ssize_t n = 1;
	int rc = buf ? mmsb_snap_resolve(a, path, &at) : -ENOMEM;

	while (rc == 0 && n > 0) {
		n = mmsb_snap_read(a, at.id, off, buf, EXP_CHUNK);
		if (n < 0)
			rc = (int)n;
		else
			rc = exp_write_all(dst, buf, (size_t)n);
		off += n > 0 ? (uint64_t)n : 0;
	}
	free(buf);
	return rc;
}

static ssize_t snap_readlink(void *a, const char *path, char *buf, size_t cap)
{
	struct mmsb_attr at;
	int rc = mmsb_snap_resolve(a, path, &at);

	return rc < 0 ? rc : mmsb_snap_readlink(a, at.id, buf, cap);
}

static ssize_t snap_listxattr(void *a, const char *path, char *buf, size_t cap)
{
	struct mmsb_attr at;
	int rc = mmsb_snap_resolve(a, path, &at);

	return rc < 0 ? rc : mmsb_snap_listxattr(a, at.id, buf, cap);
}

static ssize_t snap_getxattr(void *a, const char *path, const char *name, void *buf, size_t cap)
{
	struct mmsb_attr at;
	int rc = mmsb_snap_resolve(a, path, &at);

	return rc < 0 ? rc : mmsb_snap_getxattr(a, at.id, name, buf, cap);
}

/* ---- the walker ------------------------------------------------------------------------ */

/* Virtual attributes computed by mmsbfs: not data, not exported. */
static const char *const exp_virtual[] = {
	"user.mmsb.id",	    "user.mmsb.epoch", "user.mmsb.version", "user.mmsb.head",
	"user.mmsb.oldest", "user.mmsb.pages", "user.mmsb.bytes",   "user.mmsb.log_bytes",
};

static bool exp_xattr_wanted(const char *name)
{
	size_t i;

	if (strncmp(name, "user.", 5) != 0)
		return false;
	for (i = 0; i < CTL_ARRAY_SIZE(exp_virtual); i++)
		if (strcmp(name, exp_virtual[i]) == 0)
			return false;
	return true;
}

static int exp_fail(struct exp_run *r, int rc, const char *what, const char *path)
{
	snprintf(r->msg, r->cap, "export: %s %s: %s", what, *path ? path : "/", strerror(-rc));
	return rc;
}

/* Copy the user xattrs of path onto the open fd. */
static int exp_xattrs(struct exp_run *r, const char *path, int fd)
{
	ssize_t n = r->src->listxattr(r->src->arg, path, r->xbuf, EXP_XATTR_LIST), v;
	const char *name;

	if (n == -ENOTSUP || n == -ENODATA)
		return 0;
	if (n < 0)
		return exp_fail(r, (int)n, "cannot list the attributes of", path);
	for (name = r->xbuf; name < r->xbuf + n; name += strlen(name) + 1) {
		if (!exp_xattr_wanted(name))
			continue;
		v = r->src->getxattr(r->src->arg, path, name, r->vbuf, MMSB_XATTR_SIZE_MAX);
		if (v == -ENODATA)
			continue;
		if (v < 0)
			return exp_fail(r, (int)v, "cannot read an attribute of", path);
		if (fsetxattr(fd, name, r->vbuf, (size_t)v, 0) == 0)
			continue;
		if ((errno == ENOTSUP || errno == EPERM) && !r->xattr_warned) {
			fprintf(stderr, "mmsbctl: warning: %s does not take user.* attributes (%s): they are not exported\n",
				r->dst, strerror(errno));
			r->xattr_warned = true;
		}
		if (errno != ENOTSUP && errno != EPERM)
			return exp_fail(r, -errno, "cannot set an attribute on the copy of", path);
	}
	return 0;
}

static void exp_times(const struct exp_node *n, struct timespec ts[2])
{
	ts[0].tv_sec = n->atime_ns / 1000000000;
	ts[0].tv_nsec = n->atime_ns % 1000000000;
	ts[1].tv_sec = n->mtime_ns / 1000000000;
	ts[1].tv_nsec = n->mtime_ns % 1000000000;
}

/* Finish a page or directory: xattrs, mode, then times (last: the others
 * would change them). */
static int exp_finish(struct exp_run *r, const char *path, const struct exp_node *n, int fd)
{
	struct timespec ts[2];
	int rc = exp_xattrs(r, path, fd);

	exp_times(n, ts);
	if (rc == 0 && fchmod(fd, n->mode) < 0)
		rc = exp_fail(r, -errno, "cannot set the mode of the copy of", path);
	if (rc == 0 && futimens(fd, ts) < 0)
		rc = exp_fail(r, -errno, "cannot set the times of the copy of", path);
	return rc;
}

static int exp_page(struct exp_run *r, const char *path, const char *dpath, const struct exp_node *n)
{
	struct stat sb;
	int fd = open(dpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), rc = 0;

	if (fd < 0)
		return exp_fail(r, -errno, "cannot create the copy of", path);
	rc = r->src->copy(r->src->arg, path, fd);
	if (rc < 0)
		exp_fail(r, rc, "cannot copy", path);
	else if (r->prog.on && fstat(fd, &sb) == 0)
		mctl_progress_add(&r->prog, 1, (uint64_t)sb.st_size);
	if (rc == 0)
		rc = exp_finish(r, path, n, fd);
	close(fd);
	return rc;
}

static int exp_symlink(struct exp_run *r, const char *path, const char *dpath, const struct exp_node *n)
{
	char target[PATH_MAX + 1];
	struct timespec ts[2];
	ssize_t len = r->src->readlink(r->src->arg, path, target, PATH_MAX);

	if (len < 0)
		return exp_fail(r, (int)len, "cannot read the symlink", path);
	target[len] = '\0';
	if (symlink(target, dpath) < 0)
		return exp_fail(r, -errno, "cannot create the copy of", path);
	exp_times(n, ts);
	utimensat(AT_FDCWD, dpath, ts, AT_SYMLINK_NOFOLLOW); /* best effort */
	return 0;
}

static int exp_node_at(struct exp_run *r, const char *path);

/* A fifo, socket or device: mknod(2), then mode and times (no xattrs: Linux
 * keeps no user.* attributes on special files). */
static int exp_special(struct exp_run *r, const char *path, const char *dpath, const struct exp_node *n)
{
	static const mode_t fmt[] = {[MMSB_T_FIFO] = S_IFIFO, [MMSB_T_SOCK] = S_IFSOCK, [MMSB_T_CHR] = S_IFCHR,
				     [MMSB_T_BLK] = S_IFBLK};
	struct timespec ts[2];

	if (mknod(dpath, fmt[n->type] | (n->mode & 0777), (dev_t)n->rdev) < 0) {
		if (errno == EPERM && (n->type == MMSB_T_CHR || n->type == MMSB_T_BLK)) {
			if (!r->dev_warned)
				fprintf(stderr, "mmsbctl: warning: cannot make device nodes in %s (%s): they are not exported\n",
					r->dst, strerror(errno));
			r->dev_warned = true;
			return 0;
		}
		return exp_fail(r, -errno, "cannot create the copy of", path);
	}
	exp_times(n, ts);
	if (chmod(dpath, n->mode) < 0)
		return exp_fail(r, -errno, "cannot set the mode of the copy of", path);
	if (utimensat(AT_FDCWD, dpath, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return exp_fail(r, -errno, "cannot set the times of the copy of", path);
	return 0;
}

/* Names of a node after its first: link(2) to the first copy.  1: done. */
static int exp_hardlink(struct exp_run *r, const char *path, const char *dpath, const struct exp_node *n)
{
	size_t i;

	if (n->type == MMSB_T_DIR || n->nlink < 2)
		return 0;
	for (i = 0; i < r->n_links; i++)
		if (r->links[i].ino == n->ino)
			return link(r->links[i].dpath, dpath) < 0 ? exp_fail(r, -errno, "cannot link the copy of", path)
								  : 1;
	if (r->n_links == r->cap_links) {
		size_t cap = r->cap_links ? r->cap_links * 2 : 16;
		struct exp_link *l = realloc(r->links, cap * sizeof(*l));

		if (!l)
			return -ENOMEM;
		r->links = l;
		r->cap_links = cap;
	}
	r->links[r->n_links].ino = n->ino;
	r->links[r->n_links].dpath = strdup(dpath);
	if (!r->links[r->n_links].dpath)
		return -ENOMEM;
	r->n_links++;
	return 0; /* the first name: written in full */
}

static int exp_dir(struct exp_run *r, const char *path, const char *dpath, const struct exp_node *n)
{
	struct ctl_buf names = {0};
	char child[PATH_MAX];
	const char *name;
	int fd, rc = 0;

	if (*path && mkdir(dpath, 0700) < 0)
		return exp_fail(r, -errno, "cannot create the copy of", path);
	rc = r->src->list(r->src->arg, path, &names);
	if (rc < 0)
		exp_fail(r, rc, "cannot list", path);
	for (name = names.p; rc == 0 && name && name < names.p + names.len; name += strlen(name) + 1) {
		if ((size_t)snprintf(child, sizeof(child), "%s%s%s", path, *path ? "/" : "", name) >= sizeof(child))
			rc = exp_fail(r, -ENAMETOOLONG, "path too long under", path);
		else
			rc = exp_node_at(r, child);
	}
	ctl_buf_free(&names);
	fd = rc < 0 ? -1 : open(dpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rc == 0 && fd < 0)
		rc = exp_fail(r, -errno, "cannot open the copy of", path);
	if (rc == 0)
		rc = exp_finish(r, path, n, fd);
	if (fd >= 0)
		close(fd);
	return rc;
}

static int exp_node_at(struct exp_run *r, const char *path)
{
	char dpath[PATH_MAX];
	struct exp_node n;
	int rc = r->src->stat(r->src->arg, path, &n);

	if (rc < 0)
		return exp_fail(r, rc, "cannot stat", path);
	if ((size_t)snprintf(dpath, sizeof(dpath), "%s%s%s", r->dst, *path ? "/" : "", path) >= sizeof(dpath))
		return exp_fail(r, -ENAMETOOLONG, "target path too long for", path);
	if (n.type == MMSB_T_DIR)
		return exp_dir(r, path, dpath, &n);
	rc = exp_hardlink(r, path, dpath, &n);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	if (n.type == MMSB_T_SYMLINK)
		return exp_symlink(r, path, dpath, &n);
	if (n.type != MMSB_T_PAGE)
		return exp_special(r, path, dpath, &n);
	return exp_page(r, path, dpath, &n);
}

/* The target: created, or an existing empty directory. */
static int exp_prepare(const char *dir, char *msg, size_t cap)
{
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (mkdir(dir, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return snprintf(msg, cap, "cannot create %s: %s: choose a writable place", dir, strerror(errno)), -errno;
	d = opendir(dir);
	if (d == NULL)
		return snprintf(msg, cap, "%s exists and is not a directory: choose a new directory", dir), -EEXIST;
	while (rc == 0 && (de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			rc = -ENOTEMPTY;
	closedir(d);
	if (rc < 0)
		snprintf(msg, cap, "%s is not empty: export into a new or empty directory", dir);
	return rc;
}

static int exp_run(const struct exp_src *src, const char *dir, char *msg, size_t cap)
{
	struct exp_run r = {.src = src, .dst = dir, .msg = msg, .cap = cap};
	int rc = exp_prepare(dir, msg, cap);

	if (rc < 0)
		return rc;
	r.xbuf = malloc(EXP_XATTR_LIST);
	r.vbuf = malloc(MMSB_XATTR_SIZE_MAX);
	mctl_progress_begin(&r.prog, "export");
	rc = r.xbuf && r.vbuf ? exp_node_at(&r, "") : -ENOMEM;
	mctl_progress_end(&r.prog);
	if (rc == -ENOMEM && msg[0] == '\0')
		snprintf(msg, cap, "export: out of memory");
	while (r.n_links > 0)
		free(r.links[--r.n_links].dpath);
	free(r.links);
	free(r.xbuf);
	free(r.vbuf);
	return rc;
}

int mctl_export_mount(const char *mount, uint64_t epoch, const char *dir, char *msg, size_t cap)
{
	char base[PATH_MAX];
	struct exp_src src = {fs_stat, fs_list, fs_copy, fs_readlink, fs_listxattr, fs_getxattr, base};

	if ((size_t)snprintf(base, sizeof(base), "%s/epochs/%" PRIu64, mount, epoch) >= sizeof(base))
		return snprintf(msg, cap, "mount path too long"), -ENAMETOOLONG;
	return exp_run(&src, dir, msg, cap);
}

int mctl_export_store(struct mmsb_store *st, uint64_t epoch, const char *dir, char *msg, size_t cap)
{
	struct exp_src src = {snap_stat, snap_list, snap_copy, snap_readlink, snap_listxattr, snap_getxattr, NULL};
	struct mmsb_snap *sn;
	int rc = mmsb_snap_open(st, epoch, &sn);

	if (rc < 0)
		return snprintf(msg, cap, "cannot open epoch %" PRIu64 ": %s", epoch, strerror(-rc)), rc;
	src.arg = sn;
	rc = exp_run(&src, dir, msg, cap);
	mmsb_snap_close(sn);
	return rc;
}
