/* txn.c - transactions: begin, the mutation operations, commit, abort.
 * The protocol is described at the top of store.c. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "delta.h"
#include "err.h"
#include "prop.h"
#include "store_int.h"

#define MMSB_WRITE_CHUNK (64u << 20) /* largest span one WRITE record covers */
#define MMSB_PAGE_MAX (1ull << 44)   /* 16 TiB: -EFBIG past it */
#define MMSB_SYMLINK_MAX 4096u

/* A transaction as it starts: no record, no change, no caller. */
static void txn_reset(struct mmsb_txn *t, enum mmsb_source src, bool deferred, bool multi)
{
	t->src = src;
	t->t0 = mmsb_now_ns();
	t->n_recs = 0;
	t->changed = 0;
	t->poisoned = 0;
	t->frames.len = 0;
	t->n_changes = 0;
	t->n_rewired = 0;
	t->rec_flags = 0;
	t->has_cred = false;
	t->owner_ok = false;
	t->why[0] = '\0';
	t->stable = false;
	t->deferred = deferred;
	t->multi = multi;
}

int mmsb_txn_begin(struct mmsb_store *st, enum mmsb_source src, struct mmsb_txn **out)
{
	struct mmsb_txn *t = &st->txn;

	if (st->read_only || mmsb_tlog_failed(st->log))
		return -EROFS;
	pthread_rwlock_wrlock(&st->gate);
	pthread_rwlock_wrlock(&st->lock);
	if (st->read_only) { /* a reload may have failed meanwhile */
		pthread_rwlock_unlock(&st->lock);
		pthread_rwlock_unlock(&st->gate);
		return -EROFS;
	}
	txn_reset(t, src, false, false);
	t->epoch = atomic_load(&st->head) + 1;
	t->time = mmsb_wall_ns();
	*out = t;
	return 0;
}

/* Can record r, the first of t, lead to an exec: recompute at commit?  Only
 * on a store that allows them, for a byte change of a page with dependents
 * or a change of a page's dependency attributes. */
static bool may_exec(const struct mmsb_txn *t, const struct mmsb_rec *r)
{
	const struct ns_node *n;

	if (!t->st->o.allow_exec)
		return false;
	if (r->type == MMSB_FR_SETXATTR || r->type == MMSB_FR_RMXATTR)
		return (r->u.xattr.name_len == strlen(MMSB_XATTR_DEPS) &&
			memcmp(r->u.xattr.name, MMSB_XATTR_DEPS, r->u.xattr.name_len) == 0) ||
		       (r->u.xattr.name_len == strlen(MMSB_XATTR_RECOMPUTE) &&
			memcmp(r->u.xattr.name, MMSB_XATTR_RECOMPUTE, r->u.xattr.name_len) == 0);
	n = mmsb_rec_is_bytes(r->type) ? ns_get(t->st->ns, r->node) : NULL;
	return n && n->n_kids > 0;
}

/* Room for n more entries in the change list: after it, n note_change
 * calls cannot fail.  Returns 0 or -ENOMEM. */
static int reserve_changes(struct mmsb_txn *t, size_t n)
{
	size_t cap = t->cap_changes ? t->cap_changes : 16;
	struct mmsb_change_rec *c;

	if (t->n_changes + n <= t->cap_changes)
		return 0;
	while (cap < t->n_changes + n)
		cap *= 2;
	c = realloc(t->changes, cap * sizeof(*c));
	if (!c)
		return -ENOMEM;
	t->changes = c;
	t->cap_changes = cap;
	return 0;
}

static int note_change(struct mmsb_txn *t, enum mmsb_change kind, uint64_t id, uint64_t parent, uint64_t bytes)
{
	int rc = reserve_changes(t, 1);

	if (rc < 0)
		return rc;
	t->changes[t->n_changes++] = (struct mmsb_change_rec){
		kind, (t->rec_flags & MMSB_FRF_PROPAGATED) ? MMSB_SRC_PROPAGATION : t->src, id, parent, bytes};
	return 0;
}

/* ---- deferred records (page writes) ---------------------------------------------------- */

void txn_page_view(const struct mmsb_txn *t, const struct ns_node *n, const struct pbuf **pb, uint64_t *size)
{
	size_t i;

	for (i = 0; i < t->n_ovl; i++)
		if (t->ovl[i].id == n->id) {
			*pb = t->ovl[i].pb;
			*size = t->ovl[i].size;
			return;
		}
	*pb = n->data;
	*size = n->size;
}

uint64_t txn_page_size(const struct mmsb_txn *t, const struct ns_node *n)
{
	const struct pbuf *pb;
	uint64_t size;

	txn_page_view(t, n, &pb, &size);
	return size;
}

/* Apply the byte record r to the private copy of its page that t reads
 * (made from the head's bytes on first use). */
