// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for the split virtqueue and the virtio-mmio transport
 * (reliability.md F1).  Input layout:
 *
 *   +-------+---------+-------------+-----------------------------------------+
 *   | mode  | size u8 | last u16    | guest memory image (up to 64 KiB)        |
 *   +-------+---------+-------------+-----------------------------------------+
 *   mode bit 0 = 0: pop/read/write/push loop on a queue with rings at
 *                   0x0 (desc), 0x1000 (avail), 0x2000 (used)
 *   mode bit 0 = 1: the memory image's first 1 KiB is a script of register
 *                   accesses {u16 offset, u8 width|write, u32 value} to a
 *                   device (mode bits 1-3: rng, blk on a memfd, console to
 *                   /dev/null, pmem on a memfd, the agent port, net with two
 *                   host frames queued and a backend that refuses every third
 *                   frame), the rest is its guest memory
 * Invariants: no sanitizer report, at most `size` descriptors per chain and
 * at most `size` chains per kick, host allocations never sized by the guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/log.h"
#include "vmm/mem.h"
#include "vmm/virtio/devices.h"
#include "vmm/virtio/queue.h"

#define MEM_SIZE 0x10000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t ram[MEM_SIZE];
static uint8_t sink[MEM_SIZE];

static void fuzz_queue(const uint8_t *data, size_t size, struct guest_mem *m)
{
	static struct virtq_chain c;
	struct virtq q = { .max_size = 256 };
	unsigned int chains = 0;

	q.size = (uint16_t)(1u << (data[1] % 10)); /* 1..512: 512 must be refused */
	memcpy(&q.last_avail, data + 2, 2);
	q.next_used = q.last_avail;
	q.desc_gpa = 0;
	q.avail_gpa = 0x1000;
	q.used_gpa = 0x2000;
	if (virtq_setup(&q, m) < 0)
		return;
	for (;;) {
		size_t n;
		int r = virtq_pop(&q, &c);

		if (r <= 0)
			break;
		if (c.nr_out + c.nr_in > q.size || ++chains > q.size)
			abort(); /* TTL or A4 failed */
		n = virtq_chain_read(&c, 0, sink, sizeof(sink));
		if (n > c.out_len)
			abort();
		n = virtq_chain_write(&c, 0, sink,
				      c.in_len < sizeof(sink) ? c.in_len : sizeof(sink));
		virtq_push(&q, c.head, (uint32_t)n);
	}
	(void)size;
}

static char blk_path[64], pmem_path[64];
static int null_fd = -1;

static void backing_files(void)
{
	int blk = memfd_create("fuzz-blk", 0), pmem = memfd_create("fuzz-pmem", 0);

	if (blk < 0 || pmem < 0 || ftruncate(blk, 64 * 1024) < 0 || ftruncate(pmem, 2 << 20) < 0)
		abort();
	snprintf(blk_path, sizeof(blk_path), "/proc/self/fd/%d", blk);
	snprintf(pmem_path, sizeof(pmem_path), "/proc/self/fd/%d", pmem);
	null_fd = open("/dev/null", O_WRONLY);
}

/* net backend: frames are within the cap; every third one meets a full backend */
static int fuzz_net_send(void *opaque, const void *frame, size_t len)
{
	static unsigned int calls;

	(void)opaque;
	if (len > VIRTIO_NET_FRAME_MAX)
		abort();
	memcpy(sink, frame, len);
	return ++calls % 3 ? 0 : -EAGAIN;
}

static struct virtio_dev *make_net(struct guest_mem *m)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };
	struct virtio_dev *vd = virtio_net_create(m, 0xd0000000, 5, mac, NULL);

	if (vd) {
		virtio_net_set_backend(vd, fuzz_net_send, NULL);
		virtio_net_receive(vd, sink, 60);
		virtio_net_receive(vd, sink, VIRTIO_NET_FRAME_MAX);
	}
	return vd;
}

static struct virtio_dev *make_dev(unsigned int kind, struct guest_mem *m)
{
	switch (kind) {
	case 1:
		return virtio_blk_create(m, 0xd0000000, 5, blk_path, false, "fuzz", NULL);
	case 2:
		return virtio_console_create(m, 0xd0000000, 5, -1, null_fd, NULL);
	case 3:
		return virtio_pmem_create(m, 0xd0000000, 5, pmem_path, 0x100000000ull, NULL);
	case 4:
		return virtio_console_port_create(m, 0xd0000000, 5, "kal.agent", -1, null_fd, NULL);
	case 5:
		return make_net(m);
	default:
		return virtio_rng_create(m, 0xd0000000, 5, NULL);
	}
}

static void fuzz_transport(unsigned int kind, const uint8_t *script, size_t len,
			   struct guest_mem *m)
{
	struct virtio_dev *vd = make_dev(kind, m);

	if (!vd)
		abort();

	for (size_t i = 0; i + 7 <= len; i += 7) {
		uint16_t off;
		uint8_t wb = script[i + 2];
		uint32_t v;
		static const uint32_t widths[4] = { 1, 2, 4, 8 };
		uint8_t buf[8] = { 0 };

		memcpy(&off, script + i, 2);
		memcpy(&v, script + i + 3, 4);
		memcpy(buf, &v, 4);
		virtio_mmio_access(vd, off % 0x1000, buf, widths[wb & 3], wb & 4);
	}
	if (kind == 5) {
		/* the I/O thread's path: a frame from slirp while the guest's state is whatever */
		virtio_net_receive(vd, sink, 42);
		virtio_dev_io_ready(vd);
	}
	virtio_dev_destroy(vd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int once;
	struct guest_mem m = { 0 };
	size_t img;

	if (!once) {
		kal_log_set_level(KAL_LOG_ERROR);
		backing_files();
		once = 1;
	}
	if (size < 4)
		return 0;
	img = size - 4 < MEM_SIZE ? size - 4 : MEM_SIZE;
	memset(ram, 0, sizeof(ram));
	memcpy(ram, data + 4, img);
	guest_mem_add(&m, 0, MEM_SIZE, ram, 0);
	if (data[0] & 1)
		fuzz_transport((data[0] >> 1) & 7, ram, img < 1024 ? img : 1024, &m);
	else
		fuzz_queue(data, size, &m);
	return 0;
}
