// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for image reference parsing: any accepted reference must
 * round-trip through its canonical form, and its repo must pass the grammar
 * check the registry client applies before building URLs.  The same input is
 * also fed to the WWW-Authenticate challenge parser.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imagecache/ref.h"
#include "imagecache/registry-auth.h"
#include "lib/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kal_err *err = NULL;
	struct ic_ref r, r2;
	char *s, *canon, *fam, *api;

	if (size > 4096)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	(void)ic_ref_domain_is_loopback(s);
	/* the same bytes as a WWW-Authenticate value (registry-controlled too) */
	{
		struct ic_auth_challenge c;

		if (ic_auth_challenge_parse(s, &c) == 0)
			ic_auth_challenge_free(&c);
	}
	if (ic_ref_parse(s, &r, &err) == 0) {
		if (!ic_ref_repo_valid(r.repo) || (r.tag && !ic_ref_tag_valid(r.tag)))
			abort();
		canon = ic_ref_string(&r);
		fam = ic_ref_familiar(&r);
		api = ic_ref_api_host(r.domain);
		(void)ic_ref_domain_is_loopback(r.domain);
		if (ic_ref_parse(canon, &r2, NULL) != 0)
			abort(); /* canonical names must parse */
		if (strcmp(r2.domain, r.domain) != 0 || strcmp(r2.repo, r.repo) != 0)
			abort();
		ic_ref_free(&r2);
		free(canon);
		free(fam);
		free(api);
		ic_ref_free(&r);
	}
	kal_err_free(err);
	free(s);
	return 0;
}
