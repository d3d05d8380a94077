// SPDX-License-Identifier: GPL-2.0
/*
 * kcm_client: sends a stream of framed requests to kcm_server over M TCP
 * connections (round robin, 32 requests in flight) and counts the replies,
 * whichever connection they come back on.  The frames are built with
 * libkcm's framing descriptions (tools/lib/kcm), the same ones the library
 * turns into BPF programs.
 *
 *   kcm_client -p PORT [-m CONNS] [-n REQUESTS] [-s SIZE]
 *              [-f thrift|len16|memcache] [-r N]
 *
 * -r N resets connection 0 (RST, SO_LINGER 0) after N requests and goes on
 * with the other connections.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "libkcm.h"

#define MAX_CONNS 64
#define WINDOW 32
#define BUFSZ (1 << 17)

struct conn {
	int fd;
	size_t have;
	unsigned char buf[BUFSZ];
};

static struct conn conns[MAX_CONNS];
static struct libkcm_framing spec;

static int framing_of(const char *name)
{
	if (!strcmp(name, "thrift"))
		spec = (struct libkcm_framing){ .offset = 0, .width = 4,
						.adj = 4 };
	else if (!strcmp(name, "len16"))
		spec = (struct libkcm_framing){ .offset = 0, .width = 2,
						.adj = 2 };
	else if (!strcmp(name, "memcache"))
		spec = (struct libkcm_framing){ .offset = 8, .width = 4,
						.adj = 24 };
	else
		return -1;
	spec.endian = LIBKCM_BIG_ENDIAN;
	return 0;
}

/* Length of the frame at @b (@have bytes), or 0 if not known yet. */
static size_t frame_len(const unsigned char *b, size_t have)
{
	size_t hdr = spec.offset + spec.width, k;
	unsigned long long field = 0;

	if (have < hdr)
		return 0;
	for (k = 0; k < spec.width; k++)
		field = field << 8 | b[spec.offset + k];
	return (size_t)(field + (unsigned long long)(long long)spec.adj);
}

static void write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			perror("kcm_client: write");
			exit(1);
		}
		c += w;
		n -= (size_t)w;
	}
}

/* Read what is there on @c; returns the number of whole replies taken. */
static int take_replies(struct conn *c)
{
	ssize_t n = read(c->fd, c->buf + c->have, BUFSZ - c->have);
	size_t len;
	int got = 0;

	if (n <= 0)
		return n < 0 && errno == EINTR ? 0 : -1;
	c->have += (size_t)n;
	while ((len = frame_len(c->buf, c->have)) && len <= c->have) {
		memmove(c->buf, c->buf + len, c->have - len);
		c->have -= len;
		got++;
	}
	if (c->have == BUFSZ) {
		fprintf(stderr, "kcm_client: reply too large\n");
		exit(1);
	}
	return got;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	unsigned long requests = 1000, sent = 0, replies = 0, reset_after = 0;
	size_t size = 200, k;
	int port = 0, m = 3, opt, i, next = 0, live, reset_done = 0;
	unsigned char *msg;

	framing_of("thrift");
	while ((opt = getopt(argc, argv, "p:m:n:s:f:r:")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'm': m = atoi(optarg); break;
		case 'n': requests = strtoul(optarg, NULL, 10); break;
		case 's': size = strtoul(optarg, NULL, 10); break;
		case 'r': reset_after = strtoul(optarg, NULL, 10); break;
		case 'f':
			if (framing_of(optarg) == 0)
				break;
			/* fall through */
		default:
			fprintf(stderr, "usage: kcm_client -p PORT [-m CONNS] "
				"[-n REQUESTS] [-s SIZE] "
				"[-f thrift|len16|memcache] [-r N]\n");
			return 2;
		}
	}
	if (size < 24)
		size = 24;
	if (!port || m < 1 || m > MAX_CONNS || size > 60000 ||
	    (m == 1 && reset_after)) {
		fprintf(stderr, "kcm_client: bad arguments\n");
		return 2;
	}
	msg = malloc(size);
	if (msg)
		memset(msg, 0, size);
	if (!msg || libkcm_framing_put(&spec, msg, size) < 0) {
		fprintf(stderr, "kcm_client: size %zu does not fit the framing\n",
			size);
		return 2;
	}

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((unsigned short)port);
	for (i = 0; i < m; i++) {
		conns[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		if (conns[i].fd < 0 ||
		    connect(conns[i].fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			perror("kcm_client: connect");
			return 1;
		}
	}
	live = m;
	printf("kcm_client: %d connections to 127.0.0.1:%d, sending %lu "
	       "requests of %zu bytes\n", m, port, requests, size);
	fflush(stdout);

	while (sent < requests) {
		unsigned long batch = requests - sent < WINDOW ?
				      requests - sent : WINDOW;
		unsigned long want = replies + batch, b;

		for (b = 0; b < batch; b++, sent++) {
			while (conns[next].fd < 0)
				next = (next + 1) % m;
			for (k = spec.offset + spec.width; k < size; k++)
				msg[k] = (unsigned char)(sent + k);
			if (spec.offset)
				msg[0] = 0x80;	/* memcached request magic */
			write_all(conns[next].fd, msg, size);
			next = (next + 1) % m;
		}
		while (replies < want) {
			struct pollfd pf[MAX_CONNS];
			int n;

			for (i = 0; i < m; i++) {
				pf[i].fd = conns[i].fd;
				pf[i].events = POLLIN;
			}
			n = poll(pf, (nfds_t)m, 5000);
			if (n == 0) {
				fprintf(stderr, "kcm_client: no reply for 5 s "
					"(%lu of %lu)\n", replies, want);
				break;
			}
			for (i = 0; i < m; i++) {
				if (pf[i].fd < 0 || !pf[i].revents)
					continue;
				n = take_replies(&conns[i]);
				if (n < 0) {
					fprintf(stderr, "kcm_client: "
						"connection %d closed\n", i);
					close(conns[i].fd);
					conns[i].fd = -1;
					live--;
					continue;
				}
				replies += (unsigned long)n;
			}
			if (!live)
				break;
		}
		if (reset_after && !reset_done && sent >= reset_after) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			setsockopt(conns[0].fd, SOL_SOCKET, SO_LINGER, &lg,
				   sizeof(lg));
			close(conns[0].fd);	/* RST */
			conns[0].fd = -1;
			live--;
			reset_done = 1;
			printf("kcm_client: reset connection 0 (RST) after "
			       "%lu requests; going on with %d\n", sent, live);
			fflush(stdout);
		}
		if (!live)
			break;
	}
	printf("kcm_client: %lu requests sent, %lu replies received\n", sent,
	       replies);
	fflush(stdout);
	for (i = 0; i < m; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	free(msg);
	return replies == sent ? 0 : 1;
}
