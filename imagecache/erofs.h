/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kal's native EROFS writer: the on-disk structures (kal's own definitions,
 * written from fs/erofs/erofs_fs.h and Documentation/filesystems/erofs.rst of
 * linux 6.1), the in-memory tree the tar reader builds, and the writer that
 * streams file data in and lays out the metadata at the end.
 *
 * Image layout as kal writes it (4096-byte blocks, all offsets block-aligned):
 *
 *   block 0          [0..1024) zero | [1024..1152) superblock | zero
 *   block 1..D-1     regular file and symlink data, appended as the tar
 *                    streams; each file starts on a block boundary, its last
 *                    block zero-padded (no inline / tail-packed data, so DAX
 *                    works on every regular file).  Sparse files are
 *                    CHUNK_BASED: holes have no blocks.
 *   block D..M-1     directory blocks (dirents sorted by name, "." and ".."
 *                    included), FLAT_PLAIN
 *   block M..        metadata area (meta_blkaddr = M): inodes in depth-first
 *                    order of the sorted tree, 32-byte slots; nid 0 is left
 *                    empty so no inode gets ino 0; root is nid 1.  Each inode:
 *                    core (32-byte compact or 64-byte extended) | inline
 *                    xattrs (12-byte ibody header + 4-aligned entries) |
 *                    chunk block map (le32 per chunk, sparse files only)
 *   ...              zero padding up to a multiple of IC_EROFS_ALIGN (2 MiB)
 *
 * Compact inodes take their mtime from the superblock's build_time, which is
 * set to the most common mtime of the tree (deterministic, input-derived).
 * The superblock checksum (crc32c, feature SB_CHKSUM) is computed.
 */
#ifndef KAL_IMAGECACHE_EROFS_H
#define KAL_IMAGECACHE_EROFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kal_err;

/* ---- on-disk format (little endian) ---- */

#define IC_EROFS_MAGIC	      0xE0F5E1E2u
#define IC_EROFS_SUPER_OFFSET 1024
#define IC_EROFS_BLKBITS      12
#define IC_EROFS_BLKSIZE      (1u << IC_EROFS_BLKBITS)
#define IC_EROFS_ISLOT	      32 /* nid unit */
#define IC_EROFS_NAME_LEN     255
#define IC_EROFS_NULL_ADDR    0xFFFFFFFFu

#define IC_EROFS_COMPAT_SB_CHKSUM      0x1u
#define IC_EROFS_INCOMPAT_CHUNKED_FILE 0x4u

/* i_format: bit 0 version (0 compact, 1 extended), bits 1-3 data layout */
#define IC_EROFS_LAYOUT_COMPACT	    0
#define IC_EROFS_LAYOUT_EXTENDED    1
#define IC_EROFS_FLAT_PLAIN	    0
#define IC_EROFS_FLAT_INLINE	    2
#define IC_EROFS_CHUNK_BASED	    4
#define IC_EROFS_CHUNK_BLKBITS_MASK 0x1F

/* dirent file types (the generic FT_* values) */
enum {
	IC_EROFS_FT_UNKNOWN,
	IC_EROFS_FT_REG,
	IC_EROFS_FT_DIR,
	IC_EROFS_FT_CHR,
	IC_EROFS_FT_BLK,
	IC_EROFS_FT_FIFO,
	IC_EROFS_FT_SOCK,
	IC_EROFS_FT_SYMLINK,
};

/* xattr name indexes */
#define IC_EROFS_XATTR_USER	   1
#define IC_EROFS_XATTR_ACL_ACCESS  2
#define IC_EROFS_XATTR_ACL_DEFAULT 3
#define IC_EROFS_XATTR_TRUSTED	   4
#define IC_EROFS_XATTR_LUSTRE	   5
#define IC_EROFS_XATTR_SECURITY	   6

struct ic_erofs_super { /* 128 bytes at offset 1024 */
	uint32_t magic;
	uint32_t checksum; /* crc32c(~0, block from 1024 to 4096 with this field 0), no final xor */
	uint32_t feature_compat;
	uint8_t blkszbits;
	uint8_t sb_extslots;
	uint16_t root_nid;
	uint64_t inos;
	uint64_t build_time;
	uint32_t build_time_nsec;
	uint32_t blocks;
	uint32_t meta_blkaddr;
	uint32_t xattr_blkaddr;
	uint8_t uuid[16];
	uint8_t volume_name[16];
	uint32_t feature_incompat;
	uint16_t u1;
	uint16_t extra_devices;
	uint16_t devt_slotoff;
	uint8_t dirblkbits;
	uint8_t reserved[5];
	uint64_t packed_nid;
	uint8_t reserved2[24];
} __attribute__((packed));

struct ic_erofs_inode_compact { /* 32 bytes */
	uint16_t i_format;
	uint16_t i_xattr_icount;
	uint16_t i_mode;
	uint16_t i_nlink;
	uint32_t i_size;
	uint32_t i_reserved;
	uint32_t i_u; /* raw_blkaddr | rdev | chunk format (le16) + reserved */
	uint32_t i_ino;
	uint16_t i_uid;
	uint16_t i_gid;
	uint32_t i_reserved2;
} __attribute__((packed));

