/* test_retain.c - the retention policy (mmsb_store_opts.keep, -o keep=):
 * parsing, the choice of where to compact (retain_select), and the store
 * compacting after its checkpoints without ever dropping a tagged epoch. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fx.h"
#include "retain.h"

#define SEC 1000000000ll

static void keep_parse_units(void **state)
{
	struct mmsb_keep k;

	assert_int_equal(mmsb_keep_parse("7d", &k), 0);
	assert_true(k.age_ns == 7 * 86400 * SEC && k.epochs == 0 && k.bytes == 0);
	assert_int_equal(mmsb_keep_parse("100000e", &k), 0);
	assert_true(k.epochs == 100000 && k.age_ns == 0 && k.bytes == 0);
	assert_int_equal(mmsb_keep_parse("10G", &k), 0);
	assert_true(k.bytes == 10ull << 30);
	assert_int_equal(mmsb_keep_parse("90min:500e:512M", &k), 0);
	assert_true(k.age_ns == 90 * 60 * SEC && k.epochs == 500 && k.bytes == 512ull << 20);
	assert_int_equal(mmsb_keep_parse("2w:1h", &k), -EINVAL); /* two ages */
	assert_int_equal(mmsb_keep_parse("12h", &k), 0);
	assert_true(k.age_ns == 12 * 3600 * SEC);
}

static void keep_parse_rejects(void **state)
{
	static const char *const bad[] = {"", "7", "d", "7x", "0d", "0e", "5m", "7d:", ":7d", "7d::1e",
					  "-1d", "1.5d", "99999999999999999999e", "10000000000000000d", "7d:1e:2e"};
	struct mmsb_keep k = {.epochs = 42};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (mmsb_keep_parse(bad[i], &k) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
	}
	assert_int_equal(k.epochs, 42); /* untouched on failure */
}

/* checkpoints at 10, 20, 30, 40, one per 100 s up to now = 400 s */
static const struct retain_ckpt ck4[] = {
	{10, 100 * SEC, 400}, {20, 200 * SEC, 300}, {30, 300 * SEC, 200}, {40, 400 * SEC, 100}};

static void select_by_epochs(void **state)
{
	struct mmsb_keep k = {.epochs = 20};

	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, UINT64_MAX, 500), 20); /* head - 20 = 25 */
	k.epochs = 5;
	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, UINT64_MAX, 500), 40);
	k.epochs = 100; /* fewer epochs than that: keep all */
	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, UINT64_MAX, 500), 0);
	k.epochs = 20; /* already compacted there */
	assert_int_equal(retain_select(&k, ck4 + 1, 3, 45, 400 * SEC, 20, UINT64_MAX, 500), 0);
}

static void select_by_age(void **state)
{
	struct mmsb_keep k = {.age_ns = 150 * SEC};

	/* now 400 s: epochs committed before 250 s may go; cut at 20 (200 s) */
	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, UINT64_MAX, 500), 20);
	k.age_ns = 1000 * SEC;
	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, UINT64_MAX, 500), 0);
}

static void select_by_bytes(void **state)
{
	struct mmsb_keep k = {.bytes = 250};

	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, UINT64_MAX, 500), 30); /* the least dropped */
	k.bytes = 1000; /* all of it fits */
	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, UINT64_MAX, 500), 0);
	k.bytes = 450; /* dropping the log before 10 is enough */
	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, UINT64_MAX, 500), 10);
	k.bytes = 50; /* nothing fits: as close as it gets */
	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, UINT64_MAX, 500), 40);
}

static void select_combined_and_tags(void **state)
{
	struct mmsb_keep k = {.age_ns = 250 * SEC, .epochs = 30, .bytes = 350};

	/* age -> 10, epochs -> 10, bytes -> 20: the largest cut */
	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, UINT64_MAX, 500), 20);
	k.bytes = 1;
	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, UINT64_MAX, 500), 40);
	/* a tag at 35 holds the cut at the checkpoint before it */
	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, 35, 500), 30);
	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, 30, 500), 30);
	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, 15, 500), 10);
	/* a tag before every checkpoint: nothing can go */
	assert_int_equal(retain_select(&k, ck4, 4, 45, 400 * SEC, 0, 5, 500), 0);
	assert_int_equal(retain_select(&k, NULL, 0, 45, 400 * SEC, 0, UINT64_MAX, 500), 0);
}

