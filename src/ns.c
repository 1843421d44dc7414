/* ns.c - the namespace in memory, and the meaning of every record.
 *
 * Two hash tables index the nodes: by id, and by (parent id, name).  Both use
 * open addressing with linear probing and backward-shift deletion, so there
 * are no tombstones.  A directory keeps its children in an array sorted by a
 * per-directory sequence number, which is the readdir cookie: removal leaves
 * a hole (compacted when holes outnumber live entries, which keeps the
 * numbers), so a listing in progress never skips an entry that stays.
 *
 * ns_apply() is the only place where a record changes a namespace.  It
 * validates first and mutates after, so an error leaves the tree unchanged.
 * What this file does not do: logging, locking, time travel (see store.c,
 * snap.c).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "delta.h"
#include "err.h"
#include "ns.h"
#include "perm.h"
#include "sum.h"

/* ---- page buffers --------------------------------------------------------
 * Host buffers are malloc'd while small (grown with realloc; the bytes right
 * after the header) and get an anonymous mapping of their own from
 * PBUF_MAP_MIN bytes (grown with mremap).  A mapped buffer's bytes start one
 * page after its header (PBUF_MAP_HDR), so that every chunk of PBUF_CHUNK
 * bytes is page-aligned and can be handed back to the kernel whole.
 *
 * HOLES.  The mapping is MAP_NORESERVE and the kernel backs it lazily: a
 * page truncated to 16 GiB costs 16 GiB of address space and no memory.
 * Its chunk map (dmap) keeps that so: bit i is set when chunk i may hold a
 * nonzero byte; a clear bit means the chunk is zero and was never touched
 * (or was handed back with MADV_DONTNEED).  Everything that reads or copies
 * a mapped buffer goes through the map: pbuf_read() serves holes with
 * memset, a copy-on-write clone (pbuf_copy) copies data chunks only, a
 * checkpoint stores hole blocks for runs of clear chunks (ckpt.c), loading
 * one writes only chunks with a nonzero byte (pbuf_write), and truncating
 * down drops whole chunks.  The map also answers SEEK_DATA / SEEK_HOLE
 * (ns_seek) and st_blocks (ns_attr).  A chunk written with zeros stays set:
 * the map is conservative, never wrong.
 *
 * MEMORY BUDGET.  A buffer charges its memory to a budget (struct mmsb_mem,
 * one per store, NULL for time-travel views): a malloc'd buffer its
 * capacity, a mapped one PBUF_CHUNK per set chunk.  A charge past the
 * budget's limit fails with -ENOSPC before anything changes.  pb->charged
 * holds the buffer's figure even while it has no budget (a page loaded from
 * a checkpoint before the store adopts it: ns_mem_adopt).
 *
 * LAZY COPIES.  The first change to a mapped buffer that a clone shares
 * (a checkpoint, a time-travel view of the head) does not copy it: the
 * writer gets a fresh mapping whose data chunks are "pending" (pend), still
 * the source's bytes.  A change copies in only the pending chunks it
 * touches, and none it overwrites whole; reads take pending chunks from the
 * source.  Once the writer holds the source's last reference (the clone is
 * gone) the remaining pending chunks are moved in with mremap, no copy
 * (pbuf_settle).  A buffer a clone is about to share is settled first
 * (pbuf_get): every other reader sees plain bytes at data.  Pending state
 * changes under pb->mu, which readers of a buffer with a source take too.
 * So a writer never copies a whole page after a checkpoint: it copies at
 * most what it changes, in 64 KiB chunks.
 *
 * Device buffers (GPU pages) hold page memory of a kernel table (kern.h:
 * managed memory with the GPU as preferred location); every access to them
 * goes through that table: copy_out/copy_in for the CPU, batches for
 * deltas.  They have no chunk map (all data) and charge nothing: they live
 * in GPU memory.  Either way data[size..cap) is zero. */

#define PBUF_MAP_MIN (1u << 20) /* host buffers this large get their own mapping */
#define PBUF_MAP_ALIGN 4096u	/* mapping lengths are multiples of this */
#define PBUF_MAP_HDR 4096u	/* mapped buffers: bytes start this far in (page-aligned chunks) */
_Static_assert(sizeof(struct pbuf) <= PBUF_MAP_HDR, "a pbuf header fits in its first page");
_Static_assert(PBUF_CHUNK % PBUF_MAP_ALIGN == 0, "chunks are whole pages");

int mmsb_mem_charge(struct mmsb_mem *m, uint64_t n)
{
	uint64_t old;

	if (!m || !n)
		return 0;
	old = atomic_fetch_add_explicit(&m->used, n, memory_order_relaxed);
	if (old + n < old || old + n > atomic_load_explicit(&m->limit, memory_order_relaxed)) {
		atomic_fetch_sub_explicit(&m->used, n, memory_order_relaxed);
		return -ENOSPC;
	}
	return 0;
}

void mmsb_mem_uncharge(struct mmsb_mem *m, uint64_t n)
{
	if (m && n)
		atomic_fetch_sub_explicit(&m->used, n, memory_order_relaxed);
}

static int pbuf_charge(struct pbuf *pb, uint64_t n)
{
	int rc = mmsb_mem_charge(pb->mem, n);

	if (rc == 0)
		pb->charged += n;
	return rc;
}

static void pbuf_uncharge(struct pbuf *pb, uint64_t n)
{
	assert(n <= pb->charged);
	mmsb_mem_uncharge(pb->mem, n);
	pb->charged -= n;
}

/* Can pb hold size bytes as it is?  (pbuf_reserve resizes it otherwise:
 * to grow, or to give back a buffer four times too large.) */
static bool pbuf_fits(const struct pbuf *pb, uint64_t size)
{
	return pb->cap >= size && pb->cap / 4 <= size + 4096;
}

/* Does every chunk of pb count as data already, its own (no chunk map, or
 * all bits set and no chunk still pending from a lazy copy)?  Marking a
 * delta then has nothing to do. */
static bool pbuf_all_data(const struct pbuf *pb)
{
	return !pb->dmap ||
	       (pb->n_data == pb->n_chunks && !atomic_load_explicit(&((struct pbuf *)pb)->src, memory_order_acquire));
}

static bool pbuf_bit(const struct pbuf *pb, uint64_t c)
{
	return pb->dmap[c / 64] >> (c % 64) & 1;
}

static bool pbuf_pend(const struct pbuf *pb, uint64_t c)
{
	return c < pb->n_pchunks && (pb->pend[c / 64] >> (c % 64) & 1);
}

/* One past the last byte of pending chunk c that the source provides. */
static uint64_t pend_end(const struct pbuf *pb, uint64_t c)
{
	uint64_t e = (c + 1) * PBUF_CHUNK;

	return e < pb->src_keep ? e : pb->src_keep;
}

/* No chunk pending any more: forget the source (pb->mu held). */
static void pend_drop(struct pbuf *pb)
{
	struct pbuf *src = atomic_load_explicit(&pb->src, memory_order_relaxed);

	free(pb->pend);
	pb->pend = NULL;
	pb->n_pend = 0;
	pb->n_pchunks = 0;
	atomic_store_explicit(&pb->src, NULL, memory_order_release);
	pbuf_put(src);
}

static void pend_clear(struct pbuf *pb, uint64_t c)
{
	pb->pend[c / 64] &= ~(1ull << (c % 64));
	if (--pb->n_pend == 0)
		pend_drop(pb);
}

/* Make pending chunk c pb's own: copy its bytes in unless whole (the
 * caller overwrites all the bytes the source provides). */
static void pend_own(struct pbuf *pb, uint64_t c, bool whole)
{
	uint64_t at = c * PBUF_CHUNK;

	if (!whole)
		memcpy(pb->data + at, atomic_load_explicit(&pb->src, memory_order_relaxed)->data + at,
		       (size_t)(pend_end(pb, c) - at));
	pend_clear(pb, c);
}

/* Before bytes [off, off + n) of pb change: the pending chunks there become
 * pb's own (pb->mu held, or no source). */
static void pend_range(struct pbuf *pb, uint64_t off, uint64_t n)
{
	uint64_t c;

	for (c = off / PBUF_CHUNK; n && pb->n_pend && c <= (off + n - 1) / PBUF_CHUNK; c++)
		if (pbuf_pend(pb, c))
			pend_own(pb, c, off <= c * PBUF_CHUNK && off + n >= pend_end(pb, c));
}

/* Move the page-aligned bytes [from, from + len) to the fresh anonymous
 * memory at to: with mremap (no copy) where the range lies in one mapping,
 * split in halves at chunk boundaries where it does not, copied where even
 * one chunk cannot move. */
static void map_move(uint8_t *from, uint8_t *to, uint64_t len)
{
	uint64_t half;

	if (mremap(from, (size_t)len, (size_t)len, MREMAP_MAYMOVE | MREMAP_FIXED, to) != MAP_FAILED)
		return;
	if (len <= PBUF_CHUNK) {
		memcpy(to, from, (size_t)len);
		return;
	}
	half = (len / 2 + PBUF_CHUNK - 1) / PBUF_CHUNK * PBUF_CHUNK;
	map_move(from, to, half);
	map_move(from + half, to + half, len - half);
}

/* Make every pending chunk of pb its own (pb->mu held): moved from the
 * source when pb holds its last reference, else copied. */
static void pbuf_settle(struct pbuf *pb)
{
	struct pbuf *src = atomic_load_explicit(&pb->src, memory_order_relaxed);
	bool move = src && atomic_load_explicit(&src->refs, memory_order_acquire) == 1;
	uint64_t c, c1;

	for (c = 0; pb->n_pend && c < pb->n_pchunks; c = c1) {
		c1 = c + 1;
		if (!pbuf_pend(pb, c))
			continue;
		if (!move || (c + 1) * PBUF_CHUNK > pb->src_keep) {
			pend_own(pb, c, false);
			continue;
		}
		while (c1 < pb->n_pchunks && pbuf_pend(pb, c1) && (c1 + 1) * PBUF_CHUNK <= pb->src_keep)
			c1++;
		map_move(src->data + c * PBUF_CHUNK, pb->data + c * PBUF_CHUNK, (c1 - c) * PBUF_CHUNK);
		while (c < c1 && pb->n_pend)
			pend_clear(pb, c++);
	}
}

/* Is p[0..n) all zero? */
static bool bytes_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Length of the mapping for cap bytes, 0 if it would overflow. */
static size_t pbuf_map_len(uint64_t cap)
{
	if (cap > SIZE_MAX - PBUF_MAP_HDR - PBUF_MAP_ALIGN)
		return 0;
	return ((size_t)cap + PBUF_MAP_HDR + PBUF_MAP_ALIGN - 1) & ~(size_t)(PBUF_MAP_ALIGN - 1);
}

static uint64_t chunks_for(uint64_t cap)
{
	return (cap + PBUF_CHUNK - 1) / PBUF_CHUNK;
}

