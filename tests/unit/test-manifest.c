// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Manifest, index and config parsing: the documents real registries serve
 * parse, every rejected shape fails with its exact message, and platform
 * selection follows containerd's variant rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imagecache/manifest.h"
#include "lib/cleanup.h"
#include "lib/err.h"
#include "lib/xalloc.h"

#define DA "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DC "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

#define OCI_MANIFEST                                                                               \
	"{\"schemaVersion\":2,\"mediaType\":\"" IC_MT_OCI_MANIFEST "\",\"config\":{"               \
	"\"mediaType\":\"" IC_MT_OCI_CONFIG "\",\"digest\":\"" DA "\",\"size\":1234},"             \
	"\"layers\":[{\"mediaType\":\"" IC_MT_OCI_LAYER_GZIP "\",\"digest\":\"" DB "\","           \
	"\"size\":5678},{\"mediaType\":\"" IC_MT_OCI_LAYER_ZSTD "\",\"digest\":\"" DC "\","        \
	"\"size\":0}]}"

#define DOCKER_MANIFEST                                                                            \
	"{\"schemaVersion\":2,\"mediaType\":\"" IC_MT_DOCKER_MANIFEST "\",\"config\":{"            \
	"\"mediaType\":\"" IC_MT_DOCKER_CONFIG "\",\"digest\":\"" DA "\",\"size\":1},"             \
	"\"layers\":[{\"mediaType\":\"" IC_MT_DOCKER_LAYER_GZIP "\",\"digest\":\"" DB "\","        \
	"\"size\":2}]}"

static char *must_fail_manifest(const char *doc, const char *mt)
{
	struct ic_manifest m;
	struct kal_err *err = NULL;
	char *msg;

	if (ic_manifest_parse(doc, strlen(doc), mt, &m, &err) == 0)
		fail_msg("manifest parsed but should not: %s", doc);
	assert_null(m.layers);
	assert_null(m.media_type);
	msg = xstrdup(err->msg);
	kal_err_free(err);
	return msg;
}

#define ASSERT_MANIFEST_ERR(doc, mt, want)                                                         \
	do {                                                                                       \
		_cleanup_free_ char *_m = must_fail_manifest(doc, mt);                             \
		assert_string_equal(_m, want);                                                     \
	} while (0)

static void test_manifest_ok(void **state)
{
	struct ic_manifest m;
	struct kal_err *err = NULL;
	enum ic_compression comp;
	/* an OCI manifest without mediaType: the transport's word counts */
	const char *nomt = "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" IC_MT_OCI_CONFIG
			   "\",\"digest\":\"" DA "\",\"size\":1},\"layers\":[]}";

	(void)state;
	assert_int_equal(
	    ic_manifest_parse(OCI_MANIFEST, strlen(OCI_MANIFEST), IC_MT_OCI_MANIFEST, &m, &err), 0);
	assert_string_equal(m.media_type, IC_MT_OCI_MANIFEST);
	assert_string_equal(m.config.digest.hex, DA + 7);
	assert_int_equal(m.config.size, 1234);
	assert_int_equal(m.n_layers, 2);
	assert_int_equal(m.layers[0].size, 5678);
	assert_string_equal(m.layers[1].digest.hex, DC + 7);
	assert_int_equal(ic_layer_compression(m.layers[0].media_type, &comp, &err), 0);
	assert_int_equal(comp, IC_COMP_GZIP);
	assert_int_equal(ic_layer_compression(m.layers[1].media_type, &comp, &err), 0);
	assert_int_equal(comp, IC_COMP_ZSTD);
	ic_manifest_free(&m);

	assert_int_equal(ic_manifest_parse(DOCKER_MANIFEST, strlen(DOCKER_MANIFEST),
					   IC_MT_DOCKER_MANIFEST, &m, &err),
			 0);
	assert_string_equal(m.media_type, IC_MT_DOCKER_MANIFEST);
	ic_manifest_free(&m);

	assert_int_equal(ic_manifest_parse(nomt, strlen(nomt), IC_MT_OCI_MANIFEST, &m, &err), 0);
	assert_string_equal(m.media_type, IC_MT_OCI_MANIFEST);
	assert_int_equal(m.n_layers, 0);
	ic_manifest_free(&m);

	/* trailing whitespace is fine */
	assert_int_equal(ic_manifest_parse(OCI_MANIFEST "\n ", strlen(OCI_MANIFEST) + 2,
					   IC_MT_OCI_MANIFEST, &m, &err),
			 0);
	ic_manifest_free(&m);

	/* transport unknown (NULL): the document's own type is used */
	assert_int_equal(ic_manifest_parse(OCI_MANIFEST, strlen(OCI_MANIFEST), NULL, &m, &err), 0);
	ic_manifest_free(&m);
}

