#!/bin/bash
# bench_fs.sh - mmsbfs against its peers, in the same run (needs root):
#   tmpfs                         the kernel's limit
#   bindfs -o big_writes --multithreaded   a FUSE passthrough (libfuse2) over tmpfs
#   fuse-overlayfs                a FUSE passthrough (libfuse3) over tmpfs
#   mmsbfs                        store on tmpfs, default options
# Each measurement is the median of RUNS runs (default 3): fio sequential
# write and read (1 MiB), fio 4 KiB random writes (IOPS, mean latency),
# create/stat/unlink rates and 4 KiB pwrite latency (bench_fs), and for
# mmsbfs time-travel reads and propagation per hop.
#
#   bench/bench_fs.sh BUILD_DIR [OUT_FILE]
set -euo pipefail
# shellcheck source=bench_lib.sh
source "$(dirname "$0")/bench_lib.sh"
B=$(realpath "${1:?usage: bench_fs.sh BUILD_DIR [OUT_FILE]}")
OUTF=${2:-/dev/stdout}
RUNS=${RUNS:-3}
SEQ=${SEQ:-256M}
T=$(mktemp -d /tmp/mmsb-benchfs.XXXXXX)
mount -t tmpfs -o size=8g tmpfs "$T"
mkdir -p "$T"/{tmpfs,store,mmsb}
cleanup() {
	cd /
	for m in "$T/bindfs" "$T/overlay" "$T/mmsb"; do unmount_fuse "$m"; done
	# the daemons may still be closing files on the tmpfs (mmsbfs: its final
	# checkpoint); wait for the store's lock, then for the tmpfs to come free
	wait_store "$T/store"
	for _ in 1 2 3 4 5 6 7 8 9 10; do umount "$T" 2>/dev/null && break; sleep 0.5; done
	mountpoint -q "$T" && umount -l "$T"
	rmdir "$T" 2>/dev/null || true
}
trap cleanup EXIT

peers_mount "$T"
"$B/fusefs/mmsbfs" "$T/store" "$T/mmsb"
declare -A DIRS=([tmpfs]=$T/tmpfs [bindfs]=$T/bindfs [fuse-overlayfs]=$T/overlay [mmsbfs]=$T/mmsb)
ORDER=(tmpfs bindfs fuse-overlayfs mmsbfs)

declare -A R
for fs in "${ORDER[@]}"; do
	d=${DIRS[$fs]}
	for k in seqwr seqrd randiops randlat create stat unlink pw50 pw99; do : >"$T/$fs.$k"; done
	for _ in $(seq "$RUNS"); do
		read -r bw _ _ < <(fio_job "$d" sw --rw=write --bs=1M --size="$SEQ" --end_fsync=0)
		echo "$bw" >>"$T/$fs.seqwr"
		# the write phase triggers automatic checkpoints (every 256 MiB of
		# log): let them finish before timing reads on a 2-core machine
		[[ $fs == mmsbfs ]] && "$B/tools/mmsbctl" --mount "$d" checkpoint >/dev/null
		read -r bw _ _ < <(fio_job "$d" sw --rw=read --bs=1M --size="$SEQ")
		echo "$bw" >>"$T/$fs.seqrd"
		read -r _ iops lat < <(fio_job "$d" rw --rw=randwrite --bs=4k --size=64M --time_based --runtime=4)
		echo "$iops" >>"$T/$fs.randiops"
		echo "$lat" >>"$T/$fs.randlat"
		rm -f "$d"/sw* "$d"/rw*
		"$B/bench/bench_fs" meta "$d" 3000 >"$T/out"
		awk '/^create/ {print $2}' "$T/out" >>"$T/$fs.create"
		awk '/^stat/ {print $2}' "$T/out" >>"$T/$fs.stat"
		awk '/^unlink/ {print $2}' "$T/out" >>"$T/$fs.unlink"
		"$B/bench/bench_fs" pwrite "$d" 10000 >"$T/out"
		awk '/^pwrite4k_p50/ {print $2}' "$T/out" >>"$T/$fs.pw50"
		awk '/^pwrite4k_p99/ {print $2}' "$T/out" >>"$T/$fs.pw99"
	done
	for k in seqwr seqrd randiops randlat create stat unlink pw50 pw99; do R[$fs.$k]=$(median <"$T/$fs.$k"); done
done

{
	echo "# bench_fs.sh $(date -u +%FT%TZ) on $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1))"
	echo "# commit $(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo ?); medians of $RUNS runs; fio psync, $SEQ sequential"
	echo "# memory bandwidth reference: dd /dev/zero -> /dev/null, 1 MiB blocks: $(dd if=/dev/zero of=/dev/null bs=1M count=8192 2>&1 | sed -n 's/.*, \([0-9.]* [GM]B\/s\)$/\1/p')"
	printf '%-16s %10s %10s %10s %10s %10s %10s %10s %10s %10s\n' fs "seqwr MB/s" "seqrd MB/s" "4k IOPS" "4k lat us" "create/s" "stat/s" "unlink/s" "pw p50 us" "pw p99 us"
	for fs in "${ORDER[@]}"; do
		printf '%-16s %10s %10s %10s %10s %10s %10s %10s %10s %10s\n' "$fs" "${R[$fs.seqwr]}" "${R[$fs.seqrd]}" \
			"${R[$fs.randiops]}" "${R[$fs.randlat]}" "${R[$fs.create]}" "${R[$fs.stat]}" "${R[$fs.unlink]}" \
			"${R[$fs.pw50]}" "${R[$fs.pw99]}"
	done
	echo
	echo "# ratios: mmsbfs / peer (throughput: higher is better for mmsbfs; latency: lower)"
	for peer in tmpfs bindfs fuse-overlayfs; do
		printf '%-16s seqwr %s  seqrd %s  4k-IOPS %s  create %s  stat %s  unlink %s  pwrite-p50 %s\n' "vs $peer" \
			"$(ratio "${R[mmsbfs.seqwr]}" "${R[$peer.seqwr]}")" "$(ratio "${R[mmsbfs.seqrd]}" "${R[$peer.seqrd]}")" \
			"$(ratio "${R[mmsbfs.randiops]}" "${R[$peer.randiops]}")" "$(ratio "${R[mmsbfs.create]}" "${R[$peer.create]}")" \
			"$(ratio "${R[mmsbfs.stat]}" "${R[$peer.stat]}")" "$(ratio "${R[mmsbfs.unlink]}" "${R[$peer.unlink]}")" \
			"$(ratio "${R[mmsbfs.pw50]}" "${R[$peer.pw50]}")"
	done
	echo
	echo "# mmsbfs only: time travel with all history since the last checkpoint, then just after one"
	"$B/tools/mmsbctl" --mount "$T/mmsb" stats | grep -E "^(head|log_bytes|last_ckpt) "
	"$B/bench/bench_fs" travel "$T/mmsb" 300
	"$B/tools/mmsbctl" --mount "$T/mmsb" checkpoint >/dev/null
	"$B/bench/bench_fs" travel "$T/mmsb" 300 | sed 's/^travel_read/travel_read_after_ckpt/'
	"$B/bench/bench_fs" prop "$T/mmsb"
	echo "# log size after the run: $(du -sh "$T/store/log" | cut -f1); mmsbctl stats:"
	"$B/tools/mmsbctl" --mount "$T/mmsb" stats 2>&1 | head -40
} >"$OUTF"
