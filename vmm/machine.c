// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Engine table and selection, the shared kernel command line, and the KVM
 * speed probe that tells hardware KVM apart from a nested KVM that emulates
 * guest kernel mode instruction by instruction (reference/nested-kvm.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "machine.h"

/*
 * FIXME(issue 4): kal's own VMM replaces this entry with the real engine.
 * Until then `kvm` is listed (so --engine kvm gives a clear reason) but never
 * available.
 */
static enum machine_avail kvm_available(char *reason, size_t len)
{
	snprintf(reason, len, "kal's own kvm engine is not built yet");
	return MACHINE_AVAIL_NO;
}

static struct machine *kvm_start(const struct machine_config *cfg, struct kal_err **err)
{
	(void)cfg;
	kal_err_set(err, ENOSYS, "engine `kvm`: not built yet");
	return NULL;
}

const struct machine_ops machine_kvm_ops __attribute__((weak)) = {
	.name = "kvm",
	.available = kvm_available,
	.start = kvm_start,
};

const struct machine_ops *const machine_engines[] = { &machine_kvm_ops, &machine_qemu_ops, NULL };

const struct machine_ops *machine_engine_find(const char *name)
{
	for (size_t i = 0; machine_engines[i]; i++)
		if (strcmp(machine_engines[i]->name, name) == 0)
			return machine_engines[i];
	return NULL;
}

const struct machine_ops *machine_engine_select(const char *want, char *why, size_t len,
						struct kal_err **err)
{
	const struct machine_ops *best = NULL, *slow = NULL;
	char reason[256];
	size_t off = 0;

	if (!want || !*want)
		want = getenv("KAL_ENGINE");
	if (!want || !*want)
		want = "auto";
	if (strcmp(want, "auto") != 0) {
		const struct machine_ops *ops = machine_engine_find(want);

		if (!ops)
			return kal_err_set(err, EINVAL,
					   "unknown engine `%s` (choose kvm, qemu or auto)", want),
			       NULL;
		if (ops->available(reason, sizeof(reason)) == MACHINE_AVAIL_NO)
			return kal_err_set(err, ENODEV, "engine `%s` is not available: %s", want,
					   reason),
			       NULL;
		snprintf(why, len, "%s: asked for (%s)", ops->name, reason);
		return ops;
	}
	why[0] = '\0';
	for (size_t i = 0; machine_engines[i]; i++) {
		const struct machine_ops *ops = machine_engines[i];
		enum machine_avail a = ops->available(reason, sizeof(reason));

		if (off < len)
			off += (size_t)snprintf(why + off, len - off, "%s%s: %s", off ? "; " : "",
						ops->name, reason);
		if (a == MACHINE_AVAIL_YES && !best)
			best = ops;
		if (a == MACHINE_AVAIL_SLOW && !slow)
			slow = ops;
	}
	if (!best)
		best = slow;
	if (!best)
		return kal_err_set(err, ENODEV, "no engine can run here (%s)", why), NULL;
	if (off < len)
		snprintf(why + off, len - off, "; auto picks %s", best->name);
	return best;
}

char *machine_cmdline(const struct machine_config *cfg, const char *layerdev)
{
	return xasprintf("console=ttyS0 quiet panic=-1 reboot=t kal.layers=%zu kal.layerdev=%s "
			 "kal.upper=kal-upper kal.hostname=%s kal.net=%s kal.channel=port%s%s%s",
			 cfg->n_layers, layerdev, cfg->name,
			 cfg->net == MACHINE_NET_USER ? "user" : "none",
			 cfg->nested_quirks ? " kal.nested_quirks=1" : "",
			 cfg->extra_cmdline && *cfg->extra_cmdline ? " " : "",
			 cfg->extra_cmdline ? cfg->extra_cmdline : "");
}

char *machine_kernel_find(struct kal_err **err)
{
	const char *env = getenv("KAL_KERNEL");
	char self[4096];
	ssize_t n;

	if (env && *env) {
		if (access(env, R_OK) < 0)
			return kal_err_sys(err, errno, "kernel `%s` (from KAL_KERNEL)", env), NULL;
		return xstrdup(env);
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		char *slash, *path;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			path = xasprintf("%s/vmlinux", self);
			if (access(path, R_OK) == 0)
				return path;
			free(path);
		}
	}
	if (access("/usr/local/lib/kal/vmlinux", R_OK) == 0)
		return xstrdup("/usr/local/lib/kal/vmlinux");
	return kal_err_set(err, ENOENT,
			   "no guest kernel found (set KAL_KERNEL, or put vmlinux next to the kal "
			   "binary: `make kernel`)"),
	       NULL;
}

