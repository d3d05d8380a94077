// SPDX-License-Identifier: GPL-2.0
/*
 * AF_KCM transmit path when an attached TCP connection dies: the mux must
 * stop using it, resend what it could not finish on the other connections,
 * and never put a duplicated or broken message on a surviving stream.
 *
 * A connection is killed from the far end: the peer sets SO_LINGER to 0
 * and closes, so the attached TCP socket receives a reset.
 *
 * Framing: a 4-byte big-endian payload length, then the payload, which
 * starts with the sender id, the sequence number and a checksum of the
 * rest.  Random sizes come from a printed seed; KCM_SEED replays it.
 *
 * Measured on Linux's kcm.ko (6.1 and 6.12), lane linux:
 *  - the killed TCP socket shows POLLERR (and POLLHUP); SO_ERROR reads
 *    EPIPE, which KCM posts on it;
 *  - sends on the KCM socket keep succeeding; messages that were only
 *    partly written to the dead socket are sent again, whole, on another;
 *  - SIOCKCMUNATTACH of the dead socket succeeds;
 *  - with every connection dead, sends are queued and go out whole when a
 *    new TCP socket is attached;
 *  - the send that runs into the dead socket raises SIGPIPE in the sending
 *    thread, even with MSG_NOSIGNAL (see no_sigpipe_on_dead_psock).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "kcm_test.h"

/* ---- local helpers ------------------------------------------------------ */

#define HDR	16	/* payload: sender, seq, 8-byte checksum, then data */

static void be32_put(unsigned char *p, uint32_t v)
{
	uint32_t be = htonl(v);

	memcpy(p, &be, 4);
}

static uint32_t be32_get(const unsigned char *p)
{
	uint32_t be;

	memcpy(&be, p, 4);
	return ntohl(be);
}

/* Frame of message (@sender, @seq) with @plen (>= HDR) payload bytes. */
static size_t msg_make(unsigned char *out, size_t plen, uint32_t sender,
		       uint32_t seq, uint64_t seed)
{
	uint64_t rng = seed ^ ((uint64_t)sender << 40) ^ ((uint64_t)seq << 8);
	unsigned char *p = out + 4;
	uint64_t sum;
	size_t i;

	be32_put(out, (uint32_t)plen);
	be32_put(p, sender);
	be32_put(p + 4, seq);
	for (i = HDR; i < plen; i++)
		p[i] = (unsigned char)kcm_rand(&rng);
	sum = kcm_csum(p + HDR, plen - HDR);
	memcpy(p + 8, &sum, 8);
	return plen + 4;
}

/* Everything read from one peer. */
struct stream {
	int fd;
	unsigned char *buf;
	size_t len, cap;
	int dead;	/* killed: no longer read */
};

static void stream_pull(struct stream *s)
{
	for (;;) {
		ssize_t n;

		if (s->cap - s->len < 65536) {
			s->cap = s->cap ? 2 * s->cap : 1 << 20;
			s->buf = realloc(s->buf, s->cap);
			if (!s->buf)
				KCM_FAIL("out of memory");
		}
		n = recv(s->fd, s->buf + s->len, s->cap - s->len, MSG_DONTWAIT);
		if (n > 0) {
			s->len += n;
			continue;
		}
		return;
	}
}

/* Result of parsing all streams against the senders' record. */
struct tally {
	int nsend;
	uint32_t count[4];
	unsigned char *seen[4];	/* [sender][seq]: times received */
	int *where[4];		/* [sender][seq]: stream it came on */
	int bad, dup, disorder;
};

static void tally_init(struct tally *t, int nsend, uint32_t count)
{
	int i;

	memset(t, 0, sizeof(*t));
	t->nsend = nsend;
	for (i = 0; i < nsend; i++) {
		t->count[i] = count;
		t->seen[i] = calloc(count, 1);
		t->where[i] = calloc(count, sizeof(int));
		if (!t->seen[i] || !t->where[i])
			KCM_FAIL("out of memory");
	}
}

/* Parse stream @idx; returns the number of whole frames, *rest the bytes of
 * an unfinished one at the end.
 */