static void test_manifest_rejected(void **state)
{
	char *big;
	size_t n;

	(void)state;
	ASSERT_MANIFEST_ERR(OCI_MANIFEST, IC_MT_DOCKER_MANIFEST,
			    "manifest: media type mismatch: Content-Type `" IC_MT_DOCKER_MANIFEST
			    "` but document says `" IC_MT_OCI_MANIFEST "`");
	ASSERT_MANIFEST_ERR(OCI_MANIFEST, IC_MT_OCI_INDEX,
			    "manifest: media type mismatch: Content-Type `" IC_MT_OCI_INDEX
			    "` but document says `" IC_MT_OCI_MANIFEST "`");
	/* an index served as a manifest (CVE-2021-41190) */
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"manifests\":[]}", IC_MT_OCI_MANIFEST,
			    "manifest: document has `manifests`: it is an index, not a manifest");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"manifests\":[]}", IC_MT_OCI_INDEX,
			    "manifest: expected a manifest but media type `" IC_MT_OCI_INDEX
			    "` is an index");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}",
			    "application/vnd.docker.distribution.manifest.v1+prettyjws",
			    "manifest: docker schema1 manifests are not supported (deprecated "
			    "format; re-push the image with schema2 or OCI)");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}",
			    IC_MT_DOCKER_MANIFEST,
			    "manifest: docker schema1 manifests are not supported (deprecated "
			    "format; re-push the image with schema2 or OCI)");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":3,\"config\":{},\"layers\":[]}", IC_MT_OCI_MANIFEST,
			    "manifest: `schemaVersion` must be 2");
	ASSERT_MANIFEST_ERR("{\"config\":{},\"layers\":[]}", IC_MT_OCI_MANIFEST,
			    "manifest: `schemaVersion` must be 2");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2}", "text/html",
			    "manifest: unsupported media type `text/html`");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2}", NULL,
			    "manifest: no media type in the document or transport");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"layers\":[]}", IC_MT_OCI_MANIFEST,
			    "manifest: missing `config`");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"config\":{\"digest\":\"" DA "\",\"size\":1},"
			    "\"layers\":[]}",
			    IC_MT_OCI_MANIFEST, "manifest: config: missing `mediaType`");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.cncf."
			    "helm.config.v1+json\",\"digest\":\"" DA
			    "\",\"size\":1},\"layers\":[]}",
			    IC_MT_OCI_MANIFEST,
			    "manifest: not a container image (config media type "
			    "`application/vnd.cncf.helm.config.v1+json`)");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" IC_MT_OCI_CONFIG
			    "\",\"digest\":\"" DA "\",\"size\":1}}",
			    IC_MT_OCI_MANIFEST, "manifest: missing `layers` array");
	/* descriptors: digest, size */
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" IC_MT_OCI_CONFIG
			    "\",\"digest\":\"sha256:../../etc\",\"size\":1},\"layers\":[]}",
			    IC_MT_OCI_MANIFEST,
			    "manifest: config: invalid digest `sha256:../../etc`: want 64 "
			    "lowercase hex characters");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" IC_MT_OCI_CONFIG
			    "\",\"digest\":\"md5:abc\",\"size\":1},\"layers\":[]}",
			    IC_MT_OCI_MANIFEST,
			    "manifest: config: unsupported digest algorithm `md5`");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" IC_MT_OCI_CONFIG
			    "\",\"digest\":\"" DA "\",\"size\":-1},\"layers\":[]}",
			    IC_MT_OCI_MANIFEST, "manifest: config: `size` out of range");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" IC_MT_OCI_CONFIG
			    "\",\"digest\":\"" DA "\",\"size\":1.5},\"layers\":[]}",
			    IC_MT_OCI_MANIFEST, "manifest: config: `size` is not an integer");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" IC_MT_OCI_CONFIG
			    "\",\"digest\":\"" DA "\",\"size\":\"1\"},\"layers\":[]}",
			    IC_MT_OCI_MANIFEST, "manifest: config: `size` is not an integer");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" IC_MT_OCI_CONFIG
			    "\",\"digest\":\"" DA
			    "\",\"size\":99999999999999999999},\"layers\":[]}",
			    IC_MT_OCI_MANIFEST, "manifest: config: `size` out of range");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" IC_MT_OCI_CONFIG
			    "\",\"digest\":\"" DA "\",\"size\":30000000},\"layers\":[]}",
			    IC_MT_OCI_MANIFEST,
			    "manifest: config size 30000000 is over the limit of 20971520 bytes");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" IC_MT_OCI_CONFIG
			    "\",\"digest\":\"" DA "\"},\"layers\":[]}",
			    IC_MT_OCI_MANIFEST, "manifest: config: missing `size`");
	/* layers */
	ASSERT_MANIFEST_ERR(
	    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" IC_MT_OCI_CONFIG
	    "\",\"digest\":\"" DA "\",\"size\":1},\"layers\":[{\"mediaType\":"
	    "\"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\","
	    "\"digest\":\"" DB "\",\"size\":1}]}",
	    IC_MT_OCI_MANIFEST,
	    "manifest: layers[0]: foreign/non-distributable layers are not supported "
	    "(`application/vnd.docker.image.rootfs.foreign.diff.tar.gzip`)");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" IC_MT_OCI_CONFIG
			    "\",\"digest\":\"" DA "\",\"size\":1},\"layers\":[{\"mediaType\":"
			    "\"" IC_MT_OCI_LAYER "\",\"digest\":\"" DB "\",\"size\":1},"
			    "{\"mediaType\":\"text/plain\",\"digest\":\"" DB "\",\"size\":1}]}",
			    IC_MT_OCI_MANIFEST,
			    "manifest: layers[1]: unsupported layer media type `text/plain`");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" IC_MT_OCI_CONFIG
			    "\",\"digest\":\"" DA "\",\"size\":1},\"layers\":[{\"digest\":\"" DB
			    "\",\"size\":1}]}",
			    IC_MT_OCI_MANIFEST, "manifest: layers[0]: missing `mediaType`");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" IC_MT_OCI_CONFIG
			    "\",\"digest\":\"" DA "\",\"size\":1},\"layers\":[7]}",
			    IC_MT_OCI_MANIFEST, "manifest: layers[0]: not an object");
	/* JSON itself */
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,", IC_MT_OCI_MANIFEST,
			    "manifest: invalid JSON: unexpected end of document");
	ASSERT_MANIFEST_ERR(OCI_MANIFEST "{}", IC_MT_OCI_MANIFEST,
			    "manifest: invalid JSON: unexpected character");
	ASSERT_MANIFEST_ERR("[1,2]", IC_MT_OCI_MANIFEST, "manifest: not a JSON object");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"mediaType\":7}", IC_MT_OCI_MANIFEST,
			    "manifest: `mediaType` is not a string");
	ASSERT_MANIFEST_ERR("{\"schemaVersion\":2,\"mediaType\":\"" IC_MT_OCI_MANIFEST
			    "\\u0000x\"}",
			    IC_MT_OCI_MANIFEST, "manifest: `mediaType` contains a NUL character");
	ASSERT_MANIFEST_ERR("{\"a\" 1}", IC_MT_OCI_MANIFEST,
			    "manifest: invalid JSON: object property name separator ':' expected");

	/* more than IC_MAX_LAYERS layers */
	n = 64 + (IC_MAX_LAYERS + 1) * 160;
	big = xmalloc(n);
	{
		size_t o = (size_t)snprintf(big, n,
					    "{\"schemaVersion\":2,\"config\":{\"mediaType\":"
					    "\"" IC_MT_OCI_CONFIG "\",\"digest\":\"" DA
					    "\",\"size\":1},\"layers\":[");

		for (int i = 0; i <= IC_MAX_LAYERS; i++)
			o += (size_t)snprintf(big + o, n - o,
					      "%s{\"mediaType\":\"" IC_MT_OCI_LAYER
					      "\",\"digest\":\"" DB "\",\"size\":1}",
					      i ? "," : "");
		snprintf(big + o, n - o, "]}");
	}
	ASSERT_MANIFEST_ERR(big, IC_MT_OCI_MANIFEST,
			    "manifest: 257 layers, more than the limit of 256");
	free(big);

	/* deeper nesting than the parser allows */
	big = xzalloc(2 * 200 + 64);
	strcpy(big, "{\"schemaVersion\":2,\"x\":");
	for (int i = 0; i < 200; i++)
		strcat(big, "[");
	for (int i = 0; i < 200; i++)
		strcat(big, "]");
	strcat(big, "}");
	ASSERT_MANIFEST_ERR(big, IC_MT_OCI_MANIFEST, "manifest: invalid JSON: nesting too deep");
	free(big);
}