/* ---- KVM speed probe ---------------------------------------------------- */

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/*
 * Real-mode code at 0x1000 (CPL0, so a nested KVM that emulates kernel mode
 * emulates it too):  mov ecx, N ; 1: dec ecx ; jnz 1b ; out 0x10, al
 */
static int probe_run(int vcpu, struct kvm_run *run, unsigned char *mem, uint32_t n, double *ns,
		     struct kal_err **err)
{
	static const unsigned char code[] = { 0x66, 0xb9, 0,	0,    0,    0,	 0x66,
					      0x49, 0x75, 0xfc, 0xe6, 0x10, 0xf4 };
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = 0x1000, .rflags = 2 };
	double t0;

	memcpy(mem + 0x1000, code, sizeof(code));
	memcpy(mem + 0x1002, &n, 4);
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return kal_err_sys(err, errno, "KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return kal_err_sys(err, errno, "KVM_SET_REGS");
	t0 = now_ns();
	for (int i = 0; i < 4; i++) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			return kal_err_sys(err, errno, "KVM_RUN");
		}
		if (run->exit_reason == KVM_EXIT_IO && run->io.port == 0x10) {
			*ns = now_ns() - t0;
			return 0;
		}
		if (run->exit_reason != KVM_EXIT_INTR)
			break;
	}
	return kal_err_set(err, EIO, "probe guest stopped unexpectedly (exit reason %u)",
			   run->exit_reason);
}

double machine_kvm_probe_ns(struct kal_err **err)
{
	_cleanup_close_ int kvm = -1, vm = -1, vcpu = -1;
	struct kvm_userspace_memory_region region;
	const size_t memsz = 0x10000;
	unsigned char *mem;
	struct kvm_run *run;
	long runsz;
	double t_small, t_big;
	int rc;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return kal_err_sys(err, errno, "/dev/kvm");
	if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return kal_err_set(err, EINVAL, "/dev/kvm: unsupported API version");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return kal_err_sys(err, errno, "KVM_CREATE_VM");
	mem = mmap(NULL, memsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return kal_err_sys(err, errno, "mmap");
	region = (struct kvm_userspace_memory_region){ .guest_phys_addr = 0,
						       .memory_size = memsz,
						       .userspace_addr = (uintptr_t)mem };
	rc = -1;
	run = MAP_FAILED;
	runsz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		kal_err_sys(err, errno, "KVM_SET_USER_MEMORY_REGION");
		goto out;
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0 || runsz <= 0) {
		kal_err_sys(err, errno, "KVM_CREATE_VCPU");
		goto out;
	}
	run = mmap(NULL, (size_t)runsz, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED) {
		kal_err_sys(err, errno, "mmap vcpu");
		goto out;
	}
	/* the difference of two runs cancels entry/exit costs */
	if (probe_run(vcpu, run, mem, 1000, &t_small, err) < 0 ||
	    probe_run(vcpu, run, mem, 5000, &t_big, err) < 0)
		goto out;
	rc = 0;
out:
	if (run != MAP_FAILED)
		munmap(run, (size_t)runsz);
	munmap(mem, memsz);
	if (rc < 0)
		return kal_err_wrap(err, "kvm probe");
	return t_big > t_small ? (t_big - t_small) / 4000.0 : 0.1;
}