static size_t tally_stream(struct tally *t, const struct stream *s, int idx,
			   size_t *rest)
{
	uint32_t last[4] = { UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX };
	size_t off = 0, n = 0;

	while (s->len - off >= 4) {
		size_t plen = be32_get(s->buf + off);
		const unsigned char *p = s->buf + off + 4;
		uint32_t snd, seq;
		uint64_t sum;

		if (s->len - off - 4 < plen)
			break;
		snd = plen >= HDR ? be32_get(p) : UINT32_MAX;
		seq = plen >= HDR ? be32_get(p + 4) : UINT32_MAX;
		if (plen >= HDR)
			memcpy(&sum, p + 8, 8);
		if (plen < HDR || (int)snd >= t->nsend || seq >= t->count[snd] ||
		    sum != kcm_csum(p + HDR, plen - HDR)) {
			if (t->bad++ < 5)
				kcm_diag("stream %d: broken frame at offset %zu (length %zu)",
					 idx, off, plen);
			/* A broken header breaks everything after it too. */
			break;
		}
		if (t->seen[snd][seq]++ && t->dup++ < 5)
			kcm_diag("sender %u seq %u received again on stream %d (first on %d)",
				 snd, seq, idx, t->where[snd][seq]);
		t->where[snd][seq] = idx;
		if (last[snd] != UINT32_MAX && seq <= last[snd] &&
		    t->disorder++ < 5)
			kcm_diag("stream %d: sender %u seq %u after %u", idx, snd,
				 seq, last[snd]);
		last[snd] = seq;
		off += 4 + plen;
		n++;
	}
	*rest = s->len - off;
	return n;
}

static atomic_int sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	atomic_fetch_add(&sigpipes, 1);
}

static void count_sigpipe(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigpipe;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	ASSERT_OK(sigaction(SIGPIPE, &sa, NULL));
	atomic_store(&sigpipes, 0);
}

/* Reset the connection from the peer's side. */
static void kill_peer(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	ASSERT_OK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	ASSERT_OK(close(fd));
}

/*
 * TX-Msgs of each psock of the calling thread's network namespace (messages
 * a psock handed whole to its TCP socket), in the order /proc/net/kcm lists
 * them: by index, which for the one mux of a fresh namespace is the order
 * of attach.  Returns the number of psocks.
 */
static int psock_tx_msgs(unsigned long long *tx, int max)
{
	char *text = kcm_read_file("/proc/thread-self/net/kcm");
	char *line, *save = NULL;
	unsigned int index, prev = 0;
	int n = 0;

	ASSERT_TRUE(text);
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		unsigned long long rx_msgs, rx_bytes, tx_msgs;

		if (sscanf(line, " psock-%u %llu %llu %llu", &index, &rx_msgs,
			   &rx_bytes, &tx_msgs) != 4)
			continue;
		if (n > 0 && index <= prev)
			KCM_FAIL("/proc/net/kcm: psock-%u listed after psock-%u",
				 index, prev);
		prev = index;
		if (n < max)
			tx[n] = tx_msgs;
		n++;
	}
	free(text);
	return n;
}

/* ---- failover under a steady stream ----------------------------------- */

enum { F_SEND = 2, F_CONN = 3, F_PER = 700 };

struct fo {
	int kcm[F_SEND];
	int tcp[F_CONN];
	struct stream st[F_CONN];
	uint64_t seed;
	atomic_uint sent_total;		/* messages sent, all senders */
	atomic_int kill_req;		/* main -> reader: kill stream 0 */
	atomic_int killed;		/* reader -> main: done */
	atomic_int err_seen;		/* main saw POLLERR on tcp[0] */
	atomic_int senders_done;
	/* main -> reader: the frames each psock handed whole to TCP (its
	 * TX-Msgs once settled), published before want_set: the reader stops
	 * once the survivors' peers hold as many, plus a quiet tail.
	 */
	unsigned long long want[F_CONN];
	atomic_int want_set;
	unsigned char *after_err[F_SEND];	/* send began after err_seen */
	int send_err[F_SEND];
	uint32_t done[F_SEND];
};

struct fo_sender {
	struct fo *fo;
	int id;
};

static void *fo_sender_fn(void *arg)
{
	struct fo_sender *fs = arg;
	struct fo *fo = fs->fo;
	uint64_t rng = fo->seed * 7 + fs->id;
	unsigned char *buf = malloc(8192 + 4);
	uint32_t seq;

	if (!buf) {
		fo->send_err[fs->id] = ENOMEM;
		return NULL;
	}
	for (seq = 0; seq < F_PER; seq++) {
		size_t plen = HDR + kcm_rand(&rng) % (8192 - HDR);
		size_t len = msg_make(buf, plen, fs->id, seq, fo->seed);
		ssize_t n;

		fo->after_err[fs->id][seq] = atomic_load(&fo->err_seen);
		do {
			n = send(fo->kcm[fs->id], buf, len, 0);
		} while (n < 0 && errno == EINTR);
		if (n != (ssize_t)len) {
			fo->send_err[fs->id] = n < 0 ? errno : -1;
			break;
		}
		fo->done[fs->id] = seq + 1;
		atomic_fetch_add(&fo->sent_total, 1);
		/* A steady stream rather than one burst. */
		if (seq % 2)
			kcm_msleep(1);
	}
	free(buf);
	return NULL;
}

