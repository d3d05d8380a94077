// SPDX-License-Identifier: GPL-2.0
/*
 * AF_KCM transmit path: what an application writes on a KCM socket must
 * reach the attached TCP stream as exactly those bytes, one whole message
 * after another.
 *
 * Framing in every case: a 4-byte big-endian payload length, then the
 * payload.  The application hands KCM the whole frame (header included) as
 * one message; the TCP peer reads the raw stream and the test compares it
 * byte for byte with what was sent.
 *
 * Behaviour of Linux's own kcm.ko (6.1 and 6.12) that the cases below pin
 * down, as measured on lane linux:
 *  - send() of 0 bytes returns 0 and puts nothing on the wire;
 *  - with no TCP socket attached, a send is queued and succeeds at once
 *    (blocking or MSG_DONTWAIT); it goes out when a socket is attached;
 *  - the send-buffer check happens before a message is accepted: a message
 *    of any size is taken while the queue has room (so one message larger
 *    than the biggest SO_SNDBUF still goes through whole), the next one
 *    then waits; blocking with SO_SNDTIMEO ends in EAGAIN, MSG_DONTWAIT
 *    gives EAGAIN at once;
 *  - MSG_BATCH holds messages back until a send without it, or until
 *    they fill the send buffer;
 *  - a SOCK_SEQPACKET message is held until MSG_EOR (an empty send with
 *    MSG_EOR completes it); an unfinished one is dropped when its socket
 *    closes;
 *  - the pieces of an unfinished message are taken without regard to
 *    SO_SNDBUF (a Linux bug: unfinished_message_held_to_sndbuf);
 *  - a SOCK_SEQPACKET send whose buffer faults part-way may return the
 *    bytes before the fault instead of EFAULT (a Linux bug:
 *    seqpacket_fault_sends_nothing); a SOCK_DGRAM one gives EFAULT.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kcm_test.h"

/* ---- local helpers ------------------------------------------------------ */

/* A framed message: 4-byte BE payload length + @plen pseudo-random bytes.
 * Returns the frame size.
 */
static size_t tx_make(unsigned char *out, size_t plen, uint64_t *rng)
{
	uint32_t be = htonl((uint32_t)plen);
	size_t i;

	memcpy(out, &be, 4);
	for (i = 0; i < plen; i++)
		out[4 + i] = (unsigned char)kcm_rand(rng);
	return plen + 4;
}

/* A KCM socket of @type with one TCP socket attached; *peer is the far end
 * of that TCP connection (SO_RCVTIMEO 5 s, so a missing byte fails).
 */
static int tx_setup(int type, int *tcp, int *peer)
{
	int kcm = kcm_socket(type);
	int a, b;

	kcm_tcp_pair(AF_INET, &a, &b);
	ASSERT_OK(kcm_attach(kcm, a, kcm_prog_len32()));
	kcm_set_rcvtimeo(b, 5000);
	if (tcp)
		*tcp = a;
	*peer = b;
	return kcm;
}

/* After @ms, the peer must have nothing more to read. */
static void tx_expect_quiet(int peer, int ms)
{
	unsigned char c;

	if (ms)
		kcm_msleep(ms);
	ASSERT_ERRNO(recv(peer, &c, 1, MSG_DONTWAIT), EAGAIN);
}

/* The peer must read exactly @n bytes equal to @exp, then nothing more. */
static void tx_expect_stream(int peer, const void *exp, size_t n)
{
	unsigned char *got = kcm_xmalloc(n);

	kcm_read_all(peer, got, n);
	ASSERT_MEMEQ(got, exp, n);
	free(got);
	tx_expect_quiet(peer, 100);
}

/* One field of /proc/net/kcm_stats: the value in the row under the header
 * line starting with @section ("MUX" or "Psock"), in column @col.
 */
static long long tx_stat(const char *section, const char *col)
{
	char *text = kcm_read_file("/proc/net/kcm_stats");
	char *line, *save = NULL, *hdr = NULL;
	long long val = -1;

	if (!text)
		KCM_FAIL("cannot read /proc/net/kcm_stats: %s", strerror(errno));
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *htok, *vtok, *hs = NULL, *vs = NULL;
		int i, want = -1;

		if (!hdr) {
			if (!strncmp(line, section, strlen(section)) &&
			    (line[strlen(section)] == ' ' ||
			     line[strlen(section)] == '\t'))
				hdr = line;
			continue;
		}
		/* @line is the value row for header @hdr.  The header's first
		 * word names the section and has no value under it.
		 */
		htok = strtok_r(hdr, " \t", &hs);
		for (i = 0; (htok = strtok_r(NULL, " \t", &hs)); i++)
			if (!strcmp(htok, col))
				want = i;
		if (want < 0)
			KCM_FAIL("kcm_stats: no column %s in section %s", col,
				 section);
		for (i = 0, vtok = strtok_r(line, " \t", &vs); vtok && i < want;
		     i++)
			vtok = strtok_r(NULL, " \t", &vs);
		if (!vtok)
			KCM_FAIL("kcm_stats: section %s has no value for %s",
				 section, col);
		val = strtoll(vtok, NULL, 10);
		break;
	}
	free(text);
	if (val < 0)
		KCM_FAIL("kcm_stats: no section %s", section);
	return val;
}

