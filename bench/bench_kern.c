/* bench_kern.c - the kernel layer (kernels/kern.h) in numbers.
 *
 *   bench_kern [MiB]       (default 256: size of the large buffers)
 *
 * With a GPU (CUDA built and a device present), on the selected "cuda" table:
 *   - device-to-device cudaMemcpy bandwidth, measured in this run: the yard
 *     stick ("traffic" counts bytes read + written);
 *   - large masked merges (one big page; dense, random 50% of bytes,
 *     clustered 1%): GB/s of page data covered and of memory traffic, the
 *     latter as a % of the D2D traffic rate (target >= 70%), kernel only
 *     (batch already on the device) and with the H2D transfer of the lanes;
 *   - batch apply of 65536 4 KiB deltas (real RUNS/BITMAP encodings):
 *     deltas/s for folding on the host, transfer + kernel, and kernel only;
 *   - one delta per batch, applied in turn (a write to a GPU page): us per
 *     delta with a new batch each time and with one batch reused;
 *   - recompute kernels: GB/s of parent bytes read;
 *   - CPU read of a GPU-resident page (4 KiB and 64 KiB): fault (plain CPU
 *     memcpy from the managed page), copy_out (cudaMemcpy), prefetch to the
 *     host + memcpy; median us per page.
 * Always, on the CPU table: memcpy vs apply and recompute, GB/s.
 *
 * Times are medians of 9 runs (GPU: cudaEvent on the legacy stream).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "buf.h"
#include "delta.h"
#include "kern.h"

#ifdef MMSB_HAVE_CUDART
#include <cuda_runtime_api.h>
#endif

#define REPS 9

static uint64_t rng_state = 42;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill(uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		uint64_t v = rng();

		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] = (uint8_t)rng();
}

static double now(void) /* seconds */
{
	return (double)now_ns() * 1e-9;
}

/* The upper median of v[0..n) (sorts v). */
static double median_hi(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_kern: %s: %s\n", what, strerror(-rc));
	exit(1);
}

/* ---- timing of table calls ------------------------------------------------------ */

struct timer {
	const struct mmsb_kern_ops *k;
#ifdef MMSB_HAVE_CUDART
	cudaEvent_t a, b;
#endif
	double t0;
	bool gpu;
};

static void t_start(struct timer *t)
{
#ifdef MMSB_HAVE_CUDART
	if (t->gpu) {
		cudaEventRecord(t->a, 0);
		return;
	}
#endif
	t->t0 = now();
}

static double t_stop(struct timer *t) /* seconds */
{
#ifdef MMSB_HAVE_CUDART
	if (t->gpu) {
		float ms = 0;

		cudaEventRecord(t->b, 0);
		cudaEventSynchronize(t->b);
		cudaEventElapsedTime(&ms, t->a, t->b);
		return ms * 1e-3;
	}
#endif
	return now() - t->t0;
}

/* Apply b once (with the transfer of its lanes) into *first, then REPS
 * times more; returns the median of those (the kernel alone). */
static double time_apply(const struct mmsb_kern_ops *k, struct timer *tm, struct mmsb_kern_batch *b, double *first)
{
	double t[REPS];
	int r, rc;

	t_start(tm);
	if ((rc = k->apply_batch(b)) < 0)
		die("apply_batch", rc);
	*first = t_stop(tm);
	for (r = 0; r < REPS; r++) {
		t_start(tm);
		k->apply_batch(b);
		t[r] = t_stop(tm);
	}
	return median_hi(t, REPS);
}

/* ---- masked merges -------------------------------------------------------------------- */

/* Fill batch b with a pattern over page[0..n): 0 dense, 1 random 50% of
 * bytes, 2 clustered 1% (64-byte runs).  Returns bytes covered. */
