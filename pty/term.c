// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Raw mode for the host terminal with a guaranteed way back: an atexit hook
 * and handlers for the terminating signals restore the saved termios, then
 * the signal is re-raised with its default action; SIGTSTP restores, stops,
 * and goes raw again on SIGCONT.  Only async-signal-safe
 * calls (tcsetattr, sigaction, raise) run in the handler.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "../lib/err.h"
#include "term.h"

static struct termios saved, raw_state;
static int saved_fd = -1;
static volatile sig_atomic_t raw_active;
static bool hooks_installed;

static const int term_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

void pty_term_restore(void)
{
	if (!raw_active)
		return;
	raw_active = 0;
	tcsetattr(saved_fd, TCSAFLUSH, &saved);
}

static void on_signal(int sig)
{
	struct sigaction sa;
	int saved_errno = errno;

	pty_term_restore();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(sig, &sa, NULL);
	raise(sig); /* delivered on return: the process ends as the signal says */
	errno = saved_errno;
}

/* stopped from outside (kill -TSTP): a sane terminal while stopped, raw again after SIGCONT */
static void on_tstp(int sig)
{
	struct sigaction sa;
	int saved_errno = errno, was_raw = raw_active;

	pty_term_restore();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGTSTP, &sa, NULL);
	raise(SIGTSTP); /* stops here until SIGCONT */
	sa.sa_handler = on_tstp;
	sigaction(SIGTSTP, &sa, NULL);
	if (was_raw && tcsetattr(saved_fd, TCSAFLUSH, &raw_state) == 0)
		raw_active = 1;
	errno = saved_errno;
	(void)sig;
}

int pty_term_raw_enter(int fd, struct kal_err **err)
{
	struct termios t;
	struct sigaction sa;

	if (tcgetattr(fd, &saved) < 0)
		return kal_err_sys(err, errno, "terminal: get attributes");
	saved_fd = fd;
	if (!hooks_installed) {
		atexit(pty_term_restore);
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		for (size_t i = 0; i < sizeof(term_signals) / sizeof(term_signals[0]); i++)
			sigaction(term_signals[i], &sa, NULL);
		sa.sa_handler = on_tstp;
		sigaction(SIGTSTP, &sa, NULL);
		hooks_installed = true;
	}
	t = saved;
	cfmakeraw(&t);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	raw_state = t;
	raw_active = 1;
	if (tcsetattr(fd, TCSAFLUSH, &t) < 0) {
		raw_active = 0;
		return kal_err_sys(err, errno, "terminal: set raw mode");
	}
	return 0;
}

int pty_term_size(int fd, uint16_t *rows, uint16_t *cols)
{
	struct winsize ws;

	if (ioctl(fd, TIOCGWINSZ, &ws) < 0 || !ws.ws_row || !ws.ws_col)
		return -1;
	*rows = ws.ws_row;
	*cols = ws.ws_col;
	return 0;
}
