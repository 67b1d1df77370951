// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal logs [-f] VM: the VM's serial console log.  The bytes come from the
 * guest, so control characters are escaped (\xNN) and only newlines and tabs
 * pass through (reliability.md B5); raw bytes are for interactive sessions.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "../vmm/vmstate.h"
#include "cmd.h"
#include "util.h"

static const struct kal_opt logs_opts[] = {
	{ "follow", 'f', NULL, "keep printing new output until the VM stops", 0 },
	{ 0 },
};

struct line {
	char buf[4096 + 8];
	size_t len;
};

static void line_flush(struct line *l, bool newline)
{
	_cleanup_free_ char *safe = NULL;

	l->buf[l->len] = '\0';
	safe = kal_escape_terminal(l->buf);
	fputs(safe, stdout);
	if (newline)
		fputc('\n', stdout);
	l->len = 0;
}

static void emit(struct line *l, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			line_flush(l, true);
		} else if (p[i] == '\r') {
			continue;
		} else if (p[i] == '\t') {
			line_flush(l, false);
			fputc('\t', stdout);
		} else if (p[i] == 0) {
			line_flush(l, false);
			fputs("\\x00", stdout);
		} else {
			l->buf[l->len++] = (char)p[i];
			if (l->len >= 4096)
				line_flush(l, false);
		}
	}
}

static int logs_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	struct line l = { .len = 0 };
	unsigned char buf[65536];
	const char *arg, *name;
	bool follow = false;
	off_t off = 0;
	int c;

	while ((c = kal_cmd_getopt(&kal_cmd_logs, argc, argv, &arg, err)) != -1) {
		if (c == '?')
			return -1;
		if (c == 'f')
			follow = true;
	}
	if (argc - kal_cmd_optind != 1)
		return kal_cmd_usage_error(&kal_cmd_logs, err, "requires exactly 1 argument");
	name = argv[kal_cmd_optind];
	if (vmstate_name_check(name, err) < 0)
		return -1;
	if (vmstate_get(ctx->home, name, NULL) == VMSTATE_MISSING)
		return kal_err_set(err, ENOENT, "no such VM `%s`", name);
	path = vmstate_file(ctx->home, name, "console.log");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT)
		return kal_err_sys(err, errno, "open `%s`", path);
	for (;;) {
		ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf), off) : 0;
		struct stat st;

		if (n < 0)
			return kal_err_sys(err, errno, "read `%s`", path);
		if (n > 0) {
			emit(&l, buf, (size_t)n);
			off += n;
			continue;
		}
		if (!follow || vmstate_get(ctx->home, name, NULL) != VMSTATE_RUNNING)
			break;
		fflush(stdout);
		if (ferror(stdout))
			break;
		/* the supervisor keeps the newest half when the log hits its cap */
		if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size < off)
			off = st.st_size;
		if (fd < 0)
			fd = open(path, O_RDONLY | O_CLOEXEC);
		usleep(100000);
	}
	if (l.len)
		line_flush(&l, false);
	return 0;
}

const struct kal_cmd kal_cmd_logs = {
	.name = "logs",
	.summary = "print a VM's console log",
	.usage = "[-f] VM",
	.description =
	    "Print the VM's serial console (kernel messages, anything written to "
	    "/dev/console), newest 1 MiB at most. Control characters are shown as \\xNN. "
	    "With -f, keep printing until the VM stops.",
	.opts = logs_opts,
	.args = KAL_ARG_VM,
	.exec = logs_exec,
};
