/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A minimal QMP (QEMU Machine Protocol) client over an already connected
 * stream socket.  QMP is line-delimited JSON:
 *
 *   qemu -> {"QMP": {"version": ..., "capabilities": [...]}}      greeting
 *   kal  -> {"execute": "qmp_capabilities"}
 *   qemu -> {"return": {}}
 *   kal  -> {"execute": "quit"}
 *   qemu -> {"event": "...", ...}      (asynchronous, skipped here)
 *   qemu -> {"return": ...} | {"error": {"class": ..., "desc": ...}}
 *
 * Replies are bounded (QMP_MAX_LINE); calls are synchronous with a timeout.
 */
#ifndef KAL_VMM_QMP_H
#define KAL_VMM_QMP_H

struct kal_err;
struct qmp;

#define QMP_MAX_LINE (64 * 1024)

/* Read the greeting and enter command mode.  Takes ownership of fd only on success. */
struct qmp *qmp_open(int fd, int timeout_ms, struct kal_err **err);
/*
 * Run one command; args_json is a JSON object text or NULL.  On success
 * *ret (may be NULL) gets the "return" value as JSON text (caller frees).
 * A QMP error becomes "qmp `cmd`: <desc>".
 */
int qmp_command(struct qmp *q, const char *cmd, const char *args_json, int timeout_ms, char **ret,
		struct kal_err **err);
void qmp_close(struct qmp *q);

#endif
