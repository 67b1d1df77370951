// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Registry auth and configuration helpers: RFC 7235 challenge parsing for
 * the bearer-token flow, docker config.json credential lookup and kal's
 * mirror configuration.  No network here; see registry.c for their use.
 */
#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/fsutil.h"
#include "../lib/xalloc.h"
#include "registry-auth.h"

#define AUTH_MAX_PARAM	4096
#define CONFIG_MAX_SIZE (1u << 20)

static bool is_tchar(char c)
{
	return isalnum((unsigned char)c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

void ic_auth_challenge_free(struct ic_auth_challenge *c)
{
	free(c->scheme);
	free(c->realm);
	free(c->service);
	free(c->scope);
	memset(c, 0, sizeof(*c));
}

int ic_auth_challenge_parse(const char *value, struct ic_auth_challenge *c)
{
	const char *p = value;
	size_t n;

	memset(c, 0, sizeof(*c));
	while (*p == ' ' || *p == '\t')
		p++;
	for (n = 0; is_tchar(p[n]); n++)
		;
	if (n == 0)
		return -1;
	c->scheme = xstrndup(p, n);
	for (char *s = c->scheme; *s; s++)
		*s = (char)tolower((unsigned char)*s);
	if (strcmp(c->scheme, "bearer") != 0 && strcmp(c->scheme, "basic") != 0)
		goto fail;
	p += n;
	for (;;) {
		char key[32], *val;
		size_t vl = 0;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		for (n = 0; is_tchar(p[n]); n++)
			;
		if (n == 0 || n >= sizeof(key))
			goto fail;
		memcpy(key, p, n);
		key[n] = '\0';
		p += n;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=')
			goto fail;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		val = xmalloc(AUTH_MAX_PARAM + 1);
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				if (vl == AUTH_MAX_PARAM) {
					free(val);
					goto fail;
				}
				val[vl++] = *p++;
			}
			if (*p != '"') {
				free(val);
				goto fail;
			}
			p++;
		} else {
			while (is_tchar(*p) || *p == '/' || *p == ':' || *p == '=') {
				if (vl == AUTH_MAX_PARAM) {
					free(val);
					goto fail;
				}
				val[vl++] = *p++;
			}
		}
		val[vl] = '\0';
		if (strcasecmp(key, "realm") == 0 && !c->realm)
			c->realm = val;
		else if (strcasecmp(key, "service") == 0 && !c->service)
			c->service = val;
		else if (strcasecmp(key, "scope") == 0 && !c->scope)
			c->scope = val;
		else
			free(val);
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p && *p != ',')
			goto fail;
	}
	if (strcmp(c->scheme, "bearer") == 0 && !c->realm)
		goto fail;
	return 0;
fail:
	ic_auth_challenge_free(c);
	return -1;
}

char *ic_auth_docker_config_path(void)
{
	const char *dc = getenv("DOCKER_CONFIG"), *home = getenv("HOME");

	if (dc && *dc)
		return xasprintf("%s/config.json", dc);
	return xasprintf("%s/.docker/config.json", home && *home ? home : "/");
}

/* "https://Host:5000/v1/" -> "host:5000" */
static char *auth_key_host(const char *key)
{
	const char *p = strstr(key, "://");
	char *h;

	p = p ? p + 3 : key;
	h = xstrndup(p, strcspn(p, "/"));
	for (char *s = h; *s; s++)
		*s = (char)tolower((unsigned char)*s);
	return h;
}

static char *b64_encode(const char *s)
{
	size_t n = strlen(s);
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
	return out;
}

/* true when b64 decodes to "user:pass" of printable characters */
static bool b64_userpass_valid(const char *b64)
{
	size_t n = strlen(b64);
	_cleanup_free_ unsigned char *dec = NULL;
	int dl;
	bool colon = false;

	if (n == 0 || n % 4 || n > 8192)
		return false;
	dec = xmalloc(n);
	dl = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n);
	if (dl < 0)
		return false;
	/* EVP_DecodeBlock counts padding as zero bytes */
	while (dl > 0 && b64[n - 1] == '=' && n--)
		dl--;
	for (int i = 0; i < dl; i++) {
		if (dec[i] < 0x20 || dec[i] == 0x7f)
			return false;
		if (dec[i] == ':')
			colon = true;
	}
	return colon;
}

