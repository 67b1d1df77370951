/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Internal interface of the guest agent kal-init: boot-time setup (setup.c),
 * the single-threaded serving loop over the host channel (serve.c) and the
 * child side of spawning a session (spawn.c).  Built only with musl, static.
 */
#ifndef KAL_GUEST_AGENT_H
#define KAL_GUEST_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

/* Default PATH for sessions whose environment has none (the OCI default). */
#define AGENT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct agent_opts {
	bool test_mode; /* --serve-fd: a normal process on a socketpair, exits at EOF */
	int chan_fd;
};

/* print "kal-init: ..." to the console (stderr) */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* PID 1 cannot exit: report, sync and reboot so the host sees the VM end */
__attribute__((noreturn)) void agent_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* setup.c: mounts, overlay root, switch root, hostname, network; 0 or -1 (logged) */
int agent_setup_system(void);
/* find and open the kal.agent virtio-serial port; -1 (logged) if absent */
int agent_channel_open(void);

/*
 * ring.c: the kvm engine's shared-memory channel (guest/chan.h).  open maps
 * the rings at gpa from /dev/mem; bell_fd is the agent port, which then only
 * carries the host's doorbell bytes.  read/write move bytes (-EAGAIN: none
 * now, -EPROTO: the ring broke and was reset).  prepare_sleep tells the host
 * what we wait for: false when there is work now (do not sleep), true when
 * poll on bell_fd may block.
 */
int agent_ring_open(uint64_t gpa, int bell_fd);
bool agent_ring_active(void);
long agent_ring_read(void *buf, size_t len);
long agent_ring_write(const void *buf, size_t len);
bool agent_ring_prepare_sleep(bool want_in, bool want_out);
void agent_ring_drain_bell(void); /* after poll said bell_fd is readable */

/* serve.c: never returns in PID 1 mode; returns the exit code in test mode */
int agent_serve(const struct agent_opts *o);

/*
 * spawn.c: runs in the forked child; sets up stdio (already dup'ed by the
 * caller), user, cwd, environment, then execs.  Never returns: on failure
 * writes "kal: exec `x`: reason" to stderr and exits 126/127.
 */
__attribute__((noreturn)) void agent_spawn_child(const struct kal_msg_spawn *m);

#endif
