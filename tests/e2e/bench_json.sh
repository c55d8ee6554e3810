#!/bin/sh
# SPDX-License-Identifier: MIT
#
# weft-bench's JSON output has the fixed shape other tools read:
#   {"results":[{"scenario":S,"impl":I,"metric":M,"value":V,"unit":U},...]}
# and, for every scenario it ran, rows for both "weft" and "threads".
# Runs `weft-bench --quick --only yield,spawn` (bounded by timeout 120, or
# 500 under a sanitizer) and prints one PASS/FAIL line; the exit status is
# non-zero on failure.
set -u

BUILD=${BUILD:-build}
bench=$BUILD/weft-bench
name=bench_json

fail() {
	echo "FAIL $name: $*"
	exit 1
}

[ -x "$bench" ] || fail "$bench not built"
command -v python3 >/dev/null 2>&1 || fail "python3 not found"

tmp=$(mktemp -d) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT INT TERM

# Under a sanitizer every fiber and thread costs milliseconds to make on
# these VMs (a weft spawn 3 ms, a thread 5 ms under TSan): give each run
# longer than weft-bench's 15 s default.
run_limit=15
total=120
if [ -n "${SAN:-}" ]; then
	run_limit=150
	total=500
fi
timeout $total "$bench" --quick --only yield,spawn --timeout $run_limit \
	--json "$tmp/out.json" >"$tmp/stdout" 2>"$tmp/stderr"
rc=$?
if [ $rc -ne 0 ]; then
	tail -n 20 "$tmp/stdout" "$tmp/stderr" >&2
	[ $rc -eq 124 ] && fail "weft-bench did not finish within $total s"
	fail "weft-bench exited with status $rc"
fi
[ -s "$tmp/out.json" ] || fail "no JSON written"

msg=$(python3 - "$tmp/out.json" 2>&1 <<'EOF'
import json
import numbers
import sys

with open(sys.argv[1]) as f:
    doc = json.load(f)
if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
    sys.exit('top level is not {"results": [...]}')
rows = doc["results"]
if not rows:
    sys.exit("no results")
seen = {}
for i, r in enumerate(rows):
    for key in ("scenario", "impl", "metric", "unit"):
        if not isinstance(r.get(key), str) or not r[key]:
            sys.exit("row %d: %r is not a non-empty string" % (i, key))
    v = r.get("value")
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        sys.exit("row %d: value %r is not a number" % (i, v))
    if not v > 0:
        sys.exit("row %d (%s/%s/%s): value %r is not positive"
                 % (i, r["scenario"], r["impl"], r["metric"], v))
    seen.setdefault(r["scenario"], set()).add(r["impl"])
want = {"yield", "spawn"}
if set(seen) != want:
    sys.exit("scenarios %s, expected %s" % (sorted(seen), sorted(want)))
for s, impls in sorted(seen.items()):
    for impl in ("weft", "threads"):
        if impl not in impls:
            sys.exit("scenario %s has no %s rows" % (s, impl))
print("%d rows" % len(rows))
EOF
) || fail "$msg"

echo "PASS $name ($msg)"
