/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * User-mode networking for the KVM VMM: libslirp behind the virtio-net
 * device, the same addresses as QEMU's `-netdev user` (guest 10.0.2.15/24,
 * gateway 10.0.2.2, DNS 10.0.2.3, IPv4 only) but with the host's loopback
 * closed: 10.0.2.2 never reaches 127.0.0.1 (reliability.md B6).  libslirp is
 * not thread-safe, so every slirp call runs on one net thread (the instance
 * is created before that thread starts and freed after it is joined).
 *
 *   vCPU --kick--> I/O thread --vmm_net_send: tx ring + eventfd--> net thread --slirp_input
 *   net thread --slirp send_packet--> virtio_net_receive (rx queue + eventfd) --> I/O thread
 */
#ifndef KAL_VMM_NET_H
#define KAL_VMM_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "kvm.h"

struct kal_err;
struct virtio_dev;
struct vmm_net;

#define VMM_NET_TX_SLOTS 64 /* guest frames queued for the net thread */

/* The slirp instance, wired to a virtio-net device (frames both ways). */
/*
 * ... publishing fw[0..n) on the host (listening sockets made now, before any
 * filter; the net thread only accepts on them).
 */
struct vmm_net *vmm_net_create(struct virtio_dev *vd, const struct vmm_forward *fw, unsigned int n,
			       struct kal_err **err);
/*
 * Start the net thread; it calls confine(arg) first (the seccomp filter) and
 * ends at once when that returns false.
 */
int vmm_net_start(struct vmm_net *n, bool (*confine)(void *arg), void *arg, struct kal_err **err);
/* Stop and join the thread (if started); slirp stays until destroy. NULL is fine. */
void vmm_net_stop(struct vmm_net *n);
/* Stop, then free slirp. NULL is fine. */
void vmm_net_destroy(struct vmm_net *n);

#endif
