/* kern_host.c - host-side parts shared by every kernel table: the delta
 * batch builder (parse RUNS/BITMAP bodies, fold them into 16-byte lanes),
 * recompute names and size checks.
 *
 * Parsing follows src/delta.c rule for rule (mmsb(5), DELTA ENCODING):
 * uvarints of at most 10 bytes and 64 bits (overlong forms allowed); an empty
 * body is the empty delta for either encoding; RUNS: n_runs >= 1, len >= 1,
 * every run inside the page and the body, no trailing bytes; BITMAP: span >=
 * 1, base + span <= page size, bit 0 and bit span-1 set, no bit past span-1,
 * exactly popcount payload bytes.  A body is fully validated (and room for
 * its lanes reserved) before the batch changes.
 *
 * A BITMAP body is turned into runs too: consecutive set bits take
 * consecutive payload bytes, so each stretch of ones is a run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kern_int.h"

#define ENC_RUNS 1   /* MMSB_ENC_RUNS of src/delta.h */
#define ENC_BITMAP 2 /* MMSB_ENC_BITMAP */

/* ---- allocation ---------------------------------------------------------------- */

static void *batch_alloc(const struct mmsb_kern_batch *b, size_t n)
{
	return b->host_alloc ? b->host_alloc(n) : malloc(n);
}

static void batch_dealloc(const struct mmsb_kern_batch *b, void *p)
{
	if (!p)
		return;
	if (b->host_free)
		b->host_free(p);
	else
		free(p);
}

static void batch_wait(struct mmsb_kern_batch *b)
{
	if (b->pending && b->wait)
		b->wait(b);
	b->pending = false;
}

int kern_batch_init(struct mmsb_kern_batch *b, const struct mmsb_kern_ops *ops, void *(*host_alloc)(size_t),
		    void (*host_free)(void *))
{
	memset(b, 0, sizeof(*b));
	b->ops = ops;
	b->host_alloc = host_alloc;
	b->host_free = host_free;
	return 0;
}

void kern_batch_release(struct mmsb_kern_batch *b)
{
	batch_wait(b);
	batch_dealloc(b, b->data);
	batch_dealloc(b, b->addr);
	batch_dealloc(b, b->mask);
	free(b->hidx);
	free(b->lslot);
	free(b->pages);
	free(b->pents);
	free(b->ptab);
	b->data = NULL;
	b->addr = NULL;
	b->mask = NULL;
	b->hidx = NULL;
	b->lslot = NULL;
	b->pages = NULL;
	b->pents = NULL;
	b->ptab = NULL;
	b->cur = NULL;
	b->n = b->cap = b->hcap = b->n_pages = b->pages_cap = 0;
	b->n_indexed = b->n_pents = b->pents_cap = b->ptcap = 0;
}

static inline size_t lane_hash(uint64_t lane, size_t hcap)
{
	return (size_t)(((lane >> 4) * 0x9e3779b97f4a7c15ull) >> 32) & (hcap - 1);
}

static inline size_t page_hash(uint64_t page, size_t cap)
{
	return (size_t)((page * 0x9e3779b97f4a7c15ull) >> 29) & (cap - 1);
}

/* Put lane i in the index at a free slot (it is not there yet). */
static inline void index_put(struct mmsb_kern_batch *b, size_t i)
{
	size_t h = lane_hash(b->addr[i] & ~(uint64_t)15, b->hcap);

	while (b->hidx[h])
		h = (h + 1) & (b->hcap - 1);
	b->hidx[h] = (uint32_t)(i + 1);
	b->lslot[i] = (uint32_t)h;
}

static void index_rebuild(struct mmsb_kern_batch *b)
{
	size_t i;

	memset(b->hidx, 0, b->hcap * sizeof(*b->hidx));
	for (i = 0; i < b->n; i++)
		if (b->addr[i] & KERN_LANE_INDEXED)
			index_put(b, i);
}

static void ptab_rebuild(struct mmsb_kern_batch *b)
{
	size_t i;

	memset(b->ptab, 0, b->ptcap * sizeof(*b->ptab));
	for (i = 0; i < b->n_pents; i++) {
		size_t h = page_hash(b->pents[i].page, b->ptcap);

		while (b->ptab[h])
			h = (h + 1) & (b->ptcap - 1);
		b->ptab[h] = (uint32_t)(i + 1);
		b->pents[i].slot = (uint32_t)h;
	}
}

/* Make room for `more` further lanes, `more_idx` of them indexed, and one
 * more page.  0 or -ENOMEM; on failure nothing changed. */
