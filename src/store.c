/* store.c - implements mmsb.h: open and recovery, transactions, reads of the
 * head, checkpoints and background work.  It wires the modules together:
 * records (rec.c) applied to a namespace (ns.c), framed into the log
 * (tlog.c), indexed for time travel (hist.c), checkpointed (ckpt.c).
 * Time-travel views are snap.c; history, diff, restore and compaction are
 * travel.c.
 *
 * TRANSACTIONS
 *
 * A transaction holds st->gate for writing (no other writer) and st->lock
 * for writing (no reader) from begin to end.  Each operation validates
 * against the head, encodes its record into the transaction's frame buffer,
 * then applies it to the head with ns_apply (the same function replay
 * uses).  Commit appends the frames and a COMMIT frame to the log in one
 * write, indexes them, publishes the epoch, and releases the locks; readers
 * never see a transaction before its frames are in the log.  Then, outside
 * the locks, the commit hook runs and, with MMSB_SYNC_COMMIT, the committer
 * waits for a (shared) fsync.  A transaction that may run an exec: recompute
 * first publishes the committed head as st->stable and releases st->lock
 * while the command runs (prop.c): readers read the clone meanwhile.
 *
 * PAGE WRITES
 *
 * mmsb_page_write, on a host page without dependents, is the parallel path
 * (txn.c): st->gate for reading and the page's stripe mutex while it diffs
 * and encodes (the frames carry epoch 0), memory reserved under a brief
 * st->lock, then under commit_mu: the next epoch, the frames restamped with
 * it, the log append, and the record applied and published under st->lock.
 * The log order is the epoch order because both are taken under commit_mu;
 * a page's bytes change only under its stripe (or in a transaction, which
 * the gate keeps apart), so the delta made before the commit is exact.
 *
 * Undo is a reload: if the log append fails, or a transaction that applied
 * records is aborted, the head is rebuilt from disk (checkpoint + log), which
 * holds exactly the committed state.  That path is rare and keeps every
 * operation free of undo logic.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delta.h"
#include "err.h"
#include "format.h"
#include "retain.h"
#include "store_int.h"
#include "sum.h"

void mmsb_store_opts_init(struct mmsb_store_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->create = true;
	o->sync = MMSB_SYNC_NONE;
	o->sync_interval_ms = 1000;
	o->ckpt_log_bytes = 256ull << 20;
	o->ckpt_at_close = true;
	o->segment_bytes = 64ull << 20;
	o->cache_bytes = 256u << 20;
	o->lz4_min_bytes = 64u << 10;
	o->exec_timeout_ms = 10000;
	o->diag_level = MMSB_DIAG_NOTICE;
	o->max_memory = mmsb_default_max_memory();
}

/* Half of the memory this process may use: physical RAM, or the cgroup's
 * memory.max when that is lower.  Half, because a checkpoint shares every
 * page buffer with the head and a write during it copies the buffer: the
 * worst case holds every page twice, and that must still fit. */
uint64_t mmsb_default_max_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	uint64_t ram = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 4ull << 30;
	char buf[32] = {0};
	int fd = open("/sys/fs/cgroup/memory.max", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t r = read(fd, buf, sizeof(buf) - 1);
		char *end;
		unsigned long long v;

		close(fd);
		v = r > 0 ? strtoull(buf, &end, 10) : 0;
		if (r > 0 && end != buf && (*end == '\n' || *end == '\0') && v > 0 && v < ram)
			ram = v;
	}
	return ram / 2;
}

const char *mmsb_source_name(enum mmsb_source s)
{
	static const char *const names[] = {"user", "propagation", "restore", "system"};

	return (unsigned)s < MMSB_ARRAY_SIZE(names) ? names[s] : "unknown";
}

const char *mmsb_change_name(enum mmsb_change c)
{
	static const char *const names[] = {"?",      "create", "write",   "truncate", "unlink",
					    "rmdir",  "rename", "setattr", "setxattr", "rmxattr",
					    "link",   "mknod"};

	return (unsigned)c < MMSB_ARRAY_SIZE(names) ? names[c] : "unknown";
}

struct ckpt_ctx store_ckpt_ctx(struct mmsb_store *st)
{
	struct ckpt_ctx c = {st->io, &st->diag, st->ckdirfd, st->seed};

	return c;
}

/* ---- superblock -------------------------------------------------------------
 * mmsb.super holds two identical 128-byte copies (offsets 0 and 128); a
 * reader takes the first valid one.  It is written at creation, and again
 * (replaced atomically) when an incompat feature is first used. */

static void encode_sb(uint8_t *sb, uint64_t seed, int64_t ctime)
{
	memset(sb, 0, MMSB_SB_SIZE);
	memcpy(sb, MMSB_SB_MAGIC, 8);
	mmsb_put_le16(sb + MMSB_SB_OFF_MAJOR, MMSB_FMT_MAJOR);
	mmsb_put_le16(sb + MMSB_SB_OFF_MINOR, MMSB_FMT_MINOR);
	mmsb_put_le64(sb + MMSB_SB_OFF_SEED, seed);
	mmsb_put_le64(sb + MMSB_SB_OFF_CTIME, (uint64_t)ctime);
	if (getrandom(sb + MMSB_SB_OFF_UUID, 16, 0) != 16)
		mmsb_put_le64(sb + MMSB_SB_OFF_UUID, seed ^ (uint64_t)ctime);
	mmsb_put_le64(sb + MMSB_SB_OFF_SUM, mmsb_sum(sb, MMSB_SB_OFF_SUM, 0));
}

static int create_sb(struct mmsb_store *st)
{
	uint8_t sb[2 * MMSB_SB_SIZE];
	uint64_t seed = 0;

	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = mmsb_now_ns() ^ (uint64_t)getpid() << 32;
	st->ctime = mmsb_wall_ns();
	encode_sb(sb, seed, st->ctime);
	memcpy(sb + MMSB_SB_SIZE, sb, MMSB_SB_SIZE);
	memcpy(st->sb, sb, MMSB_SB_SIZE);
	st->seed = seed;
	return mmsb_io_replace(st->io, st->dirfd, MMSB_SUPER_NAME, sb, sizeof(sb));
}

static bool sb_copy_valid(const uint8_t *s)
{
	return memcmp(s, MMSB_SB_MAGIC, 8) == 0 && mmsb_get_le64(s + MMSB_SB_OFF_SUM) == mmsb_sum(s, MMSB_SB_OFF_SUM, 0);
}

int store_feature_set(struct mmsb_store *st, uint32_t incompat)
{
	uint8_t sb[2 * MMSB_SB_SIZE];
	int rc;

	if ((st->incompat & incompat) == incompat)
		return 0;
	memcpy(sb, st->sb, MMSB_SB_SIZE);
	mmsb_put_le32(sb + MMSB_SB_OFF_INCOMPAT, st->incompat | incompat);
	mmsb_put_le64(sb + MMSB_SB_OFF_SUM, mmsb_sum(sb, MMSB_SB_OFF_SUM, 0));
	memcpy(sb + MMSB_SB_SIZE, sb, MMSB_SB_SIZE);
	rc = mmsb_io_replace(st->io, st->dirfd, MMSB_SUPER_NAME, sb, sizeof(sb)); /* durable before use */
	if (rc < 0) {
		mmsb_diag(&st->diag, MMSB_DIAG_ERR, "store: cannot record incompat feature 0x%x in %s: %s", incompat,
			  MMSB_SUPER_NAME, strerror(-rc));
		return rc;
	}
	memcpy(st->sb, sb, MMSB_SB_SIZE);
	st->incompat |= incompat;
	return 0;
}

