// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Host side of the shared-memory agent channel: the region, the doorbells,
 * the bridge between the rings and the agent's host fds, save/restore.
 * Everything the guest can write (indices, wait flags, the header) is read
 * once per use through guest/chan.h and validated there; the host's own
 * indices live in struct chan_ring and are only ever written to the region.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "../guest/chan.h"
#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "chan.h"
#include "snap.h"

#define CHAN_SNAP_MAGIC 0x4e414843u /* "CHAN" */

struct vmm_chan {
	pthread_mutex_t lock; /* I/O thread vs the save/restore hook on a vCPU thread */
	uint8_t *mem;
	int mem_fd;
	int kick_fd, reset_fd; /* the doorbell page's KICK and RESET (ioeventfds) */
	int bell_rd, bell_wr;  /* host -> guest doorbell: bell_rd is the `kal.agent` port's input */
	int in_fd, out_fd;     /* non-blocking descriptions of the agent's host fds, or -1 */
	int own_in, own_out;   /* our reopens of them, closed on destroy, or -1 */
	int epoll_fd;
	void *epoll_tag;
	bool in_poll, out_poll;	   /* epoll can watch it (false: a regular file, always ready) */
	bool in_reg, out_reg;	   /* in the epoll set now */
	uint32_t in_ev, out_ev;	   /* events registered */
	bool in_eof, out_dead;	   /* host input ended / host reader gone (bytes are dropped) */
	bool broken;		   /* a ring broke: serve nothing until RESET */
	struct chan_ring g2h;	   /* ring 0, we consume */
	struct chan_ring h2g;	   /* ring 1, we produce */
	uint32_t out_len, out_off; /* guest bytes waiting for out_fd: out_buf[out_off, out_len) */
	uint32_t in_len, in_off;   /* host bytes waiting for ring space: in_buf[in_off, in_len) */
	uint64_t poll_ns;	   /* keep polling ring 0 this long after going idle */
	unsigned long dropped;	   /* bytes lost to a gone reader or a reset */
	unsigned long bells;	   /* host -> guest doorbells rung */
	struct kal_ratelimit rl;
	uint8_t out_buf[VMM_CHAN_BUF];
	uint8_t in_buf[VMM_CHAN_BUF];
};

static void chan_write_hdr(struct vmm_chan *c, uint32_t status)
{
	struct chan_hdr h = {
		.magic = CHAN_MAGIC,
		.version = CHAN_VERSION,
		.ring_size = CHAN_RING_SIZE,
		.status = status,
		.g2h_ctl = CHAN_G2H_CTL,
		.g2h_data = CHAN_G2H_DATA,
		.h2g_ctl = CHAN_H2G_CTL,
		.h2g_data = CHAN_H2G_DATA,
	};

	memcpy(c->mem, &h, sizeof(h));
}

/* Our indices into the region (the guest may have scribbled over them: ours win). */
static void chan_publish_own(struct vmm_chan *c)
{
	__atomic_store_n(&c->g2h.ctl->tail, c->g2h.pos, __ATOMIC_RELEASE);
	__atomic_store_n(&c->h2g.ctl->head, c->h2g.pos, __ATOMIC_RELEASE);
}

/*
 * A non-blocking file description for a caller's fd: pipes and terminals
 * are reopened through /proc (the caller's flags stay as they were),
 * sockets are switched to O_NONBLOCK, regular files never block.
 */
