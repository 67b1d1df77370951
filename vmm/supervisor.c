// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The per-VM supervisor: one poll loop over the engine's exit fd, the
 * serial console, the agent channel, the listening socket and the clients.
 * Client session ids are rewritten to supervisor-wide ids on the agent
 * channel.  Every queue is capped: a client that does not read stops the
 * supervisor reading the agent channel (the agent then stops reading its
 * children, see proto.h flow control), and a full agent queue stops reading
 * clients, so neither a guest nor a client can grow the supervisor's memory.
 * FIXME: that pause is per VM, not per session: one stalled client stalls the
 * other sessions of its VM until it reads or goes away.  Per-session credits
 * need a protocol message; dropping output instead would corrupt pipelines.
 * A client that goes away hangs up its attached commands (SIGHUP, like a
 * closed terminal); DETACH from the client keeps them running instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../guest/proto.h"
#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/fsutil.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "ctl.h"
#include "machine.h"
#include "supervisor.h"
#include "vmstate.h"
#if __has_include("initrd.h")
#include "initrd.h"
#define HAVE_INITRD 1
#endif

#define SUP_MAX_SESSIONS     1024
#define SUP_CONSOLE_BATCH_MS 2
#define SUP_SYNC_TIMEOUT_MS  2000
/* agent-side session id the supervisor uses for its own SYNC (never handed out) */
#define SUP_SYNC_SESSION 0xfffffff0u

/* ---- byte queue --------------------------------------------------------- */

struct bq {
	uint8_t *buf;
	size_t head, len, alloc;
};

static void bq_push(struct bq *q, const void *p, size_t n)
{
	if (q->head && q->head + q->len + n > q->alloc) {
		memmove(q->buf, q->buf + q->head, q->len);
		q->head = 0;
	}
	if (q->len + n > q->alloc) {
		q->alloc = q->len + n < 16384 ? 16384 : (q->len + n) * 3 / 2;
		q->buf = xrealloc(q->buf, q->alloc);
	}
	memcpy(q->buf + q->head + q->len, p, n);
	q->len += n;
}

