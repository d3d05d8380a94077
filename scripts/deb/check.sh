#!/bin/bash
# The Debian packages, installed as README says:  scripts/deb/check.sh
# (make check-deb; make check without TESTS)
#
# Runs, word for word, the two blocks of README.md's install section that
# are marked "<!-- check-deb: install" and "<!-- check-deb: remove" (each
# the fenced block after its mark; scripts/readme-block.sh): make deb,
# dkms installed with apt-get, both packages with dpkg -i, and at the end
# dpkg --purge.  In between it checks what they put where:
#  - kcm-dkms: /usr/src/kcm-VERSION holds dkms.conf, net/kcm/ and include/
#    as the tree has them, and nothing else; dpkg -i had DKMS build and
#    install the module for every kernel we build for (scripts/kernels.sh):
#    dkms status says so, and modinfo finds it in updates/dkms/ with our
#    version;
#  - kcm-tools: exactly kcmstat, libkcm.a, libkcm.pc, libkcm.h, our
#    linux/kcm.h, the three man pages and libkcm(3)'s links, and the
#    package's doc files; kcmstat on the PATH prints "kcmstat VERSION";
#    pkg-config knows libkcm at VERSION; the example programs of the
#    installed libkcm(3) and kcm(7) compile with pkg-config's flags only;
#    man finds kcm(7), kcmstat(8), libkcm(3) and libkcm_socket(3);
#  - after the purge: no kcm package, nothing in /usr/src/kcm-*,
#    /var/lib/dkms/kcm or any updates/dkms/, Linux's module is the one
#    modinfo finds.
# Then the host is given back as it was: the packages installed for the run
# (dkms, unless it was there) are purged, /var/lib/dkms goes if it was not
# there, and the package states and the files under /usr/src,
# /var/lib/dkms, /lib/modules/*/updates, /usr/include/kcm and /etc/dkms
# must be those from before.  Refuses to run if kcm is installed already.
# Prints "deb: ok|not ok - what" lines; exits 1 if one failed.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
host_tag=deb
. "$root/scripts/deb/host.sh"
failed=0
ok() { echo "deb: ok - $*"; }
bad() { echo "deb: not ok - $*"; failed=$((failed + 1)); }

