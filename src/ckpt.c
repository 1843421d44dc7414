/* ckpt.c - checkpoint files.
 *
 * CHECKPOINT FORMAT (normative text: mmsb(5))
 *
 *   header (64) | data blocks | meta blocks | trailer (48)
 *
 * Every page's bytes are cut into blocks of at most 1 MiB, each stored LZ4-
 * compressed when that is smaller, else raw; a page's blocks are contiguous
 * and the node table records where the first one is.  The node table (a byte
 * stream of entries, format.h) is stored the same way in meta blocks, parents
 * before children and children in directory order, so loading rebuilds the
 * same readdir order.  A block is valid if and only if its magic, kind and
 * flags are known, its reserved bytes are zero, its lengths are in range and
 * XXH3-64(block header[0..16) || stored bytes, seed) matches.  The file is
 * valid if and only if the header and trailer checksums match, both name the
 * epoch in the file name, and every block read on the way is valid.
 *
 * WRITE ORDER
 *
 * 1. write ckpt/.tmp-<epoch> sequentially; 2. fsync it; 3. rename it to
 * ckpt/<16 hex>.ckpt; 4. fsync the directory.  A crash leaves either no file
 * or a complete one; leftover temporary files are removed at open.
 *
 * What this file does not do: choose when to checkpoint, or capture the
 * state (store.c clones the head under its lock and hands the clone here).
 */
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

struct ckpt_writer {
	const struct ckpt_ctx *c;
	int fd;
	uint64_t off;	    /* file offset of wbuf[0] */
	struct mmsb_buf wb; /* pending bytes */
	uint8_t *zbuf;	    /* LZ4 output, LZ4_COMPRESSBOUND(1 MiB) */
	uint8_t *hbuf;	    /* a block of a GPU page copied out (1 MiB) */
	uint64_t n_blocks;
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

/*   00 magic "CKBL" | 04 kind | 05 flags | 06 zero[2] | 08 raw_len le32
 *   0c stored_len le32 | 10 sum le64 | 18 stored bytes | zero pad to 8 */
static int wr_block(struct ckpt_writer *w, uint8_t kind, const uint8_t *raw, uint32_t len)
{
	static const uint8_t zero[8];
	uint8_t h[MMSB_BK_HDR_SIZE] = {0};
	const uint8_t *stored = raw;
	uint32_t slen = len;
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
	return rc;
}

static uint64_t wr_pos(const struct ckpt_writer *w)
{
	return w->off + w->wb.len;
}

/* Node table entry (format.h: MMSB_CK_NODE_FIXED and what follows). */
static int encode_node(struct mmsb_buf *m, const struct ns_node *n, uint64_t data_off, uint32_t n_blocks)
{
	uint8_t *e;
	uint32_t i;
	int rc = mmsb_buf_grow(m, MMSB_CK_NODE_FIXED, &e);

	if (rc < 0)
		return rc;
	mmsb_put_le64(e + 0x00, n->id);
	mmsb_put_le64(e + 0x08, n->parent);
	e[0x10] = n->type;
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
	/* devices have no data blocks: the field holds their rdev */
	mmsb_put_le64(e + MMSB_CK_NODE_OFF_RDEV, n->type == MMSB_T_CHR || n->type == MMSB_T_BLK ? n->rdev : data_off);
	mmsb_put_le32(e + 0x60, n_blocks);
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
	uint64_t off = 0, done;
	uint32_t nb = 0;
	int rc = 0;

	if (n->type == MMSB_T_PAGE && n->size > 0) {
		off = wr_pos(k->w);
		for (done = 0; done < n->size && rc == 0; done += MMSB_BK_RAW_MAX, nb++) {
			uint64_t len = n->size - done < MMSB_BK_RAW_MAX ? n->size - done : MMSB_BK_RAW_MAX;
			const uint8_t *p = n->data->data + done;

			if (n->data->k) { /* a GPU page: through the kernel table */
				rc = pbuf_read(n->data, done, k->w->hbuf, (size_t)len);
				p = k->w->hbuf;
			}
			if (rc == 0)
				rc = wr_block(k->w, MMSB_BK_DATA, p, (uint32_t)len);
		}
	}
	if (rc == 0)
		rc = encode_node(&k->meta, n, off, nb);
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

static int write_body(struct ckpt_writer *w, const struct ns *ns, uint64_t epoch, int64_t time)
{
	struct walk_ctx k = {.w = w};
	uint8_t h[MMSB_CK_HDR_SIZE], tr[MMSB_TR_SIZE] = {0};
	uint64_t meta_off, done;
	int rc;

	w->wb.len = 0;
	rc = mmsb_buf_grow(&w->wb, MMSB_CK_HDR_SIZE, &(uint8_t *){NULL}); /* header written last */
	if (rc == 0)
		rc = ns_walk(ns, write_node, &k);
	if (rc == 0)
		rc = ns_walk_links(ns, write_link, &k); /* after every node they name */
	meta_off = wr_pos(w);
	for (done = 0; rc == 0 && done < k.meta.len; done += MMSB_BK_RAW_MAX) {
		size_t len = k.meta.len - done < MMSB_BK_RAW_MAX ? k.meta.len - done : MMSB_BK_RAW_MAX;

		rc = wr_block(w, MMSB_BK_META, k.meta.p + done, (uint32_t)len);
	}
	if (rc == 0) {
		memcpy(tr, MMSB_TR_MAGIC, 8);
		mmsb_put_le64(tr + MMSB_TR_OFF_META_OFF, meta_off);
		mmsb_put_le64(tr + MMSB_TR_OFF_META_LEN, k.meta.len);
		mmsb_put_le64(tr + MMSB_TR_OFF_EPOCH, epoch);
		mmsb_put_le64(tr + MMSB_TR_OFF_N_BLOCKS, w->n_blocks);
		mmsb_put_le64(tr + MMSB_TR_OFF_SUM, mmsb_sum(tr, MMSB_TR_OFF_SUM, w->c->seed));
		rc = wr_put(w, tr, sizeof(tr));
	}
	if (rc == 0)
		rc = wr_flush(w);
	if (rc == 0) {
		encode_header(h, epoch, time, ns->next_id, k.n_nodes, k.incompat, w->c->seed);
		rc = mmsb_io_pwrite_all(w->c->io, w->fd, h, sizeof(h), 0);
	}
	mmsb_buf_free(&k.meta);
	return rc;
}

int mmsb_ckpt_write(const struct ckpt_ctx *c, const struct ns *ns, uint64_t epoch, int64_t time, uint64_t *bytes)
{
	struct ckpt_writer w = {.c = c, .fd = -1};
	char tmp[48], name[32];
	int rc;

	snprintf(tmp, sizeof(tmp), ".tmp-%016" PRIx64, epoch);
	ckpt_name(name, sizeof(name), epoch);
	w.zbuf = malloc(LZ4_COMPRESSBOUND(MMSB_BK_RAW_MAX));
	w.hbuf = malloc(MMSB_BK_RAW_MAX);
	if (!w.zbuf || !w.hbuf) {
		free(w.zbuf);
		free(w.hbuf);
		return -ENOMEM;
	}
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
out:
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
		cnt++;
	}
	closedir(d);
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_info);
	*out = v;
	*n = cnt;
	return 0;
}

