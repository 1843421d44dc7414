/* kern_cpu.c - the CPU kernel table: the reference every other table must
 * match byte for byte, and the fallback when there is no GPU.
 *
 * Plain C11, one thread per call.  Loads and stores go through memcpy, so no
 * pointer needs alignment and the compiler emits plain (vectorizable) word
 * accesses.  The masked merge is the select (base & ~M) | (data & M) on
 * 64-bit words, M the byte mask expanded from the lane's bitmask.
 *
 * Recompute semantics (NaN, -0, the pairwise tree of SUM) are specified in
 * kern.h; the float helpers below are that specification in code.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kern_int.h"

/* ---- memory ------------------------------------------------------------------ */

static int cpu_page_alloc(size_t n, void **out)
{
	size_t r;
	void *p;

	*out = NULL;
	if (n == 0)
		return 0;
	if (n > SIZE_MAX - 63)
		return -ENOMEM;
	r = (n + 63) & ~(size_t)63;
	p = aligned_alloc(64, r);
	if (!p)
		return -ENOMEM;
	memset(p, 0, r);
	*out = p;
	return 0;
}

static int cpu_page_free(void *p)
{
	free(p);
	return 0;
}

static int cpu_copy(void *dst, const void *src, size_t n)
{
	if (n == 0)
		return 0;
	if (!dst || !src || kern_overlap(dst, n, src, n))
		return -EINVAL;
	memcpy(dst, src, n);
	return 0;
}

static int cpu_zero(void *dst, size_t n)
{
	if (n == 0)
		return 0;
	if (!dst)
		return -EINVAL;
	memset(dst, 0, n);
	return 0;
}

static int cpu_sync(void)
{
	return 0;
}

static int cpu_compare(const void *a, const void *b, size_t n, int64_t *first)
{
	const uint8_t *x = a, *y = b;
	size_t i = 0;

	*first = -1;
	if (n == 0)
		return 0;
	if (!a || !b)
		return -EINVAL;
	for (; n - i >= 32; i += 32)
		if (memcmp(x + i, y + i, 32) != 0)
			break;
	for (; n - i >= 8; i += 8) {
		uint64_t u, v;

		memcpy(&u, x + i, 8);
		memcpy(&v, y + i, 8);
		if (u != v)
			break;
	}
	for (; i < n; i++) {
		if (x[i] != y[i]) {
			*first = (int64_t)i;
			return 0;
		}
	}
	return 0;
}

/* ---- delta batches ------------------------------------------------------------ */

/* 4 mask bits -> 4 byte lanes of 0x00/0xff (GPU-NOTES 1.6, ex4). */
static inline uint32_t ex4(uint32_t v)
{
	return ((v * 0x00204081u) & 0x01010101u) * 0xffu;
}

/* 8 mask bits -> 8 byte lanes, byte k of memory (little-endian word). */
static inline uint64_t ex8(uint32_t v)
{
	return (uint64_t)ex4(v & 15) | (uint64_t)ex4((v >> 4) & 15) << 32;
}

void kern_cpu_apply_lanes(const struct mmsb_kern_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		uint64_t a = b->addr[i];
		uint8_t *dst = (uint8_t *)(uintptr_t)(a & ~(uint64_t)15);
		const uint8_t *d = b->data + i * KERN_LANE;
		uint32_t m = b->mask[i];

		if (a & KERN_LANE_PARTIAL) {
			while (m) {
				unsigned j = (unsigned)__builtin_ctz(m);

				dst[j] = d[j];
				m &= m - 1;
			}
		} else if (m == 0xffffu) {
			memcpy(dst, d, KERN_LANE);
		} else {
			uint64_t x[2], y[2], w0 = ex8(m & 0xff), w1 = ex8(m >> 8);

			memcpy(x, dst, 16);
			memcpy(y, d, 16);
			x[0] = (x[0] & ~w0) | (y[0] & w0);
			x[1] = (x[1] & ~w1) | (y[1] & w1);
			memcpy(dst, x, 16);
		}
	}
}

static const struct mmsb_kern_ops cpu_ops;

static int cpu_batch_new(struct mmsb_kern_batch **out)
{
	struct mmsb_kern_batch *b = malloc(sizeof(*b));

	*out = NULL;
	if (!b)
		return -ENOMEM;
	kern_batch_init(b, &cpu_ops, NULL, NULL);
	*out = b;
	return 0;
}

static int cpu_batch_free(struct mmsb_kern_batch *b)
{
	if (!b)
		return 0;
	kern_batch_release(b);
	free(b);
	return 0;
}

