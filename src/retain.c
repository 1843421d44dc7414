/* retain.c - the retention policy: parse "-o keep=", choose where to
 * compact after a checkpoint, and compact there (mmsb_compact, travel.c).
 *
 * Compaction can only cut at a retained checkpoint K: epochs before K go,
 * K becomes the oldest epoch and time travel keeps working from it.  So a
 * rule never drops an epoch it would keep; it may keep somewhat more (up to
 * one checkpoint interval).  Tags are never dropped: the cut stays at or
 * before the oldest tagged epoch.  See mmsbfs(8), "-o keep".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "retain.h"
#include "store_int.h"

/* One rule "N<unit>" into *k; -EINVAL. */
static int keep_rule(const char *s, size_t len, struct mmsb_keep *k)
{
	static const struct {
		const char *unit;
		char kind;	/* 'a' age (ns), 'e' epochs, 'b' bytes */
		uint64_t mult; /* of the unit */
	} units[] = {
		{"s", 'a', 1000000000ull},	    {"min", 'a', 60ull * 1000000000ull},
		{"h", 'a', 3600ull * 1000000000ull}, {"d", 'a', 86400ull * 1000000000ull},
		{"w", 'a', 604800ull * 1000000000ull}, {"e", 'e', 1},
		{"B", 'b', 1},			    {"K", 'b', 1ull << 10},
		{"k", 'b', 1ull << 10},		    {"M", 'b', 1ull << 20},
		{"G", 'b', 1ull << 30},		    {"g", 'b', 1ull << 30},
		{"T", 'b', 1ull << 40},		    {"t", 'b', 1ull << 40},
	};
	char num[32], *end;
	unsigned long long v;
	size_t d = 0, i;

	while (d < len && s[d] >= '0' && s[d] <= '9')
		d++;
	if (d == 0 || d >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, d);
	num[d] = '\0';
	errno = 0;
	v = strtoull(num, &end, 10);
	if (errno != 0 || v == 0)
		return -EINVAL;
	for (i = 0; i < MMSB_ARRAY_SIZE(units); i++) {
		if (strlen(units[i].unit) != len - d || memcmp(units[i].unit, s + d, len - d) != 0)
			continue;
		if (v > UINT64_MAX / units[i].mult || (units[i].kind == 'a' && v * units[i].mult > INT64_MAX))
			return -EINVAL;
		switch (units[i].kind) {
		case 'a':
			if (k->age_ns)
				return -EINVAL;
			k->age_ns = (int64_t)(v * units[i].mult);
			return 0;
		case 'e':
			if (k->epochs)
				return -EINVAL;
			k->epochs = v;
			return 0;
		default:
			if (k->bytes)
				return -EINVAL;
			k->bytes = v * units[i].mult;
			return 0;
		}
	}
	return -EINVAL;
}

int mmsb_keep_parse(const char *spec, struct mmsb_keep *out)
{
	struct mmsb_keep k = {0};
	const char *p = spec;
	int rc = *p ? 0 : -EINVAL;

	while (rc == 0 && *p) {
		size_t len = strcspn(p, ":");

		rc = keep_rule(p, len, &k);
		p += len;
		if (*p == ':' && *++p == '\0')
			rc = -EINVAL; /* trailing ':' */
	}
	if (rc == 0)
		*out = k;
	return rc;
}

uint64_t retain_select(const struct mmsb_keep *k, const struct retain_ckpt *c, size_t n, uint64_t head,
		       int64_t now_ns, uint64_t oldest, uint64_t min_tag, uint64_t bytes_now)
{
	uint64_t cut = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		/* age: every epoch before c[i] is at least as old as c[i] */
		if (k->age_ns > 0 && c[i].time_ns > 0 && now_ns - c[i].time_ns >= k->age_ns && c[i].epoch > cut)
			cut = c[i].epoch;
		if (k->epochs > 0 && head >= k->epochs && c[i].epoch <= head - k->epochs && c[i].epoch > cut)
			cut = c[i].epoch;
	}
	if (k->bytes > 0 && n > 0 && bytes_now > k->bytes) {
		for (i = 0; i + 1 < n && c[i].bytes_kept > k->bytes; i++)
			;
		if (c[i].epoch > cut)
			cut = c[i].epoch;
	}
	/* at a checkpoint, at or before the oldest tag */
	if (cut > min_tag) {
		uint64_t best = 0;

		for (i = 0; i < n; i++)
			if (c[i].epoch <= min_tag && c[i].epoch > best)
				best = c[i].epoch;
		cut = best;
	}
	return cut > oldest ? cut : 0;
}

