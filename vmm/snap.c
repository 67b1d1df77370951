// SPDX-License-Identifier: GPL-2.0-or-later
/* Growable writer and bounds-checked reader for little-endian state records. */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/xalloc.h"
#include "snap.h"

void snap_put(struct snap_writer *w, const void *p, size_t n)
{
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 256;

		while (cap < w->len + n)
			cap *= 2;
		w->buf = xrealloc(w->buf, cap);
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void snap_put_u8(struct snap_writer *w, uint8_t v)
{
	snap_put(w, &v, 1);
}

void snap_put_u16(struct snap_writer *w, uint16_t v)
{
	v = htole16(v);
	snap_put(w, &v, 2);
}

void snap_put_u32(struct snap_writer *w, uint32_t v)
{
	v = htole32(v);
	snap_put(w, &v, 4);
}

void snap_put_u64(struct snap_writer *w, uint64_t v)
{
	v = htole64(v);
	snap_put(w, &v, 8);
}

void snap_writer_free(struct snap_writer *w)
{
	free(w->buf);
	*w = (struct snap_writer){ 0 };
}

bool snap_get(struct snap_reader *r, void *dst, size_t n)
{
	if (r->bad || n > r->len - r->off) {
		r->bad = true;
		memset(dst, 0, n);
		return false;
	}
	memcpy(dst, r->buf + r->off, n);
	r->off += n;
	return true;
}

uint8_t snap_get_u8(struct snap_reader *r)
{
	uint8_t v;

	snap_get(r, &v, 1);
	return v;
}

uint16_t snap_get_u16(struct snap_reader *r)
{
	uint16_t v;

	snap_get(r, &v, 2);
	return le16toh(v);
}

uint32_t snap_get_u32(struct snap_reader *r)
{
	uint32_t v;

	snap_get(r, &v, 4);
	return le32toh(v);
}

uint64_t snap_get_u64(struct snap_reader *r)
{
	uint64_t v;

	snap_get(r, &v, 8);
	return le64toh(v);
}