static int batch_reserve(struct mmsb_kern_batch *b, size_t more, size_t more_idx)
{
	size_t need, cap, hcap;

	if (more > (size_t)UINT32_MAX - 1 - b->n)
		return -ENOMEM; /* lane numbers are 32-bit in the index */
	need = b->n + more;
	if (need > b->cap) {
		uint8_t *data;
		uint64_t *addr;
		uint16_t *mask;
		uint32_t *lslot;

		cap = b->cap ? b->cap : 256;
		while (cap < need)
			cap *= 2;
		data = batch_alloc(b, cap * KERN_LANE);
		addr = batch_alloc(b, cap * sizeof(*addr));
		mask = batch_alloc(b, cap * sizeof(*mask));
		lslot = malloc(cap * sizeof(*lslot));
		if (!data || !addr || !mask || !lslot) {
			batch_dealloc(b, data);
			batch_dealloc(b, addr);
			batch_dealloc(b, mask);
			free(lslot);
			return -ENOMEM;
		}
		if (b->n) {
			memcpy(data, b->data, b->n * KERN_LANE);
			memcpy(addr, b->addr, b->n * sizeof(*addr));
			memcpy(mask, b->mask, b->n * sizeof(*mask));
			memcpy(lslot, b->lslot, b->n * sizeof(*lslot));
		}
		batch_dealloc(b, b->data);
		batch_dealloc(b, b->addr);
		batch_dealloc(b, b->mask);
		free(b->lslot);
		b->data = data;
		b->addr = addr;
		b->mask = mask;
		b->lslot = lslot;
		b->cap = cap;
	}
	need = b->n_indexed + more_idx;
	if (need > b->hcap / 2) {
		uint32_t *hidx;

		hcap = b->hcap ? b->hcap : 512;
		while (need > hcap / 2)
			hcap *= 2;
		hidx = malloc(hcap * sizeof(*hidx));
		if (!hidx)
			return -ENOMEM;
		free(b->hidx);
		b->hidx = hidx;
		b->hcap = hcap;
		index_rebuild(b);
	}
	if (b->n_pents == b->pents_cap) {
		size_t pc = b->pents_cap ? 2 * b->pents_cap : 16;
		struct kern_pent *pe = realloc(b->pents, pc * sizeof(*pe));

		if (!pe)
			return -ENOMEM;
		b->pents = pe;
		b->pents_cap = pc;
	}
	if (b->n_pents + 1 > b->ptcap / 2) {
		size_t pc = b->ptcap ? 2 * b->ptcap : 64;
		uint32_t *pt = malloc(pc * sizeof(*pt));

		if (!pt)
			return -ENOMEM;
		free(b->ptab);
		b->ptab = pt;
		b->ptcap = pc;
		ptab_rebuild(b);
	}
	return 0;
}

