// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * VM bring-up and the run loop: /dev/kvm, memfd-backed RAM, in-kernel
 * irqchip, virtio-mmio devices wired with irqfd/ioeventfd, PVH boot, vCPU
 * threads and the I/O thread.  Bring-up is a goto-free sequence on a
 * zeroed struct whose destroy copes with any prefix having been done.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "../guest/chan.h"
#include "boot.h"
#include "chan.h"
#include "kvm.h"
#include "mem.h"
#include "mptable.h"
#include "seccomp.h"
#include "net.h"
#include "serial.h"
#include "snap.h"
#include "virtio/devices.h"

#define VMM_MAX_VCPUS	      16
#define VMM_MAX_DEVS	      19 /* GSI 5..23 of the IOAPIC */
#define VMM_TSS_ADDR	      0xfffbd000ull
#define VMM_IDENTITY_MAP_ADDR 0xfffbc000ull

struct vmm_vcpu {
	struct vm *vm;
	unsigned int idx;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
};

/* what the I/O thread's epoll entries point at */
struct vmm_io_src {
	struct virtio_dev *vd;
	/* queue index, or -1: the device's host input fd, -2: the stop fd, -3: host output, -4: vm->chan */
	int q;
	int fd;
	bool pollable;
	bool added; /* -3 only: registered with epoll yet */
};

struct vm {
	int kvm_fd, vm_fd, ram_fd, stop_fd, epoll_fd;
	int host_stop_fd; /* the caller's: readable = stop (vmm_config.host_stop_fd) */
	size_t run_size;
	struct guest_mem mem;
	uint8_t *ram;
	uint64_t ram_size;
	uint64_t entry;
	int debug_out;
	bool test_hooks;
	bool test_hold;	       /* test hook: vCPUs wait before the first KVM_RUN */
	bool seccomp_selftest; /* test hook: the I/O thread makes a forbidden call */
	struct vmm_serial serial;
	pthread_mutex_t serial_lock; /* vCPU threads share COM1 */
	uint8_t snapshot_status;     /* VMM_PORT_SNAPSHOT reads: 0 ok, 1 failed */
	unsigned int nr_vcpus, nr_devs;
	struct vmm_vcpu vcpus[VMM_MAX_VCPUS];
	struct virtio_dev *devs[VMM_MAX_DEVS];
	struct vmm_chan *chan; /* the agent channel's rings, or NULL */
	struct vmm_net *net;   /* slirp behind the virtio-net card, or NULL */
	struct vmm_io_src *srcs;
	unsigned int nr_srcs;
	pthread_t io_thread;
	bool io_started;
	pthread_mutex_t exit_lock;
	pthread_cond_t ready_cond; /* with exit_lock: a thread filtered itself, or stopping */
	unsigned int nr_ready;	   /* threads past vmm_seccomp_install() */
	bool stopping;
	struct vmm_exit exit;
	struct kal_ratelimit rl_pio, rl_mmio, rl_pmem;
	char *cmdline;
};

int vmm_kvm_open(struct kal_err **err)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd >= 0)
		return fd;
	if (errno == ENOENT)
		return kal_err_sys(err, errno,
				   "/dev/kvm: is the kvm module loaded? (modprobe kvm_intel or "
				   "kvm_amd; in a VM, enable nested virtualisation)");
	if (errno == EACCES || errno == EPERM)
		return kal_err_sys(err, errno,
				   "/dev/kvm: add yourself to the kvm group (sudo usermod -aG kvm "
				   "$USER, then log in again)");
	return kal_err_sys(err, errno, "/dev/kvm");
}

#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21u << 26) /* log2(2 MiB) << MFD_HUGE_SHIFT (linux/memfd.h) */
#endif

/* Record why the VM stops (first reason wins) and kick every vCPU out of KVM_RUN. */
static void vm_request_stop(struct vm *vm, enum vmm_exit_kind kind, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void vm_request_stop(struct vm *vm, enum vmm_exit_kind kind, int code, const char *fmt, ...)
{
	uint64_t one = 1;
	va_list ap;

	pthread_mutex_lock(&vm->exit_lock);
	if (vm->stopping) {
		pthread_mutex_unlock(&vm->exit_lock);
		return;
	}
	vm->exit.kind = kind;
	vm->exit.code = code;
	va_start(ap, fmt);
	vsnprintf(vm->exit.reason, sizeof(vm->exit.reason), fmt, ap);
	va_end(ap);
	__atomic_store_n(&vm->stopping, true, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&vm->ready_cond);
	pthread_mutex_unlock(&vm->exit_lock);
	if (write(vm->stop_fd, &one, sizeof(one)) < 0) {
		/* counter overflow only: the flag above is what matters */
	}
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		struct vmm_vcpu *v = &vm->vcpus[i];

		/* immediate_exit covers a signal that lands just before KVM_RUN */
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		if (v->started && !pthread_equal(v->thread, pthread_self()))
			pthread_kill(v->thread, SIGUSR1);
	}
}

void vmm_vm_stop(struct vm *vm)
{
	vm_request_stop(vm, VMM_EXIT_STOPPED, 0, "stopped by the host");
}

static bool vm_stopping(struct vm *vm)
{
	return __atomic_load_n(&vm->stopping, __ATOMIC_SEQ_CST);
}

/* COM1's interrupt: IRQ 4 of the in-kernel PIC/IOAPIC, as a level */
static void serial_set_irq(void *opaque, bool level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level l = { .irq = 4, .level = level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0 && kal_log_ratelimit(&vm->rl_pio, 5))
		kal_warn("vmm: KVM_IRQ_LINE: %m");
}

/* ---- exits ---- */

