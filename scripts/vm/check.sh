#!/bin/bash
# Run the suite in one VM per kernel x lane and print the combined TAP 13
# report; the last line is "N passed, M failed, K skipped, X expected failures
# (Linux bugs)".
#   KERNELS="6.1 6.12" KCM="ours linux" scripts/vm/check.sh
# KERNELS: kernel series (default: every installed 6.1 and 6.12).
# KCM:     lanes, ours and/or linux (default both).
# VM_JOBS: VMs booted at once (default 1).
# TESTS, VM_TESTS, VM_TIMEOUT, TEST_TIMEOUT: see run-vm.sh.
# Exits non-zero if any case failed or nothing ran.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
read -ra lanes <<<"${KCM:-ours linux}"
read -ra series <<<"${KERNELS:-}"
mapfile -t kvers < <("$root/scripts/kernels.sh" "${series[@]}")
max_vms=${VM_JOBS:-1}

if [ ${#kvers[@]} -eq 0 ]; then
	echo "check: no kernel found for '${KERNELS:-6.1 6.12}'" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

# "6.12" names a kernel in the report, unless two of that series are installed.
label() {
	local short
	short=$(echo "$1" | cut -d. -f1,2)
	if [ "$(printf '%s\n' "${kvers[@]}" | grep -c "^$short\.")" -gt 1 ]; then
		echo "$1"
	else
		echo "$short"
	fi
}

# Boot one VM and print a one-line progress report for it.
one_vm() {
	local kver=$1 lane=$2 dir=$root/build/vm/$1-$2 start=$SECONDS out
	if ! out=$("$root/scripts/vm/run-vm.sh" check "$kver" "$lane" 2>&1); then
		echo "$out" >&2
		mkdir -p "$dir"
		echo "not ok - VM setup # run-vm.sh failed: ${out//$'\n'/ }" >"$dir/results.txt"
	fi
	echo "# $(label "$kver")/$lane: $(grep -c '^ok' "$dir/results.txt") ok," \
		"$(grep -c '^not ok' "$dir/results.txt") not ok ($((SECONDS - start)) s," \
		"logs in build/vm/$kver-$lane/)"
}

# One suite at a time per work tree: VMs of two runs would share build/vm/.
mkdir -p "$root/build/vm"
exec 9>"$root/build/vm/.lock"
if ! flock -n 9; then
	echo "# another scripts/vm/check.sh runs in this tree; waiting for it"
	flock 9
fi

echo "# booting ${#kvers[@]} kernel(s) x ${#lanes[@]} lane(s): ${kvers[*]} / ${lanes[*]}"
for kver in "${kvers[@]}"; do
	for lane in "${lanes[@]}"; do
		rm -f "$root/build/vm/$kver-$lane/results.txt"
		one_vm "$kver" "$lane" &
		# Keep at most $max_vms VMs running.
		while [ "$(jobs -rp | wc -l)" -ge "$max_vms" ]; do wait -n || true; done
	done
done
wait

# Combined report, in kernel x lane order.
all=$root/build/vm/results.txt
for kver in "${kvers[@]}"; do
	for lane in "${lanes[@]}"; do
		res=$root/build/vm/$kver-$lane/results.txt
		if [ -f "$res" ]; then cat "$res"; else echo "not ok - results # ${res#"$root"/} missing"; fi |
			sed -E "s|^((not )?ok) - |\1 - $(label "$kver")/$lane |"
	done
done >"$all"

total=$(wc -l <"$all")
echo "TAP version 13"
echo "1..$total"
awk '{ sub(/ - /, " " NR " - "); print }' "$all"
failed=$(grep -c '^not ok' "$all" || true)
skipped=$(grep -cE '^ok .*# SKIP' "$all" || true)
xfailed=$(grep -cE '^ok .*# XFAIL' "$all" || true)
passed=$((total - failed - skipped - xfailed))
if [ "$failed" -gt 0 ]; then
	echo "# failed:"
	grep '^not ok' "$all" | sed 's/^/#   /'
fi
echo "$passed passed, $failed failed, $skipped skipped, $xfailed expected failures (Linux bugs)"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
