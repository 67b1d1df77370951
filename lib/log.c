// SPDX-License-Identifier: GPL-2.0-or-later
/* Leveled diagnostics to stderr, "kal: warning: ..." style, one line each. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "log.h"

static enum kal_log_level log_level = KAL_LOG_WARN;

void kal_log_set_level(enum kal_log_level lvl)
{
	log_level = lvl;
}

enum kal_log_level kal_log_get_level(void)
{
	return log_level;
}

void kal_log(enum kal_log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char buf[1024];
	va_list ap;

	if (lvl > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* one write so lines from threads do not interleave */
	fprintf(stderr, "kal: %s: %s\n", names[lvl], buf);
}

bool kal_log_ratelimit(struct kal_ratelimit *rl, unsigned int burst)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (ts.tv_sec != rl->window) {
		rl->window = ts.tv_sec;
		rl->count = 0;
	}
	return rl->count++ < burst;
}
