#!/bin/bash
# Turn one VM's logs into one line per test case:
#   scripts/vm/parse.sh build/vm/KVER-LANE
# prints lines "ok - NAME", "not ok - NAME # reason", "ok - NAME # SKIP reason",
# and "ok - NAME # XFAIL reason" for a case that failed as expected (TAP's
# "not ok ... # TODO": a Linux bug, on lane linux).
# Reads tap.log (ttyS1, see init.sh for the kcm-vm: lines), console.log and
# qemu.rc (exit status of `timeout qemu`: 124 or 137 = timed out) and
# expected-tests (the test binaries put in the VM: each must have run).
set -euo pipefail

dir=${1:?usage: $0 VMDIR}
qemu_rc=$(cat "$dir/qemu.rc" 2>/dev/null || echo 1)

touch "$dir/tap.log" "$dir/expected-tests"
tr -d '\r' <"$dir/tap.log" | awk -v qemu_rc="$qemu_rc" -v expected="$dir/expected-tests" '
function emit(ok, name, note) {
	print (ok ? "ok" : "not ok") " - " name (note != "" ? " # " note : "")
}
# Close the current test binary: one "NAME: run" failure if it did not run to
# completion (crash, hang, VM death, plan mismatch, bad exit status).
function finish_binary(rc, died,    why) {
	why = ""
	if (died) why = "the VM stopped while it ran"
	else if (timedout) why = "killed by the per-binary timeout"
	if (plan < 0 && count == 0) why = why (why ? "; " : "") "no TAP output"
	else if (plan < 0) why = why (why ? "; " : "") "no 1..N plan"
	else if (plan != count) why = why (why ? "; " : "") "plan 1.." plan " but " count " results"
	# kselftest exit codes: 0 pass, 4 skip; 1 goes with "not ok" lines.
	if (!died && !timedout && rc != 0 && rc != 4 && (nfail == 0 || why != "")) {
		why = why (why ? "; " : "") "exit status " rc
		if (rc > 128) why = why " (signal " rc - 128 ")"
	}
	if (why != "")
		emit(0, cur ": run", why)
	else if (plan == 0)
		emit(1, cur, "SKIP " (skipall != "" ? skipall : "no test cases"))
	cur = ""
}
/^kcm-vm: begin / { begun = 1; next }
/^kcm-vm: insmod / {
	loaded = ($3 == 0)
	emit($3 == 0, "insmod kcm.ko", $3 == 0 ? "" : "insmod failed (" $3 ")")
	next
}
/^kcm-vm: test / {
	cur = $3; plan = -1; count = 0; nfail = 0; timedout = 0; skipall = ""
	nbinaries++
	ran[cur] = 1
	next
}
/^kcm-vm: timeout / { timedout = 1; next }
/^kcm-vm: exit / { if (cur != "") finish_binary($4, 0); next }
/^kcm-vm: rmmod / { emit($3 == 0, "rmmod kcm", $3 == 0 ? "" : "module still in use"); next }
/^kcm-vm: end/ { ended = 1; next }
cur != "" && /^1\.\.[0-9]+/ {
	plan = substr($1, 4) + 0
	if (match($0, /# *[Ss][Kk][Ii][Pp]/)) skipall = substr($0, RSTART + RLENGTH)
	sub(/^ +/, "", skipall)
	next
}
cur != "" && /^(not )?ok( |$)/ {
	ok = ($1 == "ok")
	line = $0
	sub(/^(not )?ok +[0-9]* *(- *)?/, "", line)
	note = ""
	if (match(line, / *# */)) {
		note = substr(line, RSTART + RLENGTH)
		line = substr(line, 1, RSTART - 1)
	}
	# "# SKIP reason" marks a skip, "# TODO reason" an expected failure;
	# any other directive is kept as a note.
	if (note ~ /^[Ss][Kk][Ii][Pp]/) note = "SKIP" substr(note, 5)
	if (!ok && note ~ /^TODO/) { ok = 1; note = "XFAIL" substr(note, 5) }
	count++
	if (!ok) nfail++
	emit(ok, cur ": " (line == "" ? "test " count : line), note)
}
END {
	if (cur != "") finish_binary(-1, 1)
	while ((getline name < expected) > 0)
		if (begun && !(name in ran)) emit(0, name ": run", "never ran")
	if (!begun) emit(0, "VM booted", "no output from /init")
	else if (loaded && nbinaries == 0) emit(0, "test binaries", "build/tests/ has no executable")
	if (qemu_rc == 124 || qemu_rc == 137) emit(0, "VM finished", "timed out, killed")
	else if (!ended) emit(0, "VM finished", "stopped before /init was done (panic?)")
	else if (qemu_rc != 0) emit(0, "VM finished", "qemu exit status " qemu_rc)
}'

# Splats: panic_on_warn turns most of them into a panic, but not all.
if splat=$("$(dirname "$0")/kernel-report.sh" "$dir/console.log"); then
	echo "not ok - kernel log clean # ${splat//#/}"
else
	echo "ok - kernel log clean"
fi
