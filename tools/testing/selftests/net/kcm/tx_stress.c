// SPDX-License-Identifier: GPL-2.0
/*
 * AF_KCM transmit path under load: messages stay atomic when many KCM
 * sockets of one mux send at once over several TCP connections, when the
 * TCP peers read slowly, and the socket survives being closed while other
 * threads are in the middle of writing messages.
 *
 * Framing: a 4-byte big-endian payload length, then the payload.  A payload
 * of 16 bytes or more starts with the sender id, the sequence number and a
 * checksum of the rest (all checked by the receiving side); every payload,
 * shorter ones included, also counts in a multiset of (length, checksum)
 * that must be the same on both sides.
 *
 * The random sizes come from a seed printed at the start of each case; set
 * KCM_SEED to replay one.
 *
 * Measured on Linux's kcm.ko (6.1 and 6.12), lane linux:
 *  - with 4 KCM sockets on 3 TCP sockets every connection carries traffic;
 *  - a MSG_DONTWAIT send with no room gives EAGAIN, and a message refused
 *    that way leaves no bytes on the stream;
 *  - poll() on the KCM socket reports POLLOUT even while the queue is full
 *    (see full_queue_no_pollout in tx_basic.c), so the cases here only
 *    require POLLOUT to be there once the peer has drained.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "kcm_test.h"

/* ---- local helpers ------------------------------------------------------ */

#define ID_MIN	16	/* payloads this long carry sender, seq, checksum */

/* Payload size between 1 and @max, spread evenly over the powers of two so
 * that small and large messages are both common.
 */
static size_t pick_size(uint64_t *rng, size_t max)
{
	int bits = 0;
	size_t top;

	while (((size_t)1 << (bits + 1)) <= max)
		bits++;
	top = (size_t)1 << (kcm_rand(rng) % (bits + 1));
	top = top > max ? max : top;
	return 1 + kcm_rand(rng) % top;
}

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

/* Build the frame of message (@sender, @seq) with @plen payload bytes into
 * @out; returns the frame size.
 */
static size_t msg_make(unsigned char *out, size_t plen, uint32_t sender,
		       uint32_t seq, uint64_t seed)
{
	uint64_t rng = seed ^ ((uint64_t)sender << 40) ^ ((uint64_t)seq << 8) ^
		       plen;
	unsigned char *p = out + 4;
	size_t i, start = plen >= ID_MIN ? ID_MIN : 0;
	uint64_t sum;

	be32_put(out, (uint32_t)plen);
	for (i = start; i < plen; i++)
		p[i] = (unsigned char)kcm_rand(&rng);
	if (plen >= ID_MIN) {
		be32_put(p, sender);
		be32_put(p + 4, seq);
		sum = kcm_csum(p + ID_MIN, plen - ID_MIN);
		memcpy(p + 8, &sum, 8);
	}
	return plen + 4;
}

/* What identifies a message in the multiset comparison. */
struct msg_key {
	uint64_t sum;	/* kcm_csum of the whole payload */
	uint32_t len;	/* payload length */
};

static int key_cmp(const void *a, const void *b)
{
	const struct msg_key *x = a, *y = b;

	if (x->sum != y->sum)
		return x->sum < y->sum ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return 0;
}

/* A growing buffer holding everything read from one TCP peer. */
struct stream {
	int fd;
	unsigned char *buf;
	size_t len, cap;
	int eof;
	int err;
};

/* Read whatever is there (nonblocking); returns bytes read. */
static size_t stream_pull(struct stream *s)
{
	size_t got = 0;

	for (;;) {
		ssize_t n;

		if (s->cap - s->len < 65536) {
			size_t ncap = s->cap ? s->cap * 2 : 1 << 20;
			unsigned char *nb = realloc(s->buf, ncap);

			if (!nb) {
				s->err = ENOMEM;
				return got;
			}
			s->buf = nb;
			s->cap = ncap;
		}
		n = recv(s->fd, s->buf + s->len, s->cap - s->len,
			 MSG_DONTWAIT);
		if (n > 0) {
			s->len += n;
			got += n;
			continue;
		}
		if (n == 0)
			s->eof = 1;
		else if (errno != EAGAIN && errno != EINTR)
			s->err = errno;
		return got;
	}
}

/*
 * Parse the frames of @s.  For each whole frame, check the embedded id and
 * checksum, that one sender's sequence numbers grow along the stream, and
 * append its key to @keys (if given).  Returns the number of frames;
 * *rest gets the bytes left after the last whole frame.
 */
struct parse_ctx {
	int nsend;
	uint32_t *per_sender;	/* message count sent by each sender */
	unsigned char **seen;	/* [sender][seq]: times received */
	struct msg_key *keys;
	size_t nkeys, capkeys;
	int bad;		/* frames with a broken id/checksum */
	int disorder;		/* sequence going backwards on a stream */
	int dup;		/* an id received twice */
};

