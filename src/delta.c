/* delta.c - byte-level deltas: diff, encode, validate, apply, LZ4 wrapping.
 *
 * What it does: turns "write src at off over this page" into the shortest
 * of two encodings of the bytes that change (RUNS or BITMAP, layouts in
 * delta.h and next to each encoder/decoder below), validates and applies
 * such bodies read back from disk, lists the ranges they cover, compares
 * two buffers range by range, and wraps bodies in an LZ4 block when that
 * pays.  Normative text: mmsb(5), DELTA ENCODING.
 *
 * What it does not do: own or grow pages (the caller extends a page with
 * zeros before applying a write past its end), know about WRITE frames
 * (rec.c), or allocate anywhere but in the caller's struct mmsb_buf.  The
 * apply path (mmsb_delta_apply, mmsb_delta_check) never allocates.
 *
 * Diff algorithm.  The written range is compared against the page 8 bytes
 * at a time (32 in the skip loops); only inside a word that differs does it
 * go to bytes.  Equal stretches shorter than DELTA_MERGE_GAP between two
 * changed bytes are absorbed into one run.  The RUNS encoding is written
 * while scanning (one pass, no re-scan in the common case), its exact size
 * and the exact BITMAP size are then compared, and only if BITMAP is smaller
 * is [lo, hi) scanned a second time to build it.  The RUNS pass stops early
 * once BITMAP is certainly smaller (see "Early switch" below), so scattered
 * changes over a large write do not copy runs that are thrown away.
 *
 * Conventions this module adds to delta.h (for mmsb(5)):
 *  - An empty body (len 0) is the empty delta: diff emits it when nothing
 *    changed (with info->enc = MMSB_ENC_RUNS), and check/apply accept it for
 *    either encoding.  A non-empty RUNS body with n_runs == 0 is rejected,
 *    so the empty delta has one form.
 *  - uvarints may be overlong (0x80 0x00 is 0) as long as they stay within
 *    10 bytes and 64 bits; the encoder always writes the shortest form.
 *  - Adjacent RUNS runs (a later gap of 0) are valid; the encoder never
 *    writes them.
 *
 * Thread safety: every function works only on its arguments; calls on
 * disjoint buffers may run concurrently.
 */
#include <assert.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include <lz4.h>

#include "delta.h"
#include "err.h"
#include "format.h"

/* An equal stretch shorter than this between two changed bytes stays inside
 * the run (rewritten with identical values).  In bytes, splitting pays from
 * a gap of 3 up (a new run costs a gap and a len uvarint, 2 bytes when
 * small); merging up to 7 costs at most 5 bytes per run and buys fewer runs,
 * i.e. fewer memcpy calls and uvarint decodes on apply.  Any value in 1..8
 * gives a valid encoding; above 8 a merged gap could span a whole equal word,
 * which diff_extend_run does not handle. */
#define DELTA_MERGE_GAP 8
_Static_assert(DELTA_MERGE_GAP >= 1 && DELTA_MERGE_GAP <= 8, "diff_extend_run ends a run at an equal word");

#define UVARINT_MAX 10	       /* bytes of a uvarint of 64 bits */
#define PACK_HDR 4	       /* le32 raw_len in front of the LZ4 block */
#define PACK_PROBE (32u << 10)	     /* mmsb_delta_pack: bytes tried first ... */
#define PACK_PROBE_MIN (256u << 10) /* ... in bodies at least this large */
#define RUN_HDR_MAX (2 * UVARINT_MAX)

/* ---- words ------------------------------------------------------------------
 * Words are loaded in little-endian order (byte k of memory in bits 8k..8k+7)
 * whatever the host, so bit arithmetic maps to memory positions one way. */

#define LOW7_64 0x7f7f7f7f7f7f7f7full
#define HIGH_64 0x8080808080808080ull

static inline uint64_t ld64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

/* Bit 7 of byte k of the result is set <=> byte k of x is nonzero; all other
 * bits are clear.  Exact: (x & 0x7f) + 0x7f never carries out of a byte. */
static inline uint64_t nonzero_bytes(uint64_t x)
{
	return (((x & LOW7_64) + LOW7_64) | x) & HIGH_64;
}

/* Bit 7 of byte k of the result is set <=> byte k of x is zero. */
static inline uint64_t zero_bytes(uint64_t x)
{
	return nonzero_bytes(x) ^ HIGH_64;
}

/* Gather the byte flags of y (as nonzero_bytes returns them) into bits 0..7:
 * the product puts bit 8k+7 of y at bit 56+k and nothing else in 56..63. */