static int read_sb(struct mmsb_store *st, int fd)
{
	uint8_t sb[2 * MMSB_SB_SIZE];
	ssize_t r = mmsb_io_pread_all(st->io, fd, sb, sizeof(sb), 0);
	const uint8_t *p = NULL;
	int k;

	if (r < 0)
		return (int)r;
	st->sb_bad = 0;
	for (k = 0; k < 2; k++) {
		const uint8_t *s = sb + k * MMSB_SB_SIZE;

		if ((k + 1) * MMSB_SB_SIZE <= r && sb_copy_valid(s)) {
			if (!p)
				p = s;
		} else {
			st->sb_bad |= 1u << k;
		}
	}
	if (!p) {
		mmsb_diag(&st->diag, MMSB_DIAG_ERR, "store: %s: no valid superblock: not an MMSB store", st->dir);
		return -EINVAL;
	}
	if (p == sb && !(st->sb_bad & 2) && memcmp(sb, sb + MMSB_SB_SIZE, MMSB_SB_SIZE) != 0)
		st->sb_bad |= 2; /* both pass their checksums but differ: trust the first */
	if (mmsb_get_le16(p + MMSB_SB_OFF_MAJOR) != MMSB_FMT_MAJOR ||
	    (mmsb_get_le32(p + MMSB_SB_OFF_INCOMPAT) & ~MMSB_FEAT_INCOMPAT_KNOWN)) {
		mmsb_diag(&st->diag, MMSB_DIAG_ERR, "store: %s: format version %u or incompat features 0x%x unsupported",
			  st->dir, mmsb_get_le16(p + MMSB_SB_OFF_MAJOR), mmsb_get_le32(p + MMSB_SB_OFF_INCOMPAT));
		return -ENOTSUP;
	}
	if (mmsb_get_le32(p + MMSB_SB_OFF_RO_COMPAT) & ~MMSB_FEAT_RO_COMPAT_KNOWN) {
		mmsb_diag(&st->diag, MMSB_DIAG_WARNING, "store: unknown ro_compat features: opening read-only");
		st->read_only = true;
	}
	st->seed = mmsb_get_le64(p + MMSB_SB_OFF_SEED);
	st->ctime = (int64_t)mmsb_get_le64(p + MMSB_SB_OFF_CTIME);
	st->incompat = mmsb_get_le32(p + MMSB_SB_OFF_INCOMPAT);
	memcpy(st->sb, p, MMSB_SB_SIZE);
	if (st->sb_bad && !st->read_only) { /* repair: both copies from the valid one, atomically */
		uint8_t good[2 * MMSB_SB_SIZE];
		int rc;

		memcpy(good, p, MMSB_SB_SIZE);
		memcpy(good + MMSB_SB_SIZE, p, MMSB_SB_SIZE);
		rc = mmsb_io_replace(st->io, st->dirfd, MMSB_SUPER_NAME, good, sizeof(good));
		mmsb_diag(&st->diag, rc == 0 ? MMSB_DIAG_WARNING : MMSB_DIAG_ERR,
			  "store: %s/" MMSB_SUPER_NAME ": superblock copy %d is damaged: %s", st->dir,
			  st->sb_bad & 1 ? 0 : 1, rc == 0 ? "rewritten from the other copy" : strerror(-rc));
		if (rc == 0)
			st->sb_bad = 0;
	} else if (st->sb_bad) {
		mmsb_diag(&st->diag, MMSB_DIAG_ERR,
			  "store: %s/" MMSB_SUPER_NAME ": superblock copy %d is damaged (the other one is used; a "
			  "read-write open rewrites it)",
			  st->dir, st->sb_bad & 1 ? 0 : 1);
	}
	return 0;
}

static int open_sb(struct mmsb_store *st)
{
	int fd = st->io->openat(st->io->ctx, st->dirfd, MMSB_SUPER_NAME, O_RDONLY, 0), rc;

	if (fd == -ENOENT) {
		struct stat s;

		if (fstatat(st->dirfd, MMSB_LOG_DIR, &s, 0) == 0 || fstatat(st->dirfd, MMSB_CKPT_DIR, &s, 0) == 0) {
			mmsb_diag(&st->diag, MMSB_DIAG_ERR, "store: %s: superblock missing", st->dir);
			return -EINVAL;
		}
		if (!st->o.create || st->read_only)
			return -ENOENT;
		return create_sb(st);
	}
	if (fd < 0)
		return fd;
	rc = read_sb(st, fd);
	mmsb_io_close(st->io, fd);
	return rc;
}

/* ---- loading: checkpoint + log -------------------------------------------------- */

struct load_ctx {
	struct mmsb_store *st;
	uint64_t base;	 /* checkpoint epoch loaded; later epochs are applied */
	uint64_t next;	 /* the epoch the log should deliver next */
	uint64_t stop;	 /* first lost epoch after base (0: none): the head cannot pass it */
	struct mmsb_buf scratch;
	int rc;
};

static int lost_add(struct mmsb_store *st, uint64_t first, uint64_t last)
{
	struct mmsb_epoch_range *v = realloc(st->lost, (st->n_lost + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	st->lost = v;
	st->lost[st->n_lost].first = first;
	st->lost[st->n_lost].last = last;
	st->n_lost++;
	return 0;
}

/* The oldest usable checkpoint at or after epoch e, or 0.  ck_mu held or
 * no other thread running. */
static uint64_t ckpt_at_or_after(const struct mmsb_store *st, uint64_t e)
{
	size_t i;

	for (i = 0; i < st->n_ckpts; i++)
		if (st->ckpts[i].epoch >= e)
			return st->ckpts[i].epoch;
	return 0;
}

int store_epoch_readable(struct mmsb_store *st, uint64_t base, uint64_t e)
{
	size_t i;

	if (base == 0 && st->oldest > 0)
		return -MMSB_ECORRUPT; /* no usable checkpoint to start from */
	for (i = 0; i < st->n_lost; i++)
		if (st->lost[i].first <= e && st->lost[i].last > base)
			return -MMSB_ECORRUPT;
	return 0;
}

ssize_t mmsb_lost_epochs(struct mmsb_store *st, struct mmsb_epoch_range *out, size_t cap)
{
	uint64_t head = atomic_load(&st->head);
	size_t i, n = 0;
	int rc = store_hist_need(st, 0);

	if (rc < 0)
		return rc;
	pthread_rwlock_rdlock(&st->lock);
	pthread_mutex_lock(&st->ck_mu);
	for (i = 0; i < st->n_lost; i++) {
		uint64_t c = ckpt_at_or_after(st, st->lost[i].last);
		struct mmsb_epoch_range r = {st->lost[i].first, c ? c - 1 : head};

		if (r.first <= st->oldest)
			r.first = st->oldest + 1; /* compacted since */
		if (c == st->lost[i].first || r.first > head || r.first > r.last)
			continue; /* a checkpoint holds it */
		if (n && out && n <= cap && out[n - 1].last + 1 >= r.first) {
			out[n - 1].last = r.last > out[n - 1].last ? r.last : out[n - 1].last;
			continue;
		}
		if (out && n < cap)
			out[n] = r;
		n++;
	}
	pthread_mutex_unlock(&st->ck_mu);
	pthread_rwlock_unlock(&st->lock);
	return (ssize_t)n;
}

static int index_txn(struct mmsb_store *st, const struct tlog_txn *t)
{
	uint32_t i;
	int rc = hist_add_epoch(&st->hist, t->epoch, t->time, t->source, t->changed);

	for (i = 0; i < t->n && rc == 0; i++) {
		struct hist_rec hr = store_hist_rec(&t->recs[i], t->seg, t->offs[i], t->lens[i]);

		rc = hist_add_rec(&st->hist, &hr);
	}
	return rc;
}

static int load_txn(void *arg, const struct tlog_txn *t)
{
	struct load_ctx *lc = arg;
	struct mmsb_store *st = lc->st;
	uint32_t i;
	int rc;

	if (t->epoch < st->hist_from || lc->stop)
		return 0; /* older epochs: indexed on first need (store_hist_need) */
	if (t->epoch > lc->next) { /* the recovery scan skipped damage */
		rc = lost_add(st, lc->next, t->epoch - 1);
		if (rc == 0 && t->epoch - 1 > lc->base) { /* no checkpoint covers it: the head ends before */
			lc->stop = lc->next > lc->base ? lc->next : lc->base + 1;
			return 0;
		}
		if (rc == 0)
			rc = hist_skip_to(&st->hist, t->epoch);
		if (rc < 0)
			return rc;
	}
	lc->next = t->epoch + 1;
	rc = index_txn(st, t);
	if (rc < 0 || t->epoch <= lc->base)
		return rc;
	for (i = 0; i < t->n; i++) {
		rc = ns_apply(st->ns, &t->recs[i], &lc->scratch);
		if (rc < 0)
			return MMSB_CORRUPT(&st->diag,
					    "store: epoch %" PRIu64 ": %s record for node %" PRIu64
					    " does not apply (%s)",
					    t->epoch, mmsb_rec_type_name(t->recs[i].type), t->recs[i].node, strerror(-rc));
	}
	st->replay_bytes += t->bytes;
	return 0;
}

/* Oldest retained epoch: 0 while the log starts at epoch 1, else the oldest
 * checkpoint that the log continues from. */
/* COMPACTED FILE (mmsb(5)): STORE/compacted holds "MMSBCOMPACT 1\n<epoch>\n",
 * the checkpoint epoch of the last compaction, replaced atomically.  History
 * before it is gone even where a log segment that also holds later epochs
 * (so could not be deleted) still has its bytes. */
#define COMPACTED_NAME "compacted"

static uint64_t read_compacted(struct mmsb_store *st)
{
	char buf[64] = "";
	uint64_t e = 0;
	int fd = st->io->openat(st->io->ctx, st->dirfd, COMPACTED_NAME, O_RDONLY, 0);
	ssize_t n = fd < 0 ? -1 : mmsb_io_pread_all(st->io, fd, buf, sizeof(buf) - 1, 0);

	mmsb_io_close(st->io, fd);
	if (n > 0 && sscanf(buf, "MMSBCOMPACT 1\n%" SCNu64, &e) != 1) {
		mmsb_diag(&st->diag, MMSB_DIAG_WARNING, "store: %s/" COMPACTED_NAME " is malformed: ignored", st->dir);
		e = 0;
	}
	return e;
}

int store_write_compacted(struct mmsb_store *st, uint64_t epoch)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "MMSBCOMPACT 1\n%" PRIu64 "\n", epoch);

	return mmsb_io_replace(st->io, st->dirfd, COMPACTED_NAME, buf, (size_t)n);
}