/* Test hook, the agent channel's part: host indices and buffered bytes survive. */
static uint8_t vm_chan_round_trip(struct vm *vm)
{
	struct snap_writer w = { 0 };
	struct snap_reader r;
	struct kal_err *err = NULL;
	int ret;

	if (!vm->chan)
		return 0;
	ret = vmm_chan_save(vm->chan, &w, &err);
	if (ret == 0) {
		vmm_chan_scribble(vm->chan);
		r = (struct snap_reader){ .buf = w.buf, .len = w.len };
		ret = vmm_chan_restore(vm->chan, &r, &err);
	}
	snap_writer_free(&w);
	if (ret < 0) {
		kal_warn("vmm: agent channel round trip: %s", err->msg);
		kal_err_free(err);
		return 1;
	}
	return 0;
}

/*
 * Test hook: save every device, scribble over the live transport state, and
 * restore it from the records, as a resume would.  The guest then goes on
 * using its queues, which only works if the round trip (and the queue
 * re-validation on restore) kept everything.
 */
static uint8_t vm_devices_round_trip(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_devs; i++) {
		struct virtio_dev *vd = vm->devs[i];
		struct snap_writer w = { 0 };
		struct snap_reader r;
		struct kal_err *err = NULL;
		int ret = virtio_dev_save(vd, &w, &err);

		if (ret == 0) {
			pthread_mutex_lock(&vd->lock);
			for (unsigned int q = 0; q < vd->ops->num_queues; q++) {
				vd->vq[q].last_avail = vd->vq[q].next_used = 0xdead;
				vd->vq[q].ready = false;
			}
			vd->status = 0;
			pthread_mutex_unlock(&vd->lock);
			r = (struct snap_reader){ .buf = w.buf, .len = w.len };
			ret = virtio_dev_restore(vd, &r, &err);
		}
		snap_writer_free(&w);
		if (ret < 0) {
			kal_warn("vmm: device round trip: %s", err->msg);
			kal_err_free(err);
			return 1;
		}
	}
	return vm_chan_round_trip(vm);
}

static void vcpu_pio(struct vm *vm, struct kvm_run *run)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	size_t len = (size_t)run->io.size * run->io.count;

	if (vm->test_hooks && run->io.port == VMM_PORT_SNAPSHOT) {
		if (run->io.direction == KVM_EXIT_IO_IN)
			memset(data, vm->snapshot_status, len);
		else
			vm->snapshot_status = vm_devices_round_trip(vm);
		return;
	}
	if (run->io.port >= VMM_SERIAL_BASE && run->io.port < VMM_SERIAL_BASE + VMM_SERIAL_PORTS &&
	    run->io.size == 1) {
		pthread_mutex_lock(&vm->serial_lock);
		for (uint32_t i = 0; i < run->io.count; i++)
			vmm_serial_access(&vm->serial, run->io.port - VMM_SERIAL_BASE, data + i,
					  run->io.direction == KVM_EXIT_IO_OUT);
		pthread_mutex_unlock(&vm->serial_lock);
		return;
	}
	if (run->io.direction == KVM_EXIT_IO_IN) {
		memset(data, 0, len); /* nothing lives in port space: reads are 0 (A13) */
		return;
	}
	if (run->io.port == VMM_PORT_DEBUG) {
		if (vm->debug_out >= 0 && write(vm->debug_out, data, len) < 0 &&
		    kal_log_ratelimit(&vm->rl_pio, 5))
			kal_warn("vmm: debug port output: %m");
		return;
	}
	if (run->io.port == 0x64 && len == 1 && data[0] == 0xfe) {
		/* i8042 "pulse reset line": Linux's default reboot method */
		vm_request_stop(vm, VMM_EXIT_SHUTDOWN, 0, "guest reset the machine (i8042)");
		return;
	}
	if (run->io.port == VMM_PORT_EXIT) {
		uint32_t v = 0;

		memcpy(&v, data, run->io.size < 4 ? run->io.size : 4);
		vm_request_stop(vm, VMM_EXIT_GUEST, (int)v, "guest exited with code %u", v);
		return;
	}
	/* Linux's 8250 driver probes COM2-4 at boot: there is nothing there, as it finds out */
	if ((run->io.port >= 0x2f8 && run->io.port < 0x300) ||
	    (run->io.port >= 0x3e8 && run->io.port < 0x3f0) ||
	    (run->io.port >= 0x2e8 && run->io.port < 0x2f0))
		return;
	if (kal_log_ratelimit(&vm->rl_pio, 5))
		kal_warn("vmm: guest wrote %zu bytes to unused I/O port 0x%x; ignored", len,
			 run->io.port);
}

static void vcpu_mmio(struct vm *vm, struct kvm_run *run)
{
	uint64_t a = run->mmio.phys_addr;
	uint32_t len = run->mmio.len;
	bool w = run->mmio.is_write;

	if (len > sizeof(run->mmio.data))
		len = sizeof(run->mmio.data);
	if (a >= VMM_MMIO_BASE && a - VMM_MMIO_BASE < VIRTIO_MMIO_SIZE * vm->nr_devs) {
		struct virtio_dev *vd = vm->devs[(a - VMM_MMIO_BASE) / VIRTIO_MMIO_SIZE];

		virtio_mmio_access(vd, a - vd->mmio_base, run->mmio.data, len, w);
		return;
	}
	if (vmm_chan_mmio(vm->chan, a, run->mmio.data, len, w))
		return;
	if (!w)
		memset(run->mmio.data, 0, len);
	/* a store into a read-only slot (pmem) lands here: dropped, never reaches the file */
	for (unsigned int i = 1; i < vm->mem.nr; i++) {
		const struct guest_mem_region *r = &vm->mem.r[i];

		if (a >= r->gpa && a - r->gpa < r->size) {
			if (w && kal_log_ratelimit(&vm->rl_pmem, 5))
				kal_warn(
				    "vmm: guest write of %u bytes to read-only pmem at 0x%" PRIx64
				    " dropped",
				    len, a);
			return;
		}
	}
	if (kal_log_ratelimit(&vm->rl_mmio, 5))
		kal_warn("vmm: guest %s of %u bytes at unmapped 0x%" PRIx64 "; %s",
			 w ? "write" : "read", len, a, w ? "ignored" : "reads 0");
}

