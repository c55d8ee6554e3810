/* SPDX-License-Identifier: MIT */
/*
 * Context switch for x86-64 System V.  See sched/ctx.h for the frame
 * layout; weft__ctx_make() builds the same frame for a fresh stack.
 *
 * Saved: rbp rbx r12-r15 (callee-saved), MXCSR control bits and the x87
 * control word (the ABI makes both callee-saved), rsp.  Not saved: the
 * caller-saved registers, which are dead across the call.
 */
#if defined(__x86_64__)
	.text
	.globl	weft__ctx_switch
	.hidden	weft__ctx_switch
	.type	weft__ctx_switch, @function
	.p2align 4
/*
 * void *weft__ctx_switch(void **from (rdi), void *to (rsi), void *pass (rdx))
 * Returns, in the resumed context, the `pass` of whoever switched to it.
 */
weft__ctx_switch:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
	movq	%rdx, %rax
	movq	%rsi, %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	weft__ctx_switch, .-weft__ctx_switch

	.globl	weft__ctx_start
	.hidden	weft__ctx_start
	.type	weft__ctx_start, @function
	.p2align 4
/*
 * Entered by `ret` from weft__ctx_switch on a fresh frame: r12 = entry,
 * r13 = arg, rax = the switcher's pass value.  Calls entry(arg, pass).
 */
weft__ctx_start:
	.cfi_startproc
	.cfi_undefined rip
	xorl	%ebp, %ebp
	movq	%rax, %rsi
	movq	%r13, %rdi
	call	*%r12
	ud2
	.cfi_endproc
	.size	weft__ctx_start, .-weft__ctx_start
#endif
	.section .note.GNU-stack,"",%progbits