static size_t stream_parse(struct parse_ctx *c, const struct stream *s,
			   size_t *rest)
{
	uint32_t last[16];
	size_t off = 0, n = 0;
	int i;

	for (i = 0; i < 16; i++)
		last[i] = UINT32_MAX;
	while (s->len - off >= 4) {
		size_t plen = be32_get(s->buf + off);
		const unsigned char *p = s->buf + off + 4;

		if (s->len - off - 4 < plen)
			break;
		if (c->keys) {
			if (c->nkeys == c->capkeys) {
				c->capkeys = c->capkeys ? 2 * c->capkeys : 4096;
				c->keys = realloc(c->keys,
						  c->capkeys * sizeof(*c->keys));
				if (!c->keys)
					KCM_FAIL("out of memory");
			}
			c->keys[c->nkeys].sum = kcm_csum(p, plen);
			c->keys[c->nkeys].len = (uint32_t)plen;
			c->nkeys++;
		}
		if (plen >= ID_MIN) {
			uint32_t snd = be32_get(p), seq = be32_get(p + 4);
			uint64_t sum;

			memcpy(&sum, p + 8, 8);
			if ((int)snd >= c->nsend || seq >= c->per_sender[snd] ||
			    sum != kcm_csum(p + ID_MIN, plen - ID_MIN)) {
				if (c->bad++ < 5)
					kcm_diag("stream fd %d: bad message at offset %zu (len %zu sender %u seq %u)",
						 s->fd, off, plen, snd, seq);
			} else {
				if (c->seen[snd][seq]++ && c->dup++ < 5)
					kcm_diag("sender %u seq %u received twice",
						 snd, seq);
				if (last[snd] != UINT32_MAX && seq <= last[snd] &&
				    c->disorder++ < 5)
					kcm_diag("stream fd %d: sender %u seq %u after %u",
						 s->fd, snd, seq, last[snd]);
				last[snd] = seq;
			}
		}
		off += 4 + plen;
		n++;
	}
	*rest = s->len - off;
	return n;
}

static void parse_init(struct parse_ctx *c, int nsend, const uint32_t *counts,
		       int want_keys)
{
	int i;

	memset(c, 0, sizeof(*c));
	c->nsend = nsend;
	c->per_sender = kcm_xmalloc(nsend * sizeof(uint32_t));
	c->seen = kcm_xmalloc(nsend * sizeof(*c->seen));
	for (i = 0; i < nsend; i++) {
		c->per_sender[i] = counts[i];
		c->seen[i] = calloc(counts[i] + 1, 1);
		if (!c->seen[i])
			KCM_FAIL("out of memory");
	}
	if (want_keys) {
		c->capkeys = 4096;
		c->keys = kcm_xmalloc(c->capkeys * sizeof(*c->keys));
	}
}

/* A TCP pair whose accepting end (the peer) has a small receive buffer and
 * whose connecting end (attached to KCM) a small send buffer, so that TCP
 * runs out of room quickly.
 */
static void small_tcp_pair(int *a, int *b, int rcvbuf, int sndbuf)
{
	int l = kcm_tcp_listener(AF_INET, 1);

	kcm_set_int_opt(l, SOL_SOCKET, SO_RCVBUF, rcvbuf);
	*a = kcm_tcp_connect_to(l);
	*b = ASSERT_OK(accept(l, NULL, NULL));
	kcm_set_int_opt(*b, SOL_SOCKET, SO_RCVBUF, rcvbuf);
	kcm_set_int_opt(*a, SOL_SOCKET, SO_SNDBUF, sndbuf);
	close(l);
}

/* ---- atomicity: many senders, many connections ------------------------ */

enum { A_SEND = 4, A_CONN = 3, A_TOTAL = 4000 };

struct sender {
	int fd;
	int id;
	uint32_t count;
	uint64_t seed;
	size_t max;
	int flags;
	struct msg_key *keys;	/* what it sent, by seq */
	size_t bytes;		/* frame bytes sent */
	int err;		/* errno of a failed send */
	uint32_t done;		/* messages sent */
	int sleep_every;	/* if > 0: pause 1 ms every that many sends */
};

static void *sender_fn(void *arg)
{
	struct sender *s = arg;
	uint64_t rng = s->seed * 31 + s->id;
	unsigned char *buf = malloc(s->max + 4);
	uint32_t seq;

	if (!buf) {
		s->err = ENOMEM;
		return NULL;
	}
	for (seq = 0; seq < s->count; seq++) {
		size_t plen = pick_size(&rng, s->max);
		size_t len = msg_make(buf, plen, s->id, seq, s->seed);
		ssize_t n;

		do {
			n = send(s->fd, buf, len, s->flags);
		} while (n < 0 && errno == EINTR);
		if (n != (ssize_t)len) {
			s->err = n < 0 ? errno : -1;
			break;
		}
		s->keys[seq].sum = kcm_csum(buf + 4, plen);
		s->keys[seq].len = (uint32_t)plen;
		s->bytes += len;
		s->done = seq + 1;
		if (s->sleep_every && seq % s->sleep_every == 0)
			kcm_msleep(1);
	}
	free(buf);
	return NULL;
}

