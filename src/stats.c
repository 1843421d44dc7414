/* stats.c - log-linear latency histograms (struct mmsb_lat).  See stats.h. */
#include "stats.h"

static unsigned bucket_of(uint64_t ns)
{
	unsigned msb, sub;

	if (ns < MMSB_LAT_SUB)
		return (unsigned)ns;
	msb = 63u - (unsigned)__builtin_clzll(ns);		      /* >= 3 */
	sub = (unsigned)(ns >> (msb - 3)) & (MMSB_LAT_SUB - 1); /* 3 bits below the msb */
	return (msb - 2) * MMSB_LAT_SUB + sub;
}

static uint64_t bucket_top(unsigned b)
{
	unsigned msb, sub;

	if (b < MMSB_LAT_SUB)
		return b;
	msb = b / MMSB_LAT_SUB + 2;
	sub = b % MMSB_LAT_SUB;
	return ((uint64_t)(MMSB_LAT_SUB + sub + 1) << (msb - 3)) - 1;
}

void mmsb_stats_record(struct mmsb_lat *h, uint64_t ns)
{
	unsigned b = bucket_of(ns);

	if (b >= MMSB_LAT_BUCKETS)
		b = MMSB_LAT_BUCKETS - 1;
	atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
}

uint64_t mmsb_stats_quantile(const struct mmsb_lat *h, double q)
{
	uint64_t total = 0, seen = 0, want;
	unsigned b;

	for (b = 0; b < MMSB_LAT_BUCKETS; b++)
		total += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
	if (!total)
		return 0;
	want = (uint64_t)(q * (double)total);
	if (want < 1)
		want = 1;
	for (b = 0; b < MMSB_LAT_BUCKETS; b++) {
		seen += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
		if (seen >= want)
			return bucket_top(b);
	}
	return bucket_top(MMSB_LAT_BUCKETS - 1);
}
