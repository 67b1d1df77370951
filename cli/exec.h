/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Option parsing shared by `kal exec` and its hidden test twin `kal __agent-test`. */
#ifndef KAL_CLI_EXEC_H
#define KAL_CLI_EXEC_H

#include "../pty/session.h"

struct kal_cmd;
struct kal_err;

struct kal_exec_args {
	struct pty_session_opts so;
	const char *vm;	  /* NULL for __agent-test */
	const char **env; /* owned array; strings borrowed from argv, or in owned */
	char **owned;	  /* "K=V" built for -e K */
	size_t nowned;
};

/*
 * Parse [-i] [-t] [-e K=V]... [-w DIR] [-u USER] [VM] [--] CMD...; with_vm
 * says whether a VM operand comes first.  0, or -1 with a usage error.
 */
int kal_exec_parse(const struct kal_cmd *cmd, int argc, char **argv, bool with_vm,
		   struct kal_exec_args *a, struct kal_err **err);
void kal_exec_args_free(struct kal_exec_args *a);

extern const struct kal_opt kal_exec_opts[];

#endif
