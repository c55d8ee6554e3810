/* SPDX-License-Identifier: MIT */
/*
 * Run a command with io_uring blocked, the way a kernel with
 * kernel.io_uring_disabled=2 (or a container's seccomp profile) blocks it:
 * io_uring_setup(2) fails with EPERM, every other system call is allowed.
 *
 *   no_uring CMD [ARGS...]
 *
 * Sets PR_SET_NO_NEW_PRIVS (so an unprivileged process may install the
 * filter), installs a seccomp BPF filter and execvp()s CMD; the filter is
 * inherited by CMD and everything it starts.  A system call made under
 * another architecture's ABI (x32, i386 on x86-64) is refused with EPERM
 * too, so it cannot reach io_uring_setup by another number.  Exits 126
 * when the filter cannot be installed, 127 when CMD cannot be run.
 * Part of the fault-injection suite (tests/faults/run.sh).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH_NR AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH_NR AUDIT_ARCH_AARCH64
#else
#error "no_uring: unknown architecture"
#endif

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425 /* the same on every architecture */
#endif

int
main(int argc, char **argv)
{
	struct sock_filter filter[] = {
		/* Another ABI than ours: refuse the call. */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH_NR, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
		/* x32 calls carry our arch with bit 30 set in nr. */
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
#endif
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = sizeof(filter) / sizeof(filter[0]),
		.filter = filter,
	};

	if (argc < 2) {
		fprintf(stderr, "usage: no_uring CMD [ARGS...]\n");
		return 2;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		fprintf(stderr, "no_uring: PR_SET_NO_NEW_PRIVS: %s\n",
			strerror(errno));
		return 126;
	}
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) {
		fprintf(stderr, "no_uring: PR_SET_SECCOMP: %s\n",
			strerror(errno));
		return 126;
	}
	execvp(argv[1], argv + 1);
	fprintf(stderr, "no_uring: %s: %s\n", argv[1], strerror(errno));
	return 127;
}
