/* xattr.c - virtual, reserved and stored extended attributes (xattr.h).
 *
 * Virtual values are computed on every call (nothing is cached: they
 * change with every commit).  The store-wide ones come from
 * mmsb_store_stats(); on an epochs/N root, pages and bytes are counted by
 * walking that snapshot (it is immutable, so the walk is exact).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/xattr.h>

#include "tree.h"
#include "xattr.h"

#define XATTR_USER "user."
#define XATTR_MMSB "user.mmsb."
#define XATTR_ERROR "user.mmsb.error"

enum xattr_virt {
	XV_ID = 0,    /* node id */
	XV_EPOCH,     /* epoch of the last change */
	XV_VERSION,   /* byte deltas applied */
	XV_HEAD,      /* root only: head epoch (epochs/N: N) */
	XV_OLDEST,    /* root only: oldest retained epoch */
	XV_PAGES,     /* root only: number of pages */
	XV_BYTES,     /* root only: sum of page sizes */
	XV_LOG_BYTES, /* root only: retained log on disk */
	XV_COUNT,
};

#define XV_FIRST_ROOT XV_HEAD /* names from here on exist on roots only */

static const char *const xattr_virt_names[XV_COUNT] = {
	[XV_ID] = "user.mmsb.id",
	[XV_EPOCH] = "user.mmsb.epoch",
	[XV_VERSION] = "user.mmsb.version",
	[XV_HEAD] = "user.mmsb.head",
	[XV_OLDEST] = "user.mmsb.oldest",
	[XV_PAGES] = "user.mmsb.pages",
	[XV_BYTES] = "user.mmsb.bytes",
	[XV_LOG_BYTES] = "user.mmsb.log_bytes",
};

/* user.mmsb.* names the core gives meaning to; the others are reserved. */
static const char *const xattr_core_mmsb[] = {
	"user.mmsb.deps",
	"user.mmsb.recompute",
	"user.mmsb.location",
};

static int xattr_virt_index(const char *name)
{
	int i;

	if (strncmp(name, XATTR_MMSB, sizeof(XATTR_MMSB) - 1) != 0)
		return -1;
	for (i = 0; i < XV_COUNT; i++)
		if (strcmp(name, xattr_virt_names[i]) == 0)
			return i;
	return -1;
}

static bool xattr_is_reserved(const char *name)
{
	size_t i;

	if (strncmp(name, XATTR_MMSB, sizeof(XATTR_MMSB) - 1) != 0)
		return false;
	for (i = 0; i < sizeof(xattr_core_mmsb) / sizeof(xattr_core_mmsb[0]); i++)
		if (strcmp(name, xattr_core_mmsb[i]) == 0)
			return false;
	return true;
}

/* Number of virtual names node n has. */
static int xattr_virt_count(const struct mmsbfs_node *n)
{
	if (n->kind != MMSBFS_K_LIVE && n->kind != MMSBFS_K_SNAP)
		return 0;
	return n->id == MMSB_ROOT_ID ? XV_COUNT : XV_FIRST_ROOT;
}

/* ---- snapshot usage (pages, bytes of an epochs/N root) ------------------ */

struct xattr_walk {
	uint64_t *dirs;	 /* directories still to list */
	size_t n_dirs;	 /* entries in dirs */
	size_t cap_dirs; /* capacity of dirs */
	uint64_t pages;	 /* pages seen */
	uint64_t bytes;	 /* their total size */
	int rc;		 /* -ENOMEM from a callback */
};

static int xattr_walk_cb(void *arg, const char *name, const struct mmsb_attr *a, uint64_t cookie)
{
	struct xattr_walk *w = arg;

	if (a->type == MMSB_T_PAGE) {
		w->pages++;
		w->bytes += a->size;
	} else if (a->type == MMSB_T_DIR) {
		if (w->n_dirs == w->cap_dirs) {
			size_t cap = w->cap_dirs ? w->cap_dirs * 2 : 64;
			uint64_t *d = realloc(w->dirs, cap * sizeof(*d));

			if (d == NULL) {
				w->rc = -ENOMEM;
				return 1;
			}
			w->dirs = d;
			w->cap_dirs = cap;
		}
		w->dirs[w->n_dirs++] = a->id;
	}
	return 0;
}

static int xattr_snap_usage(struct mmsb_snap *snap, uint64_t *pages, uint64_t *bytes)
{
	struct xattr_walk w = {0};
	uint64_t dir = MMSB_ROOT_ID;
	int rc;

	for (;;) {
		rc = mmsb_snap_readdir(snap, dir, 0, xattr_walk_cb, &w);
		if (rc == 0)
			rc = w.rc;
		if (rc < 0 || w.n_dirs == 0)
			break;
		dir = w.dirs[--w.n_dirs];
	}
	free(w.dirs);
	if (rc == 0) {
		*pages = w.pages;
		*bytes = w.bytes;
	}
	return rc;
}

