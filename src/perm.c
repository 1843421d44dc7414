/* perm.c - POSIX permission checks on the namespace (perm.h). */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ns.h"
#include "perm.h"
#include "store_int.h"

static bool perm_in_group(const struct mmsb_cred *c, uint32_t gid)
{
	size_t i;

	if (c->gid == gid)
		return true;
	for (i = 0; i < c->n_groups; i++)
		if (c->groups[i] == gid)
			return true;
	return false;
}

bool perm_allows(const struct ns_node *n, const struct mmsb_cred *c, unsigned mask)
{
	unsigned bits;

	if (c->uid == 0)
		return true; /* CAP_DAC_OVERRIDE: read and search anything */
	if (c->uid == n->uid)
		bits = (n->mode >> 6) & 7u;
	else if (perm_in_group(c, n->gid))
		bits = (n->mode >> 3) & 7u;
	else
		bits = n->mode & 7u;
	return (bits & mask) == mask;
}

/* The directories above name d, up to and including the root, are all
 * searchable by c: 0, else *deny gets the first that is not. */
static int perm_path_searchable(const struct ns *ns, const struct ns_node *d, const struct mmsb_cred *c,
				uint64_t *deny)
{
	/* a node's depth is bounded by the tree, and parent ids never form a loop */
	while (d->id != MMSB_ROOT_ID) {
		d = ns_get(ns, d->parent);
		if (!d)
			return -ENOENT;
		if (!perm_allows(d, c, PERM_X)) {
			*deny = d->id;
			return -EACCES;
		}
	}
	return 0;
}

int perm_may_read(const struct ns *ns, const struct ns_node *n, const struct mmsb_cred *c, uint64_t *deny)
{
	const struct ns_node *l;
	uint64_t first = n->id;
	int rc;

	if (!perm_allows(n, c, PERM_R)) {
		rc = -EACCES;
		goto out;
	}
	/* any one of its names will do (hard links) */
	rc = perm_path_searchable(ns, n, c, &first);
	for (l = n->links; rc < 0 && l; l = l->next_link) {
		uint64_t other = 0;

		rc = perm_path_searchable(ns, l, c, &other);
	}
out:
	if (rc == -EACCES && deny)
		*deny = first;
	return rc;
}

int perm_groups_default(void *arg, uint32_t uid, uint32_t gid, uint32_t *out, size_t cap)
{
	struct passwd pw, *res = NULL;
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t bufsz = sz > 0 ? (size_t)sz : 16384;
	char *buf = malloc(bufsz);
	gid_t *g = NULL;
	int n = (int)(cap < 65536 ? cap : 65536), rc;

	(void)arg;
	if (!buf)
		return -ENOMEM;
	rc = getpwuid_r((uid_t)uid, &pw, buf, bufsz, &res);
	if (rc != 0 || !res) {
		free(buf);
		return 0; /* no such user: no supplementary groups */
	}
	g = malloc((size_t)(n > 0 ? n : 1) * sizeof(*g));
	if (!g) {
		free(buf);
		return -ENOMEM;
	}
	if (getgrouplist(pw.pw_name, (gid_t)gid, g, &n) < 0) {
		rc = n; /* too small: n says how many there are */
	} else {
		int i;

		for (i = 0; i < n; i++)
			out[i] = (uint32_t)g[i];
		rc = n;
	}
	free(g);
	free(buf);
	return rc;
}

int mmsb_path_visible(struct mmsb_store *st, const char *path, const struct mmsb_cred *c)
{
	const struct ns_node *d;
	struct ns_node *n;
	int rc = 0;

	pthread_rwlock_rdlock(&st->lock);
	rc = ns_resolve_entry(store_ns(st), path, &n); /* the directory of this name (hard links) */
	if (rc == 0 && c->uid != 0 && n->id != MMSB_ROOT_ID) {
		d = ns_get(store_ns(st), n->parent);
		if (!d || !perm_allows(d, c, PERM_R))
			rc = -EACCES; /* its name is not listed to c */
		for (; rc == 0 && d; d = d->id == MMSB_ROOT_ID ? NULL : ns_get(store_ns(st), d->parent))
			if (!perm_allows(d, c, PERM_X))
				rc = -EACCES;
	}
	pthread_rwlock_unlock(&st->lock);
	return rc;
}