/*
 * Filter the calling thread (its setup is over) and count it as ready.  A
 * thread that cannot filter itself stops the VM rather than run unconfined.
 */
static bool vm_thread_confine(struct vm *vm, enum vmm_seccomp_kind kind, const char *who)
{
	struct kal_err *err = NULL;

	if (vmm_seccomp_install(kind, &err) < 0) {
		vm_request_stop(vm, VMM_EXIT_ERROR, 0, "%s: %s", who, err->msg);
		kal_err_free(err);
		return false;
	}
	pthread_mutex_lock(&vm->exit_lock);
	vm->nr_ready++;
	pthread_cond_broadcast(&vm->ready_cond);
	pthread_mutex_unlock(&vm->exit_lock);
	return true;
}

static void *vcpu_thread(void *arg)
{
	struct vmm_vcpu *v = arg;
	struct vm *vm = v->vm;
	struct kvm_run *run = v->run;
	char who[32];

	snprintf(who, sizeof(who), "vcpu %u", v->idx);
	if (!vm_thread_confine(vm, VMM_SECCOMP_VCPU, who))
		return NULL;
	if (vm->test_hold) {
		/* test hook: stay out of the guest until the VM is stopped (or killed) */
		pthread_mutex_lock(&vm->exit_lock);
		while (!vm->stopping)
			pthread_cond_wait(&vm->ready_cond, &vm->exit_lock);
		pthread_mutex_unlock(&vm->exit_lock);
	}
	while (!vm_stopping(vm)) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			vm_request_stop(vm, VMM_EXIT_ERROR, 0, "vcpu %u: KVM_RUN: %s", v->idx,
					strerror(errno));
			break;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			vcpu_pio(vm, run);
			break;
		case KVM_EXIT_MMIO:
			vcpu_mmio(vm, run);
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_HLT:
			vm_request_stop(vm, VMM_EXIT_SHUTDOWN, 0, "vcpu %u halted", v->idx);
			break;
		case KVM_EXIT_SHUTDOWN:
			vm_request_stop(vm, VMM_EXIT_SHUTDOWN, 0,
					"vcpu %u: guest shut down (triple fault or reboot)",
					v->idx);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			vm_request_stop(
			    vm, VMM_EXIT_SHUTDOWN, 0, "vcpu %u: guest system event %u (%s)", v->idx,
			    run->system_event.type,
			    run->system_event.type == KVM_SYSTEM_EVENT_RESET ? "reset"
									     : "shutdown");
			break;
		case KVM_EXIT_FAIL_ENTRY:
			vm_request_stop(
			    vm, VMM_EXIT_ERROR, 0,
			    "vcpu %u: KVM entry failed (hardware reason 0x%llx)", v->idx,
			    (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			vm_request_stop(vm, VMM_EXIT_ERROR, 0,
					"vcpu %u: KVM internal error (suberror %u)", v->idx,
					run->internal.suberror);
			break;
		default:
			vm_request_stop(vm, VMM_EXIT_ERROR, 0, "vcpu %u: unexpected exit %u",
					v->idx, run->exit_reason);
			break;
		}
	}
	return NULL;
}

/* ---- I/O thread ---- */

static void io_arm(struct vm *vm, struct vmm_io_src *s, int op)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };

	if (s->q == -1)
		ev.events |= EPOLLONESHOT; /* re-armed when the guest can take more input */
	if (s->q == -3) {
		ev.events = EPOLLOUT | EPOLLONESHOT; /* armed only while output is stuck */
		op = s->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
		s->added = true;
	}
	if (epoll_ctl(vm->epoll_fd, op, s->fd, &ev) < 0) {
		if (errno == EPERM && s->q == -1) {
			s->pollable = false; /* a regular file or /dev/null: read on demand */
			return;
		}
		if (kal_log_ratelimit(&vm->rl_mmio, 5))
			kal_warn("vmm: epoll: %m");
	}
}

static void io_host_fd(struct vm *vm, struct vmm_io_src *s)
{
	if (s->pollable) {
		if (virtio_dev_io_ready(s->vd))
			io_arm(vm, s, EPOLL_CTL_MOD);
		return;
	}
	/* not pollable: always readable, so read while the guest takes the bytes */
	while (!vm_stopping(vm) && virtio_dev_io_ready(s->vd))
		;
}

/* Budget spent with work left: come back after the other ready sources. */
static void io_rekick(struct virtio_dev *vd, unsigned int q)
{
	uint64_t one = 1;

	if (write(vd->kick_fd[q], &one, sizeof(one)) < 0) {
		/* only fails when the counter is saturated: a kick is pending anyway */
	}
}

/* After serving a device: watch its input again, or wait for its output to drain. */
static void io_after(struct vm *vm, struct virtio_dev *vd)
{
	bool rearm = vd->io_rearm, want_out = vd->io_want_out;

	vd->io_rearm = false;
	vd->io_want_out = false;
	for (unsigned int j = 0; j < vm->nr_srcs; j++) {
		struct vmm_io_src *s = &vm->srcs[j];

		if (s->vd != vd)
			continue;
		if (rearm && s->q == -1) {
			if (s->pollable)
				io_arm(vm, s, EPOLL_CTL_MOD);
			else
				io_host_fd(vm, s);
		}
		if (want_out && s->q == -3)
			io_arm(vm, s, EPOLL_CTL_MOD);
	}
}

