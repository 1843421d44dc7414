/* kern_suite.h - the table-generic checks run by both test binaries:
 * test_kern_cpu.c runs them on the CPU table (suite 'unit'), test_kern.c on
 * the CUDA table (suite 'gpu').  Every result is compared byte for byte with
 * the naive references of kern_testlib.h (deltas: sequential
 * mmsb_delta_apply) and, when the table is not the CPU table, with the CPU
 * table too.  Page memory comes from the table's page_alloc and is filled
 * and read back with copy_in/copy_out, so the same code exercises GPU pages.
 */
#ifndef KERN_SUITE_H
#define KERN_SUITE_H

#include "kern_testlib.h"

static void s_first_diff(const char *what, const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (a[i] != b[i]) {
			fprintf(stderr, "  %s: first difference at byte %zu of %zu: got %02x want %02x\n", what, i, n,
				a[i], b[i]);
			return;
		}
	}
}

#define CHECK_BYTES(what, got, want, n)                                                                      \
	do {                                                                                                 \
		if (memcmp((got), (want), (n)) != 0) {                                                       \
			s_first_diff((what), (const uint8_t *)(got), (const uint8_t *)(want), (n));          \
			CHECK(!"bytes differ");                                                              \
		}                                                                                            \
	} while (0)

/* ---- batches ------------------------------------------------------------------ */

struct s_page {
	size_t off;
	uint64_t size;
};

/* Pages inside one pool: unaligned starts, odd sizes, some adjacent. */
static size_t s_layout(struct s_page *pg, size_t n, bool big)
{
	static const uint64_t sizes[] = {1, 2, 3, 15, 16, 17, 31, 33, 100, 255, 4095, 4096, 4097, 65541};
	size_t at = 0, i;

	for (i = 0; i < n; i++) {
		uint64_t sz = sizes[t_below(sizeof(sizes) / sizeof(sizes[0]) - (big ? 0 : 1))];

		if (t_below(3))
			at += t_below(40); /* gap (else adjacent to the previous page) */
		pg[i].off = at;
		pg[i].size = sz;
		at += (size_t)sz;
	}
	return at + 64;
}

/* Add n_deltas random deltas and plain writes (some of them damaged, which
 * must be refused) to pages of pg in pool, and apply each to ref too. */
static void s_add_deltas(struct mmsb_kern_batch *b, const struct s_page *pg, unsigned n_pages, uint8_t *pool,
			 uint8_t *ref, struct mmsb_buf *body, unsigned n_deltas)
{
	unsigned i;

	for (i = 0; i < n_deltas; i++) {
		const struct s_page *p = &pg[t_below(n_pages)];
		uint8_t enc = 0;
		size_t len;
		int rc;

		body->len = 0;
		if (t_below(8) == 0) { /* plain write */
			uint64_t off = t_below(p->size), n = 1 + t_below(p->size - off);
			uint8_t *w = malloc((size_t)n);

			t_fill(w, (size_t)n);
			CHECK(mmsb_kern_batch_add_bytes(b, pool + p->off, p->size, off, w, (size_t)n) == 0);
			memcpy(ref + p->off + off, w, (size_t)n);
			free(w);
			continue;
		}
		len = t_make_delta(ref + p->off, p->size, body, &enc);
		if (len && t_below(6) == 0) { /* damage it: must match mmsb_delta_check */
			size_t before = mmsb_kern_batch_lanes(b);
			int want;

			if (t_below(2))
				body->p[t_below(len)] ^= (uint8_t)(1 + t_below(255));
			else
				len = (size_t)t_below(len);
			want = mmsb_delta_check(p->size, enc, body->p, len, NULL);
			rc = mmsb_kern_batch_add(b, pool + p->off, p->size, enc, body->p, len);
			CHECK(rc == want);
			if (rc < 0) {
				CHECK(rc == -EUCLEAN);
				CHECK(mmsb_kern_batch_lanes(b) == before);
				continue;
			}
		} else {
			rc = mmsb_kern_batch_add(b, pool + p->off, p->size, enc, body->p, len);
			CHECK(rc == 0);
		}
		CHECK(mmsb_delta_apply(ref + p->off, p->size, enc, body->p, len) == 0);
	}
}

