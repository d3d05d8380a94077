// SPDX-License-Identifier: GPL-2.0
/*
 * AF_KCM receive errors.  When a message cannot be received on an attached
 * TCP socket, KCM posts an error on that TCP socket (poll() reports POLLERR,
 * SO_ERROR returns the errno) and stops receiving from it, while the other
 * TCP sockets of the mux go on working.
 *
 * Each case attaches two TCP sockets: "bad" (t1, peer p1), where the error
 * is provoked, and "good" (t2, peer p2).
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>

#include "kcm_test.h"

struct errcase {
	int kcm, prog;
	int p1, t1;	/* the connection that gets the error */
	int p2, t2;	/* a healthy connection of the same mux */
};

/* @bad_prog is attached with t1 (or the length program if < 0). */
static void setup(struct errcase *e, int bad_prog, int rcvbuf, int rcvtimeo)
{
	e->kcm = kcm_socket(SOCK_DGRAM);
	e->prog = kcm_prog_len32();
	kcm_tcp_pair(AF_INET, &e->p1, &e->t1);
	kcm_tcp_pair(AF_INET, &e->p2, &e->t2);
	if (rcvbuf)
		kcm_set_int_opt(e->t1, SOL_SOCKET, SO_RCVBUF, rcvbuf);
	if (rcvtimeo)
		kcm_set_rcvtimeo(e->t1, rcvtimeo);
	ASSERT_OK(kcm_attach(e->kcm, e->t1, bad_prog >= 0 ? bad_prog : e->prog));
	ASSERT_OK(kcm_attach(e->kcm, e->t2, e->prog));
}

static void send_msg(int peer, uint32_t conn, uint32_t seq)
{
	char m[200];

	kcm_msg_build(m, sizeof(m), conn, seq);
	kcm_write_all(peer, m, sizeof(m));
}

static void expect_msg(int kcm, uint32_t conn, uint32_t seq)
{
	char b[512];
	uint32_t c, q;
	ssize_t n = kcm_recv_timeout(kcm, b, sizeof(b), 0, 5000);

	if (n < 0)
		KCM_FAIL("message %u of conn %u: %s", seq, conn,
			 kcm_errname(errno));
	ASSERT_EQ(n, 200);
	ASSERT_EQ(kcm_msg_check(b, n, &c, &q), 0);
	ASSERT_EQ(c, conn);
	ASSERT_EQ(q, seq);
}

static void expect_nothing(int kcm, int ms)
{
	char b[512];
	ssize_t n = kcm_recv_timeout(kcm, b, sizeof(b), 0, ms);
	uint32_t c = 0, q = 0;

	if (n >= 0) {
		kcm_msg_check(b, n, &c, &q);
		KCM_FAIL("unexpected %zd-byte message (conn %u seq %u)", n, c,
			 q);
	}
	ASSERT_EQ(errno, EAGAIN);
}

/* Wait for POLLERR on @fd; returns the time it took in ms. */
static long long wait_pollerr(int fd, int ms)
{
	long long t0 = kcm_now_ms();

	while (kcm_now_ms() - t0 < ms) {
		if (kcm_poll1(fd, 0, 50) & POLLERR)
			return kcm_now_ms() - t0;
	}
	KCM_FAIL("no POLLERR on the TCP socket within %d ms", ms);
}

/*
 * The error @err is (or becomes) pending on t1; afterwards t1's psock
 * delivers nothing more, t2's goes on, and t1 can be unattached.
 * @peer_alive: p1 can still send.
 */
static void check_error(struct errcase *e, int err, int peer_alive)
{
	int got;

	wait_pollerr(e->t1, 10000);
	got = kcm_so_error(e->t1);
	if (got != err)
		KCM_FAIL("SO_ERROR: expected %d %s, got %d %s", err,
			 kcm_errname(err), got, kcm_errname(got));
	/* SO_ERROR reads and clears it. */
	EXPECT_EQ(kcm_so_error(e->t1), 0);
	if (peer_alive) {
		send_msg(e->p1, 1, 100);
		send_msg(e->p1, 1, 101);
	}
	send_msg(e->p2, 2, 1);
	expect_msg(e->kcm, 2, 1);
	expect_nothing(e->kcm, 300);
	send_msg(e->p2, 2, 2);
	expect_msg(e->kcm, 2, 2);
	ASSERT_OK(kcm_unattach(e->kcm, e->t1));
	ASSERT_OK(kcm_unattach(e->kcm, e->t2));
}