static inline unsigned flags_gather(uint64_t y)
{
	return (unsigned)((y * 0x0002040810204081ull) >> 56);
}

/* Number of byte flags set in y (0..8), without a popcount instruction. */
static inline unsigned flags_count(uint64_t y)
{
	return (unsigned)(((y >> 7) * 0x0101010101010101ull) >> 56);
}

/* Memory index (0..7) of the lowest nonzero byte of m != 0. */
static inline size_t first_byte(uint64_t m)
{
	return (size_t)__builtin_ctzll(m) >> 3;
}

static inline unsigned popcount64(uint64_t v)
{
	v = v - ((v >> 1) & 0x5555555555555555ull);
	v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
	v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (unsigned)((v * 0x0101010101010101ull) >> 56);
}

/* ---- scanners ---------------------------------------------------------------
 * Each returns the first index in [i, n) that meets its condition, or n.
 * i <= n.  The 32-byte loops skip quickly; the 8-byte loops locate. */

/* s[k] != c[k] */
static size_t scan_ne(const uint8_t *s, const uint8_t *c, size_t i, size_t n)
{
	while (n - i >= 32) {
		uint64_t x = (ld64(s + i) ^ ld64(c + i)) | (ld64(s + i + 8) ^ ld64(c + i + 8)) |
			     (ld64(s + i + 16) ^ ld64(c + i + 16)) | (ld64(s + i + 24) ^ ld64(c + i + 24));
		if (x)
			break;
		i += 32;
	}
	while (n - i >= 8) {
		uint64_t x = ld64(s + i) ^ ld64(c + i);

		if (x)
			return i + first_byte(x);
		i += 8;
	}
	for (; i < n; i++)
		if (s[i] != c[i])
			return i;
	return n;
}

/* s[k] == c[k] */
static size_t scan_eq(const uint8_t *s, const uint8_t *c, size_t i, size_t n)
{
	while (n - i >= 32) {
		uint64_t m = zero_bytes(ld64(s + i) ^ ld64(c + i)) | zero_bytes(ld64(s + i + 8) ^ ld64(c + i + 8)) |
			     zero_bytes(ld64(s + i + 16) ^ ld64(c + i + 16)) |
			     zero_bytes(ld64(s + i + 24) ^ ld64(c + i + 24));
		if (m)
			break;
		i += 32;
	}
	while (n - i >= 8) {
		uint64_t m = zero_bytes(ld64(s + i) ^ ld64(c + i));

		if (m)
			return i + first_byte(m);
		i += 8;
	}
	for (; i < n; i++)
		if (s[i] == c[i])
			return i;
	return n;
}

/* s[k] != 0 */
static size_t scan_nz(const uint8_t *s, size_t i, size_t n)
{
	while (n - i >= 32) {
		if (ld64(s + i) | ld64(s + i + 8) | ld64(s + i + 16) | ld64(s + i + 24))
			break;
		i += 32;
	}
	while (n - i >= 8) {
		uint64_t x = ld64(s + i);

		if (x)
			return i + first_byte(x);
		i += 8;
	}
	for (; i < n; i++)
		if (s[i])
			return i;
	return n;
}

/* What a write is compared against: src[k] against old[k] below split, and
 * against zero from split on (bytes past the old page end). */
struct diff_src {
	const uint8_t *src; /* the bytes being written */
	const uint8_t *old; /* page bytes under src[0..split); NULL if split == 0 */
	size_t split;	    /* first src index past the old page end */
};

/* First k in [i, n) where the write changes the page, or n. */
static size_t find_ne(const struct diff_src *d, size_t i, size_t n)
{
	if (i < d->split) {
		size_t e = n < d->split ? n : d->split;

		i = scan_ne(d->src, d->old, i, e);
		if (i < e || e == n)
			return i;
	}
	return scan_nz(d->src, i, n);
}

/* ref64 for the one word that straddles split. */
static uint64_t ref64_straddle(const struct diff_src *d, size_t pos)
{
	uint8_t w[8] = {0};

	memcpy(w, d->old + pos, d->split - pos);
	return ld64(w);
}

/* The page bytes under src[pos..pos+8) (pos + 8 <= write length), as a
 * little-endian word: old bytes below split, zeros from split on. */
static inline uint64_t ref64(const struct diff_src *d, size_t pos)
{
	if (pos + 8 <= d->split)
		return ld64(d->old + pos);
	if (pos >= d->split)
		return 0;
	return ref64_straddle(d, pos);
}

