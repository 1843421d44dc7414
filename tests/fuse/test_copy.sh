#!/bin/bash
# test_copy.sh - cp -a, rsync -aX and tar --xattrs into and out of a mount.
#
#   test_copy.sh MMSBFS
#
# Each tool copies a tree (pages of several sizes, empty pages, nested
# directories, symlinks, modes, mtimes, user xattrs with binary values) from
# a plain directory into the mount and from the mount back out; it must
# exit 0 and the copy must equal the source: same names, types, modes,
# sizes, bytes, link targets, file mtimes and user.* xattrs, and no
# user.mmsb.* attribute anywhere (the read-only ones used to be listed:
# copies in failed with EPERM and copies out carried stale values).
source "$(dirname "$0")/lib.sh"
lib_init "$@"
command -v rsync >/dev/null || skip "rsync is missing"
command -v tar >/dev/null || skip "tar is missing"
SRC=$TEST_TMP/src
OUT=$TEST_TMP/out

# manifest DIR: one line per entry, sorted; what a faithful copy keeps.
manifest() {
	"$PY" - "$1" <<'EOF'
import hashlib, os, stat, sys
root = sys.argv[1]
rows = []
for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in sorted(dirnames + filenames):
        p = os.path.join(dirpath, name)
        rel = os.path.relpath(p, root)
        st = os.lstat(p)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            row = f"{rel} link -> {os.readlink(p)}"
        elif stat.S_ISDIR(st.st_mode):
            row = f"{rel} dir {mode:o}"
        else:
            with open(p, "rb") as f:
                h = hashlib.sha256(f.read()).hexdigest()[:16]
            row = f"{rel} file {mode:o} {st.st_size} {h} mtime={int(st.st_mtime)}"
        if not stat.S_ISLNK(st.st_mode):
            xs = sorted(os.listxattr(p, follow_symlinks=False))
            for x in xs:
                if x.startswith("user."):
                    row += f" {x}={os.getxattr(p, x, follow_symlinks=False).hex()}"
        rows.append(row)
print("\n".join(rows))
EOF
}

