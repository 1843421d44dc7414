#!/bin/bash
# test_obs.sh MMSBFS MMSBCTL - observing and tidying a mount: df numbers,
# Prometheus metrics (mmsbctl stats --prometheus and -o metrics=), retention
# (-o keep=), numeric options refused, mmsbctl's tables (human sizes, watch
# header, checkpoint times, diff --stat bytes), the progress line on a
# terminal only, and the bash completion.
source "$(dirname "$0")/lib.sh"
lib_init "$1"
MMSBCTL=$(realpath "${2:?usage: test_obs.sh MMSBFS MMSBCTL}")
COMPLETION=$(realpath "${3:?usage: test_obs.sh MMSBFS MMSBCTL COMPLETION LIBMMSB PYDIR}")
LIBMMSB=$(realpath "${4:?usage: test_obs.sh MMSBFS MMSBCTL COMPLETION LIBMMSB PYDIR}")
PYDIR=$(realpath "${5:?usage: test_obs.sh MMSBFS MMSBCTL COMPLETION LIBMMSB PYDIR}")
ctl() { "$MMSBCTL" --mount "$MNT" "$@"; }
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json() { "$PY" -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

bad_options() {
	local opt out
	for opt in threads=0 threads=4x threads=-1 threads=100000 sync_interval=0 exec_timeout=0 keep=7 keep=0d \
		keep=5m keep=1d:2h metrics=localhost metrics=127.0.0.1:0 metrics=127.0.0.1:99999; do
		if out=$("$MMSBFS" -o "$opt" "$STORE" "$MNT" 2>&1); then
			fusermount3 -u "$MNT"
			fail "-o $opt accepted"
		fi
		[[ $out == *"bad -o ${opt%%=*}="* ]] || fail "-o $opt: message '$out' does not name the option"
		! mountpoint -q "$MNT" || fail "-o $opt mounted"
	done
	[[ $("$MMSBFS" -o threads=0 "$STORE" "$MNT" 2>&1) == *"a whole number from 1 to 256"* ]] ||
		fail "threads=0: no range in the message"
}

# statvfs of the mount vs the store's own counters
df_numbers() {
	head -c $((4 << 20)) /dev/urandom >"$MNT/four"
	"$PY" - "$MNT" "$STORE" "$MMSBCTL" <<'PY' || fail "df numbers"
import json, math, os, subprocess, sys
mnt, store, ctl = sys.argv[1:4]
s = json.loads(subprocess.run([ctl, "--mount", mnt, "--json", "stats"], check=True, capture_output=True).stdout)
v = os.statvfs(mnt)
used = (v.f_blocks - v.f_bfree) * v.f_frsize
want = math.ceil((s["page_bytes"] + s["log_bytes"] + s["ckpt_bytes"]) / v.f_frsize) * v.f_frsize
disk = os.statvfs(store)
print("df used", used, "store", want, "page_bytes", s["page_bytes"], "avail", v.f_bavail * v.f_frsize)
assert s["page_bytes"] >= 4 << 20, s
assert used == want, (used, want)
assert v.f_bavail * v.f_frsize <= disk.f_bavail * disk.f_frsize, "avail exceeds the store disk's free space"
assert v.f_blocks * v.f_frsize < 2 * (disk.f_blocks * disk.f_frsize) + used, "size unrelated to the store"
PY
	local before after
	before=$(stat -f -c '%b %f' "$MNT" | awk '{print $1 - $2}')
	head -c $((2 << 20)) /dev/urandom >"$MNT/two"
	after=$(stat -f -c '%b %f' "$MNT" | awk '{print $1 - $2}')
	((after - before >= (2 << 20) / 4096)) || fail "df used grew by $((after - before)) blocks for 2 MiB"
}

prom_check() { # prom_check FILE: text exposition format, every sample with HELP and TYPE
	"$PY" - "$1" <<'PY' || fail "prometheus format: $(head -c 600 "$1")"
import re, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines, "empty"
helps, types, samples = set(), {}, {}
for l in lines:
    if l.startswith("# HELP "):
        helps.add(l.split()[2])
    elif l.startswith("# TYPE "):
        _, _, name, t = l.split()
        assert t in ("gauge", "counter"), l
        types[name] = t
    else:
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*) (-?[0-9.]+(e[-+]?[0-9]+)?)", l)
        assert m, "bad sample line: %r" % l
        samples[m.group(1)] = float(m.group(2))
for n in samples:
    assert n in helps and n in types, n
    assert (types[n] == "counter") == n.endswith("_total"), n
assert samples["mmsb_head_epoch"] >= 1 and "mmsb_commit_p99_seconds" in samples
PY
}