static void *io_thread(void *arg)
{
	struct vm *vm = arg;
	struct epoll_event evs[32];

	if (!vm_thread_confine(vm, VMM_SECCOMP_IO, "I/O thread"))
		return NULL;
	if (vm->seccomp_selftest) {
		/* test hook: a call outside the list; with the filter on, the kernel kills us here */
		long fd = syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY | O_CLOEXEC);

		vm_request_stop(
		    vm, VMM_EXIT_ERROR, 0,
		    "seccomp selftest: openat was allowed (fd %ld); is KAL_VMM_SECCOMP=0?", fd);
		if (fd >= 0)
			close((int)fd);
		return NULL;
	}
	while (!vm_stopping(vm)) {
		int n = epoll_wait(vm->epoll_fd, evs, ARRAY_SIZE(evs), -1);

		for (int i = 0; i < n && !vm_stopping(vm); i++) {
			struct vmm_io_src *s = evs[i].data.ptr;
			uint64_t cnt;

			if (s->q == -2)
				break;
			if (s->q == -4) {
				vmm_chan_service(vm->chan);
				continue;
			}
			if (s->q == -1) {
				io_host_fd(vm, s);
				io_after(vm, s->vd);
				continue;
			}
			if (s->q == -3) {
				/* the host reader caught up: carry on with the stuck queue */
				if (virtio_dev_notify(s->vd, s->vd->io_out_queue) > 0)
					io_rekick(s->vd, s->vd->io_out_queue);
				io_after(vm, s->vd);
				continue;
			}
			if (read(s->fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
				continue;
			if (virtio_dev_notify(s->vd, (unsigned int)s->q) > 0)
				io_rekick(s->vd, (unsigned int)s->q);
			io_after(vm, s->vd);
		}
	}
	return NULL;
}

/* ---- bring-up ---- */

static int vm_add_dev(struct vm *vm, struct virtio_dev *vd, struct kal_err **err)
{
	struct kvm_irqfd irqfd = { .gsi = vd->irq };

	vm->devs[vm->nr_devs++] = vd;
	vd->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vd->irq_fd < 0)
		return kal_err_sys(err, errno, "virtio-%s: eventfd", vd->ops->name);
	irqfd.fd = (uint32_t)vd->irq_fd;
	if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0)
		return kal_err_sys(err, errno, "virtio-%s: KVM_IRQFD (gsi %u)", vd->ops->name,
				   vd->irq);
	for (unsigned int q = 0; q < vd->ops->num_queues; q++) {
		struct kvm_ioeventfd io = {
			.datamatch = q,
			.addr = vd->mmio_base + 0x50 /* QueueNotify */,
			.len = 4,
			.flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
		};

		vd->kick_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vd->kick_fd[q] < 0)
			return kal_err_sys(err, errno, "virtio-%s: eventfd", vd->ops->name);
		io.fd = vd->kick_fd[q];
		/* without it the MMIO exit path writes the same eventfd: slower, same result */
		if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0)
			kal_debug("virtio-%s: KVM_IOEVENTFD: %m; kicks take the MMIO exit path",
				  vd->ops->name);
	}
	return 0;
}

static int vm_add_memslot(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
			  uint32_t flags, struct kal_err **err)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return kal_err_sys(err, errno, "KVM_SET_USER_MEMORY_REGION (slot %u)", slot);
	return 0;
}

static int vcpu_setup_cpuid(struct vm *vm, struct vmm_vcpu *v, struct kal_err **err)
{
	_cleanup_free_ struct kvm_cpuid2 *c = NULL;
	unsigned int nent = 128;

	for (;;) {
		free(c);
		c = xzalloc(sizeof(*c) + nent * sizeof(c->entries[0]));
		c->nent = nent;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			break;
		if (errno != E2BIG || nent >= 4096)
			return kal_err_sys(err, errno, "KVM_GET_SUPPORTED_CPUID");
		nent *= 2;
	}
	for (unsigned int i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			e->ecx |= 1u << 31;   /* hypervisor present */
			e->ecx &= ~(1u << 5); /* no VMX: kal offers no nested virtualisation */
			e->ebx = (e->ebx & 0x00ffffff) | (v->idx << 24); /* initial APIC id */
			break;
		case 0xb:
		case 0x1f:
			e->edx = v->idx; /* x2APIC id */
			break;
		}
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
		return kal_err_sys(err, errno, "KVM_SET_CPUID2");
	return 0;
}

static int vcpu_setup_msrs(struct vmm_vcpu *v, struct kal_err **err)
{
	static const struct {
		uint32_t index;
		uint64_t data;
	} init[] = {
		{ 0x174, 0 },	   /* IA32_SYSENTER_CS */
		{ 0x175, 0 },	   /* IA32_SYSENTER_ESP */
		{ 0x176, 0 },	   /* IA32_SYSENTER_EIP */
		{ 0xc0000081, 0 }, /* STAR */
		{ 0xc0000082, 0 }, /* LSTAR */
		{ 0xc0000083, 0 }, /* CSTAR */
		{ 0xc0000084, 0 }, /* SYSCALL_MASK */
		{ 0xc0000102, 0 }, /* KERNEL_GS_BASE */
		{ 0x1a0, 1 },	   /* IA32_MISC_ENABLE: fast strings */
	};
	_cleanup_free_ struct kvm_msrs *m =
	    xzalloc(sizeof(*m) + ARRAY_SIZE(init) * sizeof(m->entries[0]));
	int r;

	m->nmsrs = ARRAY_SIZE(init);
	for (unsigned int i = 0; i < ARRAY_SIZE(init); i++) {
		m->entries[i].index = init[i].index;
		m->entries[i].data = init[i].data;
	}
	r = ioctl(v->fd, KVM_SET_MSRS, m);
	if (r < 0)
		return kal_err_sys(err, errno, "KVM_SET_MSRS");
	if ((unsigned int)r < m->nmsrs)
		kal_debug("vmm: KVM_SET_MSRS stopped at MSR 0x%x", m->entries[r].index);
	return 0;
}