static int ovl_apply(struct mmsb_txn *t, struct ns_node *n, const struct mmsb_rec *r)
{
	struct txn_ovl *o = NULL;
	size_t i;

	for (i = 0; i < t->n_ovl && !o; i++)
		if (t->ovl[i].id == n->id)
			o = &t->ovl[i];
	if (!o) {
		if (t->n_ovl == t->cap_ovl) {
			size_t cap = t->cap_ovl ? 2 * t->cap_ovl : 8;
			struct txn_ovl *v = realloc(t->ovl, cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			t->ovl = v;
			t->cap_ovl = cap;
		}
		o = &t->ovl[t->n_ovl++];
		*o = (struct txn_ovl){n->id, pbuf_ref(n->data), n->size};
	}
	return ns_bytes_apply(&o->pb, &o->size, r, &t->scratch, NULL, NULL);
}

static void ovl_clear(struct mmsb_txn *t)
{
	size_t i;

	for (i = 0; i < t->n_ovl; i++)
		pbuf_put(t->ovl[i].pb);
	t->n_ovl = 0;
}

/* Keep record r of a page write for its commit instead of applying it.
 * The page gets room and memory budget for it now (-ENOSPC here, never
 * after the log append), and t's own later reads of it (propagation) see
 * it through an overlay.  The first record keeps its unpacked body in
 * t->hold; the others are decoded from their frames at commit. */
static int txn_defer(struct mmsb_txn *t, const struct mmsb_rec *r)
{
	struct mmsb_store *st = t->st;
	int rc = 0;

	if (t->n_recs > 0 && !t->multi)
		return -EINVAL; /* one record: the caller keeps to one chunk */
	if (mmsb_rec_is_bytes(r->type)) {
		struct ns_node *n = ns_get(st->ns, r->node);

		if (!n)
			return -ENOENT;
		if (!ns_page_ready(n, r)) { /* the buffer may move: readers wait */
			pthread_rwlock_wrlock(&st->lock);
			rc = ns_page_prepare(n, r, st->ns->mem);
			pthread_rwlock_unlock(&st->lock);
		}
		if (rc == 0 && t->multi)
			rc = ovl_apply(t, n, r);
	}
	if (rc == 0 && t->n_recs == 0) {
		struct mmsb_buf b = t->hold;

		t->pend = *r;
		t->hold = t->diff; /* the body stays where pend.raw points */
		t->diff = b;
	}
	return rc;
}

/* Encode r into the frame buffer, note the change, then apply r to the
 * head.  On error nothing of r remains in the frames or the change list;
 * the head is unchanged unless poisoned is set (ns_apply stopped half-way:
 * see ns.h), in which case commit refuses and abort reloads the head. */
static int txn_record(struct mmsb_txn *t, struct mmsb_rec *r, enum mmsb_change kind, uint64_t parent,
		      uint64_t bytes)
{
	struct mmsb_store *st = t->st;
	size_t mark = t->frames.len, n_changes = t->n_changes;
	uint64_t t0;
	int64_t flen;
	int rc;

	if (t->n_recs == t->cap_recs) {
		uint32_t cap = t->cap_recs ? t->cap_recs * 2 : 16;
		struct hist_rec *o = realloc(t->recs, cap * sizeof(*o));

		if (!o)
			return -ENOMEM;
		t->recs = o;
		t->cap_recs = cap;
	}
	r->epoch = t->deferred ? 0 : t->epoch; /* a page write: summed when restamped (rec.h) */
	r->time = t->time;
	r->flags = t->rec_flags;
	if (t->frames.len > UINT32_MAX - MMSB_FR_MAX_PAYLOAD)
		return -EFBIG; /* one transaction stays below 4 GiB of frames */
	flen = mmsb_rec_encode(r, st->seed, &t->frames);
	if (flen < 0)
		return (int)flen;
	rc = note_change(t, kind, r->node, parent, bytes);
	if (t->deferred) { /* a page write: the head changes at commit */
		if (rc == 0)
			rc = txn_defer(t, r);
		if (rc < 0) {
			t->frames.len = mark;
			t->n_changes = n_changes;
			return rc;
		}
		t->recs[t->n_recs++] = store_hist_rec(r, 0, mark, (uint32_t)flen);
		return 0;
	}
	/* before the head first changes: readers keep the committed state
	 * while an exec: recompute runs with st->lock released (prop.c) */
	if (rc == 0 && t->n_recs == 0 && !t->stable && may_exec(t, r))
		store_stable_publish(t); /* without it readers wait: still correct */
	t0 = mmsb_now_ns();
	if (rc == 0)
		rc = ns_apply(st->ns, r, &t->scratch);
	mmsb_stats_record(&st->h_apply, mmsb_now_ns() - t0);
	if (rc < 0) {
		t->frames.len = mark;
		t->n_changes = n_changes;
		/* the operations validate a WRITE/TRUNCATE before recording it,
		 * so its failure is the page buffer's or the device's, after
		 * the page may have changed; any record may stop on -ENOMEM.
		 * -ENOSPC is the memory budget's (max_memory, gpu_mem), which
		 * is charged before the page changes: nothing to undo */
		if (rc == -ENOMEM || ((r->type == MMSB_FR_WRITE || r->type == MMSB_FR_TRUNCATE) && rc != -ENOSPC))
			t->poisoned = rc;
		return rc;
	}
	t->recs[t->n_recs++] = store_hist_rec(r, 0, mark, (uint32_t)flen);
	return 0;
}

static struct ns_node *txn_node(struct mmsb_txn *t, uint64_t id)
{
	return ns_get(t->st->ns, id);
}

/* Record a new node named name in parent: the fields CREATE and MKNOD
 * share, set on r (whose type and type-specific fields the caller set),
 * then recorded and, on success, its attributes into *out. */
static int txn_new_node(struct mmsb_txn *t, struct mmsb_rec *r, enum mmsb_change kind, uint64_t parent,
			const char *name, size_t nlen, enum mmsb_type type, uint32_t mode, uint32_t uid, uint32_t gid,
			struct mmsb_attr *out)
{
	int rc;

	r->node = t->st->ns->next_id;
	r->u.create.parent = parent;
	r->u.create.mode = mode & 07777u;
	r->u.create.uid = uid;
	r->u.create.gid = gid;
	r->u.create.ntype = (uint8_t)type;
	r->u.create.name = name;
	r->u.create.name_len = (uint16_t)nlen;
	rc = txn_record(t, r, kind, parent, 0);
	if (rc == 0 && out)
		ns_attr(txn_node(t, r->node), out);
	return rc;
}

int mmsb_txn_create(struct mmsb_txn *t, uint64_t parent, const char *name, enum mmsb_type type, uint32_t mode,
		    uint32_t uid, uint32_t gid, const char *target, struct mmsb_attr *out)
{
	size_t nlen = strlen(name), tlen = target ? strlen(target) : 0;
	struct mmsb_rec r = {.type = MMSB_FR_CREATE};
	int rc = mmsb_name_check(name, nlen);

	if (rc < 0)
		return rc;
	if (type < MMSB_T_DIR || type > MMSB_T_SYMLINK || (type == MMSB_T_SYMLINK) != (tlen > 0))
		return -EINVAL;
	if (tlen > MMSB_SYMLINK_MAX)
		return -ENAMETOOLONG;
	r.u.create.target = target;
	r.u.create.target_len = (uint32_t)tlen;
	return txn_new_node(t, &r, MMSB_CH_CREATE, parent, name, nlen, type, mode, uid, gid, out);
}

/* The delta of a write to a GPU page: the written bytes as one run (RUNS:
 * n_runs 1, gap off, len, the bytes), so the write never waits for the
 * device to copy the old bytes out for a diff. */
static int write_whole(uint64_t off, const uint8_t *src, size_t len, struct mmsb_buf *out,
		       struct mmsb_delta_info *info)
{
	uint8_t hdr[1 + 10 + 10];
	size_t h = 0;
	uint64_t v;
	int k, rc;

	hdr[h++] = 1;
	for (k = 0, v = off; k < 2; k++, v = len) {
		while (v >= 0x80) {
			hdr[h++] = (uint8_t)(v | 0x80);
			v >>= 7;
		}
		hdr[h++] = (uint8_t)v;
	}
	rc = mmsb_buf_put(out, hdr, h);
	if (rc == 0)
		rc = mmsb_buf_put(out, src, len);
	info->enc = MMSB_ENC_RUNS;
	info->changed = len;
	info->lo = off;
	info->hi = off + len;
	return rc;
}

int mmsb_txn_mknod(struct mmsb_txn *t, uint64_t parent, const char *name, enum mmsb_type type, uint32_t mode,
		   uint32_t uid, uint32_t gid, uint64_t rdev, struct mmsb_attr *out)
{
	size_t nlen = strlen(name);
	struct mmsb_rec r = {.type = MMSB_FR_MKNOD};
	int rc = mmsb_name_check(name, nlen);

	if (rc < 0)
		return rc;
	if (type < MMSB_T_FIFO || type > MMSB_T_BLK)
		return -EINVAL;
	rc = store_feature_set(t->st, MMSB_FEAT_INCOMPAT_NODES);
	if (rc < 0)
		return rc;
	r.u.create.rdev = type == MMSB_T_CHR || type == MMSB_T_BLK ? rdev : 0;
	return txn_new_node(t, &r, MMSB_CH_MKNOD, parent, name, nlen, type, mode, uid, gid, out);
}

int mmsb_txn_link(struct mmsb_txn *t, uint64_t id, uint64_t newparent, const char *newname, struct mmsb_attr *out)
{
	struct mmsb_rec r = {.type = MMSB_FR_LINK, .node = id};
	size_t nlen = strlen(newname);
	struct ns_node *n = txn_node(t, id), *p = txn_node(t, newparent);
	int rc = mmsb_name_check(newname, nlen);

	if (rc < 0)
		return rc;
	if (!n || n->orphan || !p || p->orphan)
		return -ENOENT;
	if (n->type == MMSB_T_DIR)
		return -EPERM;
	if (p->type != MMSB_T_DIR)
		return -ENOTDIR;
	if (ns_lookup(t->st->ns, newparent, newname, nlen))
		return -EEXIST;
	if (n->nlink >= MMSB_LINK_MAX)
		return -EMLINK;
	rc = store_feature_set(t->st, MMSB_FEAT_INCOMPAT_NODES);
	if (rc < 0)
		return rc;
	r.u.unlink.parent = newparent;
	r.u.unlink.name = newname;
	r.u.unlink.name_len = (uint16_t)nlen;
	rc = txn_record(t, &r, MMSB_CH_LINK, newparent, 0);
	if (rc == 0 && out)
		ns_attr(n, out);
	return rc;
}

/* Write one chunk (at most MMSB_WRITE_CHUNK bytes). */
static int write_chunk(struct mmsb_txn *t, struct ns_node *n, uint64_t off, const uint8_t *src, size_t len)
{
	struct mmsb_store *st = t->st;
	struct mmsb_delta_info info;
	struct mmsb_rec r = {.node = n->id};
	const struct pbuf *pb;
	uint64_t size, nsize;
	size_t wlen;
	const uint8_t *old = NULL;
	int rc = 0;

	txn_page_view(t, n, &pb, &size);
	nsize = off + len > size ? off + len : size;
	wlen = off < size ? (size - off < len ? (size_t)(size - off) : len) : 0;
	t->diff.len = 0;
	if (n->dev) { /* a GPU page: logged as written, not diffed (kern.h, enqueue) */
		rc = write_whole(off, src, len, &t->diff, &info);
	} else {
		if (wlen)
			old = pbuf_view(pb, off, wlen, &t->window, &rc);
		if (rc == 0)
			rc = mmsb_delta_diff_window(old, wlen, off, src, len, &t->diff, &info);
	}
	if (rc < 0)
		return rc;
	if (info.changed == 0) {
		if (nsize == size)
			return 0;
		r.type = MMSB_FR_TRUNCATE; /* zeros past the end: only the size changes */
		r.u.truncate.size = nsize;
		return txn_record(t, &r, MMSB_CH_TRUNCATE, 0, nsize);
	}
	r.type = MMSB_FR_WRITE;
	r.u.write.size = nsize;
	r.u.write.changed = info.changed;
	r.u.write.enc = info.enc;
	r.u.write.body = t->diff.p;
	r.u.write.body_len = (uint32_t)t->diff.len;
	r.u.write.raw = t->diff.p;
	r.u.write.raw_len = (uint32_t)t->diff.len;
	if (st->o.lz4_min_bytes && t->diff.len >= st->o.lz4_min_bytes) {
		t->pack.len = 0;
		rc = mmsb_delta_pack(t->diff.p, t->diff.len, &t->pack);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			r.u.write.body = t->pack.p;
			r.u.write.body_len = (uint32_t)t->pack.len;
			r.u.write.flags = MMSB_WF_LZ4;
		}
	}
	rc = txn_record(t, &r, MMSB_CH_WRITE, 0, info.changed);
	if (rc == 0) {
		t->changed += info.changed;
		atomic_fetch_add(&st->n_deltas, 1);
		atomic_fetch_add(&st->delta_bytes, info.changed);
		atomic_fetch_add(&st->delta_record_bytes, mmsb_rec_frame_len(MMSB_WRITE_FIXED + r.u.write.body_len));
	}
	return rc;
}

