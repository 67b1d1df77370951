/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The agent channel of the kvm engine: the guest/proto.h byte stream carried
 * by two single-producer/single-consumer byte rings in a shared-memory region
 * of guest-physical space, with doorbells both ways.  Header-only and
 * freestanding (no libc: compiler builtins only) so the bare test guest,
 * kal-init and the VMM all use the same ring code.  Each side keeps its own
 * index privately and only ever reads the peer's index once per call, then
 * validates the copy: a hostile peer can break the channel, never the reader.
 *
 * Guest-physical layout (the VMM appends `kal.channel=ring@0xcf000000`):
 *
 *   0xcf000000 +---------------------------------------------+ region, 64 KiB,
 *              | header page: struct chan_hdr                | memfd-backed,
 *   +0x1000    +---------------------------------------------+ shared memslot
 *              | ring 0 control (guest -> host): chan_ctl    |
 *   +0x2000    +---------------------------------------------+
 *              | ring 0 data, CHAN_RING_SIZE (16 KiB)        |
 *   +0x6000    +---------------------------------------------+
 *              | ring 1 control (host -> guest): chan_ctl    |
 *   +0x7000    +---------------------------------------------+
 *              | ring 1 data, CHAN_RING_SIZE (16 KiB)        |
 *   +0xb000    +---------------------------------------------+
 *              | reserved (zero)                             |
 *   0xcf010000 +---------------------------------------------+ doorbell page,
 *              | +0 KICK: u32 write = "look at the rings"    | no memslot: a
 *              | +4 RESET: u32 write = start the channel over| guest store is
 *   0xcf011000 +---------------------------------------------+ an ioeventfd
 *
 *   struct chan_hdr (host-written at start, little-endian u32s):
 *     magic "KCHN" | version 1 | ring_size | status (0 ok, 1 broken) |
 *     g2h_ctl | g2h_data | h2g_ctl | h2g_data (offsets in the region)
 *
 *   struct chan_ctl, each u32 on its own 64-byte cache line:
 *     head        producer: bytes ever written (free-running, wraps at 2^32)
 *     tail        consumer: bytes ever read; head - tail = bytes in the ring
 *     data_wait   consumer: 1 = "asleep until there is data"
 *     space_wait  producer: 1 = "asleep until there is space"
 *   Byte i of the stream sits at data[i % ring_size].  head - tail (u32
 *   arithmetic) > ring_size is a broken ring.
 *
 * Sleeping without lost wakeups: the side that wants to sleep sets its wait
 * flag, issues a full fence, and checks the ring again (chan_ring_sleep_ok());
 * the side that makes progress publishes its index, issues a full fence,
 * and swaps the peer's flag to 0, ringing only when it was set
 * (chan_ring_wake_peer()).  Either the sleeper sees the new index or the
 * waker sees the flag.
 *
 * Doorbells: guest -> host is a 4-byte store to CHAN_DOORBELL_GPA + KICK
 * (a KVM ioeventfd, no exit to userspace).  Host -> guest is one byte on the
 * `kal.agent` port (port 0 of a MULTIPORT virtio-console: /dev/vportNp0 in a
 * Linux guest, found by its sysfs name): a guest process polls the port for
 * input and discards the bytes; the bare test guest takes the device's
 * receive buffers.  A store to +RESET makes
 * the host drop its buffered bytes, zero both rings' indices and clear
 * status: the way out of a broken channel (and for an agent that restarts).
 *
 * A Linux guest maps the region and the doorbell page through /dev/mem
 * (CONFIG_DEVMEM; STRICT_DEVMEM allows it: neither is RAM) with MAP_SHARED.
 */
#ifndef KAL_GUEST_CHAN_H
#define KAL_GUEST_CHAN_H

#include <stdint.h>

