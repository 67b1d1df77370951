// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * OCI distribution client on libcurl.  Each call owns one easy handle; curl
 * never follows redirects itself, so kal decides per hop whether the
 * Authorization header may go along (only to the host it was issued for).
 * Bodies are checked as they stream: size caps abort the transfer in the
 * write callback, digests are compared at the end.  Mirrors are tried
 * first and the origin is the fallback.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/fsutil.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "manifest.h"
#include "ref.h"
#include "registry-auth.h"
#include "registry.h"

#ifndef KAL_VERSION
#define KAL_VERSION "dev"
#endif

#define REG_MAX_REDIRECTS	    5
#define REG_MAX_ERROR_BODY	    (64u << 10)
#define REG_MAX_TOKEN_BODY	    (1u << 20)
#define REG_MAX_HEADER		    8192
#define REG_DEFAULT_CONNECT_TIMEOUT 15
#define REG_DEFAULT_IDLE_TIMEOUT    30
#define REG_TOKEN_MIN_LIFETIME	    60
#define REG_PROGRESS_STEP	    (256u << 10)

struct reg_endpoint {
	char *base;  /* "https://host:port", no trailing slash */
	char *host;  /* "host:port" as the URL has it, lower case */
	char *basic; /* base64(user:pass) from the docker config, or NULL */
	bool mirror;
};

/* Authorization values cached per (host, scope); scope "*" holds basic auth. */
struct reg_token {
	char *host, *scope, *header;
	time_t expires; /* CLOCK_MONOTONIC seconds; 0 = never */
	struct reg_token *next;
};

struct ic_registry {
	char *domain;
	struct reg_endpoint *eps; /* mirrors first, the origin last */
	size_t n_eps;
	long connect_timeout, idle_timeout;
	bool insecure;
	pthread_mutex_t lock;
	struct reg_token *tokens;
};

enum reg_sink { REG_SINK_MEM, REG_SINK_FD };