static void s_batch_round(const struct mmsb_kern_ops *k, bool big, unsigned n_pages, unsigned n_deltas)
{
	struct s_page *pg = calloc(n_pages, sizeof(*pg));
	size_t pool_len = s_layout(pg, n_pages, big);
	uint8_t *ref = malloc(pool_len), *got = malloc(pool_len), *pool = NULL;
	struct mmsb_kern_batch *b = NULL;
	struct mmsb_buf body = {0};

	CHECK(pg && ref && got);
	t_fill(ref, pool_len);
	CHECK(k->page_alloc(pool_len, (void **)&pool) == 0);
	CHECK(k->copy_in(pool, ref, pool_len) == 0);
	CHECK(k->batch_new(&b) == 0);
	s_add_deltas(b, pg, n_pages, pool, ref, &body, n_deltas);
	/* a body past the page end and a bad encoding are refused */
	CHECK(mmsb_kern_batch_add(b, pool + pg[0].off, pg[0].size, 3, (const uint8_t *)"\x01\x00\x01\x00", 4) ==
	      -EUCLEAN);
	CHECK(mmsb_kern_batch_add(b, pool + pg[0].off, pg[0].size, 1, (const uint8_t *)"\x01\x00\x02\x00\x00", 5) ==
	      (pg[0].size >= 2 ? 0 : -EUCLEAN));
	if (pg[0].size >= 2)
		memset(ref + pg[0].off, 0, 2);
	CHECK(mmsb_kern_batch_add_bytes(b, pool + pg[0].off, pg[0].size, pg[0].size, got, 1) == -EINVAL);

	CHECK(k->apply_batch(b) == 0);
	CHECK(k->copy_out(got, pool, pool_len) == 0);
	CHECK_BYTES("batch apply", got, ref, pool_len);

	/* applying again changes nothing; reset + apply of an empty batch too */
	CHECK(k->apply_batch(b) == 0);
	mmsb_kern_batch_reset(b);
	CHECK(mmsb_kern_batch_lanes(b) == 0);
	CHECK(k->apply_batch(b) == 0);
	CHECK(k->copy_out(got, pool, pool_len) == 0);
	CHECK_BYTES("batch re-apply", got, ref, pool_len);

	/* the emptied batch folds new deltas afresh (its index was cleared) */
	s_add_deltas(b, pg, n_pages, pool, ref, &body, 1 + n_deltas / 4);
	CHECK(k->apply_batch(b) == 0);
	CHECK(k->copy_out(got, pool, pool_len) == 0);
	CHECK_BYTES("batch apply after reset", got, ref, pool_len);

	CHECK(k->batch_free(b) == 0);
	CHECK(k->page_free(pool) == 0);
	mmsb_buf_free(&body);
	free(pg);
	free(ref);
	free(got);
}

/* Whole-page dense deltas, single bytes and the same lane written by many
 * deltas in one batch (folding). */
static void s_batch_shapes(const struct mmsb_kern_ops *k)
{
	const size_t n = 4096 * 9 + 7;
	uint8_t *ref = malloc(n), *got = malloc(n), *pool = NULL, w[64];
	struct mmsb_kern_batch *b = NULL;
	size_t i;

	t_fill(ref, n);
	CHECK(k->page_alloc(n, (void **)&pool) == 0);
	CHECK(k->copy_in(pool, ref, n) == 0);
	CHECK(k->batch_new(&b) == 0);
	for (i = 0; i < 4; i++) { /* 4 whole 4 KiB pages, all bytes */
		uint8_t page[4096];

		t_fill(page, sizeof(page));
		CHECK(mmsb_kern_batch_add_bytes(b, pool + 1 + 4096 * i, 4096, 0, page, 4096) == 0);
		memcpy(ref + 1 + 4096 * i, page, 4096);
	}
	for (i = 0; i < 300; i++) { /* overlapping small writes to one page */
		uint64_t off = t_below(60), len = 1 + t_below(64 - off);

		t_fill(w, (size_t)len);
		CHECK(mmsb_kern_batch_add_bytes(b, pool + 4096 * 5 + 3, 64, off, w, (size_t)len) == 0);
		memcpy(ref + 4096 * 5 + 3 + off, w, (size_t)len);
	}
	for (i = 0; i < 200; i++) { /* sparse single bytes */
		uint64_t off = t_below(4096 * 3);

		w[0] = (uint8_t)t_rng();
		CHECK(mmsb_kern_batch_add_bytes(b, pool + 4096 * 6, 4096 * 3 + 7, off, w, 1) == 0);
		ref[4096 * 6 + off] = w[0];
	}
	CHECK(k->apply_batch(b) == 0);
	CHECK(k->copy_out(got, pool, n) == 0);
	CHECK_BYTES("batch shapes", got, ref, n);
	if (k != mmsb_kern_cpu()) { /* a batch of another table is refused */
		struct mmsb_kern_batch *cb = NULL;

		CHECK(mmsb_kern_cpu()->batch_new(&cb) == 0);
		CHECK(k->apply_batch(cb) == -EINVAL);
		CHECK(mmsb_kern_cpu()->apply_batch(b) == -EINVAL);
		CHECK(mmsb_kern_cpu()->batch_free(cb) == 0);
	}
	CHECK(k->batch_free(b) == 0);
	CHECK(k->batch_free(NULL) == 0);
	CHECK(k->page_free(pool) == 0);
	free(ref);
	free(got);
}

