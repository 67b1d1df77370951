/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Content digests.  Only sha256 is accepted; a digest string is parsed
 * strictly ("sha256:" + 64 lowercase hex) before it is ever used in a path or
 * a URL (reliability.md C2, CVE-2024-3727).  Streaming hashing uses
 * libcrypto's EVP interface.
 */
#ifndef KAL_IMAGECACHE_DIGEST_H
#define KAL_IMAGECACHE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

struct kal_err;

#define IC_DIGEST_HEX_LEN 64
#define IC_DIGEST_STR_LEN (7 + IC_DIGEST_HEX_LEN) /* "sha256:" + hex, without NUL */

struct ic_digest {
	char hex[IC_DIGEST_HEX_LEN + 1]; /* lowercase, NUL-terminated */
};

/* Parse "sha256:<64 lowercase hex>"; anything else is an error naming the input. */
int ic_digest_parse(const char *s, struct ic_digest *d, struct kal_err **err);
/* true when s is exactly 64 lowercase hex characters */
bool ic_digest_hex_valid(const char *s);
/* "sha256:<hex>" into buf (at least IC_DIGEST_STR_LEN + 1 bytes); returns buf */
char *ic_digest_str(const struct ic_digest *d, char *buf);
bool ic_digest_equal(const struct ic_digest *a, const struct ic_digest *b);

struct ic_hasher;
struct ic_hasher *ic_hasher_new(void);
void ic_hasher_update(struct ic_hasher *h, const void *buf, size_t len);
/* Finish into *out; the hasher can be reused after ic_hasher_reset. */
void ic_hasher_final(struct ic_hasher *h, struct ic_digest *out);
void ic_hasher_reset(struct ic_hasher *h);
void ic_hasher_free(struct ic_hasher *h);

void ic_digest_buf(const void *buf, size_t len, struct ic_digest *out);
/* Hash an fd from its current offset to EOF; *size receives the byte count. */
int ic_digest_fd(int fd, struct ic_digest *out, unsigned long long *size, struct kal_err **err);

#endif
