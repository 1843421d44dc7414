# shellcheck shell=bash
# lib.sh - helpers for the mmsbfs integration tests (sourced, never run).
#
# A test script does:
#   source "$(dirname "$0")/lib.sh"
#   lib_init "$@"            # parses MMSBFS from $1, skips (77) without root or /dev/fuse,
#                            # makes $TEST_TMP, $STORE, $MNT, installs the cleanup trap
#   mnt_mount [-o opt ...]   # mmsbfs STORE MNT (daemon mode: returns once mounted)
#   mnt_mount_fg [-o ...]    # mmsbfs -f in the background ($DAEMON_PID), waits for the mount
#   mnt_umount               # fusermount3 -u, waits for the daemon to exit
#   section NAME             # runs the function NAME in a subshell, records PASS/FAIL
#   lib_finish               # prints the summary, exits 1 if any section failed
#
# Environment: MMSB_TEST_KEEP=1 keeps $TEST_TMP after the test; MMSB_TEST_WATCHDOG=SEC
# bounds the whole script (default 240 s): when it fires the mount is detached and the
# daemon killed, so a hung file system turns into a clear failure instead of a hang.

set -euo pipefail
export LC_ALL=C

PY=/usr/bin/python3
FUSE_SUPER_MAGIC=65735546 # statfs f_type of a FUSE mount, as stat -f -c %t prints it
MMSBFS=""
TEST_NAME=$(basename "$0" .sh)
TEST_TMP=""
STORE=""
MNT=""
DAEMON_PID=""   # pid of the current daemon (fg: our child; daemon mode: found in /proc)
DAEMON_FG=0     # 1 when DAEMON_PID is our child (mmsbfs -f)
DAEMON_LOG=""
MOUNT_COUNT=0
MOUNT_ARGS=()   # how the current mount was made: mnt_mount|mnt_mount_fg and its options
MOUNT_UP=0      # 1 between a mount and its unmount/kill
MOUNT_SOFT=0    # 1: mnt_mount_fg returns 1 when the daemon exits before mounting (no fail)
SECTIONS_PASSED=()
SECTIONS_FAILED=()
SECTIONS_SKIPPED=()
WATCHDOG_PID=""

# ---- messages ---------------------------------------------------------------

log() { printf '%s: %s\n' "$TEST_NAME" "$*" >&2; }

# fail MESSAGE...: print a clear failure (what was expected, what was seen) and exit 1.
fail() {
	printf '%s: FAIL: %s\n' "$TEST_NAME" "$*" >&2
	exit 1
}

skip() {
	printf '%s: SKIP: %s\n' "$TEST_NAME" "$*" >&2
	exit 77
}

# expect_eq WHAT EXPECTED GOT
expect_eq() {
	if [[ "$2" != "$3" ]]; then
		fail "$1: expected '$2', got '$3'"
	fi
}

# expect_fail_errno WHAT ERRTEXT CMD...: CMD must fail and its stderr mention ERRTEXT
# (e.g. "Read-only file system").
expect_fail_msg() {
	local what=$1 want=$2 out rc
	shift 2
	set +e
	out=$("$@" 2>&1)
	rc=$?
	set -e
	if [[ $rc -eq 0 ]]; then
		fail "$what: expected failure with '$want', but '$*' succeeded (output: $out)"
	fi
	if [[ "$out" != *"$want"* ]]; then
		fail "$what: expected failure with '$want', got rc=$rc output: $out"
	fi
}

# same_file WHAT EXPECTED_FILE GOT_FILE: cmp, with the first differing byte on failure.
same_file() {
	local what=$1 exp=$2 got=$3 out
	if ! out=$(cmp -- "$exp" "$got" 2>&1); then
		fail "$what: $got differs from expected $exp: $out (sizes: expected $(stat -c %s -- "$exp" 2>&1), got $(stat -c %s -- "$got" 2>&1))"
	fi
}

# ---- set-up -------------------------------------------------------------------

require_fuse() {
	[[ $(id -u) -eq 0 ]] || skip "needs root (mounts a FUSE file system)"
	[[ -c /dev/fuse ]] || skip "/dev/fuse is missing"
	command -v fusermount3 >/dev/null || skip "fusermount3 is not installed"
}

