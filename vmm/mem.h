/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest-physical memory as the device model sees it: a short list of regions
 * (RAM, read-only pmem windows), each backed by a host mapping.  Every guest
 * address a device touches goes through guest_mem_ptr(), which checks the
 * whole range [gpa, gpa+len) with overflow-safe arithmetic and refuses
 * anything outside a region (MMIO windows, holes) and, for buffers the device
 * will write, any region flagged GUEST_MEM_NO_DEVICE_WRITE (pmem).
 */
#ifndef KAL_VMM_MEM_H
#define KAL_VMM_MEM_H

#include <stdbool.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 16

/* region flags */
#define GUEST_MEM_NO_DEVICE_WRITE 0x1 /* devices may read, never write (pmem) */

struct guest_mem_region {
	uint64_t gpa;
	uint64_t size; /* > 0; gpa + size does not overflow (checked on add) */
	uint8_t *host;
	unsigned int flags;
};

struct guest_mem {
	unsigned int nr;
	struct guest_mem_region r[GUEST_MEM_MAX_REGIONS];
};

/* Add a region; -EINVAL on overlap, zero size, overflow, or a full table. */
int guest_mem_add(struct guest_mem *m, uint64_t gpa, uint64_t size, void *host, unsigned int flags);

/*
 * Host pointer for [gpa, gpa+len) when the whole range lies in one region,
 * else NULL.  len 0 is accepted when gpa lies inside a region or at its end.
 * device_writes: the device will store into the range (refused for regions
 * flagged GUEST_MEM_NO_DEVICE_WRITE).
 */
void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len, bool device_writes);

#endif