/* State of one HTTP exchange, reset before every attempt. */
struct reg_xfer {
	/* response headers of the current response */
	long status;
	char *content_type, *bearer, *basic;
	long long content_length;
	/* non-2xx body, capped */
	char *ebuf;
	size_t elen;
	/* 2xx body */
	enum reg_sink sink;
	char *mbuf;
	size_t mlen, mcap;
	int fd;
	uint64_t limit, done, last_progress;
	struct ic_hasher *hasher;
	ic_progress_fn progress;
	void *progress_arg;
	/* why the write/header callback aborted the transfer */
	char *abort_msg;
	int abort_code;
	/* the failure is worth one more try (connection reset, 502/503/504) */
	bool transient;
	const char *what; /* "manifest", "blob", "token": for messages */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static time_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Registry-controlled text that ends up in an error message: printable, short. */
static char *sanitize(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	char *out = xmalloc(n + 1);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	out[n] = '\0';
	return out;
}

static void xfer_reset(struct reg_xfer *x)
{
	free(x->content_type);
	free(x->bearer);
	free(x->basic);
	free(x->ebuf);
	free(x->abort_msg);
	x->content_type = x->bearer = x->basic = x->ebuf = x->abort_msg = NULL;
	x->status = 0;
	x->content_length = -1;
	x->elen = 0;
	x->abort_code = 0;
}

static void xfer_abort(struct reg_xfer *x, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void xfer_abort(struct reg_xfer *x, int code, const char *fmt, ...)
{
	va_list ap;

	if (x->abort_msg)
		return;
	va_start(ap, fmt);
	x->abort_msg = xvasprintf(fmt, ap);
	va_end(ap);
	x->abort_code = code;
}

static bool status_ok(long s)
{
	return s >= 200 && s < 300;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	struct reg_xfer *x = arg;
	size_t n = size * nitems, nl;
	_cleanup_free_ char *line = NULL;
	char *colon, *val;

	if (n > REG_MAX_HEADER) {
		xfer_abort(x, EPROTO, "response header longer than %d bytes", REG_MAX_HEADER);
		return 0;
	}
	line = xstrndup(buf, n);
	nl = strcspn(line, "\r\n");
	line[nl] = '\0';
	if (strncmp(line, "HTTP/", 5) == 0) {
		/* a new response (after 100 Continue): forget the previous headers */
		const char *sp = strchr(line, ' ');

		free(x->content_type);
		free(x->bearer);
		free(x->basic);
		x->content_type = x->bearer = x->basic = NULL;
		x->content_length = -1;
		x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		return n;
	}
	colon = strchr(line, ':');
	if (!colon)
		return n;
	*colon = '\0';
	val = colon + 1;
	while (*val == ' ' || *val == '\t')
		val++;
	for (char *e = val + strlen(val); e > val && (e[-1] == ' ' || e[-1] == '\t');)
		*--e = '\0';
	if (strcasecmp(line, "content-type") == 0) {
		free(x->content_type);
		x->content_type = xstrndup(val, strcspn(val, "; \t"));
	} else if (strcasecmp(line, "content-length") == 0) {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(val, &end, 10);
		x->content_length = (errno || *end || v < 0) ? -1 : v;
		if (status_ok(x->status) && x->content_length >= 0 &&
		    (uint64_t)x->content_length > x->limit) {
			if (x->sink == REG_SINK_FD)
				xfer_abort(
				    x, EFBIG,
				    "blob larger than its descriptor size (Content-Length %lld, "
				    "want %llu bytes)",
				    x->content_length, (unsigned long long)x->limit);
			else
				xfer_abort(x, EFBIG, "%s: larger than %llu bytes", x->what,
					   (unsigned long long)x->limit);
			return 0;
		}
	} else if (strcasecmp(line, "www-authenticate") == 0) {
		struct ic_auth_challenge c;

		if (ic_auth_challenge_parse(val, &c) == 0) {
			if (strcmp(c.scheme, "bearer") == 0 && !x->bearer)
				x->bearer = xstrdup(val);
			else if (strcmp(c.scheme, "basic") == 0 && !x->basic)
				x->basic = xstrdup(val);
			ic_auth_challenge_free(&c);
		}
	}
	return n;
}

static size_t write_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	struct reg_xfer *x = arg;
	size_t n = size * nitems;

	if (!status_ok(x->status)) {
		/* error bodies are only summarised: keep the first 64 KiB */
		size_t room = REG_MAX_ERROR_BODY - x->elen;

		if (!x->ebuf)
			x->ebuf = xmalloc(REG_MAX_ERROR_BODY + 1);
		if (n > room)
			n = room;
		memcpy(x->ebuf + x->elen, buf, n);
		x->elen += n;
		x->ebuf[x->elen] = '\0';
		/* returning less than given ends an endless error body */
		return x->elen >= REG_MAX_ERROR_BODY ? 0 : size * nitems;
	}
	if (n > x->limit - x->done) {
		if (x->sink == REG_SINK_FD)
			xfer_abort(x, EFBIG,
				   "blob larger than its descriptor size (more than %llu bytes)",
				   (unsigned long long)x->limit);
		else
			xfer_abort(x, EFBIG, "%s: larger than %llu bytes", x->what,
				   (unsigned long long)x->limit);
		return 0;
	}
	if (x->sink == REG_SINK_MEM) {
		if (x->mlen + n + 1 > x->mcap) {
			size_t cap = x->mcap ? x->mcap : 16384;

			while (cap < x->mlen + n + 1)
				cap *= 2;
			x->mbuf = xrealloc(x->mbuf, cap);
			x->mcap = cap;
		}
		memcpy(x->mbuf + x->mlen, buf, n);
		x->mlen += n;
		x->mbuf[x->mlen] = '\0';
	} else {
		struct kal_err *werr = NULL;

		if (kal_write_all(x->fd, buf, n, &werr) < 0) {
			xfer_abort(x, werr->code, "write blob: %s", werr->msg);
			kal_err_free(werr);
			return 0;
		}
	}
	if (x->hasher)
		ic_hasher_update(x->hasher, buf, n);
	x->done += n;
	if (x->progress &&
	    (x->done - x->last_progress >= REG_PROGRESS_STEP || x->done == x->limit)) {
		x->last_progress = x->done;
		x->progress(x->progress_arg, x->done, x->limit);
	}
	return n;
}

/* Lower-cased "host[:port]" and scheme of a URL; -1 when it is not http(s). */
static int url_split(const char *url, char **scheme, char **hostport)
{
	CURLU *u = curl_url();
	char *sch = NULL, *host = NULL, *port = NULL;
	int rc = -1;

	if (!u)
		abort();
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &sch, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (strcasecmp(sch, "http") != 0 && strcasecmp(sch, "https") != 0)
		goto out;
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	*scheme = xstrdup(sch);
	*hostport = port ? xasprintf("%s:%s", host, port) : xstrdup(host);
	for (char *s = *hostport; *s; s++)
		*s = (char)tolower((unsigned char)*s);
	for (char *s = *scheme; *s; s++)
		*s = (char)tolower((unsigned char)*s);
	rc = 0;
out:
	curl_free(sch);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

/* The curl failure of one perform as a kal error naming the host. */
static int curl_error(CURL *h, CURLcode rc, struct reg_xfer *x, const char *host,
		      const char *errbuf, const struct ic_registry *reg, struct kal_err **err)
{
	long os_errno = 0;
	curl_off_t connect_us = 0;

	if (x->abort_msg)
		return kal_err_set(err, x->abort_code, "%s", x->abort_msg);
	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
	curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_us);
	x->transient = rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR ||
		       rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING;
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return kal_err_set(err, os_errno ? (int)os_errno : ECONNREFUSED,
				   "registry `%s`: connect: %s", host,
				   strerror(os_errno ? (int)os_errno : ECONNREFUSED));
	case CURLE_COULDNT_RESOLVE_HOST:
		return kal_err_set(err, EHOSTUNREACH, "registry `%s`: cannot resolve host name",
				   host);
	case CURLE_OPERATION_TIMEDOUT:
		if (connect_us == 0)
			return kal_err_set(err, ETIMEDOUT,
					   "registry `%s`: connect: timed out after %ld s", host,
					   reg->connect_timeout);
		return kal_err_set(err, ETIMEDOUT, "registry `%s`: no data received for %ld s",
				   host, reg->idle_timeout);
	case CURLE_PARTIAL_FILE:
		return kal_err_set(err, EPROTO,
				   "registry `%s`: connection closed before the end of the %s",
				   host, x->what);
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		return kal_err_set(err, EPROTO, "registry `%s`: tls: %s", host,
				   *errbuf ? errbuf : curl_easy_strerror(rc));
	default:
		return kal_err_set(err, EIO, "registry `%s`: %s", host,
				   *errbuf ? errbuf : curl_easy_strerror(rc));
	}
}

