// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Layer conversion driver: read the (gzip / zstd / plain) layer from an fd,
 * decompress it here (no libarchive filters, so the output cap and the zstd
 * window cap are ours), hash the uncompressed stream for the diff_id (drained
 * to EOF, trailing bytes included), feed libarchive's tar reader through
 * callbacks, and hand entries to tar.c / the EROFS writer.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "erofs.h"
#include "layer.h"
#include "tar.h"

#define IN_BUF		    (256u << 10)
#define OUT_BUF		    (1u << 20)
#define DEFAULT_MAX_BYTES   (64ull << 30)
#define ZSTD_WINDOW_LOG_MAX 27 /* 128 MiB windows at most (reliability D8) */

enum ic_compression ic_layer_sniff(const void *head, size_t len)
{
	const uint8_t *p = head;

	if (len >= 2 && p[0] == 0x1f && p[1] == 0x8b)
		return IC_COMP_GZIP;
	if (len >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd)
		return IC_COMP_ZSTD;
	return IC_COMP_NONE;
}

struct stream {
	int fd;
	enum ic_compression comp;
	uint8_t *in, *out;
	size_t in_len, in_off; /* compressed bytes buffered */
	bool in_eof;
	z_stream z;
	bool z_ready, z_member_open;
	ZSTD_DCtx *zd;
	size_t zret; /* last ZSTD_decompressStream result: 0 = frame complete */
	struct ic_hasher *h;
	uint64_t total, max;
	bool eof;
	struct kal_err *err;
};

static int fill_in(struct stream *s)
{
	ssize_t n;

	if (s->in_off < s->in_len || s->in_eof)
		return 0;
	do
		n = read(s->fd, s->in, IN_BUF);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return kal_err_sys(&s->err, errno, "read layer");
	s->in_off = 0;
	s->in_len = (size_t)n;
	if (n == 0)
		s->in_eof = true;
	return 0;
}

static ssize_t read_gzip(struct stream *s)
{
	s->z.next_out = s->out;
	s->z.avail_out = OUT_BUF;
	while (s->z.avail_out == OUT_BUF) {
		int r;

		if (fill_in(s) < 0)
			return -1;
		if (s->in_off == s->in_len) {
			if (s->z_member_open)
				return kal_err_set(&s->err, EINVAL, "gzip: unexpected end of data");
			s->eof = true;
			break;
		}
		if (!s->z_member_open) {
			/* a new member (RFC 1952 allows several, docker never writes them) */
			if (inflateReset(&s->z) != Z_OK)
				return kal_err_set(&s->err, EINVAL, "gzip: reset failed");
			s->z_member_open = true;
		}
		s->z.next_in = s->in + s->in_off;
		s->z.avail_in = (uInt)(s->in_len - s->in_off);
		r = inflate(&s->z, Z_NO_FLUSH);
		s->in_off = s->in_len - s->z.avail_in;
		if (r == Z_STREAM_END) {
			s->z_member_open = false;
		} else if (r == Z_DATA_ERROR) {
			return kal_err_set(&s->err, EINVAL, "gzip: %s",
					   s->z.msg ? s->z.msg : "invalid data");
		} else if (r != Z_OK && r != Z_BUF_ERROR) {
			return kal_err_set(&s->err, EINVAL, "gzip: inflate error %d", r);
		}
	}
	return (ssize_t)(OUT_BUF - s->z.avail_out);
}

static ssize_t read_zstd(struct stream *s)
{
	ZSTD_outBuffer out = { s->out, OUT_BUF, 0 };

	while (out.pos == 0) {
		ZSTD_inBuffer in;

		if (fill_in(s) < 0)
			return -1;
		if (s->in_off == s->in_len && s->zret == 0) {
			s->eof = true;
			break;
		}
		if (s->in_off == s->in_len && s->in_eof) {
			/* the decoder may still hold output for us */
			in = (ZSTD_inBuffer){ s->in, 0, 0 };
			s->zret = ZSTD_decompressStream(s->zd, &out, &in);
			if (ZSTD_isError(s->zret))
				return kal_err_set(&s->err, EINVAL, "zstd: %s",
						   ZSTD_getErrorName(s->zret));
			if (out.pos == 0)
				return kal_err_set(&s->err, EINVAL, "zstd: unexpected end of data");
			break;
		}
		in = (ZSTD_inBuffer){ s->in + s->in_off, s->in_len - s->in_off, 0 };
		s->zret = ZSTD_decompressStream(s->zd, &out, &in);
		s->in_off += in.pos;
		if (ZSTD_isError(s->zret))
			return kal_err_set(&s->err, EINVAL, "zstd: %s", ZSTD_getErrorName(s->zret));
	}
	return (ssize_t)out.pos;
}

