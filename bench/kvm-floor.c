// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bench/vmm's floor: the least a VMM process can do to run one guest
 * instruction — create a VM with 64 KiB of RAM and one vCPU in real mode, run
 * `out %al, $0xf4`, check that exit, leave.  No devices, no ELF; with
 * `irqchip` also the in-kernel IOAPIC/PIC, with `pit` that and the in-kernel
 * PIT, as kal and QEMU microvm create them.
 * What kal and QEMU pay above this is their own; the rest is the host kernel.
 *   kvm-floor [irqchip|pit]
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#define FLOOR_RAM  0x10000
#define FLOOR_CODE 0x1000

static int fail(const char *what)
{
	perror(what);
	return 1;
}

int main(int argc, char **argv)
{
	static const unsigned char code[] = { 0xe6, 0xf4, 0xf4 }; /* out %al,$0xf4; hlt */
	struct kvm_userspace_memory_region region = { 0 };
	struct kvm_sregs sregs;
	struct kvm_regs regs = { 0 };
	struct kvm_run *run;
	unsigned char *ram;
	int kvm, vm, vcpu, size;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail("/dev/kvm");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return fail("KVM_CREATE_VM");
	if (argc > 1) {
		struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

		if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000) < 0 ||
		    ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0)
			return fail("KVM_CREATE_IRQCHIP");
		if (strcmp(argv[1], "pit") == 0 && ioctl(vm, KVM_CREATE_PIT2, &pit) < 0)
			return fail("KVM_CREATE_PIT2");
	}
	ram = mmap(NULL, FLOOR_RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED)
		return fail("mmap");
	memcpy(ram + FLOOR_CODE, code, sizeof(code));
	region.memory_size = FLOOR_RAM;
	region.userspace_addr = (unsigned long)ram;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vcpu < 0 || size < 0)
		return fail("KVM_CREATE_VCPU");
	run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap vcpu");
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return fail("KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		return fail("KVM_SET_SREGS");
	regs.rip = FLOOR_CODE;
	regs.rflags = 0x2;
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return fail("KVM_SET_REGS");
	if (ioctl(vcpu, KVM_RUN, 0) < 0)
		return fail("KVM_RUN");
	if (run->exit_reason != KVM_EXIT_IO || run->io.port != 0xf4) {
		fprintf(stderr, "kvm-floor: unexpected exit %u\n", run->exit_reason);
		return 1;
	}
	return 0;
}
