/* io.h - the I/O operations table.
 *
 * Every system call libmmsb makes on the store directory goes through a
 * struct mmsb_io_ops, passed per store (mmsb_store_opts.io), so tests can
 * inject EIO, ENOSPC and short writes (tests/fakes/io_fake.c), as SQLite's
 * aSyscall[] does.  Every op returns >= 0 or -errno.
 */
#ifndef MMSB_IO_H
#define MMSB_IO_H

#include <stddef.h>
#include <sys/types.h>

struct mmsb_io_ops {
	void *ctx; /* passed to every op */
	int (*openat)(void *ctx, int dirfd, const char *path, int flags, mode_t mode); /* fd */
	ssize_t (*pread)(void *ctx, int fd, void *buf, size_t n, off_t off);
	ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t n, off_t off);
	int (*fsync)(void *ctx, int fd); /* fsync(2): data and metadata */
	int (*ftruncate)(void *ctx, int fd, off_t len);
	int (*renameat)(void *ctx, int olddir, const char *oldpath, int newdir, const char *newpath);
	int (*unlinkat)(void *ctx, int dirfd, const char *path, int flags);
	int (*mkdirat)(void *ctx, int dirfd, const char *path, mode_t mode);
	int (*close)(void *ctx, int fd);
};

/* The POSIX table. */
extern const struct mmsb_io_ops mmsb_io_posix;

/* Loop over short writes / reads.  pread_all returns the bytes read (short
 * only at EOF). */
int mmsb_io_pwrite_all(const struct mmsb_io_ops *io, int fd, const void *buf, size_t n, off_t off);
ssize_t mmsb_io_pread_all(const struct mmsb_io_ops *io, int fd, void *buf, size_t n, off_t off);
/* Replace dirfd/name with buf atomically and durably: write name.tmp,
 * fsync it, rename it over name, fsync the directory.  0 or -errno (the
 * old file is intact unless the rename happened). */
int mmsb_io_replace(const struct mmsb_io_ops *io, int dirfd, const char *name, const void *buf, size_t n);
/* fsync a directory by fd. */
int mmsb_io_fsync(const struct mmsb_io_ops *io, int fd);
void mmsb_io_close(const struct mmsb_io_ops *io, int fd); /* fd < 0 is a no-op */

#endif
