/* test_crash.c - the crash matrix: a log cut at every byte offset of its last
 * segment recovers to a prefix of the committed epochs (never a partial
 * transaction); damage in the middle of the log refuses a read-write open and
 * serves the epochs before it read-only; a store that recovered from a torn
 * tail keeps working.  The corruption matrix: one flipped byte anywhere in a
 * segment header, a COMMIT frame, a superblock copy, the newest
 * checkpoint or a block that two checkpoints share ends in exact recovery
 * or a precise refusal, and every epoch served equals the model (never an
 * older state). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "mmsb.h"
#include "rec.h"
#include "store_int.h"

#define N_TXNS 30
#define MAX_FILES 64

/* ---- a store held in memory ---------------------------------------------- */

struct mfile {
	char rel[64]; /* path relative to the store */
	uint8_t *p;
	size_t len;
};

struct image {
	struct mfile f[MAX_FILES];
	unsigned n;
};

static void img_add(struct image *im, const char *dir, const char *rel)
{
	char path[400];
	struct stat sb;
	struct mfile *f = &im->f[im->n++];
	int fd;

	assert_true(im->n <= MAX_FILES);
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	snprintf(f->rel, sizeof(f->rel), "%s", rel);
	f->len = (size_t)sb.st_size;
	f->p = malloc(f->len + 1);
	assert_non_null(f->p);
	assert_int_equal(pread(fd, f->p, f->len, 0), (ssize_t)f->len);
	close(fd);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Load every file of the store (log segments sorted by name). */
static void img_load(struct image *im, const char *dir)
{
	const char *sub[] = {"log", "ckpt"};
	char path[300];

	memset(im, 0, sizeof(*im));
	img_add(im, dir, MMSB_SUPER_NAME);
	for (unsigned s = 0; s < 2; s++) {
		char *names[MAX_FILES];
		unsigned n = 0;
		struct dirent *de;
		DIR *d;

		snprintf(path, sizeof(path), "%s/%s", dir, sub[s]);
		d = opendir(path);
		if (!d)
			continue;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.') {
				assert_true(n < MAX_FILES);
				names[n] = malloc(strlen(sub[s]) + strlen(de->d_name) + 2);
				assert_non_null(names[n]);
				sprintf(names[n], "%s/%s", sub[s], de->d_name);
				n++;
			}
		closedir(d);
		qsort(names, n, sizeof(names[0]), cmp_str);
		for (unsigned i = 0; i < n; i++) {
			img_add(im, dir, names[i]);
			free(names[i]);
		}
	}
}

static void img_free(struct image *im)
{
	for (unsigned i = 0; i < im->n; i++)
		free(im->f[i].p);
	im->n = 0;
}

static void sh(const char *fmt, const char *arg)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), fmt, arg);
	assert_int_equal(system(cmd), 0);
}

/* Remove dir and everything in it (two levels: the store layout). */
static void rm_store(const char *dir)
{
	char path[400];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) < 0)
			rm_store(path);
	}
	closedir(d);
	rmdir(dir);
}

/* Write the image as store dir; file `cut` (index) is cut at cut_len and byte
 * flip_off of it is XORed with 0xff when flip_off != SIZE_MAX. */
static void img_write(const struct image *im, const char *dir, unsigned cut, size_t cut_len, size_t flip_off)
{
	char path[400];

	rm_store(dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/log", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/ckpt", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	for (unsigned i = 0; i < im->n; i++) {
		size_t len = i == cut ? cut_len : im->f[i].len;
		int fd;

		snprintf(path, sizeof(path), "%s/%s", dir, im->f[i].rel);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, im->f[i].p, len), (ssize_t)len);
		if (i == cut && flip_off != SIZE_MAX) {
			uint8_t b = (uint8_t)(im->f[i].p[flip_off] ^ 0xff);

			assert_int_equal(pwrite(fd, &b, 1, (off_t)flip_off), 1);
		}
		close(fd);
	}
}

/* ---- a dump of the tree, for comparing states ------------------------------ */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_add(struct sbuf *s, const void *p, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		s->cap = (s->len + n + 1) * 2;
		s->p = realloc(s->p, s->cap);
		assert_non_null(s->p);
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static void sb_printf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *s, const char *fmt, ...)
{
	char tmp[600];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(tmp));
	sb_add(s, tmp, (size_t)n);
}

struct dent {
	char name[64];
	struct mmsb_attr a;
};

struct dents {
	struct dent e[64];
	unsigned n;
};

static int collect(void *arg, const char *name, const struct mmsb_attr *a, uint64_t cookie)
{
	struct dents *d = arg;

	(void)cookie;
	assert_true(d->n < 64);
	snprintf(d->e[d->n].name, sizeof(d->e[0].name), "%s", name);
	d->e[d->n].a = *a;
	d->n++;
	return 0;
}

static int cmp_dent(const void *a, const void *b)
{
	return strcmp(((const struct dent *)a)->name, ((const struct dent *)b)->name);
}

