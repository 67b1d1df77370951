// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for guest/proto.c: the input is a byte stream as the
 * agent or kal would read it from the channel.  Every frame is decoded with
 * the decoder for its type (and with all the others, since a hostile peer
 * picks the type); a SPAWN that decodes must re-encode and decode to the
 * same message.  Crashes, leaks and sanitizer reports are the findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guest/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_all(const uint8_t *p, size_t n)
{
	static uint8_t out[KAL_PROTO_MAX_FRAME];
	struct kal_msg_spawn m, m2;
	struct kal_msg_hello hello;
	struct kal_msg_error e;
	struct kal_msg_exit x;
	uint64_t v64;
	uint32_t v32;
	uint16_t a, b;

	kal_proto_dec_hello(p, n, &hello);
	kal_proto_dec_error(p, n, &e);
	kal_proto_dec_exit(p, n, &x);
	kal_proto_dec_u64(p, n, &v64);
	kal_proto_dec_u32(p, n, &v32);
	kal_proto_dec_resize(p, n, &a, &b);
	kal_proto_dec_empty(p, n);
	if (kal_proto_dec_spawn(p, n, &m) == 0) {
		long len = kal_proto_enc_spawn(out, 1, &m);

		if (len < 0 || kal_proto_dec_spawn(out + KAL_PROTO_HDR_SIZE,
						   (size_t)len - KAL_PROTO_HDR_SIZE, &m2) != 0)
			abort();
		if (m.argc != m2.argc || m.envc != m2.envc || strcmp(m.argv[0], m2.argv[0]) ||
		    strcmp(m.cwd, m2.cwd) || m.flags != m2.flags)
			abort();
		kal_proto_spawn_free(&m2);
		kal_proto_spawn_free(&m);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kal_proto_reader rd;
	struct kal_frame_hdr h;
	const uint8_t *p;

	/* feed the stream through the reassembler as a channel would */
	rd.have = 0;
	while (size) {
		size_t n = sizeof(rd.buf) - rd.have;
		int rc;

		if (n > size)
			n = size;
		memcpy(rd.buf + rd.have, data, n);
		rd.have += n;
		data += n;
		size -= n;
		while ((rc = kal_proto_reader_frame(&rd, &h, &p)) == 1) {
			if (h.len > KAL_PROTO_MAX_PAYLOAD)
				abort();
			decode_all(p, h.len);
			kal_proto_reader_consume(&rd);
		}
		if (rc < 0)
			break; /* a receiver drops the stream here */
		if (rd.have == sizeof(rd.buf))
			abort(); /* a full buffer must hold a complete frame */
	}
	return 0;
}
