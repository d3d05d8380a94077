#!/bin/bash
# Boot one test VM:  scripts/vm/run-vm.sh check|run KVER ours|linux [PROGRAM]
#
# check: runs every executable in build/tests/ and writes the parsed results
#        to build/vm/KVER-LANE/results.txt (see parse.sh).
# run:   runs build/samples/PROGRAM (default kcm_demo) with its output on
#        this terminal.
# Files in build/vm/KVER-LANE[-run]/: console.log (ttyS0: kernel console,
# dmesg), tap.log (ttyS1: test output), initramfs.cpio.gz, qemu.rc.
# Environment: VM_TIMEOUT (default 900 s), TEST_TIMEOUT (per binary, 600 s),
# TESTS (names of the test binaries to run; default all), KCM_LINK_SEED
# (passed to the tests: replays a kcm_link run).
# For other kernels (scripts/debug-kernel/), all optional:
#   VM_KERNEL   kernel image (default /boot/vmlinuz-KVER)
#   VM_KO       module to load instead of the lane's usual kcm.ko
#   VM_MEM      guest memory in MiB (default 1024)
#   VM_APPEND   appended to the kernel command line
#   VM_DIR      output directory instead of build/vm/KVER-LANE[-run]
#   VM_TESTS    directory of test executables instead of build/tests
#   VM_OVERLAY  directory copied over the initramfs root last (e.g. the
#               /hooks/ that init.sh runs)
# Generic knobs for any caller (scripts/vm/soak.sh uses both):
#   VM_ENV      "NAME=VALUE NAME2=VALUE2": exported to the test binaries
#               (or the run program) in the VM; values may not contain
#               spaces or quotes, names are [A-Za-z_][A-Za-z0-9_]*
#   VM_QEMU_ARGS  extra QEMU arguments, split on spaces (e.g.
#               "-icount shift=0,sleep=off -cpu qemu64,-cx16")
set -euo pipefail

mode=${1:?usage: $0 check|run KVER ours|linux [PROGRAM]}
kver=${2:?missing KVER}
lane=${3:?missing lane}
program=${4:-kcm_demo}
root=$(cd "$(dirname "$0")/../.." && pwd)
vm_timeout=${VM_TIMEOUT:-900}
test_timeout=${TEST_TIMEOUT:-600}

case $mode in
check)	dir=$root/build/vm/$kver-$lane ;;
run)	dir=$root/build/vm/$kver-$lane-run ;;
*)	echo "run-vm: mode must be check or run, not '$mode'" >&2; exit 1 ;;
esac
dir=${VM_DIR:-$dir}
rm -rf "$dir"
mkdir -p "$dir/root"
stage=$dir/root

# --- the module under test ---------------------------------------------------
case ${VM_KO:+VM_KO-}$lane in
VM_KO-ours|VM_KO-linux)
	cp "$VM_KO" "$stage/kcm.ko" ;;
ours)
	ko=$root/build/$kver/kcm.ko
	[ -f "$ko" ] || { echo "run-vm: $ko missing (make modules)" >&2; exit 1; }
	cp "$ko" "$stage/kcm.ko" ;;
linux)
	ref=$(find "/usr/lib/modules/$kver/kernel/net/kcm" -name 'kcm.ko*' 2>/dev/null | head -n1 || true)
	case $ref in
	*.ko)	cp "$ref" "$stage/kcm.ko" ;;
	*.xz)	xz -dc "$ref" >"$stage/kcm.ko" ;;
	*.zst)	zstd -qdc "$ref" >"$stage/kcm.ko" ;;
	*.gz)	gzip -dc "$ref" >"$stage/kcm.ko" ;;
	*)	echo "run-vm: no reference kcm.ko for $kver" >&2; exit 1 ;;
	esac ;;
*)	echo "run-vm: lane must be ours or linux, not '$lane'" >&2; exit 1 ;;
esac

# --- initramfs -----------------------------------------------------------------
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,etc,tests,samples,modules}
"$root/scripts/vm/modules.sh" "$kver" "$stage"
cp /bin/busybox "$stage/bin/busybox"	# busybox-static: needs no libraries
/bin/busybox --list-full | while read -r applet; do
	[ -e "$stage/$applet" ] || ln -s /bin/busybox "$stage/$applet"
