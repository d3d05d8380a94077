#!/bin/bash
# The debug-kernel lanes: the test suite, or the fuzzer, on a kernel with
# KASAN, lockdep, kmemleak and friends, or on one with KCSAN
# (scripts/debug-kernel/build.sh).
#
#   scripts/debug-kernel/check.sh              whole suite (build/tests/)
#   scripts/debug-kernel/check.sh fuzz SECONDS kcm_fuzz only, several seeds
#
# Environment:
#   DEBUG_FLAVOUR   kasan (default) or kcsan: which kernel.  On the KCSAN
#                   kernel the suite is followed by kcm_soak's long form
#                   (KCSAN_SOAK_SECONDS, default 120) and kcm_fuzz without
#                   failslab (KCSAN_FUZZ_SECONDS, default 90); a data race
#                   whose report names our module fails the run, the
#                   kernel's own races are listed (kcsan-other.txt) but
#                   do not; there is no kmemleak there.
#   KCM             lanes: ours and/or linux (default ours)
#   FUZZ_SEEDS      seeds for fuzz mode (default: 4 taken from the clock,
#                   fewer for short runs); SECONDS is split among them
#   FUZZ_ENV        environment for kcm_fuzz in the VM, e.g.
#                   "KCM_FUZZ_DONTWAIT=1 KCM_FUZZ_THREADS=6"
#   FUZZ_FAILSLAB   fuzz mode: off (default), task, module, both or all:
#                   slab allocations fail at random (failslab) while
#                   kcm_fuzz runs; "both" runs every seed once per mode,
#                   "all" also once without failslab; SECONDS are split
#                   among all the runs.  task = any allocation in
#                   the fuzzer threads' system calls; module = allocations
#                   with our module's .text on the call stack, in any
#                   context (softirq, work items).  See kcm_fuzz.c.
#   FUZZ_FAILSLAB_PERCENT  their probability (default 5)
#   FUZZ_FAILSLAB_STACKS=1  failslab logs the stack of a few injected
#                   failures a second; the allocation sites are counted in
#                   build/vm/debug-LANE*/failslab-sites.txt
# Suite mode also runs inject_alloc (tools/testing/selftests/net/kcm/): cases
# that make one chosen allocation fail, which Debian's kernels cannot.
#   CHECK_FAILSLAB_SECONDS  suite mode: after the suite, kcm_fuzz runs this
#                   long with failslab in task mode, then as long in module
#                   mode (default 45; 0 = not at all)
#   VM_TIMEOUT      seconds per VM (default 5400 for the suite, fuzz: its
#                   duration + 1800)
#   TEST_TIMEOUT    seconds per test binary (default 1800)
#   DEBUG_TESTS     test binaries for the suite (default build/tests)
#   DEBUG_KERNEL_DIR, KCSAN_KERNEL_DIR  see build.sh
#
# One VM per lane, one after the other; logs in build/vm/FLAVOUR-LANE[-fuzz]/
# (FLAVOUR: debug or kcsan; console.log = kernel log, tap.log = test output
# and kmemleak reports).
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
# Not reports: the stacks failslab itself dumps (FUZZ_FAILSLAB_STACKS=1)
# and, in a run with failslab, the allocation failure warnings of vmalloc
# and the page allocator (warn_alloc) that injected failures cause.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/scripts/debug-kernel
flavour=${DEBUG_FLAVOUR:-kasan}
case $flavour in
kasan)	out=${DEBUG_KERNEL_DIR:-$root/build/debug-kernel}; tag=debug
	kcsan_append= ;;
# KCSAN takes its reports for warnings: with run-vm.sh's panic_on_warn=1
# the first race anywhere in the kernel would end the VM.  The verdict
# below reads them from the log instead (and any WARNING still fails).
kcsan)	out=${KCSAN_KERNEL_DIR:-$root/build/kcsan-kernel}; tag=kcsan
	kcsan_append=" panic_on_warn=0" ;;
