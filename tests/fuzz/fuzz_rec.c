/* fuzz_rec.c - libFuzzer target for the log frame decoder (rec.c) and the
 * meaning of records (ns.c).  Arbitrary bytes are decoded; a valid frame
 * must re-encode to the same bytes, and applying it to a small tree must
 * either succeed or fail cleanly, never crash. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ns.h"
#include "rec.h"

#define SEED 0x6d6d7362u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed small tree: root, dir "d" (2), page "p" (3), symlink "l" (4), fifo
 * "f" (5), and "d/q", a second name of p (LINK and MKNOD records). */
static struct ns *tree(void)
{
	static const struct {
		uint8_t type;
		uint64_t parent;
		const char *name;
	} nodes[] = {{MMSB_T_DIR, 1, "d"}, {MMSB_T_PAGE, 1, "p"}, {MMSB_T_SYMLINK, 2, "l"}};
	struct mmsb_buf scratch = {0};
	struct ns *ns;
	uint64_t i;

	if (ns_new(0, &ns) < 0)
		abort();
	for (i = 0; i < 3; i++) {
		struct mmsb_rec r = {.type = MMSB_FR_CREATE, .epoch = 1, .node = i + 2};

		r.u.create.parent = nodes[i].parent;
		r.u.create.ntype = nodes[i].type;
		r.u.create.name = nodes[i].name;
		r.u.create.name_len = 1;
		r.u.create.mode = 0644;
		r.u.create.target = nodes[i].type == MMSB_T_SYMLINK ? "x" : NULL;
		r.u.create.target_len = nodes[i].type == MMSB_T_SYMLINK ? 1 : 0;
		if (ns_apply(ns, &r, &scratch) < 0)
			abort();
	}
	{
		struct mmsb_rec m = {.type = MMSB_FR_MKNOD, .epoch = 1, .node = 5};
		struct mmsb_rec l = {.type = MMSB_FR_LINK, .epoch = 1, .node = 3};

		m.u.create.parent = 1;
		m.u.create.ntype = MMSB_T_FIFO;
		m.u.create.name = "f";
		m.u.create.name_len = 1;
		l.u.unlink.parent = 2;
		l.u.unlink.name = "q";
		l.u.unlink.name_len = 1;
		if (ns_apply(ns, &m, &scratch) < 0 || ns_apply(ns, &l, &scratch) < 0)
			abort();
	}
	mmsb_buf_free(&scratch);
	return ns;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mmsb_buf re = {0}, scratch = {0};
	struct mmsb_rec r;
	int64_t flen = mmsb_rec_decode(data, size, SEED, &r, NULL);
	struct ns *ns;

	if (flen < 0)
		return 0;
	assert((uint64_t)flen <= size && flen % 8 == 0);
	if (mmsb_rec_encode(&r, SEED, &re) != flen || memcmp(re.p, data, (size_t)flen) != 0)
		abort(); /* decode and encode must be inverses on valid frames */
	mmsb_buf_free(&re);
	if (r.type != MMSB_FR_COMMIT) {
		ns = tree();
		ns_apply(ns, &r, &scratch);
		ns_free(ns);
	}
	mmsb_buf_free(&scratch);
	return 0;
}
