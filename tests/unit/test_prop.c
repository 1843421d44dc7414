/* test_prop.c - dependency edges and propagation through the public API:
 * chains, fan-out, diamonds (the join once per epoch), cycles, every
 * operation and element type, failures into user.mmsb.error, exec:, replay
 * and time travel of propagated history. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx.h"
#include "mmsb.h"

/* A store that allows exec: recomputes, killed after 500 ms. */
static int setup(void **state)
{
	struct fx *fx;

	fx_setup(state);
	fx = *state;
	fx->o.allow_exec = true;
	fx->o.exec_timeout_ms = 500;
	fx_reopen(fx);
	return 0;
}

static void derive(struct fx *fx, uint64_t id, const char *deps, const char *op)
{
	assert_int_equal(fx_setx(fx, id, "user.mmsb.deps", deps), 0);
	assert_int_equal(fx_setx(fx, id, "user.mmsb.recompute", op), 0);
}

static void expect(struct fx *fx, uint64_t id, const void *want, size_t len)
{
	uint8_t buf[4096];

	assert_int_equal(mmsb_read(fx->st, id, 0, buf, sizeof(buf)), (ssize_t)len);
	assert_memory_equal(buf, want, len);
}

static void chain_and_version(void **state)
{
	struct fx *fx = *state;
	uint64_t ids[10], e;
	struct mmsb_attr a;
	char name[8];
	int i;

	ids[0] = fx_page(fx, "c0", "aaaa", 4);
	for (i = 1; i < 10; i++) {
		char dep[8];

		snprintf(name, sizeof(name), "c%d", i);
		snprintf(dep, sizeof(dep), "c%d", i - 1);
		ids[i] = fx_page(fx, name, NULL, 0);
		derive(fx, ids[i], dep, "copy");
		expect(fx, ids[i], "aaaa", 4); /* setting the op recomputes at once */
	}
	e = fx_write(fx, ids[0], 1, "XY", 2);
	for (i = 1; i < 10; i++) {
		expect(fx, ids[i], "aXYa", 4);
		assert_int_equal(mmsb_getattr(fx->st, ids[i], &a), 0);
		assert_int_equal(a.epoch, e); /* same epoch as the parent's write */
	}
	fx_reopen(fx);
	expect(fx, ids[9], "aXYa", 4);
}

static void diamond_join_once(void **state)
{
	struct fx *fx = *state;
	uint64_t a = fx_page(fx, "a", "\x01\x01", 2), b = fx_page(fx, "b", NULL, 0), c = fx_page(fx, "c", NULL, 0);
	uint64_t d = fx_page(fx, "d", NULL, 0), e;
	struct mmsb_attr at0, at1;

	derive(fx, b, "a", "copy");
	derive(fx, c, "a", "add:u8");
	derive(fx, d, "b,c", "add:u8");
	expect(fx, d, "\x02\x02", 2);
	assert_int_equal(mmsb_getattr(fx->st, d, &at0), 0);
	e = fx_write(fx, a, 0, "\x05\x06", 2);
	expect(fx, d, "\x0a\x0c", 2);
	assert_int_equal(mmsb_getattr(fx->st, d, &at1), 0);
	assert_int_equal(at1.version, at0.version + 1); /* the join once per epoch */
	assert_int_equal(at1.epoch, e);
}

static void fanout(void **state)
{
	struct fx *fx = *state;
	uint64_t src = fx_page(fx, "src", "v1", 2), kids[50];
	char name[16];
	int i;

	for (i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		kids[i] = fx_page(fx, name, NULL, 0);
		derive(fx, kids[i], "src", "copy");
	}
	fx_write(fx, src, 0, "v2", 2);
	for (i = 0; i < 50; i++)
		expect(fx, kids[i], "v2", 2);
}