#define CHAN_GPA	    0xcf000000ull
#define CHAN_REGION_SIZE    0x10000u
#define CHAN_DOORBELL_GPA   (CHAN_GPA + CHAN_REGION_SIZE)
#define CHAN_DOORBELL_SIZE  0x1000u
#define CHAN_DOORBELL_KICK  0x0u /* offset in the doorbell page */
#define CHAN_DOORBELL_RESET 0x4u
#define CHAN_MAGIC	    0x4e48434bu /* "KCHN" little-endian */
#define CHAN_VERSION	    1u
#define CHAN_RING_SIZE	    0x4000u /* data bytes per ring, a power of two */
#define CHAN_G2H_CTL	    0x1000u
#define CHAN_G2H_DATA	    0x2000u
#define CHAN_H2G_CTL	    0x6000u
#define CHAN_H2G_DATA	    0x7000u
#define CHAN_STATUS_OK	    0u
#define CHAN_STATUS_BROKEN  1u
#define CHAN_CMDLINE_KEY    "kal.channel=ring@" /* followed by the region's gpa in hex */
#define CHAN_CACHELINE	    64

struct chan_hdr {
	uint32_t magic, version, ring_size, status;
	uint32_t g2h_ctl, g2h_data, h2g_ctl, h2g_data;
};

struct chan_ctl {
	uint32_t head;
	uint8_t pad0[CHAN_CACHELINE - 4];
	uint32_t tail;
	uint8_t pad1[CHAN_CACHELINE - 4];
	uint32_t data_wait;
	uint8_t pad2[CHAN_CACHELINE - 4];
	uint32_t space_wait;
	uint8_t pad3[CHAN_CACHELINE - 4];
};

/* One side's private view of one ring.  Never in shared memory. */
struct chan_ring {
	struct chan_ctl *ctl;
	uint8_t *data;
	uint32_t size; /* from the constants, never from shared memory */
	uint32_t pos;  /* this side's own index: head if producer, tail if consumer */
	uint32_t bad;  /* the peer index that broke the ring (for the log line) */
	uint8_t producer;
	uint8_t broken; /* sticky: the peer published an impossible index */
};

/*
 * Set up a view.  pos is the index this side owns: 0 on a fresh channel; an
 * agent that restarts reads it back from ctl (it is its own index).
 */
static inline void chan_ring_init(struct chan_ring *r, void *ctl, void *data, uint32_t size,
				  int producer, uint32_t pos)
{
	r->ctl = (struct chan_ctl *)ctl;
	r->data = (uint8_t *)data;
	r->size = size;
	r->pos = pos;
	r->bad = 0;
	r->producer = producer ? 1 : 0;
	r->broken = 0;
}

/* Views of both rings for one side of a mapped region (host: is_host = 1). */
static inline void chan_rings_init(void *region, int is_host, struct chan_ring *tx,
				   struct chan_ring *rx)
{
	uint8_t *p = (uint8_t *)region;

	if (is_host) {
		chan_ring_init(tx, p + CHAN_H2G_CTL, p + CHAN_H2G_DATA, CHAN_RING_SIZE, 1, 0);
		chan_ring_init(rx, p + CHAN_G2H_CTL, p + CHAN_G2H_DATA, CHAN_RING_SIZE, 0, 0);
	} else {
		chan_ring_init(tx, p + CHAN_G2H_CTL, p + CHAN_G2H_DATA, CHAN_RING_SIZE, 1, 0);
		chan_ring_init(rx, p + CHAN_H2G_CTL, p + CHAN_H2G_DATA, CHAN_RING_SIZE, 0, 0);
	}
}

/* The guest's check of the header the host wrote: 1 when it speaks this format. */
static inline int chan_hdr_ok(const void *region)
{
	const struct chan_hdr *h = (const struct chan_hdr *)region;

	return h->magic == CHAN_MAGIC && h->version == CHAN_VERSION &&
	       h->ring_size == CHAN_RING_SIZE && h->g2h_ctl == CHAN_G2H_CTL &&
	       h->g2h_data == CHAN_G2H_DATA && h->h2g_ctl == CHAN_H2G_CTL &&
	       h->h2g_data == CHAN_H2G_DATA;
}

