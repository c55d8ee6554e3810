/* SPDX-License-Identifier: MIT */
/*
 * The http scenario's comparison servers (servers.c).  Includes no other
 * header of weft-bench.
 */
#ifndef WEFT_BENCH_SERVERS_H
#define WEFT_BENCH_SERVERS_H

/*
 * `weft-bench --serve threads|epoll`: run one of the http scenario's
 * comparison servers in the foreground (port 0: any free port) until
 * killed.  Returns the process's exit status.
 */
int http_serve(const char *kind, const char *host, int port, int workers);

#endif /* WEFT_BENCH_SERVERS_H */
