/* io.c - the POSIX I/O table and short-write loops.  See io.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

static int posix_openat(void *ctx, int dirfd, const char *path, int flags, mode_t mode)
{
	int fd = openat(dirfd, path, flags | O_CLOEXEC, mode);

	return fd < 0 ? -errno : fd;
}

static ssize_t posix_pread(void *ctx, int fd, void *buf, size_t n, off_t off)
{
	ssize_t r = pread(fd, buf, n, off);

	return r < 0 ? -errno : r;
}

static ssize_t posix_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off)
{
	ssize_t r = pwrite(fd, buf, n, off);

	return r < 0 ? -errno : r;
}

static int posix_fsync(void *ctx, int fd)
{
	return fsync(fd) < 0 ? -errno : 0;
}

static int posix_ftruncate(void *ctx, int fd, off_t len)
{
	return ftruncate(fd, len) < 0 ? -errno : 0;
}

static int posix_renameat(void *ctx, int olddir, const char *oldpath, int newdir, const char *newpath)
{
	return renameat(olddir, oldpath, newdir, newpath) < 0 ? -errno : 0;
}

static int posix_unlinkat(void *ctx, int dirfd, const char *path, int flags)
{
	return unlinkat(dirfd, path, flags) < 0 ? -errno : 0;
}

static int posix_mkdirat(void *ctx, int dirfd, const char *path, mode_t mode)
{
	return mkdirat(dirfd, path, mode) < 0 ? -errno : 0;
}

static int posix_close(void *ctx, int fd)
{
	return close(fd) < 0 ? -errno : 0;
}

const struct mmsb_io_ops mmsb_io_posix = {
	.ctx = NULL,
	.openat = posix_openat,
	.pread = posix_pread,
	.pwrite = posix_pwrite,
	.fsync = posix_fsync,
	.ftruncate = posix_ftruncate,
	.renameat = posix_renameat,
	.unlinkat = posix_unlinkat,
	.mkdirat = posix_mkdirat,
	.close = posix_close,
};

int mmsb_io_pwrite_all(const struct mmsb_io_ops *io, int fd, const void *buf, size_t n, off_t off)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = io->pwrite(io->ctx, fd, p, n, off);

		if (w == -EINTR)
			continue;
		if (w < 0)
			return (int)w;
		if (w == 0)
			return -EIO; /* no progress: treat as an I/O error */
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

ssize_t mmsb_io_pread_all(const struct mmsb_io_ops *io, int fd, void *buf, size_t n, off_t off)
{
	char *p = buf;
	size_t done = 0;

	while (done < n) {
		ssize_t r = io->pread(io->ctx, fd, p + done, n - done, off + (off_t)done);

		if (r == -EINTR)
			continue;
		if (r < 0)
			return r;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int mmsb_io_replace(const struct mmsb_io_ops *io, int dirfd, const char *name, const void *buf, size_t n)
{
	char tmp[256];
	int fd, rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", name) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = io->openat(io->ctx, dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return fd;
	rc = mmsb_io_pwrite_all(io, fd, buf, n, 0);
	if (rc == 0)
		rc = io->fsync(io->ctx, fd); /* (1) the bytes, before the name */
	io->close(io->ctx, fd);
	if (rc == 0)
		rc = io->renameat(io->ctx, dirfd, tmp, dirfd, name);
	if (rc == 0)
		rc = io->fsync(io->ctx, dirfd); /* (2) the name */
	return rc;
}

int mmsb_io_fsync(const struct mmsb_io_ops *io, int fd)
{
	return io->fsync(io->ctx, fd);
}

void mmsb_io_close(const struct mmsb_io_ops *io, int fd)
{
	if (fd >= 0)
		io->close(io->ctx, fd);
}
