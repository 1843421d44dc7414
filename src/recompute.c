/* recompute.c - the built-in recompute operations, CPU implementation.
 *
 *   copy            one parent; the child becomes its bytes
 *   concat          the parents' bytes one after the other
 *   xor             parents of equal length; byte-wise xor of all
 *   add.T min.T max.T
 *                   parents of equal length, a multiple of sizeof(T);
 *                   element-wise over T in u8 u16 u32 u64 i32 i64 f32 f64
 *                   (little-endian).  Integers wrap.  min/max propagate NaN
 *                   (the first NaN operand, bits kept) and order -0 < +0.
 *   sum.T           all elements of all parents reduced to one T.  Integers
 *                   wrap.  Floats are summed in a fixed pairwise tree over
 *                   the elements in order (runs of at most 8 added left to
 *                   right, halves split at n/2), so the result is exact to
 *                   the bit on every backend.
 *
 * What this file does not do: decide when to recompute (prop.c) or run
 * exec: operations (prop.c).
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "prop.h"

static const struct {
	const char *name;
	uint8_t size;
} elem_info[] = {
	[PROP_U8] = {"u8", 1},	 [PROP_U16] = {"u16", 2}, [PROP_U32] = {"u32", 4}, [PROP_U64] = {"u64", 8},
	[PROP_I32] = {"i32", 4}, [PROP_I64] = {"i64", 8}, [PROP_F32] = {"f32", 4}, [PROP_F64] = {"f64", 8},
};

static const char *const op_name[] = {
	[PROP_COPY] = "copy", [PROP_CONCAT] = "concat", [PROP_XOR] = "xor", [PROP_ADD] = "add",
	[PROP_MIN] = "min",   [PROP_MAX] = "max",	[PROP_SUM] = "sum", [PROP_EXEC] = "exec",
};

int prop_parse(const char *val, size_t len, struct prop_spec *out)
{
	size_t i;

	while (len && (val[len - 1] == '\n' || val[len - 1] == ' ' || val[len - 1] == '\r'))
		len--;
	while (len && (*val == ' ' || *val == '\t')) {
		val++;
		len--;
	}
	memset(out, 0, sizeof(*out));
	if (len > 5 && memcmp(val, "exec:", 5) == 0) {
		out->op = PROP_EXEC;
		out->cmd = val + 5;
		out->cmd_len = len - 5;
		return memchr(out->cmd, '\0', out->cmd_len) ? -EINVAL : 0;
	}
	for (i = 0; i < MMSB_ARRAY_SIZE(op_name); i++) {
		size_t nl = strlen(op_name[i]);

		if (i == PROP_EXEC || len < nl || memcmp(val, op_name[i], nl) != 0)
			continue;
		out->op = (enum prop_op)i;
		if (i <= PROP_XOR)
			return len == nl ? 0 : -EINVAL;
		if (len < nl + 2 || val[nl] != '.')
			return -EINVAL;
		for (size_t e = 0; e < MMSB_ARRAY_SIZE(elem_info); e++)
			if (len - nl - 1 == strlen(elem_info[e].name) && memcmp(val + nl + 1, elem_info[e].name, len - nl - 1) == 0) {
				out->elem = (enum prop_elem)e;
				return 0;
			}
		return -EINVAL;
	}
	return -EINVAL;
}

size_t prop_elem_size(enum prop_elem e)
{
	return elem_info[e].size;
}

/* ---- elements as 64-bit values ------------------------------------------------------ */