struct ic_erofs_inode_extended { /* 64 bytes */
	uint16_t i_format;
	uint16_t i_xattr_icount;
	uint16_t i_mode;
	uint16_t i_reserved;
	uint64_t i_size;
	uint32_t i_u;
	uint32_t i_ino;
	uint32_t i_uid;
	uint32_t i_gid;
	uint64_t i_mtime;
	uint32_t i_mtime_nsec;
	uint32_t i_nlink;
	uint8_t i_reserved2[16];
} __attribute__((packed));

struct ic_erofs_xattr_ibody { /* 12 bytes, then shared ids (none), then entries */
	uint32_t h_reserved;
	uint8_t h_shared_count;
	uint8_t h_reserved2[7];
} __attribute__((packed));

struct ic_erofs_xattr_entry { /* 4 bytes + name + value, padded to 4 */
	uint8_t e_name_len;
	uint8_t e_name_index;
	uint16_t e_value_size;
} __attribute__((packed));

struct ic_erofs_dirent { /* 12 bytes; names follow the dirent array in the block */
	uint64_t nid;
	uint16_t nameoff;
	uint8_t file_type;
	uint8_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct ic_erofs_super) == 128, "erofs superblock");
_Static_assert(sizeof(struct ic_erofs_inode_compact) == 32, "erofs compact inode");
_Static_assert(sizeof(struct ic_erofs_inode_extended) == 64, "erofs extended inode");
_Static_assert(sizeof(struct ic_erofs_xattr_ibody) == 12, "erofs xattr ibody");
_Static_assert(sizeof(struct ic_erofs_dirent) == 12, "erofs dirent");

/* crc32c (Castagnoli) without pre/post inversion, as the kernel's crc32c() */
uint32_t ic_erofs_crc32c(uint32_t crc, const void *buf, size_t len);

/* ---- in-memory tree (built by imagecache/tar.c) ---- */

struct ic_erofs_xattr {
	uint8_t index;	  /* IC_EROFS_XATTR_* */
	uint8_t name_len; /* suffix length */
	uint16_t value_len;
	const char *name; /* suffix after the prefix, not NUL-terminated */
	const void *value;
};

struct ic_erofs_dentry {
	const char *name; /* NUL-terminated, 1..255 bytes, no '/' */
	uint16_t name_len;
	struct ic_erofs_inode *inode;
};

/* fields ordered by size: up to a million of these live at once */
struct ic_erofs_inode {
	uint64_t size; /* regular files and symlinks: data bytes */
	int64_t mtime;
	uint64_t nid;	  /* layout pass: 0 until laid out (nid 0 is never used) */
	uint32_t *chunks; /* CHUNK_BASED block map (NULL for FLAT_PLAIN) */
	struct ic_erofs_xattr *xattrs;
	struct ic_erofs_dentry **slots; /* directories: open-addressing table of children */
	struct ic_erofs_inode *parent;	/* layout pass, directories: for ".." */
	uint32_t mode;			/* S_IFMT | permissions */
	uint32_t uid, gid;
	uint32_t mtime_nsec;
	uint32_t rdev;	  /* char/block devices: new_encode_dev() */
	uint32_t blkaddr; /* FLAT_PLAIN data start block (files, symlinks, dirs) */
	uint32_t nchunks;
	uint32_t nslots, nchildren;
	uint32_t nlink;	     /* layout pass */
	uint32_t meta_len;   /* layout pass: core + xattrs + chunk map */
	uint32_t dir_blocks; /* layout pass, directories: dirent blocks */
	uint16_t nxattrs;
	uint8_t chunkbits; /* log2(chunk size) - IC_EROFS_BLKBITS */
	bool whiteout;	   /* overlayfs whiteout made from a `.wh.` entry */
	bool opaque;	   /* directory gets trusted.overlay.opaque=y */
	bool extended;	   /* layout pass: 64-byte inode */
};

/* Look up a child by name in a directory inode; NULL when absent. */
struct ic_erofs_dentry *ic_erofs_dir_lookup(struct ic_erofs_inode *dir, const char *name,
					    size_t len);
/* Insert a new dentry (the name must be absent); returns it. */
struct ic_erofs_dentry *ic_erofs_dir_insert(struct ic_erofs_inode *dir, struct ic_erofs_dentry *de);

/* ---- writer ---- */

struct ic_erofs_stats {
	uint64_t image_bytes;
	uint64_t inodes;
	uint64_t data_blocks;
};

struct ic_erofs_writer;

/* out_fd: empty, seekable; data starts at block 1.  max_bytes caps data written. */
struct ic_erofs_writer *ic_erofs_writer_new(int out_fd, uint64_t max_bytes);
void ic_erofs_writer_free(struct ic_erofs_writer *w);
/* current append position in blocks (always block-aligned between files) */
uint32_t ic_erofs_cur_block(const struct ic_erofs_writer *w);
int ic_erofs_write(struct ic_erofs_writer *w, const void *buf, size_t len, struct kal_err **err);
int ic_erofs_write_zeros(struct ic_erofs_writer *w, uint64_t len, struct kal_err **err);
/* zero-pad to the next block boundary */
int ic_erofs_pad_block(struct ic_erofs_writer *w, struct kal_err **err);
/*
 * Lay out and write directories, inodes, padding and the superblock for the
 * tree under root; uuid_seed (32 bytes, e.g. the diff_id) makes the uuid.
 */
int ic_erofs_finish(struct ic_erofs_writer *w, struct ic_erofs_inode *root,
		    const uint8_t uuid_seed[16], struct ic_erofs_stats *st, struct kal_err **err);

#endif
