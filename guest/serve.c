// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The agent's serving loop: one thread, poll() over the host channel, a
 * signalfd (SIGCHLD, SIGTERM, SIGINT) and every session's fds.  Sessions are
 * processes (pipes or a pty) or file transfers.  Memory stays bounded: the
 * channel queue has a cap above which neither children nor the channel are
 * read (pipes fill and children block; a host that sends requests without
 * reading replies stops being read), detached sessions keep only their last
 * output, stdin queues have a cap above which the channel is not read, and
 * sessions are capped in number.  A malformed host frame resets the channel state
 * (sessions survive, detached); it never crashes PID 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"

#define STDIN_CAP (256u * 1024)
#define ARGV0_MAX 128

/* byte queue of encoded frames or raw stdin bytes */
struct bq {
	uint8_t *d;
	size_t head, len, cap;
};

enum sess_kind { SESS_PROC, SESS_FREAD, SESS_FWRITE };

struct session {
	uint32_t id;
	enum sess_kind kind;
	pid_t pid;
	int in_fd;  /* child's stdin (pipe write end or pty master), or -1 */
	int out_fd; /* stdout pipe / pty master / file being read */
	int err_fd; /* stderr pipe */
	bool pty, exited, attached, stdin_eof;
	int status;
	struct bq in;	  /* pending stdin bytes */
	struct bq ring;	  /* frames kept while detached (bounded, oldest dropped) */
	uint64_t dropped; /* bytes dropped from ring */
	char argv0[ARGV0_MAX];
	char *tmp_path, *dst_path; /* FILE_WRITE */
	mode_t mode;
	uint64_t size;
	struct session *next;
};

static struct {
	int fd;
	bool up, mismatch, test_mode;
	struct kal_proto_reader rd;
	struct bq out;
	struct session *sessions;
	unsigned int nsessions;
	uint8_t frame[KAL_PROTO_MAX_FRAME];
	int sigfd;
} A;

/* ---- byte queues ---- */

static void bq_reserve(struct bq *q, size_t n)
{
	if (q->head && q->head + q->len + n > q->cap) {
		memmove(q->d, q->d + q->head, q->len);
		q->head = 0;
	}
	if (q->len + n > q->cap) {
		size_t cap = q->cap ? q->cap : 4096;
		uint8_t *d;

		while (cap < q->len + n)
			cap *= 2;
		d = realloc(q->d, cap);
		if (!d)
			agent_fatal("out of memory (queue of %zu bytes)", cap);
		q->d = d;
		q->cap = cap;
	}
}

static void bq_put(struct bq *q, const void *p, size_t n)
{
	bq_reserve(q, n);
	memcpy(q->d + q->head + q->len, p, n);
	q->len += n;
}

static void bq_drop(struct bq *q, size_t n)
{
	q->head += n;
	q->len -= n;
	if (!q->len)
		q->head = 0;
}

static void bq_free(struct bq *q)
{
	free(q->d);
	memset(q, 0, sizeof(*q));
}

/* ---- channel output ---- */

static void chan_reset(const char *why);

static void chan_queue(const uint8_t *frame, long n)
{
	if (n < 0) {
		agent_log("internal: cannot encode a frame (%ld)", n);
		return;
	}
	if (!A.up)
		return;
	bq_put(&A.out, frame, (size_t)n);
}

