/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Image references, resolved like docker: `debian` -> docker.io/library/debian:latest,
 * `host:port/repo:tag`, `repo@sha256:...`, `repo:tag@sha256:...`.  The domain
 * is the part before the first '/' when it contains '.' or ':' or is
 * `localhost`.  Repository components follow the distribution grammar
 * (lowercase alnum with . _ __ - separators); tags are [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
 */
#ifndef KAL_IMAGECACHE_REF_H
#define KAL_IMAGECACHE_REF_H

#include <stdbool.h>

#include "digest.h"

struct kal_err;

struct ic_ref {
	char *domain; /* "docker.io", "127.0.0.1:5000", "localhost" */
	char *repo;   /* "library/debian" */
	char *tag;    /* "latest" when neither tag nor digest was given; NULL if digest only */
	bool has_digest;
	struct ic_digest digest;
};

int ic_ref_parse(const char *s, struct ic_ref *ref, struct kal_err **err);
void ic_ref_free(struct ic_ref *ref);
/* Canonical name: "docker.io/library/debian:latest" or "...@sha256:..." (caller frees) */
char *ic_ref_string(const struct ic_ref *ref);
/* Familiar name for listings: "debian:latest", "127.0.0.1:5000/x:1" (caller frees) */
char *ic_ref_familiar(const struct ic_ref *ref);
/* The API host for a domain: docker.io -> registry-1.docker.io (caller frees) */
char *ic_ref_api_host(const char *domain);
/* true for 127.0.0.0/8, ::1 and localhost, with or without a port */
bool ic_ref_domain_is_loopback(const char *domain);
/* Grammar checks for strings that end up in registry URLs (repo path, tag) */
bool ic_ref_repo_valid(const char *repo);
bool ic_ref_tag_valid(const char *tag);

#endif
