// SPDX-License-Identifier: GPL-2.0
/*
 * KCM over kTLS connections (issue 20).
 *
 * A TCP socket with the tls ULP keyed to send (TLS_TX, software kTLS) is
 * attached like any other: what a KCM socket sends on it goes out through
 * kTLS, encrypted into TLS records, each message whole and never mixed
 * with another, while the bytes the peer sends in the clear are parsed as
 * from any TCP socket.  kcm.rst, "KCM over kTLS", says what is attached
 * and what is refused.
 *
 * No handshake: the test keys both ends of a connection itself, with the
 * same key, IV and first record number.  The peer decrypts either with
 * kTLS (TLS_RX), or in user space with a record layer of its own (struct
 * utls) on OpenSSL's AES-GCM, so that kTLS is not only checked against
 * itself.  Every message is checked whole, in order, by content.
 *
 * Linux's kcm.ko sends through kTLS correctly too: the sending cases run
 * on both lanes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/tls.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "kcm_test.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

#define TLS_HDR_LEN		5
#define TLS_TAG_LEN		16
#define TLS_PAYLOAD_MAX		16384
#define TLS_TYPE_DATA		23

/* ---- keys ------------------------------------------------------------- */

struct ktls_suite {
	const char *name;
	uint16_t version;	/* TLS_1_2_VERSION, TLS_1_3_VERSION */
	uint16_t cipher;	/* TLS_CIPHER_AES_GCM_128, ..._CHACHA20_POLY1305 */
};

static const struct ktls_suite tls12_gcm = {
	"TLS 1.2 AES-GCM-128", TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128
};
static const struct ktls_suite tls13_gcm = {
	"TLS 1.3 AES-GCM-128", TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128
};
static const struct ktls_suite tls12_chacha = {
	"TLS 1.2 CHACHA20-POLY1305", TLS_1_2_VERSION,
	TLS_CIPHER_CHACHA20_POLY1305
};
static const struct ktls_suite tls13_chacha = {
	"TLS 1.3 CHACHA20-POLY1305", TLS_1_3_VERSION,
	TLS_CIPHER_CHACHA20_POLY1305
};

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

static void ktls_keys_make(const struct ktls_suite *s, uint8_t tag,
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

static void put_be64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

/* Installs the tls ULP on fd if it has none, and keys direction dir
 * (TLS_TX or TLS_RX) with suite s and the keys of tag.
 */
static void ktls_key(int fd, int dir, const struct ktls_suite *s,
		     uint8_t tag)
{
	union {
		struct tls12_crypto_info_aes_gcm_128 gcm;
		struct tls12_crypto_info_chacha20_poly1305 chacha;
	} info;
	struct ktls_keys k;
	socklen_t len;

	if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", 3) &&
	    errno != EEXIST) {
		if (errno == ENOENT)
			kcm_skip("this kernel has no tls ULP");
		KCM_FAIL("TCP_ULP tls: %s", kcm_errname(errno));
	}
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
	if (setsockopt(fd, SOL_TLS, dir, &info, len))
		KCM_FAIL("%s %s: %s", dir == TLS_TX ? "TLS_TX" : "TLS_RX",
			 s->name, kcm_errname(errno));
}

/* ---- a user-space record layer ----------------------------------------- */

/*
 * One direction of a TLS connection, read in user space: records are read
 * from the raw TCP socket and decrypted with OpenSSL; their plaintext is
 * handed out as a byte stream.
 */
struct utls {
	const struct ktls_suite *s;
	struct ktls_keys k;
	EVP_CIPHER_CTX *ctx;
	unsigned char plain[TLS_PAYLOAD_MAX + 256];
	size_t have, off;		/* plaintext not yet handed out */
	unsigned long records;
};

static void utls_init(struct utls *u, const struct ktls_suite *s,
		      uint8_t tag)
{
	memset(u, 0, sizeof(*u));
	u->s = s;
	ktls_keys_make(s, tag, &u->k);
	u->ctx = EVP_CIPHER_CTX_new();
	if (!u->ctx)
		KCM_FAIL("EVP_CIPHER_CTX_new");
}

static const EVP_CIPHER *utls_cipher(const struct utls *u)
{
	return u->s->cipher == TLS_CIPHER_AES_GCM_128 ?
	       EVP_aes_128_gcm() : EVP_chacha20_poly1305();
}

