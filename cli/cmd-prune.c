// SPDX-License-Identifier: GPL-2.0-or-later
/* kal prune: delete blobs and layers no image references, and stale temp files. */
#include <stdio.h>

#include "../imagecache/store.h"
#include "../lib/err.h"
#include "cmd.h"
#include "util.h"

static void prune_report(void *arg, const char *event, const char *path, const char *detail,
			 uint64_t bytes)
{
	bool *quiet = arg;
	char size[32];

	if (*quiet)
		return;
	kal_format_size(bytes, size, sizeof(size));
	printf("%s: %s (%s)\n", event, path, size);
}

static const struct kal_opt prune_opts[] = {
	{ "quiet", 'q', NULL, "print only the total", 0 },
	{ 0 },
};

static int prune_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct ic_store *s = NULL;
	bool quiet = false;
	const char *arg;
	uint64_t freed = 0;
	char size[32];
	int c, rc;

	while ((c = kal_cmd_getopt(&kal_cmd_prune, argc, argv, &arg, err)) != -1) {
		if (c != 'q')
			return -1;
		quiet = true;
	}
	if (argc != kal_cmd_optind)
		return kal_cmd_usage_error(&kal_cmd_prune, err, "takes no arguments");
	if (ic_store_open(ctx->home, &s, err) < 0)
		return -1;
	rc = ic_store_lock_exclusive(s, err);
	if (rc == 0)
		rc = ic_store_prune(s, prune_report, &quiet, &freed, err);
	ic_store_close(s);
	if (rc < 0)
		return kal_err_wrap(err, "prune");
	kal_format_size(freed, size, sizeof(size));
	printf("freed %s\n", size);
	return 0;
}

const struct kal_cmd kal_cmd_prune = {
	.name = "prune",
	.summary = "delete cached objects no image uses",
	.usage = "[-q]",
	.description = "Delete every blob and EROFS layer that no image record references, and "
		       "temporary files left by interrupted pulls. Prints `deleted: PATH (SIZE)` "
		       "per object (paths relative to $KAL_HOME), then `freed SIZE`. Waits for "
		       "running pulls to finish first.",
	.opts = prune_opts,
	.exec = prune_exec,
};
