// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Encoders and strict decoders for the frames of guest/proto.h.  Only libc:
 * this file is compiled into kal and into the static musl agent.  Every
 * length the peer sends is checked against what is left of a payload that
 * itself is capped at KAL_PROTO_MAX_PAYLOAD, so nothing here allocates more
 * than a bounded amount (string list arrays: count <= KAL_PROTO_MAX_STRS).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (v >> (8 * i)) & 0xff;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

void kal_proto_hdr_encode(uint8_t out[KAL_PROTO_HDR_SIZE], const struct kal_frame_hdr *h)
{
	put32(out, h->len);
	put16(out + 4, h->type);
	put16(out + 6, h->flags);
	put32(out + 8, h->session);
}

int kal_proto_type_known(uint16_t t)
{
	switch (t) {
	case KAL_MSG_HELLO:
	case KAL_MSG_PING:
	case KAL_MSG_PONG:
	case KAL_MSG_ERROR:
	case KAL_MSG_OK:
	case KAL_MSG_SPAWN:
	case KAL_MSG_SPAWNED:
	case KAL_MSG_STDIN:
	case KAL_MSG_STDIN_EOF:
	case KAL_MSG_STDOUT:
	case KAL_MSG_STDERR:
	case KAL_MSG_RESIZE:
	case KAL_MSG_SIGNAL:
	case KAL_MSG_WAIT:
	case KAL_MSG_EXIT:
	case KAL_MSG_LIST:
	case KAL_MSG_LIST_REPLY:
	case KAL_MSG_DETACH:
	case KAL_MSG_FILE_READ:
	case KAL_MSG_FILE_WRITE:
	case KAL_MSG_FILE_DATA:
	case KAL_MSG_FILE_END:
	case KAL_MSG_SYNC:
		return 1;
	default:
		return t >= KAL_MSG_CTL_FIRST && t <= KAL_MSG_CTL_LAST;
	}
}

const char *kal_proto_type_name(uint16_t t)
{
	static char other[16];

	switch (t) {
	case KAL_MSG_HELLO:
		return "HELLO";
	case KAL_MSG_PING:
		return "PING";
	case KAL_MSG_PONG:
		return "PONG";
	case KAL_MSG_ERROR:
		return "ERROR";
	case KAL_MSG_OK:
		return "OK";
	case KAL_MSG_SPAWN:
		return "SPAWN";
	case KAL_MSG_SPAWNED:
		return "SPAWNED";
	case KAL_MSG_STDIN:
		return "STDIN";
	case KAL_MSG_STDIN_EOF:
		return "STDIN_EOF";
	case KAL_MSG_STDOUT:
		return "STDOUT";
	case KAL_MSG_STDERR:
		return "STDERR";
	case KAL_MSG_RESIZE:
		return "RESIZE";
	case KAL_MSG_SIGNAL:
		return "SIGNAL";
	case KAL_MSG_WAIT:
		return "WAIT";
	case KAL_MSG_EXIT:
		return "EXIT";
	case KAL_MSG_LIST:
		return "LIST";
	case KAL_MSG_LIST_REPLY:
		return "LIST_REPLY";
	case KAL_MSG_DETACH:
		return "DETACH";
	case KAL_MSG_FILE_READ:
		return "FILE_READ";
	case KAL_MSG_FILE_WRITE:
		return "FILE_WRITE";
	case KAL_MSG_FILE_DATA:
		return "FILE_DATA";
	case KAL_MSG_FILE_END:
		return "FILE_END";
	case KAL_MSG_SYNC:
		return "SYNC";
	default:
		snprintf(other, sizeof(other), "0x%x", t);
		return other;
	}
}