/* ---- copy / zero / compare ---------------------------------------------------------- */

static void s_bulk(const struct mmsb_kern_ops *k, bool big)
{
	static const size_t sizes[] = {0, 1, 7, 15, 16, 17, 100, 4095, 4096, 4097, 65536 + 3, 1000003};
	const size_t cap = 2 * 1000003 + 64;
	uint8_t *buf = NULL, *ref = malloc(cap), *got = malloc(cap);
	size_t si, rep;

	CHECK(k->page_alloc(cap, (void **)&buf) == 0);
	for (si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		size_t n = sizes[si];

		if (n > 70000 && !big)
			continue;
		for (rep = 0; rep < 6; rep++) {
			size_t oa = rep < 2 ? 0 : (size_t)t_below(32), ob = n + 32 + (rep < 2 ? 0 : (size_t)t_below(16));
			int64_t first = 7;

			t_fill(ref, cap);
			CHECK(k->copy_in(buf, ref, cap) == 0);
			/* copy a -> b, then compare equal */
			CHECK(k->copy(buf + ob, buf + oa, n) == 0);
			memcpy(ref + ob, ref + oa, n);
			CHECK(k->compare(buf + oa, buf + ob, n, &first) == 0);
			CHECK(first == -1);
			/* one (or two) differing bytes */
			if (n) {
				size_t p = (size_t)t_below(n), q = p + (size_t)t_below(n - p);

				ref[ob + q] ^= 0x40;
				ref[ob + p] ^= 0x01;
				CHECK(k->copy_in(buf + ob + p, ref + ob + p, 1) == 0);
				CHECK(k->copy_in(buf + ob + q, ref + ob + q, 1) == 0);
				CHECK(k->compare(buf + oa, buf + ob, n, &first) == 0);
				CHECK(first == (int64_t)p);
			}
			/* zero part of it */
			if (rep & 1) {
				size_t zo = n ? (size_t)t_below(n) : 0, zn = n - zo;

				CHECK(k->zero(buf + oa + zo, zn) == 0);
				memset(ref + oa + zo, 0, zn);
			}
			CHECK(k->copy_out(got, buf, cap) == 0);
			CHECK_BYTES("copy/zero", got, ref, cap);
		}
	}
	CHECK(k->copy(buf, buf + 8, 16) == -EINVAL); /* overlap */
	CHECK(k->page_free(buf) == 0);
	CHECK(k->page_free(NULL) == 0);
	free(ref);
	free(got);
}

/* ---- recompute ---------------------------------------------------------------------- */

/* One recompute on the table: parents placed in page memory at offset
 * `mis` (0: 16-aligned), output likewise; compared with the naive reference
 * and the CPU table. */
