// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A tiny static PID 1 for booting kal's guest kernel in tests (tests/bats/20-kernel.bats):
 * mounts proc/sys/devtmpfs, reports the virtio devices the kernel bound, mounts the EROFS
 * disk whose serial is `kal-layer0`, writes a line to the virtio-serial port `kal.agent`,
 * and reboots (reboot=t on the command line + QEMU -no-reboot end the VM). Every line it
 * prints starts with "T: " so the test can pick them out of the console log.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include "init-util.h"

/* First line of a small file, newline stripped; "" when unreadable. */
static const char *read_line(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static void list_virtio(void)
{
	DIR *d = opendir("/sys/bus/virtio/devices");
	struct dirent *e;
	char path[300], id[64];

	if (!d)
		fail("opendir /sys/bus/virtio/devices");
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/virtio/devices/%s/device", e->d_name);
		say("T: virtio %s device=%s", e->d_name, read_line(path, id, sizeof(id)));
	}
	closedir(d);
}

/* Mount the virtio-blk disk with the given serial read-only as EROFS at dir. */
static void mount_layer(const char *serial, const char *dir)
{
	DIR *d = opendir("/sys/block");
	struct dirent *e;
	char path[300], val[64];

	if (!d)
		fail("opendir /sys/block");
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "vd", 2) != 0)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/serial", e->d_name);
		say("T: disk %s serial=%s", e->d_name, read_line(path, val, sizeof(val)));
		if (strcmp(val, serial) != 0)
			continue;
		snprintf(path, sizeof(path), "/dev/%s", e->d_name);
		mkdir(dir, 0755);
		if (mount(path, dir, "erofs", MS_RDONLY, NULL) < 0)
			fail("mount erofs");
		say("T: mounted %s (%s) on %s", path, serial, dir);
		closedir(d);
		return;
	}
	closedir(d);
	errno = ENOENT;
	fail(serial);
}

/* Write a line to the virtio-serial port named name (found through sysfs, no udev). */
static void write_port(const char *name, const char *msg)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *e;
	char path[300], val[64];

	if (!d)
		fail("opendir /sys/class/virtio-ports");
	while ((e = readdir(d))) {
		int fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		say("T: port %s name=%s", e->d_name, read_line(path, val, sizeof(val)));
		if (strcmp(val, name) != 0)
			continue;
		snprintf(path, sizeof(path), "/dev/%s", e->d_name);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, msg, strlen(msg)) < 0)
			fail("write port");
		close(fd);
		closedir(d);
		return;
	}
	closedir(d);
	errno = ENOENT;
	fail(name);
}

int main(void)
{
	char buf[256];
	int fd;

	mkdir("/dev", 0755);
	if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) < 0 && errno != EBUSY)
		return 1;
	/* no /dev/console in the initramfs: the kernel gave us no stdio */
	fd = open("/dev/console", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	mkdir("/proc", 0755);
	mkdir("/sys", 0755);
	if (mount("proc", "/proc", "proc", 0, NULL) < 0)
		fail("mount /proc");
	if (mount("sysfs", "/sys", "sysfs", 0, NULL) < 0)
		fail("mount /sys");
	say("T: init running, uptime %s", read_line("/proc/uptime", buf, sizeof(buf)));
	say("T: cmdline %s", read_line("/proc/cmdline", buf, sizeof(buf)));
	list_virtio();
	mount_layer("kal-layer0", "/layer");
	say("T: layer hello.txt: %s", read_line("/layer/hello.txt", buf, sizeof(buf)));
	say("T: layer sub/deep.txt: %s", read_line("/layer/sub/deep.txt", buf, sizeof(buf)));
	write_port("kal.agent", "hello from the guest\n");
	say("T: net eth0 %s", access("/sys/class/net/eth0", F_OK) == 0 ? "present" : "missing");
	say("T: done, uptime %s", read_line("/proc/uptime", buf, sizeof(buf)));
	power_off();
	return 0;
}
