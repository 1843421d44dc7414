/* diag.c - diagnostics sink.  See diag.h. */
#include <stdio.h>
#include <string.h>

#include "diag.h"

void mmsb_vdiag(const struct mmsb_diag *d, int level, const char *fmt, va_list ap)
{
	char msg[1024];

	if ((d && level > d->level) || !fmt)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (d && d->fn)
		d->fn(d->arg, level, msg);
	else
		fprintf(stderr, "mmsb: %s\n", msg);
}

void mmsb_diag(const struct mmsb_diag *d, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mmsb_vdiag(d, level, fmt, ap);
	va_end(ap);
}

int mmsb_corrupt_at(const struct mmsb_diag *d, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mmsb_vdiag(d, MMSB_DIAG_ERR, fmt, ap);
	va_end(ap);
	mmsb_diag(d, MMSB_DIAG_DEBUG, "corruption detected at %s:%d", file, line);
	return -MMSB_ECORRUPT;
}
