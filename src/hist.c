/* hist.c - the in-memory log index.  See hist.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

void hist_init(struct mmsb_hist *h, uint64_t next)
{
	memset(h, 0, sizeof(*h));
	h->ebase = next;
}

void hist_free(struct mmsb_hist *h)
{
	size_t i;

	for (i = 0; i < h->nodes_cap; i++)
		free(h->nodes[i].seqs);
	free(h->nodes);
	free(h->recs);
	free(h->eps);
	memset(h, 0, sizeof(*h));
}

static int grow(void **p, uint64_t *cap, uint64_t need, size_t elem)
{
	uint64_t c = *cap ? *cap : 64;
	void *np;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	np = realloc(*p, c * elem);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = c;
	return 0;
}

int hist_add_epoch(struct mmsb_hist *h, uint64_t epoch, int64_t time, uint8_t source, uint64_t changed)
{
	struct hist_epoch *e;
	int rc;

	if (epoch != h->ebase + h->en)
		return -EINVAL;
	rc = grow((void **)&h->eps, &h->ecap, h->en + 1, sizeof(*h->eps));
	if (rc < 0)
		return rc;
	e = &h->eps[h->en++];
	e->time = time;
	e->changed = changed;
	e->first = h->base + h->n;
	e->n = 0;
	e->source = source;
	return 0;
}

int hist_skip_to(struct mmsb_hist *h, uint64_t epoch)
{
	int rc = 0;

	while (rc == 0 && h->ebase + h->en < epoch)
		rc = hist_add_epoch(h, h->ebase + h->en, 0, HIST_LOST, 0);
	return rc;
}

static uint64_t id_hash(uint64_t id)
{
	return id * 0x9E3779B97F4A7C15ull;
}

static struct hist_node *node_slot(struct mmsb_hist *h, uint64_t id)
{
	size_t i;

	if ((h->n_nodes + 1) * 4 >= h->nodes_cap * 3) {
		size_t ncap = h->nodes_cap ? h->nodes_cap * 2 : 256, j;
		struct hist_node *nt = calloc(ncap, sizeof(*nt));

		if (!nt)
			return NULL;
		for (j = 0; j < h->nodes_cap; j++) {
			size_t k;

			if (!h->nodes[j].id)
				continue;
			for (k = id_hash(h->nodes[j].id) & (ncap - 1); nt[k].id; k = (k + 1) & (ncap - 1))
				;
			nt[k] = h->nodes[j];
		}
		free(h->nodes);
		h->nodes = nt;
		h->nodes_cap = ncap;
	}
	for (i = id_hash(id) & (h->nodes_cap - 1); h->nodes[i].id; i = (i + 1) & (h->nodes_cap - 1))
		if (h->nodes[i].id == id)
			return &h->nodes[i];
	h->nodes[i].id = id;
	h->n_nodes++;
	return &h->nodes[i];
}

const struct hist_node *hist_node(const struct mmsb_hist *h, uint64_t id)
{
	size_t i;

	if (!h->nodes_cap)
		return NULL;
	for (i = id_hash(id) & (h->nodes_cap - 1); h->nodes[i].id; i = (i + 1) & (h->nodes_cap - 1))
		if (h->nodes[i].id == id)
			return &h->nodes[i];
	return NULL;
}

int hist_add_rec(struct mmsb_hist *h, const struct hist_rec *r)
{
	struct hist_node *hn;
	uint64_t cap;
	int rc = grow((void **)&h->recs, &h->cap, h->n + 1, sizeof(*h->recs));

	if (rc < 0 || !h->en)
		return rc < 0 ? rc : -EINVAL;
	hn = node_slot(h, r->node);
	if (!hn)
		return -ENOMEM;
	cap = hn->cap;
	rc = grow((void **)&hn->seqs, &cap, (uint64_t)hn->n + 1, sizeof(*hn->seqs));
	if (rc < 0)
		return rc;
	hn->cap = (uint32_t)cap;
	hn->seqs[hn->n++] = h->base + h->n;
	h->recs[h->n++] = *r;
	h->eps[h->en - 1].n++;
	return 0;
}

const struct hist_epoch *hist_epoch(const struct mmsb_hist *h, uint64_t epoch)
{
	if (epoch < h->ebase || epoch - h->ebase >= h->en)
		return NULL;
	return &h->eps[epoch - h->ebase];
}

const struct hist_rec *hist_rec(const struct mmsb_hist *h, uint64_t seq)
{
	if (seq < h->base || seq - h->base >= h->n)
		return NULL;
	return &h->recs[seq - h->base];
}

uint64_t hist_global_seq_after(const struct mmsb_hist *h, uint64_t e)
{
	const struct hist_epoch *ep = hist_epoch(h, e + 1);

	if (ep)
		return ep->first;
	return e < h->ebase ? h->base : h->base + h->n;
}

uint32_t hist_node_index_after(const struct hist_node *hn, const struct mmsb_hist *h, uint64_t e)
{
	uint64_t want = hist_global_seq_after(h, e);
	uint32_t lo = 0, hi = hn->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (hn->seqs[mid] < want)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void hist_drop_upto(struct mmsb_hist *h, uint64_t e)
{
	uint64_t seq = hist_global_seq_after(h, e), drop_e, i;

	if (e < h->ebase)
		return;
	drop_e = e - h->ebase + 1 < h->en ? e - h->ebase + 1 : h->en;
	memmove(h->eps, h->eps + drop_e, (h->en - drop_e) * sizeof(*h->eps));
	h->en -= drop_e;
	h->ebase += drop_e;
	memmove(h->recs, h->recs + (seq - h->base), (h->n - (seq - h->base)) * sizeof(*h->recs));
	h->n -= seq - h->base;
	h->base = seq;
	for (i = 0; i < h->nodes_cap; i++) {
		struct hist_node *hn = &h->nodes[i];
		uint32_t k = 0, j;

		if (!hn->id)
			continue;
		for (j = 0; j < hn->n; j++)
			if (hn->seqs[j] >= seq)
				hn->seqs[k++] = hn->seqs[j];
		hn->n = k;
	}
}

int hist_prepend(struct mmsb_hist *h, struct mmsb_hist *p)
{
	uint64_t shift, i, **news = NULL;
	int rc = 0;

	if (p->en == 0) {
		hist_free(p);
		return 0;
	}
	if (p->ebase + p->en != h->ebase || p->n > h->base || p->base != 0) {
		hist_free(p);
		return -EINVAL;
	}
	shift = h->base - p->n; /* prefix record i gets sequence number shift + i */
	rc = grow((void **)&h->recs, &h->cap, h->n + p->n, sizeof(*h->recs));
	if (rc == 0)
		rc = grow((void **)&h->eps, &h->ecap, h->en + p->en, sizeof(*h->eps));
	/* each node: its older records first; allocate everything before
	 * changing anything, so a failure leaves h as it was */
	news = rc == 0 ? calloc(p->nodes_cap ? p->nodes_cap : 1, sizeof(*news)) : NULL;
	if (rc == 0 && !news)
		rc = -ENOMEM;
	for (i = 0; rc == 0 && i < p->nodes_cap; i++) {
		const struct hist_node *pn = &p->nodes[i];
		struct hist_node *hn;

		if (!pn->id)
			continue;
		hn = node_slot(h, pn->id); /* may add an empty slot: harmless */
		news[i] = hn ? malloc(((size_t)pn->n + hn->n) * sizeof(**news)) : NULL;
		if (!news[i])
			rc = -ENOMEM;
	}
	for (i = 0; rc == 0 && i < p->nodes_cap; i++) {
		const struct hist_node *pn = &p->nodes[i];
		struct hist_node *hn;
		uint64_t k;

		if (!pn->id)
			continue;
		hn = (struct hist_node *)hist_node(h, pn->id); /* inserted above: no growth now */
		for (k = 0; k < pn->n; k++)
			news[i][k] = pn->seqs[k] + shift;
		if (hn->n)
			memcpy(news[i] + pn->n, hn->seqs, hn->n * sizeof(**news));
		free(hn->seqs);
		hn->seqs = news[i];
		news[i] = NULL;
		hn->n += pn->n;
		hn->cap = hn->n;
	}
	for (i = 0; news && i < p->nodes_cap; i++)
		free(news[i]);
	free(news);
	if (rc == 0) {
		memmove(h->recs + p->n, h->recs, h->n * sizeof(*h->recs));
		memcpy(h->recs, p->recs, p->n * sizeof(*h->recs));
		h->n += p->n;
		h->base = shift;
		memmove(h->eps + p->en, h->eps, h->en * sizeof(*h->eps));
		memcpy(h->eps, p->eps, p->en * sizeof(*h->eps));
		for (i = 0; i < p->en; i++)
			h->eps[i].first += shift;
		h->en += p->en;
		h->ebase = p->ebase;
	}
	hist_free(p);
	return rc;
}
