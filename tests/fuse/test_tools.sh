#!/bin/bash
# test_tools.sh MMSBFS: ordinary tools on a mounted mmsbfs (dd, cp, cat, cmp, truncate,
# mv, rm, mkdir, ln, tar, rsync, getfattr/setfattr, python3 mmap / np.memmap), the
# epochs/ directory seen by tools, time travel over 50 versions, drop_caches, remount,
# read-only and show_epochs mounts, option and start-up errors.
#
# Everything written to $MNT/w is mirrored on a normal file system under $REF, and
# compared after every stage (live, after drop_caches, after remount).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
lib_init "${1:-}"

REF=$TEST_TMP/ref        # mirror of $MNT/w
VERS=$TEST_TMP/versions  # time travel: versions/<v>/<file>
CUR=$TEST_TMP/cur        # time travel: current expected bytes
EPOCHS_LIST=$TEST_TMP/epochs.list # "<v> <epoch>" per version
mkdir -p "$REF" "$VERS" "$CUR"
gen_data 1 $((3 * 1024 * 1024 + 123)) "$TEST_TMP/seed1"
gen_data 2 100000 "$TEST_TMP/seed2"

# Metadata listing of a tree (no times): path type mode owner size(files) link target.
tree_meta() {
	(cd "$1" && find . -mindepth 1 \( -type f -printf '%P %y %m %U:%G %s\n' \) -o \( ! -type f -printf '%P %y %m %U:%G %l\n' \) | sort)
}

# compare_trees WHAT EXPECTED_DIR GOT_DIR: bytes, types, modes, owners, link targets.
compare_trees() {
	local what=$1 exp=$2 got=$3 out
	if ! out=$(diff -r --no-dereference "$exp" "$got" 2>&1); then
		fail "$what: contents of $got differ from $exp: $(head -c 2000 <<<"$out")"
	fi
	if ! out=$(diff <(tree_meta "$exp") <(tree_meta "$got")); then
		fail "$what: metadata of $got differs from $exp (< expected, > got): $(head -c 2000 <<<"$out")"
	fi
}

# ---- start-up and options (before the main mount) --------------------------------

t_cli() {
	local out rc m2=$TEST_TMP/m2 s2=$TEST_TMP/s2
	mkdir -p "$m2"
	set +e
	out=$("$MMSBFS" -h 2>&1)
	rc=$?
	set -e
	[[ $rc -eq 0 ]] || fail "mmsbfs -h: expected exit 0, got $rc: $out"
	[[ -n "$out" ]] || fail "mmsbfs -h: expected a usage text, got nothing"
	set +e
	out=$("$MMSBFS" -V 2>&1)
	rc=$?
	set -e
	[[ $rc -eq 0 ]] || fail "mmsbfs -V: expected exit 0, got $rc: $out"
	[[ $out == *0.1.0* ]] || fail "mmsbfs -V: expected the version 0.1.0 in '$out'"
	set +e
	out=$(timeout 20 "$MMSBFS" -o no_such_option "$s2" "$m2" 2>&1)
	rc=$?
	set -e
	if is_mounted "$m2"; then
		fusermount3 -u "$m2" || true
		fail "mmsbfs -o no_such_option: expected an error and no mount, but $m2 got mounted"
	fi
	[[ $rc -eq 1 ]] || fail "mmsbfs -o no_such_option: expected exit 1, got $rc: $out"
	[[ -n "$out" ]] || fail "mmsbfs -o no_such_option: expected an error message, got nothing"
	set +e
	out=$(timeout 20 "$MMSBFS" 2>&1)
	rc=$?
	set -e
	[[ $rc -ne 0 ]] || fail "mmsbfs without arguments: expected a non-zero exit, got 0"
	set +e
	out=$(timeout 20 "$MMSBFS" "$s2" "$TEST_TMP/no/such/dir" 2>&1)
	rc=$?
	set -e
	[[ $rc -ne 0 ]] || fail "mmsbfs with a missing mount point: expected a non-zero exit, got 0"
	[[ -n "$out" ]] || fail "mmsbfs with a missing mount point: expected an error message"
}

# Daemon mode: `mmsbfs STORE MNT` returns only once the mount works (`mmsbfs S M && ls M`).
t_daemon_mode() {
	local s3=$TEST_TMP/s3
	STORE=$s3 # this subshell only
	mnt_mount
	ls "$MNT" >/dev/null || fail "ls right after mmsbfs returned failed"
	echo hi >"$MNT/f" || fail "write right after mmsbfs returned failed"
	mnt_umount
	pid_alive "$DAEMON_PID" 2>/dev/null && fail "daemon still running after unmount"
	rm -rf "$s3"
}

# ---- tools on the live tree -----------------------------------------------------

