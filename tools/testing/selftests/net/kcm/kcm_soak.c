// SPDX-License-Identifier: GPL-2.0
/*
 * AF_KCM soak: many configurations of one mux under load, every message
 * accounted for.
 *
 * A run: C loopback TCP connections attached to one mux, R KCM sockets
 * (the first and its clones), one reader thread on each, one sender
 * thread per connection writing framed messages on the peer end for a
 * few seconds.  Every message carries its connection id, a sequence
 * number and a filler derived from both (kcm_msg_build()).  Checked:
 *
 *   - content and length intact (kcm_msg_check());
 *   - received exactly once (a bit per sequence number per connection);
 *   - in order per connection among the messages one reader got (two
 *     readers' calls interleave, so order across readers means nothing);
 *   - at the end, received == written on every connection, and no KCM
 *     socket has anything left.
 *
 * A run in which, for 10 s, no message is received and no byte is
 * written while something is still outstanding is a stall: the case
 * dumps /proc/net/kcm and kcm_stats, TCP_INFO of both ends of every
 * connection, what each sender and reader is doing, and fails.
 *
 * Senders and readers are separate threads, so a stall is never the
 * test's own: a reader never waits for bytes that only it could write.
 *
 * The matrix: connections 1/4/16; readers 1/2/4; message sizes 64, 512,
 * 4096, 65536 bytes (the frame, header included) or mixed; default or
 * tiny SO_RCVBUF on the KCM sockets and the attached TCP sockets; readers
 * using recv, recvmmsg(MSG_WAITFORONE), KCM_RECV_BATCH, epoll, or a mix
 * of those; SO_RCVTIMEO on the readers or not; blocking senders or
 * non-blocking ones that poll for POLLOUT; readers that pause now and
 * then or not; plain TCP or kTLS.  IPv4 and IPv6 alternate.
 *
 * Over kTLS (issue 20; the soak_tls* cases): every connection keyed with
 * kTLS both ways (software, AES-GCM-128, no handshake: ktls_keys.c), the
 * peer writing through its TLS_TX, the attached socket reading through its
 * TLS_RX, so that messages are framed from kTLS's plaintext; the same
 * accounting, and a stall report that adds each connection's TLS record
 * numbers (records the peer encrypted, records the attached end decrypted)
 * and /proc/net/tls_stat.  Linux's kcm.ko parses the ciphertext there:
 * expected failures on its lane.
 *
 * Short form (the soak_* cases): a handful of configurations that cover
 * the corners, a few seconds each.  Long form (soak_matrix):
 * KCM_SOAK_SECS=600 cycles through the whole matrix in a seeded order
 * (KCM_SEED replays it) for that long and reports the runs, messages and
 * configurations covered; without KCM_SOAK_SECS it is skipped.
 * KCM_SOAK_RUN_MS sets the sending time of one long-form run (1500);
 * KCM_SOAK_MATRIX=905,1178 runs only those configurations of the matrix
 * (the numbers each run prints), over and over: a stall's replay.
 * On Linux's kcm.ko the long form leaves out KCM_RECV_BATCH and kTLS, and stops at
 * its first stall, as the short cases show it does.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "kcm_test.h"
#include "ktls_keys.h"

#define SOAK_MAX_CONNS		16
#define SOAK_MAX_READERS	4
#define SOAK_MAX_MSG		65536
/* Sequence numbers a connection may use in one run: its bitmap's size. */
#define SOAK_SEQ_MAX		(1u << 22)
/* No message received and no byte written for this long: a stall. */
#define SOAK_STALL_MS		10000
/* A sender writes this much at most in one chunk of messages. */
#define SOAK_CHUNK		(128 * 1024)
/* KCM_RECV_BATCH readers' buffer. */
#define SOAK_BATCH_BUF		(256 * 1024)
/* Tiny SO_RCVBUF (the kernel doubles it) on KCM sockets. */
#define SOAK_TINY_KCM_RCVBUF	2048
/* Tiny SO_SNDBUF on the peers. */
#define SOAK_TINY_SNDBUF	8192

enum soak_read {
	RD_RECV,	/* recvmsg, one message a call */
	RD_MMSG,	/* recvmmsg(MSG_WAITFORONE) */
	RD_BATCH,	/* KCM_RECV_BATCH: many messages a recvmsg */
	RD_EPOLL,	/* epoll_wait, then recv(MSG_DONTWAIT) until EAGAIN */
	RD_MIX,		/* reader i uses one of the above, by i */
	RD_NMODES
};

static const char *const read_names[] = {
	[RD_RECV] = "recv", [RD_MMSG] = "recvmmsg", [RD_BATCH] = "batch",
	[RD_EPOLL] = "epoll", [RD_MIX] = "mix",
};

struct soak_conf {
	int family;
	int conns;		/* 1, 4, 16 */
	int readers;		/* 1, 2, 4 */
	int size;		/* frame bytes; 0: mixed */
	bool tiny;		/* tiny SO_RCVBUF on KCM and TCP sockets */
	int read;		/* enum soak_read */
	bool rcvtimeo;		/* SO_RCVTIMEO on the KCM sockets */
	bool nonblock;		/* senders: MSG_DONTWAIT and poll(POLLOUT) */
	bool pause;		/* readers pause now and then */
	int ms;			/* sending time */
	const struct ktls_suite *tls;	/* kTLS both ways, or NULL */
};

/* What a thread is doing, for the stall report. */
enum soak_state {
	ST_START, ST_BUILD, ST_SEND, ST_POLLOUT, ST_DONE,
	ST_RECV, ST_MMSG, ST_BATCH, ST_EPOLL, ST_DRAIN, ST_PAUSE, ST_ACCOUNT,
};

static const char *const state_names[] = {
	[ST_START] = "starting", [ST_BUILD] = "building messages",
	[ST_SEND] = "in send", [ST_POLLOUT] = "in poll for POLLOUT",
	[ST_DONE] = "done", [ST_RECV] = "in recvmsg",
	[ST_MMSG] = "in recvmmsg", [ST_BATCH] = "in recvmsg (batch)",
	[ST_EPOLL] = "in epoll_wait", [ST_DRAIN] = "in recv(MSG_DONTWAIT)",
	[ST_PAUSE] = "pausing", [ST_ACCOUNT] = "checking messages",
};

