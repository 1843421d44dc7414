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
	assert_int_equal(fx_setx(fx, MMSB_ROOT_ID, "user.mmsb.deps", "a"), -EISDIR);
	assert_int_equal(fx_setx(fx, b, "user.mmsb.recompute", "add:u16"), -EINVAL); /* 1 byte is not a u16 */
	assert_int_equal(mmsb_getxattr(fx->st, a, "user.mmsb.deps", NULL, 0), -ENODATA);
	/* a mkdir makes a dir: not a parent */
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_create(t, MMSB_ROOT_ID, "dir", MMSB_T_DIR, 0755, 0, 0, NULL, &at), 0);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	assert_int_equal(fx_setx(fx, c, "user.mmsb.deps", "dir"), -EISDIR);
	assert_int_equal(fx_setx(fx, c, "user.mmsb.deps", "dir/"), -EISDIR);
	assert_int_equal(fx_setx(fx, c, "user.mmsb.deps", "a/"), -ENOTDIR); /* a page is no directory */
	assert_int_equal(fx_setx(fx, c, "user.mmsb.deps", "a/x"), -ENOTDIR);
	assert_int_equal(mmsb_getxattr(fx->st, c, "user.mmsb.deps", NULL, 0), 1); /* still "b" */
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


/* ---- cost of the cycle check and of propagation (issue: exponential) ---- */

/* Create pages named PREFIX0..PREFIX(n-1) in one transaction; ids into out. */
static void make_pages(struct fx *fx, const char *prefix, size_t n, uint64_t *out)
{
	struct mmsb_txn *t;
	struct mmsb_attr a;
	char name[32];
	size_t i;

	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s%zu", prefix, i);
		assert_int_equal(mmsb_txn_create(t, MMSB_ROOT_ID, name, MMSB_T_PAGE, 0644, 0, 0, NULL, &a), 0);
		out[i] = a.id;
	}
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
}

/* A ladder of L levels of two pages, each depending on both pages below:
 * the old recursive check walked 2^L paths (L=30: 18 s; L=50: a hung
 * mount).  With a visited set, closing the cycle from the bottom and adding
 * a new top cost 2L visits.  The test asserts the answers; the suite's
 * timeout bounds the time. */
static void ladder_is_linear(void **state)
{
	struct fx *fx = *state;
	enum { L = 60 };
	uint64_t id[2 * L], top;
	char deps[64], want[8];
	struct mmsb_txn *t;
	int i;

	make_pages(fx, "l", 2 * L, id);
	fx_write(fx, id[0], 0, "\x01", 1);
	fx_write(fx, id[1], 0, "\x02", 1);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	for (i = 1; i < L; i++) {
		snprintf(deps, sizeof(deps), "l%d,l%d", 2 * (i - 1), 2 * (i - 1) + 1);
		assert_int_equal(mmsb_txn_setxattr(t, id[2 * i], "user.mmsb.deps", deps, strlen(deps), 0), 0);
		assert_int_equal(mmsb_txn_setxattr(t, id[2 * i + 1], "user.mmsb.deps", deps, strlen(deps), 0), 0);
		assert_int_equal(mmsb_txn_setxattr(t, id[2 * i], "user.mmsb.recompute", "max:u8", 6, 0), 0);
		assert_int_equal(mmsb_txn_setxattr(t, id[2 * i + 1], "user.mmsb.recompute", "xor", 3, 0), 0);
	}
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	/* the bottom naming the top closes 2^L paths' worth of cycles */
	snprintf(deps, sizeof(deps), "l%d", 2 * L - 1);
	assert_int_equal(fx_setx(fx, id[0], "user.mmsb.deps", deps), -ELOOP);
	assert_int_equal(fx_setx(fx, id[1], "user.mmsb.deps", deps), -ELOOP);
	/* a new page over the whole ladder is no cycle */
	top = fx_page(fx, "top", NULL, 0);
	snprintf(deps, sizeof(deps), "l%d,l%d", 2 * L - 2, 2 * L - 1);
	derive(fx, top, deps, "max:u8");
	/* propagation through the ladder: each page once, in order */
	fx_write(fx, id[0], 0, "\x03", 1);
	/* level 1: max(3,2)=3, xor(3,2)=1; level 2: 3, 2; level 3: 3, 1; ... */
	want[0] = (L - 1) % 2 ? 3 : 3;
	expect(fx, id[2 * L - 2], want, 1);
	want[0] = (L - 1) % 2 ? 1 : 2;
	expect(fx, id[2 * L - 1], want, 1);
	want[0] = 3;
	expect(fx, top, want, 1);
}

