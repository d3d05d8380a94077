// SPDX-License-Identifier: GPL-2.0
/*
 * AF_KCM receive path: framing a TCP stream into messages however the
 * bytes are cut into writes and segments, IPv4 and IPv6, several KCM
 * sockets and several TCP connections on one mux, and backpressure.
 *
 * Every message here is built by kcm_msg_build(): a 4-byte big-endian
 * length (excluding itself), a connection id, a sequence number and a
 * filler that depends on both, so a received message proves by itself that
 * it is whole and unmixed.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "kcm_test.h"

#define MAX_MSG (256 * 1024)

struct rx_setup {
	int kcm, peer, tcp, prog;
};

static void setup(struct rx_setup *s, int type, int family)
{
	s->kcm = kcm_socket(type);
	s->prog = kcm_prog_len32();
	kcm_tcp_pair(family, &s->peer, &s->tcp);
	ASSERT_OK(kcm_attach(s->kcm, s->tcp, s->prog));
}

/* Receive one message and check it is message (conn, seq) of @size. */
static void expect_msg(int kcm, uint32_t conn, uint32_t seq, size_t size)
{
	static char buf[MAX_MSG + 16];
	uint32_t c, s;
	ssize_t n;

	n = kcm_recv_timeout(kcm, buf, sizeof(buf), 0, 10000);
	if (n < 0)
		KCM_FAIL("waiting for message %u of conn %u (%zu bytes): %s",
			 seq, conn, size, kcm_errname(errno));
	if ((size_t)n != size || kcm_msg_check(buf, n, &c, &s) ||
	    c != conn || s != seq)
		KCM_FAIL("expected message %u of conn %u (%zu bytes), got %zd bytes: %s (conn %u seq %u)",
			 seq, conn, size, n,
			 kcm_msg_check(buf, n, &c, &s) ? "malformed" : "well formed",
			 c, s);
}

static void expect_nothing(int kcm, int ms)
{
	char b[64];

	ASSERT_ERRNO(kcm_recv_timeout(kcm, b, sizeof(b), 0, ms), EAGAIN);
}

/* Build @n messages of the given sizes back to back; returns the length. */
static size_t build_stream(char *buf, const size_t *sizes, int n,
			   uint32_t conn, uint32_t seq0)
{
	size_t off = 0;
	int i;

	for (i = 0; i < n; i++) {
		kcm_msg_build(buf + off, sizes[i], conn, seq0 + i);
		off += sizes[i];
	}
	return off;
}

static void one_write_each(int family, int type)
{
	struct rx_setup s;
	char msg[1000];
	uint32_t i;

	setup(&s, type, family);
	for (i = 0; i < 20; i++) {
		size_t size = 300;

		kcm_msg_build(msg, size, 1, i);
		kcm_write_all(s.peer, msg, size);
		expect_msg(s.kcm, 1, i, size);
	}
	expect_nothing(s.kcm, 100);
}

KCM_TEST(rx_one_write_per_message)
{
	one_write_each(AF_INET, SOCK_DGRAM);
}

KCM_TEST(rx_one_write_per_message_ipv6)
{
	one_write_each(AF_INET6, SOCK_DGRAM);
}

KCM_TEST(rx_one_write_per_message_seqpacket)
{
	one_write_each(AF_INET, SOCK_SEQPACKET);
}

KCM_TEST(rx_one_write_per_message_seqpacket_ipv6)
{
	one_write_each(AF_INET6, SOCK_SEQPACKET);
}

/* Same-size messages, several queued before anyone reads. */
KCM_TEST(rx_queued_before_reading)
{
	struct rx_setup s;
	char msg[128];
	uint32_t i;

	setup(&s, SOCK_DGRAM, AF_INET);
	for (i = 0; i < 30; i++) {
		kcm_msg_build(msg, sizeof(msg), 2, i);
		kcm_write_all(s.peer, msg, sizeof(msg));
		kcm_msleep(2);
	}
	for (i = 0; i < 30; i++)
		expect_msg(s.kcm, 2, i, sizeof(msg));
	expect_nothing(s.kcm, 100);
}