/*
 * Read all streams until @expect bytes in total have arrived (once
 * *@expect_known is set) or nothing arrives for @idle_ms.  If @slow is set,
 * each read is limited to 4 KiB and followed by a short sleep.
 */
static void read_streams(struct stream *st, int n, atomic_size_t *expect,
			 atomic_int *expect_known, int idle_ms, int slow)
{
	long long last = kcm_now_ms();

	for (;;) {
		struct pollfd pfd[8];
		size_t total = 0;
		int i, got = 0;

		for (i = 0; i < n; i++) {
			pfd[i].fd = st[i].fd;
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
			total += st[i].len;
		}
		if (atomic_load(expect_known) && total >= atomic_load(expect))
			return;
		if (kcm_now_ms() - last > idle_ms)
			return;
		if (poll(pfd, n, 50) <= 0)
			continue;
		for (i = 0; i < n; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLERR | POLLHUP)))
				continue;
			if (slow) {
				ssize_t r;

				if (st[i].cap - st[i].len < 4096) {
					st[i].cap = st[i].cap ? 2 * st[i].cap : 1 << 20;
					st[i].buf = realloc(st[i].buf, st[i].cap);
					if (!st[i].buf)
						KCM_FAIL("out of memory");
				}
				r = recv(st[i].fd, st[i].buf + st[i].len, 4096,
					 MSG_DONTWAIT);
				if (r > 0) {
					st[i].len += r;
					got = 1;
				}
			} else if (stream_pull(&st[i])) {
				got = 1;
			}
			if (st[i].err)
				KCM_FAIL("reading stream %d: %s", i,
					 strerror(st[i].err));
		}
		if (got)
			last = kcm_now_ms();
		if (slow)
			kcm_msleep(2);
	}
}

struct run {
	struct stream st[8];
	int nconn;
	atomic_size_t expect;
	atomic_int known;
	int idle_ms;
	int slow;
};

static void *reader_fn(void *arg)
{
	struct run *r = arg;

	read_streams(r->st, r->nconn, &r->expect, &r->known, r->idle_ms,
		     r->slow);
	return NULL;
}

/*
 * Run @nsend senders (one KCM socket each, all of one mux) over the
 * @nconn TCP connections in @run, then check what the peers got: only
 * whole, intact frames; every message exactly once; per-sender order along
 * each stream; the multiset of (length, checksum) equal on both sides.
 * Fills @per_conn with the message count of each connection.
 */
static void run_and_check(struct sender *snd, int nsend, struct run *run,
			  size_t *per_conn)
{
	pthread_t st[8], rt;
	struct parse_ctx pc;
	struct msg_key *sent;
	uint32_t counts[8];
	size_t nsent = 0, bytes = 0, got = 0, i;
	int k;

	atomic_store(&run->known, 0);
	ASSERT_EQ(pthread_create(&rt, NULL, reader_fn, run), 0);
	for (k = 0; k < nsend; k++)
		ASSERT_EQ(pthread_create(&st[k], NULL, sender_fn, &snd[k]), 0);
	for (k = 0; k < nsend; k++) {
		ASSERT_EQ(pthread_join(st[k], NULL), 0);
		if (snd[k].err)
			KCM_FAIL("sender %d: send of message %u failed: %s",
				 k, snd[k].done, strerror(snd[k].err));
		bytes += snd[k].bytes;
	}
	atomic_store(&run->expect, bytes);
	atomic_store(&run->known, 1);
	ASSERT_EQ(pthread_join(rt, NULL), 0);

	for (k = 0; k < nsend; k++)
		counts[k] = snd[k].count;
	parse_init(&pc, nsend, counts, 1);
	for (k = 0; k < run->nconn; k++) {
		size_t rest;

		per_conn[k] = stream_parse(&pc, &run->st[k], &rest);
		got += run->st[k].len;
		if (rest)
			kcm_diag("connection %d ends in %zu bytes of a partial message",
				 k, rest);
		EXPECT_EQ(rest, 0);
	}
	{
		char line[128];
		int at = 0;

		for (k = 0; k < run->nconn && at < (int)sizeof(line) - 24; k++)
			at += snprintf(line + at, sizeof(line) - at, " %zu",
				       per_conn[k]);
		kcm_diag("sent %zu bytes, received %zu; messages per connection:%s",
			 bytes, got, line);
	}
	EXPECT_EQ(got, bytes);
	EXPECT_EQ(pc.bad, 0);
	EXPECT_EQ(pc.dup, 0);
	EXPECT_EQ(pc.disorder, 0);

	/* Every identified message arrived once. */
	for (k = 0; k < nsend; k++) {
		uint32_t q, missing = 0;

		for (q = 0; q < snd[k].count; q++)
			if (snd[k].keys[q].len >= ID_MIN && !pc.seen[k][q] &&
			    missing++ < 5)
				kcm_diag("sender %d seq %u never arrived", k, q);
		EXPECT_EQ(missing, 0);
	}

	/* Same multiset of (length, checksum) on both sides. */
	for (k = 0; k < nsend; k++)
		nsent += snd[k].count;
	sent = kcm_xmalloc(nsent * sizeof(*sent));
	for (k = 0, i = 0; k < nsend; k++) {
		memcpy(sent + i, snd[k].keys, snd[k].count * sizeof(*sent));
		i += snd[k].count;
	}
	qsort(sent, nsent, sizeof(*sent), key_cmp);
	qsort(pc.keys, pc.nkeys, sizeof(*pc.keys), key_cmp);
	EXPECT_EQ(pc.nkeys, nsent);
	if (pc.nkeys == nsent) {
		for (i = 0; i < nsent; i++)
			if (key_cmp(&sent[i], &pc.keys[i]))
				break;
		if (i < nsent)
			kcm_diag("multisets differ at %zu: sent len %u, received len %u",
				 i, sent[i].len, pc.keys[i].len);
		EXPECT_EQ(i, nsent);
	}
	free(sent);
}

