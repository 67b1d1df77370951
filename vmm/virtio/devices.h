/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Constructors of kal's virtio devices.  Each returns the embedded
 * `struct virtio_dev` (free it with virtio_dev_destroy()) or NULL with *err.
 */
#ifndef KAL_VMM_VIRTIO_DEVICES_H
#define KAL_VMM_VIRTIO_DEVICES_H

#include <stdbool.h>
#include <stdint.h>

#include "mmio.h"

#define VIRTIO_CONSOLE_QUEUE_SIZE 64
#define VIRTIO_CONSOLE_RX_CAP	  4096 /* host bytes read ahead of the guest's buffers */
#define VIRTIO_BLK_QUEUE_SIZE	  128
#define VIRTIO_PMEM_QUEUE_SIZE	  64
#define VIRTIO_PMEM_ALIGN	  (2ull << 20) /* pmem windows and files are 2 MiB multiples */
#define VIRTIO_RNG_QUEUE_SIZE	  64
#define VIRTIO_RNG_REQUEST_CAP	  65536 /* bytes of entropy per request at most */

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

#endif
