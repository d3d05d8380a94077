#!/bin/bash
# Puts the modules the tests and the benchmark need besides kcm.ko into an
# initramfs being built:  scripts/vm/modules.sh KVER STAGE
#
# veth and netem (kcm_link's shaped link), tls and the ciphers kTLS asks
# the crypto API for (kcm_ktls, the benchmark's kTLS cases):
# AES-GCM (gcm, its ghash and ctr, and crypto_null, which 6.12's gcm
# needs) and ChaCha20-Poly1305.  Debian builds them as modules; init.sh
# loads whatever is in /modules/, in the order of modules.order, which
# lists a module after those it depends on.  A kernel without them as
# modules (the debug kernel has veth and netem built in) gets none.
set -euo pipefail
kver=$1
stage=$2
mkdir -p "$stage/modules"
for mod in veth sch_netem tls crypto_null gf128mul ghash-generic ctr gcm \
	   libchacha chacha_generic libpoly1305 poly1305_generic \
	   chacha20poly1305; do
	ko=$(find "/usr/lib/modules/$kver/kernel" -name "$mod.ko*" 2>/dev/null | head -n1 || true)
	case $ko in
	*.ko)	cp "$ko" "$stage/modules/$mod.ko" ;;
	*.xz)	xz -dc "$ko" >"$stage/modules/$mod.ko" ;;
	*.zst)	zstd -qdc "$ko" >"$stage/modules/$mod.ko" ;;
	*.gz)	gzip -dc "$ko" >"$stage/modules/$mod.ko" ;;
	*)	continue ;;
	esac
	echo "$mod" >>"$stage/modules/modules.order"
done
