// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-net, the minimal modern device: VERSION_1 and MAC only (no
 * offloads, no mergeable buffers, no control queue), so every frame is one
 * Ethernet frame of at most VIRTIO_NET_FRAME_MAX bytes behind a 12-byte
 * virtio_net_hdr_v1.  Frames the guest sends go to a backend callback (the
 * slirp thread, vmm/net.c); frames for the guest arrive from any thread
 * through virtio_net_receive() into a bounded queue, and the I/O thread
 * moves them into the receive buffers the guest posted.  Like a NIC, a full
 * queue drops the newest frame: memory stays at VIRTIO_NET_RX_SLOTS frames.
 *
 *   every buffer chain (both queues)
 *   +--------+----------+------------+-----------+-------------+------------+------------------+
 *   | flags8 | gso_type8| hdr_len16  | gso_size16| csum_start16| csum_off16 | num_buffers16    | frame...
 *   +--------+----------+------------+-----------+-------------+------------+------------------+
 *   receive: the device writes zeros and num_buffers = 1; transmit: ignored
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>

#include "../../lib/cleanup.h"
#include "../../lib/err.h"
#include "../../lib/log.h"
#include "../../lib/xalloc.h"
#include "../snap.h"
#include "devices.h"

#define NET_RXQ	    0
#define NET_TXQ	    1
#define NET_HDR_LEN 12 /* struct virtio_net_hdr_v1 */

struct net_dev {
	struct virtio_dev vdev;
	virtio_net_send_fn send;
	void *send_opaque;
	int rx_fd; /* eventfd: frames were queued (written by any thread) */
	/* host -> guest frames; rx_lock nests inside vd->lock, never the other way */
	pthread_mutex_t rx_lock;
	unsigned int rx_head, rx_n;
	uint16_t rx_len[VIRTIO_NET_RX_SLOTS];
	uint8_t rx[VIRTIO_NET_RX_SLOTS][VIRTIO_NET_FRAME_MAX];
	/* a transmit chain the backend could not take yet (back-pressure) */
	bool tx_have;
	uint32_t tx_len;
	struct virtq_chain tx_chain;
	uint8_t tx_frame[VIRTIO_NET_FRAME_MAX];
	struct virtio_net_stats stats;
};

static struct net_dev *to_net(struct virtio_dev *vd)
{
	return container_of(vd, struct net_dev, vdev);
}

int virtio_net_receive(struct virtio_dev *vd, const void *frame, size_t len)
{
	struct net_dev *d = to_net(vd);
	uint64_t one = 1;
	int ret = 0;

	if (len > VIRTIO_NET_FRAME_MAX) {
		pthread_mutex_lock(&d->rx_lock);
		d->stats.rx_dropped++;
		pthread_mutex_unlock(&d->rx_lock);
		return -EMSGSIZE;
	}
	pthread_mutex_lock(&d->rx_lock);
	if (d->rx_n == VIRTIO_NET_RX_SLOTS) {
		d->stats.rx_dropped++; /* the guest posts no buffers: drop like a NIC */
		ret = -ENOBUFS;
	} else {
		unsigned int slot = (d->rx_head + d->rx_n++) % VIRTIO_NET_RX_SLOTS;

		memcpy(d->rx[slot], frame, len);
		d->rx_len[slot] = (uint16_t)len;
	}
	pthread_mutex_unlock(&d->rx_lock);
	if (ret == 0 && d->rx_fd >= 0 && write(d->rx_fd, &one, sizeof(one)) < 0) {
		/* saturated counter: the I/O thread has a wakeup pending anyway */
	}
	return ret;
}

