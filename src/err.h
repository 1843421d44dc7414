/* err.h - error conventions of libmmsb.
 *
 * Every fallible function returns int (ssize_t for counts): >= 0 is success,
 * -errno is failure.  errno is never an output channel.  The sign flips once,
 * at the FUSE boundary (fusefs/ops.c).
 *
 * Fixed meanings:
 *   -ENOENT    no such page, directory, epoch or snapshot
 *   -EROFS     write to a read-only view or store
 *   -EUCLEAN   (MMSB_ECORRUPT) a structure read from disk fails validation
 *   -EBADMSG   (MMSB_EBADCRC)  a checksum mismatch
 *   -ENOTSUP   unknown incompat feature or major version
 *   -EINVAL    bad argument, or bad magic ("not an MMSB store")
 *   -EBUSY     store locked by another process, or checkpoint running
 *   -ELOOP     dependency cycle
 *   -ENOSPC, -EIO, -ENOMEM passed through unchanged
 */
#ifndef MMSB_ERR_H
#define MMSB_ERR_H

#include <errno.h>

#define MMSB_ECORRUPT EUCLEAN /* Linux fs convention (jbd2, f2fs) */
#define MMSB_EBADCRC  EBADMSG

#define MMSB_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define MMSB_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MMSB_UNUSED	  __attribute__((unused))
#else
#define MMSB_PRINTF(f, a)
#define MMSB_UNUSED
#endif

#endif
