// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The slirp glue: one net thread owns the Slirp instance and runs a poll()
 * loop over slirp's sockets, its timers and an eventfd that the I/O thread
 * writes when the guest transmitted.  Guest frames wait in a bounded ring
 * (VMM_NET_TX_SLOTS); when it is full the device holds its transmit queue
 * and the net thread kicks that queue again after draining (back-pressure
 * instead of loss).  Frames from slirp go straight into the device's own
 * bounded receive queue.
 */
#include <dlfcn.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <slirp/libslirp.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "net.h"
#include "virtio/devices.h"

/*
 * libslirp is loaded on first use: linked normally, it and glib cost every
 * kal process ~1.5 ms of start-up for a feature only `kal __vmm --net user`
 * uses.  Every entry point is resolved in vmm_net_create(), before any
 * seccomp filter (dlopen maps code, which no filtered thread may do).
 */
static struct {
	pthread_once_t once;
	char err[256];
	__typeof__(slirp_new) *new_;
	__typeof__(slirp_cleanup) *cleanup;
	__typeof__(slirp_pollfds_fill) *pollfds_fill;
	__typeof__(slirp_pollfds_poll) *pollfds_poll;
	__typeof__(slirp_input) *input;
	__typeof__(slirp_handle_timer) *handle_timer;
	__typeof__(slirp_add_hostfwd) *add_hostfwd;
} lib = { .once = PTHREAD_ONCE_INIT };

static void net_lib_load(void)
{
	void *h = dlopen(KAL_LIBSLIRP_SONAME, RTLD_NOW | RTLD_LOCAL);
	const char *miss = NULL;

	if (!h) {
		snprintf(lib.err, sizeof(lib.err), "%s", dlerror());
		return;
	}
#define NET_SYM(field, name)                                                                       \
	if (!(*(void **)&lib.field = dlsym(h, name)) && !miss)                                     \
		miss = name;
	NET_SYM(new_, "slirp_new")
	NET_SYM(cleanup, "slirp_cleanup")
	NET_SYM(pollfds_fill, "slirp_pollfds_fill")
	NET_SYM(pollfds_poll, "slirp_pollfds_poll")
	NET_SYM(input, "slirp_input")
	NET_SYM(handle_timer, "slirp_handle_timer")
	NET_SYM(add_hostfwd, "slirp_add_hostfwd")
#undef NET_SYM
	if (miss) {
		snprintf(lib.err, sizeof(lib.err), "%s: no `%s`", KAL_LIBSLIRP_SONAME, miss);
		lib.new_ = NULL;
	}
}

#define NET_TIMERS_MAX	8
#define NET_POLL_MAX_MS 1000

struct net_timer {
	bool used, armed;
	int64_t expire_ms;
	/* either a plain callback (timer_new) or an id for slirp_handle_timer */
	SlirpTimerCb cb;
	SlirpTimerId id;
	void *cb_opaque;
};

struct vmm_net {
	Slirp *slirp;
	struct virtio_dev *vd;
	int wake_fd; /* eventfd: guest frames queued, or stop */
	atomic_bool stop;
	pthread_t thread;
	bool started;
	bool (*confine)(void *arg);
	void *confine_arg;
	/* guest -> slirp frames, filled by the I/O thread */
	pthread_mutex_t lock;
	unsigned int tx_head, tx_n;
	bool tx_held; /* the device was told -EAGAIN: kick its queue after draining */
	uint16_t tx_len[VMM_NET_TX_SLOTS];
	uint8_t tx[VMM_NET_TX_SLOTS][VIRTIO_NET_FRAME_MAX];
	uint8_t frame[VIRTIO_NET_FRAME_MAX]; /* net thread's copy for slirp_input */
	/* net thread only */
	struct pollfd *pfd;
	unsigned int nr_pfd, cap_pfd;
	struct net_timer timers[NET_TIMERS_MAX];
	struct kal_ratelimit rl;
};

