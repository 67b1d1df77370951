// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-mmio (version 2) register file, status state machine and feature
 * negotiation, plus the generic device plumbing (NEEDS_RESET, interrupts,
 * save/restore of transport state).  Register accesses must be 32-bit and
 * aligned; anything else reads 0 and writes are dropped (reliability.md A3).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

#include "../../lib/err.h"
#include "../../lib/xalloc.h"
#include "../snap.h"
#include "mmio.h"

#define VIRTIO_MMIO_MAGIC   0x74726976 /* "virt" */
#define VIRTIO_SNAP_MAGIC   0x56444556 /* "VDEV" */
#define VIRTIO_SNAP_VERSION 1
#define STATUS_KNOWN                                                                               \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |      \
	 VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED | VIRTIO_CONFIG_S_NEEDS_RESET)

void virtio_dev_init(struct virtio_dev *vd, const struct virtio_dev_ops *ops,
		     const struct guest_mem *mem, uint64_t mmio_base, uint32_t irq)
{
	vd->ops = ops;
	vd->mem = mem;
	vd->mmio_base = mmio_base;
	vd->irq = irq;
	vd->irq_fd = -1;
	vd->io_out_fd = -1;
	for (unsigned int i = 0; i < VIRTIO_DEV_MAX_QUEUES; i++) {
		vd->kick_fd[i] = -1;
		vd->vq[i].max_size = i < ops->num_queues ? ops->max_queue_size : 0;
	}
	pthread_mutex_init(&vd->lock, NULL);
	vd->chain = xmalloc(sizeof(*vd->chain));
}

void virtio_dev_destroy(struct virtio_dev *vd)
{
	if (!vd)
		return;
	for (unsigned int i = 0; i < VIRTIO_DEV_MAX_QUEUES; i++)
		if (vd->kick_fd[i] >= 0)
			close(vd->kick_fd[i]);
	if (vd->irq_fd >= 0)
		close(vd->irq_fd);
	free(vd->chain);
	pthread_mutex_destroy(&vd->lock);
	if (vd->ops->destroy)
		vd->ops->destroy(vd);
}

static void virtio_dev_raise(struct virtio_dev *vd, uint32_t why)
{
	__atomic_fetch_or(&vd->isr, why, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&vd->irq_count, 1, __ATOMIC_RELAXED);
	if (vd->irq_fd >= 0) {
		uint64_t one = 1;

		/* an eventfd write only fails when the counter would overflow: nothing lost */
		if (write(vd->irq_fd, &one, sizeof(one)) < 0 && kal_log_ratelimit(&vd->rl, 5))
			kal_warn("virtio-%s: irqfd: %m", vd->ops->name);
	}
}

void virtio_dev_signal_used(struct virtio_dev *vd)
{
	/*
	 * No EVENT_IDX and VRING_AVAIL_F_NO_INTERRUPT is only a hint: always
	 * interrupt.  The used.idx store was a release, and the isr update is a
	 * full barrier, so the driver's handler sees the new used entries.
	 */
	virtio_dev_raise(vd, VIRTIO_MMIO_INT_VRING);
}

void virtio_dev_set_broken(struct virtio_dev *vd, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (kal_log_ratelimit(&vd->rl, 5))
		kal_warn("virtio-%s@0x%" PRIx64 ": %s; device needs reset", vd->ops->name,
			 vd->mmio_base, msg);
	if (vd->broken)
		return;
	vd->broken = true;
	vd->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	virtio_dev_raise(vd, VIRTIO_MMIO_INT_CONFIG);
}

static void virtio_dev_reset(struct virtio_dev *vd)
{
	for (unsigned int i = 0; i < VIRTIO_DEV_MAX_QUEUES; i++)
		virtq_reset(&vd->vq[i]);
	vd->status = 0;
	vd->driver_features = 0;
	vd->dev_features_sel = vd->drv_features_sel = vd->queue_sel = 0;
	__atomic_store_n(&vd->isr, 0, __ATOMIC_SEQ_CST);
	vd->broken = false;
	if (vd->ops->reset)
		vd->ops->reset(vd);
}

