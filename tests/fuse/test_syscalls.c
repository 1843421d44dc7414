/* test_syscalls.c - drive a mounted mmsbfs with plain system calls.
 *
 * Usage: test_syscalls MOUNTPOINT [-p PREFIX] [TEST...]
 *        test_syscalls --mmsbfs PATH/TO/mmsbfs [-p PREFIX] [TEST...]
 *        test_syscalls --list
 *
 * With a mount point, the file system must already be mounted there (the usual way:
 * tests/fuse/run_syscalls.sh mounts a fresh store and runs this).  With --mmsbfs the
 * program makes a temporary store and mount point, runs `mmsbfs -f STORE MNT` itself
 * (fork/exec), waits for the mount, runs the tests and unmounts.
 *
 * Each test works in its own directory MNT/<PREFIX><test> (PREFIX is empty by default;
 * give one to run tests again on a store that already has their directories).  Every failure prints the call,
 * what was expected and what was seen; the program goes on with the next test and
 * exits 1 if any failed, 77 (skip) without root or /dev/fuse, 0 otherwise.
 *
 * The checks follow .fusefs-spec.md and DESIGN.md.  Linked with libc only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <grp.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef RENAME_WHITEOUT
#define RENAME_WHITEOUT (1 << 2)
#endif

#define SYNTH_INO_MIN (UINT64_C(1) << 62)

static const char *g_mnt;	/* mount point */
static const char *g_test;	/* current test name */
static const char *g_prefix = "";	/* directory name prefix */
static char g_name[NAME_MAX + 1];	/* <prefix><test>: the test directory's name in the root */
static char g_dir[PATH_MAX];	/* MNT/<test> */
static int g_failed_checks;

/* ---- reporting ------------------------------------------------------------- */

static const char *en(int e)
{
	const char *n = strerrorname_np(e);
	static char buf[4][32];
	static int i;
	if (n)
		return n;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "errno %d", e);
	return buf[i];
}

__attribute__((format(printf, 2, 3))) static void failf(int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "test_syscalls: FAIL [%s] line %d: ", g_test ? g_test : "-", line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	g_failed_checks++;
}

/* Each macro returns -1 from the test on failure (after printing). */
#define FAIL(...)                                 \
	do {                                      \
		failf(__LINE__, __VA_ARGS__);     \
		return -1;                        \
	} while (0)

#define CHECK(cond)                                          \
	do {                                                 \
		if (!(cond))                                 \
			FAIL("expected %s, but it is false", #cond); \
	} while (0)

/* expr must not fail (result >= 0). */
#define OK(expr)                                                                              \
	do {                                                                                  \
		errno = 0;                                                                    \
		long ok_rc_ = (long)(expr);                                                   \
		if (ok_rc_ < 0)                                                               \
			FAIL("%s: expected success, got %ld (%s)", #expr, ok_rc_, en(errno)); \
	} while (0)

/* expr must fail with -1 and errno e. */
#define ERR(expr, e)                                                                        \
	do {                                                                                \
		errno = 0;                                                                  \
		long er_rc_ = (long)(expr);                                                 \
		int er_e_ = errno;                                                          \
		if (er_rc_ != -1 || er_e_ != (e))                                           \
			FAIL("%s: expected -1 with %s, got %ld%s%s", #expr, en(e), er_rc_,  \
			     er_rc_ == -1 ? " with " : " (success)", er_rc_ == -1 ? en(er_e_) : ""); \
	} while (0)

/* expr must fail with -1 and errno e1 or e2. */
#define ERR2(expr, e1, e2)                                                                      \
	do {                                                                                    \
		errno = 0;                                                                      \
		long er_rc_ = (long)(expr);                                                     \
		int er_e_ = errno;                                                              \
		if (er_rc_ != -1 || (er_e_ != (e1) && er_e_ != (e2)))                           \
			FAIL("%s: expected -1 with %s or %s, got %ld%s%s", #expr, en(e1), en(e2), \
			     er_rc_, er_rc_ == -1 ? " with " : " (success)",                  \
			     er_rc_ == -1 ? en(er_e_) : "");                                    \
	} while (0)

/* EQ(got, expected) for integers. */
#define EQ(got, exp)                                                                              \
	do {                                                                                      \
		long long eq_g_ = (long long)(got), eq_e_ = (long long)(exp);                      \
		if (eq_g_ != eq_e_)                                                               \
			FAIL("%s: expected %lld (%s), got %lld", #got, eq_e_, #exp, eq_g_);       \
	} while (0)

#define OPEN(fd, path, ...)                                                                    \
	do {                                                                                   \
		(fd) = open((path), __VA_ARGS__);                                              \
		if ((fd) < 0)                                                                  \
			FAIL("open(%s, %s): expected success, got %s", (path), #__VA_ARGS__, en(errno)); \
	} while (0)

/* ---- helpers ----------------------------------------------------------------- */

/* snprintf that aborts on truncation (paths never get near PATH_MAX here). */
__attribute__((format(printf, 3, 4))) static char *fmt_to(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap) {
		fprintf(stderr, "test_syscalls: path too long: %s...\n", buf);
		abort();
	}
	return buf;
}

/* Path under the test directory; 16 rotating buffers so several fit in one call. */
static const char *P(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *P(const char *fmt, ...)
{
	static char buf[16][PATH_MAX];
	static int i;
	char rel[PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rel, sizeof rel, fmt, ap);
	va_end(ap);
	i = (i + 1) % 16;
	return fmt_to(buf[i], sizeof buf[i], "%s/%s", g_dir, rel);
}

/* Path under the mount root. */
static const char *R(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *R(const char *fmt, ...)
{
	static char buf[16][PATH_MAX];
	static int i;
	char rel[PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rel, sizeof rel, fmt, ap);
	va_end(ap);
	i = (i + 1) % 16;
	return fmt_to(buf[i], sizeof buf[i], "%s/%s", g_mnt, rel);
}

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s * 0x9E3779B97F4A7C15ull + 1; }
static uint64_t rng(void)
{
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1Dull;
}
static void rng_fill(void *p, size_t n)
{
	unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(rng() >> 56);
}

static int is_decimal(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* Read a decimal virtual xattr; returns 0 or -1 (after printing). */
static int xattr_u64_at(int line, const char *path, const char *name, uint64_t *out)
{
	char buf[64];
	errno = 0;
	ssize_t n = getxattr(path, name, buf, sizeof buf - 1);
	if (n < 0) {
		failf(line, "getxattr(%s, %s): expected a decimal value, got %s", path, name, en(errno));
		return -1;
	}
	if (!is_decimal(buf, (size_t)n)) {
		buf[n] = 0;
		failf(line, "getxattr(%s, %s): expected decimal ASCII without newline, got '%s' (%zd bytes)",
		      path, name, buf, n);
		return -1;
	}
	buf[n] = 0;
	*out = strtoull(buf, NULL, 10);
	return 0;
}
#define XU64(path, name, out)                                      \
	do {                                                       \
		if (xattr_u64_at(__LINE__, (path), (name), (out))) \
			return -1;                                 \
	} while (0)
#define HEAD(out) XU64(g_mnt, "user.mmsb.head", (out))

static ssize_t write_all(int fd, const void *buf, size_t n, off_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pwrite(fd, (const char *)buf + done, n - done, off + (off_t)done);
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = EIO;
			return -1;
		}
		done += (size_t)r;
	}
	return (ssize_t)done;
}

static ssize_t read_all(int fd, void *buf, size_t n, off_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done, off + (off_t)done);
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* Create (or replace) a file with the given bytes. */
static int put_file_at(int line, const char *path, const void *buf, size_t n)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0) {
		failf(line, "open(%s, O_CREAT|O_WRONLY|O_TRUNC): %s", path, en(errno));
		return -1;
	}
	if (n && write_all(fd, buf, n, 0) != (ssize_t)n) {
		failf(line, "write %zu bytes to %s: %s", n, path, en(errno));
		close(fd);
		return -1;
	}
	if (close(fd)) {
		failf(line, "close(%s): %s", path, en(errno));
		return -1;
	}
	return 0;
}
#define PUT(path, buf, n)                                         \
	do {                                                      \
		if (put_file_at(__LINE__, (path), (buf), (n)))    \
			return -1;                                \
	} while (0)

static size_t first_diff(const unsigned char *a, const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return i;
	return n;
}

/* The file at path must hold exactly exp[0..n). */
static int expect_content_at(int line, const char *path, const void *exp, size_t n)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		failf(line, "open(%s, O_RDONLY): expected success, got %s", path, en(errno));
		return -1;
	}
	if (fstat(fd, &st)) {
		failf(line, "fstat(%s): %s", path, en(errno));
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size != n) {
		failf(line, "%s: expected size %zu, got st_size %lld", path, n, (long long)st.st_size);
		close(fd);
		return -1;
	}
	unsigned char *got = malloc(n + 1);
	if (!got)
		abort();
	ssize_t r = read_all(fd, got, n + 1, 0);
	close(fd);
	if (r != (ssize_t)n) {
		failf(line, "%s: expected to read %zu bytes, read %zd (%s)", path, n, r, r < 0 ? en(errno) : "short/long");
		free(got);
		return -1;
	}
	size_t d = first_diff(exp, got, n);
	if (d != n) {
		failf(line, "%s: content differs at offset %zu: expected byte 0x%02x, got 0x%02x", path, d,
		      ((const unsigned char *)exp)[d], got[d]);
		free(got);
		return -1;
	}
	free(got);
	return 0;
}
#define CONTENT(path, exp, n)                                           \
	do {                                                            \
		if (expect_content_at(__LINE__, (path), (exp), (n)))    \
			return -1;                                      \
	} while (0)

static size_t first_nonzero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return i;
	return n;
}

static int is_zero(const unsigned char *p, size_t n) { return first_nonzero(p, n) == n; }

static int renameat2_(const char *a, const char *b, unsigned flags)
{
	return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, flags);
}


/* ---- tests ------------------------------------------------------------------- */

static int t_create_rw(void)
{
	unsigned char buf[10000], got[10000];
	struct stat st;
	int fd;
	rng_seed(1);
	rng_fill(buf, sizeof buf);
	OPEN(fd, P("f"), O_CREAT | O_EXCL | O_RDWR, 0644);
	EQ(write(fd, buf, sizeof buf), sizeof buf);
	OK(fstat(fd, &st));
	CHECK(S_ISREG(st.st_mode));
	EQ(st.st_mode & 07777, 0644);
	EQ(st.st_size, 10000);
	EQ(st.st_nlink, 1);
	EQ(lseek(fd, 0, SEEK_SET), 0);
	EQ(read(fd, got, sizeof got), sizeof got);
	CHECK(memcmp(buf, got, sizeof buf) == 0);
	EQ(pread(fd, got, 100, 5000), 100);
	CHECK(memcmp(buf + 5000, got, 100) == 0);
	EQ(pread(fd, got, 100, 9990), 10);
	CHECK(memcmp(buf + 9990, got, 10) == 0);
	EQ(pread(fd, got, 100, 10000), 0);
	EQ(pread(fd, got, 100, 20000), 0);
	/* Overwrite in the middle at an odd offset. */
	EQ(pwrite(fd, "hello", 5, 4093), 5);
	memcpy(buf + 4093, "hello", 5);
	/* Write past EOF: the gap reads as zeros. */
	EQ(pwrite(fd, "XYZ", 3, 20000), 3);
	OK(fstat(fd, &st));
	EQ(st.st_size, 20003);
	unsigned char big[20003];
	EQ(pread(fd, big, sizeof big, 0), 20003);
	CHECK(memcmp(big, buf, 10000) == 0);
	if (!is_zero(big + 10000, 10000))
		FAIL("hole 10000..20000 after a write past EOF: expected zeros, got a non-zero byte at %zu",
		     10000 + first_nonzero(big + 10000, 10000));
	CHECK(memcmp(big + 20000, "XYZ", 3) == 0);
	OK(close(fd));
	ERR(open(P("f"), O_CREAT | O_EXCL | O_RDWR, 0644), EEXIST);
	memcpy(buf, big, 10000);
	CONTENT(P("f"), big, sizeof big);
	ERR(open(P("missing"), O_RDONLY), ENOENT);
	ERR(open(P("missing/x"), O_RDONLY), ENOENT);
	ERR(open(P("f/x"), O_CREAT | O_RDWR, 0644), ENOTDIR);
	return 0;
}

static int t_holes(void)
{
	int fd;
	struct stat st;
	const off_t off = (1 << 20) + 7;
	OPEN(fd, P("sparse"), O_CREAT | O_EXCL | O_RDWR, 0644);
	EQ(pwrite(fd, "!", 1, off), 1);
	OK(fstat(fd, &st));
	EQ(st.st_size, off + 1);
	unsigned char *b = malloc((size_t)off + 1);
	CHECK(b != NULL);
	EQ(read_all(fd, b, (size_t)off + 1, 0), off + 1);
	size_t z = first_nonzero(b, (size_t)off);
	if (z != (size_t)off) {
		free(b);
		FAIL("sparse file: expected zeros before offset %lld, got a non-zero byte at %zu", (long long)off, z);
	}
	CHECK(b[off] == '!');
	free(b);
	EQ(lseek(fd, 0, SEEK_END), off + 1);
	OK(close(fd));
	return 0;
}

