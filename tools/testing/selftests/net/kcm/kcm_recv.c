// SPDX-License-Identifier: GPL-2.0
/*
 * AF_KCM recvmsg semantics (one message per call, truncation, MSG_EOR,
 * MSG_PEEK, MSG_DONTWAIT, SO_RCVTIMEO, recvmmsg, poll/epoll) and the
 * KCM_RECV_DISABLE socket option.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "kcm_test.h"

struct rx {
	int kcm, peer, tcp, prog;
};

static void setup(struct rx *s, int type)
{
	s->kcm = kcm_socket(type);
	s->prog = kcm_prog_len32();
	kcm_tcp_pair(AF_INET, &s->peer, &s->tcp);
	ASSERT_OK(kcm_attach(s->kcm, s->tcp, s->prog));
}

/*
 * Messages sent back to back here all have one size: Linux's kcm.ko loses
 * the framing when messages of different sizes share a segment (see
 * kcm_rx.c, rx_mixed_sizes_*), and these cases are about recvmsg.
 */
static void send_msg(int peer, size_t size, uint32_t seq)
{
	char buf[4096];

	kcm_msg_build(buf, size, 0, seq);
	kcm_write_all(peer, buf, size);
}

/* recvmsg into a @cap-byte buffer; returns the length, *flags the flags. */
static ssize_t recv_flags(int fd, void *buf, size_t cap, int in_flags,
			  int *flags)
{
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	n = recvmsg(fd, &mh, in_flags);
	*flags = mh.msg_flags;
	return n;
}

/* Wait until @fd is readable (a message is queued). */
static void wait_readable(int fd)
{
	ASSERT_TRUE(kcm_poll1(fd, POLLIN, 5000) & POLLIN);
}

static void expect_seq(const char *buf, size_t len, uint32_t seq)
{
	uint32_t c, q;

	ASSERT_EQ(kcm_msg_check(buf, len, &c, &q), 0);
	ASSERT_EQ(q, seq);
}

/* ---- recvmsg ---------------------------------------------------------- */

KCM_TEST(one_message_per_call)
{
	char buf[8192];
	struct rx s;
	int i;

	setup(&s, SOCK_DGRAM);
	for (i = 0; i < 4; i++)
		send_msg(s.peer, 100, i);
	kcm_msleep(100);
	/* A big buffer still gets exactly one message per call. */
	for (i = 0; i < 4; i++) {
		ssize_t n = kcm_recv_timeout(s.kcm, buf, sizeof(buf), 0, 5000);

		ASSERT_EQ(n, 100);
		expect_seq(buf, n, i);
	}
	ASSERT_ERRNO(recv(s.kcm, buf, sizeof(buf), MSG_DONTWAIT), EAGAIN);
}

/*
 * A receive buffer that faults, wholly or after its first bytes: EFAULT,
 * and the message stays whole for the next call.  The messages are
 * written at once, so that one parser pass copies them into batches (a
 * large one is a buffer of the module's page pool, copied out as page
 * data); a fault every 50 messages reaches the later batches too.  Linux's
 * kcm.ko consumes the message of each faulting call: it is lost.
 */
static void fault_keeps_message(int type)
{
	enum { N = 200, SZ = 100 };
	char *fault = kcm_fault_page(), buf[SZ];
	size_t sizes[N];
	struct rx s;
	ssize_t n;
	int i;

	setup(&s, type);
	for (i = 0; i < N; i++)
		sizes[i] = SZ;
	kcm_write_msgs(s.peer, sizes, N, 0, 0);
	for (i = 0; i < N; i++) {
		if (i % 50 == 0) {
			wait_readable(s.kcm);
			ASSERT_ERRNO(recv(s.kcm, fault, SZ, MSG_DONTWAIT),
				     EFAULT);
			ASSERT_ERRNO(recv(s.kcm, fault - 40, SZ, MSG_DONTWAIT),
				     EFAULT);
		}
		n = kcm_recv_timeout(s.kcm, buf, sizeof(buf), 0, 5000);
		ASSERT_EQ(n, SZ);
		expect_seq(buf, n, i);
	}
	ASSERT_ERRNO(recv(s.kcm, buf, sizeof(buf), MSG_DONTWAIT), EAGAIN);
}