/* Write what the socket takes; -1 on a write error (peer gone). */
static int bq_flush(struct bq *q, int fd)
{
	while (q->len) {
		ssize_t n = send(fd, q->buf + q->head, q->len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		q->head += (size_t)n;
		q->len -= (size_t)n;
	}
	q->head = 0;
	/* give memory back after a burst */
	if (q->alloc > 65536) {
		free(q->buf);
		q->buf = NULL;
		q->alloc = 0;
	}
	return 0;
}

static void bq_free(struct bq *q)
{
	free(q->buf);
	*q = (struct bq){ 0 };
}

/* ---- state -------------------------------------------------------------- */

struct client {
	int fd;
	bool hello;
	bool dead;
	struct kal_proto_reader *rd;
	struct bq out;
};

struct sess {
	struct client *c; /* NULL when free */
	uint32_t gid, local;
	uint16_t kind;	/* request type that opened it */
	uint32_t flags; /* spawn flags */
};

struct sup {
	const char *home, *name;
	struct vm_config *cfg;
	const struct machine_ops *ops;
	struct machine *m;
	int ready_fd, listen_fd, sig_fd, log_fd;
	off_t log_size;
	char *sock_path, *dir;
	struct kal_proto_reader *agent_rd;
	struct bq agent_out;
	bool agent_ready, agent_dead, done, sync_done;
	long long boot_deadline;
	long long console_next; /* do not poll the console before this */
	int boot_timeout_s;
	time_t started;
	struct client *clients[SUPERVISOR_MAX_CLIENTS];
	size_t n_clients;
	struct sess sess[SUP_MAX_SESSIONS];
	uint32_t next_gid;
	char exit_desc[160];
	struct kal_ratelimit rl;
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* ---- console log (capped, newest kept) ---------------------------------- */

static void console_write(struct sup *s, const uint8_t *p, size_t n)
{
	if (s->log_fd < 0)
		return;
	if (write(s->log_fd, p, n) > 0)
		s->log_size += (off_t)n;
	if (s->log_size > VMSTATE_CONSOLE_CAP) {
		/* keep the newest half: one bounded copy per half-cap of output */
		size_t keep = VMSTATE_CONSOLE_CAP / 2;
		_cleanup_free_ uint8_t *buf = xmalloc(keep);
		ssize_t got = pread(s->log_fd, buf, keep, s->log_size - (off_t)keep);

		if (got > 0 && pwrite(s->log_fd, buf, (size_t)got, 0) == got &&
		    ftruncate(s->log_fd, got) == 0)
			s->log_size = got;
		lseek(s->log_fd, 0, SEEK_END);
	}
}

static void console_drain(struct sup *s)
{
	uint8_t buf[16384];
	int fd = s->ops->console_fd(s->m);
	size_t total = 0;

	/* bounded work per wakeup so a flood cannot starve the other fds */
	for (int i = 0; i < 8; i++) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		console_write(s, buf, (size_t)n);
		total += (size_t)n;
	}
	/*
	 * An emulated UART delivers a byte or a few per write: after a small
	 * read, let output gather for a moment instead of waking per byte.
	 */
	if (total && total < 4096)
		s->console_next = mono_ms() + SUP_CONSOLE_BATCH_MS;
}

/* Last lines of the console, for boot failure messages; caller frees. */
static char *console_tail(struct sup *s, size_t max)
{
	char *buf = xzalloc(max + 1);
	off_t off = s->log_size > (off_t)max ? s->log_size - (off_t)max : 0;
	ssize_t n = s->log_fd >= 0 ? pread(s->log_fd, buf, max, off) : 0;
	char *p;

	buf[n > 0 ? n : 0] = '\0';
	for (p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return buf;
}

/* ---- frames ------------------------------------------------------------- */

static void frame_push(struct bq *q, uint16_t type, uint32_t session, const void *payload, size_t n)
{
	uint8_t hdr[KAL_PROTO_HDR_SIZE];
	struct kal_frame_hdr h = { .len = (uint32_t)n, .type = type, .session = session };

	kal_proto_hdr_encode(hdr, &h);
	bq_push(q, hdr, sizeof(hdr));
	if (n)
		bq_push(q, payload, n);
}

static void client_error(struct client *c, uint32_t session, int errnum, const char *msg)
{
	static uint8_t buf[KAL_PROTO_MAX_FRAME];
	long n = kal_proto_enc_error(buf, session, errnum, msg);

	if (n > 0)
		bq_push(&c->out, buf, (size_t)n);
}

static struct sess *sess_by_gid(struct sup *s, uint32_t gid)
{
	for (size_t i = 0; i < SUP_MAX_SESSIONS; i++)
		if (s->sess[i].c && s->sess[i].gid == gid)
			return &s->sess[i];
	return NULL;
}

static struct sess *sess_by_local(struct sup *s, struct client *c, uint32_t local)
{
	for (size_t i = 0; i < SUP_MAX_SESSIONS; i++)
		if (s->sess[i].c == c && s->sess[i].local == local)
			return &s->sess[i];
	return NULL;
}

static struct sess *sess_new(struct sup *s, struct client *c, uint32_t local, uint32_t gid)
{
	for (size_t i = 0; i < SUP_MAX_SESSIONS; i++) {
		if (s->sess[i].c)
			continue;
		if (!gid) {
			do
				gid = ++s->next_gid;
			while (gid == 0 || gid >= SUP_SYNC_SESSION || sess_by_gid(s, gid));
		}
		s->sess[i] = (struct sess){ .c = c, .gid = gid, .local = local };
		return &s->sess[i];
	}
	return NULL;
}

static size_t sess_count(struct sup *s)
{
	size_t n = 0;

	for (size_t i = 0; i < SUP_MAX_SESSIONS; i++)
		n += s->sess[i].c != NULL;
	return n;
}

/* ---- agent side --------------------------------------------------------- */

static void ready_report(struct sup *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ready_report(struct sup *s, const char *fmt, ...)
{
	va_list ap;

	if (s->ready_fd < 0)
		return;
	va_start(ap, fmt);
	vdprintf(s->ready_fd, fmt, ap);
	va_end(ap);
	close(s->ready_fd);
	s->ready_fd = -1;
}

static int listen_open(struct sup *s, struct kal_err **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_free_ char *dir = xstrdup(s->sock_path);
	int fd;

	*strrchr(dir, '/') = '\0';
	if (kal_mkdir_p(dir, 0700, err) < 0)
		return -1;
	/* we hold the VM lock, so a socket left here is stale */
	unlink(s->sock_path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return kal_err_sys(err, errno, "socket");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(s->sock_path, 0600) < 0 ||
	    listen(fd, 16) < 0) {
		kal_err_sys(err, errno, "listen on `%s`", s->sock_path);
		close(fd);
		return -1;
	}
	s->listen_fd = fd;
	return 0;
}

/* Does this agent frame end the session?  Depends on what opened it: a PING
 * on a running SPAWN session gets a PONG that must not end the session. */
static bool agent_ends(uint16_t t, uint16_t kind)
{
	switch (t) {
	case KAL_MSG_ERROR:
		return true;
	case KAL_MSG_EXIT:
		return kind == KAL_MSG_SPAWN || kind == KAL_MSG_WAIT;
	case KAL_MSG_PONG:
		return kind == KAL_MSG_PING;
	case KAL_MSG_LIST_REPLY:
		return kind == KAL_MSG_LIST;
	case KAL_MSG_OK:
		return kind == KAL_MSG_FILE_WRITE || kind == KAL_MSG_SYNC;
	case KAL_MSG_FILE_END:
		return kind == KAL_MSG_FILE_READ;
	default:
		return false;
	}
}

static bool agent_may_send(uint16_t t)
{
	switch (t) {
	case KAL_MSG_PONG:
	case KAL_MSG_ERROR:
	case KAL_MSG_OK:
	case KAL_MSG_SPAWNED:
	case KAL_MSG_STDOUT:
	case KAL_MSG_STDERR:
	case KAL_MSG_EXIT:
	case KAL_MSG_LIST_REPLY:
	case KAL_MSG_FILE_DATA:
	case KAL_MSG_FILE_END:
		return true;
	default:
		return false;
	}
}

static void agent_frame(struct sup *s, const struct kal_frame_hdr *h, const uint8_t *p)
{
	struct sess *se;

	if (h->type == KAL_MSG_HELLO && h->session == 0) {
		struct kal_msg_hello hello;
		struct kal_err *err = NULL;

		if (s->agent_ready)
			return;
		if (kal_proto_dec_hello(p, h->len, &hello) < 0) {
			ready_report(s, "error: guest agent sent a malformed HELLO\n");
			s->done = true;
			return;
		}
		if (hello.version != KAL_PROTO_VERSION) {
			ready_report(s,
				     "error: agent protocol version %u, kal speaks %u: rebuild "
				     "kal and its agent together\n",
				     hello.version, KAL_PROTO_VERSION);
			s->done = true;
			return;
		}
		if (listen_open(s, &err) < 0) {
			ready_report(s, "error: %s\n", err->msg);
			kal_err_free(err);
			s->done = true;
			return;
		}
		s->agent_ready = true;
		kal_debug("supervise %s: agent ready (%s)", s->name, hello.software);
		ready_report(s, "ready\n");
		return;
	}
	if (h->session == SUP_SYNC_SESSION) {
		s->sync_done = s->sync_done || h->type == KAL_MSG_OK || h->type == KAL_MSG_ERROR;
		return;
	}
	if (!agent_may_send(h->type) || h->session == 0) {
		if (kal_log_ratelimit(&s->rl, 5))
			kal_warn("supervise %s: agent sent %s for session %u: dropped", s->name,
				 kal_proto_type_name(h->type), h->session);
		return;
	}
	se = sess_by_gid(s, h->session);
	if (!se)
		return; /* its client went away */
	frame_push(&se->c->out, h->type, se->local, p, h->len);
	if (agent_ends(h->type, se->kind))
		se->c = NULL;
}

static void agent_lost(struct sup *s, const char *why)
{
	if (s->agent_dead)
		return;
	s->agent_dead = true;
	/* the main loop learns whether the guest died with it and reports that */
	kal_warn("supervise %s: agent channel: %s", s->name, why);
}

static void agent_read(struct sup *s)
{
	int fd = s->ops->agent_fd(s->m);
	struct kal_frame_hdr h;
	const uint8_t *p;
	int rc = kal_proto_reader_fill(s->agent_rd, fd);

	if (rc < 0 && rc != -EMSGSIZE && rc != -EPROTO) {
		agent_lost(s, rc == -EPIPE ? "closed" : strerror(-rc));
		return;
	}
	while ((rc = kal_proto_reader_frame(s->agent_rd, &h, &p)) == 1) {
		agent_frame(s, &h, p);
		kal_proto_reader_consume(s->agent_rd);
	}
	if (rc < 0)
		/* a byte stream cannot be resynchronised after a bad header */
		agent_lost(s, rc == -EMSGSIZE ? "oversized frame" : "malformed frame");
}

/* ---- client side -------------------------------------------------------- */

static void client_close(struct sup *s, struct client *c)
{
	for (size_t i = 0; i < SUP_MAX_SESSIONS; i++) {
		struct sess *se = &s->sess[i];

		if (se->c != c)
			continue;
		/* like a hung-up terminal: an attached command learns its client is gone */
		if (se->kind == KAL_MSG_SPAWN && !(se->flags & KAL_SPAWN_DETACH)) {
			uint8_t sig[4] = { SIGHUP, 0, 0, 0 };

			frame_push(&s->agent_out, KAL_MSG_SIGNAL, se->gid, sig, sizeof(sig));
		}
		se->c = NULL;
	}
	close(c->fd);
	bq_free(&c->out);
	free(c->rd);
	for (size_t i = 0; i < s->n_clients; i++) {
		if (s->clients[i] == c) {
			s->clients[i] = s->clients[--s->n_clients];
			break;
		}
	}
	free(c);
}

static void ctl_status(struct sup *s, struct client *c, uint32_t session)
{
	static uint8_t buf[KAL_PROTO_MAX_FRAME];
	struct kal_proto_w w;
	long n;

	kal_proto_w_init(&w, buf, KAL_CTL_STATUS_REPLY, session);
	kal_proto_w_str(&w, s->agent_ready ? "running" : "booting");
	kal_proto_w_str(&w, s->ops->name);
	kal_proto_w_u32(&w, (uint32_t)getpid());
	kal_proto_w_u64(&w, (uint64_t)s->started);
	kal_proto_w_u32(&w, (uint32_t)s->n_clients);
	kal_proto_w_u32(&w, (uint32_t)sess_count(s));
	kal_proto_w_str(&w, s->exit_desc);
	n = kal_proto_w_finish(&w);
	if (n > 0)
		bq_push(&c->out, buf, (size_t)n);
}

static bool client_may_send(uint16_t t)
{
	switch (t) {
	case KAL_MSG_PING:
	case KAL_MSG_SPAWN:
	case KAL_MSG_STDIN:
	case KAL_MSG_STDIN_EOF:
	case KAL_MSG_RESIZE:
	case KAL_MSG_SIGNAL:
	case KAL_MSG_WAIT:
	case KAL_MSG_LIST:
	case KAL_MSG_FILE_READ:
	case KAL_MSG_FILE_WRITE:
	case KAL_MSG_FILE_DATA:
	case KAL_MSG_FILE_END:
	case KAL_MSG_DETACH:
	case KAL_MSG_SYNC:
		return true;
	default:
		return false;
	}
}

static bool opens_session(uint16_t t)
{
	return t == KAL_MSG_SPAWN || t == KAL_MSG_FILE_READ || t == KAL_MSG_FILE_WRITE ||
	       t == KAL_MSG_LIST || t == KAL_MSG_PING || t == KAL_MSG_SYNC;
}

static void sup_stop(struct sup *s);

static void client_frame(struct sup *s, struct client *c, const struct kal_frame_hdr *h,
			 const uint8_t *p)
{
	struct sess *se;

	if (!c->hello) {
		static uint8_t buf[KAL_PROTO_MAX_FRAME];
		struct kal_msg_hello hello;
		long n;

		if (h->type != KAL_MSG_HELLO || h->session != 0 ||
		    kal_proto_dec_hello(p, h->len, &hello) < 0) {
			client_error(c, 0, EPROTO, "expected HELLO");
			c->dead = true;
			return;
		}
		n = kal_proto_enc_hello(buf, KAL_PROTO_VERSION, KAL_CTL_SOFTWARE);
		if (n > 0)
			bq_push(&c->out, buf, (size_t)n);
		if (hello.version != KAL_PROTO_VERSION) {
			client_error(c, 0, EPROTO, "protocol version mismatch");
			c->dead = true;
			return;
		}
		c->hello = true;
		return;
	}
	if (h->type >= KAL_MSG_CTL_FIRST) {
		switch (h->type) {
		case KAL_CTL_STATUS:
			ctl_status(s, c, h->session);
			return;
		case KAL_CTL_STOP:
			frame_push(&c->out, KAL_CTL_STOPPING, h->session, NULL, 0);
			bq_flush(&c->out, c->fd);
			sup_stop(s);
			return;
		default:
			client_error(c, h->session, EPROTO, "unknown control message");
			return;
		}
	}
	if (h->session == 0 || !client_may_send(h->type)) {
		client_error(c, h->session, EPROTO, "unexpected message");
		c->dead = true;
		return;
	}
	se = sess_by_local(s, c, h->session);
	if (!se) {
		if (opens_session(h->type)) {
			se = sess_new(s, c, h->session, 0);
		} else if (h->type == KAL_MSG_WAIT) {
			/* attach to a session by the agent-wide id (from LIST) */
			if (h->session >= SUP_SYNC_SESSION || sess_by_gid(s, h->session)) {
				client_error(c, h->session, EBUSY,
					     "session is attached to another client");
				return;
			}
			se = sess_new(s, c, h->session, h->session);
		} else {
			client_error(c, h->session, ENOENT, "no such session");
			return;
		}
		if (!se) {
			client_error(c, h->session, EAGAIN, "too many sessions");
			return;
		}
		se->kind = h->type;
		if (h->type == KAL_MSG_SPAWN && h->len >= 4)
			se->flags = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
				    (uint32_t)p[3] << 24;
	}
	if (s->agent_dead) {
		client_error(c, h->session, EPIPE, "guest agent lost");
		se->c = NULL;
		return;
	}
	frame_push(&s->agent_out, h->type, se->gid, p, h->len);
	if (h->type == KAL_MSG_DETACH)
		se->c = NULL; /* the agent keeps it; a later WAIT re-attaches by id */
}

static void client_read(struct sup *s, struct client *c)
{
	struct kal_frame_hdr h;
	const uint8_t *p;
	int rc = kal_proto_reader_fill(c->rd, c->fd);

	if (rc < 0 && rc != -EMSGSIZE && rc != -EPROTO) {
		c->dead = true;
		return;
	}
	while (!c->dead && (rc = kal_proto_reader_frame(c->rd, &h, &p)) == 1) {
		client_frame(s, c, &h, p);
		kal_proto_reader_consume(c->rd);
	}
	if (rc < 0) {
		client_error(c, 0, EPROTO, "malformed frame");
		bq_flush(&c->out, c->fd);
		c->dead = true;
	}
}

static void client_accept(struct sup *s)
{
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct client *c;

	if (fd < 0)
		return;
	if (s->n_clients == SUPERVISOR_MAX_CLIENTS) {
		close(fd);
		return;
	}
	c = xzalloc(sizeof(*c));
	c->fd = fd;
	c->rd = xzalloc(sizeof(*c->rd));
	s->clients[s->n_clients++] = c;
}

/* ---- lifecycle ---------------------------------------------------------- */

/*
 * Ask the agent to sync the guest's filesystems before the engine pulls the
 * plug (QMP quit does not tell the guest).  Bounded: a wedged guest only
 * delays the stop by SUP_SYNC_TIMEOUT_MS.
 */
static void sup_sync_guest(struct sup *s)
{
	int fd = s->ops->agent_fd(s->m);
	long long deadline = mono_ms() + SUP_SYNC_TIMEOUT_MS;

	if (!s->agent_ready || s->agent_dead)
		return;
	frame_push(&s->agent_out, KAL_MSG_SYNC, SUP_SYNC_SESSION, NULL, 0);
	s->sync_done = false;
	while (!s->sync_done && !s->agent_dead) {
		long long left = deadline - mono_ms();
		struct pollfd p = { .fd = fd,
				    .events = (short)(POLLIN | (s->agent_out.len ? POLLOUT : 0)) };

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if (p.revents & POLLOUT && bq_flush(&s->agent_out, fd) < 0)
			break;
		if (p.revents & (POLLIN | POLLHUP | POLLERR))
			agent_read(s);
	}
	if (!s->sync_done)
		kal_warn("supervise %s: guest did not confirm sync", s->name);
}

static void sup_stop(struct sup *s)
{
	struct kal_err *err = NULL;

	if (s->done)
		return;
	sup_sync_guest(s);
	if (s->ops->stop(s->m, 5000, &err) < 0) {
		kal_warn("supervise %s: stop: %s", s->name, err->msg);
		kal_err_free(err);
	}
	if (!s->exit_desc[0])
		snprintf(s->exit_desc, sizeof(s->exit_desc), "stopped");
	s->done = true;
}

static void sup_finish(struct sup *s)
{
	_cleanup_free_ char *exitf = vmstate_file(s->home, s->name, "exit");
	_cleanup_free_ char *pidf = vmstate_file(s->home, s->name, "supervisor.pid");
	char desc[200];

	if (!s->exit_desc[0] && s->m && !s->ops->wait(s->m, s->exit_desc, sizeof(s->exit_desc)))
		snprintf(s->exit_desc, sizeof(s->exit_desc), "stopped");
	snprintf(desc, sizeof(desc), "VM `%s` ended (%s)", s->name, s->exit_desc);
	if (s->ready_fd >= 0) {
		_cleanup_free_ char *tail = console_tail(s, 300);

		ready_report(
		    s, "error: VM `%s` stopped before its agent was ready (%s); console: %s\n",
		    s->name, s->exit_desc, tail);
	}
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		unlink(s->sock_path);
	}
	/* every session still open learns why, best effort (sockets are non-blocking) */
	while (s->n_clients) {
		struct client *c = s->clients[0];

		for (size_t i = 0; i < SUP_MAX_SESSIONS; i++)
			if (s->sess[i].c == c)
				client_error(c, s->sess[i].local, EPIPE, desc);
		bq_flush(&c->out, c->fd);
		for (size_t i = 0; i < SUP_MAX_SESSIONS; i++)
			if (s->sess[i].c == c)
				s->sess[i].c = NULL;
		client_close(s, c);
	}
	if (s->m)
		s->ops->destroy(s->m);
	s->m = NULL;
	{
		_cleanup_free_ char *line = xasprintf("%s\n", s->exit_desc);

		kal_atomic_write_file(exitf, line, strlen(line), 0600, NULL);
	}
	unlink(pidf);
	if (s->cfg && s->cfg->auto_remove) {
		if (s->sock_path)
			unlink(s->sock_path);
		vmstate_discard(s->home, s->name, NULL);
	}
}

static char *initrd_prepare(struct sup *s, struct kal_err **err)
{
	const char *env = getenv("KAL_INITRD");
	char *path;
	_cleanup_close_ int fd = -1;

	/* debugging and benchmarks: boot a given initramfs instead of the agent */
	if (env && *env)
		return xstrdup(env);
	path = vmstate_file(s->home, s->name, "initrd.cpio");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		kal_err_sys(err, errno, "create `%s`", path);
		free(path);
		return NULL;
	}
#ifdef HAVE_INITRD
	if (vmm_initrd_write(fd, err) < 0) {
		free(path);
		return NULL;
	}
	return path;
#else
	/* FIXME: until the agent (vmm/initrd.h) is merged, only KAL_INITRD boots */
	free(path);
	kal_err_set(err, ENOSYS, "this kal has no embedded agent (set KAL_INITRD)");
	return NULL;
#endif
}

static int sup_boot(struct sup *s, struct kal_err **err)
{
	_cleanup_free_ char *kernel = NULL, *initrd = NULL, *upper = NULL, *con = NULL;
	_cleanup_free_ struct machine_layer *layers = NULL;
	struct machine_config mc;

	kernel = machine_kernel_find(err);
	if (!kernel)
		return -1;
	initrd = initrd_prepare(s, err);
	if (!initrd)
		return -1;
	upper = vmstate_file(s->home, s->name, "upper.ext4");
	con = vmstate_file(s->home, s->name, "console.log");
	layers = xcalloc(s->cfg->n_layers + 1, sizeof(*layers));
	for (size_t i = 0; i < s->cfg->n_layers; i++)
		layers[i] =
		    (struct machine_layer){ s->cfg->layer_paths[i], s->cfg->layer_sizes[i] };
	mc = (struct machine_config){
		.name = s->name,
		.layers = layers,
		.n_layers = s->cfg->n_layers,
		.upper_path = upper,
		.kernel_path = kernel,
		.initrd_path = initrd,
		.memory_mib = s->cfg->memory_mib,
		.vcpus = s->cfg->cpus,
		.net = s->cfg->net,
		.hugepages = s->cfg->hugepages,
		.publish = s->cfg->publish,
		.n_publish = s->cfg->n_publish,
		.extra_cmdline = getenv("KAL_CMDLINE_EXTRA"),
		.state_dir = s->dir,
		.console_log = con,
	};
	s->log_fd = open(con, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (s->log_fd < 0)
		return kal_err_sys(err, errno, "create `%s`", con);
	s->m = s->ops->start(&mc, err);
	if (!s->m)
		return -1;
	set_nonblock(s->ops->agent_fd(s->m));
	set_nonblock(s->ops->console_fd(s->m));
	/* the client speaks first; the bytes wait until the agent opens its port */
	{
		uint8_t buf[256];
		long n = kal_proto_enc_hello(buf, KAL_PROTO_VERSION, KAL_CTL_SOFTWARE);

		bq_push(&s->agent_out, buf, (size_t)n);
	}
	return 0;
}

static int sup_loop(struct sup *s)
{
	while (!s->done) {
		struct pollfd pfd[8 + SUPERVISOR_MAX_CLIENTS];
		size_t n = 0, first_client;
		bool agent_paused = false, clients_paused;
		int timeout = -1, agent_fd = s->ops->agent_fd(s->m);

		for (size_t i = 0; i < s->n_clients; i++)
			if (s->clients[i]->out.len > SUPERVISOR_CLIENT_QUEUE_CAP)
				agent_paused = true;
		clients_paused = s->agent_out.len > SUPERVISOR_AGENT_QUEUE_CAP;

		pfd[n++] = (struct pollfd){ .fd = s->sig_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = s->ops->exit_fd(s->m), .events = POLLIN };
		long long now = mono_ms();
		bool console_wait = s->console_next > now;

		pfd[n++] = (struct pollfd){ .fd = console_wait ? -1 : s->ops->console_fd(s->m),
					    .events = POLLIN };
		pfd[n++] = (struct pollfd){
			.fd = s->agent_dead ? -1 : agent_fd,
			.events =
			    (short)((agent_paused ? 0 : POLLIN) | (s->agent_out.len ? POLLOUT : 0)),
		};
		pfd[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
		first_client = n;
		for (size_t i = 0; i < s->n_clients; i++) {
			struct client *c = s->clients[i];

			pfd[n++] = (struct pollfd){
				.fd = c->fd,
				.events = (short)((clients_paused ? 0 : POLLIN) |
						  (c->out.len ? POLLOUT : 0)),
			};
		}
		if (!s->agent_ready) {
			long long left = s->boot_deadline - mono_ms();

			if (left <= 0) {
				_cleanup_free_ char *tail = console_tail(s, 300);

				ready_report(s,
					     "error: guest agent not ready after %d s (console: "
					     "%s)\n",
					     s->boot_timeout_s, tail);
				sup_stop(s);
				break;
			}
			timeout = (int)left;
		}
		if (console_wait && (timeout < 0 || s->console_next - now < timeout))
			timeout = (int)(s->console_next - now);
		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;

			if (read(s->sig_fd, &si, sizeof(si)) > 0)
				sup_stop(s);
			break;
		}
		if (pfd[2].revents)
			console_drain(s);
		if (pfd[3].revents & (POLLIN | POLLHUP | POLLERR))
			agent_read(s);
		if (pfd[3].revents & POLLOUT && bq_flush(&s->agent_out, agent_fd) < 0)
			agent_lost(s, "write failed");
		if (s->agent_dead && !s->done) {
			/* the agent never exits: a dead channel means a dead guest */
			usleep(100000); /* QEMU closing the port usually means it is exiting */
			if (!s->ops->wait(s->m, s->exit_desc, sizeof(s->exit_desc)))
				snprintf(s->exit_desc, sizeof(s->exit_desc), "guest agent lost");
			console_drain(s);
			sup_stop(s);
			break;
		}
		for (size_t i = first_client; i < n; i++) {
			struct client *c = NULL;

			for (size_t j = 0; j < s->n_clients; j++)
				if (s->clients[j]->fd == pfd[i].fd)
					c = s->clients[j];
			if (!c)
				continue;
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				client_read(s, c);
			if (s->done)
				break;
			if (!c->dead && bq_flush(&c->out, c->fd) < 0)
				c->dead = true;
			if (c->dead) {
				bq_flush(&c->out, c->fd);
				client_close(s, c);
			}
		}
		if (s->done)
			break;
		if (s->agent_out.len && bq_flush(&s->agent_out, agent_fd) < 0)
			agent_lost(s, "write failed");
		if (pfd[4].revents & POLLIN)
			client_accept(s);
		if (pfd[1].revents) {
			console_drain(s);
			s->ops->wait(s->m, s->exit_desc, sizeof(s->exit_desc));
			s->done = true;
		}
	}
	return 0;
}

int supervisor_main(const char *home, const char *name, int ready_fd, struct kal_err **err)
{
	struct sup *s = xzalloc(sizeof(*s));
	_cleanup_close_ int lock = -1;
	_cleanup_free_ char *pidf = NULL;
	const char *bt = getenv("KAL_BOOT_TIMEOUT");
	sigset_t mask;
	char pidline[32];
	int rc = -1;

	s->home = home;
	s->name = name;
	s->ready_fd = ready_fd;
	prctl(PR_SET_NAME, "kal-supervise");
	if (ready_fd >= 0)
		fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
	s->listen_fd = s->sig_fd = s->log_fd = -1;
	s->started = time(NULL);
	s->boot_timeout_s = bt && atoi(bt) > 0 ? atoi(bt) : SUPERVISOR_BOOT_TIMEOUT_S;
	s->boot_deadline = mono_ms() + 1000LL * s->boot_timeout_s;
	s->dir = vmstate_dir(home, name);
	s->agent_rd = xzalloc(sizeof(*s->agent_rd));

	if (vmstate_load(home, name, &s->cfg, err) < 0)
		goto out;
	lock = vmstate_lock(home, name, err);
	if (lock < 0)
		goto out;
	s->sock_path = vmstate_sock_path(home, name, err);
	if (!s->sock_path)
		goto out;
	s->ops = machine_engine_find(s->cfg->engine);
	if (!s->ops) {
		kal_err_set(err, EINVAL, "unknown engine `%s`", s->cfg->engine);
		goto out;
	}
	pidf = vmstate_file(home, name, "supervisor.pid");
	snprintf(pidline, sizeof(pidline), "%d\n", (int)getpid());
	if (kal_atomic_write_file(pidf, pidline, strlen(pidline), 0600, err) < 0)
		goto out;
	{
		_cleanup_free_ char *exitf = vmstate_file(home, name, "exit");

		unlink(exitf);
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->sig_fd < 0) {
		kal_err_sys(err, errno, "signalfd");
		goto out;
	}
	if (sup_boot(s, err) < 0)
		goto out;
	sup_loop(s);
	rc = 0;
out:
	if (rc < 0) {
		kal_err_wrap(err, "start VM `%s`", name);
		ready_report(s, "error: %s\n", (*err)->msg);
		snprintf(s->exit_desc, sizeof(s->exit_desc), "failed to start");
	}
	if (lock >= 0)
		sup_finish(s);
	if (s->sig_fd >= 0)
		close(s->sig_fd);
	if (s->log_fd >= 0)
		close(s->log_fd);
	bq_free(&s->agent_out);
	free(s->agent_rd);
	free(s->sock_path);
	free(s->dir);
	vm_config_free(s->cfg);
	free(s);
	return rc;
}

/* ---- client helpers ----------------------------------------------------- */

static volatile sig_atomic_t spawn_signal;

static void spawn_on_signal(int signo)
{
	spawn_signal = signo;
}

int supervisor_spawn(const char *home, const char *name, struct kal_err **err)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa = { .sa_flags = 0 }, old_sa[3];
	sigset_t stop_sigs, old_mask;
	_cleanup_free_ char *logpath = vmstate_file(home, name, "supervisor.log");
	_cleanup_close_ int rfd = -1;
	char buf[4096];
	size_t have = 0;
	int p[2], st;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return kal_err_sys(err, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return kal_err_sys(err, errno, "fork");
	}
	if (pid == 0) {
		char fdarg[16];
		int null, log;

		setsid();
		if (fork() != 0)
			_exit(0);
		null = open("/dev/null", O_RDWR | O_CLOEXEC);
		log = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		dup2(null, 0);
		dup2(null, 1);
		dup2(log >= 0 ? log : null, 2);
		/* nothing of the caller's (a test harness's pipes, a terminal) stays open */
		if (p[1] < 4) {
			int hi = fcntl(p[1], F_DUPFD_CLOEXEC, 4);

			if (hi >= 0)
				p[1] = hi;
		}
		if (p[1] != 3) {
			dup2(p[1], 3);
		} else {
			fcntl(3, F_SETFD, 0);
		}
		close_range(4, ~0U, 0);
		snprintf(fdarg, sizeof(fdarg), "%d", 3);
		execl("/proc/self/exe", "kal", "--home", home, "__supervise", "--ready-fd", fdarg,
		      name, (char *)NULL);
		dprintf(2, "exec kal: %s\n", strerror(errno));
		_exit(127);
	}
	close(p[1]);
	rfd = p[0];
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	/*
	 * Wait for the verdict with SIGINT/SIGTERM/SIGHUP blocked except inside
	 * ppoll: an interrupted boot stops the VM instead of leaving it behind.
	 */
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGINT);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop_sigs, &old_mask);
	sa.sa_handler = spawn_on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, &old_sa[i]);
	spawn_signal = 0;
	for (;;) {
		struct pollfd pfd = { .fd = rfd, .events = POLLIN };
		ssize_t n;

		if (ppoll(&pfd, 1, NULL, &old_mask) < 0 && errno != EINTR)
			break;
		if (spawn_signal)
			break;
		if (!pfd.revents)
			continue;
		n = read(rfd, buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || have + (size_t)n >= sizeof(buf) - 1) {
			if (n > 0)
				have += (size_t)n;
			break;
		}
		have += (size_t)n;
	}
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &old_sa[i], NULL);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	if (spawn_signal) {
		int signo = spawn_signal;
		pid_t spid = 0;

		/* the supervisor may not have its socket yet: SIGTERM is its stop */
		for (int i = 0; i < 300 && spid <= 0; i++) {
			if (vmstate_get(home, name, &spid) != VMSTATE_RUNNING || spid <= 0)
				usleep(10000);
		}
		if (spid > 0)
			kill(spid, SIGTERM);
		/*
		 * The supervisor holds the write end of the ready pipe until it
		 * exits: wait for that EOF (bounded), so "stopped" is true when
		 * we say it and nothing of the VM outlives this command.
		 */
		for (long long end = mono_ms() + 10000; mono_ms() < end;) {
			struct pollfd pfd = { .fd = rfd, .events = POLLIN };

			if (poll(&pfd, 1, 100) > 0 && read(rfd, buf, sizeof(buf)) == 0)
				break;
		}
		kal_err_set(err, EINTR, "start VM `%s`: interrupted (the VM was stopped)", name);
		(*err)->exit_code = 128 + signo;
		return -1;
	}
	buf[have] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (strcmp(buf, "ready") == 0)
		return 0;
	if (strncmp(buf, "error: ", 7) == 0)
		return kal_err_set(err, EIO, "%s", buf + 7);
	return kal_err_set(err, EIO, "VM `%s`: supervisor exited without a word (see `%s`)", name,
			   logpath);
}