static int batch_note_page(struct mmsb_kern_batch *b, void *page, uint64_t size)
{
	struct kern_page_ref *r;

	if (b->n_pages && b->pages[b->n_pages - 1].p == page && b->pages[b->n_pages - 1].size == size)
		return 0;
	if (b->n_pages == b->pages_cap) {
		size_t cap = b->pages_cap ? 2 * b->pages_cap : 64;

		r = realloc(b->pages, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		b->pages = r;
		b->pages_cap = cap;
	}
	b->pages[b->n_pages].p = page;
	b->pages[b->n_pages].size = size;
	b->n_pages++;
	return 0;
}

/* The page's entry, or -1. */
static ptrdiff_t page_find(const struct mmsb_kern_batch *b, uint64_t page)
{
	size_t h;

	if (!b->ptcap)
		return -1;
	for (h = page_hash(page, b->ptcap); b->ptab[h]; h = (h + 1) & (b->ptcap - 1))
		if (b->pents[b->ptab[h] - 1].page == page)
			return (ptrdiff_t)b->ptab[h] - 1;
	return -1;
}

/* The lane at address `lane` in the index, or -1. */
static inline ptrdiff_t index_find(const struct mmsb_kern_batch *b, uint64_t lane)
{
	size_t h;

	for (h = lane_hash(lane, b->hcap); b->hidx[h]; h = (h + 1) & (b->hcap - 1)) {
		uint32_t i = b->hidx[h] - 1;

		if ((b->addr[i] & ~(uint64_t)15) == lane)
			return i;
	}
	return -1;
}

/* A page's second delta: its first delta's lanes go into the index (room
 * reserved).  A lane another page already has there (a lane two unaligned
 * pages share, each covering other bytes of it) is merged into that one
 * and left empty (mask 0: writes nothing). */
static void page_index(struct mmsb_kern_batch *b, struct kern_pent *pe)
{
	uint32_t i;

	for (i = pe->start; i < pe->end; i++) {
		ptrdiff_t j = index_find(b, b->addr[i] & ~(uint64_t)15);

		if (j >= 0) {
			uint32_t m = b->mask[i];

			while (m) {
				unsigned k = (unsigned)__builtin_ctz(m);

				b->data[(size_t)j * KERN_LANE + k] = b->data[(size_t)i * KERN_LANE + k];
				m &= m - 1;
			}
			b->mask[j] |= b->mask[i];
			b->mask[i] = 0;
			continue;
		}
		b->addr[i] |= KERN_LANE_INDEXED;
		index_put(b, i);
		b->n_indexed++;
	}
	pe->hashed = true;
}

/* The indexed lane at address `lane` (16-aligned), created empty if new.
 * `partial` says whether this page covers the whole lane; a lane stays
 * vector-written if any page that touched it covers it. */
static inline size_t lane_get(struct mmsb_kern_batch *b, uint64_t lane, bool partial)
{
	ptrdiff_t j = index_find(b, lane);
	size_t i;

	if (j >= 0) {
		if (!partial)
			b->addr[j] &= ~KERN_LANE_PARTIAL;
		return (size_t)j;
	}
	i = b->n++;
	b->addr[i] = lane | KERN_LANE_INDEXED | (partial ? KERN_LANE_PARTIAL : 0);
	b->mask[i] = 0;
	memset(b->data + i * KERN_LANE, 0, KERN_LANE);
	index_put(b, i);
	b->n_indexed++;
	return i;
}

/* Lanes a range of n >= 1 bytes at address a can touch. */
static inline size_t range_lanes(uint64_t a, uint64_t n)
{
	return (size_t)(((a + n - 1) >> 4) - (a >> 4) + 1);
}

/* Fold src[0..n) written at page + off into the batch (room reserved), for
 * the page b->cur. */
static void batch_put(struct mmsb_kern_batch *b, uint8_t *page, uint64_t size, uint64_t off, const uint8_t *src,
		      uint64_t n)
{
	uint64_t lo = (uint64_t)(uintptr_t)page, hi = lo + size;
	uint64_t a = lo + off, end = a + n, lane = a & ~(uint64_t)15;
	bool hashed = b->cur->hashed;
	uint32_t start = b->cur->start;

	b->uploaded = false;

	for (; lane < end; lane += KERN_LANE) {
		if (!hashed && lane >= a && lane + KERN_LANE <= end && lane >= lo && lane + KERN_LANE <= hi &&
		    !(b->n > start && (b->addr[b->n - 1] & ~(uint64_t)15) == lane)) {
			/* whole lanes of a first delta: one copy of their bytes */
			uint64_t top = end < hi ? end : hi;
			size_t nf = (size_t)((top - lane) / KERN_LANE), j, i0 = b->n;

			memcpy(b->data + i0 * KERN_LANE, src + (lane - a), nf * KERN_LANE);
			for (j = 0; j < nf; j++) {
				b->addr[i0 + j] = lane + j * KERN_LANE;
				b->mask[i0 + j] = 0xffffu;
			}
			b->n += nf;
			lane += (nf - 1) * KERN_LANE;
			continue;
		}
		uint64_t s = a > lane ? a : lane, e = end < lane + KERN_LANE ? end : lane + KERN_LANE;
		bool partial = !(lane >= lo && lane + KERN_LANE <= hi);
		unsigned k = (unsigned)(s - lane), len = (unsigned)(e - s);
		size_t i;

		if (hashed) {
			i = lane_get(b, lane, partial);
		} else if (b->n > start && (b->addr[b->n - 1] & ~(uint64_t)15) == lane) {
			i = b->n - 1; /* shared with the previous run of this delta */
		} else {
			i = b->n++; /* the page's first delta: a lane of its own */
			b->addr[i] = lane | (partial ? KERN_LANE_PARTIAL : 0);
			if (len == KERN_LANE) {
				memcpy(b->data + i * KERN_LANE, src + (s - a), KERN_LANE);
				b->mask[i] = 0xffffu;
				continue;
			}
			b->mask[i] = 0;
			memset(b->data + i * KERN_LANE, 0, KERN_LANE);
		}
		memcpy(b->data + i * KERN_LANE + k, src + (s - a), len);
		b->mask[i] |= (uint16_t)(((1u << len) - 1) << k);
	}
}

/* Before folding a delta to page: room for `lanes` more lanes, the page's
 * entry (new, or moved into the index at its second delta) as b->cur.
 * 0 or -ENOMEM (nothing changed). */
static int batch_begin(struct mmsb_kern_batch *b, void *page, uint64_t page_size, size_t lanes)
{
	uint64_t key = (uint64_t)(uintptr_t)page;
	ptrdiff_t pi = page_find(b, key);
	size_t more_idx = 0;
	int rc;

	if (pi >= 0)
		more_idx = lanes + (b->pents[pi].hashed ? 0 : b->pents[pi].end - b->pents[pi].start);
	rc = batch_reserve(b, lanes, more_idx);
	if (rc == 0)
		rc = batch_note_page(b, page, page_size);
	if (rc < 0)
		return rc;
	if (pi < 0) {
		struct kern_pent *pe = &b->pents[b->n_pents];
		size_t h = page_hash(key, b->ptcap);

		while (b->ptab[h])
			h = (h + 1) & (b->ptcap - 1);
		b->ptab[h] = (uint32_t)(b->n_pents + 1);
		pe->page = key;
		pe->start = pe->end = (uint32_t)b->n;
		pe->slot = (uint32_t)h;
		pe->hashed = false;
		b->n_pents++;
		b->cur = pe;
		return 0;
	}
	b->cur = &b->pents[pi];
	if (!b->cur->hashed)
		page_index(b, b->cur);
	return 0;
}

/* After the fold: a page's first delta ends its range. */
static void batch_end(struct mmsb_kern_batch *b)
{
	if (!b->cur->hashed)
		b->cur->end = (uint32_t)b->n;
}

/* ---- parsing ----------------------------------------------------------------- */

static int get_uvarint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	const uint8_t *p = *pp;
	uint64_t r = 0;
	unsigned shift;

	for (shift = 0; shift <= 63; shift += 7) {
		uint8_t c;

		if (p == end)
			return -EUCLEAN;
		c = *p++;
		if (shift == 63 && c > 1)
			return -EUCLEAN;
		r |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = r;
			*pp = p;
			return 0;
		}
	}
	return -EUCLEAN;
}