/* Dump of the tree of view (store head when sn == NULL) under dir. */
static void dump_dir(struct mmsb_store *st, struct mmsb_snap *sn, uint64_t dir, const char *prefix, struct sbuf *out)
{
	struct dents *d = calloc(1, sizeof(*d));
	static uint8_t buf[1 << 16];

	assert_non_null(d);
	assert_int_equal(sn ? mmsb_snap_readdir(sn, dir, 0, collect, d) : mmsb_readdir(st, dir, 0, collect, d), 0);
	qsort(d->e, d->n, sizeof(d->e[0]), cmp_dent);
	for (unsigned i = 0; i < d->n; i++) {
		const struct mmsb_attr *a = &d->e[i].a;
		char path[256], xl[512];
		ssize_t n;

		snprintf(path, sizeof(path), "%s/%s", prefix, d->e[i].name);
		sb_printf(out, "%s id %" PRIu64 " type %d mode %o uid %u size %" PRIu64 "\n", path, a->id, a->type,
			  a->mode, a->uid, a->size);
		if (a->type == MMSB_T_PAGE) {
			n = sn ? mmsb_snap_read(sn, a->id, 0, buf, sizeof(buf)) : mmsb_read(st, a->id, 0, buf, sizeof(buf));
			assert_int_equal(n, (ssize_t)a->size);
			sb_add(out, buf, (size_t)n);
		} else if (a->type == MMSB_T_SYMLINK) {
			n = sn ? mmsb_snap_readlink(sn, a->id, (char *)buf, sizeof(buf))
			       : mmsb_readlink(st, a->id, (char *)buf, sizeof(buf));
			assert_true(n >= 0);
			sb_add(out, buf, (size_t)n);
		}
		n = sn ? mmsb_snap_listxattr(sn, a->id, xl, sizeof(xl)) : mmsb_listxattr(st, a->id, xl, sizeof(xl));
		assert_true(n >= 0);
		for (ssize_t k = 0; k < n; k += (ssize_t)strlen(xl + k) + 1) {
			ssize_t v = sn ? mmsb_snap_getxattr(sn, a->id, xl + k, buf, sizeof(buf))
				       : mmsb_getxattr(st, a->id, xl + k, buf, sizeof(buf));

			assert_true(v >= 0);
			sb_printf(out, " x %s=", xl + k);
			sb_add(out, buf, (size_t)v);
		}
		sb_add(out, "\n", 1);
		if (a->type == MMSB_T_DIR)
			dump_dir(st, sn, a->id, path, out);
	}
	free(d);
}

static char *dump(struct mmsb_store *st, struct mmsb_snap *sn)
{
	struct sbuf s = {0};

	sb_add(&s, "", 0);
	dump_dir(st, sn, MMSB_ROOT_ID, "", &s);
	return s.p;
}

/* ---- fixture ---------------------------------------------------------------- */

struct fx {
	char tmp[64];
	char dir[96];  /* the original store */
	char work[96]; /* damaged copies */
	char *want[N_TXNS + 2]; /* dump at each epoch */
	struct image im;
	unsigned last;	      /* index of the last segment in im */
	uint64_t last_first;  /* its first epoch */
	uint64_t commit_end[N_TXNS + 2]; /* end offset of epoch e's COMMIT in the last segment (0: not in it) */
	uint64_t txn_start[N_TXNS + 2];	 /* offset of epoch e's first frame in the last segment */
};

static void quiet(void *arg, int level, const char *msg)
{
	(void)arg;
	if (getenv("MMSB_TEST_DIAG"))
		fprintf(stderr, "diag %d: %s\n", level, msg);
}

static int open_store(const char *dir, bool ro, struct mmsb_store **st)
{
	struct mmsb_store_opts o;

	mmsb_store_opts_init(&o);
	o.diag_fn = quiet;
	o.create = false;
	o.read_only = ro;
	o.ckpt_at_close = false;
	o.ckpt_log_bytes = 0;
	o.segment_bytes = 4096;
	o.lz4_min_bytes = 64;
	return mmsb_store_open(dir, &o, st);
}

static uint64_t commit(struct mmsb_txn *t)
{
	uint64_t e = 0;

	assert_int_equal(mmsb_txn_commit(t, &e), 0);
	assert_true(e > 0);
	return e;
}

