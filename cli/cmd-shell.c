// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal shell IMAGE|VM: a login shell on a guest PTY (bash -l when the image
 * has it, else sh).  A running VM gets a new shell session; an image gets a
 * fresh VM that is removed when the shell exits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../imagecache/image.h"
#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "../pty/session.h"
#include "../vmm/supervisor.h"
#include "../vmm/vmstate.h"
#include "cmd.h"
#include "run.h"

static const struct kal_opt shell_opts[] = {
	{ "user", 'u', "USER", "user inside the guest", 0 },
	{ "workdir", 'w', "DIR", "working directory inside the guest", 0 },
	{ 0 },
};

static const char *const shell_argv[] = {
	"/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi",
	NULL
};

static int shell_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct pty_session_opts so = {
		.argv = shell_argv, .argc = 3, .tty = true, .interactive = true
	};
	static const char *const env[] = { "TERM=xterm-256color", NULL };
	_cleanup_free_ char *name = NULL, *sock = NULL;
	struct ic_image *img = NULL;
	const char *arg, *target;
	bool fresh = false;
	int c, fd, code = -1;

	while ((c = kal_cmd_getopt(&kal_cmd_shell, argc, argv, &arg, err)) != -1) {
		if (c == '?')
			return -1;
		if (c == 'u')
			so.user = arg;
		if (c == 'w')
			so.cwd = arg;
	}
	if (argc - kal_cmd_optind != 1)
		return kal_cmd_usage_error(&kal_cmd_shell, err, "requires exactly 1 argument");
	target = argv[kal_cmd_optind];
	if (vmstate_name_check(target, NULL) == 0 &&
	    vmstate_get(ctx->home, target, NULL) != VMSTATE_MISSING) {
		name = xstrdup(target);
	} else {
		struct kal_run_vm o = { .image = target,
					.net = MACHINE_NET_USER,
					.auto_remove = true };

		if (kal_run_boot(ctx, &o, &name, &img, err) < 0)
			return -1;
		fresh = true;
	}
	{
		const char *term = getenv("TERM");
		_cleanup_free_ char *t = term && *term ? xasprintf("TERM=%s", term) : NULL;
		const char *e[2] = { t ? t : env[0], NULL };

		so.env = e;
		so.envc = 1;
		so.vm = name;
		so.ping_ms = 5000;
		so.timeout_ms = 30000;
		sock = pty_session_socket_path(ctx->home, name);
		fd = pty_session_connect(sock, name, err);
		if (fd >= 0 && pty_session_run(fd, &so, &code, err) < 0)
			code = -1;
		if (fd >= 0)
			close(fd);
	}
	if (fresh) {
		struct kal_err *serr = NULL;

		supervisor_stop(ctx->home, name, 2000, &serr);
		kal_err_free(serr);
	}
	if (img)
		ic_image_free(img);
	return code;
}

const struct kal_cmd kal_cmd_shell = {
	.name = "shell",
	.summary = "open a login shell in a VM or a fresh VM from an image",
	.usage = "[-u USER] [-w DIR] IMAGE|VM",
	.description = "With a VM name, start a login shell in that running VM. With an image, "
		       "boot a new VM from it, attach a shell, and remove the VM when the shell "
		       "exits. The shell is bash -l when the image has bash, else sh.",
	.opts = shell_opts,
	.args = KAL_ARG_VM,
	.exec = shell_exec,
};