/* A chain 50,000 deep: the check walks it without recursion (the old one
 * recursed once per level and gave up past depth 100,000, which would let a
 * cycle through), and a write at the root propagates down all of it. */
static void deep_chain(void **state)
{
	struct fx *fx = *state;
	enum { D = 50000 };
	uint64_t *id = malloc(D * sizeof(*id)), x;
	struct mmsb_txn *t;
	char deps[32];
	int i;

	assert_non_null(id);
	make_pages(fx, "d", D, id);
	fx_write(fx, id[0], 0, "a", 1);
	/* d(i) depends on d(i-1), set from the bottom up so that each check
	 * here is short (d(i-1) has no parents yet) */
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	for (i = D - 1; i >= 1; i--) {
		snprintf(deps, sizeof(deps), "d%d", i - 1);
		assert_int_equal(mmsb_txn_setxattr(t, id[i], "user.mmsb.deps", deps, strlen(deps), 0), 0);
		assert_int_equal(mmsb_txn_setxattr(t, id[i], "user.mmsb.recompute", "copy", 4, 0), 0);
	}
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	expect(fx, id[D - 1], "a", 1);
	/* the root naming the deepest page: a cycle found 50,000 levels down */
	snprintf(deps, sizeof(deps), "d%d", D - 1);
	assert_int_equal(fx_setx(fx, id[0], "user.mmsb.deps", deps), -ELOOP);
	x = fx_page(fx, "below", NULL, 0);
	derive(fx, x, deps, "copy");
	fx_write(fx, id[0], 0, "b", 1);
	expect(fx, id[D / 2], "b", 1);
	expect(fx, x, "b", 1);
	free(id);
}


/* Pages with 4096 distinct parents: ordering them is one pass over their
 * edges (the old count of distinct parents compared every edge with every
 * earlier one: 4096^2 / 2 steps per page at each write). */
static void many_parents(void **state)
{
	struct fx *fx = *state;
	enum { K = 64, N = 4096 };
	static char deps[N * 8];
	static uint64_t p[N];
	uint64_t c[K];
	struct mmsb_attr at;
	struct mmsb_txn *t;
	uint8_t buf[N];
	size_t len = 0;
	int i;

	make_pages(fx, "p", N, p);
	for (i = 0; i < N; i++)
		len += (size_t)sprintf(deps + len, "%sp%d", i ? "," : "", i);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	for (i = 0; i < N; i++)
		assert_int_equal(mmsb_txn_write(t, p[i], 0, i % 2 ? "b" : "a", 1), 1);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	make_pages(fx, "r", K, c);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	for (i = 0; i < K; i++) {
		assert_int_equal(mmsb_txn_setxattr(t, c[i], "user.mmsb.deps", deps, len, 0), 0);
		assert_int_equal(mmsb_txn_setxattr(t, c[i], "user.mmsb.recompute", "concat", 6, 0), 0);
	}
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	fx_write(fx, p[0], 0, "x", 1);
	fx_write(fx, p[N - 1], 0, "y", 1);
	for (i = 0; i < K; i++) {
		assert_int_equal(mmsb_read(fx->st, c[i], 0, buf, sizeof(buf)), N);
		assert_int_equal(buf[0], 'x');
		assert_int_equal(buf[1], 'b');
		assert_int_equal(buf[N - 1], 'y');
		assert_int_equal(mmsb_getattr(fx->st, c[i], &at), 0);
		assert_int_equal(at.version, 3); /* set, then once per parent write */
	}
}

/* ---- the permission rule of dependencies ---------------------------------- */

static uint64_t make(struct fx *fx, uint64_t dir, const char *name, enum mmsb_type type, uint32_t mode,
		     uint32_t uid, uint32_t gid, const char *bytes)
{
	struct mmsb_txn *t;
	struct mmsb_attr a;

	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_create(t, dir, name, type, mode, uid, gid, NULL, &a), 0);
	if (bytes)
		assert_int_equal(mmsb_txn_write(t, a.id, 0, bytes, strlen(bytes)), (ssize_t)strlen(bytes));
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	return a.id;
}

