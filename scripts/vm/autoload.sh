#!/bin/bash
# Is the installed module what the system loads?  scripts/vm/autoload.sh [KVER...]
#
# For each kernel (default: scripts/kernels.sh), boots a VM whose
# /lib/modules/KVER holds what DKMS installs: Linux's kcm.ko where Debian
# puts it (kernel/net/kcm/) and ours in updates/dkms/, with depmod run on
# that tree and kmod's modprobe, depmod and rmmod.  No module is loaded by
# hand: the VM's first socket(AF_KCM) must load ours (its build ID in
# /sys/module/kcm/notes/, and our version).  Then ours is removed as the
# package's removal does it (rmmod, the file deleted, depmod), net-pf-41
# must resolve to Linux's module (kmod's modprobe --show-depends), and the
# next socket(AF_KCM) must load Linux's module by itself (its build ID, no
# version).
#
# The hook calls kmod's tools by path (/sbin/depmod etc.), never by bare
# name: the VM's shell is Debian's busybox-static, whose sh runs its own
# applet for a bare "depmod", "modprobe" or "rmmod" whatever PATH says
# (busybox sh -c 'type depmod' says "depmod is depmod" on a host with
# kmod's /sbin/depmod too).  Busybox's depmod writes only the text
# modules.dep/.alias/.symbols; kmod's modprobe, which the kernel runs for
# request_module("net-pf-41"), reads modules.dep.bin and modules.alias.bin,
# which still named updates/dkms/kcm.ko: it exited 1 on the missing file
# (quietly: the kernel passes -q) and socket() failed with EAFNOSUPPORT,
# while busybox's modprobe from the shell, reading the text files, loaded
# Linux's module.  Seen with ftrace in the VM (module_request, then
# modprobe's opens: modules.dep.bin, ..., updates/dkms/kcm.ko ENOENT,
# exit_group(1)).
# Prints "autoload: ok|not ok - ..." lines; exits 1 if one failed, the VM
# did not finish or its kernel log has a report.  Logs in
# build/vm/KVER-autoload/.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
if [ $# -gt 0 ]; then kvers=("$@"); else mapfile -t kvers < <("$root/scripts/kernels.sh"); fi
failed=0
bad() { echo "autoload: not ok - $*"; failed=$((failed + 1)); }
# A module's GNU build ID note, as hex: what /sys/module/kcm/notes/ shows
# of the module loaded.
build_id() {
	local ko=$1 tmp
	tmp=$(mktemp)
	case $ko in
	*.xz) xz -dc "$ko" >"$tmp.ko" ;;
	*) cp "$ko" "$tmp.ko" ;;
	esac
	objcopy -O binary --only-section=.note.gnu.build-id "$tmp.ko" "$tmp"
	od -An -tx1 "$tmp" | tr -d ' \n'
	rm -f "$tmp" "$tmp.ko"
}

for kver in "${kvers[@]}"; do
	ours=$root/build/$kver/kcm.ko
	linux=$(find "/usr/lib/modules/$kver/kernel/net/kcm" -name 'kcm.ko*' | head -n1)
	[ -f "$ours" ] || { bad "$kver: $ours missing (make modules)"; continue; }
	[ -n "$linux" ] || { bad "$kver: no Linux kcm.ko"; continue; }
	dir=$root/build/vm/$kver-autoload
	ov=$dir-overlay
	rm -rf "$ov"
	mods=$ov/lib/modules/$kver
	mkdir -p "$mods/kernel/net/kcm" "$mods/updates/dkms" "$ov/autoload" \
		"$ov/hooks" "$ov/sbin" "$ov/usr/bin" "$dir-tests"
	cp "$linux" "$mods/kernel/net/kcm/"
	cp "$ours" "$mods/updates/dkms/kcm.ko"
	for f in modules.builtin modules.builtin.modinfo modules.order; do
		[ -f "/usr/lib/modules/$kver/$f" ] && cp "/usr/lib/modules/$kver/$f" "$mods/"
	done
	depmod -b "$ov" "$kver" || { bad "$kver: depmod of the staged tree"; continue; }
	gcc -static -O2 -Wall -Werror -I"$root/include/uapi" \
		-o "$ov/autoload/kcm_socket" "$root/scripts/vm/autoload/kcm_socket.c" ||
		{ bad "$kver: build kcm_socket"; continue; }
	cp /usr/bin/kmod "$ov/usr/bin/kmod"
	for lib in $(ldd /usr/bin/kmod | grep -oE '/[^ ]+'); do
		cp -L --parents "$lib" "$ov"
	done
	for tool in modprobe depmod rmmod; do
		ln -sf /usr/bin/kmod "$ov/sbin/$tool"
	done
	ours_id=$(build_id "$ours")
	ours_ver=$(modinfo -F version "$ours")
	linux_id=$(build_id "$linux")
	[ -n "$ours_id" ] && [ -n "$linux_id" ] && [ "$ours_id" != "$linux_id" ] ||
		{ bad "$kver: no build IDs to tell the modules apart"; continue; }
	# Sourced by init.sh before its insmod (which then loads ours for
	# nothing: no tests run), with say and fd 3.  kmod's tools by path:
	# a bare name is busybox's applet (see the top of this file).
	cat >"$ov/hooks/before-insmod" <<HOOK