static void byte_by_byte(int family)
{
	struct rx_setup s;
	char msg[48];
	uint32_t i;
	size_t k;

	setup(&s, SOCK_DGRAM, family);
	for (i = 0; i < 3; i++) {
		kcm_msg_build(msg, sizeof(msg), 4, i);
		for (k = 0; k < sizeof(msg); k++) {
			kcm_write_all(s.peer, msg + k, 1);
			kcm_msleep(1);
			/* Nothing is delivered before the last byte. */
			if (k == 2 || k == sizeof(msg) - 2)
				expect_nothing(s.kcm, 20);
		}
		expect_msg(s.kcm, 4, i, sizeof(msg));
	}
}

KCM_TEST(rx_byte_by_byte)
{
	byte_by_byte(AF_INET);
}

KCM_TEST(rx_byte_by_byte_ipv6)
{
	byte_by_byte(AF_INET6);
}

/* A header split over two segments, then the body in a third. */
KCM_TEST(rx_split_header)
{
	struct rx_setup s;
	char msg[2000];
	uint32_t i;

	setup(&s, SOCK_DGRAM, AF_INET);
	for (i = 0; i < 4; i++) {
		size_t cut = 1 + i;	/* 1, 2, 3 and 4 header bytes first */

		kcm_msg_build(msg, sizeof(msg), 5, i);
		kcm_write_all(s.peer, msg, cut);
		kcm_msleep(20);
		kcm_write_all(s.peer, msg + cut, 10);
		kcm_msleep(20);
		expect_nothing(s.kcm, 10);
		kcm_write_all(s.peer, msg + cut + 10, sizeof(msg) - cut - 10);
		expect_msg(s.kcm, 5, i, sizeof(msg));
	}
}

/* Many same-size messages in a single write. */
KCM_TEST(rx_many_per_write)
{
	enum { N = 64, SZ = 100 };
	size_t sizes[N];
	char *buf = malloc(N * SZ);
	struct rx_setup s;
	uint32_t i;
	int round;

	ASSERT_TRUE(buf);
	setup(&s, SOCK_DGRAM, AF_INET);
	for (i = 0; i < N; i++)
		sizes[i] = SZ;
	for (round = 0; round < 3; round++) {
		size_t len = build_stream(buf, sizes, N, 6, round * N);

		kcm_write_all(s.peer, buf, len);
		for (i = 0; i < N; i++)
			expect_msg(s.kcm, 6, round * N + i, SZ);
	}
	expect_nothing(s.kcm, 100);
}

/*
 * Same-size messages in writes that cut them anywhere: 1.5 messages per
 * write, so every other write starts in the middle of a message.
 */
KCM_TEST(rx_straddling_writes,
	 KCM_LINUX_BUG("the program runs at the start of the skb, not of the message"))
{
	enum { N = 40, SZ = 200 };
	size_t sizes[N];
	char *buf = malloc(N * SZ);
	struct rx_setup s;
	size_t len, off;
	uint32_t i;

	ASSERT_TRUE(buf);
	setup(&s, SOCK_DGRAM, AF_INET);
	for (i = 0; i < N; i++)
		sizes[i] = SZ;
	len = build_stream(buf, sizes, N, 7, 0);
	for (off = 0; off < len; off += SZ * 3 / 2) {
		size_t chunk = len - off < SZ * 3 / 2 ? len - off : SZ * 3 / 2;

		kcm_write_all(s.peer, buf + off, chunk);
		kcm_msleep(5);
	}
	for (i = 0; i < N; i++)
		expect_msg(s.kcm, 7, i, SZ);
	expect_nothing(s.kcm, 100);
}

