/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The per-VM supervisor (`kal __supervise NAME`): a daemon that owns the
 * engine (the QEMU child, or later the VMM itself), the bounded console log
 * and the agent channel, and multiplexes client connections on
 * $XDG_RUNTIME_DIR/kal/<NAME>.sock onto the one agent channel by rewriting
 * session ids.  It holds <vmdir>/lock for its whole life and exits when the
 * VM ends, leaving no socket, pid file or process behind.
 *
 * Client side helpers live here too: spawning a supervisor and waiting for
 * the guest agent to be ready, connecting (HELLO exchanged), status, stop.
 */
#ifndef KAL_VMM_SUPERVISOR_H
#define KAL_VMM_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct kal_err;

/* caps that keep the supervisor's memory bounded whatever the guest or a client does */
#define SUPERVISOR_CLIENT_QUEUE_CAP (1024 * 1024) /* bytes queued towards one client */
#define SUPERVISOR_AGENT_QUEUE_CAP  (1024 * 1024) /* bytes queued towards the agent */
#define SUPERVISOR_MAX_CLIENTS	    64
#define SUPERVISOR_BOOT_TIMEOUT_S   120 /* KAL_BOOT_TIMEOUT overrides */

/*
 * Run the supervisor of VM name in the current process (called by the hidden
 * command after it has daemonized).  ready_fd (or -1) receives "ready\n" once
 * the agent said HELLO and the socket listens, or "error: <msg>\n"; then it
 * is closed.  Returns when the VM has ended.
 */
int supervisor_main(const char *home, const char *name, int ready_fd, struct kal_err **err);

/*
 * Start `<self> __supervise NAME` as a daemon (double fork, setsid, stdio on
 * /dev/null, stderr to <vmdir>/supervisor.log) and wait until it reports the
 * agent ready or an error (the error text comes from the supervisor).
 */
int supervisor_spawn(const char *home, const char *name, struct kal_err **err);

/* Connect to a running VM's supervisor and exchange HELLO; returns the fd. */
int supervisor_connect(const char *home, const char *name, struct kal_err **err);

struct supervisor_status {
	char state[32];
	char engine[32];
	pid_t pid;
	uint64_t started;
	uint32_t clients, sessions;
};
int supervisor_status(const char *home, const char *name, struct supervisor_status *st,
		      struct kal_err **err);

/*
 * Stop a VM: CTL_STOP over the socket (or SIGTERM to the supervisor when the
 * socket does not answer), then wait until its lock is released; SIGKILL
 * after timeout_ms plus a grace period.  A VM that is not running is success.
 */
int supervisor_stop(const char *home, const char *name, int timeout_ms, struct kal_err **err);

#endif
