// SPDX-License-Identifier: GPL-2.0
/*
 * AF_KCM: carrying a stream whatever the peer and the application do.
 *
 * The cases here began as reports from tests written outside the project:
 * a stall under load with recvmmsg(), a stall under backpressure with tiny
 * buffers, an ETIMEDOUT that was never posted, and a TCP socket that went
 * on to listen with our callbacks.  Each case accounts for every message
 * (connection id, sequence number, content) and, when nothing moves for
 * too long, dumps /proc/net/kcm before it fails.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <linux/sockios.h>
#include <unistd.h>

#include "kcm_test.h"

/* Bytes waiting in a TCP socket's receive queue. */
static int tcp_inq(int fd)
{
	int n = -1;

	ioctl(fd, SIOCINQ, &n);
	return n;
}

/*
 * What TCP says of one end of a stalled connection: its windows, what it
 * has unacknowledged and whether it is probing a closed window.
 */
static void dump_tcp(const char *name, int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int inq = -1, outq = -1;

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len)) {
		kcm_diag("%s: TCP_INFO: %s", name, kcm_errname(errno));
		return;
	}
	ioctl(fd, SIOCINQ, &inq);
	ioctl(fd, SIOCOUTQ, &outq);
	kcm_diag("%s: state %u inq %d outq %d unacked %u probes %u backoff %u rto %u ms",
		 name, ti.tcpi_state, inq, outq, ti.tcpi_unacked,
		 ti.tcpi_probes, ti.tcpi_backoff, ti.tcpi_rto / 1000);
	kcm_diag("%s: snd_mss %u rcv_mss %u rcv_space %u rcv_ssthresh %u snd_cwnd %u",
		 name, ti.tcpi_snd_mss, ti.tcpi_rcv_mss, ti.tcpi_rcv_space,
		 ti.tcpi_rcv_ssthresh, ti.tcpi_snd_cwnd);
}

/* ---- a stream under load, read with recvmmsg() ------------------------- */

#define LOAD_CONNS	4
#define LOAD_READERS	2
#define LOAD_MSG	64
#define LOAD_BUF	(64 * 1024)
#define LOAD_VLEN	32

struct load {
	int kcm[LOAD_READERS];
	int peer[LOAD_CONNS], tcp[LOAD_CONNS];
	atomic_int stop_send;
	atomic_int stop_read;
	atomic_ullong sent[LOAD_CONNS];		/* messages written */
	atomic_ullong got[LOAD_CONNS];		/* messages received */
	_Atomic(uint64_t) *seen[LOAD_CONNS];	/* a bit per sequence number */
	atomic_int bad;
};

/* Sequence numbers a connection may use: its bitmap's size. */
#define LOAD_SEQ_MAX	(1u << 24)

struct load_worker {
	struct load *l;
	int i;
	uint32_t next[LOAD_CONNS];	/* a reader's next seq at least */
	pthread_t th;
};

static void *load_send(void *arg)
{
	struct load_worker *w = arg;
	struct load *l = w->l;
	char *buf = kcm_xmalloc(LOAD_BUF);
	uint32_t seq = 0;

	while (!atomic_load(&l->stop_send) &&
	       seq < LOAD_SEQ_MAX - LOAD_BUF / LOAD_MSG) {
		size_t off;

		for (off = 0; off + LOAD_MSG <= LOAD_BUF; off += LOAD_MSG)
			kcm_msg_build(buf + off, LOAD_MSG, w->i, seq++);
		kcm_write_all(l->peer[w->i], buf, off);
		atomic_fetch_add(&l->sent[w->i], off / LOAD_MSG);
	}
	free(buf);
	return NULL;
}

/*
 * One message, checked for content, received once, and in order among
 * those of its connection that this reader got: a reader's socket queues a
 * psock's messages in stream order, but two readers' calls interleave.
 */
static void load_account(struct load_worker *w, const char *buf, size_t len)
{
	struct load *l = w->l;
	uint32_t conn, seq;
	uint64_t bit;

	if (kcm_msg_check(buf, len, &conn, &seq) || conn >= LOAD_CONNS ||
	    seq >= LOAD_SEQ_MAX) {
		if (!atomic_exchange(&l->bad, 1))
			kcm_diag("malformed message of %zu bytes", len);
		return;
	}
	if (seq < w->next[conn] && !atomic_exchange(&l->bad, 1))
		kcm_diag("reader %d, conn %u: seq %u after %u", w->i, conn,
			 seq, w->next[conn] - 1);
	w->next[conn] = seq + 1;
	bit = 1ull << (seq % 64);
	if ((atomic_fetch_or(&l->seen[conn][seq / 64], bit) & bit) &&
	    !atomic_exchange(&l->bad, 1))
		kcm_diag("conn %u: seq %u received twice", conn, seq);
	atomic_fetch_add(&l->got[conn], 1);
}