/* Messages of different sizes back to back in one write. */
KCM_TEST(rx_mixed_sizes_one_write,
	 KCM_LINUX_BUG("the program runs at the start of the skb, not of the message"))
{
	static const size_t sizes[] = {
		16, 1000, 17, 4096, 33, 65000, 100, 16, 16, 2000, 777, 18,
	};
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	size_t total = 0, len;
	struct rx_setup s;
	char *buf;
	int i;

	for (i = 0; i < N; i++)
		total += sizes[i];
	buf = malloc(total);
	ASSERT_TRUE(buf);
	setup(&s, SOCK_DGRAM, AF_INET);
	kcm_set_int_opt(s.tcp, SOL_SOCKET, SO_RCVBUF, 512 * 1024);
	len = build_stream(buf, sizes, N, 8, 0);
	ASSERT_EQ(len, total);
	kcm_write_all(s.peer, buf, len);
	for (i = 0; i < N; i++)
		expect_msg(s.kcm, 8, i, sizes[i]);
	expect_nothing(s.kcm, 100);
}

/* Mixed sizes, each message in its own write but sent without pause. */
KCM_TEST(rx_mixed_sizes_back_to_back,
	 KCM_LINUX_BUG("the program runs at the start of the skb, not of the message"))
{
	enum { N = 200 };
	struct rx_setup s;
	char msg[3000];
	uint64_t rs = 7;
	size_t sizes[N];
	int i;

	setup(&s, SOCK_DGRAM, AF_INET);
	for (i = 0; i < N; i++) {
		sizes[i] = KCM_MSG_MIN + kcm_rand(&rs) % (sizeof(msg) - KCM_MSG_MIN);
		kcm_msg_build(msg, sizes[i], 9, i);
		kcm_write_all(s.peer, msg, sizes[i]);
	}
	for (i = 0; i < N; i++)
		expect_msg(s.kcm, 9, i, sizes[i]);
	expect_nothing(s.kcm, 100);
}

/* ---- a long steady stream from a sender thread ------------------------ */

struct stream_job {
	int fd;
	uint32_t conn;
	int count;
	uint64_t seed;
	size_t min_size, max_size;
	int chunking;		/* 0: a write per message, 1: random cuts */
	int window;		/* if > 0: at most this many unread messages */
	_Atomic int sent;
	_Atomic int acked;	/* messages the receivers have taken */
	uint64_t csum;		/* sum of the checksums of all messages */
	long long bytes;
};

static size_t job_size(struct stream_job *j, uint64_t *rs)
{
	if (j->max_size == j->min_size)
		return j->min_size;
	return j->min_size + kcm_rand(rs) % (j->max_size - j->min_size + 1);
}

static void *stream_sender(void *arg)
{
	struct stream_job *j = arg;
	char *buf = malloc(j->max_size * 8 + 16);
	uint64_t rs = j->seed, cut = j->seed ^ 0xabcdef;
	size_t pend = 0;
	int i, npend = 0;

	if (!buf)
		KCM_FAIL("malloc");
	for (i = 0; i < j->count; i++) {
		size_t sz = job_size(j, &rs);
		long long t0 = kcm_now_ms();

		/*
		 * Keep the buffers from filling: a write that blocks halfway
		 * makes TCP start a segment in the middle of a message, which
		 * Linux's parser does not survive (rx_straddling_writes).
		 */
		while (j->window && i - atomic_load(&j->acked) >= j->window) {
			if (kcm_now_ms() - t0 > 10000)
				KCM_FAIL("conn %u: receivers stuck at %d of %d",
					 j->conn, atomic_load(&j->acked), i);
			usleep(200);
		}
		kcm_msg_build(buf + pend, sz, j->conn, i);
		j->csum += kcm_csum(buf + pend, sz);
		j->bytes += sz;
		pend += sz;
		npend++;
		if (!j->chunking) {
			kcm_write_all(j->fd, buf, pend);
			pend = 0;
			npend = 0;
		} else if (pend > j->max_size * 4 || i == j->count - 1 ||
			   (j->window && npend >= j->window / 2)) {
			size_t off = 0;

			/* Write what is pending in random cuts. */
			while (off < pend) {
				size_t c = 1 + kcm_rand(&cut) % (j->max_size * 2);

				if (c > pend - off)
					c = pend - off;
				kcm_write_all(j->fd, buf + off, c);
				off += c;
				if (!(kcm_rand(&cut) % 8))
					kcm_msleep(1);
			}
			pend = 0;
			npend = 0;
		}
		atomic_store(&j->sent, i + 1);
	}
	free(buf);
	return NULL;
}