static int t_truncate(void)
{
	unsigned char buf[8192], got[16384];
	struct stat st;
	int fd;
	rng_seed(2);
	rng_fill(buf, sizeof buf);
	OPEN(fd, P("t"), O_CREAT | O_EXCL | O_RDWR, 0644);
	EQ(write(fd, buf, sizeof buf), sizeof buf);
	OK(ftruncate(fd, 3000));
	OK(fstat(fd, &st));
	EQ(st.st_size, 3000);
	EQ(pread(fd, got, sizeof got, 0), 3000);
	CHECK(memcmp(got, buf, 3000) == 0);
	/* Grow again: the cut bytes must not come back. */
	OK(ftruncate(fd, 9000));
	OK(fstat(fd, &st));
	EQ(st.st_size, 9000);
	EQ(pread(fd, got, sizeof got, 0), 9000);
	CHECK(memcmp(got, buf, 3000) == 0);
	if (!is_zero(got + 3000, 6000))
		FAIL("ftruncate shrink to 3000 then grow to 9000: expected zeros in 3000..9000, got old data");
	OK(truncate(P("t"), 100));
	OK(stat(P("t"), &st));
	EQ(st.st_size, 100);
	OK(truncate(P("t"), 0));
	OK(fstat(fd, &st));
	EQ(st.st_size, 0);
	EQ(pread(fd, got, sizeof got, 0), 0);
	OK(ftruncate(fd, 1 << 20));
	OK(fstat(fd, &st));
	EQ(st.st_size, 1 << 20);
	EQ(pread(fd, got, sizeof got, (1 << 20) - 16384), 16384);
	CHECK(is_zero(got, 16384));
	OK(close(fd));
	ERR(truncate(P("nope"), 10), ENOENT);
	OK(mkdir(P("d"), 0755));
	ERR(truncate(P("d"), 10), EISDIR);
	return 0;
}

static int t_append(void)
{
	int fd, fd2;
	OPEN(fd, P("a"), O_CREAT | O_EXCL | O_WRONLY | O_APPEND, 0644);
	EQ(write(fd, "abc", 3), 3);
	EQ(lseek(fd, 0, SEEK_SET), 0);
	EQ(write(fd, "def", 3), 3);
	CONTENT(P("a"), "abcdef", 6);
	OPEN(fd2, P("a"), O_WRONLY);
	EQ(write(fd2, "X", 1), 1);
	CONTENT(P("a"), "Xbcdef", 6);
	EQ(write(fd, "gh", 2), 2);
	CONTENT(P("a"), "Xbcdefgh", 8);
	OK(close(fd2));
	OK(close(fd));
	return 0;
}

static int t_otrunc(void)
{
	unsigned char buf[5000];
	int fd;
	struct stat st;
	rng_seed(3);
	rng_fill(buf, sizeof buf);
	PUT(P("o"), buf, sizeof buf);
	OPEN(fd, P("o"), O_WRONLY | O_TRUNC);
	OK(fstat(fd, &st));
	EQ(st.st_size, 0);
	EQ(write(fd, "hi", 2), 2);
	OK(close(fd));
	CONTENT(P("o"), "hi", 2);
	/* O_CREAT|O_TRUNC on an existing file. */
	OPEN(fd, P("o"), O_CREAT | O_WRONLY | O_TRUNC, 0600);
	OK(close(fd));
	OK(stat(P("o"), &st));
	EQ(st.st_size, 0);
	EQ(st.st_mode & 07777, 0644); /* mode of an existing file is kept */
	return 0;
}

static int t_unlink_open(void)
{
	unsigned char a[4096], got[10000];
	struct stat st;
	int fd, fd2, fd3;
	rng_seed(4);
	rng_fill(a, sizeof a);
	OPEN(fd, P("u"), O_CREAT | O_EXCL | O_RDWR, 0644);
	EQ(write(fd, a, sizeof a), sizeof a);
	OPEN(fd2, P("u"), O_RDONLY);
	OK(unlink(P("u")));
	ERR(stat(P("u"), &st), ENOENT);
	ERR(unlink(P("u")), ENOENT);
	EQ(pread(fd, got, sizeof got, 0), 4096);
	CHECK(memcmp(got, a, 4096) == 0);
	uint64_t h0, h1;
	HEAD(&h0);
	EQ(pwrite(fd, "BBBB", 4, 50), 4);
	memcpy(a + 50, "BBBB", 4);
	HEAD(&h1);
	if (h1 != h0)
		FAIL("a write to an unlinked-while-open page is in no epoch (mmsb.h): expected head %llu, got %llu",
		     (unsigned long long)h0, (unsigned long long)h1);
	EQ(pread(fd2, got, sizeof got, 0), 4096);
	if (memcmp(got, a, 4096) != 0)
		FAIL("unlinked-while-open file: write through one fd not seen through the other (offset %zu)",
		     first_diff(got, a, 4096));
	OK(ftruncate(fd, 10000));
	OK(fstat(fd, &st));
	EQ(st.st_size, 10000);
	EQ(pread(fd, got, sizeof got, 0), 10000);
	CHECK(memcmp(got, a, 4096) == 0);
	CHECK(is_zero(got + 4096, 10000 - 4096));
	/* A new file with the same name is independent. */
	OPEN(fd3, P("u"), O_CREAT | O_EXCL | O_RDWR, 0644);
	OK(fstat(fd3, &st));
	EQ(st.st_size, 0);
	EQ(write(fd3, "new", 3), 3);
	EQ(pread(fd, got, 10, 0), 10);
	CHECK(memcmp(got, a, 10) == 0);
	OK(close(fd3));
	CONTENT(P("u"), "new", 3);
	OK(fsync(fd));
	OK(close(fd));
	EQ(pread(fd2, got, 4, 50), 4);
	CHECK(memcmp(got, "BBBB", 4) == 0);
	OK(close(fd2));
	CONTENT(P("u"), "new", 3);
	return 0;
}

static int t_rename(void)
{
	struct stat st;
	char got[16];
	int fd;
	PUT(P("a"), "AAAA", 4);
	PUT(P("b"), "BBBBBB", 6);
	OK(rename(P("a"), P("b")));
	ERR(stat(P("a"), &st), ENOENT);
	CONTENT(P("b"), "AAAA", 4);
	/* Replacing a file that is open: the fd keeps the old bytes. */
	OPEN(fd, P("b"), O_RDONLY);
	PUT(P("c"), "CCC", 3);
	OK(rename(P("c"), P("b")));
	EQ(pread(fd, got, sizeof got, 0), 4);
	CHECK(memcmp(got, "AAAA", 4) == 0);
	OK(close(fd));
	CONTENT(P("b"), "CCC", 3);
	/* RENAME_NOREPLACE */
	OK(renameat2_(P("b"), P("d"), RENAME_NOREPLACE));
	PUT(P("e"), "EEEEE", 5);
	ERR(renameat2_(P("d"), P("e"), RENAME_NOREPLACE), EEXIST);
	CONTENT(P("d"), "CCC", 3);
	CONTENT(P("e"), "EEEEE", 5);
	/* RENAME_EXCHANGE */
	OK(renameat2_(P("d"), P("e"), RENAME_EXCHANGE));
	CONTENT(P("d"), "EEEEE", 5);
	CONTENT(P("e"), "CCC", 3);
	ERR(renameat2_(P("d"), P("zz"), RENAME_EXCHANGE), ENOENT);
	CONTENT(P("d"), "EEEEE", 5);
	/* Exchange a file and a directory. */
	OK(mkdir(P("xd"), 0755));
	PUT(P("xd/inner"), "i", 1);
	OK(renameat2_(P("d"), P("xd"), RENAME_EXCHANGE));
	OK(lstat(P("d"), &st));
	CHECK(S_ISDIR(st.st_mode));
	CONTENT(P("d/inner"), "i", 1);
	CONTENT(P("xd"), "EEEEE", 5);
	ERR(renameat2_(P("e"), P("f"), RENAME_WHITEOUT), EINVAL);
	/* Directories. */
	OK(mkdir(P("d1"), 0755));
	PUT(P("d1/x"), "x", 1);
	OK(rename(P("d1"), P("d2")));
	ERR(stat(P("d1"), &st), ENOENT);
	CONTENT(P("d2/x"), "x", 1);
	OK(mkdir(P("d3"), 0755));
	PUT(P("d3/y"), "y", 1);
	ERR2(rename(P("d2"), P("d3")), ENOTEMPTY, EEXIST);
	CONTENT(P("d2/x"), "x", 1);
	CONTENT(P("d3/y"), "y", 1);
	OK(mkdir(P("empty"), 0755));
	OK(rename(P("d2"), P("empty"))); /* onto an empty dir: replaces it */
	CONTENT(P("empty/x"), "x", 1);
	ERR(stat(P("d2"), &st), ENOENT);
	ERR(rename(P("e"), P("d3")), EISDIR);
	ERR(rename(P("d3"), P("e")), ENOTDIR);
	ERR(rename(P("d3"), P("d3/sub")), EINVAL);
	ERR(rename(P("nothere"), P("x")), ENOENT);
	/* Across directories, and a name that moves back. */
	OK(rename(P("e"), P("d3/e2")));
	CONTENT(P("d3/e2"), "CCC", 3);
	OK(rename(P("d3/e2"), P("e")));
	CONTENT(P("e"), "CCC", 3);
	/* rename onto itself is a no-op */
	OK(rename(P("e"), P("e")));
	CONTENT(P("e"), "CCC", 3);
	return 0;
}

static int t_mkdir_rmdir(void)
{
	struct stat st;
	OK(mkdir(P("d"), 0755));
	OK(stat(P("d"), &st));
	CHECK(S_ISDIR(st.st_mode));
	EQ(st.st_mode & 07777, 0755);
	EQ(st.st_nlink, 2);
	ERR(mkdir(P("d"), 0755), EEXIST);
	OK(mkdir(P("d/sub"), 0700));
	OK(stat(P("d/sub"), &st));
	EQ(st.st_mode & 07777, 0700);
	OK(stat(P("d"), &st));
	EQ(st.st_nlink, 3);
	ERR2(rmdir(P("d")), ENOTEMPTY, EEXIST);
	PUT(P("d/sub/f"), "f", 1);
	ERR2(rmdir(P("d/sub")), ENOTEMPTY, EEXIST);
	ERR(unlink(P("d/sub")), EISDIR);
	ERR(rmdir(P("d/sub/f")), ENOTDIR);
	ERR(mkdir(P("d/sub/f/x"), 0755), ENOTDIR);
	ERR(mkdir(P("nonexist/x"), 0755), ENOENT);
	OK(unlink(P("d/sub/f")));
	OK(rmdir(P("d/sub")));
	OK(stat(P("d"), &st));
	EQ(st.st_nlink, 2);
	OK(rmdir(P("d")));
	ERR(stat(P("d"), &st), ENOENT);
	ERR(rmdir(P("d")), ENOENT);
	/* deep tree */
	char rel[PATH_MAX] = "deep";
	for (int i = 0; i < 20; i++) {
		OK(mkdir(P("%s", rel), 0755));
		strcat(rel, "/x");
	}
	OK(stat(P("deep/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x"), &st));
	return 0;
}

static int t_symlink(void)
{
	struct stat st;
	char buf[2048];
	const char *tgt = "target/does/not/exist";
	OK(symlink(tgt, P("l1")));
	OK(lstat(P("l1"), &st));
	CHECK(S_ISLNK(st.st_mode));
	EQ(st.st_size, strlen(tgt));
	EQ(readlink(P("l1"), buf, sizeof buf), strlen(tgt));
	CHECK(memcmp(buf, tgt, strlen(tgt)) == 0);
	EQ(readlink(P("l1"), buf, 5), 5);
	CHECK(memcmp(buf, tgt, 5) == 0);
	ERR(stat(P("l1"), &st), ENOENT);
	PUT(P("f"), "content", 7);
	OK(symlink("f", P("l2")));
	CONTENT(P("l2"), "content", 7);
	OK(stat(P("l2"), &st));
	CHECK(S_ISREG(st.st_mode));
	ERR(symlink("f", P("l2")), EEXIST);
	ERR(symlink("f", P("f")), EEXIST);
	ERR(readlink(P("f"), buf, sizeof buf), EINVAL);
	OK(unlink(P("l2")));
	CONTENT(P("f"), "content", 7);
	/* long target */
	char lt[1001];
	memset(lt, 'q', 1000);
	lt[1000] = 0;
	OK(symlink(lt, P("long")));
	EQ(readlink(P("long"), buf, sizeof buf), 1000);
	CHECK(memcmp(buf, lt, 1000) == 0);
	/* symlink to a directory */
	OK(mkdir(P("dir"), 0755));
	OK(symlink("dir", P("ldir")));
	PUT(P("ldir/g"), "g", 1);
	CONTENT(P("dir/g"), "g", 1);
	return 0;
}

/* ---- hard links, special files, per-type conformance ------------------------------------ */

/* The node types of the matrix: one name of each in a test directory. */
struct ty {
	const char *name; /* name in the test directory */
	mode_t fmt;	  /* S_IF* that lstat must show */
};
static const struct ty g_types[] = {
	{"f", S_IFREG}, {"h", S_IFREG}, {"d", S_IFDIR}, {"l", S_IFLNK},
	{"p", S_IFIFO}, {"s", S_IFSOCK}, {"c", S_IFCHR}, {"b", S_IFBLK},
};
#define N_TYPES (sizeof g_types / sizeof *g_types)
#define T_CHR_DEV makedev(1, 3)	  /* /dev/null: opening it works unless nodev */
#define T_BLK_DEV makedev(7, 200) /* a loop device that is never opened */

/* base/name into one of 16 rotating buffers. */
static const char *Q(const char *base, const char *name)
{
	static char buf[16][PATH_MAX];
	static int i;
	i = (i + 1) % 16;
	return fmt_to(buf[i], sizeof buf[i], "%s/%s", base, name);
}

