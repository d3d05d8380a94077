// SPDX-License-Identifier: GPL-2.0
/*
 * KCM_RECV_BATCH, an extension of this implementation: one recvmsg on a
 * SOCK_DGRAM socket returns as many whole messages as fit in its buffer,
 * each after its length as a host-order __u32.  Every case uses it, so all
 * are KCM_EXT and skipped on lane linux.
 *
 * What is specified (include/uapi/linux/kcm.h):
 *  - the messages come in order, whole, each after its length, with no
 *    padding; the call returns the bytes copied and sets MSG_EOR;
 *  - a message that would not fit stays for the next call; if the first
 *    one does not fit, its length and what fits of it are copied, MSG_TRUNC
 *    is set and it is consumed;
 *  - with KCM_RECV_ORIGIN, one call's messages all come from one TCP
 *    socket, whose cookie the one KCM_ORIGIN control message holds;
 *  - MSG_PEEK copies the same and consumes nothing;
 *  - SOCK_SEQPACKET sockets refuse the option with EOPNOTSUPP; it is off
 *    by default and reads back as set.
 *
 * Messages are built by kcm_msg_build() (a 4-byte big-endian length, a
 * connection id, a sequence number and a filler from both), so each one
 * read back proves by itself that it is whole and which one it is.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>

#include "kcm_test.h"

#define HDR	sizeof(uint32_t)
#define BIG	(256 * 1024)

struct rx {
	int kcm, peer, tcp, prog;
};

static void setup(struct rx *s, int family)
{
	s->kcm = kcm_socket(SOCK_DGRAM);
	s->prog = kcm_prog_len32();
	kcm_tcp_pair(family, &s->peer, &s->tcp);
	kcm_set_int_opt(s->tcp, SOL_SOCKET, SO_RCVBUF, 1024 * 1024);
	kcm_set_int_opt(s->kcm, SOL_SOCKET, SO_RCVBUF, 4 * 1024 * 1024);
	ASSERT_OK(kcm_attach(s->kcm, s->tcp, s->prog));
	kcm_set_int_opt(s->kcm, SOL_KCM, KCM_RECV_BATCH, 1);
}

static void write_same(int peer, size_t size, int n, uint32_t conn)
{
	size_t *sizes = kcm_xmalloc(n * sizeof(*sizes));
	int i;

	for (i = 0; i < n; i++)
		sizes[i] = size;
	kcm_write_msgs(peer, sizes, n, conn, 0);
	free(sizes);
}

/*
 * Checks a batch of @len bytes: whole messages of connection @conn, each
 * after its length, numbered on from *seq (advanced); their sizes, if
 * @sizes, must be sizes[*seq...].  Returns the number of messages.
 */
static int check_batch(const char *buf, size_t len, uint32_t conn,
		       uint32_t *seq, const size_t *sizes)
{
	size_t off = 0;
	int n = 0;

	while (off < len) {
		uint32_t mlen, c, q;

		if (len - off < HDR)
			KCM_FAIL("batch of %zu bytes: %zu bytes left, no room for a length",
				 len, len - off);
		memcpy(&mlen, buf + off, HDR);
		off += HDR;
		if (mlen > len - off)
			KCM_FAIL("batch of %zu bytes: message of %u bytes at %zu runs past its end",
				 len, mlen, off);
		if (kcm_msg_check(buf + off, mlen, &c, &q))
			KCM_FAIL("batch: message at %zu (%u bytes) is not whole",
				 off, mlen);
		if (c != conn || q != *seq)
			KCM_FAIL("batch: got message %u of connection %u, expected %u of %u",
				 q, c, *seq, conn);
		if (sizes && mlen != sizes[q])
			KCM_FAIL("message %u: %u bytes, sent %zu", q, mlen,
				 sizes[q]);
		off += mlen;
		(*seq)++;
		n++;
	}
	return n;
}

/* One recvmsg into @buf of @cap bytes; fails the case on error. */
static ssize_t recv_batch(int fd, char *buf, size_t cap, int flags,
			  int *msg_flags)
{
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (!(kcm_poll1(fd, POLLIN, 10000) & POLLIN))
		KCM_FAIL("nothing to read in 10 s");
	n = recvmsg(fd, &mh, flags | MSG_DONTWAIT);
	if (n < 0)
		KCM_FAIL("recvmsg: %s", kcm_errname(errno));
	*msg_flags = mh.msg_flags;
	return n;
}

