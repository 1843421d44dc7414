/* rec.c - encode and decode log frames.
 *
 * Frame layout (format.h, mmsb(5) LOG FRAME):
 *
 *   0x00 magic "MMSF" | 0x04 type | 0x05 flags (0) | 0x06 reserved[2] (0)
 *   0x08 epoch le64   | 0x10 node le64 | 0x18 len le32 | 0x1c pad[4] (0)
 *   0x20 sum le64 = XXH3-64(hdr[0x00..0x20) || payload, seed)
 *   0x28 payload[len] | zero padding to a multiple of 8
 *
 * A frame is valid if and only if every check in rec_decode passes, in the
 * order written there.  What the records mean is ns.c's business; this file
 * only knows their shape.
 */
#include <string.h>

#include "delta.h"
#include "err.h"
#include "mmsb.h"
#include "rec.h"
#include "sum.h"

static const char *const frame_type_name[16] = {
	[MMSB_FR_CREATE] = "create",   [MMSB_FR_WRITE] = "write",	  [MMSB_FR_TRUNCATE] = "truncate",
	[MMSB_FR_UNLINK] = "unlink",   [MMSB_FR_RMDIR] = "rmdir",	  [MMSB_FR_RENAME] = "rename",
	[MMSB_FR_SETATTR] = "setattr", [MMSB_FR_SETXATTR] = "setxattr", [MMSB_FR_RMXATTR] = "rmxattr",
	[MMSB_FR_LINK] = "link",       [MMSB_FR_MKNOD] = "mknod",	  [MMSB_FR_COMMIT] = "commit",
};

const char *mmsb_rec_type_name(uint8_t type)
{
	if (type < MMSB_ARRAY_SIZE(frame_type_name) && frame_type_name[type])
		return frame_type_name[type];
	return "unknown";
}

int mmsb_name_check(const char *name, size_t len)
{
	if (len == 0)
		return -EINVAL;
	if (len > MMSB_NAME_MAX)
		return -ENAMETOOLONG;
	if (memchr(name, '/', len) || memchr(name, '\0', len))
		return -EINVAL;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return -EINVAL;
	return 0;
}

static size_t payload_len(const struct mmsb_rec *r)
{
	switch (r->type) {
	case MMSB_FR_CREATE:
		return MMSB_CREATE_FIXED + r->u.create.name_len + r->u.create.target_len;
	case MMSB_FR_WRITE:
		return MMSB_WRITE_FIXED + (size_t)r->u.write.body_len;
	case MMSB_FR_TRUNCATE:
		return MMSB_TRUNCATE_FIXED;
	case MMSB_FR_UNLINK:
	case MMSB_FR_RMDIR:
	case MMSB_FR_LINK:
		return MMSB_UNLINK_FIXED + r->u.unlink.name_len;
	case MMSB_FR_MKNOD:
		return MMSB_MKNOD_FIXED + r->u.create.name_len;
	case MMSB_FR_RENAME:
		return MMSB_RENAME_FIXED + r->u.rename.name_len + r->u.rename.newname_len;
	case MMSB_FR_SETATTR:
		return MMSB_SETATTR_FIXED;
	case MMSB_FR_SETXATTR:
		return MMSB_SETXATTR_FIXED + r->u.xattr.name_len + (size_t)r->u.xattr.value_len;
	case MMSB_FR_RMXATTR:
		return MMSB_RMXATTR_FIXED + r->u.xattr.name_len;
	case MMSB_FR_COMMIT:
		return MMSB_COMMIT_FIXED;
	}
	return 0;
}

/* LINK frames are encoded and decoded as UNLINK frames. */
_Static_assert(MMSB_LINK_FIXED == MMSB_UNLINK_FIXED && MMSB_LINK_OFF_PARENT == MMSB_UNLINK_OFF_PARENT &&
		       MMSB_LINK_OFF_NAME_LEN == MMSB_UNLINK_OFF_NAME_LEN && MMSB_LINK_OFF_ZERO == MMSB_UNLINK_OFF_ZERO,
	       "LINK's payload layout is UNLINK's");
