// SPDX-License-Identifier: GPL-2.0
/*
 * The kcm tracepoints (include/trace/events/kcm.h), seen through tracefs:
 * a known exchange on one mux, and the events it must produce, with the
 * socket and psock they name, lengths and counts.  Our module only: Linux's
 * kcm.ko has no tracepoints.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kcm_test.h"

#define TRACEFS "/sys/kernel/tracing"

/* Writes text to a tracefs file; the case fails if it cannot. */
static void trace_write(const char *file, const char *text)
{
	char path[128];
	int err;

	snprintf(path, sizeof(path), TRACEFS "/%s", file);
	err = kcm_write_file(path, text);
	if (err)
		KCM_FAIL("write '%s' to %s: %s", text, path, strerror(-err));
}

/* tracefs mounted, the kcm events on, the buffer empty. */
static void trace_start(void)
{
	struct stat st;
	int fd;

	if (stat(TRACEFS "/events", &st)) {
		mkdir(TRACEFS, 0700);
		if (mount("tracefs", TRACEFS, "tracefs", 0, NULL))
			KCM_FAIL("mount tracefs: %s", strerror(errno));
	}
	if (stat(TRACEFS "/events/kcm", &st))
		KCM_FAIL("no " TRACEFS "/events/kcm: the module has no tracepoints");
	trace_write("tracing_on", "0");
	fd = open(TRACEFS "/trace", O_WRONLY | O_TRUNC);	/* empties it */
	if (fd < 0)
		KCM_FAIL("open " TRACEFS "/trace: %s", strerror(errno));
	close(fd);
	trace_write("buffer_size_kb", "1024");
	trace_write("events/kcm/enable", "1");
	trace_write("tracing_on", "1");
}

/* The events recorded since trace_start(), which stops recording. */
static char *trace_stop(void)
{
	char *text;

	trace_write("tracing_on", "0");
	trace_write("events/kcm/enable", "0");
	text = kcm_read_file(TRACEFS "/trace");
	if (!text)
		KCM_FAIL("cannot read " TRACEFS "/trace");
	return text;
}

/*
 * The next event named @event in @text from *@at on (a line with
 * " event: "), its fields after the name in @fields; *@at moves past it.
 * 0 if there is none.
 */
static int trace_next(const char *text, const char **at, const char *event,
		      char *fields, size_t size)
{
	char tag[64];
	const char *p, *end;

	snprintf(tag, sizeof(tag), " %s: ", event);
	p = strstr(*at ? *at : text, tag);
	if (!p)
		return 0;
	p += strlen(tag);
	end = strchr(p, '\n');
	if (!end)
		end = p + strlen(p);
	snprintf(fields, size, "%.*s", (int)(end - p), p);
	*at = end;
	return 1;
}

/* The value of key=... in @fields (a decimal number). */
static long long field(const char *fields, const char *key)
{
	char tag[32];
	const char *p;

	snprintf(tag, sizeof(tag), "%s=", key);
	for (p = fields; (p = strstr(p, tag)); p++)
		if (p == fields || p[-1] == ' ')
			return strtoll(p + strlen(tag), NULL, 10);
	KCM_FAIL("no %s in '%s'", key, fields);
	return -1;
}

/* How many @event lines @text has. */
static int trace_count(const char *text, const char *event)
{
	const char *at = NULL;
	char f[256];
	int n = 0;

	while (trace_next(text, &at, event, f, sizeof(f)))
		n++;
	return n;
}

static uint64_t so_cookie(int fd)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);

	ASSERT_OK(getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len));
	return cookie;
}

/*
 * One mux, one psock.  Recorded, in order of what the test does:
 *
 *   the peer writes three messages (14, 24 and 34 bytes, framing header
 *   included) in one write: three kcm_rx_parse (psock P, the TCP socket's
 *   cookie, each length) and kcm_rx_steer events to socket K for three
 *   messages, 72 bytes in all;
 *   the application reads them one at a time: three kcm_rx_read on K, one
 *   message each, of those lengths;
 *   K sends two messages: kcm_tx_reserve (K, P), two kcm_tx_sent (K, P,
 *   the cookie, 18 and 28 bytes), kcm_tx_unreserve (K, P, no retry);
 *   the peer writes a header announcing a message larger than the receive
 *   buffer: kcm_psock_error (P, the cookie, EMSGSIZE).
 */