static int sock_bind(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd, rc;
	if (strlen(path) >= sizeof a.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	strcpy(a.sun_path, path);
	rc = bind(fd, (struct sockaddr *)&a, sizeof a);
	close(fd);
	return rc;
}

/* The matrix tree: f (a page) and h (its hard link), d, l -> f, p, s (a bound unix
 * socket), c, b; every permission 0644 except d 0755, owned by root. */
static int types_make(void)
{
	PUT(P("f"), "page-bytes", 10);
	OK(link(P("f"), P("h")));
	OK(mkdir(P("d"), 0755));
	OK(symlink("f", P("l")));
	OK(mkfifo(P("p"), 0644));
	OK(sock_bind(P("s")));
	OK(chmod(P("s"), 0644));
	OK(mknod(P("c"), S_IFCHR | 0644, T_CHR_DEV));
	OK(mknod(P("b"), S_IFBLK | 0644, T_BLK_DEV));
	return 0;
}

/* Check the matrix tree under base (live, snapshot, or an earlier pass after a remount). */
static int types_check(const char *base)
{
	struct stat st, sf;
	for (size_t i = 0; i < N_TYPES; i++) {
		const struct ty *t = &g_types[i];
		if (lstat(Q(base, t->name), &st))
			FAIL("lstat(%s): %s", Q(base, t->name), en(errno));
		if ((st.st_mode & S_IFMT) != t->fmt)
			FAIL("%s: expected type 0%o, got 0%o", Q(base, t->name), (unsigned)t->fmt,
			     (unsigned)(st.st_mode & S_IFMT));
		if (t->fmt == S_IFCHR)
			EQ(st.st_rdev, T_CHR_DEV);
		if (t->fmt == S_IFBLK)
			EQ(st.st_rdev, T_BLK_DEV);
		if (t->fmt != S_IFDIR && t->fmt != S_IFLNK)
			EQ(st.st_size, t->fmt == S_IFREG ? 10 : 0);
	}
	OK(lstat(Q(base, "f"), &sf));
	OK(lstat(Q(base, "h"), &st));
	EQ(st.st_ino, sf.st_ino); /* two names, one inode */
	EQ(sf.st_nlink, 2);
	EQ(st.st_nlink, 2);
	CONTENT(Q(base, "h"), "page-bytes", 10);
	return 0;
}

static bool mount_nodev(void)
{
	struct statvfs sv;
	return statvfs(g_mnt, &sv) == 0 && (sv.f_flag & ST_NODEV);
}

/* open(path, flags | O_NONBLOCK | O_NOFOLLOW) must give e (0: success). */
static int open_is(int line, const char *path, int flags, int e)
{
	int fd = open(path, flags | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC), got = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	if (got != e) {
		failf(line, "open(%s, 0%o): expected %s, got %s", path, (unsigned)flags, e ? en(e) : "success",
		      got ? en(got) : "success");
		return -1;
	}
	return 0;
}
#define OPEN_IS(path, flags, e)                          \
	do {                                             \
		if (open_is(__LINE__, (path), (flags), (e))) \
			return -1;                       \
	} while (0)

/* Every operation on every type, as the owner (root). */
static int t_types(void)
{
	struct stat st;
	struct timespec ts[2] = {{1000, 1}, {2000, 2}};
	bool nodev = mount_nodev();
	if (g_prefix[0] && types_check(R("%s", g_test)))
		return -1; /* the previous pass's tree, after the remount */
	if (types_make() || types_check(g_dir))
		return -1;
	for (size_t i = 0; i < N_TYPES; i++) {
		const struct ty *t = &g_types[i];
		const char *n = P("%s", t->name), *n2 = P("%s.2", t->name), *nr = P("%s.r", t->name);
		bool dir = t->fmt == S_IFDIR, lnk = t->fmt == S_IFLNK, reg = t->fmt == S_IFREG;
		char buf[64];
		/* creating over it */
		ERR(mkdir(n, 0755), EEXIST);
		ERR(mknod(n, S_IFIFO | 0644, 0), EEXIST);
		ERR(symlink("x", n), EEXIST);
		ERR(link(P("f"), n), EEXIST);
		ERR(open(n, O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
		/* path walk through it */
		if (dir)
			ERR(stat(P("%s/x", t->name), &st), ENOENT);
		else if (!lnk)
			ERR(stat(P("%s/x", t->name), &st), ENOTDIR);
		/* readlink, opendir, rmdir, unlink on the wrong type */
		if (!lnk)
			ERR(readlink(n, buf, sizeof buf), EINVAL);
		if (!dir) {
			DIR *dd = opendir(n);
			if (dd)
				closedir(dd);
			if (dd || errno != ENOTDIR)
				FAIL("opendir(%s): expected ENOTDIR, got %s", n, dd ? "success" : en(errno));
			ERR(rmdir(n), ENOTDIR);
		} else {
			ERR(unlink(n), EISDIR);
		}
		/* truncate: pages only (the symlink follows to f) */
		if (dir)
			ERR(truncate(n, 0), EISDIR);
		else if (!reg && !lnk)
			ERR(truncate(n, 0), EINVAL);
		/* open for reading and for writing (devices: below) */
		if (t->fmt != S_IFCHR && t->fmt != S_IFBLK) {
			OPEN_IS(n, O_RDONLY, lnk ? ELOOP : t->fmt == S_IFSOCK ? ENXIO : 0);
			OPEN_IS(n, O_WRONLY,
				dir ? EISDIR : lnk ? ELOOP : t->fmt == S_IFIFO || t->fmt == S_IFSOCK ? ENXIO : 0);
		}
		/* user xattrs: pages and directories only (the kernel's rule) */
		if (reg || dir) {
			OK(lsetxattr(n, "user.t", "v", 1, 0));
			OK(lremovexattr(n, "user.t"));
		} else {
			ERR(lsetxattr(n, "user.t", "v", 1, 0), EPERM);
		}
		/* chmod, chown, times */
		if (!lnk) {
			OK(chmod(n, 0640));
			OK(lstat(n, &st));
			EQ(st.st_mode & 07777, 0640);
			OK(chmod(n, dir ? 0755 : 0644));
		}
		OK(lchown(n, 4242, 4343));
		OK(lstat(n, &st));
		EQ(st.st_uid, 4242);
		EQ(st.st_gid, 4343);
		OK(lchown(n, 0, 0));
		OK(utimensat(AT_FDCWD, n, ts, AT_SYMLINK_NOFOLLOW));
		OK(lstat(n, &st));
		EQ(st.st_mtim.tv_sec, 2000);
		EQ(st.st_mtim.tv_nsec, 2);
		/* link: everything but directories, symlinks themselves included */
		if (dir) {
			ERR(link(n, n2), EPERM);
		} else {
			nlink_t before;
			OK(lstat(n, &st));
			before = st.st_nlink;
			OK(link(n, n2));
			OK(lstat(n2, &st));
			EQ(st.st_nlink, before + 1);
			EQ((st.st_mode & S_IFMT), t->fmt);
			OK(unlink(n2));
			OK(lstat(n, &st));
			EQ(st.st_nlink, before);
		}
		/* rename away and back */
		OK(rename(n, nr));
		ERR(lstat(n, &st), ENOENT);
		OK(rename(nr, n));
	}
	/* the devices: open follows the mount's nodev (the kernel's check) */
	OPEN_IS(P("c"), O_RDONLY, nodev ? EACCES : 0);
	OPEN_IS(P("c"), O_WRONLY, nodev ? EACCES : 0);
	if (nodev)
		OPEN_IS(P("b"), O_RDONLY, EACCES);
	/* a socket bound in the mount accepts connections */
	int srv = socket(AF_UNIX, SOCK_STREAM, 0), cli = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	fmt_to(a.sun_path, sizeof a.sun_path, "%s", P("live.sock"));
	OK(bind(srv, (struct sockaddr *)&a, sizeof a));
	OK(listen(srv, 1));
	OK(connect(cli, (struct sockaddr *)&a, sizeof a));
	close(cli);
	close(srv);
	OK(lstat(P("live.sock"), &st));
	CHECK(S_ISSOCK(st.st_mode));
	OK(unlink(P("live.sock")));
	/* a fifo in the mount carries bytes between processes */
	int rfd = open(P("p"), O_RDONLY | O_NONBLOCK), wfd;
	CHECK(rfd >= 0);
	OPEN(wfd, P("p"), O_WRONLY);
	EQ(write(wfd, "xyz", 3), 3);
	char fb[8];
	EQ(read(rfd, fb, sizeof fb), 3);
	close(wfd);
	close(rfd);
	/* mknod of a page, and of no file type */
	OK(mknod(P("reg"), S_IFREG | 0640, 0));
	OK(stat(P("reg"), &st));
	CHECK(S_ISREG(st.st_mode));
	EQ(st.st_size, 0);
	return types_check(g_dir);
}

/* The same matrix as another user (allow_other; default_permissions is always on). */
static uid_t g_ouid = 65534, g_ogid = 65534;

static int types_other(void)
{
	struct stat st;
	struct timespec ts[2] = {{1000, 1}, {2000, 2}};
	bool nodev = mount_nodev();
	int hard = 1;
	FILE *ph = fopen("/proc/sys/fs/protected_hardlinks", "r");
	if (ph) {
		if (fscanf(ph, "%d", &hard) != 1)
			hard = 1;
		fclose(ph);
	}
	if (lstat(g_dir, &st))
		FAIL("uid %u cannot see %s (%s): is the mount made with -o allow_other?", (unsigned)g_ouid, g_dir,
		     en(errno));
	for (size_t i = 0; i < N_TYPES; i++) {
		const struct ty *t = &g_types[i];
		const char *n = P("%s", t->name);
		bool dir = t->fmt == S_IFDIR, lnk = t->fmt == S_IFLNK, reg = t->fmt == S_IFREG;
		OK(lstat(n, &st));
		/* not the owner: no chmod, chown or explicit times */
		if (!lnk)
			ERR(chmod(n, 0777), EPERM);
		ERR(lchown(n, g_ouid, g_ogid), EPERM);
		ERR(utimensat(AT_FDCWD, n, ts, AT_SYMLINK_NOFOLLOW), EPERM);
		if (!lnk)
			ERR(utimensat(AT_FDCWD, n, NULL, 0), EACCES); /* "now" needs write permission */
		/* the directory is root's: no new names, no removal */
		ERR(rename(n, P("%s.r", t->name)), EACCES);
		if (dir)
			ERR(rmdir(n), EACCES);
		else
			ERR(unlink(n), EACCES);
		/* link into a directory the user may write: protected_hardlinks decides for
		 * other people's files; directories never */
		if (dir || hard)
			ERR(link(n, P("w/%s", t->name)), EPERM);
		else
			OK(link(n, P("w/%s", t->name)));
		/* truncate: the type is checked before the permission */
		if (dir)
			ERR(truncate(n, 0), EISDIR);
		else if (reg || lnk)
			ERR(truncate(n, 0), EACCES);
		else
			ERR(truncate(n, 0), EINVAL);
		/* open: read is granted by 0644, write is not */
		if (t->fmt != S_IFCHR && t->fmt != S_IFBLK) {
			OPEN_IS(n, O_RDONLY, lnk ? ELOOP : t->fmt == S_IFSOCK ? ENXIO : 0);
			OPEN_IS(n, O_WRONLY, lnk ? ELOOP : dir ? EISDIR : EACCES);
		}
		if (reg || dir)
			ERR(lsetxattr(n, "user.t", "v", 1, 0), EACCES);
		else
			ERR(lsetxattr(n, "user.t", "v", 1, 0), EPERM);
	}
	OPEN_IS(P("c"), O_RDONLY, nodev ? EACCES : 0);
	OPEN_IS(P("c"), O_WRONLY, EACCES);
	/* creating in a root directory; making devices without CAP_MKNOD */
	ERR(open(P("new"), O_CREAT | O_WRONLY, 0644), EACCES);
	ERR(mkfifo(P("newp"), 0644), EACCES);
	ERR(mknod(P("w/c2"), S_IFCHR | 0644, T_CHR_DEV), EPERM);
	ERR(mknod(P("w/b2"), S_IFBLK | 0644, T_BLK_DEV), EPERM);
	/* what the user may make in its own place is its own */
	OK(mkfifo(P("w/p2"), 0600));
	OK(sock_bind(P("w/s2")));
	PUT(P("w/f2"), "mine", 4);
	OK(link(P("w/f2"), P("w/f3")));
	OK(link(P("w/p2"), P("w/p3")));
	OK(lstat(P("w/p3"), &st));
	EQ(st.st_uid, g_ouid);
	EQ(st.st_nlink, 2);
	CHECK(S_ISFIFO(st.st_mode));
	OK(lstat(P("w/s2"), &st));
	EQ(st.st_uid, g_ouid);
	CHECK(S_ISSOCK(st.st_mode));
	OK(chmod(P("w/p2"), 0640));
	OK(unlink(P("w/p3")));
	OK(unlink(P("w/f3")));
	return 0;
}

static int t_types_other(void)
{
	const char *u = getenv("MMSB_TEST_UID"), *g = getenv("MMSB_TEST_GID");
	int status;
	pid_t pid;
	if (u)
		g_ouid = (uid_t)strtoul(u, NULL, 10);
	if (g)
		g_ogid = (gid_t)strtoul(g, NULL, 10);
	if (types_make())
		return -1;
	OK(mkdir(P("w"), 0777));
	OK(chmod(P("w"), 0777));
	pid = fork();
	if (pid < 0)
		FAIL("fork: %s", en(errno));
	if (pid == 0) {
		if (setgroups(0, NULL) || setresgid(g_ogid, g_ogid, g_ogid) || setresuid(g_ouid, g_ouid, g_ouid)) {
			fprintf(stderr, "test_syscalls: cannot become uid %u: %s\n", (unsigned)g_ouid, en(errno));
			_exit(2);
		}
		_exit(types_other() ? 1 : 0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		FAIL("the checks as uid %u failed (status 0x%x; see above)", (unsigned)g_ouid, status);
	return types_check(g_dir);
}

/* The read-only side: the matrix in epochs/N. */
static int t_types_epochs(void)
{
	struct stat st, live;
	char e[PATH_MAX];
	uint64_t h;
	int fd;
	if (types_make())
		return -1;
	HEAD(&h);
	fmt_to(e, sizeof e, "%s/epochs/%llu/%s", g_mnt, (unsigned long long)h, g_name);
	if (types_check(e))
		return -1;
	OK(lstat(Q(e, "f"), &st));
	OK(lstat(P("f"), &live));
	CHECK(st.st_ino != live.st_ino); /* the snapshot's own inode, shared by f and h there */
	for (size_t i = 0; i < N_TYPES; i++) {
		const struct ty *t = &g_types[i];
		const char *n = Q(e, t->name);
		bool dir = t->fmt == S_IFDIR, lnk = t->fmt == S_IFLNK, reg = t->fmt == S_IFREG;
		if (!lnk)
			ERR(chmod(n, 0600), EROFS);
		ERR(lchown(n, 1, 1), EROFS);
		ERR(utimensat(AT_FDCWD, n, NULL, AT_SYMLINK_NOFOLLOW), EROFS);
		ERR(rename(n, Q(e, "moved")), EROFS);
		if (dir)
			ERR(rmdir(n), EROFS);
		else
			ERR(unlink(n), EROFS);
		if (reg || dir)
			ERR(lsetxattr(n, "user.t", "v", 1, 0), EROFS);
		/* link out of a snapshot: another tree; into one: read-only */
		if (dir)
			ERR2(link(n, P("%s.x", t->name)), EPERM, EXDEV);
		else
			ERR(link(n, P("%s.x", t->name)), EXDEV);
		if (!dir)
			ERR(link(P("%s", t->name), Q(e, "new")), EROFS);
		if (reg) {
			ERR(truncate(n, 0), EROFS);
			OPEN_IS(n, O_WRONLY, EROFS);
			OPEN_IS(n, O_RDONLY, 0);
		}
	}
	ERR(mknod(Q(e, "p2"), S_IFIFO | 0644, 0), EROFS);
	ERR(mknod(Q(e, "c2"), S_IFCHR | 0644, T_CHR_DEV), EROFS);
	ERR(sock_bind(Q(e, "s2")), EROFS);
	ERR(mkdir(Q(e, "d2"), 0755), EROFS);
	ERR(symlink("x", Q(e, "l2")), EROFS);
	/* fifos and sockets: opened by the kernel without the file system (mmsbfs(8)):
	 * a snapshot's fifo is a rendezvous point that stores nothing, its socket
	 * has no listener */
	OPEN_IS(Q(e, "p"), O_RDONLY, 0);
	OPEN_IS(Q(e, "s"), O_RDONLY, ENXIO);
	/* the live tree moves on, the snapshot does not */
	OK(unlink(P("f")));
	OK(unlink(P("p")));
	OK(lstat(P("h"), &live));
	EQ(live.st_nlink, 1);
	if (types_check(e))
		return -1;
	OPEN(fd, Q(e, "f"), O_RDONLY);
	close(fd);
	return 0;
}

static int t_hardlink(void)
{
	struct stat a, b, c;
	int fd;
	PUT(P("a"), "hello", 5);
	OK(mkdir(P("sub"), 0755));
	OK(link(P("a"), P("b")));
	OK(link(P("a"), P("sub/c")));
	OK(stat(P("a"), &a));
	OK(stat(P("b"), &b));
	OK(stat(P("sub/c"), &c));
	EQ(a.st_ino, b.st_ino);
	EQ(a.st_ino, c.st_ino);
	EQ(a.st_nlink, 3);
	/* writes through any name are the same page */
	OPEN(fd, P("sub/c"), O_WRONLY | O_APPEND);
	EQ(write(fd, " world", 6), 6);
	close(fd);
	CONTENT(P("a"), "hello world", 11);
	CONTENT(P("b"), "hello world", 11);
	/* attributes too */
	OK(chmod(P("b"), 0600));
	OK(stat(P("a"), &a));
	EQ(a.st_mode & 07777, 0600);
	/* errors */
	ERR(link(P("sub"), P("sub2")), EPERM);
	ERR(link(P("a"), P("b")), EEXIST);
	ERR(link(P("nothere"), P("x")), ENOENT);
	ERR(link(P("a"), P("nodir/x")), ENOENT);
	ERR(link(P("a"), P("a/x")), ENOTDIR);
	ERR(link(P("a"), R("epochs/x")), EROFS);
	/* rename over another name of the same page: nothing happens (POSIX) */
	OK(rename(P("b"), P("sub/c")));
	OK(stat(P("b"), &b));
	OK(stat(P("sub/c"), &c));
	EQ(b.st_nlink, 3);
	/* unlinking the first name keeps the others */
	OK(unlink(P("a")));
	ERR(stat(P("a"), &a), ENOENT);
	OK(stat(P("b"), &b));
	EQ(b.st_nlink, 2);
	CONTENT(P("sub/c"), "hello world", 11);
	/* rename of a link, and rename replacing a link of another page */
	OK(rename(P("sub/c"), P("c2")));
	PUT(P("other"), "other", 5);
	OK(rename(P("other"), P("b")));
	CONTENT(P("b"), "other", 5);
	OK(stat(P("c2"), &c));
	EQ(c.st_nlink, 1);
	CONTENT(P("c2"), "hello world", 11);
	/* the page lives while open, then its last name goes: nlink 0 on fstat */
	OPEN(fd, P("c2"), O_RDWR);
	OK(link(P("c2"), P("c3")));
	OK(unlink(P("c2")));
	OK(fstat(fd, &c));
	EQ(c.st_nlink, 1);
	OK(unlink(P("c3")));
	OK(fstat(fd, &c));
	EQ(c.st_nlink, 0);
	close(fd);
	return 0;
}

static int t_conform(void)
{
	char name[300];
	struct stat st, st2;
	int fd;
	/* names over 255 bytes: ENAMETOOLONG from every call that looks one up */
	memset(name, 'n', 256);
	name[256] = 0;
	ERR(stat(P("%s", name), &st), ENAMETOOLONG);
	ERR(lstat(P("%s", name), &st), ENAMETOOLONG);
	ERR(chmod(P("%s", name), 0644), ENAMETOOLONG);
	ERR(chown(P("%s", name), 0, 0), ENAMETOOLONG);
	ERR(lchown(P("%s", name), 0, 0), ENAMETOOLONG);
	ERR(truncate(P("%s", name), 0), ENAMETOOLONG);
	ERR(unlink(P("%s", name)), ENAMETOOLONG);
	ERR(rmdir(P("%s", name)), ENAMETOOLONG);
	PUT(P("f"), "x", 1);
	ERR(rename(P("%s", name), P("g")), ENAMETOOLONG);
	ERR(rename(P("f"), P("%s", name)), ENAMETOOLONG);
	ERR(link(P("f"), P("%s", name)), ENAMETOOLONG);
	ERR(mkfifo(P("%s", name), 0644), ENAMETOOLONG);
	ERR(stat(P("%s", name), &st), ENAMETOOLONG); /* again: no negative entry was cached */
	/* unlinked while open: nlink 0 */
	OPEN(fd, P("f"), O_RDWR);
	OK(unlink(P("f")));
	OK(fstat(fd, &st));
	EQ(st.st_nlink, 0);
	close(fd);
	/* open(O_TRUNC) of an empty page marks mtime and ctime */
	OPEN(fd, P("e"), O_CREAT | O_WRONLY, 0644);
	close(fd);
	struct timespec old[2] = {{1000, 0}, {1000, 0}};
	OK(utimensat(AT_FDCWD, P("e"), old, 0));
	OK(stat(P("e"), &st));
	usleep(20000);
	OPEN(fd, P("e"), O_WRONLY | O_TRUNC);
	OK(fstat(fd, &st2));
	close(fd);
	CHECK(st2.st_mtim.tv_sec > 1000);
	CHECK(st2.st_ctim.tv_sec > st.st_ctim.tv_sec ||
	      (st2.st_ctim.tv_sec == st.st_ctim.tv_sec && st2.st_ctim.tv_nsec > st.st_ctim.tv_nsec));
	OK(stat(P("e"), &st2));
	CHECK(st2.st_mtim.tv_sec > 1000);
	return 0;
}

static int ts_eq(struct timespec a, time_t s, long ns) { return a.tv_sec == s && a.tv_nsec == ns; }

static int t_attrs(void)
{
	struct stat st, st2;
	int fd;
	PUT(P("f"), "data", 4);
	OK(chmod(P("f"), 0600));
	OK(stat(P("f"), &st));
	EQ(st.st_mode & 07777, 0600);
	OPEN(fd, P("f"), O_RDWR);
	OK(fchmod(fd, 0640));
	OK(fstat(fd, &st));
	EQ(st.st_mode & 07777, 0640);
	OK(chmod(P("f"), 04755));
	OK(stat(P("f"), &st));
	EQ(st.st_mode & 07777, 04755);
	OK(chmod(P("f"), 0644));
	OK(chown(P("f"), 1234, 5678));
	OK(stat(P("f"), &st));
	EQ(st.st_uid, 1234);
	EQ(st.st_gid, 5678);
	OK(chown(P("f"), (uid_t)-1, 99));
	OK(stat(P("f"), &st));
	EQ(st.st_uid, 1234);
	EQ(st.st_gid, 99);
	OK(fchown(fd, 0, 0));
	OK(fstat(fd, &st));
	EQ(st.st_uid, 0);
	EQ(st.st_gid, 0);
	OK(symlink("f", P("l")));
	OK(lchown(P("l"), 4321, 8765));
	OK(lstat(P("l"), &st));
	EQ(st.st_uid, 4321);
	EQ(st.st_gid, 8765);
	OK(stat(P("f"), &st));
	EQ(st.st_uid, 0);
	/* utimensat with exact times */
	struct timespec ts[2] = {{1000000000, 123456789}, {1100000000, 987654321}};
	OK(utimensat(AT_FDCWD, P("f"), ts, 0));
	OK(stat(P("f"), &st));
	if (!ts_eq(st.st_atim, 1000000000, 123456789) || !ts_eq(st.st_mtim, 1100000000, 987654321))
		FAIL("utimensat: expected atime 1000000000.123456789 mtime 1100000000.987654321, got %lld.%09ld %lld.%09ld",
		     (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec, (long long)st.st_mtim.tv_sec,
		     st.st_mtim.tv_nsec);
	/* UTIME_OMIT keeps atime, UTIME_NOW sets mtime to now */
	struct timespec ts2[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
	time_t before = time(NULL);
	OK(utimensat(AT_FDCWD, P("f"), ts2, 0));
	time_t after = time(NULL);
	OK(stat(P("f"), &st));
	if (!ts_eq(st.st_atim, 1000000000, 123456789))
		FAIL("utimensat UTIME_OMIT atime: expected 1000000000.123456789, got %lld.%09ld",
		     (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec);
	if (st.st_mtim.tv_sec < before - 1 || st.st_mtim.tv_sec > after + 1)
		FAIL("utimensat UTIME_NOW mtime: expected about %lld, got %lld", (long long)before,
		     (long long)st.st_mtim.tv_sec);
	/* futimens and a write updating mtime/ctime */
	OK(futimens(fd, ts));
	OK(fstat(fd, &st));
	CHECK(ts_eq(st.st_mtim, 1100000000, 987654321));
	EQ(pwrite(fd, "DATA", 4, 0), 4);
	OK(stat(P("f"), &st2));
	if (st2.st_mtim.tv_sec < before - 1)
		FAIL("write(2) must update mtime: expected >= %lld, got %lld", (long long)before - 1,
		     (long long)st2.st_mtim.tv_sec);
	if (st2.st_ctim.tv_sec < before - 1)
		FAIL("write(2) must update ctime: expected >= %lld, got %lld", (long long)before - 1,
		     (long long)st2.st_ctim.tv_sec);
	OK(close(fd));
	/* chmod updates ctime */
	OK(utimensat(AT_FDCWD, P("f"), ts, 0));
	OK(chmod(P("f"), 0600));
	OK(stat(P("f"), &st));
	if (st.st_ctim.tv_sec < before - 1)
		FAIL("chmod must update ctime: expected >= %lld, got %lld", (long long)before - 1,
		     (long long)st.st_ctim.tv_sec);
	/* directories */
	OK(mkdir(P("d"), 0755));
	OK(chmod(P("d"), 0700));
	OK(stat(P("d"), &st));
	EQ(st.st_mode & 07777, 0700);
	OK(utimensat(AT_FDCWD, P("d"), ts, 0));
	OK(stat(P("d"), &st));
	CHECK(ts_eq(st.st_mtim, 1100000000, 987654321));
	ERR(chmod(P("missing"), 0600), ENOENT);
	return 0;
}

static int t_stat(void)
{
	struct stat st;
	unsigned char buf[12345];
	uint64_t id;
	memset(buf, 'z', sizeof buf);
	PUT(P("f"), buf, sizeof buf);
	OK(stat(P("f"), &st));
	EQ(st.st_size, 12345);
	CHECK(S_ISREG(st.st_mode));
	EQ(st.st_nlink, 1);
	XU64(P("f"), "user.mmsb.id", &id);
	EQ(st.st_ino, id);
	OK(stat(g_mnt, &st));
	CHECK(S_ISDIR(st.st_mode));
	EQ(st.st_ino, 1);
	XU64(g_mnt, "user.mmsb.id", &id);
	EQ(id, 1);
	OK(lstat(g_dir, &st));
	CHECK(S_ISDIR(st.st_mode));
	return 0;
}

#define NBIG 2000
static int t_readdir_large(void)
{
	static int seen[NBIG], removed_early[NBIG];
	struct dirent *de;
	DIR *d;
	int fd, n, dots;
	OK(mkdir(P("big"), 0755));
	for (int i = 0; i < NBIG; i++) {
		OPEN(fd, P("big/e%04d", i), O_CREAT | O_EXCL | O_WRONLY, 0644);
		OK(close(fd));
	}
	/* Plain listing: every entry exactly once, right type and inode. */
	memset(seen, 0, sizeof seen);
	d = opendir(P("big"));
	if (!d)
		FAIL("opendir(%s): %s", P("big"), en(errno));
	n = 0;
	dots = 0;
	errno = 0;
	while ((de = readdir(d))) {
		int i;
		char extra;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) {
			dots++;
			continue;
		}
		if (sscanf(de->d_name, "e%4d%c", &i, &extra) != 1 || i < 0 || i >= NBIG) {
			closedir(d);
			FAIL("readdir: unexpected entry '%s'", de->d_name);
		}
		if (seen[i]++) {
			closedir(d);
			FAIL("readdir: entry %s returned twice (expected exactly once)", de->d_name);
		}
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN) {
			closedir(d);
			FAIL("readdir: %s has d_type %d, expected DT_REG", de->d_name, de->d_type);
		}
		if (i % 97 == 0) {
			struct stat st;
			if (stat(P("big/%s", de->d_name), &st) || st.st_ino != de->d_ino) {
				closedir(d);
				FAIL("readdir: %s d_ino %llu differs from stat st_ino %llu", de->d_name,
				     (unsigned long long)de->d_ino, (unsigned long long)st.st_ino);
			}
		}
		n++;
	}
	if (errno) {
		int e = errno;
		closedir(d);
		FAIL("readdir: %s", en(e));
	}
	closedir(d);
	EQ(dots, 2);
	EQ(n, NBIG);
	/* Listing while unlinking: each entry seen at most once; entries not removed before
	 * they were reached are seen exactly once. */
	memset(seen, 0, sizeof seen);
	memset(removed_early, 0, sizeof removed_early);
	d = opendir(P("big"));
	if (!d)
		FAIL("opendir(%s): %s", P("big"), en(errno));
	n = 0;
	errno = 0;
	while ((de = readdir(d))) {
		int i;
		if (de->d_name[0] == '.')
			continue;
		if (sscanf(de->d_name, "e%4d", &i) != 1 || i < 0 || i >= NBIG) {
			closedir(d);
			FAIL("readdir while unlinking: unexpected entry '%s'", de->d_name);
		}
		if (seen[i]++) {
			closedir(d);
			FAIL("readdir while unlinking: entry %s returned twice (expected at most once)", de->d_name);
		}
		if (!removed_early[i] && unlink(P("big/%s", de->d_name))) {
			int e = errno;
			closedir(d);
			FAIL("unlink(%s) of an entry just listed: %s", de->d_name, en(e));
		}
		if (n % 7 == 0) {
			int j = (i + NBIG / 2) % NBIG;
			if (!seen[j] && !removed_early[j]) {
				if (unlink(P("big/e%04d", j))) {
					int e = errno;
					closedir(d);
					FAIL("unlink(e%04d) (not yet listed): %s", j, en(e));
				}
				removed_early[j] = 1;
			}
		}
		n++;
		errno = 0;
	}
	if (errno) {
		int e = errno;
		closedir(d);
		FAIL("readdir while unlinking: %s", en(e));
	}
	closedir(d);
	for (int i = 0; i < NBIG; i++)
		if (!removed_early[i] && seen[i] != 1)
			FAIL("readdir while unlinking: entry e%04d (never removed before being listed) seen %d times, expected exactly once",
			     i, seen[i]);
	for (int i = 0; i < NBIG; i++)
		if (removed_early[i])
			unlink(P("big/e%04d", i)); /* may be gone already */
	/* Now empty. */
	d = opendir(P("big"));
	if (!d)
		FAIL("opendir: %s", en(errno));
	n = 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	EQ(n, 0);
	OK(rmdir(P("big")));
	return 0;
}

static int t_readdir_types(void)
{
	struct dirent *de;
	DIR *d;
	int got = 0;
	OK(mkdir(P("m"), 0755));
	PUT(P("m/file"), "x", 1);
	OK(mkdir(P("m/dir"), 0755));
	OK(symlink("file", P("m/link")));
	d = opendir(P("m"));
	if (!d)
		FAIL("opendir: %s", en(errno));
	while ((de = readdir(d))) {
		int want = -1;
		if (!strcmp(de->d_name, "file"))
			want = DT_REG, got |= 1;
		else if (!strcmp(de->d_name, "dir"))
			want = DT_DIR, got |= 2;
		else if (!strcmp(de->d_name, "link"))
			want = DT_LNK, got |= 4;
		else if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			want = DT_DIR;
		else {
			closedir(d);
			FAIL("readdir: unexpected entry '%s'", de->d_name);
		}
		if (de->d_type != want && de->d_type != DT_UNKNOWN) {
			closedir(d);
			FAIL("readdir: '%s' d_type %d, expected %d", de->d_name, de->d_type, want);
		}
	}
	closedir(d);
	EQ(got, 7);
	/* rewinddir lists again */
	d = opendir(P("m"));
	if (!d)
		FAIL("opendir: %s", en(errno));
	int n1 = 0, n2 = 0;
	while (readdir(d))
		n1++;
	rewinddir(d);
	while (readdir(d))
		n2++;
	closedir(d);
	EQ(n1, 5);
	EQ(n2, 5);
	int fd;
	OPEN(fd, P("m"), O_RDONLY | O_DIRECTORY);
	OK(fsync(fd)); /* fsyncdir */
	OK(close(fd));
	return 0;
}

static int t_statfs(void)
{
	struct statfs s;
	struct sysinfo si;
	OK(statfs(g_mnt, &s));
	EQ(s.f_bsize, 4096);
	EQ(s.f_namelen, 255);
	CHECK(s.f_blocks > 0);
	CHECK(s.f_bfree <= s.f_blocks);
	CHECK(s.f_bavail <= s.f_blocks);
	CHECK(s.f_files > 0);
	CHECK(s.f_ffree <= s.f_files);
	OK(sysinfo(&si));
	/* blocks = what the store uses + what a write may still take (the
	 * memory available, which other programs change): never more than
	 * the machine has, and the free part is a real amount */
	double total = (double)si.totalram * si.mem_unit, fs_total = (double)s.f_blocks * (double)s.f_bsize;
	if (fs_total > 1.2 * total || (double)s.f_bavail * (double)s.f_bsize < 0.01 * total)
		FAIL("statfs: f_blocks*f_bsize = %.0f, f_bavail*f_bsize = %.0f, the machine's memory %.0f", fs_total,
		     (double)s.f_bavail * (double)s.f_bsize, total);
	OK(statfs(P("."), &s));
	return 0;
}

static int list_has(const char *list, ssize_t n, const char *name)
{
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1)
		if (!strcmp(list + i, name))
			return 1;
	return 0;
}

static int t_xattr(void)
{
	char buf[8192], list[8192];
	unsigned char bin[1000];
	ssize_t n;
	PUT(P("f"), "f", 1);
	OK(setxattr(P("f"), "user.a", "v1", 2, 0));
	EQ(getxattr(P("f"), "user.a", NULL, 0), 2);
	EQ(getxattr(P("f"), "user.a", buf, sizeof buf), 2);
	CHECK(memcmp(buf, "v1", 2) == 0);
	ERR(getxattr(P("f"), "user.a", buf, 1), ERANGE);
	ERR(setxattr(P("f"), "user.a", "v9", 2, XATTR_CREATE), EEXIST);
	ERR(setxattr(P("f"), "user.b", "v9", 2, XATTR_REPLACE), ENODATA);
	ERR(getxattr(P("f"), "user.b", buf, sizeof buf), ENODATA);
	OK(setxattr(P("f"), "user.a", "v2long", 6, XATTR_REPLACE));
	EQ(getxattr(P("f"), "user.a", buf, sizeof buf), 6);
	CHECK(memcmp(buf, "v2long", 6) == 0);
	OK(setxattr(P("f"), "user.c", "new", 3, XATTR_CREATE));
	rng_seed(5);
	rng_fill(bin, sizeof bin);
	bin[0] = 0;
	bin[500] = 0;
	OK(setxattr(P("f"), "user.bin", bin, sizeof bin, 0));
	EQ(getxattr(P("f"), "user.bin", buf, sizeof buf), sizeof bin);
	CHECK(memcmp(buf, bin, sizeof bin) == 0);
	OK(setxattr(P("f"), "user.empty", "", 0, 0));
	EQ(getxattr(P("f"), "user.empty", buf, sizeof buf), 0);
	n = listxattr(P("f"), list, sizeof list);
	if (n < 0)
		FAIL("listxattr: %s", en(errno));
	EQ(listxattr(P("f"), NULL, 0), n);
	ERR(listxattr(P("f"), list, 3), ERANGE);
	n = listxattr(P("f"), list, sizeof list);
	const char *want[] = {"user.a", "user.c", "user.bin", "user.empty"};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		if (!list_has(list, n, want[i]))
			FAIL("listxattr(%s): expected '%s' in the list", P("f"), want[i]);
	/* the read-only user.mmsb.* names read by name but are not listed: copy
	 * tools would try to write them back */
	const char *hidden[] = {"user.mmsb.id", "user.mmsb.epoch", "user.mmsb.version"};
	for (size_t i = 0; i < sizeof hidden / sizeof *hidden; i++)
		if (list_has(list, n, hidden[i]))
			FAIL("listxattr(%s): '%s' must not be listed (mmsbfs(8): only with -o show_mmsb_xattrs)", P("f"),
			     hidden[i]);
	OK(removexattr(P("f"), "user.a"));
	ERR(getxattr(P("f"), "user.a", buf, sizeof buf), ENODATA);
	ERR(removexattr(P("f"), "user.a"), ENODATA);
	n = listxattr(P("f"), list, sizeof list);
	CHECK(n >= 0 && !list_has(list, n, "user.a"));
	CHECK(list_has(list, n, "user.c"));
	/* other namespaces */
	ERR(getxattr(P("f"), "security.capability", buf, sizeof buf), ENODATA);
	ERR(getxattr(P("f"), "trusted.x", buf, sizeof buf), ENODATA);
	ERR(setxattr(P("f"), "trusted.x", "1", 1, 0), EOPNOTSUPP);
	ERR(setxattr(P("f"), "security.x", "1", 1, 0), EOPNOTSUPP);
	/* directories */
	OK(mkdir(P("d"), 0755));
	OK(setxattr(P("d"), "user.dir", "yes", 3, 0));
	EQ(getxattr(P("d"), "user.dir", buf, sizeof buf), 3);
	ERR(getxattr(P("missing"), "user.a", buf, sizeof buf), ENOENT);
	/* fd variants */
	int fd;
	OPEN(fd, P("f"), O_RDONLY);
	OK(fsetxattr(fd, "user.fd", "1", 1, 0));
	EQ(fgetxattr(fd, "user.fd", buf, sizeof buf), 1);
	OK(fremovexattr(fd, "user.fd"));
	OK(close(fd));
	return 0;
}

/* One operation must add exactly one epoch. */
#define ONE_EPOCH(expr)                                                                          \
	do {                                                                                     \
		uint64_t oe_h0_, oe_h1_;                                                         \
		HEAD(&oe_h0_);                                                                   \
		OK(expr);                                                                        \
		HEAD(&oe_h1_);                                                                   \
		if (oe_h1_ != oe_h0_ + 1)                                                        \
			FAIL("%s: expected exactly one new epoch (head %llu -> %llu), got head %llu", \
			     #expr, (unsigned long long)oe_h0_, (unsigned long long)oe_h0_ + 1,   \
			     (unsigned long long)oe_h1_);                                        \
	} while (0)

static int t_mmsb_xattrs(void)
{
	uint64_t h, h2, v, e, id, oldest;
	char buf[64], list[8192];
	struct stat st;
	int fd;
	static const char *root_names[] = {"user.mmsb.id", "user.mmsb.epoch", "user.mmsb.version",
					   "user.mmsb.head", "user.mmsb.oldest", "user.mmsb.pages",
					   "user.mmsb.bytes", "user.mmsb.log_bytes"};
	for (size_t i = 0; i < sizeof root_names / sizeof *root_names; i++)
		XU64(g_mnt, root_names[i], &v);
	ssize_t n = listxattr(g_mnt, list, sizeof list);
	if (n < 0)
		FAIL("listxattr(root): %s", en(errno));
	for (size_t i = 0; i < sizeof root_names / sizeof *root_names; i++)
		if (list_has(list, n, root_names[i]))
			FAIL("listxattr(root): '%s' must not be listed (read by name only)", root_names[i]);
	HEAD(&h);
	XU64(g_mnt, "user.mmsb.oldest", &oldest);
	CHECK(oldest <= h);
	/* create: one epoch; the new page's epoch is that epoch, version 0 */
	HEAD(&h);
	OPEN(fd, P("f"), O_CREAT | O_EXCL | O_RDWR, 0644);
	HEAD(&h2);
	EQ(h2, h + 1);
	XU64(P("f"), "user.mmsb.epoch", &e);
	EQ(e, h2);
	XU64(P("f"), "user.mmsb.version", &v);
	EQ(v, 0);
	OK(fstat(fd, &st));
	XU64(P("f"), "user.mmsb.id", &id);
	EQ(id, st.st_ino);
	/* each write(2) that changes bytes: one epoch, one version */
	ONE_EPOCH(pwrite(fd, "abc", 3, 0));
	ONE_EPOCH(pwrite(fd, "xyz", 3, 100));
	ONE_EPOCH(pwrite(fd, "B", 1, 1)); /* "abc" -> "aBc" */
	XU64(P("f"), "user.mmsb.version", &v);
	EQ(v, 3);
	HEAD(&h);
	XU64(P("f"), "user.mmsb.epoch", &e);
	EQ(e, h);
	/* a write that changes nothing: returns its length, no epoch, no version */
	EQ(pwrite(fd, "aBc", 3, 0), 3);
	EQ(pwrite(fd, "\0\0", 2, 10), 2); /* inside the hole: already zeros */
	HEAD(&h2);
	if (h2 != h)
		FAIL("a write that changes no byte must make no epoch: head %llu -> %llu", (unsigned long long)h,
		     (unsigned long long)h2);
	XU64(P("f"), "user.mmsb.version", &v);
	EQ(v, 3);
	/* every kind of mutation is one epoch */
	ONE_EPOCH(ftruncate(fd, 50));
	ONE_EPOCH(fchmod(fd, 0600));
	HEAD(&h);
	XU64(P("f"), "user.mmsb.epoch", &e);
	EQ(e, h);
	ONE_EPOCH(chown(P("f"), 12, 34));
	ONE_EPOCH(setxattr(P("f"), "user.k", "v", 1, 0));
	ONE_EPOCH(removexattr(P("f"), "user.k"));
	ONE_EPOCH(utimensat(AT_FDCWD, P("f"), (const struct timespec[2]){{5, 0}, {6, 0}}, 0));
	ONE_EPOCH(mkdir(P("d"), 0755));
	ONE_EPOCH(symlink("f", P("l")));
	ONE_EPOCH(rename(P("l"), P("l2")));
	ONE_EPOCH(unlink(P("l2")));
	ONE_EPOCH(rmdir(P("d")));
	ONE_EPOCH(truncate(P("f"), 10));
	OK(close(fd));
	HEAD(&h);
	/* read-only virtual xattrs */
	ERR(setxattr(P("f"), "user.mmsb.id", "7", 1, 0), EPERM);
	ERR(setxattr(P("f"), "user.mmsb.epoch", "7", 1, 0), EPERM);
	ERR(setxattr(P("f"), "user.mmsb.version", "7", 1, 0), EPERM);
	ERR(setxattr(g_mnt, "user.mmsb.head", "7", 1, 0), EPERM);
	ERR(setxattr(g_mnt, "user.mmsb.oldest", "7", 1, 0), EPERM);
	ERR(setxattr(P("f"), "user.mmsb.foo", "7", 1, 0), EPERM);
	ERR(removexattr(P("f"), "user.mmsb.id"), EPERM);
	ERR(removexattr(P("f"), "user.mmsb.version"), EPERM);
	ERR(removexattr(g_mnt, "user.mmsb.head"), EPERM);
	EQ(getxattr(P("f"), "user.mmsb.id", buf, sizeof buf) > 0, 1);
	/* the failed attempts made no epoch */
	HEAD(&h2);
	if (h2 != h)
		FAIL("refused setxattr/removexattr of user.mmsb.*: expected no new epoch (head %llu), got head %llu",
		     (unsigned long long)h, (unsigned long long)h2);
	/* directory and symlink nodes have them too */
	OK(mkdir(P("d2"), 0755));
	XU64(P("d2"), "user.mmsb.id", &id);
	OK(stat(P("d2"), &st));
	EQ(id, st.st_ino);
	XU64(P("d2"), "user.mmsb.epoch", &e);
	EQ(e, h + 1);
	return 0;
}

static int readdir_has(const char *dir, const char *name, int *count)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int found = 0, n = 0;
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, name))
			found++;
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	}
	closedir(d);
	if (count)
		*count = n;
	return found;
}

static int t_epochs_reserved(void)
{
	struct stat st;
	int fd;
	OK(stat(R("epochs"), &st));
	CHECK(S_ISDIR(st.st_mode));
	if ((uint64_t)st.st_ino < SYNTH_INO_MIN)
		FAIL("epochs: expected a synthetic st_ino >= 1<<62, got %llu", (unsigned long long)st.st_ino);
	EQ(readdir_has(g_mnt, "epochs", NULL), 0);
	ERR(mkdir(R("epochs"), 0755), EEXIST);
	ERR(open(R("epochs"), O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
	ERR(symlink("x", R("epochs")), EEXIST);
	ERR(mknod(R("epochs"), S_IFREG | 0644, 0), EEXIST);
	ERR(rmdir(R("epochs")), EBUSY);
	ERR(unlink(R("epochs")), EISDIR);
	ERR(rename(R("epochs"), R("epochs2")), EBUSY);
	ERR(stat(R("epochs2"), &st), ENOENT);
	OK(mkdir(P("emptydir"), 0755));
	ERR(rename(P("emptydir"), R("epochs")), EEXIST);
	ERR2(renameat2_(P("emptydir"), R("epochs"), RENAME_EXCHANGE), EBUSY, EEXIST);
	PUT(P("file"), "x", 1);
	ERR2(rename(P("file"), R("epochs")), EISDIR, EEXIST);
	CONTENT(P("file"), "x", 1);
	OK(stat(R("epochs"), &st));
	CHECK(S_ISDIR(st.st_mode));
	/* only the root's name is reserved */
	OK(mkdir(P("epochs"), 0755));
	OPEN(fd, P("epochs/x"), O_CREAT | O_WRONLY, 0644);
	OK(close(fd));
	return 0;
}

static int t_epochs_ro(void)
{
	struct stat st, live;
	char buf[256], e[PATH_MAX], ep[PATH_MAX];
	uint64_t h, id, oldest;
	int fd;
	PUT(P("f"), "snapshot-bytes", 14);
	OK(setxattr(P("f"), "user.x", "xv", 2, 0));
	OK(mkdir(P("d"), 0755));
	OK(mkdir(P("full"), 0755));
	PUT(P("full/g"), "g", 1);
	OK(symlink("f", P("l")));
	HEAD(&h);
	fmt_to(ep, sizeof ep, "%s/epochs/%llu", g_mnt, (unsigned long long)h);
	fmt_to(e, sizeof e, "%s/%s", ep, g_name);
#define E(rel) R("epochs/%llu/%s/%s", (unsigned long long)h, g_name, (rel))
	OK(stat(ep, &st));
	CHECK(S_ISDIR(st.st_mode));
	CONTENT(E("f"), "snapshot-bytes", 14);
	OK(stat(E("f"), &st));
	OK(stat(P("f"), &live));
	if ((uint64_t)st.st_ino < SYNTH_INO_MIN)
		FAIL("%s: expected a synthetic st_ino >= 1<<62, got %llu", E("f"), (unsigned long long)st.st_ino);
	XU64(E("f"), "user.mmsb.id", &id);
	EQ(id, live.st_ino);
	EQ(getxattr(E("f"), "user.x", buf, sizeof buf), 2);
	CHECK(memcmp(buf, "xv", 2) == 0);
	EQ(readlink(E("l"), buf, sizeof buf), 1);
	CHECK(buf[0] == 'f');
	/* every kind of modification: EROFS */
	ERR(open(E("f"), O_WRONLY), EROFS);
	ERR(open(E("f"), O_RDWR), EROFS);
	ERR(open(E("f"), O_RDONLY | O_TRUNC), EROFS);
	ERR(open(E("f"), O_WRONLY | O_APPEND), EROFS);
	ERR(open(E("new"), O_CREAT | O_WRONLY, 0644), EROFS);
	ERR(open(E("new"), O_CREAT | O_EXCL | O_RDONLY, 0644), EROFS);
	ERR(truncate(E("f"), 0), EROFS);
	ERR(chmod(E("f"), 0600), EROFS);
	ERR(chown(E("f"), 1, 1), EROFS);
	ERR(utimensat(AT_FDCWD, E("f"), NULL, 0), EROFS);
	ERR(setxattr(E("f"), "user.y", "1", 1, 0), EROFS);
	ERR(setxattr(E("f"), "user.x", "1", 1, 0), EROFS);
	ERR(removexattr(E("f"), "user.x"), EROFS);
	ERR(unlink(E("f")), EROFS);
	ERR(unlink(E("l")), EROFS);
	ERR(rename(E("f"), E("g")), EROFS);
	ERR(rename(E("f"), P("moved")), EROFS);
	ERR(rename(P("f"), E("g")), EROFS);
	ERR(mkdir(E("nd"), 0755), EROFS);
	ERR(rmdir(E("d")), EROFS);
	ERR(rmdir(E("full")), EROFS);
	ERR(symlink("x", E("ns")), EROFS);
	ERR2(link(E("f"), E("h")), EROFS, EPERM);
	ERR(mknod(E("n"), S_IFREG | 0644, 0), EROFS);
	ERR(mkfifo(E("fifo"), 0644), EROFS);
	ERR(chmod(E("d"), 0700), EROFS);
	ERR(setxattr(E("d"), "user.y", "1", 1, 0), EROFS);
	ERR(chmod(ep, 0700), EROFS);
	/* the epochs directory itself */
	ERR(mkdir(R("epochs/newdir"), 0755), EROFS);
	ERR(open(R("epochs/newfile"), O_CREAT | O_WRONLY, 0644), EROFS);
	ERR(symlink("x", R("epochs/sl")), EROFS);
	ERR(rmdir(ep), EROFS);
	ERR(rename(ep, R("epochs/renamed")), EROFS);
	ERR(unlink(R("epochs/head")), EROFS);
	ERR(setxattr(R("epochs"), "user.y", "1", 1, 0), EROFS);
	ERR(chmod(R("epochs"), 0700), EROFS);
	/* nothing changed: reads still work and the live tree is untouched */
	CONTENT(E("f"), "snapshot-bytes", 14);
	CONTENT(P("f"), "snapshot-bytes", 14);
	OPEN(fd, E("f"), O_RDONLY);
	ERR(write(fd, "x", 1), EBADF);
	OK(close(fd));
	/* the snapshot survives changes to the live tree */
	PUT(P("f"), "changed", 7);
	OK(unlink(P("l")));
	OK(rmdir(P("d")));
	CONTENT(E("f"), "snapshot-bytes", 14);
	OK(lstat(E("l"), &st));
	OK(stat(E("d"), &st));
	/* ENOENT: past head, non-numbers */
	uint64_t h2;
	HEAD(&h2);
	ERR(stat(R("epochs/%llu", (unsigned long long)h2 + 1), &st), ENOENT);
	ERR(stat(R("epochs/%llu", (unsigned long long)h2 + 1000), &st), ENOENT);
	ERR(stat(R("epochs/18446744073709551615"), &st), ENOENT);
	ERR(stat(R("epochs/99999999999999999999999999"), &st), ENOENT);
	ERR(stat(R("epochs/abc"), &st), ENOENT);
	ERR(stat(R("epochs/%llu/%s/nothere", (unsigned long long)h, g_name), &st), ENOENT);
	/* epochs/head: a symlink to the current head, never stale */
	OK(lstat(R("epochs/head"), &st));
	CHECK(S_ISLNK(st.st_mode));
	ssize_t n = readlink(R("epochs/head"), buf, sizeof buf - 1);
	if (n < 0)
		FAIL("readlink(epochs/head): %s", en(errno));
	buf[n] = 0;
	if (strtoull(buf, NULL, 10) != h2 || !is_decimal(buf, (size_t)n))
		FAIL("readlink(epochs/head): expected '%llu', got '%s'", (unsigned long long)h2, buf);
	PUT(P("f"), "changed again", 13);
	HEAD(&h2);
	n = readlink(R("epochs/head"), buf, sizeof buf - 1);
	if (n < 0)
		FAIL("readlink(epochs/head): %s", en(errno));
	buf[n] = 0;
	if (strtoull(buf, NULL, 10) != h2)
		FAIL("readlink(epochs/head) right after a write: expected '%llu', got '%s' (stale cache?)",
		     (unsigned long long)h2, buf);
	CONTENT(R("epochs/head/%s/f", g_name), "changed again", 13);
	/* listing of epochs/: head, checkpoints, never every epoch */
	int count;
	EQ(readdir_has(R("epochs"), "head", &count), 1);
	DIR *d = opendir(R("epochs"));
	if (!d)
		FAIL("opendir(epochs): %s", en(errno));
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, "head") ||
		    !strcmp(de->d_name, ".changes")) /* the change feed */
			continue;
		if (!is_decimal(de->d_name, strlen(de->d_name)) || strtoull(de->d_name, NULL, 10) > h2) {
			closedir(d);
			FAIL("ls epochs/: unexpected entry '%s' (expected head and checkpoint epochs <= %llu)", de->d_name,
			     (unsigned long long)h2);
		}
	}
	closedir(d);
	if (h2 > 200 && count > 64)
		FAIL("ls epochs/: %d entries at head %llu; expected only checkpoints and head, not every epoch", count,
		     (unsigned long long)h2);
	/* oldest retained epoch resolves; the empty store at epoch 0 */
	XU64(g_mnt, "user.mmsb.oldest", &oldest);
	OK(stat(R("epochs/%llu", (unsigned long long)oldest), &st));
	if (oldest == 0) {
		EQ(readdir_has(R("epochs/0"), "x", &count), 0);
		EQ(count, 0);
	} else {
		ERR(stat(R("epochs/%llu", (unsigned long long)oldest - 1), &st), ENOENT);
	}
#undef E
	return 0;
}

