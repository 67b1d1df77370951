/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The guest's initramfs: an uncompressed newc cpio archive holding the
 * embedded agent as /init plus the few directories and the console node the
 * agent needs before devtmpfs is up.  Generated on the fly, deterministic
 * (mtime 0, fixed inode numbers), so engines can hand it to the kernel from
 * a memfd or a file.
 *
 * newc entry (all numbers 8 ASCII hex digits):
 *   "070701" ino mode uid gid nlink mtime filesize devmajor devminor
 *   rdevmajor rdevminor namesize check | name\0 | pad to 4 | data | pad to 4
 * ... last entry "TRAILER!!!".
 */
#ifndef KAL_VMM_INITRD_H
#define KAL_VMM_INITRD_H

#include <stddef.h>

struct kal_err;

/* Write the whole initramfs to fd (at its current offset); 0 or -1 with *err. */
int vmm_initrd_write(int fd, struct kal_err **err);

/* The static guest agent embedded in kal (mk/guest.mk). */
const unsigned char *vmm_initrd_agent(size_t *len);

#endif