/* Resize the chunk map of a mapped buffer to cover cap bytes: new chunks
 * clear, dropped ones uncharged.  0 or -ENOMEM (map unchanged). */
static int pbuf_map_resize(struct pbuf *pb, uint64_t cap)
{
	uint64_t nc = chunks_for(cap), c, ow = (pb->n_chunks + 63) / 64, nw = (nc + 63) / 64;
	uint64_t *m;

	for (c = nc; c < pb->n_chunks; c++)
		if (pbuf_bit(pb, c)) {
			pb->dmap[c / 64] &= ~(1ull << (c % 64));
			pb->n_data--;
			pbuf_uncharge(pb, PBUF_CHUNK);
		}
	if (nw != ow) {
		m = realloc(pb->dmap, (nw ? nw : 1) * sizeof(*m));
		if (!m && nw > ow)
			return -ENOMEM;
		if (m)
			pb->dmap = m;
		if (nw > ow)
			memset(pb->dmap + ow, 0, (nw - ow) * sizeof(*m));
	}
	if (nc > pb->n_chunks && pb->n_chunks % 64) /* clear the tail bits of the old last word */
		pb->dmap[pb->n_chunks / 64] &= (1ull << (pb->n_chunks % 64)) - 1;
	pb->n_chunks = nc;
	return 0;
}

/* A host buffer of cap zero bytes charged to mem.  -ENOMEM, -ENOSPC. */
static int pbuf_alloc(uint64_t cap, struct mmsb_mem *mem, struct pbuf **out)
{
	struct pbuf *pb;
	size_t len;

	if (cap >= PBUF_MAP_MIN) {
		uint64_t nw;

		len = pbuf_map_len(cap);
		pb = len ? mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
				0)
			 : MAP_FAILED;
		if (pb == MAP_FAILED)
			return -ENOMEM;
		pb->cap = len - PBUF_MAP_HDR;
		pb->n_chunks = chunks_for(pb->cap);
		nw = (pb->n_chunks + 63) / 64;
		pb->dmap = calloc(nw, sizeof(*pb->dmap));
		if (!pb->dmap) {
			munmap(pb, len);
			return -ENOMEM;
		}
		pb->map_len = len;
		pb->data = (uint8_t *)pb + PBUF_MAP_HDR;
		pthread_mutex_init(&pb->mu, NULL);
	} else {
		int rc = mmsb_mem_charge(mem, cap);

		if (rc < 0)
			return rc;
		pb = calloc(1, sizeof(*pb) + cap);
		if (!pb) {
			mmsb_mem_uncharge(mem, cap);
			return -ENOMEM;
		}
		pb->cap = cap;
		pb->charged = cap;
		pb->data = pb->bytes;
	}
	pb->mem = mem;
	atomic_init(&pb->refs, 1);
	*out = pb;
	return 0;
}

struct pbuf *pbuf_new(uint64_t cap)
{
	struct pbuf *pb = NULL;

	return pbuf_alloc(cap, NULL, &pb) == 0 ? pb : NULL;
}

static void pbuf_host_free(struct pbuf *pb)
{
	mmsb_mem_uncharge(pb->mem, pb->charged);
	if (pb->map_len) {
		if (pb->n_pend)
			pend_drop(pb);
		pthread_mutex_destroy(&pb->mu);
		free(pb->dmap);
		munmap(pb, pb->map_len);
	} else {
		free(pb);
	}
}

/* Mark the chunks of a mapped buffer that [off, off + len) touches as data,
 * charging the new ones first: -ENOSPC marks nothing.  Others: a no-op. */
static int pbuf_mark(struct pbuf *pb, uint64_t off, uint64_t len)
{
	uint64_t c, first, last, fresh = 0;
	int rc;

	if (!pb->dmap || !len)
		return 0;
	first = off / PBUF_CHUNK;
	last = (off + len - 1) / PBUF_CHUNK;
	assert(last < pb->n_chunks);
	for (c = first; c <= last; c++)
		fresh += !pbuf_bit(pb, c);
	rc = pbuf_charge(pb, fresh * PBUF_CHUNK);
	if (rc < 0)
		return rc;
	for (c = first; c <= last; c++)
		pb->dmap[c / 64] |= 1ull << (c % 64);
	pb->n_data += fresh;
	return 0;
}

int pbuf_write(struct pbuf *pb, uint64_t off, const void *src, size_t n)
{
	const uint8_t *s = src;
	bool lazy;
	int rc = 0;

	assert(!pb->k && off + n <= pb->cap);
	if (!pb->dmap) {
		memcpy(pb->data + off, s, n);
		return 0;
	}
	lazy = atomic_load_explicit(&pb->src, memory_order_acquire) != NULL;
	if (lazy)
		pthread_mutex_lock(&pb->mu);
	while (n && rc == 0) { /* chunk by chunk: zeros into a hole stay a hole */
		uint64_t c = off / PBUF_CHUNK;
		size_t piece = (size_t)((c + 1) * PBUF_CHUNK - off);

		if (piece > n)
			piece = n;
		if (pbuf_bit(pb, c) || !bytes_zero(s, piece)) {
			rc = pbuf_mark(pb, off, piece);
			if (rc == 0 && pb->n_pend && pbuf_pend(pb, c))
				pend_own(pb, c, off == c * PBUF_CHUNK && off + piece >= pend_end(pb, c));
			if (rc == 0)
				memcpy(pb->data + off, s, piece);
		}
		off += piece;
		s += piece;
		n -= piece;
	}
	if (lazy)
		pthread_mutex_unlock(&pb->mu);
	return rc;
}

int pbuf_landed(struct pbuf *pb, uint64_t off, uint64_t n)
{
	int rc = 0;

	assert(!pb->k && off + n <= pb->cap);
	while (pb->dmap && n && rc == 0) {
		uint64_t c = off / PBUF_CHUNK, piece = (c + 1) * PBUF_CHUNK - off;

		if (piece > n)
			piece = n;
		if (!bytes_zero(pb->data + off, (size_t)piece))
			rc = pbuf_mark(pb, off, piece);
		else if (!pbuf_bit(pb, c) && off % PBUF_CHUNK == 0 && (piece == PBUF_CHUNK || off + piece == pb->cap))
			madvise(pb->data + off, (size_t)piece, MADV_DONTNEED); /* zeros: back to a hole */
		off += piece;
		n -= piece;
	}
	return rc;
}

/* Make a private mapped buffer's bytes [from, to) zero, handing whole chunks
 * back to the kernel (used when a page shrinks). */
static void pbuf_zero(struct pbuf *pb, uint64_t from, uint64_t to)
{
	bool lazy = atomic_load_explicit(&pb->src, memory_order_acquire) != NULL;

	if (lazy)
		pthread_mutex_lock(&pb->mu);
	while (from < to) {
		uint64_t c = from / PBUF_CHUNK, cstart = c * PBUF_CHUNK, cend = cstart + PBUF_CHUNK;
		uint64_t end = cend < to ? cend : to;
		bool whole = from == cstart && (end == cend || end == pb->cap);

		if (pb->n_pend && pbuf_pend(pb, c))
			pend_own(pb, c, whole); /* dropped whole: nothing to copy */
		if (!pbuf_bit(pb, c)) {
			/* a hole: nothing to do */
		} else if (whole) {
			madvise(pb->data + cstart, (size_t)(end - cstart), MADV_DONTNEED);
			pb->dmap[c / 64] &= ~(1ull << (c % 64));
			pb->n_data--;
			pbuf_uncharge(pb, PBUF_CHUNK);
		} else {
			memset(pb->data + from, 0, (size_t)(end - from));
		}
		from = end;
	}
	if (lazy)
		pthread_mutex_unlock(&pb->mu);
}

/* Grow a mapped buffer whose mapping mremap cannot move whole (pbuf_settle
 * moved pieces of another mapping in): a new mapping of len bytes, the
 * header copied, the data chunks moved piece by piece.  MAP_FAILED if there
 * is no memory for it (old unchanged). */
static struct pbuf *pbuf_regrow(struct pbuf *old, size_t len)
{
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint64_t c, c1, end;

	if (m == MAP_FAILED)
		return MAP_FAILED;
	memcpy(m, old, sizeof(*old));
	for (c = 0; c < old->n_chunks; c = c1) {
		c1 = c + 1;
		if (!pbuf_bit(old, c) || (old->n_pend && pbuf_pend(old, c)))
			continue; /* a hole, or pending: nothing of old's here */
		while (c1 < old->n_chunks && pbuf_bit(old, c1) && !(old->n_pend && pbuf_pend(old, c1)))
			c1++;
		end = c1 * PBUF_CHUNK < old->cap ? c1 * PBUF_CHUNK : old->cap;
		map_move(old->data + c * PBUF_CHUNK, m + PBUF_MAP_HDR + c * PBUF_CHUNK, end - c * PBUF_CHUNK);
	}
	munmap(old, old->map_len);
	return (struct pbuf *)m;
}

/* Give the private host buffer *pb room for cap bytes, keeping its first
 * keep bytes (the rest of it is zero already).  -ENOMEM or -ENOSPC with
 * *pb unchanged. */
static int pbuf_host_resize(struct pbuf **pb, uint64_t keep, uint64_t cap)
{
	struct pbuf *old = *pb, *nb;
	uint64_t old_cap = old->cap;
	int rc;

	if (old->map_len && cap >= PBUF_MAP_MIN) {
		size_t len = pbuf_map_len(cap);

		if (!len)
			return -ENOMEM;
		if (len < old->map_len) /* shrinking: hand back what is cut off first, so
					  * that a failed mremap leaves it zero and unmarked */
			pbuf_zero(old, len - PBUF_MAP_HDR, old->cap);
		nb = mremap(old, old->map_len, len, MREMAP_MAYMOVE);
		if (nb == MAP_FAILED && len > old->map_len)
			nb = pbuf_regrow(old, len);
		if (nb == MAP_FAILED)
			return -ENOMEM;
		nb->map_len = len;
		nb->data = (uint8_t *)nb + PBUF_MAP_HDR;
		*pb = nb;
		rc = pbuf_map_resize(nb, len - PBUF_MAP_HDR); /* -ENOMEM: the mapping is larger than cap, fine */
		if (rc == 0)
			nb->cap = len - PBUF_MAP_HDR;
		return rc;
	}
	if (!old->map_len && cap < PBUF_MAP_MIN) {
		struct mmsb_mem *mem = old->mem; /* old is not touched once realloc ran */

		if (cap > old_cap && (rc = mmsb_mem_charge(mem, cap - old_cap)) < 0)
			return rc;
		nb = realloc(old, sizeof(*old) + cap);
		if (!nb) {
			if (cap > old_cap)
				mmsb_mem_uncharge(mem, cap - old_cap);
			return -ENOMEM;
		}
		if (cap > old_cap) {
			nb->charged += cap - old_cap;
			memset(nb->bytes + old_cap, 0, cap - old_cap);
		} else {
			pbuf_uncharge(nb, old_cap - cap);
		}
		nb->cap = cap;
		nb->data = nb->bytes;
		*pb = nb;
		return 0;
	}
	rc = pbuf_alloc(cap, old->mem, &nb); /* crossing PBUF_MAP_MIN, either way */
	if (rc < 0)
		return rc;
	if (keep > nb->cap)
		keep = nb->cap;
	if (nb->dmap)
		rc = pbuf_write(nb, 0, old->data, (size_t)keep);
	else
		rc = pbuf_read(old, 0, nb->data, (size_t)keep);
	if (rc < 0) {
		pbuf_host_free(nb);
		return rc;
	}
	pbuf_host_free(old);
	*pb = nb;
	return 0;
}