static void test_manifest_size_cap(void **state)
{
	struct ic_manifest m;
	struct kal_err *err = NULL;
	size_t n = IC_MAX_MANIFEST_SIZE + 1;
	char *big = xmalloc(n);

	(void)state;
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	assert_int_equal(ic_manifest_parse(big, n, IC_MT_OCI_MANIFEST, &m, &err), -1);
	assert_string_equal(err->msg, "manifest: larger than 4194304 bytes");
	kal_err_clear(&err);
	free(big);
}

#define INDEX_HEAD "{\"schemaVersion\":2,\"mediaType\":\"" IC_MT_OCI_INDEX "\",\"manifests\":["
#define ENTRY(d, plat)                                                                             \
	"{\"mediaType\":\"" IC_MT_OCI_MANIFEST "\",\"digest\":\"" d "\",\"size\":10,"              \
	"\"platform\":" plat "}"

static const char multi_index[] =
    INDEX_HEAD ENTRY(DA, "{\"os\":\"linux\",\"architecture\":\"amd64\"}") "," ENTRY(
	DB,
	"{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}") "," ENTRY(DC,
										      "{\"os\":"
										      "\"unknown\","
										      "\"architectu"
										      "re"
										      "\":"
										      "\"unknown\""
										      "}") "]}";

