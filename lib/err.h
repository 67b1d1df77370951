/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Error chain for fallible functions: a failing function fills *err with a
 * message and an errno-like code and returns -1 (or NULL); callers add
 * context while unwinding with kal_err_wrap().  Only cli/main.c prints.
 * Modelled on crun's libcrun/error.h.
 */
#ifndef KAL_LIB_ERR_H
#define KAL_LIB_ERR_H

#include <stdarg.h>

struct kal_err {
	int code;      /* errno value, or 0 when not a system error */
	int exit_code; /* process exit status kal should use; 125 when unset */
	char *msg;     /* "context: context: cause" */
};

#define KAL_EXIT_FAILURE  125
#define KAL_EXIT_NOEXEC	  126
#define KAL_EXIT_NOTFOUND 127

/* Set *err (if err is non-NULL and *err is NULL) from fmt; returns -1. */
int kal_err_set(struct kal_err **err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like kal_err_set, appending ": strerror(errno_)" to the message. */
int kal_err_sys(struct kal_err **err, int errno_, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix "fmt: " to an existing error; returns -1. */
int kal_err_wrap(struct kal_err **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kal_err_free(struct kal_err *e);
/* Free *err and set it to NULL (for code that handles an error and goes on). */
void kal_err_clear(struct kal_err **err);

static inline void kal_errp(struct kal_err **e)
{
	kal_err_free(*e);
}
#define _cleanup_err_ __attribute__((cleanup(kal_errp)))

#endif
