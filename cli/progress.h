/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Pull progress on a terminal: one line per layer (short digest, state,
 * bytes done/total) plus a total line with the transfer rate, redrawn in
 * place by a helper thread at most 10 times a second.  Disabled (every call a
 * no-op) when stderr is not a terminal or -q was given.
 */
#ifndef KAL_CLI_PROGRESS_H
#define KAL_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

#include "../imagecache/pull.h"

struct kal_progress;

struct kal_progress *kal_progress_new(FILE *out, bool enabled);
/* Callbacks to hand to ic_pull (arg = the struct kal_progress). */
extern const struct ic_pull_progress kal_progress_ops;
/* Stop redrawing; draw the final state once (only when something was drawn). */
void kal_progress_finish(struct kal_progress *p);
void kal_progress_free(struct kal_progress *p);

#endif