/* Does the write change the page byte under src[pos]? */
static inline bool changes(const struct diff_src *d, size_t pos)
{
	return d->src[pos] != (pos < d->split ? d->old[pos] : 0);
}

/* Flags (as nonzero_bytes) of the bytes of src[pos..pos+8) the write
 * changes; pos + 8 <= write length. */
static inline uint64_t diff_word(const struct diff_src *d, size_t pos)
{
	return nonzero_bytes(ld64(d->src + pos) ^ ref64(d, pos));
}

/* ---- uvarint (LEB128: 7 bits per byte, low group first) ------------------- */

static size_t uvarint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint8_t *put_uvarint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* Read a uvarint from [*pp, end) and advance *pp.  Valid iff it ends within
 * end, within 10 bytes, and fits in 64 bits (the 10th byte is 0 or 1).
 * Returns 0 or -EUCLEAN. */
static int get_uvarint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	const uint8_t *p = *pp;
	uint64_t r = 0;
	unsigned shift;

	if (p < end && *p < 0x80) { /* fast path: one byte */
		*v = *p;
		*pp = p + 1;
		return 0;
	}
	for (shift = 0; shift <= 63; shift += 7) {
		uint8_t b;

		if (p == end)
			return -MMSB_ECORRUPT; /* truncated */
		b = *p++;
		if (shift == 63 && b > 1)
			return -MMSB_ECORRUPT; /* past 64 bits, or an 11th byte follows */
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			*pp = p;
			return 0;
		}
	}
	return -MMSB_ECORRUPT; /* not reached: the 10th byte either ends or fails */
}

/* ---- diff: RUNS encoder ------------------------------------------------------
 * RUNS layout:
 *   uvarint n_runs
 *   n_runs x { uvarint gap | uvarint len | byte[len] }
 * Run 0 starts at page offset gap_0; run k starts gap_k bytes after the end
 * of run k-1.  len >= 1.
 * The encoder's runs begin and end with a changed byte, and hold no
 * DELTA_MERGE_GAP equal bytes in a row, so every later gap is at least
 * DELTA_MERGE_GAP.
 *
 * Early switch to BITMAP.  Call "waste" the RUNS bytes spent on anything but
 * changed bytes: run headers and absorbed equal bytes.  Both only grow, so
 *   RUNS   >= 1 + waste + changed
 *   BITMAP <= 10 + 10 + ((n - lo) / 8 + 1) + changed     (span <= n - lo)
 * and once waste > DIFF_BM_FIXED + (n - lo) / 8 BITMAP is smaller whatever
 * follows.  The scan then stops, the RUNS bytes are dropped, and BITMAP is
 * built directly: the choice is the one the full scan would make, found
 * without copying (possibly huge) runs that would be thrown away.
 */
#define DIFF_BM_FIXED 21 /* 2 uvarints + a partial bitmap byte, at most */

struct diff_stats {
	uint64_t changed;  /* bytes that really differ, seen so far */
	size_t lo, hi;	   /* changed bytes seen lie in src[lo..hi) */
	uint64_t n_runs;   /* runs emitted */
	size_t runs_bytes; /* RUNS body bytes after the n_runs uvarint */
	size_t waste;	   /* RUNS bytes so far not holding a changed byte */
	size_t waste_max;  /* waste past this: BITMAP wins (see above) */
};

/* Cross the words from q on whose last byte changes: 8 equal bytes in a row
 * (what ends a run) reach the last byte of some word, so such words keep
 * the run going whatever their other bytes do; their equal bytes (at most 7
 * in a row, absorbed by the run) are added to *eq.  Returns the first word
 * whose last byte is equal, or where fewer than 8 bytes are left, or the
 * word that straddles the old page end.  The caller has seen src[q - 1]
 * change.  Random data has an equal byte every ~256 bytes but an equal last
 * byte only every ~2 KiB: this is what keeps a dense diff near memory speed. */