/* Whole frames at the start of @s (a length prefix, then the payload). */
static size_t stream_frames(const struct stream *s)
{
	size_t off = 0, n = 0;

	while (s->len - off >= 4 && s->len - off - 4 >= be32_get(s->buf + off)) {
		off += 4 + be32_get(s->buf + off);
		n++;
	}
	return n;
}

/* The survivors' peers hold every frame their psocks handed to TCP. */
static int fo_survivors_complete(const struct fo *fo)
{
	int i;

	if (!atomic_load(&fo->want_set))
		return 0;
	for (i = 1; i < F_CONN; i++)
		if (stream_frames(&fo->st[i]) < fo->want[i])
			return 0;
	return 1;
}

/*
 * Reads the three streams until the survivors hold what their psocks
 * wrote, then 200 ms more without a byte (a frame beyond it is a defect
 * the caller's count shows); or, once the senders are done, until 10 s
 * pass without a byte (a stall, which the caller's counts then show).
 */
static void *fo_reader_fn(void *arg)
{
	struct fo *fo = arg;
	long long idle_since = -1;

	for (;;) {
		struct pollfd pfd[F_CONN];
		int i, n = 0, got = 0;
		long long quiet;

		if (atomic_load(&fo->kill_req) && !fo->st[0].dead) {
			/* Reset, not reading first: what sits in the receive
			 * queue is lost with the connection, so that the
			 * accounting below has lost messages to account for.
			 */
			kill_peer(fo->st[0].fd);
			fo->st[0].dead = 1;
			atomic_store(&fo->killed, 1);
		}
		for (i = 0; i < F_CONN; i++) {
			if (fo->st[i].dead)
				continue;
			pfd[n].fd = fo->st[i].fd;
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
			n++;
		}
		if (poll(pfd, n, 20) > 0) {
			for (i = 0; i < F_CONN; i++) {
				size_t before = fo->st[i].len;

				if (fo->st[i].dead)
					continue;
				stream_pull(&fo->st[i]);
				got |= fo->st[i].len != before;
			}
		}
		if (!atomic_load(&fo->senders_done) || got) {
			idle_since = -1;
			continue;
		}
		if (idle_since < 0)
			idle_since = kcm_now_ms();
		quiet = fo_survivors_complete(fo) ? 200 : 10000;
		if (kcm_now_ms() - idle_since > quiet)
			return NULL;
	}
}

/*
 * Two senders (two KCM sockets of one mux) send a steady stream over three
 * connections; a third of the way in, connection 0 is reset.  Afterwards:
 *  - the senders never failed;
 *  - the dead TCP socket shows POLLERR;
 *  - each stream holds only intact frames (the dead one may end in a
 *    partial frame), one sender's messages in order along each stream;
 *  - no message arrived twice.
 * And every message is accounted for, as kcm_link's reset_mid_stream does:
 * a message handed whole to a TCP socket is counted in its psock's TX-Msgs
 * (/proc/net/kcm); one not wholly handed to connection 0 when it failed is
 * sent again, whole, on another (kcm.rst, "Transmitting").  So:
 *  - the psocks' TX-Msgs add up to the messages sent (each handed whole to
 *    TCP once), and the survivors' peers received exactly what their
 *    psocks wrote;
 *  - what connection 0's peer read is a prefix of what its psock wrote;
 *    the messages missing are exactly the rest, the ones on their way on
 *    connection 0 when it was reset: as many as its TX-Msgs minus the
 *    frames its peer read, each sent before the application saw POLLERR,
 *    and each later, in its sender's order, than that sender's last
 *    message read on connection 0;
 *  - a frame cut at the end of stream 0 is either of a message sent again
 *    elsewhere (then it was the last thing connection 0 took, and nothing
 *    is missing) or of the first message missing.
 * The POLLERR check is a case of its own: on Linux's kcm.ko the reset's
 * error is sometimes gone by the time the application polls (2 runs in 6
 * on 6.1: revents POLLIN|POLLHUP only), while the rest holds there too.
 */
