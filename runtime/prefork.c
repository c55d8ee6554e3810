/* SPDX-License-Identifier: MIT */
/*
 * The pre-fork supervisor: weft_prefork() (the master: listeners,
 * children, respawn, reload, drain, stop) and the child's side of its
 * protocol (weft_prefork_ready(), the control task that turns the
 * master's word into the drain future and the cancellation).
 *
 * The master is a plain single-threaded loop over poll(2): a signalfd
 * and one SOCK_SEQPACKET socketpair per child.  It never starts a
 * runtime, so each fork copies one thread and no ring; all of its state
 * below is touched by that thread only (no locks).  A child gets a copy
 * of it at fork, closes what is not its own and never touches it again,
 * except the fields named in `struct child`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime.h"

#define MAX_PROCS	1024
#define MAX_LISTEN	64
#define BACKOFF_MIN	(100 * WEFT_MSEC)
#define BACKOFF_MAX	(10 * WEFT_SEC)
#define BACKOFF_RESET	(60 * WEFT_SEC)	/* up this long: backoff restarts */
#define CRASH_LOOP	5		/* deaths before ready: a crash loop */
#define KILL_GRACE	WEFT_SEC	/* past the drain deadline: SIGKILL */
#define DRAIN_DEFAULT	(10 * WEFT_SEC)
#define STOP_DEFAULT	WEFT_SEC

/* The messages on a child's socketpair, one datagram each. */
enum {
	MSG_READY = 1,	/* child -> master */
	MSG_DRAIN = 2,	/* master -> child: drain, `ns` of grace */
};

struct msg {
	uint32_t type;
	uint32_t pad_;
	int64_t ns;
};

/* A child process, as its master sees it. */
enum proc_state {
	P_STARTING = WEFT_PREFORK_STARTING,
	P_READY = WEFT_PREFORK_READY,
	P_DRAINING = WEFT_PREFORK_DRAINING,
};

struct proc {
	pid_t pid;
	int slot;
	uint64_t gen;
	int ctl;		/* the master's end; -1 once the child closed */
	enum proc_state state;
	int64_t started;	/* fork time (monotonic ns) */
	int64_t kill_at;	/* draining: SIGKILL at; 0: not draining */
};

struct slot {
	int *fds;		/* the child's listeners (nlisten) */
	int64_t backoff;	/* the last respawn delay; 0: none yet */
	int64_t not_before;	/* no spawn in this slot before */
	int fails;		/* deaths before ready, in a row */
	int restarts;		/* respawns after a death */
	int last_status;	/* the last dead child's wait status */
};

struct master {
	const struct weft_prefork_opts *o;
	const char *name;
	int procs;
	int workers;
	int nfds;		/* listeners */
	int *shared;		/* one socket per listener */
	bool *opened;		/* we opened shared[i] (not systemd) */
	int reuseport;		/* mode is REUSEPORT (TCP listeners) */
	struct slot *slots;
	struct proc *p;		/* live children, np of them */
	int np;
	uint64_t gen;		/* the serving generation; 0: none yet */
	uint64_t gen_base;	/* after an upgrade: the old master's gen */
	uint64_t next;		/* the generation starting; 0: none */
	int64_t next_since;	/* when `next` started */
	bool reload_pending;	/* a SIGHUP came while `next` started */
	bool upgrade_pending;	/* a SIGUSR2 came then */
	int stop;		/* 0; 1 graceful; 2 fast; 3 forced */
	int result;		/* weft_prefork()'s return once stopped */
	int sigfd;
	int notify;		/* NOTIFY_SOCKET datagram socket, or -1 */
	/* Binary upgrade (SIGUSR2), the old master's side. */
	pid_t up_pid;		/* the new master; 0: no upgrade under way */
	int up_fd;		/* read end of its ready pipe, or -1 */
	/* The new master's side: write 'R' here once serving; -1: none. */
	int up_ready;
	const sigset_t *oldmask;	/* the mask to give children */
	struct sigaction old_chld;	/* ...and SIGCHLD's disposition */
	struct sockaddr_un notify_addr;
	socklen_t notify_len;
};

static int64_t
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

/* One line on stderr, "NAME: ...", in a single write. */
static void mlog(const struct master *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
mlog(const struct master *m, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "%s: ", m->name);
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)!write(STDERR_FILENO, buf, (size_t)n);
}

/* "exited with status 1", "was killed by signal 9 (Killed)". */
static void
describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "was killed by signal %d (%s)%s",
			 WTERMSIG(st), strsignal(WTERMSIG(st)),
			 WCOREDUMP(st) ? ", core dumped" : "");
	else
		snprintf(buf, len, "ended with wait status %#x", st);
}

/*
 * systemd's notification protocol, written by hand: one datagram to
 * NOTIFY_SOCKET ('@' is the abstract namespace).  Best effort.
 */
static void
notify_setup(struct master *m)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t n;

	m->notify = -1;
	if (!path || !*path || (path[0] != '/' && path[0] != '@'))
		return;
	n = strlen(path);
	if (n >= sizeof(m->notify_addr.sun_path))
		return;
	memset(&m->notify_addr, 0, sizeof(m->notify_addr));
	m->notify_addr.sun_family = AF_UNIX;
	memcpy(m->notify_addr.sun_path, path, n);
	if (path[0] == '@')
		m->notify_addr.sun_path[0] = '\0';
	m->notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				    n + (path[0] == '@' ? 0 : 1));
	m->notify = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