static int chan_nonblock(int fd, int mode, int *own, const char *what, struct kal_err **err)
{
	struct stat st;
	char path[64];
	int fl;

	*own = -1;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		return kal_err_sys(err, errno, "agent %s fd %d", what, fd);
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
		return fd;
	if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		*own = open(path, mode | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (*own >= 0)
			return *own;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return kal_err_sys(err, errno, "agent %s fd %d: cannot make it non-blocking", what,
				   fd);
	return fd;
}

void vmm_chan_destroy(struct vmm_chan *c)
{
	if (!c)
		return;
	if (c->mem)
		munmap(c->mem, CHAN_REGION_SIZE);
	if (c->mem_fd >= 0)
		close(c->mem_fd);
	if (c->kick_fd >= 0)
		close(c->kick_fd);
	if (c->reset_fd >= 0)
		close(c->reset_fd);
	if (c->bell_rd >= 0)
		close(c->bell_rd);
	if (c->bell_wr >= 0)
		close(c->bell_wr);
	if (c->own_in >= 0)
		close(c->own_in);
	if (c->own_out >= 0)
		close(c->own_out);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

struct vmm_chan *vmm_chan_create(int in_fd, int out_fd, unsigned int poll_us, struct kal_err **err)
{
	struct vmm_chan *c = xzalloc(sizeof(*c));
	int bell[2];

	pthread_mutex_init(&c->lock, NULL);
	c->poll_ns =
	    (uint64_t)(poll_us < VMM_CHAN_POLL_MAX_US ? poll_us : VMM_CHAN_POLL_MAX_US) * 1000;
	c->mem_fd = c->kick_fd = c->reset_fd = c->bell_rd = c->bell_wr = -1;
	c->in_fd = c->out_fd = c->own_in = c->own_out = c->epoll_fd = -1;
	c->mem_fd = memfd_create("kal-agent-chan", MFD_CLOEXEC);
	if (c->mem_fd < 0) {
		kal_err_sys(err, errno, "agent channel: memfd_create");
		goto fail;
	}
	if (ftruncate(c->mem_fd, CHAN_REGION_SIZE) < 0) {
		kal_err_sys(err, errno, "agent channel: ftruncate");
		goto fail;
	}
	c->mem = mmap(NULL, CHAN_REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, c->mem_fd, 0);
	if (c->mem == MAP_FAILED) {
		c->mem = NULL;
		kal_err_sys(err, errno, "agent channel: mmap");
		goto fail;
	}
	c->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->reset_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->kick_fd < 0 || c->reset_fd < 0) {
		kal_err_sys(err, errno, "agent channel: eventfd");
		goto fail;
	}
	if (pipe2(bell, O_CLOEXEC | O_NONBLOCK) < 0) {
		kal_err_sys(err, errno, "agent channel: pipe");
		goto fail;
	}
	c->bell_rd = bell[0];
	c->bell_wr = bell[1];
	c->in_fd = chan_nonblock(in_fd, O_RDONLY, &c->own_in, "input", err);
	if (in_fd >= 0 && c->in_fd < 0)
		goto fail;
	c->out_fd = chan_nonblock(out_fd, O_WRONLY, &c->own_out, "output", err);
	if (out_fd >= 0 && c->out_fd < 0)
		goto fail;
	c->in_eof = c->in_fd < 0;
	c->out_dead = c->out_fd < 0;
	chan_rings_init(c->mem, 1, &c->h2g, &c->g2h);
	chan_write_hdr(c, CHAN_STATUS_OK);
	return c;
fail:
	vmm_chan_destroy(c);
	return NULL;
}

void *vmm_chan_region(struct vmm_chan *c)
{
	return c->mem;
}

int vmm_chan_bell_fd(const struct vmm_chan *c)
{
	return c->bell_rd;
}

int vmm_chan_cmdline(char *buf, size_t len)
{
	return snprintf(buf, len, CHAN_CMDLINE_KEY "0x%llx", (unsigned long long)CHAN_GPA);
}

int vmm_chan_attach(struct vmm_chan *c, int vm_fd, uint32_t slot, struct kal_err **err)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = CHAN_GPA,
		.memory_size = CHAN_REGION_SIZE,
		.userspace_addr = (uint64_t)(uintptr_t)c->mem,
	};
	struct {
		int fd;
		uint32_t off;
	} bells[] = { { c->kick_fd, CHAN_DOORBELL_KICK }, { c->reset_fd, CHAN_DOORBELL_RESET } };

	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return kal_err_sys(err, errno,
				   "agent channel: KVM_SET_USER_MEMORY_REGION (slot %u)", slot);
	for (unsigned int i = 0; i < ARRAY_SIZE(bells); i++) {
		struct kvm_ioeventfd io = {
			.addr = CHAN_DOORBELL_GPA + bells[i].off,
			.len = 4,
			.fd = bells[i].fd,
		};

		/* without it the store exits to the vCPU thread (vmm_chan_mmio): slower, same result */
		if (ioctl(vm_fd, KVM_IOEVENTFD, &io) < 0)
			kal_debug("agent channel: KVM_IOEVENTFD: %m; doorbells take the MMIO exit");
	}
	return 0;
}