#define FAULT_LOSES_BUG "a recv that fails with EFAULT consumes its message"

KCM_TEST(dgram_fault_keeps_message, KCM_LINUX_BUG(FAULT_LOSES_BUG))
{
	fault_keeps_message(SOCK_DGRAM);
}

KCM_TEST(seqpacket_fault_keeps_message, KCM_LINUX_BUG(FAULT_LOSES_BUG))
{
	fault_keeps_message(SOCK_SEQPACKET);
}

KCM_TEST(dgram_whole_message_flags)
{
	char buf[512];
	struct rx s;
	int flags;

	setup(&s, SOCK_DGRAM);
	send_msg(s.peer, 200, 1);
	wait_readable(s.kcm);
	ASSERT_EQ(recv_flags(s.kcm, buf, sizeof(buf), 0, &flags), 200);
	expect_seq(buf, 200, 1);
	EXPECT_EQ(flags & MSG_TRUNC, 0);
	/* Linux's kcm.ko sets MSG_EOR on every complete message. */
	EXPECT_EQ(flags & MSG_EOR, MSG_EOR);
}

/* DGRAM, short buffer: MSG_TRUNC, and the rest of the message is gone. */
KCM_TEST(dgram_short_buffer_truncates)
{
	char buf[512], ref[300];
	struct rx s;
	int flags;

	setup(&s, SOCK_DGRAM);
	send_msg(s.peer, 300, 1);
	send_msg(s.peer, 300, 2);
	wait_readable(s.kcm);
	ASSERT_EQ(recv_flags(s.kcm, buf, 50, 0, &flags), 50);
	EXPECT_EQ(flags & MSG_TRUNC, MSG_TRUNC);
	kcm_msg_build(ref, 300, 0, 1);
	ASSERT_MEMEQ(buf, ref, 50);
	/* The next call gets the next message, whole. */
	ASSERT_EQ(kcm_recv_timeout(s.kcm, buf, sizeof(buf), 0, 5000), 300);
	expect_seq(buf, 300, 2);
	ASSERT_ERRNO(recv(s.kcm, buf, sizeof(buf), MSG_DONTWAIT), EAGAIN);
}

/*
 * Linux's kcm.ko (6.1 and 6.12) drops the rest of a SOCK_SEQPACKET message
 * that did not fit: every recvmsg consumes a whole message, and a short one
 * comes back with neither MSG_EOR nor MSG_TRUNC.
 */
#define SEQPACKET_PARTIAL_BUG \
	"SOCK_SEQPACKET drops the unread rest of a message, no MSG_EOR/MSG_TRUNC"

/* SEQPACKET, short buffer: the rest comes in the following calls, MSG_EOR
 * only on the last piece, and a piece never runs into the next message.
 */
KCM_TEST(seqpacket_short_buffer_pieces, KCM_LINUX_BUG(SEQPACKET_PARTIAL_BUG))
{
	char buf[512], whole[300];
	struct rx s;
	int flags;

	setup(&s, SOCK_SEQPACKET);
	send_msg(s.peer, 300, 1);
	send_msg(s.peer, 300, 2);
	wait_readable(s.kcm);
	kcm_msleep(50);
	ASSERT_EQ(recv_flags(s.kcm, whole, 100, MSG_DONTWAIT, &flags), 100);
	EXPECT_EQ(flags & (MSG_EOR | MSG_TRUNC), 0);
	ASSERT_EQ(recv_flags(s.kcm, whole + 100, 100, MSG_DONTWAIT, &flags), 100);
	EXPECT_EQ(flags & (MSG_EOR | MSG_TRUNC), 0);
	/* Ask for more than is left: only the remaining 100 bytes come. */
	ASSERT_EQ(recv_flags(s.kcm, whole + 200, 250, MSG_DONTWAIT, &flags), 100);
	EXPECT_EQ(flags & MSG_EOR, MSG_EOR);
	EXPECT_EQ(flags & MSG_TRUNC, 0);
	expect_seq(whole, 300, 1);
	/* The next message starts afresh. */
	ASSERT_EQ(recv_flags(s.kcm, buf, sizeof(buf), MSG_DONTWAIT, &flags), 300);
	EXPECT_EQ(flags & MSG_EOR, MSG_EOR);
	expect_seq(buf, 300, 2);
}