static int vcpu_setup_lapic(struct vmm_vcpu *v, struct kal_err **err)
{
	struct kvm_lapic_state la;
	uint32_t lvt;

	if (ioctl(v->fd, KVM_GET_LAPIC, &la) < 0)
		return kal_err_sys(err, errno, "KVM_GET_LAPIC");
	/* LINT0 = ExtINT (the PIC), LINT1 = NMI, as firmware would leave them */
	memcpy(&lvt, la.regs + 0x350, 4);
	lvt = (lvt & ~0x700u) | (7u << 8);
	memcpy(la.regs + 0x350, &lvt, 4);
	memcpy(&lvt, la.regs + 0x360, 4);
	lvt = (lvt & ~0x700u) | (4u << 8);
	memcpy(la.regs + 0x360, &lvt, 4);
	if (ioctl(v->fd, KVM_SET_LAPIC, &la) < 0)
		return kal_err_sys(err, errno, "KVM_SET_LAPIC");
	return 0;
}

/* The PVH entry state: 32-bit protected mode, flat segments, paging off, %ebx = start_info. */
static int vcpu_setup_pvh(struct vm *vm, struct vmm_vcpu *v, struct kal_err **err)
{
	struct kvm_segment code = {
		.base = 0,
		.limit = 0xffffffff,
		.selector = 0x10,
		.type = 0xb,
		.present = 1,
		.dpl = 0,
		.db = 1,
		.s = 1,
		.l = 0,
		.g = 1,
	};
	struct kvm_segment data = code;
	struct kvm_segment tr = {
		.base = 0,
		.limit = 0x67,
		.selector = 0x20,
		.type = 0xb,
		.present = 1,
		.s = 0,
	};
	struct kvm_sregs sr;
	struct kvm_regs regs = { 0 };
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };

	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0)
		return kal_err_sys(err, errno, "KVM_GET_SREGS");
	data.selector = 0x18;
	data.type = 0x3;
	sr.cs = code;
	sr.ds = sr.es = sr.fs = sr.gs = sr.ss = data;
	sr.tr = tr;
	sr.gdt.base = VMM_BOOT_GDT;
	sr.gdt.limit = 5 * 8 - 1;
	sr.cr0 = 0x1 | 0x10; /* PE, ET */
	sr.cr4 = 0;
	sr.efer = 0;
	if (ioctl(v->fd, KVM_SET_SREGS, &sr) < 0)
		return kal_err_sys(err, errno, "KVM_SET_SREGS");
	regs.rip = vm->entry;
	regs.rbx = VMM_BOOT_START_INFO;
	regs.rflags = 0x2;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return kal_err_sys(err, errno, "KVM_SET_REGS");
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return kal_err_sys(err, errno, "KVM_SET_FPU");
	return 0;
}

static int vm_create_vcpu(struct vm *vm, unsigned int idx, struct kal_err **err)
{
	struct vmm_vcpu *v = &vm->vcpus[idx];
	void *run;

	v->vm = vm;
	v->idx = idx;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)idx);
	if (v->fd < 0)
		return kal_err_sys(err, errno, "KVM_CREATE_VCPU %u", idx);
	vm->nr_vcpus = idx + 1;
	run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (run == MAP_FAILED) {
		close(v->fd);
		vm->nr_vcpus = idx;
		return kal_err_sys(err, errno, "mmap kvm_run");
	}
	v->run = run;
	if (vcpu_setup_cpuid(vm, v, err) < 0 || vcpu_setup_msrs(v, err) < 0 ||
	    vcpu_setup_lapic(v, err) < 0)
		return kal_err_wrap(err, "vcpu %u", idx);
	/* the others wait for INIT/SIPI from vCPU 0, as on real hardware */
	if (idx == 0 && vcpu_setup_pvh(vm, v, err) < 0)
		return kal_err_wrap(err, "vcpu %u", idx);
	return 0;
}

static int kvm_need(struct vm *vm, long cap, const char *name, struct kal_err **err)
{
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, cap) <= 0)
		return kal_err_set(err, ENOTSUP, "/dev/kvm lacks %s", name);
	return 0;
}