static size_t dense_skip(const struct diff_src *d, size_t q, size_t n, uint64_t *eq)
{
	uint64_t k = 0, z0, z1, z2, z3;
	size_t lim = n < d->split ? n : d->split;

	if (q < d->split) {
		while (lim - q >= 32) {
			z0 = zero_bytes(ld64(d->src + q) ^ ld64(d->old + q));
			z1 = zero_bytes(ld64(d->src + q + 8) ^ ld64(d->old + q + 8));
			z2 = zero_bytes(ld64(d->src + q + 16) ^ ld64(d->old + q + 16));
			z3 = zero_bytes(ld64(d->src + q + 24) ^ ld64(d->old + q + 24));
			if (z0 | z1 | z2 | z3) { /* an equal byte: rare in a dense stretch */
				if ((z0 | z1 | z2 | z3) >> 63)
					break;
				k += flags_count(z0) + flags_count(z1) + flags_count(z2) + flags_count(z3);
			}
			q += 32;
		}
		while (lim - q >= 8) {
			z0 = zero_bytes(ld64(d->src + q) ^ ld64(d->old + q));
			if (z0 >> 63)
				break;
			k += flags_count(z0);
			q += 8;
		}
		if (q < d->split) {
			*eq += k;
			return q;
		}
	}
	while (n - q >= 32) {
		z0 = zero_bytes(ld64(d->src + q));
		z1 = zero_bytes(ld64(d->src + q + 8));
		z2 = zero_bytes(ld64(d->src + q + 16));
		z3 = zero_bytes(ld64(d->src + q + 24));
		if (z0 | z1 | z2 | z3) {
			if ((z0 | z1 | z2 | z3) >> 63)
				break;
			k += flags_count(z0) + flags_count(z1) + flags_count(z2) + flags_count(z3);
		}
		q += 32;
	}
	while (n - q >= 8) {
		z0 = zero_bytes(ld64(d->src + q));
		if (z0 >> 63)
			break;
		k += flags_count(z0);
		q += 8;
	}
	*eq += k;
	return q;
}

/* Extend the run that starts at the changed byte src[s] over src[..n): it
 * ends with a changed byte and holds no DELTA_MERGE_GAP equal bytes in a row.
 * Sets *end (one past its last changed byte), adds to st->changed and
 * st->waste.  Returns the first changed byte after the run (n if none), where
 * the next search starts without re-scanning; returns early, with *end the
 * end so far, once st->waste passes st->waste_max.
 * Inside a run the write is walked a word at a time: each word yields a mask
 * of its changed bytes, whose lowest bit closes the run (if the equal
 * stretch since the last changed byte reaches DELTA_MERGE_GAP) and whose
 * highest bit moves the run's end.  A word that changes entirely hands over
 * to find_eq, which crosses dense stretches 32 bytes at a time. */
static size_t diff_extend_run(const struct diff_src *d, size_t s, size_t n, struct diff_stats *st, size_t *end)
{
	size_t pos = s, e = s, next = n, ne;
	uint64_t y;
	unsigned m, cnt;

	while (pos < n) {
		if (n - pos < 8) { /* tail */
			if (changes(d, pos)) {
				if (pos - e >= DELTA_MERGE_GAP) {
					next = pos;
					break;
				}
				st->changed++;
				st->waste += pos - e;
				e = pos + 1;
			}
			pos++;
			continue;
		}
		y = diff_word(d, pos);
		if (y == HIGH_64) { /* all 8 changed: skip the dense stretch fast */
			uint64_t eq = 0;

			ne = dense_skip(d, pos + 8, n, &eq);
			st->changed += ne - pos - eq;
			st->waste += pos - e + eq;
			e = pos = ne;
			continue;
		}
		if (!y) { /* e <= pos: 8 equal bytes end the run */
			next = find_ne(d, pos + 8, n);
			break;
		}
		m = flags_gather(y);
		if (pos + (size_t)__builtin_ctz(m) - e >= DELTA_MERGE_GAP) {
			next = pos + (size_t)__builtin_ctz(m);
			break;
		}
		cnt = flags_count(y);
		ne = pos + 32 - (size_t)__builtin_clz(m); /* one past the highest changed byte */
		st->changed += cnt;
		st->waste += ne - e - cnt;
		e = ne;
		pos += 8;
		if (st->waste > st->waste_max)
			break;
	}
	*end = e;
	return next;
}

/* Append the runs of the write src[0..n) at page offset off to out, without
 * the n_runs uvarint, and fill *st.  Returns 0, 1 if it stopped early because
 * BITMAP is certainly smaller (out then holds partial runs; st->hi is where
 * it stopped), or -ENOMEM. */
