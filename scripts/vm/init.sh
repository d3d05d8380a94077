#!/bin/sh
# /init (PID 1) of the test VM; busybox sh.  Settings come from /etc/kcm-vm.conf:
#   MODE=check|run  LANE=ours|linux  TEST_TIMEOUT=seconds  RUN=program (run mode)
#   KCM_LINK_SEED=seed (optional)
# and /etc/kcm-vm.env ("export NAME='VALUE'" lines from run-vm.sh's VM_ENV),
# exported to the tests or the run program.
#
# ttyS0 is the kernel console (this script's stdout).  ttyS1 carries the test
# output and "kcm-vm: ..." lines that scripts/vm/parse.sh on the host reads:
#   kcm-vm: begin KVER LANE | insmod RC | test NAME | timeout NAME
#   kcm-vm: exit NAME RC SECONDS | rmmod RC | end

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /tmp
ip link set lo up
# shellcheck disable=SC1091
. /etc/kcm-vm.conf
export KCM_LANE="$LANE" HOME=/tmp TMPDIR=/tmp
# A seed to replay, if the host was given one (kcm_link).
if [ -n "${KCM_LINK_SEED:-}" ]; then export KCM_LINK_SEED; fi
# shellcheck disable=SC1091
if [ -f /etc/kcm-vm.env ]; then . /etc/kcm-vm.env; fi

exec 3>/dev/ttyS1
say() { echo "kcm-vm: $*" >&3; echo "kcm-vm: $*"; }

finish() {
	echo "----- dmesg -----"
	dmesg
	echo "----- end of dmesg -----"
	say end
	sync
	poweroff -f
	echo o >/proc/sysrq-trigger	# in case poweroff -f returned
}

say begin "$(uname -r)" "$LANE"
# Other modules the tests use (veth, sch_netem), put in /modules/ by
# run-vm.sh when the kernel has them as modules; a test that needs one that
# failed to load says so itself.
if [ -f /modules/modules.order ]; then
	while read -r mod; do
		insmod "/modules/$mod.ko" 2>/dev/null ||
			echo "init: insmod $mod failed"
	done </modules/modules.order
fi
# Optional hooks, sourced so that they can use say and fd 3; only the
# debug-kernel lane has them (kmemleak scans, scripts/debug-kernel/).
# shellcheck disable=SC1091
if [ -f /hooks/before-insmod ]; then . /hooks/before-insmod; fi
insmod /kcm.ko
rc=$?
say insmod $rc
[ $rc -eq 0 ] || finish

if [ "$MODE" = run ]; then
	# make run: show one program's output on ttyS1, which is the terminal.
	cd /tmp && /samples/"$RUN" >&3 2>&3 3>&- </dev/null
	say exit "$RUN" $?
else
	cd /tests || finish
	for t in /tests/*; do
		if [ ! -f "$t" ] || [ ! -x "$t" ]; then continue; fi
		name=${t##*/}
		say test "$name"
		start=$(date +%s)
		# SIGKILL: a test that ignores SIGTERM must die too.
		timeout -s KILL "$TEST_TIMEOUT" "$t" >&3 2>&3 3>&- </dev/null
		rc=$?
		secs=$(($(date +%s) - start))
		[ $rc -ne 0 ] && [ $secs -ge "$TEST_TIMEOUT" ] && say timeout "$name"
		say exit "$name" $rc $secs
		# Children a test left behind would pin the module; the kernel
		# spares PID 1 (this shell) from kill -1.
		kill -9 -1 2>/dev/null
	done
fi

# shellcheck disable=SC1091
if [ -f /hooks/after-tests ]; then . /hooks/after-tests; fi

# Every socket is closed now, so the module must unload.  Teardown may
# finish asynchronously (RCU, workqueues): allow it a few seconds.
for _ in 1 2 3 4 5; do
	rmmod kcm 2>/dev/null && break
	sleep 1
done
rmmod_rc=0
grep -q '^kcm ' /proc/modules && { rmmod kcm; rmmod_rc=1; }
say rmmod $rmmod_rc
finish
