// SPDX-License-Identifier: GPL-2.0-or-later
/* kal stop VM...: end VMs (graceful through the engine, forced after a timeout). */
#include <stdio.h>
#include <stdlib.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../vmm/supervisor.h"
#include "cmd.h"
#include "util.h"

static const struct kal_opt stop_opts[] = {
	{ "time", 't', "SECONDS", "wait this long before forcing the VM off (default 5)", 0 },
	{ 0 },
};

/* Print every failure but the last, which main prints; the exit code is 125 if any failed. */
static int report_multi(struct kal_err **err, struct kal_err **first)
{
	if (*first) {
		_cleanup_free_ char *safe = kal_escape_terminal((*first)->msg);

		fprintf(stderr, "kal: %s\n", safe);
		kal_err_free(*first);
	}
	*first = *err;
	*err = NULL;
	return -1;
}

static int stop_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct kal_err *failed = NULL;
	const char *arg;
	int c, timeout_ms = 5000;

	while ((c = kal_cmd_getopt(&kal_cmd_stop, argc, argv, &arg, err)) != -1) {
		if (c == '?')
			return -1;
		if (c == 't') {
			char *end;
			long v = strtol(arg, &end, 10);

			if (*end || v < 0 || v > 3600)
				return kal_cmd_usage_error(&kal_cmd_stop, err, "bad --time `%s`",
							   arg);
			timeout_ms = (int)v * 1000;
		}
	}
	if (kal_cmd_optind >= argc)
		return kal_cmd_usage_error(&kal_cmd_stop, err, "requires at least 1 argument");
	for (int i = kal_cmd_optind; i < argc; i++) {
		if (supervisor_stop(ctx->home, argv[i], timeout_ms, err) < 0)
			report_multi(err, &failed);
		else
			printf("%s\n", argv[i]);
	}
	if (failed) {
		*err = failed;
		return -1;
	}
	return 0;
}

const struct kal_cmd kal_cmd_stop = {
	.name = "stop",
	.summary = "stop running VMs",
	.usage = "[-t SECONDS] VM...",
	.description = "Stop each VM: the engine is asked to end it (QMP quit for qemu) and it is "
		       "forced off after the timeout. The VM's disk and logs stay until kal rm.",
	.opts = stop_opts,
	.args = KAL_ARG_VM,
	.exec = stop_exec,
};