static void *load_read(void *arg)
{
	struct load_worker *w = arg;
	struct load *l = w->l;
	static __thread char bufs[LOAD_VLEN][LOAD_MSG * 2];
	struct mmsghdr mm[LOAD_VLEN];
	struct iovec iov[LOAD_VLEN];
	int i, n;

	for (i = 0; i < LOAD_VLEN; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
	}
	while (!atomic_load(&l->stop_read)) {
		memset(mm, 0, sizeof(mm));
		for (i = 0; i < LOAD_VLEN; i++) {
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(l->kcm[w->i], mm, LOAD_VLEN, MSG_WAITFORONE, NULL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			if (!atomic_exchange(&l->bad, 1))
				kcm_diag("recvmmsg: %s", kcm_errname(errno));
			break;
		}
		for (i = 0; i < n; i++)
			load_account(w, bufs[i], mm[i].msg_len);
	}
	return NULL;
}

static unsigned long long load_total(atomic_ullong *v)
{
	unsigned long long t = 0;
	int i;

	for (i = 0; i < LOAD_CONNS; i++)
		t += atomic_load(&v[i]);
	return t;
}

/*
 * Clients write 64 KiB of back-to-back 64-byte messages as fast as they
 * can; two threads read with recvmmsg(MSG_WAITFORONE) and SO_RCVTIMEO.
 * Every message written must arrive, in order per connection, and nothing
 * may stand still for 10 s.
 */
static void load_run(int family, int ms)
{
	struct load_worker snd[LOAD_CONNS], rcv[LOAD_READERS];
	unsigned long long last = 0;
	struct load *l = calloc(1, sizeof(*l));
	long long moved, end;
	int prog, i;

	ASSERT_TRUE(l);
	for (i = 0; i < LOAD_CONNS; i++)
		ASSERT_TRUE(l->seen[i] = calloc(LOAD_SEQ_MAX / 64,
						sizeof(*l->seen[i])));
	prog = kcm_prog_len32();
	l->kcm[0] = kcm_socket(SOCK_DGRAM);
	for (i = 1; i < LOAD_READERS; i++)
		ASSERT_OK(l->kcm[i] = kcm_clone(l->kcm[0]));
	for (i = 0; i < LOAD_READERS; i++)
		kcm_set_rcvtimeo(l->kcm[i], 100);
	for (i = 0; i < LOAD_CONNS; i++) {
		kcm_tcp_pair(family, &l->peer[i], &l->tcp[i]);
		ASSERT_OK(kcm_attach(l->kcm[0], l->tcp[i], prog));
	}

	for (i = 0; i < LOAD_READERS; i++) {
		rcv[i] = (struct load_worker){ .l = l, .i = i };
		ASSERT_EQ(pthread_create(&rcv[i].th, NULL, load_read, &rcv[i]), 0);
	}
	for (i = 0; i < LOAD_CONNS; i++) {
		snd[i] = (struct load_worker){ .l = l, .i = i };
		ASSERT_EQ(pthread_create(&snd[i].th, NULL, load_send, &snd[i]), 0);
	}

	/* Send for ms; a sender blocked by a stall is seen below. */
	end = kcm_now_ms() + ms;
	moved = kcm_now_ms();
	for (;;) {
		unsigned long long got = load_total(l->got);
		long long now = kcm_now_ms();

		if (now >= end && !atomic_load(&l->stop_send))
			atomic_store(&l->stop_send, 1);
		if (got != last) {
			last = got;
			moved = now;
		}
		if (atomic_load(&l->stop_send) &&
		    got == load_total(l->sent) && now >= end + 200)
			break;
		if (now - moved > 10000) {
			kcm_diag("no message for 10 s: received %llu of %llu written",
				 got, load_total(l->sent));
			for (i = 0; i < LOAD_CONNS; i++)
				kcm_diag("conn %d: sent %llu got %llu, TCP inq %d",
					 i, atomic_load(&l->sent[i]),
					 atomic_load(&l->got[i]),
					 tcp_inq(l->tcp[i]));
			for (i = 0; i < LOAD_CONNS; i++) {
				dump_tcp("receiver", l->tcp[i]);
				dump_tcp("peer", l->peer[i]);
			}
			kcm_dump_proc("stall");
			KCM_FAIL("stream stalled");
		}
		if (atomic_load(&l->bad))
			KCM_FAIL("a message was lost, repeated or damaged");
		kcm_msleep(50);
	}
	atomic_store(&l->stop_read, 1);
	for (i = 0; i < LOAD_CONNS; i++)
		pthread_join(snd[i].th, NULL);
	for (i = 0; i < LOAD_READERS; i++)
		pthread_join(rcv[i].th, NULL);
	ASSERT_EQ(atomic_load(&l->bad), 0);
	/* Received once each, as many as sent: every message, exactly. */
	for (i = 0; i < LOAD_CONNS; i++) {
		ASSERT_EQ(atomic_load(&l->got[i]), atomic_load(&l->sent[i]));
		close(l->peer[i]);
		close(l->tcp[i]);
		free(l->seen[i]);
	}
	for (i = 0; i < LOAD_READERS; i++)
		close(l->kcm[i]);
	close(prog);
	KCM_LOG("%llu messages", last);
	ASSERT_GT(last, 0);
	free(l);
}

KCM_TEST(load_recvmmsg_v4, KCM_TIMEOUT(120),
	 KCM_LINUX_BUG("stalls: 512 messages per connection, then nothing for 10 s"))
{
	int run;

	for (run = 0; run < 3; run++)
		load_run(AF_INET, 2000);
}

KCM_TEST(load_recvmmsg_v6, KCM_TIMEOUT(60),
	 KCM_LINUX_BUG("stalls: 512 messages per connection, then nothing for 10 s"))
{
	load_run(AF_INET6, 2000);
}

/* ---- backpressure with tiny buffers ------------------------------------ */

#define BP_MSGS	6000
#define BP_SIZE	200

/*
 * A non-blocking peer writes what TCP accepts; the application reads one
 * message at a time.  The stream must go on to the end: within 3 s there
 * is always either a message to read or room for the peer to write.  (A
 * loop that waits for a message after every refused write would wait for
 * bytes it has not written yet whenever all it wrote has been read and the
 * last message is partial: that is the test's deadlock, not a stall.)
 */
static void backpressure(int family)
{
	int kcm, peer, tcp, prog;
	char *stream, buf[BP_SIZE * 2];
	size_t total = (size_t)BP_MSGS * BP_SIZE, off = 0;
	uint32_t seq = 0, conn, s;
	int i;

	stream = kcm_xmalloc(total);
	for (i = 0; i < BP_MSGS; i++)
		kcm_msg_build(stream + (size_t)i * BP_SIZE, BP_SIZE, 0, i);

	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	kcm_tcp_pair(family, &peer, &tcp);
	kcm_set_int_opt(kcm, SOL_SOCKET, SO_RCVBUF, 8192);
	kcm_set_int_opt(tcp, SOL_SOCKET, SO_RCVBUF, 65536);
	kcm_set_int_opt(peer, SOL_SOCKET, SO_SNDBUF, 16384);
	kcm_set_nonblock(peer, 1);
	kcm_set_rcvtimeo(kcm, 3000);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));

	while (seq < BP_MSGS) {
		struct pollfd pfd[2] = {
			{ .fd = kcm, .events = POLLIN },
			{ .fd = peer, .events = off < total ? POLLOUT : 0 },
		};
		ssize_t n;

		while (off < total) {
			n = send(peer, stream + off, total - off, 0);
			if (n < 0) {
				ASSERT_EQ(errno, EAGAIN);
				break;
			}
			off += n;
		}
		n = poll(pfd, 2, 3000);
		ASSERT_OK(n);
		if (!n) {
			kcm_diag("message %u: none to read and no room to write for 3 s; %zu of %zu bytes written",
				 seq, off, total);
			dump_tcp("receiver", tcp);
			dump_tcp("peer", peer);
			kcm_dump_proc("stall");
			KCM_FAIL("stream stalled under backpressure");
		}
		if (!(pfd[0].revents & POLLIN))
			continue;
		n = recv(kcm, buf, sizeof(buf), 0);
		if (n < 0)
			KCM_FAIL("recv of message %u after POLLIN: %s", seq,
				 kcm_errname(errno));
		if (n != BP_SIZE || kcm_msg_check(buf, n, &conn, &s) ||
		    s != seq)
			KCM_FAIL("message %u: got %zd bytes, seq %u", seq, n, s);
		seq++;
	}
	ASSERT_EQ(off, total);
	free(stream);
}