/*
 * 4 threads, each on its own KCM socket (clones of one mux), send 4000
 * messages in all (payload 1 byte to 64 KiB) over 3 TCP connections.
 */
KCM_TEST(atomic_4_senders_3_conns, KCM_TIMEOUT(100))
{
	struct sender snd[A_SEND];
	struct run run;
	size_t per_conn[A_CONN];
	uint64_t seed = kcm_seed();
	int prog = kcm_prog_len32();
	int kcm[A_SEND], k, used = 0;

	memset(&run, 0, sizeof(run));
	run.nconn = A_CONN;
	run.idle_ms = 20000;
	kcm[0] = kcm_socket(SOCK_DGRAM);
	for (k = 1; k < A_SEND; k++)
		kcm[k] = ASSERT_OK(kcm_clone(kcm[0]));
	for (k = 0; k < A_CONN; k++) {
		int a;

		kcm_tcp_pair(AF_INET, &a, &run.st[k].fd);
		ASSERT_OK(kcm_attach(kcm[0], a, prog));
	}
	memset(snd, 0, sizeof(snd));
	for (k = 0; k < A_SEND; k++) {
		snd[k].fd = kcm[k];
		snd[k].id = k;
		snd[k].count = A_TOTAL / A_SEND;
		snd[k].seed = seed;
		snd[k].max = 65536;
		snd[k].keys = kcm_xmalloc(snd[k].count * sizeof(struct msg_key));
		kcm_set_sndtimeo(kcm[k], 20000);
	}
	run_and_check(snd, A_SEND, &run, per_conn);

	/* Linux spreads this load over every connection; ask for two. */
	for (k = 0; k < A_CONN; k++)
		used += per_conn[k] > 0;
	EXPECT_GE(used, 2);
}

/*
 * Same with SOCK_SEQPACKET sockets, each message written in two or three
 * pieces, the last with MSG_EOR: pieces of different sockets never mix.
 */
static void *piece_sender_fn(void *arg)
{
	struct sender *s = arg;
	uint64_t rng = s->seed * 131 + s->id;
	unsigned char *buf = malloc(s->max + 4);
	uint32_t seq;

	if (!buf) {
		s->err = ENOMEM;
		return NULL;
	}
	for (seq = 0; seq < s->count; seq++) {
		size_t plen = pick_size(&rng, s->max);
		size_t len = msg_make(buf, plen, s->id, seq, s->seed);
		size_t off = 0;
		int pieces = 1 + kcm_rand(&rng) % 3, j;

		for (j = 0; j < pieces; j++) {
			size_t part = j == pieces - 1 ? len - off :
				      kcm_rand(&rng) % (len - off + 1);
			ssize_t n;

			do {
				n = send(s->fd, buf + off, part,
					 j == pieces - 1 ? MSG_EOR : 0);
			} while (n < 0 && errno == EINTR);
			if (n != (ssize_t)part) {
				s->err = n < 0 ? errno : -1;
				free(buf);
				return NULL;
			}
			off += part;
		}
		s->keys[seq].sum = kcm_csum(buf + 4, plen);
		s->keys[seq].len = (uint32_t)plen;
		s->bytes += len;
		s->done = seq + 1;
	}
	free(buf);
	return NULL;
}