metrics() {
	local out=$TEST_TMP/prom head
	ctl stats --prometheus >"$out" || fail "stats --prometheus"
	prom_check "$out"
	head=$(ctl --json status | json 'd["head"]')
	grep -qx "mmsb_head_epoch $head" "$out" || fail "mmsb_head_epoch is not $head: $(grep head_epoch "$out")"
	"$MMSBCTL" --store "$STORE" stats --prometheus >/dev/null 2>&1 || true # offline while mounted: may be refused
	"$PY" - "$PORT" "$head" "$TEST_TMP/http" <<'PY' || fail "GET /metrics"
import sys, urllib.request, urllib.error
port, head, out = sys.argv[1], sys.argv[2], sys.argv[3]
r = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=10)
assert r.status == 200, r.status
assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers["Content-Type"]
body = r.read().decode()
open(out, "w").write(body)
assert ("mmsb_head_epoch %s\n" % head) in body, body[:300]
assert "mmsb_fuse_snapshot_inodes " in body
for path, method, code in (("/", "GET", 404), ("/metrics", "POST", 405)):
    try:
        urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%s%s" % (port, path), method=method,
                                                      data=b"" if method == "POST" else None), timeout=10)
        raise SystemExit("%s %s answered 200" % (method, path))
    except urllib.error.HTTPError as e:
        assert e.code == code, (path, e.code)
PY
	prom_check "$TEST_TMP/http"
}

retention() { # mounted with keep=3e
	local oldest e
	for e in 1 2 3 4; do echo "v$e" >"$MNT/r"; done
	ctl checkpoint >/dev/null
	local c1=$(ctl --json checkpoints | json 'd[-1]["epoch"]')
	for e in 1 2 3 4; do echo "w$e" >"$MNT/r"; done
	ctl tag keepme "$((c1 + 1))" >/dev/null
	ctl checkpoint >/dev/null
	oldest=$(ctl --json status | json 'd["oldest"]')
	expect_eq "oldest after keep=3e (tag after $c1)" "$c1" "$oldest"
	ls "$MNT/epochs/keepme/" >/dev/null || fail "tagged epoch unreadable"
	ctl untag keepme >/dev/null
	for e in 1 2 3 4; do echo "x$e" >"$MNT/r"; done
	ctl checkpoint >/dev/null
	local c2=$(ctl --json checkpoints | json 'd[-2]["epoch"]')
	oldest=$(ctl --json status | json 'd["oldest"]')
	expect_eq "oldest after keep=3e (untagged)" "$c2" "$oldest"
	! ctl diff "$c1" head >/dev/null 2>&1 || fail "epoch $c1 still retained"
}

tables() {
	local out=$TEST_TMP/t e0
	e0=$(ctl --json status | json 'd["head"]')
	head -c $((1 << 20)) /dev/zero | tr '\0' 'a' >"$MNT/mib"
	head -c 3000 /dev/zero | tr '\0' 'b' >"$MNT/small"
	ctl diff "$e0" head --stat >"$out" || fail "diff --stat"
	grep -q "2 added.*1051576 bytes (1.00 MiB) changed" "$out" || fail "diff --stat: $(cat "$out")"
	grep -Eq '^added +mib +1.00 MiB$' "$out" || fail "diff --stat row: $(cat "$out")"
	ctl --json diff "$e0" head --stat | json '[r["bytes"] for r in d]' | grep -q '1048576, 3000' ||
		fail "diff --json bytes: $(ctl --json diff "$e0" head --stat)"
	ctl status >"$out"
	grep -Eq '^bytes +[0-9.]+ MiB$' "$out" || fail "status bytes not human: $(grep bytes "$out")"
	ctl --json status | json 'd["bytes"]' | grep -Eq '^[0-9]+$' || fail "status --json bytes not exact"
	ctl stats | grep -Eq '^commit_p99_ns +[0-9.]+ (ns|us|ms|s)$' || fail "stats durations: $(ctl stats | grep p99)"
	# watch: column names only
	timeout 2 "$MMSBCTL" --mount "$MNT" watch >"$out" 2>&1 &
	local w=$!
	sleep 0.5
	echo poke >"$MNT/poke"
	wait "$w" || true
	head -n 1 "$out" | grep -Eq '^ *epoch +time +source +pages +bytes +paths$' ||
		fail "watch header: $(head -n 1 "$out")"
	! head -n 1 "$out" | grep -q ':[utlbd]\b' || fail "watch header shows types: $(head -n 1 "$out")"
}

ckpt_times() { # after a remount: every checkpoint shows its time
	local out=$TEST_TMP/t
	ctl checkpoints >"$out"
	grep -E ' tagged' "$out" | grep -Eq '^ *[0-9]+ +[0-9]{4}-[0-9]{2}-[0-9]{2}T' || fail "checkpoints: $(cat "$out")"
	! grep -Eq '^ *[0-9]+ +- ' "$out" || fail "a checkpoint without time: $(cat "$out")"
}

