/* test_ckpt.c - incremental checkpoints (ckpt.c, mmsb(5) CHECKPOINT).
 *
 * A checkpoint writes the blocks that changed since the previous one and
 * refers to the others: a chain of checkpoints with random changes loads
 * back (fully, lazily through views, and after a reopen) as the model had
 * it at each; a small change writes a small file; compaction never removes
 * a file a retained checkpoint refers to and does remove it once none
 * does; a damaged shared block damages every checkpoint that refers to it
 * (verify says so, views fall back or fail with EBADMSG as for a damaged
 * block of their own file); the files one
 * checkpoint refers to stay bounded; a half-written checkpoint is ignored;
 * a store of format 1.2 (full-image checkpoint, hole block) still loads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "fx.h"
#include "golden_ckpt12.h"
#include "store_int.h"
#include "sum.h"

#define MiB (1u << 20)
#define N_PAGES 6
#define N_ROUNDS 12

static uint64_t rnd_state = 0x243F6A8885A308D3ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rnd() >> 24);
}

/* The options of every store here: checkpoints only when asked. */
static int setup(void **state)
{
	struct fx *fx;
	int rc = fx_setup(state);

	fx = *state;
	fx->o.ckpt_log_bytes = 0;
	fx->o.ckpt_at_close = false;
	fx_reopen(fx);
	return rc;
}

static void truncate_to(struct fx *fx, uint64_t id, uint64_t size)
{
	struct mmsb_txn *t;

	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_truncate(t, id, size), 0);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
}

static void unlink_page(struct fx *fx, const char *name)
{
	struct mmsb_txn *t;

	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_unlink(t, MMSB_ROOT_ID, name), 0);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
}

static uint64_t checkpoint(struct fx *fx, uint64_t *written)
{
	struct mmsb_stats s;
	uint64_t e = 0;

	assert_int_equal(mmsb_checkpoint(fx->st, &e), 0);
	mmsb_store_stats(fx->st, &s);
	if (written)
		*written = s.ckpt_write_bytes;
	return e;
}

static bool file_exists(const struct fx *fx, uint64_t epoch)
{
	char path[128];
	struct stat stt;

	snprintf(path, sizeof(path), "%s/ckpt/%016" PRIx64 ".ckpt", fx->dir, epoch);
	return stat(path, &stt) == 0;
}

static unsigned count_files(const struct fx *fx)
{
	unsigned n = 0;

	for (uint64_t e = 1; e <= mmsb_store_head(fx->st); e++)
		n += file_exists(fx, e);
	return n;
}

/* Bytes of the checkpoint files on disk, and what the store counts. */
static void expect_ckpt_bytes(const struct fx *fx)
{
	uint64_t disk = 0;
	struct mmsb_stats s;

	for (uint64_t e = 1; e <= mmsb_store_head(fx->st); e++) {
		char path[128];
		struct stat stt;

		snprintf(path, sizeof(path), "%s/ckpt/%016" PRIx64 ".ckpt", fx->dir, e);
		if (stat(path, &stt) == 0)
			disk += (uint64_t)stt.st_size;
	}
	mmsb_store_stats(fx->st, &s);
	assert_int_equal(s.ckpt_bytes, disk); /* a file kept for its blocks counts too */
}

/* XOR byte `at` of checkpoint file `epoch`. */
static void flip(const struct fx *fx, uint64_t epoch, uint64_t at)
{
	char path[128];
	uint8_t b;
	int fd;

	snprintf(path, sizeof(path), "%s/ckpt/%016" PRIx64 ".ckpt", fx->dir, epoch);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)at), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)at), 1);
	close(fd);
}

/* ---- a chain of checkpoints with random changes ------------------------------------ */

struct page_state {
	uint64_t size, hash; /* at one checkpoint; size UINT64_MAX: absent */
};

struct chain {
	uint64_t ids[N_PAGES];
	uint8_t *bytes[N_PAGES]; /* the model: each page's bytes now (NULL: absent) */
	uint64_t size[N_PAGES];
	uint64_t cap[N_PAGES];
	uint64_t epochs[N_ROUNDS];
	struct page_state at[N_ROUNDS][N_PAGES];
};

static void model_write(struct chain *m, unsigned p, uint64_t off, const uint8_t *src, size_t len)
{
	if (off + len > m->cap[p]) {
		m->cap[p] = off + len;
		m->bytes[p] = realloc(m->bytes[p], m->cap[p]);
		assert_non_null(m->bytes[p]);
	}
	if (!len)
		return;
	if (off > m->size[p])
		memset(m->bytes[p] + m->size[p], 0, off - m->size[p]);
	memcpy(m->bytes[p] + off, src, len);
	if (off + len > m->size[p])
		m->size[p] = off + len;
}

