/* stats.h - latency histograms (struct mmsb_lat) and the clocks they are
 * read with.  The store's counters are plain fields of struct mmsb_store
 * (store_int.h); mmsb_store_stats() gathers both.
 *
 * A latency histogram has log-linear buckets (8 per power of two) of
 * nanoseconds, updated with relaxed atomics: recording costs one increment,
 * so it stays on in production.  Percentiles are read by scanning the
 * buckets; their error is below 1/8 of the value.  (Not to be confused with
 * hist.h, the log index behind history and time travel: "hist" names only
 * that.)
 */
#ifndef MMSB_STATS_H
#define MMSB_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define MMSB_LAT_SUB 8 /* buckets per power of two; must be 8: bucket_of() takes the 3 bits below the msb */
#define MMSB_LAT_BUCKETS (64 * MMSB_LAT_SUB)

struct mmsb_lat {
	_Atomic uint64_t bucket[MMSB_LAT_BUCKETS]; /* samples per bucket (relaxed atomics) */
};

/* Count one sample of ns nanoseconds.  Any thread, no lock. */
void mmsb_stats_record(struct mmsb_lat *h, uint64_t ns);
/* Value at quantile q (0 < q <= 1): the upper bound of its bucket; 0 if
 * empty.  Concurrent records may or may not be counted. */
uint64_t mmsb_stats_quantile(const struct mmsb_lat *h, double q);

static inline uint64_t mmsb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int64_t mmsb_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
