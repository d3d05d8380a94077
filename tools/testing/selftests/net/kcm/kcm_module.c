// SPDX-License-Identifier: GPL-2.0
/*
 * AF_KCM module lifetime: the module cannot be unloaded while anything
 * holds a KCM socket, unloads once the last one is gone (whatever state
 * its mux was in), leaves nothing behind, and loads again cleanly.
 *
 * These cases unload and load kcm.ko themselves, so they need
 * CAP_SYS_MODULE and the module file: $KCM_MODULE_PATH, by default
 * /kcm.ko (where the test VM keeps it).  Without them they skip.
 *
 * Every case starts by making sure the module is loaded, and loads it
 * again when it is done; a case that fails half-way may leave it unloaded,
 * so the next case, and in the end the test binary itself (a destructor in
 * the runner process), load it again: the tests that come after this one,
 * and the VM's final rmmod, need it loaded.
 *
 * What the kernel does, on both kcm.ko implementations: delete_module()
 * of a module whose reference count is not zero fails with EWOULDBLOCK
 * (O_NONBLOCK or not); every KCM socket holds references (its proto_ops
 * and its proto), a TCP socket attached to a mux holds none of its own.
 * Teardown after the last close may finish asynchronously (work items,
 * RCU), so an unload that must succeed is retried for a few seconds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kcm_test.h"

#define MOD_NAME		"kcm"
#define MOD_DEFAULT_PATH	"/kcm.ko"
#define MOD_UNLOAD_MS		10000	/* an unload that must succeed */
#define MOD_IDLE_MS		10000	/* refcount back to 0 after others */
#define PROC_KCM		"/proc/net/kcm"
#define PROC_KCM_STATS		"/proc/net/kcm_stats"
#define MODPROBE_SYSCTL		"/proc/sys/kernel/modprobe"

/* Fixed size of the messages the TCP peers send to KCM (see rx_prog()). */
#define RX_SIZE			256

/* ---- the module ------------------------------------------------------- */

static const char *mod_path(void)
{
	const char *p = getenv("KCM_MODULE_PATH");

	return p && *p ? p : MOD_DEFAULT_PATH;
}

/*
 * Whether /proc/modules lists kcm; if so and @refcnt is not NULL, its use
 * count goes there.
 */
static int mod_listed(long *refcnt)
{
	char *text = kcm_read_file("/proc/modules");
	char *line, *save = NULL;
	int found = 0;

	if (!text)
		KCM_FAIL("cannot read /proc/modules: %s", strerror(errno));
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char name[64];
		long size, refs;

		if (sscanf(line, "%63s %ld %ld", name, &size, &refs) != 3 ||
		    strcmp(name, MOD_NAME))
			continue;
		found = 1;
		if (refcnt)
			*refcnt = refs;
		break;
	}
	free(text);
	return found;
}

static int mod_delete(void)
{
	return syscall(SYS_delete_module, MOD_NAME, O_NONBLOCK);
}

/* finit_module() of mod_path(): 0, or -1 with errno. */
static int mod_load(void)
{
	int fd = open(mod_path(), O_RDONLY | O_CLOEXEC);
	int ret, err;

	if (fd < 0)
		return -1;
	ret = syscall(SYS_finit_module, fd, "", 0);
	err = errno;
	close(fd);
	errno = err;
	return ret;
}

/* Unloads kcm, retrying while it is still in use, for up to @ms. */
static void mod_unload(int ms)
{
	long long start = kcm_now_ms();
	int tries = 0;
	long refs = -1;

	for (;;) {
		tries++;
		if (!mod_delete())
			break;
		if (errno != EWOULDBLOCK)
			KCM_FAIL("delete_module(\"kcm\"): %s", kcm_errname(errno));
		if (kcm_now_ms() - start > ms) {
			mod_listed(&refs);
			KCM_FAIL("kcm still in use %d ms after its last socket was closed (refcount %ld, %d tries)",
				 ms, refs, tries);
		}
		kcm_msleep(20);
	}
	KCM_LOG("unloaded after %d tries, %lld ms", tries,
		kcm_now_ms() - start);
}

/*
 * socket(AF_KCM) with the kernel's module autoloading off for the call, so
 * that a host with kcm.ko installed does not load it behind our back.
 */
