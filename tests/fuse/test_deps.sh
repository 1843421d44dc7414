#!/bin/bash
# test_deps.sh - dependency edges through a real mount, and the change feed.
#
#   test_deps.sh MMSBFS
#
# setfattr deps/recompute; a parent's write(2) recomputes its dependents in
# the same epoch and an already-open reader of a dependent sees the new bytes
# at once (kernel caches invalidated); ELOOP, ENOENT, EINVAL, EPERM at
# setfattr; user.mmsb.error; exec: with and without -o allow_exec; deps in
# epochs/N; the epochs/.changes feed (tail -f, poll(2)).
set -euo pipefail
export LC_ALL=C
MMSBFS=$(realpath "${1:?usage: test_deps.sh MMSBFS}")
[[ $(id -u) == 0 && -c /dev/fuse ]] || { echo "test_deps: SKIP: needs root and /dev/fuse"; exit 77; }
command -v setfattr >/dev/null || { echo "test_deps: SKIP: no setfattr"; exit 77; }
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

TMP=$(mktemp -d /tmp/mmsb-deps.XXXXXX)
STORE=$TMP/store MNT=$TMP/mnt
mkdir -p "$MNT"
cleanup() { # the daemon may still be closing the store after the unmount: wait for its lock
	cd /
	if mountpoint -q "$MNT"; then fusermount3 -u "$MNT" || true; fi
	if [[ -e $STORE/LOCK ]]; then timeout 60 flock "$STORE/LOCK" true || true; fi
	rm -rf "$TMP" || true
}
trap cleanup EXIT
PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { # check WHAT WANT GOT
	if [[ "$2" == "$3" ]]; then ok "$1"; else bad "$1: want '$2', got '$3'"; fi
}
errno_of() { # errno name of: setfattr -n NAME -v VALUE FILE
	"$PY" - "$@" <<'PY'
import errno, os, sys
try:
    os.setxattr(sys.argv[3], sys.argv[1], sys.argv[2].encode())
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])
PY
}
mount_it() {
	"$MMSBFS" "$@" "$STORE" "$MNT"
}
head_epoch() { getfattr -n user.mmsb.head --only-values "$MNT"; }

mount_it
cd "$MNT"
printf 'aaaa' >a
: >b
: >c
setfattr -n user.mmsb.deps -v a b
setfattr -n user.mmsb.recompute -v copy b
setfattr -n user.mmsb.deps -v b c
setfattr -n user.mmsb.recompute -v copy c
check "setting the operation recomputes at once" aaaa "$(cat c)"

# an already-open reader of c sees the bytes right after a's write returns
exec 3<c
check "open reader, before" aaaa "$(dd bs=4 count=1 status=none <&3)"
printf 'bbbb' >a
E=$(head_epoch)
check "open reader sees the recomputed bytes" bbbb "$("$PY" -c 'import os; print(os.pread(3, 4, 0).decode())')"
exec 3<&-
check "dependents changed in the parent's epoch" "$E $E" "$(getfattr -n user.mmsb.epoch --only-values b) $(getfattr -n user.mmsb.epoch --only-values c)"

# refusals
check "cycle" ELOOP "$(errno_of user.mmsb.deps c a)"
check "unknown parent" ENOENT "$(errno_of user.mmsb.deps nope a)"
check "bad operation" EINVAL "$(errno_of user.mmsb.recompute frobnicate a)"
check "error attribute is read-only" EPERM "$(errno_of user.mmsb.error x c)"
check "exec: without -o allow_exec" EPERM "$(errno_of user.mmsb.recompute 'exec:cat' c)"
mkdir dir
check "a directory cannot be derived" EISDIR "$(errno_of user.mmsb.deps a dir)"

