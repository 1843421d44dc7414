/* tags.c - names for epochs.
 *
 * TAGS FILE (mmsb(5) TAGS): STORE/tags is text: the line "MMSBTAGS 1", then
 * one line per tag, "<epoch> <time_ns> <name>", sorted by epoch.  It is
 * replaced as a whole: tags.tmp is written, fsynced, renamed over tags, and
 * the directory fsynced.  A line that does not parse is reported and
 * ignored (a tag is a convenience; the history it names is in the log).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "store_int.h"

#define TAGS_NAME "tags"
#define TAGS_MAGIC "MMSBTAGS 1"

bool mmsb_tag_name_ok(const char *name)
{
	size_t i, n = strlen(name);
	bool digits = true;

	if (n == 0 || n > MMSB_TAG_MAX || name[0] == '.' || strcmp(name, "head") == 0)
		return false;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
		if (c < '0' || c > '9')
			digits = false;
	}
	return !digits;
}

static int cmp_tag(const void *a, const void *b)
{
	const struct mmsb_tag *x = a, *y = b;

	return x->epoch != y->epoch ? (x->epoch < y->epoch ? -1 : 1) : strcmp(x->name, y->name);
}

int tags_load(struct mmsb_store *st)
{
	char line[256];
	FILE *f;
	int fd = st->io->openat(st->io->ctx, st->dirfd, TAGS_NAME, O_RDONLY, 0), lineno = 0;

	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	f = fdopen(fd, "r");
	if (!f) {
		mmsb_io_close(st->io, fd);
		return -ENOMEM;
	}
	while (fgets(line, sizeof(line), f)) {
		struct mmsb_tag t = {0};
		struct mmsb_tag *v;
		int used = 0;

		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (lineno == 1) {
			if (strcmp(line, TAGS_MAGIC) != 0) {
				mmsb_diag(&st->diag, MMSB_DIAG_ERR, "tags: %s/tags: not a tags file: ignored", st->dir);
				break;
			}
			continue;
		}
		if (sscanf(line, "%" SCNu64 " %" SCNd64 " %64s%n", &t.epoch, &t.time_ns, t.name, &used) != 3 ||
		    line[used] != '\0' || !mmsb_tag_name_ok(t.name)) {
			mmsb_diag(&st->diag, MMSB_DIAG_ERR, "tags: %s/tags:%d: malformed line ignored", st->dir, lineno);
			continue;
		}
		v = realloc(st->tags, (st->n_tags + 1) * sizeof(*v));
		if (!v) {
			fclose(f);
			return -ENOMEM;
		}
		st->tags = v;
		st->tags[st->n_tags++] = t;
	}
	fclose(f);
	if (st->n_tags)
		qsort(st->tags, st->n_tags, sizeof(*st->tags), cmp_tag);
	return 0;
}

/* Write st->tags out; tag_mu held. */
static int tags_save(struct mmsb_store *st)
{
	struct mmsb_buf b = {0};
	char line[128];
	size_t i;
	int rc;

	rc = mmsb_buf_put(&b, TAGS_MAGIC "\n", sizeof(TAGS_MAGIC));
	for (i = 0; i < st->n_tags && rc == 0; i++) {
		int n = snprintf(line, sizeof(line), "%" PRIu64 " %" PRId64 " %s\n", st->tags[i].epoch,
				 st->tags[i].time_ns, st->tags[i].name);

		rc = mmsb_buf_put(&b, line, (size_t)n);
	}
	if (rc == 0)
		rc = mmsb_io_replace(st->io, st->dirfd, TAGS_NAME, b.p, b.len);
	mmsb_buf_free(&b);
	return rc;
}

