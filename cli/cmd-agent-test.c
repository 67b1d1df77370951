// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal __agent-test [exec options] CMD...: hidden test command.  Runs the
 * embedded guest agent as a normal host process (`kal-init --serve-fd 3`,
 * started from a memfd, no mounts) on a socketpair and drives it with the
 * same session client as `kal exec`, so the protocol, the agent's session
 * logic and the client are tested without a VM.  KAL_TEST_AGENT=PATH runs
 * another program instead (hostile-agent tests).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/fsutil.h"
#include "../pty/session.h"
#include "../vmm/initrd.h"
#include "cmd.h"
#include "exec.h"

static int agent_start(int sock, pid_t *pid, struct kal_err **err)
{
	const char *path = getenv("KAL_TEST_AGENT");
	char *const args[] = { (char *)"kal-init", (char *)"--serve-fd", (char *)"3", NULL };
	_cleanup_close_ int mfd = -1;

	if (!path || !*path) {
		size_t len;
		const unsigned char *agent = vmm_initrd_agent(&len);

		mfd = memfd_create("kal-init", MFD_CLOEXEC);
		if (mfd < 0)
			return kal_err_sys(err, errno, "memfd_create");
		if (kal_write_all(mfd, agent, len, err) < 0)
			return -1;
	}
	*pid = fork();
	if (*pid < 0)
		return kal_err_sys(err, errno, "fork");
	if (*pid == 0) {
		if (dup2(sock, 3) < 0)
			_exit(125);
		if (path && *path)
			execve(path, args, environ);
		else
			fexecve(mfd, args, environ);
		_exit(125);
	}
	return 0;
}

static int agent_test_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct kal_exec_args a;
	int sv[2] = { -1, -1 }, code = KAL_EXIT_FAILURE, rc, status;
	pid_t pid = -1;

	(void)ctx;
	rc = kal_exec_parse(&kal_cmd_agent_test, argc, argv, false, &a, err);
	if (rc < 0)
		goto out;
	rc = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		kal_err_sys(err, errno, "socketpair");
		goto out;
	}
	if (agent_start(sv[1], &pid, err) < 0)
		goto out;
	close(sv[1]);
	sv[1] = -1;
	if (pty_session_run(sv[0], &a.so, &code, err) == 0)
		rc = code;
out:
	if (sv[0] >= 0)
		close(sv[0]); /* the agent exits at EOF in test mode */
	if (sv[1] >= 0)
		close(sv[1]);
	if (pid > 0)
		waitpid(pid, &status, 0);
	kal_exec_args_free(&a);
	return rc;
}

const struct kal_cmd kal_cmd_agent_test = {
	.name = "__agent-test",
	.summary = "run a command through a local guest agent (tests only)",
	.usage = "[-i] [-t] [-e K=V]... [-w DIR] [-u USER] [--] CMD [ARG...]",
	.description = "Start the embedded guest agent as a host process on a socketpair and "
		       "run CMD through it exactly as `kal exec` would in a VM.",
	.opts = kal_exec_opts,
	.flags = KAL_CMD_HIDDEN,
	.exec = agent_test_exec,
};
