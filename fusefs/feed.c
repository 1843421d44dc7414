/* feed.c - the change feed epochs/.changes (feed.h). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctlcmd.h"
#include "feed.h"

#define FEED_PH_MAX 64 /* poll handles kept (the oldest is dropped) */

/* Where the parts of one line lie, for filtering it per reader. */
struct feed_path {
	uint32_t off, len;	/* the path's bytes in the line */
	uint64_t bytes;		/* bytes its writes changed in that epoch */
};

struct feed_line {
	uint64_t start;		/* feed offset of its first byte */
	uint32_t len;		/* bytes, LF included */
	uint32_t bytes_off;	/* the BYTES field */
	uint32_t bytes_len;
	uint64_t bytes;		/* its value */
	uint32_t paths_off;	/* the PATH list (up to the LF) */
	uint32_t n;		/* entries in p */
	struct feed_path *p;	/* the paths, in line order */
};

struct mmsbfs_feed {
	pthread_mutex_t mu;	/* protects everything below */
	char *ring;		/* MMSBFS_FEED_BYTES bytes; byte k of the feed at ring[k % size] */
	uint64_t total;		/* bytes ever appended */
	uint64_t oldest;	/* offset of the oldest whole line kept */
	struct fuse_pollhandle *ph[FEED_PH_MAX]; /* waiting pollers */
	size_t n_ph;
	struct feed_line *lines; /* the kept lines, oldest first from lines[l0] (circular) */
	size_t l0, nl, capl;	/* first, count, capacity of lines */
};

/* One open of the feed (fi->fh): pos first, for poll (ops.c). */
struct mmsbfs_feed_reader {
	uint64_t pos;		/* offset after what this open last read */
	struct mmsb_store *st;	/* for path visibility */
	struct mmsb_cred who;	/* the opener (groups point at groups) */
	uint32_t groups[];	/* its supplementary groups */
};

int mmsbfs_feed_new(struct mmsbfs_feed **out)
{
	struct mmsbfs_feed *f = calloc(1, sizeof(*f));

	if (f)
		f->ring = malloc(MMSBFS_FEED_BYTES);
	if (!f || !f->ring) {
		free(f);
		return -ENOMEM;
	}
	pthread_mutex_init(&f->mu, NULL);
	*out = f;
	return 0;
}

void mmsbfs_feed_free(struct mmsbfs_feed *f)
{
	size_t i;

	if (!f)
		return;
	for (i = 0; i < f->n_ph; i++)
		fuse_pollhandle_destroy(f->ph[i]);
	for (i = 0; i < f->nl; i++)
		free(f->lines[(f->l0 + i) % f->capl].p);
	free(f->lines);
	pthread_mutex_destroy(&f->mu);
	free(f->ring);
	free(f);
}

/* Byte offset of the start of the first line at or after off. */
static uint64_t feed_line_start(const struct mmsbfs_feed *f, uint64_t off)
{
	if (off == 0)
		return 0;
	while (off < f->total && f->ring[(off - 1) % MMSBFS_FEED_BYTES] != '\n')
		off++;
	return off;
}

/* Keep li (its p is taken over) as the newest line; drop the lines that
 * left the ring.  Called with f->mu held. */
static void feed_keep_line(struct mmsbfs_feed *f, struct feed_line *li)
{
	while (f->nl && f->lines[f->l0].start < f->oldest) {
		free(f->lines[f->l0].p);
		f->l0 = (f->l0 + 1) % f->capl;
		f->nl--;
	}
	if (f->nl == f->capl) {
		size_t cap = f->capl ? f->capl * 2 : 256, i;
		struct feed_line *v = malloc(cap * sizeof(*v));

		if (!v) {
			free(li->p);
			li->p = NULL;
			li->n = UINT32_MAX; /* unknown layout: hidden from filtered readers */
			if (!f->nl)
				return;
			free(f->lines[f->l0].p); /* make room: drop the oldest */
			f->l0 = (f->l0 + 1) % f->capl;
			f->nl--;
		} else {
			for (i = 0; i < f->nl; i++)
				v[i] = f->lines[(f->l0 + i) % f->capl];
			free(f->lines);
			f->lines = v;
			f->capl = cap;
			f->l0 = 0;
		}
	}
	f->lines[(f->l0 + f->nl) % f->capl] = *li;
	f->nl++;
}