struct soak;

struct soak_conn {
	struct soak *s;
	int i;
	pthread_t th;
	uint64_t rng;
	atomic_ullong built;	/* sequence numbers handed out */
	unsigned long long sent_base;	/* the sender's: seq of its chunk */
	atomic_ullong sent;	/* messages whose bytes are all written */
	atomic_ullong bytes;	/* bytes written */
	atomic_ullong got;	/* messages received */
	atomic_ullong calls;	/* send calls */
	atomic_ullong again;	/* of which EAGAIN */
	atomic_int state;
	atomic_llong since;	/* state entered, ms */
	atomic_int done;
	_Atomic(uint64_t) *seen;
};

struct soak_reader {
	struct soak *s;
	int i;
	int mode;		/* enum soak_read, never RD_MIX */
	int fd;
	pthread_t th;
	uint64_t rng;
	atomic_int state;
	atomic_llong since;
	atomic_ullong calls, msgs, again, intr, pauses;
	atomic_int last_err;
	atomic_int done;
	uint32_t next[SOAK_MAX_CONNS];	/* this reader's next seq, at least */
};

struct soak {
	const struct soak_conf *cf;
	int kcm[SOAK_MAX_READERS];
	int peer[SOAK_MAX_CONNS], tcp[SOAK_MAX_CONNS];
	atomic_int stop_send, stop_read, bad;
	struct soak_conn conn[SOAK_MAX_CONNS];
	struct soak_reader rd[SOAK_MAX_READERS];
};

/* Totals of the soak_matrix long form (and of each short case). */
struct soak_result {
	unsigned long long msgs, bytes;
	long long ms;
};

static int max_msg(const struct soak_conf *cf)
{
	return cf->size ? cf->size : SOAK_MAX_MSG;
}

static void conf_str(const struct soak_conf *cf, char *out, size_t n)
{
	char size[16];

	if (cf->size)
		snprintf(size, sizeof(size), "%d", cf->size);
	else
		snprintf(size, sizeof(size), "mixed");
	snprintf(out, n,
		 "%s conns=%d readers=%d size=%s rcvbuf=%s read=%s rcvtimeo=%s send=%s pause=%s",
		 cf->family == AF_INET ? "v4" : "v6", cf->conns, cf->readers,
		 size, cf->tiny ? "tiny" : "default", read_names[cf->read],
		 cf->rcvtimeo ? "100ms" : "none",
		 cf->nonblock ? "nonblock" : "block", cf->pause ? "yes" : "no");
	if (cf->tls)
		snprintf(out + strlen(out), n - strlen(out), " ktls=%s",
			 cf->tls->name);
}

static void set_state(atomic_int *st, atomic_llong *since, int v)
{
	atomic_store(since, kcm_now_ms());
	atomic_store(st, v);
}

/* How long ago @since was; the two stores of set_state() race with us. */
static long long ago(long long now, atomic_llong *since)
{
	long long d = now - atomic_load(since);

	return d < 0 ? 0 : d;
}

/* The first failure is reported; the monitor then dumps state and fails. */
__attribute__((format(printf, 2, 3)))
static void soak_bad(struct soak *s, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (atomic_exchange(&s->bad, 1))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	kcm_diag("%s", buf);
}

/* ---- senders --------------------------------------------------------- */

/* A mixed size: mostly small, some up to 64 KiB. */
static size_t mixed_size(uint64_t *rng)
{
	uint32_t r = kcm_rand(rng) % 100;

	if (r < 60)
		return KCM_MSG_MIN + kcm_rand(rng) % 497;
	if (r < 85)
		return 513 + kcm_rand(rng) % 3584;
	if (r < 96)
		return 4097 + kcm_rand(rng) % 12288;
	return 16385 + kcm_rand(rng) % (SOAK_MAX_MSG - 16384);
}

/*
 * Writes a chunk of n messages (ends[i]: where message i ends), blocking
 * or polling for POLLOUT; a message counts as sent once its last byte is
 * written.
 */
static void send_chunk(struct soak_conn *c, const char *p, size_t len,
		       const uint32_t *ends, uint32_t n)
{
	struct soak *s = c->s;
	int fd = s->peer[c->i];
	size_t off = 0;
	uint32_t k = 0;

	while (off < len) {
		size_t piece = len - off;
		ssize_t w;

		/* Now and then a write ends inside a message. */
		if (kcm_rand(&c->rng) % 8 == 0)
			piece = 1 + kcm_rand(&c->rng) % piece;
		set_state(&c->state, &c->since, ST_SEND);
		w = send(fd, p + off, piece, MSG_NOSIGNAL |
			 (s->cf->nonblock ? MSG_DONTWAIT : 0));
		atomic_fetch_add(&c->calls, 1);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN && s->cf->nonblock) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };

			atomic_fetch_add(&c->again, 1);
			set_state(&c->state, &c->since, ST_POLLOUT);
			if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
				soak_bad(s, "conn %d: poll: %s", c->i,
					 kcm_errname(errno));
			continue;
		}
		if (w <= 0) {
			soak_bad(s, "conn %d: send: %zd (%s)", c->i, w,
				 kcm_errname(errno));
			return;
		}
		off += w;
		atomic_fetch_add(&c->bytes, w);
		while (k < n && ends[k] <= off)
			k++;
		atomic_store(&c->sent, c->sent_base + k);
	}
}

static void *soak_send(void *arg)
{
	struct soak_conn *c = arg;
	struct soak *s = c->s;
	char *buf = kcm_xmalloc(SOAK_CHUNK + SOAK_MAX_MSG);
	uint32_t *ends = kcm_xmalloc((SOAK_CHUNK / KCM_MSG_MIN + 1) *
				     sizeof(*ends));

	while (!atomic_load(&s->stop_send) && !atomic_load(&s->bad)) {
		size_t target = 1 + kcm_rand(&c->rng) % SOAK_CHUNK, off = 0;
		uint32_t seq = atomic_load(&c->built), n = 0;

		set_state(&c->state, &c->since, ST_BUILD);
		while (off < target && seq + n < SOAK_SEQ_MAX) {
			size_t sz = s->cf->size ? (size_t)s->cf->size :
						  mixed_size(&c->rng);

			kcm_msg_build(buf + off, sz, c->i, seq + n);
			off += sz;
			ends[n++] = off;
		}
		if (!n)
			break;	/* out of sequence numbers */
		c->sent_base = seq;
		atomic_store(&c->built, seq + n);
		send_chunk(c, buf, off, ends, n);
	}
	free(ends);
	free(buf);
	set_state(&c->state, &c->since, ST_DONE);
	atomic_store(&c->done, 1);
	return NULL;
}

