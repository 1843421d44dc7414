/* rec.h - log records: the decoded form of a frame, and its codec.
 *
 * A record is one mutation (or a commit marker).  Decoded records point into
 * the frame's bytes (no copies): they are valid while those bytes are.
 * Layouts: format.h and mmsb(5).  rec_decode is the decoder of untrusted
 * bytes: it validates everything it reads and never reads past `avail`.
 */
#ifndef MMSB_REC_H
#define MMSB_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "format.h"

struct mmsb_rec {
	uint8_t type;	/* MMSB_FR_* */
	uint8_t flags;	/* MMSB_FRF_* */
	uint64_t epoch; /* transaction epoch */
	uint64_t node;	/* node id (0 for COMMIT) */
	int64_t time;	/* ns since the Unix epoch */
	union {
		struct {
			uint64_t parent;
			uint32_t mode, uid, gid;
			uint8_t ntype; /* enum mmsb_type */
			uint16_t name_len;
			uint32_t target_len;
			const char *name;   /* not NUL-terminated */
			const char *target; /* symlinks */
			uint64_t rdev;	    /* MKNOD: the device (0 for fifos and sockets) */
		} create; /* CREATE and MKNOD */
		struct {
			uint64_t size;	      /* page size after */
			uint64_t changed;     /* bytes changed */
			uint8_t enc;	      /* MMSB_ENC_* */
			uint8_t flags;	      /* MMSB_WF_* */
			uint32_t body_len;
			const uint8_t *body;  /* as stored (maybe LZ4) */
			const uint8_t *raw;   /* encoder side only: the unpacked body, or NULL */
			uint32_t raw_len;
		} write;
		struct {
			uint64_t size;
		} truncate;
		struct { /* UNLINK, RMDIR, and LINK (parent: the new name's directory) */
			uint64_t parent;
			uint16_t name_len;
			const char *name;
		} unlink;
		struct {
			uint64_t parent, newparent, victim;
			uint32_t flags;
			uint16_t name_len, newname_len;
			const char *name, *newname;
		} rename;
		struct {
			uint32_t valid, mode, uid, gid;
			int64_t atime, mtime;
		} setattr;
		struct { /* SETXATTR and RMXATTR */
			uint16_t name_len;
			uint32_t value_len;
			const char *name;
			const uint8_t *value;
		} xattr;
		struct {
			uint32_t n_frames;
			uint8_t source;
			uint64_t changed;
		} commit;
	} u;
};

/* Append the frame of r (header, payload, zero padding) to out, checksummed
 * with seed.  Returns the frame length (a multiple of 8) or -ENOMEM, -EINVAL
 * (payload too large). */
int64_t mmsb_rec_encode(const struct mmsb_rec *r, uint64_t seed, struct mmsb_buf *out);

/* Give the n bytes of whole frames at p (made by mmsb_rec_encode) the epoch
 * and time of the transaction they turned out to belong to, and checksum
 * them again: a page write encodes its frames before it knows its epoch. */
void mmsb_rec_restamp(uint8_t *p, size_t n, uint64_t epoch, int64_t time, uint64_t seed);

/* Decode the frame at p (avail bytes from there to the end of the segment).
 * Returns the frame length (> 0, a multiple of 8) or -EUCLEAN (structure) /
 * -EBADMSG (checksum); *why (may be NULL) gets a short reason. */
int64_t mmsb_rec_decode(const uint8_t *p, size_t avail, uint64_t seed, struct mmsb_rec *r, const char **why);

/* Frame length of a payload of n bytes. */
static inline uint64_t mmsb_rec_frame_len(uint64_t n)
{
	return MMSB_FR_HDR_SIZE + mmsb_align8(n);
}

const char *mmsb_rec_type_name(uint8_t type);
/* True when a record of this type changes page bytes (WRITE, TRUNCATE). */
static inline bool mmsb_rec_is_bytes(uint8_t type)
{
	return type == MMSB_FR_WRITE || type == MMSB_FR_TRUNCATE;
}

/* Validate a node name: 1..255 bytes, no '/' or NUL, not "." or "..".
 * 0, -EINVAL or -ENAMETOOLONG. */
int mmsb_name_check(const char *name, size_t len);

#endif
