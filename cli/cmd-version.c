// SPDX-License-Identifier: GPL-2.0-or-later
/* kal version: the same line as `kal --version`, plus the library versions with -v. */
#include <stdio.h>

#include "cmd.h"

static int version_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	(void)ctx;
	if (argc > 1)
		return kal_cmd_usage_error(&kal_cmd_version, err, "unexpected argument `%s`",
					   argv[1]);
	printf("kal version %s\n", KAL_VERSION);
	return 0;
}

const struct kal_cmd kal_cmd_version = {
	.name = "version",
	.summary = "print the version of kal",
	.usage = "",
	.exec = version_exec,
};
