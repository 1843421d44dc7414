#!/bin/bash
# test_perm.sh - who may read through dependencies and the change feed, on a
# real -o allow_other mount used by an unprivileged user.
#
#   test_perm.sh MMSBFS [MMSBCTL]
#
# The attack: a user derives a page from root's 0600 secret (or from a page
# in a 0700 directory) and reads the copy.  Setting the dependency must fail
# with EACCES, say why in user.mmsb.error and the daemon log; a dependency
# that was allowed stops propagating when the parent (or a directory above
# it) later denies the derived page's owner; epochs/.changes shows a user
# only the paths it could find itself; mmsbctl watch refuses other users.
# The user is a throwaway account (mmsbtest) made here when missing.
source "$(dirname "$0")/lib.sh"
lib_init "${1:-}"
MMSBCTL=${2:-}
[[ -z $MMSBCTL ]] || MMSBCTL=$(realpath "$MMSBCTL")
USER_NAME=mmsbtest
if ! id -u "$USER_NAME" >/dev/null 2>&1; then
	command -v useradd >/dev/null || skip "no useradd to make the test user"
	useradd -M -N -d /nonexistent -s /usr/sbin/nologin "$USER_NAME" 2>/dev/null || skip "cannot add user $USER_NAME"
fi
command -v setpriv >/dev/null || skip "setpriv (util-linux) is missing"
TUID=$(id -u "$USER_NAME")
TGID=$(id -g "$USER_NAME")
# as_user CMD...: run CMD as the test user (its own groups), in the mount
as_user() { (cd "$MNT" && setpriv --reuid="$TUID" --regid="$TGID" --init-groups -- "$@"); }
# user_errno NAME VALUE FILE: errno name of the user's setxattr
user_errno() {
	as_user "$PY" - "$@" <<'PY'
import errno, os, sys
try:
    os.setxattr(sys.argv[3], sys.argv[1], sys.argv[2].encode())
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])
PY
}
error_of() { getfattr -n user.mmsb.error --only-values "$MNT/$1" 2>/dev/null || true; }

mnt_mount_fg -o allow_other
cd "$MNT"
mkdir -m 0777 pub
mkdir -m 0700 priv
printf 'root secret' >secret && chmod 0600 secret
printf 'inner secret' >priv/inner
printf 'public v1' >open && chmod 0644 open
mkdir -m 0755 shared
printf 'shared v1' >shared/src && chmod 0644 shared/src
cd /

t_attack() {
	as_user touch pub/x
	expect_eq "user setfattr deps=secret" EACCES "$(user_errno user.mmsb.deps secret pub/x)"
	expect_eq "user setfattr deps=priv/inner" EACCES "$(user_errno user.mmsb.deps priv/inner pub/x)"
	expect_eq "user setfattr deps=priv/missing (no search: EACCES, not ENOENT)" EACCES \
		"$(user_errno user.mmsb.deps priv/missing pub/x)"
	expect_eq "deps not set" "" "$(getfattr -n user.mmsb.deps --only-values "$MNT/pub/x" 2>/dev/null || true)"
	# the reason, where the user sees it, and in the daemon log
	local why
	why=$(as_user getfattr -n user.mmsb.error --only-values pub/x 2>/dev/null || true)
	[[ $why == "deps: pub/x: parent 'priv/missing': permission denied: uid $TUID may not search '/priv'" ]] ||
		fail "user.mmsb.error of pub/x: got '$why'"
	grep -q "deps: pub/x: parent 'secret': permission denied" "$DAEMON_LOG" || fail "daemon log lacks the refusal"
	as_user setfattr -n user.mmsb.recompute -v copy pub/x
	expect_eq "user still reads nothing" "" "$(as_user cat pub/x)"
	expect_eq "user setfattr deps=secret with copy set" EACCES "$(user_errno user.mmsb.deps secret pub/x)"
	expect_eq "user still reads nothing" "" "$(as_user cat pub/x)"
	# a directory is no parent
	expect_eq "deps=pub/ (a directory)" EISDIR "$(user_errno user.mmsb.deps pub/ pub/x)"
	expect_eq "deps=open/ (a page with a slash)" ENOTDIR "$(user_errno user.mmsb.deps open/ pub/x)"
	# what the user may read works, and clears the old reason
	expect_eq "user deps=open" OK "$(user_errno user.mmsb.deps open pub/x)"
	expect_eq "copy of open" "public v1" "$(as_user cat pub/x)"
	expect_eq "no error after success" "" "$(error_of pub/x)"
	# root's own dependency on the secret is allowed (CAP_DAC_OVERRIDE)
	touch "$MNT/pub/r"
	setfattr -n user.mmsb.deps -v secret "$MNT/pub/r"
	setfattr -n user.mmsb.recompute -v copy "$MNT/pub/r"
	chmod 0600 "$MNT/pub/r"
	expect_eq "root's copy" "root secret" "$(cat "$MNT/pub/r")"
}