static int diff_runs(const struct diff_src *d, uint64_t off, size_t n, struct mmsb_buf *out, struct diff_stats *st)
{
	uint64_t prev_end = 0; /* page offset where the previous run ended */
	size_t i = 0, s, e, rl, base = out->len;
	uint8_t *p, *q;
	int rc;

	while (i < n) {
		s = find_ne(d, i, n);
		if (s == n)
			break;
		if (!st->n_runs) {
			st->lo = s;
			st->waste_max = DIFF_BM_FIXED + (n - s) / 8;
		}
		i = diff_extend_run(d, s, n, st, &e);
		st->hi = e;
		if (st->waste > st->waste_max)
			return 1;
		rl = e - s;
		rc = mmsb_buf_reserve(out, RUN_HDR_MAX + (rl < 8 ? 8 : rl));
		if (rc < 0)
			return rc;
		p = out->p + out->len;
		q = put_uvarint(put_uvarint(p, off + s - prev_end), rl);
		if (rl <= 8 && n - s >= 8) /* short run: one fixed-size copy, no call */
			memcpy(q, d->src + s, 8);
		else
			memcpy(q, d->src + s, rl);
		out->len += (size_t)(q - p) + rl;
		st->waste += (size_t)(q - p);
		st->n_runs++;
		prev_end = off + e;
	}
	st->runs_bytes = out->len - base;
	return 0;
}

/* One past the last byte in src[lo..n) the write changes (lo changes). */
static size_t diff_last(const struct diff_src *d, size_t lo, size_t n)
{
	uint64_t y;

	for (; n - lo >= 8; n -= 8) {
		y = diff_word(d, n - 8);
		if (y)
			return n - 8 + 32 - (size_t)__builtin_clz(flags_gather(y));
	}
	while (!changes(d, n - 1))
		n--;
	return n;
}

/* ---- diff: BITMAP encoder ----------------------------------------------------
 * BITMAP layout:
 *   uvarint base | uvarint span | byte[ceil(span/8)] bitmap | byte[popcount] payload
 * Bit i (bit i%8 of bitmap byte i/8, LSB first) is set <=> page byte base+i
 * changes; its new value is the next payload byte.  span >= 1, bits 0 and
 * span-1 set, bits past span zero.
 * The encoder's base and base+span-1 are the first and last changed bytes.
 */

static size_t bitmap_size(size_t lo, size_t hi, uint64_t off, uint64_t changed)
{
	size_t span = hi - lo;

	return uvarint_len(off + lo) + uvarint_len(span) + span / 8 + (span % 8 != 0) + (size_t)changed;
}

/* Append the BITMAP encoding of the write's changes in src[lo..hi) (src[lo]
 * and src[hi-1] change; the write is at page offset off) to out, with room
 * reserved for at most max_changed changed bytes.  *changed gets their exact
 * number.  Word by word: the mask of a word's changed bytes is OR-ed into the
 * bitmap at its bit offset (straddling two bitmap bytes unless aligned) and
 * its changed bytes go to the payload.  Returns 0 or -ENOMEM. */
static int diff_bitmap(const struct diff_src *d, uint64_t off, size_t lo, size_t hi, size_t max_changed,
		       struct mmsb_buf *out, uint64_t *changed)
{
	size_t span = hi - lo, nbm = span / 8 + (span % 8 != 0), pos = lo, bit, w, k;
	uint8_t *bm, *pl;
	unsigned m, sh;
	uint64_t y;
	int rc;

	rc = mmsb_buf_reserve(out, bitmap_size(lo, hi, off, max_changed));
	if (rc < 0)
		return rc;
	bm = put_uvarint(put_uvarint(out->p + out->len, off + lo), span);
	memset(bm, 0, nbm);
	pl = bm + nbm;
	while (pos < hi) {
		w = hi - pos < 8 ? hi - pos : 8;
		if (w == 8) {
			y = diff_word(d, pos);
			if (!y) { /* skip an equal stretch fast */
				pos = find_ne(d, pos + 8, hi);
				continue;
			}
			m = flags_gather(y);
		} else {
			for (m = 0, k = 0; k < w; k++)
				m |= (unsigned)changes(d, pos + k) << k;
		}
		/* bits past hi are zero, so a nonzero spill stays inside bm */
		bit = pos - lo;
		sh = (unsigned)(bit & 7);
		bm[bit >> 3] |= (uint8_t)(m << sh);
		if (sh && (m >> (8 - sh)))
			bm[(bit >> 3) + 1] |= (uint8_t)(m >> (8 - sh));
		if (m == 0xff) {
			memcpy(pl, d->src + pos, 8);
			pl += 8;
		} else {
			for (; m; m &= m - 1)
				*pl++ = d->src[pos + (size_t)__builtin_ctz(m)];
		}
		pos += w;
	}
	*changed = (uint64_t)(pl - (bm + nbm));
	assert(*changed <= max_changed);
	out->len = (size_t)(pl - out->p);
	return 0;
}

int mmsb_delta_diff(const uint8_t *cur, uint64_t cur_size, uint64_t off, const uint8_t *src, size_t len,
		    struct mmsb_buf *out, struct mmsb_delta_info *info)
{
	size_t split = off < cur_size ? (cur_size - off < len ? (size_t)(cur_size - off) : len) : 0;