static void model_truncate(struct chain *m, unsigned p, uint64_t size)
{
	if (size > m->size[p]) {
		uint8_t *z = calloc(1, size - m->size[p]);

		assert_non_null(z);
		model_write(m, p, m->size[p], z, size - m->size[p]);
		free(z);
	}
	m->size[p] = size;
}

static uint64_t hash_of(const uint8_t *p, uint64_t n)
{
	return XXH3_64bits(p, n);
}

/* Every page of checkpoint round r read back from a full load (through
 * the library's checkpoint reader) and from a view of its epoch. */
static void check_round(struct fx *fx, const struct chain *m, unsigned r)
{
	struct ckpt_ctx c = store_ckpt_ctx(fx->st);
	struct mmsb_snap *sn;
	struct ns *ns;
	uint8_t *buf = malloc(8 * MiB);

	assert_non_null(buf);
	assert_int_equal(mmsb_ckpt_load(&c, m->epochs[r], false, &ns, NULL, NULL), 0);
	assert_int_equal(mmsb_snap_open(fx->st, m->epochs[r], &sn), 0);
	for (unsigned p = 0; p < N_PAGES; p++) {
		const struct page_state *want = &m->at[r][p];
		struct ns_node *n = ns_get(ns, m->ids[p]);
		ssize_t got;

		if (want->size == UINT64_MAX) {
			assert_null(n);
			continue;
		}
		assert_non_null(n);
		assert_int_equal(n->size, want->size);
		if (want->size)
			assert_true(hash_of(n->data->data, n->size) == want->hash);
		assert_true(want->size <= 8 * MiB);
		got = mmsb_snap_read(sn, m->ids[p], 0, buf, 8 * MiB);
		assert_int_equal(got, (ssize_t)want->size);
		assert_true(hash_of(buf, want->size) == want->hash);
	}
	mmsb_snap_close(sn);
	ns_free(ns);
	free(buf);
}

/* Random changes between checkpoints; every checkpoint loads as the model
 * had it, before and after a reopen; an unchanged round and a one-byte
 * round write next to nothing. */
