#!/bin/bash
# Build the patched tree:  scripts/intree/build-kernel.sh y|m [SRC]
#
# SRC (default build/intree/linux, made by tree.sh) is configured with
# `make allnoconfig` + scripts/intree/kernel.config into build/intree/obj-y
# or obj-m (kbuild O=, so SRC stays clean and a new tree reuses the objects
# that did not change), with CONFIG_AF_KCM as asked, at W=1:
#   y  bzImage; net/kcm must be built in and no kcm.ko made.
#      Result: build/intree/obj-y/arch/x86/boot/bzImage
#   m  modules_prepare, then only net/kcm/kcm.ko (single-module build);
#      modpost checks its symbols against the =y kernel's vmlinux.o when
#      built (INTREE_M_FULL=1: build this config's own bzImage and modules).
#      Result: build/intree/obj-m/net/kcm/kcm.ko
# Fails on any compiler or modpost warning about our files (net/kcm/,
# include/net/kcm.h, include/uapi/linux/kcm.h); other warnings are counted.
# Runs under nice -n 10; INTREE_JOBS=N overrides make -j (default nproc).
set -euo pipefail

mode=${1:?usage: $0 y|m [SRC]}
root=$(cd "$(dirname "$0")/../.." && pwd)
src=$(realpath "${2:-$root/build/intree/linux}")
obj=$root/build/intree/obj-$mode
jobs=${INTREE_JOBS:-$(nproc)}
log=$obj/build.log
mk() { nice -n 10 make -C "$src" O="$obj" W=1 -j"$jobs" "$@"; }

case $mode in y|m) ;; *) echo "intree: mode must be y or m" >&2; exit 1 ;; esac
[ -f "$src/net/kcm/Makefile" ] || { echo "intree: no tree at $src (tree.sh)" >&2; exit 1; }

mkdir -p "$obj"
exec 9>"$obj/.lock"
flock 9

fragment=$obj/kernel.config
sed "s/^CONFIG_AF_KCM=.*/CONFIG_AF_KCM=$mode/" "$root/scripts/intree/kernel.config" >"$fragment"
start=$SECONDS
echo "  CONFIG  allnoconfig + scripts/intree/kernel.config, CONFIG_AF_KCM=$mode"
mk KCONFIG_ALLCONFIG="$fragment" allnoconfig >"$log" 2>&1 ||
	{ tail -n 30 "$log" >&2; echo "intree: allnoconfig failed ($log)" >&2; exit 1; }
grep -qx "CONFIG_AF_KCM=$mode" "$obj/.config" ||
	{ echo "intree: .config has $(grep AF_KCM "$obj/.config" || echo no AF_KCM), not CONFIG_AF_KCM=$mode" >&2; exit 1; }

if [ "$mode" = y ]; then
	echo "  BUILD   bzImage, make -j$jobs W=1 under nice (log: ${log#"$root"/})"
	rm -f "$obj/net/kcm/kcm.ko"
	mk bzImage >>"$log" 2>&1 ||
		{ grep -E 'error|Error' "$log" | tail -n 30 >&2; echo "intree: kernel build failed ($log)" >&2; exit 1; }
	if [ ! -f "$obj/net/kcm/built-in.a" ] || [ -z "$(ar t "$obj/net/kcm/built-in.a")" ]; then
		echo "intree: net/kcm was not built in" >&2
		exit 1
	fi
	[ ! -e "$obj/net/kcm/kcm.ko" ] || { echo "intree: a kcm.ko was built with =y" >&2; exit 1; }
elif [ "${INTREE_M_FULL:-0}" = 1 ]; then
	echo "  BUILD   bzImage + modules, make -j$jobs W=1 under nice (log: ${log#"$root"/})"
	mk bzImage modules >>"$log" 2>&1 ||
		{ grep -E 'error|Error' "$log" | tail -n 30 >&2; echo "intree: kernel build failed ($log)" >&2; exit 1; }
	[ -f "$obj/net/kcm/kcm.ko" ] || { echo "intree: no net/kcm/kcm.ko" >&2; exit 1; }
else
	echo "  BUILD   modules_prepare + net/kcm/kcm.ko, W=1 under nice (log: ${log#"$root"/})"
	mk modules_prepare >>"$log" 2>&1 ||
		{ tail -n 30 "$log" >&2; echo "intree: modules_prepare failed ($log)" >&2; exit 1; }
	# modpost resolves a module's symbols against vmlinux.o.  Rather than
	# build a second kernel, borrow the =y one's: same fragment, only
	# AF_KCM differs, and AF_KCM exports nothing.
	ylinux=$root/build/intree/obj-y/vmlinux.o
	if [ -f "$ylinux" ]; then
		ln -sf "$ylinux" "$obj/vmlinux.o"
		echo "  MODPOST against ${ylinux#"$root"/} (the =y kernel; INTREE_M_FULL=1 builds its own)"
	else
		rm -f "$obj/vmlinux.o"
		export KBUILD_MODPOST_WARN=1
		echo "  MODPOST without vmlinux.o (build =y first): unresolved symbols are not checked"
	fi
	rm -f "$obj/net/kcm/"*.o "$obj/net/kcm/kcm.ko"	# always compile ours, to see warnings
	mk net/kcm/kcm.ko >>"$log" 2>&1 ||
		{ tail -n 30 "$log" >&2; echo "intree: kcm.ko build failed ($log)" >&2; exit 1; }
	[ -f "$obj/net/kcm/kcm.ko" ] || { echo "intree: no net/kcm/kcm.ko" >&2; exit 1; }
fi

ours=$(grep -E 'warning:|WARNING:' "$log" |
	grep -E '(^|/| )(net/kcm/|include/net/kcm\.h|include/uapi/linux/kcm\.h|kcm\.ko|kcm\.o)' |
	grep -v 'vmlinux.o is missing' || true)
others=$(grep -cE 'warning:' "$log" || true)
echo "  DONE    CONFIG_AF_KCM=$mode in $((SECONDS - start)) s; $others compiler warning(s) in the log"
if [ -n "$ours" ]; then
	echo "$ours" >&2
	echo "intree: $(echo "$ours" | wc -l) warning(s) from our files at W=1" >&2
	exit 1
fi
echo "  OK      no warnings from net/kcm, include/net/kcm.h, include/uapi/linux/kcm.h"