static int64_t net_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- slirp callbacks (all on the net thread, or in slirp_new/cleanup) ---- */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct vmm_net *n = opaque;

	/* dropped frames are counted by the device; slirp's TCP retransmits */
	virtio_net_receive(n->vd, buf, len);
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	struct vmm_net *n = opaque;

	if (kal_log_ratelimit(&n->rl, 5))
		kal_warn("vmm: net: guest error: %s", msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	(void)opaque;
	return net_now_ns();
}

static struct net_timer *net_timer_alloc(struct vmm_net *n)
{
	for (unsigned int i = 0; i < NET_TIMERS_MAX; i++)
		if (!n->timers[i].used) {
			n->timers[i] = (struct net_timer){ .used = true };
			return &n->timers[i];
		}
	/* slirp creates one timer (IPv6 router advertisements); this is a bug in kal */
	kal_warn("vmm: net: more than %d slirp timers", NET_TIMERS_MAX);
	return NULL;
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct net_timer *t = net_timer_alloc(opaque);

	if (t) {
		t->cb = cb;
		t->cb_opaque = cb_opaque;
	}
	return t;
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct net_timer *t = net_timer_alloc(opaque);

	if (t) {
		t->id = id;
		t->cb_opaque = cb_opaque;
	}
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	(void)opaque;
	if (timer)
		((struct net_timer *)timer)->used = false;
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct net_timer *t = timer;

	(void)opaque;
	if (t) {
		t->armed = true;
		t->expire_ms = expire_ms;
	}
}

/* the poll set is rebuilt before every poll(): nothing to track */
static void cb_register_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void cb_notify(void *opaque)
{
	(void)opaque; /* slirp runs on our own loop: the next iteration sees the change */
}

static const SlirpCb net_callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_new = cb_timer_new,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_register_poll_fd,
	.unregister_poll_fd = cb_unregister_poll_fd,
	.notify = cb_notify,
	.timer_new_opaque = cb_timer_new_opaque,
};

static int cb_add_poll(int fd, int events, void *opaque)
{
	struct vmm_net *n = opaque;
	short ev = 0;

	if (n->nr_pfd == n->cap_pfd) {
		n->cap_pfd = n->cap_pfd ? 2 * n->cap_pfd : 16;
		n->pfd = xrealloc(n->pfd, n->cap_pfd * sizeof(*n->pfd));
	}
	if (events & SLIRP_POLL_IN)
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI)
		ev |= POLLPRI;
	n->pfd[n->nr_pfd] = (struct pollfd){ .fd = fd, .events = ev };
	return (int)n->nr_pfd++;
}

static int cb_get_revents(int idx, void *opaque)
{
	struct vmm_net *n = opaque;
	short re;
	int ev = 0;

	if (idx < 0 || (unsigned int)idx >= n->nr_pfd)
		return 0;
	re = n->pfd[idx].revents;
	if (re & POLLIN)
		ev |= SLIRP_POLL_IN;
	if (re & POLLOUT)
		ev |= SLIRP_POLL_OUT;
	if (re & POLLPRI)
		ev |= SLIRP_POLL_PRI;
	if (re & (POLLERR | POLLNVAL))
		ev |= SLIRP_POLL_ERR;
	if (re & POLLHUP)
		ev |= SLIRP_POLL_HUP;
	return ev;
}

/* ---- guest -> slirp ---- */

/* The device's send callback, on the I/O thread (device lock held). */
static int net_send(void *opaque, const void *frame, size_t len)
{
	struct vmm_net *n = opaque;
	uint64_t one = 1;

	if (len > VIRTIO_NET_FRAME_MAX)
		return 0; /* the device never passes one; drop rather than trust that */
	pthread_mutex_lock(&n->lock);
	if (n->tx_n == VMM_NET_TX_SLOTS) {
		n->tx_held = true;
		pthread_mutex_unlock(&n->lock);
		return -EAGAIN;
	}
	{
		unsigned int slot = (n->tx_head + n->tx_n++) % VMM_NET_TX_SLOTS;

		memcpy(n->tx[slot], frame, len);
		n->tx_len[slot] = (uint16_t)len;
	}
	pthread_mutex_unlock(&n->lock);
	if (write(n->wake_fd, &one, sizeof(one)) < 0) {
		/* saturated: a wakeup is pending */
	}
	return 0;
}