/* Peeks with a buffer of @cap bytes until @want bytes of messages are
 * queued: the parser may still be cutting the last write.
 */
static void wait_queued(int fd, size_t want)
{
	char *buf = kcm_xmalloc(want + 1);
	long long end = kcm_now_ms() + 10000;
	int flags;

	while (recv_batch(fd, buf, want + 1, MSG_PEEK, &flags) <
	       (ssize_t)want) {
		if (kcm_now_ms() > end)
			KCM_FAIL("%zu bytes not queued after 10 s", want);
		kcm_msleep(10);
	}
	free(buf);
}

static void expect_nothing(int fd)
{
	char b[64];

	ASSERT_ERRNO(recv(fd, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
}

/*
 * Mixed sizes, small ones (which our parser copies into batch skbs) and
 * large ones (clones of TCP skbs, some spanning several): read with a
 * 64 KiB buffer, every message arrives once, whole and in order, and some
 * calls return several messages.  IPv4 and IPv6.
 */
static void mixed_sizes(int family)
{
	enum { N = 400 };
	size_t sizes[N], total = 0, got_bytes = 0;
	char *buf = kcm_xmalloc(65536);
	int i, flags, calls = 0, most = 0;
	uint64_t rs = 7;
	uint32_t seq = 0;
	struct rx s;

	setup(&s, family);
	for (i = 0; i < N; i++) {
		sizes[i] = i % 23 == 4 ? 3000 + kcm_rand(&rs) % 40000 :
			   KCM_MSG_MIN + kcm_rand(&rs) % 2100;
		total += sizes[i];
	}
	kcm_write_msgs(s.peer, sizes, N, 1, 0);
	while (seq < N) {
		ssize_t n = recv_batch(s.kcm, buf, 65536, 0, &flags);
		int m;

		EXPECT_EQ(flags & (MSG_EOR | MSG_TRUNC), MSG_EOR);
		m = check_batch(buf, n, 1, &seq, sizes);
		ASSERT_GT(m, 0);
		most = m > most ? m : most;
		got_bytes += n - m * HDR;
		calls++;
	}
	EXPECT_EQ(got_bytes, total);
	EXPECT_LT(calls, N);
	EXPECT_GT(most, 1);
	KCM_LOG("%d messages in %d calls, at most %d in one", N, calls, most);
	expect_nothing(s.kcm);
	free(buf);
}

KCM_TEST(batch_mixed_sizes_in_order_ipv4, KCM_EXT)
{
	mixed_sizes(AF_INET);
}

KCM_TEST(batch_mixed_sizes_in_order_ipv6, KCM_EXT)
{
	mixed_sizes(AF_INET6);
}

/* Ten 100-byte messages: a buffer takes the whole messages that fit and
 * leaves the next one for the next call, exact fits included.
 */
KCM_TEST(batch_stops_at_buffer_end, KCM_EXT)
{
	enum { N = 10, SZ = 100, ONE = SZ + HDR };
	char buf[N * ONE + 64];
	uint32_t seq = 0;
	struct rx s;
	int flags;
	ssize_t n;

	setup(&s, AF_INET);
	write_same(s.peer, SZ, N, 2);
	wait_queued(s.kcm, N * ONE);

	n = recv_batch(s.kcm, buf, 3 * ONE + ONE / 2, 0, &flags);
	ASSERT_EQ(n, 3 * ONE);
	ASSERT_EQ(check_batch(buf, n, 2, &seq, NULL), 3);
	EXPECT_EQ(flags & (MSG_EOR | MSG_TRUNC), MSG_EOR);

	n = recv_batch(s.kcm, buf, ONE, 0, &flags);
	ASSERT_EQ(n, ONE);
	ASSERT_EQ(check_batch(buf, n, 2, &seq, NULL), 1);

	n = recv_batch(s.kcm, buf, 2 * ONE, 0, &flags);
	ASSERT_EQ(n, 2 * ONE);
	ASSERT_EQ(check_batch(buf, n, 2, &seq, NULL), 2);

	n = recv_batch(s.kcm, buf, sizeof(buf), 0, &flags);
	ASSERT_EQ(n, 4 * ONE);
	ASSERT_EQ(check_batch(buf, n, 2, &seq, NULL), 4);
	expect_nothing(s.kcm);
}

/* Large messages too: three of 60000 bytes come in one call when the
 * buffer holds them, and one at a time when it holds one.
 */
KCM_TEST(batch_large_messages, KCM_EXT)
{
	enum { SZ = 60000, ONE = SZ + HDR };
	char *buf = kcm_xmalloc(BIG);
	uint32_t seq = 0;
	struct rx s;
	int flags;
	ssize_t n;

	setup(&s, AF_INET);
	write_same(s.peer, SZ, 5, 3);
	wait_queued(s.kcm, 5 * ONE);
	n = recv_batch(s.kcm, buf, 3 * ONE, 0, &flags);
	ASSERT_EQ(n, 3 * ONE);
	ASSERT_EQ(check_batch(buf, n, 3, &seq, NULL), 3);
	n = recv_batch(s.kcm, buf, 2 * ONE - 1, 0, &flags);
	ASSERT_EQ(n, ONE);
	ASSERT_EQ(check_batch(buf, n, 3, &seq, NULL), 1);
	n = recv_batch(s.kcm, buf, BIG, 0, &flags);
	ASSERT_EQ(n, ONE);
	ASSERT_EQ(check_batch(buf, n, 3, &seq, NULL), 1);
	expect_nothing(s.kcm);
	free(buf);
}

/* A first message larger than the buffer: its length and what fits, with
 * MSG_TRUNC; it is gone, the next one comes whole.
 */
KCM_TEST(batch_first_message_too_long, KCM_EXT)
{
	size_t sizes[3] = { 1000, 40, 5000 };
	char buf[6000];
	uint32_t len, seq = 1;
	struct rx s;
	int flags;
	ssize_t n;

	setup(&s, AF_INET);
	kcm_write_msgs(s.peer, sizes, 3, 4, 0);
	wait_queued(s.kcm, 1000 + HDR);

	n = recv_batch(s.kcm, buf, 100, 0, &flags);
	ASSERT_EQ(n, 100);
	EXPECT_EQ(flags & MSG_TRUNC, MSG_TRUNC);
	memcpy(&len, buf, HDR);
	EXPECT_EQ(len, 1000);
	/* The message's own first bytes follow: its prefix, connection and
	 * sequence number.
	 */
	EXPECT_EQ(ntohl(*(uint32_t *)(buf + HDR)), 1000 - 4);
	EXPECT_EQ(ntohl(*(uint32_t *)(buf + HDR + 4)), 4);
	EXPECT_EQ(ntohl(*(uint32_t *)(buf + HDR + 8)), 0);
	n = recv_batch(s.kcm, buf, 1000, 0, &flags);
	ASSERT_EQ(n, 40 + HDR);
	ASSERT_EQ(check_batch(buf, n, 4, &seq, sizes), 1);
	EXPECT_EQ(flags & (MSG_EOR | MSG_TRUNC), MSG_EOR);
	n = recv_batch(s.kcm, buf, sizeof(buf), 0, &flags);
	ASSERT_EQ(n, 5000 + HDR);
	ASSERT_EQ(check_batch(buf, n, 4, &seq, sizes), 1);
	expect_nothing(s.kcm);
}

/* MSG_PEEK copies what a read would and consumes nothing. */
KCM_TEST(batch_peek_consumes_nothing, KCM_EXT)
{
	enum { N = 50, SZ = 64 };
	char a[N * (SZ + HDR)], b[sizeof(a)], c[sizeof(a)];
	uint32_t seq = 0;
	struct rx s;
	int flags;
	ssize_t n;

	setup(&s, AF_INET);
	write_same(s.peer, SZ, N, 5);
	wait_queued(s.kcm, sizeof(a));
	n = recv_batch(s.kcm, a, sizeof(a), MSG_PEEK, &flags);
	ASSERT_EQ(n, sizeof(a));
	ASSERT_EQ(recv_batch(s.kcm, b, sizeof(b), MSG_PEEK, &flags), n);
	ASSERT_EQ(recv_batch(s.kcm, c, sizeof(c), 0, &flags), n);
	EXPECT_EQ(memcmp(a, b, n), 0);
	EXPECT_EQ(memcmp(a, c, n), 0);
	ASSERT_EQ(check_batch(c, n, 5, &seq, NULL), N);
	expect_nothing(s.kcm);
}

/*
 * A buffer that faults, wholly or after its first bytes: EFAULT, nothing
 * consumed (no batch was copied whole before the fault), and the next call
 * reads every message.  Written at once, they are parsed into batches from
 * the module's page pool, copied out as page data.
 */
KCM_TEST(batch_fault_consumes_nothing, KCM_EXT)
{
	enum { N = 200, SZ = 100, ALL = N * (SZ + HDR) };
	char *fault = kcm_fault_page(), *buf = kcm_xmalloc(ALL + 1);
	uint32_t seq = 0;
	struct rx s;
	int flags;
	ssize_t n;

	setup(&s, AF_INET);
	write_same(s.peer, SZ, N, 6);
	wait_queued(s.kcm, ALL);
	ASSERT_ERRNO(recv(s.kcm, fault, ALL, MSG_DONTWAIT), EFAULT);
	ASSERT_ERRNO(recv(s.kcm, fault - 40, ALL, MSG_DONTWAIT), EFAULT);
	n = recv_batch(s.kcm, buf, ALL + 1, 0, &flags);
	ASSERT_EQ(n, ALL);
	ASSERT_EQ(check_batch(buf, n, 6, &seq, NULL), N);
	expect_nothing(s.kcm);
	free(buf);
}

/* recvmmsg: each entry is a batch of its own, as full as its buffer
 * allows.
 */
KCM_TEST(batch_recvmmsg, KCM_EXT)
{
	enum { N = 200, SZ = 100, VLEN = 4, CAP = 1000, PER = CAP / (SZ + HDR) };
	static char bufs[VLEN][CAP];
	struct mmsghdr mm[VLEN];
	struct iovec iov[VLEN];
	uint32_t seq = 0;
	struct rx s;
	int i, n;

	setup(&s, AF_INET);
	write_same(s.peer, SZ, N, 6);
	wait_queued(s.kcm, N * (SZ + HDR));
	while (seq < N) {
		memset(mm, 0, sizeof(mm));
		for (i = 0; i < VLEN; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = CAP;
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		n = ASSERT_OK(recvmmsg(s.kcm, mm, VLEN, MSG_DONTWAIT, NULL));
		ASSERT_GT(n, 0);
		for (i = 0; i < n; i++) {
			int want = N - seq < PER ? N - seq : PER;

			ASSERT_EQ(check_batch(bufs[i], mm[i].msg_len, 6, &seq,
					      NULL), want);
			EXPECT_EQ(mm[i].msg_hdr.msg_flags & MSG_EOR, MSG_EOR);
		}
	}
	expect_nothing(s.kcm);
}

/* With KCM_RECV_ORIGIN: each call's messages are of one connection, the
 * one its KCM_ORIGIN names; both connections' messages all arrive.
 */
KCM_TEST(batch_origin_one_connection_per_call, KCM_EXT)
{
	enum { N = 60, SZ = 80 };
	union {
		char buf[CMSG_SPACE(sizeof(uint64_t)) * 2];
		struct cmsghdr align;
	} ctl;
	uint32_t seq[2] = { 0, 0 };
	int peer2, tcp2, i;
	uint64_t cookie[2];
	socklen_t cl;
	char buf[8192];
	struct rx s;

	setup(&s, AF_INET);
	kcm_tcp_pair(AF_INET6, &peer2, &tcp2);
	ASSERT_OK(kcm_attach(s.kcm, tcp2, s.prog));
	kcm_set_int_opt(s.kcm, SOL_KCM, KCM_RECV_ORIGIN, 1);
	cl = sizeof(cookie[0]);
	ASSERT_OK(getsockopt(s.tcp, SOL_SOCKET, SO_COOKIE, &cookie[0], &cl));
	cl = sizeof(cookie[1]);
	ASSERT_OK(getsockopt(tcp2, SOL_SOCKET, SO_COOKIE, &cookie[1], &cl));

	for (i = 0; i < 3; i++) {
		write_same(s.peer, SZ, N / 3, 0);
		write_same(peer2, SZ, N / 3, 1);
	}
	while (seq[0] < N || seq[1] < N) {
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl.buf,
			.msg_controllen = sizeof(ctl.buf),
		};
		struct cmsghdr *cm;
		uint32_t len, c, q;
		uint64_t ck;
		ssize_t n;

		ASSERT_TRUE(kcm_poll1(s.kcm, POLLIN, 10000) & POLLIN);
		n = ASSERT_OK(recvmsg(s.kcm, &mh, MSG_DONTWAIT));
		ASSERT_GT(n, HDR);
		cm = CMSG_FIRSTHDR(&mh);
		ASSERT_TRUE(cm);
		ASSERT_EQ(cm->cmsg_level, SOL_KCM);
		ASSERT_EQ(cm->cmsg_type, KCM_ORIGIN);
		EXPECT_FALSE(CMSG_NXTHDR(&mh, cm));
		memcpy(&ck, CMSG_DATA(cm), sizeof(ck));
		memcpy(&len, buf, HDR);
		ASSERT_EQ(kcm_msg_check(buf + HDR, len, &c, &q), 0);
		ASSERT_LT(c, 2);
		EXPECT_EQ(ck, cookie[c]);
		/* Messages of one connection are in order; the sequence
		 * restarts with each write of N / 3.
		 */
		for (i = 0; i < n; i += HDR + SZ) {
			uint32_t c2, q2;

			ASSERT_EQ(kcm_msg_check(buf + i + HDR, SZ, &c2, &q2), 0);
			ASSERT_EQ(c2, c);
			ASSERT_EQ(q2, seq[c] % (N / 3));
			seq[c]++;
		}
		ASSERT_EQ(i, n);
	}
	expect_nothing(s.kcm);
}

/* Off by default, reads back as set, SOCK_DGRAM only; off again, a call
 * returns one message without a length.
 */
KCM_TEST(batch_option, KCM_EXT)
{
	int seq = kcm_socket(SOCK_SEQPACKET);
	int one = 1, dgram;
	uint32_t c, q;
	char buf[1024];
	struct rx s;

	ASSERT_ERRNO(setsockopt(seq, SOL_KCM, KCM_RECV_BATCH, &one,
				sizeof(one)), EOPNOTSUPP);
	EXPECT_EQ(kcm_get_int_opt(seq, SOL_KCM, KCM_RECV_BATCH), 0);

	dgram = kcm_socket(SOCK_DGRAM);
	EXPECT_EQ(kcm_get_int_opt(dgram, SOL_KCM, KCM_RECV_BATCH), 0);
	ASSERT_ERRNO(setsockopt(dgram, SOL_KCM, KCM_RECV_BATCH, &one, 2),
		     EINVAL);
	kcm_set_int_opt(dgram, SOL_KCM, KCM_RECV_BATCH, 5);
	EXPECT_EQ(kcm_get_int_opt(dgram, SOL_KCM, KCM_RECV_BATCH), 1);
	kcm_set_int_opt(dgram, SOL_KCM, KCM_RECV_BATCH, 0);
	EXPECT_EQ(kcm_get_int_opt(dgram, SOL_KCM, KCM_RECV_BATCH), 0);

	setup(&s, AF_INET);
	write_same(s.peer, 200, 4, 7);
	wait_queued(s.kcm, 4 * (200 + HDR));
	kcm_set_int_opt(s.kcm, SOL_KCM, KCM_RECV_BATCH, 0);
	ASSERT_EQ(recv(s.kcm, buf, sizeof(buf), MSG_DONTWAIT), 200);
	ASSERT_EQ(kcm_msg_check(buf, 200, &c, &q), 0);
	EXPECT_EQ(q, 0);
	ASSERT_EQ(recv(s.kcm, buf, sizeof(buf), MSG_DONTWAIT), 200);
	ASSERT_EQ(kcm_msg_check(buf, 200, &c, &q), 0);
	EXPECT_EQ(q, 1);
	close(seq);
	close(dgram);
}
