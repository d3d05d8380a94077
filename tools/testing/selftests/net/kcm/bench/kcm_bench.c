// SPDX-License-Identifier: GPL-2.0
/*
 * kcm_bench: message-rate benchmark of AF_KCM against user-space framing.
 *
 * Messages on the wire are a 4-byte big-endian payload length followed by
 * the payload.  C client connections over loopback TCP talk to a server
 * with T worker threads, in one of five variants:
 *
 *   kcm   one multiplexor, T KCM sockets (the first plus clones), one
 *         thread per socket calling recvmmsg(); every server-side TCP
 *         socket is attached with a BPF program that reads the prefix.
 *   user  T threads, each with an epoll set over its share of the
 *         connections, reading into a per-connection buffer and cutting
 *         messages at the length prefix (partial messages carry over).
 *   usero T threads sharing one epoll set over all the connections, each
 *         registered EPOLLONESHOT: any thread reads any connection, cuts
 *         the whole messages of its read out, re-arms the connection (so
 *         another thread can read on while it works) and serves them;
 *         replies on one connection are written under its lock.  The
 *         best user-space design for rpc (requests of a connection may be
 *         answered out of order; the clients check them so).
 *   tcp   as user, but no message is cut out: the bytes are verified as
 *         they arrive, through a state per connection, and counted (or
 *         echoed as they came).
 *   kcmd  as kcm, with KCM_RECV_ORIGIN on: echo replies go back on the
 *         connection each request came from (KCM_ORIGIN), and each client
 *         checks that every reply is its own (our extension only).
 *   kcmb  as kcm, with KCM_RECV_BATCH on (stream only, our extension): a
 *         recvmsg returns as many whole messages as fit, each behind a
 *         host-order __u32 length.  recvmmsg gets BATCH_VLEN = 4 buffers
 *         of BATCH_BUF = 256 KiB (more than the default receive buffer,
 *         net.core.rmem_default = 208 KiB, so one call can take all that
 *         is queued) instead of RECV_VLEN of MAX_MSG: the same 1 MiB per
 *         thread, but up to thousands of small messages per call.  Every
 *         buffer must be whole messages back to back (MSG_TRUNC or a
 *         partial leftover is lost framing: status misframed).
 *   kcml, kcmbl, kcmld  as kcm, kcmb and kcmd, framed by SIOCKCMATTACHLEN
 *         (the module reads the length prefix itself) instead of a
 *         program; skipped on a module without it.
 *
 * Workloads:
 *
 *   stream  every client sends as fast as it can for the duration, then
 *           stops at a message boundary; the server drains what is left.
 *   echo    closed loop with C requests in flight: a client that receives
 *           a reply sends its next request.  Requests carry their send
 *           time, so a round trip is measured even if a reply comes back
 *           on another connection (a KCM socket sends on whichever attached
 *           connection it picks).  Reports requests/s and p50/p99/p99.9 of
 *           the round trips that end in the measured interval (with -e,
 *           below, it starts after the first round).
 *   rpc     echo with RPC_DEPTH (16) requests in flight per connection,
 *           one in RPC_SLOW_EVERY (100) of which the server sleeps 1 ms
 *           on: the case KCM exists for, few connections and many server
 *           threads (not for tcp, which does not cut messages).  A KCM
 *           server thread reads one request per call and, before a slow
 *           one, sets KCM_RECV_DISABLE on its socket (as kcm.rst advises)
 *           so that what was queued for it goes to the other threads.
 *
 * Size 0 means mixed sizes, drawn log-uniformly from 16 B to 64 KiB.
 *
 * Clients: a thread per connection (C up to MAX_CONNS), or with -e N
 * (echo, rpc; C up to MAX_EPOLL_CONNS) N threads, each driving its block
 * of C/N connections with one epoll set: every connection is still a
 * client of its own, with its sequence numbers and its requests in flight
 * (one; rpc: RPC_DEPTH), and its replies are checked as a thread's are.
 * The program raises RLIMIT_NOFILE to what C connections need.
 *
 * -k keys every connection with kTLS both ways (TLS 1.3, AES-GCM-128, fixed
 * keys, no handshake) before anything is sent: KCM over kTLS (issue 20)
 * against user-space framing over the same kTLS sockets.  The variant is
 * reported with "+tls".
 *
 * Every variant checks the data, and does the same work for it.  A payload
 * starts with a checksum of the rest of it, the number of the client that
 * sent it and the client's sequence number (echo: and the send time); the
 * rest is filler.  Every receiver (the servers; in echo the clients too)
 * verifies each message: its length (the one sent with that sequence
 * number), its checksum (over the whole payload: a corrupt byte anywhere
 * is caught), its sender.  The receivers that account for the messages
 * (stream: the server; echo: the clients, for the replies) check the order
 * promised: on one TCP connection (user, tcp, and kcmd's replies) exactly
 * in sequence; a KCM reader in increasing sequence per sender (the other
 * readers get the rest); kcm echo replies in any order.  Each keeps a bit
 * per sender and sequence number; at the end of the run the bits of all
 * must show every message (request) of every client received (answered)
 * exactly once.  The tcp server verifies the bytes as they come, without
 * cutting messages out.
 *
 * One line per run on stdout:
 *   KCMBENCH workload=W variant=V size=S conns=C threads=T status=S key=value...
 * (with -e, client_threads=N after threads=)
 * where status is ok, misframed (the server got messages whose length
 * disagrees with their prefix: framing was lost), corrupt (a message
 * failed its verification: checksum, length, sender, order, duplicate),
 * stalled, mismatch (some message was never received, or one received
 * was never sent), error, or skipped (kcmb on a module without
 * KCM_RECV_BATCH).  A run in which nothing moves for the stall timeout
 * (default 3 s), or whose drain after the stop takes longer than that,
 * ends with status=stalled (stall=noprogress or stall=drain) instead of
 * hanging.  A run that is not ok then prints, as "# " lines, its first
 * violations (where, which sender and sequence number, what was wrong),
 * every sender whose count is off (with the first missing sequence
 * numbers), the state of every connection (messages outstanding, bytes
 * queued in TCP on both ends) and, on KCM, /proc/net/kcm{,_stats}; the
 * line's first= is the first problem.  Of more than MAX_REPORTED_CONNS
 * connections, only the first MAX_REPORTED_CONNS senders that are off and
 * connections that hold something are printed.  Exit status: 0 ok or skipped, 1
 * any other status, 2 error.
 *
 * KCM_BENCH_PERF_CTL=CTL_FIFO,ACK_FIFO (scripts/bench/vm-profile.sh): the
 * fifos of a `perf record --control` that started with its events
 * disabled; the run enables them for its measured interval only, not
 * while it sets up or closes its connections.
 *
 * KCM_BENCH_PIN=1 (make profile's PROFILE_PIN=1) pins server thread i and
 * client thread i to CPU i modulo the CPUs online, in every variant: where
 * the scheduler puts the threads then no longer differs between them.
 *
 * KCM_BENCH_INJECT=corrupt|drop|dup|stall[:SEQ] (the bench's self-test,
 * selftest.sh) makes client 0 send its message SEQ (default 10) wrong: one
 * byte flipped after the checksum was computed, not at all, twice, or
 * half of it and then nothing more; the run must then fail.
 *
 * Usage: kcm_bench -w stream|echo|rpc
 *                  -v kcm|user|tcp|kcmd|kcmb|kcml|kcmbl|kcmld|usero
 *                  -s SIZE -c C -t T [-e CLIENT_THREADS]
 *                  [-d SECONDS] [-g STALL_SECONDS] [-r REP] [-k]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include <linux/tls.h>
#include <linux/sockios.h>
#include <linux/kcm.h>

#ifndef AF_KCM
#define AF_KCM 41
#endif

#define HDR		4
#define MIN_MIXED	16
#define MAX_PAYLOAD	65536
#define MAX_MSG		(MAX_PAYLOAD + HDR)
#define STREAM_BATCH	65536		/* bytes of fixed-size messages per batch */
#define MIXED_BATCH	(1 << 20)	/* bytes of mixed-size messages per batch */
#define RECV_VLEN	16		/* recvmmsg batch */
#define BATCH_VLEN	4		/* kcmb: recvmmsg batch */
#define BATCH_BUF	(256 * 1024)	/* kcmb: bytes per recvmsg */
#define CONN_BUF	(4 * MAX_MSG)	/* user variant per-connection buffer */
#define MAX_CONNS	64		/* with a client thread each */
#define MAX_EPOLL_CONNS	20000		/* -e: with epoll-driven clients */
#define MAX_THREADS	16

/*
 * The payload header, 64-bit words in host byte order: checksum, sender
 * and sequence number; echo requests add their send time.  Filler follows.
 */
#define PH_SUM		0		/* checksum */
#define PH_ID		8		/* client number | its sequence number << 32 */
#define PH_TIME		16		/* echo: send time, ns */
#define PH_STREAM	16		/* header bytes: stream */
#define PH_ECHO		24		/* header bytes: echo */
#define MAX_REPORTED	8		/* violations printed */
#define MAX_REPORTED_CONNS 64		/* senders, connections printed */
#define MAX_PROC_LINES	256		/* lines of a /proc/net/kcm* file printed */

enum workload { W_STREAM, W_ECHO, W_RPC };
enum variant { V_KCM, V_USER, V_TCP, V_KCMD, V_KCMB, V_KCML, V_KCMBL,
	       V_USERO, V_KCMLD };
enum inject { INJ_NONE, INJ_CORRUPT, INJ_DROP, INJ_DUP, INJ_STALL };

static const char *const wl_name[] = { "stream", "echo", "rpc" };
static const char *const var_name[] = { "kcm", "user", "tcp", "kcmd", "kcmb",
				       "kcml", "kcmbl", "usero", "kcmld" };
static const char *const inject_name[] = { "", "corrupt", "drop", "dup", "stall" };

/* ---- configuration and shared state ------------------------------------- */

static enum workload wl = W_STREAM;
static enum variant var = V_KCM;
static int msg_size = 64;		/* payload bytes; 0 = mixed */
static int nconns = 1;
static int nthreads = 1;
static int cli_threads;			/* client threads: one per connection, */
static int cli_epoll;			/* ... or -e's, each driving many */
static double duration = 1.0;
static double stall_secs = 3.0;
static int rep = 1;
static int use_ktls;			/* -k: every connection through kTLS */
static uint32_t ph = PH_STREAM;		/* payload header bytes */
static enum inject inject;		/* KCM_BENCH_INJECT: what goes wrong */
static uint32_t inject_seq = 10;	/* ... with client 0's message of this seq */