static void reset_one_of_three(int want_pollerr)
{
	static struct fo fo;
	struct fo_sender fs[F_SEND];
	pthread_t sth[F_SEND], rth;
	struct tally t;
	uint32_t lost = 0, lost_after = 0, lost_early = 0, s, q;
	unsigned long long tx[F_CONN], tx_sum;
	int64_t last0[F_SEND];
	size_t frames[F_CONN], rest0 = 0;
	long long t0;
	int i, rev, prog;

	/* A namespace of its own: its /proc/net/kcm shows this mux only. */
	kcm_new_netns();
	prog = kcm_prog_len32();
	memset(&fo, 0, sizeof(fo));
	count_sigpipe();
	fo.seed = kcm_seed();
	fo.kcm[0] = kcm_socket(SOCK_DGRAM);
	fo.kcm[1] = ASSERT_OK(kcm_clone(fo.kcm[0]));
	for (i = 0; i < F_CONN; i++) {
		kcm_tcp_pair(AF_INET, &fo.tcp[i], &fo.st[i].fd);
		ASSERT_OK(kcm_attach(fo.kcm[0], fo.tcp[i], prog));
	}
	for (i = 0; i < F_SEND; i++) {
		fo.after_err[i] = kcm_xmalloc(F_PER);
		kcm_set_sndtimeo(fo.kcm[i], 20000);
		fs[i].fo = &fo;
		fs[i].id = i;
	}

	ASSERT_EQ(pthread_create(&rth, NULL, fo_reader_fn, &fo), 0);
	for (i = 0; i < F_SEND; i++)
		ASSERT_EQ(pthread_create(&sth[i], NULL, fo_sender_fn, &fs[i]), 0);

	t0 = kcm_now_ms();
	while (atomic_load(&fo.sent_total) < F_SEND * F_PER / 3) {
		if (kcm_now_ms() - t0 > 30000)
			KCM_FAIL("senders stuck at %u messages",
				 atomic_load(&fo.sent_total));
		kcm_msleep(1);
	}
	atomic_store(&fo.kill_req, 1);
	while (!atomic_load(&fo.killed))
		kcm_msleep(1);
	kcm_diag("connection 0 reset after %u messages",
		 atomic_load(&fo.sent_total));

	rev = kcm_poll1(fo.tcp[0], POLLIN, 3000);
	if (want_pollerr)
		EXPECT_TRUE(rev & POLLERR);
	atomic_store(&fo.err_seen, 1);
	kcm_diag("attached side of connection 0: revents %#x after %u messages",
		 rev, atomic_load(&fo.sent_total));

	for (i = 0; i < F_SEND; i++) {
		ASSERT_EQ(pthread_join(sth[i], NULL), 0);
		if (fo.send_err[i])
			KCM_FAIL("sender %d: send of message %u failed: %s", i,
				 fo.done[i], strerror(fo.send_err[i]));
	}
	atomic_store(&fo.senders_done, 1);

	/*
	 * What each psock handed whole to TCP, read before the dead one is
	 * unattached (its row goes with it).  The senders are done, but the
	 * last messages may still be on their way into TCP: wait for the
	 * counts to settle, then tell the reader what to wait for.
	 */
	t0 = kcm_now_ms();
	do {
		ASSERT_EQ(psock_tx_msgs(tx, F_CONN), F_CONN);
		tx_sum = tx[0] + tx[1] + tx[2];
		if (tx_sum >= F_SEND * F_PER)
			break;
		kcm_msleep(20);
	} while (kcm_now_ms() - t0 < 5000);
	kcm_diag("TX-Msgs per psock: %llu (reset) %llu %llu", tx[0], tx[1],
		 tx[2]);
	for (i = 0; i < F_CONN; i++)
		fo.want[i] = tx[i];
	atomic_store(&fo.want_set, 1);
	ASSERT_EQ(pthread_join(rth, NULL), 0);
	kcm_diag("SIGPIPE raised %d times", atomic_load(&sigpipes));
	EXPECT_EQ(tx_sum, F_SEND * F_PER);

	/* The application's part: take the dead socket out. */
	EXPECT_EQ(kcm_unattach(fo.kcm[0], fo.tcp[0]), 0);

	tally_init(&t, F_SEND, F_PER);
	for (i = 0; i < F_CONN; i++) {
		size_t rest;

		frames[i] = tally_stream(&t, &fo.st[i], i, &rest);
		if (i > 0)
			EXPECT_EQ(rest, 0);
		else
			rest0 = rest;
	}
	kcm_diag("frames per stream: %zu (reset, then %zu bytes of a cut one) %zu %zu",
		 frames[0], rest0, frames[1], frames[2]);
	EXPECT_EQ(t.bad, 0);
	EXPECT_EQ(t.dup, 0);
	EXPECT_EQ(t.disorder, 0);
	/* The survivors' peers got all their psocks wrote. */
	EXPECT_EQ(frames[1], tx[1]);
	EXPECT_EQ(frames[2], tx[2]);
	ASSERT_LE(frames[0], tx[0]);

	/* Each sender's last message read on connection 0. */
	for (s = 0; s < F_SEND; s++) {
		last0[s] = -1;
		for (q = 0; q < F_PER; q++)
			if (t.seen[s][q] && t.where[s][q] == 0)
				last0[s] = q;
	}
	for (s = 0; s < F_SEND; s++) {
		for (q = 0; q < F_PER; q++) {
			if (t.seen[s][q])
				continue;
			lost++;
			if (fo.after_err[s][q] && lost_after++ < 5)
				kcm_diag("sender %u seq %u, sent after POLLERR, never arrived",
					 s, q);
			if ((int64_t)q <= last0[s] && lost_early++ < 5)
				kcm_diag("sender %u seq %u never arrived, but its seq %lld did on connection 0",
					 s, q, (long long)last0[s]);
		}
	}
	kcm_diag("%u messages lost with connection 0", lost);
	EXPECT_EQ(lost, tx[0] - frames[0]);
	EXPECT_EQ(lost_after, 0);
	EXPECT_EQ(lost_early, 0);

	/* The frame cut at the end of stream 0, if its ids arrived. */
	if (rest0 >= 4 + 8) {
		const unsigned char *p = fo.st[0].buf + fo.st[0].len - rest0;

		s = be32_get(p + 4);
		q = be32_get(p + 8);
		kcm_diag("stream 0 was cut %zu bytes into sender %u seq %u",
			 rest0, s, q);
		ASSERT_LT(s, F_SEND);
		ASSERT_LT(q, F_PER);
		EXPECT_GT((int64_t)q, last0[s]);
		if (t.seen[s][q])
			EXPECT_EQ(tx[0], frames[0]);
		else
			EXPECT_GT(tx[0], frames[0]);
	}
	/* The survivors carried the traffic after the reset. */
	EXPECT_GT(frames[1] + frames[2], 0);
	close(prog);
	for (i = 0; i < F_SEND; i++) {
		close(fo.kcm[i]);
		free(fo.after_err[i]);
	}
	for (i = 0; i < F_CONN; i++) {
		close(fo.tcp[i]);
		close(fo.st[i].fd);
		free(fo.st[i].buf);
	}
}

