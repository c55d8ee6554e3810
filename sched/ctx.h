/* SPDX-License-Identifier: MIT */
/*
 * This file is private to weft.  It declares the machine context switch
 * (runtime/ctx_<arch>.S) and picks the architecture at compile time, so the
 * .c files call weft__ctx_switch() and weft__ctx_make() unconditionally.
 *
 * A context is just a saved stack pointer: weft__ctx_switch() pushes the
 * callee-saved registers (and the FP control words the ABI says a callee
 * must preserve) on the current stack, stores the stack pointer in *from,
 * loads `to` and pops the same set.  No signal mask, no system call.
 *
 * Extremely fragile: the assembly, the initial frame built by
 * weft__ctx_make() and the sanitizer annotations around each switch
 * (sched/task.c) must agree byte for byte.  Change them together.
 */
#ifndef WEFT_RUNTIME_CTX_H
#define WEFT_RUNTIME_CTX_H

#include <stddef.h>
#include <stdint.h>
#include <ucontext.h>

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "weft supports x86-64 and aarch64 only"
#endif

/*
 * Save the current context into *from and resume `to`, handing it `pass`.
 * Returns when some other context switches back to *from, with the `pass`
 * value of that switch (Boost.Context's transfer: the resumed side learns
 * which worker thread it now runs on without a TLS lookup).  Must not be
 * inlined or reordered: it is an opaque call for the compiler, which is
 * what makes every caller-saved register dead across it.
 */
void *weft__ctx_switch(void **from, void *to, void *pass);

/*
 * First code run on a fresh stack: calls entry(arg, pass); entry never
 * returns.
 */
void weft__ctx_start(void);

/*
 * Build the first frame of a context on the stack whose highest address is
 * `top` (16-byte aligned), so that switching to the returned stack pointer
 * calls entry(arg, pass).  Executed by the thread that owns the stack.
 */
static inline void *
weft__ctx_make(void *top, void (*entry)(void *, void *), void *arg)
{
	uint64_t *sp = (uint64_t *)((uintptr_t)top & ~(uintptr_t)15);

#if defined(__x86_64__)
	/*
	 * Layout popped by weft__ctx_switch (low to high): fp control words
	 * (MXCSR in the low half, x87 CW in the high half), r15, r14, r13,
	 * r12, rbx, rbp, return address.  weft__ctx_start finds entry in
	 * r12 and arg in r13.  After `ret`, rsp must be 16-byte aligned so
	 * that weft__ctx_start's `call` leaves the ABI's entry alignment.
	 */
	*--sp = 0;				/* pad: keeps rsp % 16 == 0 */
	*--sp = 0;				/* fake return of ctx_start */
	*--sp = (uint64_t)(uintptr_t)weft__ctx_start;
	*--sp = 0;				/* rbp */
	*--sp = 0;				/* rbx */
	*--sp = (uint64_t)(uintptr_t)entry;	/* r12 */
	*--sp = (uint64_t)(uintptr_t)arg;	/* r13 */
	*--sp = 0;				/* r14 */
	*--sp = 0;				/* r15 */
	/* MXCSR default (all exceptions masked), x87 CW default (0x37f). */
	*--sp = ((uint64_t)0x037f << 32) | 0x1f80;
#elif defined(__aarch64__)
	/*
	 * Layout popped by weft__ctx_switch (low to high): d8-d15, x19-x28,
	 * x29 (fp), x30 (lr); 20 slots, 160 bytes, 16-aligned.  The lr slot
	 * points at weft__ctx_start, which finds entry in x19, arg in x20.
	 */
	sp -= 20;
	for (int i = 0; i < 20; i++)
		sp[i] = 0;
	sp[8] = (uint64_t)(uintptr_t)entry;	/* x19 */
	sp[9] = (uint64_t)(uintptr_t)arg;	/* x20 */
	sp[19] = (uint64_t)(uintptr_t)weft__ctx_start;	/* x30 */
#endif
	return sp;
}

/*
 * The caller's stack pointer: one register move.  Identifies the task (by
 * the stack it lies in) without a TLS lookup; the mutex stores it as its
 * owner (runtime/sync.c).  Any thread.
 */
static inline __attribute__((always_inline)) void *
weft__ctx_sp(void)
{
	void *sp;

#if defined(__x86_64__)
	__asm__("movq %%rsp, %0" : "=r"(sp));
#elif defined(__aarch64__)
	__asm__("mov %0, sp" : "=r"(sp));
#endif
	return sp;
}

/*
 * Where a context saved by weft__ctx_switch() stopped, for a backtrace:
 * the frame pointer it saved (x86-64 rbp, aarch64 x29) and its return
 * address, read from `frame`, a copy of the saved frame (the words from the
 * saved stack pointer up, WEFT_CTX_FRAME_WORDS of them).  The frame
 * records above it are the ABI's: [fp] the caller's fp, [fp + 8] the
 * return address, on both architectures.
 */
#if defined(__x86_64__)
#define WEFT_CTX_FRAME_WORDS 8
#define WEFT_CTX_FP_SLOT 6
#define WEFT_CTX_PC_SLOT 7
#elif defined(__aarch64__)
#define WEFT_CTX_FRAME_WORDS 20
#define WEFT_CTX_FP_SLOT 18
#define WEFT_CTX_PC_SLOT 19
#endif

static inline void
weft__ctx_saved_frame(const uint64_t *frame, uintptr_t *fp, uintptr_t *pc)
{
	*fp = (uintptr_t)frame[WEFT_CTX_FP_SLOT];
	*pc = (uintptr_t)frame[WEFT_CTX_PC_SLOT];
}

/*
 * Where a thread was when a signal interrupted it: pc, frame pointer and
 * stack pointer from the handler's ucontext.  Any thread; async-signal-safe.
 */
static inline void
weft__ctx_interrupted(const void *ucontext, uintptr_t *pc, uintptr_t *fp,
		      uintptr_t *sp)
{
	const ucontext_t *uc = ucontext;

#if defined(__x86_64__)
	*pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
	*fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
	*sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
	*pc = (uintptr_t)uc->uc_mcontext.pc;
	*fp = (uintptr_t)uc->uc_mcontext.regs[29];
	*sp = (uintptr_t)uc->uc_mcontext.sp;
#endif
}

#endif /* WEFT_RUNTIME_CTX_H */