/*
 * The nonce of record u->k.seq: TLS 1.2 AES-GCM's is the salt and the
 * explicit nonce the record carries; the others' the IV XOR the record
 * number.
 */
static void utls_nonce(const struct utls *u, const unsigned char *explicit,
		       unsigned char nonce[12])
{
	unsigned char seq[8];
	int i;

	if (u->s->version == TLS_1_2_VERSION &&
	    u->s->cipher == TLS_CIPHER_AES_GCM_128) {
		memcpy(nonce, u->k.iv, 4);
		memcpy(nonce + 4, explicit, 8);
		return;
	}
	memcpy(nonce, u->k.iv, 12);
	put_be64(seq, u->k.seq);
	for (i = 0; i < 8; i++)
		nonce[4 + i] ^= seq[i];
}

/*
 * Reads and decrypts the next record into u->plain; returns its content
 * type.  Fails the case on a record that does not authenticate.
 */
static int utls_read_record(struct utls *u, int fd)
{
	unsigned char hdr[TLS_HDR_LEN], rec[TLS_PAYLOAD_MAX + 512];
	unsigned char nonce[12], aad[13];
	const unsigned char *ct = rec;
	size_t len, ct_len, aad_len;
	int type, n, fin;

	kcm_read_all(fd, hdr, sizeof(hdr));
	len = (size_t)hdr[3] << 8 | hdr[4];
	if (hdr[1] != 3 || hdr[2] != 3 || len < TLS_TAG_LEN ||
	    len > sizeof(rec))
		KCM_FAIL("record %lu: header %02x %02x %02x, length %zu",
			 u->records, hdr[0], hdr[1], hdr[2], len);
	kcm_read_all(fd, rec, len);
	type = hdr[0];
	ct_len = len - TLS_TAG_LEN;
	if (u->s->version == TLS_1_2_VERSION) {
		if (u->s->cipher == TLS_CIPHER_AES_GCM_128) {
			if (ct_len < 8)
				KCM_FAIL("record %lu: %zu bytes", u->records,
					 len);
			ct += 8;
			ct_len -= 8;
		}
		put_be64(aad, u->k.seq);
		aad[8] = (unsigned char)type;
		aad[9] = 3;
		aad[10] = 3;
		aad[11] = (unsigned char)(ct_len >> 8);
		aad[12] = (unsigned char)ct_len;
		aad_len = 13;
	} else {
		memcpy(aad, hdr, TLS_HDR_LEN);
		aad_len = TLS_HDR_LEN;
	}
	utls_nonce(u, rec, nonce);

	if (EVP_DecryptInit_ex(u->ctx, utls_cipher(u), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(u->ctx, EVP_CTRL_AEAD_SET_IVLEN, 12,
				NULL) != 1 ||
	    EVP_DecryptInit_ex(u->ctx, NULL, NULL, u->k.key, nonce) != 1 ||
	    EVP_DecryptUpdate(u->ctx, NULL, &n, aad, (int)aad_len) != 1 ||
	    EVP_DecryptUpdate(u->ctx, u->plain, &n, ct, (int)ct_len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(u->ctx, EVP_CTRL_AEAD_SET_TAG, TLS_TAG_LEN,
				(void *)(ct + ct_len)) != 1)
		KCM_FAIL("record %lu: OpenSSL refused its parameters",
			 u->records);
	fin = 0;
	if (EVP_DecryptFinal_ex(u->ctx, u->plain + n, &fin) != 1)
		KCM_FAIL("record %lu (number %llu, %zu bytes): bad tag",
			 u->records, (unsigned long long)u->k.seq, len);
	u->have = (size_t)n + fin;
	u->off = 0;
	u->k.seq++;
	u->records++;

	if (u->s->version == TLS_1_3_VERSION) {
		/* The inner type is the last byte that is not padding. */
		if (type != TLS_TYPE_DATA)
			KCM_FAIL("TLS 1.3 record %lu: outer type %d",
				 u->records, type);
		while (u->have && !u->plain[u->have - 1])
			u->have--;
		if (!u->have)
			KCM_FAIL("TLS 1.3 record %lu: no inner type",
				 u->records);
		type = u->plain[--u->have];
	}
	return type;
}

/* Reads len bytes of application data. */
static void utls_read(struct utls *u, int fd, void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len) {
		size_t n;

		while (u->off == u->have) {
			int type = utls_read_record(u, fd);

			if (type != TLS_TYPE_DATA)
				KCM_FAIL("record %lu: content type %d, not data",
					 u->records, type);
		}
		n = u->have - u->off;
		if (n > len)
			n = len;
		memcpy(p, u->plain + u->off, n);
		u->off += n;
		p += n;
		len -= n;
	}
}

/* ---- checking a stream of messages ------------------------------------ */

/*
 * Where the peer reads plaintext: a kTLS socket (or a plain one) when u is
 * NULL, else the raw socket through u.
 */
struct ktls_reader {
	int fd;
	struct utls *u;
};

static void reader_read(struct ktls_reader *r, void *buf, size_t len)
{
	if (r->u)
		utls_read(r->u, r->fd, buf, len);
	else
		kcm_read_all(r->fd, buf, len);
}

/*
 * Reads one framed test message into buf (cap bytes); checks its content;
 * returns its size, and its connection and sequence number.
 */
static size_t reader_msg(struct ktls_reader *r, unsigned char *buf,
			 size_t cap, uint32_t *conn, uint32_t *seq)
{
	size_t size;

	reader_read(r, buf, 4);
	size = ((size_t)buf[0] << 24 | buf[1] << 16 | buf[2] << 8 | buf[3]) + 4;
	if (size < KCM_MSG_MIN || size > cap)
		KCM_FAIL("a message of %zu bytes: the stream is out of step",
			 size);
	reader_read(r, buf + 4, size - 4);
	if (kcm_msg_check(buf, size, conn, seq))
		KCM_FAIL("a message of %zu bytes is damaged", size);
	return size;
}

#define KTLS_MSG_MAX	70000

/* n messages of connection conn, sequence numbers 0.., sizes[i] bytes. */
static void reader_expect(struct ktls_reader *r, uint32_t conn,
			  const size_t *sizes, int n)
{
	unsigned char *buf = kcm_xmalloc(KTLS_MSG_MAX);
	uint32_t c, s;
	int i;

	for (i = 0; i < n; i++) {
		size_t size = reader_msg(r, buf, KTLS_MSG_MAX, &c, &s);

		if (c != conn || s != (uint32_t)i || size != sizes[i])
			KCM_FAIL("message %d: %u/%u, %zu bytes; expected %u/%d, %zu",
				 i, c, s, size, conn, i, sizes[i]);
	}
	free(buf);
}

struct reader_job {
	pthread_t th;
	struct ktls_reader r;
	uint32_t conn;
	const size_t *sizes;
	int n;
};

static void *reader_job_fn(void *arg)
{
	struct reader_job *j = arg;

	reader_expect(&j->r, j->conn, j->sizes, j->n);
	return NULL;
}

static void reader_start(struct reader_job *j, int fd, struct utls *u,
			 uint32_t conn, const size_t *sizes, int n)
{
	j->r.fd = fd;
	j->r.u = u;
	j->conn = conn;
	j->sizes = sizes;
	j->n = n;
	ASSERT_EQ(pthread_create(&j->th, NULL, reader_job_fn, j), 0);
}

static void reader_join(struct reader_job *j)
{
	ASSERT_EQ(pthread_join(j->th, NULL), 0);
}

/*
 * n message sizes: mostly small, some of a few KiB, some longer than a
 * record (16 KiB) or four.
 */
static size_t *ktls_sizes(int n)
{
	size_t *sizes = kcm_xmalloc(n * sizeof(*sizes));
	uint64_t rng = kcm_seed();
	int i;

	for (i = 0; i < n; i++) {
		uint32_t r = kcm_rand(&rng);

		switch (r % 8) {
		case 0:
			sizes[i] = 16000 + r % (KTLS_MSG_MAX - 16000);
			break;
		case 1:
		case 2:
			sizes[i] = 1000 + r % 8000;
			break;
		default:
			sizes[i] = KCM_MSG_MIN + r % 300;
		}
	}
	return sizes;
}

/* Sends messages 0..n-1 of connection conn on KCM socket kcm. */
static void kcm_send_msgs(int kcm, uint32_t conn, const size_t *sizes,
			  int n)
{
	unsigned char *buf = kcm_xmalloc(KTLS_MSG_MAX);
	int i;

	for (i = 0; i < n; i++) {
		kcm_msg_build(buf, sizes[i], conn, i);
		if (send(kcm, buf, sizes[i], 0) != (ssize_t)sizes[i])
			KCM_FAIL("send of message %d (%zu bytes): %s", i,
				 sizes[i], kcm_errname(errno));
	}
	free(buf);
}

/*
 * A KCM socket with the TCP socket *tcp attached, keyed to send with s;
 * *peer is the other end, keyed to receive when by_ktls, else raw (read
 * through u).
 */
static int ktls_tx_setup(const struct ktls_suite *s, bool by_ktls,
			 struct utls *u, int *tcp, int *peer)
{
	int kcm = kcm_socket(SOCK_DGRAM);

	kcm_tcp_pair(AF_INET, tcp, peer);
	ktls_key(*tcp, TLS_TX, s, 1);
	if (by_ktls)
		ktls_key(*peer, TLS_RX, s, 1);
	else
		utls_init(u, s, 1);
	ASSERT_OK(kcm_attach(kcm, *tcp, kcm_prog_len32()));
	return kcm;
}

/* ---- sending through kTLS ------------------------------------------------ */

/*
 * 120 messages of 16 bytes to 70,000 (more than four records) sent on a
 * KCM socket reach the peer whole and in order, decrypted by kTLS or by
 * the user-space record layer.
 */
static void tx_stream(const struct ktls_suite *s, bool by_ktls)
{
	struct reader_job job;
	int kcm, tcp, peer, n = 120;
	size_t *sizes = ktls_sizes(n);
	struct utls u;

	kcm = ktls_tx_setup(s, by_ktls, &u, &tcp, &peer);
	reader_start(&job, peer, by_ktls ? NULL : &u, 7, sizes, n);
	kcm_send_msgs(kcm, 7, sizes, n);
	reader_join(&job);
	if (!by_ktls)
		KCM_LOG("%d messages in %lu records", n, u.records);
	free(sizes);
}

KCM_TEST(tx_tls12_gcm_ktls_peer)
{
	tx_stream(&tls12_gcm, true);
}

KCM_TEST(tx_tls13_gcm_ktls_peer)
{
	tx_stream(&tls13_gcm, true);
}

KCM_TEST(tx_tls12_chacha_ktls_peer)
{
	tx_stream(&tls12_chacha, true);
}

KCM_TEST(tx_tls13_chacha_ktls_peer)
{
	tx_stream(&tls13_chacha, true);
}

KCM_TEST(tx_tls12_gcm_user_peer)
{
	tx_stream(&tls12_gcm, false);
}

KCM_TEST(tx_tls13_gcm_user_peer)
{
	tx_stream(&tls13_gcm, false);
}

KCM_TEST(tx_tls13_chacha_user_peer)
{
	tx_stream(&tls13_chacha, false);
}

/*
 * Four KCM sockets of one mux send at once on its one kTLS connection:
 * the peer decrypts every message whole (none interleaved with another),
 * each sender's in its order.
 */
#define TX_SENDERS	4

struct tx_sender {
	pthread_t th;
	int kcm;
	uint32_t conn;
	const size_t *sizes;
	int n;
};

static void *tx_sender_fn(void *arg)
{
	struct tx_sender *t = arg;

	kcm_send_msgs(t->kcm, t->conn, t->sizes, t->n);
	return NULL;
}

KCM_TEST(tx_tls_senders_atomic, KCM_TIMEOUT(120))
{
	struct tx_sender snd[TX_SENDERS];
	int kcm, tcp, peer, i, n = 60, total;
	uint32_t next[TX_SENDERS] = { 0 };
	size_t *sizes = ktls_sizes(n);
	struct ktls_reader r;
	unsigned char *buf;
	struct utls u;

	kcm = ktls_tx_setup(&tls13_gcm, false, &u, &tcp, &peer);
	for (i = 0; i < TX_SENDERS; i++) {
		snd[i].kcm = i ? ASSERT_OK(kcm_clone(kcm)) : kcm;
		snd[i].conn = i;
		snd[i].sizes = sizes;
		snd[i].n = n;
		ASSERT_EQ(pthread_create(&snd[i].th, NULL, tx_sender_fn,
					 &snd[i]), 0);
	}

	r.fd = peer;
	r.u = &u;
	buf = kcm_xmalloc(KTLS_MSG_MAX);
	for (total = 0; total < TX_SENDERS * n; total++) {
		uint32_t c, s;
		size_t size = reader_msg(&r, buf, KTLS_MSG_MAX, &c, &s);

		if (c >= TX_SENDERS || s != next[c] || size != sizes[s])
			KCM_FAIL("message %d: sender %u, number %u, %zu bytes",
				 total, c, s, size);
		next[c]++;
	}
	for (i = 0; i < TX_SENDERS; i++)
		ASSERT_EQ(pthread_join(snd[i].th, NULL), 0);
	ASSERT_ERRNO(recv(peer, buf, 1, MSG_DONTWAIT), EAGAIN);
	free(buf);
	free(sizes);
}

/*
 * Backpressure through kTLS: with the peer not reading, non-blocking sends
 * fill the connection and the KCM socket until EAGAIN; once the peer
 * reads, the write-space wake-ups (TCP's, through kTLS's) let the rest go
 * out, and every message arrives.
 */
KCM_TEST(tx_tls_backpressure, KCM_TIMEOUT(120))
{
	int kcm, tcp, peer, i, n = 400, queued = -1, bufsize = 8192;
	size_t *sizes = kcm_xmalloc(n * sizeof(*sizes));
	unsigned char *buf = kcm_xmalloc(KTLS_MSG_MAX);
	struct reader_job job;

	for (i = 0; i < n; i++)
		sizes[i] = 3000 + i % 7 * 100;
	kcm_tcp_pair(AF_INET, &tcp, &peer);
	ASSERT_OK(setsockopt(tcp, SOL_SOCKET, SO_SNDBUF, &bufsize,
			     sizeof(bufsize)));
	ASSERT_OK(setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &bufsize,
			     sizeof(bufsize)));
	ktls_key(tcp, TLS_TX, &tls12_gcm, 2);
	ktls_key(peer, TLS_RX, &tls12_gcm, 2);
	kcm = kcm_socket(SOCK_DGRAM);
	ASSERT_OK(kcm_attach(kcm, tcp, kcm_prog_len32()));

	for (i = 0; i < n; i++) {
		kcm_msg_build(buf, sizes[i], 3, i);
		if (send(kcm, buf, sizes[i], MSG_DONTWAIT) < 0) {
			ASSERT_EQ(errno, EAGAIN);
			queued = i;
			break;
		}
	}
	if (queued < 0)
		KCM_FAIL("%d messages sent, none held back", n);
	KCM_LOG("EAGAIN after %d messages", queued);

	reader_start(&job, peer, NULL, 3, sizes, n);
	for (i = queued; i < n; i++) {
		kcm_msg_build(buf, sizes[i], 3, i);
		while (send(kcm, buf, sizes[i], MSG_DONTWAIT) < 0) {
			ASSERT_EQ(errno, EAGAIN);
			if (!(kcm_poll1(kcm, POLLOUT, 10000) & POLLOUT))
				KCM_FAIL("message %d: no room for 10 s", i);
		}
	}
	reader_join(&job);
	free(buf);
	free(sizes);
}

