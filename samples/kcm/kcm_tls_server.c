// SPDX-License-Identifier: GPL-2.0
/*
 * kcm_tls_server: a KCM echo server over kTLS, after a real TLS handshake.
 *
 * The server makes a P-256 key and a self-signed certificate in memory at
 * start (no files), listens on 127.0.0.1 and, for each connection, runs
 * the TLS handshake with OpenSSL in user space (TLS 1.3, or TLS 1.2 with
 * -2).  It then hands the session to the kernel's TLS (kTLS) in both
 * directions, frees OpenSSL's state and attaches the TCP socket to a KCM
 * multiplexor with SIOCKCMATTACH and a BPF program that frames messages by
 * a 4-byte big-endian length prefix (the message is the prefix and that
 * many bytes).  T worker threads each own a KCM socket of the mux (the
 * first one and T-1 clones): each receives whole plaintext messages and
 * sends each back unchanged, which kTLS encrypts.  Connections are served
 * one after the other; one that ends (the peer's close_notify or close,
 * which KCM posts on the TCP socket) is unattached and closed.
 *
 * Handing the keys to kTLS, as found on Debian 12's OpenSSL 3.0.19 (built
 * with kTLS) on Linux 6.1 and 6.12: the context asks for SSL_OP_ENABLE_KTLS,
 * and OpenSSL then installs the "tls" ULP and the keys itself once they
 * are known.  For TLS 1.2 it keys both directions (BIO_get_ktls_send and
 * BIO_get_ktls_recv both say so).  For TLS 1.3 it keys only the sending
 * direction (BIO_get_ktls_recv says no; OpenSSL 3.0 has no kTLS receive
 * for TLS 1.3).  The direction OpenSSL left out is keyed here, so that
 * this also works with an OpenSSL that keys neither or both: the keylog
 * callback hands over the
 * traffic secrets (CLIENT_TRAFFIC_SECRET_0, SERVER_TRAFFIC_SECRET_0), from
 * which the record key and IV are derived as RFC 8446 section 7.3 says
 * (HKDF-Expand-Label "key" and "iv"), and set with setsockopt(SOL_TLS,
 * TLS_RX or TLS_TX), the record number starting at 0.  That is right
 * because nothing was sent or received under these keys yet: the server
 * sends no session tickets, and OpenSSL reads no further than the
 * client's Finished message (no read-ahead; checked with SSL_has_pending).
 * SSL_export_keying_material would not do: it exports other secrets, not
 * the record layer's.  The server says on stderr who keyed what.
 *
 * KCM frames what kTLS decrypted: our module reads the plaintext from
 * kTLS.  Linux's own kcm.ko parses the TCP queue, i.e. the ciphertext,
 * so on it this server receives nothing that is a message.
 *
 * Usage: kcm_tls_server [-p port] [-t workers] [-n connections] [-2]
 *   -p  TCP port on 127.0.0.1 (default 0: any free port)
 *   -t  worker threads, one KCM socket each (default 4)
 *   -n  exit once that many connections have been served (default: run
 *       until SIGINT or SIGTERM)
 *   -2  TLS 1.2 (ECDHE-ECDSA-AES128-GCM-SHA256) instead of TLS 1.3
 * The first line of output is "listening on 127.0.0.1:PORT sha256 HEX",
 * HEX the certificate's SHA-256 fingerprint (kcm_tls_client -F checks
 * it); at exit, "echoed N messages on C connections".
 *
 * kcm_tls_client is the other end: user-space TLS with OpenSSL, no kTLS.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/kcm.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#ifndef AF_KCM
#define AF_KCM 41
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

#define MAX_MSG		(256 * 1024)
#define MAX_WORKERS	64

static atomic_int stop;
static atomic_ulong echoed;

static void die(const char *what)
{
	fprintf(stderr, "kcm_tls_server: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void die_ssl(const char *what)
{
	fprintf(stderr, "kcm_tls_server: %s failed\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop, 1);
}

/* ---- key and certificate ------------------------------------------------ */

/* A P-256 key and a certificate for CN=localhost that it signs itself,
 * valid for a day; its SHA-256 fingerprint in hex goes to fp.
 */