static int vm_setup(struct vm *vm, const struct vmm_config *cfg, struct kal_err **err)
{
	struct kvm_pit_config pit = { .flags = 0 };
	size_t cl_len = strlen(cfg->cmdline ? cfg->cmdline : "") + 1;
	uint64_t pmem_gpa = VMM_PMEM_BASE;
	uint64_t kernel_end, initrd_gpa = 0, initrd_size = 0;
	unsigned int slot = 1;
	int r;

	if (cfg->ram_size < (4ull << 20) || cfg->ram_size > VMM_RAM_MAX ||
	    cfg->ram_size % (2ull << 20))
		return kal_err_set(
		    err, EINVAL, "guest memory of %llu MiB: must be 4 MiB to 3 GiB in 2 MiB steps",
		    (unsigned long long)(cfg->ram_size >> 20));
	if (cfg->cpus < 1 || cfg->cpus > VMM_MAX_VCPUS)
		return kal_err_set(err, EINVAL, "%u vCPUs: must be 1 to %d", cfg->cpus,
				   VMM_MAX_VCPUS);
	if (cfg->nr_disks > VMM_MAX_DISKS || cfg->nr_pmem > VMM_MAX_PMEM)
		return kal_err_set(err, EINVAL, "too many devices");

	vm->kvm_fd = vmm_kvm_open(err);
	if (vm->kvm_fd < 0)
		return -1;
	r = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (r != KVM_API_VERSION)
		return kal_err_set(err, ENOTSUP, "/dev/kvm: API version %d, kal needs %d", r,
				   KVM_API_VERSION);
	if (kvm_need(vm, KVM_CAP_IRQCHIP, "an in-kernel irqchip", err) < 0 ||
	    kvm_need(vm, KVM_CAP_USER_MEMORY, "user memory", err) < 0 ||
	    kvm_need(vm, KVM_CAP_IRQFD, "irqfd", err) < 0 ||
	    (cfg->nr_pmem && kvm_need(vm, KVM_CAP_READONLY_MEM, "read-only memory", err) < 0))
		return -1;
	vm->run_size = (size_t)ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if ((ssize_t)vm->run_size < (ssize_t)sizeof(struct kvm_run))
		return kal_err_sys(err, errno, "KVM_GET_VCPU_MMAP_SIZE");
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return kal_err_sys(err, errno, "KVM_CREATE_VM");
	/* Intel needs these three pages below 4 GiB for real-mode emulation; harmless elsewhere */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)VMM_TSS_ADDR) < 0)
		kal_debug("vmm: KVM_SET_TSS_ADDR: %m");
	{
		uint64_t a = VMM_IDENTITY_MAP_ADDR;

		if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &a) < 0)
			kal_debug("vmm: KVM_SET_IDENTITY_MAP_ADDR: %m");
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return kal_err_sys(err, errno, "KVM_CREATE_IRQCHIP");
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		kal_debug("vmm: KVM_CREATE_PIT2: %m; no PIT");

	/* RAM: a memfd, so park can write it out and branch can map it privately */
	vm->ram_fd = memfd_create("kal-guest-ram",
				  MFD_CLOEXEC | (cfg->hugepages ? MFD_HUGETLB | MFD_HUGE_2MB : 0));
	if (vm->ram_fd < 0)
		return kal_err_sys(err, errno, "memfd_create%s",
				   cfg->hugepages ? " (2 MiB huge pages)" : "");
	if (ftruncate(vm->ram_fd, (off_t)cfg->ram_size) < 0)
		return kal_err_sys(err, errno, "guest RAM: ftruncate");
	/* huge pages are reserved now (no NORESERVE): a shortage fails here, not as a SIGBUS later */
	vm->ram = mmap(NULL, cfg->ram_size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | (cfg->hugepages ? 0 : MAP_NORESERVE), vm->ram_fd, 0);
	if (vm->ram == MAP_FAILED) {
		vm->ram = NULL;
		return cfg->hugepages && errno == ENOMEM
			   ? kal_err_set(err, ENOMEM,
					 "guest RAM: not enough free 2 MiB huge pages for %llu MiB "
					 "(reserve more: echo N > /proc/sys/vm/nr_hugepages)",
					 (unsigned long long)(cfg->ram_size >> 20))
			   : kal_err_sys(err, errno, "guest RAM: mmap");
	}
	vm->ram_size = cfg->ram_size;
	if (vm_add_memslot(vm, 0, 0, cfg->ram_size, vm->ram, 0, err) < 0)
		return -1;
	if (guest_mem_add(&vm->mem, 0, cfg->ram_size, vm->ram, 0) < 0)
		return kal_err_set(err, EINVAL, "guest RAM: bad region");

	/* the agent channel first: its bell pipe is the `kal.agent` port's input */
	if (cfg->agent_ring) {
		vm->chan = vmm_chan_create(cfg->agent_in, cfg->agent_out, cfg->agent_poll_us, err);
		if (!vm->chan)
			return -1;
		cl_len += 64;
	}

	/* devices, each with a 4 KiB window and a GSI; announced on the command line */
	for (unsigned int i = 0;; i++) {
		uint64_t base = VMM_MMIO_BASE + VIRTIO_MMIO_SIZE * vm->nr_devs;
		uint32_t gsi = VMM_MMIO_FIRST_GSI + vm->nr_devs;
		struct virtio_dev *vd = NULL;
		bool agent_port = cfg->agent_out >= 0 || vm->chan;
		unsigned int agent_at = cfg->console_out >= 0;
		unsigned int first_disk = agent_at + agent_port;
		unsigned int first_pmem = first_disk + cfg->nr_disks;
		unsigned int rng_at = first_pmem + cfg->nr_pmem;
		unsigned int net_at = rng_at + cfg->rng;

		if (i == 0 && cfg->console_out >= 0) {
			vd = virtio_console_create(&vm->mem, base, gsi, cfg->console_in,
						   cfg->console_out, err);
		} else if (i == agent_at && agent_port) {
			/*
			 * the guest agent's port: /dev/vportNp0 named kal.agent, as on
			 * qemu; with the rings it carries only their doorbell bytes
			 */
			vd = vm->chan
				 ? virtio_console_port_create(&vm->mem, base, gsi, "kal.agent",
							      vmm_chan_bell_fd(vm->chan), -1, err)
				 : virtio_console_port_create(&vm->mem, base, gsi, "kal.agent",
							      cfg->agent_in, cfg->agent_out, err);
		} else if (i >= first_disk && i < first_pmem) {
			const struct vmm_disk *d = &cfg->disks[i - first_disk];

			vd = virtio_blk_create(&vm->mem, base, gsi, d->path, d->read_only,
					       d->serial, err);
		} else if (i >= first_pmem && i < rng_at) {
			uint64_t gpa, size;
			void *host;

			vd = virtio_pmem_create(&vm->mem, base, gsi, cfg->pmem[i - first_pmem],
						pmem_gpa, err);
			if (vd) {
				virtio_pmem_window(vd, &gpa, &size, &host);
				/* KVM_MEM_READONLY: guest stores exit to us and are dropped (B1) */
				if (vm_add_memslot(vm, slot++, gpa, size, host, KVM_MEM_READONLY,
						   err) < 0 ||
				    guest_mem_add(&vm->mem, gpa, size, host,
						  GUEST_MEM_NO_DEVICE_WRITE) < 0) {
					virtio_dev_destroy(vd);
					return kal_err_wrap(err, "pmem `%s`",
							    cfg->pmem[i - first_pmem]);
				}
				pmem_gpa =
				    (gpa + size + VMM_PMEM_ALIGN - 1) & ~(VMM_PMEM_ALIGN - 1);
			}
		} else if (i == rng_at && cfg->rng) {
			vd = virtio_rng_create(&vm->mem, base, gsi, err);
		} else if (i == net_at && cfg->net_user) {
			static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

			vd = virtio_net_create(&vm->mem, base, gsi, mac, err);
		} else if (i >= net_at) {
			break;
		} else {
			continue;
		}
		if (!vd)
			return -1;
		if (vm->nr_devs >= VMM_MAX_DEVS) {
			virtio_dev_destroy(vd);
			return kal_err_set(err, EINVAL, "too many devices (max %d)", VMM_MAX_DEVS);
		}
		if (vm_add_dev(vm, vd, err) < 0)
			return -1;
		/* after vm_add_dev: the card's TX kick eventfd exists, and the VM owns vd */
		if (i == net_at && cfg->net_user &&
		    !(vm->net = vmm_net_create(vd, cfg->forwards, cfg->nr_forwards, err)))
			return -1;
		cl_len += 64;
	}

	vm->cmdline = xzalloc(cl_len);
	strcpy(vm->cmdline, cfg->cmdline ? cfg->cmdline : "");
	for (unsigned int i = 0; i < vm->nr_devs; i++) {
		size_t at = strlen(vm->cmdline);

		if (at)
			vm->cmdline[at++] = ' ';
		virtio_dev_cmdline(vm->devs[i], vm->cmdline + at, cl_len - at);
	}
	if (vm->chan) {
		size_t at = strlen(vm->cmdline);

		if (vmm_chan_attach(vm->chan, vm->vm_fd, slot++, err) < 0)
			return -1;
		if (at)
			vm->cmdline[at++] = ' ';
		vmm_chan_cmdline(vm->cmdline + at, cl_len - at);
	}
	if (vmm_boot_load_elf(&vm->mem, cfg->kernel, &vm->entry, &kernel_end, err) < 0)
		return -1;
	if (cfg->initrd && vmm_boot_load_initrd(&vm->mem, cfg->ram_size, kernel_end, cfg->initrd,
						&initrd_gpa, &initrd_size, err) < 0)
		return -1;
	if (vmm_boot_setup_pvh(&vm->mem, cfg->ram_size, vm->cmdline, initrd_gpa, initrd_size, err) <
		0 ||
	    vmm_mptable_write(&vm->mem, cfg->cpus, err) < 0)
		return -1;
	if (vm->chan && vmm_boot_memmap_reserve(&vm->mem, CHAN_GPA,
						CHAN_REGION_SIZE + CHAN_DOORBELL_SIZE, err) < 0)
		return -1;
	for (unsigned int i = 0; i < cfg->cpus; i++)
		if (vm_create_vcpu(vm, i, err) < 0)
			return -1;
	return 0;
}