static void refusals(void **state)
{
	struct fx *fx = *state;
	uint64_t a = fx_page(fx, "a", "x", 1), b = fx_page(fx, "b", NULL, 0), c = fx_page(fx, "c", NULL, 0);
	struct mmsb_txn *t;
	struct mmsb_attr at;

	derive(fx, b, "a", "copy");
	derive(fx, c, "b", "copy");
	assert_int_equal(fx_setx(fx, a, "user.mmsb.deps", "c"), -ELOOP);
	assert_int_equal(fx_setx(fx, a, "user.mmsb.deps", "a"), -ELOOP);
	assert_int_equal(fx_setx(fx, a, "user.mmsb.deps", "nope"), -ENOENT);
	assert_int_equal(fx_setx(fx, a, "user.mmsb.deps", ""), -EINVAL);
	assert_int_equal(fx_setx(fx, a, "user.mmsb.recompute", "frobnicate"), -EINVAL);
	assert_int_equal(fx_setx(fx, a, "user.mmsb.recompute", "add:u128"), -EINVAL);
	assert_int_equal(fx_setx(fx, c, "user.mmsb.error", "x"), -EPERM);
	assert_int_equal(fx_setx(fx, MMSB_ROOT_ID, "user.mmsb.deps", "a"), -EINVAL);
	assert_int_equal(fx_setx(fx, b, "user.mmsb.recompute", "add:u16"), -EINVAL); /* 1 byte is not a u16 */
	assert_int_equal(mmsb_getxattr(fx->st, a, "user.mmsb.deps", NULL, 0), -ENODATA);
	/* a mkdir makes a dir: not a parent */
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_create(t, MMSB_ROOT_ID, "dir", MMSB_T_DIR, 0755, 0, 0, NULL, &at), 0);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	assert_int_equal(fx_setx(fx, c, "user.mmsb.deps", "dir"), -EINVAL);
}

/* Derive a page from two new parents x, y with op; its bytes into out. */
static ssize_t derived(struct fx *fx, const char *op, const void *x, const void *y, size_t len, void *out, size_t cap)
{
	char nx[32], ny[32], nz[32], deps[80];
	uint64_t c;
	static int k;

	snprintf(nx, sizeof(nx), "x%d", k);
	snprintf(ny, sizeof(ny), "y%d", k);
	snprintf(nz, sizeof(nz), "z%d", k++);
	fx_page(fx, nx, x, len);
	fx_page(fx, ny, y, len);
	c = fx_page(fx, nz, NULL, 0);
	snprintf(deps, sizeof(deps), "%s\n%s", nx, ny); /* newline-separated works too */
	derive(fx, c, deps, op);
	return mmsb_read(fx->st, c, 0, out, cap);
}

static void check_op(struct fx *fx, const char *op, const void *x, const void *y, size_t len, const void *want,
		     size_t wlen)
{
	uint8_t got[256];

	assert_int_equal(derived(fx, op, x, y, len, got, sizeof(got)), (ssize_t)wlen);
	assert_memory_equal(got, want, wlen);
}

static void integer_operations(void **state)
{
	struct fx *fx = *state;
	uint8_t x8[4] = {250, 1, 2, 3}, y8[4] = {10, 1, 200, 3}, w8[4];
	int32_t xi[2] = {-5, INT32_MAX}, yi[2] = {3, 1}, si[1];
	uint16_t x16[2] = {65535, 7}, y16[2] = {2, 9}, w16[2] = {1, 16};
	uint32_t x32[2] = {1, 0xffffffffu}, y32[2] = {2, 1}, w32[2] = {2, 0xffffffffu};
	uint64_t x64[2] = {1, ~0ull}, y64[2] = {5, 2}, w64[2] = {6, 1};
	int64_t xs64[2] = {-1, 4}, ys64[2] = {-7, 3}, ws64[2] = {-1, 4};
	int32_t wmin[2] = {-5, 1};
	int i;

	check_op(fx, "concat", "ab", "cd", 2, "abcd", 4);
	check_op(fx, "xor", "\x0f\xf0", "\xff\xff", 2, "\xf0\x0f", 2);
	for (i = 0; i < 4; i++)
		w8[i] = (uint8_t)(x8[i] + y8[i]);
	check_op(fx, "add:u8", x8, y8, 4, w8, 4);
	for (i = 0; i < 4; i++)
		w8[i] = x8[i] < y8[i] ? x8[i] : y8[i];
	check_op(fx, "min:u8", x8, y8, 4, w8, 4);
	check_op(fx, "add:u16", x16, y16, 4, w16, 4); /* wraps */
	check_op(fx, "max:u32", x32, y32, 8, w32, 8);
	check_op(fx, "add:u64", x64, y64, 16, w64, 16);
	check_op(fx, "min:i32", xi, yi, 8, wmin, 8);
	check_op(fx, "max:i64", xs64, ys64, 16, ws64, 16);
	si[0] = (int32_t)((uint32_t)-5 + (uint32_t)INT32_MAX + 3u + 1u); /* sum wraps */
	check_op(fx, "sum:i32", xi, yi, 8, si, 4);
	{
		uint16_t s16 = (uint16_t)(65535 + 7 + 2 + 9);

		check_op(fx, "sum:u16", x16, y16, 4, &s16, 2);
	}
}

