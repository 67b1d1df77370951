// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Boot-time setup of a kal guest, run once by PID 1 from the initramfs:
 * pseudo filesystems, the EROFS layers (virtio-blk by serial or pmem), the
 * ext4 upper disk, the overlay root, switch root (as util-linux switch_root:
 * MS_MOVE the new root onto / and chroot), hostname and a static network
 * configured with ioctls (the image may have no tools at all).  The kernel
 * command line keys (kal.*) are the engine's contract, see BRIEF/DESIGN.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "chan.h"

#define NEWROOT	   "/newroot"
#define MAX_LAYERS 128

static struct {
	unsigned int layers;
	bool pmem;
	char upper[64];
	char hostname[64];
	bool net_user;
	uint64_t ring_gpa; /* kal.channel=ring@GPA: the stream runs on shared rings */
} cfg = { .upper = "", .hostname = "kal" };

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int do_mount(const char *src, const char *dst, const char *type, unsigned long flags,
		    const char *data)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, flags, data) < 0) {
		agent_log("mount %s `%s` on `%s`%s%s: %s", type ? type : "", src, dst,
			  data ? " -o " : "", data ? data : "", strerror(errno));
		return -1;
	}
	return 0;
}

static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return 0;
}

static void parse_cmdline(void)
{
	char line[4096], *tok, *save = NULL;

	if (read_small("/proc/cmdline", line, sizeof(line)) < 0) {
		agent_log("cannot read /proc/cmdline: %s", strerror(errno));
		return;
	}
	for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		if (!strncmp(tok, "kal.layers=", 11)) {
			cfg.layers = (unsigned int)strtoul(tok + 11, NULL, 10);
			if (cfg.layers > MAX_LAYERS)
				agent_fatal("kal.layers=%u: at most %d layers", cfg.layers,
					    MAX_LAYERS);
		} else if (!strcmp(tok, "kal.layerdev=pmem")) {
			cfg.pmem = true;
		} else if (!strncmp(tok, "kal.upper=", 10)) {
			snprintf(cfg.upper, sizeof(cfg.upper), "%s", tok + 10);
		} else if (!strncmp(tok, "kal.hostname=", 13)) {
			snprintf(cfg.hostname, sizeof(cfg.hostname), "%s", tok + 13);
		} else if (!strcmp(tok, "kal.net=user")) {
			cfg.net_user = true;
		} else if (!strncmp(tok, CHAN_CMDLINE_KEY, strlen(CHAN_CMDLINE_KEY))) {
			cfg.ring_gpa = strtoull(tok + strlen(CHAN_CMDLINE_KEY), NULL, 16);
		}
	}
}

/* /dev/vdX whose virtio-blk serial is `serial`, waiting briefly for late probes */
static int find_blk(const char *serial, char *dev, size_t len)
{
	for (int tries = 0; tries < 100; tries++) {
		DIR *d = opendir("/sys/block");
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char path[300], val[128];

			if (strncmp(e->d_name, "vd", 2) || strlen(e->d_name) > 16)
				continue;
			snprintf(path, sizeof(path), "/sys/block/%s/serial", e->d_name);
			if (read_small(path, val, sizeof(val)) == 0 && !strcmp(val, serial)) {
				snprintf(dev, len, "/dev/%.16s", e->d_name);
				closedir(d);
				return 0;
			}
		}
		if (d)
			closedir(d);
		usleep(20000);
	}
	agent_log("no virtio-blk disk with serial `%s`", serial);
	return -1;
}

/*
 * Wait for a device node that a driver creates after /init started: the nd
 * bus registers pmem namespaces from its own async domain, which the kernel
 * does not wait for before running init (and under emulated KVM that takes
 * seconds).  Bounded, so a missing device ends in a clear error.
 */
static int wait_dev(const char *path, int timeout_ms)
{
	for (int waited = 0; access(path, F_OK) < 0; waited += 10) {
		if (waited >= timeout_ms) {
			agent_log("`%s` did not appear within %d s", path, timeout_ms / 1000);
			return -1;
		}
		usleep(10000);
	}
	return 0;
}

