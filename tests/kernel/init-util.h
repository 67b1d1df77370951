/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What every static test /init in tests/kernel/ needs: a line to the console
 * (fd 1, "T: ..." lines the bats files read), and a way out that ends the VM
 * (reboot: the VMMs turn the reset into the end of the run).
 */
#ifndef KAL_TESTS_KERNEL_INIT_UTIL_H
#define KAL_TESTS_KERNEL_INIT_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <unistd.h>

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(1, buf, (size_t)n) < 0)
		return;
}

static void power_off(void)
{
	sync();
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

static void fail(const char *what)
{
	say("T: FAIL %s: %s", what, strerror(errno));
	power_off();
}

#endif