/* Blocking read of one frame into buf (KAL_PROTO_MAX_FRAME bytes). */
static int frame_read(int fd, struct kal_frame_hdr *h, uint8_t *buf, int timeout_ms,
		      struct kal_err **err)
{
	size_t want = KAL_PROTO_HDR_SIZE, have = 0;
	long long deadline = mono_ms() + timeout_ms;
	bool hdr_done = false;

	while (have < want) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - mono_ms();
		ssize_t n;
		int r;

		if (left <= 0)
			return kal_err_set(err, ETIMEDOUT, "supervisor did not answer");
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno != EINTR)
			return kal_err_sys(err, errno, "poll");
		if (r <= 0)
			continue;
		n = read(fd, buf + have, want - have);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return kal_err_sys(err, errno, "read");
		if (n == 0)
			return kal_err_set(err, EPIPE, "supervisor closed the connection");
		have += (size_t)n;
		if (!hdr_done && have == KAL_PROTO_HDR_SIZE) {
			int rc = kal_proto_hdr_decode(buf, h);

			if (rc < 0)
				return kal_err_set(err, -rc, "supervisor sent a malformed frame");
			hdr_done = true;
			want += h->len;
		}
	}
	return 0;
}

static int sock_connect(const char *home, const char *name, struct kal_err **err)
{
	_cleanup_free_ char *path = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (vmstate_name_check(name, err) < 0)
		return -1;
	path = vmstate_sock_path(home, name, err);
	if (!path)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kal_err_sys(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		if (vmstate_get(home, name, NULL) == VMSTATE_MISSING)
			return kal_err_set(err, ENOENT, "no such VM `%s`", name);
		if (e == ENOENT || e == ECONNREFUSED)
			return kal_err_set(err, e, "VM `%s` is not running", name);
		return kal_err_sys(err, e, "connect to VM `%s`", name);
	}
	return fd;
}