/* Bytes of checkpoint file f: a checkpoint's or a held file's (ck_mu held). */
static uint64_t ckpt_file_bytes(const struct mmsb_store *st, uint64_t f)
{
	size_t i;

	for (i = 0; i < st->n_ckpts; i++)
		if (st->ckpts[i].epoch == f)
			return st->ckpts[i].file_bytes;
	for (i = 0; i < st->n_ck_held; i++)
		if (st->ck_held[i].epoch == f)
			return st->ck_held[i].file_bytes;
	return 0;
}

/* Checkpoint bytes left on disk after compacting at checkpoint k: its
 * files and later ones, and the older files they refer to (incremental
 * checkpoints, ckpt.c), each once.  ck_mu held. */
static uint64_t ckpt_bytes_kept(const struct mmsb_store *st, size_t k)
{
	uint64_t total = 0, seen[64];
	size_t n_seen = 0, i, s;
	uint32_t f;

	for (i = k; i < st->n_ckpts; i++) {
		total += st->ckpts[i].file_bytes;
		for (f = 0; f < st->ckpts[i].n_files; f++) {
			uint64_t e = st->ckpts[i].files[f];

			if (e >= st->ckpts[k].epoch)
				continue; /* itself or a later one: counted */
			for (s = 0; s < n_seen && seen[s] != e; s++)
				;
			if (s < n_seen)
				continue;
			if (n_seen < MMSB_ARRAY_SIZE(seen))
				seen[n_seen++] = e;
			total += ckpt_file_bytes(st, e);
		}
	}
	return total;
}

/* The facts retain_select needs, gathered under the store's locks
 * (st->lock before st->ck_mu, store_int.h). */
static int retain_gather(struct mmsb_store *st, struct retain_ckpt **out, size_t *n, uint64_t *oldest,
			 uint64_t *bytes_now)
{
	struct retain_ckpt *c = NULL;
	uint64_t ck_total = 0;
	size_t i;
	int rc = 0;

	pthread_rwlock_rdlock(&st->lock);
	pthread_mutex_lock(&st->ck_mu);
	*oldest = st->oldest;
	*n = st->n_ckpts;
	if (*n > 0 && (c = calloc(*n, sizeof(*c))) == NULL)
		rc = -ENOMEM;
	for (i = 0; rc == 0 && i < *n; i++)
		ck_total += st->ckpts[i].file_bytes;
	for (i = 0; rc == 0 && i < st->n_ck_held; i++)
		ck_total += st->ck_held[i].file_bytes;
	*bytes_now = ck_total + mmsb_tlog_bytes_kept(st->log, 0);
	for (i = 0; rc == 0 && i < *n; i++) {
		const struct hist_epoch *he = hist_epoch(&st->hist, st->ckpts[i].epoch);

		c[i].epoch = st->ckpts[i].epoch;
		c[i].time_ns = st->ckpts[i].time ? st->ckpts[i].time : he ? he->time : 0;
		c[i].bytes_kept = ckpt_bytes_kept(st, i) + mmsb_tlog_bytes_kept(st->log, c[i].epoch);
	}
	pthread_mutex_unlock(&st->ck_mu);
	pthread_rwlock_unlock(&st->lock);
	*out = c;
	return rc;
}

int retain_apply(struct mmsb_store *st)
{
	uint64_t oldest = 0, min_tag = UINT64_MAX, cut, kept = 0, bytes_now = 0;
	struct retain_ckpt *c = NULL;
	size_t n = 0, i;
	int rc;

	if (!retain_on(&st->o.keep) || st->read_only)
		return 0;
	rc = retain_gather(st, &c, &n, &oldest, &bytes_now);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&st->tag_mu);
	for (i = 0; i < st->n_tags; i++)
		if (st->tags[i].epoch >= oldest && st->tags[i].epoch < min_tag)
			min_tag = st->tags[i].epoch;
	pthread_mutex_unlock(&st->tag_mu);
	cut = retain_select(&st->o.keep, c, n, atomic_load(&st->head), mmsb_wall_ns(), oldest, min_tag, bytes_now);
	free(c);
	if (cut == 0)
		return 0;
	rc = mmsb_compact(st, cut, 0, &kept);
	if (rc < 0)
		mmsb_diag(&st->diag, rc == -EBUSY ? MMSB_DIAG_NOTICE : MMSB_DIAG_WARNING,
			  "retain: compacting before epoch %" PRIu64 " failed: %s", cut, strerror(-rc));
	else
		mmsb_diag(&st->diag, MMSB_DIAG_INFO, "retain: history now starts at epoch %" PRIu64 " (was %" PRIu64 ")",
			  kept, oldest);
	return rc;
}
