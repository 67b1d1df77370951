// SPDX-License-Identifier: GPL-2.0-or-later
/* kal ps [-a] [-q]: list VMs (running ones unless -a). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "../vmm/vmstate.h"
#include "cmd.h"
#include "util.h"

static const struct kal_opt ps_opts[] = {
	{ "all", 'a', NULL, "also list VMs that are not running", 0 },
	{ "quiet", 'q', NULL, "print names only", 0 },
	{ 0 },
};

static void format_uptime(long long s, char *buf, size_t len)
{
	if (s < 60)
		snprintf(buf, len, "%llds", s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
	else
		snprintf(buf, len, "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
}

static int ps_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	const char *arg;
	bool all = false, quiet = false, header = false;
	char **names;
	size_t n;
	int c;

	while ((c = kal_cmd_getopt(&kal_cmd_ps, argc, argv, &arg, err)) != -1) {
		if (c == '?')
			return -1;
		if (c == 'a')
			all = true;
		if (c == 'q')
			quiet = true;
	}
	if (kal_cmd_optind != argc)
		return kal_cmd_usage_error(&kal_cmd_ps, err, "takes no arguments");
	if (vmstate_list(ctx->home, &names, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct vm_config *cfg = NULL;
		enum vmstate_state st = vmstate_get(ctx->home, names[i], NULL);
		char uptime[32] = "-";
		_cleanup_free_ char *image = NULL;

		if (st == VMSTATE_MISSING || (!all && st != VMSTATE_RUNNING))
			goto next;
		if (quiet) {
			printf("%s\n", names[i]);
			goto next;
		}
		if (vmstate_load(ctx->home, names[i], &cfg, NULL) < 0)
			goto next; /* being created or removed right now */
		if (st == VMSTATE_RUNNING) {
			_cleanup_free_ char *pidf =
			    vmstate_file(ctx->home, names[i], "supervisor.pid");
			struct stat sb;

			if (stat(pidf, &sb) == 0)
				format_uptime((long long)(time(NULL) - sb.st_mtime), uptime,
					      sizeof(uptime));
		}
		image = kal_escape_terminal(cfg->image);
		if (!header) {
			printf("%-24s %-32s %-8s %-6s %s\n", "NAME", "IMAGE", "STATE", "ENGINE",
			       "UPTIME");
			header = true;
		}
		printf("%-24s %-32s %-8s %-6s %s\n", names[i], image,
		       st == VMSTATE_RUNNING ? "running" : "exited", cfg->engine, uptime);
		vm_config_free(cfg);
	next:
		free(names[i]);
	}
	free(names);
	if (!header && !quiet)
		printf("%-24s %-32s %-8s %-6s %s\n", "NAME", "IMAGE", "STATE", "ENGINE", "UPTIME");
	return 0;
}

const struct kal_cmd kal_cmd_ps = {
	.name = "ps",
	.summary = "list VMs",
	.usage = "[-a] [-q]",
	.description = "List running VMs with their image, state, engine and uptime. With -a, "
		       "also VMs that have stopped and can be removed with kal rm.",
	.opts = ps_opts,
	.exec = ps_exec,
};
