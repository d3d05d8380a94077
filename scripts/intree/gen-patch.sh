#!/bin/bash
# Generate the in-tree patch:  scripts/intree/gen-patch.sh [OUT]
#
# Writes OUT (default build/intree/kcm-intree.patch), a git-diff-format
# patch against Debian's linux-source-6.12 (/usr/src/linux-source-6.12.tar.xz)
# that replaces Linux's AF_KCM with ours:
#
#   net/kcm/                          our files; Linux's that we lack are deleted
#   include/net/kcm.h                 ours
#   include/uapi/linux/kcm.h          ours
#   include/trace/events/kcm.h        new: our tracepoints
#   Documentation/networking/kcm.rst  ours, without the section about the
#                                     out-of-tree build (README.md covers it)
#   tools/testing/selftests/net/kcm/  new: the selftests (kselftest, lib.mk),
#                                     without bench/ (not a kselftest)
#   tools/testing/selftests/Makefile  TARGETS += net/kcm
#   tools/lib/kcm/, tools/kcmstat/    new, if present: what selftests build with
#
# net/kcm/Makefile gets an in-tree header comment (ours also describes the
# out-of-tree build); everything after the comment is taken unchanged up to
# its out-of-tree part, which is replaced by the definition of KCM_VERSION
# (MODULE_VERSION), dkms.conf's PACKAGE_VERSION written as a value; so is
# the part of tools/kcmstat/Makefile that reads it from dkms.conf.
# Nothing of the out-of-tree build goes in (dkms.conf, scripts/, samples/,
# the top-level Makefile); a last check fails if an added line still
# mentions it.
#
# The diff is made with git in a scratch directory holding only the
# affected paths (no commit anywhere: two tree objects are compared).
# SIGNOFF="Name <mail>" adds a Signed-off-by line to the patch description.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/intree/kcm-intree.patch}
tarball=/usr/src/linux-source-6.12.tar.xz
top=linux-source-6.12
selftests=tools/testing/selftests

