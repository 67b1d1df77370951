/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Split virtqueue, device side (virtio 1.2 section 2.7), hardened against a
 * hostile driver: every index, descriptor and address coming from guest
 * memory is checked (reliability.md A1-A12), each descriptor is copied out of
 * guest memory once, and a bad chain makes virtq_pop() fail with a reason in
 * q->err so the device can go NEEDS_RESET.  Never offered: INDIRECT_DESC,
 * EVENT_IDX, PACKED.
 *
 *   descriptor table (16-byte aligned)   avail ring (2-aligned)   used ring (4-aligned)
 *   +--------+-----+-------+------+     +-------+-----+--------+  +-------+-----+------------+
 *   | addr64 |len32|flags16|next16| x N | flags | idx | ring[N]|  | flags | idx | {id32,len32}[N]
 *   +--------+-----+-------+------+     +-------+-----+--------+  +-------+-----+------------+
 */
#ifndef KAL_VMM_VIRTIO_QUEUE_H
#define KAL_VMM_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../mem.h"

#define VIRTQ_MAX_SIZE 256 /* largest queue any kal device offers */

struct vring_desc;
struct vring_avail;
struct vring_used;

struct virtq {
	/* set by the transport (guest-written registers) */
	uint16_t max_size; /* QueueNumMax offered by the device */
	uint16_t size;	   /* QueueNum */
	bool ready;	   /* QueueReady accepted (rings validated) */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	/* device-side progress; saved and restored */
	uint16_t last_avail; /* next avail ring slot to consume */
	uint16_t next_used;  /* our copy of used.idx */
	/* host views of the rings, valid while ready */
	const struct guest_mem *mem;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	char err[128]; /* why the last setup or pop failed */
};

/* One readable or writable buffer of a chain (host pointer into guest RAM). */
struct virtq_buf {
	uint8_t *base;
	uint32_t len;
};

/* A popped chain: readable buffers first (nr_out), then writable ones (nr_in). */
struct virtq_chain {
	uint16_t head;
	uint16_t nr_out, nr_in;
	uint32_t out_len, in_len; /* totals; out_len + in_len fits in u32 */
	struct virtq_buf buf[VIRTQ_MAX_SIZE];
};

/*
 * Validate size and rings against mem (A1, A2) and map them.  On success the
 * queue is ready; on failure returns -EINVAL, leaves it not ready, and says
 * why in q->err.  Also the restore path: call it again after loading state.
 */
int virtq_setup(struct virtq *q, const struct guest_mem *mem);

/* Forget the guest's configuration (device reset). Keeps max_size. */
void virtq_reset(struct virtq *q);

/*
 * Take the next available chain.  Returns 1 with *c filled, 0 when the ring
 * is empty, -EINVAL when the driver broke the protocol (q->err says how; the
 * device must stop using the queue until reset).
 */
int virtq_pop(struct virtq *q, struct virtq_chain *c);

/* Publish a finished chain with the number of bytes the device wrote into it. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t written);

/* Are chains waiting? (A separate read of avail.idx, for re-kicking after a budget.) */
bool virtq_pending(const struct virtq *q);

/* Copy up to len bytes of the chain's readable data, from byte `off`; returns bytes copied. */
size_t virtq_chain_read(const struct virtq_chain *c, size_t off, void *dst, size_t len);
/* Copy up to len bytes into the chain's writable buffers from byte `off`; returns bytes copied. */
size_t virtq_chain_write(const struct virtq_chain *c, size_t off, const void *src, size_t len);

#endif
