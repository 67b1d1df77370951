// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Strict parsers for the JSON documents of an image (index / manifest list,
 * manifest, config) on json-c.  Every field kal relies on is type-checked;
 * a document whose declared media type disagrees with the transport, or an
 * index posing as a manifest (CVE-2021-41190), is refused.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "manifest.h"

#define MT_DOCKER_SCHEMA1	 "application/vnd.docker.distribution.manifest.v1+json"
#define MT_DOCKER_SCHEMA1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"
#define JSON_MAX_DEPTH		 64
#define MAX_STRING_ARRAY	 65536

static void json_putp(struct json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_putp)

int ic_doc_kind_of(const char *media_type, enum ic_doc_kind *kind, struct kal_err **err)
{
	if (!media_type)
		return kal_err_set(err, EINVAL, "missing media type");
	if (strcmp(media_type, IC_MT_OCI_INDEX) == 0 ||
	    strcmp(media_type, IC_MT_DOCKER_LIST) == 0) {
		*kind = IC_DOC_INDEX;
		return 0;
	}
	if (strcmp(media_type, IC_MT_OCI_MANIFEST) == 0 ||
	    strcmp(media_type, IC_MT_DOCKER_MANIFEST) == 0) {
		*kind = IC_DOC_MANIFEST;
		return 0;
	}
	if (strcmp(media_type, MT_DOCKER_SCHEMA1) == 0 ||
	    strcmp(media_type, MT_DOCKER_SCHEMA1_SIGNED) == 0)
		return kal_err_set(err, ENOTSUP,
				   "docker schema1 manifests are not supported (deprecated format; "
				   "re-push the image with schema2 or OCI)");
	return kal_err_set(err, ENOTSUP, "unsupported media type `%.100s`", media_type);
}

int ic_layer_compression(const char *media_type, enum ic_compression *comp, struct kal_err **err)
{
	if (!media_type)
		return kal_err_set(err, EINVAL, "layer without media type");
	if (strcmp(media_type, IC_MT_OCI_LAYER) == 0)
		*comp = IC_COMP_NONE;
	else if (strcmp(media_type, IC_MT_OCI_LAYER_GZIP) == 0 ||
		 strcmp(media_type, IC_MT_DOCKER_LAYER_GZIP) == 0)
		*comp = IC_COMP_GZIP;
	else if (strcmp(media_type, IC_MT_OCI_LAYER_ZSTD) == 0)
		*comp = IC_COMP_ZSTD;
	else if (strstr(media_type, "foreign") || strstr(media_type, "nondistributable"))
		return kal_err_set(err, ENOTSUP,
				   "foreign/non-distributable layers are not supported (`%.100s`)",
				   media_type);
	else
		return kal_err_set(err, ENOTSUP, "unsupported layer media type `%.100s`",
				   media_type);
	return 0;
}

/* Parse a whole buffer as one JSON object; trailing garbage is an error. */
static struct json_object *json_parse_object(const char *buf, size_t len, size_t cap,
					     const char *what, struct kal_err **err)
{
	struct json_tokener *tok;
	struct json_object *o;
	enum json_tokener_error jerr;
	size_t used;

	if (len > cap) {
		kal_err_set(err, EFBIG, "%s: larger than %zu bytes", what, cap);
		return NULL;
	}
	if (len > INT32_MAX) {
		kal_err_set(err, EFBIG, "%s: too large", what);
		return NULL;
	}
	tok = json_tokener_new_ex(JSON_MAX_DEPTH);
	if (!tok)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	used = json_tokener_get_parse_end(tok);
	if (!o || jerr != json_tokener_success) {
		if (jerr == json_tokener_continue)
			kal_err_set(err, EINVAL, "%s: invalid JSON: unexpected end of document",
				    what);
		else
			kal_err_set(err, EINVAL, "%s: invalid JSON: %s", what,
				    json_tokener_error_desc(jerr));
		json_object_put(o);
		json_tokener_free(tok);
		return NULL;
	}
	json_tokener_free(tok);
	for (; used < len; used++) {
		char c = buf[used];

		if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			kal_err_set(err, EINVAL, "%s: invalid JSON: trailing data after document",
				    what);
			json_object_put(o);
			return NULL;
		}
	}
	if (!json_object_is_type(o, json_type_object)) {
		kal_err_set(err, EINVAL, "%s: not a JSON object", what);
		json_object_put(o);
		return NULL;
	}
	return o;
}