/* decode_xattr reads RMXATTR frames with the SETXATTR offsets. */
_Static_assert(MMSB_RMXATTR_FIXED == MMSB_SETXATTR_FIXED && MMSB_RMXATTR_OFF_NAME_LEN == MMSB_SETXATTR_OFF_NAME_LEN &&
		       MMSB_RMXATTR_OFF_ZERO == MMSB_SETXATTR_OFF_ZERO,
	       "RMXATTR's payload is SETXATTR's without the value");

/* CREATE and MKNOD share their first fields (parent .. name_len). */
_Static_assert(MMSB_MKNOD_OFF_PARENT == MMSB_CREATE_OFF_PARENT && MMSB_MKNOD_OFF_MODE == MMSB_CREATE_OFF_MODE &&
		       MMSB_MKNOD_OFF_UID == MMSB_CREATE_OFF_UID && MMSB_MKNOD_OFF_GID == MMSB_CREATE_OFF_GID &&
		       MMSB_MKNOD_OFF_TYPE == MMSB_CREATE_OFF_TYPE && MMSB_MKNOD_OFF_ZERO == MMSB_CREATE_OFF_ZERO &&
		       MMSB_MKNOD_OFF_NAME_LEN == MMSB_CREATE_OFF_NAME_LEN,
	       "MKNOD begins as CREATE does");

static void put_node_fields(const struct mmsb_rec *r, uint8_t *p)
{
	mmsb_put_le64(p + MMSB_CREATE_OFF_PARENT, r->u.create.parent);
	mmsb_put_le32(p + MMSB_CREATE_OFF_MODE, r->u.create.mode);
	mmsb_put_le32(p + MMSB_CREATE_OFF_UID, r->u.create.uid);
	mmsb_put_le32(p + MMSB_CREATE_OFF_GID, r->u.create.gid);
	p[MMSB_CREATE_OFF_TYPE] = r->u.create.ntype;
	mmsb_put_le16(p + MMSB_CREATE_OFF_NAME_LEN, r->u.create.name_len);
}

static void get_node_fields(const uint8_t *p, struct mmsb_rec *r)
{
	r->u.create.parent = mmsb_get_le64(p + MMSB_CREATE_OFF_PARENT);
	r->u.create.mode = mmsb_get_le32(p + MMSB_CREATE_OFF_MODE);
	r->u.create.uid = mmsb_get_le32(p + MMSB_CREATE_OFF_UID);
	r->u.create.gid = mmsb_get_le32(p + MMSB_CREATE_OFF_GID);
	r->u.create.ntype = p[MMSB_CREATE_OFF_TYPE];
	r->u.create.name_len = mmsb_get_le16(p + MMSB_CREATE_OFF_NAME_LEN);
}

