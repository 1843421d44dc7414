/* kern_cuda.cu - the CUDA kernel table (built with -Dcuda=enabled|auto when
 * nvcc exists).  Only the extern "C" functions at the end leave this file;
 * everything else is reached through the table.
 *
 * Design (measurements: /work/shared/GPU-NOTES.md §1):
 *  - Page memory is cudaMallocManaged with PreferredLocation = the GPU, first
 *    touched there by a memset.  ReadMostly is never set (pages are written
 *    by the GPU).  page_alloc refuses (-ENOSPC) anything that would not leave
 *    KERN_GPU_RESERVE of free GPU memory: oversubscribing managed memory can
 *    hang the lent GPU.
 *  - All work but the apply queue goes to the legacy default stream, which
 *    orders it across host threads; copy_out is a cudaMemcpy, which waits
 *    for it.  Queued deltas (enqueue) are applied by batches on q_stream,
 *    a blocking stream, submitted by the flusher thread of kern_host.c;
 *    read() waits for its page's batch and copies on a non-blocking stream
 *    (see "the queue and ordering" below).
 *  - -o gpu_mem: page_alloc counts pages against the cap of
 *    mmsb_kern_gpu_limit (kern_acct_*, kern_host.c).
 *  - Delta apply: the batch's lane arrays (pinned) are copied H2D in three
 *    cudaMemcpyAsync and applied by one k_apply launch: 16-byte vector
 *    load/store per lane, the base is read only for partly covered lanes,
 *    lanes straddling a page edge are written byte by byte.  One writer per
 *    lane (the batch folds).
 *  - Element-wise recompute: 16-byte vector loads of every parent when all
 *    pointers are 16-aligned, element loads otherwise; up to KERN_EW_MAX_IN
 *    parents per launch, more parents continue the left fold from out.
 *  - SUM: blocks reduce aligned groups of 2048 elements (8 per thread, then
 *    warp shuffles, then 8 warps) along the padded pairwise tree of kern.h,
 *    padding with -0.0; partial sums are reduced by the same kernel until one
 *    value is left.  Several parents (or an unaligned one) are first
 *    concatenated into a temporary buffer.
 *  - Grids: min(work / 256, SMs x 8) blocks of 256 threads, grid-stride.
 *  - A pointer that is not device or managed memory (checked with
 *    cudaPointerGetAttributes) sends the call to the CPU table after a
 *    device sync.
 */
#include <cuda_runtime.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kern_int.h"

#define KERN_BLOCK 256
#define KERN_GPU_RESERVE (256ull << 20) /* free GPU memory page_alloc always leaves */
#define KERN_EW_MAX_IN 8
#define KERN_SUM_PER_THREAD 8
#define KERN_SUM_PER_BLOCK (KERN_BLOCK * KERN_SUM_PER_THREAD)

namespace {

/* ---- helpers ----------------------------------------------------------------- */

int err_of(cudaError_t e)
{
	if (e == cudaSuccess)
		return 0;
	cudaGetLastError(); /* clear a sticky-free error */
	return e == cudaErrorMemoryAllocation ? -ENOMEM : -EIO;
}

int n_sms(void)
{
	int dev = 0, v = 0;

	if (cudaGetDevice(&dev) != cudaSuccess ||
	    cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || v <= 0)
		v = 16;
	return v;
}

unsigned grid_for(size_t work)
{
	size_t need = (work + KERN_BLOCK - 1) / KERN_BLOCK, cap = (size_t)n_sms() * 8;

	if (need > cap)
		need = cap;
	return need ? (unsigned)need : 1u;
}

enum mem_kind { MEM_HOST, MEM_MANAGED, MEM_DEVICE };

enum mem_kind mem_kind(const void *p)
{
	cudaPointerAttributes a;

	if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
		cudaGetLastError();
		return MEM_HOST;
	}
	return a.type == cudaMemoryTypeManaged ? MEM_MANAGED : a.type == cudaMemoryTypeDevice ? MEM_DEVICE : MEM_HOST;
}

/* Device or managed memory (usable by kernels)? */
bool dev_ok(const void *p)
{
	return mem_kind(p) != MEM_HOST;
}

/* Usable by the CPU fallback (host or managed)? */
bool host_ok(const void *p)
{
	return mem_kind(p) != MEM_DEVICE;
}

int wait_all(void)
{
	return err_of(cudaDeviceSynchronize());
}

cudaError_t advise_preferred_gpu(void *p, size_t n, int dev)
{
#if CUDART_VERSION >= 13000
	struct cudaMemLocation l;

	l.type = cudaMemLocationTypeDevice;
	l.id = dev;
	return cudaMemAdvise(p, n, cudaMemAdviseSetPreferredLocation, l);
#else
	return cudaMemAdvise(p, n, cudaMemAdviseSetPreferredLocation, dev);
#endif
}

/* ---- device helpers ------------------------------------------------------------- */

__device__ __forceinline__ uint32_t sel(uint32_t b, uint32_t d, uint32_t m)
{
	return (b & ~m) | (d & m);
}

