#!/bin/bash
# test_crash.sh MMSBFS: kill -9 the daemon during a write storm and check recovery.
#
# Each round: mount (mmsbfs -f), create NW files of NB 4 KiB blocks (fsynced), start NW
# writer processes.  Writer w writes block (seq % NB) of its file with dd conv=notrunc
# (one 4 KiB write(2)); the block's bytes encode (w, seq, block).  After each dd returns,
# the writer appends seq to an "ack" journal on tmpfs OUTSIDE the mount; every 8 writes
# it fsyncs the file (`sync FILE` or python os.fsync) and then appends seq to a "sync"
# journal.  After ~2 s the daemon gets kill -9; the store is mounted again at once and
# every block is checked:
#   - it is whole: zeros or exactly one write's bytes (no torn 4 KiB write),
#   - fsynced writes are present (DESIGN: fsync makes every epoch durable),
#   - acknowledged writes are present (spec: every write(2) is in the log, written with
#     write(2), before it is acknowledged, so a process kill cannot lose it),
#   - nothing newer than the last issued write.
# Earlier rounds' files must stay exactly as verified, and the store must be read-write.
# Round 2 also leaves a stale mount behind (the auto_unmount helper is killed first):
# mmsbfs must detach it and mount.  Round 3 takes automatic checkpoints during the storm
# (-o ckpt_bytes=256k), round 4 uses -o sync=commit without any fsync (every acknowledged
# write must survive), round 5 -o sync=interval.
# Then damaged logs on fresh stores: a torn tail (the last bytes cut off) must be
# discarded whole at the next mount; a byte flipped in the middle of the log must make
# the read-write mount fail with a clear message, and -o ro must serve the epochs
# before the damage.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
lib_init "${1:-}"

NW=4           # writers per round
NB=64          # 4 KiB blocks per file
STORM_S=2      # seconds of writes before kill -9
JOURNAL=$(mktemp -d /dev/shm/mmsb-crash.XXXXXX)
cleanup_add "$JOURNAL"
FAILS=()

# soft_fail MSG: record a failure and go on with the next checks and rounds.
soft_fail() {
	log "FAIL: $*"
	FAILS+=("$*")
}

# writer ROUND W FSYNC: runs until the mount fails or $JOURNAL/stop exists.
writer() {
	local round=$1 w=$2 do_fsync=$3 f=$MNT/r$1/w$2 seq=0 b line blk i
	local ack=$JOURNAL/r$round.w$w.ack syn=$JOURNAL/r$round.w$w.sync
	while [[ ! -e $JOURNAL/stop ]]; do
		seq=$((seq + 1))
		b=$((seq % NB))
		printf -v line '%-31s' "$(printf 'w=%d s=%08d b=%03d' "$w" "$seq" "$b")"
		blk="$line"$'\n'
		for ((i = 0; i < 7; i++)); do blk+=$blk; done # 128 lines of 32 bytes
		printf '%s' "$blk" | dd of="$f" bs=4096 count=1 seek="$b" iflag=fullblock conv=notrunc status=none 2>/dev/null || break
		echo "$seq" >>"$ack"
		if ((do_fsync && seq % 8 == 0)); then
			if ((seq % 16 == 0)); then
				sync "$f" 2>/dev/null || break
			else
				"$PY" -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$f" 2>/dev/null || break
			fi
			echo "$seq" >>"$syn"
		fi
	done
}

