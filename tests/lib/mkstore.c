/* mkstore.c - make a small store through the public API (libmmsb.so), for
 * the tests of the example program and of the Python module.
 *
 *   mkstore DIR      create the store (DIR must not exist) and close it
 *   mkstore --abi    print the sizes and offsets the Python module mirrors
 *
 * The store, epoch by epoch:
 *   1  hello.txt = "one\n"
 *   2  hello.txt = "two\n"
 *   3  d/
 *   4  d/data.bin = 100000 bytes, byte i = i % 251
 *   5  hello.txt = "three\n"         tag "first" names epoch 1
 * and prints the head epoch (5).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmsb.h"

#define DATA_BYTES 100000u

static void die(const char *what, int rc)
{
	fprintf(stderr, "mkstore: %s: %s\n", what, strerror(-rc));
	exit(1);
}

/* One transaction writing bytes to the page name in parent (created when
 * missing). */
static void put(struct mmsb_store *st, uint64_t parent, const char *name, const void *buf, size_t len)
{
	struct mmsb_txn *t;
	struct mmsb_attr a;
	uint64_t e;
	int rc = mmsb_txn_begin(st, MMSB_SRC_USER, &t);

	if (rc < 0)
		die("begin", rc);
	rc = mmsb_txn_lookup(t, parent, name, &a);
	if (rc == -ENOENT)
		rc = mmsb_txn_create(t, parent, name, MMSB_T_PAGE, 0644, 0, 0, NULL, &a);
	if (rc == 0)
		rc = mmsb_txn_truncate(t, a.id, 0);
	if (rc == 0)
		rc = (int)mmsb_txn_write(t, a.id, 0, buf, len) < 0 ? -EIO : 0;
	if (rc < 0) {
		mmsb_txn_abort(t);
		die(name, rc);
	}
	rc = mmsb_txn_commit(t, &e);
	if (rc < 0)
		die("commit", rc);
}

static void print_abi(void)
{
	printf("{\"opts_size\": %zu, \"opts_create\": %zu, \"opts_read_only\": %zu, \"attr_size\": %zu, "
	       "\"hist_size\": %zu, \"epoch_info_size\": %zu, \"tag_size\": %zu, \"ckpt_info_size\": %zu}\n",
	       sizeof(struct mmsb_store_opts), offsetof(struct mmsb_store_opts, create),
	       offsetof(struct mmsb_store_opts, read_only), sizeof(struct mmsb_attr),
	       sizeof(struct mmsb_hist_entry), sizeof(struct mmsb_epoch_info), sizeof(struct mmsb_tag),
	       sizeof(struct mmsb_ckpt_info));
}

int main(int argc, char **argv)
{
	static unsigned char data[DATA_BYTES];
	struct mmsb_store_opts o;
	struct mmsb_store *st;
	struct mmsb_txn *t;
	struct mmsb_attr d;
	uint64_t e;
	size_t i;
	int rc;

	if (argc == 2 && strcmp(argv[1], "--abi") == 0) {
		print_abi();
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: mkstore DIR | mkstore --abi\n");
		return 2;
	}
	mmsb_store_opts_init(&o);
	rc = mmsb_store_open(argv[1], &o, &st);
	if (rc < 0)
		die(argv[1], rc);
	put(st, MMSB_ROOT_ID, "hello.txt", "one\n", 4);
	put(st, MMSB_ROOT_ID, "hello.txt", "two\n", 4);
	for (i = 0; i < DATA_BYTES; i++)
		data[i] = (unsigned char)(i % 251);
	rc = mmsb_txn_begin(st, MMSB_SRC_USER, &t);
	if (rc == 0)
		rc = mmsb_txn_create(t, MMSB_ROOT_ID, "d", MMSB_T_DIR, 0755, 0, 0, NULL, &d);
	if (rc == 0)
		rc = mmsb_txn_commit(t, &e);
	if (rc < 0)
		die("mkdir d", rc);
	put(st, d.id, "data.bin", data, DATA_BYTES);
	put(st, MMSB_ROOT_ID, "hello.txt", "three\n", 6);
	rc = mmsb_tag_set(st, "first", 1);
	if (rc < 0)
		die("tag", rc);
	printf("%llu\n", (unsigned long long)mmsb_store_head(st));
	mmsb_store_close(st);
	return 0;
}
