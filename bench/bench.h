/* bench.h - the clock, the comparison functions and the small helpers the
 * benchmark programs share (header only: they share no library of their
 * own). */
#ifndef MMSB_BENCH_H
#define MMSB_BENCH_H

#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* qsort comparators. */
static inline int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of v[0..n), the mean of the middle two for even n; 0 when empty
 * (sorts v). */
static inline double median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Bytes of the regular files under path (their sizes: du --apparent-size).
 * nftw passes no argument to its callback: the sum lives in acc. */
static inline uint64_t *dir_bytes_acc(void)
{
	static uint64_t total;

	return &total;
}

static inline int dir_bytes_cb(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	(void)path;
	(void)f;
	if (flag == FTW_F)
		*dir_bytes_acc() += (uint64_t)sb->st_size;
	return 0;
}

static inline uint64_t dir_bytes(const char *path)
{
	*dir_bytes_acc() = 0;
	nftw(path, dir_bytes_cb, 16, FTW_PHYS);
	return *dir_bytes_acc();
}

#endif
