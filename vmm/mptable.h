/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Intel MultiProcessor Specification 1.4 tables, so a Linux guest without
 * ACPI finds its CPUs and the IOAPIC (and with it GSIs 16-23) instead of
 * falling back to the PIC in virtual-wire mode.
 *
 *   0x9fc00 (last KiB of base memory, where Linux scans)
 *   +----------------------+----------------------------------------------------+
 *   | floating pointer 16B | config table: header 44B, then entries:            |
 *   | "_MP_", -> table     |  processor x cpus (20B), bus ISA (8B), IOAPIC (8B), |
 *   |                      |  I/O interrupt x 23 (8B), local interrupt x 2 (8B)  |
 *   +----------------------+----------------------------------------------------+
 *   ISA IRQ 0 (the PIT) goes to IOAPIC pin 2, as KVM's default routing does; IRQ i to pin i.
 */
#ifndef KAL_VMM_MPTABLE_H
#define KAL_VMM_MPTABLE_H

#include "mem.h"

struct kal_err;

#define VMM_MPTABLE_ADDR 0x9fc00ull
#define VMM_MPTABLE_MAX	 1024

int vmm_mptable_write(const struct guest_mem *m, unsigned int cpus, struct kal_err **err);

#endif
