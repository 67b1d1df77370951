// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The VMM's seccomp allow lists: each case forks, installs one thread kind's
 * filter in the child and makes one call.  Allowed calls return normally;
 * anything else (a syscall off the list, an ioctl request other than the
 * listed ones, an executable mapping) kills the child with SIGSYS.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/kvm.h>

#include "lib/err.h"
#include "vmm/seccomp.h"

enum probe {
	PROBE_WRITE,	  /* write to /dev/null: on every list */
	PROBE_OPENAT,	  /* on no list */
	PROBE_KVM_RUN,	  /* ioctl(KVM_RUN) on a bad fd: EBADF if the filter lets it through */
	PROBE_KVM_SREGS,  /* ioctl(KVM_SET_SREGS): not on the vCPU list */
	PROBE_MMAP_EXEC,  /* mmap PROT_EXEC: refused by argument */
	PROBE_MMAP_RW,	  /* mmap PROT_READ|PROT_WRITE: allowed for malloc */
	PROBE_PREAD,	  /* I/O thread only */
	PROBE_EXIT_GROUP, /* control thread only */
	PROBE_SOCKET4,	  /* socket(AF_INET) + close: net thread only */
	PROBE_SOCKET6,	  /* socket(AF_INET6): refused by argument (IPv6 is off) */
	PROBE_OPEN_WRITE, /* openat for writing: refused by argument on the net list */
};

/* Returns the child's wait status after it installed @kind and ran @p. */
static int run_probe(enum vmm_seccomp_kind kind, enum probe p)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int status = -1;
	pid_t pid;

	assert_true(null >= 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct kal_err *err = NULL;
		char c = 0;
		struct rlimit no_core = { 0, 0 };
		void *m;

		setrlimit(RLIMIT_CORE, &no_core); /* SIGSYS dumps core by default */
		if (vmm_seccomp_install(kind, &err) < 0)
			_exit(100);
		switch (p) {
		case PROBE_WRITE:
			if (write(null, &c, 1) != 1)
				_exit(101);
			break;
		case PROBE_OPENAT:
			syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY);
			break;
		case PROBE_KVM_RUN:
			ioctl(-1, KVM_RUN, 0);
			break;
		case PROBE_KVM_SREGS:
			ioctl(-1, KVM_SET_SREGS, NULL);
			break;
		case PROBE_MMAP_EXEC:
		case PROBE_MMAP_RW:
			m = mmap(NULL, 4096,
				 PROT_READ | (p == PROBE_MMAP_EXEC ? PROT_EXEC : PROT_WRITE),
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (m == MAP_FAILED)
				_exit(102);
			break;
		case PROBE_PREAD:
			if (pread(null, &c, 1, 0) != 0)
				_exit(103);
			break;
		case PROBE_EXIT_GROUP:
			syscall(SYS_exit_group, 0);
			break;
		case PROBE_SOCKET4:
			if (syscall(SYS_close, syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0)) != 0)
				_exit(104);
			break;
		case PROBE_SOCKET6:
			syscall(SYS_socket, AF_INET6, SOCK_DGRAM, 0);
			break;
		case PROBE_OPEN_WRITE:
			syscall(SYS_openat, AT_FDCWD, "/dev/null", O_WRONLY);
			break;
		}
		/* plain exit: exit_group is only on the control list */
		syscall(SYS_exit, 0);
	}
	close(null);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void assert_allowed(enum vmm_seccomp_kind kind, enum probe p)
{
	int st = run_probe(kind, p);

	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void assert_killed(enum vmm_seccomp_kind kind, enum probe p)
{
	int st = run_probe(kind, p);

	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
}

static void test_seccomp_vcpu(void **state)
{
	(void)state;
	assert_allowed(VMM_SECCOMP_VCPU, PROBE_WRITE);
	assert_allowed(VMM_SECCOMP_VCPU, PROBE_KVM_RUN);
	assert_allowed(VMM_SECCOMP_VCPU, PROBE_MMAP_RW);
	assert_killed(VMM_SECCOMP_VCPU, PROBE_KVM_SREGS);
	assert_killed(VMM_SECCOMP_VCPU, PROBE_OPENAT);
	assert_killed(VMM_SECCOMP_VCPU, PROBE_MMAP_EXEC);
	assert_killed(VMM_SECCOMP_VCPU, PROBE_PREAD);
	assert_killed(VMM_SECCOMP_VCPU, PROBE_EXIT_GROUP);
}

static void test_seccomp_io(void **state)
{
	(void)state;
	assert_allowed(VMM_SECCOMP_IO, PROBE_WRITE);
	assert_allowed(VMM_SECCOMP_IO, PROBE_PREAD);
	assert_killed(VMM_SECCOMP_IO, PROBE_KVM_RUN);
	assert_killed(VMM_SECCOMP_IO, PROBE_OPENAT);
	assert_killed(VMM_SECCOMP_IO, PROBE_MMAP_EXEC);
	assert_killed(VMM_SECCOMP_IO, PROBE_EXIT_GROUP);
}

static void test_seccomp_control(void **state)
{
	(void)state;
	assert_allowed(VMM_SECCOMP_CONTROL, PROBE_WRITE);
	assert_allowed(VMM_SECCOMP_CONTROL, PROBE_EXIT_GROUP);
	assert_killed(VMM_SECCOMP_CONTROL, PROBE_KVM_RUN);
	assert_killed(VMM_SECCOMP_CONTROL, PROBE_PREAD);
	assert_killed(VMM_SECCOMP_CONTROL, PROBE_OPENAT);
}

static void test_seccomp_net(void **state)
{
	(void)state;
	assert_allowed(VMM_SECCOMP_NET, PROBE_WRITE);
	assert_allowed(VMM_SECCOMP_NET, PROBE_SOCKET4);
	/* read-only opens pass: libslirp re-reads /etc/resolv.conf (docs/vmm.md) */
	assert_allowed(VMM_SECCOMP_NET, PROBE_OPENAT);
	assert_killed(VMM_SECCOMP_NET, PROBE_OPEN_WRITE);
	assert_killed(VMM_SECCOMP_NET, PROBE_SOCKET6);
	assert_killed(VMM_SECCOMP_NET, PROBE_KVM_RUN);
	assert_killed(VMM_SECCOMP_NET, PROBE_PREAD);
	assert_killed(VMM_SECCOMP_NET, PROBE_MMAP_EXEC);
	assert_killed(VMM_SECCOMP_NET, PROBE_EXIT_GROUP);
	assert_killed(VMM_SECCOMP_IO, PROBE_SOCKET4);
}

static void test_seccomp_off(void **state)
{
	(void)state;
	setenv("KAL_VMM_SECCOMP", "0", 1);
	assert_false(vmm_seccomp_enabled());
	assert_allowed(VMM_SECCOMP_IO, PROBE_OPENAT);
	unsetenv("KAL_VMM_SECCOMP");
	assert_true(vmm_seccomp_enabled());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seccomp_vcpu),	cmocka_unit_test(test_seccomp_io),
		cmocka_unit_test(test_seccomp_control), cmocka_unit_test(test_seccomp_net),
		cmocka_unit_test(test_seccomp_off),
	};

	unsetenv("KAL_VMM_SECCOMP");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
