/* inode.c - synthetic inode table for epochs/ (see inode.h).
 *
 * Two chained hash tables index the same entries: by ino (FORGET, every
 * request on a synthetic ino) and by (epoch, id) (lookups, readdirplus).
 * Bucket arrays double when the table holds more entries than buckets.
 * Epoch records (one per epoch with entries) own the snapshot reference.
 *
 * Lock order: itab->lock is a leaf; it is never held while calling into
 * the core: snapshots are opened and closed after unlocking.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "inode.h"

#define ITAB_BUCKETS_MIN 256u /* power of two */

struct itab_epoch {
	uint64_t epoch;		/* the snapshot's epoch */
	struct mmsb_snap *snap; /* reference from mmsb_snap_open, closed with the last entry */
	uint64_t n_entries;	/* entries of this epoch (protected by itab->lock) */
	struct itab_epoch *next; /* list of epochs (protected by itab->lock) */
};

struct itab_entry {
	uint64_t ino;		   /* synthetic ino */
	uint64_t epoch;		   /* key: epoch */
	uint64_t id;		   /* key: core node id */
	uint64_t nlookup;	   /* kernel lookup count (protected by itab->lock) */
	uint64_t pins;		   /* requests in flight (protected by itab->lock) */
	struct itab_epoch *ep;	   /* the epoch record (owns the snapshot) */
	struct itab_entry *next_ino; /* chain in by_ino */
	struct itab_entry *next_key; /* chain in by_key */
};

struct mmsbfs_itab {
	pthread_mutex_t lock;	      /* protects everything below; a leaf lock */
	struct mmsb_store *st;	      /* store the snapshots come from */
	struct itab_entry **by_ino;   /* buckets, n_buckets of them */
	struct itab_entry **by_key;   /* buckets, n_buckets of them */
	size_t n_buckets;	      /* power of two, >= ITAB_BUCKETS_MIN */
	uint64_t n_entries;	      /* entries in the table */
	uint64_t next_scount;	      /* next counter for MMSBFS_INO_SCOUNT inos */
	struct itab_epoch *epochs;    /* epochs with at least one entry */
};

/* mmsb_snap_close() is documented as dropping a reference; do not rely on
 * it accepting NULL. */
static void itab_snap_close(struct mmsb_snap *snap)
{
	if (snap != NULL)
		mmsb_snap_close(snap);
}

/* splitmix64 finalizer: good enough spreading for sequential ids. */
static uint64_t itab_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

uint64_t mmsbfs_itab_ino_of(uint64_t epoch, uint64_t id)
{
	if (id == MMSB_ROOT_ID)
		return MMSBFS_INO_EROOT + epoch;
	return MMSBFS_INO_SNODE + (itab_mix(epoch * UINT64_C(0x9e3779b97f4a7c15) ^ id) & ((UINT64_C(1) << 60) - 1));
}

static size_t itab_ino_slot(const struct mmsbfs_itab *t, uint64_t ino)
{
	return (size_t)(itab_mix(ino) & (t->n_buckets - 1));
}

static size_t itab_key_slot(const struct mmsbfs_itab *t, uint64_t epoch, uint64_t id)
{
	return (size_t)(itab_mix(epoch * UINT64_C(0x9e3779b97f4a7c15) ^ id) & (t->n_buckets - 1));
}

int mmsbfs_itab_new(struct mmsb_store *st, struct mmsbfs_itab **out)
{
	struct mmsbfs_itab *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	t->n_buckets = ITAB_BUCKETS_MIN;
	t->by_ino = calloc(t->n_buckets, sizeof(*t->by_ino));
	t->by_key = calloc(t->n_buckets, sizeof(*t->by_key));
	if (t->by_ino == NULL || t->by_key == NULL) {
		free(t->by_ino);
		free(t->by_key);
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	t->st = st;
	*out = t;
	return 0;
}

void mmsbfs_itab_free(struct mmsbfs_itab *t)
{
	struct itab_epoch *ep, *next_ep;
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n_buckets; i++) {
		struct itab_entry *e = t->by_ino[i], *next;

		for (; e != NULL; e = next) {
			next = e->next_ino;
			free(e);
		}
	}
	for (ep = t->epochs; ep != NULL; ep = next_ep) {
		next_ep = ep->next;
		itab_snap_close(ep->snap);
		free(ep);
	}
	pthread_mutex_destroy(&t->lock);
	free(t->by_ino);
	free(t->by_key);
	free(t);
}

