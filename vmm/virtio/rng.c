// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-rng: fills the guest's writable buffers from getrandom(2), at most
 * VIRTIO_RNG_REQUEST_CAP bytes per request (Firecracker caps at 64 KiB too),
 * so one request cannot keep the I/O thread busy.
 */
#include <errno.h>
#include <sys/random.h>

#include <linux/virtio_ids.h>

#include "../../lib/cleanup.h"
#include "../../lib/xalloc.h"
#include "devices.h"

struct rng_dev {
	struct virtio_dev vdev;
};

static int rng_handle(struct virtio_dev *vd, struct virtq_chain *c, uint32_t *written)
{
	uint32_t want = c->in_len < VIRTIO_RNG_REQUEST_CAP ? c->in_len : VIRTIO_RNG_REQUEST_CAP;

	if (c->nr_out) {
		virtio_dev_set_broken(vd, "entropy request with a device-readable buffer");
		return -EINVAL;
	}
	*written = 0;
	/* straight into guest RAM, buffer by buffer: no host copy sized by the guest */
	for (unsigned int i = 0; i < c->nr_in && *written < want; i++) {
		uint32_t n = c->buf[i].len;
		ssize_t got;

		if (n > want - *written)
			n = want - *written;
		got = getrandom(c->buf[i].base, n, 0);
		if (got < 0)
			break; /* EINTR or no entropy yet: hand back what we have */
		*written += (uint32_t)got;
		if ((uint32_t)got < n)
			break;
	}
	return 0;
}

static int rng_queue_notify(struct virtio_dev *vd, unsigned int q)
{
	return virtio_dev_serve(vd, q, rng_handle);
}

static void rng_destroy(struct virtio_dev *vd)
{
	free(container_of(vd, struct rng_dev, vdev));
}

static const struct virtio_dev_ops rng_ops = {
	.name = "rng",
	.device_id = VIRTIO_ID_RNG,
	.num_queues = 1,
	.max_queue_size = VIRTIO_RNG_QUEUE_SIZE,
	.queue_notify = rng_queue_notify,
	.destroy = rng_destroy,
	/* no device state beyond the transport's: save/restore are the transport's */
};

struct virtio_dev *virtio_rng_create(const struct guest_mem *mem, uint64_t base, uint32_t irq,
				     struct kal_err **err)
{
	struct rng_dev *d = xzalloc(sizeof(*d));

	(void)err;
	virtio_dev_init(&d->vdev, &rng_ops, mem, base, irq);
	return &d->vdev;
}