verify_round() { # verify_round ROUND MODE(sync|ack)
	"$PY" - "$MNT" "$JOURNAL" "$1" "$NW" "$NB" "$2" <<'EOF'
import os, re, sys
mnt, jdir, rnd, nw, nb, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
BS = 4096
def block(w, s, b):
    return ((("w=%d s=%08d b=%03d" % (w, s, b)).ljust(31) + "\n") * 128).encode()
def journal(name):
    try:
        with open(os.path.join(jdir, name)) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []
def last_write_to(b, upto):
    # largest s in [1, upto] with s % nb == b, or 0
    if upto < 1:
        return 0
    s = upto - ((upto - b) % nb)
    return s if s >= 1 else 0
errors = []
summary = []
for w in range(nw):
    path = "%s/r%d/w%d" % (mnt, rnd, w)
    ack, syn = journal("r%d.w%d.ack" % (rnd, w)), journal("r%d.w%d.sync" % (rnd, w))
    s_ack, s_sync = max(ack, default=0), max(syn, default=0)
    summary.append("w%d: %d acked, fsynced up to %d" % (w, s_ack, s_sync))
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        errors.append("%s: created and fsynced before the storm, but: %s" % (path, e))
        continue
    if len(data) != nb * BS:
        errors.append("%s: expected size %d (blocks only overwritten), got %d" % (path, nb * BS, len(data)))
        continue
    for b in range(nb):
        blk = data[b * BS:(b + 1) * BS]
        if blk == bytes(BS):
            got = 0
        else:
            m = re.match(rb"w=(\d+) s=(\d+) b=(\d+)", blk)
            if not m:
                errors.append("%s block %d: expected zeros or one whole write, got unrecognizable bytes %r..." % (path, b, blk[:40]))
                continue
            gw, got, gb = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if gw != w or gb != b or got % nb != b or blk != block(w, got, b):
                errors.append("%s block %d: torn or misplaced write: header %r, bytes %s the write of seq %d" % (
                    path, b, blk[:31], "match" if blk == block(gw, got, gb) else "do NOT match", got))
                continue
        need_sync = last_write_to(b, s_sync)
        need_ack = last_write_to(b, s_ack)
        if got < need_sync:
            errors.append("%s block %d: FSYNCED write lost: expected seq >= %d (fsync returned after seq %d), got %s" % (
                path, b, need_sync, s_sync, got or "zeros"))
        elif mode == "ack" and got < need_ack:
            errors.append("%s block %d: ACKNOWLEDGED write lost: expected seq >= %d (write(2) of seq %d had returned), got %s" % (
                path, b, need_ack, s_ack, got or "zeros"))
        elif mode == "sync-ack" and got < need_ack:
            errors.append("%s block %d: acknowledged (not fsynced) write lost after kill -9: expected seq >= %d, got %s "
                          "(spec: every write(2) is in the log before it is acknowledged)" % (path, b, need_ack, got or "zeros"))
        if got > s_ack + 1:
            errors.append("%s block %d: seq %d is newer than the last issued write %d" % (path, b, got, s_ack + 1))
print("round %d: %s" % (rnd, "; ".join(summary)))
if errors:
    for e in errors[:30]:
        print("FAIL: " + e, file=sys.stderr)
    if len(errors) > 30:
        print("FAIL: ... %d more" % (len(errors) - 30), file=sys.stderr)
    sys.exit(1)
EOF
}

# Kill the fusermount3 auto_unmount helper of $MNT so that the mount stays stale.
kill_unmount_helper() {
	local p found=0
	for p in $(find_pids_by_mnt fusermount3 "$MNT"); do
		kill -9 "$p" 2>/dev/null && found=1
	done
	((found)) || log "note: no fusermount3 auto_unmount helper found for $MNT"
	return 0
}