/* Walk a RUNS body.  b == NULL: validate and count the lanes it can touch
 * into *lanes.  b != NULL: fold it into b (already validated and reserved). */
static int runs_walk(struct mmsb_kern_batch *b, uint8_t *page, uint64_t size, const uint8_t *body, size_t len,
		     size_t *lanes)
{
	const uint8_t *p = body, *end = body + len;
	uint64_t n_runs, pos = 0, k, gap, n, base = (uint64_t)(uintptr_t)page;
	size_t count = 0;

	if (get_uvarint(&p, end, &n_runs) < 0 || n_runs == 0)
		return -EUCLEAN;
	if (n_runs > (uint64_t)(end - p) / 3)
		return -EUCLEAN;
	for (k = 0; k < n_runs; k++) {
		if (get_uvarint(&p, end, &gap) < 0 || get_uvarint(&p, end, &n) < 0)
			return -EUCLEAN;
		if (n == 0 || gap > size - pos || n > size - pos - gap)
			return -EUCLEAN;
		if (n > (uint64_t)(end - p))
			return -EUCLEAN;
		pos += gap;
		if (b)
			batch_put(b, page, size, pos, p, n);
		else
			count += range_lanes(base + pos, n);
		p += n;
		pos += n;
	}
	if (p != end)
		return -EUCLEAN;
	if (lanes)
		*lanes = count;
	return 0;
}