static void select_expect(const struct ic_index *idx, const char *plat, const char *want_digest)
{
	const struct ic_descriptor *d;
	struct kal_err *err = NULL;

	if (ic_index_select(idx, plat, &d, &err) < 0)
		fail_msg("select %s: %s", plat ? plat : "(default)", err->msg);
	assert_string_equal(d->digest.hex, want_digest + 7);
}

static void select_fail(const struct ic_index *idx, const char *plat, const char *want)
{
	const struct ic_descriptor *d;
	struct kal_err *err = NULL;

	assert_int_equal(ic_index_select(idx, plat, &d, &err), -1);
	assert_null(d);
	assert_string_equal(err->msg, want);
	kal_err_free(err);
}

static void test_index_select(void **state)
{
	struct ic_index idx;
	struct kal_err *err = NULL;
	const char *variants = INDEX_HEAD ENTRY(
	    DA, "{\"os\":\"linux\",\"architecture\":\"amd64\",\"variant\":"
		"\"v3\"}") "," ENTRY(DB, "{\"os\":\"linux\",\"architecture\":"
					 "\"amd64\"}") "," ENTRY(DC, "{\"os\":"
								     "\"linux\","
								     "\"architectu"
								     "re\":"
								     "\"arm64\"}") "]}";
	const char *arm = INDEX_HEAD
	    ENTRY(DA, "{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v6\"}") "," ENTRY(
		DB, "{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}") "]}";

	(void)state;
	assert_int_equal(
	    ic_index_parse(multi_index, strlen(multi_index), IC_MT_OCI_INDEX, &idx, &err), 0);
	assert_int_equal(idx.n, 3);
	assert_string_equal(idx.manifests[1].platform.variant, "v8");
	select_expect(&idx, NULL, DA);
	select_expect(&idx, "linux/amd64", DA);
	select_expect(&idx, "linux/x86_64", DA);
	select_expect(&idx, "linux/arm64", DB);
	select_expect(&idx, "linux/arm64/v8", DB);
	select_expect(&idx, "linux/aarch64", DB);
	select_fail(&idx, "linux/riscv64",
		    "no manifest for platform linux/riscv64 in index (available: linux/amd64, "
		    "linux/arm64/v8)");
	select_fail(&idx, "linux/arm64/v9",
		    "no manifest for platform linux/arm64/v9 in index (available: linux/amd64, "
		    "linux/arm64/v8)");
	select_fail(&idx, "windows/amd64",
		    "no manifest for platform windows/amd64 in index (available: linux/amd64, "
		    "linux/arm64/v8)");
	select_fail(&idx, "linux", "invalid platform `linux`: want os/arch[/variant]");
	select_fail(&idx, "linux/amd64/v2/x",
		    "invalid platform `linux/amd64/v2/x`: want os/arch[/variant]");
	ic_index_free(&idx);

	/* amd64 ignores variants unless asked; an entry without one is preferred */
	assert_int_equal(ic_index_parse(variants, strlen(variants), IC_MT_OCI_INDEX, &idx, &err),
			 0);
	select_expect(&idx, NULL, DB);
	select_expect(&idx, "linux/amd64/v3", DA);
	/* arm64 without a variant in the index is v8 */
	select_expect(&idx, "linux/arm64", DC);
	select_expect(&idx, "linux/arm64/v8", DC);
	ic_index_free(&idx);

	/* arm defaults to v7 */
	assert_int_equal(ic_index_parse(arm, strlen(arm), IC_MT_OCI_INDEX, &idx, &err), 0);
	select_expect(&idx, "linux/arm", DB);
	select_expect(&idx, "linux/arm/v6", DA);
	select_expect(&idx, "linux/armhf", DB);
	select_fail(&idx, "linux/amd64",
		    "no manifest for platform linux/amd64 in index (available: linux/arm/v6, "
		    "linux/arm/v7)");
	ic_index_free(&idx);
}