KCM_TEST(backpressure_tiny_buffers_v4, KCM_TIMEOUT(120),
	 KCM_LINUX_BUG("stalls: nothing to read, no room to write"))
{
	backpressure(AF_INET);
}

KCM_TEST(backpressure_tiny_buffers_v6, KCM_TIMEOUT(120),
	 KCM_LINUX_BUG("stalls: nothing to read, no room to write"))
{
	backpressure(AF_INET6);
}

/* ---- a partial header in a large skb ------------------------------------ */

#define PIN_MSG		64
#define PIN_BURST	1024	/* messages per write, then 3 header bytes */
#define PIN_ROUNDS	10

struct pin_writer {
	pthread_t th;
	int fd;
	const char *stream;
	size_t len;
};

static void *pin_write_fn(void *arg)
{
	struct pin_writer *w = arg;
	size_t off = 0, chunk = PIN_BURST * PIN_MSG + 3;

	while (off < w->len) {
		size_t n = w->len - off < chunk ? w->len - off : chunk;

		kcm_write_all(w->fd, w->stream + off, n);
		off += n;
		kcm_msleep(5);
	}
	return NULL;
}

/*
 * Each write ends 3 bytes into a message's header, and loopback puts a
 * write in one large skb: after the whole messages are taken, 3 bytes pin
 * all of that skb's memory, more than half of the TCP socket's receive
 * buffer, and TCP closes its window while the parser waits for the rest of
 * the header.  The stream must go on: the bytes are taken out.
 */
