// SPDX-License-Identifier: GPL-2.0
/*
 * kcm_server: a message server on AF_KCM.
 *
 * Accepts M TCP connections (default 3), attaches them all to one KCM
 * multiplexor with a framing program written in BPF C
 * (samples/kcm/bpf/kcm_framing.bpf.c, embedded in this binary and loaded
 * with libbpf), and serves them with N worker threads (default 4), each on
 * its own KCM socket: a worker receives whole requests and sends each back
 * as the reply (a memcached request's magic 0x80 becomes 0x81).  When a
 * connection fails or closes, poll() reports it on the TCP socket
 * (POLLERR, SO_ERROR; POLLRDHUP): the server unattaches and closes it and
 * goes on with the others.  At the end it prints how many messages each
 * worker handled.
 *
 *   kcm_server [-p PORT] [-w WORKERS] [-m CONNS] [-f thrift|len16|memcache]
 *   kcm_server --demo     the `make run` demo: runs kcm_client and kcmstat
 *                         (found next to this binary) against itself
 */
#define _GNU_SOURCE	/* POLLRDHUP */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <linux/sockios.h>	/* SIOCPROTOPRIVATE, used by linux/kcm.h */
#include <linux/kcm.h>
#include <bpf/libbpf.h>

#ifndef AF_KCM
#define AF_KCM 41
#endif

/* The BPF object, embedded at build time (see the top-level Makefile). */
#ifndef KCM_FRAMING_OBJ
#error "build with -DKCM_FRAMING_OBJ=\"path/to/kcm_framing.bpf.o\""
#endif
__asm__(".pushsection .rodata\n"
	".balign 8\n"
	"kcm_framing_obj:\n"
	".incbin \"" KCM_FRAMING_OBJ "\"\n"
	"kcm_framing_obj_end:\n"
	".popsection\n");
extern const char kcm_framing_obj[], kcm_framing_obj_end[];

#define MAX_WORKERS 64
#define MAX_CONNS 64
#define MAX_MSG (1 << 20)

struct worker {
	pthread_t thread;
	int id, fd;
	unsigned long msgs, bytes, errors;
};

static volatile sig_atomic_t stopping;
static struct worker workers[MAX_WORKERS];
static int nworkers = 4, nconns = 3;
static const char *framing = "thrift";

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned char *buf = malloc(MAX_MSG);

	if (!buf)
		return NULL;
	while (!stopping) {
		ssize_t n = recv(w->fd, buf, MAX_MSG, 0);

		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				w->errors++;
			continue;	/* SO_RCVTIMEO: look at stopping */
		}
		w->msgs++;
		w->bytes += (unsigned long)n;
		if (!strcmp(framing, "memcache") && n > 0)
			buf[0] = 0x81;	/* the response to the request */
		if (send(w->fd, buf, (size_t)n, 0) != n)
			w->errors++;
	}
	free(buf);
	return NULL;
}

/* Load the framing program @name from the embedded object: its fd. */
static int load_framing(const char *name, struct bpf_object **objp)
{
	char prog[64];
	struct bpf_object *obj;
	struct bpf_program *p;
	int err;

	snprintf(prog, sizeof(prog), "kcm_%s", name);
	obj = bpf_object__open_mem(kcm_framing_obj,
				   (size_t)(kcm_framing_obj_end -
					    kcm_framing_obj), NULL);
	if (!obj) {
		fprintf(stderr, "kcm_server: bpf_object__open_mem: %s\n",
			strerror(errno));
		return -1;
	}
	/* Load only the program we need. */
	bpf_object__for_each_program(p, obj)
		bpf_program__set_autoload(p, !strcmp(bpf_program__name(p),
						     prog));
	p = bpf_object__find_program_by_name(obj, prog);
	if (!p) {
		fprintf(stderr, "kcm_server: no framing '%s' (thrift, len16, "
			"memcache)\n", name);
		bpf_object__close(obj);
		return -1;
	}
	err = bpf_object__load(obj);
	if (err) {
		fprintf(stderr, "kcm_server: loading %s: %s\n", prog,
			strerror(-err));
		bpf_object__close(obj);
		return -1;
	}
	*objp = obj;
	return bpf_program__fd(p);
}

static int listen_on(int port, int *bound)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd, one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((unsigned short)port);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
				 sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(fd, MAX_CONNS) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		perror("kcm_server: listen");
		return -1;
	}
	*bound = ntohs(a.sin_port);
	return fd;
}

/* The directory of this binary, to find kcm_client and kcmstat. */
static void sibling(char *out, size_t cap, const char *name)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n < 0)
		n = 0;
	self[n] = 0;
	slash = strrchr(self, '/');
	if (slash)
		slash[1] = 0;
	else
		strcpy(self, "./");
	snprintf(out, cap, "%s%s", self, name);
}

static pid_t spawn(char *const argv[])
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		execv(argv[0], argv);
		fprintf(stderr, "kcm_server: %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	return pid;
}

static void run_kcmstat(void)
{
	char path[PATH_MAX];
	char *argv[] = { path, NULL };
	pid_t pid;

	sibling(path, sizeof(path), "kcmstat");
	printf("\n$ kcmstat\n");
	pid = spawn(argv);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	printf("\n");
}

static void print_workers(const char *when)
{
	unsigned long total = 0;
	int i;

	for (i = 0; i < nworkers; i++)
		total += workers[i].msgs;
	printf("kcm_server: %s: %lu messages\n", when, total);
	for (i = 0; i < nworkers; i++)
		printf("  worker %d (KCM socket fd %d): %6lu messages %8lu "
		       "bytes %5.1f%%%s\n", i, workers[i].fd, workers[i].msgs,
		       workers[i].bytes,
		       total ? 100.0 * workers[i].msgs / total : 0.0,
		       workers[i].errors ? "  (errors)" : "");
	fflush(stdout);
}