[ "$(id -u)" -eq 0 ] || { echo "deb: must run as root" >&2; exit 1; }
cd "$root" || exit 1
version=$(make -s --no-print-directory version)
[ -n "$version" ] || { echo "deb: no version (make version)" >&2; exit 1; }
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
mapfile -t kvers < <(scripts/kernels.sh)
[ ${#kvers[@]} -gt 0 ] || { echo "deb: no 6.1/6.12 kernel with headers" >&2; exit 1; }
log=$root/build/deb-check
rm -rf "$log"
mkdir -p "$log"

# --- README's blocks (scripts/readme-block.sh) ---------------------------------
. "$root/scripts/readme-block.sh"
readme_block "check-deb: install" install || exit 1
readme_block "check-deb: remove" remove || exit 1

# --- the host before ------------------------------------------------------------
host_lock
trees() {
	find /usr/src /var/lib/dkms /lib/modules/*/updates /usr/include/kcm \
		/etc/dkms 2>/dev/null | sort
}
packages_before=$log/packages.before
host_packages "$packages_before"
trees >"$log/trees.before"
had_var_lib_dkms=0
[ -e /var/lib/dkms ] && had_var_lib_dkms=1

for p in kcm-dkms kcm-tools; do
	if grep -q "^$p " "$packages_before"; then
		echo "deb: $p is installed on this host: not touching it" >&2
		exit 1
	fi
done
if [ -e "/usr/src/kcm-$version" ] || [ -e /var/lib/dkms/kcm ]; then
	echo "deb: /usr/src/kcm-$version or /var/lib/dkms/kcm exists: not touching it" >&2
	exit 1
fi

cleanup() {
	local rc=$?
	if dpkg-query -W -f='${db:Status-Abbrev}\n' kcm-dkms kcm-tools 2>/dev/null |
			grep -qv '^un'; then
		dpkg --purge kcm-tools kcm-dkms >/dev/null 2>&1
	fi
	if command -v dkms >/dev/null && dkms status kcm 2>/dev/null | grep -q .; then
		dkms remove "kcm/$version" --all >/dev/null 2>&1
	fi
	if ! host_restore "$packages_before"; then
		bad "the host's packages are not as before the check"
	fi
	[ "$had_var_lib_dkms" = 1 ] || rm -rf /var/lib/dkms
	for k in $(scripts/kernels.sh); do
		depmod "$k" 2>/dev/null
	done
	trees >"$log/trees.after"
	if cmp -s "$log/trees.before" "$log/trees.after"; then
		ok "the host is as before: packages, and /usr/src, /var/lib/dkms, /lib/modules/*/updates, /usr/include/kcm, /etc/dkms"
	else
		bad "files differ from before the check:"
		diff "$log/trees.before" "$log/trees.after" | grep '^[<>]' | head -n 20 | sed 's/^/    /'
	fi
	echo "deb: $failed failed"
	[ "$failed" -eq 0 ] && [ "$rc" -eq 0 ] && exit 0
	exit 1
}
trap cleanup EXIT

# --- install, as README says ------------------------------------------------
run_block install || exit 1

for p in kcm-dkms kcm-tools; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$p" 2>/dev/null)
	[ "$st" = "ii  $version" ] && ok "$p $version installed" ||
		bad "$p: dpkg says '$st', not installed at $version"
done

# kcm-dkms: the module's source as the tree has it, and nothing else.
src=/usr/src/kcm-$version
(cd "$src" 2>/dev/null && find . -type f | sed 's|^\./||' | sort) >"$log/src.files"
{ echo dkms.conf; git ls-files net/kcm include; } | sort >"$log/src.expected"
if cmp -s "$log/src.files" "$log/src.expected"; then
	ok "kcm-dkms: $src holds dkms.conf, net/kcm/ and include/ ($(wc -l <"$log/src.files") files)"
else
	bad "kcm-dkms: $src differs from the tree's dkms.conf, net/kcm/, include/:"
	diff "$log/src.expected" "$log/src.files" | grep '^[<>]' | head -n 10 | sed 's/^/    /'
fi
for f in $(cat "$log/src.expected"); do
	cmp -s "$f" "$src/$f" || { bad "kcm-dkms: $src/$f is not the tree's $f"; break; }
done
others=$(dpkg -L kcm-dkms | grep -vE "^(/\.|$src(/.*)?|/usr/src|/usr(/share(/doc(/kcm-dkms(/(copyright|changelog\.gz))?)?)?)?)$")
[ -z "$others" ] && ok "kcm-dkms: nothing outside $src but its doc files" ||
	bad "kcm-dkms: also installs $(echo "$others" | tr '\n' ' ')"

# dpkg -i built and installed the module for every kernel with headers
# (the running kernel of the machine that runs make check has none: then
# DKMS's postinst takes every kernel in /lib/modules).
status=$(dkms status kcm 2>/dev/null)
for k in "${kvers[@]}"; do
	if grep -qx "kcm/$version, $k, [^:]*: installed" <<<"$status"; then
		ok "dkms status: kcm/$version, $k: installed"
	else
		bad "dkms status kcm does not say kcm/$version, $k installed: $(echo "$status" | tr '\n' ' ')"
	fi
	file=$(modinfo -k "$k" -F filename kcm 2>/dev/null)
	ver=$(modinfo -k "$k" -F version kcm 2>/dev/null)
	case $file in
	*/updates/dkms/kcm.ko*) ok "$k: modinfo finds $file, version $ver" ;;
	*) bad "$k: modinfo finds '$file', not updates/dkms/kcm.ko" ;;
	esac
	[ "$ver" = "$version" ] || bad "$k: modinfo version '$ver', not $version"
done

# kcm-tools: these files, and only these (besides directories).
man3=/usr/share/man/man3
expected=(
	/usr/bin/kcmstat
	"/usr/lib/$multiarch/libkcm.a"
	"/usr/lib/$multiarch/pkgconfig/libkcm.pc"
	/usr/include/kcm/libkcm.h
	/usr/include/kcm/linux/kcm.h
	/usr/share/man/man7/kcm.7.gz
	/usr/share/man/man8/kcmstat.8.gz
	"$man3/libkcm.3.gz"
	/usr/share/doc/kcm-tools/copyright
	/usr/share/doc/kcm-tools/changelog.gz
)
for f in $(sed -n 's/^[a-z].*[ *]\(libkcm_[a-z_]*\)(.*/\1/p' tools/lib/kcm/libkcm.h); do
	expected+=("$man3/$f.3.gz")