	return mmsb_delta_diff_window(split ? cur + off : NULL, split, off, src, len, out, info);
}

int mmsb_delta_diff_window(const uint8_t *old, size_t old_len, uint64_t off, const uint8_t *src, size_t len,
			   struct mmsb_buf *out, struct mmsb_delta_info *info)
{
	struct diff_src d = {.src = src, .old = old_len ? old : NULL, .split = old_len < len ? old_len : len};
	struct diff_stats st = {0};
	size_t start = out->len, k, hi;
	int rc;

	memset(info, 0, sizeof(*info));
	info->enc = MMSB_ENC_RUNS;
	if (len > UINT64_MAX - off)
		return -EINVAL; /* the write would end past 2^64 */

	/* (1) Write RUNS after a 1-byte n_runs placeholder while scanning. */
	rc = mmsb_buf_reserve(out, 1);
	if (rc == 0) {
		out->len++;
		rc = diff_runs(&d, off, len, out, &st);
	}
	if (rc < 0 || (rc == 0 && !st.n_runs)) {
		out->len = start;
		return rc;
	}
	info->lo = off + st.lo;

	/* (2) Keep RUNS unless BITMAP is strictly smaller (RUNS applies faster). */
	k = uvarint_len(st.n_runs);
	if (rc == 0 && k + st.runs_bytes <= bitmap_size(st.lo, st.hi, off, st.changed)) {
		if (k > 1) { /* 128+ runs: make room for the longer count */
			rc = mmsb_buf_reserve(out, k - 1);
			if (rc < 0) {
				out->len = start;
				return rc;
			}
			memmove(out->p + start + k, out->p + start + 1, st.runs_bytes);
			out->len += k - 1;
		}
		put_uvarint(out->p + start, st.n_runs);
		info->changed = st.changed;
		info->hi = off + st.hi;
		return 0;
	}

	/* (3) BITMAP: rescan [lo, hi) only.  After an early stop hi is not
	 * known yet, nor the changes past where the scan stopped. */
	out->len = start;
	hi = rc == 0 ? st.hi : diff_last(&d, st.hi - 1, len);
	rc = diff_bitmap(&d, off, st.lo, hi, (size_t)st.changed + (hi - st.hi), out, &info->changed);
	if (rc < 0) {
		out->len = start;
		return rc;
	}
	info->enc = MMSB_ENC_BITMAP;
	info->hi = off + hi;
	return 0;
}

/* ---- decoders ---------------------------------------------------------------- */

/* Collects covered ranges for mmsb_delta_ranges: touching ranges merge, so
 * fn sees maximal ones. */
struct range_acc {
	mmsb_range_fn fn; /* the caller's callback */
	void *arg;	  /* its argument */
	uint64_t off;	  /* pending range start */
	uint64_t len;	  /* pending range length, 0: none */
	bool stopped;	  /* fn returned nonzero */
};

static void acc_flush(struct range_acc *a)
{
	if (a->len && !a->stopped && a->fn(a->arg, a->off, a->len))
		a->stopped = true;
	a->len = 0;
}

static void acc_add(struct range_acc *a, uint64_t off, uint64_t len)
{
	if (a->len && a->off + a->len == off) {
		a->len += len;
		return;
	}
	acc_flush(a);
	a->off = off;
	a->len = len;
}

/* RUNS decoder (layout at the RUNS encoder).  A body is valid iff:
 *   (1) every uvarint is well formed (get_uvarint) and n_runs >= 1;
 *   (2) each run has len >= 1 and ends at or before size, without overflow;
 *   (3) each run's bytes lie inside the body;
 *   (4) the body ends exactly after the last run (no trailing bytes).
 * page != NULL: copy each run there as it is decoded, so an invalid body may
 * leave earlier runs written.  acc != NULL: report ranges, stop when fn asks.
 * *covered gets the bytes covered.  Returns 0 or -EUCLEAN. */
static int runs_walk(uint8_t *page, uint64_t size, const uint8_t *body, size_t len, uint64_t *covered,
		     struct range_acc *acc)
{
	const uint8_t *p = body, *end = body + len;
	uint64_t n_runs, pos = 0, total = 0, k, gap, n;