static void partial_header_pins(int family, int rcvbuf)
{
	size_t total = (size_t)PIN_ROUNDS * PIN_BURST * PIN_MSG;
	int kcm, peer, tcp, prog;
	struct pin_writer w;
	char *stream, got[PIN_MSG * 2];
	uint32_t i, conn, seq;

	stream = kcm_xmalloc(total);
	for (i = 0; i < total / PIN_MSG; i++)
		kcm_msg_build(stream + (size_t)i * PIN_MSG, PIN_MSG, 0, i);
	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	kcm_tcp_pair(family, &peer, &tcp);
	kcm_set_int_opt(tcp, SOL_SOCKET, SO_RCVBUF, rcvbuf);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));

	w = (struct pin_writer){ .fd = peer, .stream = stream, .len = total };
	ASSERT_EQ(pthread_create(&w.th, NULL, pin_write_fn, &w), 0);
	for (i = 0; i < total / PIN_MSG; i++) {
		ssize_t n = kcm_recv_timeout(kcm, got, sizeof(got), 0, 5000);

		if (n < 0) {
			kcm_diag("SO_RCVBUF %d, message %u of %zu: %s", rcvbuf,
				 i, total / PIN_MSG, kcm_errname(errno));
			dump_tcp("receiver", tcp);
			dump_tcp("peer", peer);
			kcm_dump_proc("stall");
			KCM_FAIL("stream stalled on a partial header");
		}
		if (n != PIN_MSG || kcm_msg_check(got, n, &conn, &seq) ||
		    seq != i)
			KCM_FAIL("message %u: %zd bytes, seq %u", i, n, seq);
	}
	pthread_join(w.th, NULL);
	close(kcm);
	close(peer);
	close(tcp);
	close(prog);
	free(stream);
}

/* Receive buffers (as set) around the size of a loopback skb. */
static const int pin_rcvbufs[] = { 24576, 32768, 49152, 65536 };

KCM_TEST(partial_header_pins_skb_v4, KCM_TIMEOUT(120),
	 KCM_LINUX_BUG("stalls after 512 messages"))
{
	unsigned int i;

	for (i = 0; i < sizeof(pin_rcvbufs) / sizeof(pin_rcvbufs[0]); i++)
		partial_header_pins(AF_INET, pin_rcvbufs[i]);
}

KCM_TEST(partial_header_pins_skb_v6, KCM_TIMEOUT(120),
	 KCM_LINUX_BUG("stalls after 512 messages"))
{
	unsigned int i;

	for (i = 0; i < sizeof(pin_rcvbufs) / sizeof(pin_rcvbufs[0]); i++)
		partial_header_pins(AF_INET6, pin_rcvbufs[i]);
}

/* ---- a time limit set before attach ------------------------------------- */

/*
 * SO_RCVTIMEO set on the TCP socket before SIOCKCMATTACH is the time limit
 * of message assembly: a message that stays partial is aborted with
 * ETIMEDOUT on the TCP socket.  before: the partial bytes arrive before the
 * attach (parsed by the attach's first pass), else after it.
 */
static void timeout_preset(int family, bool before)
{
	int kcm, peer, tcp, prog, revents;
	char msg[104];

	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	kcm_tcp_pair(family, &peer, &tcp);
	kcm_set_rcvtimeo(tcp, 200);
	kcm_msg_build(msg, sizeof(msg), 1, 1);
	if (before) {
		kcm_write_all(peer, msg, 20);
		kcm_msleep(100);
	}
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	if (!before)
		kcm_write_all(peer, msg, 20);

	/* Not POLLIN: the partial message is readable on the TCP socket. */
	revents = kcm_poll1(tcp, 0, 3000);
	if (!(revents & POLLERR)) {
		dump_tcp("receiver", tcp);
		kcm_dump_proc("no POLLERR 3 s after a partial message");
	}
	EXPECT_TRUE(revents & POLLERR);
	EXPECT_EQ(kcm_so_error(tcp), ETIMEDOUT);
}

KCM_TEST(timeout_preset_after_attach_v4)
{
	timeout_preset(AF_INET, false);
}

KCM_TEST(timeout_preset_before_attach_v4)
{
	timeout_preset(AF_INET, true);
}

KCM_TEST(timeout_preset_after_attach_v6)
{
	timeout_preset(AF_INET6, false);
}

/* ---- an attached socket that is disconnected and reused ----------------- */

/*
 * Something done by another thread after a delay, so that a poll() already
 * asleep must be woken by the socket's own callbacks.
 */
struct later {
	pthread_t th;
	int ms;
	int fd;			/* write: where; connect: the listener */
	const char *data;
	size_t len;
	int connected;		/* connect: the new socket */
};

