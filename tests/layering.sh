#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The layering test: fails when an #include crosses a layer the wrong way.
#
#   sh tests/layering.sh            check the tree
#   sh tests/layering.sh ROOT       check another copy of it
#
# The layers, bottom up (HACKING.md, "Layers"):
#
#   io/       the backends and what every layer shares (io/base.h); it
#             includes no header of sched/ or runtime/
#   sched/    the core; its seam for the layers above is sched/park.h, its
#             private header sched/sched.h; it includes no runtime/ header
#   runtime/  what users touch; it includes sched/park.h, io/ and its own
#             headers, and sched/sched.h only in runtime/run.c, the
#             composition root
#   cmd/      programs: the public header and their own folder's headers
#   include/  weft.h: nothing internal
#
# tests/ may include anything.  Both "..." and <...> spellings are checked.
# Before checking the tree the script checks itself: it copies the tree,
# adds one wrong include per rule and expects each copy to fail.

set -u

root=$(cd "$(dirname "$0")/.." && pwd)

# includes FILE: the headers FILE includes as "...", and those it includes
# as <...> under a folder of the tree, one a line.
includes() {
	sed -n -e 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' \
	    -e 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*<\(\(io\|sched\|runtime\|cmd\|include\)\/[^>]*\)>.*/\1/p' \
	    "$1"
}

# check DIR: print every violation under DIR, return 1 if there was one.
check() {
	dir=$1
	bad=0
	for f in $(cd "$dir" && find io sched runtime cmd include \
			-name '*.[chS]' 2>/dev/null | sort); do
		layer=${f%%/*}
		fdir=$(dirname "$f")
		for inc in $(includes "$dir/$f"); do
			case $inc in
			io/* | sched/* | runtime/* | cmd/* | include/* | *.h) ;;
			*) continue ;;
			esac
			why=""
			case $layer:$inc in
			io:io/*) ;;
			io:include/weft.h) ;;
			io:sched/* | io:runtime/*)
				why="io/ is the bottom layer" ;;
			sched:sched/* | sched:io/* | sched:include/weft.h) ;;
			sched:runtime/*)
				why="the core includes nothing of runtime/" ;;
			runtime:sched/sched.h)
				[ "$f" = runtime/run.c ] ||
				why="only the core and runtime/run.c include the core's private header" ;;
			runtime:sched/park.h | runtime:sched/ctx.h) ;;
			runtime:sched/*)
				why="runtime/ reaches the core through sched/park.h" ;;
			runtime:runtime/* | runtime:io/* | runtime:include/weft.h) ;;
			cmd:include/weft.h | cmd:weft.h) ;;
			cmd:*/*)
				why="programs use only the public header" ;;
			cmd:*)
				[ -f "$dir/$fdir/$inc" ] ||
				why="programs use only the public header and their own headers" ;;
			include:*)
				why="the public header includes nothing internal" ;;
			*:*.h)
				# A bare name: a header beside the file.
				[ -f "$dir/$fdir/$inc" ] ||
				why="not a header of this folder" ;;
			esac
			if [ -n "$why" ]; then
				echo "layering: $f includes $inc: $why"
				bad=1
			fi
		done
	done
	return $bad
}

if [ $# -gt 0 ]; then
	check "$1"
	exit $?
fi

# The check must be able to fail: one wrong include per rule, each in a
# fresh copy of the tree.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
selftest_failed=0
for case in \
	'io/epoll.c sched/sched.h' \
	'io/io.h runtime/runtime.h' \
	'sched/worker.c runtime/future.h' \
	'runtime/chan.c sched/sched.h' \
	'runtime/chan.c sched/stack.c' \
	'cmd/weft-echo/main.c sched/park.h' \
	'include/weft.h io/base.h'; do
	set -- $case
	rm -rf "$tmp/tree"
	mkdir -p "$tmp/tree"
	(cd "$root" && tar cf - io sched runtime cmd include) |
		(cd "$tmp/tree" && tar xf -)
	printf '#include "%s"\n' "$2" >> "$tmp/tree/$1"
	if check "$tmp/tree" > "$tmp/out"; then
		echo "layering: self-test: '#include \"$2\"' in $1 was not caught"
		selftest_failed=1
	fi
done
[ "$selftest_failed" -eq 0 ] || exit 1
echo "layering: self-test: 7 wrong includes caught"

if check "$root"; then
	echo "layering: every include goes down a layer"
	exit 0
fi
exit 1