*)	echo "check-debug: DEBUG_FLAVOUR must be kasan or kcsan" >&2; exit 1 ;;
esac
mode=${1:-check}
read -ra lanes <<<"${KCM:-ours}"

case $mode in
check)	export VM_TIMEOUT=${VM_TIMEOUT:-5400} ;;
fuzz)	duration=${2:-600}
	export VM_TIMEOUT=${VM_TIMEOUT:-$((duration + 1800))} ;;
*)	echo "usage: $0 [check | fuzz SECONDS]" >&2; exit 1 ;;
esac
export TEST_TIMEOUT=${TEST_TIMEOUT:-1800}

"$here/build.sh" "$flavour"
kver=$(cat "$out/kver")

# --- fuzz mode: a tests directory of one wrapper per seed --------------------
overlay=$root/build/vm/$tag-overlay
rm -rf "$overlay"
mkdir -p "$overlay/hooks"
cp "$here/hooks/before-insmod" "$here/hooks/after-tests" "$overlay/hooks/"
tests=${DEBUG_TESTS:-$root/build/tests}

# fuzz_wrapper FILE BINARY SEED SECONDS FAILSLAB-MODE: a test that runs
# kcm_fuzz with FUZZ_ENV and, unless the mode is off, failslab.
fuzz_wrapper() {
	local env=${FUZZ_ENV:-}
	if [ "$5" != off ]; then
		env="$env KCM_FUZZ_FAILSLAB=$5"
		[ -z "${FUZZ_FAILSLAB_PERCENT:-}" ] ||
			env="$env KCM_FUZZ_FAILSLAB_PERCENT=$FUZZ_FAILSLAB_PERCENT"
		[ -z "${FUZZ_FAILSLAB_STACKS:-}" ] ||
			env="$env KCM_FUZZ_FAILSLAB_STACKS=$FUZZ_FAILSLAB_STACKS"
	fi
	printf '#!/bin/sh\nexec env %s %s %s %s\n' "$env" "$2" "$3" "$4" >"$1"
	chmod +x "$1"
}
case ${FUZZ_FAILSLAB:-off} in
off|task|module)	fs_modes=("${FUZZ_FAILSLAB:-off}") ;;
both)		fs_modes=(task module) ;;
all)		fs_modes=(off task module) ;;
*)	echo "check-debug: FUZZ_FAILSLAB must be off, task, module, both or all" >&2; exit 1 ;;
esac

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
	each=$(( duration / (${#seeds[@]} * ${#fs_modes[@]}) ))
	[ "$each" -ge 1 ] || each=1
	export TEST_TIMEOUT=$((each + 600))
	mkdir -p "$overlay/fuzz"
	cp "$fuzz/bin/kcm_fuzz" "$overlay/fuzz/"
	tests=$fuzz/tests
	rm -rf "$tests"
	mkdir -p "$tests"
	for s in "${seeds[@]}"; do
		for m in "${fs_modes[@]}"; do
			name=fuzz-$s
			[ "$m" = off ] || name=$name-failslab-$m
			fuzz_wrapper "$tests/$name" /fuzz/kcm_fuzz "$s" "$each" "$m"
		done
	done
	echo "# fuzz: ${#seeds[@]} seed(s) x ${#fs_modes[@]} mode(s) x $each s: ${seeds[*]}${FUZZ_ENV:+ ($FUZZ_ENV)}, failslab ${fs_modes[*]}"
elif [ ! -d "$tests" ] || [ -z "$(ls -A "$tests" 2>/dev/null)" ]; then
	echo "check-debug: $tests is empty (make tests)" >&2
	echo "0 passed, 1 failed"
	exit 1
elif [ "$flavour" = kcsan ]; then
	# After the suite: the stream soak and the fuzzer, longer than the
	# suite runs them, for KCSAN to watch more interleavings.
	mkdir -p "$overlay/tests"
	printf '#!/bin/sh\nexec env KCM_SOAK_SECS=%s KCM_ONLY=soak_matrix /tests/kcm_soak\n' \
		"${KCSAN_SOAK_SECONDS:-120}" >"$overlay/tests/zz-soak"
	chmod +x "$overlay/tests/zz-soak"
	fuzz_wrapper "$overlay/tests/zz-fuzz" /tests/kcm_fuzz "$(date +%s)" \
		"${KCSAN_FUZZ_SECONDS:-90}" off
	echo "# check-kcsan: then kcm_soak ${KCSAN_SOAK_SECONDS:-120} s and kcm_fuzz ${KCSAN_FUZZ_SECONDS:-90} s"
elif [ "${CHECK_FAILSLAB_SECONDS:-45}" -gt 0 ] && [ -x "$tests/kcm_fuzz" ]; then
	# After the suite (the overlay's names sort after kcm_* and tx_*): the
	# suite's kcm_fuzz with failslab, in both modes, from a seed of the clock.
	fs_seed=$(date +%s)
	mkdir -p "$overlay/tests"
	for m in task module; do
		fuzz_wrapper "$overlay/tests/zz-failslab-$m" /tests/kcm_fuzz \
			"$fs_seed" "${CHECK_FAILSLAB_SECONDS:-45}" "$m"
	done
	echo "# check-debug: then kcm_fuzz with failslab, task and module mode, ${CHECK_FAILSLAB_SECONDS:-45} s each, seed $fs_seed"
fi
if [ "$mode" = check ]; then
	# The cases that inject one allocation failure at a chosen place: not
	# among the suite's binaries (Debian's kernels cannot inject), so built
	# here and put in the VM with the suite.
	make -s -C "$root/tools/testing/selftests/net/kcm" \
		OUTPUT="$root/build/debug-inject" "$root/build/debug-inject/inject_alloc"
	mkdir -p "$overlay/tests"
	cp "$root/build/debug-inject/inject_alloc" "$overlay/tests/"
fi

# --- the kernel log and kmemleak verdicts ---------------------------------------
# Reports the debug options produce; boot banners ("kasan: ...", "kmemleak:
# Kernel memory leak detector initialized") do not match.
splat_re='BUG:|WARNING:|Oops|Kernel panic|KASAN:|general protection fault|INFO: |possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|soft lockup|hard LOCKUP|list_(add|del) corruption|ODEBUG:|refcount_t:|UBSAN:|Call Trace:|workqueue lockup'

# Which test ran when the first report appeared (init.sh echoes its kcm-vm:
# lines to the console too).
culprit() {
	awk -v re="$splat_re" '
		/^kcm-vm: test / { t = $3 }
		$0 ~ re && !found { found = 1; print (t == "" ? "boot, before any test" : t) }' "$1"
}

# failslab_stacks VMDIR: the console log, without what injected allocation
# failures print and which is not a report: the stacks failslab dumps
# (FUZZ_FAILSLAB_STACKS=1; "Call Trace:" blocks that go through
# should_fail_ex) and, when kcm_fuzz ran with failslab, the allocation
# failure warnings of vmalloc and the page allocator (through warn_alloc).
# The allocation site of each failslab stack (the innermost frame in kcm,
# else the allocator's caller), counted per test up to the dmesg that
# init.sh prints last, goes to VMDIR/failslab-sites.txt (count, test, site).
failslab_stacks() {
	local fs=0
	! grep -q '^# failslab: ' "$1/tap.log" 2>/dev/null || fs=1
	tr -d '\r' <"$1/console.log" 2>/dev/null |
	awk -v fs_ran="$fs" -v out="$1/failslab-sites.txt" '
	function frame(l) {	# " func+0x1/0x2 [mod]" -> "func [mod]"; "" if "?"
		sub(/^\[[ 0-9.]+\] /, "", l); sub(/^ +/, "", l)
		if (l ~ /^\? /) return ""
		sub(/\+0x[0-9a-f]+\/0x[0-9a-f]+/, "", l)
		return l
	}
	function flush(   i, f, site, kind) {
		kind = ""
		for (i = 1; i <= n && kind == ""; i++) {
			f = frame(buf[i])
			if (f ~ /^should_fail_ex( |$)/) kind = "failslab"
			else if (f ~ /^warn_alloc( |$)/ && fs_ran) kind = "warn_alloc"
		}
		if (kind == "") {
			for (i = 1; i <= n; i++) print buf[i]
		} else if (kind == "failslab" && !indmesg) {
			site = ""
			for (i = 1; i <= n && site == ""; i++) {
				f = frame(buf[i])
				if (f ~ /\[kcm\]$/) site = f
			}
			for (i = 1; i <= n && site == ""; i++) {
				f = frame(buf[i])
				if (f != "" && f !~ /^(Call Trace|<|RIP|Code|RSP|RAX|RDX|RBP|R10|R13|dump_stack|should_fail|__should_fail|slab_|__slab|kmem_cache_alloc|__kmalloc|kmalloc|__kmem|kasan|__kasan|__pfx_|alloc_slab|kmemleak)/)
					site = f " (not kcm)"
			}
			sites[t "\t" (site == "" ? "?" : site)]++
			total++
		}
		n = 0; inblk = 0
	}
	/^kcm-vm: test / { t = $3 }
	/----- dmesg -----/ { indmesg = 1 }
	!inblk && /Call Trace:/ { inblk = 1; n = 0 }
	inblk {
		buf[++n] = $0
		if ($0 ~ /<\/TASK>/ || n >= 300) flush()
		next
	}
	{ print }
	END {
		if (inblk) flush()
		for (s in sites)
			printf "%6d\t%s\n", sites[s], s | "sort -t \"\t\" -k2,2 -k1,1nr >\"" out "\""
	}'
}

# kcsan_split VMDIR: the log on stdin without its KCSAN reports, which go
# to VMDIR/kcsan-kcm.txt when one of the racing accesses is in our module
# (the first frame under "read to ..."/"write to ..." is a "[kcm]" one), and
# to VMDIR/kcsan-other.txt otherwise, also when our module is only further
# down a stack: the kernel's own races seen while our code ran (an
# interrupt running our parser while the task it interrupted reads its own
# task_struct, say).
# A report runs from "BUG: KCSAN:" to the line of "=" that closes it.
kcsan_split() {
	awk -v ours="$1/kcsan-kcm.txt" -v other="$1/kcsan-other.txt" '
	function flush(   i, f) {
		f = kcm ? ours : other
		for (i = 1; i <= n; i++) print buf[i] > f
		print "" > f
		n = 0; inrep = 0; kcm = 0
	}
	BEGIN { printf "" > ours; printf "" > other }
	/BUG: KCSAN: / { inrep = 1; n = 0; kcm = 0; access = 0 }
	inrep {
		buf[++n] = $0
		if ($0 ~ /(read|write).* to 0x|race at unknown origin/) {
			access = 1
		} else if (access && $0 ~ /\+0x[0-9a-f]+\/0x/) {
			if ($0 ~ /\[kcm\]/) kcm = 1
			access = 0
		}
		if ($0 ~ /====================/ || n >= 200) flush()
		next
	}
	{ print }
	END { if (inrep) flush() }'
}

# kcsan_titles FILE: "data-race in a / b" of each report, counted.
kcsan_titles() {
	sed -n 's/.*BUG: KCSAN: //p' "$1" | sort | uniq -c | sort -rn
}

verdict() {	# VMDIR: replace parse.sh's log verdict by ours
	local dir=$1 log=$1/console.clean tap=$1/tap.log first who n kcm
	if [ "$flavour" = kcsan ]; then
		failslab_stacks "$dir" | kcsan_split "$dir" >"$log"
	else
		failslab_stacks "$dir" >"$log"
	fi
	grep -v ' - kernel log clean' "$dir/results.txt" >"$dir/results.tmp" || true
	# (No pipe into grep -m1: the writer's SIGPIPE would fail the
	# pipeline and a report would pass for a clean log.)
	if first=$(grep -m1 -E "$splat_re" "$log"); then
		who=$(culprit "$log")
		# The reports themselves, for the person reading the logs.
		grep -n -E -A40 "$splat_re" "$log" >"$dir/splats.txt" || true
		echo "not ok - kernel log clean # during $who: ${first//#/}" >>"$dir/results.tmp"
	else
		echo "ok - kernel log clean" >>"$dir/results.tmp"
	fi
	if [ "$flavour" = kcsan ]; then
		n=$(grep -c 'BUG: KCSAN: ' "$dir/kcsan-kcm.txt" || true)
		if [ "$n" -gt 0 ]; then
			echo "not ok - KCSAN: no data race in net/kcm # $n report(s): $(kcsan_titles "$dir/kcsan-kcm.txt" | awk '{ $1 = ""; print }' | paste -sd';'); see ${dir#"$root"/}/kcsan-kcm.txt" >>"$dir/results.tmp"
		else
			echo "ok - KCSAN: no data race in net/kcm" >>"$dir/results.tmp"
		fi
		mv "$dir/results.tmp" "$dir/results.txt"
		return
	fi
	tr -d '\r' <"$tap" | sed -n 's/^kmemleak| after-tests| //p' >"$dir/kmemleak.txt"
	tr -d '\r' <"$tap" | sed -n 's/^kmemleak| baseline| //p' >"$dir/kmemleak-baseline.txt"
	if ! grep -q '^kcm-vm: kmemleak after-tests' "$tap"; then
		if grep -q '^kcm-vm: kmemleak unavailable' "$tap"; then
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
all=$root/build/vm/$tag-results.txt
: >"$all"
for lane in "${lanes[@]}"; do
	case $lane in
	ours)	ko=$out/kcm.ko ;;
	linux)	ko=$out/linux-kcm.ko ;;
	*)	echo "check-debug: lane must be ours or linux, not '$lane'" >&2; exit 1 ;;
	esac
	name=$tag-$lane
	[ "$mode" = check ] || name=$name-fuzz
	dir=$root/build/vm/$name
	start=$SECONDS
	echo "# $name: booting $kver (${ko#"$root"/}), logs in ${dir#"$root"/}/"
	if ! VM_KERNEL=$out/bzImage VM_KO=$ko VM_MEM=2048 VM_DIR=$dir \
		VM_TESTS=$tests VM_OVERLAY=$overlay \
		VM_APPEND="rcupdate.rcu_cpu_stall_timeout=60$kcsan_append" \
		"$root/scripts/vm/run-vm.sh" check "$kver" "$lane" >"$root/build/vm/$name.out" 2>&1; then
		mkdir -p "$dir"
		echo "not ok - VM setup # run-vm.sh failed: $(tr '\n' ' ' <"$root/build/vm/$name.out")" >"$dir/results.txt"
	else
		verdict "$dir"
	fi
	echo "# $name: $(grep -c '^ok' "$dir/results.txt") ok, $(grep -c '^not ok' "$dir/results.txt") not ok ($((SECONDS - start)) s)"
	sed -E "s|^((not )?ok) - |\1 - $tag/$lane |" "$dir/results.txt" >>"$all"
	[ ! -s "$dir/splats.txt" ] || echo "# $name: kernel reports in ${dir#"$root"/}/splats.txt"
	if [ -s "$dir/kcsan-other.txt" ]; then
		echo "# $name: data races outside net/kcm (not failures), in ${dir#"$root"/}/kcsan-other.txt:"
		kcsan_titles "$dir/kcsan-other.txt" | sed 's/^/#   /'
	fi
	# What failslab did, per run (kcm_fuzz prints it).
	tr -d '\r' <"$dir/tap.log" 2>/dev/null | awk -v name="$name" '
		/^kcm-vm: test / { t = $3 }
		/^# failslab: [0-9]+ allocation failures/ { sub(/^# failslab: /, ""); print "# " name ": " t ": " $0 }'
	[ ! -s "$dir/failslab-sites.txt" ] ||
		echo "# $name: failslab allocation sites (sampled) in ${dir#"$root"/}/failslab-sites.txt"
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
