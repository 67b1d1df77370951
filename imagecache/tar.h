/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tar entries (from libarchive) into the in-memory tree the EROFS writer
 * lays out.  Names are normalised lexically and never touch the host
 * filesystem; whiteouts become overlayfs whiteouts / opaque dirs; file data is
 * appended to the image as it streams.  Semantics for odd archives:
 *   - duplicate paths: the last entry wins (a non-dir replaces a dir and its
 *     subtree); a whiteout never hides an entry of its own layer, but a
 *     same-layer dir hit by a whiteout, or re-created after one, becomes opaque
 *   - an entry below a non-directory of the same layer is an error (no
 *     symlink is ever followed); missing parents are created 0755 root:root,
 *     mtime 0 (an entry below a symlink of a lower layer thus gets a real dir)
 *   - hardlinks must point at an earlier non-directory entry of this layer;
 *     the target is normalised with `..` clamped at the root
 *   - POSIX ACLs (SCHILY.acl.access/default) become system.posix_acl_* xattrs
 *   - data of an entry replaced later stays in the image, unreferenced
 *   - sockets are dropped (warning); trusted.overlay.* and user.overlay.*
 *     xattrs from the image are dropped (warning) so it cannot forge whiteouts
 */
#ifndef KAL_IMAGECACHE_TAR_H
#define KAL_IMAGECACHE_TAR_H

#include <stdint.h>

struct archive;
struct kal_err;
struct ic_erofs_writer;
struct ic_erofs_inode;

#define IC_TAR_MAX_ENTRIES     (1u << 20)
#define IC_TAR_MAX_DEPTH       512
#define IC_TAR_MAX_PATH	       4096
#define IC_TAR_MAX_XATTR_BYTES (64u << 10) /* all xattrs of one inode */
#define IC_TAR_CHUNK_TARGET    (1u << 16)  /* sparse files: aim for at most this many chunks */
#define IC_TAR_CHUNK_MAX_BITS  21	   /* chunks of at most 2 MiB */
#define IC_TAR_MAX_CHUNKS      (1u << 22)  /* so files up to 8 TiB (apparent size) */

struct ic_tar_limits {
	uint64_t max_entries;
};

struct ic_tree;

struct ic_tree *ic_tree_new(void);
void ic_tree_free(struct ic_tree *t);
struct ic_erofs_inode *ic_tree_root(struct ic_tree *t);

/*
 * Read every entry of the opened archive into the tree, data into w.
 * *entries counts the entries read.  Errors carry the entry name.
 */
int ic_tar_read(struct archive *a, struct ic_tree *t, struct ic_erofs_writer *w,
		const struct ic_tar_limits *lim, uint64_t *entries, struct kal_err **err);

/*
 * Normalise a tar path into t's component buffer.  clamp: `..` above the root
 * stays at the root (hardlink targets) instead of being an error.  Returns
 * the number of components (0 = the root) or -1.  Exposed for tests.
 */
int ic_tar_path_normalise(const char *raw, int clamp, char *buf, const char **comps, uint16_t *lens,
			  struct kal_err **err);

#endif
