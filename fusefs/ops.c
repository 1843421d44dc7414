/* ops.c - the fuse_lowlevel_ops table of mmsbfs.
 *
 * Every handler decodes its request, calls tree.c or xattr.c, and replies.
 * This file is the only place where a negative errno becomes FUSE's
 * positive one (ops_reply_err), and the only place that replies.
 *
 * Lookup counts (fuse_lowlevel.h, forget): every fuse_reply_entry /
 * fuse_reply_create that reaches the kernel adds one to the ino's count;
 * when the reply fails (the request was interrupted) the count taken for
 * it is handed back at once.  Live nodes ignore counts entirely; see
 * inode.h for the synthetic ones.
 *
 * Round trips saved on purpose: GETXATTR security.capability is answered
 * before anything else; O_TRUNC is handled inside OPEN (atomic_o_trunc);
 * read-only opens set noflush; snapshot directories are cached by the
 * kernel (cache_readdir); the live tree caches negative lookups.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>

#include "feed.h"
#include "tree.h"
#include "wire.h"
#include "xattr.h"

#define OPS_STACK_READ 131072u	/* reads up to this size use a stack buffer */
#define OPS_STACK_XATTR 4096u	/* xattr values/lists up to this size, too */

/* The one sign flip of the code base: -errno in, FUSE's positive errno out. */
static void ops_reply_err(fuse_req_t req, int rc)
{
	assert(rc <= 0);
	fuse_reply_err(req, -rc);
}

static struct mmsbfs *ops_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void ops_reply_entry(fuse_req_t req, struct mmsbfs *fs, int rc, const struct fuse_entry_param *e)
{
	if (rc < 0)
		ops_reply_err(req, rc);
	else if (fuse_reply_entry(req, e) != 0 && e->ino != 0)
		mmsbfs_tree_forget(fs, e->ino, 1); /* never reached the kernel */
}

static void ops_caller(fuse_req_t req, struct mmsbfs_caller *who)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	who->uid = ctx->uid;
	who->gid = ctx->gid;
}

/* The caller's credentials for the core's permission checks: fsuid, fsgid
 * and the supplementary groups of the calling thread as the kernel holds
 * them now (fuse_req_getgroups reads /proc/PID/task/TID/status), so
 * setgroups(2), newgrp and --clear-groups count as they do for open(2),
 * which the user database (getgrouplist) would not reflect.  When they
 * cannot be read (the caller already exited, another pid namespace), no
 * supplementary group is counted: that can only deny.  *groups is malloc'd
 * past OPS_GROUPS entries; free it when it is not stack. */
#define OPS_GROUPS 64u
static void ops_cred(fuse_req_t req, struct mmsb_cred *c, uint32_t *stack, uint32_t **groups)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t g[OPS_GROUPS], *gp = g;
	int n = fuse_req_getgroups(req, OPS_GROUPS, g), i;

	*groups = stack;
	if (n > (int)OPS_GROUPS) {
		gp = malloc((size_t)n * sizeof(*gp));
		*groups = malloc((size_t)n * sizeof(**groups));
		if (!gp || !*groups || fuse_req_getgroups(req, n, gp) != n) {
			free(*groups);
			*groups = stack;
			n = 0;
		}
	}
	for (i = 0; i < n; i++)
		(*groups)[i] = (uint32_t)gp[i];
	if (gp != g)
		free(gp);
	*c = (struct mmsb_cred){ctx->uid, ctx->gid, n > 0 ? (size_t)n : 0, *groups};
}

/* ---- session ------------------------------------------------------------- */

static void ops_init(void *userdata, struct fuse_conn_info *conn)
{
	struct mmsbfs *fs = userdata;

	/* notify.c invalidates exactly what the kernel cannot see; mtime
	 * checks would only throw away good cached pages after our own
	 * writes and cost a GETATTR per read. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/* suid/sgid killing: the kernel does it (SETATTR) unless wire.c
	 * negotiated KILLPRIV_V2, which makes it ours (tree.c). */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	/* No writeback cache: one write(2), one epoch.  No splice: wire.c
	 * must see every request in a plain buffer. */
	conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ);
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->time_gran = 1;
	mmsbfs_diag(fs, MMSB_DIAG_DEBUG, "init: protocol 7.%u, max_write %u, max_readahead %u, want 0x%x",
		    conn->proto_minor, conn->max_write, conn->max_readahead, conn->want);
}

