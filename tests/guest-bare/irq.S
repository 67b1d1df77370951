/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Interrupt and exception stubs of the bare test guest, 16 bytes apart so
 * the IDT can be filled with base + 16 * n.  Exceptions report and exit
 * (guest_exception never returns); device interrupts save the caller-saved
 * registers, call guest_irq(n) and return with iretq.
 */
	.text
	.code64

	.macro EXC vec
	.p2align 4
	mov $\vec, %edi
	jmp exc_common
	.endm

	.macro IRQ n
	.p2align 4
	push %rax
	mov $\n, %eax
	jmp irq_common
	.endm

	.p2align 4
	.globl exc_stubs
exc_stubs:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	EXC \v
	.endr

	.p2align 4
	.globl irq_stubs
irq_stubs:
	.irp n, 0,1,2,3,4,5,6,7
	IRQ \n
	.endr

exc_common:
	mov (%rsp), %rsi	/* rip, or the error code for vectors that push one */
	call guest_exception	/* never returns */

irq_common:
	/* the frame left rsp 8 mod 16; rax + 8 pushes keep a call 16-aligned */
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %r8
	push %r9
	push %r10
	push %r11
	mov %eax, %edi
	call guest_irq
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rax
	iretq