static size_t make_pattern(struct mmsb_kern_batch *b, uint8_t *page, size_t n, int pattern, const uint8_t *src)
{
	size_t at = 0, covered = 0;
	int rc = 0;

	if (pattern == 0) {
		rc = mmsb_kern_batch_add_bytes(b, page, n, 0, src, n);
		covered = n;
	} else if (pattern == 1) {
		while (at < n && rc == 0) {
			uint64_t r = rng();
			size_t skip = (size_t)__builtin_ctzll(r | (1ull << 20)), len = 1 + (size_t)__builtin_ctzll((r >> 21) | (1ull << 20));

			at += skip;
			if (at >= n)
				break;
			if (len > n - at)
				len = n - at;
			rc = mmsb_kern_batch_add_bytes(b, page, n, at, src + at, len);
			covered += len;
			at += len;
		}
	} else {
		size_t runs = n / 100 / 64, i;

		for (i = 0; i < runs && rc == 0; i++) {
			size_t off = (size_t)(rng() % (n - 64));

			rc = mmsb_kern_batch_add_bytes(b, page, n, off, src + off, 64);
			covered += 64;
		}
	}
	if (rc < 0)
		die("batch_add", rc);
	return covered;
}

static void bench_merge(const struct mmsb_kern_ops *k, struct timer *tm, size_t n, double d2d_traffic)
{
	static const char *names[] = {"dense 100%", "random 50%", "clustered 1%"};
	uint8_t *page = NULL, *src = malloc(n);
	int pattern, rc;

	if (!src || (rc = k->page_alloc(n, (void **)&page)) < 0)
		die("page_alloc", src ? rc : -ENOMEM);
	fill(src, n);
	printf("\nmasked merge into one %zu MiB page (%s; random 50%%: first 64 MiB only; kernel-only times,\n"
	       "  last column: first apply incl. the H2D transfer of the lanes):\n", n >> 20, k->name);
	printf("  %-13s %9s %10s %10s %8s %12s %10s\n", "pattern", "lanes", "build s", "page GB/s", "traffic",
	       "% of copy", "+H2D GB/s");
	for (pattern = 0; pattern < 3; pattern++) {
		struct mmsb_kern_batch *b = NULL;
		double t1, tb, tk, traffic;
		size_t covered, lanes, np = pattern == 1 && n > ((size_t)64 << 20) ? (size_t)64 << 20 : n;

		if ((rc = k->batch_new(&b)) < 0)
			die("batch_new", rc);
		tb = now();
		/* random 50% takes ~n/3 host adds: at most 64 MiB of the page */
		covered = make_pattern(b, page, np, pattern, src);
		tb = now() - tb;
		lanes = mmsb_kern_batch_lanes(b);
		tk = time_apply(k, tm, b, &t1);
		/* traffic per lane: 16 data + 8 addr + 2 mask read, 16 written,
		 * + 16 base read where the lane is partly covered: none when
		 * dense, (nearly) every lane at random 50%; for the clustered
		 * pattern the base reads are not counted (a lower bound) */
		traffic = (double)lanes * (16 + 8 + 2 + 16) + (pattern == 1 ? (double)lanes * 16 : 0);
		printf("  %-13s %9zu %10.3f %10.1f %8.1f %11.0f%% %10.1f\n", names[pattern], lanes, tb,
		       (double)covered / tk / 1e9, traffic / tk / 1e9, d2d_traffic > 0 ? 100 * traffic / tk / d2d_traffic : 0,
		       (double)covered / t1 / 1e9);
		k->batch_free(b);
	}
	k->page_free(page);
	free(src);
}

/* ---- many 4 KiB deltas ----------------------------------------------------------------- */

/* n_pages pages of 4 KiB in one device allocation, and a delta for each
 * (real RUNS/BITMAP encodings of a typical write: a few clustered runs). */
struct deltas {
	size_t n_pages, changed;
	uint8_t *pool, *enc;
	struct mmsb_buf bodies;
	size_t *off, *len;
};

#define DELTA_PAGE 4096u