/* Transaction i of the workload (varied kinds). */
static void workload_txn(struct mmsb_store *st, unsigned i)
{
	struct mmsb_txn *t;
	struct mmsb_attr a, d;
	uint8_t big[1500];
	char name[16];

	assert_int_equal(mmsb_txn_begin(st, MMSB_SRC_USER, &t), 0);
	snprintf(name, sizeof(name), "f%u", i);
	switch (i % 6) {
	case 0: /* create + write */
		assert_int_equal(mmsb_txn_create(t, MMSB_ROOT_ID, name, MMSB_T_PAGE, 0640, 1, 2, NULL, &a), 0);
		for (size_t k = 0; k < sizeof(big); k++)
			big[k] = (uint8_t)(k * 31 + i);
		assert_int_equal(mmsb_txn_write(t, a.id, 0, big, 200 + i * 40), (ssize_t)(200 + i * 40));
		break;
	case 1: /* dir + symlink + xattr */
		assert_int_equal(mmsb_txn_create(t, MMSB_ROOT_ID, name, MMSB_T_DIR, 0755, 0, 0, NULL, &d), 0);
		assert_int_equal(mmsb_txn_create(t, d.id, "ln", MMSB_T_SYMLINK, 0777, 0, 0, "../target", &a), 0);
		assert_int_equal(mmsb_txn_setxattr(t, d.id, "user.k", name, strlen(name), 0), 0);
		break;
	case 2: /* overwrite bytes of the newest page, compressible */
		snprintf(name, sizeof(name), "f%u", i - 2);
		break;
	case 3: /* truncate + setattr */
		snprintf(name, sizeof(name), "f%u", i - 3);
		assert_int_equal(mmsb_txn_lookup(t, MMSB_ROOT_ID, name, &a), 0);
		assert_int_equal(mmsb_txn_truncate(t, a.id, 100 + i), 0);
		assert_int_equal(mmsb_txn_setattr(t, a.id, &(struct mmsb_setattr){.valid = MMSB_SET_MODE, .mode = 0600}),
				 0);
		break;
	case 4: /* rename into the directory */
		snprintf(name, sizeof(name), "f%u", i - 4);
		{
			char dn[16];

			snprintf(dn, sizeof(dn), "f%u", i - 3);
			assert_int_equal(mmsb_txn_lookup(t, MMSB_ROOT_ID, dn, &d), 0);
			assert_int_equal(mmsb_txn_rename(t, MMSB_ROOT_ID, name, d.id, "moved", 0), 0);
		}
		break;
	default: /* unlink the symlink, rmxattr */
		{
			char dn[16];

			snprintf(dn, sizeof(dn), "f%u", i - 4);
			assert_int_equal(mmsb_txn_lookup(t, MMSB_ROOT_ID, dn, &d), 0);
			assert_int_equal(mmsb_txn_unlink(t, d.id, "ln"), 0);
			assert_int_equal(mmsb_txn_removexattr(t, d.id, "user.k"), 0);
		}
		break;
	}
	if (i % 6 == 2) { /* a big compressible write to the page of txn i-2 */
		assert_int_equal(mmsb_txn_lookup(t, MMSB_ROOT_ID, name, &a), 0);
		memset(big, 'a' + (int)(i % 26), sizeof(big));
		assert_int_equal(mmsb_txn_write(t, a.id, 50, big, sizeof(big)), (ssize_t)sizeof(big));
	}
	commit(t);
}

/* Checkpoints the fixture takes after these epochs (0 ends the list). */
static const uint64_t no_ckpts[] = {0}, two_ckpts[] = {10, 20, 0};

static int setup_with(void **state, const uint64_t *ckpts)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct mmsb_store_opts o;
	struct mmsb_store *st;
	const uint8_t *p;
	uint64_t seed, off;

	assert_non_null(fx);
	strcpy(fx->tmp, "/tmp/mmsb-crash-XXXXXX");
	assert_non_null(mkdtemp(fx->tmp));
	snprintf(fx->dir, sizeof(fx->dir), "%s/s", fx->tmp);
	snprintf(fx->work, sizeof(fx->work), "%s/w", fx->tmp);
	mmsb_store_opts_init(&o);
	o.diag_fn = quiet;
	o.ckpt_at_close = false;
	o.ckpt_log_bytes = 0;
	o.segment_bytes = 4096;
	o.lz4_min_bytes = 64;
	assert_int_equal(mmsb_store_open(fx->dir, &o, &st), 0);
	fx->want[0] = dump(st, NULL);
	for (unsigned i = 0; i < N_TXNS; i++) {
		workload_txn(st, i);
		assert_int_equal(mmsb_store_head(st), i + 1);
		fx->want[i + 1] = dump(st, NULL);
		for (const uint64_t *c = ckpts; *c; c++)
			if (*c == i + 1) {
				uint64_t e = 0;

				assert_int_equal(mmsb_checkpoint(st, &e), 0);
				assert_int_equal(e, i + 1);
			}
	}
	mmsb_store_close(st);
	img_load(&fx->im, fx->dir);
	/* the last segment, and where each transaction in it ends */
	for (unsigned i = 0; i < fx->im.n; i++)
		if (strncmp(fx->im.f[i].rel, "log/", 4) == 0)
			fx->last = i;
	p = fx->im.f[fx->last].p;
	assert_true(fx->last > 1); /* several segments */
	assert_memory_equal(p, MMSB_SEG_MAGIC, 8);
	fx->last_first = mmsb_get_le64(p + MMSB_SEG_OFF_FIRST);
	seed = mmsb_get_le64(p + MMSB_SEG_OFF_SEED);
	for (off = MMSB_SEG_HDR_SIZE; off < fx->im.f[fx->last].len;) {
		struct mmsb_rec r;
		int64_t fl = mmsb_rec_decode(p + off, fx->im.f[fx->last].len - off, seed, &r, NULL);

		assert_true(fl > 0);
		assert_true(r.epoch <= N_TXNS);
		if (!fx->txn_start[r.epoch])
			fx->txn_start[r.epoch] = off;
		off += (uint64_t)fl;
		if (r.type == MMSB_FR_COMMIT)
			fx->commit_end[r.epoch] = off;
	}
	assert_int_equal(off, fx->im.f[fx->last].len);
	assert_true(fx->commit_end[N_TXNS] == off);
	assert_true(fx->last_first < N_TXNS - 1); /* several transactions in the last segment */
	*state = fx;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, no_ckpts);
}

static int setup_ckpts(void **state)
{
	return setup_with(state, two_ckpts);
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	sh("rm -rf %s", fx->tmp);
	for (unsigned i = 0; i <= N_TXNS; i++)
		free(fx->want[i]);
	img_free(&fx->im);
	free(fx);
	return 0;
}