/*
 * Optional string member: 0 with *out NULL when absent (or null),
 * -1 for a wrong type or an embedded NUL.
 */
static int get_str(struct json_object *o, const char *key, const char **out, const char *what,
		   struct kal_err **err)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return kal_err_set(err, EINVAL, "%s: `%s` is not a string", what, key);
	*out = json_object_get_string(v);
	if (strlen(*out) != (size_t)json_object_get_string_len(v))
		return kal_err_set(err, EINVAL, "%s: `%s` contains a NUL character", what, key);
	return 0;
}

static int get_req_str(struct json_object *o, const char *key, const char **out, const char *what,
		       struct kal_err **err)
{
	if (get_str(o, key, out, what, err) < 0)
		return -1;
	if (!*out)
		return kal_err_set(err, EINVAL, "%s: missing `%s`", what, key);
	return 0;
}

static int get_size(struct json_object *o, const char *key, uint64_t *out, const char *what,
		    struct kal_err **err)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(o, key, &v) || !v)
		return kal_err_set(err, EINVAL, "%s: missing `%s`", what, key);
	if (!json_object_is_type(v, json_type_int))
		return kal_err_set(err, EINVAL, "%s: `%s` is not an integer", what, key);
	errno = 0;
	n = json_object_get_int64(v);
	/* json-c saturates values beyond int64; treat those as invalid too */
	if (n < 0 || n == INT64_MAX)
		return kal_err_set(err, EINVAL, "%s: `%s` out of range", what, key);
	*out = (uint64_t)n;
	return 0;
}

static int get_digest(struct json_object *o, const char *key, struct ic_digest *d, const char *what,
		      struct kal_err **err)
{
	const char *s;
	struct kal_err *derr = NULL;

	if (get_req_str(o, key, &s, what, err) < 0)
		return -1;
	if (ic_digest_parse(s, d, &derr) < 0) {
		kal_err_set(err, EINVAL, "%s: %s", what, derr->msg);
		kal_err_free(derr);
		return -1;
	}
	return 0;
}

static void platform_free(struct ic_platform *p)
{
	free(p->os);
	free(p->arch);
	free(p->variant);
	memset(p, 0, sizeof(*p));
}

static void descriptor_free(struct ic_descriptor *d)
{
	free(d->media_type);
	platform_free(&d->platform);
	memset(d, 0, sizeof(*d));
}

static int descriptor_parse(struct json_object *o, struct ic_descriptor *d, bool media_required,
			    const char *what, struct kal_err **err)
{
	const char *mt;

	memset(d, 0, sizeof(*d));
	if (!o || !json_object_is_type(o, json_type_object))
		return kal_err_set(err, EINVAL, "%s: not an object", what);
	if (get_str(o, "mediaType", &mt, what, err) < 0)
		return -1;
	if (!mt && media_required)
		return kal_err_set(err, EINVAL, "%s: missing `mediaType`", what);
	if (get_digest(o, "digest", &d->digest, what, err) < 0 ||
	    get_size(o, "size", &d->size, what, err) < 0)
		return -1;
	d->media_type = mt ? xstrdup(mt) : NULL;
	return 0;
}

/*
 * Agreement between the transport's media type and the document: a
 * document that names its own type must name the same one.
 */