lib_init() {
	MMSBFS=${1:-${MMSBFS:-}}
	require_fuse
	[[ -n "$MMSBFS" ]] || fail "usage: $0 PATH/TO/mmsbfs"
	[[ -x "$MMSBFS" ]] || fail "mmsbfs binary '$MMSBFS' is not executable"
	MMSBFS=$(realpath "$MMSBFS") # meson passes a path relative to the build directory
	[[ -x "$PY" ]] || skip "$PY is missing"
	if ! command -v getfattr >/dev/null || ! command -v setfattr >/dev/null; then
		skip "getfattr/setfattr (package attr) are missing"
	fi
	TEST_TMP=$(mktemp -d "/tmp/mmsb-$TEST_NAME.XXXXXX")
	chmod 0755 "$TEST_TMP" # other users (permission checks) must reach the mount point
	STORE=$TEST_TMP/store
	MNT=$TEST_TMP/mnt
	mkdir -p "$MNT"
	: >"$TEST_TMP/daemon-pids"
	trap lib_cleanup EXIT
	trap 'log "caught signal, cleaning up"; exit 143' TERM INT HUP
	lib_watchdog "${MMSB_TEST_WATCHDOG:-240}"
	log "tmp=$TEST_TMP mmsbfs=$MMSBFS"
}

lib_watchdog() {
	local limit=$1 mnt=$MNT pids=$TEST_TMP/daemon-pids name=$TEST_NAME
	(
		trap - EXIT
		# sleep in the background so that a TERM from lib_cleanup ends us at once
		sleep "$limit" &
		sp=$!
		trap 'kill "$sp" 2>/dev/null; exit 0' TERM
		wait "$sp"
		printf '%s: FAIL: WATCHDOG: still running after %s s; detaching %s and killing the daemon\n' \
			"$name" "$limit" "$mnt" >&2
		while read -r p; do kill -9 "$p" 2>/dev/null || true; done <"$pids"
		fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	) </dev/null >&2 &
	WATCHDOG_PID=$!
}

