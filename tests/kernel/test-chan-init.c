// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A tiny static PID 1 that checks the agent channel recipe from a Linux guest's user space (what
 * kal-init will do): with `kal.channel=ring@GPA` on the command line it maps the region and the
 * doorbell page through /dev/mem, finds the `kal.agent` port for the bell, and round-trips frames
 * over the rings (spin briefly, then poll() the port); without it, it round-trips the same frames
 * over the port itself.  Run by `kal __vmm-test-guest vmlinux --initrd CPIO --agent ring|console`
 * (the host loops the agent stream back); prints "T: " lines on the console, then reboots.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../guest/chan.h"
#include "init-util.h"

#define TRIPS	  200
#define FRAME_LEN 32
#define SPIN_NS	  20000 /* default; `chantest.spin_ns=N` on the command line overrides */

static long long spin_ns = SPIN_NS;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* The `kal.agent` port, as kal-init finds it: by its sysfs name. */
static int port_open(void)
{
	for (int tries = 0; tries < 3000; tries++) {
		DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char path[300], val[64] = "";
			int fd;
			ssize_t n;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			n = read(fd, val, sizeof(val) - 1);
			close(fd);
			val[n > 0 ? n : 0] = '\0';
			val[strcspn(val, "\n")] = '\0';
			if (strcmp(val, "kal.agent"))
				continue;
			snprintf(path, sizeof(path), "/dev/%s", e->d_name);
			closedir(d);
			return open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		}
		if (d)
			closedir(d);
		usleep(20000);
	}
	errno = ENOENT;
	return -1;
}

static struct chan_ring tx, rx;
static volatile uint32_t *kick;
static unsigned int kicks, bells, sleeps;

static void ring_send(const void *p, uint32_t len)
{
	if (chan_ring_write(&tx, p, len) != (long)len)
		fail("ring write");
	if (chan_ring_wake_peer(&tx)) {
		*kick = 1;
		kicks++;
	}
}

static void ring_recv(int port, void *p, uint32_t len)
{
	uint32_t got = 0;
	long long t0 = now_ns();
	char drain[64];

	while (got < len) {
		long n = chan_ring_read(&rx, (uint8_t *)p + got, len - got);
		struct pollfd pf = { .fd = port, .events = POLLIN };

		if (n < 0) {
			errno = EPROTO;
			fail("ring read (broken)");
		}
		if (n > 0) {
			got += (uint32_t)n;
			if (chan_ring_wake_peer(&rx))
				*kick = 1;
			continue;
		}
		if (now_ns() - t0 < spin_ns || !chan_ring_sleep_ok(&rx))
			continue;
		sleeps++;
		if (poll(&pf, 1, 5000) != 1)
			fail("poll on the bell");
		while ((n = read(port, drain, sizeof(drain))) > 0)
			bells += (unsigned int)n;
	}
}

static void port_recv(int port, void *p, uint32_t len)
{
	uint32_t got = 0;

	while (got < len) {
		struct pollfd pf = { .fd = port, .events = POLLIN };
		ssize_t n = read(port, (uint8_t *)p + got, len - got);

		if (n > 0) {
			got += (uint32_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN)
			fail("port read");
		if (poll(&pf, 1, 5000) != 1)
			fail("poll on the port");
	}
}

int main(void)
{
	char cmdline[4096] = "", *at = NULL;
	uint8_t frame[FRAME_LEN], back[FRAME_LEN];
	unsigned long long gpa = 0;
	long long t0, t1;
	int fd, port, n, bad = 0;

	mkdir("/dev", 0755);
	mkdir("/proc", 0555);
	mkdir("/sys", 0555);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	fd = open("/proc/cmdline", O_RDONLY);
	n = fd < 0 ? -1 : (int)read(fd, cmdline, sizeof(cmdline) - 1);
	if (n <= 0)
		fail("/proc/cmdline");
	close(fd);
	/* the last kal.channel= wins */
	for (char *p = cmdline; (p = strstr(p, "kal.channel=")); p++)
		at = p;
	if (at && !strncmp(at, CHAN_CMDLINE_KEY, strlen(CHAN_CMDLINE_KEY)))
		gpa = strtoull(at + strlen(CHAN_CMDLINE_KEY), NULL, 16);
	if ((at = strstr(cmdline, "chantest.spin_ns=")))
		spin_ns = strtoll(at + strlen("chantest.spin_ns="), NULL, 10);
	port = port_open();
	if (port < 0)
		fail("the kal.agent port");
	for (int i = 0; i < FRAME_LEN; i++)
		frame[i] = (uint8_t)(i * 5 + 3);
	if (gpa) {
		void *region, *page;

		fd = open("/dev/mem", O_RDWR | O_CLOEXEC);
		if (fd < 0)
			fail("open /dev/mem");
		region = mmap(NULL, CHAN_REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			      (off_t)gpa);
		page = mmap(NULL, CHAN_DOORBELL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			    (off_t)(gpa + CHAN_REGION_SIZE));
		if (region == MAP_FAILED || page == MAP_FAILED)
			fail("mmap /dev/mem");
		say("T: chan: mapped 0x%llx, header %s", gpa, chan_hdr_ok(region) ? "ok" : "BAD");
		if (!chan_hdr_ok(region))
			power_off();
		chan_rings_init(region, 0, &tx, &rx);
		kick = (volatile uint32_t *)((uint8_t *)page + CHAN_DOORBELL_KICK);
	}
	t0 = 0;
	for (int i = -8; i < TRIPS; i++) {
		if (i == 0)
			t0 = now_ns();
		frame[8] = (uint8_t)i;
		if (gpa) {
			ring_send(frame, FRAME_LEN);
			ring_recv(port, back, FRAME_LEN);
		} else {
			if (write(port, frame, FRAME_LEN) != FRAME_LEN)
				fail("port write");
			port_recv(port, back, FRAME_LEN);
		}
		bad += memcmp(frame, back, FRAME_LEN) != 0;
	}
	t1 = now_ns();
	say("T: chan: %s: %d round trips of %d bytes, %.1f us each, %d wrong, %u kicks, %u sleeps, "
	    "%u bell bytes (spin %lld ns)",
	    gpa ? "rings" : "port stream", TRIPS, FRAME_LEN, (double)(t1 - t0) / TRIPS / 1000.0,
	    bad, kicks, sleeps, bells, spin_ns);
	if (gpa) {
		/*
		 * The sleeping path, deterministically: announce the sleep before
		 * sending, so the host must ring the bell and poll() must see it.
		 */
		unsigned int s0 = sleeps, b0 = bells;

		for (int i = 0; i < 10; i++) {
			struct pollfd pf = { .fd = port, .events = POLLIN };
			char drain[64];

			frame[8] = (uint8_t)(100 + i);
			if (!chan_ring_sleep_ok(&rx))
				fail("receive ring not empty");
			ring_send(frame, FRAME_LEN);
			sleeps++;
			if (poll(&pf, 1, 5000) != 1)
				fail("poll on the bell");
			while ((n = (int)read(port, drain, sizeof(drain))) > 0)
				bells += (unsigned int)n;
			spin_ns = 0;
			ring_recv(port, back, FRAME_LEN);
			bad += memcmp(frame, back, FRAME_LEN) != 0;
		}
		say("T: chan: rings, sleeping in poll(): 10 round trips, %d wrong, %u sleeps, %u "
		    "bell "
		    "bytes",
		    bad, sleeps - s0, bells - b0);
	}
	power_off();
	return 0;
}
