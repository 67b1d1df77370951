// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal __vmm: the process of one VM on kal's own VMM (vmm/kvm.c), started by
 * the `kvm` engine (vmm/kvm-engine.c) through a re-exec of kal.  Fd 3 is the
 * agent stream (a socket; in the guest the `kal.agent` port, or with
 * --agent-ring the shared-memory rings), fd 4 receives the serial
 * console; SIGTERM, SIGINT or SIGHUP stop the VM.  The last stderr line says
 * how the VM ended; the exit status is 0 when the guest shut down or was
 * stopped, 1 when the VMM failed.  Hidden: not a user command.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../lib/err.h"
#include "../vmm/kvm.h"
#include "../vmm/machine.h"
#include "cmd.h"

enum {
	OPT_KERNEL = 256,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_MEM,
	OPT_CPUS,
	OPT_PMEM,
	OPT_DISK,
	OPT_AGENT_RING,
	OPT_NET,
	OPT_HUGEPAGES,
	OPT_PUBLISH
};

static const struct kal_opt vmm_opts[] = {
	{ .name = "kernel", .arg = "FILE", .help = "uncompressed vmlinux (PVH)", .id = OPT_KERNEL },
	{ .name = "initrd", .arg = "FILE", .help = "uncompressed initramfs", .id = OPT_INITRD },
	{ .name = "cmdline", .arg = "STR", .help = "kernel command line", .id = OPT_CMDLINE },
	{ .name = "mem", .arg = "MIB", .help = "guest memory in MiB", .id = OPT_MEM },
	{ .name = "cpus", .arg = "N", .help = "vCPUs", .id = OPT_CPUS },
	{ .name = "pmem", .arg = "FILE", .help = "read-only virtio-pmem layer", .id = OPT_PMEM },
	{ .name = "disk",
	  .arg = "SERIAL=FILE",
	  .help = "read-write virtio-blk disk",
	  .id = OPT_DISK },
	{ .name = "agent-ring",
	  .help =
	      "carry the agent stream on shared-memory rings (guest/chan.h); the port only rings",
	  .id = OPT_AGENT_RING },
	{ .name = "publish",
	  .arg = "IP:HOST:GUEST/PROTO",
	  .help = "with --net user: forward a host port to the guest",
	  .id = OPT_PUBLISH },
	{ .name = "hugepages", .help = "guest RAM on 2 MiB huge pages", .id = OPT_HUGEPAGES },
	{ .name = "net",
	  .arg = "MODE",
	  .help = "user: virtio-net on libslirp (10.0.2.15, gateway 10.0.2.2); none (default)",
	  .id = OPT_NET },
	{ 0 },
};

static int parse_uint(const char *what, const char *arg, unsigned long max, unsigned long *out,
		      struct kal_err **err)
{
	char *end;

	errno = 0;
	*out = strtoul(arg, &end, 10);
	if (errno || *end || end == arg || *arg == '-' || *out == 0 || *out > max)
		return kal_cmd_usage_error(&kal_cmd_vmm, err, "bad %s `%s`", what, arg);
	return 0;
}

