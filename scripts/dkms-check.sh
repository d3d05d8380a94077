#!/bin/bash
# The DKMS install from the tree, as README says:  scripts/dkms-check.sh
# (make check-dkms; make check without TESTS)
#
# Runs, word for word, the two blocks of README.md's "With DKMS, from the
# tree" that are marked "<!-- check-dkms: install" and "<!-- check-dkms:
# remove" (each the fenced block after its mark; scripts/readme-block.sh,
# as scripts/deb/check.sh runs its own): the tracked files copied to
# /usr/src/kcm-VERSION and dkms install for the kernel the block names
# (6.12: make check-deb's dpkg -i has DKMS build and install for 6.1 and
# 6.12 already), then dkms remove --all and the copy removed.  After the
# install block, modinfo -k KVER must find the module in
# /lib/modules/KVER/updates/dkms/ with our version (dkms.conf's
# PACKAGE_VERSION, which net/kcm/Makefile makes the module's
# MODULE_VERSION); after the remove block, Linux's module must be the one
# modinfo finds for every kernel we build for, and nothing of ours may be
# left in /usr/src, /var/lib/dkms/kcm or updates/dkms/.
# Installs Debian's dkms first if it is missing, and purges it again at the
# end, and then /var/lib/dkms too if that was not there before (dkms leaves
# its module signing key there).  Refuses to run if kcm is in DKMS already.
# Prints "dkms: ok|not ok - what" lines; exits 1 if one failed.
#
# One such check at a time on a host, from any work tree: this one and
# scripts/deb/check.sh take a lock on /usr/src (flock on the directory: no
# lock file left behind), since they install the same module and use the
# same /usr/src/kcm-VERSION.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
failed=0
ok() { echo "dkms: ok - $*"; }
bad() { echo "dkms: not ok - $*"; failed=$((failed + 1)); }

[ "$(id -u)" -eq 0 ] || { echo "dkms: must run as root" >&2; exit 1; }
cd "$root" || exit 1
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' dkms.conf)
[ -n "$version" ] || { bad "no PACKAGE_VERSION in dkms.conf"; exit 1; }
ok "version $version (dkms.conf)"
mapfile -t kvers < <(scripts/kernels.sh)
[ ${#kvers[@]} -gt 0 ] || { bad "no 6.1/6.12 kernel with headers"; exit 1; }
log=$root/build/dkms-check
rm -rf "$log"
mkdir -p "$log"

# --- README's blocks (scripts/readme-block.sh) ---------------------------------
. "$root/scripts/readme-block.sh"
readme_block "check-dkms: install" install || exit 1
readme_block "check-dkms: remove" remove || exit 1
# The kernel the install block builds for: one we build for, with headers.
kver=$(sed -n 's/^dkms install .* -k \([^ ]*\).*/\1/p' "$log/install.sh")
if ! printf '%s\n' "${kvers[@]}" | grep -qxF -- "$kver"; then
	bad "README's install block builds for '$kver', not one of this host's kernels with headers (${kvers[*]})"
	exit 1
fi

# --- the host before ------------------------------------------------------------
exec 8</usr/src
flock -n 8 || { echo "dkms: another DKMS or package check runs on this host; waiting"; flock 8; }

src=/usr/src/kcm-$version
if [ -e "$src" ] || [ -e /var/lib/dkms/kcm ] ||
		{ command -v dkms >/dev/null && dkms status kcm 2>/dev/null | grep -q .; }; then
	bad "kcm is in DKMS already ($src, /var/lib/dkms/kcm or dkms status kcm): not touching it"
	exit 1
fi
installed_dkms=0
had_var_lib_dkms=0
[ -e /var/lib/dkms ] && had_var_lib_dkms=1

cleanup() {
	local rc=$?
	if command -v dkms >/dev/null && dkms status kcm 2>/dev/null | grep -q .; then
		dkms remove "kcm/$version" --all >/dev/null 2>&1
	fi
	rm -rf "$src"
	for k in "${kvers[@]}"; do
		depmod "$k" 2>/dev/null
	done
	if [ "$installed_dkms" = 1 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq --purge \
			dkms >/dev/null 2>&1
		[ "$had_var_lib_dkms" = 1 ] || rm -rf /var/lib/dkms
	fi
	echo "dkms: $failed failed"
	[ "$failed" -eq 0 ] && [ "$rc" -eq 0 ] && exit 0
	exit 1
}
trap cleanup EXIT

if ! command -v dkms >/dev/null; then
	echo "dkms: installing Debian's dkms for the check (removed after)"
	installed_dkms=1
	{ apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends dkms; } >"$log/apt.log" 2>&1 ||
		{ bad "apt-get install dkms (${log#"$root"/}/apt.log)"; exit 1; }
fi

# --- install, as README says ------------------------------------------------
run_block install || exit 1
file=$(modinfo -k "$kver" -F filename kcm 2>/dev/null)
ver=$(modinfo -k "$kver" -F version kcm 2>/dev/null)
case $file in
/lib/modules/"$kver"/updates/dkms/kcm.ko*|/usr/lib/modules/"$kver"/updates/dkms/kcm.ko*)
	ok "$kver: modinfo -k finds $file" ;;
*)
	bad "$kver: modinfo -k finds '$file', not updates/dkms/kcm.ko*" ;;
esac
if [ "$ver" = "$version" ]; then
	ok "$kver: modinfo -k version $ver"
else
	bad "$kver: modinfo -k version '$ver', not $version"
fi

# --- remove, as README says ----------------------------------------------------
run_block remove
left=$(ls -d /usr/src/kcm-* /var/lib/dkms/kcm /lib/modules/*/updates/dkms/kcm.ko* 2>/dev/null)
if [ -z "$left" ]; then
	ok "nothing of ours left: no /usr/src/kcm-*, /var/lib/dkms/kcm, updates/dkms/kcm.ko*"
else
	bad "left after README's remove block: $(echo "$left" | tr '\n' ' ')"
fi
linux_module_back "the remove block" "${kvers[@]}"
