/* test_kern_cpu.c - the CPU kernel table (kernels/kern_cpu.c) against naive
 * loops: batch apply against sequential mmsb_delta_apply, copy/zero/compare
 * against byte loops, every recompute operation and element type against
 * the element-by-element reference of kern_testlib.h (the SUM tree as the
 * literal recursion of kern.h).  Runs everywhere (suite 'unit'), GPU or not.
 */
#include "kern_suite.h"

int main(void)
{
	const struct mmsb_kern_ops *k = mmsb_kern_cpu();

	t_init();
	CHECK(strcmp(k->name, "cpu") == 0);
	CHECK(mmsb_kern_select(false) == k);
	suite_run(k, !t_quick);
	if (t_failures) {
		fprintf(stderr, "test_kern_cpu: %d failures (seed %llu)\n", t_failures, t_seed);
		return 1;
	}
	printf("test_kern_cpu: ok (seed %llu)\n", t_seed);
	return 0;
}