/* Move queued frames into posted receive buffers (vd->lock held); false if the device broke. */
static bool net_rx_deliver(struct net_dev *d)
{
	struct virtio_dev *vd = &d->vdev;
	struct virtq *q = &vd->vq[NET_RXQ];
	bool used = false, ok = true;

	if (!(vd->status & VIRTIO_CONFIG_S_DRIVER_OK) || vd->broken || !q->ready)
		return true;
	pthread_mutex_lock(&d->rx_lock);
	while (d->rx_n) {
		struct virtio_net_hdr_v1 hdr = { .num_buffers = 1 };
		unsigned int slot = d->rx_head;
		uint32_t len = d->rx_len[slot];
		int r = virtq_pop(q, vd->chain);

		if (r == 0)
			break;
		if (r < 0 || vd->chain->nr_out) {
			pthread_mutex_unlock(&d->rx_lock);
			virtio_dev_set_broken(vd, "queue %u: %s", NET_RXQ,
					      r < 0 ? q->err
						    : "receive chain has a device-readable buffer");
			pthread_mutex_lock(&d->rx_lock);
			ok = false;
			break;
		}
		d->rx_head = (d->rx_head + 1) % VIRTIO_NET_RX_SLOTS;
		d->rx_n--;
		if (vd->chain->in_len < NET_HDR_LEN + len) {
			/* too small for the frame: a driver bug; hand the buffer back empty */
			d->stats.rx_dropped++;
			virtq_push(q, vd->chain->head, 0);
		} else {
			virtq_chain_write(vd->chain, 0, &hdr, NET_HDR_LEN);
			virtq_chain_write(vd->chain, NET_HDR_LEN, d->rx[slot], len);
			virtq_push(q, vd->chain->head, NET_HDR_LEN + len);
			d->stats.rx_frames++;
		}
		used = true;
	}
	pthread_mutex_unlock(&d->rx_lock);
	if (used)
		virtio_dev_signal_used(vd);
	return ok;
}

/* Pop and send transmit chains, at most one queue's worth per kick. */
static int net_tx(struct net_dev *d)
{
	struct virtio_dev *vd = &d->vdev;
	struct virtq *q = &vd->vq[NET_TXQ];
	bool used = false;
	int ret = 0;

	for (unsigned int n = 0; n < q->size; n++) {
		if (!d->tx_have) {
			struct virtq_chain *c = &d->tx_chain;
			int r = virtq_pop(q, c);

			if (r < 0) {
				virtio_dev_set_broken(vd, "queue %u: %s", NET_TXQ, q->err);
				ret = -EINVAL;
				break;
			}
			if (r == 0)
				break;
			if (c->nr_in) {
				virtio_dev_set_broken(
				    vd, "transmit chain has a device-writable buffer");
				ret = -EINVAL;
				break;
			}
			if (c->out_len < NET_HDR_LEN ||
			    c->out_len - NET_HDR_LEN > VIRTIO_NET_FRAME_MAX) {
				/* Firecracker's rule: count and drop, never copy an oversized frame */
				d->stats.tx_malformed++;
				if (kal_log_ratelimit(&vd->rl, 5))
					kal_warn(
					    "virtio-net: dropping a transmit chain of %u bytes",
					    c->out_len);
				virtq_push(q, c->head, 0);
				used = true;
				continue;
			}
			d->tx_len = c->out_len - NET_HDR_LEN;
			virtq_chain_read(c, NET_HDR_LEN, d->tx_frame, d->tx_len);
			d->tx_have = true;
		}
		if (d->send && d->send(d->send_opaque, d->tx_frame, d->tx_len) == -EAGAIN)
			break; /* the backend kicks this queue again when it has room */
		d->tx_have = false;
		d->stats.tx_frames++;
		virtq_push(q, d->tx_chain.head, 0);
		used = true;
	}
	if (used)
		virtio_dev_signal_used(vd);
	if (ret == 0 && !d->tx_have && virtq_pending(q))
		ret = 1; /* budget spent */
	return ret;
}

static int net_queue_notify(struct virtio_dev *vd, unsigned int q)
{
	struct net_dev *d = to_net(vd);

	if (q == NET_TXQ)
		return net_tx(d);
	return net_rx_deliver(d) ? 0 : -EINVAL; /* new receive buffers */
}

static int net_io_fd(struct virtio_dev *vd)
{
	return to_net(vd)->rx_fd;
}

