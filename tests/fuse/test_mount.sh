#!/bin/bash
# test_mount.sh - mmsbfs as a Linux mount: generic options, fstab through
# mount(8), the systemd unit, safe start-up, one daemon per store, stacked
# mounts for mmsbctl --mount, the daemon's messages, xattr listing.
#
#   test_mount.sh MMSBFS MMSBCTL UNIT
#
# UNIT is the configured contrib/systemd/mmsbfs@.service of the build.
# mount(8) runs its helpers without the caller's PATH, so the fstab section
# runs in a private mount namespace where a bind mount puts MMSBFS at
# /usr/local/sbin/mmsbfs, where mount.fuse3's shell finds it; nothing of the
# host's mount table or /usr/local changes.
source "$(dirname "$0")/lib.sh"
lib_init "$1"
MMSBCTL=$(realpath "${2:?usage: test_mount.sh MMSBFS MMSBCTL UNIT}")
UNIT=$(realpath "${3:?usage: test_mount.sh MMSBFS MMSBCTL UNIT}")

# store_free [DIR]: wait (up to 30 s) until no daemon holds the store.
store_free() {
	local d=${1:-$STORE} i
	for ((i = 0; i < 300; i++)); do
		[[ -d $d ]] || return 0
		flock -n "$d" true 2>/dev/null && return 0
		sleep 0.1
	done
	fail "store $d still locked 30 s after its unmount"
}

# refused WHAT WANT ARGS...: mmsbfs ARGS must exit non-zero within 20 s,
# saying WANT, and leave no mount on $MNT when $MNT is its mount point.
refused() {
	local what=$1 want=$2 out rc
	shift 2
	set +e
	out=$(cd "$TEST_TMP" && timeout 20 "$MMSBFS" "$@" </dev/null 2>&1)
	rc=$?
	set -e
	((rc != 124)) || fail "$what: mmsbfs $* hung (killed after 20 s)"
	((rc != 0)) || fail "$what: mmsbfs $* was accepted (output: $out)"
	[[ $out == *"$want"* ]] || fail "$what: expected a message with '$want', got: $out"
	[[ ${*: -1} == "$MNT" ]] && is_mounted && fail "$what: $MNT is mounted after a refused start"
	log "$what: refused: $out"
}

# ---- generic options --------------------------------------------------------------

t_generic_options() {
	local opts="defaults,rw,suid,dev,exec,noexec,atime,noatime,relatime,strictatime,nodiratime,diratime"
	opts+=",fsname=other,subtype=other,allow_other,default_permissions,x-systemd.automount"
	opts+=",x-systemd.requires=network.target,_netdev,nofail,auto,noauto,user,users,nouser,comment=x,async"
	mnt_mount -o "$opts"
	local info
	info=$(awk -v m="$MNT" '$5 == m' /proc/self/mountinfo)
	[[ $info == *" - fuse.mmsbfs $STORE "* ]] || fail "mount table: expected type fuse.mmsbfs source $STORE (fsname=/subtype= ignored), got: $info"
	[[ $info == *noexec* && $info == *noatime* ]] || fail "noexec,noatime must reach the kernel: $info"
	[[ $info == *allow_other* ]] || fail "allow_other must reach the kernel: $info"
	echo hi >"$MNT/f"
	mnt_umount
	mnt_mount -o sync,exec
	expect_eq "-o sync is -o sync=commit" commit "$("$MMSBCTL" --mount "$MNT" status | awk '$1 == "sync" { print $2 }')"
	info=$(awk -v m="$MNT" '$5 == m' /proc/self/mountinfo)
	[[ $info != *noexec* ]] || fail "-o exec: expected no noexec, got: $info"
	mnt_umount
	refused "unknown option" "unknown option 'bogus'" -o bogus "$STORE" "$MNT"
	refused "uid=" "each page keeps its own owner" -o uid=3 "$STORE" "$MNT"
	refused "bad loglevel" "bad -o loglevel=loud" -o loglevel=loud "$STORE" "$MNT"
}

# ---- fstab and mount -t, through mount(8) and mount.fuse3 ---------------------------------