/*
 * A TX-only kTLS socket receives in the clear: the peer's plaintext
 * requests are parsed as from any TCP socket, while the replies go out
 * encrypted.  One request at a time (one message per TCP segment: Linux
 * frames from a segment's start, kcm.rst, Differences).
 */
KCM_TEST(tx_tls_rx_clear)
{
	int kcm, tcp, peer, i, n = 50;
	size_t *sizes = ktls_sizes(n);
	unsigned char *buf = kcm_xmalloc(KTLS_MSG_MAX);
	struct ktls_reader r;
	struct utls u;

	kcm = ktls_tx_setup(&tls12_gcm, false, &u, &tcp, &peer);
	r.fd = peer;
	r.u = &u;
	for (i = 0; i < n; i++) {
		ssize_t got;
		uint32_t c, s;

		kcm_msg_build(buf, sizes[i], 5, i);
		kcm_write_all(peer, buf, sizes[i]);
		got = kcm_recv_timeout(kcm, buf, KTLS_MSG_MAX, 0, 5000);
		if (got < 0)
			KCM_FAIL("request %d: %s", i, kcm_errname(errno));
		ASSERT_EQ(got, sizes[i]);
		ASSERT_EQ(kcm_msg_check(buf, got, &c, &s), 0);
		ASSERT_EQ(c, 5);
		ASSERT_EQ(s, i);
		kcm_msg_build(buf, sizes[i], 4, i);
		ASSERT_EQ(send(kcm, buf, sizes[i], 0), sizes[i]);
		ASSERT_EQ(reader_msg(&r, buf, KTLS_MSG_MAX, &c, &s), sizes[i]);
		ASSERT_EQ(c, 4);
		ASSERT_EQ(s, i);
	}
	free(buf);
	free(sizes);
}