done
dpkg -L kcm-tools | while read -r f; do [ -d "$f" ] || echo "$f"; done |
	sort >"$log/tools.files"
printf '%s\n' "${expected[@]}" | sort >"$log/tools.expected"
if cmp -s "$log/tools.files" "$log/tools.expected"; then
	ok "kcm-tools: $(wc -l <"$log/tools.files") files, as expected: $(grep -v "^$man3/libkcm_" "$log/tools.files" | tr '\n' ' ')+ $(grep -c "^$man3/libkcm_" "$log/tools.files") libkcm_*(3) links"
else
	bad "kcm-tools: its files differ from the expected ones:"
	diff "$log/tools.expected" "$log/tools.files" | grep '^[<>]' | head -n 10 | sed 's/^/    /'
fi
cmp -s /usr/include/kcm/linux/kcm.h include/uapi/linux/kcm.h ||
	bad "kcm-tools: /usr/include/kcm/linux/kcm.h is not include/uapi/linux/kcm.h"
cmp -s /usr/include/kcm/libkcm.h tools/lib/kcm/libkcm.h ||
	bad "kcm-tools: /usr/include/kcm/libkcm.h is not tools/lib/kcm/libkcm.h"

out=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin kcmstat --version 2>&1)
[ "$out" = "kcmstat $version" ] && ok "kcmstat --version: $out" ||
	bad "kcmstat --version says '$out', not 'kcmstat $version'"

pcver=$(pkg-config --modversion libkcm 2>&1)
[ "$pcver" = "$version" ] && ok "pkg-config --modversion libkcm: $pcver" ||
	bad "pkg-config --modversion libkcm says '$pcver', not $version"
flags=$(pkg-config --cflags --libs libkcm 2>&1)
scripts/man-example.sh "$man3/libkcm.3.gz" >"$log/hello.c" ||
	bad "no example program in $man3/libkcm.3.gz"
# shellcheck disable=SC2086 # pkg-config's flags are words
if gcc -Wall -Wextra -Werror -o "$log/hello" "$log/hello.c" $flags >"$log/hello.log" 2>&1 &&
		nm "$log/hello" | grep -q ' T libkcm_attach_framing$'; then
	ok "libkcm(3)'s example compiles and links with libkcm.a: cc hello.c $flags"
else
	bad "libkcm(3)'s example with '$flags': $(head -n 5 "$log/hello.log" | tr '\n' ' ')"
fi
scripts/man-example.sh /usr/share/man/man7/kcm.7.gz >"$log/kcm_hello.c" ||
	bad "no example program in kcm.7.gz"
cflags=$(pkg-config --cflags libkcm)
# shellcheck disable=SC2086
if gcc -Wall -Wextra -Werror -o "$log/kcm_hello" "$log/kcm_hello.c" $cflags \
		>"$log/kcm_hello.log" 2>&1; then
	ok "kcm(7)'s example (our linux/kcm.h: SIOCKCMATTACHLEN, KCM_RECV_ORIGIN) compiles with $cflags"
else
	bad "kcm(7)'s example with '$cflags': $(head -n 5 "$log/kcm_hello.log" | tr '\n' ' ')"
fi

for page in "7 kcm kcm" "8 kcmstat kcmstat" "3 libkcm libkcm" "3 libkcm_socket libkcm"; do
	read -r sec name file <<<"$page"
	where=$(man -w "$sec" "$name" 2>/dev/null)
	[ "$where" = "/usr/share/man/man$sec/$file.$sec.gz" ] &&
		ok "man $sec $name: $where" || bad "man -w $sec $name finds '$where'"
done

# --- remove, as README says ----------------------------------------------------
run_block remove
for p in kcm-dkms kcm-tools; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)
	case $st in ""|un*|pn*) ;; *) bad "$p is still known to dpkg as '$st' after the purge" ;; esac
done
left=$(ls -d /usr/src/kcm-* /var/lib/dkms/kcm /lib/modules/*/updates/dkms/kcm.ko* \
	/usr/include/kcm /usr/bin/kcmstat 2>/dev/null)
[ -z "$left" ] && ok "after dpkg --purge: no kcm-*, no /usr/src/kcm-*, /var/lib/dkms/kcm, updates/dkms/kcm.ko*, /usr/include/kcm, kcmstat" ||
	bad "left after dpkg --purge: $(echo "$left" | tr '\n' ' ')"
linux_module_back "the purge" "${kvers[@]}"
