/* kern.h - the kernel layer: delta apply, bulk copy/zero/compare and the
 * recompute operations, behind one function table with a CPU and a CUDA
 * implementation.
 *
 *   const struct mmsb_kern_ops *k = mmsb_kern_select(want_gpu);  // never NULL
 *
 * "cpu" (kern_cpu.c) is always built and is the reference: the CUDA table
 * must produce the same bytes for every operation (tests/gpu/test_kern.c
 * checks it byte for byte).  "cuda" (kern_cuda.cu) exists when meson was run
 * with -Dcuda=enabled|auto and nvcc was found, and is selected only when a
 * GPU answers at run time; otherwise mmsb_kern_select returns the CPU table.
 *
 * Errors: every function returns 0 (or a count) or -errno:
 *   -EINVAL   bad argument: size mismatch, unknown op/element, overlap, a
 *             batch used with another table
 *   -EUCLEAN  a delta body is malformed (mmsb_kern_batch_add*)
 *   -ENOSPC   a GPU page would not fit in the GPU's free memory or the
 *             cap of mmsb_kern_gpu_limit (-o gpu_mem)
 *   -ENOMEM   host or device allocation failed
 *   -ENODEV   no GPU / no driver (mmsb_kern_gpu_probe)
 *   -EIO      any other CUDA error (a launch failed, a kernel faulted)
 *
 * Memory the tables work on.  "cpu": any host memory.  "cuda": the pointers
 * given to apply_batch, copy, zero, compare and recompute should be GPU
 * memory (page_alloc of the cuda table, or any managed/device allocation);
 * copy, zero, compare and recompute check this and, when a pointer is plain
 * host memory, wait for the GPU and run the CPU reference instead (same
 * result, CPU speed).  apply_batch checks each page the batch touches
 * likewise (once per distinct page) and falls back to the CPU when one is
 * host memory.  A call that mixes plain host memory with cudaMalloc (not
 * managed) memory, which neither side can reach whole, is -EINVAL.
 *
 * Ordering ("cuda").  Work is queued on CUDA's legacy default stream, which
 * orders it across all host threads: every operation sees the results of
 * operations issued before it (by any thread).  apply_batch, copy, zero and
 * recompute return once queued; copy_in, copy_out, compare and sync return
 * after the work they depend on has finished.  A CPU thread that reads page
 * memory DIRECTLY (not through copy_out) must call sync() first; where
 * concurrent_managed is false (see mmsb_kern_gpu_info) it must not touch
 * managed memory at all while any kernel may run, so use copy_out there.
 * Errors of queued work surface at the next synchronous call as -EIO.
 * Deltas given to enqueue go to a stream of their own (a blocking stream:
 * the legacy stream orders every other operation after the batches
 * submitted before it, and each of those operations first submits what is
 * queued); read waits only for the batches that wrote its page.
 *
 * copy_out path ("cuda"): cudaMemcpy from the managed page into the caller's
 * buffer, after the stream's prior work.  It leaves the page resident on the
 * GPU; a CPU fault instead migrates the page to the host (and the next kernel
 * faults it back), and a prefetch to the host costs a migration both ways.
 * bench_kern measures the three (fault / copy / prefetch) and prints them.
 *
 * Thread safety: the tables themselves are const, but the device tables
 * keep process-wide mutable state behind them, each part under its own
 * mutex, so calls from any thread may run concurrently (on disjoint memory):
 *   - the queue of enqueue/read: one per device table for the whole
 *     process (cuda: kern_cuda.cu's q, its streams and flusher thread;
 *     cpu_dev: kern_cpu.c's dev_q and its flusher), started once (cuda: by
 *     mmsb_kern_select; cpu_dev: by its first operation);
 *   - the page-memory account and its cap (kern_host.c: acct_*, set by
 *     mmsb_kern_gpu_limit), shared by both device tables;
 *   - cuda only: a cache of up to CACHE_BATCHES freed batches (kern_cuda.cu:
 *     cache[], cache_mu) that batch_new hands out again.
 * So two stores in one process share one GPU queue, one gpu_mem cap and the
 * batch cache; nothing here belongs to a store.  The "cpu" table keeps no
 * state.  A batch is used by one thread at a time.
 */
