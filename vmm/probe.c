// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Speed probe for the engine choice: a throw-away VM runs a real-mode
 * (CPL0) countdown loop twice, short and long, and the difference gives the
 * cost of one guest kernel-mode instruction without the VM-entry overhead.
 * Hardware KVM: well under 1 ns.  The nested kvm_pvm build hosts emulate
 * CPL0 code: about 1000 ns.  See reference/nested-kvm.md.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "kvm.h"

#define PROBE_MEM   0x10000
#define PROBE_CODE  0x1000
#define PROBE_SHORT 200u
#define PROBE_LONG  10200u

/* mov ecx, N; 1: dec ecx; jnz 1b; out 0xf4, al; hlt  (16-bit code) */
static void probe_code(uint8_t *p, uint32_t n)
{
	static const uint8_t tail[] = { 0x66, 0x49, 0x75, 0xfc, 0xe6, 0xf4, 0xf4 };

	p[0] = 0x66;
	p[1] = 0xb9;
	memcpy(p + 2, &n, 4);
	memcpy(p + 6, tail, sizeof(tail));
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* One timed run of the loop with n iterations; returns ns or < 0 with *err. */
static double probe_run(int vcpu, struct kvm_run *run, uint8_t *mem, uint32_t n,
			struct kal_err **err)
{
	struct kvm_regs regs = { .rip = PROBE_CODE, .rflags = 0x2 };
	double t0, t1;

	probe_code(mem + PROBE_CODE, n);
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return kal_err_sys(err, errno, "speed probe: KVM_SET_REGS");
	t0 = now_ns();
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			return kal_err_sys(err, errno, "speed probe: KVM_RUN");
		}
		if (run->exit_reason == KVM_EXIT_IO && run->io.port == VMM_PORT_EXIT)
			break;
		return kal_err_set(err, EIO, "speed probe: unexpected exit %u", run->exit_reason);
	}
	t1 = now_ns();
	return t1 - t0;
}

int vmm_kvm_probe_speed(double *ns_per_insn, struct kal_err **err)
{
	_cleanup_close_ int kvm = -1, vm = -1, vcpu = -1;
	struct kvm_userspace_memory_region slot = { .memory_size = PROBE_MEM };
	struct kvm_sregs sr;
	struct kvm_run *run = MAP_FAILED;
	uint8_t *mem = MAP_FAILED;
	double best_short = 1e18, best_long = 1e18;
	long run_size;
	int ret = -1;

	*ns_per_insn = 0;
	kvm = vmm_kvm_open(err);
	if (kvm < 0)
		return -1;
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return kal_err_sys(err, errno, "speed probe: KVM_CREATE_VM");
	if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0) {
		/* only Intel needs it; on others the probe works without */
	}
	mem = mmap(NULL, PROBE_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return kal_err_sys(err, errno, "speed probe: mmap");
	slot.userspace_addr = (uint64_t)(uintptr_t)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
		kal_err_sys(err, errno, "speed probe: KVM_SET_USER_MEMORY_REGION");
		goto out;
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vcpu < 0 || run_size <= 0) {
		kal_err_sys(err, errno, "speed probe: KVM_CREATE_VCPU");
		goto out;
	}
	run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED) {
		kal_err_sys(err, errno, "speed probe: mmap kvm_run");
		goto out;
	}
	/* real mode, code segment at 0: CPL0, which nested kvm_pvm emulates */
	if (ioctl(vcpu, KVM_GET_SREGS, &sr) < 0) {
		kal_err_sys(err, errno, "speed probe: KVM_GET_SREGS");
		goto out;
	}
	sr.cs.base = 0;
	sr.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sr) < 0) {
		kal_err_sys(err, errno, "speed probe: KVM_SET_SREGS");
		goto out;
	}
	/* best of three each: the host is noisy, the minimum is the machine */
	for (int i = 0; i < 3; i++) {
		double s = probe_run(vcpu, run, mem, PROBE_SHORT, err);
		double l = s < 0 ? s : probe_run(vcpu, run, mem, PROBE_LONG, err);

		if (s < 0 || l < 0)
			goto out;
		best_short = s < best_short ? s : best_short;
		best_long = l < best_long ? l : best_long;
	}
	/* two instructions per iteration */
	*ns_per_insn = (best_long - best_short) / (2.0 * (PROBE_LONG - PROBE_SHORT));
	if (*ns_per_insn < 0)
		*ns_per_insn = 0;
	ret = 0;
out:
	if (run != MAP_FAILED)
		munmap(run, (size_t)run_size);
	munmap(mem, PROBE_MEM);
	return ret;
}
