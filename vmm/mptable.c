// SPDX-License-Identifier: GPL-2.0-or-later
/* MP tables for a guest without ACPI (layout in mptable.h). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "../lib/err.h"
#include "mptable.h"

#define LAPIC_ADDR     0xfee00000u
#define IOAPIC_ADDR    0xfec00000u
#define NR_IOAPIC_PINS 24

struct mp_writer {
	uint8_t buf[VMM_MPTABLE_MAX];
	size_t len;
	unsigned int entries;
};

static void put(struct mp_writer *w, const void *p, size_t n)
{
	memcpy(w->buf + w->len, p, n); /* sizes are fixed: checked against the max below */
	w->len += n;
}

static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t sum = 0;

	while (n--)
		sum += *p++;
	return (uint8_t)-sum;
}

int vmm_mptable_write(const struct guest_mem *m, unsigned int cpus, struct kal_err **err)
{
	struct mp_writer w = { .len = 16 + 44 };
	uint8_t ioapic_id = (uint8_t)cpus;
	uint8_t *dst;

	if (cpus == 0 || 60 + 20 * cpus + 8 + 8 + 8 * (NR_IOAPIC_PINS + 1) > VMM_MPTABLE_MAX)
		return kal_err_set(err, EINVAL, "mptable: %u vCPUs do not fit", cpus);
	for (unsigned int i = 0; i < cpus; i++) {
		uint8_t e[20] = { 0, (uint8_t)i, 0x14, (uint8_t)(1 | (i == 0 ? 2 : 0)) };
		uint32_t sig = 0x600, feat = 0x201; /* family 6; FPU and APIC present */

		memcpy(e + 4, &sig, 4);
		memcpy(e + 8, &feat, 4);
		put(&w, e, sizeof(e));
		w.entries++;
	}
	{
		uint8_t bus[8] = { 1, 0, 'I', 'S', 'A', ' ', ' ', ' ' };
		uint8_t ioapic[8] = { 2, ioapic_id, 0x11, 1 };
		uint32_t a = IOAPIC_ADDR;

		memcpy(ioapic + 4, &a, 4);
		put(&w, bus, sizeof(bus));
		put(&w, ioapic, sizeof(ioapic));
		w.entries += 2;
	}
	for (unsigned int irq = 0; irq < NR_IOAPIC_PINS; irq++) {
		/* type 3: INT, conforming polarity/trigger, ISA bus irq -> IOAPIC pin */
		uint8_t pin = irq == 0 ? 2 : (uint8_t)irq;
		uint8_t e[8] = { 3, 0, 0, 0, 0, (uint8_t)irq, ioapic_id, pin };

		if (irq == 2)
			continue; /* the cascade: pin 2 carries the PIT */
		put(&w, e, sizeof(e));
		w.entries++;
	}
	{
		/* LINT0 = ExtINT from the PIC, LINT1 = NMI, on every local APIC */
		uint8_t extint[8] = { 4, 3, 0, 0, 0, 0, 0xff, 0 };
		uint8_t nmi[8] = { 4, 1, 0, 0, 0, 0, 0xff, 1 };

		put(&w, extint, sizeof(extint));
		put(&w, nmi, sizeof(nmi));
		w.entries += 2;
	}
	{
		uint8_t *h = w.buf + 16;
		uint16_t base_len = (uint16_t)(w.len - 16), n = (uint16_t)w.entries;
		uint32_t table = (uint32_t)VMM_MPTABLE_ADDR + 16, lapic = LAPIC_ADDR;

		memcpy(h, "PCMP", 4);
		memcpy(h + 4, &base_len, 2);
		h[6] = 4; /* spec 1.4 */
		memcpy(h + 8, "KAL     ", 8);
		memcpy(h + 16, "KVM VMM     ", 12);
		memcpy(h + 34, &n, 2);
		memcpy(h + 36, &lapic, 4);
		h[7] = checksum(h, base_len);

		memcpy(w.buf, "_MP_", 4);
		memcpy(w.buf + 4, &table, 4);
		w.buf[8] = 1; /* length in 16-byte units */
		w.buf[9] = 4;
		w.buf[10] = checksum(w.buf, 16);
	}
	dst = guest_mem_ptr(m, VMM_MPTABLE_ADDR, w.len, true);
	if (!dst)
		return kal_err_set(err, EINVAL, "mptable: outside guest RAM");
	memcpy(dst, w.buf, w.len);
	return 0;
}
