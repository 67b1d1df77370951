/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A minimal 16550A at COM1 (ports 0x3f8-0x3ff) so `console=ttyS0` and
 * `earlyprintk=serial` show a guest kernel's boot: transmit only (LSR always
 * reports an empty transmitter), with the register file and loopback that
 * Linux's 8250 probe checks, and the transmitter-empty interrupt on IRQ 4
 * that the tty layer waits for when user space writes to the console.
 * FIXME: no input (the agent channel is virtio-console, not this port).
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
	bool thri_pending; /* transmitter-empty interrupt not yet acknowledged */
	/* drive IRQ 4 to level (optional) */
	void (*set_irq)(void *opaque, bool level);
	void *opaque;
};

/* One byte-wide port access at VMM_SERIAL_BASE + off. */
void vmm_serial_access(struct vmm_serial *s, unsigned int off, uint8_t *data, bool is_write);

#endif