done
mknod -m 600 "$stage/dev/console" c 5 1	# the kernel opens it before /init runs
install -m 755 "$root/scripts/vm/init.sh" "$stage/init"
cat >"$stage/etc/kcm-vm.conf" <<EOF
MODE=$mode
LANE=$lane
TEST_TIMEOUT=$test_timeout
RUN=$program
KCM_LINK_SEED=${KCM_LINK_SEED:-}
EOF
# VM_ENV: one "export NAME='VALUE'" line each, sourced by init.sh.
: >"$stage/etc/kcm-vm.env"
for kv in ${VM_ENV:-}; do
	name=${kv%%=*}
	if [[ $kv != *=* || ! $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ || ${kv#*=} == *"'"* ]]; then
		echo "run-vm: VM_ENV: '$kv' is not NAME=VALUE" >&2
		exit 1
	fi
	printf "export %s='%s'\n" "$name" "${kv#*=}" >>"$stage/etc/kcm-vm.env"
done
tests_dir=${VM_TESTS:-$root/build/tests}
if [ -d "$tests_dir" ]; then cp -a "$tests_dir/." "$stage/tests/"; fi
if [ -d "$root/build/samples" ]; then cp -a "$root/build/samples/." "$stage/samples/"; fi
if [ -n "${TESTS:-}" ]; then
	# TESTS="kcm_basic kcm_rx": every other test stops being executable.
	find "$stage/tests" -maxdepth 1 -type f -perm -u+x | while read -r f; do
		[[ " $TESTS " == *" ${f##*/} "* ]] || chmod a-x "$f"
	done
fi
# --remove-destination: a file of the overlay replaces a busybox applet
# link; copying through the link would overwrite the host's /bin/busybox.
if [ -n "${VM_OVERLAY:-}" ]; then cp -a --remove-destination "$VM_OVERLAY/." "$stage/"; fi
# The test binaries /init will run, for parse.sh to check that each did.
find "$stage/tests" -maxdepth 1 -type f -perm -u+x -printf '%f\n' |
	LC_ALL=C sort >"$dir/expected-tests"

# Dynamically linked programs also get their shared libraries and loader.
while read -r f; do
	libs=$(ldd "$f" 2>/dev/null | grep -oE '/[^ ]+' || true)	# none if static
	for lib in $libs; do
		[ -e "$stage$lib" ] || cp -L --parents "$lib" "$stage"
	done
done < <(find "$stage/tests" "$stage/samples" -type f -perm -u+x)

(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -1 >"$dir/initramfs.cpio.gz"

# --- boot ------------------------------------------------------------------------
# ttyS0 = kernel console; ttyS1 = test output, to tap.log (and the terminal
# for run).
if [ "$mode" = run ]; then
	ttyS1=(-chardev "stdio,id=out,logfile=$dir/tap.log" -serial chardev:out)
else
	ttyS1=(-serial "file:$dir/tap.log")
fi
cmdline="console=ttyS0 loglevel=5 panic_on_warn=1 oops=panic panic=-1 softlockup_panic=1${VM_APPEND:+ $VM_APPEND}"
read -ra qemu_extra <<<"${VM_QEMU_ARGS:-}"
rc=0
timeout -k 10 "$vm_timeout" qemu-system-x86_64 \
	-machine q35 -m "${VM_MEM:-1024}" -smp 2 -nodefaults -display none -no-reboot \
	"${qemu_extra[@]}" \
	-kernel "${VM_KERNEL:-/boot/vmlinuz-$kver}" -initrd "$dir/initramfs.cpio.gz" -append "$cmdline" \
	-serial "file:$dir/console.log" "${ttyS1[@]}" </dev/null || rc=$?
echo "$rc" >"$dir/qemu.rc"

if [ "$mode" = check ]; then
	"$root/scripts/vm/parse.sh" "$dir" >"$dir/results.txt"
	exit 0
fi
# run: fail unless the program exited 0 and the kernel log is clean.
kernel_log=$("$root/scripts/vm/parse.sh" "$dir" | tail -n1)	# "... kernel log clean"
echo "run: $kernel_log (console: ${dir#"$root"/}/console.log)"
tr -d '\r' <"$dir/tap.log" | grep -qx "kcm-vm: exit $program 0" && [[ $kernel_log == ok* ]]
