// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Image reference parsing: docker's normalisation for valid names, the exact
 * error text for invalid ones, canonical/familiar forms and loopback domains.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imagecache/ref.h"
#include "lib/cleanup.h"
#include "lib/err.h"
#include "lib/xalloc.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct valid_case {
	const char *in;
	const char *domain, *repo, *tag; /* tag NULL: digest only */
	bool digest;
	const char *canonical, *familiar;
};

static const struct valid_case valid[] = {
	{ "debian", "docker.io", "library/debian", "latest", false,
	  "docker.io/library/debian:latest", "debian:latest" },
	{ "debian:12", "docker.io", "library/debian", "12", false, "docker.io/library/debian:12",
	  "debian:12" },
	{ "user/app", "docker.io", "user/app", "latest", false, "docker.io/user/app:latest",
	  "user/app:latest" },
	{ "docker.io/library/debian:bookworm-slim", "docker.io", "library/debian", "bookworm-slim",
	  false, "docker.io/library/debian:bookworm-slim", "debian:bookworm-slim" },
	{ "index.docker.io/library/alpine", "docker.io", "library/alpine", "latest", false,
	  "docker.io/library/alpine:latest", "alpine:latest" },
	{ "localhost/x", "localhost", "x", "latest", false, "localhost/x:latest",
	  "localhost/x:latest" },
	{ "localhost:5000/x", "localhost:5000", "x", "latest", false, "localhost:5000/x:latest",
	  "localhost:5000/x:latest" },
	{ "127.0.0.1:5000/a/b:tag", "127.0.0.1:5000", "a/b", "tag", false, "127.0.0.1:5000/a/b:tag",
	  "127.0.0.1:5000/a/b:tag" },
	{ "[::1]:5000/img:1.0", "[::1]:5000", "img", "1.0", false, "[::1]:5000/img:1.0",
	  "[::1]:5000/img:1.0" },
	{ "ghcr.io/org/sub/img", "ghcr.io", "org/sub/img", "latest", false,
	  "ghcr.io/org/sub/img:latest", "ghcr.io/org/sub/img:latest" },
	{ "Registry.Example.COM/team/app", "Registry.Example.COM", "team/app", "latest", false,
	  "Registry.Example.COM/team/app:latest", "Registry.Example.COM/team/app:latest" },
	{ "x@sha256:" D64, "docker.io", "library/x", NULL, true, "docker.io/library/x@sha256:" D64,
	  "x@sha256:" D64 },
	{ "x:tag@sha256:" D64, "docker.io", "library/x", "tag", true,
	  "docker.io/library/x:tag@sha256:" D64, "x:tag@sha256:" D64 },
	{ "a/b.c_d__e-f---g", "docker.io", "a/b.c_d__e-f---g", "latest", false,
	  "docker.io/a/b.c_d__e-f---g:latest", "a/b.c_d__e-f---g:latest" },
	{ "app:_Tag.With-Mixed_Case", "docker.io", "library/app", "_Tag.With-Mixed_Case", false,
	  "docker.io/library/app:_Tag.With-Mixed_Case", "app:_Tag.With-Mixed_Case" },
};

static void test_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		const struct valid_case *c = &valid[i];
		struct ic_ref r;
		struct kal_err *err = NULL;
		_cleanup_free_ char *canon = NULL, *fam = NULL;

		if (ic_ref_parse(c->in, &r, &err) < 0)
			fail_msg("`%s`: %s", c->in, err->msg);
		assert_string_equal(r.domain, c->domain);
		assert_string_equal(r.repo, c->repo);
		if (c->tag)
			assert_string_equal(r.tag, c->tag);
		else
			assert_null(r.tag);
		assert_int_equal(r.has_digest, c->digest);
		if (c->digest)
			assert_string_equal(r.digest.hex, D64);
		canon = ic_ref_string(&r);
		fam = ic_ref_familiar(&r);
		assert_string_equal(canon, c->canonical);
		assert_string_equal(fam, c->familiar);
		ic_ref_free(&r);

		/* the canonical form parses back to itself */
		assert_int_equal(ic_ref_parse(canon, &r, &err), 0);
		{
			_cleanup_free_ char *again = ic_ref_string(&r);

			assert_string_equal(again, c->canonical);
		}
		ic_ref_free(&r);
	}
}