struct tx_reader {
	int fd;
	unsigned char *buf;
	size_t want;
	size_t got;
	int err;
};

/* Thread: read @want bytes from @fd (for messages too big to sit in the
 * socket buffers while the sender is still in send()).
 */
static void *tx_reader_fn(void *arg)
{
	struct tx_reader *r = arg;

	while (r->got < r->want) {
		ssize_t n = read(r->fd, r->buf + r->got, r->want - r->got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r->err = n < 0 ? errno : -1;
			break;
		}
		r->got += n;
	}
	return NULL;
}

/*
 * Sends @n bytes of @buf on @kcm with @flags while a thread reads @peer:
 * the send must take them all, and the peer must then have read exactly
 * the @len bytes of @exp (the whole message, of which @buf is the end),
 * and nothing more.
 */
static void tx_send_while_read(int kcm, int peer, const void *buf, size_t n,
			       int flags, const unsigned char *exp, size_t len)
{
	struct tx_reader r = { .fd = peer, .want = len };
	pthread_t th;

	r.buf = kcm_xmalloc(len);
	ASSERT_EQ(pthread_create(&th, NULL, tx_reader_fn, &r), 0);
	ASSERT_EQ(send(kcm, buf, n, flags), (ssize_t)n);
	ASSERT_EQ(pthread_join(th, NULL), 0);
	ASSERT_EQ(r.err, 0);
	ASSERT_EQ(r.got, len);
	ASSERT_MEMEQ(r.buf, exp, len);
	tx_expect_quiet(peer, 50);
	free(r.buf);
}

/* ---- cases ----------------------------------------------------------------- */

/* send() of several sizes on SOCK_DGRAM: each frame arrives exactly, in
 * order, and nothing else does.
 */
KCM_TEST(dgram_send_exact)
{
	static const size_t plens[] = { 0, 1, 3, 100, 1448, 5000, 65536 };
	size_t n = sizeof(plens) / sizeof(plens[0]), i, total = 0;
	uint64_t rng = 0x1234;
	unsigned char *all = kcm_xmalloc(80000 + 4 * n);
	int kcm, peer;

	kcm = tx_setup(SOCK_DGRAM, NULL, &peer);
	for (i = 0; i < n; i++) {
		size_t len = tx_make(all + total, plens[i], &rng);

		ASSERT_EQ(send(kcm, all + total, len, 0), (ssize_t)len);
		total += len;
	}
	tx_expect_stream(peer, all, total);
	free(all);
}

/* A zero-length send is a no-op (Linux: returns 0, sends nothing) and does
 * not disturb the next message.
 */
KCM_TEST(dgram_send_zero_len)
{
	unsigned char msg[64];
	uint64_t rng = 7;
	size_t len = tx_make(msg, 50, &rng);
	int kcm, peer;

	kcm = tx_setup(SOCK_DGRAM, NULL, &peer);
	ASSERT_EQ(send(kcm, msg, 0, 0), 0);
	tx_expect_quiet(peer, 100);
	ASSERT_EQ(send(kcm, msg, len, 0), (ssize_t)len);
	tx_expect_stream(peer, msg, len);
}

/* sendmsg() with the frame scattered over many iovecs, the length header
 * itself split and some iovecs empty: the peer sees one contiguous frame.
 */
KCM_TEST(dgram_sendmsg_iov)
{
	static const size_t cuts[] = { 1, 3, 7, 0, 4093, 1, 0, 20000, 2 };
	size_t ncut = sizeof(cuts) / sizeof(cuts[0]), i, off = 0, plen = 0;
	struct iovec iov[sizeof(cuts) / sizeof(cuts[0])];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = ncut };
	unsigned char *msg;
	uint64_t rng = 99;
	size_t len;
	int kcm, peer;

	for (i = 0; i < ncut; i++)
		plen += cuts[i];
	plen -= 4;
	msg = kcm_xmalloc(plen + 4);
	len = tx_make(msg, plen, &rng);
	for (i = 0; i < ncut; i++) {
		iov[i].iov_base = msg + off;
		iov[i].iov_len = cuts[i];
		off += cuts[i];
	}
	ASSERT_EQ(off, len);

	kcm = tx_setup(SOCK_DGRAM, NULL, &peer);
	ASSERT_EQ(sendmsg(kcm, &mh, 0), (ssize_t)len);
	tx_expect_stream(peer, msg, len);
	free(msg);
}

/* sendmmsg() of several messages, each in 1-3 iovecs: all are sent, each
 * msg_len is its frame size, and the stream is the frames in order.
 */