static uint64_t le_bytes(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

/* Walk a BITMAP body; b and lanes as for runs_walk. */
static int bitmap_walk(struct mmsb_kern_batch *b, uint8_t *page, uint64_t size, const uint8_t *body, size_t len,
		       size_t *lanes)
{
	const uint8_t *p = body, *end = body + len, *bm, *pl;
	uint64_t base, span, nbm, pop = 0, j, run_off = 0, run_len = 0;
	unsigned last;

	if (get_uvarint(&p, end, &base) < 0 || get_uvarint(&p, end, &span) < 0)
		return -EUCLEAN;
	if (span == 0 || base > size || span > size - base)
		return -EUCLEAN;
	nbm = span / 8 + (span % 8 != 0);
	if (nbm > (uint64_t)(end - p))
		return -EUCLEAN;
	bm = p;
	last = bm[(span - 1) / 8] >> ((span - 1) % 8);
	if (!(bm[0] & 1) || last != 1)
		return -EUCLEAN;
	pl = bm + nbm;
	if (!b) {
		for (j = 0; j < nbm; j++)
			pop += (uint64_t)__builtin_popcount(bm[j]);
		if (pop != (uint64_t)(end - pl))
			return -EUCLEAN;
		if (lanes)
			*lanes = range_lanes((uint64_t)(uintptr_t)page + base, span);
		return 0;
	}
	/* fold: each stretch of set bits is a run of consecutive payload bytes */
	for (j = 0; j < nbm; j += 8) {
		size_t nb = nbm - j >= 8 ? 8 : (size_t)(nbm - j);
		uint64_t w = le_bytes(bm + j, nb), at = base + 8 * j;

		while (w) {
			unsigned t = (unsigned)__builtin_ctzll(w);
			uint64_t rest = w >> t;
			unsigned r = ~rest ? (unsigned)__builtin_ctzll(~rest) : 64 - t;

			if (run_len && run_off + run_len == at + t) {
				run_len += r;
			} else {
				if (run_len) {
					batch_put(b, page, size, run_off, pl, run_len);
					pl += run_len;
				}
				run_off = at + t;
				run_len = r;
			}
			w = t + r >= 64 ? 0 : w & (~0ull << (t + r));
		}
	}
	if (run_len)
		batch_put(b, page, size, run_off, pl, run_len);
	return 0;
}

int mmsb_kern_batch_add(struct mmsb_kern_batch *b, void *page, uint64_t page_size, uint8_t enc,
			const uint8_t *body, size_t len)
{
	size_t lanes = 0;
	int rc;

	if (enc != ENC_RUNS && enc != ENC_BITMAP)
		return -EUCLEAN;
	if (len == 0)
		return 0;
	if (!body)
		return -EINVAL;
	rc = enc == ENC_RUNS ? runs_walk(NULL, page, page_size, body, len, &lanes)
			     : bitmap_walk(NULL, page, page_size, body, len, &lanes);
	if (rc < 0)
		return rc;
	if (!page || (uint64_t)(uintptr_t)page > UINT64_MAX - page_size)
		return -EINVAL;
	batch_wait(b);
	rc = batch_begin(b, page, page_size, lanes);
	if (rc < 0)
		return rc;
	rc = enc == ENC_RUNS ? runs_walk(b, page, page_size, body, len, NULL)
			     : bitmap_walk(b, page, page_size, body, len, NULL);
	batch_end(b);
	return rc;
}

int mmsb_kern_batch_add_bytes(struct mmsb_kern_batch *b, void *page, uint64_t page_size, uint64_t off,
			      const uint8_t *src, size_t n)
{
	int rc;

	if (off > page_size || n > page_size - off)
		return -EINVAL;
	if (n == 0)
		return 0;
	if (!page || !src || (uint64_t)(uintptr_t)page > UINT64_MAX - page_size)
		return -EINVAL;
	batch_wait(b);
	rc = batch_begin(b, page, page_size, range_lanes((uint64_t)(uintptr_t)page + off, n));
	if (rc < 0)
		return rc;
	batch_put(b, page, page_size, off, src, n);
	batch_end(b);
	return 0;
}

/* Empty the fold and page indexes: a slot at a time through the slots
 * noted for each entry, or whole when most of it is in use. */
static void index_clear(struct mmsb_kern_batch *b)
{
	size_t i;

	if (b->n_indexed > b->hcap / 16) {
		memset(b->hidx, 0, b->hcap * sizeof(*b->hidx));
	} else if (b->n_indexed) {
		for (i = 0; i < b->n; i++)
			if (b->addr[i] & KERN_LANE_INDEXED)
				b->hidx[b->lslot[i]] = 0;
	}
	b->n_indexed = 0;
	if (b->n_pents > b->ptcap / 16) {
		memset(b->ptab, 0, b->ptcap * sizeof(*b->ptab));
	} else {
		for (i = 0; i < b->n_pents; i++)
			b->ptab[b->pents[i].slot] = 0;
	}
	b->n_pents = 0;
	b->cur = NULL;
}

void mmsb_kern_batch_reset(struct mmsb_kern_batch *b)
{
	batch_wait(b);
	index_clear(b);
	b->n = 0;
	b->n_pages = 0;
	b->uploaded = false;
}

size_t mmsb_kern_batch_lanes(const struct mmsb_kern_batch *b)
{
	return b->n;
}

/* ---- recompute names and checks ----------------------------------------------- */

size_t mmsb_kern_elem_size(enum mmsb_kern_elem elem)
{
	switch (elem) {
	case MMSB_KERN_U8:
		return 1;
	case MMSB_KERN_U16:
		return 2;
	case MMSB_KERN_U32:
	case MMSB_KERN_I32:
	case MMSB_KERN_F32:
		return 4;
	case MMSB_KERN_U64:
	case MMSB_KERN_I64:
	case MMSB_KERN_F64:
		return 8;
	}
	return 0;
}

int mmsb_kern_op_parse(const char *s, enum mmsb_kern_op *op, enum mmsb_kern_elem *elem)
{
	static const struct {
		const char *name;
		enum mmsb_kern_op op;
	} ops[] = {{"copy", MMSB_KERN_COPY}, {"concat", MMSB_KERN_CONCAT}, {"xor", MMSB_KERN_XOR},
		   {"add", MMSB_KERN_ADD},   {"min", MMSB_KERN_MIN},	   {"max", MMSB_KERN_MAX},
		   {"sum", MMSB_KERN_SUM}};
	static const struct {
		const char *name;
		enum mmsb_kern_elem elem;
	} elems[] = {{"u8", MMSB_KERN_U8},   {"u16", MMSB_KERN_U16}, {"u32", MMSB_KERN_U32}, {"u64", MMSB_KERN_U64},
		     {"i32", MMSB_KERN_I32}, {"i64", MMSB_KERN_I64}, {"f32", MMSB_KERN_F32}, {"f64", MMSB_KERN_F64}};
	const char *colon;
	size_t nl, i, j;

	if (!s)
		return -EINVAL;
	colon = strchr(s, ':');
	nl = colon ? (size_t)(colon - s) : strlen(s);
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (strlen(ops[i].name) != nl || memcmp(ops[i].name, s, nl) != 0)
			continue;
		if (ops[i].op <= MMSB_KERN_XOR) {
			if (colon)
				return -EINVAL;
			*op = ops[i].op;
			*elem = MMSB_KERN_U8;
			return 0;
		}
		if (!colon)
			return -EINVAL;
		for (j = 0; j < sizeof(elems) / sizeof(elems[0]); j++) {
			if (strcmp(elems[j].name, colon + 1) == 0) {
				*op = ops[i].op;
				*elem = elems[j].elem;
				return 0;
			}
		}
		return -EINVAL;
	}
	return -EINVAL;
}