static struct itab_entry *itab_find_ino(const struct mmsbfs_itab *t, uint64_t ino)
{
	struct itab_entry *e = t->by_ino[itab_ino_slot(t, ino)];

	while (e != NULL && e->ino != ino)
		e = e->next_ino;
	return e;
}

static struct itab_entry *itab_find_key(const struct mmsbfs_itab *t, uint64_t epoch, uint64_t id)
{
	struct itab_entry *e = t->by_key[itab_key_slot(t, epoch, id)];

	while (e != NULL && (e->epoch != epoch || e->id != id))
		e = e->next_key;
	return e;
}

static struct itab_epoch *itab_find_epoch(const struct mmsbfs_itab *t, uint64_t epoch)
{
	struct itab_epoch *ep = t->epochs;

	while (ep != NULL && ep->epoch != epoch)
		ep = ep->next;
	return ep;
}

/* Double the bucket arrays when the load passes 1.  Failure to grow is
 * harmless (chains get longer). */
static void itab_maybe_grow(struct mmsbfs_itab *t)
{
	struct itab_entry **by_ino, **by_key, *e, *next;
	size_t n = t->n_buckets * 2, i, old_n = t->n_buckets;
	struct itab_entry **old_ino = t->by_ino;

	if (t->n_entries <= t->n_buckets)
		return;
	by_ino = calloc(n, sizeof(*by_ino));
	by_key = calloc(n, sizeof(*by_key));
	if (by_ino == NULL || by_key == NULL) {
		free(by_ino);
		free(by_key);
		return;
	}
	free(t->by_key);
	t->by_ino = by_ino;
	t->by_key = by_key;
	t->n_buckets = n;
	for (i = 0; i < old_n; i++) {
		for (e = old_ino[i]; e != NULL; e = next) {
			size_t si = itab_ino_slot(t, e->ino), sk = itab_key_slot(t, e->epoch, e->id);

			next = e->next_ino;
			e->next_ino = by_ino[si];
			by_ino[si] = e;
			e->next_key = by_key[sk];
			by_key[sk] = e;
		}
	}
	free(old_ino);
}

static void itab_insert(struct mmsbfs_itab *t, struct itab_entry *e)
{
	size_t si = itab_ino_slot(t, e->ino), sk = itab_key_slot(t, e->epoch, e->id);

	e->next_ino = t->by_ino[si];
	t->by_ino[si] = e;
	e->next_key = t->by_key[sk];
	t->by_key[sk] = e;
	t->n_entries++;
	e->ep->n_entries++;
	itab_maybe_grow(t);
}

/* Unlink e from both chains and from its epoch.  Returns the snapshot to
 * close (after unlocking) when e was its epoch's last entry, else NULL. */
static struct mmsb_snap *itab_remove(struct mmsbfs_itab *t, struct itab_entry *e)
{
	struct itab_entry **pp = &t->by_ino[itab_ino_slot(t, e->ino)];
	struct itab_epoch **pe, *ep = e->ep;
	struct mmsb_snap *snap = NULL;

	while (*pp != e)
		pp = &(*pp)->next_ino;
	*pp = e->next_ino;
	pp = &t->by_key[itab_key_slot(t, e->epoch, e->id)];
	while (*pp != e)
		pp = &(*pp)->next_key;
	*pp = e->next_key;
	t->n_entries--;
	if (--ep->n_entries == 0) {
		for (pe = &t->epochs; *pe != ep; pe = &(*pe)->next)
			;
		*pe = ep->next;
		snap = ep->snap;
		free(ep);
	}
	return snap;
}

/* Make sure an epoch record for epoch exists, opening the snapshot outside
 * the lock.  Called and returns with t->lock held; every pointer found
 * before an unlock is looked up again after it. */
static int itab_epoch_get(struct mmsbfs_itab *t, uint64_t epoch, struct itab_epoch **out)
{
	struct itab_epoch *ep, *fresh;
	struct mmsb_snap *snap;
	int rc;

	while ((ep = itab_find_epoch(t, epoch)) == NULL) {
		pthread_mutex_unlock(&t->lock);
		snap = NULL;
		rc = mmsb_snap_open(t->st, epoch, &snap);
		fresh = rc == 0 ? calloc(1, sizeof(*fresh)) : NULL;
		if (rc == 0 && fresh == NULL) {
			itab_snap_close(snap);
			rc = -ENOMEM;
		}
		pthread_mutex_lock(&t->lock);
		if (rc < 0)
			return rc;
		if (itab_find_epoch(t, epoch) == NULL) { /* ours is the one */
			fresh->epoch = epoch;
			fresh->snap = snap;
			fresh->next = t->epochs;
			t->epochs = fresh;
			*out = fresh;
			return 0;
		}
		pthread_mutex_unlock(&t->lock); /* another thread won: drop ours */
		itab_snap_close(snap);
		free(fresh);
		pthread_mutex_lock(&t->lock);
	}
	*out = ep;
	return 0;
}