/* "manifest unknown; blob unknown" from a registry JSON error body. */
static char *error_summary(const struct reg_xfer *x)
{
	struct json_object *root, *errors;
	char *out = NULL;

	if (!x->ebuf || !x->elen)
		return NULL;
	root = json_tokener_parse(x->ebuf);
	if (root && json_object_object_get_ex(root, "errors", &errors) &&
	    json_object_is_type(errors, json_type_array)) {
		size_t n = json_object_array_length(errors);

		for (size_t i = 0; i < n && i < 4; i++) {
			struct json_object *e = json_object_array_get_idx(errors, i), *m = NULL;
			_cleanup_free_ char *s = NULL;
			char *joined;

			if (!e ||
			    !(json_object_object_get_ex(e, "message", &m) ||
			      json_object_object_get_ex(e, "code", &m)) ||
			    !json_object_is_type(m, json_type_string))
				continue;
			s = sanitize(json_object_get_string(m), 200);
			for (char *c = s; *c; c++)
				*c = (*c == '_') ? ' ' : (char)tolower((unsigned char)*c);
			joined = out ? xasprintf("%s; %s", out, s) : xstrdup(s);
			free(out);
			out = joined;
		}
	}
	json_object_put(root);
	return out;
}

static const char *status_name(long s)
{
	switch (s) {
	case 400:
		return "bad request";
	case 401:
		return "unauthorized";
	case 403:
		return "denied";
	case 404:
		return "not found";
	case 405:
		return "method not allowed";
	case 429:
		return "too many requests";
	default:
		return s >= 500 ? "server error" : "unexpected response";
	}
}

static int status_error(struct reg_xfer *x, const char *host, struct kal_err **err)
{
	_cleanup_free_ char *sum = error_summary(x);
	int code;

	x->transient = x->status == 502 || x->status == 503 || x->status == 504;
	code = x->status == 401 || x->status == 403 ? EACCES : x->status == 404 ? ENOENT : EIO;

	if (sum)
		return kal_err_set(err, code, "registry `%s`: %s: %s (HTTP %ld)", host,
				   status_name(x->status), sum, x->status);
	return kal_err_set(err, code, "registry `%s`: %s (HTTP %ld)", host, status_name(x->status),
			   x->status);
}

static void reg_common_opts(struct ic_registry *reg, CURL *h, struct reg_xfer *x, char *errbuf)
{
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, reg->connect_timeout);
	/* less than 1 byte/s for idle_timeout seconds ends the transfer */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, reg->idle_timeout);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "kal/" KAL_VERSION);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
}

/* One GET; returns the CURLcode. */
static CURLcode reg_perform(struct ic_registry *reg, CURL *h, const char *url, const char *accept,
			    const char *auth, struct reg_xfer *x, char *errbuf)
{
	struct curl_slist *hdrs = NULL;
	_cleanup_free_ char *ah = NULL, *acc = NULL;
	CURLcode rc;

	curl_easy_reset(h);
	xfer_reset(x);
	errbuf[0] = '\0';
	reg_common_opts(reg, h, x, errbuf);
	curl_easy_setopt(h, CURLOPT_URL, url);
	if (accept) {
		acc = xasprintf("Accept: %s", accept);
		hdrs = curl_slist_append(hdrs, acc);
	}
	if (auth) {
		ah = xasprintf("Authorization: %s", auth);
		hdrs = curl_slist_append(hdrs, ah);
	}
	if (hdrs)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	rc = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	if (x->status == 0)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->status);
	return rc;
}