t_basic() {
	local m=$MNT/w/basic r=$REF/basic d
	for d in "$m" "$r"; do
		mkdir -p "$d/x/y/z"
		echo "hello world" >"$d/hello"
		printf 'line1\nline2\n' >>"$d/hello"
		cp "$TEST_TMP/seed2" "$d/copy"
		cp "$d/copy" "$d/copy2"
		cat "$d/hello" "$d/hello" >"$d/cat2"
		truncate -s 50000 "$d/copy2"
		truncate -s 123456 "$d/copy2"
		truncate -s 0 "$d/cat2"
		echo again >"$d/cat2"
		ln -s hello "$d/link"
		ln -s ../../nowhere "$d/x/dangling"
		mv "$d/copy2" "$d/x/y/moved"
		mv "$d/x/y/z" "$d/zdir"
		mkdir -p "$d/gone/a/b"
		touch "$d/gone/a/b/f" "$d/gone/a/g"
		rm -r "$d/gone"
		chmod 0600 "$d/hello"
		chmod 0750 "$d/x"
		echo overwrite >"$d/copy"
		cp -a "$d/x" "$d/xcopy"
	done
	expect_eq "cat through a symlink" "$(cat "$r/link")" "$(cat "$m/link")"
	expect_eq "readlink" "hello" "$(readlink "$m/link")"
	expect_eq "stat size after truncate" 123456 "$(stat -c %s "$m/x/y/moved")"
	expect_eq "stat mode" 600 "$(stat -c %a "$m/hello")"
	[[ ! -e "$m/gone" ]] || fail "rm -r: expected $m/gone to be gone"
	ls -l "$m" >/dev/null
	compare_trees basic "$r" "$m"
}

t_dd() {
	local m=$MNT/w/dd r=$REF/dd d
	for d in "$m" "$r"; do
		mkdir -p "$d"
		dd if="$TEST_TMP/seed1" of="$d/big" bs=1M status=none
		dd if="$TEST_TMP/seed2" of="$d/big" bs=1000 seek=5 count=7 conv=notrunc status=none
		dd if="$TEST_TMP/seed2" of="$d/big" bs=1 seek=3145700 count=1000 conv=notrunc status=none
		dd if=/dev/zero of="$d/big" bs=4096 seek=100 count=3 conv=notrunc status=none
		dd if="$TEST_TMP/seed2" of="$d/big" bs=777 count=3 oflag=append conv=notrunc status=none
		dd if="$TEST_TMP/seed2" of="$d/sparse" bs=4096 seek=300 count=1 status=none
		dd if="$d/big" of="$d/readback" bs=64k status=none
		dd if="$TEST_TMP/seed1" of="$d/onemeg" bs=1M count=1 status=none
		dd if="$TEST_TMP/seed2" of="$d/onemeg" bs=100 seek=1 count=1 conv=notrunc status=none
	done
	same_file "dd bs=1M + conv=notrunc overwrites" "$r/big" "$m/big"
	same_file "dd seek past EOF (sparse)" "$r/sparse" "$m/sparse"
	same_file "dd conv=notrunc partial overwrite of 1 MiB" "$r/onemeg" "$m/onemeg"
	expect_eq "size after conv=notrunc" 1048576 "$(stat -c %s "$m/onemeg")"
	cmp <(dd if="$m/big" bs=1M skip=1 count=1 status=none) <(dd if="$r/big" bs=1M skip=1 count=1 status=none) ||
		fail "dd read of the second MiB differs"
	compare_trees dd "$r" "$m"
}

make_tree() { # make_tree DIR: a varied tree (sizes, modes, owners, symlinks, odd names)
	local t=$1 i
	mkdir -p "$t/a/b/c" "$t/empty" "$t/sp ace/dir"
	for i in 0 1 4095 4096 4097 65536 300001; do
		head -c "$i" "$TEST_TMP/seed1" >"$t/a/f$i"
	done
	head -c 1000 "$TEST_TMP/seed2" >"$t/a/b/c/deep"
	echo "spaced" >"$t/sp ace/file with spaces"
	ln -s ../a/f4096 "$t/sp ace/rel-link"
	ln -s /does/not/exist "$t/a/dangling"
	chmod 0444 "$t/a/f1"
	chmod 0755 "$t/a/f0"
	chmod 0700 "$t/a/b"
	chown 1000:1000 "$t/a/f4097"
	chown -h 1001:1001 "$t/a/dangling"
	touch -d '2001-02-03 04:05:06' "$t/a/f65536"
}

t_tar() {
	local tree=$TEST_TMP/tree m=$MNT/w/tar r=$REF/tar out
	rm -rf "$tree"
	make_tree "$tree"
	mkdir -p "$m" "$r"
	tar c -C "$tree" . | tar x -C "$m" || fail "tar x into the mount failed"
	tar c -C "$tree" . | tar x -C "$r"
	compare_trees "tar x into the mount" "$tree" "$m"
	expect_eq "mtime kept by tar x" "$(stat -c %Y "$tree/a/f65536")" "$(stat -c %Y "$m/a/f65536")"
	# tar c of the mount lists the same tree and extracts to the same bytes
	if ! out=$(diff <(tar c -C "$tree" . | tar t | sort) <(tar c -C "$m" . | tar t | sort)); then
		fail "tar c of the mount lists different members: $out"
	fi
	rm -rf "$TEST_TMP/untar"
	mkdir "$TEST_TMP/untar"
	tar c -C "$m" . | tar x -C "$TEST_TMP/untar"
	compare_trees "tar c of the mount" "$tree" "$TEST_TMP/untar"
	rm -rf "$TEST_TMP/untar"
}

