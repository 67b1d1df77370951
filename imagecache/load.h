/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kal load: import images from an OCI image layout directory (oci-layout,
 * index.json, blobs/sha256/) or a `docker save` tarball (manifest.json,
 * config JSON, layer tars, optionally gzip-compressed, the tarball itself
 * possibly compressed too).  Everything is verified as in a pull: blob size
 * and digest against their descriptors, the config's diff_ids against the
 * uncompressed layers; publication order is the store's (layers, blobs,
 * then the name record last).
 *
 * Names: OCI layouts use each index entry's annotation
 * `io.containerd.image.name`, else `org.opencontainers.image.ref.name` (a
 * bare tag like `latest` becomes `<layout dir name>:latest`); docker-save
 * tarballs use RepoTags.  --name replaces them when the input holds exactly
 * one image.  A docker-save image gets a synthesized OCI manifest (its layers
 * described as they are in the tarball), so its digest is stable.
 */
#ifndef KAL_IMAGECACHE_LOAD_H
#define KAL_IMAGECACHE_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"

struct kal_err;

struct ic_load_opts {
	const char *name;     /* NULL: names from the input */
	const char *platform; /* for multi-platform indexes inside an OCI layout */
};

struct ic_load_result {
	char *name;
	struct ic_digest digest;
	size_t n_layers;
	size_t layers_converted;
	uint64_t erofs_bytes;
};

int ic_load(const char *home, const char *path, const struct ic_load_opts *opts,
	    struct ic_load_result **out, size_t *n, struct kal_err **err);
void ic_load_results_free(struct ic_load_result *r, size_t n);

#endif
