/* buf.h - a growable byte buffer, grown in place (no API hands back a new
 * pointer).  Used for building frames and checkpoint blocks. */
#ifndef MMSB_BUF_H
#define MMSB_BUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct mmsb_buf {
	uint8_t *p;  /* bytes, NULL while empty */
	size_t len;  /* bytes in use */
	size_t cap;  /* bytes allocated */
};

/* Make room for `more` bytes past len.  0 or -ENOMEM. */
static inline int mmsb_buf_reserve(struct mmsb_buf *b, size_t more)
{
	size_t need = b->len + more, cap;
	uint8_t *p;

	if (need < b->len)
		return -ENOMEM;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap * 2 > cap ? cap * 2 : need;
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static inline int mmsb_buf_put(struct mmsb_buf *b, const void *src, size_t n)
{
	int rc = mmsb_buf_reserve(b, n);

	if (rc < 0)
		return rc;
	if (n)
		memcpy(b->p + b->len, src, n);
	b->len += n;
	return 0;
}

/* Append n zero bytes; returns a pointer to them in *at (valid until the
 * next growth). */
static inline int mmsb_buf_grow(struct mmsb_buf *b, size_t n, uint8_t **at)
{
	int rc = mmsb_buf_reserve(b, n);

	if (rc < 0)
		return rc;
	memset(b->p + b->len, 0, n);
	*at = b->p + b->len;
	b->len += n;
	return 0;
}

static inline void mmsb_buf_free(struct mmsb_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

#endif
