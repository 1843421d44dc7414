/* mmsb-cat.c - print one page of an MMSB store as it was at an epoch.
 *
 *   mmsb-cat STORE PATH [EPOCH]
 *
 * An example of libmmsb (mmsb(3)) used without a mount: the store is opened
 * read-only, a snapshot of EPOCH (default: the newest) is opened, PATH is
 * resolved in it and its bytes are copied to stdout.  Build it against an
 * installed libmmsb with
 *
 *   cc -o mmsb-cat mmsb-cat.c $(pkg-config --cflags --libs mmsb)
 *
 * Exit status: 0 success, 1 failure (the message names the step), 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmsb.h>

/* Copy the page's bytes at the snapshot to stdout; 0 or -errno. */
static int cat_page(struct mmsb_snap *snap, uint64_t id)
{
	char buf[65536];
	uint64_t off = 0;
	ssize_t n;

	while ((n = mmsb_snap_read(snap, id, off, buf, sizeof(buf))) > 0) {
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			return -EIO;
		off += (uint64_t)n;
	}
	return n < 0 ? (int)n : 0;
}

int main(int argc, char **argv)
{
	struct mmsb_store_opts o;
	struct mmsb_store *st = NULL;
	struct mmsb_snap *snap = NULL;
	struct mmsb_attr a;
	uint64_t epoch;
	char *end;
	int rc;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: mmsb-cat STORE PATH [EPOCH]\n");
		return 2;
	}
	mmsb_store_opts_init(&o);
	o.create = false;
	o.read_only = true;
	o.ckpt_at_close = false;
	rc = mmsb_store_open(argv[1], &o, &st);
	if (rc < 0) {
		fprintf(stderr, "mmsb-cat: open %s: %s\n", argv[1], strerror(-rc));
		return 1;
	}
	epoch = mmsb_store_head(st);
	if (argc == 4) {
		errno = 0;
		epoch = strtoull(argv[3], &end, 10);
		if (errno != 0 || *end != '\0' || end == argv[3]) {
			fprintf(stderr, "mmsb-cat: bad epoch '%s'\n", argv[3]);
			mmsb_store_close(st);
			return 2;
		}
	}
	rc = mmsb_snap_open(st, epoch, &snap);
	if (rc < 0) {
		fprintf(stderr, "mmsb-cat: epoch %" PRIu64 ": %s (retained: %" PRIu64 "..%" PRIu64 ")\n", epoch,
			strerror(-rc), mmsb_store_oldest(st), mmsb_store_head(st));
		goto out;
	}
	rc = mmsb_snap_resolve(snap, argv[2], &a);
	if (rc == 0 && a.type != MMSB_T_PAGE)
		rc = -EISDIR;
	if (rc == 0)
		rc = cat_page(snap, a.id);
	if (rc < 0)
		fprintf(stderr, "mmsb-cat: %s at epoch %" PRIu64 ": %s\n", argv[2], epoch, strerror(-rc));
out:
	mmsb_snap_close(snap);
	mmsb_store_close(st);
	return rc < 0 ? 1 : 0;
}
