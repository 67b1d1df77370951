// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The sorted command table and option parsing shared by every command.
 * Lookup is exact (no unique-prefix matching) so scripts keep working when
 * commands are added.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "cmd.h"

const struct kal_cmd *const kal_cmds[] = {
#define KAL_CMD(sym) &sym,
#include "cmds.def"
#undef KAL_CMD
	NULL,
};

int kal_cmd_optind;

const struct kal_cmd *kal_cmd_find(const char *name)
{
	for (size_t i = 0; kal_cmds[i]; i++)
		if (strcmp(kal_cmds[i]->name, name) == 0)
			return kal_cmds[i];
	return NULL;
}

int kal_cmd_usage_error(const struct kal_cmd *cmd, struct kal_err **err, const char *fmt, ...)
{
	va_list ap;
	_cleanup_free_ char *msg = NULL;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	return kal_err_set(err, 0, "%s: %s (usage: kal %s %s)", cmd->name, msg, cmd->name,
			   cmd->usage ? cmd->usage : "");
}

int kal_cmd_getopt(const struct kal_cmd *cmd, int argc, char **argv, const char **optarg_out,
		   struct kal_err **err)
{
	struct option lopts[64];
	char sopts[160];
	size_t n = 0, s = 0;
	int c, idx = -1;

	/* "+" stops at the first operand; ":" reports a missing argument as ':' */
	sopts[s++] = '+';
	sopts[s++] = ':';
	for (const struct kal_opt *o = cmd->opts; o && o->name && n < ARRAY_SIZE(lopts) - 1; o++) {
		int id = o->id ? o->id : o->short_name;

		lopts[n++] =
		    (struct option){ o->name, o->arg ? required_argument : no_argument, NULL, id };
		if (o->short_name && s + 3 < sizeof(sopts)) {
			sopts[s++] = o->short_name;
			if (o->arg)
				sopts[s++] = ':';
		}
	}
	lopts[n] = (struct option){ 0 };
	sopts[s] = '\0';

	opterr = 0;
	c = getopt_long(argc, argv, sopts, lopts, &idx);
	kal_cmd_optind = optind;
	*optarg_out = optarg;
	if (c == '?') {
		if (optopt && optopt < 256 && optopt != '?')
			return kal_cmd_usage_error(cmd, err, "unknown option `-%c`", optopt), '?';
		return kal_cmd_usage_error(cmd, err, "unknown option `%s`", argv[optind - 1]), '?';
	}
	if (c == ':') {
		const char *name = argv[optind - 1];

		return kal_cmd_usage_error(cmd, err, "option `%s` needs an argument", name), '?';
	}
	return c;
}
