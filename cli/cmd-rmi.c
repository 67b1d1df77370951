// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal rmi REF...: drop name records.  Objects stay until `kal prune`, so a
 * VM that is using the layers keeps working.
 */
#include <stdio.h>

#include "../imagecache/store.h"
#include "../lib/err.h"
#include "cmd.h"

static int rmi_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct ic_store *s = NULL;
	const char *arg;
	int c, rc = 0;

	while ((c = kal_cmd_getopt(&kal_cmd_rmi, argc, argv, &arg, err)) != -1)
		return -1;
	if (argc - kal_cmd_optind < 1)
		return kal_cmd_usage_error(&kal_cmd_rmi, err, "requires at least 1 argument");
	if (ic_store_open(ctx->home, &s, err) < 0)
		return -1;
	for (int i = kal_cmd_optind; i < argc && rc == 0; i++) {
		struct ic_store_image img;

		if (ic_store_image_resolve(s, argv[i], &img, err) < 0) {
			rc = -1;
			break;
		}
		if (ic_store_image_remove(s, img.name, err) < 0) {
			kal_err_wrap(err, "rmi `%s`", argv[i]);
			rc = -1;
		} else {
			printf("untagged: %s\n", img.name);
		}
		ic_store_image_clear(&img);
	}
	ic_store_close(s);
	return rc;
}

const struct kal_cmd kal_cmd_rmi = {
	.name = "rmi",
	.summary = "remove cached images by name",
	.usage = "REF...",
	.description = "Remove the name records of the given images (any form `kal images` shows: "
		       "short or canonical name, digest, or a unique digest prefix), printing "
		       "`untagged: NAME` for each. Blobs and layers stay until `kal prune`.",
	.args = KAL_ARG_IMAGE,
	.exec = rmi_exec,
};