static void test_index_rejected(void **state)
{
	struct ic_index idx;
	struct kal_err *err = NULL;
	const struct {
		const char *doc, *mt, *msg;
	} cases[] = {
		{ multi_index, IC_MT_DOCKER_LIST,
		  "manifest: media type mismatch: Content-Type `" IC_MT_DOCKER_LIST
		  "` but document says `" IC_MT_OCI_INDEX "`" },
		{ OCI_MANIFEST, IC_MT_OCI_INDEX,
		  "manifest: media type mismatch: Content-Type `" IC_MT_OCI_INDEX
		  "` but document says `" IC_MT_OCI_MANIFEST "`" },
		{ "{\"schemaVersion\":2,\"manifests\":[],\"layers\":[]}", IC_MT_OCI_INDEX,
		  "index: document has `layers`/`config`: it is a manifest, not an index" },
		{ "{\"schemaVersion\":2}", IC_MT_OCI_INDEX, "index: missing `manifests` array" },
		{ "{\"schemaVersion\":2,\"manifests\":{}}", IC_MT_OCI_INDEX,
		  "index: missing `manifests` array" },
		{ INDEX_HEAD "{\"digest\":\"" DA "\",\"size\":1}]}", IC_MT_OCI_INDEX,
		  "index: manifests[0]: missing `mediaType`" },
		{ INDEX_HEAD ENTRY(DA, "{\"os\":\"linux\"}") "]}", IC_MT_OCI_INDEX,
		  "index: manifests[0]: missing `architecture`" },
		{ INDEX_HEAD ENTRY(DA, "\"linux/amd64\"") "]}", IC_MT_OCI_INDEX,
		  "index: manifests[0]: `platform` is not an object" },
		{ INDEX_HEAD "{\"mediaType\":\"" IC_MT_OCI_MANIFEST "\",\"digest\":\"" DA
			     "\",\"size\":-5}]}",
		  IC_MT_OCI_INDEX, "index: manifests[0]: `size` out of range" },
		{ INDEX_HEAD "{\"mediaType\":\"" IC_MT_OCI_MANIFEST "\",\"digest\":\"sha256:"
			     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
			     "\"size\":5}]}",
		  IC_MT_OCI_INDEX,
		  "index: manifests[0]: invalid digest "
		  "`sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		  "AAAAAAAAAAAAAAAAAAAAAAAAA`: want 64 lowercase hex characters" },
	};
	char *big;
	size_t n, o;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (ic_index_parse(cases[i].doc, strlen(cases[i].doc), cases[i].mt, &idx, &err) ==
		    0)
			fail_msg("index %zu parsed but should not", i);
		assert_null(idx.manifests);
		assert_string_equal(err->msg, cases[i].msg);
		kal_err_clear(&err);
	}

	n = 64 + (IC_MAX_INDEX_ENTRIES + 1) * 8;
	big = xmalloc(n);
	o = (size_t)snprintf(big, n, INDEX_HEAD);
	for (int i = 0; i <= IC_MAX_INDEX_ENTRIES; i++)
		o += (size_t)snprintf(big + o, n - o, "%s{}", i ? "," : "");
	snprintf(big + o, n - o, "]}");
	assert_int_equal(ic_index_parse(big, strlen(big), IC_MT_OCI_INDEX, &idx, &err), -1);
	assert_string_equal(err->msg, "index: 1025 entries, more than the limit of 1024");
	kal_err_clear(&err);
	free(big);
}

static void test_doc_kind(void **state)
{
	enum ic_doc_kind k;
	enum ic_compression c;
	struct kal_err *err = NULL;

	(void)state;
	assert_int_equal(ic_doc_kind_of(IC_MT_DOCKER_LIST, &k, &err), 0);
	assert_int_equal(k, IC_DOC_INDEX);
	assert_int_equal(ic_doc_kind_of(IC_MT_OCI_INDEX, &k, &err), 0);
	assert_int_equal(k, IC_DOC_INDEX);
	assert_int_equal(ic_doc_kind_of(IC_MT_DOCKER_MANIFEST, &k, &err), 0);
	assert_int_equal(k, IC_DOC_MANIFEST);
	assert_int_equal(ic_doc_kind_of("application/json", &k, &err), -1);
	assert_string_equal(err->msg, "unsupported media type `application/json`");
	kal_err_clear(&err);
	assert_int_equal(ic_layer_compression(IC_MT_OCI_LAYER, &c, &err), 0);
	assert_int_equal(c, IC_COMP_NONE);
	assert_int_equal(ic_layer_compression(IC_MT_DOCKER_LAYER_GZIP, &c, &err), 0);
	assert_int_equal(c, IC_COMP_GZIP);
}

static void test_config(void **state)
{
	struct ic_config c;
	struct kal_err *err = NULL;
	const char *doc =
	    "{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\",\"config\":{"
	    "\"Env\":[\"PATH=/usr/bin\",\"A=b c\"],\"Entrypoint\":[\"/init\"],\"Cmd\":null,"
	    "\"WorkingDir\":\"/srv\",\"User\":\"1000:1000\",\"Labels\":{\"x\":\"y\"}},"
	    "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DA "\",\"" DB "\"]},"
	    "\"history\":[]}";
	const char *minimal = "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
	const struct {
		const char *doc, *msg;
	} bad[] = {
		{ "{}", "config: missing `rootfs`" },
		{ "{\"rootfs\":{\"type\":\"zfs\",\"diff_ids\":[]}}",
		  "config: rootfs type `zfs` is not `layers`" },
		{ "{\"rootfs\":{\"type\":\"layers\"}}", "config: missing `rootfs.diff_ids` array" },
		{ "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:x\"]}}",
		  "config: diff_ids[0]: invalid digest `sha256:x`: want 64 lowercase hex "
		  "characters" },
		{ "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[1]}}",
		  "config: diff_ids[0] is not a string" },
		{ "{\"config\":{\"Env\":\"A=b\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
		  "config: `Env` is not an array" },
		{ "{\"config\":{\"Cmd\":[1]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
		  "config: `Cmd[0]` is not a string" },
		{ "{\"config\":{\"User\":0},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
		  "config: `User` is not a string" },
		{ "{\"config\":[],\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
		  "config: `config` is not an object" },
		{ "{\"os\":1}", "config: `os` is not a string" },
	};

	(void)state;
	assert_int_equal(ic_config_parse(doc, strlen(doc), &c, &err), 0);
	assert_string_equal(c.platform.os, "linux");
	assert_string_equal(c.platform.arch, "arm64");
	assert_string_equal(c.platform.variant, "v8");
	assert_int_equal(c.n_diff_ids, 2);
	assert_string_equal(c.diff_ids[1].hex, DB + 7);
	assert_string_equal(c.env[0], "PATH=/usr/bin");
	assert_string_equal(c.env[1], "A=b c");
	assert_null(c.env[2]);
	assert_string_equal(c.entrypoint[0], "/init");
	assert_null(c.entrypoint[1]);
	assert_null(c.cmd);
	assert_string_equal(c.working_dir, "/srv");
	assert_string_equal(c.user, "1000:1000");
	ic_config_free(&c);

	assert_int_equal(ic_config_parse(minimal, strlen(minimal), &c, &err), 0);
	assert_null(c.env);
	assert_null(c.working_dir);
	assert_int_equal(c.n_diff_ids, 0);
	ic_config_free(&c);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ic_config_parse(bad[i].doc, strlen(bad[i].doc), &c, &err) == 0)
			fail_msg("config %zu parsed but should not", i);
		assert_string_equal(err->msg, bad[i].msg);
		assert_null(c.env);
		assert_null(c.diff_ids);
		kal_err_clear(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifest_ok),
		cmocka_unit_test(test_manifest_rejected),
		cmocka_unit_test(test_manifest_size_cap),
		cmocka_unit_test(test_index_select),
		cmocka_unit_test(test_index_rejected),
		cmocka_unit_test(test_doc_kind),
		cmocka_unit_test(test_config),
	};

	return cmocka_run_group_tests_name("manifest", tests, NULL, NULL);
}
