// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-console, single port (no MULTIPORT yet): transmitq bytes go to a
 * host fd, host input is read ahead into a bounded buffer (VIRTIO_CONSOLE_RX_CAP)
 * and handed to the receiveq buffers the guest posts.  When the guest posts
 * none, the I/O thread stops reading the host fd, so a silent guest applies
 * back-pressure instead of growing kal's memory (reliability.md B4).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>

#include "../../lib/cleanup.h"
#include "../../lib/err.h"
#include "../../lib/xalloc.h"
#include "../snap.h"
#include "devices.h"

#define CONSOLE_RXQ 0
#define CONSOLE_TXQ 1

struct console_dev {
	struct virtio_dev vdev;
	int in_fd, out_fd;
	bool in_eof;
	uint32_t rx_len, rx_off; /* pending host bytes are rx[rx_off, rx_len) */
	unsigned long tx_dropped;
	uint8_t rx[VIRTIO_CONSOLE_RX_CAP];
};

static int console_tx(struct virtio_dev *vd, struct virtq_chain *c, uint32_t *written)
{
	struct console_dev *d = container_of(vd, struct console_dev, vdev);

	if (c->nr_in) {
		virtio_dev_set_broken(vd, "transmit chain has a device-writable buffer");
		return -EINVAL;
	}
	for (unsigned int i = 0; i < c->nr_out; i++) {
		const uint8_t *p = c->buf[i].base;
		size_t n = c->buf[i].len;

		while (n) {
			ssize_t r = write(d->out_fd, p, n);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				/* a full non-blocking pipe or a closed reader: drop, never block */
				d->tx_dropped += n;
				break;
			}
			p += r;
			n -= (size_t)r;
		}
	}
	*written = 0;
	return 0;
}

/* Move pending host bytes into posted receive buffers; false if the device broke. */
static bool console_rx_deliver(struct console_dev *d)
{
	struct virtio_dev *vd = &d->vdev;
	struct virtq *q = &vd->vq[CONSOLE_RXQ];
	bool used = false, ok = true;

	if (!(vd->status & VIRTIO_CONFIG_S_DRIVER_OK) || vd->broken || !q->ready)
		return true;
	while (d->rx_off < d->rx_len) {
		int r = virtq_pop(q, vd->chain);
		size_t n;

		if (r < 0) {
			virtio_dev_set_broken(vd, "queue %u: %s", CONSOLE_RXQ, q->err);
			ok = false;
			break;
		}
		if (r == 0)
			break;
		if (vd->chain->nr_out) {
			virtio_dev_set_broken(vd, "receive chain has a device-readable buffer");
			ok = false;
			break;
		}
		n = virtq_chain_write(vd->chain, 0, d->rx + d->rx_off, d->rx_len - d->rx_off);
		d->rx_off += (uint32_t)n;
		virtq_push(q, vd->chain->head, (uint32_t)n);
		used = true;
	}
	if (d->rx_off == d->rx_len)
		d->rx_off = d->rx_len = 0;
	if (used)
		virtio_dev_signal_used(vd);
	return ok;
}

static int console_queue_notify(struct virtio_dev *vd, unsigned int q)
{
	struct console_dev *d = container_of(vd, struct console_dev, vdev);

	if (q == CONSOLE_TXQ)
		return virtio_dev_serve(vd, q, console_tx);
	/* new receive buffers: deliver what waits, then read the host again */
	if (!console_rx_deliver(d))
		return -EINVAL;
	if (d->rx_len == 0 && !d->in_eof && d->in_fd >= 0)
		vd->io_rearm = true;
	return 0;
}

static int console_io_fd(struct virtio_dev *vd)
{
	return container_of(vd, struct console_dev, vdev)->in_fd;
}

static bool console_io_ready(struct virtio_dev *vd)
{
	struct console_dev *d = container_of(vd, struct console_dev, vdev);
	ssize_t n;

	if (d->rx_len == 0) {
		n = read(d->in_fd, d->rx, sizeof(d->rx));
		if (n < 0)
			return errno == EINTR || errno == EAGAIN;
		if (n == 0) {
			d->in_eof = true;
			return false;
		}
		d->rx_off = 0;
		d->rx_len = (uint32_t)n;
	}
	console_rx_deliver(d);
	/* keep reading only while the guest keeps up */
	return d->rx_len == 0;
}

static int console_save(struct virtio_dev *vd, struct snap_writer *w, struct kal_err **err)
{
	struct console_dev *d = container_of(vd, struct console_dev, vdev);

	snap_put_u32(w, d->rx_len - d->rx_off);
	snap_put(w, d->rx + d->rx_off, d->rx_len - d->rx_off);
	return 0;
}

static int console_restore(struct virtio_dev *vd, struct snap_reader *r, struct kal_err **err)
{
	struct console_dev *d = container_of(vd, struct console_dev, vdev);
	uint32_t n = snap_get_u32(r);

	if (n > sizeof(d->rx))
		return kal_err_set(err, EINVAL, "%u pending input bytes exceed the cap of %zu", n,
				   sizeof(d->rx));
	snap_get(r, d->rx, n);
	d->rx_off = 0;
	d->rx_len = r->bad ? 0 : n;
	return 0;
}

static void console_destroy(struct virtio_dev *vd)
{
	free(container_of(vd, struct console_dev, vdev));
}

static const struct virtio_dev_ops console_ops = {
	.name = "console",
	.device_id = VIRTIO_ID_CONSOLE,
	.num_queues = 2,
	.max_queue_size = VIRTIO_CONSOLE_QUEUE_SIZE,
	.queue_notify = console_queue_notify,
	.io_fd = console_io_fd,
	.io_ready = console_io_ready,
	.save = console_save,
	.restore = console_restore,
	.destroy = console_destroy,
};

struct virtio_dev *virtio_console_create(const struct guest_mem *mem, uint64_t base, uint32_t irq,
					 int in_fd, int out_fd, struct kal_err **err)
{
	struct console_dev *d = xzalloc(sizeof(*d));
	struct virtio_console_config cfg = { 0 };

	(void)err;
	d->in_fd = in_fd;
	d->out_fd = out_fd;
	d->in_eof = in_fd < 0;
	virtio_dev_init(&d->vdev, &console_ops, mem, base, irq);
	memcpy(d->vdev.config, &cfg, sizeof(cfg));
	d->vdev.config_size = sizeof(cfg); /* cols/rows/ports unused without SIZE/MULTIPORT */
	return &d->vdev;
}
