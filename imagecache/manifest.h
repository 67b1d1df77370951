/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * OCI / Docker schema2 JSON documents: image index and manifest list,
 * manifest, image config.  Parsing is strict: media types are checked against
 * what the caller asked for (an index is never taken as a manifest, CVE-2021-41190),
 * digests are parsed with ic_digest_parse, sizes must be non-negative
 * integers, and documents are capped (manifests 4 MiB, configs 20 MiB, at
 * most IC_MAX_LAYERS layers and IC_MAX_INDEX_ENTRIES index entries).
 */
#ifndef KAL_IMAGECACHE_MANIFEST_H
#define KAL_IMAGECACHE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"

struct kal_err;

#define IC_MAX_MANIFEST_SIZE (4u << 20)
#define IC_MAX_CONFIG_SIZE   (20u << 20)
#define IC_MAX_LAYERS	     256
#define IC_MAX_INDEX_ENTRIES 1024

#define IC_MT_OCI_INDEX		"application/vnd.oci.image.index.v1+json"
#define IC_MT_OCI_MANIFEST	"application/vnd.oci.image.manifest.v1+json"
#define IC_MT_OCI_CONFIG	"application/vnd.oci.image.config.v1+json"
#define IC_MT_OCI_LAYER		"application/vnd.oci.image.layer.v1.tar"
#define IC_MT_OCI_LAYER_GZIP	"application/vnd.oci.image.layer.v1.tar+gzip"
#define IC_MT_OCI_LAYER_ZSTD	"application/vnd.oci.image.layer.v1.tar+zstd"
#define IC_MT_DOCKER_LIST	"application/vnd.docker.distribution.manifest.list.v2+json"
#define IC_MT_DOCKER_MANIFEST	"application/vnd.docker.distribution.manifest.v2+json"
#define IC_MT_DOCKER_CONFIG	"application/vnd.docker.container.image.v1+json"
#define IC_MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
/* Accept header for manifest requests: all four manifest/index types */
#define IC_MANIFEST_ACCEPT                                                                         \
	IC_MT_OCI_INDEX ", " IC_MT_OCI_MANIFEST ", " IC_MT_DOCKER_LIST ", " IC_MT_DOCKER_MANIFEST

enum ic_doc_kind { IC_DOC_INDEX, IC_DOC_MANIFEST };
enum ic_compression { IC_COMP_NONE, IC_COMP_GZIP, IC_COMP_ZSTD };

struct ic_platform {
	char *os, *arch, *variant; /* NULL when absent */
};

struct ic_descriptor {
	char *media_type;
	struct ic_digest digest;
	uint64_t size;
	struct ic_platform platform; /* index entries only */
};

struct ic_index {
	struct ic_descriptor *manifests;
	size_t n;
};

struct ic_manifest {
	char *media_type;
	struct ic_descriptor config;
	struct ic_descriptor *layers;
	size_t n_layers;
};

struct ic_config {
	struct ic_platform platform;
	struct ic_digest *diff_ids;
	size_t n_diff_ids;
	/* runtime defaults from config.config (NULL/0 when absent); arrays NULL-terminated */
	char **env, **entrypoint, **cmd;
	char *working_dir, *user;
};

/* Kind of a manifest document from its media type; error for anything else. */
int ic_doc_kind_of(const char *media_type, enum ic_doc_kind *kind, struct kal_err **err);
/* Compression of a layer from its media type; error for unknown layer media types. */
int ic_layer_compression(const char *media_type, enum ic_compression *comp, struct kal_err **err);

/*
 * Parse documents.  media_type is what the transport said (Content-Type or
 * the referencing descriptor); when the document carries its own mediaType
 * field the two must agree.
 */
int ic_index_parse(const char *buf, size_t len, const char *media_type, struct ic_index *idx,
		   struct kal_err **err);
int ic_manifest_parse(const char *buf, size_t len, const char *media_type, struct ic_manifest *m,
		      struct kal_err **err);
int ic_config_parse(const char *buf, size_t len, struct ic_config *c, struct kal_err **err);
void ic_index_free(struct ic_index *idx);
void ic_manifest_free(struct ic_manifest *m);
void ic_config_free(struct ic_config *c);

/*
 * Pick the manifest for platform "os/arch[/variant]" (NULL means linux/amd64)
 * from an index.  Error lists the platforms that are available.
 */
int ic_index_select(const struct ic_index *idx, const char *platform,
		    const struct ic_descriptor **out, struct kal_err **err);

#endif