static int check_media_type(struct json_object *root, const char *transport, enum ic_doc_kind want,
			    const char *what, const char **effective, struct kal_err **err)
{
	const char *doc_mt;
	enum ic_doc_kind kind;
	struct json_object *v;

	if (get_str(root, "mediaType", &doc_mt, what, err) < 0)
		return -1;
	if (json_object_object_get_ex(root, "schemaVersion", &v) && v &&
	    json_object_is_type(v, json_type_int) && json_object_get_int64(v) == 1)
		return ic_doc_kind_of(MT_DOCKER_SCHEMA1, &kind, err) < 0
			   ? kal_err_wrap(err, "%s", what)
			   : -1;
	if (transport && doc_mt && strcmp(transport, doc_mt) != 0)
		/* "manifest:" for both kinds: it is what /manifests/ returned */
		return kal_err_set(err, EINVAL,
				   "manifest: media type mismatch: Content-Type `%.100s` but "
				   "document says `%.100s`",
				   transport, doc_mt);
	*effective = transport ? transport : doc_mt;
	if (!*effective)
		return kal_err_set(err, EINVAL, "%s: no media type in the document or transport",
				   what);
	if (ic_doc_kind_of(*effective, &kind, err) < 0)
		return kal_err_wrap(err, "%s", what);
	if (kind != want)
		return kal_err_set(err, EINVAL, "%s: expected %s but media type `%s` is %s", what,
				   want == IC_DOC_INDEX ? "an index" : "a manifest", *effective,
				   kind == IC_DOC_INDEX ? "an index" : "a manifest");
	if (!json_object_object_get_ex(root, "schemaVersion", &v) || !v ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 2)
		return kal_err_set(err, EINVAL, "%s: `schemaVersion` must be 2", what);
	return 0;
}

int ic_index_parse(const char *buf, size_t len, const char *media_type, struct ic_index *idx,
		   struct kal_err **err)
{
	_cleanup_json_ struct json_object *root = NULL;
	struct json_object *arr, *v;
	const char *mt;
	size_t n;

	memset(idx, 0, sizeof(*idx));
	root = json_parse_object(buf, len, IC_MAX_MANIFEST_SIZE, "index", err);
	if (!root)
		return -1;
	if (check_media_type(root, media_type, IC_DOC_INDEX, "index", &mt, err) < 0)
		return -1;
	/* a manifest dressed up as an index (CVE-2021-41190) */
	if (json_object_object_get_ex(root, "layers", &v) ||
	    json_object_object_get_ex(root, "config", &v))
		return kal_err_set(
		    err, EINVAL,
		    "index: document has `layers`/`config`: it is a manifest, not an "
		    "index");
	if (!json_object_object_get_ex(root, "manifests", &arr) || !arr ||
	    !json_object_is_type(arr, json_type_array))
		return kal_err_set(err, EINVAL, "index: missing `manifests` array");
	n = json_object_array_length(arr);
	if (n > IC_MAX_INDEX_ENTRIES)
		return kal_err_set(err, E2BIG, "index: %zu entries, more than the limit of %d", n,
				   IC_MAX_INDEX_ENTRIES);
	idx->manifests = xcalloc(n ? n : 1, sizeof(*idx->manifests));
	for (size_t i = 0; i < n; i++) {
		struct ic_descriptor *d = &idx->manifests[i];
		struct json_object *e = json_object_array_get_idx(arr, i), *p;
		const char *os, *arch, *variant;
		char what[48];

		snprintf(what, sizeof(what), "index: manifests[%zu]", i);
		if (descriptor_parse(e, d, true, what, err) < 0)
			goto fail;
		idx->n = i + 1;
		if (json_object_object_get_ex(e, "platform", &p) && p) {
			if (!json_object_is_type(p, json_type_object)) {
				kal_err_set(err, EINVAL, "%s: `platform` is not an object", what);
				goto fail;
			}
			if (get_req_str(p, "os", &os, what, err) < 0 ||
			    get_req_str(p, "architecture", &arch, what, err) < 0 ||
			    get_str(p, "variant", &variant, what, err) < 0)
				goto fail;
			d->platform.os = xstrdup(os);
			d->platform.arch = xstrdup(arch);
			d->platform.variant = variant && *variant ? xstrdup(variant) : NULL;
		}
	}
	return 0;
fail:
	ic_index_free(idx);
	return -1;
}

int ic_manifest_parse(const char *buf, size_t len, const char *media_type, struct ic_manifest *m,
		      struct kal_err **err)
{
	_cleanup_json_ struct json_object *root = NULL;
	struct json_object *arr, *v;
	const char *mt;
	size_t n;