static int socket_kcm_noautoload(int *err)
{
	char *saved = kcm_read_file(MODPROBE_SYSCTL);
	int fd, wfd;

	if (!saved)
		KCM_FAIL("cannot read %s: %s", MODPROBE_SYSCTL, strerror(errno));
	wfd = ASSERT_OK(open(MODPROBE_SYSCTL, O_WRONLY | O_CLOEXEC));
	/* An empty path: request_module() fails at once. */
	ASSERT_EQ(write(wfd, "\n", 1), 1);
	close(wfd);

	fd = socket(AF_KCM, SOCK_DGRAM, KCMPROTO_CONNECTED);
	*err = errno;

	wfd = ASSERT_OK(open(MODPROBE_SYSCTL, O_WRONLY | O_CLOEXEC));
	ASSERT_EQ(write(wfd, saved, strlen(saved)), (ssize_t)strlen(saved));
	close(wfd);
	free(saved);
	return fd;
}

/* After an unload: no trace of kcm in the module list, /proc or socket(). */
static void mod_expect_gone(void)
{
	int fd, err;

	ASSERT_FALSE(mod_listed(NULL));
	EXPECT_ERRNO(access(PROC_KCM, F_OK), ENOENT);
	EXPECT_ERRNO(access(PROC_KCM_STATS, F_OK), ENOENT);
	fd = socket_kcm_noautoload(&err);
	if (fd >= 0)
		close(fd);
	errno = err;
	EXPECT_ERRNO(fd, EAFNOSUPPORT);
}

/* A TCP pair attached to KCM socket @kcm; *peer is the far end. */
static int attach_pair(int kcm, int *peer)
{
	int prog = kcm_prog_const(RX_SIZE);
	int a, b;

	kcm_tcp_pair(AF_INET, &a, &b);
	ASSERT_OK(kcm_attach(kcm, a, prog));
	close(prog);
	kcm_set_rcvtimeo(b, 5000);
	*peer = b;
	return a;
}

/*
 * One message each way through KCM socket @kcm, on a TCP pair attached to
 * it for the occasion (and left attached).
 */
static void roundtrip(int kcm, uint32_t tag)
{
	unsigned char out[RX_SIZE], in[RX_SIZE + 64];
	int peer, tcp = attach_pair(kcm, &peer);

	kcm_msg_build(out, RX_SIZE, tag, 1);
	kcm_write_all(peer, out, RX_SIZE);
	ASSERT_EQ(kcm_recv_timeout(kcm, in, sizeof(in), 0, 5000), RX_SIZE);
	ASSERT_MEMEQ(in, out, RX_SIZE);

	/* MSG_EOR ends a SOCK_SEQPACKET message; SOCK_DGRAM ignores it. */
	kcm_msg_build(out, 100, tag, 2);
	ASSERT_EQ(send(kcm, out, 100, MSG_EOR), 100);
	kcm_read_all(peer, in, 100);
	ASSERT_MEMEQ(in, out, 100);
	close(peer);
	close(tcp);
}

/* After a load: kcm is listed, its /proc files are back, and it works. */
static void mod_expect_live(void)
{
	long refs = -1;
	int fd;

	ASSERT_TRUE(mod_listed(&refs));
	EXPECT_OK(access(PROC_KCM, R_OK));
	EXPECT_OK(access(PROC_KCM_STATS, R_OK));
	fd = kcm_socket(SOCK_DGRAM);
	roundtrip(fd, 0xfeed);
	close(fd);
}

/*
 * Start of every case: skip without the means to unload and load kcm,
 * else make sure it is loaded and that nothing else holds it.
 */
static void mod_prepare(void)
{
	long long start = kcm_now_ms();
	long refs = -1;
	struct stat st;

	if (syscall(SYS_delete_module, "kcm_no_such_module", O_NONBLOCK) &&
	    errno == EPERM)
		kcm_skip("unloading modules is not allowed here (needs CAP_SYS_MODULE and kernel.modules_disabled=0)");
	if (stat(mod_path(), &st))
		kcm_skip("no module file %s (set KCM_MODULE_PATH): %s",
			 mod_path(), strerror(errno));
	if (!mod_listed(NULL)) {
		if (!access("/sys/module/" MOD_NAME, F_OK))
			kcm_skip("kcm is built into the kernel");
		ASSERT_OK(mod_load());
	}
	/* Sockets of earlier tests may take a moment to go. */
	while (mod_listed(&refs) && refs > 0) {
		if (kcm_now_ms() - start > MOD_IDLE_MS)
			KCM_FAIL("kcm is in use by someone else (refcount %ld)",
				 refs);
		kcm_msleep(50);
	}
	ASSERT_EQ(refs, 0);
}

