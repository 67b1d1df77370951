/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * PVH entry of the bare test guest: entered in 32-bit protected mode with
 * paging off and %ebx = hvm_start_info (the same path a Linux vmlinux takes).
 * Builds identity page tables for 0-5 GiB with 2 MiB pages (RAM, the
 * virtio-mmio window below 4 GiB, the first pmem window at 4 GiB), enters
 * long mode and calls guest_main(start_info).  The pages are user-accessible
 * and the GDT has user segments, so enter_user() can run a benchmark at CPL3
 * (where nested kvm_pvm runs guest code natively instead of emulating it).
 */
#define PT_PRESENT_RW 0x7 /* present, writable, user */
#define PD_LARGE 0x87 /* present, writable, user, 2 MiB page */
#define NR_PD 5

#include "pvh-note.inc"

	.section .text.entry, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	mov %ebx, %esi
	lgdt gdt_desc

	/* PD entries: entry i maps i * 2 MiB */
	xor %ecx, %ecx
1:	mov %ecx, %eax
	shl $21, %eax
	or $PD_LARGE, %eax
	mov %eax, pd(,%ecx,8)
	mov %ecx, %eax
	shr $11, %eax
	mov %eax, pd+4(,%ecx,8)
	inc %ecx
	cmp $(512 * NR_PD), %ecx
	jne 1b
	/* PDPT[i] -> PD i */
	xor %ecx, %ecx
2:	mov %ecx, %eax
	shl $12, %eax
	add $pd, %eax
	or $PT_PRESENT_RW, %eax
	mov %eax, pdpt(,%ecx,8)
	inc %ecx
	cmp $NR_PD, %ecx
	jne 2b
	mov $pdpt, %eax
	or $PT_PRESENT_RW, %eax
	mov %eax, pml4

	mov %cr4, %eax
	or $0x20, %eax		/* PAE */
	mov %eax, %cr4
	mov $pml4, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx	/* EFER */
	rdmsr
	or $0x100, %eax		/* LME */
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax	/* PG | PE */
	mov %eax, %cr0
	ljmp $0x08, $start64

	.code64
start64:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %ax, %fs
	mov %ax, %gs
	lea stack_top(%rip), %rsp
	mov %esi, %edi		/* zero-extends: start_info */
	call guest_main
3:	mov $0xff, %al
	out %al, $0xf4		/* guest_main never returns; if it does, fail */
	jmp 3b

	/* enter_user(fn, stack_top): iretq to fn at CPL3, IOPL 3 (port I/O allowed), IF off */
	.globl enter_user
enter_user:
	pushq $0x1b		/* ss: user data | RPL 3 */
	pushq %rsi		/* rsp */
	pushq $0x3002		/* rflags: IOPL 3, interrupts off */
	pushq $0x23		/* cs: user 64-bit code | RPL 3 */
	pushq %rdi		/* rip */
	iretq

	.section .data
	.p2align 3
gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff	/* 0x10: data */
	.quad 0x00cff2000000ffff	/* 0x18: user data (DPL 3) */
	.quad 0x00affa000000ffff	/* 0x20: user 64-bit code (DPL 3) */
gdt_end:
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt

	.section .bss
	.p2align 12
pml4:	.skip 4096
pdpt:	.skip 4096
pd:	.skip 4096 * NR_PD
	.p2align 4
	.skip 16384
stack_top:
