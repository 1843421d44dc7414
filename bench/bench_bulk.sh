#!/bin/bash
# bench_bulk.sh - the bulk write path of mmsbfs against its peers, in the
# same run (needs root, bindfs and fuse-overlayfs):
#   tmpfs                                  the kernel's limit
#   bindfs -o big_writes --multithreaded   a FUSE passthrough (libfuse2) over tmpfs
#   fuse-overlayfs                         a FUSE passthrough (libfuse3) over tmpfs
#   mmsbfs                                 store on the same tmpfs, default options,
#                                          a fresh store for every run
# Measures, each the median of RUNS runs (default 3), the file systems taken
# in turn within each run:
#   seqwr   fio, one 1 MiB write(2) at a time, SEQ bytes (default 1g) into a
#           new file: MB/s and the largest single write latency (ms)
#   4k      fio, 4 KiB random writes into a 64 MiB file for 4 s: IOPS
#
#   bench/bench_bulk.sh BUILD_DIR [OUT_FILE]
# BASE=OTHER_BUILD_DIR adds "mmsbfs-base", the mmsbfs of another build (the
# tree before a change), to the same round robin.
set -euo pipefail
B=$(realpath "${1:?usage: bench_bulk.sh BUILD_DIR [OUT_FILE]}")
OUTF=${2:-/dev/stdout}
RUNS=${RUNS:-3}
SEQ=${SEQ:-1g}
ONLY=${ONLY:-tmpfs bindfs fuse-overlayfs mmsbfs${BASE:+ mmsbfs-base}}
T=$(mktemp -d /tmp/mmsb-benchbulk.XXXXXX)
mount -t tmpfs -o size=12g tmpfs "$T"
mkdir -p "$T"/{tmpfs,bsrc,bindfs,olow,oup,owork,overlay,mmsb,mmsb-base}
MPID=
MDIR=
umount_mmsb() {
	if [ -n "$MDIR" ] && mountpoint -q "$MDIR"; then
		fusermount3 -u "$MDIR" 2>/dev/null || true
	fi
	# the daemon writes its last checkpoint after the unmount: wait for it
	if [ -n "$MPID" ]; then
		while kill -0 "$MPID" 2>/dev/null; do sleep 0.2; done
		MPID=
	fi
}
cleanup() {
	cd /
	umount_mmsb
	for m in "$T/bindfs" "$T/overlay"; do mountpoint -q "$m" && (fusermount3 -u "$m" 2>/dev/null || fusermount -u "$m" 2>/dev/null) || true; done
	for _ in 1 2 3 4 5 6 7 8 9 10; do umount "$T" 2>/dev/null && break; sleep 0.5; done
	mountpoint -q "$T" && umount -l "$T"
	rmdir "$T" 2>/dev/null || true
}
trap cleanup EXIT

bindfs -o big_writes --multithreaded "$T/bsrc" "$T/bindfs"
fuse-overlayfs -o "lowerdir=$T/olow,upperdir=$T/oup,workdir=$T/owork" "$T/overlay"
declare -A DIRS=([tmpfs]=$T/tmpfs [bindfs]=$T/bindfs [fuse-overlayfs]=$T/overlay [mmsbfs]=$T/mmsb [mmsbfs-base]=$T/mmsb-base)

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# fio_job DIR NAME ARGS... -> "MB/s iops max_lat_ms" of the job
fio_job() {
	local d=$1 name=$2
	shift 2
	fio --name="$name" --directory="$d" --ioengine=psync --fallocate=none --output-format=json "$@" 2>/dev/null |
		python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
k = "write" if j["write"]["io_bytes"] else "read"
x = j[k]
print("%.1f %.0f %.1f" % (x["bw_bytes"] / 1e6, x["iops"], x["clat_ns"]["max"] / 1e6))'
}

# a fresh mmsbfs store on the tmpfs, mounted in the foreground of a child:
# mount_mmsb BUILD_DIR MOUNTPOINT
mount_mmsb() {
	rm -rf "$T/store"
	mkdir "$T/store"
	MDIR=$2
	"$1/fusefs/mmsbfs" -f "$T/store" "$MDIR" &
	MPID=$!
	for _ in $(seq 100); do mountpoint -q "$MDIR" && return 0; sleep 0.1; done
	echo "mmsbfs did not mount" >&2
	exit 1
}

declare -A R
for fs in $ONLY; do
	for k in seqwr seqmax rand disk; do : >"$T/$fs.$k"; done
done
# round robin (each run measures every file system in turn): the load of a
# shared machine drifts, and peers measured minutes apart are not comparable
for _ in $(seq "$RUNS"); do
	for fs in $ONLY; do
		d=${DIRS[$fs]}
		[[ $fs == mmsbfs ]] && mount_mmsb "$B" "$d"
		[[ $fs == mmsbfs-base ]] && mount_mmsb "$(realpath "$BASE")" "$d"
		read -r bw _ mx < <(fio_job "$d" sw --rw=write --bs=1M --size="$SEQ" --end_fsync=0)
		echo "$bw" >>"$T/$fs.seqwr"
		echo "$mx" >>"$T/$fs.seqmax"
		rm -f "$d"/sw*
		read -r _ iops _ < <(fio_job "$d" rw --rw=randwrite --bs=4k --size=64M --time_based --runtime=4)
		echo "$iops" >>"$T/$fs.rand"
		rm -f "$d"/rw*
		if [[ $fs == mmsbfs* ]]; then
			umount_mmsb
			du -sm "$T/store" | cut -f1 >>"$T/$fs.disk"
		else
			echo - >>"$T/$fs.disk"
		fi
	done
done
for fs in $ONLY; do
	for k in seqwr seqmax rand disk; do R[$fs.$k]=$(median <"$T/$fs.$k"); done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
{
	echo "# bench_bulk.sh $(date -u +%FT%TZ) on $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1))"
	echo "# commit $(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo ?); medians of $RUNS runs; fio psync"
	echo "# seqwr: 1 MiB writes, $SEQ into a new file (mmsbfs: a fresh store each run); max: largest single write"
	echo "# 4k: random 4 KiB writes over 64 MiB for 4 s; store MiB: mmsbfs store on disk after the run and unmount"
	printf '%-16s %10s %12s %10s %10s\n' fs "seqwr MB/s" "max lat ms" "4k IOPS" "store MiB"
	for fs in $ONLY; do
		printf '%-16s %10s %12s %10s %10s\n' "$fs" "${R[$fs.seqwr]}" "${R[$fs.seqmax]}" "${R[$fs.rand]}" "${R[$fs.disk]}"
	done
	echo "# all runs (seqwr MB/s | max ms | 4k IOPS):"
	for fs in $ONLY; do
		echo "#   $fs: $(tr '\n' ' ' <"$T/$fs.seqwr")| $(tr '\n' ' ' <"$T/$fs.seqmax")| $(tr '\n' ' ' <"$T/$fs.rand")"
	done
	if [[ " $ONLY " == *" mmsbfs "* ]]; then
		for peer in $ONLY; do
			[[ $peer == mmsbfs ]] && continue
			[[ $peer == mmsbfs-base ]] && echo "# mmsbfs-base: $(realpath "$BASE")"
			printf 'mmsbfs / %-16s seqwr %s  4k-IOPS %s\n' "$peer" \
				"$(ratio "${R[mmsbfs.seqwr]}" "${R[$peer.seqwr]}")" "$(ratio "${R[mmsbfs.rand]}" "${R[$peer.rand]}")"
		done
	fi
} >"$OUTF"