/* ---- readers --------------------------------------------------------- */

static void account(struct soak_reader *r, const char *buf, size_t len)
{
	struct soak *s = r->s;
	uint32_t conn, seq;
	uint64_t bit, old;

	if (kcm_msg_check(buf, len, &conn, &seq)) {
		const unsigned char *b = (const unsigned char *)buf;

		soak_bad(s, "reader %d (%s): malformed message of %zu bytes: %02x%02x%02x%02x %02x%02x%02x%02x %02x%02x%02x%02x",
			 r->i, read_names[r->mode], len,
			 len > 0 ? b[0] : 0, len > 1 ? b[1] : 0,
			 len > 2 ? b[2] : 0, len > 3 ? b[3] : 0,
			 len > 4 ? b[4] : 0, len > 5 ? b[5] : 0,
			 len > 6 ? b[6] : 0, len > 7 ? b[7] : 0,
			 len > 8 ? b[8] : 0, len > 9 ? b[9] : 0,
			 len > 10 ? b[10] : 0, len > 11 ? b[11] : 0);
		return;
	}
	if (conn >= (uint32_t)s->cf->conns) {
		soak_bad(s, "reader %d: message of conn %u, seq %u: no such connection",
			 r->i, conn, seq);
		return;
	}
	if (seq >= atomic_load(&s->conn[conn].built)) {
		soak_bad(s, "reader %d: conn %u: seq %u never sent (%llu built)",
			 r->i, conn, seq,
			 (unsigned long long)atomic_load(&s->conn[conn].built));
		return;
	}
	if (seq < r->next[conn])
		soak_bad(s, "reader %d (%s): conn %u: seq %u after seq %u",
			 r->i, read_names[r->mode], conn, seq,
			 r->next[conn] - 1);
	r->next[conn] = seq + 1;
	bit = 1ull << (seq % 64);
	old = atomic_fetch_or(&s->conn[conn].seen[seq / 64], bit);
	if (old & bit)
		soak_bad(s, "reader %d (%s): conn %u: seq %u received twice",
			 r->i, read_names[r->mode], conn, seq);
	atomic_fetch_add(&s->conn[conn].got, 1);
	atomic_fetch_add(&r->msgs, 1);
}

/* A failed receive call: false if the reader should stop. */
static bool rd_error(struct soak_reader *r, const char *what)
{
	int e = errno;

	atomic_store(&r->last_err, e);
	if (e == EAGAIN) {
		atomic_fetch_add(&r->again, 1);
		return true;
	}
	if (e == EINTR) {
		atomic_fetch_add(&r->intr, 1);
		return true;
	}
	soak_bad(r->s, "reader %d: %s: %s", r->i, what, kcm_errname(e));
	return false;
}

/* One recvmsg of one message into buf; <0 on error, 0 if none. */
static int rd_one(struct soak_reader *r, char *buf, size_t cap, int flags)
{
	struct iovec iov = { buf, cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	n = recvmsg(r->fd, &mh, flags);
	atomic_fetch_add(&r->calls, 1);
	if (n < 0)
		return -1;
	if (mh.msg_flags & MSG_TRUNC) {
		soak_bad(r->s, "reader %d: MSG_TRUNC on a message of %zd bytes or more",
			 r->i, n);
		return 0;
	}
	set_state(&r->state, &r->since, ST_ACCOUNT);
	account(r, buf, n);
	return 1;
}

/* Splits what a KCM_RECV_BATCH recvmsg returned into its messages. */
static void rd_batch_split(struct soak_reader *r, const char *buf, size_t n)
{
	size_t off = 0;

	while (off < n) {
		uint32_t len;

		if (n - off < 4) {
			soak_bad(r->s, "reader %d: batch of %zu bytes ends with %zu stray bytes",
				 r->i, n, n - off);
			return;
		}
		memcpy(&len, buf + off, 4);
		if (len > n - off - 4) {
			soak_bad(r->s, "reader %d: batch of %zu bytes: message at %zu says %u bytes, %zu left",
				 r->i, n, off, len, n - off - 4);
			return;
		}
		account(r, buf + off + 4, len);
		off += 4 + len;
	}
}

static void maybe_pause(struct soak_reader *r, long long *next_pause)
{
	long long now;

	if (!r->s->cf->pause)
		return;
	now = kcm_now_ms();
	if (now < *next_pause)
		return;
	set_state(&r->state, &r->since, ST_PAUSE);
	atomic_fetch_add(&r->pauses, 1);
	kcm_msleep(20 + kcm_rand(&r->rng) % 280);
	*next_pause = kcm_now_ms() + 100 + kcm_rand(&r->rng) % 700;
}

static void *soak_read(void *arg)
{
	struct soak_reader *r = arg;
	struct soak *s = r->s;
	size_t cap = max_msg(s->cf) + 64;
	int vlen = 1, ep = -1, i;
	struct mmsghdr *mm = NULL;
	struct iovec *iov = NULL;
	long long next_pause = kcm_now_ms() + 100 + kcm_rand(&r->rng) % 700;
	char *buf;

	if (r->mode == RD_MMSG) {
		vlen = (1 << 20) / cap;
		if (vlen > 64)
			vlen = 64;
		mm = kcm_xmalloc(vlen * sizeof(*mm));
		iov = kcm_xmalloc(vlen * sizeof(*iov));
	}
	if (r->mode == RD_BATCH)
		cap = SOAK_BATCH_BUF;
	buf = kcm_xmalloc(cap * vlen);
	if (r->mode == RD_EPOLL) {
		struct epoll_event ev = { .events = EPOLLIN };

		ep = epoll_create1(0);
		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, r->fd, &ev) < 0)
			soak_bad(s, "reader %d: epoll: %s", r->i,
				 kcm_errname(errno));
	}

	while (!atomic_load(&s->stop_read) && !atomic_load(&s->bad)) {
		maybe_pause(r, &next_pause);
		switch (r->mode) {
		case RD_RECV:
			set_state(&r->state, &r->since, ST_RECV);
			if (rd_one(r, buf, cap, 0) < 0 && !rd_error(r, "recvmsg"))
				goto out;
			break;
		case RD_MMSG: {
			int n;

			for (i = 0; i < vlen; i++) {
				iov[i].iov_base = buf + (size_t)i * cap;
				iov[i].iov_len = cap;
				memset(&mm[i], 0, sizeof(mm[i]));
				mm[i].msg_hdr.msg_iov = &iov[i];
				mm[i].msg_hdr.msg_iovlen = 1;
			}
			set_state(&r->state, &r->since, ST_MMSG);
			n = recvmmsg(r->fd, mm, vlen, MSG_WAITFORONE, NULL);
			atomic_fetch_add(&r->calls, 1);
			if (n < 0) {
				if (!rd_error(r, "recvmmsg"))
					goto out;
				break;
			}
			set_state(&r->state, &r->since, ST_ACCOUNT);
			for (i = 0; i < n; i++) {
				if (mm[i].msg_hdr.msg_flags & MSG_TRUNC)
					soak_bad(s, "reader %d: recvmmsg: MSG_TRUNC", r->i);
				account(r, iov[i].iov_base, mm[i].msg_len);
			}
			break;
		}
		case RD_BATCH: {
			struct iovec v = { buf, cap };
			struct msghdr mh = { .msg_iov = &v, .msg_iovlen = 1 };
			ssize_t n;

			set_state(&r->state, &r->since, ST_BATCH);
			n = recvmsg(r->fd, &mh, 0);
			atomic_fetch_add(&r->calls, 1);
			if (n < 0) {
				if (!rd_error(r, "recvmsg (batch)"))
					goto out;
				break;
			}
			if (mh.msg_flags & MSG_TRUNC)
				soak_bad(s, "reader %d: batch: MSG_TRUNC", r->i);
			set_state(&r->state, &r->since, ST_ACCOUNT);
			rd_batch_split(r, buf, n);
			break;
		}
		case RD_EPOLL: {
			struct epoll_event ev;
			int n;

			set_state(&r->state, &r->since, ST_EPOLL);
			n = epoll_wait(ep, &ev, 1, s->cf->rcvtimeo ? 100 : -1);
			if (n < 0) {
				if (!rd_error(r, "epoll_wait"))
					goto out;
				break;
			}
			if (!n) {
				atomic_fetch_add(&r->again, 1);
				break;
			}
			for (i = 0; i < 256; i++) {
				int got;

				set_state(&r->state, &r->since, ST_DRAIN);
				got = rd_one(r, buf, cap, MSG_DONTWAIT);
				if (got < 0) {
					if (errno == EAGAIN)
						break;
					if (!rd_error(r, "recvmsg(MSG_DONTWAIT)"))
						goto out;
				}
			}
			break;
		}
		}
	}