KCM_TEST(dgram_sendmmsg)
{
	enum { NMSG = 8 };
	static const size_t plens[NMSG] = { 10, 1, 3000, 77, 65536, 5, 1000, 250 };
	struct mmsghdr mm[NMSG];
	struct iovec iov[NMSG][3];
	unsigned char *all = kcm_xmalloc(80000);
	size_t off = 0, lens[NMSG];
	uint64_t rng = 4242;
	int kcm, peer, i;

	memset(mm, 0, sizeof(mm));
	for (i = 0; i < NMSG; i++) {
		unsigned char *m = all + off;
		size_t len = tx_make(m, plens[i], &rng);
		int pieces = 1 + i % 3, j;
		size_t at = 0;

		lens[i] = len;
		for (j = 0; j < pieces; j++) {
			size_t part = j == pieces - 1 ? len - at : len / pieces;

			iov[i][j].iov_base = m + at;
			iov[i][j].iov_len = part;
			at += part;
		}
		mm[i].msg_hdr.msg_iov = iov[i];
		mm[i].msg_hdr.msg_iovlen = pieces;
		off += len;
	}

	kcm = tx_setup(SOCK_DGRAM, NULL, &peer);
	ASSERT_EQ(sendmmsg(kcm, mm, NMSG, 0), NMSG);
	for (i = 0; i < NMSG; i++)
		EXPECT_EQ(mm[i].msg_len, lens[i]);
	tx_expect_stream(peer, all, off);
	free(all);
}

/* MSG_BATCH on all but the last sendmsg(): nothing reaches the peer until
 * the last send of the series, then every message arrives, in order, as
 * whole frames.  The batch is far smaller than the send buffer, which the
 * documentation's hold-back is bound by (see dgram_msg_batch_fills_sndbuf).
 */
KCM_TEST(dgram_msg_batch)
{
	enum { NMSG = 12, PMAX = 8000 };
	unsigned char *all = kcm_xmalloc(NMSG * (PMAX + 4));
	uint64_t rng = 555;
	size_t off = 0;
	int kcm, peer, i;

	kcm = tx_setup(SOCK_DGRAM, NULL, &peer);
	ASSERT_GT(kcm_get_int_opt(kcm, SOL_SOCKET, SO_SNDBUF),
		  2 * NMSG * (PMAX + 4));
	for (i = 0; i < NMSG; i++) {
		size_t len = tx_make(all + off, 1 + kcm_rand(&rng) % PMAX,
				     &rng);
		struct iovec iov = { all + off, len };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

		/* Held back so far: an implementation that pushed any of
		 * them has had this pause to put bytes at the peer.
		 */
		if (i == NMSG - 1)
			tx_expect_quiet(peer, 200);
		ASSERT_EQ(sendmsg(kcm, &mh, i < NMSG - 1 ? MSG_BATCH : 0),
			  (ssize_t)len);
		off += len;
	}
	tx_expect_stream(peer, all, off);
	free(all);
}

/* A MSG_BATCH series larger than the send buffer: the send that finds the
 * buffer full pushes out what is held instead of waiting for room that
 * only the end of the series would make, so every blocking send of the
 * series completes (SO_SNDTIMEO turns a sender waiting on itself into
 * EAGAIN), and the peer gets every message whole, in order.
 */
KCM_TEST(dgram_msg_batch_fills_sndbuf, KCM_TIMEOUT(60))
{
	enum { NMSG = 64, PLEN = 4000 };
	struct tx_reader r = { .want = NMSG * (PLEN + 4) };
	unsigned char *all = kcm_xmalloc(r.want);
	uint64_t rng = 556;
	size_t off = 0;
	pthread_t th;
	int kcm, i, sndbuf;

	kcm = tx_setup(SOCK_DGRAM, NULL, &r.fd);
	kcm_set_int_opt(kcm, SOL_SOCKET, SO_SNDBUF, 16384);
	sndbuf = kcm_get_int_opt(kcm, SOL_SOCKET, SO_SNDBUF);
	kcm_diag("SO_SNDBUF %d for a series of %zu bytes", sndbuf, r.want);
	ASSERT_LT(4 * sndbuf, (long long)r.want);
	kcm_set_sndtimeo(kcm, 10000);
	r.buf = kcm_xmalloc(r.want);
	ASSERT_EQ(pthread_create(&th, NULL, tx_reader_fn, &r), 0);
	for (i = 0; i < NMSG; i++) {
		size_t len = tx_make(all + off, PLEN, &rng);

		ASSERT_EQ(send(kcm, all + off, len,
			       i < NMSG - 1 ? MSG_BATCH : 0), (ssize_t)len);
		off += len;
	}
	ASSERT_EQ(pthread_join(th, NULL), 0);
	ASSERT_EQ(r.err, 0);
	ASSERT_EQ(r.got, r.want);
	ASSERT_MEMEQ(r.buf, all, r.want);
	tx_expect_quiet(r.fd, 50);
	free(r.buf);
	free(all);
}

