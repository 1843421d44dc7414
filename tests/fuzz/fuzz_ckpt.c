/* fuzz_ckpt.c - libFuzzer target for the checkpoint loader (ckpt.c).
 *
 * Input starting with 'M': the rest is (le32 offset, byte) pairs XORed into
 * a valid checkpoint made at start-up (so the fuzzer gets past the
 * checksums' shape quickly); any other input is used as a checkpoint file
 * as is.  Both lazy and full loads must fail cleanly or succeed, and a lazy
 * load's pages must read back or fail cleanly. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "io.h"

#define SEED 0x6d6d7362u
#define EPOCH 7

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static int dirfd_ = -1;
static uint8_t *valid;
static size_t valid_len;

static void quiet(void *arg, int level, const char *msg)
{
	(void)arg;
	(void)level;
	(void)msg;
}

static const struct mmsb_diag diag = {quiet, NULL, 7};

static struct ckpt_ctx ctx(void)
{
	struct ckpt_ctx c = {&mmsb_io_posix, &diag, dirfd_, SEED};

	return c;
}

/* A valid checkpoint of a small tree with xattrs, a symlink, two small pages
 * and a sparse one (hole, data block with zero chunks, hole), most of whose
 * blocks are references into an older checkpoint. */
static void make_valid(void)
{
	struct mmsb_buf scratch = {0};
	struct ckpt_ctx c = ctx();
	struct ckpt_table *old = NULL;
	struct ns *ns;
	uint64_t bytes;
	uint8_t page[3000];
	char name[96];
	FILE *f;
	int i, rc;

	if (ns_new(0, &ns) < 0)
		abort();
	for (i = 0; i < 5; i++) {
		struct mmsb_rec r = {.type = MMSB_FR_CREATE, .epoch = 1, .node = (uint64_t)i + 2};
		static const char *const names[] = {"d", "p", "q", "l", "s"};

		r.u.create.parent = i == 2 ? 2 : 1;
		r.u.create.ntype = i == 0 ? MMSB_T_DIR : i == 3 ? MMSB_T_SYMLINK : MMSB_T_PAGE;
		r.u.create.name = names[i];
		r.u.create.name_len = 1;
		r.u.create.target = i == 3 ? "target" : NULL;
		r.u.create.target_len = i == 3 ? 6 : 0;
		if (ns_apply(ns, &r, &scratch) < 0)
			abort();
	}
	for (i = 0; i < (int)sizeof(page); i++)
		page[i] = (uint8_t)(i % 7 ? i : 0);
	if (ns_page_reserve(ns_get(ns, 3), sizeof(page), NULL) < 0 || ns_xattr_set(ns_get(ns, 3), "user.a", 6, "v", 1) < 0)
		abort();
	memcpy(ns_get(ns, 3)->data->data, page, sizeof(page));
	ns_get(ns, 3)->size = sizeof(page);
	if (ns_page_truncate(ns_get(ns, 6), (3u << 20) + 100, NULL) < 0 ||
	    ns_page_write(ns_get(ns, 6), (3u << 19) + 5, page, sizeof(page), NULL) < 0)
		abort();
	/* an older checkpoint, then one that refers to its unchanged blocks:
	 * the fuzzed file is the newer one, so its references are parsed too */
	rc = mmsb_ckpt_write(&c, ns, EPOCH - 4, 0, NULL, NULL, &bytes, &old);
	ns_get(ns, 3)->epoch = 2;
	if (rc == 0)
		rc = ns_page_write(ns_get(ns, 3), 10, "changed", 7, NULL);
	if (rc == 0)
		rc = mmsb_ckpt_write(&c, ns, EPOCH, 0, old, NULL, &bytes, NULL);
	mmsb_ckpt_table_put(old);
	if (rc < 0) {
		fprintf(stderr, "fuzz_ckpt: cannot write the seed checkpoint: %s\n", strerror(-rc));
		abort();
	}
	ns_free(ns);
	mmsb_buf_free(&scratch);
	snprintf(name, sizeof(name), "%s/%016x.ckpt", dir, EPOCH);
	f = fopen(name, "rb");
	valid = malloc(bytes);
	if (!f || !valid || fread(valid, 1, bytes, f) != bytes) {
		fprintf(stderr, "fuzz_ckpt: cannot read back %s (%llu bytes)\n", name, (unsigned long long)bytes);
		abort();
	}
	valid_len = bytes;
	fclose(f);
}

static void load_both(void)
{
	struct ckpt_ctx c = ctx();
	struct ckpt_table *t = NULL;
	struct ns *ns;
	size_t i;

	if (mmsb_ckpt_load(&c, EPOCH, false, &ns, NULL, NULL) == 0)
		ns_free(ns);
	if (mmsb_ckpt_load(&c, EPOCH, true, &ns, NULL, &t) == 0) {
		for (i = 0; i < ns->ids_cap; i++) {
			struct ns_node *n = ns->ids[i];
			struct pbuf *pb = NULL;

			if (n && n->type == MMSB_T_PAGE && !n->loaded && mmsb_ckpt_read_page(&c, t, n, &pb) == 0)
				pbuf_put(pb);
		}
		ns_free(ns);
		mmsb_ckpt_table_put(t);
	}
}

static void cleanup(void)
{
	char name[96];

	snprintf(name, sizeof(name), "%s/%016x.ckpt", dir, EPOCH);
	unlink(name);
	snprintf(name, sizeof(name), "%s/%016x.ckpt", dir, EPOCH - 4);
	unlink(name);
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[96];
	uint8_t *file = NULL;
	size_t len = size, i;
	FILE *f;

	if (dirfd_ < 0) {
		strcpy(dir, "/tmp/mmsb-fuzz-ckpt-XXXXXX");
		if (!mkdtemp(dir))
			abort();
		dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
		atexit(cleanup);
		make_valid();
	}
	if (size && data[0] == 'M') {
		file = malloc(valid_len);
		memcpy(file, valid, valid_len);
		for (i = 1; i + 5 <= size; i += 5) {
			uint32_t off = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 | (uint32_t)data[i + 2] << 16 |
				       (uint32_t)data[i + 3] << 24;

			file[off % valid_len] ^= data[i + 4];
		}
		len = valid_len;
	}
	snprintf(name, sizeof(name), "%s/%016x.ckpt", dir, EPOCH);
	f = fopen(name, "wb");
	if (!f || (len && fwrite(file ? file : data, 1, len, f) != len))
		abort();
	fclose(f);
	free(file);
	load_both();
	return 0;
}