/* A message longer than the TCP socket's receive buffer: EMSGSIZE. */
KCM_TEST(err_message_larger_than_rcvbuf)
{
	struct errcase e;
	unsigned char hdr[64];
	int rcvbuf;

	setup(&e, -1, 8192, 0);
	rcvbuf = kcm_get_int_opt(e.t1, SOL_SOCKET, SO_RCVBUF);
	KCM_LOG("SO_RCVBUF reads back %d", rcvbuf);
	send_msg(e.p1, 1, 0);
	expect_msg(e.kcm, 1, 0);
	/* Claim a body of twice the buffer size, and send a little of it. */
	memset(hdr, 0xab, sizeof(hdr));
	hdr[0] = (unsigned)(rcvbuf * 2) >> 24;
	hdr[1] = (unsigned)(rcvbuf * 2) >> 16;
	hdr[2] = (unsigned)(rcvbuf * 2) >> 8;
	hdr[3] = (unsigned)(rcvbuf * 2);
	kcm_write_all(e.p1, hdr, sizeof(hdr));
	check_error(&e, EMSGSIZE, 1);
}

/* The limit is the receive buffer size at the time: a message that fits
 * after SO_RCVBUF was raised is received.
 */
KCM_TEST(err_rcvbuf_limit_follows_setting)
{
	struct errcase e;
	char *m;
	int rcvbuf;
	size_t size;

	setup(&e, -1, 8192, 0);
	rcvbuf = kcm_get_int_opt(e.t1, SOL_SOCKET, SO_RCVBUF);
	size = rcvbuf * 2;
	kcm_set_int_opt(e.t1, SOL_SOCKET, SO_RCVBUF, rcvbuf * 4);
	m = malloc(size);
	ASSERT_TRUE(m);
	kcm_msg_build(m, size, 1, 0);
	kcm_write_all(e.p1, m, size);
	{
		char *b = malloc(size + 16);
		ssize_t n = kcm_recv_timeout(e.kcm, b, size + 16, 0, 5000);

		ASSERT_EQ(n, size);
		ASSERT_MEMEQ(b, m, size);
	}
	EXPECT_EQ(kcm_poll1(e.t1, 0, 0) & POLLERR, 0);
	EXPECT_EQ(kcm_so_error(e.t1), 0);
}

/* A message not complete within the TCP socket's SO_RCVTIMEO: ETIMEDOUT. */
KCM_TEST(err_message_timeout)
{
	struct errcase e;
	char m[200];
	long long j0, dt, dj;

	setup(&e, -1, 0, 500);
	send_msg(e.p1, 1, 0);
	expect_msg(e.kcm, 1, 0);
	kcm_msg_build(m, sizeof(m), 1, 1);
	j0 = kcm_tick_ms();	/* before the timer that the write arms */
	kcm_write_all(e.p1, m, 50);
	dt = wait_pollerr(e.t1, 10000);
	dj = kcm_tick_ms() - j0;
	KCM_LOG("POLLERR after %lld ms (%lld ms on the tick clock)", dt, dj);
	/*
	 * Not before the timeout.  The timer counts whole jiffies from the
	 * write that starts the message, so measured on their clock
	 * (kcm_tick_ms()) from before it, not a tick of the 500 ms is
	 * missing; on CLOCK_MONOTONIC it ends early by as much as jiffies
	 * lagged when it was armed.
	 */
	EXPECT_GE(dj, 500);
	/* The rest of the message comes too late. */
	kcm_write_all(e.p1, m + 50, sizeof(m) - 50);
	check_error(&e, ETIMEDOUT, 1);
}

/* A header that never completes times out too. */
KCM_TEST(err_header_timeout)
{
	struct errcase e;

	setup(&e, -1, 0, 500);
	kcm_write_all(e.p1, "\0\0", 2);
	check_error(&e, ETIMEDOUT, 1);
}

/* Without SO_RCVTIMEO nothing times out. */
KCM_TEST(err_no_timeout_by_default)
{
	struct errcase e;
	char m[200];

	setup(&e, -1, 0, 0);
	kcm_msg_build(m, sizeof(m), 1, 0);
	kcm_write_all(e.p1, m, 50);
	kcm_msleep(1500);
	EXPECT_EQ(kcm_poll1(e.t1, 0, 0) & POLLERR, 0);
	kcm_write_all(e.p1, m + 50, sizeof(m) - 50);
	expect_msg(e.kcm, 1, 0);
	EXPECT_EQ(kcm_so_error(e.t1), 0);
}

