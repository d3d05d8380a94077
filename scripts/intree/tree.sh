#!/bin/bash
# Apply the in-tree patch to a fresh linux-source-6.12:
#   scripts/intree/tree.sh [PATCH [DIR]]
#
# PATCH defaults to build/intree/kcm-intree.patch, DIR to build/intree/linux.
# DIR is removed and unpacked anew from /usr/src/linux-source-6.12.tar.xz
# (about a minute).  The patch must apply both ways a developer would use:
# `patch -p1` is tried first (dry run, no fuzz), then `git apply` applies it.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
patch=$(realpath "${1:-$root/build/intree/kcm-intree.patch}")
dir=${2:-$root/build/intree/linux}
tarball=/usr/src/linux-source-6.12.tar.xz

[ -f "$patch" ] || { echo "intree: $patch missing (make intree-patch)" >&2; exit 1; }
[ -f "$tarball" ] || { echo "intree: $tarball missing (make intree-patch installs it)" >&2; exit 1; }

echo "  UNPACK  ${tarball##*/} -> ${dir#"$root"/}"
rm -rf "$dir" "$dir.tmp"
mkdir -p "$dir.tmp"
tar -xf "$tarball" -C "$dir.tmp" --strip-components=1
mv "$dir.tmp" "$dir"

echo "  APPLY   ${patch#"$root"/} (patch -p1 --dry-run, then git apply)"
(cd "$dir" && patch -p1 --dry-run --fuzz=0 --quiet <"$patch" >/dev/null) ||
	{ echo "intree: patch -p1 does not apply to a fresh tree" >&2; exit 1; }
# Outside any repository: git apply works on plain directories.
(cd "$dir" && GIT_CEILING_DIRECTORIES=$(dirname "$dir") git apply --whitespace=nowarn "$patch") ||
	{ echo "intree: git apply failed on a fresh tree" >&2; exit 1; }