/* A device buffer of cap zeroed bytes.  -ENOMEM, -ENOSPC (GPU full). */
static int pbuf_new_dev(const struct mmsb_kern_ops *k, uint64_t cap, struct pbuf **out)
{
	struct pbuf *pb = calloc(1, sizeof(*pb));
	void *mem = NULL;
	int rc;

	if (!pb)
		return -ENOMEM;
	rc = cap > SIZE_MAX ? -ENOMEM : k->page_alloc((size_t)cap, &mem);
	if (rc < 0) {
		free(pb);
		return rc;
	}
	atomic_init(&pb->refs, 1);
	pb->cap = cap;
	pb->k = k;
	pb->data = mem;
	*out = pb;
	return 0;
}

void pbuf_put(struct pbuf *pb)
{
	if (pb && atomic_fetch_sub_explicit(&pb->refs, 1, memory_order_acq_rel) == 1) {
		if (pb->k) {
			pb->k->page_free(pb->data);
			free(pb);
		} else {
			pbuf_host_free(pb);
		}
	}
}

/* A new reference to pb.  A lazy copy is settled first: what is shared
 * holds all its bytes at data (see "lazy copies" above). */
static struct pbuf *pbuf_get(struct pbuf *pb)
{
	if (pb && atomic_load_explicit(&pb->src, memory_order_acquire)) {
		pthread_mutex_lock(&pb->mu);
		pbuf_settle(pb);
		pthread_mutex_unlock(&pb->mu);
	}
	if (pb)
		atomic_fetch_add_explicit(&pb->refs, 1, memory_order_relaxed);
	return pb;
}

/* A lazy copy whose source nobody else holds: move the rest in now. */
static void pbuf_try_settle(struct pbuf *pb)
{
	struct pbuf *src = atomic_load_explicit(&pb->src, memory_order_acquire);

	if (src && atomic_load_explicit(&src->refs, memory_order_acquire) == 1) {
		pthread_mutex_lock(&pb->mu);
		pbuf_settle(pb);
		pthread_mutex_unlock(&pb->mu);
	}
}

struct pbuf *pbuf_ref(struct pbuf *pb)
{
	return pbuf_get(pb);
}

int pbuf_read(const struct pbuf *pb, uint64_t off, void *dst, size_t n)
{
	uint8_t *d = dst;
	bool lazy;

	if (!n)
		return 0;
	if (pb->k) /* waits for the deltas queued for this page only */
		return pb->k->read(dst, pb->data, off, n);
	if (!pb->dmap) {
		memcpy(dst, pb->data + off, n);
		return 0;
	}
	lazy = atomic_load_explicit(&pb->src, memory_order_acquire) != NULL;
	if (lazy)
		pthread_mutex_lock(&((struct pbuf *)pb)->mu);
	while (n) { /* holes from memset: reading never faults them in */
		uint64_t c = off / PBUF_CHUNK;
		size_t piece = (size_t)((c + 1) * PBUF_CHUNK - off), from = 0;

		if (piece > n)
			piece = n;
		if (pb->n_pend && pbuf_pend(pb, c)) { /* the source's bytes, zero past src_keep */
			if (off < pb->src_keep)
				from = (size_t)(pb->src_keep - off < piece ? pb->src_keep - off : piece);
			memcpy(d, atomic_load_explicit(&pb->src, memory_order_relaxed)->data + off, from);
			memset(d + from, 0, piece - from);
		} else if (c < pb->n_chunks && pbuf_bit(pb, c)) {
			memcpy(d, pb->data + off, piece);
		} else {
			memset(d, 0, piece);
		}
		off += piece;
		d += piece;
		n -= piece;
	}
	if (lazy)
		pthread_mutex_unlock(&((struct pbuf *)pb)->mu);
	return 0;
}

/* Does [off, off + n) of pb hold a pending chunk? */
static bool pbuf_pending(const struct pbuf *pb, uint64_t off, size_t n)
{
	bool any = false;
	uint64_t c;

	if (!n || !atomic_load_explicit(&pb->src, memory_order_acquire))
		return false;
	pthread_mutex_lock(&((struct pbuf *)pb)->mu);
	for (c = off / PBUF_CHUNK; !any && pb->n_pend && c <= (off + n - 1) / PBUF_CHUNK; c++)
		any = pbuf_pend(pb, c);
	pthread_mutex_unlock(&((struct pbuf *)pb)->mu);
	return any;
}

const uint8_t *pbuf_view(const struct pbuf *pb, uint64_t off, size_t n, struct mmsb_buf *tmp, int *rc)
{
	*rc = 0;
	if (!pb->k && !pbuf_pending(pb, off, n))
		return pb->data + off;
	tmp->len = 0;
	*rc = mmsb_buf_reserve(tmp, n ? n : 1);
	if (*rc == 0)
		*rc = pbuf_read(pb, off, tmp->p, n);
	return *rc == 0 ? tmp->p : NULL;
}

bool pbuf_chunk_data(const struct pbuf *pb, uint64_t c)
{
	return pb && (!pb->dmap || (c < pb->n_chunks && pbuf_bit(pb, c)));
}

uint64_t pbuf_bytes(const struct pbuf *pb)
{
	return !pb ? 0 : pb->k ? pb->cap : pb->charged;
}

int pbuf_seek(const struct pbuf *pb, uint64_t size, uint64_t off, bool data, uint64_t *out)
{
	uint64_t c;

	if (off >= size)
		return -ENXIO;
	if (!pb || !pb->dmap) { /* no map: all data (an empty buffer: all hole) */
		if (data && !pb)
			return -ENXIO;
		*out = data == (pb != NULL) ? off : size;
		return 0;
	}
	for (c = off / PBUF_CHUNK; c * PBUF_CHUNK < size; c++) {
		bool set = c < pb->n_chunks && pbuf_bit(pb, c);

		if (c % 64 == 0 && c + 64 <= pb->n_chunks && pb->dmap[c / 64] == (data ? 0 : UINT64_MAX)) {
			c += 63; /* 64 chunks without what we look for: 4 MiB at a time */
			continue;
		}

		if (set == data) {
			uint64_t at = c * PBUF_CHUNK > off ? c * PBUF_CHUNK : off;

			*out = at < size ? at : size;
			return 0;
		}
	}
	if (data)
		return -ENXIO;
	*out = size; /* the implicit hole at the end */
	return 0;
}

/* A new private buffer like old (same memory kind, or dev when there is
 * none) of cap bytes holding old's first keep bytes, charged to mem (host
 * buffers).  A copy of a mapped buffer copies its data chunks only. */
static int pbuf_copy(const struct pbuf *old, const struct mmsb_kern_ops *dev, struct mmsb_mem *mem, uint64_t keep,
		     uint64_t cap, struct pbuf **out)
{
	const struct mmsb_kern_ops *k = old ? old->k : dev;
	struct pbuf *nb;
	uint64_t c;
	int rc = 0;

	if (k)
		rc = pbuf_new_dev(k, cap, &nb);
	else
		rc = pbuf_alloc(cap, mem, &nb);
	if (rc < 0)
		return rc;
	if (keep > cap)
		keep = cap;
	if (old && keep) {
		if (k)
			rc = k->copy(nb->data, old->data, keep);
		else if (!nb->dmap)
			rc = pbuf_read(old, 0, nb->data, (size_t)keep);
		else if (!old->dmap)
			rc = pbuf_write(nb, 0, old->data, (size_t)keep);
		for (c = 0; !k && nb->dmap && old->dmap && rc == 0 && c * PBUF_CHUNK < keep; c++) {
			uint64_t at = c * PBUF_CHUNK, len = keep - at < PBUF_CHUNK ? keep - at : PBUF_CHUNK;

			if (c < old->n_chunks && pbuf_bit(old, c))
				rc = pbuf_write(nb, at, old->data + at, (size_t)len);
		}
	}
	if (rc < 0) {
		pbuf_put(nb);
		return rc;
	}
	*out = nb;
	return 0;
}

/* A lazy copy of the shared mapped buffer old: a new mapped buffer of cap
 * (>= PBUF_MAP_MIN) bytes charged to mem, whose data chunks among old's
 * first keep bytes are pending (old's, referenced), copied in by the first
 * change to each.  -ENOMEM, -ENOSPC. */
static int pbuf_lazy(struct pbuf *old, struct mmsb_mem *mem, uint64_t keep, uint64_t cap, struct pbuf **out)
{
	struct pbuf *nb;
	uint64_t c, nc, fresh = 0;
	int rc = pbuf_alloc(cap, mem, &nb);

	if (rc < 0)
		return rc;
	if (keep > cap)
		keep = cap;
	if (keep > old->cap)
		keep = old->cap;
	nc = chunks_for(keep);
	for (c = 0; c < nc; c++)
		fresh += c < old->n_chunks && pbuf_bit(old, c);
	rc = pbuf_charge(nb, fresh * PBUF_CHUNK);
	if (rc == 0 && fresh && !(nb->pend = calloc((nc + 63) / 64, sizeof(*nb->pend))))
		rc = -ENOMEM;
	if (rc < 0) {
		pbuf_put(nb);
		return rc;
	}
	for (c = 0; c < nc && fresh; c++)
		if (c < old->n_chunks && pbuf_bit(old, c)) {
			nb->dmap[c / 64] |= 1ull << (c % 64);
			nb->pend[c / 64] |= 1ull << (c % 64);
		}
	if (fresh) {
		nb->n_data = nb->n_pend = fresh;
		nb->n_pchunks = nc;
		nb->src_keep = keep;
		atomic_store_explicit(&nb->src, pbuf_get(old), memory_order_release);
	}
	*out = nb;
	return 0;
}

/* Make *pb private with room for size bytes; old bytes [0, keep) preserved,
 * everything past keep zero.  A new buffer is device memory of dev when
 * there was none (a GPU page growing from empty), else host memory charged
 * to mem.  -ENOMEM, -ENOSPC (budget or GPU full), -EIO; *pb unchanged. */
static int pbuf_reserve(struct pbuf **pb, uint64_t keep, uint64_t size, const struct mmsb_kern_ops *dev,
			struct mmsb_mem *mem)
{
	struct pbuf *old = *pb, *nb;
	uint64_t cap;
	int rc;