static void *later_write_fn(void *arg)
{
	struct later *l = arg;

	kcm_msleep(l->ms);
	kcm_write_all(l->fd, l->data, l->len);
	return NULL;
}

static void *later_connect_fn(void *arg)
{
	struct later *l = arg;

	kcm_msleep(l->ms);
	l->connected = kcm_tcp_connect_to(l->fd);
	return NULL;
}

static void later_start(struct later *l, void *(*fn)(void *))
{
	ASSERT_EQ(pthread_create(&l->th, NULL, fn, l), 0);
}

/* Sleeps in poll() for POLLIN on fd while l writes or connects. */
static void poll_woken_by(int fd, struct later *l, void *(*fn)(void *))
{
	l->ms = 200;
	later_start(l, fn);
	ASSERT_TRUE(kcm_poll1(fd, POLLIN, 3000) & POLLIN);
	pthread_join(l->th, NULL);
}

/* connect(AF_UNSPEC): tcp's stream ends, the socket is closed. */
static void disconnect(int tcp)
{
	ASSERT_OK(connect(tcp, (struct sockaddr *)&(struct sockaddr){
				 .sa_family = AF_UNSPEC }, sizeof(struct sockaddr)));
}

/* Connects the disconnected tcp to a new peer, which it returns. */
static int reconnect(int tcp)
{
	struct sockaddr_storage ss;
	socklen_t alen = sizeof(ss);
	int lfd = kcm_tcp_listener(AF_INET, 1), peer;

	ASSERT_OK(getsockname(lfd, (struct sockaddr *)&ss, &alen));
	ASSERT_OK(connect(tcp, (struct sockaddr *)&ss, alen));
	ASSERT_OK(peer = accept(lfd, NULL, NULL));
	close(lfd);
	return peer;
}

/*
 * connect(AF_UNSPEC) ends the attached socket's stream.  Whatever the
 * application then does with that TCP socket is not KCM's: here it
 * listens and accepts.  The listener and its child must behave as plain
 * TCP sockets (accept woken, the child's data readable), before and after
 * the KCM socket is gone.
 */
static void disconnect_listen(int family)
{
	struct sockaddr_storage ss = { .ss_family = family };
	int kcm, peer, tcp, prog, client, child;
	struct later lc, lw;
	socklen_t alen;
	char msg[64], got[64];

	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	kcm_tcp_pair(family, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));

	/* One message through KCM first: the psock worked. */
	kcm_msg_build(msg, sizeof(msg), 0, 0);
	kcm_write_all(peer, msg, sizeof(msg));
	ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0, 5000), sizeof(msg));

	disconnect(tcp);
	alen = family == AF_INET ? sizeof(struct sockaddr_in) :
				   sizeof(struct sockaddr_in6);
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	ASSERT_OK(bind(tcp, (struct sockaddr *)&ss, alen));
	ASSERT_OK(listen(tcp, 4));

	/* accept() is woken by the listener's data-ready. */
	lc = (struct later){ .fd = tcp };
	poll_woken_by(tcp, &lc, later_connect_fn);
	client = lc.connected;
	ASSERT_OK(client);
	ASSERT_OK(child = accept(tcp, NULL, NULL));

	lw = (struct later){ .fd = client, .data = "first", .len = 5 };
	poll_woken_by(child, &lw, later_write_fn);
	ASSERT_EQ(recv(child, got, sizeof(got), MSG_DONTWAIT), 5);
	ASSERT_MEMEQ(got, "first", 5);
	/* Nothing of it reached KCM. */
	ASSERT_ERRNO(kcm_recv_timeout(kcm, got, sizeof(got), 0, 300), EAGAIN);

	/* The KCM side goes away entirely; the child carries on. */
	kcm_unattach(kcm, tcp);
	close(kcm);
	kcm_msleep(100);
	lw = (struct later){ .fd = client, .data = "second", .len = 6 };
	poll_woken_by(child, &lw, later_write_fn);
	ASSERT_EQ(recv(child, got, sizeof(got), MSG_DONTWAIT), 6);
	ASSERT_MEMEQ(got, "second", 6);
	close(client);
	close(child);
	close(tcp);
	close(peer);
}

KCM_TEST(disconnect_then_listen_v4,
	 KCM_LINUX_BUG("keeps its callbacks: accept() is never woken"))
{
	disconnect_listen(AF_INET);
}

KCM_TEST(disconnect_then_listen_v6,
	 KCM_LINUX_BUG("keeps its callbacks: accept() is never woken"))
{
	disconnect_listen(AF_INET6);
}

/*
 * A disconnected attached socket connected again to another peer: the new
 * stream is not glued to the old partial message, and does not reach KCM
 * at all: its bytes are the application's, on the TCP socket.
 */
