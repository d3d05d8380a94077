#!/bin/bash
# The debug-kernel lane: the test suite, or the fuzzer, on a kernel with
# KASAN, lockdep, kmemleak and friends (scripts/debug-kernel/build.sh).
#
#   scripts/debug-kernel/check.sh              whole suite (build/tests/)
#   scripts/debug-kernel/check.sh fuzz SECONDS kcm_fuzz only, several seeds
#
# Environment:
#   KCM             lanes: ours and/or linux (default ours)
#   FUZZ_SEEDS      seeds for fuzz mode (default: 4 taken from the clock,
#                   fewer for short runs); SECONDS is split among them
#   FUZZ_ENV        environment for kcm_fuzz in the VM, e.g.
#                   "KCM_FUZZ_DONTWAIT=1 KCM_FUZZ_THREADS=6"
#   VM_TIMEOUT      seconds per VM (default 5400 for the suite, fuzz: its
#                   duration + 1800)
#   TEST_TIMEOUT    seconds per test binary (default 1800)
#   DEBUG_TESTS     test binaries for the suite (default build/tests)
#   DEBUG_KERNEL_DIR  see build.sh
#
# One VM per lane, one after the other; logs in build/vm/debug-LANE[-fuzz]/
# (console.log = kernel log, tap.log = test output and kmemleak reports).
# Prints TAP 13 like make check, then "N passed, M failed, K skipped".
#
# What fails, besides failed test cases (see parse.sh):
#  - any kernel report on the console: KASAN, lockdep, suspicious RCU
#    usage, RCU stalls, list corruption, debugobjects, hung tasks, soft
#    lockups, workqueue lockups, BUG/WARNING/Oops/panic;
#  - kmemleak: a scan right before insmod sets a baseline, which is then
#    cleared (see hooks/before-insmod); every object reported by the scan
#    after the tests (before rmmod) counts, whatever it is, since only
#    objects that became unreferenced while the tests ran can show up
#    there.  Baseline objects count only if they mention kcm or strp.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/scripts/debug-kernel
out=${DEBUG_KERNEL_DIR:-$root/build/debug-kernel}
mode=${1:-check}
read -ra lanes <<<"${KCM:-ours}"

case $mode in
check)	export VM_TIMEOUT=${VM_TIMEOUT:-5400} ;;
fuzz)	duration=${2:-600}
	export VM_TIMEOUT=${VM_TIMEOUT:-$((duration + 1800))} ;;
*)	echo "usage: $0 [check | fuzz SECONDS]" >&2; exit 1 ;;
esac
export TEST_TIMEOUT=${TEST_TIMEOUT:-1800}

"$here/build.sh"
kver=$(cat "$out/kver")