KCM_TEST(atomic_seqpacket_pieces, KCM_TIMEOUT(60))
{
	enum { NS = 3, NC = 2, TOTAL = 1200 };
	struct sender snd[NS];
	struct run run;
	size_t per_conn[NC];
	uint64_t seed = kcm_seed();
	int prog = kcm_prog_len32();
	pthread_t th[NS], rt;
	struct parse_ctx pc;
	uint32_t counts[NS];
	size_t bytes = 0;
	int kcm[NS], k;

	memset(&run, 0, sizeof(run));
	run.nconn = NC;
	run.idle_ms = 20000;
	kcm[0] = kcm_socket(SOCK_SEQPACKET);
	for (k = 1; k < NS; k++)
		kcm[k] = ASSERT_OK(kcm_clone(kcm[0]));
	for (k = 0; k < NC; k++) {
		int a;

		kcm_tcp_pair(AF_INET, &a, &run.st[k].fd);
		ASSERT_OK(kcm_attach(kcm[0], a, prog));
	}
	memset(snd, 0, sizeof(snd));
	for (k = 0; k < NS; k++) {
		snd[k].fd = kcm[k];
		snd[k].id = k;
		snd[k].count = TOTAL / NS;
		snd[k].seed = seed;
		snd[k].max = 32768;
		snd[k].keys = kcm_xmalloc(snd[k].count * sizeof(struct msg_key));
		counts[k] = snd[k].count;
		kcm_set_sndtimeo(kcm[k], 20000);
	}
	ASSERT_EQ(pthread_create(&rt, NULL, reader_fn, &run), 0);
	for (k = 0; k < NS; k++)
		ASSERT_EQ(pthread_create(&th[k], NULL, piece_sender_fn, &snd[k]), 0);
	for (k = 0; k < NS; k++) {
		ASSERT_EQ(pthread_join(th[k], NULL), 0);
		if (snd[k].err)
			KCM_FAIL("sender %d: message %u: %s", k, snd[k].done,
				 strerror(snd[k].err));
		bytes += snd[k].bytes;
	}
	atomic_store(&run.expect, bytes);
	atomic_store(&run.known, 1);
	ASSERT_EQ(pthread_join(rt, NULL), 0);

	parse_init(&pc, NS, counts, 0);
	for (k = 0; k < NC; k++) {
		size_t rest;

		per_conn[k] = stream_parse(&pc, &run.st[k], &rest);
		EXPECT_EQ(rest, 0);
	}
	kcm_diag("messages per connection: %zu %zu", per_conn[0], per_conn[1]);
	EXPECT_EQ(per_conn[0] + per_conn[1], TOTAL / NS * NS);
	EXPECT_EQ(pc.bad, 0);
	EXPECT_EQ(pc.dup, 0);
	EXPECT_EQ(pc.disorder, 0);
	EXPECT_EQ(run.st[0].len + run.st[1].len, bytes);
}

/* ---- slow reader ----------------------------------------------------------- */

/*
 * The TCP peers have small receive buffers and read 4 KiB at a time with
 * pauses, so TCP's send space runs out in the middle of messages all the
 * time.  Two blocking senders must still complete, and every message must
 * arrive whole, once, in each sender's order along each stream.
 */
KCM_TEST(slow_reader_blocking, KCM_TIMEOUT(90))
{
	enum { NS = 2, NC = 2, PER = 200 };
	struct sender snd[NS];
	struct run run;
	size_t per_conn[NC];
	uint64_t seed = kcm_seed();
	int prog = kcm_prog_len32();
	int kcm[NS], k;

	memset(&run, 0, sizeof(run));
	run.nconn = NC;
	run.idle_ms = 20000;
	run.slow = 1;
	kcm[0] = kcm_socket(SOCK_DGRAM);
	kcm[1] = ASSERT_OK(kcm_clone(kcm[0]));
	for (k = 0; k < NC; k++) {
		int a;

		small_tcp_pair(&a, &run.st[k].fd, 4096, 4096);
		ASSERT_OK(kcm_attach(kcm[0], a, prog));
	}
	memset(snd, 0, sizeof(snd));
	for (k = 0; k < NS; k++) {
		snd[k].fd = kcm[k];
		snd[k].id = k;
		snd[k].count = PER;
		snd[k].seed = seed;
		snd[k].max = 65536;
		snd[k].keys = kcm_xmalloc(PER * sizeof(struct msg_key));
		kcm_set_sndtimeo(kcm[k], 30000);
	}
	run_and_check(snd, NS, &run, per_conn);
}

/*
 * With the peer not reading at all, MSG_DONTWAIT sends fill the queue
 * until one gives EAGAIN (Linux).  Once the peer drains, POLLOUT is there
 * and sends succeed again; the stream holds exactly the messages whose
 * send succeeded, in order, and nothing of the refused one.
 */