static void usage(void)
{
	fprintf(stderr, "usage: kcm_server [-p PORT] [-w WORKERS] [-m CONNS] "
		"[-f thrift|len16|memcache] | --demo\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct timeval tv = { .tv_usec = 200000 };
	struct pollfd pf[MAX_CONNS];
	struct bpf_object *obj = NULL;
	int port = 0, demo = 0, lfd, kcm, prog, i, opt, active;
	unsigned long snapshot_at = 0;
	pid_t client = -1;
	int client_status = 0;

	if (argc == 2 && !strcmp(argv[1], "--demo")) {
		demo = 1;
		snapshot_at = 1000;
	} else {
		while ((opt = getopt(argc, argv, "p:w:m:f:")) != -1) {
			switch (opt) {
			case 'p': port = atoi(optarg); break;
			case 'w': nworkers = atoi(optarg); break;
			case 'm': nconns = atoi(optarg); break;
			case 'f': framing = optarg; break;
			default: usage();
			}
		}
	}
	if (nworkers < 1 || nworkers > MAX_WORKERS || nconns < 1 ||
	    nconns > MAX_CONNS)
		usage();
	signal(SIGPIPE, SIG_IGN);
	libbpf_set_print(NULL);

	prog = load_framing(framing, &obj);
	if (prog < 0)
		return 1;
	lfd = listen_on(port, &port);
	if (lfd < 0)
		return 1;

	/* One mux: the first KCM socket, then one clone per other worker. */
	kcm = socket(AF_KCM, SOCK_DGRAM, KCMPROTO_CONNECTED);
	if (kcm < 0) {
		perror("kcm_server: socket(AF_KCM)");
		return 1;
	}
	for (i = 0; i < nworkers; i++) {
		struct kcm_clone c = { .fd = -1 };

		if (i && ioctl(kcm, SIOCKCMCLONE, &c) < 0) {
			perror("kcm_server: SIOCKCMCLONE");
			return 1;
		}
		workers[i].id = i;
		workers[i].fd = i ? c.fd : kcm;
		setsockopt(workers[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
			   sizeof(tv));
	}
	printf("kcm_server: framing %s (BPF C, loaded with libbpf %s), "
	       "%d workers, waiting for %d connections on 127.0.0.1:%d\n",
	       framing, libbpf_version_string(), nworkers, nconns, port);
	fflush(stdout);

	if (demo) {
		char path[PATH_MAX], p[16];
		char *cargv[] = { path, "-p", p, "-m", "3", "-n", "3000",
				  "-r", "1500", "-f", "thrift", NULL };

		sibling(path, sizeof(path), "kcm_client");
		snprintf(p, sizeof(p), "%d", port);
		client = spawn(cargv);
	}

	for (i = 0; i < nconns; i++) {
		struct kcm_attach at = { .bpf_fd = prog };

		at.fd = accept(lfd, NULL, NULL);
		if (at.fd < 0) {
			perror("kcm_server: accept");
			return 1;
		}
		if (ioctl(kcm, SIOCKCMATTACH, &at) < 0) {
			perror("kcm_server: SIOCKCMATTACH");
			return 1;
		}
		pf[i].fd = at.fd;
		pf[i].events = POLLRDHUP;	/* POLLERR, POLLHUP: always */
		printf("kcm_server: connection %d attached (TCP fd %d)\n", i,
		       at.fd);
	}
	close(lfd);
	fflush(stdout);
	for (i = 0; i < nworkers; i++)
		pthread_create(&workers[i].thread, NULL, worker_main,
			       &workers[i]);

	/* Watch the connections: a failed or closed one is unattached. */
	for (active = nconns; active > 0;) {
		int n = poll(pf, (nfds_t)nconns, 100);

		if (snapshot_at) {
			unsigned long total = 0;

			for (i = 0; i < nworkers; i++)
				total += workers[i].msgs;
			if (total >= snapshot_at) {
				snapshot_at = 0;
				print_workers("so far");
				run_kcmstat();
			}
		}
		for (i = 0; n > 0 && i < nconns; i++) {
			struct kcm_unattach un = { .fd = pf[i].fd };
			int err = 0;
			socklen_t len = sizeof(err);

			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			getsockopt(pf[i].fd, SOL_SOCKET, SO_ERROR, &err, &len);
			if (pf[i].revents & POLLERR)
				printf("kcm_server: connection %d failed: "
				       "POLLERR, SO_ERROR %d (%s)\n", i, err,
				       strerror(err));
			else
				printf("kcm_server: connection %d closed by "
				       "the client%s%s\n", i, err ? ": " : "",
				       err ? strerror(err) : "");
			if (ioctl(kcm, SIOCKCMUNATTACH, &un) < 0)
				perror("kcm_server: SIOCKCMUNATTACH");
			close(pf[i].fd);
			pf[i].fd = -1;	/* poll() ignores it now */
			active--;
			printf("kcm_server: connection %d unattached, %d "
			       "left\n", i, active);
			fflush(stdout);
		}
	}
	stopping = 1;
	for (i = 0; i < nworkers; i++)
		pthread_join(workers[i].thread, NULL);
	print_workers("all connections gone");

	if (demo) {
		waitpid(client, &client_status, 0);
		run_kcmstat();
	}
	for (i = 0; i < nworkers; i++)
		close(workers[i].fd);
	bpf_object__close(obj);
	if (demo && !(WIFEXITED(client_status) &&
		      WEXITSTATUS(client_status) == 0)) {
		fprintf(stderr, "kcm_server: the client failed\n");
		return 1;
	}
	return 0;
}