static void deltas_make(const struct mmsb_kern_ops *k, size_t n_pages, struct deltas *d)
{
	const size_t n = n_pages * DELTA_PAGE;
	uint8_t *cur = malloc(n), *w = malloc(DELTA_PAGE);
	size_t i;
	int rc;

	memset(d, 0, sizeof(*d));
	d->n_pages = n_pages;
	d->off = malloc(n_pages * sizeof(*d->off));
	d->len = malloc(n_pages * sizeof(*d->len));
	d->enc = malloc(n_pages);
	if (!cur || !w || !d->off || !d->len || !d->enc)
		die("malloc", -ENOMEM);
	if ((rc = k->page_alloc(n, (void **)&d->pool)) < 0)
		die("page_alloc", rc);
	fill(cur, n);
	k->copy_in(d->pool, cur, n);
	for (i = 0; i < n_pages; i++) {
		struct mmsb_delta_info info;
		size_t j, before = d->bodies.len;

		memcpy(w, cur + i * DELTA_PAGE, DELTA_PAGE);
		for (j = 0; j < 4; j++) {
			size_t o = (size_t)(rng() % (DELTA_PAGE - 128)), m = 16 + (size_t)(rng() % 96);

			fill(w + o, m);
		}
		if ((rc = mmsb_delta_diff(cur + i * DELTA_PAGE, DELTA_PAGE, 0, w, DELTA_PAGE, &d->bodies, &info)) < 0)
			die("delta_diff", rc);
		d->off[i] = before;
		d->len[i] = d->bodies.len - before;
		d->enc[i] = info.enc;
		d->changed += info.changed;
	}
	free(cur);
	free(w);
}

static void deltas_add(struct mmsb_kern_batch *b, const struct deltas *d, size_t i)
{
	int rc = mmsb_kern_batch_add(b, d->pool + i * DELTA_PAGE, DELTA_PAGE, d->enc[i], d->bodies.p + d->off[i],
				     d->len[i]);

	if (rc < 0)
		die("batch_add", rc);
}

static void deltas_free(const struct mmsb_kern_ops *k, struct deltas *d)
{
	k->page_free(d->pool);
	mmsb_buf_free(&d->bodies);
	free(d->off);
	free(d->len);
	free(d->enc);
}

static void bench_pages(const struct mmsb_kern_ops *k, struct timer *tm, size_t n_pages)
{
	struct mmsb_kern_batch *b = NULL;
	struct deltas d;
	double tf, tb, t1, tk;
	size_t i;
	int rc;

	deltas_make(k, n_pages, &d);
	if ((rc = k->batch_new(&b)) < 0)
		die("batch_new", rc);
	tf = now();
	for (i = 0; i < n_pages; i++)
		deltas_add(b, &d, i);
	tf = now() - tf;
	/* again into the same batch, as the apply queue reuses its batches */
	mmsb_kern_batch_reset(b);
	tb = now();
	for (i = 0; i < n_pages; i++)
		deltas_add(b, &d, i);
	tb = now() - tb;
	tk = time_apply(k, tm, b, &t1);
	printf("\nbatch of %zu deltas to 4 KiB pages (%s; %.1f%% of bytes changed, %zu lanes, %.1f MB of bodies):\n",
	       n_pages, k->name, 100.0 * (double)d.changed / (double)(n_pages * DELTA_PAGE), mmsb_kern_batch_lanes(b),
	       d.bodies.len / 1e6);
	printf("  fold, new batch (grows)    %10.2f M deltas/s  (%.3f s)\n", n_pages / tf / 1e6, tf);
	printf("  fold on host (batch_add)   %10.2f M deltas/s  (%.3f s; batch reused)\n", n_pages / tb / 1e6, tb);
	printf("  fold + apply incl. H2D     %10.2f M deltas/s  (end to end, %.0f%% of kernel-only)\n",
	       n_pages / (tb + t1) / 1e6, 100.0 * tk / (tb + t1));
	printf("  apply incl. H2D of lanes   %10.2f M deltas/s  (%.3f ms)\n", n_pages / t1 / 1e6, t1 * 1e3);
	printf("  apply, kernel only         %10.2f M deltas/s  (%.3f ms)\n", n_pages / tk / 1e6, tk * 1e3);
	k->batch_free(b);
	/* the write path: every delta through the table's queue (enqueue),
	 * then sync; folding overlaps the applies of earlier batches.  The
	 * second pass is timed (the first grows the queue's batches). */
	for (int pass = 0; pass < 2; pass++) {
		double tq = now();

		for (i = 0; i < n_pages; i++)
			if ((rc = k->enqueue(d.pool + i * DELTA_PAGE, DELTA_PAGE, d.enc[i], d.bodies.p + d.off[i],
					     d.len[i])) < 0)
				die("enqueue", rc);
		if ((rc = k->sync()) < 0)
			die("sync", rc);
		tq = now() - tq;
		if (pass == 1)
			printf("  enqueue all + sync         %10.2f M deltas/s  (the write path, end to end, %.0f%% of "
			       "kernel-only)\n",
			       n_pages / tq / 1e6, 100.0 * tk / tq);
	}
	deltas_free(k, &d);
}

