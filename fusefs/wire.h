/* wire.h - /dev/fuse I/O hook: INIT capabilities libfuse 3.14 lacks.
 *
 * Two capabilities of the kernel's FUSE protocol matter to mmsbfs and are
 * unknown to libfuse 3.14 (Debian bookworm; both need libfuse >= 3.17):
 *
 * FUSE_DIRECT_IO_ALLOW_MMAP (7.39, Linux 6.6).  The kernel's write-through
 * path ends a WRITE request at the first partially written page that is not
 * in the page cache, so one write(2) spanning two such pages reached the
 * daemon as two WRITEs: two epochs.  Writable opens therefore use direct
 * I/O (one WRITE per write(2) up to max_write), which refuses shared mmap
 * unless this capability is on.  Without it, mmsbfs keeps writable opens
 * cached (mmap works; an unaligned write may take two epochs).
 *
 * FUSE_HANDLE_KILLPRIV_V2 (7.33).  Without it the kernel asks GETXATTR("security.capability")
 * before every write(2) to see whether it must drop file capabilities
 * (FUSE-NOTES finding 2): one extra round trip per write.  With it, the
 * kernel sets SB_NOSEC, stops asking after the first write of an inode,
 * and instead flags the requests after which the file system must clear
 * suid/sgid (FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID,
 * FUSE_OPEN_KILL_SUIDGID).
 *
 * This module installs a libfuse custom I/O (fuse_session_custom_io, a
 * public 3.14 API) on the mounted session's fd.  Its read hook notes what
 * the kernel's INIT offers and, once KILLPRIV_V2 is on, copies each
 * request's kill flag into a field libfuse does pass on (bit 31,
 * MMSBFS_KILL_SUIDGID, of the open flags or of st_mode); its writev hook
 * adds the capabilities to the INIT reply.  tree.c clears the bits in the
 * same transaction as the write, truncate or chown.  Every other byte goes
 * through untouched.  -o nokillpriv_v2 keeps the GETXATTR.
 */
#ifndef MMSBFS_WIRE_H
#define MMSBFS_WIRE_H

#include "mmsbfs.h"

struct mmsbfs_wire;

/* Hook fs->se's fd (after fuse_session_mount, before the loop); sets
 * fs->wire.  -ENOMEM, or the error of fuse_session_custom_io. */
int mmsbfs_wire_install(struct mmsbfs *fs);

/* Whether the capabilities are on (known once INIT is answered); false
 * for a NULL hook. */
bool mmsbfs_wire_killpriv_v2(const struct mmsbfs_wire *w);
bool mmsbfs_wire_dio_mmap(const struct mmsbfs_wire *w);

/* A READDIRPLUS reply that could not be delivered: give back the lookup
 * counted for every entry with a nodeid in buf (len bytes, as filled by
 * fuse_add_direntry_plus()), through mmsbfs_tree_forget().  Independent of
 * the hook being installed. */
void mmsbfs_wire_undo_direntplus(struct mmsbfs *fs, const char *buf, size_t len);

/* NULL-safe; after the session is destroyed. */
void mmsbfs_wire_free(struct mmsbfs_wire *w);

#endif
