/* ns.h - the namespace: nodes, directories, xattrs and page bytes in memory.
 *
 * One struct ns is one state of the tree: the live head, a checkpoint being
 * written (a clone), or a time-travel view.  Every mutation of a namespace is
 * a record applied by ns_apply(), for live transactions and for replay alike,
 * so replaying the log reproduces the live state by construction.
 *
 * Page bytes live in refcounted buffers (struct pbuf) shared copy-on-write
 * between clones: cloning the head for a checkpoint costs O(nodes), and the
 * first later write to a shared page copies it (buffers of 1 MiB and more:
 * lazily, 64 KiB chunk by chunk as writes touch them; "lazy copies" in
 * ns.c).  Invariant: the bytes of a
 * buffer past the page size are zero.  Buffers of 1 MiB and more are
 * sparse: a chunk map says which 64 KiB chunks may hold data, and holes
 * cost no memory anywhere (reads, clones, checkpoints, views; see "page
 * buffers" in ns.c).  The head's buffers charge a memory budget.
 *
 * Locking is the caller's: a namespace is not thread-safe by itself.
 */
#ifndef MMSB_NS_H
#define MMSB_NS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "mmsb.h"
#include "kern.h"
#include "rec.h"

/* Page bytes in memory are charged to a budget (one per store): a charge
 * that would pass limit fails with -ENOSPC.  See "page buffers" in ns.c. */
struct mmsb_mem {
	_Atomic uint64_t used;	/* bytes charged by live buffers */
	_Atomic uint64_t limit; /* largest used allowed; UINT64_MAX: no limit (replay) */
};
/* Charge n bytes to m (NULL: no budget): 0 or -ENOSPC (nothing charged). */
int mmsb_mem_charge(struct mmsb_mem *m, uint64_t n);
void mmsb_mem_uncharge(struct mmsb_mem *m, uint64_t n);

#define PBUF_CHUNK (64u << 10) /* granule of the hole map: power of two, whole pages */

struct pbuf {
	_Atomic uint32_t refs;		/* owners: nodes of this and cloned namespaces */
	uint64_t cap;			/* bytes at data */
	const struct mmsb_kern_ops *k;	/* NULL: host memory (bytes[]); else device memory of k */
	size_t map_len;			/* host buffer in a mapping of its own: its length; 0: malloc'd */
	uint8_t *data;			/* the bytes; data[size..cap) is zero */
	struct mmsb_mem *mem;		/* budget charged for this buffer; NULL: none */
	uint64_t charged;		/* host: bytes this buffer counts (malloc'd: cap; mapped:
					 * PBUF_CHUNK per data chunk); charged to mem when set */
	uint64_t *dmap;			/* mapped buffers: bit i set <=> chunk i may hold data; else NULL */
	uint64_t n_chunks;		/* chunks dmap covers: ceil(cap / PBUF_CHUNK) */
	uint64_t n_data;		/* bits set in dmap */
	/* lazy copy (mapped buffers made private from a shared one): chunks
	 * the source still holds, copied or moved in on first change */
	pthread_mutex_t mu;		/* mapped buffers: guards src, pend, n_pend */
	struct pbuf *_Atomic src;	/* the source (a reference); NULL: no chunk pending */
	uint64_t *pend;			/* bit i set <=> chunk i's bytes are src's (then dmap bit i is set) */
	uint64_t n_pend;		/* bits set in pend */
	uint64_t n_pchunks;		/* chunks pend covers */
	uint64_t src_keep;		/* src's bytes from here on count as zero */
	uint8_t bytes[];		/* malloc'd host buffers: the bytes themselves */
};

struct ns_xattr {
	char *name;	/* NUL-terminated */
	uint8_t *value; /* malloc'd, may be NULL when len is 0 */
	uint32_t len;	/* value bytes */
};

struct ns_dent {
	uint64_t seq;	      /* readdir cookie, increasing within the directory */
	struct ns_node *node; /* NULL: removed (tombstone, compacted later) */
};

