// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal exec [-i] [-t] [-e K=V]... [-w DIR] [-u USER] VM CMD...: run a command
 * in a running VM through its supervisor socket and exit with its status
 * (podman codes: 125 kal failed, 126 not executable, 127 not found).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "../pty/session.h"
#include "cmd.h"
#include "exec.h"

const struct kal_opt kal_exec_opts[] = {
	{ "interactive", 'i', NULL, "keep stdin open and forward it to the command", 0 },
	{ "tty", 't', NULL, "allocate a pseudo-terminal in the guest (raw mode here)", 0 },
	{ "env", 'e', "K=V", "set an environment variable (K alone: take it from here)", 0 },
	{ "workdir", 'w', "DIR", "working directory inside the guest", 0 },
	{ "user", 'u', "USER", "user (name, uid, name:group or uid:gid) inside the guest", 0 },
	{ 0 },
};

static unsigned int env_seconds(const char *name, unsigned int def)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (!v || !*v)
		return def;
	n = strtoul(v, &end, 10);
	return *end || n == 0 || n > 3600 ? def : (unsigned int)n;
}

int kal_exec_parse(const struct kal_cmd *cmd, int argc, char **argv, bool with_vm,
		   struct kal_exec_args *a, struct kal_err **err)
{
	const char *arg;
	size_t nenv = 0;
	int c, i;

	memset(a, 0, sizeof(*a));
	a->env = xcalloc((size_t)argc + 1, sizeof(*a->env));
	while ((c = kal_cmd_getopt(cmd, argc, argv, &arg, err)) != -1) {
		switch (c) {
		case 'i':
			a->so.interactive = true;
			break;
		case 't':
			a->so.tty = true;
			break;
		case 'e':
			if (!*arg || *arg == '=')
				return kal_cmd_usage_error(cmd, err,
							   "bad environment variable `%s`", arg);
			if (strchr(arg, '=')) {
				a->env[nenv++] = arg;
			} else {
				/* docker: -e NAME passes the caller's value, if any */
				const char *v = getenv(arg);

				if (v) {
					a->owned = xreallocarray(a->owned, a->nowned + 1,
								 sizeof(*a->owned));
					a->owned[a->nowned] = xasprintf("%s=%s", arg, v);
					a->env[nenv++] = a->owned[a->nowned++];
				}
			}
			break;
		case 'w':
			a->so.cwd = arg;
			break;
		case 'u':
			a->so.user = arg;
			break;
		default:
			return -1;
		}
	}
	i = kal_cmd_optind;
	if (with_vm) {
		if (i >= argc)
			return kal_cmd_usage_error(cmd, err, "requires a VM and a command");
		a->vm = argv[i++];
	}
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	if (i >= argc)
		return kal_cmd_usage_error(cmd, err, "requires a command");
	a->so.argv = (const char *const *)argv + i;
	a->so.argc = (uint32_t)(argc - i);
	a->so.env = a->env;
	a->so.envc = (uint32_t)nenv;
	a->so.vm = a->vm ? a->vm : "agent-test";
	a->so.ping_ms = 5000;
	a->so.timeout_ms = env_seconds("KAL_AGENT_TIMEOUT", 30) * 1000;
	if (a->so.ping_ms > a->so.timeout_ms)
		a->so.ping_ms = a->so.timeout_ms;
	return 0;
}

void kal_exec_args_free(struct kal_exec_args *a)
{
	for (size_t i = 0; i < a->nowned; i++)
		free(a->owned[i]);
	free(a->owned);
	free(a->env);
	a->env = NULL;
	a->owned = NULL;
	a->nowned = 0;
}

static bool vm_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      strchr("_.-", s[i])))
			return false;
	return true;
}

static int exec_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct kal_exec_args a;
	_cleanup_free_ char *dir = NULL, *sock = NULL;
	_cleanup_close_ int fd = -1;
	struct stat st;
	int code = KAL_EXIT_FAILURE, rc;

	rc = kal_exec_parse(&kal_cmd_exec, argc, argv, true, &a, err);
	if (rc < 0)
		goto out;
	rc = -1;
	if (!vm_name_valid(a.vm)) {
		kal_err_set(err, EINVAL, "exec: invalid VM name `%s`", a.vm);
		goto out;
	}
	dir = xasprintf("%s/vms/%s", ctx->home, a.vm);
	if (stat(dir, &st) < 0) {
		kal_err_set(err, ENOENT, "exec: no such VM `%s`", a.vm);
		goto out;
	}
	sock = pty_session_socket_path(ctx->home, a.vm);
	fd = pty_session_connect(sock, a.vm, err);
	if (fd < 0 || pty_session_run(fd, &a.so, &code, err) < 0) {
		kal_err_wrap(err, "exec");
		goto out;
	}
	rc = code;
out:
	kal_exec_args_free(&a);
	return rc;
}

const struct kal_cmd kal_cmd_exec = {
	.name = "exec",
	.summary = "run a command in a running VM",
	.usage = "[-i] [-t] [-e K=V]... [-w DIR] [-u USER] VM [--] CMD [ARG...]",
	.description = "Run CMD inside the running VM and exit with its status. -t gives the "
		       "command a pseudo-terminal, -i forwards standard input; use -it for an "
		       "interactive program. Without -t, stdout and stderr stay separate and "
		       "SIGINT/SIGTERM/SIGHUP are passed on to the command. Exit status 126 "
		       "means the command could not be executed, 127 that it was not found, "
		       "125 that kal itself failed.",
	.opts = kal_exec_opts,
	.args = KAL_ARG_VM,
	.exec = exec_exec,
};
