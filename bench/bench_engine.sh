#!/bin/bash
# bench_engine.sh - the engine under load (needs root): bulk writes, parallel
# writers, readers during a slow transaction, checkpoint size and cost.
# Peers run in the same run on one tmpfs, each measured by the same code:
#   tmpfs                                  the kernel's limit
#   bindfs -o big_writes --multithreaded   a FUSE passthrough (libfuse2)
#   fuse-overlayfs                         a FUSE passthrough (libfuse3)
#   mmsbfs                                 store on the tmpfs, default options
#
#   bench/bench_engine.sh BUILD_DIR [OUT_FILE]
#
# Sections (ONLY=a,c runs a subset; each one stands alone):
#   a  1 MiB sequential write(2)s of SEQ_MIB (1024) MiB into a fresh file (a
#      fresh store for mmsbfs): MB/s and the largest single-write latency
#   b  fio 4 KiB random writes, 64 MiB file, buffered, RAND_S (4) s: IOPS
#   c  4 jobs on 4 files vs 1 job (fio): 4 KiB random writes (IOPS) and 1 MiB
#      sequential writes of 128 MiB each (MB/s)
#   d  head read latency (4 KiB pread + forced statx of another file, one
#      thread) idle, and while another thread's write triggers a 1-second
#      exec: recompute (mmsbfs -o allow_exec)
#   e  bytes on disk (du of the store) after section a's write and unmount
#   f  mmsbctl checkpoint of a CKPT_SIZE (4G) store: the first (full) one,
#      then again after changing 1 MiB
#   g  4 KiB pwrite latency, idle and while the first checkpoint of a
#      CKPT_SIZE store runs
# Every figure is the median of RUNS (3) runs.  Sections f and g keep their
# stores in CKPT_DIR (default /var/tmp, a disk: a 4 GiB store holds 4 GiB in
# the daemon, 4 GiB of log and 4 GiB per full checkpoint); CKPT_SIZE=1G
# for a smaller machine.
set -euo pipefail
# shellcheck source=bench_lib.sh
source "$(dirname "$0")/bench_lib.sh"
B=$(realpath "${1:?usage: bench_engine.sh BUILD_DIR [OUT_FILE]}")
OUTF=${2:-/dev/stdout}
RUNS=${RUNS:-3}
ONLY=${ONLY:-a,b,c,d,e,f,g}
SEQ_MIB=${SEQ_MIB:-1024}
RAND_S=${RAND_S:-4}
CKPT_SIZE=${CKPT_SIZE:-4G}
CKPT_DIR=${CKPT_DIR:-/var/tmp}
MMSBFS=$B/fusefs/mmsbfs
MMSBCTL=$B/tools/mmsbctl
HELPER=$B/bench/bench_engine
for x in "$MMSBFS" "$MMSBCTL" "$HELPER"; do
	[[ -x $x ]] || { echo "bench_engine.sh: $x is missing (ninja -C BUILD_DIR)" >&2; exit 1; }
done
for x in fio bindfs fuse-overlayfs setfattr flock; do
	command -v "$x" >/dev/null || { echo "bench_engine.sh: $x is missing (apt-get install fio bindfs fuse-overlayfs attr util-linux)" >&2; exit 1; }
done
case $CKPT_SIZE in
*G | *g) CKPT_MIB=$((${CKPT_SIZE%[Gg]} * 1024)) ;;
*M | *m) CKPT_MIB=${CKPT_SIZE%[Mm]} ;;
*) echo "bench_engine.sh: CKPT_SIZE is N G or N M, not $CKPT_SIZE" >&2; exit 1 ;;
esac
want() { [[ ,$ONLY, == *,$1,* ]]; }