struct ns_node {
	uint64_t id;	   /* node id, never reused */
	uint64_t parent;   /* parent id (root: itself; orphan: 0) */
	uint8_t type;	   /* enum mmsb_type (a link entry: its node's) */
	bool orphan;	   /* unlinked while referenced: out of the tree */
	bool loaded;	   /* bytes present (false only in time-travel views) */
	uint16_t name_len; /* bytes of name */
	uint32_t mode, uid, gid;
	uint32_t opens;	   /* mmsb_ref() references */
	const struct mmsb_kern_ops *dev; /* GPU page: the table its bytes live in; NULL: host */
	int64_t atime, mtime, ctime;
	uint64_t size;	   /* page bytes / symlink target length */
	uint64_t rdev;	   /* character and block devices: the device */
	/* hard links: a node's first name is the node itself; each further
	 * name is a link entry, an ns_node with the same id (not in the id
	 * table) that is only a name: parent, name, nhash, dseq, ino. */
	uint32_t nlink;		   /* nodes: names (1 + link entries); dirs: 1 */
	struct ns_node *ino;	   /* link entries: the node they name; NULL for nodes */
	struct ns_node *links;	   /* nodes: their link entries, chained by next_link */
	struct ns_node *next_link; /* link entries: the next of the same node */
	uint64_t version;  /* byte deltas applied */
	uint64_t epoch;	   /* last change */
	uint64_t birth;	   /* creating epoch */
	uint64_t nhash;	   /* hash of (parent, name) */
	uint64_t dseq;	   /* cookie of this node in its parent */
	char *name;	   /* NUL-terminated */
	struct pbuf *data; /* page bytes or symlink target; NULL when empty or not loaded */
	struct ns_xattr *xattrs;
	uint32_t n_xattrs;
	/* dependency edges (pages): see ns_deps_resolve */
	uint64_t *deps;	   /* parent ids, in the order user.mmsb.deps names them */
	uint16_t n_deps;
	uint32_t n_kids, cap_kids;
	uint64_t *kids;	   /* ids of nodes whose deps name this one (live tree only) */
	/* directories */
	uint32_t n_dents, cap_dents; /* slots used / allocated in dents */
	uint32_t n_live;	     /* live children */
	uint32_t n_subdirs;	     /* child directories (for nlink) */
	uint64_t next_seq;	     /* next cookie */
	struct ns_dent *dents;	     /* sorted by seq */
	/* time-travel views: where the checkpoint keeps the bytes */
	uint64_t ck_data_off; /* index of the page's first block reference in the checkpoint's table */
	uint64_t ck_size;  /* page size in that checkpoint */
	uint32_t ck_n_blocks; /* its block references (struct ckpt_ref, ckpt.h) */
	uint64_t ck_epoch; /* epoch of the base those bytes belong to (0: none) */
	uint64_t from_epoch; /* views: data holds the page at this epoch (not loaded) */
	uint64_t from_size;  /* views: the page's size at from_epoch */
};

/* The node a directory entry names (the entry itself unless a link entry). */
static inline struct ns_node *ns_inode(const struct ns_node *d)
{
	return d->ino ? d->ino : (struct ns_node *)d;
}

struct ns {
	struct ns_node **ids;	/* open addressing by id */
	size_t ids_cap, n_ids;	/* power of two / used */
	struct ns_node **names; /* open addressing by (parent, name) */
	size_t names_cap, n_names;
	struct ns_node *root;
	uint64_t next_id;				 /* next node id to allocate */
	const struct mmsb_kern_ops *gpu;		 /* where GPU pages live; NULL: host memory */
	uint64_t n_pages, n_dirs, n_symlinks, page_bytes; /* in the tree (orphans excluded) */
	struct mmsb_mem *mem;				 /* budget of new page buffers; NULL: none (views) */
};