static void ops_destroy(void *userdata)
{
	struct mmsbfs *fs = userdata;

	/* Lookup counts drop to zero at unmount, FORGETs or not. */
	mmsbfs_itab_free(fs->itab);
	fs->itab = NULL;
}

/* ---- names ------------------------------------------------------------------ */

static void ops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mmsbfs *fs = ops_fs(req);
	struct fuse_entry_param e;
	int rc = mmsbfs_tree_lookup(fs, parent, name, &e);

	ops_reply_entry(req, fs, rc, &e);
}

static void ops_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	mmsbfs_tree_forget(ops_fs(req), ino, nlookup);
	fuse_reply_none(req);
}

static void ops_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct mmsbfs *fs = ops_fs(req);
	size_t i;

	for (i = 0; i < count; i++)
		mmsbfs_tree_forget(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void ops_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	double timeout;
	int rc = mmsbfs_tree_getattr(ops_fs(req), ino, &st, &timeout);

	if (rc < 0)
		ops_reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, timeout);
}

static void ops_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	struct stat st;
	double timeout;
	int rc = mmsbfs_tree_setattr(ops_fs(req), ino, attr, to_set, &st, &timeout);

	if (rc < 0)
		ops_reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, timeout);
}

static void ops_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	ssize_t len = mmsbfs_tree_readlink(ops_fs(req), ino, buf, sizeof(buf));

	if (len < 0)
		ops_reply_err(req, (int)len);
	else
		fuse_reply_readlink(req, buf);
}

static void ops_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct mmsbfs *fs = ops_fs(req);
	struct fuse_entry_param e;
	struct mmsbfs_caller who;
	int rc;

	ops_caller(req, &who);
	/* bind(2) of a unix socket arrives here too, as S_IFSOCK */
	rc = mmsbfs_tree_mknod(fs, parent, name, mode, rdev, NULL, &who, &e);
	ops_reply_entry(req, fs, rc, &e);
}

static void ops_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct mmsbfs *fs = ops_fs(req);
	struct fuse_entry_param e;
	struct mmsbfs_caller who;
	int rc;

	ops_caller(req, &who);
	rc = mmsbfs_tree_mknod(fs, parent, name, (mode & 07777) | S_IFDIR, 0, NULL, &who, &e);
	ops_reply_entry(req, fs, rc, &e);
}

static void ops_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct mmsbfs *fs = ops_fs(req);
	struct fuse_entry_param e;
	struct mmsbfs_caller who;
	int rc;

	ops_caller(req, &who);
	rc = mmsbfs_tree_mknod(fs, parent, name, S_IFLNK | 0777, 0, link, &who, &e);
	ops_reply_entry(req, fs, rc, &e);
}

static void ops_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	ops_reply_err(req, mmsbfs_tree_unlink(ops_fs(req), parent, name));
}

static void ops_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	ops_reply_err(req, mmsbfs_tree_rmdir(ops_fs(req), parent, name));
}

static void ops_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		       const char *newname, unsigned int flags)
{
	ops_reply_err(req, mmsbfs_tree_rename(ops_fs(req), parent, name, newparent, newname, flags));
}

static void ops_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct mmsbfs *fs = ops_fs(req);
	struct fuse_entry_param e;
	int rc = mmsbfs_tree_link(fs, ino, newparent, newname, &e);

	ops_reply_entry(req, fs, rc, &e);
}

/* ---- files ---------------------------------------------------------------------- */

static void ops_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		       struct fuse_file_info *fi)
{
	struct mmsbfs *fs = ops_fs(req);
	struct fuse_entry_param e;
	struct mmsbfs_caller who;
	int rc;

	ops_caller(req, &who);
	rc = mmsbfs_tree_create(fs, parent, name, mode, &who, fi, &e);
	if (rc < 0) {
		ops_reply_err(req, rc);
	} else if (fuse_reply_create(req, &e, fi) != 0) {
		mmsbfs_tree_release(fs, e.ino); /* no RELEASE will come */
		mmsbfs_tree_forget(fs, e.ino, 1);
	}
}