int mmsbfs_itab_lookup(struct mmsbfs_itab *t, uint64_t epoch, uint64_t id, uint64_t *ino)
{
	struct itab_entry *e, *fresh;
	struct itab_epoch *ep;
	int rc;

	if (id == MMSB_ROOT_ID && epoch > MMSBFS_EPOCH_MAX)
		return -EOVERFLOW;
	fresh = calloc(1, sizeof(*fresh));
	if (fresh == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&t->lock);
	rc = itab_epoch_get(t, epoch, &ep);
	e = rc == 0 ? itab_find_key(t, epoch, id) : NULL;
	if (rc == 0 && e == NULL) {
		e = fresh;
		fresh = NULL;
		e->epoch = epoch;
		e->id = id;
		e->ep = ep;
		e->ino = mmsbfs_itab_ino_of(epoch, id);
		if (id != MMSB_ROOT_ID && itab_find_ino(t, e->ino) != NULL)
			e->ino = MMSBFS_INO_SCOUNT + t->next_scount++; /* hash collision */
		itab_insert(t, e);
	}
	if (rc == 0) {
		e->nlookup++;
		*ino = e->ino;
	}
	pthread_mutex_unlock(&t->lock);
	free(fresh);
	return rc;
}

/* Free e if nothing refers to it any more.  Called with t->lock held;
 * returns a snapshot the caller closes after unlocking (or NULL). */
static struct mmsb_snap *itab_release_if_unused(struct mmsbfs_itab *t, struct itab_entry *e)
{
	struct mmsb_snap *snap;

	if (e->nlookup != 0 || e->pins != 0)
		return NULL;
	snap = itab_remove(t, e);
	free(e);
	return snap;
}

void mmsbfs_itab_forget(struct mmsbfs_itab *t, uint64_t ino, uint64_t n)
{
	struct mmsb_snap *snap = NULL;
	struct itab_entry *e;

	pthread_mutex_lock(&t->lock);
	e = itab_find_ino(t, ino);
	if (e != NULL) {
		if (e->nlookup < n)
			abort(); /* lookup-count contract broken: INTERNAL ERROR */
		e->nlookup -= n;
		snap = itab_release_if_unused(t, e);
	}
	pthread_mutex_unlock(&t->lock);
	itab_snap_close(snap);
}

int mmsbfs_itab_get(struct mmsbfs_itab *t, uint64_t ino, struct mmsbfs_snode *out)
{
	struct itab_entry *e;

	pthread_mutex_lock(&t->lock);
	e = itab_find_ino(t, ino);
	if (e != NULL) {
		e->pins++;
		out->ino = e->ino;
		out->epoch = e->epoch;
		out->id = e->id;
		out->snap = e->ep->snap;
		out->pin = e;
	}
	pthread_mutex_unlock(&t->lock);
	return e != NULL ? 0 : -ESTALE;
}

void mmsbfs_itab_put(struct mmsbfs_itab *t, const struct mmsbfs_snode *n)
{
	struct itab_entry *e = n->pin;
	struct mmsb_snap *snap;

	pthread_mutex_lock(&t->lock);
	assert(e->pins > 0);
	e->pins--;
	snap = itab_release_if_unused(t, e);
	pthread_mutex_unlock(&t->lock);
	itab_snap_close(snap);
}

uint64_t mmsbfs_itab_peek(struct mmsbfs_itab *t, uint64_t epoch, uint64_t id)
{
	struct itab_entry *e;
	uint64_t ino;

	pthread_mutex_lock(&t->lock);
	e = itab_find_key(t, epoch, id);
	ino = e != NULL ? e->ino : 0;
	pthread_mutex_unlock(&t->lock);
	return ino;
}

uint64_t mmsbfs_itab_count(struct mmsbfs_itab *t)
{
	uint64_t n;

	pthread_mutex_lock(&t->lock);
	n = t->n_entries;
	pthread_mutex_unlock(&t->lock);
	return n;
}
