/* ckpt.h - checkpoints: the state at an epoch, written incrementally.
 *
 * A checkpoint file holds the node table of its epoch and the data blocks
 * that changed since the previous checkpoint; every page lists its blocks
 * as references (file, offset, checksum) into this file or older ones.
 * Layout, write order, validity and when a block is rewritten: ckpt.c and
 * mmsb(5) CHECKPOINT. */
#ifndef MMSB_CKPT_H
#define MMSB_CKPT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "diag.h"
#include "io.h"
#include "ns.h"

/* Most checkpoint files one checkpoint refers to (itself included): a
 * writer rewrites the blocks of the files with the fewest live bytes rather
 * than pass it, so a load opens at most this many files. */
#define CKPT_FILES_MAX 16

struct ckpt_ctx {
	const struct mmsb_io_ops *io;
	const struct mmsb_diag *diag;
	int dirfd;     /* the store's ckpt/ directory */
	uint64_t seed; /* checksum seed */
};

struct ckpt_info {
	uint64_t epoch;
	int64_t time;
	uint64_t file_bytes;
	uint32_t n_files;		/* checkpoint files it refers to (itself included); 0: unknown */
	uint64_t files[CKPT_FILES_MAX]; /* their epochs, increasing */
};

/* Where one block of a page is: a data block in a checkpoint file, or a
 * hole (a run of zero bytes stored nowhere). */
struct ckpt_ref {
	uint32_t fi;	 /* index into the table's files; UINT32_MAX: a hole */
	uint32_t raw;	 /* raw bytes (hole: zero bytes, <= MMSB_BK_HOLE_MAX) */
	uint32_t span;	 /* bytes the block takes in its file (header, stored bytes, padding); hole: 0 */
	bool hashed;	 /* hash is known (false for blocks of files without MMSB_CK_INCOMPAT_REFS) */
	uint64_t off;	 /* file offset of the block header (hole: 0) */
	uint64_t sum;	 /* that header's bk_sum (hole: 0) */
	uint64_t hash;	 /* XXH3-64(raw bytes, seed) when hashed */
};

/* One page of a table: its identity when the checkpoint was taken and its
 * block references refs[first .. first + n). */
struct ckpt_page {
	uint64_t id, birth; /* node id and creating epoch: ids are never reused */
	uint64_t epoch;	    /* the node's last change epoch */
	uint64_t version;   /* the node's byte records applied */
	uint64_t size;	    /* page bytes */
	uint64_t first;	    /* index of its first reference */
	uint32_t n;	    /* references (0: an empty page) */
};

/* A checkpoint's block table: every page's references, complete (loading
 * never follows a chain of checkpoints), and the files they name, open.
 * Immutable once built; shared by reference count (views, the store's
 * newest table). */
struct ckpt_table {
	_Atomic uint32_t nref;		  /* owners */
	uint64_t epoch;			  /* the checkpoint */
	struct ckpt_ref *refs;		  /* every page's references, page after page */
	uint64_t n_refs, cap_refs;
	struct ckpt_page *pages;	  /* sorted by id */
	uint64_t n_pages, cap_pages;
	uint32_t n_files;		  /* files named, <= CKPT_FILES_MAX */
	uint64_t files[CKPT_FILES_MAX];	  /* their epochs, increasing */
	int fds[CKPT_FILES_MAX];	  /* open read-only (-1: not opened) */
	uint64_t data_bytes[CKPT_FILES_MAX]; /* bytes of each file's data region (header to meta blocks) */
	uint64_t live[CKPT_FILES_MAX];	  /* bytes of each file's data region the references use */
};

/* Where pages may differ from checkpoint `since`, from the log's records
 * after it: block ranges per page.  Given to mmsb_ckpt_write with the
 * table of `since`, it spares hashing the blocks of a changed page that no
 * record touched. */