#ifndef MMSB_KERN_H
#define MMSB_KERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- delta batches ---------------------------------------------------------
 * A batch collects deltas to many pages and applies them in one call (one
 * H2D copy and one launch on the GPU).  Deltas are folded as they are added:
 * the batch holds, per touched 16-byte lane of memory, a 16-bit mask and 16
 * data bytes, so a later delta to the same bytes overrides an earlier one in
 * the batch exactly as applying them in order would, and every lane has one
 * writer per launch.  Applying sets, for every byte covered by the batch,
 * base[i] = data[i] (base[i] = mask[i] ? delta[i] : base[i]).
 *
 * Lanes are aligned to 16 bytes of ADDRESS (not of page offset), so pages
 * need no alignment; a lane that is not wholly inside its page is written
 * byte by byte (only the covered bytes), so adjacent pages may share a lane.
 * Pages of one batch must not overlap unless they are the same page.
 *
 * Compact layout (documented for the bench; kern_int.h has the struct):
 * three arrays of n_lanes entries, 26 bytes per lane:
 *     uint8_t  data[16]   the new bytes (don't-care where the mask is 0)
 *     uint64_t addr       lane address (16-aligned) | 1 if partial lane
 *     uint16_t mask       bit j set <=> byte j of the lane is written
 * The cuda table keeps them in pinned host memory and copies them to the
 * device in one go per array; applying a batch again without changing it
 * reuses the device copy (no transfer). */
struct mmsb_kern_batch;

/* Add an encoded delta (src/delta.h: MMSB_ENC_RUNS = 1, MMSB_ENC_BITMAP = 2)
 * to page[0..page_size).  The body is validated first with exactly the rules
 * of mmsb_delta_check (empty body = empty delta; every covered byte below
 * page_size); a malformed body returns -EUCLEAN.  page is not read or
 * written here.  Returns 0, -EUCLEAN or -ENOMEM; on error the batch is
 * unchanged (room is reserved before anything is added). */
int mmsb_kern_batch_add(struct mmsb_kern_batch *b, void *page, uint64_t page_size, uint8_t enc,
			const uint8_t *body, size_t len);

/* Add a plain write of src[0..n) at page offset off (off + n <= page_size,
 * else -EINVAL).  Returns 0, -EINVAL, -ENOMEM. */
int mmsb_kern_batch_add_bytes(struct mmsb_kern_batch *b, void *page, uint64_t page_size, uint64_t off,
			      const uint8_t *src, size_t n);

/* Forget every delta (keeps the memory).  Waits for an apply still reading
 * the batch. */
void mmsb_kern_batch_reset(struct mmsb_kern_batch *b);

/* Lanes held (each is 16 bytes of page memory or less). */
size_t mmsb_kern_batch_lanes(const struct mmsb_kern_batch *b);

/* ---- recompute operations ---------------------------------------------------
 * out[0..out_len) is computed from the parents in[k][0..in_len[k]),
 * k < n_in, in parent order.  out must not overlap any parent (-EINVAL).
 *
 *   COPY    n_in == 1, out_len == in_len[0]; out = in[0]
 *   CONCAT  n_in >= 0, out_len == sum of in_len; parents back to back
 *   XOR     n_in >= 1, all in_len == out_len; byte-wise xor of all parents
 *   ADD, MIN, MAX   element-wise over elem: n_in >= 1, all in_len ==
 *           out_len, out_len a multiple of the element size;
 *           out[i] = op(...op(op(in[0][i], in[1][i]), in[2][i])..., in[n-1][i])
 *           (a left fold in parent order)
 *   SUM     every in_len a multiple of the element size, out_len == the
 *           element size; out = the sum of ALL elements of all parents taken
 *           as one sequence x[0..N) (parent 0 first)
 *
 * Elements are in host byte order (little-endian on every supported
 * machine); pointers need no alignment.  The elem argument is ignored for
 * COPY, CONCAT and XOR.
 *
 * Integers (u8..u64, i32, i64): ADD and SUM wrap modulo 2^bits; MIN/MAX
 * compare as signed for i32/i64, unsigned otherwise.
 *
 * Floats (f32, f64; IEEE 754 binary32/64, round to nearest even, no flush
 * of subnormals):
 *   - ADD: plain IEEE addition in the left-fold order above.
 *   - MIN/MAX propagate NaN like numpy.minimum/maximum: if either operand is
 *     NaN the result is NaN.  -0.0 and +0.0: MIN(-0,+0) = MIN(+0,-0) = -0,
 *     MAX(-0,+0) = MAX(+0,-0) = +0 (IEEE 754-2019 minimum/maximum), so the
 *     result does not depend on parent order.
 *   - SUM: a fixed pairwise tree.  Pad x[0..N) with -0.0 up to the next
 *     power of two P >= N; the sum is the perfect binary tree
 *         S(lo, hi) = hi - lo == 1 ? x[lo] : S(lo, mid) + S(mid, hi),
 *         mid = (lo + hi) / 2,  over [0, P).
 *     Since x + (-0.0) == x for every x, this equals splitting [lo, hi) at
 *     the largest power of two below hi - lo.  The empty sum (N == 0) is
 *     +0.0.  CPU and GPU evaluate this same tree, so results are
 *     bit-identical.
 *   - NaN results are written as the canonical quiet NaN (f32 0x7fc00000,
 *     f64 0x7ff8000000000000) by ADD, MIN, MAX and SUM: NaN payloads are not
 *     propagated (GPUs do not preserve them, so neither does the CPU table).
 *     inf - inf gives that NaN too.
 */
enum mmsb_kern_op {
	MMSB_KERN_COPY = 1,
	MMSB_KERN_CONCAT = 2,
	MMSB_KERN_XOR = 3,
	MMSB_KERN_ADD = 4,
	MMSB_KERN_MIN = 5,
	MMSB_KERN_MAX = 6,
	MMSB_KERN_SUM = 7,
};

enum mmsb_kern_elem {
	MMSB_KERN_U8 = 1,
	MMSB_KERN_U16 = 2,
	MMSB_KERN_U32 = 3,
	MMSB_KERN_U64 = 4,
	MMSB_KERN_I32 = 5,
	MMSB_KERN_I64 = 6,
	MMSB_KERN_F32 = 7,
	MMSB_KERN_F64 = 8,
};

/* Bytes per element, or 0 for an unknown elem. */
size_t mmsb_kern_elem_size(enum mmsb_kern_elem elem);

/* Parse a recompute name: "copy", "concat", "xor", or "<op>:<elem>" with
 * op in add|min|max|sum and elem in u8|u16|u32|u64|i32|i64|f32|f64
 * (e.g. "sum:f64").  *elem is MMSB_KERN_U8 for the untyped ones.
 * Returns 0 or -EINVAL. */
int mmsb_kern_op_parse(const char *s, enum mmsb_kern_op *op, enum mmsb_kern_elem *elem);

/* The out_len an operation produces from these parents, with all the size
 * checks of recompute.  Returns 0 (and *out_len) or -EINVAL. */
int mmsb_kern_recompute_len(enum mmsb_kern_op op, enum mmsb_kern_elem elem, const size_t *in_len, size_t n_in,
			    size_t *out_len);

/* ---- the table -------------------------------------------------------------- */
struct mmsb_kern_ops {
	const char *name; /* "cpu" or "cuda" */

	/* Page memory.  page_alloc: n bytes, zeroed, 64-byte aligned (cpu:
	 * host memory; cuda: cudaMallocManaged, preferred location the GPU,
	 * populated there; -ENOSPC when n does not fit in the GPU's free memory
	 * minus a reserve).  n == 0 gives *out = NULL.  page_free(NULL) is 0. */
	int (*page_alloc)(size_t n, void **out);
	int (*page_free)(void *p);
	/* Host <-> page transfers, synchronous: copy_out returns once the bytes
	 * of every prior operation are in dst. */
	int (*copy_in)(void *page, const void *src, size_t n);
	int (*copy_out)(void *dst, const void *page, size_t n);
	/* Wait for all queued work; report an error of queued work (-EIO). */
	int (*sync)(void);

	/* Batches: created by and for this table (apply_batch of another
	 * table's batch is -EINVAL).  batch_free(NULL) is 0. */
	int (*batch_new)(struct mmsb_kern_batch **out);
	int (*batch_free)(struct mmsb_kern_batch *b);
	int (*apply_batch)(struct mmsb_kern_batch *b);

	/* dst/src of copy must not overlap (-EINVAL).  compare sets *first to
	 * the first offset where a and b differ, or -1 if they are equal. */
	int (*copy)(void *dst, const void *src, size_t n);
	int (*zero)(void *dst, size_t n);
	int (*compare)(const void *a, const void *b, size_t n, int64_t *first);

	int (*recompute)(enum mmsb_kern_op op, enum mmsb_kern_elem elem, void *out, size_t out_len,
			 const void *const *in, const size_t *in_len, size_t n_in);

	/* The write path of device pages: asynchronous, batched deltas.
	 * enqueue validates a delta to page[0..page_size) exactly as
	 * mmsb_kern_batch_add does (-EUCLEAN, -EINVAL, -ENOMEM: nothing queued
	 * then) and folds it into the table's queue; it returns without waiting
	 * for the device.  The queue is applied in order, batched across calls
	 * (cuda: a flusher thread hands the collected lanes to the device's
	 * stream as one H2D copy and one launch, with an event per batch).
	 * Every other operation of the table (copy, zero, compare, recompute,
	 * copy_in, copy_out, sync, page_free) sees every delta enqueued before
	 * it.  read copies page[off..off + n) to host memory once the deltas
	 * queued for that page have been applied: it waits for that page's last
	 * batch only (and for copy/zero/recompute issued earlier), not for the
	 * rest of the queue.  page is the start of a page_alloc allocation.
	 * "cpu" applies at once; mmsb_kern_cpu_dev() queues like "cuda". */
	int (*enqueue)(void *page, uint64_t page_size, uint8_t enc, const uint8_t *body, size_t len);
	int (*read)(void *dst, const void *page, uint64_t off, size_t n);
};

/* The CUDA table when want_gpu, CUDA was built and a GPU answers (with
 * managed memory and a kernel image for it); otherwise the CPU table.  Never
 * NULL.  It probes the device (the first call initializes the CUDA runtime,
 * which can take a second): call it once, at mount, and keep the pointer. */
const struct mmsb_kern_ops *mmsb_kern_select(bool want_gpu);

/* The CPU reference table, always available. */
const struct mmsb_kern_ops *mmsb_kern_cpu(void);

/* The CPU table posing as a device (-o gpu=cpu): the same operations on host
 * memory, with the queue of a device table (enqueue returns before the
 * apply, which a flusher thread runs; read waits for the page's batches) and
 * the gpu_mem cap on page_alloc.  For CPU-only hosts and for tests of the
 * device paths.  With MMSB_KERN_NOFLUSHER set in the environment (tests) it
 * has no flusher thread: queued deltas wait until an operation needs them. */
const struct mmsb_kern_ops *mmsb_kern_cpu_dev(void);

/* Cap the page memory of device tables (cuda and cpu_dev) at bytes, for the
 * whole process (0: no cap other than the device's free memory).  A
 * page_alloc that would pass it is -ENOSPC.  Pages already allocated stay. */
void mmsb_kern_gpu_limit(uint64_t bytes);
/* Page memory device tables hold now (bytes). */
uint64_t mmsb_kern_gpu_used(void);

/* Counters of a device table's queue: deltas enqueued and batches submitted
 * (n_submits < n_enqueued shows batching).  Zero for "cpu". */
void mmsb_kern_queue_stats(const struct mmsb_kern_ops *k, uint64_t *n_enqueued, uint64_t *n_submits);

struct mmsb_kern_gpu_info {
	int device;		 /* CUDA ordinal in use (0) */
	char name[256];		 /* e.g. "NVIDIA H100 80GB HBM3" */
	int cc_major, cc_minor;	 /* compute capability */
	int n_sms;		 /* multiprocessors */
	bool concurrent_managed; /* cudaDevAttrConcurrentManagedAccess */
	uint64_t free_bytes, total_bytes;
	int runtime_version, driver_version; /* e.g. 13000 */
};

/* Describe GPU 0.  Returns 0, or -ENODEV when CUDA was not built, there is
 * no GPU, or no usable driver (then *out is zeroed). */
int mmsb_kern_gpu_probe(struct mmsb_kern_gpu_info *out);

#ifdef __cplusplus
}
#endif

#endif