t_rsync() {
	command -v rsync >/dev/null || skip_section "rsync is not installed"
	local tree=$TEST_TMP/tree m=$MNT/w/rsync r=$REF/rsync h1 h2
	[[ -d $tree ]] || make_tree "$tree"
	rsync -a "$tree/" "$m/" || fail "rsync -a into the mount failed"
	rsync -a "$tree/" "$r/"
	compare_trees "rsync -a" "$tree" "$m"
	h1=$(head_epoch)
	rsync -a "$tree/" "$m/" || fail "second rsync -a failed"
	h2=$(head_epoch)
	expect_eq "rsync -a of an unchanged tree must change nothing (head epoch)" "$h1" "$h2"
	echo changed >"$tree/a/f0"
	rsync -a --inplace "$tree/" "$m/"
	rsync -a --inplace "$tree/" "$r/"
	compare_trees "rsync --inplace update" "$r" "$m"
}

t_xattr_tools() {
	local m=$MNT/w/xattr r=$REF/xattr f v
	mkdir -p "$m" "$r"
	echo data >"$m/file"
	echo data >"$r/file"
	f=$m/file
	setfattr -n user.color -v red "$f"
	expect_eq "getfattr user.color" red "$(getfattr --absolute-names -n user.color --only-values "$f")"
	getfattr --absolute-names -d "$f" | grep -qx 'user.color="red"' ||
		fail "getfattr -d: expected user.color=\"red\" in: $(getfattr --absolute-names -d "$f")"
	setfattr -n user.color -v blue "$f"
	expect_eq "getfattr after replace" blue "$(getfattr --absolute-names -n user.color --only-values "$f")"
	setfattr -n user.hex -v 0x00ff00 "$f"
	expect_eq "binary xattr" "user.hex=0x00ff00" "$(getfattr --absolute-names -e hex -n user.hex "$f" | grep user.hex)"
	setfattr -x user.color "$f"
	expect_fail_msg "getfattr of a removed xattr" "No such attribute" getfattr -n user.color "$f"
	expect_fail_msg "setfattr -x of a missing xattr" "No such attribute" setfattr -x user.nothere "$f"
	expect_fail_msg "setfattr user.mmsb.id (read-only)" "Operation not permitted" setfattr -n user.mmsb.id -v 5 "$f"
	expect_fail_msg "setfattr user.mmsb.epoch (read-only)" "Operation not permitted" setfattr -n user.mmsb.epoch -v 5 "$f"
	expect_fail_msg "setfattr -x user.mmsb.version" "Operation not permitted" setfattr -x user.mmsb.version "$f"
	expect_fail_msg "setfattr user.mmsb.reserved" "Operation not permitted" setfattr -n user.mmsb.whatever -v 1 "$f"
	expect_fail_msg "setfattr trusted.x" "Operation not supported" setfattr -n trusted.x -v 1 "$f"
	local names
	names=$(getfattr --absolute-names -d -m '^user\.mmsb\.' "$f")
	[[ -z $names ]] || fail "getfattr -d -m user.mmsb: the read-only names must not be listed: $names"
	for v in user.mmsb.id user.mmsb.epoch user.mmsb.version; do
		[[ $(getfattr --absolute-names -n "$v" --only-values "$f") =~ ^[0-9]+$ ]] || fail "getfattr -n $v: expected a decimal"
	done
	v=$(getfattr --absolute-names -n user.mmsb.id --only-values "$f")
	expect_eq "user.mmsb.id is the inode number" "$(stat -c %i "$f")" "$v"
	setfattr -n user.dir -v yes "$m"
	expect_eq "xattr on a directory" yes "$(getfattr --absolute-names -n user.dir --only-values "$m")"
	# cp -a within the mount: the read-only user.mmsb.* names must not break it
	cp -a "$m/file" "$m/file.cpa" 2>"$TEST_TMP/cp.err" ||
		fail "cp -a inside the mount failed (user.mmsb.* xattrs copied?): $(cat "$TEST_TMP/cp.err")"
	[[ ! -s "$TEST_TMP/cp.err" ]] || log "note: cp -a inside the mount warned: $(cat "$TEST_TMP/cp.err")"
	cp -a "$r/file" "$r/file.cpa"
}

