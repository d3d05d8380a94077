#!/bin/bash
# Results of the in-tree VM as TAP:  scripts/intree/parse.sh VMDIR
#
# Reads VMDIR/tap.log (run_kselftest.sh's output and the kcm-intree: lines
# of init.sh), console.log and qemu.rc.  run_kselftest.sh nests each test
# binary's TAP under "# " and ends it with its own "ok N selftests: net/kcm:
# NAME" line.  Printed: one line per test case ("NAME: case"), a
# "NAME: run" failure for a binary that crashed, timed out or whose plan and
# results disagree, checks that KCM was built in, that the VM finished and
# that the kernel log is clean; last "N passed, M failed".  Skipped cases
# are neither; a comment line before the last counts them.
set -euo pipefail

dir=${1:?usage: $0 VMDIR}
qemu_rc=$(cat "$dir/qemu.rc" 2>/dev/null || echo 1)
touch "$dir/tap.log" "$dir/console.log"

# Kernel splats.  panic_on_warn makes most of them fatal, not all.
splats='WARNING:|BUG:|Oops|Kernel panic|KASAN|UBSAN|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|INFO: task .* blocked|kmemleak|general protection fault|Call Trace|list_add corruption|list_del corruption|refcount_t:|watchdog: BUG|rcu_sched detected stalls|rcu: INFO'
splat=$(tr -d '\r' <"$dir/console.log" | grep -m1 -E "$splats" || true)

tr -d '\r' <"$dir/tap.log" | awk -v qemu_rc="$qemu_rc" -v splat="$splat" '
function emit(ok, name, note) {
	n++
	if (note ~ /^[Ss][Kk][Ii][Pp]/) skipped++
	else if (ok) passed++
	else failed++
	print (ok ? "ok " : "not ok ") n " - " name (note != "" ? " # " note : "")
}
function close_binary(ok, note,    why) {
	why = ""
	if (!ok && note ~ /TIMEOUT/) why = "timed out (" note ")"
	else if (!ok && nfail == 0) why = "failed" (note != "" ? " (" note ")" : "") " with no failing case"
	if (plan < 0) why = why (why ? "; " : "") "no 1..N plan"
	else if (plan != count) why = why (why ? "; " : "") "plan 1.." plan " but " count " results"
	if (why != "") emit(0, cur ": run", why)
	else if (plan == 0) emit(1, cur, "SKIP no test cases")
	cur = ""
	nbin++
}
BEGIN { print "TAP version 13" }
/^kcm-intree: begin / { begun = 1; next }
/^kcm-intree: builtin / {
	emit($3 == "yes", "AF_KCM built in (/proc/net/kcm, no kcm module)", "")
	next
}
/^kcm-intree: end / { ended = 1; next }
!cur && /^1\.\.[0-9]+$/ { expected = substr($0, 4) + 0; next }
/^# selftests: / {
	if (cur != "") close_binary(0, "no result line")
	cur = $NF; plan = -1; count = 0; nfail = 0
	next
}
cur != "" && /^# 1\.\.[0-9]+/ { plan = substr($2, 4) + 0; next }
cur != "" && /^# (not )?ok( |$)/ {
	line = substr($0, 3)
	ok = (line ~ /^ok/)
	sub(/^(not )?ok +[0-9]* *(- *)?/, "", line)
	note = ""
	if (match(line, / *# */)) {
		note = substr(line, RSTART + RLENGTH)
		line = substr(line, 1, RSTART - 1)
	}
	if (note ~ /^[Ss][Kk][Ii][Pp]/) note = "SKIP" substr(note, 5)
	count++
	if (!ok) nfail++
	emit(ok, cur ": " (line == "" ? "case " count : line), note)
	next
}
cur != "" && /^(not )?ok [0-9]+ selftests: / {
	note = ""
	if (match($0, / # /)) note = substr($0, RSTART + 3)
	close_binary($1 == "ok", note)
	next
}
END {
	if (cur != "") emit(0, cur ": run", "the VM stopped while it ran")
	if (!begun) emit(0, "VM booted", "no output from /init")
	else if (nbin == 0) emit(0, "kselftests ran", "no test binary reported")
	else if (expected && nbin != expected)
		emit(0, "kselftests ran", expected " binaries planned, " nbin " reported")
	if (qemu_rc == 124 || qemu_rc == 137) emit(0, "VM finished", "timed out, killed")
	else if (!ended) emit(0, "VM finished", "stopped before /init was done (panic?)")
	else if (qemu_rc != 0) emit(0, "VM finished", "qemu exit status " qemu_rc)
	else emit(1, "VM finished", "")
	gsub(/#/, "", splat)
	emit(splat == "", "kernel log clean", splat)
	print "1.." n
	if (skipped) print "# " skipped " skipped"
	print passed + 0 " passed, " failed + 0 " failed"
}'