/* End of every case: kcm loaded and working. */
static void mod_finish(void)
{
	if (!mod_listed(NULL))
		ASSERT_OK(mod_load());
	mod_expect_live();
}

/* An unload that must be refused: kcm stays, in use. */
static void expect_refused(void)
{
	long refs = -1;

	ASSERT_ERRNO(mod_delete(), EWOULDBLOCK);
	ASSERT_TRUE(mod_listed(&refs));
	EXPECT_GT(refs, 0);
}

/* The last part of most cases: unload, check, load, check. */
static void unload_and_reload(void)
{
	mod_unload(MOD_UNLOAD_MS);
	mod_expect_gone();
	ASSERT_OK(mod_load());
	mod_expect_live();
}

/*
 * The runner process loads kcm again if a failed case left it unloaded
 * (cases run in children, which end with _exit() and skip this).
 */
__attribute__((destructor)) static void mod_leave_loaded(void)
{
	if (geteuid() || access(mod_path(), R_OK) || mod_listed(NULL))
		return;
	if (mod_load()) {
		kcm_diag("kcm_module: kcm was left unloaded and loading %s failed: %s",
			 mod_path(), strerror(errno));
		fflush(stdout);
		_exit(1);
	}
	kcm_diag("kcm_module: kcm was left unloaded by a failed case; loaded it again");
}

/* ---- unload refused while a KCM socket exists ------------------------- */

/* One open KCM socket of either type is enough to keep kcm. */
KCM_TEST(unload_refused_while_socket_open)
{
	static const int types[] = { SOCK_DGRAM, SOCK_SEQPACKET };
	unsigned int i;

	mod_prepare();
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		int fd = kcm_socket(types[i]);

		expect_refused();
		/* The refused unload did not disturb the socket. */
		roundtrip(fd, i);
		expect_refused();
		close(fd);
		unload_and_reload();
	}
	mod_finish();
}

/* A socket made by SIOCKCMCLONE holds kcm as well as one from socket(). */
KCM_TEST(unload_refused_with_only_a_clone)
{
	int fd, clone;

	mod_prepare();
	fd = kcm_socket(SOCK_DGRAM);
	clone = ASSERT_OK(kcm_clone(fd));
	close(fd);
	expect_refused();
	roundtrip(clone, 1);
	expect_refused();
	close(clone);
	unload_and_reload();
	mod_finish();
}

/*
 * A mux with an attached TCP socket keeps kcm through its KCM socket; once
 * that is closed, the TCP socket, still open, holds nothing, and after the
 * unload it is a plain TCP socket again: data in both directions arrives
 * exactly (kcm's callbacks, gone with the module, were given back).
 */
KCM_TEST(unload_refused_with_attached_tcp)
{
	unsigned char out[5000], in[5000];
	int kcm, tcp, peer;
	uint64_t rng = 77;
	unsigned int i;

	mod_prepare();
	kcm = kcm_socket(SOCK_DGRAM);
	tcp = attach_pair(kcm, &peer);
	kcm_msg_build(out, RX_SIZE, 3, 1);
	kcm_write_all(peer, out, RX_SIZE);
	ASSERT_EQ(kcm_recv_timeout(kcm, in, sizeof(in), 0, 5000), RX_SIZE);
	ASSERT_MEMEQ(in, out, RX_SIZE);
	expect_refused();

	close(kcm);
	mod_unload(MOD_UNLOAD_MS);
	mod_expect_gone();

	for (i = 0; i < sizeof(out); i++)
		out[i] = (unsigned char)kcm_rand(&rng);
	kcm_set_rcvtimeo(tcp, 5000);
	kcm_write_all(peer, out, sizeof(out));
	EXPECT_TRUE(kcm_poll1(tcp, POLLIN, 5000) & POLLIN);
	kcm_read_all(tcp, in, sizeof(in));
	ASSERT_MEMEQ(in, out, sizeof(out));
	kcm_write_all(tcp, out, sizeof(out));
	kcm_read_all(peer, in, sizeof(in));
	ASSERT_MEMEQ(in, out, sizeof(out));
	EXPECT_EQ(kcm_so_error(tcp), 0);
	close(tcp);
	close(peer);

	ASSERT_OK(mod_load());
	mod_expect_live();
	mod_finish();
}

