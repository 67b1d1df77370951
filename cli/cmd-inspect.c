// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal inspect REF: one cached image as pretty JSON (name, digest, mediaType,
 * platform, the parsed config document, and per layer its blob and EROFS
 * file).  Reads the config blob (digest-checked) and the layer sidecars.
 */
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "../imagecache/store.h"
#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "cmd.h"

static struct json_object *jdigest(const struct ic_digest *d)
{
	char b[IC_DIGEST_STR_LEN + 1];

	return json_object_new_string(ic_digest_str(d, b));
}

static int inspect_one(struct ic_store *s, const char *ref, struct json_object *arr,
		       struct kal_err **err)
{
	struct ic_store_image img;
	_cleanup_free_ char *cfg = NULL;
	struct json_object *o, *layers, *cfgj;
	size_t len;

	if (ic_store_image_resolve(s, ref, &img, err) < 0)
		return -1;
	if (ic_store_blob_read(s, &img.config, IC_MAX_CONFIG_SIZE, &cfg, &len, err) < 0) {
		ic_store_image_clear(&img);
		return kal_err_wrap(err, "inspect `%s`: config", ref);
	}
	cfgj = json_tokener_parse(cfg);
	if (!cfgj) {
		ic_store_image_clear(&img);
		return kal_err_set(err, 0, "inspect `%s`: config is not JSON", ref);
	}
	o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(img.name));
	json_object_object_add(o, "digest", jdigest(&img.digest));
	if (img.has_index)
		json_object_object_add(o, "index", jdigest(&img.index));
	json_object_object_add(o, "mediaType", json_object_new_string(img.media_type));
	json_object_object_add(o, "platform",
			       img.platform ? json_object_new_string(img.platform) : NULL);
	json_object_object_add(o, "created", json_object_new_int64(img.created));
	json_object_object_add(o, "configDigest", jdigest(&img.config));
	json_object_object_add(o, "config", cfgj);
	layers = json_object_new_array();
	for (size_t i = 0; i < img.n_layers; i++) {
		const struct ic_store_layer *l = &img.layers[i];
		struct json_object *lo = json_object_new_object(), *eo = json_object_new_object();
		struct ic_store_layer_info info;
		_cleanup_free_ char *path = ic_store_layer_path(s, &l->diff_id);
		bool have = ic_store_layer_has(s, &l->diff_id, &info);

		json_object_object_add(lo, "digest", jdigest(&l->digest));
		json_object_object_add(lo, "diffId", jdigest(&l->diff_id));
		json_object_object_add(lo, "mediaType", json_object_new_string(l->media_type));
		json_object_object_add(lo, "size", json_object_new_int64((int64_t)l->size));
		json_object_object_add(eo, "path", json_object_new_string(path));
		json_object_object_add(eo, "present", json_object_new_boolean(have));
		json_object_object_add(
		    eo, "size", json_object_new_int64((int64_t)(have ? info.size : l->erofs_size)));
		json_object_object_add(eo, "sha256", have ? jdigest(&info.erofs_sha256) : NULL);
		json_object_object_add(lo, "erofs", eo);
		json_object_array_add(layers, lo);
	}
	json_object_object_add(o, "layers", layers);
	json_object_array_add(arr, o);
	ic_store_image_clear(&img);
	return 0;
}

static int inspect_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct ic_store *s = NULL;
	struct json_object *arr;
	const char *arg;
	int c, rc = 0;

	while ((c = kal_cmd_getopt(&kal_cmd_inspect, argc, argv, &arg, err)) != -1)
		return -1;
	if (argc - kal_cmd_optind < 1)
		return kal_cmd_usage_error(&kal_cmd_inspect, err, "requires at least 1 argument");
	if (ic_store_open(ctx->home, &s, err) < 0)
		return -1;
	arr = json_object_new_array();
	for (int i = kal_cmd_optind; i < argc && rc == 0; i++)
		rc = inspect_one(s, argv[i], arr, err);
	if (rc == 0) {
		/* one image: the object itself; several: an array */
		struct json_object *out =
		    argc - kal_cmd_optind == 1 ? json_object_array_get_idx(arr, 0) : arr;

		printf("%s\n", json_object_to_json_string_ext(
				   out, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
					    JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	json_object_put(arr);
	ic_store_close(s);
	return rc;
}

const struct kal_cmd kal_cmd_inspect = {
	.name = "inspect",
	.summary = "show a cached image as JSON",
	.usage = "REF...",
	.description =
	    "Print the cached image as a JSON object (an array for several REFs): name, "
	    "digest, mediaType, platform, created, configDigest, config (the image config "
	    "document), and layers: [{digest, diffId, mediaType, size, erofs: {path, "
	    "present, size, sha256}}].",
	.args = KAL_ARG_IMAGE,
	.exec = inspect_exec,
};
