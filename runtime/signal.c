/* SPDX-License-Identifier: MIT */
/*
 * Signals received by tasks (weft.h, "Signals"): Go's signal.Notify and
 * Tokio's signal, as weft_signal_notify() + weft_signal_wait().
 *
 * Why a handler and not a signalfd: a signalfd read returns only the
 * signals pending for the process or for the thread that reads, so a
 * signal sent with pthread_kill() to worker 3 would never be seen by a
 * read on worker 0, and io_uring may do the read on a thread of its own.
 * A handler runs on whichever thread the kernel picks (any thread that
 * does not block the signal), so every delivery is seen.  The handler is
 * async-signal-safe: it counts the delivery in pending[] and writes an
 * eventfd (the self-pipe trick, as Tokio and libuv do), and tasks wait by
 * reading that eventfd with weft_read(), which parks only the task and
 * brings deadlines and cancellation with it.  It runs on the worker's
 * alternate signal stack (SA_ONSTACK), never on a small task stack.
 *
 * Waiters take turns (leader/follower): one waiter at a time, the poller,
 * reads the eventfd; the others wait on a weft_cond.  Whoever gets a turn
 * first tries to claim a counted delivery of a signal it waits for; the
 * poller, once its read returns (or fails), broadcasts so the followers
 * look again and one of them becomes the next poller.  A delivery is
 * claimed by exactly one waiter (a CAS on its count), so each delivered
 * signal is returned once.  No lost wake-up: the handler counts before it
 * writes the eventfd, a follower checks the counts and enters the cond
 * wait under the waiters' mutex, and the poller broadcasts under it after
 * its read.
 *
 * The signal mask: a blocked signal never reaches the handler.  notify
 * unblocks the signals in the calling thread, and weft_run() unblocks
 * every notified signal in its own thread before it starts the workers,
 * so they (and the pool threads they start) inherit it; the monitor
 * thread blocks everything and never runs the handler.  The dump signal
 * of a run (weft_config.dump_signal) belongs to the diagnostics: notify
 * refuses it while that run lasts, and a run whose dump signal is
 * notified already goes without a dump signal (and says so on stderr).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io/base.h"
#include "runtime/runtime.h"
#include "sched/park.h"

#define SIG_MAX 65	/* signal numbers 1 .. 64 */

static struct {
	/* Registration: notify, stop, the run's begin and end. */
	pthread_mutex_t lock;
	/* Under lock. */
	bool wanted[SIG_MAX];		/* our handler is installed */
	struct sigaction old[SIG_MAX];	/* the action before ours */
	int run_dump;			/* the running run's dump signal */

	/*
	 * The eventfd: made once under lock by the first notify, then
	 * immutable for the process (atomic store, read by the handler and
	 * the waiters with atomic loads).
	 */
	int efd;

	/*
	 * Deliveries not yet claimed, per signal: the handler adds one
	 * (seq_cst, before its eventfd write: pairs with the claim's CAS
	 * in claim(), which a waiter makes after its read of the eventfd
	 * returned), a waiter takes one with a CAS, stop clears it.
	 */
	uint32_t pending[SIG_MAX];

	/* The waiters' turn-taking (see above). */
	struct weft_mutex mu;
	struct weft_cond cond;
	bool polling;			/* under mu: a poller reads efd */
} sig = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.efd = -1,
	.mu = WEFT_MUTEX_INIT,
	.cond = WEFT_COND_INIT,
};

/* Any thread; async-signal-safe. */
static void
handler(int signo, siginfo_t *si, void *uc)
{
	int saved = errno;
	uint64_t one = 1;
	int efd;

	(void)si;
	(void)uc;
	if (signo > 0 && signo < SIG_MAX) {
		__atomic_add_fetch(&sig.pending[signo], 1, __ATOMIC_SEQ_CST);
		efd = __atomic_load_n(&sig.efd, __ATOMIC_ACQUIRE);
		if (efd >= 0 && write(efd, &one, sizeof(one)) < 0) {
			/* Full counter (2^64 - 2): a reader is due anyway. */
		}
	}
	errno = saved;
}

/* Signals a task may not take over: uncatchable, or weft's own faults. */
static bool
refused(int s)
{
	return s == SIGKILL || s == SIGSTOP || s == SIGSEGV || s == SIGBUS ||
	       s == SIGILL || s == SIGFPE || s == SIGTRAP || s == SIGABRT;
}

/* The signals of `set` we can name (glibc keeps 32 and 33 to itself). */
static int
count_valid(const sigset_t *set, int *bad)
{
	int n = 0;

	*bad = 0;
	for (int s = 1; s < SIG_MAX; s++) {
		if (sigismember(set, s) != 1)
			continue;
		if (refused(s))
			*bad = s;
		n++;
	}
	return n;
}

int
weft_signal_notify(const sigset_t *set)
{
	struct sigaction sa;
	int bad, ret = 0;

	if (!set || count_valid(set, &bad) == 0 || bad)
		return -EINVAL;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
	sigfillset(&sa.sa_mask);

	weft__mutex_lock(&sig.lock, WEFT_RANK_SIGNAL);
	if (sig.run_dump > 0 && sigismember(set, sig.run_dump) == 1) {
		ret = -EBUSY;
		goto out;
	}
	if (sig.efd < 0) {
		int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

		if (fd < 0) {
			ret = -errno;
			goto out;
		}
		/* Pairs with the handler's and the waiters' acquire loads. */
		__atomic_store_n(&sig.efd, fd, __ATOMIC_RELEASE);
	}
	for (int s = 1; s < SIG_MAX; s++) {
		if (sigismember(set, s) != 1 || sig.wanted[s])
			continue;
		if (sigaction(s, &sa, &sig.old[s]) < 0) {
			ret = -errno;
			break;
		}
		sig.wanted[s] = true;
	}
out:
	weft__mutex_unlock(&sig.lock);
	if (ret == 0)
		pthread_sigmask(SIG_UNBLOCK, set, NULL);
	return ret;
}