static void make_cert(EVP_PKEY **keyp, X509 **certp, char fp[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len, i;
	EVP_PKEY *key;
	X509_NAME *name;
	X509 *cert;

	key = EVP_EC_gen("P-256");
	if (!key)
		die_ssl("EVP_EC_gen");
	cert = X509_new();
	if (!cert)
		die_ssl("X509_new");
	name = X509_get_subject_name(cert);
	if (!X509_set_version(cert, 2) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(cert), 1) ||
	    !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					(const unsigned char *)"localhost",
					-1, -1, 0) ||
	    !X509_set_issuer_name(cert, name) ||
	    !X509_set_pubkey(cert, key) ||
	    !X509_sign(cert, key, EVP_sha256()))
		die_ssl("making the certificate");
	if (!X509_digest(cert, EVP_sha256(), md, &md_len))
		die_ssl("X509_digest");
	for (i = 0; i < md_len && i < 32; i++)
		sprintf(fp + 2 * i, "%02x", md[i]);
	fp[2 * i] = '\0';
	*keyp = key;
	*certp = cert;
}

/* ---- the traffic secrets of TLS 1.3 -------------------------------------- */

/* What the keylog callback saw of one connection's TLS 1.3 secrets. */
struct secrets {
	unsigned char client[64], server[64];
	size_t client_len, server_len;
};

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "LABEL <client random> <secret>", both in hex: keeps the application
 * traffic secrets of the connection being handshaken.
 */
static void keylog(const SSL *ssl, const char *line)
{
	struct secrets *s = SSL_get_app_data(ssl);
	const char *hex = strrchr(line, ' ');
	unsigned char *out;
	size_t *len, n;

	if (!s || !hex)
		return;
	if (!strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24)) {
		out = s->client;
		len = &s->client_len;
	} else if (!strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24)) {
		out = s->server;
		len = &s->server_len;
	} else {
		return;
	}
	hex++;
	for (n = 0; n < 64 && hexval(hex[2 * n]) >= 0 &&
	     hexval(hex[2 * n + 1]) >= 0; n++)
		out[n] = hexval(hex[2 * n]) << 4 | hexval(hex[2 * n + 1]);
	*len = n;
}

/* HKDF-Expand-Label(secret, label, "", len) of RFC 8446 with SHA-256. */
static void expand_label(const unsigned char *secret, size_t secret_len,
			 const char *label, unsigned char *out, size_t len)
{
	unsigned char info[2 + 1 + 255 + 1];
	size_t label_len = strlen("tls13 ") + strlen(label), n = 0;
	OSSL_PARAM params[5];
	EVP_KDF_CTX *kctx;
	EVP_KDF *kdf;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;

	info[n++] = len >> 8;
	info[n++] = len;
	info[n++] = label_len;
	memcpy(info + n, "tls13 ", 6);
	memcpy(info + n + 6, label, strlen(label));
	n += label_len;
	info[n++] = 0;		/* no context */

	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	if (!kctx)
		die_ssl("EVP_KDF HKDF");
	params[0] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						     "SHA256", 0);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						      (void *)secret,
						      secret_len);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
						      info, n);
	params[4] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, len, params) <= 0)
		die_ssl("HKDF-Expand-Label");
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
}

/* Keys direction dir (TLS_TX with the server's secret, TLS_RX with the
 * client's) of a TLS 1.3 connection, record number 0.
 */