static void chain_random_changes(void **state)
{
	struct fx *fx = *state;
	struct chain *m = calloc(1, sizeof(*m));
	uint8_t *buf = malloc(8 * MiB);
	uint64_t full = 0, written;

	assert_true(m && buf);
	for (unsigned p = 0; p < N_PAGES; p++) {
		char name[16];
		uint64_t len = p == 0 ? 0 : p == 1 ? 100 : (uint64_t)p * MiB + rnd() % MiB;

		snprintf(name, sizeof(name), "p%u", p);
		fill_random(buf, len);
		m->ids[p] = fx_page(fx, name, buf, len);
		model_write(m, p, 0, buf, len);
	}
	for (unsigned r = 0; r < N_ROUNDS; r++) {
		/* page 5 changes only in round 9; rounds 3 and 9 change nothing else */
		unsigned ops = r == 3 || r == 9 ? 0 : 1 + (unsigned)(rnd() % 4);

		for (unsigned k = 0; k < ops; k++) {
			unsigned p = 1 + (unsigned)(rnd() % (N_PAGES - 2));
			uint64_t off, len = 1 + rnd() % (300u << 10);

			if (m->size[p] == UINT64_MAX)
				continue;
			off = m->size[p] ? rnd() % (m->size[p] + 4096) : 0;
			switch (rnd() % 5) {
			case 0: /* zeros: a hole where a block was */
				memset(buf, 0, len);
				break;
			case 1:
				truncate_to(fx, m->ids[p], off);
				model_truncate(m, p, off);
				continue;
			default:
				fill_random(buf, len);
			}
			if (off + len > 7 * MiB)
				continue;
			fx_write(fx, m->ids[p], off, buf, len);
			model_write(m, p, off, buf, len);
		}
		if (r == 3) /* an epoch that changes no page */
			assert_int_equal(fx_setx(fx, MMSB_ROOT_ID, "user.round", "3"), 0);
		if (r == 6) { /* a page goes */
			unlink_page(fx, "p2");
			m->size[2] = UINT64_MAX;
			free(m->bytes[2]);
			m->bytes[2] = NULL;
		}
		if (r == 10 && m->size[4] != UINT64_MAX && m->size[4] > 2 * MiB) {
			/* shrink into a block and grow back: the block reads zeros
			 * past the cut though the page has its old size again */
			uint64_t was = m->size[4];

			truncate_to(fx, m->ids[4], was - MiB - MiB / 2);
			model_truncate(m, 4, was - MiB - MiB / 2);
			truncate_to(fx, m->ids[4], was);
			model_truncate(m, 4, was);
		}
		if (r == 9) { /* one byte of the largest page */
			buf[0] = (uint8_t)~m->bytes[5][MiB + 7];
			fx_write(fx, m->ids[5], MiB + 7, buf, 1);
			model_write(m, 5, MiB + 7, buf, 1);
		}
		m->epochs[r] = checkpoint(fx, &written);
		for (unsigned p = 0; p < N_PAGES; p++) {
			m->at[r][p].size = m->size[p];
			m->at[r][p].hash = m->size[p] == UINT64_MAX ? 0 : hash_of(m->bytes[p], m->size[p]);
		}
		if (r == 0)
			full = written;
		print_message("round %u: %" PRIu64 " bytes\n", r, written);
		if (r == 3) /* nothing changed: the node table only */
			assert_true(written < 8192);
		if (r == 9) /* one block rewritten, the rest referred to */
			assert_true(written < MiB + 65536 && written < full / 8);
		check_round(fx, m, r);
	}
	fx_reopen(fx); /* tables from disk; the head from the newest */
	for (unsigned r = 0; r < N_ROUNDS; r++)
		check_round(fx, m, r);
	for (unsigned p = 0; p < N_PAGES; p++) {
		if (m->size[p] == UINT64_MAX)
			continue;
		assert_int_equal(mmsb_read(fx->st, m->ids[p], 0, buf, 4 * MiB), (ssize_t)(m->size[p] < 4 * MiB ? m->size[p] : 4 * MiB));
		assert_memory_equal(buf, m->bytes[p], m->size[p] < 4 * MiB ? m->size[p] : 4 * MiB);
	}
	assert_int_equal(mmsb_store_verify(fx->st), 0);
	for (unsigned p = 0; p < N_PAGES; p++)
		free(m->bytes[p]);
	free(m);
	free(buf);
}

/* ---- compaction ---------------------------------------------------------------------- */

/* Compacting to a checkpoint keeps the older files it refers to (and
 * everything stays readable and verifies); once a later checkpoint refers
 * to none of them, compaction removes them. */
static void compaction_keeps_referenced_files(void **state)
{
	struct fx *fx = *state;
	uint8_t *buf = malloc(4 * MiB), one = 0xee;
	uint64_t id, e1, e2, e3, kept;

	assert_non_null(buf);
	fill_random(buf, 4 * MiB);
	id = fx_page(fx, "a", buf, 4 * MiB);
	e1 = checkpoint(fx, NULL);
	fx_write(fx, id, 10, &one, 1);
	buf[10] = one;
	e2 = checkpoint(fx, NULL);
	assert_non_null(fx->st->ck_tab);
	assert_int_equal(fx->st->ck_tab->n_files, 2); /* blocks 1-3 still in e1's file */
	assert_int_equal(mmsb_compact(fx->st, e2, 0, &kept), 0);
	assert_int_equal(kept, e2);
	assert_true(file_exists(fx, e1));
	assert_true(file_exists(fx, e2));
	assert_int_equal(mmsb_checkpoints(fx->st, NULL, 0), 1); /* e1's file is not a checkpoint any more */
	expect_ckpt_bytes(fx);
	assert_int_equal(mmsb_store_verify(fx->st), 0);
	fx_reopen(fx);
	assert_int_equal(mmsb_checkpoints(fx->st, NULL, 0), 1);
	expect_ckpt_bytes(fx);
	{
		uint8_t *got = malloc(4 * MiB);

		assert_non_null(got);
		assert_int_equal(mmsb_read(fx->st, id, 0, got, 4 * MiB), (ssize_t)(4 * MiB));
		assert_memory_equal(got, buf, 4 * MiB);
		free(got);
	}
	fill_random(buf, 4 * MiB); /* every block changes */
	fx_write(fx, id, 0, buf, 4 * MiB);
	e3 = checkpoint(fx, NULL);
	assert_int_equal(fx->st->ck_tab->n_files, 1);
	assert_int_equal(mmsb_compact(fx->st, e3, 0, &kept), 0);
	assert_false(file_exists(fx, e1));
	assert_false(file_exists(fx, e2));
	assert_true(file_exists(fx, e3));
	expect_ckpt_bytes(fx);
	assert_int_equal(mmsb_store_verify(fx->st), 0);
	free(buf);
}