static int cpu_apply_batch(struct mmsb_kern_batch *b)
{
	if (!b || b->ops != &cpu_ops)
		return -EINVAL;
	kern_cpu_apply_lanes(b);
	return 0;
}

/* ---- recompute: element helpers --------------------------------------------------
 * Elements are loaded and stored with memcpy (any alignment, host order). */

#define CANON_NAN32 0x7fc00000u
#define CANON_NAN64 0x7ff8000000000000ull

static inline float canon32(float x)
{
	if (x != x) {
		uint32_t u = CANON_NAN32;

		memcpy(&x, &u, 4);
	}
	return x;
}

static inline double canon64(double x)
{
	if (x != x) {
		uint64_t u = CANON_NAN64;

		memcpy(&x, &u, 8);
	}
	return x;
}

static inline float min32(float a, float b)
{
	if (a != a || b != b)
		return canon32(a + b);
	if (a < b)
		return a;
	if (b < a)
		return b;
	return signbit(a) ? a : b; /* equal: -0 wins */
}

static inline float max32(float a, float b)
{
	if (a != a || b != b)
		return canon32(a + b);
	if (a > b)
		return a;
	if (b > a)
		return b;
	return signbit(a) ? b : a; /* equal: +0 wins */
}

static inline double min64(double a, double b)
{
	if (a != a || b != b)
		return canon64(a + b);
	if (a < b)
		return a;
	if (b < a)
		return b;
	return signbit(a) ? a : b;
}

static inline double max64(double a, double b)
{
	if (a != a || b != b)
		return canon64(a + b);
	if (a > b)
		return a;
	if (b > a)
		return b;
	return signbit(a) ? b : a;
}

/* acc[0..n) = op(acc, x) element-wise, for one element type.  n is in bytes,
 * a multiple of the element size. */
static void fold_u8(uint8_t *acc, const uint8_t *x, size_t n, enum mmsb_kern_op op)
{
	size_t i;

	switch (op) {
	case MMSB_KERN_ADD:
		for (i = 0; i < n; i++)
			acc[i] = (uint8_t)(acc[i] + x[i]);
		break;
	case MMSB_KERN_MIN:
		for (i = 0; i < n; i++)
			acc[i] = x[i] < acc[i] ? x[i] : acc[i];
		break;
	case MMSB_KERN_MAX:
		for (i = 0; i < n; i++)
			acc[i] = x[i] > acc[i] ? x[i] : acc[i];
		break;
	default: /* XOR, a word at a time */
		for (i = 0; n - i >= 8; i += 8) {
			uint64_t a, b;

			memcpy(&a, acc + i, 8);
			memcpy(&b, x + i, 8);
			a ^= b;
			memcpy(acc + i, &a, 8);
		}
		for (; i < n; i++)
			acc[i] ^= x[i];
		break;
	}
}

static void fold_u16(uint8_t *acc, const uint8_t *x, size_t n, enum mmsb_kern_op op)
{
	size_t i;

	for (i = 0; i < n; i += 2) {
		uint16_t a, b;

		memcpy(&a, acc + i, 2);
		memcpy(&b, x + i, 2);
		a = op == MMSB_KERN_ADD ? (uint16_t)(a + b) : op == MMSB_KERN_MIN ? (b < a ? b : a) : (b > a ? b : a);
		memcpy(acc + i, &a, 2);
	}
}

static void fold_u32(uint8_t *acc, const uint8_t *x, size_t n, enum mmsb_kern_op op)
{
	size_t i;

	for (i = 0; i < n; i += 4) {
		uint32_t a, b;

		memcpy(&a, acc + i, 4);
		memcpy(&b, x + i, 4);
		a = op == MMSB_KERN_ADD ? a + b : op == MMSB_KERN_MIN ? (b < a ? b : a) : (b > a ? b : a);
		memcpy(acc + i, &a, 4);
	}
}

static void fold_u64(uint8_t *acc, const uint8_t *x, size_t n, enum mmsb_kern_op op)
{
	size_t i;

	for (i = 0; i < n; i += 8) {
		uint64_t a, b;

		memcpy(&a, acc + i, 8);
		memcpy(&b, x + i, 8);
		a = op == MMSB_KERN_ADD ? a + b : op == MMSB_KERN_MIN ? (b < a ? b : a) : (b > a ? b : a);
		memcpy(acc + i, &a, 8);
	}
}