static void chan_signal(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0) {
		/* only fails when the counter is saturated: a signal is pending anyway */
	}
}

bool vmm_chan_mmio(struct vmm_chan *c, uint64_t gpa, void *data, uint32_t len, bool is_write)
{
	uint64_t off;

	if (!c || gpa < CHAN_DOORBELL_GPA || gpa - CHAN_DOORBELL_GPA >= CHAN_DOORBELL_SIZE)
		return false;
	off = gpa - CHAN_DOORBELL_GPA;
	if (!is_write) {
		memset(data, 0, len); /* a write-only page */
		return true;
	}
	if (off == CHAN_DOORBELL_KICK)
		chan_signal(c->kick_fd);
	else if (off == CHAN_DOORBELL_RESET)
		chan_signal(c->reset_fd);
	return true;
}

/* Host -> guest doorbell: one byte on the `kal.agent` port.  A full pipe already wakes it. */
static void chan_bell(struct vmm_chan *c)
{
	static const uint8_t b = '!';

	if (write(c->bell_wr, &b, 1) == 1)
		c->bells++;
}

static void chan_break(struct vmm_chan *c, const struct chan_ring *r)
{
	c->broken = true;
	chan_write_hdr(c, CHAN_STATUS_BROKEN);
	if (!kal_log_ratelimit(&c->rl, 5))
		return;
	if (r->producer)
		kal_warn("vmm: agent channel: ring 1 (host to guest): guest tail 0x%" PRIx32
			 " is not within the %u bytes before head 0x%" PRIx32
			 "; channel stopped until the guest resets it",
			 r->bad, r->size, r->pos);
	else
		kal_warn("vmm: agent channel: ring 0 (guest to host): guest head 0x%" PRIx32
			 " is %" PRIu32 " bytes past tail 0x%" PRIx32
			 " (the ring holds %u); channel stopped until the guest resets it",
			 r->bad, r->bad - r->pos, r->pos, r->size);
}

static void chan_reset(struct vmm_chan *c)
{
	c->dropped += (c->out_len - c->out_off) + (c->in_len - c->in_off);
	c->out_len = c->out_off = c->in_len = c->in_off = 0;
	memset(c->mem + CHAN_G2H_CTL, 0, sizeof(struct chan_ctl));
	memset(c->mem + CHAN_H2G_CTL, 0, sizeof(struct chan_ctl));
	chan_rings_init(c->mem, 1, &c->h2g, &c->g2h);
	c->broken = false;
	chan_write_hdr(c, CHAN_STATUS_OK);
	kal_debug("agent channel: reset by the guest");
}