KCM_TEST(slow_reader_dontwait_eagain, KCM_TIMEOUT(60))
{
	enum { PLEN = 16000, LIMIT = 4000 };
	unsigned char *buf = kcm_xmalloc(PLEN + 4);
	uint64_t seed = kcm_seed();
	struct run run;
	uint32_t seq = 0, eagain_at = 0, counts[1];
	struct parse_ctx pc;
	pthread_t rt;
	size_t bytes = 0, rest, n;
	int kcm, a, k;
	long long t0;

	memset(&run, 0, sizeof(run));
	run.nconn = 1;
	run.idle_ms = 10000;
	kcm = kcm_socket(SOCK_DGRAM);
	small_tcp_pair(&a, &run.st[0].fd, 4096, 4096);
	ASSERT_OK(kcm_attach(kcm, a, kcm_prog_len32()));

	for (;;) {
		size_t len = msg_make(buf, PLEN, 0, seq, seed);
		ssize_t r = send(kcm, buf, len, MSG_DONTWAIT);

		if (r < 0) {
			int e = errno;

			ASSERT_EQ(e, EAGAIN);
			eagain_at = seq;
			break;
		}
		ASSERT_EQ(r, (ssize_t)len);
		bytes += len;
		seq++;
		if (seq > LIMIT)
			KCM_FAIL("%u MSG_DONTWAIT sends of %d bytes never gave EAGAIN",
				 seq, PLEN + 4);
	}
	kcm_diag("EAGAIN after %u messages (%zu bytes)", eagain_at, bytes);
	ASSERT_GT(eagain_at, 0);
	/* Still full a little later: nobody reads. */
	kcm_msleep(100);
	ASSERT_ERRNO(send(kcm, buf, PLEN + 4, MSG_DONTWAIT), EAGAIN);

	/* Now the peer drains, slowly. */
	run.slow = 1;
	ASSERT_EQ(pthread_create(&rt, NULL, reader_fn, &run), 0);
	t0 = kcm_now_ms();
	for (k = 0; k < 40; k++) {
		size_t len;
		ssize_t r;

		if (!(kcm_poll1(kcm, POLLOUT, 10000) & POLLOUT))
			KCM_FAIL("no POLLOUT within 10 s of the peer draining");
		len = msg_make(buf, PLEN, 0, seq, seed);
		r = send(kcm, buf, len, MSG_DONTWAIT);
		if (r < 0 && errno == EAGAIN) {
			/* Linux reports POLLOUT early; try again. */
			if (kcm_now_ms() - t0 > 20000)
				KCM_FAIL("sends still EAGAIN 20 s after the peer began draining");
			kcm_msleep(5);
			k--;
			continue;
		}
		ASSERT_EQ(r, (ssize_t)len);
		bytes += len;
		seq++;
	}
	atomic_store(&run.expect, bytes);
	atomic_store(&run.known, 1);
	ASSERT_EQ(pthread_join(rt, NULL), 0);

	counts[0] = seq;
	parse_init(&pc, 1, counts, 0);
	n = stream_parse(&pc, &run.st[0], &rest);
	EXPECT_EQ(rest, 0);
	EXPECT_EQ(n, seq);
	EXPECT_EQ(run.st[0].len, bytes);
	EXPECT_EQ(pc.bad, 0);
	EXPECT_EQ(pc.dup, 0);
	EXPECT_EQ(pc.disorder, 0);
	for (k = 0; k < (int)seq; k++)
		if (!pc.seen[0][k])
			KCM_FAIL("message %d missing", k);
	free(buf);
}

/* ---- close while writing --------------------------------------------------- */

#define RACE_MSG_MAX	12000	/* frame size, header included */
#define RACE_MSGS	65536	/* most messages a racer sends in a round */
#define RACE_ROUNDS	48

/*
 * A thread writing SOCK_SEQPACKET messages on one KCM socket: frames of
 * kcm_msg_build() (connection id @id, seq 0, 1, ...) of random sizes, each
 * in random pieces, MSG_EOR on the last, all MSG_DONTWAIT.
 */
struct racer {
	int fd;
	uint32_t id;
	atomic_int *stop;
	uint64_t rng;
	uint32_t *lens;		/* [seq]: frame size */
	uint32_t done;		/* messages whose last piece went in */
	int bad_errno;		/* a send's errno that is not allowed */
	unsigned long sends;
};

static void *racer_fn(void *arg)
{
	struct racer *r = arg;
	unsigned char *msg = malloc(RACE_MSG_MAX);
	size_t len = 0, off = 0;

	if (!msg) {
		r->bad_errno = ENOMEM;
		return NULL;
	}
	while (!atomic_load(r->stop) && r->done < RACE_MSGS) {
		size_t piece;
		ssize_t n;

		if (off == len) {
			len = KCM_MSG_MIN + kcm_rand(&r->rng) %
			      (RACE_MSG_MAX - KCM_MSG_MIN + 1);
			kcm_msg_build(msg, len, r->id, r->done);
			r->lens[r->done] = len;
			off = 0;
		}
		piece = 1 + kcm_rand(&r->rng) % 4096;
		if (piece > len - off)
			piece = len - off;
		n = send(r->fd, msg + off, piece,
			 MSG_DONTWAIT | (off + piece == len ? MSG_EOR : 0));
		r->sends++;
		if (n < 0) {
			/* A full queue; the accepted pieces stay and this
			 * one is sent again.
			 */
			if (errno == EAGAIN) {
				sched_yield();
				continue;
			}
			/* Its socket was closed: the end of this racer. */
			if (errno != EBADF)
				r->bad_errno = errno;
			break;
		}
		/* A piece may be taken in part; the rest goes next. */
		off += n;
		if (off == len)
			r->done++;
	}
	free(msg);
	return NULL;
}

