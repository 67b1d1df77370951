/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The command table (tmux cmd.c, git git.c): one `const struct kal_cmd` per
 * cli/cmd-<name>.c, listed sorted in cli/cmd.c.  help, the man pages and the
 * shell completions are all generated from this table, so they cannot drift.
 */
#ifndef KAL_CLI_CMD_H
#define KAL_CLI_CMD_H

#include <stdbool.h>

struct kal_err;

/* Per-invocation context, filled by main from global options and the environment. */
struct kal_ctx {
	const char *home; /* $KAL_HOME */
	bool quiet;	  /* -q at top level or per command */
	bool tty_out;	  /* stdout is a terminal */
	bool tty_err;	  /* stderr is a terminal */
};

/* One option of a command; the single source for getopt, help, man and completions. */
struct kal_opt {
	const char *name; /* long name without "--" */
	char short_name;  /* 0 when none */
	const char *arg;  /* metavariable ("REF", "OS/ARCH"), NULL for a flag */
	const char *help;
	int id; /* value returned by kal_cmd_getopt; defaults to short_name */
};

enum kal_arg_kind {
	KAL_ARG_NONE,
	KAL_ARG_IMAGE, /* completes to cached image names */
	KAL_ARG_VM,    /* completes to VM names */
	KAL_ARG_FILE,
	KAL_ARG_COMMAND, /* completes to command names (help) */
};

#define KAL_CMD_HIDDEN 0x1 /* not listed in help, man or completions */

struct kal_cmd {
	const char *name;
	const char *summary;	    /* one line, lower case, no period */
	const char *usage;	    /* after "kal NAME " */
	const char *description;    /* a paragraph for help CMD and the man page */
	const struct kal_opt *opts; /* terminated by { 0 } */
	enum kal_arg_kind args;
	int flags;
	/* argv[0] is the command name; returns the process exit code or -1 with *err */
	int (*exec)(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err);
};

#define KAL_CMD(sym) extern const struct kal_cmd sym;
#include "cmds.def"
#undef KAL_CMD

extern const struct kal_cmd *const kal_cmds[]; /* sorted by name, NULL-terminated */

const struct kal_cmd *kal_cmd_find(const char *name);

/*
 * getopt_long over cmd->opts.  Returns the option's id, -1 at the end of
 * options (then *optind_out is the index of the first operand), or '?' after
 * filling *err with a usage error.  Parsing stops at the first operand, so
 * `kal exec vm ls -l` leaves "-l" to the guest command.
 */
int kal_cmd_getopt(const struct kal_cmd *cmd, int argc, char **argv, const char **optarg_out,
		   struct kal_err **err);
extern int kal_cmd_optind;

/* Usage error for cmd (exit 125): "pull: requires exactly 1 argument (usage: kal pull ...)" */
int kal_cmd_usage_error(const struct kal_cmd *cmd, struct kal_err **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