/*
 * Unattached, the kTLS socket is the application's again, kTLS in place:
 * what it sends itself is encrypted after KCM's messages, the record
 * numbers going on, and reaches the peer.
 */
KCM_TEST(tx_tls_unattach_gives_tls_back)
{
	int kcm, tcp, peer, n = 20;
	size_t *sizes = ktls_sizes(n);
	unsigned char msg[3000], got[3000];
	struct reader_job job;

	kcm = ktls_tx_setup(&tls13_gcm, true, NULL, &tcp, &peer);
	reader_start(&job, peer, NULL, 6, sizes, n);
	kcm_send_msgs(kcm, 6, sizes, n);
	reader_join(&job);
	ASSERT_OK(kcm_unattach(kcm, tcp));

	kcm_msg_build(msg, sizeof(msg), 6, n);
	kcm_write_all(tcp, msg, sizeof(msg));
	kcm_set_rcvtimeo(peer, 5000);
	kcm_read_all(peer, got, sizeof(got));
	ASSERT_MEMEQ(got, msg, sizeof(msg));
	free(sizes);
}

/* ---- what is refused ------------------------------------------------------ */

/*
 * kTLS receiving (TLS_RX) is refused for now, with or without TLS_TX
 * (EALREADY, as any socket whose stream another layer reads): its TCP
 * queue holds records, not the stream.  The socket is left as it was: the
 * peer's message is decrypted on it.
 */