/*
 * An attached socket disconnected with connect(AF_UNSPEC), then bound and
 * listening: its callbacks are TCP's own again at once, so that a child it
 * accepts inherits nothing of kcm's.  After unattach, close and unload,
 * data on that child and on a new child arrives as on any TCP socket (with
 * kcm's callbacks inherited, it ran freed module text).
 */
KCM_TEST(unload_after_attached_socket_listens,
	 KCM_LINUX_CRASH("the child keeps kcm's callbacks: page fault in freed module text, kernel panic"))
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int kcm, tcp, peer, client, child, client2, child2;
	unsigned char out[RX_SIZE], in[RX_SIZE];

	mod_prepare();
	kcm = kcm_socket(SOCK_DGRAM);
	tcp = attach_pair(kcm, &peer);
	ASSERT_OK(connect(tcp, (struct sockaddr *)&(struct sockaddr){
				 .sa_family = AF_UNSPEC }, sizeof(struct sockaddr)));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_OK(bind(tcp, (struct sockaddr *)&sin, sizeof(sin)));
	ASSERT_OK(listen(tcp, 4));
	client = kcm_tcp_connect_to(tcp);
	ASSERT_OK(child = accept(tcp, NULL, NULL));

	ASSERT_OK(kcm_unattach(kcm, tcp));
	close(kcm);
	mod_unload(MOD_UNLOAD_MS);
	mod_expect_gone();

	kcm_msg_build(out, sizeof(out), 9, 1);
	kcm_set_rcvtimeo(child, 5000);
	kcm_write_all(client, out, sizeof(out));
	kcm_read_all(child, in, sizeof(in));
	ASSERT_MEMEQ(in, out, sizeof(out));

	client2 = kcm_tcp_connect_to(tcp);
	ASSERT_TRUE(kcm_poll1(tcp, POLLIN, 5000) & POLLIN);
	ASSERT_OK(child2 = accept(tcp, NULL, NULL));
	kcm_set_rcvtimeo(child2, 5000);
	kcm_write_all(client2, out, sizeof(out));
	kcm_read_all(child2, in, sizeof(in));
	ASSERT_MEMEQ(in, out, sizeof(out));

	close(client);
	close(child);
	close(client2);
	close(child2);
	close(tcp);
	close(peer);
	ASSERT_OK(mod_load());
	mod_expect_live();
	mod_finish();
}

static volatile sig_atomic_t wake_signals;

static void on_wake(int sig)
{
	(void)sig;
	wake_signals++;
}

struct blocked_recv {
	int fd;
	ssize_t ret;
	int err;
	atomic_int started;
};

static void *blocked_recv_fn(void *arg)
{
	struct blocked_recv *b = arg;
	char buf[64];

	b->started = 1;
	b->ret = recv(b->fd, buf, sizeof(buf), 0);
	b->err = errno;
	return NULL;
}

/*
 * close() while another thread sleeps in recv() on the socket: the socket
 * lives on until that call returns, and so does kcm.
 */
KCM_TEST(unload_refused_while_closed_socket_is_in_recv)
{
	struct blocked_recv b = { .fd = -1 };
	struct sigaction sa;
	pthread_t th;

	mod_prepare();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_wake;	/* no SA_RESTART: recv() ends in EINTR */
	ASSERT_OK(sigaction(SIGUSR1, &sa, NULL));

	b.fd = kcm_socket(SOCK_DGRAM);
	ASSERT_EQ(pthread_create(&th, NULL, blocked_recv_fn, &b), 0);
	while (!b.started)
		kcm_msleep(10);
	kcm_msleep(200);	/* well inside recv() by now */
	close(b.fd);
	expect_refused();
	kcm_msleep(100);
	expect_refused();

	/* Again until it returns, in case the first came before recv(). */
	do {
		ASSERT_EQ(pthread_kill(th, SIGUSR1), 0);
		kcm_msleep(100);
	} while (pthread_tryjoin_np(th, NULL) == EBUSY);
	EXPECT_EQ(b.ret, -1);
	EXPECT_EQ(b.err, EINTR);
	EXPECT_GE(wake_signals, 1);
	unload_and_reload();
	mod_finish();
}

/* ---- load/unload cycles under traffic --------------------------------- */

#define TR_CONNS	3	/* TCP connections attached to the mux */
#define TR_KCMS		2	/* KCM sockets on the mux */
#define TR_MAX_TX	(256 * 1024)	/* the biggest message sent */
#define TR_FLOW_MSGS	10	/* messages each way before the stall */
/*
 * What a sender may have taken after the stall.  Ours stops taking at
 * SO_SNDBUF long before; Linux's kcm.ko (6.1) once took a KCM sender's
 * bytes until the 1 GiB guest ran out of memory (the OOM killer in
 * kcm_sendmsg(), CI of 2026-12-07): it takes the pieces of an unfinished
 * message without bound (tx_basic's unfinished_message_held_to_sndbuf),
 * so the test bounds what it queues.
 */