KCM_TEST(reset_one_of_three, KCM_TIMEOUT(90))
{
	reset_one_of_three(0);
}

/*
 * On Linux the error is gone in about one round in ten (6.1 and 6.12,
 * measured): the case resets a connection under traffic again and again,
 * which shows it in most runs (a race: a run where it did not show is
 * reported so, not as a pass or a failure).
 */
#define F_POLLERR_ROUNDS	12

KCM_TEST(reset_one_of_three_pollerr, KCM_TIMEOUT(400),
	 KCM_LINUX_RACE("the error of a connection reset under traffic can be gone before the application polls: no POLLERR"))
{
	int round;

	for (round = 0; round < F_POLLERR_ROUNDS; round++) {
		reset_one_of_three(1);
		if (kcm_case_failed) {
			kcm_diag("round %d of %d failed", round + 1,
				 F_POLLERR_ROUNDS);
			break;
		}
	}
}

/*
 * The send that finds an attached TCP socket reset must not raise SIGPIPE
 * in the application: the KCM send itself succeeded and the message went
 * out on another connection.  Linux passes no MSG_NOSIGNAL down to TCP, so
 * the sending thread gets SIGPIPE (killing a program that has not blocked
 * it), even when it gave MSG_NOSIGNAL to the KCM socket.
 */