/* setxattr as cred; on refusal *why gets mmsb_txn_why() */
static int setx_as(struct fx *fx, const struct mmsb_cred *c, uint64_t id, const char *name, const char *val,
		   char *why, size_t cap)
{
	struct mmsb_txn *t;
	int rc;

	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_set_cred(t, c), 0);
	rc = mmsb_txn_setxattr(t, id, name, val, strlen(val), 0);
	if (why)
		snprintf(why, cap, "%s", mmsb_txn_why(t));
	if (rc == 0)
		assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	else
		mmsb_txn_abort(t);
	return rc;
}

static void chmod_node(struct fx *fx, uint64_t id, uint32_t mode)
{
	struct mmsb_setattr sa = {.valid = MMSB_SET_MODE, .mode = mode};
	struct mmsb_txn *t;

	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_setattr(t, id, &sa), 0);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
}

/* Fake group database for owners: uid 1000 is in group 50. */
static int fake_groups(void *arg, uint32_t uid, uint32_t gid, uint32_t *out, size_t cap)
{
	(*(int *)arg)++;
	if (uid != 1000)
		return 0;
	if (cap >= 1)
		out[0] = 50;
	return 1;
}

static int setup_perm(void **state)
{
	static int calls;
	struct fx *fx;

	fx_setup(state);
	fx = *state;
	calls = 0;
	fx->o.groups_fn = fake_groups;
	fx->o.groups_arg = &calls;
	fx_reopen(fx);
	return 0;
}

/* The attack, through the core: a user makes a page and names root's
 * 0600 secret (and a page in a 0700 directory) as its parent. */