static void tls_rx_refused(bool tx)
{
	int kcm = kcm_socket(SOCK_DGRAM), tcp, peer;
	char msg[200], got[200];

	kcm_tcp_pair(AF_INET, &tcp, &peer);
	ktls_key(tcp, TLS_RX, &tls12_gcm, 3);
	if (tx)
		ktls_key(tcp, TLS_TX, &tls12_gcm, 4);
	ktls_key(peer, TLS_TX, &tls12_gcm, 3);
	ASSERT_ERRNO(kcm_attach(kcm, tcp, kcm_prog_len32()), EALREADY);

	kcm_msg_build(msg, sizeof(msg), 8, 0);
	kcm_write_all(peer, msg, sizeof(msg));
	kcm_set_rcvtimeo(tcp, 5000);
	kcm_read_all(tcp, got, sizeof(got));
	ASSERT_MEMEQ(got, msg, sizeof(msg));
	ASSERT_ERRNO(kcm_recv_timeout(kcm, got, sizeof(got), 0, 200), EAGAIN);
}

KCM_TEST(attach_tls_rx_ealready, KCM_EXT)
{
	tls_rx_refused(false);
}

KCM_TEST(attach_tls_rx_tx_ealready, KCM_EXT)
{
	tls_rx_refused(true);
}