KCM_TEST(no_sigpipe_on_dead_psock,
	 KCM_LINUX_BUG("SIGPIPE in the sender when a psock's TCP socket was reset"))
{
	unsigned char buf[1004], got[1004];
	int kcm, a[2], b[2], i, prog = kcm_prog_len32(), raised;
	size_t len;

	count_sigpipe();
	kcm = kcm_socket(SOCK_DGRAM);
	for (i = 0; i < 2; i++) {
		kcm_tcp_pair(AF_INET, &a[i], &b[i]);
		ASSERT_OK(kcm_attach(kcm, a[i], prog));
	}
	kcm_set_rcvtimeo(b[1], 5000);
	kill_peer(b[0]);
	ASSERT_TRUE(kcm_poll1(a[0], 0, 3000) & POLLERR);

	for (i = 0; i < 20; i++) {
		len = msg_make(buf, sizeof(buf) - 4, 0, i, 1);
		ASSERT_EQ(send(kcm, buf, len, i % 2 ? MSG_NOSIGNAL : 0),
			  (ssize_t)len);
		kcm_read_all(b[1], got, len);
		ASSERT_MEMEQ(got, buf, len);
	}
	raised = atomic_load(&sigpipes);
	EXPECT_EQ(raised, 0);
}

/*
 * Every connection dies while messages are queued.  Sends keep being
 * accepted (queued, Linux); once the dead sockets are unattached and a new
 * TCP socket attached, what was sent after the failures arrives whole and
 * in order, and no message arrives twice.
 */
KCM_TEST(all_dead_then_new_connection, KCM_TIMEOUT(60))
{
	enum { PRE = 40, POST = 20 };
	unsigned char buf[4 + HDR + (PRE + POST) * 70];
	struct stream pre[2], post;
	struct tally t;
	int kcm, a[2], b[2], c, d, i, prog = kcm_prog_len32();
	size_t len, rest, n;
	uint64_t seed = kcm_seed();

	count_sigpipe();
	kcm = kcm_socket(SOCK_DGRAM);
	kcm_set_sndtimeo(kcm, 5000);
	memset(pre, 0, sizeof(pre));
	memset(&post, 0, sizeof(post));
	for (i = 0; i < 2; i++) {
		kcm_tcp_pair(AF_INET, &a[i], &b[i]);
		ASSERT_OK(kcm_attach(kcm, a[i], prog));
		pre[i].fd = b[i];
	}
	for (i = 0; i < PRE; i++) {
		len = msg_make(buf, HDR + i * 70, 0, i, seed);
		ASSERT_EQ(send(kcm, buf, len, 0), (ssize_t)len);
	}
	kcm_msleep(100);
	for (i = 0; i < 2; i++) {
		stream_pull(&pre[i]);
		kill_peer(b[i]);
	}
	for (i = 0; i < 2; i++)
		ASSERT_TRUE(kcm_poll1(a[i], 0, 3000) & POLLERR);

	for (i = PRE; i < PRE + POST; i++) {
		len = msg_make(buf, HDR + i * 70, 0, i, seed);
		ASSERT_EQ(send(kcm, buf, len, 0), (ssize_t)len);
	}
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(kcm_unattach(kcm, a[i]), 0);
		close(a[i]);
	}
	kcm_tcp_pair(AF_INET, &c, &d);
	post.fd = d;
	ASSERT_OK(kcm_attach(kcm, c, prog));
	{
		long long end = kcm_now_ms() + 3000;

		while (kcm_now_ms() < end) {
			stream_pull(&post);
			kcm_msleep(20);
		}
	}

	tally_init(&t, 1, PRE + POST);
	for (i = 0; i < 2; i++) {
		n = tally_stream(&t, &pre[i], i, &rest);
		EXPECT_EQ(rest, 0);
		KCM_LOG("before the failure, connection %d carried %zu", i, n);
	}
	n = tally_stream(&t, &post, 2, &rest);
	EXPECT_EQ(rest, 0);
	EXPECT_EQ(t.bad, 0);
	EXPECT_EQ(t.dup, 0);
	EXPECT_EQ(t.disorder, 0);
	for (i = 0; i < PRE + POST; i++)
		if (i >= PRE && !t.seen[0][i])
			KCM_FAIL("message %d, sent after the failures, missing", i);
	kcm_diag("new connection carried %zu messages", n);
	ASSERT_GE(n, POST);
}

/*
 * A connection reset while the mux is idle: the next messages all go out,
 * whole, on the other connection, and the dead TCP socket reports POLLERR
 * with the error KCM posts on it (EPIPE on Linux, after the reset's own
 * error has been read or replaced).
 */