	memset(m, 0, sizeof(*m));
	root = json_parse_object(buf, len, IC_MAX_MANIFEST_SIZE, "manifest", err);
	if (!root)
		return -1;
	if (check_media_type(root, media_type, IC_DOC_MANIFEST, "manifest", &mt, err) < 0)
		return -1;
	if (json_object_object_get_ex(root, "manifests", &v))
		return kal_err_set(err, EINVAL,
				   "manifest: document has `manifests`: it is an index, not a "
				   "manifest");
	if (!json_object_object_get_ex(root, "config", &v) || !v)
		return kal_err_set(err, EINVAL, "manifest: missing `config`");
	if (descriptor_parse(v, &m->config, false, "manifest: config", err) < 0)
		goto fail;
	if (!m->config.media_type)
		return kal_err_set(err, EINVAL, "manifest: config: missing `mediaType`");
	if (strcmp(m->config.media_type, IC_MT_OCI_CONFIG) != 0 &&
	    strcmp(m->config.media_type, IC_MT_DOCKER_CONFIG) != 0) {
		kal_err_set(err, ENOTSUP,
			    "manifest: not a container image (config media type `%.100s`)",
			    m->config.media_type);
		goto fail;
	}
	if (m->config.size > IC_MAX_CONFIG_SIZE) {
		kal_err_set(err, EFBIG, "manifest: config size %llu is over the limit of %u bytes",
			    (unsigned long long)m->config.size, IC_MAX_CONFIG_SIZE);
		goto fail;
	}
	if (!json_object_object_get_ex(root, "layers", &arr) || !arr ||
	    !json_object_is_type(arr, json_type_array)) {
		kal_err_set(err, EINVAL, "manifest: missing `layers` array");
		goto fail;
	}
	n = json_object_array_length(arr);
	if (n > IC_MAX_LAYERS) {
		kal_err_set(err, E2BIG, "manifest: %zu layers, more than the limit of %d", n,
			    IC_MAX_LAYERS);
		goto fail;
	}
	m->layers = xcalloc(n ? n : 1, sizeof(*m->layers));
	for (size_t i = 0; i < n; i++) {
		struct ic_descriptor *d = &m->layers[i];
		enum ic_compression comp;
		char what[48];

		snprintf(what, sizeof(what), "manifest: layers[%zu]", i);
		if (descriptor_parse(json_object_array_get_idx(arr, i), d, true, what, err) < 0)
			goto fail;
		m->n_layers = i + 1;
		if (ic_layer_compression(d->media_type, &comp, err) < 0) {
			kal_err_wrap(err, "%s", what);
			goto fail;
		}
	}
	m->media_type = xstrdup(mt);
	return 0;
fail:
	ic_manifest_free(m);
	return -1;
}

static void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* ["a", "b"] -> NULL-terminated array; null or absent -> NULL */
static int get_strv(struct json_object *o, const char *key, char ***out, struct kal_err **err)
{
	struct json_object *arr;
	size_t n;
	char **v;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &arr) || !arr)
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return kal_err_set(err, EINVAL, "config: `%s` is not an array", key);
	n = json_object_array_length(arr);
	if (n > MAX_STRING_ARRAY)
		return kal_err_set(err, E2BIG, "config: `%s` has too many entries", key);
	v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		const char *s;

		if (!e || !json_object_is_type(e, json_type_string) ||
		    strlen(s = json_object_get_string(e)) !=
			(size_t)json_object_get_string_len(e)) {
			strv_free(v);
			return kal_err_set(err, EINVAL, "config: `%s[%zu]` is not a string", key,
					   i);
		}
		v[i] = xstrdup(s);
	}
	*out = v;
	return 0;
}