#define TR_TAIL_MAX	(8 * 1024 * 1024)

/* How a cycle's traffic process lets go of its sockets. */
enum tr_end {
	TR_SIGKILL,		/* killed in the middle of it all */
	TR_CLOSE_KCM_FIRST,	/* KCM sockets, then TCP, then exit */
	TR_CLOSE_TCP_FIRST,	/* TCP sockets, then exit (KCM by exit) */
	TR_END_MODES,
};

/* Shared between a cycle's traffic process and the case. */
struct tr_shared {
	int stage;		/* 1 running, 2 flowed, 3 stalled */
	int netns_ready;
	int go;			/* the case has seen the unload refused */
	long kcm_tx, kcm_rx, peer_tx, peer_rx, bad;
	char why[160];
};

struct tr_ctx {
	struct tr_shared *sh;
	int type;
	int kcm[TR_KCMS];
	int tcp[TR_CONNS];
	int peer[TR_CONNS];
	atomic_int stall;	/* stop receiving; senders leave pieces */
};

struct tr_thread {
	struct tr_ctx *ctx;
	int idx;
	pthread_t th;
};

static void tr_bad(struct tr_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void tr_bad(struct tr_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	if (__atomic_fetch_add(&ctx->sh->bad, 1, __ATOMIC_SEQ_CST))
		return;
	va_start(ap, fmt);
	vsnprintf(ctx->sh->why, sizeof(ctx->sh->why), fmt, ap);
	va_end(ap);
}

static void tr_count(long *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_SEQ_CST);
}

static long tr_get(long *c)
{
	return __atomic_load_n(c, __ATOMIC_SEQ_CST);
}

/*
 * Sends messages of mixed sizes on KCM socket @idx.  Once stalled (nobody
 * reads the TCP peers any more), one last message is left half done: on
 * SOCK_SEQPACKET a first piece with no MSG_EOR, on SOCK_DGRAM a message
 * too big for the TCP buffers, partly written when the end comes.
 */
static void *tr_kcm_sender(void *arg)
{
	struct tr_thread *t = arg;
	struct tr_ctx *ctx = t->ctx;
	unsigned char *buf = kcm_xmalloc(TR_MAX_TX);
	uint64_t rng = 0x9e3779b9u * (t->idx + 1);
	int fd = ctx->kcm[t->idx];
	uint32_t seq = 0;
	size_t tail = 0;

	while (!ctx->stall) {
		size_t size = KCM_MSG_MIN + kcm_rand(&rng) % 8192;

		if (kcm_rand(&rng) % 16 == 0)
			size = 64 * 1024;
		kcm_msg_build(buf, size, t->idx, seq);
		if (send(fd, buf, size, MSG_EOR) == (ssize_t)size) {
			seq++;
			tr_count(&ctx->sh->kcm_tx);
		} else if (errno != EAGAIN && errno != EINTR) {
			tr_bad(ctx, "send on KCM socket %d: %s", t->idx,
			       kcm_errname(errno));
			return NULL;
		}
	}
	kcm_msg_build(buf, TR_MAX_TX, t->idx, seq);
	if (ctx->type == SOCK_SEQPACKET && send(fd, buf, TR_MAX_TX / 2, 0) > 0)
		tail += TR_MAX_TX / 2;
	while (tail < TR_TAIL_MAX) {	/* until the end comes */
		ssize_t n = send(fd, buf, TR_MAX_TX, 0);

		if (n > 0)
			tail += n;
	}
	for (;;)
		pause();
	return NULL;
}

/* Receives and checks messages on KCM socket @idx until the stall. */
static void *tr_kcm_receiver(void *arg)
{
	struct tr_thread *t = arg;
	struct tr_ctx *ctx = t->ctx;
	unsigned char buf[RX_SIZE * 2];
	int fd = ctx->kcm[t->idx];

	while (!ctx->stall) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n != RX_SIZE || kcm_msg_check(buf, n, NULL, NULL)) {
			tr_bad(ctx, "KCM socket %d received a bad message (%zd bytes, errno %s)",
			       t->idx, n, kcm_errname(n < 0 ? errno : 0));
			return NULL;
		}
		tr_count(&ctx->sh->kcm_rx);
	}
	return NULL;
}