int ic_auth_docker_config_lookup(const char *path, const char *host_key, bool docker_hub,
				 char **out, struct kal_err **err)
{
	_cleanup_free_ char *buf = NULL;
	struct json_object *root, *auths, *entry = NULL;
	size_t len;
	int rc = 0;

	*out = NULL;
	if (kal_read_file(path, CONFIG_MAX_SIZE, &buf, &len, err) < 0) {
		if ((*err)->code == ENOENT || (*err)->code == ENOTDIR) {
			kal_err_clear(err);
			return 0;
		}
		return kal_err_wrap(err, "docker config `%s`", path);
	}
	root = json_tokener_parse(buf);
	if (!root || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return kal_err_set(err, EINVAL, "docker config `%s`: invalid JSON", path);
	}
	if (json_object_object_get_ex(root, "auths", &auths) && auths &&
	    json_object_is_type(auths, json_type_object)) {
		json_object_object_foreach(auths, key, val)
		{
			_cleanup_free_ char *h = auth_key_host(key);

			if (!json_object_is_type(val, json_type_object))
				continue;
			if (strcmp(h, host_key) == 0 ||
			    (docker_hub &&
			     (strcmp(h, "index.docker.io") == 0 || strcmp(h, "docker.io") == 0 ||
			      strcmp(h, "registry-1.docker.io") == 0))) {
				entry = val;
				/* an exact host match wins over docker.io's aliases */
				if (strcmp(h, host_key) == 0)
					break;
			}
		}
	}
	if (entry) {
		struct json_object *a, *u, *pw;

		if (json_object_object_get_ex(entry, "auth", &a) &&
		    json_object_is_type(a, json_type_string) && json_object_get_string_len(a)) {
			if (!b64_userpass_valid(json_object_get_string(a)))
				rc = kal_err_set(err, EINVAL,
						 "docker config `%s`: auth for `%s` is not "
						 "base64(user:password)",
						 path, host_key);
			else
				*out = xstrdup(json_object_get_string(a));
		} else if (json_object_object_get_ex(entry, "username", &u) &&
			   json_object_object_get_ex(entry, "password", &pw) &&
			   json_object_is_type(u, json_type_string) &&
			   json_object_is_type(pw, json_type_string)) {
			_cleanup_free_ char *up = xasprintf("%s:%s", json_object_get_string(u),
							    json_object_get_string(pw));

			*out = b64_encode(up);
		}
		/* FIXME: credsStore / credHelpers (external helper programs) are not supported */
	}
	json_object_put(root);
	return rc;
}

int ic_mirrors_from_config(const char *path, const char *domain, char ***out, struct kal_err **err)
{
	_cleanup_free_ char *def = NULL, *buf = NULL;
	struct json_object *root, *mirrors, *list;
	size_t len, n;
	char **v;

	*out = NULL;
	if (!path) {
		const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");

		if (xdg && *xdg)
			def = xasprintf("%s/kal/config.json", xdg);
		else
			def = xasprintf("%s/.config/kal/config.json", home && *home ? home : "/");
		path = def;
	}
	if (kal_read_file(path, CONFIG_MAX_SIZE, &buf, &len, err) < 0) {
		if ((*err)->code == ENOENT || (*err)->code == ENOTDIR) {
			kal_err_clear(err);
			return 0;
		}
		return kal_err_wrap(err, "config `%s`", path);
	}
	root = json_tokener_parse(buf);
	if (!root || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return kal_err_set(err, EINVAL, "config `%s`: invalid JSON", path);
	}
	if (!json_object_object_get_ex(root, "mirrors", &mirrors) || !mirrors ||
	    !json_object_object_get_ex(mirrors, domain, &list) || !list) {
		json_object_put(root);
		return 0;
	}
	if (!json_object_is_type(list, json_type_array)) {
		json_object_put(root);
		return kal_err_set(err, EINVAL, "config `%s`: mirrors for `%s` must be an array",
				   path, domain);
	}
	n = json_object_array_length(list);
	if (n > 16)
		n = 16;
	v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0, j = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(list, i);

		if (e && json_object_is_type(e, json_type_string) && json_object_get_string_len(e))
			v[j++] = xstrdup(json_object_get_string(e));
	}
	json_object_put(root);
	if (!v[0]) {
		free(v);
		return 0;
	}
	*out = v;
	return 0;
}
