/* SPDX-License-Identifier: MIT */
/*
 * Context switch for aarch64 (AAPCS64).  See sched/ctx.h for the frame
 * layout; weft__ctx_make() builds the same frame for a fresh stack.
 *
 * Saved: x19-x28, x29 (fp), x30 (lr), the low halves d8-d15 of v8-v15
 * (callee-saved per AAPCS64), sp.  FPCR is not saved: AAPCS64 treats its
 * modes as global state a callee may not change without restoring.
 */
#if defined(__aarch64__)
	.text
	.globl	weft__ctx_switch
	.hidden	weft__ctx_switch
	.type	weft__ctx_switch, %function
	.p2align 4
/*
 * void *weft__ctx_switch(void **from (x0), void *to (x1), void *pass (x2))
 * Returns, in the resumed context, the `pass` of whoever switched to it.
 */
weft__ctx_switch:
	sub	sp, sp, #160
	stp	d8, d9, [sp, #0]
	stp	d10, d11, [sp, #16]
	stp	d12, d13, [sp, #32]
	stp	d14, d15, [sp, #48]
	stp	x19, x20, [sp, #64]
	stp	x21, x22, [sp, #80]
	stp	x23, x24, [sp, #96]
	stp	x25, x26, [sp, #112]
	stp	x27, x28, [sp, #128]
	stp	x29, x30, [sp, #144]
	mov	x9, sp
	str	x9, [x0]
	mov	sp, x1
	ldp	d8, d9, [sp, #0]
	ldp	d10, d11, [sp, #16]
	ldp	d12, d13, [sp, #32]
	ldp	d14, d15, [sp, #48]
	ldp	x19, x20, [sp, #64]
	ldp	x21, x22, [sp, #80]
	ldp	x23, x24, [sp, #96]
	ldp	x25, x26, [sp, #112]
	ldp	x27, x28, [sp, #128]
	ldp	x29, x30, [sp, #144]
	add	sp, sp, #160
	mov	x0, x2
	ret
	.size	weft__ctx_switch, .-weft__ctx_switch

	.globl	weft__ctx_start
	.hidden	weft__ctx_start
	.type	weft__ctx_start, %function
	.p2align 4
/*
 * Entered by `ret` from weft__ctx_switch on a fresh frame: x19 = entry,
 * x20 = arg, x0 = the switcher's pass value.  Calls entry(arg, pass).
 */
weft__ctx_start:
	mov	x29, #0
	mov	x30, #0
	mov	x1, x0
	mov	x0, x20
	blr	x19
	brk	#0
	.size	weft__ctx_start, .-weft__ctx_start
#endif
	.section .note.GNU-stack,"",%progbits
