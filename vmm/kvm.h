/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kal's KVM VMM: one VM per process.  Guest RAM comes from a memfd, the
 * irqchip (PIC, IOAPIC, LAPIC, PIT) is KVM's, virtio-mmio devices sit in a
 * window at VMM_MMIO_BASE with one GSI each, and the kernel is booted
 * directly through its PVH entry.  vCPU threads handle MMIO/PIO exits; one
 * I/O thread serves queue kicks (ioeventfd) and host fds.  A misbehaving
 * guest never stops the VMM: bad accesses are dropped with rate-limited
 * warnings, and only a guest shutdown, a KVM failure or a stop request end it.
 *
 *   guest-physical layout
 *   [0, ram)                     RAM (memfd), boot data in the first 64 KiB (boot.h)
 *   [0xcf000000, +64K)           agent channel rings (agent_ring; guest/chan.h), shared memfd
 *   [0xcf010000, +4K)            agent channel doorbell page, no memslot: ioeventfds
 *   [0xd0000000, +4K*n)          virtio-mmio windows, GSI 5, 6, ...
 *   [4 GiB, ...)                 pmem windows, read-only slots, 1 GiB aligned
 *   I/O ports 0x3f8-0x3ff        COM1, transmit only (serial.h)
 *   I/O port 0xe9                debug output (bytes to the debug fd)
 *   I/O port 0xf4                exit: the value written is the VM's exit code
 *   I/O port 0xf5                with test_hooks: out = save every device and restore it
 *                                from the record, in = 0 when the last round trip worked
 */
#ifndef KAL_VMM_KVM_H
#define KAL_VMM_KVM_H

#include <stdbool.h>
#include <stdint.h>

struct kal_err;
struct vm;

#define VMM_MMIO_BASE	   0xd0000000ull
#define VMM_MMIO_FIRST_GSI 5
#define VMM_PMEM_BASE	   0x100000000ull
#define VMM_PMEM_ALIGN	   (1ull << 30)
#define VMM_RAM_MAX	   0xc0000000ull /* RAM stays below the MMIO window */
#define VMM_PORT_DEBUG	   0xe9
#define VMM_PORT_EXIT	   0xf4
#define VMM_PORT_SNAPSHOT  0xf5 /* test hook (test_hooks only): device save/restore round trip */
#define VMM_MAX_DISKS	   8
#define VMM_MAX_PMEM	   8

/* A published port: host_addr:host_port on the host is forwarded to the guest's 10.0.2.15:guest_port. */
struct vmm_forward {
	bool udp;
	uint32_t host_addr; /* IPv4, network byte order */
	uint16_t host_port, guest_port;
};
#define VMM_MAX_FORWARDS 16

struct vmm_disk {
	const char *path;
	const char *serial;
	bool read_only;
};

struct vmm_config {
	const char *kernel;  /* ELF with a PVH entry note */
	const char *cmdline; /* the VMM appends the virtio_mmio.device= entries */
	const char *initrd;  /* uncompressed initramfs (PVH module 0), or NULL */
	uint64_t ram_size;   /* bytes, multiple of 2 MiB */
	unsigned int cpus;   /* >= 1 */
	int console_in;	     /* host fd feeding the virtio console, or -1 */
	int console_out;     /* host fd receiving console output, or -1: no console */
	int agent_in;	     /* host fd feeding the guest's `kal.agent` port, or -1 */
	int agent_out;	     /* host fd receiving that port's output, or -1: no agent port */
	int debug_out;	     /* host fd receiving port 0xe9 bytes, or -1 */
	int serial_out;	     /* host fd receiving COM1 (ttyS0) output, or -1 */
	int host_stop_fd;    /* > 0: the VM stops when this fd turns readable (a signalfd) */
	/*
	 * The agent stream on the shared-memory rings (guest/chan.h), bridged to
	 * agent_in/agent_out; the `kal.agent` port then only carries the
	 * host -> guest doorbell bytes.  false: the port carries the stream.
	 */
	bool agent_ring;
	/*
	 * With agent_ring: microseconds the I/O thread keeps polling the guest's
	 * ring after it went idle (no doorbell exits, no wakeup for a guest that
	 * answers quickly), at most 1000; 0: sleep at once.
	 */
	unsigned int agent_poll_us;
	bool hugepages; /* guest RAM from a 2 MiB hugetlb memfd (fails when none are free) */
	bool rng;
	/*
	 * User-mode networking: a virtio-net card (MAC 52:54:00:12:34:56) on
	 * libslirp, guest 10.0.2.15/24, gateway 10.0.2.2 (never the host's
	 * loopback), DNS 10.0.2.3; the slirp instance runs on its own thread.
	 */
	bool net_user;
	unsigned int nr_forwards; /* with net_user: ports published on the host */
	struct vmm_forward forwards[VMM_MAX_FORWARDS];
	bool test_hooks;       /* VMM_PORT_SNAPSHOT; for the bare test guest only */
	bool test_hold;	       /* with test_hooks: filter every thread, then keep the vCPUs out */
	bool seccomp_selftest; /* with test_hooks: the I/O thread calls openat once filtered */
	unsigned int nr_disks;
	struct vmm_disk disks[VMM_MAX_DISKS];
	unsigned int nr_pmem;
	const char *pmem[VMM_MAX_PMEM];
};

enum vmm_exit_kind {
	VMM_EXIT_GUEST,	   /* guest wrote its exit code to VMM_PORT_EXIT */
	VMM_EXIT_SHUTDOWN, /* triple fault / system event */
	VMM_EXIT_STOPPED,  /* vmm_vm_stop() */
	VMM_EXIT_ERROR,	   /* KVM refused to go on (FAIL_ENTRY, INTERNAL_ERROR, unknown) */
};

struct vmm_exit {
	enum vmm_exit_kind kind;
	int code;	  /* VMM_EXIT_GUEST: the value written */
	char reason[160]; /* human-readable, for the console log and errors */
};

/* Create the VM: /dev/kvm checks, RAM, irqchip, devices, kernel loaded, vCPUs ready. */
struct vm *vmm_vm_create(const struct vmm_config *cfg, struct kal_err **err);
/* Run until the guest exits, shuts down, fails or is stopped; fills *exit. */
int vmm_vm_run(struct vm *vm, struct vmm_exit *exit, struct kal_err **err);
/* Ask a running VM to stop (async-signal-unsafe; call from a thread). */
void vmm_vm_stop(struct vm *vm);
void vmm_vm_destroy(struct vm *vm);

/* Open /dev/kvm with a friendly error and hint; returns the fd. */
int vmm_kvm_open(struct kal_err **err);

/*
 * Time a tight supervisor-mode loop in a tiny probe VM: *ns_per_insn is the
 * cost of one guest kernel-mode instruction (well under 1 ns on hardware
 * KVM; about 1000 ns on the nested kvm_pvm build hosts, which emulate CPL0).
 */
int vmm_kvm_probe_speed(double *ns_per_insn, struct kal_err **err);
#define VMM_KVM_SLOW_NS_PER_INSN 20.0 /* above this, kernel code is emulated: prefer qemu */

#endif
