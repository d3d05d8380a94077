// SPDX-License-Identifier: GPL-2.0
/* kTLS keys shared by kcm_ktls, kcm_soak and kcm_fuzz: see ktls_keys.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "kcm_test.h"
#include "ktls_keys.h"

const struct ktls_suite tls12_gcm = {
	"TLS 1.2 AES-GCM-128", TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128
};
const struct ktls_suite tls13_gcm = {
	"TLS 1.3 AES-GCM-128", TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128
};
const struct ktls_suite tls12_chacha = {
	"TLS 1.2 CHACHA20-POLY1305", TLS_1_2_VERSION,
	TLS_CIPHER_CHACHA20_POLY1305
};
const struct ktls_suite tls13_chacha = {
	"TLS 1.3 CHACHA20-POLY1305", TLS_1_3_VERSION,
	TLS_CIPHER_CHACHA20_POLY1305
};

void ktls_keys_make(const struct ktls_suite *s, uint8_t tag,
		    struct ktls_keys *k)
{
	size_t i;

	k->key_len = s->cipher == TLS_CIPHER_AES_GCM_128 ? 16 : 32;
	for (i = 0; i < sizeof(k->key); i++)
		k->key[i] = (unsigned char)(tag * 37 + i * 11 + 1);
	for (i = 0; i < sizeof(k->iv); i++)
		k->iv[i] = (unsigned char)(tag * 13 + i * 7 + 3);
	k->seq = 1000 + tag;
}

void put_be64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

/* The ULP, then the keys; -1 with errno, saying which failed in *what. */
static int ktls_do_key(int fd, int dir, const struct ktls_suite *s,
		       uint8_t tag, const char **what)
{
	union {
		struct tls12_crypto_info_aes_gcm_128 gcm;
		struct tls12_crypto_info_chacha20_poly1305 chacha;
	} info;
	struct ktls_keys k;
	socklen_t len;

	*what = "TCP_ULP tls";
	if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", 3) && errno != EEXIST)
		return -1;
	ktls_keys_make(s, tag, &k);
	memset(&info, 0, sizeof(info));
	if (s->cipher == TLS_CIPHER_AES_GCM_128) {
		info.gcm.info.version = s->version;
		info.gcm.info.cipher_type = s->cipher;
		memcpy(info.gcm.salt, k.iv, 4);
		memcpy(info.gcm.iv, k.iv + 4, 8);
		memcpy(info.gcm.key, k.key, 16);
		put_be64(info.gcm.rec_seq, k.seq);
		len = sizeof(info.gcm);
	} else {
		info.chacha.info.version = s->version;
		info.chacha.info.cipher_type = s->cipher;
		memcpy(info.chacha.iv, k.iv, 12);
		memcpy(info.chacha.key, k.key, 32);
		put_be64(info.chacha.rec_seq, k.seq);
		len = sizeof(info.chacha);
	}
	*what = dir == TLS_TX ? "TLS_TX" : "TLS_RX";
	return setsockopt(fd, SOL_TLS, dir, &info, len);
}

int ktls_key_try(int fd, int dir, const struct ktls_suite *s, uint8_t tag)
{
	const char *what;

	return ktls_do_key(fd, dir, s, tag, &what) ? errno : 0;
}

void ktls_key(int fd, int dir, const struct ktls_suite *s, uint8_t tag)
{
	const char *what;

	if (!ktls_do_key(fd, dir, s, tag, &what))
		return;
	if (errno == ENOENT && !strcmp(what, "TCP_ULP tls"))
		kcm_skip("this kernel has no tls ULP");
	if (strcmp(what, "TCP_ULP tls"))
		KCM_FAIL("%s %s: %s", what, s->name, kcm_errname(errno));
	KCM_FAIL("TCP_ULP tls: %s", kcm_errname(errno));
}
