/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Pieces of the registry client that need no network, split out so they
 * can be tested on their own: WWW-Authenticate challenge parsing, basic
 * credentials from a docker config.json, and the mirror list for a domain
 * (KAL_REGISTRY_MIRROR, $XDG_CONFIG_HOME/kal/config.json).
 *
 *   ~/.docker/config.json   {"auths": {"<key>": {"auth": base64("user:pass")}}}
 *                           or {"username": "...", "password": "..."} in the entry;
 *                           <key> is "host[:port]", "https://host[:port][/path]",
 *                           and for docker.io also "https://index.docker.io/v1/"
 *   kal config.json         {"mirrors": {"docker.io": ["host:port", "http://host:port"]}}
 */
#ifndef KAL_IMAGECACHE_REGISTRY_AUTH_H
#define KAL_IMAGECACHE_REGISTRY_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct kal_err;

struct ic_auth_challenge {
	char *scheme;		       /* "bearer" or "basic" (lower-cased) */
	char *realm, *service, *scope; /* NULL when absent */
};

/* Parse one WWW-Authenticate value; -1 when it is not a challenge kal understands. */
int ic_auth_challenge_parse(const char *value, struct ic_auth_challenge *c);
void ic_auth_challenge_free(struct ic_auth_challenge *c);

/*
 * Credentials for host_key ("host[:port]", lower case) from a docker config
 * file, as base64("user:pass") ready for an Authorization: Basic header.
 * *out is NULL when the file or the entry does not exist; a file that exists
 * but is malformed is an error.  docker_hub adds docker.io's historic keys.
 */
int ic_auth_docker_config_lookup(const char *path, const char *host_key, bool docker_hub,
				 char **out, struct kal_err **err);
/* Default docker config path: $DOCKER_CONFIG/config.json, else ~/.docker/config.json */
char *ic_auth_docker_config_path(void);

/*
 * Mirrors for a domain from the kal config file (NULL-terminated, caller
 * frees each string and the array; NULL when there are none).  path NULL
 * means $XDG_CONFIG_HOME/kal/config.json.
 */
int ic_mirrors_from_config(const char *path, const char *domain, char ***out, struct kal_err **err);

#endif