/* SOCK_SEQPACKET: one message written in many pieces without MSG_EOR (the
 * first piece is one byte of the header) goes out only when MSG_EOR comes,
 * as one contiguous frame.
 */
KCM_TEST(seqpacket_eor_pieces)
{
	enum { PLEN = 30000, NPIECE = 24 };
	unsigned char *msg = kcm_xmalloc(PLEN + 4);
	uint64_t rng = 31337;
	size_t len = tx_make(msg, PLEN, &rng), off = 0;
	int kcm, peer, i;

	kcm = tx_setup(SOCK_SEQPACKET, NULL, &peer);
	for (i = 0; i < NPIECE; i++) {
		size_t part;
		int flags = 0;

		if (i == 0)
			part = 1;
		else if (i == 1)
			part = 2;
		else if (i == NPIECE - 1)
			part = len - off;
		else
			part = 1 + kcm_rand(&rng) % ((len - off) / (NPIECE - i));
		if (i == NPIECE - 1) {
			/* Nothing of the message may have left before EOR. */
			tx_expect_quiet(peer, 200);
			flags = MSG_EOR;
		}
		ASSERT_EQ(send(kcm, msg + off, part, flags), (ssize_t)part);
		off += part;
	}
	ASSERT_EQ(off, len);
	tx_expect_stream(peer, msg, len);
	free(msg);
}

/*
 * A piece of a SOCK_SEQPACKET message that faults half-way (EFAULT) is not
 * taken, but the pieces accepted before it stay: the piece sent again and
 * the rest complete the message, whose header is still its first bytes.
 * Dropping the whole message would send the later pieces alone, headless,
 * and the peer would lose the framing.
 */