static void key_tls13(int fd, int dir, SSL *ssl, const struct secrets *s)
{
	const unsigned char *secret = dir == TLS_TX ? s->server : s->client;
	size_t secret_len = dir == TLS_TX ? s->server_len : s->client_len;
	uint32_t id = SSL_CIPHER_get_id(SSL_get_current_cipher(ssl));
	union {
		struct tls12_crypto_info_aes_gcm_128 gcm;
		struct tls12_crypto_info_chacha20_poly1305 chacha;
	} info;
	unsigned char key[32], iv[12];
	socklen_t len;

	if (secret_len != 32) {
		fprintf(stderr, "kcm_tls_server: no %s traffic secret\n",
			dir == TLS_TX ? "server" : "client");
		exit(1);
	}
	memset(&info, 0, sizeof(info));
	if (id == TLS1_3_CK_AES_128_GCM_SHA256) {
		expand_label(secret, secret_len, "key", key, 16);
		expand_label(secret, secret_len, "iv", iv, 12);
		info.gcm.info.version = TLS_1_3_VERSION;
		info.gcm.info.cipher_type = TLS_CIPHER_AES_GCM_128;
		memcpy(info.gcm.key, key, 16);
		memcpy(info.gcm.salt, iv, 4);
		memcpy(info.gcm.iv, iv + 4, 8);
		len = sizeof(info.gcm);
	} else if (id == TLS1_3_CK_CHACHA20_POLY1305_SHA256) {
		expand_label(secret, secret_len, "key", key, 32);
		expand_label(secret, secret_len, "iv", iv, 12);
		info.chacha.info.version = TLS_1_3_VERSION;
		info.chacha.info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
		memcpy(info.chacha.key, key, 32);
		memcpy(info.chacha.iv, iv, 12);
		len = sizeof(info.chacha);
	} else {
		fprintf(stderr, "kcm_tls_server: cipher %s not keyed here\n",
			SSL_get_cipher_name(ssl));
		exit(1);
	}
	/* OpenSSL may have installed the ULP for the other direction. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", 3) && errno != EEXIST)
		die("TCP_ULP tls");
	if (setsockopt(fd, SOL_TLS, dir, &info, len))
		die(dir == TLS_TX ? "TLS_TX" : "TLS_RX");
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(iv, sizeof(iv));
	OPENSSL_cleanse(&info, sizeof(info));
}

static SSL_CTX *make_ctx(int tls12, EVP_PKEY *key, X509 *cert)
{
	int version = tls12 ? TLS1_2_VERSION : TLS1_3_VERSION;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx ||
	    !SSL_CTX_set_min_proto_version(ctx, version) ||
	    !SSL_CTX_set_max_proto_version(ctx, version) ||
	    !SSL_CTX_use_certificate(ctx, cert) ||
	    !SSL_CTX_use_PrivateKey(ctx, key) ||
	    !SSL_CTX_check_private_key(ctx))
		die_ssl("SSL_CTX setup");
	/* Ciphers kTLS has in software, with SHA-256 as TLS 1.3's hash. */
	if (!SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:"
				      "TLS_CHACHA20_POLY1305_SHA256") ||
	    !SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:"
				     "ECDHE-ECDSA-CHACHA20-POLY1305"))
		die_ssl("cipher lists");
	SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
	/* Nothing sent under the application keys before kTLS has them. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_keylog_callback(ctx, keylog);
	return ctx;
}

/* The handshake on fd, then kTLS both ways; 0, or -1 if the handshake
 * failed (the connection is then closed by the caller).
 */
static int tls_handshake(SSL_CTX *ctx, int fd)
{
	struct secrets s;
	int tx, rx, tls13;
	SSL *ssl;

	memset(&s, 0, sizeof(s));
	ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd))
		die_ssl("SSL_new");
	SSL_set_app_data(ssl, &s);
	if (SSL_accept(ssl) != 1) {
		fprintf(stderr, "kcm_tls_server: handshake failed\n");
		ERR_print_errors_fp(stderr);
		SSL_free(ssl);
		return -1;
	}
	if (SSL_has_pending(ssl)) {
		fprintf(stderr, "kcm_tls_server: OpenSSL read past the handshake\n");
		exit(1);
	}
	tls13 = SSL_version(ssl) == TLS1_3_VERSION;
	tx = BIO_get_ktls_send(SSL_get_wbio(ssl));
	rx = BIO_get_ktls_recv(SSL_get_rbio(ssl));
	fprintf(stderr, "kcm_tls_server: %s %s, kTLS keyed by OpenSSL: tx %s, rx %s\n",
		SSL_get_version(ssl), SSL_get_cipher_name(ssl),
		tx ? "yes" : "no", rx ? "yes" : "no");
	if ((!tx || !rx) && !tls13) {
		fprintf(stderr, "kcm_tls_server: OpenSSL did not key kTLS for TLS 1.2\n");
		exit(1);
	}
	if (!tx)
		key_tls13(fd, TLS_TX, ssl, &s);
	if (!rx)
		key_tls13(fd, TLS_RX, ssl, &s);
	OPENSSL_cleanse(&s, sizeof(s));
	/* The socket's records are kTLS's now: no close_notify from here. */
	SSL_set_app_data(ssl, NULL);
	SSL_set_quiet_shutdown(ssl, 1);
	SSL_free(ssl);
	return 0;
}

/* ---- KCM ------------------------------------------------------------------- */

/* The framing program: the message is a 4-byte big-endian length and that
 * many bytes, so its length is the loaded word plus 4.
 */