/* What one round's TCP peer read. */
struct race_stream {
	uint32_t got[2];	/* whole frames of each racer */
	int bad;		/* a frame broken, out of order or foreign */
	size_t rest;		/* bytes of a cut frame at the end */
	int cut_of;		/* bit k: they begin racer k's next frame */
};

/*
 * Parse @st: whole frames of the two racers @r, each racer's seqs 0, 1,
 * 2... with no gap, each a message the racer completed, then at most the
 * start of one more frame: the next of a racer (its bytes those of that
 * frame, so nothing else follows them).
 */
static void race_parse(const struct stream *st, const struct racer *r,
		       struct race_stream *rs)
{
	unsigned char *exp = kcm_xmalloc(RACE_MSG_MAX);
	size_t off = 0;
	int k;

	memset(rs, 0, sizeof(*rs));
	while (off < st->len) {
		size_t left = st->len - off, flen = 0;
		uint32_t id, seq;

		if (left >= 4)
			flen = 4 + (size_t)be32_get(st->buf + off);
		if (left < 4 || left < flen) {
			rs->rest = left;
			for (k = 0; k < 2; k++) {
				seq = rs->got[k];
				if (seq >= r[k].done)
					continue;
				kcm_msg_build(exp, r[k].lens[seq], r[k].id,
					      seq);
				if (!memcmp(st->buf + off, exp, left))
					rs->cut_of |= 1 << k;
			}
			if (!rs->cut_of) {
				rs->bad = 1;
				kcm_diag("offset %zu: %zu bytes that begin no racer's next frame",
					 off, left);
			}
			break;
		}
		k = -1;
		if (!kcm_msg_check(st->buf + off, flen, &id, &seq))
			for (k = 0; k < 2 && id != r[k].id; k++)
				;
		if (k < 0 || k == 2 || seq != rs->got[k] ||
		    seq >= r[k].done || flen != r[k].lens[seq]) {
			rs->bad = 1;
			kcm_diag("offset %zu: broken or unexpected frame (%zu bytes)",
				 off, flen);
			break;
		}
		rs->got[k]++;
		off += flen;
	}
	free(exp);
}

/*
 * Read @st until it holds @want1 whole frames of racer 1, or, with
 * @want1 0, until EOF, or until it is broken; fails after 10 s.  *rs:
 * what it holds then.
 */
static void race_read(struct stream *st, const struct racer *r,
		      uint32_t want1, struct race_stream *rs)
{
	long long end = kcm_now_ms() + 10000;

	for (;;) {
		stream_pull(st);
		ASSERT_EQ(st->err, 0);
		race_parse(st, r, rs);
		if (rs->bad || (want1 ? rs->got[1] >= want1 : st->eof))
			return;
		if (kcm_now_ms() > end)
			KCM_FAIL("peer stuck at %zu bytes (racer frames %u %u)",
				 st->len, rs->got[0], rs->got[1]);
		kcm_poll1(st->fd, POLLIN, 100);
	}
}

/*
 * Two threads write SOCK_SEQPACKET messages in pieces, one on the KCM
 * socket the main thread then closes, one on a clone that stays; the TCP
 * socket's send buffer is small, so that messages are often half-way into
 * TCP.  The main thread closes the socket: alone (CLOSE_ALONE), after the
 * TCP peer (CLOSE_AFTER_PEER), or after the clone unattached the TCP
 * socket (CLOSE_AFTER_UNATTACH).  Each round:
 *  - sends succeed or give EAGAIN (a full queue), and EBADF once the
 *    socket is closed; nothing else;
 *  - alone: the peer's stream is whole frames, each racer's in order with
 *    no gap, ending in at most one cut frame, of the closed socket; the
 *    TCP socket shows EPIPE exactly when that frame was cut ("Closing a
 *    KCM socket" in kcm.rst), and nothing follows a cut frame: the stream
 *    is not resumed.  Uncut, every message the clone completed arrives;
 *  - after unattach: the same, but the cut frame may be either racer's
 *    (unattach cuts the message being written: kcm.rst, "Attaching and
 *    unattaching");
 *  - after the peer: the peer is gone; only the sends are checked.
 * The harness also scans the kernel log.
 */
enum { CLOSE_ALONE, CLOSE_AFTER_PEER, CLOSE_AFTER_UNATTACH };

