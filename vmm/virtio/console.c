// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-console: transmitq bytes go to a host fd, host input is read ahead into a bounded buffer (VIRTIO_CONSOLE_RX_CAP)
 * and handed to the receiveq buffers the guest posts.  When the guest posts
 * none, the I/O thread stops reading the host fd, so a silent guest applies
 * back-pressure instead of growing kal's memory (reliability.md B4).
 * Output is written non-blocking: when the host reader stalls, the chain
 * being written stays with the device, the transmitq stops moving (the
 * guest's driver waits), and the I/O thread resumes on POLLOUT.  kal
 * buffers nothing: memory stays flat however much the guest writes.
 *
 * Two flavours: a plain console (hvc0 in a Linux guest), and a MULTIPORT
 * device carrying one named, non-console port (id 0: /dev/vportNp0 whose
 * sysfs name is e.g. `kal.agent`), the virtio-serial shape QEMU offers.  A
 * port is no tty, so binary frames need no raw mode, and the guest says when
 * it opens and closes the port (PORT_OPEN): Linux drops input that arrives
 * while the port is closed, so host bytes wait in the device until then.
 *
 *   queues (MULTIPORT)  0 port 0 receiveq   1 port 0 transmitq
 *                       2 control receiveq  3 control transmitq
 *   control message     le32 id | le16 event | le16 value [| name bytes]
 *   handshake           guest DEVICE_READY -> host PORT_ADD(0)
 *                       guest PORT_READY(0) -> host PORT_NAME(0) + PORT_OPEN(0, 1)
 *                       guest PORT_OPEN(0, 1|0): input flows | is held
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
#include "../../lib/log.h"
#include "../../lib/xalloc.h"
#include "../snap.h"
#include "devices.h"

#define CONSOLE_RXQ	  0
#define CONSOLE_TXQ	  1
#define CONSOLE_CTRL_RXQ  2
#define CONSOLE_CTRL_TXQ  3
#define CONSOLE_NAME_MAX  32
#define CONSOLE_CTRL_MAX  4 /* host->guest control messages waiting for buffers */
#define CONSOLE_CTRL_SIZE 8 /* struct virtio_console_control */

struct console_ctrl_msg {
	uint8_t len;
	uint8_t b[CONSOLE_CTRL_SIZE + CONSOLE_NAME_MAX];
};

struct console_dev {
	struct virtio_dev vdev;
	int in_fd, out_fd;
	int own_out_fd; /* our non-blocking reopen of out_fd, or -1 */
	bool in_eof;
	bool tx_have;	    /* tx_chain is popped and partly written */
	uint32_t tx_off;    /* bytes of tx_chain already written */
	uint32_t tx_resume; /* after restore: bytes of the next chain written before the save */
	struct virtq_chain tx_chain;
	uint32_t rx_len, rx_off; /* pending host bytes are rx[rx_off, rx_len) */
	unsigned long tx_dropped;
	/* named-port flavour */
	char name[CONSOLE_NAME_MAX]; /* "" for the plain console */
	bool guest_open;	     /* the guest has the port open (PORT_OPEN) */
	unsigned int ctrl_n;
	struct console_ctrl_msg ctrl[CONSOLE_CTRL_MAX];
	uint8_t rx[VIRTIO_CONSOLE_RX_CAP];
};

/* A named port whose driver speaks MULTIPORT: input waits for the guest to open it. */
static bool console_multiport(const struct console_dev *d)
{
	return d->name[0] && (d->vdev.driver_features & (1ull << VIRTIO_CONSOLE_F_MULTIPORT));
}

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
			d->tx_off = d->tx_resume; /* never send a byte twice across save/restore */
			d->tx_resume = 0;
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
	if (console_multiport(d) && !d->guest_open)
		return true; /* Linux would drop it: hold it until PORT_OPEN */
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

/* Queue a host->guest control message; a guest that floods requests loses the surplus. */
static void console_ctrl_push(struct console_dev *d, uint16_t event, uint16_t value,
			      const char *name)
{
	struct console_ctrl_msg *m;
	size_t nlen = name ? strlen(name) : 0;
	uint32_t id = 0;

	if (d->ctrl_n >= CONSOLE_CTRL_MAX) {
		if (kal_log_ratelimit(&d->vdev.rl, 5))
			kal_warn("virtio-console: control messages pile up; dropping event %u",
				 event);
		return;
	}
	m = &d->ctrl[d->ctrl_n++];
	memcpy(m->b, &id, 4);
	memcpy(m->b + 4, &event, 2);
	memcpy(m->b + 6, &value, 2);
	memcpy(m->b + CONSOLE_CTRL_SIZE, name, nlen);
	m->len = (uint8_t)(CONSOLE_CTRL_SIZE + nlen);
}

/* Hand queued control messages to the guest's control receive buffers. */
static bool console_ctrl_deliver(struct console_dev *d)
{
	struct virtio_dev *vd = &d->vdev;
	struct virtq *q = &vd->vq[CONSOLE_CTRL_RXQ];
	unsigned int sent = 0;
	bool ok = true;

	if (!q->ready)
		return true;
	while (sent < d->ctrl_n) {
		int r = virtq_pop(q, vd->chain);
		size_t n;

		if (r == 0)
			break;
		if (r < 0 || vd->chain->nr_out) {
			virtio_dev_set_broken(vd, "queue %u: %s", CONSOLE_CTRL_RXQ,
					      r < 0 ? q->err : "device-readable buffer");
			ok = false;
			break;
		}
		n = virtq_chain_write(vd->chain, 0, d->ctrl[sent].b, d->ctrl[sent].len);
		virtq_push(q, vd->chain->head, (uint32_t)n);
		sent++;
	}
	if (sent) {
		memmove(d->ctrl, d->ctrl + sent, (d->ctrl_n - sent) * sizeof(d->ctrl[0]));
		d->ctrl_n -= sent;
		virtio_dev_signal_used(vd);
	}
	return ok;
}

static int console_ctrl_handle(struct virtio_dev *vd, struct virtq_chain *c, uint32_t *written)
{
	struct console_dev *d = container_of(vd, struct console_dev, vdev);
	uint8_t b[CONSOLE_CTRL_SIZE];
	uint32_t id;
	uint16_t event, value;

	*written = 0;
	if (c->nr_in || virtq_chain_read(c, 0, b, sizeof(b)) != sizeof(b)) {
		virtio_dev_set_broken(vd, "control message: not one 8-byte device-readable buffer");
		return -EINVAL;
	}
	memcpy(&id, b, 4);
	memcpy(&event, b + 4, 2);
	memcpy(&value, b + 6, 2);
	if (event != VIRTIO_CONSOLE_DEVICE_READY && id != 0)
		return 0; /* the only port is 0 */
	switch (event) {
	case VIRTIO_CONSOLE_DEVICE_READY:
		if (value == 1)
			console_ctrl_push(d, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
		break;
	case VIRTIO_CONSOLE_PORT_READY:
		if (value == 1) {
			console_ctrl_push(d, VIRTIO_CONSOLE_PORT_NAME, 0, d->name);
			console_ctrl_push(d, VIRTIO_CONSOLE_PORT_OPEN, 1,
					  NULL); /* host side is up */
		}
		break;
	case VIRTIO_CONSOLE_PORT_OPEN:
		d->guest_open = value == 1;
		if (d->guest_open && console_rx_deliver(d) && d->rx_len == 0 && !d->in_eof &&
		    d->in_fd >= 0)
			vd->io_rearm = true;
		break;
	default:
		break; /* RESIZE, CONSOLE_PORT: nothing to do for a data port */
	}
	return 0;
}

static int console_queue_notify(struct virtio_dev *vd, unsigned int q)
{
	struct console_dev *d = container_of(vd, struct console_dev, vdev);
	int r;

	if (q == CONSOLE_TXQ)
		return console_tx(d);
	if (q == CONSOLE_CTRL_TXQ) {
		r = virtio_dev_serve(vd, q, console_ctrl_handle);
		if (r >= 0 && !console_ctrl_deliver(d))
			return -EINVAL;
		return r;
	}
	if (q == CONSOLE_CTRL_RXQ)
		return console_ctrl_deliver(d) ? 0 : -EINVAL;
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

	/* a transmit chain in flight is popped again after restore, minus what was written */
	snap_put_u8(w, d->tx_have);
	snap_put_u32(w, d->tx_have ? d->tx_off : 0);
	snap_put_u32(w, d->rx_len - d->rx_off);
	snap_put(w, d->rx + d->rx_off, d->rx_len - d->rx_off);
	snap_put_u8(w, d->guest_open);
	snap_put_u8(w, (uint8_t)d->ctrl_n);
	for (unsigned int i = 0; i < d->ctrl_n; i++) {
		snap_put_u8(w, d->ctrl[i].len);
		snap_put(w, d->ctrl[i].b, d->ctrl[i].len);
	}
	return 0;
}

static int console_restore(struct virtio_dev *vd, struct snap_reader *r, struct kal_err **err)
{
	struct console_dev *d = container_of(vd, struct console_dev, vdev);
	bool tx_have = snap_get_u8(r);
	uint32_t tx_off = snap_get_u32(r);
	uint32_t n = snap_get_u32(r);

	d->tx_have = false;
	d->tx_resume = 0;
	if (tx_have && vd->vq[CONSOLE_TXQ].ready) {
		vd->vq[CONSOLE_TXQ].last_avail--; /* pop it again */
		d->tx_resume = tx_off;
	}
	if (n > sizeof(d->rx))
		return kal_err_set(err, EINVAL, "%u pending input bytes exceed the cap of %zu", n,
				   sizeof(d->rx));
	snap_get(r, d->rx, n);
	d->rx_off = 0;
	d->rx_len = r->bad ? 0 : n;
	d->guest_open = snap_get_u8(r);
	d->ctrl_n = snap_get_u8(r);
	if (d->ctrl_n > CONSOLE_CTRL_MAX)
		return kal_err_set(err, EINVAL, "%u control messages exceed the cap of %d",
				   d->ctrl_n, CONSOLE_CTRL_MAX);
	for (unsigned int i = 0; i < d->ctrl_n; i++) {
		d->ctrl[i].len = snap_get_u8(r);
		if (d->ctrl[i].len > sizeof(d->ctrl[i].b))
			return kal_err_set(err, EINVAL, "control message of %u bytes",
					   d->ctrl[i].len);
		snap_get(r, d->ctrl[i].b, d->ctrl[i].len);
	}
	if (r->bad)
		d->ctrl_n = 0;
	return 0;
}

static void console_reset(struct virtio_dev *vd)
{
	struct console_dev *d = container_of(vd, struct console_dev, vdev);

	d->tx_have = false; /* the rings it pointed into are gone */
	d->tx_resume = 0;
	d->guest_open = false;
	d->ctrl_n = 0;
}

static void console_destroy(struct virtio_dev *vd)
{
	struct console_dev *d = container_of(vd, struct console_dev, vdev);

	if (d->own_out_fd >= 0)
		close(d->own_out_fd);
	free(d);
}

static uint64_t console_port_features(struct virtio_dev *vd)
{
	(void)vd;
	return 1ull << VIRTIO_CONSOLE_F_MULTIPORT;
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

static const struct virtio_dev_ops console_port_ops = {
	.name = "console-port",
	.device_id = VIRTIO_ID_CONSOLE,
	.num_queues = 4,
	.max_queue_size = VIRTIO_CONSOLE_QUEUE_SIZE,
	.features = console_port_features,
	.queue_notify = console_queue_notify,
	.io_fd = console_io_fd,
	.io_ready = console_io_ready,
	.reset = console_reset,
	.save = console_save,
	.restore = console_restore,
	.destroy = console_destroy,
};

static struct virtio_dev *console_new(const struct virtio_dev_ops *ops, const struct guest_mem *mem,
				      uint64_t base, uint32_t irq, const char *name, int in_fd,
				      int out_fd)
{
	struct console_dev *d = xzalloc(sizeof(*d));
	struct virtio_console_config cfg = { .max_nr_ports = 1 };
	struct stat st;

	snprintf(d->name, sizeof(d->name), "%s", name ? name : "");
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
	virtio_dev_init(&d->vdev, ops, mem, base, irq);
	d->vdev.io_out_fd = d->out_fd;
	d->vdev.io_out_queue = CONSOLE_TXQ;
	memcpy(d->vdev.config, &cfg, sizeof(cfg));
	d->vdev.config_size = sizeof(cfg); /* cols/rows unused without SIZE */
	return &d->vdev;
}

struct virtio_dev *virtio_console_create(const struct guest_mem *mem, uint64_t base, uint32_t irq,
					 int in_fd, int out_fd, struct kal_err **err)
{
	(void)err;
	return console_new(&console_ops, mem, base, irq, NULL, in_fd, out_fd);
}

struct virtio_dev *virtio_console_port_create(const struct guest_mem *mem, uint64_t base,
					      uint32_t irq, const char *name, int in_fd, int out_fd,
					      struct kal_err **err)
{
	if (!name || !*name || strlen(name) >= CONSOLE_NAME_MAX)
		return kal_err_set(err, EINVAL, "virtio-console: port name `%s`: 1 to %d bytes",
				   name ? name : "", CONSOLE_NAME_MAX - 1),
		       NULL;
	return console_new(&console_port_ops, mem, base, irq, name, in_fd, out_fd);
}