static const char *token_lookup(struct ic_registry *reg, const char *host, const char *scope,
				char **out)
{
	time_t now = mono_now();

	*out = NULL;
	pthread_mutex_lock(&reg->lock);
	for (struct reg_token *t = reg->tokens; t; t = t->next) {
		if (strcmp(t->host, host) != 0 || (t->expires && t->expires <= now))
			continue;
		if (strcmp(t->scope, scope) == 0) {
			free(*out);
			*out = xstrdup(t->header);
			break;
		}
		if (strcmp(t->scope, "*") == 0 && !*out)
			*out = xstrdup(t->header);
	}
	pthread_mutex_unlock(&reg->lock);
	return *out;
}

static void token_store(struct ic_registry *reg, const char *host, const char *scope,
			const char *header, long lifetime)
{
	struct reg_token *t;

	pthread_mutex_lock(&reg->lock);
	for (t = reg->tokens; t; t = t->next)
		if (strcmp(t->host, host) == 0 && strcmp(t->scope, scope) == 0)
			break;
	if (!t) {
		t = xzalloc(sizeof(*t));
		t->host = xstrdup(host);
		t->scope = xstrdup(scope);
		t->next = reg->tokens;
		reg->tokens = t;
	}
	free(t->header);
	t->header = xstrdup(header);
	/* renew a little early so a token does not expire mid-request */
	t->expires = lifetime > 0 ? mono_now() + (lifetime > 30 ? lifetime - 10 : lifetime) : 0;
	pthread_mutex_unlock(&reg->lock);
}

static void token_drop(struct ic_registry *reg, const char *host, const char *scope)
{
	pthread_mutex_lock(&reg->lock);
	for (struct reg_token *t = reg->tokens; t; t = t->next)
		if (strcmp(t->host, host) == 0 && strcmp(t->scope, scope) == 0)
			t->expires = 1; /* expired */
	pthread_mutex_unlock(&reg->lock);
}

