/* wire.c - /dev/fuse I/O hook negotiating INIT capabilities (wire.h).
 *
 * Layouts are the kernel's (<linux/fuse.h>, protocol 7.31+):
 *   request  = fuse_in_header { len, opcode, unique, nodeid, ... } + body
 *   reply    = fuse_out_header { len, error, unique } + body
 *   INIT in  = fuse_init_in  { major, minor, max_readahead, flags, ... }
 *   INIT out = fuse_init_out { major, minor, max_readahead, flags, ... }
 * A request's body is rewritten in place, in the buffer libfuse read it
 * into, before libfuse decodes it; nothing else changes.
 *
 * Ordering: the kernel sends nothing before INIT is answered, and the
 * worker that reads INIT is the one that answers it, so init_unique and
 * offered need no lock; the negotiated flags are atomic because every
 * worker reads them.
 */
#include <errno.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tree.h"
#include "wire.h"

/* Protocol 7.39 (Linux 6.6); <linux/fuse.h> of bookworm stops at 7.38. */
#ifndef FUSE_DIRECT_IO_ALLOW_MMAP
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36)
#endif

struct mmsbfs_wire {
	uint64_t wanted;	   /* capabilities configured (-o nokillpriv_v2, -o cached_writes) */
	uint64_t init_unique;	   /* unique of the INIT request to patch the reply of; 0: none */
	uint64_t offered;	   /* capabilities to add to the INIT reply (64-bit flags) */
	atomic_bool killpriv_v2;   /* KILLPRIV_V2 is on: forward the kill flags */
	atomic_bool dio_mmap;	   /* DIRECT_IO_ALLOW_MMAP is on */
};

bool mmsbfs_wire_killpriv_v2(const struct mmsbfs_wire *w)
{
	return w != NULL && atomic_load_explicit(&w->killpriv_v2, memory_order_relaxed);
}

bool mmsbfs_wire_dio_mmap(const struct mmsbfs_wire *w)
{
	return w != NULL && atomic_load_explicit(&w->dio_mmap, memory_order_relaxed);
}

/* Copy the kernel's kill-suid/sgid request flag into MMSBFS_KILL_SUIDGID. */
static void wire_mark_kill(struct fuse_in_header *h, size_t n)
{
	void *body = h + 1;

	if (h->opcode == FUSE_WRITE && n >= sizeof(*h) + sizeof(struct fuse_write_in)) {
		struct fuse_write_in *in = body;

		if (in->write_flags & FUSE_WRITE_KILL_SUIDGID)
			in->flags |= MMSBFS_KILL_SUIDGID;
	} else if (h->opcode == FUSE_SETATTR && n >= sizeof(*h) + sizeof(struct fuse_setattr_in)) {
		struct fuse_setattr_in *in = body;

		if (in->valid & FATTR_KILL_SUIDGID)
			in->mode |= MMSBFS_KILL_SUIDGID; /* libfuse copies mode into st_mode */
	} else if (h->opcode == FUSE_OPEN && n >= sizeof(*h) + sizeof(struct fuse_open_in)) {
		struct fuse_open_in *in = body;

		if (in->open_flags & FUSE_OPEN_KILL_SUIDGID)
			in->flags |= MMSBFS_KILL_SUIDGID;
	} else if (h->opcode == FUSE_CREATE && n >= sizeof(*h) + sizeof(struct fuse_create_in)) {
		struct fuse_create_in *in = body;

		if (in->open_flags & FUSE_OPEN_KILL_SUIDGID)
			in->flags |= MMSBFS_KILL_SUIDGID;
	}
}