int supervisor_connect(const char *home, const char *name, struct kal_err **err)
{
	_cleanup_close_ int fd = sock_connect(home, name, err);
	_cleanup_free_ uint8_t *buf = NULL;
	struct kal_frame_hdr h;
	struct kal_msg_hello hello;
	long n;

	if (fd < 0)
		return -1;
	buf = xmalloc(KAL_PROTO_MAX_FRAME);
	n = kal_proto_enc_hello(buf, KAL_PROTO_VERSION, "kal " KAL_VERSION);
	if (n < 0 || kal_write_all(fd, buf, (size_t)n, err) < 0 ||
	    frame_read(fd, &h, buf, 10000, err) < 0)
		return kal_err_wrap(err, "VM `%s`", name);
	if (h.type != KAL_MSG_HELLO ||
	    kal_proto_dec_hello(buf + KAL_PROTO_HDR_SIZE, h.len, &hello) < 0)
		return kal_err_set(err, EPROTO, "VM `%s`: supervisor did not say HELLO", name);
	if (hello.version != KAL_PROTO_VERSION)
		return kal_err_set(err, EPROTO,
				   "VM `%s`: supervisor speaks protocol %u, kal speaks %u", name,
				   hello.version, KAL_PROTO_VERSION);
	return steal_fd(&fd);
}