struct ckpt_dirty_range {
	uint64_t id;	   /* page */
	uint64_t from, to; /* its blocks [from, to) (block k: bytes [k MiB, (k+1) MiB)) */
};
struct ckpt_dirty_count {
	uint64_t id;	 /* page */
	uint64_t n_recs; /* its byte records since the checkpoint */
};
struct ckpt_dirty {
	uint64_t since;		    /* the checkpoint the records come after */
	struct ckpt_dirty_range *v; /* sorted by (id, from) after mmsb_ckpt_dirty_finish */
	size_t n, cap;
	/* how many records each page has: a page whose version moved by
	 * another count (a record the index missed) is hashed whole */
	struct ckpt_dirty_count *counts; /* sorted by id */
	size_t n_counts, cap_counts;
};
/* Page id has n_recs byte records since the checkpoint (ids increasing).  -ENOMEM. */
int mmsb_ckpt_dirty_count(struct ckpt_dirty *d, uint64_t id, uint64_t n_recs);
/* Bytes [off, off + len) of page id may have changed (len UINT64_MAX: from
 * off to any size).  -ENOMEM. */
int mmsb_ckpt_dirty_add(struct ckpt_dirty *d, uint64_t id, uint64_t off, uint64_t len);
void mmsb_ckpt_dirty_finish(struct ckpt_dirty *d);
void mmsb_ckpt_dirty_free(struct ckpt_dirty *d);

struct ckpt_table *mmsb_ckpt_table_get(struct ckpt_table *t); /* NULL passes through */
void mmsb_ckpt_table_put(struct ckpt_table *t);		   /* NULL: nothing */

/* Write ns (a namespace nobody mutates meanwhile, e.g. a clone) as the
 * checkpoint of `epoch`: temporary file, fsync, rename, fsync of the
 * directory.  prev (may be NULL: a full image) is the table of the previous
 * checkpoint: blocks it names that are unchanged are referred to, not
 * rewritten.  dirty (may be NULL; used when dirty->since is prev's epoch):
 * every change since prev, so blocks outside it need no hashing.  *bytes
 * gets the file size; *tab_out (may be NULL) the new table.  -EIO,
 * -ENOSPC, -ENOMEM. */
int mmsb_ckpt_write(const struct ckpt_ctx *c, const struct ns *ns, uint64_t epoch, int64_t time,
		    const struct ckpt_table *prev, const struct ckpt_dirty *dirty, uint64_t *bytes,
		    struct ckpt_table **tab_out);

/* Checkpoints present in the directory, sorted by epoch, with the files
 * each refers to (read from its ends and first meta block; a listed file
 * may still fail to load).  Caller frees *out. */
int mmsb_ckpt_list(const struct ckpt_ctx *c, struct ckpt_info **out, size_t *n);

/* Load checkpoint `epoch`.  lazy: metadata only, pages left unloaded with
 * their references (ns_node.ck_*: indexes into the table), and *tab_out
 * must be given: it gets the table, whose open files serve
 * mmsb_ckpt_read_page.  Full: every page read and checked, every reference
 * included; *tab_out (may be NULL) gets the table.  -ENOENT, -EUCLEAN,
 * -EBADMSG, -ENOTSUP, -EIO, -ENOMEM. */
int mmsb_ckpt_load(const struct ckpt_ctx *c, uint64_t epoch, bool lazy, struct ns **out, int64_t *time,
		   struct ckpt_table **tab_out);

/* Read the bytes of a page of table t (a lazily loaded node n) into a new
 * buffer; every block is checked against its reference. */
int mmsb_ckpt_read_page(const struct ckpt_ctx *c, const struct ckpt_table *t, const struct ns_node *n,
			struct pbuf **out);

/* Does checkpoint file `epoch` exist? */
bool mmsb_ckpt_exists(const struct ckpt_ctx *c, uint64_t epoch);

/* Remove checkpoint files with epoch < keep (compaction) that no checkpoint
 * at or after keep refers to, and leftover temporary files (keep == 0).
 * Returns the number removed. */
int mmsb_ckpt_remove_before(const struct ckpt_ctx *c, uint64_t keep);

#endif