T=$(mktemp -d /tmp/mmsb-benchengine.XXXXXX)
mount -t tmpfs -o size=16g tmpfs "$T"
mkdir -p "$T"/{tmpfs,mmsb,res}
CK=""
MNTS=("$T/bindfs" "$T/overlay" "$T/mmsb")
cleanup() {
	cd /
	for m in "${MNTS[@]}"; do unmount_fuse "$m"; done
	for s in "$T"/store*; do [[ -d $s ]] && wait_store "$s"; done
	if [[ -n $CK && -d $CK ]]; then
		unmount_fuse "$CK/mnt"
		wait_store "$CK/store"
		rm -rf "$CK"
	fi
	for _ in 1 2 3 4 5 6 7 8 9 10; do umount "$T" 2>/dev/null && break; sleep 0.5; done
	mountpoint -q "$T" && umount -l "$T"
	rmdir "$T" 2>/dev/null || true
}
trap cleanup EXIT
peers_mount "$T"
declare -A DIRS=([tmpfs]=$T/tmpfs [bindfs]=$T/bindfs [fuse-overlayfs]=$T/overlay [mmsbfs]=$T/mmsb)
ORDER=(tmpfs bindfs fuse-overlayfs mmsbfs)
declare -A R
note() { printf '[%s] %s\n' "$(date -u +%T)" "$*" >&2; }
# rec KEY VALUE: one sample of KEY
rec() { echo "$2" >>"$T/res/$1"; }
# med KEY: the median of KEY's samples into R[KEY]
med() { R[$1]=$( [[ -s $T/res/$1 ]] && median <"$T/res/$1" || echo -); }
# val NAME FILE: the value of line "NAME value unit" of a helper's output
val() { awk -v n="$1" '$1 == n { print $2 }' "$2"; }
row() { printf '%-44s %12s %12s %12s %12s\n' "$@"; }
out() { printf '%s\n' "$@" >>"$OUTF"; }

# mmsb_up STORE [options]: mount a store on $T/mmsb (daemon mode)
mmsb_up() {
	local s=$1
	shift
	"$MMSBFS" "$@" "$s" "$T/mmsb"
}
# mmsb_down STORE: unmount and wait until the daemon finished with the store
mmsb_down() {
	unmount_fuse "$T/mmsb"
	wait_store "$1"
}

[[ $OUTF == /dev/stdout ]] || : >"$OUTF"
{
	echo "# bench_engine.sh: the engine under load"
	env_header
	echo "# medians of $RUNS runs; sections $ONLY; tmpfs store and peers; CKPT_SIZE=$CKPT_SIZE in $CKPT_DIR"
} >>"$OUTF"

# ---- a, e: 1 GiB sequential into a fresh file / store ------------------------
if want a || want e; then
	for run in $(seq "$RUNS"); do
		for fs in "${ORDER[@]}"; do
			[[ $fs == mmsbfs ]] || want a || continue
			d=${DIRS[$fs]}
			if [[ $fs == mmsbfs ]]; then
				mmsb_up "$T/store_seq"
			fi
			note "a/e run $run: $fs, $SEQ_MIB MiB sequential"
			"$HELPER" fill "$d/seq" "$SEQ_MIB" >"$T/out"
			rec "a.$fs.mbps" "$(val fill_mbps "$T/out")"
			rec "a.$fs.max" "$(val fill_write_max "$T/out")"
			rec "a.$fs.p99" "$(val fill_write_p99 "$T/out")"
			if [[ $fs == mmsbfs ]]; then
				mmsb_down "$T/store_seq"
				rec e.total "$(du -sb "$T/store_seq" | cut -f1)"
				rec e.log "$(du -sb "$T/store_seq/log" | cut -f1)"
				rec e.ckpt "$(du -sb "$T/store_seq/ckpt" | cut -f1)"
				rm -rf "$T/store_seq"
			else
				rm -f "$d/seq"
			fi
		done
	done
	if want a; then
		for fs in "${ORDER[@]}"; do for k in mbps max p99; do med "a.$fs.$k"; done; done
		best=$(printf '%s\n' "${R[a.bindfs.mbps]}" "${R[a.fuse-overlayfs.mbps]}" | sort -g | tail -1)
		out "" "## a. sequential 1 MiB write(2)s, $SEQ_MIB MiB into a fresh file (mmsbfs: a fresh store)"
		out "$(row fs MB/s "write p99 ms" "write max ms" "")"
		for fs in "${ORDER[@]}"; do
			out "$(row "$fs" "${R[a.$fs.mbps]}" "$(awk -v x="${R[a.$fs.p99]}" 'BEGIN{printf "%.2f", x/1000}')" \
				"$(awk -v x="${R[a.$fs.max]}" 'BEGIN{printf "%.2f", x/1000}')" "")"
		done
		out "ratio mmsbfs/bindfs $(ratio "${R[a.mmsbfs.mbps]}" "${R[a.bindfs.mbps]}") (target >= 1.0)," \
			"mmsbfs/fuse-overlayfs $(ratio "${R[a.mmsbfs.mbps]}" "${R[a.fuse-overlayfs.mbps]}") (target >= 0.6)," \
			"mmsbfs/best FUSE peer $(ratio "${R[a.mmsbfs.mbps]}" "$best");" \
			"max write $(awk -v x="${R[a.mmsbfs.max]}" 'BEGIN{printf "%.1f", x/1000}') ms (target <= 50 ms)"
	fi
	if want e; then
		for k in total log ckpt; do med "e.$k"; done
		gib() { awk -v x="$1" 'BEGIN{ if (x == "-") print "-"; else printf "%.2f GiB", x / 1073741824 }'; }
		out "" "## e. bytes on disk after $SEQ_MIB MiB sequential into a fresh store and unmounting (du -sb)"
		out "store $(gib "${R[e.total]}") = log $(gib "${R[e.log]}") + checkpoints $(gib "${R[e.ckpt]}") (+ superblock, tags);" \
			"store/data written $(ratio "${R[e.total]}" "$((SEQ_MIB * 1048576))") (target: <= 1.3 GiB per GiB)"
	fi
