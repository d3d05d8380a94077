// SPDX-License-Identifier: GPL-2.0
/*
 * Allocation failures injected at one chosen place, on a kernel with
 * fault injection (CONFIG_FAILSLAB, CONFIG_FAULT_INJECTION_DEBUG_FS,
 * CONFIG_FAULT_INJECTION_STACKTRACE_FILTER) only: distribution kernels
 * have none, so this binary is not among the suite's (its name is not
 * kcm_* or tx_*); it is built and run with the suite on a debug kernel.
 *
 * failslab is narrowed to the one allocation under test: the slab cache it
 * comes from (cache-filter, with that cache's failslab flag) and the thread
 * that makes it (task-filter, /proc/thread-self/make-it-fail), or the
 * module's code on the stack (require-start/end) for an allocation made in
 * softirq, and a single failure (times = 1).  Each case checks that the
 * failure was injected, so that a path that no longer allocates there
 * fails the case instead of passing it untested.
 */
#include <netinet/in.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kcm_test.h"

#define FAILSLAB	"/sys/kernel/debug/failslab/"

static void knob(const char *path, const char *val)
{
	int err = kcm_write_file(path, val);

	if (err)
		KCM_FAIL("writing %s to %s: %s (needs CONFIG_FAILSLAB, CONFIG_FAULT_INJECTION_DEBUG_FS and a slab cache of that name)",
			 val, path, strerror(-err));
}

/* Off, then set up for one failure; the filters are the caller's. */
static void failslab_one(const char *task_filter, const char *cache_filter)
{
	knob(FAILSLAB "probability", "0");
	knob(FAILSLAB "interval", "1");
	knob(FAILSLAB "space", "0");
	knob(FAILSLAB "times", "1");
	knob(FAILSLAB "verbose", "0");
	knob(FAILSLAB "ignore-gfp-wait", "N");
	knob(FAILSLAB "task-filter", task_filter);
	knob(FAILSLAB "cache-filter", cache_filter);
}

/* The next allocation from @cache by this thread fails, once. */
static void fail_next_alloc(const char *cache)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/kernel/slab/%s/failslab", cache);
	failslab_one("Y", "Y");
	knob(path, "1");
	knob("/proc/thread-self/make-it-fail", "1");
	knob(FAILSLAB "probability", "100");
}

/* The next slab allocation made with the module's code on the stack, in
 * any context, fails, once.
 */
static void fail_next_module_alloc(void)
{
	unsigned long start, end;
	char v[32];

	kcm_module_text(&start, &end);
	failslab_one("N", "N");
	knob(FAILSLAB "stacktrace-depth", "32");
	snprintf(v, sizeof(v), "%#lx", start);
	knob(FAILSLAB "require-start", v);
	snprintf(v, sizeof(v), "%#lx", end);
	knob(FAILSLAB "require-end", v);
	knob(FAILSLAB "reject-start", "0");
	knob(FAILSLAB "reject-end", "0");
	knob(FAILSLAB "probability", "100");
}

/* Failures left to inject (failslab's times). */
static int failslab_times(void)
{
	char *times = kcm_read_file(FAILSLAB "times");
	int left;

	if (!times)
		KCM_FAIL("reading " FAILSLAB "times: %s", strerror(errno));
	left = atoi(times);
	free(times);
	return left;
}

/* Back to no injection; returns how many failures were injected (0 or 1). */
static int injection_end(const char *cache)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/kernel/slab/%s/failslab", cache);
	knob(FAILSLAB "probability", "0");
	knob("/proc/thread-self/make-it-fail", "0");
	knob(path, "0");
	knob(FAILSLAB "cache-filter", "N");
	knob(FAILSLAB "task-filter", "N");
	return 1 - failslab_times();
}

/* Until TCP holds nothing unacknowledged on @fd. */
static void wait_all_acked(int fd)
{
	long long t0 = kcm_now_ms();
	int outq;

	for (;;) {
		ASSERT_OK(ioctl(fd, SIOCOUTQ, &outq));
		if (!outq)
			return;
		if (kcm_now_ms() - t0 > 10000)
			KCM_FAIL("%d bytes still unacknowledged after 10 s", outq);
		kcm_msleep(10);
	}
}

/*
 * A message queued on an idle connection whose TCP socket cannot allocate
 * its first buffer: TCP takes nothing and has nothing in flight, so no ACK
 * will come to call its write-space callback.  The message must still go
 * out, with no further send to push it.  (TCP calls write-space itself when
 * a send fails with its queues empty; the module must act on that call.)
 */