int store_find_oldest(struct mmsb_store *st)
{
	uint64_t floor = read_compacted(st);
	struct tlog_stats ts;
	size_t i;

	mmsb_tlog_stats(st->log, &ts);
	st->oldest = 0;
	for (i = 0; i < st->n_ckpts && ts.first_epoch > 1; i++)
		if (st->ckpts[i].epoch + 1 >= ts.first_epoch) {
			st->oldest = st->ckpts[i].epoch;
			break;
		}
	if (ts.first_epoch > 1 && st->oldest == 0)
		return MMSB_CORRUPT(&st->diag,
				    "store: the log starts at epoch %" PRIu64 " but no checkpoint covers the epochs before",
				    ts.first_epoch);
	if (floor > st->oldest)
		st->oldest = floor;
	return 0;
}

/* Pages loaded from a checkpoint with user.mmsb.location = gpu go to the
 * GPU, where there is one and room; else they stay in host memory. */
static int place_gpu_pages(struct mmsb_store *st)
{
	size_t i;

	st->ns->gpu = st->gpu;
	for (i = 0; st->gpu && i < st->ns->ids_cap; i++) {
		struct ns_node *n = st->ns->ids[i];
		const struct ns_xattr *x = n ? ns_xattr_find(n, MMSB_XATTR_LOCATION, strlen(MMSB_XATTR_LOCATION)) : NULL;
		int rc;

		if (!x || !ns_location_dev(st->ns, x->value, x->len))
			continue;
		rc = ns_page_place(n, st->gpu, st->ns->mem);
		if (rc < 0)
			mmsb_diag(&st->diag, MMSB_DIAG_WARNING,
				  "store: GPU page %" PRIu64 " stays in host memory: %s", n->id, strerror(-rc));
	}
	return 0;
}

/* Load the newest checkpoint that loads (full).  *base gets its epoch. */
static int load_base(struct mmsb_store *st, uint64_t *base)
{
	struct ckpt_ctx c = store_ckpt_ctx(st);
	size_t i;

	for (i = st->n_ckpts; i-- > 0;) {
		struct ns *ns;
		int rc;

		if (st->ckpts[i].epoch < st->oldest)
			break;
		mmsb_ckpt_table_put(st->ck_tab);
		st->ck_tab = NULL;
		rc = mmsb_ckpt_load(&c, st->ckpts[i].epoch, false, &ns, &st->ckpts[i].time, &st->ck_tab);
		if (rc == 0) {
			st->ns = ns;
			*base = st->ckpts[i].epoch;
			return 0;
		}
		if (rc == -ENOMEM)
			return rc;
		mmsb_diag(&st->diag, MMSB_DIAG_ERR,
			  "store: checkpoint %" PRIu64 " is damaged (%s): recovering from an older checkpoint and the log",
			  st->ckpts[i].epoch, strerror(-rc));
		memmove(st->ckpts + i, st->ckpts + i + 1, (st->n_ckpts - i - 1) * sizeof(*st->ckpts));
		st->n_ckpts--;
		st->n_bad_ckpts++;
	}
	if (st->oldest > 0)
		return MMSB_CORRUPT(&st->diag, "store: no usable checkpoint at or after epoch %" PRIu64, st->oldest);
	*base = 0;
	return ns_new(st->ctime, &st->ns);
}

/* Say what the damage the recovery scan skipped costs. */
static void report_lost(struct mmsb_store *st, size_t from, size_t to)
{
	size_t i;

	for (i = from; i < to; i++) {
		uint64_t c = ckpt_at_or_after(st, st->lost[i].last);
		uint64_t head = atomic_load(&st->head);

		if (c && c <= head)
			mmsb_diag(&st->diag, MMSB_DIAG_ERR,
				  "store: history lost: the log records of epochs %" PRIu64 "-%" PRIu64
				  " are damaged; epochs %" PRIu64 "-%" PRIu64 " cannot be read (checkpoint %" PRIu64
				  " and the epochs after it are intact)",
				  st->lost[i].first, st->lost[i].last, st->lost[i].first, c - 1, c);
		else
			mmsb_diag(&st->diag, MMSB_DIAG_ERR,
				  "store: history lost: the log records of epochs %" PRIu64 "-%" PRIu64
				  " are damaged and no later checkpoint covers them: epochs from %" PRIu64 " on are lost",
				  st->lost[i].first, st->lost[i].last, st->lost[i].first);
	}
}

/* Files before the oldest retained epoch are not checkpoints any more:
 * compaction keeps them only for the blocks retained ones refer to (they
 * go to st->ck_held, which counts their bytes).  ck_mu held or no other
 * thread running. */
void store_ckpts_drop_before(struct mmsb_store *st, uint64_t oldest)
{
	struct ckpt_ctx c = store_ckpt_ctx(st);
	size_t i, j, k;

	for (i = k = 0; i < st->n_ck_held; i++) /* those compaction removed since */
		if (mmsb_ckpt_exists(&c, st->ck_held[i].epoch))
			st->ck_held[k++] = st->ck_held[i];
	st->n_ck_held = k;
	for (i = j = 0; i < st->n_ckpts; i++) {
		if (st->ckpts[i].epoch >= oldest) {
			st->ckpts[j++] = st->ckpts[i];
		} else if (mmsb_ckpt_exists(&c, st->ckpts[i].epoch)) {
			struct ckpt_info *v = realloc(st->ck_held, (st->n_ck_held + 1) * sizeof(*v));

			if (!v)
				continue; /* only their bytes go uncounted */
			st->ck_held = v;
			st->ck_held[st->n_ck_held++] = st->ckpts[i];
		}
	}
	st->n_ckpts = j;
}

