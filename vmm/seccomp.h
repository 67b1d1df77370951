/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-thread seccomp allow lists for the KVM VMM (reliability.md B7).  Each
 * thread installs the filter of its kind once its setup is done, as the first
 * thing of its loop; without TSYNC a filter binds only the calling thread and
 * the threads it creates later.  Anything not listed kills the whole process
 * with SIGSYS.  KAL_VMM_SECCOMP=0 turns the filters off for debugging.
 */
#ifndef KAL_VMM_SECCOMP_H
#define KAL_VMM_SECCOMP_H

#include <stdbool.h>

struct kal_err;

enum vmm_seccomp_kind {
	VMM_SECCOMP_VCPU,    /* KVM_RUN and the exits it hands to the VMM */
	VMM_SECCOMP_IO,	     /* the device (event loop) thread: epoll, eventfds, host files */
	VMM_SECCOMP_CONTROL, /* the thread that started the VM, waits for it and tears it down */
	VMM_SECCOMP_NET,     /* libslirp: the guest's TCP/UDP/ICMP as host sockets */
};

/* False when KAL_VMM_SECCOMP=0 is set (debugging only). */
bool vmm_seccomp_enabled(void);

/*
 * Install the allow list of @kind on the calling thread, after
 * PR_SET_NO_NEW_PRIVS.  Does nothing when disabled.  Fails only on a
 * libseccomp or kernel error; the thread then must not run the guest.
 */
int vmm_seccomp_install(enum vmm_seccomp_kind kind, struct kal_err **err);

/* Names for messages and docs: "vcpu", "io", "control", "net". */
const char *vmm_seccomp_kind_name(enum vmm_seccomp_kind kind);

#endif