/* Write buffered guest bytes to the host; true if any moved (or were dropped). */
static bool chan_flush_out(struct vmm_chan *c)
{
	bool moved = false;

	while (c->out_off < c->out_len) {
		ssize_t n = c->out_dead ? -1
					: write(c->out_fd, c->out_buf + c->out_off,
						c->out_len - c->out_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && !c->out_dead)
			break;
		if (n <= 0) {
			/* the reader is gone or failed: drop, never block the guest's ring */
			if (!c->out_dead && kal_log_ratelimit(&c->rl, 5))
				kal_warn(
				    "vmm: agent channel: host output: %s; dropping guest bytes",
				    n < 0 ? strerror(errno) : "wrote nothing");
			c->out_dead = true;
			c->dropped += c->out_len - c->out_off;
			c->out_off = c->out_len;
			moved = true;
			break;
		}
		c->out_off += (uint32_t)n;
		moved = true;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	return moved;
}

/* Read host input into in_buf when it is empty; false when nothing can come now. */
static bool chan_fill_in(struct vmm_chan *c)
{
	ssize_t n;

	if (c->in_len || c->in_eof)
		return false;
	n = read(c->in_fd, c->in_buf, sizeof(c->in_buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	if (n <= 0) {
		if (n < 0 && kal_log_ratelimit(&c->rl, 5))
			kal_warn("vmm: agent channel: host input: %s", strerror(errno));
		c->in_eof = true;
		return false;
	}
	c->in_off = 0;
	c->in_len = (uint32_t)n;
	return true;
}

/*
 * An agent fd is in the epoll set only while we want an event from it:
 * registered with no events, a pipe whose other end closed would still
 * report HUP/ERR, level-triggered, forever.
 */
static void chan_arm_one(struct vmm_chan *c, int fd, bool pollable, bool *reg, uint32_t *cur,
			 uint32_t want)
{
	struct epoll_event ev = { .events = want, .data.ptr = c->epoll_tag };

	if (!pollable || c->epoll_fd < 0)
		return;
	if (!want) {
		if (*reg && epoll_ctl(c->epoll_fd, EPOLL_CTL_DEL, fd, NULL) < 0 &&
		    kal_log_ratelimit(&c->rl, 5))
			kal_warn("vmm: agent channel: epoll: %m");
		*reg = false;
		return;
	}
	if (*reg && *cur == want)
		return;
	if (epoll_ctl(c->epoll_fd, *reg ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) == 0) {
		*reg = true;
		*cur = want;
	} else if (kal_log_ratelimit(&c->rl, 5)) {
		kal_warn("vmm: agent channel: epoll: %m");
	}
}

/* Watch host input only while we can take it, host output only while it is stuck. */
static void chan_arm(struct vmm_chan *c)
{
	uint32_t want_in = !c->broken && !c->in_eof && c->in_len == 0 ? EPOLLIN : 0;
	uint32_t want_out = !c->broken && !c->out_dead && c->out_len > 0 ? EPOLLOUT : 0;

	if (c->in_fd >= 0 && c->in_fd == c->out_fd) {
		/* one socket both ways: one registration */
		chan_arm_one(c, c->in_fd, c->in_poll, &c->in_reg, &c->in_ev, want_in | want_out);
		return;
	}
	if (c->in_fd >= 0)
		chan_arm_one(c, c->in_fd, c->in_poll, &c->in_reg, &c->in_ev, want_in);
	if (c->out_fd >= 0)
		chan_arm_one(c, c->out_fd, c->out_poll, &c->out_reg, &c->out_ev, want_out);
}

static uint64_t chan_drain(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static uint64_t chan_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Poll ring 0 for a while before sleeping, with data_wait clear: a guest
 * that answers quickly then neither rings the doorbell (no exit) nor waits
 * for this thread to be woken.  True when there is something to read (or
 * the ring broke: the caller finds out).
 */
static bool chan_poll(struct vmm_chan *c)
{
	uint64_t t0 = chan_now_ns();
	unsigned int n = 0;

	for (;;) {
		if (chan_ring_avail(&c->g2h) != 0)
			return true;
		__builtin_ia32_pause();
		if (++n % 64 == 0 && chan_now_ns() - t0 >= c->poll_ns)
			return false;
	}
}

void vmm_chan_service(struct vmm_chan *c)
{
	unsigned int budget = VMM_CHAN_BUDGET;
	long n;

	pthread_mutex_lock(&c->lock);
	chan_drain(c->kick_fd);
	if (chan_drain(c->reset_fd))
		chan_reset(c);
	while (!c->broken && budget) {
		bool moved = false;

		budget--;
		/* guest -> host */
		if (c->out_len == 0) {
			n = chan_ring_read(&c->g2h, c->out_buf, sizeof(c->out_buf));
			if (n < 0) {
				chan_break(c, &c->g2h);
				break;
			}
			if (n > 0) {
				c->out_len = (uint32_t)n;
				c->out_off = 0;
				moved = true;
				if (chan_ring_wake_peer(&c->g2h))
					chan_bell(c);
			}
		}
		if (c->out_len && chan_flush_out(c))
			moved = true;
		/* host -> guest */
		if (chan_fill_in(c))
			moved = true;
		if (c->in_len) {
			n = chan_ring_write(&c->h2g, c->in_buf + c->in_off, c->in_len - c->in_off);
			if (n < 0) {
				chan_break(c, &c->h2g);
				break;
			}
			if (n > 0) {
				c->in_off += (uint32_t)n;
				if (c->in_off == c->in_len)
					c->in_off = c->in_len = 0;
				moved = true;
				if (chan_ring_wake_peer(&c->h2g))
					chan_bell(c);
			}
		}
		if (moved)
			continue;
		if (c->out_len == 0 && c->poll_ns && chan_poll(c))
			continue;
		/*
		 * Going idle: say what we wait for and look once more, or a
		 * doorbell the guest decided against would be lost.
		 */
		if (c->out_len == 0 && !chan_ring_sleep_ok(&c->g2h))
			continue;
		if (c->in_len && !chan_ring_sleep_ok(&c->h2g))
			continue;
		break;
	}
	if (!budget && !c->broken)
		chan_signal(c->kick_fd); /* come back after the other devices */
	chan_arm(c);
	pthread_mutex_unlock(&c->lock);
}

int vmm_chan_io_start(struct vmm_chan *c, int epoll_fd, void *tag, struct kal_err **err)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };
	int fds[] = { c->kick_fd, c->reset_fd, c->in_fd, c->out_fd };

	c->epoll_fd = epoll_fd;
	c->epoll_tag = tag;
	for (unsigned int i = 0; i < ARRAY_SIZE(fds); i++) {
		if (fds[i] < 0 || (i == 3 && fds[i] == c->in_fd))
			continue;
		if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
			if (errno == EPERM && i >= 2)
				continue; /* a regular file or /dev/null: always ready */
			return kal_err_sys(err, errno, "agent channel: epoll_ctl");
		}
		if (i < 2)
			continue; /* the doorbells stay watched */
		/* the agent fds can be watched: chan_arm() adds them when wanted */
		epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fds[i], NULL);
		if (i == 2)
			c->in_poll = true;
		else
			c->out_poll = true;
	}
	if (c->in_fd >= 0 && c->in_fd == c->out_fd)
		c->out_poll = c->in_poll;
	/* the guest may have written before the I/O thread ran (or before a restore) */
	chan_signal(c->kick_fd);
	return 0;
}