KCM_TEST(disconnect_then_reconnect,
	 KCM_LINUX_BUG("delivers the new connection's bytes to KCM"))
{
	int kcm, peer, tcp, prog, peer2;
	char msg[104], got[128];

	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	kcm_msg_build(msg, sizeof(msg), 0, 0);
	kcm_write_all(peer, msg, 20);
	kcm_msleep(100);

	disconnect(tcp);
	peer2 = reconnect(tcp);

	kcm_msg_build(msg, sizeof(msg), 1, 7);
	kcm_write_all(peer2, msg, sizeof(msg));
	ASSERT_ERRNO(kcm_recv_timeout(kcm, got, sizeof(got), 0, 500), EAGAIN);
	ASSERT_TRUE(kcm_poll1(tcp, POLLIN, 3000) & POLLIN);
	kcm_read_all(tcp, got, sizeof(msg));
	ASSERT_MEMEQ(got, msg, sizeof(msg));
}

/*
 * Disconnected and connected again, the socket is the application's: the
 * mux still has the failed psock until it is unattached, so attaching the
 * socket again is refused (EALREADY) until then, and works after.
 */
KCM_TEST(reattach_after_reconnect,
	 KCM_LINUX_BUG("a message sent after unattach and attach again never reaches the peer"))
{
	int kcm, peer, tcp, prog, peer2;
	char msg[104], got[128];

	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	disconnect(tcp);
	/* Closed now: not attachable, as any closed socket. */
	ASSERT_ERRNO(kcm_attach(kcm, tcp, prog), EOPNOTSUPP);

	peer2 = reconnect(tcp);
	ASSERT_ERRNO(kcm_attach(kcm, tcp, prog), EALREADY);
	ASSERT_OK(kcm_unattach(kcm, tcp));
	ASSERT_OK(kcm_attach(kcm, tcp, prog));

	kcm_msg_build(msg, sizeof(msg), 2, 9);
	kcm_write_all(peer2, msg, sizeof(msg));
	ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0, 5000),
		  sizeof(msg));
	ASSERT_MEMEQ(got, msg, sizeof(msg));
	ASSERT_EQ(send(kcm, msg, sizeof(msg), 0), sizeof(msg));
	kcm_set_rcvtimeo(peer2, 5000);
	kcm_read_all(peer2, got, sizeof(msg));
	ASSERT_MEMEQ(got, msg, sizeof(msg));
}

struct kcm_sender {
	pthread_t th;
	int fd;
	const char *msg;
	size_t len;
	ssize_t ret;
	int err;
};

static void *kcm_sender_fn(void *arg)
{
	struct kcm_sender *s = arg;

	s->ret = send(s->fd, s->msg, s->len, 0);
	s->err = errno;
	return NULL;
}

/*
 * A socket attached while its connect() is still in progress: a message
 * sent meanwhile waits, and goes out once the connection is established
 * (no write-space wake-up comes for it: the state change must wake it).
 * The listener's accept queue is full, so the SYN is dropped until it is
 * retransmitted, about a second later.
 */
KCM_TEST(attach_while_connecting, KCM_TIMEOUT(60),
	 KCM_LINUX_BUG("a message sent while the socket connects never goes out"))
{
	int kcm, prog, lfd, first, c1, c2, child;
	struct sockaddr_storage ss;
	socklen_t alen = sizeof(ss);
	struct kcm_sender snd;
	struct tcp_info ti;
	socklen_t tlen = sizeof(ti);
	char msg[100], got[100];

	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	lfd = kcm_tcp_listener(AF_INET, 0);
	c1 = kcm_tcp_connect_to(lfd);		/* fills the accept queue */
	ASSERT_OK(getsockname(lfd, (struct sockaddr *)&ss, &alen));
	c2 = ASSERT_OK(socket(AF_INET, SOCK_STREAM, 0));
	kcm_set_nonblock(c2, 1);
	ASSERT_ERRNO(connect(c2, (struct sockaddr *)&ss, alen), EINPROGRESS);
	kcm_msleep(50);
	ASSERT_OK(getsockopt(c2, IPPROTO_TCP, TCP_INFO, &ti, &tlen));
	ASSERT_EQ(ti.tcpi_state, 2);		/* TCP_SYN_SENT */
	kcm_set_nonblock(c2, 0);
	ASSERT_OK(kcm_attach(kcm, c2, prog));

	kcm_msg_build(msg, sizeof(msg), 3, 1);
	snd = (struct kcm_sender){ .fd = kcm, .msg = msg, .len = sizeof(msg) };
	ASSERT_EQ(pthread_create(&snd.th, NULL, kcm_sender_fn, &snd), 0);
	kcm_msleep(200);
	/* Room in the queue: the retransmitted SYN gets through. */
	ASSERT_OK(first = accept(lfd, NULL, NULL));
	ASSERT_OK(child = accept(lfd, NULL, NULL));
	kcm_set_rcvtimeo(child, 10000);
	kcm_read_all(child, got, sizeof(got));
	ASSERT_MEMEQ(got, msg, sizeof(msg));
	pthread_join(snd.th, NULL);
	if (snd.ret < 0)
		KCM_FAIL("send: %s", kcm_errname(snd.err));
	ASSERT_EQ(snd.ret, sizeof(msg));
	ASSERT_EQ(kcm_so_error(c2), 0);
	close(first);
	close(c1);
}