ssize_t mmsb_txn_write(struct mmsb_txn *t, uint64_t id, uint64_t off, const void *buf, size_t len)
{
	struct ns_node *n = txn_node(t, id);
	size_t done;
	int rc = ns_page_check(n);

	if (rc < 0)
		return rc;
	if (off > MMSB_PAGE_MAX || len > MMSB_PAGE_MAX - off)
		return -EFBIG;
	if (len == 0)
		return 0;
	if (n->orphan) { /* unlinked while referenced: changes in memory only */
		rc = ns_page_write(n, off, buf, len, t->st->ns->mem);
		return rc < 0 ? rc : (ssize_t)len;
	}
	for (done = 0; done < len && rc == 0; done += MMSB_WRITE_CHUNK) {
		size_t c = len - done < MMSB_WRITE_CHUNK ? len - done : MMSB_WRITE_CHUNK;

		rc = write_chunk(t, n, off + done, (const uint8_t *)buf + done, c);
	}
	return rc < 0 ? rc : (ssize_t)len;
}

int mmsb_txn_truncate(struct mmsb_txn *t, uint64_t id, uint64_t size)
{
	struct ns_node *n = txn_node(t, id);
	struct mmsb_rec r = {.type = MMSB_FR_TRUNCATE, .node = id};
	int rc = ns_page_check(n);

	if (rc < 0)
		return rc;
	if (size > MMSB_PAGE_MAX)
		return -EFBIG;
	if (size == txn_page_size(t, n))
		return 0;
	if (n->orphan)
		return ns_page_truncate(n, size, t->st->ns->mem);
	r.u.truncate.size = size;
	return txn_record(t, &r, MMSB_CH_TRUNCATE, 0, size);
}

