#!/bin/bash
# test_ckpt_crash.sh MMSBFS MMSBCTL: kill -9 the daemon while it writes a checkpoint.
#
# A store of NF files of FMIB MiB of text-like data (LZ4 packs it, so a checkpoint takes
# a while) is mounted with automatic checkpoints off; `mmsbctl checkpoint` is started and
# a poller kills the daemon with SIGKILL at a chosen point of the checkpoint:
#   1. the store's first checkpoint, as soon as its temporary file (ckpt/.tmp-*, mmsb(5))
#      appears: recovery has no checkpoint at all, only the log;
#   2. a later checkpoint (a complete one exists, then two files were rewritten), once its
#      temporary file holds KILL_MIB MiB: recovery must ignore the half-written file;
#   3. another one, right after its file got its final name (the rename done, whatever
#      follows it not yet).
# Points 1 and 2 must land while the temporary file exists (checked on disk before the
# store is mounted again; a missed point fails the test: make the data bigger).  After
# every kill the store is mounted again and must hold:
#   - every committed write (head = the last epoch written, every file as written:
#     a write(2) is in the log before it returns, so killing the process loses nothing),
#   - time travel to every epoch recorded so far (epochs/E/...), byte for byte,
#   - no leftover temporary checkpoint file,
#   - a clean `mmsbctl verify`, and a store that takes writes and checkpoints.
# At the end a clean unmount (checkpoint at close) and a last mount check everything again.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
lib_init "${1:-}"
MMSBCTL=$(realpath "${2:?usage: test_ckpt_crash.sh MMSBFS MMSBCTL}")
NF=${NF:-4}          # files
FMIB=${FMIB:-16}     # MiB per file
KILL_MIB=${KILL_MIB:-2} # kill point 2: the temporary file holds at least this much
EXP=$TEST_TMP/exp    # EXP/E/fN: the bytes of file N at epoch E
EPOCHS=()            # the epochs recorded so far
MOUNT_OPTS=(-o ckpt_bytes=0)

# gen_file SEED MIB PATH: text-like bytes (words and numbers), distinct per seed and block.
gen_file() {
	"$PY" - "$1" "$2" "$3" <<'EOF'
import random, sys
seed, mib, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rnd = random.Random(seed)
words = ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9))) for _ in range(2000)]
chunk = bytearray()
while len(chunk) < (1 << 20):
    chunk += (" ".join(rnd.choices(words, k=12)) + " %d\n" % rnd.randint(0, 1 << 30)).encode()
with open(path, "wb") as f:
    for b in range(mib):
        head = b"seed %d block %d\n" % (seed, b)
        f.write(head + chunk[: (1 << 20) - len(head)])
EOF
}

# put_file N SEED: write file N with 1 MiB write(2)s through the mount.
put_file() {
	gen_file "$2" "$FMIB" "$TEST_TMP/gen"
	dd if="$TEST_TMP/gen" of="$MNT/f$1" bs=1M conv=notrunc status=none
	mv "$TEST_TMP/gen" "$TEST_TMP/cur.f$1"
}

# record: the head is a new epoch to check; keep the expected bytes of every file at it.
record() {
	local e f
	e=$(head_epoch)
	mkdir -p "$EXP/$e"
	for ((f = 0; f < NF; f++)); do ln "$TEST_TMP/cur.f$f" "$EXP/$e/f$f" 2>/dev/null || cp "$TEST_TMP/cur.f$f" "$EXP/$e/f$f"; done
	EPOCHS+=("$e")
	LAST=$e
	log "recorded epoch $e"
}

# check_all WHEN: head and every recorded epoch, byte for byte; no temporary file; verify.
check_all() {
	local when=$1 e f h
	h=$(head_epoch)
	expect_eq "$when: head epoch (every committed write kept)" "$LAST" "$h"
	for ((f = 0; f < NF; f++)); do same_file "$when: head f$f" "$EXP/$LAST/f$f" "$MNT/f$f"; done
	for e in "${EPOCHS[@]}"; do
		for ((f = 0; f < NF; f++)); do same_file "$when: epochs/$e/f$f" "$EXP/$e/f$f" "$MNT/epochs/$e/f$f"; done
	done
	if compgen -G "$STORE/ckpt/.tmp*" >/dev/null; then
		fail "$when: a temporary checkpoint file is left after mounting: $(ls -la "$STORE/ckpt")"
	fi
	"$MMSBCTL" --mount "$MNT" verify >"$TEST_TMP/verify.out" 2>&1 ||
		fail "$when: mmsbctl verify failed: $(cat "$TEST_TMP/verify.out")"
}