KCM_TEST(seqpacket_one_byte_pieces, KCM_LINUX_BUG(SEQPACKET_PARTIAL_BUG))
{
	char whole[40];
	struct rx s;
	int flags, i;

	setup(&s, SOCK_SEQPACKET);
	send_msg(s.peer, sizeof(whole), 5);
	send_msg(s.peer, sizeof(whole), 6);
	wait_readable(s.kcm);
	for (i = 0; i < (int)sizeof(whole); i++) {
		ssize_t n = recv_flags(s.kcm, whole + i, 1, MSG_DONTWAIT,
				       &flags);

		if (n != 1)
			KCM_FAIL("piece %d: recv returned %zd (%s)", i, n,
				 kcm_errname(errno));
		EXPECT_EQ(flags & MSG_EOR,
			  i == (int)sizeof(whole) - 1 ? MSG_EOR : 0);
	}
	expect_seq(whole, sizeof(whole), 5);
	{
		char b[64];

		ASSERT_EQ(kcm_recv_timeout(s.kcm, b, sizeof(b), 0, 5000),
			  sizeof(whole));
		expect_seq(b, sizeof(whole), 6);
	}
}

KCM_TEST(peek)
{
	char a[512], b[512];
	struct rx s;
	int t;

	for (t = 0; t < 2; t++) {
		setup(&s, t ? SOCK_SEQPACKET : SOCK_DGRAM);
		send_msg(s.peer, 200, 1);
		send_msg(s.peer, 200, 2);
		wait_readable(s.kcm);
		ASSERT_EQ(recv(s.kcm, a, sizeof(a), MSG_PEEK), 200);
		ASSERT_EQ(recv(s.kcm, b, sizeof(b), MSG_PEEK), 200);
		ASSERT_MEMEQ(a, b, 200);
		expect_seq(a, 200, 1);
		/* A short peek does not consume or cut anything either. */
		ASSERT_EQ(recv(s.kcm, b, 10, MSG_PEEK), 10);
		ASSERT_MEMEQ(a, b, 10);
		ASSERT_EQ(recv(s.kcm, b, sizeof(b), 0), 200);
		ASSERT_MEMEQ(a, b, 200);
		ASSERT_EQ(kcm_recv_timeout(s.kcm, b, sizeof(b), MSG_PEEK,
					   5000), 200);
		ASSERT_EQ(recv(s.kcm, b, sizeof(b), 0), 200);
		expect_seq(b, 200, 2);
		ASSERT_ERRNO(recv(s.kcm, b, sizeof(b), MSG_DONTWAIT | MSG_PEEK),
			     EAGAIN);
		close(s.kcm);
	}
}

