# shellcheck shell=bash
# bench_lib.sh - helpers shared by bench_fs.sh and bench_engine.sh (sourced).
#
#   peers_mount T       mounts the FUSE peers over the tmpfs T:
#                         T/bindfs   bindfs -o big_writes --multithreaded T/bsrc
#                         T/overlay  fuse-overlayfs, upper layer T/oup
#   unmount_fuse DIR    fusermount3 -u (or fusermount, for libfuse2's bindfs)
#   wait_store STORE    wait until the daemon that served STORE let go of it
#                       (mmsbfs finishes its last checkpoint after the unmount)
#   median              median of the numbers on stdin
#   ratio A B           A / B with two decimals ("-" when B is 0 or missing)
#   fio_job DIR NAME ARGS...   "bw_MBps iops lat_us" of the first job (or of the
#                       group with --group_reporting)
#   env_header          machine, commit, load and a memory-bandwidth yardstick

peers_mount() {
	local t=$1
	mkdir -p "$t"/{bsrc,bindfs,olow,oup,owork,overlay}
	bindfs -o big_writes --multithreaded "$t/bsrc" "$t/bindfs"
	fuse-overlayfs -o "lowerdir=$t/olow,upperdir=$t/oup,workdir=$t/owork" "$t/overlay"
}

unmount_fuse() {
	local m=$1
	mountpoint -q "$m" || return 0
	fusermount3 -u "$m" 2>/dev/null || fusermount -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
}

wait_store() {
	[ -e "$1/LOCK" ] && timeout 300 flock "$1/LOCK" true
	return 0
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "-"}'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "-") printf "%.2f", a / b; else print "-" }'; }

fio_job() {
	local d=$1 name=$2
	shift 2
	# --fallocate=none: FUSE has no fallocate here, and glibc's emulation
	# would write a byte per 4 KiB block first (an epoch each on mmsbfs)
	fio --name="$name" --directory="$d" --ioengine=psync --fallocate=none --output-format=json "$@" 2>/dev/null |
		python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
k = "write" if j["write"]["io_bytes"] else "read"
x = j[k]
print("%.1f %.0f %.2f" % (x["bw_bytes"] / 1e6, x["iops"], x["lat_ns"]["mean"] / 1000))'
}

env_header() {
	echo "# $(date -u +%FT%TZ) on $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(free -g | awk '/^Mem:/ {print $2}') GiB memory"
	echo "# commit $(git -C "$(dirname "${BASH_SOURCE[0]}")/.." rev-parse --short HEAD 2>/dev/null || echo ?); load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# memory bandwidth reference: dd /dev/zero -> /dev/null, 1 MiB blocks: $(dd if=/dev/zero of=/dev/null bs=1M count=8192 2>&1 | sed -n 's/.*, \([0-9.]* [GM]B\/s\)$/\1/p')"
}
