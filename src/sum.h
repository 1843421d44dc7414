/* sum.h - XXH3-64 checksums, the only hash of on-disk bytes.
 * Every checksum of a store is seeded with its sb_seed, so bytes copied from
 * another store never validate. */
#ifndef MMSB_SUM_H
#define MMSB_SUM_H

#include <stddef.h>
#include <stdint.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

static inline uint64_t mmsb_sum(const void *p, size_t n, uint64_t seed)
{
	return XXH3_64bits_withSeed(p, n, seed);
}

/* XXH3-64 of the concatenation a || b. */
static inline uint64_t mmsb_sum2(const void *a, size_t alen, const void *b, size_t blen, uint64_t seed)
{
	XXH3_state_t s;

	XXH3_INITSTATE(&s); /* else reset may reuse a stale secret left on the stack */
	XXH3_64bits_reset_withSeed(&s, seed);
	XXH3_64bits_update(&s, a, alen);
	if (blen)
		XXH3_64bits_update(&s, b, blen);
	return XXH3_64bits_digest(&s);
}

#endif
