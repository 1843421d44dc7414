/* io_fake.c - fault-injecting I/O table.  See io_fake.h. */
#include <stdbool.h>
#include <string.h>

#include "io_fake.h"

static int hit(struct io_fake *f, enum io_fake_op op)
{
	unsigned n = ++f->calls[op];

	if (f->fail_at[op] && (n == f->fail_at[op] || (f->fail_sticky[op] && n > f->fail_at[op])))
		return f->fail_err[op];
	return 0;
}

static int fk_openat(void *ctx, int dirfd, const char *path, int flags, mode_t mode)
{
	int rc = hit(ctx, IO_FAKE_OPEN);

	return rc ? rc : mmsb_io_posix.openat(NULL, dirfd, path, flags, mode);
}

static ssize_t fk_pread(void *ctx, int fd, void *buf, size_t n, off_t off)
{
	return mmsb_io_posix.pread(NULL, fd, buf, n, off);
}

static ssize_t fk_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off)
{
	struct io_fake *f = ctx;
	int rc = hit(f, IO_FAKE_PWRITE);

	if (rc)
		return rc;
	if (f->short_at && f->calls[IO_FAKE_PWRITE] == f->short_at && n > 1) {
		ssize_t w = mmsb_io_posix.pwrite(NULL, fd, buf, n / 2, off);

		return w; /* the caller loops; the next call may fail */
	}
	return mmsb_io_posix.pwrite(NULL, fd, buf, n, off);
}

static int fk_fsync(void *ctx, int fd)
{
	int rc = hit(ctx, IO_FAKE_FSYNC);

	return rc ? rc : mmsb_io_posix.fsync(NULL, fd);
}

static int fk_ftruncate(void *ctx, int fd, off_t len)
{
	int rc = hit(ctx, IO_FAKE_FTRUNCATE);

	return rc ? rc : mmsb_io_posix.ftruncate(NULL, fd, len);
}

static int fk_renameat(void *ctx, int od, const char *op, int nd, const char *np)
{
	int rc = hit(ctx, IO_FAKE_RENAME);

	return rc ? rc : mmsb_io_posix.renameat(NULL, od, op, nd, np);
}

static int fk_unlinkat(void *ctx, int dirfd, const char *path, int flags)
{
	return mmsb_io_posix.unlinkat(NULL, dirfd, path, flags);
}

static int fk_mkdirat(void *ctx, int dirfd, const char *path, mode_t mode)
{
	return mmsb_io_posix.mkdirat(NULL, dirfd, path, mode);
}

static int fk_close(void *ctx, int fd)
{
	return mmsb_io_posix.close(NULL, fd);
}

void io_fake_init(struct io_fake *f)
{
	memset(f, 0, sizeof(*f));
	f->ops = (struct mmsb_io_ops){
		.ctx = f, .openat = fk_openat, .pread = fk_pread, .pwrite = fk_pwrite, .fsync = fk_fsync,
		.ftruncate = fk_ftruncate, .renameat = fk_renameat, .unlinkat = fk_unlinkat,
		.mkdirat = fk_mkdirat, .close = fk_close,
	};
}

void io_fake_fail(struct io_fake *f, enum io_fake_op op, unsigned nth, int err, bool sticky)
{
	f->fail_at[op] = f->calls[op] + nth;
	f->fail_err[op] = err;
	f->fail_sticky[op] = sticky;
}