/* Payload encoders: p points at payload byte 0, already zeroed. */
static void encode_payload(const struct mmsb_rec *r, uint8_t *p)
{
	mmsb_put_le64(p + MMSB_PAYLOAD_OFF_TIME, (uint64_t)r->time);
	switch (r->type) {
	case MMSB_FR_CREATE:
		put_node_fields(r, p);
		mmsb_put_le32(p + MMSB_CREATE_OFF_TARGET_LEN, r->u.create.target_len);
		memcpy(p + MMSB_CREATE_FIXED, r->u.create.name, r->u.create.name_len);
		if (r->u.create.target_len)
			memcpy(p + MMSB_CREATE_FIXED + r->u.create.name_len, r->u.create.target,
			       r->u.create.target_len);
		break;
	case MMSB_FR_WRITE:
		mmsb_put_le64(p + MMSB_WRITE_OFF_SIZE, r->u.write.size);
		mmsb_put_le64(p + MMSB_WRITE_OFF_CHANGED, r->u.write.changed);
		p[MMSB_WRITE_OFF_ENC] = r->u.write.enc;
		p[MMSB_WRITE_OFF_FLAGS] = r->u.write.flags;
		mmsb_put_le32(p + MMSB_WRITE_OFF_BODY_LEN, r->u.write.body_len);
		memcpy(p + MMSB_WRITE_FIXED, r->u.write.body, r->u.write.body_len);
		break;
	case MMSB_FR_TRUNCATE:
		mmsb_put_le64(p + MMSB_TRUNCATE_OFF_SIZE, r->u.truncate.size);
		break;
	case MMSB_FR_MKNOD:
		put_node_fields(r, p);
		mmsb_put_le64(p + MMSB_MKNOD_OFF_RDEV, r->u.create.rdev);
		memcpy(p + MMSB_MKNOD_FIXED, r->u.create.name, r->u.create.name_len);
		break;
	case MMSB_FR_UNLINK:
	case MMSB_FR_RMDIR:
	case MMSB_FR_LINK: /* the same layout (asserted above) */
		mmsb_put_le64(p + MMSB_UNLINK_OFF_PARENT, r->u.unlink.parent);
		mmsb_put_le16(p + MMSB_UNLINK_OFF_NAME_LEN, r->u.unlink.name_len);
		memcpy(p + MMSB_UNLINK_FIXED, r->u.unlink.name, r->u.unlink.name_len);
		break;
	case MMSB_FR_RENAME:
		mmsb_put_le64(p + MMSB_RENAME_OFF_PARENT, r->u.rename.parent);
		mmsb_put_le64(p + MMSB_RENAME_OFF_NEWPARENT, r->u.rename.newparent);
		mmsb_put_le64(p + MMSB_RENAME_OFF_VICTIM, r->u.rename.victim);
		mmsb_put_le32(p + MMSB_RENAME_OFF_FLAGS, r->u.rename.flags);
		mmsb_put_le16(p + MMSB_RENAME_OFF_NAME_LEN, r->u.rename.name_len);
		mmsb_put_le16(p + MMSB_RENAME_OFF_NEWNAME_LEN, r->u.rename.newname_len);
		memcpy(p + MMSB_RENAME_FIXED, r->u.rename.name, r->u.rename.name_len);
		memcpy(p + MMSB_RENAME_FIXED + r->u.rename.name_len, r->u.rename.newname,
		       r->u.rename.newname_len);
		break;
	case MMSB_FR_SETATTR:
		mmsb_put_le32(p + MMSB_SETATTR_OFF_VALID, r->u.setattr.valid);
		mmsb_put_le32(p + MMSB_SETATTR_OFF_MODE, r->u.setattr.mode);
		mmsb_put_le32(p + MMSB_SETATTR_OFF_UID, r->u.setattr.uid);
		mmsb_put_le32(p + MMSB_SETATTR_OFF_GID, r->u.setattr.gid);
		mmsb_put_le64(p + MMSB_SETATTR_OFF_ATIME, (uint64_t)r->u.setattr.atime);
		mmsb_put_le64(p + MMSB_SETATTR_OFF_MTIME, (uint64_t)r->u.setattr.mtime);
		break;
	case MMSB_FR_SETXATTR:
		mmsb_put_le16(p + MMSB_SETXATTR_OFF_NAME_LEN, r->u.xattr.name_len);
		mmsb_put_le32(p + MMSB_SETXATTR_OFF_VALUE_LEN, r->u.xattr.value_len);
		memcpy(p + MMSB_SETXATTR_FIXED, r->u.xattr.name, r->u.xattr.name_len);
		if (r->u.xattr.value_len)
			memcpy(p + MMSB_SETXATTR_FIXED + r->u.xattr.name_len, r->u.xattr.value,
			       r->u.xattr.value_len);
		break;
	case MMSB_FR_RMXATTR:
		mmsb_put_le16(p + MMSB_RMXATTR_OFF_NAME_LEN, r->u.xattr.name_len);
		memcpy(p + MMSB_RMXATTR_FIXED, r->u.xattr.name, r->u.xattr.name_len);
		break;
	case MMSB_FR_COMMIT:
		mmsb_put_le32(p + MMSB_COMMIT_OFF_N_FRAMES, r->u.commit.n_frames);
		p[MMSB_COMMIT_OFF_SOURCE] = r->u.commit.source;
		mmsb_put_le64(p + MMSB_COMMIT_OFF_CHANGED, r->u.commit.changed);
		break;
	}
}

