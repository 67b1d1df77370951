// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-console, single port (no MULTIPORT yet): transmitq bytes go to a
 * host fd, host input is read ahead into a bounded buffer (VIRTIO_CONSOLE_RX_CAP)
 * and handed to the receiveq buffers the guest posts.  When the guest posts
 * none, the I/O thread stops reading the host fd, so a silent guest applies
 * back-pressure instead of growing kal's memory (reliability.md B4).
 * Output is written non-blocking: when the host reader stalls, the chain
 * being written stays with the device, the transmitq stops moving (the
 * guest's driver waits), and the I/O thread resumes on POLLOUT.  kal
 * buffers nothing: memory stays flat however much the guest writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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
	int own_out_fd; /* our non-blocking reopen of out_fd, or -1 */
	bool in_eof;
	bool tx_have;	 /* tx_chain is popped and partly written */
	uint32_t tx_off; /* bytes of tx_chain already written */
	struct virtq_chain tx_chain;
	uint32_t rx_len, rx_off; /* pending host bytes are rx[rx_off, rx_len) */
	unsigned long tx_dropped;
	uint8_t rx[VIRTIO_CONSOLE_RX_CAP];
};

/* Write the rest of tx_chain; 1 when done, 0 when the host fd would block. */
static int console_tx_flush(struct console_dev *d)
{
	const struct virtq_chain *c = &d->tx_chain;
	uint32_t skip = d->tx_off;

	for (unsigned int i = 0; i < c->nr_out; i++) {
		const uint8_t *p = c->buf[i].base;
		size_t n = c->buf[i].len;

		if (skip >= n) {
			skip -= (uint32_t)n;
			continue;
		}
		p += skip;
		n -= skip;
		skip = 0;
		while (n) {
			ssize_t r = write(d->out_fd, p, n);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && errno == EAGAIN)
				return 0;
			if (r <= 0) {
				/* a closed reader or an I/O error: drop the rest, never block */
				d->tx_dropped += n;
				break;
			}
			p += r;
			n -= (size_t)r;
			d->tx_off += (uint32_t)r;
		}
	}
	return 1;
}

static int console_tx(struct console_dev *d)
{
	struct virtio_dev *vd = &d->vdev;
	struct virtq *q = &vd->vq[CONSOLE_TXQ];
	bool used = false;
	int ret = 0;

	for (unsigned int n = 0; n < q->size; n++) {
		if (!d->tx_have) {
			int r = virtq_pop(q, &d->tx_chain);

			if (r < 0) {
				virtio_dev_set_broken(vd, "queue %u: %s", CONSOLE_TXQ, q->err);
				ret = -EINVAL;
				break;
			}
			if (r == 0)
				break;
			if (d->tx_chain.nr_in) {
				virtio_dev_set_broken(
				    vd, "transmit chain has a device-writable buffer");
				ret = -EINVAL;
				break;
			}
			d->tx_have = true;
			d->tx_off = 0;
		}
		if (!console_tx_flush(d)) {
			vd->io_want_out = true; /* resume when the host reader catches up */
			break;
		}
		d->tx_have = false;
		virtq_push(q, d->tx_chain.head, 0);
		used = true;
	}
	if (used)
		virtio_dev_signal_used(vd);
	if (ret == 0 && !d->tx_have && virtq_pending(q))
		ret = 1; /* budget spent */
	return ret;
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
		return console_tx(d);
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

	/* a transmit chain in flight is offered again after restore (FIXME: resent whole) */
	snap_put_u8(w, d->tx_have);
	snap_put_u32(w, d->rx_len - d->rx_off);
	snap_put(w, d->rx + d->rx_off, d->rx_len - d->rx_off);
	return 0;
}

static int console_restore(struct virtio_dev *vd, struct snap_reader *r, struct kal_err **err)
{
	struct console_dev *d = container_of(vd, struct console_dev, vdev);
	bool tx_have = snap_get_u8(r);
	uint32_t n = snap_get_u32(r);

	d->tx_have = false;
	if (tx_have && vd->vq[CONSOLE_TXQ].ready)
		vd->vq[CONSOLE_TXQ].last_avail--; /* pop it again */
	if (n > sizeof(d->rx))
		return kal_err_set(err, EINVAL, "%u pending input bytes exceed the cap of %zu", n,
				   sizeof(d->rx));
	snap_get(r, d->rx, n);
	d->rx_off = 0;
	d->rx_len = r->bad ? 0 : n;
	return 0;
}

static void console_reset(struct virtio_dev *vd)
{
	struct console_dev *d = container_of(vd, struct console_dev, vdev);

	d->tx_have = false; /* the rings it pointed into are gone */
}

static void console_destroy(struct virtio_dev *vd)
{
	struct console_dev *d = container_of(vd, struct console_dev, vdev);

	if (d->own_out_fd >= 0)
		close(d->own_out_fd);
	free(d);
}

static const struct virtio_dev_ops console_ops = {
	.name = "console",
	.device_id = VIRTIO_ID_CONSOLE,
	.num_queues = 2,
	.max_queue_size = VIRTIO_CONSOLE_QUEUE_SIZE,
	.queue_notify = console_queue_notify,
	.io_fd = console_io_fd,
	.io_ready = console_io_ready,
	.reset = console_reset,
	.save = console_save,
	.restore = console_restore,
	.destroy = console_destroy,
};

struct virtio_dev *virtio_console_create(const struct guest_mem *mem, uint64_t base, uint32_t irq,
					 int in_fd, int out_fd, struct kal_err **err)
{
	struct console_dev *d = xzalloc(sizeof(*d));
	struct virtio_console_config cfg = { 0 };
	struct stat st;

	(void)err;
	d->in_fd = in_fd;
	d->out_fd = out_fd;
	d->own_out_fd = -1;
	d->in_eof = in_fd < 0;
	/*
	 * Pipes and terminals can block: write through our own non-blocking
	 * open file description, so the caller's fd keeps its flags.  Regular
	 * files never block (and a reopen would lose the write offset).
	 */
	if (out_fd >= 0 && fstat(out_fd, &st) == 0 &&
	    (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", out_fd);
		d->own_out_fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (d->own_out_fd >= 0)
			d->out_fd = d->own_out_fd;
	}
	virtio_dev_init(&d->vdev, &console_ops, mem, base, irq);
	d->vdev.io_out_fd = d->out_fd;
	d->vdev.io_out_queue = CONSOLE_TXQ;
	memcpy(d->vdev.config, &cfg, sizeof(cfg));
	d->vdev.config_size = sizeof(cfg); /* cols/rows/ports unused without SIZE/MULTIPORT */
	return &d->vdev;
}
