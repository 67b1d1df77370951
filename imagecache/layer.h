/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Layer conversion: one (compressed) OCI layer tar in, one EROFS image out,
 * streaming, no extraction to the host filesystem, no root.  The uncompressed
 * stream is hashed on the way (diff_id, including any bytes after the tar's
 * end-of-archive blocks).  The image uses 4096-byte blocks, block-aligned
 * data for every file, no inline/tail-packed data (so DAX works on every
 * file), and is padded to a multiple of 2 MiB for virtio-pmem.  Whiteouts
 * become overlayfs whiteouts (char 0:0) and opaque dirs
 * (trusted.overlay.opaque=y).  Output is deterministic.
 */
#ifndef KAL_IMAGECACHE_LAYER_H
#define KAL_IMAGECACHE_LAYER_H

#include <stdint.h>

#include "digest.h"
#include "manifest.h"

struct kal_err;

#define IC_EROFS_ALIGN (2u << 20)

struct ic_layer_result {
	struct ic_digest diff_id;      /* sha256 of the uncompressed tar stream */
	uint64_t tar_bytes;	       /* uncompressed bytes read */
	uint64_t image_bytes;	       /* size of the EROFS image written */
	struct ic_digest erofs_digest; /* sha256 of the EROFS image as written */
	uint64_t entries;	       /* tar entries processed */
};

/*
 * Read the layer from in_fd to EOF and write the EROFS image to out_fd, which
 * must be an empty regular file opened O_RDWR (not O_APPEND); the caller
 * owns publication (fsync, rename).  Decompression output is capped (bombs fail with a clear error).
 */
int ic_layer_convert(int in_fd, enum ic_compression comp, int out_fd, struct ic_layer_result *res,
		     struct kal_err **err);

/* Guess compression from the first bytes of a blob (gzip / zstd magic, else none). */
enum ic_compression ic_layer_sniff(const void *head, size_t len);

#endif
