/* diag.h - diagnostics: one-line messages to a per-store sink.
 *
 * libmmsb never writes to stdout or stderr itself: the default sink (used
 * when the store has none) writes to stderr, and fusefs installs its own.
 * Message style: "module: what (ids, offsets)", lowercase, no trailing period.
 */
#ifndef MMSB_DIAG_H
#define MMSB_DIAG_H

#include <stdarg.h>

#include "err.h"
#include "mmsb.h"

struct mmsb_diag {
	mmsb_diag_fn fn; /* sink; NULL = stderr */
	void *arg;	 /* passed to fn */
	int level;	 /* drop messages above this level */
};

void mmsb_diag(const struct mmsb_diag *d, int level, const char *fmt, ...) MMSB_PRINTF(3, 4);
void mmsb_vdiag(const struct mmsb_diag *d, int level, const char *fmt, va_list ap) MMSB_PRINTF(3, 0);
static inline int mmsb_diag_on(const struct mmsb_diag *d, int level)
{
	return level <= d->level;
}

/* Log file:line where corruption was detected (at DEBUG) and the message
 * (at ERR); returns -MMSB_ECORRUPT. */
int mmsb_corrupt_at(const struct mmsb_diag *d, const char *file, int line, const char *fmt, ...)
	MMSB_PRINTF(4, 5);
#define MMSB_CORRUPT(d, ...) mmsb_corrupt_at((d), __FILE__, __LINE__, __VA_ARGS__)

#endif
