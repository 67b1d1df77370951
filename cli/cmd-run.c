// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal run [--name N] [--rm] [-d] [-i] [-t] [-e K=V]... [-w DIR] [-u USER]
 *         [--memory SIZE] [--cpus N] [--net none|user] [--engine E] IMAGE [CMD...]
 * Boot a new VM from IMAGE (pulled when missing).  Detached (-d): print its
 * name and leave it running.  Otherwise run CMD (default: the image's
 * Entrypoint + Cmd, with its Env, WorkingDir and User) in it, stop the VM when
 * the command ends (removing it with --rm) and exit with the command's status.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
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

enum {
	OPT_NAME = 0x100,
	OPT_RM,
	OPT_MEMORY,
	OPT_CPUS,
	OPT_NET,
	OPT_ENGINE,
	OPT_HUGEPAGES,
	OPT_PUBLISH,
};

#define RUN_DEFAULT_MEMORY_MIB 512
#define RUN_UPPER_SIZE	       (8ULL << 30)

static const struct kal_opt run_opts[] = {
	{ "name", 0, "NAME", "name the VM (default: generated)", OPT_NAME },
	{ "rm", 0, NULL, "remove the VM when it stops", OPT_RM },
	{ "detach", 'd', NULL, "boot, print the VM's name and leave it running", 0 },
	{ "interactive", 'i', NULL, "keep stdin open and forward it to the command", 0 },
	{ "tty", 't', NULL, "allocate a pseudo-terminal in the guest", 0 },
	{ "env", 'e', "K=V", "set an environment variable (K alone: take it from here)", 0 },
	{ "workdir", 'w', "DIR", "working directory inside the guest", 0 },
	{ "user", 'u', "USER", "user inside the guest", 0 },
	{ "memory", 'm', "SIZE", "guest memory, e.g. 512M or 2G (default 512M)", OPT_MEMORY },
	{ "cpus", 0, "N", "virtual CPUs (default 1)", OPT_CPUS },
	{ "net", 0, "MODE", "network: user (NAT, default) or none", OPT_NET },
	{ "engine", 0, "ENGINE", "kvm, qemu or auto (default: $KAL_ENGINE or auto)", OPT_ENGINE },
	{ "publish", 'p', "[IP:]HOST:GUEST[/udp]",
	  "forward a host port (default IP 127.0.0.1) to the guest; needs --net user", 0 },
	{ "hugepages", 0, NULL, "back guest memory with 2 MiB huge pages (reserved on the host)",
	  OPT_HUGEPAGES },
	{ 0 },
};

long kal_parse_mib(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (!strcasecmp(end, "g") || !strcasecmp(end, "gb") || !strcasecmp(end, "gib"))
		v *= 1024;
	else if (!strcasecmp(end, "k") || !strcasecmp(end, "kb") || !strcasecmp(end, "kib"))
		v /= 1024;
	else if (*end && strcasecmp(end, "m") && strcasecmp(end, "mb") && strcasecmp(end, "mib"))
		return -1;
	if (v < 64 || v > 1024 * 1024)
		return -1;
	return (long)v;
}

