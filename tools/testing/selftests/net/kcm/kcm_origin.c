// SPDX-License-Identifier: GPL-2.0
/*
 * AF_KCM extensions of this implementation: the origin of a received
 * message (KCM_RECV_ORIGIN) and sending on a chosen TCP connection
 * (a KCM_ORIGIN control message given to sendmsg).  Every case here uses an
 * extension, so all are KCM_EXT and skipped on lane linux.
 *
 * What is specified (include/uapi/linux/kcm.h):
 *  - with KCM_RECV_ORIGIN on, every message received carries one control
 *    message SOL_KCM/KCM_ORIGIN holding the __u64 SO_COOKIE of the TCP
 *    socket it arrived on; a control buffer too small for it gives
 *    MSG_CTRUNC and the message is still delivered; with the option off
 *    (the default) there is no control message and nothing else changes;
 *  - a SOL_KCM/KCM_ORIGIN control message on sendmsg/sendmmsg (MSG_BATCH
 *    and SOCK_SEQPACKET pieces too) sends the message whole on the attached
 *    TCP socket with that cookie and on no other; an unknown cookie gives
 *    ENOENT, a failed connection EPIPE, a bad length or level EINVAL; all
 *    pieces of one SOCK_SEQPACKET message name the same cookie or none
 *    (EINVAL otherwise).
 *
 * Messages are built by kcm_msg_build(): a 4-byte big-endian length, a
 * connection id, a sequence number and a filler derived from both, so that
 * a message read back proves by itself that it is whole and which one it
 * is.  The TCP peers of directed sends parse their raw stream.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kcm_test.h"

#define BIG		(256 * 1024)

/* ---- local helpers ------------------------------------------------------ */

struct conn {
	int tcp;		/* attached to the mux */
	int peer;		/* the far end, read and written by the test */
	uint64_t cookie;	/* SO_COOKIE of tcp */
};

/* A control buffer, aligned for struct cmsghdr. */
union ctl {
	char buf[CMSG_SPACE(sizeof(uint64_t)) * 4];
	struct cmsghdr align;
};

static uint64_t so_cookie(int fd)
{
	uint64_t c = 0;
	socklen_t len = sizeof(c);

	ASSERT_OK(getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len));
	ASSERT_EQ(len, sizeof(c));
	ASSERT_NE(c, 0);
	return c;
}

static uint32_t be32(const void *p)
{
	const unsigned char *b = p;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	       (uint32_t)b[2] << 8 | b[3];
}

/*
 * A KCM socket of @type with @n TCP connections attached.  The third one is
 * IPv6.  Half the cookies are read before attaching and half after, so
 * both orders of making the cookie are covered.
 */
static int mux_setup(int type, struct conn *c, int n)
{
	int kcm = kcm_socket(type);
	int prog = kcm_prog_len32();
	int i;

	for (i = 0; i < n; i++) {
		kcm_tcp_pair(i == 2 ? AF_INET6 : AF_INET, &c[i].peer, &c[i].tcp);
		if (i % 2 == 0)
			c[i].cookie = so_cookie(c[i].tcp);
		ASSERT_OK(kcm_attach(kcm, c[i].tcp, prog));
		if (i % 2 == 1)
			c[i].cookie = so_cookie(c[i].tcp);
		kcm_set_rcvtimeo(c[i].peer, 10000);
	}
	for (i = 0; i < n; i++) {
		int j;

		for (j = 0; j < i; j++)
			ASSERT_NE(c[i].cookie, c[j].cookie);
	}
	return kcm;
}

/* What recv_origin() saw besides the data. */
struct rinfo {
	int flags;		/* msg_flags */
	int norigin;		/* well-formed SOL_KCM/KCM_ORIGIN cmsgs */
	int nother;		/* any other cmsg */
	uint64_t cookie;	/* the last origin seen */
	size_t controllen;	/* msg_controllen on return */
};

static void parse_ctl(struct msghdr *m, struct rinfo *ri)
{
	struct cmsghdr *cm;

	ri->flags = m->msg_flags;
	ri->controllen = m->msg_controllen;
	ri->norigin = ri->nother = 0;
	ri->cookie = 0;
	if (!m->msg_control || !m->msg_controllen)
		return;
	for (cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
		if (cm->cmsg_level == SOL_KCM && cm->cmsg_type == KCM_ORIGIN &&
		    cm->cmsg_len == CMSG_LEN(sizeof(uint64_t))) {
			memcpy(&ri->cookie, CMSG_DATA(cm), sizeof(uint64_t));
			ri->norigin++;
		} else {
			ri->nother++;
		}
	}
}

/*
 * recvmsg() one message within @ms with a control buffer of @ctl_len bytes
 * (0: msg_control NULL).  Returns what recvmsg returned; on timeout -1 with
 * errno EAGAIN.
 */
static ssize_t recv_origin(int kcm, void *buf, size_t cap, size_t ctl_len,
			   struct rinfo *ri, int ms)
{
	long long deadline = kcm_now_ms() + ms;
	union ctl ctl;

	if (ctl_len > sizeof(ctl.buf))
		KCM_FAIL("control buffer of %zu bytes too large", ctl_len);
	for (;;) {
		struct iovec iov = { buf, cap };
		struct msghdr m = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl_len ? ctl.buf : NULL,
			.msg_controllen = ctl_len,
		};
		long long left = deadline - kcm_now_ms();
		ssize_t n;

		if (left < 0)
			left = 0;
		kcm_poll1(kcm, POLLIN, (int)left);
		memset(&ctl, 0, sizeof(ctl));
		n = recvmsg(kcm, &m, MSG_DONTWAIT);
		if (n >= 0) {
			parse_ctl(&m, ri);
			return n;
		}
		if (errno != EAGAIN || left == 0)
			return n;
	}
}

/* sendmsg() of one buffer, with a KCM_ORIGIN cmsg when @cookie != 0. */
static ssize_t send_to(int kcm, const void *buf, size_t len, uint64_t cookie,
		       int flags)
{
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	union ctl ctl;

	memset(&ctl, 0, sizeof(ctl));
	if (cookie) {
		struct cmsghdr *cm;

		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(cookie));
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_KCM;
		cm->cmsg_type = KCM_ORIGIN;
		cm->cmsg_len = CMSG_LEN(sizeof(cookie));
		memcpy(CMSG_DATA(cm), &cookie, sizeof(cookie));
	}
	return sendmsg(kcm, &m, flags);
}