/* 4 mask bits -> 4 byte lanes of 0x00/0xff */
__device__ __forceinline__ uint32_t ex4(uint32_t v)
{
	return ((v * 0x00204081u) & 0x01010101u) * 0xffu;
}

__device__ __forceinline__ uint4 sel4(uint4 x, uint4 y, uint32_t w)
{
	x.x = sel(x.x, y.x, ex4(w & 15));
	x.y = sel(x.y, y.y, ex4((w >> 4) & 15));
	x.z = sel(x.z, y.z, ex4((w >> 8) & 15));
	x.w = sel(x.w, y.w, ex4(w >> 12));
	return x;
}

__device__ __forceinline__ uint8_t byte_of(uint4 v, unsigned j)
{
	uint32_t w = j < 8 ? (j < 4 ? v.x : v.y) : (j < 12 ? v.z : v.w);

	return (uint8_t)(w >> (8 * (j & 3)));
}

__device__ __forceinline__ float canon(float x)
{
	return x != x ? __uint_as_float(0x7fc00000u) : x;
}

__device__ __forceinline__ double canon(double x)
{
	return x != x ? __longlong_as_double(0x7ff8000000000000ll) : x;
}

__device__ __forceinline__ bool neg(float x)
{
	return (__float_as_uint(x) >> 31) != 0;
}

__device__ __forceinline__ bool neg(double x)
{
	return __double_as_longlong(x) < 0;
}

/* ---- delta apply ------------------------------------------------------------------ */

__global__ void k_apply(const uint4 *__restrict__ data, const unsigned long long *__restrict__ addr,
			const uint16_t *__restrict__ mask, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		uint32_t w = mask[i];
		unsigned long long a = addr[i];
		uint4 y = data[i];

		if (a & 1ull) { /* lane sticks out of its page: only covered bytes */
			uint8_t *dst = (uint8_t *)(uintptr_t)(a & ~15ull);

			while (w) {
				unsigned j = (unsigned)(__ffs((int)w) - 1);

				dst[j] = byte_of(y, j);
				w &= w - 1;
			}
			continue;
		}
		uint4 *dst = (uint4 *)(uintptr_t)(a & ~15ull);

		if (w != 0xffffu)
			y = sel4(*dst, y, w);
		*dst = y;
	}
}

/* ---- element-wise ops ------------------------------------------------------------ */

struct OpXor {
	template <class T> __device__ static T f(T a, T b) { return (T)(a ^ b); }
	template <class T> __device__ static T fin(T a) { return a; }
};

struct OpAdd {
	template <class T> __device__ static T f(T a, T b) { return (T)(a + b); }
	__device__ static float f(float a, float b) { return canon(a + b); }
	__device__ static double f(double a, double b) { return canon(a + b); }
	template <class T> __device__ static T fin(T a) { return a; }
	__device__ static float fin(float a) { return canon(a); }
	__device__ static double fin(double a) { return canon(a); }
};

struct OpMin {
	template <class T> __device__ static T f(T a, T b) { return b < a ? b : a; }
	template <class F> __device__ static F ff(F a, F b)
	{
		if (a != a || b != b)
			return canon(a + b);
		if (a < b)
			return a;
		if (b < a)
			return b;
		return neg(a) ? a : b;
	}
	__device__ static float f(float a, float b) { return ff(a, b); }
	__device__ static double f(double a, double b) { return ff(a, b); }
	template <class T> __device__ static T fin(T a) { return a; }
	__device__ static float fin(float a) { return canon(a); }
	__device__ static double fin(double a) { return canon(a); }
};

struct OpMax {
	template <class T> __device__ static T f(T a, T b) { return b > a ? b : a; }
	template <class F> __device__ static F ff(F a, F b)
	{
		if (a != a || b != b)
			return canon(a + b);
		if (a > b)
			return a;
		if (b > a)
			return b;
		return neg(a) ? b : a;
	}
	__device__ static float f(float a, float b) { return ff(a, b); }
	__device__ static double f(double a, double b) { return ff(a, b); }
	template <class T> __device__ static T fin(T a) { return a; }
	__device__ static float fin(float a) { return canon(a); }
	__device__ static double fin(double a) { return canon(a); }
};

struct EwIn {
	const uint8_t *p[KERN_EW_MAX_IN];
	int n;
};

template <class T> union Lanes {
	uint4 v;
	T t[16 / sizeof(T)];
};

template <class T, class Op> __device__ __forceinline__ uint4 vcomb(uint4 a, uint4 b)
{
	Lanes<T> x, y;

	x.v = a;
	y.v = b;
#pragma unroll
	for (unsigned j = 0; j < 16 / sizeof(T); j++)
		x.t[j] = Op::f(x.t[j], y.t[j]);
	return x.v;
}

template <class T, class Op> __device__ __forceinline__ uint4 vfin(uint4 a)
{
	Lanes<T> x;

	x.v = a;
#pragma unroll
	for (unsigned j = 0; j < 16 / sizeof(T); j++)
		x.t[j] = Op::fin(x.t[j]);
	return x.v;
}

template <class T> __device__ __forceinline__ T ld_u(const uint8_t *p)
{
	T v;

	memcpy(&v, p, sizeof(T));
	return v;
}