/* Regenerate the size sequence of a job, as the sender drew it. */
static void job_sizes(struct stream_job *j, size_t *out)
{
	uint64_t rs = j->seed;
	int i;

	for (i = 0; i < j->count; i++)
		out[i] = job_size(j, &rs);
}

static void steady_stream(int family, int chunking, size_t min, size_t max,
			  int count)
{
	struct stream_job j = {
		.conn = 11, .count = count, .seed = 1234,
		.min_size = min, .max_size = max, .chunking = chunking,
		.window = 32,
	};
	size_t *sizes = calloc(count, sizeof(*sizes));
	static char buf[MAX_MSG];
	struct rx_setup s;
	uint64_t csum = 0;
	pthread_t th;
	int i;

	ASSERT_TRUE(sizes);
	setup(&s, SOCK_DGRAM, family);
	j.fd = s.peer;
	job_sizes(&j, sizes);
	ASSERT_OK(-pthread_create(&th, NULL, stream_sender, &j));
	for (i = 0; i < count; i++) {
		uint32_t c, q;
		ssize_t n = kcm_recv_timeout(s.kcm, buf, sizeof(buf), 0, 10000);

		if (n < 0)
			KCM_FAIL("message %d of %d: %s (sender at %d)", i, count,
				 kcm_errname(errno), atomic_load(&j.sent));
		if (kcm_msg_check(buf, n, &c, &q) || c != j.conn ||
		    q != (uint32_t)i || (size_t)n != sizes[i])
			KCM_FAIL("message %d: got %zd bytes (%s, seq %u), expected %zu",
				 i, n, kcm_msg_check(buf, n, &c, &q) ?
				 "malformed" : "well formed", q, sizes[i]);
		csum += kcm_csum(buf, n);
		atomic_fetch_add(&j.acked, 1);
	}
	pthread_join(th, NULL);
	ASSERT_EQ(csum, j.csum);
	expect_nothing(s.kcm, 100);
	free(sizes);
}

/* A long stream of same-size messages, a write each. */
KCM_TEST(rx_steady_stream_same_size, KCM_TIMEOUT(60))
{
	steady_stream(AF_INET, 0, 700, 700, 3000);
}

KCM_TEST(rx_steady_stream_mixed_sizes, KCM_TIMEOUT(60),
	 KCM_LINUX_BUG("the program runs at the start of the skb, not of the message"))
{
	steady_stream(AF_INET, 1, KCM_MSG_MIN, 5000, 3000);
}

KCM_TEST(rx_steady_stream_mixed_sizes_ipv6, KCM_TIMEOUT(60),
	 KCM_LINUX_BUG("the program runs at the start of the skb, not of the message"))
{
	steady_stream(AF_INET6, 1, KCM_MSG_MIN, 5000, 3000);
}

/* ---- other framings --------------------------------------------------- */

/* A 2-byte length header (excluding itself). */
KCM_TEST(rx_len16_program)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len16();
	char msg[600], got[700];
	int peer, tcp, i;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	for (i = 0; i < 10; i++) {
		size_t len = 2 + 500;
		int k;

		msg[0] = (len - 2) >> 8;
		msg[1] = (len - 2) & 0xff;
		for (k = 2; k < (int)len; k++)
			msg[k] = (char)(i * 3 + k);
		kcm_write_all(peer, msg, len);
		ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0, 5000),
			  len);
		ASSERT_MEMEQ(got, msg, len);
	}
}