int64_t mmsb_rec_encode(const struct mmsb_rec *r, uint64_t seed, struct mmsb_buf *out)
{
	size_t len = payload_len(r);
	uint64_t flen = mmsb_rec_frame_len(len);
	uint8_t *f;
	int rc;

	if (len == 0 || len > MMSB_FR_MAX_PAYLOAD)
		return -EINVAL;
	rc = mmsb_buf_grow(out, (size_t)flen, &f);
	if (rc < 0)
		return rc;
	memcpy(f, MMSB_FR_MAGIC, 4);
	f[MMSB_FR_OFF_TYPE] = r->type;
	f[MMSB_FR_OFF_FLAGS] = r->flags;
	mmsb_put_le64(f + MMSB_FR_OFF_EPOCH, r->epoch);
	mmsb_put_le64(f + MMSB_FR_OFF_NODE, r->node);
	mmsb_put_le32(f + MMSB_FR_OFF_LEN, (uint32_t)len);
	encode_payload(r, f + MMSB_FR_HDR_SIZE);
	mmsb_put_le64(f + MMSB_FR_OFF_SUM, mmsb_sum2(f, MMSB_FR_OFF_SUM, f + MMSB_FR_HDR_SIZE, len, seed));
	return (int64_t)flen;
}

void mmsb_rec_restamp(uint8_t *p, size_t n, uint64_t epoch, int64_t time, uint64_t seed)
{
	size_t at = 0;

	while (at + MMSB_FR_HDR_SIZE <= n) {
		uint8_t *f = p + at;
		uint32_t len = mmsb_get_le32(f + MMSB_FR_OFF_LEN);

		mmsb_put_le64(f + MMSB_FR_OFF_EPOCH, epoch);
		mmsb_put_le64(f + MMSB_FR_HDR_SIZE, (uint64_t)time); /* every payload starts with the time */
		mmsb_put_le64(f + MMSB_FR_OFF_SUM, mmsb_sum2(f, MMSB_FR_OFF_SUM, f + MMSB_FR_HDR_SIZE, len, seed));
		at += (size_t)mmsb_rec_frame_len(len);
	}
}

static bool all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

/* Payload decoders: return NULL when valid, else the reason. */
static const char *decode_create(const uint8_t *p, uint32_t len, struct mmsb_rec *r)
{
	if (len < MMSB_CREATE_FIXED)
		return "create payload too short";
	get_node_fields(p, r);
	r->u.create.target_len = mmsb_get_le32(p + MMSB_CREATE_OFF_TARGET_LEN);
	r->u.create.name = (const char *)p + MMSB_CREATE_FIXED;
	r->u.create.target = r->u.create.name + r->u.create.name_len;
	if (p[MMSB_CREATE_OFF_ZERO] != 0)
		return "create: nonzero reserved byte";
	if (r->u.create.ntype < MMSB_T_DIR || r->u.create.ntype > MMSB_T_SYMLINK)
		return "create: bad node type";
	if (r->u.create.mode & ~07777u)
		return "create: bad mode";
	if ((uint64_t)MMSB_CREATE_FIXED + r->u.create.name_len + r->u.create.target_len != len)
		return "create: lengths do not add up";
	if (mmsb_name_check(r->u.create.name, r->u.create.name_len) < 0)
		return "create: bad name";
	if ((r->u.create.ntype == MMSB_T_SYMLINK) != (r->u.create.target_len > 0) ||
	    r->u.create.target_len > 4096 || memchr(r->u.create.target, '\0', r->u.create.target_len))
		return "create: bad symlink target";
	if (r->u.create.parent == 0)
		return "create: no parent";
	return NULL;
}

