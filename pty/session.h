/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Host side of one guest session (kal exec, later run/shell): connect to the
 * VM's supervisor socket, HELLO, SPAWN, then pump stdin into STDIN frames and
 * STDOUT/STDERR frames into fds 1/2 until EXIT.  Liveness: a PING after a
 * quiet interval and a deadline for any answer, so a dead agent is a clear
 * error instead of a hang.  Frames are guest/proto.h.
 */
#ifndef KAL_PTY_SESSION_H
#define KAL_PTY_SESSION_H

#include <stdbool.h>
#include <stdint.h>

struct kal_err;

struct pty_session_opts {
	const char *const *argv; /* the command, argc >= 1 */
	uint32_t argc;
	const char *const *env; /* "K=V" */
	uint32_t envc;
	const char *cwd;  /* NULL: the user's home (agent default) */
	const char *user; /* NULL: root; name, uid, name:group, uid:gid */
	bool tty;	  /* -t: a guest pty; raw mode when stdin is a terminal */
	bool interactive; /* -i: forward stdin */
	bool login;	  /* a login shell: the command sees "-NAME" as argv[0] */
	const char *vm;	  /* for error messages ("VM `dev`") */
	/* liveness: PING after ping_ms of silence, give up after timeout_ms without a frame */
	unsigned int ping_ms, timeout_ms;
};

/* $XDG_RUNTIME_DIR/kal/NAME.sock, else $KAL_HOME/run/NAME.sock (caller frees) */
char *pty_session_socket_path(const char *home, const char *name);

/* Connect to a supervisor (or agent) unix socket; returns the fd or -1 with *err. */
int pty_session_connect(const char *path, const char *vm, struct kal_err **err);

/*
 * Run one session over an connected fd.  Returns 0 and sets *exit_code to the
 * guest command's status (128+N when killed by signal N; 126/127 when the
 * agent could not execute it), or -1 with *err for kal-side failures (agent
 * protocol mismatch, agent lost, spawn refused).
 */
int pty_session_run(int fd, const struct pty_session_opts *o, int *exit_code, struct kal_err **err);

#endif