static int txn_remove(struct mmsb_txn *t, uint64_t parent, const char *name, uint8_t type)
{
	struct mmsb_rec r = {.type = type};
	size_t nlen = strlen(name);
	struct ns_node *p = txn_node(t, parent), *n;
	int rc = mmsb_name_check(name, nlen);

	if (rc < 0)
		return rc == -ENAMETOOLONG ? rc : -ENOENT;
	if (!p || p->orphan)
		return -ENOENT;
	if (p->type != MMSB_T_DIR)
		return -ENOTDIR;
	n = ns_lookup(t->st->ns, parent, name, nlen);
	if (!n)
		return -ENOENT;
	r.node = n->id;
	r.u.unlink.parent = parent;
	r.u.unlink.name = name;
	r.u.unlink.name_len = (uint16_t)nlen;
	return txn_record(t, &r, type == MMSB_FR_RMDIR ? MMSB_CH_RMDIR : MMSB_CH_UNLINK, parent, 0);
}

int mmsb_txn_unlink(struct mmsb_txn *t, uint64_t parent, const char *name)
{
	return txn_remove(t, parent, name, MMSB_FR_UNLINK);
}

int mmsb_txn_rmdir(struct mmsb_txn *t, uint64_t parent, const char *name)
{
	return txn_remove(t, parent, name, MMSB_FR_RMDIR);
}

int mmsb_txn_rename(struct mmsb_txn *t, uint64_t parent, const char *name, uint64_t newparent, const char *newname,
		    unsigned flags)
{
	struct mmsb_rec r = {.type = MMSB_FR_RENAME};
	size_t nl = strlen(name), nnl = strlen(newname);
	struct ns_node *n, *v;
	int rc;

	if (flags & ~(MMSB_RENAME_NOREPLACE | MMSB_RENAME_EXCHANGE) ||
	    flags == (MMSB_RENAME_NOREPLACE | MMSB_RENAME_EXCHANGE))
		return -EINVAL;
	rc = mmsb_name_check(name, nl);
	if (rc == 0)
		rc = mmsb_name_check(newname, nnl);
	if (rc < 0)
		return rc;
	n = ns_lookup(t->st->ns, parent, name, nl);
	if (!n)
		return -ENOENT;
	v = ns_lookup(t->st->ns, newparent, newname, nnl);
	if (v && ns_inode(v) == ns_inode(n))
		return 0; /* onto itself or another name of the node: POSIX says nothing happens */
	r.node = n->id;
	r.u.rename.parent = parent;
	r.u.rename.newparent = newparent;
	r.u.rename.victim = v ? v->id : 0;
	r.u.rename.flags = flags;
	r.u.rename.name = name;
	r.u.rename.name_len = (uint16_t)nl;
	r.u.rename.newname = newname;
	r.u.rename.newname_len = (uint16_t)nnl;
	/* room for the rename and its victim first: once the record is
	 * applied, the victim's change must not fail to be noted */
	rc = reserve_changes(t, 2);
	if (rc == 0)
		rc = txn_record(t, &r, MMSB_CH_RENAME, parent, 0); /* may free v */
	if (rc == 0 && r.u.rename.victim)
		rc = note_change(t, flags & MMSB_RENAME_EXCHANGE ? MMSB_CH_RENAME : MMSB_CH_UNLINK,
				 r.u.rename.victim, newparent, 0); /* reserved: cannot fail */
	return rc;
}

int mmsb_txn_setattr(struct mmsb_txn *t, uint64_t id, const struct mmsb_setattr *sa)
{
	struct mmsb_rec r = {.type = MMSB_FR_SETATTR, .node = id};

	if (!txn_node(t, id))
		return -ENOENT;
	if (sa->valid & ~0x1fu)
		return -EINVAL;
	if (!sa->valid)
		return 0;
	r.u.setattr.valid = sa->valid;
	r.u.setattr.mode = sa->mode & 07777u;
	r.u.setattr.uid = sa->uid;
	r.u.setattr.gid = sa->gid;
	r.u.setattr.atime = sa->atime_ns;
	r.u.setattr.mtime = sa->mtime_ns;
	return txn_record(t, &r, MMSB_CH_SETATTR, 0, 0);
}

