// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal images [-q] [--format json]: the cached images, one record file each
 * (store.h), so listing never opens a manifest or an EROFS file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "../imagecache/ref.h"
#include "../imagecache/store.h"
#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "cmd.h"
#include "util.h"

enum { OPT_FORMAT = 256 };

static const struct kal_opt images_opts[] = {
	{ "quiet", 'q', NULL, "print only the canonical names", 0 },
	{ "format", 0, "FORMAT", "`table` (default) or `json`", OPT_FORMAT },
	{ 0 },
};

/* Split a canonical name into the familiar repository and the tag ("<none>" for digests). */
static void split_name(const char *name, char **repo, char **tag)
{
	struct ic_ref r = { 0 };
	struct kal_err *e = NULL;

	if (ic_ref_parse(name, &r, &e) < 0) {
		kal_err_free(e);
		*repo = xstrdup(name);
		*tag = xstrdup("<none>");
		return;
	}
	char *fam = ic_ref_familiar(&r);
	char *cut = strchr(fam, '@');

	if (cut)
		*cut = '\0';
	if (r.tag && !r.has_digest) {
		size_t fl = strlen(fam), tl = strlen(r.tag);

		if (fl > tl && fam[fl - tl - 1] == ':' && strcmp(fam + fl - tl, r.tag) == 0)
			fam[fl - tl - 1] = '\0';
	} else if (r.tag) {
		char *colon = strrchr(fam, ':');
		char *slash = strrchr(fam, '/');

		if (colon && (!slash || colon > slash) && strcmp(colon + 1, r.tag) == 0)
			*colon = '\0';
	}
	*repo = fam;
	*tag = xstrdup(r.tag ? r.tag : "<none>");
	ic_ref_free(&r);
}

static uint64_t image_size(const struct ic_store_image *img)
{
	uint64_t n = 0;

	for (size_t i = 0; i < img->n_layers; i++)
		n += img->layers[i].erofs_size;
	return n;
}

static int images_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct ic_store *s = NULL;
	struct ic_store_image *imgs = NULL;
	size_t n = 0;
	bool quiet = false, json = false;
	const char *arg;
	int c;

	while ((c = kal_cmd_getopt(&kal_cmd_images, argc, argv, &arg, err)) != -1) {
		switch (c) {
		case 'q':
			quiet = true;
			break;
		case OPT_FORMAT:
			if (strcmp(arg, "json") == 0)
				json = true;
			else if (strcmp(arg, "table"))
				return kal_cmd_usage_error(&kal_cmd_images, err,
							   "unknown format `%s`", arg);
			break;
		default:
			return -1;
		}
	}
	if (argc != kal_cmd_optind)
		return kal_cmd_usage_error(&kal_cmd_images, err, "takes no arguments");
	if (ic_store_open(ctx->home, &s, err) < 0)
		return -1;
	if (ic_store_image_list(s, &imgs, &n, err) < 0) {
		ic_store_close(s);
		return -1;
	}
	if (json) {
		struct json_object *arr = json_object_new_array();

		for (size_t i = 0; i < n; i++) {
			struct json_object *o = json_object_new_object();
			_cleanup_free_ char *repo = NULL, *tag = NULL;
			char ds[IC_DIGEST_STR_LEN + 1];

			split_name(imgs[i].name, &repo, &tag);
			json_object_object_add(o, "name", json_object_new_string(imgs[i].name));
			json_object_object_add(o, "repository", json_object_new_string(repo));
			json_object_object_add(o, "tag", json_object_new_string(tag));
			json_object_object_add(
			    o, "digest",
			    json_object_new_string(ic_digest_str(&imgs[i].digest, ds)));
			json_object_object_add(o, "layers",
					       json_object_new_int64((int64_t)imgs[i].n_layers));
			json_object_object_add(
			    o, "size", json_object_new_int64((int64_t)image_size(&imgs[i])));
			json_object_object_add(o, "created",
					       json_object_new_int64(imgs[i].created));
			json_object_array_add(arr, o);
		}
		printf("%s\n", json_object_to_json_string_ext(
				   arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
					    JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
	} else if (quiet) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", imgs[i].name);
	} else {
		size_t wr = strlen("REPOSITORY"), wt = strlen("TAG");
		char **repos = xcalloc(n + 1, sizeof(char *)),
		     **tags = xcalloc(n + 1, sizeof(char *));

		for (size_t i = 0; i < n; i++) {
			split_name(imgs[i].name, &repos[i], &tags[i]);
			if (strlen(repos[i]) > wr)
				wr = strlen(repos[i]);
			if (strlen(tags[i]) > wt)
				wt = strlen(tags[i]);
		}
		printf("%-*s  %-*s  %-12s  %6s  %s\n", (int)wr, "REPOSITORY", (int)wt, "TAG",
		       "DIGEST", "LAYERS", "SIZE");
		for (size_t i = 0; i < n; i++) {
			char size[32];

			kal_format_size(image_size(&imgs[i]), size, sizeof(size));
			printf("%-*s  %-*s  %.12s  %6zu  %s\n", (int)wr, repos[i], (int)wt, tags[i],
			       imgs[i].digest.hex, imgs[i].n_layers, size);
			free(repos[i]);
			free(tags[i]);
		}
		free(repos);
		free(tags);
	}
	ic_store_image_list_free(imgs, n);
	ic_store_close(s);
	return 0;
}

const struct kal_cmd kal_cmd_images = {
	.name = "images",
	.summary = "list cached images",
	.usage = "[-q] [--format json]",
	.description =
	    "List the images in the cache: REPOSITORY, TAG, DIGEST (first 12 hex digits of "
	    "the manifest digest), LAYERS and SIZE (sum of the EROFS layer images). "
	    "-q prints only canonical names; --format json prints an array of objects "
	    "with name, repository, tag, digest, layers, size (bytes) and created.",
	.opts = images_opts,
	.exec = images_exec,
};