	if (old && atomic_load_explicit(&old->refs, memory_order_acquire) == 1) {
		pbuf_try_settle(old);
		if (pbuf_fits(old, size))
			return 0;
		cap = size > old->cap ? size + size / 2 : size;
		if (cap < size || cap > SIZE_MAX - PBUF_MAP_HDR - PBUF_MAP_ALIGN)
			return -ENOMEM;
		if (!old->k) {
			rc = pbuf_host_resize(pb, keep, cap);
			return rc < 0 && size <= (*pb)->cap ? 0 : rc; /* a failed shrink is no failure */
		}
	} else {
		cap = size;
	}
	if (old && !old->k && old->dmap && cap >= PBUF_MAP_MIN && atomic_load(&old->refs) > 1)
		rc = pbuf_lazy(old, mem, keep, cap, &nb); /* no copy now: chunk by chunk later */
	else
		rc = pbuf_copy(old, dev, mem, keep, cap, &nb);
	if (rc < 0)
		return rc;
	pbuf_put(old);
	*pb = nb;
	return 0;
}

int ns_page_reserve(struct ns_node *n, uint64_t size, struct mmsb_mem *mem)
{
	return pbuf_reserve(&n->data, n->size, size, n->dev, mem);
}

/* Set the size of a private buffer: zero what is cut off and still inside
 * it (pbuf_reserve may have just made it exactly nsize bytes). */
static int pbuf_resize(struct pbuf *pb, uint64_t *size, uint64_t nsize)
{
	uint64_t end = pb && *size < pb->cap ? *size : pb ? pb->cap : 0;
	int rc = 0;

	if (pb && nsize < end) {
		if (pb->k)
			rc = pb->k->zero(pb->data + nsize, end - nsize);
		else if (pb->dmap)
			pbuf_zero(pb, nsize, end);
		else
			memset(pb->data + nsize, 0, end - nsize);
	}
	if (rc == 0)
		*size = nsize;
	return rc;
}

int ns_page_write(struct ns_node *n, uint64_t off, const void *src, size_t len, struct mmsb_mem *mem)
{
	uint64_t nsize = off + len > n->size ? off + len : n->size;
	int rc = ns_page_reserve(n, nsize, mem);

	if (rc == 0 && len)
		rc = n->data->k ? n->data->k->copy_in(n->data->data + off, src, len) : pbuf_write(n->data, off, src, len);
	if (rc == 0)
		n->size = nsize;
	return rc;
}

int ns_page_truncate(struct ns_node *n, uint64_t size, struct mmsb_mem *mem)
{
	int rc = ns_page_reserve(n, size, mem);

	return rc == 0 ? pbuf_resize(n->data, &n->size, size) : rc;
}

int ns_page_place(struct ns_node *n, const struct mmsb_kern_ops *dev, struct mmsb_mem *mem)
{
	struct pbuf *nb = NULL;
	struct mmsb_buf tmp = {0};
	uint64_t off;
	int rc = 0;

	if (n->type != MMSB_T_PAGE || (n->data ? n->data->k : n->dev) == dev) {
		n->dev = dev;
		return 0;
	}
	if (n->size) {
		if (dev) {
			rc = pbuf_new_dev(dev, n->size, &nb);
			if (rc == 0)
				rc = n->data->k ? dev->copy(nb->data, n->data->data, n->size)
						: dev->copy_in(nb->data, n->data->data, n->size);
		} else {
			rc = pbuf_alloc(n->size, mem, &nb);
			if (rc == 0)
				rc = mmsb_buf_reserve(&tmp, PBUF_CHUNK);
			for (off = 0; rc == 0 && off < n->size; off += PBUF_CHUNK) { /* through a window: holes stay holes */
				size_t len = n->size - off < PBUF_CHUNK ? (size_t)(n->size - off) : PBUF_CHUNK;

				rc = pbuf_read(n->data, off, tmp.p, len);
				if (rc == 0)
					rc = pbuf_write(nb, off, tmp.p, len);
			}
			mmsb_buf_free(&tmp);
		}
		if (rc < 0) {
			pbuf_put(nb);
			return rc;
		}
	}
	pbuf_put(n->data);
	n->data = nb;
	n->dev = dev;
	return 0;
}

void ns_mem_adopt(struct ns *ns, struct mmsb_mem *mem)
{
	size_t i;

	ns->mem = mem;
	for (i = 0; i < ns->ids_cap; i++) {
		struct ns_node *n = ns->ids[i];

		if (n && n->data && !n->data->k && !n->data->mem) {
			n->data->mem = mem;
			if (mem)
				atomic_fetch_add_explicit(&mem->used, n->data->charged, memory_order_relaxed);
		}
	}
}

/* ---- hash tables ------------------------------------------------------------ */

static uint64_t id_hash(uint64_t id)
{
	return id * 0x9E3779B97F4A7C15ull;
}

static uint64_t name_hash(uint64_t parent, const char *name, size_t len)
{
	return XXH3_64bits_withSeed(name, len, parent);
}

static int table_grow(struct ns_node ***tab, size_t *cap, size_t n, bool by_id)
{
	struct ns_node **old = *tab, **nt;
	size_t ocap = *cap, ncap = ocap ? ocap * 2 : 64, i;

	if ((n + 1) * 4 < ocap * 3)
		return 0;
	nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	for (i = 0; i < ocap; i++) {
		struct ns_node *x = old[i];
		size_t j;

		if (!x)
			continue;
		j = (by_id ? id_hash(x->id) : x->nhash) & (ncap - 1);
		while (nt[j])
			j = (j + 1) & (ncap - 1);
		nt[j] = x;
	}
	free(old);
	*tab = nt;
	*cap = ncap;
	return 0;
}

/* Remove slot i with backward-shift deletion. */
static void table_del(struct ns_node **tab, size_t cap, size_t i, bool by_id)
{
	size_t j = i;

	tab[i] = NULL;
	for (;;) {
		size_t home;

		j = (j + 1) & (cap - 1);
		if (!tab[j])
			return;
		home = (by_id ? id_hash(tab[j]->id) : tab[j]->nhash) & (cap - 1);
		/* move tab[j] to the hole i if its home is not in (i, j] cyclically */
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			tab[i] = tab[j];
			tab[j] = NULL;
			i = j;
		}
	}
}

struct ns_node *ns_get(const struct ns *ns, uint64_t id)
{
	size_t i;

	if (!ns->ids_cap)
		return NULL;
	for (i = id_hash(id) & (ns->ids_cap - 1); ns->ids[i]; i = (i + 1) & (ns->ids_cap - 1))
		if (ns->ids[i]->id == id)
			return ns->ids[i];
	return NULL;
}

static int ids_add(struct ns *ns, struct ns_node *n)
{
	int rc = table_grow(&ns->ids, &ns->ids_cap, ns->n_ids, true);
	size_t i;

	if (rc < 0)
		return rc;
	for (i = id_hash(n->id) & (ns->ids_cap - 1); ns->ids[i]; i = (i + 1) & (ns->ids_cap - 1))
		;
	ns->ids[i] = n;
	ns->n_ids++;
	return 0;
}

static void ids_del(struct ns *ns, struct ns_node *n)
{
	size_t i;

	for (i = id_hash(n->id) & (ns->ids_cap - 1); ns->ids[i] != n; i = (i + 1) & (ns->ids_cap - 1))
		;
	table_del(ns->ids, ns->ids_cap, i, true);
	ns->n_ids--;
}

struct ns_node *ns_lookup(const struct ns *ns, uint64_t parent, const char *name, size_t len)
{
	uint64_t h;
	size_t i;

	if (!ns->names_cap)
		return NULL;
	h = name_hash(parent, name, len);
	for (i = h & (ns->names_cap - 1); ns->names[i]; i = (i + 1) & (ns->names_cap - 1)) {
		struct ns_node *x = ns->names[i];

		if (x->nhash == h && x->parent == parent && x->name_len == len && memcmp(x->name, name, len) == 0)
			return x;
	}
	return NULL;
}

static void names_del(struct ns *ns, struct ns_node *n)
{
	size_t i;

	for (i = n->nhash & (ns->names_cap - 1); ns->names[i] != n; i = (i + 1) & (ns->names_cap - 1))
		;
	table_del(ns->names, ns->names_cap, i, false);
	ns->n_names--;
}

/* ---- nodes ------------------------------------------------------------------ */

struct ns_node *ns_node_new(uint64_t id, uint8_t type, const char *name, size_t name_len)
{
	struct ns_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->name = malloc(name_len + 1);
	if (!n->name) {
		free(n);
		return NULL;
	}
	memcpy(n->name, name, name_len);
	n->name[name_len] = '\0';
	n->name_len = (uint16_t)name_len;
	n->id = id;
	n->type = type;
	n->loaded = true;
	n->next_seq = 1;
	n->nlink = 1;
	return n;
}

void ns_node_free(struct ns_node *n)
{
	uint32_t i;

	if (!n)
		return;
	while (n->links) { /* the node's other names */
		struct ns_node *l = n->links;

		n->links = l->next_link;
		ns_node_free(l);
	}
	for (i = 0; i < n->n_xattrs; i++) {
		free(n->xattrs[i].name);
		free(n->xattrs[i].value);
	}
	free(n->xattrs);
	free(n->deps);
	free(n->kids);
	free(n->dents);
	pbuf_put(n->data);
	free(n->name);
	free(n);
}

static void count(struct ns *ns, const struct ns_node *n, int sign)
{
	uint64_t d = (uint64_t)(int64_t)sign;

	switch (n->type) {
	case MMSB_T_DIR:
		ns->n_dirs += d;
		break;
	case MMSB_T_PAGE:
		ns->n_pages += d;
		ns->page_bytes += d * n->size;
		break;
	case MMSB_T_SYMLINK:
		ns->n_symlinks += d;
		break;
	}
}

static int dent_add(struct ns_node *dir, struct ns_node *n)
{
	if (dir->n_dents == dir->cap_dents) {
		uint32_t cap = dir->cap_dents ? dir->cap_dents * 2 : 8;
		struct ns_dent *d = realloc(dir->dents, cap * sizeof(*d));

		if (!d)
			return -ENOMEM;
		dir->dents = d;
		dir->cap_dents = cap;
	}
	n->dseq = dir->next_seq++;
	dir->dents[dir->n_dents].seq = n->dseq;
	dir->dents[dir->n_dents].node = n;
	dir->n_dents++;
	dir->n_live++;
	if (n->type == MMSB_T_DIR)
		dir->n_subdirs++;
	return 0;
}