progress() {
	command -v script >/dev/null || { log "no script(1): progress on a tty not checked"; return 0; }
	MMSB_PROGRESS_DELAY_MS=0 script -qec "'$MMSBCTL' --mount '$MNT' export head '$TEST_TMP/x1'" /dev/null \
		>"$TEST_TMP/tty.out" </dev/null
	grep -q 'export: [0-9]* files' "$TEST_TMP/tty.out" || fail "no progress on a tty: $(od -c "$TEST_TMP/tty.out" | head)"
	MMSB_PROGRESS_DELAY_MS=0 "$MMSBCTL" --mount "$MNT" export head "$TEST_TMP/x2" >"$TEST_TMP/pipe.out" 2>&1
	! grep -q 'files,' "$TEST_TMP/pipe.out" || fail "progress written to a pipe: $(cat "$TEST_TMP/pipe.out")"
	MMSB_PROGRESS_DELAY_MS=0 script -qec "'$MMSBCTL' --mount '$MNT' verify" /dev/null >"$TEST_TMP/tty.out" </dev/null
	grep -q 'verify: [0-9.]* s' "$TEST_TMP/tty.out" || fail "no verify progress on a tty"
}

completion() {
	local dir
	dir=$(dirname "$MMSBCTL")
	PATH=$dir:$PATH bash -c '
		set -u
		source "$1"
		mnt=$2
		comp() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _mmsbctl; echo "${COMPREPLY[*]}"; }
		r=$(comp mmsbctl st);                     [[ $r == "status stats" ]] || { echo "commands: $r"; exit 1; }
		r=$(comp mmsbctl --j);                    [[ $r == --json ]] || { echo "global options: $r"; exit 1; }
		r=$(comp mmsbctl stats --p);              [[ $r == --prometheus ]] || { echo "stats options: $r"; exit 1; }
		r=$(comp mmsbctl diff --s);               [[ $r == --stat ]] || { echo "diff options: $r"; exit 1; }
		r=$(comp mmsbctl --mount "$mnt" diff ""); [[ " $r " == *" head "* && " $r " == *" tagged "* ]] ||
			{ echo "epochs: $r"; exit 1; }
		head=$(mmsbctl --mount "$mnt" --json status | python3 -c "import json,sys; print(json.load(sys.stdin)[\"head\"])")
		[[ " $r " == *" $head "* ]] || { echo "epoch numbers: $r (head $head)"; exit 1; }
		r=$(comp mmsbctl --mount "$mnt" untag t); [[ $r == tagged ]] || { echo "untag: $r"; exit 1; }
		r=$(comp mmsbctl --mount "$mnt" log --since he); [[ $r == head ]] || { echo "--since: $r"; exit 1; }
		r=$(comp mmsbctl help com);               [[ $r == compact ]] || { echo "help: $r"; exit 1; }
	' _ "$COMPLETION" "$MNT" || fail "completion"
}

port_taken() { # a metrics port that cannot be bound stops the mount
	local port pid
	port=$(free_port)
	"$PY" -c 'import socket, sys, time; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(30)' \
		"$port" &
	pid=$!
	sleep 0.3
	if "$MMSBFS" -o "metrics=127.0.0.1:$port" "$STORE" "$MNT" 2>"$TEST_TMP/taken.err"; then
		kill "$pid"
		fusermount3 -u "$MNT"
		fail "mounted with metrics port $port taken"
	fi
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	grep -q "metrics=127.0.0.1:$port: cannot listen" "$TEST_TMP/taken.err" || fail "message: $(cat "$TEST_TMP/taken.err")"
	! mountpoint -q "$MNT" || fail "still mounted"
}

live_read() { # the Python module reads the store while the mount serves it
	if [[ $(nm -D --undefined-only "$LIBMMSB" 2>/dev/null) == *" __asan_"* ]]; then
		log "libmmsb.so is built with a sanitizer: python3 cannot load it; live read not checked"
		return 0
	fi
	echo live-bytes >"$MNT/live"
	local e
	e=$(ctl --json status | json 'd["head"]')
	PYTHONPATH=$PYDIR MMSB_LIBRARY=$LIBMMSB "$PY" - "$STORE" "$e" <<'PY' || fail "read-only open of a live store"
import sys, mmsb
st = mmsb.Store(sys.argv[1])
assert st.head >= int(sys.argv[2]), (st.head, sys.argv[2])
assert st.read("live") == b"live-bytes\n"
assert any(c.path == "live" for c in st.feed(since=int(sys.argv[2]) - 1))
PY
}

section bad_options
section port_taken
PORT=$(free_port)
mnt_mount -o "keep=3e,metrics=127.0.0.1:$PORT"
section df_numbers
section metrics
section retention
section tables
ctl checkpoint --tag tagged >/dev/null
mnt_umount
mnt_mount -o "keep=3e,metrics=127.0.0.1:$PORT"
section ckpt_times
section progress
section completion
section live_read
mnt_umount
lib_finish