static bool net_io_ready(struct virtio_dev *vd)
{
	struct net_dev *d = to_net(vd);
	uint64_t cnt;

	if (read(d->rx_fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return true;
	net_rx_deliver(d);
	return true; /* frames the guest has no room for wait (or drop), never the eventfd */
}

static uint64_t net_features(struct virtio_dev *vd)
{
	(void)vd;
	return 1ull << VIRTIO_NET_F_MAC;
}

static void net_reset(struct virtio_dev *vd)
{
	struct net_dev *d = to_net(vd);

	d->tx_have = false; /* the ring it pointed into is gone */
	pthread_mutex_lock(&d->rx_lock);
	d->rx_head = d->rx_n = 0; /* a NIC reset loses what it had not delivered */
	pthread_mutex_unlock(&d->rx_lock);
}

/*
 *   device bytes: u8 tx_have | u32 n | n x (u16 len | len bytes)   (queued receive frames)
 */
static int net_save(struct virtio_dev *vd, struct snap_writer *w, struct kal_err **err)
{
	struct net_dev *d = to_net(vd);

	(void)err;
	/* a transmit chain held back is offered again after restore */
	snap_put_u8(w, d->tx_have);
	pthread_mutex_lock(&d->rx_lock);
	snap_put_u32(w, d->rx_n);
	for (unsigned int i = 0; i < d->rx_n; i++) {
		unsigned int slot = (d->rx_head + i) % VIRTIO_NET_RX_SLOTS;

		snap_put_u16(w, d->rx_len[slot]);
		snap_put(w, d->rx[slot], d->rx_len[slot]);
	}
	pthread_mutex_unlock(&d->rx_lock);
	return 0;
}

static int net_restore(struct virtio_dev *vd, struct snap_reader *r, struct kal_err **err)
{
	struct net_dev *d = to_net(vd);
	bool tx_have = snap_get_u8(r);
	uint32_t n = snap_get_u32(r);
	int ret = 0;

	d->tx_have = false;
	if (tx_have && vd->vq[NET_TXQ].ready)
		vd->vq[NET_TXQ].last_avail--; /* pop it again */
	if (n > VIRTIO_NET_RX_SLOTS)
		return kal_err_set(err, EINVAL, "%u queued frames exceed the cap of %d", n,
				   VIRTIO_NET_RX_SLOTS);
	pthread_mutex_lock(&d->rx_lock);
	d->rx_head = d->rx_n = 0;
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		uint16_t len = snap_get_u16(r);

		if (len > VIRTIO_NET_FRAME_MAX) {
			ret = kal_err_set(err, EINVAL, "queued frame of %u bytes exceeds %d", len,
					  VIRTIO_NET_FRAME_MAX);
			break;
		}
		snap_get(r, d->rx[i], len);
		d->rx_len[i] = len;
		d->rx_n++;
	}
	if (r->bad || ret < 0)
		d->rx_n = 0;
	pthread_mutex_unlock(&d->rx_lock);
	return ret;
}

static void net_destroy(struct virtio_dev *vd)
{
	struct net_dev *d = to_net(vd);

	if (d->rx_fd >= 0)
		close(d->rx_fd);
	pthread_mutex_destroy(&d->rx_lock);
	free(d);
}

static const struct virtio_dev_ops net_ops = {
	.name = "net",
	.device_id = VIRTIO_ID_NET,
	.num_queues = 2,
	.max_queue_size = VIRTIO_NET_QUEUE_SIZE,
	.features = net_features,
	.queue_notify = net_queue_notify,
	.io_fd = net_io_fd,
	.io_ready = net_io_ready,
	.reset = net_reset,
	.save = net_save,
	.restore = net_restore,
	.destroy = net_destroy,
};

void virtio_net_set_backend(struct virtio_dev *vd, virtio_net_send_fn send, void *opaque)
{
	struct net_dev *d = to_net(vd);

	pthread_mutex_lock(&vd->lock);
	d->send = send;
	d->send_opaque = opaque;
	pthread_mutex_unlock(&vd->lock);
}

int virtio_net_tx_kick_fd(struct virtio_dev *vd)
{
	return vd->kick_fd[NET_TXQ];
}

void virtio_net_get_stats(struct virtio_dev *vd, struct virtio_net_stats *st)
{
	struct net_dev *d = to_net(vd);

	pthread_mutex_lock(&vd->lock);
	pthread_mutex_lock(&d->rx_lock);
	*st = d->stats;
	pthread_mutex_unlock(&d->rx_lock);
	pthread_mutex_unlock(&vd->lock);
}

struct virtio_dev *virtio_net_create(const struct guest_mem *mem, uint64_t base, uint32_t irq,
				     const uint8_t mac[6], struct kal_err **err)
{
	struct net_dev *d = xzalloc(sizeof(*d));

	d->rx_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->rx_fd < 0) {
		kal_err_sys(err, errno, "virtio-net: eventfd");
		free(d);
		return NULL;
	}
	pthread_mutex_init(&d->rx_lock, NULL);
	virtio_dev_init(&d->vdev, &net_ops, mem, base, irq);
	memcpy(d->vdev.config, mac, 6); /* struct virtio_net_config: mac first */
	d->vdev.config_size = 6;
	return &d->vdev;
}
