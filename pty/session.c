// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The host side of a guest session over a guest/proto.h stream.  One poll()
 * loop: the socket (non-blocking, with a bounded outgoing queue so a guest
 * that stops reading stdin cannot deadlock us while it still writes output),
 * stdin, and a signalfd for SIGWINCH (-> RESIZE) and, unless the host
 * terminal is in raw mode, SIGINT/SIGTERM/SIGHUP (-> SIGNAL to the guest
 * process group).  Everything
 * the agent sends is hostile input: frames are capped and strictly decoded.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../guest/proto.h"
#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "session.h"
#include "term.h"

#define SESSION_ID 1
/* stop reading stdin while this much is queued for the socket */
#define OUTQ_CAP (256u * 1024)
/* after a kill, how long a blocked stdout may hold the session open */
#define KILLED_WRITE_MS 2000

struct sess {
	const struct pty_session_opts *o;
	int fd;
	struct kal_proto_reader *rd;
	uint8_t *frame;
	uint8_t *outq;
	size_t outq_len, outq_cap;
	int sfd; /* signalfd: SIGWINCH, and SIGINT/SIGTERM/SIGHUP when not in raw mode */
	bool hello, spawned, exited, stdin_open, out_broken;
	bool killed;	    /* a kill (SIGINT/SIGTERM/SIGHUP) was forwarded to the command */
	bool out_abandoned; /* a kill met a stuck stdout: drop output from now on */
	int exit_code;
	long long last_rx, ping_sent;
	uint64_t ping_cookie;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *pty_session_socket_path(const char *home, const char *name)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");

	if (rt && *rt == '/')
		return xasprintf("%s/kal/%s.sock", rt, name);
	return xasprintf("%s/run/%s.sock", home, name);
}