int kal_proto_hdr_decode(const uint8_t in[KAL_PROTO_HDR_SIZE], struct kal_frame_hdr *h)
{
	h->len = get32(in);
	h->type = get16(in + 4);
	h->flags = get16(in + 6);
	h->session = get32(in + 8);
	if (h->len > KAL_PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (!kal_proto_type_known(h->type) || h->flags != 0)
		return -EPROTO;
	return 0;
}

/* ---- writer ---- */

void kal_proto_w_init(struct kal_proto_w *w, uint8_t *buf, uint16_t type, uint32_t session)
{
	struct kal_frame_hdr h = { .type = type, .session = session };

	w->buf = buf;
	w->len = KAL_PROTO_HDR_SIZE;
	w->bad = 0;
	kal_proto_hdr_encode(buf, &h);
}

static uint8_t *w_room(struct kal_proto_w *w, size_t n)
{
	uint8_t *p;

	if (w->bad || n > KAL_PROTO_MAX_FRAME - w->len) {
		w->bad = 1;
		return NULL;
	}
	p = w->buf + w->len;
	w->len += n;
	return p;
}

void kal_proto_w_u8(struct kal_proto_w *w, uint8_t v)
{
	uint8_t *p = w_room(w, 1);

	if (p)
		*p = v;
}

void kal_proto_w_u16(struct kal_proto_w *w, uint16_t v)
{
	uint8_t *p = w_room(w, 2);

	if (p)
		put16(p, v);
}

void kal_proto_w_u32(struct kal_proto_w *w, uint32_t v)
{
	uint8_t *p = w_room(w, 4);

	if (p)
		put32(p, v);
}

void kal_proto_w_u64(struct kal_proto_w *w, uint64_t v)
{
	kal_proto_w_u32(w, (uint32_t)v);
	kal_proto_w_u32(w, (uint32_t)(v >> 32));
}

void kal_proto_w_str(struct kal_proto_w *w, const char *s)
{
	size_t n;

	if (!s)
		s = "";
	n = strlen(s) + 1;
	if (n > KAL_PROTO_MAX_PAYLOAD) {
		w->bad = 1;
		return;
	}
	kal_proto_w_u32(w, (uint32_t)n);
	kal_proto_w_data(w, s, n);
}

void kal_proto_w_strlist(struct kal_proto_w *w, const char *const *v, uint32_t n)
{
	if (n > KAL_PROTO_MAX_STRS) {
		w->bad = 1;
		return;
	}
	kal_proto_w_u32(w, n);
	for (uint32_t i = 0; i < n; i++)
		kal_proto_w_str(w, v[i]);
}

void kal_proto_w_data(struct kal_proto_w *w, const void *p, size_t n)
{
	uint8_t *d = w_room(w, n);

	if (d && n)
		memcpy(d, p, n);
}

long kal_proto_w_finish(struct kal_proto_w *w)
{
	if (w->bad)
		return -EMSGSIZE;
	put32(w->buf, (uint32_t)(w->len - KAL_PROTO_HDR_SIZE));
	return (long)w->len;
}

/* ---- reader ---- */

void kal_proto_r_init(struct kal_proto_r *r, const void *payload, size_t len)
{
	r->p = payload;
	r->len = len;
	r->off = 0;
	r->bad = 0;
}

static const uint8_t *r_take(struct kal_proto_r *r, size_t n)
{
	const uint8_t *p;

	if (r->bad || n > r->len - r->off) {
		r->bad = 1;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

uint8_t kal_proto_r_u8(struct kal_proto_r *r)
{
	const uint8_t *p = r_take(r, 1);

	return p ? *p : 0;
}

uint16_t kal_proto_r_u16(struct kal_proto_r *r)
{
	const uint8_t *p = r_take(r, 2);

	return p ? get16(p) : 0;
}

uint32_t kal_proto_r_u32(struct kal_proto_r *r)
{
	const uint8_t *p = r_take(r, 4);

	return p ? get32(p) : 0;
}

uint64_t kal_proto_r_u64(struct kal_proto_r *r)
{
	uint64_t lo = kal_proto_r_u32(r);

	return lo | ((uint64_t)kal_proto_r_u32(r) << 32);
}

const char *kal_proto_r_str(struct kal_proto_r *r)
{
	uint32_t n = kal_proto_r_u32(r);
	const uint8_t *p;

	if (r->bad)
		return NULL;
	if (n == 0) {
		r->bad = 1;
		return NULL;
	}
	p = r_take(r, n);
	/* exactly one NUL, at the end: no truncated or smuggled strings */
	if (!p || p[n - 1] != 0 || memchr(p, 0, n - 1)) {
		r->bad = 1;
		return NULL;
	}
	return (const char *)p;
}

const char **kal_proto_r_strlist(struct kal_proto_r *r, uint32_t *count)
{
	uint32_t n = kal_proto_r_u32(r);
	const char **v;

	*count = 0;
	/* each string needs at least 5 bytes, so a count the payload cannot hold is bad */
	if (r->bad || n > KAL_PROTO_MAX_STRS || (size_t)n * 5 > r->len - r->off) {
		r->bad = 1;
		return NULL;
	}
	v = calloc((size_t)n + 1, sizeof(*v));
	if (!v) {
		r->bad = 1;
		return NULL;
	}
	for (uint32_t i = 0; i < n; i++) {
		v[i] = kal_proto_r_str(r);
		if (!v[i]) {
			free(v);
			return NULL;
		}
	}
	*count = n;
	return v;
}

int kal_proto_r_end(struct kal_proto_r *r)
{
	return r->bad || r->off != r->len ? -EPROTO : 0;
}

/* ---- typed messages ---- */

long kal_proto_enc_hello(uint8_t *buf, uint32_t version, const char *software)
{
	struct kal_proto_w w;

	kal_proto_w_init(&w, buf, KAL_MSG_HELLO, 0);
	kal_proto_w_u32(&w, version);
	kal_proto_w_u32(&w, KAL_PROTO_MAX_PAYLOAD);
	kal_proto_w_str(&w, software);
	return kal_proto_w_finish(&w);
}

int kal_proto_dec_hello(const void *p, size_t n, struct kal_msg_hello *m)
{
	struct kal_proto_r r;

	kal_proto_r_init(&r, p, n);
	m->version = kal_proto_r_u32(&r);
	m->max_payload = kal_proto_r_u32(&r);
	m->software = kal_proto_r_str(&r);
	return kal_proto_r_end(&r);
}

long kal_proto_enc_spawn(uint8_t *buf, uint32_t session, const struct kal_msg_spawn *m)
{
	struct kal_proto_w w;

	if (m->argc < 1 || (m->flags & ~KAL_SPAWN_KNOWN))
		return -EINVAL;
	kal_proto_w_init(&w, buf, KAL_MSG_SPAWN, session);
	kal_proto_w_u32(&w, m->flags);
	kal_proto_w_u16(&w, m->rows);
	kal_proto_w_u16(&w, m->cols);
	kal_proto_w_u32(&w, m->uid);
	kal_proto_w_u32(&w, m->gid);
	kal_proto_w_str(&w, m->user);
	kal_proto_w_str(&w, m->cwd);
	kal_proto_w_str(&w, m->term);
	kal_proto_w_strlist(&w, m->argv, m->argc);
	kal_proto_w_strlist(&w, m->env, m->envc);
	return kal_proto_w_finish(&w);
}

int kal_proto_dec_spawn(const void *p, size_t n, struct kal_msg_spawn *m)
{
	struct kal_proto_r r;

	memset(m, 0, sizeof(*m));
	kal_proto_r_init(&r, p, n);
	m->flags = kal_proto_r_u32(&r);
	m->rows = kal_proto_r_u16(&r);
	m->cols = kal_proto_r_u16(&r);
	m->uid = kal_proto_r_u32(&r);
	m->gid = kal_proto_r_u32(&r);
	m->user = kal_proto_r_str(&r);
	m->cwd = kal_proto_r_str(&r);
	m->term = kal_proto_r_str(&r);
	m->argv = kal_proto_r_strlist(&r, &m->argc);
	if (m->argv)
		m->env = kal_proto_r_strlist(&r, &m->envc);
	if (kal_proto_r_end(&r) < 0 || m->argc < 1 || !m->argv[0][0] ||
	    (m->flags & ~KAL_SPAWN_KNOWN)) {
		kal_proto_spawn_free(m);
		return -EPROTO;
	}
	return 0;
}

void kal_proto_spawn_free(struct kal_msg_spawn *m)
{
	free(m->argv);
	free(m->env);
	m->argv = m->env = NULL;
	m->argc = m->envc = 0;
}

long kal_proto_enc_exit(uint8_t *buf, uint32_t session, const struct kal_msg_exit *m)
{
	struct kal_proto_w w;

	kal_proto_w_init(&w, buf, KAL_MSG_EXIT, session);
	kal_proto_w_u8(&w, m->kind);
	kal_proto_w_u32(&w, (uint32_t)m->code);
	kal_proto_w_u32(&w, m->signo);
	return kal_proto_w_finish(&w);
}

int kal_proto_dec_exit(const void *p, size_t n, struct kal_msg_exit *m)
{
	struct kal_proto_r r;

	kal_proto_r_init(&r, p, n);
	m->kind = kal_proto_r_u8(&r);
	m->code = (int32_t)kal_proto_r_u32(&r);
	m->signo = kal_proto_r_u32(&r);
	if (kal_proto_r_end(&r) < 0 || m->kind > KAL_EXIT_KIND_SIGNALED)
		return -EPROTO;
	return 0;
}

long kal_proto_enc_error(uint8_t *buf, uint32_t session, int32_t errnum, const char *msg)
{
	struct kal_proto_w w;
	char cut[1024];

	/* an error message is never worth failing the frame for: truncate it */
	snprintf(cut, sizeof(cut), "%s", msg ? msg : "");
	kal_proto_w_init(&w, buf, KAL_MSG_ERROR, session);
	kal_proto_w_u32(&w, (uint32_t)errnum);
	kal_proto_w_str(&w, cut);
	return kal_proto_w_finish(&w);
}

int kal_proto_dec_error(const void *p, size_t n, struct kal_msg_error *m)
{
	struct kal_proto_r r;

	kal_proto_r_init(&r, p, n);
	m->errnum = (int32_t)kal_proto_r_u32(&r);
	m->message = kal_proto_r_str(&r);
	return kal_proto_r_end(&r);
}

long kal_proto_enc_data(uint8_t *buf, uint16_t type, uint32_t session, const void *p, size_t n)
{
	struct kal_proto_w w;

	kal_proto_w_init(&w, buf, type, session);
	kal_proto_w_data(&w, p, n);
	return kal_proto_w_finish(&w);
}

long kal_proto_enc_empty(uint8_t *buf, uint16_t type, uint32_t session)
{
	struct kal_proto_w w;

	kal_proto_w_init(&w, buf, type, session);
	return kal_proto_w_finish(&w);
}

long kal_proto_enc_u64(uint8_t *buf, uint16_t type, uint32_t session, uint64_t v)
{
	struct kal_proto_w w;

	kal_proto_w_init(&w, buf, type, session);
	kal_proto_w_u64(&w, v);
	return kal_proto_w_finish(&w);
}

long kal_proto_enc_u32(uint8_t *buf, uint16_t type, uint32_t session, uint32_t v)
{
	struct kal_proto_w w;

	kal_proto_w_init(&w, buf, type, session);
	kal_proto_w_u32(&w, v);
	return kal_proto_w_finish(&w);
}

long kal_proto_enc_resize(uint8_t *buf, uint32_t session, uint16_t rows, uint16_t cols)
{
	struct kal_proto_w w;

	kal_proto_w_init(&w, buf, KAL_MSG_RESIZE, session);
	kal_proto_w_u16(&w, rows);
	kal_proto_w_u16(&w, cols);
	return kal_proto_w_finish(&w);
}

int kal_proto_dec_u64(const void *p, size_t n, uint64_t *v)
{
	struct kal_proto_r r;

	kal_proto_r_init(&r, p, n);
	*v = kal_proto_r_u64(&r);
	return kal_proto_r_end(&r);
}

int kal_proto_dec_u32(const void *p, size_t n, uint32_t *v)
{
	struct kal_proto_r r;

	kal_proto_r_init(&r, p, n);
	*v = kal_proto_r_u32(&r);
	return kal_proto_r_end(&r);
}

int kal_proto_dec_resize(const void *p, size_t n, uint16_t *rows, uint16_t *cols)
{
	struct kal_proto_r r;

	kal_proto_r_init(&r, p, n);
	*rows = kal_proto_r_u16(&r);
	*cols = kal_proto_r_u16(&r);
	return kal_proto_r_end(&r);
}

int kal_proto_dec_empty(const void *p, size_t n)
{
	(void)p;
	return n ? -EPROTO : 0;
}

/* ---- stream reassembly ---- */

int kal_proto_reader_frame(struct kal_proto_reader *r, struct kal_frame_hdr *h,
			   const uint8_t **payload)
{
	int rc;

	if (r->have < KAL_PROTO_HDR_SIZE)
		return 0;
	rc = kal_proto_hdr_decode(r->buf, h);
	if (rc < 0)
		return rc;
	if (r->have - KAL_PROTO_HDR_SIZE < h->len)
		return 0;
	*payload = r->buf + KAL_PROTO_HDR_SIZE;
	return 1;
}

void kal_proto_reader_consume(struct kal_proto_reader *r)
{
	struct kal_frame_hdr h;
	size_t n;

	if (r->have < KAL_PROTO_HDR_SIZE || kal_proto_hdr_decode(r->buf, &h) < 0) {
		r->have = 0;
		return;
	}
	n = KAL_PROTO_HDR_SIZE + h.len;
	if (n > r->have)
		n = r->have;
	memmove(r->buf, r->buf + n, r->have - n);
	r->have -= n;
}

static long reader_read_fd(void *ctx, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(*(int *)ctx, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

int kal_proto_reader_fill_from(struct kal_proto_reader *r,
			       long (*rd)(void *ctx, void *buf, size_t len), void *ctx)
{
	struct kal_frame_hdr h;
	const uint8_t *p;
	long n;
	int rc;

	rc = kal_proto_reader_frame(r, &h, &p);
	if (rc != 0)
		return rc;
	/* no complete frame yet, so there is room: a frame never exceeds the buffer */
	n = rd(ctx, r->buf + r->have, sizeof(r->buf) - r->have);
	if (n < 0)
		return n == -EAGAIN || n == -EWOULDBLOCK ? 0 : (int)n;
	if (n == 0)
		return -EPIPE;
	r->have += (size_t)n;
	return kal_proto_reader_frame(r, &h, &p);
}

int kal_proto_reader_fill(struct kal_proto_reader *r, int fd)
{
	return kal_proto_reader_fill_from(r, reader_read_fd, &fd);
}
