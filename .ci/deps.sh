#!/bin/sh
# Installs the Debian packages weft needs when they are missing: as root with
# apt-get, otherwise it prints the exact command and fails.
set -u
need=""
pkg-config --version >/dev/null 2>&1 || need="$need pkg-config"
if command -v pkg-config >/dev/null 2>&1; then
	pkg-config --exists liburing || need="$need liburing-dev"
	pkg-config --exists ck || need="$need libck-dev"
	pkg-config --exists check || need="$need check"
else
	need="$need liburing-dev libck-dev check"
fi
# The end-to-end tests drive the example servers with Python clients.
command -v python3 >/dev/null 2>&1 || need="$need python3"
[ -n "${WEFT_DEPS_EXTRA:-}" ] && for p in $WEFT_DEPS_EXTRA; do
	dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "deps: installing$need"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null && apt-get install -y -qq $need >/dev/null \
		|| { echo "deps: apt-get install$need failed" >&2; exit 1; }
else
	echo "deps: missing Debian packages:$need" >&2
	echo "deps: run: sudo apt-get install -y$need" >&2
	exit 1
fi
