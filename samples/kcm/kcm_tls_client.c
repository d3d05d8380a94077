// SPDX-License-Identifier: GPL-2.0
/*
 * kcm_tls_client: drives kcm_tls_server with TLS in user space.
 *
 * The client connects to the server on 127.0.0.1, runs the TLS handshake
 * with OpenSSL (TLS 1.2 or 1.3, whichever the server takes) and keeps
 * OpenSSL's own record layer for the whole connection, with no kTLS, so
 * that the server's kTLS and KCM are checked against another
 * implementation of TLS.  It sends M messages framed as the server's
 * framing program reads them, a 4-byte big-endian length and then that
 * many bytes: a 4-byte big-endian sequence number and a payload that is a
 * function of the number, of 0 to about 40 KB (most short, one in seven
 * long, so a record holds many messages and a message spans records).  Up
 * to W messages (and 64 KiB, so that neither side's buffers fill) are
 * outstanding at a time, written with one SSL_write each time the window
 * opens.  Every reply must be the request itself, in the order sent: the
 * server's echo keeps the order with one worker, and with several only if
 * W is 1 (each request waits for its reply).
 *
 * Usage: kcm_tls_client -p port [-m messages] [-w window] [-c suites]
 *                       [-F sha256hex]
 *   -p  the server's port on 127.0.0.1
 *   -m  messages to send (default 1000)
 *   -w  messages outstanding at most (default 1)
 *   -c  the TLS 1.3 cipher suites to offer (SSL_CTX_set_ciphersuites),
 *       e.g. TLS_AES_128_GCM_SHA256 (OpenSSL prefers ChaCha20-Poly1305 on
 *       a CPU without AES instructions)
 *   -F  the server certificate's SHA-256 fingerprint, as kcm_tls_server
 *       prints it: the handshake is refused unless it matches (the
 *       certificate is self-signed, so no CA can vouch for it)
 * Exits 0 after "echoed M messages over VERSION CIPHER in S s" once every
 * reply matched, 1 at the first mismatch, error or 10 s without progress.
 * Both ends set TCP_NODELAY: without it, in the test VM, the 500 messages
 * one at a time and the 2000 pipelined of kcm_tls_sample take 8 to 11 s
 * instead of about 1 s, a long message's last record waiting for the
 * peer's delayed ACK (with Nagle on either end).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define HDR		8		/* length and sequence number */
#define LONG_MIN_LEN	20000
#define MAX_PAYLOAD	40000
#define MAX_INFLIGHT	65536
#define MAX_WINDOW	4096

static void die(const char *what)
{
	fprintf(stderr, "kcm_tls_client: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* The payload length of message seq. */
static size_t payload_len(uint32_t seq)
{
	if (seq % 7 == 3)
		return LONG_MIN_LEN + (seq * 997u) % (MAX_PAYLOAD - LONG_MIN_LEN);
	return (seq * 131u) % 512;
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

/* Writes message seq, whole, at p; returns its length. */
static size_t build(unsigned char *p, uint32_t seq)
{
	size_t n = payload_len(seq), i;

	put_be32(p, 4 + n);
	put_be32(p + 4, seq);
	for (i = 0; i < n; i++)
		p[HDR + i] = (unsigned char)(seq * 31 + i * 7 + (i >> 8));
	return HDR + n;
}

/* Fills buf with exactly len bytes of plaintext. */
static void read_full(SSL *ssl, unsigned char *buf, size_t len)
{
	size_t got;

	while (len) {
		if (SSL_read_ex(ssl, buf, len, &got) != 1)
			die("SSL_read (the server closed, or 10 s without a reply)");
		buf += got;
		len -= got;
	}
}

static int verify_fp(X509_STORE_CTX *store, void *arg)
{
	const char *want = arg;
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	X509 *cert = X509_STORE_CTX_get0_cert(store);
	unsigned int n, i;

	if (!cert || !X509_digest(cert, EVP_sha256(), md, &n))
		return 0;
	for (i = 0; i < n; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	if (strcasecmp(hex, want)) {
		fprintf(stderr, "kcm_tls_client: certificate sha256 %s, not %s\n",
			hex, want);
		return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 10 };
	unsigned long nmsgs = 1000, window = 1, sent = 0, done = 0;
	size_t inflight = 0, len, out_len;
	unsigned char *out, *want, *got;
	const char *fp = NULL, *suites = NULL;
	size_t lens[MAX_WINDOW];
	struct timespec t0, t1;
	int port = 0, one = 1, fd, c;
	SSL_CTX *ctx;
	SSL *ssl;

	while ((c = getopt(argc, argv, "p:m:w:c:F:")) != -1) {
		switch (c) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'm':
			nmsgs = strtoul(optarg, NULL, 0);
			break;
		case 'w':
			window = strtoul(optarg, NULL, 0);
			break;
		case 'c':
			suites = optarg;
			break;
		case 'F':
			fp = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (port <= 0 || window < 1 || window > MAX_WINDOW) {
usage:
		fprintf(stderr, "usage: %s -p port [-m messages] [-w window 1..%d] [-c suites] [-F sha256hex]\n",
			argv[0], MAX_WINDOW);
		return 2;
	}

	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
		die("SSL_CTX_new");
	if (suites && !SSL_CTX_set_ciphersuites(ctx, suites))
		die("SSL_CTX_set_ciphersuites");
	if (fp) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_cert_verify_callback(ctx, verify_fp, (void *)fp);
	}

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* OpenSSL writes a record at a time: no Nagle wait on the last. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons(port);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		perror("kcm_tls_client: connect");
		return 1;
	}
	ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd) ||
	    !SSL_set_tlsext_host_name(ssl, "localhost"))
		die("SSL_new");
	if (SSL_connect(ssl) != 1)
		die("handshake failed");

	out = malloc((size_t)window * (HDR + MAX_PAYLOAD));
	want = malloc(HDR + MAX_PAYLOAD);
	got = malloc(HDR + MAX_PAYLOAD);
	if (!out || !want || !got)
		die("malloc");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (done < nmsgs) {
		/* Open the window: one write for every message that fits. */
		out_len = 0;
		while (sent < nmsgs && sent - done < window &&
		       (sent == done ||
			inflight + HDR + payload_len(sent) <= MAX_INFLIGHT)) {
			len = build(out + out_len, sent);
			lens[sent % window] = len;
			out_len += len;
			inflight += len;
			sent++;
		}
		if (out_len && SSL_write_ex(ssl, out, out_len, &len) != 1)
			die("SSL_write");

		/* The oldest reply, which must be the oldest request. */
		read_full(ssl, got, 4);
		len = 4 + (size_t)get_be32(got);
		if (len != lens[done % window]) {
			fprintf(stderr, "kcm_tls_client: reply %lu: length %zu, not %zu\n",
				done, len, lens[done % window]);
			return 1;
		}
		read_full(ssl, got + 4, len - 4);
		build(want, done);
		if (memcmp(got, want, len)) {
			fprintf(stderr, "kcm_tls_client: reply %lu (sequence %u) differs from request %lu\n",
				done, get_be32(got + 4), done);
			return 1;
		}
		inflight -= len;
		done++;
	}

	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("echoed %lu messages over %s %s in %.2f s\n", done,
	       SSL_get_version(ssl), SSL_get_cipher_name(ssl),
	       t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	SSL_shutdown(ssl);	/* close_notify: the server's KCM sees EPIPE */
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	free(out);
	free(want);
	free(got);
	return 0;
}
