/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The process an engine runs a VM in.  machine_child_spawn() connects
 * n_pairs socketpairs: the child gets their ends on fds 3, 4, ... (the
 * engines' fixed contract), the supervisor keeps c->fd[0..n_pairs).  stdin
 * and stdout are /dev/null, stderr goes to log_path.  The child gets SIGKILL
 * when the supervisor dies (PR_SET_PDEATHSIG).
 */
#ifndef KAL_VMM_CHILD_H
#define KAL_VMM_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../lib/cleanup.h"

struct kal_err;

#define MACHINE_CHILD_MAX_PAIRS 3
#define MACHINE_CHILD_FIRST_FD	3

struct machine_child {
	pid_t pid;
	int pidfd; /* readable once the child has exited */
	int fd[MACHINE_CHILD_MAX_PAIRS];
	bool reaped;
	int status; /* wait status once reaped */
};

/* exe: the file to execute (argv[0] is then only the name), or NULL to search PATH for argv[0]. */
int machine_child_spawn(struct machine_child *c, const char *exe, char **argv, int n_pairs,
			const char *log_path, struct kal_err **err);
/* Collect the exit: 1 when it has ended (never blocks unless block), 0 while running. */
int machine_child_reap(struct machine_child *c, bool block);
/* Wait up to timeout_ms for the child to end (after a graceful request), then SIGKILL it. */
void machine_child_end(struct machine_child *c, int timeout_ms);
/* "qemu exited with status 1", "vmm killed by signal 9" for a reaped child. */
void machine_child_describe(const struct machine_child *c, const char *who, char *desc, size_t len);
/* The last line of the child's log ("no output" when empty). */
void machine_child_log_tail(const char *log_path, char *buf, size_t len);
/* SIGKILL the child if it still runs, reap it, close every fd. */
void machine_child_free(struct machine_child *c);

#endif