/* Small changes to one block after another, checkpoint after checkpoint:
 * the files one checkpoint refers to stay at most CKPT_FILES_MAX and the
 * bytes of those files within twice the page plus one checkpoint's worth;
 * after compaction to the newest, only those files are left. */
static void references_stay_bounded(void **state)
{
	struct fx *fx = *state;
	uint8_t *buf = malloc(8 * MiB), *got = malloc(8 * MiB);
	uint64_t id, e = 0, kept;

	assert_true(buf && got);
	fill_random(buf, 8 * MiB);
	id = fx_page(fx, "a", buf, 8 * MiB);
	for (unsigned r = 0; r < 40; r++) {
		uint64_t at = (rnd() % 8) * MiB + rnd() % MiB, bytes = 0;
		uint8_t v = (uint8_t)rnd();

		fx_write(fx, id, at, &v, 1);
		buf[at] = v;
		e = checkpoint(fx, NULL);
		assert_true(fx->st->ck_tab->n_files <= CKPT_FILES_MAX);
		for (uint32_t i = 0; i < fx->st->ck_tab->n_files; i++)
			bytes += fx->st->ck_tab->data_bytes[i];
		assert_true(bytes <= 2 * 8 * MiB + 2 * MiB);
	}
	assert_int_equal(mmsb_compact(fx->st, e, 0, &kept), 0);
	assert_true(count_files(fx) <= CKPT_FILES_MAX);
	fx_reopen(fx);
	assert_int_equal(mmsb_read(fx->st, id, 0, got, 8 * MiB), (ssize_t)(8 * MiB));
	assert_memory_equal(got, buf, 8 * MiB);
	assert_int_equal(mmsb_store_verify(fx->st), 0);
	free(buf);
	free(got);
}

/* ---- damage -------------------------------------------------------------------------- */

/* A block of checkpoint e1 that checkpoint e2 refers to (st->ck_tab: e2's). */
static uint64_t shared_block(const struct fx *fx, uint64_t e1)
{
	const struct ckpt_table *t = fx->st->ck_tab;

	for (uint64_t i = 0; i < t->n_refs; i++)
		if (t->refs[i].fi != UINT32_MAX && t->files[t->refs[i].fi] == e1)
			return t->refs[i].off;
	fail_msg("no block of checkpoint %" PRIu64 " is shared", e1);
	return 0;
}

static void view_reads(struct fx *fx, uint64_t e, uint64_t id, const uint8_t *want, size_t len, ssize_t expect)
{
	struct mmsb_snap *sn;
	uint8_t *got = malloc(len);
	ssize_t r;

	assert_non_null(got);
	assert_int_equal(mmsb_snap_open(fx->st, e, &sn), 0);
	r = mmsb_snap_read(sn, id, 0, got, len);
	assert_int_equal(r, expect);
	if (r >= 0)
		assert_memory_equal(got, want, len);
	mmsb_snap_close(sn);
	free(got);
}

/* A damaged block that two checkpoints share: both are damaged (verify
 * says so); with the log kept the views and the head rebuild from it; with
 * the log compacted away a view of the newer one fails (EBADMSG), never
 * with wrong bytes. */