bool vmm_chan_broken(struct vmm_chan *c)
{
	bool b;

	pthread_mutex_lock(&c->lock);
	b = c->broken;
	pthread_mutex_unlock(&c->lock);
	return b;
}

int vmm_chan_save(struct vmm_chan *c, struct snap_writer *w, struct kal_err **err)
{
	(void)err;
	pthread_mutex_lock(&c->lock);
	snap_put_u32(w, CHAN_SNAP_MAGIC);
	snap_put_u32(w, VMM_CHAN_SNAP_VER);
	snap_put_u8(w, (uint8_t)((c->broken ? 1 : 0) | (c->in_eof ? 2 : 0)));
	snap_put_u32(w, c->g2h.pos);
	snap_put_u32(w, c->h2g.pos);
	snap_put_u32(w, c->out_len - c->out_off);
	snap_put(w, c->out_buf + c->out_off, c->out_len - c->out_off);
	snap_put_u32(w, c->in_len - c->in_off);
	snap_put(w, c->in_buf + c->in_off, c->in_len - c->in_off);
	snap_put_u32(w, CHAN_REGION_SIZE);
	snap_put(w, c->mem, CHAN_REGION_SIZE);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int vmm_chan_restore(struct vmm_chan *c, struct snap_reader *r, struct kal_err **err)
{
	uint32_t magic = snap_get_u32(r), ver = snap_get_u32(r);
	uint8_t flags = snap_get_u8(r);
	uint32_t g2h_pos = snap_get_u32(r), h2g_pos = snap_get_u32(r);
	uint32_t out_n, in_n, region_n;
	_cleanup_free_ uint8_t *out = xmalloc(VMM_CHAN_BUF), *in = xmalloc(VMM_CHAN_BUF);

	if (r->bad || magic != CHAN_SNAP_MAGIC)
		return kal_err_set(err, EINVAL, "agent channel record: bad magic");
	if (ver != VMM_CHAN_SNAP_VER)
		return kal_err_set(err, EINVAL, "agent channel record: version %u, kal reads %u",
				   ver, VMM_CHAN_SNAP_VER);
	out_n = snap_get_u32(r);
	if (out_n > VMM_CHAN_BUF)
		return kal_err_set(err, EINVAL,
				   "agent channel record: %u buffered output bytes exceed the cap "
				   "of %u",
				   out_n, VMM_CHAN_BUF);
	snap_get(r, out, out_n);
	in_n = snap_get_u32(r);
	if (in_n > VMM_CHAN_BUF)
		return kal_err_set(err, EINVAL,
				   "agent channel record: %u buffered input bytes exceed the cap "
				   "of %u",
				   in_n, VMM_CHAN_BUF);
	snap_get(r, in, in_n);
	region_n = snap_get_u32(r);
	if (region_n != CHAN_REGION_SIZE)
		return kal_err_set(err, EINVAL, "agent channel record: region of %u bytes, want %u",
				   region_n, CHAN_REGION_SIZE);
	if (r->bad || r->len - r->off < region_n)
		return kal_err_set(err, EINVAL, "agent channel record: truncated");

	pthread_mutex_lock(&c->lock);
	memcpy(c->mem, r->buf + r->off, region_n);
	r->off += region_n;
	chan_rings_init(c->mem, 1, &c->h2g, &c->g2h);
	c->g2h.pos = g2h_pos;
	c->h2g.pos = h2g_pos;
	c->broken = flags & 1;
	c->in_eof = (flags & 2) || c->in_fd < 0;
	memcpy(c->out_buf, out, out_n);
	c->out_off = 0;
	c->out_len = out_n;
	memcpy(c->in_buf, in, in_n);
	c->in_off = 0;
	c->in_len = in_n;
	/* our indices are ours, whatever the region bytes say; the header is rewritten too */
	chan_publish_own(c);
	chan_write_hdr(c, c->broken ? CHAN_STATUS_BROKEN : CHAN_STATUS_OK);
	pthread_mutex_unlock(&c->lock);
	/* the I/O thread re-arms the host fds and serves what is pending */
	chan_signal(c->kick_fd);
	return 0;
}

void vmm_chan_scribble(struct vmm_chan *c)
{
	pthread_mutex_lock(&c->lock);
	c->g2h.pos = c->h2g.pos = 0xdead;
	c->out_len = c->out_off = c->in_len = c->in_off = 0;
	c->broken = true; /* keeps the I/O thread off the scribbled state until restore */
	memset(c->out_buf, 0xaa, sizeof(c->out_buf));
	memset(c->in_buf, 0xaa, sizeof(c->in_buf));
	pthread_mutex_unlock(&c->lock);
}
