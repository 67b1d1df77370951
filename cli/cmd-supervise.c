// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal __supervise [--ready-fd FD] NAME: the per-VM supervisor daemon (hidden;
 * `kal run` starts it already daemonized).  See vmm/supervisor.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "../vmm/supervisor.h"
#include "cmd.h"

enum { OPT_READY_FD = 0x100 };

static const struct kal_opt supervise_opts[] = {
	{ "ready-fd", 0, "FD", "report readiness on this fd", OPT_READY_FD },
	{ 0 },
};

static int supervise_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	const char *arg;
	int c, ready_fd = -1;

	while ((c = kal_cmd_getopt(&kal_cmd___supervise, argc, argv, &arg, err)) != -1) {
		if (c == '?')
			return -1;
		if (c == OPT_READY_FD) {
			char *end;
			long v = strtol(arg, &end, 10);

			if (*end || v < 0 || v > 1024)
				return kal_cmd_usage_error(&kal_cmd___supervise, err,
							   "bad --ready-fd `%s`", arg);
			ready_fd = (int)v;
		}
	}
	if (argc - kal_cmd_optind != 1)
		return kal_cmd_usage_error(&kal_cmd___supervise, err,
					   "requires exactly 1 argument");
	if (supervisor_main(ctx->home, argv[kal_cmd_optind], ready_fd, err) < 0)
		return -1;
	return 0;
}

const struct kal_cmd kal_cmd___supervise = {
	.name = "__supervise",
	.summary = "run the supervisor of one VM (internal)",
	.usage = "[--ready-fd FD] NAME",
	.description = "Owns the VM's engine, console log and agent channel; started by kal run.",
	.opts = supervise_opts,
	.args = KAL_ARG_VM,
	.flags = KAL_CMD_HIDDEN,
	.exec = supervise_exec,
};
