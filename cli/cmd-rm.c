// SPDX-License-Identifier: GPL-2.0-or-later
/* kal rm [-f] VM...: remove stopped VMs (and running ones with -f). */
#include <errno.h>
#include <stdio.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../vmm/supervisor.h"
#include "../vmm/vmstate.h"
#include "cmd.h"
#include "util.h"

static const struct kal_opt rm_opts[] = {
	{ "force", 'f', NULL, "stop running VMs first", 0 },
	{ 0 },
};

static int rm_one(struct kal_ctx *ctx, const char *name, bool force, struct kal_err **err)
{
	if (vmstate_name_check(name, err) < 0)
		return -1;
	switch (vmstate_get(ctx->home, name, NULL)) {
	case VMSTATE_MISSING:
		return kal_err_set(err, ENOENT, "no such VM `%s`", name);
	case VMSTATE_RUNNING:
		if (!force)
			return kal_err_set(err, EBUSY,
					   "VM `%s` is running (stop it first, or use `kal rm -f`)",
					   name);
		if (supervisor_stop(ctx->home, name, 2000, err) < 0)
			return -1;
		break;
	case VMSTATE_CREATED:
		break;
	}
	return vmstate_remove(ctx->home, name, err);
}

static int rm_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct kal_err *failed = NULL;
	const char *arg;
	bool force = false;
	int c;

	while ((c = kal_cmd_getopt(&kal_cmd_rm, argc, argv, &arg, err)) != -1) {
		if (c == '?')
			return -1;
		if (c == 'f')
			force = true;
	}
	if (kal_cmd_optind >= argc)
		return kal_cmd_usage_error(&kal_cmd_rm, err, "requires at least 1 argument");
	for (int i = kal_cmd_optind; i < argc; i++) {
		if (rm_one(ctx, argv[i], force, err) < 0) {
			if (failed) {
				_cleanup_free_ char *safe = kal_escape_terminal(failed->msg);

				fprintf(stderr, "kal: %s\n", safe);
				kal_err_free(failed);
			}
			failed = *err;
			*err = NULL;
		} else {
			printf("%s\n", argv[i]);
		}
	}
	if (failed) {
		*err = failed;
		return -1;
	}
	return 0;
}

const struct kal_cmd kal_cmd_rm = {
	.name = "rm",
	.summary = "remove VMs",
	.usage = "[-f] VM...",
	.description = "Remove each VM's directory (upper disk, console log, config). A running VM "
		       "is refused unless -f, which stops it first.",
	.opts = rm_opts,
	.args = KAL_ARG_VM,
	.exec = rm_exec,
};