/* Index of the first dent with seq > from. */
static uint32_t dent_seek(const struct ns_node *dir, uint64_t from)
{
	uint32_t lo = 0, hi = dir->n_dents;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (dir->dents[mid].seq <= from)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void dent_del(struct ns_node *dir, struct ns_node *n)
{
	uint32_t i = dent_seek(dir, n->dseq - 1), j, k;

	if (i < dir->n_dents && dir->dents[i].node == n)
		dir->dents[i].node = NULL;
	dir->n_live--;
	if (n->type == MMSB_T_DIR)
		dir->n_subdirs--;
	if (dir->n_dents > 16 && dir->n_dents - dir->n_live > dir->n_live) {
		for (j = k = 0; j < dir->n_dents; j++)
			if (dir->dents[j].node)
				dir->dents[k++] = dir->dents[j];
		dir->n_dents = k;
	}
}

/* Index n by its (parent, name) hash; the table has room. */
static void names_put(struct ns *ns, struct ns_node *n)
{
	size_t i;

	for (i = n->nhash & (ns->names_cap - 1); ns->names[i]; i = (i + 1) & (ns->names_cap - 1))
		;
	ns->names[i] = n;
	ns->n_names++;
}

/* Put n into the tree under parent p with its current name. */
static int link_node(struct ns *ns, struct ns_node *p, struct ns_node *n)
{
	int rc;

	rc = table_grow(&ns->names, &ns->names_cap, ns->n_names, false);
	if (rc == 0)
		rc = dent_add(p, n);
	if (rc < 0)
		return rc;
	n->parent = p->id;
	n->nhash = name_hash(p->id, n->name, n->name_len);
	names_put(ns, n);
	return 0;
}

static void unlink_node(struct ns *ns, struct ns_node *n)
{
	struct ns_node *p = ns_get(ns, n->parent);

	names_del(ns, n);
	if (p)
		dent_del(p, n);
}

/* Drop a node that left the tree: free it, or keep it as an orphan.  Its
 * own dependency edges go; its dependents keep naming it (and fail their
 * next recompute: the parent is gone). */
static void drop_node(struct ns *ns, struct ns_node *n)
{
	count(ns, n, -1);
	ns_deps_set(ns, n, NULL, 0);
	free(n->kids);
	n->kids = NULL;
	n->n_kids = n->cap_kids = 0;
	if (n->opens > 0) {
		n->orphan = true;
		n->parent = 0;
		return;
	}
	ids_del(ns, n);
	ns_node_free(n);
}

/* n lost its own name (already out of the tables) but keeps others: it
 * takes over its first link entry's name and directory slot (so a listing
 * in progress sees no change there), and that entry goes. */
static void promote_link(struct ns *ns, struct ns_node *n)
{
	struct ns_node *l = n->links, *p = ns_get(ns, l->parent);
	uint32_t i = dent_seek(p, l->dseq - 1);

	names_del(ns, l);
	n->links = l->next_link;
	if (i < p->n_dents && p->dents[i].node == l)
		p->dents[i].node = n;
	free(n->name);
	n->name = l->name;
	l->name = NULL;
	n->name_len = l->name_len;
	n->parent = l->parent;
	n->nhash = l->nhash;
	n->dseq = l->dseq;
	names_put(ns, n);
	ns_node_free(l);
}

/* Directory entry d has been taken out of the tables: one name less for
 * its node, which goes (or becomes an orphan) with its last name. */
static void drop_name(struct ns *ns, struct ns_node *d)
{
	struct ns_node *n = ns_inode(d), **pp;

	if (n->nlink <= 1) {
		drop_node(ns, n);
		return;
	}
	n->nlink--;
	if (d == n) {
		promote_link(ns, n);
		return;
	}
	for (pp = &n->links; *pp != d; pp = &(*pp)->next_link)
		;
	*pp = d->next_link;
	ns_node_free(d);
}

int ns_link_insert(struct ns *ns, uint64_t id, uint64_t parent, const char *name, size_t len)
{
	struct ns_node *n = ns_get(ns, id), *p = ns_get(ns, parent), *l;
	int rc;

	if (!n || n->orphan || n->type == MMSB_T_DIR || n->id == MMSB_ROOT_ID || !p || p->orphan ||
	    p->type != MMSB_T_DIR || ns_lookup(ns, parent, name, len))
		return -MMSB_ECORRUPT;
	l = ns_node_new(id, n->type, name, len);
	if (!l)
		return -ENOMEM;
	l->ino = n;
	rc = link_node(ns, p, l);
	if (rc < 0) {
		ns_node_free(l);
		return rc;
	}
	l->next_link = n->links;
	n->links = l;
	n->nlink++;
	return 0;
}

void ns_unref(struct ns *ns, struct ns_node *n)
{
	if (n->opens > 0)
		n->opens--;
	if (n->orphan && n->opens == 0) {
		ids_del(ns, n);
		ns_node_free(n);
	}
}

int ns_insert(struct ns *ns, struct ns_node *n)
{
	struct ns_node *p = ns_get(ns, n->parent);
	int rc;

	if (!p || p->type != MMSB_T_DIR || ns_get(ns, n->id) ||
	    ns_lookup(ns, n->parent, n->name, n->name_len))
		return -MMSB_ECORRUPT;
	rc = ids_add(ns, n);
	if (rc < 0)
		return rc;
	rc = link_node(ns, p, n);
	if (rc < 0) {
		ids_del(ns, n);
		return rc;
	}
	count(ns, n, 1);
	if (n->id >= ns->next_id)
		ns->next_id = n->id + 1;
	return 0;
}

int ns_new(int64_t root_time, struct ns **out)
{
	struct ns *ns = calloc(1, sizeof(*ns));
	struct ns_node *r;

	if (!ns)
		return -ENOMEM;
	r = ns_node_new(MMSB_ROOT_ID, MMSB_T_DIR, "", 0);
	if (!r || ids_add(ns, r) < 0) {
		ns_node_free(r);
		free(ns->ids);
		free(ns);
		return -ENOMEM;
	}
	r->parent = MMSB_ROOT_ID;
	r->mode = 0755;
	r->atime = r->mtime = r->ctime = root_time;
	ns->root = r;
	ns->n_dirs = 1;
	ns->next_id = MMSB_ROOT_ID + 1;
	*out = ns;
	return 0;
}

void ns_free(struct ns *ns)
{
	size_t i;

	if (!ns)
		return;
	for (i = 0; i < ns->ids_cap; i++)
		ns_node_free(ns->ids[i]);
	free(ns->ids);
	free(ns->names);
	free(ns);
}

int ns_xattr_set(struct ns_node *n, const char *name, size_t nlen, const void *value, size_t vlen)
{
	struct ns_xattr *x = (struct ns_xattr *)ns_xattr_find(n, name, nlen);
	uint8_t *v = NULL;

	if (vlen) {
		v = malloc(vlen);
		if (!v)
			return -ENOMEM;
		memcpy(v, value, vlen);
	}
	if (!x) {
		struct ns_xattr *xs = realloc(n->xattrs, (n->n_xattrs + 1) * sizeof(*xs));
		char *nm = malloc(nlen + 1);

		if (xs)
			n->xattrs = xs;
		if (!xs || !nm) {
			free(nm);
			free(v);
			return -ENOMEM;
		}
		memcpy(nm, name, nlen);
		nm[nlen] = '\0';
		x = &n->xattrs[n->n_xattrs++];
		x->name = nm;
		x->value = NULL;
	}
	free(x->value);
	x->value = v;
	x->len = (uint32_t)vlen;
	return 0;
}

static struct ns_node *clone_node(const struct ns_node *s)
{
	struct ns_node *n = ns_node_new(s->id, s->type, s->name, s->name_len);
	uint32_t i;

	if (!n)
		return NULL;
	n->parent = s->parent;
	n->mode = s->mode;
	n->uid = s->uid;
	n->gid = s->gid;
	n->atime = s->atime;
	n->mtime = s->mtime;
	n->ctime = s->ctime;
	n->size = s->size;
	n->rdev = s->rdev;
	n->version = s->version;
	n->epoch = s->epoch;
	n->birth = s->birth;
	n->loaded = s->loaded;
	n->ck_data_off = s->ck_data_off;
	n->ck_size = s->ck_size;
	n->ck_n_blocks = s->ck_n_blocks;
	n->ck_epoch = s->ck_epoch;
	n->from_epoch = s->from_epoch;
	n->from_size = s->from_size;
	n->dev = s->dev;
	n->data = pbuf_get(s->data);
	if (s->n_deps) {
		n->deps = malloc(s->n_deps * sizeof(*n->deps));
		if (!n->deps) {
			ns_node_free(n);
			return NULL;
		}
		memcpy(n->deps, s->deps, s->n_deps * sizeof(*n->deps));
		n->n_deps = s->n_deps;
	}
	for (i = 0; i < s->n_xattrs; i++)
		if (ns_xattr_set(n, s->xattrs[i].name, strlen(s->xattrs[i].name), s->xattrs[i].value,
				 s->xattrs[i].len) < 0) {
			ns_node_free(n);
			return NULL;
		}
	return n;
}

struct clone_ctx {
	struct ns *dst;
	int rc;
};

static int clone_one(void *arg, const struct ns_node *s)
{
	struct clone_ctx *c = arg;
	struct ns_node *n;

	if (s->id == MMSB_ROOT_ID) {
		struct ns_node *r = c->dst->root;
		uint32_t i;

		r->mode = s->mode;
		r->uid = s->uid;
		r->gid = s->gid;
		r->atime = s->atime;
		r->mtime = s->mtime;
		r->ctime = s->ctime;
		r->epoch = s->epoch;
		for (i = 0; i < s->n_xattrs; i++)
			if (ns_xattr_set(r, s->xattrs[i].name, strlen(s->xattrs[i].name), s->xattrs[i].value,
					 s->xattrs[i].len) < 0)
				return c->rc = -ENOMEM;
		return 0;
	}
	n = clone_node(s);
	if (!n)
		return c->rc = -ENOMEM;
	c->rc = ns_insert(c->dst, n);
	if (c->rc < 0)
		ns_node_free(n);
	return c->rc;
}

static int clone_link(void *arg, const struct ns_node *l)
{
	struct clone_ctx *c = arg;

	c->rc = ns_link_insert(c->dst, l->id, l->parent, l->name, l->name_len);
	return c->rc;
}

int ns_clone(const struct ns *ns, struct ns **out)
{
	struct clone_ctx c = {NULL, 0};
	int rc = ns_new(ns->root->ctime, &c.dst);

	if (rc < 0)
		return rc;
	ns_walk(ns, clone_one, &c);
	if (c.rc == 0)
		ns_walk_links(ns, clone_link, &c);
	if (c.rc < 0) {
		ns_free(c.dst);
		return c.rc;
	}
	c.dst->next_id = ns->next_id;
	c.dst->gpu = ns->gpu;
	*out = c.dst;
	return 0;
}

int ns_walk(const struct ns *ns, int (*fn)(void *arg, const struct ns_node *n), void *arg)
{
	/* breadth first with an explicit queue of directories */
	const struct ns_node **q = malloc(sizeof(*q) * (ns->n_dirs + 1));
	size_t head = 0, tail = 0;
	int rc;

	if (!q)
		return -ENOMEM;
	q[tail++] = ns->root;
	rc = fn(arg, ns->root);
	while (rc == 0 && head < tail) {
		const struct ns_node *d = q[head++];
		uint32_t i;

		for (i = 0; i < d->n_dents && rc == 0; i++) {
			const struct ns_node *c = d->dents[i].node;

			if (!c || c->ino)
				continue;
			rc = fn(arg, c);
			if (c->type == MMSB_T_DIR && tail <= ns->n_dirs)
				q[tail++] = c;
		}
	}
	free(q);
	return rc;
}

int ns_walk_links(const struct ns *ns, int (*fn)(void *arg, const struct ns_node *l), void *arg)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < ns->ids_cap && rc == 0; i++) {
		const struct ns_node *l;

		for (l = ns->ids[i] ? ns->ids[i]->links : NULL; l && rc == 0; l = l->next_link)
			rc = fn(arg, l);
	}
	return rc;
}

