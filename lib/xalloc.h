/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Allocation helpers that abort on out-of-memory (tmux xmalloc.c, crun OOM()),
 * so call sites never check.
 */
#ifndef KAL_LIB_XALLOC_H
#define KAL_LIB_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xzalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* realloc to nmemb*size with overflow check */
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif
