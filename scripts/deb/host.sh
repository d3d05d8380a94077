# Sourced by scripts/deb/build.sh and check.sh: packages installed for a
# while, and the host given back as it was.
#
#   host_lock             one such script at a time on this host (flock on
#                         /usr/src, as scripts/dkms-check.sh takes it; no
#                         lock file is left behind); a script run by one
#                         that holds it (make deb in check.sh) goes on
#   host_packages FILE    write the state and version of every package
#                         installed or with its configuration files left
#   host_install PKG...   apt-get install those not installed (apt-get
#                         update first when one is missing)
#   host_restore FILE     purge every package installed since FILE was
#                         written (remove only, for one that had its
#                         configuration files left then); 0 if the state of
#                         every package is FILE's again, else 1 and the
#                         difference on stderr
# They print "<tag>: ..." lines with $host_tag.

host_tag=${host_tag:-deb}

host_lock() {
	[ "${KCM_HOST_LOCK_HELD:-}" = 1 ] && return 0
	exec 8</usr/src
	if ! flock -n 8; then
		echo "$host_tag: another DKMS or package check runs on this host; waiting"
		flock 8
	fi
	export KCM_HOST_LOCK_HELD=1
}

host_packages() {	# not the packages dpkg only remembers (un, pn)
	dpkg-query -W -f='${binary:Package} ${db:Status-Abbrev} ${Version}\n' |
		awk '$2 != "un" && $2 != "pn"' | sort >"$1"
}

# SUDO_FORCE_REMOVE: README's install pulls in sudo (dkms recommends it) on
# a host without it, and sudo's prerm refuses its removal while root has no
# password, failing the whole purge (dkms left half removed).
host_apt() {
	DEBIAN_FRONTEND=noninteractive SUDO_FORCE_REMOVE=yes \
		apt-get -y -qq -o DPkg::Lock::Timeout=300 "$@"
}

host_install() {
	local p missing=()
	for p in "$@"; do
		[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "$host_tag: installing ${missing[*]} (removed after)"
	local log
	log=$(mktemp)
	if ! { host_apt update && host_apt install --no-install-recommends \
			"${missing[@]}"; } >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		rm -f "$log"
		return 1
	fi
	rm -f "$log"
}

host_restore() {
	local before=$1 now p state purge=() remove=()
	local -A was=()
	now=$(mktemp)
	host_packages "$now"
	while read -r p state _; do
		was[$p]=$state
	done <"$before"
	# Installed now ("ii", or half-way: any state but not-installed and
	# config-files), and not installed in $before.
	while read -r p state _; do
		[ "$state" = rc ] && continue
		case ${was[$p]:-un} in
		ii) ;;
		rc) remove+=("$p") ;;
		*) purge+=("$p") ;;
		esac
	done <"$now"
	if [ ${#purge[@]} -gt 0 ]; then
		echo "$host_tag: purging what was installed for the run: ${purge[*]}"
		host_apt purge "${purge[@]}" >/dev/null 2>&1
	fi
	if [ ${#remove[@]} -gt 0 ]; then
		echo "$host_tag: removing what was installed for the run: ${remove[*]}"
		host_apt remove "${remove[@]}" >/dev/null 2>&1
	fi
	host_packages "$now"
	if ! cmp -s "$before" "$now"; then
		echo "$host_tag: the packages differ from before the run:" >&2
		diff "$before" "$now" | grep '^[<>]' >&2
		rm -f "$now"
		return 1
	fi
	rm -f "$now"
}