static void fold_i32(uint8_t *acc, const uint8_t *x, size_t n, enum mmsb_kern_op op)
{
	size_t i;

	if (op == MMSB_KERN_ADD) {
		fold_u32(acc, x, n, op); /* two's complement: same bits */
		return;
	}
	for (i = 0; i < n; i += 4) {
		int32_t a, b;

		memcpy(&a, acc + i, 4);
		memcpy(&b, x + i, 4);
		a = op == MMSB_KERN_MIN ? (b < a ? b : a) : (b > a ? b : a);
		memcpy(acc + i, &a, 4);
	}
}

static void fold_i64(uint8_t *acc, const uint8_t *x, size_t n, enum mmsb_kern_op op)
{
	size_t i;

	if (op == MMSB_KERN_ADD) {
		fold_u64(acc, x, n, op);
		return;
	}
	for (i = 0; i < n; i += 8) {
		int64_t a, b;

		memcpy(&a, acc + i, 8);
		memcpy(&b, x + i, 8);
		a = op == MMSB_KERN_MIN ? (b < a ? b : a) : (b > a ? b : a);
		memcpy(acc + i, &a, 8);
	}
}

static void fold_f32(uint8_t *acc, const uint8_t *x, size_t n, enum mmsb_kern_op op)
{
	size_t i;

	for (i = 0; i < n; i += 4) {
		float a, b;

		memcpy(&a, acc + i, 4);
		memcpy(&b, x + i, 4);
		a = op == MMSB_KERN_ADD ? canon32(a + b) : op == MMSB_KERN_MIN ? min32(a, b) : max32(a, b);
		memcpy(acc + i, &a, 4);
	}
}

static void fold_f64(uint8_t *acc, const uint8_t *x, size_t n, enum mmsb_kern_op op)
{
	size_t i;

	for (i = 0; i < n; i += 8) {
		double a, b;

		memcpy(&a, acc + i, 8);
		memcpy(&b, x + i, 8);
		a = op == MMSB_KERN_ADD ? canon64(a + b) : op == MMSB_KERN_MIN ? min64(a, b) : max64(a, b);
		memcpy(acc + i, &a, 8);
	}
}

static void fold(uint8_t *acc, const uint8_t *x, size_t n, enum mmsb_kern_op op, enum mmsb_kern_elem elem)
{
	if (op == MMSB_KERN_XOR) {
		fold_u8(acc, x, n, op);
		return;
	}
	switch (elem) {
	case MMSB_KERN_U8:
		fold_u8(acc, x, n, op);
		break;
	case MMSB_KERN_U16:
		fold_u16(acc, x, n, op);
		break;
	case MMSB_KERN_U32:
		fold_u32(acc, x, n, op);
		break;
	case MMSB_KERN_U64:
		fold_u64(acc, x, n, op);
		break;
	case MMSB_KERN_I32:
		fold_i32(acc, x, n, op);
		break;
	case MMSB_KERN_I64:
		fold_i64(acc, x, n, op);
		break;
	case MMSB_KERN_F32:
		fold_f32(acc, x, n, op);
		break;
	case MMSB_KERN_F64:
		fold_f64(acc, x, n, op);
		break;
	}
}

/* Canonicalize a lone parent's NaNs (n_in == 1 for float ADD/MIN/MAX). */
static void canon_bytes(uint8_t *out, size_t n, enum mmsb_kern_elem elem)
{
	size_t i;

	if (elem == MMSB_KERN_F32) {
		for (i = 0; i < n; i += 4) {
			float a;

			memcpy(&a, out + i, 4);
			if (a != a) {
				a = canon32(a);
				memcpy(out + i, &a, 4);
			}
		}
	} else if (elem == MMSB_KERN_F64) {
		for (i = 0; i < n; i += 8) {
			double a;

			memcpy(&a, out + i, 8);
			if (a != a) {
				a = canon64(a);
				memcpy(out + i, &a, 8);
			}
		}
	}
}

/* ---- recompute: SUM ----------------------------------------------------------------
 * Floats: the padded pairwise tree of kern.h, built as a binary counter:
 * stack entries are sums of aligned power-of-two blocks of decreasing size;
 * pushing a block of size 2^l merges it with an equal-sized one on top (the
 * earlier block is the left operand).  Aligned blocks of 8 are summed with
 * their fixed tree first.  At the end the stack is folded from the right,
 * which is adding the -0.0 padding implicitly (x + -0.0 == x). */