/* A program that returns a constant: fixed-size records. */
KCM_TEST(rx_const_length_program)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_const(10);
	char stream[100], got[64];
	int peer, tcp, i;

	for (i = 0; i < 100; i++)
		stream[i] = (char)i;
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	kcm_write_all(peer, stream, 100);
	for (i = 0; i < 10; i++) {
		ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0, 5000), 10);
		ASSERT_MEMEQ(got, stream + i * 10, 10);
	}
	expect_nothing(kcm, 100);
}

/* A header-only message (length 0 after the header) is a 4-byte message. */
KCM_TEST(rx_empty_body)
{
	struct rx_setup s;
	char got[16];
	int i;

	setup(&s, SOCK_DGRAM, AF_INET);
	for (i = 0; i < 3; i++) {
		kcm_send_framed(s.peer, NULL, 0);
		ASSERT_EQ(kcm_recv_timeout(s.kcm, got, sizeof(got), 0, 5000), 4);
		ASSERT_MEMEQ(got, "\0\0\0\0", 4);
	}
}

KCM_TEST(rx_large_message)
{
	size_t size = 200 * 1024;
	char *msg = malloc(size);
	struct rx_setup s;
	int i;

	ASSERT_TRUE(msg);
	s.kcm = kcm_socket(SOCK_DGRAM);
	s.prog = kcm_prog_len32();
	kcm_tcp_pair(AF_INET, &s.peer, &s.tcp);
	kcm_set_int_opt(s.tcp, SOL_SOCKET, SO_RCVBUF, 1024 * 1024);
	kcm_set_int_opt(s.kcm, SOL_SOCKET, SO_RCVBUF, 1024 * 1024);
	ASSERT_OK(kcm_attach(s.kcm, s.tcp, s.prog));
	for (i = 0; i < 3; i++) {
		kcm_msg_build(msg, size, 12, i);
		kcm_write_all(s.peer, msg, size);
		expect_msg(s.kcm, 12, i, size);
	}
	free(msg);
}

/* ---- N KCM sockets x M TCP connections -------------------------------- */

enum { NXM_K = 4, NXM_T = 3, NXM_COUNT = 400 };

struct nxm {
	int kcm[NXM_K];
	struct stream_job jobs[NXM_T];
	_Atomic int received;
	_Atomic int per_sock[NXM_K];
	_Atomic unsigned char seen[NXM_T][NXM_COUNT];
	_Atomic uint64_t csum;
	_Atomic int bad;
	_Atomic int dup;
};

struct nxm_reader {
	struct nxm *m;
	int idx;
};

static void *nxm_read(void *arg)
{
	struct nxm_reader *r = arg;
	struct nxm *m = r->m;
	int total = NXM_T * NXM_COUNT;
	char *buf = malloc(MAX_MSG);
	long long deadline = kcm_now_ms() + 40000;

	while (atomic_load(&m->received) < total && kcm_now_ms() < deadline) {
		uint32_t c, q;
		ssize_t n = kcm_recv_timeout(m->kcm[r->idx], buf, MAX_MSG, 0,
					     100);

		if (n < 0)
			continue;
		if (kcm_msg_check(buf, n, &c, &q) || c >= NXM_T ||
		    q >= NXM_COUNT) {
			atomic_fetch_add(&m->bad, 1);
			atomic_fetch_add(&m->received, 1);
			continue;
		}
		if (atomic_fetch_add(&m->seen[c][q], 1))
			atomic_fetch_add(&m->dup, 1);
		atomic_fetch_add(&m->jobs[c].acked, 1);
		atomic_fetch_add(&m->csum, kcm_csum(buf, n));
		atomic_fetch_add(&m->per_sock[r->idx], 1);
		atomic_fetch_add(&m->received, 1);
	}
	free(buf);
	return NULL;
}

