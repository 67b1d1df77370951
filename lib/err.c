// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Error chain implementation: messages are built once at the failure site and
 * prefixed with context on the way up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "xalloc.h"

static int err_vset(struct kal_err **err, int code, const char *suffix, const char *fmt, va_list ap)
{
	char *msg;

	if (!err || *err)
		return -1;
	msg = xvasprintf(fmt, ap);
	if (suffix) {
		char *full = xasprintf("%s: %s", msg, suffix);

		free(msg);
		msg = full;
	}
	*err = xmalloc(sizeof(**err));
	(*err)->code = code;
	(*err)->exit_code = KAL_EXIT_FAILURE;
	(*err)->msg = msg;
	return -1;
}

int kal_err_set(struct kal_err **err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(err, code, NULL, fmt, ap);
	va_end(ap);
	return -1;
}

int kal_err_sys(struct kal_err **err, int errno_, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(err, errno_, strerror(errno_), fmt, ap);
	va_end(ap);
	return -1;
}

int kal_err_wrap(struct kal_err **err, const char *fmt, ...)
{
	va_list ap;
	char *prefix, *full;

	if (!err || !*err)
		return -1;
	va_start(ap, fmt);
	prefix = xvasprintf(fmt, ap);
	va_end(ap);
	full = xasprintf("%s: %s", prefix, (*err)->msg);
	free(prefix);
	free((*err)->msg);
	(*err)->msg = full;
	return -1;
}

void kal_err_free(struct kal_err *e)
{
	if (!e)
		return;
	free(e->msg);
	free(e);
}

void kal_err_clear(struct kal_err **err)
{
	if (!err)
		return;
	kal_err_free(*err);
	*err = NULL;
}