out:
	if (ep >= 0)
		close(ep);
	free(buf);
	free(mm);
	free(iov);
	set_state(&r->state, &r->since, ST_DONE);
	atomic_store(&r->done, 1);
	return NULL;
}

/* ---- the stall report -------------------------------------------------- */

static void dump_tcp(const char *name, int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int inq = -1, outq = -1, rcvbuf = -1, sndbuf = -1;
	socklen_t il = sizeof(int), ml;
	__u32 mem[SK_MEMINFO_VARS];

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len)) {
		kcm_diag("  %s: TCP_INFO: %s", name, kcm_errname(errno));
		return;
	}
	ioctl(fd, SIOCINQ, &inq);
	ioctl(fd, SIOCOUTQ, &outq);
	getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &il);
	il = sizeof(int);
	getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &il);
	kcm_diag("  %s: state %u inq %d outq %d notsent %u unacked %u rcvbuf %d sndbuf %d",
		 name, ti.tcpi_state, inq, outq, ti.tcpi_notsent_bytes,
		 ti.tcpi_unacked, rcvbuf, sndbuf);
	ml = sizeof(mem);
	if (!getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &ml))
		kcm_diag("  %s: rmem_alloc %u rcvbuf %u wmem_alloc %u sndbuf %u fwd_alloc %u wmem_queued %u backlog %u drops %u",
			 name, mem[SK_MEMINFO_RMEM_ALLOC], mem[SK_MEMINFO_RCVBUF],
			 mem[SK_MEMINFO_WMEM_ALLOC], mem[SK_MEMINFO_SNDBUF],
			 mem[SK_MEMINFO_FWD_ALLOC], mem[SK_MEMINFO_WMEM_QUEUED],
			 mem[SK_MEMINFO_BACKLOG], mem[SK_MEMINFO_DROPS]);
	kcm_diag("  %s: snd_wnd %u rcv_space %u rcv_ssthresh %u snd_cwnd %u snd_mss %u rcv_mss %u",
		 name, ti.tcpi_snd_wnd, ti.tcpi_rcv_space, ti.tcpi_rcv_ssthresh,
		 ti.tcpi_snd_cwnd, ti.tcpi_snd_mss, ti.tcpi_rcv_mss);
	kcm_diag("  %s: probes %u backoff %u rto %u ms retransmits %u; limited by rwnd %llu us, sndbuf %llu us; last data sent %u ms ago, received %u ms ago",
		 name, ti.tcpi_probes, ti.tcpi_backoff, ti.tcpi_rto / 1000,
		 ti.tcpi_retransmits,
		 (unsigned long long)ti.tcpi_rwnd_limited,
		 (unsigned long long)ti.tcpi_sndbuf_limited,
		 ti.tcpi_last_data_sent, ti.tcpi_last_data_recv);
}

/*
 * The next record number of direction dir of a kTLS socket: how many
 * records it has encrypted (TLS_TX) or decrypted (TLS_RX) since it was
 * keyed with tag's first number.
 */