/* The change feed: each open reads as its opener may see (feed.h). */
static int ops_open_feed(fuse_req_t req, struct mmsbfs *fs, struct fuse_file_info *fi)
{
	uint32_t stack[OPS_GROUPS], *groups;
	struct mmsbfs_feed_reader *r = NULL;
	struct mmsb_cred who;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return -EROFS;
	ops_cred(req, &who, stack, &groups);
	rc = mmsbfs_feed_open(fs->feed, fs->st, &who, &r);
	if (groups != stack)
		free(groups);
	fi->direct_io = 1;
	fi->fh = (uint64_t)(uintptr_t)r;
	return rc;
}

static void ops_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mmsbfs *fs = ops_fs(req);
	int rc = ino == MMSBFS_INO_FEED ? ops_open_feed(req, fs, fi) : mmsbfs_tree_open(fs, ino, fi);

	if (rc < 0)
		ops_reply_err(req, rc);
	else if (fuse_reply_open(req, fi) != 0)
		mmsbfs_tree_release(fs, ino); /* no RELEASE will come */
}

static void ops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	char stack[OPS_STACK_READ];
	char *buf = size <= sizeof(stack) ? stack : malloc(size);
	ssize_t len;

	if (buf == NULL) {
		ops_reply_err(req, -ENOMEM);
		return;
	}
	if (ino == MMSBFS_INO_FEED) { /* remember how far this open has read (poll) */
		struct mmsbfs_feed_reader *r = (struct mmsbfs_feed_reader *)(uintptr_t)fi->fh;

		len = mmsbfs_feed_read_as(ops_fs(req)->feed, r, (uint64_t)off, buf, size);
		if (len >= 0)
			*(uint64_t *)r = (uint64_t)off + (uint64_t)len;
	} else {
		len = mmsbfs_tree_read(ops_fs(req), ino, (uint64_t)off, buf, size);
	}
	if (len < 0)
		ops_reply_err(req, (int)len);
	else
		fuse_reply_buf(req, buf, (size_t)len);
	if (buf != stack)
		free(buf);
}

static void ops_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	ssize_t len = mmsbfs_tree_write(ops_fs(req), ino, (uint64_t)off, buf, size, fi->flags);

	if (len < 0)
		ops_reply_err(req, (int)len);
	else
		fuse_reply_write(req, (size_t)len);
}

static void ops_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* Write-through: every WRITE is committed before it is answered, and
	 * the kernel has written back dirty mmap pages before sending this. */
	ops_reply_err(req, 0);
}

static void ops_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino == MMSBFS_INO_FEED)
		mmsbfs_feed_close((struct mmsbfs_feed_reader *)(uintptr_t)fi->fh);
	else
		mmsbfs_tree_release(ops_fs(req), ino);
	ops_reply_err(req, 0);
}

/* poll(2): the change feed waits for its next line; everything else is
 * always ready. */
static void ops_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	unsigned ev = POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM;

	if (ino == MMSBFS_INO_FEED)
		ev = mmsbfs_feed_poll(ops_fs(req)->feed, *(uint64_t *)(uintptr_t)fi->fh, ph);
	else if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, ev);
}

static void ops_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	ops_reply_err(req, mmsbfs_tree_fsync(ops_fs(req), ino));
}

static void ops_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			  struct fuse_file_info *fi)
{
	int rc = -EINVAL;

	if (off >= 0 && len > 0)
		rc = mmsbfs_tree_fallocate(ops_fs(req), ino, mode, (uint64_t)off, (uint64_t)len);
	ops_reply_err(req, rc);
}

/* ---- directories ------------------------------------------------------------------ */

static void ops_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int rc = mmsbfs_tree_opendir(ops_fs(req), ino, fi);

	if (rc < 0)
		ops_reply_err(req, rc);
	else
		fuse_reply_open(req, fi);
}