/* One delta per batch, applied before the next: what the store does for a
 * write to a GPU page.  "new batch": batch_new + add + apply + batch_free
 * per delta, as src/ns.c does; "reused batch": one batch, reset between
 * deltas.  Wall-clock us per delta, median of REPS passes. */
static void bench_one_delta(const struct mmsb_kern_ops *k, size_t n_deltas)
{
	struct mmsb_kern_batch *b = NULL;
	struct deltas d;
	double t_new[REPS], t_reuse[REPS], t0;
	size_t i;
	int r, rc;

	deltas_make(k, n_deltas, &d);
	for (r = 0; r < REPS; r++) {
		t0 = now();
		for (i = 0; i < n_deltas; i++) {
			if ((rc = k->batch_new(&b)) < 0)
				die("batch_new", rc);
			deltas_add(b, &d, i);
			if ((rc = k->apply_batch(b)) < 0)
				die("apply_batch", rc);
			k->batch_free(b);
		}
		t_new[r] = (now() - t0) / (double)n_deltas;
		if ((rc = k->batch_new(&b)) < 0)
			die("batch_new", rc);
		t0 = now();
		for (i = 0; i < n_deltas; i++) {
			mmsb_kern_batch_reset(b);
			deltas_add(b, &d, i);
			if ((rc = k->apply_batch(b)) < 0)
				die("apply_batch", rc);
		}
		mmsb_kern_batch_reset(b); /* waits for the last one */
		t_reuse[r] = (now() - t0) / (double)n_deltas;
		k->batch_free(b);
	}
	printf("\none delta per batch, applied in turn (%s; %zu deltas to 4 KiB pages):\n", k->name, n_deltas);
	printf("  new batch per delta        %10.1f us per delta\n", median_hi(t_new, REPS) * 1e6);
	printf("  one batch, reset between   %10.1f us per delta\n", median_hi(t_reuse, REPS) * 1e6);
	deltas_free(k, &d);
}

/* ---- recompute ------------------------------------------------------------------------- */

static void bench_recompute(const struct mmsb_kern_ops *k, struct timer *tm, size_t n)
{
	static const struct {
		const char *name;
		int n_in;
	} cases[] = {{"copy", 1}, {"xor", 2}, {"add:f32", 2}, {"max:f64", 2}, {"add:u64", 4}, {"sum:f32", 1},
		     {"sum:f64", 1}, {"sum:u32", 1}, {"concat", 2}};
	uint8_t *in[4] = {NULL, NULL, NULL, NULL}, *out = NULL, *host = malloc(n);
	size_t ci, i;
	int rc;

	if (!host)
		die("malloc", -ENOMEM);
	for (i = 0; i < 4; i++) {
		if ((rc = k->page_alloc(n, (void **)&in[i])) < 0)
			die("page_alloc", rc);
		fill(host, n);
		k->copy_in(in[i], host, n);
	}
	if ((rc = k->page_alloc(4 * n, (void **)&out)) < 0)
		die("page_alloc", rc);
	printf("\nrecompute, parents of %zu MiB (%s):\n", n >> 20, k->name);
	printf("  %-10s %5s %12s %12s\n", "op", "n_in", "read GB/s", "traffic GB/s");
	for (ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
		enum mmsb_kern_op op;
		enum mmsb_kern_elem elem;
		size_t len[4] = {n, n, n, n}, out_len = 0;
		const void *pin[4] = {in[0], in[1], in[2], in[3]};
		double t[REPS], tk, rd;
		int r;

		if (mmsb_kern_op_parse(cases[ci].name, &op, &elem) < 0 ||
		    mmsb_kern_recompute_len(op, elem, len, (size_t)cases[ci].n_in, &out_len) < 0)
			die(cases[ci].name, -EINVAL);
		if ((rc = k->recompute(op, elem, out, out_len, pin, len, (size_t)cases[ci].n_in)) < 0) /* warm */
			die(cases[ci].name, rc);
		for (r = 0; r < REPS; r++) {
			t_start(tm);
			k->recompute(op, elem, out, out_len, pin, len, (size_t)cases[ci].n_in);
			t[r] = t_stop(tm);
		}
		tk = median_hi(t, REPS);
		rd = (double)n * cases[ci].n_in;
		printf("  %-10s %5d %12.1f %12.1f\n", cases[ci].name, cases[ci].n_in, rd / tk / 1e9,
		       (rd + (double)out_len) / tk / 1e9);
	}
	for (i = 0; i < 4; i++)
		k->page_free(in[i]);
	k->page_free(out);
	free(host);
}

