/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Diagnostics that are not errors: warnings (a dropped socket entry in a
 * layer), debug traces (KAL_DEBUG=1 or -v).  Rate limiting is the caller's
 * job on hot paths (kal_log_ratelimit()).
 */
#ifndef KAL_LIB_LOG_H
#define KAL_LIB_LOG_H

#include <stdbool.h>

enum kal_log_level { KAL_LOG_ERROR, KAL_LOG_WARN, KAL_LOG_INFO, KAL_LOG_DEBUG };

void kal_log_set_level(enum kal_log_level lvl);
enum kal_log_level kal_log_get_level(void);
void kal_log(enum kal_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* true at most `burst` times per second per *state (a caller-owned counter pair) */
struct kal_ratelimit {
	long long window;
	unsigned int count;
};
bool kal_log_ratelimit(struct kal_ratelimit *rl, unsigned int burst);

#define kal_warn(...)  kal_log(KAL_LOG_WARN, __VA_ARGS__)
#define kal_info(...)  kal_log(KAL_LOG_INFO, __VA_ARGS__)
#define kal_debug(...) kal_log(KAL_LOG_DEBUG, __VA_ARGS__)

#endif