KCM_TEST(trace_events_of_an_exchange, KCM_EXT)
{
	static const size_t rx_len[] = { 10, 20, 30 };
	static const size_t tx_len[] = { 14, 24 };
	char buf[256], payload[64], f[256];
	const char *at = NULL;
	uint64_t cookie;
	int kcm, tcp, peer, i, steered = 0, bytes = 0;
	long long psock, sock;
	char *text;
	size_t n;

	kcm = kcm_socket(SOCK_DGRAM);
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	cookie = so_cookie(tcp);
	trace_start();
	ASSERT_OK(kcm_attach(kcm, tcp, kcm_prog_len32()));

	n = 0;
	for (i = 0; i < 3; i++) {
		memset(payload, 'a' + i, rx_len[i]);
		n += kcm_frame(buf + n, payload, rx_len[i]);
	}
	kcm_write_all(peer, buf, n);
	for (i = 0; i < 3; i++) {
		ssize_t r = kcm_recv_timeout(kcm, buf, sizeof(buf), 0, 5000);

		ASSERT_EQ(r, (ssize_t)rx_len[i] + 4);
		ASSERT_EQ(buf[4], 'a' + i);
	}

	for (i = 0; i < 2; i++) {
		memset(payload, 'x' + i, tx_len[i]);
		n = kcm_frame(buf, payload, tx_len[i]);
		ASSERT_EQ(send(kcm, buf, n, 0), (ssize_t)n);
	}
	for (i = 0; i < 2; i++) {
		kcm_read_all(peer, buf, tx_len[i] + 4);
		ASSERT_EQ(buf[4], 'x' + i);
	}

	/* 2 GiB announced: longer than any receive buffer. */
	memcpy(buf, "\x7f\xff\xff\xf0", 4);
	kcm_write_all(peer, buf, 4);
	ASSERT_EQ(kcm_poll1(tcp, POLLERR, 5000) & POLLERR, POLLERR);
	text = trace_stop();

	/* Parsed, in order, all naming the same psock and the cookie. */
	for (i = 0; i < 3; i++) {
		if (!trace_next(text, &at, "kcm_rx_parse", f, sizeof(f)))
			KCM_FAIL("kcm_rx_parse %d of 3 missing; trace:\n%s", i,
				 text);
		if (!i)
			psock = field(f, "psock");
		ASSERT_EQ(field(f, "psock"), psock);
		ASSERT_EQ((uint64_t)field(f, "cookie"), cookie);
		ASSERT_EQ(field(f, "len"), (long long)rx_len[i] + 4);
	}
	ASSERT_EQ(trace_count(text, "kcm_rx_parse"), 3);

	/* Steered to one socket, every message and byte accounted for. */
	at = NULL;
	sock = -1;
	while (trace_next(text, &at, "kcm_rx_steer", f, sizeof(f))) {
		ASSERT_EQ(field(f, "psock"), psock);
		if (sock < 0)
			sock = field(f, "kcm");
		ASSERT_EQ(field(f, "kcm"), sock);
		steered += field(f, "msgs");
		bytes += field(f, "bytes");
	}
	ASSERT_EQ(sock >= 0, 1);
	ASSERT_EQ(steered, 3);
	ASSERT_EQ(bytes, 14 + 24 + 34);

	/* Read there, one at a time. */
	at = NULL;
	for (i = 0; i < 3; i++) {
		if (!trace_next(text, &at, "kcm_rx_read", f, sizeof(f)))
			KCM_FAIL("kcm_rx_read %d of 3 missing", i);
		ASSERT_EQ(field(f, "kcm"), sock);
		ASSERT_EQ(field(f, "msgs"), 1);
		ASSERT_EQ(field(f, "bytes"), (long long)rx_len[i] + 4);
	}
	ASSERT_EQ(trace_count(text, "kcm_rx_read"), 3);

	/* Sent on the one psock, under a reservation that ends. */
	at = NULL;
	ASSERT_EQ(trace_next(text, &at, "kcm_tx_reserve", f, sizeof(f)), 1);
	ASSERT_EQ(field(f, "kcm"), sock);
	ASSERT_EQ(field(f, "psock"), psock);
	for (i = 0; i < 2; i++) {
		if (!trace_next(text, &at, "kcm_tx_sent", f, sizeof(f)))
			KCM_FAIL("kcm_tx_sent %d of 2 missing", i);
		ASSERT_EQ(field(f, "kcm"), sock);
		ASSERT_EQ(field(f, "psock"), psock);
		ASSERT_EQ((uint64_t)field(f, "cookie"), cookie);
		ASSERT_EQ(field(f, "len"), (long long)tx_len[i] + 4);
	}
	ASSERT_EQ(trace_next(text, &at, "kcm_tx_unreserve", f, sizeof(f)), 1);
	ASSERT_EQ(field(f, "kcm"), sock);
	ASSERT_EQ(field(f, "psock"), psock);
	ASSERT_EQ(field(f, "retry"), 0);
	ASSERT_EQ(trace_count(text, "kcm_tx_sent"), 2);

	/* The error, once, with its errno. */
	at = NULL;
	ASSERT_EQ(trace_next(text, &at, "kcm_psock_error", f, sizeof(f)), 1);
	ASSERT_EQ(field(f, "psock"), psock);
	ASSERT_EQ((uint64_t)field(f, "cookie"), cookie);
	ASSERT_EQ(field(f, "err"), EMSGSIZE);
	ASSERT_EQ(trace_count(text, "kcm_psock_error"), 1);
	ASSERT_EQ(kcm_so_error(tcp), EMSGSIZE);
	free(text);
}

