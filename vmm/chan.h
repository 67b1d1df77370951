/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Host side of the shared-memory agent channel (format: guest/chan.h).  The
 * VMM owns a memfd-backed region mapped into the guest at CHAN_GPA, two
 * eventfds behind the doorbell page (KICK, RESET), and a pipe whose read end
 * is the `kal.agent` port's input (the host -> guest doorbell).  The I/O thread
 * bridges ring 0 to the agent's host output fd and the agent's host input fd
 * to ring 1, through one bounded buffer per direction (VMM_CHAN_BUF): a
 * stalled host reader stops the guest's ring, a silent guest stops reading
 * the host.  The guest controls every index and flag: a broken ring logs
 * once, marks the header's status and stops the channel until the guest
 * writes RESET; the VM and the other devices keep running.
 */
#ifndef KAL_VMM_CHAN_H
#define KAL_VMM_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kal_err;
struct snap_writer;
struct snap_reader;
struct vmm_chan;

#define VMM_CHAN_BUF	     4096 /* host bytes buffered per direction */
#define VMM_CHAN_BUDGET	     64	  /* buffer-fuls moved per service call before yielding */
#define VMM_CHAN_SNAP_VER    1
#define VMM_CHAN_POLL_MAX_US 1000 /* cap of the idle polling window */

/*
 * The region (zeroed, header written), the doorbell eventfds and the bell
 * pipe.  in_fd feeds the guest (ring 1), out_fd receives what the guest
 * writes (ring 0); either may be -1 (or both the same socket).  They stay
 * the caller's: pipes and terminals are used through non-blocking reopens of
 * their own, a socket is switched to O_NONBLOCK (shared with the caller).
 * poll_us: after the rings go idle the I/O thread keeps polling ring 0 this
 * long (capped at VMM_CHAN_POLL_MAX_US) before it sleeps; 0 = never poll.
 */
struct vmm_chan *vmm_chan_create(int in_fd, int out_fd, unsigned int poll_us, struct kal_err **err);
void vmm_chan_destroy(struct vmm_chan *c);

/* The host mapping of the region (CHAN_REGION_SIZE bytes); tests act as the guest on it. */
void *vmm_chan_region(struct vmm_chan *c);
/* The bell pipe's read end: give it to the `kal.agent` port as its input fd. */
int vmm_chan_bell_fd(const struct vmm_chan *c);

/* Map the region at CHAN_GPA as memslot `slot` and bind KICK/RESET as ioeventfds. */
int vmm_chan_attach(struct vmm_chan *c, int vm_fd, uint32_t slot, struct kal_err **err);
/* "kal.channel=ring@0xcf000000" */
int vmm_chan_cmdline(char *buf, size_t len);

/*
 * A guest store in the doorbell page that KVM did not catch (no ioeventfd):
 * true when gpa is the channel's (a read there gives 0, a write rings).
 */
bool vmm_chan_mmio(struct vmm_chan *c, uint64_t gpa, void *data, uint32_t len, bool is_write);

/* Register the channel's fds with the I/O thread's epoll; every event carries tag. */
int vmm_chan_io_start(struct vmm_chan *c, int epoll_fd, void *tag, struct kal_err **err);
/* From the I/O thread on any event with the tag (and from tests): move bytes both ways. */
void vmm_chan_service(struct vmm_chan *c);

/* true once a ring broke (until the guest's RESET) */
bool vmm_chan_broken(struct vmm_chan *c);

/*
 * State record: host indices, broken flag, buffered bytes and the region's
 * bytes (guest-visible state outside RAM).  Restore checks every length
 * against kal's caps; the guest-owned values are validated on use as always.
 *
 *   +------+-------+-------+-------+------+------+--------+---------+--------+---------+--------+
 *   |"CHAN"|ver u32|flags  |g2h pos|h2g   |out n |out     |in n u32 |in bytes|region n |region  |
 *   | u32  |       |u8     |u32    |pos   |u32   |bytes   |         |        |u32      |bytes   |
 *   +------+-------+-------+-------+------+------+--------+---------+--------+---------+--------+
 *   flags: bit 0 broken, bit 1 host input at EOF
 */
int vmm_chan_save(struct vmm_chan *c, struct snap_writer *w, struct kal_err **err);
int vmm_chan_restore(struct vmm_chan *c, struct snap_reader *r, struct kal_err **err);
/* Test hook: wipe the host-side state, as a fresh process before restore would have it. */
void vmm_chan_scribble(struct vmm_chan *c);

#endif