	if (get_uvarint(&p, end, &n_runs) < 0 || n_runs == 0)
		return -MMSB_ECORRUPT;
	if (n_runs > (uint64_t)(end - p) / 3) /* a run takes >= 3 bytes */
		return -MMSB_ECORRUPT;
	for (k = 0; k < n_runs; k++) {
		if (get_uvarint(&p, end, &gap) < 0 || get_uvarint(&p, end, &n) < 0)
			return -MMSB_ECORRUPT;
		/* pos <= size holds here; keep every sum below size */
		if (n == 0 || gap > size - pos || n > size - pos - gap)
			return -MMSB_ECORRUPT;
		if (n > (uint64_t)(end - p))
			return -MMSB_ECORRUPT;
		pos += gap;
		if (page)
			memcpy(page + pos, p, (size_t)n);
		if (acc) {
			acc_add(acc, pos, n);
			if (acc->stopped)
				return 0;
		}
		p += n;
		pos += n;
		total += n;
	}
	if (p != end)
		return -MMSB_ECORRUPT;
	*covered = total;
	return 0;
}

/* Bytes n < 8 of a little-endian word. */
static uint64_t get_le_tail(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static uint64_t popcount_bytes(const uint8_t *p, size_t n)
{
	uint64_t c = 0;
	size_t i = 0;

	for (; n - i >= 8; i += 8)
		c += popcount64(ld64(p + i));
	for (; i < n; i++)
		c += popcount64(p[i]);
	return c;
}

/* BITMAP decoder (layout at the BITMAP encoder).  A body is valid iff:
 *   (1) base and span are well-formed uvarints and span >= 1;
 *   (2) base + span <= size, without overflow: every covered byte < size;
 *   (3) the ceil(span/8) bitmap bytes lie inside the body;
 *   (4) bit 0 and bit span-1 are set, and no bit past span-1 is;
 *   (5) exactly popcount(bitmap) payload bytes follow (no trailing bytes).
 * All of it is checked before page is touched.  page and acc as for
 * runs_walk.  Returns 0 or -EUCLEAN. */
static int bitmap_walk(uint8_t *page, uint64_t size, const uint8_t *body, size_t len, uint64_t *covered,
		       struct range_acc *acc)
{
	const uint8_t *p = body, *end = body + len, *bm, *pl;
	uint64_t base, span, nbm, pop, j;
	unsigned last;

	if (get_uvarint(&p, end, &base) < 0 || get_uvarint(&p, end, &span) < 0)
		return -MMSB_ECORRUPT;
	if (span == 0 || base > size || span > size - base)
		return -MMSB_ECORRUPT;
	nbm = span / 8 + (span % 8 != 0);
	if (nbm > (uint64_t)(end - p))
		return -MMSB_ECORRUPT;
	bm = p;
	last = bm[(span - 1) / 8] >> ((span - 1) % 8); /* bit span-1 and above */
	if (!(bm[0] & 1) || last != 1)
		return -MMSB_ECORRUPT;
	pl = bm + nbm;
	pop = popcount_bytes(bm, (size_t)nbm);
	if (pop != (uint64_t)(end - pl))
		return -MMSB_ECORRUPT;
	*covered = pop;
	if (!page && !acc)
		return 0;

	for (j = 0; j < nbm; j += 8) {
		uint64_t w = nbm - j >= 8 ? mmsb_get_le64(bm + j) : get_le_tail(bm + j, (size_t)(nbm - j));
		uint64_t at = base + 8 * j;

		while (w) {
			unsigned t = (unsigned)__builtin_ctzll(w);

			if (page)
				page[at + t] = *pl;
			if (acc) {
				acc_add(acc, at + t, 1);
				if (acc->stopped)
					return 0;
			}
			pl++;
			w &= w - 1;
		}
	}
	return 0;
}

/* Decode body as enc against a page of size bytes; see runs_walk. */
static int delta_walk(uint8_t *page, uint64_t size, uint8_t enc, const uint8_t *body, size_t len,
		      uint64_t *covered, struct range_acc *acc)
{
	*covered = 0;
	if (enc != MMSB_ENC_RUNS && enc != MMSB_ENC_BITMAP)
		return -MMSB_ECORRUPT;
	if (len == 0)
		return 0; /* the empty delta */
	if (enc == MMSB_ENC_RUNS)
		return runs_walk(page, size, body, len, covered, acc);
	return bitmap_walk(page, size, body, len, covered, acc);
}

int mmsb_delta_check(uint64_t size, uint8_t enc, const uint8_t *body, size_t len, uint64_t *covered)
{
	uint64_t n;
	int rc = delta_walk(NULL, size, enc, body, len, &n, NULL);

	if (rc == 0 && covered)
		*covered = n;
	return rc;
}

int mmsb_delta_apply(uint8_t *page, uint64_t size, uint8_t enc, const uint8_t *body, size_t len)
{
	uint64_t covered;

	return delta_walk(page, size, enc, body, len, &covered, NULL);
}

/* The whole body is validated before fn is first called, so fn sees either
 * every range or none.  Offsets are checked only against 2^64 (no page size
 * is known here). */
int mmsb_delta_ranges(uint8_t enc, const uint8_t *body, size_t len, mmsb_range_fn fn, void *arg)
{
	struct range_acc acc = {.fn = fn, .arg = arg, .off = 0, .len = 0, .stopped = false};
	uint64_t covered;
	int rc;

	rc = delta_walk(NULL, UINT64_MAX, enc, body, len, &covered, NULL);
	if (rc == 0)
		rc = delta_walk(NULL, UINT64_MAX, enc, body, len, &covered, &acc);
	if (rc == 0)
		acc_flush(&acc);
	return rc;
}

int mmsb_delta_compare(const uint8_t *a, uint64_t alen, const uint8_t *b, uint64_t blen, mmsb_range_fn fn,
		       void *arg)
{
	size_t m = (size_t)(alen < blen ? alen : blen), i = 0, q, p;
	uint64_t top = alen < blen ? blen : alen;

	while (i < m) {
		q = scan_ne(a, b, i, m);
		if (q == m)
			break;
		p = scan_eq(a, b, q, m);
		i = p;
		if (p == m && top > m) /* runs on into the unmatched tail */
			i = (size_t)top;
		if (fn(arg, q, i - q))
			return 0;
	}
	if (top > m && i < top)
		fn(arg, m, top - m);
	return 0;
}

/* ---- LZ4 wrapping ---------------------------------------------------------------
 * Stored layout:  le32 raw_len | LZ4 block (decompresses to raw_len bytes)
 * Valid iff: at least 4 bytes; 1 <= raw_len <= max_raw (and <= LZ4's input
 * limit); the block decodes (LZ4_decompress_safe, which never reads or writes
 * out of bounds) to exactly raw_len bytes, consuming all of it.
 */

int mmsb_delta_pack(const uint8_t *body, size_t len, struct mmsb_buf *out)
{
	size_t lim, cap;
	int n, rc;

	/* Keep the stored form iff 8 * (4 + n) <= 7 * len, i.e. it saves at
	 * least len/8: 4 + n <= floor(7 * len / 8) = len - ceil(len / 8). */
	if (len > LZ4_MAX_INPUT_SIZE)
		return 0;
	lim = len - (len + 7) / 8;
	if (lim <= PACK_HDR)
		return 0;
	cap = lim - PACK_HDR; /* LZ4 gives up (returns 0) past cap */
	rc = mmsb_buf_reserve(out, PACK_HDR + cap);
	if (rc < 0)
		return rc;
	if (len >= PACK_PROBE_MIN) {
		/* a large body pays LZ4 over all of it only if its first
		 * PACK_PROBE bytes save 1/8 on their own (same rule): bulk
		 * writes of incompressible data (media, weights, ciphertext)
		 * cost 1/32 of an LZ4 pass instead of a whole one */
		n = LZ4_compress_default((const char *)body, (char *)out->p + out->len + PACK_HDR, PACK_PROBE,
					 PACK_PROBE - PACK_PROBE / 8);
		if (n <= 0)
			return 0;
	}
	n = LZ4_compress_default((const char *)body, (char *)out->p + out->len + PACK_HDR, (int)len, (int)cap);
	if (n <= 0)
		return 0;
	mmsb_put_le32(out->p + out->len, (uint32_t)len);
	out->len += PACK_HDR + (size_t)n;
	return 1;
}

int mmsb_delta_unpack(const uint8_t *stored, size_t len, size_t max_raw, struct mmsb_buf *out)
{
	uint32_t raw;
	int n, rc;

	if (len < PACK_HDR)
		return -MMSB_ECORRUPT;
	raw = mmsb_get_le32(stored);
	if (raw == 0 || raw > max_raw || raw > LZ4_MAX_INPUT_SIZE || len - PACK_HDR > INT_MAX)
		return -MMSB_ECORRUPT;
	rc = mmsb_buf_reserve(out, raw);
	if (rc < 0)
		return rc;
	n = LZ4_decompress_safe((const char *)stored + PACK_HDR, (char *)out->p + out->len, (int)(len - PACK_HDR),
				(int)raw);
	if (n < 0 || (uint32_t)n != raw)
		return -MMSB_ECORRUPT;
	out->len += raw;
	return 0;
}