static int note_rewired(struct mmsb_txn *t, uint64_t id, const char *name)
{
	if (strcmp(name, MMSB_XATTR_DEPS) != 0 && strcmp(name, MMSB_XATTR_RECOMPUTE) != 0)
		return 0;
	if (t->n_rewired == t->cap_rewired) {
		size_t cap = t->cap_rewired ? t->cap_rewired * 2 : 8;
		uint64_t *v = realloc(t->rewired, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->rewired = v;
		t->cap_rewired = cap;
	}
	t->rewired[t->n_rewired++] = id;
	return 0;
}

/* user.mmsb.location: "cpu" or "gpu", pages only; gpu needs a GPU (or the CPU
 * backend).  The bytes move now, so a failure (-ENOSPC: the GPU is full)
 * changes nothing; the record's replay then finds them in place. */
static int location_check(struct mmsb_txn *t, struct ns_node *n, const char *name, const void *value, size_t len)
{
	bool gpu = len == 3 && memcmp(value, "gpu", 3) == 0;

	if (strcmp(name, MMSB_XATTR_LOCATION) != 0)
		return 0;
	if (n->type != MMSB_T_PAGE || (!gpu && !(len == 3 && memcmp(value, "cpu", 3) == 0)))
		return -EINVAL;
	if (gpu && !t->st->gpu_ok) {
		mmsb_diag(&t->st->diag, MMSB_DIAG_NOTICE,
			  "store: page %" PRIu64 ": location gpu refused: no GPU (mount with the CPU backend to emulate)",
			  n->id);
		return -ENODEV;
	}
	if (n->orphan)
		return 0;
	return ns_page_place(n, gpu ? t->st->gpu : NULL, t->st->ns->mem);
}

int mmsb_txn_setxattr(struct mmsb_txn *t, uint64_t id, const char *name, const void *value, size_t len,
		      unsigned flags)
{
	struct ns_node *n = txn_node(t, id);
	int rc;

	if (!n)
		return -ENOENT;
	t->why[0] = '\0';
	rc = prop_check_xattr(t, n, name, value, len);
	if (rc == 0)
		rc = location_check(t, n, name, value, len);
	if (rc == 0)
		rc = note_rewired(t, id, name);
	if (rc == 0)
		rc = txn_setxattr_raw(t, id, name, value, len, flags);
	n = txn_node(t, id);
	if (rc == 0 && n && (strcmp(name, MMSB_XATTR_DEPS) == 0 || strcmp(name, MMSB_XATTR_RECOMPUTE) == 0) &&
	    ns_xattr_find(n, MMSB_XATTR_ERROR, strlen(MMSB_XATTR_ERROR))) {
		/* a dependency set anew: an old refusal no longer applies (the
		 * recompute at commit records a new failure, if any) */
		t->rec_flags = MMSB_FRF_PROPAGATED;
		rc = mmsb_txn_removexattr(t, id, MMSB_XATTR_ERROR);
		t->rec_flags = 0;
	}
	return rc;
}

int mmsb_txn_set_cred(struct mmsb_txn *t, const struct mmsb_cred *cred)
{
	if (cred->n_groups > t->cap_cred_groups) {
		uint32_t *g = realloc(t->cred_groups, cred->n_groups * sizeof(*g));

		if (!g)
			return -ENOMEM;
		t->cred_groups = g;
		t->cap_cred_groups = cred->n_groups;
	}
	if (cred->n_groups)
		memcpy(t->cred_groups, cred->groups, cred->n_groups * sizeof(*t->cred_groups));
	t->cred = *cred;
	t->cred.groups = t->cred_groups;
	t->has_cred = true;
	return 0;
}

const char *mmsb_txn_why(const struct mmsb_txn *t)
{
	return t->why;
}

/* Would setting name to len bytes on n pass the per-node caps?  The
 * daemon's own user.mmsb.error (propagated records) is exempt: the reason
 * for a failure must always be recordable. */
static int xattr_caps(const struct mmsb_txn *t, const struct ns_node *n, const struct ns_xattr *old, size_t nl,
		      size_t len)
{
	uint64_t count = n->n_xattrs, list = 0, total = 0;
	uint32_t i;

	if (t->rec_flags & MMSB_FRF_PROPAGATED)
		return 0;
	for (i = 0; i < n->n_xattrs; i++) {
		list += strlen(n->xattrs[i].name) + 1;
		total += strlen(n->xattrs[i].name) + n->xattrs[i].len;
	}
	if (old) {
		count--;
		list -= nl + 1;
		total -= nl + old->len;
	}
	if (count + 1 > MMSB_XATTR_COUNT_MAX || list + nl + 1 > MMSB_XATTR_LIST_MAX ||
	    total + nl + len > MMSB_XATTR_TOTAL_MAX)
		return -ENOSPC;
	return 0;
}

/* setxattr without the dependency checks (recomputes set user.mmsb.error). */
int txn_setxattr_raw(struct mmsb_txn *t, uint64_t id, const char *name, const void *value, size_t len,
		     unsigned flags)
{
	struct mmsb_rec r = {.type = MMSB_FR_SETXATTR, .node = id};
	size_t nl = strlen(name);
	struct ns_node *n = txn_node(t, id);
	const struct ns_xattr *x;

	if (!n)
		return -ENOENT;
	if (nl == 0 || nl > MMSB_XATTR_NAME_MAX)
		return -ERANGE;
	if (len > MMSB_XATTR_SIZE_MAX)
		return -E2BIG;
	x = ns_xattr_find(n, name, nl);
	if (x && (flags & MMSB_XATTR_CREATE))
		return -EEXIST;
	if (!x && (flags & MMSB_XATTR_REPLACE))
		return -ENODATA;
	if (x && x->len == len && (len == 0 || memcmp(x->value, value, len) == 0))
		return 0; /* no change, no record */
	if (xattr_caps(t, n, x, nl, len) < 0)
		return -ENOSPC;
	r.u.xattr.name = name;
	r.u.xattr.name_len = (uint16_t)nl;
	r.u.xattr.value = value;
	r.u.xattr.value_len = (uint32_t)len;
	return txn_record(t, &r, MMSB_CH_SETXATTR, 0, len);
}

int mmsb_txn_removexattr(struct mmsb_txn *t, uint64_t id, const char *name)
{
	struct mmsb_rec r = {.type = MMSB_FR_RMXATTR, .node = id};
	size_t nl = strlen(name);
	struct ns_node *n = txn_node(t, id);

	if (!n)
		return -ENOENT;
	if (nl == 0 || nl > MMSB_XATTR_NAME_MAX)
		return -ERANGE;
	if (!ns_xattr_find(n, name, nl))
		return -ENODATA;
	if (!(t->rec_flags & MMSB_FRF_PROPAGATED)) {
		int rc = prop_check_xattr(t, n, name, NULL, 0);

		if (rc == 0)
			rc = note_rewired(t, id, name);
		if (rc < 0)
			return rc;
	}
	r.u.xattr.name = name;
	r.u.xattr.name_len = (uint16_t)nl;
	return txn_record(t, &r, MMSB_CH_RMXATTR, 0, 0);
}

int mmsb_txn_getattr(struct mmsb_txn *t, uint64_t id, struct mmsb_attr *out)
{
	return ns_getattr(t->st->ns, id, out);
}

int mmsb_txn_lookup(struct mmsb_txn *t, uint64_t parent, const char *name, struct mmsb_attr *out)
{
	return ns_lookup_attr(t->st->ns, parent, name, out);
}

ssize_t mmsb_txn_read(struct mmsb_txn *t, uint64_t id, uint64_t off, void *buf, size_t len)
{
	return ns_read(txn_node(t, id), off, buf, len);
}

/* ---- commit and abort ------------------------------------------------------------------ */

static void index_commit(struct mmsb_txn *t, uint32_t seg, uint64_t off)
{
	struct mmsb_store *st = t->st;
	uint32_t i;
	int rc = hist_add_epoch(&st->hist, t->epoch, t->time, (uint8_t)t->src, t->changed);

	for (i = 0; i < t->n_recs && rc == 0; i++) {
		struct hist_rec hr = t->recs[i];

		hr.epoch = t->epoch; /* a page write's records learn it at commit */
		hr.seg = seg;
		hr.off += off;
		rc = hist_add_rec(&st->hist, &hr);
	}
	if (rc < 0)
		mmsb_diag(&st->diag, MMSB_DIAG_ERR, "store: epoch %" PRIu64 ": out of memory indexing it: time travel "
			  "into it is incomplete until the next open", t->epoch);
}

/* Append t's COMMIT frame to its frames (a page write's is a placeholder of
 * epoch 0 until it is restamped). */
static int64_t encode_commit(struct mmsb_txn *t)
{
	struct mmsb_rec c = {.type = MMSB_FR_COMMIT};

	c.epoch = t->deferred ? 0 : t->epoch;
	c.time = t->time;
	c.u.commit.n_frames = t->n_recs;
	c.u.commit.source = (uint8_t)t->src;
	c.u.commit.changed = t->changed;
	return mmsb_rec_encode(&c, t->st->seed, &t->frames);
}

/* Make t's epoch, whose frames the log holds at (seg, off), the head:
 * index it, count it, and ask for a checkpoint when the log has grown
 * enough.  st->lock held for writing. */
static void publish(struct mmsb_txn *t, uint32_t seg, uint64_t off)
{
	struct mmsb_store *st = t->st;

	index_commit(t, seg, off);
	atomic_store(&st->head, t->epoch);
	atomic_fetch_add(&st->n_commits, 1);
	atomic_fetch_add(&st->n_records, t->n_recs);
	pthread_mutex_lock(&st->ck_mu);
	st->log_since_ckpt += t->frames.len;
	if (store_ckpt_due(st) && st->log_since_ckpt >= store_ckpt_due(st) && st->ck_want <= st->ck_done) {
		st->ck_want = t->epoch;
		pthread_cond_broadcast(&st->ck_cond);
	}
	pthread_mutex_unlock(&st->ck_mu);
}

/* With MMSB_SYNC_COMMIT, wait until the epoch just committed is durable
 * (a shared fsync: group commit).  0 or the log's error. */
static int sync_commit(struct mmsb_store *st)
{
	uint64_t t0 = mmsb_now_ns();
	int rc;

	if (st->o.sync != MMSB_SYNC_COMMIT)
		return 0;
	rc = mmsb_tlog_sync(st->log);
	mmsb_stats_record(&st->h_sync, mmsb_now_ns() - t0);
	return rc;
}

static void release(struct mmsb_txn *t)
{
	if (t->stable)
		store_stable_withdraw(t);
	pthread_rwlock_unlock(&t->st->lock);
	pthread_rwlock_unlock(&t->st->gate);
}

int mmsb_txn_commit(struct mmsb_txn *t, uint64_t *epoch)
{
	struct mmsb_store *st = t->st;
	struct mmsb_commit_info ci;
	struct mmsb_change_rec *chg = NULL;
	uint64_t off = 0, e = t->epoch;
	uint32_t seg = 0;
	int64_t flen;
	int rc;

	if (t->poisoned) { /* the head holds part of a record the log never will */
		rc = t->poisoned;
		mmsb_txn_abort(t);
		return rc;
	}
	rc = t->n_recs ? prop_run(t) : 0;
	if (rc < 0) {
		mmsb_txn_abort(t);
		return rc;
	}
	if (t->n_recs == 0) {
		release(t);
		if (epoch)
			*epoch = 0;
		return 0;
	}
	flen = encode_commit(t);
	rc = flen < 0 ? (int)flen : mmsb_tlog_append(st->log, t->epoch, t->frames.p, t->frames.len, &seg, &off);
	if (rc < 0) {
		store_reload(st); /* the log holds exactly the committed state */
		release(t);
		return rc;
	}
	publish(t, seg, off);
	ci = (struct mmsb_commit_info){t->epoch, t->time, t->src, t->n_changes, NULL, t->changed};
	if (st->o.commit_fn) { /* the next writer reuses t: the hook gets a copy */
		chg = malloc(t->n_changes * sizeof(*chg));
		if (chg)
			memcpy(chg, t->changes, t->n_changes * sizeof(*chg));
		else
			ci.n_changes = 0;
		ci.changes = chg;
	}
	mmsb_stats_record(&st->h_commit, mmsb_now_ns() - t->t0);
	release(t);
	if (st->o.commit_fn)
		st->o.commit_fn(st->o.commit_arg, &ci);
	free(chg);
	rc = sync_commit(st);
	if (epoch)
		*epoch = e;
	return rc;
}

void mmsb_txn_abort(struct mmsb_txn *t)
{
	if (t->n_recs > 0 || t->poisoned)
		store_reload(t->st);
	release(t);
}

/* ---- page writes ------------------------------------------------------------------------ */

/* A page write's transaction: an idle one from the pool (its buffers kept
 * from earlier writes, so a write does not fault in fresh memory), or a new
 * one.  NULL on -ENOMEM. */
static struct mmsb_txn *fast_get(struct mmsb_store *st)
{
	struct mmsb_txn *t;

	pthread_mutex_lock(&st->fast_mu);
	t = st->fast_free;
	if (t)
		st->fast_free = t->next_free;
	pthread_mutex_unlock(&st->fast_mu);
	if (!t && (t = calloc(1, sizeof(*t))))
		t->st = st;
	return t;
}

static void fast_put(struct mmsb_txn *t)
{
	struct mmsb_store *st = t->st;

	pthread_mutex_lock(&st->fast_mu);
	t->next_free = st->fast_free;
	st->fast_free = t;
	pthread_mutex_unlock(&st->fast_mu);
}

void txn_free(struct mmsb_txn *t)
{
	ovl_clear(t);
	free(t->ovl);
	mmsb_buf_free(&t->hold);
	mmsb_buf_free(&t->frames);
	mmsb_buf_free(&t->diff);
	mmsb_buf_free(&t->pack);
	mmsb_buf_free(&t->scratch);
	mmsb_buf_free(&t->prop_out);
	mmsb_buf_free(&t->window);
	free(t->changes);
	free(t->rewired);
	free(t->cred_groups);
	free(t->owner_groups);
	free(t->recs);
}

#define FAST_CLOSURE_MAX 64 /* pages a page write with propagation may lock */
/* bytes of the pages a page write with propagation may change: each is
 * copied into an overlay, which a transaction (changing the pages in place)
 * does not need */
#define FAST_OVERLAY_MAX (16ull << 20)

static unsigned stripe_of(uint64_t id)
{
	return (unsigned)((id * 0x9E3779B97F4A7C15ull) >> 58); /* 64 stripes */
}

static bool add_id(uint64_t *set, size_t *n, uint64_t id)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (set[i] == id)
			return true;
	if (*n == FAST_CLOSURE_MAX)
		return false;
	set[(*n)++] = id;
	return true;
}

