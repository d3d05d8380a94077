// SPDX-License-Identifier: GPL-2.0
/*
 * Many small messages arriving together, in one TCP write.  Our receive
 * path copies such messages into batches (several messages in one skb);
 * whatever a reader does, it must see them as it sees any message: one per
 * call, whole, in order, with the usual flags, counted one by one, and
 * movable to another socket half-read.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
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
	kcm_set_int_opt(s->tcp, SOL_SOCKET, SO_RCVBUF, 1024 * 1024);
	ASSERT_OK(kcm_attach(s->kcm, s->tcp, s->prog));
}

static void fill_sizes(size_t *sizes, int n, size_t size)
{
	int i;

	for (i = 0; i < n; i++)
		sizes[i] = size;
}

/* The next message on @fd is @seq of @size bytes, whole, with MSG_EOR. */
static void expect_msg(int fd, uint32_t seq, size_t size)
{
	static char buf[8192];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	uint32_t c, q;
	ssize_t n;

	if (!(kcm_poll1(fd, POLLIN, 10000) & POLLIN))
		KCM_FAIL("message %u (%zu bytes): nothing to read in 10 s",
			 seq, size);
	n = recvmsg(fd, &mh, MSG_DONTWAIT);
	if (n != (ssize_t)size || kcm_msg_check(buf, n, &c, &q) || q != seq)
		KCM_FAIL("expected message %u (%zu bytes), got %zd bytes (%s), seq %u",
			 seq, size, n, n < 0 ? kcm_errname(errno) : "", q);
	EXPECT_EQ(mh.msg_flags & (MSG_EOR | MSG_TRUNC), MSG_EOR);
}

static void expect_nothing(int fd)
{
	char b[64];

	ASSERT_ERRNO(recv(fd, b, sizeof(b), MSG_DONTWAIT), EAGAIN);
}