/*
 * A connection refused while attached: the TCP socket shows TCP's own
 * error, ECONNREFUSED, not one of KCM's.  (The port is a listener's that
 * closed after the SYN was dropped: the retransmission meets a reset.)
 */
KCM_TEST(attach_while_connecting_refused, KCM_TIMEOUT(60),
	 KCM_LINUX_BUG("posts EPIPE over TCP's ECONNREFUSED"))
{
	int kcm, prog, lfd, c1, c2;
	struct sockaddr_storage ss;
	socklen_t alen = sizeof(ss);

	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	lfd = kcm_tcp_listener(AF_INET, 0);
	c1 = kcm_tcp_connect_to(lfd);
	ASSERT_OK(getsockname(lfd, (struct sockaddr *)&ss, &alen));
	c2 = ASSERT_OK(socket(AF_INET, SOCK_STREAM, 0));
	kcm_set_nonblock(c2, 1);
	ASSERT_ERRNO(connect(c2, (struct sockaddr *)&ss, alen), EINPROGRESS);
	kcm_msleep(50);
	ASSERT_OK(kcm_attach(kcm, c2, prog));
	close(lfd);
	close(c1);
	ASSERT_TRUE(kcm_poll1(c2, 0, 10000) & POLLERR);
	ASSERT_EQ(kcm_so_error(c2), ECONNREFUSED);
}

/*
 * Unattached while a message waits for room on it (its peer reads
 * nothing): the message goes elsewhere or nowhere, but the TCP socket,
 * the application's again once SIOCKCMUNATTACH returns, gets no error
 * from KCM, then or later.
 */
KCM_TEST(unattach_while_sending_posts_nothing,
	 KCM_LINUX_BUG("posts EPIPE on the TCP socket after unattach returned"))
{
	int kcm, peer, tcp, prog, sent = 0;
	char msg[4096];

	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	kcm_set_int_opt(tcp, SOL_SOCKET, SO_SNDBUF, 16384);
	kcm_set_int_opt(peer, SOL_SOCKET, SO_RCVBUF, 16384);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	kcm_msg_build(msg, sizeof(msg), 4, 0);
	while (send(kcm, msg, sizeof(msg), MSG_DONTWAIT) == sizeof(msg))
		if (++sent > 1000)
			KCM_FAIL("sends never pushed back");
	ASSERT_EQ(errno, EAGAIN);
	ASSERT_OK(kcm_unattach(kcm, tcp));
	kcm_msleep(300);
	ASSERT_EQ(kcm_poll1(tcp, 0, 0) & POLLERR, 0);
	ASSERT_EQ(kcm_so_error(tcp), 0);
	close(kcm);
	kcm_msleep(100);
	ASSERT_EQ(kcm_so_error(tcp), 0);
}

/*
 * A ULP installed on an attached socket (kTLS, with setsockopt TCP_ULP)
 * reads and writes the stream from then on: KCM's psock fails with EPROTO
 * and neither parses nor sends any more.
 */
KCM_TEST(ulp_after_attach_fails_psock,
	 KCM_LINUX_BUG("goes on parsing under the ULP: no error posted"))
{
	int kcm, peer, tcp, prog;
	char msg[100], got[128];

	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	if (setsockopt(tcp, IPPROTO_TCP, TCP_ULP, "tls", 3)) {
		if (errno == ENOENT)
			kcm_skip("this kernel has no tls ULP");
		KCM_FAIL("TCP_ULP tls: %s", kcm_errname(errno));
	}
	kcm_msg_build(msg, sizeof(msg), 0, 0);
	kcm_write_all(peer, msg, sizeof(msg));
	ASSERT_TRUE(kcm_poll1(tcp, 0, 3000) & POLLERR);
	ASSERT_EQ(kcm_so_error(tcp), EPROTO);
	ASSERT_ERRNO(kcm_recv_timeout(kcm, got, sizeof(got), 0, 300), EAGAIN);
}

/* ---- urgent data --------------------------------------------------------- */

/*
 * A message protocol over KCM reads the stream as it is: a message sent
 * with MSG_OOB (its last byte urgent) is a message like the others, and the
 * stream goes on after it.
 */