#define NHIST 120
static int t_epochs_history(void)
{
	static unsigned char *snap[NHIST + 1];
	static size_t size[NHIST + 1];
	static int xval[NHIST + 1];
	uint64_t heads[NHIST + 1], created;
	unsigned char cur[65536 + 8192], data[4096];
	size_t cursize = 0;
	int fd, xcur = -1;
	rng_seed(6);
	memset(cur, 0, sizeof cur);
	OPEN(fd, P("h"), O_CREAT | O_EXCL | O_RDWR, 0644);
	HEAD(&created);
	heads[0] = created;
	size[0] = 0;
	snap[0] = malloc(1);
	xval[0] = -1;
	for (int i = 1; i <= NHIST; i++) {
		uint64_t r = rng() % 16;
		if (r == 0) {
			size_t ns = (size_t)(rng() % 65536);
			if (ns == cursize)
				ns = cursize + 1;
			if (ns < cursize)
				memset(cur + ns, 0, cursize - ns);
			OK(ftruncate(fd, (off_t)ns));
			cursize = ns;
		} else if (r == 1) {
			xcur = i;
			char v[16];
			int vl = snprintf(v, sizeof v, "%d", i);
			OK(setxattr(P("h"), "user.step", v, (size_t)vl, 0));
		} else {
			size_t off = (size_t)(rng() % (cursize + 4096));
			size_t len = 1 + (size_t)(rng() % 4096);
			if (off + len > 65536)
				off = 65536 - len;
			rng_fill(data, len);
			/* make sure the write changes at least one byte */
			if (off < cursize)
				data[0] = (unsigned char)(cur[off] ^ 0x5a);
			else
				data[0] |= 1;
			EQ(pwrite(fd, data, len, (off_t)off), len);
			memcpy(cur + off, data, len);
			if (off + len > cursize)
				cursize = off + len;
		}
		HEAD(&heads[i]);
		if (heads[i] != heads[i - 1] + 1)
			FAIL("step %d: expected epochs to be dense, one per write(2)/ftruncate/setxattr: head %llu -> %llu, got %llu",
			     i, (unsigned long long)heads[i - 1], (unsigned long long)heads[i - 1] + 1,
			     (unsigned long long)heads[i]);
		snap[i] = malloc(cursize + 1);
		if (!snap[i])
			abort();
		memcpy(snap[i], cur, cursize);
		size[i] = cursize;
		xval[i] = xcur;
	}
	OK(close(fd));
	/* every epoch, forwards then backwards (time-travel cache) */
	for (int pass = 0; pass < 2; pass++) {
		for (int k = 0; k <= NHIST; k++) {
			int i = pass ? NHIST - k : k;
			char path[PATH_MAX], v[16];
			fmt_to(path, sizeof path, "%s/epochs/%llu/%s/h", g_mnt, (unsigned long long)heads[i], g_name);
			if (expect_content_at(__LINE__, path, snap[i], size[i]))
				FAIL("epoch %llu (step %d of %d, pass %d): bytes differ from what was written then",
				     (unsigned long long)heads[i], i, NHIST, pass);
			errno = 0;
			ssize_t n = getxattr(path, "user.step", v, sizeof v - 1);
			if (xval[i] < 0) {
				if (n != -1 || errno != ENODATA)
					FAIL("getxattr(%s, user.step): expected ENODATA (not set yet at step %d), got %zd %s",
					     path, i, n, en(errno));
			} else {
				if (n < 0)
					FAIL("getxattr(%s, user.step): expected '%d', got %s", path, xval[i], en(errno));
				v[n] = 0;
				if (atoi(v) != xval[i])
					FAIL("getxattr(%s, user.step): expected '%d', got '%s'", path, xval[i], v);
			}
		}
	}
	/* before creation the page does not exist */
	struct stat st;
	ERR(stat(R("epochs/%llu/%s/h", (unsigned long long)created - 1, g_name), &st), ENOENT);
	for (int i = 0; i <= NHIST; i++)
		free(snap[i]);
	/* a snapshot of a renamed / removed page */
	uint64_t before;
	HEAD(&before);
	OK(rename(P("h"), P("h2")));
	ERR(stat(P("h"), &st), ENOENT);
	CONTENT(R("epochs/%llu/%s/h", (unsigned long long)before, g_name), cur, cursize);
	OK(unlink(P("h2")));
	CONTENT(R("epochs/%llu/%s/h", (unsigned long long)before, g_name), cur, cursize);
	CONTENT(R("epochs/%llu/%s/h2", (unsigned long long)before + 1, g_name), cur, cursize);
	return 0;
}

