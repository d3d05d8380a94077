// SPDX-License-Identifier: GPL-2.0
/*
 * kcm_reqresp_server: a request/response server on one KCM multiplexor.
 *
 * Every TCP connection accepted on a loopback port is attached to one mux.
 * T worker threads each own a KCM socket of that mux (the first one and
 * T-1 clones) with KCM_RECV_ORIGIN on, so every request they receive comes
 * with the socket cookie of the connection it arrived on.  A worker answers
 * each request on exactly that connection, by passing the cookie back to
 * sendmsg() in a KCM_ORIGIN control message.  Requests of one connection
 * may be handled by different workers; each response still goes home.
 *
 * Wire format, both directions: a 4-byte big-endian length of what follows,
 * then a 16-byte header of big-endian words and a payload:
 *   request:  'KRQ1', client id, connection index, request id, payload
 *   response: 'KRS1', client id, connection index, request id, then the
 *             request's payload with every byte inverted.
 *
 * Usage: kcm_reqresp_server [-p port] [-t workers] [-n connections]
 *   -p  TCP port on 127.0.0.1 (default 0: any free port; the chosen one is
 *       printed on the first line of output, "listening on 127.0.0.1:PORT")
 *   -t  worker threads, one KCM socket each (default 4)
 *   -n  exit once that many connections have come and gone (default: run
 *       until SIGINT or SIGTERM)
 * A closed connection is unattached.  At exit the server prints how many
 * requests each worker answered.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/kcm.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef AF_KCM
#define AF_KCM 41
#endif
#ifndef SOL_KCM
#define SOL_KCM 281
#endif

#define REQ_MAGIC	0x4b525131u	/* "KRQ1" */
#define RSP_MAGIC	0x4b525331u	/* "KRS1" */
#define HDR_LEN		20		/* length word + 16-byte header */
#define MAX_MSG		(64 * 1024)
#define MAX_WORKERS	64
#define MAX_CONNS	1024

static volatile sig_atomic_t stopping;

struct worker {
	pthread_t th;
	int id;
	int kcm;
	unsigned long answered;		/* responses sent */
	unsigned long undeliverable;	/* connection gone before the answer */
	unsigned long bad;		/* malformed requests */
};

