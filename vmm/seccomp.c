// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The VMM's seccomp allow lists, one per thread kind, built with libseccomp.
 * The lists come from `strace -f` of the bare test guest (every device,
 * hostile chains, the save/restore round trip, 2 vCPUs); docs/vmm.md has
 * them in a table.  Default action: kill the process, so a compromised
 * thread cannot carry on after its first unexpected call.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <linux/kvm.h>
#include <seccomp.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "seccomp.h"

/* an ioctl request number, or 0 for a syscall allowed with any arguments */
struct vmm_seccomp_rule {
	int nr;
	unsigned long ioctl_req;
	bool no_exec; /* mmap/mprotect: arg 2 (prot) must not have PROT_EXEC */
};

#define ALLOW(name)                                                                                \
	{                                                                                          \
		.nr = SCMP_SYS(name)                                                               \
	}
#define ALLOW_IOCTL(req)                                                                           \
	{                                                                                          \
		.nr = SCMP_SYS(ioctl), .ioctl_req = (req)                                          \
	}
#define ALLOW_NOEXEC(name)                                                                         \
	{                                                                                          \
		.nr = SCMP_SYS(name), .no_exec = true                                              \
	}

/*
 * What every VMM thread needs:
 * - futex: pthread mutexes (devices, COM1, exit reason), condition variables, joins
 * - write: eventfd signals (irqfd, queue kicks on the MMIO exit path, the stop fd), the
 *   console/debug/COM1 output fds, and rate-limited warnings on stderr
 * - getpid, tgkill, rt_sigprocmask: vm_request_stop() kicks vCPUs out of KVM_RUN with
 *   pthread_kill(SIGUSR1), which is tgkill(getpid(), tid) with signals blocked around it;
 *   glibc also blocks signals while a thread exits
 * - rt_sigreturn: return from the SIGUSR1 handler (or any handled signal on any thread)
 * - mmap, mprotect (both never with PROT_EXEC), munmap, madvise: malloc/free in thread arenas
 *   (snapshot records are malloc'd on the vCPU thread) and the thread stack freed at exit
 * - clock_gettime: warning rate limits; normally the vDSO, but it falls back to the syscall
 *   on hosts whose clocksource it cannot read
 * - exit: the end of a thread
 */
static const struct vmm_seccomp_rule vmm_seccomp_common[] = {
	ALLOW(futex),	       ALLOW(write),	    ALLOW(getpid),	  ALLOW(tgkill),
	ALLOW(rt_sigprocmask), ALLOW(rt_sigreturn), ALLOW_NOEXEC(mmap),	  ALLOW_NOEXEC(mprotect),
	ALLOW(munmap),	       ALLOW(madvise),	    ALLOW(clock_gettime), ALLOW(exit),
};

#if defined(__SANITIZE_ADDRESS__)
#define VMM_SECCOMP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VMM_SECCOMP_ASAN 1
#endif
#endif

#ifdef VMM_SECCOMP_ASAN
/*
 * `make SAN=address` builds only (found by running the bare guest and reading
 * the kernel's audit lines).  The ASan runtime takes down each thread's
 * alternate signal stack (sigaltstack, gettid) when it exits.  LeakSanitizer's
 * exit-time scan runs a tracer clone (a process of its own, which inherits the
 * control thread's filter) that lists /proc/self/task and ptrace-stops every
 * thread.  Release builds carry none of this.
 */
static const struct vmm_seccomp_rule vmm_seccomp_asan[] = {
	ALLOW(sigaltstack), ALLOW(gettid),	 ALLOW(prctl), ALLOW(clone), ALLOW(getppid),
	ALLOW(sched_yield), ALLOW(rt_sigaction), ALLOW(open),  ALLOW(lseek), ALLOW(getdents),
	ALLOW(read),	    ALLOW(ptrace),	 ALLOW(wait4),
};
#endif

/*
 * vCPU threads: KVM_RUN on their own vCPU fd, and KVM_IRQ_LINE for COM1's
 * interrupt (the serial model runs on the vCPU that touched its ports).
 * Device interrupts and queue kicks taken on the MMIO exit path are eventfd
 * writes (common list).
 */
static const struct vmm_seccomp_rule vmm_seccomp_vcpu[] = {
	ALLOW_IOCTL(KVM_RUN),
	ALLOW_IOCTL(KVM_IRQ_LINE),
};

/*
 * The I/O (device event loop) thread:
 * - epoll_wait, epoll_ctl: the loop; host fds are re-armed one-shot
 * - read: draining ioeventfds, console input from the host
 * - pread64, pwrite64, fdatasync: virtio-blk on its host file (opened during setup)
 * - getrandom: virtio-rng
 */
static const struct vmm_seccomp_rule vmm_seccomp_io[] = {
	ALLOW(epoll_wait), ALLOW(epoll_ctl), ALLOW(read),      ALLOW(pread64),
	ALLOW(pwrite64),   ALLOW(fdatasync), ALLOW(getrandom),
};

/*
 * The control thread (the one that called vmm_vm_run): it waits on the stop
 * fd, joins the others, tears the VM down and lets the command exit.
 * - poll: waiting for the stop eventfd
 * - close: vmm_vm_destroy() closes vCPU, device, eventfd and VM fds
 * - brk: free() on the main arena may trim the heap
 * - exit_group: the process exit after the VM ends
 * No ioctl at all: only vCPU threads talk to KVM once the VM runs.
 */
static const struct vmm_seccomp_rule vmm_seccomp_control[] = {
	ALLOW(poll),
	ALLOW(close),
	ALLOW(brk),
	ALLOW(exit_group),
};

