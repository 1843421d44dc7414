#!/bin/sh
# deps.sh - install the Debian packages MMSB needs, only those missing, and
# define quiet(). Sourced by mmsb-up and mmsb-test; needs root (or sudo) for
# apt-get.
set -e

# quiet COMMAND...: run it; show its output (the last 60 lines) only if it
# fails, and then stop with status 1
quiet() {
	out=$("$@" 2>&1) || { printf '%s\n' "$out" | tail -n 60; echo "mmsb: failed: $*" >&2; exit 1; }
}

MMSB_PKGS="meson ninja-build pkg-config gcc clang libclang-rt-14-dev libfuse3-dev fuse3 \
libxxhash-dev liblz4-dev libcmocka-dev attr python3 fio rsync"
missing=""
for p in $MMSB_PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "mmsb: installing:$missing"
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