static int t_mmap(void)
{
	const size_t len = 65536;
	unsigned char *pat = malloc(len), *got = malloc(len);
	uint64_t h0, h1, v;
	int fd;
	CHECK(pat && got);
	rng_seed(7);
	rng_fill(pat, len);
	OPEN(fd, P("m"), O_CREAT | O_EXCL | O_RDWR, 0644);
	OK(ftruncate(fd, (off_t)len));
	HEAD(&h0);
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		FAIL("mmap(MAP_SHARED, PROT_WRITE): expected success, got %s", en(errno));
	CHECK(is_zero(p, len));
	memcpy(p, pat, len);
	OK(msync(p, len, MS_SYNC));
	OK(munmap(p, len));
	HEAD(&h1);
	if (h1 <= h0)
		FAIL("msync(MS_SYNC) of a dirty shared mapping: expected new epochs (head > %llu), got head %llu",
		     (unsigned long long)h0, (unsigned long long)h1);
	EQ(read_all(fd, got, len, 0), len);
	CHECK(memcmp(got, pat, len) == 0);
	OK(close(fd));
	CONTENT(P("m"), pat, len);
	/* the daemon has the bytes (not just the page cache) */
	CONTENT(R("epochs/%llu/%s/m", (unsigned long long)h1, g_name), pat, len);
	XU64(P("m"), "user.mmsb.version", &v);
	CHECK(v > 0);
	/* one byte through a second mapping, no msync: munmap + fsync must write it back */
	OPEN(fd, P("m"), O_RDWR);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		FAIL("mmap: %s", en(errno));
	CHECK(memcmp(p, pat, len) == 0);
	p[40000] ^= 0xff;
	pat[40000] ^= 0xff;
	OK(munmap(p, len));
	OK(fsync(fd));
	OK(close(fd));
	HEAD(&h1);
	CONTENT(R("epochs/%llu/%s/m", (unsigned long long)h1, g_name), pat, len);
	/* write(2) is visible through a new mapping */
	OPEN(fd, P("m"), O_RDWR);
	EQ(pwrite(fd, "WXYZ", 4, 100), 4);
	memcpy(pat + 100, "WXYZ", 4);
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		FAIL("mmap: %s", en(errno));
	CHECK(memcmp(p + 100, "WXYZ", 4) == 0);
	OK(munmap(p, len));
	/* grow with ftruncate and write the new region through the mapping */
	OK(ftruncate(fd, (off_t)(2 * len)));
	p = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		FAIL("mmap: %s", en(errno));
	memset(p + len, 0xab, len);
	OK(msync(p, 2 * len, MS_SYNC));
	OK(munmap(p, 2 * len));
	OK(close(fd));
	unsigned char *full = malloc(2 * len);
	CHECK(full != NULL);
	memcpy(full, pat, len);
	memset(full + len, 0xab, len);
	CONTENT(P("m"), full, 2 * len);
	HEAD(&h1);
	CONTENT(R("epochs/%llu/%s/m", (unsigned long long)h1, g_name), full, 2 * len);
	/* dirtying pages with the bytes they already hold: WRITEs that change nothing, no epoch */
	uint64_t h2;
	OPEN(fd, P("m"), O_RDWR);
	p = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		FAIL("mmap: %s", en(errno));
	HEAD(&h1);
	for (size_t i = 0; i < 2 * len; i += 4096)
		((volatile unsigned char *)p)[i] = p[i];
	OK(msync(p, 2 * len, MS_SYNC));
	OK(munmap(p, 2 * len));
	OK(fsync(fd));
	OK(close(fd));
	HEAD(&h2);
	if (h2 != h1)
		FAIL("msync of pages rewritten with identical bytes: expected no new epoch (head %llu), got head %llu",
		     (unsigned long long)h1, (unsigned long long)h2);
	CONTENT(P("m"), full, 2 * len);
	free(full);
	free(pat);
	free(got);
	return 0;
}

