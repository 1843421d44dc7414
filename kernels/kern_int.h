/* kern_int.h - shared by kern_host.c, kern_cpu.c, kern_cuda.cu and
 * kern_nocuda.c only.  Nothing outside kernels/ includes it.
 *
 * The batch: the folded lanes of every delta added since the last reset, in
 * three parallel arrays (the "compact layout" of kern.h), plus an
 * open-addressing index from lane address to lane number used only while
 * adding (it is never shipped to the GPU).
 */
#ifndef MMSB_KERN_INT_H
#define MMSB_KERN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kern.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KERN_LANE 16		       /* bytes per lane */
#define KERN_LANE_PARTIAL ((uint64_t)1) /* addr bit 0: write byte by byte */

struct kern_page_ref {
	void *p;
	uint64_t size;
};

struct mmsb_kern_batch {
	const struct mmsb_kern_ops *ops; /* the table that made it */

	/* lanes, n of cap (host memory from host_alloc) */
	uint8_t *data;	 /* cap * 16 */
	uint64_t *addr;	 /* lane address | KERN_LANE_PARTIAL */
	uint16_t *mask;	 /* bit j <=> byte j of the lane is written */
	size_t n, cap;

	/* fold index: hidx[h] = lane number + 1, 0 = empty; hcap a power of two,
	 * kept at most half full */
	uint32_t *hidx;
	size_t hcap;

	/* distinct pages added (consecutive repeats dropped): the cuda table
	 * checks each is GPU memory */
	struct kern_page_ref *pages;
	size_t n_pages, pages_cap;

	/* allocator of data/addr/mask (pinned for cuda); NULL -> malloc/free */
	void *(*host_alloc)(size_t n);
	void (*host_free)(void *p);

	/* backend state (cuda): device copies of the arrays and the event of the
	 * last apply; wait() blocks until that apply no longer reads the host
	 * arrays (NULL for cpu) */
	void *dev;
	size_t dev_cap;
	void *ev;
	bool pending;
	bool uploaded; /* dev holds the lanes as they are now (cleared on change) */
	void (*wait)(struct mmsb_kern_batch *b);
};

/* Set up / tear down the host side of a batch (kern_host.c).  init zeroes
 * *b first.  Returns 0 or -ENOMEM. */
int kern_batch_init(struct mmsb_kern_batch *b, const struct mmsb_kern_ops *ops, void *(*host_alloc)(size_t),
		    void (*host_free)(void *));
void kern_batch_release(struct mmsb_kern_batch *b);

/* Apply a batch on the CPU (kern_cpu.c); any batch, any host memory. */
void kern_cpu_apply_lanes(const struct mmsb_kern_batch *b);

/* Size checks of recompute, plus the overlap rule (kern_host.c). */
int kern_recompute_check(enum mmsb_kern_op op, enum mmsb_kern_elem elem, const void *out, size_t out_len,
			 const void *const *in, const size_t *in_len, size_t n_in);
bool kern_overlap(const void *a, size_t an, const void *b, size_t bn);

/* The CUDA table after a successful probe, else NULL (kern_cuda.cu, or
 * kern_nocuda.c when CUDA is not built). */
const struct mmsb_kern_ops *kern_cuda_table(void);

#ifdef __cplusplus
}
#endif

#endif
