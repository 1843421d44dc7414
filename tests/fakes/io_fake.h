/* io_fake.h - an I/O table for tests: the POSIX calls, plus injected
 * failures (SQLite's aSyscall[] / sqlite3FaultSim idea, per store). */
#ifndef MMSB_IO_FAKE_H
#define MMSB_IO_FAKE_H

#include <stdbool.h>

#include "io.h"

enum io_fake_op {
	IO_FAKE_PWRITE,
	IO_FAKE_FSYNC,
	IO_FAKE_FTRUNCATE,
	IO_FAKE_RENAME,
	IO_FAKE_OPEN,
	IO_FAKE_N_OPS,
};

struct io_fake {
	struct mmsb_io_ops ops;		   /* hand &ops to mmsb_store_opts.io */
	unsigned calls[IO_FAKE_N_OPS];	   /* calls seen per op */
	unsigned fail_at[IO_FAKE_N_OPS];   /* fail the call with this number (1-based; 0 = never) */
	int fail_err[IO_FAKE_N_OPS];	   /* -errno to return */
	bool fail_sticky[IO_FAKE_N_OPS];   /* keep failing after the first */
	unsigned short_at;		   /* pwrite call number to make short (half written) */
};

/* Initialize f with the POSIX behaviour and no faults. */
void io_fake_init(struct io_fake *f);
/* Fail call number `nth` (counting from now) of op with err. */
void io_fake_fail(struct io_fake *f, enum io_fake_op op, unsigned nth, int err, bool sticky);

#endif