int ic_config_parse(const char *buf, size_t len, struct ic_config *c, struct kal_err **err)
{
	_cleanup_json_ struct json_object *root = NULL;
	struct json_object *rootfs, *arr, *cc;
	const char *s, *os, *arch, *variant;
	size_t n;

	memset(c, 0, sizeof(*c));
	root = json_parse_object(buf, len, IC_MAX_CONFIG_SIZE, "config", err);
	if (!root)
		return -1;
	if (get_str(root, "os", &os, "config", err) < 0 ||
	    get_str(root, "architecture", &arch, "config", err) < 0 ||
	    get_str(root, "variant", &variant, "config", err) < 0)
		return -1;
	c->platform.os = os ? xstrdup(os) : NULL;
	c->platform.arch = arch ? xstrdup(arch) : NULL;
	c->platform.variant = variant && *variant ? xstrdup(variant) : NULL;

	if (!json_object_object_get_ex(root, "rootfs", &rootfs) || !rootfs ||
	    !json_object_is_type(rootfs, json_type_object)) {
		kal_err_set(err, EINVAL, "config: missing `rootfs`");
		goto fail;
	}
	if (get_req_str(rootfs, "type", &s, "config: rootfs", err) < 0)
		goto fail;
	if (strcmp(s, "layers") != 0) {
		kal_err_set(err, EINVAL, "config: rootfs type `%.50s` is not `layers`", s);
		goto fail;
	}
	if (!json_object_object_get_ex(rootfs, "diff_ids", &arr) || !arr ||
	    !json_object_is_type(arr, json_type_array)) {
		kal_err_set(err, EINVAL, "config: missing `rootfs.diff_ids` array");
		goto fail;
	}
	n = json_object_array_length(arr);
	if (n > IC_MAX_LAYERS) {
		kal_err_set(err, E2BIG, "config: %zu diff_ids, more than the limit of %d", n,
			    IC_MAX_LAYERS);
		goto fail;
	}
	c->diff_ids = xcalloc(n ? n : 1, sizeof(*c->diff_ids));
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		struct kal_err *derr = NULL;

		if (!e || !json_object_is_type(e, json_type_string)) {
			kal_err_set(err, EINVAL, "config: diff_ids[%zu] is not a string", i);
			goto fail;
		}
		if (ic_digest_parse(json_object_get_string(e), &c->diff_ids[i], &derr) < 0) {
			kal_err_set(err, EINVAL, "config: diff_ids[%zu]: %s", i, derr->msg);
			kal_err_free(derr);
			goto fail;
		}
	}
	c->n_diff_ids = n;

	if (json_object_object_get_ex(root, "config", &cc) && cc) {
		const char *wd, *user;

		if (!json_object_is_type(cc, json_type_object)) {
			kal_err_set(err, EINVAL, "config: `config` is not an object");
			goto fail;
		}
		if (get_strv(cc, "Env", &c->env, err) < 0 ||
		    get_strv(cc, "Entrypoint", &c->entrypoint, err) < 0 ||
		    get_strv(cc, "Cmd", &c->cmd, err) < 0 ||
		    get_str(cc, "WorkingDir", &wd, "config", err) < 0 ||
		    get_str(cc, "User", &user, "config", err) < 0)
			goto fail;
		c->working_dir = wd && *wd ? xstrdup(wd) : NULL;
		c->user = user && *user ? xstrdup(user) : NULL;
	}
	return 0;
fail:
	ic_config_free(c);
	return -1;
}

void ic_index_free(struct ic_index *idx)
{
	if (!idx)
		return;
	for (size_t i = 0; i < idx->n; i++)
		descriptor_free(&idx->manifests[i]);
	free(idx->manifests);
	memset(idx, 0, sizeof(*idx));
}

