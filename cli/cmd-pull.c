// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal pull [-q] [--platform OS/ARCH[/VARIANT]] [--insecure] [--offline] REF
 * Output contract (stdout, one line, stable for scripts):
 *   <canonical name>: pulled sha256:<manifest hex> (<N> layers, <EROFS size>)
 *   <canonical name>: up to date sha256:<manifest hex> (<N> layers, <EROFS size>)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../imagecache/pull.h"
#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "cmd.h"
#include "progress.h"
#include "util.h"

enum { OPT_PLATFORM = 256, OPT_INSECURE, OPT_OFFLINE };

static const struct kal_opt pull_opts[] = {
	{ "quiet", 'q', NULL, "print nothing but errors", 0 },
	{ "platform", 0, "OS/ARCH[/VARIANT]",
	  "platform to pick from a multi-arch image (default linux/amd64)", OPT_PLATFORM },
	{ "insecure", 0, NULL, "allow plain http to a registry that is not on loopback",
	  OPT_INSECURE },
	{ "offline", 0, NULL, "make no request: succeed only if the image is cached", OPT_OFFLINE },
	{ 0 },
};

static int pull_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct ic_pull_opts opts = { 0 };
	struct ic_pull_result res;
	struct kal_progress *prog;
	const char *arg;
	bool quiet = ctx->quiet;
	char size[32];
	int c, rc;

	while ((c = kal_cmd_getopt(&kal_cmd_pull, argc, argv, &arg, err)) != -1) {
		switch (c) {
		case 'q':
			quiet = true;
			break;
		case OPT_PLATFORM:
			opts.platform = arg;
			break;
		case OPT_INSECURE:
			opts.insecure = true;
			break;
		case OPT_OFFLINE:
			opts.offline = true;
			break;
		default:
			return -1;
		}
	}
	if (argc - kal_cmd_optind != 1)
		return kal_cmd_usage_error(&kal_cmd_pull, err, "requires exactly 1 argument");

	prog = kal_progress_new(stderr, ctx->tty_err && !quiet);
	opts.progress = &kal_progress_ops;
	opts.progress_arg = prog;
	rc = ic_pull(ctx->home, argv[kal_cmd_optind], &opts, &res, err);
	kal_progress_free(prog);
	if (rc < 0)
		return kal_err_wrap(err, "pull `%s`", argv[kal_cmd_optind]);
	if (!quiet) {
		char ds[IC_DIGEST_STR_LEN + 1];

		kal_format_size(res.erofs_bytes, size, sizeof(size));
		printf("%s: %s %s (%zu layer%s, %s)\n", res.name,
		       res.up_to_date ? "up to date" : "pulled", ic_digest_str(&res.digest, ds),
		       res.n_layers, res.n_layers == 1 ? "" : "s", size);
	}
	ic_pull_result_clear(&res);
	return 0;
}

const struct kal_cmd kal_cmd_pull = {
	.name = "pull",
	.summary = "download an image and convert its layers to EROFS",
	.usage = "[-q] [--platform OS/ARCH[/VARIANT]] [--insecure] [--offline] REF",
	.description =
	    "Fetch REF (`debian`, `debian:12`, `host:port/repo:tag`, `repo@sha256:...`) from its "
	    "registry, verify every blob (size, then sha256, then each layer's diff_id), and "
	    "store each layer once as a 2 MiB aligned EROFS image under $KAL_HOME. Layers "
	    "already cached are neither downloaded nor converted; an unchanged cached image "
	    "costs one manifest request. On a terminal, per-layer progress is drawn on stderr. "
	    "On success stdout gets one line, `NAME: pulled sha256:HEX (N layers, SIZE)` or "
	    "`NAME: up to date sha256:HEX (N layers, SIZE)`, where SIZE is the EROFS size.",
	.opts = pull_opts,
	.args = KAL_ARG_IMAGE,
	.exec = pull_exec,
};
