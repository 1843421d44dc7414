#!/bin/bash
# test_holes.sh - sparse files and the memory budget through a real mount.
#
#   test_holes.sh MMSBFS MMSBCTL
#
# truncate -s 16G, a few bytes written, mmsbctl checkpoint, reads of
# epochs/N/f, lseek(SEEK_DATA/SEEK_HOLE) and st_blocks on head and epochs
# pages, all with the daemon's VmRSS staying small; then -o max_memory=64M:
# a 100 MiB dd gets ENOSPC, the daemon lives on and earlier data is intact.
source "$(dirname "$0")/lib.sh"
MMSBCTL=$(realpath "${2:?usage: test_holes.sh MMSBFS MMSBCTL}")
lib_init "$1"

G=$((1 << 30))
RSS_SLACK_KB=$((96 * 1024)) # the daemon may grow by this much: a few chunks, caches, threads

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status"; }

# poke FILE OFFSET TEXT: write TEXT at OFFSET without truncating.
poke() { printf '%s' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# check_reads FILE: 1 MiB around every poked offset reads back the text in
# zeros, and SEEK_DATA/SEEK_HOLE find the data chunks (64 KiB granules).
check_reads() {
	"$PY" - "$1" <<'EOF'
import os, sys
G, C, M = 1 << 30, 64 << 10, 1 << 20
want = {G + 5: b"AAAA", 12 * G: b"BBBB", 16 * G - 4: b"ZZZZ"}
fd = os.open(sys.argv[1], os.O_RDONLY)
for off, text in want.items():
    at = off - M // 2
    buf = os.pread(fd, M, at)
    exp = bytearray(min(M, 16 * G - at))
    exp[off - at:off - at + 4] = text
    assert buf == bytes(exp), "bytes around %d differ" % off
    assert os.lseek(fd, off - 3 * M, os.SEEK_DATA) == off - off % C, "SEEK_DATA before %d" % off
    hole = os.lseek(fd, off, os.SEEK_HOLE)
    assert hole == min(off - off % C + C, 16 * G), "SEEK_HOLE after %d: %d" % (off, hole)
assert os.lseek(fd, 0, os.SEEK_HOLE) == 0, "SEEK_HOLE at 0"
try:
    os.lseek(fd, 16 * G - 4 + C, os.SEEK_DATA)
    raise AssertionError("SEEK_DATA past the end succeeded")
except OSError as e:
    assert e.errno == 6, "SEEK_DATA past the end: %s" % e  # ENXIO
assert os.pread(fd, M, 6 * G) == bytes(M), "a hole reads as zeros"
print("ok")
EOF
}

t_sparse_16g() {
	local f=$MNT/f r0 r1 e e2 t0 t1 blocks out
	r0=$(rss_kb)
	truncate -s 16G "$f"
	poke "$f" $((G + 5)) AAAA
	poke "$f" $((12 * G)) BBBB
	poke "$f" $((16 * G - 4)) ZZZZ
	expect_eq "size" $((16 * G)) "$(stat -c %s "$f")"
	blocks=$(stat -c %b "$f")
	((blocks * 512 <= 3 * 65536)) || fail "st_blocks: expected at most 3 chunks of data, got $blocks blocks"
	e=$(head_epoch)
	t0=$(date +%s.%N)
	"$MMSBCTL" --mount "$MNT" checkpoint >/dev/null || fail "mmsbctl checkpoint failed"
	t1=$(date +%s.%N)
	log "checkpoint of a 16 GiB sparse page: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
	awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 20) }' || fail "checkpoint took more than 20 s"
	out=$(du -sk "$STORE/ckpt" | cut -f1)
	((out < 1024)) || fail "checkpoint directory: expected < 1 MiB, got $out KiB"
	poke "$f" $((2 * G)) CCCC # after the checkpoint: epochs/$e must not see it
	[[ -e "$MNT/epochs/$e/f" ]] || fail "epochs/$e/f missing"
	out=$(check_reads "$MNT/epochs/$e/f") || fail "epochs/$e/f: $out"
	out=$(check_reads "$f") || fail "head f: $out"
	"$PY" -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); assert os.pread(fd, 4, 2 << 30) == bytes(4)' \
		"$MNT/epochs/$e/f" || fail "epochs/$e/f shows a write made after epoch $e"
	# diff, export and restore of the sparse page cost its data, not its size
	e2=$(head_epoch)
	t0=$(date +%s)
	out=$("$MMSBCTL" --mount "$MNT" diff "$e" "$e2") || fail "mmsbctl diff failed"
	[[ $out == *"2147483648+4"* ]] || fail "mmsbctl diff $e $e2: expected the range 2147483648+4, got: $out"
	"$MMSBCTL" --mount "$MNT" export "$e2" "$TEST_TMP/exp" >/dev/null || fail "mmsbctl export failed"
	expect_eq "exported size" $((16 * G)) "$(stat -c %s "$TEST_TMP/exp/f")"
	out=$(du -k "$TEST_TMP/exp/f" | cut -f1)
	((out < 4096)) || fail "the exported sparse page takes $out KiB on disk"
	"$PY" -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); assert os.pread(fd, 4, 2 << 30) == b"CCCC"; assert os.pread(fd, 4, 12 << 30) == b"BBBB"' \
		"$TEST_TMP/exp/f" || fail "the exported page has the wrong bytes"
	"$MMSBCTL" --mount "$MNT" restore "$e" f >/dev/null || fail "mmsbctl restore failed"
	"$PY" -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); assert os.pread(fd, 4, 2 << 30) == bytes(4); assert os.pread(fd, 4, 12 << 30) == b"BBBB"' \
		"$f" || fail "f after restore $e has the wrong bytes"
	t1=$(date +%s)
	((t1 - t0 < 20)) || fail "diff, export and restore of a 16 GiB sparse page took $((t1 - t0)) s"
	# small pages and the change feed are all data
	printf 'small' >"$MNT/small"
	"$PY" - "$MNT/small" "$MNT/epochs/.changes" <<'EOF' || fail "lseek on a small page or the change feed"
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    size = os.fstat(fd).st_size
    assert size > 0 and os.lseek(fd, 0, os.SEEK_DATA) == 0 and os.lseek(fd, 1, os.SEEK_HOLE) == size, p
