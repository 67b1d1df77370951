// SPDX-License-Identifier: GPL-2.0-or-later
/* Full-length I/O, mkdir -p, rm -rf and crash-safe file publication. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "fsutil.h"
#include "xalloc.h"

int kal_write_all(int fd, const void *buf, size_t len, struct kal_err **err)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kal_err_sys(err, errno, "write");
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int kal_pwrite_all(int fd, const void *buf, size_t len, off_t off, struct kal_err **err)
{
	const char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kal_err_sys(err, errno, "write");
		}
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t kal_read_all(int fd, void *buf, size_t len, struct kal_err **err)
{
	char *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, p + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kal_err_sys(err, errno, "read");
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int kal_read_fd(int fd, size_t max, char **out, size_t *len, struct kal_err **err)
{
	size_t cap = 4096, used = 0;
	_cleanup_free_ char *buf = xmalloc(cap + 1);

	for (;;) {
		ssize_t n;

		if (used == cap) {
			if (cap > max)
				return kal_err_set(err, EFBIG, "larger than %zu bytes", max);
			cap *= 2;
			buf = xrealloc(buf, cap + 1);
		}
		n = read(fd, buf + used, cap - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kal_err_sys(err, errno, "read");
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > max)
			return kal_err_set(err, EFBIG, "larger than %zu bytes", max);
	}
	buf[used] = '\0';
	if (len)
		*len = used;
	*out = steal_ptr(&buf);
	return 0;
}

int kal_read_file(const char *path, size_t max, char **out, size_t *len, struct kal_err **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return kal_err_sys(err, errno, "open `%s`", path);
	if (kal_read_fd(fd, max, out, len, err) < 0)
		return kal_err_wrap(err, "`%s`", path);
	return 0;
}

int kal_mkdir_p(const char *path, mode_t mode, struct kal_err **err)
{
	_cleanup_free_ char *p = xstrdup(path);
	char *s = p;

	for (;;) {
		s = strchr(s + 1, '/');
		if (s)
			*s = '\0';
		if (*p && mkdir(p, mode) < 0 && errno != EEXIST)
			return kal_err_sys(err, errno, "mkdir `%s`", p);
		if (!s)
			break;
		*s = '/';
	}
	return 0;
}

int kal_fsync_dir(const char *dir, struct kal_err **err)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return kal_err_sys(err, errno, "open `%s`", dir);
	if (fsync(fd) < 0)
		return kal_err_sys(err, errno, "fsync `%s`", dir);
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int kal_rm_rf(const char *path, struct kal_err **err)
{
	if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		return kal_err_sys(err, errno, "remove `%s`", path);
	return 0;
}

int kal_atomic_open(struct kal_atomic *a, const char *path, mode_t mode, struct kal_err **err)
{
	_cleanup_free_ char *copy = xstrdup(path);
	char *base = strrchr(copy, '/');

	a->fd = -1;
	a->path = xstrdup(path);
	if (base) {
		*base++ = '\0';
		a->tmp = xasprintf("%s/.tmp-%s-XXXXXX", *copy ? copy : "/", base);
	} else {
		a->tmp = xasprintf(".tmp-%s-XXXXXX", copy);
	}
	a->fd = mkostemp(a->tmp, O_CLOEXEC);
	if (a->fd < 0) {
		int e = errno;

		kal_err_sys(err, e, "create temporary file for `%s`", path);
		free(a->tmp);
		free(a->path);
		a->tmp = a->path = NULL;
		return -1;
	}
	if (fchmod(a->fd, mode) < 0) {
		kal_err_sys(err, errno, "chmod `%s`", a->tmp);
		kal_atomic_abort(a);
		return -1;
	}
	return 0;
}

void kal_atomic_abort(struct kal_atomic *a)
{
	if (a->fd >= 0)
		close(a->fd);
	if (a->tmp)
		unlink(a->tmp);
	free(a->tmp);
	free(a->path);
	a->fd = -1;
	a->tmp = a->path = NULL;
}

int kal_atomic_commit(struct kal_atomic *a, struct kal_err **err)
{
	_cleanup_free_ char *dir = NULL;

	/* An fsync failure means the kernel may have dropped our pages: never retry. */
	if (fsync(a->fd) < 0) {
		kal_err_sys(err, errno, "fsync `%s`", a->tmp);
		goto fail;
	}
	if (close(a->fd) < 0) {
		a->fd = -1;
		kal_err_sys(err, errno, "close `%s`", a->tmp);
		goto fail;
	}
	a->fd = -1;
	if (rename(a->tmp, a->path) < 0) {
		kal_err_sys(err, errno, "rename to `%s`", a->path);
		goto fail;
	}
	dir = xstrdup(a->path);
	if (kal_fsync_dir(dirname(dir), err) < 0) {
		free(a->tmp);
		free(a->path);
		a->tmp = a->path = NULL;
		return -1;
	}
	free(a->tmp);
	free(a->path);
	a->tmp = a->path = NULL;
	return 0;
fail:
	kal_atomic_abort(a);
	return -1;
}

int kal_atomic_write_file(const char *path, const void *buf, size_t len, mode_t mode,
			  struct kal_err **err)
{
	struct kal_atomic a;

	if (kal_atomic_open(&a, path, mode, err) < 0)
		return -1;
	if (kal_write_all(a.fd, buf, len, err) < 0) {
		kal_atomic_abort(&a);
		return kal_err_wrap(err, "`%s`", path);
	}
	return kal_atomic_commit(&a, err);
}

int kal_lock_path(const char *path, int shared, struct kal_err **err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		return kal_err_sys(err, errno, "open lock `%s`", path);
	while (flock(fd, shared ? LOCK_SH : LOCK_EX) < 0) {
		if (errno == EINTR)
			continue;
		kal_err_sys(err, errno, "lock `%s`", path);
		close(fd);
		return -1;
	}
	return fd;
}