KCM_TEST(dontwait_on_empty)
{
	int d = kcm_socket(SOCK_DGRAM), q = kcm_socket(SOCK_SEQPACKET);
	char b[16];
	struct rx s;

	ASSERT_ERRNO(recv(d, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
	ASSERT_ERRNO(recv(q, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
	/* Attached, but nothing complete yet. */
	setup(&s, SOCK_DGRAM);
	kcm_write_all(s.peer, "\0\0\0\x10" "abc", 7);
	kcm_msleep(50);
	ASSERT_ERRNO(recv(s.kcm, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
}

KCM_TEST(nonblocking_socket_on_empty)
{
	int d = kcm_socket(SOCK_DGRAM);
	char b[16];

	kcm_set_nonblock(d, 1);
	ASSERT_ERRNO(recv(d, b, sizeof(b), 0), EAGAIN);
	ASSERT_ERRNO(read(d, b, sizeof(b)), EAGAIN);
}

KCM_TEST(rcvtimeo)
{
	struct rx s;
	long long t0, j0, dt, dj;
	char b[64];

	setup(&s, SOCK_DGRAM);
	kcm_set_rcvtimeo(s.kcm, 400);
	t0 = kcm_now_ms();
	j0 = kcm_tick_ms();
	ASSERT_ERRNO(recv(s.kcm, b, sizeof(b), 0), EAGAIN);
	dj = kcm_tick_ms() - j0;
	dt = kcm_now_ms() - t0;
	KCM_LOG("EAGAIN after %lld ms (tick clock), %lld ms (CLOCK_MONOTONIC)",
		dj, dt);
	/*
	 * Not a tick early: SO_RCVTIMEO counts whole jiffies (rounded up)
	 * from the call, so measured on their clock (kcm_tick_ms()) it lasts
	 * the full 400 ms; on CLOCK_MONOTONIC it ends early by as much as
	 * jiffies lagged when it was armed.
	 */
	EXPECT_GE(dj, 400);
	EXPECT_LT(dt, 5000);
	/* A message that arrives in time is returned. */
	kcm_set_rcvtimeo(s.kcm, 5000);
	send_msg(s.peer, 32, 3);
	ASSERT_EQ(recv(s.kcm, b, sizeof(b), 0), 32);
	expect_seq(b, 32, 3);
}

struct late {
	int peer, delay_ms;
};

static void *late_sender(void *arg)
{
	struct late *l = arg;

	kcm_msleep(l->delay_ms);
	send_msg(l->peer, 64, 9);
	return NULL;
}

KCM_TEST(blocking_recv_woken_by_message)
{
	struct rx s;
	struct late l;
	pthread_t th;
	long long t0;
	char b[128];

	setup(&s, SOCK_SEQPACKET);
	l = (struct late){ s.peer, 300 };
	t0 = kcm_now_ms();
	ASSERT_OK(-pthread_create(&th, NULL, late_sender, &l));
	ASSERT_EQ(recv(s.kcm, b, sizeof(b), 0), 64);
	EXPECT_GE(kcm_now_ms() - t0, 250);
	expect_seq(b, 64, 9);
	pthread_join(th, NULL);
}

KCM_TEST(recvmmsg_batch)
{
	enum { N = 5, CAP = 8 };
	char bufs[CAP][256];
	struct iovec iov[CAP];
	struct mmsghdr mm[CAP];
	struct timespec ts = { 5, 0 };
	struct rx s;
	int i, n;

	setup(&s, SOCK_DGRAM);
	for (i = 0; i < N; i++)
		send_msg(s.peer, 60, i);
	kcm_msleep(100);
	memset(mm, 0, sizeof(mm));
	for (i = 0; i < CAP; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
	}
	/* Exactly N queued: N wanted, N returned, one message each. */
	n = recvmmsg(s.kcm, mm, 3, 0, &ts);
	ASSERT_EQ(n, 3);
	n = recvmmsg(s.kcm, mm + 3, CAP - 3, MSG_DONTWAIT, NULL);
	ASSERT_EQ(n, N - 3);
	for (i = 0; i < N; i++) {
		ASSERT_EQ(mm[i].msg_len, 60);
		expect_seq(bufs[i], mm[i].msg_len, i);
	}
	ASSERT_ERRNO(recvmmsg(s.kcm, mm, CAP, MSG_DONTWAIT, NULL), EAGAIN);
}

KCM_TEST(poll_pollin)
{
	struct rx s;
	char b[128];

	setup(&s, SOCK_DGRAM);
	EXPECT_EQ(kcm_poll1(s.kcm, POLLIN, 0) & POLLIN, 0);
	send_msg(s.peer, 64, 1);
	ASSERT_EQ(kcm_poll1(s.kcm, POLLIN, 5000) & POLLIN, POLLIN);
	/* Nothing is lost by polling. */
	ASSERT_EQ(recv(s.kcm, b, sizeof(b), MSG_DONTWAIT), 64);
	EXPECT_EQ(kcm_poll1(s.kcm, POLLIN, 50) & POLLIN, 0);
	/* Half a message is not readable. */
	kcm_write_all(s.peer, "\0\0\0\x20" "0123", 8);
	EXPECT_EQ(kcm_poll1(s.kcm, POLLIN, 200) & POLLIN, 0);
}

KCM_TEST(epoll_pollin)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET }, out;
	int ep = ASSERT_OK(epoll_create1(0));
	struct rx s;
	char b[128];

	setup(&s, SOCK_SEQPACKET);
	ev.data.fd = s.kcm;
	ASSERT_OK(epoll_ctl(ep, EPOLL_CTL_ADD, s.kcm, &ev));
	ASSERT_EQ(epoll_wait(ep, &out, 1, 50), 0);
	send_msg(s.peer, 48, 1);
	ASSERT_EQ(epoll_wait(ep, &out, 1, 5000), 1);
	ASSERT_EQ(out.data.fd, s.kcm);
	ASSERT_TRUE(out.events & EPOLLIN);
	/* Edge-triggered: no new event until something new arrives. */
	ASSERT_EQ(epoll_wait(ep, &out, 1, 50), 0);
	send_msg(s.peer, 48, 2);
	ASSERT_EQ(epoll_wait(ep, &out, 1, 5000), 1);
	ASSERT_EQ(recv(s.kcm, b, sizeof(b), MSG_DONTWAIT), 48);
	expect_seq(b, 48, 1);
	ASSERT_EQ(recv(s.kcm, b, sizeof(b), MSG_DONTWAIT), 48);
	expect_seq(b, 48, 2);
}

/* ---- KCM_RECV_DISABLE -------------------------------------------------- */

static int get_disable(int fd)
{
	return kcm_get_int_opt(fd, SOL_KCM, KCM_RECV_DISABLE);
}

static void set_disable(int fd, int v)
{
	kcm_set_int_opt(fd, SOL_KCM, KCM_RECV_DISABLE, v);
}

KCM_TEST(recv_disable_get_set)
{
	int fd = kcm_socket(SOCK_DGRAM);
	int c = ASSERT_OK(kcm_clone(fd));

	ASSERT_EQ(get_disable(fd), 0);
	set_disable(fd, 1);
	ASSERT_EQ(get_disable(fd), 1);
	/* Per socket, not per mux. */
	ASSERT_EQ(get_disable(c), 0);
	set_disable(fd, 1);
	ASSERT_EQ(get_disable(fd), 1);
	set_disable(fd, 0);
	ASSERT_EQ(get_disable(fd), 0);
	/* Any non-zero value disables; reads back as 1. */
	set_disable(c, 7);
	ASSERT_EQ(get_disable(c), 1);
	set_disable(c, 0);
	ASSERT_EQ(get_disable(c), 0);
}

/* A disabled socket gets no new messages: they go to the other socket. */
KCM_TEST(recv_disable_steers_to_other)
{
	struct rx s;
	char b[128];
	int c, i;

	setup(&s, SOCK_DGRAM);
	c = ASSERT_OK(kcm_clone(s.kcm));
	set_disable(s.kcm, 1);
	for (i = 0; i < 10; i++)
		send_msg(s.peer, 64, i);
	for (i = 0; i < 10; i++) {
		ASSERT_EQ(kcm_recv_timeout(c, b, sizeof(b), 0, 5000), 64);
		expect_seq(b, 64, i);
	}
	ASSERT_ERRNO(recv(s.kcm, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
}

/* Messages queued on A move to B when A is disabled. */
KCM_TEST(recv_disable_moves_queued)
{
	struct rx s;
	char b[128];
	int c, i;

	setup(&s, SOCK_DGRAM);
	c = ASSERT_OK(kcm_clone(s.kcm));
	/* Only A (s.kcm) receives while the messages arrive. */
	set_disable(c, 1);
	for (i = 0; i < 6; i++)
		send_msg(s.peer, 80, i);
	wait_readable(s.kcm);
	kcm_msleep(100);
	ASSERT_EQ(kcm_poll1(c, POLLIN, 0) & POLLIN, 0);
	set_disable(c, 0);
	set_disable(s.kcm, 1);
	/* All six are now on B, in order, and A has none. */
	for (i = 0; i < 6; i++) {
		ASSERT_EQ(kcm_recv_timeout(c, b, sizeof(b), 0, 5000), 80);
		expect_seq(b, 80, i);
	}
	ASSERT_ERRNO(recv(s.kcm, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
	ASSERT_ERRNO(recv(c, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
}

/*
 * A SOCK_SEQPACKET message A has begun to read (a short read) is A's to
 * finish: KCM_RECV_DISABLE moves the messages after it to B, whole, and
 * never the rest of that one as if it were a message.  @size: 80 (small
 * messages, copied by the parser into one batch) or 3000 (one skb each).
 */
/*
 * Six messages of @size queued on s->kcm (A), its clone (B, returned)
 * disabled meanwhile, and the first 30 bytes of message 0 read into @b.
 */
static int six_queued_one_begun(struct rx *s, size_t size, char *b)
{
	int c, i, flags;

	setup(s, SOCK_SEQPACKET);
	c = ASSERT_OK(kcm_clone(s->kcm));
	set_disable(c, 1);
	for (i = 0; i < 6; i++)
		send_msg(s->peer, size, i);
	wait_readable(s->kcm);
	kcm_msleep(100);
	ASSERT_EQ(recv_flags(s->kcm, b, 30, 0, &flags), 30);
	ASSERT_EQ(flags & MSG_EOR, 0);
	set_disable(c, 0);
	return c;
}

static void disable_after_short_read(size_t size)
{
	char b[4096];
	struct rx s;
	int c, i, flags;

	c = six_queued_one_begun(&s, size, b);
	set_disable(s.kcm, 1);
	/* The rest of message 0 is still A's, and ends it. */
	ASSERT_EQ(recv_flags(s.kcm, b + 30, sizeof(b) - 30, MSG_DONTWAIT,
			     &flags), (ssize_t)size - 30);
	ASSERT_TRUE(flags & MSG_EOR);
	expect_seq(b, size, 0);
	ASSERT_ERRNO(recv(s.kcm, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
	/* B has 1 to 5, each whole. */
	for (i = 1; i < 6; i++) {
		ASSERT_EQ(kcm_recv_timeout(c, b, sizeof(b), 0, 5000),
			  (ssize_t)size);
		expect_seq(b, size, i);
	}
	ASSERT_ERRNO(recv(c, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
}

KCM_TEST(recv_disable_keeps_begun_message_small,
	 KCM_LINUX_BUG(SEQPACKET_PARTIAL_BUG))
{
	disable_after_short_read(80);
}

KCM_TEST(recv_disable_keeps_begun_message_large,
	 KCM_LINUX_BUG(SEQPACKET_PARTIAL_BUG))
{
	disable_after_short_read(3000);
}

/* Closed after a short read: the rest of that message goes with it, and
 * the other socket gets the messages after it, whole.
 */
KCM_TEST(close_after_short_read_moves_whole_messages)
{
	char b[4096];
	struct rx s;
	int c, i;

	c = six_queued_one_begun(&s, 80, b);
	close(s.kcm);
	for (i = 1; i < 6; i++) {
		ASSERT_EQ(kcm_recv_timeout(c, b, sizeof(b), 0, 5000), 80);
		expect_seq(b, 80, i);
	}
	ASSERT_ERRNO(recv(c, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
}

KCM_TEST(recv_reenable)
{
	struct rx s;
	char b[128];
	int c, i;

	setup(&s, SOCK_DGRAM);
	c = ASSERT_OK(kcm_clone(s.kcm));
	set_disable(s.kcm, 1);
	set_disable(s.kcm, 0);
	set_disable(c, 1);
	for (i = 0; i < 5; i++)
		send_msg(s.peer, 64, i);
	for (i = 0; i < 5; i++) {
		ASSERT_EQ(kcm_recv_timeout(s.kcm, b, sizeof(b), 0, 5000), 64);
		expect_seq(b, 64, i);
	}
	ASSERT_ERRNO(recv(c, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
}

/* With every socket disabled, messages wait in the mux until one is
 * enabled again.
 */
KCM_TEST(recv_disable_all_then_enable)
{
	struct rx s;
	char b[128];
	int c, i;

	setup(&s, SOCK_SEQPACKET);
	c = ASSERT_OK(kcm_clone(s.kcm));
	set_disable(s.kcm, 1);
	set_disable(c, 1);
	for (i = 0; i < 4; i++)
		send_msg(s.peer, 64, i);
	kcm_msleep(200);
	ASSERT_ERRNO(recv(s.kcm, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
	ASSERT_ERRNO(recv(c, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
	set_disable(c, 0);
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(kcm_recv_timeout(c, b, sizeof(b), 0, 5000), 64);
		expect_seq(b, 64, i);
	}
	ASSERT_ERRNO(recv(s.kcm, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
}

/* Linux's kcm.ko: ENOPROTOOPT for an unknown option or a level other than
 * SOL_KCM, EINVAL for an optlen shorter than an int.
 */
KCM_TEST(sockopt_bad_optname)
{
	int fd = kcm_socket(SOCK_DGRAM), v = 1;
	socklen_t len = sizeof(v);

	ASSERT_ERRNO(setsockopt(fd, SOL_KCM, 2, &v, sizeof(v)), ENOPROTOOPT);
	ASSERT_ERRNO(setsockopt(fd, SOL_KCM, 0, &v, sizeof(v)), ENOPROTOOPT);
	ASSERT_ERRNO(getsockopt(fd, SOL_KCM, 2, &v, &len), ENOPROTOOPT);
	len = sizeof(v);
	ASSERT_ERRNO(getsockopt(fd, SOL_KCM, 0, &v, &len), ENOPROTOOPT);
}

KCM_TEST(sockopt_bad_level)
{
	int fd = kcm_socket(SOCK_DGRAM), v = 1;
	socklen_t len = sizeof(v);

	ASSERT_ERRNO(setsockopt(fd, IPPROTO_TCP, KCM_RECV_DISABLE, &v,
				sizeof(v)), ENOPROTOOPT);
	ASSERT_ERRNO(setsockopt(fd, SOL_IP, KCM_RECV_DISABLE, &v, sizeof(v)),
		     ENOPROTOOPT);
	ASSERT_ERRNO(getsockopt(fd, IPPROTO_TCP, KCM_RECV_DISABLE, &v, &len),
		     ENOPROTOOPT);
	ASSERT_EQ(get_disable(fd), 0);
}

KCM_TEST(sockopt_short_optlen)
{
	int fd = kcm_socket(SOCK_DGRAM), v = 1;

	ASSERT_ERRNO(setsockopt(fd, SOL_KCM, KCM_RECV_DISABLE, &v, 2),
		     EINVAL);
	ASSERT_ERRNO(setsockopt(fd, SOL_KCM, KCM_RECV_DISABLE, &v, 0),
		     EINVAL);
	ASSERT_EQ(get_disable(fd), 0);
}

KCM_TEST(sockopt_bad_pointer)
{
	int fd = kcm_socket(SOCK_DGRAM);
	socklen_t len = sizeof(int);

	ASSERT_ERRNO(setsockopt(fd, SOL_KCM, KCM_RECV_DISABLE, (void *)8,
				sizeof(int)), EFAULT);
	ASSERT_ERRNO(getsockopt(fd, SOL_KCM, KCM_RECV_DISABLE, (void *)8,
				&len), EFAULT);
}

KCM_TEST(getsockopt_lengths)
{
	int fd = kcm_socket(SOCK_DGRAM);
	char big[16];
	socklen_t len;

	set_disable(fd, 1);
	/* A longer buffer: an int comes back and optlen says so. */
	memset(big, 0x55, sizeof(big));
	len = sizeof(big);
	ASSERT_OK(getsockopt(fd, SOL_KCM, KCM_RECV_DISABLE, big, &len));
	ASSERT_EQ(len, sizeof(int));
	{
		int v;

		memcpy(&v, big, sizeof(v));
		ASSERT_EQ(v, 1);
	}
	ASSERT_EQ((unsigned char)big[sizeof(int)], 0x55);
	/* A shorter buffer: Linux's kcm.ko copies that many bytes of the
	 * int and succeeds.
	 */
	memset(big, 0x55, sizeof(big));
	len = 1;
	ASSERT_OK(getsockopt(fd, SOL_KCM, KCM_RECV_DISABLE, big, &len));
	ASSERT_EQ(len, 1);
	ASSERT_EQ(big[0], 1);
	ASSERT_EQ((unsigned char)big[1], 0x55);
	len = 0;
	ASSERT_OK(getsockopt(fd, SOL_KCM, KCM_RECV_DISABLE, big, &len));
	ASSERT_EQ(len, 0);
	/* A negative length. */
	len = (socklen_t)-1;
	ASSERT_ERRNO(getsockopt(fd, SOL_KCM, KCM_RECV_DISABLE, big, &len),
		     EINVAL);
}