/* sendmsg() with one hand-made control message. */
static ssize_t send_raw_cmsg(int kcm, const void *buf, size_t len, int level,
			     int type, const void *data, size_t dlen)
{
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	union ctl ctl;
	struct cmsghdr *cm;

	memset(&ctl, 0, sizeof(ctl));
	m.msg_control = ctl.buf;
	m.msg_controllen = CMSG_SPACE(dlen);
	cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = level;
	cm->cmsg_type = type;
	cm->cmsg_len = CMSG_LEN(dlen);
	memcpy(CMSG_DATA(cm), data, dlen);
	return sendmsg(kcm, &m, 0);
}

/* Reads one framed message from a TCP peer; returns its whole size. */
static size_t peer_read_msg(int peer, unsigned char *buf, size_t cap)
{
	size_t len;

	kcm_read_all(peer, buf, 4);
	len = (size_t)be32(buf) + 4;
	if (len > cap)
		KCM_FAIL("peer fd %d: frame header says %zu bytes (max %zu): stream out of step",
			 peer, len, cap);
	kcm_read_all(peer, buf + 4, len - 4);
	return len;
}

/* Reads the next message on @peer and checks it is (@conn, @seq, @size). */
static void peer_expect(int peer, uint32_t conn, uint32_t seq, size_t size)
{
	unsigned char *buf = kcm_xmalloc(BIG);
	uint32_t c = 0, s = 0;
	size_t n = peer_read_msg(peer, buf, BIG);
	int bad = kcm_msg_check(buf, n, &c, &s);

	if (bad || n != size || c != conn || s != seq)
		KCM_FAIL("peer fd %d: expected message conn %u seq %u (%zu bytes), got %zu bytes, %s, conn %u seq %u",
			 peer, conn, seq, size, n, bad ? "malformed" : "well formed",
			 c, s);
	free(buf);
}

/* The peer must have nothing to read within @ms. */
static void peer_quiet(int peer, int ms)
{
	unsigned char c;

	if (ms)
		kcm_msleep(ms);
	ASSERT_ERRNO(recv(peer, &c, 1, MSG_DONTWAIT), EAGAIN);
}

/* The KCM socket must have nothing to receive within @ms. */
static void kcm_quiet(int kcm, int ms)
{
	char b[64];

	ASSERT_ERRNO(kcm_recv_timeout(kcm, b, sizeof(b), 0, ms), EAGAIN);
}

static size_t pick_size(uint64_t *rng, uint32_t i)
{
	if (i % 25 == 7)
		return 40000 + kcm_rand(rng) % 20000;
	return KCM_MSG_MIN + kcm_rand(rng) % 3000;
}

/* ---- origin on receive -------------------------------------------------- */

struct writer {
	int fd;
	uint32_t conn;
	uint32_t count;
};

/* A TCP peer writing @count messages of connection @conn, one write each. */
static void *peer_writer(void *arg)
{
	struct writer *w = arg;
	unsigned char *buf = kcm_xmalloc(BIG);
	uint64_t rng = 0x1234 + w->conn;
	uint32_t i;

	for (i = 0; i < w->count; i++) {
		size_t size = pick_size(&rng, i);

		kcm_msg_build(buf, size, w->conn, i);
		kcm_write_all(w->fd, buf, size);
	}
	free(buf);
	return NULL;
}

/*
 * Three connections, each peer writing its own sequence-numbered messages
 * concurrently; every message read must carry the cookie of the connection
 * its payload names, and each connection's messages arrive in order.
 */