struct sum32 {
	float v[65];
	unsigned lvl[65];
	unsigned top;
	uint64_t pos; /* elements seen */
};

static inline void push32(struct sum32 *s, float v, unsigned lvl)
{
	while (s->top && s->lvl[s->top - 1] == lvl) {
		v = s->v[s->top - 1] + v;
		s->top--;
		lvl++;
	}
	s->v[s->top] = v;
	s->lvl[s->top] = lvl;
	s->top++;
}

static void sum32_feed(struct sum32 *s, const uint8_t *p, size_t n_elem)
{
	size_t i = 0;

	while (i < n_elem) {
		if ((s->pos & 7) == 0 && n_elem - i >= 8) {
			float x[8];

			memcpy(x, p + 4 * i, sizeof(x));
			push32(s, ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7])), 3);
			i += 8;
			s->pos += 8;
		} else {
			float x;

			memcpy(&x, p + 4 * i, 4);
			push32(s, x, 0);
			i++;
			s->pos++;
		}
	}
}

static float sum32_end(const struct sum32 *s)
{
	float acc;
	unsigned k;

	if (s->top == 0)
		return 0.0f;
	acc = s->v[s->top - 1];
	for (k = s->top - 1; k-- > 0;)
		acc = s->v[k] + acc;
	return canon32(acc);
}

struct sum64 {
	double v[65];
	unsigned lvl[65];
	unsigned top;
	uint64_t pos;
};

static inline void push64(struct sum64 *s, double v, unsigned lvl)
{
	while (s->top && s->lvl[s->top - 1] == lvl) {
		v = s->v[s->top - 1] + v;
		s->top--;
		lvl++;
	}
	s->v[s->top] = v;
	s->lvl[s->top] = lvl;
	s->top++;
}

static void sum64_feed(struct sum64 *s, const uint8_t *p, size_t n_elem)
{
	size_t i = 0;

	while (i < n_elem) {
		if ((s->pos & 7) == 0 && n_elem - i >= 8) {
			double x[8];

			memcpy(x, p + 8 * i, sizeof(x));
			push64(s, ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7])), 3);
			i += 8;
			s->pos += 8;
		} else {
			double x;

			memcpy(&x, p + 8 * i, 8);
			push64(s, x, 0);
			i++;
			s->pos++;
		}
	}
}

static double sum64_end(const struct sum64 *s)
{
	double acc;
	unsigned k;

	if (s->top == 0)
		return 0.0;
	acc = s->v[s->top - 1];
	for (k = s->top - 1; k-- > 0;)
		acc = s->v[k] + acc;
	return canon64(acc);
}

/* Integers: the wrapped sum of the zero-extended bit patterns, truncated. */
static uint64_t sum_int(const uint8_t *p, size_t n, size_t es)
{
	uint64_t s = 0, t[4] = {0, 0, 0, 0};
	size_t i = 0;

	switch (es) {
	case 1:
		for (; i < n; i++)
			s += p[i];
		break;
	case 2:
		for (; i < n; i += 2) {
			uint16_t v;

			memcpy(&v, p + i, 2);
			s += v;
		}
		break;
	case 4:
		for (; i < n; i += 4) {
			uint32_t v;

			memcpy(&v, p + i, 4);
			s += v;
		}
		break;
	default:
		for (; n - i >= 32; i += 32) {
			uint64_t v[4];

			memcpy(v, p + i, 32);
			t[0] += v[0];
			t[1] += v[1];
			t[2] += v[2];
			t[3] += v[3];
		}
		for (; i < n; i += 8) {
			uint64_t v;

			memcpy(&v, p + i, 8);
			s += v;
		}
		s += t[0] + t[1] + t[2] + t[3];
		break;
	}
	return s;
}

static void cpu_sum(enum mmsb_kern_elem elem, void *out, const void *const *in, const size_t *in_len, size_t n_in)
{
	size_t es = mmsb_kern_elem_size(elem), k;

	if (elem == MMSB_KERN_F32) {
		struct sum32 s;
		float r;

		s.top = 0;
		s.pos = 0;
		for (k = 0; k < n_in; k++)
			sum32_feed(&s, in[k], in_len[k] / 4);
		r = sum32_end(&s);
		memcpy(out, &r, 4);
	} else if (elem == MMSB_KERN_F64) {
		struct sum64 s;
		double r;

		s.top = 0;
		s.pos = 0;
		for (k = 0; k < n_in; k++)
			sum64_feed(&s, in[k], in_len[k] / 8);
		r = sum64_end(&s);
		memcpy(out, &r, 8);
	} else {
		uint64_t s = 0;

		for (k = 0; k < n_in; k++)
			s += sum_int(in[k], in_len[k], es);
		/* little-endian: the low es bytes are the truncated sum */
		memcpy(out, &s, es);
	}
}