/* ---- why a dependency attribute was refused ------------------------------------
 *
 * setxattr(2) can only return an errno, and a refusal must change nothing
 * (no epoch).  So the daemon keeps the reason in memory and getxattr of
 * user.mmsb.error on that node answers it until the node next changes (its
 * epoch moves) or the mount ends; a recompute's own failure is stored in the
 * node (logged) and shows once the refusal is stale.  The reason is also in
 * the daemon log (the core's diag line).
 */
#define XATTR_REFUSALS 64u /* reasons kept; the oldest goes first */

struct mmsbfs_refusal {
	uint64_t ino;	     /* node refused (0: free slot) */
	uint64_t epoch;	     /* the node's last-change epoch when refused */
	uint64_t seq;	     /* age: higher is newer */
	char why[400];	     /* the core's reason (mmsb_txn_why) */
};

struct mmsbfs_refusals {
	pthread_mutex_t mu;			      /* protects everything below */
	uint64_t seq;				      /* last seq handed out */
	struct mmsbfs_refusal slot[XATTR_REFUSALS];   /* the reasons */
};

void mmsbfs_xattr_refusals_free(struct mmsbfs_refusals *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static struct mmsbfs_refusals *xattr_refusals(struct mmsbfs *fs)
{
	struct mmsbfs_refusals *r = atomic_load(&fs->refusals), *none = NULL;

	if (r)
		return r;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	if (!atomic_compare_exchange_strong(&fs->refusals, &none, r)) {
		mmsbfs_xattr_refusals_free(r);
		r = none;
	}
	return r;
}

static void xattr_note_refusal(struct mmsbfs *fs, fuse_ino_t ino, const char *why)
{
	struct mmsbfs_refusals *r = why[0] ? xattr_refusals(fs) : NULL;
	struct mmsbfs_refusal *s = NULL;
	struct mmsb_attr a;
	unsigned i;

	if (!r || mmsb_getattr(fs->st, ino, &a) < 0)
		return;
	pthread_mutex_lock(&r->mu);
	for (i = 0; i < XATTR_REFUSALS; i++) {
		if (r->slot[i].ino == ino) {
			s = &r->slot[i];
			break;
		}
		if (!s || r->slot[i].seq < s->seq)
			s = &r->slot[i]; /* free (seq 0) or oldest */
	}
	s->ino = ino;
	s->epoch = a.epoch;
	s->seq = ++r->seq;
	snprintf(s->why, sizeof(s->why), "%s", why);
	pthread_mutex_unlock(&r->mu);
}

/* The kept refusal of a live node, if still current: its length (copied
 * like getxattr), or -ENODATA. */
static ssize_t xattr_get_refusal(struct mmsbfs *fs, uint64_t ino, char *buf, size_t cap)
{
	struct mmsbfs_refusals *r = atomic_load(&fs->refusals);
	ssize_t len = -ENODATA;
	struct mmsb_attr a;
	unsigned i;

	if (!r || mmsb_getattr(fs->st, ino, &a) < 0)
		return -ENODATA;
	pthread_mutex_lock(&r->mu);
	for (i = 0; i < XATTR_REFUSALS; i++) {
		struct mmsbfs_refusal *s = &r->slot[i];

		if (s->ino != ino)
			continue;
		if (s->epoch != a.epoch) {
			*s = (struct mmsbfs_refusal){0}; /* the node changed since */
			break;
		}
		len = (ssize_t)strlen(s->why);
		if (cap != 0 && (size_t)len > cap)
			len = -ERANGE;
		else if (cap != 0)
			memcpy(buf, s->why, (size_t)len);
		break;
	}
	pthread_mutex_unlock(&r->mu);
	return len;
}

/* ---- get ------------------------------------------------------------------- */

static int xattr_virt_value(struct mmsbfs *fs, const struct mmsbfs_node *n, int which, uint64_t *v)
{
	struct mmsb_stats s;
	struct mmsb_attr a;
	int rc;

	if (which < XV_FIRST_ROOT) {
		rc = mmsbfs_tree_node_attr(fs, n, &a);
		if (rc == 0)
			*v = which == XV_ID ? a.id : which == XV_EPOCH ? a.epoch : a.version;
		return rc;
	}
	if (which == XV_HEAD) {
		*v = n->kind == MMSBFS_K_SNAP ? n->epoch : mmsb_store_head(fs->st);
		return 0;
	}
	if (which == XV_OLDEST) {
		*v = mmsb_store_oldest(fs->st);
		return 0;
	}
	if (n->kind == MMSBFS_K_SNAP && which != XV_LOG_BYTES) {
		uint64_t pages = 0, bytes = 0;

		rc = xattr_snap_usage(n->snap, &pages, &bytes);
		*v = which == XV_PAGES ? pages : bytes;
		return rc;
	}
	mmsb_store_stats(fs->st, &s);
	*v = which == XV_PAGES ? s.n_pages : which == XV_BYTES ? s.page_bytes : s.log_bytes;
	return 0;
}

static ssize_t xattr_get_virt(struct mmsbfs *fs, const struct mmsbfs_node *n, int which, char *buf, size_t cap)
{
	char text[24];
	uint64_t v = 0;
	int len, rc;

	if (which >= xattr_virt_count(n))
		return -ENODATA;
	rc = xattr_virt_value(fs, n, which, &v);
	if (rc < 0)
		return rc;
	len = snprintf(text, sizeof(text), "%" PRIu64, v);
	if (cap == 0)
		return len;
	if ((size_t)len > cap)
		return -ERANGE;
	memcpy(buf, text, (size_t)len);
	return len;
}

ssize_t mmsbfs_xattr_get(struct mmsbfs *fs, fuse_ino_t ino, const char *name, char *buf, size_t cap)
{
	struct mmsbfs_node n;
	ssize_t len;
	int which, rc;

	if (strncmp(name, XATTR_USER, sizeof(XATTR_USER) - 1) != 0)
		return -ENODATA; /* security.*, trusted.*, system.*: none stored */
	rc = mmsbfs_tree_get(fs, ino, &n);
	if (rc < 0)
		return rc;
	which = xattr_virt_index(name);
	len = n.kind == MMSBFS_K_LIVE && strcmp(name, XATTR_ERROR) == 0 ? xattr_get_refusal(fs, n.id, buf, cap)
									 : -ENODATA;
	if (len != -ENODATA) {
		/* a current refusal */
	} else if (which >= 0)
		len = xattr_get_virt(fs, &n, which, buf, cap);
	else if (n.kind == MMSBFS_K_LIVE)
		len = mmsb_getxattr(fs->st, n.id, name, buf, cap);
	else if (n.kind == MMSBFS_K_SNAP)
		len = mmsb_snap_getxattr(n.snap, n.id, name, buf, cap);
	else
		len = -ENODATA;
	mmsbfs_tree_put(fs, &n);
	return len;
}

/* ---- list ------------------------------------------------------------------- */

/* Listing (mmsbfs(8), "Extended attributes").  By default listxattr gives the
 * user's own attributes only: every user.mmsb.* name, the read-only virtual
 * ones and the settable deps, recompute and location, is left out, as
 * CernVM-FS hides its magic attributes.  Copy tools (cp -a, rsync -X,
 * tar --xattrs) copy what is listed: listing the read-only names made them
 * fail on the way in (EPERM) and carry stale values; listing the graph made
 * them re-create edges whose parents may not exist at the destination.
 * Every name still reads by name; -o show_mmsb_xattrs lists them all.
 * A node that is neither a page nor a directory lists nothing: the kernel
 * answers user.* on symlinks, fifos and devices with ENODATA itself, so a
 * listed name could never be read (rsync then skipped the symlink). */

/* Append the virtual names of n after the core's len bytes. */
static ssize_t xattr_list_virt(const struct mmsbfs_node *n, char *buf, size_t cap, size_t len)
{
	int i, count = xattr_virt_count(n);

	for (i = 0; i < count; i++) {
		size_t sz = strlen(xattr_virt_names[i]) + 1;

		if (cap != 0) {
			if (len + sz > cap)
				return -ERANGE;
			memcpy(buf + len, xattr_virt_names[i], sz);
		}
		len += sz;
	}
	return (ssize_t)len;
}

/* The core's list of n into a malloc'd *out (NULL when empty); its length,
 * or -errno. */
static ssize_t xattr_list_core(struct mmsbfs *fs, const struct mmsbfs_node *n, char **out)
{
	ssize_t len = 0, got;
	int tries;

	*out = NULL;
	for (tries = 0; tries < 8; tries++) { /* the list may grow between the two calls */
		len = n->kind == MMSBFS_K_LIVE ? mmsb_listxattr(fs->st, n->id, NULL, 0)
					       : mmsb_snap_listxattr(n->snap, n->id, NULL, 0);
		if (len <= 0)
			return len;
		free(*out);
		*out = malloc((size_t)len);
		if (*out == NULL)
			return -ENOMEM;
		got = n->kind == MMSBFS_K_LIVE ? mmsb_listxattr(fs->st, n->id, *out, (size_t)len)
					       : mmsb_snap_listxattr(n->snap, n->id, *out, (size_t)len);
		if (got != -ERANGE) {
			if (got < 0) {
				free(*out);
				*out = NULL;
			}
			return got;
		}
	}
	free(*out);
	*out = NULL;
	return -ERANGE;
}

/* Copy the names of list[0..len) that a default listing shows into buf. */
static ssize_t xattr_list_user(const char *list, size_t len, char *buf, size_t cap)
{
	size_t off = 0, sz, used = 0;

	for (; off < len; off += sz) {
		sz = strnlen(list + off, len - off) + 1;
		if (strncmp(list + off, XATTR_MMSB, sizeof(XATTR_MMSB) - 1) == 0)
			continue;
		if (cap != 0) {
			if (used + sz > cap)
				return -ERANGE;
			memcpy(buf + used, list + off, sz);
		}
		used += sz;
	}
	return (ssize_t)used;
}

ssize_t mmsbfs_xattr_list(struct mmsbfs *fs, fuse_ino_t ino, char *buf, size_t cap)
{
	bool all = fs->opts != NULL && fs->opts->show_mmsb_xattrs, listable = false;
	struct mmsbfs_node n;
	struct mmsb_attr a;
	char *list = NULL;
	ssize_t len = 0;
	int rc = mmsbfs_tree_get(fs, ino, &n);

	if (rc < 0)
		return rc;
	if (n.kind == MMSBFS_K_LIVE || n.kind == MMSBFS_K_SNAP) {
		rc = mmsbfs_tree_node_attr(fs, &n, &a);
		listable = rc == 0 && (a.type == MMSB_T_PAGE || a.type == MMSB_T_DIR);
		len = rc < 0 ? rc : listable ? xattr_list_core(fs, &n, &list) : 0;
	}
	if (len > 0 && !all) {
		len = xattr_list_user(list, (size_t)len, buf, cap);
	} else if (len > 0 && cap != 0) {
		if ((size_t)len <= cap)
			memcpy(buf, list, (size_t)len);
		else
			len = -ERANGE;
	}
	if (len >= 0 && all && listable)
		len = xattr_list_virt(&n, buf, cap, (size_t)len);
	free(list);
	mmsbfs_tree_put(fs, &n);
	return len;
}

/* ---- set / remove -------------------------------------------------------------- */

/* Common checks of set and remove, in the order the spec gives them. */
static int xattr_check_change(struct mmsbfs *fs, fuse_ino_t ino, const char *name)
{
	if (mmsbfs_ino_is_synth(ino))
		return -EROFS;
	if (strncmp(name, XATTR_USER, sizeof(XATTR_USER) - 1) != 0)
		return -EOPNOTSUPP;
	if (xattr_is_reserved(name))
		return -EPERM; /* virtual (read-only) or reserved user.mmsb.* */
	return fs->read_only ? -EROFS : 0;
}

int mmsbfs_xattr_set(struct mmsbfs *fs, fuse_ino_t ino, const char *name, const char *value, size_t size,
		     int flags, const struct mmsb_cred *who)
{
	unsigned mflags = 0;
	struct mmsb_txn *txn;
	char why[400];
	int rc = xattr_check_change(fs, ino, name);

	if (rc == 0 && (flags & ~(XATTR_CREATE | XATTR_REPLACE)))
		rc = -EINVAL;
	if (rc == 0)
		rc = mmsb_txn_begin(fs->st, MMSB_SRC_USER, &txn);
	if (rc < 0)
		return rc;
	mflags |= (flags & XATTR_CREATE) ? MMSB_XATTR_CREATE : 0;
	mflags |= (flags & XATTR_REPLACE) ? MMSB_XATTR_REPLACE : 0;
	rc = who ? mmsb_txn_set_cred(txn, who) : 0;
	if (rc == 0)
		rc = mmsb_txn_setxattr(txn, ino, name, value, size, mflags);
	snprintf(why, sizeof(why), "%s", rc < 0 ? mmsb_txn_why(txn) : "");
	rc = mmsbfs_txn_end(txn, rc);
	if (rc < 0)
		xattr_note_refusal(fs, ino, why); /* after the abort: nothing changed */
	return rc;
}

int mmsbfs_xattr_remove(struct mmsbfs *fs, fuse_ino_t ino, const char *name)
{
	struct mmsb_txn *txn;
	int rc = xattr_check_change(fs, ino, name);

	if (rc == -EOPNOTSUPP)
		rc = -ENODATA; /* nothing outside user.* exists to remove */
	if (rc == 0)
		rc = mmsb_txn_begin(fs->st, MMSB_SRC_USER, &txn);
	if (rc < 0)
		return rc;
	return mmsbfs_txn_end(txn, mmsb_txn_removexattr(txn, ino, name));
}
