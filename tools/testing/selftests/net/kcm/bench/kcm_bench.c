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
 *   tcp   as user, but the bytes are only counted (or echoed): no framing.
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
 *
 * Workloads:
 *
 *   stream  every client sends as fast as it can for the duration, then
 *           stops at a message boundary; the server drains what is left.
 *           The server's totals must equal the clients' totals.
 *   echo    closed loop with C requests in flight: a client that receives
 *           a reply sends its next request.  Requests carry their send
 *           time, so a round trip is measured even if a reply comes back
 *           on another connection (a KCM socket sends on whichever attached
 *           connection it picks).  Reports p50/p99/p99.9 and requests/s.
 *
 * Size 0 means mixed sizes, drawn log-uniformly from 16 B to 64 KiB.
 *
 * One line per run on stdout:
 *   KCMBENCH workload=W variant=V size=S conns=C threads=T status=S key=value...
 * where status is ok, stalled, misframed (the server got messages whose
 * length disagrees with their prefix: framing was lost), mismatch (counts
 * differ), error, or skipped (kcmb on a module without KCM_RECV_BATCH).
 * A run in which nothing moves for the stall timeout (default 3 s), or
 * whose drain after the stop takes longer than that, ends with
 * status=stalled (stall=noprogress or stall=drain) instead of hanging.
 *
 * Usage: kcm_bench -w stream|echo -v kcm|user|tcp|kcmd|kcmb -s SIZE -c C -t T
 *                  [-d SECONDS] [-g STALL_SECONDS] [-r REP]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
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
#define MAX_CONNS	64
#define MAX_THREADS	16

enum workload { W_STREAM, W_ECHO };
enum variant { V_KCM, V_USER, V_TCP, V_KCMD, V_KCMB };

static const char *const wl_name[] = { "stream", "echo" };
static const char *const var_name[] = { "kcm", "user", "tcp", "kcmd", "kcmb" };

/* ---- configuration and shared state ------------------------------------- */

static enum workload wl = W_STREAM;
static enum variant var = V_KCM;
static int msg_size = 64;		/* payload bytes; 0 = mixed */
static int nconns = 1;
static int nthreads = 1;
static double duration = 1.0;
static double stall_secs = 3.0;
static int rep = 1;

static volatile int stop_send;		/* clients: send no new messages */
static volatile int abort_run;		/* everyone: give up now */
static volatile int server_quit;	/* server threads: exit */
static volatile double drain_deadline;	/* after the stop: give up at this time */
static const char *stall_why = "";	/* noprogress or drain */

/* Totals, updated with __atomic builtins. */
static uint64_t srv_msgs, srv_bytes, srv_badframes;
static uint64_t cli_msgs, cli_bytes;	/* stream: sent; echo: requests sent */
static uint64_t echo_replies, echo_reply_bytes, echo_badreplies;
static uint64_t echo_replies_at_stop;
static uint64_t echo_quiet;		/* clients that saw stop_send */

static int client_fd[MAX_CONNS];
static int server_fd[MAX_CONNS];
static int kcm_fd[MAX_THREADS];
static int bpf_fd = -1;

struct lat_buf {
	uint64_t *v;
	size_t n, cap;
};
static struct lat_buf lat[MAX_CONNS];

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
	return var == V_KCM || var == V_KCMD || var == V_KCMB;
}