static bool token_chars_valid(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static bool is_docker_hub(const struct ic_registry *reg)
{
	return strcmp(reg->domain, "docker.io") == 0;
}

/*
 * Bearer flow: GET realm?service=..&scope=.. and cache "Bearer <token>".
 * Basic credentials go along only when the realm is served by the registry
 * host itself (or auth.docker.io for Docker Hub), never to a third party.
 */
static int token_fetch(struct ic_registry *reg, const struct reg_endpoint *ep,
		       const char *challenge, const char *scope, struct kal_err **err)
{
	struct ic_auth_challenge c;
	struct reg_xfer x = { .sink = REG_SINK_MEM, .limit = REG_MAX_TOKEN_BODY, .what = "token" };
	_cleanup_free_ char *rscheme = NULL, *rhost = NULL, *url = NULL, *svc = NULL, *scp = NULL,
			    *basic = NULL, *bearer = NULL;
	struct json_object *root = NULL, *tok = NULL, *exp = NULL;
	char errbuf[CURL_ERROR_SIZE];
	CURL *h = NULL;
	CURLcode rc;
	long lifetime = REG_TOKEN_MIN_LIFETIME;
	int ret = -1;

	if (ic_auth_challenge_parse(challenge, &c) < 0)
		return kal_err_set(err, EPROTO, "registry `%s`: unparsable auth challenge",
				   ep->host);
	if (url_split(c.realm, &rscheme, &rhost) < 0) {
		kal_err_set(err, EPROTO, "registry `%s`: token realm is not an http(s) URL",
			    ep->host);
		goto out;
	}
	if (strcmp(rscheme, "http") == 0 && !ic_ref_domain_is_loopback(rhost) && !reg->insecure &&
	    strncmp(ep->base, "http:", 5) != 0) {
		kal_err_set(err, EPROTO, "registry `%s`: refusing plain-http token realm `%s`",
			    ep->host, rhost);
		goto out;
	}
	h = curl_easy_init();
	if (!h)
		abort();
	svc = c.service ? curl_easy_escape(h, c.service, 0) : NULL;
	scp = curl_easy_escape(h, scope, 0);
	if (svc)
		url = xasprintf("%s%sservice=%s&scope=%s", c.realm,
				strchr(c.realm, '?') ? "&" : "?", svc, scp);
	else
		url = xasprintf("%s%sscope=%s", c.realm, strchr(c.realm, '?') ? "&" : "?", scp);
	/* curl_easy_escape strings must be released with curl_free */
	{
		char *t = xstrdup(scp);

		curl_free(scp);
		scp = t;
		if (svc) {
			t = xstrdup(svc);
			curl_free(svc);
			svc = t;
		}
	}
	if (ep->basic && (strcmp(rhost, ep->host) == 0 || (is_docker_hub(reg) && !ep->mirror &&
							   strcmp(rhost, "auth.docker.io") == 0)))
		basic = xasprintf("Basic %s", ep->basic);
	rc = reg_perform(reg, h, url, "application/json", basic, &x, errbuf);
	if (rc != CURLE_OK) {
		curl_error(h, rc, &x, rhost, errbuf, reg, err);
		kal_err_wrap(err, "token");
		goto out;
	}
	if (!status_ok(x.status)) {
		status_error(&x, rhost, err);
		kal_err_wrap(err, "token");
		goto out;
	}
	root = x.mbuf ? json_tokener_parse(x.mbuf) : NULL;
	if (!root || !json_object_is_type(root, json_type_object) ||
	    !((json_object_object_get_ex(root, "token", &tok) &&
	       json_object_is_type(tok, json_type_string)) ||
	      (json_object_object_get_ex(root, "access_token", &tok) &&
	       json_object_is_type(tok, json_type_string))) ||
	    !token_chars_valid(json_object_get_string(tok))) {
		kal_err_set(err, EPROTO, "registry `%s`: token: invalid token response", rhost);
		goto out;
	}
	if (json_object_object_get_ex(root, "expires_in", &exp) &&
	    json_object_is_type(exp, json_type_int) &&
	    json_object_get_int64(exp) > REG_TOKEN_MIN_LIFETIME)
		lifetime =
		    json_object_get_int64(exp) > 86400 ? 86400 : (long)json_object_get_int64(exp);
	bearer = xasprintf("Bearer %s", json_object_get_string(tok));
	token_store(reg, ep->host, scope, bearer, lifetime);
	ret = 0;
out:
	json_object_put(root);
	ic_auth_challenge_free(&c);
	xfer_reset(&x);
	free(x.mbuf);
	if (h)
		curl_easy_cleanup(h);
	return ret;
}

/*
 * GET base+path on one endpoint with auth and manual redirects.  On success
 * the body went into x's sink and x->content_type is set.
 */
static int endpoint_get(struct ic_registry *reg, const struct reg_endpoint *ep, CURL *h,
			const char *path, const char *accept, const char *scope, struct reg_xfer *x,
			struct kal_err **err)
{
	_cleanup_free_ char *url = xasprintf("%s%s", ep->base, path);
	_cleanup_free_ char *cur_host = xstrdup(ep->host);
	char errbuf[CURL_ERROR_SIZE];
	bool same_host = true, tried_bearer = false, tried_basic = false;
	int hops = 0;

	for (;;) {
		_cleanup_free_ char *auth = NULL;
		CURLcode rc;

		if (same_host)
			token_lookup(reg, ep->host, scope, &auth);
		rc = reg_perform(reg, h, url, accept, auth, x, errbuf);
		if (rc != CURLE_OK &&
		    !(rc == CURLE_WRITE_ERROR && !x->abort_msg && !status_ok(x->status)))
			return curl_error(h, rc, x, cur_host, errbuf, reg, err);
		if (status_ok(x->status))
			return 0;
		if (x->status == 301 || x->status == 302 || x->status == 303 || x->status == 307 ||
		    x->status == 308) {
			char *loc = NULL;
			_cleanup_free_ char *scheme = NULL, *host = NULL;

			if (++hops > REG_MAX_REDIRECTS)
				return kal_err_set(err, ELOOP, "registry `%s`: too many redirects",
						   ep->host);
			curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc);
			if (!loc || url_split(loc, &scheme, &host) < 0)
				return kal_err_set(
				    err, EPROTO,
				    "registry `%s`: redirect to an unsupported location", cur_host);
			if (strcmp(scheme, "http") == 0 && strncmp(url, "https:", 6) == 0)
				return kal_err_set(
				    err, EPROTO,
				    "registry `%s`: refusing redirect from https to http",
				    cur_host);
			free(url);
			url = xstrdup(loc);
			free(cur_host);
			cur_host = steal_ptr(&host);
			/* credentials belong to ep->host; a hop elsewhere loses them for good */
			if (strcmp(cur_host, ep->host) != 0)
				same_host = false;
			continue;
		}
		if (x->status == 401 && same_host) {
			if (x->bearer && !tried_bearer) {
				_cleanup_free_ char *chal = xstrdup(x->bearer);

				tried_bearer = true;
				token_drop(reg, ep->host, scope);
				if (token_fetch(reg, ep, chal, scope, err) < 0)
					return -1;
				continue;
			}
			if (x->basic && !tried_basic && ep->basic) {
				_cleanup_free_ char *hdr = xasprintf("Basic %s", ep->basic);

				tried_basic = true;
				token_store(reg, ep->host, "*", hdr, 0);
				continue;
			}
			if (x->basic && !ep->basic) {
				_cleanup_free_ char *sum = error_summary(x);

				return kal_err_set(
				    err, EACCES,
				    "registry `%s`: unauthorized: %s (no credentials "
				    "for `%s` in the docker config)",
				    ep->host, sum ? sum : "authentication required", ep->host);
			}
		}
		return status_error(x, cur_host, err);
	}
}