static int mount_layers(void)
{
	char dev[64], dir[64], serial[32];

	for (unsigned int i = 0; i < cfg.layers; i++) {
		snprintf(dir, sizeof(dir), "/kal/layers/%u", i);
		if (cfg.pmem) {
			snprintf(dev, sizeof(dev), "/dev/pmem%u", i);
			if (wait_dev(dev, 120000) < 0 ||
			    do_mount(dev, dir, "erofs", MS_RDONLY, "dax") < 0)
				return -1;
			continue;
		}
		snprintf(serial, sizeof(serial), "kal-layer%u", i);
		if (find_blk(serial, dev, sizeof(dev)) < 0 ||
		    do_mount(dev, dir, "erofs", MS_RDONLY, NULL) < 0)
			return -1;
	}
	return 0;
}

static int mount_root(void)
{
	char dev[64], *opts, *p;
	size_t len;

	mkdir("/kal", 0755);
	mkdir("/kal/layers", 0755);
	if (mount_layers() < 0)
		return -1;
	if (cfg.upper[0]) {
		if (find_blk(cfg.upper, dev, sizeof(dev)) < 0 ||
		    do_mount(dev, "/kal/upper", "ext4", MS_NOATIME, NULL) < 0)
			return -1;
	} else if (do_mount("tmpfs", "/kal/upper", "tmpfs", 0, "mode=0755") < 0) {
		return -1;
	}
	mkdir("/kal/upper/upper", 0755);
	mkdir("/kal/upper/work", 0755);
	mkdir("/kal/empty", 0755);

	/* lowerdir is top first: layer N-1 ... layer 0 */
	len = 64 + (size_t)cfg.layers * 24;
	opts = malloc(len);
	if (!opts)
		return -1;
	p = opts + sprintf(opts, "lowerdir=");
	if (!cfg.layers)
		p += sprintf(p, "/kal/empty");
	for (unsigned int i = cfg.layers; i-- > 0;)
		p += sprintf(p, "/kal/layers/%u%s", i, i ? ":" : "");
	sprintf(p, ",upperdir=/kal/upper/upper,workdir=/kal/upper/work");
	if (do_mount("overlay", NEWROOT, "overlay", 0, opts) < 0) {
		free(opts);
		return -1;
	}
	free(opts);
	return 0;
}

static int switch_root(void)
{
	static const char *const moves[] = { "/proc", "/sys", "/dev" };

	for (size_t i = 0; i < sizeof(moves) / sizeof(moves[0]); i++) {
		char dst[64];

		snprintf(dst, sizeof(dst), NEWROOT "%s", moves[i]);
		mkdir(dst, 0755);
		if (mount(moves[i], dst, NULL, MS_MOVE, NULL) < 0) {
			agent_log("move `%s` into the new root: %s", moves[i], strerror(errno));
			return -1;
		}
	}
	/*
	 * switch_root deletes the old root's files to free their memory; here the
	 * initramfs holds only /init, which stays mapped as this very process.
	 */
	if (chdir(NEWROOT) < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
	    chdir("/") < 0) {
		agent_log("switch root: %s", strerror(errno));
		return -1;
	}
	do_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	mkdir("/tmp", 01777);
	return 0;
}

static int if_up(int sk, const char *name)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(sk, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	return ioctl(sk, SIOCSIFFLAGS, &ifr);
}

static int if_addr(int sk, const char *name, unsigned long req, const char *ip)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
	return ioctl(sk, req, &ifr);
}

