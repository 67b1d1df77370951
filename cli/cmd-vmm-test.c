// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal __vmm-test-guest ELF [--blk FILE] [--pmem FILE] [--mem MIB] [--agent ring|console]:
 * boots a test guest (tests/guest-bare/) on kal's own KVM VMM with a console
 * on stdin/stdout, rng, and the given disk and pmem image; the guest's debug
 * port goes to stdout too.  --agent adds the agent channel (shared-memory
 * rings, or the plain console stream) with its host side looped back through
 * one pipe, so every byte the guest sends comes back to it.  Exits with the
 * guest's exit code.  Hidden: a test hook for tests/bats/40-vmm-bare.bats.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/err.h"
#include "../vmm/kvm.h"
#include "cmd.h"

enum {
	OPT_BLK = 256,
	OPT_PMEM,
	OPT_MEM,
	OPT_CPUS,
	OPT_CMDLINE,
	OPT_INITRD,
	OPT_AGENT,
	OPT_HUGEPAGES,
	OPT_NET
};

static const struct kal_opt vmm_test_opts[] = {
	{ .name = "blk", .arg = "FILE", .help = "attach FILE as a virtio-blk disk", .id = OPT_BLK },
	{ .name = "pmem",
	  .arg = "FILE",
	  .help = "attach FILE as read-only virtio-pmem",
	  .id = OPT_PMEM },
	{ .name = "mem", .arg = "MIB", .help = "guest memory in MiB (default 64)", .id = OPT_MEM },
	{ .name = "cpus",
	  .arg = "N",
	  .help = "vCPUs (default 1; the others wait for SIPI)",
	  .id = OPT_CPUS },
	{ .name = "cmdline",
	  .arg = "STR",
	  .help = "kernel command line before the device entries",
	  .id = OPT_CMDLINE },
	{ .name = "initrd",
	  .arg = "FILE",
	  .help = "uncompressed initramfs (PVH module 0)",
	  .id = OPT_INITRD },
	{ .name = "hugepages", .help = "guest RAM on 2 MiB huge pages", .id = OPT_HUGEPAGES },
	{ .name = "agent",
	  .arg = "ring|console",
	  .help = "agent channel on shared-memory rings or the console stream, echoed back",
	  .id = OPT_AGENT },
	{ .name = "net",
	  .arg = "user",
	  .help = "attach virtio-net on libslirp (the guest ARPs for 10.0.2.2)",
	  .id = OPT_NET },
	{ 0 },
};

/* --agent: one pipe, host output end to host input end: the guest's bytes come back */
static int agent_loop(struct vmm_config *cfg, const char *mode, struct kal_err **err)
{
	const char *poll;
	int p[2];

	if (strcmp(mode, "ring") && strcmp(mode, "console"))
		return kal_cmd_usage_error(&kal_cmd_vmm_test_guest, err,
					   "--agent: `%s` is neither `ring` nor `console`", mode);
	if (cfg->agent_in >= 0)
		return kal_cmd_usage_error(&kal_cmd_vmm_test_guest, err, "--agent given twice");
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return kal_err_sys(err, errno, "pipe");
	cfg->agent_in = p[0];
	cfg->agent_out = p[1];
	cfg->agent_ring = strcmp(mode, "ring") == 0;
	/* KAL_VMM_CHAN_POLL_US: the ring host's idle polling window (bench/vmm compares) */
	poll = getenv("KAL_VMM_CHAN_POLL_US");
	cfg->agent_poll_us = poll ? (unsigned int)strtoul(poll, NULL, 10) : 0;
	return 0;
}