# totals DIR: "N entries, B bytes"
totals() {
	local n b
	n=$(find "$1" -mindepth 1 | wc -l)
	b=$(find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
	echo "$n entries, $b bytes"
}

# same_tree WHAT A B: equal manifests and totals.
same_tree() {
	local what=$1 a b
	a=$(manifest "$2")
	b=$(manifest "$3")
	if [[ "$a" != "$b" ]]; then
		fail "$what: $3 differs from $2:
$(diff <(echo "$a") <(echo "$b") | head -n 20)"
	fi
	expect_eq "$what: totals" "$(totals "$2")" "$(totals "$3")"
}

# no_mmsb_xattrs DIR: no user.mmsb.* on any entry (a copy carries values, not the store's bookkeeping)
no_mmsb_xattrs() {
	local got
	got=$(getfattr --absolute-names -R -d -m '^user\.mmsb\.' "$1" 2>/dev/null || true)
	[[ -z $got ]] || fail "$1: copied user.mmsb.* attributes: $(head -n 6 <<<"$got")"
}

# run_ok WHAT CMD...: CMD exits 0 (its output shown on failure)
run_ok() {
	local what=$1 out rc=0
	shift
	out=$("$@" 2>&1) || rc=$?
	((rc == 0)) || fail "$what: '$*' exited $rc: $(head -n 10 <<<"$out")"
	[[ -z $out ]] || log "$what: output: $out"
}

make_source() {
	mkdir -p "$SRC/a/b/c" "$SRC/empty_dir"
	gen_data 1 200000 "$SRC/big"
	gen_data 2 4097 "$SRC/a/odd"
	printf 'hello\n' >"$SRC/a/b/c/small"
	: >"$SRC/zero"
	ln -s big "$SRC/link"
	ln -s a/b/c/small "$SRC/a/rel"
	ln -s /nonexistent/target "$SRC/dangling"
	chmod 0600 "$SRC/a/odd"
	chmod 0750 "$SRC/a/b"
	setfattr -n user.color -v red "$SRC/big"
	setfattr -n user.bin -v 0x00ff00ee "$SRC/a/odd"
	setfattr -n user.empty -v "" "$SRC/zero" 2>/dev/null || setfattr -n user.empty "$SRC/zero"
	setfattr -n user.dir -v yes "$SRC/a/b"
	touch -d '2020-01-02 03:04:05' "$SRC/big" "$SRC/a/odd" "$SRC/zero"
	getfattr -n user.color "$SRC/big" >/dev/null 2>&1 || skip "$TEST_TMP does not keep user xattrs"
}

t_cp() {
	mkdir -p "$MNT/cp" "$OUT"
	run_ok "cp -a into the mount" cp -a "$SRC/." "$MNT/cp/"
	same_tree "cp -a into the mount" "$SRC" "$MNT/cp"
	run_ok "cp -a out of the mount" cp -a "$MNT/cp" "$OUT/cp"
	same_tree "cp -a out of the mount" "$SRC" "$OUT/cp"
	no_mmsb_xattrs "$OUT/cp"
	run_ok "cp -a within the mount" cp -a "$MNT/cp" "$MNT/cp2"
	same_tree "cp -a within the mount" "$SRC" "$MNT/cp2"
}

t_rsync() {
	mkdir -p "$MNT/rs" "$OUT"
	run_ok "rsync -aX into the mount" rsync -aX "$SRC/" "$MNT/rs/"
	same_tree "rsync -aX into the mount" "$SRC" "$MNT/rs"
	run_ok "rsync -aX again (nothing to do)" rsync -aX "$SRC/" "$MNT/rs/"
	run_ok "rsync -aX out of the mount" rsync -aX "$MNT/rs/" "$OUT/rs/"
	same_tree "rsync -aX out of the mount" "$SRC" "$OUT/rs"
	no_mmsb_xattrs "$OUT/rs"
	setfattr -n user.color -v blue "$SRC/big"
	run_ok "rsync -aX of a changed xattr" rsync -aX "$SRC/" "$MNT/rs/"
	expect_eq "rsync -aX carried the new value" blue "$(xattr_value user.color "$MNT/rs/big")"
	setfattr -n user.color -v red "$SRC/big"
}

t_tar() {
	mkdir -p "$MNT/tar" "$OUT/tar"
	run_ok "tar --xattrs -c of the source" tar --xattrs --xattrs-include='*' -C "$SRC" -cf "$TEST_TMP/in.tar" .
	run_ok "tar --xattrs -x into the mount" tar --xattrs --xattrs-include='*' -C "$MNT/tar" -xf "$TEST_TMP/in.tar"
	same_tree "tar --xattrs into the mount" "$SRC" "$MNT/tar"
	run_ok "tar --xattrs -c of the mount" tar --xattrs --xattrs-include='*' -C "$MNT/tar" -cf "$TEST_TMP/out.tar" .
	run_ok "tar --xattrs -x out of the mount" tar --xattrs --xattrs-include='*' -C "$OUT/tar" -xf "$TEST_TMP/out.tar"
	same_tree "tar --xattrs out of the mount" "$SRC" "$OUT/tar"
	no_mmsb_xattrs "$OUT/tar"
}

# A derived page copies as its bytes: the dependency graph stays in the store
# (mmsbctl export carries it); the copy is a plain page.
t_derived() {
	local d=$MNT/dep
	mkdir -p "$d"
	printf 'parent bytes' >"$MNT/dparent"
	: >"$d/child"
	setfattr -n user.mmsb.deps -v dparent "$d/child"
	setfattr -n user.mmsb.recompute -v copy "$d/child"
	expect_eq "derived page" "parent bytes" "$(cat "$d/child")"
	run_ok "cp -a of a derived page out" cp -a "$d" "$OUT/dep"
	expect_eq "copied bytes" "parent bytes" "$(cat "$OUT/dep/child")"
	no_mmsb_xattrs "$OUT/dep"
	run_ok "cp -a of a derived page within the mount" cp -a "$d" "$MNT/dep2"
	expect_fail_msg "the copy is a plain page" "No such attribute" getfattr -n user.mmsb.deps "$MNT/dep2/child"
	run_ok "rsync -aX of a derived page out" rsync -aX "$d/" "$OUT/dep_rs/"
	expect_eq "rsync copied bytes" "parent bytes" "$(cat "$OUT/dep_rs/child")"
	expect_eq "the original keeps its edge" dparent "$(xattr_value user.mmsb.deps "$d/child")"
}

make_source
mnt_mount
section t_cp
section t_rsync
section t_tar
section t_derived
mnt_umount
lib_finish
