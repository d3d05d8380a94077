#!/bin/bash
# Build our kcm.ko for one kernel:  scripts/build-module.sh KVER
#
# The kernel headers ship their own include/net/kcm.h and
# include/uapi/linux/kcm.h.  net/kcm/, include/ and dkms.conf (where
# net/kcm/Makefile reads the module's version) are copied to
# build/KVER/src/, and net/kcm/Makefile puts that include/ first on the
# compiler's search path (the one recipe DKMS and the debug kernel use too).
# Result: build/KVER/kcm.ko.  Any compiler or modpost warning fails the build.
#
# KCM_TREE=DIR builds DIR/net/kcm + DIR/include into DIR/build/ instead of
# this repository (used to test the script itself).
set -euo pipefail

kver=${1:?usage: $0 KVER}
tree=$(cd "${KCM_TREE:-$(dirname "$0")/..}" && pwd)
kdir=/usr/lib/modules/$kver/build
out=$tree/build/$kver
src=$out/src

[ -d "$kdir" ] || { echo "build-module: no headers for $kver at $kdir" >&2; exit 1; }
[ -d "$tree/net/kcm" ] || { echo "build-module: $tree/net/kcm missing" >&2; exit 1; }

# Two builds for one kernel at once (make check and make run, say) would
# trample each other's copy.
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

# Fresh copy every time: a file deleted from net/kcm must not linger.
rm -rf "$src" "$out/kcm.ko"
mkdir -p "$src/net"
cp -a "$tree/net/kcm" "$src/net/kcm"
cp -a "$tree/include" "$src/include"
cp -a "$tree/dkms.conf" "$src/dkms.conf"

echo "  KBUILD  kcm.ko for $kver"
log=$out/build.log
rc=0
make -C "$kdir" M="$src/net/kcm" CONFIG_AF_KCM=m W=1 -j"$(nproc)" modules \
	>"$log" 2>&1 || rc=$?

# Show the log with the copied paths mapped back to repository paths.
sed "s|$src/||g" "$log" | grep -vE '^make(\[[0-9]+\])?: (Entering|Leaving) directory' || true

if [ "$rc" -ne 0 ]; then
	echo "build-module: kbuild failed for $kver (full log: $log)" >&2
	exit "$rc"
fi
# Compiler warnings ("warning:") and modpost warnings ("WARNING:") about
# our module; kbuild's own notices about the build host do not count.
warnings=$(grep -E 'warning:|WARNING:' "$log" | grep -v 'the compiler differs' || true)
if [ -n "$warnings" ]; then
	echo "build-module: $(echo "$warnings" | wc -l) warning(s) for $kver; warnings are errors" >&2
	exit 1
fi
[ -f "$src/net/kcm/kcm.ko" ] || { echo "build-module: kbuild made no kcm.ko" >&2; exit 1; }
cp "$src/net/kcm/kcm.ko" "$out/kcm.ko"
echo "  MODULE  ${out#"$tree"/}/kcm.ko"