/* Rewind an fd sink to where the call started, for a retry on the next endpoint. */
static int sink_rewind(struct reg_xfer *x, off_t start, struct kal_err **err)
{
	if (x->sink == REG_SINK_MEM) {
		x->mlen = 0;
	} else if (x->done) {
		struct stat st;

		if (start < 0 || lseek(x->fd, start, SEEK_SET) < 0)
			return kal_err_set(err, ESPIPE, "cannot retry: output is not seekable");
		if (fstat(x->fd, &st) == 0 && S_ISREG(st.st_mode) && ftruncate(x->fd, start) < 0)
			return kal_err_sys(err, errno, "truncate blob file");
	}
	x->done = 0;
	x->last_progress = 0;
	if (x->hasher)
		ic_hasher_reset(x->hasher);
	return 0;
}

typedef int (*reg_verify_fn)(struct reg_xfer *x, void *arg, struct kal_err **err);

/* Try each endpoint (mirrors, then the origin); the origin's error is the one reported. */
static int reg_get(struct ic_registry *reg, const char *repo, const char *path, const char *accept,
		   struct reg_xfer *x, reg_verify_fn verify, void *varg, struct kal_err **err)
{
	_cleanup_free_ char *scope = xasprintf("repository:%s:pull", repo);
	off_t start = x->sink == REG_SINK_FD ? lseek(x->fd, 0, SEEK_CUR) : 0;
	CURL *h = curl_easy_init();
	bool first = true;
	int rc = -1, retried = 0;

	if (!h)
		abort();
	for (size_t i = 0; i < reg->n_eps;) {
		const struct reg_endpoint *ep = &reg->eps[i];
		struct kal_err *e = NULL;

		if (!first && sink_rewind(x, start, err) < 0)
			break;
		first = false;
		x->transient = false;
		if (endpoint_get(reg, ep, h, path, accept, scope, x, &e) == 0 &&
		    (!verify || verify(x, varg, &e) == 0)) {
			rc = 0;
			break;
		}
		/*
		 * One more try on the same endpoint for a dropped connection or a
		 * gateway error; FIXME: resume with Range instead of restarting.
		 */
		if (x->sink == REG_SINK_FD && x->done && start < 0) {
			/* bytes went to a pipe: no retry, no fallback, report the cause */
			*err = e;
			break;
		}
		if (x->transient && !retried) {
			kal_debug("`%s`: %s; retrying once", ep->host, e->msg);
			kal_err_free(e);
			retried = 1;
			usleep(300 * 1000);
			continue;
		}
		retried = 0;
		if (ep->mirror && ++i < reg->n_eps) {
			kal_debug("mirror `%s` failed, falling back: %s", ep->host, e->msg);
			kal_err_free(e);
			continue;
		}
		*err = e;
		break;
	}
	curl_easy_cleanup(h);
	return rc;
}

/* A mirror string "host:port" or "http(s)://host:port[/...]" as an endpoint. */
static int endpoint_init(struct reg_endpoint *ep, const char *spec, bool mirror, bool insecure,
			 const char *docker_config, bool docker_hub, struct kal_err **err)
{
	_cleanup_free_ char *url = NULL, *scheme = NULL, *host = NULL;
	struct kal_err *cerr = NULL;

	if (strstr(spec, "://")) {
		url = xstrdup(spec);
	} else {
		_cleanup_free_ char *h = xstrndup(spec, strcspn(spec, "/"));

		url = xasprintf("%s://%s",
				ic_ref_domain_is_loopback(h) || insecure ? "http" : "https", h);
	}
	if (url_split(url, &scheme, &host) < 0 || strchr(host, '@'))
		return kal_err_set(err, EINVAL, "invalid registry address `%s`", spec);
	ep->base = xasprintf("%s://%s", scheme, host);
	ep->host = steal_ptr(&host);
	ep->mirror = mirror;
	if (ic_auth_docker_config_lookup(docker_config, ep->host, docker_hub && !mirror, &ep->basic,
					 &cerr) < 0) {
		/* a broken docker config must not break anonymous pulls */
		kal_warn("%s", cerr->msg);
		kal_err_free(cerr);
	}
	return 0;
}