KCM_TEST(seqpacket_fault_keeps_accepted_pieces)
{
	enum { PLEN = 3000 };
	unsigned char *msg = kcm_xmalloc(PLEN + 4);
	uint64_t rng = 4711;
	size_t len = tx_make(msg, PLEN, &rng);
	struct iovec iov[2] = {
		{ .iov_base = msg + 1000, .iov_len = 500 },
		{ .iov_base = (void *)8, .iov_len = 500 },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	int kcm, peer;

	kcm = tx_setup(SOCK_SEQPACKET, NULL, &peer);
	ASSERT_EQ(send(kcm, msg, 1000, 0), 1000);
	ASSERT_ERRNO(sendmsg(kcm, &mh, 0), EFAULT);
	ASSERT_EQ(send(kcm, msg + 1000, 1000, 0), 1000);
	ASSERT_EQ(send(kcm, msg + 2000, len - 2000, MSG_EOR),
		  (ssize_t)(len - 2000));
	tx_expect_stream(peer, msg, len);
	/* The next message is framed as it should be. */
	len = tx_make(msg, 100, &rng);
	ASSERT_EQ(send(kcm, msg, len, MSG_EOR), (ssize_t)len);
	tx_expect_stream(peer, msg, len);
	free(msg);
}

/*
 * A whole message whose buffer faults half-way (EFAULT), sent while the
 * connection is idle: none of it may reach the stream, not even the bytes
 * before the fault (a sender that handed those to TCP as it read them
 * would have put a header there whose payload never comes).  The next
 * message is framed as it should be, and the failed send reserved the
 * connection no longer than it lasted.
 */
static void fault_sends_nothing(int type, int flags, size_t size)
{
	unsigned char *msg = kcm_xmalloc(size + 4);
	uint64_t rng = 1618;
	size_t len = tx_make(msg, size, &rng);
	struct iovec iov[2] = {
		{ .iov_base = msg, .iov_len = size / 2 },
		{ .iov_base = (void *)8, .iov_len = len - size / 2 },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	unsigned char *small = kcm_xmalloc(200 * 404);
	int kcm, other, peer, i;
	size_t off;

	kcm = tx_setup(type, NULL, &peer);
	ASSERT_ERRNO(sendmsg(kcm, &mh, flags), EFAULT);
	tx_expect_quiet(peer, 100);
	ASSERT_EQ(send(kcm, msg, len, flags), (ssize_t)len);
	tx_expect_stream(peer, msg, len);
	ASSERT_ERRNO(sendmsg(kcm, &mh, flags | MSG_DONTWAIT), EFAULT);
	tx_expect_quiet(peer, 100);
	/* Another socket of the mux finds the connection free. */
	other = kcm_clone(kcm);
	len = tx_make(msg, 300, &rng);
	ASSERT_EQ(send(other, msg, len, flags), (ssize_t)len);
	tx_expect_stream(peer, msg, len);
	close(other);
	/*
	 * Faulting sends between small messages, which the peer leaves unread
	 * (so TCP's page fragment is not reused from its start) and which move
	 * that fragment on by less than the good first element each time: one
	 * of the faulting sends finds fewer bytes left in it than that
	 * element, the point where copying the message into TCP as it is read
	 * would stop in the middle.
	 */
	for (i = 0, off = 0; i < 200; i++) {
		ASSERT_ERRNO(sendmsg(kcm, &mh, flags), EFAULT);
		len = tx_make(small + off, 30 + kcm_rand(&rng) % 370, &rng);
		ASSERT_EQ(send(kcm, small + off, len, flags), (ssize_t)len);
		off += len;
	}
	tx_expect_stream(peer, small, off);
	free(small);
	free(msg);
	close(kcm);
	close(peer);
}

#define FAULT_BUG "a SOCK_SEQPACKET send whose buffer faults part-way returns the bytes before the fault, not EFAULT"

KCM_TEST(dgram_fault_sends_nothing)
{
	fault_sends_nothing(SOCK_DGRAM, 0, 1000);
}

KCM_TEST(seqpacket_fault_sends_nothing, KCM_LINUX_BUG(FAULT_BUG))
{
	fault_sends_nothing(SOCK_SEQPACKET, MSG_EOR, 1000);
}

/* The same with a first message of five pages, which ours also hands to
 * TCP at once when the socket's page fragment has a run that long.
 */
KCM_TEST(dgram_fault_sends_nothing_above_a_page)
{
	fault_sends_nothing(SOCK_DGRAM, 0, 5 * 4096 - 100);
}

KCM_TEST(seqpacket_fault_sends_nothing_above_a_page, KCM_LINUX_BUG(FAULT_BUG))
{
	fault_sends_nothing(SOCK_SEQPACKET, MSG_EOR, 5 * 4096 - 100);
}

/*
 * A message of 512 MiB or more is refused with EMSGSIZE before anything is
 * copied (its charge to the send buffer, an int, would wrap); as a piece
 * of a SOCK_SEQPACKET message, it leaves the message as it was.  The iovec
 * repeats one buffer: nothing that large is ever allocated.
 */
KCM_TEST(message_too_large_refused, KCM_EXT)
{
	enum { CHUNK = 64 << 20, NIOV = 9 };
	unsigned char *chunk = kcm_xmalloc(CHUNK), *msg = kcm_xmalloc(1004);
	struct iovec iov[NIOV];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = NIOV };
	uint64_t rng = 99;
	size_t len = tx_make(msg, 1000, &rng);
	int kcm, peer, i;

	for (i = 0; i < NIOV; i++)
		iov[i] = (struct iovec){ .iov_base = chunk, .iov_len = CHUNK };
	kcm = tx_setup(SOCK_SEQPACKET, NULL, &peer);
	ASSERT_ERRNO(sendmsg(kcm, &mh, MSG_EOR), EMSGSIZE);
	ASSERT_EQ(send(kcm, msg, 500, 0), 500);
	ASSERT_ERRNO(sendmsg(kcm, &mh, 0), EMSGSIZE);
	ASSERT_EQ(send(kcm, msg + 500, len - 500, MSG_EOR),
		  (ssize_t)(len - 500));
	tx_expect_stream(peer, msg, len);
	free(chunk);
	free(msg);
}

/* An empty send with MSG_EOR completes a SOCK_SEQPACKET message; with no
 * message open it sends nothing.
 */
KCM_TEST(seqpacket_empty_eor)
{
	unsigned char msg[2000];
	uint64_t rng = 3;
	size_t len = tx_make(msg, sizeof(msg) - 4, &rng);
	int kcm, peer;

	kcm = tx_setup(SOCK_SEQPACKET, NULL, &peer);
	ASSERT_EQ(send(kcm, msg, 700, 0), 700);
	ASSERT_EQ(send(kcm, msg + 700, len - 700, 0), (ssize_t)(len - 700));
	tx_expect_quiet(peer, 150);
	ASSERT_EQ(send(kcm, msg, 0, MSG_EOR), 0);
	tx_expect_stream(peer, msg, len);
	ASSERT_EQ(send(kcm, msg, 0, MSG_EOR), 0);
	tx_expect_quiet(peer, 150);
}

/* Two KCM sockets of one SOCK_SEQPACKET mux share one TCP socket.  While A
 * has a message half written, B sends complete ones: they go out whole and
 * A's message, finished later, follows them, never interleaved.
 */
KCM_TEST(seqpacket_no_interleave)
{
	enum { NB = 3 };
	unsigned char a_msg[9004], b_msg[NB][1504];
	uint64_t rng = 8080;
	size_t a_len, b_len[NB];
	int ka, kb, peer, i;

	a_len = tx_make(a_msg, sizeof(a_msg) - 4, &rng);
	for (i = 0; i < NB; i++)
		b_len[i] = tx_make(b_msg[i], 500 + 500 * i, &rng);

	ka = tx_setup(SOCK_SEQPACKET, NULL, &peer);
	kb = ASSERT_OK(kcm_clone(ka));

	ASSERT_EQ(send(ka, a_msg, 3000, 0), 3000);
	for (i = 0; i < NB; i++)
		ASSERT_EQ(send(kb, b_msg[i], b_len[i], MSG_EOR),
			  (ssize_t)b_len[i]);
	ASSERT_EQ(send(ka, a_msg + 3000, 3000, 0), 3000);
	/* B's messages must be out already, whole, A's not at all. */
	for (i = 0; i < NB; i++) {
		unsigned char got[1504];

		kcm_read_all(peer, got, b_len[i]);
		ASSERT_MEMEQ(got, b_msg[i], b_len[i]);
	}
	tx_expect_quiet(peer, 150);
	ASSERT_EQ(send(ka, a_msg + 6000, a_len - 6000, MSG_EOR),
		  (ssize_t)(a_len - 6000));
	tx_expect_stream(peer, a_msg, a_len);
}

/*
 * An unfinished message counts against the send buffer as a queued one
 * does: its pieces (no MSG_EOR on SOCK_SEQPACKET, MSG_MORE on SOCK_DGRAM)
 * are taken while SO_SNDBUF has room, then MSG_DONTWAIT gives EAGAIN and a
 * blocking send waits out SO_SNDTIMEO.  So a sender that never ends its
 * message cannot make the kernel hold more than its buffer.  With a larger
 * SO_SNDBUF the message can be finished, and it goes out whole.  The
 * pieces stop at 4 MiB (more than SO_SNDBUF can ever be here) so that a
 * module without the bound does not take the guest's memory.
 */
KCM_TEST(unfinished_message_held_to_sndbuf,
	 KCM_LINUX_BUG("the pieces of an unfinished message are taken without bound"))
{
	enum { PIECE = 4096, PLEN = (4 << 20) - 4 };
	unsigned char *msg = kcm_xmalloc(PLEN + 4);
	uint64_t rng = 424242;
	size_t len = tx_make(msg, PLEN, &rng);
	int types[] = { SOCK_SEQPACKET, SOCK_DGRAM };
	unsigned int t;

	for (t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		int more = types[t] == SOCK_DGRAM ? MSG_MORE : 0;
		int end = types[t] == SOCK_DGRAM ? 0 : MSG_EOR;
		int kcm, peer, sndbuf;
		long long t0;
		size_t off = 0;

		kcm = tx_setup(types[t], NULL, &peer);
		kcm_set_int_opt(kcm, SOL_SOCKET, SO_SNDBUF, 65536);
		sndbuf = kcm_get_int_opt(kcm, SOL_SOCKET, SO_SNDBUF);
		while (off < len - PIECE) {
			ssize_t n = send(kcm, msg + off, PIECE,
					 more | MSG_DONTWAIT);

			if (n < 0) {
				ASSERT_EQ(errno, EAGAIN);
				break;
			}
			ASSERT_EQ(n, PIECE);
			off += n;
		}
		KCM_LOG("%s: %zu bytes of the message taken, SO_SNDBUF %d",
			types[t] == SOCK_DGRAM ? "DGRAM" : "SEQPACKET", off,
			sndbuf);
		EXPECT_GE(off, PIECE);
		EXPECT_LE(off, (size_t)sndbuf + PIECE);
		kcm_set_sndtimeo(kcm, 200);
		t0 = kcm_tick_ms();
		ASSERT_ERRNO(send(kcm, msg + off, PIECE, more), EAGAIN);
		EXPECT_GE(kcm_tick_ms() - t0, 200);
		tx_expect_quiet(peer, 50);

		/* Room for the rest: it is taken in one call and the
		 * message goes out whole.
		 */
		kcm_set_int_opt(kcm, SOL_SOCKET, SO_SNDBUF, 4 * sndbuf);
		tx_send_while_read(kcm, peer, msg + off, len - off, end, msg,
				   len);
		close(kcm);
		close(peer);
	}
	free(msg);
}

/* A SOCK_SEQPACKET message left unfinished when its socket closes is
 * dropped: nothing of it reaches the stream, and another socket of the mux
 * still sends cleanly framed messages on the same TCP socket.
 */
KCM_TEST(seqpacket_partial_close_drops)
{
	unsigned char part[2004], msg[304];
	uint64_t rng = 11;
	size_t len;
	int ka, kb, peer;

	tx_make(part, sizeof(part) - 4, &rng);
	len = tx_make(msg, sizeof(msg) - 4, &rng);
	ka = tx_setup(SOCK_SEQPACKET, NULL, &peer);
	kb = ASSERT_OK(kcm_clone(ka));
	ASSERT_EQ(send(ka, part, 1000, 0), 1000);
	ASSERT_OK(close(ka));
	tx_expect_quiet(peer, 150);
	ASSERT_EQ(send(kb, msg, len, MSG_EOR), (ssize_t)len);
	tx_expect_stream(peer, msg, len);
}

/* One message larger than SO_SNDBUF can ever be (twice wmem_max, the
 * SO_SNDBUF ceiling): Linux accepts it whole on a socket whose queue is
 * empty and sends it; the peer gets exactly the frame.  Done with the
 * default SO_SNDBUF and with the smallest one.
 */
KCM_TEST(dgram_bigger_than_sndbuf, KCM_TIMEOUT(60))
{
	char *wm = kcm_read_file("/proc/sys/net/core/wmem_max");
	size_t wmem_max = wm ? strtoul(wm, NULL, 10) : 212992;
	size_t plen = 4 * wmem_max > (4u << 20) ? 4 * wmem_max : (4u << 20);
	unsigned char *msg = kcm_xmalloc(plen + 4);
	uint64_t rng = 2024;
	size_t len = tx_make(msg, plen, &rng);
	int round;

	free(wm);
	for (round = 0; round < 2; round++) {
		int kcm, peer;

		kcm = tx_setup(SOCK_DGRAM, NULL, &peer);
		if (round == 1) {
			kcm_set_int_opt(kcm, SOL_SOCKET, SO_SNDBUF, 1);
			kcm_diag("SO_SNDBUF 1 reads back as %d",
				 kcm_get_int_opt(kcm, SOL_SOCKET, SO_SNDBUF));
		}
		kcm_set_sndtimeo(kcm, 20000);
		tx_send_while_read(kcm, peer, msg, len, 0, msg, len);
		close(kcm);
		close(peer);
	}
	free(msg);
}

/* No TCP socket attached.  Linux queues: the first sends succeed at once,
 * blocking or not; a message bigger than SO_SNDBUF is still taken while the
 * queue has room; after it the queue is full, MSG_DONTWAIT gives EAGAIN at
 * once and a blocking send with SO_SNDTIMEO waits that long and gives
 * EAGAIN.  Attaching a TCP socket then delivers the queued messages whole
 * and in order, and nothing of the refused ones.
 */
KCM_TEST(nopsock_queue_then_attach)
{
	unsigned char m1[104], m2[1004], m4[504];
	unsigned char *m3, *exp;
	size_t l1, l2, l3, l4, p3;
	uint64_t rng = 77;
	long long t0, j0, dt, dj;
	int kcm, a, b, sndbuf;

	kcm = kcm_socket(SOCK_DGRAM);
	kcm_set_sndtimeo(kcm, 500);
	sndbuf = kcm_get_int_opt(kcm, SOL_SOCKET, SO_SNDBUF);
	p3 = (size_t)sndbuf + 100000;
	m3 = kcm_xmalloc(p3 + 4);
	l1 = tx_make(m1, sizeof(m1) - 4, &rng);
	l2 = tx_make(m2, sizeof(m2) - 4, &rng);
	l3 = tx_make(m3, p3, &rng);
	l4 = tx_make(m4, sizeof(m4) - 4, &rng);

	t0 = kcm_now_ms();
	ASSERT_EQ(send(kcm, m1, l1, 0), (ssize_t)l1);
	ASSERT_EQ(send(kcm, m2, l2, MSG_DONTWAIT), (ssize_t)l2);
	ASSERT_EQ(send(kcm, m3, l3, 0), (ssize_t)l3);
	dt = kcm_now_ms() - t0;
	EXPECT_LT(dt, 2000);	/* queued, not waited for the timeout */

	/* The queue now holds more than SO_SNDBUF. */
	ASSERT_ERRNO(send(kcm, m4, l4, MSG_DONTWAIT), EAGAIN);
	t0 = kcm_now_ms();
	j0 = kcm_tick_ms();
	ASSERT_ERRNO(send(kcm, m4, l4, 0), EAGAIN);
	dj = kcm_tick_ms() - j0;
	dt = kcm_now_ms() - t0;
	KCM_LOG("EAGAIN after %lld ms (tick clock), %lld ms (CLOCK_MONOTONIC)",
		dj, dt);
	/*
	 * Not a tick early: SO_SNDTIMEO counts whole jiffies from the call, so
	 * measured on their clock (kcm_tick_ms()) it lasts the full 500 ms;
	 * on CLOCK_MONOTONIC it ends early by as much as jiffies lagged when
	 * it was armed.
	 */
	EXPECT_GE(dj, 500);
	EXPECT_LT(dt, 5000);

	kcm_tcp_pair(AF_INET, &a, &b);
	kcm_set_rcvtimeo(b, 5000);
	ASSERT_OK(kcm_attach(kcm, a, kcm_prog_len32()));
	exp = kcm_xmalloc(l1 + l2 + l3);
	memcpy(exp, m1, l1);
	memcpy(exp + l1, m2, l2);
	memcpy(exp + l1 + l2, m3, l3);
	tx_expect_stream(b, exp, l1 + l2 + l3);

	/* Room again: the refused message now goes through. */
	ASSERT_EQ(send(kcm, m4, l4, MSG_DONTWAIT), (ssize_t)l4);
	tx_expect_stream(b, m4, l4);
	free(exp);
	free(m3);
}

/*
 * While sends fail with EAGAIN, poll() must not report POLLOUT, and it
 * must report it again once the queue has drained.  Linux's kcm polls
 * with datagram_poll(), which looks at sk_wmem_alloc while KCM accounts
 * its queue in sk_wmem_queued: POLLOUT is always set, so an event loop
 * that waits for POLLOUT spins on EAGAIN.
 */
KCM_TEST(full_queue_no_pollout,
	 KCM_LINUX_BUG("poll() reports POLLOUT while send() fails with EAGAIN"))
{
	unsigned char small[104], *big;
	uint64_t rng = 5;
	size_t ls, lb, pb;
	int kcm, a, b;
	long long t0;

	kcm = kcm_socket(SOCK_DGRAM);
	pb = (size_t)kcm_get_int_opt(kcm, SOL_SOCKET, SO_SNDBUF) + 4096;
	big = kcm_xmalloc(pb + 4);
	lb = tx_make(big, pb, &rng);
	ls = tx_make(small, sizeof(small) - 4, &rng);

	ASSERT_TRUE(kcm_poll1(kcm, POLLOUT, 0) & POLLOUT);
	ASSERT_EQ(send(kcm, big, lb, MSG_DONTWAIT), (ssize_t)lb);
	ASSERT_ERRNO(send(kcm, small, ls, MSG_DONTWAIT), EAGAIN);
	EXPECT_EQ(kcm_poll1(kcm, POLLOUT, 200) & POLLOUT, 0);

	/* Give the queue somewhere to go: POLLOUT comes back and a send
	 * succeeds.
	 */
	kcm_tcp_pair(AF_INET, &a, &b);
	ASSERT_OK(kcm_attach(kcm, a, kcm_prog_len32()));
	{
		struct tx_reader r = { .fd = b, .want = lb + ls };
		pthread_t th;

		r.buf = kcm_xmalloc(r.want);
		kcm_set_rcvtimeo(b, 5000);
		ASSERT_EQ(pthread_create(&th, NULL, tx_reader_fn, &r), 0);
		t0 = kcm_now_ms();
		ASSERT_TRUE(kcm_poll1(kcm, POLLOUT, 5000) & POLLOUT);
		EXPECT_LT(kcm_now_ms() - t0, 5000);
		ASSERT_EQ(send(kcm, small, ls, MSG_DONTWAIT), (ssize_t)ls);
		ASSERT_EQ(pthread_join(th, NULL), 0);
		ASSERT_EQ(r.got, lb + ls);
		ASSERT_MEMEQ(r.buf, big, lb);
		ASSERT_MEMEQ(r.buf + lb, small, ls);
		free(r.buf);
	}
	free(big);
}

/* /proc/net/kcm_stats: after K messages of B bytes in all (frames, header
 * included) through one mux and one psock, the MUX and Psock rows' TX-Msgs
 * and TX-Bytes have grown by exactly K and B.  Those rows add up every mux
 * and psock, so the case reads them before and after.
 */
KCM_TEST(stats_tx_counters)
{
	enum { K = 9 };
	unsigned char *msg = kcm_xmalloc(K * 20000);
	long long mm0, mb0, pm0, pb0, mm, mb, pm, pb, deadline;
	uint64_t rng = 6060;
	size_t off = 0;
	int kcm, peer, i;

	/* Let whatever earlier cases left behind settle first. */
	kcm_msleep(200);
	mm0 = tx_stat("MUX", "TX-Msgs");
	mb0 = tx_stat("MUX", "TX-Bytes");
	pm0 = tx_stat("Psock", "TX-Msgs");
	pb0 = tx_stat("Psock", "TX-Bytes");
	KCM_LOG("before: mux %lld/%lld psock %lld/%lld", mm0, mb0, pm0, pb0);

	kcm = tx_setup(SOCK_DGRAM, NULL, &peer);
	for (i = 0; i < K; i++) {
		size_t len = tx_make(msg + off, 1 + kcm_rand(&rng) % 19000,
				     &rng);

		ASSERT_EQ(send(kcm, msg + off, len, 0), (ssize_t)len);
		off += len;
	}
	tx_expect_stream(peer, msg, off);

	/* Counters may be folded in a little after the data has gone. */
	deadline = kcm_now_ms() + 3000;
	do {
		mm = tx_stat("MUX", "TX-Msgs") - mm0;
		mb = tx_stat("MUX", "TX-Bytes") - mb0;
		pm = tx_stat("Psock", "TX-Msgs") - pm0;
		pb = tx_stat("Psock", "TX-Bytes") - pb0;
		if (mm == K && mb == (long long)off && pm == K &&
		    pb == (long long)off)
			break;
		kcm_msleep(50);
	} while (kcm_now_ms() < deadline);
	EXPECT_EQ(mm, K);
	EXPECT_EQ(mb, off);
	EXPECT_EQ(pm, K);
	EXPECT_EQ(pb, off);
	free(msg);
}
