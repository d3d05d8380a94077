#!/bin/bash
# The man pages:  scripts/check-man.sh build/man/PAGE...   (make check-man)
#
# For each page (as make man writes it, the version filled in):
#  - man --warnings and groff -ww (all warnings, tbl run first) format it
#    without a word on stderr, at 80 columns in UTF-8, as a user reads it;
#  - no @PLACEHOLDER@ is left, and its .TH line has the version (make
#    version);
#  - libkcm.3 names (NAME) and declares (SYNOPSIS) every function of
#    tools/lib/kcm/libkcm.h;
#  - the program of its EXAMPLES section (scripts/man-example.sh) compiles
#    with -Wall -Wextra -Werror against this tree: our <linux/kcm.h> and
#    libkcm (build/lib/libkcm.a, tools/lib/kcm/libkcm.h), as its package
#    installs them.
# Prints "man: ok|not ok - what" lines; exits 1 if one failed.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
failed=0
ok() { echo "man: ok - $*"; }
bad() { echo "man: not ok - $*"; failed=$((failed + 1)); }

[ $# -gt 0 ] || { bad "no pages given"; exit 1; }
version=$(make -s --no-print-directory -C "$root" version)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for page in "$@"; do
	name=$(basename "$page")
	out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
	[ -z "$out" ] && ok "$name: man --warnings" ||
		bad "$name: man --warnings: $(echo "$out" | head -n 5 | tr '\n' ' ')"
	out=$(LC_ALL=C.UTF-8 groff -t -ww -man -Tutf8 -z "$page" 2>&1)
	[ -z "$out" ] && ok "$name: groff -ww" ||
		bad "$name: groff -ww: $(echo "$out" | head -n 5 | tr '\n' ' ')"
	left=$(grep -n '@[A-Z_]*@' "$page" | head -n 3)
	[ -z "$left" ] || bad "$name: placeholders left: $left"
	grep -qE "^\.TH [^ ]+ [1-8] [0-9-]+ \"kcm $version\"" "$page" &&
		ok "$name: .TH says kcm $version" ||
		bad "$name: .TH is '$(grep -m1 '^\.TH' "$page")', not ... \"kcm $version\""

	if [ "$name" = libkcm.3 ]; then
		missing=
		names=$(sed -n '/^\.SH NAME/,/^\.SH LIBRARY/p' "$page")
		synopsis=$(sed -n '/^\.SH SYNOPSIS/,/^\.SH DESCRIPTION/p' "$page")
		for f in $(sed -n 's/^[a-z].*[ *]\(libkcm_[a-z_]*\)(.*/\1/p' \
				"$root/tools/lib/kcm/libkcm.h"); do
			grep -qw -- "$f" <<<"$names" && grep -q -- "$f(" <<<"$synopsis" ||
				missing="$missing $f"
		done
		[ -z "$missing" ] && ok "$name: every function of libkcm.h in NAME and SYNOPSIS" ||
			bad "$name: not in NAME or SYNOPSIS:$missing"
	fi

	src=$tmp/${name//./_}.c
	"$root/scripts/man-example.sh" "$page" >"$src" 2>/dev/null || continue
	if gcc -Wall -Wextra -Werror -I"$root/include/uapi" -I"$root/tools/lib/kcm" \
		-o "$tmp/example" "$src" "$root/build/lib/libkcm.a" >"$tmp/cc.log" 2>&1; then
		ok "$name: the EXAMPLES program compiles"
	else
		bad "$name: the EXAMPLES program: $(head -n 5 "$tmp/cc.log" | tr '\n' ' ')"
	fi
done
echo "man: $failed failed"
[ "$failed" -eq 0 ]
