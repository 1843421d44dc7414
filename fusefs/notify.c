/* notify.c - the notifier thread (notify.h).
 *
 * What is queued (filter in notify_wanted): every change record whose
 * source is not MMSB_SRC_USER -- pages recomputed in the user's own epoch
 * carry MMSB_SRC_PROPAGATION, restores MMSB_SRC_RESTORE -- except xattr
 * changes (the kernel caches no xattrs); of the request's own records, only
 * a SETATTR after the first (suid/sgid cleared along with a write), whose
 * mode the kernel may have cached.  A single-record user commit -- every
 * plain write -- costs one comparison.
 *
 * What is sent per record:
 *   WRITE, TRUNCATE  inval_inode(id, 0, 0): attributes and cached data
 *   SETATTR          inval_inode(id, -1, 0): attributes
 *   CREATE, MKNOD    inval_entry(parent, name at head): drops a cached
 *                    negative entry
 *   LINK             inval_inode of the parent and of the node (nlink)
 *   UNLINK, RMDIR    notify_delete(parent, id, name at epoch-1), which
 *                    also tells inotify watchers
 *   RENAME           inval_entry of the old name (at epoch-1) and of the
 *                    new one (at head)
 * Names come from the core (mmsb_path, mmsb_snap_path on epoch-1); if one
 * cannot be found, the parent's attributes are invalidated instead and the
 * stale dentry lives out its 1 s timeout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notify.h"

#define NOTIFY_WAIT_MS 250   /* longest a committer waits for its notifications */
#define NOTIFY_PATH_CAP 8192 /* path buffer of the notifier thread */

struct notify_item {
	struct notify_item *next;	/* queue link */
	uint64_t seq;			/* position in the queue (1, 2, ...) */
	uint64_t epoch;			/* the commit */
	size_t n;			/* records in recs */
	struct mmsb_change_rec recs[];	/* the records to act on */
};

struct mmsbfs_notify {
	struct mmsbfs *fs;		/* the daemon (store, session, diag) */
	pthread_t thread;		/* the notifier thread */
	pthread_mutex_t lock;		/* protects the fields below */
	pthread_cond_t wake;		/* signalled: work queued or stop */
	pthread_cond_t done;		/* broadcast: done_seq advanced */
	struct notify_item *head;	/* oldest queued item (protected by lock) */
	struct notify_item *tail;	/* newest queued item (protected by lock) */
	uint64_t queued_seq;		/* seq of the newest item queued (protected by lock) */
	uint64_t done_seq;		/* every item up to this one is sent (protected by lock) */
	bool stop;			/* stop requested (protected by lock) */
	char path[NOTIFY_PATH_CAP];	/* scratch for names (notifier thread only) */
};

/* ---- the hook (committing thread) -------------------------------------------- */

static bool notify_wanted(const struct mmsb_commit_info *ci, size_t i)
{
	const struct mmsb_change_rec *r = &ci->changes[i];

	if (r->kind == MMSB_CH_SETXATTR || r->kind == MMSB_CH_RMXATTR)
		return false; /* the kernel caches no xattrs */
	if (r->source != MMSB_SRC_USER)
		return true; /* recomputed, restored, system: the kernel cannot know */
	/* The request's own changes: the kernel made them, except a later
	 * SETATTR (suid/sgid cleared along with a write or truncate). */
	return i > 0 && r->kind == MMSB_CH_SETATTR;
}

static struct notify_item *notify_item_new(const struct mmsb_commit_info *ci)
{
	struct notify_item *it;
	size_t i, n = 0;

	for (i = 0; i < ci->n_changes; i++)
		n += notify_wanted(ci, i);
	if (n == 0)
		return NULL;
	it = malloc(sizeof(*it) + n * sizeof(it->recs[0]));
	if (it == NULL)
		return NULL;
	it->next = NULL;
	it->epoch = ci->epoch;
	it->n = 0;
	for (i = 0; i < ci->n_changes; i++)
		if (notify_wanted(ci, i))
			it->recs[it->n++] = ci->changes[i];
	return it;
}

