// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Image reference parsing with docker's normalisation rules (distribution's
 * reference grammar): short names live on docker.io under library/, the
 * first path element is a domain only when it looks like one.  Everything a
 * reference contributes to a URL or a path is validated here first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "ref.h"

#define REF_MAX_NAME	  255
#define REF_MAX_TAG	  128
#define REF_DOCKER_DOMAIN "docker.io"

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static bool path_component_valid(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || !is_lower_alnum(s[0]))
		return false;
	while (i < n) {
		while (i < n && is_lower_alnum(s[i]))
			i++;
		if (i == n)
			return true;
		/* a separator, then more alnum */
		if (s[i] == '.') {
			i++;
		} else if (s[i] == '_') {
			i++;
			if (i < n && s[i] == '_')
				i++;
		} else if (s[i] == '-') {
			while (i < n && s[i] == '-')
				i++;
		} else {
			return false;
		}
		if (i == n || !is_lower_alnum(s[i]))
			return false;
	}
	return true;
}

bool ic_ref_repo_valid(const char *repo)
{
	const char *p = repo;

	if (!repo || !*repo || strlen(repo) > REF_MAX_NAME)
		return false;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (!path_component_valid(p, n))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

bool ic_ref_tag_valid(const char *tag)
{
	size_t n = tag ? strlen(tag) : 0;

	if (n == 0 || n > REF_MAX_TAG)
		return false;
	if (!(is_alnum(tag[0]) || tag[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(is_alnum(tag[i]) || tag[i] == '_' || tag[i] == '.' || tag[i] == '-'))
			return false;
	return true;
}

/* domain-component: [a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9] */
static bool domain_component_valid(const char *s, size_t n)
{
	if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

static bool port_valid(const char *p)
{
	size_t n = strlen(p);
	long v;

	if (n == 0 || n > 5 || strspn(p, "0123456789") != n)
		return false;
	v = strtol(p, NULL, 10);
	return v > 0 && v <= 65535;
}

/* host[:port] or [ipv6][:port] */
static bool domain_valid(const char *d)
{
	_cleanup_free_ char *host = NULL;
	const char *port = NULL, *p;

	if (d[0] == '[') {
		const char *close = strchr(d, ']');
		struct in6_addr a6;

		if (!close || close - d - 1 <= 0 || close - d - 1 >= INET6_ADDRSTRLEN)
			return false;
		host = xstrndup(d + 1, (size_t)(close - d - 1));
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return false;
		if (close[1] == '\0')
			return true;
		return close[1] == ':' && port_valid(close + 2);
	}
	p = strchr(d, ':');
	if (p) {
		port = p + 1;
		if (!port_valid(port))
			return false;
		host = xstrndup(d, (size_t)(p - d));
	} else {
		host = xstrdup(d);
	}
	p = host;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);

		if (!domain_component_valid(p, n))
			return false;
		if (!dot)
			return true;
		p = dot + 1;
	}
}

static bool has_upper(const char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			return true;
	return false;
}

static void ref_clear(struct ic_ref *ref)
{
	free(ref->domain);
	free(ref->repo);
	free(ref->tag);
	memset(ref, 0, sizeof(*ref));
}

int ic_ref_parse(const char *s, struct ic_ref *ref, struct kal_err **err)
{
	_cleanup_free_ char *name = NULL;
	const char *at, *slash, *colon, *remainder;
	size_t shown = s ? strlen(s) : 0;

	memset(ref, 0, sizeof(*ref));
	if (!s || !*s)
		return kal_err_set(err, EINVAL, "invalid reference: empty name");
	/* never echo megabytes of garbage back into an error message */
	if (shown > 300)
		shown = 300;
#define REF_FAIL(...)                                                                              \
	do {                                                                                       \
		kal_err_set(err, EINVAL, __VA_ARGS__);                                             \
		ref_clear(ref);                                                                    \
		return -1;                                                                         \
	} while (0)

	if (strlen(s) > 2 * REF_MAX_NAME + REF_MAX_TAG + IC_DIGEST_STR_LEN)
		REF_FAIL("invalid reference `%.*s...`: too long", 64, s);
	if (strlen(s) == IC_DIGEST_HEX_LEN && ic_digest_hex_valid(s))
		REF_FAIL("invalid reference `%s`: a bare 64-character hex string is not a name "
			 "(use name@sha256:...)",
			 s);

	at = strchr(s, '@');
	if (at) {
		struct kal_err *derr = NULL;

		if (ic_digest_parse(at + 1, &ref->digest, &derr) < 0) {
			ref_clear(ref);
			kal_err_set(err, EINVAL, "invalid reference `%.*s`: %s", (int)shown, s,
				    derr->msg);
			kal_err_free(derr);
			return -1;
		}
		ref->has_digest = true;
		name = xstrndup(s, (size_t)(at - s));
	} else {
		name = xstrdup(s);
	}

	/* a tag is the part after the last ':' that follows the last '/' */
	slash = strrchr(name, '/');
	colon = strrchr(slash ? slash : name, ':');
	if (colon) {
		const char *tag = colon + 1;

		if (strlen(tag) > REF_MAX_TAG)
			REF_FAIL(
			    "invalid reference `%.*s`: tag must not be more than %d characters",
			    (int)shown, s, REF_MAX_TAG);
		if (!ic_ref_tag_valid(tag))
			REF_FAIL("invalid reference `%.*s`: invalid tag `%s`", (int)shown, s, tag);
		ref->tag = xstrdup(tag);
		name[colon - name] = '\0';
	}
	if (!*name)
		REF_FAIL("invalid reference `%.*s`: empty repository name", (int)shown, s);
	if (strlen(name) > REF_MAX_NAME)
		REF_FAIL("invalid reference `%.*s`: repository name must not be more than %d "
			 "characters",
			 (int)shown, s, REF_MAX_NAME);

	/*
	 * docker's splitDockerDomain: the first element is a domain when it has a
	 * '.', a ':' or an uppercase letter, or is `localhost`.
	 */
	slash = strchr(name, '/');
	remainder = name;
	if (slash) {
		size_t dn = (size_t)(slash - name);
		bool is_domain = memchr(name, '.', dn) || memchr(name, ':', dn) ||
				 memchr(name, '[', dn) ||
				 (dn == 9 && strncmp(name, "localhost", 9) == 0);

		for (size_t i = 0; i < dn; i++)
			if (name[i] >= 'A' && name[i] <= 'Z')
				is_domain = true;
		if (is_domain) {
			ref->domain = xstrndup(name, dn);
			remainder = slash + 1;
		}
	}
	if (!ref->domain)
		ref->domain = xstrdup(REF_DOCKER_DOMAIN);
	if (strcmp(ref->domain, "index.docker.io") == 0) {
		free(ref->domain);
		ref->domain = xstrdup(REF_DOCKER_DOMAIN);
	}
	if (strcmp(ref->domain, REF_DOCKER_DOMAIN) == 0 && !strchr(remainder, '/'))
		ref->repo = xasprintf("library/%s", remainder);
	else
		ref->repo = xstrdup(remainder);

	if (has_upper(ref->repo))
		REF_FAIL("invalid reference `%.*s`: repository name must be lowercase", (int)shown,
			 s);
	if (!domain_valid(ref->domain))
		REF_FAIL("invalid reference `%.*s`: invalid registry domain `%s`", (int)shown, s,
			 ref->domain);
	if (!ic_ref_repo_valid(ref->repo))
		REF_FAIL("invalid reference `%.*s`: invalid reference format", (int)shown, s);
	if (strlen(ref->domain) + 1 + strlen(ref->repo) > REF_MAX_NAME)
		REF_FAIL("invalid reference `%.*s`: repository name must not be more than %d "
			 "characters",
			 (int)shown, s, REF_MAX_NAME);
	if (!ref->tag && !ref->has_digest)
		ref->tag = xstrdup("latest");
#undef REF_FAIL
	return 0;
}

void ic_ref_free(struct ic_ref *ref)
{
	if (ref)
		ref_clear(ref);
}

static char *ref_format(const char *domain, const char *repo, const struct ic_ref *ref)
{
	char dbuf[IC_DIGEST_STR_LEN + 1];
	const char *sep = domain ? "/" : "";

	if (!domain)
		domain = "";
	if (ref->has_digest && ref->tag)
		return xasprintf("%s%s%s:%s@%s", domain, sep, repo, ref->tag,
				 ic_digest_str(&ref->digest, dbuf));
	if (ref->has_digest)
		return xasprintf("%s%s%s@%s", domain, sep, repo, ic_digest_str(&ref->digest, dbuf));
	return xasprintf("%s%s%s:%s", domain, sep, repo, ref->tag ? ref->tag : "latest");
}

char *ic_ref_string(const struct ic_ref *ref)
{
	return ref_format(ref->domain, ref->repo, ref);
}

char *ic_ref_familiar(const struct ic_ref *ref)
{
	if (strcmp(ref->domain, REF_DOCKER_DOMAIN) == 0) {
		const char *repo = ref->repo;

		if (strncmp(repo, "library/", 8) == 0 && !strchr(repo + 8, '/'))
			repo += 8;
		return ref_format(NULL, repo, ref);
	}
	return ref_format(ref->domain, ref->repo, ref);
}

char *ic_ref_api_host(const char *domain)
{
	if (strcmp(domain, REF_DOCKER_DOMAIN) == 0 || strcmp(domain, "index.docker.io") == 0)
		return xstrdup("registry-1.docker.io");
	return xstrdup(domain);
}

bool ic_ref_domain_is_loopback(const char *domain)
{
	_cleanup_free_ char *host = NULL;
	struct in_addr a4;
	struct in6_addr a6;
	const char *colon;

	if (!domain || !*domain)
		return false;
	if (domain[0] == '[') {
		const char *close = strchr(domain, ']');

		if (!close)
			return false;
		host = xstrndup(domain + 1, (size_t)(close - domain - 1));
	} else if ((colon = strchr(domain, ':')) && strchr(colon + 1, ':')) {
		host = xstrdup(domain); /* bare IPv6 literal without brackets */
	} else if (colon) {
		host = xstrndup(domain, (size_t)(colon - domain));
	} else {
		host = xstrdup(domain);
	}
	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}
