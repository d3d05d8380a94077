#!/bin/bash
# Build a debug kernel and both kcm modules for it:
#   scripts/debug-kernel/build.sh [kasan | kcsan]
# kasan (the default): KASAN, lockdep, kmemleak, debugobjects, ... in
# build/debug-kernel/ (make check-debug, make fuzz); kcsan: the data-race
# detector, which excludes KASAN, in build/kcsan-kernel/ (make check-kcsan).
#
# 1. linux-source-6.12 (installed with apt if missing) is unpacked once into
#    the flavour's directory, src/.
# 2. `make allnoconfig` with configs/debug-base.config followed by
#    configs/debug-FLAVOUR.config as KCONFIG_ALLCONFIG, then bzImage and
#    modules (Linux's own net/kcm, CONFIG_AF_KCM=m, is the only module).
#    Skipped while the options and the sources are unchanged and the
#    results exist.
# 3. Our net/kcm + include/ are built against that tree, out of tree, with
#    our headers first (NOSTDINC_FLAGS, as scripts/build-module.sh does).
#    Always redone: it takes seconds.
#
# Results in build/debug-kernel/:
#   bzImage       the kernel          kver        its uname -r
#   kcm.ko        our module          linux-kcm.ko  Linux's net/kcm/kcm.ko
#   kernel-build.log, ours/build.log
# Everything runs under nice -n 10: others boot VMs on the same cores.
# DEBUG_KERNEL_JOBS=N overrides make -j (default: nproc).
# DEBUG_KERNEL_DIR=DIR (kasan) and KCSAN_KERNEL_DIR=DIR (kcsan) put all of
# it in DIR instead (e.g. somewhere `make clean` does not reach).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
flavour=${1:-kasan}
case $flavour in
kasan)	out=${DEBUG_KERNEL_DIR:-$root/build/debug-kernel} ;;
kcsan)	out=${KCSAN_KERNEL_DIR:-$root/build/kcsan-kernel} ;;
*)	echo "usage: $0 [kasan | kcsan]" >&2; exit 1 ;;
esac
src=$out/src
tarball=/usr/src/linux-source-6.12.tar.xz
jobs=${DEBUG_KERNEL_JOBS:-$(nproc)}
mk() { nice -n 10 make -j"$jobs" "$@"; }

mkdir -p "$out"
# One build at a time (make check-debug and make fuzz may race).
exec 9>"$out/.lock"
flock 9
fragment=$out/fragment.config
cat "$root/configs/debug-base.config" "$root/configs/debug-$flavour.config" >"$fragment"

# --- 1. sources ----------------------------------------------------------------
# The sources and the tools the kernel build needs: each checked, since a
# machine may have some of them (linux-source without flex, say).
missing=()
for p in linux-source-6.12 flex bison bc libelf-dev libssl-dev dwarves; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "debug-kernel: installing ${missing[*]} with apt"
	if [ "$(id -u)" -ne 0 ]; then
		echo "debug-kernel: must run as root to install packages" >&2
		exit 1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}"
fi
if [ ! -f "$src/Makefile" ]; then
	echo "  UNPACK  ${tarball##*/} -> ${src#"$root"/}"
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	tar -xf "$tarball" -C "$src.tmp" --strip-components=1
	mv "$src.tmp" "$src"
fi

# --- 2. kernel + Linux's kcm.ko --------------------------------------------------
# Only the options count, not comments; plus the version of the sources.
stamp=$({ grep -E '^(CONFIG_|# CONFIG_.* is not set)' "$fragment" | LC_ALL=C sort
	dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || true; } |
	sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ] && [ -f "$out/bzImage" ] &&
	[ -f "$out/linux-kcm.ko" ] && [ -f "$src/Module.symvers" ]; then
	echo "  CACHED  $flavour kernel $(cat "$out/kver") (${out#"$root"/}/bzImage)"
else
	rm -f "$out/stamp" "$out/bzImage" "$out/linux-kcm.ko"
	log=$out/kernel-build.log
	start=$SECONDS
	echo "  CONFIG  allnoconfig + configs/debug-base.config + configs/debug-$flavour.config"
	mk -C "$src" KCONFIG_ALLCONFIG="$fragment" allnoconfig >"$log" 2>&1 ||
		{ tail -n 30 "$log" >&2; echo "debug-kernel: allnoconfig failed ($log)" >&2; exit 1; }
	# Report options of the fragment that Kconfig did not take (unmet
	# dependencies, renamed options): the lane would silently lose a checker.
	while IFS= read -r line; do
		case $line in
		CONFIG_*=*)	opt=${line%%=*}; want=$line ;;
		"# CONFIG_"*" is not set")
			opt=${line#"# "}; opt=${opt%% *}; want=$line ;;
		*)	continue ;;
		esac
		have=$(grep -E "^$opt=|^# $opt is not set" "$src/.config" || true)
		if [ "$have" != "$want" ] && ! { [ -z "$have" ] && [[ $want == "# "* ]]; }; then
			echo "debug-kernel: note: fragment wants '$want', .config has '${have:-nothing}'"
		fi
	done <"$fragment"
	echo "  BUILD   bzImage + modules, make -j$jobs under nice (log: ${log#"$root"/})"
	mk -C "$src" bzImage modules >>"$log" 2>&1 ||
		{ tail -n 40 "$log" >&2; echo "debug-kernel: kernel build failed ($log)" >&2; exit 1; }
	cp "$src/arch/x86/boot/bzImage" "$out/bzImage"
	cp "$src/net/kcm/kcm.ko" "$out/linux-kcm.ko"
	make -s -C "$src" kernelrelease >"$out/kver"
	echo "$stamp" >"$out/stamp"
	echo "  KERNEL  $(cat "$out/kver") built in $((SECONDS - start)) s"
fi

# --- 3. our kcm.ko ---------------------------------------------------------------
ours=$out/ours
rm -rf "$ours" "$out/kcm.ko"
mkdir -p "$ours/src/net"
cp -a "$root/net/kcm" "$ours/src/net/kcm"
cp -a "$root/include" "$ours/src/include"
cp -a "$root/dkms.conf" "$ours/src/dkms.conf"	# the module's version
log=$ours/build.log
echo "  KBUILD  our kcm.ko for $(cat "$out/kver")"
rc=0
mk -C "$src" M="$ours/src/net/kcm" CONFIG_AF_KCM=m W=1 modules >"$log" 2>&1 ||
	rc=$?
sed "s|$ours/src/||g" "$log" | grep -vE '^make(\[[0-9]+\])?: (Entering|Leaving) directory' || true
if [ "$rc" -ne 0 ] || [ ! -f "$ours/src/net/kcm/kcm.ko" ]; then
	echo "debug-kernel: our kcm.ko failed to build (log: $log)" >&2
	exit 1
fi
# Warnings fail the normal lanes (build-module.sh); here they are only shown.
cp "$ours/src/net/kcm/kcm.ko" "$out/kcm.ko"
echo "  MODULE  ${out#"$root"/}/kcm.ko"