static void setup_network(void)
{
	int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct rtentry rt = { 0 };
	struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;
	struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;
	struct sockaddr_in *mask = (struct sockaddr_in *)&rt.rt_genmask;

	if (sk < 0) {
		agent_log("network: socket: %s", strerror(errno));
		return;
	}
	if (if_up(sk, "lo") < 0)
		agent_log("network: lo up: %s", strerror(errno));
	if (!cfg.net_user) {
		close(sk);
		return;
	}
	if (if_addr(sk, "eth0", SIOCSIFADDR, "10.0.2.15") < 0 ||
	    if_addr(sk, "eth0", SIOCSIFNETMASK, "255.255.255.0") < 0 || if_up(sk, "eth0") < 0) {
		agent_log("network: eth0 10.0.2.15/24: %s", strerror(errno));
		close(sk);
		return;
	}
	gw->sin_family = dst->sin_family = mask->sin_family = AF_INET;
	inet_pton(AF_INET, "10.0.2.2", &gw->sin_addr);
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	static char eth0[] = "eth0";

	rt.rt_dev = eth0;
	if (ioctl(sk, SIOCADDRT, &rt) < 0 && errno != EEXIST)
		agent_log("network: default route via 10.0.2.2: %s", strerror(errno));
	close(sk);
}

static void write_file(const char *path, const char *text, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);

	if (fd < 0) {
		agent_log("write `%s`: %s", path, strerror(errno));
		return;
	}
	if (write(fd, text, strlen(text)) < 0)
		agent_log("write `%s`: %s", path, strerror(errno));
	close(fd);
}

static void setup_etc(void)
{
	char buf[4096], line[256];
	struct stat st;

	mkdir("/etc", 0755);
	if (cfg.net_user) {
		/* a dangling symlink (systemd-resolved images) would point into /run */
		if (lstat("/etc/resolv.conf", &st) == 0 && S_ISLNK(st.st_mode))
			unlink("/etc/resolv.conf");
		write_file("/etc/resolv.conf", "nameserver 10.0.2.3\n", O_TRUNC);
	}
	if (read_small("/etc/hosts", buf, sizeof(buf)) < 0) {
		snprintf(line, sizeof(line),
			 "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t%s\n", cfg.hostname);
		write_file("/etc/hosts", line, O_TRUNC);
	} else if (!strstr(buf, cfg.hostname)) {
		snprintf(line, sizeof(line), "127.0.1.1\t%s\n", cfg.hostname);
		write_file("/etc/hosts", line, O_APPEND);
	}
}

static void console_stdio(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);

	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

int agent_setup_system(void)
{
	long long t0 = now_ms();

	mkdir("/dev", 0755);
	if (do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0 && errno != EBUSY)
		return -1;
	console_stdio();
	if (do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 ||
	    do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 ||
	    do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		     "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0 ||
	    do_mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
		return -1;
	write_file("/proc/self/oom_score_adj", "-1000\n", O_TRUNC);
	parse_cmdline();
	if (mount_root() < 0 || switch_root() < 0)
		return -1;
	if (sethostname(cfg.hostname, strlen(cfg.hostname)) < 0)
		agent_log("sethostname `%s`: %s", cfg.hostname, strerror(errno));
	setup_network();
	setup_etc();
	agent_log("root ready: %u layer(s) on %s, upper %s, %lld ms", cfg.layers,
		  cfg.pmem ? "pmem" : "virtio-blk", cfg.upper[0] ? cfg.upper : "tmpfs",
		  now_ms() - t0);
	return 0;
}

int agent_channel_open(void)
{
	/* ports appear after a control-queue handshake: allow an emulated guest its seconds */
	for (int tries = 0; tries < 3000; tries++) {
		DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char path[300], val[64];
			int fd;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
			if (read_small(path, val, sizeof(val)) < 0 || strcmp(val, "kal.agent"))
				continue;
			snprintf(path, sizeof(path), "/dev/%s", e->d_name);
			closedir(d);
			fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
			if (fd < 0)
				agent_log("open `%s`: %s", path, strerror(errno));
			/* with the rings the port only carries the host's doorbell bytes */
			if (fd >= 0 && cfg.ring_gpa && agent_ring_open(cfg.ring_gpa, fd) < 0) {
				close(fd);
				return -1;
			}
			return fd;
		}
		if (d)
			closedir(d);
		usleep(20000);
	}
	return -1;
}
