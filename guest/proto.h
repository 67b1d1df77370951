/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The host <-> guest protocol (tmux-protocol.h style): the one definition of
 * the frames kal, the per-VM supervisor and the guest agent `kal-init`
 * exchange.  guest/proto.c holds the encoders/decoders; it only needs libc so
 * it is compiled both into kal and into the static (musl) agent.
 *
 * Every frame, in both directions, little-endian:
 *
 *    0        4        6        8              12
 *    +--------+--------+--------+--------------+--------------------------+
 *    | length | type   | flags  | session id   | payload (length bytes)   |
 *    | u32    | u16    | u16    | u32          |                          |
 *    +--------+--------+--------+--------------+--------------------------+
 *
 *  length   payload bytes only (header excluded), at most KAL_PROTO_MAX_PAYLOAD;
 *           a receiver checks it BEFORE allocating or reading the payload.
 *  type     enum kal_msg_type; an unknown type is a protocol error.
 *  flags    reserved, must be 0 in version 1 (receivers reject other values).
 *  session  chosen by the client for SPAWN / FILE_* / LIST / PING / SYNC
 *           requests (non-zero), echoed in every reply and in all output of
 *           that session.  0 is only used by HELLO and by an agent ERROR
 *           about the channel itself.  The supervisor multiplexes several
 *           clients onto one agent channel by rewriting this field.
 *
 * Payload field encodings (packed, no padding):
 *   u8/u16/u32/i32/u64  little-endian integers
 *   str      u32 n, then n bytes whose last byte is NUL and which contain no
 *            other NUL (n >= 1; the empty string is n=1, "\0")
 *   strlist  u32 count (<= KAL_PROTO_MAX_STRS), then count str
 *   data     the rest of the payload, binary
 * A payload must be consumed exactly: trailing bytes are a protocol error.
 *
 * Messages (C = client/host -> agent, A = agent -> client):
 *   HELLO      C,A  u32 version, u32 max_payload, str software ("kal 0.1")
 *                   The agent sends one unsolicited HELLO when it starts
 *                   serving (so the supervisor can tell "agent ready") and
 *                   answers every client HELLO with its own; a receiver
 *                   accepts a HELLO at any time.  A host need not send one
 *                   (the supervisor checks the agent's).  A version mismatch
 *                   is a hard error on the side that sees it ("agent
 *                   protocol version 2, kal speaks 1: rebuild the VM's
 *                   agent"); after a HELLO with another version the agent
 *                   answers requests with ERROR until a HELLO with its own.
 *   PING       C    u64 cookie                 -> PONG u64 cookie (liveness)
 *   PONG       A    u64 cookie
 *   ERROR      A    i32 errno, str message     (request failed; session ends)
 *   SPAWN      C    u32 spawn flags (KAL_SPAWN_*), u16 rows, u16 cols,
 *                   u32 uid, u32 gid (KAL_PROTO_ID_UNSET = resolve from
 *                   user / default 0), str user (name or number, resolved
 *                   in the guest's /etc/passwd; "" = none), str cwd ("" = the
 *                   user's home or /), str term ("" = none), strlist argv
 *                   (count >= 1), strlist env ("K=V")
 *                   -> SPAWNED u32 pid, or ERROR
 *   SPAWNED    A    u32 pid
 *   STDIN      C    data      (to the session's stdin / pty; empty = no-op)
 *   STDIN_EOF  C    -         (close stdin; on a pty: send VEOF)
 *   STDOUT     A    data      (pty sessions only ever send STDOUT)
 *   STDERR     A    data
 *   RESIZE     C    u16 rows, u16 cols
 *   SIGNAL     C    u32 signo (delivered to the session's process group)
 *   WAIT       C    -         (attach to a session: flush its buffered
 *                   output, then stream; EXIT follows when it ends)
 *   DETACH     C    -         (the client went away: the session keeps
 *                   running, output is kept bounded until a WAIT)
 *   EXIT       A    u8 kind (KAL_EXIT_KIND_*), i32 code, u32 signo
 *                   kind EXITED: code = exit status; SIGNALED: signo set,
 *                   code = 128 + signo.  Last frame of a session.
 *   LIST       C    -         -> LIST_REPLY
 *   LIST_REPLY A    u32 count, then count x { u32 session, u32 pid,
 *                   u8 state (KAL_SESSION_*), i32 code, str argv0 }
 *   FILE_READ  C    str path  -> FILE_DATA* then FILE_END, or ERROR
 *   FILE_WRITE C    u32 mode, str path, then FILE_DATA* then FILE_END
 *                   -> OK, or ERROR (written to a temp file, renamed at end)
 *   FILE_DATA  C,A  data
 *   FILE_END   C,A  u32 mode, u64 size   (host->agent: both ignored)
 *   OK         A    -
 *   SYNC       C    -         -> OK once the guest's filesystems are synced
 *                   (send before ending the VM from the outside, e.g. QMP quit,
 *                   so the upper disk holds everything written so far)
 *
 * Types 0x80..0xff (KAL_MSG_CTL_FIRST..KAL_MSG_CTL_LAST) are reserved for
 * host <-> supervisor control messages (stop, status, ...) defined by the
 * supervisor (vmm/); the supervisor handles them and never forwards them to
 * the agent, and the agent rejects them.
 *
 * Flow control: the agent keeps at most KAL_PROTO_CHANNEL_CAP bytes queued
 * for the channel and stops reading children's output (pipes, ptys) while
 * it is over that cap; a session with no attached client (spawned with
 * KAL_SPAWN_DETACH, or whose client went away) keeps only the last
 * KAL_PROTO_DETACHED_CAP bytes of output (older bytes dropped and counted).
 * At most KAL_PROTO_MAX_SESSIONS sessions exist at once.
 *
 * Errors: a frame whose header is malformed (oversize, unknown type, flags)
 * desynchronises the stream, so the receiver drops its input state.  A
 * well-framed message with a bad payload only fails its own session (ERROR
 * "malformed SPAWN frame"; a running process goes on, detached), because
 * the supervisor forwards clients' payloads without parsing them.
 */
#ifndef KAL_GUEST_PROTO_H
#define KAL_GUEST_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define KAL_PROTO_VERSION      1
#define KAL_PROTO_HDR_SIZE     12
#define KAL_PROTO_MAX_PAYLOAD  (64u * 1024)
#define KAL_PROTO_MAX_FRAME    (KAL_PROTO_HDR_SIZE + KAL_PROTO_MAX_PAYLOAD)
#define KAL_PROTO_MAX_STRS     4096
#define KAL_PROTO_MAX_SESSIONS 256
#define KAL_PROTO_CHANNEL_CAP  (256u * 1024)
#define KAL_PROTO_DETACHED_CAP (64u * 1024)
#define KAL_PROTO_ID_UNSET     0xffffffffu
/* largest data chunk in STDOUT/STDERR/FILE_DATA frames a sender produces */
#define KAL_PROTO_CHUNK (32u * 1024)

enum kal_msg_type {
	KAL_MSG_HELLO = 0x01,
	KAL_MSG_PING = 0x02,
	KAL_MSG_PONG = 0x03,
	KAL_MSG_ERROR = 0x04,
	KAL_MSG_OK = 0x05,
	KAL_MSG_SPAWN = 0x10,
	KAL_MSG_SPAWNED = 0x11,
	KAL_MSG_STDIN = 0x12,
	KAL_MSG_STDIN_EOF = 0x13,
	KAL_MSG_STDOUT = 0x14,
	KAL_MSG_STDERR = 0x15,
	KAL_MSG_RESIZE = 0x16,
	KAL_MSG_SIGNAL = 0x17,
	KAL_MSG_WAIT = 0x18,
	KAL_MSG_EXIT = 0x19,
	KAL_MSG_LIST = 0x1a,
	KAL_MSG_LIST_REPLY = 0x1b,
	KAL_MSG_DETACH = 0x1c,
	KAL_MSG_FILE_READ = 0x20,
	KAL_MSG_FILE_WRITE = 0x21,
	KAL_MSG_FILE_DATA = 0x22,
	KAL_MSG_FILE_END = 0x23,
	KAL_MSG_SYNC = 0x24,
	/* host <-> supervisor only, never forwarded to the agent */
	KAL_MSG_CTL_FIRST = 0x80,
	KAL_MSG_CTL_LAST = 0xff,
};

/* SPAWN flags */
#define KAL_SPAWN_PTY	 0x1 /* a pty (setsid + controlling tty) instead of pipes */
#define KAL_SPAWN_STDIN	 0x2 /* stdin is fed by STDIN frames; else /dev/null */
#define KAL_SPAWN_DETACH 0x4 /* no client attached: output buffered (bounded) */
#define KAL_SPAWN_LOGIN	 0x8 /* login shell: argv[0] becomes "-" + basename (path unchanged) */
#define KAL_SPAWN_KNOWN	 (KAL_SPAWN_PTY | KAL_SPAWN_STDIN | KAL_SPAWN_DETACH | KAL_SPAWN_LOGIN)

enum kal_exit_kind {
	KAL_EXIT_KIND_EXITED = 0,
	KAL_EXIT_KIND_SIGNALED = 1,
};

enum kal_session_state {
	KAL_SESSION_RUNNING = 0,
	KAL_SESSION_EXITED = 1,
};

struct kal_frame_hdr {
	uint32_t len;
	uint16_t type;
	uint16_t flags;
	uint32_t session;
};

/* Decoded messages.  Strings point into the frame buffer; argv/env arrays are malloc'd. */
struct kal_msg_hello {
	uint32_t version;
	uint32_t max_payload;
	const char *software;
};

struct kal_msg_spawn {
	uint32_t flags;
	uint16_t rows, cols;
	uint32_t uid, gid;
	const char *user;
	const char *cwd;
	const char *term;
	uint32_t argc, envc;
	const char **argv; /* NULL-terminated, argc entries */
	const char **env;  /* NULL-terminated, envc entries */
};

struct kal_msg_exit {
	uint8_t kind;
	int32_t code;
	uint32_t signo;
};

struct kal_msg_error {
	int32_t errnum;
	const char *message;
};

struct kal_list_entry {
	uint32_t session;
	uint32_t pid;
	uint8_t state;
	int32_t code;
	const char *argv0;
};

/*
 * Frame header.  kal_proto_hdr_decode returns 0, or a negative errno:
 * -EMSGSIZE (length over the cap), -EPROTO (unknown type, non-zero flags).
 * It does not check that the type is valid for the receiver's direction.
 */
void kal_proto_hdr_encode(uint8_t out[KAL_PROTO_HDR_SIZE], const struct kal_frame_hdr *h);
int kal_proto_hdr_decode(const uint8_t in[KAL_PROTO_HDR_SIZE], struct kal_frame_hdr *h);
/* true for the types defined above (including the supervisor control range) */
int kal_proto_type_known(uint16_t type);
/* "SPAWN", "0x42" (static or in a small thread-unsafe buffer) for messages */
const char *kal_proto_type_name(uint16_t type);

/*
 * Payload writer over a caller buffer of KAL_PROTO_MAX_FRAME bytes; the header
 * is filled in by kal_proto_w_finish.  Overflowing sets .bad and later puts
 * are ignored, so callers check once at the end.
 */
struct kal_proto_w {
	uint8_t *buf;
	size_t len; /* bytes used including the header */
	int bad;
};
void kal_proto_w_init(struct kal_proto_w *w, uint8_t *buf, uint16_t type, uint32_t session);
void kal_proto_w_u8(struct kal_proto_w *w, uint8_t v);
void kal_proto_w_u16(struct kal_proto_w *w, uint16_t v);
void kal_proto_w_u32(struct kal_proto_w *w, uint32_t v);
void kal_proto_w_u64(struct kal_proto_w *w, uint64_t v);
void kal_proto_w_str(struct kal_proto_w *w, const char *s);
void kal_proto_w_strlist(struct kal_proto_w *w, const char *const *v, uint32_t n);
void kal_proto_w_data(struct kal_proto_w *w, const void *p, size_t n);
/* Patch the header's length; returns the frame size, or -EMSGSIZE after an overflow. */
long kal_proto_w_finish(struct kal_proto_w *w);

/* Payload reader; any malformed field sets .bad and returns zeros / NULL. */
struct kal_proto_r {
	const uint8_t *p;
	size_t len, off;
	int bad;
};
void kal_proto_r_init(struct kal_proto_r *r, const void *payload, size_t len);
uint8_t kal_proto_r_u8(struct kal_proto_r *r);
uint16_t kal_proto_r_u16(struct kal_proto_r *r);
uint32_t kal_proto_r_u32(struct kal_proto_r *r);
uint64_t kal_proto_r_u64(struct kal_proto_r *r);
const char *kal_proto_r_str(struct kal_proto_r *r);
/* returns a malloc'd NULL-terminated array (NULL when bad) and its count */
const char **kal_proto_r_strlist(struct kal_proto_r *r, uint32_t *count);
/* 0 when nothing was malformed and the payload was consumed exactly, else -EPROTO */
int kal_proto_r_end(struct kal_proto_r *r);

/* Typed encoders: return the frame size in buf (>= 12) or a negative errno. */
long kal_proto_enc_hello(uint8_t *buf, uint32_t version, const char *software);
long kal_proto_enc_spawn(uint8_t *buf, uint32_t session, const struct kal_msg_spawn *m);
long kal_proto_enc_exit(uint8_t *buf, uint32_t session, const struct kal_msg_exit *m);
long kal_proto_enc_error(uint8_t *buf, uint32_t session, int32_t errnum, const char *msg);
/* STDIN/STDOUT/STDERR/FILE_DATA: data frames; n <= KAL_PROTO_MAX_PAYLOAD */
long kal_proto_enc_data(uint8_t *buf, uint16_t type, uint32_t session, const void *p, size_t n);
/* frames without payload (STDIN_EOF, WAIT, LIST, OK) */
long kal_proto_enc_empty(uint8_t *buf, uint16_t type, uint32_t session);
long kal_proto_enc_u64(uint8_t *buf, uint16_t type, uint32_t session, uint64_t v); /* PING/PONG */
long kal_proto_enc_u32(uint8_t *buf, uint16_t type, uint32_t session,
		       uint32_t v); /* SPAWNED, SIGNAL */
long kal_proto_enc_resize(uint8_t *buf, uint32_t session, uint16_t rows, uint16_t cols);

/* Typed decoders of a payload: 0 or -EPROTO.  Spawn frees with kal_proto_spawn_free. */
int kal_proto_dec_hello(const void *p, size_t n, struct kal_msg_hello *m);
int kal_proto_dec_spawn(const void *p, size_t n, struct kal_msg_spawn *m);
void kal_proto_spawn_free(struct kal_msg_spawn *m);
int kal_proto_dec_exit(const void *p, size_t n, struct kal_msg_exit *m);
int kal_proto_dec_error(const void *p, size_t n, struct kal_msg_error *m);
int kal_proto_dec_u64(const void *p, size_t n, uint64_t *v);
int kal_proto_dec_u32(const void *p, size_t n, uint32_t *v);
int kal_proto_dec_resize(const void *p, size_t n, uint16_t *rows, uint16_t *cols);
int kal_proto_dec_empty(const void *p, size_t n);

/*
 * Incremental frame reassembly from a byte stream (non-blocking sockets, the
 * virtio-serial port).  The buffer is fixed-size (one maximum frame), so a
 * peer can never make the receiver allocate.
 */
struct kal_proto_reader {
	uint8_t buf[KAL_PROTO_MAX_FRAME];
	size_t have;
};
/*
 * Read once from fd into r.  Returns 1 when a complete frame is available
 * (kal_proto_reader_frame), 0 when more bytes are needed (EAGAIN or a partial
 * frame), -EPIPE at EOF, -EMSGSIZE/-EPROTO for a malformed header, or -errno.
 */
int kal_proto_reader_fill(struct kal_proto_reader *r, int fd);
/* The same from any source: rd returns bytes read, 0 at EOF, or -errno (-EAGAIN: none now). */
int kal_proto_reader_fill_from(struct kal_proto_reader *r,
			       long (*rd)(void *ctx, void *buf, size_t len), void *ctx);
/*
 * Is a complete frame buffered?  1 (hdr/payload filled), 0 (not yet), or the
 * header's negative errno.  kal_proto_reader_consume drops that frame.
 */
int kal_proto_reader_frame(struct kal_proto_reader *r, struct kal_frame_hdr *h,
			   const uint8_t **payload);
void kal_proto_reader_consume(struct kal_proto_reader *r);

#endif