/* The start of this run's KCMBENCH line, up to its status. */
static void print_status(const char *status)
{
	printf("KCMBENCH workload=%s variant=%s size=%d conns=%d threads=%d rep=%d status=%s",
	       wl_name[wl], var_name[var], msg_size, nconns, nthreads, rep, status);
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

/* xorshift64*, one state per client, so that runs are reproducible. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* Payload size: fixed, or log-uniform in [MIN_MIXED, MAX_PAYLOAD]. */
static uint32_t pick_size(uint64_t *s)
{
	double lo, hi, x;
	uint32_t v;

	if (msg_size)
		return msg_size;
	lo = __builtin_log(MIN_MIXED);
	hi = __builtin_log(MAX_PAYLOAD);
	x = lo + (hi - lo) * ((rnd(s) >> 11) / 9007199254740992.0);
	v = (uint32_t)__builtin_exp(x);
	if (v < MIN_MIXED)
		v = MIN_MIXED;
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
		if (var == V_KCMD &&
		    setsockopt(kcm_fd[i], SOL_KCM, KCM_RECV_ORIGIN, &one,
			       sizeof(one)))
			die("KCM_RECV_ORIGIN");

		/* kcmb: Linux's kcm.ko has no such option; do not run. */
		if (var == V_KCMB &&
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

		if (ioctl(kcm_fd[0], SIOCKCMATTACH, &at) < 0)
			die("SIOCKCMATTACH");
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
 * kcmb: count the messages of one batch, [__u32 length][message]...  Returns
 * the number of bad frames: messages whose prefix disagrees with their
 * length, plus one for a batch that is empty or ends in a partial header or
 * message.
 */
static uint64_t parse_batch(const unsigned char *p, size_t len,
			    uint64_t *msgs, uint64_t *bytes)
{
	size_t off = 0;
	uint64_t bad = 0;
	uint32_t mlen;

	while (len - off >= HDR) {
		memcpy(&mlen, p + off, sizeof(mlen));
		if (mlen > len - off - HDR)
			break;
		off += HDR;
		if (mlen < HDR || get_be32(p + off) + HDR != mlen)
			bad++;
		(*msgs)++;
		*bytes += mlen;
		off += mlen;
	}
	return bad + (!len || off != len);
}

static void *kcm_server(void *arg)
{
	int fd = kcm_fd[(long)arg];
	int vlen = var == V_KCMB ? BATCH_VLEN : RECV_VLEN;
	size_t bsize = var == V_KCMB ? BATCH_BUF : MAX_MSG;
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
			if (var == V_KCMD) {
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

			if (var == V_KCMB) {
				if (mm[i].msg_hdr.msg_flags & MSG_TRUNC)
					bad++;
				else
					bad += parse_batch(m, len, &msgs, &bytes);
				continue;
			}
			msgs++;
			bytes += len;
			if (len < HDR || get_be32(m) + HDR != len ||
			    (mm[i].msg_hdr.msg_flags & MSG_TRUNC))
				bad++;
			if (wl == W_ECHO && var == V_KCMD)
				reply_directed(fd, &mm[i].msg_hdr, len);
			else if (wl == W_ECHO)
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
	unsigned char *buf;
	size_t len;
};

/* user and tcp variants: one epoll set over connections i % T == id. */
static void *epoll_server(void *arg)
{
	long id = (long)arg;
	struct conn_state cs[MAX_CONNS];
	struct epoll_event ev[MAX_CONNS];
	int ep, i, ncs = 0;

	ep = epoll_create1(0);
	if (ep < 0)
		die("epoll_create1");
	for (i = id; i < nconns; i += nthreads) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = ncs };

		cs[ncs].fd = server_fd[i];
		cs[ncs].len = 0;
		cs[ncs].buf = malloc(CONN_BUF);
		if (!cs[ncs].buf)
			die("malloc");
		if (epoll_ctl(ep, EPOLL_CTL_ADD, server_fd[i], &e))
			die("epoll_ctl");
		ncs++;
	}
	while (!server_quit) {
		int n = epoll_wait(ep, ev, MAX_CONNS, 100);

		for (i = 0; i < n; i++) {
			struct conn_state *c = &cs[ev[i].data.u32];
			ssize_t r = recv(c->fd, c->buf + c->len,
					 CONN_BUF - c->len, MSG_DONTWAIT);

			if (r <= 0) {
				if (r == 0 || (errno != EAGAIN && errno != EINTR))
					epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				continue;
			}
			if (var == V_TCP) {
				add(&srv_bytes, r);
				if (wl == W_ECHO)
					write_full(c->fd, c->buf, r);
				continue;
			}
			/* Cut whole messages; keep a partial one for later. */
			size_t off = 0, end = c->len + r;
			uint64_t msgs = 0, bytes = 0, bad = 0;

			while (end - off >= HDR) {
				uint32_t plen = get_be32(c->buf + off);

				if (plen > MAX_PAYLOAD) {
					/* Lost framing: count it, resync impossible. */
					bad++;
					off = end;
					break;
				}
				if (end - off < plen + HDR)
					break;
				if (wl == W_ECHO)
					write_full(c->fd, c->buf + off, plen + HDR);
				msgs++;
				bytes += plen + HDR;
				off += plen + HDR;
			}
			if (off && off < end)
				memmove(c->buf, c->buf + off, end - off);
			c->len = end - off;
			if (msgs) {
				add(&srv_msgs, msgs);
				add(&srv_bytes, bytes);
			}
			if (bad)
				add(&srv_badframes, bad);
		}
	}
	for (i = 0; i < ncs; i++)
		free(cs[i].buf);
	close(ep);
	return NULL;
}

/* ---- clients -------------------------------------------------------------- */

/* Fill @buf with whole messages of up to @cap bytes; record message ends. */
static size_t build_batch(unsigned char *buf, size_t cap, uint64_t *seed,
			  size_t *ends, size_t *nmsgs)
{
	size_t off = 0, n = 0;

	for (;;) {
		uint32_t plen = pick_size(seed);

		if (off + plen + HDR > cap && n > 0)
			break;
		put_be32(buf + off, plen);
		memset(buf + off + HDR, 'a' + n % 26, plen);
		off += plen + HDR;
		ends[n++] = off;
		if (off + HDR + (msg_size ? msg_size : MIN_MIXED) > cap)
			break;
	}
	*nmsgs = n;
	return off;
}

static void *stream_client(void *arg)
{
	long id = (long)arg;
	int fd = client_fd[id];
	size_t cap = msg_size ? STREAM_BATCH : MIXED_BATCH;
	uint64_t seed = 0x9e3779b97f4a7c15ull * (id + 1);
	unsigned char *buf;
	size_t *ends, len, n, i;

	if (cap < MAX_MSG)
		cap = MAX_MSG;
	buf = malloc(cap);
	ends = malloc(cap / (HDR + 1) * sizeof(*ends));
	if (!buf || !ends)
		die("malloc");
	len = build_batch(buf, cap, &seed, ends, &n);
	while (!stop_send && !abort_run) {
		size_t w = write_full(fd, buf, len);

		if (w == len) {
			add(&cli_msgs, n);
			add(&cli_bytes, len);
			continue;
		}
		/* Stalled or aborted: count the messages that went out whole. */
		for (i = 0; i < n && ends[i] <= w; i++)
			;
		add(&cli_msgs, i);
		add(&cli_bytes, i ? ends[i - 1] : 0);
		abort_run = 1;
		break;
	}
	free(buf);
	free(ends);
	return NULL;
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

/* Request: header, send time (ns), client id, filler. */
static size_t make_request(unsigned char *buf, uint64_t *seed, long id)
{
	uint32_t plen = pick_size(seed);
	uint64_t t = now_ns();
	uint32_t cid = id;

	put_be32(buf, plen);
	memcpy(buf + HDR, &t, sizeof(t));
	memcpy(buf + HDR + 8, &cid, sizeof(cid));
	return plen + HDR;
}

static int send_request(int fd, unsigned char *req, uint64_t *seed, long id)
{
	size_t len = make_request(req, seed, id);

	if (write_full(fd, req, len) != len)
		return -1;
	add(&cli_msgs, 1);
	add(&cli_bytes, len);
	return 0;
}

static void *echo_client(void *arg)
{
	long id = (long)arg;
	int fd = client_fd[id];
	uint64_t seed = 0x9e3779b97f4a7c15ull * (id + 1);
	unsigned char *req, *buf;
	size_t have = 0;

	req = calloc(1, MAX_MSG);
	buf = malloc(CONN_BUF);
	if (!req || !buf)
		die("malloc");
	if (send_request(fd, req, &seed, id)) {
		abort_run = 1;
		goto out;
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
		size_t off = 0;

		while (have - off >= HDR) {
			uint32_t plen = get_be32(buf + off);
			uint64_t t;

			if (plen > MAX_PAYLOAD || plen < 12) {
				add(&echo_badreplies, 1);
				abort_run = 1;
				break;
			}
			if (have - off < plen + HDR)
				break;
			memcpy(&t, buf + off + HDR, sizeof(t));
			/* kcmd: the reply must be to this client's request. */
			if (var == V_KCMD) {
				uint32_t cid;

				memcpy(&cid, buf + off + HDR + 8, sizeof(cid));
				if (cid != (uint32_t)id)
					add(&echo_badreplies, 1);
			}
			lat_add(&lat[id], now_ns() - t);
			add(&echo_replies, 1);
			add(&echo_reply_bytes, plen + HDR);
			off += plen + HDR;
			if (!stop_send && send_request(fd, req, &seed, id)) {
				abort_run = 1;
				break;
			}
		}
		if (off && off < have)
			memmove(buf, buf + off, have - off);
		have -= off;
	}
out:
	free(req);
	free(buf);
	return NULL;
}

/* ---- connections ---------------------------------------------------------- */

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
		fcntl(client_fd[i], F_SETFL, O_NONBLOCK);
		if (!uses_kcm())
			fcntl(server_fd[i], F_SETFL, O_NONBLOCK);
	}
	close(lfd);
}

/* Copy /proc/net/kcm{,_stats} to stdout as "# " comment lines. */
static void dump_kcm_proc(void)
{
	static const char *const files[] = { "/proc/net/kcm", "/proc/net/kcm_stats" };
	char line[512];
	unsigned int i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		FILE *f = fopen(files[i], "r");

		if (!f)
			continue;
		printf("# %s:\n", files[i]);
		while (fgets(line, sizeof(line), f))
			printf("#   %s", line);
		fclose(f);
	}
	fflush(stdout);
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
		"usage: %s -w stream|echo -v kcm|user|tcp|kcmd|kcmb -s SIZE(0=mixed) -c CONNS -t THREADS\n"
		"          [-d SECONDS] [-g STALL_SECONDS] [-r REP]   (kcmb: stream only)\n", prog);
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

