// SPDX-License-Identifier: GPL-2.0
/*
 * kcm_reqresp_client: load for kcm_reqresp_server, and a check that every
 * response comes back on the connection its request went out on.
 *
 * The client opens C independent TCP connections (plain sockets, no KCM
 * here), one thread each.  Each thread keeps up to W requests in flight on
 * its connection and sends R in all; a request carries the client id, the
 * connection index and a request id.  Responses may come back in any order
 * (several server workers share a connection), but each must name this
 * client, this connection and a request that is outstanding on it, and
 * carry that request's payload inverted.  Anything else is an error.
 *
 * Wire format: see kcm_reqresp_server.c.
 *
 * Usage: kcm_reqresp_client [-p port] [-c connections] [-r requests]
 *                           [-w window] [-i client-id] [-s server-binary]
 *                           [-T server-workers]
 *   -p  the server's port on 127.0.0.1.  Without -p the client starts
 *       kcm_reqresp_server itself (from -s, default: next to this binary)
 *       on a free port with -T workers (default 4), and stops it at the
 *       end.
 *   -c  connections (default 16), -r requests per connection (default 500),
 *   -w  requests in flight per connection (default 8),
 *   -i  client id (default: the process id)
 * Exit status 0 when every response was right, 1 otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAGIC	0x4b525131u	/* "KRQ1" */
#define RSP_MAGIC	0x4b525331u	/* "KRS1" */
#define HDR_LEN		20
#define MAX_PAYLOAD	2000
#define MAX_WINDOW	64
#define MAX_CONNS	512

static int port, nconns = 16, nreqs = 500, window = 8, server_workers = 4;
static uint32_t client_id;

struct slot {
	int busy;
	uint32_t req_id;
	uint32_t len;		/* payload bytes */
	uint32_t seed;		/* payload generator */
};

struct conn {
	pthread_t th;
	int idx;
	int fd;
	unsigned long sent, answered, errors;
	struct slot slots[MAX_WINDOW];
};

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

static uint32_t next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static unsigned char payload_byte(uint32_t seed, uint32_t i)
{
	uint32_t x = seed + i * 2654435761u;

	return (unsigned char)(x ^ (x >> 13));
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

static void complain(struct conn *c, const char *fmt, uint32_t a, uint32_t b)
{
	c->errors++;
	if (c->errors <= 5) {
		fprintf(stderr, "client: connection %d: ", c->idx);
		fprintf(stderr, fmt, a, b);
		fputc('\n', stderr);
	}
}

static int send_request(struct conn *c, struct slot *s, uint32_t req_id,
			uint32_t *rng)
{
	unsigned char buf[HDR_LEN + MAX_PAYLOAD];
	uint32_t i;

	s->busy = 1;
	s->req_id = req_id;
	s->len = next_rand(rng) % (MAX_PAYLOAD + 1);
	s->seed = next_rand(rng);
	put32(buf, HDR_LEN - 4 + s->len);
	put32(buf + 4, REQ_MAGIC);
	put32(buf + 8, client_id);
	put32(buf + 12, c->idx);
	put32(buf + 16, req_id);
	for (i = 0; i < s->len; i++)
		buf[HDR_LEN + i] = payload_byte(s->seed, i);
	if (write_all(c->fd, buf, HDR_LEN + s->len))
		return -1;
	c->sent++;
	return 0;
}

/* Reads one response and matches it with an outstanding request. */
static int read_response(struct conn *c)
{
	unsigned char buf[HDR_LEN + MAX_PAYLOAD];
	uint32_t len, i, req_id;
	struct slot *s = NULL;
	int k;

	if (read_all(c->fd, buf, 4))
		return -1;
	len = get32(buf);
	if (len < HDR_LEN - 4 || len > HDR_LEN - 4 + MAX_PAYLOAD) {
		complain(c, "response frame of %u bytes (%u): stream lost", len, 0);
		return -1;
	}
	if (read_all(c->fd, buf + 4, len))
		return -1;
	req_id = get32(buf + 16);
	if (get32(buf + 4) != RSP_MAGIC || get32(buf + 8) != client_id ||
	    get32(buf + 12) != (uint32_t)c->idx) {
		complain(c, "response for client %u connection %u is not ours",
			 get32(buf + 8), get32(buf + 12));
		return 0;
	}
	for (k = 0; k < window; k++)
		if (c->slots[k].busy && c->slots[k].req_id == req_id)
			s = &c->slots[k];
	if (!s) {
		complain(c, "response to request %u, which is not outstanding (%u)",
			 req_id, 0);
		return 0;
	}
	if (len != HDR_LEN - 4 + s->len) {
		complain(c, "response to request %u has %u payload bytes",
			 req_id, len - (HDR_LEN - 4));
	} else {
		for (i = 0; i < s->len; i++)
			if (buf[HDR_LEN + i] !=
			    (unsigned char)~payload_byte(s->seed, i))
				break;
		if (i < s->len)
			complain(c, "response to request %u: payload differs at byte %u",
				 req_id, i);
		else
			c->answered++;
	}
	s->busy = 0;
	return 0;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct timeval tv = { 10, 0 };
	uint32_t rng = 0x9e3779b9u ^ (client_id * 31u + c->idx * 7919u);
	uint32_t next_id = 1;
	int one = 1, inflight = 0, k;

	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sin, sizeof(sin))) {
		fprintf(stderr, "client: connection %d: connect: %s\n", c->idx,
			strerror(errno));
		c->errors++;
		return NULL;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A lost response must not hang the client. */
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	while (c->sent < (unsigned long)nreqs || inflight) {
		/* Fill the window, then wait for one answer. */
		for (k = 0; k < window && c->sent < (unsigned long)nreqs; k++) {
			if (c->slots[k].busy)
				continue;
			if (send_request(c, &c->slots[k], next_id++, &rng)) {
				complain(c, "write failed (%u, %u)", errno, 0);
				goto out;
			}
			inflight++;
		}
		if (read_response(c)) {
			complain(c, "%u requests still unanswered (read: errno %u)",
				 inflight, errno);
			goto out;
		}
		inflight = 0;
		for (k = 0; k < window; k++)
			inflight += c->slots[k].busy;
	}
out:
	close(c->fd);
	return NULL;
}

