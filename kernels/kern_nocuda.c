/* kern_nocuda.c - built instead of kern_cuda.cu when CUDA is not: there is
 * no GPU table, so mmsb_kern_select always answers with the CPU table. */
#include <errno.h>
#include <string.h>

#include "kern_int.h"

const struct mmsb_kern_ops *kern_cuda_table(void)
{
	return NULL;
}

int mmsb_kern_gpu_probe(struct mmsb_kern_gpu_info *out)
{
	memset(out, 0, sizeof(*out));
	return -ENODEV;
}

struct kern_queue *kern_cuda_queue(const struct mmsb_kern_ops *k)
{
	(void)k;
	return NULL;
}