static void nxm_run(int mixed)
{
	static struct nxm m;
	struct nxm_reader rd[NXM_K];
	pthread_t rt[NXM_K], st[NXM_T];
	int prog = kcm_prog_len32();
	uint64_t want = 0;
	int i, q, missing = 0;

	m.kcm[0] = kcm_socket(SOCK_DGRAM);
	for (i = 1; i < NXM_K; i++)
		m.kcm[i] = ASSERT_OK(kcm_clone(m.kcm[0]));
	for (i = 0; i < NXM_T; i++) {
		int peer, tcp;

		kcm_tcp_pair(i == 1 ? AF_INET6 : AF_INET, &peer, &tcp);
		ASSERT_OK(kcm_attach(m.kcm[i % NXM_K], tcp, prog));
		m.jobs[i] = (struct stream_job){
			.fd = peer, .conn = i, .count = NXM_COUNT,
			.seed = 100 + i,
			/* Linux needs one size per connection (see
			 * rx_mixed_sizes_*): each connection has its own.
			 */
			.min_size = mixed ? KCM_MSG_MIN : 100 + 700 * i,
			.max_size = mixed ? 3000 : 100 + 700 * i,
			.chunking = mixed,
			.window = 32,
		};
	}
	for (i = 0; i < NXM_K; i++) {
		rd[i] = (struct nxm_reader){ &m, i };
		ASSERT_OK(-pthread_create(&rt[i], NULL, nxm_read, &rd[i]));
	}
	for (i = 0; i < NXM_T; i++)
		ASSERT_OK(-pthread_create(&st[i], NULL, stream_sender,
					  &m.jobs[i]));
	for (i = 0; i < NXM_T; i++)
		pthread_join(st[i], NULL);
	for (i = 0; i < NXM_K; i++)
		pthread_join(rt[i], NULL);
	for (i = 0; i < NXM_T; i++) {
		want += m.jobs[i].csum;
		for (q = 0; q < NXM_COUNT; q++)
			if (!atomic_load(&m.seen[i][q]))
				missing++;
	}
	for (i = 0; i < NXM_K; i++)
		KCM_LOG("kcm socket %d received %d", i,
			atomic_load(&m.per_sock[i]));
	{
		int bad = atomic_load(&m.bad), dup = atomic_load(&m.dup);
		int received = atomic_load(&m.received);
		uint64_t csum = atomic_load(&m.csum);

		EXPECT_EQ(bad, 0);
		EXPECT_EQ(dup, 0);
		EXPECT_EQ(missing, 0);
		EXPECT_EQ(received, NXM_T * NXM_COUNT);
		EXPECT_EQ(csum, want);
	}
	for (i = 0; i < NXM_K; i++)
		expect_nothing(m.kcm[i], 50);
}

KCM_TEST(rx_4_kcm_x_3_tcp, KCM_TIMEOUT(60))
{
	nxm_run(0);
}

KCM_TEST(rx_4_kcm_x_3_tcp_mixed_sizes, KCM_TIMEOUT(60),
	 KCM_LINUX_BUG("the program runs at the start of the skb, not of the message"))
{
	nxm_run(1);
}

/* Several KCM sockets of a mux, read through one epoll set. */
KCM_TEST(rx_clones_with_epoll)
{
	enum { NK = 4, N = 200, SZ = 300 };
	int kcm[NK], ep, i, got = 0;
	int seen[N] = { 0 };
	struct rx_setup s;
	char msg[SZ];

	setup(&s, SOCK_DGRAM, AF_INET);
	kcm[0] = s.kcm;
	for (i = 1; i < NK; i++)
		kcm[i] = ASSERT_OK(kcm_clone(s.kcm));
	ep = ASSERT_OK(epoll_create1(0));
	for (i = 0; i < NK; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };

		ASSERT_OK(epoll_ctl(ep, EPOLL_CTL_ADD, kcm[i], &ev));
	}
	for (i = 0; i < N; i++) {
		kcm_msg_build(msg, SZ, 3, i);
		kcm_write_all(s.peer, msg, SZ);
	}
	while (got < N) {
		struct epoll_event ev[NK];
		int n = ASSERT_OK(epoll_wait(ep, ev, NK, 10000)), k;

		if (!n)
			KCM_FAIL("epoll_wait timed out after %d of %d", got, N);
		for (k = 0; k < n; k++) {
			char buf[SZ * 2];
			uint32_t c, q;
			ssize_t r = recv(kcm[ev[k].data.u32], buf, sizeof(buf),
					 MSG_DONTWAIT);

			if (r < 0 && errno == EAGAIN)
				continue;
			ASSERT_EQ(r, SZ);
			ASSERT_EQ(kcm_msg_check(buf, r, &c, &q), 0);
			ASSERT_LT(q, N);
			ASSERT_EQ(seen[q]++, 0);
			got++;
		}
	}
	for (i = 0; i < NK; i++)
		expect_nothing(kcm[i], 20);
}

