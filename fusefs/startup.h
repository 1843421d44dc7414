/* startup.h - what mmsbfs checks and holds before it mounts (startup.c).
 *
 * The generic mount options of mount(8) and mount.fuse3, the refusals that
 * keep a mount from hiding data or waiting on itself, the one-daemon-per-
 * store lock, the undo of a store created by a mount that then failed, and
 * the systemd readiness notification.  Documented in mmsbfs(8) (OPTIONS,
 * "Start-up checks", FILES).
 */
#ifndef MMSBFS_STARTUP_H
#define MMSBFS_STARTUP_H

#include <stddef.h>
#include <sys/types.h>

#include "mmsbfs.h"

/* What start-up learnt about STORE before the store was opened: enough to
 * undo a store this process created, and the daemon lock. */
struct mmsbfs_startup {
	int lock_fd;	  /* O_RDONLY fd of STORE holding flock(LOCK_EX); -1: none */
	bool created_dir; /* STORE did not exist: this process made it */
	bool was_empty;	  /* STORE existed and was empty: everything in it is ours */
	bool committed;	  /* the mount came up: never undo from here on */
};

/* A generic mount option that no entry of main.c's option table took
 * (arg is one option, "name" or "name=value").  Kernel flags are added to
 * o->kernel_opts, options for mount(8), mount.fuse3 or systemd are
 * accepted and ignored.  0, or -EINVAL (reported on stderr) when arg is
 * not a known option. */
int mmsbfs_generic_opt(struct mmsbfs_opts *o, const char *arg);

/* Refuse a start-up that would go wrong, before anything is created:
 * MOUNTPOINT missing or not a directory, STORE and MOUNTPOINT the same or
 * one inside the other, MOUNTPOINT not empty (unless -o nonempty), STORE
 * not a directory.  Fills su.  0, or a negative errno with the reason in
 * err. */
int mmsbfs_startup_check(const struct mmsbfs_opts *o, struct mmsbfs_startup *su, char *err, size_t cap);

/* Take the daemon lock of STORE (creating STORE when the mount may create
 * a store).  One daemon per store, read-only or not.  A daemon whose mount
 * is already gone may still be closing the store: wait for it (up to a
 * minute).  0, or -EBUSY (err names the PID holding the store), or another
 * negative errno with err set.  -ENOENT without a message when STORE does
 * not exist and may not be created (the store open reports it). */
int mmsbfs_startup_lock(const struct mmsbfs_opts *o, struct mmsbfs_startup *su, char *err, size_t cap);

/* After a failed start-up: remove the store this process created (all of
 * STORE when it made the directory, its contents when STORE was empty;
 * only while holding the lock), then release the lock.  After a successful one (su->committed), release
 * the lock only.  Call after the store is closed. */
void mmsbfs_startup_finish(const struct mmsbfs_opts *o, struct mmsbfs_startup *su);

/* Pid of the process holding a flock on the file at path (from
 * /proc/locks), or -ENOENT / -errno. */
pid_t mmsbfs_lock_holder(const char *path);

/* systemd's readiness protocol (sd_notify(3)) without libsystemd: send
 * state ("READY=1", "STOPPING=1", ...) to $NOTIFY_SOCKET when it is set.
 * sock is the socket path taken from the environment at start-up (NULL:
 * nothing to do).  Errors are ignored: the protocol is best effort. */
void mmsbfs_sd_notify(const char *sock, const char *state);

#endif
