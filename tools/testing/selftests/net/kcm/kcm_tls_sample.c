// SPDX-License-Identifier: GPL-2.0
/*
 * The kTLS sample pair (samples/kcm/kcm_tls_server.c, kcm_tls_client.c):
 * a real TLS handshake with OpenSSL, kTLS keyed from its secrets, the
 * socket attached to KCM, framed messages echoed by KCM workers to a
 * client that keeps TLS in user space.
 *
 * Each case starts the server from where the VM has the samples
 * (/samples/, or the directory in $KCM_SAMPLES), reads the port and the
 * certificate's fingerprint from its first line, runs the client against
 * it and asserts that the client exited 0 having had every message echoed
 * (it checks each reply's content and order itself), that the server
 * echoed exactly that many on one connection, and that the two agree on
 * the TLS version.
 *
 * On Linux's kcm.ko the server receives nothing that is a message (its
 * parser reads the ciphertext in TCP's queue): every case is that bug.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kcm_test.h"

#define KTLS_RX_BUG	KCM_LINUX_BUG("parses the ciphertext in TCP's queue")

/* The path of sample name, or a skip if the VM has none. */
static const char *sample(const char *name)
{
	static char path[2][256];
	static int next;
	const char *dir = getenv("KCM_SAMPLES");
	char *p = path[next++ % 2];

	snprintf(p, sizeof(path[0]), "%s/%s", dir ? dir : "/samples", name);
	if (access(p, X_OK))
		kcm_skip("no %s (build it with make samples)", p);
	return p;
}

/* A child running argv, its stdout and stderr on the pipe *out. */
static pid_t spawn(char *const argv[], int *out)
{
	int fds[2];
	pid_t pid;

	ASSERT_OK(pipe(fds));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (!pid) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	*out = fds[0];
	return pid;
}

/* Appends what fd has to buf (NUL-terminated), until it ends or deadline
 * (ms since kcm_now_ms's epoch) or, if line, a whole line has come.
 */
static void read_out(int fd, char *buf, size_t cap, long long deadline,
		     int line)
{
	size_t len = strlen(buf);
	ssize_t n;

	while (len + 1 < cap && !(line && strchr(buf, '\n'))) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - kcm_now_ms();

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += n;
		buf[len] = '\0';
	}
}

/* Waits up to deadline for pid, then kills it; returns its status. */
static int reap(pid_t pid, long long deadline)
{
	int st;

	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (kcm_now_ms() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		kcm_msleep(20);
	}
	return st;
}

/*
 * Runs the server with workers threads (-2: TLS 1.2) and the client with
 * messages, window and the TLS 1.3 suites (NULL: OpenSSL's default);
 * everything must be echoed, in order.
 */
static void run_pair(int workers, int tls12, int messages, int window,
		     const char *suites)
{
	char srv_out[1024] = "", cli_out[1024] = "", want[128];
	char port[16], fp[80], t[16], m[16], w[16];
	char *srv_argv[8], *cli_argv[16];
	int srv_fd, cli_fd, st, n = 0, p;
	long long deadline;
	pid_t srv, cli;

	snprintf(t, sizeof(t), "%d", workers);
	srv_argv[n++] = (char *)sample("kcm_tls_server");
	srv_argv[n++] = "-t";
	srv_argv[n++] = t;
	srv_argv[n++] = "-n";
	srv_argv[n++] = "1";
	if (tls12)
		srv_argv[n++] = "-2";
	srv_argv[n] = NULL;
	srv = spawn(srv_argv, &srv_fd);

	/* "listening on 127.0.0.1:PORT sha256 HEX" */
	read_out(srv_fd, srv_out, sizeof(srv_out), kcm_now_ms() + 20000, 1);
	if (sscanf(srv_out, "listening on 127.0.0.1:%d sha256 %64s", &p, fp) != 2) {
		kill(srv, SIGKILL);
		waitpid(srv, &st, 0);
		KCM_FAIL("server's first line: '%s'", srv_out);
	}
	snprintf(port, sizeof(port), "%d", p);
	snprintf(m, sizeof(m), "%d", messages);
	snprintf(w, sizeof(w), "%d", window);
	n = 0;
	cli_argv[n++] = (char *)sample("kcm_tls_client");
	cli_argv[n++] = "-p";
	cli_argv[n++] = port;
	cli_argv[n++] = "-m";
	cli_argv[n++] = m;
	cli_argv[n++] = "-w";
	cli_argv[n++] = w;
	cli_argv[n++] = "-F";
	cli_argv[n++] = fp;
	if (suites) {
		cli_argv[n++] = "-c";
		cli_argv[n++] = (char *)suites;
	}
	cli_argv[n] = NULL;
	cli = spawn(cli_argv, &cli_fd);

	deadline = kcm_now_ms() + 60000;
	read_out(cli_fd, cli_out, sizeof(cli_out), deadline, 0);
	st = reap(cli, deadline);
	close(cli_fd);
	/* The server ends once the client's connection has. */
	read_out(srv_fd, srv_out, sizeof(srv_out), kcm_now_ms() + 10000, 0);
	reap(srv, kcm_now_ms() + 1000);
	close(srv_fd);
	KCM_LOG("server: %s", srv_out);
	KCM_LOG("client: %s", cli_out);

	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	snprintf(want, sizeof(want), "echoed %d messages over %s", messages,
		 tls12 ? "TLSv1.2" : "TLSv1.3");
	EXPECT_TRUE(strstr(cli_out, want));
	if (suites)
		EXPECT_TRUE(strstr(cli_out, suites));
	snprintf(want, sizeof(want), "echoed %d messages on 1 connections",
		 messages);
	EXPECT_TRUE(strstr(srv_out, want));
	if (kcm_case_failed)
		kcm_diag("server:\n%sclient:\n%s", srv_out, cli_out);
}

/* Four workers: each request waits for its reply, so the order holds. */
KCM_TEST(tls13_four_workers_one_at_a_time, KTLS_RX_BUG, KCM_TIMEOUT(120))
{
	run_pair(4, 0, 500, 1, NULL);
}

/* One worker keeps the order: up to 64 requests outstanding, many in
 * one record, the long ones over several.  ChaCha20-Poly1305, which the
 * client prefers on the VM's CPU (no AES instructions), then AES-GCM.
 */
KCM_TEST(tls13_one_worker_pipelined, KTLS_RX_BUG, KCM_TIMEOUT(120))
{
	run_pair(1, 0, 2000, 64, NULL);
}

KCM_TEST(tls13_aes_gcm_pipelined, KTLS_RX_BUG, KCM_TIMEOUT(120))
{
	run_pair(1, 0, 2000, 64, "TLS_AES_128_GCM_SHA256");
}

/* TLS 1.2, which OpenSSL keys kTLS for in both directions itself. */
KCM_TEST(tls12_one_worker_pipelined, KTLS_RX_BUG, KCM_TIMEOUT(120))
{
	run_pair(1, 1, 2000, 64, NULL);
}