/*
 * Bytes that can move now: readable bytes for a consumer, free space for a
 * producer; -1 when the ring is broken.  Loads the peer's index once
 * (acquire: the data it covers is visible after it) and validates the copy.
 */
static inline long chan_ring_avail(struct chan_ring *r)
{
	uint32_t peer, used;

	if (r->broken)
		return -1;
	if (r->producer) {
		peer = __atomic_load_n(&r->ctl->tail, __ATOMIC_ACQUIRE);
		used = r->pos - peer; /* tail beyond head wraps to a huge value */
	} else {
		peer = __atomic_load_n(&r->ctl->head, __ATOMIC_ACQUIRE);
		used = peer - r->pos; /* head behind tail wraps too */
	}
	if (used > r->size) {
		r->bad = peer;
		r->broken = 1;
		return -1;
	}
	return r->producer ? (long)(r->size - used) : (long)used;
}

/* Producer: copy up to len bytes in; bytes written (0: full), -1: broken. */
static inline long chan_ring_write(struct chan_ring *r, const void *buf, uint32_t len)
{
	long room = chan_ring_avail(r);
	uint32_t n, at, first;

	if (room <= 0)
		return room;
	n = len < (uint32_t)room ? len : (uint32_t)room;
	at = r->pos & (r->size - 1);
	first = r->size - at < n ? r->size - at : n;
	__builtin_memcpy(r->data + at, buf, first);
	if (n > first)
		__builtin_memcpy(r->data, (const uint8_t *)buf + first, n - first);
	r->pos += n;
	/* release: the bytes are visible before the index that publishes them */
	__atomic_store_n(&r->ctl->head, r->pos, __ATOMIC_RELEASE);
	return n;
}

/* Consumer: copy up to len bytes out; bytes read (0: empty), -1: broken. */
static inline long chan_ring_read(struct chan_ring *r, void *buf, uint32_t len)
{
	long have = chan_ring_avail(r);
	uint32_t n, at, first;

	if (have <= 0)
		return have;
	n = len < (uint32_t)have ? len : (uint32_t)have;
	at = r->pos & (r->size - 1);
	first = r->size - at < n ? r->size - at : n;
	__builtin_memcpy(buf, r->data + at, first);
	if (n > first)
		__builtin_memcpy((uint8_t *)buf + first, r->data, n - first);
	r->pos += n;
	/* release: our reads of the bytes are done before the producer may reuse them */
	__atomic_store_n(&r->ctl->tail, r->pos, __ATOMIC_RELEASE);
	return n;
}

/*
 * Before sleeping: announce it (consumer: data_wait, producer: space_wait),
 * full fence, look again.  Returns 1 when the caller may sleep until the
 * peer's doorbell, 0 when it can make progress now (the flag is cleared
 * again) or the ring is broken (chan_ring_avail() says which).
 */
static inline int chan_ring_sleep_ok(struct chan_ring *r)
{
	uint32_t *flag = r->producer ? &r->ctl->space_wait : &r->ctl->data_wait;

	__atomic_store_n(flag, 1, __ATOMIC_RELAXED);
	/* full fence: the flag is visible before we read the peer's index (store->load) */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (chan_ring_avail(r) != 0) {
		__atomic_store_n(flag, 0, __ATOMIC_RELAXED);
		return 0;
	}
	return 1;
}

/*
 * After publishing progress: 1 when the peer said it sleeps on it (its flag
 * is swapped back to 0, so it is woken once per sleep): ring its doorbell.
 */
static inline int chan_ring_wake_peer(struct chan_ring *r)
{
	uint32_t *flag = r->producer ? &r->ctl->data_wait : &r->ctl->space_wait;

	/* full fence: our index is visible before we read the peer's flag (store->load) */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(flag, __ATOMIC_RELAXED) == 0)
		return 0; /* the common case: no locked RMW on the hot path */
	return __atomic_exchange_n(flag, 0, __ATOMIC_SEQ_CST) != 0;
}

#endif