static void close_race_round(int round, int order, int prog, uint64_t *rng,
			     uint32_t **lens, unsigned int *cut)
{
	int kcm, clone, a, b, i, so_err = 0;
	struct race_stream rs;
	atomic_int stop = 0;
	struct stream st;
	struct racer r[2];
	pthread_t th[2];
	long long t0 = kcm_now_ms();

	kcm = kcm_socket(SOCK_SEQPACKET);
	clone = ASSERT_OK(kcm_clone(kcm));
	kcm_tcp_pair(AF_INET, &a, &b);
	kcm_set_int_opt(a, SOL_SOCKET, SO_SNDBUF, 4096);
	ASSERT_OK(kcm_attach(kcm, a, prog));
	for (i = 0; i < 2; i++) {
		r[i] = (struct racer){
			.fd = i ? clone : kcm, .id = 2 * round + i,
			.stop = &stop, .rng = 2ull * kcm_rand(rng) + 1,
			.lens = lens[i],
		};
		ASSERT_EQ(pthread_create(&th[i], NULL, racer_fn, &r[i]), 0);
	}
	/* Let them get going, then pull the socket away. */
	for (i = 0; i < (int)(kcm_rand(rng) % 4); i++)
		sched_yield();
	if (kcm_rand(rng) % 2)
		kcm_msleep(1);
	switch (order) {
	case CLOSE_ALONE:
		close(kcm);
		break;
	case CLOSE_AFTER_PEER:
		close(b);
		close(kcm);
		break;
	default:
		ASSERT_OK(kcm_unattach(clone, a));
		close(kcm);
		break;
	}
	kcm_msleep(1);
	atomic_store(&stop, 1);
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(pthread_join(th[i], NULL), 0);
		if (r[i].bad_errno)
			KCM_FAIL("round %d: racer %d: send failed: %s", round,
				 i, strerror(r[i].bad_errno));
	}
	KCM_LOG("round %d: %lu and %lu sends, %u and %u messages", round,
		r[0].sends, r[1].sends, r[0].done, r[1].done);
	if (order == CLOSE_AFTER_PEER) {
		close(clone);
		close(a);
		return;
	}

	memset(&st, 0, sizeof(st));
	st.fd = b;
	/* Uncut, the clone goes on on that TCP socket: let all it completed
	 * arrive before its close, which could cut one.
	 */
	if (order == CLOSE_ALONE)
		so_err = kcm_so_error(a);
	if (order == CLOSE_ALONE && !so_err && r[1].done)
		race_read(&st, r, r[1].done, &rs);
	close(clone);
	close(a);
	race_read(&st, r, 0, &rs);
	free(st.buf);
	close(b);
	KCM_LOG("round %d: the peer read %u and %u messages, %zu bytes of a cut one, in %lld ms",
		round, rs.got[0], rs.got[1], rs.rest, kcm_now_ms() - t0);

	if (rs.bad)
		KCM_FAIL("round %d: the peer's stream is broken", round);
	*cut += !!rs.rest;
	if (order != CLOSE_ALONE)
		return;
	if (so_err != (rs.rest ? EPIPE : 0))
		KCM_FAIL("round %d: SO_ERROR %s on the TCP socket, whose stream ends %zu bytes into a frame",
			 round, kcm_errname(so_err), rs.rest);
	if (rs.rest && !(rs.cut_of & 1))
		KCM_FAIL("round %d: the frame cut is not the closed socket's",
			 round);
	if (!rs.rest && rs.got[1] != r[1].done)
		KCM_FAIL("round %d: %u of the clone's %u messages arrived",
			 round, rs.got[1], r[1].done);
}

/* RACE_ROUNDS rounds, of the orders of @orders (a bit each) in turn. */
static void close_race(unsigned int orders)
{
	unsigned int cut[3] = { 0 }, rounds[3] = { 0 };
	int prog = kcm_prog_len32(), round, order = -1;
	uint64_t rng = kcm_seed();
	uint32_t *lens[2];

	lens[0] = kcm_xmalloc(RACE_MSGS * sizeof(uint32_t));
	lens[1] = kcm_xmalloc(RACE_MSGS * sizeof(uint32_t));
	for (round = 0; round < RACE_ROUNDS; round++) {
		do
			order = (order + 1) % 3;
		while (!(orders & (1u << order)));
		close_race_round(round, order, prog, &rng, lens, &cut[order]);
		rounds[order]++;
	}
	close(prog);
	free(lens[0]);
	free(lens[1]);
	kcm_diag("rounds that cut a message: %u of %u closing alone, %u of %u closing after unattach, %u after the peer",
		 cut[CLOSE_ALONE], rounds[CLOSE_ALONE],
		 cut[CLOSE_AFTER_UNATTACH], rounds[CLOSE_AFTER_UNATTACH],
		 rounds[CLOSE_AFTER_PEER]);
}

KCM_TEST(close_race_partial_seqpacket, KCM_TIMEOUT(120))
{
	close_race(1u << CLOSE_AFTER_PEER | 1u << CLOSE_AFTER_UNATTACH);
}

/*
 * Linux may fail the TCP socket (EPIPE) when the socket closed was between
 * two messages on it, though the stream could go on: the clone's messages
 * then go nowhere.  Seen on 6.1 and 6.12, at a round that varies.
 */
KCM_TEST(close_race_alone_seqpacket, KCM_TIMEOUT(120),
	 KCM_LINUX_RACE("closing a KCM socket between messages fails its TCP socket with EPIPE"))
{
	close_race(1u << CLOSE_ALONE);
}
