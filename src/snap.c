/* snap.c - time travel: read-only views of retained epochs.
 *
 * A view of epoch N < head is built from the newest checkpoint C <= N (or
 * the empty store): its node table is loaded without page bytes, then the
 * metadata records of (C, N] are replayed from the log through the index
 * (byte records only update sizes and times: the index carries the size
 * after each).  A page's bytes are materialized on first read: its bytes at
 * C from the checkpoint, then exactly its own WRITE/TRUNCATE records up to N,
 * found through the per-node index.  Materialized bytes count against the
 * store's cache bound; past it, a view drops its other pages first.
 * Holes stay holes all the way: the checkpoint's hole blocks and zero
 * chunks are not backed, the records only mark the chunks they touch, and
 * what counts against the cache is the memory holding data (pbuf_bytes),
 * so a view of a 16 GiB page with a few bytes written costs kilobytes.
 * Views charge no memory budget (they are bounded by the cache).
 * A view of the head is a clone of the head (pages shared copy-on-write).
 *
 * Views are refcounted and shared: the store keeps a list of open views and
 * a few idle ones for reuse.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "store_int.h"

int snap_read_rec(struct mmsb_store *st, const struct hist_rec *hr, struct mmsb_buf *buf, struct mmsb_rec *r)
{
	const char *why = NULL;
	int64_t flen;
	int rc;

	buf->len = 0;
	rc = mmsb_buf_reserve(buf, hr->len);
	if (rc < 0)
		return rc;
	rc = mmsb_tlog_read(st->log, hr->seg, hr->off, buf->p, hr->len);
	if (rc < 0)
		return rc;
	buf->len = hr->len;
	flen = mmsb_rec_decode(buf->p, hr->len, st->seed, r, &why);
	if (flen == -MMSB_EBADCRC) {
		mmsb_diag(&st->diag, MMSB_DIAG_ERR, "snap: record of epoch %" PRIu64 " node %" PRIu64 ": %s", hr->epoch,
			  hr->node, why);
		return -MMSB_EBADCRC;
	}
	if (flen < 0 || r->epoch != hr->epoch || r->node != hr->node)
		return MMSB_CORRUPT(&st->diag, "snap: record of epoch %" PRIu64 " node %" PRIu64 " unreadable: %s",
				    hr->epoch, hr->node, why ? why : "index mismatch");
	return 0;
}

void snap_free(struct mmsb_snap *s)
{
	if (!s)
		return;
	atomic_fetch_sub(&s->st->cache_bytes, s->loaded_bytes);
	ns_free(s->ns);
	mmsb_ckpt_table_put(s->ck_tab);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* Replay the metadata of (from, e] onto s->ns.  st->lock held (read). */
static int snap_replay_meta(struct mmsb_store *st, struct mmsb_snap *s, uint64_t from)
{
	struct mmsb_buf buf = {0}, scratch = {0};
	uint64_t seq = hist_global_seq_after(&st->hist, from);
	const struct hist_rec *hr;
	int rc = 0;

	for (; rc == 0 && (hr = hist_rec(&st->hist, seq)) != NULL && hr->epoch <= s->epoch; seq++) {
		struct mmsb_rec r;

		if (mmsb_rec_is_bytes(hr->type)) {
			struct ns_node *n = ns_get(s->ns, hr->node);
			const struct hist_epoch *he = hist_epoch(&st->hist, hr->epoch);

			if (!n || n->type != MMSB_T_PAGE) {
				rc = MMSB_CORRUPT(&st->diag, "snap: epoch %" PRIu64 ": write to missing page %" PRIu64,
						  hr->epoch, hr->node);
				break;
			}
			if (!n->orphan)
				s->ns->page_bytes += hr->size - n->size;
			n->size = hr->size;
			n->version++;
			n->mtime = n->ctime = he ? he->time : n->mtime;
			n->epoch = hr->epoch;
			n->loaded = false;
			continue;
		}
		rc = snap_read_rec(st, hr, &buf, &r);
		if (rc == 0)
			rc = ns_apply(s->ns, &r, &scratch);
		if (rc < 0 && rc != -ENOMEM && rc != -MMSB_ECORRUPT)
			rc = MMSB_CORRUPT(&st->diag, "snap: epoch %" PRIu64 ": %s record does not apply (%s)", hr->epoch,
					  mmsb_rec_type_name(hr->type), strerror(-rc));
	}
	mmsb_buf_free(&buf);
	mmsb_buf_free(&scratch);
	return rc;
}

