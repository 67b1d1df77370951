// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal exec [-i] [-t] [-e K=V]... [-w DIR] [-u USER] VM CMD...: run a command
 * in a running VM through its supervisor socket and exit with its status
 * (podman codes: 125 kal failed, 126 not executable, 127 not found).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../imagecache/image.h"
#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "../pty/session.h"
#include "../vmm/vmstate.h"
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

/*
 * Like docker exec: the image's Env comes first (-e wins, the agent keeps the
 * last of a name), and its WorkingDir and User apply unless -w/-u are given.
 * An image that left the cache only costs those defaults.
 */
static const char **image_defaults(const char *home, const char *vm, struct kal_exec_args *a,
				   struct ic_image **img_out)
{
	struct vm_config *cfg = NULL;
	struct ic_image *img = NULL;
	struct kal_err *e = NULL;
	const char **all;
	size_t ni = 0;

	if (vmstate_load(home, vm, &cfg, &e) < 0 ||
	    ic_image_open(home, cfg->image_digest ? cfg->image_digest : cfg->image, false, &img,
			  &e) < 0) {
		kal_debug("exec %s: no image defaults: %s", vm, e ? e->msg : "?");
		kal_err_free(e);
		vm_config_free(cfg);
		return NULL;
	}
	vm_config_free(cfg);
	for (char **p = img->config.env; p && *p; p++)
		ni++;
	all = xcalloc(ni + a->so.envc + 1, sizeof(*all));
	for (size_t i = 0; i < ni; i++)
		all[i] = img->config.env[i];
	for (size_t i = 0; i < a->so.envc; i++)
		all[ni + i] = a->so.env[i];
	a->so.envc += (uint32_t)ni;
	if (!a->so.cwd && img->config.working_dir && *img->config.working_dir)
		a->so.cwd = img->config.working_dir;
	if (!a->so.user && img->config.user && *img->config.user)
		a->so.user = img->config.user;
	*img_out = img;
	return all;
}

static int exec_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct kal_exec_args a;
	_cleanup_free_ char *sock = NULL;
	_cleanup_free_ const char **env = NULL;
	_cleanup_close_ int fd = -1;
	struct ic_image *img = NULL;
	int code = KAL_EXIT_FAILURE, rc;

	rc = kal_exec_parse(&kal_cmd_exec, argc, argv, true, &a, err);
	if (rc < 0)
		goto out;
	rc = -1;
	if (vmstate_name_check(a.vm, err) < 0)
		goto wrap;
	switch (vmstate_get(ctx->home, a.vm, NULL)) {
	case VMSTATE_MISSING:
		kal_err_set(err, ENOENT, "no such VM `%s`", a.vm);
		goto wrap;
	case VMSTATE_CREATED:
		kal_err_set(err, ENOTCONN, "VM `%s` is not running", a.vm);
		goto wrap;
	case VMSTATE_RUNNING:
		break;
	}
	env = image_defaults(ctx->home, a.vm, &a, &img);
	if (env)
		a.so.env = env;
	sock = vmstate_sock_path(ctx->home, a.vm, err);
	if (!sock)
		goto wrap;
	fd = pty_session_connect(sock, a.vm, err);
	if (fd < 0 || pty_session_run(fd, &a.so, &code, err) < 0)
		goto wrap;
	rc = code;
	goto out;
wrap:
	kal_err_wrap(err, "exec");
out:
	ic_image_free(img);
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
