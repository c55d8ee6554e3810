#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The install, as a user meets it: `make install DESTDIR=STAGE` (twice: the
# default libdir and a multiarch one), then README's example built with
# pkg-config only (the staged prefix given by --define-variable) in three
# ways - dynamic with an rpath, libweft.a through weft-static.pc, and fully
# -static - each run and checked for its output and for which libweft it
# loaded; `pkg-config --cflags weft` carries no -D flags of ck.pc; README's
# buffered-I/O and signal example compiles; and `make uninstall` removes
# every installed file.  Skipped (77) under a sanitizer: the staged
# libraries would be instrumented.  Prints one PASS/FAIL line.
set -u

name=install
root=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}

fail() {
	echo "FAIL $name: $*"
	exit 1
}

if [ -n "${SAN:-}" ]; then
	echo "SKIP $name: not under a sanitizer (SAN=$SAN)"
	exit 77
fi
command -v pkg-config >/dev/null 2>&1 || fail "pkg-config not found"
CC=${CC:-cc}

tmp=$(mktemp -d) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT INT TERM

# example N: the Nth ```c block of README.md.
example() {
	awk -v want="$1" '
		/^```c$/ { n++; if (n == want) { on = 1; next } }
		/^```$/ { on = 0 }
		on { print }' "$root/README.md"
}

# example_with WORD: the ```c block of README.md that mentions WORD.
example_with() {
	awk -v word="$1" '
		/^```c$/ { on = 1; blk = ""; next }
		/^```$/ { if (on && index(blk, word)) { printf "%s", blk; exit }
			  on = 0 }
		on { blk = blk $0 "\n" }' "$root/README.md"
}

example 1 > "$tmp/app.c"
grep -q weft_run "$tmp/app.c" || fail "no example found in README.md"

# install_to STAGE LIBDIR: a staged install; sets pc (pkg-config command).
install_to() {
	stage=$1
	libdir=$2
	make -C "$root" -s --no-print-directory BUILD="$BUILD" \
		DESTDIR="$stage" prefix=/usr/local libdir="$libdir" install \
		> "$tmp/install.log" 2>&1 ||
		{ cat "$tmp/install.log"; fail "make install ($libdir)"; }
	pcdir=$stage$libdir/pkgconfig
	[ -f "$pcdir/weft.pc" ] || fail "no weft.pc in $pcdir"
	[ -f "$pcdir/weft-static.pc" ] || fail "no weft-static.pc in $pcdir"
	pc="env PKG_CONFIG_PATH=$pcdir pkg-config --define-variable=prefix=$stage/usr/local"
}

# run_app BIN WHAT: runs it, checks the example's line and status.
run_app() {
	out=$("$1") || fail "$2: exit status $? ($out)"
	[ "$out" = "child said 42" ] || fail "$2: printed '$out'"
}

check_install() {
	stage=$1
	libdir=$2
	install_to "$stage" "$libdir"
	sl=$stage$libdir

	[ "$($pc --variable=libdir weft)" = "$sl" ] ||
		fail "libdir is $($pc --variable=libdir weft), not $sl"
	cflags=$($pc --cflags weft)
	case $cflags in
	*-D*) fail "pkg-config --cflags weft leaks a define: $cflags" ;;
	esac

	# Dynamic, found through an rpath (README's advice).
	# shellcheck disable=SC2046
	$CC -o "$tmp/app_dyn" "$tmp/app.c" $($pc --cflags --libs weft) \
		-Wl,-rpath,"$sl" || fail "dynamic build ($libdir)"
	ldd "$tmp/app_dyn" | grep -q "libweft.so.0 => $sl/libweft.so.0" ||
		fail "app_dyn does not load $sl/libweft.so.0: $(ldd "$tmp/app_dyn")"
	run_app "$tmp/app_dyn" "dynamic ($libdir)"

	# libweft.a in a dynamic program.
	# shellcheck disable=SC2046
	$CC -o "$tmp/app_a" "$tmp/app.c" $($pc --cflags --libs weft-static) ||
		fail "weft-static build ($libdir)"
	! ldd "$tmp/app_a" | grep -q libweft ||
		fail "app_a loads libweft.so"
	run_app "$tmp/app_a" "weft-static ($libdir)"
}

check_install "$tmp/stage" /usr/local/lib
check_install "$tmp/stage2" /usr/local/lib/x86_64-linux-gnu

# Fully static, with the private libraries from --static.
# shellcheck disable=SC2046
$CC -static -o "$tmp/app_static" "$tmp/app.c" \
	$($pc --static --cflags --libs weft) 2> "$tmp/static.err" ||
	{ cat "$tmp/static.err"; fail "-static build"; }
ldd "$tmp/app_static" > "$tmp/ldd" 2>&1 &&
	fail "app_static is dynamic: $(cat "$tmp/ldd")"
run_app "$tmp/app_static" "-static"

# README's buffered-I/O and signal example compiles against the install.
{
	printf '#include <errno.h>\n#include <signal.h>\n#include <weft.h>\n'
	example_with weft_reader_make
	printf 'int main(void) { return weft_run(app, NULL, NULL, NULL); }\n'
} > "$tmp/lines.c"
grep -q weft_reader_make "$tmp/lines.c" || fail "no buffered-I/O example"
# shellcheck disable=SC2046
$CC -Wall -Werror -o "$tmp/lines" "$tmp/lines.c" \
	$($pc --cflags --libs weft-static) || fail "README's buffered-I/O example"

# And its deadline-scope example, around a stand-in for the work.
{
	printf '#include <errno.h>\n#include <stdio.h>\n#include <weft.h>\n'
	printf 'static int fetch_all(void *a) { (void)a; return weft_sleep(1); }\n'
	example_with weft_scope_enter
	printf 'int main(void) { return weft_run(crawl, NULL, NULL, NULL); }\n'
} > "$tmp/scope.c"
grep -q weft_scope_enter "$tmp/scope.c" || fail "no scope example"
# shellcheck disable=SC2046
$CC -Wall -Werror -o "$tmp/scope" "$tmp/scope.c" \
	$($pc --cflags --libs weft-static) || fail "README's scope example"
"$tmp/scope" || fail "README's scope example exits $?"

# uninstall removes every file install put there.
for s in "$tmp/stage:/usr/local/lib" \
	 "$tmp/stage2:/usr/local/lib/x86_64-linux-gnu"; do
	make -C "$root" -s --no-print-directory BUILD="$BUILD" \
		DESTDIR="${s%%:*}" prefix=/usr/local libdir="${s#*:}" \
		uninstall > "$tmp/uninstall.log" 2>&1 ||
		{ cat "$tmp/uninstall.log"; fail "make uninstall"; }
	left=$(find "${s%%:*}" \( -type f -o -type l \) | head -5)
	[ -z "$left" ] || fail "left after uninstall: $left"
done

echo "PASS $name"
