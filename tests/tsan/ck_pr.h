/* SPDX-License-Identifier: MIT */
/*
 * ThreadSanitizer build only (the Makefile puts this folder first on the
 * include path when SAN=thread).
 *
 * Concurrency Kit 0.7's compiler-builtin port (CK_USE_CC_BUILTINS=1) still
 * implements ck_pr_load_* and ck_pr_store_* as volatile accesses between
 * compiler barriers, and its fences as __sync_synchronize().  TSan models
 * neither, so every ck_ring hand-off and every lock-free flag would be
 * reported as a race.  This header supplies ck's machine-dependent layer
 * itself, with __atomic operations TSan understands (sequentially
 * consistent, which is at least as strong as anything ck promises), then
 * includes ck's real, architecture-independent ck_pr.h on top of it.
 *
 * It works through ck's include guard: defining CK_PR_GCC_H first makes the
 * real ck_pr.h skip its own "gcc/ck_pr.h".
 */
#ifndef WEFT_TSAN_CK_PR_H
#define WEFT_TSAN_CK_PR_H

#ifndef CK_USE_CC_BUILTINS
#define CK_USE_CC_BUILTINS 1
#endif
#define CK_PR_GCC_H 1

#include <ck_cc.h>
#include <ck_stdbool.h>
#include <ck_stdint.h>
#include <gcc/ck_f_pr.h>

#define WEFT_SC __ATOMIC_SEQ_CST

CK_CC_INLINE static void
ck_pr_barrier(void)
{
	__asm__ __volatile__("" ::: "memory");
}

CK_CC_INLINE static void
ck_pr_stall(void)
{
	ck_pr_barrier();
}

/*
 * GCC's TSan does not support atomic_thread_fence.  Every load and store
 * above is already sequentially consistent, so a fence only has to order
 * plain accesses around it: a sequentially consistent read-modify-write
 * of a private word is a full barrier on every architecture.
 */
static int weft_tsan_fence_word;
#define WEFT_FENCE(T)							\
	CK_CC_INLINE static void ck_pr_fence_strict_##T(void)		\
	{								\
		__atomic_fetch_add(&weft_tsan_fence_word, 0, WEFT_SC);	\
	}
WEFT_FENCE(atomic)
WEFT_FENCE(atomic_atomic)
WEFT_FENCE(atomic_load)
WEFT_FENCE(atomic_store)
WEFT_FENCE(store_atomic)
WEFT_FENCE(load_atomic)
WEFT_FENCE(load)
WEFT_FENCE(load_load)
WEFT_FENCE(load_store)
WEFT_FENCE(store)
WEFT_FENCE(store_store)
WEFT_FENCE(store_load)
WEFT_FENCE(memory)
WEFT_FENCE(acquire)
WEFT_FENCE(release)
WEFT_FENCE(acqrel)
WEFT_FENCE(lock)
WEFT_FENCE(unlock)
#undef WEFT_FENCE

/* Loads and stores. */
#define WEFT_LS(S, M, T)						\
	CK_CC_INLINE static T ck_pr_md_load_##S(const M *target)	\
	{								\
		return __atomic_load_n((T const *)target, WEFT_SC);	\
	}								\
	CK_CC_INLINE static void ck_pr_md_store_##S(M *target, T v)	\
	{								\
		__atomic_store_n((T *)target, v, WEFT_SC);		\
	}
WEFT_LS(ptr, void, void *)
WEFT_LS(char, char, char)
WEFT_LS(uint, unsigned int, unsigned int)
WEFT_LS(int, int, int)
WEFT_LS(64, uint64_t, uint64_t)
WEFT_LS(32, uint32_t, uint32_t)
WEFT_LS(16, uint16_t, uint16_t)
WEFT_LS(8, uint8_t, uint8_t)
#undef WEFT_LS

#ifndef CK_PR_DISABLE_DOUBLE
CK_CC_INLINE static double
ck_pr_md_load_double(const double *target)
{
	double r;

	__atomic_load(target, &r, WEFT_SC);
	return r;
}

CK_CC_INLINE static void
ck_pr_md_store_double(double *target, double v)
{
	__atomic_store(target, &v, WEFT_SC);
}
#endif

