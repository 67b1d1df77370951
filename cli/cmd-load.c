// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal load [--name NAME] [--platform P] PATH: import an OCI layout directory
 * or a docker-save tarball.  One stdout line per image, the same shape as
 * kal pull's: `NAME: loaded sha256:HEX (N layers, SIZE)`.
 */
#include <stdio.h>

#include "../imagecache/load.h"
#include "../lib/err.h"
#include "cmd.h"
#include "util.h"

enum { OPT_NAME = 256, OPT_PLATFORM };

static const struct kal_opt load_opts[] = {
	{ "name", 0, "NAME", "name the image (input with exactly one image)", OPT_NAME },
	{ "platform", 0, "OS/ARCH[/VARIANT]", "platform to pick from a multi-platform layout",
	  OPT_PLATFORM },
	{ "quiet", 'q', NULL, "print nothing but errors", 0 },
	{ 0 },
};

static int load_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct ic_load_opts opts = { 0 };
	struct ic_load_result *res = NULL;
	size_t n = 0;
	bool quiet = ctx->quiet;
	const char *arg;
	int c;

	while ((c = kal_cmd_getopt(&kal_cmd_load, argc, argv, &arg, err)) != -1) {
		switch (c) {
		case OPT_NAME:
			opts.name = arg;
			break;
		case OPT_PLATFORM:
			opts.platform = arg;
			break;
		case 'q':
			quiet = true;
			break;
		default:
			return -1;
		}
	}
	if (argc - kal_cmd_optind != 1)
		return kal_cmd_usage_error(&kal_cmd_load, err, "requires exactly 1 argument");
	if (ic_load(ctx->home, argv[kal_cmd_optind], &opts, &res, &n, err) < 0)
		return kal_err_wrap(err, "load `%s`", argv[kal_cmd_optind]);
	for (size_t i = 0; i < n && !quiet; i++) {
		char ds[IC_DIGEST_STR_LEN + 1], size[32];

		kal_format_size(res[i].erofs_bytes, size, sizeof(size));
		printf("%s: loaded %s (%zu layer%s, %s)\n", res[i].name,
		       ic_digest_str(&res[i].digest, ds), res[i].n_layers,
		       res[i].n_layers == 1 ? "" : "s", size);
	}
	ic_load_results_free(res, n);
	return 0;
}

const struct kal_cmd kal_cmd_load = {
	.name = "load",
	.summary = "import an OCI layout directory or a docker-save tarball",
	.usage = "[-q] [--name NAME] [--platform OS/ARCH[/VARIANT]] PATH",
	.description =
	    "Import the images in PATH, an OCI image layout directory (oci-layout, index.json, "
	    "blobs/) or a `docker save` tarball (possibly compressed), verifying every blob and "
	    "each layer's diff_id as `kal pull` does. Names come from the layout's "
	    "`org.opencontainers.image.ref.name` annotations (a bare tag is prefixed with the "
	    "directory name) or the tarball's RepoTags; --name overrides them for input with one "
	    "image. Prints `NAME: loaded sha256:HEX (N layers, SIZE)` per name.",
	.opts = load_opts,
	.args = KAL_ARG_FILE,
	.exec = load_exec,
};