static uint64_t virtio_dev_features(struct virtio_dev *vd)
{
	uint64_t f = vd->ops->features ? vd->ops->features(vd) : 0;

	/* modern only; never INDIRECT_DESC / EVENT_IDX / PACKED (A10) */
	f &= ~((1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_RING_F_EVENT_IDX) |
	       (1ull << VIRTIO_F_RING_PACKED));
	return f | (1ull << VIRTIO_F_VERSION_1);
}

static bool live(const struct virtio_dev *vd)
{
	return (vd->status & VIRTIO_CONFIG_S_DRIVER_OK) && !vd->broken;
}

static void refuse(struct virtio_dev *vd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void refuse(struct virtio_dev *vd, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	if (!kal_log_ratelimit(&vd->rl, 5))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kal_warn("virtio-%s@0x%" PRIx64 ": %s", vd->ops->name, vd->mmio_base, msg);
}

static void status_write(struct virtio_dev *vd, uint32_t v)
{
	uint32_t old = vd->status, add = v & ~old;

	if (v == 0) {
		virtio_dev_reset(vd);
		return;
	}
	/* NEEDS_RESET is the device's to set; the driver may only echo it back */
	if ((v & ~STATUS_KNOWN) || (add & VIRTIO_CONFIG_S_NEEDS_RESET) || (old & ~v)) {
		refuse(vd, "refused status 0x%x (was 0x%x)", v, old);
		return;
	}
	if (((add & VIRTIO_CONFIG_S_DRIVER) && !(v & VIRTIO_CONFIG_S_ACKNOWLEDGE)) ||
	    ((add & VIRTIO_CONFIG_S_FEATURES_OK) && !(v & VIRTIO_CONFIG_S_DRIVER)) ||
	    ((add & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK))) {
		refuse(vd, "refused out-of-order status 0x%x (was 0x%x)", v, old);
		return;
	}
	if (add & VIRTIO_CONFIG_S_FEATURES_OK) {
		uint64_t offered = virtio_dev_features(vd);

		if (!(vd->driver_features & (1ull << VIRTIO_F_VERSION_1)) ||
		    (vd->driver_features & ~offered)) {
			/* the driver reads FEATURES_OK back as clear and gives up */
			refuse(vd,
			       "driver features 0x%" PRIx64 " not acceptable (offered 0x%" PRIx64
			       ", VERSION_1 required)",
			       vd->driver_features, offered);
			v &= ~VIRTIO_CONFIG_S_FEATURES_OK;
		}
	}
	vd->status = v;
	if (add & VIRTIO_CONFIG_S_DRIVER_OK && vd->ops->activate) {
		struct kal_err *err = NULL;

		if (vd->ops->activate(vd, &err) < 0) {
			virtio_dev_set_broken(vd, "activate: %s", err ? err->msg : "failed");
			kal_err_free(err);
		}
	}
}

/* queue registers are writable only while configuring: FEATURES_OK && !DRIVER_OK */
static struct virtq *queue_for_config(struct virtio_dev *vd, uint32_t reg)
{
	struct virtq *q;

	if ((vd->status & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK)) !=
	    VIRTIO_CONFIG_S_FEATURES_OK) {
		refuse(vd, "queue register 0x%x written outside setup (status 0x%x)", reg,
		       vd->status);
		return NULL;
	}
	if (vd->queue_sel >= vd->ops->num_queues) {
		refuse(vd, "queue register 0x%x for absent queue %u", reg, vd->queue_sel);
		return NULL;
	}
	q = &vd->vq[vd->queue_sel];
	if (q->ready && reg != VIRTIO_MMIO_QUEUE_READY) {
		refuse(vd, "queue %u reconfigured while ready", vd->queue_sel);
		return NULL;
	}
	return q;
}

static void set_lo(uint64_t *p, uint32_t v)
{
	*p = (*p & 0xffffffff00000000ull) | v;
}

static void set_hi(uint64_t *p, uint32_t v)
{
	*p = (*p & 0xffffffffull) | ((uint64_t)v << 32);
}

