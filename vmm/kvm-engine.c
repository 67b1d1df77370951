// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The `kvm` engine: kal's own VMM (vmm/kvm.c) in a process of its own, kal
 * re-executed as `kal __vmm` (cli/cmd-vmm.c), so a VMM crash or seccomp kill
 * never takes the supervisor down.  Layers are read-only virtio-pmem devices
 * (kal.layerdev=pmem: the guest mounts /dev/pmemN as EROFS with -o dax, so
 * layer pages are the host's page cache, never copied into guest memory),
 * the upper disk a read-write virtio-blk one.  The agent
 * stream (a socketpair here) runs on the shared-memory rings (guest/chan.h),
 * with the virtio-console port `kal.agent` as their doorbell; the serial
 * console is a second socketpair.  Stop is SIGTERM (the VMM ends the VM),
 * SIGKILL after the timeout; the VMM dies with the supervisor.
 *
 * On hosts whose KVM emulates guest kernel mode (the nested build machines,
 * reference/nested-kvm.md) the engine adds the guest kernel's workarounds:
 * clearcpuid= for the instructions that emulation cannot run, and
 * kal.nested_quirks=1 for kal's three nested-quirks kernel patches.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "child.h"
#include "machine.h"

/* what emulated kernel mode cannot run (reference/nested-kvm.md, table rows 1, 2, 4, 6) */
#define KVM_NESTED_CMDLINE "clearcpuid=cx16,xsave,popcnt,smap,erms,fsrm noreplace-smp"

struct kvm_machine {
	struct machine m;
	struct machine_child c; /* fd[0] agent, fd[1] console */
	char *log_path;
};

static enum machine_avail kvm_available(char *reason, size_t len)
{
	struct kal_err *err = NULL;
	double ns = machine_kvm_probe_ns(&err);

	if (ns < 0) {
		snprintf(reason, len, "%s", err->msg);
		kal_err_free(err);
		return MACHINE_AVAIL_NO;
	}
	if (ns > MACHINE_KVM_FAST_NS) {
		snprintf(reason, len,
			 "kal's VMM; this KVM emulates guest kernel mode (%.0f ns per "
			 "instruction): a Linux boot takes minutes",
			 ns);
		return MACHINE_AVAIL_CRAWL;
	}
	snprintf(reason, len, "kal's VMM on hardware-speed KVM (%.1f ns per instruction)", ns);
	return MACHINE_AVAIL_YES;
}

static bool kvm_nested(void)
{
	struct kal_err *err = NULL;
	double ns = machine_kvm_probe_ns(&err);

	kal_err_free(err);
	return ns > MACHINE_KVM_FAST_NS;
}

static int kvm_check(const struct machine_config *cfg, struct kal_err **err)
{
	if (cfg->n_layers > VMM_MAX_PMEM)
		return kal_err_set(err, E2BIG, "engine `kvm`: %zu layers, at most %d",
				   cfg->n_layers, VMM_MAX_PMEM);
	if (cfg->memory_mib < 64 || (uint64_t)cfg->memory_mib << 20 > VMM_RAM_MAX ||
	    cfg->memory_mib % 2)
		return kal_err_set(
		    err, EINVAL,
		    "engine `kvm`: %u MiB of memory: must be 64 MiB to 3 GiB in 2 MiB "
		    "steps",
		    cfg->memory_mib);
	return 0;
}

static int kvm_build_argv(struct machine_argv *a, const struct machine_config *cfg,
			  struct kal_err **err)
{
	struct machine_config c = *cfg;
	_cleanup_free_ char *base = NULL, *cmdline = NULL;

	if (kvm_check(cfg, err) < 0)
		return -1;
	c.nested_quirks = cfg->nested_quirks || kvm_nested();
	/* reboot=k: an i8042 reset is one port write; a triple fault fails under emulated KVM */
	base = machine_cmdline(&c, "pmem", 'k');
	cmdline = c.nested_quirks ? xasprintf("%s " KVM_NESTED_CMDLINE, base) : xstrdup(base);
	machine_arg(a, "kal");
	machine_arg(a, "__vmm");
	machine_arg(a, "--kernel");
	machine_arg(a, "%s", cfg->kernel_path);
	machine_arg(a, "--initrd");
	machine_arg(a, "%s", cfg->initrd_path);
	machine_arg(a, "--cmdline");
	machine_arg(a, "%s", cmdline);
	machine_arg(a, "--mem");
	machine_arg(a, "%u", cfg->memory_mib);
	/* the agent stream on the shared-memory rings, the port only rings their doorbell */
	machine_arg(a, "--agent-ring");
	if (cfg->hugepages)
		machine_arg(a, "--hugepages");
	machine_arg(a, "--cpus");
	machine_arg(a, "%u", cfg->vcpus ? cfg->vcpus : 1);
	/* pmem devices in layer order: region N, so /dev/pmemN, is layer N */
	for (size_t i = 0; i < cfg->n_layers; i++) {
		machine_arg(a, "--pmem");
		machine_arg(a, "%s", cfg->layers[i].path);
	}
	machine_arg(a, "--disk");
	machine_arg(a, "kal-upper=%s", cfg->upper_path);
	/* kal.net=user is on the command line: kal-init sets 10.0.2.15/24 statically */
	if (cfg->net == MACHINE_NET_USER) {
		machine_arg(a, "--net");
		machine_arg(a, "user");
		for (size_t i = 0; i < cfg->n_publish; i++) {
			machine_arg(a, "--publish");
			machine_arg(a, "%s", cfg->publish[i]);
		}
	}
	return 0;
}

static struct machine *kvm_start(const struct machine_config *cfg, struct kal_err **err)
{
	struct machine_argv a = { 0 };
	struct kvm_machine *k;

	if (kvm_build_argv(&a, cfg, err) < 0) {
		machine_argv_free(&a);
		return NULL;
	}
	k = xzalloc(sizeof(*k));
	k->m.ops = &machine_kvm_ops;
	k->log_path = xasprintf("%s/vmm.log", cfg->state_dir);
	/* fds 3 (agent) and 4 (console) in the VMM: cli/cmd-vmm.c */
	if (machine_child_spawn(&k->c, "/proc/self/exe", a.v, 2, k->log_path, err) < 0) {
		free(k->log_path);
		free(k);
		k = NULL;
	}
	machine_argv_free(&a);
	return k ? &k->m : NULL;
}

static int kvm_stop(struct machine *m, int timeout_ms, struct kal_err **err)
{
	struct kvm_machine *k = container_of(m, struct kvm_machine, m);

	(void)err;
	if (!k->c.reaped)
		kill(k->c.pid, SIGTERM); /* the VMM ends the VM and exits */
	machine_child_end(&k->c, timeout_ms);
	return 0;
}

static int kvm_exit_fd(struct machine *m)
{
	return container_of(m, struct kvm_machine, m)->c.pidfd;
}

static int kvm_wait(struct machine *m, char *desc, size_t len)
{
	struct kvm_machine *k = container_of(m, struct kvm_machine, m);
	char tail[200], how[64];

	if (!machine_child_reap(&k->c, false))
		return 0;
	/* the VMM's last stderr line says how the VM ended ("vmm: guest reset the machine") */
	machine_child_log_tail(k->log_path, tail, sizeof(tail));
	if (WIFEXITED(k->c.status) && WEXITSTATUS(k->c.status) == 0) {
		snprintf(desc, len, "%s", tail);
		return 1;
	}
	machine_child_describe(&k->c, "vmm", how, sizeof(how));
	snprintf(desc, len, "%s (%s)", how, tail);
	return 1;
}

static int kvm_agent_fd(struct machine *m)
{
	return container_of(m, struct kvm_machine, m)->c.fd[0];
}

static int kvm_console_fd(struct machine *m)
{
	return container_of(m, struct kvm_machine, m)->c.fd[1];
}

static void kvm_destroy(struct machine *m)
{
	struct kvm_machine *k;

	if (!m)
		return;
	k = container_of(m, struct kvm_machine, m);
	machine_child_free(&k->c);
	free(k->log_path);
	free(k);
}

const struct machine_ops machine_kvm_ops = {
	.name = "kvm",
	.available = kvm_available,
	.check = kvm_check,
	.start = kvm_start,
	.stop = kvm_stop,
	.exit_fd = kvm_exit_fd,
	.wait = kvm_wait,
	.agent_fd = kvm_agent_fd,
	.console_fd = kvm_console_fd,
	.destroy = kvm_destroy,
};