# a failing recompute: xor of parents of different sizes
printf '12' >x1
printf '345' >x2
: >x3
setfattr -n user.mmsb.deps -v 'x1,x2' x3
check "incompatible sizes at setfattr" EINVAL "$(errno_of user.mmsb.recompute xor x3)"
printf '34' >x2
setfattr -n user.mmsb.recompute -v xor x3
printf '345' >x2
if getfattr -n user.mmsb.error --only-values x3 2>/dev/null | grep -q sizes; then
	ok "failing recompute sets user.mmsb.error"
else
	bad "user.mmsb.error not set"
fi
printf '456' >x1
if getfattr -n user.mmsb.error x3 >/dev/null 2>&1; then bad "error not cleared"; else ok "next good recompute clears the error"; fi

# deps as they were, in epochs/N
check "epochs/E shows deps" a "$(getfattr -n user.mmsb.deps --only-values "epochs/$E/b")"
check "epochs/E/c bytes" bbbb "$(cat "epochs/$E/c")"

# the change feed
SIZE0=$(stat -c %s epochs/.changes)
timeout 5 tail -c 0 -f epochs/.changes >"$TMP/feed" &
TAILPID=$!
sleep 1.2
printf 'cccc' >a
E2=$(head_epoch)
sleep 2.5
kill "$TAILPID" 2>/dev/null || true
wait "$TAILPID" 2>/dev/null || true
if grep -qE "^$E2 [0-9T:.-]+Z user [0-9]+ .*a" "$TMP/feed" && grep -E "^$E2 " "$TMP/feed" | grep -q "c"; then
	ok "tail -f epochs/.changes shows the epoch with its recomputed paths"
else
	bad "feed: want a line for epoch $E2 naming a and c, got: $(cat "$TMP/feed")"
fi
[[ $(stat -c %s epochs/.changes) -gt $SIZE0 ]] && ok "the feed's size grows" || bad "feed size did not grow"
if "$PY" - "$MNT" <<'PY'
import os, select, sys, threading, time
mnt = sys.argv[1]
fd = os.open(mnt + "/epochs/.changes", os.O_RDONLY)
os.lseek(fd, 0, os.SEEK_END)
os.read(fd, 1 << 20)
p = select.poll()
p.register(fd, select.POLLIN)
assert p.poll(200) == [], "ready before any commit"
threading.Timer(0.3, lambda: open(mnt + "/a", "w").write("dddd")).start()
ev = p.poll(5000)
assert ev and ev[0][1] & select.POLLIN, "no POLLIN after a commit"
line = os.read(fd, 4096).decode()
assert " a" in line or ",a" in line, line
PY
then ok "poll(2) wakes at the next commit"; else bad "poll(2) on the feed"; fi
check "writes to the feed are refused" EROFS "$("$PY" -c '
import errno, os, sys
try:
    os.open(sys.argv[1], os.O_WRONLY); print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])' "$MNT/epochs/.changes")"

# exec: with -o allow_exec (and the timeout)
cd /
fusermount3 -u "$MNT"
mount_it -o allow_exec,exec_timeout=500
cd "$MNT"
: >up
setfattr -n user.mmsb.deps -v a up
setfattr -n user.mmsb.recompute -v 'exec:tr a-z A-Z <' up
check "exec: recompute" DDDD "$(cat up)"
printf 'eeee' >a
check "exec: follows its parent" EEEE "$(cat up)"
setfattr -n user.mmsb.recompute -v 'exec:sleep 3; cat' up
if getfattr -n user.mmsb.error --only-values up 2>/dev/null | grep -q "timed out"; then ok "exec: timeout"; else bad "exec: timeout not reported"; fi
check "a timed-out exec leaves the bytes" EEEE "$(cat up)"

# replay: remount and the derived pages and errors are as they were
cd /
fusermount3 -u "$MNT"
mount_it
cd "$MNT"
check "after remount" "eeee eeee EEEE" "$(cat b) $(cat c) $(cat up)"
cd /
echo "$PASS passed, $FAIL failed"
[[ $FAIL == 0 ]]
