// SPDX-License-Identifier: GPL-2.0-or-later
/* Strict sha256 digest parsing and streaming hashing over libcrypto EVP. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "digest.h"

bool ic_digest_hex_valid(const char *s)
{
	size_t i;

	for (i = 0; i < IC_DIGEST_HEX_LEN; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return s[i] == '\0';
}

int ic_digest_parse(const char *s, struct ic_digest *d, struct kal_err **err)
{
	const char *colon = s ? strchr(s, ':') : NULL;

	if (!colon)
		return kal_err_set(err, EINVAL, "invalid digest `%.80s`: expected sha256:<hex>",
				   s ? s : "");
	if ((size_t)(colon - s) != 6 || strncmp(s, "sha256", 6) != 0)
		return kal_err_set(err, EINVAL, "unsupported digest algorithm `%.*s`",
				   (int)((colon - s) > 32 ? 32 : (colon - s)), s);
	if (!ic_digest_hex_valid(colon + 1))
		return kal_err_set(err, EINVAL,
				   "invalid digest `%.80s`: want 64 lowercase hex characters", s);
	memcpy(d->hex, colon + 1, IC_DIGEST_HEX_LEN + 1);
	return 0;
}

char *ic_digest_str(const struct ic_digest *d, char *buf)
{
	memcpy(buf, "sha256:", 7);
	memcpy(buf + 7, d->hex, IC_DIGEST_HEX_LEN + 1);
	return buf;
}

bool ic_digest_equal(const struct ic_digest *a, const struct ic_digest *b)
{
	return memcmp(a->hex, b->hex, IC_DIGEST_HEX_LEN) == 0;
}

struct ic_hasher {
	EVP_MD_CTX *ctx;
};

struct ic_hasher *ic_hasher_new(void)
{
	struct ic_hasher *h = xmalloc(sizeof(*h));

	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx) {
		fputs("kal: out of memory\n", stderr);
		abort();
	}
	ic_hasher_reset(h);
	return h;
}

void ic_hasher_reset(struct ic_hasher *h)
{
	EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

void ic_hasher_update(struct ic_hasher *h, const void *buf, size_t len)
{
	EVP_DigestUpdate(h->ctx, buf, len);
}

void ic_hasher_final(struct ic_hasher *h, struct ic_digest *out)
{
	static const char hexd[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int n = 0;

	EVP_DigestFinal_ex(h->ctx, md, &n);
	for (unsigned int i = 0; i < 32; i++) {
		out->hex[2 * i] = hexd[md[i] >> 4];
		out->hex[2 * i + 1] = hexd[md[i] & 15];
	}
	out->hex[IC_DIGEST_HEX_LEN] = '\0';
}

void ic_hasher_free(struct ic_hasher *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

void ic_digest_buf(const void *buf, size_t len, struct ic_digest *out)
{
	struct ic_hasher *h = ic_hasher_new();

	ic_hasher_update(h, buf, len);
	ic_hasher_final(h, out);
	ic_hasher_free(h);
}

int ic_digest_fd(int fd, struct ic_digest *out, unsigned long long *size, struct kal_err **err)
{
	struct ic_hasher *h = ic_hasher_new();
	unsigned long long total = 0;
	char *buf = xmalloc(1 << 20);
	int rc = 0;

	for (;;) {
		ssize_t n = read(fd, buf, 1 << 20);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = kal_err_sys(err, errno, "read");
			break;
		}
		if (n == 0)
			break;
		ic_hasher_update(h, buf, (size_t)n);
		total += (unsigned long long)n;
	}
	if (rc == 0) {
		ic_hasher_final(h, out);
		if (size)
			*size = total;
	}
	free(buf);
	ic_hasher_free(h);
	return rc;
}