/*
 * kTLS given receive keys after attach reads the stream from then on: the
 * psock fails (EPROTO) and parses nothing.  Unattached, the socket is kTLS's
 * again, its data-ready callback (which kTLS wrapped around ours) given
 * back: the peer's message is decrypted on it.
 */
KCM_TEST(tls_rx_after_attach_fails_psock,
	 KCM_LINUX_BUG("parses the records: no error posted"))
{
	int kcm, tcp, peer;
	char msg[200], got[200];
	struct utls u;

	kcm = ktls_tx_setup(&tls12_gcm, false, &u, &tcp, &peer);
	ktls_key(tcp, TLS_RX, &tls12_gcm, 5);
	ktls_key(peer, TLS_TX, &tls12_gcm, 5);
	kcm_msg_build(msg, sizeof(msg), 9, 0);
	kcm_write_all(peer, msg, sizeof(msg));
	ASSERT_TRUE(kcm_poll1(tcp, 0, 3000) & POLLERR);
	ASSERT_EQ(kcm_so_error(tcp), EPROTO);
	ASSERT_ERRNO(kcm_recv_timeout(kcm, got, sizeof(got), 0, 200), EAGAIN);

	ASSERT_OK(kcm_unattach(kcm, tcp));
	kcm_set_rcvtimeo(tcp, 5000);
	kcm_read_all(tcp, got, sizeof(got));
	ASSERT_MEMEQ(got, msg, sizeof(msg));
}