al() { say "autoload: \$*"; }
loaded() {	# what socket(AF_KCM) loaded: build ID, version
	id=\$(od -An -tx1 /sys/module/kcm/notes/.note.gnu.build-id 2>/dev/null | tr -d ' \\n')
	ver=\$(cat /sys/module/kcm/version 2>/dev/null)
}
unload() {	# the module, once its last socket is freed
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		/sbin/rmmod kcm 2>/dev/null
		# Gone from sysfs too: modprobe takes a module whose
		# /sys/module/ directory is there for loaded.
		[ -e /sys/module/kcm ] || return 0
		sleep 1
	done
	return 1
}
echo /sbin/modprobe >/proc/sys/kernel/modprobe
if ! /sbin/depmod --version | grep -q '^kmod version'; then
	al "not ok - $kver: /sbin/depmod is not kmod's: \$(/sbin/depmod --version 2>&1 | head -n1)"
fi
if grep -q '^kcm ' /proc/modules; then
	al "not ok - kcm loaded before any socket"
elif out=\$(/autoload/kcm_socket); then
	loaded
	if [ "\$id" = "$ours_id" ] && [ "\$ver" = "$ours_ver" ]; then
		al "ok - $kver: the first socket(AF_KCM) loaded ours (build ID \$id, version \$ver)"
	else
		al "not ok - $kver: the first socket(AF_KCM) loaded build ID '\$id' version '\$ver', not ours ($ours_id, $ours_ver)"
	fi
else
	al "not ok - $kver: socket(AF_KCM) without a module loaded: \$out"
fi
# The package's removal: module unloaded, file deleted, depmod.
unload || al "not ok - ours did not unload"
rm -f /lib/modules/$kver/updates/dkms/kcm.ko
/sbin/depmod $kver || al "not ok - depmod in the VM"
# What the family's alias resolves to now in kmod's index (what the
# kernel's modprobe reads): tells a stale index from a failed load.
want=/lib/modules/$kver/kernel/net/kcm/$(basename "$linux")
if /sbin/modprobe --show-depends net-pf-41 | grep -q "^insmod \$want"; then
	al "ok - $kver: with ours removed, net-pf-41 resolves to Linux's module (\$want)"
else
	al "not ok - $kver: with ours removed, net-pf-41 resolves to '\$(/sbin/modprobe --show-depends net-pf-41 2>&1)', not \$want"
fi
if grep -q '^kcm ' /proc/modules; then
	al "not ok - $kver: kcm loaded before the second socket"
elif ! out=\$(/autoload/kcm_socket); then
	al "not ok - $kver: with ours removed, socket(AF_KCM) loaded no module: \$out"
else
	loaded
	if [ "\$id" = "$linux_id" ] && [ -z "\$ver" ]; then
		al "ok - $kver: with ours removed, the next socket(AF_KCM) loaded Linux's (build ID \$id)"
	else
		al "not ok - $kver: with ours removed, the next socket(AF_KCM) loaded build ID '\$id' version '\$ver', not Linux's ($linux_id)"
	fi
fi
unload || al "not ok - Linux's did not unload"
al done
HOOK
	VM_OVERLAY=$ov VM_TESTS=$dir-tests VM_DIR=$dir VM_TIMEOUT=300 \
		"$root/scripts/vm/run-vm.sh" check "$kver" ours >/dev/null 2>&1 ||
		bad "$kver: run-vm.sh failed"
	log=$(tr -d '\r' <"$dir/tap.log")
	grep '^kcm-vm: autoload: ' <<<"$log" | grep -v ': done$' | sed 's/^kcm-vm: //'
	n=$(grep -c '^kcm-vm: autoload: not ok' <<<"$log")
	failed=$((failed + n))
	grep -q '^kcm-vm: autoload: done$' <<<"$log" ||
		bad "$kver: the VM did not finish the check (see ${dir#"$root"/}/console.log)"
	grep -c '^kcm-vm: autoload: ok' <<<"$log" | grep -qx 3 ||
		bad "$kver: not all three checks passed"
	report=$(grep 'kernel log clean' "$dir/results.txt")
	[[ $report == ok* ]] || bad "$kver: $report"
	rm -rf "$ov" "$dir-tests"
done
echo "autoload: $failed failed"
[ "$failed" -eq 0 ]
