// SPDX-License-Identifier: GPL-2.0-or-later
/* `kal help`, `kal help CMD`, `kal CMD --help`, and "did you mean" suggestions. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "help.h"

const struct kal_opt kal_global_opts[] = {
	{ "home", 0, "DIR", "state directory (default $KAL_HOME or ~/.local/share/kal)", 'H' },
	{ "verbose", 'v', NULL, "debug output on stderr", 'v' },
	{ "version", 0, NULL, "print the version", 'V' },
	{ "help", 'h', NULL, "show this help", 'h' },
	{ 0 },
};

static void print_opt(FILE *f, const struct kal_opt *o)
{
	char left[64];

	if (o->short_name)
		snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->name,
			 o->arg ? " " : "", o->arg ? o->arg : "");
	else
		snprintf(left, sizeof(left), "    --%s%s%s", o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
	fprintf(f, "  %-26s %s\n", left, o->help);
}

void kal_help_print_main(FILE *f)
{
	fprintf(
	    f, "usage: kal [--home DIR] [-v] COMMAND [ARGS...]\n\n"
	       "Pull OCI images into a page-aligned EROFS layer cache and run them in microVMs.\n\n"
	       "Commands:\n");
	for (size_t i = 0; kal_cmds[i]; i++) {
		if (kal_cmds[i]->flags & KAL_CMD_HIDDEN)
			continue;
		fprintf(f, "  %-10s %s\n", kal_cmds[i]->name, kal_cmds[i]->summary);
	}
	fprintf(f, "\nGlobal options:\n");
	for (const struct kal_opt *o = kal_global_opts; o->name; o++)
		print_opt(f, o);
	fprintf(f, "\nRun `kal help COMMAND` for a command's options.\n");
}

void kal_help_print_cmd(FILE *f, const struct kal_cmd *cmd)
{
	fprintf(f, "usage: kal %s %s\n\n%s\n", cmd->name, cmd->usage ? cmd->usage : "",
		cmd->description ? cmd->description : cmd->summary);
	if (!cmd->opts || !cmd->opts[0].name)
		return;
	fprintf(f, "\nOptions:\n");
	for (const struct kal_opt *o = cmd->opts; o->name; o++)
		print_opt(f, o);
}

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[32], cur[32];

	if (la >= 31 || lb >= 31)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;

			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, sizeof(cur));
	}
	return prev[lb];
}

const char *kal_help_suggest(const char *name)
{
	const char *best = NULL;
	size_t best_d = 3;

	for (size_t i = 0; kal_cmds[i]; i++) {
		size_t d;

		if (kal_cmds[i]->flags & KAL_CMD_HIDDEN)
			continue;
		d = edit_distance(name, kal_cmds[i]->name);
		if (d < best_d) {
			best_d = d;
			best = kal_cmds[i]->name;
		}
	}
	return best;
}