static int store_load(struct mmsb_store *st)
{
	struct ckpt_ctx c = store_ckpt_ctx(st);
	struct load_ctx lc = {.st = st};
	struct tlog_recovery res;
	uint64_t last, from, t0 = mmsb_now_ns();
	const char *why = NULL;
	int rc;

	free(st->ckpts);
	st->ckpts = NULL;
	st->n_ckpts = 0;
	mmsb_ckpt_table_put(st->ck_tab);
	st->ck_tab = NULL;
	free(st->ck_held);
	st->ck_held = NULL;
	st->n_ck_held = 0;
	free(st->lost);
	st->lost = NULL;
	st->n_lost = 0;
	st->damaged = false;
	rc = mmsb_ckpt_list(&c, &st->ckpts, &st->n_ckpts);
	if (rc == 0)
		rc = store_find_oldest(st);
	if (rc == 0)
		store_ckpts_drop_before(st, st->oldest);
	atomic_store(&st->mem.limit, UINT64_MAX); /* what the log holds loads, whatever the budget */
	if (rc == 0)
		rc = load_base(st, &lc.base);
	if (rc == 0)
		ns_mem_adopt(st->ns, &st->mem);
	if (rc == 0)
		rc = place_gpu_pages(st);
	if (rc < 0)
		return rc;
	/* the log from the segment that holds the base checkpoint's epoch, and
	 * only the epochs from it on are indexed: the rest is indexed on the
	 * first time-travel read that needs it (store_hist_need), so open time
	 * and memory follow the log since the checkpoint (plus at most one
	 * segment read), not all retained history */
	from = lc.base ? mmsb_tlog_scan_start(st->log, lc.base) : 0;
	st->hist_from = lc.base > st->oldest + 1 ? lc.base : st->oldest + 1;
	hist_init(&st->hist, st->hist_from);
	if (st->hist_from > st->oldest + 1)
		st->hist.base = HIST_PREFIX_ROOM;
	st->replay_bytes = 0;
	lc.next = st->hist_from;
	rc = mmsb_tlog_recover(st->log, from, load_txn, &lc, &res);
	mmsb_buf_free(&lc.scratch);
	if (rc < 0)
		return rc;
	last = lc.next - 1; /* the last epoch applied or indexed in sequence */
	if (lc.stop) {
		why = "damage that no checkpoint covers";
	} else if (res.end_damaged) {
		why = "damage at its end (not a torn write)";
	} else if (last < lc.base) {
		why = "a missing or damaged segment (it ends before the newest checkpoint)";
		mmsb_diag(&st->diag, MMSB_DIAG_ERR,
			  "store: the log ends at epoch %" PRIu64 ", before checkpoint %" PRIu64
			  ": the records of epochs %" PRIu64 "-%" PRIu64 " and of any epoch after %" PRIu64 " are lost",
			  last, lc.base, last + 1, lc.base, lc.base);
	}
	if (last < lc.base && !lc.stop) { /* records of (last, base] lost; the checkpoint holds base */
		rc = lost_add(st, last + 1, lc.base);
		if (rc == 0)
			rc = hist_skip_to(&st->hist, lc.base + 1);
		if (rc < 0)
			return rc;
	}
	atomic_store(&st->head, last > lc.base ? last : lc.base);
	report_lost(st, 0, st->n_lost);
	if (why && !st->read_only)
		return MMSB_CORRUPT(&st->diag,
				    "store: %s: the log has %s; refusing to open read-write (a read-only open "
				    "serves epochs up to %" PRIu64 ")",
				    st->dir, why, (uint64_t)atomic_load(&st->head));
	if (why) {
		st->damaged = true;
		mmsb_diag(&st->diag, MMSB_DIAG_ERR, "store: %s: the log has %s: serving epochs up to %" PRIu64 " read-only",
			  st->dir, why, (uint64_t)atomic_load(&st->head));
	}
	st->ck_done = st->n_ckpts ? st->ckpts[st->n_ckpts - 1].epoch : 0;
	st->log_since_ckpt = st->replay_bytes; /* the log the next open would replay */
	st->replay_ns = mmsb_now_ns() - t0;
	if (!st->o.max_memory)
		st->o.max_memory = mmsb_default_max_memory();
	atomic_store(&st->mem.limit, st->o.max_memory);
	if (atomic_load(&st->mem.used) > st->o.max_memory)
		mmsb_diag(&st->diag, MMSB_DIAG_WARNING,
			  "store: pages hold %" PRIu64 " bytes, past max_memory %" PRIu64 ": writes that allocate get ENOSPC",
			  atomic_load(&st->mem.used), st->o.max_memory);
	return 0;
}

struct prefix_ctx {
	struct mmsb_store *st;
	struct mmsb_hist h; /* the index of the epochs before st->hist_from */
	uint64_t next;	    /* the epoch expected next */
	uint64_t before;    /* st->hist_from */
};

static int prefix_txn(void *arg, const struct tlog_txn *t)
{
	struct prefix_ctx *p = arg;
	uint32_t i;
	int rc = 0;

	if (t->epoch <= p->st->oldest || t->epoch >= p->before)
		return 0;
	if (t->epoch > p->next) {
		rc = lost_add(p->st, p->next, t->epoch - 1);
		if (rc == 0)
			rc = hist_skip_to(&p->h, t->epoch);
	}
	p->next = t->epoch + 1;
	if (rc == 0)
		rc = hist_add_epoch(&p->h, t->epoch, t->time, t->source, t->changed);
	for (i = 0; i < t->n && rc == 0; i++) {
		struct hist_rec hr = store_hist_rec(&t->recs[i], t->seg, t->offs[i], t->lens[i]);

		rc = hist_add_rec(&p->h, &hr);
	}
	return rc;
}

