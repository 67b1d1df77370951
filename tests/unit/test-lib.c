// SPDX-License-Identifier: GPL-2.0-or-later
/* Unit tests for lib/: the error chain, atomic publication and full-length I/O. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/cleanup.h"
#include "lib/err.h"
#include "lib/fsutil.h"
#include "lib/xalloc.h"

static void test_err_wrap_chain(void **state)
{
	struct kal_err *err = NULL;

	(void)state;
	assert_int_equal(kal_err_sys(&err, ENOENT, "open `%s`", "x"), -1);
	assert_int_equal(kal_err_wrap(&err, "pull `%s`", "debian"), -1);
	assert_string_equal(err->msg, "pull `debian`: open `x`: No such file or directory");
	assert_int_equal(err->code, ENOENT);
	assert_int_equal(err->exit_code, KAL_EXIT_FAILURE);
	/* the first error wins: a later set does not overwrite the cause */
	kal_err_set(&err, EIO, "later");
	assert_int_equal(err->code, ENOENT);
	kal_err_clear(&err);
	assert_null(err);
	/* a NULL sink is allowed */
	assert_int_equal(kal_err_set(NULL, 0, "ignored"), -1);
}

static void test_atomic_write(void **state)
{
	char dir[] = "/tmp/kal-test-XXXXXX";
	_cleanup_free_ char *path = NULL, *buf = NULL;
	struct kal_err *err = NULL;
	struct kal_atomic a;
	size_t len;
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/obj", dir);
	assert_int_equal(kal_atomic_write_file(path, "hello", 5, 0444, &err), 0);
	assert_int_equal(kal_read_file(path, 100, &buf, &len, &err), 0);
	assert_int_equal(len, 5);
	assert_string_equal(buf, "hello");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0444);

	/* an aborted write leaves the old object and no temp file */
	assert_int_equal(kal_atomic_open(&a, path, 0444, &err), 0);
	assert_int_equal(kal_write_all(a.fd, "junk", 4, &err), 0);
	kal_atomic_abort(&a);
	free(buf);
	buf = NULL;
	assert_int_equal(kal_read_file(path, 100, &buf, &len, &err), 0);
	assert_string_equal(buf, "hello");

	/* a size cap is enforced */
	assert_int_equal(kal_read_file(path, 3, &buf, &len, &err), -1);
	assert_non_null(strstr(err->msg, "larger than 3 bytes"));
	kal_err_clear(&err);

	assert_int_equal(kal_rm_rf(dir, &err), 0);
	assert_int_equal(access(dir, F_OK), -1);
}

static void test_mkdir_p(void **state)
{
	char dir[] = "/tmp/kal-test-XXXXXX";
	_cleanup_free_ char *deep = NULL;
	struct kal_err *err = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	deep = xasprintf("%s/a/b/c", dir);
	assert_int_equal(kal_mkdir_p(deep, 0755, &err), 0);
	assert_int_equal(kal_mkdir_p(deep, 0755, &err), 0);
	assert_int_equal(access(deep, F_OK), 0);
	assert_int_equal(kal_rm_rf(dir, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_wrap_chain),
		cmocka_unit_test(test_atomic_write),
		cmocka_unit_test(test_mkdir_p),
	};

	return cmocka_run_group_tests_name("lib", tests, NULL, NULL);
}
