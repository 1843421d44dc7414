/* prop.h - dependency propagation: recompute operations and running them.
 *
 * A page with user.mmsb.deps (its parents) and user.mmsb.recompute (an
 * operation) is derived: when a parent changes, it is recomputed in the same
 * transaction, so every epoch is consistent.  Semantics and the order of
 * recomputes: prop.c; the operations themselves: kernels/kern.h.
 */
#ifndef MMSB_PROP_H
#define MMSB_PROP_H

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>

#include "buf.h"
#include "kern.h"

/* A parsed user.mmsb.recompute: a built-in operation of the kernel layer
 * (kernels/kern.h: "copy", "concat", "xor", "add|min|max|sum:<type>") or
 * exec:COMMAND. */
struct prop_spec {
	bool exec;		  /* exec:COMMAND */
	enum mmsb_kern_op op;	  /* built-in operation */
	enum mmsb_kern_elem elem; /* its element type */
	const char *cmd;	  /* exec: the command (not NUL-terminated) */
	size_t cmd_len;
};

/* Parse a user.mmsb.recompute value (surrounding blanks and a trailing
 * newline are ignored).  0 or -EINVAL. */
int prop_parse(const char *val, size_t len, struct prop_spec *out);

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