static void origin_interleaved(int type)
{
	enum { N = 3, COUNT = 150 };
	struct conn c[N];
	struct writer w[N];
	pthread_t th[N];
	uint32_t next[N] = { 0 };
	unsigned char *buf = kcm_xmalloc(BIG);
	int kcm = mux_setup(type, c, N);
	int i, total;

	kcm_set_int_opt(kcm, SOL_KCM, KCM_RECV_ORIGIN, 1);
	for (i = 0; i < N; i++) {
		w[i] = (struct writer){ c[i].peer, i, COUNT };
		ASSERT_OK(-pthread_create(&th[i], NULL, peer_writer, &w[i]));
	}
	for (total = 0; total < N * COUNT; total++) {
		struct rinfo ri;
		uint32_t conn, seq;
		ssize_t n;

		n = recv_origin(kcm, buf, BIG, CMSG_SPACE(8) * 2, &ri, 10000);
		if (n < 0)
			KCM_FAIL("message %d of %d: recvmsg: %s", total,
				 N * COUNT, kcm_errname(errno));
		if (kcm_msg_check(buf, n, &conn, &seq) || conn >= N)
			KCM_FAIL("message %d: malformed (%zd bytes)", total, n);
		if (seq != next[conn])
			KCM_FAIL("conn %u: expected seq %u, got %u", conn,
				 next[conn], seq);
		next[conn]++;
		if (ri.norigin != 1 || ri.nother || (ri.flags & MSG_CTRUNC))
			KCM_FAIL("conn %u seq %u: %d origin cmsg(s), %d other(s), flags 0x%x",
				 conn, seq, ri.norigin, ri.nother, ri.flags);
		if (ri.cookie != c[conn].cookie)
			KCM_FAIL("conn %u seq %u: origin cookie %llu, SO_COOKIE of that connection %llu (others: %llu %llu %llu)",
				 conn, seq, (unsigned long long)ri.cookie,
				 (unsigned long long)c[conn].cookie,
				 (unsigned long long)c[0].cookie,
				 (unsigned long long)c[1].cookie,
				 (unsigned long long)c[2].cookie);
	}
	for (i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	kcm_quiet(kcm, 100);
	free(buf);
}

KCM_TEST(origin_cookie_per_connection, KCM_EXT, KCM_TIMEOUT(90))
{
	origin_interleaved(SOCK_DGRAM);
}

KCM_TEST(origin_cookie_per_connection_seqpacket, KCM_EXT, KCM_TIMEOUT(90))
{
	origin_interleaved(SOCK_SEQPACKET);
}

/* A control buffer too small for the origin: MSG_CTRUNC, data intact. */
KCM_TEST(origin_short_control_buffer, KCM_EXT)
{
	struct conn c[1];
	unsigned char msg[600], buf[1000];
	uint32_t conn, seq;
	struct rinfo ri;
	int kcm = mux_setup(SOCK_DGRAM, c, 1);
	ssize_t n;

	kcm_set_int_opt(kcm, SOL_KCM, KCM_RECV_ORIGIN, 1);

	/* Room for the header and half the cookie. */
	kcm_msg_build(msg, sizeof(msg), 0, 0);
	kcm_write_all(c[0].peer, msg, sizeof(msg));
	n = ASSERT_OK(recv_origin(kcm, buf, sizeof(buf), CMSG_LEN(4), &ri, 10000));
	ASSERT_EQ(n, sizeof(msg));
	ASSERT_EQ(kcm_msg_check(buf, n, &conn, &seq), 0);
	ASSERT_EQ(seq, 0);
	EXPECT_TRUE(ri.flags & MSG_CTRUNC);
	EXPECT_EQ(ri.norigin, 0);

	/* No control buffer at all. */
	kcm_msg_build(msg, sizeof(msg), 0, 1);
	kcm_write_all(c[0].peer, msg, sizeof(msg));
	n = ASSERT_OK(recv_origin(kcm, buf, sizeof(buf), 0, &ri, 10000));
	ASSERT_EQ(n, sizeof(msg));
	ASSERT_EQ(kcm_msg_check(buf, n, &conn, &seq), 0);
	ASSERT_EQ(seq, 1);
	EXPECT_TRUE(ri.flags & MSG_CTRUNC);

	/* Less than a cmsghdr. */
	kcm_msg_build(msg, sizeof(msg), 0, 2);
	kcm_write_all(c[0].peer, msg, sizeof(msg));
	n = ASSERT_OK(recv_origin(kcm, buf, sizeof(buf), 8, &ri, 10000));
	ASSERT_EQ(n, sizeof(msg));
	ASSERT_EQ(kcm_msg_check(buf, n, &conn, &seq), 0);
	ASSERT_EQ(seq, 2);
	EXPECT_TRUE(ri.flags & MSG_CTRUNC);

	/* Room enough again: the cookie, and no MSG_CTRUNC. */
	kcm_msg_build(msg, sizeof(msg), 0, 3);
	kcm_write_all(c[0].peer, msg, sizeof(msg));
	n = ASSERT_OK(recv_origin(kcm, buf, sizeof(buf), CMSG_SPACE(8), &ri, 10000));
	ASSERT_EQ(n, sizeof(msg));
	ASSERT_EQ(kcm_msg_check(buf, n, &conn, &seq), 0);
	ASSERT_EQ(seq, 3);
	EXPECT_FALSE(ri.flags & MSG_CTRUNC);
	EXPECT_EQ(ri.norigin, 1);
	EXPECT_EQ(ri.cookie, c[0].cookie);
	kcm_quiet(kcm, 100);
}

struct seen {
	ssize_t n;
	int flags;
	uint64_t sum;
};

/* Three messages (one larger than the receive buffer) read back. */
static void read_three(int kcm, struct conn *c, uint32_t seq0,
		       struct seen *out, int origin)
{
	static const size_t sizes[3] = { 100, 3000, 500 };
	unsigned char msg[3000], buf[1000];
	int i;

	for (i = 0; i < 3; i++) {
		kcm_msg_build(msg, sizes[i], i % 2, seq0 + i);
		kcm_write_all(c[i % 2].peer, msg, sizes[i]);
		kcm_msleep(20);
	}
	for (i = 0; i < 3; i++) {
		struct rinfo ri;
		ssize_t n;

		n = ASSERT_OK(recv_origin(kcm, buf, sizeof(buf),
					  sizeof(union ctl), &ri, 10000));
		out[i].n = n;
		out[i].flags = ri.flags;
		out[i].sum = kcm_csum(buf + 16, n - 16);
		if (origin) {
			EXPECT_EQ(ri.norigin, 1);
			EXPECT_EQ(ri.cookie, c[i % 2].cookie);
		} else {
			/* Off: no control message at all. */
			EXPECT_EQ(ri.controllen, 0);
			EXPECT_EQ(ri.norigin, 0);
			EXPECT_EQ(ri.nother, 0);
		}
		EXPECT_FALSE(ri.flags & MSG_CTRUNC);
	}
}

/*
 * The option off (default), on, and off again: no control message while
 * off, and the same lengths, flags and data in every mode.
 */
KCM_TEST(origin_off_no_cmsg, KCM_EXT)
{
	struct seen off[3], on[3], off2[3];
	struct conn c[2];
	int kcm = mux_setup(SOCK_DGRAM, c, 2);
	int i;

	ASSERT_EQ(kcm_get_int_opt(kcm, SOL_KCM, KCM_RECV_ORIGIN), 0);
	read_three(kcm, c, 0, off, 0);
	kcm_set_int_opt(kcm, SOL_KCM, KCM_RECV_ORIGIN, 1);
	read_three(kcm, c, 0, on, 1);
	kcm_set_int_opt(kcm, SOL_KCM, KCM_RECV_ORIGIN, 0);
	read_three(kcm, c, 0, off2, 0);
	for (i = 0; i < 3; i++) {
		EXPECT_EQ(on[i].n, off[i].n);
		EXPECT_EQ(on[i].flags, off[i].flags);
		EXPECT_EQ(on[i].sum, off[i].sum);
		EXPECT_EQ(off2[i].n, off[i].n);
		EXPECT_EQ(off2[i].flags, off[i].flags);
		EXPECT_EQ(off2[i].sum, off[i].sum);
	}
	/* The message larger than the buffer was cut the same way. */
	EXPECT_EQ(off[1].n, 1000);
	EXPECT_TRUE(off[1].flags & MSG_TRUNC);
	kcm_quiet(kcm, 100);
}

KCM_TEST(origin_sockopt_read_back, KCM_EXT)
{
	int kcm = kcm_socket(SOCK_DGRAM);
	int clone = ASSERT_OK(kcm_clone(kcm));
	int sq = kcm_socket(SOCK_SEQPACKET);

	ASSERT_EQ(kcm_get_int_opt(kcm, SOL_KCM, KCM_RECV_ORIGIN), 0);
	ASSERT_EQ(kcm_get_int_opt(clone, SOL_KCM, KCM_RECV_ORIGIN), 0);
	ASSERT_EQ(kcm_get_int_opt(sq, SOL_KCM, KCM_RECV_ORIGIN), 0);

	kcm_set_int_opt(kcm, SOL_KCM, KCM_RECV_ORIGIN, 1);
	EXPECT_EQ(kcm_get_int_opt(kcm, SOL_KCM, KCM_RECV_ORIGIN), 1);
	/* Per socket: the clone keeps its own setting. */
	EXPECT_EQ(kcm_get_int_opt(clone, SOL_KCM, KCM_RECV_ORIGIN), 0);

	kcm_set_int_opt(kcm, SOL_KCM, KCM_RECV_ORIGIN, 0);
	EXPECT_EQ(kcm_get_int_opt(kcm, SOL_KCM, KCM_RECV_ORIGIN), 0);

	kcm_set_int_opt(kcm, SOL_KCM, KCM_RECV_ORIGIN, 7);
	EXPECT_NE(kcm_get_int_opt(kcm, SOL_KCM, KCM_RECV_ORIGIN), 0);

	kcm_set_int_opt(sq, SOL_KCM, KCM_RECV_ORIGIN, 1);
	EXPECT_EQ(kcm_get_int_opt(sq, SOL_KCM, KCM_RECV_ORIGIN), 1);

	/* Independent of KCM_RECV_DISABLE. */
	kcm_set_int_opt(clone, SOL_KCM, KCM_RECV_DISABLE, 1);
	EXPECT_EQ(kcm_get_int_opt(clone, SOL_KCM, KCM_RECV_ORIGIN), 0);
	EXPECT_NE(kcm_get_int_opt(kcm, SOL_KCM, KCM_RECV_ORIGIN), 0);
}

/* recvmmsg: each message of a batch carries its own origin. */
KCM_TEST(origin_recvmmsg, KCM_EXT, KCM_TIMEOUT(60))
{
	enum { N = 3, PER = 20, VLEN = 16 };
	struct conn c[N];
	uint32_t next[N] = { 0 };
	unsigned char msg[2000];
	unsigned char *bufs = kcm_xmalloc(VLEN * 2048);
	union ctl ctls[VLEN];
	struct mmsghdr mm[VLEN];
	struct iovec iov[VLEN];
	int kcm = mux_setup(SOCK_DGRAM, c, N);
	int got = 0, batch_max = 0, i, r;

	kcm_set_int_opt(kcm, SOL_KCM, KCM_RECV_ORIGIN, 1);
	for (r = 0; r < PER; r++)
		for (i = 0; i < N; i++) {
			kcm_msg_build(msg, 100 + 50 * i + r, i, r);
			kcm_write_all(c[i].peer, msg, 100 + 50 * i + r);
		}
	kcm_msleep(300);

	while (got < N * PER) {
		int k;

		memset(mm, 0, sizeof(mm));
		memset(ctls, 0, sizeof(ctls));
		for (k = 0; k < VLEN; k++) {
			iov[k].iov_base = bufs + k * 2048;
			iov[k].iov_len = 2048;
			mm[k].msg_hdr.msg_iov = &iov[k];
			mm[k].msg_hdr.msg_iovlen = 1;
			mm[k].msg_hdr.msg_control = ctls[k].buf;
			mm[k].msg_hdr.msg_controllen = sizeof(ctls[k].buf);
		}
		if (!(kcm_poll1(kcm, POLLIN, 10000) & POLLIN))
			KCM_FAIL("%d of %d messages received, then nothing", got,
				 N * PER);
		r = ASSERT_OK(recvmmsg(kcm, mm, VLEN, MSG_DONTWAIT, NULL));
		if (r > batch_max)
			batch_max = r;
		for (k = 0; k < r; k++) {
			struct rinfo ri;
			uint32_t conn, seq;

			parse_ctl(&mm[k].msg_hdr, &ri);
			if (kcm_msg_check(iov[k].iov_base, mm[k].msg_len, &conn,
					  &seq) || conn >= N)
				KCM_FAIL("batch entry %d: malformed (%u bytes)",
					 k, mm[k].msg_len);
			if (seq != next[conn])
				KCM_FAIL("conn %u: expected seq %u, got %u",
					 conn, next[conn], seq);
			next[conn]++;
			if (ri.norigin != 1 || ri.cookie != c[conn].cookie ||
			    (ri.flags & MSG_CTRUNC))
				KCM_FAIL("batch entry %d of %d (conn %u seq %u): %d origin cmsg(s), cookie %llu, want %llu, flags 0x%x",
					 k, r, conn, seq, ri.norigin,
					 (unsigned long long)ri.cookie,
					 (unsigned long long)c[conn].cookie,
					 ri.flags);
		}
		got += r;
	}
	EXPECT_GT(batch_max, 1);
	kcm_quiet(kcm, 100);
	free(bufs);
}

/* ---- directed send ------------------------------------------------------ */

/*
 * 4 KCM sockets of one mux (the first and 3 clones), one thread each,
 * sending at once; message i of thread t goes to connection (t + i) % 4.
 * The id in a message is sender * 16 + destination.  Each peer parses its
 * stream: only messages for itself, from every sender in order, exactly
 * the count sent.
 */
enum { DC_N = 4, DC_PER = 240 };

struct dc_sender {
	int kcm, t;
	struct conn *c;
};

static void *dc_send(void *arg)
{
	struct dc_sender *s = arg;
	unsigned char *buf = kcm_xmalloc(BIG);
	uint64_t rng = 0xabcdef + s->t;
	uint32_t i;

	for (i = 0; i < DC_PER; i++) {
		int dest = (s->t + i) % DC_N;
		size_t size = pick_size(&rng, i);
		ssize_t n;

		kcm_msg_build(buf, size, s->t * 16 + dest, i);
		n = send_to(s->kcm, buf, size, s->c[dest].cookie, 0);
		if (n != (ssize_t)size)
			KCM_FAIL("sender %d message %u to conn %d: sendmsg %zd: %s",
				 s->t, i, dest, n, kcm_errname(errno));
	}
	free(buf);
	return NULL;
}

struct dc_reader {
	int peer, d;
};

static void *dc_read(void *arg)
{
	struct dc_reader *r = arg;
	unsigned char *buf = kcm_xmalloc(BIG);
	int64_t last[DC_N];
	int count[DC_N] = { 0 };
	int k, t;

	for (t = 0; t < DC_N; t++)
		last[t] = -1;
	for (k = 0; k < DC_N * DC_PER / DC_N; k++) {
		size_t n = peer_read_msg(r->peer, buf, BIG);
		uint32_t id, seq;
		int sender, dest;

		if (kcm_msg_check(buf, n, &id, &seq))
			KCM_FAIL("peer %d, message %d: malformed (%zu bytes)",
				 r->d, k, n);
		sender = id / 16;
		dest = id % 16;
		if (dest != r->d || sender >= DC_N)
			KCM_FAIL("peer %d, message %d: sender %d seq %u meant for conn %d arrived on conn %d",
				 r->d, k, sender, seq, dest, r->d);
		if ((int64_t)seq <= last[sender])
			KCM_FAIL("peer %d: sender %d seq %u after %lld", r->d,
				 sender, seq, (long long)last[sender]);
		last[sender] = seq;
		count[sender]++;
	}
	for (t = 0; t < DC_N; t++)
		if (count[t] != DC_PER / DC_N)
			KCM_FAIL("peer %d: %d messages from sender %d, want %d",
				 r->d, count[t], t, DC_PER / DC_N);
	free(buf);
	return NULL;
}

KCM_TEST(directed_concurrent_4_senders, KCM_EXT, KCM_TIMEOUT(150))
{
	struct conn c[DC_N];
	struct dc_sender s[DC_N];
	struct dc_reader r[DC_N];
	pthread_t st[DC_N], rt[DC_N];
	int kcm = mux_setup(SOCK_DGRAM, c, DC_N);
	int i;

	for (i = 0; i < DC_N; i++) {
		s[i].kcm = i ? ASSERT_OK(kcm_clone(kcm)) : kcm;
		s[i].t = i;
		s[i].c = c;
		r[i].peer = c[i].peer;
		r[i].d = i;
	}
	for (i = 0; i < DC_N; i++)
		ASSERT_OK(-pthread_create(&rt[i], NULL, dc_read, &r[i]));
	for (i = 0; i < DC_N; i++)
		ASSERT_OK(-pthread_create(&st[i], NULL, dc_send, &s[i]));
	for (i = 0; i < DC_N; i++)
		pthread_join(st[i], NULL);
	for (i = 0; i < DC_N; i++)
		pthread_join(rt[i], NULL);
	for (i = 0; i < DC_N; i++)
		peer_quiet(c[i].peer, i ? 0 : 200);
}

/*
 * Directed and undirected messages at once, from 6 threads on 3 KCM
 * sockets of one mux (2 threads a socket), over 4 connections: message i
 * of thread t goes to connection (t + i) % 4, but every third, which goes
 * to any.  The id in a message is sender * 16 + destination (DM_ANY: any).
 * The main thread reads every peer: each message whole, a directed one on
 * its connection, each exactly once, and each sender's in order on every
 * connection.
 */
enum { DM_CONNS = 4, DM_SOCKS = 3, DM_SENDERS = 6, DM_PER = 300,
       DM_ANY = 15 };

static void *dm_send(void *arg)
{
	struct dc_sender *s = arg;
	unsigned char *buf = kcm_xmalloc(BIG);
	uint64_t rng = 0x5eed + s->t;
	uint32_t i;

	for (i = 0; i < DM_PER; i++) {
		int dest = i % 3 ? (s->t + i) % DM_CONNS : DM_ANY;
		uint64_t cookie = dest == DM_ANY ? 0 : s->c[dest].cookie;
		size_t size = pick_size(&rng, i);
		ssize_t n;

		kcm_msg_build(buf, size, s->t * 16 + dest, i);
		n = send_to(s->kcm, buf, size, cookie, 0);
		if (n != (ssize_t)size)
			KCM_FAIL("sender %d message %u to conn %d: sendmsg %zd: %s",
				 s->t, i, dest, n, kcm_errname(errno));
	}
	free(buf);
	return NULL;
}

KCM_TEST(mixed_concurrent_6_senders, KCM_EXT, KCM_TIMEOUT(150))
{
	static unsigned char seen[DM_SENDERS][DM_PER];
	int64_t last[DM_CONNS][DM_SENDERS];
	struct conn c[DM_CONNS];
	struct dc_sender s[DM_SENDERS];
	pthread_t st[DM_SENDERS];
	unsigned char *buf = kcm_xmalloc(BIG);
	int kcm[DM_SOCKS], got = 0, i, x;

	kcm[0] = mux_setup(SOCK_DGRAM, c, DM_CONNS);
	for (i = 1; i < DM_SOCKS; i++)
		kcm[i] = ASSERT_OK(kcm_clone(kcm[0]));
	for (x = 0; x < DM_CONNS; x++)
		for (i = 0; i < DM_SENDERS; i++)
			last[x][i] = -1;
	for (i = 0; i < DM_SENDERS; i++) {
		s[i].kcm = kcm[i % DM_SOCKS];
		s[i].t = i;
		s[i].c = c;
		ASSERT_OK(-pthread_create(&st[i], NULL, dm_send, &s[i]));
	}
	while (got < DM_SENDERS * DM_PER) {
		struct pollfd p[DM_CONNS];

		for (x = 0; x < DM_CONNS; x++)
			p[x] = (struct pollfd){ c[x].peer, POLLIN, 0 };
		if (poll(p, DM_CONNS, 10000) <= 0)
			KCM_FAIL("%d of %d messages arrived, then nothing", got,
				 DM_SENDERS * DM_PER);
		for (x = 0; x < DM_CONNS; x++) {
			uint32_t id, seq;
			int sender, dest;
			size_t n;

			if (!(p[x].revents & POLLIN))
				continue;
			n = peer_read_msg(c[x].peer, buf, BIG);
			if (kcm_msg_check(buf, n, &id, &seq))
				KCM_FAIL("conn %d: malformed %zu-byte message after %d",
					 x, n, got);
			sender = id / 16;
			dest = id % 16;
			if (sender >= DM_SENDERS || seq >= DM_PER ||
			    (dest != DM_ANY && dest != x))
				KCM_FAIL("conn %d: sender %d seq %u meant for conn %d",
					 x, sender, seq, dest);
			if (seen[sender][seq])
				KCM_FAIL("conn %d: sender %d seq %u again", x,
					 sender, seq);
			if ((int64_t)seq <= last[x][sender])
				KCM_FAIL("conn %d: sender %d seq %u after %lld", x,
					 sender, seq, (long long)last[x][sender]);
			seen[sender][seq] = 1;
			last[x][sender] = seq;
			got++;
		}
	}
	for (i = 0; i < DM_SENDERS; i++)
		pthread_join(st[i], NULL);
	for (x = 0; x < DM_CONNS; x++)
		peer_quiet(c[x].peer, x ? 0 : 200);
	free(buf);
}

/* Destinations of the 6 messages in the batch cases. */
static const int batch_dest[6] = { 0, 1, 2, 2, 1, 0 };

/*
 * Reads the 6 messages from whichever peer they arrive on: each must be on
 * the connection it names, in order there, and nothing more.
 */
static void batch_expect(struct conn *c)
{
	unsigned char buf[1000];
	int next[3] = { 0, 0, 0 };
	int got = 0, k;

	while (got < 6) {
		struct pollfd p[3];
		int x;

		for (x = 0; x < 3; x++)
			p[x] = (struct pollfd){ c[x].peer, POLLIN, 0 };
		if (poll(p, 3, 10000) <= 0)
			KCM_FAIL("%d of 6 messages arrived, then nothing", got);
		for (x = 0; x < 3; x++) {
			uint32_t d, seq;
			size_t n;

			if (!(p[x].revents & POLLIN))
				continue;
			n = peer_read_msg(c[x].peer, buf, sizeof(buf));
			if (kcm_msg_check(buf, n, &d, &seq) || seq >= 6)
				KCM_FAIL("conn %d: malformed %zu-byte message", x, n);
			if ((int)d != x)
				KCM_FAIL("message %u, directed to conn %u, arrived on conn %d",
					 seq, d, x);
			while (next[x] < 6 && batch_dest[next[x]] != x)
				next[x]++;
			if ((int)seq != next[x])
				KCM_FAIL("conn %d: message %u where %d was due", x,
					 seq, next[x]);
			next[x]++;
			got++;
		}
	}
	for (k = 0; k < 3; k++)
		peer_quiet(c[k].peer, k ? 0 : 200);
}

KCM_TEST(directed_sendmmsg, KCM_EXT)
{
	struct conn c[3];
	unsigned char msgs[6][300];
	union ctl ctls[6];
	struct mmsghdr mm[6];
	struct iovec iov[6];
	int kcm = mux_setup(SOCK_DGRAM, c, 3);
	int k;

	memset(mm, 0, sizeof(mm));
	memset(ctls, 0, sizeof(ctls));
	for (k = 0; k < 6; k++) {
		struct cmsghdr *cm;
		int d = batch_dest[k];

		kcm_msg_build(msgs[k], 200 + 10 * k, d, k);
		iov[k].iov_base = msgs[k];
		iov[k].iov_len = 200 + 10 * k;
		mm[k].msg_hdr.msg_iov = &iov[k];
		mm[k].msg_hdr.msg_iovlen = 1;
		mm[k].msg_hdr.msg_control = ctls[k].buf;
		mm[k].msg_hdr.msg_controllen = CMSG_SPACE(8);
		cm = CMSG_FIRSTHDR(&mm[k].msg_hdr);
		cm->cmsg_level = SOL_KCM;
		cm->cmsg_type = KCM_ORIGIN;
		cm->cmsg_len = CMSG_LEN(8);
		memcpy(CMSG_DATA(cm), &c[d].cookie, 8);
	}
	ASSERT_EQ(sendmmsg(kcm, mm, 6, 0), 6);
	for (k = 0; k < 6; k++)
		EXPECT_EQ(mm[k].msg_len, 200 + 10 * k);
	batch_expect(c);
}

KCM_TEST(directed_msg_batch, KCM_EXT)
{
	struct conn c[3];
	unsigned char msg[300];
	int kcm = mux_setup(SOCK_DGRAM, c, 3);
	int k;

	for (k = 0; k < 6; k++) {
		int d = batch_dest[k];

		kcm_msg_build(msg, 200 + 10 * k, d, k);
		ASSERT_EQ(send_to(kcm, msg, 200 + 10 * k, c[d].cookie,
				  k < 5 ? MSG_BATCH : 0), 200 + 10 * k);
	}
	batch_expect(c);
}

/*
 * ENOENT: a cookie no socket has, the cookie of a TCP socket never
 * attached, of one attached to another mux, and of one unattached.
 */
KCM_TEST(directed_unknown_cookie_enoent, KCM_EXT)
{
	struct conn c[2];
	unsigned char msg[100];
	int kcm = mux_setup(SOCK_DGRAM, c, 2);
	int other = kcm_socket(SOCK_DGRAM);
	int lone_a, lone_b, oth_a, oth_b;
	uint64_t lone, oth, bogus = 0x5eed5eed5eed5eedull;

	kcm_msg_build(msg, sizeof(msg), 9, 0);
	EXPECT_ERRNO(send_to(kcm, msg, sizeof(msg), bogus, 0), ENOENT);
	EXPECT_ERRNO(send_to(kcm, msg, sizeof(msg), bogus, MSG_DONTWAIT), ENOENT);

	kcm_tcp_pair(AF_INET, &lone_a, &lone_b);
	lone = so_cookie(lone_a);
	EXPECT_ERRNO(send_to(kcm, msg, sizeof(msg), lone, 0), ENOENT);

	kcm_tcp_pair(AF_INET, &oth_b, &oth_a);
	ASSERT_OK(kcm_attach(other, oth_a, kcm_prog_len32()));
	oth = so_cookie(oth_a);
	EXPECT_ERRNO(send_to(kcm, msg, sizeof(msg), oth, 0), ENOENT);
	/* ... while its own mux sends there. */
	kcm_set_rcvtimeo(oth_b, 10000);
	ASSERT_EQ(send_to(other, msg, sizeof(msg), oth, 0), sizeof(msg));
	peer_expect(oth_b, 9, 0, sizeof(msg));

	/* Unattached: the cookie is no longer of this mux. */
	ASSERT_OK(kcm_unattach(kcm, c[1].tcp));
	EXPECT_ERRNO(send_to(kcm, msg, sizeof(msg), c[1].cookie, 0), ENOENT);
	EXPECT_ERRNO(send_to(kcm, msg, sizeof(msg), c[1].cookie, MSG_DONTWAIT),
		     ENOENT);

	/* The remaining connection still works, and only it got anything. */
	kcm_msg_build(msg, sizeof(msg), 0, 1);
	ASSERT_EQ(send_to(kcm, msg, sizeof(msg), c[0].cookie, 0), sizeof(msg));
	peer_expect(c[0].peer, 0, 1, sizeof(msg));
	peer_quiet(c[0].peer, 100);
	peer_quiet(c[1].peer, 0);
	peer_quiet(lone_b, 0);
	peer_quiet(oth_b, 0);
}

/*
 * EPIPE once the connection was reset by its peer, while the other
 * connections keep working.
 */
KCM_TEST(directed_reset_connection_epipe, KCM_EXT, KCM_TIMEOUT(60))
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct conn c[3];
	unsigned char msg[500];
	int kcm = mux_setup(SOCK_DGRAM, c, 3);
	int ev, k, d;

	/* Traffic first, so the connection was in use. */
	kcm_msg_build(msg, sizeof(msg), 1, 0);
	ASSERT_EQ(send_to(kcm, msg, sizeof(msg), c[1].cookie, 0), sizeof(msg));
	peer_expect(c[1].peer, 1, 0, sizeof(msg));

	ASSERT_OK(setsockopt(c[1].peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	ASSERT_OK(close(c[1].peer));
	ev = kcm_poll1(c[1].tcp, POLLERR, 5000);
	ASSERT_TRUE(ev & POLLERR);

	kcm_msg_build(msg, sizeof(msg), 1, 1);
	EXPECT_ERRNO(send_to(kcm, msg, sizeof(msg), c[1].cookie, 0), EPIPE);
	EXPECT_ERRNO(send_to(kcm, msg, sizeof(msg), c[1].cookie, MSG_DONTWAIT),
		     EPIPE);

	for (k = 0; k < 10; k++) {
		d = k % 2 ? 2 : 0;
		kcm_msg_build(msg, 100 + k, d, k);
		ASSERT_EQ(send_to(kcm, msg, 100 + k, c[d].cookie, 0), 100 + k);
		if (k == 4)
			EXPECT_ERRNO(send_to(kcm, msg, 100 + k, c[1].cookie, 0),
				     EPIPE);
	}
	for (k = 0; k < 10; k++) {
		d = k % 2 ? 2 : 0;
		peer_expect(c[d].peer, d, k, 100 + k);
	}
	EXPECT_ERRNO(send_to(kcm, msg, sizeof(msg), c[1].cookie, 0), EPIPE);

	/* An undirected message still goes out, on a live connection. */
	kcm_msg_build(msg, 300, 7, 99);
	ASSERT_EQ(send_to(kcm, msg, 300, 0, 0), 300);
	{
		struct pollfd p[2] = { { c[0].peer, POLLIN, 0 },
				       { c[2].peer, POLLIN, 0 } };

		ASSERT_GT(poll(p, 2, 5000), 0);
		d = (p[0].revents & POLLIN) ? 0 : 2;
		peer_expect(c[d].peer, 7, 99, 300);
	}
	peer_quiet(c[0].peer, 100);
	peer_quiet(c[2].peer, 0);
}

/* EINVAL for a bad length or level of the KCM_ORIGIN cmsg; nothing sent. */
KCM_TEST(directed_bad_cmsg_einval, KCM_EXT)
{
	struct conn c[1];
	unsigned char msg[100], data[16];
	int kcm = mux_setup(SOCK_DGRAM, c, 1);
	uint64_t ck = c[0].cookie;

	memset(data, 0, sizeof(data));
	memcpy(data, &ck, sizeof(ck));
	kcm_msg_build(msg, sizeof(msg), 0, 0);

	/* Too short for a __u64, and too long. */
	EXPECT_ERRNO(send_raw_cmsg(kcm, msg, sizeof(msg), SOL_KCM, KCM_ORIGIN,
				   data, 4), EINVAL);
	EXPECT_ERRNO(send_raw_cmsg(kcm, msg, sizeof(msg), SOL_KCM, KCM_ORIGIN,
				   data, 16), EINVAL);
	EXPECT_ERRNO(send_raw_cmsg(kcm, msg, sizeof(msg), SOL_KCM, KCM_ORIGIN,
				   data, 0), EINVAL);
	/* Wrong level. */
	EXPECT_ERRNO(send_raw_cmsg(kcm, msg, sizeof(msg), SOL_SOCKET, KCM_ORIGIN,
				   data, 8), EINVAL);
	EXPECT_ERRNO(send_raw_cmsg(kcm, msg, sizeof(msg), IPPROTO_TCP,
				   KCM_ORIGIN, data, 8), EINVAL);
	peer_quiet(c[0].peer, 200);

	/* The well-formed one goes out, alone. */
	ASSERT_EQ(send_raw_cmsg(kcm, msg, sizeof(msg), SOL_KCM, KCM_ORIGIN,
				data, 8), sizeof(msg));
	peer_expect(c[0].peer, 0, 0, sizeof(msg));
	peer_quiet(c[0].peer, 100);
}

/* Sends piece [off, off + len) of @buf on a SEQPACKET socket. */
static ssize_t piece(int kcm, const unsigned char *buf, size_t off,
		     size_t len, uint64_t cookie, int eor)
{
	return send_to(kcm, buf + off, len, cookie, eor ? MSG_EOR : 0);
}

/* All pieces naming the same cookie: one message, on that connection. */
KCM_TEST(directed_seqpacket_same_cookie, KCM_EXT)
{
	struct conn c[2];
	unsigned char *msg = kcm_xmalloc(20000);
	int kcm = mux_setup(SOCK_SEQPACKET, c, 2);
	int round;

	for (round = 0; round < 4; round++) {
		int d = round % 2 ? 0 : 1;
		size_t size = 5000 + 3000 * round;

		kcm_msg_build(msg, size, d, round);
		ASSERT_EQ(piece(kcm, msg, 0, 100, c[d].cookie, 0), 100);
		ASSERT_EQ(piece(kcm, msg, 100, 1400, c[d].cookie, 0), 1400);
		ASSERT_EQ(piece(kcm, msg, 1500, size - 1500, c[d].cookie, 1),
			  size - 1500);
		peer_expect(c[d].peer, d, round, size);
	}
	peer_quiet(c[0].peer, 100);
	peer_quiet(c[1].peer, 0);
	free(msg);
}

/*
 * Pieces with mixed cookies (or some with and some without) are refused
 * with EINVAL; the refused piece is not part of the message.
 */
KCM_TEST(directed_seqpacket_mixed_cookies_einval, KCM_EXT)
{
	struct conn c[2];
	unsigned char msg[3000], junk[500];
	int kcm = mux_setup(SOCK_SEQPACKET, c, 2);
	struct pollfd p[2];
	int d;

	memset(junk, 0xee, sizeof(junk));
	kcm_msg_build(msg, sizeof(msg), 0, 0);
	ASSERT_EQ(piece(kcm, msg, 0, 1000, c[0].cookie, 0), 1000);
	EXPECT_ERRNO(piece(kcm, junk, 0, 500, c[1].cookie, 0), EINVAL);
	EXPECT_ERRNO(piece(kcm, junk, 0, 500, 0, 0), EINVAL);
	EXPECT_ERRNO(piece(kcm, junk, 0, 500, c[1].cookie, 1), EINVAL);
	EXPECT_ERRNO(piece(kcm, junk, 0, 500, 0, 1), EINVAL);
	ASSERT_EQ(piece(kcm, msg, 1000, 2000, c[0].cookie, 1), 2000);
	peer_expect(c[0].peer, 0, 0, sizeof(msg));

	/* First piece without a cookie, later one with: refused too. */
	kcm_msg_build(msg, sizeof(msg), 5, 1);
	ASSERT_EQ(piece(kcm, msg, 0, 1000, 0, 0), 1000);
	EXPECT_ERRNO(piece(kcm, junk, 0, 500, c[0].cookie, 0), EINVAL);
	EXPECT_ERRNO(piece(kcm, junk, 0, 500, c[1].cookie, 1), EINVAL);
	ASSERT_EQ(piece(kcm, msg, 1000, 2000, 0, 1), 2000);
	/* Undirected: on either connection. */
	p[0] = (struct pollfd){ c[0].peer, POLLIN, 0 };
	p[1] = (struct pollfd){ c[1].peer, POLLIN, 0 };
	ASSERT_GT(poll(p, 2, 5000), 0);
	d = (p[0].revents & POLLIN) ? 0 : 1;
	peer_expect(c[d].peer, 5, 1, sizeof(msg));

	peer_quiet(c[0].peer, 100);
	peer_quiet(c[1].peer, 0);
}

/*
 * A directed SEQPACKET message is never sent in part: nothing of it before
 * its last piece.  A piece that fails has no effect on the message (as a
 * piece refused with EAGAIN): nothing goes out, and the piece sent again
 * completes the message.
 */
KCM_TEST(directed_seqpacket_never_partial, KCM_EXT)
{
	struct conn c[2];
	unsigned char *msg = kcm_xmalloc(BIG), *got = kcm_xmalloc(BIG);
	int kcm = mux_setup(SOCK_SEQPACKET, c, 2);
	struct iovec iov;
	union ctl ctl;
	struct msghdr m;
	struct cmsghdr *cm;
	uint32_t conn, seq;
	ssize_t r;
	size_t n;

	/* Held until MSG_EOR. */
	kcm_msg_build(msg, 9000, 1, 0);
	ASSERT_EQ(piece(kcm, msg, 0, 3000, c[1].cookie, 0), 3000);
	peer_quiet(c[1].peer, 200);
	ASSERT_EQ(piece(kcm, msg, 3000, 3000, c[1].cookie, 0), 3000);
	peer_quiet(c[1].peer, 200);
	ASSERT_EQ(piece(kcm, msg, 6000, 3000, c[1].cookie, 1), 3000);
	peer_expect(c[1].peer, 1, 0, 9000);

	/* A piece that faults: the message must not go out in part. */
	kcm_msg_build(msg, 9000, 1, 1);
	ASSERT_EQ(piece(kcm, msg, 0, 3000, c[1].cookie, 0), 3000);
	memset(&ctl, 0, sizeof(ctl));
	memset(&m, 0, sizeof(m));
	iov.iov_base = (void *)16;	/* unmapped */
	iov.iov_len = 3000;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctl.buf;
	m.msg_controllen = CMSG_SPACE(8);
	cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_KCM;
	cm->cmsg_type = KCM_ORIGIN;
	cm->cmsg_len = CMSG_LEN(8);
	memcpy(CMSG_DATA(cm), &c[1].cookie, 8);
	r = sendmsg(kcm, &m, MSG_EOR);
	EXPECT_EQ(r, -1);
	if (r == -1 && errno != EFAULT)
		kcm_diag("faulting piece: %s, expected EFAULT", kcm_errname(errno));
	peer_quiet(c[1].peer, 200);
	ASSERT_EQ(piece(kcm, msg, 3000, 6000, c[1].cookie, 1), 6000);
	peer_expect(c[1].peer, 1, 1, 9000);

	/* A whole new message; the stream must hold only whole messages. */
	kcm_msg_build(msg, 4000, 1, 2);
	ASSERT_EQ(piece(kcm, msg, 0, 2000, c[1].cookie, 0), 2000);
	ASSERT_EQ(piece(kcm, msg, 2000, 2000, c[1].cookie, 1), 2000);
	kcm_read_all(c[1].peer, got, 4);
	if (be32(got) + 4 != 4000)
		KCM_FAIL("after message 1 the stream starts with a %u-byte frame, not message 2 (4000 bytes)",
			 be32(got) + 4);
	kcm_read_all(c[1].peer, got + 4, 4000 - 4);
	n = 4000;
	if (kcm_msg_check(got, n, &conn, &seq))
		KCM_FAIL("message 2 arrived malformed");
	ASSERT_EQ(seq, 2);
	ASSERT_EQ(n, 4000);
	peer_quiet(c[1].peer, 100);
	peer_quiet(c[0].peer, 0);
	free(msg);
	free(got);
}

/*
 * Large directed SEQPACKET messages in many pieces, while a clone sends
 * small messages to the same connection and its peer reads slowly: the
 * stream holds only whole messages, each sender's in order, all of them.
 */
enum { NP_BIG = 16, NP_BIG_SIZE = 200000, NP_PIECE = 16384, NP_SMALL = 200 };

struct np_big {
	int kcm;
	uint64_t cookie;
};

static void *np_big_send(void *arg)
{
	struct np_big *b = arg;
	unsigned char *msg = kcm_xmalloc(NP_BIG_SIZE);
	uint32_t i;

	for (i = 0; i < NP_BIG; i++) {
		size_t off = 0;

		kcm_msg_build(msg, NP_BIG_SIZE, 1, i);
		while (off < NP_BIG_SIZE) {
			size_t len = NP_BIG_SIZE - off;
			ssize_t r;

			if (len > NP_PIECE)
				len = NP_PIECE;
			r = piece(b->kcm, msg, off, len, b->cookie,
				  off + len == NP_BIG_SIZE);
			if (r != (ssize_t)len)
				KCM_FAIL("big message %u piece at %zu: %zd: %s",
					 i, off, r, kcm_errname(errno));
			off += len;
		}
	}
	free(msg);
	return NULL;
}

struct np_small {
	int kcm;
	uint64_t cookie;
};

static void *np_small_send(void *arg)
{
	struct np_small *sm = arg;
	unsigned char small[600];
	uint32_t i;

	for (i = 0; i < NP_SMALL; i++) {
		size_t size = 100 + i % 400;
		ssize_t r;

		kcm_msg_build(small, size, 2, i);
		r = piece(sm->kcm, small, 0, size, sm->cookie, 1);
		if (r != (ssize_t)size)
			KCM_FAIL("small message %u: %zd: %s", i, r,
				 kcm_errname(errno));
	}
	return NULL;
}

KCM_TEST(directed_seqpacket_atomic_under_load, KCM_EXT, KCM_TIMEOUT(120))
{
	struct conn c[2];
	unsigned char *buf = kcm_xmalloc(BIG);
	int kcm = mux_setup(SOCK_SEQPACKET, c, 2);
	int clone = ASSERT_OK(kcm_clone(kcm));
	struct np_big b = { kcm, c[0].cookie };
	struct np_small sm = { clone, c[0].cookie };
	uint32_t next_big = 0, next_small = 0, k = 0;
	pthread_t tb, ts;

	ASSERT_OK(-pthread_create(&tb, NULL, np_big_send, &b));
	ASSERT_OK(-pthread_create(&ts, NULL, np_small_send, &sm));
	while (next_big < NP_BIG || next_small < NP_SMALL) {
		size_t n = peer_read_msg(c[0].peer, buf, BIG);
		uint32_t conn, seq;

		if (kcm_msg_check(buf, n, &conn, &seq))
			KCM_FAIL("malformed %zu-byte message on the stream (after %u big, %u small)",
				 n, next_big, next_small);
		if (conn == 1) {
			ASSERT_EQ(n, NP_BIG_SIZE);
			ASSERT_EQ(seq, next_big++);
		} else {
			ASSERT_EQ(conn, 2);
			ASSERT_EQ(seq, next_small++);
		}
		/* A slow reader at first, so that the senders queue up. */
		if (++k < 40)
			kcm_msleep(10);
	}
	pthread_join(tb, NULL);
	pthread_join(ts, NULL);
	peer_quiet(c[0].peer, 100);
	peer_quiet(c[1].peer, 0);
	free(buf);
}