static const char *decode_mknod(const uint8_t *p, uint32_t len, struct mmsb_rec *r)
{
	if (len < MMSB_MKNOD_FIXED)
		return "mknod payload too short";
	get_node_fields(p, r);
	r->u.create.rdev = mmsb_get_le64(p + MMSB_MKNOD_OFF_RDEV);
	r->u.create.name = (const char *)p + MMSB_MKNOD_FIXED;
	r->u.create.target = NULL;
	r->u.create.target_len = 0;
	if (p[MMSB_MKNOD_OFF_ZERO] != 0)
		return "mknod: nonzero reserved byte";
	if (r->u.create.ntype < MMSB_T_FIFO || r->u.create.ntype > MMSB_T_BLK)
		return "mknod: bad node type";
	if (r->u.create.mode & ~07777u)
		return "mknod: bad mode";
	if ((uint64_t)MMSB_MKNOD_FIXED + r->u.create.name_len != len)
		return "mknod: lengths do not add up";
	if (r->u.create.rdev && r->u.create.ntype != MMSB_T_CHR && r->u.create.ntype != MMSB_T_BLK)
		return "mknod: rdev on a fifo or socket";
	if (mmsb_name_check(r->u.create.name, r->u.create.name_len) < 0)
		return "mknod: bad name";
	if (r->u.create.parent == 0)
		return "mknod: no parent";
	return NULL;
}

static const char *decode_write(const uint8_t *p, uint32_t len, struct mmsb_rec *r)
{
	if (len < MMSB_WRITE_FIXED)
		return "write payload too short";
	r->u.write.size = mmsb_get_le64(p + MMSB_WRITE_OFF_SIZE);
	r->u.write.changed = mmsb_get_le64(p + MMSB_WRITE_OFF_CHANGED);
	r->u.write.enc = p[MMSB_WRITE_OFF_ENC];
	r->u.write.flags = p[MMSB_WRITE_OFF_FLAGS];
	r->u.write.body_len = mmsb_get_le32(p + MMSB_WRITE_OFF_BODY_LEN);
	r->u.write.body = p + MMSB_WRITE_FIXED;
	r->u.write.raw = NULL;
	r->u.write.raw_len = 0;
	if (!all_zero(p + MMSB_WRITE_OFF_ZERO, MMSB_WRITE_OFF_BODY_LEN - MMSB_WRITE_OFF_ZERO))
		return "write: nonzero reserved bytes";
	if (r->u.write.enc != MMSB_ENC_RUNS && r->u.write.enc != MMSB_ENC_BITMAP)
		return "write: unknown delta encoding";
	if (r->u.write.flags & ~MMSB_WF_LZ4)
		return "write: unknown flags";
	if ((uint64_t)MMSB_WRITE_FIXED + r->u.write.body_len != len || r->u.write.body_len == 0)
		return "write: bad body length";
	if (r->u.write.changed == 0 || r->u.write.changed > r->u.write.size)
		return "write: bad changed count";
	return NULL;
}

static const char *decode_unlink(const uint8_t *p, uint32_t len, struct mmsb_rec *r)
{
	if (len < MMSB_UNLINK_FIXED)
		return "unlink payload too short";
	r->u.unlink.parent = mmsb_get_le64(p + MMSB_UNLINK_OFF_PARENT);
	r->u.unlink.name_len = mmsb_get_le16(p + MMSB_UNLINK_OFF_NAME_LEN);
	r->u.unlink.name = (const char *)p + MMSB_UNLINK_FIXED;
	if (!all_zero(p + MMSB_UNLINK_OFF_ZERO, MMSB_UNLINK_FIXED - MMSB_UNLINK_OFF_ZERO))
		return "unlink: nonzero reserved bytes";
	if ((uint64_t)MMSB_UNLINK_FIXED + r->u.unlink.name_len != len)
		return "unlink: lengths do not add up";
	if (mmsb_name_check(r->u.unlink.name, r->u.unlink.name_len) < 0)
		return "unlink: bad name";
	return NULL;
}