struct invalid_case {
	const char *in;
	const char *msg;
};

static void test_invalid(void **state)
{
	static char long_tag[160], long_name[300], long_total[300];
	const struct invalid_case cases[] = {
		{ "", "invalid reference: empty name" },
		{ "Debian", "invalid reference `Debian`: repository name must be lowercase" },
		{ "docker.io/User/app", "invalid reference `docker.io/User/app`: repository name "
					"must be lowercase" },
		{ "localhost:5000/Foo:1", "invalid reference `localhost:5000/Foo:1`: repository "
					  "name must be lowercase" },
		{ long_tag, NULL }, /* filled below */
		{ long_name, NULL },
		{ long_total, NULL },
		{ "debian:", "invalid reference `debian:`: invalid tag ``" },
		{ "debian:-x", "invalid reference `debian:-x`: invalid tag `-x`" },
		{ "debian:a/b",
		  "invalid reference `debian:a/b`: invalid registry domain `debian:a`" },
		{ "x@sha256:abc", "invalid reference `x@sha256:abc`: invalid digest `sha256:abc`: "
				  "want 64 lowercase hex characters" },
		{ "x@md5:abc",
		  "invalid reference `x@md5:abc`: unsupported digest algorithm `md5`" },
		{ "x@sha256:" D64 "@sha256:" D64, NULL },
		{ ":tag", "invalid reference `:tag`: empty repository name" },
		{ "a//b", "invalid reference `a//b`: invalid reference format" },
		{ "a/b/", "invalid reference `a/b/`: invalid reference format" },
		{ "-a/b", "invalid reference `-a/b`: invalid reference format" },
		{ "a_/b", "invalid reference `a_/b`: invalid reference format" },
		{ "a___b", "invalid reference `a___b`: invalid reference format" },
		{ "a..b", "invalid reference `a..b`: invalid reference format" },
		{ "ex ample/x", "invalid reference `ex ample/x`: invalid reference format" },
		{ "-host.io/x",
		  "invalid reference `-host.io/x`: invalid registry domain `-host.io`" },
		{ "host.io:99999/x",
		  "invalid reference `host.io:99999/x`: invalid registry domain `host.io:99999`" },
		{ "[::1/x", "invalid reference `[::1/x`: invalid registry domain `[::1`" },
		{ "[zz::1]:5000/x",
		  "invalid reference `[zz::1]:5000/x`: invalid registry domain `[zz::1]:5000`" },
		{ D64, "invalid reference `" D64 "`: a bare 64-character hex string is not a name "
		       "(use name@sha256:...)" },
		{ "a/../b", "invalid reference `a/../b`: invalid reference format" },
		{ "a?b", "invalid reference `a?b`: invalid reference format" },
	};
	char want_tag[400], want_name[600], want_total[600];

	(void)state;
	memset(long_tag, 0, sizeof(long_tag));
	strcpy(long_tag, "debian:");
	memset(long_tag + 7, 't', 129);
	snprintf(want_tag, sizeof(want_tag),
		 "invalid reference `%s`: tag must not be more than 128 characters", long_tag);
	memset(long_name, 0, sizeof(long_name));
	memset(long_name, 'a', 256);
	snprintf(want_name, sizeof(want_name),
		 "invalid reference `%s`: repository name must not be more than 255 characters",
		 long_name);
	/* 240 characters of repo: fine alone, too long with "docker.io/library/" */
	memset(long_total, 0, sizeof(long_total));
	memset(long_total, 'b', 240);
	snprintf(want_total, sizeof(want_total),
		 "invalid reference `%s`: repository name must not be more than 255 characters",
		 long_total);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ic_ref r;
		struct kal_err *err = NULL;
		const char *want = cases[i].msg;

		if (cases[i].in == long_tag)
			want = want_tag;
		else if (cases[i].in == long_name)
			want = want_name;
		else if (cases[i].in == long_total)
			want = want_total;
		if (ic_ref_parse(cases[i].in, &r, &err) == 0)
			fail_msg("`%s` parsed but should not", cases[i].in);
		assert_non_null(err);
		if (want)
			assert_string_equal(err->msg, want);
		/* a failed parse leaves nothing to free */
		assert_null(r.domain);
		assert_null(r.repo);
		assert_null(r.tag);
		kal_err_free(err);
	}
}