template <class T> __device__ __forceinline__ void st_u(uint8_t *p, T v)
{
	memcpy(p, &v, sizeof(T));
}

/* out[0..n) = fold of in.p[0..in.n) element-wise.  vec: every pointer is
 * 16-aligned (then the tail past the last full 16 bytes is element-aligned). */
template <class T, class Op> __global__ void k_ew(uint8_t *out, EwIn in, size_t n, bool vec)
{
	size_t tid = blockIdx.x * (size_t)blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;

	if (vec) {
		size_t nv = n / 16;

		for (size_t c = tid; c < nv; c += stride) {
			uint4 acc = ((const uint4 *)in.p[0])[c];

			for (int k = 1; k < in.n; k++)
				acc = vcomb<T, Op>(acc, ((const uint4 *)in.p[k])[c]);
			((uint4 *)out)[c] = vfin<T, Op>(acc);
		}
		for (size_t i = nv * 16 + tid * sizeof(T); i < n; i += stride * sizeof(T)) {
			T acc = *(const T *)(in.p[0] + i);

			for (int k = 1; k < in.n; k++)
				acc = Op::f(acc, *(const T *)(in.p[k] + i));
			*(T *)(out + i) = Op::fin(acc);
		}
		return;
	}
	for (size_t i = tid * sizeof(T); i < n; i += stride * sizeof(T)) {
		T acc = ld_u<T>(in.p[0] + i);

		for (int k = 1; k < in.n; k++)
			acc = Op::f(acc, ld_u<T>(in.p[k] + i));
		st_u<T>(out + i, Op::fin(acc));
	}
}

template <class T, class Op> int launch_ew(uint8_t *out, const void *const *in, size_t n, size_t n_in)
{
	size_t k = 0;
	bool first = true;

	while (first || k < n_in) {
		EwIn e;
		bool vec = ((uintptr_t)out & 15) == 0;

		e.n = 0;
		if (!first)
			e.p[e.n++] = out; /* continue the left fold */
		while (e.n < KERN_EW_MAX_IN && k < n_in) {
			e.p[e.n] = (const uint8_t *)in[k++];
			vec = vec && ((uintptr_t)e.p[e.n] & 15) == 0;
			e.n++;
		}
		size_t work = vec ? n / 16 : n / sizeof(T);

		k_ew<T, Op><<<grid_for(work), KERN_BLOCK>>>(out, e, n, vec);
		int rc = err_of(cudaGetLastError());

		if (rc < 0)
			return rc;
		first = false;
	}
	return 0;
}

template <class Op> int ew_typed(enum mmsb_kern_elem elem, uint8_t *out, const void *const *in, size_t n,
				 size_t n_in)
{
	switch (elem) {
	case MMSB_KERN_U8:
		return launch_ew<uint8_t, Op>(out, in, n, n_in);
	case MMSB_KERN_U16:
		return launch_ew<uint16_t, Op>(out, in, n, n_in);
	case MMSB_KERN_U32:
		return launch_ew<uint32_t, Op>(out, in, n, n_in);
	case MMSB_KERN_U64:
		return launch_ew<unsigned long long, Op>(out, in, n, n_in);
	case MMSB_KERN_I32:
		return launch_ew<int32_t, Op>(out, in, n, n_in);
	case MMSB_KERN_I64:
		return launch_ew<long long, Op>(out, in, n, n_in);
	case MMSB_KERN_F32:
		return launch_ew<float, Op>(out, in, n, n_in);
	case MMSB_KERN_F64:
		return launch_ew<double, Op>(out, in, n, n_in);
	}
	return -EINVAL;
}

/* Signed ADD wraps: run it on the unsigned type of the same width. */
int ew_add(enum mmsb_kern_elem elem, uint8_t *out, const void *const *in, size_t n, size_t n_in)
{
	if (elem == MMSB_KERN_I32)
		elem = MMSB_KERN_U32;
	else if (elem == MMSB_KERN_I64)
		elem = MMSB_KERN_U64;
	return ew_typed<OpAdd>(elem, out, in, n, n_in);
}

/* ---- SUM -------------------------------------------------------------------------- */

/* E: element as stored; A: accumulator (float, double, or u64 for integers,
 * which wrap and are truncated at the end). */
template <class A> __device__ __forceinline__ A pad_value(void);
template <> __device__ __forceinline__ float pad_value<float>(void) { return __uint_as_float(0x80000000u); }
template <> __device__ __forceinline__ double pad_value<double>(void) { return __longlong_as_double((long long)0x8000000000000000ull); }
template <> __device__ __forceinline__ unsigned long long pad_value<unsigned long long>(void) { return 0ull; }

__device__ __forceinline__ float fin_sum(float a) { return canon(a); }
__device__ __forceinline__ double fin_sum(double a) { return canon(a); }
__device__ __forceinline__ unsigned long long fin_sum(unsigned long long a) { return a; }

template <class E> struct alignas(8 * sizeof(E) < 16 ? 8 * sizeof(E) : 16) Oct {
	E v[8];
};

