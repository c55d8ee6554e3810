/* SPDX-License-Identifier: MIT */
/*
 * The http scenario's comparison servers and the proxy scenario's thread
 * proxy (servers.c).  Includes no other
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

/*
 * `weft-bench --serve-proxy threads --upstream HOST:PORT`: the proxy
 * scenario's thread-per-direction TCP proxy on host:port (0: any free
 * port), in the foreground until killed.  Prints
 * "weft-bench-proxy-threads: listening on HOST:PORT" once it listens.
 * Returns the process's exit status.
 */
int proxy_serve(const char *kind, const char *host, int port,
		const char *upstream);

#endif /* WEFT_BENCH_SERVERS_H */
