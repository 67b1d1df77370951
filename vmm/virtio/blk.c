// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-blk on a host file: read, write, flush and get-id, with pread/pwrite
 * straight between the file and guest RAM (no host buffer sized by the guest).
 * Request layout: a 16-byte readable header, data, a 1-byte writable status.
 * A chain without that shape is a protocol violation (NEEDS_RESET); a request
 * out of the disk's range or of a type we do not serve only fails itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>

#include "../../lib/cleanup.h"
#include "../../lib/err.h"
#include "../../lib/xalloc.h"
#include "../snap.h"
#include "devices.h"

#define BLK_SECTOR  512ull
#define BLK_SEG_MAX (VIRTIO_BLK_QUEUE_SIZE - 2)

struct blk_dev {
	struct virtio_dev vdev;
	int fd;
	bool read_only;
	uint64_t bytes;
	char serial[VIRTIO_BLK_ID_BYTES];
};

/* pread/pwrite over the data part of the chain: buffers [first, last) limited to len bytes */
static int blk_rw(struct blk_dev *d, struct virtq_chain *c, unsigned int first, unsigned int last,
		  uint64_t len, uint64_t pos, bool to_guest)
{
	for (unsigned int i = first; i < last && len; i++) {
		uint8_t *p = c->buf[i].base;
		uint64_t n = c->buf[i].len < len ? c->buf[i].len : len;

		len -= n;
		while (n) {
			ssize_t r = to_guest ? pread(d->fd, p, n, (off_t)pos)
					     : pwrite(d->fd, p, n, (off_t)pos);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return -EIO; /* short file or I/O error: the request fails */
			p += r;
			pos += (uint64_t)r;
			n -= (uint64_t)r;
		}
	}
	return 0;
}

static int blk_handle(struct virtio_dev *vd, struct virtq_chain *c, uint32_t *written)
{
	struct blk_dev *d = container_of(vd, struct blk_dev, vdev);
	struct virtio_blk_outhdr hdr;
	uint8_t status = VIRTIO_BLK_S_OK;
	uint64_t len, pos, end;
	uint32_t type;

	if (c->out_len < sizeof(hdr) || c->in_len < 1) {
		virtio_dev_set_broken(vd, "request without header or status (%u+%u bytes)",
				      c->out_len, c->in_len);
		return -EINVAL;
	}
	virtq_chain_read(c, 0, &hdr, sizeof(hdr));
	type = le32toh(hdr.type);
	*written = 0;
	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		/* data: after the header (OUT) or before the status byte (IN) */
		len = type == VIRTIO_BLK_T_IN ? c->in_len - 1ull : c->out_len - sizeof(hdr);
		if (__builtin_mul_overflow(le64toh(hdr.sector), BLK_SECTOR, &pos) ||
		    __builtin_add_overflow(pos, len, &end) || end > d->bytes || len % BLK_SECTOR) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		if (type == VIRTIO_BLK_T_OUT && d->read_only) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		if (type == VIRTIO_BLK_T_IN) {
			if (blk_rw(d, c, c->nr_out, (unsigned int)c->nr_out + c->nr_in, len, pos,
				   true) < 0)
				status = VIRTIO_BLK_S_IOERR;
			else
				*written = (uint32_t)len;
		} else if (c->buf[0].len == sizeof(hdr)) {
			if (blk_rw(d, c, 1, c->nr_out, len, pos, false) < 0)
				status = VIRTIO_BLK_S_IOERR;
		} else {
			/* FIXME: data sharing the header's descriptor (Linux never does this) */
			status = VIRTIO_BLK_S_UNSUPP;
		}
		break;
	case VIRTIO_BLK_T_FLUSH:
		if (!d->read_only && fdatasync(d->fd) < 0)
			status = VIRTIO_BLK_S_IOERR;
		break;
	case VIRTIO_BLK_T_GET_ID:
		if (c->in_len - 1 < 1) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		*written = (uint32_t)virtq_chain_write(
		    c, 0, d->serial,
		    c->in_len - 1 < VIRTIO_BLK_ID_BYTES ? c->in_len - 1 : VIRTIO_BLK_ID_BYTES);
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	/* the status is the chain's last writable byte */
	virtq_chain_write(c, c->in_len - 1, &status, 1);
	*written += 1;
	return 0;
}

static int blk_queue_notify(struct virtio_dev *vd, unsigned int q)
{
	return virtio_dev_serve(vd, q, blk_handle);
}

static uint64_t blk_features(struct virtio_dev *vd)
{
	struct blk_dev *d = container_of(vd, struct blk_dev, vdev);

	return (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
	       (d->read_only ? 1ull << VIRTIO_BLK_F_RO : 0);
}

static int blk_save(struct virtio_dev *vd, struct snap_writer *w, struct kal_err **err)
{
	struct blk_dev *d = container_of(vd, struct blk_dev, vdev);

	snap_put_u64(w, d->bytes);
	return 0;
}

static int blk_restore(struct virtio_dev *vd, struct snap_reader *r, struct kal_err **err)
{
	struct blk_dev *d = container_of(vd, struct blk_dev, vdev);
	uint64_t bytes = snap_get_u64(r);

	if (!r->bad && bytes != d->bytes)
		return kal_err_set(err, EINVAL, "disk is %llu bytes, the saved one was %llu",
				   (unsigned long long)d->bytes, (unsigned long long)bytes);
	return 0;
}

static void blk_destroy(struct virtio_dev *vd)
{
	struct blk_dev *d = container_of(vd, struct blk_dev, vdev);

	if (d->fd >= 0)
		close(d->fd);
	free(d);
}

static const struct virtio_dev_ops blk_ops = {
	.name = "blk",
	.device_id = VIRTIO_ID_BLOCK,
	.num_queues = 1,
	.max_queue_size = VIRTIO_BLK_QUEUE_SIZE,
	.features = blk_features,
	.queue_notify = blk_queue_notify,
	.save = blk_save,
	.restore = blk_restore,
	.destroy = blk_destroy,
};

struct virtio_dev *virtio_blk_create(const struct guest_mem *mem, uint64_t base, uint32_t irq,
				     const char *path, bool read_only, const char *serial,
				     struct kal_err **err)
{
	_cleanup_close_ int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	struct virtio_blk_config cfg = { 0 };
	struct blk_dev *d;
	struct stat st;

	if (fd < 0)
		return kal_err_sys(err, errno, "disk `%s`", path), NULL;
	if (fstat(fd, &st) < 0)
		return kal_err_sys(err, errno, "disk `%s`: stat", path), NULL;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size % BLK_SECTOR)
		return kal_err_set(err, EINVAL,
				   "disk `%s`: not a regular file of whole 512-byte sectors", path),
		       NULL;
	d = xzalloc(sizeof(*d));
	d->fd = steal_fd(&fd);
	d->read_only = read_only;
	d->bytes = (uint64_t)st.st_size;
	if (serial) /* 20 bytes, NUL-padded, not NUL-terminated at full length (spec) */
		memcpy(d->serial, serial, strnlen(serial, sizeof(d->serial)));
	virtio_dev_init(&d->vdev, &blk_ops, mem, base, irq);
	cfg.capacity = htole64(d->bytes / BLK_SECTOR);
	cfg.seg_max = htole32(BLK_SEG_MAX);
	memcpy(d->vdev.config, &cfg, 16);
	d->vdev.config_size = 16; /* capacity, size_max, seg_max */
	return &d->vdev;
}