/* Hand every queued guest frame to slirp; kick the device if it was held back. */
static void net_drain_tx(struct vmm_net *n)
{
	bool kick = false;

	for (;;) {
		size_t len;

		pthread_mutex_lock(&n->lock);
		if (n->tx_n == 0) {
			kick = n->tx_held;
			n->tx_held = false;
			pthread_mutex_unlock(&n->lock);
			break;
		}
		len = n->tx_len[n->tx_head];
		memcpy(n->frame, n->tx[n->tx_head], len);
		n->tx_head = (n->tx_head + 1) % VMM_NET_TX_SLOTS;
		n->tx_n--;
		pthread_mutex_unlock(&n->lock);
		/* outside the lock: slirp may answer at once (send_packet) */
		lib.input(n->slirp, n->frame, (int)len);
	}
	if (kick) {
		uint64_t one = 1;
		int fd = virtio_net_tx_kick_fd(n->vd);

		if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
			/* saturated: the I/O thread will serve the queue anyway */
		}
	}
}

/* ---- the net thread ---- */

static void net_run_timers(struct vmm_net *n)
{
	int64_t now = net_now_ns() / 1000000;

	for (unsigned int i = 0; i < NET_TIMERS_MAX; i++) {
		struct net_timer *t = &n->timers[i];

		if (!t->used || !t->armed || t->expire_ms > now)
			continue;
		t->armed = false;
		if (t->cb)
			t->cb(t->cb_opaque);
		else
			lib.handle_timer(n->slirp, t->id, t->cb_opaque);
	}
}

static uint32_t net_timer_timeout(struct vmm_net *n, uint32_t timeout)
{
	int64_t now = net_now_ns() / 1000000;

	for (unsigned int i = 0; i < NET_TIMERS_MAX; i++) {
		const struct net_timer *t = &n->timers[i];

		if (t->used && t->armed) {
			int64_t left = t->expire_ms - now;

			if (left < 0)
				left = 0;
			if (left < (int64_t)timeout)
				timeout = (uint32_t)left;
		}
	}
	return timeout;
}

static void *net_thread(void *arg)
{
	struct vmm_net *n = arg;

	if (!n->confine(n->confine_arg))
		return NULL;
	while (!atomic_load(&n->stop)) {
		uint32_t timeout = NET_POLL_MAX_MS;
		int r;

		n->nr_pfd = 0;
		cb_add_poll(n->wake_fd, SLIRP_POLL_IN, n);
		lib.pollfds_fill(n->slirp, &timeout, cb_add_poll, n);
		timeout = net_timer_timeout(n, timeout);
		r = poll(n->pfd, n->nr_pfd, (int)timeout);
		if (r < 0 && errno != EINTR && kal_log_ratelimit(&n->rl, 5))
			kal_warn("vmm: net: poll: %m");
		if (atomic_load(&n->stop))
			break;
		if (r > 0 && (n->pfd[0].revents & POLLIN)) {
			uint64_t cnt;

			if (read(n->wake_fd, &cnt, sizeof(cnt)) < 0) {
				/* EAGAIN: someone else's wakeup was already consumed */
			}
		}
		net_drain_tx(n);
		lib.pollfds_poll(n->slirp, r < 0, cb_get_revents, n);
		net_run_timers(n);
	}
	return NULL;
}

static struct in_addr net_ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	return (struct in_addr){ .s_addr = htonl((uint32_t)a << 24 | (uint32_t)b << 16 |
						 (uint32_t)c << 8 | d) };
}