KCM_TEST(reset_idle_connection)
{
	unsigned char buf[2004], got[2004];
	int kcm, a[2], b[2], i, prog = kcm_prog_len32(), err;
	size_t len;

	count_sigpipe();
	kcm = kcm_socket(SOCK_DGRAM);
	for (i = 0; i < 2; i++) {
		kcm_tcp_pair(AF_INET, &a[i], &b[i]);
		ASSERT_OK(kcm_attach(kcm, a[i], prog));
	}
	kcm_set_rcvtimeo(b[1], 5000);
	kill_peer(b[0]);
	ASSERT_TRUE(kcm_poll1(a[0], 0, 3000) & POLLERR);
	for (i = 0; i < 30; i++) {
		len = msg_make(buf, 100 + i * 60, 1, i, 42);
		ASSERT_EQ(send(kcm, buf, len, 0), (ssize_t)len);
		kcm_read_all(b[1], got, len);
		ASSERT_MEMEQ(got, buf, len);
	}
	err = kcm_so_error(a[0]);
	kcm_diag("SO_ERROR on the reset socket: %d %s", err, kcm_errname(err));
	EXPECT_EQ(err, EPIPE);
	EXPECT_EQ(kcm_unattach(kcm, a[0]), 0);
}

/*
 * A message stuck half-way out on a connection (its peer reads nothing and
 * the buffers are small) when that connection is reset.  If @unattach, the
 * application does what the documentation asks on POLLERR and unattaches
 * the dead socket first.  Either way the whole message must then go out on
 * the other connection, followed by the messages queued behind it, in
 * order, with nothing lost or cut.
 */