static uint64_t load_u(const uint8_t *p, size_t w)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < w; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void store_u(uint8_t *p, size_t w, uint64_t v)
{
	size_t i;

	for (i = 0; i < w; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int64_t load_s(const uint8_t *p, size_t w)
{
	uint64_t v = load_u(p, w);

	if (w < 8 && (v >> (8 * w - 1)) & 1)
		v |= ~0ull << (8 * w);
	return (int64_t)v;
}

static double load_f(const uint8_t *p, enum prop_elem e)
{
	if (e == PROP_F32) {
		float f;

		memcpy(&f, p, 4);
		return f;
	}
	double d;

	memcpy(&d, p, 8);
	return d;
}

/* min (want_max false) or max of two floats, in place on the bytes of a. */
static void minmax_f(uint8_t *a, const uint8_t *b, enum prop_elem e, bool want_max)
{
	size_t w = elem_info[e].size;
	double x = load_f(a, e), y = load_f(b, e);
	bool take_b;

	if (isnan(x))
		return;
	if (isnan(y))
		take_b = true;
	else if (x == y)
		take_b = want_max ? (signbit(x) && !signbit(y)) : (!signbit(x) && signbit(y));
	else
		take_b = want_max ? y > x : y < x;
	if (take_b)
		memcpy(a, b, w);
}

static void combine(uint8_t *a, const uint8_t *b, enum prop_op op, enum prop_elem e)
{
	size_t w = elem_info[e].size;
	bool is_signed = e == PROP_I32 || e == PROP_I64;

	if (e == PROP_F32 || e == PROP_F64) {
		if (op == PROP_ADD) {
			if (e == PROP_F32) {
				float x = (float)load_f(a, e), y = (float)load_f(b, e), z = x + y;

				memcpy(a, &z, 4);
			} else {
				double z = load_f(a, e) + load_f(b, e);

				memcpy(a, &z, 8);
			}
		} else {
			minmax_f(a, b, e, op == PROP_MAX);
		}
		return;
	}
	if (op == PROP_ADD) {
		store_u(a, w, load_u(a, w) + load_u(b, w));
	} else {
		bool b_less = is_signed ? load_s(b, w) < load_s(a, w) : load_u(b, w) < load_u(a, w);

		if (b_less == (op == PROP_MIN) && load_u(a, w) != load_u(b, w))
			memcpy(a, b, w);
	}
}

/* ---- float sums in the fixed pairwise order ----------------------------------------- */

struct elems {
	const uint8_t *const *in; /* parents */
	const uint64_t *len;	  /* their lengths */
	size_t n_in;
	size_t w;		  /* element size */
};

/* Element k of the concatenation. */
static const uint8_t *elem_at(const struct elems *s, uint64_t k)
{
	size_t i;

	for (i = 0; i < s->n_in; i++) {
		uint64_t n = s->len[i] / s->w;

		if (k < n)
			return s->in[i] + k * s->w;
		k -= n;
	}
	return NULL;
}

static double sum_f64(const struct elems *s, uint64_t lo, uint64_t n)
{
	if (n <= 8) {
		double acc = 0.0;
		uint64_t k;

		for (k = 0; k < n; k++)
			acc += load_f(elem_at(s, lo + k), PROP_F64);
		return acc;
	}
	return sum_f64(s, lo, n / 2) + sum_f64(s, lo + n / 2, n - n / 2);
}

static float sum_f32(const struct elems *s, uint64_t lo, uint64_t n)
{
	if (n <= 8) {
		float acc = 0.0f;
		uint64_t k;

		for (k = 0; k < n; k++)
			acc += (float)load_f(elem_at(s, lo + k), PROP_F32);
		return acc;
	}
	return sum_f32(s, lo, n / 2) + sum_f32(s, lo + n / 2, n - n / 2);
}

static int do_sum(const struct prop_spec *sp, const struct elems *s, struct mmsb_buf *out)
{
	uint64_t total = 0, k;
	uint8_t *o;
	size_t i;
	int rc;

	for (i = 0; i < s->n_in; i++) {
		if (s->len[i] % s->w)
			return -EINVAL;
		total += s->len[i] / s->w;
	}
	rc = mmsb_buf_grow(out, s->w, &o);
	if (rc < 0)
		return rc;
	if (sp->elem == PROP_F64) {
		double d = sum_f64(s, 0, total);

		memcpy(o, &d, 8);
	} else if (sp->elem == PROP_F32) {
		float f = sum_f32(s, 0, total);

		memcpy(o, &f, 4);
	} else {
		uint64_t acc = 0;

		for (i = 0; i < s->n_in; i++)
			for (k = 0; k < s->len[i]; k += s->w)
				acc += load_u(s->in[i] + k, s->w);
		store_u(o, s->w, acc);
	}
	return 0;
}

int prop_compute(const struct prop_spec *sp, const uint8_t *const *in, const uint64_t *in_len, size_t n_in,
		 struct mmsb_buf *out)
{
	struct elems s = {in, in_len, n_in, sp->op >= PROP_ADD && sp->op <= PROP_SUM ? elem_info[sp->elem].size : 1};
	uint64_t k;
	uint8_t *o;
	size_t i;
	int rc;

	out->len = 0;
	if (n_in == 0 || (sp->op == PROP_COPY && n_in != 1))
		return -EINVAL;
	if (sp->op == PROP_SUM)
		return do_sum(sp, &s, out);
	if (sp->op == PROP_COPY || sp->op == PROP_CONCAT) {
		for (i = 0, rc = 0; i < n_in && rc == 0; i++)
			rc = mmsb_buf_put(out, in[i], in_len[i]);
		return rc;
	}
	for (i = 1; i < n_in; i++)
		if (in_len[i] != in_len[0])
			return -EINVAL;
	if (in_len[0] % s.w)
		return -EINVAL;
	rc = mmsb_buf_grow(out, in_len[0], &o);
	if (rc < 0)
		return rc;
	if (in_len[0])
		memcpy(o, in[0], in_len[0]);
	for (i = 1; i < n_in; i++) {
		if (sp->op == PROP_XOR) {
			for (k = 0; k < in_len[0]; k++)
				o[k] ^= in[i][k];
			continue;
		}
		for (k = 0; k < in_len[0]; k += s.w)
			combine(o + k, in[i] + k, sp->op, sp->elem);
	}
	return 0;
}
