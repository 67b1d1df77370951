// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for guest/proto.c: every message round-trips, and every kind of
 * malformed frame (oversize, truncated, unknown type, flags, strings without
 * their NUL, counts the payload cannot hold, trailing bytes) is rejected.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest/proto.h"

static uint8_t buf[KAL_PROTO_MAX_FRAME];

/* decode the header of buf and return its payload length, checking the common fields */
static size_t check_hdr(long n, uint16_t type, uint32_t session)
{
	struct kal_frame_hdr h;

	assert_true(n >= KAL_PROTO_HDR_SIZE);
	assert_int_equal(kal_proto_hdr_decode(buf, &h), 0);
	assert_int_equal(h.type, type);
	assert_int_equal(h.session, session);
	assert_int_equal(h.flags, 0);
	assert_int_equal(h.len, (size_t)n - KAL_PROTO_HDR_SIZE);
	return h.len;
}

static void test_hdr_layout(void **state)
{
	struct kal_frame_hdr h = {
		.len = 0x01020304, .type = 0x0506, .flags = 0x0708, .session = 0x090a0b0c
	};
	static const uint8_t want[12] = { 4, 3, 2, 1, 6, 5, 8, 7, 0x0c, 0x0b, 0x0a, 0x09 };
	uint8_t out[12];

	(void)state;
	kal_proto_hdr_encode(out, &h);
	assert_memory_equal(out, want, sizeof(want)); /* little-endian on the wire */
}

static void test_hdr_rejects(void **state)
{
	struct kal_frame_hdr h = { .type = KAL_MSG_STDOUT, .session = 1 };
	struct kal_frame_hdr got;
	uint8_t out[12];

	(void)state;
	h.len = KAL_PROTO_MAX_PAYLOAD;
	kal_proto_hdr_encode(out, &h);
	assert_int_equal(kal_proto_hdr_decode(out, &got), 0);
	h.len = KAL_PROTO_MAX_PAYLOAD + 1;
	kal_proto_hdr_encode(out, &h);
	assert_int_equal(kal_proto_hdr_decode(out, &got), -EMSGSIZE);
	h.len = 0xffffffff;
	kal_proto_hdr_encode(out, &h);
	assert_int_equal(kal_proto_hdr_decode(out, &got), -EMSGSIZE);

	h.len = 0;
	for (unsigned int t = 0; t < 0x10000; t++) {
		h.type = (uint16_t)t;
		kal_proto_hdr_encode(out, &h);
		assert_int_equal(kal_proto_hdr_decode(out, &got) == 0,
				 kal_proto_type_known(h.type));
	}
	assert_false(kal_proto_type_known(0));
	assert_false(kal_proto_type_known(0x7f));
	assert_false(kal_proto_type_known(0x100));
	assert_true(kal_proto_type_known(KAL_MSG_CTL_FIRST));
	assert_true(kal_proto_type_known(KAL_MSG_CTL_LAST));

	h.type = KAL_MSG_STDIN;
	h.flags = 1;
	kal_proto_hdr_encode(out, &h);
	assert_int_equal(kal_proto_hdr_decode(out, &got), -EPROTO);
	assert_string_equal(kal_proto_type_name(KAL_MSG_SPAWN), "SPAWN");
	assert_string_equal(kal_proto_type_name(0x4242), "0x4242");
}

static void test_hello_roundtrip(void **state)
{
	struct kal_msg_hello m;
	long n = kal_proto_enc_hello(buf, KAL_PROTO_VERSION, "kal test");
	size_t len = check_hdr(n, KAL_MSG_HELLO, 0);

	(void)state;
	assert_int_equal(kal_proto_dec_hello(buf + KAL_PROTO_HDR_SIZE, len, &m), 0);
	assert_int_equal(m.version, KAL_PROTO_VERSION);
	assert_int_equal(m.max_payload, KAL_PROTO_MAX_PAYLOAD);
	assert_string_equal(m.software, "kal test");
	/* every truncation and one trailing byte are rejected */
	for (size_t i = 0; i < len; i++)
		assert_int_equal(kal_proto_dec_hello(buf + KAL_PROTO_HDR_SIZE, i, &m), -EPROTO);
	buf[n] = 0;
	assert_int_equal(kal_proto_dec_hello(buf + KAL_PROTO_HDR_SIZE, len + 1, &m), -EPROTO);
}