static uint32_t reg_read(struct virtio_dev *vd, uint64_t off)
{
	uint64_t f;

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return vd->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (vd->dev_features_sel > 1)
			return 0;
		f = virtio_dev_features(vd);
		return (uint32_t)(f >> (32 * vd->dev_features_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return vd->queue_sel < vd->ops->num_queues ? vd->vq[vd->queue_sel].max_size : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return vd->queue_sel < vd->ops->num_queues ? vd->vq[vd->queue_sel].ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return __atomic_load_n(&vd->isr, __ATOMIC_SEQ_CST);
	case VIRTIO_MMIO_STATUS:
		return vd->status;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return 0; /* config never changes under the driver */
	default:
		return 0; /* write-only and reserved registers read as 0 */
	}
}

static void reg_write(struct virtio_dev *vd, uint64_t off, uint32_t v, int *kick)
{
	struct virtq *q;

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		vd->dev_features_sel = v;
		return;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		vd->drv_features_sel = v;
		return;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if ((vd->status & (VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK)) !=
			VIRTIO_CONFIG_S_DRIVER ||
		    vd->drv_features_sel > 1) {
			refuse(vd, "driver features written in status 0x%x", vd->status);
			return;
		}
		if (vd->drv_features_sel)
			set_hi(&vd->driver_features, v);
		else
			set_lo(&vd->driver_features, v);
		return;
	case VIRTIO_MMIO_QUEUE_SEL:
		vd->queue_sel = v; /* out of range is allowed: reads 0, writes ignored */
		return;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		if (v < vd->ops->num_queues)
			*kick = (int)v;
		return;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		__atomic_fetch_and(&vd->isr, ~v, __ATOMIC_SEQ_CST);
		return;
	case VIRTIO_MMIO_STATUS:
		status_write(vd, v);
		return;
	case VIRTIO_MMIO_QUEUE_NUM:
	case VIRTIO_MMIO_QUEUE_READY:
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		q = queue_for_config(vd, (uint32_t)off);
		if (!q)
			return;
		break;
	default:
		refuse(vd, "write 0x%x to read-only or reserved register 0x%" PRIx64, v, off);
		return;
	}
	switch (off) {
	case VIRTIO_MMIO_QUEUE_NUM:
		q->size = v > 0xffff ? 0 : (uint16_t)v; /* checked at QueueReady */
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (v == 0) {
			q->ready = false;
		} else if (!q->ready && virtq_setup(q, vd->mem) < 0) {
			/* A1/A2: the queue stays unusable, the driver has to reset */
			virtio_dev_set_broken(vd, "queue %u: %s", vd->queue_sel, q->err);
		}
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
		set_lo(&q->desc_gpa, v);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		set_hi(&q->desc_gpa, v);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
		set_lo(&q->avail_gpa, v);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		set_hi(&q->avail_gpa, v);
		break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
		set_lo(&q->used_gpa, v);
		break;
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		set_hi(&q->used_gpa, v);
		break;
	}
}

