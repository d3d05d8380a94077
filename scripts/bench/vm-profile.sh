#!/bin/sh
# Runs inside the bench VM instead of vm-matrix.sh when BENCH_PROFILE is set
# (scripts/bench/profile.sh): one kcm_bench case under `perf record` with
# the cpu-clock software event over both CPUs (the only sampling event TCG
# offers), then the report: where kernel and user time goes, by symbol
# and by CPU and thread (which CPU idled, which threads moved between CPUs),
# with call chains for the top symbols, and what the symbols named in
# PROFILE_FOCUS spend their time on.  perf starts with its events disabled
# and kcm_bench enables them for its measured interval (KCM_BENCH_PERF_CTL):
# setting up and closing the connections is not in the profile.
# shellcheck disable=SC1091
. /etc/kcm-vm.conf
echo "# kcm-profile: $(uname -r) lane=$LANE: kcm_bench $BENCH_PROFILE"
# TCP's counters that differ after the run (window stalls, delayed ACKs, ...).
tcpext() {
	awk '/^TcpExt:/ { if (!h) { for (i = 2; i <= NF; i++) n[i] = $i; h = 1 }
		else for (i = 2; i <= NF; i++) print n[i], $i }' /proc/net/netstat
}
tcpext >/tmp/tcpext.before
ctxt0=$(awk '/^ctxt/ { print $2 }' /proc/stat)
mkfifo /tmp/perf.ctl /tmp/perf.ack
# shellcheck disable=SC2086
KCM_BENCH_PIN=$PROFILE_PIN KCM_BENCH_PERF_CTL=/tmp/perf.ctl,/tmp/perf.ack \
	perf record -q -a -g -e cpu-clock -F 2000 -D -1 \
	--control fifo:/tmp/perf.ctl,/tmp/perf.ack -o /tmp/perf.data -- \
	/samples/kcm_bench $BENCH_PROFILE || echo "# kcm-profile: perf record failed: $?"
echo "# context switches: $(($(awk '/^ctxt/ { print $2 }' /proc/stat) - ctxt0))"
echo "# ---- TcpExt counters that changed ----"
tcpext | awk 'NR == FNR { b[$1] = $2; next } $2 != b[$1] { print "# ", $1, $2 - b[$1] }' \
	/tmp/tcpext.before -
echo "# ---- flat profile (self time by symbol) ----"
perf report -i /tmp/perf.data --stdio --no-children --sort sym \
	--percent-limit 0.4 -g none 2>/dev/null | grep -v '^$'
echo "# ---- by module ----"
perf report -i /tmp/perf.data --stdio --no-children --sort dso -g none \
	2>/dev/null | grep -v '^$' | head -n 20
echo "# ---- by CPU and thread (srv-N, cli-N: kcm_bench's; idle is swapper) ----"
perf report -i /tmp/perf.data --stdio --no-children --sort cpu,pid,comm -g none \
	--percent-limit 1 2>/dev/null | grep -v '^$' | grep -v '^#' | head -n 30
echo "# ---- inclusive (children) ----"
perf report -i /tmp/perf.data --stdio --children --sort sym \
	--percent-limit 3 -g none 2>/dev/null | grep -v '^$' | head -n 70
echo "# ---- who calls the top symbols (caller chains, self time >= 2%) ----"
perf report -i /tmp/perf.data --stdio --no-children --sort sym \
	--percent-limit 2 -g caller,0.5,callee,function,percent 2>/dev/null |
	grep -v '^$' | head -n 400
# Callee breakdown: of the samples whose stack passes through SYM, how many
# were in SYM itself and how many under each function SYM called directly;
# then SYM's own samples by offset (objdump -d of its object maps them).
if [ -n "${PROFILE_FOCUS:-}" ]; then
	perf script -i /tmp/perf.data -F ip,sym,symoff 2>/dev/null >/tmp/stacks.txt
	for sym in $PROFILE_FOCUS; do
		echo "# ---- $sym: samples by direct callee ----"
		awk -v focus="$sym" '
		function flush() {
			if (n == 0) return
			for (i = 1; i <= n; i++) if (st[i] == focus) break
			if (i <= n) {
				total++
				by[i == 1 ? "(self)" : st[i - 1]]++
			}
			n = 0
		}
		/^[ \t]*$/ { flush(); next }
		{ n++; st[n] = $2; sub(/\+0x.*/, "", st[n]) }
		END {
			flush()
			printf "%d samples\n", total
			for (k in by) if (by[k] * 200 >= total)
				printf "%6.1f%%  %s\n", 100 * by[k] / total, k
		}' /tmp/stacks.txt | sort -rn
		echo "# ---- $sym: its own samples by offset ----"
		awk -v focus="$sym" '
		/^[ \t]*$/ { leaf = 1; next }
		leaf { leaf = 0; s = $2; if (sub(/\+0x.*/, "", s) && s == focus) { n++; at[$2]++ } }
		BEGIN { leaf = 1 }
		END {
			printf "%d samples\n", n
			for (k in at) if (at[k] * 50 >= n)
				printf "%6.1f%%  %s\n", 100 * at[k] / n, k
		}' /tmp/stacks.txt | sort -rn
	done
fi
echo "# kcm-profile: done"