int supervisor_status(const char *home, const char *name, struct supervisor_status *st,
		      struct kal_err **err)
{
	_cleanup_close_ int fd = supervisor_connect(home, name, err);
	_cleanup_free_ uint8_t *buf = NULL;
	struct kal_frame_hdr h;
	struct kal_proto_r r;
	long n;

	if (fd < 0)
		return -1;
	buf = xmalloc(KAL_PROTO_MAX_FRAME);
	n = kal_proto_enc_empty(buf, KAL_CTL_STATUS, 1);
	if (kal_write_all(fd, buf, (size_t)n, err) < 0 || frame_read(fd, &h, buf, 5000, err) < 0)
		return kal_err_wrap(err, "VM `%s`: status", name);
	if (h.type != KAL_CTL_STATUS_REPLY)
		return kal_err_set(err, EPROTO, "VM `%s`: unexpected status reply", name);
	kal_proto_r_init(&r, buf + KAL_PROTO_HDR_SIZE, h.len);
	snprintf(st->state, sizeof(st->state), "%s", kal_proto_r_str(&r) ?: "");
	snprintf(st->engine, sizeof(st->engine), "%s", kal_proto_r_str(&r) ?: "");
	st->pid = (pid_t)kal_proto_r_u32(&r);
	st->started = kal_proto_r_u64(&r);
	st->clients = kal_proto_r_u32(&r);
	st->sessions = kal_proto_r_u32(&r);
	kal_proto_r_str(&r);
	if (kal_proto_r_end(&r) < 0)
		return kal_err_set(err, EPROTO, "VM `%s`: malformed status reply", name);
	return 0;
}