is_mounted() { # is_mounted [DIR]: a mount is on DIR
	local d=${1:-$MNT}
	awk -v m="$d" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

mount_count() { # number of mounts stacked on DIR
	local d=${1:-$MNT}
	awk -v m="$d" '$5 == m { n++ } END { print n + 0 }' /proc/self/mountinfo
}

# Pids of processes whose argv[0] ends in NAME and whose last argument is DIR.
find_pids_by_mnt() {
	local name=$1 dir=$2 p args last
	for p in /proc/[0-9]*; do
		[[ -r $p/cmdline ]] || continue
		mapfile -d '' -t args <"$p/cmdline" 2>/dev/null || continue
		((${#args[@]} >= 2)) || continue
		[[ ${args[0]} == *"$name" ]] || continue
		last=${args[${#args[@]} - 1]}
		[[ $last == "$dir" ]] && echo "${p#/proc/}"
	done
	return 0
}

dump_daemon_log() {
	if [[ -n "$DAEMON_LOG" && -s "$DAEMON_LOG" ]]; then
		log "---- last lines of daemon log $DAEMON_LOG ----"
		tail -n 40 "$DAEMON_LOG" >&2 || true
		log "----"
	fi
}

# mnt_try_mount [mmsbfs options...]: daemon mode, where a refusal is an
# expected outcome: MOUNT_RC is mmsbfs's exit status and MOUNT_OUT the first
# 2000 bytes of its output; on exit 0 the daemon is adopted, as mnt_mount does.
mnt_try_mount() {
	MOUNT_ARGS=(mnt_mount "$@")
	MOUNT_COUNT=$((MOUNT_COUNT + 1))
	DAEMON_LOG=$TEST_TMP/daemon.$MOUNT_COUNT.log
	# Output to a file, not a pipe: a daemon that kept the pipe open would hang $(...).
	set +e
	timeout 30 "$MMSBFS" "$@" "$STORE" "$MNT" </dev/null >"$DAEMON_LOG" 2>&1
	MOUNT_RC=$?
	set -e
	MOUNT_OUT=$(head -c 2000 "$DAEMON_LOG")
	((MOUNT_RC == 0)) || return 0
	is_mounted || fail "mount: mmsbfs returned 0 but $MNT is not a mount point yet (the parent must wait for the mount)"
	DAEMON_FG=0
	DAEMON_PID=$(find_pids_by_mnt "$(basename "$MMSBFS")" "$MNT" | head -n 1)
	[[ -n "$DAEMON_PID" ]] || fail "mount: cannot find the mmsbfs daemon process for $MNT"
	echo "$DAEMON_PID" >>"$TEST_TMP/daemon-pids"
	MOUNT_UP=1
}

# mnt_mount [mmsbfs options...]: daemon mode; must return only once the mount is usable.
mnt_mount() {
	mnt_try_mount "$@"
	((MOUNT_RC == 0)) || fail "mount: expected '$MMSBFS $* $STORE $MNT' to exit 0, got $MOUNT_RC: $MOUNT_OUT"
	# The mount must answer at once.
	stat "$MNT" >/dev/null || fail "mount: stat $MNT failed right after mmsbfs returned"
}

# mnt_mount_fg [mmsbfs options...]: mmsbfs -f in the background; stderr to $DAEMON_LOG.
mnt_mount_fg() {
	local i
	MOUNT_ARGS=(mnt_mount_fg "$@")
	MOUNT_COUNT=$((MOUNT_COUNT + 1))
	DAEMON_LOG=$TEST_TMP/daemon.$MOUNT_COUNT.log
	"$MMSBFS" -f "$@" "$STORE" "$MNT" </dev/null >"$DAEMON_LOG" 2>&1 &
	DAEMON_PID=$!
	DAEMON_FG=1
	echo "$DAEMON_PID" >>"$TEST_TMP/daemon-pids"
	for ((i = 0; i < 300; i++)); do
		if ! pid_alive "$DAEMON_PID"; then
			local rc=0
			wait "$DAEMON_PID" || rc=$?
			DAEMON_PID=""
			dump_daemon_log
			if ((MOUNT_SOFT)); then
				log "FAIL: mount: 'mmsbfs -f $* $STORE $MNT' exited with status $rc before mounting"
				return 1
			fi
			fail "mount: 'mmsbfs -f $* $STORE $MNT' exited with status $rc before mounting"
		fi
		# statfs always reaches the daemon (stat may be answered from the attribute
		# cache, even by a stale mount still sitting on $MNT), and it must be a FUSE
		# file system that answers: while the daemon swaps a stale mount for its own,
		# statfs reaches the plain directory underneath for a moment.
		if is_mounted && [[ $(stat -f -c %t "$MNT" 2>/dev/null) == "$FUSE_SUPER_MAGIC" ]]; then
			MOUNT_UP=1
			return 0
		fi
		sleep 0.05
	done
	dump_daemon_log
	fail "mount: $MNT not mounted 15 s after starting mmsbfs -f"
}

# pid_alive PID: running and not a zombie.
pid_alive() {
	local st
	kill -0 "$1" 2>/dev/null || return 1
	st=$(awk '{ sub(/.*\) /, ""); print substr($0, 1, 1) }' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# Wait until pid is gone (up to $2 seconds); returns 1 on timeout.
wait_pid_gone() {
	local pid=$1 limit=${2:-30} i
	for ((i = 0; i < limit * 20; i++)); do
		pid_alive "$pid" || return 0
		sleep 0.05
	done
	return 1
}

# mnt_umount: clean unmount; the daemon must exit (status 0 for -f) and release the store.
mnt_umount() {
	local out rc=0 i
	if ((MOUNT_UP)) && ! mount_alive; then
		# Already recorded by section(); clear the dead mount so the test can go on.
		log "FAIL: unmount: the daemon ${DAEMON_PID:-?} is already dead; detaching $MNT"
		dump_daemon_log
		SECTIONS_FAILED+=("unmount(daemon dead)")
		if [[ $DAEMON_FG -eq 1 && -n "$DAEMON_PID" ]]; then wait "$DAEMON_PID" 2>/dev/null || true; fi
		fusermount3 -u -z "$MNT" 2>/dev/null || true
		DAEMON_PID=""
		MOUNT_UP=0
		return 0
	fi
	MOUNT_UP=0
	for ((i = 0; i < 20; i++)); do
		out=$(fusermount3 -u "$MNT" 2>&1) && break
		[[ $out == *busy* ]] || fail "unmount: fusermount3 -u $MNT failed: $out"
		sleep 0.25 # a process that just exited may still hold the mount busy
	done
	((i < 20)) || fail "unmount: fusermount3 -u $MNT still busy after 5 s: $out"
	if [[ -n "$DAEMON_PID" ]]; then
		if [[ $DAEMON_FG -eq 1 ]]; then
			for ((i = 0; i < 600; i++)); do
				pid_alive "$DAEMON_PID" || break
				sleep 0.05
			done
			if pid_alive "$DAEMON_PID"; then
				dump_daemon_log
				fail "unmount: daemon $DAEMON_PID still running 30 s after fusermount3 -u"
			fi
			wait "$DAEMON_PID" || rc=$?
			if [[ $rc -ne 0 ]]; then
				dump_daemon_log
				fail "unmount: expected mmsbfs -f to exit 0 after a clean unmount, got $rc"
			fi
		else
			wait_pid_gone "$DAEMON_PID" 30 || fail "unmount: daemon $DAEMON_PID still running 30 s after fusermount3 -u"
		fi
	fi
	DAEMON_PID=""
	is_mounted && fail "unmount: $MNT still mounted after fusermount3 -u"
	return 0
}

# mnt_kill9: kill -9 the daemon (no clean shutdown) and reap it.
mnt_kill9() {
	MOUNT_UP=0
	[[ -n "$DAEMON_PID" ]] || fail "kill9: no daemon running"
	kill -9 "$DAEMON_PID" 2>/dev/null || true
	if [[ $DAEMON_FG -eq 1 ]]; then
		wait "$DAEMON_PID" 2>/dev/null || true
	else
		wait_pid_gone "$DAEMON_PID" 10 || fail "kill9: daemon $DAEMON_PID survived kill -9"
	fi
	DAEMON_PID=""
}

# head_epoch [DIR]: the store's head epoch through the root xattr.
head_epoch() {
	local v
	v=$(getfattr --absolute-names -n user.mmsb.head --only-values "${1:-$MNT}") ||
		fail "getfattr -n user.mmsb.head ${1:-$MNT} failed"
	[[ $v =~ ^[0-9]+$ ]] || fail "user.mmsb.head: expected a decimal number, got '$v'"
	printf '%s' "$v"
}

# xattr_value NAME PATH
xattr_value() {
	getfattr --absolute-names -n "$1" --only-values "$2"
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches || fail "cannot write /proc/sys/vm/drop_caches"
}

# gen_data SEED SIZE FILE: deterministic pseudo-random bytes.
gen_data() {
	"$PY" - "$1" "$2" "$3" <<'EOF'
import random, sys
seed, size, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(path, "wb") as f:
    f.write(random.Random(seed).randbytes(size))
EOF
}

# ---- sections -----------------------------------------------------------------

# mount_alive: the mount made last is still served by its daemon.
mount_alive() {
	[[ -n "$DAEMON_PID" ]] && pid_alive "$DAEMON_PID" && is_mounted && [[ $(stat -f -c %t "$MNT" 2>/dev/null) == "$FUSE_SUPER_MAGIC" ]]
}

# section NAME: run function NAME in a subshell with errexit, record the result.  A
# function may call `skip_section REASON` to be recorded as skipped.  Sections never
# run on a dead mount (they would silently test the empty directory underneath): when
# the daemon died, the store is mounted again the same way first.
section() {
	local name=$1 rc=0 t0 t1
	t0=$(date +%s.%N)
	log "==== $name"
	if ((MOUNT_UP)) && ! mount_alive; then
		log "the mount is dead before $name (daemon ${DAEMON_PID:-?} gone); mounting the store again"
		dump_daemon_log
		if [[ -n "$DAEMON_PID" ]] && pid_alive "$DAEMON_PID"; then kill -9 "$DAEMON_PID" 2>/dev/null || true; fi
		[[ $DAEMON_FG -eq 1 && -n "$DAEMON_PID" ]] && { wait "$DAEMON_PID" 2>/dev/null || true; }
		DAEMON_PID=""
		fusermount3 -u -z "$MNT" 2>/dev/null || true
		"${MOUNT_ARGS[@]}"
	fi
	set +e
	(
		set -Eeuo pipefail
		trap - EXIT
		# A plain command failing under errexit: say which one and where.
		# shellcheck disable=SC2154 # st_ is set inside the trap
		trap 'st_=$?; [[ $- == *e* ]] && log "FAIL: command exited with status $st_ at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND"' ERR
		"$name"
	)
	rc=$?
	set -e
	t1=$(date +%s.%N)
	local dt
	dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	case $rc in
	0) SECTIONS_PASSED+=("$name"); log "PASS $name (${dt}s)" ;;
	77) SECTIONS_SKIPPED+=("$name"); log "SKIP $name" ;;
	*) SECTIONS_FAILED+=("$name"); log "FAIL $name (status $rc, ${dt}s)"; dump_daemon_log ;;
	esac
	if ((MOUNT_UP)) && ! mount_alive; then
		log "FAIL: the daemon ${DAEMON_PID:-?} died or the mount went away during $name"
		[[ " ${SECTIONS_FAILED[*]} " == *" $name "* ]] || SECTIONS_FAILED+=("$name(daemon died)")
	fi
	return 0
}

skip_section() {
	log "skipping: $*"
	exit 77
}

lib_finish() {
	log "passed: ${SECTIONS_PASSED[*]:-none}"
	((${#SECTIONS_SKIPPED[@]} == 0)) || log "skipped: ${SECTIONS_SKIPPED[*]}"
	if ((${#SECTIONS_FAILED[@]} > 0)); then
		log "FAILED: ${SECTIONS_FAILED[*]}"
		exit 1
	fi
	if ((${#SECTIONS_PASSED[@]} == 0)); then
		exit 77
	fi
	exit 0
}

# ---- cleanup ------------------------------------------------------------------

# cleanup_add PATH: remove PATH at exit (moved into $TEST_TMP when the test failed).
cleanup_add() { echo "$1" >>"$TEST_TMP/cleanup-paths"; }

lib_cleanup() {
	local rc=$? p
	set +e
	trap - EXIT TERM INT HUP
	if [[ -n "$WATCHDOG_PID" ]]; then
		kill "$WATCHDOG_PID" 2>/dev/null
		wait "$WATCHDOG_PID" 2>/dev/null
	fi
	if [[ -n "$MNT" ]] && is_mounted "$MNT"; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	fi
	if [[ -n "$TEST_TMP" && -f "$TEST_TMP/daemon-pids" ]]; then
		while read -r p; do
			[[ -n "$p" ]] || continue
			if pid_alive "$p" && ! wait_pid_gone "$p" 10; then
				log "cleanup: daemon $p did not exit after unmount; killing it"
				kill -9 "$p" 2>/dev/null
			fi
		done <"$TEST_TMP/daemon-pids"
	fi
	# Stacked stale mounts (e.g. after kill -9 tests).
	while [[ -n "$MNT" ]] && is_mounted "$MNT"; do
		umount -l "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || break
	done
	if [[ -n "$TEST_TMP" && -s "$TEST_TMP/cleanup-paths" ]]; then
		while read -r p; do
			[[ -n "$p" && -e "$p" ]] || continue
			if [[ $rc -ne 0 && $rc -ne 77 ]]; then
				mv "$p" "$TEST_TMP/" 2>/dev/null || rm -rf "$p"
			else
				rm -rf "$p"
			fi
		done <"$TEST_TMP/cleanup-paths"
	fi
	if [[ -n "$TEST_TMP" && -d "$TEST_TMP" ]]; then
		if is_mounted "$MNT"; then
			log "cleanup: $MNT is still mounted; leaving $TEST_TMP"
		elif [[ ${MMSB_TEST_KEEP:-0} == 1 ]]; then
			log "kept $TEST_TMP"
		elif [[ $rc -ne 0 && $rc -ne 77 ]]; then
			# Keep the evidence of a failure, but not the big store.
			log "failed (status $rc): daemon logs kept in $TEST_TMP"
			rm -rf "${TEST_TMP:?}/store" "${TEST_TMP:?}/mnt" 2>/dev/null
		else
			rm -rf "${TEST_TMP:?}"
		fi
	fi
	exit "$rc"
}