/* Epochs fully contained when the last segment is cut at len. */
static uint64_t expect_head(const struct fx *fx, size_t len)
{
	uint64_t h = fx->last_first - 1;

	for (uint64_t e = fx->last_first; e <= N_TXNS; e++)
		if (fx->commit_end[e] && fx->commit_end[e] <= len)
			h = e;
	return h;
}

static void check_tree(struct fx *fx, struct mmsb_store *st, uint64_t epoch, size_t cut)
{
	char *got = dump(st, NULL);

	if (strcmp(got, fx->want[epoch]) != 0)
		fail_msg("cut at %zu: head %" PRIu64 " differs from the state at that epoch", cut, epoch);
	free(got);
}

static void every_truncation_is_a_prefix(void **state)
{
	struct fx *fx = *state;
	size_t size = fx->im.f[fx->last].len;
	unsigned n_appends = 0;

	for (size_t cut = MMSB_SEG_HDR_SIZE; cut <= size; cut++) {
		struct mmsb_store *st;
		uint64_t want = expect_head(fx, cut);
		int rc;

		img_write(&fx->im, fx->work, fx->last, cut, SIZE_MAX);
		rc = open_store(fx->work, false, &st);
		if (rc != 0)
			fail_msg("cut at %zu: open %d", cut, rc);
		if (mmsb_store_head(st) != want)
			fail_msg("cut at %zu: head %" PRIu64 " want %" PRIu64, cut, mmsb_store_head(st), want);
		check_tree(fx, st, want, cut);
		if (cut % 61 == 0 || cut == size - 1) {
			/* the recovered store keeps working: append, reopen, all there */
			struct mmsb_txn *t;
			struct mmsb_attr a;
			char *before;

			assert_int_equal(mmsb_store_verify(st), 0);
			assert_int_equal(mmsb_txn_begin(st, MMSB_SRC_USER, &t), 0);
			assert_int_equal(mmsb_txn_create(t, MMSB_ROOT_ID, "after", MMSB_T_PAGE, 0644, 0, 0, NULL, &a), 0);
			assert_int_equal(mmsb_txn_write(t, a.id, 0, "recovered", 9), 9);
			assert_int_equal(commit(t), want + 1);
			before = dump(st, NULL);
			mmsb_store_close(st);
			assert_int_equal(open_store(fx->work, false, &st), 0);
			assert_int_equal(mmsb_store_head(st), want + 1);
			{
				char *got = dump(st, NULL);

				assert_string_equal(got, before);
				free(got);
			}
			free(before);
			/* and every older epoch is still there */
			for (uint64_t e = want > 3 ? want - 3 : 0; e <= want; e++) {
				struct mmsb_snap *sn;
				char *got;

				assert_int_equal(mmsb_snap_open(st, e, &sn), 0);
				got = dump(st, sn);
				assert_string_equal(got, fx->want[e]);
				free(got);
				mmsb_snap_close(sn);
			}
			assert_int_equal(mmsb_store_verify(st), 0);
			n_appends++;
		}
		mmsb_store_close(st);
	}
	print_message("%zu cuts, %u appends after recovery\n", size - MMSB_SEG_HDR_SIZE + 1, n_appends);
}

/* Damage inside the frames of epoch e (of the last segment) when later
 * frames follow: read-write open refused, read-only open serves < e. */
static void damage_at(struct fx *fx, unsigned file, size_t flip, uint64_t first_bad)
{
	struct mmsb_store *st;
	int rc;

	img_write(&fx->im, fx->work, file, fx->im.f[file].len, flip);
	rc = open_store(fx->work, false, &st);
	if (rc != -EUCLEAN && rc != -EBADMSG)
		fail_msg("flip at %s+%zu: read-write open gives %d", fx->im.f[file].rel, flip, rc);
	assert_int_equal(open_store(fx->work, true, &st), 0);
	assert_true(mmsb_store_is_read_only(st));
	assert_int_equal(mmsb_store_head(st), first_bad - 1);
	check_tree(fx, st, first_bad - 1, flip);
	for (uint64_t e = 0; e < first_bad; e++) {
		struct mmsb_snap *sn;
		char *got;

		assert_int_equal(mmsb_snap_open(st, e, &sn), 0);
		got = dump(st, sn);
		assert_string_equal(got, fx->want[e]);
		free(got);
		mmsb_snap_close(sn);
	}
	{
		struct mmsb_snap *sn;

		assert_int_equal(mmsb_snap_open(st, first_bad, &sn), -ENOENT);
	}
	{
		struct mmsb_txn *t;

		assert_int_equal(mmsb_txn_begin(st, MMSB_SRC_USER, &t), -EROFS);
	}
	assert_true(mmsb_store_verify(st) < 0);
	mmsb_store_close(st);
}

