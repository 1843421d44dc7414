/* ckpt.c - checkpoint files.
 *
 * CHECKPOINT FORMAT (normative text: mmsb(5))
 *
 *   header (64) | data blocks | meta blocks | trailer (48)
 *
 * Every page's bytes are cut into blocks of at most 1 MiB (the k-th block
 * holds bytes [k MiB, (k+1) MiB)), each stored LZ4-compressed when that is
 * smaller, else raw.  The meta blocks hold the file list and the node table
 * (a byte stream of entries, format.h), parents before children and
 * children in directory order, so loading rebuilds the same readdir order.
 *
 * INCREMENTAL CHECKPOINTS (minor 3, MMSB_CK_INCOMPAT_REFS).  A page's entry
 * lists its blocks as references: (file, offset, raw length, span, block
 * checksum, XXH3 of the raw bytes), or a hole (a run of zero bytes, stored
 * nowhere).  A reference may name an older checkpoint file, so a checkpoint
 * writes only the blocks that changed since the previous one:
 *
 *   - a page whose id, birth, last change epoch and size equal the previous
 *     checkpoint's takes that checkpoint's references without its bytes
 *     being touched (no hashing, no memory access);
 *   - of any other page, a block that no log record since the previous
 *     checkpoint touched (the store hands those ranges over: struct
 *     ckpt_dirty) is referred to without being read; the others are
 *     hashed, and a block whose hash and length equal the previous
 *     reference at the same position is referred to; the rest is written
 *     into the new file;
 *   - blocks whose run of zero bytes the chunk map or a scan finds become
 *     hole references.
 *
 * Each table is complete (every page lists every reference directly), so a
 * load reads one node table plus the blocks; nothing follows a chain.  What
 * bounds the older files kept alive: a writer rewrites (does not refer to)
 * the blocks of a previous file whose dead bytes (data bytes no reference
 * of the previous table uses) exceed its live ones, and of the files with
 * the fewest live bytes while more than CKPT_FILES_MAX files would be
 * named.  So at most half of a referenced file is garbage, a load opens at
 * most CKPT_FILES_MAX files, and an old file is deleted by compaction once
 * no retained checkpoint names it (mmsb_ckpt_remove_before).  The previous
 * table stays in memory (the store's), so a writer never rereads it.
 *
 * Files without MMSB_CK_INCOMPAT_REFS (format 1.0-1.2, full images: a
 * page's n_blocks blocks are contiguous from data_off, hole blocks with
 * MMSB_CK_INCOMPAT_HOLES) still load: their blocks become references of a
 * one-file table with no hash, so the first checkpoint after them rewrites
 * everything.
 *
 * HOLES.  Loading a page creates it sparse and writes only the chunks of its
 * data blocks that hold a nonzero byte (pbuf_landed), so a 16 GiB page with a
 * few bytes written is a few kilobytes on disk and in memory.
 *
 * VALIDITY.  A block is valid if and only if its magic, kind and flags are
 * known, its reserved bytes are zero, its lengths are in range and
 * XXH3-64(block header[0..16) || stored bytes, seed) matches; a reference
 * is valid if and only if its file is listed and is a complete checkpoint
 * file, the block lies in that file's data region, is valid, and its
 * checksum, raw length and span equal the reference's, and XXH3-64 of its
 * raw bytes equals the reference's hash.  The file is valid if and only if
 * the header and trailer checksums match, both name the epoch in the file
 * name, and every block and reference read on the way is valid.
 *
 * WRITE ORDER
 *
 * 1. write ckpt/.tmp-<epoch> sequentially; 2. fsync it; 3. rename it to
 * ckpt/<16 hex>.ckpt; 4. fsync the directory.  A crash leaves either no file
 * or a complete one; leftover temporary files are removed at open.  Older
 * files a new one refers to are complete, immutable, and kept (compaction
 * never removes a file a retained checkpoint names).
 *
 * What this file does not do: choose when to checkpoint, or capture the
 * state (store.c clones the head under its lock and hands the clone here).
 */
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "err.h"
#include "format.h"
#include "sum.h"

#define WBUF_BYTES (4u << 20)
#define REF_HOLE UINT32_MAX /* ckpt_ref.fi of a hole */

/* ---- tables ----------------------------------------------------------------------- */

struct ckpt_table *mmsb_ckpt_table_get(struct ckpt_table *t)
{
	if (t)
		atomic_fetch_add(&t->nref, 1);
	return t;
}

void mmsb_ckpt_table_put(struct ckpt_table *t)
{
	uint32_t i;

	if (!t || atomic_fetch_sub(&t->nref, 1) != 1)
		return;
	for (i = 0; i < t->n_files; i++)
		if (t->fds[i] >= 0)
			close(t->fds[i]);
	free(t->refs);
	free(t->pages);
	free(t);
}

static struct ckpt_table *table_new(uint64_t epoch)
{
	struct ckpt_table *t = calloc(1, sizeof(*t));
	uint32_t i;

	if (!t)
		return NULL;
	atomic_init(&t->nref, 1);
	t->epoch = epoch;
	for (i = 0; i < CKPT_FILES_MAX; i++)
		t->fds[i] = -1;
	return t;
}