t_fstab() {
	command -v unshare >/dev/null || skip_section "unshare (util-linux) missing"
	[[ -x /sbin/mount.fuse3 || -x /usr/sbin/mount.fuse3 ]] || skip_section "mount.fuse3 (fuse3) missing"
	[[ -d /usr/local/sbin ]] || skip_section "/usr/local/sbin missing (the namespace binds mmsbfs there)"
	local bin=$TEST_TMP/sbin fstab=$TEST_TMP/fstab flog=$TEST_TMP/fstab.log out
	mkdir -p "$bin"
	ln -sf "$MMSBFS" "$bin/mmsbfs"
	printf '# MMSB store\n%s %s fuse.mmsbfs defaults,noatime,nofail,_netdev,x-systemd.requires=local-fs.target,sync_interval=500,log=%s 0 0\n' \
		"$STORE" "$MNT" "$flog" >"$fstab"
	# The namespace ends with its shell: every mount made in it is unmounted there.
	out=$(unshare -m --propagation private bash -euo pipefail -s "$bin" "$fstab" "$STORE" "$MNT" 2>&1 <<'EOF'
bin=$1 fstab=$2 store=$3 mnt=$4
mount --bind "$bin" /usr/local/sbin
wait_free() { for ((i = 0; i < 300; i++)); do flock -n "$store" true && return 0; sleep 0.1; done; echo "store still locked"; exit 1; }
mount -a -T "$fstab"
findmnt -n -o FSTYPE,SOURCE "$mnt" | grep -qx "fuse.mmsbfs *$store" || { echo "mount -a: not mounted: $(findmnt "$mnt")"; exit 1; }
echo "from fstab" >"$mnt/page"
mount -a -T "$fstab" # already mounted: nothing to do, exit 0
umount "$mnt"
wait_free
mount -t fuse.mmsbfs "$store" "$mnt"
[[ $(cat "$mnt/page") == "from fstab" ]] || { echo "mount -t: page lost"; exit 1; }
umount "$mnt"
wait_free
mount -t fuse.mmsbfs -o ro,nosuid,nodev "$store" "$mnt"
if echo x >"$mnt/other" 2>/dev/null; then echo "mount -o ro: a write succeeded"; exit 1; fi
umount "$mnt"
wait_free
echo "namespace: ok"
EOF
	) || fail "fstab/mount -t in a private namespace: $out"
	[[ $out == *"namespace: ok"* ]] || fail "fstab: $out"
	is_mounted && fail "the namespace's mount is visible outside it"
	grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z mmsbfs\[[0-9]+\] info: .* mounted on '"$MNT"'$' "$flog" ||
		fail "-o log= from fstab: expected a timestamped 'mounted on' line in $flog: $(cat "$flog")"
	grep -q "closed" "$flog" || fail "-o log=: expected the 'closed' line after umount: $(cat "$flog")"
}

# ---- the systemd unit ---------------------------------------------------------------------------