static void config_access(struct virtio_dev *vd, uint64_t off, void *data, uint32_t len,
			  bool is_write)
{
	/* natural widths and alignment, wholly inside the config space (A3) */
	bool ok = (len == 1 || len == 2 || len == 4) && !(off & (len - 1)) &&
		  off < vd->config_size && len <= vd->config_size - off;

	if (!ok) {
		refuse(vd, "config %s of %u bytes at 0x%" PRIx64 " refused",
		       is_write ? "write" : "read", len, off);
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	if (is_write) {
		if (vd->ops->write_config)
			vd->ops->write_config(vd, off, data, len);
		return;
	}
	if (vd->ops->read_config)
		vd->ops->read_config(vd, off, data, len);
	else
		memcpy(data, vd->config + off, len);
}

void virtio_mmio_access(void *opaque, uint64_t off, void *data, uint32_t len, bool is_write)
{
	struct virtio_dev *vd = opaque;
	int kick = -1;

	pthread_mutex_lock(&vd->lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		config_access(vd, off - VIRTIO_MMIO_CONFIG, data, len, is_write);
	} else if (len != 4 || (off & 3)) {
		refuse(vd, "register access of %u bytes at 0x%" PRIx64 " refused", len, off);
		if (!is_write)
			memset(data, 0, len);
	} else if (is_write) {
		uint32_t v;

		memcpy(&v, data, 4);
		reg_write(vd, off, v, &kick);
	} else {
		uint32_t v = reg_read(vd, off);

		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&vd->lock);

	if (kick < 0)
		return;
	if (vd->kick_fd[kick] >= 0) {
		uint64_t one = 1;

		/* hand the work to the I/O thread, as an ioeventfd would have */
		if (write(vd->kick_fd[kick], &one, sizeof(one)) < 0 &&
		    kal_log_ratelimit(&vd->rl, 5))
			kal_warn("virtio-%s: kick: %m", vd->ops->name);
		return;
	}
	/* no I/O thread (unit tests): serve inline until drained */
	while (virtio_dev_notify(vd, (unsigned int)kick) > 0)
		;
}

int virtio_dev_notify(struct virtio_dev *vd, unsigned int q)
{
	int r = 0;

	if (q >= vd->ops->num_queues)
		return 0;
	pthread_mutex_lock(&vd->lock);
	if (live(vd) && vd->vq[q].ready)
		r = vd->ops->queue_notify(vd, q);
	pthread_mutex_unlock(&vd->lock);
	return r > 0;
}

int virtio_dev_serve(struct virtio_dev *vd, unsigned int qi,
		     int (*handle)(struct virtio_dev *vd, struct virtq_chain *c, uint32_t *written))
{
	struct virtq *q = &vd->vq[qi];
	unsigned int n;
	bool used = false;
	int r = 0;

	for (n = 0; n < q->size; n++) {
		uint32_t written = 0;

		r = virtq_pop(q, vd->chain);
		if (r < 0) {
			virtio_dev_set_broken(vd, "queue %u: %s", qi, q->err);
			break;
		}
		if (r == 0)
			break;
		r = handle(vd, vd->chain, &written);
		if (r < 0)
			break;
		virtq_push(q, vd->chain->head, written);
		used = true;
	}
	if (used)
		virtio_dev_signal_used(vd);
	if (r < 0)
		return -EINVAL;
	/* budget spent with chains left: yield to other devices, come back on a re-kick */
	return n == q->size && virtq_pending(q);
}

bool virtio_dev_io_ready(struct virtio_dev *vd)
{
	bool keep;

	pthread_mutex_lock(&vd->lock);
	keep = vd->ops->io_ready(vd);
	pthread_mutex_unlock(&vd->lock);
	return keep;
}

int virtio_dev_save(struct virtio_dev *vd, struct snap_writer *w, struct kal_err **err)
{
	struct snap_writer dev = { 0 };
	int r = 0;

	pthread_mutex_lock(&vd->lock);
	snap_put_u32(w, VIRTIO_SNAP_MAGIC);
	snap_put_u32(w, VIRTIO_SNAP_VERSION);
	snap_put_u32(w, vd->ops->device_id);
	snap_put_u32(w, vd->status);
	snap_put_u64(w, vd->driver_features);
	snap_put_u32(w, vd->dev_features_sel);
	snap_put_u32(w, vd->drv_features_sel);
	snap_put_u32(w, vd->queue_sel);
	snap_put_u32(w, __atomic_load_n(&vd->isr, __ATOMIC_SEQ_CST));
	snap_put_u8(w, vd->broken);
	snap_put_u32(w, vd->ops->num_queues);
	for (unsigned int i = 0; i < vd->ops->num_queues; i++) {
		const struct virtq *q = &vd->vq[i];

		snap_put_u16(w, q->size);
		snap_put_u8(w, q->ready);
		snap_put_u64(w, q->desc_gpa);
		snap_put_u64(w, q->avail_gpa);
		snap_put_u64(w, q->used_gpa);
		snap_put_u16(w, q->last_avail);
		snap_put_u16(w, q->next_used);
	}
	if (vd->ops->save)
		r = vd->ops->save(vd, &dev, err);
	pthread_mutex_unlock(&vd->lock);
	if (r < 0) {
		snap_writer_free(&dev);
		return kal_err_wrap(err, "save virtio-%s", vd->ops->name);
	}
	snap_put_u32(w, (uint32_t)dev.len);
	if (dev.len)
		snap_put(w, dev.buf, dev.len);
	snap_writer_free(&dev);
	return 0;
}

static int restore_locked(struct virtio_dev *vd, struct snap_reader *r, struct kal_err **err)
{
	uint32_t magic, version, id, nq, isr, dev_len;
	struct snap_reader dev;

	magic = snap_get_u32(r);
	version = snap_get_u32(r);
	id = snap_get_u32(r);
	if (r->bad || magic != VIRTIO_SNAP_MAGIC)
		return kal_err_set(err, EINVAL, "not a virtio device record");
	if (version != VIRTIO_SNAP_VERSION)
		return kal_err_set(err, EINVAL, "record version %u not supported", version);
	if (id != vd->ops->device_id)
		return kal_err_set(err, EINVAL, "record is for device id %u, not %u", id,
				   vd->ops->device_id);
	vd->status = snap_get_u32(r);
	vd->driver_features = snap_get_u64(r);
	vd->dev_features_sel = snap_get_u32(r);
	vd->drv_features_sel = snap_get_u32(r);
	vd->queue_sel = snap_get_u32(r);
	isr = snap_get_u32(r);
	vd->broken = snap_get_u8(r) != 0;
	nq = snap_get_u32(r);
	if (r->bad)
		return kal_err_set(err, EINVAL, "record truncated");
	if (vd->status & ~STATUS_KNOWN)
		return kal_err_set(err, EINVAL, "invalid status 0x%x", vd->status);
	if (vd->driver_features & ~virtio_dev_features(vd))
		return kal_err_set(err, EINVAL, "features 0x%" PRIx64 " were never offered",
				   vd->driver_features);
	if (nq != vd->ops->num_queues)
		return kal_err_set(err, EINVAL, "record has %u queues, device has %u", nq,
				   vd->ops->num_queues);
	__atomic_store_n(&vd->isr, isr & (VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG),
			 __ATOMIC_SEQ_CST);
	for (unsigned int i = 0; i < nq; i++) {
		struct virtq *q = &vd->vq[i];
		bool ready;

		virtq_reset(q);
		q->size = snap_get_u16(r);
		ready = snap_get_u8(r);
		q->desc_gpa = snap_get_u64(r);
		q->avail_gpa = snap_get_u64(r);
		q->used_gpa = snap_get_u64(r);
		q->last_avail = snap_get_u16(r);
		q->next_used = snap_get_u16(r);
		if (r->bad)
			return kal_err_set(err, EINVAL, "record truncated");
		/* the file is as untrusted as the guest: validate as at QueueReady (A2) */
		if (ready && virtq_setup(q, vd->mem) < 0)
			return kal_err_set(err, EINVAL, "queue %u: %s", i, q->err);
	}
	dev_len = snap_get_u32(r);
	if (r->bad || dev_len > r->len - r->off)
		return kal_err_set(err, EINVAL, "record truncated");
	dev = (struct snap_reader){ .buf = r->buf + r->off, .len = dev_len };
	r->off += dev_len;
	if (vd->ops->restore && vd->ops->restore(vd, &dev, err) < 0)
		return -1;
	if (dev.bad)
		return kal_err_set(err, EINVAL, "device state truncated");
	return 0;
}

int virtio_dev_restore(struct virtio_dev *vd, struct snap_reader *r, struct kal_err **err)
{
	int ret;

	pthread_mutex_lock(&vd->lock);
	ret = restore_locked(vd, r, err);
	if (ret < 0) {
		/* never leave a half-restored device live */
		for (unsigned int i = 0; i < VIRTIO_DEV_MAX_QUEUES; i++)
			virtq_reset(&vd->vq[i]);
		vd->status = 0;
		vd->broken = false;
	}
	pthread_mutex_unlock(&vd->lock);
	if (ret < 0)
		return kal_err_wrap(err, "restore virtio-%s", vd->ops->name);
	return 0;
}

int virtio_dev_cmdline(const struct virtio_dev *vd, char *buf, size_t len)
{
	return snprintf(buf, len, "virtio_mmio.device=4K@0x%" PRIx64 ":%u", vd->mmio_base, vd->irq);
}