static bool wait_stopped(const char *home, const char *name, int timeout_ms)
{
	long long deadline = mono_ms() + timeout_ms;

	while (vmstate_get(home, name, NULL) == VMSTATE_RUNNING) {
		if (mono_ms() > deadline)
			return false;
		usleep(10000);
	}
	return true;
}

int supervisor_stop(const char *home, const char *name, int timeout_ms, struct kal_err **err)
{
	struct kal_err *cerr = NULL;
	_cleanup_free_ char *sock = NULL;
	pid_t pid;
	int fd;

	if (vmstate_name_check(name, err) < 0)
		return -1;
	switch (vmstate_get(home, name, &pid)) {
	case VMSTATE_MISSING:
		return kal_err_set(err, ENOENT, "no such VM `%s`", name);
	case VMSTATE_CREATED:
		/* a supervisor killed hard leaves its socket; nothing listens on it */
		sock = vmstate_sock_path(home, name, NULL);
		if (sock)
			unlink(sock);
		return 0;
	case VMSTATE_RUNNING:
		break;
	}
	fd = supervisor_connect(home, name, &cerr);
	if (fd >= 0) {
		uint8_t buf[KAL_PROTO_HDR_SIZE + 4];
		struct kal_proto_w w;
		char sink[4096];

		kal_proto_w_init(&w, buf, KAL_CTL_STOP, 1);
		kal_proto_w_u32(&w, (uint32_t)timeout_ms);
		kal_proto_w_finish(&w);
		if (write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf)) {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			/* the supervisor closes every client once the VM is gone */
			while (poll(&p, 1, timeout_ms + 5000) > 0 &&
			       read(fd, sink, sizeof(sink)) > 0)
				;
		}
		close(fd);
	} else if (pid > 0) {
		kill(pid, SIGTERM);
	}
	kal_err_free(cerr);
	if (!wait_stopped(home, name, timeout_ms + 5000)) {
		vmstate_get(home, name, &pid);
		if (pid > 0)
			kill(pid, SIGKILL);
		if (!wait_stopped(home, name, 5000))
			return kal_err_set(err, ETIMEDOUT, "VM `%s` did not stop", name);
	}
	/* a supervisor killed hard leaves its socket; nothing can be listening now */
	sock = vmstate_sock_path(home, name, NULL);
	if (sock)
		unlink(sock);
	return 0;
}
