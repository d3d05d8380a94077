#!/bin/bash
# The Debian packages:  scripts/deb/build.sh   (make deb)
#
# Copies the tree's tracked files (git ls-files: what is committed or
# added, with the work tree's changes) to build/deb/kcm-VERSION/, adds
# scripts/deb/debian/ as debian/, writes debian/changelog with dkms.conf's
# version and the date of HEAD's commit (dpkg takes SOURCE_DATE_EPOCH from
# it: two builds of one commit give the same files), and runs
# dpkg-buildpackage -b there (debian/rules says what goes where).  Result:
#   build/deb/kcm-dkms_VERSION_all.deb     the module's source, for DKMS
#   build/deb/kcm-tools_VERSION_ARCH.deb   kcmstat, libkcm, the man pages
# The build needs Debian's debhelper and dh-dkms: installed for it if
# missing, and purged after (with what apt installed along), so that the
# host keeps the packages it had; DEB_KEEP_DEPS=1 keeps them.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
host_tag=deb
. "$root/scripts/deb/host.sh"

version=$(make -s --no-print-directory -C "$root" version)
[ -n "$version" ] || { echo "deb: no version (make version)" >&2; exit 1; }
arch=$(dpkg --print-architecture)
out=$root/build/deb
stage=$out/kcm-$version

[ "$(id -u)" -eq 0 ] || { echo "deb: must run as root (it installs the build's packages)" >&2; exit 1; }
host_lock
before=$(mktemp)
host_packages "$before"
restore() {
	local rc=$?
	if [ "${DEB_KEEP_DEPS:-0}" != 1 ]; then
		host_restore "$before" || rc=1
	fi
	rm -f "$before"
	exit "$rc"
}
trap restore EXIT
host_install debhelper dh-dkms dpkg-dev build-essential ||
	{ echo "deb: could not install the build's packages" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$stage"
(cd "$root" && git ls-files -z | while IFS= read -r -d '' f; do
	[ -e "$f" ] && printf '%s\0' "$f"	# deleted, not yet committed: skip
done | xargs -0 cp -P --parents -t "$stage")
cp -r "$root/scripts/deb/debian" "$stage/debian"
{
	echo "kcm ($version) unstable; urgency=medium"
	echo
	echo "  * Built by make deb from the kcm tree at" \
		"$(cd "$root" && git describe --always --dirty)."
	echo
	echo " -- kcm <kcm@localhost>  $(cd "$root" && git log -1 --format=%aD)"
} >"$stage/debian/changelog"

echo "  DEB     kcm-dkms and kcm-tools $version (log: build/deb/build.log)"
if ! (cd "$stage" && dpkg-buildpackage -b --no-sign) >"$out/build.log" 2>&1; then
	tail -n 30 "$out/build.log" >&2
	echo "deb: dpkg-buildpackage failed (build/deb/build.log)" >&2
	exit 1
fi
for deb in "$out/kcm-dkms_${version}_all.deb" "$out/kcm-tools_${version}_$arch.deb"; do
	[ -f "$deb" ] || { echo "deb: no ${deb#"$root"/}" >&2; exit 1; }
	echo "  DEB     ${deb#"$root"/}"
done