/* Take a reference on s (off the idle list if it was there).  snap_mu held. */
static void snap_take(struct mmsb_store *st, struct mmsb_snap *s)
{
	struct mmsb_snap **pp;

	if (s->refs++ == 0) {
		for (pp = &st->idle; *pp != s; pp = &(*pp)->next)
			;
		*pp = s->next;
		st->n_idle--;
	}
}

/* The cached view nearest below e that was built from checkpoint base (not
 * a clone of the head), referenced; NULL if none. */
static struct mmsb_snap *snap_nearest(struct mmsb_store *st, uint64_t base, uint64_t e)
{
	struct mmsb_snap *best = NULL;
	size_t i;

	pthread_mutex_lock(&st->snap_mu);
	for (i = 0; i < st->n_open; i++) {
		struct mmsb_snap *m = st->open[i];

		if (!m->from_head && m->base == base && m->epoch <= e && (!best || m->epoch > best->epoch))
			best = m;
	}
	if (best)
		snap_take(st, best);
	pthread_mutex_unlock(&st->snap_mu);
	return best;
}

/* Start s from a view m of an earlier epoch from the same checkpoint: its
 * namespace, and the pages m has materialized as starting points (shared,
 * copied on first change), so a page of s costs only its records after m.
 * Browsing epochs one after another then costs the records between them,
 * not the whole log since the checkpoint. */
static int snap_derive(struct mmsb_snap *s, struct mmsb_snap *m)
{
	size_t i;
	int rc;

	pthread_mutex_lock(&m->mu);
	rc = ns_clone(m->ns, &s->ns);
	pthread_mutex_unlock(&m->mu);
	for (i = 0; rc == 0 && i < s->ns->ids_cap; i++) {
		struct ns_node *n = s->ns->ids[i];

		if (n && n->type == MMSB_T_PAGE && n->loaded && n->size) {
			n->from_epoch = m->epoch; /* n->data: the page at m (a reference) */
			n->from_size = n->size;
			n->loaded = false;
		}
	}
	if (rc == 0)
		s->ck_tab = mmsb_ckpt_table_get(m->ck_tab);
	return rc;
}