/*
 * The net thread (libslirp, vmm/net.c): the guest's connections become host
 * sockets, so this list is about sockets.  From `strace` of the net thread
 * while a Linux guest fetched a page over TCP, was refused 10.0.2.2 and sent
 * a DNS datagram; docs/vmm.md "Networking" has the table.
 * - poll, read: the loop over slirp's sockets and the wake eventfd
 * - restart_syscall: a poll() with a timeout that a stop signal or a tracer interrupted
 *   resumes through it (found by attaching strace: SIGSYS without it)
 * - socket (AF_INET only: IPv6 is off), connect, close: a socket per guest TCP
 *   connection, UDP flow and ICMP echo
 * - sendto, recvfrom: all socket I/O (send/recv are these in glibc)
 * - recvmsg: the UDP/ICMP error queue (slirp sets IP_RECVERR and reads MSG_ERRQUEUE)
 * - setsockopt, getsockopt: SO_REUSEADDR/SO_OOBINLINE/TCP_NODELAY/IP_TTL/IP_RECVERR
 *   on new sockets, SO_ERROR after a non-blocking connect
 * - getsockname, getpeername, shutdown: TCP state changes
 * - accept, accept4: connections to a published port (-p; slirp made the listening
 *   socket before the filter)
 * - fcntl: O_NONBLOCK on each new socket
 * - ioctl FIONREAD only: how much a UDP socket holds before reading it
 * - openat read-only, newfstatat: libslirp forwards 10.0.2.3 to the host's first
 *   nameserver and re-reads /etc/resolv.conf when its stat changes (checked at most
 *   once a second); seccomp cannot filter paths, so a compromised net thread can
 *   read files the user can (FIXME: resolve before filtering and answer DNS ourselves)
 */
static const struct vmm_seccomp_rule vmm_seccomp_net[] = {
	ALLOW(poll),	   ALLOW(restart_syscall), ALLOW(read),	       ALLOW(connect),
	ALLOW(close),	   ALLOW(sendto),	   ALLOW(recvfrom),    ALLOW(recvmsg),
	ALLOW(setsockopt), ALLOW(getsockopt),	   ALLOW(getsockname), ALLOW(getpeername),
	ALLOW(shutdown),   ALLOW(accept),	   ALLOW(accept4),     ALLOW(fcntl),
	ALLOW(newfstatat), ALLOW_IOCTL(FIONREAD),
};

bool vmm_seccomp_enabled(void)
{
	const char *v = getenv("KAL_VMM_SECCOMP");

	return !(v && strcmp(v, "0") == 0);
}

const char *vmm_seccomp_kind_name(enum vmm_seccomp_kind kind)
{
	switch (kind) {
	case VMM_SECCOMP_VCPU:
		return "vcpu";
	case VMM_SECCOMP_IO:
		return "io";
	case VMM_SECCOMP_CONTROL:
		return "control";
	case VMM_SECCOMP_NET:
		return "net";
	}
	return "?";
}

static int add_rules(scmp_filter_ctx ctx, const struct vmm_seccomp_rule *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int ret;

		if (r[i].ioctl_req)
			/* the kernel takes the request as an unsigned int: compare the low 32 bits */
			ret = seccomp_rule_add(
			    ctx, SCMP_ACT_ALLOW, r[i].nr, 1,
			    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, r[i].ioctl_req));
		else if (r[i].no_exec)
			ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r[i].nr, 1,
					       SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
		else
			ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r[i].nr, 0);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int vmm_seccomp_install(enum vmm_seccomp_kind kind, struct kal_err **err)
{
	const char *name = vmm_seccomp_kind_name(kind);
	scmp_filter_ctx ctx;
	int ret;

	if (!vmm_seccomp_enabled())
		return 0;
	/* no setuid gain after this, which also lets an unprivileged thread load a filter */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return kal_err_sys(err, errno, "seccomp (%s thread): PR_SET_NO_NEW_PRIVS", name);
	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return kal_err_set(err, ENOMEM, "seccomp (%s thread): seccomp_init failed", name);
	ret = add_rules(ctx, vmm_seccomp_common, ARRAY_SIZE(vmm_seccomp_common));
#ifdef VMM_SECCOMP_ASAN
	if (ret == 0)
		ret = add_rules(ctx, vmm_seccomp_asan, ARRAY_SIZE(vmm_seccomp_asan));
#endif
	if (ret == 0 && kind == VMM_SECCOMP_VCPU)
		ret = add_rules(ctx, vmm_seccomp_vcpu, ARRAY_SIZE(vmm_seccomp_vcpu));
	if (ret == 0 && kind == VMM_SECCOMP_IO)
		ret = add_rules(ctx, vmm_seccomp_io, ARRAY_SIZE(vmm_seccomp_io));
	if (ret == 0 && kind == VMM_SECCOMP_CONTROL)
		ret = add_rules(ctx, vmm_seccomp_control, ARRAY_SIZE(vmm_seccomp_control));
	if (ret == 0 && kind == VMM_SECCOMP_NET)
		ret = add_rules(ctx, vmm_seccomp_net, ARRAY_SIZE(vmm_seccomp_net));
	if (ret == 0 && kind == VMM_SECCOMP_NET)
		/* IPv4 sockets only */
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				       SCMP_A0(SCMP_CMP_EQ, AF_INET));
	if (ret == 0 && kind == VMM_SECCOMP_NET)
		/* opens for reading only: no O_WRONLY, O_RDWR, O_CREAT, O_TRUNC */
		ret = seccomp_rule_add(
		    ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
		    SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC | O_TMPFILE, 0));
	if (ret == 0)
		ret = seccomp_load(ctx);
	seccomp_release(ctx);
	if (ret < 0)
		return kal_err_sys(err, -ret, "seccomp (%s thread): loading the filter", name);
	return 0;
}