static void notify_deadline(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

uint64_t mmsbfs_notify_queue(struct mmsbfs *fs, const struct mmsb_commit_info *ci)
{
	struct mmsbfs_notify *nt;
	struct notify_item *it;
	uint64_t seq;

	if (ci->n_changes == 0 || (ci->n_changes == 1 && ci->changes[0].source == MMSB_SRC_USER))
		return 0; /* the hot path: a plain user change */
	nt = atomic_load_explicit(&fs->notify, memory_order_acquire);
	if (nt == NULL)
		return 0;
	it = notify_item_new(ci);
	if (it == NULL)
		return 0;
	pthread_mutex_lock(&nt->lock);
	if (nt->stop) { /* shutting down: the connection is going away */
		pthread_mutex_unlock(&nt->lock);
		free(it);
		return 0;
	}
	seq = it->seq = ++nt->queued_seq;
	if (nt->tail != NULL)
		nt->tail->next = it;
	else
		nt->head = it;
	nt->tail = it;
	pthread_cond_signal(&nt->wake);
	pthread_mutex_unlock(&nt->lock);
	return seq;
}

void mmsbfs_notify_wait(struct mmsbfs *fs, uint64_t ticket)
{
	struct mmsbfs_notify *nt;
	struct timespec ts;

	if (ticket == 0)
		return;
	nt = atomic_load_explicit(&fs->notify, memory_order_acquire);
	if (nt == NULL)
		return;
	pthread_mutex_lock(&nt->lock);
	notify_deadline(&ts, NOTIFY_WAIT_MS);
	while (nt->done_seq < ticket && !nt->stop)
		if (pthread_cond_timedwait(&nt->done, &nt->lock, &ts) == ETIMEDOUT)
			break; /* never hang a writer on the kernel */
	pthread_mutex_unlock(&nt->lock);
}

/* ---- the notifier thread ----------------------------------------------------- */

/* The last component of path (a name in its parent). */
static const char *notify_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash != NULL ? slash + 1 : path;
}

static void notify_result(struct mmsbfs_notify *nt, const char *what, uint64_t ino, int rc)
{
	/* -ENOENT: the kernel does not cache it, nothing to do. */
	if (rc < 0 && rc != -ENOENT)
		mmsbfs_diag(nt->fs, MMSB_DIAG_DEBUG, "notify: %s %llu: %s", what, (unsigned long long)ino,
			    strerror(-rc));
}

static void notify_inode(struct mmsbfs_notify *nt, uint64_t id, off_t off)
{
	notify_result(nt, "inval_inode", id, fuse_lowlevel_notify_inval_inode(nt->fs->se, id, off, 0));
}

/* Invalidate name at head of node id (created or renamed).  Returns false
 * when the name could not be found. */
static bool notify_head_name(struct mmsbfs_notify *nt, uint64_t id)
{
	struct mmsb_attr a;
	const char *name;
	ssize_t len;

	if (mmsb_getattr(nt->fs->st, id, &a) < 0)
		return false;
	len = mmsb_path(nt->fs->st, id, nt->path, sizeof(nt->path) - 1);
	if (len <= 0)
		return false;
	nt->path[len] = '\0';
	name = notify_basename(nt->path);
	notify_result(nt, "inval_entry", a.parent,
		      fuse_lowlevel_notify_inval_entry(nt->fs->se, a.parent, name, strlen(name)));
	return true;
}

/* Name of id at the epoch before the commit (for removed or renamed nodes);
 * *prev is opened on first use.  NULL when unknown. */
static const char *notify_old_name(struct mmsbfs_notify *nt, uint64_t epoch, uint64_t id, struct mmsb_snap **prev)
{
	ssize_t len;

	if (*prev == NULL && (epoch == 0 || mmsb_snap_open(nt->fs->st, epoch - 1, prev) < 0))
		return NULL;
	len = mmsb_snap_path(*prev, id, nt->path, sizeof(nt->path) - 1);
	if (len <= 0)
		return NULL;
	nt->path[len] = '\0';
	return notify_basename(nt->path);
}

static void notify_removed(struct mmsbfs_notify *nt, const struct notify_item *it, const struct mmsb_change_rec *r,
			   struct mmsb_snap **prev)
{
	const char *name = notify_old_name(nt, it->epoch, r->id, prev);
	struct mmsb_attr a;
	int rc;