static void perm_set_time(void **state)
{
	struct fx *fx = *state;
	const uint32_t g50 = 50;
	struct mmsb_cred user = {1000, 1000, 0, NULL}, member = {1001, 1001, 1, &g50}, root = {0, 0, 0, NULL};
	uint64_t pub = make(fx, MMSB_ROOT_ID, "pub", MMSB_T_DIR, 0777, 0, 0, NULL);
	uint64_t priv = make(fx, MMSB_ROOT_ID, "priv", MMSB_T_DIR, 0700, 0, 0, NULL);
	uint64_t x = make(fx, pub, "x", MMSB_T_PAGE, 0644, 1000, 1000, NULL);
	char why[512];

	make(fx, MMSB_ROOT_ID, "secret", MMSB_T_PAGE, 0600, 0, 0, "top secret");
	make(fx, priv, "inner", MMSB_T_PAGE, 0644, 0, 0, "inner secret");
	make(fx, MMSB_ROOT_ID, "grp", MMSB_T_PAGE, 0640, 0, 50, "group data");
	make(fx, MMSB_ROOT_ID, "open", MMSB_T_PAGE, 0644, 0, 0, "public");

	assert_int_equal(setx_as(fx, &user, x, "user.mmsb.deps", "secret", why, sizeof(why)), -EACCES);
	assert_non_null(strstr(why, "deps: pub/x: parent 'secret': permission denied"));
	assert_int_equal(setx_as(fx, &user, x, "user.mmsb.deps", "priv/inner", why, sizeof(why)), -EACCES);
	assert_non_null(strstr(why, "search '/priv'"));
	/* no search on priv: a missing name there is EACCES too, not ENOENT */
	assert_int_equal(setx_as(fx, &user, x, "user.mmsb.deps", "priv/none", NULL, 0), -EACCES);
	assert_int_equal(setx_as(fx, &user, x, "user.mmsb.deps", "open,secret", NULL, 0), -EACCES);
	assert_int_equal(setx_as(fx, &user, x, "user.mmsb.deps", "grp", NULL, 0), -EACCES);
	assert_int_equal(mmsb_getxattr(fx->st, x, "user.mmsb.deps", NULL, 0), -ENODATA);
	/* what the caller may read is fine: other bits, group via supplementary groups, root */
	assert_int_equal(setx_as(fx, &user, x, "user.mmsb.deps", "open", NULL, 0), 0);
	assert_int_equal(setx_as(fx, &member, x, "user.mmsb.deps", "grp", NULL, 0), 0);
	assert_int_equal(setx_as(fx, &root, x, "user.mmsb.deps", "priv/inner", NULL, 0), 0);
	/* with root's deps in place, the user may not turn them into a copy */
	assert_int_equal(setx_as(fx, &user, x, "user.mmsb.recompute", "copy", why, sizeof(why)), -EACCES);
	assert_non_null(strstr(why, "recompute: pub/x: parent 'priv/inner'"));
	assert_int_equal(mmsb_read(fx->st, x, 0, why, sizeof(why)), 0);
	/* messages name the rule and the path */
	assert_int_equal(setx_as(fx, &user, x, "user.mmsb.deps", "missing", why, sizeof(why)), -ENOENT);
	assert_string_equal(why, "deps: pub/x: parent 'missing' not found");
	assert_int_equal(setx_as(fx, &user, x, "user.mmsb.recompute", "add:f33", why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "recompute: pub/x: add:f33: unknown element type");
	assert_int_equal(setx_as(fx, &user, x, "user.mmsb.deps", "pub", why, sizeof(why)), -EISDIR);
	assert_string_equal(why, "deps: pub/x: parent 'pub' is a directory, not a page");
	assert_int_equal(setx_as(fx, &root, x, "user.mmsb.deps", "open, pub/x", why, sizeof(why)), -ELOOP);
	assert_string_equal(why, "deps: pub/x: parent 'pub/x' depends on this page (a cycle)");
}

/* A parent that later denies the derived page's owner stops propagating:
 * the child keeps its bytes, user.mmsb.error says why, and it resumes once
 * the owner may read again. */
static void perm_revoked_later(void **state)
{
	struct fx *fx = *state;
	struct mmsb_cred user = {1000, 1000, 0, NULL};
	uint64_t dir = make(fx, MMSB_ROOT_ID, "d", MMSB_T_DIR, 0755, 0, 0, NULL);
	uint64_t p = make(fx, dir, "p", MMSB_T_PAGE, 0644, 0, 0, "v1");
	uint64_t g = make(fx, MMSB_ROOT_ID, "g", MMSB_T_PAGE, 0640, 0, 50, "g1");
	uint64_t c = make(fx, MMSB_ROOT_ID, "c", MMSB_T_PAGE, 0644, 1000, 1000, NULL);
	uint64_t cg = make(fx, MMSB_ROOT_ID, "cg", MMSB_T_PAGE, 0644, 1000, 1000, NULL);
	char msg[512];

	assert_int_equal(setx_as(fx, &user, c, "user.mmsb.deps", "d/p", NULL, 0), 0);
	assert_int_equal(setx_as(fx, &user, c, "user.mmsb.recompute", "copy", NULL, 0), 0);
	expect(fx, c, "v1", 2);
	fx_write(fx, p, 0, "v2", 2);
	expect(fx, c, "v2", 2);
	chmod_node(fx, p, 0600); /* the page itself */
	fx_write(fx, p, 0, "v3", 2);
	expect(fx, c, "v2", 2);
	assert_true(has_error(fx, c, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "permission denied: owner uid 1000 may not read '/d/p'"));
	chmod_node(fx, p, 0644);
	chmod_node(fx, dir, 0700); /* a directory on its path */
	fx_write(fx, p, 0, "v4", 2);
	expect(fx, c, "v2", 2);
	assert_true(has_error(fx, c, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "may not search '/d'"));
	chmod_node(fx, dir, 0755);
	fx_write(fx, p, 0, "v5", 2);
	expect(fx, c, "v5", 2);
	assert_false(has_error(fx, c, msg, sizeof(msg)));
	/* the owner's supplementary groups come from groups_fn (uid 1000: 50) */
	assert_int_equal(fx_setx(fx, cg, "user.mmsb.deps", "g"), 0);
	assert_int_equal(fx_setx(fx, cg, "user.mmsb.recompute", "copy"), 0);
	expect(fx, cg, "g1", 2);
	assert_false(has_error(fx, cg, msg, sizeof(msg)));
	chmod_node(fx, g, 0600);
	fx_write(fx, g, 0, "g2", 2);
	expect(fx, cg, "g1", 2);
	assert_true(has_error(fx, cg, msg, sizeof(msg)));
	fx_reopen(fx); /* the refusal is logged state */
	assert_true(has_error(fx, cg, msg, sizeof(msg)));
	expect(fx, cg, "g1", 2);
}

/* A renamed parent is checked where it is now. */
static void perm_follows_rename(void **state)
{
	struct fx *fx = *state;
	struct mmsb_cred user = {1000, 1000, 0, NULL};
	uint64_t priv = make(fx, MMSB_ROOT_ID, "priv", MMSB_T_DIR, 0700, 0, 0, NULL);
	uint64_t p = make(fx, MMSB_ROOT_ID, "p", MMSB_T_PAGE, 0644, 0, 0, "v1");
	uint64_t c = make(fx, MMSB_ROOT_ID, "c", MMSB_T_PAGE, 0644, 1000, 1000, NULL);
	struct mmsb_txn *t;
	char msg[512];

	(void)priv;
	assert_int_equal(setx_as(fx, &user, c, "user.mmsb.deps", "p", NULL, 0), 0);
	assert_int_equal(setx_as(fx, &user, c, "user.mmsb.recompute", "copy", NULL, 0), 0);
	assert_int_equal(mmsb_txn_begin(fx->st, MMSB_SRC_USER, &t), 0);
	assert_int_equal(mmsb_txn_rename(t, MMSB_ROOT_ID, "p", priv, "p", 0), 0);
	assert_int_equal(mmsb_txn_commit(t, NULL), 0);
	fx_write(fx, p, 0, "v2", 2);
	expect(fx, c, "v1", 2);
	assert_true(has_error(fx, c, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "search '/priv'"));
}

/* Per-node xattr caps: listxattr's 64 KiB list can always be returned. */
static void xattr_caps(void **state)
{
	struct fx *fx = *state;
	uint64_t a = fx_page(fx, "a", NULL, 0);
	static char big[60000];
	char name[64];
	ssize_t len;
	unsigned i;
	int rc = 0;

	for (i = 0; i < 20000 && rc == 0; i++) {
		snprintf(name, sizeof(name), "user.k%05u", i);
		rc = fx_setx(fx, a, name, "v");
	}
	assert_int_equal(rc, -ENOSPC);
	assert_int_equal(i - 1, 1024); /* MMSB_XATTR_COUNT_MAX set, the next refused */
	len = mmsb_listxattr(fx->st, a, NULL, 0);
	assert_true(len > 0 && len <= (ssize_t)MMSB_XATTR_LIST_MAX);
	assert_int_equal(fx_setx(fx, a, "user.k00000", "replaced"), 0); /* replacing stays possible */
	/* total size: 1 MiB of names and values */
	memset(big, 'x', sizeof(big) - 1);
	a = fx_page(fx, "b", NULL, 0);
	for (i = 0, rc = 0; i < 40 && rc == 0; i++) {
		snprintf(name, sizeof(name), "user.big%u", i);
		rc = fx_setx(fx, a, name, big);
	}
	assert_int_equal(rc, -ENOSPC);
	assert_int_equal(i - 1, (1u << 20) / 60000);
	/* long names: the list cap */
	a = fx_page(fx, "c", NULL, 0);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	memcpy(name, "user.", 5);
	{
		char longname[256];

		for (i = 0, rc = 0; i < 2000 && rc == 0; i++) {
			snprintf(longname, sizeof(longname), "user.%04u%0240u", i, 0u);
			rc = fx_setx(fx, a, longname, "");
		}
		assert_int_equal(rc, -ENOSPC);
		assert_int_equal(i - 1, MMSB_XATTR_LIST_MAX / 250);
	}
	fx_reopen(fx);
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
		cmocka_unit_test_setup_teardown(ladder_is_linear, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(deep_chain, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(many_parents, setup, fx_teardown),
		cmocka_unit_test_setup_teardown(perm_set_time, setup_perm, fx_teardown),
		cmocka_unit_test_setup_teardown(perm_revoked_later, setup_perm, fx_teardown),
		cmocka_unit_test_setup_teardown(perm_follows_rename, setup_perm, fx_teardown),
		cmocka_unit_test_setup_teardown(xattr_caps, setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("prop", t, NULL, NULL);
}