static void dump_tls(const char *name, int fd, int dir, uint8_t tag)
{
	struct tls12_crypto_info_aes_gcm_128 info;
	socklen_t len = sizeof(info);
	struct ktls_keys k;
	uint64_t seq = 0;
	int i;

	memset(&info, 0, sizeof(info));
	if (getsockopt(fd, SOL_TLS, dir, &info, &len)) {
		kcm_diag("  %s: %s: %s", name, dir == TLS_TX ? "TLS_TX" : "TLS_RX",
			 kcm_errname(errno));
		return;
	}
	for (i = 0; i < 8; i++)
		seq = seq << 8 | info.rec_seq[i];
	/* The suite does not change the first number: only the tag does. */
	ktls_keys_make(&tls12_gcm, tag, &k);
	kcm_diag("  %s: %s next record %llu: %llu records %s",
		 name, dir == TLS_TX ? "TLS_TX" : "TLS_RX",
		 (unsigned long long)seq, (unsigned long long)(seq - k.seq),
		 dir == TLS_TX ? "encrypted" : "decrypted");
}

/* /proc/net/tls_stat's counters that are not 0. */
static void dump_tls_stat(void)
{
	char *text = kcm_read_file("/proc/net/tls_stat"), *line, *save;

	if (!text) {
		kcm_diag("/proc/net/tls_stat: %s", kcm_errname(errno));
		return;
	}
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		const char *v = strrchr(line, ' ');

		if (v && strtoull(v + 1, NULL, 10))
			kcm_diag("  tls_stat: %s", line);
	}
	free(text);
}