/* Reads @len bytes from @fd unless the stall comes first: 0, or -1. */
static int tr_read(struct tr_ctx *ctx, int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, 0);

		if (ctx->stall)
			return -1;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			tr_bad(ctx, "TCP peer read: %s",
			       n ? kcm_errname(errno) : "EOF");
			return -1;
		}
		got += n;
	}
	return 0;
}

/* Reads the messages KCM sent on TCP connection @idx, checks each whole. */
static void *tr_peer_reader(void *arg)
{
	struct tr_thread *t = arg;
	struct tr_ctx *ctx = t->ctx;
	unsigned char *buf = kcm_xmalloc(TR_MAX_TX);
	int fd = ctx->peer[t->idx];

	while (!tr_read(ctx, fd, buf, 4)) {
		size_t len = ((size_t)buf[0] << 24 | buf[1] << 16 |
			      buf[2] << 8 | buf[3]) + 4;

		if (len < KCM_MSG_MIN || len > TR_MAX_TX) {
			tr_bad(ctx, "TCP peer %d: frame of %zu bytes", t->idx,
			       len);
			break;
		}
		if (tr_read(ctx, fd, buf + 4, len - 4))
			break;
		if (kcm_msg_check(buf, len, NULL, NULL)) {
			tr_bad(ctx, "TCP peer %d: a %zu-byte message came mixed up",
			       t->idx, len);
			break;
		}
		tr_count(&ctx->sh->peer_rx);
	}
	return NULL;
}

/*
 * Writes RX_SIZE messages on TCP connection @idx toward KCM; after the
 * stall they pile up unreceived, and the last one is cut in half.
 */
static void *tr_peer_writer(void *arg)
{
	struct tr_thread *t = arg;
	struct tr_ctx *ctx = t->ctx;
	int fd = ctx->peer[t->idx];
	unsigned char buf[RX_SIZE];
	int stalled = 0;
	uint32_t seq;

	for (seq = 0;; seq++) {
		size_t len = RX_SIZE, off = 0;

		kcm_msg_build(buf, RX_SIZE, 100 + t->idx, seq);
		if (stalled++ == 8)
			len = RX_SIZE / 2;
		while (off < len) {
			ssize_t n = send(fd, buf + off, len - off, 0);

			if (n > 0)
				off += n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				return NULL;	/* the end (or a failure) */
		}
		if (len < RX_SIZE)
			break;
		tr_count(&ctx->sh->peer_tx);
		if (!ctx->stall)
			stalled = 0;
	}
	for (;;)
		pause();
	return NULL;
}

/* The traffic process of one cycle; ends in _exit() (or SIGKILL). */
static void tr_run(struct tr_shared *sh, int type, int netns,
		   enum tr_end end)
{
	void *(*fns[])(void *) = { tr_kcm_sender, tr_kcm_receiver,
				   tr_peer_reader, tr_peer_writer };
	struct tr_thread threads[2 * TR_KCMS + 2 * TR_CONNS];
	static struct tr_ctx ctx;
	long long deadline;
	int i, j, n = 0;

	if (netns)
		kcm_new_netns();
	__atomic_store_n(&sh->netns_ready, 1, __ATOMIC_SEQ_CST);
	ctx.sh = sh;
	ctx.type = type;
	ctx.kcm[0] = kcm_socket(type);
	for (i = 1; i < TR_KCMS; i++)
		ctx.kcm[i] = ASSERT_OK(kcm_clone(ctx.kcm[0]));
	for (i = 0; i < TR_KCMS; i++) {
		kcm_set_rcvtimeo(ctx.kcm[i], 100);
		kcm_set_sndtimeo(ctx.kcm[i], 100);
	}
	for (i = 0; i < TR_CONNS; i++) {
		ctx.tcp[i] = attach_pair(ctx.kcm[i % TR_KCMS], &ctx.peer[i]);
		/*
		 * A small receive window: a stalled peer soon leaves messages
		 * cut.  Not smaller than this: with a window below loopback's
		 * MSS (64 KiB) TCP sends only on its zero-window probes,
		 * whose backoff grows, and a CI run of 2026-12-07 saw 9 of
		 * the 10 messages of the flow check arrive in 15 s (16 KiB).
		 * (A small SO_SNDBUF on the attached socket as well sometimes
		 * stalls transmission for good on Linux 6.1's kcm.ko, which
		 * is not what this test is about.)
		 */
		kcm_set_int_opt(ctx.peer[i], SOL_SOCKET, SO_RCVBUF, 256 * 1024);
		kcm_set_rcvtimeo(ctx.peer[i], 100);
		kcm_set_sndtimeo(ctx.peer[i], 100);
	}
	for (i = 0; i < 4; i++) {
		int count = i < 2 ? TR_KCMS : TR_CONNS;

		for (j = 0; j < count; j++, n++) {
			threads[n].ctx = &ctx;
			threads[n].idx = j;
			ASSERT_EQ(pthread_create(&threads[n].th, NULL, fns[i],
						 &threads[n]), 0);
		}
	}
	__atomic_store_n(&sh->stage, 1, __ATOMIC_SEQ_CST);

