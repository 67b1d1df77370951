// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The device model against fake guest memory: guest_mem translation, the
 * split virtqueue's checks (reliability.md A1-A12, each with the exact
 * reason), the virtio-mmio transport's state machine, the devices, and
 * save/restore with re-validation.  No KVM needed.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "lib/err.h"
#include "lib/log.h"
#include "vmm/mem.h"
#include "vmm/snap.h"
#include "vmm/virtio/devices.h"
#include "vmm/virtio/queue.h"

#define RAM_SIZE  (1u << 20)
#define PMEM_GPA  0x100000000ull
#define PMEM_SIZE (2u << 20)
#define DESC	  0x1000
#define AVAIL	  0x2000
#define USED	  0x3000
#define BUF	  0x10000
#define QS	  8

struct fake {
	struct guest_mem mem;
	uint8_t *ram;
	uint8_t *pmem; /* PROT_READ: a device write would crash the test */
	struct virtq q;
	struct virtq_chain c;
};

static struct fake *fake_new(void)
{
	struct fake *f = calloc(1, sizeof(*f));

	f->ram = calloc(1, RAM_SIZE);
	f->pmem = mmap(NULL, PMEM_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->pmem != MAP_FAILED);
	assert_int_equal(guest_mem_add(&f->mem, 0, RAM_SIZE, f->ram, 0), 0);
	assert_int_equal(
	    guest_mem_add(&f->mem, PMEM_GPA, PMEM_SIZE, f->pmem, GUEST_MEM_NO_DEVICE_WRITE), 0);
	f->q.max_size = 256;
	f->q.size = QS;
	f->q.desc_gpa = DESC;
	f->q.avail_gpa = AVAIL;
	f->q.used_gpa = USED;
	return f;
}

static int setup(void **state)
{
	kal_log_set_level(KAL_LOG_ERROR); /* the expected warnings would drown the TAP */
	*state = fake_new();
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;

	munmap(f->pmem, PMEM_SIZE);
	free(f->ram);
	free(f);
	return 0;
}

static struct vring_desc *desc(struct fake *f, unsigned int i)
{
	return (struct vring_desc *)(f->ram + DESC) + i;
}

