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

struct mmsbfs_feed {
	pthread_mutex_t mu;	/* protects everything below */
	char *ring;		/* MMSBFS_FEED_BYTES bytes; byte k of the feed at ring[k % size] */
	uint64_t total;		/* bytes ever appended */
	uint64_t oldest;	/* offset of the oldest whole line kept */
	struct fuse_pollhandle *ph[FEED_PH_MAX]; /* waiting pollers */
	size_t n_ph;
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

static void feed_append(struct mmsbfs_feed *f, const char *line, size_t len)
{
	struct fuse_pollhandle *ph[FEED_PH_MAX];
	size_t i, n;

	if (len >= MMSBFS_FEED_BYTES / 2)
		return; /* a single monstrous line would evict everything */
	pthread_mutex_lock(&f->mu);
	for (i = 0; i < len; i++)
		f->ring[(f->total + i) % MMSBFS_FEED_BYTES] = line[i];
	f->total += len;
	if (f->total - f->oldest > MMSBFS_FEED_BYTES)
		f->oldest = feed_line_start(f, f->total - MMSBFS_FEED_BYTES);
	n = f->n_ph;
	memcpy(ph, f->ph, n * sizeof(*ph));
	f->n_ph = 0;
	pthread_mutex_unlock(&f->mu);
	for (i = 0; i < n; i++) { /* never from a request thread: this is the commit hook */
		fuse_lowlevel_notify_poll(ph[i]);
		fuse_pollhandle_destroy(ph[i]);
	}
}

void mmsbfs_feed_commit(struct mmsbfs_feed *f, struct mmsb_store *st, const struct mmsb_commit_info *ci)
{
	struct ctl_buf paths = {0};
	char head[160], *line;
	size_t n = 0, i, len, hl;
	struct tm tm;
	time_t sec = (time_t)(ci->time_ns / 1000000000);
	const char *p;

	if (!f)
		return;
	if (ctl_commit_paths(st, ci, &paths, &n) < 0)
		n = 0;
	gmtime_r(&sec, &tm);
	hl = (size_t)snprintf(head, sizeof(head), "%" PRIu64 " %04d-%02d-%02dT%02d:%02d:%02d.%09" PRId64 "Z %s %" PRIu64 " ",
			      ci->epoch, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			      ci->time_ns % 1000000000, mmsb_source_name(ci->source), ci->bytes_changed);
	line = malloc(hl + paths.len + 2);
	if (line) {
		memcpy(line, head, hl);
		len = hl;
		for (i = 0, p = paths.p; i < n; i++, p += strlen(p) + 1) {
			size_t l = strlen(p);

			if (i)
				line[len++] = ',';
			memcpy(line + len, p, l);
			len += l;
		}
		line[len++] = '\n';
		feed_append(f, line, len);
		free(line);
	}
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

ssize_t mmsbfs_feed_read(struct mmsbfs_feed *f, uint64_t off, char *buf, size_t size)
{
	size_t i, n;

	pthread_mutex_lock(&f->mu);
	if (off < f->oldest)
		off = f->oldest;
	n = off >= f->total ? 0 : (size_t)(f->total - off < size ? f->total - off : size);
	for (i = 0; i < n; i++)
		buf[i] = f->ring[(off + i) % MMSBFS_FEED_BYTES];
	pthread_mutex_unlock(&f->mu);
	return (ssize_t)n;
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
