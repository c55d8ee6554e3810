/* SPDX-License-Identifier: MIT */
/* weft-proxy: placeholder main while the modules land (replaced next). */
#include <stdio.h>
#include <string.h>

#include "cmd/weft-proxy/config.h"

int
main(int argc, char **argv)
{
	struct px_config cfg;
	int ret;

	if (argc == 4 && !strcmp(argv[1], "-t") && !strcmp(argv[2], "-c")) {
		ret = px_config_load(argv[3], &cfg, stderr);
		if (ret)
			return 1;
		printf("weft-proxy: configuration %s is valid\n", argv[3]);
		px_config_free(&cfg);
		return 0;
	}
	fprintf(stderr, "usage: weft-proxy -t -c FILE\n");
	return 2;
}