t_python() {
	local m=$MNT/w/py r=$REF/py h0 h1 out
	mkdir -p "$m" "$r"
	h0=$(head_epoch)
	out=$("$PY" - "$m" "$r" <<'EOF'
import mmap, os, random, sys
m, r = sys.argv[1], sys.argv[2]
n = 1 << 20
data = random.Random(7).randbytes(n)
try:
    import numpy as np
except ImportError:
    np = None
for d in (m, r):
    # shared writable mapping: np.memmap when numpy is there, else mmap
    p = os.path.join(d, "mapped")
    with open(p, "wb") as f:
        f.truncate(n)
    if np is not None:
        a = np.memmap(p, dtype=np.uint8, mode="r+", shape=(n,))
        a[:] = np.frombuffer(data, dtype=np.uint8)
        a[4096:8192] = 7
        a.flush()
        del a
    else:
        with open(p, "r+b") as f:
            mm = mmap.mmap(f.fileno(), n)
            mm[:] = data
            mm[4096:8192] = bytes([7]) * 4096
            mm.flush()
            mm.close()
    # read back in the same process through read(2)
    with open(p, "rb") as f:
        got = f.read()
    exp = data[:4096] + bytes([7]) * 4096 + data[8192:]
    if got != exp:
        i = next(i for i in range(min(len(got), len(exp))) if got[i] != exp[i]) if len(got) == len(exp) else -1
        sys.exit("python: %s: read-back differs from what was written through the mapping (size %d vs %d, first diff %d)" % (p, len(got), len(exp), i))
    # plain open(): write, seek, overwrite, fsync
    q = os.path.join(d, "plain")
    with open(q, "wb") as f:
        f.write(b"0123456789" * 1000)
        f.seek(5000)
        f.write(b"python")
        f.flush()
        os.fsync(f.fileno())
    with open(q, "r+b") as f:
        f.seek(0, 2)
        f.write(b"tail")
    # a second mapping modifying a few bytes, then np.fromfile / mmap read
    with open(p, "r+b") as f:
        mm = mmap.mmap(f.fileno(), 0)
        mm[100:104] = b"WXYZ"
        mm.flush()
        mm.close()
print("numpy" if np is not None else "mmap")
EOF
	) || fail "python3 mmap/open test failed: $out"
	log "python3 used: $out"
	same_file "python shared mapping, read by another process" "$r/mapped" "$m/mapped"
	same_file "python open()/write/fsync" "$r/plain" "$m/plain"
	h1=$(head_epoch)
	((h1 > h0)) || fail "python writes: expected new epochs (head > $h0), got $h1"
	# the daemon holds the bytes, not only the kernel's page cache
	same_file "python mapping as seen at epochs/$h1" "$r/mapped" "$MNT/epochs/$h1/w/py/mapped"
}

# ---- epochs/ as seen by tools -------------------------------------------------------

t_epochs_listing() {
	local h out
	h=$(head_epoch)
	out=$(ls "$MNT/epochs")
	grep -qx head <<<"$out" || fail "ls epochs/: expected 'head' in: $out"
	if grep -vx head <<<"$out" | grep -vqE '^[0-9]+$'; then
		fail "ls epochs/: expected only head and checkpoint numbers, got: $out"
	fi
	expect_eq "readlink epochs/head" "$h" "$(readlink "$MNT/epochs/head")"
	out=$(ls -a "$MNT")
	if grep -qx epochs <<<"$out"; then fail "ls -a of the root: 'epochs' must be hidden, got: $out"; fi
	[[ -d "$MNT/epochs" ]] || fail "epochs must resolve on lookup although hidden"
	(cd "$MNT/epochs/$h" && ls >/dev/null) || fail "cd epochs/$h && ls failed"
	(cd "$MNT/epochs/head/w" && ls >/dev/null) || fail "cd epochs/head/w failed"
	out=$(find "$MNT" | grep -F "$MNT/epochs" | head -n 3 || true)
	[[ -z $out ]] || fail "find over the mount must not descend into epochs/, got: $out"
	out=$(du -a "$MNT" | grep -F "$MNT/epochs" | head -n 3 || true)
	[[ -z $out ]] || fail "du over the mount must not descend into epochs/, got: $out"
	out=$(tar c -C "$MNT" . 2>/dev/null | tar t | grep -E '^\./epochs(/|$)' | head -n 3 || true)
	[[ -z $out ]] || fail "tar c of the mount must not include epochs/, got: $out"
	out=$(ls "$MNT/epochs/$h")
	grep -qx w <<<"$out" || fail "ls epochs/$h: expected 'w' in: $out"
}