static void urgent_in_stream(int family)
{
	int kcm, peer, tcp, prog;
	char msg[100], got[200];
	uint32_t conn, seq, i;

	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	kcm_tcp_pair(family, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));

	for (i = 0; i < 30; i++) {
		kcm_msg_build(msg, sizeof(msg), 0, i);
		if (i % 10 == 5)
			ASSERT_EQ(send(peer, msg, sizeof(msg), MSG_OOB),
				  sizeof(msg));
		else
			kcm_write_all(peer, msg, sizeof(msg));
	}
	for (i = 0; i < 30; i++) {
		ssize_t n = kcm_recv_timeout(kcm, got, sizeof(got), 0, 5000);

		if (n < 0)
			KCM_FAIL("message %u: %s, SO_ERROR %d", i,
				 kcm_errname(errno), kcm_so_error(tcp));
		ASSERT_EQ(n, sizeof(msg));
		ASSERT_EQ(kcm_msg_check(got, n, &conn, &seq), 0);
		ASSERT_EQ(seq, i);
	}
	ASSERT_EQ(kcm_so_error(tcp), 0);
}

KCM_TEST(urgent_byte_in_message_v4,
	 KCM_LINUX_BUG("mis-frames the stream after the urgent byte"))
{
	urgent_in_stream(AF_INET);
}

KCM_TEST(urgent_byte_in_message_v6,
	 KCM_LINUX_BUG("mis-frames the stream after the urgent byte"))
{
	urgent_in_stream(AF_INET6);
}

/*
 * The urgent byte is the first byte of a message that waits for the rest
 * of its bytes in TCP, and the rest comes with an urgent pointer of its
 * own: TCP must not step over the first urgent byte (it would, to keep the
 * stream clean of it, if the socket did not read urgent bytes inline), or
 * the message loses its first byte and the framing is lost.
 */
KCM_TEST(urgent_byte_first_of_message,
	 KCM_LINUX_BUG("mis-frames the stream at the urgent byte"))
{
	int kcm, peer, tcp, prog;
	char msg[100], got[200];
	uint32_t i;

	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	for (i = 0; i < 5; i++) {
		kcm_msg_build(msg, sizeof(msg), 0, i);
		ASSERT_EQ(send(peer, msg, 1, MSG_OOB), 1);
		kcm_msleep(50);
		ASSERT_EQ(send(peer, msg + 1, sizeof(msg) - 1, MSG_OOB),
			  sizeof(msg) - 1);
		if (kcm_recv_timeout(kcm, got, sizeof(got), 0, 5000) < 0)
			KCM_FAIL("message %u: %s, SO_ERROR %d", i,
				 kcm_errname(errno), kcm_so_error(tcp));
		ASSERT_MEMEQ(got, msg, sizeof(msg));
	}
	/* Unattached, the socket reads urgent data as it did before. */
	ASSERT_OK(kcm_unattach(kcm, tcp));
	ASSERT_EQ(kcm_get_int_opt(tcp, SOL_SOCKET, SO_OOBINLINE), 0);
}

/* ---- the peer's FIN in the segment of the last message ------------------ */

/*
 * The peer corks, writes messages and shuts down: TCP puts the FIN in the
 * segment of the last message, and the pass that takes that message takes
 * the FIN with it (TCP counts it as a byte consumed).  Every message
 * arrives; the socket shows the peer gone (EPIPE), nothing else.  before:
 * all of it arrives before the attach.
 */
static void fin_with_last_message(int family, bool before)
{
	int kcm, peer, tcp, prog, one = 1, zero = 0;
	char msg[3][100], got[200];
	uint32_t conn, seq, i;

	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	kcm_tcp_pair(family, &peer, &tcp);
	if (!before)
		ASSERT_OK(kcm_attach(kcm, tcp, prog));
	ASSERT_OK(setsockopt(peer, IPPROTO_TCP, TCP_CORK, &one, sizeof(one)));
	for (i = 0; i < 3; i++) {
		kcm_msg_build(msg[i], sizeof(msg[i]), 0, i);
		kcm_write_all(peer, msg[i], sizeof(msg[i]));
	}
	ASSERT_OK(shutdown(peer, SHUT_WR));
	ASSERT_OK(setsockopt(peer, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero)));
	if (before) {
		kcm_msleep(100);
		ASSERT_OK(kcm_attach(kcm, tcp, prog));
	}
	for (i = 0; i < 3; i++) {
		ssize_t n = kcm_recv_timeout(kcm, got, sizeof(got), 0, 5000);

		if (n < 0)
			KCM_FAIL("message %u: %s, SO_ERROR %d", i,
				 kcm_errname(errno), kcm_so_error(tcp));
		ASSERT_EQ(n, sizeof(msg[i]));
		ASSERT_EQ(kcm_msg_check(got, n, &conn, &seq), 0);
		ASSERT_EQ(seq, i);
	}
	EXPECT_EQ(kcm_so_error(tcp), EPIPE);
}

KCM_TEST(fin_with_last_message_v4)
{
	fin_with_last_message(AF_INET, false);
}

KCM_TEST(fin_with_last_message_v6)
{
	fin_with_last_message(AF_INET6, false);
}

KCM_TEST(fin_with_last_message_before_attach,
	 KCM_LINUX_BUG("a socket attached after its peer closed shows no EPIPE"))
{
	fin_with_last_message(AF_INET, true);
}