static void ops_readdir_any(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct mmsbfs *fs = ops_fs(req);
	char stack[8192];
	char *buf = size <= sizeof(stack) ? stack : malloc(size);
	ssize_t len;

	if (buf == NULL) {
		ops_reply_err(req, -ENOMEM);
		return;
	}
	len = mmsbfs_tree_readdir(fs, req, ino, (uint64_t)off, buf, size, plus);
	if (len < 0)
		ops_reply_err(req, (int)len);
	else if (fuse_reply_buf(req, buf, (size_t)len) != 0 && plus)
		mmsbfs_wire_undo_direntplus(fs, buf, (size_t)len); /* the kernel counted none */
	if (buf != stack)
		free(buf);
}

static void ops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	ops_readdir_any(req, ino, size, off, false);
}

static void ops_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	ops_readdir_any(req, ino, size, off, true);
}

static void ops_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	ops_reply_err(req, 0);
}

static void ops_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	ops_reply_err(req, mmsbfs_tree_fsync(ops_fs(req), ino));
}

static void ops_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	int rc = mmsbfs_tree_statfs(ops_fs(req), &sv);

	if (rc < 0)
		ops_reply_err(req, rc);
	else
		fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes ------------------------------------------------------------ */

static void ops_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
			 int flags)
{
	uint32_t stack[OPS_GROUPS], *groups;
	struct mmsb_cred who;
	int rc;

	ops_cred(req, &who, stack, &groups);
	rc = mmsbfs_xattr_set(ops_fs(req), ino, name, value, size, flags, &who);
	if (groups != stack)
		free(groups);
	ops_reply_err(req, rc);
}

/* Reply to getxattr/listxattr: a size query (size 0) or the bytes. */
static void ops_reply_xattr(fuse_req_t req, ssize_t len, const char *buf, size_t size)
{
	if (len < 0)
		ops_reply_err(req, (int)len);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else
		fuse_reply_buf(req, buf, (size_t)len);
}

static void ops_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char stack[OPS_STACK_XATTR], *buf;
	ssize_t len;

	if (mmsbfs_xattr_is_capability(name)) { /* every write(2) may ask: no lock, no store */
		atomic_fetch_add_explicit(&ops_fs(req)->n_capability, 1, memory_order_relaxed);
		ops_reply_err(req, -ENODATA); /* frees req */
		return;
	}
	buf = size <= sizeof(stack) ? stack : malloc(size);
	if (buf == NULL) {
		ops_reply_err(req, -ENOMEM);
		return;
	}
	len = mmsbfs_xattr_get(ops_fs(req), ino, name, size ? buf : NULL, size);
	ops_reply_xattr(req, len, buf, size);
	if (buf != stack)
		free(buf);
}

static void ops_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char stack[OPS_STACK_XATTR];
	char *buf = size <= sizeof(stack) ? stack : malloc(size);
	ssize_t len;

	if (buf == NULL) {
		ops_reply_err(req, -ENOMEM);
		return;
	}
	len = mmsbfs_xattr_list(ops_fs(req), ino, size ? buf : NULL, size);
	ops_reply_xattr(req, len, buf, size);
	if (buf != stack)
		free(buf);
}

static void ops_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	ops_reply_err(req, mmsbfs_xattr_remove(ops_fs(req), ino, name));
}

const struct fuse_lowlevel_ops mmsbfs_ops = {
	.init = ops_init,
	.destroy = ops_destroy,
	.lookup = ops_lookup,
	.forget = ops_forget,
	.forget_multi = ops_forget_multi,
	.getattr = ops_getattr,
	.setattr = ops_setattr,
	.readlink = ops_readlink,
	.mknod = ops_mknod,
	.mkdir = ops_mkdir,
	.unlink = ops_unlink,
	.rmdir = ops_rmdir,
	.symlink = ops_symlink,
	.rename = ops_rename,
	.link = ops_link,
	.open = ops_open,
	.read = ops_read,
	.write = ops_write,
	.flush = ops_flush,
	.release = ops_release,
	.poll = ops_poll,
	.fsync = ops_fsync,
	.opendir = ops_opendir,
	.readdir = ops_readdir,
	.releasedir = ops_releasedir,
	.fsyncdir = ops_fsyncdir,
	.statfs = ops_statfs,
	.setxattr = ops_setxattr,
	.getxattr = ops_getxattr,
	.listxattr = ops_listxattr,
	.removexattr = ops_removexattr,
	.create = ops_create,
	.readdirplus = ops_readdirplus,
	.fallocate = ops_fallocate,
};
