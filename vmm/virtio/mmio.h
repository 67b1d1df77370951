/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-mmio transport, modern layout only (version 2, virtio 1.2 section
 * 4.2.2), and the device model every kal device plugs into.  A device's
 * private struct embeds `struct virtio_dev` and provides a
 * `struct virtio_dev_ops`; the transport owns the register file, the status
 * state machine, feature negotiation and queue configuration, and turns a
 * protocol violation into NEEDS_RESET without stopping the VM.
 *
 * Threads: register accesses come from vCPU threads, queue work from the I/O
 * thread; both hold vd->lock.  Interrupt status is atomic.
 */
#ifndef KAL_VMM_VIRTIO_MMIO_H
#define KAL_VMM_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../../lib/log.h"
#include "../mem.h"
#include "queue.h"

#define VIRTIO_MMIO_SIZE      0x1000ull /* one page per device window */
#define VIRTIO_DEV_MAX_QUEUES 4
#define VIRTIO_DEV_CONFIG_MAX 64
#define VIRTIO_MMIO_VENDOR    0x4c414b00 /* "\0KAL" */

struct kal_err;
struct virtio_dev;
struct snap_writer;
struct snap_reader;

struct virtio_dev_ops {
	const char *name;   /* "console", "blk", "pmem", "rng" */
	uint32_t device_id; /* VIRTIO_ID_* */
	unsigned int num_queues;
	uint16_t max_queue_size;
	uint64_t (*features)(struct virtio_dev *vd); /* device bits; VERSION_1 is added */
	/* optional: the default serves vd->config read-only */
	void (*read_config)(struct virtio_dev *vd, uint64_t off, void *buf, uint32_t len);
	void (*write_config)(struct virtio_dev *vd, uint64_t off, const void *buf, uint32_t len);
	int (*activate)(struct virtio_dev *vd, struct kal_err **err); /* DRIVER_OK, optional */
	/*
	 * Serve queue q (called with vd->lock held, only when the device is live).
	 * Returns 1 when work is left after the per-kick budget (the caller
	 * re-kicks later), 0 when drained, -EINVAL after virtio_dev_set_broken().
	 */
	int (*queue_notify)(struct virtio_dev *vd, unsigned int q);
	/* optional: a host fd the I/O thread watches; io_ready runs when it is readable */
	int (*io_fd)(struct virtio_dev *vd);
	/* returns true to keep watching, false to wait for vd->io_rearm */
	bool (*io_ready)(struct virtio_dev *vd);
	void (*reset)(struct virtio_dev *vd); /* optional: device state back to power-on */
	int (*save)(struct virtio_dev *vd, struct snap_writer *w, struct kal_err **err);
	int (*restore)(struct virtio_dev *vd, struct snap_reader *r, struct kal_err **err);
	void (*destroy)(struct virtio_dev *vd);
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	pthread_mutex_t lock;
	const struct guest_mem *mem;
	uint64_t mmio_base;
	uint32_t irq;
	int irq_fd;			    /* eventfd bound to the GSI (irqfd), or -1 */
	int kick_fd[VIRTIO_DEV_MAX_QUEUES]; /* ioeventfd per queue, or -1: notify inline */
	unsigned long irq_count;	    /* interrupts raised (tests, stats) */
	bool io_rearm;			    /* device asks the I/O thread to watch io_fd again */
	/*
	 * Output back-pressure: a device whose host output fd would block sets
	 * io_want_out; the I/O thread waits for io_out_fd to become writable
	 * and then kicks queue io_out_queue again.
	 */
	int io_out_fd;
	unsigned int io_out_queue;
	bool io_want_out;
	/* transport state (saved) */
	uint32_t status;
	uint64_t driver_features;
	uint32_t dev_features_sel, drv_features_sel, queue_sel;
	uint32_t isr; /* InterruptStatus, atomic */
	bool broken;
	struct virtq vq[VIRTIO_DEV_MAX_QUEUES];
	uint8_t config[VIRTIO_DEV_CONFIG_MAX];
	uint32_t config_size;
	struct virtq_chain *chain; /* scratch for pops, allocated once */
	struct kal_ratelimit rl;
};

/* Wire a device to its ops and guest memory; fds start at -1. */
void virtio_dev_init(struct virtio_dev *vd, const struct virtio_dev_ops *ops,
		     const struct guest_mem *mem, uint64_t mmio_base, uint32_t irq);
/* Release transport resources and call ops->destroy (which frees the device). */
void virtio_dev_destroy(struct virtio_dev *vd);

/* The MMIO exit handler for the device's window (off relative to mmio_base). */
void virtio_mmio_access(void *opaque, uint64_t off, void *data, uint32_t len, bool is_write);

/* From the I/O thread on a kick: serve queue q; returns 1 when more work is left. */
int virtio_dev_notify(struct virtio_dev *vd, unsigned int q);
/* From the I/O thread when ops->io_fd is readable; returns ops->io_ready's answer. */
bool virtio_dev_io_ready(struct virtio_dev *vd);

/*
 * The usual queue_notify body: pop and handle up to one queue's worth of
 * chains (the per-kick budget, A5), push each with the bytes handle() says it
 * wrote, and interrupt once.  handle() returns < 0 after calling
 * virtio_dev_set_broken().  Returns 1 when chains are still waiting, 0 when
 * drained, -EINVAL when the device broke.
 */
int virtio_dev_serve(struct virtio_dev *vd, unsigned int q,
		     int (*handle)(struct virtio_dev *vd, struct virtq_chain *c,
				   uint32_t *written));

/* Used buffers were published on some queue: raise the vring interrupt. */
void virtio_dev_signal_used(struct virtio_dev *vd);
/*
 * The driver broke the protocol: log once (rate-limited), set NEEDS_RESET,
 * raise a config interrupt, and serve nothing until the driver resets.
 */
void virtio_dev_set_broken(struct virtio_dev *vd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Transport + device state; restore re-validates every ready queue against guest RAM. */
int virtio_dev_save(struct virtio_dev *vd, struct snap_writer *w, struct kal_err **err);
int virtio_dev_restore(struct virtio_dev *vd, struct snap_reader *r, struct kal_err **err);

/* "virtio_mmio.device=4K@0xd0000000:5" for the kernel command line (static buffer-free) */
int virtio_dev_cmdline(const struct virtio_dev *vd, char *buf, size_t len);

#endif
