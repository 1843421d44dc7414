/* fuzz_delta.c - libFuzzer target for the delta decoders (delta.c).
 *
 * Input: byte 0 picks the encoding (low 2 bits: 0 and 3 are unknown
 * encodings, which must be rejected), bytes 1-2 the page size (le16, so
 * pages stay below 64 KiB), and the rest is the body.  For each input:
 *   - mmsb_delta_check and mmsb_delta_apply must agree (0 or -EUCLEAN);
 *   - apply must not write outside the page (guard bytes on both sides) and,
 *     when valid, must touch only the ranges mmsb_delta_ranges reports, whose
 *     total is check's count;
 *   - diff(before, after) applied to before must give after again;
 *   - mmsb_delta_unpack on the same bytes must return 0 or -EUCLEAN, and a
 *     body that pack keeps must unpack to itself.
 * Build: clang -fsanitize=fuzzer,address,undefined -Isrc src/delta.c
 *        tests/fuzz/fuzz_delta.c -llz4
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delta.h"
#include "err.h"
#include "format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define GUARD 32
#define GUARD_BYTE 0xa5
#define FILL_BYTE 0x3c
#define MAX_RAW (1u << 16)

static void require(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_delta: %s\n", what);
		abort();
	}
}

struct seen {
	uint64_t next;	/* ranges must come sorted and non-touching */
	uint64_t total; /* bytes covered */
	uint64_t size;	/* page size: ranges stay below it */
	uint8_t *mark;	/* size bytes: 1 where a range covers */
};

static int on_range(void *arg, uint64_t off, uint64_t len)
{
	struct seen *s = arg;

	require(len >= 1, "empty range");
	require(off >= s->next, "ranges out of order or touching");
	require(off < s->size && len <= s->size - off, "range past the page");
	memset(s->mark + off, 1, (size_t)len);
	s->next = off + len + 1;
	s->total += len;
	return 0;
}

static void fuzz_apply(uint8_t enc, size_t psize, const uint8_t *body, size_t len)
{
	uint8_t *mem = malloc(psize + 2 * GUARD), *page = mem + GUARD, *mark = calloc(psize + 1, 1);
	struct seen s = {.next = 0, .total = 0, .size = psize, .mark = mark};
	struct mmsb_buf out = {0};
	struct mmsb_delta_info info;
	uint64_t changed = UINT64_MAX;
	int rc1, rc2;
	size_t i;

	require(mem && mark, "out of memory");
	memset(mem, GUARD_BYTE, psize + 2 * GUARD);
	memset(page, FILL_BYTE, psize);
	rc1 = mmsb_delta_check(psize, enc, body, len, &changed);
	rc2 = mmsb_delta_apply(page, psize, enc, body, len);
	require(rc1 == 0 || rc1 == -MMSB_ECORRUPT, "check: unexpected return");
	require(rc1 == rc2, "check and apply disagree");
	for (i = 0; i < GUARD; i++)
		require(mem[i] == GUARD_BYTE && page[psize + i] == GUARD_BYTE, "apply wrote out of bounds");
	if (rc1 == 0) {
		require(mmsb_delta_ranges(enc, body, len, on_range, &s) == 0, "ranges rejects a valid body");
		require(s.total == changed, "ranges and check disagree on the count");
		for (i = 0; i < psize; i++)
			require(mark[i] || page[i] == FILL_BYTE, "apply wrote outside its ranges");

		/* re-encode the change apply made: must round-trip */
		memset(mark, FILL_BYTE, psize);
		require(mmsb_delta_diff(mark, psize, 0, page, psize, &out, &info) == 0, "diff failed");
		require(info.changed <= changed, "diff found more changes than applied");
		require(mmsb_delta_apply(mark, psize, info.enc, out.p, out.len) == 0, "own diff rejected");
		require(psize == 0 || memcmp(mark, page, psize) == 0, "diff/apply round trip differs");
	}
	mmsb_buf_free(&out);
	free(mark);
	free(mem);
}

static void fuzz_unpack(const uint8_t *data, size_t len)
{
	struct mmsb_buf out = {0}, back = {0};
	int rc;

	rc = mmsb_delta_unpack(data, len, MAX_RAW, &out);
	require(rc == 0 || rc == -MMSB_ECORRUPT, "unpack: unexpected return");
	if (rc == 0)
		require(len >= 4 && out.len == mmsb_get_le32(data) && out.len <= MAX_RAW, "unpack: wrong length");
	mmsb_buf_free(&out);

	rc = mmsb_delta_pack(data, len, &out);
	require(rc == 0 || rc == 1, "pack: unexpected return");
	if (rc == 1) {
		require(out.len * 8 <= len * 7, "pack kept a form that saves less than 1/8");
		require(mmsb_delta_unpack(out.p, out.len, len, &back) == 0, "unpack rejects pack's output");
		require(back.len == len && memcmp(back.p, data, len) == 0, "pack/unpack round trip differs");
	} else {
		require(out.len == 0, "pack appended without keeping");
	}
	mmsb_buf_free(&out);
	mmsb_buf_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t enc;
	size_t psize;

	if (size < 3)
		return 0;
	enc = data[0] & 3; /* 1 RUNS, 2 BITMAP, 0 and 3 unknown */
	psize = mmsb_get_le16(data + 1);
	fuzz_apply(enc, psize, data + 3, size - 3);
	fuzz_unpack(data + 3, size - 3);
	return 0;
}