static void middle_damage_is_corruption(void **state)
{
	struct fx *fx = *state;
	uint64_t e = fx->last_first + 1; /* an early transaction of the last segment */
	size_t start = fx->txn_start[e];
	unsigned first_seg;

	assert_true(start > 0 && fx->commit_end[N_TXNS] > fx->commit_end[e]);
	/* a payload byte, a header byte (epoch), the checksum, and the commit marker */
	damage_at(fx, fx->last, start + MMSB_FR_HDR_SIZE + 9, e);
	damage_at(fx, fx->last, start + MMSB_FR_OFF_EPOCH, e);
	damage_at(fx, fx->last, start + MMSB_FR_OFF_SUM + 3, e);
	damage_at(fx, fx->last, fx->commit_end[e] - 10, e);
	/* damage in an earlier segment: everything after it is unreadable */
	for (first_seg = 0; strncmp(fx->im.f[first_seg].rel, "log/", 4) != 0; first_seg++)
		;
	damage_at(fx, first_seg, MMSB_SEG_HDR_SIZE + MMSB_FR_HDR_SIZE + 2, 1);
}

static void torn_tail_then_append_twice(void **state)
{
	struct fx *fx = *state;
	size_t cut = fx->commit_end[N_TXNS] - 5; /* tear the last commit marker */
	struct mmsb_store *st;
	char *a1;

	img_write(&fx->im, fx->work, fx->last, cut, SIZE_MAX);
	assert_int_equal(open_store(fx->work, false, &st), 0);
	assert_int_equal(mmsb_store_head(st), N_TXNS - 1);
	for (unsigned i = 0; i < 8; i++) { /* enough to roll segments */
		struct mmsb_txn *t;
		struct mmsb_attr a;
		char name[16];
		uint8_t b[900];

		memset(b, (int)('0' + i), sizeof(b));
		snprintf(name, sizeof(name), "new%u", i);
		assert_int_equal(mmsb_txn_begin(st, MMSB_SRC_USER, &t), 0);
		assert_int_equal(mmsb_txn_create(t, MMSB_ROOT_ID, name, MMSB_T_PAGE, 0644, 0, 0, NULL, &a), 0);
		assert_int_equal(mmsb_txn_write(t, a.id, 0, b, sizeof(b)), (ssize_t)sizeof(b));
		assert_int_equal(commit(t), N_TXNS + i);
	}
	a1 = dump(st, NULL);
	mmsb_store_close(st);
	assert_int_equal(open_store(fx->work, false, &st), 0);
	assert_int_equal(mmsb_store_head(st), N_TXNS + 7);
	{
		char *got = dump(st, NULL);

		assert_string_equal(got, a1);
		free(got);
	}
	free(a1);
	for (uint64_t e = 0; e < N_TXNS; e++) {
		struct mmsb_snap *sn;
		char *got;

		assert_int_equal(mmsb_snap_open(st, e, &sn), 0);
		got = dump(st, sn);
		assert_string_equal(got, fx->want[e]);
		free(got);
		mmsb_snap_close(sn);
	}
	assert_int_equal(mmsb_store_verify(st), 0);
	mmsb_store_close(st);
}


/* ---- the corruption matrix -------------------------------------------------------
 * One flipped byte in a segment header, a COMMIT frame, a superblock copy or
 * the newest checkpoint: every case ends in exact recovery or a precise
 * refusal, and every epoch the store serves equals the model. */

static unsigned img_find(const struct image *im, const char *rel)
{
	for (unsigned i = 0; i < im->n; i++)
		if (strcmp(im->f[i].rel, rel) == 0)
			return i;
	fail_msg("no %s in the image", rel);
	return 0;
}

static int count_hist(void *arg, const struct mmsb_hist_entry *e)
{
	(void)e;
	++*(unsigned *)arg;
	return 0;
}

/* The store serves exactly: head `head` (its tree), epochs [lf, ll] fail
 * with -EUCLEAN (ll < lf: none), every other epoch up to head equals the
 * model, later ones do not exist; mmsb_lost_epochs says the same. */
static void expect_epochs(struct fx *fx, struct mmsb_store *st, const char *what, uint64_t head, uint64_t lf,
			  uint64_t ll)
{
	struct mmsb_epoch_range r[4];
	ssize_t nl = mmsb_lost_epochs(st, r, 4);
	char *got;

	if (mmsb_store_head(st) != head)
		fail_msg("%s: head %" PRIu64 ", want %" PRIu64, what, mmsb_store_head(st), head);
	got = dump(st, NULL);
	if (strcmp(got, fx->want[head]) != 0)
		fail_msg("%s: the head differs from epoch %" PRIu64, what, head);
	free(got);
	for (uint64_t e = 0; e <= N_TXNS; e++) {
		struct mmsb_snap *sn = NULL;
		int rc = mmsb_snap_open(st, e, &sn);
		int want = e > head ? -ENOENT : e >= lf && e <= ll ? -EUCLEAN : 0;

		if (rc != want)
			fail_msg("%s: epoch %" PRIu64 ": open %d, want %d", what, e, rc, want);
		if (rc == 0) {
			got = dump(st, sn);
			if (strcmp(got, fx->want[e]) != 0)
				fail_msg("%s: epoch %" PRIu64 " is served with other content", what, e);
			free(got);
			mmsb_snap_close(sn);
		}
	}
	if (ll >= lf) {
		if (nl != 1 || r[0].first != lf || r[0].last != ll)
			fail_msg("%s: lost epochs: %zd range(s), [%" PRIu64 ", %" PRIu64 "], want [%" PRIu64 ", %" PRIu64 "]",
				 what, nl, nl > 0 ? r[0].first : 0, nl > 0 ? r[0].last : 0, lf, ll);
	} else if (nl != 0) {
		fail_msg("%s: %zd lost range(s) reported, want none", what, nl);
	}
}