static volatile int stop_send;		/* clients: send no new messages */
static volatile int abort_run;		/* everyone: give up now */
static volatile int server_quit;	/* server threads: exit */
static volatile double drain_deadline;	/* after the stop: give up at this time */
static const char *stall_why = "";	/* noprogress or drain */

/* Totals, updated with __atomic builtins. */
static uint64_t srv_msgs, srv_bytes, srv_badframes;
static uint64_t cli_msgs, cli_bytes;	/* stream: sent; echo: requests sent */
static uint64_t echo_replies, echo_reply_bytes, echo_badreplies;
static uint64_t echo_replies_at_start, echo_replies_at_stop;
static volatile int measuring;		/* echo: round trips are recorded */
static uint64_t echo_quiet;		/* clients that saw stop_send */

/*
 * Per connection, allocated for nconns: messages (echo: requests) sent by
 * its client, written by that client only; user, tcp: bytes of an
 * incomplete message the server holds.
 */
static uint64_t *cli_sent;
static uint64_t *srv_partial;

static int *client_fd;
static int *server_fd;
static int kcm_fd[MAX_THREADS];
static int bpf_fd = -1;

/* echo: round-trip times, one buffer per client thread. */
struct lat_buf {
	uint64_t *v;
	size_t n, cap;
};
static struct lat_buf *lat;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void add(uint64_t *p, uint64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

static uint64_t get(uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static int uses_kcm(void)
{
	return var != V_USER && var != V_TCP && var != V_USERO;
}

/* kcmb, kcmbl: KCM_RECV_BATCH. */
static int batched(void)
{
	return var == V_KCMB || var == V_KCMBL;
}

/* kcml, kcmbl, kcmld: framed by SIOCKCMATTACHLEN, no program. */
static int len_framed(void)
{
	return var == V_KCML || var == V_KCMBL || var == V_KCMLD;
}

/* kcmd, kcmld: replies on the request's connection (KCM_ORIGIN). */
static int directed(void)
{
	return var == V_KCMD || var == V_KCMLD;
}

/* kcm, kcml: replies come back on whichever connection. */
static int any_connection(void)
{
	return var == V_KCM || var == V_KCML;
}

/* The start of this run's KCMBENCH line, up to its status. */
static void print_status(const char *status)
{
	printf("KCMBENCH workload=%s variant=%s%s size=%d conns=%d threads=%d",
	       wl_name[wl], var_name[var], use_ktls ? "+tls" : "", msg_size,
	       nconns, nthreads);
	if (cli_epoll)
		printf(" client_threads=%d", cli_threads);
	printf(" rep=%d status=%s", rep, status);
}

static void die(const char *fmt, ...)
{
	va_list ap;

	print_status("error");
	printf(" reason=\"");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(": %s\"\n", strerror(errno));
	fflush(stdout);
	_exit(2);
}

/* A zeroed array of @n elements of @size bytes, or the run ends. */
static void *zalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		die("calloc");
	return p;
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint64_t load64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* xorshift64*, one state per client, so that runs are reproducible. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* Payload size: fixed, or log-uniform in [MIN_MIXED, MAX_PAYLOAD] from @r. */
static uint32_t pick_size(uint64_t r)
{
	double lo, hi, x;
	uint32_t v;

	if (msg_size)
		return msg_size;
	lo = __builtin_log(MIN_MIXED);
	hi = __builtin_log(MAX_PAYLOAD);
	x = lo + (hi - lo) * ((r >> 11) / 9007199254740992.0);
	v = (uint32_t)__builtin_exp(x);
	/* Echo's header is longer than the smallest mixed message. */
	if (v < MIN_MIXED || v < ph)
		v = MIN_MIXED > ph ? MIN_MIXED : ph;
	if (v > MAX_PAYLOAD)
		v = MAX_PAYLOAD;
	return v;
}

/*
 * Write all of @len bytes of a non-blocking socket, waiting in poll() while
 * it is full.  Returns the bytes written: fewer than @len if the run was
 * aborted or nothing could be written for the stall timeout.
 */
static size_t write_full(int fd, const unsigned char *buf, size_t len)
{
	size_t done = 0;
	double last = now_s();

	while (done < len && !abort_run) {
		ssize_t n = send(fd, buf + done, len - done, MSG_NOSIGNAL);

		if (n > 0) {
			done += n;
			last = now_s();
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			break;
		if (now_s() - last > stall_secs ||
		    (drain_deadline > 0 && now_s() > drain_deadline))
			break;
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		poll(&p, 1, 100);
	}
	return done;
}

/* ---- message checksum ------------------------------------------------------ */

/*
 * A 64-bit multiplicative hash of 8-byte words.  The filler's words go in
 * four interleaved lanes, so that the multiplications of consecutive
 * words do not wait for each other (the last partial word padded with
 * zeros); the lanes are folded into one, which then takes the header words
 * from PH_ID on.  Each step h = (h ^ w) * odd, and each step of the fold,
 * is a bijection of what it takes: a change confined to one word (a
 * corrupt byte) always changes the sum, any other change does but with a
 * chance of 2^-64.  A client computes its fixed filler's part once and
 * only adds the header per message.
 */
#define CSUM_MUL	0x100000001b3ull	/* FNV's 64-bit prime */

struct csum {
	uint64_t h[4];
	uint64_t nw;			/* words taken; the next goes to lane nw % 4 */
};

static void csum_init(struct csum *c)
{
	int i;

	for (i = 0; i < 4; i++)
		c->h[i] = 0xcbf29ce484222325ull + i;	/* FNV's offset basis */
	c->nw = 0;
}

/* Take @nw whole words at @p. */
static inline void csum_words(struct csum *c, const unsigned char *p, size_t nw)
{
	uint64_t h0, h1, h2, h3;

	/* One at a time up to lane 0, four at a time, the rest one at a time. */
	for (; nw && (c->nw & 3); nw--, p += 8, c->nw++)
		c->h[c->nw & 3] = (c->h[c->nw & 3] ^ load64(p)) * CSUM_MUL;
	h0 = c->h[0];
	h1 = c->h[1];
	h2 = c->h[2];
	h3 = c->h[3];
	for (; nw >= 4; nw -= 4, p += 32, c->nw += 4) {
		h0 = (h0 ^ load64(p)) * CSUM_MUL;
		h1 = (h1 ^ load64(p + 8)) * CSUM_MUL;
		h2 = (h2 ^ load64(p + 16)) * CSUM_MUL;
		h3 = (h3 ^ load64(p + 24)) * CSUM_MUL;
	}
	c->h[0] = h0;
	c->h[1] = h1;
	c->h[2] = h2;
	c->h[3] = h3;
	for (; nw; nw--, p += 8, c->nw++)
		c->h[c->nw & 3] = (c->h[c->nw & 3] ^ load64(p)) * CSUM_MUL;
}

/* Take the last @n bytes of a filler, fewer than a word, padded with zeros. */
static void csum_tail(struct csum *c, const unsigned char *p, size_t n)
{
	unsigned char w[8] = { 0 };

	if (!n)
		return;
	memcpy(w, p, n);
	csum_words(c, w, 1);
}

/* The lanes folded into one word: the checksum of a filler. */
static uint64_t csum_fold(const struct csum *c)
{
	uint64_t r = c->h[0];
	int i;

	for (i = 1; i < 4; i++)
		r = (r * CSUM_MUL) ^ c->h[i];
	return r;
}

/* The checksum of the @n bytes of filler at @p. */
static uint64_t filler_sum(const unsigned char *p, size_t n)
{
	struct csum c;

	csum_init(&c);
	csum_words(&c, p, n / 8);
	csum_tail(&c, p + n / 8 * 8, n % 8);
	return csum_fold(&c);
}

/*
 * The checksum of a payload whose filler's is @filler and whose header
 * words from PH_ID on are @words.
 */
static uint64_t csum_end(uint64_t filler, const uint64_t *words)
{
	uint64_t r = filler;
	unsigned int i;

	for (i = 0; i < (ph - PH_ID) / 8; i++)
		r = (r * CSUM_MUL) ^ words[i];
	return r * CSUM_MUL;
}

/* The checksum of the payload at @payload, whose filler's is @filler. */
static uint64_t payload_end(uint64_t filler, const unsigned char *payload)
{
	uint64_t words[(PH_ECHO - PH_ID) / 8];

	memcpy(words, payload + PH_ID, ph - PH_ID);
	return csum_end(filler, words);
}

/* The checksum of a payload of @plen bytes, all at @p. */
static uint64_t payload_sum(const unsigned char *p, uint32_t plen)
{
	return payload_end(filler_sum(p + ph, plen - ph), p);
}

/*
 * rpc: echo where each client keeps RPC_DEPTH requests in flight on its
 * connection and one request in RPC_SLOW_EVERY (by its sequence number)
 * costs the server RPC_SLOW_US of sleep before its reply, a stand-in for a
 * database call.  A server thread that owns a connection makes the
 * requests queued behind a slow one wait; KCM hands them to another.
 */
#define RPC_DEPTH	16
#define RPC_SLOW_EVERY	100
#define RPC_SLOW_US	1000

/*
 * The server's work for request m (a whole frame).  On a KCM socket @kcm,
 * a slow request is served with receiving disabled: its queued messages
 * go to the other sockets meanwhile.
 */
static void rpc_work(const unsigned char *m, int kcm)
{
	int on = 1, off = 0;
	uint64_t id;

	if (wl != W_RPC)
		return;
	memcpy(&id, m + HDR + PH_ID, sizeof(id));
	if ((id >> 32) % RPC_SLOW_EVERY != RPC_SLOW_EVERY - 1)
		return;
	if (kcm >= 0 &&
	    setsockopt(kcm, SOL_KCM, KCM_RECV_DISABLE, &on, sizeof(on)))
		die("KCM_RECV_DISABLE");
	usleep(RPC_SLOW_US);
	if (kcm >= 0 &&
	    setsockopt(kcm, SOL_KCM, KCM_RECV_DISABLE, &off, sizeof(off)))
		die("KCM_RECV_DISABLE");
}

static uint64_t make_id(uint32_t sender, uint32_t seq)
{
	return sender | (uint64_t)seq << 32;
}

/* Pseudo-random filler, so that no two clients' or slots' messages match. */
static void fill(unsigned char *p, size_t n, uint64_t *seed)
{
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t v = rnd(seed);

		memcpy(p, &v, 8);
	}
	while (n--)
		*p++ = rnd(seed);
}

/* ---- what the clients send ------------------------------------------------ */

/*
 * stream: one client's batch of messages, built once and sent round after
 * round; only the sequence numbers and checksums change between rounds
 * (writing new filler would cost as much as checking it).  So a payload
 * replaced by the same message's of an earlier round, header apart, would
 * pass: it is the same; any other mix-up changes the checksum.
 */
struct plan {
	unsigned char *buf;
	size_t len, n;
	size_t *ends;			/* end offset of message i in buf */
	uint32_t *plen;			/* payload bytes of message i */
	uint64_t *filler;		/* checksum of message i's filler */
};
static struct plan plans[MAX_CONNS];

static void build_plan(int id)
{
	struct plan *pl = &plans[id];
	size_t cap = msg_size ? STREAM_BATCH : MIXED_BATCH, off = 0, n = 0, max;
	uint64_t seed = 0x9e3779b97f4a7c15ull * (id + 1);
	uint64_t fseed = seed ^ 0x5851f42d4c957f2dull;	/* the filler's own */

	if (cap < MAX_MSG)
		cap = MAX_MSG;
	max = cap / (HDR + ph);
	pl->buf = malloc(cap);
	pl->ends = malloc(max * sizeof(*pl->ends));
	pl->plen = malloc(max * sizeof(*pl->plen));
	pl->filler = malloc(max * sizeof(*pl->filler));
	if (!pl->buf || !pl->ends || !pl->plen || !pl->filler)
		die("malloc");
	for (;;) {
		uint32_t plen = pick_size(rnd(&seed));
		unsigned char *p = pl->buf + off + HDR;

		if (off + plen + HDR > cap && n > 0)
			break;
		put_be32(pl->buf + off, plen);
		fill(p + ph, plen - ph, &fseed);
		pl->filler[n] = filler_sum(p + ph, plen - ph);
		pl->plen[n] = plen;
		off += plen + HDR;
		pl->ends[n++] = off;
		if (off + HDR + (msg_size ? msg_size : MIN_MIXED) > cap)
			break;
	}
	pl->len = off;
	pl->n = n;
}

/* stream: number the messages of the next round from @seq, and sum them. */
static void stamp_round(struct plan *pl, uint32_t sender, uint32_t seq)
{
	size_t i;

	for (i = 0; i < pl->n; i++) {
		unsigned char *p = pl->buf + (i ? pl->ends[i - 1] : 0) + HDR;
		uint64_t id = make_id(sender, seq + i);
		uint64_t sum = csum_end(pl->filler[i], &id);

		memcpy(p + PH_SUM, &sum, 8);
		memcpy(p + PH_ID, &id, 8);
	}
}

/* echo: the payload size of request @seq of client @sender. */
static uint32_t echo_size(uint32_t sender, uint32_t seq)
{
	/* splitmix64's finaliser: a random-looking value from the pair. */
	uint64_t x = ((uint64_t)sender << 32 | seq) + 0x9e3779b97f4a7c15ull;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return pick_size(x ^ (x >> 31));
}

/* The payload size that @sender sent with sequence number @seq. */
static uint32_t sent_size(uint32_t sender, uint32_t seq)
{
	const struct plan *pl = &plans[sender];

	if (msg_size)
		return msg_size;
	if (wl != W_STREAM)
		return echo_size(sender, seq);
	return pl->plen[seq % pl->n];
}

/* ---- verification ------------------------------------------------------------ */

enum order {
	ORDER_ANY,	/* kcm echo replies: any reader, any connection */
	ORDER_RISING,	/* a KCM reader: a sender's messages in increasing order */
	ORDER_EXACT,	/* one TCP connection: every message, in sequence */
};

/*
 * Exactly once: each receiver that accounts keeps a bit per sender and
 * sequence number, in chunks allocated when first used; the end of the
 * run merges them (the order checks alone could not say which message is
 * missing, nor catch a duplicate across KCM readers).  A map of its own,
 * written by its thread only, needs no atomic read-modify-write.  A
 * sender's chunks double in size, so that ten thousand senders of a few
 * messages each cost little and one of millions few allocations: chunk k
 * holds SEEN_BASE << k sequence numbers, from SEEN_BASE * (2^k - 1) on.
 */
#define SEEN_BASE	512u		/* seqs in a sender's first chunk */
#define SEEN_CHUNKS	24		/* enough for 2^32 seqs */

struct seen_map {
	uint64_t *chunk[SEEN_CHUNKS];
};

/*
 * One receiver: a server thread, or an echo client.  Only the receivers
 * that account (stream servers, echo clients) count messages and check
 * their order; echo servers check each request's integrity only.
 */
struct rx_ctx {
	char name[24];			/* in reports: "reader 1", "client 0", ... */
	int account;
	enum order order;
	/* Accounting receivers only: arrays of nconns, one entry per sender. */
	uint32_t *next;			/* the lowest seq allowed next */
	uint64_t *got;			/* messages accounted for */
	struct seen_map *seen;
};
static struct rx_ctx srv_rx[MAX_THREADS];
static struct rx_ctx *cli_rx;		/* one per client thread */

/* The chunk of a sender's map that holds @seq; @seq's bit in it in @bit. */
static unsigned int seen_where(uint32_t seq, uint64_t *bit)
{
	uint64_t q = seq / SEEN_BASE + 1;
	unsigned int k = 63 - __builtin_clzll(q);

	*bit = seq - ((1ull << k) - 1) * SEEN_BASE;
	return k;
}

/*
 * Mark (@sender, @seq) as received by @rx; returns 1 if it was already.
 * Stores are atomic (relaxed: plain moves) because main may read the map
 * while this thread still runs, at the end of a stalled run.
 */
static int seen_mark(struct rx_ctx *rx, uint32_t sender, uint32_t seq)
{
	uint64_t bit, *chunk, *w, mask;
	unsigned int k = seen_where(seq, &bit);
	uint64_t **slot = &rx->seen[sender].chunk[k];

	chunk = *slot;
	if (!chunk) {
		chunk = zalloc(((size_t)SEEN_BASE << k) / 64, sizeof(*chunk));
		__atomic_store_n(slot, chunk, __ATOMIC_RELEASE);
	}
	w = &chunk[bit / 64];
	mask = 1ull << (bit & 63);
	if (*w & mask)
		return 1;
	__atomic_store_n(w, *w | mask, __ATOMIC_RELAXED);
	return 0;
}

/*
 * The 64 bits of @rx's map for @sender from @seq (a multiple of 64) on;
 * chunks start at multiples of SEEN_BASE, so they are in one chunk.
 */
static uint64_t seen_word(const struct rx_ctx *rx, uint32_t sender, uint64_t seq)
{
	uint64_t bit, *chunk;
	unsigned int k = seen_where(seq, &bit);

	chunk = __atomic_load_n(&rx->seen[sender].chunk[k], __ATOMIC_ACQUIRE);
	return chunk ? __atomic_load_n(&chunk[bit / 64], __ATOMIC_RELAXED) : 0;
}

/* The first violations, for the report; all of them are counted. */
static pthread_mutex_t violation_lock = PTHREAD_MUTEX_INITIALIZER;
static char violation_text[MAX_REPORTED][160];
static uint64_t nviolations;

static void violation(const char *who, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&violation_lock);
	if (nviolations < MAX_REPORTED) {
		char *t = violation_text[nviolations];
		int n = snprintf(t, sizeof(violation_text[0]), "%s: ", who);

		va_start(ap, fmt);
		vsnprintf(t + n, sizeof(violation_text[0]) - n, fmt, ap);
		va_end(ap);
	}
	nviolations++;
	pthread_mutex_unlock(&violation_lock);
}

/*
 * Verify a payload of @plen bytes whose header is at @hdr and whose
 * checksum, computed on receipt, is @sum.  @from is the sender whose
 * connection it came on, or -1 where any sender's message may arrive.
 */
static void verify(struct rx_ctx *rx, const unsigned char *hdr, uint32_t plen,
		   uint64_t sum, int from)
{
	uint32_t sender, seq, want_len;
	uint64_t want_sum, id;

	memcpy(&want_sum, hdr + PH_SUM, 8);
	memcpy(&id, hdr + PH_ID, 8);
	sender = id;
	seq = id >> 32;
	if (sum != want_sum) {
		/* Its sender and seq may be what is corrupt: not accounted. */
		violation(rx->name, "checksum %016llx, the message says %016llx (sender %u seq %u, %u bytes)",
			  (unsigned long long)sum, (unsigned long long)want_sum,
			  sender, seq, plen);
		return;
	}
	if (sender >= (uint32_t)nconns) {
		violation(rx->name, "sender %u seq %u: there is no sender %u", sender, seq, sender);
		return;
	}
	want_len = sent_size(sender, seq);
	if (plen != want_len) {
		violation(rx->name, "sender %u seq %u: %u bytes, sent with %u",
			  sender, seq, plen, want_len);
		return;
	}
	if (from >= 0 && sender != (uint32_t)from)
		violation(rx->name, "sender %u seq %u: came on connection %d",
			  sender, seq, from);
	if (!rx->account)
		return;
	if (rx->order == ORDER_EXACT && seq != rx->next[sender])
		violation(rx->name, "sender %u seq %u: expected seq %u on this connection",
			  sender, seq, rx->next[sender]);
	else if (rx->order == ORDER_RISING && seq < rx->next[sender])
		violation(rx->name, "sender %u seq %u: after seq %u on this reader",
			  sender, seq, rx->next[sender] - 1);
	rx->next[sender] = seq + 1;
	if (seen_mark(rx, sender, seq)) {
		violation(rx->name, "sender %u seq %u: duplicate", sender, seq);
		return;
	}
	/* Written by this thread only; main reads it at the end. */
	__atomic_store_n(&rx->got[sender], rx->got[sender] + 1, __ATOMIC_RELAXED);
}

/*
 * Verify a whole message @m of @len bytes, length prefix first.  Returns -1
 * if its length disagrees with its prefix (framing lost), else 0.
 */
static int check_msg(struct rx_ctx *rx, const unsigned char *m, size_t len,
		     int from)
{
	const unsigned char *p = m + HDR;

	if (len < HDR || (size_t)get_be32(m) + HDR != len)
		return -1;
	if (len - HDR < ph) {
		violation(rx->name, "a %zu-byte payload, shorter than its header", len - HDR);
		return 0;
	}
	verify(rx, p, len - HDR, payload_sum(p, len - HDR), from);
	return 0;
}

/* tcp: one connection's byte stream, verified as it arrives. */
struct stream_rx {
	unsigned char hdr[HDR + PH_ECHO];	/* length prefix, payload header */
	size_t have;			/* bytes of hdr received */
	size_t left;			/* filler bytes to come */
	struct csum c;
	unsigned char part[8];		/* a partial word of filler ... */
	size_t npart;			/* ... of this many bytes */
	int lost;			/* framing lost: bytes only counted */
};

/* Hash @n bytes of filler at @p, which may end or start inside a word. */
static void stream_rx_filler(struct stream_rx *s, const unsigned char *p,
			     size_t n)
{
	size_t k;

	if (s->npart) {
		k = 8 - s->npart < n ? 8 - s->npart : n;
		memcpy(s->part + s->npart, p, k);
		s->npart += k;
		p += k;
		n -= k;
		if (s->npart < 8)
			return;
		csum_words(&s->c, s->part, 1);
		s->npart = 0;
	}
	csum_words(&s->c, p, n / 8);
	memcpy(s->part, p + n / 8 * 8, n % 8);
	s->npart = n % 8;
}

/* Bytes of an incomplete message that @s has taken. */
static size_t stream_rx_held(const struct stream_rx *s)
{
	if (s->have < HDR + ph)
		return s->have;
	return s->have + get_be32(s->hdr) - ph - s->left;
}

/*
 * Feed @n bytes of @s's connection (the one of sender @from) through the
 * verifier; returns the messages completed.  A length prefix out of range
 * loses the framing for good: one bad frame.
 */
static uint64_t stream_rx_feed(struct rx_ctx *rx, struct stream_rx *s,
			       const unsigned char *p, size_t n, int from,
			       uint64_t *bad)
{
	size_t hlen = HDR + ph, k;
	uint64_t msgs = 0;

	while (n && !s->lost) {
		if (s->have < hlen) {
			k = hlen - s->have < n ? hlen - s->have : n;
			memcpy(s->hdr + s->have, p, k);
			s->have += k;
			p += k;
			n -= k;
			if (s->have < hlen)
				break;
			if (get_be32(s->hdr) < ph || get_be32(s->hdr) > MAX_PAYLOAD) {
				s->lost = 1;
				(*bad)++;
				break;
			}
			s->left = get_be32(s->hdr) - ph;
			csum_init(&s->c);
		}
		k = s->left < n ? s->left : n;
		stream_rx_filler(s, p, k);
		p += k;
		n -= k;
		s->left -= k;
		if (s->left)
			break;
		csum_tail(&s->c, s->part, s->npart);
		s->npart = 0;
		verify(rx, s->hdr + HDR, get_be32(s->hdr),
		       payload_end(csum_fold(&s->c), s->hdr + HDR), from);
		s->have = 0;
		msgs++;
	}
	return msgs;
}
/* ---- BPF and KCM setup ---------------------------------------------------- */

static int load_len_prog(void)
{
	/* r6 = ctx; r0 = be32 at offset 0; r0 += HDR; return r0 */
	struct bpf_insn prog[4];
	union bpf_attr attr;
	static const char license[] = "GPL";

	memset(prog, 0, sizeof(prog));
	prog[0].code = BPF_ALU64 | BPF_MOV | BPF_X;
	prog[0].dst_reg = BPF_REG_6;
	prog[0].src_reg = BPF_REG_1;
	prog[1].code = BPF_LD | BPF_W | BPF_ABS;
	prog[1].imm = 0;
	prog[2].code = BPF_ALU64 | BPF_ADD | BPF_K;
	prog[2].dst_reg = BPF_REG_0;
	prog[2].imm = HDR;
	prog[3].code = BPF_JMP | BPF_EXIT;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insns = (uint64_t)(uintptr_t)prog;
	attr.insn_cnt = 4;
	attr.license = (uint64_t)(uintptr_t)license;
	return syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
}

static void setup_kcm(void)
{
	int i;

	bpf_fd = load_len_prog();
	if (bpf_fd < 0)
		die("BPF_PROG_LOAD");
	kcm_fd[0] = socket(AF_KCM, SOCK_DGRAM, KCMPROTO_CONNECTED);
	if (kcm_fd[0] < 0)
		die("socket(AF_KCM)");
	for (i = 1; i < nthreads; i++) {
		struct kcm_clone cl = { .fd = -1 };

		if (ioctl(kcm_fd[0], SIOCKCMCLONE, &cl) < 0)
			die("SIOCKCMCLONE");
		kcm_fd[i] = cl.fd;
	}
	for (i = 0; i < nthreads; i++) {
		struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
		int one = 1;

		/* kcmd: learn each request's connection, to reply on it. */
		if (directed() &&
		    setsockopt(kcm_fd[i], SOL_KCM, KCM_RECV_ORIGIN, &one,
			       sizeof(one)))
			die("KCM_RECV_ORIGIN");

		/* kcmb: Linux's kcm.ko has no such option; do not run. */
		if (batched() &&
		    setsockopt(kcm_fd[i], SOL_KCM, KCM_RECV_BATCH, &one,
			       sizeof(one))) {
			print_status("skipped");
			printf(" reason=\"no KCM_RECV_BATCH (Linux's kcm.ko)\"\n");
			exit(0);
		}

		/* recvmmsg wakes up now and then to notice server_quit. */
		if (setsockopt(kcm_fd[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
			die("SO_RCVTIMEO");
	}
	for (i = 0; i < nconns; i++) {
		struct kcm_attach at = { .fd = server_fd[i], .bpf_fd = bpf_fd };
		/* The same framing, read by the module: 4-byte BE prefix. */
		struct kcm_attach_len al = { .fd = server_fd[i], .width = 4,
					     .adjust = 4 };

		if (!len_framed()) {
			if (ioctl(kcm_fd[0], SIOCKCMATTACH, &at) < 0)
				die("SIOCKCMATTACH");
		} else if (ioctl(kcm_fd[0], SIOCKCMATTACHLEN, &al) < 0) {
			if (errno != ENOTTY)
				die("SIOCKCMATTACHLEN");
			print_status("skipped");
			printf(" reason=\"no SIOCKCMATTACHLEN (Linux's kcm.ko)\"\n");
			exit(0);
		}
	}
}

/* ---- servers -------------------------------------------------------------- */

/* kcmd: send the request back on the connection it came from. */
static void reply_directed(int fd, struct msghdr *req, size_t len)
{
	struct cmsghdr *c = CMSG_FIRSTHDR(req);
	struct msghdr m = { .msg_iov = req->msg_iov, .msg_iovlen = 1 };

	if (!c || c->cmsg_level != SOL_KCM || c->cmsg_type != KCM_ORIGIN) {
		add(&srv_badframes, 1);
		return;
	}
	req->msg_iov->iov_len = len;
	m.msg_control = req->msg_control;
	m.msg_controllen = CMSG_SPACE(sizeof(uint64_t));
	while (sendmsg(fd, &m, 0) < 0 && errno == EINTR)
		;
}

/*
 * kcmb: verify and count the messages of one batch, [__u32 length][message]...
 * Returns the number of bad frames: messages whose prefix disagrees with
 * their length, plus one for a batch that is empty or ends in a partial
 * header or message.
 */
static uint64_t parse_batch(struct rx_ctx *rx, const unsigned char *p,
			    size_t len, uint64_t *msgs, uint64_t *bytes)
{
	size_t off = 0;
	uint64_t bad = 0;
	uint32_t mlen;

	while (len - off >= HDR) {
		memcpy(&mlen, p + off, sizeof(mlen));
		if (mlen > len - off - HDR)
			break;
		off += HDR;
		if (check_msg(rx, p + off, mlen, -1))
			bad++;
		(*msgs)++;
		*bytes += mlen;
		off += mlen;
	}
	return bad + (!len || off != len);
}

static void *kcm_server(void *arg)
{
	long id = (long)arg;
	struct rx_ctx *rx = &srv_rx[id];
	int fd = kcm_fd[id];
	/* rpc: one request per call, the others stay free to move. */
	int vlen = batched() ? BATCH_VLEN : wl == W_RPC ? 1 : RECV_VLEN;
	size_t bsize = batched() ? BATCH_BUF : MAX_MSG;
	struct mmsghdr mm[RECV_VLEN];
	struct iovec iov[RECV_VLEN];
	unsigned char *bufs;
	int i;

	union {
		char buf[CMSG_SPACE(sizeof(uint64_t))];
		struct cmsghdr align;
	} ctl[RECV_VLEN];

	bufs = malloc(vlen * bsize);
	if (!bufs)
		die("malloc");
	while (!server_quit) {
		int n;

		memset(mm, 0, sizeof(mm));
		for (i = 0; i < vlen; i++) {
			iov[i].iov_base = bufs + i * bsize;
			iov[i].iov_len = bsize;
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
			if (directed()) {
				mm[i].msg_hdr.msg_control = ctl[i].buf;
				mm[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
			}
		}
		n = recvmmsg(fd, mm, vlen, MSG_WAITFORONE, NULL);
		if (n <= 0)
			continue;	/* timeout (EAGAIN) or EINTR */
		uint64_t msgs = 0, bytes = 0, bad = 0;

		for (i = 0; i < n; i++) {
			unsigned char *m = iov[i].iov_base;
			unsigned int len = mm[i].msg_len;

			if (batched()) {
				if (mm[i].msg_hdr.msg_flags & MSG_TRUNC)
					bad++;
				else
					bad += parse_batch(rx, m, len, &msgs, &bytes);
				continue;
			}
			msgs++;
			bytes += len;
			if ((mm[i].msg_hdr.msg_flags & MSG_TRUNC) ||
			    check_msg(rx, m, len, -1))
				bad++;
			if (wl != W_STREAM)
				rpc_work(m, fd);
			if (wl != W_STREAM && directed())
				reply_directed(fd, &mm[i].msg_hdr, len);
			else if (wl != W_STREAM)
				while (send(fd, m, len, 0) < 0 && errno == EINTR)
					;
		}
		add(&srv_msgs, msgs);
		add(&srv_bytes, bytes);
		if (bad)
			add(&srv_badframes, bad);
	}
	free(bufs);
	return NULL;
}

struct conn_state {
	int fd;
	int conn;			/* its index: the client it serves */
	unsigned char *buf;
	size_t len;
	struct stream_rx srx;		/* tcp */
};

/*
 * user: verify (and echo) the whole messages in @c's buffer, which has @r
 * new bytes; keep a partial one for later.
 */
static void cut_msgs(struct rx_ctx *rx, struct conn_state *c, size_t r,
		     uint64_t *msgs, uint64_t *bytes, uint64_t *bad)
{
	size_t off = 0, end = c->len + r;

	while (end - off >= HDR) {
		uint32_t plen = get_be32(c->buf + off);

		if (plen > MAX_PAYLOAD) {
			/* Lost framing: count it, resync impossible. */
			(*bad)++;
			off = end;
			break;
		}
		if (end - off < plen + HDR)
			break;
		check_msg(rx, c->buf + off, plen + HDR, c->conn);
		if (wl != W_STREAM) {
			rpc_work(c->buf + off, -1);
			write_full(c->fd, c->buf + off, plen + HDR);
		}
		(*msgs)++;
		*bytes += plen + HDR;
		off += plen + HDR;
	}
	if (off && off < end)
		memmove(c->buf, c->buf + off, end - off);
	c->len = end - off;
}

/* user and tcp variants: one epoll set over connections i % T == id. */
static void *epoll_server(void *arg)
{
	long id = (long)arg;
	struct rx_ctx *rx = &srv_rx[id];
	/* Its connections; epoll_wait wants room for one event at least. */
	int ep, i, ncs = 0, nev = (nconns - id + nthreads - 1) / nthreads + 1;
	struct conn_state *cs = zalloc(nev, sizeof(*cs));
	struct epoll_event *ev = zalloc(nev, sizeof(*ev));

	ep = epoll_create1(0);
	if (ep < 0)
		die("epoll_create1");
	for (i = id; i < nconns; i += nthreads) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = ncs };

		memset(&cs[ncs], 0, sizeof(cs[ncs]));
		cs[ncs].fd = server_fd[i];
		cs[ncs].conn = i;
		cs[ncs].buf = malloc(CONN_BUF);
		if (!cs[ncs].buf)
			die("malloc");
		if (epoll_ctl(ep, EPOLL_CTL_ADD, server_fd[i], &e))
			die("epoll_ctl");
		ncs++;
	}
	while (!server_quit) {
		int n = epoll_wait(ep, ev, nev, 100);

		for (i = 0; i < n; i++) {
			struct conn_state *c = &cs[ev[i].data.u32];
			ssize_t r = recv(c->fd, c->buf + c->len,
					 CONN_BUF - c->len, MSG_DONTWAIT);
			uint64_t msgs = 0, bytes = 0, bad = 0;

			if (r <= 0) {
				if (r == 0 || (errno != EAGAIN && errno != EINTR))
					epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				continue;
			}
			if (var == V_TCP) {
				msgs = stream_rx_feed(rx, &c->srx, c->buf, r,
						      c->conn, &bad);
				bytes = r;
				if (wl != W_STREAM)
					write_full(c->fd, c->buf, r);
			} else {
				cut_msgs(rx, c, r, &msgs, &bytes, &bad);
			}
			/* For the report of a stall. */
			__atomic_store_n(&srv_partial[c->conn], var == V_TCP ?
					 stream_rx_held(&c->srx) : c->len,
					 __ATOMIC_RELAXED);
			if (msgs)
				add(&srv_msgs, msgs);
			if (bytes)
				add(&srv_bytes, bytes);
			if (bad)
				add(&srv_badframes, bad);
		}
	}
	for (i = 0; i < ncs; i++)
		free(cs[i].buf);
	free(cs);
	free(ev);
	close(ep);
	return NULL;
}

/* usero: a connection as every server thread sees it. */
struct shared_conn {
	struct conn_state c;		/* buf and len: its reader's only */
	pthread_mutex_t write_lock;	/* one reply at a time */
};

static struct shared_conn *shared_conns;	/* nconns of them */
static int shared_ep = -1;

/* usero: the epoll set, every connection in it, armed once. */
static void shared_setup(void)
{
	int i;

	shared_ep = epoll_create1(0);
	if (shared_ep < 0)
		die("epoll_create1");
	shared_conns = zalloc(nconns, sizeof(*shared_conns));
	for (i = 0; i < nconns; i++) {
		struct shared_conn *sc = &shared_conns[i];
		struct epoll_event e = { .events = EPOLLIN | EPOLLONESHOT,
					 .data.u32 = i };

		sc->c.fd = server_fd[i];
		sc->c.conn = i;
		sc->c.buf = malloc(CONN_BUF);
		if (!sc->c.buf)
			die("malloc");
		pthread_mutex_init(&sc->write_lock, NULL);
		if (epoll_ctl(shared_ep, EPOLL_CTL_ADD, server_fd[i], &e))
			die("epoll_ctl");
	}
}

/*
 * usero: one server thread.  It takes one ready connection at a time,
 * reads it, moves the whole messages read into @own, re-arms it and only
 * then serves them, so that a slow request holds up only the requests of
 * the same read.
 */
static void *shared_server(void *arg)
{
	long id = (long)arg;
	struct rx_ctx *rx = &srv_rx[id];
	unsigned char *own = malloc(CONN_BUF);

	if (!own)
		die("malloc");
	while (!server_quit) {
		struct epoll_event ev;
		struct shared_conn *sc;
		struct conn_state *c;
		size_t off = 0, end, n;
		uint64_t msgs = 0, bytes = 0, bad = 0;
		ssize_t r;

		if (epoll_wait(shared_ep, &ev, 1, 100) != 1)
			continue;
		sc = &shared_conns[ev.data.u32];
		c = &sc->c;
		r = recv(c->fd, c->buf + c->len, CONN_BUF - c->len, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			continue;	/* closed: left disarmed */
		end = c->len + (r > 0 ? r : 0);
		while (end - off >= HDR) {
			uint32_t plen = get_be32(c->buf + off);

			if (plen > MAX_PAYLOAD) {
				bad++;	/* lost framing: nothing to resync on */
				off = end;
				break;
			}
			if (end - off < plen + HDR)
				break;
			off += plen + HDR;
		}
		n = off;
		memcpy(own, c->buf, n);
		memmove(c->buf, c->buf + off, end - off);
		c->len = end - off;
		__atomic_store_n(&srv_partial[c->conn], c->len, __ATOMIC_RELAXED);
		ev.events = EPOLLIN | EPOLLONESHOT;
		if (epoll_ctl(shared_ep, EPOLL_CTL_MOD, c->fd, &ev))
			die("epoll_ctl");

		for (off = 0; off < n; ) {
			uint32_t len = get_be32(own + off) + HDR;

			check_msg(rx, own + off, len, c->conn);
			if (wl != W_STREAM) {
				rpc_work(own + off, -1);
				pthread_mutex_lock(&sc->write_lock);
				write_full(c->fd, own + off, len);
				pthread_mutex_unlock(&sc->write_lock);
			}
			msgs++;
			bytes += len;
			off += len;
		}
		if (msgs)
			add(&srv_msgs, msgs);
		if (bytes)
			add(&srv_bytes, bytes);
		if (bad)
			add(&srv_badframes, bad);
	}
	free(own);
	return NULL;
}

/* ---- clients -------------------------------------------------------------- */

static volatile int injected_stall;	/* KCM_BENCH_INJECT=stall happened */

/*
 * KCM_BENCH_INJECT: send message @m of @len bytes wrong, as the sender
 * counts it sent.  Returns -1 if a write fell short, else 0.
 */
static int send_wrong(int fd, unsigned char *m, size_t len)
{
	int ok = 1;

	switch (inject) {
	case INJ_CORRUPT:	/* its last byte flipped, after the checksum */
		m[len - 1] ^= 0x20;
		ok = write_full(fd, m, len) == len;
		m[len - 1] ^= 0x20;
		break;
	case INJ_DROP:		/* not written */
		break;
	case INJ_DUP:		/* written twice */
		ok = write_full(fd, m, len) == len && write_full(fd, m, len) == len;
		break;
	case INJ_STALL:		/* half of it, and nothing more from this client */
		ok = write_full(fd, m, len / 2) == len / 2;
		injected_stall = 1;
		break;
	case INJ_NONE:
		break;
	}
	return ok ? 0 : -1;
}

/* stream: messages of @pl whole in its first @bytes bytes. */
static size_t whole_msgs(const struct plan *pl, size_t bytes)
{
	size_t i;

	for (i = 0; i < pl->n && pl->ends[i] <= bytes; i++)
		;
	return i;
}

/*
 * stream, KCM_BENCH_INJECT: a round of @pl with its message @j sent wrong.
 * Returns the messages counted as sent (after a short write: none, the
 * run fails anyway).
 */
static size_t send_round_wrong(int fd, struct plan *pl, size_t j)
{
	size_t start = j ? pl->ends[j - 1] : 0, end = pl->ends[j];

	if (write_full(fd, pl->buf, start) != start ||
	    send_wrong(fd, pl->buf + start, end - start))
		return 0;
	if (injected_stall)
		return j + 1;
	if (write_full(fd, pl->buf + end, pl->len - end) != pl->len - end)
		return 0;
	return pl->n;
}

static void *stream_client(void *arg)
{
	long id = (long)arg;
	struct plan *pl = &plans[id];
	int fd = client_fd[id];
	uint32_t seq = 0;

	/* The last round ends before the 32-bit sequence numbers wrap. */
	while (!stop_send && !abort_run && UINT32_MAX - seq >= pl->n) {
		size_t sent, w;

		stamp_round(pl, id, seq);
		if (id == 0 && inject && inject_seq - seq < pl->n) {
			sent = send_round_wrong(fd, pl, inject_seq - seq);
		} else {
			w = write_full(fd, pl->buf, pl->len);
			sent = w == pl->len ? pl->n : whole_msgs(pl, w);
		}
		cli_sent[id] += sent;
		add(&cli_msgs, sent);
		add(&cli_bytes, sent ? pl->ends[sent - 1] : 0);
		seq += pl->n;
		/* The injected stall: no abort, the watch must notice it. */
		if (id == 0 && injected_stall)
			break;
		if (sent < pl->n) {
			/* Stalled or aborted: the whole messages are counted. */
			abort_run = 1;
			break;
		}
	}
	return NULL;
}

/*
 * KCM_BENCH_INJECT: client 0 is past its wrong message (stream: and the
 * one after it, whose arrival the receiver's report names), or stopped at
 * the stall.  On a loaded host the run's duration may end before that.
 */
static int inject_passed(void)
{
	uint64_t past = inject_seq + (wl == W_STREAM ? 1 : 0);

	return !inject || injected_stall ||
	       __atomic_load_n(&cli_sent[0], __ATOMIC_RELAXED) > past;
}

/* Self-test: measure on, up to 10 s more, until the injection is past. */
static void inject_wait(void)
{
	double until = now_s() + 10;

	while (!inject_passed() && !abort_run && now_s() < until)
		usleep(10000);
}

static void lat_add(struct lat_buf *l, uint64_t v)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4096;
		uint64_t *p = realloc(l->v, cap * sizeof(*p));

		if (!p)
			return;
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = v;
}

/* echo: one client's request buffer, its filler random and fixed. */
struct echo_tx {
	unsigned char *req;
	uint64_t filler;		/* the filler's checksum ... */
	uint32_t filler_len;		/* ... for a payload of this size */
};

/* Request @seq of client @id: header, send time, filler; its length. */
static size_t make_request(struct echo_tx *tx, long id, uint32_t seq)
{
	uint32_t plen = sent_size(id, seq);
	uint64_t words[2] = { make_id(id, seq), now_ns() }, sum;
	unsigned char *p = tx->req + HDR;

	put_be32(tx->req, plen);
	if (plen != tx->filler_len) {
		tx->filler = filler_sum(p + ph, plen - ph);
		tx->filler_len = plen;
	}
	sum = csum_end(tx->filler, words);
	memcpy(p + PH_SUM, &sum, 8);
	memcpy(p + PH_ID, words, sizeof(words));
	return plen + HDR;
}

static int send_request(int fd, struct echo_tx *tx, long id)
{
	uint32_t seq = cli_sent[id];
	size_t len = make_request(tx, id, seq);

	if (id == 0 && inject && seq == inject_seq) {
		if (send_wrong(fd, tx->req, len))
			return -1;
	} else if (write_full(fd, tx->req, len) != len) {
		return -1;
	}
	cli_sent[id]++;
	add(&cli_msgs, 1);
	add(&cli_bytes, len);
	return 0;
}

/*
 * echo: verify and account the whole replies among the @*have bytes at
 * @buf, read from client @id's connection (into @rx, their round trips
 * into @lb), sending the client's next request after each; a partial
 * reply stays for later.  Returns -1 if the run must stop.
 */
static int take_replies(struct rx_ctx *rx, struct lat_buf *lb,
			struct echo_tx *tx, long id, unsigned char *buf,
			size_t *have)
{
	/* kcm: a reply may come on any connection; else on the request's. */
	int from = any_connection() ? -1 : id, ret = 0;
	size_t off = 0;

	while (*have - off >= HDR) {
		uint32_t plen = get_be32(buf + off);
		uint64_t t;

		if (plen > MAX_PAYLOAD || plen < ph) {
			add(&echo_badreplies, 1);
			ret = -1;
			break;
		}
		if (*have - off < plen + HDR)
			break;
		check_msg(rx, buf + off, plen + HDR, from);
		memcpy(&t, buf + off + HDR + PH_TIME, sizeof(t));
		if (measuring)
			lat_add(lb, now_ns() - t);
		add(&echo_replies, 1);
		add(&echo_reply_bytes, plen + HDR);
		off += plen + HDR;
		/* After an injected stall this client sends no more. */
		if (stop_send || (id == 0 && injected_stall))
			continue;
		if (send_request(client_fd[id], tx, id)) {
			ret = -1;
			break;
		}
	}
	if (off && off < *have)
		memmove(buf, buf + off, *have - off);
	*have -= off;
	return ret;
}

/* echo: a thread per connection. */
static void *echo_client(void *arg)
{
	long id = (long)arg;
	struct rx_ctx *rx = &cli_rx[id];
	int fd = client_fd[id];
	uint64_t fseed = 0x5851f42d4c957f2dull * (id + 1);
	struct echo_tx tx = { .filler_len = UINT32_MAX };
	unsigned char *buf;
	size_t have = 0;

	tx.req = malloc(MAX_MSG);
	buf = malloc(CONN_BUF);
	if (!tx.req || !buf)
		die("malloc");
	fill(tx.req + HDR + ph, MAX_PAYLOAD - ph, &fseed);
	for (int k = 0; k < (wl == W_RPC ? RPC_DEPTH : 1); k++) {
		if (send_request(fd, &tx, id)) {
			abort_run = 1;
			goto out;
		}
	}
	int quiet = 0;

	/*
	 * Keep reading until main gives up or has seen every reply: a reply
	 * may still arrive here for a request another client sent.
	 */
	while (!abort_run) {
		if (stop_send && !quiet) {
			/* No request of ours is half-sent or uncounted now. */
			quiet = 1;
			add(&echo_quiet, 1);
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t r = recv(fd, buf + have, CONN_BUF - have, MSG_DONTWAIT);

		if (r <= 0) {
			if (r == 0 || (errno != EAGAIN && errno != EINTR))
				break;
			continue;
		}
		have += r;
		if (take_replies(rx, &lat[id], &tx, id, buf, &have))
			abort_run = 1;
	}
out:
	free(tx.req);
	free(buf);
	return NULL;
}

/*
 * echo, -e: client thread @arg drives connections [first, first + n) with
 * epoll, each its own client: its own sequence numbers, one request in
 * flight (rpc: RPC_DEPTH), its replies checked as echo_client checks them.
 * A connection's buffer holds the longest reply; a longer one waits in
 * its socket until the one before it is taken.
 */
static void *epoll_client(void *arg)
{
	long t = (long)arg;
	int first = (long)nconns * t / cli_threads;
	int n = (long)nconns * (t + 1) / cli_threads - first;
	size_t blen = HDR + (msg_size ? (size_t)msg_size : MAX_PAYLOAD);
	uint64_t fseed = 0x5851f42d4c957f2dull * (t + 1);
	struct echo_tx tx = { .filler_len = UINT32_MAX };
	struct epoll_event *ev = zalloc(n, sizeof(*ev));
	size_t *have = zalloc(n, sizeof(*have));
	unsigned char *bufs = zalloc(n, blen);
	int ep, i, k, quiet = 0;

	tx.req = zalloc(1, MAX_MSG);
	fill(tx.req + HDR + ph, MAX_PAYLOAD - ph, &fseed);
	ep = epoll_create1(0);
	if (ep < 0)
		die("epoll_create1");
	for (i = 0; i < n; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, client_fd[first + i], &e))
			die("epoll_ctl");
	}
	for (i = 0; i < n && !abort_run; i++)
		for (k = 0; k < (wl == W_RPC ? RPC_DEPTH : 1); k++)
			if (send_request(client_fd[first + i], &tx, first + i))
				abort_run = 1;
	while (!abort_run) {
		if (stop_send && !quiet) {
			/* No request of this thread is half-sent or uncounted now. */
			quiet = 1;
			add(&echo_quiet, 1);
		}
		int nev = epoll_wait(ep, ev, n, 50);

		for (k = 0; k < nev && !abort_run; k++) {
			i = ev[k].data.u32;
			int fd = client_fd[first + i];
			unsigned char *buf = bufs + i * blen;
			ssize_t r = recv(fd, buf + have[i], blen - have[i], MSG_DONTWAIT);

			if (r <= 0) {
				/* Closed or failed: the others go on, the count tells. */
				if (r == 0 || (errno != EAGAIN && errno != EINTR))
					epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				continue;
			}
			have[i] += r;
			if (take_replies(&cli_rx[t], &lat[t], &tx, first + i, buf,
					 &have[i]))
				abort_run = 1;
		}
	}
	close(ep);
	free(tx.req);
	free(bufs);
	free(have);
	free(ev);
	return NULL;
}

/*
 * Names thread t role-i, so that a profile by thread tells them apart; with
 * KCM_BENCH_PIN=1 in the environment, pins it to CPU i (modulo the CPUs
 * online), servers and clients alike, whatever the variant.
 */
static void name_thread(pthread_t t, const char *role, int i)
{
	const char *pin = getenv("KCM_BENCH_PIN");
	char name[16];
	cpu_set_t set;

	snprintf(name, sizeof(name), "%s-%d", role, i);
	pthread_setname_np(t, name);
	if (!pin || strcmp(pin, "1"))
		return;
	CPU_ZERO(&set);
	CPU_SET(i % sysconf(_SC_NPROCESSORS_ONLN), &set);
	if (pthread_setaffinity_np(t, sizeof(set), &set))
		die("pthread_setaffinity_np");
}

/* ---- connections ---------------------------------------------------------- */

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

/* Keys direction dir of fd with kTLS: keys made from conn and way, the
 * same on both ends of a direction.
 */
static void ktls_key(int fd, int dir, int conn, int way)
{
	struct tls12_crypto_info_aes_gcm_128 info;
	size_t i;

	if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", 3) && errno != EEXIST)
		die("TCP_ULP tls: %s", strerror(errno));
	memset(&info, 0, sizeof(info));
	info.info.version = TLS_1_3_VERSION;
	info.info.cipher_type = TLS_CIPHER_AES_GCM_128;
	for (i = 0; i < sizeof(info.key); i++)
		info.key[i] = (unsigned char)(conn * 7 + way * 3 + i);
	for (i = 0; i < sizeof(info.iv); i++)
		info.iv[i] = (unsigned char)(conn + way + i * 5);
	memcpy(info.salt, "kcm!", sizeof(info.salt));
	if (setsockopt(fd, SOL_TLS, dir, &info, sizeof(info)))
		die("kTLS %s: %s", dir == TLS_TX ? "TLS_TX" : "TLS_RX",
		    strerror(errno));
}

static void make_conns(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int lfd, i, one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lfd, MAX_CONNS) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl))
		die("listen");
	for (i = 0; i < nconns; i++) {
		client_fd[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (client_fd[i] < 0 ||
		    connect(client_fd[i], (struct sockaddr *)&sa, sizeof(sa)))
			die("connect");
		server_fd[i] = accept(lfd, NULL, NULL);
		if (server_fd[i] < 0)
			die("accept");
		setsockopt(client_fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(server_fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (use_ktls) {
			ktls_key(client_fd[i], TLS_TX, i, 0);
			ktls_key(server_fd[i], TLS_RX, i, 0);
			ktls_key(server_fd[i], TLS_TX, i, 1);
			ktls_key(client_fd[i], TLS_RX, i, 1);
		}
		fcntl(client_fd[i], F_SETFL, O_NONBLOCK);
		if (!uses_kcm())
			fcntl(server_fd[i], F_SETFL, O_NONBLOCK);
	}
	close(lfd);
}

/* ---- the verdict ------------------------------------------------------------- */

/* One sender's messages (echo: requests) against what the receivers saw. */
struct tally {
	uint64_t sent, got;		/* sent; accounted for by the receivers */
	uint64_t below;			/* bits set below sent, in all maps */
	uint64_t present;		/* seqs below sent received */
	uint64_t twice;			/* ... by more than one receiver */
	uint64_t miss[4], dup[4];	/* the first missing, received twice */
	int nmiss, ndup;
};

static void tally(int sender, struct tally *t)
{
	struct rx_ctx *rx = wl == W_STREAM ? srv_rx : cli_rx;
	int nrx = wl == W_STREAM ? nthreads : cli_threads, i;
	uint64_t seq;

	memset(t, 0, sizeof(*t));
	t->sent = cli_sent[sender];
	for (i = 0; i < nrx; i++)
		t->got += __atomic_load_n(&rx[i].got[sender], __ATOMIC_RELAXED);
	for (seq = 0; seq < t->sent; seq += 64) {
		uint64_t valid = t->sent - seq >= 64 ? ~0ull : (1ull << (t->sent - seq)) - 1;
		uint64_t any = 0, more = 0, b;

		for (i = 0; i < nrx; i++) {
			b = seen_word(&rx[i], sender, seq) & valid;
			t->below += __builtin_popcountll(b);
			more |= any & b;
			any |= b;
		}
		t->present += __builtin_popcountll(any);
		t->twice += __builtin_popcountll(more);
		for (b = ~any & valid; b && t->nmiss < 4; b &= b - 1)
			t->miss[t->nmiss++] = seq + __builtin_ctzll(b);
		for (b = more; b && t->ndup < 4; b &= b - 1)
			t->dup[t->ndup++] = seq + __builtin_ctzll(b);
	}
}

/*
 * Whether @sender's messages (echo: requests) were all received (answered)
 * exactly once; if not, what is off, in @why.  A duplicate one receiver
 * saw was reported when it came, and not accounted for.
 */
static int sender_off(int sender, char *why, size_t len)
{
	struct tally t;
	int i, n;

	tally(sender, &t);
	if (t.present == t.sent && !t.twice && t.got == t.below)
		return 0;
	n = snprintf(why, len, "sender %d: sent %llu, received %llu", sender,
		     (unsigned long long)t.sent, (unsigned long long)t.got);
	if (t.present < t.sent) {
		n += snprintf(why + n, len - n, "; %llu missing: seq",
			      (unsigned long long)(t.sent - t.present));
		for (i = 0; i < t.nmiss; i++)
			n += snprintf(why + n, len - n, " %llu", (unsigned long long)t.miss[i]);
		if (t.sent - t.present > (uint64_t)t.nmiss)
			n += snprintf(why + n, len - n, " ...");
	}
	if (t.twice) {
		n += snprintf(why + n, len - n, "; %llu received twice: seq",
			      (unsigned long long)t.twice);
		for (i = 0; i < t.ndup; i++)
			n += snprintf(why + n, len - n, " %llu", (unsigned long long)t.dup[i]);
		if (t.twice > (uint64_t)t.ndup)
			n += snprintf(why + n, len - n, " ...");
	}
	if (t.got > t.below)
		snprintf(why + n, len - n, "; %llu with a seq never sent",
			 (unsigned long long)(t.got - t.below));
	return 1;
}

/*
 * What every connection holds: messages outstanding, bytes queued in TCP.
 * Of more than MAX_REPORTED_CONNS connections, only the first that hold
 * something, and how many do.
 */
static void print_conn_state(void)
{
	int i, busy = 0;

	printf("# connections (TCP bytes: client unsent+unacked/unread, server unread/unsent+unacked):\n");
	for (i = 0; i < nconns; i++) {
		int cout = -1, cin = -1, sin = -1, sout = -1;
		struct tally t;

		tally(i, &t);
		ioctl(client_fd[i], SIOCOUTQ, &cout);
		ioctl(client_fd[i], SIOCINQ, &cin);
		ioctl(server_fd[i], SIOCINQ, &sin);
		ioctl(server_fd[i], SIOCOUTQ, &sout);
		int idle = t.sent == t.present && !cout && !cin && !sin && !sout &&
			   (uses_kcm() || !get(&srv_partial[i]));

		if (nconns > MAX_REPORTED_CONNS &&
		    (idle || ++busy > MAX_REPORTED_CONNS))
			continue;
		printf("#   conn %d: %s %llu, %s %llu, outstanding %lld; client %d/%d, server %d/%d",
		       i, wl == W_STREAM ? "sent" : "requests", (unsigned long long)t.sent,
		       wl == W_STREAM ? "received" : "answered", (unsigned long long)t.present,
		       (long long)(t.sent - t.present), cout, cin, sin, sout);
		if (!uses_kcm())
			printf("; %llu bytes of a message held by the server",
			       (unsigned long long)get(&srv_partial[i]));
		printf("\n");
	}
	if (nconns > MAX_REPORTED_CONNS)
		printf("#   (%d of %d connections hold something, %d of them above)\n",
		       busy, nconns, busy < MAX_REPORTED_CONNS ? busy : MAX_REPORTED_CONNS);
}

/*
 * Copy /proc/net/kcm{,_stats} to stdout as "# " comment lines, the first
 * MAX_PROC_LINES of each (with thousands of connections, a line each).
 */
static void dump_kcm_proc(void)
{
	static const char *const files[] = { "/proc/net/kcm", "/proc/net/kcm_stats" };
	char line[512];
	unsigned int i, n;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		FILE *f = fopen(files[i], "r");

		if (!f)
			continue;
		printf("# %s:\n", files[i]);
		for (n = 0; fgets(line, sizeof(line), f); n++)
			if (n < MAX_PROC_LINES)
				printf("#   %s", line);
		if (n > MAX_PROC_LINES)
			printf("#   ... and %u more lines\n", n - MAX_PROC_LINES);
		fclose(f);
	}
}

/*
 * After the KCMBENCH line of a run that is not ok: its first violations,
 * the senders whose counts are off, every connection's state.
 */
static void print_problems(void)
{
	char why[192];
	uint64_t i, off = 0;

	pthread_mutex_lock(&violation_lock);
	for (i = 0; i < nviolations && i < MAX_REPORTED; i++)
		printf("# violation: %s\n", violation_text[i]);
	if (nviolations > MAX_REPORTED)
		printf("# ... and %llu more violations\n",
		       (unsigned long long)(nviolations - MAX_REPORTED));
	pthread_mutex_unlock(&violation_lock);
	for (i = 0; i < (uint64_t)nconns; i++)
		if (sender_off(i, why, sizeof(why)) && ++off <= MAX_REPORTED_CONNS)
			printf("# %s\n", why);
	if (off > MAX_REPORTED_CONNS)
		printf("# ... and %llu more senders\n",
		       (unsigned long long)(off - MAX_REPORTED_CONNS));
	print_conn_state();
	if (uses_kcm())
		dump_kcm_proc();
}

/* ---- main ------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(p * (n - 1) + 0.5);
	return v[i] / 1000.0;
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s -w stream|echo|rpc -v kcm|user|tcp|kcmd|kcmb|kcml|kcmbl|kcmld|usero\n"
		"          -s SIZE(0=mixed) -c CONNS -t THREADS [-e CLIENT_THREADS]\n"
		"          [-d SECONDS] [-g STALL_SECONDS] [-r REP] [-k]\n"
		"          (kcmb, kcmbl: stream only; CONNS up to %d, with -e (echo, rpc) %d;\n"
		"          SIZE at least %d, the header: %d for echo)\n", prog, MAX_CONNS,
		MAX_EPOLL_CONNS, PH_STREAM, PH_ECHO);
	exit(2);
}

static int lookup(const char *s, const char *const *names, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

/*
 * Sleep until @until, or until the progress counter has not moved for
 * stall_secs.  Returns 1 on a stall.  @target, if non-NULL, ends the wait
 * early once progress() reaches *target.
 */
static int watch(double until, uint64_t (*progress)(void), uint64_t *target,
		 double *last_move)
{
	uint64_t seen = progress();

	*last_move = now_s();
	for (;;) {
		double t = now_s();
		uint64_t cur = progress();

		if (target && cur >= get(target))
			return 0;
		if (cur != seen) {
			seen = cur;
			*last_move = t;
		} else if (t - *last_move > stall_secs) {
			stall_why = "noprogress";
			return 1;
		}
		if (abort_run && !target) {
			stall_why = "noprogress";
			return 1;
		}
		if (t >= until) {
			if (target)
				stall_why = "drain";
			return target != NULL;
		}
		usleep(20000);
	}
}

/* Two descriptors a connection, and some: raise RLIMIT_NOFILE if short. */
static void raise_fd_limit(void)
{
	rlim_t need = 2 * (rlim_t)nconns + 64;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		die("getrlimit");
	if (rl.rlim_cur >= need)
		return;
	rl.rlim_cur = need;
	if (rl.rlim_max < need)
		rl.rlim_max = need;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		die("setrlimit(RLIMIT_NOFILE, %llu)", (unsigned long long)need);
}

static uint64_t prog_srv_bytes(void) { return get(&srv_bytes); }
static uint64_t prog_echo(void) { return get(&echo_replies); }

/* KCM_BENCH_PERF_CTL: perf's control and acknowledgement fifos. */
static int perf_ctl_fd = -1, perf_ack_fd = -1;

static void perf_open(void)
{
	const char *e = getenv("KCM_BENCH_PERF_CTL");
	char path[512], *ack;

	if (!e || !*e)
		return;
	snprintf(path, sizeof(path), "%s", e);
	ack = strchr(path, ',');
	if (!ack) {
		fprintf(stderr, "KCM_BENCH_PERF_CTL=CTL_FIFO,ACK_FIFO, not '%s'\n", e);
		exit(2);
	}
	*ack++ = '\0';
	/* Read-write: a fifo so opened does not wait for its other end. */
	perf_ctl_fd = open(path, O_RDWR);
	perf_ack_fd = open(ack, O_RDWR);
	if (perf_ctl_fd < 0 || perf_ack_fd < 0)
		die("open %s", e);
}

/*
 * Have perf carry out @cmd ("enable\n", "disable\n") and wait until it
 * has; how long that took goes to stderr.
 */
static void perf_command(const char *cmd)
{
	double t = now_s();
	char ack[16];

	if (perf_ctl_fd < 0)
		return;
	if (write(perf_ctl_fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd) ||
	    read(perf_ack_fd, ack, sizeof(ack)) <= 0)
		die("perf control: %s", cmd);
	fprintf(stderr, "# perf %.*s: %.3f s\n", (int)strcspn(cmd, "\n"), cmd,
		now_s() - t);
}

/* The measured interval starts: perf on, the replies so far; its start. */
static double start_window(void)
{
	perf_command("enable\n");
	echo_replies_at_start = get(&echo_replies);
	measuring = 1;
	return now_s();
}

/* KCM_BENCH_INJECT=corrupt|drop|dup|stall[:SEQ], for the self-test. */
static void parse_inject(void)
{
	const char *e = getenv("KCM_BENCH_INJECT");
	char kind[16];
	int i;

	if (!e || !*e)
		return;
	if (sscanf(e, "%15[a-z]:%u", kind, &inject_seq) < 1 ||
	    (i = lookup(kind, inject_name, 5)) < 1) {
		fprintf(stderr, "KCM_BENCH_INJECT=corrupt|drop|dup|stall[:SEQ], not '%s'\n", e);
		exit(2);
	}
	inject = i;
}

int main(int argc, char **argv)
{
	pthread_t srv[MAX_THREADS], cli[MAX_CONNS];
	double t0 = 0, t_stop, t_end, last_move;
	int opt, i, stalled = 0;
	const char *status;

	while ((opt = getopt(argc, argv, "w:v:s:c:t:e:d:g:r:k")) != -1) {
		switch (opt) {
		case 'w': i = lookup(optarg, wl_name, 3); if (i < 0) usage(argv[0]); wl = i; break;
		case 'v': i = lookup(optarg, var_name, sizeof(var_name) / sizeof(var_name[0])); if (i < 0) usage(argv[0]); var = i; break;
		case 's': msg_size = atoi(optarg); break;
		case 'c': nconns = atoi(optarg); break;
		case 't': nthreads = atoi(optarg); break;
		case 'e': cli_epoll = atoi(optarg); if (cli_epoll < 1) usage(argv[0]); break;
		case 'd': duration = atof(optarg); break;
		case 'g': stall_secs = atof(optarg); break;
		case 'r': rep = atoi(optarg); break;
		case 'k': use_ktls = 1; break;
		default: usage(argv[0]);
		}
	}
	ph = wl == W_STREAM ? PH_STREAM : PH_ECHO;
	if (nconns < 1 || nconns > (cli_epoll ? MAX_EPOLL_CONNS : MAX_CONNS) ||
	    (cli_epoll && (wl == W_STREAM || cli_epoll > MAX_THREADS ||
			   cli_epoll > nconns)) || nthreads < 1 ||
	    nthreads > MAX_THREADS || msg_size < 0 || msg_size > MAX_PAYLOAD ||
	    (msg_size && (uint32_t)msg_size < ph) ||
	    (wl != W_STREAM && batched()) ||
	    (wl == W_RPC && var == V_TCP) || duration <= 0)
		usage(argv[0]);
	parse_inject();
	perf_open();
	signal(SIGPIPE, SIG_IGN);
	cli_threads = cli_epoll ? cli_epoll : nconns;
	raise_fd_limit();
	client_fd = zalloc(nconns, sizeof(*client_fd));
	server_fd = zalloc(nconns, sizeof(*server_fd));
	cli_sent = zalloc(nconns, sizeof(*cli_sent));
	srv_partial = zalloc(nconns, sizeof(*srv_partial));
	lat = zalloc(cli_threads, sizeof(*lat));
	cli_rx = zalloc(cli_threads, sizeof(*cli_rx));

	/* Who checks what: see the top of this file. */
	for (i = 0; i < nthreads; i++) {
		snprintf(srv_rx[i].name, sizeof(srv_rx[i].name),
			 uses_kcm() ? "reader %d" : "server thread %d", i);
		srv_rx[i].order = uses_kcm() || var == V_USERO ?
				  ORDER_RISING : ORDER_EXACT;
	}
	for (i = 0; i < cli_threads; i++) {
		snprintf(cli_rx[i].name, sizeof(cli_rx[i].name),
			 cli_epoll ? "client thread %d" : "client %d", i);
		/* usero answers a connection's requests in any order. */
		cli_rx[i].order = any_connection() || var == V_USERO ?
				  ORDER_ANY : ORDER_EXACT;
	}
	for (i = 0; wl == W_STREAM && i < nconns; i++)
		build_plan(i);
	for (i = 0; i < (wl == W_STREAM ? nthreads : cli_threads); i++) {
		struct rx_ctx *rx = wl == W_STREAM ? &srv_rx[i] : &cli_rx[i];

		rx->account = 1;
		rx->next = zalloc(nconns, sizeof(*rx->next));
		rx->got = zalloc(nconns, sizeof(*rx->got));
		rx->seen = zalloc(nconns, sizeof(*rx->seen));
	}

	make_conns();
	if (uses_kcm())
		setup_kcm();
	if (var == V_USERO)
		shared_setup();
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&srv[i], NULL,
				   uses_kcm() ? kcm_server :
				   var == V_USERO ? shared_server : epoll_server,
				   (void *)(long)i))
			die("pthread_create");
		else
			name_thread(srv[i], "srv", i);

	if (!cli_epoll)
		t0 = start_window();
	for (i = 0; i < cli_threads; i++)
		if (pthread_create(&cli[i], NULL,
				   wl == W_STREAM ? stream_client :
				   cli_epoll ? epoll_client : echo_client,
				   (void *)(long)i))
			die("pthread_create");
		else
			name_thread(cli[i], "cli", i);
	/*
	 * -e: every connection's first requests go out at once, a burst that
	 * thousands of connections take long to clear.  The run is measured
	 * from when as many replies have come as requests were in flight (a
	 * round), for the duration.
	 */
	if (cli_epoll) {
		uint64_t round = (uint64_t)nconns * (wl == W_RPC ? RPC_DEPTH : 1);

		stalled = watch(HUGE_VAL, prog_echo, &round, &last_move);
		t0 = start_window();
	}

	if (wl == W_STREAM) {
		stalled = watch(t0 + duration, prog_srv_bytes, NULL, &last_move);
		if (!stalled)
			inject_wait();
		t_stop = now_s();
		/* perf may take a while to answer: the drain's time starts after. */
		perf_command("disable\n");
		drain_deadline = now_s() + stall_secs;
		stop_send = 1;
		if (stalled)
			abort_run = 1;
		for (i = 0; i < nconns; i++)
			pthread_join(cli[i], NULL);
		/* Drain: wait for the server to catch up with what was sent. */
		if (!stalled)
			stalled = watch(drain_deadline, prog_srv_bytes, &cli_bytes,
					&last_move);
		t_end = get(&srv_bytes) >= get(&cli_bytes) ? now_s() : last_move;
	} else {
		if (!stalled)
			stalled = watch(t0 + duration, prog_echo, NULL, &last_move);
		if (!stalled)
			inject_wait();
		measuring = 0;
		echo_replies_at_stop = get(&echo_replies);
		t_stop = now_s();
		perf_command("disable\n");
		drain_deadline = now_s() + stall_secs;
		stop_send = 1;
		while (!stalled && get(&echo_quiet) < (uint64_t)cli_threads) {
			if (now_s() > drain_deadline) {
				stalled = 1;
				stall_why = "drain";
			}
			usleep(10000);
		}
		if (!stalled)
			stalled = watch(drain_deadline, prog_echo, &cli_msgs,
					&last_move);
		abort_run = 1;
		for (i = 0; i < cli_threads; i++)
			pthread_join(cli[i], NULL);
		t_end = now_s();
	}
	server_quit = 1;

	uint64_t sent = get(&cli_msgs), sbytes = get(&cli_bytes);
	uint64_t rmsgs = get(&srv_msgs), rbytes = get(&srv_bytes);
	uint64_t badframes = get(&srv_badframes) + get(&echo_badreplies);
	int mismatch = 0;
	char first[192] = "";

	/* Received by two readers: each saw it once, only the maps tell. */
	for (i = 0; i < nconns; i++) {
		struct tally t;
		int k;

		tally(i, &t);
		for (k = 0; k < t.ndup; k++)
			violation("end of run", "sender %d seq %llu: received by two readers",
				  i, (unsigned long long)t.dup[k]);
	}
	/* The first problem, for the KCMBENCH line; print_problems() has all. */
	for (i = nconns - 1; i >= 0; i--)
		mismatch |= sender_off(i, first, sizeof(first));
	if (wl == W_STREAM)
		mismatch |= rmsgs != sent || rbytes != sbytes;
	else
		mismatch |= get(&echo_replies) != sent ||
			    get(&echo_reply_bytes) != sbytes || rmsgs != sent;
	pthread_mutex_lock(&violation_lock);
	if (nviolations)
		snprintf(first, sizeof(first), "%s", violation_text[0]);
	pthread_mutex_unlock(&violation_lock);
	if (badframes) {
		/* Lengths that disagree with prefixes: framing was lost. */
		status = "misframed";
		snprintf(first, sizeof(first), "%llu bad frames",
			 (unsigned long long)badframes);
	} else if (get(&nviolations)) {
		status = "corrupt";
	} else if (stalled && (wl == W_STREAM ? rbytes < sbytes :
			       get(&echo_replies) < sent)) {
		status = "stalled";
	} else if (mismatch) {
		status = "mismatch";
	} else {
		status = "ok";
	}

	print_status(status);
	if (!strcmp(status, "stalled"))
		printf(" stall=%s", stall_why);
	if (wl == W_STREAM) {
		double secs = t_end - t0;

		if (secs <= 0)
			secs = 1e-9;
		printf(" secs=%.3f sent_msgs=%llu recv_msgs=%llu sent_bytes=%llu recv_bytes=%llu badframes=%llu msgs_s=%.0f mb_s=%.3f",
		       secs, (unsigned long long)sent, (unsigned long long)rmsgs,
		       (unsigned long long)sbytes, (unsigned long long)rbytes,
		       (unsigned long long)get(&srv_badframes),
		       rmsgs / secs, rbytes / secs / 1e6);
	} else {
		size_t n = 0, k = 0;
		uint64_t *all;
		double secs = t_stop - t0;

		for (i = 0; i < cli_threads; i++)
			n += lat[i].n;
		all = malloc((n ? n : 1) * sizeof(*all));
		for (i = 0; all && i < cli_threads; i++) {
			memcpy(all + k, lat[i].v, lat[i].n * sizeof(*all));
			k += lat[i].n;
		}
		if (all)
			qsort(all, k, sizeof(*all), cmp_u64);
		printf(" secs=%.3f requests=%llu replies=%llu server_msgs=%llu badframes=%llu badreplies=%llu rps=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f",
		       secs, (unsigned long long)sent,
		       (unsigned long long)get(&echo_replies),
		       (unsigned long long)rmsgs,
		       (unsigned long long)get(&srv_badframes),
		       (unsigned long long)get(&echo_badreplies),
		       (echo_replies_at_stop - echo_replies_at_start) / secs,
		       pct_us(all, k, 0.50), pct_us(all, k, 0.99),
		       pct_us(all, k, 0.999));
		(void)t_end;
	}
	printf(" violations=%llu", (unsigned long long)get(&nviolations));
	if (strcmp(status, "ok"))
		printf(" first=\"%s\"", first);
	printf("\n");
	if (strcmp(status, "ok"))
		print_problems();
	fflush(stdout);
	/*
	 * Exit without joining the server threads: one stuck in a stalled
	 * KCM socket must not keep the run alive; exit closes every socket.
	 */
	_exit(strcmp(status, "ok") ? 1 : 0);
}
