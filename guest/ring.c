// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal-init's side of the shared-memory agent channel (guest/chan.h, kvm engine
 * with `kal.channel=ring@GPA`): the rings and the doorbell page mapped from
 * /dev/mem, and the agent port (`kal.agent`) kept open only to be woken by the
 * host's doorbell bytes.  serve.c moves its byte stream through these calls
 * instead of read/write on the port.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "chan.h"

#define RING_SPIN_NS 20000 /* look at the ring this long before sleeping on the bell */

static struct {
	uint8_t *region;
	volatile uint32_t *bell; /* the doorbell page */
	struct chan_ring tx, rx;
	int bell_fd; /* the agent port: readable when the host rang */
	bool sent;   /* bytes went out since the last sleep: an answer may be close */
} R = { .bell_fd = -1 };

int agent_ring_open(uint64_t gpa, int bell_fd)
{
	/* no O_SYNC: that would map the rings uncached */
	int fd = open("/dev/mem", O_RDWR | O_CLOEXEC);
	void *region, *bell;

	if (fd < 0) {
		agent_log("open /dev/mem: %s", strerror(errno));
		return -1;
	}
	region = mmap(NULL, CHAN_REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)gpa);
	bell = mmap(NULL, CHAN_DOORBELL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    (off_t)(gpa + CHAN_REGION_SIZE));
	close(fd);
	if (region == MAP_FAILED || bell == MAP_FAILED) {
		agent_log("map the agent rings at %#llx: %s", (unsigned long long)gpa,
			  strerror(errno));
		return -1;
	}
	if (!chan_hdr_ok(region)) {
		agent_log("agent rings at %#llx: unknown header (magic %#x, version %u)",
			  (unsigned long long)gpa, ((struct chan_hdr *)region)->magic,
			  ((struct chan_hdr *)region)->version);
		return -1;
	}
	R.region = region;
	R.bell = bell;
	R.bell_fd = bell_fd;
	chan_rings_init(region, 0, &R.tx, &R.rx);
	return 0;
}

bool agent_ring_active(void)
{
	return R.region != NULL;
}

static void ring_kick(unsigned int what)
{
	/* a store into the doorbell page: a KVM ioeventfd on the host */
	R.bell[what / 4] = 1;
}

/* A broken ring (the host published an impossible index): start both rings over. */
static long ring_broken(const struct chan_ring *r)
{
	agent_log("agent ring %s broken (index %u); resetting the channel",
		  r == &R.tx ? "guest->host" : "host->guest", r->bad);
	ring_kick(CHAN_DOORBELL_RESET);
	chan_rings_init(R.region, 0, &R.tx, &R.rx);
	return -EPROTO;
}

long agent_ring_read(void *buf, size_t len)
{
	long n;

	if (__atomic_load_n(&((struct chan_hdr *)R.region)->status, __ATOMIC_ACQUIRE) ==
	    CHAN_STATUS_BROKEN) {
		agent_log("the host stopped the agent rings; resetting the channel");
		ring_kick(CHAN_DOORBELL_RESET);
		chan_rings_init(R.region, 0, &R.tx, &R.rx);
		return -EPROTO;
	}
	n = chan_ring_read(&R.rx, buf, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);

	if (n < 0)
		return ring_broken(&R.rx);
	if (n > 0 && chan_ring_wake_peer(&R.rx))
		ring_kick(CHAN_DOORBELL_KICK); /* the host waited for space */
	return n ? n : -EAGAIN;
}

long agent_ring_write(const void *buf, size_t len)
{
	long n = chan_ring_write(&R.tx, buf, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);

	if (n < 0)
		return ring_broken(&R.tx);
	if (n > 0)
		R.sent = true;
	if (n > 0 && chan_ring_wake_peer(&R.tx))
		ring_kick(CHAN_DOORBELL_KICK); /* the host waited for data */
	return n ? n : -EAGAIN;
}

void agent_ring_drain_bell(void)
{
	uint8_t junk[64];

	/* the doorbell bytes only wake us up: the rings carry the data */
	while (read(R.bell_fd, junk, sizeof(junk)) > 0)
		;
}

bool agent_ring_prepare_sleep(bool want_in, bool want_out)
{
	if (want_in && R.sent) {
		/*
		 * After sending, the answer is often a few µs away: spin that long in user mode
		 * (cheap even where guest kernel code is emulated) before paying
		 * for a sleep and a bell (docs/vmm.md: 8 µs vs 21 µs round trips).
		 */
		struct timespec t0, t;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		do {
			if (chan_ring_avail(&R.rx) != 0)
				return false;
			clock_gettime(CLOCK_MONOTONIC, &t);
		} while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) <
			 RING_SPIN_NS);
	}
	R.sent = false;
	if (want_in && !chan_ring_sleep_ok(&R.rx))
		return false;
	if (want_out && !chan_ring_sleep_ok(&R.tx))
		return false;
	return true;
}
