# Sourced by scripts/deb/check.sh and scripts/dkms-check.sh: a block of
# README.md's install section, taken from the file and run word for word.
#
#   readme_block MARK NAME  write the fenced block after README.md's line
#                           that starts with "<!-- MARK" to $log/NAME.sh;
#                           1 (and a "not ok" line) if there is none
#   run_block NAME          run $log/NAME.sh as root in the tree, command by
#                           command (bash -e -o pipefail -x, no stdin), its
#                           output in $log/NAME.log; prints "ok" and the
#                           commands (comments dropped), or "not ok" and the
#                           log's last lines, and returns 1
#   linux_module_back WHEN KVER...
#                           for each kernel, modinfo -k must find Linux's
#                           kcm.ko again (kernel/net/kcm/) and not ours;
#                           WHEN says after what, in the "not ok" line
# The sourcing script defines ok and bad (its "<tag>: ok|not ok" lines),
# $root (the tree) and $log (a directory under it), and runs in $root.
# shellcheck shell=bash disable=SC2154

readme_block() {
	awk -v mark="<!-- $1" '
		index($0, mark) == 1 { armed = 1; next }
		armed && !inside && /^```/ { inside = 1; next }
		inside && /^```/ { exit }
		inside { print; found = 1 }
		END { exit !found }' "$root/README.md" >"$log/$2.sh" && return 0
	bad "README.md has no block marked '<!-- $1'"
	return 1
}

run_block() {
	local t0=$SECONDS
	if DEBIAN_FRONTEND=noninteractive bash -e -o pipefail -x "$log/$1.sh" \
			</dev/null >"$log/$1.log" 2>&1; then
		ok "README's $1 block ran ($((SECONDS - t0)) s): $(grep -v '^\s*$' "$log/$1.sh" |
			sed 's/[[:space:]]*#.*//' | paste -sd';' | sed 's/;/; /g')"
	else
		bad "README's $1 block failed (${log#"$root"/}/$1.log):"
		tail -n 15 "$log/$1.log" | sed 's/^/    /'
		return 1
	fi
}

linux_module_back() {
	local when=$1 k file
	shift
	for k in "$@"; do
		file=$(modinfo -k "$k" -F filename kcm 2>/dev/null)
		case $file in
		*/kernel/net/kcm/kcm.ko*) ok "$k: Linux's module is back ($file)" ;;
		*) bad "$k: modinfo -k finds '$file' after $when" ;;
		esac
	done
}
