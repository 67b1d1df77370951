/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Constructors of kal's virtio devices.  Each returns the embedded
 * `struct virtio_dev` (free it with virtio_dev_destroy()) or NULL with *err.
 */
#ifndef KAL_VMM_VIRTIO_DEVICES_H
#define KAL_VMM_VIRTIO_DEVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmio.h"

#define VIRTIO_CONSOLE_QUEUE_SIZE 64
#define VIRTIO_CONSOLE_RX_CAP	  4096 /* host bytes read ahead of the guest's buffers */
#define VIRTIO_BLK_QUEUE_SIZE	  128
#define VIRTIO_PMEM_QUEUE_SIZE	  64
#define VIRTIO_PMEM_ALIGN	  (2ull << 20) /* pmem windows and files are 2 MiB multiples */
#define VIRTIO_RNG_QUEUE_SIZE	  64
#define VIRTIO_RNG_REQUEST_CAP	  65536 /* bytes of entropy per request at most */
#define VIRTIO_NET_QUEUE_SIZE	  256
#define VIRTIO_NET_FRAME_MAX	  1518 /* Ethernet + VLAN tag + MTU 1500: no GSO is offered */
#define VIRTIO_NET_RX_SLOTS	  64   /* host->guest frames waiting for guest buffers */

/* Console: guest output goes to out_fd, in_fd (or -1) feeds the guest. Fds stay the caller's. */
struct virtio_dev *virtio_console_create(const struct guest_mem *mem, uint64_t base, uint32_t irq,
					 int in_fd, int out_fd, struct kal_err **err);
/*
 * MULTIPORT console with one named data port (the guest's /dev/vportNp0,
 * sysfs name `name`, at most 31 bytes); host input is held while the guest
 * has the port closed.
 */
struct virtio_dev *virtio_console_port_create(const struct guest_mem *mem, uint64_t base,
					      uint32_t irq, const char *name, int in_fd, int out_fd,
					      struct kal_err **err);
/* Block device on a file; serial (up to 20 bytes) answers GET_ID. */
struct virtio_dev *virtio_blk_create(const struct guest_mem *mem, uint64_t base, uint32_t irq,
				     const char *path, bool read_only, const char *serial,
				     struct kal_err **err);
/*
 * Read-only persistent memory: the file (a multiple of 2 MiB) is mapped
 * PROT_READ from an O_RDONLY fd; the VMM must register the window at gpa as a
 * KVM_MEM_READONLY slot and as a GUEST_MEM_NO_DEVICE_WRITE region.
 */
struct virtio_dev *virtio_pmem_create(const struct guest_mem *mem, uint64_t base, uint32_t irq,
				      const char *path, uint64_t gpa, struct kal_err **err);
void virtio_pmem_window(struct virtio_dev *vd, uint64_t *gpa, uint64_t *size, void **host);
/* Entropy from getrandom(2). */
struct virtio_dev *virtio_rng_create(const struct guest_mem *mem, uint64_t base, uint32_t irq,
				     struct kal_err **err);

/*
 * Network card (VERSION_1 + MAC, no offloads).  Guest frames go to send();
 * it returns 0 once it took (or dropped) the frame, -EAGAIN to hold the
 * transmit queue until something writes virtio_net_tx_kick_fd().
 */
typedef int (*virtio_net_send_fn)(void *opaque, const void *frame, size_t len);
struct virtio_net_stats {
	unsigned long rx_frames, rx_dropped; /* dropped: queue full, too big, or buffer too small */
	unsigned long tx_frames, tx_malformed;
};
struct virtio_dev *virtio_net_create(const struct guest_mem *mem, uint64_t base, uint32_t irq,
				     const uint8_t mac[6], struct kal_err **err);
void virtio_net_set_backend(struct virtio_dev *vd, virtio_net_send_fn send, void *opaque);
/*
 * A frame for the guest, from any thread: queued (0), or dropped when
 * VIRTIO_NET_RX_SLOTS frames already wait (-ENOBUFS) or it is too big (-EMSGSIZE).
 */
int virtio_net_receive(struct virtio_dev *vd, const void *frame, size_t len);
int virtio_net_tx_kick_fd(struct virtio_dev *vd);
void virtio_net_get_stats(struct virtio_dev *vd, struct virtio_net_stats *st);

#endif