fi

# ---- b, c: 4 KiB random writes, one and four writers ------------------------
if want b || want c; then
	mmsb_up "$T/store_rand"
	for run in $(seq "$RUNS"); do
		for fs in "${ORDER[@]}"; do
			d=${DIRS[$fs]}
			if want b; then
				note "b run $run: $fs, 4 KiB random writes"
				read -r _ iops _ < <(fio_job "$d" rw --rw=randwrite --bs=4k --size=64M --time_based --runtime="$RAND_S")
				rec "b.$fs" "$iops"
				rm -f "$d"/rw*
			fi
			if want c; then
				note "c run $run: $fs, 1 and 4 writers"
				read -r _ iops _ < <(fio_job "$d" c1 --rw=randwrite --bs=4k --size=16M --time_based --runtime="$RAND_S")
				rec "c1.$fs" "$iops"
				read -r _ iops _ < <(fio_job "$d" c4 --rw=randwrite --bs=4k --size=16M --time_based --runtime="$RAND_S" \
					--numjobs=4 --group_reporting)
				rec "c4.$fs" "$iops"
				# 1 MiB writes: the engine's own work per write (diff, log,
				# apply) dominates, not the FUSE round trip
				read -r bw _ _ < <(fio_job "$d" m1 --rw=write --bs=1M --size=128M)
				rec "c1m.$fs" "$bw"
				read -r bw _ _ < <(fio_job "$d" m4 --rw=write --bs=1M --size=128M --numjobs=4 --group_reporting)
				rec "c4m.$fs" "$bw"
				rm -f "$d"/c1* "$d"/c4* "$d"/m1* "$d"/m4*
			fi
		done
	done
	mmsb_down "$T/store_rand"
	rm -rf "$T/store_rand"
	if want b; then
		for fs in "${ORDER[@]}"; do med "b.$fs"; done
		best=$(printf '%s\n' "${R[b.bindfs]}" "${R[b.fuse-overlayfs]}" | sort -g | tail -1)
		out "" "## b. 4 KiB random writes (fio psync, 64 MiB file, buffered, ${RAND_S} s)"
		out "$(row fs IOPS "" "" "")"
		for fs in "${ORDER[@]}"; do out "$(row "$fs" "${R[b.$fs]}" "" "" "")"; done
		out "ratio mmsbfs/best FUSE peer $(ratio "${R[b.mmsbfs]}" "$best") (target >= 1.2)"
	fi
	if want c; then
		for fs in "${ORDER[@]}"; do for k in c1 c4 c1m c4m; do med "$k.$fs"; done; done
		out "" "## c. 4 writers on 4 files vs 1 writer (fio): 4 KiB random writes for ${RAND_S} s (IOPS), and 1 MiB sequential writes of 128 MiB per writer (MB/s)"
		out "$(row fs "4k 1 writer" "4k 4 writers" "1M 1 writer" "1M 4 writers")"
		for fs in "${ORDER[@]}"; do
			out "$(row "$fs" "${R[c1.$fs]}" "${R[c4.$fs]}" "${R[c1m.$fs]}" "${R[c4m.$fs]}")"
		done
		out "4 writers/1 writer: 4k: $(for fs in "${ORDER[@]}"; do printf '%s %s  ' "$fs" "$(ratio "${R[c4.$fs]}" "${R[c1.$fs]}")"; done)"
		out "                    1M: $(for fs in "${ORDER[@]}"; do printf '%s %s  ' "$fs" "$(ratio "${R[c4m.$fs]}" "${R[c1m.$fs]}")"; done)"
		out "mmsbfs aggregate/one writer: 4k $(ratio "${R[c4.mmsbfs]}" "${R[c1.mmsbfs]}"), 1M $(ratio "${R[c4m.mmsbfs]}" "${R[c1m.mmsbfs]}") (target >= 1.5)"
	fi