/* Compare-and-swap, with and without the observed value. */
#define WEFT_CAS(S, M, T)						\
	CK_CC_INLINE static bool					\
	ck_pr_cas_##S(M *target, T compare, T set)			\
	{								\
		return __atomic_compare_exchange_n((T *)target,		\
			&compare, set, false, WEFT_SC, WEFT_SC);	\
	}								\
	CK_CC_INLINE static bool					\
	ck_pr_cas_##S##_value(M *target, T compare, T set, M *v)	\
	{								\
		bool ok = __atomic_compare_exchange_n((T *)target,	\
			&compare, set, false, WEFT_SC, WEFT_SC);	\
		*(T *)v = compare;					\
		return ok;						\
	}
WEFT_CAS(ptr, void, void *)
WEFT_CAS(char, char, char)
WEFT_CAS(int, int, int)
WEFT_CAS(uint, unsigned int, unsigned int)
WEFT_CAS(64, uint64_t, uint64_t)
WEFT_CAS(32, uint32_t, uint32_t)
WEFT_CAS(16, uint16_t, uint16_t)
WEFT_CAS(8, uint8_t, uint8_t)
#undef WEFT_CAS

/* Fetch-and-add and the binary/unary read-modify-writes. */
#define WEFT_RMW(S, M, T)						\
	CK_CC_INLINE static T ck_pr_faa_##S(M *target, T d)		\
	{								\
		return __atomic_fetch_add((T *)target, d, WEFT_SC);	\
	}								\
	CK_CC_INLINE static void ck_pr_add_##S(M *target, T d)		\
	{								\
		__atomic_fetch_add((T *)target, d, WEFT_SC);		\
	}								\
	CK_CC_INLINE static void ck_pr_sub_##S(M *target, T d)		\
	{								\
		__atomic_fetch_sub((T *)target, d, WEFT_SC);		\
	}								\
	CK_CC_INLINE static void ck_pr_inc_##S(M *target)		\
	{								\
		__atomic_fetch_add((T *)target, (T)1, WEFT_SC);		\
	}								\
	CK_CC_INLINE static void ck_pr_dec_##S(M *target)		\
	{								\
		__atomic_fetch_sub((T *)target, (T)1, WEFT_SC);		\
	}
#define WEFT_BIT(S, M, T)						\
	CK_CC_INLINE static void ck_pr_and_##S(M *target, T d)		\
	{								\
		__atomic_fetch_and((T *)target, d, WEFT_SC);		\
	}								\
	CK_CC_INLINE static void ck_pr_or_##S(M *target, T d)		\
	{								\
		__atomic_fetch_or((T *)target, d, WEFT_SC);		\
	}								\
	CK_CC_INLINE static void ck_pr_xor_##S(M *target, T d)		\
	{								\
		__atomic_fetch_xor((T *)target, d, WEFT_SC);		\
	}
WEFT_RMW(char, char, char)
WEFT_RMW(int, int, int)
WEFT_RMW(uint, unsigned int, unsigned int)
WEFT_RMW(64, uint64_t, uint64_t)
WEFT_RMW(32, uint32_t, uint32_t)
WEFT_RMW(16, uint16_t, uint16_t)
WEFT_RMW(8, uint8_t, uint8_t)
WEFT_BIT(char, char, char)
WEFT_BIT(int, int, int)
WEFT_BIT(uint, unsigned int, unsigned int)
WEFT_BIT(64, uint64_t, uint64_t)
WEFT_BIT(32, uint32_t, uint32_t)
WEFT_BIT(16, uint16_t, uint16_t)
WEFT_BIT(8, uint8_t, uint8_t)
WEFT_BIT(ptr, void, uintptr_t)
#undef WEFT_RMW
#undef WEFT_BIT

/* Pointer arithmetic variants work on the address value. */
CK_CC_INLINE static void *
ck_pr_faa_ptr(void *target, uintptr_t d)
{
	return (void *)__atomic_fetch_add((uintptr_t *)target, d, WEFT_SC);
}

CK_CC_INLINE static void
ck_pr_add_ptr(void *target, uintptr_t d)
{
	__atomic_fetch_add((uintptr_t *)target, d, WEFT_SC);
}

CK_CC_INLINE static void
ck_pr_sub_ptr(void *target, uintptr_t d)
{
	__atomic_fetch_sub((uintptr_t *)target, d, WEFT_SC);
}

CK_CC_INLINE static void
ck_pr_inc_ptr(void *target)
{
	__atomic_fetch_add((uintptr_t *)target, 1, WEFT_SC);
}

CK_CC_INLINE static void
ck_pr_dec_ptr(void *target)
{
	__atomic_fetch_sub((uintptr_t *)target, 1, WEFT_SC);
}

#include_next <ck_pr.h>

#endif /* WEFT_TSAN_CK_PR_H */
