/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The bench/vmm guest: a PVH entry point that stays in 32-bit protected mode
 * (paging off, flat segments) so its first instructions are VM exits.  Built
 * three ways by mk/guest-bare.mk: BENCH_LOOPS=0 writes the exit port at once,
 * BENCH_LOOPS=N first does N loads from an address no VMM maps (each an MMIO
 * exit), BENCH_HALT halts forever so bench/vmm can read the VMM's smaps.
 * Port 0xf4 is kal's exit port and where bench/vmm puts QEMU's isa-debug-exit.
 */
#define BENCH_PORT_EXIT 0xf4
/* unmapped in both kal (RAM, then virtio at 0xd0000000) and QEMU microvm (0xfeb00000 up) */
#define BENCH_MMIO_ADDR 0xc0000000

#include "pvh-note.inc"

	.section .text.entry, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	cli
#ifdef BENCH_HALT
1:	hlt
	jmp 1b
#else
	mov $BENCH_LOOPS, %ecx
	test %ecx, %ecx
	jz 2f
1:	mov BENCH_MMIO_ADDR, %eax
	dec %ecx
	jnz 1b
2:	xor %eax, %eax
	out %eax, $BENCH_PORT_EXIT	/* 4 bytes: QEMU's isa-debug-exit has iosize=4 */
3:	hlt
	jmp 3b
#endif