fi

# ---- d: head reads while a transaction runs a 1 s exec: recompute -----------
if want d; then
	for run in $(seq "$RUNS"); do
		mmsb_up "$T/store_exec" -o allow_exec
		m=$T/mmsb
		head -c 65536 /dev/urandom >"$m/hr_read"
		head -c 4096 /dev/urandom >"$m/hr_stat"
		head -c 4096 /dev/urandom >"$m/hr_src"
		: >"$m/hr_child"
		setfattr -n user.mmsb.deps -v hr_src "$m/hr_child"
		setfattr -n user.mmsb.recompute -v 'exec:sleep 1; cat' "$m/hr_child" # recomputes at once (1 s)
		note "d run $run: head reads, idle then during 3 writes with a 1 s recompute"
		"$HELPER" headread "$m" 3 3 >"$T/out"
		cmp -s "$m/hr_src" "$m/hr_child" || { echo "bench_engine.sh: d: hr_child is not the recomputed copy of hr_src" >&2; exit 1; }
		for k in read_idle_p50 read_idle_p99 read_idle_max read_busy_p50 read_busy_p99 read_busy_max read_busy_n trigger_write_p50; do
			rec "d.$k" "$(val "$k" "$T/out")"
		done
		mmsb_down "$T/store_exec"
		rm -rf "$T/store_exec"
	done
	for k in read_idle_p50 read_idle_p99 read_idle_max read_busy_p50 read_busy_p99 read_busy_max read_busy_n trigger_write_p50; do med "d.$k"; done
	out "" "## d. head read latency, one thread: 4 KiB pread (direct I/O) + statx(AT_STATX_FORCE_SYNC) of another file"
	out "$(row "" "p50 us" "p99 us" "max us" "")"
	out "$(row "idle (3 s)" "${R[d.read_idle_p50]}" "${R[d.read_idle_p99]}" "${R[d.read_idle_max]}" "")"
	out "$(row "during 3 writes with a 1 s exec: recompute" "${R[d.read_busy_p50]}" "${R[d.read_busy_p99]}" "${R[d.read_busy_max]}" "")"
	out "samples during the writes: ${R[d.read_busy_n]}; one triggering write took $(awk -v x="${R[d.trigger_write_p50]}" 'BEGIN{printf "%.0f", x/1000}') ms;" \
		"p99 busy/idle $(ratio "${R[d.read_busy_p99]}" "${R[d.read_idle_p99]}") (target <= 2)"
fi

