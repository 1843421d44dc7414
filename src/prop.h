/* prop.h - dependency propagation: recompute operations and running them.
 *
 * A page with user.mmsb.deps (its parents) and user.mmsb.recompute (an
 * operation) is derived: when a parent changes, it is recomputed in the same
 * transaction, so every epoch is consistent.  Semantics and the order of
 * recomputes: prop.c; the operations themselves: recompute.c.
 */
#ifndef MMSB_PROP_H
#define MMSB_PROP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum prop_op {
	PROP_COPY,
	PROP_CONCAT,
	PROP_XOR,
	PROP_ADD,
	PROP_MIN,
	PROP_MAX,
	PROP_SUM,
	PROP_EXEC,
};

enum prop_elem {
	PROP_U8,
	PROP_U16,
	PROP_U32,
	PROP_U64,
	PROP_I32,
	PROP_I64,
	PROP_F32,
	PROP_F64,
};

struct prop_spec {
	enum prop_op op;
	enum prop_elem elem; /* add/min/max/sum */
	const char *cmd;     /* exec: the command (not NUL-terminated) */
	size_t cmd_len;
};

/* Parse a user.mmsb.recompute value ("copy", "add.f32", "exec:CMD"...).
 * 0 or -EINVAL. */
int prop_parse(const char *val, size_t len, struct prop_spec *out);
size_t prop_elem_size(enum prop_elem e);
/* Compute a built-in operation (not exec) into out (reset first).
 * -EINVAL when the parents' sizes do not fit the operation, -ENOMEM. */
int prop_compute(const struct prop_spec *sp, const uint8_t *const *in, const uint64_t *in_len, size_t n_in,
		 struct mmsb_buf *out);

struct mmsb_txn;
struct ns_node;
/* Validate setting (value != NULL) or removing an MMSB dependency attribute
 * of n inside t, before it is logged: -ENOENT unknown parent, -ELOOP cycle,
 * -EINVAL bad operation, not a page, or sizes that cannot fit, -EPERM exec
 * not allowed.  0 for names that are not dependency attributes. */
int prop_check_xattr(struct mmsb_txn *t, struct ns_node *n, const char *name, const void *value, size_t len);
/* Recompute, in topological order and once each, every page derived from
 * what t changed, as records of t flagged MMSB_FRF_PROPAGATED.  A failing
 * recompute leaves the child unchanged and sets user.mmsb.error.
 * Returns 0 or -ENOMEM. */
int prop_run(struct mmsb_txn *t);

#endif