int ns_new(int64_t root_time, struct ns **out);
void ns_free(struct ns *ns);
/* Deep copy of the tree (orphans excluded), sharing page buffers. */
int ns_clone(const struct ns *ns, struct ns **out);

struct ns_node *ns_get(const struct ns *ns, uint64_t id);
/* The directory entry (a node or a link entry: see ns_inode) of name. */
struct ns_node *ns_lookup(const struct ns *ns, uint64_t parent, const char *name, size_t len);
int ns_resolve(const struct ns *ns, const char *path, struct ns_node **out);
/* Same, but the last component's directory entry (maybe a link entry). */
int ns_resolve_entry(const struct ns *ns, const char *path, struct ns_node **out);
ssize_t ns_path(const struct ns *ns, uint64_t id, char *buf, size_t cap);
void ns_attr(const struct ns_node *n, struct mmsb_attr *a);

/* Validate r against the namespace and apply it.  Returns 0 or the errno
 * the operation gets (-ENOENT, -EEXIST, -ENOTDIR, -EISDIR, -ENOTEMPTY,
 * -EINVAL, -EPERM, -EMLINK, -ENODATA), -EUCLEAN for a malformed record or
 * delta, -ENOMEM, or a device error of a GPU page (kern.h: -ENOSPC, -EIO).
 * A refused record changes nothing: every check runs before the first
 * change.  After that only allocation and the device can fail, and then r
 * may be half-applied (a rename unlinked but not relinked, an xattr set
 * without its edges, a page resized but not written): the caller must
 * rebuild the namespace (txn.c poisons the transaction, abort reloads; a
 * replay fails).  scratch is used to unpack LZ4 bodies. */
int ns_apply(struct ns *ns, const struct mmsb_rec *r, struct mmsb_buf *scratch);

/* Apply the bytes of a WRITE or TRUNCATE record to a standalone page buffer
 * (time-travel materialization).  *pb may be NULL (empty page); a new
 * buffer is device memory of dev (NULL: host), host memory charged to mem
 * (NULL: none).  -ENOSPC past the budget (nothing changed). */
int ns_bytes_apply(struct pbuf **pb, uint64_t *size, const struct mmsb_rec *r, struct mmsb_buf *scratch,
		   const struct mmsb_kern_ops *dev, struct mmsb_mem *mem);

/* Make n's buffer private and able to hold size bytes (zero-filled past the
 * old size), new memory charged to mem.  0, -ENOMEM or -ENOSPC. */
int ns_page_reserve(struct ns_node *n, uint64_t size, struct mmsb_mem *mem);
/* Make room in n's buffer for the bytes of r (a WRITE with its raw body, or
 * a TRUNCATE) and charge the memory they need, without changing what the
 * page holds: applying r afterwards cannot fail for want of memory budget.
 * 0, -ENOMEM, -ENOSPC (budget; the page unchanged). */
int ns_page_prepare(struct ns_node *n, const struct mmsb_rec *r, struct mmsb_mem *mem);
/* Would ns_page_prepare(n, r) change nothing (a private host buffer with
 * room, every chunk already data)?  Read by the page's only writer without
 * the namespace's lock. */
bool ns_page_ready(const struct ns_node *n, const struct mmsb_rec *r);
/* A host buffer of cap zero bytes, charged to no budget (NULL: -ENOMEM). */
struct pbuf *pbuf_new(uint64_t cap);
void pbuf_put(struct pbuf *pb);
/* One more reference to pb (NULL: none); returns pb. */
struct pbuf *pbuf_ref(struct pbuf *pb);
/* Copy bytes [off, off + n) of pb to host memory (device buffers: copy_out,
 * which waits for the kernels that wrote them; holes of mapped buffers are
 * served without touching them).  0 or -EIO. */