static void notify(struct master *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
notify(struct master *m, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	if (m->notify < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(buf))
		return;
	(void)sendto(m->notify, buf, (size_t)n, MSG_NOSIGNAL,
		     (struct sockaddr *)&m->notify_addr, m->notify_len);
}

/*
 * The child's side.  Set once in the child after the fork (before its
 * runtime starts) and read-only afterwards, except `drained` and
 * `ready`, which only the control task and weft_prefork_ready() change
 * (atomics: they may run on different workers).
 */
static struct child {
	struct weft_prefork_child pub;
	const struct weft_prefork_opts *o;
	int ctl;			/* the child's end of the socketpair */
	pid_t pid;			/* the child's pid (0: not a child) */
	struct weft_task *main;		/* its main task (runs child_main) */
	uint32_t ready;			/* weft_prefork_ready() was called */
} child;

int
weft_prefork_ready(const struct weft_prefork_child *c)
{
	struct msg msg = { .type = MSG_READY };
	ssize_t n;

	if (!c || c != &child.pub || child.pid != getpid())
		return -EINVAL;
	if (!weft_self())
		return -EPERM;
	if (ck_pr_fas_32(&child.ready, 1))
		return -EALREADY;
	n = weft_send(child.ctl, &msg, sizeof(msg), 0,
		      weft_now() + WEFT_SEC);
	if (n < 0) {
		ck_pr_store_32(&child.ready, 0);
		return (int)n;
	}
	return 0;
}

/*
 * The child's control task: reads the master's words.  DRAIN completes
 * the drain future and arms the deadline at which the main task is
 * cancelled (a later, shorter DRAIN moves it closer).  The socketpair
 * closing means the master is gone: drain with no grace, and leave
 * within a second whatever the program does (SIGALRM's default action
 * ends the process).
 */
static void *
control_main(void *arg)
{
	int64_t deadline = WEFT_DEADLINE_NONE;
	bool draining = false;
	struct msg msg;
	ssize_t n;

	(void)arg;
	for (;;) {
		n = weft_recv(child.ctl, &msg, sizeof(msg), 0, deadline);
		if (n == -ECANCELED)
			return NULL;
		if (n == -ETIMEDOUT) {
			weft_cancel(child.main);
			deadline = WEFT_DEADLINE_NONE;
			continue;
		}
		if (n <= 0) {
			alarm(1);
			if (!draining)
				weft_future_set(child.pub.drain, NULL);
			weft_cancel(child.main);
			return NULL;
		}
		if (n != sizeof(msg) || msg.type != MSG_DRAIN)
			continue;
		{
			int64_t d = weft_now() + (msg.ns > 0 ? msg.ns : 0);

			if (deadline == WEFT_DEADLINE_NONE || d < deadline)
				deadline = d;
		}
		if (!draining) {
			draining = true;
			weft_future_set(child.pub.drain, NULL);
		}
	}
}

static void *
child_entry(void *arg)
{
	struct weft_spawn_opts so = { .name = "prefork-ctl" };
	int ret;

	(void)arg;
	child.main = weft_self();
	ret = weft_future_make(&child.pub.drain);
	if (ret == 0)
		ret = weft_spawn(NULL, control_main, NULL, &so);
	if (ret < 0)
		return (void *)(intptr_t)70;	/* EX_SOFTWARE */
	return (void *)(intptr_t)child.o->child_main(&child.pub);
}

/* Put the signals back the way a child wants them. */
static void
child_signals(const sigset_t *oldmask)
{
	/*
	 * The master's signals, aimed at it (a terminal's ^C reaches the
	 * whole group): ignored.  weft_config.dump_signal (SIGUSR1, say)
	 * still gets weft_run()'s handler over SIG_IGN.
	 */
	static const int ign[] = { SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2 };
	struct sigaction sa = { .sa_handler = SIG_IGN };

	for (size_t i = 0; i < sizeof(ign) / sizeof(ign[0]); i++)
		sigaction(ign[i], &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
}

static bool
own_fd(const int *fds, int n, int fd)
{
	for (int i = 0; i < n; i++)
		if (fds[i] == fd)
			return true;
	return false;
}

/* In the child: the rest of its life.  Never returns. */
static void __attribute__((noreturn))
child_run(struct master *m, int slot, uint64_t gen, int ctl,
	  const sigset_t *oldmask)
{
	const int *mine = m->slots[slot].fds;
	struct weft_config cfg = m->o->cfg;
	void *res = NULL;
	int ret;

	/* Close the master's fds that are not this child's. */
	close(m->sigfd);
	if (m->notify >= 0)
		close(m->notify);
	if (m->up_fd >= 0)
		close(m->up_fd);
	if (m->up_ready >= 0)
		close(m->up_ready);
	for (int i = 0; i < m->np; i++)
		if (m->p[i].ctl >= 0)
			close(m->p[i].ctl);
	for (int i = 0; i < m->nfds; i++)
		if (!own_fd(mine, m->nfds, m->shared[i]))
			close(m->shared[i]);
	for (int s = 0; s < m->procs; s++)
		for (int i = 0; s != slot && i < m->nfds; i++)
			if (!own_fd(mine, m->nfds, m->slots[s].fds[i]))
				close(m->slots[s].fds[i]);
	child_signals(oldmask);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");

	child.o = m->o;
	child.ctl = ctl;
	child.pid = getpid();
	child.pub.slot = slot;
	child.pub.nfds = m->nfds;
	child.pub.fds = mine;
	child.pub.generation = gen;
	child.pub.arg = m->o->arg;
	cfg.workers = m->workers;
	ret = weft_run(child_entry, NULL, &cfg, &res);
	if (ret < 0) {
		fprintf(stderr, "%s: child %d (slot %d): cannot start the "
			"runtime: %s\n", m->name, (int)getpid(), slot,
			strerror(-ret));
		fflush(NULL);
		_exit(70);
	}
	/* The master's atexit handlers are not ours: _exit, after a flush. */
	fflush(NULL);
	_exit((int)(intptr_t)res & 0xff);
}

static int
ctl_send(int fd, uint32_t type, int64_t ns)
{
	struct msg msg = { .type = type, .ns = ns };

	if (fd < 0)
		return -EPIPE;
	if (send(fd, &msg, sizeof(msg), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return -errno;
	return 0;
}

/* Fork a child for `slot` in generation `gen`. */
static int
spawn(struct master *m, int slot, uint64_t gen, const sigset_t *oldmask)
{
	struct proc *p;
	int sv[2];
	pid_t pid;

	if (m->np >= MAX_PROCS * 4)
		return -EAGAIN;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	fflush(NULL);	/* nothing buffered is written twice */
	pid = fork();
	if (pid < 0) {
		int err = -errno;

		close(sv[0]);
		close(sv[1]);
		return err;
	}
	if (pid == 0) {
		close(sv[0]);
		child_run(m, slot, gen, sv[1], oldmask);
	}
	close(sv[1]);
	p = &m->p[m->np++];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->slot = slot;
	p->gen = gen;
	p->ctl = sv[0];
	p->state = P_STARTING;
	p->started = mono_now();
	return 0;
}

/* Tell `p` to drain with `ns` of grace; SIGKILL comes KILL_GRACE later. */
static void
drain_proc(struct master *m, struct proc *p, int64_t ns)
{
	int64_t kill_at = mono_now() + ns + KILL_GRACE;

	if (p->state != P_DRAINING || kill_at < p->kill_at)
		p->kill_at = kill_at;
	p->state = P_DRAINING;
	(void)ctl_send(p->ctl, MSG_DRAIN, ns);
}

/* The generation children should be of now; 0 when none should run. */
static uint64_t
target_gen(const struct master *m)
{
	if (m->stop)
		return 0;
	return m->next ? m->next : m->gen;
}

/*
 * Start a child in every slot that lacks one of the target generation
 * and whose backoff is over.  Returns the earliest time a slot waits
 * for (0: none).
 */
static int64_t
fill_slots(struct master *m, const sigset_t *oldmask)
{
	uint64_t t = target_gen(m);
	int64_t now = mono_now(), wake = 0;
	int ret;

	if (!t)
		return 0;
	for (int s = 0; s < m->procs; s++) {
		struct slot *sl = &m->slots[s];
		bool have = false;

		for (int i = 0; i < m->np && !have; i++)
			have = m->p[i].slot == s && m->p[i].gen == t &&
			       m->p[i].state != P_DRAINING;
		if (have)
			continue;
		if (now < sl->not_before) {
			if (!wake || sl->not_before < wake)
				wake = sl->not_before;
			continue;
		}
		ret = spawn(m, s, t, oldmask);
		if (ret < 0) {
			sl->backoff = sl->backoff ? sl->backoff * 2
						  : BACKOFF_MIN;
			if (sl->backoff > BACKOFF_MAX)
				sl->backoff = BACKOFF_MAX;
			sl->not_before = now + sl->backoff;
			mlog(m, "cannot fork a child for slot %d: %s; "
			     "retrying in %" PRId64 " ms", s, strerror(-ret),
			     sl->backoff / WEFT_MSEC);
			if (!wake || sl->not_before < wake)
				wake = sl->not_before;
		}
	}
	return wake;
}

/* Stop everything: level 1 graceful, 2 fast, 3 forced. */
static void
stop_all(struct master *m, int level)
{
	int64_t ns = level == 1 ? m->o->drain_ns : m->o->stop_ns;

	if (level <= m->stop)
		level = 3;
	if (!m->stop)
		notify(m, "STOPPING=1\nSTATUS=stopping");
	m->stop = level;
	m->next = 0;
	for (int i = 0; i < m->np; i++) {
		if (level == 3)
			kill(m->p[i].pid, SIGKILL);
		else
			drain_proc(m, &m->p[i], ns);
	}
	if (level == 3)
		mlog(m, "stopping now: %d child(ren) killed", m->np);
	else
		mlog(m, "%s stop: %d child(ren) draining for up to %" PRId64
		     " ms", level == 1 ? "graceful" : "fast", m->np,
		     ns / WEFT_MSEC);
}

/* Every slot has a ready child of generation `next`: it takes over. */
static void
next_ready(struct master *m)
{
	int ready = 0, drained = 0;

	for (int s = 0; s < m->procs; s++)
		for (int i = 0; i < m->np; i++)
			if (m->p[i].slot == s && m->p[i].gen == m->next &&
			    m->p[i].state == P_READY) {
				ready++;
				break;
			}
	if (ready < m->procs)
		return;
	for (int i = 0; i < m->np; i++)
		if (m->p[i].gen < m->next && m->p[i].state != P_DRAINING) {
			drain_proc(m, &m->p[i], m->o->drain_ns);
			drained++;
		}
	if (m->gen || m->gen_base)
		mlog(m, "generation %" PRIu64 " ready in %" PRId64 " ms (%d "
		     "child(ren)); %d of generation %" PRIu64 " and older "
		     "draining", m->next,
		     (mono_now() - m->next_since) / WEFT_MSEC, m->procs,
		     drained, m->gen);
	else
		mlog(m, "generation %" PRIu64 " ready in %" PRId64 " ms (%d "
		     "child(ren))", m->next,
		     (mono_now() - m->next_since) / WEFT_MSEC, m->procs);
	m->gen = m->next;
	m->next = 0;
	notify(m, "READY=1\nMAINPID=%d\nSTATUS=generation %" PRIu64 ": %d "
	       "process(es) x %d worker(s)", (int)getpid(), m->gen, m->procs,
	       m->workers);
	if (m->up_ready >= 0) {
		/* We are an upgrade: the old master may drain now. */
		(void)send(m->up_ready, "R", 1, MSG_NOSIGNAL);
		close(m->up_ready);
		m->up_ready = -1;
	}
}

/* The generation starting has crash-looped in `slot`. */
static void
next_failed(struct master *m, int slot)
{
	char why[128];

	describe_status(m->slots[slot].last_status, why, sizeof(why));
	if (!m->gen) {
		mlog(m, "generation %" PRIu64 " never became ready: the "
		     "child of slot %d died %d times at start-up (last %s); "
		     "stopping", m->next, slot, CRASH_LOOP, why);
		m->result = -ECHILD;
		stop_all(m, 2);
		return;
	}
	mlog(m, "reload failed: generation %" PRIu64 " never became ready "
	     "(the child of slot %d died %d times at start-up, last %s); "
	     "generation %" PRIu64 " keeps serving", m->next, slot,
	     CRASH_LOOP, why, m->gen);
	for (int i = 0; i < m->np; i++)
		if (m->p[i].gen == m->next)
			drain_proc(m, &m->p[i], 0);
	m->next = 0;
	for (int s = 0; s < m->procs; s++) {
		m->slots[s].fails = 0;
		m->slots[s].not_before = 0;
	}
	notify(m, "READY=1\nSTATUS=reload failed; generation %" PRIu64
	       " serving", m->gen);
}

/* Reap every child that ended; respawn or give up as the rules say. */
static void
reap(struct master *m)
{
	int64_t now = mono_now();
	char why[128];
	int st;

	for (int i = 0; i < m->np;) {
		struct proc p = m->p[i];
		struct slot *sl = &m->slots[p.slot];
		pid_t r = waitpid(p.pid, &st, WNOHANG);

		if (r == 0 || (r < 0 && errno == EINTR)) {
			i++;
			continue;
		}
		if (r < 0)	/* ECHILD: someone else reaped it */
			st = 0;
		if (p.ctl >= 0)
			close(p.ctl);
		m->p[i] = m->p[--m->np];
		describe_status(st, why, sizeof(why));
		if (p.state == P_DRAINING || m->stop) {
			mlog(m, "child %d (slot %d, generation %" PRIu64
			     ") %s %s", (int)p.pid, p.slot, p.gen, why,
			     p.state == P_DRAINING ? "after draining"
						   : "while stopping");
			continue;
		}
		sl->last_status = st;
		if (p.state == P_STARTING)
			sl->fails++;
		else
			sl->fails = 0;
		if (now - p.started >= BACKOFF_RESET)
			sl->backoff = 0;
		sl->backoff = sl->backoff ? sl->backoff * 2 : BACKOFF_MIN;
		if (sl->backoff > BACKOFF_MAX)
			sl->backoff = BACKOFF_MAX;
		if (p.gen != target_gen(m)) {
			/* An older generation during a reload: not replaced. */
			mlog(m, "child %d (slot %d, generation %" PRIu64
			     ") %s; generation %" PRIu64 " replaces it",
			     (int)p.pid, p.slot, p.gen, why, m->next);
			continue;
		}
		if (m->next == p.gen && sl->fails >= CRASH_LOOP) {
			mlog(m, "child %d (slot %d, generation %" PRIu64 ") "
			     "%s before it was ready", (int)p.pid, p.slot,
			     p.gen, why);
			next_failed(m, p.slot);
			continue;
		}
		mlog(m, "child %d (slot %d, generation %" PRIu64 ") %s%s; "
		     "restarting in %" PRId64 " ms", (int)p.pid, p.slot,
		     p.gen, why,
		     p.state == P_STARTING ? " before it was ready" : "",
		     sl->backoff / WEFT_MSEC);
		sl->not_before = now + sl->backoff;
		sl->restarts++;
	}
}

static void
start_generation(struct master *m)
{
	m->next = (m->gen > m->gen_base ? m->gen : m->gen_base) + 1;
	m->next_since = mono_now();
	m->reload_pending = false;
	for (int s = 0; s < m->procs; s++) {
		m->slots[s].fails = 0;
		m->slots[s].backoff = 0;
		m->slots[s].not_before = 0;
	}
}

static void status_publish(const struct master *m);

static void
reload(struct master *m)
{
	struct timespec ts;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	notify(m, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=reloading",
	       (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
	status_publish(m);	/* the hook may look: show it the latest */
	ret = m->o->reload ? m->o->reload(m->o->arg) : 0;
	if (ret < 0) {
		mlog(m, "reload refused by the program: %s; generation %"
		     PRIu64 " keeps serving", strerror(-ret), m->gen);
		notify(m, "READY=1\nSTATUS=reload refused (%s); generation %"
		       PRIu64 " serving", strerror(-ret), m->gen);
		return;
	}
	mlog(m, "reloading: starting generation %" PRIu64, m->gen + 1);
	start_generation(m);
}

/*
 * What weft_prefork_status() reads: a copy of the children the master
 * publishes before each wait and before it calls the reload hook.  Under status_lock, a plain mutex outside
 * the lock order (io/base.h): it nests with nothing, and neither side
 * parks or calls out while holding it.
 */
static pthread_mutex_t status_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft_prefork_proc *status_snap;	/* MAX_PROCS * 4 entries */
static int status_n = -1;			/* -1: no master runs */

static void
status_publish(const struct master *m)
{
	pthread_mutex_lock(&status_lock);
	for (int i = 0; status_snap && i < m->np; i++) {
		struct weft_prefork_proc *q = &status_snap[i];

		memset(q, 0, sizeof(*q));
		q->pid = m->p[i].pid;
		q->slot = m->p[i].slot;
		q->generation = m->p[i].gen;
		q->state = (int)m->p[i].state;
		q->restarts = m->slots[m->p[i].slot].restarts;
		q->started = m->p[i].started;
	}
	status_n = status_snap ? m->np : 0;
	pthread_mutex_unlock(&status_lock);
}

int
weft_prefork_status(struct weft_prefork_proc *out, int max)
{
	int64_t now = mono_now();
	int n;

	if (max < 0 || (max > 0 && !out))
		return -EINVAL;
	pthread_mutex_lock(&status_lock);
	n = status_n;
	for (int i = 0; i < n && i < max; i++) {
		out[i] = status_snap[i];
		out[i].uptime_ns = now - out[i].started;
	}
	pthread_mutex_unlock(&status_lock);
	return n < 0 ? -ESRCH : n;
}

static void
status(const struct master *m)
{
	static const char *names[] = { "starting", "ready", "draining" };
	int64_t now = mono_now();

	mlog(m, "status: generation %" PRIu64 "%s, %d child(ren), %d "
	     "worker(s) each", m->gen, m->next ? " (next starting)" : "",
	     m->np, m->workers);
	for (int i = 0; i < m->np; i++)
		mlog(m, "status: slot %d pid %d generation %" PRIu64 " %s "
		     "restarts %d up %" PRId64 " ms", m->p[i].slot,
		     (int)m->p[i].pid, m->p[i].gen, names[m->p[i].state],
		     m->slots[m->p[i].slot].restarts,
		     (now - m->p[i].started) / WEFT_MSEC);
}

/* argv of this process, from /proc/self/cmdline (malloc'd, NULL-ended). */
static char **
own_argv(void)
{
	static char buf[16384];
	char **argv;
	ssize_t n = 0, r;
	int fd, argc = 0;

	fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	while (n < (ssize_t)sizeof(buf) - 1 &&
	       (r = read(fd, buf + n, sizeof(buf) - 1 - (size_t)n)) > 0)
		n += r;
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		argc += buf[i] == '\0';
	argv = calloc((size_t)argc + 1, sizeof(*argv));
	if (!argv)
		return NULL;
	argc = 0;
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
		argv[argc++] = buf + i;
	return argv;
}

/*
 * SIGUSR2: start the binary at our argv[0] again (nginx's USR2), handing
 * it every listening socket (WEFT_PREFORK_FDS: "procs nfds" then each
 * slot's fds) and a socket (WEFT_PREFORK_UPGRADE_FD) on which it says it
 * is serving; we drain then.  If it exits first, we go on serving.
 */
static void
upgrade(struct master *m)
{
	char **argv;
	char *list;
	size_t len, off = 0;
	pid_t pid;
	int p[2];

	m->upgrade_pending = false;
	if (m->stop || m->up_pid) {
		mlog(m, "binary upgrade refused: %s", m->stop ? "stopping" :
		     "an upgrade is under way");
		return;
	}
	if (m->next) {
		/* Once the generation starting is ready (or abandoned). */
		m->upgrade_pending = true;
		return;
	}
	len = 32 + (size_t)m->procs * (size_t)m->nfds * 12;
	list = malloc(len);
	argv = own_argv();
	if (!list || !argv ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0) {
		mlog(m, "binary upgrade failed: %s", strerror(errno ? errno
								    : ENOMEM));
		free(list);
		free(argv);
		return;
	}
	off += (size_t)snprintf(list, len, "%d %d", m->procs, m->nfds);
	for (int sl = 0; sl < m->procs; sl++)
		for (int i = 0; i < m->nfds; i++)
			off += (size_t)snprintf(list + off, len - off, " %d",
						m->slots[sl].fds[i]);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		char num[16];

		close(p[0]);
		close(m->sigfd);
		if (m->notify >= 0)
			close(m->notify);
		for (int i = 0; i < m->np; i++)
			if (m->p[i].ctl >= 0)
				close(m->p[i].ctl);
		for (int sl = 0; sl < m->procs; sl++)
			for (int i = 0; i < m->nfds; i++)
				(void)fcntl(m->slots[sl].fds[i], F_SETFD, 0);
		(void)fcntl(p[1], F_SETFD, 0);
		snprintf(num, sizeof(num), "%d", p[1]);
		setenv("WEFT_PREFORK_FDS", list, 1);
		setenv("WEFT_PREFORK_UPGRADE_FD", num, 1);
		snprintf(num, sizeof(num), "%" PRIu64, m->gen);
		setenv("WEFT_PREFORK_GENERATION", num, 1);
		sigaction(SIGCHLD, &m->old_chld, NULL);
		sigprocmask(SIG_SETMASK, m->oldmask, NULL);
		execvp(argv[0], argv);
		mlog(m, "binary upgrade: cannot run %s: %s", argv[0],
		     strerror(errno));
		_exit(127);
	}
	close(p[1]);
	if (pid < 0) {
		mlog(m, "binary upgrade: cannot fork: %s", strerror(errno));
		close(p[0]);
	} else {
		m->up_pid = pid;
		m->up_fd = p[0];
		mlog(m, "binary upgrade: new master %d started (%s)", (int)pid,
		     argv[0]);
	}
	free(list);
	free(argv);
}

/* The new master's pipe: 'R' (serving: we drain) or EOF (it failed). */
static void
on_upgrade_fd(struct master *m)
{
	char c = 0;
	ssize_t n = read(m->up_fd, &c, 1);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	close(m->up_fd);
	m->up_fd = -1;
	if (n == 1 && c == 'R') {
		mlog(m, "binary upgrade: new master %d is serving; master %d "
		     "drains and exits", (int)m->up_pid, (int)getpid());
		m->up_pid = 0;	/* its own master now, not our business */
		stop_all(m, 1);
		return;
	}
	/* reap_upgrade() reports how it ended. */
}

/* The new master ended before it served: we go on. */
static void
reap_upgrade(struct master *m)
{
	char why[128];
	int st;

	if (!m->up_pid)
		return;
	if (waitpid(m->up_pid, &st, WNOHANG) != m->up_pid)
		return;
	describe_status(st, why, sizeof(why));
	mlog(m, "binary upgrade failed: new master %d %s before it served; "
	     "generation %" PRIu64 " keeps serving", (int)m->up_pid, why,
	     m->gen);
	m->up_pid = 0;
	if (m->up_fd >= 0) {
		close(m->up_fd);
		m->up_fd = -1;
	}
}

static void
on_signal(struct master *m, int sig)
{
	switch (sig) {
	case SIGHUP:
		if (m->stop)
			break;
		if (m->next)
			m->reload_pending = true;	/* after this one */
		else
			reload(m);
		break;
	case SIGQUIT:
		stop_all(m, 1);
		break;
	case SIGTERM:
	case SIGINT:
		stop_all(m, 2);
		break;
	case SIGUSR1:
		status(m);
		if (m->o->flags & WEFT_PREFORK_FORWARD_USR1)
			for (int i = 0; i < m->np; i++)
				kill(m->p[i].pid, SIGUSR1);
		break;
	case SIGUSR2:
		upgrade(m);
		break;
	default:	/* SIGCHLD: reap() runs every round */
		break;
	}
}

static void
on_ctl(struct master *m, struct proc *p)
{
	struct msg msg;
	ssize_t n;

	n = recv(p->ctl, &msg, sizeof(msg), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* The child closed its end: it is on its way out. */
		close(p->ctl);
		p->ctl = -1;
		return;
	}
	if (n != sizeof(msg) || msg.type != MSG_READY ||
	    p->state != P_STARTING)
		return;
	p->state = P_READY;
	m->slots[p->slot].fails = 0;
	if (p->gen == m->next)
		next_ready(m);
}

/*
 * After a binary upgrade: the old master's sockets, slot by slot, as
 * upgrade() listed them.  Same procs: the same layout (shared or per
 * slot); other procs: slot 0's sockets shared by all, the rest closed.
 * The ready pipe is kept for next_ready().
 */
static int
inherit_listeners(struct master *m)
{
	const char *list = getenv("WEFT_PREFORK_FDS");
	const char *up = getenv("WEFT_PREFORK_UPGRADE_FD");
	int procs, nfds, used, fd;
	const char *q = list;

	if (sscanf(q, "%d %d%n", &procs, &nfds, &used) != 2 || procs < 1 ||
	    nfds < 0 || nfds > MAX_LISTEN || nfds != m->nfds) {
		mlog(m, "WEFT_PREFORK_FDS='%s' does not match %d listener(s)",
		     list, m->nfds);
		return -EINVAL;
	}
	q += used;
	for (int s = 0; s < procs; s++)
		for (int i = 0; i < nfds; i++) {
			if (sscanf(q, "%d%n", &fd, &used) != 1 || fd < 0) {
				mlog(m, "WEFT_PREFORK_FDS='%s' is malformed",
				     list);
				return -EINVAL;
			}
			q += used;
			(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
			if (s == 0) {
				m->shared[i] = fd;
				m->opened[i] = true;
			} else if (s < m->procs) {
				if (fd != m->shared[i])
					m->slots[s].fds[i] = fd;
			} else if (!own_fd(m->shared, nfds, fd)) {
				close(fd);
			}
		}
	if (procs != m->procs)
		mlog(m, "upgrade: the old master had %d process(es), we have "
		     "%d: slots past %d share slot 0's sockets", procs,
		     m->procs, procs);
	if (getenv("WEFT_PREFORK_GENERATION"))
		m->gen_base = strtoull(getenv("WEFT_PREFORK_GENERATION"),
				       NULL, 10);
	unsetenv("WEFT_PREFORK_GENERATION");
	if (up && (fd = atoi(up)) > 2) {
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		m->up_ready = fd;
	}
	unsetenv("WEFT_PREFORK_FDS");
	unsetenv("WEFT_PREFORK_UPGRADE_FD");
	for (int s = 0; s < m->procs; s++)
		for (int i = 0; i < m->nfds; i++)
			if (m->slots[s].fds[i] < 0)
				m->slots[s].fds[i] = m->shared[i];
	return 0;
}

/* Open the listeners: systemd's, or the specs (times procs: reuseport). */
static int
open_listeners(struct master *m)
{
	const struct weft_prefork_opts *o = m->o;
	const char *lpid = getenv("LISTEN_PID");
	const char *lfds = getenv("LISTEN_FDS");
	bool activated = lpid && lfds &&
			 strtol(lpid, NULL, 10) == (long)getpid();
	int n = o->nlisten, ret;

	if (activated) {
		char *end;
		long v;

		errno = 0;
		v = strtol(lfds, &end, 10);
		if (errno || *end || end == lfds || v < 1 || v > MAX_LISTEN) {
			mlog(m, "LISTEN_FDS='%s' is not 1..%d", lfds,
			     MAX_LISTEN);
			return -EINVAL;
		}
		n = (int)v;
		m->reuseport = 0;
		if (o->mode == WEFT_PREFORK_REUSEPORT)
			mlog(m, "socket activation: %d listener(s) shared by "
			     "every child (reuseport needs sockets of our "
			     "own)", n);
	}
	m->nfds = n;
	m->shared = calloc((size_t)n + 1, sizeof(int));
	m->opened = calloc((size_t)n + 1, sizeof(bool));
	if (!m->shared || !m->opened)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		m->shared[i] = -1;
	for (int s = 0; s < m->procs; s++) {
		m->slots[s].fds = calloc((size_t)n + 1, sizeof(int));
		if (!m->slots[s].fds)
			return -ENOMEM;
		for (int i = 0; i < n; i++)
			m->slots[s].fds[i] = -1;
	}
	if (getenv("WEFT_PREFORK_FDS"))
		return inherit_listeners(m);
	if (activated) {
		for (int i = 0; i < n; i++) {
			m->shared[i] = 3 + i;
			(void)fcntl(3 + i, F_SETFD, FD_CLOEXEC);
		}
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_FDNAMES");
		goto assign;
	}
	for (int i = 0; i < n; i++) {
		const struct weft_prefork_listen *l = &o->listen[i];
		struct weft_listen_opts lo = l->opts;
		bool rp = m->reuseport && !l->unix_path;
		int port = l->port;

		if (rp)
			lo.reuseport = 1;
		for (int s = 0; s < (rp ? m->procs : 1); s++) {
			if (l->unix_path)
				ret = weft_unix_listen(l->unix_path, &lo);
			else
				ret = weft_tcp_listen(l->host, port, &lo);
			if (ret < 0) {
				if (l->unix_path)
					mlog(m, "cannot listen on %s: %s",
					     l->unix_path, strerror(-ret));
				else
					mlog(m, "cannot listen on %s:%d: %s",
					     l->host ? l->host : "*", port,
					     strerror(-ret));
				return ret;
			}
			if (s == 0) {
				m->shared[i] = ret;
				m->opened[i] = true;
			} else {
				m->slots[s].fds[i] = ret;
			}
			if (rp && s == 0 && port == 0) {
				/* The siblings bind the port the first got. */
				struct sockaddr_storage ss;
				socklen_t len = sizeof(ss);

				if (getsockname(ret, (struct sockaddr *)&ss,
						&len) < 0)
					return -errno;
				port = ntohs(ss.ss_family == AF_INET6 ?
					     ((struct sockaddr_in6 *)&ss)
						     ->sin6_port :
					     ((struct sockaddr_in *)&ss)
						     ->sin_port);
			}
		}
	}
assign:
	for (int s = 0; s < m->procs; s++)
		for (int i = 0; i < n; i++)
			if (m->slots[s].fds[i] < 0)
				m->slots[s].fds[i] = m->shared[i];
	return 0;
}

static void
close_listeners(struct master *m)
{
	for (int s = 0; m->slots && s < m->procs; s++) {
		for (int i = 0; m->slots[s].fds && i < m->nfds; i++)
			if (s > 0 && m->slots[s].fds[i] >= 0 &&
			    m->slots[s].fds[i] != m->shared[i])
				close(m->slots[s].fds[i]);
		free(m->slots[s].fds);
	}
	for (int i = 0; m->shared && i < m->nfds; i++)
		if (m->opened[i] && m->shared[i] >= 0)
			close(m->shared[i]);
	free(m->shared);
	free(m->opened);
	free(m->slots);
	free(m->p);
}

static int
check_opts(const struct weft_prefork_opts *o)
{
	if (!o || !o->child_main || (o->flags & ~WEFT_PREFORK_FORWARD_USR1))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(o->reserved_) / sizeof(o->reserved_[0]);
	     i++)
		if (o->reserved_[i])
			return -EINVAL;
	if (o->procs < 0 || o->procs > MAX_PROCS || o->nlisten < 0 ||
	    o->nlisten > MAX_LISTEN || (o->nlisten && !o->listen) ||
	    (o->mode != WEFT_PREFORK_SHARED &&
	     o->mode != WEFT_PREFORK_REUSEPORT) ||
	    o->drain_ns < 0 || o->stop_ns < 0 || o->cfg.workers < 0 ||
	    o->cfg.workers > 1024)
		return -EINVAL;
	for (int i = 0; i < o->nlisten; i++)
		if (!o->listen[i].unix_path &&
		    (o->listen[i].port < 0 || o->listen[i].port > 65535))
			return -EINVAL;
	return 0;
}

static int
cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set))
		return CPU_COUNT(&set);
	return 1;
}

/* The supervision loop; returns when every child has exited. */
static void
supervise(struct master *m, const sigset_t *oldmask)
{
	struct pollfd *pfd;

	pfd = calloc((size_t)MAX_PROCS * 4 + 2, sizeof(*pfd));
	if (!pfd) {
		m->result = -ENOMEM;
		stop_all(m, 3);
	}
	pthread_mutex_lock(&status_lock);
	status_snap = calloc((size_t)MAX_PROCS * 4, sizeof(*status_snap));
	status_n = 0;
	pthread_mutex_unlock(&status_lock);
	start_generation(m);
	for (;;) {
		int64_t wake, now;
		int n = 0, timeout = -1;

		reap(m);
		reap_upgrade(m);
		if (m->stop && m->np == 0)
			break;
		if (!m->stop && !m->next && m->reload_pending)
			reload(m);
		if (!m->stop && !m->next && m->upgrade_pending && m->gen)
			upgrade(m);
		wake = fill_slots(m, oldmask);
		now = mono_now();
		for (int i = 0; i < m->np; i++)
			if (m->p[i].kill_at) {
				if (now >= m->p[i].kill_at) {
					mlog(m, "child %d (slot %d, generation "
					     "%" PRIu64 ") did not drain in "
					     "time: killed", (int)m->p[i].pid,
					     m->p[i].slot, m->p[i].gen);
					kill(m->p[i].pid, SIGKILL);
					m->p[i].kill_at = 0;
				} else if (!wake || m->p[i].kill_at < wake) {
					wake = m->p[i].kill_at;
				}
			}
		if (wake)
			timeout = (int)((wake - now) / WEFT_MSEC) + 1;
		status_publish(m);
		if (!pfd)	/* forced stop: only wait for the children */
			timeout = 10;
		if (pfd) {
			pfd[n++] = (struct pollfd){ .fd = m->sigfd,
						    .events = POLLIN };
			for (int i = 0; i < m->np; i++)
				pfd[n++] = (struct pollfd){
					.fd = m->p[i].ctl, .events = POLLIN
				};
			/* -1 (ignored by poll) when no upgrade is under way */
			pfd[n++] = (struct pollfd){ .fd = m->up_fd,
						    .events = POLLIN };
		}
		if (poll(pfd, (nfds_t)n, timeout) <= 0)
			continue;
		/* Children first: pfd[1 + i] is m->p[i] until reap() runs. */
		for (int i = m->np - 1; i >= 0; i--)
			if (pfd[1 + i].revents && m->p[i].ctl >= 0)
				on_ctl(m, &m->p[i]);
		if (pfd[1 + m->np].revents && m->up_fd >= 0)
			on_upgrade_fd(m);
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(m->sigfd, &si, sizeof(si)) ==
			       (ssize_t)sizeof(si))
				on_signal(m, (int)si.ssi_signo);
		}
	}
	free(pfd);
	pthread_mutex_lock(&status_lock);
	free(status_snap);
	status_snap = NULL;
	status_n = -1;
	pthread_mutex_unlock(&status_lock);
}

