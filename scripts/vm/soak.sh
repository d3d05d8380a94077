#!/bin/bash
# `make soak`: the long form of kcm_soak on our module, one VM per kernel x
# QEMU mode, one VM at a time.
#   KERNELS="6.1 6.12" SOAK_SECS=600 scripts/vm/soak.sh
#
# Each VM runs only kcm_soak's soak_matrix case with KCM_SOAK_SECS (it
# cycles through the whole configuration matrix in a seeded order for that
# long; see tools/testing/selftests/net/kcm/kcm_soak.c) and reports runs,
# messages and configurations covered.  Modes:
#   tcg     plain TCG, two vCPUs on two host threads (as make check)
#   icount  QEMU -icount (SOAK_ICOUNT, default shift=0,sleep=off): both vCPUs
#           on one host thread, instruction-counted time, so the guest's
#           scheduling differs; with -cpu qemu64,-cx16 (SOAK_ICOUNT_CPU),
#           which keeps the guest's SLUB off the cmpxchg16b that QEMU 7.2
#           miscompiles under icount (see README, "Seen in the bench VMs").
#           Debian's 6.1 hangs under icount while bringing up its second
#           CPU, with or without -cx16 (the console, with earlyprintk,
#           stops after "x86: Booting SMP configuration:"),
#           so its icount VM has one vCPU (SOAK_ICOUNT_SMP, default 1 on
#           6.1 and 2 elsewhere).
# Under icount the guest's clock is instruction-counted (sleep=off: idle
# time is skipped): SOAK_SECS are guest seconds, not host seconds.
#
# Environment: KERNELS (default: every installed 6.1 and 6.12), SOAK_SECS
# (default 600), SOAK_MODES (default "tcg icount"), SOAK_SEED (replays a
# run order; default: a new seed per VM, printed), SOAK_RUN_MS (sending time
# of one run, default 1500), SOAK_MATRIX (e.g. "905,1178": only those
# configurations, the numbers a run prints, over and over), SOAK_ICOUNT, SOAK_ICOUNT_CPU, SOAK_ICOUNT_SMP,
# SOAK_BIN (the kcm_soak binary; default build/tests/kcm_soak, make soak
# builds its own in build/soak/bin/).
# Logs: build/soak/KVER-MODE/ (tap.log, console.log, results.txt).
# Exits non-zero if any VM failed: a stall, a lost, repeated or damaged
# message, a kernel report, or a VM that did not finish.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
read -ra series <<<"${KERNELS:-}"
read -ra modes <<<"${SOAK_MODES:-tcg icount}"
mapfile -t kvers < <("$root/scripts/kernels.sh" "${series[@]}")
secs=${SOAK_SECS:-600}
[ ${#kvers[@]} -gt 0 ] || { echo "soak: no kernel found for '${KERNELS:-6.1 6.12}'" >&2; exit 1; }
bin=${SOAK_BIN:-$root/build/tests/kcm_soak}
[ -x "$bin" ] || { echo "soak: $bin missing (make tests)" >&2; exit 1; }

# The VMs run from a private copy of the test and the modules: a make check
# in the same tree empties build/tests meanwhile.
work=$(mktemp -d /tmp/kcm-soak.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tests"
cp "$bin" "$work/tests/kcm_soak"
for kver in "${kvers[@]}"; do
	cp "$root/build/$kver/kcm.ko" "$work/$kver.ko" ||
		{ echo "soak: build/$kver/kcm.ko missing (make modules)" >&2; exit 1; }
done

env="KCM_SOAK_SECS=$secs KCM_ONLY=soak_matrix"
[ -n "${SOAK_SEED:-}" ] && env="$env KCM_SEED=$SOAK_SEED"
[ -n "${SOAK_RUN_MS:-}" ] && env="$env KCM_SOAK_RUN_MS=$SOAK_RUN_MS"
[ -n "${SOAK_MATRIX:-}" ] && env="$env KCM_SOAK_MATRIX=$SOAK_MATRIX"

failed=0
summary=()
echo "soak: ${kvers[*]} x ${modes[*]}, $secs s each, one VM at a time"
for kver in "${kvers[@]}"; do
	for mode in "${modes[@]}"; do
		dir=$root/build/soak/$kver-$mode
		case $mode in
		tcg)	qemu="" ; vm_timeout=$((secs + 600)) ;;
		icount)	smp=${SOAK_ICOUNT_SMP:-$([[ $kver == 6.1.* ]] && echo 1 || echo 2)}
			# run-vm.sh's -smp 2 comes first: the last -smp counts.
			qemu="-icount ${SOAK_ICOUNT:-shift=0,sleep=off} -cpu ${SOAK_ICOUNT_CPU:-qemu64,-cx16} -smp $smp"
			# Guest seconds: allow for a guest clock slower than the host's.
			vm_timeout=$((secs * 6 + 900)) ;;
		*)	echo "soak: mode must be tcg or icount, not '$mode'" >&2; exit 1 ;;
		esac
		t=$SECONDS
		echo "soak: $kver/$mode: booting (qemu extra: ${qemu:-none})"
		VM_DIR=$dir VM_TESTS=$work/tests VM_KO=$work/$kver.ko VM_ENV=$env \
			VM_QEMU_ARGS=$qemu VM_TIMEOUT=$vm_timeout TEST_TIMEOUT=$((secs + 300)) \
			TESTS='' "$root/scripts/vm/run-vm.sh" check "$kver" ours
		wall=$((SECONDS - t))
		res=$dir/results.txt
		line=$(tr -d '\r' <"$dir/tap.log" | grep -m1 '^# soak: ' | sed 's/^# soak: //' || true)
		seed=$(tr -d '\r' <"$dir/tap.log" | grep -m1 -o 'seed [0-9]*' || true)
		if grep -q '^not ok' "$res" || ! grep -q '^ok - kcm_soak: soak_matrix$' "$res"; then
			failed=1
			summary+=("$kver $mode: FAILED after $wall s, $seed (logs in ${dir#"$root"/}/)")
			mapfile -t bad < <(grep '^not ok' "$res" | sed 's/^/    /')
			summary+=("${bad[@]}")
			echo "soak: $kver/$mode: FAILED after $wall s, $seed"
		else
			summary+=("$kver $mode: ok, $line; $seed; host $wall s")
			echo "soak: $kver/$mode: ok, $line; host $wall s"
		fi
	done
done

echo
echo "soak summary ($secs s per VM):"
printf '  %s\n' "${summary[@]}"
[ "$failed" -eq 0 ]
