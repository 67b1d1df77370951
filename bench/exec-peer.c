// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bench/boot's peer for `kal exec VM true`: the least a host can do to run a
 * command in a plain QEMU guest — connect to the guest's virtio-serial port
 * (a busybox loop reads one command per line, runs it, answers its status),
 * send the command, wait for the status line.
 *   exec-peer SOCKET CMD
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char line[256], buf[64];
	size_t have = 0;
	int fd;

	if (argc != 3)
		return 2;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		return 2;
	}
	snprintf(line, sizeof(line), "%s\n", argv[2]);
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		return 2;
	while (have < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);

		if (n <= 0)
			return 2;
		have += (size_t)n;
		if (memchr(buf, '\n', have))
			break;
	}
	buf[have] = '\0';
	return atoi(buf);
}