/* Block b sums elements [b * 2048, b * 2048 + 2048) of in[0..n) (padded);
 * writes partial[b], or, with one block, the final value to out (es bytes). */
template <class E, class A> __global__ void k_sum(const E *__restrict__ in, size_t n, A *partial, uint8_t *out, size_t es)
{
	__shared__ A ws[KERN_BLOCK / 32];
	size_t base = blockIdx.x * (size_t)KERN_SUM_PER_BLOCK + (size_t)threadIdx.x * KERN_SUM_PER_THREAD;
	A x[8];

	if (base + 8 <= n) {
		Oct<E> o = *(const Oct<E> *)(in + base);

#pragma unroll
		for (int j = 0; j < 8; j++)
			x[j] = (A)o.v[j];
	} else {
#pragma unroll
		for (int j = 0; j < 8; j++)
			x[j] = base + j < n ? (A)in[base + j] : pad_value<A>();
	}
	A v = ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]));
	unsigned lane = threadIdx.x & 31;

#pragma unroll
	for (unsigned off = 1; off < 32; off *= 2) {
		A o = __shfl_down_sync(0xffffffffu, v, off);

		if ((lane & (2 * off - 1)) == 0)
			v = v + o;
	}
	if (lane == 0)
		ws[threadIdx.x / 32] = v;
	__syncthreads();
	if (threadIdx.x == 0) {
		A r = ((ws[0] + ws[1]) + (ws[2] + ws[3])) + ((ws[4] + ws[5]) + (ws[6] + ws[7]));

		if (gridDim.x == 1) {
			A f = fin_sum(r);

			if (sizeof(A) == es) {
				memcpy(out, &f, es);
			} else { /* integer: low es bytes (little-endian) */
				unsigned long long u = (unsigned long long)f;

				for (size_t j = 0; j < es; j++)
					out[j] = (uint8_t)(u >> (8 * j));
			}
		} else {
			partial[blockIdx.x] = r;
		}
	}
}

/* Elements of A reserved for a level of m partial sums: a multiple of 16 bytes. */
template <class A> size_t level_room(size_t m)
{
	size_t per = 16 / sizeof(A);

	return (m + per - 1) / per * per;
}

template <class E, class A> int sum_run(const E *in, size_t n, uint8_t *out, size_t es)
{
	size_t nb = (n + KERN_SUM_PER_BLOCK - 1) / KERN_SUM_PER_BLOCK, total = 0, m;
	A *tmp = NULL;
	int rc;

	/* room for every level of partial sums, each level 16-aligned (Oct loads) */
	for (m = nb; m > 1; m = (m + KERN_SUM_PER_BLOCK - 1) / KERN_SUM_PER_BLOCK)
		total += level_room<A>(m);
	if (total) {
		rc = err_of(cudaMallocAsync((void **)&tmp, total * sizeof(A), 0));
		if (rc < 0)
			return rc;
	}
	static_assert(KERN_BLOCK == 256, "k_sum's last step folds 8 warps");
	k_sum<E, A><<<(unsigned)nb, KERN_BLOCK>>>(in, n, tmp, out, es);
	rc = err_of(cudaGetLastError());
	A *level = tmp;
	for (m = nb; rc == 0 && m > 1;) {
		size_t next = (m + KERN_SUM_PER_BLOCK - 1) / KERN_SUM_PER_BLOCK;

		k_sum<A, A><<<(unsigned)next, KERN_BLOCK>>>(level, m, level + level_room<A>(m), out, es);
		rc = err_of(cudaGetLastError());
		level += level_room<A>(m);
		m = next;
	}
	if (tmp)
		cudaFreeAsync(tmp, 0);
	return rc;
}

int sum_typed(enum mmsb_kern_elem elem, const void *in, size_t n_elem, uint8_t *out)
{
	size_t es = mmsb_kern_elem_size(elem);

	switch (elem) {
	case MMSB_KERN_U8:
		return sum_run<uint8_t, unsigned long long>((const uint8_t *)in, n_elem, out, es);
	case MMSB_KERN_U16:
		return sum_run<uint16_t, unsigned long long>((const uint16_t *)in, n_elem, out, es);
	case MMSB_KERN_U32:
	case MMSB_KERN_I32:
		return sum_run<uint32_t, unsigned long long>((const uint32_t *)in, n_elem, out, es);
	case MMSB_KERN_U64:
	case MMSB_KERN_I64:
		return sum_run<unsigned long long, unsigned long long>((const unsigned long long *)in, n_elem, out,
								       es);
	case MMSB_KERN_F32:
		return sum_run<float, float>((const float *)in, n_elem, out, es);
	case MMSB_KERN_F64:
		return sum_run<double, double>((const double *)in, n_elem, out, es);
	}
	return -EINVAL;
}

/* ---- compare ----------------------------------------------------------------------- */

