/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kTLS keys for the tests that key sockets themselves (no handshake):
 * kcm_ktls, kcm_soak and kcm_fuzz.  Both ends of a connection are keyed
 * with the keys of the same suite and tag.  Not a test binary of its own:
 * linked into those through KCM_EXTRA_SRCS_<binary> (Makefile).
 */
#ifndef KTLS_KEYS_H
#define KTLS_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <linux/tls.h>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

struct ktls_suite {
	const char *name;
	uint16_t version;	/* TLS_1_2_VERSION, TLS_1_3_VERSION */
	uint16_t cipher;	/* TLS_CIPHER_AES_GCM_128, ..._CHACHA20_POLY1305 */
};

extern const struct ktls_suite tls12_gcm, tls13_gcm, tls12_chacha,
	tls13_chacha;

/*
 * The keys of one direction of one connection, made from tag: the key,
 * the 12-byte nonce base (AES-GCM's 4-byte salt, then its 8-byte IV) and
 * the first record's number, which is not 0 (a layer that ignored it
 * would fail).
 */
struct ktls_keys {
	unsigned char key[32];
	size_t key_len;
	unsigned char iv[12];
	uint64_t seq;
};

void ktls_keys_make(const struct ktls_suite *s, uint8_t tag,
		    struct ktls_keys *k);
void put_be64(unsigned char *p, uint64_t v);

/*
 * Installs the tls ULP on fd if it has none, and keys direction dir
 * (TLS_TX or TLS_RX) with suite s and the keys of tag.  ktls_key() fails
 * the case on an error (skips it if the kernel has no tls ULP);
 * ktls_key_try() returns 0 or the errno, for the fuzzer, whose keying
 * may fail (a socket closed or reset under it, keyed twice, ...).
 */
void ktls_key(int fd, int dir, const struct ktls_suite *s, uint8_t tag);
int ktls_key_try(int fd, int dir, const struct ktls_suite *s, uint8_t tag);

#endif
