#!/bin/bash
# test_ctl.sh - mmsbctl against a real mmsbfs mount, and offline.
#
#   test_ctl.sh MMSBFS MMSBCTL
#
# Every subcommand through the control socket, then the error cases: unknown
# epoch or tag, malformed arguments (exit 2), a caller the socket refuses
# (run as nobody), restore of a path absent at E, and no daemon at all
# (offline read commands work, write commands fail clearly).
# Needs root and /dev/fuse (else exit 77: skipped).  MMSB_TEST_KEEP=1 keeps
# the temporary directory.
set -u
export LC_ALL=C

MMSBFS=$(realpath "${1:?usage: test_ctl.sh MMSBFS MMSBCTL}")
MMSBCTL=$(realpath "${2:?usage: test_ctl.sh MMSBFS MMSBCTL}")
PY=python3

[[ $(id -u) == 0 ]] || { echo "test_ctl: SKIP: needs root"; exit 77; }
[[ -c /dev/fuse ]] || { echo "test_ctl: SKIP: no /dev/fuse"; exit 77; }
command -v fusermount3 >/dev/null || { echo "test_ctl: SKIP: no fusermount3"; exit 77; }

TMP=$(mktemp -d /tmp/mmsb-ctl.XXXXXX)
chmod 755 "$TMP" # nobody must reach STORE itself (and be refused there)
STORE=$TMP/store
MNT=$TMP/mnt
OUT=$TMP/out
mkdir -p "$MNT"
WATCH_PIDS=()
FAILS=0
PASSES=0

