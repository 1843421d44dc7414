/* fx.h - a fixture for tests of the public API: a store in a fresh
 * temporary directory, opened quietly, removed afterwards. */
#ifndef MMSB_TEST_FX_H
#define MMSB_TEST_FX_H

#include "mmsb.h"

struct fx {
	char dir[64];		  /* the store directory (inside a temporary one) */
	struct mmsb_store *st;	  /* the open store */
	struct mmsb_store_opts o; /* what every (re)open uses: defaults, quiet */
};

/* cmocka setup/teardown: *state is a struct fx with its store open. */
int fx_setup(void **state);
int fx_teardown(void **state);
/* Remove dir and everything below it (a test's temporary directory);
 * a failure fails the test. */
void fx_rmtree(const char *dir);
/* Close the store and open it again with fx->o (recovery: checkpoint and
 * log replay). */
void fx_reopen(struct fx *fx);

/* One transaction each (failures of the setup steps fail the test): */
/* a page in the root, with len bytes; returns its id */
uint64_t fx_page(struct fx *fx, const char *name, const void *bytes, size_t len);
/* the same in any open store */
uint64_t fx_page_in(struct mmsb_store *st, const char *name, const void *bytes, size_t len);
/* write len bytes at off; returns the epoch (0: nothing changed) */
uint64_t fx_write(struct fx *fx, uint64_t id, uint64_t off, const void *bytes, size_t len);
/* setxattr of a string value; returns what mmsb_txn_setxattr returned
 * (the transaction commits on 0, aborts otherwise) */
int fx_setx(struct fx *fx, uint64_t id, const char *name, const char *val);

/* Seeded random numbers for model tests (xorshift64*): the next value of
 * state *s, and one below n. */
static inline uint64_t fx_rnd_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static inline unsigned fx_rnd(uint64_t *s, unsigned n)
{
	return (unsigned)(fx_rnd_next(s) % n);
}

#endif
