/* delta.h - byte-level deltas: diff, encode, validate, apply.
 *
 * A delta records only the bytes of a page that changed, with their offsets.
 * Two encodings (normative text: mmsb(5), DELTA ENCODING); the encoder picks
 * the smaller one:
 *
 *   MMSB_ENC_RUNS    uvarint n_runs, then n_runs x { uvarint gap, uvarint len,
 *                    len bytes }.  The first gap is the absolute offset of the
 *                    first run; each later gap counts from the end of the
 *                    previous run.  len >= 1.  Cheap for a few clustered runs.
 *   MMSB_ENC_BITMAP  uvarint base, uvarint span, ceil(span/8) bitmap bytes
 *                    (bit i%8 of byte i/8 set <=> byte base+i changed, LSB
 *                    first, bits past span zero, span >= 1, first and last
 *                    bits set), then one byte per set bit, in order.  Cheap
 *                    for scattered single-byte changes.
 *
 * uvarint is LEB128 (7 bits per byte, low first, at most 10 bytes).  Every
 * covered byte lies below the page size recorded in the WRITE frame.
 *
 * What this module does not do: it does not own page memory, allocate on the
 * apply path, or know about frames (rec.c wraps bodies in WRITE frames).
 * mmsb_delta_apply is protected against malformed input: it never writes
 * outside page[0..size) and returns -EUCLEAN for anything invalid.
 */
#ifndef MMSB_DELTA_H
#define MMSB_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum mmsb_enc {
	MMSB_ENC_RUNS = 1,
	MMSB_ENC_BITMAP = 2,
};

struct mmsb_delta_info {
	uint8_t enc;	  /* OUT: MMSB_ENC_* chosen */
	uint64_t changed; /* OUT: bytes that differ */
	uint64_t lo, hi;  /* OUT: changed bytes lie in [lo, hi) */
};

/* Diff writing src[0..len) at offset off over the page cur[0..cur_size):
 * bytes at or beyond cur_size compare against zero (the page is extended with
 * zeros first).  Appends the encoded delta to out and fills *info.  When no
 * byte differs, appends nothing and sets info->changed = 0.
 * Returns 0 or -ENOMEM. */
int mmsb_delta_diff(const uint8_t *cur, uint64_t cur_size, uint64_t off, const uint8_t *src, size_t len,
		    struct mmsb_buf *out, struct mmsb_delta_info *info);

/* The same, given only the page's bytes the write covers: old[0..old_len)
 * are the current bytes at [off, off + old_len) (old_len < len when the
 * write runs past the end of the page).  For pages whose bytes are not
 * directly addressable (GPU pages: the caller copies that window out). */
int mmsb_delta_diff_window(const uint8_t *old, size_t old_len, uint64_t off, const uint8_t *src, size_t len,
			   struct mmsb_buf *out, struct mmsb_delta_info *info);

/* Validate an encoded delta against a page of `size` bytes without applying
 * it.  *covered (may be NULL) gets the number of bytes it covers (runs may
 * include a few unchanged bytes, so covered >= the bytes that changed).
 * Returns 0 or -EUCLEAN (malformed, or a byte at or past size). */
int mmsb_delta_check(uint64_t size, uint8_t enc, const uint8_t *body, size_t len, uint64_t *covered);

/* Apply an encoded delta to page[0..size).  Returns 0 or -EUCLEAN; on
 * -EUCLEAN the page may be partly written (callers validate first with
 * mmsb_delta_check where that matters). */
int mmsb_delta_apply(uint8_t *page, uint64_t size, uint8_t enc, const uint8_t *body, size_t len);

/* Call fn for each maximal range of bytes the delta covers, in order.
 * fn returns nonzero to stop.  Returns 0 or -EUCLEAN. */
typedef int (*mmsb_range_fn)(void *arg, uint64_t off, uint64_t len);
int mmsb_delta_ranges(uint8_t enc, const uint8_t *body, size_t len, mmsb_range_fn fn, void *arg);

/* Call fn for each maximal range where a[0..alen) and b[0..blen) differ;
 * past the end of the shorter one every byte counts as different.  fn returns
 * nonzero to stop.  Returns 0. */
int mmsb_delta_compare(const uint8_t *a, uint64_t alen, const uint8_t *b, uint64_t blen, mmsb_range_fn fn,
		       void *arg);

/* LZ4 wrapping of an encoded body: appends le32 raw_len then an LZ4 block
 * to out and returns 1 if that saves at least 1/8 of len, else appends
 * nothing and returns 0.  A body of 256 KiB or more is compressed only if its
 * first 32 KiB alone save 1/8 (else 0 at once: incompressible bulk data
 * costs a small fraction of an LZ4 pass).  -ENOMEM. */
int mmsb_delta_pack(const uint8_t *body, size_t len, struct mmsb_buf *out);
/* Undo mmsb_delta_pack: appends the raw body to out.  -EUCLEAN if the stored
 * bytes are malformed or raw_len exceeds max_raw; -ENOMEM. */
int mmsb_delta_unpack(const uint8_t *stored, size_t len, size_t max_raw, struct mmsb_buf *out);

#endif
