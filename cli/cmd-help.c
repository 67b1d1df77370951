// SPDX-License-Identifier: GPL-2.0-or-later
/* kal help [COMMAND] */
#include <stdio.h>

#include "../lib/err.h"
#include "cmd.h"
#include "help.h"

static int help_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	const struct kal_cmd *cmd;

	(void)ctx;
	if (argc < 2) {
		kal_help_print_main(stdout);
		return 0;
	}
	if (argc > 2)
		return kal_cmd_usage_error(&kal_cmd_help, err, "too many arguments");
	cmd = kal_cmd_find(argv[1]);
	if (!cmd)
		return kal_err_set(err, 0, "help: unknown command `%s`", argv[1]);
	kal_help_print_cmd(stdout, cmd);
	return 0;
}

const struct kal_cmd kal_cmd_help = {
	.name = "help",
	.summary = "show help for kal or one command",
	.usage = "[COMMAND]",
	.description =
	    "Without an argument, list the commands. With one, print its usage and options.",
	.args = KAL_ARG_COMMAND,
	.exec = help_exec,
};
