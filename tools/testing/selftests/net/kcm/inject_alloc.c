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
#include <linux/tcp.h>
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

/*
 * Bytes written to TCP socket @fd since it was made, but for a constant:
 * those acknowledged and those still in its queue, read while no
 * acknowledgement moved the boundary between the two.
 */
static long long tcp_written(int fd)
{
	struct tcp_info ti;
	socklen_t len;
	int q0, q1;

	do {
		ASSERT_OK(ioctl(fd, SIOCOUTQ, &q0));
		len = sizeof(ti);
		ASSERT_OK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len));
		ASSERT_OK(ioctl(fd, SIOCOUTQ, &q1));
	} while (q0 != q1);
	return (long long)ti.tcpi_bytes_acked + q1;
}

/*
 * kcm.rst, "Sending": a complete message of at most a page, sent while
 * nothing is queued, is handed to TCP at once; "should TCP take the first
 * bytes of such a message and the memory to keep the rest then not be
 * found, the send fails with ENOMEM and that TCP socket, its stream cut,
 * is failed with EPIPE."
 *
 * A connection whose peer reads nothing takes such messages whole until it
 * is full, and then one only in part; for each send the module's next skb
 * allocation (skbuff_head_cache, this thread) fails, which the sends TCP
 * takes whole never reach.  The first send TCP does not take whole must
 * fail with ENOMEM.  If TCP took nothing of it, the stream is whole and the
 * case tries another message size on a new connection, as it does when
 * another allocation from that cache comes first in this thread (TCP's
 * own, presumably: a zero-window probe or a retransmission whose timer
 * fired while the send held the TCP socket, which release_sock() then
 * runs here; seen once); if TCP took part:
 * the TCP socket shows POLLERR and EPIPE, TX-Aborts moved by one, the later
 * messages go out whole on a connection attached since, and the cut stream
 * holds the messages sent before, whole, then the first bytes of the
 * failed one, and nothing more.
 */
KCM_TEST(tx_fast_rest_alloc_fails_cuts_stream, KCM_EXT, KCM_TIMEOUT(120))
{
	enum { NMSG = 64, LATER = 8, TRIES = 14 };
	const char *cache = "skbuff_head_cache";
	static unsigned char msg[NMSG][4096];
	unsigned char later[4096], got[4096], *stream;
	int kcm = -1, a0, b0, a1, b1, i, k, try, prog, injected = 0, err = 0;
	long long aborts = 0, msgs = 0, w0, took = 0;
	size_t size = 0, cap, n = 0;
	ssize_t ret = 0;

	kcm_new_netns();
	prog = kcm_prog_len32();
	for (try = 0; try < TRIES; try++) {
		size = 1500 + 377 * (try % 7);
		kcm = kcm_socket(SOCK_DGRAM);
		kcm_tcp_pair_tiny(&a0, &b0);
		ASSERT_OK(kcm_attach(kcm, a0, prog));
		aborts = psock_total("TX-Aborts");
		msgs = psock_total("TX-Msgs");
		for (i = 0; i < NMSG; i++) {
			kcm_msg_build(msg[i], size, 3, i);
			w0 = tcp_written(a0);
			fail_next_alloc(cache);
			ret = send(kcm, msg[i], size, MSG_DONTWAIT);
			err = errno;
			injected = injection_end(cache);
			took = tcp_written(a0) - w0;
			if (ret != (ssize_t)size || took != (long long)size)
				break;
			if (injected)
				kcm_diag("message %d: an allocation not the module's failed",
					 i);
		}
		ASSERT_LT(i, NMSG);
		if (ret == (ssize_t)size) {
			/* Another allocation came first, the module's did
			 * not fail: the rest of the message was queued.
			 */
			if (!injected)
				KCM_FAIL("message %d queued in part, and no allocation from %s failed",
					 i, cache);
			kcm_diag("messages of %zu bytes: an allocation not the module's failed while message %d was cut",
				 size, i);
		} else {
			ASSERT_EQ(ret, -1);
			ASSERT_EQ(err, ENOMEM);
			if (!injected)
				KCM_FAIL("the send failed with ENOMEM, nothing injected");
			kcm_diag("messages of %zu bytes: %d taken whole, then %lld bytes of the next",
				 size, i, took);
			if (took)
				break;
			/* Nothing of it in TCP: the stream goes on. */
			EXPECT_EQ(psock_total("TX-Aborts"), aborts);
			EXPECT_EQ(kcm_so_error(a0), 0);
		}
		close(kcm);
		close(a0);
		close(b0);
	}
	if (try == TRIES)
		KCM_FAIL("TCP took none of the message in %d tries: the case tests nothing",
			 TRIES);
	ASSERT_LT(took, size);
	ASSERT_TRUE(kcm_poll1(a0, 0, 3000) & POLLERR);
	ASSERT_EQ(kcm_so_error(a0), EPIPE);
	EXPECT_EQ(psock_total("TX-Aborts"), aborts + 1);

	kcm_tcp_pair(AF_INET, &a1, &b1);
	kcm_set_rcvtimeo(b1, 5000);
	ASSERT_OK(kcm_attach(kcm, a1, prog));
	for (n = 0; n < LATER; n++) {
		kcm_msg_build(later, size, 4, n);
		ASSERT_EQ(send(kcm, later, size, 0), size);
		kcm_read_all(b1, got, size);
		ASSERT_MEMEQ(got, later, size);
	}
	ASSERT_ERRNO(recv(b1, got, 1, MSG_DONTWAIT), EAGAIN);
	EXPECT_EQ(kcm_so_error(a1), 0);

	/* The cut stream, to its end. */
	ASSERT_OK(kcm_unattach(kcm, a0));
	ASSERT_OK(shutdown(a0, SHUT_WR));
	kcm_set_rcvtimeo(b0, 10000);
	cap = (i + 1) * size;
	stream = kcm_xmalloc(cap + 1);
	for (n = 0; (ret = recv(b0, stream + n, cap + 1 - n, 0)) > 0;)
		n += ret;
	ASSERT_EQ(ret, 0);
	ASSERT_EQ(n, i * size + took);
	for (k = 0; k < i; k++)
		EXPECT_MEMEQ(stream + k * size, msg[k], size);
	EXPECT_MEMEQ(stream + i * size, msg[i], took);

	EXPECT_EQ(psock_total("TX-Aborts"), aborts + 1);
	EXPECT_EQ(psock_total("TX-Msgs"), msgs + i + LATER);
	free(stream);
	close(kcm);
	close(a0);
	close(b0);
	close(a1);
	close(b1);
}