/* next chunk of uncompressed bytes into s->out: length, 0 at the end, -1 on error */
static ssize_t stream_read(struct stream *s)
{
	ssize_t n;

	if (s->eof || s->err)
		return s->err ? -1 : 0;
	switch (s->comp) {
	case IC_COMP_GZIP:
		n = read_gzip(s);
		break;
	case IC_COMP_ZSTD:
		n = read_zstd(s);
		break;
	default:
		do
			n = read(s->fd, s->out, OUT_BUF);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return kal_err_sys(&s->err, errno, "read layer");
		if (n == 0)
			s->eof = true;
		break;
	}
	if (n <= 0)
		return n;
	s->total += (uint64_t)n;
	if (s->total > s->max)
		return kal_err_set(&s->err, EFBIG,
				   "uncompressed size exceeds the limit of %" PRIu64 " bytes",
				   s->max);
	ic_hasher_update(s->h, s->out, (size_t)n);
	return n;
}

/*
 * Decompression and diff_id hashing run on a helper thread, one step ahead of
 * libarchive and the image writer: a ring of PIPE_SLOTS buffers.  libarchive
 * may keep using the buffer it got until its next read callback, so a slot is
 * released only on the following call.
 */
#define PIPE_SLOTS 4

struct pipeline {
	struct stream *s;
	pthread_t thread;
	bool started, stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *buf[PIPE_SLOTS];
	ssize_t len[PIPE_SLOTS];
	bool full[PIPE_SLOTS];
	unsigned head, tail;
	int held;	       /* slot the consumer holds, or -1 */
	bool saw_end, saw_err; /* what the consumer was handed (deterministic, unlike s->eof) */
};

static void *pipe_producer(void *arg)
{
	struct pipeline *p = arg;

	for (;;) {
		ssize_t n;

		pthread_mutex_lock(&p->mu);
		while (p->full[p->head] && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stop) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		pthread_mutex_unlock(&p->mu);
		p->s->out = p->buf[p->head];
		n = stream_read(p->s);
		pthread_mutex_lock(&p->mu);
		p->len[p->head] = n;
		p->full[p->head] = true;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		if (n <= 0)
			break; /* the end or an error: the slot stays full for good */
		p->head = (p->head + 1) % PIPE_SLOTS;
	}
	return NULL;
}

/* next buffer of uncompressed bytes: its length, 0 at the end, -1 on error (see s->err) */
static ssize_t pipe_next(struct pipeline *p, const void **buf)
{
	ssize_t n;

	pthread_mutex_lock(&p->mu);
	if (p->held >= 0) {
		p->full[p->held] = false;
		p->held = -1;
		pthread_cond_broadcast(&p->cv);
	}
	while (!p->full[p->tail])
		pthread_cond_wait(&p->cv, &p->mu);
	n = p->len[p->tail];
	*buf = p->buf[p->tail];
	if (n > 0) {
		p->held = (int)p->tail;
		p->tail = (p->tail + 1) % PIPE_SLOTS;
	} else if (n == 0) {
		p->saw_end = true;
	} else {
		p->saw_err = true;
	}
	pthread_mutex_unlock(&p->mu);
	return n;
}

static int pipe_start(struct pipeline *p, struct stream *s, struct kal_err **err)
{
	int e;

	p->s = s;
	p->held = -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (int i = 0; i < PIPE_SLOTS; i++)
		p->buf[i] = xmalloc(OUT_BUF);
	e = pthread_create(&p->thread, NULL, pipe_producer, p);
	if (e)
		return kal_err_sys(err, e, "layer: start decompression thread");
	p->started = true;
	return 0;
}

static void pipe_stop(struct pipeline *p)
{
	if (p->started) {
		pthread_mutex_lock(&p->mu);
		p->stop = true;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thread, NULL);
		p->started = false;
	}
	for (int i = 0; i < PIPE_SLOTS; i++) {
		free(p->buf[i]);
		p->buf[i] = NULL;
	}
	if (p->s) {
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
		p->s = NULL;
	}
}

static la_ssize_t archive_cb_read(struct archive *a, void *data, const void **buf)
{
	struct pipeline *p = data;
	ssize_t n = pipe_next(p, buf);

	if (n < 0) {
		archive_set_error(a, EIO, "%s", p->s->err ? p->s->err->msg : "read error");
		return -1;
	}
	return n;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);
	char *end;
	unsigned long long x;

	if (!v || !*v)
		return def;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end || x == 0)
		return def;
	return x;
}