/* What the kernel's INIT offers that libfuse 3.14 cannot ask for. */
static void wire_note_init(struct mmsbfs_wire *w, const struct fuse_in_header *h, size_t n)
{
	const struct fuse_init_in *in = (const void *)(h + 1);
	uint64_t flags;

	if (n < sizeof(*h) + offsetof(struct fuse_init_in, unused) || in->major != 7 || in->minor < 31)
		return;
	flags = in->flags;
	if (flags & FUSE_INIT_EXT)
		flags |= (uint64_t)in->flags2 << 32;
	w->offered = flags & w->wanted;
	if (w->offered != 0)
		w->init_unique = h->unique;
}

static ssize_t wire_read(int fd, void *buf, size_t len, void *userdata)
{
	struct mmsbfs_wire *w = ((struct mmsbfs *)userdata)->wire;
	ssize_t n = read(fd, buf, len);
	struct fuse_in_header *h = buf;

	if (n < (ssize_t)sizeof(*h))
		return n; /* errno is the read's */
	if (atomic_load_explicit(&w->killpriv_v2, memory_order_relaxed))
		wire_mark_kill(h, (size_t)n);
	else if (h->opcode == FUSE_INIT)
		wire_note_init(w, h, (size_t)n);
	return n;
}

static ssize_t wire_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct mmsbfs_wire *w = ((struct mmsbfs *)userdata)->wire;
	const struct fuse_out_header *oh = iov[0].iov_base;
	struct fuse_init_out out;
	struct iovec patched[2];

	if (w->init_unique == 0 || count != 2 || iov[0].iov_len < sizeof(*oh) || oh->unique != w->init_unique)
		return writev(fd, iov, count);
	w->init_unique = 0;
	if (oh->error != 0 || iov[1].iov_len != sizeof(out))
		return writev(fd, iov, count); /* protocol >= 7.23 replies are full size */
	memcpy(&out, iov[1].iov_base, sizeof(out)); /* libfuse's reply stays untouched */
	out.flags |= (uint32_t)w->offered;
	if (w->offered >> 32) {
		out.flags |= FUSE_INIT_EXT;
		out.flags2 |= (uint32_t)(w->offered >> 32);
	}
	patched[0] = iov[0];
	patched[1].iov_base = &out;
	patched[1].iov_len = sizeof(out);
	/* Before the kernel can send a request that depends on them. */
	atomic_store(&w->killpriv_v2, (w->offered & FUSE_HANDLE_KILLPRIV_V2) != 0);
	atomic_store(&w->dio_mmap, (w->offered & FUSE_DIRECT_IO_ALLOW_MMAP) != 0);
	return writev(fd, patched, 2);
}

int mmsbfs_wire_install(struct mmsbfs *fs)
{
	const struct fuse_custom_io io = {.read = wire_read, .writev = wire_writev};
	struct mmsbfs_wire *w = calloc(1, sizeof(*w));
	int rc;

	if (w == NULL)
		return -ENOMEM;
	w->wanted = (fs->opts->no_killpriv_v2 ? 0 : FUSE_HANDLE_KILLPRIV_V2) |
		    (fs->opts->cached_writes ? 0 : FUSE_DIRECT_IO_ALLOW_MMAP);
	fs->wire = w;
	rc = fuse_session_custom_io(fs->se, &io, fuse_session_fd(fs->se));
	if (rc != 0) {
		fs->wire = NULL;
		free(w);
		return rc < 0 ? rc : -EIO;
	}
	return 0;
}

void mmsbfs_wire_undo_direntplus(struct mmsbfs *fs, const char *buf, size_t len)
{
	size_t off = 0;

	while (off + FUSE_NAME_OFFSET_DIRENTPLUS <= len) {
		struct fuse_direntplus dp;

		memcpy(&dp, buf + off, sizeof(dp)); /* buf is not aligned for it */
		if (dp.entry_out.nodeid != 0)
			mmsbfs_tree_forget(fs, dp.entry_out.nodeid, 1);
		off += FUSE_DIRENTPLUS_SIZE(&dp);
	}
}

void mmsbfs_wire_free(struct mmsbfs_wire *w)
{
	free(w);
}
