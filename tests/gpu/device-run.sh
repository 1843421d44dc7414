#!/usr/bin/env bash
# tests/gpu/device-run.sh - build and check the kernel layer on the lent GPU
# machine, in one go.  Run from the repository root (the .devcarry folder
# carried along, see ../shared/device/README.md):
#
#   bash tests/gpu/device-run.sh
#
# Steps (each under its own time limit; the whole run stays under ~8 min):
#   1. meson setup /tmp/bgpu -Dcuda=enabled -Dfuzz=disabled -Dbuildtype=release; ninja
#   2. meson test --suite gpu --suite unit
#   3. test_kern under compute-sanitizer memcheck, MMSB_TEST_QUICK=1
#      (smaller case set)
#   4. bench_kern, then bench_fs pwrite latency on a CPU and a GPU page
#   5. racecheck and synccheck (quick set), while time is left
# Logs go to $OUT (at most 8 files): summary.txt, build.txt, tests.txt,
# testlog.txt, memcheck.txt, racecheck.txt, bench.txt.  The exit status is
# 0 only if the build, the tests and memcheck passed.
set -u

OUT=${OUT:-/tmp/kern-out}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
T0=$(date +%s)
status=0

say() { echo "$*" | tee -a "$SUMMARY"; }
elapsed() { echo $(($(date +%s) - T0)); }

if [ -f .devcarry/env.sh ]; then
	# shellcheck disable=SC1091
	. .devcarry/env.sh
fi
export PATH=/usr/local/cuda/bin:$PATH

say "== device-run.sh $(date -u +%FT%TZ) on $(hostname)"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.free --format=csv,noheader 2>&1 | tee -a "$SUMMARY"
nvcc --version 2>&1 | tail -1 | tee -a "$SUMMARY"
meson --version 2>&1 | sed 's/^/meson /' | tee -a "$SUMMARY"

# The GPU tests are built only when tests/meson.build has subdir('gpu');
# if this checkout lacks it, build a copy that has it.
SRC=$PWD
if ! grep -q "subdir('gpu')" tests/meson.build; then
	say "note: tests/meson.build lacks subdir('gpu'); building a copy in /tmp/kern-src that has it"
	rm -rf /tmp/kern-src
	mkdir -p /tmp/kern-src
	tar --exclude=./.git --exclude=./.devcarry -cf - . | tar -C /tmp/kern-src -xf -
	echo "subdir('gpu')" >>/tmp/kern-src/tests/meson.build
	SRC=/tmp/kern-src
fi

# 1. build
B=/tmp/bgpu
rm -rf "$B"
{
	meson setup "$B" "$SRC" -Dcuda=enabled -Dfuzz=disabled -Dbuildtype=release &&
		timeout 300 ninja -C "$B"
} >"$OUT/build.txt" 2>&1
rc=$?
say "build: rc=$rc ($(elapsed)s)"
if [ $rc -ne 0 ]; then
	tail -40 "$OUT/build.txt" | tee -a "$SUMMARY"
	exit 1
fi
grep -E "Cuda compiler|User defined|cuda" "$OUT/build.txt" | head -5 >>"$SUMMARY"
if [ -x "$B/tests/gpu/test_kern" ]; then
	ldd "$B/tests/gpu/test_kern" | grep -i cudart >>"$SUMMARY" || say "test_kern: cudart linked statically (no libcudart.so)"
fi

# 2. meson tests: unit + gpu
timeout 300 meson test -C "$B" --suite gpu --suite unit --print-errorlogs >"$OUT/tests.txt" 2>&1
rc=$?
say "meson test --suite gpu --suite unit: rc=$rc ($(elapsed)s)"
grep -E "^ *[0-9]+/[0-9]+ |^(Ok|Fail|Skipped|Timeout):" "$OUT/tests.txt" | tee -a "$SUMMARY"
[ $rc -eq 0 ] || status=1
grep -E "^e2e: " "$B/meson-logs/testlog.txt" >>"$SUMMARY" 2>/dev/null
if grep -qE "gpu / (kern|pages|e2e) +SKIP" "$OUT/tests.txt"; then
	say "WARNING: the GPU test was SKIPPED on the GPU machine (no device seen?)"
	status=1
fi
tail -c 1000000 "$B/meson-logs/testlog.txt" >"$OUT/testlog.txt" 2>/dev/null

# The GPU test once more, output shown (card line, seed)
if [ -x "$B/tests/gpu/test_kern" ]; then
	{
		echo "== test_kern (direct)"
		timeout 90 "$B/tests/gpu/test_kern"
		echo "rc=$?"
	} >>"$OUT/tests.txt" 2>&1
	tail -3 "$OUT/tests.txt" | tee -a "$SUMMARY"
fi