int pbuf_read(const struct pbuf *pb, uint64_t off, void *dst, size_t n);
/* Write src to bytes [off, off + n) of the host buffer pb (off + n <= cap);
 * chunks of zeros that fall in holes are skipped, so they stay holes.
 * 0 or -ENOSPC (budget; the bytes before the failing chunk are written). */
int pbuf_write(struct pbuf *pb, uint64_t off, const void *src, size_t n);
/* Bytes [off, off + n) of the host buffer pb were just written in place
 * (a checkpoint block decompressed into it): mark the chunks that hold a
 * nonzero byte and give whole zero chunks that were holes back to the
 * kernel.  0 or -ENOSPC. */
int pbuf_landed(struct pbuf *pb, uint64_t off, uint64_t n);
/* Host pointer to bytes [off, off + n) of pb: pb's own memory for host
 * buffers, else a copy in tmp (valid until tmp changes).  NULL on error,
 * with *rc set. */
const uint8_t *pbuf_view(const struct pbuf *pb, uint64_t off, size_t n, struct mmsb_buf *tmp, int *rc);
/* Can chunk c (PBUF_CHUNK bytes from c * PBUF_CHUNK) of pb hold a nonzero
 * byte?  Buffers without a chunk map: always; NULL: never. */
bool pbuf_chunk_data(const struct pbuf *pb, uint64_t c);
/* Memory pb holds data in: host buffers their charge, device buffers their
 * capacity, NULL 0. */
uint64_t pbuf_bytes(const struct pbuf *pb);
/* SEEK_DATA (data) / SEEK_HOLE (!data) over a page of size bytes held in pb
 * (NULL: all hole), from off: *out gets the offset.  Data is reported at
 * PBUF_CHUNK granularity for mapped buffers; other buffers are all data.
 * -ENXIO when off >= size, or no data at or after off. */
int pbuf_seek(const struct pbuf *pb, uint64_t size, uint64_t off, bool data, uint64_t *out);
/* Unlogged changes (orphans): write src at off, or set the size.  0,
 * -ENOMEM, -ENOSPC. */
int ns_page_write(struct ns_node *n, uint64_t off, const void *src, size_t len, struct mmsb_mem *mem);
int ns_page_truncate(struct ns_node *n, uint64_t size, struct mmsb_mem *mem);
/* Move a page's bytes to device memory of dev (NULL: host memory charged to
 * mem).  -ENOSPC, -ENOMEM, -EIO. */
int ns_page_place(struct ns_node *n, const struct mmsb_kern_ops *dev, struct mmsb_mem *mem);
/* Charge every uncharged host buffer of ns to mem, whatever its limit (a
 * namespace just loaded), and make mem the budget of ns's new buffers. */
void ns_mem_adopt(struct ns *ns, struct mmsb_mem *mem);
/* Where a user.mmsb.location value puts bytes: ns->gpu for "gpu", else host
 * (NULL).  A SETXATTR of it moves the page; where that fails (no room on
 * this GPU, a replay on another machine) the bytes stay in host memory and
 * the attribute is kept. */
const struct mmsb_kern_ops *ns_location_dev(const struct ns *ns, const void *val, size_t len);

/* Orphan handling (mmsb_ref / mmsb_unref). */
void ns_unref(struct ns *ns, struct ns_node *n);

int ns_readdir(const struct ns *ns, const struct ns_node *dir, uint64_t from, mmsb_dirent_fn fn, void *arg);
/* The readers of mmsb.h, on one namespace (the caller holds its lock; a
 * NULL node is -ENOENT).  Same returns as the mmsb_* functions. */
int ns_lookup_attr(const struct ns *ns, uint64_t parent, const char *name, struct mmsb_attr *out);
int ns_getattr(const struct ns *ns, uint64_t id, struct mmsb_attr *out);
ssize_t ns_read(const struct ns_node *n, uint64_t off, void *buf, size_t len);
/* SEEK_DATA (data) or SEEK_HOLE from off on a loaded page (pbuf_seek).
 * -ENOENT, -EISDIR, -EINVAL (not a page), -ENXIO. */
