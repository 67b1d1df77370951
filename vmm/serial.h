/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A minimal 16550A at COM1 (ports 0x3f8-0x3ff) so `console=ttyS0` and
 * `earlyprintk=serial` show a guest kernel's boot: transmit only, polled
 * (LSR always reports an empty transmitter), with the register file and
 * loopback that Linux's 8250 probe checks.  No interrupts and no input yet
 * (FIXME: THRE/RX interrupts on IRQ 4 for interactive use).
 */
#ifndef KAL_VMM_SERIAL_H
#define KAL_VMM_SERIAL_H

#include <stdbool.h>
#include <stdint.h>

#define VMM_SERIAL_BASE	 0x3f8
#define VMM_SERIAL_PORTS 8

struct vmm_serial {
	int out_fd; /* host fd for transmitted bytes, or -1 to drop them */
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
};

/* One byte-wide port access at VMM_SERIAL_BASE + off. */
void vmm_serial_access(struct vmm_serial *s, unsigned int off, uint8_t *data, bool is_write);

#endif