static void s_recompute_one(const struct mmsb_kern_ops *k, enum mmsb_kern_op op, enum mmsb_kern_elem elem,
			    size_t n_in, const size_t *in_len, size_t mis, unsigned special_pct)
{
	size_t es = mmsb_kern_elem_size(elem), total = 0, out_len = 0, i, at;
	uint8_t *host, *dev = NULL, *want, *got, *cpu_out, *odev = NULL;
	const void *hin[16], *din[16];
	size_t slot[16];
	int rc;

	for (i = 0; i < n_in; i++) {
		slot[i] = total;
		total += (in_len[i] + 16 + 15) & ~(size_t)15;
	}
	CHECK(mmsb_kern_recompute_len(op, elem, in_len, n_in, &out_len) == 0);
	host = malloc(total + 1);
	want = malloc(out_len + 1);
	got = malloc(out_len + 1);
	cpu_out = malloc(out_len + 1);
	if (total)
		t_fill_elems(host, total, elem, special_pct);
	for (i = 0; i < n_in; i++)
		hin[i] = host + slot[i] + mis;
	if (total)
		CHECK(k->page_alloc(total, (void **)&dev) == 0);
	CHECK(k->page_alloc(out_len + 32, (void **)&odev) == 0);
	if (total)
		CHECK(k->copy_in(dev, host, total) == 0);
	for (i = 0; i < n_in; i++)
		din[i] = dev + slot[i] + mis;
	rc = k->recompute(op, elem, odev ? odev + mis : NULL, out_len, din, in_len, n_in);
	CHECK(rc == 0);
	if (out_len)
		CHECK(k->copy_out(got, odev + mis, out_len) == 0);
	CHECK(n_recompute(op, elem, want, out_len, hin, in_len, n_in) == 0);
	if (rc == 0 && memcmp(got, want, out_len) != 0) {
		fprintf(stderr, "  recompute %s:%s n_in=%zu len[0]=%zu mis=%zu differs from the naive reference\n",
			t_op_names[op], t_elem_names[elem], n_in, n_in ? in_len[0] : 0, mis);
		s_first_diff("recompute", got, want, out_len);
		CHECK(!"recompute mismatch");
	}
	if (k != mmsb_kern_cpu()) {
		CHECK(mmsb_kern_cpu()->recompute(op, elem, cpu_out, out_len, hin, in_len, n_in) == 0);
		CHECK_BYTES("gpu vs cpu table", got, cpu_out, out_len);
	}
	at = 0;
	(void)at;
	(void)es;
	k->page_free(dev);
	k->page_free(odev);
	free(host);
	free(want);
	free(got);
	free(cpu_out);
}

static void s_recompute(const struct mmsb_kern_ops *k, bool big)
{
	static const size_t counts[] = {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 255, 1000, 2048, 2049, 4096, 65537};
	static const size_t n_ins[] = {1, 2, 3, 9, 12};
	size_t n_counts = sizeof(counts) / sizeof(counts[0]) - (t_quick ? 1 : 0);
	size_t n_n_ins = sizeof(n_ins) / sizeof(n_ins[0]) - (t_quick ? 1 : 0);
	enum mmsb_kern_op op;
	size_t ei, ci, ni, k_, len[16];

	for (op = MMSB_KERN_COPY; op <= MMSB_KERN_SUM; op++) {
		for (ei = 0; ei < sizeof(t_elems) / sizeof(t_elems[0]); ei++) {
			enum mmsb_kern_elem elem = t_elems[ei];
			size_t es = mmsb_kern_elem_size(elem);

			if (op <= MMSB_KERN_XOR && elem != MMSB_KERN_U8)
				continue;
			for (ci = 0; ci < n_counts; ci++) {
				for (ni = 0; ni < n_n_ins; ni++) {
					size_t n_in = op == MMSB_KERN_COPY ? 1 : n_ins[ni];
					size_t mis = t_below(3) == 0 ? 1 + (size_t)t_below(15) : 0;

					if (op == MMSB_KERN_COPY && ni)
						break;
					for (k_ = 0; k_ < n_in; k_++) {
						len[k_] = counts[ci] * es;
						if (op == MMSB_KERN_CONCAT || op == MMSB_KERN_SUM)
							len[k_] = (size_t)t_below(counts[ci] + 1) * es;
						if (op == MMSB_KERN_XOR && counts[ci] > 3)
							len[k_] = counts[ci] - 3; /* odd byte lengths */
					}
					if (op == MMSB_KERN_XOR)
						for (k_ = 1; k_ < n_in; k_++)
							len[k_] = len[0];
					s_recompute_one(k, op, elem, n_in, len, mis, ci & 1 ? 20 : 2);
				}
			}
		}
	}
	/* large ones: several SUM levels on the GPU (> 2048^2 elements), big
	 * element-wise folds */
	if (big) {
		len[0] = (4u << 20) * 4 + 12;
		s_recompute_one(k, MMSB_KERN_SUM, MMSB_KERN_F32, 1, len, 0, 1);
		len[0] = (4u << 20) * 8 + 8 * 5;
		s_recompute_one(k, MMSB_KERN_SUM, MMSB_KERN_F64, 1, len, 0, 0);
		s_recompute_one(k, MMSB_KERN_SUM, MMSB_KERN_U64, 1, len, 3, 0);
		len[0] = len[1] = len[2] = 3u << 20;
		s_recompute_one(k, MMSB_KERN_SUM, MMSB_KERN_F32, 3, len, 0, 1);
		s_recompute_one(k, MMSB_KERN_ADD, MMSB_KERN_F32, 3, len, 0, 1);
		s_recompute_one(k, MMSB_KERN_MAX, MMSB_KERN_F64, 3, len, 0, 10);
		s_recompute_one(k, MMSB_KERN_XOR, MMSB_KERN_U8, 3, len, 0, 0);
		s_recompute_one(k, MMSB_KERN_CONCAT, MMSB_KERN_U8, 3, len, 0, 0);
	}
}

