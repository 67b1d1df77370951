/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Registry client (OCI distribution API v2) over libcurl.  One struct
 * ic_registry per registry host; safe to use from several threads at once
 * (parallel layer downloads): each call uses its own curl easy handle, the
 * token cache is locked.
 *
 * Auth: anonymous bearer tokens (WWW-Authenticate: Bearer realm=...,
 * service=..., scope=...), basic auth from ~/.docker/config.json ("auths" ->
 * "auth" base64 user:pass), sent only to the host they belong to: never on a
 * redirect to another host, never to a token realm on another host.
 * Transport: https, or plain http for loopback registries or when insecure
 * is set.  Mirrors: when a mirror is configured for the domain, requests go
 * to the mirror first and fall back to the registry.
 */
#ifndef KAL_IMAGECACHE_REGISTRY_H
#define KAL_IMAGECACHE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

struct kal_err;
struct ic_registry;

struct ic_registry_opts {
	bool insecure; /* allow plain http to a non-loopback registry */
	/*
	 * "host[:port]" or "http(s)://host[:port]", or NULL: then KAL_REGISTRY_MIRROR
	 * (for docker.io only, like docker's registry-mirrors), else the list in
	 * $XDG_CONFIG_HOME/kal/config.json {"mirrors": {"<domain>": [...]}}.
	 */
	const char *mirror;
	const char *docker_config; /* path to config.json; default ~/.docker/config.json */
	long connect_timeout_s;	   /* 0 = default (15 s) */
	long idle_timeout_s; /* abort when no byte arrives for this long; 0 = default (30 s) */
};

/* domain as in struct ic_ref ("docker.io" is mapped to its API host inside) */
struct ic_registry *ic_registry_new(const char *domain, const struct ic_registry_opts *opts,
				    struct kal_err **err);
void ic_registry_free(struct ic_registry *reg);

/*
 * GET /v2/<repo>/manifests/<reference> with IC_MANIFEST_ACCEPT.  The body is
 * capped at IC_MAX_MANIFEST_SIZE.  *media_type is the Content-Type (parameters
 * stripped); *digest is the sha256 of the body; when reference is a digest the
 * body must match it ("digest mismatch (want ..., got ...)").  Caller frees
 * *body and *media_type.  A 404 is "manifest unknown: `<repo>:<reference>`".
 */
int ic_registry_get_manifest(struct ic_registry *reg, const char *repo, const char *reference,
			     char **body, size_t *len, char **media_type, struct ic_digest *digest,
			     struct kal_err **err);

typedef void (*ic_progress_fn)(void *arg, uint64_t done, uint64_t total);

/*
 * GET /v2/<repo>/blobs/<digest> streamed into out_fd (written from its current
 * offset), verifying size first (never more than `size` bytes are accepted)
 * then the digest.  progress may be NULL; it is called from the calling thread.
 */
int ic_registry_get_blob(struct ic_registry *reg, const char *repo, const struct ic_digest *digest,
			 uint64_t size, int out_fd, ic_progress_fn progress, void *arg,
			 struct kal_err **err);

#endif
