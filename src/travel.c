/* travel.c - history, differences between epochs, restore, compaction and
 * verification: the operations over retained history.  Built on the log
 * index (hist.c) and time-travel views (snap.c). */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "delta.h"
#include "err.h"
#include "store_int.h"

/* ---- history ---------------------------------------------------------------------- */

static int hist_emit(struct mmsb_store *st, const struct hist_rec *hr, mmsb_hist_fn fn, void *arg)
{
	const struct hist_epoch *he = hist_epoch(&st->hist, hr->epoch);
	struct mmsb_hist_entry e = {
		.epoch = hr->epoch, .time_ns = he ? he->time : 0,
		.source = (hr->flags & MMSB_FRF_PROPAGATED) ? MMSB_SRC_PROPAGATION
			  : he ? (enum mmsb_source)he->source : MMSB_SRC_USER,
		.kind = (enum mmsb_change)hr->type, /* MMSB_CH_* follow MMSB_FR_* */
		.id = hr->node,
		.bytes = hr->type == MMSB_FR_WRITE ? hr->changed : hr->type == MMSB_FR_TRUNCATE ? hr->size : 0,
	};

	return fn(arg, &e);
}

/* -EUCLEAN if the records of an epoch in [since, until] are lost. */
static int history_lost(struct mmsb_store *st, uint64_t since, uint64_t until)
{
	size_t i;

	for (i = 0; i < st->n_lost; i++)
		if (st->lost[i].first <= until && st->lost[i].last >= since)
			return -MMSB_ECORRUPT;
	return 0;
}