static void set_desc(struct fake *f, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	*desc(f, i) = (struct vring_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

static struct vring_avail *avail(struct fake *f)
{
	return (struct vring_avail *)(f->ram + AVAIL);
}

static struct vring_used *used(struct fake *f)
{
	return (struct vring_used *)(f->ram + USED);
}

/* offer head at the next avail slot */
static void offer(struct fake *f, uint16_t head)
{
	avail(f)->ring[avail(f)->idx % QS] = head;
	avail(f)->idx++;
}

static void expect_pop_err(struct fake *f, const char *why)
{
	assert_int_equal(virtq_pop(&f->q, &f->c), -EINVAL);
	assert_string_equal(f->q.err, why);
}

/* ---- guest_mem ---- */

static void test_mem_bounds(void **state)
{
	struct fake *f = *state;
	struct guest_mem m = { 0 };
	uint8_t a[16], b[16];

	/* a range ending exactly at the end of RAM is inside (FC #1296 off-by-one) */
	assert_ptr_equal(guest_mem_ptr(&f->mem, RAM_SIZE - 16, 16, true), f->ram + RAM_SIZE - 16);
	assert_null(guest_mem_ptr(&f->mem, RAM_SIZE - 16, 17, false));
	assert_ptr_equal(guest_mem_ptr(&f->mem, RAM_SIZE, 0, false), f->ram + RAM_SIZE);
	assert_null(guest_mem_ptr(&f->mem, RAM_SIZE, 1, false));
	/* u64 wrap-around */
	assert_null(guest_mem_ptr(&f->mem, UINT64_MAX - 7, 16, false));
	assert_null(guest_mem_ptr(&f->mem, 16, UINT64_MAX, false));
	/* pmem: readable by devices, never writable */
	assert_ptr_equal(guest_mem_ptr(&f->mem, PMEM_GPA, 64, false), f->pmem);
	assert_null(guest_mem_ptr(&f->mem, PMEM_GPA, 64, true));
	/* the hole between RAM and pmem */
	assert_null(guest_mem_ptr(&f->mem, 0xd0000000, 4, false));

	/* adjacent regions: each range resolves in its own region, none spans both */
	assert_int_equal(guest_mem_add(&m, 0, 16, a, 0), 0);
	assert_int_equal(guest_mem_add(&m, 16, 16, b, 0), 0);
	assert_ptr_equal(guest_mem_ptr(&m, 16, 4, false), b);
	assert_null(guest_mem_ptr(&m, 12, 8, false));
	assert_int_equal(guest_mem_add(&m, 8, 16, a, 0), -EINVAL);		/* overlap */
	assert_int_equal(guest_mem_add(&m, UINT64_MAX - 4, 16, a, 0), -EINVAL); /* wraps */
	assert_int_equal(guest_mem_add(&m, 64, 0, a, 0), -EINVAL);		/* empty */
}

/* ---- queue setup (A1, A2) ---- */

static void test_setup_size(void **state)
{
	struct fake *f = *state;

	f->q.size = 0;
	assert_int_equal(virtq_setup(&f->q, &f->mem), -EINVAL);
	assert_string_equal(f->q.err, "queue size 0 is invalid (power of two up to 256)");
	f->q.size = 3;
	assert_int_equal(virtq_setup(&f->q, &f->mem), -EINVAL);
	assert_string_equal(f->q.err, "queue size 3 is invalid (power of two up to 256)");
	f->q.size = 65535;
	assert_int_equal(virtq_setup(&f->q, &f->mem), -EINVAL);
	f->q.size = 512; /* a power of two, but above the maximum */
	assert_int_equal(virtq_setup(&f->q, &f->mem), -EINVAL);
	assert_false(f->q.ready);
	f->q.size = 256;
	assert_int_equal(virtq_setup(&f->q, &f->mem), 0);
	assert_true(f->q.ready);
}

static void test_setup_rings(void **state)
{
	struct fake *f = *state;

	f->q.desc_gpa = DESC + 8;
	assert_int_equal(virtq_setup(&f->q, &f->mem), -EINVAL);
	assert_string_equal(f->q.err, "descriptor ring at 0x1008 is not 16-byte aligned");
	f->q.desc_gpa = DESC;
	f->q.avail_gpa = AVAIL + 1;
	assert_int_equal(virtq_setup(&f->q, &f->mem), -EINVAL);
	assert_string_equal(f->q.err, "available ring at 0x2001 is not 2-byte aligned");
	f->q.avail_gpa = AVAIL;
	f->q.used_gpa = USED + 2;
	assert_int_equal(virtq_setup(&f->q, &f->mem), -EINVAL);
	assert_string_equal(f->q.err, "used ring at 0x3002 is not 4-byte aligned");
	/* the descriptor table ends 16 bytes past RAM */
	f->q.used_gpa = USED;
	f->q.desc_gpa = RAM_SIZE - 16 * QS + 16;
	assert_int_equal(virtq_setup(&f->q, &f->mem), -EINVAL);
	assert_string_equal(f->q.err, "descriptor ring [0xfff90, +0x80) is outside guest RAM");
	/* ... and exactly at the end is fine */
	f->q.desc_gpa = RAM_SIZE - 16 * QS;
	assert_int_equal(virtq_setup(&f->q, &f->mem), 0);
	/* the used ring is written by the device: never in pmem */
	f->q.used_gpa = PMEM_GPA;
	assert_int_equal(virtq_setup(&f->q, &f->mem), -EINVAL);
	assert_string_equal(f->q.err, "used ring [0x100000000, +0x46) is outside guest RAM");
	f->q.used_gpa = 0xfffffffffffffffcull;
	assert_int_equal(virtq_setup(&f->q, &f->mem), -EINVAL);
}

/* ---- pop (A4, A6-A10) ---- */

static void test_pop_good(void **state)
{
	struct fake *f = *state;
	char out[8];

	assert_int_equal(virtq_setup(&f->q, &f->mem), 0);
	assert_int_equal(virtq_pop(&f->q, &f->c), 0); /* empty */
	memcpy(f->ram + BUF, "request", 7);
	set_desc(f, 3, BUF, 7, VRING_DESC_F_NEXT, 5);
	set_desc(f, 5, BUF + 0x100, 0, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 6); /* len 0 ok */
	set_desc(f, 6, BUF + 0x200, 100, VRING_DESC_F_WRITE, 0);
	offer(f, 3);
	assert_int_equal(virtq_pop(&f->q, &f->c), 1);
	assert_int_equal(f->c.head, 3);
	assert_int_equal(f->c.nr_out, 1);
	assert_int_equal(f->c.nr_in, 2);
	assert_int_equal(f->c.out_len, 7);
	assert_int_equal(f->c.in_len, 100);
	assert_int_equal(virtq_chain_read(&f->c, 0, out, sizeof(out)), 7);
	assert_memory_equal(out, "request", 7);
	assert_int_equal(virtq_chain_write(&f->c, 10, "reply", 5), 5);
	assert_memory_equal(f->ram + BUF + 0x200 + 10, "reply", 5);
	assert_int_equal(virtq_pop(&f->q, &f->c), 0);

	/* A12: the used ring gets the head and the bytes really written, then the index */
	virtq_push(&f->q, 3, 15);
	assert_int_equal(used(f)->idx, 1);
	assert_int_equal(used(f)->ring[0].id, 3);
	assert_int_equal(used(f)->ring[0].len, 15);
}

static void test_pop_chain_at_queue_size(void **state)
{
	struct fake *f = *state;

	assert_int_equal(virtq_setup(&f->q, &f->mem), 0);
	for (unsigned int i = 0; i < QS; i++)
		set_desc(f, i, BUF, 4, i + 1 < QS ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->c), 1); /* exactly the queue size: legal */
	assert_int_equal(f->c.nr_out, QS);
}

static void test_pop_loop(void **state)
{
	struct fake *f = *state;

	assert_int_equal(virtq_setup(&f->q, &f->mem), 0);
	set_desc(f, 0, BUF, 4, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, BUF, 4, VRING_DESC_F_NEXT, 0);
	offer(f, 0);
	expect_pop_err(f, "chain from head 0 is longer than the queue (8)");
	set_desc(f, 2, BUF, 4, VRING_DESC_F_NEXT, 2); /* self loop */
	f->q.last_avail = 0;
	avail(f)->ring[0] = 2;
	expect_pop_err(f, "chain from head 2 is longer than the queue (8)");
}

static void test_pop_indices(void **state)
{
	struct fake *f = *state;

	assert_int_equal(virtq_setup(&f->q, &f->mem), 0);
	offer(f, QS);
	expect_pop_err(f, "head 8 out of range (queue size 8)");
	avail(f)->ring[0] = 0;
	set_desc(f, 0, BUF, 4, VRING_DESC_F_NEXT, QS);
	expect_pop_err(f, "descriptor 0: next 8 out of range (queue size 8)");
	/* A4: more entries than the queue holds */
	set_desc(f, 0, BUF, 4, 0, 0);
	avail(f)->idx = (uint16_t)(f->q.last_avail + QS + 1);
	expect_pop_err(f, "available index ran 9 entries ahead of a queue of 8");
	/* wrap-around of the free-running u16 index is fine */
	f->q.last_avail = 0xfffe;
	avail(f)->idx = 1; /* three entries */
	assert_int_equal(virtq_pop(&f->q, &f->c), 1);
	assert_int_equal(f->q.last_avail, 0xffff);
	/* exactly a full queue pending is legal */
	f->q.last_avail = 0;
	avail(f)->idx = QS;
	assert_int_equal(virtq_pop(&f->q, &f->c), 1);
}

static void test_pop_addresses(void **state)
{
	struct fake *f = *state;

	assert_int_equal(virtq_setup(&f->q, &f->mem), 0);
	offer(f, 0);
	set_desc(f, 0, UINT64_MAX - 7, 16, 0, 0);
	expect_pop_err(f, "descriptor 0: address 0xfffffffffffffff8 + length 16 overflows");
	set_desc(f, 0, RAM_SIZE - 8, 16, 0, 0);
	expect_pop_err(f, "descriptor 0: [0xffff8, +0x10) is outside guest RAM");
	set_desc(f, 0, 0xd0000000, 4, VRING_DESC_F_WRITE, 0); /* the MMIO window */
	expect_pop_err(f, "descriptor 0: [0xd0000000, +0x4) is outside guest RAM");
	set_desc(f, 0, PMEM_GPA + 64, 64, VRING_DESC_F_WRITE, 0);
	expect_pop_err(f, "descriptor 0: writable buffer at 0x100000040 in read-only memory");
	set_desc(f, 0, RAM_SIZE - 16, 16, 0, 0); /* ends exactly at the end of RAM */
	assert_int_equal(virtq_pop(&f->q, &f->c), 1);
	offer(f, 0);
	set_desc(f, 0, PMEM_GPA, 64, 0, 0); /* readable pmem: fine */
	assert_int_equal(virtq_pop(&f->q, &f->c), 1);
	assert_ptr_equal(f->c.buf[0].base, f->pmem);
}

static void test_pop_direction_indirect(void **state)
{
	struct fake *f = *state;

	assert_int_equal(virtq_setup(&f->q, &f->mem), 0);
	offer(f, 0);
	set_desc(f, 0, BUF, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, BUF, 4, 0, 0);
	expect_pop_err(f, "descriptor 1: readable after a writable one");
	set_desc(f, 0, BUF, 16, VRING_DESC_F_INDIRECT, 0);
	expect_pop_err(f, "descriptor 0: indirect descriptors not negotiated");
}

static void test_pop_total_overflow(void **state)
{
	struct fake *f = *state;
	/* 8 GiB of address space, never touched: long descriptors that are all "in RAM" */
	size_t big = 8ull << 30;
	uint8_t *space =
	    mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct guest_mem m = f->mem;

	assert_true(space != MAP_FAILED);
	assert_int_equal(guest_mem_add(&m, 0x200000000ull, big, space, 0), 0);
	assert_int_equal(virtq_setup(&f->q, &m), 0);
	offer(f, 0);
	set_desc(f, 0, 0x200000000ull, 0xffffffffu, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, 0x300000000ull, 1, 0, 0);
	expect_pop_err(f, "chain from head 0 is longer than 4 GiB");
	munmap(space, big);
}

/* ---- transport (A1, A3) and devices ---- */

static uint32_t mr(struct virtio_dev *vd, uint64_t off)
{
	uint32_t v = 0xdeadbeef;

	virtio_mmio_access(vd, off, &v, 4, false);
	return v;
}

static void mw(struct virtio_dev *vd, uint64_t off, uint32_t v)
{
	virtio_mmio_access(vd, off, &v, 4, true);
}

static void negotiate(struct virtio_dev *vd)
{
	mw(vd, VIRTIO_MMIO_STATUS, 0);
	mw(vd, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	mw(vd, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	mw(vd, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mw(vd, VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	mw(vd, VIRTIO_MMIO_STATUS, 0xb);
}

static void queue_regs(struct virtio_dev *vd, unsigned int q, uint32_t num, uint64_t d, uint64_t a,
		       uint64_t u)
{
	mw(vd, VIRTIO_MMIO_QUEUE_SEL, q);
	mw(vd, VIRTIO_MMIO_QUEUE_NUM, num);
	mw(vd, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)d);
	mw(vd, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(d >> 32));
	mw(vd, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)a);
	mw(vd, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(a >> 32));
	mw(vd, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)u);
	mw(vd, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(u >> 32));
	mw(vd, VIRTIO_MMIO_QUEUE_READY, 1);
}

static struct virtio_dev *live_rng(struct fake *f)
{
	struct virtio_dev *vd = virtio_rng_create(&f->mem, 0xd0000000, 5, NULL);

	negotiate(vd);
	queue_regs(vd, 0, QS, DESC, AVAIL, USED);
	mw(vd, VIRTIO_MMIO_STATUS, 0xf);
	assert_int_equal(mr(vd, VIRTIO_MMIO_STATUS), 0xf);
	return vd;
}

static void test_mmio_registers(void **state)
{
	struct fake *f = *state;
	struct virtio_dev *vd = virtio_rng_create(&f->mem, 0xd0000000, 5, NULL);
	uint16_t half = 0x1234;
	uint8_t byte = 0x55;

	assert_int_equal(mr(vd, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(mr(vd, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(mr(vd, VIRTIO_MMIO_DEVICE_ID), 4);
	mw(vd, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(mr(vd, VIRTIO_MMIO_DEVICE_FEATURES), 1); /* VERSION_1 only */
	/* odd widths and misaligned register accesses read 0 (A3) */
	virtio_mmio_access(vd, VIRTIO_MMIO_MAGIC_VALUE, &half, 2, false);
	assert_int_equal(half, 0);
	virtio_mmio_access(vd, VIRTIO_MMIO_VERSION + 1, &byte, 1, false);
	assert_int_equal(byte, 0);
	/* config space of a device without one: all reads 0 */
	assert_int_equal(mr(vd, VIRTIO_MMIO_CONFIG), 0);
	/* QueueSel out of range: max 0, writes ignored */
	mw(vd, VIRTIO_MMIO_QUEUE_SEL, 7);
	assert_int_equal(mr(vd, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	mw(vd, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(mr(vd, VIRTIO_MMIO_QUEUE_NUM_MAX), VIRTIO_RNG_QUEUE_SIZE);
	virtio_dev_destroy(vd);
}

static void test_mmio_status_machine(void **state)
{
	struct fake *f = *state;
	struct virtio_dev *vd = virtio_rng_create(&f->mem, 0xd0000000, 5, NULL);

	/* out of order: DRIVER without ACKNOWLEDGE, DRIVER_OK before FEATURES_OK */
	mw(vd, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_DRIVER);
	assert_int_equal(mr(vd, VIRTIO_MMIO_STATUS), 0);
	mw(vd, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	mw(vd, VIRTIO_MMIO_STATUS, 0x7);
	assert_int_equal(mr(vd, VIRTIO_MMIO_STATUS), VIRTIO_CONFIG_S_ACKNOWLEDGE);
	/* the driver cannot set NEEDS_RESET or clear bits */
	mw(vd, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(mr(vd, VIRTIO_MMIO_STATUS), VIRTIO_CONFIG_S_ACKNOWLEDGE);
	mw(vd, VIRTIO_MMIO_STATUS, 0x3);
	mw(vd, VIRTIO_MMIO_STATUS, 0x1);
	assert_int_equal(mr(vd, VIRTIO_MMIO_STATUS), 0x3);
	/* queue config before FEATURES_OK is ignored */
	mw(vd, VIRTIO_MMIO_QUEUE_NUM, 4);
	assert_int_equal(vd->vq[0].size, 0);
	/* FEATURES_OK without VERSION_1, or with a feature never offered, is refused */
	mw(vd, VIRTIO_MMIO_STATUS, 0xb);
	assert_int_equal(mr(vd, VIRTIO_MMIO_STATUS), 0x3);
	mw(vd, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mw(vd, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	mw(vd, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	mw(vd, VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_RING_F_INDIRECT_DESC);
	mw(vd, VIRTIO_MMIO_STATUS, 0xb);
	assert_int_equal(mr(vd, VIRTIO_MMIO_STATUS), 0x3);
	mw(vd, VIRTIO_MMIO_DRIVER_FEATURES, 0);
	mw(vd, VIRTIO_MMIO_STATUS, 0xb);
	assert_int_equal(mr(vd, VIRTIO_MMIO_STATUS), 0xb);
	/* features are frozen after FEATURES_OK */
	mw(vd, VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_RING_F_INDIRECT_DESC);
	assert_int_equal(vd->driver_features, 1ull << 32);
	queue_regs(vd, 0, QS, DESC, AVAIL, USED);
	assert_int_equal(mr(vd, VIRTIO_MMIO_QUEUE_READY), 1);
	mw(vd, VIRTIO_MMIO_STATUS, 0xf);
	assert_int_equal(mr(vd, VIRTIO_MMIO_STATUS), 0xf);
	/* queue config after DRIVER_OK is ignored */
	mw(vd, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x5000);
	assert_int_equal(vd->vq[0].desc_gpa, DESC);
	/* reset clears everything */
	mw(vd, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(mr(vd, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(mr(vd, VIRTIO_MMIO_QUEUE_READY), 0);
	virtio_dev_destroy(vd);
}

static void test_mmio_bad_queue_needs_reset(void **state)
{
	struct fake *f = *state;
	struct virtio_dev *vd = virtio_rng_create(&f->mem, 0xd0000000, 5, NULL);

	negotiate(vd);
	queue_regs(vd, 0, 3, DESC, AVAIL, USED);
	assert_int_equal(mr(vd, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_int_equal(mr(vd, VIRTIO_MMIO_STATUS), 0xb | VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(mr(vd, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	mw(vd, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(mr(vd, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	virtio_dev_destroy(vd);
}

static void test_rng_serves_and_breaks(void **state)
{
	struct fake *f = *state;
	struct virtio_dev *vd = live_rng(f);

	set_desc(f, 0, BUF, 100, VRING_DESC_F_WRITE, 0);
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(used(f)->idx, 1);
	assert_int_equal(used(f)->ring[0].len, 100);
	assert_int_equal(mr(vd, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	mw(vd, VIRTIO_MMIO_INTERRUPT_ACK, 1);
	/* capped per request (A11) */
	set_desc(f, 0, BUF, 200000, VRING_DESC_F_WRITE, 0);
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(used(f)->ring[1].len, VIRTIO_RNG_REQUEST_CAP);
	/* a readable buffer: the device breaks, the used ring does not move */
	set_desc(f, 0, BUF, 16, 0, 0);
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(used(f)->idx, 2);
	assert_true(mr(vd, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(mr(vd, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
	/* broken: further kicks are not served */
	set_desc(f, 0, BUF, 16, VRING_DESC_F_WRITE, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(used(f)->idx, 2);
	/* reset and set up again: served */
	memset(f->ram + USED, 0, 0x100);
	memset(f->ram + AVAIL, 0, 0x100);
	negotiate(vd);
	queue_regs(vd, 0, QS, DESC, AVAIL, USED);
	mw(vd, VIRTIO_MMIO_STATUS, 0xf);
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(used(f)->idx, 1);
	assert_int_equal(used(f)->ring[0].len, 16);
	virtio_dev_destroy(vd);
}

static void test_save_restore(void **state)
{
	struct fake *f = *state;
	struct virtio_dev *vd = live_rng(f), *vd2;
	struct snap_writer w = { 0 };
	struct snap_reader r;
	struct kal_err *err = NULL;
	uint64_t gpa;

	set_desc(f, 0, BUF, 8, VRING_DESC_F_WRITE, 0);
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(virtio_dev_save(vd, &w, &err), 0);

	vd2 = virtio_rng_create(&f->mem, 0xd0000000, 5, NULL);
	r = (struct snap_reader){ .buf = w.buf, .len = w.len };
	assert_int_equal(virtio_dev_restore(vd2, &r, &err), 0);
	assert_int_equal(mr(vd2, VIRTIO_MMIO_STATUS), 0xf);
	assert_int_equal(vd2->vq[0].last_avail, 1);
	assert_int_equal(vd2->vq[0].next_used, 1);
	offer(f, 0);
	mw(vd2, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(used(f)->idx, 2); /* the restored device continues the rings */
	virtio_dev_destroy(vd2);

	/* a corrupt file: the descriptor ring moved to a misaligned address (A2) */
	gpa = DESC + 8;
	for (size_t off = 0; off + 8 <= w.len; off++) {
		uint64_t v;

		memcpy(&v, w.buf + off, 8);
		if (v == DESC) {
			memcpy(w.buf + off, &gpa, 8);
			break;
		}
	}
	vd2 = virtio_rng_create(&f->mem, 0xd0000000, 5, NULL);
	r = (struct snap_reader){ .buf = w.buf, .len = w.len };
	assert_int_equal(virtio_dev_restore(vd2, &r, &err), -1);
	assert_string_equal(
	    err->msg,
	    "restore virtio-rng: queue 0: descriptor ring at 0x1008 is not 16-byte aligned");
	kal_err_clear(&err);
	assert_int_equal(mr(vd2, VIRTIO_MMIO_STATUS), 0); /* not left half-restored */
	/* truncated */
	r = (struct snap_reader){ .buf = w.buf, .len = 20 };
	assert_int_equal(virtio_dev_restore(vd2, &r, &err), -1);
	assert_string_equal(err->msg, "restore virtio-rng: record truncated");
	kal_err_clear(&err);
	virtio_dev_destroy(vd2);

	/* another device's record */
	vd2 = virtio_pmem_create(&f->mem, 0xd0001000, 6, "/nonexistent", PMEM_GPA, &err);
	assert_null(vd2);
	assert_string_equal(err->msg, "pmem `/nonexistent`: No such file or directory");
	kal_err_clear(&err);
	snap_writer_free(&w);
	virtio_dev_destroy(vd);
}

static void test_blk(void **state)
{
	struct fake *f = *state;
	char path[] = "/tmp/kal-test-blk-XXXXXX";
	int fd = mkstemp(path);
	struct kal_err *err = NULL;
	struct virtio_dev *vd, *ro;
	uint8_t *hdr = f->ram + BUF, *data = f->ram + BUF + 0x1000, *st = f->ram + BUF + 0x100;
	char sector[512] = "sector two";

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 8 * 512), 0);
	assert_int_equal(pwrite(fd, sector, 512, 2 * 512), 512);
	vd = virtio_blk_create(&f->mem, 0xd0000000, 5, path, false, "serial-123", &err);
	assert_non_null(vd);
	negotiate(vd);
	queue_regs(vd, 0, QS, DESC, AVAIL, USED);
	mw(vd, VIRTIO_MMIO_STATUS, 0xf);
	assert_int_equal(mr(vd, VIRTIO_MMIO_CONFIG), 8); /* capacity in sectors */

	/* read sector 2 */
	memset(hdr, 0, 16);
	hdr[8] = 2;
	set_desc(f, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, BUF + 0x1000, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	set_desc(f, 2, BUF + 0x100, 1, VRING_DESC_F_WRITE, 0);
	*st = 0xff;
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(*st, 0);
	assert_int_equal(used(f)->ring[0].len, 513);
	assert_string_equal((char *)data, "sector two");
	/* write sector 7, the last one */
	hdr[0] = 1;
	hdr[8] = 7;
	memcpy(data, "last", 5);
	set_desc(f, 1, BUF + 0x1000, 512, VRING_DESC_F_NEXT, 2);
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(*st, 0);
	assert_int_equal(used(f)->ring[1].len, 1);
	assert_int_equal(pread(fd, sector, 512, 7 * 512), 512);
	assert_string_equal(sector, "last");
	/* one past the end: IOERR, the device stays live */
	hdr[8] = 8;
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(*st, 1);
	/* a sector number whose byte offset overflows u64 */
	memset(hdr + 8, 0xff, 8);
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(*st, 1);
	/* GET_ID */
	hdr[0] = 8;
	set_desc(f, 1, BUF + 0x1000, 20, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(*st, 0);
	assert_memory_equal(data, "serial-123\0", 11);
	/* unknown type */
	hdr[0] = 99;
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(*st, 2); /* UNSUPP */
	assert_false(mr(vd, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* no status byte: a malformed chain breaks the device */
	set_desc(f, 0, BUF, 16, 0, 0);
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(mr(vd, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	virtio_dev_destroy(vd);

	/* read-only disk: writes fail, the file is untouched */
	memset(f->ram + AVAIL, 0, 0x100);
	memset(f->ram + USED, 0, 0x100);
	ro = virtio_blk_create(&f->mem, 0xd0000000, 5, path, true, NULL, &err);
	assert_non_null(ro);
	mw(ro, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_true(mr(ro, VIRTIO_MMIO_DEVICE_FEATURES) & (1u << 5)); /* VIRTIO_BLK_F_RO */
	negotiate(ro);
	queue_regs(ro, 0, QS, DESC, AVAIL, USED);
	mw(ro, VIRTIO_MMIO_STATUS, 0xf);
	memset(hdr, 0, 16);
	hdr[0] = 1;
	memcpy(data, "nope", 5);
	set_desc(f, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, BUF + 0x1000, 512, VRING_DESC_F_NEXT, 2);
	set_desc(f, 2, BUF + 0x100, 1, VRING_DESC_F_WRITE, 0);
	offer(f, 0);
	mw(ro, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(*st, 1);
	assert_int_equal(pread(fd, sector, 512, 0), 512);
	assert_int_equal(sector[0], 0);
	virtio_dev_destroy(ro);
	close(fd);
	unlink(path);
}

static void test_console(void **state)
{
	struct fake *f = *state;
	int in[2], out[2];
	struct virtio_dev *vd;
	char got[32] = { 0 };
	struct vring_avail *av1 = (struct vring_avail *)(f->ram + 0x6000);
	struct vring_used *us1 = (struct vring_used *)(f->ram + 0x7000);

	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	vd = virtio_console_create(&f->mem, 0xd0000000, 5, in[0], out[1], NULL);
	negotiate(vd);
	queue_regs(vd, 0, QS, DESC, AVAIL, USED);
	queue_regs(vd, 1, QS, 0x5000, 0x6000, 0x7000);
	mw(vd, VIRTIO_MMIO_STATUS, 0xf);
	/* transmit */
	memcpy(f->ram + BUF, "to host", 7);
	((struct vring_desc *)(f->ram + 0x5000))[0] =
	    (struct vring_desc){ .addr = BUF, .len = 7, .flags = 0 };
	av1->ring[0] = 0;
	av1->idx = 1;
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(us1->idx, 1);
	assert_int_equal(us1->ring[0].len, 0);
	assert_int_equal(read(out[0], got, sizeof(got)), 7);
	assert_memory_equal(got, "to host", 7);
	/* receive: host bytes wait until the guest posts a buffer */
	assert_int_equal(write(in[1], "to guest", 8), 8);
	assert_false(virtio_dev_io_ready(vd)); /* nothing posted yet: stop reading */
	set_desc(f, 0, BUF + 0x100, 4, VRING_DESC_F_WRITE, 0);
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(used(f)->idx, 1);
	assert_int_equal(used(f)->ring[0].len, 4);
	assert_memory_equal(f->ram + BUF + 0x100, "to g", 4);
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(used(f)->ring[1].len, 4);
	assert_memory_equal(f->ram + BUF + 0x100, "uest", 4);
	assert_true(vd->io_rearm); /* drained: the I/O thread may read the host again */
	/* a device-readable receive buffer breaks the device */
	set_desc(f, 0, BUF + 0x100, 4, 0, 0);
	offer(f, 0);
	assert_int_equal(write(in[1], "x", 1), 1);
	virtio_dev_io_ready(vd);
	assert_true(mr(vd, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	virtio_dev_destroy(vd);
	close(in[0]);
	close(in[1]);
	close(out[0]);
	close(out[1]);
}

/* A guest ring at base: descriptors, avail at +0x1000, used at +0x2000. */
struct gring {
	struct fake *f;
	uint64_t base;
	uint16_t next;
};

static void gring_offer(struct gring *r, uint64_t addr, uint32_t len, uint16_t flags)
{
	struct vring_desc *d = (struct vring_desc *)(r->f->ram + r->base);
	struct vring_avail *av = (struct vring_avail *)(r->f->ram + r->base + 0x1000);
	uint16_t i = r->next++ % QS;

	d[i] = (struct vring_desc){ .addr = addr, .len = len, .flags = flags };
	av->ring[av->idx % QS] = i;
	av->idx++;
}

static struct vring_used *gring_used(struct gring *r)
{
	return (struct vring_used *)(r->f->ram + r->base + 0x2000);
}

/* guest -> device control message on queue 3 */
static void port_ctrl_send(struct virtio_dev *vd, struct gring *ctx, uint64_t buf, uint16_t event,
			   uint16_t value)
{
	struct virtio_console_control m = { .id = 0, .event = event, .value = value };

	memcpy(ctx->f->ram + buf, &m, sizeof(m));
	gring_offer(ctx, buf, sizeof(m), 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 3);
}

/* the named port: MULTIPORT handshake, PORT_NAME, input held until the guest opens the port */
static void test_console_port(void **state)
{
	struct fake *f = *state;
	struct gring crx = { f, 0x8000, 0 }, ctx = { f, 0xb000, 0 };
	struct virtio_console_control m;
	struct virtio_dev *vd;
	int in[2], out[2];
	uint64_t cbuf = BUF + 0x1000;

	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	assert_null(virtio_console_port_create(
	    &f->mem, 0xd0000000, 5, "a-name-longer-than-31-bytes-is-refused", -1, -1, NULL));
	vd = virtio_console_port_create(&f->mem, 0xd0000000, 5, "kal.agent", in[0], out[1], NULL);
	assert_non_null(vd);
	mw(vd, VIRTIO_MMIO_STATUS, 0);
	mw(vd, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	mw(vd, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_true(mr(vd, VIRTIO_MMIO_DEVICE_FEATURES) & (1u << VIRTIO_CONSOLE_F_MULTIPORT));
	mw(vd, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	mw(vd, VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_CONSOLE_F_MULTIPORT);
	mw(vd, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mw(vd, VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	mw(vd, VIRTIO_MMIO_STATUS, 0xb);
	queue_regs(vd, 0, QS, DESC, AVAIL, USED);
	queue_regs(vd, 1, QS, 0x5000, 0x6000, 0x7000);
	queue_regs(vd, 2, QS, 0x8000, 0x9000, 0xa000);
	queue_regs(vd, 3, QS, 0xb000, 0xc000, 0xd000);
	mw(vd, VIRTIO_MMIO_STATUS, 0xf);
	assert_int_equal(mr(vd, VIRTIO_MMIO_CONFIG + 4), 1); /* max_nr_ports */
	for (int i = 0; i < 4; i++)
		gring_offer(&crx, BUF + 0x2000 + 0x100 * (uint64_t)i, 0x100, VRING_DESC_F_WRITE);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 2);
	assert_int_equal(gring_used(&crx)->idx, 0); /* nothing to say before DEVICE_READY */

	port_ctrl_send(vd, &ctx, cbuf, VIRTIO_CONSOLE_DEVICE_READY, 1);
	assert_int_equal(gring_used(&crx)->idx, 1);
	memcpy(&m, f->ram + BUF + 0x2000, sizeof(m));
	assert_int_equal(m.event, VIRTIO_CONSOLE_PORT_ADD);
	assert_int_equal(m.id, 0);

	/* host input before the port is open stays in the device (Linux would drop it) */
	assert_int_equal(write(in[1], "hello", 5), 5);
	set_desc(f, 0, BUF + 0x100, 16, VRING_DESC_F_WRITE, 0);
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_false(virtio_dev_io_ready(vd));
	assert_int_equal(used(f)->idx, 0);

	port_ctrl_send(vd, &ctx, cbuf, VIRTIO_CONSOLE_PORT_READY, 1);
	assert_int_equal(gring_used(&crx)->idx, 3);
	memcpy(&m, f->ram + BUF + 0x2100, sizeof(m));
	assert_int_equal(m.event, VIRTIO_CONSOLE_PORT_NAME);
	assert_int_equal(gring_used(&crx)->ring[1].len, sizeof(m) + 9);
	assert_memory_equal(f->ram + BUF + 0x2100 + sizeof(m), "kal.agent", 9);
	memcpy(&m, f->ram + BUF + 0x2200, sizeof(m));
	assert_int_equal(m.event, VIRTIO_CONSOLE_PORT_OPEN);
	assert_int_equal(m.value, 1);
	assert_int_equal(used(f)->idx, 0);

	port_ctrl_send(vd, &ctx, cbuf, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_int_equal(used(f)->idx, 1);
	assert_int_equal(used(f)->ring[0].len, 5);
	assert_memory_equal(f->ram + BUF + 0x100, "hello", 5);
	assert_true(vd->io_rearm);

	/* a control message that is not 8 readable bytes breaks the device */
	gring_offer(&ctx, cbuf, 4, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 3);
	assert_true(mr(vd, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	virtio_dev_destroy(vd);
	close(in[0]);
	close(in[1]);
	close(out[0]);
	close(out[1]);
}

/* B4: a stalled host reader stops the transmitq; kal buffers nothing and never blocks */
static void test_console_backpressure(void **state)
{
	struct fake *f = *state;
	struct vring_avail *av1 = (struct vring_avail *)(f->ram + 0x6000);
	struct vring_used *us1 = (struct vring_used *)(f->ram + 0x7000);
	struct virtio_dev *vd;
	char junk[4096];
	int out[2];
	ssize_t filled = 0, r;

	assert_int_equal(pipe(out), 0);
	assert_true(fcntl(out[1], F_SETPIPE_SZ, 4096) > 0);
	vd = virtio_console_create(&f->mem, 0xd0000000, 5, -1, out[1], NULL);
	assert_int_equal(vd->io_out_queue, 1);
	negotiate(vd);
	queue_regs(vd, 0, QS, DESC, AVAIL, USED);
	queue_regs(vd, 1, QS, 0x5000, 0x6000, 0x7000);
	mw(vd, VIRTIO_MMIO_STATUS, 0xf);
	/* fill the pipe from our side, without blocking */
	fcntl(out[1], F_SETFL, O_NONBLOCK);
	memset(junk, 'j', sizeof(junk));
	while ((r = write(out[1], junk, sizeof(junk))) > 0)
		filled += r;
	fcntl(out[1], F_SETFL, 0); /* the device's own description stays non-blocking */
	memcpy(f->ram + BUF, "stuck", 5);
	((struct vring_desc *)(f->ram + 0x5000))[0] =
	    (struct vring_desc){ .addr = BUF, .len = 5, .flags = 0 };
	av1->ring[0] = 0;
	av1->idx = 1;
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 1); /* would hang here if the write blocked */
	assert_int_equal(us1->idx, 0);
	assert_true(vd->io_want_out);
	/* the reader drains: the I/O thread's kick finishes the chain */
	vd->io_want_out = false;
	while (filled > 0) {
		r = read(out[0], junk, sizeof(junk));
		assert_true(r > 0);
		filled -= r;
	}
	assert_int_equal(virtio_dev_notify(vd, 1), 0);
	assert_int_equal(us1->idx, 1);
	assert_false(vd->io_want_out);
	assert_int_equal(read(out[0], junk, sizeof(junk)), 5);
	assert_memory_equal(junk, "stuck", 5);
	virtio_dev_destroy(vd);
	close(out[0]);
	close(out[1]);
}

/* a transmit chain half written at save time: after restore only the rest goes out */
static void test_console_save_mid_chain(void **state)
{
	struct fake *f = *state;
	struct vring_avail *av1 = (struct vring_avail *)(f->ram + 0x6000);
	struct vring_used *us1 = (struct vring_used *)(f->ram + 0x7000);
	struct snap_writer w = { 0 };
	struct snap_reader r;
	struct kal_err *err = NULL;
	struct virtio_dev *vd, *vd2;
	static char got[8192];
	int out[2];

	assert_int_equal(pipe(out), 0);
	assert_true(fcntl(out[1], F_SETPIPE_SZ, 4096) == 4096);
	vd = virtio_console_create(&f->mem, 0xd0000000, 5, -1, out[1], NULL);
	negotiate(vd);
	queue_regs(vd, 0, QS, DESC, AVAIL, USED);
	queue_regs(vd, 1, QS, 0x5000, 0x6000, 0x7000);
	mw(vd, VIRTIO_MMIO_STATUS, 0xf);
	memset(f->ram + BUF, 'a', 4096);
	memset(f->ram + BUF + 4096, 'b', 4096);
	((struct vring_desc *)(f->ram + 0x5000))[0] =
	    (struct vring_desc){ .addr = BUF, .len = 8192, .flags = 0 };
	av1->ring[0] = 0;
	av1->idx = 1;
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 1); /* 4096 bytes fit, the rest waits */
	assert_int_equal(us1->idx, 0);
	assert_int_equal(virtio_dev_save(vd, &w, &err), 0);
	virtio_dev_destroy(vd);

	vd2 = virtio_console_create(&f->mem, 0xd0000000, 5, -1, out[1], NULL);
	r = (struct snap_reader){ .buf = w.buf, .len = w.len };
	assert_int_equal(virtio_dev_restore(vd2, &r, &err), 0);
	assert_int_equal(read(out[0], got, sizeof(got)), 4096);
	assert_int_equal(got[0], 'a');
	assert_int_equal(virtio_dev_notify(vd2, 1), 0);
	assert_int_equal(us1->idx, 1);
	assert_int_equal(read(out[0], got, sizeof(got)), 4096); /* the 'b' half, once */
	assert_int_equal(got[0], 'b');
	assert_int_equal(got[4095], 'b');
	virtio_dev_destroy(vd2);
	snap_writer_free(&w);
	close(out[0]);
	close(out[1]);
}

static void test_pmem(void **state)
{
	struct fake *f = *state;
	char path[] = "/tmp/kal-test-pmem-XXXXXX";
	int fd = mkstemp(path);
	struct kal_err *err = NULL;
	struct virtio_dev *vd;
	uint64_t gpa, size;
	void *host;
	uint32_t resp;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4096), 0);
	assert_null(virtio_pmem_create(&f->mem, 0xd0000000, 5, path, PMEM_GPA, &err));
	assert_string_equal(err->msg + strlen(err->msg) - 35,
			    "is not a non-zero multiple of 2 MiB");
	kal_err_clear(&err);
	assert_int_equal(ftruncate(fd, 2 << 20), 0);
	assert_null(virtio_pmem_create(&f->mem, 0xd0000000, 5, path, PMEM_GPA + 4096, &err));
	kal_err_clear(&err);
	vd = virtio_pmem_create(&f->mem, 0xd0000000, 5, path, PMEM_GPA, &err);
	assert_non_null(vd);
	virtio_pmem_window(vd, &gpa, &size, &host);
	assert_int_equal(gpa, PMEM_GPA);
	assert_int_equal(size, 2 << 20);
	assert_int_equal(mr(vd, VIRTIO_MMIO_CONFIG + 8), 2 << 20);
	negotiate(vd);
	queue_regs(vd, 0, QS, DESC, AVAIL, USED);
	mw(vd, VIRTIO_MMIO_STATUS, 0xf);
	memset(f->ram + BUF, 0, 4);
	set_desc(f, 0, BUF, 4, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, BUF + 0x10, 4, VRING_DESC_F_WRITE, 0);
	memset(f->ram + BUF + 0x10, 0xff, 4);
	offer(f, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	memcpy(&resp, f->ram + BUF + 0x10, 4);
	assert_int_equal(resp, 0);
	assert_int_equal(used(f)->ring[0].len, 4);
	virtio_dev_destroy(vd);
	close(fd);
	unlink(path);
}

/* ---- virtio-net ---- */

struct net_sink {
	int calls;
	int answer; /* what send() returns: 0 or -EAGAIN */
	size_t len;
	uint8_t frame[2048];
};

static int net_sink_send(void *opaque, const void *frame, size_t len)
{
	struct net_sink *s = opaque;

	s->calls++;
	if (s->answer)
		return s->answer;
	s->len = len;
	memcpy(s->frame, frame, len);
	return 0;
}

#define NET_RX_RING 0x20000
#define NET_TX_RING 0x30000
#define NET_BUF	    0x40000

static struct virtio_dev *live_net(struct fake *f, struct net_sink *sink, struct gring *rx,
				   struct gring *tx)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	struct virtio_dev *vd = virtio_net_create(&f->mem, 0xd0000000, 5, mac, NULL);

	assert_non_null(vd);
	virtio_net_set_backend(vd, net_sink_send, sink);
	assert_int_equal(mr(vd, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_NET);
	assert_int_equal(mr(vd, VIRTIO_MMIO_CONFIG) & 0xffffff, 0x005452);
	mw(vd, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(mr(vd, VIRTIO_MMIO_DEVICE_FEATURES), 1u << VIRTIO_NET_F_MAC);
	negotiate(vd);
	queue_regs(vd, 0, QS, NET_RX_RING, NET_RX_RING + 0x1000, NET_RX_RING + 0x2000);
	queue_regs(vd, 1, QS, NET_TX_RING, NET_TX_RING + 0x1000, NET_TX_RING + 0x2000);
	mw(vd, VIRTIO_MMIO_STATUS, 0xf);
	assert_int_equal(mr(vd, VIRTIO_MMIO_STATUS), 0xf);
	*rx = (struct gring){ .f = f, .base = NET_RX_RING };
	*tx = (struct gring){ .f = f, .base = NET_TX_RING };
	return vd;
}

/* a guest frame of n bytes (after the 12-byte header) at NET_BUF, byte i = i */
static void net_put_frame(struct fake *f, uint32_t n)
{
	memset(f->ram + NET_BUF, 0, 12);
	for (uint32_t i = 0; i < n; i++)
		f->ram[NET_BUF + 12 + i] = (uint8_t)i;
}

static void test_net_tx(void **state)
{
	struct fake *f = *state;
	struct net_sink sink = { 0 };
	struct virtio_net_stats st;
	struct gring rx, tx;
	struct virtio_dev *vd = live_net(f, &sink, &rx, &tx);

	/* header and frame in one buffer */
	net_put_frame(f, 42);
	gring_offer(&tx, NET_BUF, 12 + 42, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(sink.calls, 1);
	assert_int_equal(sink.len, 42);
	assert_memory_equal(sink.frame, f->ram + NET_BUF + 12, 42);
	assert_int_equal(gring_used(&tx)->idx, 1);
	assert_int_equal(gring_used(&tx)->ring[0].len, 0);
	/* the largest frame, the header in a buffer of its own (Linux does this) */
	net_put_frame(f, VIRTIO_NET_FRAME_MAX);
	{
		struct vring_desc *d = (struct vring_desc *)(f->ram + NET_TX_RING);
		struct vring_avail *av = (struct vring_avail *)(f->ram + NET_TX_RING + 0x1000);

		d[1] = (struct vring_desc){ .addr = NET_BUF, .len = 12, .flags = 1, .next = 2 };
		d[2] = (struct vring_desc){ .addr = NET_BUF + 12, .len = VIRTIO_NET_FRAME_MAX };
		av->ring[av->idx % QS] = 1;
		av->idx++;
		tx.next = 3;
	}
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(sink.calls, 2);
	assert_int_equal(sink.len, VIRTIO_NET_FRAME_MAX);
	assert_int_equal(sink.frame[VIRTIO_NET_FRAME_MAX - 1], (uint8_t)(VIRTIO_NET_FRAME_MAX - 1));
	/* one byte more, or less than a header: counted and dropped, never copied */
	gring_offer(&tx, NET_BUF, 12 + VIRTIO_NET_FRAME_MAX + 1, 0);
	gring_offer(&tx, NET_BUF, 11, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(sink.calls, 2);
	assert_int_equal(gring_used(&tx)->idx, 4);
	virtio_net_get_stats(vd, &st);
	assert_int_equal(st.tx_frames, 2);
	assert_int_equal(st.tx_malformed, 2);
	assert_int_equal(mr(vd, VIRTIO_MMIO_STATUS), 0xf); /* not a protocol violation */
	/* a device-writable buffer on the transmit queue is one */
	gring_offer(&tx, NET_BUF, 64, VRING_DESC_F_WRITE);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_true(mr(vd, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(sink.calls, 2);
	virtio_dev_destroy(vd);
}

static void test_net_tx_backpressure(void **state)
{
	struct fake *f = *state;
	struct net_sink sink = { .answer = -EAGAIN };
	struct gring rx, tx;
	struct virtio_dev *vd = live_net(f, &sink, &rx, &tx);

	net_put_frame(f, 60);
	gring_offer(&tx, NET_BUF, 12 + 60, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(sink.calls, 1);
	assert_int_equal(gring_used(&tx)->idx, 0); /* held: the guest waits */
	/* the backend made room and kicked the queue: the held frame goes, once */
	sink.answer = 0;
	assert_int_equal(virtio_dev_notify(vd, 1), 0);
	assert_int_equal(sink.calls, 2);
	assert_int_equal(sink.len, 60);
	assert_int_equal(gring_used(&tx)->idx, 1);
	virtio_dev_destroy(vd);
}

static void test_net_rx(void **state)
{
	struct fake *f = *state;
	struct net_sink sink = { 0 };
	struct virtio_net_stats st;
	struct virtio_net_hdr_v1 hdr;
	struct gring rx, tx;
	struct virtio_dev *vd = live_net(f, &sink, &rx, &tx);
	uint8_t frame[VIRTIO_NET_FRAME_MAX + 1];

	for (unsigned int i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(i * 7);
	/* no buffers posted: a bounded queue, then drops like a NIC */
	for (unsigned int i = 0; i < VIRTIO_NET_RX_SLOTS; i++)
		assert_int_equal(virtio_net_receive(vd, frame, 60 + i), 0);
	assert_int_equal(virtio_net_receive(vd, frame, 60), -ENOBUFS);
	assert_int_equal(virtio_net_receive(vd, frame, sizeof(frame)), -EMSGSIZE);
	virtio_net_get_stats(vd, &st);
	assert_int_equal(st.rx_dropped, 2);
	/* the guest posts two buffers: the two oldest frames arrive, header first */
	gring_offer(&rx, NET_BUF, 12 + 1514, VRING_DESC_F_WRITE);
	gring_offer(&rx, NET_BUF + 0x1000, 12 + 1514, VRING_DESC_F_WRITE);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(gring_used(&rx)->idx, 2);
	assert_int_equal(gring_used(&rx)->ring[0].len, 12 + 60);
	assert_int_equal(gring_used(&rx)->ring[1].len, 12 + 61);
	memcpy(&hdr, f->ram + NET_BUF, sizeof(hdr));
	assert_int_equal(hdr.num_buffers, 1);
	assert_int_equal(hdr.flags, 0);
	assert_int_equal(hdr.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	assert_memory_equal(f->ram + NET_BUF + 12, frame, 60);
	/* a buffer too small for the next frame comes back empty; the frame is dropped */
	gring_offer(&rx, NET_BUF, 12 + 10, VRING_DESC_F_WRITE);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(gring_used(&rx)->ring[2].len, 0);
	virtio_net_get_stats(vd, &st);
	assert_int_equal(st.rx_frames, 2);
	assert_int_equal(st.rx_dropped, 3);
	/* the I/O thread's path: the eventfd says frames wait */
	gring_offer(&rx, NET_BUF, 12 + 1514, VRING_DESC_F_WRITE);
	assert_true(virtio_dev_io_ready(vd));
	assert_int_equal(gring_used(&rx)->idx, 4);
	assert_int_equal(gring_used(&rx)->ring[3].len, 12 + 63);
	/* a device-readable receive buffer breaks the device */
	gring_offer(&rx, NET_BUF, 12 + 1514, 0);
	mw(vd, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(mr(vd, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	virtio_dev_destroy(vd);
}

static void test_net_save_restore(void **state)
{
	struct fake *f = *state;
	struct net_sink sink = { 0 };
	struct snap_writer w = { 0 };
	struct snap_reader r;
	struct kal_err *err = NULL;
	struct gring rx, tx;
	struct virtio_dev *vd = live_net(f, &sink, &rx, &tx), *vd2;
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	size_t at;

	assert_int_equal(virtio_net_receive(vd, "first frame", 11), 0);
	assert_int_equal(virtio_net_receive(vd, "second", 6), 0);
	assert_int_equal(virtio_dev_save(vd, &w, &err), 0);
	virtio_dev_destroy(vd);
	vd2 = virtio_net_create(&f->mem, 0xd0000000, 5, mac, NULL);
	r = (struct snap_reader){ .buf = w.buf, .len = w.len };
	assert_int_equal(virtio_dev_restore(vd2, &r, &err), 0);
	gring_offer(&rx, NET_BUF, 12 + 1514, VRING_DESC_F_WRITE);
	mw(vd2, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(gring_used(&rx)->idx, 1);
	assert_int_equal(gring_used(&rx)->ring[0].len, 12 + 11);
	assert_memory_equal(f->ram + NET_BUF + 12, "first frame", 11);
	virtio_dev_destroy(vd2);
	/* a record claiming more queued frames than the cap is refused */
	at = w.len - (4 + 2 + 11 + 2 + 6); /* the u32 count of queued frames */
	w.buf[at] = VIRTIO_NET_RX_SLOTS + 1;
	vd2 = virtio_net_create(&f->mem, 0xd0000000, 5, mac, NULL);
	r = (struct snap_reader){ .buf = w.buf, .len = w.len };
	assert_int_equal(virtio_dev_restore(vd2, &r, &err), -1);
	assert_non_null(strstr(err->msg, "65 queued frames exceed the cap of 64"));
	kal_err_clear(&err);
	virtio_dev_destroy(vd2);
	snap_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mem_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setup_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setup_rings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pop_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pop_chain_at_queue_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pop_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pop_indices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pop_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pop_direction_indirect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pop_total_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mmio_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mmio_status_machine, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mmio_bad_queue_needs_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rng_serves_and_breaks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_restore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_console, setup, teardown),
		cmocka_unit_test_setup_teardown(test_console_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_console_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_console_save_mid_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pmem, setup, teardown),
		cmocka_unit_test_setup_teardown(test_net_tx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_net_tx_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_net_rx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_net_save_restore, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
