/* SPDX-License-Identifier: MIT */
/*
 * The scenario bodies (spawn.c, yield.c, park.c, sleep.c, fanout.c,
 * http.c, proxy.c, chan.c, skynet.c, mutex.c), for main.c's scenario
 * table.
 * Includes bench.h only.
 */
#ifndef WEFT_BENCH_SCENARIOS_H
#define WEFT_BENCH_SCENARIOS_H

#include "bench.h"

/*
 * Scenario bodies, one file each.  A NULL entry in the scenario table means
 * the implementation is not meaningful for that workload.
 */
int spawn_threads(const struct bench_cfg *cfg);
int spawn_processes(const struct bench_cfg *cfg);
int spawn_weft(const struct bench_cfg *cfg);
int yield_threads(const struct bench_cfg *cfg);
int yield_processes(const struct bench_cfg *cfg);
int yield_weft(const struct bench_cfg *cfg);
int park_threads(const struct bench_cfg *cfg);
int park_weft(const struct bench_cfg *cfg);
int sleep_threads(const struct bench_cfg *cfg);
int sleep_processes(const struct bench_cfg *cfg);
int sleep_weft(const struct bench_cfg *cfg);
int fanout_threads(const struct bench_cfg *cfg);
int fanout_weft(const struct bench_cfg *cfg);
int http_threads(const struct bench_cfg *cfg);
int http_epoll(const struct bench_cfg *cfg);
int http_epoll_mt(const struct bench_cfg *cfg);
int http_nginx(const struct bench_cfg *cfg);
int http_go(const struct bench_cfg *cfg);
int http_weft(const struct bench_cfg *cfg);
int http_weft_procs(const struct bench_cfg *cfg);
int http_weft_procs_rp(const struct bench_cfg *cfg);
int proxy_threads(const struct bench_cfg *cfg);
int proxy_nginx(const struct bench_cfg *cfg);
int proxy_go(const struct bench_cfg *cfg);
int proxy_weft(const struct bench_cfg *cfg);
int proxy_haproxy(const struct bench_cfg *cfg);
int chan_threads(const struct bench_cfg *cfg);
int chan_go(const struct bench_cfg *cfg);
int chan_weft(const struct bench_cfg *cfg);
int skynet_threads(const struct bench_cfg *cfg);
int skynet_go(const struct bench_cfg *cfg);
int skynet_weft(const struct bench_cfg *cfg);
int mutex_threads(const struct bench_cfg *cfg);
int mutex_weft(const struct bench_cfg *cfg);

#endif /* WEFT_BENCH_SCENARIOS_H */