static bool same_f(float a, float b)
{
	return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof(a)) == 0;
}

static void float_operations(void **state)
{
	struct fx *fx = *state;
	float xf[4] = {1.5f, NAN, -0.0f, INFINITY}, yf[4] = {2.25f, 1.0f, 0.0f, 1.0f}, got[4];
	double xd[3] = {1e300, -2.0, 0.5}, yd[3] = {1e300, 3.0, 4.0}, gd[3], sd;
	float want_add[4] = {3.75f, NAN, 0.0f, INFINITY}, want_min[4] = {1.5f, NAN, -0.0f, 1.0f};
	float want_max[4] = {2.25f, NAN, 0.0f, INFINITY};
	int i;

	assert_int_equal(derived(fx, "add:f32", xf, yf, 16, got, sizeof(got)), 16);
	for (i = 0; i < 4; i++)
		assert_true(same_f(got[i], want_add[i]));
	assert_int_equal(derived(fx, "min:f32", xf, yf, 16, got, sizeof(got)), 16);
	for (i = 0; i < 4; i++)
		assert_true(same_f(got[i], want_min[i])); /* NaN propagates, -0 < +0 */
	assert_int_equal(derived(fx, "max:f32", yf, xf, 16, got, sizeof(got)), 16);
	for (i = 0; i < 4; i++)
		assert_true(same_f(got[i], want_max[i]));
	assert_int_equal(derived(fx, "add:f64", xd, yd, 24, gd, sizeof(gd)), 24);
	assert_true(gd[0] == 2e300 && gd[1] == 1.0 && gd[2] == 4.5);
	assert_int_equal(derived(fx, "sum:f64", xd, yd, 24, &sd, sizeof(sd)), 8);
	assert_true(sd == ((1e300 + -2.0 + 0.5 + 1e300 + 3.0 + 4.0)));
	assert_int_equal(derived(fx, "sum:f32", xf, yf, 16, got, sizeof(got)), 4);
	assert_true(isnan(got[0]));
	xd[1] = INFINITY;
	assert_int_equal(derived(fx, "add:f64", xd, yd, 24, gd, sizeof(gd)), 24);
	assert_true(isinf(gd[1]));
}

static int has_error(struct fx *fx, uint64_t id, char *msg, size_t cap)
{
	ssize_t n = mmsb_getxattr(fx->st, id, "user.mmsb.error", msg, cap - 1);

	if (n < 0)
		return 0;
	msg[n] = '\0';
	return 1;
}

static void failures_set_error(void **state)
{
	struct fx *fx = *state;
	uint64_t a = fx_page(fx, "a", "1234", 4), b = fx_page(fx, "b", "5678", 4), c = fx_page(fx, "c", NULL, 0);
	char msg[256];

	derive(fx, c, "a,b", "xor");
	assert_false(has_error(fx, c, msg, sizeof(msg)));
	fx_write(fx, a, 4, "5", 1); /* a is now 5 bytes: xor no longer fits */
	assert_true(has_error(fx, c, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "sizes"));
	expect(fx, c, "\x04\x04\x04\x0c", 4); /* unchanged */
	fx_write(fx, b, 4, "5", 1); /* fits again: recomputed, error cleared */
	assert_false(has_error(fx, c, msg, sizeof(msg)));
	expect(fx, c, "\x04\x04\x04\x0c\x00", 5);
	{
		struct mmsb_txn *t;

		assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
		assert_int_equal(mmsb_txn_unlink(t, MMSB_ROOT_ID, "b"), 0);
		assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	}
	fx_write(fx, a, 0, "9", 1);
	assert_true(has_error(fx, c, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "removed"));
	fx_reopen(fx); /* the error is logged state */
	assert_true(has_error(fx, c, msg, sizeof(msg)));
}

