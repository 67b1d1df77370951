// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit test for vmm/initrd.c: the initramfs is a well-formed newc archive
 * whose /init is byte-identical to the embedded static agent, with the
 * directories and the console node the agent needs, and it is deterministic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/cleanup.h"
#include "lib/err.h"
#include "vmm/initrd.h"

static unsigned long hex8(const char *p)
{
	char tmp[9];

	memcpy(tmp, p, 8);
	tmp[8] = 0;
	return strtoul(tmp, NULL, 16);
}

static size_t build(char **out)
{
	struct kal_err *err = NULL;
	int fd = memfd_create("initrd", 0);
	off_t len;

	assert_true(fd >= 0);
	assert_int_equal(vmm_initrd_write(fd, &err), 0);
	len = lseek(fd, 0, SEEK_CUR);
	assert_true(len > 0);
	*out = malloc((size_t)len);
	assert_int_equal(pread(fd, *out, (size_t)len, 0), len);
	close(fd);
	return (size_t)len;
}

static void test_initrd_newc(void **state)
{
	_cleanup_free_ char *a = NULL, *b = NULL;
	size_t len = build(&a), off = 0, agent_len;
	const unsigned char *agent = vmm_initrd_agent(&agent_len);
	int seen_init = 0, seen_console = 0, seen_dirs = 0, trailer = 0;

	(void)state;
	assert_int_equal(len % 4, 0);
	while (off + 110 <= len && !trailer) {
		const char *h = a + off;
		unsigned long mode = hex8(h + 14), size = hex8(h + 54), namesize = hex8(h + 94);
		const char *name = h + 110;

		assert_memory_equal(h, "070701", 6);
		assert_true(off + 110 + namesize <= len);
		assert_int_equal(name[namesize - 1], 0);
		off = (off + 110 + namesize + 3) & ~(size_t)3;
		if (!strcmp(name, "init")) {
			assert_int_equal(mode, S_IFREG | 0755);
			assert_int_equal(size, agent_len);
			assert_memory_equal(a + off, agent, agent_len);
			seen_init = 1;
		} else if (!strcmp(name, "dev/console")) {
			assert_int_equal(mode, S_IFCHR | 0600);
			assert_int_equal(hex8(h + 78), 5); /* rdevmajor */
			assert_int_equal(hex8(h + 86), 1);
			seen_console = 1;
		} else if (!strcmp(name, "TRAILER!!!")) {
			trailer = 1;
		} else {
			assert_int_equal(mode, S_IFDIR | 0755);
			seen_dirs++;
		}
		off = (off + size + 3) & ~(size_t)3;
	}
	assert_true(trailer && seen_init && seen_console);
	assert_int_equal(seen_dirs, 5);
	assert_int_equal(off, len);
	/* the agent is a static ELF */
	assert_memory_equal(agent, "\177ELF", 4);
	/* deterministic: same bytes every time */
	assert_int_equal(build(&b), len);
	assert_memory_equal(a, b, len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_initrd_newc),
	};

	return cmocka_run_group_tests_name("initrd", tests, NULL, NULL);
}