crash_round() { # crash_round ROUND SYNCMODE STALE(0|1) [mmsbfs options...]
	local round=$1 mode=$2 stale=$3 w out rc i
	shift 3
	local pids=()
	mnt_mount_fg "$@"
	mkdir "$MNT/r$round"
	for ((w = 0; w < NW; w++)); do
		truncate -s $((NB * 4096)) "$MNT/r$round/w$w"
		sync "$MNT/r$round/w$w"
	done
	sync "$MNT/r$round"
	rm -f "$JOURNAL/stop"
	for ((w = 0; w < NW; w++)); do
		writer "$round" "$w" "$([[ $mode == ack ]] && echo 0 || echo 1)" &
		pids+=($!)
	done
	sleep "$STORM_S"
	((stale)) && kill_unmount_helper
	log "round $round: kill -9 daemon $DAEMON_PID during the write storm"
	mnt_kill9
	touch "$JOURNAL/stop"
	for p in "${pids[@]}"; do
		for ((i = 0; i < 200; i++)); do pid_alive "$p" || break; sleep 0.05; done
		if pid_alive "$p"; then
			kill -9 "$p" 2>/dev/null || true
			fail "round $round: writer $p still running 10 s after the daemon was killed (hung on the dead mount?)"
		fi
		wait "$p" 2>/dev/null || true
	done
	if ((stale)); then
		set +e
		out=$(stat "$MNT" 2>&1)
		rc=$?
		set -e
		if [[ $rc -ne 0 && $out == *"not connected"* ]]; then
			log "round $round: $MNT is a stale mount (ENOTCONN) as intended"
		else
			log "note: round $round: could not produce a stale mount (stat rc=$rc: $out)"
		fi
	else
		# let auto_unmount remove the dead mount (the next mount must work either way)
		for ((i = 0; i < 100; i++)); do is_mounted || break; sleep 0.05; done
	fi
	mnt_mount_fg "$@"
	local mounts
	mounts=$(grep -F " $MNT " /proc/self/mountinfo)
	if [[ $(wc -l <<<"$mounts") -ne 1 ]]; then
		soft_fail "round $round: expected exactly one mount on $MNT after mounting over the dead one, got (stale mount not detached; new mount stacked on it):
$mounts"
		# go on with a clean single mount: unmount ours, detach the stale one below
		fusermount3 -u "$MNT" || true
		wait_pid_gone "$DAEMON_PID" 30 || kill -9 "$DAEMON_PID" 2>/dev/null || true
		wait "$DAEMON_PID" 2>/dev/null || true
		DAEMON_PID=""
		MOUNT_UP=0
		while is_mounted; do umount -l "$MNT" || break; done
		mnt_mount_fg "$@"
	fi
	grep -i -E 'torn|discard|recover' "$DAEMON_LOG" | head -n 3 | sed "s/^/[daemon] /" >&2 || true
	if out=$(verify_round "$round" "$mode" 2>&1); then
		log "$out"
	else
		dump_daemon_log
		soft_fail "round $round: recovery after kill -9 lost or tore data:
$out"
	fi
	# earlier rounds are exactly as verified before
	for ((i = 1; i < round; i++)); do
		for ((w = 0; w < NW; w++)); do
			cmp -s "$TEST_TMP/verified/r$i/w$w" "$MNT/r$i/w$w" ||
				soft_fail "round $round: file w$w of round $i changed by a later crash: $(cmp "$TEST_TMP/verified/r$i/w$w" "$MNT/r$i/w$w" 2>&1)"
		done
	done
	mkdir -p "$TEST_TMP/verified/r$round"
	cp "$MNT/r$round"/w* "$TEST_TMP/verified/r$round/"
	# the recovered store is read-write
	local h0 h1
	h0=$(head_epoch)
	echo "round $round ok" >"$MNT/r$round/after"
	h1=$(head_epoch)
	((h1 > h0)) || fail "round $round: store not writable after recovery: head $h0 -> $h1"
	expect_eq "round $round: write after recovery" "round $round ok" "$(cat "$MNT/r$round/after")"
	mnt_umount
}

# sync-ack: fsynced writes must survive; acknowledged ones too (checked, reported apart).
crash_round 1 sync-ack 0
crash_round 2 sync-ack 1
crash_round 3 sync-ack 0 -o ckpt_bytes=256k # automatic checkpoints during the storm: recovery = checkpoint + log
crash_round 4 ack 0 -o sync=commit
crash_round 5 sync-ack 0 -o sync=interval,sync_interval=100
NROUNDS=5