static void test_spawn_roundtrip(void **state)
{
	const char *argv[] = { "sh", "-c", "echo hi", "" };
	const char *env[] = { "A=1", "PATH=/bin" };
	struct kal_msg_spawn in = {
		.flags = KAL_SPAWN_PTY | KAL_SPAWN_STDIN,
		.rows = 24,
		.cols = 80,
		.uid = 1000,
		.gid = KAL_PROTO_ID_UNSET,
		.user = "dev",
		.cwd = "/work",
		.term = "xterm-256color",
		.argc = 4,
		.argv = argv,
		.envc = 2,
		.env = env,
	};
	struct kal_msg_spawn m;
	long n = kal_proto_enc_spawn(buf, 7, &in);
	size_t len = check_hdr(n, KAL_MSG_SPAWN, 7);

	(void)state;
	assert_int_equal(kal_proto_dec_spawn(buf + KAL_PROTO_HDR_SIZE, len, &m), 0);
	assert_int_equal(m.flags, in.flags);
	assert_int_equal(m.rows, 24);
	assert_int_equal(m.cols, 80);
	assert_int_equal(m.uid, 1000);
	assert_int_equal(m.gid, KAL_PROTO_ID_UNSET);
	assert_string_equal(m.user, "dev");
	assert_string_equal(m.cwd, "/work");
	assert_string_equal(m.term, "xterm-256color");
	assert_int_equal(m.argc, 4);
	assert_string_equal(m.argv[2], "echo hi");
	assert_string_equal(m.argv[3], "");
	assert_null(m.argv[4]);
	assert_int_equal(m.envc, 2);
	assert_string_equal(m.env[1], "PATH=/bin");
	assert_null(m.env[2]);
	kal_proto_spawn_free(&m);

	for (size_t i = 0; i < len; i++) {
		assert_int_equal(kal_proto_dec_spawn(buf + KAL_PROTO_HDR_SIZE, i, &m), -EPROTO);
		assert_null(m.argv);
	}
	buf[n] = 0;
	assert_int_equal(kal_proto_dec_spawn(buf + KAL_PROTO_HDR_SIZE, len + 1, &m), -EPROTO);

	/* the encoder refuses what the decoder would reject */
	in.argc = 0;
	assert_int_equal(kal_proto_enc_spawn(buf, 7, &in), -EINVAL);
	in.argc = 4;
	in.flags = 0x80;
	assert_int_equal(kal_proto_enc_spawn(buf, 7, &in), -EINVAL);
}

/* hand-built SPAWN payloads */
static size_t spawn_payload(uint8_t *p, uint32_t flags, uint32_t argc, const char *argv0,
			    uint32_t envc)
{
	struct kal_proto_w w;

	kal_proto_w_init(&w, buf, KAL_MSG_SPAWN, 1);
	kal_proto_w_u32(&w, flags);
	kal_proto_w_u16(&w, 0);
	kal_proto_w_u16(&w, 0);
	kal_proto_w_u32(&w, KAL_PROTO_ID_UNSET);
	kal_proto_w_u32(&w, KAL_PROTO_ID_UNSET);
	kal_proto_w_str(&w, "");
	kal_proto_w_str(&w, "");
	kal_proto_w_str(&w, "");
	kal_proto_w_u32(&w, argc);
	if (argv0)
		kal_proto_w_str(&w, argv0);
	kal_proto_w_u32(&w, envc);
	assert_true(kal_proto_w_finish(&w) > 0);
	memcpy(p, buf + KAL_PROTO_HDR_SIZE, w.len - KAL_PROTO_HDR_SIZE);
	return w.len - KAL_PROTO_HDR_SIZE;
}

static void test_spawn_rejects(void **state)
{
	static uint8_t p[KAL_PROTO_MAX_PAYLOAD];
	struct kal_msg_spawn m;
	size_t n;

	(void)state;
	n = spawn_payload(p, 0, 1, "ls", 0);
	assert_int_equal(kal_proto_dec_spawn(p, n, &m), 0);
	kal_proto_spawn_free(&m);
	/* no command, an empty command, unknown flags */
	n = spawn_payload(p, 0, 0, NULL, 0);
	assert_int_equal(kal_proto_dec_spawn(p, n, &m), -EPROTO);
	n = spawn_payload(p, 0, 1, "", 0);
	assert_int_equal(kal_proto_dec_spawn(p, n, &m), -EPROTO);
	n = spawn_payload(p, 0x100, 1, "ls", 0);
	assert_int_equal(kal_proto_dec_spawn(p, n, &m), -EPROTO);
	/* counts the payload cannot hold: rejected before allocating */
	n = spawn_payload(p, 0, 0xffffffff, NULL, 0);
	assert_int_equal(kal_proto_dec_spawn(p, n, &m), -EPROTO);
	n = spawn_payload(p, 0, 1, "ls", 0x40000000);
	assert_int_equal(kal_proto_dec_spawn(p, n, &m), -EPROTO);
	n = spawn_payload(p, 0, KAL_PROTO_MAX_STRS + 1, NULL, 0);
	assert_int_equal(kal_proto_dec_spawn(p, n, &m), -EPROTO);
	assert_null(m.argv);
	assert_null(m.env);
}