/* ---- backpressure ------------------------------------------------------ */

/*
 * Nobody reads: the KCM socket fills, then the attached TCP socket, then the
 * peer's send buffer, and a non-blocking peer gets EAGAIN.  Then everything
 * is read, and every message arrives intact and in order per connection.
 */
enum { BP_NT = 2, BP_SZ = 1000, BP_LIMIT = 20000, BP_MORE = 100 };

struct bp_reader {
	int kcm;
	int expect[BP_NT];	/* total per connection, set before reading */
	_Atomic int go;
	int next[BP_NT];
};

static void *bp_read(void *arg)
{
	struct bp_reader *r = arg;
	char buf[BP_SZ * 2];
	int got = 0, total;

	while (!atomic_load(&r->go))
		kcm_msleep(1);
	total = r->expect[0] + r->expect[1];
	while (got < total) {
		uint32_t c, q;
		ssize_t n = kcm_recv_timeout(r->kcm, buf, sizeof(buf), 0,
					     10000);

		if (n < 0)
			KCM_FAIL("after %d of %d messages: %s", got, total,
				 kcm_errname(errno));
		if (n != BP_SZ || kcm_msg_check(buf, n, &c, &q) || c >= BP_NT)
			KCM_FAIL("message %d: %zd bytes, malformed", got, n);
		if (q != (uint32_t)r->next[c])
			KCM_FAIL("conn %u: got seq %u, expected %d", c, q,
				 r->next[c]);
		r->next[c]++;
		got++;
	}
	return NULL;
}

static void backpressure_nonblocking(int prog)
{
	int kcm = kcm_socket(SOCK_DGRAM);
	int peer[BP_NT], tcp[BP_NT], sent[BP_NT] = { 0 };
	size_t part[BP_NT] = { 0 };
	struct bp_reader r = { .kcm = kcm };
	char msg[BP_NT][BP_SZ];
	pthread_t th;
	int i, k;

	kcm_set_int_opt(kcm, SOL_SOCKET, SO_RCVBUF, 16384);
	for (i = 0; i < BP_NT; i++) {
		kcm_tcp_pair(AF_INET, &peer[i], &tcp[i]);
		kcm_set_int_opt(tcp[i], SOL_SOCKET, SO_RCVBUF, 32768);
		kcm_set_int_opt(peer[i], SOL_SOCKET, SO_SNDBUF, 16384);
		ASSERT_OK(kcm_attach(kcm, tcp[i], prog));
	}
	for (i = 0; i < BP_NT; i++) {
		for (;;) {
			ssize_t n;

			if (!part[i])
				kcm_msg_build(msg[i], BP_SZ, i, sent[i]);
			n = send(peer[i], msg[i] + part[i], BP_SZ - part[i],
				 MSG_DONTWAIT);
			if (n < 0 && errno == EAGAIN) {
				/* Blocked for good, or just for a moment? */
				if (kcm_poll1(peer[i], POLLOUT, 300) & POLLOUT)
					continue;
				break;
			}
			ASSERT_GT(n, 0);
			part[i] += n;
			if (part[i] == BP_SZ) {
				part[i] = 0;
				if (++sent[i] >= BP_LIMIT)
					KCM_FAIL("conn %d: %d messages sent and no EAGAIN",
						 i, sent[i]);
			}
		}
		KCM_LOG("conn %d: EAGAIN after %d messages (+%zu bytes)", i,
			sent[i], part[i]);
		EXPECT_GT(sent[i], 5);
	}
	/* The first connection is still blocked. */
	EXPECT_FALSE(kcm_poll1(peer[0], POLLOUT, 0) & POLLOUT);
	/* Now a reader drains the mux while the peers finish and send more. */
	for (i = 0; i < BP_NT; i++)
		r.expect[i] = sent[i] + (part[i] ? 1 : 0) + BP_MORE;
	ASSERT_OK(-pthread_create(&th, NULL, bp_read, &r));
	atomic_store(&r.go, 1);
	for (i = 0; i < BP_NT; i++) {
		kcm_set_nonblock(peer[i], 0);
		if (part[i]) {
			kcm_write_all(peer[i], msg[i] + part[i],
				      BP_SZ - part[i]);
			sent[i]++;
		}
		for (k = 0; k < BP_MORE; k++) {
			kcm_msg_build(msg[i], BP_SZ, i, sent[i] + k);
			kcm_write_all(peer[i], msg[i], BP_SZ);
		}
	}
	pthread_join(th, NULL);
	for (i = 0; i < BP_NT; i++)
		ASSERT_EQ(r.next[i], r.expect[i]);
	expect_nothing(kcm, 100);
}

