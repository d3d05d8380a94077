// SPDX-License-Identifier: GPL-2.0
/*
 * Transmit through the zero-copy entry points: splice() from a pipe and
 * sendfile() from a file into a KCM socket (sendpage on 6.1,
 * sendmsg(MSG_SPLICE_PAGES) on 6.12).  One splice of a whole frame is one
 * message, and it arrives at the TCP peer exactly, whole and in order.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kcm_test.h"

/* A KCM socket with one TCP socket attached; *peer is its far end. */
static int splice_setup(int type, int *peer)
{
	int kcm = kcm_socket(type);
	int a;

	kcm_tcp_pair(AF_INET, &a, peer);
	ASSERT_OK(kcm_attach(kcm, a, kcm_prog_len32()));
	kcm_set_rcvtimeo(*peer, 5000);
	return kcm;
}

/* A frame of @plen payload bytes derived from @seed in @out. */
static size_t splice_frame(unsigned char *out, size_t plen, uint64_t seed)
{
	uint32_t be = htonl((uint32_t)plen);
	size_t i;

	memcpy(out, &be, 4);
	for (i = 0; i < plen; i++)
		out[4 + i] = (unsigned char)kcm_rand(&seed);
	return plen + 4;
}

/* Moves @len bytes from pipe @rd into socket @kcm with splice(). */
static void splice_all(int rd, int kcm, size_t len)
{
	while (len) {
		ssize_t n = splice(rd, NULL, kcm, NULL, len, SPLICE_F_MOVE);

		if (n <= 0)
			KCM_FAIL("splice: %zd (%s), %zu bytes left", n,
				 kcm_errname(errno), len);
		len -= n;
	}
}

static void splice_messages(int type)
{
	static const size_t plens[] = { 1, 100, 4000, 20000, 60000 };
	size_t n = sizeof(plens) / sizeof(plens[0]), i, total = 0;
	unsigned char *sent = malloc(100000), *got = malloc(100000);
	int kcm, peer, p[2];

	ASSERT_TRUE(sent && got);
	kcm = splice_setup(type, &peer);
	ASSERT_OK(pipe(p));
	ASSERT_OK(fcntl(p[1], F_SETPIPE_SZ, 1 << 17) < 0 ? -1 : 0);
	for (i = 0; i < n; i++) {
		size_t len = splice_frame(sent + total, plens[i], i + 1);

		kcm_write_all(p[1], sent + total, len);
		splice_all(p[0], kcm, len);
		if (type == SOCK_SEQPACKET)
			ASSERT_EQ(send(kcm, NULL, 0, MSG_EOR), 0);
		total += len;
	}
	kcm_read_all(peer, got, total);
	ASSERT_MEMEQ(got, sent, total);
	ASSERT_ERRNO(kcm_recv_timeout(peer, got, 1, 0, 100), EAGAIN);
	free(sent);
	free(got);
}

KCM_TEST(splice_dgram_messages)
{
	splice_messages(SOCK_DGRAM);
}

KCM_TEST(splice_seqpacket_messages)
{
	splice_messages(SOCK_SEQPACKET);
}

/* vmsplice'd user pages, then splice: the pages are referenced, and the
 * frame is still exact at the peer.
 */
KCM_TEST(vmsplice_then_splice)
{
	static unsigned char sent[8192] __attribute__((aligned(4096)));
	unsigned char got[sizeof(sent)];
	size_t len = splice_frame(sent, sizeof(sent) - 4, 7);
	struct iovec iov = { sent, len };
	int kcm, peer, p[2];

	kcm = splice_setup(SOCK_DGRAM, &peer);
	ASSERT_OK(pipe(p));
	ASSERT_EQ(vmsplice(p[1], &iov, 1, 0), (ssize_t)len);
	splice_all(p[0], kcm, len);
	kcm_read_all(peer, got, len);
	ASSERT_MEMEQ(got, sent, len);
}

/* sendfile() of a file holding several frames, one sendfile per frame. */
KCM_TEST(sendfile_messages)
{
	static const size_t plens[] = { 10, 3000, 50000 };
	unsigned char sent[60000], got[60000];
	size_t n = sizeof(plens) / sizeof(plens[0]), i, total = 0;
	char path[] = "/tmp/kcm_sendfile_XXXXXX";
	int kcm, peer, fd;
	off_t off = 0;

	fd = mkstemp(path);
	ASSERT_GE(fd, 0);
	unlink(path);
	for (i = 0; i < n; i++)
		total += splice_frame(sent + total, plens[i], 100 + i);
	kcm_write_all(fd, sent, total);

	kcm = splice_setup(SOCK_DGRAM, &peer);
	for (i = 0; i < n; i++) {
		size_t len = plens[i] + 4;

		while (len) {
			ssize_t m = sendfile(kcm, fd, &off, len);

			if (m <= 0)
				KCM_FAIL("sendfile: %zd (%s)", m,
					 kcm_errname(errno));
			len -= m;
		}
	}
	kcm_read_all(peer, got, total);
	ASSERT_MEMEQ(got, sent, total);
	close(fd);
}