t_revoked() {
	as_user touch pub/y
	expect_eq "deps=shared/src" OK "$(user_errno user.mmsb.deps shared/src pub/y)"
	as_user setfattr -n user.mmsb.recompute -v copy pub/y
	expect_eq "copy follows" "shared v1" "$(as_user cat pub/y)"
	printf 'shared v2' >"$MNT/shared/src"
	expect_eq "copy follows a write" "shared v2" "$(as_user cat pub/y)"
	# root revokes the page: the copy stops, with the reason
	chmod 0600 "$MNT/shared/src"
	printf 'shared v3' >"$MNT/shared/src"
	expect_eq "copy stopped" "shared v2" "$(as_user cat pub/y)"
	[[ $(error_of pub/y) == *"permission denied: owner uid $TUID may not read '/shared/src'"* ]] ||
		fail "error of pub/y: '$(error_of pub/y)'"
	# ... or a directory above it
	chmod 0644 "$MNT/shared/src"
	chmod 0700 "$MNT/shared"
	printf 'shared v4' >"$MNT/shared/src"
	expect_eq "copy stopped (directory)" "shared v2" "$(as_user cat pub/y)"
	[[ $(error_of pub/y) == *"may not search '/shared'"* ]] || fail "error of pub/y: '$(error_of pub/y)'"
	grep -q "recompute: pub/y: epoch .*permission denied" "$DAEMON_LOG" || fail "daemon log lacks the recompute refusal"
	chmod 0755 "$MNT/shared"
	printf 'shared v5' >"$MNT/shared/src"
	expect_eq "copy resumes" "shared v5" "$(as_user cat pub/y)"
	expect_eq "error cleared" "" "$(error_of pub/y)"
}

t_feed() {
	local feed=$MNT/epochs/.changes mine all e_priv line
	printf 'hidden-write' >"$MNT/priv/inner"
	e_priv=$(getfattr -n user.mmsb.epoch --only-values "$MNT/priv/inner")
	mkdir -m 0711 "$MNT/pass" # search, no listing
	printf 'x' >"$MNT/pass/unlisted"
	as_user sh -c 'printf abc >pub/z'
	all=$(cat "$feed")
	mine=$(as_user cat epochs/.changes)
	[[ $all == *priv/inner* && $all == *pass/unlisted* ]] || fail "root's feed lacks the paths: $all"
	[[ $mine != *priv/inner* ]] || fail "the user's feed names priv/inner"
	[[ $mine != *pass/unlisted* ]] || fail "the user's feed names a page of an unlistable directory"
	[[ $mine == *pub/z* ]] || fail "the user's feed lacks its own pub/z: $mine"
	# the epoch's line stays, anonymised: no path, no bytes, same length
	line=$(grep "^$e_priv " <<<"$mine")
	[[ $(awk '{ print $4, NF }' <<<"$line") == "0 4" ]] || fail "anonymised line: '$line'"
	expect_eq "root's line for that epoch" "12 priv/inner" "$(grep "^$e_priv " <<<"$all" | awk '{ print $4, $5 }')"
	expect_eq "same size for every reader" "$(printf '%s' "$all" | wc -c)" "$(printf '%s' "$mine" | wc -c)"
	# a reader following by offset (tail -c reads from the end)
	expect_eq "tail of the user's feed" "pub/z" "$(as_user tail -n 1 epochs/.changes | awk '{ print $5 }')"
}