/*
 * Guest RAM and device state live in this process: no core dumps of it, and no
 * ptrace or /proc/PID/mem by other processes of the same user (reliability.md B7).
 */
static int vm_process_harden(struct kal_err **err)
{
	struct rlimit none = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &none) < 0)
		return kal_err_sys(err, errno, "setrlimit(RLIMIT_CORE)");
	if (prctl(PR_SET_DUMPABLE, 0) < 0)
		return kal_err_sys(err, errno, "prctl(PR_SET_DUMPABLE)");
	return 0;
}

struct vm *vmm_vm_create(const struct vmm_config *cfg, struct kal_err **err)
{
	struct vm *vm;

	if (vm_process_harden(err) < 0)
		return NULL;
	vm = xzalloc(sizeof(*vm));

	vm->kvm_fd = vm->vm_fd = vm->ram_fd = vm->epoll_fd = -1;
	vm->debug_out = cfg->debug_out;
	vm->host_stop_fd = cfg->host_stop_fd > 0 ? cfg->host_stop_fd : -1;
	vm->test_hooks = cfg->test_hooks;
	vm->test_hold = cfg->test_hooks && cfg->test_hold;
	vm->seccomp_selftest = cfg->test_hooks && cfg->seccomp_selftest;
	vm->serial.out_fd = cfg->serial_out;
	vm->serial.set_irq = serial_set_irq;
	vm->serial.opaque = vm;
	pthread_mutex_init(&vm->exit_lock, NULL);
	pthread_cond_init(&vm->ready_cond, NULL);
	pthread_mutex_init(&vm->serial_lock, NULL);
	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_fd < 0) {
		kal_err_sys(err, errno, "eventfd");
		vmm_vm_destroy(vm);
		return NULL;
	}
	if (vm_setup(vm, cfg, err) < 0) {
		vmm_vm_destroy(vm);
		return NULL;
	}
	return vm;
}

/* The net thread's first act (vmm/net.c runs it before touching slirp). */
static bool net_confine(void *arg)
{
	return vm_thread_confine(arg, VMM_SECCOMP_NET, "net thread");
}

