/* tlog.c - the transaction log (TLog).
 *
 * LOG FORMAT (normative text: mmsb(5))
 *
 * The log is a sequence of segment files log/<16 hex>.log, named by the
 * first epoch each may hold.  A segment is a 64-byte header (format.h) then
 * frames, each 8-byte aligned.  A transaction of epoch E is the frames of its
 * records (all carrying epoch E) followed by a COMMIT frame carrying E and
 * the count of those frames.  A transaction never spans two segments; the
 * epochs in the log are dense: segment k+1 starts right after the last
 * epoch of segment k.
 *
 * VALIDITY
 *
 * A transaction is committed if and only if all its frames and its COMMIT
 * frame are valid (rec_decode), they all carry its epoch, and the COMMIT's
 * n_frames equals the frames seen.  Checksums are XXH3-64 seeded with the
 * store's seed over the first 32 header bytes and the payload.  A segment
 * header that fails validation hides nothing: the name gives the first
 * epoch and the frames are self-describing, so they are scanned anyway
 * (and the header rewritten when read-write).
 *
 * RECOVERY SCAN
 *
 * Segments are scanned in order (from the one holding a given epoch, the
 * base checkpoint's: older ones are scanned on demand by
 * mmsb_tlog_scan_before).  In sequence, each transaction must carry the
 * epoch after the last committed one.  The scan meets damage at offset X at
 * the first frame that is not valid, an out-of-sequence epoch, a COMMIT
 * whose n_frames does not match, or frames without a COMMIT at the end of a
 * segment that is not the last.
 *
 * TORN TAIL OR DAMAGE.  Damage at X is a torn tail if and only if
 *   (1) it is in the last segment, and
 *   (2) no valid frame starts at any 8-aligned offset after X, and
 *   (3) the frame at X is incomplete: the file ends before its extent
 *       (64 bytes for a COMMIT with an intact magic, whose payload size is
 *       fixed whatever its length field says; 40 + align8(fr_len) for
 *       another frame with an intact magic; else its 40-byte header), or
 *       the last min(64, size - X) bytes of the file are all zero (blocks
 *       allocated but never written).
 * Frames with no COMMIT at the end of the last segment are a torn tail too.
 * This is RocksDB's kTolerateCorruptedTailRecords, narrowed by (3): an
 * interrupted append leaves a short file or unwritten blocks, never a
 * frame whose bytes are all there, so such a frame failing its checksum
 * was written whole -- perhaps fsynced and acknowledged -- and is damage
 * (SQLite's WAL and kPointInTimeRecovery treat every invalid frame as the
 * end of the log, which would silently drop it).  A torn tail is cut off
 * (read-write) with a NOTICE.
 *
 * Damage is reported (ERR: segment, offset, check) and skipped, never
 * repaired: the scan resumes at the next valid frame or segment, out of
 * sequence, and takes the next transaction whose frames and COMMIT are all
 * valid and whose epoch is greater than the last committed one; the
 * callback sees the epoch jump.  What the lost epochs cost (a checkpoint
 * covers them, or the head ends before them) is the store's decision.
 *
 * DURABILITY ORDER
 *
 * 1. A transaction is written with pwrite at the end of the current segment
 *    before commit returns: it survives the death of the process.
 * 2. mmsb_tlog_sync() fsyncs the current segment.  One caller does the fsync
 *    for everything appended so far, the others wait for it (group commit).
 * 3. Rolling to a new segment first fsyncs the old one, then creates the new
 *    file with its header, fsyncs it and fsyncs the directory: the log is
 *    durable in order, so a sync of the current segment covers all.
 * 4. An fsync failure is never retried (the kernel may have dropped the dirty
 *    pages): the log fails for good and the store becomes read-only.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "format.h"
#include "sum.h"
#include "tlog.h"

struct tlog_seg {
	uint64_t first; /* first epoch it may hold (its name) */
	uint64_t last;	/* last committed epoch in it (first - 1 if none) */
	uint64_t size;	/* bytes: header + committed frames */
	int fd;		/* open read-write (read-only stores: read-only) */
};

