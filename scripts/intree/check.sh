#!/bin/bash
# The in-tree check (make check-intree):  scripts/intree/check.sh [boot]
#
# 1. gen-patch.sh: build/intree/kcm-intree.patch
# 2. tree.sh: a fresh linux-source-6.12 in build/intree/linux, patched
# 3. build-kernel.sh y: bzImage with CONFIG_AF_KCM=y (no kcm.ko)
# 4. the kselftests, the standard way:
#      make -C tools/testing/selftests TARGETS=net/kcm install
#    into the tree's tools/testing/selftests/kselftest_install/
# 5. QEMU (TCG) boots the kernel with an initramfs of busybox and
#    kselftest_install; init.sh runs run_kselftest.sh, whose TAP comes back
#    on the second serial port (build/intree/vm/tap.log; kernel console in
#    console.log).
# 6. Prints one TAP line per test case, one per test binary that did not
#    finish properly, the kernel log check, and last "N passed, M failed".
#    Exit status 1 if anything failed.
#
# `boot` skips 1-3 and reuses the tree and kernel already built.
# INTREE_VM_TIMEOUT: seconds for the whole VM (default 1800); the per-test
# timeout is the kselftest one, from tools/testing/selftests/net/kcm/settings.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/scripts/intree
out=$root/build/intree
tree=$out/linux
vm=$out/vm
kernel=$out/obj-y/arch/x86/boot/bzImage
vm_timeout=${INTREE_VM_TIMEOUT:-1800}

if [ "${1:-}" != boot ]; then
	"$here/gen-patch.sh" "$out/kcm-intree.patch"
	"$here/tree.sh" "$out/kcm-intree.patch" "$tree"
	"$here/build-kernel.sh" y "$tree"
fi
[ -f "$kernel" ] || { echo "intree: $kernel missing" >&2; exit 1; }

# --- kselftests ------------------------------------------------------------------
# kselftest's install copies with rsync, which a fresh machine may lack.
if ! command -v rsync >/dev/null; then
	echo "intree: rsync missing, installing it with apt-get"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rsync
fi
install=$tree/tools/testing/selftests/kselftest_install
echo "  KSFT    make -C tools/testing/selftests TARGETS=net/kcm install"
rm -rf "$install"
log=$out/kselftest-build.log
nice -n 10 make -C "$tree/tools/testing/selftests" TARGETS=net/kcm -j"$(nproc)" install >"$log" 2>&1 ||
	{ tail -n 30 "$log" >&2; echo "intree: kselftest build/install failed ($log)" >&2; exit 1; }
[ -x "$install/run_kselftest.sh" ] || { echo "intree: no run_kselftest.sh in $install" >&2; exit 1; }
echo "  KSFT    $(wc -l <"$install/kselftest-list.txt") tests in ${install#"$root"/}"

# --- initramfs -------------------------------------------------------------------
rm -rf "$vm"
stage=$vm/root
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,etc}
cp /bin/busybox "$stage/bin/busybox"
/bin/busybox --list-full | while read -r applet; do
	[ -e "$stage/$applet" ] || ln -s /bin/busybox "$stage/$applet"
done
# runner.sh calls `/usr/bin/timeout --foreground`, which busybox's lacks:
# coreutils' timeout, with its libraries.
rm -f "$stage/usr/bin/timeout"
cp /usr/bin/timeout "$stage/usr/bin/timeout"
for lib in $(ldd /usr/bin/timeout | grep -oE '/[^ ]+'); do
	cp -L --parents "$lib" "$stage"
done
mknod -m 600 "$stage/dev/console" c 5 1
install -m 755 "$here/init.sh" "$stage/init"
cp -a "$install" "$stage/kselftest_install"
(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$vm/initramfs.cpio.gz"

# --- boot ------------------------------------------------------------------------
echo "  QEMU    $(cat "$out/obj-y/include/config/kernel.release" 2>/dev/null), TCG (logs: ${vm#"$root"/}/)"
start=$SECONDS
rc=0
timeout -k 10 "$vm_timeout" qemu-system-x86_64 \
	-machine q35 -m 1024 -smp 2 -nodefaults -display none -no-reboot \
	-kernel "$kernel" -initrd "$vm/initramfs.cpio.gz" \
	-append "console=ttyS0 loglevel=5 panic_on_warn=1 oops=panic panic=-1 softlockup_panic=1" \
	-serial "file:$vm/console.log" -serial "file:$vm/tap.log" </dev/null || rc=$?
echo "$rc" >"$vm/qemu.rc"
echo "  QEMU    exit $rc after $((SECONDS - start)) s"

# --- results ---------------------------------------------------------------------
"$here/parse.sh" "$vm" | tee "$vm/results.txt"
tail -n1 "$vm/results.txt" | grep -q ', 0 failed$'