/* 0 if n is a page; -ENOENT (NULL), -EISDIR (a directory) or -EINVAL (any
 * other node type) otherwise: the refusals of every page-only operation. */
int ns_page_check(const struct ns_node *n);
int ns_seek(const struct ns_node *n, uint64_t off, bool data, uint64_t *out);
ssize_t ns_readlink(const struct ns_node *n, char *buf, size_t cap);
ssize_t ns_getxattr(const struct ns_node *n, const char *name, void *buf, size_t cap);
const struct ns_xattr *ns_xattr_find(const struct ns_node *n, const char *name, size_t len);
ssize_t ns_listxattr(const struct ns_node *n, char *buf, size_t cap);

/* Building a namespace from a checkpoint: allocate a node (id, name and
 * attributes filled by the caller), then insert it under its parent, which
 * must exist.  The root entry updates ns->root in place instead. */
struct ns_node *ns_node_new(uint64_t id, uint8_t type, const char *name, size_t name_len);
int ns_insert(struct ns *ns, struct ns_node *n);
/* Add one more name (parent, name) to node id, as a LINK record does.
 * -MMSB_ECORRUPT when that does not fit the tree, -ENOMEM. */
int ns_link_insert(struct ns *ns, uint64_t id, uint64_t parent, const char *name, size_t len);
int ns_xattr_set(struct ns_node *n, const char *name, size_t nlen, const void *value, size_t vlen);
void ns_node_free(struct ns_node *n);

/* Dependency edges.  user.mmsb.deps holds parent paths (relative to the
 * root, separated by newlines or commas); applying a SETXATTR of it resolves
 * them, in that state, to node ids: the edges then follow the parents
 * through renames.  Paths that do not resolve to pages are skipped (the
 * transaction layer refuses them before they are logged). */
#define MMSB_XATTR_DEPS "user.mmsb.deps"
#define MMSB_XATTR_RECOMPUTE "user.mmsb.recompute"
#define MMSB_XATTR_ERROR "user.mmsb.error"
#define MMSB_XATTR_LOCATION "user.mmsb.location"
#define MMSB_DEPS_MAX 4096
/* Where ns_deps_resolve stopped: the offending path, as bytes of the value. */
struct ns_deps_bad {
	size_t idx;	   /* index of the path among the value's paths */
	size_t off, len;   /* its bytes in the value */
	uint64_t deny;	   /* -EACCES: the node that refused (a directory or the page) */
};
/* Resolve a deps value: ids into out (cap entries).  With cred, resolve as
 * cred's path walk would (search on each directory before looking in it,
 * read on the page: -EACCES).  Returns the count, or -ENOENT (a path names
 * nothing), -ENOTDIR (a path goes through a non-directory or ends in '/'
 * after one), -EISDIR (a directory), -EINVAL (a symlink, empty, too many),
 * with *bad (may be NULL) saying which path. */
int ns_deps_resolve(const struct ns *ns, const char *val, size_t len, uint64_t *out, size_t cap,
		    struct ns_deps_bad *bad, const struct mmsb_cred *cred);
/* Set n's parents (and the parents' kids lists). */
int ns_deps_set(struct ns *ns, struct ns_node *n, const uint64_t *ids, size_t count);
/* Rebuild every kids list from the deps lists (after a checkpoint load). */
int ns_kids_rebuild(struct ns *ns);

/* Call fn on every node in tree order (parents before children, children in
 * directory order); link entries are skipped (see ns_walk_links).  fn
 * returns nonzero to stop; that value is returned. */
int ns_walk(const struct ns *ns, int (*fn)(void *arg, const struct ns_node *n), void *arg);
/* Call fn on every link entry (nodes with several names), in no particular
 * order; same stop rule. */
int ns_walk_links(const struct ns *ns, int (*fn)(void *arg, const struct ns_node *l), void *arg);

#endif