static int cmp_range(const void *a, const void *b)
{
	const struct mmsb_epoch_range *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/* Index the segments recovery skipped (st->lock held for writing). */
static int store_load_prefix(struct mmsb_store *st)
{
	struct prefix_ctx p = {.st = st, .next = st->oldest + 1, .before = st->hist_from};
	size_t n0 = st->n_lost, i;
	struct tlog_recovery res;
	uint64_t t0 = mmsb_now_ns();
	int rc;

	hist_init(&p.h, st->oldest + 1);
	rc = mmsb_tlog_scan_before(st->log, p.before, prefix_txn, &p, &res);
	if (rc == 0 && p.next < p.before) /* the skipped segments end early: damage */
		rc = lost_add(st, p.next, p.before - 1);
	if (rc == 0)
		rc = hist_skip_to(&p.h, p.before);
	if (rc < 0) {
		hist_free(&p.h);
		st->n_lost = n0;
		return rc;
	}
	rc = hist_prepend(&st->hist, &p.h);
	if (rc < 0) {
		st->n_lost = n0;
		return rc;
	}
	st->hist_from = st->oldest + 1;
	pthread_mutex_lock(&st->ck_mu);
	report_lost(st, n0, st->n_lost);
	pthread_mutex_unlock(&st->ck_mu);
	for (i = n0; i < st->n_lost; i++) /* the known history now starts earlier */
		if (st->lost[i].last >= p.before)
			st->lost[i].last = p.before - 1;
	if (st->n_lost > 1)
		qsort(st->lost, st->n_lost, sizeof(*st->lost), cmp_range);
	mmsb_diag(&st->diag, MMSB_DIAG_INFO, "store: indexed the history before epoch %" PRIu64 " in %.3f s", p.before,
		  (double)(mmsb_now_ns() - t0) / 1e9);
	return 0;
}

int store_hist_need(struct mmsb_store *st, uint64_t e)
{
	bool need;
	int rc = 0;

	pthread_rwlock_rdlock(&st->lock);
	need = e < st->hist_from && st->hist_from > st->oldest + 1;
	pthread_rwlock_unlock(&st->lock);
	if (!need)
		return 0;
	pthread_rwlock_wrlock(&st->lock);
	if (e < st->hist_from && st->hist_from > st->oldest + 1)
		rc = store_load_prefix(st);
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

int store_stable_publish(struct mmsb_txn *t)
{
	struct mmsb_store *st = t->st;
	int rc = ns_clone(st->ns, &st->stable);

	if (rc < 0) {
		st->stable = NULL;
		return rc;
	}
	t->stable = true;
	return 0;
}

void store_stable_withdraw(struct mmsb_txn *t)
{
	ns_free(t->st->stable);
	t->st->stable = NULL;
	t->stable = false;
}

int store_reload(struct mmsb_store *st)
{
	int rc;

	ns_free(st->ns);
	st->ns = NULL;
	hist_free(&st->hist);
	pthread_mutex_lock(&st->ck_mu);
	rc = store_load(st);
	pthread_mutex_unlock(&st->ck_mu);
	if (rc < 0) {
		mmsb_diag(&st->diag, MMSB_DIAG_ERR, "store: reloading the head failed (%s): store is read-only",
			  strerror(-rc));
		st->read_only = true;
		if (!st->ns)
			ns_new(st->ctime, &st->ns);
	}
	return rc;
}

uint64_t store_base_ckpt(struct mmsb_store *st, uint64_t e)
{
	uint64_t best = 0;
	size_t i;

	pthread_mutex_lock(&st->ck_mu);
	for (i = 0; i < st->n_ckpts; i++)
		if (st->ckpts[i].epoch <= e && st->ckpts[i].epoch >= st->oldest)
			best = st->ckpts[i].epoch;
	pthread_mutex_unlock(&st->ck_mu);
	return best;
}

void store_ckpt_drop(struct mmsb_store *st, uint64_t epoch, int why)
{
	size_t i;

	pthread_mutex_lock(&st->ck_mu);
	for (i = 0; i < st->n_ckpts; i++)
		if (st->ckpts[i].epoch == epoch) {
			memmove(st->ckpts + i, st->ckpts + i + 1, (st->n_ckpts - i - 1) * sizeof(*st->ckpts));
			st->n_ckpts--;
			st->n_bad_ckpts++;
			mmsb_diag(&st->diag, MMSB_DIAG_ERR,
				  "store: checkpoint %" PRIu64 " is damaged (%s): views fall back to an older one", epoch,
				  strerror(-why));
			break;
		}
	if (st->ck_tab && st->ck_tab->epoch == epoch) { /* the next checkpoint refers to none of it */
		mmsb_ckpt_table_put(st->ck_tab);
		st->ck_tab = NULL;
	}
	pthread_mutex_unlock(&st->ck_mu);
}

/* ---- background work ----------------------------------------------------------------- */

static int ckpt_add(struct mmsb_store *st, uint64_t epoch, int64_t time, uint64_t bytes,
		    const struct ckpt_table *tab)
{
	struct ckpt_info *v = realloc(st->ckpts, (st->n_ckpts + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	st->ckpts = v;
	st->ckpts[st->n_ckpts].epoch = epoch;
	st->ckpts[st->n_ckpts].time = time;
	st->ckpts[st->n_ckpts].file_bytes = bytes;
	st->ckpts[st->n_ckpts].n_files = tab ? tab->n_files : 0;
	if (tab)
		memcpy(st->ckpts[st->n_ckpts].files, tab->files, sizeof(tab->files));
	st->n_ckpts++;
	return 0;
}

#define CKPT_RECS_MAX (1u << 20) /* more records since the last checkpoint: hash changed pages whole */

/* The byte records of epochs (since, e], copied from the index (st->lock
 * held, so it stays short: a copy, bounded): -ENOENT when some of them are
 * not indexed or lost, or there are too many. */
static int ckpt_recs_since(struct mmsb_store *st, uint64_t since, uint64_t e, struct hist_rec **out, size_t *n)
{
	uint64_t seq, end = st->hist.base + st->hist.n;
	struct hist_rec *v = NULL;
	size_t cnt = 0, cap = 0, i;

	if (since + 1 < st->hist_from || since >= e || !hist_epoch(&st->hist, since + 1) || !hist_epoch(&st->hist, e))
		return -ENOENT;
	for (i = 0; i < st->n_lost; i++)
		if (st->lost[i].first <= e && st->lost[i].last > since)
			return -ENOENT;
	seq = hist_global_seq_after(&st->hist, since);
	if (end - seq > CKPT_RECS_MAX)
		return -ENOENT;
	for (; seq < end; seq++) {
		const struct hist_rec *hr = hist_rec(&st->hist, seq);

		if (!hr || hr->epoch > e || !mmsb_rec_is_bytes(hr->type))
			continue;
		if (cnt == cap) {
			struct hist_rec *nv = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*nv));

			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		v[cnt++] = *hr;
	}
	*out = v;
	*n = cnt;
	return 0;
}

struct dirty_ctx {
	struct ckpt_dirty *d;
	uint64_t id; /* the page of the record read */
	int rc;	     /* -ENOMEM */
};

static int dirty_range(void *arg, uint64_t off, uint64_t len)
{
	struct dirty_ctx *x = arg;

	x->rc = mmsb_ckpt_dirty_add(x->d, x->id, off, len);
	return x->rc < 0;
}

/* The blocks record hr changes, into d (buf, raw: scratch). */
static int ckpt_dirty_rec(struct mmsb_store *st, const struct hist_rec *hr, struct ckpt_dirty *d, struct mmsb_buf *buf,
			  struct mmsb_buf *raw)
{
	struct dirty_ctx x = {d, hr->node, 0};
	const uint8_t *body;
	size_t len;
	struct mmsb_rec r = {0};
	int rc;

	if (hr->type == MMSB_FR_TRUNCATE) /* from the new end on */
		return mmsb_ckpt_dirty_add(d, hr->node, hr->size, UINT64_MAX);
	rc = snap_read_rec(st, hr, buf, &r);
	body = r.u.write.body;
	len = r.u.write.body_len;
	if (rc == 0 && (r.u.write.flags & MMSB_WF_LZ4)) {
		raw->len = 0;
		rc = mmsb_delta_unpack(r.u.write.body, r.u.write.body_len, MMSB_FR_MAX_PAYLOAD, raw);
		body = raw->p;
		len = raw->len;
	}
	if (rc == 0)
		rc = mmsb_delta_ranges(r.u.write.enc, body, len, dirty_range, &x);
	if (rc == -ENOMEM || x.rc < 0)
		return -ENOMEM;
	return rc == 0 ? 0 : mmsb_ckpt_dirty_add(d, hr->node, 0, UINT64_MAX); /* unreadable: all of it */
}

static int cmp_rec_node(const void *a, const void *b)
{
	const struct hist_rec *x = a, *y = b;

	return x->node < y->node ? -1 : x->node > y->node;
}

/* Which blocks the records recs[0..n) change (read from the log: where a
 * WRITE's delta lies); a record that cannot be read marks its whole page,
 * and so do records of a page whose frames add up to half its size or more
 * (hashing the page costs less than reading them back).  Sorts recs. */
static int ckpt_dirty_build(struct mmsb_store *st, uint64_t since, struct hist_rec *recs, size_t n,
			    struct ckpt_dirty *d)
{
	struct mmsb_buf buf = {0}, raw = {0};
	size_t i, k;
	int rc = 0;

	d->since = since;
	if (n) /* the order does not matter: a union of ranges */
		qsort(recs, n, sizeof(*recs), cmp_rec_node);
	for (i = 0; i < n && rc == 0; i = k) {
		uint64_t frames = 0, size = 0;

		for (k = i; k < n && recs[k].node == recs[i].node; k++) {
			frames += recs[k].len;
			size = recs[k].size > size ? recs[k].size : size;
		}
		rc = mmsb_ckpt_dirty_count(d, recs[i].node, k - i);
		if (rc == 0 && frames >= size / 2) {
			rc = mmsb_ckpt_dirty_add(d, recs[i].node, 0, UINT64_MAX);
			i = k;
		}
		for (; i < k && rc == 0; i++)
			rc = ckpt_dirty_rec(st, &recs[i], d, &buf, &raw);
	}
	mmsb_buf_free(&buf);
	mmsb_buf_free(&raw);
	mmsb_ckpt_dirty_finish(d);
	return rc;
}

/* Capture the head cheaply (a clone sharing page buffers), make the log
 * durable up to it, write it.  Called without any lock held. */
static int ckpt_once(struct mmsb_store *st, uint64_t *epoch)
{
	struct ckpt_ctx c = store_ckpt_ctx(st);
	const struct hist_epoch *he;
	struct ns *clone = NULL;
	struct ckpt_table *prev, *tab = NULL;
	struct ckpt_dirty dirty = {0};
	struct hist_rec *recs = NULL;
	size_t n_recs = 0;
	bool known = false;
	uint64_t e, bytes = 0, t0, since;
	int64_t time;
	int rc;

	pthread_rwlock_rdlock(&st->lock);
	e = atomic_load(&st->head);
	he = hist_epoch(&st->hist, e);
	time = he ? he->time : mmsb_wall_ns();
	rc = ns_clone(store_ns(st), &clone);
	pthread_mutex_lock(&st->ck_mu); /* no commit meanwhile: the log up to e */
	since = st->log_since_ckpt;
	prev = mmsb_ckpt_table_get(st->ck_tab); /* unchanged blocks: refer to it */
	pthread_mutex_unlock(&st->ck_mu);
	/* what changed since it: the index's records (copied; read outside the lock) */
	known = rc == 0 && prev && ckpt_recs_since(st, prev->epoch, e, &recs, &n_recs) == 0;
	pthread_rwlock_unlock(&st->lock);
	if (rc < 0) {
		mmsb_ckpt_table_put(prev);
		return rc;
	}
	t0 = mmsb_now_ns();
	rc = mmsb_tlog_sync(st->log); /* the log never lags a checkpoint */
	if (rc == 0 && known && ckpt_dirty_build(st, prev->epoch, recs, n_recs, &dirty) < 0)
		known = false; /* then every changed page is hashed whole */
	if (rc == 0)
		rc = mmsb_ckpt_write(&c, clone, e, time, prev, known ? &dirty : NULL, &bytes, &tab);
	mmsb_ckpt_dirty_free(&dirty);
	free(recs);
	mmsb_ckpt_table_put(prev);
	ns_free(clone);
	if (rc < 0) {
		mmsb_diag(&st->diag, MMSB_DIAG_ERR, "store: checkpoint of epoch %" PRIu64 " failed: %s", e, strerror(-rc));
		return rc;
	}
	atomic_store(&st->ckpt_write_bytes, bytes);
	atomic_store(&st->ckpt_write_ns, mmsb_now_ns() - t0);
	pthread_mutex_lock(&st->ck_mu);
	if (e > st->ck_done) {
		rc = ckpt_add(st, e, time, bytes, tab);
		st->ck_done = e;
		mmsb_ckpt_table_put(st->ck_tab);
		st->ck_tab = tab;
		tab = NULL;
	}
	mmsb_ckpt_table_put(tab);
	st->log_since_ckpt -= since < st->log_since_ckpt ? since : st->log_since_ckpt; /* what came after e stays */
	pthread_mutex_unlock(&st->ck_mu);
	*epoch = e;
	return rc;
}

static void *ckpt_main(void *arg)
{
	struct mmsb_store *st = arg;

	pthread_mutex_lock(&st->ck_mu);
	for (;;) {
		uint64_t e;
		int rc;

		while (!st->stop && st->ck_want <= st->ck_done)
			pthread_cond_wait(&st->ck_cond, &st->ck_mu);
		if (st->stop)
			break;
		pthread_mutex_unlock(&st->ck_mu);
		rc = ckpt_once(st, &e);
		if (rc == 0)
			retain_apply(st); /* before waiters wake: they see its result */
		pthread_mutex_lock(&st->ck_mu);
		st->ck_err = rc;
		if (rc < 0 && st->ck_want > st->ck_done)
			st->ck_want = st->ck_done; /* give up this request; callers see ck_err */
		pthread_cond_broadcast(&st->ck_cond);
	}
	pthread_mutex_unlock(&st->ck_mu);
	return NULL;
}

static void *sync_main(void *arg)
{
	struct mmsb_store *st = arg;
	struct timespec ts;

	pthread_mutex_lock(&st->ck_mu);
	while (!st->stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += st->o.sync_interval_ms / 1000;
		ts.tv_nsec += (long)(st->o.sync_interval_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&st->ck_cond, &st->ck_mu, &ts);
		if (st->stop)
			break;
		pthread_mutex_unlock(&st->ck_mu);
		mmsb_tlog_sync(st->log);
		pthread_mutex_lock(&st->ck_mu);
	}
	pthread_mutex_unlock(&st->ck_mu);
	return NULL;
}

int mmsb_checkpoint(struct mmsb_store *st, uint64_t *epoch)
{
	uint64_t e = atomic_load(&st->head);
	int rc = 0;

	if (st->read_only || !st->ck_started)
		return -EROFS;
	pthread_mutex_lock(&st->ck_mu);
	if (e > st->ck_done) {
		if (st->ck_want < e)
			st->ck_want = e;
		pthread_cond_broadcast(&st->ck_cond);
		while (st->ck_done < e && st->ck_want >= e)
			pthread_cond_wait(&st->ck_cond, &st->ck_mu);
		if (st->ck_done < e)
			rc = st->ck_err ? st->ck_err : -EIO;
	}
	if (rc == 0)
		*epoch = st->ck_done;
	pthread_mutex_unlock(&st->ck_mu);
	return rc;
}

ssize_t mmsb_checkpoints(struct mmsb_store *st, struct mmsb_ckpt_info *out, size_t cap)
{
	size_t i;
	ssize_t n;

	pthread_mutex_lock(&st->ck_mu);
	for (i = 0; i < st->n_ckpts && i < cap; i++) {
		out[i].epoch = st->ckpts[i].epoch;
		out[i].time_ns = st->ckpts[i].time;
		out[i].file_bytes = st->ckpts[i].file_bytes;
	}
	n = (ssize_t)st->n_ckpts;
	pthread_mutex_unlock(&st->ck_mu);
	return n;
}

/* ---- open and close -------------------------------------------------------------------- */

/* A store is created only in an empty directory: a directory holding other
 * files is not a store, and creating one there would mix the store's files
 * with the user's.  0 when dirfd holds a superblock, is empty, or holds only
 * what a store (or an interrupted creation) leaves: LOCK, log/, ckpt/ (then
 * open_sb() tells what is missing); else -ENOTEMPTY. */
static int check_fresh_dir(struct mmsb_store *st)
{
	struct dirent *e;
	struct stat s;
	DIR *d;
	int fd, rc = 0;

	if (fstatat(st->dirfd, MMSB_SUPER_NAME, &s, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
		return 0;
	fd = openat(st->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		return rc;
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
		    strcmp(e->d_name, MMSB_LOCK_NAME) != 0 && strcmp(e->d_name, MMSB_LOG_DIR) != 0 &&
		    strcmp(e->d_name, MMSB_CKPT_DIR) != 0) {
			mmsb_diag(&st->diag, MMSB_DIAG_ERR,
				  "store: %s: not a store and not empty (holds '%s'): a new store needs an empty directory",
				  st->dir, e->d_name);
			rc = -ENOTEMPTY;
		}
	}
	closedir(d);
	return rc;
}

static int open_dirs(struct mmsb_store *st)
{
	const struct mmsb_io_ops *io = st->io;
	int rc;

	if (st->o.create && !st->read_only && mkdir(st->dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	st->dirfd = io->openat(io->ctx, AT_FDCWD, st->dir, O_RDONLY | O_DIRECTORY, 0);
	if (st->dirfd < 0)
		return st->dirfd;
	if (st->o.create && !st->read_only) {
		rc = check_fresh_dir(st);
		if (rc < 0)
			return rc;
	}
	if (!st->read_only) {
		st->lockfd = io->openat(io->ctx, st->dirfd, MMSB_LOCK_NAME, O_RDWR | O_CREAT, 0600);
		if (st->lockfd < 0)
			return st->lockfd;
		/* -EBUSY without a message: the caller may be waiting for the
		 * previous owner to finish closing, and words it if it gives up */
		if (flock(st->lockfd, LOCK_EX | LOCK_NB) < 0)
			return errno == EWOULDBLOCK ? -EBUSY : -errno;
	}
	rc = open_sb(st);
	if (rc < 0)
		return rc;
	if (!st->read_only) {
		rc = io->mkdirat(io->ctx, st->dirfd, MMSB_CKPT_DIR, 0700);
		if (rc == 0)
			rc = io->fsync(io->ctx, st->dirfd); /* the new directory's name is durable */
		if (rc < 0 && rc != -EEXIST)
			return rc;
	}
	st->ckdirfd = io->openat(io->ctx, st->dirfd, MMSB_CKPT_DIR, O_RDONLY | O_DIRECTORY, 0);
	if (st->ckdirfd == -ENOENT && st->read_only)
		st->ckdirfd = io->openat(io->ctx, st->dirfd, ".", O_RDONLY | O_DIRECTORY, 0);
	return st->ckdirfd < 0 ? st->ckdirfd : 0;
}

static int start_threads(struct mmsb_store *st)
{
	if (st->read_only)
		return 0;
	if (pthread_create(&st->ck_thread, NULL, ckpt_main, st) != 0)
		return -EAGAIN;
	st->ck_started = true;
	if (st->o.sync == MMSB_SYNC_INTERVAL) {
		if (pthread_create(&st->sync_thread, NULL, sync_main, st) != 0)
			return -EAGAIN;
		st->sync_started = true;
	}
	return 0;
}

int mmsb_store_open(const char *dir, const struct mmsb_store_opts *o, struct mmsb_store **out)
{
	struct mmsb_store *st = calloc(1, sizeof(*st));
	pthread_rwlockattr_t ra;
	struct tlog_opts to;
	size_t i;
	int rc;

	if (!st)
		return -ENOMEM;
	st->o = *o;
	st->dir = strdup(dir);
	st->io = o->io ? o->io : &mmsb_io_posix;
	st->kern = mmsb_kern_cpu();
	if (!o->read_only && o->gpu == MMSB_GPU_AUTO) {
		const struct mmsb_kern_ops *k = mmsb_kern_select(true);

		st->gpu = k != st->kern ? k : NULL;
	} else if (o->gpu == MMSB_GPU_CPU) {
		st->gpu = mmsb_kern_cpu_dev(); /* "device" pages in host memory, queued like a GPU's */
	}
	if (st->gpu)
		mmsb_kern_gpu_limit(o->gpu_mem);
	st->gpu_ok = st->gpu != NULL;
	st->diag.fn = o->diag_fn;
	st->diag.arg = o->diag_arg;
	st->diag.level = o->diag_level ? o->diag_level : MMSB_DIAG_NOTICE;
	st->read_only = o->read_only;
	st->dirfd = st->ckdirfd = st->lockfd = -1;
	if (st->o.segment_bytes < 4096)
		st->o.segment_bytes = 4096;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&st->lock, &ra);
	pthread_rwlock_init(&st->gate, &ra);
	pthread_rwlockattr_destroy(&ra);
	for (i = 0; i < PAGE_STRIPES; i++)
		pthread_mutex_init(&st->page_mu[i], NULL);
	pthread_mutex_init(&st->commit_mu, NULL);
	pthread_mutex_init(&st->fast_mu, NULL);
	pthread_mutex_init(&st->ck_mu, NULL);
	pthread_cond_init(&st->ck_cond, NULL);
	pthread_mutex_init(&st->snap_mu, NULL);
	pthread_mutex_init(&st->tag_mu, NULL);
	st->txn.st = st;
	rc = st->dir ? open_dirs(st) : -ENOMEM;
	if (rc == 0 && !st->read_only)
		mmsb_ckpt_remove_before(&(struct ckpt_ctx){st->io, &st->diag, st->ckdirfd, st->seed}, 0);
	to = (struct tlog_opts){st->io, &st->diag, st->seed, st->o.segment_bytes, st->read_only};
	if (rc == 0)
		rc = mmsb_tlog_open(st->dirfd, &to, &st->log);
	if (rc == 0)
		rc = store_load(st);
	if (rc == 0)
		rc = tags_load(st);
	if (rc == 0)
		rc = start_threads(st);
	if (rc < 0) {
		mmsb_store_close(st);
		return rc;
	}
	*out = st;
	return 0;
}

void mmsb_store_close(struct mmsb_store *st)
{
	uint64_t e;
	size_t i;

	if (!st)
		return;
	pthread_mutex_lock(&st->ck_mu);
	st->stop = true;
	pthread_cond_broadcast(&st->ck_cond);
	pthread_mutex_unlock(&st->ck_mu);
	if (st->ck_started)
		pthread_join(st->ck_thread, NULL);
	if (st->sync_started)
		pthread_join(st->sync_thread, NULL);
	if (st->log && st->ns && !st->read_only && !mmsb_tlog_failed(st->log)) {
		if (st->o.ckpt_at_close && atomic_load(&st->head) > st->ck_done)
			ckpt_once(st, &e);
		mmsb_tlog_sync(st->log);
	}
	snap_drop_all(st);
	mmsb_tlog_close(st->log);
	ns_free(st->ns);
	hist_free(&st->hist);
	free(st->ckpts);
	mmsb_ckpt_table_put(st->ck_tab);
	free(st->ck_held);
	free(st->lost);
	free(st->open);
	txn_free(&st->txn);
	while (st->fast_free) {
		struct mmsb_txn *t = st->fast_free;

		st->fast_free = t->next_free;
		txn_free(t);
		free(t);
	}
	mmsb_io_close(st->io, st->ckdirfd);
	mmsb_io_close(st->io, st->lockfd); /* releases the flock */
	mmsb_io_close(st->io, st->dirfd);
	pthread_rwlock_destroy(&st->lock);
	pthread_rwlock_destroy(&st->gate);
	for (i = 0; i < PAGE_STRIPES; i++)
		pthread_mutex_destroy(&st->page_mu[i]);
	pthread_mutex_destroy(&st->commit_mu);
	pthread_mutex_destroy(&st->fast_mu);
	pthread_mutex_destroy(&st->ck_mu);
	pthread_cond_destroy(&st->ck_cond);
	pthread_mutex_destroy(&st->snap_mu);
	pthread_mutex_destroy(&st->tag_mu);
	free(st->tags);
	free(st->dir);
	free(st);
}

int mmsb_store_sync(struct mmsb_store *st)
{
	uint64_t t0 = mmsb_now_ns();
	int rc;

	if (st->read_only)
		return st->damaged || mmsb_tlog_failed(st->log) ? -EIO : 0;
	rc = mmsb_tlog_sync(st->log);
	mmsb_stats_record(&st->h_sync, mmsb_now_ns() - t0);
	return rc;
}

uint64_t mmsb_store_head(struct mmsb_store *st)
{
	return atomic_load(&st->head);
}

uint64_t mmsb_store_oldest(struct mmsb_store *st)
{
	uint64_t o;

	pthread_rwlock_rdlock(&st->lock);
	o = st->oldest;
	pthread_rwlock_unlock(&st->lock);
	return o;
}

bool mmsb_store_is_read_only(struct mmsb_store *st)
{
	return st->read_only || mmsb_tlog_failed(st->log);
}

const char *mmsb_store_dir(struct mmsb_store *st)
{
	return st->dir;
}

enum mmsb_sync mmsb_store_sync_mode(struct mmsb_store *st)
{
	return st->o.sync;
}

/* ---- reading the head ------------------------------------------------------------------ */

int mmsb_getattr(struct mmsb_store *st, uint64_t id, struct mmsb_attr *out)
{
	int rc;

	pthread_rwlock_rdlock(&st->lock);
	rc = ns_getattr(store_ns(st), id, out);
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

int mmsb_lookup(struct mmsb_store *st, uint64_t parent, const char *name, struct mmsb_attr *out)
{
	int rc;

	pthread_rwlock_rdlock(&st->lock);
	rc = ns_lookup_attr(store_ns(st), parent, name, out);
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

int mmsb_resolve(struct mmsb_store *st, const char *path, struct mmsb_attr *out)
{
	struct ns_node *n;
	int rc;

	pthread_rwlock_rdlock(&st->lock);
	rc = ns_resolve(store_ns(st), path, &n);
	if (rc == 0)
		ns_attr(n, out);
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

ssize_t mmsb_path(struct mmsb_store *st, uint64_t id, char *buf, size_t cap)
{
	ssize_t rc;

	pthread_rwlock_rdlock(&st->lock);
	rc = ns_path(store_ns(st), id, buf, cap);
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

ssize_t mmsb_read(struct mmsb_store *st, uint64_t id, uint64_t off, void *buf, size_t len)
{
	ssize_t rc;

	pthread_rwlock_rdlock(&st->lock);
	rc = ns_read(ns_get(store_ns(st), id), off, buf, len);
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

int mmsb_seek(struct mmsb_store *st, uint64_t id, uint64_t off, bool data, uint64_t *out)
{
	int rc;

	pthread_rwlock_rdlock(&st->lock);
	rc = ns_seek(ns_get(store_ns(st), id), off, data, out);
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

ssize_t mmsb_readlink(struct mmsb_store *st, uint64_t id, char *buf, size_t cap)
{
	ssize_t rc;

	pthread_rwlock_rdlock(&st->lock);
	rc = ns_readlink(ns_get(store_ns(st), id), buf, cap);
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

int mmsb_readdir(struct mmsb_store *st, uint64_t dir, uint64_t from, mmsb_dirent_fn fn, void *arg)
{
	struct ns_node *d;
	int rc;

	pthread_rwlock_rdlock(&st->lock);
	d = ns_get(store_ns(st), dir);
	rc = d ? ns_readdir(store_ns(st), d, from, fn, arg) : -ENOENT;
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

ssize_t mmsb_getxattr(struct mmsb_store *st, uint64_t id, const char *name, void *buf, size_t cap)
{
	ssize_t rc;

	pthread_rwlock_rdlock(&st->lock);
	rc = ns_getxattr(ns_get(store_ns(st), id), name, buf, cap);
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

ssize_t mmsb_listxattr(struct mmsb_store *st, uint64_t id, char *buf, size_t cap)
{
	ssize_t rc;

	pthread_rwlock_rdlock(&st->lock);
	rc = ns_listxattr(ns_get(store_ns(st), id), buf, cap);
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

int mmsb_ref(struct mmsb_store *st, uint64_t id)
{
	struct ns_node *n;
	int rc = -ENOENT;

	pthread_rwlock_wrlock(&st->lock);
	n = ns_get(st->ns, id);
	if (n) {
		n->opens++;
		rc = 0;
	}
	pthread_rwlock_unlock(&st->lock);
	return rc;
}

void mmsb_unref(struct mmsb_store *st, uint64_t id)
{
	struct ns_node *n;
	bool frees;

	pthread_rwlock_wrlock(&st->lock);
	n = ns_get(st->ns, id);
	frees = n && n->orphan && n->opens <= 1;
	if (n && !frees)
		ns_unref(st->ns, n);
	pthread_rwlock_unlock(&st->lock);
	if (!frees)
		return;
	/* the last reference to an unlinked node frees it and changes the id
	 * table, which page writes read without st->lock: keep them out */
	pthread_rwlock_wrlock(&st->gate);
	pthread_rwlock_wrlock(&st->lock);
	n = ns_get(st->ns, id);
	if (n)
		ns_unref(st->ns, n);
	pthread_rwlock_unlock(&st->lock);
	pthread_rwlock_unlock(&st->gate);
}

/* ---- statistics and verification ------------------------------------------------------------ */

void mmsb_store_stats(struct mmsb_store *st, struct mmsb_stats *s)
{
	struct tlog_stats ts;
	size_t i;

	memset(s, 0, sizeof(*s));
	pthread_rwlock_rdlock(&st->lock);
	s->n_pages = store_ns(st)->n_pages;
	s->n_dirs = store_ns(st)->n_dirs;
	s->n_symlinks = store_ns(st)->n_symlinks;
	s->page_bytes = store_ns(st)->page_bytes;
	s->oldest = st->oldest;
	s->indexed_epochs = st->hist.en;
	pthread_rwlock_unlock(&st->lock);
	s->head = atomic_load(&st->head);
	pthread_mutex_lock(&st->ck_mu);
	s->last_ckpt = st->ck_done;
	s->n_ckpts = st->n_ckpts;
	for (i = 0; i < st->n_ckpts; i++)
		s->ckpt_bytes += st->ckpts[i].file_bytes;
	for (i = 0; i < st->n_ck_held; i++)
		s->ckpt_bytes += st->ck_held[i].file_bytes;
	pthread_mutex_unlock(&st->ck_mu);
	mmsb_tlog_stats(st->log, &ts);
	s->log_bytes = ts.bytes;
	s->n_segments = ts.n_segments;
	s->n_syncs = ts.n_syncs;
	s->n_commits = atomic_load(&st->n_commits);
	s->n_records = atomic_load(&st->n_records);
	s->n_deltas = atomic_load(&st->n_deltas);
	s->delta_bytes = atomic_load(&st->delta_bytes);
	s->delta_record_bytes = atomic_load(&st->delta_record_bytes);
	s->commit_p50_ns = mmsb_stats_quantile(&st->h_commit, 0.5);
	s->commit_p99_ns = mmsb_stats_quantile(&st->h_commit, 0.99);
	s->sync_p50_ns = mmsb_stats_quantile(&st->h_sync, 0.5);
	s->sync_p99_ns = mmsb_stats_quantile(&st->h_sync, 0.99);
	s->apply_p50_ns = mmsb_stats_quantile(&st->h_apply, 0.5);
	s->apply_p99_ns = mmsb_stats_quantile(&st->h_apply, 0.99);
	s->replay_bytes = st->replay_bytes;
	s->replay_ns = st->replay_ns;
	s->ckpt_write_bytes = atomic_load(&st->ckpt_write_bytes);
	s->ckpt_write_ns = atomic_load(&st->ckpt_write_ns);
	s->cache_bytes = atomic_load(&st->cache_bytes);
	s->mem_used = atomic_load(&st->mem.used);
	s->mem_limit = atomic_load(&st->mem.limit);
	s->cache_hits = atomic_load(&st->cache_hits);
	s->cache_misses = atomic_load(&st->cache_misses);
}