int mmsb_ckpt_remove_before(const struct ckpt_ctx *c, uint64_t keep)
{
	struct dirent *de;
	int fd = dup(c->dirfd), n = 0;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		uint64_t e;
		bool tmp = strncmp(de->d_name, ".tmp-", 5) == 0;

		if (tmp ? keep != 0 : parse_ckpt_name(de->d_name, &e) < 0 || e >= keep)
			continue;
		if (c->io->unlinkat(c->io->ctx, c->dirfd, de->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	if (n)
		c->io->fsync(c->io->ctx, c->dirfd);
	return n;
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
	if (memcmp(h, MMSB_BK_MAGIC, 4) != 0 || h[MMSB_BK_OFF_KIND] != kind || (h[MMSB_BK_OFF_FLAGS] & ~MMSB_BK_LZ4) ||
	    h[6] || h[7] || *raw == 0 || *raw > MMSB_BK_RAW_MAX || *slen > LZ4_COMPRESSBOUND(MMSB_BK_RAW_MAX) ||
	    (!(h[MMSB_BK_OFF_FLAGS] & MMSB_BK_LZ4) && *slen != *raw) ||
	    off + MMSB_BK_HDR_SIZE + mmsb_align8(*slen) > end)
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
	r = mmsb_io_pread_all(c->io, fd, src, slen, (off_t)(*off + MMSB_BK_HDR_SIZE));
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

/* A page's bytes go from its blocks straight into a buffer of its size. */
int mmsb_ckpt_read_page(const struct ckpt_ctx *c, int fd, const struct ns_node *n, struct pbuf **out)
{
	struct mmsb_buf tmp = {0};
	uint64_t off = n->ck_data_off, pos = 0;
	uint8_t h[MMSB_BK_HDR_SIZE];
	uint32_t i, raw = 0, slen = 0;
	struct pbuf *pb = pbuf_new(n->ck_size);
	int rc = pb ? 0 : -ENOMEM;

	for (i = 0; i < n->ck_n_blocks && rc == 0; i++) {
		rc = block_header(c, fd, off, UINT64_MAX, MMSB_BK_DATA, h, &raw, &slen);
		if (rc == 0 && raw > n->ck_size - pos)
			rc = MMSB_CORRUPT(c->diag, "ckpt: page %" PRIu64 ": more bytes in blocks than its %" PRIu64,
					  n->id, n->ck_size);
		if (rc == 0)
			rc = block_body(c, fd, &off, h, raw, slen, pb->data + pos, &tmp);
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

/* Parse one node table entry at m[*pos..len) into a new node. */
static int parse_node(const struct ckpt_ctx *c, const uint8_t *m, size_t len, size_t *pos, struct ns_node **out)
{
	const uint8_t *e = m + *pos;
	size_t p = *pos + MMSB_CK_NODE_FIXED;
	struct ns_node *n;
	uint16_t nl, nx, nd, i;
	uint8_t type;
	uint64_t size;

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
	n->ck_data_off = mmsb_get_le64(e + 0x58);
	if (type == MMSB_T_CHR || type == MMSB_T_BLK) {
		n->rdev = n->ck_data_off; /* MMSB_CK_NODE_OFF_RDEV */
		n->ck_data_off = 0;
	}
	n->ck_size = size;
	n->ck_n_blocks = mmsb_get_le32(e + 0x60);
	if (type == MMSB_T_SYMLINK) {
		n->data = pbuf_new(size);
		if (!n->data)
			goto nomem;
		memcpy(n->data->data, m + p, size);
		p += size;
	} else if (type == MMSB_T_PAGE && size && (n->ck_n_blocks != (size + MMSB_BK_RAW_MAX - 1) / MMSB_BK_RAW_MAX || !n->ck_data_off)) {
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

static int load_nodes(const struct ckpt_ctx *c, int fd, const struct mmsb_buf *meta, uint64_t n_nodes,
		      uint64_t epoch, bool lazy, struct ns *ns)
{
	size_t pos = 0;
	uint64_t k;
	int rc = 0;

	for (k = 0; k < n_nodes && rc == 0; k++) {
		struct ns_node *n = NULL;

		rc = parse_node(c, meta->p, meta->len, &pos, &n);
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
		if (n->type == MMSB_T_PAGE && n->size) {
			n->ck_epoch = epoch;
			if (lazy)
				n->loaded = false;
			else
				rc = mmsb_ckpt_read_page(c, fd, n, &n->data);
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
	return rc;
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
	    (mmsb_get_le32(h + MMSB_CK_OFF_INCOMPAT) & ~MMSB_FEAT_INCOMPAT_KNOWN)) {
		mmsb_diag(c->diag, MMSB_DIAG_ERR, "ckpt: epoch %" PRIu64 ": unsupported version or feature", epoch);
		return -ENOTSUP;
	}
	if (mmsb_get_le64(h + MMSB_CK_OFF_EPOCH) != epoch || mmsb_get_le64(tr + MMSB_TR_OFF_EPOCH) != epoch ||
	    mmsb_get_le64(tr + MMSB_TR_OFF_META_OFF) < MMSB_CK_HDR_SIZE ||
	    mmsb_get_le64(tr + MMSB_TR_OFF_META_OFF) > size - MMSB_TR_SIZE)
		return MMSB_CORRUPT(c->diag, "ckpt: epoch %" PRIu64 ": header and trailer disagree", epoch);
	return 0;
}

int mmsb_ckpt_load(const struct ckpt_ctx *c, uint64_t epoch, bool lazy, struct ns **out, int64_t *time,
		   int *fd_out)
{
	uint8_t h[MMSB_CK_HDR_SIZE], tr[MMSB_TR_SIZE];
	struct mmsb_buf meta = {0}, tmp = {0};
	struct ns *ns = NULL;
	struct stat stt;
	uint64_t off, end;
	char name[32];
	int fd, rc;

	ckpt_name(name, sizeof(name), epoch);
	fd = c->io->openat(c->io->ctx, c->dirfd, name, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	rc = fstat(fd, &stt) == 0 ? 0 : -errno;
	if (rc == 0)
		rc = check_ends(c, fd, epoch, (uint64_t)stt.st_size, h, tr);
	off = mmsb_get_le64(tr + MMSB_TR_OFF_META_OFF);
	end = (uint64_t)stt.st_size - MMSB_TR_SIZE;
	while (rc == 0 && off < end)
		rc = read_block(c, fd, &off, end, MMSB_BK_META, &meta, &tmp);
	if (rc == 0 && meta.len != mmsb_get_le64(tr + MMSB_TR_OFF_META_LEN))
		rc = MMSB_CORRUPT(c->diag, "ckpt: epoch %" PRIu64 ": node table length mismatch", epoch);
	if (rc == 0)
		rc = ns_new(0, &ns);
	if (rc == 0)
		rc = load_nodes(c, fd, &meta, mmsb_get_le64(h + MMSB_CK_OFF_N_NODES), epoch, lazy, ns);
	if (rc == 0 && mmsb_get_le64(h + MMSB_CK_OFF_NEXT_ID) > ns->next_id)
		ns->next_id = mmsb_get_le64(h + MMSB_CK_OFF_NEXT_ID);
	mmsb_buf_free(&meta);
	mmsb_buf_free(&tmp);
	if (rc < 0) {
		ns_free(ns);
		c->io->close(c->io->ctx, fd);
		return rc;
	}
	*out = ns;
	if (time)
		*time = (int64_t)mmsb_get_le64(h + MMSB_CK_OFF_TIME);
	if (lazy && fd_out)
		*fd_out = fd;
	else
		c->io->close(c->io->ctx, fd);
	return 0;
}