cleanup() {
	local p
	for p in "${WATCH_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	cd /
	mountpoint -q "$MNT" && fusermount3 -u "$MNT"
	[[ ${MMSB_TEST_KEEP:-0} == 1 ]] && echo "test_ctl: kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

ok() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
bad() { FAILS=$((FAILS + 1)); echo "FAIL - $*"; }

# ctl ARGS...: run mmsbctl on the test mount; stdout in $OUT, stderr in $OUT.err, status in $RC.
ctl() {
	"$MMSBCTL" "$@" >"$OUT" 2>"$OUT.err"
	RC=$?
}
m() { ctl --mount "$MNT" "$@"; }

# expect WHAT RC PATTERN: last command's status was RC and stdout+stderr match PATTERN (grep -E).
expect() {
	local what=$1 rc=$2 pat=$3
	if [[ $RC != "$rc" ]]; then
		bad "$what: exit $RC, expected $rc; stdout: $(head -c 400 "$OUT"); stderr: $(cat "$OUT.err")"
	elif ! cat "$OUT" "$OUT.err" | grep -Eq -- "$pat"; then
		bad "$what: output does not match /$pat/: stdout: $(head -c 400 "$OUT"); stderr: $(cat "$OUT.err")"
	else
		ok "$what"
	fi
}
json_ok() { # json_ok WHAT PYEXPR (d is the parsed document)
	if $PY -c "import json,sys; d=json.load(open('$OUT')); sys.exit(0 if ($2) else 1)" 2>"$OUT.py"; then
		ok "$1"
	else
		bad "$1: JSON check '$2' failed: $(head -c 400 "$OUT") $(cat "$OUT.py")"
	fi
}
field() { # field KEY: value of KEY in a record (key  value) output
	awk -v k="$1" '$1 == k { $1 = ""; sub(/^ +/, ""); print; exit }' "$OUT"
}

mount_it() {
	"$MMSBFS" "$STORE" "$MNT" || { echo "test_ctl: FAIL: cannot mount"; exit 1; }
}

# ---- online -----------------------------------------------------------------------------

mount_it
[[ -S $STORE/ctl.sock ]] && ok "daemon created STORE/ctl.sock" || bad "no socket at $STORE/ctl.sock"
[[ $(stat -c %a "$STORE/ctl.sock" 2>/dev/null) == 600 ]] && ok "socket mode 0600" ||
	bad "socket mode is $(stat -c %a "$STORE/ctl.sock" 2>&1)"

printf 'hello' >"$MNT/a"
mkdir "$MNT/d"
printf 'xyz' >"$MNT/d/b"
ln -s a "$MNT/ln"
setfattr -n user.color -v blue "$MNT/a"
cp "$MNT/a" "$TMP/a.first"

m checkpoint --tag first
expect "checkpoint --tag" 0 "^epoch +[0-9]+"
E1=$(field epoch)
m tags
expect "tags lists the tag" 0 "^ *$E1 +first "
if ls "$MNT/epochs" | grep -qx first && cmp -s "$MNT/epochs/first/a" "$TMP/a.first"; then
	ok "epochs/first resolves to the tagged epoch"
else
	bad "epochs/first: listing '$(ls "$MNT/epochs" | tr '\n' ' ')'"
fi
m checkpoints
expect "checkpoints" 0 "^ *$E1 +[0-9]{4}-[0-9]{2}-[0-9]{2}T.* first"
m status
expect "status" 0 "^head +[0-9]+"
[[ $(field mount) == "$MNT" && $(field store) == "$STORE" ]] && ok "status names mount and store" ||
	bad "status: mount '$(field mount)' store '$(field store)'"
m stats --json
json_ok "stats --json" "d['head'] >= $E1 and 'commit_p99_ns' in d"
json_ok "stats has FUSE counts" "any(k.startswith('fuse') for k in d)"
(cd "$MNT/d" && "$MMSBCTL" status >"$OUT" 2>"$OUT.err")
RC=$?
expect "the mount is found from the current directory" 0 "^mount +$MNT$"

printf ' world' >>"$MNT/a"
m log
expect "log" 0 "^ *[0-9]+ +[0-9T:+-]+ +user +write +a +6$"
m log a -n 1
expect "log PATH -n 1" 0 "write +a"
[[ $(wc -l <"$OUT") == 2 ]] && ok "log -n 1 gives one record" || bad "log -n 1: $(cat "$OUT")"
m log --since "$E1" --until head --json
json_ok "log --since --until --json" "all(r['epoch'] >= $E1 for r in d) and len(d) >= 1"
m diff first head
expect "diff" 0 "^modified +a +6 +5\+6"
m diff first head --stat
expect "diff --stat" 0 "1 modified.*6 bytes changed"
m diff first head d
expect "diff PATH (nothing changed under d)" 0 "^change +path"
[[ $(wc -l <"$OUT") == 1 ]] && ok "diff PATH restricts" || bad "diff first head d: $(cat "$OUT")"

# restore: readers see the old bytes at once (kernel caches invalidated)
cat "$MNT/a" >/dev/null
m restore first
expect "restore" 0 "^epoch +[0-9]+"
cmp -s "$MNT/a" "$TMP/a.first" && ok "restored bytes visible through the mount" ||
	bad "after restore a is '$(cat "$MNT/a")'"

# restore of a path that did not exist at E: removed at head; absent in both: error
printf 'new' >"$MNT/later"
m restore first later
expect "restore of a path absent at E" 0 "^epoch"
[[ ! -e $MNT/later ]] && ok "path absent at E is removed at head" || bad "later still exists"
m restore first never-was
expect "restore of a path absent at E and at head" 1 "never-was exists neither at epoch $E1 nor at head"

m sync
expect "sync" 0 "^durable +[0-9]+"

# watch: a background reader gets one line per epoch
"$MMSBCTL" --mount "$MNT" watch >"$TMP/watch.out" 2>&1 &
WATCH_PIDS+=($!)
"$MMSBCTL" --mount "$MNT" --json watch d >"$TMP/watchd.out" 2>&1 &
WATCH_PIDS+=($!)
for _ in $(seq 50); do [[ -s $TMP/watch.out && -s $TMP/watchd.out ]] && break; sleep 0.1; done
sleep 0.3
printf '1' >"$MNT/w1"
printf '2' >"$MNT/d/w2"
printf '3' >>"$MNT/w1"
for _ in $(seq 50); do (($(grep -c ' w1' "$TMP/watch.out") >= 3)) && break; sleep 0.1; done
if (($(grep -cE '^ *[0-9]+ +[0-9T:+-]+ +user +[0-9]+ +[0-9]+ +(w1|d/w2)$' "$TMP/watch.out") >= 4)); then
	ok "watch streams one line per epoch"
else
	bad "watch output: $(cat "$TMP/watch.out")"
fi
if grep -q '"paths": \["d/w2"\]' "$TMP/watchd.out" && ! grep -q '"w1"' "$TMP/watchd.out"; then
	ok "watch --json PATH filters"
else
	bad "watch d output: $(cat "$TMP/watchd.out")"
fi
for p in "${WATCH_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
WATCH_PIDS=()

# concurrent writers: watch and the feed epochs/.changes list every epoch
# once, in epoch order (the commits' hooks run on concurrent threads)
"$MMSBCTL" --mount "$MNT" --json watch >"$TMP/watchc.out" 2>&1 &
WATCH_PIDS+=($!)
for _ in $(seq 50); do [[ -s $TMP/watchc.out ]] && break; sleep 0.1; done
F0=$(getfattr -n user.mmsb.head --only-values "$MNT")
WRITERS=()
for w in 1 2 3 4; do
	"$PY" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
for i in range(250):
    os.pwrite(fd, b"%08d" % i, 0)
os.close(fd)' "$MNT/cw$w" &
	WRITERS+=($!)
done
for p in "${WRITERS[@]}"; do wait "$p" || bad "concurrent writer $p failed"; done
F1=$(getfattr -n user.mmsb.head --only-values "$MNT")
for _ in $(seq 50); do grep -q "\"epoch\": *$F1\b" "$TMP/watchc.out" && break; sleep 0.1; done
for p in "${WATCH_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
WATCH_PIDS=()
for src in feed watch; do
	if out=$("$PY" - "$src" "$MNT/epochs/.changes" "$TMP/watchc.out" "$F0" "$F1" <<'PY'
import json, sys
src, feed, watch, f0, f1 = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
if src == "feed":
    eps = [int(l.split(" ", 1)[0]) for l in open(feed) if l.strip()]
else:
    eps = [json.loads(l)["epoch"] for l in open(watch) if l.startswith("{")]
eps = [e for e in eps if f0 < e <= f1]
want = list(range(f0 + 1, f1 + 1))
if eps != want:
    i = next(i for i in range(len(want)) if i >= len(eps) or eps[i] != want[i])
    print("%d lines for epochs %d..%d; first wrong at line %d: %s" % (len(eps), f0 + 1, f1, i, eps[max(0, i - 3):i + 4]))
    sys.exit(1)
print("%d epochs" % len(eps))
PY
	); then
		ok "$src: every epoch of 4 concurrent writers once, in order ($out)"
	else
		bad "$src out of order: $out"
	fi
done

m verify
expect "verify" 0 "^ok +verified"

m export first "$TMP/exp1"
expect "export (through the mount)" 0 "exported epoch $E1"
diff -r "$MNT/epochs/$E1" "$TMP/exp1" >"$TMP/d.out" 2>&1 && ok "export equals epochs/E" ||
	bad "export differs: $(head -5 "$TMP/d.out")"
[[ $(getfattr --only-values -n user.color "$TMP/exp1/a" 2>/dev/null) == blue ]] && ok "export keeps user xattrs" ||
	bad "exported xattr: $(getfattr -d "$TMP/exp1/a" 2>&1)"
[[ $(readlink "$TMP/exp1/ln") == a ]] && ok "export keeps symlinks" || bad "exported symlink"
m export head "$TMP/exp-head"
diff -r "$MNT" "$TMP/exp-head" >"$TMP/d.out" 2>&1 && ok "export head equals the mount" ||
	bad "export head differs: $(head -5 "$TMP/d.out")"
m export head "$TMP/exp-head"
expect "export into a non-empty directory" 1 "not empty"

# tag / untag, compaction
m tag mark head
expect "tag NAME E" 0 "^epoch"
m untag mark
expect "untag" 0 "^epoch"
m untag mark
expect "untag of an unknown tag" 1 "no tag named 'mark'"
m checkpoint --tag second
E2=$(field epoch)
m compact --before second
expect "compact refuses to drop a tag" 1 "--force"
m compact --before second --force
expect "compact --force" 0 "^oldest +$E2"
m diff "$E1" head
expect "compacted epoch is gone" 1 "no longer retained"
m log a
expect "history before the compaction is gone" 0 "^epoch"
grep -q "write +a" "$OUT" && bad "log still shows writes from before the compaction" || ok "log starts at the compaction"
printf 'after' | dd of="$MNT/a" conv=notrunc status=none
rm -rf "$TMP/exp-head"
m export head "$TMP/exp-head" # what the offline export is compared with below

# error cases
m diff 999999 head
expect "unknown epoch" 1 "beyond head"
m diff nosuchtag head
expect "unknown tag" 1 "unknown epoch or tag 'nosuchtag'"
m restore nosuchtag
expect "restore of an unknown tag" 1 "unknown epoch or tag"
m diff
expect "diff without epochs (usage)" 2 "usage: mmsbctl diff"
m log -n many
expect "log -n NaN (usage)" 2 "usage"
m checkpoint --bogus
expect "unknown option (usage)" 2 "unknown option"
m frobnicate
expect "unknown command (usage)" 2 "unknown command"
m export head
expect "export without DIR (usage)" 2 "usage"
m checkpoint --tag 123
expect "bad tag name" 1 "bad tag name"
m --help
expect "--help" 0 "usage: mmsbctl"
m diff --help
expect "CMD --help" 0 "mmsbctl .*diff E1 E2"
m help watch
expect "help CMD" 0 "watch"

# a caller the socket refuses
asnobody() {
	if command -v setpriv >/dev/null; then
		setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
	else
		su -s /bin/sh nobody -c "$(printf '%q ' "$@")"
	fi
}
asnobody "$MMSBCTL" --store "$STORE" status >"$OUT" 2>"$OUT.err"
RC=$?
expect "another user cannot reach the socket" 1 "permission denied: the socket belongs to uid 0"
asnobody "$MMSBCTL" --mount "$MNT" checkpoint >"$OUT" 2>"$OUT.err"
RC=$?
expect "another user, found through the mount" 1 "permission denied"
chmod 711 "$STORE"
chmod 666 "$STORE/ctl.sock"
asnobody "$MMSBCTL" --store "$STORE" status >"$OUT" 2>"$OUT.err"
RC=$?
expect "SO_PEERCRED refuses another user" 1 "permission denied: the socket belongs to uid 0"
chmod 600 "$STORE/ctl.sock"
chmod 700 "$STORE"

# ---- offline ----------------------------------------------------------------------------

cd /
fusermount3 -u "$MNT"
for _ in $(seq 50); do [[ -e $STORE/ctl.sock ]] || break; sleep 0.1; done
[[ ! -e $STORE/ctl.sock ]] && ok "socket removed at unmount" || bad "ctl.sock left behind"
for _ in $(seq 50); do [[ -e $STORE/LOCK ]] && flock -n "$STORE/LOCK" true && break; sleep 0.1; done

ctl --store "$STORE" status
expect "offline status" 0 "^access +read-only"
ctl --store "$STORE" log a
expect "offline log" 0 "write +a"
ctl --store "$STORE" diff second head --stat
expect "offline diff" 0 "bytes changed"
ctl --store "$STORE" checkpoints --json
json_ok "offline checkpoints --json" "any(c['epoch'] == $E2 and 'second' in c['tags'] for c in d)"
ctl --store "$STORE" tags
expect "offline tags" 0 "second"
ctl --store "$STORE" verify
expect "offline verify" 0 "^ok +verified"
ctl --store "$STORE" export head "$TMP/exp-off"
expect "offline export" 0 "exported epoch"
diff -r "$TMP/exp-head" "$TMP/exp-off" >"$TMP/d.out" 2>&1 && ok "offline export equals the online one" ||
	bad "offline export differs: $(head -5 "$TMP/d.out")"
ctl --store "$STORE" checkpoint
expect "offline write command" 1 "no daemon is running on $STORE; mount it first"
ctl --store "$STORE" watch
expect "offline watch" 1 "no daemon is running"
ctl --store "$STORE" diff 999999 head
expect "offline unknown epoch" 1 "beyond head"
ctl --mount "$MNT" status
expect "--mount on something that is not mounted" 1 "not in an mmsbfs mount"

# a stale socket (daemon killed) is treated as no daemon, then replaced
$PY -c "import socket; s=socket.socket(socket.AF_UNIX); s.bind('$STORE/ctl.sock')"
ctl --store "$STORE" status
expect "stale socket: offline mode" 0 "^access +read-only"
mount_it
ctl --store "$STORE" status
expect "remount replaces a stale socket" 0 "^access +read-write"

# damage: verify reports it and fails (offline, on a copy)
cd /
fusermount3 -u "$MNT"
for _ in $(seq 50); do [[ -e $STORE/ctl.sock ]] || break; sleep 0.1; done
cp -a "$STORE" "$TMP/damaged"
seg=$(ls "$TMP/damaged/log/"* | head -1)
size=$(stat -c %s "$seg")
printf 'XXXXXXXX' | dd of="$seg" bs=1 seek=$((size / 3)) conv=notrunc status=none
ctl --store "$TMP/damaged" verify
expect "verify reports damage" 1 "damaged"
grep -q '^error' "$OUT" && ok "verify lists the problems" || bad "verify output: $(cat "$OUT")"

# a malformed tags line is damage: verify says so and exits 1
cp -a "$STORE" "$TMP/badtags"
echo "this is not a tag" >>"$TMP/badtags/tags"
ctl --store "$TMP/badtags" verify
expect "verify: malformed tags line" 1 "malformed line"

# epochs whose log records are damaged: verify names them, and export, diff
# and log refuse them instead of serving an older state
# (a store of 100 writes, a checkpoint, 100 more: one byte flipped in the
# record of write 52, which the checkpoint covers)
"$MMSBFS" "$TMP/lost" "$MNT" || { echo "test_ctl: FAIL: cannot mount"; exit 1; }
for i in $(seq 1 100); do printf 'w%03d' "$i" >"$MNT/f"; done
ctl --mount "$MNT" checkpoint
for i in $(seq 101 200); do printf 'w%03d' "$i" >"$MNT/f"; done
fusermount3 -u "$MNT"
for _ in $(seq 50); do [[ -e $TMP/lost/ctl.sock ]] || break; sleep 0.1; done
seg=$(ls "$TMP/lost/log/"* | head -1)
off=$($PY - "$seg" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read()
print(b.index(b'w052') + 1)
PY
)
printf 'X' | dd of="$seg" bs=1 seek="$off" conv=notrunc status=none
ctl --store "$TMP/lost" verify
lost=$(grep -oE '^lost[[:space:]]+epochs [0-9]+' "$OUT" | grep -oE '[0-9]+$' | head -1)
if [[ -n $lost ]]; then
	ok "verify names the lost epochs (from $lost)"
	ctl --store "$TMP/lost" export "$lost" "$TMP/exp-lost"
	expect "export of a lost epoch fails" 1 "cannot open epoch $lost: Structure needs cleaning"
	ctl --store "$TMP/lost" diff "$lost" head
	expect "diff of a lost epoch fails" 1 "Structure needs cleaning"
	ctl --store "$TMP/lost" log
	expect "log over lost epochs fails after what it can show" 1 "damaged"
else
	bad "verify does not name the lost epochs: $(cat "$OUT")"
fi

echo "test_ctl: $PASSES passed, $FAILS failed"
((FAILS == 0))