/* Shared mappings and read(2)/write(2) on other descriptors see each other's bytes
 * (one page cache; mmsbfs uses direct I/O for descriptors open for writing). */
static int t_mmap_coherence(void)
{
	const size_t len = 16384;
	unsigned char buf[64], *p;
	int fdm, fdw, fdr;
	OPEN(fdm, P("c"), O_CREAT | O_EXCL | O_RDWR, 0644);
	OK(ftruncate(fdm, (off_t)len));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fdm, 0);
	if (p == MAP_FAILED)
		FAIL("mmap: %s", en(errno));
	CHECK(p[5000] == 0); /* fault the page in */
	OPEN(fdw, P("c"), O_RDWR);
	OPEN(fdr, P("c"), O_RDONLY);
	/* write(2) on another descriptor -> visible through the existing mapping */
	EQ(pwrite(fdw, "written", 7, 5000), 7);
	if (memcmp(p + 5000, "written", 7))
		FAIL("pwrite on another fd not visible through an existing shared mapping: expected 'written', got '%.7s'",
		     (const char *)p + 5000);
	/* a store to the mapping (no msync) -> visible to read(2) on both kinds of descriptor */
	memcpy(p + 9000, "stored!", 7);
	EQ(pread(fdr, buf, 7, 9000), 7);
	if (memcmp(buf, "stored!", 7))
		FAIL("store to a shared mapping (no msync) not seen by pread on an O_RDONLY fd: got '%.7s'", (const char *)buf);
	EQ(pread(fdw, buf, 7, 9000), 7);
	if (memcmp(buf, "stored!", 7))
		FAIL("store to a shared mapping (no msync) not seen by pread on an O_RDWR fd (direct I/O): expected 'stored!', got '%.7s'",
		     (const char *)buf);
	/* a write over bytes that are dirty in the mapping wins once it returns */
	memcpy(p + 12000, "mapmap", 6);
	EQ(pwrite(fdw, "WRITE!", 6, 12000), 6);
	if (memcmp(p + 12000, "WRITE!", 6))
		FAIL("pwrite after a store to the mapping: expected the mapping to show 'WRITE!', got '%.6s'",
		     (const char *)p + 12000);
	OK(msync(p, len, MS_SYNC));
	OK(munmap(p, len));
	OK(close(fdm));
	OK(close(fdw));
	OK(close(fdr));
	uint64_t h;
	HEAD(&h);
	unsigned char *exp = calloc(1, len);
	CHECK(exp != NULL);
	memcpy(exp + 5000, "written", 7);
	memcpy(exp + 9000, "stored!", 7);
	memcpy(exp + 12000, "WRITE!", 6);
	CONTENT(P("c"), exp, len);
	CONTENT(R("epochs/%llu/%s/c", (unsigned long long)h, g_name), exp, len);
	free(exp);
	return 0;
}