static int cmp_uint(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

/* Plan a page write of id (st->lock held for reading): the stripes it
 * must hold, sorted, into stripes (*n_stripes).  A page without dependents
 * needs its own; a page with dependents needs those of every page its
 * propagation writes (its descendants) or reads (their parents), and *multi
 * is set.  Returns 0, 1 when the write must take a transaction instead (an
 * unlinked page, a GPU page in the way, more than FAST_CLOSURE_MAX pages or
 * FAST_OVERLAY_MAX bytes to change), or the refusal of a page-only
 * operation. */
static int fast_plan(struct mmsb_store *st, uint64_t id, unsigned *stripes, size_t *n_stripes, bool *multi)
{
	struct ns_node *n = ns_get(st->ns, id);
	uint64_t down[FAST_CLOSURE_MAX], all[FAST_CLOSURE_MAX], size;
	size_t n_down = 0, n_all = 0, k, i;
	int rc = ns_page_check(n);

	if (rc < 0)
		return rc;
	if (n->orphan || (n->dev && n->n_kids))
		return 1; /* a GPU page's own writes are deferred too; its propagation is not */
	add_id(down, &n_down, id);
	add_id(all, &n_all, id);
	for (k = 0; k < n_down; k++) { /* breadth first: the list grows as we go */
		struct ns_node *x = ns_get(st->ns, down[k]);

		for (i = 0; x && i < x->n_kids; i++) {
			struct ns_node *c = ns_get(st->ns, x->kids[i]);
			uint16_t j;

			if (!c || c->dev || c->orphan || !add_id(down, &n_down, c->id) || !add_id(all, &n_all, c->id))
				return 1;
			for (j = 0; j < c->n_deps; j++) {
				struct ns_node *p = ns_get(st->ns, c->deps[j]);

				if (p && p->dev)
					return 1;
				if (!add_id(all, &n_all, c->deps[j]))
					return 1;
			}
		}
	}
	*multi = n_down > 1;
	for (k = 0, size = 0; *multi && k < n_down; k++) {
		struct ns_node *x = ns_get(st->ns, down[k]);

		size += x ? x->size : 0;
		if (size > FAST_OVERLAY_MAX)
			return 1;
	}
	for (i = 0; i < n_all; i++)
		stripes[i] = stripe_of(all[i]);
	qsort(stripes, n_all, sizeof(*stripes), cmp_uint);
	for (i = k = 0; i < n_all; i++)
		if (k == 0 || stripes[k - 1] != stripes[i])
			stripes[k++] = stripes[i];
	*n_stripes = k;
	return 0;
}

/* Commit t's deferred records: the epoch, the log append and the
 * publication to readers, in that order, under commit_mu (the only part of
 * a page write that is serial); st->lock is held for writing only while the
 * records are applied to the head. */
static int fast_commit(struct mmsb_txn *t, uint64_t *epoch)
{
	struct mmsb_store *st = t->st;
	uint64_t off = 0, e;
	uint32_t seg = 0, i;
	int64_t flen = encode_commit(t);
	int rc;

	if (flen < 0)
		return (int)flen;
	pthread_mutex_lock(&st->commit_mu);
	e = atomic_load(&st->head) + 1;
	t->epoch = e;
	t->time = mmsb_wall_ns();
	mmsb_rec_restamp(t->frames.p, t->frames.len, e, t->time, st->seed);
	rc = mmsb_tlog_append(st->log, e, t->frames.p, t->frames.len, &seg, &off);
	if (rc < 0) { /* the head never saw the records: nothing to undo */
		pthread_mutex_unlock(&st->commit_mu);
		return rc;
	}
	t->pend.epoch = e;
	t->pend.time = t->time;
	pthread_rwlock_wrlock(&st->lock);
	rc = ns_apply(st->ns, &t->pend, &t->scratch);
	for (i = 1; i < t->n_recs && rc == 0; i++) { /* propagated records, from their frames */
		struct mmsb_rec r;
		int64_t fl = mmsb_rec_decode(t->frames.p + t->recs[i].off, t->frames.len - t->recs[i].off, st->seed,
					     &r, NULL);

		rc = fl < 0 ? (int)fl : ns_apply(st->ns, &r, &t->scratch);
	}
	if (rc < 0) { /* committed in the log, not in memory: rebuild the head from the log */
		mmsb_diag(&st->diag, MMSB_DIAG_ERR, "store: epoch %" PRIu64 " is logged but applying it failed (%s): "
			  "rebuilding the head", e, strerror(-rc));
		atomic_store(&st->need_reload, true);
	}
	publish(t, seg, off);
	pthread_rwlock_unlock(&st->lock);
	pthread_mutex_unlock(&st->commit_mu);
	mmsb_stats_record(&st->h_commit, mmsb_now_ns() - t->t0);
	*epoch = e;
	return 0; /* the commit hook runs once the locks are released */
}

/* The write itself, with its stripes and st->gate (for reading) held: no
 * other writer can change the pages it reads or writes, nor the tree. */
static ssize_t fast_write(struct mmsb_txn *t, uint64_t id, uint64_t off, const void *buf, size_t len,
			  uint64_t *epoch)
{
	struct ns_node *n = ns_get(t->st->ns, id);
	int rc = write_chunk(t, n, off, buf, len);

	if (rc == 0 && t->n_recs && t->multi)
		rc = prop_run(t); /* no store-wide lock held: an exec: may take its time */
	if (rc < 0)
		return rc;
	if (t->n_recs == 0) {
		*epoch = 0;
		return (ssize_t)len; /* the same bytes: no record, no epoch */
	}
	rc = fast_commit(t, epoch);
	return rc < 0 ? rc : (ssize_t)len;
}

ssize_t mmsb_page_write(struct mmsb_store *st, enum mmsb_source src, uint64_t id, uint64_t off, const void *buf,
			size_t len, uint64_t *epoch)
{
	unsigned stripes[FAST_CLOSURE_MAX];
	size_t n_stripes = 0, i;
	struct mmsb_txn *t, *x;
	bool multi = false, other = true;
	uint64_t e = 0;
	ssize_t rc;
	int crc;

	if (st->read_only || mmsb_tlog_failed(st->log))
		return -EROFS;
	if (off > MMSB_PAGE_MAX || len > MMSB_PAGE_MAX - off)
		return -EFBIG;
	t = len && len <= MMSB_WRITE_CHUNK ? fast_get(st) : NULL;
	if (t) {
		pthread_rwlock_rdlock(&st->gate); /* the tree stays as it is */
		pthread_rwlock_rdlock(&st->lock);
		rc = st->read_only ? -EROFS : fast_plan(st, id, stripes, &n_stripes, &multi);
		pthread_rwlock_unlock(&st->lock);
		other = rc == 1;
		if (rc == 0) {
			txn_reset(t, src, true, multi);
			for (i = 0; i < n_stripes; i++) /* in order: no two writers wait for each other */
				pthread_mutex_lock(&st->page_mu[stripes[i]]);
			rc = fast_write(t, id, off, buf, len, &e);
			while (n_stripes)
				pthread_mutex_unlock(&st->page_mu[stripes[--n_stripes]]);
			ovl_clear(t);
		}
		pthread_rwlock_unlock(&st->gate);
		if (e && st->o.commit_fn) {
			struct mmsb_commit_info ci = {e, t->time, t->src, t->n_changes, t->changes, t->changed};

			st->o.commit_fn(st->o.commit_arg, &ci);
		}
		fast_put(t);
		if (atomic_exchange(&st->need_reload, false)) {
			pthread_rwlock_wrlock(&st->gate);
			pthread_rwlock_wrlock(&st->lock);
			store_reload(st);
			pthread_rwlock_unlock(&st->lock);
			pthread_rwlock_unlock(&st->gate);
		}
		if (!other) {
			if (rc >= 0 && e && (crc = sync_commit(st)) < 0)
				rc = crc;
			if (rc >= 0 && epoch)
				*epoch = e;
			return rc;
		}
	}
	/* not a plain host page (or an empty or huge write): a transaction */
	rc = mmsb_txn_begin(st, src, &x);
	if (rc < 0)
		return rc;
	rc = mmsb_txn_write(x, id, off, buf, len);
	if (rc < 0) {
		mmsb_txn_abort(x);
		return rc;
	}
	crc = mmsb_txn_commit(x, &e);
	if (crc < 0)
		return crc;
	if (epoch)
		*epoch = e;
	return rc;
}