static int no_diff(void *arg, char kind, const char *path, const struct mmsb_range *r, size_t n)
{
	(void)arg, (void)kind, (void)path, (void)r, (void)n;
	fail_msg("a difference reported from a lost epoch");
	return 1;
}

struct commit_at {
	unsigned file;
	uint64_t off, epoch;
};

/* Every COMMIT frame of every segment. */
static unsigned find_commits(const struct fx *fx, struct commit_at *out)
{
	unsigned n = 0;

	for (unsigned i = 0; i < fx->im.n; i++) {
		const uint8_t *p = fx->im.f[i].p;
		uint64_t seed, off;

		if (strncmp(fx->im.f[i].rel, "log/", 4) != 0)
			continue;
		seed = mmsb_get_le64(p + MMSB_SEG_OFF_SEED);
		for (off = MMSB_SEG_HDR_SIZE; off < fx->im.f[i].len;) {
			struct mmsb_rec r;
			int64_t fl = mmsb_rec_decode(p + off, fx->im.f[i].len - off, seed, &r, NULL);

			assert_true(fl > 0);
			if (r.type == MMSB_FR_COMMIT) {
				assert_true(n < N_TXNS);
				out[n++] = (struct commit_at){i, off, r.epoch};
			}
			off += (uint64_t)fl;
		}
	}
	assert_int_equal(n, N_TXNS);
	return n;
}

/* The checkpoints of two_ckpts: the next one at or after e, 0 if none. */
static uint64_t ckpt_after(uint64_t e)
{
	for (const uint64_t *c = two_ckpts; *c; c++)
		if (*c >= e)
			return *c;
	return 0;
}

/* Every byte of every COMMIT frame: damage a checkpoint covers is skipped
 * (rw open works, exactly the epochs up to that checkpoint fail), other
 * damage refuses rw and ro serves the exact prefix.  A complete final
 * COMMIT that fails its checksum is damage, not a torn tail. */
static void matrix_commit_frames(void **state)
{
	struct fx *fx = *state;
	struct commit_at c[N_TXNS];
	unsigned n = find_commits(fx, c), cases = 0;

	for (unsigned k = 0; k < n; k++)
		for (unsigned b = 0; b < MMSB_FR_HDR_SIZE + MMSB_COMMIT_FIXED; b++) {
			uint64_t e = c[k].epoch, ck = ckpt_after(e);
			struct mmsb_store *st;
			char what[96];
			int rc;

			snprintf(what, sizeof(what), "commit of epoch %" PRIu64 " byte %u", e, b);
			img_write(&fx->im, fx->work, c[k].file, fx->im.f[c[k].file].len, c[k].off + b);
			if (ck && b % 4 != 0) { /* covered, read-only (rw on every 4th byte below: fsyncs cost) */
				assert_int_equal(open_store(fx->work, true, &st), 0);
				expect_epochs(fx, st, what, N_TXNS, e, ck - 1); /* never older content */
				mmsb_store_close(st);
			} else if (ck) { /* covered: recovered read-write, the gap reported */
				unsigned nh = 0;

				rc = open_store(fx->work, false, &st);
				if (rc != 0)
					fail_msg("%s: read-write open %d", what, rc);
				expect_epochs(fx, st, what, N_TXNS, e, ck - 1);
				assert_int_equal(mmsb_history(st, 0, 0, N_TXNS, count_hist, &nh), -EUCLEAN);
				nh = 0;
				assert_int_equal(mmsb_history(st, 0, ck + 1, N_TXNS, count_hist, &nh), 0);
				assert_true(nh > 0);
				if (b == 0 && e < ck) { /* diff and restore refuse a lost epoch too */
					uint64_t ne = 0;

					assert_int_equal(mmsb_diff(st, e, N_TXNS, NULL, 0, no_diff, NULL), -EUCLEAN);
					assert_int_equal(mmsb_restore(st, e, NULL, 0, &ne), -EUCLEAN);
					assert_int_equal(mmsb_store_head(st), N_TXNS);
				}
				assert_true(mmsb_store_verify(st) < 0);
				mmsb_store_close(st);
			} else {
				rc = open_store(fx->work, false, &st);
				if (rc != -EUCLEAN && rc != -EBADMSG)
					fail_msg("%s: read-write open %d, want a refusal", what, rc);
				assert_int_equal(open_store(fx->work, true, &st), 0);
				expect_epochs(fx, st, what, e - 1, 1, 0);
				if (b % 4 == 0)
					assert_true(mmsb_store_verify(st) < 0);
				mmsb_store_close(st);
			}
			cases++;
		}
	print_message("%u commit-frame cases\n", cases);
}

/* Every byte of every segment header: the records stay reachable; verify
 * reports the header until a read-write open rewrites it. */
