#!/bin/bash
# run_syscalls.sh MMSBFS TEST_SYSCALLS [TEST...]: mount a fresh store (mmsbfs -f) and run
# each test_syscalls test on it (one process per test, so that a daemon crash is pinned
# on the test that caused it: the store is then mounted again and the run goes on).
# Then unmount, mount the same store again (recovery) and check that the head epoch is
# unchanged and that the tests pass again on the recovered store (directories r2_*).
# Both mounts use -o allow_other (the tests also run as the user mmsbtest, created here if
# missing); the second adds nodev, so the device checks see both sides of it.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
lib_init "${1:-}"
TEST_SYSCALLS=${2:?usage: run_syscalls.sh MMSBFS TEST_SYSCALLS [TEST...]}
shift 2
[[ -x "$TEST_SYSCALLS" ]] || fail "test_syscalls binary '$TEST_SYSCALLS' is not executable"
TEST_SYSCALLS=$(realpath "$TEST_SYSCALLS")

if (($# > 0)); then
	TESTS=("$@")
else
	mapfile -t TESTS < <("$TEST_SYSCALLS" --list)
fi
((${#TESTS[@]} > 0)) || fail "no tests listed by $TEST_SYSCALLS --list"

FAILED=()

# the other user of the per-type checks (types_other)
if ! id -u mmsbtest >/dev/null 2>&1; then
	useradd --system --no-create-home --shell /usr/sbin/nologin mmsbtest ||
		fail "cannot create the test user mmsbtest (useradd)"
fi
MMSB_TEST_UID=$(id -u mmsbtest)
MMSB_TEST_GID=$(id -g mmsbtest)
export MMSB_TEST_UID MMSB_TEST_GID

# run_all PASS_NAME PREFIX
run_all() {
	local pass=$1 prefix=$2 t rc
	for t in "${TESTS[@]}"; do
		if ! mount_alive; then
			log "the mount is dead before $t; mounting the store again"
			mnt_umount # records the dead daemon, detaches
			if ! MOUNT_SOFT=1 mnt_mount_fg -o "$MNT_OPTS"; then
				log "FAIL: the store cannot be mounted again after the daemon died (recovery failed); going on with a new store"
				FAILED+=("$pass:recovery-after-$t")
				STORE=$TEST_TMP/store.$MOUNT_COUNT
				mnt_mount_fg -o "$MNT_OPTS"
			fi
		fi
		rc=0
		"$TEST_SYSCALLS" "$MNT" -p "$prefix" "$t" || rc=$?
		if ((rc != 0)); then
			FAILED+=("$pass:$t")
		fi
		if ! mount_alive; then
			log "FAIL: [$pass] test $t killed the daemon or the mount"
			dump_daemon_log
			[[ " ${FAILED[*]} " == *" $pass:$t "* ]] || FAILED+=("$pass:$t")
			FAILED+=("$pass:$t(daemon died)")
		fi
	done
}

chmod o+x "$TEST_TMP" # the other user walks to the mount point
MNT_OPTS=allow_other
mnt_mount_fg -o "$MNT_OPTS"
run_all first ""
h1=""
if mount_alive; then h1=$(head_epoch); fi
mnt_umount

MNT_OPTS=allow_other,nodev
mnt_mount_fg -o "$MNT_OPTS"
h2=$(head_epoch)
if [[ -n $h1 && "$h1" != "$h2" ]]; then
	log "FAIL: remount: expected head epoch $h1 (as before the clean unmount), got $h2"
	FAILED+=("remount-head")
fi
run_all remount r2_
mnt_umount

# mnt_umount records dead daemons in SECTIONS_FAILED
FAILED+=("${SECTIONS_FAILED[@]}")
if ((${#FAILED[@]} > 0)); then
	log "FAILED: ${FAILED[*]}"
	exit 1
fi
log "PASS: ${#TESTS[@]} tests, before and after a remount"