struct ic_registry *ic_registry_new(const char *domain, const struct ic_registry_opts *opts,
				    struct kal_err **err)
{
	static const struct ic_registry_opts defaults = { 0 };
	_cleanup_free_ char *api = NULL, *cfg = NULL;
	struct ic_registry *reg;
	char **mirrors = NULL;
	const char *env;
	bool hub;
	size_t nm = 0;

	if (!opts)
		opts = &defaults;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		kal_err_set(err, EIO, "curl init: %s", curl_easy_strerror(curl_init_rc));
		return NULL;
	}
	if (!domain || !*domain || strpbrk(domain, "/@?# ")) {
		kal_err_set(err, EINVAL, "invalid registry domain `%s`", domain ? domain : "");
		return NULL;
	}
	hub = strcmp(domain, "docker.io") == 0;
	cfg = opts->docker_config ? xstrdup(opts->docker_config) : ic_auth_docker_config_path();

	if (opts->mirror && *opts->mirror) {
		mirrors = xcalloc(2, sizeof(*mirrors));
		mirrors[0] = xstrdup(opts->mirror);
	} else if (hub && (env = getenv("KAL_REGISTRY_MIRROR")) && *env) {
		mirrors = xcalloc(2, sizeof(*mirrors));
		mirrors[0] = xstrdup(env);
	} else if (ic_mirrors_from_config(NULL, domain, &mirrors, err) < 0) {
		return NULL;
	}
	for (nm = 0; mirrors && mirrors[nm]; nm++)
		;

	reg = xzalloc(sizeof(*reg));
	pthread_mutex_init(&reg->lock, NULL);
	reg->domain = xstrdup(domain);
	reg->insecure = opts->insecure;
	reg->connect_timeout =
	    opts->connect_timeout_s > 0 ? opts->connect_timeout_s : REG_DEFAULT_CONNECT_TIMEOUT;
	reg->idle_timeout =
	    opts->idle_timeout_s > 0 ? opts->idle_timeout_s : REG_DEFAULT_IDLE_TIMEOUT;
	reg->eps = xcalloc(nm + 1, sizeof(*reg->eps));
	for (size_t i = 0; i < nm; i++) {
		if (endpoint_init(&reg->eps[reg->n_eps], mirrors[i], true, opts->insecure, cfg, hub,
				  err) < 0)
			goto fail;
		reg->n_eps++;
	}
	api = ic_ref_api_host(domain);
	if (endpoint_init(&reg->eps[reg->n_eps], api, false, opts->insecure, cfg, hub, err) < 0)
		goto fail;
	reg->n_eps++;
	for (size_t i = 0; mirrors && mirrors[i]; i++)
		free(mirrors[i]);
	free(mirrors);
	return reg;
fail:
	for (size_t i = 0; mirrors && mirrors[i]; i++)
		free(mirrors[i]);
	free(mirrors);
	ic_registry_free(reg);
	return NULL;
}

void ic_registry_free(struct ic_registry *reg)
{
	if (!reg)
		return;
	for (size_t i = 0; i < reg->n_eps; i++) {
		free(reg->eps[i].base);
		free(reg->eps[i].host);
		free(reg->eps[i].basic);
	}
	free(reg->eps);
	while (reg->tokens) {
		struct reg_token *t = reg->tokens;

		reg->tokens = t->next;
		free(t->host);
		free(t->scope);
		free(t->header);
		free(t);
	}
	pthread_mutex_destroy(&reg->lock);
	free(reg->domain);
	free(reg);
}

struct manifest_verify {
	bool by_digest;
	struct ic_digest want;
	struct ic_digest got;
};

static int manifest_verify(struct reg_xfer *x, void *arg, struct kal_err **err)
{
	struct manifest_verify *v = arg;
	char a[IC_DIGEST_STR_LEN + 1], b[IC_DIGEST_STR_LEN + 1];

	ic_hasher_final(x->hasher, &v->got);
	if (v->by_digest && !ic_digest_equal(&v->want, &v->got))
		return kal_err_set(err, EBADMSG, "manifest: digest mismatch (want %s, got %s)",
				   ic_digest_str(&v->want, a), ic_digest_str(&v->got, b));
	return 0;
}

/* The media type named inside a document, for servers that send no Content-Type. */
static char *sniff_media_type(const char *buf, size_t len)
{
	struct json_tokener *tok = json_tokener_new_ex(64);
	struct json_object *root, *mt;
	char *out = NULL;

	if (!tok)
		abort();
	root = json_tokener_parse_ex(tok, buf, (int)len);
	if (root && json_object_object_get_ex(root, "mediaType", &mt) &&
	    json_object_is_type(mt, json_type_string))
		out = xstrdup(json_object_get_string(mt));
	json_object_put(root);
	json_tokener_free(tok);
	return out;
}