static int vmm_parse(struct vmm_config *cfg, int argc, char **argv, struct kal_err **err)
{
	unsigned long v;
	const char *arg;
	char *eq;
	int c;

	while ((c = kal_cmd_getopt(&kal_cmd_vmm, argc, argv, &arg, err)) != -1) {
		switch (c) {
		case OPT_KERNEL:
			cfg->kernel = arg;
			break;
		case OPT_INITRD:
			cfg->initrd = arg;
			break;
		case OPT_CMDLINE:
			cfg->cmdline = arg;
			break;
		case OPT_MEM:
			if (parse_uint("memory size", arg, VMM_RAM_MAX >> 20, &v, err) < 0)
				return -1;
			cfg->ram_size = (uint64_t)v << 20;
			break;
		case OPT_CPUS:
			if (parse_uint("vCPU count", arg, 64, &v, err) < 0)
				return -1;
			cfg->cpus = (unsigned int)v;
			break;
		case OPT_PMEM:
			if (cfg->nr_pmem >= VMM_MAX_PMEM)
				return kal_cmd_usage_error(&kal_cmd_vmm, err,
							   "at most %d pmem layers", VMM_MAX_PMEM);
			cfg->pmem[cfg->nr_pmem++] = arg;
			break;
		case OPT_AGENT_RING:
			cfg->agent_ring = true;
			break;
		case OPT_NET:
			if (strcmp(arg, "user") != 0 && strcmp(arg, "none") != 0)
				return kal_cmd_usage_error(&kal_cmd_vmm, err,
							   "--net wants `user` or `none`, not `%s`",
							   arg);
			cfg->net_user = strcmp(arg, "user") == 0;
			break;
		case OPT_HUGEPAGES:
			cfg->hugepages = true;
			break;
		case OPT_PUBLISH:
			if (cfg->nr_forwards >= VMM_MAX_FORWARDS)
				return kal_cmd_usage_error(
				    &kal_cmd_vmm, err, "at most %d --publish", VMM_MAX_FORWARDS);
			if (machine_forward_parse(arg, &cfg->forwards[cfg->nr_forwards], NULL,
						  err) < 0)
				return -1;
			cfg->nr_forwards++;
			break;
		case OPT_DISK:
			eq = strchr(arg, '=');
			if (!eq || eq == arg || !eq[1])
				return kal_cmd_usage_error(
				    &kal_cmd_vmm, err, "--disk wants SERIAL=FILE, not `%s`", arg);
			if (cfg->nr_disks >= VMM_MAX_DISKS)
				return kal_cmd_usage_error(&kal_cmd_vmm, err, "at most %d disks",
							   VMM_MAX_DISKS);
			*eq = '\0';
			cfg->disks[cfg->nr_disks++] =
			    (struct vmm_disk){ .path = eq + 1, .serial = arg };
			break;
		default:
			return -1;
		}
	}
	if (kal_cmd_optind < argc)
		return kal_cmd_usage_error(&kal_cmd_vmm, err, "unexpected argument `%s`",
					   argv[kal_cmd_optind]);
	if (!cfg->kernel)
		return kal_cmd_usage_error(&kal_cmd_vmm, err, "--kernel is required");
	return 0;
}

/* fd 3 must be an open socket or pipe the engine handed over */
static int vmm_inherited_fd(int fd, const char *what, struct kal_err **err)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return kal_err_set(err, EBADF,
				   "fd %d (%s) is not open: `kal __vmm` is started by "
				   "the kvm engine, not by hand",
				   fd, what);
	if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return kal_err_sys(err, errno, "fd %d (%s)", fd, what);
	return fd;
}

static int vmm_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct vmm_config cfg = {
		.ram_size = 256ull << 20,
		.cpus = 1,
		.console_in = -1,
		.console_out = -1,
		.debug_out = -1,
		.rng = true,
	};
	struct vmm_exit ex = { 0 };
	sigset_t stop;
	struct vm *vm;
	int agent, r;

	(void)ctx;
	if (vmm_parse(&cfg, argc, argv, err) < 0)
		return -1;
	agent = vmm_inherited_fd(3, "agent stream", err);
	if (agent < 0)
		return -1;
	cfg.serial_out = vmm_inherited_fd(4, "console", err);
	if (cfg.serial_out < 0)
		return -1;
	/* the console device reads and writes through separate fds (one epoll entry each) */
	cfg.agent_in = agent;
	cfg.agent_out = fcntl(agent, F_DUPFD_CLOEXEC, 5);
	if (cfg.agent_out < 0)
		return kal_err_sys(err, errno, "dup");
	/* blocked before any thread exists, so only the signalfd ever sees them */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop, NULL);
	cfg.host_stop_fd = signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK);
	if (cfg.host_stop_fd < 0)
		return kal_err_sys(err, errno, "signalfd");
	vm = vmm_vm_create(&cfg, err);
	if (!vm)
		return kal_err_wrap(err, "vmm");
	r = vmm_vm_run(vm, &ex, err);
	vmm_vm_destroy(vm);
	if (r < 0)
		return kal_err_wrap(err, "vmm");
	fprintf(stderr, "vmm: %s\n", ex.reason);
	switch (ex.kind) {
	case VMM_EXIT_SHUTDOWN:
	case VMM_EXIT_STOPPED:
		return 0;
	case VMM_EXIT_GUEST:
		return ex.code;
	case VMM_EXIT_ERROR:
		break;
	}
	return 1;
}

const struct kal_cmd kal_cmd_vmm = {
	.name = "__vmm",
	.summary = "run one VM on kal's own VMM (started by the kvm engine)",
	.usage =
	    "--kernel FILE [--initrd FILE] [--cmdline STR] [--mem MIB] [--cpus N] "
	    "[--agent-ring] [--hugepages]  [--net user|none] [--publish SPEC]... [--pmem FILE]... "
	    "[--disk SERIAL=FILE]...",
	.opts = vmm_opts,
	.flags = KAL_CMD_HIDDEN,
	.exec = vmm_exec,
};
