// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Split virtqueue, device side.  The guest owns the rings and may rewrite
 * them at any moment from another vCPU, so every value is loaded once into a
 * local and only the local is checked and used (TOCTOU, reliability.md A7).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include "queue.h"

static int virtq_fail(struct virtq *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int virtq_fail(struct virtq *q, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->err, sizeof(q->err), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* bytes of each ring for a queue of n entries, including the event-idx words */
static uint64_t desc_bytes(uint16_t n)
{
	return 16ull * n;
}
static uint64_t avail_bytes(uint16_t n)
{
	return 6ull + 2ull * n;
}
static uint64_t used_bytes(uint16_t n)
{
	return 6ull + 8ull * n;
}

static void *ring_map(struct virtq *q, const struct guest_mem *mem, const char *what, uint64_t gpa,
		      uint64_t len, uint64_t align, bool device_writes)
{
	void *p;

	if (gpa & (align - 1)) {
		virtq_fail(q, "%s ring at 0x%llx is not %llu-byte aligned", what,
			   (unsigned long long)gpa, (unsigned long long)align);
		return NULL;
	}
	p = guest_mem_ptr(mem, gpa, len, device_writes);
	if (!p)
		virtq_fail(q, "%s ring [0x%llx, +0x%llx) is outside guest RAM", what,
			   (unsigned long long)gpa, (unsigned long long)len);
	return p;
}

int virtq_setup(struct virtq *q, const struct guest_mem *mem)
{
	uint16_t n = q->size;

	q->ready = false;
	/* unsigned types throughout: a "negative" size cannot slip past (CVE-2011-2512) */
	if (n == 0 || n > q->max_size || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return virtq_fail(q, "queue size %u is invalid (power of two up to %u)", n,
				  q->max_size);
	q->desc = ring_map(q, mem, "descriptor", q->desc_gpa, desc_bytes(n), 16, false);
	if (!q->desc)
		return -EINVAL;
	q->avail = ring_map(q, mem, "available", q->avail_gpa, avail_bytes(n), 2, false);
	if (!q->avail)
		return -EINVAL;
	q->used = ring_map(q, mem, "used", q->used_gpa, used_bytes(n), 4, true);
	if (!q->used)
		return -EINVAL;
	q->mem = mem;
	q->ready = true;
	q->err[0] = 0;
	return 0;
}

void virtq_reset(struct virtq *q)
{
	uint16_t max = q->max_size;

	memset(q, 0, sizeof(*q));
	q->max_size = max;
}

static uint16_t load_avail_idx(const struct virtq *q)
{
	/*
	 * Acquire: the ring entries and descriptors the driver wrote before
	 * bumping avail.idx must be read after this load, never before.
	 */
	return __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE);
}

bool virtq_pending(const struct virtq *q)
{
	return q->ready && load_avail_idx(q) != q->last_avail;
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
	uint16_t size = q->size, avail_idx, pending, head, i, ttl;
	uint32_t total = 0;
	bool seen_writable = false;

	if (!q->ready)
		return virtq_fail(q, "queue is not ready");
	avail_idx = load_avail_idx(q); /* read once (A4) */
	pending = (uint16_t)(avail_idx - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > size)
		return virtq_fail(q, "available index ran %u entries ahead of a queue of %u",
				  pending, size);
	head = __atomic_load_n(&q->avail->ring[q->last_avail & (size - 1)], __ATOMIC_RELAXED);
	if (head >= size)
		return virtq_fail(q, "head %u out of range (queue size %u)", head, size);

	c->head = head;
	c->nr_out = c->nr_in = 0;
	c->out_len = c->in_len = 0;
	i = head;
	/* the queue size is the longest legal chain: a loop runs out of TTL (A6) */
	for (ttl = size;; ttl--) {
		volatile struct vring_desc *vd = &q->desc[i];
		uint64_t addr, end;
		uint32_t len;
		uint16_t flags, next;
		bool w;
		uint8_t *p;

		if (ttl == 0)
			return virtq_fail(q, "chain from head %u is longer than the queue (%u)",
					  head, size);
		/* one copy of each field, used from here on (A7) */
		addr = vd->addr;
		len = vd->len;
		flags = vd->flags;
		next = vd->next;

		if (flags & VRING_DESC_F_INDIRECT) /* never offered (A10) */
			return virtq_fail(q, "descriptor %u: indirect descriptors not negotiated",
					  i);
		if (__builtin_add_overflow(addr, (uint64_t)len, &end))
			return virtq_fail(q, "descriptor %u: address 0x%llx + length %u overflows",
					  i, (unsigned long long)addr, len);
		w = flags & VRING_DESC_F_WRITE;
		if (w)
			seen_writable = true;
		else if (seen_writable) /* A9 */
			return virtq_fail(q, "descriptor %u: readable after a writable one", i);
		p = guest_mem_ptr(q->mem, addr, len, false);
		if (!p)
			return virtq_fail(q, "descriptor %u: [0x%llx, +0x%x) is outside guest RAM",
					  i, (unsigned long long)addr, len);
		if (w && !guest_mem_ptr(q->mem, addr, len, true))
			return virtq_fail(
			    q, "descriptor %u: writable buffer at 0x%llx in read-only memory", i,
			    (unsigned long long)addr);
		if (__builtin_add_overflow(total, len, &total)) /* A8: u32 total */
			return virtq_fail(q, "chain from head %u is longer than 4 GiB", head);
		/* ttl <= size <= VIRTQ_MAX_SIZE bounds the count of buffers */
		c->buf[c->nr_out + c->nr_in] = (struct virtq_buf){ .base = p, .len = len };
		if (w) {
			c->nr_in++;
			c->in_len += len;
		} else {
			c->nr_out++;
			c->out_len += len;
		}
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		if (next >= size)
			return virtq_fail(q, "descriptor %u: next %u out of range (queue size %u)",
					  i, next, size);
		i = next;
	}
	q->last_avail++;
	return 1;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
	volatile struct vring_used_elem *e = &q->used->ring[q->next_used & (q->size - 1)];

	e->id = head;
	e->len = written; /* what the device really wrote, not what the chain offered (A12) */
	q->next_used++;
	/*
	 * Release: the data written into the buffers and the used element must
	 * be visible to the driver before the index that hands them over.
	 */
	__atomic_store_n(&q->used->idx, q->next_used, __ATOMIC_RELEASE);
}

size_t virtq_chain_read(const struct virtq_chain *c, size_t off, void *dst, size_t len)
{
	size_t done = 0;

	for (unsigned int i = 0; i < c->nr_out && done < len; i++) {
		const struct virtq_buf *b = &c->buf[i];
		size_t n;

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		n = b->len - off;
		if (n > len - done)
			n = len - done;
		memcpy((uint8_t *)dst + done, b->base + off, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t virtq_chain_write(const struct virtq_chain *c, size_t off, const void *src, size_t len)
{
	size_t done = 0;

	for (unsigned int i = c->nr_out; i < (unsigned int)c->nr_out + c->nr_in && done < len;
	     i++) {
		const struct virtq_buf *b = &c->buf[i];
		size_t n;

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		n = b->len - off;
		if (n > len - done)
			n = len - done;
		memcpy(b->base + off, (const uint8_t *)src + done, n);
		done += n;
		off = 0;
	}
	return done;
}