static void tx_first_tcp_alloc_fails(int family)
{
	const char *cache = "skbuff_fclone_cache";
	char msg[200], got[200];
	int kcm, peer, tcp, i;

	kcm = kcm_socket(SOCK_DGRAM);
	kcm_tcp_pair(family, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, kcm_prog_len32()));

	/* One message through first, then nothing in flight. */
	kcm_msg_build(msg, sizeof(msg), 1, 0);
	ASSERT_EQ(send(kcm, msg, sizeof(msg), 0), sizeof(msg));
	kcm_read_all(peer, got, sizeof(got));
	ASSERT_MEMEQ(got, msg, sizeof(msg));
	wait_all_acked(tcp);

	kcm_msg_build(msg, sizeof(msg), 1, 1);
	fail_next_alloc(cache);
	i = send(kcm, msg, sizeof(msg), 0);
	if (injection_end(cache) != 1)
		KCM_FAIL("no allocation from %s failed during the send: the case tests nothing",
			 cache);
	ASSERT_EQ(i, sizeof(msg));

	/* Nothing else is sent: the module must try again by itself. */
	if (!(kcm_poll1(peer, POLLIN, 10000) & POLLIN))
		KCM_FAIL("the message never went out (10 s): TCP's allocation failed and nothing retried");
	kcm_read_all(peer, got, sizeof(got));
	ASSERT_MEMEQ(got, msg, sizeof(msg));

	/* And the connection carries on. */
	kcm_msg_build(msg, sizeof(msg), 1, 2);
	ASSERT_EQ(send(kcm, msg, sizeof(msg), 0), sizeof(msg));
	kcm_read_all(peer, got, sizeof(got));
	ASSERT_MEMEQ(got, msg, sizeof(msg));
	close(kcm);
	close(tcp);
	close(peer);
}

KCM_TEST(tx_first_tcp_alloc_fails_v4, KCM_TIMEOUT(60))
{
	tx_first_tcp_alloc_fails(AF_INET);
}

KCM_TEST(tx_first_tcp_alloc_fails_v6, KCM_TIMEOUT(60))
{
	tx_first_tcp_alloc_fails(AF_INET6);
}

/* Value of column @col of /proc/net/kcm_stats's Psock totals. */
static long long psock_total(const char *col)
{
	char *text = kcm_read_file("/proc/net/kcm_stats"), *hdr, *val, *save;
	char *h, *v;
	long long n = -1;

	if (!text)
		KCM_FAIL("/proc/net/kcm_stats: %s", strerror(errno));
	hdr = strstr(text, "Psock ");
	val = hdr ? strchr(hdr, '\n') : NULL;
	if (!val)
		KCM_FAIL("no Psock totals in /proc/net/kcm_stats");
	*val++ = 0;
	/* The header has a label the value row has not. */
	h = strtok_r(hdr, " ", &save);
	for (h = strtok_r(NULL, " ", &save), v = strtok(val, " \n"); h && v;
	     h = strtok_r(NULL, " ", &save), v = strtok(NULL, " \n")) {
		if (!strcmp(h, col)) {
			n = atoll(v);
			break;
		}
	}
	free(text);
	if (n < 0)
		KCM_FAIL("no column %s in /proc/net/kcm_stats", col);
	return n;
}

/*
 * The parser's first allocation for arriving messages fails (in softirq):
 * counted as RX-MemFail, and the pass is retried from a work item, so the
 * messages still arrive, whole and in order.
 */
KCM_TEST(rx_parser_alloc_fails_counted, KCM_TIMEOUT(60))
{
	enum { N = 8, SIZE = 100 };
	char buf[N * SIZE], got[SIZE];
	int kcm, peer, tcp, i;
	long long t0;

	kcm_new_netns();
	kcm = kcm_socket(SOCK_DGRAM);
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, kcm_prog_len32()));
	for (i = 0; i < N; i++)
		kcm_msg_build(buf + i * SIZE, SIZE, 2, i);

	fail_next_module_alloc();
	kcm_write_all(peer, buf, sizeof(buf));
	for (t0 = kcm_now_ms(); failslab_times(); kcm_msleep(10))
		if (kcm_now_ms() - t0 > 10000)
			break;
	knob(FAILSLAB "probability", "0");
	knob(FAILSLAB "require-start", "0");
	knob(FAILSLAB "require-end", "0xffffffffffffffff");
	if (failslab_times())
		KCM_FAIL("no allocation of the module failed while the messages arrived: the case tests nothing");

	for (i = 0; i < N; i++) {
		uint32_t conn, seq;

		ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0, 10000),
			  SIZE);
		ASSERT_OK(kcm_msg_check(got, SIZE, &conn, &seq));
		ASSERT_EQ(seq, (uint32_t)i);
	}
	ASSERT_EQ(psock_total("RX-MemFail"), 1);
	ASSERT_EQ(psock_total("RX-Msgs"), N);
	close(kcm);
	close(tcp);
	close(peer);
}
