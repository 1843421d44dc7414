#!/bin/bash
# test_installed.sh BUILD-DIR SOURCE-DIR MKSTORE - libmmsb as a program
# outside this tree sees it: install the build into a temporary DESTDIR,
# check that the installed mmsb.h compiles alone (strict C99, no internal
# header), build examples/mmsb-cat.c with the flags pkg-config gives for the
# installed mmsb.pc, check the SONAME and the exported symbols, and run the
# example against a store made by mkstore.
set -eu
build=$1 src=$2 mkstore=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >/dev/null
pc=$(find "$tmp/root" -name mmsb.pc | head -n 1)
[ -n "$pc" ] || fail "no mmsb.pc installed"
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$tmp/root
export PKG_CONFIG_LIBDIR=$PKG_CONFIG_PATH	# nothing from the host's pkg-config dirs
cflags=$(pkg-config --cflags mmsb) libs=$(pkg-config --libs mmsb)
case "$libs" in *"$tmp/root"*) ;; *) fail "pkg-config --libs does not point into DESTDIR: $libs" ;; esac
# pkgconf prefixes variables with the sysroot too; pkg-config does not
sysroot() { case "$1" in "$tmp/root"*) echo "$1" ;; *) echo "$tmp/root$1" ;; esac; }
libdir=$(sysroot "$(pkg-config --variable=libdir mmsb)")
incdir=$(sysroot "$(pkg-config --variable=includedir mmsb)")

# Only the public header is installed, and it stands alone.
[ -f "$incdir/mmsb.h" ] || fail "mmsb.h not installed in $incdir"
for h in io.h store_int.h err.h format.h ns.h; do
	[ ! -e "$incdir/$h" ] || fail "internal header $h installed"
done
printf '#include <mmsb.h>\nint main(void) { struct mmsb_store_opts o; mmsb_store_opts_init(&o); return o.read_only; }\n' \
	>"$tmp/alone.c"
${CC:-cc} -std=c99 -pedantic -Werror -Wall -Wextra $cflags -c "$tmp/alone.c" -o "$tmp/alone.o" ||
	fail "installed mmsb.h does not compile alone"

# A versioned SONAME, and only mmsb.h's functions exported.
so=$(readlink -f "$libdir/libmmsb.so")
soname=$(objdump -p "$so" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = libmmsb.so.0 ] || fail "SONAME is '$soname', want libmmsb.so.0"
[ -e "$libdir/libmmsb.so.0" ] || fail "no libmmsb.so.0 link"
nm -D --defined-only "$so" | awk '$2 == "T" { print $3 }' | sed 's/@.*//' | sort >"$tmp/exported"
grep -oE 'mmsb_[a-z_]+\(' "$incdir/mmsb.h" | tr -d '(' | sort -u >"$tmp/declared"
extra=$(comm -23 "$tmp/exported" "$tmp/declared")
[ -z "$extra" ] || fail "exported but not in mmsb.h: $extra"
grep -q mmsb_store_open "$tmp/exported" || fail "mmsb_store_open not exported"

# The example, built against the installed copy only.
${CC:-cc} -std=c11 -Wall -Werror -o "$tmp/mmsb-cat" "$src/examples/mmsb-cat.c" $cflags $libs ||
	fail "examples/mmsb-cat.c does not build against the installed libmmsb"
ldd_out=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/mmsb-cat")
echo "$ldd_out" | grep -q "libmmsb.so.0 => $libdir" || fail "mmsb-cat does not load the installed library: $ldd_out"

"$mkstore" "$tmp/store" >/dev/null
run() { LD_LIBRARY_PATH=$libdir "$tmp/mmsb-cat" "$@"; }
[ "$(run "$tmp/store" hello.txt)" = three ] || fail "head of hello.txt"
[ "$(run "$tmp/store" hello.txt 1)" = one ] || fail "hello.txt at epoch 1"
[ "$(run "$tmp/store" /hello.txt 2)" = two ] || fail "hello.txt at epoch 2"
n=$(run "$tmp/store" d/data.bin | wc -c)
[ "$n" -eq 100000 ] || fail "d/data.bin: $n bytes"
if run "$tmp/store" d/data.bin 3 2>"$tmp/err"; then fail "data.bin exists at epoch 3"; fi
grep -q "No such file" "$tmp/err" || fail "epoch 3 message: $(cat "$tmp/err")"
if run "$tmp/store" hello.txt 99 2>"$tmp/err"; then fail "epoch 99 accepted"; fi
grep -q "retained: 0..5" "$tmp/err" || fail "epoch 99 message: $(cat "$tmp/err")"

# The installed Python module over the installed library.
pymod=$(find "$tmp/root" -name mmsb.py | head -n 1)
if [ -n "$pymod" ] && command -v python3 >/dev/null; then
	got=$(PYTHONPATH=$(dirname "$pymod") MMSB_LIBRARY=$libdir/libmmsb.so.0 python3 -c \
		'import mmsb, sys; s = mmsb.Store(sys.argv[1]); print(s.read("hello.txt", 1).decode().strip(), s.head)' \
		"$tmp/store")
	[ "$got" = "one 5" ] || fail "installed mmsb.py: '$got'"
fi
echo "ok: installed libmmsb ($soname), mmsb.pc, mmsb.h alone, mmsb-cat against the installed copy"