static void damaged_shared_block(void **state)
{
	struct fx *fx = *state;
	uint8_t *buf = malloc(4 * MiB), one = 1;
	uint64_t id, e1, e2, at, kept;

	assert_non_null(buf);
	fill_random(buf, 4 * MiB);
	id = fx_page(fx, "a", buf, 4 * MiB);
	e1 = checkpoint(fx, NULL);
	fx_write(fx, id, 3, &one, 1);
	buf[3] = one;
	e2 = checkpoint(fx, NULL);
	at = shared_block(fx, e1);
	/* the stored bytes, then the header */
	for (unsigned k = 0; k < 2; k++) {
		flip(fx, e1, at + (k ? 9 : MMSB_BK_HDR_SIZE + 100));
		fx_reopen(fx); /* both checkpoints fail to load: the head from the log */
		assert_int_equal(mmsb_checkpoints(fx->st, NULL, 0), 0);
		{
			uint8_t *got = malloc(4 * MiB);

			assert_non_null(got);
			assert_int_equal(mmsb_read(fx->st, id, 0, got, 4 * MiB), (ssize_t)(4 * MiB));
			assert_memory_equal(got, buf, 4 * MiB);
			free(got);
		}
		view_reads(fx, e2, id, buf, 4 * MiB, (ssize_t)(4 * MiB));
		assert_true(mmsb_store_verify(fx->st) < 0);
		flip(fx, e1, at + (k ? 9 : MMSB_BK_HDR_SIZE + 100)); /* repaired */
		fx_reopen(fx);
		assert_int_equal(mmsb_checkpoints(fx->st, NULL, 0), 2);
		assert_int_equal(mmsb_store_verify(fx->st), 0);
	}
	/* no log before e2 left: nothing to fall back to */
	fx_write(fx, id, 5, &one, 1); /* an epoch past e2 so that e2 is not the head */
	assert_int_equal(mmsb_compact(fx->st, e2, 0, &kept), 0);
	assert_int_equal(kept, e2);
	assert_true(file_exists(fx, e1));
	flip(fx, e1, at + MMSB_BK_HDR_SIZE + 100);
	view_reads(fx, e2, id, buf, 4 * MiB, -MMSB_EBADCRC); /* as for a block of its own file */
	assert_true(mmsb_store_verify(fx->st) < 0);
	free(buf);
}

/* A referenced file that is gone: the checkpoint is damaged (verify says
 * so, the head falls back to the log). */
static void missing_referenced_file(void **state)
{
	struct fx *fx = *state;
	uint8_t *buf = malloc(2 * MiB), *got = malloc(2 * MiB), one = 7;
	uint64_t id, e1;
	char path[128];

	assert_true(buf && got);
	fill_random(buf, 2 * MiB);
	id = fx_page(fx, "a", buf, 2 * MiB);
	e1 = checkpoint(fx, NULL);
	fx_write(fx, id, 0, &one, 1);
	buf[0] = one;
	checkpoint(fx, NULL);
	assert_int_equal(fx->st->ck_tab->n_files, 2);
	snprintf(path, sizeof(path), "%s/ckpt/%016" PRIx64 ".ckpt", fx->dir, e1);
	assert_int_equal(unlink(path), 0);
	fx_reopen(fx);
	assert_int_equal(mmsb_checkpoints(fx->st, NULL, 0), 0);
	assert_int_equal(mmsb_read(fx->st, id, 0, got, 2 * MiB), (ssize_t)(2 * MiB));
	assert_memory_equal(got, buf, 2 * MiB);
	assert_true(mmsb_store_verify(fx->st) < 0);
	free(buf);
	free(got);
}

/* A checkpoint interrupted before its rename (a temporary file holding part
 * of an incremental checkpoint) is ignored and removed at open. */
static void half_written_checkpoint_ignored(void **state)
{
	struct fx *fx = *state;
	uint8_t *buf = malloc(2 * MiB), *got = malloc(2 * MiB), one = 9;
	uint64_t id, e2;
	char src[128], tmp[128], cmd[300];
	struct stat stt;

	assert_true(buf && got);
	fill_random(buf, 2 * MiB);
	id = fx_page(fx, "a", buf, 2 * MiB);
	checkpoint(fx, NULL);
	fx_write(fx, id, 0, &one, 1);
	buf[0] = one;
	e2 = checkpoint(fx, NULL);
	fx_write(fx, id, 1, &one, 1);
	buf[1] = one;
	/* what a crash in the middle of checkpoint e2 + 1 leaves: a prefix */
	snprintf(src, sizeof(src), "%s/ckpt/%016" PRIx64 ".ckpt", fx->dir, e2);
	snprintf(tmp, sizeof(tmp), "%s/ckpt/.tmp-%016" PRIx64, fx->dir, e2 + 1);
	assert_int_equal(stat(src, &stt), 0);
	snprintf(cmd, sizeof(cmd), "head -c %lld %s > %s", (long long)stt.st_size / 2, src, tmp);
	assert_int_equal(system(cmd), 0);
	fx_reopen(fx);
	assert_int_equal(stat(tmp, &stt), -1);
	assert_int_equal(mmsb_checkpoints(fx->st, NULL, 0), 2);
	assert_int_equal(mmsb_read(fx->st, id, 0, got, 2 * MiB), (ssize_t)(2 * MiB));
	assert_memory_equal(got, buf, 2 * MiB);
	assert_int_equal(mmsb_store_verify(fx->st), 0);
	free(buf);
	free(got);
}

/* ---- format 1.2 ------------------------------------------------------------------------ */

