/* kern_testlib.h - helpers shared by test_kern_cpu.c and test_kern.c: a
 * seeded RNG, random page contents with float specials, random deltas made
 * by the real encoder (mmsb_delta_diff), and naive reference versions of
 * every recompute operation written straight from the text of kern.h.
 *
 * MMSB_TEST_SEED=<n> picks another seed; the seed is printed on failure.
 */
#ifndef KERN_TESTLIB_H
#define KERN_TESTLIB_H

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "delta.h"
#include "kern.h"

static unsigned long long t_seed = 20261126;
static uint64_t t_state;
static int t_failures;
static bool t_quick; /* MMSB_TEST_QUICK=1: fewer, smaller cases (sanitizer runs) */

#define CHECK(c)                                                                                             \
	do {                                                                                                 \
		if (!(c)) {                                                                                  \
			fprintf(stderr, "%s:%d: CHECK failed: %s (seed %llu)\n", __FILE__, __LINE__, #c, t_seed); \
			t_failures++;                                                                        \
		}                                                                                            \
	} while (0)

static inline void t_init(void)
{
	const char *s = getenv("MMSB_TEST_SEED");

	if (s && *s)
		t_seed = strtoull(s, NULL, 0);
	s = getenv("MMSB_TEST_QUICK");
	t_quick = s && *s && *s != '0';
	t_state = t_seed * 0x9e3779b97f4a7c15ull + 1;
}

static inline uint64_t t_rng(void) /* splitmix64 */
{
	uint64_t z = (t_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t t_below(uint64_t n)
{
	return n ? t_rng() % n : 0;
}

static inline void t_fill(uint8_t *p, size_t n)
{
	size_t i = 0;

	for (; n - i >= 8; i += 8) {
		uint64_t v = t_rng();

		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] = (uint8_t)t_rng();
}

/* Random elements: for floats a mix of ordinary values, NaN (random
 * payloads and signs), +-inf, +-0, subnormals and huge values; for
 * integers random bits with some extremes. */
static inline void t_fill_elems(uint8_t *p, size_t n, enum mmsb_kern_elem elem, unsigned special_pct)
{
	size_t es = mmsb_kern_elem_size(elem), i;

	t_fill(p, n);
	if (elem != MMSB_KERN_F32 && elem != MMSB_KERN_F64)
		return;
	for (i = 0; i + es <= n; i += es) {
		unsigned r = (unsigned)t_below(100);

		if (elem == MMSB_KERN_F32) {
			float f;
			uint32_t u;

			if (r >= special_pct) {
				f = (float)((double)(int64_t)t_rng() / 9.2e18 * (double)(1 << t_below(20)));
			} else {
				switch (t_below(8)) {
				case 0: u = 0x7f800000u | (uint32_t)(t_rng() & 0x7fffff) | 1u; u |= (uint32_t)(t_rng() & 1) << 31; memcpy(&f, &u, 4); break;
				case 1: f = INFINITY; break;
				case 2: f = -INFINITY; break;
				case 3: f = 0.0f; break;
				case 4: f = -0.0f; break;
				case 5: u = (uint32_t)(t_rng() & 0x807fffff); memcpy(&f, &u, 4); break; /* subnormal */
				case 6: f = 3.0e38f * (t_rng() & 1 ? 1 : -1); break;
				default: f = 1.0f; break;
				}
			}
			memcpy(p + i, &f, 4);
		} else {
			double d;
			uint64_t u;

			if (r >= special_pct) {
				d = (double)(int64_t)t_rng() / 9.2e18 * (double)(1ull << t_below(50));
			} else {
				switch (t_below(8)) {
				case 0: u = 0x7ff0000000000000ull | (t_rng() & 0xfffffffffffffull) | 1u; u |= t_rng() & (1ull << 63); memcpy(&d, &u, 8); break;
				case 1: d = INFINITY; break;
				case 2: d = -INFINITY; break;
				case 3: d = 0.0; break;
				case 4: d = -0.0; break;
				case 5: u = t_rng() & 0x800fffffffffffffull; memcpy(&d, &u, 8); break;
				case 6: d = 1.7e308 * (t_rng() & 1 ? 1 : -1); break;
				default: d = 1.0; break;
				}
			}
			memcpy(p + i, &d, 8);
		}
	}
}

/* ---- random deltas ---------------------------------------------------------- */

/* Make a random write over page cur[0..size) and encode it with the real
 * encoder into out (appended; *enc set).  Shapes: dense runs, a few
 * clustered runs, scattered single bytes, whole-page.  Returns the body
 * length (0 = nothing changed). */
static inline size_t t_make_delta(const uint8_t *cur, uint64_t size, struct mmsb_buf *out, uint8_t *enc)
{
	uint8_t *w;
	uint64_t off, len, i;
	struct mmsb_delta_info info;
	size_t before = out->len;
	unsigned shape = (unsigned)t_below(4);

	if (size == 0)
		return 0;
	off = t_below(size);
	len = 1 + t_below(size - off);
	if (shape == 3) {
		off = 0;
		len = size;
	}
	w = malloc((size_t)len);
	if (!w)
		abort();
	memcpy(w, cur + off, (size_t)len);
	switch (shape) {
	case 0: /* dense */
		t_fill(w, (size_t)len);
		break;
	case 1: /* clustered runs */
		for (i = 0; i < 1 + t_below(6); i++) {
			uint64_t a = t_below(len), b = a + 1 + t_below(64);

			for (; a < b && a < len; a++)
				w[a] = (uint8_t)t_rng();
		}
		break;
	default: /* scattered bytes */
		for (i = 0; i < 1 + len / 9; i++) {
			uint64_t a = t_below(len);

			w[a] = (uint8_t)(w[a] + 1 + t_below(255));
		}
		break;
	}
	if (mmsb_delta_diff(cur, size, off, w, (size_t)len, out, &info) < 0)
		abort();
	free(w);
	*enc = info.enc;
	return out->len - before;
}

/* ---- naive recompute ---------------------------------------------------------- */

static inline float n_canon32(float x)
{
	uint32_t u = 0x7fc00000u;

	if (isnan(x))
		memcpy(&x, &u, 4);
	return x;
}

static inline double n_canon64(double x)
{
	uint64_t u = 0x7ff8000000000000ull;

	if (isnan(x))
		memcpy(&x, &u, 8);
	return x;
}

static inline double n_minmax(double a, double b, bool is_min)
{
	if (isnan(a) || isnan(b))
		return NAN;
	if (a == b) { /* only +-0 can differ */
		if (a != 0)
			return a;
		if (is_min)
			return signbit(a) || signbit(b) ? -0.0 : 0.0;
		return signbit(a) && signbit(b) ? -0.0 : 0.0;
	}
	return is_min ? (a < b ? a : b) : (a > b ? a : b);
}

static inline float n_sum32_rec(const float *x, size_t n, size_t lo, size_t hi)
{
	if (hi - lo == 1)
		return lo < n ? x[lo] : -0.0f;
	return n_sum32_rec(x, n, lo, (lo + hi) / 2) + n_sum32_rec(x, n, (lo + hi) / 2, hi);
}

static inline double n_sum64_rec(const double *x, size_t n, size_t lo, size_t hi)
{
	if (hi - lo == 1)
		return lo < n ? x[lo] : -0.0;
	return n_sum64_rec(x, n, lo, (lo + hi) / 2) + n_sum64_rec(x, n, (lo + hi) / 2, hi);
}

static inline uint64_t n_get(const uint8_t *p, size_t es)
{
	uint64_t v = 0;

	memcpy(&v, p, es); /* little-endian */
	return v;
}

static inline int64_t n_sext(uint64_t v, size_t es)
{
	return es == 8 ? (int64_t)v : (int64_t)(int32_t)(uint32_t)v;
}

/* The naive reference: element by element, straight from kern.h. */
static inline int n_recompute(enum mmsb_kern_op op, enum mmsb_kern_elem elem, uint8_t *out, size_t out_len,
			      const void *const *in, const size_t *in_len, size_t n_in)
{
	size_t es = mmsb_kern_elem_size(elem), k, i, want, at;
	bool fl = elem == MMSB_KERN_F32 || elem == MMSB_KERN_F64;
	bool sg = elem == MMSB_KERN_I32 || elem == MMSB_KERN_I64;

	if (mmsb_kern_recompute_len(op, elem, in_len, n_in, &want) < 0 || want != out_len)
		return -EINVAL;
	if (op == MMSB_KERN_COPY || op == MMSB_KERN_CONCAT) {
		for (k = 0, at = 0; k < n_in; k++)
			for (i = 0; i < in_len[k]; i++)
				out[at++] = ((const uint8_t *)in[k])[i];
		return 0;
	}
	if (op == MMSB_KERN_XOR) {
		for (i = 0; i < out_len; i++) {
			uint8_t v = 0;

			for (k = 0; k < n_in; k++)
				v ^= ((const uint8_t *)in[k])[i];
			out[i] = v;
		}
		return 0;
	}
	if (op == MMSB_KERN_SUM) {
		size_t n = 0, p = 1;

		for (k = 0; k < n_in; k++)
			n += in_len[k] / es;
		if (!fl) {
			uint64_t s = 0;

			for (k = 0; k < n_in; k++)
				for (i = 0; i < in_len[k]; i += es)
					s += n_get((const uint8_t *)in[k] + i, es);
			memcpy(out, &s, es);
			return 0;
		}
		uint8_t *all = malloc(n * es + 8);

		for (k = 0, at = 0; k < n_in; k++) {
			memcpy(all + at, in[k], in_len[k]);
			at += in_len[k];
		}
		while (p < n)
			p *= 2;
		if (elem == MMSB_KERN_F32) {
			float r = n == 0 ? 0.0f : n_canon32(n_sum32_rec((const float *)(void *)all, n, 0, p));

			memcpy(out, &r, 4);
		} else {
			double r = n == 0 ? 0.0 : n_canon64(n_sum64_rec((const double *)(void *)all, n, 0, p));

			memcpy(out, &r, 8);
		}
		free(all);
		return 0;
	}
	for (i = 0; i < out_len; i += es) {
		if (elem == MMSB_KERN_F32) {
			float a, b;

			memcpy(&a, (const uint8_t *)in[0] + i, 4);
			for (k = 1; k < n_in; k++) {
				memcpy(&b, (const uint8_t *)in[k] + i, 4);
				a = op == MMSB_KERN_ADD ? a + b : (float)n_minmax(a, b, op == MMSB_KERN_MIN);
			}
			a = n_canon32(a);
			memcpy(out + i, &a, 4);
		} else if (elem == MMSB_KERN_F64) {
			double a, b;

			memcpy(&a, (const uint8_t *)in[0] + i, 8);
			for (k = 1; k < n_in; k++) {
				memcpy(&b, (const uint8_t *)in[k] + i, 8);
				a = op == MMSB_KERN_ADD ? a + b : n_minmax(a, b, op == MMSB_KERN_MIN);
			}
			a = n_canon64(a);
			memcpy(out + i, &a, 8);
		} else {
			uint64_t a = n_get((const uint8_t *)in[0] + i, es), b;

			for (k = 1; k < n_in; k++) {
				b = n_get((const uint8_t *)in[k] + i, es);
				if (op == MMSB_KERN_ADD)
					a += b;
				else if (sg)
					a = (op == MMSB_KERN_MIN) == (n_sext(b, es) < n_sext(a, es)) ? b : a;
				else
					a = (op == MMSB_KERN_MIN) == (b < a) ? b : a;
			}
			memcpy(out + i, &a, es);
		}
	}
	(void)fl;
	return 0;
}

static const enum mmsb_kern_elem t_elems[] = {MMSB_KERN_U8,  MMSB_KERN_U16, MMSB_KERN_U32, MMSB_KERN_U64,
					      MMSB_KERN_I32, MMSB_KERN_I64, MMSB_KERN_F32, MMSB_KERN_F64};
static const char *const t_elem_names[] = {"?", "u8", "u16", "u32", "u64", "i32", "i64", "f32", "f64"};
static const char *const t_op_names[] = {"?", "copy", "concat", "xor", "add", "min", "max", "sum"};

#endif