__global__ void k_cmp(const uint8_t *a, const uint8_t *b, size_t n, bool vec, unsigned long long *res)
{
	size_t tid = blockIdx.x * (size_t)blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
	size_t start = 0;

	if (vec) {
		size_t nv = n / 16;

		for (size_t c = tid; c < nv; c += stride) {
			if (*(volatile unsigned long long *)res < c * 16)
				return; /* an earlier difference is known */
			uint4 x = ((const uint4 *)a)[c], y = ((const uint4 *)b)[c];
			uint32_t d[4] = {x.x ^ y.x, x.y ^ y.y, x.z ^ y.z, x.w ^ y.w};

			for (int k = 0; k < 4; k++) {
				if (d[k]) {
					atomicMin(res, (unsigned long long)(c * 16 + 4 * k + (__ffs((int)d[k]) - 1) / 8));
					break;
				}
			}
		}
		start = nv * 16;
	}
	for (size_t i = start + tid; i < n; i += stride) {
		if (a[i] != b[i]) {
			atomicMin(res, (unsigned long long)i);
			return;
		}
	}
}

/* ---- the table --------------------------------------------------------------------- */

extern const struct mmsb_kern_ops cuda_ops;

#define READ_STREAMS 8

struct kern_queue q;
pthread_once_t q_once = PTHREAD_ONCE_INIT;
cudaStream_t q_stream;
cudaStream_t read_streams[READ_STREAMS];
unsigned read_next;
pthread_mutex_t other_mu = PTHREAD_MUTEX_INITIALIZER;
cudaEvent_t other_ev;
bool q_ok;

int cuda_page_alloc(size_t n, void **out)
{
	size_t fr = 0, tot = 0;
	int dev = 0, rc;
	void *p = NULL;

	*out = NULL;
	if (n == 0)
		return 0;
	rc = err_of(cudaGetDevice(&dev));
	if (rc == 0)
		rc = err_of(cudaMemGetInfo(&fr, &tot));
	if (rc < 0)
		return rc;
	if (n > fr || fr - n < KERN_GPU_RESERVE || !kern_acct_fits(n))
		return -ENOSPC;
	rc = err_of(cudaMallocManaged(&p, n, cudaMemAttachGlobal));
	if (rc < 0)
		return rc == -ENOMEM ? -ENOSPC : rc;
	rc = err_of(advise_preferred_gpu(p, n, dev));
	if (rc == 0)
		rc = err_of(cudaMemsetAsync(p, 0, n, 0)); /* first touch on the GPU */
	if (rc == 0)
		rc = kern_acct_take(p, n); /* -ENOSPC: another allocation took the room meanwhile */
	if (rc < 0) {
		cudaFree(p);
		return rc;
	}
	*out = p;
	return 0;
}

int cuda_page_free(void *p)
{
	int rc;

	if (!p)
		return 0;
	rc = kq_wait_page(&q, p); /* no queued lane may land in freed memory */
	kern_acct_give(p);
	return rc < 0 ? rc : err_of(cudaFree(p));
}

int q_before(void);
int q_after(int rc);

int cuda_copy_io(void *dst, const void *src, size_t n)
{
	int rc;

	if (n == 0)
		return 0;
	if (!dst || !src)
		return -EINVAL;
	rc = q_before();
	return rc < 0 ? rc : err_of(cudaMemcpy(dst, src, n, cudaMemcpyDefault));
}

int cuda_sync(void)
{
	int rc = kq_drain(&q), r2 = wait_all();

	return rc < 0 ? rc : r2;
}

void *pinned_alloc(size_t n)
{
	void *p = NULL;

	if (cudaHostAlloc(&p, n, cudaHostAllocDefault) != cudaSuccess) {
		cudaGetLastError();
		return NULL;
	}
	return p;
}

void pinned_free(void *p)
{
	cudaFreeHost(p);
}

void cuda_batch_wait(struct mmsb_kern_batch *b)
{
	if (b->ev)
		cudaEventSynchronize((cudaEvent_t)b->ev);
}

/* Freed batches kept for the next batch_new: making one costs an event,
 * pinned host arrays and device arrays, about a millisecond, and the store
 * makes one for every write to a GPU page.  Only batches of at most
 * CACHE_MAX_LANES lanes are kept (their pinned memory stays allocated). */
#define CACHE_BATCHES 4
#define CACHE_MAX_LANES ((size_t)1 << 16)

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mmsb_kern_batch *cache[CACHE_BATCHES];
static int n_cached;

