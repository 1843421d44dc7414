#!/bin/bash
# test_concurrency.sh MMSBFS: concurrent writers, then the final bytes, then the same
# after unmount + remount (replay), then fio with crc32c verification.  All at once:
#
#   own:    NW python processes, each on its own page, random pwrites (seeded)
#   stripe: NW python processes on ONE 64 KiB page; writer w owns the 512-byte stripes
#           with stripe % NW == w (so every 4 KiB page is shared by all writers);
#           whole-stripe pwrites; a reader checks that every stripe it reads is whole
#           (one write's bytes: each write(2) is one transaction)
#   dd:     2 shell writers with dd conv=notrunc on their own pages
#   tt:     1 writer making 300 versions of a page, recording (head epoch, digest) after
#           each; a reader reads random recorded epochs/N/tt meanwhile and checks digests
#   meta:   3 processes creating / renaming / unlinking files and making / removing
#           directories in one directory while another process lists it
# Expected bytes are recomputed from the same seeds.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
lib_init "${1:-}"

NW=4
CONC=$TEST_TMP/conc.py
cat >"$CONC" <<'EOF'
import os, random, sys, time
NW = 4
OWN_SIZE = 1 << 20
OWN_OPS = 300
STRIPE = 512
SHARED_SIZE = 65536
NSTRIPES = SHARED_SIZE // STRIPE
STRIPE_OPS = 400

def own_ops(w):
    r = random.Random(1000 + w)
    for i in range(OWN_OPS):
        n = r.randint(1, 20000)
        off = r.randrange(0, OWN_SIZE - n)
        yield off, r.randbytes(n)