/*
 * With a fixed-length program: under backpressure TCP cuts segments
 * anywhere, which Linux's framing does not survive (see the next case and
 * rx_straddling_writes); this one is about flow control alone.
 */
KCM_TEST(rx_backpressure_nonblocking, KCM_TIMEOUT(60))
{
	backpressure_nonblocking(kcm_prog_const(BP_SZ));
}

KCM_TEST(rx_backpressure_nonblocking_length_framed, KCM_TIMEOUT(60),
	 KCM_LINUX_BUG("the program runs at the start of the skb, not of the message"))
{
	backpressure_nonblocking(kcm_prog_len32());
}

struct block_job {
	int fd, count;
	size_t size;
	_Atomic int sent;
};

static void *block_sender(void *arg)
{
	struct block_job *b = arg;
	char *msg = malloc(b->size);
	int i;

	for (i = 0; i < b->count; i++) {
		kcm_msg_build(msg, b->size, 0, i);
		kcm_write_all(b->fd, msg, b->size);
		atomic_store(&b->sent, i + 1);
	}
	free(msg);
	return NULL;
}

/* A blocking peer stays blocked while nobody reads, and is released when
 * the KCM socket is read.
 */
KCM_TEST(rx_backpressure_blocking, KCM_TIMEOUT(60))
{
	struct block_job b = { .count = 300, .size = 4000 };
	struct rx_setup s;
	pthread_t th;
	int i, before;

	s.kcm = kcm_socket(SOCK_DGRAM);
	/* Fixed-length program: see rx_backpressure_nonblocking. */
	s.prog = kcm_prog_const(b.size);
	kcm_tcp_pair(AF_INET, &s.peer, &s.tcp);
	kcm_set_int_opt(s.kcm, SOL_SOCKET, SO_RCVBUF, 16384);
	kcm_set_int_opt(s.tcp, SOL_SOCKET, SO_RCVBUF, 65536);
	kcm_set_int_opt(s.peer, SOL_SOCKET, SO_SNDBUF, 32768);
	ASSERT_OK(kcm_attach(s.kcm, s.tcp, s.prog));
	b.fd = s.peer;
	ASSERT_OK(-pthread_create(&th, NULL, block_sender, &b));
	kcm_msleep(1000);
	before = atomic_load(&b.sent);
	kcm_msleep(500);
	/* No progress without a reader, and far from done. */
	EXPECT_EQ(atomic_load(&b.sent), before);
	EXPECT_LT(before, b.count / 2);
	KCM_LOG("sender blocked after %d messages", before);
	for (i = 0; i < b.count; i++)
		expect_msg(s.kcm, 0, i, b.size);
	pthread_join(th, NULL);
	expect_nothing(s.kcm, 100);
}
