#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the churn stress program (random spawn/join/cancel/detach trees) for a
# few seeds and worker counts, bounded in time.  Under the sanitizers the
# iteration count is smaller (TSan keeps ~1 MB per live fiber).
set -u
BUILD=${BUILD:-build}
bin=$BUILD/tests/stress_churn
iters=300
case "${SAN:-}" in
thread) iters=20 ;;
address) iters=60 ;;
esac
[ -x "$bin" ] || { echo "FAIL stress_churn: $bin missing"; exit 1; }
for w in 1 2 4; do
	for seed in 1 2 3; do
		if ! timeout 120 "$bin" "$w" "$iters" "$seed" >/dev/null 2>&1; then
			echo "FAIL stress_churn: workers $w seed $seed" \
			     "(rerun: $bin $w $iters $seed)"
			exit 1
		fi
	done
done
echo "PASS stress_churn (3 worker counts x 3 seeds, $iters iterations)"