/*
 * A socket that cannot take a message: the psock holds it (kcm_rx_steer
 * with kcm=-1, the parser pauses) until the reader makes room, and then
 * resumes (kcm_rx_resume); every message still arrives, in order.
 */
KCM_TEST(trace_pause_and_resume, KCM_EXT)
{
	enum { SZ = 1000, N = 40 };
	int kcm, tcp, peer, i, held = 0;
	const char *at = NULL;
	char msg[SZ], f[256];
	long long psock = -1;
	uint32_t c, s;
	char *text;

	kcm = kcm_socket(SOCK_DGRAM);
	kcm_set_int_opt(kcm, SOL_SOCKET, SO_RCVBUF, 4096);
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	trace_start();
	ASSERT_OK(kcm_attach(kcm, tcp, kcm_prog_len32()));
	for (i = 0; i < N; i++) {
		kcm_msg_build(msg, SZ, 3, i);
		kcm_write_all(peer, msg, SZ);
	}
	kcm_wait_acked(peer);
	for (i = 0; i < N; i++) {
		ASSERT_EQ(kcm_recv_timeout(kcm, msg, SZ, 0, 5000), SZ);
		ASSERT_EQ(kcm_msg_check(msg, SZ, &c, &s), 0);
		ASSERT_EQ(c, 3);
		ASSERT_EQ(s, (uint32_t)i);
	}
	text = trace_stop();

	while (trace_next(text, &at, "kcm_rx_steer", f, sizeof(f))) {
		if (field(f, "kcm") != -1)
			continue;
		psock = field(f, "psock");
		held++;
	}
	if (!held)
		KCM_FAIL("no message held with a 4 KiB receive buffer; trace:\n%s",
			 text);
	at = NULL;
	if (!trace_next(text, &at, "kcm_rx_resume", f, sizeof(f)))
		KCM_FAIL("held %d times, never resumed", held);
	ASSERT_EQ(field(f, "psock"), psock);
	KCM_LOG("held %d times, resumed %d times", held,
		trace_count(text, "kcm_rx_resume"));
	free(text);
}

