// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal-init: the guest agent, PID 1 of every kal VM.  As PID 1 it sets the
 * system up (setup.c), opens the host channel and serves guest/proto.h
 * frames forever.  `kal-init --serve-fd N` is a test mode for a normal host
 * process: no mounts, serve on fd N (a socketpair), exit when it closes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

void agent_log(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(msg) - 2)
		n = sizeof(msg) - 2;
	msg[n++] = '\n';
	/* one write per line so console lines never interleave */
	if (dprintf(2, "kal-init: %.*s", n, msg) < 0) {
		/* no console: nothing to do */
	}
}

void agent_fatal(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	agent_log("fatal: %s", msg);
	if (getpid() != 1)
		exit(125);
	/* PID 1 must not exit (kernel panic): end the VM so the host notices */
	agent_log("rebooting");
	sync();
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

static void usage(void)
{
	fprintf(stderr, "usage: kal-init            (as PID 1 in a kal VM)\n"
			"       kal-init --serve-fd N   (test mode: serve on an open socket)\n"
			"       kal-init --version\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct agent_opts o = { .chan_fd = -1 };

	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("kal-init %s protocol %u\n", KAL_VERSION, KAL_PROTO_VERSION);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "--serve-fd")) {
		char *end;
		long fd = strtol(argv[2], &end, 10);

		if (*end || fd < 0 || fd > 65535 || fcntl((int)fd, F_GETFD) < 0) {
			fprintf(stderr, "kal-init: --serve-fd: `%s` is not an open fd\n", argv[2]);
			return 2;
		}
		fcntl((int)fd, F_SETFD, FD_CLOEXEC);
		o.test_mode = true;
		o.chan_fd = (int)fd;
		return agent_serve(&o);
	}
	if (argc != 1 || getpid() != 1)
		usage();

	if (agent_setup_system() < 0)
		agent_fatal("system setup failed");
	o.chan_fd = agent_channel_open();
	if (o.chan_fd < 0)
		agent_fatal("no agent channel (virtio-serial port `kal.agent`)");
	agent_serve(&o);
	agent_fatal("serving loop ended");
}
