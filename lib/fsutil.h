/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * File helpers shared by the store, the VM state directory and the CLI:
 * full reads/writes that retry EINTR and short counts, mkdir -p, and the
 * crash-safe publish sequence (temp in the same dir -> write -> fsync ->
 * rename -> fsync dir) that every object kal writes goes through.
 */
#ifndef KAL_LIB_FSUTIL_H
#define KAL_LIB_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

struct kal_err;

/* write/read exactly len bytes; read returns bytes read (< len only at EOF) or -1 */
int kal_write_all(int fd, const void *buf, size_t len, struct kal_err **err);
ssize_t kal_read_all(int fd, void *buf, size_t len, struct kal_err **err);
int kal_pwrite_all(int fd, const void *buf, size_t len, off_t off, struct kal_err **err);

/* Read a whole file of at most max bytes into a NUL-terminated buffer (caller frees). */
int kal_read_file(const char *path, size_t max, char **out, size_t *len, struct kal_err **err);
int kal_read_fd(int fd, size_t max, char **out, size_t *len, struct kal_err **err);

int kal_mkdir_p(const char *path, mode_t mode, struct kal_err **err);
int kal_fsync_dir(const char *dir, struct kal_err **err);
/* Remove a tree (no symlink following); a missing path is success. */
int kal_rm_rf(const char *path, struct kal_err **err);

/*
 * Crash-safe publication of one file.  kal_atomic_open creates
 * "<dir>/.tmp-<name>-XXXXXX"; the caller writes to a->fd; commit fsyncs,
 * renames onto the final path, fsyncs the directory.  abort (or commit
 * failure) unlinks the temp file.  An fsync error is final (never retried).
 */
struct kal_atomic {
	int fd;
	char *tmp;
	char *path;
};
int kal_atomic_open(struct kal_atomic *a, const char *path, mode_t mode, struct kal_err **err);
int kal_atomic_commit(struct kal_atomic *a, struct kal_err **err);
void kal_atomic_abort(struct kal_atomic *a);
/* Whole-buffer convenience wrapper around the three calls above. */
int kal_atomic_write_file(const char *path, const void *buf, size_t len, mode_t mode,
			  struct kal_err **err);

/* Take an flock on path (created if missing); returns the fd to close to unlock. */
int kal_lock_path(const char *path, int shared, struct kal_err **err);

#endif