/* ---- recompute ------------------------------------------------------------------ */

#define FOLD_BLOCK 4096 /* bytes of out folded over all parents at a time (stays in L1) */

static int cpu_recompute(enum mmsb_kern_op op, enum mmsb_kern_elem elem, void *out, size_t out_len,
			 const void *const *in, const size_t *in_len, size_t n_in)
{
	uint8_t *o = out;
	size_t k, at, blk;
	int rc = kern_recompute_check(op, elem, out, out_len, in, in_len, n_in);

	if (rc < 0)
		return rc;
	switch (op) {
	case MMSB_KERN_COPY:
		if (out_len)
			memcpy(o, in[0], out_len);
		return 0;
	case MMSB_KERN_CONCAT:
		for (k = 0, at = 0; k < n_in; k++) {
			if (in_len[k])
				memcpy(o + at, in[k], in_len[k]);
			at += in_len[k];
		}
		return 0;
	case MMSB_KERN_SUM:
		cpu_sum(elem, out, in, in_len, n_in);
		return 0;
	default:
		break;
	}
	/* XOR, ADD, MIN, MAX: left fold, a block of out at a time */
	blk = FOLD_BLOCK - FOLD_BLOCK % 8;
	for (at = 0; at < out_len; at += blk) {
		size_t n = out_len - at < blk ? out_len - at : blk;

		memcpy(o + at, (const uint8_t *)in[0] + at, n);
		for (k = 1; k < n_in; k++)
			fold(o + at, (const uint8_t *)in[k] + at, n, op, elem);
		if (n_in == 1 && op != MMSB_KERN_XOR)
			canon_bytes(o + at, n, elem);
	}
	return 0;
}

/* ---- table ---------------------------------------------------------------------- */

static int cpu_copy_io(void *dst, const void *src, size_t n)
{
	if (n == 0)
		return 0;
	if (!dst || !src)
		return -EINVAL;
	memmove(dst, src, n);
	return 0;
}

/* "cpu" applies a queued delta at once. */
static int cpu_enqueue(void *page, uint64_t page_size, uint8_t enc, const uint8_t *body, size_t len)
{
	struct mmsb_kern_batch b;
	int rc;

	kern_batch_init(&b, &cpu_ops, NULL, NULL);
	rc = mmsb_kern_batch_add(&b, page, page_size, enc, body, len);
	if (rc == 0)
		kern_cpu_apply_lanes(&b);
	kern_batch_release(&b);
	return rc;
}

static int cpu_read(void *dst, const void *page, uint64_t off, size_t n)
{
	return cpu_copy_io(dst, (const uint8_t *)page + off, n);
}

static const struct mmsb_kern_ops cpu_ops = {
	.name = "cpu",
	.page_alloc = cpu_page_alloc,
	.page_free = cpu_page_free,
	.copy_in = cpu_copy_io,
	.copy_out = cpu_copy_io,
	.sync = cpu_sync,
	.batch_new = cpu_batch_new,
	.batch_free = cpu_batch_free,
	.apply_batch = cpu_apply_batch,
	.copy = cpu_copy,
	.zero = cpu_zero,
	.compare = cpu_compare,
	.recompute = cpu_recompute,
	.enqueue = cpu_enqueue,
	.read = cpu_read,
};

/* ---- the CPU table posing as a device ----------------------------------------------
 * Host memory, a queue like the cuda table's (the flusher thread applies the
 * batches), the gpu_mem cap.  Operations other than enqueue and read are
 * synchronous on the CPU, so they first drain the queue. */

static struct kern_queue dev_q;
static pthread_once_t dev_once = PTHREAD_ONCE_INIT;

static int dev_submit(struct mmsb_kern_batch *b)
{
	kern_cpu_apply_lanes(b);
	return 0;
}

static bool dev_done(struct mmsb_kern_batch *b, bool block)
{
	(void)b;
	(void)block;
	return true; /* applied during submit */
}

static const struct kern_queue_backend dev_backend = {dev_submit, dev_done, cpu_batch_new, cpu_batch_free};

static void dev_init(void)
{
	kq_init(&dev_q, &dev_backend, getenv("MMSB_KERN_NOFLUSHER") == NULL);
}