/* The first bytes waiting in a TCP socket (peeked: nothing consumed). */
static void dump_head(const char *name, int fd)
{
	unsigned char b[16];
	char hex[3 * sizeof(b) + 1] = "";
	ssize_t n = recv(fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
	int i;

	if (n <= 0)
		return;
	for (i = 0; i < n; i++)
		snprintf(hex + 3 * i, 4, " %02x", b[i]);
	kcm_diag("  %s: first bytes waiting:%s", name, hex);
}

/* The first sequence number below @sent not received, or -1. */
static long long first_missing(struct soak_conn *c, unsigned long long sent)
{
	unsigned long long w;

	for (w = 0; w * 64 < sent; w++) {
		uint64_t v = atomic_load(&c->seen[w]);

		if (~v) {
			long long seq = w * 64 + __builtin_ctzll(~v);

			return (unsigned long long)seq < sent ? seq : -1;
		}
	}
	return -1;
}

/* The keys of connection i, one direction (0: peer -> attached end). */
static uint8_t tls_tag(int i, int reply)
{
	return (uint8_t)(2 * i + reply + 1);
}

static void dump_state(struct soak *s, const char *why)
{
	long long now = kcm_now_ms();
	char conf[256];
	int i;

	conf_str(s->cf, conf, sizeof(conf));
	kcm_diag("%s; run: %s", why, conf);
	for (i = 0; i < s->cf->conns; i++) {
		struct soak_conn *c = &s->conn[i];
		unsigned long long sent = atomic_load(&c->sent);
		char name[32];

		kcm_diag("conn %d: built %llu sent %llu got %llu bytes %llu, first seq not received %lld; sender %s for %lld ms (%llu sends, %llu EAGAIN)",
			 i, (unsigned long long)atomic_load(&c->built), sent,
			 (unsigned long long)atomic_load(&c->got),
			 (unsigned long long)atomic_load(&c->bytes),
			 first_missing(c, atomic_load(&c->built)), state_names[atomic_load(&c->state)],
			 ago(now, &c->since),
			 (unsigned long long)atomic_load(&c->calls),
			 (unsigned long long)atomic_load(&c->again));
		snprintf(name, sizeof(name), "conn %d attached", i);
		dump_tcp(name, s->tcp[i]);
		/* Over kTLS, bytes would be peeked through it: not done. */
		if (!s->cf->tls)
			dump_head(name, s->tcp[i]);
		else
			dump_tls(name, s->tcp[i], TLS_RX, tls_tag(i, 0));
		snprintf(name, sizeof(name), "conn %d peer", i);
		dump_tcp(name, s->peer[i]);
		if (s->cf->tls)
			dump_tls(name, s->peer[i], TLS_TX, tls_tag(i, 0));
	}
	if (s->cf->tls)
		dump_tls_stat();
	for (i = 0; i < s->cf->readers; i++) {
		struct soak_reader *r = &s->rd[i];

		kcm_diag("reader %d (%s, fd %d): %s for %lld ms; %llu calls, %llu messages, %llu EAGAIN, %llu EINTR, %llu pauses, last errno %s",
			 i, read_names[r->mode], r->fd,
			 state_names[atomic_load(&r->state)],
			 ago(now, &r->since),
			 (unsigned long long)atomic_load(&r->calls),
			 (unsigned long long)atomic_load(&r->msgs),
			 (unsigned long long)atomic_load(&r->again),
			 (unsigned long long)atomic_load(&r->intr),
			 (unsigned long long)atomic_load(&r->pauses),
			 kcm_errname(atomic_load(&r->last_err)));
	}
	kcm_dump_proc("the mux");
}

/* ---- a run ------------------------------------------------------------ */

static void on_usr1(int sig)
{
	(void)sig;
}

static unsigned long long total(struct soak *s, int what)
{
	unsigned long long t = 0;
	int i;

	for (i = 0; i < s->cf->conns; i++)
		t += atomic_load(what == 0 ? &s->conn[i].sent :
				 what == 1 ? &s->conn[i].got :
				 &s->conn[i].bytes);
	return t;
}

static bool senders_done(struct soak *s)
{
	int i;

	for (i = 0; i < s->cf->conns; i++)
		if (!atomic_load(&s->conn[i].done))
			return false;
	return true;
}

/* Stops the readers: blocked ones (no SO_RCVTIMEO) are woken by EINTR. */
static void stop_readers(struct soak *s)
{
	long long give_up = kcm_now_ms() + 5000;
	int i;

	atomic_store(&s->stop_read, 1);
	for (i = 0; i < s->cf->readers; i++) {
		while (!atomic_load(&s->rd[i].done)) {
			if (kcm_now_ms() > give_up) {
				dump_state(s, "a reader does not return");
				KCM_FAIL("reader %d still %s 5 s after the stop",
					 i, state_names[atomic_load(&s->rd[i].state)]);
			}
			pthread_kill(s->rd[i].th, SIGUSR1);
			kcm_msleep(5);
		}
		pthread_join(s->rd[i].th, NULL);
	}
}

static void soak_run(const struct soak_conf *cf, uint64_t *rng,
		     struct soak_result *res)
{
	struct sigaction sa = { .sa_handler = on_usr1 };	/* no SA_RESTART */
	struct soak *s = calloc(1, sizeof(*s));
	unsigned long long last_got = 0, last_bytes = 0, got, bytes;
	long long start, end, moved;
	int prog, i, tcp_rcvbuf;
	char *buf;

	ASSERT_TRUE(s);
	ASSERT_OK(sigaction(SIGUSR1, &sa, NULL));
	s->cf = cf;
	prog = kcm_prog_len32();
	s->kcm[0] = kcm_socket(SOCK_DGRAM);
	for (i = 1; i < cf->readers; i++)
		ASSERT_OK(s->kcm[i] = kcm_clone(s->kcm[0]));
	/* A tiny TCP receive buffer still holds the largest message. */
	tcp_rcvbuf = max_msg(cf) > 4096 ? max_msg(cf) : 4096;
	for (i = 0; i < cf->conns; i++) {
		struct soak_conn *c = &s->conn[i];

		kcm_tcp_pair(cf->family, &s->peer[i], &s->tcp[i]);
		if (cf->tls) {
			/* Both ways: the soak's messages go peer -> attached
			 * end; the other direction is keyed as well, so that
			 * the attached socket is a whole kTLS socket.
			 */
			ktls_key(s->peer[i], TLS_TX, cf->tls, tls_tag(i, 0));
			ktls_key(s->tcp[i], TLS_RX, cf->tls, tls_tag(i, 0));
			ktls_key(s->tcp[i], TLS_TX, cf->tls, tls_tag(i, 1));
			ktls_key(s->peer[i], TLS_RX, cf->tls, tls_tag(i, 1));
		}
		if (cf->tiny) {
			kcm_set_int_opt(s->tcp[i], SOL_SOCKET, SO_RCVBUF,
					tcp_rcvbuf);
			kcm_set_int_opt(s->peer[i], SOL_SOCKET, SO_SNDBUF,
					SOAK_TINY_SNDBUF);
		}
		ASSERT_OK(kcm_attach(s->kcm[0], s->tcp[i], prog));
		c->s = s;
		c->i = i;
		c->rng = ((uint64_t)kcm_rand(rng) << 32) | kcm_rand(rng) | 1;
		ASSERT_TRUE(c->seen = calloc(SOAK_SEQ_MAX / 64, sizeof(*c->seen)));
	}
	for (i = 0; i < cf->readers; i++) {
		struct soak_reader *r = &s->rd[i];
		static const int mix[] = { RD_RECV, RD_MMSG, RD_EPOLL, RD_BATCH };

		r->s = s;
		r->i = i;
		r->fd = s->kcm[i];
		r->mode = cf->read;
		if (cf->read == RD_MIX)
			/* Linux's kcm.ko has no KCM_RECV_BATCH. */
			r->mode = mix[i % (kcm_lane_is_linux() ? 3 : 4)];
		r->rng = ((uint64_t)kcm_rand(rng) << 32) | kcm_rand(rng) | 1;
		if (cf->tiny)
			kcm_set_int_opt(r->fd, SOL_SOCKET, SO_RCVBUF,
					SOAK_TINY_KCM_RCVBUF);
		if (cf->rcvtimeo)
			kcm_set_rcvtimeo(r->fd, 100);
		if (r->mode == RD_BATCH)
			kcm_set_int_opt(r->fd, SOL_KCM, KCM_RECV_BATCH, 1);
		if (r->mode == RD_EPOLL)
			kcm_set_nonblock(r->fd, 1);
	}

	for (i = 0; i < cf->readers; i++)
		ASSERT_EQ(pthread_create(&s->rd[i].th, NULL, soak_read, &s->rd[i]), 0);
	for (i = 0; i < cf->conns; i++)
		ASSERT_EQ(pthread_create(&s->conn[i].th, NULL, soak_send, &s->conn[i]), 0);

	start = kcm_now_ms();
	end = start + cf->ms;
	moved = start;
	for (;;) {
		long long now = kcm_now_ms();

		if (now >= end)
			atomic_store(&s->stop_send, 1);
		got = total(s, 1);
		bytes = total(s, 2);
		if (got != last_got || bytes != last_bytes) {
			last_got = got;
			last_bytes = bytes;
			moved = now;
		}
		if (atomic_load(&s->bad)) {
			dump_state(s, "a message was lost, repeated, misordered or damaged");
			KCM_FAIL("bad message");
		}
		if (now >= end && senders_done(s) && got == total(s, 0))
			break;
		if (now - moved > SOAK_STALL_MS) {
			kcm_diag("no message received and no byte written for %d s: received %llu, written %llu (counted as send() returns)%s",
				 SOAK_STALL_MS / 1000, got, total(s, 0),
				 now >= end ? " (after the stop)" : "");
			dump_state(s, "stall");
			KCM_FAIL("stalled");
		}
		kcm_msleep(20);
	}
	for (i = 0; i < cf->conns; i++)
		pthread_join(s->conn[i].th, NULL);
	stop_readers(s);
	ASSERT_EQ(atomic_load(&s->bad), 0);

	/* Received once each, as many as written, and nothing more. */
	for (i = 0; i < cf->conns; i++) {
		struct soak_conn *c = &s->conn[i];
		unsigned long long sent = atomic_load(&c->sent);

		ASSERT_EQ(atomic_load(&c->built), sent);
		ASSERT_EQ(atomic_load(&c->got), sent);
		if (first_missing(c, sent) >= 0)
			KCM_FAIL("conn %d: seq %lld missing", i,
				 first_missing(c, sent));
	}
	buf = kcm_xmalloc(SOAK_BATCH_BUF);
	for (i = 0; i < cf->readers; i++) {
		ssize_t n = recv(s->kcm[i], buf, SOAK_BATCH_BUF, MSG_DONTWAIT);

		if (n >= 0 || errno != EAGAIN) {
			dump_state(s, "left over");
			KCM_FAIL("KCM socket %d: recv after the end: %zd (%s)",
				 i, n, kcm_errname(errno));
		}
	}
	free(buf);

	res->msgs += got;
	res->bytes += bytes;
	res->ms += kcm_now_ms() - start;
	for (i = 0; i < cf->conns; i++) {
		close(s->peer[i]);
		close(s->tcp[i]);
		free(s->conn[i].seen);
	}
	for (i = 0; i < cf->readers; i++)
		close(s->kcm[i]);
	close(prog);
	free(s);
}

/* ---- short form --------------------------------------------------------- */

static void soak_one(struct soak_conf cf)
{
	struct soak_result res = { 0 };
	uint64_t rng = kcm_seed();
	char conf[256];

	if (!cf.ms)
		cf.ms = 2500;
	conf_str(&cf, conf, sizeof(conf));
	kcm_diag("%s", conf);
	soak_run(&cf, &rng, &res);
	kcm_diag("%llu messages, %llu bytes in %lld ms", res.msgs, res.bytes,
		 res.ms);
	ASSERT_GT(res.msgs, 0);
}

/*
 * The short form.  A stall fails a case after 10 s without progress (see
 * soak_run()); the case's own time limit only guards against a hang: on
 * the debug kernel, draining what 16 non-blocking senders wrote in 2.5 s
 * took more than a minute.
 *
 * What Linux's kcm.ko did in these cases (KCM_RUN_ALL=1; 6.1 and 6.12).
 * Its stalls depend on timing: soak_c1_r1_64_recv_block once ran clean on
 * 6.12 (2026-12-07), so they are races, not sure failures.
 */
#define STALLS "stalls: a few hundred messages, then nothing for 10 s"
#define MISFRAMES "misframes mixed sizes (a message whose length is not its prefix's)"

KCM_TEST(soak_c1_r1_64_recv_block, KCM_TIMEOUT(300), KCM_LINUX_RACE(STALLS))
{
	soak_one((struct soak_conf){ .family = AF_INET, .conns = 1,
		 .readers = 1, .size = 64, .read = RD_RECV });
}

KCM_TEST(soak_c4_r2_512_mmsg_tiny_nonblock_pause, KCM_TIMEOUT(300), KCM_LINUX_RACE(STALLS))
{
	soak_one((struct soak_conf){ .family = AF_INET6, .conns = 4,
		 .readers = 2, .size = 512, .tiny = true, .read = RD_MMSG,
		 .rcvtimeo = true, .nonblock = true, .pause = true });
}

KCM_TEST(soak_c16_r4_4096_epoll_nonblock_pause, KCM_TIMEOUT(300), KCM_LINUX_RACE(STALLS))
{
	soak_one((struct soak_conf){ .family = AF_INET, .conns = 16,
		 .readers = 4, .size = 4096, .read = RD_EPOLL,
		 .nonblock = true, .pause = true });
}

/*
 * Default buffers, many small messages on many connections: found by the
 * long form (matrix 905 and 1178) on 6.1, where every run of it stalled.
 */
KCM_TEST(soak_c16_r4_64_epoll_nonblock, KCM_TIMEOUT(300), KCM_LINUX_RACE(STALLS))
{
	soak_one((struct soak_conf){ .family = AF_INET, .conns = 16,
		 .readers = 4, .size = 64, .read = RD_EPOLL,
		 .nonblock = true });
}

KCM_TEST(soak_c4_r4_64k_recv_tiny_timeo, KCM_TIMEOUT(300), KCM_LINUX_RACE(STALLS))
{
	soak_one((struct soak_conf){ .family = AF_INET, .conns = 4,
		 .readers = 4, .size = 65536, .tiny = true, .read = RD_RECV,
		 .rcvtimeo = true });
}

KCM_TEST(soak_c16_r2_mixed_mmsg_tiny_pause, KCM_TIMEOUT(300), KCM_LINUX_BUG(MISFRAMES))
{
	soak_one((struct soak_conf){ .family = AF_INET6, .conns = 16,
		 .readers = 2, .size = 0, .tiny = true, .read = RD_MMSG,
		 .pause = true });
}

KCM_TEST(soak_c4_r2_mixed_batch_timeo_nonblock, KCM_TIMEOUT(300), KCM_EXT)
{
	soak_one((struct soak_conf){ .family = AF_INET, .conns = 4,
		 .readers = 2, .size = 0, .read = RD_BATCH, .rcvtimeo = true,
		 .nonblock = true });
}

KCM_TEST(soak_c16_r4_64_batch_tiny_pause, KCM_TIMEOUT(300), KCM_EXT)
{
	soak_one((struct soak_conf){ .family = AF_INET, .conns = 16,
		 .readers = 4, .size = 64, .tiny = true, .read = RD_BATCH,
		 .pause = true });
}

KCM_TEST(soak_c1_r4_mixed_mix_tiny_nonblock_pause, KCM_TIMEOUT(300), KCM_EXT)
{
	soak_one((struct soak_conf){ .family = AF_INET6, .conns = 1,
		 .readers = 4, .size = 0, .tiny = true, .read = RD_MIX,
		 .rcvtimeo = true, .nonblock = true, .pause = true });
}

/*
 * Over kTLS, both ways (issue 20): the messages framed from the plaintext
 * kTLS decrypts, records cut anywhere in a message (a sender's write ends
 * inside one now and then, and a record is what one write gave kTLS).
 * Linux's kcm.ko parses TCP's queue under kTLS, not kTLS's plaintext
 * (kcm_ktls's rx cases).  On 6.12 its first messages were of 4 bytes, a
 * length without its message, and each case failed on them at once; on
 * 6.1 nothing arrived and each stalled (the report: the peers' TLS_TX had
 * encrypted records, the attached ends' TLS_RX decrypted none), 10 s each.
 */
#define KTLS_RX_BUG KCM_LINUX_BUG("parses the ciphertext in TCP's queue: damaged messages (6.12) or none and a stall (6.1)")

KCM_TEST(soak_tls13_c4_r2_mixed_mmsg_tiny_pause, KCM_TIMEOUT(300), KTLS_RX_BUG)
{
	soak_one((struct soak_conf){ .family = AF_INET6, .conns = 4,
		 .readers = 2, .size = 0, .tiny = true, .read = RD_MMSG,
		 .pause = true, .tls = &tls13_gcm });
}

KCM_TEST(soak_tls12_c16_r4_64_epoll_nonblock, KCM_TIMEOUT(300), KTLS_RX_BUG)
{
	soak_one((struct soak_conf){ .family = AF_INET, .conns = 16,
		 .readers = 4, .size = 64, .read = RD_EPOLL,
		 .nonblock = true, .tls = &tls12_gcm });
}

KCM_TEST(soak_tls13_c4_r4_64k_mix_tiny_timeo, KCM_TIMEOUT(300), KTLS_RX_BUG)
{
	soak_one((struct soak_conf){ .family = AF_INET, .conns = 4,
		 .readers = 4, .size = 65536, .tiny = true, .read = RD_MIX,
		 .rcvtimeo = true, .tls = &tls13_gcm });
}

/* ---- long form ------------------------------------------------------------ */

static const int m_conns[] = { 1, 4, 16 };
static const int m_readers[] = { 1, 2, 4 };
static const int m_sizes[] = { 64, 512, 4096, 65536, 0 };
#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))
/*
 * conns x readers x sizes x rcvbuf x read x rcvtimeo x send x pause x
 * kTLS: kTLS last, so that the numbers below MATRIX / 2 stay those of the
 * plain configurations they were before it (KCM_SOAK_MATRIX replays).
 */
#define MATRIX (NELEM(m_conns) * NELEM(m_readers) * NELEM(m_sizes) * 2 * \
		RD_NMODES * 2 * 2 * 2 * 2)

