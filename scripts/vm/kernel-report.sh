#!/bin/bash
# The first kernel report in a VM's console log:
#   scripts/vm/kernel-report.sh CONSOLE_LOG
# prints its line and exits 0; exits 1 if there is none (or no log: a VM
# that never ran is reported by its caller).  Reports: WARNING, BUG (soft
# lockups too), Oops, panics, general protection faults, KASAN, UBSAN,
# kmemleak, lockdep, hung tasks, hard lockups, RCU stalls, list and
# refcount corruption, and any "Call Trace".  Shared by the suite
# (scripts/vm/parse.sh) and the benchmark (scripts/bench/bench.sh).
set -euo pipefail

log=${1:?usage: $0 CONSOLE_LOG}
[ -f "$log" ] || exit 1
pattern='WARNING:|BUG:|Oops|Kernel panic|general protection fault|KASAN|UBSAN|kmemleak'
pattern+='|possible circular locking|possible recursive locking|inconsistent lock state'
pattern+='|suspicious RCU usage|INFO: task|blocked for more than|soft lockup|hard LOCKUP'
pattern+='|rcu_sched detected stalls|rcu: INFO|Call Trace|list_(add|del) corruption|refcount_t'
# awk reads the file itself: with grep -m1 at the end of a pipe, the
# writer's SIGPIPE would fail the pipeline and hide the report.
awk -v re="$pattern" '{ sub(/\r$/, "") } $0 ~ re { print; found = 1; exit } END { exit !found }' "$log"