static void sig_kick(int sig)
{
	(void)sig; /* only there to interrupt KVM_RUN */
}

static int io_start(struct vm *vm, struct kal_err **err)
{
	unsigned int n = 1;

	vm->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (vm->epoll_fd < 0)
		return kal_err_sys(err, errno, "epoll_create1");
	for (unsigned int i = 0; i < vm->nr_devs; i++)
		n += vm->devs[i]->ops->num_queues + 2;
	vm->srcs = xcalloc(n + 1, sizeof(*vm->srcs));
	vm->srcs[vm->nr_srcs++] = (struct vmm_io_src){ .q = -2, .fd = vm->stop_fd };
	io_arm(vm, &vm->srcs[0], EPOLL_CTL_ADD);
	if (vm->chan) {
		struct vmm_io_src *s = &vm->srcs[vm->nr_srcs++];

		*s = (struct vmm_io_src){ .q = -4, .fd = -1 };
		if (vmm_chan_io_start(vm->chan, vm->epoll_fd, s, err) < 0)
			return -1;
	}
	for (unsigned int i = 0; i < vm->nr_devs; i++) {
		struct virtio_dev *vd = vm->devs[i];

		for (unsigned int q = 0; q < vd->ops->num_queues; q++) {
			struct vmm_io_src *s = &vm->srcs[vm->nr_srcs++];

			*s = (struct vmm_io_src){ .vd = vd, .q = (int)q, .fd = vd->kick_fd[q] };
			io_arm(vm, s, EPOLL_CTL_ADD);
		}
		if (vd->ops->io_fd && vd->ops->io_fd(vd) >= 0) {
			struct vmm_io_src *s = &vm->srcs[vm->nr_srcs++];

			*s = (struct vmm_io_src){
				.vd = vd, .q = -1, .fd = vd->ops->io_fd(vd), .pollable = true
			};
			io_arm(vm, s, EPOLL_CTL_ADD);
		}
		if (vd->io_out_fd >= 0)
			vm->srcs[vm->nr_srcs++] =
			    (struct vmm_io_src){ .vd = vd, .q = -3, .fd = vd->io_out_fd };
	}
	if ((errno = pthread_create(&vm->io_thread, NULL, io_thread, vm)))
		return kal_err_sys(err, errno, "I/O thread");
	vm->io_started = true;
	if (vm->net && vmm_net_start(vm->net, net_confine, vm, err) < 0)
		return -1;
	return 0;
}

int vmm_vm_run(struct vm *vm, struct vmm_exit *exit, struct kal_err **err)
{
	struct sigaction sa = { .sa_handler = sig_kick }; /* no SA_RESTART: KVM_RUN returns */
	int ret = 0;

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		return kal_err_sys(err, errno, "sigaction");
	if (io_start(vm, err) < 0)
		ret = -1;
	for (unsigned int i = 0; ret == 0 && i < vm->nr_vcpus; i++) {
		if ((errno =
			 pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]))) {
			kal_err_sys(err, errno, "vcpu %u thread", i);
			ret = -1;
			break;
		}
		vm->vcpus[i].started = true;
	}
	if (ret < 0)
		vm_request_stop(vm, VMM_EXIT_ERROR, 0, "start failed");
	/* after the pthread_creates: a filter installed earlier would be inherited by them */
	if (ret == 0 && vmm_seccomp_install(VMM_SECCOMP_CONTROL, err) < 0) {
		vm_request_stop(vm, VMM_EXIT_ERROR, 0, "control thread: seccomp failed");
		ret = -1;
	}
	if (ret == 0 && vm->test_hold) {
		unsigned int want = vm->nr_vcpus + 1 + (vm->net != NULL);

		pthread_mutex_lock(&vm->exit_lock);
		while (!vm->stopping && vm->nr_ready < want)
			pthread_cond_wait(&vm->ready_cond, &vm->exit_lock);
		pthread_mutex_unlock(&vm->exit_lock);
		kal_warn("vmm: test hold: %u threads ready, seccomp %s", want + 1,
			 vmm_seccomp_enabled() ? "on" : "off");
	}
	while (!vm_stopping(vm)) {
		struct pollfd p[2] = { { .fd = vm->stop_fd, .events = POLLIN },
				       { .fd = vm->host_stop_fd, .events = POLLIN } };

		if (poll(p, 2, -1) > 0 && p[1].revents)
			vmm_vm_stop(vm);
	}
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i].started) {
			pthread_join(vm->vcpus[i].thread, NULL);
			vm->vcpus[i].started = false;
		}
	if (vm->io_started) {
		pthread_join(vm->io_thread, NULL);
		vm->io_started = false;
	}
	vmm_net_stop(vm->net);
	pthread_mutex_lock(&vm->exit_lock);
	*exit = vm->exit;
	pthread_mutex_unlock(&vm->exit_lock);
	return ret;
}

void vmm_vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].run)
			munmap(vm->vcpus[i].run, vm->run_size);
		close(vm->vcpus[i].fd);
	}
	vmm_net_destroy(vm->net); /* first: it holds the card's backend pointer */
	for (unsigned int i = 0; i < vm->nr_devs; i++)
		virtio_dev_destroy(vm->devs[i]);
	vmm_chan_destroy(vm->chan);
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	if (vm->ram_fd >= 0)
		close(vm->ram_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->epoll_fd >= 0)
		close(vm->epoll_fd);
	if (vm->stop_fd >= 0)
		close(vm->stop_fd);
	pthread_mutex_destroy(&vm->exit_lock);
	pthread_cond_destroy(&vm->ready_cond);
	pthread_mutex_destroy(&vm->serial_lock);
	free(vm->srcs);
	free(vm->cmdline);
	free(vm);
}
