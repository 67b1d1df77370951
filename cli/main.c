// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal entry point: global options, command dispatch through the table, and the
 * one place that prints errors and chooses the exit code (125 for kal's own
 * failures, else what the command returned).
 */
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "cmd.h"
#include "help.h"
#include "util.h"

static char *default_home(void)
{
	const char *e = getenv("KAL_HOME");

	if (e && *e)
		return xstrdup(e);
	e = getenv("XDG_DATA_HOME");
	if (e && *e == '/')
		return xasprintf("%s/kal", e);
	e = getenv("HOME");
	return xasprintf("%s/.local/share/kal", e && *e ? e : "/root");
}

static void print_error(struct kal_err *e)
{
	_cleanup_free_ char *safe = kal_escape_terminal(e->msg);

	fflush(stdout);
	fprintf(stderr, "kal: %s\n", safe);
}

static int finish_stdout(void)
{
	/* git run_builtin: a full disk or closed pipe on stdout is a failure, not silence */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (errno != EPIPE)
			fprintf(stderr, "kal: write failure on standard output: %s\n",
				strerror(errno));
		return KAL_EXIT_FAILURE;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option gopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "home", required_argument, NULL, 'H' },
		{ 0 },
	};
	_cleanup_free_ char *home = NULL;
	struct kal_err *err = NULL;
	struct kal_ctx ctx = { 0 };
	const struct kal_cmd *cmd;
	int c, rc, first;

	setlocale(LC_CTYPE, "");
	/* a closed pipe on stdout is reported by write errors, not a silent death */
	signal(SIGPIPE, SIG_IGN);
	if (getenv("KAL_DEBUG") && *getenv("KAL_DEBUG") && strcmp(getenv("KAL_DEBUG"), "0"))
		kal_log_set_level(KAL_LOG_DEBUG);

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+hvV", gopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			kal_help_print_main(stdout);
			return finish_stdout();
		case 'V':
			printf("kal version %s\n", KAL_VERSION);
			return finish_stdout();
		case 'v':
			kal_log_set_level(KAL_LOG_DEBUG);
			break;
		case 'H':
			home = xstrdup(optarg);
			break;
		default:
			fprintf(stderr, "kal: unknown option `%s` (see `kal help`)\n",
				argv[optind - 1]);
			return KAL_EXIT_FAILURE;
		}
	}
	if (optind >= argc) {
		kal_help_print_main(stderr);
		return KAL_EXIT_FAILURE;
	}
	cmd = kal_cmd_find(argv[optind]);
	if (!cmd) {
		_cleanup_free_ char *safe = kal_escape_terminal(argv[optind]);
		const char *near = kal_help_suggest(argv[optind]);

		if (near)
			fprintf(stderr, "kal: unknown command `%s` (did you mean `%s`?)\n", safe,
				near);
		else
			fprintf(stderr, "kal: unknown command `%s` (see `kal help`)\n", safe);
		return KAL_EXIT_FAILURE;
	}

	for (int i = optind + 1; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--"); i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			kal_help_print_cmd(stdout, cmd);
			return finish_stdout();
		}
	}
	if (!home)
		home = default_home();
	ctx.home = home;
	ctx.tty_out = isatty(STDOUT_FILENO);
	ctx.tty_err = isatty(STDERR_FILENO);

	first = optind;
	optind = 0; /* full getopt reset for the command's own parsing */
	rc = cmd->exec(&ctx, argc - first, argv + first, &err);
	if (rc < 0) {
		if (!err)
			kal_err_set(&err, 0, "%s: failed", cmd->name);
		print_error(err);
		rc = err->exit_code;
		kal_err_free(err);
	}
	if (finish_stdout() && rc == 0)
		rc = KAL_EXIT_FAILURE;
	return rc;
}