/* Float specials, exactly: NaN propagation and canonical NaN, -0/+0. */
static void s_specials(const struct mmsb_kern_ops *k)
{
	float a[4] = {-0.0f, 0.0f, NAN, 1.0f}, b[4] = {0.0f, -0.0f, 2.0f, -NAN}, r[4];
	const float *in[2] = {a, b};
	uint8_t *dev = NULL;
	size_t len[2] = {sizeof(a), sizeof(b)};
	const void *din[2];
	uint32_t u;

	CHECK(k->page_alloc(64, (void **)&dev) == 0);
	CHECK(k->copy_in(dev, a, 16) == 0);
	CHECK(k->copy_in(dev + 16, b, 16) == 0);
	din[0] = dev;
	din[1] = dev + 16;
	CHECK(k->recompute(MMSB_KERN_MIN, MMSB_KERN_F32, dev + 32, 16, din, len, 2) == 0);
	CHECK(k->copy_out(r, dev + 32, 16) == 0);
	CHECK(signbit(r[0]) && r[0] == 0 && signbit(r[1]) && r[1] == 0);
	memcpy(&u, &r[2], 4);
	CHECK(u == 0x7fc00000u);
	memcpy(&u, &r[3], 4);
	CHECK(u == 0x7fc00000u);
	CHECK(k->recompute(MMSB_KERN_MAX, MMSB_KERN_F32, dev + 32, 16, din, len, 2) == 0);
	CHECK(k->copy_out(r, dev + 32, 16) == 0);
	CHECK(!signbit(r[0]) && r[0] == 0 && !signbit(r[1]) && r[1] == 0);
	CHECK(isnan(r[2]) && isnan(r[3]));
	/* sum of {-0, -0} is -0; of nothing +0; of {-0, +0} +0 */
	a[1] = -0.0f;
	CHECK(k->copy_in(dev, a, 16) == 0);
	len[0] = 8;
	CHECK(k->recompute(MMSB_KERN_SUM, MMSB_KERN_F32, dev + 32, 4, din, len, 1) == 0);
	CHECK(k->copy_out(r, dev + 32, 4) == 0);
	CHECK(r[0] == 0 && signbit(r[0]));
	len[0] = 0;
	CHECK(k->recompute(MMSB_KERN_SUM, MMSB_KERN_F32, dev + 32, 4, din, len, 1) == 0);
	CHECK(k->copy_out(r, dev + 32, 4) == 0);
	CHECK(r[0] == 0 && !signbit(r[0]));
	/* size errors */
	len[0] = 16;
	len[1] = 12;
	CHECK(k->recompute(MMSB_KERN_ADD, MMSB_KERN_F32, dev + 32, 16, din, len, 2) == -EINVAL);
	len[1] = 16;
	CHECK(k->recompute(MMSB_KERN_ADD, MMSB_KERN_F32, dev + 32, 12, din, len, 2) == -EINVAL);
	CHECK(k->recompute(MMSB_KERN_ADD, MMSB_KERN_F32, dev + 8, 16, din, len, 2) == -EINVAL); /* overlap */
	CHECK(k->recompute(MMSB_KERN_SUM, MMSB_KERN_F32, dev + 32, 8, din, len, 2) == -EINVAL);
	CHECK(k->recompute(MMSB_KERN_COPY, MMSB_KERN_U8, dev + 32, 16, din, len, 2) == -EINVAL);
	CHECK(k->recompute(MMSB_KERN_XOR, MMSB_KERN_U8, dev + 32, 16, din, len, 0) == -EINVAL);
	CHECK(k->recompute((enum mmsb_kern_op)99, MMSB_KERN_U8, dev + 32, 16, din, len, 1) == -EINVAL);
	CHECK(k->recompute(MMSB_KERN_ADD, (enum mmsb_kern_elem)99, dev + 32, 16, din, len, 1) == -EINVAL);
	len[0] = 15;
	CHECK(k->recompute(MMSB_KERN_SUM, MMSB_KERN_F32, dev + 32, 4, din, len, 1) == -EINVAL);
	CHECK(k->recompute(MMSB_KERN_CONCAT, MMSB_KERN_U8, dev + 32, 0, din, len, 0) == 0);
	(void)in;
	k->page_free(dev);
}