static void test_max_lengths(void **state)
{
	char tag[200], name[300];
	struct ic_ref r;
	struct kal_err *err = NULL;

	(void)state;
	/* exactly 128 tag characters are fine */
	strcpy(tag, "debian:");
	memset(tag + 7, 't', 128);
	tag[7 + 128] = '\0';
	assert_int_equal(ic_ref_parse(tag, &r, &err), 0);
	assert_int_equal(strlen(r.tag), 128);
	ic_ref_free(&r);
	/* exactly 255 characters of domain/repo are fine */
	strcpy(name, "example.com/");
	memset(name + 12, 'a', 255 - 12);
	name[255] = '\0';
	assert_int_equal(ic_ref_parse(name, &r, &err), 0);
	ic_ref_free(&r);
}

static void test_api_host_and_loopback(void **state)
{
	_cleanup_free_ char *h1 = ic_ref_api_host("docker.io"), *h2 = ic_ref_api_host("ghcr.io"),
			    *h3 = ic_ref_api_host("127.0.0.1:5000");

	(void)state;
	assert_string_equal(h1, "registry-1.docker.io");
	assert_string_equal(h2, "ghcr.io");
	assert_string_equal(h3, "127.0.0.1:5000");

	assert_true(ic_ref_domain_is_loopback("localhost"));
	assert_true(ic_ref_domain_is_loopback("localhost:5000"));
	assert_true(ic_ref_domain_is_loopback("127.0.0.1"));
	assert_true(ic_ref_domain_is_loopback("127.0.0.1:5000"));
	assert_true(ic_ref_domain_is_loopback("127.1.2.3:80"));
	assert_true(ic_ref_domain_is_loopback("[::1]:5000"));
	assert_true(ic_ref_domain_is_loopback("[::1]"));
	assert_true(ic_ref_domain_is_loopback("::1"));
	assert_false(ic_ref_domain_is_loopback("128.0.0.1"));
	assert_false(ic_ref_domain_is_loopback("10.0.0.1:5000"));
	assert_false(ic_ref_domain_is_loopback("localhost.example.com"));
	assert_false(ic_ref_domain_is_loopback("127.0.0.1.nip.io"));
	assert_false(ic_ref_domain_is_loopback("[::2]:5000"));
	assert_false(ic_ref_domain_is_loopback("docker.io"));
	assert_false(ic_ref_domain_is_loopback(""));
}

static void test_grammar_helpers(void **state)
{
	(void)state;
	assert_true(ic_ref_repo_valid("library/debian"));
	assert_true(ic_ref_repo_valid("a/b/c"));
	assert_false(ic_ref_repo_valid("../x"));
	assert_false(ic_ref_repo_valid("a/"));
	assert_false(ic_ref_repo_valid(""));
	assert_false(ic_ref_repo_valid("a?x=1"));
	assert_true(ic_ref_tag_valid("latest"));
	assert_false(ic_ref_tag_valid(".hidden"));
	assert_false(ic_ref_tag_valid("a/b"));
	assert_false(ic_ref_tag_valid(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_max_lengths),
		cmocka_unit_test(test_api_host_and_loopback),
		cmocka_unit_test(test_grammar_helpers),
	};

	return cmocka_run_group_tests_name("ref", tests, NULL, NULL);
}