/* One line per entry of dir (sorted): name, type, mode, owner, size, mtime, link target,
 * user.tag xattr.  The directory itself comes first as ".". */
static int listing(const char *dir, char *out, size_t cap)
{
	struct dirent **ents;
	size_t used = 0;
	int n = scandir(dir, &ents, NULL, alphasort), rc = 0;
	if (n < 0)
		return -1;
	for (int i = -1; i < n && rc == 0; i++) {
		const char *name = i < 0 ? "." : ents[i]->d_name;
		char path[PATH_MAX], tgt[256] = "-", tag[64] = "-";
		struct stat st;
		if (i >= 0 && (!strcmp(name, ".") || !strcmp(name, "..")))
			continue;
		fmt_to(path, sizeof path, "%s/%s", dir, name);
		if (lstat(path, &st)) {
			rc = -1;
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			ssize_t l = readlink(path, tgt, sizeof tgt - 1);
			tgt[l < 0 ? 0 : l] = 0;
		} else {
			ssize_t l = getxattr(path, "user.tag", tag, sizeof tag - 1);
			if (l < 0)
				strcpy(tag, "-");
			else
				tag[l] = 0;
		}
		int w = snprintf(out + used, cap - used, "%s %o %u:%u size=%lld mtime=%lld.%09ld link=%s tag=%s\n", name,
				 (unsigned)st.st_mode, (unsigned)st.st_uid, (unsigned)st.st_gid,
				 S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_size, (long long)st.st_mtim.tv_sec,
				 st.st_mtim.tv_nsec, tgt, tag);
		if (w < 0 || (size_t)w >= cap - used) {
			rc = -1;
			break;
		}
		used += (size_t)w;
	}
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	return rc;
}