t_epoch_xattr() {
	local f=$MNT/epx h e v1 v2
	echo one >"$f"
	h=$(head_epoch)
	e=$(xattr_value user.mmsb.epoch "$f")
	expect_eq "user.mmsb.epoch of a page just written" "$h" "$e"
	v1=$(xattr_value user.mmsb.version "$f")
	printf 'two' | dd of="$f" conv=notrunc status=none
	v2=$(xattr_value user.mmsb.version "$f")
	expect_eq "user.mmsb.version after one more delta" "$((v1 + 1))" "$v2"
	expect_eq "user.mmsb.epoch after the write" "$(head_epoch)" "$(xattr_value user.mmsb.epoch "$f")"
	# a write of identical bytes: no epoch, no version
	h=$(head_epoch)
	printf 'two' | dd of="$f" conv=notrunc status=none
	expect_eq "head after a write that changes nothing" "$h" "$(head_epoch)"
	expect_eq "version after a write that changes nothing" "$v2" "$(xattr_value user.mmsb.version "$f")"
	e=$(xattr_value user.mmsb.epoch "$MNT/epochs/$h/epx")
	expect_eq "user.mmsb.epoch inside epochs/$h" "$h" "$e"
	rm "$f"
}

t_second_daemon() {
	local m2=$TEST_TMP/m2b out rc
	mkdir -p "$m2"
	set +e
	out=$(timeout 30 "$MMSBFS" "$STORE" "$m2" 2>&1 </dev/null)
	rc=$?
	set -e
	if is_mounted "$m2"; then
		fusermount3 -u "$m2" || true
		fail "a second mmsbfs on the same store: expected a refusal, but it mounted $m2"
	fi
	[[ $rc -eq 1 ]] || fail "a second mmsbfs on the same store: expected exit 1, got $rc: $out"
	[[ $out == *"store is in use by mmsbfs process"* ]] ||
		fail "a second mmsbfs on the same store: expected 'store is in use by mmsbfs process PID', got: $out"
}

# DESIGN: "changing 1 byte of a 1 GiB page costs a record of tens of bytes, not a page".
t_delta_size() {
	local f=$MNT/big64 l0 l1 h0 h1
	gen_data 64 $((64 << 20)) "$TEST_TMP/big64"
	dd if="$TEST_TMP/big64" of="$f" bs=1M status=none
	same_file "64 MiB page written with dd bs=1M" "$TEST_TMP/big64" "$f"
	l0=$(xattr_value user.mmsb.log_bytes "$MNT")
	h0=$(head_epoch)
	printf 'X' | dd of="$f" bs=1 seek=33554433 conv=notrunc status=none
	printf 'X' | dd of="$TEST_TMP/big64" bs=1 seek=33554433 conv=notrunc status=none
	l1=$(xattr_value user.mmsb.log_bytes "$MNT")
	h1=$(head_epoch)
	expect_eq "epochs for a 1-byte write" "$((h0 + 1))" "$h1"
	((l1 - l0 <= 512)) || fail "a 1-byte change of a 64 MiB page grew the log by $((l1 - l0)) bytes (expected a record of tens of bytes)"
	log "1-byte change of a 64 MiB page: log +$((l1 - l0)) bytes"
	same_file "64 MiB page after a 1-byte change" "$TEST_TMP/big64" "$f"
	cmp -s "$MNT/epochs/$h0/big64" "$TEST_TMP/big64" && fail "epochs/$h0/big64 must be the page before the 1-byte change"
	rm "$f" "$TEST_TMP/big64"
}

# Many snapshot inodes looked up, then forgotten by the kernel (drop_caches sends FORGET),
# again and again: the daemon's synthetic inode table must stay consistent.
t_forget_storm() {
	local e n=0 _round
	[[ -s "$EPOCHS_LIST" ]] || skip_section "no recorded versions"
	for _round in 1 2 3; do
		while read -r _ e; do
			find "$MNT/epochs/$e" -maxdepth 2 >/dev/null
			stat "$MNT/epochs/$e/tt/a" >/dev/null
			n=$((n + 1))
		done <"$EPOCHS_LIST"
		drop_caches
	done
	mount_alive || fail "the daemon died during lookups/FORGETs of $n snapshot trees"
	tt_check "after the FORGET storm"
}

# ---- dependencies (DESIGN: deps/recompute xattrs, one epoch per write + recomputes) ----