static void send_error(uint32_t sid, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void send_error(uint32_t sid, int errnum, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	chan_queue(A.frame, kal_proto_enc_error(A.frame, sid, errnum, msg));
}

static void send_hello(void)
{
	chan_queue(A.frame,
		   kal_proto_enc_hello(A.frame, KAL_PROTO_VERSION, "kal-init " KAL_VERSION));
}

/* a session's output frame: to the channel when attached, else to its bounded ring */
static void sess_emit(struct session *s, const uint8_t *frame, long n)
{
	struct kal_frame_hdr h;

	if (n < 0)
		return;
	if (s->attached && A.up) {
		chan_queue(frame, n);
		return;
	}
	bq_put(&s->ring, frame, (size_t)n);
	while (s->ring.len > KAL_PROTO_DETACHED_CAP) {
		kal_proto_hdr_decode(s->ring.d + s->ring.head, &h);
		s->dropped += h.len;
		bq_drop(&s->ring, KAL_PROTO_HDR_SIZE + h.len);
	}
}

/* ---- sessions ---- */

static struct session *sess_find(uint32_t id);

/*
 * A well-framed message with a bad payload: only its session suffers (the
 * supervisor forwards clients' payloads unparsed, so one bad client must not
 * disturb the others).  The session, if any, goes on detached.
 */
static void frame_rejected(uint32_t sid, uint16_t type)
{
	struct session *s = sid ? sess_find(sid) : NULL;

	agent_log("rejected a malformed %s frame (session %u)", kal_proto_type_name(type), sid);
	send_error(sid, EPROTO, "malformed %s frame", kal_proto_type_name(type));
	if (s)
		s->attached = false;
}

static struct session *sess_find(uint32_t id)
{
	for (struct session *s = A.sessions; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void sess_free(struct session *s)
{
	struct session **pp;

	for (pp = &A.sessions; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	if (s->pty)
		s->in_fd = -1; /* same fd as out_fd */
	close_fd(&s->in_fd);
	close_fd(&s->out_fd);
	close_fd(&s->err_fd);
	if (s->tmp_path)
		unlink(s->tmp_path);
	free(s->tmp_path);
	free(s->dst_path);
	bq_free(&s->in);
	bq_free(&s->ring);
	A.nsessions--;
	free(s);
}

static struct session *sess_new(uint32_t id, enum sess_kind kind)
{
	struct session *s;

	if (id == 0) {
		send_error(id, EINVAL, "session id 0 is reserved");
		return NULL;
	}
	if (sess_find(id)) {
		send_error(id, EEXIST, "session %u already exists", id);
		return NULL;
	}
	if (A.nsessions >= KAL_PROTO_MAX_SESSIONS) {
		/* make room by forgetting the oldest finished detached process */
		struct session *old = NULL;

		for (s = A.sessions; s; s = s->next)
			if (s->kind == SESS_PROC && s->exited && s->out_fd < 0 && s->err_fd < 0 &&
			    !s->attached)
				old = s;
		if (!old) {
			send_error(id, EAGAIN, "too many sessions (at most %u)",
				   KAL_PROTO_MAX_SESSIONS);
			return NULL;
		}
		sess_free(old);
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		agent_fatal("out of memory");
	s->id = id;
	s->kind = kind;
	s->pid = -1;
	s->in_fd = s->out_fd = s->err_fd = -1;
	s->attached = true;
	s->next = A.sessions;
	A.sessions = s;
	A.nsessions++;
	return s;
}

static bool sess_done(const struct session *s)
{
	return s->kind == SESS_PROC && s->exited && s->out_fd < 0 && s->err_fd < 0;
}

/* the process ended and its output is drained: EXIT, then forget it unless detached */
static void sess_finish(struct session *s)
{
	struct kal_msg_exit e = { 0 };

	if (WIFSIGNALED(s->status)) {
		e.kind = KAL_EXIT_KIND_SIGNALED;
		e.signo = (uint32_t)WTERMSIG(s->status);
		e.code = 128 + WTERMSIG(s->status);
	} else {
		e.code = WEXITSTATUS(s->status);
	}
	if (s->attached && A.up) {
		chan_queue(A.frame, kal_proto_enc_exit(A.frame, s->id, &e));
		sess_free(s);
	}
	/* detached: kept (state EXITED) until a WAIT collects it or room is needed */
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int open_pty(int *master, char *slave, size_t len, const struct kal_msg_spawn *m)
{
	struct winsize ws = { .ws_row = m->rows, .ws_col = m->cols };
	int fd;

	fd = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		fd = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (grantpt(fd) < 0 || unlockpt(fd) < 0 || ptsname_r(fd, slave, len) != 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	if (ws.ws_row && ws.ws_col)
		ioctl(fd, TIOCSWINSZ, &ws);
	set_nonblock(fd);
	*master = fd;
	return 0;
}

static void handle_spawn(uint32_t sid, const uint8_t *p, size_t n)
{
	struct kal_msg_spawn m;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, errp[2] = { -1, -1 }, master = -1;
	char slave[128];
	struct session *s;
	pid_t pid;
	int rc;

	if (kal_proto_dec_spawn(p, n, &m) < 0) {
		frame_rejected(sid, KAL_MSG_SPAWN);
		return;
	}
	s = sess_new(sid, SESS_PROC);
	if (!s)
		goto out;
	if (m.flags & KAL_SPAWN_PTY) {
		rc = open_pty(&master, slave, sizeof(slave), &m);
		if (rc < 0) {
			send_error(sid, -rc, "open a pty: %s", strerror(-rc));
			sess_free(s);
			goto out;
		}
	} else if (((m.flags & KAL_SPAWN_STDIN) && pipe2(in, O_CLOEXEC) < 0) ||
		   pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		send_error(sid, errno, "pipe: %s", strerror(errno));
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		send_error(sid, errno, "fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		int fd;

		setsid();
		if (master >= 0) {
			fd = open(slave, O_RDWR);
			if (fd < 0)
				_exit(126);
			ioctl(fd, TIOCSCTTY, 0);
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
			if (fd > 2)
				close(fd);
		} else {
			fd = in[0] >= 0 ? in[0] : open("/dev/null", O_RDONLY);
			dup2(fd, 0);
			dup2(out[1], 1);
			dup2(errp[1], 2);
		}
		agent_spawn_child(&m);
	}
	s->pid = pid;
	s->attached = !(m.flags & KAL_SPAWN_DETACH);
	snprintf(s->argv0, sizeof(s->argv0), "%s", m.argv[0]);
	if (master >= 0) {
		s->pty = true;
		s->in_fd = s->out_fd = master;
	} else {
		close(out[1]);
		close(errp[1]);
		s->out_fd = out[0];
		s->err_fd = errp[0];
		set_nonblock(s->out_fd);
		set_nonblock(s->err_fd);
		if (in[0] >= 0) {
			close(in[0]);
			s->in_fd = in[1];
			set_nonblock(s->in_fd);
		}
	}
	chan_queue(A.frame, kal_proto_enc_u32(A.frame, KAL_MSG_SPAWNED, sid, (uint32_t)pid));
	goto out;
fail:
	for (int i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
		close_fd(&errp[i]);
	}
	close_fd(&master);
	sess_free(s);
out:
	kal_proto_spawn_free(&m);
}

static void handle_file_read(uint32_t sid, const uint8_t *p, size_t n)
{
	struct kal_proto_r r;
	const char *path;
	struct session *s;
	struct stat st;
	int fd;

	kal_proto_r_init(&r, p, n);
	path = kal_proto_r_str(&r);
	if (kal_proto_r_end(&r) < 0) {
		frame_rejected(sid, KAL_MSG_FILE_READ);
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = fd < 0 ? errno : EISDIR;

		if (fd >= 0)
			close(fd);
		send_error(sid, e, "open `%s`: %s", path,
			   e == EISDIR ? "not a regular file" : strerror(e));
		return;
	}
	s = sess_new(sid, SESS_FREAD);
	if (!s) {
		close(fd);
		return;
	}
	s->out_fd = fd;
	s->mode = st.st_mode & 07777;
}

static void handle_file_write(uint32_t sid, const uint8_t *p, size_t n)
{
	struct kal_proto_r r;
	const char *path;
	struct session *s;
	uint32_t mode;
	char *tmp;
	int fd;

	kal_proto_r_init(&r, p, n);
	mode = kal_proto_r_u32(&r);
	path = kal_proto_r_str(&r);
	if (kal_proto_r_end(&r) < 0 || !path[0]) {
		frame_rejected(sid, KAL_MSG_FILE_WRITE);
		return;
	}
	if (asprintf(&tmp, "%s.kal-tmp.%u", path, sid) < 0)
		agent_fatal("out of memory");
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
	if (fd < 0) {
		send_error(sid, errno, "create `%s`: %s", path, strerror(errno));
		free(tmp);
		return;
	}
	s = sess_new(sid, SESS_FWRITE);
	if (!s) {
		close(fd);
		unlink(tmp);
		free(tmp);
		return;
	}
	s->in_fd = fd;
	s->tmp_path = tmp;
	s->dst_path = strdup(path);
	s->mode = mode & 07777;
}

static void file_write_data(struct session *s, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(s->in_fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			send_error(s->id, errno, "write `%s`: %s", s->dst_path, strerror(errno));
			sess_free(s);
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void file_write_end(struct session *s)
{
	if (fchmod(s->in_fd, s->mode) < 0 || fsync(s->in_fd) < 0 ||
	    rename(s->tmp_path, s->dst_path) < 0) {
		send_error(s->id, errno, "write `%s`: %s", s->dst_path, strerror(errno));
	} else {
		free(s->tmp_path);
		s->tmp_path = NULL;
		chan_queue(A.frame, kal_proto_enc_empty(A.frame, KAL_MSG_OK, s->id));
	}
	sess_free(s);
}

static void handle_list(uint32_t sid)
{
	struct kal_proto_w w;
	uint32_t count = 0;
	size_t count_off;

	kal_proto_w_init(&w, A.frame, KAL_MSG_LIST_REPLY, sid);
	count_off = w.len;
	kal_proto_w_u32(&w, 0);
	for (struct session *s = A.sessions; s; s = s->next) {
		if (s->kind != SESS_PROC)
			continue;
		kal_proto_w_u32(&w, s->id);
		kal_proto_w_u32(&w, (uint32_t)s->pid);
		kal_proto_w_u8(&w, s->exited ? KAL_SESSION_EXITED : KAL_SESSION_RUNNING);
		kal_proto_w_u32(&w, s->exited ? (uint32_t)(WIFSIGNALED(s->status)
							       ? 128 + WTERMSIG(s->status)
							       : WEXITSTATUS(s->status))
					      : 0);
		kal_proto_w_str(&w, s->argv0);
		count++;
	}
	/* MAX_SESSIONS x (17 + ARGV0_MAX) bytes fits a frame */
	w.buf[count_off] = count & 0xff;
	w.buf[count_off + 1] = (count >> 8) & 0xff;
	chan_queue(A.frame, kal_proto_w_finish(&w));
}

static void sess_signal_all(int sig)
{
	for (struct session *s = A.sessions; s; s = s->next)
		if (s->kind == SESS_PROC && !s->exited && s->pid > 0)
			kill(-s->pid, sig);
}

/* one complete frame from the host */
static void handle_frame(const struct kal_frame_hdr *h, const uint8_t *p)
{
	struct session *s = h->session ? sess_find(h->session) : NULL;
	struct kal_msg_hello hello;
	uint64_t cookie;
	uint32_t u;
	uint16_t rows, cols;

	if (h->type == KAL_MSG_HELLO) {
		if (kal_proto_dec_hello(p, h->len, &hello) < 0) {
			frame_rejected(h->session, h->type);
			return;
		}
		/* answer with our version either way; the host reports a mismatch */
		send_hello();
		A.mismatch = hello.version != KAL_PROTO_VERSION;
		if (A.mismatch)
			agent_log("host speaks protocol version %u, this agent %u", hello.version,
				  KAL_PROTO_VERSION);
		return;
	}
	/*
	 * The agent announces its version first, so a host that sends no HELLO
	 * (the supervisor checks the agent's) is served; one that announced a
	 * different version is not, until it says HELLO with ours.
	 */
	if (A.mismatch) {
		send_error(h->session, EPROTO, "protocol version mismatch: agent speaks %u",
			   KAL_PROTO_VERSION);
		return;
	}
	switch (h->type) {
	case KAL_MSG_PING:
		if (kal_proto_dec_u64(p, h->len, &cookie) < 0)
			break;
		chan_queue(A.frame, kal_proto_enc_u64(A.frame, KAL_MSG_PONG, h->session, cookie));
		return;
	case KAL_MSG_SPAWN:
		handle_spawn(h->session, p, h->len);
		return;
	case KAL_MSG_LIST:
		if (kal_proto_dec_empty(p, h->len) < 0)
			break;
		handle_list(h->session);
		return;
	case KAL_MSG_FILE_READ:
		handle_file_read(h->session, p, h->len);
		return;
	case KAL_MSG_FILE_WRITE:
		handle_file_write(h->session, p, h->len);
		return;
	case KAL_MSG_SYNC:
		if (kal_proto_dec_empty(p, h->len) < 0)
			break;
		sync();
		chan_queue(A.frame, kal_proto_enc_empty(A.frame, KAL_MSG_OK, h->session));
		return;
	case KAL_MSG_STDIN:
	case KAL_MSG_STDIN_EOF:
	case KAL_MSG_RESIZE:
	case KAL_MSG_SIGNAL:
	case KAL_MSG_WAIT:
	case KAL_MSG_DETACH:
	case KAL_MSG_FILE_DATA:
	case KAL_MSG_FILE_END:
		if (!s) {
			/* late input for a session that just ended is normal; say so once */
			if (h->type != KAL_MSG_STDIN && h->type != KAL_MSG_RESIZE &&
			    h->type != KAL_MSG_STDIN_EOF)
				send_error(h->session, ESRCH, "no session %u", h->session);
			return;
		}
		break;
	default:
		send_error(h->session, EPROTO, "unexpected %s frame from the host",
			   kal_proto_type_name(h->type));
		chan_reset(NULL);
		return;
	}

	switch (h->type) {
	case KAL_MSG_STDIN:
		if (s->kind != SESS_PROC || s->in_fd < 0 || s->stdin_eof)
			return;
		bq_put(&s->in, p, h->len);
		return;
	case KAL_MSG_STDIN_EOF:
		if (kal_proto_dec_empty(p, h->len) < 0)
			break;
		if (s->kind != SESS_PROC || s->in_fd < 0 || s->stdin_eof)
			return;
		if (s->pty) {
			struct termios t;
			uint8_t eof = 4;

			if (tcgetattr(s->out_fd, &t) == 0 && t.c_cc[VEOF])
				eof = t.c_cc[VEOF];
			bq_put(&s->in, &eof, 1);
		} else {
			s->stdin_eof = true;
			if (!s->in.len)
				close_fd(&s->in_fd);
		}
		return;
	case KAL_MSG_RESIZE:
		if (kal_proto_dec_resize(p, h->len, &rows, &cols) < 0)
			break;
		if (s->pty && s->out_fd >= 0) {
			struct winsize ws = { .ws_row = rows, .ws_col = cols };

			ioctl(s->out_fd, TIOCSWINSZ, &ws);
		}
		return;
	case KAL_MSG_SIGNAL:
		if (kal_proto_dec_u32(p, h->len, &u) < 0)
			break;
		if (u < 1 || u >= (uint32_t)NSIG) {
			send_error(h->session, EINVAL, "bad signal %u", u);
			return;
		}
		if (s->kind == SESS_PROC && !s->exited && s->pid > 0)
			kill(-s->pid, (int)u);
		return;
	case KAL_MSG_WAIT:
		if (kal_proto_dec_empty(p, h->len) < 0)
			break;
		if (s->kind != SESS_PROC)
			return;
		s->attached = true;
		if (s->dropped) {
			/* a pty session only has one stream, and a terminal wants \r\n */
			char note[96];
			int k = snprintf(note, sizeof(note),
					 "kal: %llu bytes of earlier output were dropped%s",
					 (unsigned long long)s->dropped, s->pty ? "\r\n" : "\n");

			chan_queue(A.frame, kal_proto_enc_data(
						A.frame, s->pty ? KAL_MSG_STDOUT : KAL_MSG_STDERR,
						s->id, note, (size_t)k));
			s->dropped = 0;
		}
		if (s->ring.len)
			chan_queue(s->ring.d + s->ring.head, (long)s->ring.len);
		bq_free(&s->ring);
		if (sess_done(s))
			sess_finish(s);
		return;
	case KAL_MSG_DETACH:
		if (kal_proto_dec_empty(p, h->len) < 0)
			break;
		if (s->kind == SESS_PROC)
			s->attached = false;
		else
			sess_free(s);
		return;
	case KAL_MSG_FILE_DATA:
		if (s->kind != SESS_FWRITE)
			break;
		file_write_data(s, p, h->len);
		return;
	case KAL_MSG_FILE_END:
		if (s->kind != SESS_FWRITE)
			break;
		file_write_end(s);
		return;
	}
	frame_rejected(h->session, h->type);
}

/*
 * Forget the channel's input state: partial frames and the handshake.
 * Sessions keep running, detached, so a reconnecting host can WAIT on them.
 * Queued output stays: dropping it mid-frame would desynchronise the host.
 */
static void chan_reset(const char *why)
{
	if (why) {
		agent_log("channel reset: %s", why);
		send_error(0, EPROTO, "agent: %s", why);
	}
	A.rd.have = 0;
	A.mismatch = false;
	for (struct session *s = A.sessions; s; s = s->next)
		s->attached = false;
}

/* the host is gone (EOF, write error): nothing queued can be delivered */
static void chan_down(void)
{
	chan_reset(NULL);
	A.up = false;
	bq_free(&A.out);
}

static bool stdin_full(void)
{
	for (struct session *s = A.sessions; s; s = s->next)
		if (s->in.len > STDIN_CAP)
			return true;
	return false;
}

static bool chan_can_process(void)
{
	return A.up && A.out.len < KAL_PROTO_CHANNEL_CAP && !stdin_full();
}

/* handle buffered frames while there is room for their replies */
static void chan_process(void)
{
	struct kal_frame_hdr h;
	const uint8_t *p;
	int rc;

	while (chan_can_process()) {
		rc = kal_proto_reader_frame(&A.rd, &h, &p);
		if (rc == 0)
			return;
		if (rc < 0) {
			chan_reset(rc == -EMSGSIZE ? "frame larger than the protocol maximum"
						   : "malformed frame header");
			return;
		}
		handle_frame(&h, p);
		if (A.rd.have == 0)
			return; /* a reset emptied the reader */
		kal_proto_reader_consume(&A.rd);
	}
}

static bool sess_alive(const struct session *s)
{
	for (struct session *t = A.sessions; t; t = t->next)
		if (t == s)
			return true;
	return false;
}

/* read one chunk of a session's output fd into a frame */
static void sess_read(struct session *s, int *fd, uint16_t type)
{
	ssize_t n;

	do
		n = read(*fd, A.frame + KAL_PROTO_HDR_SIZE, KAL_PROTO_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		long len =
		    kal_proto_enc_data(A.frame, s->kind == SESS_FREAD ? KAL_MSG_FILE_DATA : type,
				       s->id, A.frame + KAL_PROTO_HDR_SIZE, (size_t)n);

		s->size += (uint64_t)n;
		if (s->kind == SESS_FREAD)
			chan_queue(A.frame, len);
		else
			sess_emit(s, A.frame, len);
		return;
	}
	if (n < 0 && errno == EAGAIN && !s->exited)
		return;
	/* EOF, EIO (pty with no slave left) or EAGAIN after the process ended */
	if (s->pty && *fd == s->in_fd)
		s->in_fd = -1;
	close_fd(fd);
	if (s->kind == SESS_FREAD) {
		struct kal_proto_w w;

		kal_proto_w_init(&w, A.frame, KAL_MSG_FILE_END, s->id);
		kal_proto_w_u32(&w, s->mode);
		kal_proto_w_u64(&w, s->size);
		chan_queue(A.frame, kal_proto_w_finish(&w));
		sess_free(s);
	} else if (sess_done(s)) {
		sess_finish(s);
	}
}

static void sess_write_stdin(struct session *s)
{
	ssize_t n;

	while (s->in.len) {
		n = write(s->in_fd, s->in.d + s->in.head, s->in.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			/* EPIPE: the child closed its stdin; further input is dropped */
			bq_free(&s->in);
			s->stdin_eof = true;
			if (!s->pty)
				close_fd(&s->in_fd);
			return;
		}
		bq_drop(&s->in, (size_t)n);
	}
	if (s->stdin_eof && !s->pty)
		close_fd(&s->in_fd);
}

static void reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (struct session *s = A.sessions; s; s = s->next) {
			if (s->kind == SESS_PROC && s->pid == pid) {
				s->exited = true;
				s->status = status;
				if (sess_done(s))
					sess_finish(s);
				break;
			}
		}
		/* anything else was an orphan re-parented to us: reaped, forgotten */
	}
}

static void handle_signals(void)
{
	struct signalfd_siginfo si;

	while (read(A.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			reap();
		} else {
			sess_signal_all((int)si.ssi_signo);
			/* the VM may be about to end: keep what was written */
			if (!A.test_mode)
				sync();
		}
	}
	reap();
}

/*
 * The rings were reset (guest/ring.c): bytes in flight both ways are gone, so
 * drop the partial output, report, and start the stream over with a HELLO.
 */
static void chan_ring_restart(const char *why)
{
	bq_free(&A.out);
	send_hello();
	chan_reset(why);
}

static void chan_flush(void)
{
	long n;

	while (A.out.len) {
		if (agent_ring_active()) {
			n = agent_ring_write(A.out.d + A.out.head, A.out.len);
			if (n == -EPROTO) {
				chan_ring_restart("the guest->host ring broke");
				return;
			}
		} else {
			n = write(A.fd, A.out.d + A.out.head, A.out.len);
			n = n < 0 ? -errno : n;
		}
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			agent_log("channel write: %s", n < 0 ? strerror((int)-n) : "short write");
			chan_down();
			return;
		}
		bq_drop(&A.out, (size_t)n);
	}
}

static long chan_ring_source(void *ctx, void *buf, size_t len)
{
	(void)ctx;
	return agent_ring_read(buf, len);
}

static void chan_read(void)
{
	int rc = agent_ring_active() ? kal_proto_reader_fill_from(&A.rd, chan_ring_source, NULL)
				     : kal_proto_reader_fill(&A.rd, A.fd);

	if (rc == -EPROTO && agent_ring_active()) {
		chan_ring_restart("the host->guest ring broke or the host stopped it");
		return;
	}

	if (rc == -EPIPE || rc == -ECONNRESET) {
		/* host side closed (virtio-serial: no host connected; a socket peer
		 * that closed with our frames unread resets instead) */
		chan_down();
		return;
	}
	if (rc < 0 && rc != -EMSGSIZE && rc != -EPROTO) {
		agent_log("channel read: %s", strerror(-rc));
		chan_down();
		return;
	}
	chan_process();
}

int agent_serve(const struct agent_opts *o)
{
	struct pollfd *pfd = NULL;
	struct session **pss = NULL;
	sigset_t set;
	size_t cap = 0;

	A.fd = o->chan_fd;
	A.test_mode = o->test_mode;
	A.up = true;
	set_nonblock(A.fd);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	A.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (A.sigfd < 0)
		agent_fatal("signalfd: %s", strerror(errno));
	if (o->test_mode)
		prctl(PR_SET_CHILD_SUBREAPER, 1); /* reap orphans as PID 1 would */
	signal(SIGPIPE, SIG_IGN);
	send_hello();

	for (;;) {
		size_t n = 0, need = 2 + 3 * (size_t)A.nsessions;
		bool busy = false, stdin_full_now;
		int timeout = -1;

		if (need > cap) {
			cap = need * 2;
			pfd = realloc(pfd, cap * sizeof(*pfd));
			pss = realloc(pss, cap * sizeof(*pss));
			if (!pfd || !pss)
				agent_fatal("out of memory");
		}
		stdin_full_now = stdin_full();
		pfd[n] = (struct pollfd){ .fd = A.sigfd, .events = POLLIN };
		pss[n++] = NULL;
		if (A.up) {
			bool in = !stdin_full_now && A.out.len < KAL_PROTO_CHANNEL_CAP;
			struct kal_frame_hdr h;
			const uint8_t *p;

			if (agent_ring_active()) {
				/* the port only rings the doorbell; tell the host what we wait for */
				pfd[n] = (struct pollfd){ .fd = A.fd, .events = POLLIN };
				if (!agent_ring_prepare_sleep(in, A.out.len != 0))
					busy = true;
			} else {
				pfd[n] = (struct pollfd){ .fd = A.fd,
							  .events = (in ? POLLIN : 0) |
								    (A.out.len ? POLLOUT : 0) };
			}
			pss[n++] = NULL;
			if (in && kal_proto_reader_frame(&A.rd, &h, &p) != 0)
				busy = true; /* frames left over from an earlier round */
		} else if (o->test_mode) {
			sess_signal_all(SIGKILL);
			return 0;
		} else {
			/* virtio-serial reports POLLHUP while no host is connected: re-check */
			timeout = 200;
		}
		for (struct session *s = A.sessions; s; s = s->next) {
			/* attached output waits while the channel is over its cap */
			bool room = !s->attached || A.out.len < KAL_PROTO_CHANNEL_CAP;

			if (s->kind == SESS_FREAD && room) {
				/* regular files are always readable: no poll needed */
				busy = true;
				continue;
			}
			if (s->exited && room && (s->out_fd >= 0 || s->err_fd >= 0))
				busy = true; /* drain what the process left, then EXIT */
			if (s->out_fd >= 0 && s->pty) {
				/* one fd for both directions: output when there is room, input when queued */
				short ev = (short)((room ? POLLIN : 0) | (s->in.len ? POLLOUT : 0));

				if (ev) {
					pfd[n] = (struct pollfd){ .fd = s->out_fd, .events = ev };
					pss[n++] = s;
				}
			} else if (s->out_fd >= 0 && room) {
				pfd[n] = (struct pollfd){ .fd = s->out_fd, .events = POLLIN };
				pss[n++] = s;
			}
			if (s->err_fd >= 0 && room) {
				pfd[n] = (struct pollfd){ .fd = s->err_fd, .events = POLLIN };
				pss[n++] = s;
			}
			if (s->in_fd >= 0 && s->in.len && !s->pty && s->kind == SESS_PROC) {
				pfd[n] = (struct pollfd){ .fd = s->in_fd, .events = POLLOUT };
				pss[n++] = s;
			}
		}
		if (busy)
			timeout = 0;
		if (poll(pfd, n, timeout) < 0 && errno != EINTR)
			agent_fatal("poll: %s", strerror(errno));

		if (pfd[0].revents)
			handle_signals();
		if (A.up && agent_ring_active()) {
			if (pfd[1].revents & POLLIN)
				agent_ring_drain_bell();
			chan_read(); /* cheap: one look at the ring's index */
		} else if (A.up && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
			chan_read();
		else if (A.up)
			chan_process();
		for (size_t i = 0; i < n; i++) {
			struct session *s = pss[i];

			if (!s || !pfd[i].revents)
				continue;
			/* the session may have been freed by an earlier event of this round */
			if (!sess_alive(s))
				continue;
			if (s->pty && pfd[i].fd == s->out_fd) {
				if ((pfd[i].revents & POLLOUT) && s->in.len)
					sess_write_stdin(s);
				if ((pfd[i].events & POLLIN) &&
				    (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
					sess_read(s, &s->out_fd, KAL_MSG_STDOUT);
			} else if (pfd[i].fd == s->in_fd && (pfd[i].events & POLLOUT))
				sess_write_stdin(s);
			else if (pfd[i].fd == s->out_fd)
				sess_read(s, &s->out_fd, KAL_MSG_STDOUT);
			else if (pfd[i].fd == s->err_fd)
				sess_read(s, &s->err_fd, KAL_MSG_STDERR);
		}
		if (busy) {
			for (struct session *s = A.sessions, *next; s; s = next) {
				bool room = !s->attached || A.out.len < KAL_PROTO_CHANNEL_CAP;

				next = s->next;
				if (!room)
					continue;
				if (s->kind == SESS_FREAD) {
					sess_read(s, &s->out_fd, KAL_MSG_FILE_DATA);
				} else if (s->exited) {
					if (s->out_fd >= 0)
						sess_read(s, &s->out_fd, KAL_MSG_STDOUT);
					if (sess_alive(s) && s->err_fd >= 0)
						sess_read(s, &s->err_fd, KAL_MSG_STDERR);
				}
			}
		}
		if (A.up && A.out.len)
			chan_flush();
		if (!A.up && !o->test_mode && (pfd[0].revents || timeout == 200)) {
			/* probe whether a host is connected again */
			struct pollfd c = { .fd = A.fd, .events = POLLIN };

			if (poll(&c, 1, 0) >= 0 && !(c.revents & POLLHUP)) {
				A.up = true;
				send_hello();
			}
		}
	}
}