/* ---- queries ------------------------------------------------------------------- */

void ns_attr(const struct ns_node *n, struct mmsb_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->id = n->id;
	a->parent = n->parent;
	a->type = (enum mmsb_type)n->type;
	a->mode = n->mode;
	a->uid = n->uid;
	a->gid = n->gid;
	a->nlink = n->type == MMSB_T_DIR ? 2 + n->n_subdirs : n->orphan ? 0 : n->nlink;
	a->rdev = n->rdev;
	a->size = n->size;
	a->atime_ns = n->atime;
	a->mtime_ns = n->mtime;
	a->ctime_ns = n->ctime;
	a->version = n->version;
	a->epoch = n->epoch;
	a->birth = n->birth;
	a->alloc_bytes = n->size;
	if (n->type == MMSB_T_PAGE && n->loaded && n->data && n->data->dmap) {
		uint64_t whole = (n->size + PBUF_MAP_ALIGN - 1) & ~(uint64_t)(PBUF_MAP_ALIGN - 1);

		a->alloc_bytes = n->data->n_data * PBUF_CHUNK < whole ? n->data->n_data * PBUF_CHUNK : whole;
	} else if (n->type == MMSB_T_PAGE && n->loaded && !n->data) {
		a->alloc_bytes = 0;
	}
}

int ns_resolve(const struct ns *ns, const char *path, struct ns_node **out)
{
	struct ns_node *d = NULL;
	int rc = ns_resolve_entry(ns, path, &d);

	if (rc == 0)
		*out = ns_inode(d);
	return rc;
}

int ns_resolve_entry(const struct ns *ns, const char *path, struct ns_node **out)
{
	struct ns_node *n = ns->root;

	while (*path) {
		const char *e;
		size_t len;

		while (*path == '/')
			path++;
		if (!*path)
			break;
		e = strchr(path, '/');
		len = e ? (size_t)(e - path) : strlen(path);
		if (n->type != MMSB_T_DIR)
			return -ENOTDIR;
		if (len == 1 && path[0] == '.') {
			/* stay */
		} else if (len == 2 && path[0] == '.' && path[1] == '.') {
			n = ns_get(ns, n->parent);
		} else {
			n = ns_lookup(ns, n->id, path, len);
		}
		if (!n)
			return -ENOENT;
		path += len;
	}
	*out = n;
	return 0;
}

ssize_t ns_path(const struct ns *ns, uint64_t id, char *buf, size_t cap)
{
	const struct ns_node *n = ns_get(ns, id), *x;
	size_t len = 0, pos;

	if (!n || n->orphan)
		return -ENOENT;
	for (x = n; x->id != MMSB_ROOT_ID; x = ns_get(ns, x->parent)) {
		if (!x)
			return -ENOENT;
		len += x->name_len + (len ? 1 : 0);
	}
	if (len + 1 > cap)
		return -ERANGE;
	buf[len] = '\0';
	pos = len;
	for (x = n; x->id != MMSB_ROOT_ID; x = ns_get(ns, x->parent)) {
		if (pos != len)
			buf[--pos] = '/';
		pos -= x->name_len;
		memcpy(buf + pos, x->name, x->name_len);
	}
	return (ssize_t)len;
}

int ns_readdir(const struct ns *ns, const struct ns_node *dir, uint64_t from, mmsb_dirent_fn fn, void *arg)
{
	uint32_t i;

	if (dir->type != MMSB_T_DIR)
		return -ENOTDIR;
	for (i = dent_seek(dir, from); i < dir->n_dents; i++) {
		const struct ns_node *c = dir->dents[i].node;
		struct mmsb_attr a;

		if (!c)
			continue;
		ns_attr(ns_inode(c), &a);
		if (fn(arg, c->name, &a, dir->dents[i].seq))
			break;
	}
	return 0;
}

int ns_lookup_attr(const struct ns *ns, uint64_t parent, const char *name, struct mmsb_attr *out)
{
	const struct ns_node *p = ns_get(ns, parent), *n;

	if (!p || p->orphan)
		return -ENOENT;
	if (p->type != MMSB_T_DIR)
		return -ENOTDIR;
	n = ns_lookup(ns, parent, name, strlen(name));
	if (!n)
		return -ENOENT;
	ns_attr(ns_inode(n), out);
	return 0;
}

int ns_getattr(const struct ns *ns, uint64_t id, struct mmsb_attr *out)
{
	const struct ns_node *n = ns_get(ns, id);

	if (!n)
		return -ENOENT;
	ns_attr(n, out);
	return 0;
}

ssize_t ns_read(const struct ns_node *n, uint64_t off, void *buf, size_t len)
{
	if (!n)
		return -ENOENT;
	if (n->type == MMSB_T_DIR)
		return -EISDIR;
	if (off >= n->size)
		return 0;
	if (len > n->size - off)
		len = (size_t)(n->size - off);
	return pbuf_read(n->data, off, buf, len) < 0 ? -EIO : (ssize_t)len;
}

int ns_page_check(const struct ns_node *n)
{
	if (!n)
		return -ENOENT;
	if (n->type == MMSB_T_DIR)
		return -EISDIR;
	if (n->type != MMSB_T_PAGE)
		return -EINVAL;
	return 0;
}

int ns_seek(const struct ns_node *n, uint64_t off, bool data, uint64_t *out)
{
	int rc = ns_page_check(n);

	return rc < 0 ? rc : pbuf_seek(n->data, n->size, off, data, out);
}

ssize_t ns_readlink(const struct ns_node *n, char *buf, size_t cap)
{
	if (!n)
		return -ENOENT;
	return n->type != MMSB_T_SYMLINK ? -EINVAL : ns_read(n, 0, buf, cap);
}

ssize_t ns_getxattr(const struct ns_node *n, const char *name, void *buf, size_t cap)
{
	const struct ns_xattr *x = n ? ns_xattr_find(n, name, strlen(name)) : NULL;

	if (!n)
		return -ENOENT;
	if (!x)
		return -ENODATA;
	if (cap == 0)
		return (ssize_t)x->len;
	if (cap < x->len)
		return -ERANGE;
	if (x->len)
		memcpy(buf, x->value, x->len);
	return (ssize_t)x->len;
}

const struct ns_xattr *ns_xattr_find(const struct ns_node *n, const char *name, size_t len)
{
	uint32_t i;

	for (i = 0; i < n->n_xattrs; i++)
		if (strlen(n->xattrs[i].name) == len && memcmp(n->xattrs[i].name, name, len) == 0)
			return &n->xattrs[i];
	return NULL;
}

ssize_t ns_listxattr(const struct ns_node *n, char *buf, size_t cap)
{
	size_t need = 0, pos = 0;
	uint32_t i;

	if (!n)
		return -ENOENT;
	for (i = 0; i < n->n_xattrs; i++)
		need += strlen(n->xattrs[i].name) + 1;
	if (cap == 0)
		return (ssize_t)need;
	if (need > cap)
		return -ERANGE;
	for (i = 0; i < n->n_xattrs; i++) {
		size_t l = strlen(n->xattrs[i].name) + 1;

		memcpy(buf + pos, n->xattrs[i].name, l);
		pos += l;
	}
	return (ssize_t)need;
}

/* ---- applying records --------------------------------------------------------------- */

static void touch(struct ns_node *n, const struct mmsb_rec *r, bool content)
{
	n->ctime = r->time;
	if (content)
		n->mtime = r->time;
	n->epoch = r->epoch;
}

static int get_dir(struct ns *ns, uint64_t id, struct ns_node **out)
{
	struct ns_node *d = ns_get(ns, id);

	if (!d || d->orphan)
		return -ENOENT;
	if (d->type != MMSB_T_DIR)
		return -ENOTDIR;
	*out = d;
	return 0;
}

static int apply_create(struct ns *ns, const struct mmsb_rec *r)
{
	const __typeof__(r->u.create) *c = &r->u.create;
	struct ns_node *p, *n;
	int rc = get_dir(ns, c->parent, &p);

	if (rc < 0)
		return rc;
	if (ns_lookup(ns, p->id, c->name, c->name_len))
		return -EEXIST;
	if (r->node <= MMSB_ROOT_ID || ns_get(ns, r->node))
		return -MMSB_ECORRUPT; /* ids are never reused */
	n = ns_node_new(r->node, c->ntype, c->name, c->name_len);
	if (!n)
		return -ENOMEM;
	n->parent = p->id;
	n->mode = c->mode;
	n->uid = c->uid;
	n->gid = c->gid;
	n->atime = n->mtime = n->ctime = r->time;
	n->epoch = n->birth = r->epoch;
	n->rdev = r->type == MMSB_FR_MKNOD ? c->rdev : 0;
	if (c->ntype == MMSB_T_SYMLINK) {
		n->data = pbuf_new(c->target_len);
		if (!n->data) {
			ns_node_free(n);
			return -ENOMEM;
		}
		memcpy(n->data->data, c->target, c->target_len);
		n->size = c->target_len;
	}
	rc = ns_insert(ns, n);
	if (rc < 0) {
		ns_node_free(n);
		return rc;
	}
	touch(p, r, true);
	return 0;
}

static int get_page(struct ns *ns, uint64_t id, struct ns_node **out)
{
	struct ns_node *n = ns_get(ns, id);
	int rc = ns_page_check(n);

	*out = rc == 0 ? n : NULL;
	return rc;
}

/* The unpacked delta body of a WRITE record. */
static int write_body(const struct mmsb_rec *r, struct mmsb_buf *scratch, const uint8_t **body, size_t *len)
{
	int rc;

	if (r->u.write.raw) {
		*body = r->u.write.raw;
		*len = r->u.write.raw_len;
		return 0;
	}
	if (!(r->u.write.flags & MMSB_WF_LZ4)) {
		*body = r->u.write.body;
		*len = r->u.write.body_len;
		return 0;
	}
	scratch->len = 0;
	rc = mmsb_delta_unpack(r->u.write.body, r->u.write.body_len, MMSB_FR_MAX_PAYLOAD, scratch);
	if (rc < 0)
		return rc;
	*body = scratch->p;
	*len = scratch->len;
	return 0;
}