t_deps() {
	local d=$MNT/deps h0 h1 e v1 v2 out
	mkdir -p "$d"
	head -c 65536 "$TEST_TMP/seed1" >"$d/weights"
	: >"$d/mirror"
	setfattr -n user.mmsb.deps -v deps/weights "$d/mirror"
	setfattr -n user.mmsb.recompute -v copy "$d/mirror"
	expect_eq "user.mmsb.recompute reads back" copy "$(getfattr --absolute-names -n user.mmsb.recompute --only-values "$d/mirror")"
	h0=$(head_epoch)
	printf 'hello' | dd of="$d/weights" bs=5 seek=1000 conv=notrunc status=none
	h1=$(head_epoch)
	expect_eq "one write to a parent with a copy child: epochs" "$((h0 + 1))" "$h1"
	same_file "copy child after a parent write" "$d/weights" "$d/mirror"
	expect_eq "child's user.mmsb.epoch (recomputed in the parent's epoch)" "$h1" "$(xattr_value user.mmsb.epoch "$d/mirror")"
	same_file "copy child at epochs/$h1" "$MNT/epochs/$h1/deps/weights" "$MNT/epochs/$h1/deps/mirror"
	# a cycle is refused with ELOOP and changes nothing
	h0=$(head_epoch)
	expect_fail_msg "dependency cycle" "Too many levels of symbolic links" setfattr -n user.mmsb.deps -v deps/mirror "$d/weights"
	expect_eq "head after a refused cycle" "$h0" "$(head_epoch)"
	expect_fail_msg "user.mmsb.error is not for users" "Operation not permitted" setfattr -n user.mmsb.error -v x "$d/mirror"
	# diamond: b = copy(a), c = copy(a), j = concat(b, c): one write to a recomputes j once
	printf 'A1' >"$d/a"
	: >"$d/b"
	: >"$d/c"
	: >"$d/j"
	setfattr -n user.mmsb.deps -v deps/a "$d/b"
	setfattr -n user.mmsb.recompute -v copy "$d/b"
	setfattr -n user.mmsb.deps -v deps/a "$d/c"
	setfattr -n user.mmsb.recompute -v copy "$d/c"
	setfattr -n user.mmsb.deps -v "deps/b,deps/c" "$d/j"
	setfattr -n user.mmsb.recompute -v concat "$d/j"
	v1=$(xattr_value user.mmsb.version "$d/j")
	h0=$(head_epoch)
	printf 'Z9' | dd of="$d/a" conv=notrunc status=none
	h1=$(head_epoch)
	expect_eq "diamond: epochs for one write" "$((h0 + 1))" "$h1"
	expect_eq "diamond: join bytes" "Z9Z9" "$(cat "$d/j")"
	v2=$(xattr_value user.mmsb.version "$d/j")
	expect_eq "diamond: the join is recomputed once per epoch (version)" "$((v1 + 1))" "$v2"
	expect_eq "diamond at epochs/$h1" "Z9Z9" "$(cat "$MNT/epochs/$h1/deps/j")"
	expect_eq "diamond at epochs/$h0 (before)" "$(cat "$MNT/epochs/$h0/deps/b")$(cat "$MNT/epochs/$h0/deps/c")" "$(cat "$MNT/epochs/$h0/deps/j")"
	# every recorded epoch is consistent: mirror == weights
	for e in $(seq "$((h1 - 12))" "$h1"); do
		[[ -e "$MNT/epochs/$e/deps/mirror" ]] || continue
		cmp -s "$MNT/epochs/$e/deps/weights" "$MNT/epochs/$e/deps/mirror" ||
			fail "epochs/$e: mirror differs from weights (derived state must match its parent in every snapshot)"
	done
	echo "$h1" >"$TEST_TMP/deps.epoch"
}

t_deps_after_remount() {
	local d=$MNT/deps
	[[ -e "$d/mirror" ]] || skip_section "t_deps did not run"
	printf 'again' | dd of="$d/weights" bs=5 seek=2000 conv=notrunc status=none
	same_file "copy child after remount (edges replayed)" "$d/weights" "$d/mirror"
	printf 'Q7' | dd of="$d/a" conv=notrunc status=none
	expect_eq "diamond after remount" "Q7Q7" "$(cat "$d/j")"
}

# ---- time travel ------------------------------------------------------------------

TT_FILES=(a b c)

# tt_op V F: apply version V's change to file F, both in the mount and in $CUR.
tt_op() {
	local v=$1 f=$2 d off n
	for d in "$MNT/tt" "$CUR"; do
		case $(((v * 3 + ${#f} + $(printf '%d' "'$f")) % 6)) in
		0 | 1 | 2)
			off=$(((v * 7919 + $(printf '%d' "'$f") * 104729) % 300000))
			n=$(((v * 131) % 5000 + 1))
			dd if="$TEST_TMP/seed1" of="$d/$f" bs=64k iflag=skip_bytes,count_bytes oflag=seek_bytes \
				skip=$((v * 1000)) seek="$off" count="$n" conv=notrunc status=none
			;;
		3) truncate -s $(((v * 4099) % 200000)) "$d/$f" ;;
		4) head -c $((v * 10 + 1)) "$TEST_TMP/seed2" >>"$d/$f" ;;
		5) dd if="$TEST_TMP/seed1" of="$d/$f" bs=4096 skip="$v" count=3 status=none ;; # replaces (O_TRUNC)
		esac
	done
}