/* A program answering @answer for every message: @err is posted. */
static void program_answer_posts(int answer, int err)
{
	struct errcase e;

	setup(&e, kcm_prog_const(answer), 0, 0);
	send_msg(e.p1, 1, 0);
	check_error(&e, err, 1);
}

/* The program returns a negative value: Linux's kcm.ko posts its
 * negation as the error (-1: EPERM).
 */
KCM_TEST(err_program_returns_minus_one)
{
	program_answer_posts(-1, EPERM);
}

KCM_TEST(err_program_returns_negative_errno)
{
	program_answer_posts(-EBADMSG, EBADMSG);
}

/*
 * A length field of 2^31 or more read by the documented "load word + 4":
 * a negative int that is no errno.  It is a length no buffer can hold:
 * EMSGSIZE, not the number itself as an errno.
 */
KCM_TEST(err_program_returns_huge_length,
	 KCM_LINUX_BUG("posts the negated length as the error: SO_ERROR 33554232"))
{
	struct errcase e;
	unsigned char m[200];

	setup(&e, -1, 0, 0);
	kcm_msg_build(m, sizeof(m), 1, 0);
	m[0] = 0xfe;	/* length field 0xfe0000c4: + 4, still >= 2^31 */
	kcm_write_all(e.p1, m, sizeof(m));
	check_error(&e, EMSGSIZE, 1);
}

/* Just below -4095: not an errno either. */
KCM_TEST(err_program_returns_below_errno_range,
	 KCM_LINUX_BUG("posts 4096, which is no errno"))
{
	program_answer_posts(-4096, EMSGSIZE);
}

/* -4095 is the last errno, posted as it is. */
KCM_TEST(err_program_returns_max_errno)
{
	program_answer_posts(-4095, 4095);
}

/*
 * A program that never tells the length (answers 0 whatever it sees) does
 * not make the parser copy ever more of the stream: after 64 KiB of the
 * message the stream fails with EMSGSIZE.  The TCP socket's buffer is
 * larger than that, so the buffer is not what stops it.
 */
KCM_TEST(err_program_never_tells_length,
	 KCM_LINUX_BUG("waits for ever: no error, nothing delivered"))
{
	struct errcase e;
	char *junk = kcm_xmalloc(100000);

	memset(junk, 0x5a, 100000);
	setup(&e, kcm_prog_const(0), 1 << 20, 0);
	kcm_write_all(e.p1, junk, 100000);
	check_error(&e, EMSGSIZE, 1);
	free(junk);
}

/* The peer closes: Linux's kcm.ko posts EPIPE. */
KCM_TEST(err_peer_close)
{
	struct errcase e;

	setup(&e, -1, 0, 0);
	send_msg(e.p1, 1, 0);
	expect_msg(e.kcm, 1, 0);
	ASSERT_OK(close(e.p1));
	check_error(&e, EPIPE, 0);
}

/* The peer closes in the middle of a message. */
KCM_TEST(err_peer_close_mid_message)
{
	struct errcase e;
	char m[200];

	setup(&e, -1, 0, 0);
	kcm_msg_build(m, sizeof(m), 1, 0);
	kcm_write_all(e.p1, m, 60);
	kcm_msleep(50);
	ASSERT_OK(close(e.p1));
	check_error(&e, EPIPE, 0);
}

/* The peer resets the connection (SO_LINGER 0): Linux's kcm.ko posts
 * EPIPE.
 */
KCM_TEST(err_peer_reset)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct errcase e;

	setup(&e, -1, 0, 0);
	send_msg(e.p1, 1, 0);
	expect_msg(e.kcm, 1, 0);
	ASSERT_OK(setsockopt(e.p1, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	ASSERT_OK(close(e.p1));
	check_error(&e, EPIPE, 0);
}

/* Messages completed before the error are still delivered. */
KCM_TEST(err_messages_before_error_delivered)
{
	struct errcase e;
	char m[200 * 5 + 8];
	int i;

	setup(&e, -1, 0, 0);
	for (i = 0; i < 5; i++)
		kcm_msg_build(m + 200 * i, 200, 1, i);
	kcm_write_all(e.p1, m, 200 * 5);
	ASSERT_OK(close(e.p1));
	for (i = 0; i < 5; i++)
		expect_msg(e.kcm, 1, i);
	check_error(&e, EPIPE, 0);
}