int cuda_batch_new(struct mmsb_kern_batch **out)
{
	struct mmsb_kern_batch *b = NULL;
	cudaEvent_t ev;
	int rc;

	pthread_mutex_lock(&cache_mu);
	if (n_cached > 0)
		b = cache[--n_cached];
	pthread_mutex_unlock(&cache_mu);
	*out = b;
	if (b)
		return 0; /* reset when it was put back */
	b = (struct mmsb_kern_batch *)malloc(sizeof(*b));
	if (!b)
		return -ENOMEM;
	kern_batch_init(b, &cuda_ops, pinned_alloc, pinned_free);
	rc = err_of(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
	if (rc < 0) {
		free(b);
		return rc;
	}
	b->ev = (void *)ev;
	b->wait = cuda_batch_wait;
	*out = b;
	return 0;
}

int cuda_batch_free(struct mmsb_kern_batch *b)
{
	if (!b)
		return 0;
	if (b->cap <= CACHE_MAX_LANES) {
		mmsb_kern_batch_reset(b); /* waits for its last apply */
		pthread_mutex_lock(&cache_mu);
		if (n_cached < CACHE_BATCHES) {
			cache[n_cached++] = b;
			b = NULL;
		}
		pthread_mutex_unlock(&cache_mu);
		if (!b)
			return 0;
	}
	kern_batch_release(b);
	if (b->dev)
		cudaFree(b->dev);
	if (b->ev)
		cudaEventDestroy((cudaEvent_t)b->ev);
	free(b);
	return 0;
}

/* H2D copies of b's lanes (unless uploaded) and one k_apply on stream s,
 * then b's event.  Every page of b must be GPU memory. */
int apply_on(struct mmsb_kern_batch *b, cudaStream_t s)
{
	size_t cap;
	uint8_t *d;
	int rc;

	if (b->n == 0)
		return 0;
	if (b->dev_cap < b->n) {
		void *nd = NULL;

		if (b->dev) {
			cudaFree(b->dev); /* synchronizes: no kernel still reads it */
			b->dev = NULL;
			b->dev_cap = 0;
		}
		b->uploaded = false;
		rc = err_of(cudaMalloc(&nd, b->cap * (KERN_LANE + 8 + 2)));
		if (rc < 0)
			return rc;
		b->dev = nd;
		b->dev_cap = b->cap;
	}
	cap = b->dev_cap;
	d = (uint8_t *)b->dev;
	if (!b->uploaded) { /* an unchanged batch re-applies from the device copy */
		rc = err_of(cudaMemcpyAsync(d, b->data, b->n * KERN_LANE, cudaMemcpyHostToDevice, s));
		if (rc == 0)
			rc = err_of(cudaMemcpyAsync(d + cap * KERN_LANE, b->addr, b->n * 8, cudaMemcpyHostToDevice, s));
		if (rc == 0)
			rc = err_of(cudaMemcpyAsync(d + cap * (KERN_LANE + 8), b->mask, b->n * 2,
						    cudaMemcpyHostToDevice, s));
		if (rc < 0) {
			cudaDeviceSynchronize(); /* no copy may still read the host arrays */
			cudaGetLastError();
			return rc;
		}
		b->uploaded = true;
	}
	k_apply<<<grid_for(b->n), KERN_BLOCK, 0, s>>>((const uint4 *)d, (const unsigned long long *)(d + cap * KERN_LANE),
							(const uint16_t *)(d + cap * (KERN_LANE + 8)), b->n);
	rc = err_of(cudaGetLastError());
	if (rc == 0)
		rc = err_of(cudaEventRecord((cudaEvent_t)b->ev, s));
	b->pending = true; /* the copies may be in flight even after an error */
	return rc;
}

/* ---- the queue (kern_int.h) and ordering ------------------------------------------
 * Queued batches go to q_stream, a blocking stream: the legacy default
 * stream, where every other operation runs, is ordered after the work
 * submitted to it and before the work submitted later.  Those operations
 * first submit the open batch (kq_submit), so they see every enqueued
 * delta.  read() waits for the page's last batch (its event), then for the
 * latest copy/zero/recompute (other_ev, recorded after each), and copies on
 * a non-blocking stream of its own: it does not wait for later batches. */

int q_submit_batch(struct mmsb_kern_batch *b)
{
	return apply_on(b, q_stream);
}

bool q_done(struct mmsb_kern_batch *b, bool block)
{
	cudaError_t e = block ? cudaEventSynchronize((cudaEvent_t)b->ev) : cudaEventQuery((cudaEvent_t)b->ev);

	if (e == cudaErrorNotReady)
		return false;
	if (e != cudaSuccess)
		cudaGetLastError(); /* a fault: reported by the next synchronous call */
	return true;
}

int cuda_batch_new(struct mmsb_kern_batch **out);
int cuda_batch_free(struct mmsb_kern_batch *b);

const struct kern_queue_backend q_backend = {q_submit_batch, q_done, cuda_batch_new, cuda_batch_free};

void q_init(void)
{
	int i;

	kq_init(&q, &q_backend, true);
	q_ok = cudaStreamCreate(&q_stream) == cudaSuccess &&
	       cudaEventCreateWithFlags(&other_ev, cudaEventDisableTiming) == cudaSuccess;
	for (i = 0; q_ok && i < READ_STREAMS; i++)
		q_ok = cudaStreamCreateWithFlags(&read_streams[i], cudaStreamNonBlocking) == cudaSuccess;
	cudaGetLastError();
}

/* Before an operation on the legacy stream: submit queued deltas. */
int q_before(void)
{
	return kq_submit(&q);
}

/* After an asynchronous write on the legacy stream: readers wait for it. */
int q_after(int rc)
{
	pthread_mutex_lock(&other_mu);
	if (cudaEventRecord(other_ev, 0) != cudaSuccess && rc == 0)
		rc = -EIO;
	pthread_mutex_unlock(&other_mu);
	return rc;
}

int cuda_apply_batch(struct mmsb_kern_batch *b)
{
	size_t i;
	int rc;

	if (!b || b->ops != &cuda_ops)
		return -EINVAL;
	if (b->n == 0)
		return 0;
	rc = q_before();
	if (rc < 0)
		return rc;
	for (i = 0; i < b->n_pages; i++) {
		if (!dev_ok(b->pages[i].p)) { /* host pages: apply on the CPU */
			for (i = 0; i < b->n_pages; i++)
				if (!host_ok(b->pages[i].p))
					return -EINVAL; /* host and cudaMalloc pages mixed */
			rc = wait_all();
			if (rc == 0)
				kern_cpu_apply_lanes(b);
			return rc;
		}
	}
	return q_after(apply_on(b, 0));
}

int cuda_enqueue(void *page, uint64_t page_size, uint8_t enc, const uint8_t *body, size_t len)
{
	return kq_enqueue(&q, page, page_size, enc, body, len);
}

int cuda_read(void *dst, const void *page, uint64_t off, size_t n)
{
	cudaStream_t s;
	int rc;

	if (n == 0)
		return 0;
	if (!dst || !page)
		return -EINVAL;
	rc = kq_wait_page(&q, page);
	if (rc < 0)
		return rc;
	s = read_streams[__atomic_fetch_add(&read_next, 1u, __ATOMIC_RELAXED) % READ_STREAMS];
	pthread_mutex_lock(&other_mu);
	rc = err_of(cudaStreamWaitEvent(s, other_ev, 0));
	pthread_mutex_unlock(&other_mu);
	if (rc == 0)
		rc = err_of(cudaMemcpyAsync(dst, (const uint8_t *)page + off, n, cudaMemcpyDefault, s));
	if (rc == 0)
		rc = err_of(cudaStreamSynchronize(s));
	return rc;
}

int cuda_copy(void *dst, const void *src, size_t n)
{
	if (n == 0)
		return 0;
	if (!dst || !src || kern_overlap(dst, n, src, n))
		return -EINVAL;
	int rc = q_before();

	return rc < 0 ? rc : q_after(err_of(cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, 0)));
}