# ---- f, g: checkpoints of a large store ---------------------------------------
# ck_store: a fresh store of CKPT_MIB MiB (one file, 1 MiB writes, no
# automatic checkpoint) mounted on $CK/mnt
ck_store() {
	CK=$(mktemp -d "$CKPT_DIR/mmsb-benchckpt.XXXXXX")
	mkdir -p "$CK/mnt"
	MNTS+=("$CK/mnt")
	"$MMSBFS" -o ckpt_bytes=0 "$CK/store" "$CK/mnt"
	"$HELPER" fill "$CK/mnt/big" "$CKPT_MIB" >/dev/null
	"$MMSBCTL" --mount "$CK/mnt" sync >/dev/null
}
ck_drop() {
	unmount_fuse "$CK/mnt"
	wait_store "$CK/store"
	rm -rf "$CK"
	CK=""
}
# ck_time: run mmsbctl checkpoint; prints "wall_s write_s bytes"
ck_time() {
	local t0 t1
	t0=$(date +%s.%N)
	"$MMSBCTL" --mount "$CK/mnt" checkpoint >/dev/null
	t1=$(date +%s.%N)
	"$MMSBCTL" --mount "$CK/mnt" --json stats |
		python3 -c 'import json, sys
j = json.load(sys.stdin)
print("%.3f %.4f %d" % (float(sys.argv[2]) - float(sys.argv[1]), j["ckpt_write_ns"] / 1e9, j["ckpt_write_bytes"]))' "$t0" "$t1"
}
if want f; then
	for run in $(seq "$RUNS"); do
		note "f run $run: $CKPT_SIZE store, full checkpoint, then one after a 1 MiB change"
		ck_store
		read -r w s by < <(ck_time)
		rec f.full_wall "$w"
		rec f.full_ns "$s"
		rec f.full_bytes "$by"
		python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, os.urandom(1 << 20), (int(sys.argv[2]) // 2) << 20)
os.close(fd)' "$CK/mnt/big" "$CKPT_MIB"
		read -r w s by < <(ck_time)
		rec f.inc_wall "$w"
		rec f.inc_ns "$s"
		rec f.inc_bytes "$by"
		ck_drop
	done
	for k in full_wall full_ns full_bytes inc_wall inc_ns inc_bytes; do med "f.$k"; done
	out "" "## f. mmsbctl checkpoint of a $CKPT_SIZE store (random bytes, one page; store on $CKPT_DIR)"
	out "$(row "" "wall s" "write s" "ckpt bytes" "")"
	out "$(row "first checkpoint (full)" "${R[f.full_wall]}" "${R[f.full_ns]}" "${R[f.full_bytes]}" "")"
	out "$(row "after changing 1 MiB" "${R[f.inc_wall]}" "${R[f.inc_ns]}" "${R[f.inc_bytes]}" "")"
	out "wall after 1 MiB / full $(ratio "${R[f.inc_wall]}" "${R[f.full_wall]}") (target <= 0.05);" \
		"write after 1 MiB / full $(ratio "${R[f.inc_ns]}" "${R[f.full_ns]}")" \
		"(write s, ckpt bytes: mmsbctl stats ckpt_write_ns, ckpt_write_bytes)"
fi
if want g; then
	for run in $(seq "$RUNS"); do
		note "g run $run: $CKPT_SIZE store, pwrite latency idle and during its first checkpoint"
		ck_store
		"$HELPER" pwlat "$CK/mnt/pw" 3 >"$T/out"
		rec g.idle_p50 "$(val pwrite_p50 "$T/out")"
		rec g.idle_p99 "$(val pwrite_p99 "$T/out")"
		rec g.idle_max "$(val pwrite_max "$T/out")"
		"$HELPER" pwlat "$CK/mnt/pw" 0 "$MMSBCTL" --mount "$CK/mnt" checkpoint >"$T/out"
		rec g.ck_p50 "$(val pwrite_p50 "$T/out")"
		rec g.ck_p99 "$(val pwrite_p99 "$T/out")"
		rec g.ck_max "$(val pwrite_max "$T/out")"
		rec g.ck_n "$(val pwrite_n "$T/out")"
		rec g.ck_wall "$(val cmd_wall "$T/out")"
		ck_drop
	done
	for k in idle_p50 idle_p99 idle_max ck_p50 ck_p99 ck_max ck_n ck_wall; do med "g.$k"; done
	out "" "## g. 4 KiB pwrite latency (one thread, first 1 MiB of a second file) on a $CKPT_SIZE store"
	out "$(row "" "p50 us" "p99 us" "max us" "writes")"
	out "$(row "idle (3 s)" "${R[g.idle_p50]}" "${R[g.idle_p99]}" "${R[g.idle_max]}" "")"
	out "$(row "during the first checkpoint (${R[g.ck_wall]} s)" "${R[g.ck_p50]}" "${R[g.ck_p99]}" "${R[g.ck_max]}" "${R[g.ck_n]}")"
	out "p99 during checkpoint/idle $(ratio "${R[g.ck_p99]}" "${R[g.idle_p99]}") (target <= 3)"
fi
out "" "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ $OUTF == /dev/stdout ]] || cat "$OUTF"