static void matrix_segment_headers(void **state)
{
	struct fx *fx = *state;
	unsigned cases = 0;

	for (unsigned i = 0; i < fx->im.n; i++) {
		if (strncmp(fx->im.f[i].rel, "log/", 4) != 0)
			continue;
		for (unsigned b = 0; b < MMSB_SEG_HDR_SIZE; b++) {
			struct mmsb_store *st;
			char what[96];

			snprintf(what, sizeof(what), "%s header byte %u", fx->im.f[i].rel, b);
			img_write(&fx->im, fx->work, i, fx->im.f[i].len, b);
			assert_int_equal(open_store(fx->work, true, &st), 0);
			expect_epochs(fx, st, what, N_TXNS, 1, 0);
			if (mmsb_store_verify(st) >= 0)
				fail_msg("%s: verify says clean", what);
			mmsb_store_close(st);
			assert_int_equal(open_store(fx->work, false, &st), 0);
			expect_epochs(fx, st, what, N_TXNS, 1, 0); /* reads every segment: rewrites the header */
			assert_int_equal(mmsb_store_verify(st), 0);
			mmsb_store_close(st);
			cases++;
		}
	}
	print_message("%u segment-header cases\n", cases);
}

/* Every byte of both superblock copies: the other copy serves; verify
 * reports it; a read-write open rewrites it. */
static void matrix_superblock(void **state)
{
	struct fx *fx = *state;
	unsigned sb = img_find(&fx->im, MMSB_SUPER_NAME);

	assert_int_equal(fx->im.f[sb].len, 2 * MMSB_SB_SIZE);
	for (unsigned b = 0; b < 2 * MMSB_SB_SIZE; b++) {
		struct mmsb_store *st;
		char what[64];

		snprintf(what, sizeof(what), "superblock byte %u", b);
		img_write(&fx->im, fx->work, sb, fx->im.f[sb].len, b);
		assert_int_equal(open_store(fx->work, true, &st), 0);
		assert_int_equal(mmsb_store_head(st), N_TXNS);
		if (mmsb_store_verify(st) >= 0)
			fail_msg("%s: verify says clean", what);
		mmsb_store_close(st);
		assert_int_equal(open_store(fx->work, false, &st), 0);
		if (b % 37 == 0)
			expect_epochs(fx, st, what, N_TXNS, 1, 0);
		assert_int_equal(mmsb_store_verify(st), 0);
		mmsb_store_close(st);
	}
}

/* The newest checkpoint's header, first block (header and some bytes) and
 * trailer: recovery falls back to the older checkpoint plus the log, and
 * every epoch stays readable. */
static void matrix_newest_checkpoint(void **state)
{
	struct fx *fx = *state;
	unsigned ck = img_find(&fx->im, "ckpt/0000000000000014.ckpt"), cases = 0;
	size_t len = fx->im.f[ck].len;

	for (size_t b = 0; b < len; b++) {
		struct mmsb_store *st;
		char what[64];

		if (!(b < MMSB_CK_HDR_SIZE + MMSB_BK_HDR_SIZE + 16 || b >= len - MMSB_TR_SIZE))
			continue;
		snprintf(what, sizeof(what), "checkpoint 20 byte %zu", b);
		img_write(&fx->im, fx->work, ck, len, b);
		assert_int_equal(open_store(fx->work, false, &st), 0);
		expect_epochs(fx, st, what, N_TXNS, 1, 0);
		assert_int_equal(mmsb_checkpoints(st, NULL, 0), 1);
		if (mmsb_store_verify(st) >= 0)
			fail_msg("%s: verify says clean", what);
		mmsb_store_close(st);
		cases++;
	}
	print_message("%u checkpoint cases\n", cases);
}

/* The older checkpoint, used lazily by views of epochs 10-19: damage in its
 * header, node table or a page's data block makes those views fall back to
 * the empty store and the log, never an error or older content. */
static void matrix_older_checkpoint(void **state)
{
	struct fx *fx = *state;
	unsigned ck = img_find(&fx->im, "ckpt/000000000000000a.ckpt"), cases = 0;
	size_t len = fx->im.f[ck].len;

	for (size_t b = 0; b < len; b += b < MMSB_CK_HDR_SIZE + 64 || b >= len - MMSB_TR_SIZE ? 1 : 97) {
		struct mmsb_store *st;
		char what[64];

		snprintf(what, sizeof(what), "checkpoint 10 byte %zu", b);
		img_write(&fx->im, fx->work, ck, len, b);
		assert_int_equal(open_store(fx->work, true, &st), 0);
		expect_epochs(fx, st, what, N_TXNS, 1, 0);
		mmsb_store_close(st);
		cases++;
	}
	print_message("%u older-checkpoint cases\n", cases);
}

/* Blocks of checkpoint 10 that checkpoint 20 refers to (it is incremental):
 * a flipped byte in the header or the stored bytes of one damages both;
 * recovery falls back to the empty store and the log, every epoch is
 * served exactly, and verify reports the damage. */