static void test_string_rules(void **state)
{
	struct kal_proto_r r;
	/* str: u32 n, n bytes ending in the only NUL */
	static const uint8_t ok[] = { 3, 0, 0, 0, 'a', 'b', 0 };
	static const uint8_t no_nul[] = { 3, 0, 0, 0, 'a', 'b', 'c' };
	static const uint8_t inner_nul[] = { 3, 0, 0, 0, 'a', 0, 0 };
	static const uint8_t zero_len[] = { 0, 0, 0, 0 };
	static const uint8_t too_long[] = { 9, 0, 0, 0, 'a', 0 };
	static const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 'a', 0 };

	(void)state;
	kal_proto_r_init(&r, ok, sizeof(ok));
	assert_string_equal(kal_proto_r_str(&r), "ab");
	assert_int_equal(kal_proto_r_end(&r), 0);
	kal_proto_r_init(&r, no_nul, sizeof(no_nul));
	assert_null(kal_proto_r_str(&r));
	assert_int_equal(kal_proto_r_end(&r), -EPROTO);
	kal_proto_r_init(&r, inner_nul, sizeof(inner_nul));
	assert_null(kal_proto_r_str(&r));
	kal_proto_r_init(&r, zero_len, sizeof(zero_len));
	assert_null(kal_proto_r_str(&r));
	kal_proto_r_init(&r, too_long, sizeof(too_long));
	assert_null(kal_proto_r_str(&r));
	kal_proto_r_init(&r, huge, sizeof(huge));
	assert_null(kal_proto_r_str(&r));
	/* once bad, everything after reads as zero */
	assert_int_equal(kal_proto_r_u32(&r), 0);
	assert_int_equal(kal_proto_r_end(&r), -EPROTO);
}

static void test_small_messages(void **state)
{
	struct kal_msg_exit x = { .kind = KAL_EXIT_KIND_SIGNALED, .code = 137, .signo = 9 }, xo;
	struct kal_msg_error e;
	uint64_t v64;
	uint32_t v32;
	uint16_t rows, cols;
	size_t len;
	long n;

	(void)state;
	n = kal_proto_enc_exit(buf, 3, &x);
	len = check_hdr(n, KAL_MSG_EXIT, 3);
	assert_int_equal(kal_proto_dec_exit(buf + KAL_PROTO_HDR_SIZE, len, &xo), 0);
	assert_int_equal(xo.kind, KAL_EXIT_KIND_SIGNALED);
	assert_int_equal(xo.code, 137);
	assert_int_equal(xo.signo, 9);
	buf[KAL_PROTO_HDR_SIZE] = 2; /* unknown exit kind */
	assert_int_equal(kal_proto_dec_exit(buf + KAL_PROTO_HDR_SIZE, len, &xo), -EPROTO);
	assert_int_equal(kal_proto_dec_exit(buf + KAL_PROTO_HDR_SIZE, len - 1, &xo), -EPROTO);

	n = kal_proto_enc_error(buf, 4, ENOENT, "no such session");
	len = check_hdr(n, KAL_MSG_ERROR, 4);
	assert_int_equal(kal_proto_dec_error(buf + KAL_PROTO_HDR_SIZE, len, &e), 0);
	assert_int_equal(e.errnum, ENOENT);
	assert_string_equal(e.message, "no such session");

	n = kal_proto_enc_u64(buf, KAL_MSG_PING, 5, 0x1122334455667788ULL);
	len = check_hdr(n, KAL_MSG_PING, 5);
	assert_int_equal(kal_proto_dec_u64(buf + KAL_PROTO_HDR_SIZE, len, &v64), 0);
	assert_true(v64 == 0x1122334455667788ULL);
	assert_int_equal(kal_proto_dec_u64(buf + KAL_PROTO_HDR_SIZE, len - 1, &v64), -EPROTO);

	n = kal_proto_enc_u32(buf, KAL_MSG_SIGNAL, 6, 15);
	len = check_hdr(n, KAL_MSG_SIGNAL, 6);
	assert_int_equal(kal_proto_dec_u32(buf + KAL_PROTO_HDR_SIZE, len, &v32), 0);
	assert_int_equal(v32, 15);

	n = kal_proto_enc_resize(buf, 7, 50, 132);
	len = check_hdr(n, KAL_MSG_RESIZE, 7);
	assert_int_equal(kal_proto_dec_resize(buf + KAL_PROTO_HDR_SIZE, len, &rows, &cols), 0);
	assert_int_equal(rows, 50);
	assert_int_equal(cols, 132);
	assert_int_equal(kal_proto_dec_resize(buf + KAL_PROTO_HDR_SIZE, len + 1, &rows, &cols),
			 -EPROTO);

	n = kal_proto_enc_empty(buf, KAL_MSG_STDIN_EOF, 8);
	len = check_hdr(n, KAL_MSG_STDIN_EOF, 8);
	assert_int_equal(len, 0);
	assert_int_equal(kal_proto_dec_empty(buf, 0), 0);
	assert_int_equal(kal_proto_dec_empty(buf, 1), -EPROTO);
}