/* `kal pull REF` as a child, its output on our stderr (stdout stays clean for -d). */
static int run_pull(const char *home, const char *ref, struct kal_err **err)
{
	int st;
	pid_t pid = fork();

	if (pid < 0)
		return kal_err_sys(err, errno, "fork");
	if (pid == 0) {
		dup2(2, 1);
		execl("/proc/self/exe", "kal", "--home", home, "pull", ref, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return kal_err_sys(err, errno, "waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return kal_err_set(err, EIO, "pull `%s` failed", ref);
	return 0;
}

int kal_run_boot(struct kal_ctx *ctx, const struct kal_run_vm *o, char **name_out,
		 struct ic_image **img_out, struct kal_err **err)
{
	struct ic_image *img = NULL;
	const struct machine_ops *ops;
	_cleanup_free_ char *name = NULL;
	char why[512];
	struct vm_config c = { 0 };
	char digest[80];

	ops = machine_engine_select(o->engine, why, sizeof(why), err);
	if (!ops)
		return -1;
	if (o->name) {
		if (vmstate_name_check(o->name, err) < 0)
			return -1;
		if (vmstate_get(ctx->home, o->name, NULL) != VMSTATE_MISSING)
			return kal_err_set(err, EEXIST, "a VM named `%s` already exists", o->name);
	}
	if (ic_image_open(ctx->home, o->image, false, &img, err) < 0) {
		if (!*err || (*err)->code != ENOENT)
			return -1;
		kal_err_clear(err);
		if (run_pull(ctx->home, o->image, err) < 0 ||
		    ic_image_open(ctx->home, o->image, false, &img, err) < 0)
			return -1;
	}
	if (o->n_publish && o->net != MACHINE_NET_USER) {
		ic_image_free(img);
		return kal_err_set(err, EINVAL, "-p/--publish needs --net user");
	}
	if (o->hugepages && machine_hugepages_check(
				o->memory_mib ? o->memory_mib : RUN_DEFAULT_MEMORY_MIB, err) < 0) {
		ic_image_free(img);
		return -1;
	}
	name = o->name ? xstrdup(o->name) : vmstate_name_generate(ctx->home);
	if (ops->check) {
		struct machine_config mc = {
			.name = name,
			.n_layers = img->n_layers,
			.memory_mib = o->memory_mib ? o->memory_mib : RUN_DEFAULT_MEMORY_MIB,
			.vcpus = o->cpus ? o->cpus : 1,
			.net = o->net,
			.hugepages = o->hugepages,
		};

		if (ops->check(&mc, err) < 0) {
			ic_image_free(img);
			return -1;
		}
	}
	snprintf(digest, sizeof(digest), "sha256:%s", img->manifest_digest.hex);
	c = (struct vm_config){
		.name = name,
		.image = (char *)o->image,
		.image_digest = digest,
		.engine = (char *)ops->name,
		.memory_mib = o->memory_mib ? o->memory_mib : RUN_DEFAULT_MEMORY_MIB,
		.cpus = o->cpus ? o->cpus : 1,
		.net = o->net,
		.hugepages = o->hugepages,
		.publish = (char **)o->publish,
		.n_publish = o->n_publish,
		.created = (long long)time(NULL),
		.auto_remove = o->auto_remove,
		.upper_size = RUN_UPPER_SIZE,
		.layer_paths = img->layer_paths,
		.layer_sizes = img->layer_sizes,
		.n_layers = img->n_layers,
	};
	if (vmstate_create(ctx->home, &c, err) < 0 || supervisor_spawn(ctx->home, name, err) < 0) {
		ic_image_free(img);
		return -1;
	}
	*name_out = steal_ptr(&name);
	if (img_out)
		*img_out = img;
	else
		ic_image_free(img);
	return 0;
}

static int run_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct kal_run_vm o = { .net = MACHINE_NET_USER };
	struct pty_session_opts so = { 0 };
	struct ic_image *img = NULL;
	_cleanup_free_ char *name = NULL, *sock = NULL;
	_cleanup_free_ const char **env = xcalloc((size_t)argc + 1, sizeof(char *));
	_cleanup_free_ const char **cmdv = NULL;
	char **owned = NULL;
	size_t nenv = 0, nowned = 0;
	bool detach = false;
	const char *arg;
	int c, fd = -1, code = -1;
	long v;

	while ((c = kal_cmd_getopt(&kal_cmd_run, argc, argv, &arg, err)) != -1) {
		switch (c) {
		case OPT_NAME:
			o.name = arg;
			break;
		case OPT_RM:
			o.auto_remove = true;
			break;
		case 'd':
			detach = true;
			break;
		case 'i':
			so.interactive = true;
			break;
		case 't':
			so.tty = true;
			break;
		case 'e':
			if (!*arg || *arg == '=') {
				kal_cmd_usage_error(&kal_cmd_run, err,
						    "bad environment variable `%s`", arg);
				goto out;
			}
			if (strchr(arg, '=')) {
				env[nenv++] = arg;
			} else if (getenv(arg)) {
				owned = xreallocarray(owned, nowned + 1, sizeof(char *));
				owned[nowned] = xasprintf("%s=%s", arg, getenv(arg));
				env[nenv++] = owned[nowned++];
			}
			break;
		case 'w':
			so.cwd = arg;
			break;
		case 'u':
			so.user = arg;
			break;
		case OPT_MEMORY:
		case 'm':
			v = kal_parse_mib(arg);
			if (v < 0) {
				kal_cmd_usage_error(
				    &kal_cmd_run, err,
				    "bad --memory `%s` (64M to 1024G, e.g. 512M, 2G)", arg);
				goto out;
			}
			o.memory_mib = (unsigned int)v;
			break;
		case OPT_CPUS:
			v = strtol(arg, (char **)&arg, 10);
			if (*arg || v < 1 || v > 64) {
				kal_cmd_usage_error(&kal_cmd_run, err, "bad --cpus (1 to 64)");
				goto out;
			}
			o.cpus = (unsigned int)v;
			break;
		case OPT_NET:
			if (!strcmp(arg, "user")) {
				o.net = MACHINE_NET_USER;
			} else if (!strcmp(arg, "none")) {
				o.net = MACHINE_NET_NONE;
			} else {
				kal_cmd_usage_error(&kal_cmd_run, err,
						    "bad --net `%s` (user or none)", arg);
				goto out;
			}
			break;
		case OPT_ENGINE:
			o.engine = arg;
			break;
		case OPT_HUGEPAGES:
			o.hugepages = true;
			break;
		case 'p': {
			struct vmm_forward f;
			char canon[MACHINE_FORWARD_CANON_MAX];

			if (o.n_publish >= VMM_MAX_FORWARDS) {
				kal_cmd_usage_error(&kal_cmd_run, err, "at most %d published ports",
						    VMM_MAX_FORWARDS);
				goto out;
			}
			if (machine_forward_parse(arg, &f, canon, err) < 0)
				goto out;
			o.publish[o.n_publish++] = xstrdup(canon);
			break;
		}
		default:
			goto out;
		}
	}
	if (kal_cmd_optind >= argc) {
		kal_cmd_usage_error(&kal_cmd_run, err, "requires an image");
		goto out;
	}
	o.image = argv[kal_cmd_optind];
	if (detach && kal_cmd_optind + 1 < argc) {
		kal_cmd_usage_error(&kal_cmd_run, err,
				    "-d takes no command (start it with `kal exec` afterwards)");
		goto out;
	}
	if (kal_run_boot(ctx, &o, &name, &img, err) < 0)
		goto out;
	if (detach) {
		printf("%s\n", name);
		code = 0;
		goto out;
	}

	/* the command: CMD..., else the image's Entrypoint + Cmd */
	if (kal_cmd_optind + 1 < argc) {
		so.argv = (const char *const *)argv + kal_cmd_optind + 1;
		so.argc = (uint32_t)(argc - kal_cmd_optind - 1);
	} else {
		size_t n = 0;

		for (char **p = img->config.entrypoint; p && *p; p++)
			cmdv = xreallocarray(cmdv, n + 2, sizeof(char *)), cmdv[n++] = *p;
		for (char **p = img->config.cmd; p && *p; p++)
			cmdv = xreallocarray(cmdv, n + 2, sizeof(char *)), cmdv[n++] = *p;
		if (!n) {
			kal_err_set(
			    err, EINVAL,
			    "image `%s` has no default command: give one (kal run IMAGE CMD)",
			    o.image);
			goto stop;
		}
		cmdv[n] = NULL;
		so.argv = cmdv;
		so.argc = (uint32_t)n;
	}
	{
		/* image Env first, -e overrides (the agent takes the last of a name) */
		size_t ni = 0;
		const char **all;

		for (char **p = img->config.env; p && *p; p++)
			ni++;
		all = xcalloc(ni + nenv + 1, sizeof(char *));
		for (size_t i = 0; i < ni; i++)
			all[i] = img->config.env[i];
		for (size_t i = 0; i < nenv; i++)
			all[ni + i] = env[i];
		free(env);
		env = all;
		nenv += ni;
	}
	so.env = env;
	so.envc = (uint32_t)nenv;
	if (!so.cwd && img->config.working_dir && *img->config.working_dir)
		so.cwd = img->config.working_dir;
	if (!so.user && img->config.user && *img->config.user)
		so.user = img->config.user;
	so.vm = name;
	so.ping_ms = 5000;
	so.timeout_ms = 30000;
	sock = pty_session_socket_path(ctx->home, name);
	fd = pty_session_connect(sock, name, err);
	if (fd < 0 || pty_session_run(fd, &so, &code, err) < 0)
		code = -1;
stop:
	if (fd >= 0)
		close(fd);
	{
		/* like a container: the VM ends with its command (and goes with --rm) */
		struct kal_err *serr = NULL;

		if (supervisor_stop(ctx->home, name, 2000, &serr) < 0 && code >= 0) {
			*err = serr;
			serr = NULL;
			code = -1;
		}
		kal_err_free(serr);
	}
out:
	for (size_t i = 0; i < nowned; i++)
		free(owned[i]);
	free(owned);
	for (size_t i = 0; i < o.n_publish; i++)
		free(o.publish[i]);
	if (img)
		ic_image_free(img);
	return code;
}

const struct kal_cmd kal_cmd_run = {
	.name = "run",
	.summary = "boot a new VM from an image and run a command in it",
	.usage = "[--name N] [--rm] [-d] [-i] [-t] [-e K=V]... [-w DIR] [-u USER] [--memory SIZE] "
		 "[--cpus N] [--net user|none] [--engine E] [--hugepages] [-p [IP:]HOST:GUEST]... "
		 "IMAGE [CMD...]",
	.description = "Boot a new microVM from IMAGE (pulled first when it is not cached). "
		       "Without -d, run CMD (default: the image's entrypoint and command) in it, "
		       "stop the VM when it ends and exit with its status (125: kal failed, 126: "
		       "not executable, 127: not found). With -d, print the VM's name and leave it "
		       "running for kal exec and kal shell. --rm removes the VM when it stops.",
	.opts = run_opts,
	.args = KAL_ARG_IMAGE,
	.exec = run_exec,
};
