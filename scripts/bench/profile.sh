#!/bin/bash
# `make profile`: one kcm_bench case under perf in the bench VM, for each
# lane, and the report on this terminal (and in build/bench/profile/).
#   PROFILE="-w stream -v kcm -s 64 -c 4 -t 2 -d 0.3" scripts/bench/profile.sh
# Environment: KERNELS (default 6.12), BENCH_LANES (default ours), PROFILE
# (kcm_bench arguments), PROFILE_FOCUS (symbols whose callees to show,
# e.g. "kcm_rx_recvmsg kcm_tx_sendmsg"), PROFILE_PIN (1: kcm_bench pins its
# server and client thread i to CPU i, KCM_BENCH_PIN), BENCH_ICOUNT (default 1: instruction-counted time,
# so that samples fall in proportion to guest instructions).
# Needs perf on the host (Debian's linux-perf: installed if missing); the
# guest runs the host's perf binary with its libraries.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
profile=${PROFILE:--w stream -v kcm -s 64 -c 4 -t 2 -d 0.3}
read -ra series <<<"${KERNELS:-6.12}"
read -ra lanes <<<"${BENCH_LANES:-ours}"
export BENCH_ICOUNT=${BENCH_ICOUNT:-1}
mapfile -t kvers < <("$root/scripts/kernels.sh" "${series[@]}")

if ! command -v perf >/dev/null; then
	echo "profile: perf missing, installing linux-perf with apt-get"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-perf
fi

work=$(mktemp -d /tmp/kcm-profile.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$root/build/bench/bin/kcm_bench" "$work/kcm_bench"
out=$root/build/bench/profile
mkdir -p "$out"
for kver in "${kvers[@]}"; do
	for lane in "${lanes[@]}"; do
		[ "$lane" = ours ] && cp "$root/build/$kver/kcm.ko" "$work/$kver-ours.ko"
		echo "profile: $kver/$lane: kcm_bench $profile"
		BENCH_PROFILE=$profile "$root/scripts/bench/run-vm.sh" "$work" "$kver" "$lane" || true
		tr -d '\r' <"$work/vm/$kver-$lane/bench.log" | grep -v '^kcm-vm: ' |
			tee "$out/$kver-$lane.txt"
	done
done