EOF
	r1=$(rss_kb)
	log "daemon VmRSS: $r0 KiB before, $r1 KiB after"
	((r1 < r0 + RSS_SLACK_KB)) || fail "daemon VmRSS grew from $r0 to $r1 KiB"
}

t_sparse_survives_remount() {
	local f=$MNT/f r0 r1 out
	r0=$(rss_kb)
	out=$(check_reads "$f") || fail "f after a remount: $out"
	r1=$(rss_kb)
	((r1 < 64 * 1024 + RSS_SLACK_KB)) || fail "daemon VmRSS after loading the sparse page: $r1 KiB"
	log "daemon VmRSS after remount and reads: $r0 -> $r1 KiB"
}

t_budget_enospc() {
	local out rc
	gen_data 7 $((8 << 20)) "$TEST_TMP/keep"
	cp "$TEST_TMP/keep" "$MNT/keep"
	set +e
	out=$(dd if=/dev/urandom of="$MNT/big" bs=1M count=100 2>&1)
	rc=$?
	set -e
	((rc != 0)) || fail "dd of 100 MiB under -o max_memory=64M succeeded"
	[[ $out == *"No space left on device"* ]] || fail "dd: expected ENOSPC, got: $out"
	mount_alive || fail "the daemon died"
	out=$("$MMSBCTL" --mount "$MNT" --json stats) || fail "mmsbctl stats failed"
	"$PY" -c 'import json, sys; s = json.loads(sys.argv[1]); assert s["mem_limit"] == 64 << 20 and 8 << 20 <= s["mem_used"] <= 64 << 20' \
		"$out" || fail "mmsbctl stats: expected mem_limit 64 MiB and mem_used within it: $out"
	same_file "keep after ENOSPC" "$TEST_TMP/keep" "$MNT/keep"
	out=$(check_reads "$MNT/f") || fail "f after ENOSPC: $out"
	rm "$MNT/big"
	dd if=/dev/urandom of="$MNT/big" bs=1M count=16 status=none || fail "16 MiB after freeing: refused"
	truncate -s 1T "$MNT/huge" || fail "truncate -s 1T under the budget: holes must be free"
}

mnt_mount_fg
section t_sparse_16g
mnt_umount
mnt_mount_fg
section t_sparse_survives_remount
mnt_umount
mnt_mount_fg -o max_memory=64M
section t_budget_enospc
mnt_umount
lib_finish
