#!/bin/bash
# The DKMS install, as README tells a user to do it, checked for every
# kernel we build for:  scripts/dkms-check.sh   (make check-dkms; make check)
#
# Installs Debian's dkms if it is missing (and removes it again at the end),
# copies the tree's tracked files to /usr/src/kcm-VERSION, runs dkms add,
# build and install for each kernel, checks that the module landed in
# updates/dkms/ and that modinfo names it with our version, then dkms remove
# --all: Linux's module is the one modinfo finds again, and nothing of ours
# is left in /usr/src, /var/lib/dkms or /lib/modules.  The version is
# dkms.conf's PACKAGE_VERSION, which net/kcm/Makefile makes the module's
# MODULE_VERSION (modinfo must show it).
# Prints "dkms: ok|not ok - what" lines; exits 1 if one failed.
#
# One such check at a time on a host, from any work tree: this one and
# scripts/deb/check.sh take a lock on /usr/src (flock on the directory: no
# lock file left behind), since they install the same packages and use the
# same /usr/src/kcm-VERSION.  When the check
# installed dkms, it also removes /var/lib/dkms if that was not there
# before (dkms leaves its module signing key there).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
failed=0
ok() { echo "dkms: ok - $*"; }
bad() { echo "dkms: not ok - $*"; failed=$((failed + 1)); }

version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$root/dkms.conf")
[ -n "$version" ] || { bad "no PACKAGE_VERSION in dkms.conf"; exit 1; }
ok "version $version (dkms.conf)"

mapfile -t kvers < <("$root/scripts/kernels.sh")
[ ${#kvers[@]} -gt 0 ] || { bad "no 6.1/6.12 kernel with headers"; exit 1; }

exec 8</usr/src
flock -n 8 || { echo "dkms: another DKMS or package check runs on this host; waiting"; flock 8; }

installed_dkms=0
had_var_lib_dkms=0
[ -e /var/lib/dkms ] && had_var_lib_dkms=1
if ! command -v dkms >/dev/null; then
	echo "dkms: installing Debian's dkms for the check (removed after)"
	apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends dkms >/dev/null ||
		{ bad "apt-get install dkms"; exit 1; }
	installed_dkms=1
fi

src=/usr/src/kcm-$version
if [ -e "$src" ] || dkms status kcm 2>/dev/null | grep -q .; then
	bad "kcm is in DKMS already ($src, or dkms status kcm): not touching it"
	exit 1
fi

cleanup() {
	dkms remove "kcm/$version" --all >/dev/null 2>&1
	rm -rf "$src"
	for k in "${kvers[@]}"; do
		depmod "$k" 2>/dev/null
	done
	if [ "$installed_dkms" = 1 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq --purge \
			dkms >/dev/null 2>&1
		[ "$had_var_lib_dkms" = 1 ] || rm -rf /var/lib/dkms
	fi
}
trap cleanup EXIT

mkdir -p "$src"
(cd "$root" && git ls-files -z | xargs -0 cp --parents -t "$src") ||
	{ bad "copy the tree to $src"; exit 1; }
if dkms add "kcm/$version" >/tmp/dkms-add.log 2>&1; then
	ok "dkms add kcm/$version"
else
	bad "dkms add kcm/$version: $(tail -n 3 /tmp/dkms-add.log | tr '\n' ' ')"
	exit 1
fi

for k in "${kvers[@]}"; do
	log=/var/lib/dkms/kcm/$version/build/make.log
	if ! dkms build "kcm/$version" -k "$k" >/tmp/dkms-build.log 2>&1; then
		bad "$k: dkms build: $(tail -n 5 "$log" /tmp/dkms-build.log 2>/dev/null | tr '\n' ' ')"
		continue
	fi
	ok "$k: dkms build"
	if ! dkms install "kcm/$version" -k "$k" >/tmp/dkms-install.log 2>&1; then
		bad "$k: dkms install: $(tail -n 3 /tmp/dkms-install.log | tr '\n' ' ')"
		continue
	fi
	file=$(modinfo -k "$k" -F filename kcm 2>/dev/null)
	ver=$(modinfo -k "$k" -F version kcm 2>/dev/null)
	case $file in
	/lib/modules/"$k"/updates/dkms/kcm.ko*|/usr/lib/modules/"$k"/updates/dkms/kcm.ko*)
		ok "$k: installed $file" ;;
	*)
		bad "$k: modinfo finds '$file', not updates/dkms/kcm.ko" ;;
	esac
	[ "$ver" = "$version" ] && ok "$k: modinfo version $ver" ||
		bad "$k: modinfo version '$ver', not $version"
done

if dkms remove "kcm/$version" --all >/tmp/dkms-remove.log 2>&1; then
	ok "dkms remove kcm/$version --all"
else
	bad "dkms remove: $(tail -n 3 /tmp/dkms-remove.log | tr '\n' ' ')"
fi
rm -rf "$src"
for k in "${kvers[@]}"; do
	file=$(modinfo -k "$k" -F filename kcm 2>/dev/null)
	case $file in
	*/updates/*) bad "$k: ours is still what modinfo finds ($file)" ;;
	*/kernel/net/kcm/kcm.ko*) ok "$k: Linux's module is back ($file)" ;;
	*) bad "$k: modinfo finds '$file' after remove" ;;
	esac
done
[ -e /var/lib/dkms/kcm ] && bad "/var/lib/dkms/kcm left behind"
echo "dkms: $failed failed"
[ "$failed" -eq 0 ]