static void test_data_limits(void **state)
{
	static uint8_t data[KAL_PROTO_MAX_PAYLOAD + 1];
	long n;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	n = kal_proto_enc_data(buf, KAL_MSG_STDOUT, 9, data, KAL_PROTO_MAX_PAYLOAD);
	assert_int_equal(check_hdr(n, KAL_MSG_STDOUT, 9), KAL_PROTO_MAX_PAYLOAD);
	assert_memory_equal(buf + KAL_PROTO_HDR_SIZE, data, KAL_PROTO_MAX_PAYLOAD);
	/* one byte more does not fit: the writer reports it instead of overflowing */
	assert_int_equal(kal_proto_enc_data(buf, KAL_MSG_STDOUT, 9, data, sizeof(data)), -EMSGSIZE);
}

static void test_reader_stream(void **state)
{
	static struct kal_proto_reader rd;
	struct kal_frame_hdr h;
	const uint8_t *p;
	uint8_t stream[256];
	size_t total = 0;
	int fds[2], rc;
	long n;

	(void)state;
	/* two frames, delivered one byte at a time through a pipe */
	n = kal_proto_enc_data(buf, KAL_MSG_STDOUT, 1, "hello", 5);
	memcpy(stream, buf, (size_t)n);
	total = (size_t)n;
	n = kal_proto_enc_empty(buf, KAL_MSG_STDIN_EOF, 2);
	memcpy(stream + total, buf, (size_t)n);
	total += (size_t)n;

	assert_int_equal(pipe2(fds, O_NONBLOCK), 0);
	rd.have = 0;
	for (size_t i = 0; i < total - 12; i++) {
		assert_int_equal(write(fds[1], stream + i, 1), 1);
		rc = kal_proto_reader_fill(&rd, fds[0]);
		assert_int_equal(rc, i == 16 ? 1 : 0);
		if (rc == 1)
			break;
	}
	assert_int_equal(kal_proto_reader_frame(&rd, &h, &p), 1);
	assert_int_equal(h.type, KAL_MSG_STDOUT);
	assert_memory_equal(p, "hello", 5);
	kal_proto_reader_consume(&rd);
	assert_int_equal(kal_proto_reader_fill(&rd, fds[0]), 0); /* EAGAIN */
	assert_int_equal(write(fds[1], stream + 17, total - 17), (ssize_t)(total - 17));
	assert_int_equal(kal_proto_reader_fill(&rd, fds[0]), 1);
	assert_int_equal(kal_proto_reader_frame(&rd, &h, &p), 1);
	assert_int_equal(h.type, KAL_MSG_STDIN_EOF);
	assert_int_equal(h.session, 2);
	kal_proto_reader_consume(&rd);
	assert_int_equal(rd.have, 0);

	/* an oversize header is reported before any payload is read */
	{
		struct kal_frame_hdr big = { .len = KAL_PROTO_MAX_PAYLOAD + 1,
					     .type = KAL_MSG_STDOUT,
					     .session = 1 };
		uint8_t hb[12];

		kal_proto_hdr_encode(hb, &big);
		assert_int_equal(write(fds[1], hb, 12), 12);
		assert_int_equal(kal_proto_reader_fill(&rd, fds[0]), -EMSGSIZE);
		rd.have = 0;
	}
	/* a bad type too */
	{
		struct kal_frame_hdr bad = { .len = 0, .type = 0x77, .session = 1 };
		uint8_t hb[12];

		kal_proto_hdr_encode(hb, &bad);
		assert_int_equal(write(fds[1], hb, 12), 12);
		assert_int_equal(kal_proto_reader_fill(&rd, fds[0]), -EPROTO);
		rd.have = 0;
	}
	close(fds[1]);
	assert_int_equal(kal_proto_reader_fill(&rd, fds[0]), -EPIPE);
	close(fds[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_layout),	cmocka_unit_test(test_hdr_rejects),
		cmocka_unit_test(test_hello_roundtrip), cmocka_unit_test(test_spawn_roundtrip),
		cmocka_unit_test(test_spawn_rejects),	cmocka_unit_test(test_string_rules),
		cmocka_unit_test(test_small_messages),	cmocka_unit_test(test_data_limits),
		cmocka_unit_test(test_reader_stream),
	};

	return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