/* Epochs e+1..e+n (one write each) on page id, then a checkpoint. */
static uint64_t commits_then_ckpt(struct fx *fx, uint64_t id, int n)
{
	uint64_t e = 0;
	int i;

	for (i = 0; i < n; i++) {
		char b = (char)('a' + (mmsb_store_head(fx->st) % 26));

		fx_write(fx, id, 0, &b, 1);
	}
	assert_int_equal(mmsb_checkpoint(fx->st, &e), 0);
	return e;
}

static void store_compacts_after_checkpoints(void **state)
{
	struct fx *fx = *state;
	struct mmsb_snap *snap;
	struct mmsb_stats s;
	uint64_t id, c1, c2, c3;

	fx->o.keep.epochs = 2;
	fx->o.ckpt_log_bytes = 0; /* only the checkpoints taken here */
	fx_reopen(fx);
	id = fx_page(fx, "p", "x", 1);				     /* epoch 1 */
	c1 = commits_then_ckpt(fx, id, 2);			     /* 3 */
	assert_int_equal(mmsb_store_oldest(fx->st), 0);		     /* 3 > 3 - 2: nothing before it */
	c2 = commits_then_ckpt(fx, id, 3);			     /* 6: cut at <= 4: checkpoint 3 */
	assert_int_equal(c1, 3);
	assert_int_equal(c2, 6);
	assert_int_equal(mmsb_store_oldest(fx->st), 3);
	assert_int_equal(mmsb_snap_open(fx->st, 2, &snap), -ENOENT);
	/* tag epoch 4: the cut at checkpoint 6 would drop it, so it stays at 3 */
	assert_int_equal(mmsb_tag_set(fx->st, "keepme", 4), 0);
	c3 = commits_then_ckpt(fx, id, 3); /* 9: head - 2 = 7 */
	assert_int_equal(c3, 9);
	assert_int_equal(mmsb_store_oldest(fx->st), 3);
	assert_int_equal(mmsb_snap_open(fx->st, 4, &snap), 0);
	mmsb_snap_close(snap);
	/* untagged, the next checkpoint compacts at 9 */
	assert_int_equal(mmsb_tag_remove(fx->st, "keepme"), 0);
	commits_then_ckpt(fx, id, 3); /* 12: cut at <= 10: 9 */
	assert_int_equal(mmsb_store_oldest(fx->st), 9);
	mmsb_store_stats(fx->st, &s);
	assert_int_equal(s.n_ckpts, 2); /* 9 and 12 */
	/* and it survives a reopen */
	fx_reopen(fx);
	assert_int_equal(mmsb_store_oldest(fx->st), 9);
}

static void store_keeps_within_bytes(void **state)
{
	struct fx *fx = *state;
	struct mmsb_stats s;
	uint64_t id, e;

	fx->o.keep.bytes = 1; /* nothing fits: only the newest checkpoint stays */
	fx->o.ckpt_log_bytes = 0;
	fx->o.segment_bytes = 4096; /* several segments, so old ones can go */
	fx_reopen(fx);
	id = fx_page(fx, "p", "x", 1);
	commits_then_ckpt(fx, id, 50);
	e = commits_then_ckpt(fx, id, 50);
	assert_int_equal(mmsb_store_oldest(fx->st), e);
	mmsb_store_stats(fx->st, &s);
	assert_int_equal(s.n_ckpts, 1);
}

int main(void)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test(keep_parse_units),
		cmocka_unit_test(keep_parse_rejects),
		cmocka_unit_test(select_by_epochs),
		cmocka_unit_test(select_by_age),
		cmocka_unit_test(select_by_bytes),
		cmocka_unit_test(select_combined_and_tags),
		cmocka_unit_test_setup_teardown(store_compacts_after_checkpoints, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(store_keeps_within_bytes, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests_name("retain", t, NULL, NULL);
}