static void renamed_parent_is_followed(void **state)
{
	struct fx *fx = *state;
	uint64_t a = fx_page(fx, "a", "one", 3), c = fx_page(fx, "c", NULL, 0);
	struct mmsb_txn *t;

	derive(fx, c, "a", "copy");
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_rename(t, MMSB_ROOT_ID, "a", MMSB_ROOT_ID, "renamed", 0), 0);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	fx_write(fx, a, 0, "two", 3);
	expect(fx, c, "two", 3);
	fx_reopen(fx); /* the edge survives replay and checkpoints */
	fx_write(fx, a, 0, "six", 3);
	expect(fx, c, "six", 3);
}

struct src_count {
	int user, prop;
};

static int count_sources(void *arg, const struct mmsb_hist_entry *e)
{
	struct src_count *s = arg;

	if (e->kind == MMSB_CH_WRITE && e->source == MMSB_SRC_PROPAGATION)
		s->prop++;
	else if (e->kind == MMSB_CH_WRITE)
		s->user++;
	return 0;
}

static void replay_and_time_travel(void **state)
{
	struct fx *fx = *state;
	uint64_t a = fx_page(fx, "a", "aaaa", 4), c = fx_page(fx, "c", NULL, 0), e1, e2, ck;
	struct src_count sc = {0, 0};
	struct mmsb_snap *s;
	char buf[16];

	derive(fx, c, "a", "copy");
	e1 = fx_write(fx, a, 0, "bbbb", 4);
	assert_int_equal(mmsb_checkpoint(fx->st, &ck), 0);
	e2 = fx_write(fx, a, 0, "cccc", 4);
	fx_reopen(fx);
	expect(fx, c, "cccc", 4);
	assert_int_equal(mmsb_snap_open(fx->st, e1, &s), 0);
	assert_int_equal(mmsb_snap_read(s, c, 0, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "bbbb", 4);
	assert_int_equal(mmsb_snap_getxattr(s, c, "user.mmsb.recompute", buf, sizeof(buf)), 4);
	mmsb_snap_close(s);
	assert_int_equal(mmsb_history(fx->st, c, 0, e2, count_sources, &sc), 0);
	assert_int_equal(sc.user, 0);
	assert_int_equal(sc.prop, 3); /* at setxattr, e1, e2 */
	assert_int_equal(mmsb_store_verify(fx->st), 0);
}

static void exec_operations(void **state)
{
	struct fx *fx = *state;
	uint64_t a = fx_page(fx, "a", "hello\n", 6), b = fx_page(fx, "b", "world\n", 6), c = fx_page(fx, "c", NULL, 0);
	uint64_t d = fx_page(fx, "d", NULL, 0);
	char msg[256];

	derive(fx, c, "a,b", "exec:cat");
	expect(fx, c, "hello\nworld\n", 12);
	fx_write(fx, b, 0, "there", 5);
	expect(fx, c, "hello\nthere\n", 12);
	derive(fx, d, "a", "exec:tr a-z A-Z <");
	expect(fx, d, "HELLO\n", 6);
	assert_int_equal(fx_setx(fx, d, "user.mmsb.recompute", "exec:echo oops >&2; exit 3"), 0);
	assert_true(has_error(fx, d, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "exit status 3: oops"));
	expect(fx, d, "HELLO\n", 6);
	assert_int_equal(fx_setx(fx, d, "user.mmsb.recompute", "exec:sleep 5; true"), 0);
	assert_true(has_error(fx, d, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "timed out"));
	fx->o.allow_exec = false;
	fx_reopen(fx);
	assert_int_equal(fx_setx(fx, d, "user.mmsb.recompute", "exec:cat"), -EPERM);
	fx_write(fx, a, 0, "HOWDY", 5); /* c is exec: and exec is now off */
	assert_true(has_error(fx, c, msg, sizeof(msg)));
	(void)a;
}

int main(void)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test_setup_teardown(chain_and_version, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(diamond_join_once, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(fanout, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(refusals, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(integer_operations, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(float_operations, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(failures_set_error, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(renamed_parent_is_followed, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(replay_and_time_travel, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(exec_operations, setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("prop", t, NULL, NULL);
}