t_systemd_unit() {
	local inst unit dir=$TEST_TMP/units out
	inst=$(systemd-escape --path "$STORE" 2>/dev/null) || inst=store
	grep -q '^Type=notify$' "$UNIT" || fail "$UNIT: expected Type=notify"
	grep -q '^ExecStart=.*/mmsbfs -f -o ${OPTIONS} %f ${MOUNTPOINT}$' "$UNIT" || fail "$UNIT: unexpected ExecStart: $(grep ExecStart "$UNIT")"
	if command -v systemd-analyze >/dev/null; then
		mkdir -p "$dir"
		unit="$dir/mmsbfs@$inst.service"
		# the installed path of mmsbfs does not exist yet: verify against the built one
		sed "s|^ExecStart=[^ ]*/mmsbfs |ExecStart=$MMSBFS |" "$UNIT" >"$unit"
		out=$(systemd-analyze verify --man=no "$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
		[[ -z $out ]] || fail "systemd-analyze verify: expected no warnings, got: $out"
	else
		log "systemd-analyze missing: unit syntax not verified"
	fi
	# What systemd does with the unit: ExecStart with $NOTIFY_SOCKET set, READY=1
	# once the mount is up, SIGTERM to stop: unmount, final checkpoint, exit 0.
	local sock=$TEST_TMP/notify.sock msgs=$TEST_TMP/notify.msgs pid lpid i head ck
	"$PY" - "$sock" "$msgs" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
with open(sys.argv[2], "a") as out:
    while True:
        try:
            m = s.recv(4096).decode()
        except socket.timeout:
            break
        out.write(m.replace("\n", " ") + "\n")
        out.flush()
        if "STOPPING=1" in m:
            break
EOF
	lpid=$!
	for ((i = 0; i < 100; i++)); do [[ -S $sock ]] && break; sleep 0.05; done
	NOTIFY_SOCKET=$sock "$MMSBFS" -f -o defaults "$STORE" "$MNT" </dev/null >"$TEST_TMP/unit.log" 2>&1 &
	pid=$!
	echo "$pid" >>"$TEST_TMP/daemon-pids"
	for ((i = 0; i < 300; i++)); do grep -q READY=1 "$msgs" 2>/dev/null && break; sleep 0.05; done
	grep -q "READY=1" "$msgs" || fail "no READY=1 on NOTIFY_SOCKET: $(cat "$msgs" 2>/dev/null) $(cat "$TEST_TMP/unit.log")"
	grep -q "MAINPID=$pid" "$msgs" || fail "READY=1 without MAINPID=$pid: $(cat "$msgs")"
	is_mounted || fail "READY=1 came before the mount was up"
	echo "unit data" >"$MNT/u"
	head=$(head_epoch)
	kill -TERM "$pid"
	local rc=0
	wait "$pid" || rc=$?
	expect_eq "exit status after SIGTERM (systemctl stop)" 0 "$rc"
	is_mounted && fail "still mounted after SIGTERM"
	wait "$lpid" || true
	grep -q "STOPPING=1" "$msgs" || fail "no STOPPING=1 at stop: $(cat "$msgs")"
	ck=$("$MMSBCTL" --store "$STORE" --json status | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["last_ckpt"])')
	expect_eq "final checkpoint at stop is the head" "$head" "$ck"
}

# ---- safe start-up ---------------------------------------------------------------------------------

t_startup_refusals() {
	local s=$TEST_TMP/s1 before after
	refused "store = mount point" "the store and the mount point are the same directory" "$MNT" "$MNT"
	refused "store = mount point (relative)" "the same directory" mnt mnt
	[[ -z $(ls -A "$MNT") ]] || fail "store = mount point left files in $MNT: $(ls -A "$MNT")"
	: >"$TEST_TMP/afile"
	refused "mount point is a file" "not a directory" "$s" "$TEST_TMP/afile"
	[[ ! -e $s ]] || fail "a refused mount created the store directory $s"
	refused "missing mount point" "No such file or directory" "$s" "$TEST_TMP/nowhere"
	[[ ! -e $s ]] || fail "a refused mount created the store directory $s"
	mkdir -p "$TEST_TMP/full"
	echo keep >"$TEST_TMP/full/mine"
	refused "non-empty mount point" "mount point is not empty" "$s" "$TEST_TMP/full"
	[[ ! -e $s ]] || fail "a refused mount created the store directory $s"
	mkdir -p "$TEST_TMP/user"
	echo "user data" >"$TEST_TMP/user/file.txt"
	refused "foreign non-empty store directory" "not an MMSB store, and not empty" "$TEST_TMP/user" "$MNT"
	expect_eq "foreign directory untouched" "file.txt" "$(ls -A "$TEST_TMP/user")"
	refused "store inside the mount point" "the store is inside the mount point" "$MNT/st" "$MNT"
	[[ -z $(ls -A "$MNT") ]] || fail "store inside the mount point left $(ls -A "$MNT")"
	refused "mount point inside the store" "the mount point is inside the store" "$TEST_TMP/user" "$TEST_TMP/user/m"
	# -o nonempty: allowed, and the files come back after the unmount
	"$MMSBFS" -o nonempty "$s" "$TEST_TMP/full" || fail "-o nonempty refused"
	[[ ! -e $TEST_TMP/full/mine ]] || fail "-o nonempty: the mount does not cover the directory"
	fusermount3 -u "$TEST_TMP/full"
	store_free "$s"
	expect_eq "files under a -o nonempty mount" keep "$(cat "$TEST_TMP/full/mine")"
	# an empty store directory stays empty after a refused mount
	mkdir -p "$TEST_TMP/empty"
	before=$(ls -A "$TEST_TMP/empty")
	refused "empty store, bad mount point" "not a directory" "$TEST_TMP/empty" "$TEST_TMP/afile"
	after=$(ls -A "$TEST_TMP/empty")
	expect_eq "empty store directory after a refused mount" "$before" "$after"
}

# A mount that fails after its store was created (here: the kernel mount,
# refused to an unprivileged user asking allow_other without
# user_allow_other in /etc/fuse.conf) removes the store it created.
t_failed_mount_undo() {
	local d=$TEST_TMP/nobody out rc=0
	command -v setpriv >/dev/null || skip_section "setpriv (util-linux) missing"
	mkdir -p "$d/m" "$d/empty"
	chmod 1777 "$d"
	chmod 0777 "$d/m" "$d/empty"
	set +e
	out=$(cd / && timeout 20 setpriv --reuid=65534 --regid=65534 --clear-groups "$MMSBFS" -o allow_other "$d/s" "$d/m" 2>&1)
	rc=$?
	set -e
	if ((rc == 0)); then
		fusermount3 -u "$d/m"
		skip_section "an unprivileged allow_other mount succeeded here: no failing mount to undo"
	fi
	log "failing mount: $out"
	[[ ! -e $d/s ]] || fail "a failed mount left the store directory it created: $(ls -A "$d/s")"
	set +e
	out=$(cd / && timeout 20 setpriv --reuid=65534 --regid=65534 --clear-groups "$MMSBFS" -o allow_other "$d/empty" "$d/m" 2>&1)
	set -e
	expect_eq "an empty store directory after a failed mount" "" "$(ls -A "$d/empty")"
}

# ---- one daemon per store ---------------------------------------------------------------------------

t_second_daemon() {
	local m2=$TEST_TMP/m2 out
	mkdir -p "$m2"
	mnt_mount
	echo one >"$MNT/p"
	refused "second daemon, -o ro" "store is in use by mmsbfs process $DAEMON_PID mounted on $MNT" -o ro "$STORE" "$m2"
	refused "second daemon, rw" "store is in use by mmsbfs process $DAEMON_PID" "$STORE" "$m2"
	refused "second daemon, -f" "store is in use by mmsbfs process $DAEMON_PID" -f "$STORE" "$m2"
	awk -v m="$m2" '$5 == m { exit 1 }' /proc/self/mountinfo || fail "the refused daemon mounted $m2"
	out=$("$MMSBCTL" --mount "$MNT" status)
	[[ $out == *"daemon          $DAEMON_PID"* ]] || fail "mmsbctl --mount: expected daemon $DAEMON_PID: $out"
	mnt_umount
	store_free
	# once the first is gone, a read-only daemon may serve it
	"$MMSBFS" -o ro "$STORE" "$m2" || fail "read-only mount after the read-write one ended"
	expect_eq "read-only mount reads" one "$(cat "$m2/p")"
	fusermount3 -u "$m2"
	store_free
}

# ---- stacked mounts: mmsbctl --mount reaches the one on top --------------------------------------------

t_stacked() {
	local a=$TEST_TMP/sa b=$TEST_TMP/sb out pa pb
	"$MMSBFS" "$a" "$MNT" || fail "mount A"
	pa=$(mmsbfs_lock_pid "$a")
	echo "$pa" >>"$TEST_TMP/daemon-pids"
	"$MMSBFS" "$b" "$MNT" || fail "mount B on top of A (A's root is empty)"
	pb=$(mmsbfs_lock_pid "$b")
	echo "$pb" >>"$TEST_TMP/daemon-pids"
	expect_eq "mounts stacked on $MNT" 2 "$(mount_count)"
	out=$("$MMSBCTL" --mount "$MNT" status)
	[[ $out == *"store           $b"* ]] || fail "mmsbctl --mount: expected the top store $b, got: $out"
	out=$(cd "$MNT" && "$MMSBCTL" status)
	[[ $out == *"store           $b"* ]] || fail "mmsbctl in the mount: expected the top store $b, got: $out"
	echo top >"$MNT/t"
	"$MMSBCTL" --mount "$MNT" checkpoint >/dev/null
	out=$("$MMSBCTL" --mount "$MNT" status)
	[[ $out == *"checkpoints     1"* ]] || fail "checkpoint went to the wrong store: $out"
	fusermount3 -u "$MNT"
	store_free "$b"
	fusermount3 -u "$MNT"
	store_free "$a"
}

# mmsbfs_lock_pid STORE: pid of the daemon serving STORE (its argument).
mmsbfs_lock_pid() {
	local p args
	for p in /proc/[0-9]*; do
		mapfile -d '' -t args <"$p/cmdline" 2>/dev/null || continue
		((${#args[@]} >= 3)) || continue
		[[ ${args[0]} == *mmsbfs && ${args[${#args[@]} - 2]} == "$1" ]] && { echo "${p#/proc/}"; return 0; }
	done
	return 0
}

# ---- messages ------------------------------------------------------------------------------------------

t_logging() {
	local lf=$TEST_TMP/daemon.log n
	# -f and -o log=FILE: stderr and the file
	mnt_mount_fg -o "log=$lf"
	mnt_umount
	grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z mmsbfs\[[0-9]+\] info: '"$STORE"' mounted on '"$MNT"'$' "$lf" ||
		fail "-o log=: expected a timestamped 'mounted on' line: $(cat "$lf")"
	grep -q "mounted on $MNT" "$DAEMON_LOG" || fail "-f: expected the messages on stderr too: $(cat "$DAEMON_LOG")"
	n=$(wc -l <"$lf")
	# appended, not truncated
	mnt_mount_fg -o "log=$lf,loglevel=err"
	mnt_umount
	expect_eq "-o loglevel=err: no info lines appended" "$n" "$(wc -l <"$lf")"
	# -v: debug messages (the FUSE handshake), without libfuse's request trace
	mnt_mount_fg -v
	ls "$MNT" >/dev/null
	mnt_umount
	grep -q "init: protocol 7\." "$DAEMON_LOG" || fail "-v: expected the debug line 'init: protocol': $(head -5 "$DAEMON_LOG")"
	grep -q "unique:" "$DAEMON_LOG" && fail "-v must not turn on libfuse's request trace"
	# -d: libfuse's request trace still works
	mnt_mount_fg -d
	ls "$MNT" >/dev/null
	mnt_umount
	grep -q "unique:" "$DAEMON_LOG" || fail "-d: expected libfuse's request trace: $(head -5 "$DAEMON_LOG")"
	# daemonized, no -o log=: without a syslog socket the messages go to STORE/mmsbfs.log
	if [[ -e /dev/log ]]; then
		log "/dev/log exists: the daemon logs to syslog"
	else
		rm -f "$STORE/mmsbfs.log"
		mnt_mount
		mnt_umount
		store_free
		grep -q "mounted on $MNT" "$STORE/mmsbfs.log" || fail "daemon without syslog: expected $STORE/mmsbfs.log: $(cat "$STORE/mmsbfs.log" 2>&1)"
		grep -q "closed" "$STORE/mmsbfs.log" || fail "daemon without syslog: expected the 'closed' line"
	fi
	refused "unwritable log" "-o log=/nonexistent/dir/x" -o log=/nonexistent/dir/x "$STORE" "$MNT"
}

# ---- xattr listing ----------------------------------------------------------------------------------------

t_xattr_listing() {
	local f=$MNT/x l=$MNT/lnk names
	mnt_mount
	echo data >"$f"
	ln -s x "$l"
	setfattr -n user.color -v red "$f"
	names=$(getfattr --absolute-names -d -m - "$f")
	[[ $names == *'user.color="red"'* ]] || fail "listing: user.color missing: $names"
	[[ $names != *user.mmsb.* ]] || fail "listing: user.mmsb.* must be hidden by default: $names"
	names=$(getfattr --absolute-names -d -m - "$MNT")
	[[ $names != *user.mmsb.* ]] || fail "root listing: user.mmsb.* must be hidden by default: $names"
	[[ $(xattr_value user.mmsb.epoch "$f") =~ ^[0-9]+$ ]] || fail "user.mmsb.epoch must read by name"
	[[ $(xattr_value user.mmsb.head "$MNT") =~ ^[0-9]+$ ]] || fail "user.mmsb.head must read by name"
	names=$(getfattr --absolute-names -h -d -m - "$l" 2>&1)
	[[ -z $names ]] || fail "a symlink must list nothing (its user.* reads are ENODATA): $names"
	mnt_umount
	mnt_mount -o show_mmsb_xattrs
	names=$(getfattr --absolute-names -d -m - "$f")
	for v in user.color user.mmsb.id user.mmsb.epoch user.mmsb.version; do
		[[ $names == *"$v="* ]] || fail "-o show_mmsb_xattrs: expected $v listed: $names"
	done
	names=$(getfattr --absolute-names -d -m - "$MNT")
	[[ $names == *user.mmsb.head=* ]] || fail "-o show_mmsb_xattrs: expected user.mmsb.head on the root: $names"
	names=$(getfattr --absolute-names -h -d -m - "$l" 2>&1)
	[[ -z $names ]] || fail "-o show_mmsb_xattrs: a symlink still lists nothing: $names"
	mnt_umount
}

section t_generic_options
section t_fstab
section t_systemd_unit
section t_startup_refusals
section t_failed_mount_undo
section t_second_daemon
section t_stacked
section t_logging
section t_xattr_listing
lib_finish
