/* ckpt.h - checkpoints: the full state at an epoch, in one file.
 * Layout, write order and validity: ckpt.c and mmsb(5) CHECKPOINT. */
#ifndef MMSB_CKPT_H
#define MMSB_CKPT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "diag.h"
#include "io.h"
#include "ns.h"

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
};

/* Write ns (a namespace nobody mutates meanwhile, e.g. a clone) as the
 * checkpoint of `epoch`: temporary file, fsync, rename, fsync of the
 * directory.  *bytes gets the file size.  -EIO, -ENOSPC, -ENOMEM. */
int mmsb_ckpt_write(const struct ckpt_ctx *c, const struct ns *ns, uint64_t epoch, int64_t time, uint64_t *bytes);

/* Checkpoints present in the directory, sorted by epoch (names only; a
 * listed file may still fail to load).  Caller frees *out. */
int mmsb_ckpt_list(const struct ckpt_ctx *c, struct ckpt_info **out, size_t *n);

/* Load checkpoint `epoch`.  lazy: metadata only, pages left unloaded with
 * their location (ns_node.ck_*), and *fd_out gets the open file (else it is
 * closed and fd_out may be NULL).  -ENOENT, -EUCLEAN, -EBADMSG, -ENOTSUP,
 * -EIO, -ENOMEM. */
int mmsb_ckpt_load(const struct ckpt_ctx *c, uint64_t epoch, bool lazy, struct ns **out, int64_t *time,
		   int *fd_out);

/* Read the bytes of a page left unloaded by a lazy load into a new buffer. */
int mmsb_ckpt_read_page(const struct ckpt_ctx *c, int fd, const struct ns_node *n, struct pbuf **out);

/* Remove checkpoint files with epoch < keep (compaction) and leftover
 * temporary files (keep == 0).  Returns the number removed. */
int mmsb_ckpt_remove_before(const struct ckpt_ctx *c, uint64_t keep);

#endif