struct mmsb_tlog {
	struct tlog_opts o;
	int dirfd;		  /* log/ */
	pthread_mutex_t mu;	  /* protects segs, n_segs, seg_base, written, synced, syncing, failed */
	pthread_cond_t cond;	  /* sync finished */
	struct tlog_seg *segs;	  /* oldest first */
	uint32_t n_segs, cap_segs;
	uint32_t seg_base;	  /* ordinal of segs[0] */
	uint64_t written;	  /* bytes appended since open (monotonic) */
	uint64_t synced;	  /* prefix of written known durable */
	bool syncing;		  /* a leader is in fsync */
	bool failed;		  /* sticky: an fsync or cut-back failed */
	uint64_t n_syncs;
};

static void seg_name(char *buf, size_t cap, uint64_t first)
{
	snprintf(buf, cap, "%016" PRIx64 ".log", first);
}

static int parse_seg_name(const char *name, uint64_t *first)
{
	char *end;

	if (strlen(name) != 20 || strcmp(name + 16, ".log") != 0)
		return -EINVAL;
	*first = strtoull(name, &end, 16);
	return end == name + 16 && *first > 0 ? 0 : -EINVAL;
}

static int cmp_seg(const void *a, const void *b)
{
	const struct tlog_seg *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

static int push_seg(struct mmsb_tlog *log, uint64_t first, int fd)
{
	if (log->n_segs == log->cap_segs) {
		uint32_t cap = log->cap_segs ? log->cap_segs * 2 : 16;
		struct tlog_seg *s = realloc(log->segs, cap * sizeof(*s));

		if (!s)
			return -ENOMEM;
		log->segs = s;
		log->cap_segs = cap;
	}
	log->segs[log->n_segs].first = first;
	log->segs[log->n_segs].last = first - 1;
	log->segs[log->n_segs].size = 0;
	log->segs[log->n_segs].fd = fd;
	log->n_segs++;
	return 0;
}

int mmsb_tlog_open(int store_dirfd, const struct tlog_opts *o, struct mmsb_tlog **out)
{
	struct mmsb_tlog *log = calloc(1, sizeof(*log));
	struct dirent *de;
	DIR *d = NULL;
	int rc = 0, fd;

	if (!log)
		return -ENOMEM;
	log->o = *o;
	log->dirfd = -1;
	pthread_mutex_init(&log->mu, NULL);
	pthread_cond_init(&log->cond, NULL);
	if (!o->read_only) {
		rc = o->io->mkdirat(o->io->ctx, store_dirfd, MMSB_LOG_DIR, 0700);
		if (rc == 0)
			rc = o->io->fsync(o->io->ctx, store_dirfd); /* the new directory's name is durable */
		if (rc == -EEXIST)
			rc = 0;
		if (rc < 0)
			goto fail;
	}
	rc = o->io->openat(o->io->ctx, store_dirfd, MMSB_LOG_DIR, O_RDONLY | O_DIRECTORY, 0);
	if (rc == -ENOENT && o->read_only) {
		*out = log; /* an empty read-only store has no log yet */
		return 0;
	}
	if (rc < 0)
		goto fail;
	log->dirfd = rc;
	fd = dup(log->dirfd);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	while ((de = readdir(d))) {
		uint64_t first;

		if (de->d_name[0] == '.')
			continue;
		if (parse_seg_name(de->d_name, &first) < 0) {
			mmsb_diag(o->diag, MMSB_DIAG_WARNING, "tlog: ignoring stray file log/%s", de->d_name);
			continue;
		}
		rc = o->io->openat(o->io->ctx, log->dirfd, de->d_name, o->read_only ? O_RDONLY : O_RDWR, 0);
		if (rc >= 0)
			rc = push_seg(log, first, rc);
		if (rc < 0)
			goto fail;
	}
	closedir(d);
	d = NULL;
	if (log->n_segs)
		qsort(log->segs, log->n_segs, sizeof(*log->segs), cmp_seg);
	*out = log;
	return 0;
fail:
	if (d)
		closedir(d);
	mmsb_tlog_close(log);
	return rc;
}

void mmsb_tlog_close(struct mmsb_tlog *log)
{
	uint32_t i;

	if (!log)
		return;
	for (i = 0; i < log->n_segs; i++)
		mmsb_io_close(log->o.io, log->segs[i].fd);
	mmsb_io_close(log->o.io, log->dirfd);
	pthread_mutex_destroy(&log->mu);
	pthread_cond_destroy(&log->cond);
	free(log->segs);
	free(log);
}

/* ---- segment header ---------------------------------------------------------
 *   00 magic "MMSBLOG1" | 08 major le16 | 0a minor le16 | 0c zero[4]
 *   10 first_epoch le64 | 18 seed le64 | 20 zero[24] | 38 sum le64
 */
static void encode_seg_hdr(uint8_t *h, uint64_t first, uint64_t seed)
{
	memset(h, 0, MMSB_SEG_HDR_SIZE);
	memcpy(h, MMSB_SEG_MAGIC, 8);
	mmsb_put_le16(h + MMSB_SEG_OFF_MAJOR, MMSB_FMT_MAJOR);
	mmsb_put_le16(h + MMSB_SEG_OFF_MINOR, MMSB_FMT_MINOR);
	mmsb_put_le64(h + MMSB_SEG_OFF_FIRST, first);
	mmsb_put_le64(h + MMSB_SEG_OFF_SEED, seed);
	mmsb_put_le64(h + MMSB_SEG_OFF_SUM, mmsb_sum(h, MMSB_SEG_OFF_SUM, seed));
}

static const char *check_seg_hdr(const uint8_t *h, uint64_t first, uint64_t seed, int *rc)
{
	*rc = -MMSB_ECORRUPT;
	if (memcmp(h, MMSB_SEG_MAGIC, 8) != 0)
		return "bad segment magic";
	if (mmsb_get_le64(h + MMSB_SEG_OFF_SUM) != mmsb_sum(h, MMSB_SEG_OFF_SUM, seed)) {
		*rc = -MMSB_EBADCRC;
		return "segment header checksum mismatch";
	}
	if (mmsb_get_le16(h + MMSB_SEG_OFF_MAJOR) != MMSB_FMT_MAJOR) {
		*rc = -ENOTSUP;
		return "unsupported segment major version";
	}
	if (mmsb_get_le64(h + MMSB_SEG_OFF_FIRST) != first)
		return "segment header does not match its name";
	if (mmsb_get_le64(h + MMSB_SEG_OFF_SEED) != seed)
		return "segment belongs to another store";
	*rc = 0;
	return NULL;
}

/* Create segment `first` and make it durable (file, then directory). */
static int create_seg(struct mmsb_tlog *log, uint64_t first)
{
	const struct mmsb_io_ops *io = log->o.io;
	uint8_t h[MMSB_SEG_HDR_SIZE];
	char name[32];
	int fd, rc;

	seg_name(name, sizeof(name), first);
	fd = io->openat(io->ctx, log->dirfd, name, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return fd;
	encode_seg_hdr(h, first, log->o.seed);
	rc = mmsb_io_pwrite_all(io, fd, h, sizeof(h), 0);
	if (rc == 0)
		rc = io->fsync(io->ctx, fd);
	if (rc == 0)
		rc = io->fsync(io->ctx, log->dirfd);
	if (rc == 0) {
		pthread_mutex_lock(&log->mu);
		rc = push_seg(log, first, fd);
		if (rc == 0)
			log->segs[log->n_segs - 1].size = MMSB_SEG_HDR_SIZE;
		pthread_mutex_unlock(&log->mu);
	}
	if (rc < 0) {
		io->close(io->ctx, fd);
		io->unlinkat(io->ctx, log->dirfd, name, 0);
	}
	return rc;
}

/* ---- recovery scan ------------------------------------------------------------ */

struct scan {
	struct mmsb_rec *recs; /* frames of the transaction being collected */
	uint64_t *offs;
	uint32_t *lens;
	uint32_t n, cap;
};

static int scan_push(struct scan *s, const struct mmsb_rec *r, uint64_t off, uint32_t len)
{
	if (s->n == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 64;
		struct mmsb_rec *r2 = realloc(s->recs, cap * sizeof(*r2));
		uint64_t *o2;
		uint32_t *l2;

		if (r2)
			s->recs = r2;
		o2 = r2 ? realloc(s->offs, cap * sizeof(*o2)) : NULL;
		if (o2)
			s->offs = o2;
		l2 = o2 ? realloc(s->lens, cap * sizeof(*l2)) : NULL;
		if (!l2)
			return -ENOMEM;
		s->lens = l2;
		s->cap = cap;
	}
	s->recs[s->n] = *r;
	s->offs[s->n] = off;
	s->lens[s->n] = len;
	s->n++;
	return 0;
}

/* Offset of the first valid frame at an 8-aligned offset in buf[from..size),
 * or size if there is none. */
static uint64_t next_valid_frame(const uint8_t *buf, uint64_t from, uint64_t size, uint64_t seed)
{
	struct mmsb_rec r;
	uint64_t o;

	for (o = mmsb_align8(from); o + MMSB_FR_HDR_SIZE <= size; o += 8)
		if (memcmp(buf + o, MMSB_FR_MAGIC, 4) == 0 && mmsb_rec_decode(buf + o, size - o, seed, &r, NULL) > 0)
			return o;
	return size;
}

/* The torn-tail rule (VALIDITY above): is the invalid frame at off, the
 * last thing in the last segment, incomplete?  Its extent is 64 bytes for a
 * COMMIT (fixed size, whatever its length field says), 40 + align8(fr_len)
 * when its magic is intact, else its 40-byte header. */
static bool frame_incomplete(const uint8_t *buf, uint64_t off, uint64_t size)
{
	const uint8_t *p = buf + off;
	uint64_t ext = MMSB_FR_HDR_SIZE, tail, i;

	if (size - off < MMSB_FR_HDR_SIZE)
		return true;
	if (memcmp(p, MMSB_FR_MAGIC, 4) == 0)
		ext = p[MMSB_FR_OFF_TYPE] == MMSB_FR_COMMIT ? mmsb_rec_frame_len(MMSB_COMMIT_FIXED)
							     : mmsb_rec_frame_len(mmsb_get_le32(p + MMSB_FR_OFF_LEN));
	if (ext > size - off)
		return true;
	tail = size - off < 64 ? size - off : 64; /* blocks allocated, never written */
	for (i = size - tail; i < size; i++)
		if (buf[i])
			return false;
	return true;
}

struct seg_scan {
	uint64_t next_epoch; /* the epoch after the last committed one */
	uint64_t good;	     /* end of the last committed transaction in this segment */
	bool in_sync;	     /* the next transaction must carry next_epoch */
	struct tlog_recovery *res;
};

/* Damage at off in segment i: say so, drop the transaction being collected
 * and return where scanning resumes (size: nowhere in this segment). */
static uint64_t seg_damage(struct mmsb_tlog *log, uint32_t i, const uint8_t *buf, uint64_t off, uint64_t size,
			   const char *why, struct scan *s, struct seg_scan *ss)
{
	uint64_t next = next_valid_frame(buf, off + 8, size, log->o.seed);
	char name[32];

	seg_name(name, sizeof(name), log->segs[i].first);
	s->n = 0;
	if (next == size && i + 1 == log->n_segs && frame_incomplete(buf, off, size)) {
		if (ss->good < size)
			mmsb_diag(log->o.diag, MMSB_DIAG_NOTICE,
				  "tlog: log/%s @0x%" PRIx64 ": discarding a torn transaction at the tail (%" PRIu64
				  " bytes after the last committed epoch %" PRIu64 ")",
				  name, ss->good, size - ss->good, ss->next_epoch - 1);
		return size;
	}
	ss->res->n_damage++;
	ss->in_sync = false;
	mmsb_diag(log->o.diag, MMSB_DIAG_ERR,
		  "tlog: log/%s @0x%" PRIx64 ": %s after epoch %" PRIu64 ": %s", name, off, why, ss->next_epoch - 1,
		  next < size ? "skipping to the next valid frame"
		  : i + 1 < log->n_segs ? "skipping to the next segment"
					: "the log ends in damage (not a torn write): what followed is lost");
	return next;
}

/* Scan segment i from off: deliver committed transactions, skip damage. */
static int scan_segment(struct mmsb_tlog *log, uint32_t i, const uint8_t *buf, uint64_t size, uint64_t off,
			struct scan *s, struct seg_scan *ss, tlog_txn_fn fn, void *arg)
{
	uint64_t cur = 0; /* epoch of the frames collected in s */
	int rc;

	s->n = 0;
	ss->good = off;
	while (off < size) {
		const char *why = NULL;
		struct mmsb_rec r;
		int64_t flen = mmsb_rec_decode(buf + off, size - off, log->o.seed, &r, &why);

		if (flen < 0) {
			off = seg_damage(log, i, buf, off, size, why, s, ss);
			continue;
		}
		if (s->n > 0 && r.epoch != cur) {
			if (ss->in_sync) {
				off = seg_damage(log, i, buf, off, size, "epoch out of sequence", s, ss);
				continue;
			}
			s->n = 0; /* the rest of a transaction whose start was lost */
		}
		if (s->n == 0 && (ss->in_sync ? r.epoch != ss->next_epoch : r.epoch < ss->next_epoch)) {
			if (!ss->in_sync) { /* an older frame: not where the log resumes */
				off += (uint64_t)flen;
				continue;
			}
			off = seg_damage(log, i, buf, off, size, "epoch out of sequence", s, ss);
			continue;
		}
		cur = r.epoch;
		if (r.type != MMSB_FR_COMMIT) {
			rc = scan_push(s, &r, off, (uint32_t)flen);
			if (rc < 0)
				return rc;
		} else if (r.u.commit.n_frames != s->n) {
			if (ss->in_sync) {
				off = seg_damage(log, i, buf, off, size, "commit marker does not match its frames", s, ss);
				continue;
			}
			s->n = 0; /* a transaction partly lost: skip it */
		} else {
			struct tlog_txn t = {
				.epoch = r.epoch, .time = r.time, .source = r.u.commit.source,
				.changed = r.u.commit.changed, .n = s->n, .recs = s->recs, .offs = s->offs,
				.lens = s->lens, .seg = log->seg_base + i,
				.bytes = off + (uint64_t)flen - ss->good,
			};

			rc = fn(arg, &t);
			if (rc < 0)
				return rc;
			log->segs[i].last = r.epoch;
			ss->next_epoch = r.epoch + 1;
			ss->in_sync = true;
			ss->good = off + (uint64_t)flen;
			s->n = 0;
		}
		off += (uint64_t)flen;
	}
	if (s->n > 0 && i + 1 < log->n_segs) {
		char name[32];

		seg_name(name, sizeof(name), log->segs[i].first);
		ss->res->n_damage++;
		ss->in_sync = false;
		mmsb_diag(log->o.diag, MMSB_DIAG_ERR,
			  "tlog: log/%s: ends with epoch %" PRIu64 " uncommitted before a later segment", name, cur);
	} else if (s->n > 0 && ss->in_sync) {
		char name[32];

		seg_name(name, sizeof(name), log->segs[i].first);
		mmsb_diag(log->o.diag, MMSB_DIAG_NOTICE,
			  "tlog: log/%s @0x%" PRIx64 ": discarding a torn transaction at the tail (epoch %" PRIu64
			  " never committed)",
			  name, ss->good, cur);
	}
	s->n = 0;
	return 0;
}

/* The whole segment, to scan: mapped read-only (the page cache's own
 * pages, no copy), or read into memory where mapping fails.  Release with
 * put_segment. */
static int read_segment(struct mmsb_tlog *log, uint32_t i, uint8_t **buf, uint64_t *size, bool *mapped)
{
	struct stat stt;
	ssize_t r;
	void *m;

	if (fstat(log->segs[i].fd, &stt) < 0)
		return -errno;
	*size = (uint64_t)stt.st_size;
	*mapped = false;
	if (*size > 0 && log->o.io == &mmsb_io_posix) {
		m = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, log->segs[i].fd, 0);
		if (m != MAP_FAILED) {
			madvise(m, *size, MADV_SEQUENTIAL);
			*buf = m;
			*mapped = true;
			return 0;
		}
	}
	*buf = malloc(*size ? *size : 1);
	if (!*buf)
		return -ENOMEM;
	r = mmsb_io_pread_all(log->o.io, log->segs[i].fd, *buf, *size, 0);
	if (r < 0)
		return (int)r;
	*size = (uint64_t)r;
	return 0;
}

static void put_segment(uint8_t *buf, uint64_t size, bool mapped)
{
	if (mapped)
		munmap(buf, size);
	else
		free(buf);
}

/* A segment header that fails validation does not hide its records: the
 * name gives the first epoch and every frame carries its epoch and a
 * checksum seeded with the store's seed.  Returns the reason it is bad (NULL
 * when valid); *rc gets -ENOTSUP for a valid header of another major version. */
static const char *seg_header_bad(struct mmsb_tlog *log, uint32_t i, const uint8_t *buf, uint64_t size, int *rc)
{
	char name[32];
	const char *why;

	*rc = 0;
	if (size < MMSB_SEG_HDR_SIZE)
		return "truncated segment header";
	why = check_seg_hdr(buf, log->segs[i].first, log->o.seed, rc);
	if (*rc == -ENOTSUP) {
		seg_name(name, sizeof(name), log->segs[i].first);
		mmsb_diag(log->o.diag, MMSB_DIAG_ERR, "tlog: log/%s: %s", name, why);
		return why;
	}
	*rc = 0;
	return why;
}

/* Report a damaged header of segment i; rewrite it (read-write) when the
 * scan proved the segment ours: it held a committed transaction. */
static int seg_header_repair(struct mmsb_tlog *log, uint32_t i, const char *why)
{
	struct tlog_seg *sg = &log->segs[i];
	bool ours = sg->last >= sg->first;
	uint8_t h[MMSB_SEG_HDR_SIZE];
	char name[32];
	int rc;

	seg_name(name, sizeof(name), sg->first);
	if (log->o.read_only || !ours) {
		mmsb_diag(log->o.diag, MMSB_DIAG_ERR,
			  "tlog: log/%s: %s: the segment header is damaged; its records carry their own epochs and "
			  "checksums and were read without it%s",
			  name, why, log->o.read_only && ours ? " (a read-write open rewrites it)" : "");
		return 0;
	}
	encode_seg_hdr(h, sg->first, log->o.seed);
	rc = mmsb_io_pwrite_all(log->o.io, sg->fd, h, sizeof(h), 0);
	if (rc == 0)
		rc = log->o.io->fsync(log->o.io->ctx, sg->fd);
	mmsb_diag(log->o.diag, rc == 0 ? MMSB_DIAG_WARNING : MMSB_DIAG_ERR, "tlog: log/%s: %s: segment header %s",
		  name, why, rc == 0 ? "rewritten (its records are intact)" : "could not be rewritten");
	return rc;
}

/* Scan segments [from, to) (indexes): see mmsb_tlog_recover. */
static int tlog_scan(struct mmsb_tlog *log, uint32_t from, uint32_t to, tlog_txn_fn fn, void *arg,
		     struct tlog_recovery *res)
{
	struct scan s = {0};
	struct seg_scan ss = {.in_sync = true, .res = res};
	uint32_t i;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	for (i = from; i < to && rc == 0; i++) {
		struct tlog_seg *sg = &log->segs[i];
		uint8_t *buf = NULL;
		bool mapped = false;
		uint64_t size = 0;
		const char *bad_hdr = NULL;
		char name[32];

		seg_name(name, sizeof(name), sg->first);
		if (i == from) {
			ss.next_epoch = sg->first;
		} else if (sg->first < ss.next_epoch) {
			rc = MMSB_CORRUPT(log->o.diag, "tlog: log/%s: overlaps the segment before (which reached epoch %" PRIu64 ")",
					  name, ss.next_epoch - 1);
		} else if (sg->first > ss.next_epoch) {
			if (ss.in_sync) { /* a segment missing in between */
				res->n_damage++;
				mmsb_diag(log->o.diag, MMSB_DIAG_ERR,
					  "tlog: log/%s: the segment holding epochs %" PRIu64 "-%" PRIu64 " is missing",
					  name, ss.next_epoch, sg->first - 1);
			}
			ss.in_sync = false;
		}
		if (rc == 0)
			rc = read_segment(log, i, &buf, &size, &mapped);
		if (rc == 0 && size < MMSB_SEG_HDR_SIZE && i == log->n_segs - 1) {
			/* torn creation: the header never made it; drop the file */
			mmsb_diag(log->o.diag, MMSB_DIAG_NOTICE, "tlog: log/%s: removing an incomplete segment", name);
			put_segment(buf, size, mapped);
			if (!log->o.read_only) {
				mmsb_io_close(log->o.io, sg->fd);
				log->o.io->unlinkat(log->o.io->ctx, log->dirfd, name, 0);
			}
			log->n_segs--;
			break;
		}
		if (rc == 0)
			bad_hdr = seg_header_bad(log, i, buf, size, &rc);
		ss.good = MMSB_SEG_HDR_SIZE;
		if (rc == 0 && size > MMSB_SEG_HDR_SIZE)
			rc = scan_segment(log, i, buf, size, MMSB_SEG_HDR_SIZE, &s, &ss, fn, arg);
		if (rc == 0 && bad_hdr) {
			res->n_header++;
			rc = seg_header_repair(log, i, bad_hdr);
		}
		if (rc == 0) {
			pthread_mutex_lock(&log->mu); /* tlog_stats may be reading */
			sg->size = ss.good;
			pthread_mutex_unlock(&log->mu);
			/* cut a torn tail off the last segment (never damage) */
			if (i + 1 == log->n_segs && ss.good < size && ss.in_sync && !log->o.read_only)
				rc = log->o.io->ftruncate(log->o.io->ctx, sg->fd, (off_t)ss.good);
		}
		put_segment(buf, size, mapped);
	}
	res->last = ss.next_epoch ? ss.next_epoch - 1 : 0;
	res->end_damaged = !ss.in_sync;
	free(s.recs);
	free(s.offs);
	free(s.lens);
	return rc;
}

uint64_t mmsb_tlog_scan_start(struct mmsb_tlog *log, uint64_t skip_to)
{
	uint32_t i;

	for (i = log->n_segs; i-- > 1;)
		if (log->segs[i].first <= skip_to)
			return log->segs[i].first;
	return log->n_segs ? log->segs[0].first : 1;
}

int mmsb_tlog_recover(struct mmsb_tlog *log, uint64_t from, tlog_txn_fn fn, void *arg, struct tlog_recovery *res)
{
	uint32_t k = 0, i;
	int rc;

	while (k + 1 < log->n_segs && log->segs[k + 1].first <= from)
		k++;
	for (i = 0; i < k; i++) { /* not scanned now: mmsb_tlog_scan_before */
		struct stat stt;

		log->segs[i].size = fstat(log->segs[i].fd, &stt) == 0 ? (uint64_t)stt.st_size : 0;
		log->segs[i].last = log->segs[i + 1].first - 1;
	}
	rc = tlog_scan(log, k, log->n_segs, fn, arg, res);
	if (rc < 0)
		return rc;
	if (!log->o.read_only && log->n_segs == 0)
		rc = create_seg(log, 1);
	if (rc == 0) {
		pthread_mutex_lock(&log->mu);
		log->written = log->synced = 0;
		pthread_mutex_unlock(&log->mu);
	}
	return rc;
}

int mmsb_tlog_scan_before(struct mmsb_tlog *log, uint64_t before, tlog_txn_fn fn, void *arg, struct tlog_recovery *res)
{
	uint32_t k = 0;

	while (k < log->n_segs && log->segs[k].first < before)
		k++;
	if (k == 0) {
		memset(res, 0, sizeof(*res));
		return 0;
	}
	return tlog_scan(log, 0, k, fn, arg, res);
}

/* ---- append and sync ------------------------------------------------------------ */

static int roll(struct mmsb_tlog *log, uint64_t epoch)
{
	struct tlog_seg *cur = &log->segs[log->n_segs - 1];
	int rc = log->o.io->fsync(log->o.io->ctx, cur->fd);

	if (rc == 0)
		rc = create_seg(log, epoch);
	if (rc < 0 && rc != -ENOSPC) {
		pthread_mutex_lock(&log->mu);
		log->failed = true;
		pthread_mutex_unlock(&log->mu);
		mmsb_diag(log->o.diag, MMSB_DIAG_ERR, "tlog: cannot roll to a new segment at epoch %" PRIu64 ": %s",
			  epoch, strerror(-rc));
	}
	if (rc == 0) {
		pthread_mutex_lock(&log->mu);
		log->synced = log->written; /* the old segment is durable */
		pthread_mutex_unlock(&log->mu);
	}
	return rc;
}

int mmsb_tlog_append(struct mmsb_tlog *log, uint64_t epoch, const void *buf, size_t len, uint32_t *seg,
		     uint64_t *off)
{
	struct tlog_seg *cur;
	int rc;

	if (log->o.read_only || log->failed || log->n_segs == 0)
		return -EROFS;
	cur = &log->segs[log->n_segs - 1];
	if (epoch != cur->last + 1)
		return -EINVAL;
	if (cur->size >= log->o.segment_bytes && cur->last >= cur->first) {
		rc = roll(log, epoch);
		if (rc < 0)
			return rc;
		cur = &log->segs[log->n_segs - 1];
	}
	rc = mmsb_io_pwrite_all(log->o.io, cur->fd, buf, len, (off_t)cur->size);
	if (rc < 0) {
		/* cut the partial append off again, or the next append would
		 * leave garbage in the middle of the log */
		int rc2 = log->o.io->ftruncate(log->o.io->ctx, cur->fd, (off_t)cur->size);

		if (rc2 < 0) {
			pthread_mutex_lock(&log->mu);
			log->failed = true;
			pthread_mutex_unlock(&log->mu);
		}
		mmsb_diag(log->o.diag, MMSB_DIAG_ERR, "tlog: append of epoch %" PRIu64 " failed: %s%s", epoch,
			  strerror(-rc), rc2 < 0 ? " (and cutting it off failed: log is now read-only)" : "");
		return rc;
	}
	*seg = log->seg_base + log->n_segs - 1;
	*off = cur->size;
	pthread_mutex_lock(&log->mu);
	cur->size += len;
	cur->last = epoch;
	log->written += len;
	pthread_mutex_unlock(&log->mu);
	return 0;
}

int mmsb_tlog_sync(struct mmsb_tlog *log)
{
	uint64_t target;
	int fd, rc = 0;

	pthread_mutex_lock(&log->mu);
	target = log->written;
	while (!log->failed && log->synced < target && log->syncing)
		pthread_cond_wait(&log->cond, &log->mu);
	if (log->failed) {
		pthread_mutex_unlock(&log->mu);
		return -EIO;
	}
	if (log->synced >= target || log->n_segs == 0) {
		pthread_mutex_unlock(&log->mu);
		return 0;
	}
	/* become the leader: sync everything written so far */
	log->syncing = true;
	target = log->written;
	fd = log->segs[log->n_segs - 1].fd;
	pthread_mutex_unlock(&log->mu);
	rc = log->o.io->fsync(log->o.io->ctx, fd);
	pthread_mutex_lock(&log->mu);
	log->syncing = false;
	log->n_syncs++;
	if (rc < 0) {
		log->failed = true;
		mmsb_diag(log->o.diag, MMSB_DIAG_ERR, "tlog: fsync failed (%s): the store is now read-only",
			  strerror(-rc));
		rc = -EIO;
	} else if (target > log->synced) {
		log->synced = target;
	}
	pthread_cond_broadcast(&log->cond);
	pthread_mutex_unlock(&log->mu);
	return rc;
}

int mmsb_tlog_read(struct mmsb_tlog *log, uint32_t seg, uint64_t off, void *buf, size_t len)
{
	ssize_t r;
	int fd;

	pthread_mutex_lock(&log->mu);
	fd = seg >= log->seg_base && seg - log->seg_base < log->n_segs ? log->segs[seg - log->seg_base].fd : -1;
	pthread_mutex_unlock(&log->mu);
	if (fd < 0)
		return -ENOENT;
	r = mmsb_io_pread_all(log->o.io, fd, buf, len, (off_t)off);
	if (r < 0)
		return (int)r;
	return (size_t)r == len ? 0 : -MMSB_ECORRUPT;
}

int mmsb_tlog_drop_upto(struct mmsb_tlog *log, uint64_t epoch)
{
	int n = 0;

	while (log->n_segs > 1 && log->segs[1].first <= epoch + 1) {
		char name[32];
		int fd, rc;

		seg_name(name, sizeof(name), log->segs[0].first);
		rc = log->o.io->unlinkat(log->o.io->ctx, log->dirfd, name, 0);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		pthread_mutex_lock(&log->mu);
		fd = log->segs[0].fd;
		memmove(log->segs, log->segs + 1, (log->n_segs - 1) * sizeof(*log->segs));
		log->n_segs--;
		log->seg_base++;
		pthread_mutex_unlock(&log->mu);
		mmsb_io_close(log->o.io, fd);
		n++;
	}
	if (n)
		log->o.io->fsync(log->o.io->ctx, log->dirfd);
	return n;
}

uint64_t mmsb_tlog_bytes_kept(struct mmsb_tlog *log, uint64_t epoch)
{
	uint64_t bytes = 0;
	uint32_t i;

	pthread_mutex_lock(&log->mu);
	for (i = 0; i < log->n_segs; i++)	/* the rule of mmsb_tlog_drop_upto */
		if (i + 1 == log->n_segs || log->segs[i + 1].first > epoch + 1)
			bytes += log->segs[i].size;
	pthread_mutex_unlock(&log->mu);
	return bytes;
}

void mmsb_tlog_stats(struct mmsb_tlog *log, struct tlog_stats *s)
{
	uint32_t i;

	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&log->mu);
	for (i = 0; i < log->n_segs; i++)
		s->bytes += log->segs[i].size;
	s->n_segments = log->n_segs;
	s->n_syncs = log->n_syncs;
	s->first_epoch = log->n_segs ? log->segs[0].first : 1;
	pthread_mutex_unlock(&log->mu);
}

bool mmsb_tlog_failed(struct mmsb_tlog *log)
{
	bool f;

	pthread_mutex_lock(&log->mu);
	f = log->failed;
	pthread_mutex_unlock(&log->mu);
	return f;
}