/* Host (malloc) memory given to the table: must still be right (the CUDA
 * table falls back to the CPU). */
static void s_host_pointers(const struct mmsb_kern_ops *k)
{
	size_t len[2] = {4000, 4000}, n = 4000;
	uint8_t *a = malloc(n), *b = malloc(n), *o = malloc(n), *w = malloc(n);
	const void *in[2] = {a, b};
	struct mmsb_kern_batch *bt = NULL;
	int64_t first = 0;

	t_fill_elems(a, n, MMSB_KERN_F64, 5);
	t_fill_elems(b, n, MMSB_KERN_F64, 5);
	CHECK(k->recompute(MMSB_KERN_ADD, MMSB_KERN_F64, o, n, in, len, 2) == 0);
	CHECK(n_recompute(MMSB_KERN_ADD, MMSB_KERN_F64, w, n, in, len, 2) == 0);
	CHECK_BYTES("host pointers", o, w, n);
	CHECK(k->compare(o, w, n, &first) == 0 && first == -1);
	CHECK(k->zero(o, 10) == 0 && o[9] == 0);
	CHECK(k->batch_new(&bt) == 0);
	CHECK(mmsb_kern_batch_add_bytes(bt, o, n, 100, a, 50) == 0);
	CHECK(k->apply_batch(bt) == 0);
	CHECK(k->sync() == 0);
	CHECK(memcmp(o + 100, a, 50) == 0);
	CHECK(k->batch_free(bt) == 0);
	free(a);
	free(b);
	free(o);
	free(w);
}

static void s_names(void)
{
	enum mmsb_kern_op op;
	enum mmsb_kern_elem elem;

	CHECK(mmsb_kern_op_parse("sum:f64", &op, &elem) == 0 && op == MMSB_KERN_SUM && elem == MMSB_KERN_F64);
	CHECK(mmsb_kern_op_parse("xor", &op, &elem) == 0 && op == MMSB_KERN_XOR);
	CHECK(mmsb_kern_op_parse("min:i32", &op, &elem) == 0 && op == MMSB_KERN_MIN && elem == MMSB_KERN_I32);
	CHECK(mmsb_kern_op_parse("add", &op, &elem) == -EINVAL);
	CHECK(mmsb_kern_op_parse("copy:u8", &op, &elem) == -EINVAL);
	CHECK(mmsb_kern_op_parse("add:f16", &op, &elem) == -EINVAL);
	CHECK(mmsb_kern_op_parse("", &op, &elem) == -EINVAL);
	CHECK(mmsb_kern_elem_size(MMSB_KERN_I64) == 8 && mmsb_kern_elem_size((enum mmsb_kern_elem)0) == 0);
}

static void suite_run(const struct mmsb_kern_ops *k, bool big)
{
	unsigned r;

	s_names();
	for (r = 0; r < (big ? 12u : 6u); r++)
		s_batch_round(k, big, 1 + (unsigned)t_below(40), 1 + (unsigned)t_below(200));
	s_batch_round(k, big, 300, 3000);
	s_batch_shapes(k);
	s_bulk(k, big);
	s_specials(k);
	s_host_pointers(k);
	s_recompute(k, big);
}

#endif