static const char *decode_rename(const uint8_t *p, uint32_t len, struct mmsb_rec *r)
{
	if (len < MMSB_RENAME_FIXED)
		return "rename payload too short";
	r->u.rename.parent = mmsb_get_le64(p + MMSB_RENAME_OFF_PARENT);
	r->u.rename.newparent = mmsb_get_le64(p + MMSB_RENAME_OFF_NEWPARENT);
	r->u.rename.victim = mmsb_get_le64(p + MMSB_RENAME_OFF_VICTIM);
	r->u.rename.flags = mmsb_get_le32(p + MMSB_RENAME_OFF_FLAGS);
	r->u.rename.name_len = mmsb_get_le16(p + MMSB_RENAME_OFF_NAME_LEN);
	r->u.rename.newname_len = mmsb_get_le16(p + MMSB_RENAME_OFF_NEWNAME_LEN);
	r->u.rename.name = (const char *)p + MMSB_RENAME_FIXED;
	r->u.rename.newname = r->u.rename.name + r->u.rename.name_len;
	if ((uint64_t)MMSB_RENAME_FIXED + r->u.rename.name_len + r->u.rename.newname_len != len)
		return "rename: lengths do not add up";
	if (r->u.rename.flags & ~(MMSB_RENAME_NOREPLACE | MMSB_RENAME_EXCHANGE) ||
	    r->u.rename.flags == (MMSB_RENAME_NOREPLACE | MMSB_RENAME_EXCHANGE))
		return "rename: bad flags";
	if (mmsb_name_check(r->u.rename.name, r->u.rename.name_len) < 0 ||
	    mmsb_name_check(r->u.rename.newname, r->u.rename.newname_len) < 0)
		return "rename: bad name";
	return NULL;
}

static const char *decode_xattr(const uint8_t *p, uint32_t len, struct mmsb_rec *r)
{
	bool set = r->type == MMSB_FR_SETXATTR;

	if (len < MMSB_SETXATTR_FIXED)
		return "xattr payload too short";
	r->u.xattr.name_len = mmsb_get_le16(p + MMSB_SETXATTR_OFF_NAME_LEN);
	r->u.xattr.value_len = set ? mmsb_get_le32(p + MMSB_SETXATTR_OFF_VALUE_LEN) : 0;
	r->u.xattr.name = (const char *)p + MMSB_SETXATTR_FIXED;
	r->u.xattr.value = p + MMSB_SETXATTR_FIXED + r->u.xattr.name_len;
	if (!all_zero(p + MMSB_SETXATTR_OFF_ZERO, set ? MMSB_SETXATTR_OFF_VALUE_LEN - MMSB_SETXATTR_OFF_ZERO
						      : MMSB_RMXATTR_FIXED - MMSB_RMXATTR_OFF_ZERO))
		return "xattr: nonzero reserved bytes";
	if ((uint64_t)MMSB_SETXATTR_FIXED + r->u.xattr.name_len + r->u.xattr.value_len != len)
		return "xattr: lengths do not add up";
	if (r->u.xattr.name_len == 0 || r->u.xattr.name_len > MMSB_XATTR_NAME_MAX ||
	    memchr(r->u.xattr.name, '\0', r->u.xattr.name_len))
		return "xattr: bad name";
	if (r->u.xattr.value_len > MMSB_XATTR_SIZE_MAX)
		return "xattr: value too large";
	return NULL;
}

