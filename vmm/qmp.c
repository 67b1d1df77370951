// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * QMP client: line-delimited JSON over a stream socket, synchronous calls
 * with a deadline, events skipped.  QEMU is trusted more than the guest but
 * its replies are still bounded and parsed strictly.
 */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/fsutil.h"
#include "../lib/xalloc.h"
#include "qmp.h"

struct qmp {
	int fd;
	char buf[QMP_MAX_LINE];
	size_t have;
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Next JSON object from the stream (caller puts it), waiting until deadline. */
static json_object *qmp_read(struct qmp *q, long long deadline, struct kal_err **err)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->have);

		if (nl) {
			size_t n = (size_t)(nl - q->buf) + 1;
			json_object *o;

			*nl = '\0';
			o = json_tokener_parse(q->buf);
			memmove(q->buf, q->buf + n, q->have - n);
			q->have -= n;
			if (!o || !json_object_is_type(o, json_type_object)) {
				json_object_put(o);
				return kal_err_set(err, EPROTO, "qmp: malformed reply"), NULL;
			}
			return o;
		}
		if (q->have == sizeof(q->buf))
			return kal_err_set(err, EMSGSIZE, "qmp: reply over %d bytes", QMP_MAX_LINE),
			       NULL;
		long long left = deadline - mono_ms();
		struct pollfd p = { .fd = q->fd, .events = POLLIN };
		int r;

		if (left <= 0)
			return kal_err_set(err, ETIMEDOUT, "qmp: no reply"), NULL;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno != EINTR)
			return kal_err_sys(err, errno, "qmp: poll"), NULL;
		if (r <= 0)
			continue;
		ssize_t got = read(q->fd, q->buf + q->have, sizeof(q->buf) - q->have);

		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got < 0)
			return kal_err_sys(err, errno, "qmp: read"), NULL;
		if (got == 0)
			return kal_err_set(err, EPIPE, "qmp: qemu closed the connection"), NULL;
		q->have += (size_t)got;
	}
}

struct qmp *qmp_open(int fd, int timeout_ms, struct kal_err **err)
{
	struct qmp *q = xzalloc(sizeof(*q));
	json_object *g;

	q->fd = fd;
	g = qmp_read(q, mono_ms() + timeout_ms, err);
	if (!g || !json_object_object_get_ex(g, "QMP", NULL)) {
		json_object_put(g);
		free(q);
		if (err && !*err)
			kal_err_set(err, EPROTO, "qmp: no greeting");
		return NULL;
	}
	json_object_put(g);
	if (qmp_command(q, "qmp_capabilities", NULL, timeout_ms, NULL, err) < 0) {
		free(q);
		return NULL;
	}
	return q;
}

int qmp_command(struct qmp *q, const char *cmd, const char *args_json, int timeout_ms, char **ret,
		struct kal_err **err)
{
	_cleanup_free_ char *line =
	    args_json ? xasprintf("{\"execute\":\"%s\",\"arguments\":%s}\n", cmd, args_json)
		      : xasprintf("{\"execute\":\"%s\"}\n", cmd);
	long long deadline = mono_ms() + timeout_ms;

	if (kal_write_all(q->fd, line, strlen(line), err) < 0)
		return kal_err_wrap(err, "qmp `%s`", cmd);
	for (;;) {
		json_object *o = qmp_read(q, deadline, err), *v;

		if (!o)
			return kal_err_wrap(err, "qmp `%s`", cmd);
		if (json_object_object_get_ex(o, "return", &v)) {
			if (ret)
				*ret = xstrdup(json_object_to_json_string(v));
			json_object_put(o);
			return 0;
		}
		if (json_object_object_get_ex(o, "error", &v)) {
			json_object *d = NULL;
			const char *desc = "unknown error";

			if (json_object_object_get_ex(v, "desc", &d) &&
			    json_object_is_type(d, json_type_string))
				desc = json_object_get_string(d);
			kal_err_set(err, EIO, "qmp `%s`: %s", cmd, desc);
			json_object_put(o);
			return -1;
		}
		json_object_put(o); /* an event */
	}
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	close(q->fd);
	free(q);
}