static void die(const char *what)
{
	fprintf(stderr, "kcm_reqresp_server: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/*
 * The framing program: a message is a 4-byte big-endian length followed by
 * that many bytes, so its total length is the loaded word plus 4.
 */
static int load_framing_prog(void)
{
	struct bpf_insn prog[] = {
		/* r6 = ctx, as the packet-load instruction requires */
		{ .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_6,
		  .src_reg = BPF_REG_1 },
		/* r0 = be32 at offset 0 */
		{ .code = BPF_LD | BPF_W | BPF_ABS, .imm = 0 },
		/* r0 += 4 */
		{ .code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = BPF_REG_0,
		  .imm = 4 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	static const char license[] = "GPL";
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insns = (uint64_t)(uintptr_t)prog;
	attr.insn_cnt = sizeof(prog) / sizeof(prog[0]);
	attr.license = (uint64_t)(uintptr_t)license;
	fd = syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	if (fd < 0)
		die("BPF_PROG_LOAD");
	return fd;
}

/* Receives one request; returns its length, 0 to poll the stop flag. */
static ssize_t recv_request(int kcm, unsigned char *buf, uint64_t *cookie,
			    int *have_cookie)
{
	union {
		char b[CMSG_SPACE(sizeof(uint64_t))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { buf, MAX_MSG };
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.b, .msg_controllen = sizeof(ctl.b),
	};
	struct cmsghdr *cm;
	ssize_t n;

	n = recvmsg(kcm, &m, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		die("recvmsg");
	}
	*have_cookie = 0;
	for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
		if (cm->cmsg_level == SOL_KCM && cm->cmsg_type == KCM_ORIGIN &&
		    cm->cmsg_len == CMSG_LEN(sizeof(uint64_t))) {
			memcpy(cookie, CMSG_DATA(cm), sizeof(*cookie));
			*have_cookie = 1;
		}
	}
	if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return -1;
	return n;
}

/* Sends @len bytes of @buf on the attached connection with @cookie. */
static ssize_t send_directed(int kcm, const void *buf, size_t len,
			     uint64_t cookie)
{
	union {
		char b[CMSG_SPACE(sizeof(uint64_t))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.b, .msg_controllen = sizeof(ctl.b),
	};
	struct cmsghdr *cm;

	memset(&ctl, 0, sizeof(ctl));
	cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_KCM;
	cm->cmsg_type = KCM_ORIGIN;
	cm->cmsg_len = CMSG_LEN(sizeof(cookie));
	memcpy(CMSG_DATA(cm), &cookie, sizeof(cookie));
	return sendmsg(kcm, &m, 0);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned char *req = malloc(MAX_MSG), *rsp = malloc(MAX_MSG);
	struct timeval tv = { 0, 200 * 1000 };
	int one = 1;

	if (!req || !rsp)
		die("malloc");
	if (setsockopt(w->kcm, SOL_KCM, KCM_RECV_ORIGIN, &one, sizeof(one)))
		die("setsockopt(KCM_RECV_ORIGIN)");
	/* Wake up now and then to see whether the server is stopping. */
	if (setsockopt(w->kcm, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		die("setsockopt(SO_RCVTIMEO)");

	while (!stopping) {
		uint64_t cookie = 0;
		int have_cookie;
		ssize_t n = recv_request(w->kcm, req, &cookie, &have_cookie);
		size_t i;

		if (n == 0)
			continue;
		if (n < HDR_LEN || get32(req) != (uint32_t)n - 4 ||
		    get32(req + 4) != REQ_MAGIC || !have_cookie) {
			w->bad++;
			continue;
		}
		/* Same ids, payload inverted. */
		memcpy(rsp, req, n);
		put32(rsp + 4, RSP_MAGIC);
		for (i = HDR_LEN; i < (size_t)n; i++)
			rsp[i] = ~req[i];
		if (send_directed(w->kcm, rsp, n, cookie) == n) {
			w->answered++;
		} else if (errno == EPIPE || errno == ENOENT) {
			/* The client went away before its answer. */
			w->undeliverable++;
		} else if (errno != EINTR) {
			die("sendmsg");
		}
	}
	free(req);
	free(rsp);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: kcm_reqresp_server [-p port] [-t workers] [-n connections]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static struct worker workers[MAX_WORKERS];
	struct pollfd pfd[MAX_CONNS + 1];
	int nworkers = 4, port = 0, quit_after = 0;
	unsigned long accepted = 0, closed = 0, total = 0;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	struct sigaction sa;
	int lfd, prog, nconns = 0, one = 1, opt, i;

	while ((opt = getopt(argc, argv, "p:t:n:h")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 't':
			nworkers = atoi(optarg);
			break;
		case 'n':
			quit_after = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (nworkers < 1 || nworkers > MAX_WORKERS || port < 0 || port > 65535)
		usage();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The mux and its sockets: the first one, then clones. */
	workers[0].kcm = socket(AF_KCM, SOCK_DGRAM, KCMPROTO_CONNECTED);
	if (workers[0].kcm < 0)
		die("socket(AF_KCM) (is the kcm module loaded?)");
	for (i = 1; i < nworkers; i++) {
		struct kcm_clone cl = { .fd = -1 };

		if (ioctl(workers[0].kcm, SIOCKCMCLONE, &cl))
			die("SIOCKCMCLONE");
		workers[i].kcm = cl.fd;
	}
	prog = load_framing_prog();

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    listen(lfd, 128))
		die("bind/listen");
	if (getsockname(lfd, (struct sockaddr *)&sin, &slen))
		die("getsockname");
	printf("listening on 127.0.0.1:%d, %d workers\n", ntohs(sin.sin_port),
	       nworkers);
	fflush(stdout);

	for (i = 0; i < nworkers; i++) {
		workers[i].id = i;
		errno = pthread_create(&workers[i].th, NULL, worker_main,
				       &workers[i]);
		if (errno)
			die("pthread_create");
	}

	/*
	 * Accept and attach connections; unattach and close the ones that
	 * end (the peer closed: POLLRDHUP/POLLHUP; the mux gave up on it:
	 * POLLERR).  Data never shows up here: the mux reads it.
	 */
	pfd[0].fd = lfd;
	pfd[0].events = POLLIN;
	while (!stopping && !(quit_after && closed >= (unsigned long)quit_after)) {
		int n = poll(pfd, nconns + 1, 200);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		for (i = 1; i <= nconns; i++) {
			struct kcm_unattach un;

			if (!(pfd[i].revents & (POLLRDHUP | POLLHUP | POLLERR)))
				continue;
			un.fd = pfd[i].fd;
			ioctl(workers[0].kcm, SIOCKCMUNATTACH, &un);
			close(pfd[i].fd);
			pfd[i] = pfd[nconns--];
			closed++;
			i--;
		}
		if (pfd[0].revents & POLLIN) {
			struct kcm_attach at;
			int fd = accept(lfd, NULL, NULL);

			if (fd < 0)
				continue;
			if (nconns == MAX_CONNS) {
				close(fd);
				continue;
			}
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
			at.fd = fd;
			at.bpf_fd = prog;
			if (ioctl(workers[0].kcm, SIOCKCMATTACH, &at)) {
				fprintf(stderr, "kcm_reqresp_server: SIOCKCMATTACH: %s\n",
					strerror(errno));
				close(fd);
				continue;
			}
			accepted++;
			nconns++;
			pfd[nconns].fd = fd;
			pfd[nconns].events = POLLRDHUP;
			pfd[nconns].revents = 0;
		}
	}

	stopping = 1;
	for (i = 0; i < nworkers; i++) {
		pthread_join(workers[i].th, NULL);
		total += workers[i].answered;
	}
	printf("server: %lu connections accepted, %lu closed, %lu requests answered\n",
	       accepted, closed, total);
	for (i = 0; i < nworkers; i++)
		printf("server: worker %d answered %lu, undeliverable %lu, malformed %lu\n",
		       i, workers[i].answered, workers[i].undeliverable,
		       workers[i].bad);
	return 0;
}