static void put_file(const char *dir, const char *rel, const unsigned char *p, unsigned len)
{
	char path[200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, len, f), len);
	fclose(f);
}

/* The golden page "a": 3 MiB, its middle MiB zero (a hole block). */
static uint8_t golden_a(size_t i)
{
	return (i >> 20) == 1 ? 0 : (uint8_t)("golden"[i % 6]);
}

/* A store written before incremental checkpoints (golden_ckpt12.h): its
 * full-image checkpoint loads for the head, for views and for verify; the
 * next checkpoint refers to none of its blocks (their hashes are unknown),
 * so compaction to it removes the old file. */
static void golden_store_loads(void **state)
{
	struct fx *fx = *state;
	uint8_t *got = malloc(3 * MiB), one = 'H';
	struct mmsb_attr a, b;
	struct mmsb_snap *sn;
	uint64_t e, kept;
	char cmd[320], lnk[16];

	assert_non_null(got);
	mmsb_store_close(fx->st);
	fx->st = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s/log %s/ckpt", fx->dir, fx->dir, fx->dir);
	assert_int_equal(system(cmd), 0);
	put_file(fx->dir, "mmsb.super", gold_mmsb_super, gold_mmsb_super_len);
	put_file(fx->dir, "log/0000000000000001.log", gold_log_0000000000000001_log, gold_log_0000000000000001_log_len);
	put_file(fx->dir, "ckpt/0000000000000001.ckpt", gold_ckpt_0000000000000001_ckpt,
		 gold_ckpt_0000000000000001_ckpt_len);
	put_file(fx->dir, "compacted", gold_compacted, gold_compacted_len);
	fx->o.create = false;
	fx_reopen(fx);
	assert_int_equal(mmsb_checkpoints(fx->st, NULL, 0), 1); /* loaded, not dropped as damaged */
	assert_int_equal(mmsb_store_head(fx->st), 1);
	assert_int_equal(mmsb_resolve(fx->st, "a", &a), 0);
	assert_int_equal(mmsb_read(fx->st, a.id, 0, got, 3 * MiB), (ssize_t)(3 * MiB));
	for (size_t i = 0; i < 3 * MiB; i++)
		if (got[i] != golden_a(i))
			fail_msg("page a byte %zu", i);
	assert_int_equal(mmsb_resolve(fx->st, "d/b", &b), 0);
	assert_int_equal(mmsb_read(fx->st, b.id, 0, got, 64), 17);
	assert_memory_equal(got, "hello, format 1.2", 17);
	assert_int_equal(mmsb_resolve(fx->st, "d/l", &b), 0);
	assert_int_equal(mmsb_readlink(fx->st, b.id, lnk, sizeof(lnk)), 4);
	assert_int_equal(mmsb_store_verify(fx->st), 0);
	/* a view of epoch 1 reads the old file's blocks lazily */
	fx_write(fx, a.id, 0, &one, 1);
	assert_int_equal(mmsb_snap_open(fx->st, 1, &sn), 0);
	assert_int_equal(mmsb_snap_read(sn, a.id, 0, got, 3 * MiB), (ssize_t)(3 * MiB));
	for (size_t i = 0; i < 3 * MiB; i++)
		if (got[i] != golden_a(i))
			fail_msg("epoch 1: page a byte %zu", i);
	mmsb_snap_close(sn);
	/* the next checkpoint is a full one in the new format */
	e = checkpoint(fx, NULL);
	assert_int_equal(fx->st->ck_tab->n_files, 1);
	assert_int_equal(fx->st->ck_tab->files[0], e);
	assert_int_equal(mmsb_compact(fx->st, e, 0, &kept), 0);
	assert_false(file_exists(fx, 1));
	fx_reopen(fx);
	assert_int_equal(mmsb_read(fx->st, a.id, 0, got, 3 * MiB), (ssize_t)(3 * MiB));
	assert_int_equal(got[0], one);
	for (size_t i = 1; i < 3 * MiB; i++)
		if (got[i] != golden_a(i))
			fail_msg("after the new checkpoint: page a byte %zu", i);
	assert_int_equal(mmsb_store_verify(fx->st), 0);
	free(got);
}

int main(void)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test_setup_teardown(chain_random_changes, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(compaction_keeps_referenced_files, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(references_stay_bounded, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(damaged_shared_block, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(missing_referenced_file, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(half_written_checkpoint_ignored, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(golden_store_loads, setup, fx_teardown),
	};

	return cmocka_run_group_tests(t, NULL, NULL);
}