static ssize_t tag_find(struct mmsb_store *st, const char *name)
{
	size_t i;

	for (i = 0; i < st->n_tags; i++)
		if (strcmp(st->tags[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

int mmsb_tag_set(struct mmsb_store *st, const char *name, uint64_t epoch)
{
	struct mmsb_tag *v, old;
	ssize_t i;
	int rc;

	if (!mmsb_tag_name_ok(name))
		return -EINVAL;
	if (st->read_only)
		return -EROFS;
	if (epoch > mmsb_store_head(st) || epoch < mmsb_store_oldest(st))
		return -ENOENT;
	pthread_mutex_lock(&st->tag_mu);
	i = tag_find(st, name);
	if (i < 0) {
		v = realloc(st->tags, (st->n_tags + 1) * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&st->tag_mu);
			return -ENOMEM;
		}
		st->tags = v;
		i = (ssize_t)st->n_tags++;
		memset(&st->tags[i], 0, sizeof(st->tags[i]));
		snprintf(st->tags[i].name, sizeof(st->tags[i].name), "%s", name);
		old.epoch = UINT64_MAX;
	} else {
		old = st->tags[i];
	}
	st->tags[i].epoch = epoch;
	st->tags[i].time_ns = mmsb_wall_ns();
	qsort(st->tags, st->n_tags, sizeof(*st->tags), cmp_tag);
	rc = tags_save(st);
	if (rc < 0) { /* put it back as it was */
		i = tag_find(st, name);
		if (old.epoch == UINT64_MAX)
			st->tags[i] = st->tags[--st->n_tags];
		else
			st->tags[i] = old;
		if (st->n_tags)
			qsort(st->tags, st->n_tags, sizeof(*st->tags), cmp_tag);
	}
	pthread_mutex_unlock(&st->tag_mu);
	return rc;
}

int mmsb_tag_remove(struct mmsb_store *st, const char *name)
{
	ssize_t i;
	int rc;

	if (st->read_only)
		return -EROFS;
	pthread_mutex_lock(&st->tag_mu);
	i = tag_find(st, name);
	if (i < 0) {
		pthread_mutex_unlock(&st->tag_mu);
		return -ENOENT;
	}
	memmove(st->tags + i, st->tags + i + 1, (st->n_tags - (size_t)i - 1) * sizeof(*st->tags));
	st->n_tags--;
	rc = tags_save(st);
	pthread_mutex_unlock(&st->tag_mu);
	return rc;
}

int mmsb_tag_get(struct mmsb_store *st, const char *name, uint64_t *epoch)
{
	ssize_t i;

	pthread_mutex_lock(&st->tag_mu);
	i = tag_find(st, name);
	if (i >= 0)
		*epoch = st->tags[i].epoch;
	pthread_mutex_unlock(&st->tag_mu);
	return i >= 0 ? 0 : -ENOENT;
}

ssize_t mmsb_tags(struct mmsb_store *st, struct mmsb_tag *out, size_t cap)
{
	ssize_t n;

	pthread_mutex_lock(&st->tag_mu);
	if (cap && st->n_tags)
		memcpy(out, st->tags, (st->n_tags < cap ? st->n_tags : cap) * sizeof(*out));
	n = (ssize_t)st->n_tags;
	pthread_mutex_unlock(&st->tag_mu);
	return n;
}

int tags_before(struct mmsb_store *st, uint64_t keep, bool force)
{
	size_t i, j;
	int rc = 0;

	pthread_mutex_lock(&st->tag_mu);
	for (i = 0; i < st->n_tags && st->tags[i].epoch < keep; i++)
		;
	if (i && !force) {
		mmsb_diag(&st->diag, MMSB_DIAG_NOTICE, "store: compaction would drop tag %s (epoch %" PRIu64 ")",
			  st->tags[0].name, st->tags[0].epoch);
		rc = -EBUSY;
	} else if (i) {
		for (j = i; j < st->n_tags; j++)
			st->tags[j - i] = st->tags[j];
		st->n_tags -= i;
		rc = tags_save(st);
	}
	pthread_mutex_unlock(&st->tag_mu);
	return rc;
}