# --- fuzz mode: a tests directory of one wrapper per seed --------------------
overlay=$root/build/vm/debug-overlay
rm -rf "$overlay"
mkdir -p "$overlay/hooks"
cp "$here/hooks/before-insmod" "$here/hooks/after-tests" "$overlay/hooks/"
tests=${DEBUG_TESTS:-$root/build/tests}
if [ "$mode" = fuzz ]; then
	fuzz=$root/build/fuzz
	make -s -C "$root/tools/testing/selftests/net/kcm" \
		OUTPUT="$fuzz/bin" "$fuzz/bin/kcm_fuzz"
	if [ -n "${FUZZ_SEEDS:-}" ]; then
		read -ra seeds <<<"$FUZZ_SEEDS"
	else
		n=$(( duration >= 240 ? 4 : duration >= 60 ? 2 : 1 ))
		seeds=()
		for ((i = 0; i < n; i++)); do seeds+=("$(( $(date +%s) * 16 + i ))"); done
	fi
	each=$(( duration / ${#seeds[@]} ))
	[ "$each" -ge 1 ] || each=1
	export TEST_TIMEOUT=$((each + 600))
	mkdir -p "$overlay/fuzz"
	cp "$fuzz/bin/kcm_fuzz" "$overlay/fuzz/"
	tests=$fuzz/tests
	rm -rf "$tests"
	mkdir -p "$tests"
	for s in "${seeds[@]}"; do
		printf '#!/bin/sh\nexec env %s /fuzz/kcm_fuzz %s %s\n' \
			"${FUZZ_ENV:-}" "$s" "$each" >"$tests/fuzz-$s"
		chmod +x "$tests/fuzz-$s"
	done
	echo "# fuzz: ${#seeds[@]} seed(s) x $each s: ${seeds[*]}${FUZZ_ENV:+ ($FUZZ_ENV)}"
elif [ ! -d "$tests" ] || [ -z "$(ls -A "$tests" 2>/dev/null)" ]; then
	echo "check-debug: $tests is empty (make tests)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

# --- the kernel log and kmemleak verdicts ---------------------------------------
# Reports the debug options produce; boot banners ("kasan: ...", "kmemleak:
# Kernel memory leak detector initialized") do not match.
splat_re='BUG:|WARNING:|Oops|Kernel panic|KASAN:|general protection fault|INFO: |possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|soft lockup|hard LOCKUP|list_(add|del) corruption|ODEBUG:|refcount_t:|UBSAN:|Call Trace:|workqueue lockup'

# Which test ran when the first report appeared (init.sh echoes its kcm-vm:
# lines to the console too).
culprit() {
	tr -d '\r' <"$1" | awk -v re="$splat_re" '
		/^kcm-vm: test / { t = $3 }
		$0 ~ re { print (t == "" ? "boot, before any test" : t); exit }'
}

verdict() {	# VMDIR: replace parse.sh's log verdict by ours
	local dir=$1 log=$1/console.log tap=$1/tap.log first who n kcm
	grep -v ' - kernel log clean' "$dir/results.txt" >"$dir/results.tmp" || true
	if first=$(tr -d '\r' <"$log" 2>/dev/null | grep -m1 -E "$splat_re"); then
		who=$(culprit "$log")
		# The reports themselves, for the person reading the logs.
		tr -d '\r' <"$log" | grep -n -E -A40 "$splat_re" >"$dir/splats.txt" || true
		echo "not ok - kernel log clean # during $who: ${first//#/}" >>"$dir/results.tmp"
	else
		echo "ok - kernel log clean" >>"$dir/results.tmp"
	fi
	tr -d '\r' <"$tap" | sed -n 's/^kmemleak| after-tests| //p' >"$dir/kmemleak.txt"
	tr -d '\r' <"$tap" | sed -n 's/^kmemleak| baseline| //p' >"$dir/kmemleak-baseline.txt"
	if ! tr -d '\r' <"$tap" | grep -q '^kcm-vm: kmemleak after-tests'; then
		if tr -d '\r' <"$tap" | grep -q '^kcm-vm: kmemleak unavailable'; then
			echo "not ok - kmemleak # /sys/kernel/debug/kmemleak missing" >>"$dir/results.tmp"
		else
			echo "not ok - kmemleak # no scan after the tests (VM died?)" >>"$dir/results.tmp"
		fi
	else
		n=$(grep -c '^unreferenced object' "$dir/kmemleak.txt" || true)
		kcm=$(awk '/^unreferenced object/ { o = 0 } /kcm|strp/ { if (!o) c++; o = 1 } END { print c + 0 }' \
			"$dir/kmemleak-baseline.txt")
		if [ "$n" -gt 0 ] || [ "$kcm" -gt 0 ]; then
			echo "not ok - kmemleak # $n object(s) leaked during the tests, $kcm kcm/strp object(s) at boot; see ${dir#"$root"/}/kmemleak.txt" >>"$dir/results.tmp"
		else
			echo "ok - kmemleak" >>"$dir/results.tmp"
		fi
	fi
	mv "$dir/results.tmp" "$dir/results.txt"
}

# --- one VM per lane -------------------------------------------------------------
all=$root/build/vm/debug-results.txt
: >"$all"
for lane in "${lanes[@]}"; do
	case $lane in
	ours)	ko=$out/kcm.ko ;;
	linux)	ko=$out/linux-kcm.ko ;;
	*)	echo "check-debug: lane must be ours or linux, not '$lane'" >&2; exit 1 ;;
	esac
	name=debug-$lane
	[ "$mode" = check ] || name=$name-fuzz
	dir=$root/build/vm/$name
	start=$SECONDS
	echo "# $name: booting $kver (${ko#"$root"/}), logs in ${dir#"$root"/}/"
	if ! VM_KERNEL=$out/bzImage VM_KO=$ko VM_MEM=2048 VM_DIR=$dir \
		VM_TESTS=$tests VM_OVERLAY=$overlay \
		VM_APPEND="rcupdate.rcu_cpu_stall_timeout=60" \
		"$root/scripts/vm/run-vm.sh" check "$kver" "$lane" >"$root/build/vm/$name.out" 2>&1; then
		mkdir -p "$dir"
		echo "not ok - VM setup # run-vm.sh failed: $(tr '\n' ' ' <"$root/build/vm/$name.out")" >"$dir/results.txt"
	else
		verdict "$dir"
	fi
	echo "# $name: $(grep -c '^ok' "$dir/results.txt") ok, $(grep -c '^not ok' "$dir/results.txt") not ok ($((SECONDS - start)) s)"
	sed -E "s|^((not )?ok) - |\1 - debug/$lane |" "$dir/results.txt" >>"$all"
	[ ! -s "$dir/splats.txt" ] || echo "# $name: kernel reports in ${dir#"$root"/}/splats.txt"
done

total=$(wc -l <"$all")
echo "TAP version 13"
echo "1..$total"
awk '{ sub(/ - /, " " NR " - "); print }' "$all"
failed=$(grep -c '^not ok' "$all" || true)
skipped=$(grep -cE '^ok .*# SKIP' "$all" || true)
passed=$((total - failed - skipped))
if [ "$failed" -gt 0 ]; then
	echo "# failed:"
	grep '^not ok' "$all" | sed 's/^/#   /'
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