/* 400 messages of 64 bytes in one write, read with recvmmsg 32 at a time. */
KCM_TEST(batch_recvmmsg_in_order)
{
	enum { N = 400, CAP = 32 };
	static char bufs[CAP][128];
	struct mmsghdr mm[CAP];
	struct iovec iov[CAP];
	struct timespec ts = { 5, 0 };
	size_t sizes[N];
	int got = 0, i, n;
	uint32_t c, q;
	struct rx s;

	setup(&s, SOCK_DGRAM);
	fill_sizes(sizes, N, 64);
	kcm_write_msgs(s.peer, sizes, N, 3, 0);
	while (got < N) {
		memset(mm, 0, sizeof(mm));
		for (i = 0; i < CAP; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = sizeof(bufs[i]);
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		ASSERT_TRUE(kcm_poll1(s.kcm, POLLIN, 10000) & POLLIN);
		n = ASSERT_OK(recvmmsg(s.kcm, mm, CAP, MSG_DONTWAIT, &ts));
		ASSERT_GT(n, 0);
		for (i = 0; i < n; i++, got++) {
			ASSERT_EQ(mm[i].msg_len, 64);
			ASSERT_EQ(kcm_msg_check(bufs[i], 64, &c, &q), 0);
			ASSERT_EQ(q, got);
			EXPECT_EQ(mm[i].msg_hdr.msg_flags & MSG_EOR, MSG_EOR);
		}
	}
	expect_nothing(s.kcm);
}

/* Small and large messages mixed: the large ones are not batched, and
 * must come out between the small ones exactly where they were sent.
 */
KCM_TEST(batch_small_and_large_in_order,
	 KCM_LINUX_BUG("the program runs at the start of the skb, not of the message"))
{
	enum { N = 300 };
	uint64_t rs = 11;
	size_t sizes[N];
	struct rx s;
	int i;

	setup(&s, SOCK_DGRAM);
	for (i = 0; i < N; i++)
		sizes[i] = i % 17 == 5 ? 2100 + kcm_rand(&rs) % 3000 :
			   KCM_MSG_MIN + kcm_rand(&rs) % (2049 - KCM_MSG_MIN);
	kcm_write_msgs(s.peer, sizes, N, 3, 0);
	for (i = 0; i < N; i++)
		expect_msg(s.kcm, i, sizes[i]);
	expect_nothing(s.kcm);
}

/* DGRAM, short buffer, a message in the middle of a batch: MSG_TRUNC,
 * the rest of that message is gone, the next one is whole.
 */
KCM_TEST(batch_dgram_truncate)
{
	enum { N = 20 };
	char buf[256], ref[200];
	size_t sizes[N];
	struct iovec iov = { .iov_base = buf, .iov_len = 50 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct rx s;
	int i;

	setup(&s, SOCK_DGRAM);
	fill_sizes(sizes, N, 200);
	kcm_write_msgs(s.peer, sizes, N, 3, 0);
	for (i = 0; i < N; i += 2) {
		expect_msg(s.kcm, i, 200);
		ASSERT_EQ(recvmsg(s.kcm, &mh, MSG_DONTWAIT), 50);
		EXPECT_EQ(mh.msg_flags & MSG_TRUNC, MSG_TRUNC);
		kcm_msg_build(ref, 200, 3, i + 1);
		ASSERT_MEMEQ(buf, ref, 50);
	}
	expect_nothing(s.kcm);
}

#define SEQPACKET_PARTIAL_BUG \
	"SOCK_SEQPACKET drops the unread rest of a message, no MSG_EOR/MSG_TRUNC"

/* SEQPACKET read in 30-byte pieces: a piece never crosses into the next
 * message of the batch, and MSG_EOR comes with each message's last piece.
 */
KCM_TEST(batch_seqpacket_pieces, KCM_LINUX_BUG(SEQPACKET_PARTIAL_BUG))
{
	enum { N = 50, SIZE = 100, PIECE = 30 };
	char whole[SIZE];
	size_t sizes[N];
	uint32_t c, q;
	struct rx s;
	int i;

	setup(&s, SOCK_SEQPACKET);
	fill_sizes(sizes, N, SIZE);
	kcm_write_msgs(s.peer, sizes, N, 3, 0);
	ASSERT_TRUE(kcm_poll1(s.kcm, POLLIN, 10000) & POLLIN);
	kcm_msleep(50);
	for (i = 0; i < N; i++) {
		size_t off = 0;

		while (off < SIZE) {
			struct iovec iov = {
				.iov_base = whole + off, .iov_len = PIECE,
			};
			struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
			size_t want = SIZE - off < PIECE ? SIZE - off : PIECE;

			ASSERT_EQ(recvmsg(s.kcm, &mh, MSG_DONTWAIT), want);
			off += want;
			EXPECT_EQ(mh.msg_flags & (MSG_EOR | MSG_TRUNC),
				  off == SIZE ? MSG_EOR : 0);
		}
		ASSERT_EQ(kcm_msg_check(whole, SIZE, &c, &q), 0);
		ASSERT_EQ(q, i);
	}
	expect_nothing(s.kcm);
}

/* MSG_PEEK shows the current message of a batch and leaves it there. */
KCM_TEST(batch_peek)
{
	enum { N = 30 };
	char a[128], b[128];
	size_t sizes[N];
	struct rx s;
	int i;

	setup(&s, SOCK_DGRAM);
	fill_sizes(sizes, N, 64);
	kcm_write_msgs(s.peer, sizes, N, 3, 0);
	ASSERT_TRUE(kcm_poll1(s.kcm, POLLIN, 10000) & POLLIN);
	kcm_msleep(50);
	for (i = 0; i < N; i++) {
		ASSERT_EQ(recv(s.kcm, a, sizeof(a), MSG_PEEK | MSG_DONTWAIT), 64);
		ASSERT_EQ(recv(s.kcm, a, sizeof(a), MSG_PEEK | MSG_DONTWAIT), 64);
		ASSERT_EQ(recv(s.kcm, b, sizeof(b), MSG_DONTWAIT), 64);
		ASSERT_MEMEQ(a, b, 64);
		kcm_msg_build(a, 64, 3, i);
		ASSERT_MEMEQ(b, a, 64);
	}
	expect_nothing(s.kcm);
}

/* A batch half read on A moves to B when A stops receiving: B gets the
 * rest from the next unread message on, A nothing more.
 */
KCM_TEST(batch_recv_disable_moves_rest)
{
	enum { N = 200, READ = 70 };
	size_t sizes[N];
	struct rx s;
	int b, i;

	setup(&s, SOCK_DGRAM);
	/* All of them wait on A, on Linux too (see proc_counters_one_write). */
	kcm_set_int_opt(s.kcm, SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20);
	b = ASSERT_OK(kcm_clone(s.kcm));
	kcm_set_int_opt(b, SOL_KCM, KCM_RECV_DISABLE, 1);
	fill_sizes(sizes, N, 64);
	kcm_write_msgs(s.peer, sizes, N, 3, 0);
	for (i = 0; i < READ; i++)
		expect_msg(s.kcm, i, 64);
	kcm_set_int_opt(b, SOL_KCM, KCM_RECV_DISABLE, 0);
	kcm_set_int_opt(s.kcm, SOL_KCM, KCM_RECV_DISABLE, 1);
	for (; i < N; i++)
		expect_msg(b, i, 64);
	expect_nothing(s.kcm);
	expect_nothing(b);
}

/*
 * A KCM socket with a small receive buffer and many batches of small
 * messages: the socket fills, the parser waits, and once the reader has
 * taken everything the socket is charged for nothing (else it would stall
 * on the later rounds).
 */
KCM_TEST(batch_small_rcvbuf_rounds)
{
	/* A write under 32 KiB: Linux's kcm.ko loses the framing where a
	 * message straddles two TCP skbs (see kcm_rx.c, rx_mixed_sizes_*).
	 */
	enum { N = 300, ROUNDS = 8 };
	size_t sizes[N];
	struct rx s;
	int i, r;

	setup(&s, SOCK_DGRAM);
	kcm_set_int_opt(s.kcm, SOL_SOCKET, SO_RCVBUF, 4096);
	fill_sizes(sizes, N, 100);
	for (r = 0; r < ROUNDS; r++) {
		kcm_write_msgs(s.peer, sizes, N, 3, r * N);
		for (i = 0; i < N; i++)
			expect_msg(s.kcm, r * N + i, 100);
	}
	expect_nothing(s.kcm);
}

/*
 * Messages spliced out of a batch stay in the pipe after the batch is read
 * and freed (ours: full batches are buffers of a page pool, which must not
 * give a buffer out again while a pipe holds it).  More rounds of messages
 * go through batches meanwhile; then the pipe gives back the spliced
 * messages, whole and in order.
 */
KCM_TEST(batch_splice_then_reuse)
{
	enum { N = 400, SPLICED = 8, ROUNDS = 4 };
	size_t sizes[N];
	char buf[128];
	int p[2], i, r;
	uint32_t c, q;
	struct rx s;

	setup(&s, SOCK_DGRAM);
	ASSERT_OK(pipe(p));
	fill_sizes(sizes, N, 64);
	kcm_write_msgs(s.peer, sizes, N, 3, 0);
	for (i = 0; i < SPLICED; i++) {
		ASSERT_TRUE(kcm_poll1(s.kcm, POLLIN, 10000) & POLLIN);
		ASSERT_EQ(splice(s.kcm, NULL, p[1], NULL, sizeof(buf), 0), 64);
	}
	for (i = SPLICED; i < N; i++)
		expect_msg(s.kcm, i, 64);
	for (r = 1; r <= ROUNDS; r++) {
		kcm_write_msgs(s.peer, sizes, N, 3, r * N);
		for (i = 0; i < N; i++)
			expect_msg(s.kcm, r * N + i, 64);
	}
	for (i = 0; i < SPLICED; i++) {
		ASSERT_EQ(read(p[0], buf, 64), 64);
		ASSERT_EQ(kcm_msg_check(buf, 64, &c, &q), 0);
		ASSERT_EQ(q, i);
	}
	expect_nothing(s.kcm);
	close(p[0]);
	close(p[1]);
}
