#!/bin/bash
# Install the Debian packages that building and testing need, if missing.
# Idempotent; prints nothing when everything is installed.
set -euo pipefail

packages=(
	make gcc xz-utils cpio busybox-static clang libbpf-dev qemu-system-x86
	libssl-dev					# kcm_ktls, samples/kcm/kcm_tls_*: OpenSSL
	linux-image-amd64 linux-headers-amd64		# the 6.1 series
	linux-image-6.12-amd64 linux-headers-6.12-amd64
)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: must run as root to install packages" >&2
	exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