int cuda_zero(void *dst, size_t n)
{
	int rc;

	if (n == 0)
		return 0;
	if (!dst)
		return -EINVAL;
	rc = q_before();
	if (rc < 0)
		return rc;
	if (dev_ok(dst))
		return q_after(err_of(cudaMemsetAsync(dst, 0, n, 0)));
	rc = wait_all();
	if (rc == 0)
		memset(dst, 0, n);
	return rc;
}

int cuda_compare(const void *a, const void *b, size_t n, int64_t *first)
{
	unsigned long long *res = NULL, h = ~0ull;
	bool vec;
	int rc;

	*first = -1;
	if (n == 0)
		return 0;
	if (!a || !b)
		return -EINVAL;
	rc = q_before();
	if (rc < 0)
		return rc;
	if (!dev_ok(a) || !dev_ok(b)) {
		if (!host_ok(a) || !host_ok(b))
			return -EINVAL;
		rc = wait_all();
		return rc < 0 ? rc : mmsb_kern_cpu()->compare(a, b, n, first);
	}
	vec = (((uintptr_t)a | (uintptr_t)b) & 15) == 0;
	rc = err_of(cudaMallocAsync((void **)&res, sizeof(*res), 0));
	if (rc < 0)
		return rc;
	rc = err_of(cudaMemsetAsync(res, 0xff, sizeof(*res), 0));
	if (rc == 0) {
		k_cmp<<<grid_for(vec ? n / 16 : n), KERN_BLOCK>>>((const uint8_t *)a, (const uint8_t *)b, n, vec, res);
		rc = err_of(cudaGetLastError());
	}
	if (rc == 0)
		rc = err_of(cudaMemcpy(&h, res, sizeof(h), cudaMemcpyDeviceToHost));
	cudaFreeAsync(res, 0);
	if (rc == 0 && h != ~0ull)
		*first = (int64_t)h;
	return rc;
}

int recompute_in(enum mmsb_kern_op op, enum mmsb_kern_elem elem, void *out, size_t out_len,
		 const void *const *in, const size_t *in_len, size_t n_in);

int cuda_recompute(enum mmsb_kern_op op, enum mmsb_kern_elem elem, void *out, size_t out_len,
		   const void *const *in, const size_t *in_len, size_t n_in)
{
	int rc = q_before();

	return rc < 0 ? rc : q_after(recompute_in(op, elem, out, out_len, in, in_len, n_in));
}