int pty_session_connect(const char *path, const char *vm, struct kal_err **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return kal_err_set(err, ENAMETOOLONG, "VM `%s`: socket path `%s` is too long", vm,
				   path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kal_err_sys(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			return kal_err_set(err, errno, "VM `%s` is not running", vm);
		return kal_err_sys(err, errno, "VM `%s`: connect `%s`", vm, path);
	}
	return steal_fd(&fd);
}

static void queue(struct sess *s, long n)
{
	if (n < 0)
		return;
	if (s->outq_len + (size_t)n > s->outq_cap) {
		s->outq_cap = (s->outq_len + (size_t)n) * 2;
		s->outq = xrealloc(s->outq, s->outq_cap);
	}
	memcpy(s->outq + s->outq_len, s->frame, (size_t)n);
	s->outq_len += (size_t)n;
}

static int flush(struct sess *s, struct kal_err **err)
{
	while (s->outq_len) {
		ssize_t n = send(s->fd, s->outq, s->outq_len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return kal_err_set(err, errno,
					   "VM `%s`: connection to the guest agent lost", s->o->vm);
		memmove(s->outq, s->outq + n, s->outq_len - (size_t)n);
		s->outq_len -= (size_t)n;
	}
	return 0;
}

static bool handle_signals(struct sess *s);

/*
 * Full write to a host fd.  A reader that stops reading must not make kal
 * deaf to signals: wait for room and for the signalfd together.  When a kill
 * arrives while output is stuck, or output stays stuck for KILLED_WRITE_MS
 * after one was forwarded, drop further output so the session can finish
 * with the command's status.  A reader that went away
 * is remembered, not fatal.
 */
static void write_out(struct sess *s, int fd, const uint8_t *p, size_t n)
{
	while (n && !s->out_broken && !s->out_abandoned) {
		struct pollfd pfd[2] = { { .fd = fd, .events = POLLOUT },
					 { .fd = s->sfd, .events = POLLIN } };
		ssize_t w;
		int ready;

		/* once a kill was forwarded, a reader that still takes nothing for
		 * KILLED_WRITE_MS is not waited for any longer */
		ready = poll(pfd, s->sfd >= 0 ? 2 : 1, s->killed ? KILLED_WRITE_MS : -1);

		if (ready < 0 && errno != EINTR)
			return;
		if (ready == 0) {
			s->out_abandoned = true;
			return;
		}
		if (s->sfd >= 0 && (pfd[1].revents & POLLIN) && handle_signals(s)) {
			s->out_abandoned = true;
			flush(s, NULL);
			return;
		}
		if (!(pfd[0].revents & (POLLOUT | POLLERR | POLLHUP)))
			continue;
		/* POLLOUT on a pipe promises room for one page, not for n bytes:
		 * a larger write to a blocking fd could still sleep, deaf to signals */
		w = write(fd, p, n > PIPE_BUF ? PIPE_BUF : n);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w <= 0) {
			/* like a local pipeline: the guest command gets SIGPIPE */
			s->out_broken = true;
			queue(s, kal_proto_enc_u32(s->frame, KAL_MSG_SIGNAL, SESSION_ID, SIGPIPE));
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static int malformed(struct sess *s, uint16_t type, struct kal_err **err)
{
	return kal_err_set(err, EPROTO, "VM `%s`: the guest agent sent a malformed %s frame",
			   s->o->vm, kal_proto_type_name(type));
}

static int handle(struct sess *s, const struct kal_frame_hdr *h, const uint8_t *p,
		  struct kal_err **err)
{
	struct kal_msg_hello hello;
	struct kal_msg_error e;
	struct kal_msg_exit x;
	uint64_t cookie;
	uint32_t pid;

	if (h->type == KAL_MSG_HELLO) {
		if (kal_proto_dec_hello(p, h->len, &hello) < 0)
			return malformed(s, h->type, err);
		if (hello.version != KAL_PROTO_VERSION)
			return kal_err_set(err, EPROTO,
					   "VM `%s`: agent protocol version %u, kal speaks %u: "
					   "rebuild the VM's agent (recreate the VM with this kal)",
					   s->o->vm, hello.version, KAL_PROTO_VERSION);
		s->hello = true;
		return 0;
	}
	if (h->type == KAL_MSG_ERROR) {
		if (kal_proto_dec_error(p, h->len, &e) < 0)
			return malformed(s, h->type, err);
		if (h->session != SESSION_ID && h->session != 0)
			return 0;
		/* the supervisor's messages already name the VM */
		if (!strncmp(e.message, "VM `", 4))
			return kal_err_set(err, e.errnum > 0 ? e.errnum : EPROTO, "%s", e.message);
		return kal_err_set(err, e.errnum > 0 ? e.errnum : EPROTO, "VM `%s`: %s", s->o->vm,
				   e.message);
	}
	if (h->session != SESSION_ID) {
		kal_debug("ignoring %s frame for session %u", kal_proto_type_name(h->type),
			  h->session);
		return 0;
	}
	switch (h->type) {
	case KAL_MSG_PONG:
		if (kal_proto_dec_u64(p, h->len, &cookie) < 0)
			return malformed(s, h->type, err);
		if (cookie == s->ping_cookie)
			s->ping_sent = 0;
		return 0;
	case KAL_MSG_SPAWNED:
		if (kal_proto_dec_u32(p, h->len, &pid) < 0)
			return malformed(s, h->type, err);
		s->spawned = true;
		kal_debug("guest pid %u", pid);
		return 0;
	case KAL_MSG_STDOUT:
		write_out(s, 1, p, h->len);
		return 0;
	case KAL_MSG_STDERR:
		write_out(s, 2, p, h->len);
		return 0;
	case KAL_MSG_EXIT:
		if (kal_proto_dec_exit(p, h->len, &x) < 0 || x.code < 0 || x.code > 255 + 128)
			return malformed(s, h->type, err);
		s->exited = true;
		s->exit_code = x.code;
		return 0;
	default:
		return kal_err_set(err, EPROTO, "VM `%s`: unexpected %s frame from the guest agent",
				   s->o->vm, kal_proto_type_name(h->type));
	}
}

static int read_socket(struct sess *s, struct kal_err **err)
{
	struct kal_frame_hdr h;
	const uint8_t *p;
	int rc = kal_proto_reader_fill(s->rd, s->fd);

	for (;;) {
		if (rc == -EPIPE)
			return kal_err_set(
			    err, EPIPE,
			    "VM `%s`: connection to the guest agent lost (did the VM "
			    "stop?)",
			    s->o->vm);
		if (rc == -EMSGSIZE)
			return kal_err_set(err, EMSGSIZE,
					   "VM `%s`: the guest agent sent a frame over the %u byte "
					   "limit",
					   s->o->vm, KAL_PROTO_MAX_PAYLOAD);
		if (rc == -EPROTO)
			return kal_err_set(err, EPROTO,
					   "VM `%s`: the guest agent sent a malformed frame header",
					   s->o->vm);
		if (rc < 0)
			return kal_err_sys(err, -rc, "VM `%s`: read from the guest agent",
					   s->o->vm);
		if (rc == 0)
			return 0;
		rc = kal_proto_reader_frame(s->rd, &h, &p);
		if (rc != 1)
			continue;
		s->last_rx = now_ms();
		if (handle(s, &h, p, err) < 0)
			return -1;
		kal_proto_reader_consume(s->rd);
		if (s->exited)
			return 0;
		rc = kal_proto_reader_frame(s->rd, &h, &p);
	}
}

static void read_stdin(struct sess *s)
{
	uint8_t *data = s->frame + KAL_PROTO_HDR_SIZE;
	ssize_t n;

	do
		n = read(0, data, KAL_PROTO_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		s->stdin_open = false;
		queue(s, kal_proto_enc_empty(s->frame, KAL_MSG_STDIN_EOF, SESSION_ID));
		return;
	}
	queue(s, kal_proto_enc_data(s->frame, KAL_MSG_STDIN, SESSION_ID, data, (size_t)n));
}

static void send_resize(struct sess *s)
{
	uint16_t rows, cols;

	if (pty_term_size(0, &rows, &cols) < 0 && pty_term_size(1, &rows, &cols) < 0)
		return;
	queue(s, kal_proto_enc_resize(s->frame, SESSION_ID, rows, cols));
}

/* Forward pending signals; true when one of them was a kill (not SIGWINCH). */
static bool handle_signals(struct sess *s)
{
	struct signalfd_siginfo si;
	bool kill = false;

	while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGWINCH) {
			send_resize(s);
		} else {
			kill = true;
			s->killed = true;
			queue(s, kal_proto_enc_u32(s->frame, KAL_MSG_SIGNAL, SESSION_ID,
						   si.ssi_signo));
		}
	}
	return kill;
}

static int spawn(struct sess *s)
{
	const struct pty_session_opts *o = s->o;
	struct kal_msg_spawn m = {
		.flags = (o->tty ? KAL_SPAWN_PTY : 0) | (o->interactive ? KAL_SPAWN_STDIN : 0) |
			 (o->login ? KAL_SPAWN_LOGIN : 0),
		.uid = KAL_PROTO_ID_UNSET,
		.gid = KAL_PROTO_ID_UNSET,
		.user = o->user ? o->user : "",
		.cwd = o->cwd ? o->cwd : "",
		.term = "",
		.argc = o->argc,
		.argv = (const char **)o->argv,
		.envc = o->envc,
		.env = (const char **)o->env,
	};
	long n;

	if (o->tty) {
		const char *term = getenv("TERM");

		m.term = term && *term ? term : "xterm";
		if (pty_term_size(0, &m.rows, &m.cols) < 0)
			pty_term_size(1, &m.rows, &m.cols);
	}
	n = kal_proto_enc_spawn(s->frame, SESSION_ID, &m);
	if (n < 0)
		return (int)n;
	queue(s, n);
	return 0;
}

int pty_session_run(int fd, const struct pty_session_opts *o, int *exit_code, struct kal_err **err)
{
	_cleanup_free_ struct kal_proto_reader *rd = xmalloc(sizeof(*rd));
	_cleanup_free_ uint8_t *frame = xmalloc(KAL_PROTO_MAX_FRAME);
	struct sess s = { .o = o, .fd = fd, .rd = rd, .frame = frame, .sfd = -1 };
	_cleanup_close_ int sfd = -1;
	sigset_t set, old;
	bool raw = false;
	int rc = -1, fl;

	rd->have = 0;
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);

	/* signals become events: resize always, termination forwarded without a tty */
	sigemptyset(&set);
	sigaddset(&set, SIGWINCH);
	/* in raw mode ^C is a byte for the guest; pty/term.c restores and re-raises kills */
	if (!(o->tty && o->interactive && isatty(0))) {
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGHUP);
	}
	sigprocmask(SIG_BLOCK, &set, &old);
	sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		kal_err_sys(err, errno, "signalfd");
		goto out;
	}
	s.sfd = sfd;

	queue(&s, kal_proto_enc_hello(frame, KAL_PROTO_VERSION, "kal " KAL_VERSION));
	if (spawn(&s) < 0) {
		kal_err_set(err, E2BIG,
			    "exec: the command and environment exceed the %u byte "
			    "frame limit",
			    KAL_PROTO_MAX_PAYLOAD);
		goto out;
	}
	s.stdin_open = o->interactive;
	if (o->tty && o->interactive && isatty(0)) {
		if (pty_term_raw_enter(0, err) < 0)
			goto out;
		raw = true;
	}
	s.last_rx = now_ms();

	while (!s.exited) {
		struct pollfd pfd[3];
		long long now = now_ms();
		int n = 0, timeout;

		if (flush(&s, err) < 0)
			goto out;
		/* liveness: PING after a quiet spell, fail if nothing comes back in time */
		if (s.ping_sent && now - s.ping_sent > o->timeout_ms) {
			kal_err_set(
			    err, ETIMEDOUT,
			    "VM `%s`: the guest agent is not responding (no answer in %u s)", o->vm,
			    (o->timeout_ms + 999) / 1000);
			goto out;
		}
		if (!s.ping_sent && now - s.last_rx > o->ping_ms) {
			s.ping_sent = now;
			s.ping_cookie++;
			queue(&s,
			      kal_proto_enc_u64(frame, KAL_MSG_PING, SESSION_ID, s.ping_cookie));
			continue;
		}
		timeout = (int)(s.ping_sent ? s.ping_sent + o->timeout_ms - now
					    : s.last_rx + o->ping_ms - now);
		if (timeout < 0)
			timeout = 0;
		pfd[n++] =
		    (struct pollfd){ .fd = fd, .events = POLLIN | (s.outq_len ? POLLOUT : 0) };
		pfd[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		if (s.stdin_open && s.hello && s.outq_len < OUTQ_CAP)
			pfd[n++] = (struct pollfd){ .fd = 0, .events = POLLIN };
		if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR) {
			kal_err_sys(err, errno, "poll");
			goto out;
		}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (read_socket(&s, err) < 0)
				goto out;
			s.ping_sent = 0; /* any frame proves the agent alive */
		}
		if (pfd[1].revents)
			handle_signals(&s);
		if (n > 2 && pfd[2].revents)
			read_stdin(&s);
	}
	*exit_code = s.exit_code;
	rc = 0;
out:
	if (raw)
		pty_term_restore();
	if (sfd >= 0) {
		close(sfd);
		sfd = -1;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	free(s.outq);
	return rc;
}