static void stuck_then_reset(int unattach)
{
	enum { NMSG = 6, BIG = 150000 };	/* all fit under SO_SNDBUF */
	unsigned char *msg[NMSG];
	size_t len[NMSG], off = 0, total = 0, rest, n;
	struct stream out;
	struct tally t;
	int kcm, a0, b0, a1, b1, i, prog = kcm_prog_len32();
	uint64_t seed = kcm_seed();
	unsigned char peek[4096];
	ssize_t got0;

	count_sigpipe();
	kcm = kcm_socket(SOCK_DGRAM);
	kcm_set_sndtimeo(kcm, 5000);
	kcm_tcp_pair_tiny(&a0, &b0);
	ASSERT_OK(kcm_attach(kcm, a0, prog));

	for (i = 0; i < NMSG; i++) {
		size_t plen = i == 0 ? BIG : HDR + 1000 * i;

		msg[i] = kcm_xmalloc(plen + 4);
		len[i] = msg_make(msg[i], plen, 0, i, seed);
		total += len[i];
		ASSERT_EQ(send(kcm, msg[i], len[i], 0), (ssize_t)len[i]);
	}
	/* The first message is now partly on connection 0 and stuck. */
	kcm_msleep(200);
	got0 = recv(b0, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
	kcm_diag("connection 0 holds %zd bytes at its peer", got0);
	ASSERT_GT(got0, 0);

	kcm_tcp_pair(AF_INET, &a1, &b1);
	ASSERT_OK(kcm_attach(kcm, a1, prog));
	kill_peer(b0);
	ASSERT_TRUE(kcm_poll1(a0, 0, 3000) & POLLERR);
	if (unattach)
		ASSERT_EQ(kcm_unattach(kcm, a0), 0);

	memset(&out, 0, sizeof(out));
	out.fd = b1;
	{
		long long end = kcm_now_ms() + 5000;

		while (out.len < total && kcm_now_ms() < end) {
			kcm_poll1(b1, POLLIN, 100);
			stream_pull(&out);
		}
		kcm_msleep(100);
		stream_pull(&out);
	}
	tally_init(&t, 1, NMSG);
	n = tally_stream(&t, &out, 1, &rest);
	kcm_diag("connection 1 got %zu bytes, %zu whole messages", out.len, n);
	EXPECT_EQ(rest, 0);
	EXPECT_EQ(t.bad, 0);
	EXPECT_EQ(t.dup, 0);
	EXPECT_EQ(t.disorder, 0);
	EXPECT_EQ(n, NMSG);
	EXPECT_EQ(out.len, total);
	for (i = 0; i < NMSG && off + len[i] <= out.len; i++) {
		EXPECT_MEMEQ(out.buf + off, msg[i], len[i]);
		off += len[i];
	}
	if (!unattach)
		EXPECT_EQ(kcm_unattach(kcm, a0), 0);
}

/*
 * The same with small messages, each of which a send hands to TCP at once
 * while nothing is queued before it: the connection's peer reads nothing,
 * so TCP takes a first run of them whole, then one only in part, and the
 * rest wait behind it.  After the reset that one and those behind it must
 * go out on the other connection, whole and in order; those wholly in the
 * dead connection are lost with it.  Which message TCP cuts depends on its
 * buffers: the case tries message sizes until the bytes in the connection
 * (in the sender's queue and at the peer) end inside one.  Linux, as in
 * reset_mid_message_no_unattach, sends nothing more until the dead socket
 * is unattached.
 */
static void reset_mid_fast_message(int nmsg, size_t size0, size_t step)
{
	enum { TRIES = 6 };
	unsigned char *msg[48], *got;
	uint64_t seed = kcm_seed();
	int kcm = -1, a0, b0, a1, b1, i, try, outq, inq, in_tcp = 0;
	int prog = kcm_prog_len32();
	size_t len = 0, whole, want;

	ASSERT_LE(nmsg, 48);
	for (i = 0; i < nmsg; i++)
		msg[i] = kcm_xmalloc(size0 + step * (TRIES - 1) + 4);
	count_sigpipe();
	for (try = 0; try < TRIES; try++) {
		kcm = kcm_socket(SOCK_DGRAM);
		kcm_tcp_pair_tiny(&a0, &b0);
		ASSERT_OK(kcm_attach(kcm, a0, prog));
		for (i = 0; i < nmsg; i++) {
			len = msg_make(msg[i], size0 + step * try, 0, i, seed);
			ASSERT_EQ(send(kcm, msg[i], len, MSG_DONTWAIT),
				  (ssize_t)len);
		}
		kcm_msleep(300);
		ASSERT_OK(ioctl(a0, SIOCOUTQ, &outq));
		ASSERT_OK(ioctl(b0, SIOCINQ, &inq));
		in_tcp = outq + inq;
		kcm_diag("messages of %zu bytes: %d in the connection (%d at the peer)",
			 len, in_tcp, inq);
		if (in_tcp % len)
			break;
		close(kcm);
		close(a0);
		close(b0);
	}
	ASSERT_NE(in_tcp % len, 0);
	whole = in_tcp / len;
	ASSERT_LT(whole, nmsg);

	kcm_tcp_pair(AF_INET, &a1, &b1);
	kcm_set_rcvtimeo(b1, 5000);
	ASSERT_OK(kcm_attach(kcm, a1, prog));
	kill_peer(b0);
	want = (nmsg - whole) * len;
	got = kcm_xmalloc(want);
	kcm_read_all(b1, got, want);
	for (i = whole; i < nmsg; i++)
		EXPECT_MEMEQ(got + (i - whole) * len, msg[i], len);
	free(got);
	ASSERT_ERRNO(recv(b1, &outq, 1, MSG_DONTWAIT), EAGAIN);
	for (i = 0; i < nmsg; i++)
		free(msg[i]);
}

#define STUCK_BUG "a message stuck on a reset TCP socket is not resent until the socket is unattached"

KCM_TEST(reset_mid_small_message, KCM_TIMEOUT(60), KCM_LINUX_BUG(STUCK_BUG))
{
	reset_mid_fast_message(48, 1500, 377);
}

/* The same with messages of two to five pages (ours hands them to TCP at
 * once too), fewer of them: they must all fit in the KCM socket's buffer.
 */
KCM_TEST(reset_mid_message_above_a_page, KCM_TIMEOUT(60),
	 KCM_LINUX_BUG(STUCK_BUG))
{
	reset_mid_fast_message(8, 6000, 2777);
}

KCM_TEST(reset_mid_message_unattach, KCM_TIMEOUT(40))
{
	stuck_then_reset(1);
}

/*
 * Same, but the application has not unattached the dead socket yet.  The
 * documentation says KCM stops using a TCP socket once it has failed; Linux
 * does not notice the reset while it waits for send space on that socket,
 * so the stuck message and all behind it stay queued (even new sends do
 * not move them) until SIOCKCMUNATTACH.
 */
KCM_TEST(reset_mid_message_no_unattach, KCM_TIMEOUT(40),
	 KCM_LINUX_BUG(STUCK_BUG))
{
	stuck_then_reset(0);
}
