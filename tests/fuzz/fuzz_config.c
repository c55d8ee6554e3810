/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for weft-proxy's configuration parser: any bytes go to
 * px_config_parse(), and whatever it built is freed.  Errors are written
 * to /dev/null (opened once), so the error paths and their formatting run
 * too.  Seeds: tests/fuzz/corpus/config/.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
 *	-Iinclude tests/fuzz/fuzz_config.c cmd/weft-proxy/config.c
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cmd/weft-proxy/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *null;
	struct px_config cfg;
	int ret;

	if (!null) {
		null = fopen("/dev/null", "w");
		if (!null)
			abort();
	}
	ret = px_config_parse("fuzz", (const char *)data, size, &cfg, null);
	if (ret == 0) {
		/* A configuration that parsed holds what config.h promises. */
		if (cfg.nlisteners < 1 || cfg.npools < 1)
			abort();
		for (int i = 0; i < cfg.nlisteners; i++)
			if (cfg.listeners[i].pool < 0 ||
			    cfg.listeners[i].pool >= cfg.npools)
				abort();
		for (int i = 0; i < cfg.npools; i++)
			if (cfg.pools[i].nservers < 1)
				abort();
		px_config_free(&cfg);
	}
	return 0;
}