# 3. compute-sanitizer
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -x "$CS" ] && [ -x "$B/tests/gpu/test_kern" ]; then
	MMSB_TEST_QUICK=1 timeout 150 "$CS" --tool memcheck --error-exitcode 1 --leak-check full \
		"$B/tests/gpu/test_kern" >"$OUT/memcheck.txt" 2>&1
	rc=$?
	say "compute-sanitizer memcheck: rc=$rc ($(elapsed)s) $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.txt" | tail -1)"
	[ $rc -eq 0 ] || { status=1; tail -30 "$OUT/memcheck.txt" >>"$SUMMARY"; }
	if [ -x "$B/tests/gpu/test_pages" ]; then
		timeout 150 "$CS" --tool memcheck --error-exitcode 1 "$B/tests/gpu/test_pages" gpu >>"$OUT/memcheck.txt" 2>&1
		rc=$?
		say "compute-sanitizer memcheck test_pages: rc=$rc ($(elapsed)s) $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.txt" | tail -1)"
		[ $rc -eq 0 ] || status=1
	fi
	if [ -x "$B/tests/gpu/test_queue" ]; then
		timeout 150 "$CS" --tool memcheck --error-exitcode 1 "$B/tests/gpu/test_queue" gpu >>"$OUT/memcheck.txt" 2>&1
		rc=$?
		say "compute-sanitizer memcheck test_queue: rc=$rc ($(elapsed)s) $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.txt" | tail -1)"
		[ $rc -eq 0 ] || status=1
	fi
	SANITIZE_MORE=1
else
	say "compute-sanitizer not found ($CS)"
	SANITIZE_MORE=0
fi

# 4. bench (before the slower sanitizer tools)
if [ -x "$B/bench/bench_kern" ]; then
	timeout 200 "$B/bench/bench_kern" 256 >"$OUT/bench.txt" 2>&1
	rc=$?
	say "bench_kern: rc=$rc ($(elapsed)s)"
	cat "$OUT/bench.txt" >>"$SUMMARY"
else
	say "bench_kern not built"
fi

# 4b. 4 KiB pwrites through a mount: a CPU page, then a GPU page
if [ -x "$B/bench/bench_fs" ] && [ -c /dev/fuse ]; then
	FT=$(mktemp -d /tmp/mmsb-devfs.XXXXXX)
	mkdir -p "$FT/mnt"
	if "$B/fusefs/mmsbfs" "$FT/store" "$FT/mnt" >>"$OUT/bench.txt" 2>&1; then
		{
			echo
			echo "4 KiB pwrite latency through the mount (bench_fs, 20000 writes over 1 MiB, CPU and GPU page alternating, 3 rounds):"
			for r in 1 2 3; do
				timeout 60 "$B/bench/bench_fs" pwrite "$FT/mnt" 20000
				timeout 60 "$B/bench/bench_fs" pwrite-gpu "$FT/mnt" 20000
			done
		} >>"$OUT/bench.txt" 2>&1
		say "bench_fs pwrite cpu/gpu: rc=$? ($(elapsed)s) $(grep pwrite4k "$OUT/bench.txt" | tr '\n' ' ')"
		fusermount3 -u "$FT/mnt"
		# the same GPU-page write path with the CPU table posing as the
		# device (-o gpu=cpu): what the queue costs without CUDA
		if "$B/fusefs/mmsbfs" -o gpu=cpu "$FT/store-cpudev" "$FT/mnt" >>"$OUT/bench.txt" 2>&1; then
			echo "-o gpu=cpu (GPU pages served by the CPU table, same queue):" >>"$OUT/bench.txt"
			timeout 60 "$B/bench/bench_fs" pwrite-gpu "$FT/mnt" 20000 >>"$OUT/bench.txt" 2>&1
			say "bench_fs pwrite gpu=cpu: $(tail -2 "$OUT/bench.txt" | tr '\n' ' ')"
			fusermount3 -u "$FT/mnt"
		fi
	else
		say "bench_fs: mount failed"
	fi
fi

# 5. racecheck / synccheck while time is left
if [ "$SANITIZE_MORE" = 1 ]; then
	for tool in racecheck synccheck; do
		if [ "$(elapsed)" -gt 390 ]; then
			say "compute-sanitizer $tool: skipped (time)"
			continue
		fi
		MMSB_TEST_QUICK=1 timeout 75 "$CS" --tool $tool --error-exitcode 1 \
			"$B/tests/gpu/test_kern" >>"$OUT/racecheck.txt" 2>&1
		rc=$?
		say "compute-sanitizer $tool: rc=$rc ($(elapsed)s) $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/racecheck.txt" | tail -1)"
		[ $rc -eq 124 ] && say "  ($tool timed out: not a failure of the kernels)"
		MMSB_TEST_QUICK=1 timeout 75 "$CS" --tool $tool --error-exitcode 1 \
			"$B/tests/gpu/test_queue" gpu >>"$OUT/racecheck.txt" 2>&1
		rc=$?
		say "compute-sanitizer $tool test_queue: rc=$rc ($(elapsed)s) $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/racecheck.txt" | tail -1)"
	done
fi

say "== done in $(elapsed)s, status $status"
exit $status
