/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The host terminal while a guest pty is attached: raw mode that is restored
 * on every way out (normal return, exit(), SIGINT/SIGTERM/SIGHUP/SIGQUIT,
 * which restore and then re-raise so the exit status stays honest), and the
 * window size.
 */
#ifndef KAL_PTY_TERM_H
#define KAL_PTY_TERM_H

#include <stdint.h>

struct kal_err;

/* Put fd (a tty) into raw mode, remembering the old state; 0 or -1 with *err. */
int pty_term_raw_enter(int fd, struct kal_err **err);
/* Restore the saved state (idempotent, async-signal-safe). */
void pty_term_restore(void);
/* Window size of the tty fd; 0, or -1 when fd is not a tty (rows/cols left alone). */
int pty_term_size(int fd, uint16_t *rows, uint16_t *cols);

#endif