	if (r->kind == MMSB_CH_UNLINK && mmsb_getattr(nt->fs->st, r->id, &a) == 0 && a.nlink > 0)
		name = NULL; /* one of several names went: the name of id at epoch-1 may be another */
	if (name == NULL) {
		notify_inode(nt, r->parent, -1);
	} else if (r->kind == MMSB_CH_RENAME) {
		rc = fuse_lowlevel_notify_inval_entry(nt->fs->se, r->parent, name, strlen(name));
		notify_result(nt, "inval_entry", r->parent, rc);
	} else {
		rc = fuse_lowlevel_notify_delete(nt->fs->se, r->parent, r->id, name, strlen(name));
		if (rc < 0 && rc != -ENOENT) /* e.g. a kernel without NOTIFY_DELETE */
			rc = fuse_lowlevel_notify_inval_entry(nt->fs->se, r->parent, name, strlen(name));
		notify_result(nt, "delete", r->parent, rc);
	}
	notify_inode(nt, r->id, -1);
}

static void notify_process(struct mmsbfs_notify *nt, const struct notify_item *it)
{
	struct mmsb_snap *prev = NULL;
	size_t i;

	for (i = 0; i < it->n; i++) {
		const struct mmsb_change_rec *r = &it->recs[i];

		switch (r->kind) {
		case MMSB_CH_WRITE:
		case MMSB_CH_TRUNCATE:
			notify_inode(nt, r->id, 0);
			break;
		case MMSB_CH_SETATTR:
			notify_inode(nt, r->id, -1);
			break;
		case MMSB_CH_LINK:
			notify_inode(nt, r->parent, -1);
			notify_inode(nt, r->id, -1);
			break;
		case MMSB_CH_CREATE:
		case MMSB_CH_MKNOD:
			if (!notify_head_name(nt, r->id))
				notify_inode(nt, r->parent, -1);
			break;
		case MMSB_CH_UNLINK:
		case MMSB_CH_RMDIR:
			notify_removed(nt, it, r, &prev);
			break;
		case MMSB_CH_RENAME:
			notify_removed(nt, it, r, &prev);
			notify_head_name(nt, r->id);
			break;
		default:
			break;
		}
	}
	if (prev != NULL)
		mmsb_snap_close(prev);
}

static void *notify_main(void *arg)
{
	struct mmsbfs_notify *nt = arg;
	struct notify_item *it;

	pthread_mutex_lock(&nt->lock);
	for (;;) {
		while (nt->head == NULL && !nt->stop)
			pthread_cond_wait(&nt->wake, &nt->lock);
		if (nt->stop)
			break;
		it = nt->head;
		nt->head = it->next;
		if (nt->head == NULL)
			nt->tail = NULL;
		pthread_mutex_unlock(&nt->lock);
		notify_process(nt, it);
		pthread_mutex_lock(&nt->lock);
		nt->done_seq = it->seq;
		pthread_cond_broadcast(&nt->done);
		free(it);
	}
	pthread_mutex_unlock(&nt->lock);
	return NULL;
}

int mmsbfs_notify_start(struct mmsbfs *fs, struct mmsbfs_notify **out)
{
	struct mmsbfs_notify *nt = calloc(1, sizeof(*nt));
	int rc;

	if (nt == NULL)
		return -ENOMEM;
	nt->fs = fs;
	pthread_mutex_init(&nt->lock, NULL);
	pthread_cond_init(&nt->wake, NULL);
	pthread_cond_init(&nt->done, NULL);
	rc = pthread_create(&nt->thread, NULL, notify_main, nt);
	if (rc != 0) {
		pthread_cond_destroy(&nt->done);
		pthread_cond_destroy(&nt->wake);
		pthread_mutex_destroy(&nt->lock);
		free(nt);
		return -rc;
	}
	*out = nt;
	return 0;
}

void mmsbfs_notify_stop(struct mmsbfs_notify *nt)
{
	bool join;

	if (nt == NULL)
		return;
	pthread_mutex_lock(&nt->lock);
	join = !nt->stop;
	nt->stop = true;
	pthread_cond_signal(&nt->wake);
	pthread_cond_broadcast(&nt->done);
	pthread_mutex_unlock(&nt->lock);
	if (join)
		pthread_join(nt->thread, NULL);
}

void mmsbfs_notify_free(struct mmsbfs_notify *nt)
{
	struct notify_item *it, *next;

	if (nt == NULL)
		return;
	mmsbfs_notify_stop(nt);
	for (it = nt->head; it != NULL; it = next) {
		next = it->next;
		free(it);
	}
	pthread_cond_destroy(&nt->done);
	pthread_cond_destroy(&nt->wake);
	pthread_mutex_destroy(&nt->lock);
	free(nt);
}
