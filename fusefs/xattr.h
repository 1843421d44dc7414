/* xattr.h - extended attributes of mmsbfs nodes.
 *
 * Three kinds of names (spec: .fusefs-spec.md, "Extended attributes"):
 *   - virtual, read-only, computed here: user.mmsb.id, user.mmsb.epoch,
 *     user.mmsb.version on every live and snapshot node; on the root and
 *     on each epochs/N root also user.mmsb.head, .oldest, .pages, .bytes,
 *     .log_bytes.  Decimal ASCII, no newline.  Set/remove: -EPERM.
 *   - core attributes, stored, logged and versioned by the core: any other
 *     user.* name, including user.mmsb.deps, .recompute and .location,
 *     which the core validates.  Other user.mmsb.* names are reserved
 *     (-EPERM on set).
 *   - every other namespace: get -ENODATA, set -EOPNOTSUPP.  The kernel's
 *     per-write GETXATTR of security.capability is answered by ops.c
 *     before anything else (mmsbfs_xattr_is_capability).
 * epochs/, epochs/head and snapshot nodes are read-only: set/remove -EROFS.
 */
#ifndef MMSBFS_XATTR_H
#define MMSBFS_XATTR_H

#include <string.h>

#include "mmsbfs.h"

#define MMSBFS_XATTR_CAPABILITY "security.capability"

/* The name the kernel asks for before every write(2) (FUSE-NOTES finding
 * 2).  Checked first in the getxattr handler: no lock, no store access. */
static inline bool mmsbfs_xattr_is_capability(const char *name)
{
	return name[0] == 's' && strcmp(name, MMSBFS_XATTR_CAPABILITY) == 0;
}

/* Value of name into buf (cap 0: just its size).  Returns the size,
 * -ENODATA, -ERANGE (cap too small), -ESTALE, or a core error. */
ssize_t mmsbfs_xattr_get(struct mmsbfs *fs, fuse_ino_t ino, const char *name, char *buf, size_t cap);
/* NUL-separated names into buf (cap 0: just the size), like listxattr(2). */
ssize_t mmsbfs_xattr_list(struct mmsbfs *fs, fuse_ino_t ino, char *buf, size_t cap);
/* flags: XATTR_CREATE, XATTR_REPLACE.  One transaction.  who: the caller,
 * against whom dependency attributes are checked (NULL: unchecked); a
 * refused one gets its reason in user.mmsb.error (mmsb(5), XATTRS). */
int mmsbfs_xattr_set(struct mmsbfs *fs, fuse_ino_t ino, const char *name, const char *value, size_t size,
		     int flags, const struct mmsb_cred *who);
int mmsbfs_xattr_remove(struct mmsbfs *fs, fuse_ino_t ino, const char *name);
/* Free the table of refusal reasons (NULL-safe); at shutdown. */
void mmsbfs_xattr_refusals_free(struct mmsbfs_refusals *r);

#endif