int ic_registry_get_manifest(struct ic_registry *reg, const char *repo, const char *reference,
			     char **body, size_t *len, char **media_type, struct ic_digest *digest,
			     struct kal_err **err)
{
	struct reg_xfer x = {
		.sink = REG_SINK_MEM, .limit = IC_MAX_MANIFEST_SIZE, .what = "manifest", .fd = -1
	};
	struct manifest_verify v = { 0 };
	_cleanup_free_ char *path = NULL, *shown = NULL;
	char *ct;
	int rc;

	*body = NULL;
	*media_type = NULL;
	*len = 0;
	if (!ic_ref_repo_valid(repo))
		return kal_err_set(err, EINVAL, "invalid repository name `%.100s`", repo);
	if (strchr(reference, ':')) {
		if (ic_digest_parse(reference, &v.want, err) < 0)
			return -1;
		v.by_digest = true;
		shown = xasprintf("%s@%s", repo, reference);
	} else if (!ic_ref_tag_valid(reference)) {
		return kal_err_set(err, EINVAL, "invalid tag `%.100s`", reference);
	} else {
		shown = xasprintf("%s:%s", repo, reference);
	}
	path = xasprintf("/v2/%s/manifests/%s", repo, reference);
	x.hasher = ic_hasher_new();
	rc = reg_get(reg, repo, path, IC_MANIFEST_ACCEPT, &x, manifest_verify, &v, err);
	if (rc < 0) {
		if (*err && (*err)->code == ENOENT && x.status == 404) {
			kal_err_clear(err);
			kal_err_set(err, ENOENT, "manifest unknown: `%s`", shown);
		}
		goto out;
	}
	ct = x.content_type;
	if (!ct || !*ct || strcmp(ct, "application/json") == 0 ||
	    strcmp(ct, "application/octet-stream") == 0 || strcmp(ct, "text/plain") == 0) {
		/* no useful Content-Type: trust what the document says about itself */
		ct = sniff_media_type(x.mbuf ? x.mbuf : "", x.mlen);
		if (!ct) {
			rc = kal_err_set(err, EPROTO,
					 "manifest `%s`: no Content-Type and no mediaType in the "
					 "document",
					 shown);
			goto out;
		}
		*media_type = ct;
	} else {
		*media_type = sanitize(ct, 256);
	}
	*body = x.mbuf ? steal_ptr(&x.mbuf) : xstrdup("");
	*len = x.mlen;
	*digest = v.got;
out:
	ic_hasher_free(x.hasher);
	xfer_reset(&x);
	free(x.mbuf);
	return rc;
}

struct blob_verify {
	const struct ic_digest *want;
	uint64_t size;
};

static int blob_verify(struct reg_xfer *x, void *arg, struct kal_err **err)
{
	struct blob_verify *v = arg;
	struct ic_digest got;
	char a[IC_DIGEST_STR_LEN + 1], b[IC_DIGEST_STR_LEN + 1];

	if (x->done != v->size)
		return kal_err_set(err, EBADMSG,
				   "blob shorter than its descriptor size (got %llu of %llu bytes)",
				   (unsigned long long)x->done, (unsigned long long)v->size);
	ic_hasher_final(x->hasher, &got);
	if (!ic_digest_equal(v->want, &got))
		return kal_err_set(err, EBADMSG, "digest mismatch (want %s, got %s)",
				   ic_digest_str(v->want, a), ic_digest_str(&got, b));
	return 0;
}

int ic_registry_get_blob(struct ic_registry *reg, const char *repo, const struct ic_digest *digest,
			 uint64_t size, int out_fd, ic_progress_fn progress, void *arg,
			 struct kal_err **err)
{
	struct reg_xfer x = { .sink = REG_SINK_FD,
			      .fd = out_fd,
			      .limit = size,
			      .what = "blob",
			      .progress = progress,
			      .progress_arg = arg };
	struct blob_verify v = { .want = digest, .size = size };
	char dstr[IC_DIGEST_STR_LEN + 1];
	_cleanup_free_ char *path = NULL;
	int rc;

	if (!ic_ref_repo_valid(repo))
		return kal_err_set(err, EINVAL, "invalid repository name `%.100s`", repo);
	if (!ic_digest_hex_valid(digest->hex))
		return kal_err_set(err, EINVAL, "invalid blob digest");
	path = xasprintf("/v2/%s/blobs/%s", repo, ic_digest_str(digest, dstr));
	x.hasher = ic_hasher_new();
	rc = reg_get(reg, repo, path, NULL, &x, blob_verify, &v, err);
	if (rc < 0 && *err && (*err)->code == ENOENT && x.status == 404) {
		kal_err_clear(err);
		kal_err_set(err, ENOENT, "blob unknown: `%s`", dstr);
	}
	ic_hasher_free(x.hasher);
	xfer_reset(&x);
	return rc;
}