int mmsb_kern_recompute_len(enum mmsb_kern_op op, enum mmsb_kern_elem elem, const size_t *in_len, size_t n_in,
			    size_t *out_len)
{
	size_t es = mmsb_kern_elem_size(elem), k, total = 0;

	if (n_in && !in_len)
		return -EINVAL;
	switch (op) {
	case MMSB_KERN_COPY:
		if (n_in != 1)
			return -EINVAL;
		*out_len = in_len[0];
		return 0;
	case MMSB_KERN_CONCAT:
		for (k = 0; k < n_in; k++) {
			if (in_len[k] > SIZE_MAX - total)
				return -EINVAL;
			total += in_len[k];
		}
		*out_len = total;
		return 0;
	case MMSB_KERN_XOR:
	case MMSB_KERN_ADD:
	case MMSB_KERN_MIN:
	case MMSB_KERN_MAX:
		if (n_in == 0)
			return -EINVAL;
		if (op != MMSB_KERN_XOR && (es == 0 || in_len[0] % es))
			return -EINVAL;
		for (k = 1; k < n_in; k++)
			if (in_len[k] != in_len[0])
				return -EINVAL;
		*out_len = in_len[0];
		return 0;
	case MMSB_KERN_SUM:
		if (es == 0)
			return -EINVAL;
		for (k = 0; k < n_in; k++)
			if (in_len[k] % es)
				return -EINVAL;
		*out_len = es;
		return 0;
	}
	return -EINVAL;
}

bool kern_overlap(const void *a, size_t an, const void *b, size_t bn)
{
	uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;

	if (an == 0 || bn == 0)
		return false;
	return x < y + bn && y < x + an;
}

int kern_recompute_check(enum mmsb_kern_op op, enum mmsb_kern_elem elem, const void *out, size_t out_len,
			 const void *const *in, const size_t *in_len, size_t n_in)
{
	size_t want, k;
	int rc = mmsb_kern_recompute_len(op, elem, in_len, n_in, &want);

	if (rc < 0)
		return rc;
	if (want != out_len || (out_len && !out) || (n_in && !in))
		return -EINVAL;
	for (k = 0; k < n_in; k++) {
		if (in_len[k] && !in[k])
			return -EINVAL;
		if (kern_overlap(out, out_len, in[k], in_len[k]))
			return -EINVAL;
	}
	return 0;
}

/* ---- the asynchronous apply queue (kern_int.h) ----------------------------------- */

static size_t kq_slot(const void *page)
{
	return (size_t)((((uint64_t)(uintptr_t)page >> 4) * 0x9e3779b97f4a7c15ull) >> 40) & (KQ_SLOTS - 1);
}

void kq_init(struct kern_queue *q, const struct kern_queue_backend *be, bool threaded)
{
	memset(q, 0, sizeof(*q));
	q->be = be;
	q->threaded = threaded;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&q->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	q->next_seq = 1;
}

/* Move finished batches, oldest first, to the spares (lock held), and wake
 * whoever waits for one (kq_take). */
static void kq_reap(struct kern_queue *q)
{
	uint64_t was = q->done_seq;

	while (q->done_seq + 1 < q->next_seq) {
		struct kq_slot *s = &q->fly[(q->done_seq + 1) % KQ_BATCHES];

		if (!s->b || s->submitting || !q->be->done(s->b, false))
			break;
		mmsb_kern_batch_reset(s->b);
		q->spare[q->n_spare++] = s->b;
		s->b = NULL;
		q->done_seq++;
	}
	if (q->done_seq != was)
		pthread_cond_broadcast(&q->cv);
}