int
weft_prefork(const struct weft_prefork_opts *opts)
{
	static const int sigs[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM,
				    SIGCHLD, SIGUSR1, SIGUSR2 };
	struct weft_prefork_opts o;
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t set, oldmask;
	struct master m;
	int ret;

	ret = check_opts(opts);
	if (ret < 0)
		return ret;
	if (weft_self())
		return -EPERM;
	if (weft_workers() >= 0)
		return -EBUSY;
	o = *opts;
	if (!o.drain_ns)
		o.drain_ns = DRAIN_DEFAULT;
	if (!o.stop_ns)
		o.stop_ns = STOP_DEFAULT;
	memset(&m, 0, sizeof(m));
	m.o = &o;
	m.name = o.name ? o.name : "weft";
	m.procs = o.procs;
	m.workers = o.cfg.workers;
	if (!m.procs && !m.workers)
		m.workers = 1;
	if (!m.procs)
		m.procs = cpus() / m.workers > 0 ? cpus() / m.workers : 1;
	if (!m.workers)
		m.workers = cpus() / m.procs > 0 ? cpus() / m.procs : 1;
	m.reuseport = o.mode == WEFT_PREFORK_REUSEPORT;
	m.sigfd = -1;
	m.up_fd = -1;
	m.up_ready = -1;
	m.oldmask = &oldmask;
	/* The children's runtime configuration, checked here, not in each. */
	{
		struct weft_config cc = o.cfg;
		struct weft__config rc;

		cc.workers = m.workers;
		ret = weft__config_resolve(&cc, &rc);
		if (ret < 0)
			return ret;
	}
	/*
	 * From here on a stop or reload signal waits for the signalfd
	 * instead of killing a master that is still opening its sockets.
	 */
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&set, sigs[i]);
	if (sigprocmask(SIG_BLOCK, &set, &oldmask) < 0)
		return -errno;
	/* SIG_IGN would make the kernel reap our children for us. */
	sigaction(SIGCHLD, &dfl, &m.old_chld);
	m.slots = calloc((size_t)m.procs, sizeof(*m.slots));
	/* Room for two generations and their drains, bounded below. */
	m.p = calloc((size_t)MAX_PROCS * 4, sizeof(*m.p));
	if (!m.slots || !m.p) {
		ret = -ENOMEM;
		goto out;
	}
	ret = open_listeners(&m);
	if (ret < 0)
		goto out;
	if (o.on_listen) {
		ret = o.on_listen(m.shared, m.nfds, o.arg);
		if (ret < 0)
			goto out;
	}

	m.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (m.sigfd < 0) {
		ret = -errno;
	} else {
		notify_setup(&m);
		mlog(&m, "master %d: %d process(es) x %d worker(s), %s "
		     "listener%s", (int)getpid(), m.procs, m.workers,
		     m.reuseport ? "one reuseport socket per slot per"
				 : "shared", m.reuseport ? "" : " sockets");
		supervise(&m, &oldmask);
		ret = m.result;
		mlog(&m, "master %d: every child has exited", (int)getpid());
		if (m.notify >= 0)
			close(m.notify);
		close(m.sigfd);
	}
out:
	sigaction(SIGCHLD, &m.old_chld, NULL);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	close_listeners(&m);
	return ret;
}