static int hex_to_bytes(const char *hex, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

static int digest_image(int fd, uint64_t size, struct ic_digest *out, struct kal_err **err)
{
	struct ic_hasher *h = ic_hasher_new();
	uint8_t *buf = xmalloc(OUT_BUF);
	uint64_t off = 0;
	int rc = 0;

	while (off < size) {
		ssize_t n = pread(fd, buf, OUT_BUF, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? kal_err_sys(err, errno, "read back image")
				   : kal_err_set(err, EIO, "read back image: short file");
			break;
		}
		ic_hasher_update(h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (rc == 0)
		ic_hasher_final(h, out);
	free(buf);
	ic_hasher_free(h);
	return rc;
}

int ic_layer_convert(int in_fd, enum ic_compression comp, int out_fd, struct ic_layer_result *res,
		     struct kal_err **err)
{
	struct stream s = { .fd = in_fd, .comp = comp };
	struct pipeline pipe = { 0 };
	struct ic_tar_limits lim = {
		.max_entries = env_u64("KAL_MAX_LAYER_ENTRIES", IC_TAR_MAX_ENTRIES),
	};
	struct archive *a = NULL;
	struct ic_tree *t = NULL;
	struct ic_erofs_writer *w = NULL;
	struct ic_erofs_stats st = { 0 };
	uint8_t seed[16];
	int rc = -1, r;

	memset(res, 0, sizeof(*res));
	{
		struct stat ost;
		int fl = fcntl(out_fd, F_GETFL);

		/* the padding is made by ftruncate, so stale bytes would survive in it */
		if (fstat(out_fd, &ost) < 0)
			return kal_err_sys(err, errno, "layer: output");
		if (!S_ISREG(ost.st_mode) || ost.st_size != 0)
			return kal_err_set(err, EINVAL,
					   "layer: output must be an empty regular file");
		/* pwrite ignores the offset under O_APPEND; the digest reads the image back */
		if (fl < 0 || (fl & O_APPEND) || (fl & O_ACCMODE) != O_RDWR)
			return kal_err_set(
			    err, EINVAL, "layer: output must be open read-write, without O_APPEND");
	}
	s.max = env_u64("KAL_MAX_LAYER_BYTES", DEFAULT_MAX_BYTES);
	s.in = xmalloc(IN_BUF);
	s.h = ic_hasher_new();
	if (comp == IC_COMP_GZIP) {
		if (inflateInit2(&s.z, 15 + 16) != Z_OK) {
			kal_err_set(err, ENOMEM, "layer: gzip: init failed");
			goto out;
		}
		s.z_ready = true;
	} else if (comp == IC_COMP_ZSTD) {
		s.zd = ZSTD_createDCtx();
		if (!s.zd || ZSTD_isError(ZSTD_DCtx_setParameter(s.zd, ZSTD_d_windowLogMax,
								 ZSTD_WINDOW_LOG_MAX))) {
			kal_err_set(err, ENOMEM, "layer: zstd: init failed");
			goto out;
		}
	}

	a = archive_read_new();
	if (!a) {
		kal_err_set(err, ENOMEM, "layer: out of memory");
		goto out;
	}
	/* tar (ustar, pax, gnu) and the empty stream only; decompression is ours */
	archive_read_support_format_tar(a);
	archive_read_support_format_empty(a);
	t = ic_tree_new();
	/* the image may hold the data plus per-file padding and sparse zero-fill */
	w = ic_erofs_writer_new(out_fd, s.max + s.max / 8 + (64ull << 20));
	if (pipe_start(&pipe, &s, err) < 0)
		goto out;
	r = archive_read_open(a, &pipe, NULL, archive_cb_read, NULL);
	if (r != ARCHIVE_OK) {
		pipe_stop(&pipe); /* joins: s is ours again */
		if (pipe.saw_err)
			goto stream_err;
		kal_err_set(err, EINVAL, "layer: %s",
			    pipe.saw_end && s.total == 0 ? "empty layer stream"
							 : "not a tar archive");
		goto out;
	}
	if (ic_tar_read(a, t, w, &lim, &res->entries, err) < 0) {
		pipe_stop(&pipe);
		if (pipe.saw_err) {
			kal_err_clear(err);
			goto stream_err;
		}
		if ((*err) && strstr((*err)->msg, "Unrecognized archive format")) {
			kal_err_clear(err);
			kal_err_set(err, EINVAL, "layer: not a tar archive");
		} else if (pipe.saw_end && (*err) &&
			   (strstr((*err)->msg, "runcated") || strstr((*err)->msg, "premature"))) {
			kal_err_clear(err);
			kal_err_set(err, EINVAL, "layer: truncated tar archive");
		} else {
			kal_err_wrap(err, "layer");
		}
		goto out;
	}
	/* the diff_id covers everything, including bytes after the end-of-archive blocks */
	{
		const void *buf;
		ssize_t n;

		while ((n = pipe_next(&pipe, &buf)) > 0)
			;
		pipe_stop(&pipe); /* joins: s is ours again */
		if (n < 0)
			goto stream_err;
	}
	ic_hasher_final(s.h, &res->diff_id);
	res->tar_bytes = s.total;
	if (hex_to_bytes(res->diff_id.hex, seed, sizeof(seed)) < 0 ||
	    ic_erofs_finish(w, ic_tree_root(t), seed, &st, err) < 0) {
		kal_err_wrap(err, "layer");
		goto out;
	}
	res->image_bytes = st.image_bytes;
	if (digest_image(out_fd, st.image_bytes, &res->erofs_digest, err) < 0) {
		kal_err_wrap(err, "layer");
		goto out;
	}
	rc = 0;
	goto out;

stream_err:
	kal_err_set(err, s.err->code, "layer: %s", s.err->msg);
out:
	if (a)
		archive_read_free(a);
	pipe_stop(&pipe);
	ic_tree_free(t);
	ic_erofs_writer_free(w);
	if (s.z_ready)
		inflateEnd(&s.z);
	ZSTD_freeDCtx(s.zd);
	ic_hasher_free(s.h);
	kal_err_free(s.err);
	free(s.in);
	return rc;
}