static void conf_of(int idx, struct soak_conf *cf)
{
	memset(cf, 0, sizeof(*cf));
	cf->conns = m_conns[idx % NELEM(m_conns)];
	idx /= NELEM(m_conns);
	cf->readers = m_readers[idx % NELEM(m_readers)];
	idx /= NELEM(m_readers);
	cf->size = m_sizes[idx % NELEM(m_sizes)];
	idx /= NELEM(m_sizes);
	cf->tiny = idx % 2;
	idx /= 2;
	cf->read = idx % RD_NMODES;
	idx /= RD_NMODES;
	cf->rcvtimeo = idx % 2;
	idx /= 2;
	cf->nonblock = idx % 2;
	idx /= 2;
	cf->pause = idx % 2;
	idx /= 2;
	/* soak_matrix alternates TLS 1.2 and 1.3. */
	cf->tls = idx % 2 ? &tls13_gcm : NULL;
}

static int soak_secs(void)
{
	const char *v = getenv("KCM_SOAK_SECS");

	return v ? atoi(v) : 0;
}

/*
 * The long form: KCM_SOAK_SECS of seeded configurations.  Without it (make
 * check), 5 s of them: a few configurations the short cases do not fix,
 * and this code run too, rather than a skip.
 */
KCM_TEST(soak_matrix, KCM_TIMEOUT(300), KCM_LINUX_RACE(STALLS))
{
	int secs = soak_secs(), run_ms = 1500, n = 0, i, runs = 0, cycles = 0;
	const char *v = getenv("KCM_SOAK_RUN_MS");
	struct soak_result res = { 0 };
	long long start = kcm_now_ms(), stop;
	static int order[MATRIX];
	static bool covered[MATRIX];
	int ncovered = 0, nconf;
	uint64_t rng;

	if (secs <= 0)
		secs = 5;
	if (v && atoi(v) > 0)
		run_ms = atoi(v);
	rng = kcm_seed();
	stop = start + secs * 1000LL;
	nconf = MATRIX;
	for (i = 0; i < MATRIX; i++)
		order[i] = i;
	v = getenv("KCM_SOAK_MATRIX");
	if (v && *v) {
		char *list = strdup(v), *tok, *save;

		nconf = 0;
		for (tok = strtok_r(list, ", ", &save); tok;
		     tok = strtok_r(NULL, ", ", &save)) {
			int idx = atoi(tok);

			if (idx < 0 || idx >= MATRIX)
				KCM_FAIL("KCM_SOAK_MATRIX: %d is not in 0..%d", idx,
					 MATRIX - 1);
			order[nconf++] = idx;
		}
		free(list);
		if (!nconf)
			KCM_FAIL("KCM_SOAK_MATRIX: no configuration in '%s'", v);
		kcm_diag("only %d configuration(s) of the matrix: %s", nconf, v);
	}
	while (kcm_now_ms() + run_ms < stop) {
		struct soak_conf cf;
		char conf[256];
		unsigned long long before = res.msgs;
		int idx;

		if (n == 0) {
			/* A new seeded order of the whole matrix. */
			for (i = nconf - 1; i > 0; i--) {
				int j = kcm_rand(&rng) % (i + 1), t = order[i];

				order[i] = order[j];
				order[j] = t;
			}
			cycles++;
		}
		idx = order[n];
		conf_of(idx, &cf);
		cf.family = runs % 2 ? AF_INET6 : AF_INET;
		cf.ms = run_ms;
		n = (n + 1) % nconf;
		if (kcm_lane_is_linux() && cf.read == RD_BATCH)
			continue;	/* no KCM_RECV_BATCH there */
		/* Linux's kcm.ko parses kTLS's ciphertext (the soak_tls*
		 * cases).
		 */
		if (kcm_lane_is_linux() && cf.tls)
			continue;
		if (cf.tls && runs / 2 % 2)
			cf.tls = &tls12_gcm;
		conf_str(&cf, conf, sizeof(conf));
		kcm_diag("run %d (matrix %d): %s", runs, idx, conf);
		soak_run(&cf, &rng, &res);
		kcm_diag("run %d: %llu messages", runs, res.msgs - before);
		if (!covered[idx]) {
			covered[idx] = true;
			ncovered++;
		}
		runs++;
	}
	kcm_diag("soak: %d runs, %d of %d configurations (%d pass(es) over them), %llu messages, %llu bytes, %lld s",
		 runs, ncovered, MATRIX, cycles, res.msgs, res.bytes,
		 (kcm_now_ms() - start) / 1000);
	ASSERT_GT(runs, 0);
}

/* The long form's time limit follows KCM_SOAK_SECS. */
__attribute__((constructor)) static void soak_matrix_timeout(void)
{
	int secs = soak_secs();

	if (secs > 0)
		kcm_case_soak_matrix.timeout = secs + 120;
}
