#!/bin/bash
# `make bench`: run kcm_bench in one VM per kernel x lane (ours, then Linux's
# kcm.ko), then print and save the table of medians and ratios.
#   KERNELS="6.12" scripts/bench/bench.sh
# Expects build/bench/bin/kcm_bench and, for the ours lane, build/KVER/kcm.ko
# (the Makefile's bench target builds both).  Outputs in build/bench/
# (build/bench/icount/ with BENCH_ICOUNT=1): table.txt, results.txt (every
# run), ratios.dat, bench.png, vm/KVER-LANE/ (logs).
# Exits 1 (after the table and the plot) if a run of our module, or of a
# baseline (user, tcp) in either lane, stalled, misframed, delivered a
# message that failed kcm_bench's verification, lost or invented messages
# or failed (report.py's failures.txt), or if a VM did not finish or its
# console has a kernel report (scripts/vm/kernel-report.sh); a failures
# summary comes last.  Linux's module stalling is what the table shows,
# not a failure.
# Environment: KERNELS (default 6.12), BENCH_LANES (default "ours linux"),
# BENCH_ICOUNT=1, BENCH_REPS, BENCH_DUR, BENCH_STALL, BENCH_DIRECTED, BENCH_SIZES, BENCH_CONNS,
# BENCH_THREADS, BENCH_WORKLOADS, BENCH_VARIANTS, BENCH_ECHO_VARIANTS,
# BENCH_MIXED, BENCH_SCALE (connection counts of the directed echo with
# epoll-driven clients; default "16 1000", "" for none), BENCH_SCALE_VARIANTS,
# BENCH_SCALE_CLIENTS, BENCH_SCALE_DUR, BENCH_VM_MEM (see vm-matrix.sh and
# run-vm.sh).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/build/bench/bin/kcm_bench
out=$root/build/bench	# icount results go to build/bench/icount/
[ "${BENCH_ICOUNT:-0}" = 1 ] && out=$root/build/bench/icount
read -ra series <<<"${KERNELS:-6.12}"
read -ra lanes <<<"${BENCH_LANES:-ours linux}"
mapfile -t kvers < <("$root/scripts/kernels.sh" "${series[@]}")
[ ${#kvers[@]} -gt 0 ] || { echo "bench: no kernel found for '${series[*]}'" >&2; exit 1; }

# The VMs run from a private copy: others may `make clean` the tree meanwhile.
work=$(mktemp -d /tmp/kcm-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$bin" "$work/kcm_bench" || { echo "bench: $bin missing (make bench)" >&2; exit 1; }
for kver in "${kvers[@]}"; do
	if [[ " ${lanes[*]} " == *" ours "* ]]; then
		cp "$root/build/$kver/kcm.ko" "$work/$kver-ours.ko" ||
			{ echo "bench: build/$kver/kcm.ko missing (make modules)" >&2; exit 1; }
	fi
done

start=$SECONDS
mode="TCG"
[ "${BENCH_ICOUNT:-0}" = 1 ] && mode="TCG -icount shift=0,sleep=off"
echo "bench: ${kvers[*]} / ${lanes[*]} ($mode), one VM at a time"
logs=()
vm_failed=()
for kver in "${kvers[@]}"; do
	for lane in "${lanes[@]}"; do
		t=$SECONDS
		if "$root/scripts/bench/run-vm.sh" "$work" "$kver" "$lane"; then
			n=$(grep -c '^KCMBENCH ' "$work/vm/$kver-$lane/bench.log" || true)
			echo "bench: $kver/$lane: $n runs in $((SECONDS - t)) s"
		else
			echo "bench: $kver/$lane: VM failed after $((SECONDS - t)) s (partial results kept)"
			vm_failed+=("$kver/$lane: the VM did not finish (see ${out#"$root"/}/vm/$kver-$lane/console.log)")
		fi
		if report=$("$root/scripts/vm/kernel-report.sh" "$work/vm/$kver-$lane/console.log"); then
			echo "bench: $kver/$lane: kernel report: $report"
			vm_failed+=("$kver/$lane: kernel report in the console: $report (see ${out#"$root"/}/vm/$kver-$lane/console.log)")
		fi
		logs+=("$work/vm/$kver-$lane/bench.log")
	done
done

mkdir -p "$out/vm"
for kver in "${kvers[@]}"; do
	for lane in "${lanes[@]}"; do
		rm -rf "$out/vm/$kver-$lane"
		mkdir -p "$out/vm/$kver-$lane"
		cp "$work/vm/$kver-$lane/"{bench.log,console.log,qemu.rc} "$out/vm/$kver-$lane/" 2>/dev/null || true
	done
done
echo
{
	echo "# $mode; $(date -u '+%F %T UTC'); VM time $((SECONDS - start)) s"
	/usr/bin/python3 "$root/scripts/bench/report.py" "$out" "${logs[@]}" >/dev/null
	cat "$out/table.txt"
} >"$out/table.tmp" && mv "$out/table.tmp" "$out/table.txt"
cat "$out/table.txt"

# The plot: gnuplot-nox comes from apt if it is missing.
if ! command -v gnuplot >/dev/null; then
	echo "bench: gnuplot missing, installing gnuplot-nox with apt-get"
	if [ "$(id -u)" -eq 0 ] && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null; }; then
		:
	else
		echo "bench: could not install gnuplot-nox; no plot" >&2
	fi
fi
if command -v gnuplot >/dev/null; then
	gnuplot -e "datafile='$out/ratios.dat'; outfile='$out/bench.png'; subtitle='${kvers[*]}, $mode'" \
		"$root/scripts/bench/plot.gp" && echo "bench: plot in ${out#"$root"/}/bench.png"
fi
echo "bench: table in ${out#"$root"/}/table.txt, every run in ${out#"$root"/}/results.txt" \
	"(total $((SECONDS - start)) s)"

# Failures: our module or a baseline stalled or delivered wrong data, or
# a VM died or logged a kernel report.
mapfile -t bad <"$out/failures.txt"
if [ ${#bad[@]} -gt 0 ] || [ ${#vm_failed[@]} -gt 0 ]; then
	echo
	echo "bench: FAILED: ${#bad[@]} run(s) stalled or delivered wrong data," \
		"${#vm_failed[@]} VM problem(s) (did not finish, kernel report):"
	printf '  %s\n' "${vm_failed[@]}" "${bad[@]}" | grep -v '^  $' || true
	exit 1
fi