/* Metadata time travel: modes, owners, names, links, xattrs, sizes, times at every epoch. */
#define NMETA 16
static int t_epochs_meta(void)
{
	static char want[NMETA][4096], got[4096];
	uint64_t heads[NMETA], h;
	const struct timespec ts[2] = {{2000000000, 5}, {2000000001, 7}};
	int k = 0;
	OK(mkdir(P("m"), 0755));
	PUT(P("m/a"), "a", 1);
	OK(symlink("a", P("m/l")));
#define STEP(expr)                                                          \
	do {                                                                \
		OK(expr);                                                   \
		HEAD(&heads[k]);                                            \
		if (listing(P("m"), want[k], sizeof want[k]))               \
			FAIL("listing of %s failed: %s", P("m"), en(errno)); \
		k++;                                                        \
	} while (0)
	STEP(utimensat(AT_FDCWD, P("m/a"), ts, 0));
	STEP(chmod(P("m/a"), 0600));
	STEP(chown(P("m/a"), 7, 8));
	STEP(setxattr(P("m/a"), "user.tag", "v1", 2, 0));
	STEP(rename(P("m/a"), P("m/b")));
	STEP(mkdir(P("m/sub"), 0750));
	STEP(symlink("sub", P("m/l2")));
	STEP(unlink(P("m/l")));
	STEP(setxattr(P("m/b"), "user.tag", "v2", 2, 0));
	STEP(chmod(P("m"), 0700));
	STEP(rmdir(P("m/sub")));
	STEP(truncate(P("m/b"), 100));
	STEP(removexattr(P("m/b"), "user.tag"));
	STEP(rename(P("m/b"), P("m/c")));
	STEP(lchown(P("m/l2"), 3, 4));
	STEP(utimensat(AT_FDCWD, P("m/c"), ts, 0));
#undef STEP
	CHECK(k == NMETA);
	HEAD(&h);
	for (int i = 0; i < NMETA; i++) {
		const char *snapdir = R("epochs/%llu/%s/m", (unsigned long long)heads[i], g_name);
		if (listing(snapdir, got, sizeof got))
			FAIL("listing of %s failed: %s", snapdir, en(errno));
		if (strcmp(got, want[i]))
			FAIL("metadata at epoch %llu (step %d) differs from what the live tree showed then:\n--- expected\n%s--- got (%s)\n%s",
			     (unsigned long long)heads[i], i, want[i], snapdir, got);
	}
	return 0;
}

/* O_DIRECT is not in the spec: either refused cleanly at open (EINVAL) or correct. */
static int t_odirect(void)
{
	unsigned char *b, *g;
	int fd;
	struct stat st;
	fd = open(P("d"), O_CREAT | O_EXCL | O_RDWR | O_DIRECT, 0644);
	if (fd < 0) {
		if (errno == EINVAL) {
			printf("odirect: O_DIRECT refused with EINVAL (allowed)\n");
			return 0;
		}
		FAIL("open(O_DIRECT): expected success or EINVAL, got %s", en(errno));
	}
	CHECK(posix_memalign((void **)&b, 4096, 65536) == 0 && posix_memalign((void **)&g, 4096, 65536) == 0);
	rng_seed(9);
	rng_fill(b, 65536);
	EQ(pwrite(fd, b, 65536, 0), 65536);
	EQ(pwrite(fd, b, 4096, 65536 + 8192), 4096);
	EQ(pread(fd, g, 65536, 0), 65536);
	CHECK(memcmp(b, g, 65536) == 0);
	OK(fstat(fd, &st));
	EQ(st.st_size, 65536 + 8192 + 4096);
	OK(close(fd));
	unsigned char *all = calloc(1, 65536 + 8192 + 4096);
	CHECK(all != NULL);
	memcpy(all, b, 65536);
	memcpy(all + 65536 + 8192, b, 4096);
	CONTENT(P("d"), all, 65536 + 8192 + 4096);
	free(all);
	free(b);
	free(g);
	return 0;
}

static int t_big_io(void)
{
	const size_t len = 3 << 20;
	unsigned char *b = malloc(len), *g = malloc(len);
	struct stat st;
	int fd;
	CHECK(b && g);
	rng_seed(8);
	rng_fill(b, len);
	OPEN(fd, P("big"), O_CREAT | O_EXCL | O_RDWR, 0644);
	EQ(write(fd, b, len), len); /* one write(2), several FUSE WRITE requests */
	EQ(pread(fd, g, len, 0), len);
	CHECK(memcmp(b, g, len) == 0);
	/* overwrite an unaligned range spanning pages */
	rng_fill(b + 1000001, 300000);
	EQ(pwrite(fd, b + 1000001, 300000, 1000001), 300000);
	OK(fdatasync(fd));
	OK(fsync(fd));
	OK(close(fd));
	OK(stat(P("big"), &st));
	EQ(st.st_size, len);
	CONTENT(P("big"), b, len);
	free(b);
	free(g);
	return 0;
}

static int t_names(void)
{
	char name[300];
	struct stat st;
	int fd;
	memset(name, 'n', 255);
	name[255] = 0;
	OPEN(fd, P("%s", name), O_CREAT | O_EXCL | O_WRONLY, 0644);
	OK(close(fd));
	OK(stat(P("%s", name), &st));
	memset(name, 'n', 256);
	name[256] = 0;
	ERR(open(P("%s", name), O_CREAT | O_EXCL | O_WRONLY, 0644), ENAMETOOLONG);
	ERR(mkdir(P("%s", name), 0755), ENAMETOOLONG);
	const char *odd[] = {"with space", "tab\there", "new\nline", "utf8-\xc3\xa9\xe2\x82\xac", "-dash", "..dots",
			     "#hash", "*star?"};
	for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
		PUT(P("%s", odd[i]), odd[i], strlen(odd[i]));
		CONTENT(P("%s", odd[i]), odd[i], strlen(odd[i]));
	}
	int count;
	EQ(readdir_has(g_dir, "new\nline", &count), 1);
	EQ(count, (int)(sizeof odd / sizeof *odd) + 1);
	return 0;
}

static int t_fsync(void)
{
	int fd;
	OPEN(fd, P("s"), O_CREAT | O_EXCL | O_RDWR, 0644);
	EQ(write(fd, "durable", 7), 7);
	OK(fsync(fd));
	OK(fdatasync(fd));
	OK(close(fd));
	OPEN(fd, P("s"), O_RDONLY);
	OK(fsync(fd));
	OK(close(fd));
	sync();
	OPEN(fd, g_mnt, O_RDONLY | O_DIRECTORY);
	OK(syncfs(fd));
	OK(close(fd));
	return 0;
}

/* ---- driver ------------------------------------------------------------------ */

struct test {
	const char *name;
	int (*fn)(void);
};

static const struct test tests[] = {
	{"create_rw", t_create_rw},
	{"holes", t_holes},
	{"truncate", t_truncate},
	{"append", t_append},
	{"otrunc", t_otrunc},
	{"unlink_open", t_unlink_open},
	{"rename", t_rename},
	{"mkdir_rmdir", t_mkdir_rmdir},
	{"symlink", t_symlink},
	{"hardlink", t_hardlink},
	{"conform", t_conform},
	{"types", t_types},
	{"types_other", t_types_other},
	{"types_epochs", t_types_epochs},
	{"attrs", t_attrs},
	{"stat", t_stat},
	{"readdir_large", t_readdir_large},
	{"readdir_types", t_readdir_types},
	{"statfs", t_statfs},
	{"xattr", t_xattr},
	{"mmsb_xattrs", t_mmsb_xattrs},
	{"epochs_reserved", t_epochs_reserved},
	{"epochs_ro", t_epochs_ro},
	{"epochs_history", t_epochs_history},
	{"epochs_meta", t_epochs_meta},
	{"mmap", t_mmap},
	{"mmap_coherence", t_mmap_coherence},
	{"big_io", t_big_io},
	{"names", t_names},
	{"fsync", t_fsync},
	{"odirect", t_odirect},
};

static int selected(const char *name, int argc, char **argv)
{
	if (argc == 0)
		return 1;
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], name))
			return 1;
	return 0;
}

static int mounted(const char *dir)
{
	char line[8192];
	FILE *f = fopen("/proc/self/mountinfo", "r");
	int found = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f)) {
		char mp[PATH_MAX];
		/* id parent major:minor root mountpoint ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && !strcmp(mp, dir))
			found = 1;
	}
	fclose(f);
	return found;
}

static pid_t g_daemon;
static char g_tmp[PATH_MAX], g_store[PATH_MAX], g_mntbuf[PATH_MAX];

static void run_cmd(const char *const argv[])
{
	pid_t p = fork();
	if (p == 0) {
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 1);
		dup2(nul, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (p > 0)
		waitpid(p, NULL, 0);
}

/* fork/exec `mmsbfs -f STORE MNT` and wait for the mount. */
static int self_mount(const char *mmsbfs)
{
	fmt_to(g_tmp, sizeof g_tmp, "/tmp/mmsb-syscalls.XXXXXX");
	if (!mkdtemp(g_tmp)) {
		fprintf(stderr, "test_syscalls: mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	fmt_to(g_store, sizeof g_store, "%s/store", g_tmp);
	fmt_to(g_mntbuf, sizeof g_mntbuf, "%s/mnt", g_tmp);
	if (mkdir(g_mntbuf, 0755)) {
		fprintf(stderr, "test_syscalls: mkdir %s: %s\n", g_mntbuf, strerror(errno));
		return -1;
	}
	g_daemon = fork();
	if (g_daemon < 0)
		return -1;
	if (g_daemon == 0) {
		execl(mmsbfs, mmsbfs, "-f", g_store, g_mntbuf, (char *)NULL);
		fprintf(stderr, "test_syscalls: exec %s: %s\n", mmsbfs, strerror(errno));
		_exit(127);
	}
	for (int i = 0; i < 300; i++) {
		int status;
		struct stat st;
		if (waitpid(g_daemon, &status, WNOHANG) == g_daemon) {
			fprintf(stderr, "test_syscalls: FAIL: mmsbfs -f %s %s exited (status 0x%x) before mounting\n",
				g_store, g_mntbuf, status);
			g_daemon = 0;
			return -1;
		}
		if (mounted(g_mntbuf) && stat(g_mntbuf, &st) == 0)
			return 0;
		usleep(50000);
	}
	fprintf(stderr, "test_syscalls: FAIL: %s not mounted 15 s after starting mmsbfs -f\n", g_mntbuf);
	return -1;
}

static int self_unmount(void)
{
	int status = 0, rc = 0;
	const char *um[] = {"fusermount3", "-u", g_mntbuf, NULL};
	run_cmd(um);
	if (g_daemon > 0) {
		for (int i = 0; i < 600; i++) {
			if (waitpid(g_daemon, &status, WNOHANG) == g_daemon) {
				g_daemon = 0;
				break;
			}
			usleep(50000);
		}
		if (g_daemon > 0) {
			fprintf(stderr, "test_syscalls: FAIL: mmsbfs still running 30 s after fusermount3 -u; killing it\n");
			kill(g_daemon, SIGKILL);
			waitpid(g_daemon, &status, 0);
			rc = -1;
		} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "test_syscalls: FAIL: mmsbfs exited with status 0x%x after a clean unmount, expected 0\n",
				status);
			rc = -1;
		}
	}
	if (mounted(g_mntbuf)) {
		const char *lz[] = {"fusermount3", "-u", "-z", g_mntbuf, NULL};
		run_cmd(lz);
	}
	if (!mounted(g_mntbuf)) {
		const char *rm[] = {"rm", "-rf", g_tmp, NULL};
		run_cmd(rm);
	}
	return rc;
}

int main(int argc, char **argv)
{
	const char *mmsbfs = NULL;
	int failed = 0, ran = 0;
	struct timespec t0, t1;
	if (argc < 2) {
		fprintf(stderr, "usage: %s MOUNTPOINT [-p PREFIX] [TEST...] | --mmsbfs PATH [-p PREFIX] [TEST...] | --list\n",
			argv[0]);
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "test_syscalls: SKIP: needs root\n");
		return 77;
	}
	if (access("/dev/fuse", F_OK) != 0) {
		fprintf(stderr, "test_syscalls: SKIP: /dev/fuse is missing\n");
		return 77;
	}
	if (!strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < sizeof tests / sizeof *tests; i++)
			printf("%s\n", tests[i].name);
		return 0;
	}
	if (!strcmp(argv[1], "--mmsbfs")) {
		if (argc < 3) {
			fprintf(stderr, "usage: %s --mmsbfs PATH [TEST...]\n", argv[0]);
			return 2;
		}
		mmsbfs = argv[2];
		if (self_mount(mmsbfs)) {
			if (g_daemon > 0) {
				kill(g_daemon, SIGKILL);
				waitpid(g_daemon, NULL, 0);
			}
			return 1;
		}
		g_mnt = g_mntbuf;
		argc -= 3;
		argv += 3;
	} else {
		g_mnt = argv[1];
		argc -= 2;
		argv += 2;
		if (!mounted(g_mnt)) {
			fprintf(stderr, "test_syscalls: FAIL: %s is not a mount point\n", g_mnt);
			return 1;
		}
	}
	if (argc >= 2 && !strcmp(argv[0], "-p")) {
		g_prefix = argv[1];
		argc -= 2;
		argv += 2;
	}
	umask(022);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
		if (!selected(tests[i].name, argc, argv))
			continue;
		g_test = tests[i].name;
		fmt_to(g_name, sizeof g_name, "%s%s", g_prefix, g_test);
		fmt_to(g_dir, sizeof g_dir, "%s/%s", g_mnt, g_name);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int rc;
		if (mkdir(g_dir, 0755)) {
			failf(__LINE__, "mkdir(%s): expected success, got %s", g_dir, en(errno));
			rc = -1;
		} else {
			rc = tests[i].fn();
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		printf("%-18s %s (%.2fs)\n", g_test, rc ? "FAIL" : "ok", dt);
		failed += rc != 0;
		ran++;
	}
	g_test = NULL;
	if (ran == 0) {
		fprintf(stderr, "test_syscalls: no test matched\n");
		failed = 1;
	}
	printf("test_syscalls: %d of %d tests failed\n", failed, ran);
	if (mmsbfs && self_unmount())
		failed++;
	return failed ? 1 : 0;
}