static void feed_append(struct mmsbfs_feed *f, const char *line, size_t len, struct feed_line *li)
{
	struct fuse_pollhandle *ph[FEED_PH_MAX];
	size_t i, n;

	if (len >= MMSBFS_FEED_BYTES / 2) {
		free(li->p);
		return; /* a single monstrous line would evict everything */
	}
	pthread_mutex_lock(&f->mu);
	for (i = 0; i < len; i++)
		f->ring[(f->total + i) % MMSBFS_FEED_BYTES] = line[i];
	li->start = f->total;
	f->total += len;
	if (f->total - f->oldest > MMSBFS_FEED_BYTES)
		f->oldest = feed_line_start(f, f->total - MMSBFS_FEED_BYTES);
	feed_keep_line(f, li);
	n = f->n_ph;
	memcpy(ph, f->ph, n * sizeof(*ph));
	f->n_ph = 0;
	pthread_mutex_unlock(&f->mu);
	for (i = 0; i < n; i++) { /* never from a request thread: this is the commit hook */
		fuse_lowlevel_notify_poll(ph[i]);
		fuse_pollhandle_destroy(ph[i]);
	}
}

static int feed_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Bytes changed by writes to each distinct node of ci, in ascending id order
 * (the order of ctl_commit_paths' paths).  NULL on -ENOMEM. */
static uint64_t *feed_path_bytes(const struct mmsb_commit_info *ci, size_t *n)
{
	uint64_t *ids = malloc((ci->n_changes ? ci->n_changes : 1) * sizeof(*ids)), *b;
	size_t i, j, k = 0;

	b = calloc(ci->n_changes ? ci->n_changes : 1, sizeof(*b));
	if (!ids || !b) {
		free(ids);
		free(b);
		return NULL;
	}
	for (i = 0; i < ci->n_changes; i++)
		ids[i] = ci->changes[i].id;
	qsort(ids, ci->n_changes, sizeof(*ids), feed_cmp_u64);
	for (i = 0; i < ci->n_changes; i++)
		if (i == 0 || ids[i] != ids[i - 1])
			ids[k++] = ids[i];
	for (i = 0; i < ci->n_changes; i++) {
		if (ci->changes[i].kind != MMSB_CH_WRITE)
			continue;
		for (j = 0; j < k && ids[j] != ci->changes[i].id; j++)
			;
		if (j < k)
			b[j] += ci->changes[i].bytes;
	}
	free(ids);
	*n = k;
	return b;
}

void mmsbfs_feed_commit(struct mmsbfs_feed *f, struct mmsb_store *st, const struct mmsb_commit_info *ci)
{
	struct ctl_buf paths = {0};
	struct feed_line li = {0};
	char head[160], *line;
	size_t n = 0, i, len, hl, nb = 0;
	struct tm tm;
	time_t sec = (time_t)(ci->time_ns / 1000000000);
	uint64_t *pb;
	const char *p;

	if (!f)
		return;
	if (ctl_commit_paths(st, ci, &paths, &n) < 0)
		n = 0;
	pb = feed_path_bytes(ci, &nb);
	gmtime_r(&sec, &tm);
	hl = (size_t)snprintf(head, sizeof(head), "%" PRIu64 " %04d-%02d-%02dT%02d:%02d:%02d.%09" PRId64 "Z %s ",
			      ci->epoch, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			      ci->time_ns % 1000000000, mmsb_source_name(ci->source));
	li.bytes_off = (uint32_t)hl;
	li.bytes = ci->bytes_changed;
	hl += (size_t)snprintf(head + hl, sizeof(head) - hl, "%" PRIu64, ci->bytes_changed);
	li.bytes_len = (uint32_t)(hl - li.bytes_off);
	head[hl++] = ' ';
	li.paths_off = (uint32_t)hl;
	line = malloc(hl + paths.len + 2);
	li.p = n ? calloc(n, sizeof(*li.p)) : NULL;
	if (!pb || (n && !li.p))
		li.n = UINT32_MAX; /* out of memory: filtered readers see none of it */
	else
		li.n = (uint32_t)n;
	if (line) {
		memcpy(line, head, hl);
		len = hl;
		for (i = 0, p = paths.p; i < n; i++, p += strlen(p) + 1) {
			size_t l = strlen(p);

			if (i)
				line[len++] = ',';
			if (li.p && li.n != UINT32_MAX)
				li.p[i] = (struct feed_path){(uint32_t)len, (uint32_t)l, i < nb && pb ? pb[i] : 0};
			memcpy(line + len, p, l);
			len += l;
		}
		line[len++] = '\n';
		li.len = (uint32_t)len;
		feed_append(f, line, len, &li);
		free(line);
	} else {
		free(li.p);
	}
	free(pb);
	ctl_buf_free(&paths);
}

uint64_t mmsbfs_feed_size(struct mmsbfs_feed *f)
{
	uint64_t t;

	pthread_mutex_lock(&f->mu);
	t = f->total;
	pthread_mutex_unlock(&f->mu);
	return t;
}

/* Copy feed bytes [off, off + n) out of the ring (f->mu held; the caller
 * clipped them to what is kept). */
static void feed_copy(const struct mmsbfs_feed *f, uint64_t off, char *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = f->ring[(off + i) % MMSBFS_FEED_BYTES];
}

static ssize_t feed_read_raw(struct mmsbfs_feed *f, uint64_t off, char *buf, size_t size)
{
	size_t n;

	pthread_mutex_lock(&f->mu);
	if (off < f->oldest)
		off = f->oldest;
	n = off >= f->total ? 0 : (size_t)(f->total - off < size ? f->total - off : size);
	feed_copy(f, off, buf, n);
	pthread_mutex_unlock(&f->mu);
	return (ssize_t)n;
}

ssize_t mmsbfs_feed_read(struct mmsbfs_feed *f, uint64_t off, char *buf, size_t size)
{
	return feed_read_raw(f, off, buf, size);
}

/* Rewrite line text (li's layout, len bytes) in place as r may see it:
 * the paths r could not find are dropped, BYTES counts only the others, and
 * the freed room is blanks, so every line keeps its length and offsets
 * agree with the file's size for every reader.  A line with nothing left
 * keeps its EPOCH TIME SOURCE, BYTES 0 and no path. */
static void feed_filter_line(const struct mmsbfs_feed_reader *r, const struct feed_line *li, char *text)
{
	char *out = text + li->paths_off, num[24];
	const char *end = text + li->len - 1; /* the LF */
	uint64_t bytes = 0;
	uint32_t i;
	int nl;

	if (li->n == UINT32_MAX) {
		memset(text, ' ', li->len - 1); /* layout unknown: nothing at all */
		return;
	}
	for (i = 0; i < li->n; i++) {
		const struct feed_path *p = &li->p[i];
		char path[4200];

		if (p->len >= sizeof(path))
			continue;
		memcpy(path, text + p->off, p->len);
		path[p->len] = '\0';
		if (path[0] == '#' || strcmp(path, "...") == 0 ||
		    mmsb_path_visible(r->st, path[0] == '/' ? path + 1 : path, &r->who) < 0)
			continue; /* gone, truncated, or not findable: say nothing */
		if (out != text + li->paths_off)
			*out++ = ',';
		memmove(out, path, p->len); /* out never passes the path's own place */
		out += p->len;
		bytes += p->bytes;
	}
	memset(out, ' ', (size_t)(end - out));
	if (bytes > li->bytes)
		bytes = li->bytes;
	nl = snprintf(num, sizeof(num), "%" PRIu64, bytes);
	memset(text + li->bytes_off, ' ', li->bytes_len);
	memcpy(text + li->bytes_off, num, (size_t)nl); /* never wider than the total */
}

/* The index of the kept line holding feed offset off, or -1. */
static ssize_t feed_line_at(const struct mmsbfs_feed *f, uint64_t off)
{
	size_t lo = 0, hi = f->nl;

	while (lo < hi) { /* last line whose start <= off */
		size_t mid = (lo + hi) / 2;

		if (f->lines[(f->l0 + mid) % f->capl].start <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return -1;
	return (ssize_t)((f->l0 + lo - 1) % f->capl);
}

/* Under f->mu: where the kept line after rank-th one starts, or f->total. */
static uint64_t feed_next_start(const struct mmsbfs_feed *f, size_t rank)
{
	return rank < f->nl ? f->lines[(f->l0 + rank) % f->capl].start : f->total;
}

/* Under f->mu: a private copy of kept line k (layout and text) into li and
 * *text.  0 or -ENOMEM. */
static int feed_take_line(const struct mmsbfs_feed *f, size_t k, struct feed_line *li, char **text)
{
	*li = f->lines[k];
	li->p = NULL;
	*text = malloc(li->len);
	if (li->n && li->n != UINT32_MAX)
		li->p = malloc(li->n * sizeof(*li->p));
	if (!*text || (li->n && li->n != UINT32_MAX && !li->p)) {
		free(*text);
		free(li->p);
		return -ENOMEM;
	}
	if (li->p)
		memcpy(li->p, f->lines[k].p, li->n * sizeof(*li->p));
	feed_copy(f, li->start, *text, li->len);
	return 0;
}

ssize_t mmsbfs_feed_read_as(struct mmsbfs_feed *f, struct mmsbfs_feed_reader *r, uint64_t off, char *buf,
			    size_t size)
{
	uint64_t at = off;
	size_t got = 0;

	if (r->who.uid == 0)
		return feed_read_raw(f, off, buf, size); /* sees every name anyway */
	while (got < size) {
		struct feed_line li;
		char *text = NULL;
		size_t n, rank;
		ssize_t k;
		int rc;

		pthread_mutex_lock(&f->mu);
		if (at < f->oldest)
			at = f->oldest; /* from the oldest line kept */
		if (at >= f->total) {
			pthread_mutex_unlock(&f->mu);
			break;
		}
		k = feed_line_at(f, at);
		rank = k < 0 ? 0 : (size_t)(((size_t)k + f->capl - f->l0) % f->capl) + 1;
		if (k < 0 || at >= f->lines[k].start + f->lines[k].len) {
			/* a line whose layout could not be kept (out of
			 * memory): blanks, up to the next kept line */
			uint64_t end = feed_next_start(f, rank);

			pthread_mutex_unlock(&f->mu);
			n = end - at < size - got ? (size_t)(end - at) : size - got;
			memset(buf + got, ' ', n);
			if (at + n == end)
				buf[got + n - 1] = '\n';
			got += n;
			at += n;
			continue;
		}
		rc = feed_take_line(f, (size_t)k, &li, &text);
		pthread_mutex_unlock(&f->mu);
		if (rc < 0) {
			if (got == 0)
				return rc;
			break;
		}
		feed_filter_line(r, &li, text); /* outside f->mu: it takes the store's lock */
		n = li.len - (size_t)(at - li.start);
		n = n < size - got ? n : size - got;
		memcpy(buf + got, text + (at - li.start), n);
		got += n;
		at += n;
		free(text);
		free(li.p);
	}
	return (ssize_t)got;
}

int mmsbfs_feed_open(struct mmsbfs_feed *f, struct mmsb_store *st, const struct mmsb_cred *who,
		     struct mmsbfs_feed_reader **out)
{
	struct mmsbfs_feed_reader *r = calloc(1, sizeof(*r) + who->n_groups * sizeof(r->groups[0]));

	(void)f;
	if (!r)
		return -ENOMEM;
	r->st = st;
	r->who = *who;
	if (who->n_groups)
		memcpy(r->groups, who->groups, who->n_groups * sizeof(r->groups[0]));
	r->who.groups = r->groups;
	*out = r;
	return 0;
}

void mmsbfs_feed_close(struct mmsbfs_feed_reader *r)
{
	free(r);
}

unsigned mmsbfs_feed_poll(struct mmsbfs_feed *f, uint64_t pos, struct fuse_pollhandle *ph)
{
	unsigned ev = 0;

	pthread_mutex_lock(&f->mu);
	if (pos < f->total) {
		ev = POLLIN | POLLRDNORM;
	} else if (ph) {
		if (f->n_ph == FEED_PH_MAX) {
			fuse_pollhandle_destroy(f->ph[0]);
			memmove(f->ph, f->ph + 1, (FEED_PH_MAX - 1) * sizeof(*f->ph));
			f->n_ph--;
		}
		f->ph[f->n_ph++] = ph;
		ph = NULL;
	}
	pthread_mutex_unlock(&f->mu);
	if (ph)
		fuse_pollhandle_destroy(ph);
	return ev;
}
