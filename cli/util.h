/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Small helpers for the CLI layer: output escaping, size formatting. */
#ifndef KAL_CLI_UTIL_H
#define KAL_CLI_UTIL_H

#include <stdint.h>

/*
 * Copy of s with control characters (C0, DEL, C1 and ESC) shown as \xNN, so a
 * name or message coming from an image or a guest cannot drive the user's
 * terminal (reliability.md B5).  Caller frees.
 */
char *kal_escape_terminal(const char *s);
/* "1.5 MB", "312 kB", "17 B": decimal units like docker */
void kal_format_size(uint64_t n, char *buf, unsigned long len);

#endif