/* Hand the open batch to the backend, after any submission under way, so
 * that batches reach it in seq order (lock held; dropped meanwhile). */
static void kq_submit_locked(struct kern_queue *q)
{
	struct mmsb_kern_batch *b;
	struct kq_slot *s;
	uint64_t seq;
	int rc;

	while (q->in_submit)
		pthread_cond_wait(&q->cv, &q->mu);
	b = q->open;
	if (!b || b->n == 0)
		return;
	seq = q->next_seq++;
	q->open = NULL;
	s = &q->fly[seq % KQ_BATCHES]; /* free: at most KQ_BATCHES batches exist */
	s->b = b;
	s->seq = seq;
	s->submitting = true;
	q->in_submit = true;
	pthread_mutex_unlock(&q->mu);
	rc = q->be->submit(b);
	pthread_mutex_lock(&q->mu);
	s->submitting = false;
	q->in_submit = false;
	q->n_submits++;
	if (rc < 0 && !q->err)
		q->err = rc;
	pthread_cond_broadcast(&q->cv);
	if (q->flusher_idle)
		pthread_cond_signal(&q->wake); /* it recycles the batch when done */
}

/* Wait until batch seq has finished (lock held; dropped while waiting). */
static void kq_wait_seq(struct kern_queue *q, uint64_t seq)
{
	if (seq >= q->next_seq)
		kq_submit_locked(q); /* seq is (or was) the open batch */
	for (;;) {
		struct kq_slot *s;
		struct mmsb_kern_batch *b;

		kq_reap(q);
		if (q->done_seq >= seq)
			return;
		s = &q->fly[seq % KQ_BATCHES];
		if (s->submitting || q->in_submit) {
			pthread_cond_wait(&q->cv, &q->mu);
			continue;
		}
		if (!s->b || s->seq != seq) {
			/* an older batch is still out (the slot is ahead of
			 * done_seq): wait for the oldest one */
			s = &q->fly[(q->done_seq + 1) % KQ_BATCHES];
			if (!s->b)
				return; /* nothing out: seq cannot be pending */
		}
		b = s->b;
		pthread_mutex_unlock(&q->mu);
		q->be->done(b, true); /* a batch reused meanwhile: waits longer, never less */
		pthread_mutex_lock(&q->mu);
	}
}

/* The flusher: submits the open batch as soon as it holds deltas, and
 * between submissions waits for the oldest batch out and recycles it, so
 * that writers never call into the backend (on a GPU, a driver call of a
 * writer would queue behind the flusher's). */
static void *kq_flusher(void *arg)
{
	struct kern_queue *q = arg;
	bool napped = false;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct kq_slot *s;
		struct mmsb_kern_batch *b;

		if (q->open && q->open->n) {
			kq_submit_locked(q);
			napped = false;
			continue;
		}
		if (q->done_seq + 1 < q->next_seq) { /* a batch is out */
			s = &q->fly[(q->done_seq + 1) % KQ_BATCHES];
			if (s->submitting || !s->b) {
				pthread_cond_wait(&q->cv, &q->mu);
				continue;
			}
			b = s->b;
			pthread_mutex_unlock(&q->mu);
			q->be->done(b, true);
			pthread_mutex_lock(&q->mu);
			kq_reap(q);
			pthread_cond_broadcast(&q->cv);
			napped = false;
			continue;
		}
		if (!napped) {
			/* idle: first a nap of KQ_NAP_NS that writers do not end
			 * (a write then costs no wakeup, and the deltas of a
			 * stream of writes go out together), then sleep until a
			 * write signals */
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += KQ_NAP_NS;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&q->wake, &q->mu, &ts);
			napped = true;
			continue;
		}
		q->flusher_idle = true;
		pthread_cond_wait(&q->wake, &q->mu);
		q->flusher_idle = false;
		napped = false;
	}
	return NULL;
}

/* An empty batch for the open one (lock held).  With a flusher, finished
 * batches come back through it (this only waits for that); without one,
 * it recycles them itself, waiting for the oldest when all KQ_BATCHES
 * exist. */
static int kq_take(struct kern_queue *q, struct mmsb_kern_batch **out)
{
	for (;;) {
		if (!q->started)
			kq_reap(q);
		if (q->n_spare) {
			*out = q->spare[--q->n_spare];
			return 0;
		}
		if (q->n_alloc < KQ_BATCHES) {
			int rc = q->be->batch_new(out);

			if (rc == 0)
				q->n_alloc++;
			return rc;
		}
		if (q->started) {
			if (q->flusher_idle)
				pthread_cond_signal(&q->wake);
			pthread_cond_wait(&q->cv, &q->mu);
		}
		else
			kq_wait_seq(q, q->done_seq + 1);
	}
}

int kq_enqueue(struct kern_queue *q, void *page, uint64_t page_size, uint8_t enc, const uint8_t *body,
	       size_t len)
{
	int rc = 0;

	pthread_mutex_lock(&q->mu);
	if (q->threaded && !q->started) {
		pthread_attr_t a;
		pthread_t th;

		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &a, kq_flusher, q) == 0)
			q->started = true;
		else
			q->threaded = false; /* submitted when needed, or when large */
		pthread_attr_destroy(&a);
	}
	while (rc == 0 && !q->open) {
		struct mmsb_kern_batch *b;

		rc = kq_take(q, &b); /* may drop the lock: another may open one */
		if (rc == 0 && q->open)
			q->spare[q->n_spare++] = b;
		else if (rc == 0)
			q->open = b;
	}
	if (rc == 0)
		rc = mmsb_kern_batch_add(q->open, page, page_size, enc, body, len);
	if (rc == 0 && len) {
		size_t s = kq_slot(page);

		q->last[s] = q->next_seq;
		q->n_enqueued++;
		if (q->open->n >= KQ_MAX_LANES)
			kq_submit_locked(q);
		else if (q->flusher_idle)
			pthread_cond_signal(&q->wake);
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

static int kq_take_err(struct kern_queue *q)
{
	int rc = q->err;

	q->err = 0;
	return rc;
}

int kq_submit(struct kern_queue *q)
{
	int rc;

	pthread_mutex_lock(&q->mu);
	kq_submit_locked(q);
	rc = kq_take_err(q);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int kq_wait_page(struct kern_queue *q, const void *page)
{
	int rc;

	pthread_mutex_lock(&q->mu);
	kq_wait_seq(q, q->last[kq_slot(page)]);
	rc = kq_take_err(q);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int kq_drain(struct kern_queue *q)
{
	int rc;

	pthread_mutex_lock(&q->mu);
	kq_submit_locked(q);
	kq_wait_seq(q, q->next_seq - 1);
	rc = kq_take_err(q);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

/* ---- device memory accounting ---------------------------------------------------- */

struct acct_ent {
	void *p;
	size_t n;
	struct acct_ent *next;
};

#define ACCT_BUCKETS 4096

static pthread_mutex_t acct_mu = PTHREAD_MUTEX_INITIALIZER;
static struct acct_ent *acct_tab[ACCT_BUCKETS];
static uint64_t acct_used, acct_limit;

static size_t acct_bucket(const void *p)
{
	return (size_t)((((uint64_t)(uintptr_t)p >> 4) * 0x9e3779b97f4a7c15ull) >> 48) & (ACCT_BUCKETS - 1);
}

void mmsb_kern_gpu_limit(uint64_t bytes)
{
	pthread_mutex_lock(&acct_mu);
	acct_limit = bytes;
	pthread_mutex_unlock(&acct_mu);
}

uint64_t mmsb_kern_gpu_used(void)
{
	uint64_t u;

	pthread_mutex_lock(&acct_mu);
	u = acct_used;
	pthread_mutex_unlock(&acct_mu);
	return u;
}

bool kern_acct_fits(size_t n)
{
	bool ok;

	pthread_mutex_lock(&acct_mu);
	ok = !acct_limit || (n <= acct_limit && acct_used <= acct_limit - n);
	pthread_mutex_unlock(&acct_mu);
	return ok;
}

int kern_acct_take(void *p, size_t n)
{
	struct acct_ent *e = malloc(sizeof(*e));
	size_t h = acct_bucket(p);

	if (!e)
		return -ENOMEM;
	pthread_mutex_lock(&acct_mu);
	if (acct_limit && (n > acct_limit || acct_used > acct_limit - n)) {
		pthread_mutex_unlock(&acct_mu);
		free(e);
		return -ENOSPC;
	}
	e->p = p;
	e->n = n;
	e->next = acct_tab[h];
	acct_tab[h] = e;
	acct_used += n;
	pthread_mutex_unlock(&acct_mu);
	return 0;
}

void kern_acct_give(void *p)
{
	struct acct_ent **pp, *e = NULL;

	pthread_mutex_lock(&acct_mu);
	for (pp = &acct_tab[acct_bucket(p)]; *pp; pp = &(*pp)->next) {
		if ((*pp)->p == p) {
			e = *pp;
			*pp = e->next;
			acct_used -= e->n;
			break;
		}
	}
	pthread_mutex_unlock(&acct_mu);
	free(e);
}
