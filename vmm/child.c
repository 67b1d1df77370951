// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The process an engine runs a VM in (QEMU, or kal re-executed as `kal
 * __vmm`): spawned with pre-connected socketpairs on fixed fds, tied to the
 * supervisor's life, watched through a pidfd, ended gracefully or by SIGKILL.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/err.h"
#include "../lib/fsutil.h"
#include "child.h"

int machine_child_spawn(struct machine_child *c, const char *exe, char **argv, int n_pairs,
			const char *log_path, struct kal_err **err)
{
	int sp[MACHINE_CHILD_MAX_PAIRS][2];
	int logfd;

	*c = (struct machine_child){ .pid = -1, .pidfd = -1 };
	for (int i = 0; i < MACHINE_CHILD_MAX_PAIRS; i++)
		c->fd[i] = sp[i][0] = sp[i][1] = -1;
	for (int i = 0; i < n_pairs; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp[i]) < 0) {
			kal_err_sys(err, errno, "socketpair");
			goto fail;
		}
	logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	c->pid = fork();
	if (c->pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC), moved[MACHINE_CHILD_MAX_PAIRS];
		sigset_t none;

		/* the VM must not outlive its supervisor */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(null, 0);
		dup2(null, 1);
		dup2(logfd >= 0 ? logfd : null, 2);
		/*
		 * Move the ends out of the way first (one may already sit on 3..),
		 * then dup2, which clears FD_CLOEXEC on the targets.
		 */
		for (int i = 0; i < n_pairs; i++)
			if ((moved[i] = fcntl(sp[i][1], F_DUPFD_CLOEXEC, 10)) < 0)
				_exit(125);
		for (int i = 0; i < n_pairs; i++)
			if (dup2(moved[i], MACHINE_CHILD_FIRST_FD + i) < 0)
				_exit(125);
		/* nothing else crosses over, whatever a library left open without CLOEXEC */
		if (syscall(SYS_close_range, MACHINE_CHILD_FIRST_FD + n_pairs, ~0u, 0) < 0)
			_exit(125);
		if (exe)
			execv(exe, argv);
		else
			execvp(argv[0], argv);
		dprintf(2, "exec %s: %s\n", exe ? exe : argv[0], strerror(errno));
		_exit(127);
	}
	if (logfd >= 0)
		close(logfd);
	if (c->pid < 0) {
		kal_err_sys(err, errno, "fork");
		goto fail;
	}
	for (int i = 0; i < n_pairs; i++) {
		close(sp[i][1]);
		c->fd[i] = sp[i][0];
	}
	c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	if (c->pidfd < 0) {
		kal_err_sys(err, errno, "pidfd_open");
		machine_child_free(c);
		return -1;
	}
	return 0;
fail:
	for (int i = 0; i < n_pairs; i++) {
		if (sp[i][0] >= 0)
			close(sp[i][0]);
		if (sp[i][1] >= 0)
			close(sp[i][1]);
	}
	return -1;
}

int machine_child_reap(struct machine_child *c, bool block)
{
	int st;
	pid_t r;

	if (c->reaped || c->pid <= 0)
		return 1;
	do
		r = waitpid(c->pid, &st, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == c->pid || (r < 0 && errno == ECHILD)) {
		c->reaped = true;
		c->status = r == c->pid ? st : 0;
		return 1;
	}
	return 0;
}

void machine_child_end(struct machine_child *c, int timeout_ms)
{
	struct pollfd p = { .fd = c->pidfd, .events = POLLIN };

	if (c->reaped)
		return;
	while (poll(&p, 1, timeout_ms) < 0 && errno == EINTR)
		;
	if (!machine_child_reap(c, false)) {
		kill(c->pid, SIGKILL);
		machine_child_reap(c, true);
	}
}

void machine_child_describe(const struct machine_child *c, const char *who, char *desc, size_t len)
{
	if (WIFSIGNALED(c->status))
		snprintf(desc, len, "%s killed by signal %d", who, WTERMSIG(c->status));
	else
		snprintf(desc, len, "%s exited with status %d", who, WEXITSTATUS(c->status));
}

void machine_child_log_tail(const char *log_path, char *buf, size_t len)
{
	_cleanup_free_ char *text = NULL;
	size_t n;
	char *line;

	if (kal_read_file(log_path, 1 << 20, &text, &n, NULL) < 0 || n == 0) {
		snprintf(buf, len, "no output");
		return;
	}
	while (n && text[n - 1] == '\n')
		text[--n] = '\0';
	line = strrchr(text, '\n');
	snprintf(buf, len, "%s", line ? line + 1 : text);
}

void machine_child_free(struct machine_child *c)
{
	if (c->pid > 0 && !c->reaped) {
		kill(c->pid, SIGKILL);
		machine_child_reap(c, true);
	}
	for (int i = 0; i < MACHINE_CHILD_MAX_PAIRS; i++)
		if (c->fd[i] >= 0) {
			close(c->fd[i]);
			c->fd[i] = -1;
		}
	if (c->pidfd >= 0) {
		close(c->pidfd);
		c->pidfd = -1;
	}
}
