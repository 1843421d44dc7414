/* format.h - MMSB on-disk structures.  Normative text: mmsb(5).
 *
 * All integers are little-endian and read and written through the get/put
 * helpers below; no packed struct is ever cast over disk bytes.  The structs
 * here only document layouts (byte arrays, offsets in the comments) and let
 * _Static_assert check the sizes.
 *
 * Never move or resize a field: add fields in reserved space or at the end
 * and bump the minor version.  New frame type?  Update frame_type_name[] in
 * rec.c, rec_decode(), mmsb.5 and tests/golden/.
 */
#ifndef MMSB_FORMAT_H
#define MMSB_FORMAT_H

#include <stdint.h>
#include <string.h>

/* ---- little-endian helpers ---------------------------------------------- */

static inline uint16_t mmsb_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t mmsb_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t mmsb_get_le64(const uint8_t *p)
{
	return (uint64_t)mmsb_get_le32(p) | (uint64_t)mmsb_get_le32(p + 4) << 32;
}
static inline void mmsb_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void mmsb_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}
static inline void mmsb_put_le64(uint8_t *p, uint64_t v)
{
	mmsb_put_le32(p, (uint32_t)v);
	mmsb_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t mmsb_align8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

/* ---- versions and features -------------------------------------------------
 * Each file kind carries its own major/minor.  A reader refuses an unknown
 * major version or an unknown incompat feature bit (-ENOTSUP); an unknown
 * ro_compat bit forces a read-only open; unknown compat bits are ignored. */
#define MMSB_FMT_MAJOR 1
#define MMSB_FMT_MINOR 3 /* 1: LINK and MKNOD frames, link entries and special files in checkpoints;
			  * 2: hole blocks in checkpoints (MMSB_CK_INCOMPAT_HOLES);
			  * 3: incremental checkpoints: block references (MMSB_CK_INCOMPAT_REFS) */
/* incompat: the store (or checkpoint) may hold LINK and MKNOD frames, link
 * entries and special files (minor 1); set before the first is written */
#define MMSB_FEAT_INCOMPAT_NODES 0x1u
#define MMSB_FEAT_INCOMPAT_KNOWN MMSB_FEAT_INCOMPAT_NODES
#define MMSB_FEAT_RO_COMPAT_KNOWN 0u

/* ---- store directory -------------------------------------------------------
 *   mmsb.super              superblock (written once at creation)
 *   LOCK                    flock(2)ed by the process that has it open
 *   log/<16 hex>.log        log segments, named by the first epoch they may hold
 *   ckpt/<16 hex>.ckpt      checkpoints, named by their epoch
 *   ckpt/.tmp-*             checkpoint being written (removed at open)
 */
#define MMSB_SUPER_NAME "mmsb.super"
#define MMSB_LOCK_NAME "LOCK"
#define MMSB_LOG_DIR "log"
#define MMSB_CKPT_DIR "ckpt"

/* ---- superblock: 128 bytes ---------------------------------------------- */
#define MMSB_SB_MAGIC "MMSBSUPR" /* 8 bytes, memcmp'd: no byte-order question */
#define MMSB_SB_SIZE 128
struct mmsb_sb_layout {
/*00*/	uint8_t sb_magic[8];
/*08*/	uint8_t sb_major[2];	      /* le16 MMSB_FMT_MAJOR */
/*0a*/	uint8_t sb_minor[2];	      /* le16 */
/*0c*/	uint8_t sb_feat_compat[4];    /* le32 */
/*10*/	uint8_t sb_feat_ro_compat[4]; /* le32 */
/*14*/	uint8_t sb_feat_incompat[4];  /* le32 */
/*18*/	uint8_t sb_seed[8];	      /* le64 random; seeds every checksum of this store */
/*20*/	uint8_t sb_ctime[8];	      /* le64 creation time, ns since the Unix epoch */
/*28*/	uint8_t sb_uuid[16];	      /* random */
/*38*/	uint8_t sb_reserved[64];      /* zero */
/*78*/	uint8_t sb_sum[8];	      /* le64 XXH3-64(sb[0x00..0x78), seed 0) */
};
_Static_assert(sizeof(struct mmsb_sb_layout) == MMSB_SB_SIZE, "superblock is 128 bytes");
#define MMSB_SB_OFF_MAJOR 0x08
#define MMSB_SB_OFF_MINOR 0x0a
#define MMSB_SB_OFF_COMPAT 0x0c
#define MMSB_SB_OFF_RO_COMPAT 0x10
#define MMSB_SB_OFF_INCOMPAT 0x14
#define MMSB_SB_OFF_SEED 0x18
#define MMSB_SB_OFF_CTIME 0x20
#define MMSB_SB_OFF_UUID 0x28
#define MMSB_SB_OFF_SUM 0x78

/* ---- log segment header: 64 bytes --------------------------------------- */
#define MMSB_SEG_MAGIC "MMSBLOG1"
#define MMSB_SEG_HDR_SIZE 64
struct mmsb_seg_layout {
/*00*/	uint8_t sg_magic[8];
/*08*/	uint8_t sg_major[2];	      /* le16 */
/*0a*/	uint8_t sg_minor[2];	      /* le16 */
/*0c*/	uint8_t sg_reserved0[4];      /* zero */
/*10*/	uint8_t sg_first_epoch[8];    /* le64: first epoch this segment may hold */
/*18*/	uint8_t sg_seed[8];	      /* le64 copy of sb_seed */
/*20*/	uint8_t sg_reserved[24];      /* zero */
/*38*/	uint8_t sg_sum[8];	      /* le64 XXH3-64(hdr[0x00..0x38), seed) */
};
_Static_assert(sizeof(struct mmsb_seg_layout) == MMSB_SEG_HDR_SIZE, "segment header is 64 bytes");
#define MMSB_SEG_OFF_MAJOR 0x08
#define MMSB_SEG_OFF_MINOR 0x0a
#define MMSB_SEG_OFF_FIRST 0x10
#define MMSB_SEG_OFF_SEED 0x18
#define MMSB_SEG_OFF_SUM 0x38

/* ---- log frame: 40-byte header, payload, zero padding to 8 bytes ---------
 * A frame is valid if and only if: the magic matches, the type is known,
 * reserved and pad bytes are zero, the payload fits in the segment, the
 * checksum matches, and the payload decodes for its type.  See tlog.c. */
#define MMSB_FR_MAGIC "MMSF"
#define MMSB_FR_HDR_SIZE 40
#define MMSB_FR_MAX_PAYLOAD (1u << 30) /* 1 GiB: a larger write is split */
struct mmsb_frame_layout {
/*00*/	uint8_t fr_magic[4];
/*04*/	uint8_t fr_type;	/* MMSB_FR_* */
/*05*/	uint8_t fr_flags;	/* MMSB_FRF_*; unknown bits => invalid */
/*06*/	uint8_t fr_reserved[2]; /* zero */
/*08*/	uint8_t fr_epoch[8];	/* le64 epoch of the transaction */
/*10*/	uint8_t fr_node[8];	/* le64 node id (0 for COMMIT) */
/*18*/	uint8_t fr_len[4];	/* le32 payload bytes following the header */
/*1c*/	uint8_t fr_pad[4];	/* zero */
/*20*/	uint8_t fr_sum[8];	/* le64 XXH3-64(hdr[0x00..0x20) || payload, seed) */
};
_Static_assert(sizeof(struct mmsb_frame_layout) == MMSB_FR_HDR_SIZE, "frame header is 40 bytes");
#define MMSB_FR_OFF_TYPE 0x04
#define MMSB_FR_OFF_FLAGS 0x05
#define MMSB_FRF_PROPAGATED 0x01u /* the record was made by propagation (a recompute) */
#define MMSB_FRF_KNOWN 0x01u
#define MMSB_FR_OFF_RESERVED 0x06
#define MMSB_FR_OFF_EPOCH 0x08
#define MMSB_FR_OFF_NODE 0x10
#define MMSB_FR_OFF_LEN 0x18
#define MMSB_FR_OFF_PAD 0x1c
#define MMSB_FR_OFF_SUM 0x20

/* Frame types.  Fixed forever: they are on disk. */
enum mmsb_fr_type {
	MMSB_FR_CREATE = 1,
	MMSB_FR_WRITE = 2,
	MMSB_FR_TRUNCATE = 3,
	MMSB_FR_UNLINK = 4,
	MMSB_FR_RMDIR = 5,
	MMSB_FR_RENAME = 6,
	MMSB_FR_SETATTR = 7,
	MMSB_FR_SETXATTR = 8,
	MMSB_FR_RMXATTR = 9,
	MMSB_FR_LINK = 10,  /* minor 1 */
	MMSB_FR_MKNOD = 11, /* minor 1 */
	MMSB_FR_COMMIT = 15,
};

/* Payloads.  Every payload starts with le64 time (ns since the Unix epoch,
 * the transaction's time).  Sizes below are the fixed part; variable parts
 * follow in the order named.
 *
 * CREATE   (node = new id)
 *   00 time le64 | 08 parent le64 | 10 mode le32 | 14 uid le32 | 18 gid le32
 *   1c type u8 (1 dir, 2 page, 3 symlink) | 1d zero u8 | 1e name_len le16
 *   20 target_len le32 | 24 name[name_len] | target[target_len]      (36 + ...)
 * WRITE    (node = page)
 *   00 time le64 | 08 size le64 (page size after) | 10 changed le64 (bytes
 *   changed) | 18 enc u8 (MMSB_ENC_*) | 19 flags u8 (MMSB_WF_*) | 1a zero[2]
 *   1c body_len le32 | 20 body[body_len]                             (32 + ...)
 *   With MMSB_WF_LZ4 the body is le32 raw_len then an LZ4 block of the
 *   encoded delta; otherwise it is the encoded delta itself (delta.h).
 * TRUNCATE (node = page)
 *   00 time le64 | 08 size le64                                          (16)
 * UNLINK, RMDIR (node = the removed node)
 *   00 time le64 | 08 parent le64 | 10 name_len le16 | 12 zero[6] | 18 name (24 + ...)
 * RENAME   (node = the moved node)
 *   00 time le64 | 08 parent le64 | 10 newparent le64 | 18 victim le64 (node
 *   replaced or exchanged at the target, 0 if none) | 20 flags le32
 *   (MMSB_RENAME_*) | 24 name_len le16 | 26 newname_len le16 | 28 name | newname (40 + ...)
 * SETATTR  (node)
 *   00 time le64 | 08 valid le32 (MMSB_SET_*) | 0c mode le32 | 10 uid le32
 *   14 gid le32 | 18 atime le64 | 20 mtime le64                         (40)
 * SETXATTR (node)
 *   00 time le64 | 08 name_len le16 | 0a zero[2] | 0c value_len le32 | 10 name | value (16 + ...)
 * RMXATTR  (node)
 *   00 time le64 | 08 name_len le16 | 0a zero[6] | 10 name                (16 + ...)
 * LINK     (node = the node that gets a name; same layout as UNLINK)
 *   00 time le64 | 08 newparent le64 | 10 name_len le16 | 12 zero[6] | 18 name (24 + ...)
 * MKNOD    (node = new id; a fifo, socket or device: no bytes)
 *   00 time le64 | 08 parent le64 | 10 mode le32 | 14 uid le32 | 18 gid le32
 *   1c type u8 (4 fifo, 5 socket, 6 char, 7 block) | 1d zero u8 | 1e name_len le16
 *   20 rdev le64 (devices; 0 for fifos and sockets) | 28 name[name_len]  (40 + ...)
 * COMMIT   (node = 0) ends a transaction
 *   00 time le64 | 08 n_frames le32 (frames of this epoch before it) | 0c source u8
 *   0d zero[3] | 10 changed le64 (bytes changed by its writes)            (24)
 */
#define MMSB_CREATE_FIXED 36
#define MMSB_WRITE_FIXED 32
#define MMSB_TRUNCATE_FIXED 16
#define MMSB_UNLINK_FIXED 24
#define MMSB_RENAME_FIXED 40
#define MMSB_SETATTR_FIXED 40
#define MMSB_SETXATTR_FIXED 16
#define MMSB_RMXATTR_FIXED 16
#define MMSB_COMMIT_FIXED 24
#define MMSB_LINK_FIXED 24
#define MMSB_MKNOD_FIXED 40

/* Payload offsets: the layouts above as constants (rec.c encodes and
 * decodes with these only).  *_OFF_ZERO starts reserved bytes that must be
 * zero; they run to the next field (or the end of the fixed part). */
#define MMSB_PAYLOAD_OFF_TIME 0x00 /* every payload */
#define MMSB_CREATE_OFF_PARENT 0x08
#define MMSB_CREATE_OFF_MODE 0x10
#define MMSB_CREATE_OFF_UID 0x14
#define MMSB_CREATE_OFF_GID 0x18
#define MMSB_CREATE_OFF_TYPE 0x1c
#define MMSB_CREATE_OFF_ZERO 0x1d
#define MMSB_CREATE_OFF_NAME_LEN 0x1e
#define MMSB_CREATE_OFF_TARGET_LEN 0x20
#define MMSB_WRITE_OFF_SIZE 0x08
#define MMSB_WRITE_OFF_CHANGED 0x10
#define MMSB_WRITE_OFF_ENC 0x18
#define MMSB_WRITE_OFF_FLAGS 0x19
#define MMSB_WRITE_OFF_ZERO 0x1a
#define MMSB_WRITE_OFF_BODY_LEN 0x1c
#define MMSB_TRUNCATE_OFF_SIZE 0x08
#define MMSB_UNLINK_OFF_PARENT 0x08 /* RMDIR too */
#define MMSB_UNLINK_OFF_NAME_LEN 0x10
#define MMSB_UNLINK_OFF_ZERO 0x12
#define MMSB_RENAME_OFF_PARENT 0x08
#define MMSB_RENAME_OFF_NEWPARENT 0x10
#define MMSB_RENAME_OFF_VICTIM 0x18
#define MMSB_RENAME_OFF_FLAGS 0x20
#define MMSB_RENAME_OFF_NAME_LEN 0x24
#define MMSB_RENAME_OFF_NEWNAME_LEN 0x26
#define MMSB_SETATTR_OFF_VALID 0x08
#define MMSB_SETATTR_OFF_MODE 0x0c
#define MMSB_SETATTR_OFF_UID 0x10
#define MMSB_SETATTR_OFF_GID 0x14
#define MMSB_SETATTR_OFF_ATIME 0x18
#define MMSB_SETATTR_OFF_MTIME 0x20
#define MMSB_SETXATTR_OFF_NAME_LEN 0x08
#define MMSB_SETXATTR_OFF_ZERO 0x0a
#define MMSB_SETXATTR_OFF_VALUE_LEN 0x0c
#define MMSB_RMXATTR_OFF_NAME_LEN 0x08
#define MMSB_RMXATTR_OFF_ZERO 0x0a
#define MMSB_COMMIT_OFF_N_FRAMES 0x08
#define MMSB_COMMIT_OFF_SOURCE 0x0c
#define MMSB_COMMIT_OFF_ZERO 0x0d
#define MMSB_COMMIT_OFF_CHANGED 0x10
/* the frames added in minor 1 (LINK's layout is UNLINK's) */
#define MMSB_LINK_OFF_PARENT 0x08
#define MMSB_LINK_OFF_NAME_LEN 0x10
#define MMSB_LINK_OFF_ZERO 0x12
#define MMSB_MKNOD_OFF_PARENT 0x08
#define MMSB_MKNOD_OFF_MODE 0x10
#define MMSB_MKNOD_OFF_UID 0x14
#define MMSB_MKNOD_OFF_GID 0x18
#define MMSB_MKNOD_OFF_TYPE 0x1c
#define MMSB_MKNOD_OFF_ZERO 0x1d
#define MMSB_MKNOD_OFF_NAME_LEN 0x1e
#define MMSB_MKNOD_OFF_RDEV 0x20

#define MMSB_WF_LZ4 0x01u /* body is LZ4-compressed */

/* ---- checkpoint file ----------------------------------------------------------
 *   header (64) | data blocks of every page | meta blocks | trailer (48)
 * The trailer is read first; it locates the meta region, which holds the node
 * table (parents before children, children in directory order). */
#define MMSB_CK_MAGIC "MMSBCKPT"
#define MMSB_CK_HDR_SIZE 64
struct mmsb_ck_layout {
/*00*/	uint8_t ck_magic[8];
/*08*/	uint8_t ck_major[2];	     /* le16 */
/*0a*/	uint8_t ck_minor[2];	     /* le16 */
/*0c*/	uint8_t ck_feat_incompat[4]; /* le32 */
/*10*/	uint8_t ck_epoch[8];	     /* le64 */
/*18*/	uint8_t ck_time[8];	     /* le64 ns: time of that epoch */
/*20*/	uint8_t ck_next_id[8];	     /* le64 next node id to allocate */
/*28*/	uint8_t ck_n_nodes[8];	     /* le64 */
/*30*/	uint8_t ck_seed[8];	     /* le64 copy of sb_seed */
/*38*/	uint8_t ck_sum[8];	     /* le64 XXH3-64(hdr[0x00..0x38), seed) */
};
_Static_assert(sizeof(struct mmsb_ck_layout) == MMSB_CK_HDR_SIZE, "checkpoint header is 64 bytes");
#define MMSB_CK_OFF_MAJOR 0x08
#define MMSB_CK_OFF_MINOR 0x0a
#define MMSB_CK_OFF_INCOMPAT 0x0c
#define MMSB_CK_OFF_EPOCH 0x10
#define MMSB_CK_OFF_TIME 0x18
#define MMSB_CK_OFF_NEXT_ID 0x20
#define MMSB_CK_OFF_N_NODES 0x28
#define MMSB_CK_OFF_SEED 0x30
#define MMSB_CK_OFF_SUM 0x38

/* Block: 24-byte header, stored bytes, zero padding to 8 bytes. */
#define MMSB_BK_MAGIC "CKBL"
#define MMSB_BK_HDR_SIZE 24
#define MMSB_BK_RAW_MAX (1u << 20) /* 1 MiB of raw bytes per block */
struct mmsb_bk_layout {
/*00*/	uint8_t bk_magic[4];
/*04*/	uint8_t bk_kind;	 /* 1 data, 2 meta */
/*05*/	uint8_t bk_flags;	 /* MMSB_BK_LZ4, or MMSB_BK_HOLE alone */
/*06*/	uint8_t bk_reserved[2];	 /* zero */
/*08*/	uint8_t bk_raw_len[4];	 /* le32 bytes after decompression, <= MMSB_BK_RAW_MAX;
				  * hole: zero bytes, <= MMSB_BK_HOLE_MAX */
/*0c*/	uint8_t bk_stored_len[4]; /* le32 bytes that follow */
/*10*/	uint8_t bk_sum[8];	 /* le64 XXH3-64(hdr[0x00..0x10) || stored, seed) */
};
_Static_assert(sizeof(struct mmsb_bk_layout) == MMSB_BK_HDR_SIZE, "block header is 24 bytes");
#define MMSB_BK_DATA 1
#define MMSB_BK_META 2
#define MMSB_BK_LZ4 0x01u
#define MMSB_BK_HOLE 0x02u		  /* data blocks: raw_len zero bytes, stored_len 0 */
#define MMSB_BK_HOLE_MAX 0xfff00000u	  /* 4095 MiB: a multiple of MMSB_BK_RAW_MAX below 2^32 */
/* Checkpoint header incompat bits (a reader refuses unknown ones). */
#define MMSB_CK_INCOMPAT_HOLES 0x02u	  /* the file holds hole blocks (0x01: NODES, as in the superblock) */
#define MMSB_CK_INCOMPAT_REFS 0x04u	  /* pages list block references (minor 3; see below) */
#define MMSB_CK_INCOMPAT_KNOWN (MMSB_FEAT_INCOMPAT_KNOWN | MMSB_CK_INCOMPAT_HOLES | MMSB_CK_INCOMPAT_REFS)
#define MMSB_BK_OFF_KIND 0x04
#define MMSB_BK_OFF_FLAGS 0x05
#define MMSB_BK_OFF_RAW 0x08
#define MMSB_BK_OFF_STORED 0x0c
#define MMSB_BK_OFF_SUM 0x10

#define MMSB_TR_MAGIC "MMSBEND1"
#define MMSB_TR_SIZE 48
struct mmsb_tr_layout {
/*00*/	uint8_t tr_magic[8];
/*08*/	uint8_t tr_meta_off[8];	 /* le64 file offset of the first meta block */
/*10*/	uint8_t tr_meta_len[8];	 /* le64 raw bytes of the node table */
/*18*/	uint8_t tr_epoch[8];	 /* le64 == ck_epoch */
/*20*/	uint8_t tr_n_blocks[8];	 /* le64 data + meta blocks in the file */
/*28*/	uint8_t tr_sum[8];	 /* le64 XXH3-64(tr[0x00..0x28), seed) */
};
_Static_assert(sizeof(struct mmsb_tr_layout) == MMSB_TR_SIZE, "trailer is 48 bytes");
#define MMSB_TR_OFF_META_OFF 0x08
#define MMSB_TR_OFF_META_LEN 0x10
#define MMSB_TR_OFF_EPOCH 0x18
#define MMSB_TR_OFF_N_BLOCKS 0x20
#define MMSB_TR_OFF_SUM 0x28

/* Node table entry, in the raw meta stream: 104 bytes then name, target and
 * xattrs.  data_off is the file offset of the page's first data block (its
 * n_blocks blocks follow each other); 0 when the page is empty.
 *   00 id le64 | 08 parent le64 | 10 type u8 | 11 zero u8 | 12 name_len le16
 *   14 mode le32 | 18 uid le32 | 1c gid le32 | 20 size le64 | 28 atime le64
 *   30 mtime le64 | 38 ctime le64 | 40 version le64 | 48 epoch le64
 *   50 birth le64 | 58 data_off le64 | 60 n_blocks le32 | 64 n_xattrs le16
 *   66 n_deps le16 | 68 name | target (size bytes, symlinks only) |
 *   n_xattrs x { name_len le16 | value_len le32 | name | value } |
 *   n_deps x le64 (the node ids user.mmsb.deps resolved to; see ns.c)
 * Minor 1 adds: type 4..7 (fifo, socket, char, block: size 0, no blocks;
 * for char and block devices data_off holds the rdev), and link entries
 * (type MMSB_CK_T_LINK): one more name of node `id` (a page, symlink or
 * special file whose own entry precedes it), under `parent`; every other
 * fixed field zero, no target, xattrs or deps.  Link entries follow all
 * node entries. */
#define MMSB_CK_NODE_FIXED 104
#define MMSB_CK_T_LINK 15	    /* node table entry type: another name of a node */
#define MMSB_CK_NODE_OFF_TYPE 0x10
#define MMSB_CK_NODE_OFF_RDEV 0x58 /* == data_off: devices have no data blocks */

/* Minor 3, files with MMSB_CK_INCOMPAT_REFS (every file this version
 * writes).  The raw meta stream starts with the file list, then the node
 * table:
 *   00 n_files le32 (1..16) | 04 zero le32 | n_files x le64 epoch
 * the checkpoint files the references name, strictly increasing, each <=
 * this file's epoch.  A page entry has data_off 0 and n_blocks references,
 * which follow its deps, in page order, covering exactly size bytes:
 *   00 file le64 (epoch of a listed file; 0: a hole) | 08 off le64 (file
 *   offset of the block header) | 10 raw_len le32 | 14 span le32 (header +
 *   stored bytes + padding) | 18 sum le64 (the header's bk_sum) | 20 hash
 *   le64 (XXH3-64 of the raw bytes, seed)
 * A hole reference has file, off, span, sum and hash zero and raw_len zero
 * bytes (<= MMSB_BK_HOLE_MAX); such a file holds no hole blocks. */
#define MMSB_CK_FILES_FIXED 8
#define MMSB_CK_REF_SIZE 40
#define MMSB_CK_REF_OFF_FILE 0x00
#define MMSB_CK_REF_OFF_OFF 0x08
#define MMSB_CK_REF_OFF_RAW 0x10
#define MMSB_CK_REF_OFF_SPAN 0x14
#define MMSB_CK_REF_OFF_SUM 0x18
#define MMSB_CK_REF_OFF_HASH 0x20

#endif