struct vmm_net *vmm_net_create(struct virtio_dev *vd, const struct vmm_forward *fw,
			       unsigned int nfw, struct kal_err **err)
{
	SlirpConfig cfg = {
		.version = 4,
		.restricted = 0,
		.in_enabled = true,
		.vnetwork = net_ip4(10, 0, 2, 0),
		.vnetmask = net_ip4(255, 255, 255, 0),
		.vhost = net_ip4(10, 0, 2, 2),
		.in6_enabled = false,
		.vdhcp_start = net_ip4(10, 0, 2, 15),
		.vnameserver = net_ip4(10, 0, 2, 3),
		.if_mtu = 1500,
		.if_mru = 1500,
		/* B6: 10.0.2.2 must not become the host's 127.0.0.1 */
		.disable_host_loopback = true,
		.enable_emu = false, /* libslirp.h: "this code isn't safe" */
		/* kal-init configures 10.0.2.15 statically (kal.net=user): one parser less */
		.disable_dhcp = true,
	};
	struct vmm_net *n;

	pthread_once(&lib.once, net_lib_load);
	if (!lib.new_)
		return kal_err_set(err, ENOENT, "net: %s (install libslirp0: make deps)", lib.err),
		       NULL;
	n = xzalloc(sizeof(*n));
	n->vd = vd;
	n->wake_fd = -1;
	pthread_mutex_init(&n->lock, NULL);
	n->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->wake_fd < 0) {
		kal_err_sys(err, errno, "net: eventfd");
		vmm_net_destroy(n);
		return NULL;
	}
	n->slirp = lib.new_(&cfg, &net_callbacks, n);
	if (!n->slirp) {
		kal_err_set(err, EINVAL, "net: libslirp refused its configuration");
		vmm_net_destroy(n);
		return NULL;
	}
	for (unsigned int i = 0; i < nfw; i++) {
		struct in_addr host = { .s_addr = fw[i].host_addr };
		char ip[INET_ADDRSTRLEN];

		if (lib.add_hostfwd(n->slirp, fw[i].udp, host, fw[i].host_port,
				    net_ip4(10, 0, 2, 15), fw[i].guest_port) < 0) {
			inet_ntop(AF_INET, &host, ip, sizeof(ip));
			kal_err_set(
			    err, EADDRINUSE,
			    "net: cannot publish %s:%u/%s on the host (in use, or not a local "
			    "address)",
			    ip, fw[i].host_port, fw[i].udp ? "udp" : "tcp");
			vmm_net_destroy(n);
			return NULL;
		}
	}
	virtio_net_set_backend(vd, net_send, n);
	return n;
}

int vmm_net_start(struct vmm_net *n, bool (*confine)(void *arg), void *arg, struct kal_err **err)
{
	n->confine = confine;
	n->confine_arg = arg;
	if ((errno = pthread_create(&n->thread, NULL, net_thread, n)))
		return kal_err_sys(err, errno, "net thread");
	n->started = true;
	return 0;
}

void vmm_net_stop(struct vmm_net *n)
{
	uint64_t one = 1;

	if (n && n->started) {
		atomic_store(&n->stop, true);
		if (write(n->wake_fd, &one, sizeof(one)) < 0) {
			/* saturated: the thread wakes anyway */
		}
		pthread_join(n->thread, NULL);
		n->started = false;
	}
}

void vmm_net_destroy(struct vmm_net *n)
{
	if (!n)
		return;
	vmm_net_stop(n);
	if (n->vd)
		virtio_net_set_backend(n->vd, NULL, NULL);
	/* the thread is gone: this is the only slirp call left, on no other thread */
	if (n->slirp)
		lib.cleanup(n->slirp);
	if (n->wake_fd >= 0)
		close(n->wake_fd);
	pthread_mutex_destroy(&n->lock);
	free(n->pfd);
	free(n);
}