int snap_build(struct mmsb_store *st, uint64_t e, struct mmsb_snap **out)
{
	struct mmsb_snap *s = calloc(1, sizeof(*s)), *m;
	struct ckpt_ctx c = store_ckpt_ctx(st);
	uint64_t from;
	int rc = 0;

	rc = store_hist_need(st, e);
	if (rc < 0 || !s) {
		free(s);
		return rc < 0 ? rc : -ENOMEM;
	}
	s->st = st;
	s->epoch = e;
	s->refs = 1;
	pthread_mutex_init(&s->mu, NULL);
	s->base = from = store_base_ckpt(st, e);
	/* outside st->lock: a view's mutex comes first in the lock order */
	m = e < mmsb_store_head(st) ? snap_nearest(st, s->base, e) : NULL;
	if (m) {
		rc = snap_derive(s, m);
		from = m->epoch;
		mmsb_snap_close(m);
	}
	pthread_rwlock_rdlock(&st->lock);
	if (rc == 0 && (e > atomic_load(&st->head) || e < st->oldest)) {
		rc = -ENOENT;
	} else if (rc == 0 && e == atomic_load(&st->head)) {
		ns_free(s->ns);
		s->base = e;
		s->from_head = true;
		rc = ns_clone(store_ns(st), &s->ns);
	} else if (rc == 0) {
		if (s->ns && from < st->oldest) { /* compacted meanwhile: start over */
			ns_free(s->ns);
			s->ns = NULL;
			from = s->base;
		}
		for (;;) { /* never an older state: exact, or -EUCLEAN */
			rc = store_epoch_readable(st, s->base, e);
			if (rc == 0 && !s->ns && s->base) {
				mmsb_ckpt_table_put(s->ck_tab); /* a derived view's, if it started over */
				s->ck_tab = NULL;
				rc = mmsb_ckpt_load(&c, s->base, true, &s->ns, NULL, &s->ck_tab);
			} else if (rc == 0 && !s->ns) {
				rc = ns_new(st->ctime, &s->ns);
			}
			if (rc != -MMSB_ECORRUPT && rc != -MMSB_EBADCRC)
				break;
			if (s->ns || !s->base || store_epoch_readable(st, s->base, e) < 0)
				break;
			/* that checkpoint is damaged: an older one and the log may still do */
			store_ckpt_drop(st, s->base, rc);
			from = s->base = store_base_ckpt(st, e);
		}
		if (rc == 0)
			rc = snap_replay_meta(st, s, from);
	}
	pthread_rwlock_unlock(&st->lock);
	if (rc < 0) {
		snap_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* Drop materialized pages of s (other than keep) until the cache fits. */
static void snap_evict(struct mmsb_snap *s, const struct ns_node *keep)
{
	struct mmsb_store *st = s->st;
	size_t i;

	for (i = 0; i < s->ns->ids_cap && atomic_load(&st->cache_bytes) > st->o.cache_bytes; i++) {
		struct ns_node *n = s->ns->ids[i];

		if (!n || n == keep || n->type != MMSB_T_PAGE || !n->loaded || !n->data || s->epoch == s->base)
			continue;
		atomic_fetch_sub(&st->cache_bytes, pbuf_bytes(n->data)); /* holes cost nothing */
		s->loaded_bytes -= pbuf_bytes(n->data);
		pbuf_put(n->data);
		n->data = NULL;
		n->loaded = false;
	}
}

/* The bytes of page n in checkpoint s->base are damaged (err): start from
 * an older checkpoint instead (or the empty store), whose page and the
 * page's own records up to s->epoch rebuild it, when the log between holds
 * every record.  Node ids are never reused, so a page absent from an older
 * checkpoint was empty there.  st->lock held.  *pb, *size, *from: the
 * starting point; err when no older source works. */
static int snap_page_fallback(struct mmsb_snap *s, struct ns_node *n, int err, struct pbuf **pb, uint64_t *size,
			      uint64_t *from)
{
	struct mmsb_store *st = s->st;
	struct ckpt_ctx c = store_ckpt_ctx(st);
	uint64_t older = s->base;

	mmsb_diag(&st->diag, MMSB_DIAG_ERR,
		  "snap: page %" PRIu64 " in checkpoint %" PRIu64 " is damaged (%s): rebuilding it from an older one",
		  n->id, s->base, strerror(-err));
	while (older > 0) {
		struct ns *ons = NULL;
		struct ckpt_table *ot = NULL;
		struct ns_node *on;
		int rc;

		older = store_base_ckpt(st, older - 1);
		if (store_epoch_readable(st, older, s->epoch) < 0)
			return err;
		if (older + 1 < st->hist_from && st->hist_from > st->oldest + 1)
			return err; /* its records are not indexed yet (and st->lock is held) */
		*pb = NULL;
		*size = 0;
		*from = older;
		if (older == 0)
			return 0; /* the empty store */
		rc = mmsb_ckpt_load(&c, older, true, &ons, NULL, &ot);
		on = rc == 0 ? ns_get(ons, n->id) : NULL;
		if (rc == 0 && on && on->type == MMSB_T_PAGE && on->ck_n_blocks) {
			rc = mmsb_ckpt_read_page(&c, ot, on, pb);
			*size = on->ck_size;
		}
		ns_free(ons);
		mmsb_ckpt_table_put(ot);
		if (rc == 0)
			return 0;
		if (rc != -MMSB_EBADCRC && rc != -MMSB_ECORRUPT)
			return rc;
	}
	return err;
}

int snap_load_page(struct mmsb_snap *s, struct ns_node *n, bool locked)
{
	struct mmsb_store *st = s->st;
	struct ckpt_ctx c = store_ckpt_ctx(st);
	struct mmsb_buf buf = {0}, scratch = {0};
	struct pbuf *pb = NULL;
	uint64_t size = 0, from = s->base, *seqs = NULL;
	const struct hist_node *hn;
	uint32_t i, k = 0, cnt = 0;
	int rc = 0;

	if (n->loaded || n->type != MMSB_T_PAGE) {
		atomic_fetch_add(&st->cache_hits, 1);
		return 0;
	}
	atomic_fetch_add(&st->cache_misses, 1);
	if (n->from_epoch && n->data) { /* a starting point from an earlier view */
		pb = n->data;
		n->data = NULL;
		size = n->from_size;
		from = n->from_epoch;
	} else if (n->ck_epoch && n->ck_epoch == s->base && n->ck_n_blocks) {
		rc = mmsb_ckpt_read_page(&c, s->ck_tab, n, &pb);
		size = n->ck_size; /* n->size is already the size at s->epoch */
	}
	/* collect this page's byte records in (base, epoch] */
	if (!locked)
		pthread_rwlock_rdlock(&st->lock);
	if (rc == -MMSB_EBADCRC || rc == -MMSB_ECORRUPT)
		rc = snap_page_fallback(s, n, rc, &pb, &size, &from);
	hn = hist_node(&st->hist, n->id);
	if (rc == 0 && hn) {
		i = hist_node_index_after(hn, &st->hist, from);
		seqs = malloc((hn->n - i + 1) * sizeof(*seqs));
		if (!seqs)
			rc = -ENOMEM;
		for (; rc == 0 && i < hn->n; i++) {
			const struct hist_rec *hr = hist_rec(&st->hist, hn->seqs[i]);

			if (!hr || hr->epoch > s->epoch)
				break;
			if (mmsb_rec_is_bytes(hr->type))
				seqs[cnt++] = hn->seqs[i];
		}
	}
	for (k = 0; rc == 0 && k < cnt; k++) {
		const struct hist_rec *hr = hist_rec(&st->hist, seqs[k]);
		struct mmsb_rec r;

		rc = hr ? snap_read_rec(st, hr, &buf, &r) : -ENOENT;
		if (rc == 0)
			rc = ns_bytes_apply(&pb, &size, &r, &scratch, NULL, NULL);
	}
	if (!locked)
		pthread_rwlock_unlock(&st->lock);
	free(seqs);
	mmsb_buf_free(&buf);
	mmsb_buf_free(&scratch);
	if (rc == 0 && size != n->size)
		rc = MMSB_CORRUPT(&st->diag, "snap: page %" PRIu64 " at epoch %" PRIu64 ": rebuilt %" PRIu64
			     " bytes, index says %" PRIu64, n->id, s->epoch, size, n->size);
	if (rc < 0) {
		pbuf_put(pb);
		return rc;
	}
	if (!pb && n->size == 0)
		pb = NULL;
	pbuf_put(n->data);
	n->data = pb;
	n->loaded = true;
	s->loaded_bytes += pbuf_bytes(pb);
	atomic_fetch_add(&st->cache_bytes, pbuf_bytes(pb));
	snap_evict(s, n);
	return 0;
}

int mmsb_snap_open(struct mmsb_store *st, uint64_t epoch, struct mmsb_snap **out)
{
	struct mmsb_snap *s;
	size_t i;
	int rc;

	if (epoch > mmsb_store_head(st) || epoch < mmsb_store_oldest(st))
		return -ENOENT; /* a view kept from before a compaction is not reachable */
	pthread_mutex_lock(&st->snap_mu);
	for (i = 0; i < st->n_open; i++)
		if (st->open[i]->epoch == epoch) {
			s = st->open[i];
			snap_take(st, s);
			pthread_mutex_unlock(&st->snap_mu);
			*out = s;
			return 0;
		}
	pthread_mutex_unlock(&st->snap_mu);
	rc = snap_build(st, epoch, &s);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&st->snap_mu);
	if (st->n_open == st->cap_open) {
		size_t cap = st->cap_open ? st->cap_open * 2 : 16;
		struct mmsb_snap **v = realloc(st->open, cap * sizeof(*v));

		if (!v) {
			pthread_mutex_unlock(&st->snap_mu);
			snap_free(s);
			return -ENOMEM;
		}
		st->open = v;
		st->cap_open = cap;
	}
	st->open[st->n_open++] = s;
	pthread_mutex_unlock(&st->snap_mu);
	*out = s;
	return 0;
}

static void snap_unlist(struct mmsb_store *st, struct mmsb_snap *s)
{
	size_t i;

	for (i = 0; i < st->n_open; i++)
		if (st->open[i] == s) {
			st->open[i] = st->open[--st->n_open];
			break;
		}
}

void mmsb_snap_close(struct mmsb_snap *s)
{
	struct mmsb_store *st;
	struct mmsb_snap *victim = NULL, **pp;

	if (!s)
		return;
	st = s->st;
	pthread_mutex_lock(&st->snap_mu);
	if (s->refs == 0)
		abort(); /* unbalanced close */
	if (--s->refs == 0) {
		s->next = st->idle;
		st->idle = s;
		if (++st->n_idle > SNAP_IDLE_MAX) { /* drop the oldest idle one */
			for (pp = &st->idle; (*pp)->next; pp = &(*pp)->next)
				;
			victim = *pp;
			*pp = NULL;
			st->n_idle--;
			snap_unlist(st, victim);
		}
	}
	pthread_mutex_unlock(&st->snap_mu);
	snap_free(victim);
}

void snap_drop_all(struct mmsb_store *st)
{
	size_t i;

	pthread_mutex_lock(&st->snap_mu);
	for (i = 0; i < st->n_open; i++)
		if (st->open[i]->refs == 0)
			snap_free(st->open[i]);
		else
			mmsb_diag(&st->diag, MMSB_DIAG_WARNING, "snap: epoch %" PRIu64 " still open at close",
				  st->open[i]->epoch);
	st->n_open = 0;
	st->idle = NULL;
	st->n_idle = 0;
	pthread_mutex_unlock(&st->snap_mu);
}

uint64_t mmsb_snap_epoch(const struct mmsb_snap *s)
{
	return s->epoch;
}

/* ---- reads: like the head's, under the view's mutex ------------------------------------ */

int mmsb_snap_getattr(struct mmsb_snap *s, uint64_t id, struct mmsb_attr *out)
{
	int rc;

	pthread_mutex_lock(&s->mu);
	rc = ns_getattr(s->ns, id, out);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int mmsb_snap_lookup(struct mmsb_snap *s, uint64_t parent, const char *name, struct mmsb_attr *out)
{
	int rc;

	pthread_mutex_lock(&s->mu);
	rc = ns_lookup_attr(s->ns, parent, name, out);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int mmsb_snap_resolve(struct mmsb_snap *s, const char *path, struct mmsb_attr *out)
{
	struct ns_node *n;
	int rc;

	pthread_mutex_lock(&s->mu);
	rc = ns_resolve(s->ns, path, &n);
	if (rc == 0)
		ns_attr(n, out);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

ssize_t mmsb_snap_path(struct mmsb_snap *s, uint64_t id, char *buf, size_t cap)
{
	ssize_t rc;

	pthread_mutex_lock(&s->mu);
	rc = ns_path(s->ns, id, buf, cap);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

ssize_t mmsb_snap_read(struct mmsb_snap *s, uint64_t id, uint64_t off, void *buf, size_t len)
{
	struct ns_node *n;
	ssize_t rc = 0;

	pthread_mutex_lock(&s->mu);
	n = ns_get(s->ns, id);
	if (n && n->type == MMSB_T_PAGE)
		rc = snap_load_page(s, n, false);
	if (rc == 0)
		rc = ns_read(n, off, buf, len);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int mmsb_snap_seek(struct mmsb_snap *s, uint64_t id, uint64_t off, bool data, uint64_t *out)
{
	struct ns_node *n;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	n = ns_get(s->ns, id);
	if (n && n->type == MMSB_T_PAGE && off < n->size)
		rc = snap_load_page(s, n, false);
	if (rc == 0)
		rc = ns_seek(n, off, data, out);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

ssize_t mmsb_snap_readlink(struct mmsb_snap *s, uint64_t id, char *buf, size_t cap)
{
	ssize_t rc;

	pthread_mutex_lock(&s->mu);
	rc = ns_readlink(ns_get(s->ns, id), buf, cap);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int mmsb_snap_readdir(struct mmsb_snap *s, uint64_t dir, uint64_t from, mmsb_dirent_fn fn, void *arg)
{
	struct ns_node *d;
	int rc;

	pthread_mutex_lock(&s->mu);
	d = ns_get(s->ns, dir);
	rc = d ? ns_readdir(s->ns, d, from, fn, arg) : -ENOENT;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

ssize_t mmsb_snap_getxattr(struct mmsb_snap *s, uint64_t id, const char *name, void *buf, size_t cap)
{
	ssize_t rc;

	pthread_mutex_lock(&s->mu);
	rc = ns_getxattr(ns_get(s->ns, id), name, buf, cap);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

ssize_t mmsb_snap_listxattr(struct mmsb_snap *s, uint64_t id, char *buf, size_t cap)
{
	ssize_t rc;

	pthread_mutex_lock(&s->mu);
	rc = ns_listxattr(ns_get(s->ns, id), buf, cap);
	pthread_mutex_unlock(&s->mu);
	return rc;
}
