// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-pmem for read-only layer images.  The file is opened O_RDONLY and
 * mapped PROT_READ; the VMM registers the window as a KVM_MEM_READONLY slot,
 * so a guest store exits to the VMM and is dropped, and the window is a
 * GUEST_MEM_NO_DEVICE_WRITE region, so no device writes into it on the
 * guest's behalf.  Nothing the guest does can reach the host file (B1).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <linux/virtio_ids.h>
#include <linux/virtio_pmem.h>

#include "../../lib/cleanup.h"
#include "../../lib/err.h"
#include "../../lib/xalloc.h"
#include "../snap.h"
#include "devices.h"

struct pmem_dev {
	struct virtio_dev vdev;
	void *map;
	uint64_t gpa, size;
};

static int pmem_handle(struct virtio_dev *vd, struct virtq_chain *c, uint32_t *written)
{
	struct virtio_pmem_req req;
	struct virtio_pmem_resp resp = { .ret = 0 };

	if (c->out_len < sizeof(req) || c->in_len < sizeof(resp)) {
		virtio_dev_set_broken(vd, "flush request of %u+%u bytes is malformed", c->out_len,
				      c->in_len);
		return -EINVAL;
	}
	virtq_chain_read(c, 0, &req, sizeof(req));
	if (le32toh(req.type) != VIRTIO_PMEM_REQ_TYPE_FLUSH)
		resp.ret = htole32(1); /* any non-zero value is an error to the driver */
	/* a read-only image has nothing to flush */
	*written = (uint32_t)virtq_chain_write(c, 0, &resp, sizeof(resp));
	return 0;
}

static int pmem_queue_notify(struct virtio_dev *vd, unsigned int q)
{
	return virtio_dev_serve(vd, q, pmem_handle);
}

static int pmem_save(struct virtio_dev *vd, struct snap_writer *w, struct kal_err **err)
{
	struct pmem_dev *d = container_of(vd, struct pmem_dev, vdev);

	snap_put_u64(w, d->gpa);
	snap_put_u64(w, d->size);
	return 0;
}

static int pmem_restore(struct virtio_dev *vd, struct snap_reader *r, struct kal_err **err)
{
	struct pmem_dev *d = container_of(vd, struct pmem_dev, vdev);
	uint64_t gpa = snap_get_u64(r), size = snap_get_u64(r);

	if (!r->bad && (gpa != d->gpa || size != d->size))
		return kal_err_set(
		    err, EINVAL,
		    "window [0x%llx, +0x%llx) differs from the saved [0x%llx, +0x%llx)",
		    (unsigned long long)d->gpa, (unsigned long long)d->size,
		    (unsigned long long)gpa, (unsigned long long)size);
	return 0;
}

static void pmem_destroy(struct virtio_dev *vd)
{
	struct pmem_dev *d = container_of(vd, struct pmem_dev, vdev);

	if (d->map)
		munmap(d->map, d->size);
	free(d);
}

static const struct virtio_dev_ops pmem_ops = {
	.name = "pmem",
	.device_id = VIRTIO_ID_PMEM,
	.num_queues = 1,
	.max_queue_size = VIRTIO_PMEM_QUEUE_SIZE,
	.queue_notify = pmem_queue_notify,
	.save = pmem_save,
	.restore = pmem_restore,
	.destroy = pmem_destroy,
};

struct virtio_dev *virtio_pmem_create(const struct guest_mem *mem, uint64_t base, uint32_t irq,
				      const char *path, uint64_t gpa, struct kal_err **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct virtio_pmem_config cfg;
	struct pmem_dev *d;
	struct stat st;
	void *map;

	if (fd < 0)
		return kal_err_sys(err, errno, "pmem `%s`", path), NULL;
	if (fstat(fd, &st) < 0)
		return kal_err_sys(err, errno, "pmem `%s`: stat", path), NULL;
	if (!S_ISREG(st.st_mode) || st.st_size == 0 || (uint64_t)st.st_size % VIRTIO_PMEM_ALIGN)
		return kal_err_set(err, EINVAL,
				   "pmem `%s`: size %lld is not a non-zero multiple of 2 MiB", path,
				   (long long)st.st_size),
		       NULL;
	if (gpa % VIRTIO_PMEM_ALIGN)
		return kal_err_set(err, EINVAL, "pmem `%s`: window 0x%llx not 2 MiB aligned", path,
				   (unsigned long long)gpa),
		       NULL;
	/* PROT_READ: even a VMM bug cannot write through this mapping */
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return kal_err_sys(err, errno, "pmem `%s`: mmap", path), NULL;
	d = xzalloc(sizeof(*d));
	d->map = map;
	d->gpa = gpa;
	d->size = (uint64_t)st.st_size;
	virtio_dev_init(&d->vdev, &pmem_ops, mem, base, irq);
	cfg.start = htole64(gpa);
	cfg.size = htole64(d->size);
	memcpy(d->vdev.config, &cfg, sizeof(cfg));
	d->vdev.config_size = sizeof(cfg);
	return &d->vdev;
}

void virtio_pmem_window(struct virtio_dev *vd, uint64_t *gpa, uint64_t *size, void **host)
{
	struct pmem_dev *d = container_of(vd, struct pmem_dev, vdev);

	*gpa = d->gpa;
	*size = d->size;
	*host = d->map;
}