int recompute_in(enum mmsb_kern_op op, enum mmsb_kern_elem elem, void *out, size_t out_len,
		 const void *const *in, const size_t *in_len, size_t n_in)
{
	size_t k, at, total;
	uint8_t *o = (uint8_t *)out;
	bool gpu = true;
	int rc = kern_recompute_check(op, elem, out, out_len, in, in_len, n_in);

	if (rc < 0)
		return rc;
	if (out_len == 0)
		return 0;
	gpu = dev_ok(out);
	for (k = 0; gpu && k < n_in; k++)
		if (in_len[k] && !dev_ok(in[k]))
			gpu = false;
	if (!gpu) {
		if (!host_ok(out))
			return -EINVAL;
		for (k = 0; k < n_in; k++)
			if (in_len[k] && !host_ok(in[k]))
				return -EINVAL;
		rc = wait_all();
		return rc < 0 ? rc : mmsb_kern_cpu()->recompute(op, elem, out, out_len, in, in_len, n_in);
	}
	switch (op) {
	case MMSB_KERN_COPY:
		return err_of(cudaMemcpyAsync(o, in[0], out_len, cudaMemcpyDefault, 0));
	case MMSB_KERN_CONCAT:
		for (k = 0, at = 0; k < n_in; k++) {
			if (in_len[k]) {
				rc = err_of(cudaMemcpyAsync(o + at, in[k], in_len[k], cudaMemcpyDefault, 0));
				if (rc < 0)
					return rc;
			}
			at += in_len[k];
		}
		return 0;
	case MMSB_KERN_XOR:
		return launch_ew<uint8_t, OpXor>(o, in, out_len, n_in);
	case MMSB_KERN_ADD:
		return ew_add(elem, o, in, out_len, n_in);
	case MMSB_KERN_MIN:
		return ew_typed<OpMin>(elem, o, in, out_len, n_in);
	case MMSB_KERN_MAX:
		return ew_typed<OpMax>(elem, o, in, out_len, n_in);
	case MMSB_KERN_SUM:
		break;
	}
	/* SUM */
	size_t es = mmsb_kern_elem_size(elem);

	for (k = 0, total = 0; k < n_in; k++)
		total += in_len[k];
	if (total == 0)
		return err_of(cudaMemsetAsync(o, 0, es, 0)); /* +0 */
	if (n_in == 1 && ((uintptr_t)in[0] & 15) == 0)
		return sum_typed(elem, in[0], total / es, o);
	/* several parents (or an unaligned one): concatenate first */
	uint8_t *tmp = NULL;

	rc = err_of(cudaMallocAsync((void **)&tmp, total, 0));
	if (rc < 0)
		return rc;
	for (k = 0, at = 0; rc == 0 && k < n_in; k++) {
		if (in_len[k])
			rc = err_of(cudaMemcpyAsync(tmp + at, in[k], in_len[k], cudaMemcpyDeviceToDevice, 0));
		at += in_len[k];
	}
	if (rc == 0)
		rc = sum_typed(elem, tmp, total / es, o);
	cudaFreeAsync(tmp, 0);
	return rc;
}

const struct mmsb_kern_ops cuda_ops = {
	"cuda",
	cuda_page_alloc,
	cuda_page_free,
	cuda_copy_io,
	cuda_copy_io,
	cuda_sync,
	cuda_batch_new,
	cuda_batch_free,
	cuda_apply_batch,
	cuda_copy,
	cuda_zero,
	cuda_compare,
	cuda_recompute,
	cuda_enqueue,
	cuda_read,
};

} /* namespace */

extern "C" int mmsb_kern_gpu_probe(struct mmsb_kern_gpu_info *out)
{
	struct cudaDeviceProp prop;
	int cnt = 0, v = 0;
	size_t fr = 0, tot = 0;

	memset(out, 0, sizeof(*out));
	if (cudaGetDeviceCount(&cnt) != cudaSuccess || cnt <= 0) {
		cudaGetLastError();
		return -ENODEV;
	}
	if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess || cudaMemGetInfo(&fr, &tot) != cudaSuccess) {
		cudaGetLastError();
		return -ENODEV;
	}
	out->device = 0;
	memcpy(out->name, prop.name, sizeof(out->name) - 1 < sizeof(prop.name) ? sizeof(out->name) - 1 : sizeof(prop.name));
	out->name[sizeof(out->name) - 1] = '\0';
	out->cc_major = prop.major;
	out->cc_minor = prop.minor;
	out->n_sms = prop.multiProcessorCount;
	if (cudaDeviceGetAttribute(&v, cudaDevAttrConcurrentManagedAccess, 0) == cudaSuccess)
		out->concurrent_managed = v != 0;
	out->free_bytes = fr;
	out->total_bytes = tot;
	cudaRuntimeGetVersion(&out->runtime_version);
	cudaDriverGetVersion(&out->driver_version);
	cudaGetLastError();
	return 0;
}

extern "C" const struct mmsb_kern_ops *kern_cuda_table(void)
{
	struct mmsb_kern_gpu_info info;
	struct cudaFuncAttributes fa;
	int managed = 0;

	if (mmsb_kern_gpu_probe(&info) < 0)
		return NULL;
	if (cudaDeviceGetAttribute(&managed, cudaDevAttrManagedMemory, 0) != cudaSuccess || !managed) {
		cudaGetLastError();
		return NULL;
	}
	if (cudaFuncGetAttributes(&fa, k_apply) != cudaSuccess) { /* no kernel image for this GPU */
		cudaGetLastError();
		return NULL;
	}
	pthread_once(&q_once, q_init);
	return q_ok ? &cuda_ops : NULL;
}

extern "C" struct kern_queue *kern_cuda_queue(const struct mmsb_kern_ops *k)
{
	return k == &cuda_ops ? &q : NULL;
}