static int framing_prog(void)
{
	struct bpf_insn prog[] = {
		/* ctx in r6, which the absolute load reads */
		{ .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_6,
		  .src_reg = BPF_REG_1 },
		/* r0 = the big-endian word at 0 */
		{ .code = BPF_LD | BPF_W | BPF_ABS, .imm = 0 },
		{ .code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = BPF_REG_0,
		  .imm = 4 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	static const char license[] = "GPL";
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insns = (uint64_t)(uintptr_t)prog;
	attr.insn_cnt = sizeof(prog) / sizeof(prog[0]);
	attr.license = (uint64_t)(uintptr_t)license;
	fd = syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	if (fd < 0)
		die("BPF_PROG_LOAD");
	return fd;
}

/* A worker: every message its KCM socket receives goes back as it is. */
static void *worker(void *arg)
{
	int kcm = (int)(intptr_t)arg;
	unsigned char *buf = malloc(MAX_MSG);
	ssize_t n;

	if (!buf)
		die("malloc");
	while (!atomic_load(&stop)) {
		n = recv(kcm, buf, MAX_MSG, 0);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;	/* SO_RCVTIMEO: look at stop */
			die("recv on KCM");
		}
		if (send(kcm, buf, n, 0) != n) {
			fprintf(stderr, "kcm_tls_server: send on KCM: %s\n",
				strerror(errno));
			continue;	/* the connection went away */
		}
		atomic_fetch_add(&echoed, 1);
	}
	free(buf);
	return NULL;
}

/* Waits until the attached connection fails or ends (KCM posts EPIPE on
 * the peer's close_notify or close), or a signal asks to stop.
 */
static void wait_connection(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	while (!atomic_load(&stop)) {
		if (poll(&p, 1, 200) < 0 && errno != EINTR)
			die("poll");
		if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL))
			return;
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	struct timeval tv = { .tv_usec = 200 * 1000 };
	int port = 0, nworkers = 4, nconns = -1, tls12 = 0, served = 0;
	pthread_t threads[MAX_WORKERS];
	int kcms[MAX_WORKERS];
	struct sigaction sa;
	socklen_t alen = sizeof(addr);
	EVP_PKEY *key;
	X509 *cert;
	SSL_CTX *ctx;
	char fp[65];
	int lfd, prog, one = 1, c, i;

	while ((c = getopt(argc, argv, "p:t:n:2")) != -1) {
		switch (c) {
		case 'p':
			port = atoi(optarg);
			break;
		case 't':
			nworkers = atoi(optarg);
			break;
		case 'n':
			nconns = atoi(optarg);
			break;
		case '2':
			tls12 = 1;
			break;
		default:
			fprintf(stderr, "usage: %s [-p port] [-t workers] [-n connections] [-2]\n",
				argv[0]);
			return 2;
		}
	}
	if (nworkers < 1 || nworkers > MAX_WORKERS) {
		fprintf(stderr, "kcm_tls_server: -t must be 1..%d\n", MAX_WORKERS);
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	make_cert(&key, &cert, fp);
	ctx = make_ctx(tls12, key, cert);

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons(port);
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) ||
	    listen(lfd, 16) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen))
		die("listen");

	prog = framing_prog();
	kcms[0] = socket(AF_KCM, SOCK_DGRAM, KCMPROTO_CONNECTED);
	if (kcms[0] < 0)
		die("socket(AF_KCM)");
	for (i = 1; i < nworkers; i++) {
		struct kcm_clone cl = { 0 };

		if (ioctl(kcms[0], SIOCKCMCLONE, &cl))
			die("SIOCKCMCLONE");
		kcms[i] = cl.fd;
	}
	for (i = 0; i < nworkers; i++) {
		if (setsockopt(kcms[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
			die("SO_RCVTIMEO");
		errno = pthread_create(&threads[i], NULL, worker,
				       (void *)(intptr_t)kcms[i]);
		if (errno)
			die("pthread_create");
	}

	printf("listening on 127.0.0.1:%d sha256 %s\n", ntohs(addr.sin_port), fp);
	fflush(stdout);

	while (!atomic_load(&stop) && served != nconns) {
		struct kcm_attach at = { .bpf_fd = prog };
		struct kcm_unattach un;
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 200) <= 0)
			continue;
		fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		/*
		 * A message longer than a record goes to TCP as one write a
		 * record: with Nagle, the last one would wait for the
		 * client's delayed ACK.
		 */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (tls_handshake(ctx, fd)) {
			close(fd);
			continue;
		}
		at.fd = fd;
		if (ioctl(kcms[0], SIOCKCMATTACH, &at))
			die("SIOCKCMATTACH");
		wait_connection(fd);
		un.fd = fd;
		if (ioctl(kcms[0], SIOCKCMUNATTACH, &un) && errno != ENOENT)
			die("SIOCKCMUNATTACH");
		close(fd);
		served++;
	}

	atomic_store(&stop, 1);
	for (i = 0; i < nworkers; i++) {
		pthread_join(threads[i], NULL);
		close(kcms[i]);
	}
	printf("echoed %lu messages on %d connections\n",
	       atomic_load(&echoed), served);
	SSL_CTX_free(ctx);
	X509_free(cert);
	EVP_PKEY_free(key);
	close(prog);
	close(lfd);
	return 0;
}