static uint64_t prog_srv_bytes(void) { return get(&srv_bytes); }
static uint64_t prog_echo(void) { return get(&echo_replies); }

int main(int argc, char **argv)
{
	pthread_t srv[MAX_THREADS], cli[MAX_CONNS];
	double t0, t_stop, t_end, last_move;
	int opt, i, stalled = 0;
	const char *status;

	while ((opt = getopt(argc, argv, "w:v:s:c:t:d:g:r:")) != -1) {
		switch (opt) {
		case 'w': i = lookup(optarg, wl_name, 2); if (i < 0) usage(argv[0]); wl = i; break;
		case 'v': i = lookup(optarg, var_name, 5); if (i < 0) usage(argv[0]); var = i; break;
		case 's': msg_size = atoi(optarg); break;
		case 'c': nconns = atoi(optarg); break;
		case 't': nthreads = atoi(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'g': stall_secs = atof(optarg); break;
		case 'r': rep = atoi(optarg); break;
		default: usage(argv[0]);
		}
	}
	if (nconns < 1 || nconns > MAX_CONNS || nthreads < 1 ||
	    nthreads > MAX_THREADS || msg_size < 0 || msg_size > MAX_PAYLOAD ||
	    (wl == W_ECHO && msg_size && msg_size < 12) ||
	    (wl == W_ECHO && var == V_KCMB) || duration <= 0)
		usage(argv[0]);
	signal(SIGPIPE, SIG_IGN);

	make_conns();
	if (uses_kcm())
		setup_kcm();
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&srv[i], NULL,
				   uses_kcm() ? kcm_server : epoll_server,
				   (void *)(long)i))
			die("pthread_create");

	t0 = now_s();
	for (i = 0; i < nconns; i++)
		if (pthread_create(&cli[i], NULL,
				   wl == W_STREAM ? stream_client : echo_client,
				   (void *)(long)i))
			die("pthread_create");

	if (wl == W_STREAM) {
		stalled = watch(t0 + duration, prog_srv_bytes, NULL, &last_move);
		t_stop = now_s();
		drain_deadline = t_stop + stall_secs;
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
		stalled = watch(t0 + duration, prog_echo, NULL, &last_move);
		echo_replies_at_stop = get(&echo_replies);
		t_stop = now_s();
		drain_deadline = t_stop + stall_secs;
		stop_send = 1;
		while (!stalled && get(&echo_quiet) < (uint64_t)nconns) {
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
		for (i = 0; i < nconns; i++)
			pthread_join(cli[i], NULL);
		t_end = now_s();
	}
	server_quit = 1;

	uint64_t sent = get(&cli_msgs), sbytes = get(&cli_bytes);
	uint64_t rmsgs, rbytes = get(&srv_bytes);
	int mismatch;

	if (var == V_TCP && msg_size)
		rmsgs = rbytes / (msg_size + HDR);
	else if (var == V_TCP)
		rmsgs = rbytes == sbytes ? sent : 0;	/* no framing to count */
	else
		rmsgs = get(&srv_msgs);
	if (wl == W_STREAM)
		mismatch = rmsgs != sent || rbytes != sbytes ||
			   get(&srv_badframes);
	else
		mismatch = get(&echo_replies) != sent ||
			   get(&echo_reply_bytes) != sbytes ||
			   get(&echo_badreplies) || get(&srv_badframes) ||
			   (var != V_TCP && rmsgs != sent);
	if (get(&srv_badframes) || get(&echo_badreplies))
		status = "misframed";	/* lengths that disagree with prefixes */
	else if (stalled && (wl == W_STREAM ? rbytes < sbytes :
			     get(&echo_replies) < sent))
		status = "stalled";
	else if (mismatch)
		status = "mismatch";
	else
		status = "ok";

	print_status(status);
	if (!strcmp(status, "stalled"))
		printf(" stall=%s", stall_why);
	if (wl == W_STREAM) {
		double secs = t_end - t0;

		if (secs <= 0)
			secs = 1e-9;
		printf(" secs=%.3f sent_msgs=%llu recv_msgs=%llu sent_bytes=%llu recv_bytes=%llu badframes=%llu msgs_s=%.0f mb_s=%.3f\n",
		       secs, (unsigned long long)sent, (unsigned long long)rmsgs,
		       (unsigned long long)sbytes, (unsigned long long)rbytes,
		       (unsigned long long)get(&srv_badframes),
		       rmsgs / secs, rbytes / secs / 1e6);
	} else {
		size_t n = 0, k = 0;
		uint64_t *all;
		double secs = t_stop - t0;

		for (i = 0; i < nconns; i++)
			n += lat[i].n;
		all = malloc((n ? n : 1) * sizeof(*all));
		for (i = 0; all && i < nconns; i++) {
			memcpy(all + k, lat[i].v, lat[i].n * sizeof(*all));
			k += lat[i].n;
		}
		if (all)
			qsort(all, k, sizeof(*all), cmp_u64);
		printf(" secs=%.3f requests=%llu replies=%llu server_msgs=%llu badreplies=%llu rps=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f\n",
		       secs, (unsigned long long)sent,
		       (unsigned long long)get(&echo_replies),
		       (unsigned long long)rmsgs,
		       (unsigned long long)get(&echo_badreplies),
		       echo_replies_at_stop / secs,
		       pct_us(all, k, 0.50), pct_us(all, k, 0.99),
		       pct_us(all, k, 0.999));
		(void)t_end;
	}
	fflush(stdout);
	/* A stalled KCM run: leave the module's view of it in the log. */
	if (uses_kcm() && strcmp(status, "ok"))
		dump_kcm_proc();
	/*
	 * Exit without joining the server threads: one stuck in a stalled
	 * KCM socket must not keep the run alive; exit closes every socket.
	 */
	_exit(0);
}
