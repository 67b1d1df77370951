/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Help text rendered from the command table. */
#ifndef KAL_CLI_HELP_H
#define KAL_CLI_HELP_H

#include <stdio.h>

struct kal_cmd;
struct kal_opt;

/* kal's own options before the command (parsed in main.c); terminated by { 0 } */
extern const struct kal_opt kal_global_opts[];

void kal_help_print_main(FILE *f);
void kal_help_print_cmd(FILE *f, const struct kal_cmd *cmd);
/* closest visible command name within edit distance 2, or NULL */
const char *kal_help_suggest(const char *name);

#endif