int mmsb_history(struct mmsb_store *st, uint64_t id, uint64_t since, uint64_t until, mmsb_hist_fn fn, void *arg)
{
	const struct hist_rec *hr;
	uint64_t seq;
	int rc = store_hist_need(st, since);

	if (rc < 0)
		return rc;
	pthread_rwlock_rdlock(&st->lock);
	if (id) {
		const struct hist_node *hn = hist_node(&st->hist, id);
		uint32_t i = hn ? hist_node_index_after(hn, &st->hist, since ? since - 1 : 0) : 0;

		for (; hn && i < hn->n; i++) {
			hr = hist_rec(&st->hist, hn->seqs[i]);
			if (!hr || hr->epoch > until || hist_emit(st, hr, fn, arg))
				break;
		}
	} else {
		for (seq = hist_global_seq_after(&st->hist, since ? since - 1 : 0); (hr = hist_rec(&st->hist, seq)); seq++)
			if (hr->epoch > until || hist_emit(st, hr, fn, arg))
				break;
	}
	rc = history_lost(st, since, until);
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

int mmsb_epoch_info(struct mmsb_store *st, uint64_t epoch, struct mmsb_epoch_info *out)
{
	const struct hist_epoch *he;
	int rc = store_hist_need(st, epoch);

	if (rc < 0)
		return rc;
	pthread_rwlock_rdlock(&st->lock);
	he = hist_epoch(&st->hist, epoch);
	if (history_lost(st, epoch, epoch) < 0) {
		rc = -MMSB_ECORRUPT;
	} else if (he) {
		*out = (struct mmsb_epoch_info){epoch, he->time, (enum mmsb_source)he->source, he->n, he->changed};
	} else if (epoch == 0 && st->oldest == 0) {
		*out = (struct mmsb_epoch_info){0, st->ctime, MMSB_SRC_SYSTEM, 0, 0};
	} else {
		rc = -ENOENT;
	}
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

/* ---- diff ----------------------------------------------------------------------------- */

struct diff_ctx {
	struct mmsb_snap *a, *b;
	mmsb_diff_fn fn;
	void *arg;
	char path[4096];
	struct mmsb_range *r; /* ranges of the page being compared */
	size_t n, cap;
	int rc;
	struct mmsb_buf xa, xb; /* GPU pages copied out */
	uint64_t base;		/* offset of the bytes being compared (add_range_at) */
};

static int add_range(void *arg, uint64_t off, uint64_t len)
{
	struct diff_ctx *d = arg;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct mmsb_range *r = realloc(d->r, cap * sizeof(*r));

		if (!r)
			return d->rc = -ENOMEM;
		d->r = r;
		d->cap = cap;
	}
	d->r[d->n].off = off;
	d->r[d->n].len = len;
	d->n++;
	return 0;
}

/* A differing range of a piece compared at d->base: ranges that touch
 * merge, so comparing piece by piece gives the same maximal ranges. */
static int add_range_at(void *arg, uint64_t off, uint64_t len)
{
	struct diff_ctx *d = arg;

	off += d->base;
	if (d->n && d->r[d->n - 1].off + d->r[d->n - 1].len == off) {
		d->r[d->n - 1].len += len;
		return 0;
	}
	return add_range(d, off, len);
}

static bool xattrs_equal(const struct ns_node *x, const struct ns_node *y)
{
	uint32_t i;

	if (x->n_xattrs != y->n_xattrs)
		return false;
	for (i = 0; i < x->n_xattrs; i++) {
		const struct ns_xattr *o = ns_xattr_find(y, x->xattrs[i].name, strlen(x->xattrs[i].name));

		if (!o || o->len != x->xattrs[i].len || memcmp(o->value, x->xattrs[i].value, o->len) != 0)
			return false;
	}
	return true;
}

/* Directories' mtimes follow their entries, which are compared one by one:
 * only other nodes report an mtime change, or a change of their number of
 * names (a hard link made or removed elsewhere). */
static bool attrs_equal(const struct ns_node *x, const struct ns_node *y)
{
	return x->mode == y->mode && x->uid == y->uid && x->gid == y->gid &&
	       (x->type == MMSB_T_DIR || (x->mtime == y->mtime && x->nlink == y->nlink)) && xattrs_equal(x, y);
}

static int diff_node(struct diff_ctx *d, size_t plen, struct ns_node *x, struct ns_node *y);

static int diff_report(struct diff_ctx *d, char kind, const struct mmsb_range *r, size_t n)
{
	if (d->rc == 0 && d->fn(d->arg, kind, d->path, r, n))
		d->rc = 1; /* stop */
	return d->rc;
}

/* Report a whole subtree as added or removed. */
static int diff_subtree(struct diff_ctx *d, size_t plen, struct ns_node *n, char kind)
{
	uint32_t i;

	diff_report(d, kind, NULL, 0);
	for (i = 0; n->type == MMSB_T_DIR && i < n->n_dents && d->rc == 0; i++) {
		struct ns_node *c = n->dents[i].node;
		size_t l;

		if (!c)
			continue;
		l = plen + (plen ? 1 : 0) + c->name_len;
		if (l >= sizeof(d->path))
			return d->rc = -ENAMETOOLONG;
		if (plen)
			d->path[plen] = '/';
		memcpy(d->path + plen + (plen ? 1 : 0), c->name, c->name_len + 1);
		diff_subtree(d, l, c, kind);
		d->path[plen] = '\0';
	}
	return d->rc;
}

static int diff_dir(struct diff_ctx *d, size_t plen, struct ns_node *x, struct ns_node *y)
{
	uint32_t i;
	int pass;

	for (pass = 0; pass < 2 && d->rc == 0; pass++) {
		struct ns_node *dir = pass == 0 ? y : x;
		struct ns *other = pass == 0 ? d->a->ns : d->b->ns;
		uint64_t oid = pass == 0 ? x->id : y->id;

		for (i = 0; i < dir->n_dents && d->rc == 0; i++) {
			struct ns_node *c = dir->dents[i].node, *o;
			size_t l;

			if (!c)
				continue;
			o = ns_lookup(other, oid, c->name, c->name_len);
			if (pass == 1 && o)
				continue; /* seen in the first pass */
			l = plen + (plen ? 1 : 0) + c->name_len;
			if (l >= sizeof(d->path))
				return d->rc = -ENAMETOOLONG;
			if (plen)
				d->path[plen] = '/';
			memcpy(d->path + plen + (plen ? 1 : 0), c->name, c->name_len + 1);
			if (pass == 0)
				diff_node(d, l, o, c);
			else
				diff_subtree(d, l, c, '-');
			d->path[plen] = '\0';
		}
	}
	return d->rc;
}

static int diff_page(struct diff_ctx *d, struct ns_node *x, struct ns_node *y)
{
	int rc = snap_load_page(d->a, x, false);

	if (rc == 0)
		rc = snap_load_page(d->b, y, false);
	if (rc < 0)
		return d->rc = rc;
	const uint8_t *a = (const uint8_t *)"", *b = a;

	if (x->size)
		a = pbuf_view(x->data, 0, x->size, &d->xa, &rc);
	if (rc == 0 && y->size)
		b = pbuf_view(y->data, 0, y->size, &d->xb, &rc);
	if (rc < 0)
		return d->rc = rc;
	d->n = 0;
	d->base = 0;
	if (x->size && y->size && x->data->dmap && y->data->dmap) {
		/* both sparse-capable: compare only chunks that hold data on
		 * either side (two holes are equal without looking) */
		uint64_t m = x->size < y->size ? x->size : y->size, top = x->size + y->size - m, off;

		for (off = 0; off < m && !d->rc; off += PBUF_CHUNK) {
			uint64_t c = off / PBUF_CHUNK, len = m - off < PBUF_CHUNK ? m - off : PBUF_CHUNK;

			if (!pbuf_chunk_data(x->data, c) && !pbuf_chunk_data(y->data, c))
				continue;
			d->base = off;
			mmsb_delta_compare(a + off, len, b + off, len, add_range_at, d);
		}
		d->base = 0;
		if (top > m && !d->rc) /* past the shorter end every byte differs */
			add_range_at(d, m, top - m);
	} else {
		mmsb_delta_compare(a, x->size, b, y->size, add_range_at, d);
	}
	if (d->rc)
		return d->rc;
	if (d->n)
		return diff_report(d, 'M', d->r, d->n);
	return attrs_equal(x, y) ? 0 : diff_report(d, 'A', NULL, 0);
}

/* x at e1 (may be NULL), y at e2 (may be NULL), both at path d->path
 * (directory entries: link entries name their nodes). */
static int diff_node(struct diff_ctx *d, size_t plen, struct ns_node *x, struct ns_node *y)
{
	x = x ? ns_inode(x) : NULL;
	y = y ? ns_inode(y) : NULL;
	if (!x && !y)
		return 0;
	if (!y)
		return diff_subtree(d, plen, x, '-');
	if (!x)
		return diff_subtree(d, plen, y, '+');
	if (x->type != y->type) {
		diff_subtree(d, plen, x, '-');
		return diff_subtree(d, plen, y, '+');
	}
	if (x->type != MMSB_T_DIR && x->id == y->id && x->epoch == y->epoch)
		return 0; /* untouched between the two epochs */
	switch (x->type) {
	case MMSB_T_PAGE:
		return diff_page(d, x, y);
	case MMSB_T_SYMLINK:
		if (x->size != y->size || memcmp(x->data->data, y->data->data, x->size) != 0)
			return diff_report(d, 'M', NULL, 0);
		return attrs_equal(x, y) ? 0 : diff_report(d, 'A', NULL, 0);
	case MMSB_T_DIR:
		if (!attrs_equal(x, y))
			diff_report(d, 'A', NULL, 0);
		return diff_dir(d, plen, x, y);
	default: /* fifos, sockets, devices: metadata only */
		return attrs_equal(x, y) && x->rdev == y->rdev ? 0 : diff_report(d, 'A', NULL, 0);
	}
}

int mmsb_diff(struct mmsb_store *st, uint64_t e1, uint64_t e2, const char *const *paths, size_t n_paths,
	      mmsb_diff_fn fn, void *arg)
{
	struct diff_ctx d = {.fn = fn, .arg = arg};
	static const char *const root[] = {""};
	struct mmsb_snap *lo, *hi;
	size_t i;
	int rc;

	rc = mmsb_snap_open(st, e1, &d.a);
	if (rc < 0)
		return rc;
	rc = mmsb_snap_open(st, e2, &d.b);
	if (rc < 0) {
		mmsb_snap_close(d.a);
		return rc;
	}
	lo = e1 <= e2 ? d.a : d.b;
	hi = e1 <= e2 ? d.b : d.a;
	pthread_mutex_lock(&lo->mu);
	if (hi != lo)
		pthread_mutex_lock(&hi->mu);
	if (!paths) {
		paths = root;
		n_paths = 1;
	}
	for (i = 0; i < n_paths && d.rc == 0; i++) {
		struct ns_node *x = NULL, *y = NULL;
		int r1 = ns_resolve_entry(d.a->ns, paths[i], &x), r2 = ns_resolve_entry(d.b->ns, paths[i], &y);
		const char *p = paths[i];
		size_t l;

		while (*p == '/')
			p++;
		l = strlen(p);
		while (l && p[l - 1] == '/')
			l--;
		if (r1 < 0 && r2 < 0) {
			d.rc = -ENOENT;
			break;
		}
		if (l >= sizeof(d.path)) {
			d.rc = -ENAMETOOLONG;
			break;
		}
		memcpy(d.path, p, l);
		d.path[l] = '\0';
		diff_node(&d, l, r1 < 0 ? NULL : x, r2 < 0 ? NULL : y);
	}
	if (hi != lo)
		pthread_mutex_unlock(&hi->mu);
	pthread_mutex_unlock(&lo->mu);
	mmsb_snap_close(d.a);
	mmsb_snap_close(d.b);
	free(d.r);
	mmsb_buf_free(&d.xa);
	mmsb_buf_free(&d.xb);
	return d.rc < 0 ? d.rc : 0;
}

/* ---- restore ----------------------------------------------------------------------------- */

/* A node restored under one name, for its other names: view id -> head id. */
struct restore_pair {
	uint64_t s; /* node id in the view */
	uint64_t h; /* the head node that now holds it */
};

struct restore_ctx {
	struct mmsb_txn *t;
	struct mmsb_snap *s;
	struct restore_pair *map; /* nodes with several names (view or head) restored so far */
	size_t n_map, cap_map;	  /* used / allocated entries of map */
};

static const struct restore_pair *map_find(const struct restore_ctx *c, uint64_t s, uint64_t h)
{
	size_t i;

	for (i = 0; i < c->n_map; i++)
		if (c->map[i].s == s || c->map[i].h == h)
			return &c->map[i];
	return NULL;
}

static int map_add(struct restore_ctx *c, uint64_t s, uint64_t h)
{
	if (c->n_map == c->cap_map) {
		size_t cap = c->cap_map ? c->cap_map * 2 : 8;
		struct restore_pair *m = realloc(c->map, cap * sizeof(*m));

		if (!m)
			return -ENOMEM;
		c->map = m;
		c->cap_map = cap;
	}
	c->map[c->n_map++] = (struct restore_pair){s, h};
	return 0;
}

/* Remove the directory entry n (and, for a directory, what it holds). */
static int remove_tree(struct mmsb_txn *t, struct ns_node *n)
{
	struct ns *ns = t->st->ns;
	char name[MMSB_NAME_MAX + 1];
	uint64_t parent = n->parent;
	int rc = 0;

	while (rc == 0 && n->type == MMSB_T_DIR && n->n_live) {
		uint32_t i;

		for (i = 0; i < n->n_dents && !n->dents[i].node; i++)
			;
		rc = remove_tree(t, n->dents[i].node);
	}
	if (rc < 0)
		return rc;
	memcpy(name, n->name, n->name_len + 1);
	(void)ns;
	return n->type == MMSB_T_DIR ? mmsb_txn_rmdir(t, parent, name) : mmsb_txn_unlink(t, parent, name);
}

static int restore_attrs(struct mmsb_txn *t, const struct ns_node *s, struct ns_node *h)
{
	struct mmsb_setattr sa = {0};
	uint32_t i;
	int rc = 0;

	for (i = 0; i < h->n_xattrs && rc == 0;) {
		const char *nm = h->xattrs[i].name;

		if (!ns_xattr_find(s, nm, strlen(nm)))
			rc = mmsb_txn_removexattr(t, h->id, nm); /* moves the last one into slot i */
		else
			i++;
	}
	for (i = 0; i < s->n_xattrs && rc == 0; i++)
		rc = mmsb_txn_setxattr(t, h->id, s->xattrs[i].name, s->xattrs[i].value, s->xattrs[i].len, 0);
	if (rc < 0)
		return rc;
	if (s->mode != h->mode)
		sa.valid |= MMSB_SET_MODE;
	if (s->uid != h->uid)
		sa.valid |= MMSB_SET_UID;
	if (s->gid != h->gid)
		sa.valid |= MMSB_SET_GID;
	if (s->mtime != h->mtime)
		sa.valid |= MMSB_SET_MTIME;
	sa.mode = s->mode;
	sa.uid = s->uid;
	sa.gid = s->gid;
	sa.mtime_ns = s->mtime;
	return mmsb_txn_setattr(t, h->id, &sa);
}

static int restore_node(struct restore_ctx *c, struct ns_node *s, struct ns_node *h, uint64_t parent,
			const char *name);

static int restore_children(struct restore_ctx *c, struct ns_node *s, struct ns_node *h)
{
	struct ns *hs = c->t->st->ns;
	uint32_t i;
	int rc = 0;

	for (i = 0; i < s->n_dents && rc == 0; i++) {
		struct ns_node *sc = s->dents[i].node;

		if (sc) /* directory entries: restore_node looks through link entries */
			rc = restore_node(c, sc, ns_lookup(hs, h->id, sc->name, sc->name_len), h->id, sc->name);
	}
	for (i = 0; i < h->n_dents && rc == 0; i++) {
		struct ns_node *hc = h->dents[i].node;

		if (hc && !ns_lookup(c->s->ns, s->id, hc->name, hc->name_len)) {
			rc = remove_tree(c->t, hc);
			i = 0; /* the array may have been compacted */
		}
	}
	return rc;
}

#define RESTORE_SPAN (64ull << 20) /* bytes per write */

/* Make head page h hold the bytes of view page s (the size is set after):
 * write s's bytes where s or h may hold data, in spans of at most
 * RESTORE_SPAN; where both are holes they are equal already, so a sparse
 * page is restored at the cost of its data. */
static int restore_bytes(struct mmsb_txn *t, const struct ns_node *s, struct ns_node *h)
{
	struct mmsb_buf tmp = {0};
	const uint8_t *bytes;
	uint64_t off = 0, end;
	ssize_t w;
	int rc = 0;

	if (!s->size)
		return 0;
	bytes = pbuf_view(s->data, 0, s->size, &tmp, &rc);
	while (rc == 0 && off < s->size) {
		for (end = off; end < s->size && end - off < RESTORE_SPAN; end += PBUF_CHUNK)
			if (!pbuf_chunk_data(s->data, end / PBUF_CHUNK) &&
			    !(end < h->size && pbuf_chunk_data(h->data, end / PBUF_CHUNK)))
				break;
		if (end > s->size)
			end = s->size;
		if (end > off) {
			w = mmsb_txn_write(t, h->id, off, bytes + off, (size_t)(end - off));
			rc = w < 0 ? (int)w : 0;
			off = end;
		} else {
			off += PBUF_CHUNK; /* a hole in both */
		}
	}
	mmsb_buf_free(&tmp);
	return rc;
}

/* A node with several names: the first one restored makes (or keeps) the
 * head node, the others become links to it.  *done: nothing more to do. */
static int restore_links(struct restore_ctx *c, struct ns_node *s, struct ns_node **hd, uint64_t parent,
			 const char *name, bool *done)
{
	const struct restore_pair *m = map_find(c, s->id, UINT64_MAX);
	struct ns_node *h = *hd ? ns_inode(*hd) : NULL;
	int rc = 0;

	*done = false;
	if (m) { /* another name of s is restored already: this one is a link to it */
		*done = true;
		if (h && h->id == m->h)
			return 0;
		if (*hd)
			rc = remove_tree(c->t, *hd);
		return rc < 0 ? rc : mmsb_txn_link(c->t, m->h, parent, name, NULL);
	}
	if (h && map_find(c, UINT64_MAX, h->id)) { /* h holds another restored node */
		rc = remove_tree(c->t, *hd);
		*hd = NULL;
	}
	return rc;
}

static int restore_node(struct restore_ctx *c, struct ns_node *sd, struct ns_node *hd, uint64_t parent,
			const char *name)
{
	struct ns_node *s = sd ? ns_inode(sd) : NULL, *h;
	struct mmsb_attr a;
	bool done = false, shared;
	int rc = 0;

	if (!s)
		return hd ? remove_tree(c->t, hd) : 0;
	if (s->type != MMSB_T_DIR)
		rc = restore_links(c, s, &hd, parent, name, &done);
	if (rc < 0 || done)
		return rc;
	h = hd ? ns_inode(hd) : NULL;
	if (h && (h->type != s->type || (s->type > MMSB_T_SYMLINK && h->rdev != s->rdev) ||
		  (s->type == MMSB_T_SYMLINK && (h->size != s->size || memcmp(h->data->data, s->data->data, s->size))))) {
		rc = remove_tree(c->t, hd);
		h = NULL;
	}
	shared = s->nlink > 1 || (h && h->nlink > 1);
	if (rc == 0 && !h && s->id != MMSB_ROOT_ID) {
		char target[4097] = "";

		if (s->type == MMSB_T_SYMLINK) {
			memcpy(target, s->data->data, s->size);
			target[s->size] = '\0';
		}
		if (s->type > MMSB_T_SYMLINK)
			rc = mmsb_txn_mknod(c->t, parent, name, (enum mmsb_type)s->type, s->mode, s->uid, s->gid,
					    s->rdev, &a);
		else
			rc = mmsb_txn_create(c->t, parent, name, (enum mmsb_type)s->type, s->mode, s->uid, s->gid,
					     s->type == MMSB_T_SYMLINK ? target : NULL, &a);
		h = rc == 0 ? ns_get(c->t->st->ns, a.id) : NULL;
	}
	if (rc == 0 && shared && s->type != MMSB_T_DIR)
		rc = map_add(c, s->id, h->id);
	if (rc == 0 && s->type == MMSB_T_PAGE) {
		rc = snap_load_page(c->s, s, true);
		if (rc == 0)
			rc = restore_bytes(c->t, s, h);
		if (rc == 0 && h->size != s->size)
			rc = mmsb_txn_truncate(c->t, h->id, s->size);
	}
	if (rc == 0 && s->type == MMSB_T_DIR)
		rc = restore_children(c, s, h);
	if (rc == 0)
		rc = restore_attrs(c->t, s, h);
	return rc;
}

/* Make sure the parents of path exist at head, creating them as at the
 * view.  *parent gets the head id of the last one. */
static int restore_parents(struct restore_ctx *c, const char *path, uint64_t *parent, const char **leaf)
{
	struct ns *hs = c->t->st->ns;
	struct ns_node *sp = c->s->ns->root;
	uint64_t hp = MMSB_ROOT_ID;
	const char *p = path, *e;

	while (*p == '/')
		p++;
	while ((e = strchr(p, '/')) != NULL && e[1]) {
		size_t len = (size_t)(e - p);
		struct ns_node *sn = sp ? ns_lookup(c->s->ns, sp->id, p, len) : NULL, *hn = ns_lookup(hs, hp, p, len);
		char name[MMSB_NAME_MAX + 1];
		struct mmsb_attr a;
		int rc;

		if (!hn) {
			if (!sn || sn->type != MMSB_T_DIR || len > MMSB_NAME_MAX)
				return -ENOENT;
			memcpy(name, p, len);
			name[len] = '\0';
			rc = mmsb_txn_create(c->t, hp, name, MMSB_T_DIR, sn->mode, sn->uid, sn->gid, NULL, &a);
			if (rc < 0)
				return rc;
			hn = ns_get(hs, a.id);
		}
		if (hn->type != MMSB_T_DIR)
			return -ENOTDIR;
		hp = hn->id;
		sp = sn;
		for (p = e + 1; *p == '/'; p++)
			;
	}
	*parent = hp;
	*leaf = p;
	return 0;
}

static int restore_path(struct restore_ctx *c, const char *path)
{
	struct ns_node *s = NULL, *h = NULL;
	int rs = ns_resolve_entry(c->s->ns, path, &s), rh = ns_resolve_entry(c->t->st->ns, path, &h), rc;
	char leaf[MMSB_NAME_MAX + 1];
	const char *lp = "";
	uint64_t parent = MMSB_ROOT_ID;
	size_t l;

	if (rs < 0 && rh < 0)
		return -ENOENT;
	if (rs == 0 && s->id == MMSB_ROOT_ID)
		return restore_node(c, s, h, MMSB_ROOT_ID, "");
	if (rs < 0)
		return remove_tree(c->t, h);
	rc = restore_parents(c, path, &parent, &lp);
	if (rc < 0)
		return rc;
	l = strcspn(lp, "/");
	if (l > MMSB_NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(leaf, lp, l);
	leaf[l] = '\0';
	return restore_node(c, s, rh == 0 ? h : NULL, parent, leaf);
}

int mmsb_restore(struct mmsb_store *st, uint64_t e, const char *const *paths, size_t n_paths, uint64_t *epoch)
{
	struct restore_ctx c = {0};
	size_t i;
	int rc;

	rc = snap_build(st, e, &c.s); /* private: the transaction below holds st->lock */
	if (rc < 0)
		return rc;
	rc = mmsb_txn_begin(st, MMSB_SRC_RESTORE, &c.t);
	if (rc < 0) {
		snap_free(c.s);
		return rc;
	}
	if (!paths)
		rc = restore_path(&c, "");
	for (i = 0; paths && i < n_paths && rc == 0; i++)
		rc = restore_path(&c, paths[i]);
	if (rc == 0)
		rc = mmsb_txn_commit(c.t, epoch);
	else
		mmsb_txn_abort(c.t);
	snap_free(c.s);
	free(c.map);
	return rc;
}

/* ---- compaction ----------------------------------------------------------------------------- */

int mmsb_compact(struct mmsb_store *st, uint64_t before, unsigned flags, uint64_t *kept)
{
	struct ckpt_ctx c = store_ckpt_ctx(st);
	uint64_t keep;
	int rc;

	if (st->read_only)
		return -EROFS;
	keep = store_base_ckpt(st, before);
	if (keep == 0)
		return -ENOENT;
	rc = tags_before(st, keep, flags & MMSB_COMPACT_FORCE);
	if (rc < 0)
		return rc;
	pthread_rwlock_wrlock(&st->lock);
	if (keep > st->oldest) {
		/* the floor first, then checkpoints, then segments: a crash in
		 * between leaves older files, harmless, never a gap */
		rc = store_write_compacted(st, keep);
		if (rc == 0)
			rc = mmsb_ckpt_remove_before(&c, keep);
		if (rc >= 0)
			rc = mmsb_tlog_drop_upto(st->log, keep);
		pthread_mutex_lock(&st->ck_mu);
		store_ckpts_drop_before(st, keep);
		if (rc >= 0)
			rc = store_find_oldest(st);
		pthread_mutex_unlock(&st->ck_mu);
		if (rc >= 0) {
			hist_drop_upto(&st->hist, st->oldest);
			rc = 0;
		}
	} else {
		rc = 0;
	}
	if (rc == 0)
		*kept = st->oldest;
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

/* ---- verification ------------------------------------------------------------------------------ */

struct verify_ctx {
	struct mmsb_store *st;	    /* the store verified */
	struct ns *ns;		    /* replayed from base; NULL: nothing to apply records to */
	uint64_t base;		    /* checkpoint epoch ns started from (0: the empty store) */
	uint64_t oldest;	    /* the oldest retained epoch */
	uint64_t next;		    /* the epoch expected next */
	const struct ckpt_info *ck; /* checkpoints that load, oldest first */
	size_t n_ck;		    /* entries in ck */
	struct mmsb_buf scratch;    /* for ns_apply */
	int rc;			    /* first damage found (-EUCLEAN) */
};

/* After a gap: continue from the oldest good checkpoint at or after the
 * epoch before t (its state is known), or stop applying. */
static void verify_rebase(struct verify_ctx *v, uint64_t epoch)
{
	struct ckpt_ctx c = store_ckpt_ctx(v->st);
	size_t i;

	ns_free(v->ns);
	v->ns = NULL;
	for (i = 0; i < v->n_ck; i++)
		if (v->ck[i].epoch + 1 >= epoch) {
			if (mmsb_ckpt_load(&c, v->ck[i].epoch, false, &v->ns, NULL, NULL) == 0)
				v->base = v->ck[i].epoch;
			break;
		}
}

static int verify_txn(void *arg, const struct tlog_txn *t)
{
	struct verify_ctx *v = arg;
	uint32_t i;

	if (t->epoch > v->next && t->epoch - 1 <= v->oldest) {
		mmsb_diag(&v->st->diag, MMSB_DIAG_ERR,
			  "verify: the log records of epochs %" PRIu64 "-%" PRIu64 " are damaged, before the oldest "
			  "retained epoch %" PRIu64 ": no retained epoch is affected",
			  v->next, t->epoch - 1, v->oldest);
		if (v->rc == 0)
			v->rc = -MMSB_ECORRUPT;
	} else if (t->epoch > v->next && t->epoch - 1 > v->base) {
		mmsb_diag(&v->st->diag, MMSB_DIAG_ERR, "verify: the log records of epochs %" PRIu64 "-%" PRIu64 " are lost",
			  v->next, t->epoch - 1);
		if (v->rc == 0)
			v->rc = -MMSB_ECORRUPT;
		verify_rebase(v, t->epoch);
	} else if (t->epoch > v->next) {
		mmsb_diag(&v->st->diag, MMSB_DIAG_ERR,
			  "verify: the log records of epochs %" PRIu64 "-%" PRIu64 " are lost (checkpoint %" PRIu64
			  " covers the state)",
			  v->next, t->epoch - 1, v->base);
		if (v->rc == 0)
			v->rc = -MMSB_ECORRUPT;
	}
	v->next = t->epoch + 1;
	if (t->epoch <= v->base || !v->ns)
		return 0;
	for (i = 0; i < t->n; i++) {
		int rc = ns_apply(v->ns, &t->recs[i], &v->scratch);

		if (rc < 0) {
			mmsb_diag(&v->st->diag, MMSB_DIAG_ERR,
				  "verify: epoch %" PRIu64 " (segment %u @0x%" PRIx64 "): %s record does not apply: %s",
				  t->epoch, t->seg, t->offs[i], mmsb_rec_type_name(t->recs[i].type), strerror(-rc));
			if (v->rc == 0)
				v->rc = -MMSB_ECORRUPT;
			return 0;
		}
	}
	return 0;
}

/* Every superblock copy, checkpoint and log segment, re-read from disk. */
int mmsb_store_verify(struct mmsb_store *st)
{
	struct ckpt_ctx c = store_ckpt_ctx(st);
	struct tlog_opts to = {st->io, &st->diag, st->seed, st->o.segment_bytes, true};
	struct verify_ctx v = {.st = st};
	struct ckpt_info *ck = NULL;
	struct mmsb_tlog *log = NULL;
	struct tlog_recovery res = {0};
	uint64_t oldest = mmsb_store_oldest(st), newest = 0;
	size_t n = 0, i, k = 0;
	int rc, worst = 0;

	if (st->sb_bad) {
		mmsb_diag(&st->diag, MMSB_DIAG_ERR, "verify: " MMSB_SUPER_NAME ": superblock copy %d is damaged",
			  st->sb_bad & 1 ? 0 : 1);
		worst = -MMSB_ECORRUPT;
	}
	rc = mmsb_ckpt_list(&c, &ck, &n);
	for (i = 0; rc == 0 && i < n; i++) {
		struct ns *ns;
		int r;

		/* before the oldest epoch: a file kept only for the blocks that
		 * retained checkpoints refer to (checked by loading those) */
		if (ck[i].epoch < oldest)
			continue;
		r = mmsb_ckpt_load(&c, ck[i].epoch, false, &ns, NULL, NULL);

		if (r < 0) {
			mmsb_diag(&st->diag, MMSB_DIAG_ERR, "verify: checkpoint %" PRIu64 " is damaged: %s", ck[i].epoch,
				  strerror(-r));
			worst = worst ? worst : r;
			continue;
		}
		ck[k++] = ck[i]; /* the ones that load */
		newest = ck[i].epoch;
		if (!v.ns && ck[i].epoch >= oldest && oldest > 0) {
			v.ns = ns;
			v.base = ck[i].epoch;
		} else {
			ns_free(ns);
		}
	}
	v.ck = ck;
	v.n_ck = k;
	v.next = oldest + 1;
	v.oldest = oldest;
	if (rc == 0 && !v.ns && oldest == 0)
		rc = ns_new(st->ctime, &v.ns);
	if (rc == 0)
		rc = mmsb_tlog_open(st->dirfd, &to, &log);
	if (rc == 0)
		rc = mmsb_tlog_recover(log, 0, verify_txn, &v, &res);
	if (rc == 0 && (res.n_damage || res.n_header || res.end_damaged))
		rc = -MMSB_ECORRUPT;
	if (rc == 0 && res.last < newest) {
		mmsb_diag(&st->diag, MMSB_DIAG_ERR,
			  "verify: the log ends at epoch %" PRIu64 ", before checkpoint %" PRIu64
			  ": a segment is missing or damaged",
			  res.last, newest);
		rc = -MMSB_ECORRUPT;
	}
	mmsb_tlog_close(log);
	ns_free(v.ns);
	free(ck);
	mmsb_buf_free(&v.scratch);
	if (rc == 0)
		rc = v.rc;
	return rc ? rc : worst;
}