static void matrix_shared_block(void **state)
{
	struct fx *fx = *state;
	unsigned ck = img_find(&fx->im, "ckpt/000000000000000a.ckpt"), cases = 0;
	size_t len = fx->im.f[ck].len;
	uint64_t offs[4], spans[4];
	unsigned n = 0;
	struct mmsb_store *st;

	img_write(&fx->im, fx->work, 0, fx->im.f[0].len, SIZE_MAX);
	assert_int_equal(open_store(fx->work, true, &st), 0);
	assert_non_null(st->ck_tab);
	assert_int_equal(st->ck_tab->epoch, 20);
	for (uint64_t i = 0; i < st->ck_tab->n_refs && n < 4; i++) {
		const struct ckpt_ref *r = &st->ck_tab->refs[i];

		if (r->fi != UINT32_MAX && st->ck_tab->files[r->fi] == 10) {
			offs[n] = r->off;
			spans[n++] = r->span;
		}
	}
	mmsb_store_close(st);
	assert_true(n > 0); /* checkpoint 20 refers to unchanged blocks of 10 */
	for (unsigned k = 0; k < n; k++) {
		/* kind, raw_len, sum, the first and a middle stored byte */
		const size_t at[] = {4, 9, MMSB_BK_OFF_SUM + 3, MMSB_BK_HDR_SIZE,
				     MMSB_BK_HDR_SIZE + (spans[k] - MMSB_BK_HDR_SIZE) / 2};

		for (unsigned j = 0; j < MMSB_ARRAY_SIZE(at); j++) {
			char what[80];

			snprintf(what, sizeof(what), "shared block @0x%" PRIx64 " byte %zu", offs[k], at[j]);
			img_write(&fx->im, fx->work, ck, len, offs[k] + at[j]);
			assert_int_equal(open_store(fx->work, false, &st), 0);
			expect_epochs(fx, st, what, N_TXNS, 1, 0);
			if (mmsb_checkpoints(st, NULL, 0) != 0)
				fail_msg("%s: a checkpoint referring to the block is still used", what);
			if (mmsb_store_verify(st) >= 0)
				fail_msg("%s: verify says clean", what);
			mmsb_store_close(st);
			cases++;
		}
	}
	print_message("%u shared-block cases\n", cases);
}

/* The last segment deleted after a checkpoint of the head: the log ends
 * before the checkpoint, so rw is refused, ro serves the checkpoint and the
 * epochs whose records were in that segment fail; verify reports it. */
static void deleted_last_segment(void **state)
{
	struct fx *fx = *state;
	struct mmsb_store *st;
	char path[300];
	uint64_t e = 0;

	img_write(&fx->im, fx->work, 0, fx->im.f[0].len, SIZE_MAX);
	assert_int_equal(open_store(fx->work, false, &st), 0);
	{
		struct mmsb_store_opts o;

		mmsb_store_close(st);
		mmsb_store_opts_init(&o);
		o.diag_fn = quiet;
		o.create = false;
		o.ckpt_log_bytes = 0;
		o.segment_bytes = 4096;
		assert_int_equal(mmsb_store_open(fx->work, &o, &st), 0);
		assert_int_equal(mmsb_checkpoint(st, &e), 0);
		assert_int_equal(e, N_TXNS);
		mmsb_store_close(st);
	}
	snprintf(path, sizeof(path), "%s/%s", fx->work, fx->im.f[fx->last].rel);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(open_store(fx->work, false, &st), -EUCLEAN);
	assert_int_equal(open_store(fx->work, true, &st), 0);
	expect_epochs(fx, st, "deleted last segment", N_TXNS, fx->last_first, N_TXNS - 1);
	assert_true(mmsb_store_verify(st) < 0);
	mmsb_store_close(st);
}

/* Opening after a checkpoint indexes only the log from the segment of that
 * checkpoint on; the first time-travel read before it indexes the rest,
 * and every epoch reads exactly as before. */
static void open_indexes_after_checkpoint(void **state)
{
	struct fx *fx = *state;
	struct mmsb_store *st;
	struct mmsb_stats s;
	struct mmsb_snap *sn;

	img_write(&fx->im, fx->work, 0, fx->im.f[0].len, SIZE_MAX);
	for (int ro = 0; ro < 2; ro++) {
		assert_int_equal(open_store(fx->work, ro, &st), 0);
		mmsb_store_stats(st, &s);
		if (s.indexed_epochs >= 20)
			fail_msg("open indexed %" PRIu64 " epochs: the log before checkpoint 20 was scanned", s.indexed_epochs);
		assert_int_equal(mmsb_snap_open(st, 25, &sn), 0); /* after the checkpoint: no more indexing */
		mmsb_snap_close(sn);
		mmsb_store_stats(st, &s);
		assert_true(s.indexed_epochs < 20);
		expect_epochs(fx, st, "lazy index", N_TXNS, 1, 0);
		mmsb_store_stats(st, &s);
		assert_int_equal(s.indexed_epochs, N_TXNS);
		assert_int_equal(mmsb_store_verify(st), 0);
		mmsb_store_close(st);
	}
}

int main(void)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test_setup_teardown(every_truncation_is_a_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(middle_damage_is_corruption, setup, teardown),
		cmocka_unit_test_setup_teardown(torn_tail_then_append_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(matrix_commit_frames, setup_ckpts, teardown),
		cmocka_unit_test_setup_teardown(matrix_segment_headers, setup_ckpts, teardown),
		cmocka_unit_test_setup_teardown(matrix_superblock, setup_ckpts, teardown),
		cmocka_unit_test_setup_teardown(matrix_newest_checkpoint, setup_ckpts, teardown),
		cmocka_unit_test_setup_teardown(matrix_older_checkpoint, setup_ckpts, teardown),
		cmocka_unit_test_setup_teardown(matrix_shared_block, setup_ckpts, teardown),
		cmocka_unit_test_setup_teardown(deleted_last_segment, setup_ckpts, teardown),
		cmocka_unit_test_setup_teardown(open_indexes_after_checkpoint, setup_ckpts, teardown),
	};

	return cmocka_run_group_tests_name("crash", t, NULL, NULL);
}
