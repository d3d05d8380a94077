#!/bin/sh
# /init (PID 1) of the in-tree VM (scripts/intree/check.sh); busybox sh.
#
# The kernel has AF_KCM built in.  This runs the installed kselftests
# (/kselftest_install/run_kselftest.sh) and sends their TAP to ttyS1; ttyS0
# is the kernel console.  Lines for check.sh on ttyS1:
#   kcm-intree: begin KERNELRELEASE | builtin yes|no | end RC

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /tmp
# devtmpfs has no /dev/stdout; runner.sh writes each test's output there
# (without the link it would fill a regular file of that name).
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
ip link set lo up
export HOME=/tmp TMPDIR=/tmp
unset KCM_LANE	# the tests' default lane: ours

exec 3>/dev/ttyS1
say() { echo "kcm-intree: $*" >&3; echo "kcm-intree: $*"; }

say begin "$(uname -r)"
# Built in: /proc/net/kcm exists from boot, and no module is loaded.
if [ -e /proc/net/kcm ] && ! grep -q '^kcm ' /proc/modules 2>/dev/null; then
	say builtin yes
else
	say builtin no
fi

cd /kselftest_install && ./run_kselftest.sh >&3 2>&3 3>&- </dev/null
say end $?

echo "----- dmesg -----"
dmesg
echo "----- end of dmesg -----"
sync
poweroff -f
echo o >/proc/sysrq-trigger	# in case poweroff -f returned
