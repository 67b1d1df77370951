// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * COM1 model: what Linux's 8250 probe reads back, transmitted bytes reaching
 * the host fd, and the transmitter-empty interrupt's raise/acknowledge cycle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/serial.h"

static int irq_level = -1, irq_changes;

static void set_irq(void *opaque, bool level)
{
	(void)opaque;
	if (irq_level != level)
		irq_changes++;
	irq_level = level;
}

static uint8_t in(struct vmm_serial *s, unsigned int off)
{
	uint8_t v = 0xaa;

	vmm_serial_access(s, off, &v, false);
	return v;
}

static void out(struct vmm_serial *s, unsigned int off, uint8_t v)
{
	vmm_serial_access(s, off, &v, true);
}

static void test_serial_probe_and_output(void **state)
{
	int p[2];
	struct vmm_serial s = { .out_fd = -1 };
	char buf[8];

	(void)state;
	assert_int_equal(pipe(p), 0);
	s.out_fd = p[1];
	/* scratch register and IER read back; LSR says the transmitter is empty */
	out(&s, 7, 0x5a);
	assert_int_equal(in(&s, 7), 0x5a);
	out(&s, 1, 0x0f);
	assert_int_equal(in(&s, 1), 0x0f);
	out(&s, 1, 0);
	assert_int_equal(in(&s, 5), 0x60);
	/* loopback: MSR mirrors MCR as the probe expects (0x1a -> 0x90) */
	out(&s, 4, 0x1a);
	assert_int_equal(in(&s, 6) & 0xf0, 0x90);
	out(&s, 0, 'x'); /* loopback bytes do not leave the UART */
	out(&s, 4, 0x0b);
	assert_int_equal(in(&s, 6), 0xb0);
	/* FIFO bits in IIR follow FCR; no interrupt pending */
	out(&s, 2, 0x07);
	assert_int_equal(in(&s, 2), 0xc1);
	/* divisor latch does not transmit */
	out(&s, 3, 0x80);
	out(&s, 0, 0x01);
	assert_int_equal(in(&s, 0), 0x01);
	out(&s, 3, 0x03);
	out(&s, 0, 'o');
	out(&s, 0, 'k');
	assert_int_equal(read(p[0], buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "ok", 2);
	close(p[0]);
	close(p[1]);
}

static void test_serial_thre_interrupt(void **state)
{
	struct vmm_serial s = { .out_fd = -1, .set_irq = set_irq };

	(void)state;
	out(&s, 0, 'a'); /* interrupt disabled: the line stays low */
	assert_int_equal(irq_level, 0);
	out(&s, 1, 0x02); /* enable: the empty transmitter raises it */
	assert_int_equal(irq_level, 1);
	assert_int_equal(in(&s, 2), 0x02); /* IIR says THRE and acknowledges it */
	assert_int_equal(irq_level, 0);
	assert_int_equal(in(&s, 2), 0x01);
	out(&s, 0, 'b'); /* sent at once: empty again */
	assert_int_equal(irq_level, 1);
	out(&s, 1, 0x00); /* disabling drops the line */
	assert_int_equal(irq_level, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serial_probe_and_output),
		cmocka_unit_test(test_serial_thre_interrupt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
