// SPDX-License-Identifier: GPL-2.0-or-later
/* Transmit-only 16550A register model for early boot output (see serial.h). */
#include <unistd.h>

#include "serial.h"

#define LCR_DLAB      0x80
#define MCR_LOOP      0x10
#define LSR_THRE_TEMT 0x60
#define IER_THRI      0x02
#define IIR_NONE      0x01
#define IIR_THRI      0x02

static void serial_update_irq(struct vmm_serial *s)
{
	if (s->set_irq)
		s->set_irq(s->opaque, (s->ier & IER_THRI) && s->thri_pending);
}

void vmm_serial_access(struct vmm_serial *s, unsigned int off, uint8_t *data, bool is_write)
{
	bool dlab = s->lcr & LCR_DLAB;

	if (is_write) {
		uint8_t v = *data;

		switch (off) {
		case 0:
			if (dlab)
				s->dll = v;
			else {
				if (!(s->mcr & MCR_LOOP) && s->out_fd >= 0 &&
				    write(s->out_fd, &v, 1) < 0) {
					/* a closed log: the byte is dropped, the guest never waits */
				}
				s->thri_pending = true; /* sent at once: empty again */
				serial_update_irq(s);
			}
			break;
		case 1:
			if (dlab)
				s->dlm = v;
			else {
				/* enabling the interrupt with an empty transmitter raises it */
				if ((v & IER_THRI) && !(s->ier & IER_THRI))
					s->thri_pending = true;
				s->ier = v & 0x0f;
				serial_update_irq(s);
			}
			break;
		case 2:
			s->fcr = v;
			break;
		case 3:
			s->lcr = v;
			break;
		case 4:
			s->mcr = v & 0x1f;
			break;
		case 7:
			s->scr = v;
			break;
		}
		return;
	}
	switch (off) {
	case 0:
		*data = dlab ? s->dll : 0; /* no input yet */
		break;
	case 1:
		*data = dlab ? s->dlm : s->ier;
		break;
	case 2:
		/* reading IIR acknowledges a transmitter-empty interrupt */
		if ((s->ier & IER_THRI) && s->thri_pending) {
			*data = IIR_THRI;
			s->thri_pending = false;
			serial_update_irq(s);
		} else {
			*data = IIR_NONE;
		}
		*data |= s->fcr & 1 ? 0xc0 : 0; /* FIFOs as set */
		break;
	case 3:
		*data = s->lcr;
		break;
	case 4:
		*data = s->mcr;
		break;
	case 5:
		*data = LSR_THRE_TEMT; /* the transmitter is always empty */
		break;
	case 6:
		/* loopback reflects MCR (the 8250 probe checks it), else carrier and clear-to-send */
		if (s->mcr & MCR_LOOP)
			*data = (uint8_t)(((s->mcr & 1) << 5) | ((s->mcr & 2) << 3) |
					  ((s->mcr & 4) << 4) | ((s->mcr & 8) << 4));
		else
			*data = 0xb0;
		break;
	case 7:
		*data = s->scr;
		break;
	}
}