# ---- damaged logs ---------------------------------------------------------------
# A fresh store (no automatic checkpoints), NV single-write epochs on one page, then
# kill -9 (no checkpoint at close), so recovery must replay the whole log.
NV=200
damage_prepare() { # damage_prepare NAME [clean]: sets STORE, fills $TEST_TMP/NAME.epochs
	local name=$1 clean=${2:-} i e
	STORE=$TEST_TMP/$name
	mnt_mount_fg -o ckpt_bytes=0
	: >"$MNT/page"
	: >"$TEST_TMP/$name.epochs"
	for ((i = 1; i <= NV; i++)); do
		printf 'v%04d' "$i" | dd of="$MNT/page" bs=5 seek=$(((i * 7) % 50)) conv=notrunc status=none
		e=$(head_epoch)
		cp "$MNT/page" "$TEST_TMP/$name.v$e"
		echo "$e" >>"$TEST_TMP/$name.epochs"
	done
	sync "$MNT/page"
	if [[ $clean == clean ]]; then
		mnt_umount # a checkpoint of the head at unmount
	else
		mnt_kill9
	fi
	for ((i = 0; i < 100; i++)); do is_mounted || break; sleep 0.05; done
	while is_mounted; do umount -l "$MNT" || break; done
	SEG=$(find "$STORE" -name '*.log' -type f -size +1k | sort | tail -n 1)
	[[ -n "$SEG" ]] || fail "$name: no log segment found under $STORE (layout: $(find "$STORE" -type f | tr '\n' ' '))"
}

# check_epochs NAME UPTO: every recorded epoch <= UPTO reads back as recorded
check_epochs() {
	local name=$1 upto=$2 e
	while read -r e; do
		((e <= upto)) || continue
		if ! cmp -s "$TEST_TMP/$name.v$e" "$MNT/epochs/$e/page"; then
			soft_fail "$name: epochs/$e/page differs from what was written at epoch $e: $(cmp "$TEST_TMP/$name.v$e" "$MNT/epochs/$e/page" 2>&1)"
			break
		fi
	done <"$TEST_TMP/$name.epochs"
	return 0
}

t_torn_tail() {
	local last prev size h
	damage_prepare torn
	last=$(tail -n 1 "$TEST_TMP/torn.epochs")
	prev=$(tail -n 2 "$TEST_TMP/torn.epochs" | head -n 1)
	size=$(stat -c %s "$SEG")
	truncate -s $((size - 7)) "$SEG" # tear the last transaction
	mnt_try_mount -o ckpt_bytes=0
	if ((MOUNT_RC != 0)); then
		soft_fail "torn tail: expected the store to mount (the torn last transaction discarded), got exit $MOUNT_RC: $MOUNT_OUT"
		return 0
	fi
	h=$(head_epoch)
	[[ $h == "$prev" ]] || soft_fail "torn tail: expected head $prev (the torn epoch $last discarded whole), got $h"
	cmp -s "$TEST_TMP/torn.v$prev" "$MNT/page" ||
		soft_fail "torn tail: live page differs from epoch $prev: $(cmp "$TEST_TMP/torn.v$prev" "$MNT/page" 2>&1)"
	check_epochs torn "$h"
	echo after >"$MNT/new" || soft_fail "torn tail: store not writable after recovery"
	mnt_umount
	log "torn tail: head $last -> $h after tearing the last 7 bytes of $(basename "$SEG")"
}

t_corrupt_middle() {
	local last size off h
	damage_prepare corrupt
	last=$(tail -n 1 "$TEST_TMP/corrupt.epochs")
	size=$(stat -c %s "$SEG")
	off=$((size / 2))
	# flip one byte in the middle of the log
	"$PY" -c 'import sys; p, o = sys.argv[1], int(sys.argv[2]); f = open(p, "r+b"); f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0xff]))' "$SEG" "$off"
	mnt_try_mount -o ckpt_bytes=0
	if ((MOUNT_RC == 0)); then
		h=$(head_epoch)
		mnt_umount
		soft_fail "corrupt log: a byte flipped at offset $off of $(basename "$SEG") ($size bytes): expected the read-write mount to be refused, but it mounted (head $h of $last)"
		return 0
	fi
	[[ $MOUNT_RC -eq 1 ]] || soft_fail "corrupt log: expected exit 1, got $MOUNT_RC: $MOUNT_OUT"
	[[ -n $MOUNT_OUT ]] || soft_fail "corrupt log: expected a clear message, got nothing"
	log "corrupt log: read-write mount refused as expected: $MOUNT_OUT"
	is_mounted && soft_fail "corrupt log: mount refused but $MNT is mounted"
	# read-only: serves every epoch before the damage
	mnt_try_mount -o ro
	if ((MOUNT_RC != 0)); then
		soft_fail "corrupt log: expected -o ro to serve the epochs before the damage, got exit $MOUNT_RC: $MOUNT_OUT"
		return 0
	fi
	h=$(head_epoch)
	((h < last && h > 0)) || soft_fail "corrupt log: -o ro head: expected an epoch before the damage (0 < head < $last), got $h"
	cmp -s "$TEST_TMP/corrupt.v$h" "$MNT/page" ||
		soft_fail "corrupt log: -o ro live page differs from epoch $h: $(cmp "$TEST_TMP/corrupt.v$h" "$MNT/page" 2>&1)"
	check_epochs corrupt "$h"
	log "corrupt log: -o ro serves epochs up to $h of $last"
	mnt_umount
}

