/* SPDX-License-Identifier: MIT */
/*
 * The program tests/e2e/gdb.sh runs under gdb: 1,000 tasks named "parked"
 * park in parked_body() on a channel receive, one task holds a mutex and
 * parks on a join, then main stops the process with SIGTRAP for gdb to
 * look.  `first_id` is the id of the first parked task, for the script.
 * Run outside gdb, SIGTRAP ends it.
 */
#include <signal.h>
#include <stdio.h>

#include <weft.h>

#define PARKED 1000

volatile unsigned long long first_id;
static struct weft_chan *ch;

static __attribute__((noinline)) void *
parked_body(void *arg)
{
	int v;

	(void)arg;
	weft_chan_recv(ch, &v, WEFT_DEADLINE_NONE);
	/* No tail call: parked_body keeps its frame while parked. */
	__asm__ volatile("" ::: "memory");
	return NULL;
}

static void *
gdb_main(void *unused)
{
	static struct weft_task *t[PARKED];
	int ready = 0;

	(void)unused;
	if (weft_chan_make(&ch, sizeof(int), 0))
		return (void *)1;
	for (int i = 0; i < PARKED; i++) {
		struct weft_spawn_opts o = { .name = "parked" };

		if (weft_spawn(&t[i], parked_body, NULL, &o))
			return (void *)1;
	}
	first_id = weft_task_id(t[0]);
	/* Until every one has parked (a state to reach, polled). */
	while (ready < PARKED) {
		weft_sleep(WEFT_MSEC);
		for (ready = 0; ready < PARKED; ready++)
			if (weft_task_state(t[ready]) != WEFT_SUSPENDED)
				break;
	}
	raise(SIGTRAP);
	weft_chan_close(ch);
	for (int i = 0; i < PARKED; i++)
		weft_join(t[i], NULL, WEFT_DEADLINE_NONE);
	weft_chan_release(ch);
	return NULL;
}

int
main(void)
{
	void *r = NULL;
	int ret = weft_run(gdb_main, NULL, NULL, &r);

	if (ret || r) {
		fprintf(stderr, "gdb_parked: weft_run %d\n", ret);
		return 1;
	}
	return 0;
}