int
weft_signal_stop(const sigset_t *set)
{
	int bad;

	if (!set || count_valid(set, &bad) == 0)
		return -EINVAL;
	weft__mutex_lock(&sig.lock, WEFT_RANK_SIGNAL);
	for (int s = 1; s < SIG_MAX; s++) {
		if (sigismember(set, s) != 1 || !sig.wanted[s])
			continue;
		sigaction(s, &sig.old[s], NULL);
		sig.wanted[s] = false;
		__atomic_store_n(&sig.pending[s], 0, __ATOMIC_SEQ_CST);
	}
	weft__mutex_unlock(&sig.lock);
	return 0;
}

/*
 * Take one delivery of a signal in `set` (NULL: any), lowest number
 * first.  Returns the signal, or 0 if none is pending.  Any thread.
 */
static int
claim(const sigset_t *set)
{
	for (int s = 1; s < SIG_MAX; s++) {
		uint32_t n = __atomic_load_n(&sig.pending[s], __ATOMIC_SEQ_CST);

		if (n == 0 || (set && sigismember(set, s) != 1))
			continue;
		while (n > 0)
			if (__atomic_compare_exchange_n(&sig.pending[s], &n,
							n - 1, false,
							__ATOMIC_SEQ_CST,
							__ATOMIC_SEQ_CST))
				return s;
	}
	return 0;
}

/*
 * Relock the waiters' mutex whatever happens: the poller must give its
 * turn back even when it is cancelled.  Executed only by the task self.
 */
static void
lock_shielded(struct weft_task *self)
{
	bool cancelled = weft__shield_begin(self);
	int64_t scope = weft__scope_suspend(self);

	while (weft_mutex_lock(&sig.mu, WEFT_DEADLINE_NONE) < 0)
		cancelled |= weft__shield_hit(self);
	weft__scope_resume(self, scope);
	weft__shield_end(self, cancelled);
}

int
weft_signal_wait(const sigset_t *set, int64_t deadline)
{
	struct weft_task *self = weft__task_self();
	int efd = __atomic_load_n(&sig.efd, __ATOMIC_ACQUIRE);
	int ret, s;

	if (!self)
		return -EPERM;
	if (set) {
		int bad;

		if (count_valid(set, &bad) == 0)
			return -EINVAL;
	}
	if (efd < 0)
		return -EINVAL;		/* nothing was ever notified */
	if (weft_task_is_cancelled(self))
		return -ECANCELED;
	ret = weft_mutex_lock(&sig.mu, deadline);
	if (ret < 0)
		return ret;
	for (;;) {
		s = claim(set);
		if (s) {
			ret = s;
			break;
		}
		if (!sig.polling) {
			uint64_t v;
			ssize_t n;

			sig.polling = true;
			weft_mutex_unlock(&sig.mu);
			n = weft_read(efd, &v, sizeof(v), deadline);
			lock_shielded(self);
			sig.polling = false;
			weft_cond_broadcast(&sig.cond);
			if (n >= 0 || n == -EAGAIN)
				continue;
			ret = (int)n;
		} else {
			ret = weft_cond_wait(&sig.cond, &sig.mu, deadline);
			if (ret == 0)
				continue;
		}
		/*
		 * A deadline (or an fd error): a delivery that arrived
		 * meanwhile is still ours.  A cancelled task takes none,
		 * so another waiter gets it.
		 */
		if (ret != -ECANCELED && (s = claim(set)))
			ret = s;
		break;
	}
	weft_mutex_unlock(&sig.mu);
	return ret;
}

/*
 * weft_run's part (runtime.h): record the run's dump signal (dropped, with
 * a line on stderr, if it is notified), and unblock every notified signal
 * in the calling thread for the run, so that the workers it starts inherit
 * the mask; `saved` receives the mask to restore.  Caller: weft_run,
 * before the diagnostics and the workers start.
 */
void
weft__signal_run_begin(int *dump_signal, sigset_t *saved)
{
	sigset_t un;

	sigemptyset(&un);
	weft__mutex_lock(&sig.lock, WEFT_RANK_SIGNAL);
	if (*dump_signal > 0 && *dump_signal < SIG_MAX &&
	    sig.wanted[*dump_signal]) {
		fprintf(stderr,
			"weft: dump signal %d is taken by "
			"weft_signal_notify(); no dump signal in this run\n",
			*dump_signal);
		*dump_signal = 0;
	}
	sig.run_dump = *dump_signal;
	for (int s = 1; s < SIG_MAX; s++)
		if (sig.wanted[s])
			sigaddset(&un, s);
	weft__mutex_unlock(&sig.lock);
	pthread_sigmask(SIG_UNBLOCK, &un, saved);
}

/* The run is over: its dump signal is free, its mask restored. */
void
weft__signal_run_end(const sigset_t *saved)
{
	weft__mutex_lock(&sig.lock, WEFT_RANK_SIGNAL);
	sig.run_dump = 0;
	weft__mutex_unlock(&sig.lock);
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}