static int parse_opts(struct vmm_config *cfg, int argc, char **argv, struct kal_err **err)
{
	const char *arg;
	char *end;
	int c;

	while ((c = kal_cmd_getopt(&kal_cmd_vmm_test_guest, argc, argv, &arg, err)) != -1) {
		switch (c) {
		case OPT_BLK:
			if (cfg->nr_disks >= VMM_MAX_DISKS)
				return kal_cmd_usage_error(&kal_cmd_vmm_test_guest, err,
							   "too many disks");
			cfg->disks[cfg->nr_disks++] =
			    (struct vmm_disk){ .path = arg, .serial = "kal-test-disk" };
			break;
		case OPT_PMEM:
			if (cfg->nr_pmem >= VMM_MAX_PMEM)
				return kal_cmd_usage_error(&kal_cmd_vmm_test_guest, err,
							   "too many pmem images");
			cfg->pmem[cfg->nr_pmem++] = arg;
			break;
		case OPT_MEM:
			errno = 0;
			cfg->ram_size = strtoull(arg, &end, 10) << 20;
			if (errno || *end || end == arg)
				return kal_cmd_usage_error(&kal_cmd_vmm_test_guest, err,
							   "bad memory size `%s`", arg);
			break;
		case OPT_CPUS:
			errno = 0;
			cfg->cpus = (unsigned int)strtoul(arg, &end, 10);
			if (errno || *end || end == arg)
				return kal_cmd_usage_error(&kal_cmd_vmm_test_guest, err,
							   "bad vCPU count `%s`", arg);
			break;
		case OPT_HUGEPAGES:
			cfg->hugepages = true;
			break;
		case OPT_INITRD:
			cfg->initrd = arg;
			break;
		case OPT_CMDLINE:
			cfg->cmdline = arg;
			break;
		case OPT_AGENT:
			if (agent_loop(cfg, arg, err) < 0)
				return -1;
			break;
		case OPT_NET:
			if (strcmp(arg, "user") != 0)
				return kal_cmd_usage_error(&kal_cmd_vmm_test_guest, err,
							   "--net: `%s` is not `user`", arg);
			cfg->net_user = true;
			break;
		default:
			return -1;
		}
	}
	return 0;
}

static bool kal_env_is_1(const char *name)
{
	const char *v = getenv(name);

	return v && strcmp(v, "1") == 0;
}

static int vmm_test_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	struct vmm_config cfg = {
		.cmdline = "kal.test=bare",
		.ram_size = 64ull << 20,
		.cpus = 1,
		.console_in = STDIN_FILENO,
		.console_out = STDOUT_FILENO,
		.agent_in = -1,
		.agent_out = -1,
		.debug_out = STDOUT_FILENO,
		.serial_out = STDOUT_FILENO,
		.rng = true,
		.test_hooks = true,
		/* hidden hooks for tests/bats/40-vmm-bare.bats (seccomp checks) */
		.test_hold = kal_env_is_1("KAL_VMM_TEST_HOLD"),
		.seccomp_selftest = kal_env_is_1("KAL_VMM_SECCOMP_SELFTEST"),
	};
	struct vmm_exit ex = { 0 };
	struct timespec t0, t1;
	struct vm *vm;
	int first, r;

	(void)ctx;
	/* options may come before and after the ELF */
	if (parse_opts(&cfg, argc, argv, err) < 0)
		return -1;
	first = kal_cmd_optind;
	if (first >= argc)
		return kal_cmd_usage_error(&kal_cmd_vmm_test_guest, err, "requires an ELF file");
	cfg.kernel = argv[first];
	optind = 0;
	if (parse_opts(&cfg, argc - first, argv + first, err) < 0)
		return -1;
	if (kal_cmd_optind < argc - first)
		return kal_cmd_usage_error(&kal_cmd_vmm_test_guest, err, "unexpected argument `%s`",
					   argv[first + kal_cmd_optind]);
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	vm = vmm_vm_create(&cfg, err);
	if (!vm)
		return kal_err_wrap(err, "vmm");
	r = vmm_vm_run(vm, &ex, err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	vmm_vm_destroy(vm);
	if (r < 0)
		return kal_err_wrap(err, "vmm");
	fprintf(stderr, "vmm: %s after %.3f s\n", ex.reason,
		(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	if (ex.kind != VMM_EXIT_GUEST)
		return kal_err_set(err, 0, "vmm: %s", ex.reason);
	return ex.code;
}

const struct kal_cmd kal_cmd_vmm_test_guest = {
	.name = "__vmm-test-guest",
	.summary = "boot a bare test guest on kal's KVM VMM (test hook)",
	.usage =
	    "ELF [--blk FILE] [--pmem FILE] [--mem MIB] [--cpus N] [--cmdline STR] [--initrd FILE] "
	    "[--agent ring|console] [--net user] [--hugepages]",
	.opts = vmm_test_opts,
	.args = KAL_ARG_FILE,
	.flags = KAL_CMD_HIDDEN,
	.exec = vmm_test_exec,
};
