#!/bin/bash
# test_links.sh - hard links and special files through mmsbctl diff, restore and export.
#
#   test_links.sh MMSBFS MMSBCTL
#
# A tree with a page of three names (two directories), a fifo with two names, a
# socket, a character and a block device; then changes that break and rebuild link
# structure.  Checks: epochs/N shows it (one inode per node), diff names what changed
# (link counts included), restore brings back the link structure exactly (and a
# restore of a path keeps links to pages outside it), export (through the mount and
# offline) writes hard links and special files.  Needs root and /dev/fuse (else 77).
set -u
export LC_ALL=C

MMSBFS=$(realpath "${1:?usage: test_links.sh MMSBFS MMSBCTL}")
MMSBCTL=$(realpath "${2:?usage: test_links.sh MMSBFS MMSBCTL}")

[[ $(id -u) == 0 ]] || { echo "test_links: SKIP: needs root"; exit 77; }
[[ -c /dev/fuse ]] || { echo "test_links: SKIP: no /dev/fuse"; exit 77; }
command -v fusermount3 >/dev/null || { echo "test_links: SKIP: no fusermount3"; exit 77; }

TMP=$(mktemp -d /tmp/mmsb-links.XXXXXX)
STORE=$TMP/store
MNT=$TMP/mnt
mkdir -p "$MNT"
FAILS=0
PASSES=0

cleanup() {
	cd /
	mountpoint -q "$MNT" && fusermount3 -u "$MNT"
	[[ ${MMSB_TEST_KEEP:-0} == 1 ]] && echo "test_links: kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

ok() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
bad() { FAILS=$((FAILS + 1)); echo "FAIL - $*"; }
check() { # check WHAT EXPECTED GOT
	if [[ "$2" == "$3" ]]; then ok "$1"; else bad "$1: expected '$2', got '$3'"; fi
}
head_of() { readlink "$MNT/epochs/head"; }
# shape DIR: every name with its type, link count, size, mode, device and which
# names share a node (first name of the node, in sorted order); directory sizes are
# the file system's own
shape() {
	(cd "$1" && find . -mindepth 1 -path ./epochs -prune -o -printf '%i %p %y %n %s %m\n' | sort -k2) |
		awk '{ if (!($1 in first)) first[$1] = $2; if ($3 == "d") $5 = "-"
			printf "%s %s %s %s %s same-as:%s\n", $2, $3, $4, $5, $6, first[$1] }'
	(cd "$1" && find . -mindepth 1 -path ./epochs -prune -o \( -type b -o -type c \) -printf '%p\n' | sort |
		while read -r p; do stat -c "%n %t:%T" "$p"; done)
}

# superblock incompat features (le32 at 0x14 of both copies)
incompat() {
	python3 -c 'import sys, struct; b = open(sys.argv[1], "rb").read()
print("%x %x" % (struct.unpack_from("<I", b, 0x14)[0], struct.unpack_from("<I", b, 0x94)[0]))' "$STORE/mmsb.super"
}

"$MMSBFS" "$STORE" "$MNT" || { echo "test_links: FAIL: cannot mount"; exit 1; }
cd "$MNT" || exit 1
mkdir d e
check "no link or special file yet: no incompat feature" "0 0" "$(incompat)"
printf 'shared bytes' >d/a
ln d/a d/b
ln d/a e/c
mkfifo e/p
ln e/p d/p
python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("d/s")'
mknod d/null c 1 3
mknod e/loop b 7 200
printf 'alone' >e/x
check "links and special files: incompat feature NODES (1) in both superblock copies" "1 1" "$(incompat)"
E1=$(head_of)
S1=$(shape "$MNT")

# epochs/E1: two names, one inode; special files with their type and device
check "epochs/N: names of one page share an inode" "$(stat -c %i "$MNT/epochs/$E1/d/a")" \
	"$(stat -c %i "$MNT/epochs/$E1/e/c")"
check "epochs/N: nlink" 3 "$(stat -c %h "$MNT/epochs/$E1/d/b")"
check "epochs/N: the same shape as head" "$S1" "$(shape "$MNT/epochs/$E1")"

# change the link structure: one name gone, one name now another page, a device
# changed, a fifo replaced by a page, a new link
rm d/b
printf 'other' >d/b
rm e/loop
mknod e/loop b 7 201
rm d/p
printf 'page now' >d/p
ln e/x d/x2
printf ' changed' >>e/c
E2=$(head_of)

"$MMSBCTL" --mount "$MNT" diff "$E1" "$E2" >"$TMP/diff" 2>&1
check "diff exit" 0 "$?"
for want in "modified +d/a" "modified +d/b" "modified +e/c" "attrs +e/loop" "added +d/x2" "attrs +e/x" \
	"attrs +e/p"; do
	grep -Eq "^$want( |$)" "$TMP/diff" && ok "diff: $want" || bad "diff: no '$want' line in: $(cat "$TMP/diff")"
done
grep -Eq "d/p" "$TMP/diff" && ok "diff: fifo replaced by a page" || bad "diff: nothing about d/p: $(cat "$TMP/diff")"

# restore of one path: d/b gets its own page back as a link of d/a (which is outside
# the path, changed at head, and so stays as it is)
"$MMSBCTL" --mount "$MNT" restore "$E1" e/loop >/dev/null 2>&1
check "restore of a device node" "7:c8" "$(stat -c %t:%T "$MNT/e/loop")"

# whole restore: the exact shape of E1, link structure included
"$MMSBCTL" --mount "$MNT" restore "$E1" >"$TMP/restore" 2>&1
check "restore exit" 0 "$?"
check "restore: the shape of E1" "$S1" "$(shape "$MNT")"
check "restore: bytes through every name" "shared bytes|shared bytes|shared bytes" \
	"$(cat d/a)|$(cat d/b)|$(cat e/c)"
printf '!' >>d/b
check "restore: the names are one page again" "shared bytes!" "$(cat e/c)"
"$MMSBCTL" --mount "$MNT" diff "$E1" "$(head_of)" >"$TMP/diff2" 2>&1
check "diff after restore: only d/a, d/b, e/c" "d/a d/b e/c" "$(awk 'NR > 1 { print $2 }' "$TMP/diff2" | sort | tr '\n' ' ' | sed 's/ $//')"

# export through the mount and offline: hard links and special files
"$MMSBCTL" --mount "$MNT" export "$E1" "$TMP/exp1" >/dev/null 2>&1
check "export exit" 0 "$?"
check "export: the shape of E1" "$S1" "$(shape "$TMP/exp1")"
cd /
fusermount3 -u "$MNT"
for _ in $(seq 50); do [[ -e $STORE/ctl.sock ]] || break; sleep 0.1; done
"$MMSBCTL" --store "$STORE" export "$E1" "$TMP/exp2" >/dev/null 2>&1
check "offline export exit" 0 "$?"
check "offline export: the shape of E1" "$S1" "$(shape "$TMP/exp2")"
"$MMSBCTL" --store "$STORE" verify >"$TMP/verify" 2>&1
check "verify: LINK and MKNOD frames and link entries are clean" "0" "$?"

# after a remount (the checkpoint at unmount holds the links)
"$MMSBFS" "$STORE" "$MNT" || { echo "test_links: FAIL: cannot mount again"; exit 1; }
check "remount: epochs/E1 keeps its shape" "$S1" "$(shape "$MNT/epochs/$E1")"
check "remount: head keeps its links" 3 "$(stat -c %h "$MNT/e/c")"

echo "test_links: $PASSES passed, $FAILS failed"
((FAILS == 0))
