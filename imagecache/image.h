/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the VM side needs from the cache: a cached image resolved by name to
 * its EROFS layer files (bottom layer first) and its runtime config.  The
 * layer files are read-only and verified (their recorded sha256) by
 * ic_image_open when verify is set.
 */
#ifndef KAL_IMAGECACHE_IMAGE_H
#define KAL_IMAGECACHE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "manifest.h"

struct kal_err;

struct ic_image {
	char *name; /* canonical reference, "docker.io/library/debian:latest" */
	struct ic_digest manifest_digest;
	struct ic_config config; /* env, entrypoint, cmd, working_dir, user */
	char **layer_paths;	 /* absolute paths of the .erofs files, bottom first */
	uint64_t *layer_sizes;	 /* bytes, each a multiple of 2 MiB */
	size_t n_layers;
};

/*
 * Resolve ref (any form `kal images` accepts: short name, canonical name,
 * manifest digest or a unique prefix of it) in the cache under home.
 * Error "image `x` not found in the cache (pull it with `kal pull x`)".
 */
int ic_image_open(const char *home, const char *ref, bool verify, struct ic_image **out,
		  struct kal_err **err);
void ic_image_free(struct ic_image *img);

#endif