t_reasons() {
	touch "$MNT/derived"
	setfattr -n user.mmsb.deps -v missing "$MNT/derived" 2>/dev/null && fail "deps=missing accepted"
	expect_eq "reason for a missing parent" "deps: derived: parent 'missing' not found" "$(error_of derived)"
	setfattr -n user.mmsb.recompute -v add:f33 "$MNT/derived" 2>/dev/null && fail "add:f33 accepted"
	expect_eq "reason for a bad operation" "recompute: derived: add:f33: unknown element type" "$(error_of derived)"
	grep -q "recompute: derived: add:f33: unknown element type" "$DAEMON_LOG" || fail "daemon log lacks the reason"
	printf 'z' >"$MNT/derived" # the node changed: the refusal is no longer current
	expect_eq "reason gone after a change" "" "$(error_of derived)"
}

# 20,000 attributes on one file: the per-node cap refuses the set past it
# (ENOSPC) and listxattr keeps working (it failed with E2BIG before).
t_xattr_caps() {
	touch "$MNT/many"
	local out
	out=$("$PY" - "$MNT/many" <<'PY'
import errno, os, sys
f = sys.argv[1]
n = 0
for i in range(20000):
    try:
        os.setxattr(f, "user.attr%05d" % i, b"v")
        n += 1
    except OSError as e:
        print(n, errno.errorcode[e.errno])
        break
else:
    print(n, "none")
print(len(os.listxattr(f)) >= n)
PY
)
	expect_eq "set until the cap" "1024 ENOSPC
True" "$out"
	getfattr -d "$MNT/many" >/dev/null || fail "getfattr -d failed on a full node"
}

t_watch() {
	[[ -n $MMSBCTL ]] || skip_section "no mmsbctl given"
	local out rc=0
	out=$(as_user timeout 10 "$MMSBCTL" --mount "$MNT" watch 2>&1) || rc=$?
	((rc != 0)) || fail "mmsbctl watch as $USER_NAME succeeded: $out"
	[[ $out == *"ermission denied"* ]] || fail "mmsbctl watch as $USER_NAME: '$out'"
}

# A page whose first name is in a 0700 directory and whose second name is in a
# public one: a user may derive from it through the public name (any name it can
# reach will do), not through the private one.
t_hardlink() {
	printf 'linked v1' >"$MNT/priv/hl" && chmod 0644 "$MNT/priv/hl"
	ln "$MNT/priv/hl" "$MNT/shared/hl"
	as_user touch pub/h pub/h2
	expect_eq "user setfattr deps=shared/hl (reachable name)" OK "$(user_errno user.mmsb.deps shared/hl pub/h)"
	expect_eq "user setfattr deps=priv/hl (unreachable name)" EACCES "$(user_errno user.mmsb.deps priv/hl pub/h2)"
	as_user setfattr -n user.mmsb.recompute -v copy pub/h
	expect_eq "copy through the public name" "linked v1" "$(as_user cat pub/h)"
	printf 'linked v2' >"$MNT/priv/hl"
	expect_eq "copy follows a write through the private name" "linked v2" "$(as_user cat pub/h)"
}

section t_attack
section t_revoked
section t_feed
section t_reasons
section t_xattr_caps
section t_watch
section t_hardlink
mnt_umount
lib_finish