static struct kern_queue *dev_queue(void)
{
	pthread_once(&dev_once, dev_init);
	return &dev_q;
}

static int dev_page_alloc(size_t n, void **out)
{
	int rc;

	*out = NULL;
	if (n == 0)
		return 0;
	if (!kern_acct_fits(n))
		return -ENOSPC;
	rc = cpu_page_alloc(n, out);
	if (rc == 0 && (rc = kern_acct_take(*out, n)) < 0) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

static int dev_page_free(void *p)
{
	int rc;

	if (!p)
		return 0;
	rc = kq_wait_page(dev_queue(), p); /* no queued lane may land in freed memory */
	kern_acct_give(p);
	free(p);
	return rc;
}

static int dev_copy_in(void *dst, const void *src, size_t n)
{
	int rc = kq_drain(dev_queue());

	return rc < 0 ? rc : cpu_copy_io(dst, src, n);
}

static int dev_sync(void)
{
	return kq_drain(dev_queue());
}

static int dev_batch_new(struct mmsb_kern_batch **out)
{
	int rc = cpu_batch_new(out);

	if (rc == 0)
		(*out)->ops = mmsb_kern_cpu_dev();
	return rc;
}

static int dev_apply_batch(struct mmsb_kern_batch *b)
{
	int rc;

	if (!b || b->ops != mmsb_kern_cpu_dev())
		return -EINVAL;
	rc = kq_drain(dev_queue());
	if (rc == 0)
		kern_cpu_apply_lanes(b);
	return rc;
}

static int dev_copy(void *dst, const void *src, size_t n)
{
	int rc = kq_drain(dev_queue());

	return rc < 0 ? rc : cpu_copy(dst, src, n);
}

static int dev_zero(void *dst, size_t n)
{
	int rc = kq_drain(dev_queue());

	return rc < 0 ? rc : cpu_zero(dst, n);
}

static int dev_compare(const void *a, const void *b, size_t n, int64_t *first)
{
	int rc = kq_drain(dev_queue());

	return rc < 0 ? rc : cpu_compare(a, b, n, first);
}

static int dev_recompute(enum mmsb_kern_op op, enum mmsb_kern_elem elem, void *out, size_t out_len,
			 const void *const *in, const size_t *in_len, size_t n_in)
{
	int rc = kq_drain(dev_queue());

	return rc < 0 ? rc : cpu_recompute(op, elem, out, out_len, in, in_len, n_in);
}

static int dev_enqueue(void *page, uint64_t page_size, uint8_t enc, const uint8_t *body, size_t len)
{
	return kq_enqueue(dev_queue(), page, page_size, enc, body, len);
}

static int dev_read(void *dst, const void *page, uint64_t off, size_t n)
{
	int rc;

	if (n == 0)
		return 0;
	if (!dst || !page)
		return -EINVAL;
	rc = kq_wait_page(dev_queue(), page);
	if (rc == 0)
		memcpy(dst, (const uint8_t *)page + off, n);
	return rc;
}

static const struct mmsb_kern_ops cpu_dev_ops = {
	.name = "cpu",
	.page_alloc = dev_page_alloc,
	.page_free = dev_page_free,
	.copy_in = dev_copy_in,
	.copy_out = dev_copy_in,
	.sync = dev_sync,
	.batch_new = dev_batch_new,
	.batch_free = cpu_batch_free,
	.apply_batch = dev_apply_batch,
	.copy = dev_copy,
	.zero = dev_zero,
	.compare = dev_compare,
	.recompute = dev_recompute,
	.enqueue = dev_enqueue,
	.read = dev_read,
};

const struct mmsb_kern_ops *mmsb_kern_cpu_dev(void)
{
	return &cpu_dev_ops;
}

void mmsb_kern_queue_stats(const struct mmsb_kern_ops *k, uint64_t *n_enqueued, uint64_t *n_submits)
{
	struct kern_queue *q = k == &cpu_dev_ops ? dev_queue() : kern_cuda_queue(k);

	*n_enqueued = *n_submits = 0;
	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	*n_enqueued = q->n_enqueued;
	*n_submits = q->n_submits;
	pthread_mutex_unlock(&q->mu);
}

const struct mmsb_kern_ops *mmsb_kern_cpu(void)
{
	return &cpu_ops;
}

const struct mmsb_kern_ops *mmsb_kern_select(bool want_gpu)
{
	const struct mmsb_kern_ops *g = want_gpu ? kern_cuda_table() : NULL;

	return g ? g : &cpu_ops;
}