/* ---- GPU only: D2D yard stick and CPU reads of GPU pages --------------------------------- */

#ifdef MMSB_HAVE_CUDART
static double bench_d2d(size_t n) /* returns traffic bytes/s (read + write) */
{
	void *a = NULL, *b = NULL;
	cudaEvent_t e0, e1;
	double t[REPS], tk;
	int r;

	if (cudaMalloc(&a, n) != cudaSuccess || cudaMalloc(&b, n) != cudaSuccess) {
		fprintf(stderr, "bench_kern: cudaMalloc of the D2D buffers failed\n");
		return 0;
	}
	cudaMemset(a, 1, n);
	cudaEventCreate(&e0);
	cudaEventCreate(&e1);
	cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
	for (r = 0; r < REPS; r++) {
		float ms = 0;

		cudaEventRecord(e0, 0);
		cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, 0);
		cudaEventRecord(e1, 0);
		cudaEventSynchronize(e1);
		cudaEventElapsedTime(&ms, e0, e1);
		t[r] = ms * 1e-3;
	}
	tk = median_hi(t, REPS);
	printf("\ndevice-to-device cudaMemcpy, %zu MiB: %.1f GB/s copied = %.1f GB/s traffic (read + write)\n",
	       n >> 20, (double)n / tk / 1e9, 2.0 * (double)n / tk / 1e9);
	cudaFree(a);
	cudaFree(b);
	cudaEventDestroy(e0);
	cudaEventDestroy(e1);
	return 2.0 * (double)n / tk;
}

static cudaError_t prefetch(const void *p, size_t n, int dev /* -1: host */)
{
#if CUDART_VERSION >= 13000
	struct cudaMemLocation l;

	l.type = dev < 0 ? cudaMemLocationTypeHost : cudaMemLocationTypeDevice;
	l.id = dev < 0 ? 0 : dev;
	return cudaMemPrefetchAsync(p, n, l, 0, 0);
#else
	return cudaMemPrefetchAsync(p, n, dev < 0 ? cudaCpuDeviceId : dev, 0);
#endif
}

/* CPU reads of n_pages GPU-resident pages of psz bytes, three ways.  The
 * pages lie 2 MiB apart (one per UVM VA block), so the driver's prefetcher
 * does not bring the next page along with a fault: each read is isolated. */
#define READBACK_STRIDE ((size_t)2 << 20)

static void bench_readback(const struct mmsb_kern_ops *k, size_t psz, size_t n_pages)
{
	static const char *names[] = {"fault (CPU memcpy from managed)", "copy_out (cudaMemcpy)",
				      "prefetch to host + memcpy"};
	uint8_t *pool = NULL, *dst = malloc(psz);
	double t[3][512];
	size_t i;
	int way, rc;

	if (n_pages > 512)
		n_pages = 512;
	if ((rc = k->page_alloc(READBACK_STRIDE * n_pages, (void **)&pool)) < 0)
		die("page_alloc", rc);
	for (way = 0; way < 3; way++) {
		/* make every page GPU-resident and GPU-written */
		k->zero(pool, READBACK_STRIDE * n_pages);
		prefetch(pool, READBACK_STRIDE * n_pages, 0);
		k->sync();
		for (i = 0; i < n_pages; i++) {
			uint8_t *p = pool + i * READBACK_STRIDE;
			double t0 = now();

			if (way == 0) {
				memcpy(dst, p, psz);
			} else if (way == 1) {
				k->copy_out(dst, p, psz);
			} else {
				prefetch(p, psz, -1);
				cudaStreamSynchronize(0);
				memcpy(dst, p, psz);
			}
			t[way][i] = now() - t0;
		}
	}
	printf("\nCPU read of a GPU-resident %zu KiB page (median of %zu pages, 2 MiB apart):\n", psz >> 10, n_pages);
	for (way = 0; way < 3; way++)
		printf("  %-34s %8.1f us  (%.2f GB/s)\n", names[way], median_hi(t[way], (int)n_pages) * 1e6,
		       (double)psz / median_hi(t[way], (int)n_pages) / 1e9);
	/* what the GPU pays afterwards: touch all pages again after CPU faults */
	{
		struct timer tm = {.k = k, .gpu = true};
		double tg;

		cudaEventCreate(&tm.a);
		cudaEventCreate(&tm.b);
		k->zero(pool, READBACK_STRIDE * n_pages);
		prefetch(pool, READBACK_STRIDE * n_pages, 0);
		k->sync();
		t_start(&tm);
		k->zero(pool, READBACK_STRIDE * n_pages);
		tg = t_stop(&tm);
		for (i = 0; i < n_pages; i++)
			memcpy(dst, pool + i * READBACK_STRIDE, psz); /* fault them to the host */
		t_start(&tm);
		k->zero(pool, READBACK_STRIDE * n_pages);
		printf("  GPU zero of the pool afterwards: %.1f us all GPU-resident, %.1f us after the CPU faulted %zu pages\n",
		       tg * 1e6, t_stop(&tm) * 1e6, n_pages);
		cudaEventDestroy(tm.a);
		cudaEventDestroy(tm.b);
	}
	k->page_free(pool);
	free(dst);
}
#endif

