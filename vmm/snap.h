/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Flat little-endian state records for save/restore of devices (and later
 * the park file).  The reader never trusts the bytes: every get is bounds
 * checked, and a short read latches r->bad so callers check once at the end.
 *
 *   virtio device record (written by virtio_dev_save):
 *   +------+-------+---------+----------------+------+--------+----------------+--------+-----------+
 *   |"VDEV"|ver u32|devid u32|status,feat sel..|nq u32| queue*nq (size,ready,  | dev len| dev bytes |
 *   |      |       |         |isr,broken      |      |  3 gpas, last, used)   | u32    |           |
 *   +------+-------+---------+----------------+------+------------------------+--------+-----------+
 */
#ifndef KAL_VMM_SNAP_H
#define KAL_VMM_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct snap_writer {
	uint8_t *buf;
	size_t len, cap;
};

struct snap_reader {
	const uint8_t *buf;
	size_t len, off;
	bool bad; /* a get ran past the end */
};

void snap_put(struct snap_writer *w, const void *p, size_t n);
void snap_put_u8(struct snap_writer *w, uint8_t v);
void snap_put_u16(struct snap_writer *w, uint16_t v);
void snap_put_u32(struct snap_writer *w, uint32_t v);
void snap_put_u64(struct snap_writer *w, uint64_t v);
void snap_writer_free(struct snap_writer *w);

/* false (and r->bad) when fewer than n bytes remain; dst is zeroed then */
bool snap_get(struct snap_reader *r, void *dst, size_t n);
uint8_t snap_get_u8(struct snap_reader *r);
uint16_t snap_get_u16(struct snap_reader *r);
uint32_t snap_get_u32(struct snap_reader *r);
uint64_t snap_get_u64(struct snap_reader *r);

#endif
