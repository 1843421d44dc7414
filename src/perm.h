/* perm.h - POSIX permission checks on the namespace, for dependencies.
 *
 * The rule (mmsb(5), XATTRS): a page may name a parent only if whoever sets
 * it could read that parent with read(2): search (x) on every directory of
 * the parent's path from the root, read (r) on the page itself.  The bits
 * are chosen as the kernel's generic_permission() does without ACLs: the
 * owner class when uid owns the node, else the group class when gid or a
 * supplementary group matches, else other; uid 0 passes (CAP_DAC_OVERRIDE).
 * Recomputes apply the same rule to the derived page's owner.
 *
 * Not here: ACLs, capabilities other than uid 0, and time-travel views.
 */
#ifndef MMSB_PERM_H
#define MMSB_PERM_H

#include <stdbool.h>
#include <stdint.h>

#include "mmsb.h"

struct ns;
struct ns_node;

#define PERM_R 4u /* read */
#define PERM_X 1u /* search (directories) */

/* May c access n with mask (PERM_R, PERM_X) by n's mode bits? */
bool perm_allows(const struct ns_node *n, const struct mmsb_cred *c, unsigned mask);
/* May c read page n: search on every directory from the root down to n's
 * directory, read on n.  0, or -EACCES with *deny (may be NULL) the node
 * that refused. */
int perm_may_read(const struct ns *ns, const struct ns_node *n, const struct mmsb_cred *c, uint64_t *deny);
/* The default mmsb_groups_fn: getgrouplist(3) of uid's passwd name (no
 * passwd entry: no supplementary groups). */
int perm_groups_default(void *arg, uint32_t uid, uint32_t gid, uint32_t *out, size_t cap);

#endif