static const char *decode_payload(const uint8_t *p, uint32_t len, struct mmsb_rec *r)
{
	if (len < MMSB_PAYLOAD_OFF_TIME + 8)
		return "payload too short";
	r->time = (int64_t)mmsb_get_le64(p + MMSB_PAYLOAD_OFF_TIME);
	if ((r->type == MMSB_FR_COMMIT) != (r->node == 0))
		return "node id 0 only on commit markers";
	if (r->type == MMSB_FR_COMMIT && r->flags)
		return "flags on a commit marker";
	switch (r->type) {
	case MMSB_FR_CREATE:
		return decode_create(p, len, r);
	case MMSB_FR_WRITE:
		return decode_write(p, len, r);
	case MMSB_FR_TRUNCATE:
		if (len != MMSB_TRUNCATE_FIXED)
			return "truncate: bad length";
		r->u.truncate.size = mmsb_get_le64(p + MMSB_TRUNCATE_OFF_SIZE);
		return NULL;
	case MMSB_FR_UNLINK:
	case MMSB_FR_RMDIR:
	case MMSB_FR_LINK:
		return decode_unlink(p, len, r);
	case MMSB_FR_MKNOD:
		return decode_mknod(p, len, r);
	case MMSB_FR_RENAME:
		return decode_rename(p, len, r);
	case MMSB_FR_SETATTR:
		if (len != MMSB_SETATTR_FIXED)
			return "setattr: bad length";
		r->u.setattr.valid = mmsb_get_le32(p + MMSB_SETATTR_OFF_VALID);
		r->u.setattr.mode = mmsb_get_le32(p + MMSB_SETATTR_OFF_MODE);
		r->u.setattr.uid = mmsb_get_le32(p + MMSB_SETATTR_OFF_UID);
		r->u.setattr.gid = mmsb_get_le32(p + MMSB_SETATTR_OFF_GID);
		r->u.setattr.atime = (int64_t)mmsb_get_le64(p + MMSB_SETATTR_OFF_ATIME);
		r->u.setattr.mtime = (int64_t)mmsb_get_le64(p + MMSB_SETATTR_OFF_MTIME);
		if (r->u.setattr.valid == 0 || (r->u.setattr.valid & ~0x1fu) || (r->u.setattr.mode & ~07777u))
			return "setattr: bad fields";
		return NULL;
	case MMSB_FR_SETXATTR:
	case MMSB_FR_RMXATTR:
		return decode_xattr(p, len, r);
	case MMSB_FR_COMMIT:
		if (len != MMSB_COMMIT_FIXED)
			return "commit: bad length";
		r->u.commit.n_frames = mmsb_get_le32(p + MMSB_COMMIT_OFF_N_FRAMES);
		r->u.commit.source = p[MMSB_COMMIT_OFF_SOURCE];
		r->u.commit.changed = mmsb_get_le64(p + MMSB_COMMIT_OFF_CHANGED);
		if (r->u.commit.source > MMSB_SRC_SYSTEM || !all_zero(p + MMSB_COMMIT_OFF_ZERO, MMSB_COMMIT_OFF_CHANGED - MMSB_COMMIT_OFF_ZERO))
			return "commit: bad fields";
		return NULL;
	}
	return "unknown frame type";
}

int64_t mmsb_rec_decode(const uint8_t *p, size_t avail, uint64_t seed, struct mmsb_rec *r, const char **why)
{
	const char *bad = NULL;
	uint32_t len;
	uint64_t flen;
	int rc = -MMSB_ECORRUPT;

	memset(r, 0, sizeof(*r));
	if (avail < MMSB_FR_HDR_SIZE)
		bad = "truncated frame header";
	else if (memcmp(p, MMSB_FR_MAGIC, 4) != 0)
		bad = "bad frame magic";
	else if ((p[MMSB_FR_OFF_FLAGS] & ~MMSB_FRF_KNOWN) || p[MMSB_FR_OFF_RESERVED] || p[MMSB_FR_OFF_RESERVED + 1] ||
		 !all_zero(p + MMSB_FR_OFF_PAD, 4))
		bad = "nonzero reserved header bytes";
	if (bad)
		goto out;
	r->type = p[MMSB_FR_OFF_TYPE];
	r->flags = p[MMSB_FR_OFF_FLAGS];
	r->epoch = mmsb_get_le64(p + MMSB_FR_OFF_EPOCH);
	r->node = mmsb_get_le64(p + MMSB_FR_OFF_NODE);
	len = mmsb_get_le32(p + MMSB_FR_OFF_LEN);
	flen = mmsb_rec_frame_len(len);
	if (len > MMSB_FR_MAX_PAYLOAD || flen > avail) {
		bad = "frame extends past the end of the segment";
		goto out;
	}
	if (!all_zero(p + MMSB_FR_HDR_SIZE + len, (size_t)(flen - MMSB_FR_HDR_SIZE - len))) {
		bad = "nonzero frame padding";
		goto out;
	}
	if (mmsb_get_le64(p + MMSB_FR_OFF_SUM) != mmsb_sum2(p, MMSB_FR_OFF_SUM, p + MMSB_FR_HDR_SIZE, len, seed)) {
		bad = "checksum mismatch";
		rc = -MMSB_EBADCRC;
		goto out;
	}
	if (r->epoch == 0) {
		bad = "epoch 0 in a frame";
		goto out;
	}
	bad = decode_payload(p + MMSB_FR_HDR_SIZE, len, r);
out:
	if (bad) {
		if (why)
			*why = bad;
		return rc;
	}
	return (int64_t)flen;
}