	deadline = kcm_now_ms() + 15000;
	while (tr_get(&sh->kcm_rx) < TR_FLOW_MSGS ||
	       tr_get(&sh->peer_rx) < TR_FLOW_MSGS) {
		if (tr_get(&sh->bad))
			_exit(1);
		if (kcm_now_ms() > deadline) {
			char *proc = kcm_read_file(PROC_KCM);

			snprintf(sh->why, sizeof(sh->why),
				 "traffic did not flow: %ld/%ld messages to/from KCM in 15 s",
				 tr_get(&sh->kcm_rx), tr_get(&sh->peer_rx));
			kcm_diag("%s", proc ? proc : "no " PROC_KCM);
			_exit(1);
		}
		kcm_msleep(10);
	}
	__atomic_store_n(&sh->stage, 2, __ATOMIC_SEQ_CST);

	/* Nobody reads any more: what is sent now stays in the pipes. */
	ctx.stall = 1;
	kcm_msleep(300);
	__atomic_store_n(&sh->stage, 3, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&sh->go, __ATOMIC_SEQ_CST))
		kcm_msleep(5);

	switch (end) {
	case TR_SIGKILL:
		for (;;)
			pause();
	case TR_CLOSE_KCM_FIRST:
		for (i = 0; i < TR_KCMS; i++)
			close(ctx.kcm[i]);
		for (i = 0; i < TR_CONNS; i++) {
			close(ctx.tcp[i]);
			close(ctx.peer[i]);
		}
		break;
	case TR_CLOSE_TCP_FIRST:
		for (i = 0; i < TR_CONNS; i++) {
			close(ctx.peer[i]);
			close(ctx.tcp[i]);
		}
		break;
	default:
		break;
	}
	/* The threads die with us, in the middle of their calls. */
	_exit(0);
}

/*
 * MemAvailable in KiB once the kernel has dropped what it can (page cache,
 * reclaimable slab) and RCU and work items have had time to free: two
 * readings then differ by what is really held.
 */
static long mem_settled_kb(void)
{
	char *text, *p;
	long kb = -1;

	kcm_msleep(500);
	sync();
	kcm_write_file("/proc/sys/vm/drop_caches", "3");
	text = kcm_read_file("/proc/meminfo");
	if (text && (p = strstr(text, "MemAvailable:")))
		kb = strtol(p + strlen("MemAvailable:"), NULL, 10);
	free(text);
	return kb;
}

/*
 * What the cycles may leave held, in KiB.  Everything they made is freed by
 * the end (the module is unloaded); the slack is for what the kernel keeps
 * that drop_caches does not give back (per-CPU page lists, partly used
 * slabs, TCP's memory accounting), which moves MemAvailable by up to 30 MiB
 * from one cycle to the next on 6.1 (seen: 817 to 847 MiB, our module, 12
 * cycles, no trend).  A leak of the kind this bound is for held 850 MB in
 * a 1 GiB guest (Linux's kcm.ko, once): 64 MiB is 5 MiB a cycle.
 */
#define MEM_HELD_MAX_KB		(64 * 1024)

static int cycles(void)
{
	const char *s = getenv("KCM_MODULE_CYCLES");

	return s && *s ? atoi(s) : 12;
}

/* Waits up to @ms for *@p to reach @v, or for @pid to end. */
static int wait_stage(int *p, int v, pid_t pid, int ms)
{
	long long deadline = kcm_now_ms() + ms;

	while (__atomic_load_n(p, __ATOMIC_SEQ_CST) < v) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		if (kcm_now_ms() > deadline)
			return -1;
		kcm_msleep(10);
	}
	return 0;
}