/* Apply a delta to a device page: queued for the device, which applies it
 * later, batched with other deltas; readers of the page wait for it
 * (kern.h, enqueue/read). */
static int dev_apply(struct pbuf *pb, uint64_t size, uint8_t enc, const uint8_t *body, size_t len)
{
	return pb->k->enqueue(pb->data, size, enc, body, len);
}

/* Charging a delta's chunks before applying it: count the clear chunks its
 * ranges touch (ranges come in increasing order, so a chunk two ranges
 * share is met twice in a row), then mark them. */
struct mark_ctx {
	struct pbuf *pb;
	uint64_t last;	/* chunk counted last, UINT64_MAX: none */
	uint64_t fresh; /* clear chunks met */
	bool mark;	/* second pass: mark instead of counting */
	uint64_t pop_at, pop_end; /* fresh chunks marked, not populated yet */
};

/* The delta is about to be copied into fresh chunks [pop_at, pop_end):
 * their pages are faulted in by one call, not one fault per 4 KiB page
 * (the kernel zero-fills them either way; an old kernel: faults). */
static void pop_flush(struct mark_ctx *m)
{
	if (m->pop_end > m->pop_at)
		madvise(m->pb->data + m->pop_at, (size_t)(m->pop_end - m->pop_at), MADV_POPULATE_WRITE);
	m->pop_at = m->pop_end = 0;
}

static int mark_range(void *arg, uint64_t off, uint64_t len)
{
	struct mark_ctx *m = arg;
	uint64_t c;

	if (m->mark && m->pb->n_pend) /* the delta overwrites [off, off + len) */
		pend_range(m->pb, off, len);
	for (c = off / PBUF_CHUNK; c <= (off + len - 1) / PBUF_CHUNK; c++) {
		if (c == m->last)
			continue;
		m->last = c;
		if (pbuf_bit(m->pb, c))
			continue;
		m->fresh++;
		if (!m->mark)
			continue;
		m->pb->dmap[c / 64] |= 1ull << (c % 64);
		if (m->pop_end != c * PBUF_CHUNK) {
			pop_flush(m);
			m->pop_at = c * PBUF_CHUNK;
		}
		m->pop_end = (c + 1) * PBUF_CHUNK < m->pb->cap ? (c + 1) * PBUF_CHUNK : m->pb->cap;
	}
	return 0;
}

static int pbuf_mark_delta(struct pbuf *pb, uint8_t enc, const uint8_t *body, size_t len)
{
	struct mark_ctx m = {.pb = pb, .last = UINT64_MAX};
	bool lazy = pb->dmap && atomic_load_explicit(&pb->src, memory_order_acquire) != NULL;
	int rc;

	/* a lazy copy always takes the marking pass: its pending chunks hold
	 * data (their bits are set) but must be made its own first */
	if (pbuf_all_data(pb))
		return 0;
	rc = mmsb_delta_ranges(enc, body, len, mark_range, &m);
	if (rc == 0 && m.fresh == 0 && !lazy)
		return 0;
	if (rc == 0)
		rc = pbuf_charge(pb, m.fresh * PBUF_CHUNK);
	if (rc < 0)
		return rc;
	m.last = UINT64_MAX;
	m.mark = true;
	m.fresh = 0;
	if (lazy)
		pthread_mutex_lock(&pb->mu);
	mmsb_delta_ranges(enc, body, len, mark_range, &m);
	pop_flush(&m);
	if (lazy)
		pthread_mutex_unlock(&pb->mu);
	pb->n_data += m.fresh;
	return 0;
}

int ns_bytes_apply(struct pbuf **pb, uint64_t *size, const struct mmsb_rec *r, struct mmsb_buf *scratch,
		   const struct mmsb_kern_ops *dev, struct mmsb_mem *mem)
{
	const uint8_t *body;
	size_t len;
	uint64_t covered;
	int rc;

	if (r->type == MMSB_FR_TRUNCATE) {
		rc = pbuf_reserve(pb, *size, r->u.truncate.size, dev, mem);
		if (rc == 0)
			rc = pbuf_resize(*pb, size, r->u.truncate.size);
		return rc;
	}
	if (r->u.write.size < *size)
		return -MMSB_ECORRUPT; /* a write never shrinks a page */
	rc = write_body(r, scratch, &body, &len);
	if (rc < 0)
		return rc;
	if (!r->u.write.raw) { /* from disk: validate before touching the page */
		/* a run may cover a few unchanged bytes: it covers at least
		 * the bytes the frame says changed */
		rc = mmsb_delta_check(r->u.write.size, r->u.write.enc, body, len, &covered);
		if (rc == 0 && covered < r->u.write.changed)
			rc = -MMSB_ECORRUPT;
		if (rc < 0)
			return rc;
	}
	rc = pbuf_reserve(pb, *size, r->u.write.size, dev, mem);
	if (rc == 0 && !(*pb)->k)
		rc = pbuf_mark_delta(*pb, r->u.write.enc, body, len); /* -ENOSPC: nothing written */
	if (rc < 0)
		return rc;
	*size = r->u.write.size;
	if ((*pb)->k)
		return dev_apply(*pb, *size, r->u.write.enc, body, len);
	return mmsb_delta_apply((*pb)->data, *size, r->u.write.enc, body, len);
}

int ns_page_prepare(struct ns_node *n, const struct mmsb_rec *r, struct mmsb_mem *mem)
{
	uint64_t size = r->type == MMSB_FR_TRUNCATE ? r->u.truncate.size : r->u.write.size;
	int rc;

	if (r->type == MMSB_FR_WRITE && size < n->size)
		return -MMSB_ECORRUPT;
	rc = pbuf_reserve(&n->data, n->size, size > n->size ? size : n->size, n->dev, mem);
	if (rc == 0 && r->type == MMSB_FR_WRITE && n->data && !n->data->k)
		rc = pbuf_mark_delta(n->data, r->u.write.enc, r->u.write.raw, r->u.write.raw_len);
	return rc;
}

bool ns_page_ready(const struct ns_node *n, const struct mmsb_rec *r)
{
	uint64_t size = r->type == MMSB_FR_TRUNCATE ? r->u.truncate.size : r->u.write.size;
	struct pbuf *pb = n->data;

	if (size < n->size)
		size = n->size;
	if (!pb || pb->k || atomic_load_explicit(&pb->refs, memory_order_acquire) != 1 ||
	    atomic_load_explicit(&pb->src, memory_order_acquire) || !pbuf_fits(pb, size))
		return false;
	return r->type != MMSB_FR_WRITE || pbuf_all_data(pb);
}

static int apply_bytes(struct ns *ns, const struct mmsb_rec *r, struct mmsb_buf *scratch)
{
	struct ns_node *n;
	uint64_t old;
	int rc = get_page(ns, r->node, &n);

	if (rc < 0)
		return rc;
	old = n->size;
	rc = ns_bytes_apply(&n->data, &n->size, r, scratch, n->dev, ns->mem);
	if (rc < 0)
		return rc;
	if (!n->orphan)
		ns->page_bytes += n->size - old;
	n->version++;
	touch(n, r, true);
	return 0;
}

static int apply_remove(struct ns *ns, const struct mmsb_rec *r)
{
	struct ns_node *p, *n;
	int rc = get_dir(ns, r->u.unlink.parent, &p);

	if (rc < 0)
		return rc;
	n = ns_lookup(ns, p->id, r->u.unlink.name, r->u.unlink.name_len);
	if (!n)
		return -ENOENT;
	if (n->id != r->node)
		return -MMSB_ECORRUPT;
	if (r->type == MMSB_FR_RMDIR) {
		if (n->type != MMSB_T_DIR)
			return -ENOTDIR;
		if (n->n_live)
			return -ENOTEMPTY;
	} else if (n->type == MMSB_T_DIR) {
		return -EISDIR;
	}
	unlink_node(ns, n);
	if (ns_inode(n)->nlink > 1)
		touch(ns_inode(n), r, false); /* nlink changed: ctime */
	drop_name(ns, n);
	touch(p, r, true);
	return 0;
}

static int apply_link(struct ns *ns, const struct mmsb_rec *r)
{
	const __typeof__(r->u.unlink) *l = &r->u.unlink;
	struct ns_node *p, *n = ns_get(ns, r->node);
	int rc = get_dir(ns, l->parent, &p);

	if (rc < 0)
		return rc;
	if (!n || n->orphan || n->id == MMSB_ROOT_ID)
		return -ENOENT;
	if (n->type == MMSB_T_DIR)
		return -EPERM;
	if (ns_lookup(ns, p->id, l->name, l->name_len))
		return -EEXIST;
	if (n->nlink >= MMSB_LINK_MAX)
		return -EMLINK;
	rc = ns_link_insert(ns, n->id, p->id, l->name, l->name_len);
	if (rc < 0)
		return rc;
	touch(n, r, false);
	touch(p, r, true);
	return 0;
}

/* Is a an ancestor of (or equal to) b? */
static bool is_ancestor(struct ns *ns, const struct ns_node *a, const struct ns_node *b)
{
	while (b) {
		if (b == a)
			return true;
		if (b->id == MMSB_ROOT_ID)
			return false;
		b = ns_get(ns, b->parent);
	}
	return false;
}

static int rename_check(struct ns *ns, const struct mmsb_rec *r, struct ns_node *n, struct ns_node *np,
			struct ns_node *v)
{
	const __typeof__(r->u.rename) *m = &r->u.rename;

	if ((v ? v->id : 0) != m->victim)
		return -MMSB_ECORRUPT;
	if (n->type == MMSB_T_DIR && is_ancestor(ns, n, np))
		return -EINVAL;
	if (m->flags & MMSB_RENAME_EXCHANGE) {
		if (!v)
			return -ENOENT;
		if (v->type == MMSB_T_DIR && is_ancestor(ns, v, ns_get(ns, m->parent)))
			return -EINVAL;
		return 0;
	}
	if (!v)
		return 0;
	if (m->flags & MMSB_RENAME_NOREPLACE)
		return -EEXIST;
	if (n->type == MMSB_T_DIR && v->type != MMSB_T_DIR)
		return -ENOTDIR;
	if (n->type != MMSB_T_DIR && v->type == MMSB_T_DIR)
		return -EISDIR;
	if (v->type == MMSB_T_DIR && v->n_live)
		return -ENOTEMPTY;
	return 0;
}

static int set_name(struct ns_node *n, const char *name, size_t len)
{
	char *s = malloc(len + 1);

	if (!s)
		return -ENOMEM;
	memcpy(s, name, len);
	s[len] = '\0';
	free(n->name);
	n->name = s;
	n->name_len = (uint16_t)len;
	return 0;
}

