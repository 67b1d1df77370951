// SPDX-License-Identifier: GPL-2.0-or-later
/* Unit tests for the command table: sorted, unique, complete metadata. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cmd.h"
#include "cli/help.h"
#include "cli/util.h"

static void test_table_sorted_unique(void **state)
{
	(void)state;
	for (size_t i = 1; kal_cmds[i]; i++)
		assert_true(strcmp(kal_cmds[i - 1]->name, kal_cmds[i]->name) < 0);
}

static void test_table_metadata(void **state)
{
	(void)state;
	for (size_t i = 0; kal_cmds[i]; i++) {
		const struct kal_cmd *c = kal_cmds[i];

		assert_non_null(c->summary);
		assert_non_null(c->usage);
		assert_non_null(c->exec);
		/* summaries are lower case without a final period, like `git help` */
		assert_false(c->summary[strlen(c->summary) - 1] == '.');
		for (const struct kal_opt *o = c->opts; o && o->name; o++)
			assert_non_null(o->help);
	}
	assert_ptr_equal(kal_cmd_find("help"), &kal_cmd_help);
	assert_null(kal_cmd_find("hel"));
	assert_string_equal(kal_help_suggest("hlep"), "help");
}

static void test_escape_terminal(void **state)
{
	char *s = kal_escape_terminal("a\x1b]0;pwn\x07z\xc2\x9b");

	(void)state;
	assert_string_equal(s, "a\\x1b]0;pwn\\x07z\\x9b");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_sorted_unique),
		cmocka_unit_test(test_table_metadata),
		cmocka_unit_test(test_escape_terminal),
	};

	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
