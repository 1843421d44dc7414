#!/bin/bash
# e2e.sh - GPU pages end to end through a real mount:
#   mount, move pages to the GPU, write them with dd, propagate (a derived
#   GPU page recomputed on the GPU), checkpoint, remount, and read epochs/N.
#   Also times dd into a GPU page against a CPU page (MiB/s, median of 3).
#
#   e2e.sh MMSBFS MMSBCTL [cpu]
#
# With "cpu" the daemon runs with -o gpu=cpu (GPU pages served by the CPU
# kernels): the same flow runs on machines without a GPU.  Exits 77
# (skipped) without root, /dev/fuse or (unless cpu) a GPU.  Prints a
# transcript.
set -euo pipefail
export LC_ALL=C

MMSBFS=$(realpath "${1:?usage: e2e.sh MMSBFS MMSBCTL}")
MMSBCTL=$(realpath "${2:?usage: e2e.sh MMSBFS MMSBCTL}")
BACKEND=${3:-gpu}
MOUNT_OPTS=()
[[ $(id -u) == 0 && -c /dev/fuse ]] || { echo "e2e: SKIP: needs root and /dev/fuse"; exit 77; }
if [[ $BACKEND == cpu ]]; then
	MOUNT_OPTS=(-o gpu=cpu)
else
	command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || { echo "e2e: SKIP: no GPU"; exit 77; }
fi
command -v setfattr >/dev/null || { echo "e2e: SKIP: no setfattr (attr)"; exit 77; }

TMP=$(mktemp -d /tmp/mmsb-gpu-e2e.XXXXXX)
STORE=$TMP/store MNT=$TMP/mnt
mkdir -p "$MNT"
cleanup() { # the daemon may still be closing the store after the unmount: wait for its lock
	cd /
	if mountpoint -q "$MNT"; then fusermount3 -u "$MNT" || true; fi
	if [[ -e $STORE/LOCK ]]; then timeout 60 flock "$STORE/LOCK" true || true; fi
	rm -rf "$TMP" || true
}
trap cleanup EXIT
fail() { echo "e2e: FAIL: $*"; exit 1; }
say() { echo "e2e: $*"; }
head_epoch() { getfattr -n user.mmsb.head --only-values "$MNT"; }

# expected a+b over u8, by python (numpy when present)
py_add() {
	python3 - "$1" "$2" "$3" <<'PY'
import sys
a = open(sys.argv[1], "rb").read(); b = open(sys.argv[2], "rb").read()
try:
    import numpy as np
    out = (np.frombuffer(a, np.uint8) + np.frombuffer(b, np.uint8)).astype(np.uint8).tobytes()
except ImportError:
    out = bytes((x + y) & 255 for x, y in zip(a, b))
open(sys.argv[3], "wb").write(out)
PY
}

if [[ $BACKEND == cpu ]]; then
	say "backend: CPU kernels (-o gpu=cpu)"
else
	say "card: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"
fi
"$MMSBFS" "${MOUNT_OPTS[@]}" "$STORE" "$MNT"
cd "$MNT"
dd if=/dev/urandom of=a bs=1M count=8 status=none
dd if=/dev/urandom of=b bs=1M count=8 status=none
: >c
for p in a b c; do setfattr -n user.mmsb.location -v gpu "$p"; done
[[ $(getfattr -n user.mmsb.location --only-values c) == gpu ]] || fail "location not gpu"
setfattr -n user.mmsb.deps -v a,b c
setfattr -n user.mmsb.recompute -v add:u8 c
cp a "$TMP/a0"; cp b "$TMP/b0"
py_add "$TMP/a0" "$TMP/b0" "$TMP/c0"
cmp c "$TMP/c0" || fail "c != a + b after setting the recompute"
E0=$(head_epoch)
say "pages a, b, c on the GPU; c = a + b (add:u8) at epoch $E0"

# small writes with dd into a GPU page: each is one epoch, c follows
declare -A SAVED
for i in 1 2 3 4 5; do
	head -c 4096 /dev/urandom >"$TMP/blk"
	dd if="$TMP/blk" of=a bs=4096 seek=$((i * 97)) conv=notrunc status=none
	E=$(head_epoch)
	cp a "$TMP/a$E"
	py_add "$TMP/a$E" "$TMP/b0" "$TMP/c$E"
	cmp c "$TMP/c$E" || fail "c != a + b after write $i (epoch $E)"
	SAVED[$E]=1