/* Starts the server binary on a free port; returns its pid. */
static pid_t start_server(const char *path, FILE **out)
{
	char line[256], workers[16];
	int pfd[2];
	pid_t pid;

	snprintf(workers, sizeof(workers), "%d", server_workers);

	if (pipe(pfd))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		execl(path, path, "-p", "0", "-t", workers, (char *)NULL);
		fprintf(stderr, "client: cannot run %s: %s\n", path,
			strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	*out = fdopen(pfd[0], "r");
	if (!*out || !fgets(line, sizeof(line), *out) ||
	    sscanf(line, "listening on 127.0.0.1:%d", &port) != 1) {
		fprintf(stderr, "client: the server did not start\n");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	printf("server: %s", line);
	return pid;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: kcm_reqresp_client [-p port] [-c connections] [-r requests] [-w window] [-i id] [-s server] [-T server-workers]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static struct conn conns[MAX_CONNS];
	char server_path[PATH_MAX] = "";
	unsigned long sent = 0, answered = 0, errors = 0;
	struct timespec t0, t1;
	FILE *server_out = NULL;
	pid_t server = 0;
	double secs;
	int opt, i;

	client_id = getpid();
	while ((opt = getopt(argc, argv, "p:c:r:w:i:s:T:h")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'c':
			nconns = atoi(optarg);
			break;
		case 'r':
			nreqs = atoi(optarg);
			break;
		case 'w':
			window = atoi(optarg);
			break;
		case 'i':
			client_id = strtoul(optarg, NULL, 0);
			break;
		case 'T':
			server_workers = atoi(optarg);
			break;
		case 's':
			snprintf(server_path, sizeof(server_path), "%s", optarg);
			break;
		default:
			usage();
		}
	}
	if (nconns < 1 || nconns > MAX_CONNS || nreqs < 0 || window < 1 ||
	    window > MAX_WINDOW || port < 0 || port > 65535)
		usage();
	signal(SIGPIPE, SIG_IGN);

	if (!port) {
		if (!server_path[0]) {
			char self[PATH_MAX];
			ssize_t n = readlink("/proc/self/exe", self,
					     sizeof(self) - 1);

			if (n < 0) {
				perror("client: readlink(/proc/self/exe)");
				return 1;
			}
			self[n] = 0;
			snprintf(server_path, sizeof(server_path),
				 "%s/kcm_reqresp_server", dirname(self));
		}
		server = start_server(server_path, &server_out);
		if (server < 0)
			return 1;
	}

	printf("client %u: %d connections x %d requests, window %d, to 127.0.0.1:%d\n",
	       client_id, nconns, nreqs, window, port);
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < nconns; i++) {
		conns[i].idx = i;
		errno = pthread_create(&conns[i].th, NULL, conn_main, &conns[i]);
		if (errno) {
			perror("client: pthread_create");
			return 1;
		}
	}
	for (i = 0; i < nconns; i++) {
		pthread_join(conns[i].th, NULL);
		sent += conns[i].sent;
		answered += conns[i].answered;
		errors += conns[i].errors;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;

	printf("client %u: %lu requests sent, %lu answered correctly, %lu errors, %.2f s (%.0f req/s)\n",
	       client_id, sent, answered, errors, secs,
	       secs > 0 ? answered / secs : 0.0);
	if (server > 0) {
		char line[256];
		int status;

		kill(server, SIGTERM);
		while (fgets(line, sizeof(line), server_out))
			fputs(line, stdout);
		waitpid(server, &status, 0);
	}
	if (errors || answered != (unsigned long)nconns * nreqs) {
		printf("FAIL\n");
		return 1;
	}
	printf("PASS: every response came back on its own connection\n");
	return 0;
}