# kill_during_ckpt POINT ARG: start `mmsbctl checkpoint`, SIGKILL the daemon at POINT:
#   tmp    the temporary checkpoint file exists
#   size   the temporary file holds at least ARG bytes
#   final  a checkpoint file not in the directory before has its final name
# Sets KILLED_AT to what the poller saw.
kill_during_ckpt() {
	local point=$1 arg=$2 ck rc=0
	rm -f "$TEST_TMP/poll.ready" "$TEST_TMP/ckpt.done" "$TEST_TMP/poll.out"
	"$PY" - "$STORE/ckpt" "$DAEMON_PID" "$point" "$arg" "$TEST_TMP" >"$TEST_TMP/poll.out" 2>&1 <<'EOF' &
import os, signal, sys, time
d, pid, point, arg, tmp = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
before = set(n for n in os.listdir(d) if not n.startswith(".tmp"))
open(os.path.join(tmp, "poll.ready"), "w").close()
deadline = time.monotonic() + 200
while time.monotonic() < deadline:
    done = os.path.exists(os.path.join(tmp, "ckpt.done"))  # read before the scan: a last full look
    for n in os.listdir(d):
        p = os.path.join(d, n)
        try:
            size = os.stat(p).st_size
        except FileNotFoundError:
            continue
        hit = (point == "tmp" and n.startswith(".tmp")) or \
              (point == "size" and n.startswith(".tmp") and size >= arg) or \
              (point == "final" and not n.startswith(".tmp") and n not in before)
        if hit:
            os.kill(pid, signal.SIGKILL)
            print("killed at %s (%d bytes)" % (n, size))
            sys.exit(0)
    if done:
        print("missed: the checkpoint finished first")
        sys.exit(1)
    time.sleep(0.001)
print("missed: timeout")
sys.exit(1)
EOF
	local poller=$!
	while [[ ! -e $TEST_TMP/poll.ready ]]; do
		pid_alive "$poller" || fail "the poller exited early: $(cat "$TEST_TMP/poll.out")"
		sleep 0.01
	done
	"$MMSBCTL" --mount "$MNT" checkpoint >"$TEST_TMP/ckpt.out" 2>&1 &
	ck=$!
	wait "$ck" || true
	touch "$TEST_TMP/ckpt.done"
	wait "$poller" || rc=$?
	KILLED_AT=$(cat "$TEST_TMP/poll.out")
	((rc == 0)) || fail "kill point '$point': $KILLED_AT (mmsbctl: $(cat "$TEST_TMP/ckpt.out"))"
	log "kill point '$point': $KILLED_AT"
	mnt_kill9 # reap it
	# let auto_unmount take the dead mount away (the next mount works either way)
	for ((i = 0; i < 100; i++)); do is_mounted || break; sleep 0.05; done
}

tmp_left() { compgen -G "$STORE/ckpt/.tmp*" >/dev/null; }

t_first_ckpt() {
	local f
	for ((f = 0; f < NF; f++)); do put_file "$f" "$((100 + f))"; done
	record
	kill_during_ckpt tmp 0
	tmp_left || fail "kill point 1: no temporary checkpoint file on disk after the kill (it did not land mid-checkpoint)"
	mnt_mount_fg "${MOUNT_OPTS[@]}"
	check_all "after kill 1 (first checkpoint)"
}

t_mid_ckpt() {
	"$MMSBCTL" --mount "$MNT" checkpoint >/dev/null # a complete checkpoint first
	put_file 0 200
	put_file 1 201
	record
	kill_during_ckpt size $((KILL_MIB << 20))
	tmp_left || fail "kill point 2: no temporary checkpoint file on disk after the kill"
	mnt_mount_fg "${MOUNT_OPTS[@]}"
	check_all "after kill 2 (mid-checkpoint)"
}

t_after_rename() {
	put_file 2 300
	put_file 3 301
	record
	kill_during_ckpt final 0
	mnt_mount_fg "${MOUNT_OPTS[@]}"
	check_all "after kill 3 (after the rename)"
}

t_still_works() {
	put_file 1 400
	record
	"$MMSBCTL" --mount "$MNT" checkpoint >/dev/null
	put_file 0 401
	record
	mnt_umount # checkpoint at close
	mnt_mount_fg "${MOUNT_OPTS[@]}"
	check_all "after a clean unmount"
}

# The steps run in this shell, one after the other (not as lib.sh sections, which run in
# subshells): each carries the mount and the recorded epochs to the next; fail exits.
mnt_mount_fg "${MOUNT_OPTS[@]}"
t_first_ckpt
t_mid_ckpt
t_after_rename
t_still_works
mnt_umount
log "PASS: kill -9 at 3 points of a checkpoint; ${#EPOCHS[@]} epochs checked after each recovery"