/* ---- CPU yard stick ---------------------------------------------------------------------- */

static void bench_memcpy(size_t n)
{
	uint8_t *a = malloc(n), *b = malloc(n);
	double t[REPS];
	int r;

	if (!a || !b)
		die("malloc", -ENOMEM);
	fill(a, n);
	memcpy(b, a, n);
	for (r = 0; r < REPS; r++) {
		double t0 = now();

		memcpy(b, a, n);
		t[r] = now() - t0;
	}
	printf("\nhost memcpy, %zu MiB: %.1f GB/s copied\n", n >> 20, (double)n / median_hi(t, REPS) / 1e9);
	free(a);
	free(b);
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? (size_t)strtoul(argv[1], NULL, 0) : 256, n;
	const struct mmsb_kern_ops *cpu = mmsb_kern_cpu(), *k = mmsb_kern_select(true);
	struct mmsb_kern_gpu_info gi;
	struct timer tc = {.k = cpu, .gpu = false};

	if (argc > 1 && strcmp(argv[1], "fold") == 0) { /* the host fold alone, CPU table (profiling) */
		bench_pages(cpu, &tc, 65536);
		return 0;
	}
	if (mib < 4)
		mib = 4;
	n = mib << 20;
	if (mmsb_kern_gpu_probe(&gi) == 0)
		printf("card: %s (cc %d.%d, %d SMs, concurrentManagedAccess=%d, %.1f/%.1f GiB free, CUDA runtime %d, "
		       "driver %d)\n",
		       gi.name, gi.cc_major, gi.cc_minor, gi.n_sms, gi.concurrent_managed,
		       gi.free_bytes / 1073741824.0, gi.total_bytes / 1073741824.0, gi.runtime_version,
		       gi.driver_version);
	else
		printf("card: none (no GPU, or CUDA not built)\n");
	printf("table selected: %s\n", k->name);

#ifdef MMSB_HAVE_CUDART
	if (strcmp(k->name, "cuda") == 0) {
		struct timer tg = {.k = k, .gpu = true};
		double d2d;

		cudaEventCreate(&tg.a);
		cudaEventCreate(&tg.b);
		d2d = bench_d2d(n < (1u << 30) ? (size_t)1 << 30 : n);
		bench_merge(k, &tg, n, d2d);
		bench_pages(k, &tg, 65536);
		bench_one_delta(k, 2000);
		bench_recompute(k, &tg, n);
		bench_readback(k, 4096, 256);
		bench_readback(k, 65536, 256);
		cudaEventDestroy(tg.a);
		cudaEventDestroy(tg.b);
	}
#endif
	/* the CPU table (reference / fallback), smaller sizes */
	n = n > (64u << 20) ? (size_t)64 << 20 : n;
	bench_memcpy(n);
	bench_merge(cpu, &tc, n, 0);
	bench_pages(cpu, &tc, 16384);
	bench_one_delta(cpu, 2000);
	bench_recompute(cpu, &tc, n / 4);
	return 0;
}