/*
 * Load, traffic, abrupt end, unload, over and over: a mux of two KCM
 * sockets and three attached TCP connections, messages flowing both ways;
 * then nobody reads, so that at the end there are messages queued on KCM
 * sockets and unreceived, messages half written to TCP, half-received
 * messages in the parsers, a SOCK_SEQPACKET message without its end; then
 * SIGKILL, or closes in either order.  Every other cycle runs in a network
 * namespace of its own, which the case keeps alive across the unload: its
 * /proc/net/kcm must go with the module and come back with it.  While the
 * traffic runs the unload is refused; afterwards it must succeed.
 */
KCM_TEST(load_unload_cycles_under_traffic, KCM_TIMEOUT(120))
{
	int n = cycles(), c, self_ns;
	uint64_t rng = kcm_seed();
	struct tr_shared *sh;
	long mem_start, mem_end;

	mod_prepare();
	mem_start = mem_settled_kb();
	ASSERT_TRUE(mem_start > 0);
	self_ns = ASSERT_OK(open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(sh != MAP_FAILED);

	for (c = 0; c < n; c++) {
		enum tr_end end = c % TR_END_MODES;
		int type = c % 4 < 2 ? SOCK_DGRAM : SOCK_SEQPACKET;
		int netns = c % 2, ns_fd = -1, status;
		char path[64];
		pid_t pid;

		KCM_LOG("cycle %d: %s, %s, end %d", c,
			type == SOCK_DGRAM ? "dgram" : "seqpacket",
			netns ? "own netns" : "init netns", end);
		memset(sh, 0, sizeof(*sh));
		fflush(stdout);
		pid = ASSERT_OK(fork());
		if (!pid) {
			tr_run(sh, type, netns, end);
			_exit(0);
		}
		if (wait_stage(&sh->netns_ready, 1, pid, 10000))
			KCM_FAIL("cycle %d: traffic process did not start", c);
		snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
		if (netns)
			ns_fd = ASSERT_OK(open(path, O_RDONLY | O_CLOEXEC));

		if (wait_stage(&sh->stage, 3, pid, 30000)) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			KCM_FAIL("cycle %d: traffic failed: %s", c,
				 sh->why[0] ? sh->why : "no reason given");
		}
		/* In use now: refused, and the traffic goes on regardless. */
		expect_refused();
		__atomic_store_n(&sh->go, 1, __ATOMIC_SEQ_CST);
		if (end == TR_SIGKILL) {
			kcm_msleep(kcm_rand(&rng) % 100);
			kill(pid, SIGKILL);
		}
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		if (end == TR_SIGKILL)
			EXPECT_TRUE(WIFSIGNALED(status) &&
				    WTERMSIG(status) == SIGKILL);
		else
			EXPECT_TRUE(WIFEXITED(status) &&
				    WEXITSTATUS(status) == 0);
		if (sh->bad)
			KCM_FAIL("cycle %d: %ld bad, first: %s", c, sh->bad,
				 sh->why);
		KCM_LOG("cycle %d: kcm tx %ld rx %ld, peers tx %ld rx %ld", c,
			sh->kcm_tx, sh->kcm_rx, sh->peer_tx, sh->peer_rx);

		mod_unload(MOD_UNLOAD_MS);
		mod_expect_gone();
		if (ns_fd >= 0) {
			ASSERT_OK(setns(ns_fd, CLONE_NEWNET));
			EXPECT_ERRNO(access(PROC_KCM, F_OK), ENOENT);
			ASSERT_OK(setns(self_ns, CLONE_NEWNET));
		}
		ASSERT_OK(mod_load());
		mod_expect_live();
		if (ns_fd >= 0) {
			ASSERT_OK(setns(ns_fd, CLONE_NEWNET));
			EXPECT_OK(access(PROC_KCM, R_OK));
			EXPECT_OK(access(PROC_KCM_STATS, R_OK));
			ASSERT_OK(setns(self_ns, CLONE_NEWNET));
			close(ns_fd);
		}
		if (kcm_case_failed)
			break;
	}
	munmap(sh, sizeof(*sh));
	close(self_ns);
	mem_end = mem_settled_kb();
	kcm_diag("MemAvailable: %ld KiB before the cycles, %ld KiB after",
		 mem_start, mem_end);
	if (mem_start - mem_end > MEM_HELD_MAX_KB)
		KCM_FAIL("the kernel holds %ld KiB more after %d cycles than before them",
			 mem_start - mem_end, n);
	mod_finish();
}
