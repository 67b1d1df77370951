// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal cache verify [--delete] | kal cache path: integrity check of the store
 * (ostree fsck analogue, reliability.md G4) and where it lives.
 */
#include <stdio.h>
#include <string.h>

#include "../imagecache/store.h"
#include "../lib/err.h"
#include "cmd.h"
#include "util.h"

enum { OPT_DELETE = 256 };

static const struct kal_opt cache_opts[] = {
	{ "delete", 0, NULL, "verify: delete corrupt objects (pull again to restore them)",
	  OPT_DELETE },
	{ 0 },
};

static void verify_report(void *arg, const char *event, const char *path, const char *detail,
			  uint64_t bytes)
{
	(void)arg;
	(void)bytes;
	if (detail)
		printf("%s: %s (%s)\n", event, path, detail);
	else
		printf("%s: %s\n", event, path);
}

static int cache_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct ic_store *s = NULL;
	bool del = false;
	const char *arg, *sub;
	size_t bad = 0;
	int c, rc;

	while ((c = kal_cmd_getopt(&kal_cmd_cache, argc, argv, &arg, err)) != -1) {
		if (c != OPT_DELETE)
			return -1;
		del = true;
	}
	if (argc - kal_cmd_optind < 1)
		return kal_cmd_usage_error(&kal_cmd_cache, err, "requires a subcommand");
	sub = argv[kal_cmd_optind];
	/* options may also follow the subcommand: kal cache verify --delete */
	for (int i = kal_cmd_optind + 1; i < argc; i++) {
		if (strcmp(argv[i], "--delete") == 0)
			del = true;
		else
			return kal_cmd_usage_error(&kal_cmd_cache, err, "unexpected argument `%s`",
						   argv[i]);
	}
	if (strcmp(sub, "path") == 0) {
		if (del)
			return kal_cmd_usage_error(&kal_cmd_cache, err,
						   "--delete applies to `verify` only");
		printf("%s\n", ctx->home);
		return 0;
	}
	if (strcmp(sub, "verify"))
		return kal_cmd_usage_error(&kal_cmd_cache, err, "unknown subcommand `%s`", sub);
	if (ic_store_open(ctx->home, &s, err) < 0)
		return -1;
	rc = ic_store_lock_exclusive(s, err);
	if (rc == 0)
		rc = ic_store_verify(s, del, verify_report, NULL, &bad, err);
	ic_store_close(s);
	if (rc < 0)
		return kal_err_wrap(err, "cache verify");
	if (bad) {
		printf("%zu corrupt object%s (run `kal cache verify --delete`, then pull again)\n",
		       bad, bad == 1 ? "" : "s");
		return 1;
	}
	printf("cache ok\n");
	return 0;
}

const struct kal_cmd kal_cmd_cache = {
	.name = "cache",
	.summary = "check the image cache or show where it is",
	.usage = "verify [--delete] | path",
	.description =
	    "`verify` rehashes every blob against its name and every EROFS layer against "
	    "its recorded sha256, prints `corrupt: PATH (want ..., got ...)` for each bad "
	    "object and exits 1 when any is left; --delete removes them (pull again to "
	    "restore). Stale temporary files are removed (`removed: PATH (...)`), and "
	    "images whose objects are missing are listed as `incomplete: images/NAME (...)`. "
	    "Ends with `cache ok` when nothing corrupt is left. `path` prints $KAL_HOME.",
	.opts = cache_opts,
	.exec = cache_exec,
};