done
say "5 dd writes into GPU page a; c recomputed each time (epochs $((E0 + 1))..$E)"
getfattr -d -m user.mmsb c | sed 's/^/e2e:   /'
"$MMSBCTL" --mount "$MNT" checkpoint | sed 's/^/e2e:   checkpoint: /'
dd if=/dev/zero of=b bs=1M count=1 conv=notrunc status=none
EZ=$(head_epoch)
cp a "$TMP/aZ"; cp b "$TMP/bZ"
py_add "$TMP/aZ" "$TMP/bZ" "$TMP/c$EZ"
cmp c "$TMP/c$EZ" || fail "c != a + b after zeroing part of b"
SAVED[$EZ]=1

cd /
fusermount3 -u "$MNT"
"$MMSBFS" "${MOUNT_OPTS[@]}" "$STORE" "$MNT"
cd "$MNT"
[[ $(getfattr -n user.mmsb.location --only-values a) == gpu ]] || fail "location lost across remount"
cmp c "$TMP/c$EZ" || fail "head c differs after remount"
for E in "${!SAVED[@]}"; do
	cmp "epochs/$E/c" "$TMP/c$E" || fail "epochs/$E/c differs"
done
say "remounted: head and epochs/{${!SAVED[*]}}/c equal what was written"
"$MMSBCTL" --mount "$MNT" log c -n 4 | sed 's/^/e2e:   /'

# dd throughput into a GPU page and a CPU page (1 MiB writes, 256 MiB)
head -c $((256 << 20)) /dev/urandom >"$TMP/r1"
head -c $((256 << 20)) /dev/urandom >"$TMP/r2"
rate() { # median MiB/s of 3 passes, each with bytes different from the last
	local f=$1 v=() i t0 t1
	for i in 1 2 3; do
		t0=$(date +%s%N)
		dd if="$TMP/r$((i % 2 + 1))" of="$f" bs=1M conv=notrunc status=none
		t1=$(date +%s%N)
		v+=($(((256 * 1000000000) / (t1 - t0))))
	done
	printf '%s\n' "${v[@]}" | sort -n | sed -n 2p
}
: >gpu_page && setfattr -n user.mmsb.location -v gpu gpu_page
: >cpu_page
say "dd 256 MiB of random bytes, 1 MiB writes (MiB/s, median of 3): gpu page $(rate gpu_page), cpu page $(rate cpu_page)"
cd /
fusermount3 -u "$MNT"

# -o gpu_mem: a page that does not fit the cap gets ENOSPC at setfattr and
# stays in host memory with its bytes; one that fits goes to the GPU
STORE2=$TMP/store2
"$MMSBFS" "${MOUNT_OPTS[@]}" -o gpu_mem=4M "$STORE2" "$MNT"
cd "$MNT"
head -c $((3 << 20)) /dev/urandom >"$TMP/p3"
head -c $((2 << 20)) /dev/urandom >"$TMP/p2"
cp "$TMP/p3" p3
cp "$TMP/p2" p2
setfattr -n user.mmsb.location -v gpu p3
if err=$(setfattr -n user.mmsb.location -v gpu p2 2>&1); then
	fail "a 2 MiB page fitted next to 3 MiB under -o gpu_mem=4M"
fi
[[ $err == *"No space left on device"* ]] || fail "setfattr past gpu_mem: '$err', not ENOSPC"
if getfattr -n user.mmsb.location --only-values p2 >/dev/null 2>&1; then
	fail "p2 has a location after the refused setfattr"
fi
cmp p2 "$TMP/p2" || fail "p2 changed by the refused move"
cmp p3 "$TMP/p3" || fail "p3 differs on the GPU"
setfattr -n user.mmsb.location -v cpu p3
setfattr -n user.mmsb.location -v gpu p2
[[ $(getfattr -n user.mmsb.location --only-values p2) == gpu ]] || fail "p2 not on the GPU after room was made"
cmp p2 "$TMP/p2" || fail "p2 differs on the GPU"
say "-o gpu_mem=4M: 3 MiB page on the GPU, a 2 MiB page refused (ENOSPC) and left in host memory; moved once p3 left"
cd /
fusermount3 -u "$MNT"
say "PASS"