static int apply_rename(struct ns *ns, const struct mmsb_rec *r)
{
	const __typeof__(r->u.rename) *m = &r->u.rename;
	struct ns_node *p, *np, *n, *v;
	char *vname = NULL;
	int rc = get_dir(ns, m->parent, &p);

	if (rc == 0)
		rc = get_dir(ns, m->newparent, &np);
	if (rc < 0)
		return rc;
	n = ns_lookup(ns, p->id, m->name, m->name_len);
	if (!n)
		return -ENOENT;
	if (n->id != r->node)
		return -MMSB_ECORRUPT;
	v = ns_lookup(ns, np->id, m->newname, m->newname_len);
	if (v && ns_inode(v) == ns_inode(n))
		return -MMSB_ECORRUPT; /* the txn layer never logs a no-op rename */
	rc = rename_check(ns, r, n, np, v);
	if (rc < 0)
		return rc;
	/* make sure every allocation below succeeds before unlinking anything */
	rc = table_grow(&ns->names, &ns->names_cap, ns->n_names + 2, false);
	if (rc == 0 && (m->flags & MMSB_RENAME_EXCHANGE)) {
		vname = strdup(n->name);
		rc = vname ? 0 : -ENOMEM;
	}
	if (rc == 0)
		rc = set_name(n, m->newname, m->newname_len) == 0 ? 0 : -ENOMEM;
	if (rc < 0) {
		free(vname);
		return rc;
	}
	/* n is still indexed under its old hash: set_name only changed the
	 * string, the table finds it by pointer */
	names_del(ns, n);
	dent_del(p, n);
	if (v) {
		names_del(ns, v);
		dent_del(np, v);
		if (vname) {
			free(v->name);
			v->name = vname;
			v->name_len = (uint16_t)strlen(vname);
			rc = link_node(ns, p, v);
			touch(ns_inode(v), r, false);
		} else {
			if (ns_inode(v)->nlink > 1)
				touch(ns_inode(v), r, false);
			drop_name(ns, v);
		}
	}
	if (rc == 0)
		rc = link_node(ns, np, n);
	if (rc < 0)
		return rc; /* only -ENOMEM from dents growth: the caller reloads */
	touch(ns_inode(n), r, false);
	touch(p, r, true);
	touch(np, r, true);
	return 0;
}

static int apply_setattr(struct ns *ns, const struct mmsb_rec *r)
{
	const __typeof__(r->u.setattr) *s = &r->u.setattr;
	struct ns_node *n = ns_get(ns, r->node);

	if (!n)
		return -ENOENT;
	if (s->valid & MMSB_SET_MODE)
		n->mode = s->mode;
	if (s->valid & MMSB_SET_UID)
		n->uid = s->uid;
	if (s->valid & MMSB_SET_GID)
		n->gid = s->gid;
	if (s->valid & MMSB_SET_ATIME)
		n->atime = s->atime;
	if (s->valid & MMSB_SET_MTIME)
		n->mtime = s->mtime;
	touch(n, r, false);
	return 0;
}

static bool is_location(const __typeof__(((struct mmsb_rec *)0)->u.xattr) *x)
{
	return x->name_len == sizeof(MMSB_XATTR_LOCATION) - 1 &&
	       memcmp(x->name, MMSB_XATTR_LOCATION, x->name_len) == 0;
}

const struct mmsb_kern_ops *ns_location_dev(const struct ns *ns, const void *val, size_t len)
{
	return len == 3 && memcmp(val, "gpu", 3) == 0 ? ns->gpu : NULL;
}

static int apply_xattr(struct ns *ns, const struct mmsb_rec *r)
{
	const __typeof__(r->u.xattr) *x = &r->u.xattr;
	struct ns_node *n = ns_get(ns, r->node);
	int rc;

	if (!n)
		return -ENOENT;
	bool deps = x->name_len == sizeof(MMSB_XATTR_DEPS) - 1 && memcmp(x->name, MMSB_XATTR_DEPS, x->name_len) == 0;
	uint64_t ids[MMSB_DEPS_MAX];
	ssize_t nd = 0;

	if (r->type == MMSB_FR_SETXATTR && deps) {
		nd = ns_deps_resolve(ns, (const char *)x->value, x->value_len, ids, MMSB_DEPS_MAX, NULL, NULL);
		if (nd < 0)
			nd = 0; /* validated before logging; nothing to follow now */
	}
	if (r->type == MMSB_FR_SETXATTR) {
		rc = ns_xattr_set(n, x->name, x->name_len, x->value, x->value_len);
		if (rc == 0 && deps)
			rc = ns_deps_set(ns, n, ids, (size_t)nd);
		if (rc < 0)
			return rc;
		if (is_location(x))
			ns_page_place(n, ns_location_dev(ns, x->value, x->value_len), ns->mem); /* else stays host */
	} else {
		struct ns_xattr *e = (struct ns_xattr *)ns_xattr_find(n, x->name, x->name_len);

		if (!e)
			return -ENODATA;
		free(e->name);
		free(e->value);
		*e = n->xattrs[--n->n_xattrs];
		if (deps)
			ns_deps_set(ns, n, NULL, 0);
		if (is_location(x))
			ns_page_place(n, NULL, ns->mem);
	}
	touch(n, r, false);
	return 0;
}

/* ---- dependency edges ------------------------------------------------------------ */

/* Resolve one deps path as cred's path walk would (no cred: unchecked). */
static int deps_walk(const struct ns *ns, const char *path, const struct mmsb_cred *cred, struct ns_node **out,
		     uint64_t *deny)
{
	struct ns_node *n = ns->root;
	bool slash = false;

	while (*path) {
		const char *e;
		size_t len;

		while (*path == '/') {
			path++;
			slash = true;
		}
		if (!*path)
			break;
		slash = false;
		e = strchr(path, '/');
		len = e ? (size_t)(e - path) : strlen(path);
		if (n->type != MMSB_T_DIR)
			return -ENOTDIR;
		if (cred && !perm_allows(n, cred, PERM_X)) {
			*deny = n->id;
			return -EACCES; /* before the name is looked up: nothing leaks */
		}
		if (len == 2 && path[0] == '.' && path[1] == '.')
			n = ns_get(ns, n->parent);
		else if (!(len == 1 && path[0] == '.'))
			n = ns_lookup(ns, n->id, path, len);
		if (!n)
			return -ENOENT;
		n = ns_inode(n); /* a hard link's name: its node's mode and owner */
		path += len;
	}
	if (slash && n->type != MMSB_T_DIR)
		return -ENOTDIR; /* "page/" names a directory that is not there */
	if (n->type == MMSB_T_DIR)
		return -EISDIR;
	if (n->type != MMSB_T_PAGE)
		return -EINVAL;
	if (cred && !perm_allows(n, cred, PERM_R)) {
		*deny = n->id;
		return -EACCES;
	}
	*out = n;
	return 0;
}

int ns_deps_resolve(const struct ns *ns, const char *val, size_t len, uint64_t *out, size_t cap,
		    struct ns_deps_bad *bad, const struct mmsb_cred *cred)
{
	size_t pos = 0, k = 0;
	char path[4097];

	while (pos < len) {
		size_t s = pos, e;
		struct ns_node *p = NULL;
		uint64_t deny = 0;
		int rc;

		while (pos < len && val[pos] != ',' && val[pos] != '\n')
			pos++;
		e = pos++;
		while (s < e && (val[s] == ' ' || val[s] == '\t' || val[s] == '\r'))
			s++;
		while (e > s && (val[e - 1] == ' ' || val[e - 1] == '\t' || val[e - 1] == '\r'))
			e--;
		if (s == e)
			continue;
		if (bad)
			*bad = (struct ns_deps_bad){k, s, e - s, 0};
		if (e - s >= sizeof(path) || k == cap || memchr(val + s, '\0', e - s))
			return -EINVAL;
		memcpy(path, val + s, e - s);
		path[e - s] = '\0';
		rc = deps_walk(ns, path, cred, &p, &deny);
		if (rc < 0) {
			if (bad)
				bad->deny = deny;
			return rc;
		}
		out[k++] = p->id;
	}
	if (bad)
		*bad = (struct ns_deps_bad){k, len, 0, 0};
	return k ? (int)k : -EINVAL;
}

static void kid_del(struct ns_node *p, uint64_t id)
{
	uint32_t i;

	for (i = 0; i < p->n_kids; i++)
		if (p->kids[i] == id) {
			p->kids[i] = p->kids[--p->n_kids];
			return;
		}
}

static int kid_add(struct ns_node *p, uint64_t id)
{
	uint32_t i;

	for (i = 0; i < p->n_kids; i++)
		if (p->kids[i] == id)
			return 0;
	if (p->n_kids == p->cap_kids) {
		uint32_t cap = p->cap_kids ? p->cap_kids * 2 : 4;
		uint64_t *k = realloc(p->kids, cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		p->kids = k;
		p->cap_kids = cap;
	}
	p->kids[p->n_kids++] = id;
	return 0;
}

int ns_deps_set(struct ns *ns, struct ns_node *n, const uint64_t *ids, size_t count)
{
	uint64_t *d = NULL;
	uint16_t i;
	int rc = 0;

	if (count) {
		d = malloc(count * sizeof(*d));
		if (!d)
			return -ENOMEM;
		memcpy(d, ids, count * sizeof(*d));
	}
	for (i = 0; i < n->n_deps; i++) {
		struct ns_node *p = ns_get(ns, n->deps[i]);

		if (p)
			kid_del(p, n->id);
	}
	free(n->deps);
	n->deps = d;
	n->n_deps = (uint16_t)count;
	for (i = 0; i < n->n_deps && rc == 0; i++) {
		struct ns_node *p = ns_get(ns, n->deps[i]);

		if (p)
			rc = kid_add(p, n->id);
	}
	return rc;
}

int ns_kids_rebuild(struct ns *ns)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < ns->ids_cap && rc == 0; i++) {
		struct ns_node *n = ns->ids[i];
		uint16_t j;

		for (j = 0; n && j < n->n_deps && rc == 0; j++) {
			struct ns_node *p = ns_get(ns, n->deps[j]);

			if (p)
				rc = kid_add(p, n->id);
		}
	}
	return rc;
}

int ns_apply(struct ns *ns, const struct mmsb_rec *r, struct mmsb_buf *scratch)
{
	switch (r->type) {
	case MMSB_FR_CREATE:
	case MMSB_FR_MKNOD:
		return apply_create(ns, r);
	case MMSB_FR_LINK:
		return apply_link(ns, r);
	case MMSB_FR_WRITE:
	case MMSB_FR_TRUNCATE:
		return apply_bytes(ns, r, scratch);
	case MMSB_FR_UNLINK:
	case MMSB_FR_RMDIR:
		return apply_remove(ns, r);
	case MMSB_FR_RENAME:
		return apply_rename(ns, r);
	case MMSB_FR_SETATTR:
		return apply_setattr(ns, r);
	case MMSB_FR_SETXATTR:
	case MMSB_FR_RMXATTR:
		return apply_xattr(ns, r);
	}
	return -EINVAL;
}