def stripe_payload(w, it, s):
    head = ("w=%d it=%06d s=%03d|" % (w, it, s)).encode()
    return (head * (STRIPE // len(head) + 1))[:STRIPE]

def stripe_ops(w):
    r = random.Random(2000 + w)
    mine = [s for s in range(NSTRIPES) if s % NW == w]
    for it in range(1, STRIPE_OPS + 1):
        s = r.choice(mine)
        yield s, stripe_payload(w, it, s)

def expected_own(w):
    b = bytearray(OWN_SIZE)
    for off, data in own_ops(w):
        b[off:off + len(data)] = data
    return bytes(b)

def expected_shared():
    b = bytearray(SHARED_SIZE)
    for w in range(NW):
        for s, data in stripe_ops(w):
            b[s * STRIPE:(s + 1) * STRIPE] = data
    return bytes(b)

def first_diff(a, b):
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return i
    return min(len(a), len(b))

def check(path, exp, what):
    with open(path, "rb") as f:
        got = f.read()
    if got != exp:
        i = first_diff(got, exp)
        sys.exit("FAIL: %s: %s differs from the expected bytes: size %d (expected %d), first difference at offset %d: "
                 "expected %r, got %r" % (what, path, len(got), len(exp), i, exp[i:i + 24], got[i:i + 24]))

mode, mnt = sys.argv[1], sys.argv[2]
if mode == "own":
    w = int(sys.argv[3])
    fd = os.open("%s/own%d" % (mnt, w), os.O_WRONLY)
    for off, data in own_ops(w):
        if os.pwrite(fd, data, off) != len(data):
            sys.exit("FAIL: short pwrite")
    os.close(fd)
elif mode == "stripe":
    w = int(sys.argv[3])
    fd = os.open("%s/shared" % mnt, os.O_WRONLY)
    for s, data in stripe_ops(w):
        if os.pwrite(fd, data, s * STRIPE) != STRIPE:
            sys.exit("FAIL: short pwrite")
    os.close(fd)
elif mode == "reader":
    stop = sys.argv[3]
    reads = 0
    while not os.path.exists(stop):
        fd = os.open("%s/shared" % mnt, os.O_RDONLY)
        data = os.pread(fd, SHARED_SIZE, 0)
        os.close(fd)
        reads += 1
        for s in range(NSTRIPES):
            blk = data[s * STRIPE:(s + 1) * STRIPE]
            if blk == bytes(STRIPE):
                continue
            try:
                hdr = blk[:blk.index(b"|") + 1].decode()
                w, it = int(hdr.split()[0][2:]), int(hdr.split()[1][3:])
            except Exception:
                sys.exit("FAIL: reader: stripe %d is not one whole write: %r" % (s, blk[:40]))
            if blk != stripe_payload(w, it, s):
                sys.exit("FAIL: reader: stripe %d torn: header %r but the bytes are not that write's" % (s, hdr))
    print("reader: %d whole-file reads, every stripe whole" % reads)
elif mode == "ttwriter":
    # versions of one page; after each write, the head epoch and the page's digest
    import hashlib
    journal = sys.argv[3]
    r = random.Random(3000)
    cur = bytearray(65536)
    fd = os.open("%s/tt" % mnt, os.O_WRONLY)
    with open(journal, "a") as j:
        for i in range(300):
            n = r.randint(1, 4096)
            off = r.randrange(0, 65536 - n)
            data = bytearray(r.randbytes(n))
            data[0] = cur[off] ^ 0x5A  # always a change
            os.pwrite(fd, bytes(data), off)
            cur[off:off + n] = data
            e = int(os.getxattr(mnt, "user.mmsb.head"))
            j.write("%d %s\n" % (e, hashlib.sha256(cur).hexdigest()))
            j.flush()
    os.close(fd)
elif mode == "ttreader":
    # reads recorded epochs of the page while the writers go on
    import hashlib
    journal, stop = sys.argv[3], sys.argv[4]
    r = random.Random(4000)
    checks = 0
    while True:
        done = os.path.exists(stop)
        try:
            with open(journal) as j:
                lines = [l.split() for l in j if l.endswith("\n")]
        except FileNotFoundError:
            lines = []
        for e, digest in (r.sample(lines, min(len(lines), 20)) if lines else []):
            with open("%s/epochs/%s/tt" % (mnt, e), "rb") as f:
                got = f.read()
            if hashlib.sha256(got).hexdigest() != digest:
                sys.exit("FAIL: ttreader: epochs/%s/tt (%d bytes) is not the page as written at epoch %s" % (e, len(got), e))
            checks += 1
        if done:
            break
        time.sleep(0.01)
    print("ttreader: %d time-travel reads during the writes, all equal to what was written then" % checks)
elif mode == "ttcheck":
    # every recorded epoch of the page
    import hashlib
    n = 0
    for line in open(sys.argv[3]):
        e, digest = line.split()
        with open("%s/epochs/%s/tt" % (mnt, e), "rb") as f:
            got = f.read()
        if hashlib.sha256(got).hexdigest() != digest:
            sys.exit("FAIL: ttcheck: epochs/%s/tt (%d bytes) is not the page as written at epoch %s" % (e, len(got), e))
        n += 1
    print("ttcheck: all %d recorded epochs of tt match" % n)
elif mode == "meta":
    # create / write / rename / unlink / mkdir / rmdir in one shared directory
    p = int(sys.argv[3])
    d = "%s/meta" % mnt
    for i in range(150):
        name = "%s/p%d_%03d" % (d, p, i)
        with open(name, "wb") as f:
            f.write(b"p%d i%d\n" % (p, i))
        os.rename(name, name + ".r")
        if i % 3 == 0:
            os.unlink(name + ".r")
        os.mkdir("%s/d%d_%03d" % (d, p, i))
        if i % 2 == 0:
            os.rmdir("%s/d%d_%03d" % (d, p, i))
elif mode == "lister":
    stop = sys.argv[3]
    n = 0
    while not os.path.exists(stop):
        for e in os.listdir("%s/meta" % mnt):
            try:
                os.lstat("%s/meta/%s" % (mnt, e))
            except FileNotFoundError:
                pass
        n += 1
    print("lister: %d listings of the shared directory" % n)
elif mode == "verify":
    for w in range(NW):
        check("%s/own%d" % (mnt, w), expected_own(w), "own page of writer %d" % w)
    check("%s/shared" % mnt, expected_shared(), "shared page (writers on distinct 512-byte stripes)")
    # the shared directory of the metadata writers
    want = {}
    for p in range(3):
        for i in range(150):
            if i % 3:
                want["p%d_%03d.r" % (p, i)] = b"p%d i%d\n" % (p, i)
            if i % 2:
                want["d%d_%03d" % (p, i)] = None
    got = set(os.listdir("%s/meta" % mnt))
    if got != set(want):
        sys.exit("FAIL: meta/: expected %d entries, got %d; missing %s; unexpected %s" % (
            len(want), len(got), sorted(set(want) - got)[:5], sorted(got - set(want))[:5]))
    for k, v in want.items():
        if v is not None:
            check("%s/meta/%s" % (mnt, k), v, "file of a metadata writer")
    print("verify: %d own pages, the shared page and %d entries of meta/ match" % (NW, len(want)))
EOF

dd_writer() { # dd_writer DIR W
	local i
	for ((i = 0; i < 100; i++)); do
		dd if="$TEST_TMP/seed" of="$1/dd$2" bs=4096 skip=$(((i * 7 + $2) % 256)) seek=$(((i * 13) % 64)) count=1 \
			conv=notrunc status=none || return 1
	done
}

gen_data 3 $((1024 * 1024)) "$TEST_TMP/seed"
mkdir -p "$TEST_TMP/ref"

t_writers() {
	local pids=() p w rc=0
	for ((w = 0; w < NW; w++)); do truncate -s 1M "$MNT/own$w"; done
	truncate -s 64K "$MNT/shared"
	truncate -s 256K "$MNT/dd0" "$MNT/dd1"
	truncate -s 256K "$TEST_TMP/ref/dd0" "$TEST_TMP/ref/dd1"
	truncate -s 64K "$MNT/tt"
	mkdir "$MNT/meta"
	rm -f "$TEST_TMP/stop" "$TEST_TMP/tt.journal"
	"$PY" "$CONC" reader "$MNT" "$TEST_TMP/stop" >"$TEST_TMP/reader.out" 2>&1 &
	local reader=$!
	"$PY" "$CONC" ttreader "$MNT" "$TEST_TMP/tt.journal" "$TEST_TMP/stop" >"$TEST_TMP/ttreader.out" 2>&1 &
	local ttreader=$!
	"$PY" "$CONC" lister "$MNT" "$TEST_TMP/stop" >"$TEST_TMP/lister.out" 2>&1 &
	local lister=$!
	"$PY" "$CONC" ttwriter "$MNT" "$TEST_TMP/tt.journal" &
	pids+=($!)
	for ((w = 0; w < 3; w++)); do
		"$PY" "$CONC" meta "$MNT" "$w" &
		pids+=($!)
	done
	for ((w = 0; w < NW; w++)); do
		"$PY" "$CONC" own "$MNT" "$w" &
		pids+=($!)
		"$PY" "$CONC" stripe "$MNT" "$w" &
		pids+=($!)
	done
	dd_writer "$MNT" 0 &
	pids+=($!)
	dd_writer "$MNT" 1 &
	pids+=($!)
	for p in "${pids[@]}"; do
		wait "$p" || rc=$?
	done
	touch "$TEST_TMP/stop"
	# the reference of the dd writers (sequential on a normal file system)
	dd_writer "$TEST_TMP/ref" 0
	dd_writer "$TEST_TMP/ref" 1
	wait "$reader" || fail "concurrent reader: $(cat "$TEST_TMP/reader.out")"
	log "$(cat "$TEST_TMP/reader.out")"
	wait "$ttreader" || fail "concurrent time-travel reader: $(cat "$TEST_TMP/ttreader.out")"
	log "$(cat "$TEST_TMP/ttreader.out")"
	wait "$lister" || fail "concurrent lister of meta/: $(cat "$TEST_TMP/lister.out")"
	log "$(cat "$TEST_TMP/lister.out")"
	((rc == 0)) || fail "a concurrent writer failed (status $rc)"
}

t_verify() {
	local what=$1 out
	out=$("$PY" "$CONC" verify "$MNT" 2>&1) || fail "$what: $out"
	log "$what: $out"
	same_file "$what: dd writer 0" "$TEST_TMP/ref/dd0" "$MNT/dd0"
	same_file "$what: dd writer 1" "$TEST_TMP/ref/dd1" "$MNT/dd1"
}

t_fio() {
	local out
	command -v fio >/dev/null || skip_section "fio is not installed"
	out=$(cd "$TEST_TMP" && timeout 120 fio --name=v --filename="$MNT/fiofile" --size=16m --rw=randwrite --bs=4k \
		--verify=crc32c --do_verify=1 2>&1) || fail "fio randwrite with crc32c verification failed: $(tail -n 30 <<<"$out")"
	log "fio: $(grep -E 'WRITE:|READ:' <<<"$out" | tr -s ' ' | tr '\n' ' ')"
}

t_fio_verify_only() {
	local out
	command -v fio >/dev/null || skip_section "fio is not installed"
	[[ -e "$MNT/fiofile" ]] || fail "fiofile missing after remount"
	out=$(cd "$TEST_TMP" && timeout 120 fio --name=v --filename="$MNT/fiofile" --size=16m --rw=randwrite --bs=4k \
		--verify=crc32c --verify_only=1 2>&1) || fail "fio --verify_only after remount failed: $(tail -n 30 <<<"$out")"
}

t_verify_live() { t_verify "live"; }
t_verify_after_remount() {
	t_verify "after remount"
	local h
	h=$(head_epoch)
	local out
	out=$("$PY" "$CONC" verify "$MNT/epochs/$h" 2>&1) || fail "epochs/$h (head) after remount: $out"
	out=$("$PY" "$CONC" ttcheck "$MNT" "$TEST_TMP/tt.journal" 2>&1) || fail "time travel after remount: $out"
	log "after remount: $out"
}

mnt_mount_fg
section t_writers
section t_verify_live
section t_fio
mnt_umount
mnt_mount_fg
section t_verify_after_remount
section t_fio_verify_only
mnt_umount
lib_finish
