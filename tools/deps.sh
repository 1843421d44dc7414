#!/bin/sh
# deps.sh - install the Debian packages MMSB needs, only those missing, and
# define phase() and quiet().  Sourced by mmsb-up and mmsb-test; needs root
# (or sudo) for apt-get.  apt-get waits up to 5 minutes for the dpkg lock
# (another apt, unattended-upgrades) instead of failing at once.
set -e

# phase TEXT: say, in one line, what comes next
phase() {
	echo "mmsb: $*"
}

# quiet COMMAND...: run it with its output kept aside; every 15 s while it
# runs, one line saying it still does (with ninja's [N/M] progress when it
# shows one); if it fails, show the last 60 lines of its output and stop
# with status 1
quiet() {
	qlog=$(mktemp "${TMPDIR:-/tmp}/mmsb-quiet.XXXXXX")
	"$@" >"$qlog" 2>&1 &
	qpid=$!
	qt=0
	while kill -0 "$qpid" 2>/dev/null; do
		sleep 1
		qt=$((qt + 1))
		if [ $((qt % 15)) -eq 0 ]; then
			qprog=$(grep -o '^\[[0-9]*/[0-9]*\]' "$qlog" 2>/dev/null | tail -n 1 || true)
			echo "mmsb:   ... ${qt}s ${qprog}"
		fi
	done
	if ! wait "$qpid"; then
		tail -n 60 "$qlog"
		rm -f "$qlog"
		echo "mmsb: failed: $*" >&2
		exit 1
	fi
	rm -f "$qlog"
}

# systemd: systemd-analyze verifies the unit in the fuse tests; util-linux:
# mount, unshare, setpriv, flock
MMSB_PKGS="meson ninja-build pkg-config gcc clang libclang-rt-14-dev libfuse3-dev fuse3 \
libxxhash-dev liblz4-dev libcmocka-dev attr python3 fio rsync systemd util-linux"
missing=""
for p in $MMSB_PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	APT="$SUDO apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3"
	phase "installing Debian packages:$missing (waits up to 5 min for another apt to finish)"
	# shellcheck disable=SC2086 # APT and missing are word lists
	quiet $APT update -qq
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	quiet $APT install -y -qq $missing
else
	phase "Debian packages: all present"
fi