void ic_manifest_free(struct ic_manifest *m)
{
	if (!m)
		return;
	free(m->media_type);
	descriptor_free(&m->config);
	for (size_t i = 0; i < m->n_layers; i++)
		descriptor_free(&m->layers[i]);
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

void ic_config_free(struct ic_config *c)
{
	if (!c)
		return;
	platform_free(&c->platform);
	free(c->diff_ids);
	strv_free(c->env);
	strv_free(c->entrypoint);
	strv_free(c->cmd);
	free(c->working_dir);
	free(c->user);
	memset(c, 0, sizeof(*c));
}

/* Aliases from uname and Debian architecture names to OCI's GOARCH names. */
static const char *arch_normalize(const char *arch, const char **variant)
{
	if (strcmp(arch, "x86_64") == 0 || strcmp(arch, "x86-64") == 0)
		return "amd64";
	if (strcmp(arch, "aarch64") == 0)
		return "arm64";
	if (strcmp(arch, "armhf") == 0) {
		if (!*variant)
			*variant = "v7";
		return "arm";
	}
	if (strcmp(arch, "armel") == 0) {
		if (!*variant)
			*variant = "v6";
		return "arm";
	}
	if (strcmp(arch, "i686") == 0 || strcmp(arch, "i386") == 0)
		return "386";
	return arch;
}

/* The variant an entry stands for when it names none (containerd's defaults). */
static const char *default_variant(const char *arch)
{
	if (strcmp(arch, "arm64") == 0)
		return "v8";
	if (strcmp(arch, "arm") == 0)
		return "v7";
	return NULL;
}

static char *platform_string(const struct ic_platform *p)
{
	if (p->variant)
		return xasprintf("%s/%s/%s", p->os, p->arch, p->variant);
	return xasprintf("%s/%s", p->os, p->arch);
}

int ic_index_select(const struct ic_index *idx, const char *platform,
		    const struct ic_descriptor **out, struct kal_err **err)
{
	_cleanup_free_ char *copy = xstrdup(platform ? platform : "linux/amd64");
	_cleanup_free_ char *avail = NULL;
	char *os, *arch, *variant, *save = NULL;
	const char *want_variant, *want_arch;
	const struct ic_descriptor *best = NULL;
	int best_score = 0;

	*out = NULL;
	os = strtok_r(copy, "/", &save);
	arch = strtok_r(NULL, "/", &save);
	variant = strtok_r(NULL, "/", &save);
	if (!os || !arch || strtok_r(NULL, "/", &save))
		return kal_err_set(err, EINVAL, "invalid platform `%s`: want os/arch[/variant]",
				   platform);
	want_variant = variant;
	want_arch = arch_normalize(arch, &want_variant);

	for (size_t i = 0; i < idx->n; i++) {
		const struct ic_descriptor *d = &idx->manifests[i];
		const char *dv;
		enum ic_doc_kind kind;
		int score;

		if (!d->platform.os || !d->platform.arch ||
		    ic_doc_kind_of(d->media_type, &kind, NULL) < 0 || kind != IC_DOC_MANIFEST)
			continue;
		if (strcmp(d->platform.os, os) != 0 || strcmp(d->platform.arch, want_arch) != 0)
			continue;
		dv = d->platform.variant ? d->platform.variant : default_variant(want_arch);
		if (want_variant || default_variant(want_arch)) {
			/* variant asked for (or implied, arm64 -> v8): it must agree */
			const char *wv = want_variant ? want_variant : default_variant(want_arch);

			if (!dv || strcmp(dv, wv) != 0)
				continue;
			score = 2;
		} else {
			/* amd64 and friends ignore variants unless asked: prefer the plain one */
			score = d->platform.variant ? 1 : 2;
		}
		if (score > best_score) {
			best = d;
			best_score = score;
		}
	}
	if (best) {
		*out = best;
		return 0;
	}

	for (size_t i = 0; i < idx->n; i++) {
		const struct ic_descriptor *d = &idx->manifests[i];
		_cleanup_free_ char *p = NULL;
		enum ic_doc_kind kind;

		if (!d->platform.os || !d->platform.arch ||
		    strcmp(d->platform.os, "unknown") == 0 ||
		    ic_doc_kind_of(d->media_type, &kind, NULL) < 0 || kind != IC_DOC_MANIFEST)
			continue;
		p = platform_string(&d->platform);
		if (avail) {
			/* list each platform once */
			size_t pl = strlen(p);
			bool dup = false;

			for (const char *q = avail; (q = strstr(q, p)); q += pl)
				if ((q == avail || q[-1] == ' ') && (q[pl] == ',' || q[pl] == '\0'))
					dup = true;
			if (!dup) {
				char *n = xasprintf("%s, %s", avail, p);

				free(avail);
				avail = n;
			}
		} else {
			avail = steal_ptr(&p);
		}
	}
	return kal_err_set(err, ENOENT, "no manifest for platform %s in index (available: %s)",
			   platform ? platform : "linux/amd64", avail ? avail : "none");
}