if [ ! -f "$tarball" ]; then
	echo "intree: $tarball missing, installing linux-source-6.12 with apt"
	[ "$(id -u)" -eq 0 ] || { echo "intree: must be root to install it" >&2; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-source-6.12
fi

version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$root/dkms.conf")
[ -n "$version" ] || { echo "intree: no PACKAGE_VERSION in dkms.conf" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
scratch=$(mktemp -d "$(dirname "$out")/gen.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
tree=$scratch/tree
mkdir -p "$tree"

# --- Linux's side: only the paths the patch touches -----------------------------
tar -xf "$tarball" -C "$tree" --strip-components=1 \
	"$top/net/kcm" "$top/include/net/kcm.h" "$top/include/uapi/linux/kcm.h" \
	"$top/Documentation/networking/kcm.rst" "$top/$selftests/Makefile"
if [ -e "$tree/$selftests/net/kcm" ]; then
	echo "intree: linux-source-6.12 already has $selftests/net/kcm" >&2
	exit 1
fi

# git on the scratch tree only, without anyone's configuration.
sg() {
	GIT_DIR=$scratch/git GIT_WORK_TREE=$tree GIT_CONFIG_NOSYSTEM=1 \
		GIT_CONFIG_GLOBAL=/dev/null git "$@"
}
sg init -q
sg add -A
base=$(sg write-tree)

# --- our side --------------------------------------------------------------------
rm -rf "$tree/net/kcm"
cp -r "$root/net/kcm" "$tree/net/kcm"
cp "$root/include/net/kcm.h" "$tree/include/net/kcm.h"
cp "$root/include/uapi/linux/kcm.h" "$tree/include/uapi/linux/kcm.h"
mkdir -p "$tree/include/trace/events"
cp "$root/include/trace/events/kcm.h" "$tree/include/trace/events/kcm.h"

# net/kcm/Makefile: our own header comment, then the rules (every line from
# the first one that is neither a comment nor empty), up to its last part,
# for out-of-tree builds ("# Out of tree ..." to the end), and no blank
# line left at the end.
mk=$tree/net/kcm/Makefile
{
	echo "# SPDX-License-Identifier: GPL-2.0-only"
	echo "#"
	echo "# Makefile for the Kernel Connection Multiplexor (AF_KCM)."
	echo "#"
	echo
	awk '/^# Out of tree/ { exit }
	     !started && /^(#|[[:space:]]*$)/ { next }
	     /^[[:space:]]*$/ { blank++; next }
	     { started = 1; while (blank) { print ""; blank-- } print }' \
		"$root/net/kcm/Makefile"
	echo
	echo "# The version of this implementation (MODULE_VERSION)."
	echo "ccflags-y += -DKCM_VERSION='\"$version\"'"
} >"$mk"
# Every C file of ours must be built: kbuild would silently skip one.
for c in "$tree"/net/kcm/*.c; do
	o=$(basename "$c" .c).o
	grep -qE "(^|[[:space:]=])$o([[:space:]]|$)" "$mk" ||
		{ echo "intree: net/kcm/Makefile does not build $o" >&2; exit 1; }
done

# The documentation, minus its section about building this project out of
# tree: from the title "Building, installing, testing" (and its underline)
# to the next title or the end.
awk '
	function is_rule(s) { return s ~ /^(=+|-+|~+|\^+)$/ }
	{ line[NR] = $0 }
	END {
		skip = 0
		for (i = 1; i <= NR; i++) {
			if (line[i] == "Building, installing, testing" && is_rule(line[i + 1]))
				skip = 1
			else if (skip && i > 1 && is_rule(line[i + 1]) && line[i] != "" &&
				 !is_rule(line[i]))
				skip = 0
			if (!skip)
				out[++n] = line[i]
		}
		while (n > 0 && out[n] == "")	# no blank lines at the end
			n--
		for (i = 1; i <= n; i++)
			print out[i]
	}' "$root/Documentation/networking/kcm.rst" >"$tree/Documentation/networking/kcm.rst"

# The selftests, and the tools they build with (tools/lib/kcm, tools/kcmstat,
# when present): the files in git's index (committed, added, or marked with
# `git add -N`), plus the kselftest files settings, config and .gitignore
# even when untracked.  Other untracked files are work in progress of
# someone: left out, and named.
for d in "$selftests/net/kcm" tools/lib/kcm tools/kcmstat; do
	[ -d "$root/$d" ] || continue
	(cd "$root" && git ls-files --cached -z -- "$d"
	 git ls-files --others --exclude-standard -z -- "$d/settings" "$d/config" "$d/.gitignore") |
	while IFS= read -r -d '' f; do
		[ -f "$root/$f" ] || continue	# deleted, not yet committed
		# The benchmark is no kselftest; it belongs to `make bench`.
		case $f in "$selftests/net/kcm/bench/"*) continue ;; esac
		mkdir -p "$(dirname "$tree/$f")"
		cp -p "$root/$f" "$tree/$f"
	done
	(cd "$root" && git ls-files --others --exclude-standard -- "$d") | while read -r f; do
		[ -e "$tree/$f" ] || echo "intree: note: $f is untracked, not in the patch"
	done
done

# tools/kcmstat/Makefile: its version from dkms.conf (the comment above
# KCM_VERSION to the endif after it) becomes the value.
km=$tree/tools/kcmstat/Makefile
if [ -f "$km" ]; then
	awk -v v="$version" '
		/^# What kcmstat --version prints/ { skip = 1 }
		skip && /^endif$/ {
			print "# What kcmstat --version prints: the version of this implementation."
			print "KCM_VERSION ?= " v
			skip = 0
			next
		}
		!skip { print }' "$km" >"$km.new" && mv "$km.new" "$km"
	grep -qx "KCM_VERSION ?= $version" "$km" ||
		{ echo "intree: could not write the version into tools/kcmstat/Makefile" >&2; exit 1; }
fi

# The kselftest runner: TARGETS += net/kcm, in order among the net/ targets.
sm=$tree/$selftests/Makefile
grep -qx 'TARGETS += net/kcm' "$sm" || awk '
	!done && /^TARGETS \+= net\// && $3 > "net/kcm" { print "TARGETS += net/kcm"; done = 1 }
	{ print }' "$sm" >"$sm.new" && mv "$sm.new" "$sm"
grep -qx 'TARGETS += net/kcm' "$sm" ||
	{ echo "intree: could not add net/kcm to $selftests/Makefile" >&2; exit 1; }

sg add -A
new=$(sg write-tree)

# --- the patch -------------------------------------------------------------------
diff() { sg diff --no-color --no-ext-diff --no-renames "$@" "$base" "$new"; }
{
	echo "From: kcm <kcm@localhost>"
	echo "Subject: [PATCH] net: kcm: replace AF_KCM with the kcm implementation"
	echo
	echo "Replace the Kernel Connection Multiplexor (net/kcm/, include/net/kcm.h)"
	echo "with an independent implementation that keeps the user ABI of"
	echo "include/uapi/linux/kcm.h (ioctls, socket options, errnos and the"
	echo "/proc/net/kcm* columns), fixes the bugs listed in"
	echo "Documentation/networking/kcm.rst and adds the KCM_RECV_ORIGIN and"
	echo "KCM_ORIGIN extensions.  Add its selftests as"
	echo "tools/testing/selftests/net/kcm/."
	if [ -n "${SIGNOFF:-}" ]; then
		echo
		echo "Signed-off-by: $SIGNOFF"
	fi
	echo "---"
	diff --stat=72 --summary
	echo
	diff
} >"$out.tmp"

# Nothing about the out-of-tree build may be left in what the patch adds.
leaks=$(grep -nE '^\+' "$out.tmp" | grep -iE \
	'out[- ]of[- ]tree|dkms|NOSTDINC|build-module|README\.md|make (check|run|install|bench)\b' || true)
if [ -n "$leaks" ]; then
	echo "intree: the patch still refers to the out-of-tree build:" >&2
	echo "$leaks" >&2
	rm -f "$out.tmp"
	exit 1
fi
mv "$out.tmp" "$out"
echo "  PATCH   ${out#"$root"/} ($(grep -c '^diff --git' "$out") files)"