# flip_byte FILE OFFSET
flip_byte() {
	"$PY" -c 'import sys; p, o = sys.argv[1], int(sys.argv[2]); f = open(p, "r+b"); f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}

# check_covered NAME LAST: every epoch reads back as written, or fails with
# EUCLEAN, never older content; the refused ones are one range ending just
# before the checkpoint at LAST (the epochs whose history is lost)
check_covered() {
	local name=$1 last=$2 e from=0 to=0 n_ok=0
	while read -r e; do
		if cat "$MNT/epochs/$e/page" >"$TEST_TMP/got" 2>"$TEST_TMP/err"; then
			if ! cmp -s "$TEST_TMP/$name.v$e" "$TEST_TMP/got"; then
				soft_fail "$name: epochs/$e/page is served with other content (stale history)"
				return 0
			fi
			n_ok=$((n_ok + 1))
		else
			grep -q "Structure needs cleaning" "$TEST_TMP/err" ||
				soft_fail "$name: epochs/$e/page: expected EUCLEAN, got: $(cat "$TEST_TMP/err")"
			((from)) || from=$e
			((to == 0 || to == e - 1 || to == e - 2)) || soft_fail "$name: refused epochs are not one range ($to, then $e)"
			to=$e
		fi
	done <"$TEST_TMP/$name.epochs"
	((from > 0)) || soft_fail "$name: no epoch refused though a record is damaged"
	((to < last)) || soft_fail "$name: the checkpoint epoch $last is refused"
	log "$name: $n_ok epochs exact, epochs $from-$to refused (history lost)"
}

# One byte flipped in the middle of the log, which the checkpoint taken at
# unmount covers: both mounts work, the head is exact, the epochs whose
# records are lost fail with EUCLEAN and every other one is exact.
t_covered_damage() {
	local last off mode
	damage_prepare covered clean
	last=$(tail -n 1 "$TEST_TMP/covered.epochs")
	off=$(($(stat -c %s "$SEG") / 2))
	flip_byte "$SEG" "$off"
	for mode in rw ro; do
		mnt_try_mount -o "$mode,ckpt_bytes=0"
		if ((MOUNT_RC != 0)); then
			soft_fail "covered damage: expected the $mode mount to work, got exit $MOUNT_RC: $MOUNT_OUT"
			return 0
		fi
		[[ $(head_epoch) == "$last" ]] || soft_fail "covered damage ($mode): head $(head_epoch), want $last"
		cmp -s "$TEST_TMP/covered.v$last" "$MNT/page" || soft_fail "covered damage ($mode): the head page differs"
		check_covered covered "$last"
		mnt_umount
	done
}

# One byte flipped in the last segment's header: its records stay readable.
t_segment_header() {
	local last mode
	damage_prepare seghdr clean
	last=$(tail -n 1 "$TEST_TMP/seghdr.epochs")
	flip_byte "$SEG" 18
	for mode in ro rw ro; do
		mnt_try_mount -o "$mode,ckpt_bytes=0"
		if ((MOUNT_RC != 0)); then
			soft_fail "segment header: expected the $mode mount to work, got exit $MOUNT_RC: $MOUNT_OUT"
			return 0
		fi
		[[ $(head_epoch) == "$last" ]] || soft_fail "segment header ($mode): head $(head_epoch), want $last"
		check_epochs seghdr "$last"
		mnt_umount
	done
}

# Hard links and special files: made, synced, then kill -9; recovery replays the LINK and
# MKNOD records (the first half also from a checkpoint) and the tree reads back the same.
t_links_crash() {
	local st ino_a ino_b ls1 ls2 h1 h2 ctl
	ctl=$(dirname "$MMSBFS")/../tools/mmsbctl
	STORE=$TEST_TMP/links
	mnt_mount_fg -o ckpt_bytes=0
	mkdir "$MNT/d"
	printf 'linked' >"$MNT/a"
	ln "$MNT/a" "$MNT/d/b"
	mkfifo "$MNT/p"
	mknod "$MNT/c" c 1 3
	"$ctl" --mount "$MNT" checkpoint >/dev/null || soft_fail "links crash: mmsbctl checkpoint failed"
	ln "$MNT/a" "$MNT/a2"
	ln "$MNT/p" "$MNT/d/p2"
	mknod "$MNT/b" b 7 200
	"$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$MNT/s"
	rm "$MNT/a"
	printf ' more' >>"$MNT/d/b"
	ls1=$(cd "$MNT" && find . -path ./epochs -prune -o -printf '%p %y %n %s %m\n' | sort)
	h1=$(head_epoch)
	sync "$MNT/d/b"
	mnt_kill9
	for ((st = 0; st < 100; st++)); do is_mounted || break; sleep 0.05; done
	while is_mounted; do umount -l "$MNT" || break; done
	mnt_mount_fg -o ckpt_bytes=0
	h2=$(head_epoch)
	[[ $h1 == "$h2" ]] || soft_fail "links crash: expected head $h1 after recovery, got $h2"
	ls2=$(cd "$MNT" && find . -path ./epochs -prune -o -printf '%p %y %n %s %m\n' | sort)
	[[ $ls1 == "$ls2" ]] || soft_fail "links crash: tree differs after recovery: before:
$ls1
after:
$ls2"
	ino_a=$(stat -c %i "$MNT/a2")
	ino_b=$(stat -c %i "$MNT/d/b")
	[[ $ino_a == "$ino_b" ]] || soft_fail "links crash: a2 and d/b are no longer one page ($ino_a, $ino_b)"
	[[ $(cat "$MNT/a2") == "linked more" ]] || soft_fail "links crash: a2 reads '$(cat "$MNT/a2")'"
	[[ $(stat -c '%F %t:%T' "$MNT/b") == "block special file 7:c8" ]] ||
		soft_fail "links crash: b is '$(stat -c '%F %t:%T' "$MNT/b")'"
	[[ $(stat -c '%F' "$MNT/d/p2") == "fifo" && $(stat -c %h "$MNT/p") == 2 ]] ||
		soft_fail "links crash: fifo p and d/p2: '$(stat -c '%F %h' "$MNT/p")'"
	[[ $(stat -c '%F' "$MNT/s") == "socket" ]] || soft_fail "links crash: s is '$(stat -c '%F' "$MNT/s")'"
	mnt_umount
	log "links crash: head $h2 recovered with its hard links, fifos, sockets and devices"
}

MAIN_STORE=$STORE
t_links_crash
t_torn_tail
t_corrupt_middle
t_covered_damage
t_segment_header
STORE=$MAIN_STORE

# A final clean mount sees everything.
mnt_mount_fg
for ((r = 1; r <= NROUNDS; r++)); do
	for ((w = 0; w < NW; w++)); do
		same_file "final mount: round $r file $w" "$TEST_TMP/verified/r$r/w$w" "$MNT/r$r/w$w"
	done
done
mnt_umount
if ((${#FAILS[@]})); then
	log "FAILED: ${#FAILS[@]} check(s):"
	for f in "${FAILS[@]}"; do log "  - ${f%%$'\n'*}"; done
	exit 1
fi
log "PASS: $NROUNDS crash rounds"
