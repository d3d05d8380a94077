#!/bin/bash
# Boot one benchmark VM:  scripts/bench/run-vm.sh WORK KVER ours|linux
#
# WORK is the private directory of scripts/bench/bench.sh; it holds the
# kcm_bench binary and, for the ours lane, KVER-ours.ko (copied there at the
# start so that a concurrent `make clean` cannot pull them away mid-run).
# Reuses scripts/vm/init.sh in its "run" mode: it loads the lane's kcm.ko,
# runs /samples/kcm_bench_matrix (scripts/bench/vm-matrix.sh) with output on
# ttyS1, unloads the module and powers off.  Logs land in WORK/vm/KVER-LANE/:
# bench.log (ttyS1), console.log (ttyS0), qemu.rc.
# Environment: the BENCH_* settings of vm-matrix.sh, BENCH_ICOUNT=1 to run
# QEMU with -icount shift=0,sleep=off (virtual time counted in guest
# instructions; a single TCG thread), BENCH_VM_TIMEOUT (seconds, default 1800),
# BENCH_VM_MEM (guest MiB, default 1024), BENCH_VM_CPUS (vCPUs, default 2).
# BENCH_PROFILE="kcm_bench arguments": instead of the matrix, run that one
# case under perf (scripts/bench/vm-profile.sh; `make profile`).
set -euo pipefail

work=${1:?usage: $0 WORK KVER ours|linux}
kver=${2:?missing KVER}
lane=${3:?missing lane}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$work/vm/$kver-$lane
bin=$work/kcm_bench
rm -rf "$dir"
mkdir -p "$dir/root"
stage=$dir/root

[ -x "$bin" ] || { echo "bench: $bin missing" >&2; exit 1; }
case $lane in
ours)
	ko=$work/$kver-ours.ko
	[ -f "$ko" ] || { echo "bench: $ko missing" >&2; exit 1; }
	cp "$ko" "$stage/kcm.ko" ;;
linux)
	ref=$(find "/usr/lib/modules/$kver/kernel/net/kcm" -name 'kcm.ko*' 2>/dev/null | head -n1 || true)
	case $ref in
	*.ko)	cp "$ref" "$stage/kcm.ko" ;;
	*.xz)	xz -dc "$ref" >"$stage/kcm.ko" ;;
	*.zst)	zstd -qdc "$ref" >"$stage/kcm.ko" ;;
	*.gz)	gzip -dc "$ref" >"$stage/kcm.ko" ;;
	*)	echo "bench: no reference kcm.ko for $kver" >&2; exit 1 ;;
	esac ;;
*)	echo "bench: lane must be ours or linux, not '$lane'" >&2; exit 1 ;;
esac

mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,etc,samples}
"$root/scripts/vm/modules.sh" "$kver" "$stage"
cp /bin/busybox "$stage/bin/busybox"
/bin/busybox --list-full | while read -r applet; do
	[ -e "$stage/$applet" ] || ln -s /bin/busybox "$stage/$applet"
done
mknod -m 600 "$stage/dev/console" c 5 1
install -m 755 "$root/scripts/vm/init.sh" "$stage/init"
install -m 755 "$bin" "$stage/samples/kcm_bench"
install -m 755 "$root/scripts/bench/vm-matrix.sh" "$stage/samples/kcm_bench_matrix"
program=kcm_bench_matrix
if [ -n "${BENCH_PROFILE:-}" ]; then
	# perf and its shared libraries, from the host's linux-perf package.
	program=kcm_bench_profile
	install -m 755 "$root/scripts/bench/vm-profile.sh" "$stage/samples/$program"
	install -D -m 755 "$(command -v perf)" "$stage/usr/bin/perf"
	for lib in $(ldd "$stage/usr/bin/perf" | grep -oE '/[^ ]+'); do
		[ -e "$stage$lib" ] || cp -L --parents "$lib" "$stage"
	done
fi
cat >"$stage/etc/kcm-vm.conf" <<CONF
MODE=run
LANE=$lane
TEST_TIMEOUT=600
RUN=$program
BENCH_PROFILE="${BENCH_PROFILE:-}"
PROFILE_FOCUS="${PROFILE_FOCUS:-}"
PROFILE_PIN="${PROFILE_PIN:-}"
BENCH_SIZES="${BENCH_SIZES:-64 512 4096 65536}"
BENCH_CONNS="${BENCH_CONNS:-1 4}"
BENCH_THREADS="${BENCH_THREADS:-1 2}"
BENCH_WORKLOADS="${BENCH_WORKLOADS-stream echo}"
BENCH_VARIANTS="${BENCH_VARIANTS:-kcm kcmb user tcp}"
BENCH_ECHO_VARIANTS="${BENCH_ECHO_VARIANTS:-kcm user}"
BENCH_MIXED=${BENCH_MIXED:-1}
BENCH_DIRECTED=${BENCH_DIRECTED:-1}
BENCH_RPC=${BENCH_RPC:-1}
BENCH_SCALE="${BENCH_SCALE-16 1000}"
BENCH_SCALE_VARIANTS="${BENCH_SCALE_VARIANTS:-kcmd user}"
BENCH_SCALE_CLIENTS=${BENCH_SCALE_CLIENTS:-2}
BENCH_SCALE_DUR=${BENCH_SCALE_DUR:-2}
BENCH_KTLS=${BENCH_KTLS:-1}
BENCH_REPS=${BENCH_REPS:-3}
BENCH_DUR=${BENCH_DUR:-$([ "${BENCH_ICOUNT:-0}" = 1 ] && echo 0.1 || echo 1)}
BENCH_STALL=${BENCH_STALL:-3}
CONF
(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -1 >"$dir/initramfs.cpio.gz"

icount=()
[ "${BENCH_ICOUNT:-0}" = 1 ] && icount=(-icount "shift=0,sleep=off")
cmdline="console=ttyS0 loglevel=5 panic_on_warn=1 oops=panic panic=-1 softlockup_panic=1"
rc=0
timeout -k 10 "${BENCH_VM_TIMEOUT:-1800}" qemu-system-x86_64 \
	-machine q35 -m "${BENCH_VM_MEM:-1024}" -smp "${BENCH_VM_CPUS:-2}" -nodefaults -display none -no-reboot "${icount[@]}" \
	-kernel "/boot/vmlinuz-$kver" -initrd "$dir/initramfs.cpio.gz" -append "$cmdline" \
	-serial "file:$dir/console.log" -serial "file:$dir/bench.log" </dev/null || rc=$?
echo "$rc" >"$dir/qemu.rc"
tr -d '\r' <"$dir/bench.log" | grep -q '^kcm-vm: end' || {
	echo "bench: $kver/$lane VM did not finish (qemu rc $rc), see $dir/console.log" >&2
	exit 1
}