static int table_add_ref(struct ckpt_table *t, const struct ckpt_ref *r)
{
	if (t->n_refs == t->cap_refs) {
		uint64_t cap = t->cap_refs ? t->cap_refs * 2 : 256;
		struct ckpt_ref *v = realloc(t->refs, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->refs = v;
		t->cap_refs = cap;
	}
	t->refs[t->n_refs++] = *r;
	return 0;
}

static int table_add_page(struct ckpt_table *t, const struct ns_node *n, uint64_t first)
{
	struct ckpt_page *p;

	if (t->n_pages == t->cap_pages) {
		uint64_t cap = t->cap_pages ? t->cap_pages * 2 : 64;
		struct ckpt_page *v = realloc(t->pages, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->pages = v;
		t->cap_pages = cap;
	}
	p = &t->pages[t->n_pages++];
	p->id = n->id;
	p->birth = n->birth;
	p->epoch = n->epoch;
	p->version = n->version;
	p->size = n->size;
	p->first = first;
	p->n = (uint32_t)(t->n_refs - first);
	return 0;
}

static int cmp_page(const void *a, const void *b)
{
	const struct ckpt_page *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static const struct ckpt_page *table_page(const struct ckpt_table *t, uint64_t id)
{
	struct ckpt_page key = {.id = id};

	return t && t->n_pages ? bsearch(&key, t->pages, t->n_pages, sizeof(key), cmp_page) : NULL;
}

/* ---- changed blocks ------------------------------------------------------------- */

int mmsb_ckpt_dirty_add(struct ckpt_dirty *d, uint64_t id, uint64_t off, uint64_t len)
{
	uint64_t from = off / MMSB_BK_RAW_MAX;
	uint64_t to = len > UINT64_MAX - off ? UINT64_MAX : (off + len - 1) / MMSB_BK_RAW_MAX + 1;
	struct ckpt_dirty_range *r = d->n ? &d->v[d->n - 1] : NULL;

	if (len == 0)
		return 0;
	if (r && r->id == id && from <= r->to && to >= r->from) { /* a delta's runs come in order: merge */
		r->from = from < r->from ? from : r->from;
		r->to = to > r->to ? to : r->to;
		return 0;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct ckpt_dirty_range *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	r = &d->v[d->n++];
	r->id = id;
	r->from = from;
	r->to = to;
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct ckpt_dirty_range *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->from < y->from ? -1 : x->from > y->from;
}

void mmsb_ckpt_dirty_finish(struct ckpt_dirty *d)
{
	if (d->n > 1)
		qsort(d->v, d->n, sizeof(*d->v), cmp_range);
}

int mmsb_ckpt_dirty_count(struct ckpt_dirty *d, uint64_t id, uint64_t n_recs)
{
	if (d->n_counts == d->cap_counts) {
		size_t cap = d->cap_counts ? d->cap_counts * 2 : 64;
		struct ckpt_dirty_count *v = realloc(d->counts, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->counts = v;
		d->cap_counts = cap;
	}
	d->counts[d->n_counts].id = id;
	d->counts[d->n_counts++].n_recs = n_recs;
	return 0;
}

void mmsb_ckpt_dirty_free(struct ckpt_dirty *d)
{
	free(d->v);
	free(d->counts);
	memset(d, 0, sizeof(*d));
}

/* Page id's byte records since the checkpoint. */
static uint64_t dirty_recs(const struct ckpt_dirty *d, uint64_t id)
{
	size_t a = 0, b = d->n_counts;

	while (a < b) {
		size_t m = a + (b - a) / 2;

		if (d->counts[m].id < id)
			a = m + 1;
		else
			b = m;
	}
	return a < d->n_counts && d->counts[a].id == id ? d->counts[a].n_recs : 0;
}

/* The ranges of page id: [*lo, *hi). */
static void dirty_of(const struct ckpt_dirty *d, uint64_t id, const struct ckpt_dirty_range **lo,
		     const struct ckpt_dirty_range **hi)
{
	size_t a = 0, b = d->n;

	while (a < b) {
		size_t m = a + (b - a) / 2;

		if (d->v[m].id < id)
			a = m + 1;
		else
			b = m;
	}
	*lo = *hi = d->v + a;
	while (*hi < d->v + d->n && (*hi)->id == id)
		(*hi)++;
}

/* May block k have changed?  Blocks are asked in increasing order; *r is a
 * cursor over the page's ranges (sorted by from). */
static bool block_dirty(const struct ckpt_dirty_range **r, const struct ckpt_dirty_range *end, uint64_t k)
{
	const struct ckpt_dirty_range *i;

	while (*r < end && (*r)->to <= k)
		(*r)++;
	for (i = *r; i < end && i->from <= k; i++) /* ranges may overlap: any that covers k */
		if (i->to > k)
			return true;
	return false;
}

/* ---- writing ---------------------------------------------------------------------- */

struct ckpt_writer {
	const struct ckpt_ctx *c;
	int fd;
	uint64_t off;	    /* file offset of wbuf[0] */
	struct mmsb_buf wb; /* pending bytes */
	uint8_t *zbuf;	    /* LZ4 output, LZ4_COMPRESSBOUND(1 MiB) */
	uint8_t *hbuf;	    /* a block of a GPU page copied out (1 MiB) */
	uint64_t n_blocks;  /* blocks written */
	const struct ckpt_table *prev; /* the previous checkpoint's table (NULL: none) */
	const struct ckpt_dirty *dirty; /* every change since prev (NULL: unknown) */
	uint32_t map[CKPT_FILES_MAX];  /* prev file index -> index in t (REF_HOLE: rewritten) */
	struct ckpt_table *t;	       /* the table being built; its last file is this one */
};

static int wr_flush(struct ckpt_writer *w)
{
	int rc = mmsb_io_pwrite_all(w->c->io, w->fd, w->wb.p, w->wb.len, (off_t)w->off);

	w->off += w->wb.len;
	w->wb.len = 0;
	return rc;
}

static int wr_put(struct ckpt_writer *w, const void *p, size_t n)
{
	int rc = mmsb_buf_put(&w->wb, p, n);

	if (rc == 0 && w->wb.len >= WBUF_BYTES)
		rc = wr_flush(w);
	return rc;
}

static uint64_t wr_pos(const struct ckpt_writer *w)
{
	return w->off + w->wb.len;
}

/*   00 magic "CKBL" | 04 kind | 05 flags | 06 zero[2] | 08 raw_len le32
 *   0c stored_len le32 | 10 sum le64 | 18 stored bytes | zero pad to 8
 * r (may be NULL) gets where the block went. */
static int wr_block(struct ckpt_writer *w, uint8_t kind, const uint8_t *raw, uint32_t len, struct ckpt_ref *r)
{
	static const uint8_t zero[8];
	uint8_t h[MMSB_BK_HDR_SIZE] = {0};
	const uint8_t *stored = raw;
	uint32_t slen = len;
	uint64_t at = wr_pos(w);
	int z = LZ4_compress_default((const char *)raw, (char *)w->zbuf, (int)len, LZ4_COMPRESSBOUND(MMSB_BK_RAW_MAX));
	int rc;

	if (z > 0 && (uint32_t)z < len) {
		stored = w->zbuf;
		slen = (uint32_t)z;
		h[MMSB_BK_OFF_FLAGS] = MMSB_BK_LZ4;
	}
	memcpy(h, MMSB_BK_MAGIC, 4);
	h[MMSB_BK_OFF_KIND] = kind;
	mmsb_put_le32(h + MMSB_BK_OFF_RAW, len);
	mmsb_put_le32(h + MMSB_BK_OFF_STORED, slen);
	mmsb_put_le64(h + MMSB_BK_OFF_SUM, mmsb_sum2(h, MMSB_BK_OFF_SUM, stored, slen, w->c->seed));
	rc = wr_put(w, h, sizeof(h));
	if (rc == 0)
		rc = wr_put(w, stored, slen);
	if (rc == 0)
		rc = wr_put(w, zero, (size_t)(mmsb_align8(slen) - slen));
	w->n_blocks++;
	if (r) {
		r->fi = w->t->n_files - 1;
		r->raw = len;
		r->span = (uint32_t)(wr_pos(w) - at);
		r->off = at;
		r->sum = mmsb_get_le64(h + MMSB_BK_OFF_SUM);
	}
	return rc;
}

/* Is block [at, at + len) of pb all zero?  The chunk map answers for the
 * chunks that never held data; the rest is scanned (p: those bytes). */
static bool block_zero(const struct pbuf *pb, uint64_t at, uint64_t len, const uint8_t *p)
{
	uint64_t c;
	bool any = !pb->dmap;

	for (c = at / PBUF_CHUNK; !any && c <= (at + len - 1) / PBUF_CHUNK; c++)
		any = c < pb->n_chunks && (pb->dmap[c / 64] >> (c % 64) & 1);
	return !any || (p[0] == 0 && memcmp(p, p + 1, (size_t)len - 1) == 0);
}

/* Add reference r (fi: an index into the table being built) to the current
 * page, merging a hole into a hole right before it (refs from `first`). */
static int wr_ref(struct ckpt_writer *w, uint64_t first, const struct ckpt_ref *r)
{
	struct ckpt_table *t = w->t;

	if (r->fi == REF_HOLE && t->n_refs > first && t->refs[t->n_refs - 1].fi == REF_HOLE &&
	    (uint64_t)t->refs[t->n_refs - 1].raw + r->raw <= MMSB_BK_HOLE_MAX) {
		t->refs[t->n_refs - 1].raw += r->raw;
		return 0;
	}
	if (r->fi != REF_HOLE)
		t->live[r->fi] += r->span;
	return table_add_ref(t, r);
}

/* The previous reference covering page byte `at`, if it is a data block of
 * length len whose bytes are known and whose file is kept.  *j and *jpos: a
 * cursor over pp's references (the index and the page byte it starts at). */
static const struct ckpt_ref *prev_block(const struct ckpt_writer *w, const struct ckpt_page *pp, uint64_t at,
					 uint64_t len, uint64_t *j, uint64_t *jpos)
{
	const struct ckpt_ref *r;

	if (!pp)
		return NULL;
	while (*j < pp->first + pp->n && *jpos + w->prev->refs[*j].raw <= at)
		*jpos += w->prev->refs[(*j)++].raw;
	if (*j >= pp->first + pp->n || *jpos != at)
		return NULL;
	r = &w->prev->refs[*j];
	return r->fi != REF_HOLE && r->raw == len && r->hashed && w->map[r->fi] != REF_HOLE ? r : NULL;
}

/* The references of page n: unchanged blocks refer to the previous
 * checkpoint, zero runs become holes, the rest is written. */
static int write_page(struct ckpt_writer *w, const struct ns_node *n, uint64_t first)
{
	const struct ckpt_page *pp = table_page(w->prev, n->id);
	const struct ckpt_dirty_range *dr = NULL, *dend = NULL;
	uint64_t done, j = 0, jpos = 0;
	bool same, known;
	int rc = 0;

	if (pp && pp->birth != n->birth)
		pp = NULL; /* ids are never reused, but be sure */
	/* unchanged since the previous checkpoint: its references, no bytes read
	 * (an orphan's bytes change without an epoch or a record) */
	same = pp && pp->epoch == n->epoch && pp->size == n->size && !n->orphan;
	if (pp)
		j = pp->first;
	/* changed: where, the records say, if they are all there (as many as
	 * the page's version moved by) */
	known = pp && !same && !n->orphan && w->dirty && n->version - pp->version == dirty_recs(w->dirty, n->id);
	if (known && w->dirty->n)
		dirty_of(w->dirty, n->id, &dr, &dend);
	for (done = 0; done < n->size && rc == 0; done += MMSB_BK_RAW_MAX) {
		uint64_t len = n->size - done < MMSB_BK_RAW_MAX ? n->size - done : MMSB_BK_RAW_MAX;
		const struct ckpt_ref *pr = prev_block(w, pp, done, len, &j, &jpos);
		const uint8_t *p = n->data->data + done;
		struct ckpt_ref r = {.fi = REF_HOLE, .raw = (uint32_t)len};

		if (pr && (same || (known && !block_dirty(&dr, dend, done / MMSB_BK_RAW_MAX)))) {
			r = *pr;
			r.fi = w->map[pr->fi];
			rc = wr_ref(w, first, &r);
			continue;
		}
		if (n->data->k) { /* a GPU page: through the kernel table */
			rc = pbuf_read(n->data, done, w->hbuf, (size_t)len);
			p = w->hbuf;
		}
		if (rc < 0)
			break;
		if (block_zero(n->data, done, len, p)) {
			rc = wr_ref(w, first, &r);
			continue;
		}
		r.hash = mmsb_sum(p, (size_t)len, w->c->seed);
		r.hashed = true;
		if (pr && pr->hash == r.hash) {
			r = *pr;
			r.fi = w->map[pr->fi];
		} else {
			rc = wr_block(w, MMSB_BK_DATA, p, (uint32_t)len, &r);
		}
		if (rc == 0)
			rc = wr_ref(w, first, &r);
	}
	return rc;
}

/* Node table entry (format.h: MMSB_CK_NODE_FIXED and what follows), then
 * its references refs[0..n_refs). */
static int encode_node(struct mmsb_buf *m, const struct ns_node *n, const struct ckpt_table *t,
		       const struct ckpt_ref *refs, uint32_t n_refs)
{
	uint8_t *e;
	uint32_t i;
	int rc = mmsb_buf_grow(m, MMSB_CK_NODE_FIXED, &e);

	if (rc < 0)
		return rc;
	mmsb_put_le64(e + 0x00, n->id);
	mmsb_put_le64(e + 0x08, n->parent);
	e[0x10] = n->type;
	e[0x11] = 0;
	mmsb_put_le16(e + 0x12, n->name_len);
	mmsb_put_le32(e + 0x14, n->mode);
	mmsb_put_le32(e + 0x18, n->uid);
	mmsb_put_le32(e + 0x1c, n->gid);
	mmsb_put_le64(e + 0x20, n->size);
	mmsb_put_le64(e + 0x28, (uint64_t)n->atime);
	mmsb_put_le64(e + 0x30, (uint64_t)n->mtime);
	mmsb_put_le64(e + 0x38, (uint64_t)n->ctime);
	mmsb_put_le64(e + 0x40, n->version);
	mmsb_put_le64(e + 0x48, n->epoch);
	mmsb_put_le64(e + 0x50, n->birth);
	/* devices have no data blocks: the field holds their rdev; pages: 0 */
	mmsb_put_le64(e + MMSB_CK_NODE_OFF_RDEV, n->type == MMSB_T_CHR || n->type == MMSB_T_BLK ? n->rdev : 0);
	mmsb_put_le32(e + 0x60, n_refs);
	mmsb_put_le16(e + 0x64, (uint16_t)n->n_xattrs);
	mmsb_put_le16(e + 0x66, n->n_deps);
	rc = mmsb_buf_put(m, n->name, n->name_len);
	if (rc == 0 && n->type == MMSB_T_SYMLINK)
		rc = mmsb_buf_put(m, n->data->data, n->size);
	for (i = 0; rc == 0 && i < n->n_xattrs; i++) {
		uint8_t xh[6];
		uint16_t nl = (uint16_t)strlen(n->xattrs[i].name);

		mmsb_put_le16(xh, nl);
		mmsb_put_le32(xh + 2, n->xattrs[i].len);
		rc = mmsb_buf_put(m, xh, sizeof(xh));
		if (rc == 0)
			rc = mmsb_buf_put(m, n->xattrs[i].name, nl);
		if (rc == 0)
			rc = mmsb_buf_put(m, n->xattrs[i].value, n->xattrs[i].len);
	}
	for (i = 0; rc == 0 && i < n->n_deps; i++) {
		uint8_t id[8];

		mmsb_put_le64(id, n->deps[i]);
		rc = mmsb_buf_put(m, id, sizeof(id));
	}
	for (i = 0; rc == 0 && i < n_refs; i++) {
		const struct ckpt_ref *r = &refs[i];

		rc = mmsb_buf_grow(m, MMSB_CK_REF_SIZE, &e);
		if (rc < 0)
			break;
		memset(e, 0, MMSB_CK_REF_SIZE);
		mmsb_put_le32(e + MMSB_CK_REF_OFF_RAW, r->raw);
		if (r->fi == REF_HOLE)
			continue;
		mmsb_put_le64(e + MMSB_CK_REF_OFF_FILE, t->files[r->fi]);
		mmsb_put_le64(e + MMSB_CK_REF_OFF_OFF, r->off);
		mmsb_put_le32(e + MMSB_CK_REF_OFF_SPAN, r->span);
		mmsb_put_le64(e + MMSB_CK_REF_OFF_SUM, r->sum);
		mmsb_put_le64(e + MMSB_CK_REF_OFF_HASH, r->hash);
	}
	return rc;
}

struct walk_ctx {
	struct ckpt_writer *w;
	struct mmsb_buf meta;
	uint64_t n_nodes;
	uint32_t incompat; /* MMSB_FEAT_INCOMPAT_NODES once a link entry or special file is written */
};

static int write_node(void *arg, const struct ns_node *n)
{
	struct walk_ctx *k = arg;
	struct ckpt_table *t = k->w->t;
	uint64_t first = t->n_refs;
	int rc = 0;

	if (n->type == MMSB_T_PAGE) {
		if (n->size > 0)
			rc = write_page(k->w, n, first);
		if (rc == 0)
			rc = table_add_page(t, n, first);
	}
	if (rc == 0)
		rc = encode_node(&k->meta, n, t, t->refs ? t->refs + first : NULL, (uint32_t)(t->n_refs - first));
	if (n->type > MMSB_T_SYMLINK)
		k->incompat |= MMSB_FEAT_INCOMPAT_NODES;
	k->n_nodes++;
	return rc;
}

/* A link entry: one more name of node l->id (format.h: MMSB_CK_T_LINK). */
static int write_link(void *arg, const struct ns_node *l)
{
	struct walk_ctx *k = arg;
	uint8_t *e;
	int rc = mmsb_buf_grow(&k->meta, MMSB_CK_NODE_FIXED, &e);

	if (rc < 0)
		return rc;
	memset(e, 0, MMSB_CK_NODE_FIXED);
	mmsb_put_le64(e + 0x00, l->id);
	mmsb_put_le64(e + 0x08, l->parent);
	e[MMSB_CK_NODE_OFF_TYPE] = MMSB_CK_T_LINK;
	mmsb_put_le16(e + 0x12, l->name_len);
	k->n_nodes++;
	k->incompat |= MMSB_FEAT_INCOMPAT_NODES;
	return mmsb_buf_put(&k->meta, l->name, l->name_len);
}

static void ckpt_name(char *buf, size_t cap, uint64_t epoch)
{
	snprintf(buf, cap, "%016" PRIx64 ".ckpt", epoch);
}

/*   00 magic | 08 major | 0a minor | 0c incompat | 10 epoch | 18 time
 *   20 next_id | 28 n_nodes | 30 seed | 38 sum */
static void encode_header(uint8_t *h, uint64_t epoch, int64_t time, uint64_t next_id, uint64_t n_nodes,
			  uint32_t incompat, uint64_t seed)
{
	memset(h, 0, MMSB_CK_HDR_SIZE);
	memcpy(h, MMSB_CK_MAGIC, 8);
	mmsb_put_le16(h + MMSB_CK_OFF_MAJOR, MMSB_FMT_MAJOR);
	mmsb_put_le16(h + MMSB_CK_OFF_MINOR, MMSB_FMT_MINOR);
	mmsb_put_le32(h + MMSB_CK_OFF_INCOMPAT, incompat);
	mmsb_put_le64(h + MMSB_CK_OFF_EPOCH, epoch);
	mmsb_put_le64(h + MMSB_CK_OFF_TIME, (uint64_t)time);
	mmsb_put_le64(h + MMSB_CK_OFF_NEXT_ID, next_id);
	mmsb_put_le64(h + MMSB_CK_OFF_N_NODES, n_nodes);
	mmsb_put_le64(h + MMSB_CK_OFF_SEED, seed);
	mmsb_put_le64(h + MMSB_CK_OFF_SUM, mmsb_sum(h, MMSB_CK_OFF_SUM, seed));
}

/* Which files of the previous table the new one may refer to (w->map) and
 * the new table's file list: those, then this file.  A file more than half
 * of whose data bytes are dead is rewritten, and while more than
 * CKPT_FILES_MAX files would be named, the one with the fewest live bytes. */
static void plan_files(struct ckpt_writer *w, uint64_t epoch)
{
	const struct ckpt_table *p = w->prev;
	uint32_t i, kept = 0;

	for (i = 0; i < CKPT_FILES_MAX; i++)
		w->map[i] = REF_HOLE;
	for (i = 0; p && i < p->n_files; i++)
		if (p->files[i] < epoch && p->data_bytes[i] - p->live[i] <= p->live[i]) {
			w->map[i] = 0;
			kept++;
		}
	while (kept + 1 > CKPT_FILES_MAX) {
		uint32_t least = REF_HOLE;

		for (i = 0; i < p->n_files; i++)
			if (w->map[i] != REF_HOLE && (least == REF_HOLE || p->live[i] < p->live[least]))
				least = i;
		w->map[least] = REF_HOLE;
		kept--;
	}
	for (i = 0; p && i < p->n_files; i++)
		if (w->map[i] != REF_HOLE) {
			w->map[i] = w->t->n_files;
			w->t->files[w->t->n_files] = p->files[i];
			w->t->data_bytes[w->t->n_files++] = p->data_bytes[i];
		}
	w->t->files[w->t->n_files++] = epoch; /* this file, the newest */
}

/* The meta stream's file list: the files of the table that references use
 * (this one always listed, it holds the node table); the others are
 * dropped from the table and its references renumbered. */
static int finish_files(struct ckpt_writer *w, struct mmsb_buf *out)
{
	struct ckpt_table *t = w->t;
	uint32_t i, n = 0, renum[CKPT_FILES_MAX];
	uint64_t k;
	uint8_t *e;
	int rc;

	for (i = 0; i < t->n_files; i++) {
		renum[i] = REF_HOLE;
		if (t->live[i] || i == t->n_files - 1) {
			renum[i] = n;
			t->files[n] = t->files[i];
			t->data_bytes[n] = t->data_bytes[i];
			t->live[n++] = t->live[i];
		}
	}
	t->n_files = n;
	for (k = 0; k < t->n_refs; k++)
		if (t->refs[k].fi != REF_HOLE)
			t->refs[k].fi = renum[t->refs[k].fi];
	rc = mmsb_buf_grow(out, MMSB_CK_FILES_FIXED + (size_t)n * 8, &e);
	if (rc < 0)
		return rc;
	mmsb_put_le32(e, n);
	mmsb_put_le32(e + 4, 0);
	for (i = 0; i < n; i++)
		mmsb_put_le64(e + MMSB_CK_FILES_FIXED + 8 * i, t->files[i]);
	return 0;
}

static int write_body(struct ckpt_writer *w, const struct ns *ns, uint64_t epoch, int64_t time)
{
	struct walk_ctx k = {.w = w};
	struct mmsb_buf all = {0};
	uint8_t h[MMSB_CK_HDR_SIZE], tr[MMSB_TR_SIZE] = {0};
	uint64_t meta_off = 0, done;
	int rc;

	w->wb.len = 0;
	rc = mmsb_buf_grow(&w->wb, MMSB_CK_HDR_SIZE, &(uint8_t *){NULL}); /* header written last */
	if (rc == 0)
		rc = ns_walk(ns, write_node, &k);
	if (rc == 0)
		rc = ns_walk_links(ns, write_link, &k); /* after every node they name */
	if (rc == 0) {
		meta_off = wr_pos(w);
		w->t->data_bytes[w->t->n_files - 1] = meta_off - MMSB_CK_HDR_SIZE;
		rc = finish_files(w, &all);
	}
	if (rc == 0)
		rc = mmsb_buf_put(&all, k.meta.p, k.meta.len);
	for (done = 0; rc == 0 && done < all.len; done += MMSB_BK_RAW_MAX) {
		size_t len = all.len - done < MMSB_BK_RAW_MAX ? all.len - done : MMSB_BK_RAW_MAX;

		rc = wr_block(w, MMSB_BK_META, all.p + done, (uint32_t)len, NULL);
	}
	if (rc == 0) {
		memcpy(tr, MMSB_TR_MAGIC, 8);
		mmsb_put_le64(tr + MMSB_TR_OFF_META_OFF, meta_off);
		mmsb_put_le64(tr + MMSB_TR_OFF_META_LEN, all.len);
		mmsb_put_le64(tr + MMSB_TR_OFF_EPOCH, epoch);
		mmsb_put_le64(tr + MMSB_TR_OFF_N_BLOCKS, w->n_blocks);
		mmsb_put_le64(tr + MMSB_TR_OFF_SUM, mmsb_sum(tr, MMSB_TR_OFF_SUM, w->c->seed));
		rc = wr_put(w, tr, sizeof(tr));
	}
	if (rc == 0)
		rc = wr_flush(w);
	if (rc == 0) {
		encode_header(h, epoch, time, ns->next_id, k.n_nodes, k.incompat | MMSB_CK_INCOMPAT_REFS, w->c->seed);
		rc = mmsb_io_pwrite_all(w->c->io, w->fd, h, sizeof(h), 0);
	}
	if (rc == 0 && w->t->n_pages > 1)
		qsort(w->t->pages, w->t->n_pages, sizeof(*w->t->pages), cmp_page);
	mmsb_buf_free(&k.meta);
	mmsb_buf_free(&all);
	return rc;
}

int mmsb_ckpt_write(const struct ckpt_ctx *c, const struct ns *ns, uint64_t epoch, int64_t time,
		    const struct ckpt_table *prev, const struct ckpt_dirty *dirty, uint64_t *bytes,
		    struct ckpt_table **tab_out)
{
	struct ckpt_writer w = {.c = c, .fd = -1, .prev = prev && prev->epoch < epoch ? prev : NULL};
	char tmp[48], name[32];
	int rc;

	snprintf(tmp, sizeof(tmp), ".tmp-%016" PRIx64, epoch);
	ckpt_name(name, sizeof(name), epoch);
	w.zbuf = malloc(LZ4_COMPRESSBOUND(MMSB_BK_RAW_MAX));
	w.hbuf = malloc(MMSB_BK_RAW_MAX);
	w.t = table_new(epoch);
	rc = w.zbuf && w.hbuf && w.t ? 0 : -ENOMEM;
	if (rc < 0)
		goto out;
	w.dirty = w.prev && dirty && dirty->since == w.prev->epoch ? dirty : NULL;
	plan_files(&w, epoch);
	rc = c->io->openat(c->io->ctx, c->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (rc < 0)
		goto out;
	w.fd = rc;
	rc = write_body(&w, ns, epoch, time);
	if (rc == 0)
		rc = c->io->fsync(c->io->ctx, w.fd); /* (1) data durable before publish */
	if (rc == 0)
		rc = c->io->renameat(c->io->ctx, c->dirfd, tmp, c->dirfd, name);
	if (rc == 0)
		rc = c->io->fsync(c->io->ctx, c->dirfd); /* (2) the name is durable */
	if (rc == 0)
		*bytes = w.off;
	else
		c->io->unlinkat(c->io->ctx, c->dirfd, tmp, 0);
	mmsb_io_close(c->io, w.fd);
	if (rc == 0 && tab_out) { /* files left unopened: the table only plans the next checkpoint */
		*tab_out = w.t;
		w.t = NULL;
	}
out:
	mmsb_ckpt_table_put(w.t);
	mmsb_buf_free(&w.wb);
	free(w.zbuf);
	free(w.hbuf);
	return rc;
}

/* ---- listing and removal ------------------------------------------------------- */

static int cmp_info(const void *a, const void *b)
{
	const struct ckpt_info *x = a, *y = b;

	return x->epoch < y->epoch ? -1 : x->epoch > y->epoch;
}

static int parse_ckpt_name(const char *s, uint64_t *epoch)
{
	char *end;

	if (strlen(s) != 21 || strcmp(s + 16, ".ckpt") != 0)
		return -EINVAL;
	*epoch = strtoull(s, &end, 16);
	return end == s + 16 ? 0 : -EINVAL;
}

/* The epoch time a checkpoint's header records, for listings; 0 when the
 * header is unreadable or not a checkpoint's (loading it reports why). */
static int64_t ckpt_header_time(const struct ckpt_ctx *c, const char *name)
{
	uint8_t h[MMSB_CK_HDR_SIZE];
	int fd = c->io->openat(c->io->ctx, c->dirfd, name, O_RDONLY, 0);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = mmsb_io_pread_all(c->io, fd, h, sizeof(h), 0);
	c->io->close(c->io->ctx, fd);
	if (n != (ssize_t)sizeof(h) || memcmp(h, MMSB_CK_MAGIC, 8) != 0)
		return 0;
	return (int64_t)mmsb_get_le64(h + MMSB_CK_OFF_TIME);
}

static int ckpt_files(const struct ckpt_ctx *c, uint64_t epoch, uint64_t *files, uint32_t *n);

bool mmsb_ckpt_exists(const struct ckpt_ctx *c, uint64_t epoch)
{
	struct stat stt;
	char name[32];

	ckpt_name(name, sizeof(name), epoch);
	return fstatat(c->dirfd, name, &stt, 0) == 0;
}

int mmsb_ckpt_list(const struct ckpt_ctx *c, struct ckpt_info **out, size_t *n)
{
	struct ckpt_info *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	int fd = dup(c->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		struct stat stt;
		uint64_t e;

		if (parse_ckpt_name(de->d_name, &e) < 0)
			continue;
		if (cnt == cap) {
			struct ckpt_info *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*nv));

			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[cnt].epoch = e;
		v[cnt].time = ckpt_header_time(c, de->d_name);
		v[cnt].file_bytes = fstatat(c->dirfd, de->d_name, &stt, 0) == 0 ? (uint64_t)stt.st_size : 0;
		if (ckpt_files(c, e, v[cnt].files, &v[cnt].n_files) < 0)
			v[cnt].n_files = 0; /* unreadable: it cannot load either */
		cnt++;
	}
	closedir(d);
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_info);
	*out = v;
	*n = cnt;
	return 0;
}

/* ---- loading ---------------------------------------------------------------------- */

/* Read and check the header of the block at *off (of kind, ending by end);
 * *raw and *slen get its raw and stored sizes. */
static int block_header(const struct ckpt_ctx *c, int fd, uint64_t off, uint64_t end, uint8_t kind,
			uint8_t h[MMSB_BK_HDR_SIZE], uint32_t *raw, uint32_t *slen)
{
	ssize_t r;

	if (off + MMSB_BK_HDR_SIZE > end)
		return MMSB_CORRUPT(c->diag, "ckpt: block @0x%" PRIx64 " past the end of its region", off);
	r = mmsb_io_pread_all(c->io, fd, h, MMSB_BK_HDR_SIZE, (off_t)off);
	if (r != (ssize_t)MMSB_BK_HDR_SIZE)
		return r < 0 ? (int)r : MMSB_CORRUPT(c->diag, "ckpt: truncated block header @0x%" PRIx64, off);
	*raw = mmsb_get_le32(h + MMSB_BK_OFF_RAW);
	*slen = mmsb_get_le32(h + MMSB_BK_OFF_STORED);
	if (memcmp(h, MMSB_BK_MAGIC, 4) != 0 || h[MMSB_BK_OFF_KIND] != kind || h[6] || h[7] || *raw == 0 ||
	    off + MMSB_BK_HDR_SIZE + mmsb_align8(*slen) > end)
		return MMSB_CORRUPT(c->diag, "ckpt: bad block header @0x%" PRIx64, off);
	if (h[MMSB_BK_OFF_FLAGS] == MMSB_BK_HOLE) { /* data blocks only, nothing stored */
		if (kind != MMSB_BK_DATA || *slen != 0 || *raw > MMSB_BK_HOLE_MAX)
			return MMSB_CORRUPT(c->diag, "ckpt: bad hole block @0x%" PRIx64, off);
		return 0;
	}
	if ((h[MMSB_BK_OFF_FLAGS] & ~MMSB_BK_LZ4) || *raw > MMSB_BK_RAW_MAX ||
	    *slen > LZ4_COMPRESSBOUND(MMSB_BK_RAW_MAX) || (!(h[MMSB_BK_OFF_FLAGS] & MMSB_BK_LZ4) && *slen != *raw))
		return MMSB_CORRUPT(c->diag, "ckpt: bad block header @0x%" PRIx64, off);
	return 0;
}

/* Read the body of the block at *off, whose header block_header() passed,
 * check it and put its raw bytes at dst; advance *off past the block.  A
 * stored block is read straight into dst, a compressed one through tmp. */
static int block_body(const struct ckpt_ctx *c, int fd, uint64_t *off, const uint8_t h[MMSB_BK_HDR_SIZE],
		      uint32_t raw, uint32_t slen, uint8_t *dst, struct mmsb_buf *tmp)
{
	bool lz4 = h[MMSB_BK_OFF_FLAGS] & MMSB_BK_LZ4;
	uint8_t *src = dst;
	ssize_t r;

	if (lz4) {
		tmp->len = 0;
		r = mmsb_buf_reserve(tmp, slen);
		if (r < 0)
			return (int)r;
		src = tmp->p;
	}
	r = slen ? mmsb_io_pread_all(c->io, fd, src, slen, (off_t)(*off + MMSB_BK_HDR_SIZE)) : 0;
	if (r != (ssize_t)slen)
		return r < 0 ? (int)r : MMSB_CORRUPT(c->diag, "ckpt: truncated block @0x%" PRIx64, *off);
	if (mmsb_get_le64(h + MMSB_BK_OFF_SUM) != mmsb_sum2(h, MMSB_BK_OFF_SUM, src, slen, c->seed)) {
		mmsb_diag(c->diag, MMSB_DIAG_ERR, "ckpt: block @0x%" PRIx64 ": checksum mismatch", *off);
		return -MMSB_EBADCRC;
	}
	if (lz4 && LZ4_decompress_safe((const char *)src, (char *)dst, (int)slen, (int)raw) != (int)raw)
		return MMSB_CORRUPT(c->diag, "ckpt: block @0x%" PRIx64 ": bad LZ4 data", *off);
	*off += MMSB_BK_HDR_SIZE + mmsb_align8(slen);
	return 0;
}

/* Read and check the block at *off; append its raw bytes to out. */
static int read_block(const struct ckpt_ctx *c, int fd, uint64_t *off, uint64_t end, uint8_t kind,
		      struct mmsb_buf *out, struct mmsb_buf *tmp)
{
	uint8_t h[MMSB_BK_HDR_SIZE];
	uint32_t raw = 0, slen = 0;
	int rc = block_header(c, fd, *off, end, kind, h, &raw, &slen);

	if (rc == 0)
		rc = mmsb_buf_reserve(out, raw);
	if (rc == 0)
		rc = block_body(c, fd, off, h, raw, slen, out->p + out->len, tmp);
	if (rc == 0)
		out->len += raw;
	return rc;
}

/* A page's bytes go from its blocks straight into a buffer of its size;
 * holes are skipped, and pbuf_landed() marks the data chunks of the others
 * and hands their zero chunks back, so the page is as sparse as its bytes.
 * Every block is checked against its reference. */
int mmsb_ckpt_read_page(const struct ckpt_ctx *c, const struct ckpt_table *t, const struct ns_node *n,
			struct pbuf **out)
{
	struct mmsb_buf tmp = {0};
	uint64_t pos = 0, i;
	uint8_t h[MMSB_BK_HDR_SIZE];
	uint32_t raw = 0, slen = 0;
	struct pbuf *pb;
	int rc;

	if (n->ck_data_off > t->n_refs || n->ck_n_blocks > t->n_refs - n->ck_data_off)
		return MMSB_CORRUPT(c->diag, "ckpt: page %" PRIu64 ": references out of its table", n->id);
	pb = pbuf_new(n->ck_size);
	rc = pb ? 0 : -ENOMEM;
	for (i = n->ck_data_off; i < n->ck_data_off + n->ck_n_blocks && rc == 0; i++) {
		const struct ckpt_ref *r = &t->refs[i];
		uint64_t off = r->off;

		if (r->raw > n->ck_size - pos) {
			rc = MMSB_CORRUPT(c->diag, "ckpt: page %" PRIu64 ": more bytes in blocks than its %" PRIu64, n->id,
					  n->ck_size);
			break;
		}
		if (r->fi == REF_HOLE) {
			pos += r->raw;
			continue;
		}
		rc = block_header(c, t->fds[r->fi], off, off + r->span, MMSB_BK_DATA, h, &raw, &slen);
		if (rc == 0 && (h[MMSB_BK_OFF_FLAGS] == MMSB_BK_HOLE || raw != r->raw ||
				MMSB_BK_HDR_SIZE + mmsb_align8(slen) != r->span))
			rc = MMSB_CORRUPT(c->diag, "ckpt: block @0x%" PRIx64 " is not the one referred to", off);
		if (rc == 0 && mmsb_get_le64(h + MMSB_BK_OFF_SUM) != r->sum) {
			mmsb_diag(c->diag, MMSB_DIAG_ERR, "ckpt: block @0x%" PRIx64 ": checksum is not the reference's", off);
			rc = -MMSB_EBADCRC;
		}
		if (rc == 0)
			rc = block_body(c, t->fds[r->fi], &off, h, raw, slen, pb->data + pos, &tmp);
		if (rc == 0 && r->hashed && mmsb_sum(pb->data + pos, raw, c->seed) != r->hash) {
			mmsb_diag(c->diag, MMSB_DIAG_ERR, "ckpt: block @0x%" PRIx64 ": bytes do not hash to the reference's",
				  r->off);
			rc = -MMSB_EBADCRC;
		}
		if (rc == 0)
			rc = pbuf_landed(pb, pos, raw);
		if (rc < 0)
			mmsb_diag(c->diag, MMSB_DIAG_ERR,
				  "ckpt: checkpoint %" PRIu64 ": page %" PRIu64 ": its block in checkpoint file %" PRIu64
				  " @0x%" PRIx64 " is damaged",
				  t->epoch, n->id, t->files[r->fi], r->off);
		pos += raw;
	}
	if (rc == 0 && pos != n->ck_size)
		rc = MMSB_CORRUPT(c->diag, "ckpt: page %" PRIu64 ": %" PRIu64 " bytes in blocks, %" PRIu64 " expected",
				  n->id, pos, n->ck_size);
	mmsb_buf_free(&tmp);
	if (rc < 0) {
		pbuf_put(pb);
		return rc;
	}
	*out = pb;
	return 0;
}
static bool zero_bytes(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

/* A link entry at m[*pos..len): a node with ino set to a placeholder (the
 * caller adds the name with ns_link_insert once every node is in). */
static int parse_link(const struct ckpt_ctx *c, const uint8_t *m, size_t len, size_t *pos, struct ns_node **out)
{
	const uint8_t *e = m + *pos;
	uint16_t nl = mmsb_get_le16(e + 0x12);
	struct ns_node *n;

	if (*pos + MMSB_CK_NODE_FIXED + nl > len || !zero_bytes(e + 0x11, 1) ||
	    !zero_bytes(e + 0x14, MMSB_CK_NODE_FIXED - 0x14) ||
	    mmsb_name_check((const char *)e + MMSB_CK_NODE_FIXED, nl) < 0)
		return MMSB_CORRUPT(c->diag, "ckpt: bad link entry @%zu", *pos);
	n = ns_node_new(mmsb_get_le64(e), MMSB_CK_T_LINK, (const char *)e + MMSB_CK_NODE_FIXED, nl);
	if (!n)
		return -ENOMEM;
	n->parent = mmsb_get_le64(e + 0x08);
	*pos += MMSB_CK_NODE_FIXED + nl;
	*out = n;
	return 0;
}

/* Root entry: copy attributes onto the namespace's root. */
static int adopt_root(struct ns *ns, struct ns_node *n)
{
	struct ns_node *r = ns->root;
	uint32_t i;
	int rc = 0;

	r->mode = n->mode;
	r->uid = n->uid;
	r->gid = n->gid;
	r->atime = n->atime;
	r->mtime = n->mtime;
	r->ctime = n->ctime;
	r->epoch = n->epoch;
	for (i = 0; i < n->n_xattrs && rc == 0; i++)
		rc = ns_xattr_set(r, n->xattrs[i].name, strlen(n->xattrs[i].name), n->xattrs[i].value,
				  n->xattrs[i].len);
	ns_node_free(n);
	return rc;
}

/* What a load works with. */
struct load_ctx {
	const struct ckpt_ctx *c;
	uint64_t epoch;		/* the checkpoint loaded */
	bool refs;		/* its file has MMSB_CK_INCOMPAT_REFS */
	uint64_t meta_off;	/* its meta region (old files: the end of its data blocks) */
	struct ckpt_table *t;	/* the table being built */
};

/* A page's references in a file without MMSB_CK_INCOMPAT_REFS: its
 * n_blocks contiguous blocks from data_off, read header by header. */
static int old_refs(struct load_ctx *lc, struct ns_node *n, uint64_t data_off, uint32_t n_blocks)
{
	uint64_t off = data_off, total = 0;
	uint32_t i, raw = 0, slen = 0;
	uint8_t h[MMSB_BK_HDR_SIZE];
	int rc = 0;

	for (i = 0; i < n_blocks && rc == 0; i++) {
		struct ckpt_ref r = {.fi = 0};

		rc = block_header(lc->c, lc->t->fds[0], off, lc->meta_off, MMSB_BK_DATA, h, &raw, &slen);
		if (rc < 0)
			break;
		r.raw = raw;
		if (h[MMSB_BK_OFF_FLAGS] == MMSB_BK_HOLE) {
			r.fi = REF_HOLE;
		} else {
			r.off = off;
			r.span = (uint32_t)(MMSB_BK_HDR_SIZE + mmsb_align8(slen));
			r.sum = mmsb_get_le64(h + MMSB_BK_OFF_SUM);
			lc->t->live[0] += r.span;
		}
		off += MMSB_BK_HDR_SIZE + mmsb_align8(slen);
		total += raw;
		rc = table_add_ref(lc->t, &r);
	}
	if (rc == 0 && total != n->size)
		rc = MMSB_CORRUPT(lc->c->diag, "ckpt: page %" PRIu64 ": %" PRIu64 " bytes in blocks, %" PRIu64 " expected",
				  n->id, total, n->size);
	return rc;
}

/* A page's references at m[*p..len) (MMSB_CK_REF_SIZE each, format.h). */
static int parse_refs(struct load_ctx *lc, struct ns_node *n, const uint8_t *m, size_t len, size_t *p, uint32_t cnt)
{
	struct ckpt_table *t = lc->t;
	uint64_t total = 0;
	uint32_t i;

	if (*p + (size_t)cnt * MMSB_CK_REF_SIZE > len)
		return MMSB_CORRUPT(lc->c->diag, "ckpt: node %" PRIu64 ": references truncated", n->id);
	for (i = 0; i < cnt; i++) {
		const uint8_t *e = m + *p + (size_t)i * MMSB_CK_REF_SIZE;
		uint64_t file = mmsb_get_le64(e + MMSB_CK_REF_OFF_FILE);
		struct ckpt_ref r = {.fi = REF_HOLE, .raw = mmsb_get_le32(e + MMSB_CK_REF_OFF_RAW)};
		bool ok;

		r.off = mmsb_get_le64(e + MMSB_CK_REF_OFF_OFF);
		r.span = mmsb_get_le32(e + MMSB_CK_REF_OFF_SPAN);
		r.sum = mmsb_get_le64(e + MMSB_CK_REF_OFF_SUM);
		r.hash = mmsb_get_le64(e + MMSB_CK_REF_OFF_HASH);
		if (file == 0) { /* a hole: nothing but its length */
			ok = r.raw && r.raw <= MMSB_BK_HOLE_MAX && !r.off && !r.span && !r.sum && !r.hash;
		} else {
			for (r.fi = 0; r.fi < t->n_files && t->files[r.fi] != file; r.fi++)
				;
			r.hashed = true;
			ok = r.fi < t->n_files && r.raw && r.raw <= MMSB_BK_RAW_MAX && r.span >= MMSB_BK_HDR_SIZE &&
			     r.span % 8 == 0 && r.off >= MMSB_CK_HDR_SIZE && r.off % 8 == 0 &&
			     r.off + r.span <= MMSB_CK_HDR_SIZE + t->data_bytes[r.fi < t->n_files ? r.fi : 0];
			if (ok)
				t->live[r.fi] += r.span;
		}
		if (!ok)
			return MMSB_CORRUPT(lc->c->diag, "ckpt: node %" PRIu64 ": bad block reference %u", n->id, i);
		total += r.raw;
		if (table_add_ref(t, &r) < 0)
			return -ENOMEM;
	}
	*p += (size_t)cnt * MMSB_CK_REF_SIZE;
	if (total != n->size)
		return MMSB_CORRUPT(lc->c->diag, "ckpt: page %" PRIu64 ": references cover %" PRIu64 " bytes, not %" PRIu64,
				    n->id, total, n->size);
	return 0;
}

/* Parse one node table entry at m[*pos..len) into a new node; a page's
 * block references go into the table (old files: read from its blocks). */
static int parse_node(struct load_ctx *lc, const uint8_t *m, size_t len, size_t *pos, struct ns_node **out)
{
	const struct ckpt_ctx *c = lc->c;
	const uint8_t *e = m + *pos;
	size_t p = *pos + MMSB_CK_NODE_FIXED;
	struct ns_node *n;
	uint16_t nl, nx, nd, i;
	uint32_t n_blocks;
	uint8_t type;
	uint64_t size, data_off;

	if (*pos + MMSB_CK_NODE_FIXED > len)
		return MMSB_CORRUPT(c->diag, "ckpt: node table truncated");
	type = e[0x10];
	nl = mmsb_get_le16(e + 0x12);
	size = mmsb_get_le64(e + 0x20);
	nx = mmsb_get_le16(e + 0x64);
	nd = mmsb_get_le16(e + 0x66);
	if (type == MMSB_CK_T_LINK) /* only a name: every other field zero */
		return parse_link(c, m, len, pos, out);
	if (type < MMSB_T_DIR || type > MMSB_T_MAX || e[0x11] || nd > MMSB_DEPS_MAX || p + nl > len ||
	    (type > MMSB_T_SYMLINK && size != 0) ||
	    (type == MMSB_T_SYMLINK && (size == 0 || size > 4096 || p + nl + size > len)))
		return MMSB_CORRUPT(c->diag, "ckpt: bad node table entry @%zu", *pos);
	n = ns_node_new(mmsb_get_le64(e), type, (const char *)m + p, nl);
	if (!n)
		return -ENOMEM;
	p += nl;
	n->parent = mmsb_get_le64(e + 0x08);
	n->mode = mmsb_get_le32(e + 0x14) & 07777u;
	n->uid = mmsb_get_le32(e + 0x18);
	n->gid = mmsb_get_le32(e + 0x1c);
	n->size = size;
	n->atime = (int64_t)mmsb_get_le64(e + 0x28);
	n->mtime = (int64_t)mmsb_get_le64(e + 0x30);
	n->ctime = (int64_t)mmsb_get_le64(e + 0x38);
	n->version = mmsb_get_le64(e + 0x40);
	n->epoch = mmsb_get_le64(e + 0x48);
	n->birth = mmsb_get_le64(e + 0x50);
	data_off = mmsb_get_le64(e + 0x58);
	if (type == MMSB_T_CHR || type == MMSB_T_BLK)
		n->rdev = data_off; /* MMSB_CK_NODE_OFF_RDEV */
	n->ck_size = size;
	n_blocks = mmsb_get_le32(e + 0x60);
	if (type == MMSB_T_SYMLINK) {
		n->data = pbuf_new(size);
		if (!n->data)
			goto nomem;
		memcpy(n->data->data, m + p, size);
		p += size;
	} else if (type == MMSB_T_PAGE &&
		   (size ? n_blocks == 0 || n_blocks > (size + MMSB_BK_RAW_MAX - 1) / MMSB_BK_RAW_MAX ||
				   (lc->refs ? data_off != 0 : data_off == 0)
			 : n_blocks != 0)) {
		ns_node_free(n);
		return MMSB_CORRUPT(c->diag, "ckpt: node %" PRIu64 ": bad block count", mmsb_get_le64(e));
	}
	for (i = 0; i < nx; i++) {
		uint16_t xl;
		uint32_t vl;

		if (p + 6 > len)
			goto bad;
		xl = mmsb_get_le16(m + p);
		vl = mmsb_get_le32(m + p + 2);
		if (xl == 0 || xl > MMSB_XATTR_NAME_MAX || vl > MMSB_XATTR_SIZE_MAX || p + 6 + xl + vl > len ||
		    memchr(m + p + 6, '\0', xl))
			goto bad;
		if (ns_xattr_set(n, (const char *)m + p + 6, xl, m + p + 6 + xl, vl) < 0)
			goto nomem;
		p += 6 + (size_t)xl + vl;
	}
	if (nd) {
		if (p + (size_t)nd * 8 > len)
			goto bad;
		n->deps = malloc(nd * sizeof(*n->deps));
		if (!n->deps)
			goto nomem;
		for (i = 0; i < nd; i++)
			n->deps[i] = mmsb_get_le64(m + p + (size_t)i * 8);
		n->n_deps = nd;
		p += (size_t)nd * 8;
	}
	if (type == MMSB_T_PAGE && size) {
		int rc = lc->refs ? parse_refs(lc, n, m, len, &p, n_blocks) : old_refs(lc, n, data_off, n_blocks);

		if (rc < 0) {
			ns_node_free(n);
			return rc;
		}
	}
	*pos = p;
	*out = n;
	return 0;
bad:
	ns_node_free(n);
	return MMSB_CORRUPT(c->diag, "ckpt: bad xattr or deps in node table entry @%zu", *pos);
nomem:
	ns_node_free(n);
	return -ENOMEM;
}

static int check_ends(const struct ckpt_ctx *c, int fd, uint64_t epoch, uint64_t size, uint8_t *h, uint8_t *tr)
{
	ssize_t r1 = mmsb_io_pread_all(c->io, fd, h, MMSB_CK_HDR_SIZE, 0);
	ssize_t r2 = size >= MMSB_TR_SIZE ? mmsb_io_pread_all(c->io, fd, tr, MMSB_TR_SIZE, (off_t)(size - MMSB_TR_SIZE)) : 0;

	if (r1 < 0 || r2 < 0)
		return (int)(r1 < 0 ? r1 : r2);
	if (size < MMSB_CK_HDR_SIZE + MMSB_TR_SIZE || memcmp(h, MMSB_CK_MAGIC, 8) || memcmp(tr, MMSB_TR_MAGIC, 8))
		return MMSB_CORRUPT(c->diag, "ckpt: epoch %" PRIu64 ": not a complete checkpoint file", epoch);
	if (mmsb_get_le64(h + MMSB_CK_OFF_SUM) != mmsb_sum(h, MMSB_CK_OFF_SUM, c->seed) ||
	    mmsb_get_le64(tr + MMSB_TR_OFF_SUM) != mmsb_sum(tr, MMSB_TR_OFF_SUM, c->seed)) {
		mmsb_diag(c->diag, MMSB_DIAG_ERR, "ckpt: epoch %" PRIu64 ": header or trailer checksum mismatch", epoch);
		return -MMSB_EBADCRC;
	}
	if (mmsb_get_le16(h + MMSB_CK_OFF_MAJOR) != MMSB_FMT_MAJOR ||
	    (mmsb_get_le32(h + MMSB_CK_OFF_INCOMPAT) & ~MMSB_CK_INCOMPAT_KNOWN)) {
		mmsb_diag(c->diag, MMSB_DIAG_ERR, "ckpt: epoch %" PRIu64 ": unsupported version or feature", epoch);
		return -ENOTSUP;
	}
	if (mmsb_get_le64(h + MMSB_CK_OFF_EPOCH) != epoch || mmsb_get_le64(tr + MMSB_TR_OFF_EPOCH) != epoch ||
	    mmsb_get_le64(tr + MMSB_TR_OFF_META_OFF) < MMSB_CK_HDR_SIZE ||
	    mmsb_get_le64(tr + MMSB_TR_OFF_META_OFF) > size - MMSB_TR_SIZE)
		return MMSB_CORRUPT(c->diag, "ckpt: epoch %" PRIu64 ": header and trailer disagree", epoch);
	return 0;
}

/* Open checkpoint file `epoch` and check its ends; *fd gets it open, h and
 * tr its header and trailer. */
static int open_ckpt(const struct ckpt_ctx *c, uint64_t epoch, int *fd, uint8_t *h, uint8_t *tr)
{
	struct stat stt;
	char name[32];
	int rc;

	ckpt_name(name, sizeof(name), epoch);
	*fd = c->io->openat(c->io->ctx, c->dirfd, name, O_RDONLY, 0);
	if (*fd < 0)
		return *fd;
	rc = fstat(*fd, &stt) == 0 ? 0 : -errno;
	if (rc == 0)
		rc = check_ends(c, *fd, epoch, (uint64_t)stt.st_size, h, tr);
	if (rc < 0) {
		c->io->close(c->io->ctx, *fd);
		*fd = -1;
	}
	return rc;
}

/* The file list at the start of a REFS file's meta stream m[0..len): into
 * files / *n; *pos past it. */
static int parse_files(const struct ckpt_ctx *c, uint64_t epoch, const uint8_t *m, size_t len, uint64_t *files,
		       uint32_t *n, size_t *pos)
{
	uint32_t i, cnt = len >= MMSB_CK_FILES_FIXED ? mmsb_get_le32(m) : 0;

	if (cnt == 0 || cnt > CKPT_FILES_MAX || mmsb_get_le32(m + 4) != 0 ||
	    MMSB_CK_FILES_FIXED + (size_t)cnt * 8 > len)
		return MMSB_CORRUPT(c->diag, "ckpt: epoch %" PRIu64 ": bad file list", epoch);
	for (i = 0; i < cnt; i++) {
		files[i] = mmsb_get_le64(m + MMSB_CK_FILES_FIXED + 8 * i);
		if (files[i] == 0 || files[i] > epoch || (i && files[i] <= files[i - 1]))
			return MMSB_CORRUPT(c->diag, "ckpt: epoch %" PRIu64 ": bad file list", epoch);
	}
	if (files[cnt - 1] != epoch)
		return MMSB_CORRUPT(c->diag, "ckpt: epoch %" PRIu64 ": its file list does not name it", epoch);
	*n = cnt;
	*pos = MMSB_CK_FILES_FIXED + (size_t)cnt * 8;
	return 0;
}

/* The checkpoint files that checkpoint `epoch` refers to (itself included). */
static int ckpt_files(const struct ckpt_ctx *c, uint64_t epoch, uint64_t *files, uint32_t *n)
{
	uint8_t h[MMSB_CK_HDR_SIZE], tr[MMSB_TR_SIZE];
	struct mmsb_buf first = {0}, tmp = {0};
	uint64_t off;
	size_t pos;
	int fd, rc = open_ckpt(c, epoch, &fd, h, tr);

	if (rc < 0)
		return rc;
	if (!(mmsb_get_le32(h + MMSB_CK_OFF_INCOMPAT) & MMSB_CK_INCOMPAT_REFS)) {
		files[0] = epoch;
		*n = 1;
	} else {
		off = mmsb_get_le64(tr + MMSB_TR_OFF_META_OFF);
		rc = read_block(c, fd, &off, UINT64_MAX, MMSB_BK_META, &first, &tmp); /* the list fits in the first */
		if (rc == 0)
			rc = parse_files(c, epoch, first.p, first.len, files, n, &pos);
	}
	c->io->close(c->io->ctx, fd);
	mmsb_buf_free(&first);
	mmsb_buf_free(&tmp);
	return rc;
}

/* Open the other files a REFS checkpoint names (its own is fds[i] already)
 * and learn where their data regions end. */
static int open_named(struct load_ctx *lc)
{
	struct ckpt_table *t = lc->t;
	uint32_t i;

	for (i = 0; i < t->n_files; i++) {
		uint8_t h[MMSB_CK_HDR_SIZE], tr[MMSB_TR_SIZE];
		int rc;

		if (t->fds[i] >= 0)
			continue;
		rc = open_ckpt(lc->c, t->files[i], &t->fds[i], h, tr);
		if (rc < 0) {
			mmsb_diag(lc->c->diag, MMSB_DIAG_ERR,
				  "ckpt: checkpoint %" PRIu64 " refers to checkpoint file %" PRIu64 ", which is %s",
				  lc->epoch, t->files[i], rc == -ENOENT ? "missing" : "damaged");
			return rc == -ENOENT ? -MMSB_ECORRUPT : rc; /* a missing file damages this checkpoint */
		}
		t->data_bytes[i] = mmsb_get_le64(tr + MMSB_TR_OFF_META_OFF) - MMSB_CK_HDR_SIZE;
	}
	return 0;
}

static int load_nodes(struct load_ctx *lc, const struct mmsb_buf *meta, size_t pos, uint64_t n_nodes, bool lazy,
		      struct ns *ns)
{
	const struct ckpt_ctx *c = lc->c;
	uint64_t k;
	int rc = 0;

	for (k = 0; k < n_nodes && rc == 0; k++) {
		struct ns_node *n = NULL;
		uint64_t first = lc->t->n_refs;

		rc = parse_node(lc, meta->p, meta->len, &pos, &n);
		if (rc < 0)
			break;
		if (k == 0) {
			rc = n->id == MMSB_ROOT_ID ? adopt_root(ns, n) : MMSB_CORRUPT(c->diag, "ckpt: first node is not the root");
			continue;
		}
		if (n->type == MMSB_CK_T_LINK) {
			rc = ns_link_insert(ns, n->id, n->parent, n->name, n->name_len);
			if (rc == -MMSB_ECORRUPT)
				mmsb_diag(c->diag, MMSB_DIAG_ERR, "ckpt: link to node %" PRIu64 " does not fit the tree",
					  n->id);
			ns_node_free(n);
			continue;
		}
		if (n->type == MMSB_T_PAGE) {
			n->ck_data_off = first;
			n->ck_n_blocks = (uint32_t)(lc->t->n_refs - first);
			rc = table_add_page(lc->t, n, first);
		}
		if (rc == 0 && n->type == MMSB_T_PAGE && n->size) {
			n->ck_epoch = lc->epoch;
			if (lazy)
				n->loaded = false;
			else
				rc = mmsb_ckpt_read_page(c, lc->t, n, &n->data);
		}
		if (rc == 0)
			rc = ns_insert(ns, n);
		if (rc == -MMSB_ECORRUPT)
			mmsb_diag(c->diag, MMSB_DIAG_ERR, "ckpt: node %" PRIu64 " does not fit the tree", n->id);
		if (rc < 0)
			ns_node_free(n);
	}
	if (rc == 0 && pos != meta->len)
		rc = MMSB_CORRUPT(c->diag, "ckpt: trailing bytes after the node table");
	if (rc == 0)
		rc = ns_kids_rebuild(ns);
	if (rc == 0 && lc->t->n_pages > 1)
		qsort(lc->t->pages, lc->t->n_pages, sizeof(*lc->t->pages), cmp_page);
	return rc;
}

int mmsb_ckpt_load(const struct ckpt_ctx *c, uint64_t epoch, bool lazy, struct ns **out, int64_t *time,
		   struct ckpt_table **tab_out)
{
	uint8_t h[MMSB_CK_HDR_SIZE], tr[MMSB_TR_SIZE];
	struct mmsb_buf meta = {0}, tmp = {0};
	struct load_ctx lc = {.c = c, .epoch = epoch};
	struct ns *ns = NULL;
	struct stat stt;
	uint64_t off, end;
	size_t pos = 0;
	int fd, rc;

	if (lazy && !tab_out)
		return -EINVAL;
	rc = open_ckpt(c, epoch, &fd, h, tr);
	if (rc < 0)
		return rc;
	lc.t = table_new(epoch);
	if (!lc.t) {
		c->io->close(c->io->ctx, fd);
		return -ENOMEM;
	}
	rc = fstat(fd, &stt) == 0 ? 0 : -errno;
	lc.refs = mmsb_get_le32(h + MMSB_CK_OFF_INCOMPAT) & MMSB_CK_INCOMPAT_REFS;
	lc.meta_off = off = mmsb_get_le64(tr + MMSB_TR_OFF_META_OFF);
	end = (uint64_t)stt.st_size - MMSB_TR_SIZE;
	while (rc == 0 && off < end)
		rc = read_block(c, fd, &off, end, MMSB_BK_META, &meta, &tmp);
	if (rc == 0 && meta.len != mmsb_get_le64(tr + MMSB_TR_OFF_META_LEN))
		rc = MMSB_CORRUPT(c->diag, "ckpt: epoch %" PRIu64 ": node table length mismatch", epoch);
	if (rc == 0 && lc.refs) {
		rc = parse_files(c, epoch, meta.p, meta.len, lc.t->files, &lc.t->n_files, &pos);
		if (rc == 0) {
			lc.t->fds[lc.t->n_files - 1] = fd; /* the table owns it now */
			lc.t->data_bytes[lc.t->n_files - 1] = lc.meta_off - MMSB_CK_HDR_SIZE;
			rc = open_named(&lc);
		} else {
			c->io->close(c->io->ctx, fd);
		}
	} else if (rc == 0) { /* a full image: a table of one file */
		lc.t->files[0] = epoch;
		lc.t->fds[0] = fd;
		lc.t->data_bytes[0] = lc.meta_off - MMSB_CK_HDR_SIZE;
		lc.t->n_files = 1;
	} else {
		c->io->close(c->io->ctx, fd);
	}
	if (rc == 0)
		rc = ns_new(0, &ns);
	if (rc == 0)
		rc = load_nodes(&lc, &meta, pos, mmsb_get_le64(h + MMSB_CK_OFF_N_NODES), lazy, ns);
	if (rc == 0 && mmsb_get_le64(h + MMSB_CK_OFF_NEXT_ID) > ns->next_id)
		ns->next_id = mmsb_get_le64(h + MMSB_CK_OFF_NEXT_ID);
	mmsb_buf_free(&meta);
	mmsb_buf_free(&tmp);
	if (rc < 0) {
		ns_free(ns);
		mmsb_ckpt_table_put(lc.t);
		return rc;
	}
	*out = ns;
	if (time)
		*time = (int64_t)mmsb_get_le64(h + MMSB_CK_OFF_TIME);
	if (tab_out)
		*tab_out = lc.t;
	else
		mmsb_ckpt_table_put(lc.t);
	return 0;
}

/* ---- removal ------------------------------------------------------------------------ */

/* The epochs of the checkpoint files that the checkpoints at or after keep
 * name (sorted); one that does not even show its file list names nothing
 * (it cannot load either). */
static int pinned_files(const struct ckpt_ctx *c, uint64_t keep, uint64_t **out, size_t *n)
{
	struct ckpt_info *ck = NULL;
	uint64_t *v = NULL;
	size_t cnt = 0, i;
	int rc = mmsb_ckpt_list(c, &ck, &cnt);

	*n = 0;
	if (rc == 0 && cnt) {
		v = malloc(cnt * CKPT_FILES_MAX * sizeof(*v));
		rc = v ? 0 : -ENOMEM;
	}
	for (i = 0; rc == 0 && i < cnt; i++) {
		uint32_t k;

		for (k = 0; ck[i].epoch >= keep && k < ck[i].n_files; k++)
			v[(*n)++] = ck[i].files[k];
	}
	free(ck);
	if (rc < 0) {
		free(v);
		return rc;
	}
	*out = v;
	return 0;
}

int mmsb_ckpt_remove_before(const struct ckpt_ctx *c, uint64_t keep)
{
	struct dirent *de;
	uint64_t *pin = NULL;
	size_t n_pin = 0, i;
	int fd, n = 0, rc = keep ? pinned_files(c, keep, &pin, &n_pin) : 0;
	DIR *d;

	if (rc < 0)
		return rc;
	fd = dup(c->dirfd);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		free(pin);
		return rc;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		uint64_t e;
		bool tmp = strncmp(de->d_name, ".tmp-", 5) == 0, named = false;

		if (tmp ? keep != 0 : parse_ckpt_name(de->d_name, &e) < 0 || e >= keep)
			continue;
		for (i = 0; !tmp && i < n_pin && !named; i++)
			named = pin[i] == e; /* a retained checkpoint refers to its blocks */
		if (!named && c->io->unlinkat(c->io->ctx, c->dirfd, de->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	free(pin);
	if (n)
		c->io->fsync(c->io->ctx, c->dirfd);
	return n;
}
