/* stats.h - always-on counters and latency histograms.
 *
 * A histogram has log-linear buckets (8 per power of two) of nanoseconds,
 * updated with relaxed atomics: recording costs one increment, so it stays
 * on in production.  Percentiles are read by scanning the buckets; their
 * error is below 1/8 of the value.
 */
#ifndef MMSB_STATS_H
#define MMSB_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define MMSB_HIST_SUB 8				      /* buckets per power of two; power of 2 */
#define MMSB_HIST_BUCKETS (64 * MMSB_HIST_SUB)

struct mmsb_hist_ns {
	_Atomic uint64_t bucket[MMSB_HIST_BUCKETS]; /* counts */
};

void mmsb_stats_record(struct mmsb_hist_ns *h, uint64_t ns);
/* Value at quantile q (0 < q <= 1): the upper bound of its bucket; 0 if empty. */
uint64_t mmsb_stats_quantile(const struct mmsb_hist_ns *h, double q);

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