t_time_travel_write() {
	local v f h prev=""
	mkdir -p "$MNT/tt"
	: >"$EPOCHS_LIST"
	for f in "${TT_FILES[@]}"; do
		head -c 100000 "$TEST_TMP/seed2" >"$MNT/tt/$f"
		head -c 100000 "$TEST_TMP/seed2" >"$CUR/$f"
	done
	for ((v = 1; v <= 50; v++)); do
		for f in "${TT_FILES[@]}"; do
			if [[ $f == c && $v -eq 25 ]]; then
				rm "$MNT/tt/c" "$CUR/c"
				continue
			fi
			if [[ $f == c && $v -gt 25 && $v -lt 30 ]]; then continue; fi
			if [[ $f == c && $v -eq 30 ]]; then
				echo reborn >"$MNT/tt/c"
				echo reborn >"$CUR/c"
				continue
			fi
			tt_op "$v" "$f"
		done
		h=$(head_epoch)
		if [[ -n $prev ]] && ((h < prev)); then
			fail "version $v: expected the head epoch to be >= $prev (monotonic), got $h"
		fi
		prev=$h
		echo "$v $h" >>"$EPOCHS_LIST"
		mkdir -p "$VERS/$v"
		cp "$CUR"/* "$VERS/$v/"
	done
	# live bytes equal the last version
	for f in "${TT_FILES[@]}"; do
		same_file "live $f after 50 versions" "$CUR/$f" "$MNT/tt/$f"
	done
}

# Check every recorded version under epochs/N against the saved copies.
tt_check() {
	local what=$1 v h f n=0
	[[ -s "$EPOCHS_LIST" ]] || fail "$what: no recorded versions (time travel write section failed?)"
	while read -r v h; do
		for f in "${TT_FILES[@]}"; do
			if [[ -e "$VERS/$v/$f" ]]; then
				same_file "$what: version $v of $f at epochs/$h" "$VERS/$v/$f" "$MNT/epochs/$h/tt/$f"
			elif [[ -e "$MNT/epochs/$h/tt/$f" ]]; then
				fail "$what: $f was removed at version $v, but epochs/$h/tt/$f exists"
			fi
			n=$((n + 1))
		done
	done <"$EPOCHS_LIST"
	log "$what: $n epoch/file pairs match"
}

t_time_travel_check() {
	tt_check "time travel"
	# -o ckpt_bytes=1m: several MiB were logged, so automatic checkpoints exist by now
	local i n=0
	for ((i = 0; i < 50; i++)); do
		n=$(ls "$MNT/epochs" | grep -cE '^[0-9]+$' || true)
		((n > 0)) && break
		sleep 0.1
	done
	((n > 0)) || fail "ls epochs/: expected automatic checkpoint epochs after several MiB of log with -o ckpt_bytes=1m, got only: $(ls "$MNT/epochs" | tr '\n' ' ')"
	log "ls epochs/: $(ls "$MNT/epochs" | tr '\n' ' ')"
}

t_live_check() {
	compare_trees "live tree" "$REF" "$MNT/w"
}

t_drop_caches_recheck() {
	local h
	drop_caches
	compare_trees "after drop_caches" "$REF" "$MNT/w"
	tt_check "after drop_caches"
	# the whole mirrored tree, bytes and metadata, as a snapshot of the current epoch
	h=$(head_epoch)
	compare_trees "snapshot epochs/$h/w" "$REF" "$MNT/epochs/$h/w"
}

# ---- after a remount ------------------------------------------------------------

t_after_remount() {
	local h_before h out
	h_before=$(cat "$TEST_TMP/head.before")
	h=$(head_epoch)
	expect_eq "head epoch after unmount + remount" "$h_before" "$h"
	out=$(ls "$MNT/epochs")
	grep -qx "$h_before" <<<"$out" ||
		fail "ls epochs/ after a clean unmount: expected the checkpoint taken at unmount ($h_before) in: $(tr '\n' ' ' <<<"$out")"
	compare_trees "after remount" "$REF" "$MNT/w"
	compare_trees "snapshot epochs/$h/w after remount" "$REF" "$MNT/epochs/$h/w"
	tt_check "after remount"
	# still writable
	echo after-remount >"$MNT/w/after"
	echo after-remount >"$REF/after"
	h=$(head_epoch)
	((h > h_before)) || fail "head after writes on the remounted store: expected > $h_before, got $h"
	same_file "write after remount" "$REF/after" "$MNT/w/after"
}

t_readonly_mount() {
	local f=$MNT/w/dd/big
	expect_fail_msg "echo > new file on a ro mount" "Read-only file system" bash -c "echo x > '$MNT/w/newfile'"
	expect_fail_msg "overwrite on a ro mount" "Read-only file system" bash -c "echo x > '$f'"
	expect_fail_msg "dd conv=notrunc on a ro mount" "Read-only file system" dd if=/dev/zero of="$f" bs=1 count=1 conv=notrunc status=none
	expect_fail_msg "mkdir on a ro mount" "Read-only file system" mkdir "$MNT/w/newdir"
	expect_fail_msg "rm on a ro mount" "Read-only file system" rm -f "$f"
	expect_fail_msg "mv on a ro mount" "Read-only file system" mv "$f" "$f.moved"
	expect_fail_msg "truncate on a ro mount" "Read-only file system" truncate -s 0 "$f"
	expect_fail_msg "setfattr on a ro mount" "Read-only file system" setfattr -n user.x -v 1 "$f"
	expect_fail_msg "chmod on a ro mount" "Read-only file system" chmod 600 "$f"
	expect_fail_msg "ln -s on a ro mount" "Read-only file system" ln -s x "$MNT/w/newlink"
	compare_trees "ro mount (nothing changed)" "$REF" "$MNT/w"
	tt_check "ro mount"
}

# Without allow_other only the mounting user gets in; with it, the kernel checks the
# mode bits (default_permissions is always on).
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }

t_permissions_default() {
	command -v setpriv >/dev/null || skip_section "setpriv is not installed"
	as_nobody stat "$TEST_TMP" >/dev/null || fail "another user cannot reach $TEST_TMP (test setup)"
	expect_fail_msg "another user without allow_other" "Permission denied" as_nobody stat "$MNT/w"
}

t_permissions_allow_other() {
	command -v setpriv >/dev/null || skip_section "setpriv is not installed"
	local f=$MNT/w/dd/big
	chmod 0755 "$MNT" "$MNT/w" "$MNT/w/dd"
	chmod 0644 "$f"
	as_nobody cat "$f" >/dev/null || fail "another user with allow_other: cannot read a 0644 file"
	expect_fail_msg "another user writing a 0644 root file" "Permission denied" as_nobody dd if=/dev/zero of="$f" bs=1 count=1 conv=notrunc status=none
	expect_fail_msg "another user creating in a 0755 root dir" "Permission denied" as_nobody touch "$MNT/w/dd/nobody-file"
	chmod 0600 "$f"
	expect_fail_msg "another user reading a 0600 root file" "Permission denied" as_nobody cat "$f"
	chmod "$(stat -c %a "$REF/dd/big")" "$f"
	chmod "$(stat -c %a "$REF/dd")" "$MNT/w/dd"
	chmod "$(stat -c %a "$REF")" "$MNT/w"
	compare_trees "after the permission checks" "$REF" "$MNT/w"
}

# After kill -9 (no checkpoint at close): checkpoint + log replay gives the same tree.
t_after_kill9() {
	local h_before h
	h_before=$(cat "$TEST_TMP/head.kill9")
	h=$(head_epoch)
	expect_eq "head epoch after kill -9 + remount (every write was acknowledged)" "$h_before" "$h"
	compare_trees "after kill -9" "$REF" "$MNT/w"
	compare_trees "snapshot epochs/$h/w after kill -9" "$REF" "$MNT/epochs/$h/w"
	tt_check "after kill -9"
	if [[ -e "$MNT/deps/mirror" ]]; then
		same_file "copy child after kill -9" "$MNT/deps/weights" "$MNT/deps/mirror"
	fi
}

# -s -o threads=1,cache=64k: single-threaded, and a time-travel cache far smaller than
# the history read, so snapshot pages are evicted and materialized again.
t_small_cache() {
	tt_check "-s -o cache=64k (1st pass)"
	tt_check "-s -o cache=64k (2nd pass)"
	compare_trees "-s -o cache=64k" "$REF" "$MNT/w"
	echo single >"$MNT/w/single"
	echo single >"$REF/single"
	same_file "write with -s" "$REF/single" "$MNT/w/single"
}

t_show_epochs() {
	local out
	out=$(ls "$MNT")
	grep -qx epochs <<<"$out" || fail "-o show_epochs: expected 'epochs' in ls of the root, got: $out"
	grep -q 'unique' "$DAEMON_LOG" || fail "-d: expected libfuse debug output (\"unique: ...\") in $DAEMON_LOG"
	compare_trees "show_epochs mount" "$REF" "$MNT/w"
}

# ---- run ------------------------------------------------------------------------------

section t_cli
section t_daemon_mode
# Small automatic checkpoints, so that time travel crosses checkpoints.
mnt_mount_fg -o ckpt_bytes=1m
mkdir "$MNT/w"
section t_basic
section t_dd
section t_tar
section t_rsync
section t_xattr_tools
section t_python
section t_epoch_xattr
section t_epochs_listing
section t_second_daemon
section t_deps
section t_time_travel_write
section t_time_travel_check
section t_live_check
section t_drop_caches_recheck
section t_forget_storm
section t_delta_size
(head_epoch >"$TEST_TMP/head.before") || log "FAIL: cannot read the head epoch before unmount"
mnt_umount
mnt_mount_fg
section t_after_remount
section t_deps_after_remount
(head_epoch >"$TEST_TMP/head.kill9") || log "FAIL: cannot read the head epoch before kill -9"
mnt_kill9
for ((i = 0; i < 100; i++)); do is_mounted || break; sleep 0.05; done
mnt_mount_fg
section t_after_kill9
mnt_umount
mnt_mount_fg -o ro
section t_readonly_mount
mnt_umount
mnt_mount_fg -s -o threads=1,cache=64k
section t_small_cache
mnt_umount
mnt_mount_fg -d -o show_epochs
section t_show_epochs
section t_permissions_default
mnt_umount
mnt_mount_fg -o allow_other
section t_permissions_allow_other
mnt_umount
lib_finish
