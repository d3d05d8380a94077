// SPDX-License-Identifier: GPL-2.0
/*
 * kcm_fuzz: a seeded, time-bounded, concurrent system call fuzzer for AF_KCM.
 *
 *   kcm_fuzz [SEED [SECONDS]]
 *   KCM_FUZZ_SEED=n KCM_FUZZ_SECONDS=n KCM_FUZZ_THREADS=n kcm_fuzz
 *   (KCM_FUZZ_SECONDS=0 skips the case)
 *   KCM_FUZZ_DONTWAIT=1: KCM sends never block (MSG_DONTWAIT), which keeps
 *   away from races that need a sender asleep waiting for memory
 *   KCM_FUZZ_FAILSLAB=task|module: slab allocations fail at random while
 *   the threads run (failslab, see "fault injection" below);
 *   KCM_FUZZ_FAILSLAB_PERCENT=n their probability (default 5);
 *   KCM_FUZZ_FAILSLAB_STACKS=1 has failslab log the stack of injected
 *   failures (ratelimited), so that the allocation sites can be counted
 *
 * Several threads run random operations for SECONDS (default 20) over
 * shared tables of KCM sockets (a few multiplexors and their clones),
 * loopback TCP pairs and framing BPF programs: attach (valid and invalid),
 * unattach, clone, sends of every flavour (sendmmsg, MSG_BATCH, partial
 * SOCK_SEQPACKET messages, MSG_MORE pieces, sendfile), receives (recvmmsg,
 * MSG_PEEK, splice), epoll instances that keep watching sockets as they are
 * closed, KCM_RECV_DISABLE toggles, socket options on both sides, shutdown,
 * close, resets, signals that interrupt blocked calls (EINTR), and framing
 * programs that return good, zero, negative, huge and off-by-one lengths.
 * kTLS (issue 20): some pairs are keyed with kTLS (software, TLS 1.2 or
 * 1.3 AES-GCM-128, one way, the other or both) before anything else, so
 * that attach, sends and receives meet kTLS sockets; sockets in the table
 * are keyed at random, attached or not (our module fails a psock keyed
 * under it with EPROTO); a fresh kTLS pair is attached, given a message and
 * a part of the next through kTLS, and unattached mid-message.
 * Every call is non-blocking or bounded by a short socket timeout, so the
 * program ends by itself; a thread stuck in the kernel shows as a timeout of
 * the case.
 *
 * Meanwhile witness multiplexors, which the chaos touches only harmlessly,
 * carry numbered messages both ways, and every one is checked: accepted
 * messages arrive exactly once, intact, in order where order is promised
 * (see "witnesses" below).  Their counts are printed on every run.
 *
 * The single TAP case "fuzz" passes when the program survives, the witness
 * data check finds nothing, and a fresh multiplexor still carries a message
 * afterwards; the kernel log judges the rest (KASAN, lockdep, kmemleak on
 * the debug kernel).
 *
 * Reproducibility: each thread draws its operations from its own generator
 * seeded from SEED, so a SEED replays the same per-thread operation
 * sequences; how the threads interleave still depends on the scheduler.
 * Without a seed, one is taken from the clock and printed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "kcm_test.h"
#include "ktls_keys.h"

#define FUZZ_DEFAULT_SECONDS	20
#define FUZZ_DEFAULT_THREADS	4
#define FUZZ_MAX_THREADS	16
#define NKCM		16	/* KCM socket slots */
#define NTCP		24	/* TCP slots: 2k and 2k+1 start as peers */
#define NPROG		10	/* BPF program slots */
#define BUF_SIZE	(512 * 1024)

static unsigned long long fuzz_seed;
static int fuzz_seed_given;
static int fuzz_seconds = FUZZ_DEFAULT_SECONDS;
static int fuzz_dontwait;

/* ---- shared fd tables ----------------------------------------------------
 * A slot holds an fd or -1.  Whoever takes an fd out of a slot (exchange
 * with -1) owns it and closes it; other threads may still be using the
 * number in a system call, which is exactly the kind of race we want.
 * Numbers 0-2 are never closed.
 */
static int kcm_slot[NKCM];
static int tcp_slot[NTCP];
static int prog_slot[NPROG];
static int stop;

static int slot_get(int *tab, int i)
{
	return __atomic_load_n(&tab[i], __ATOMIC_ACQUIRE);
}

static void slot_put(int *tab, int i, int fd)
{
	int old = __atomic_exchange_n(&tab[i], fd, __ATOMIC_ACQ_REL);

	if (old > 2)
		close(old);
}

static int slot_take(int *tab, int i)
{
	return __atomic_exchange_n(&tab[i], -1, __ATOMIC_ACQ_REL);
}

/* ---- operations and their counters ---------------------------------------- */

enum op {
	OP_MUX, OP_CLONE, OP_PAIR, OP_PROG, OP_ATTACH, OP_ATTACH_BAD,
	OP_UNATTACH, OP_SEND, OP_SENDMMSG, OP_SEQPART, OP_SENDFILE, OP_RECV,
	OP_RECVMMSG, OP_RECV_WAIT, OP_SPLICE, OP_TCP_WRITE, OP_TCP_READ,
	OP_RECV_DISABLE, OP_POLL, OP_SOCKOPT, OP_SHUTDOWN, OP_CLOSE, OP_RESET,
	OP_PROC, OP_IOCTL, OP_SCM, OP_NETNS, OP_MSG_MORE, OP_EPOLL, OP_SIGNAL,
	OP_WITNESS, OP_KTLS, OP_KTLS_UNATTACH,
	NOPS
};

static const struct {
	const char *name;
	int weight;
} ops[NOPS] = {
	[OP_MUX]	  = { "socket",		3 },
	[OP_CLONE]	  = { "clone",		3 },
	[OP_PAIR]	  = { "tcp_pair",	3 },
	[OP_PROG]	  = { "bpf_load",	2 },
	[OP_ATTACH]	  = { "attach",		8 },
	[OP_ATTACH_BAD]	  = { "attach_invalid",	3 },
	[OP_UNATTACH]	  = { "unattach",	4 },
	[OP_SEND]	  = { "send",		10 },
	[OP_SENDMMSG]	  = { "sendmmsg",	3 },
	[OP_SEQPART]	  = { "seqpacket_part",	3 },
	[OP_SENDFILE]	  = { "sendfile",	1 },
	[OP_RECV]	  = { "recv",		10 },
	[OP_RECVMMSG]	  = { "recvmmsg",	3 },
	[OP_RECV_WAIT]	  = { "recv_timeout",	2 },
	[OP_SPLICE]	  = { "splice",		1 },
	[OP_TCP_WRITE]	  = { "tcp_write",	8 },
	[OP_TCP_READ]	  = { "tcp_read",	6 },
	[OP_RECV_DISABLE] = { "recv_disable",	3 },
	[OP_POLL]	  = { "poll",		3 },
	[OP_SOCKOPT]	  = { "setsockopt",	4 },
	[OP_SHUTDOWN]	  = { "shutdown",	2 },
	[OP_CLOSE]	  = { "close",		3 },
	[OP_RESET]	  = { "reset",		2 },
	[OP_PROC]	  = { "proc_read",	1 },
	[OP_IOCTL]	  = { "ioctl",		1 },
	[OP_SCM]	  = { "scm_rights",	1 },
	[OP_NETNS]	  = { "netns",		1 },
	[OP_MSG_MORE]	  = { "msg_more",	3 },
	[OP_EPOLL]	  = { "epoll",		3 },
	[OP_SIGNAL]	  = { "signal",		2 },
	[OP_WITNESS]	  = { "witness_touch",	6 },
	[OP_KTLS]	  = { "ktls_key",	3 },
	[OP_KTLS_UNATTACH] = { "ktls_unattach",	2 },
};

static unsigned long op_calls[NOPS];
static unsigned long op_fails[NOPS];	/* a call returned an error */
static unsigned long op_nomem[NOPS];	/* ... and it was ENOMEM or ENOBUFS */
static unsigned long op_eintr[NOPS];	/* ... or EINTR: a signal (OP_SIGNAL) */

static void count(enum op op, long ret)
{
	int err = errno;

	__atomic_add_fetch(&op_calls[op], 1, __ATOMIC_RELAXED);
	if (ret >= 0)
		return;
	__atomic_add_fetch(&op_fails[op], 1, __ATOMIC_RELAXED);
	if (err == ENOMEM || err == ENOBUFS)
		__atomic_add_fetch(&op_nomem[op], 1, __ATOMIC_RELAXED);
	if (err == EINTR)
		__atomic_add_fetch(&op_eintr[op], 1, __ATOMIC_RELAXED);
}

/* ---- fault injection (failslab) --------------------------------------------
 * KCM_FUZZ_FAILSLAB=task: the worker threads mark themselves with
 * /proc/thread-self/make-it-fail and failslab runs with task-filter=Y: any
 * slab allocation in their system calls may fail, the module's or not
 * (socket, TCP, BPF, ...), but nothing in softirq or in work items.
 * KCM_FUZZ_FAILSLAB=module: task-filter=N, and failslab's stack filter
 * (require-start/require-end) keeps only allocations with the module's
 * .text on the call stack, in any context: system calls of any task, the
 * receive path in softirq, write-space callbacks, work items.
 * Either way GFP_KERNEL allocations fail too (ignore-gfp-wait=N), and the
 * count of injected failures is what failslab took off "times".
 * The main thread (setup, the sanity check at the end) is never failed: it
 * has no make-it-fail, and the probability is 0 again before it goes on.
 */
#define FAILSLAB	"/sys/kernel/debug/failslab/"
#define FAILSLAB_TIMES	1000000000L	/* more than a run can use up */

enum { FS_OFF, FS_TASK, FS_MODULE };
static int fs_mode;
static int fs_percent = 5;
/* Open from the start: stopping must work when the fuzz has run the
 * process out of descriptors (or memory).
 */
static int fs_prob_fd = -1, fs_times_fd = -1;
static int fs_stacks;
static const char *const fs_mode_name[] = { "off", "task", "module" };

static void fs_set(const char *knob, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void fs_set(const char *knob, const char *fmt, ...)
{
	char path[128], val[64];
	va_list ap;
	int err;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), FAILSLAB "%s", knob);
	err = kcm_write_file(path, val);
	if (err)
		KCM_FAIL("failslab: writing %s to %s: %s", val, path,
			 strerror(-err));
}

static void failslab_start(void)
{
	unsigned long start = 0, end = ~0UL;

	if (access(FAILSLAB "probability", W_OK))
		KCM_FAIL("failslab: " FAILSLAB "probability: %s (needs CONFIG_FAILSLAB, CONFIG_FAULT_INJECTION_DEBUG_FS, debugfs mounted)",
			 strerror(errno));
	if (fs_mode == FS_MODULE) {
		if (access(FAILSLAB "require-start", W_OK))
			KCM_FAIL("failslab: no require-start (needs CONFIG_FAULT_INJECTION_STACKTRACE_FILTER)");
		kcm_module_text(&start, &end);
	}
	fs_set("probability", "0");	/* off while it is set up */
	fs_set("interval", "1");
	fs_set("space", "0");
	fs_set("times", "%ld", FAILSLAB_TIMES);
	fs_set("ignore-gfp-wait", "N");
	fs_set("cache-filter", "N");
	fs_set("task-filter", fs_mode == FS_TASK ? "Y" : "N");
	fs_set("stacktrace-depth", "32");
	fs_set("require-start", "%#lx", start);
	fs_set("require-end", "%#lx", end);
	fs_set("reject-start", "0");
	fs_set("reject-end", "0");
	if (fs_stacks) {
		/* A stack each; a few a second are plenty for a census. */
		fs_set("verbose", "2");
		fs_set("verbose_ratelimit_interval_ms", "1000");
		fs_set("verbose_ratelimit_burst", "4");
	} else {
		fs_set("verbose", "0");
	}
	kcm_diag("failslab: %s mode, %d%% of the %s%s", fs_mode_name[fs_mode],
		 fs_percent,
		 fs_mode == FS_TASK ? "worker threads' slab allocations" :
		 "slab allocations from kcm's text",
		 fs_stacks ? ", stacks logged (ratelimited)" : "");
	if (fs_mode == FS_MODULE)
		kcm_diag("failslab: kcm text %#lx-%#lx", start, end);
	fs_prob_fd = open(FAILSLAB "probability", O_WRONLY | O_CLOEXEC);
	fs_times_fd = open(FAILSLAB "times", O_RDONLY | O_CLOEXEC);
	if (fs_prob_fd < 0 || fs_times_fd < 0)
		KCM_FAIL("failslab: open: %s", strerror(errno));
	fs_set("probability", "%d", fs_percent);
}

/* Off again; returns how many failures were injected. */
static long failslab_stop(void)
{
	char text[32] = "";
	ssize_t n;

	/* (debugfs attribute files cannot seek: one write, one read.) */
	if (write(fs_prob_fd, "0", 1) != 1)
		KCM_FAIL("failslab: writing 0 to probability: %s",
			 strerror(errno));
	n = read(fs_times_fd, text, sizeof(text) - 1);
	if (n <= 0)
		KCM_FAIL("failslab: reading times: %s", strerror(errno));
	text[n] = 0;
	close(fs_prob_fd);
	close(fs_times_fd);
	/* The rest back to what a plain failslab user expects. */
	kcm_write_file(FAILSLAB "task-filter", "N");
	kcm_write_file(FAILSLAB "verbose", "0");
	kcm_write_file(FAILSLAB "require-start", "0");
	kcm_write_file(FAILSLAB "require-end", "0xffffffffffffffff");
	return FAILSLAB_TIMES - strtol(text, NULL, 0);
}

/* ---- per-thread state ------------------------------------------------------ */

struct worker {
	pthread_t tid;
	int id;
	uint64_t rng;
	int listener;		/* this thread's loopback listener */
	int udp, unix_fd, unconn;	/* sockets that must not attach */
	int pipe_rd, pipe_wr;	/* for splice */
	int memfd;		/* source for sendfile */
	uint32_t seq;
	long long netns_ms;	/* when this thread last changed netns */
	unsigned char *buf;
	pid_t ktid;		/* for /proc/self/task/TID when stuck */
	int cur_op;		/* the operation running now */
	int done;		/* the thread has seen stop and returned */
	int epfd;		/* op_epoll()'s, kept from call to call */
	char *stack;		/* witness_clone()'s child's */
};

static uint32_t rnd(struct worker *w, uint32_t n)
{
	return n ? kcm_rand(&w->rng) % n : 0;
}

static int chance(struct worker *w, int percent)
{
	return (int)rnd(w, 100) < percent;
}

/* O_NONBLOCK on or off; the fd may be stale, so errors are fine. */
static void set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* Socket timeouts are always short and never 0 (which means forever). */
static void set_timeouts(int fd, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/*
 * For a call that may block: a private duplicate of fd whose timeout
 * (SO_RCVTIMEO or SO_SNDTIMEO, @opt) is finite, or -1.  The caller closes it.
 *
 * The number taken from a table may be closed by its owner and handed out
 * again at any moment, to a socket whose creator has not set its timeouts
 * yet (new_kcm(), op_clone(), tcp_pair(): the default is forever), or to a
 * socket that never gets any (a UDP or AF_UNIX socket of op_netns() or
 * op_scm()).  A blocking call on the bare number could then sleep forever
 * and pass for a kernel hang (seed 23 with KCM_FUZZ_DONTWAIT=1 once left a
 * recv asleep on a KCM socket for 30 s; the module's wait honours
 * SO_RCVTIMEO, so most likely that socket had none).  The duplicate stays the
 * same file whatever other threads do with the number (as a system call in
 * progress would), and no thread ever sets a timeout back to forever.
 * Other threads closing the original number while we use the duplicate is
 * still the race we want.
 */
static unsigned long unbounded_kcm, unbounded_other;

static int bounded_dup(int fd, int opt)
{
	struct timeval tv = { 0 };
	socklen_t len = sizeof(tv);
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 3), dom = -1;

	if (d < 0)
		return -1;
	if (!getsockopt(d, SOL_SOCKET, opt, &tv, &len) && !tv.tv_sec &&
	    !tv.tv_usec) {
		/* Counted: how often the trap was there. */
		len = sizeof(dom);
		getsockopt(d, SOL_SOCKET, SO_DOMAIN, &dom, &len);
		__atomic_add_fetch(dom == AF_KCM ? &unbounded_kcm :
				   &unbounded_other, 1, __ATOMIC_RELAXED);
		tv.tv_usec = 200 * 1000;
		setsockopt(d, SOL_SOCKET, opt, &tv, sizeof(tv));
	}
	return d;
}

static void close_dup(int d)
{
	int err = errno;	/* count() wants the call's errno */

	if (d > 2)
		close(d);
	errno = err;
}

/* ---- BPF framing programs ------------------------------------------------------ */

#define I(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), \
			  .src_reg = (s), .off = (o), .imm = (i) })
#define R6_CTX		I(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_1, 0, 0)
#define LDABS(sz, off)	I(BPF_LD | (sz) | BPF_ABS, 0, 0, 0, off)
#define ADDK(k)		I(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_0, 0, 0, k)
#define MOVK(k)		I(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, k)
#define RET		I(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* Program kinds; the first ones frame our messages correctly. */
enum prog_kind {
	PK_LEN32, PK_LEN16, PK_LEN32_MINUS1, PK_LEN32_PLUS1, PK_LEN32_BARE,
	PK_BYTE, PK_OOB, PK_CONST, PK_WRONG_TYPE,
	NPK
};

static int load_prog(struct worker *w, int kind)
{
	static const int consts[] = {
		0, -1, -22, -2147483647 - 1, 1, 3, 4, 16, 64, 4096, 65540,
		1 << 20, 0x7fffffff,
	};
	struct bpf_insn p[4];
	int n = 0, type = BPF_PROG_TYPE_SOCKET_FILTER;

	switch (kind) {
	case PK_LEN32:
	case PK_LEN32_MINUS1:
	case PK_LEN32_PLUS1:
	case PK_LEN32_BARE:
		p[n++] = R6_CTX;
		p[n++] = LDABS(BPF_W, 0);
		p[n++] = ADDK(kind == PK_LEN32 ? 4 : kind == PK_LEN32_MINUS1 ? 3 :
			      kind == PK_LEN32_PLUS1 ? 5 : 0);
		break;
	case PK_LEN16:
		p[n++] = R6_CTX;
		p[n++] = LDABS(BPF_H, 0);
		p[n++] = ADDK(2);
		break;
	case PK_BYTE:		/* length = first byte + 1: random on garbage */
		p[n++] = R6_CTX;
		p[n++] = LDABS(BPF_B, 0);
		p[n++] = ADDK(1);
		break;
	case PK_OOB:		/* load past the end: the program returns 0 */
		p[n++] = R6_CTX;
		p[n++] = LDABS(BPF_W, 1 << 16);
		break;
	case PK_CONST:
		p[n++] = MOVK(consts[rnd(w, sizeof(consts) / sizeof(consts[0]))]);
		break;
	default:		/* right code, wrong program type */
		type = BPF_PROG_TYPE_SCHED_CLS;
		p[n++] = MOVK(0);
		break;
	}
	p[n++] = RET;
	return kcm_bpf_load(type, p, n);
}

/* A framing program fd: mostly LEN32, so that traffic flows. */
static void op_prog(struct worker *w)
{
	int kind = chance(w, 50) ? PK_LEN32 : (int)rnd(w, NPK);
	int fd = load_prog(w, kind);

	count(OP_PROG, fd);
	if (fd >= 0)
		slot_put(prog_slot, rnd(w, NPROG), fd);
}

/* ---- sockets ----------------------------------------------------------------------- */

static int loopback_listener(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 64)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A connected loopback TCP pair, both ends with short timeouts. */
static int tcp_pair(struct worker *w, int *c, int *s)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	struct pollfd p;
	int fd, acc = -1, tries;

	if (w->listener < 0)
		w->listener = loopback_listener();
	if (w->listener < 0 ||
	    getsockname(w->listener, (struct sockaddr *)&a, &alen))
		goto bad_listener;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, alen) && errno != EINPROGRESS) {
		close(fd);
		goto bad_listener;
	}
	p.fd = fd;
	p.events = POLLOUT;
	poll(&p, 1, 200);
	for (tries = 0; tries < 20 && acc < 0; tries++) {
		acc = accept4(w->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (acc < 0) {
			p.fd = w->listener;
			p.events = POLLIN;
			poll(&p, 1, 10);
		}
	}
	if (acc < 0) {
		close(fd);
		goto bad_listener;
	}
	/* Half the sockets stay blocking, bounded by their timeouts. */
	if (chance(w, 50))
		set_nonblock(fd, 0);
	if (chance(w, 50))
		set_nonblock(acc, 0);
	set_timeouts(fd, 1 + rnd(w, 100));
	set_timeouts(acc, 1 + rnd(w, 100));
	*c = fd;
	*s = acc;
	return 0;

bad_listener:
	/* Another thread may have shut down or closed our listener by a
	 * stale number: start over with a new one.
	 */
	if (w->listener >= 0)
		close(w->listener);
	w->listener = -1;
	return -1;
}

/* kTLS: both kernels have TLS 1.2 and 1.3 with AES-GCM-128. */
static const struct ktls_suite *any_suite(struct worker *w)
{
	return chance(w, 50) ? &tls12_gcm : &tls13_gcm;
}

/*
 * Keys a fresh pair with kTLS: a -> b (a's TLS_TX, b's TLS_RX with the
 * same keys), b -> a, both ways, or a's TLS_TX alone (b reads ciphertext).
 * Returns 0 or the first errno.
 */
static int ktls_pair(struct worker *w, int a, int b)
{
	const struct ktls_suite *su = any_suite(w);
	uint8_t tag = (uint8_t)rnd(w, 255);
	int how = rnd(w, 4), e = 0;

	if (how == 0 || how == 2 || how == 3)
		e = ktls_key_try(a, TLS_TX, su, tag);
	if (!e && how != 3 && how != 1)
		e = ktls_key_try(b, TLS_RX, su, tag);
	if (!e && (how == 1 || how == 2))
		e = ktls_key_try(b, TLS_TX, su, tag + 1);
	if (!e && (how == 1 || how == 2))
		e = ktls_key_try(a, TLS_RX, su, tag + 1);
	return e;
}

static void op_pair(struct worker *w)
{
	int k = rnd(w, NTCP / 2), c, s;
	int r = tcp_pair(w, &c, &s);

	/* A third of the pairs are kTLS pairs (see ktls_pair()), on ours. */
	if (!r && !kcm_lane_is_linux() && chance(w, 33)) {
		if (chance(w, 50))
			(void)ktls_pair(w, c, s);
		else
			(void)ktls_pair(w, s, c);
	}
	count(OP_PAIR, r);
	if (r)
		return;
	slot_put(tcp_slot, 2 * k, c);
	slot_put(tcp_slot, 2 * k + 1, s);
}

static int new_kcm(struct worker *w)
{
	int type = chance(w, 50) ? SOCK_DGRAM : SOCK_SEQPACKET;
	int fd = socket(AF_KCM, type | SOCK_CLOEXEC |
			(chance(w, 50) ? SOCK_NONBLOCK : 0), KCMPROTO_CONNECTED);

	if (fd >= 0)
		set_timeouts(fd, 1 + rnd(w, 100));
	return fd;
}

static void op_mux(struct worker *w)
{
	int fd = new_kcm(w);

	count(OP_MUX, fd);
	if (fd >= 0)
		slot_put(kcm_slot, rnd(w, NKCM), fd);
}

static void op_clone(struct worker *w)
{
	int fd = kcm_clone(slot_get(kcm_slot, rnd(w, NKCM)));

	count(OP_CLONE, fd);
	if (fd < 0)
		return;
	set_timeouts(fd, 1 + rnd(w, 100));
	if (chance(w, 50))
		set_nonblock(fd, 1);
	slot_put(kcm_slot, rnd(w, NKCM), fd);
}

static int any_kcm(struct worker *w)
{
	return slot_get(kcm_slot, rnd(w, NKCM));
}

static int any_tcp(struct worker *w)
{
	return slot_get(tcp_slot, rnd(w, NTCP));
}

static int any_prog(struct worker *w)
{
	return slot_get(prog_slot, rnd(w, NPROG));
}

static void op_attach(struct worker *w)
{
	count(OP_ATTACH, kcm_attach(any_kcm(w), any_tcp(w), any_prog(w)));
}

/* Attach requests that must fail: a bad descriptor, a socket that is not an
 * established TCP socket, a program of the wrong kind.
 */
static void op_attach_bad(struct worker *w)
{
	int kfd = any_kcm(w), tfd = any_tcp(w), pfd = any_prog(w);
	int wrong = -1;

	switch (rnd(w, 12)) {
	case 0:
		tfd = -1;
		break;
	case 1:
		tfd = 100000;
		break;
	case 2:
		tfd = kfd;
		break;
	case 3:
		tfd = pfd;
		break;
	case 4:
		tfd = w->listener;
		break;
	case 5:
		tfd = w->udp;
		break;
	case 6:
		tfd = w->unix_fd;
		break;
	case 7:
		tfd = w->unconn;
		break;
	case 8:
		pfd = -1;
		break;
	case 9:
		pfd = tfd;
		break;
	case 10:
		pfd = kfd;
		break;
	default:
		wrong = load_prog(w, PK_WRONG_TYPE);
		pfd = wrong;
		break;
	}
	if (chance(w, 10))
		kfd = chance(w, 50) ? tfd : w->udp;	/* not a KCM socket */
	count(OP_ATTACH_BAD, kcm_attach(kfd, tfd, pfd));
	if (wrong >= 0)
		close(wrong);
}

static void op_unattach(struct worker *w)
{
	int tfd = chance(w, 90) ? any_tcp(w) : (int)rnd(w, 64);

	count(OP_UNATTACH, kcm_unattach(any_kcm(w), tfd));
}

static size_t make_msg(struct worker *w, size_t cap);

/*
 * Keys a socket of the table with kTLS, one direction: attached or not,
 * keyed already or not, in any state.  Under an attached socket our module
 * fails the psock with EPROTO (kcm_stream's ulp_after_attach_fails_psock):
 * a disturbing operation, for the chaos sockets only, never the witnesses.
 * Now and then its pair's other end is keyed to match, so that the bytes
 * can be read.
 */
static void op_ktls(struct worker *w)
{
	const struct ktls_suite *su = any_suite(w);
	int k = rnd(w, NTCP), dir = chance(w, 50) ? TLS_TX : TLS_RX;
	uint8_t tag = (uint8_t)rnd(w, 4);
	int e = ktls_key_try(slot_get(tcp_slot, k), dir, su, tag);

	if (!e && chance(w, 50))
		(void)ktls_key_try(slot_get(tcp_slot, k ^ 1),
				   dir == TLS_TX ? TLS_RX : TLS_TX, su, tag);
	errno = e;
	count(OP_KTLS, e ? -1 : 0);
}

/*
 * A fresh kTLS pair, the receiving end attached (to a new KCM socket with
 * LEN32 mostly, else to a KCM socket and a program of the tables), a
 * message and a part of the next one written through the peer's kTLS,
 * and the socket unattached at once or a moment later: mid-message (our
 * module leaves the partial message in kTLS, readable on the socket,
 * which is then read).  The pair and the new KCM socket join the tables.
 */
static void op_ktls_unattach(struct worker *w)
{
	int k = rnd(w, NTCP / 2), c, s, kfd, prog = -1, own = chance(w, 70), r;
	size_t len, part;

	if (tcp_pair(w, &c, &s)) {
		count(OP_KTLS_UNATTACH, -1);
		return;
	}
	kfd = own ? new_kcm(w) : any_kcm(w);
	if (own)
		prog = load_prog(w, PK_LEN32);
	r = ktls_pair(w, c, s);
	if (r) {
		errno = r;
		r = -1;
	} else {
		r = kcm_attach(kfd, s, own ? prog : any_prog(w));
	}
	if (prog >= 0)
		close(prog);
	if (!r) {
		len = make_msg(w, 64 * 1024);
		(void)send(c, w->buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		len = make_msg(w, 64 * 1024);
		part = rnd(w, len);
		if (part)
			(void)send(c, w->buf, part, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (chance(w, 50))
			usleep(rnd(w, 3000));
		if (own && chance(w, 50))
			(void)recv(kfd, w->buf, BUF_SIZE, MSG_DONTWAIT);
		r = kcm_unattach(kfd, s);
		if (!r)
			(void)recv(s, w->buf, BUF_SIZE, MSG_DONTWAIT |
				   (chance(w, 30) ? MSG_PEEK : 0));
	}
	count(OP_KTLS_UNATTACH, r);
	if (own && kfd >= 0)
		slot_put(kcm_slot, rnd(w, NKCM), kfd);
	slot_put(tcp_slot, 2 * k, c);
	slot_put(tcp_slot, 2 * k + 1, s);
}

/* Fill w->buf with one message of a random size class; returns its size. */
static size_t make_msg(struct worker *w, size_t cap)
{
	size_t len;

	switch (rnd(w, 10)) {
	case 0:			/* shorter than a frame header */
		len = 1 + rnd(w, 15);
		break;
	case 1:			/* big */
		len = 65536 + rnd(w, 256 * 1024);
		break;
	default:
		len = KCM_MSG_MIN + rnd(w, 4096);
		break;
	}
	if (len > cap)
		len = cap;
	if (len >= KCM_MSG_MIN && chance(w, 90))
		kcm_msg_build(w->buf, len, (uint32_t)w->id, w->seq++);
	else
		memset(w->buf, rnd(w, 256), len);
	return len;
}

static int send_flags(struct worker *w)
{
	int f = MSG_NOSIGNAL;

	if (chance(w, 70) || fuzz_dontwait)
		f |= MSG_DONTWAIT;
	if (chance(w, 15))
		f |= MSG_BATCH;
	if (chance(w, 5))
		f |= MSG_OOB;		/* not supported: must be refused */
	return f;
}

/* send() or sendmsg() with the message scattered over several iovecs. */
static void op_send(struct worker *w)
{
	int fd = bounded_dup(any_kcm(w), SO_SNDTIMEO);
	size_t len = make_msg(w, BUF_SIZE);
	struct iovec iov[4];
	struct msghdr m = { .msg_iov = iov };
	size_t off = 0;
	int i;

	if (chance(w, 40)) {
		count(OP_SEND, send(fd, w->buf, len, send_flags(w)));
		close_dup(fd);
		return;
	}
	for (i = 0; i < 4 && off < len; i++) {
		size_t piece = i == 3 ? len - off : rnd(w, len - off + 1);

		iov[i].iov_base = w->buf + off;
		iov[i].iov_len = piece;
		off += piece;
	}
	m.msg_iovlen = i;
	if (chance(w, 15)) {
		/* Our extension: send on the TCP socket with this cookie.  The
		 * cookie is a live one, a random one, or the length is wrong.
		 */
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(uint64_t)) + 8];
		} c;
		uint64_t cookie = ((uint64_t)kcm_rand(&w->rng) << 32) | kcm_rand(&w->rng);
		socklen_t clen = sizeof(cookie);

		if (chance(w, 70))
			getsockopt(any_tcp(w), SOL_SOCKET, SO_COOKIE, &cookie, &clen);
		memset(&c, 0, sizeof(c));
		c.h.cmsg_level = chance(w, 90) ? SOL_KCM : SOL_SOCKET;
		c.h.cmsg_type = KCM_ORIGIN;
		c.h.cmsg_len = CMSG_LEN(chance(w, 90) ? sizeof(cookie) : rnd(w, 12));
		memcpy(CMSG_DATA(&c.h), &cookie, sizeof(cookie));
		m.msg_control = &c;
		m.msg_controllen = CMSG_SPACE(sizeof(cookie));
		count(OP_SEND, sendmsg(fd, &m, send_flags(w) | MSG_EOR));
		close_dup(fd);
		return;
	}
	count(OP_SEND, sendmsg(fd, &m, send_flags(w) | MSG_EOR));
	close_dup(fd);
}

static void op_sendmmsg(struct worker *w)
{
	struct mmsghdr mm[8];
	struct iovec iov[8];
	int n = 1 + rnd(w, 8), i, fd;
	size_t off = 0;

	memset(mm, 0, sizeof(mm));
	for (i = 0; i < n; i++) {
		size_t len;

		if (off + 8192 > BUF_SIZE)
			break;
		len = KCM_MSG_MIN + rnd(w, 4096);
		kcm_msg_build(w->buf + off, len, (uint32_t)w->id, w->seq++);
		iov[i].iov_base = w->buf + off;
		iov[i].iov_len = len;
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		off += len;
	}
	fd = bounded_dup(any_kcm(w), SO_SNDTIMEO);
	count(OP_SENDMMSG, sendmmsg(fd, mm, i, send_flags(w)));
	close_dup(fd);
}

/* A SOCK_SEQPACKET message in pieces (no MSG_EOR until the last one, and
 * sometimes never: the socket keeps a partial message).
 */
static void op_seqpart(struct worker *w)
{
	int fd = bounded_dup(any_kcm(w), SO_SNDTIMEO);
	size_t len = make_msg(w, BUF_SIZE), off = 0;
	int pieces = 1 + rnd(w, 5), i, eor = chance(w, 80);
	long r = 0;

	for (i = 0; i < pieces && off < len && r >= 0; i++) {
		size_t piece = i == pieces - 1 ? len - off : rnd(w, len - off + 1);
		int f = MSG_NOSIGNAL |
			(chance(w, 70) || fuzz_dontwait ? MSG_DONTWAIT : 0);

		if (i == pieces - 1 && eor)
			f |= MSG_EOR;
		r = send(fd, w->buf + off, piece, f);
		if (r > 0)
			off += r;
	}
	count(OP_SEQPART, r);
	close_dup(fd);
}

static void op_sendfile(struct worker *w)
{
	int fd = bounded_dup(any_kcm(w), SO_SNDTIMEO);
	off_t off = rnd(w, 4096);

	/* sendfile has no MSG_DONTWAIT: make the socket non-blocking (which
	 * another thread may undo: the timeout still bounds it).
	 */
	set_nonblock(fd, 1);
	count(OP_SENDFILE, sendfile(fd, w->memfd, &off, 1 + rnd(w, 65536)));
	close_dup(fd);
}

static int recv_flags(struct worker *w)
{
	int f = MSG_DONTWAIT;

	if (chance(w, 20))
		f |= MSG_PEEK;
	if (chance(w, 10))
		f |= MSG_TRUNC;
	if (chance(w, 3))
		f |= MSG_OOB | MSG_ERRQUEUE;
	return f;
}

static size_t recv_cap(struct worker *w)
{
	static const size_t caps[] = { 0, 1, 4, 15, 16, 100, 4096, 65536, BUF_SIZE };

	return caps[rnd(w, sizeof(caps) / sizeof(caps[0]))];
}

static void op_recv(struct worker *w)
{
	int fd = any_kcm(w);
	size_t cap = recv_cap(w);
	struct iovec iov[3];
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 3 };

	if (chance(w, 50)) {
		count(OP_RECV, recv(fd, w->buf, cap, recv_flags(w)));
		return;
	}
	iov[0].iov_base = w->buf;
	iov[0].iov_len = cap / 3;
	iov[1].iov_base = w->buf + cap / 3;
	iov[1].iov_len = cap / 3;
	iov[2].iov_base = w->buf + 2 * (cap / 3);
	iov[2].iov_len = cap - 2 * (cap / 3);
	if (chance(w, 30)) {	/* room for KCM_ORIGIN, or too little */
		static const size_t clens[] = {
			1, sizeof(struct cmsghdr), CMSG_SPACE(4), CMSG_SPACE(8), 256,
		};
		char ctl[256];

		m.msg_control = ctl;
		m.msg_controllen = clens[rnd(w, sizeof(clens) / sizeof(clens[0]))];
		count(OP_RECV, recvmsg(fd, &m, recv_flags(w)));
		return;
	}
	count(OP_RECV, recvmsg(fd, &m, recv_flags(w)));
}

static void op_recvmmsg(struct worker *w)
{
	struct mmsghdr mm[8];
	struct iovec iov[8];
	int n = 1 + rnd(w, 8), i;
	size_t each = BUF_SIZE / 8;

	memset(mm, 0, sizeof(mm));
	for (i = 0; i < n; i++) {
		iov[i].iov_base = w->buf + i * each;
		iov[i].iov_len = chance(w, 80) ? each : rnd(w, 64);
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
	}
	count(OP_RECVMMSG, recvmmsg(any_kcm(w), mm, n, recv_flags(w), NULL));
}

/* A blocking receive bounded by a short SO_RCVTIMEO. */
static void op_recv_wait(struct worker *w)
{
	int fd = bounded_dup(any_kcm(w), SO_RCVTIMEO);

	set_timeouts(fd, 1 + rnd(w, 30));
	count(OP_RECV_WAIT, recv(fd, w->buf, recv_cap(w),
				 chance(w, 20) ? MSG_PEEK : 0));
	close_dup(fd);
}

static void op_splice(struct worker *w)
{
	struct pollfd p = { .fd = w->pipe_rd, .events = POLLIN };
	long r = splice(any_kcm(w), NULL, w->pipe_wr, NULL, 1 + rnd(w, 65536),
			SPLICE_F_NONBLOCK);

	count(OP_SPLICE, r);
	/* Drain the pipe.  Another thread may have cleared O_NONBLOCK on it
	 * through a stale number, so read only what poll says is there.
	 */
	while (poll(&p, 1, 0) > 0 && (p.revents & POLLIN) &&
	       read(w->pipe_rd, w->buf, BUF_SIZE) > 0)
		;
}

/* Bytes into a TCP socket: whole frames, frames split over writes, or
 * garbage.  Most TCP sockets are the peer of an attached one.
 */
static void op_tcp_write(struct worker *w)
{
	int fd = any_tcp(w);
	size_t len = 0, n = 1 + rnd(w, 4), i;

	for (i = 0; i < n && len + 8192 <= BUF_SIZE; i++) {
		size_t m = KCM_MSG_MIN + rnd(w, 4096);

		kcm_msg_build(w->buf + len, m, (uint32_t)w->id, w->seq++);
		len += m;
	}
	if (chance(w, 10)) {
		len = rnd(w, 64);
		memset(w->buf, rnd(w, 256), len);
	} else if (chance(w, 20)) {
		len = rnd(w, len + 1);	/* a partial frame */
	}
	count(OP_TCP_WRITE, send(fd, w->buf, len, MSG_DONTWAIT | MSG_NOSIGNAL));
}

static void op_tcp_read(struct worker *w)
{
	count(OP_TCP_READ, recv(any_tcp(w), w->buf, recv_cap(w),
				MSG_DONTWAIT | (chance(w, 10) ? MSG_PEEK : 0)));
}

static void op_recv_disable(struct worker *w)
{
	int fd = any_kcm(w), v = rnd(w, 3) == 0 ? 0 : (int)rnd(w, 3);
	socklen_t len = sizeof(v);

	if (chance(w, 20)) {
		count(OP_RECV_DISABLE, getsockopt(fd, SOL_KCM, KCM_RECV_DISABLE,
						  &v, &len));
		return;
	}
	count(OP_RECV_DISABLE, setsockopt(fd, SOL_KCM, KCM_RECV_DISABLE, &v,
					  chance(w, 95) ? sizeof(v) : 1));
}

static void op_poll(struct worker *w)
{
	struct pollfd p[4];
	int n = 1 + rnd(w, 4), i;

	for (i = 0; i < n; i++) {
		p[i].fd = chance(w, 60) ? any_kcm(w) : any_tcp(w);
		p[i].events = POLLIN | POLLOUT | POLLRDHUP;
	}
	count(OP_POLL, poll(p, n, rnd(w, 5)));
}

static void op_sockopt(struct worker *w)
{
	static const int bufs[] = { 0, 1, 256, 1024, 4096, 65536, 1 << 20, 1 << 30 };
	int fd = chance(w, 50) ? any_kcm(w) : any_tcp(w);
	int v = bufs[rnd(w, sizeof(bufs) / sizeof(bufs[0]))];
	long r;

	switch (rnd(w, 8)) {
	case 6:			/* our extensions; Linux refuses them */
		v = rnd(w, 2);
		r = setsockopt(fd, SOL_KCM, KCM_RECV_ORIGIN, &v, sizeof(v));
		break;
	case 7:
		v = rnd(w, 2);
		r = setsockopt(fd, SOL_KCM, KCM_RECV_BATCH, &v, sizeof(v));
		break;
	case 0:
		r = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
		break;
	case 1:
		r = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
		break;
	case 2:
		set_timeouts(fd, 1 + rnd(w, 200));
		r = 0;
		break;
	case 3:
		v = 1 + rnd(w, 65536);
		r = setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v));
		break;
	case 4:
		v = rnd(w, 2);
		r = setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v));
		break;
	default:
		set_nonblock(fd, chance(w, 50));
		r = 0;
		break;
	}
	count(OP_SOCKOPT, r);
}

static void op_shutdown(struct worker *w)
{
	static const int how[] = { SHUT_RD, SHUT_WR, SHUT_RDWR };

	count(OP_SHUTDOWN, shutdown(chance(w, 50) ? any_kcm(w) : any_tcp(w),
				    how[rnd(w, 3)]));
}

static void op_close(struct worker *w)
{
	int fd;

	switch (rnd(w, 3)) {
	case 0:
		fd = slot_take(kcm_slot, rnd(w, NKCM));
		break;
	case 1:
		fd = slot_take(tcp_slot, rnd(w, NTCP));
		break;
	default:
		fd = slot_take(prog_slot, rnd(w, NPROG));
		break;
	}
	count(OP_CLOSE, fd > 2 ? close(fd) : -1);
}

/* The peer resets: SO_LINGER 0, then close. */
static void op_reset(struct worker *w)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };
	int fd = slot_take(tcp_slot, rnd(w, NTCP));

	if (fd <= 2) {
		count(OP_RESET, -1);
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	count(OP_RESET, close(fd));
}

static void op_proc(struct worker *w)
{
	static const char *const files[] = { "/proc/net/kcm", "/proc/net/kcm_stats" };
	int fd = open(files[rnd(w, 2)], O_RDONLY | O_CLOEXEC);
	long r = fd;

	if (fd >= 0) {
		while ((r = read(fd, w->buf, 1 + rnd(w, 8192))) > 0)
			;
		close(fd);
	}
	count(OP_PROC, r);
}

static void op_ioctl(struct worker *w)
{
	static const unsigned long reqs[] = {
		FIONREAD, SIOCOUTQ, SIOCKCMCLONE + 1, SIOCPROTOPRIVATE + 15,
	};
	int v = 0;

	count(OP_IOCTL, ioctl(any_kcm(w), reqs[rnd(w, 4)], &v));
}

/* KCM and TCP sockets in flight in an AF_UNIX socket that is closed with
 * them unread (the last reference is then the garbage collector's), or
 * received back and closed.
 */
static void op_scm(struct worker *w)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(3 * sizeof(int))];
	} c;
	int fds[3] = { any_kcm(w), any_tcp(w), any_kcm(w) }, sv[2], i;
	char byte = 0;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = &c, .msg_controllen = sizeof(c) };
	long r;

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv)) {
		count(OP_SCM, -1);
		return;
	}
	memset(&c, 0, sizeof(c));
	c.h.cmsg_level = SOL_SOCKET;
	c.h.cmsg_type = SCM_RIGHTS;
	c.h.cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(&c.h), fds, sizeof(fds));
	r = sendmsg(sv[0], &m, MSG_DONTWAIT);
	if (r > 0 && chance(w, 50)) {
		memset(&c, 0, sizeof(c));
		m.msg_controllen = sizeof(c);
		if (recvmsg(sv[1], &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) > 0 &&
		    c.h.cmsg_type == SCM_RIGHTS) {
			memcpy(fds, CMSG_DATA(&c.h), sizeof(fds));
			for (i = 0; i < 3; i++)
				if (fds[i] > 2)
					close(fds[i]);
		}
	}
	close(sv[0]);
	close(sv[1]);
	count(OP_SCM, r);
}

/* Move this thread to a new network namespace (at most every 2 s): its new
 * sockets and muxes live there, and the old namespace is torn down, with
 * the per-namespace state of the module, once its last socket closes.
 */
static void op_netns(struct worker *w)
{
	struct ifreq ifr;
	long long now = kcm_now_ms();
	int fd;

	if (now - w->netns_ms < 2000)
		return;
	w->netns_ms = now;
	if (unshare(CLONE_NEWNET)) {
		count(OP_NETNS, -1);
		return;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (fd >= 0 && !ioctl(fd, SIOCGIFFLAGS, &ifr)) {
		ifr.ifr_flags |= IFF_UP;
		ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	if (fd >= 0)
		close(fd);
	if (w->listener >= 0)
		close(w->listener);
	w->listener = loopback_listener();
	count(OP_NETNS, 0);
}

/* ---- signals -----------------------------------------------------------------
 * OP_SIGNAL sends SIGUSR1 to another thread of the fuzzer, chaos or
 * witness.  The handler does nothing and is installed without SA_RESTART,
 * so a thread blocked in a system call (a send waiting for memory, a
 * receive waiting for a message, poll, epoll_wait) returns EINTR: the
 * paths that give up a wait half way are exercised too.  Only threads of
 * this process are named (tgkill), never the main thread.
 */
#define MAX_TIDS	(FUZZ_MAX_THREADS + 16)

static pid_t fuzz_tids[MAX_TIDS];
static int fuzz_ntids;
static unsigned long signals_caught;

static void on_sigusr1(int sig)
{
	(void)sig;
	__atomic_add_fetch(&signals_caught, 1, __ATOMIC_RELAXED);
}

static void register_tid(void)
{
	int i = __atomic_fetch_add(&fuzz_ntids, 1, __ATOMIC_RELAXED);

	if (i < MAX_TIDS)
		__atomic_store_n(&fuzz_tids[i], gettid(), __ATOMIC_RELAXED);
}

static void op_signal(struct worker *w)
{
	int n = __atomic_load_n(&fuzz_ntids, __ATOMIC_RELAXED), k;
	long r = -1;

	if (n > MAX_TIDS)
		n = MAX_TIDS;
	/* Now and then a burst, so that a restarted wait is hit again. */
	for (k = chance(w, 20) ? 4 : 1; k > 0; k--) {
		pid_t tid = __atomic_load_n(&fuzz_tids[rnd(w, n)], __ATOMIC_RELAXED);

		if (tid > 0 && tid != w->ktid)
			r = syscall(SYS_tgkill, getpid(), tid, SIGUSR1);
	}
	count(OP_SIGNAL, r);
}

/* ---- witnesses ----------------------------------------------------------------
 * The chaos above proves little about the data: its messages go to sockets
 * that are closed, reset and unattached under them.  Next to it, on the
 * same kernel at the same time, run NWMUX witness multiplexors whose data
 * is checked.  Each has NWKCM KCM sockets (the first and its clones; the
 * first mux SOCK_DGRAM, the second SOCK_SEQPACKET) and NWCONN loopback TCP
 * connections attached with the LEN32 program.  Their descriptors are
 * kept out of the chaos tables and moved above WFD_BASE, so that no chaos
 * operation names them, not even by a stale or guessed number: nothing
 * unattaches, closes, resets, shuts down or disables them, and no bad
 * program frames them.
 *
 * Traffic, every message built by kcm_msg_build() with an id and a
 * sequence number of its own:
 *  - peer -> KCM: a peer thread writes chunks of numbered messages of
 *    random sizes on the peer end of every connection, cut into writes at
 *    random places; a thread per witness KCM socket receives them (recv,
 *    recvmsg over several iovecs, recvmmsg, SOCK_SEQPACKET messages read
 *    in pieces);
 *  - KCM -> peer: the same threads send numbered messages (whole, in
 *    MSG_MORE pieces on SOCK_DGRAM, in pieces ended by MSG_EOR on
 *    SOCK_SEQPACKET, MSG_BATCH series, sendmmsg), blocking or not; the
 *    peer thread reads the byte streams, frames them and checks every
 *    message: whole, from one sender, not interleaved with another.
 * The chaos threads touch the witnesses only harmlessly (op_witness()):
 * MSG_PEEK, poll, epoll, getsockopt and ioctls that read, clones of the
 * second mux's socket that are closed again (the messages steered to a
 * clone move to the other sockets when it closes), whole messages sent on
 * the first socket of a mux, which the peers check as well; and signals.
 *
 * What is checked, per message id, with a bitmap of the sequence numbers
 * sent and one of those received: every message accepted by the kernel
 * (a send that returned its length, bytes written into TCP) arrives
 * exactly once, intact, on a socket of its own mux; nothing arrives that
 * was not sent (a send that failed must have had no effect); order:
 *  - peer -> KCM, first mux: the messages of one connection received on
 *    one KCM socket come in sending order.  Across sockets there is no
 *    order: a pass over a connection goes to one socket, the next one to
 *    another, and their readers run independently.  On the second mux,
 *    closing a clone hands its queued messages to the other sockets
 *    behind what they hold already, so order is not checked there;
 *  - KCM -> peer: the messages of one witness socket that went out on one
 *    connection come in sending order (a socket sends its queue in order,
 *    a message whole before the next).  The chaos threads' messages share
 *    an id and race for sequence numbers, so they are not ordered.
 * A send that returns less than its length, a message the module's own
 * failure handling dropped (POLLERR on an attached witness socket: the
 * module failed the connection) and a connection closed under the peer
 * are all violations.  A message stuck in a queue for good shows as lost
 * once the drain after the chaos is over.
 *
 * kTLS: the last connection of each mux is a kTLS connection (TLS 1.2 on
 * the first mux, 1.3 on the second; keyed before the attach).  Its
 * attached end sends through its TLS_TX and the peer reads through its
 * TLS_RX; on our module the peer also writes through its TLS_TX and the
 * attached end is framed from its TLS_RX's plaintext.  Linux's kcm.ko
 * parses the ciphertext (kcm_ktls), so there the peer -> KCM direction of
 * that connection stays plain.  Same checks; a read error on a kTLS peer
 * (EBADMSG: a record the module damaged) is a violation as well.  With
 * failslab on, every witness connection is plain TCP: kTLS itself ends a
 * connection whose encryption or decryption fails to allocate
 * (tls_err_abort(), EBADMSG on both ends, by design), so on a kTLS
 * witness an injected failure is a disturbance, not a test of the module
 * (seen on the debug lane: both kTLS witnesses failed within the first
 * seconds of a module-mode run, 132 messages behind one of them lost).
 */
#define NWMUX		2
#define NWKCM		3
#define NWCONN		3
#define WFD_BASE	512
#define WSEQ_MAX	(1u << 20)	/* sequence numbers one id may use */
#define WWINDOW		64		/* messages of one id in flight */
#define WMSG_MAX	65536		/* largest witness message */
#define WCHUNK		8		/* messages per peer write chunk */
#define WRBUF		(8 * WMSG_MAX)
#define WDRAIN_MS	20000
#define WREPORT_MAX	20		/* violations described one by one */
#define WCLONE_STACK	(64 * 1024)

struct wid {
	uint32_t id;
	int ordered;			/* one sender, in order */
	uint32_t next;			/* next sequence number */
	unsigned long nsent, ngot, ndup;
	unsigned char *sent, *got;	/* bitmaps of WSEQ_MAX bits */
};

struct wconn {
	int mux, idx;
	int tcp;			/* attached to the mux */
	int peer;			/* its other end */
	uint64_t cookie;
	struct wid rx;			/* the peer's messages */
	/* peer -> KCM: the chunk being written */
	unsigned char *out;
	size_t out_len, out_off, out_end[WCHUNK];
	uint32_t out_seq[WCHUNK];
	int out_n, out_done, out_active;
	/* KCM -> peer: the stream being framed */
	unsigned char *in;
	size_t in_len;
	unsigned long long in_base;	/* stream offset of in[0] */
	int broken;			/* unframable: no longer parsed */
	uint32_t tx_next[NWKCM + 1];	/* per sender: last seq + 1 */
	int err;			/* SO_ERROR the module posted */
	int eof;
	const struct ktls_suite *tls;	/* kTLS KCM -> peer, or NULL */
	int tls_rx;			/* and peer -> KCM */
	int rd_err;			/* a kTLS peer's read failed */
};

enum { WS_WHOLE, WS_MORE, WS_PARTS };

struct wsock {
	int mux, idx, fd, type;
	int origin;			/* KCM_RECV_ORIGIN is on */
	pthread_t tid;
	pid_t ktid;
	int done;
	uint64_t rng;
	struct wid tx;			/* its messages */
	unsigned char *rbuf, *sbuf;
	size_t r_len;			/* SOCK_SEQPACKET message read so far */
	/* the message being sent */
	int s_active, s_mode, s_batch;
	size_t s_len, s_off;
	uint32_t s_seq;
	int batch_left, batch_open;
	int busy;			/* in wsock_start() or a send */
	uint32_t rx_next[NWCONN];	/* per connection: last seq + 1 */
	unsigned long eintr, eagain, nomem;
};

struct wmux {
	int type;
	struct wsock sock[NWKCM];
	struct wconn conn[NWCONN];
	struct wid chaos;		/* sent by op_witness() on sock[0] */
};

static struct wmux wmux[NWMUX];
static int wit_stopping;		/* no new messages */
static int wit_end;			/* the witness threads return */
static int wit_plain;			/* traffic Linux's known bugs spare */
static pthread_t wpeer_tid;
static pid_t wpeer_ktid;
static int wpeer_done;
static unsigned long wpeer_eintr;

/* Violations, counted by kind; the first ones are described. */
enum {
	WV_CORRUPT_RX, WV_CORRUPT_TX, WV_MISROUTED, WV_ORDER, WV_ORIGIN,
	WV_SHORT_SEND, WV_SEND_ERR, WV_TRUNC, WV_CONN,
	NWV
};
static const char *const wv_name[NWV] = {
	"corrupted peer->kcm", "corrupted kcm->peer", "misrouted",
	"out of order", "wrong KCM_ORIGIN", "short sends",
	"unexpected send errors", "truncated", "connection failures",
};
static unsigned long wv[NWV];
static unsigned long reorder_loose;	/* second mux: allowed */
static int wreports;

static void wviolation(int kind, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void wviolation(int kind, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	__atomic_add_fetch(&wv[kind], 1, __ATOMIC_RELAXED);
	if (__atomic_fetch_add(&wreports, 1, __ATOMIC_RELAXED) >= WREPORT_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	kcm_diag("witness: %s: %s (seed %llu)", wv_name[kind], text, fuzz_seed);
}

static int bit_set(unsigned char *map, uint32_t n)
{
	unsigned char b = 1u << (n & 7);

	return __atomic_fetch_or(&map[n >> 3], b, __ATOMIC_RELAXED) & b;
}

static int bit_test(const unsigned char *map, uint32_t n)
{
	return __atomic_load_n(&map[n >> 3], __ATOMIC_RELAXED) & (1u << (n & 7));
}

static void wid_init(struct wid *d, uint32_t id, int ordered)
{
	d->id = id;
	d->ordered = ordered;
	d->sent = calloc(WSEQ_MAX / 8, 1);
	d->got = calloc(WSEQ_MAX / 8, 1);
	ASSERT_TRUE(d->sent && d->got);
}

static void wid_sent(struct wid *d, uint32_t seq)
{
	if (!bit_set(d->sent, seq))
		__atomic_add_fetch(&d->nsent, 1, __ATOMIC_RELAXED);
}

static void wid_got(struct wid *d, uint32_t seq, const char *where)
{
	if (!bit_set(d->got, seq)) {
		__atomic_add_fetch(&d->ngot, 1, __ATOMIC_RELAXED);
		return;
	}
	__atomic_add_fetch(&d->ndup, 1, __ATOMIC_RELAXED);
	if (__atomic_fetch_add(&wreports, 1, __ATOMIC_RELAXED) < WREPORT_MAX)
		kcm_diag("witness: duplicate: id %#x seq %u again, on %s (seed %llu)",
			 d->id, seq, where, fuzz_seed);
}

static unsigned long wid_outstanding(struct wid *d)
{
	return __atomic_load_n(&d->nsent, __ATOMIC_RELAXED) -
	       __atomic_load_n(&d->ngot, __ATOMIC_RELAXED);
}

/* The messages the witnesses may expect: their ids and where they come from. */
#define WID_RX(m, c)	(0x57520000u | (uint32_t)(m) << 8 | (uint32_t)(c))
#define WID_TX(m, k)	(0x57540000u | (uint32_t)(m) << 8 | (uint32_t)(k))

static int wid_is_rx(uint32_t id, int *m, int *c)
{
	*m = (id >> 8) & 0xff;
	*c = id & 0xff;
	return (id & 0xffff0000u) == 0x57520000u && *m < NWMUX && *c < NWCONN;
}

static int wid_is_tx(uint32_t id, int *m, int *k)
{
	*m = (id >> 8) & 0xff;
	*k = id & 0xff;
	return (id & 0xffff0000u) == 0x57540000u && *m < NWMUX && *k <= NWKCM;
}

static uint32_t wrand(uint64_t *rng, uint32_t n)
{
	return n ? kcm_rand(rng) % n : 0;
}

/* Mostly small messages, some of a few pages, a few of up to 64 KiB. */
static size_t wmsg_size(uint64_t *rng)
{
	uint32_t r = wrand(rng, 100);

	if (r < 85)
		return KCM_MSG_MIN + wrand(rng, 4096 - KCM_MSG_MIN + 1);
	if (r < 95)
		return 4097 + wrand(rng, 12288);
	return KCM_MSG_MIN + wrand(rng, WMSG_MAX - KCM_MSG_MIN + 1);
}

static int wfd_high(int fd)
{
	int d = fcntl(fd, F_DUPFD_CLOEXEC, WFD_BASE);

	if (d < 0)
		return fd;
	close(fd);
	return d;
}

static int wtransient(int err)
{
	return err == EAGAIN || err == EINTR || err == ENOMEM ||
	       err == ENOBUFS;
}

static void wsock_count_err(struct wsock *s, int err)
{
	if (err == EINTR)
		s->eintr++;
	else if (err == EAGAIN)
		s->eagain++;
	else if (err == ENOMEM || err == ENOBUFS)
		s->nomem++;
}

/* A message received on witness socket s (with its origin, or 0). */
static void wsock_got(struct wsock *s, const unsigned char *buf, size_t n,
		      uint64_t origin)
{
	uint32_t id, seq;
	int m, c;
	char where[48];

	snprintf(where, sizeof(where), "kcm socket %d.%d", s->mux, s->idx);
	if (kcm_msg_check(buf, n, &id, &seq)) {
		wviolation(WV_CORRUPT_RX, "%zu bytes on %s, header %02x%02x%02x%02x %02x%02x%02x%02x %02x%02x%02x%02x",
			   n, where, buf[0], buf[1], buf[2], buf[3], buf[4],
			   buf[5], buf[6], buf[7], buf[8], buf[9], buf[10],
			   buf[11]);
		return;
	}
	if (!wid_is_rx(id, &m, &c) || m != s->mux) {
		wviolation(WV_MISROUTED, "message id %#x seq %u on %s", id,
			   seq, where);
		return;
	}
	if (origin && origin != wmux[m].conn[c].cookie)
		wviolation(WV_ORIGIN, "id %#x seq %u on %s: origin %#llx, its connection's cookie %#llx",
			   id, seq, where, (unsigned long long)origin,
			   (unsigned long long)wmux[m].conn[c].cookie);
	wid_got(&wmux[m].conn[c].rx, seq, where);
	if (seq < s->rx_next[c]) {
		if (s->mux == 0)
			wviolation(WV_ORDER, "connection %d.%d: seq %u on %s after seq %u",
				   m, c, seq, where, s->rx_next[c] - 1);
		else
			__atomic_add_fetch(&reorder_loose, 1, __ATOMIC_RELAXED);
	} else {
		s->rx_next[c] = seq + 1;
	}
}

static uint64_t worigin(struct msghdr *m)
{
	struct cmsghdr *h;
	uint64_t v = 0;

	for (h = CMSG_FIRSTHDR(m); h; h = CMSG_NXTHDR(m, h))
		if (h->cmsg_level == SOL_KCM && h->cmsg_type == KCM_ORIGIN &&
		    h->cmsg_len == CMSG_LEN(sizeof(v)))
			memcpy(&v, CMSG_DATA(h), sizeof(v));
	return v;
}

/* One receive call of some kind; 0 when there was nothing. */
static int wsock_recv_one(struct wsock *s)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(uint64_t))];
	} ctl;
	int flags = wrand(&s->rng, 100) < 70 ? MSG_DONTWAIT : 0;
	struct iovec iov[WCHUNK];
	struct mmsghdr mm[WCHUNK];
	struct msghdr m;
	size_t cap;
	ssize_t n;
	int i, k;

	/* The rest of a SOCK_SEQPACKET message: recvmsg, which tells MSG_EOR. */
	switch (s->r_len ? 1 : wrand(&s->rng, 3)) {
	case 0:
		if (s->type == SOCK_SEQPACKET)
			goto pieces;
		n = recv(s->fd, s->rbuf, WRBUF, flags);
		if (n < 0)
			break;
		wsock_got(s, s->rbuf, n, 0);
		return 1;
	case 1:
pieces:
		cap = WRBUF - s->r_len;
		/* Linux's kcm.ko drops the unread rest of a message (a known
		 * bug, kcm_recv.c): there, messages are read whole.
		 */
		if (s->type == SOCK_SEQPACKET && !wit_plain &&
		    wrand(&s->rng, 100) < 30)
			cap = 1 + wrand(&s->rng, 2048);
		memset(&m, 0, sizeof(m));
		iov[0].iov_base = s->rbuf + s->r_len;
		iov[0].iov_len = cap / 3;
		iov[1].iov_base = s->rbuf + s->r_len + cap / 3;
		iov[1].iov_len = cap / 3;
		iov[2].iov_base = s->rbuf + s->r_len + 2 * (cap / 3);
		iov[2].iov_len = cap - 2 * (cap / 3);
		m.msg_iov = iov;
		m.msg_iovlen = 3;
		if (s->origin) {
			m.msg_control = &ctl;
			m.msg_controllen = sizeof(ctl);
		}
		n = recvmsg(s->fd, &m, flags);
		if (n < 0)
			break;
		if (m.msg_flags & MSG_TRUNC)
			wviolation(WV_TRUNC, "%zd bytes into %zu on kcm socket %d.%d",
				   n, cap, s->mux, s->idx);
		if (s->type == SOCK_SEQPACKET && !(m.msg_flags & MSG_EOR)) {
			s->r_len += n;
			if (s->r_len >= WRBUF) {
				wviolation(WV_TRUNC, "a SOCK_SEQPACKET message of more than %d bytes on kcm socket %d.%d",
					   WRBUF, s->mux, s->idx);
				s->r_len = 0;
			}
			return 1;
		}
		n += s->r_len;
		s->r_len = 0;
		wsock_got(s, s->rbuf, n, s->origin ? worigin(&m) : 0);
		return 1;
	default:
		k = 1 + wrand(&s->rng, WCHUNK);
		memset(mm, 0, sizeof(mm));
		for (i = 0; i < k; i++) {
			iov[i].iov_base = s->rbuf + i * WMSG_MAX;
			iov[i].iov_len = WMSG_MAX;
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(s->fd, mm, k, flags, NULL);
		if (n < 0)
			break;
		for (i = 0; i < n; i++) {
			if (mm[i].msg_hdr.msg_flags & MSG_TRUNC ||
			    (s->type == SOCK_SEQPACKET &&
			     !(mm[i].msg_hdr.msg_flags & MSG_EOR)))
				wviolation(WV_TRUNC, "recvmmsg: %u bytes, flags %#x on kcm socket %d.%d",
					   mm[i].msg_len, mm[i].msg_hdr.msg_flags,
					   s->mux, s->idx);
			else
				wsock_got(s, iov[i].iov_base, mm[i].msg_len, 0);
		}
		return n > 0;
	}
	wsock_count_err(s, errno);
	return 0;
}

/* sendmmsg of a few whole messages: those it reports sent are sent. */
static void wsock_sendmmsg(struct wsock *s)
{
	struct mmsghdr mm[WCHUNK];
	struct iovec iov[WCHUNK];
	uint32_t seq0 = s->tx.next;
	int k = 1 + wrand(&s->rng, WCHUNK), i, n;
	size_t off = 0;

	memset(mm, 0, sizeof(mm));
	for (i = 0; i < k; i++) {
		size_t len = KCM_MSG_MIN + wrand(&s->rng, 4096);

		kcm_msg_build(s->sbuf + off, len, s->tx.id, s->tx.next++);
		iov[i].iov_base = s->sbuf + off;
		iov[i].iov_len = len;
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		off += len;
	}
	n = sendmmsg(s->fd, mm, k, MSG_NOSIGNAL |
		     (s->type == SOCK_SEQPACKET ? MSG_EOR : 0) |
		     (wrand(&s->rng, 100) < 60 ? MSG_DONTWAIT : 0));
	if (n < 0) {
		wsock_count_err(s, errno);
		if (!wtransient(errno))
			wviolation(WV_SEND_ERR, "sendmmsg on kcm socket %d.%d: %s",
				   s->mux, s->idx, strerror(errno));
		return;
	}
	for (i = 0; i < n; i++) {
		if (mm[i].msg_len != iov[i].iov_len)
			wviolation(WV_SHORT_SEND, "sendmmsg message %d: %u of %zu bytes on kcm socket %d.%d",
				   i, mm[i].msg_len, iov[i].iov_len, s->mux,
				   s->idx);
		else
			wid_sent(&s->tx, seq0 + i);
	}
}

static void wsock_start(struct wsock *s)
{
	uint32_t r = wrand(&s->rng, 100);

	/* A MSG_BATCH series ends for sure: a full window or the end could
	 * otherwise leave its messages held back for good.
	 */
	if (!s->batch_left && !s->batch_open && wrand(&s->rng, 100) < 15)
		s->batch_left = 1 + wrand(&s->rng, 6);
	if (__atomic_load_n(&wit_stopping, __ATOMIC_RELAXED) ||
	    wid_outstanding(&s->tx) >= WWINDOW - 8)
		s->batch_left = 0;
	if (r < 20 && !s->batch_open) {
		wsock_sendmmsg(s);
		return;
	}
	s->s_len = wmsg_size(&s->rng);
	s->s_seq = s->tx.next++;
	kcm_msg_build(s->sbuf, s->s_len, s->tx.id, s->s_seq);
	s->s_off = 0;
	s->s_active = 1;
	/* The first socket of a mux is shared with op_witness()'s whole
	 * messages: a piece of its own would merge with theirs.
	 */
	if (s->idx == 0 || r < 55)
		s->s_mode = WS_WHOLE;
	else
		s->s_mode = s->type == SOCK_DGRAM ? WS_MORE : WS_PARTS;
	s->s_batch = s->batch_left > 1;
	if (s->batch_left)
		s->batch_left--;
}

/* The next piece of the message being sent: retried until accepted. */
static void wsock_send(struct wsock *s)
{
	size_t left = s->s_len - s->s_off, piece = left;
	int flags = MSG_NOSIGNAL | (wrand(&s->rng, 100) < 60 ? MSG_DONTWAIT : 0);
	struct iovec iov[3];
	struct msghdr m = { .msg_iov = iov };
	ssize_t r;

	if (s->s_mode != WS_WHOLE && wrand(&s->rng, 100) < 70)
		piece = 1 + wrand(&s->rng, left);
	if (piece < left)
		flags |= s->s_mode == WS_MORE ? MSG_MORE : 0;
	else if (s->type == SOCK_SEQPACKET)
		flags |= MSG_EOR;
	if (piece == left && s->s_batch)
		flags |= MSG_BATCH;
	if (wrand(&s->rng, 2)) {
		r = send(s->fd, s->sbuf + s->s_off, piece, flags);
	} else {
		size_t a = wrand(&s->rng, piece + 1);
		size_t b = wrand(&s->rng, piece - a + 1);

		iov[0].iov_base = s->sbuf + s->s_off;
		iov[0].iov_len = a;
		iov[1].iov_base = s->sbuf + s->s_off + a;
		iov[1].iov_len = b;
		iov[2].iov_base = s->sbuf + s->s_off + a + b;
		iov[2].iov_len = piece - a - b;
		m.msg_iovlen = 3;
		r = sendmsg(s->fd, &m, flags);
	}
	if (r < 0) {
		wsock_count_err(s, errno);
		if (!wtransient(errno))
			wviolation(WV_SEND_ERR, "send on kcm socket %d.%d: %s",
				   s->mux, s->idx, strerror(errno));
		return;
	}
	if ((size_t)r != piece) {
		/* The message can no longer be told apart: give it up. */
		wviolation(WV_SHORT_SEND, "%zd of %zu bytes on kcm socket %d.%d",
			   r, piece, s->mux, s->idx);
		s->s_active = 0;
		return;
	}
	s->s_off += r;
	if (s->s_off < s->s_len)
		return;
	wid_sent(&s->tx, s->s_seq);
	s->s_active = 0;
	s->batch_open = s->s_batch;
}

static int wsock_wants_send(struct wsock *s)
{
	if (s->s_active || s->batch_open)
		return 1;
	return !__atomic_load_n(&wit_stopping, __ATOMIC_SEQ_CST) &&
	       wid_outstanding(&s->tx) < WWINDOW &&
	       s->tx.next < WSEQ_MAX - 2 * WCHUNK;
}

static void *wsock_main(void *arg)
{
	struct wsock *s = arg;

	s->ktid = gettid();
	register_tid();
	if (fs_mode == FS_TASK)
		kcm_write_file("/proc/thread-self/make-it-fail", "1");
	while (!__atomic_load_n(&wit_end, __ATOMIC_RELAXED)) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		int want = wsock_wants_send(s), i;

		if (want)
			p.events |= POLLOUT;
		if (poll(&p, 1, 20) < 0) {
			wsock_count_err(s, errno);
			continue;
		}
		for (i = 0; i < 8 && (p.revents & POLLIN || s->r_len); i++)
			if (!wsock_recv_one(s))
				break;
		/* Sometimes without POLLOUT: a blocking send then waits
		 * (SO_SNDTIMEO) and signals interrupt it.
		 */
		if (want && (p.revents & POLLOUT || wrand(&s->rng, 100) < 10)) {
			/*
			 * busy, then wit_stopping again (want is from before
			 * the poll): witness_settled() sets the one and reads
			 * the other, so either this thread sends nothing new
			 * or the drain waits for its send, a sendmmsg's too,
			 * which counts its messages only once it returns.
			 */
			__atomic_store_n(&s->busy, 1, __ATOMIC_SEQ_CST);
			if (!s->s_active && wsock_wants_send(s))
				wsock_start(s);
			if (s->s_active)
				wsock_send(s);
			__atomic_store_n(&s->busy, 0, __ATOMIC_SEQ_CST);
		}
	}
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* KCM -> peer: one message framed out of connection c's stream. */
static void wpeer_got(struct wconn *c, const unsigned char *buf, size_t n)
{
	uint32_t id, seq;
	int m, k;
	struct wid *d;
	char where[48];

	snprintf(where, sizeof(where), "peer of connection %d.%d", c->mux,
		 c->idx);
	if (kcm_msg_check(buf, n, &id, &seq)) {
		wviolation(WV_CORRUPT_TX, "%zu bytes on %s, header %02x%02x%02x%02x %02x%02x%02x%02x %02x%02x%02x%02x",
			   n, where, buf[0], buf[1], buf[2], buf[3], buf[4],
			   buf[5], buf[6], buf[7], buf[8], buf[9], buf[10],
			   buf[11]);
		return;
	}
	if (!wid_is_tx(id, &m, &k) || m != c->mux) {
		wviolation(WV_MISROUTED, "message id %#x seq %u on %s", id,
			   seq, where);
		return;
	}
	d = k < NWKCM ? &wmux[m].sock[k].tx : &wmux[m].chaos;
	wid_got(d, seq, where);
	if (d->ordered && seq < c->tx_next[k])
		wviolation(WV_ORDER, "kcm socket %d.%d: seq %u on %s after seq %u",
			   m, k, seq, where, c->tx_next[k] - 1);
	else if (seq >= c->tx_next[k])
		c->tx_next[k] = seq + 1;
}

static void wpeer_read(struct wconn *c)
{
	size_t pos = 0;
	ssize_t n = recv(c->peer, c->in + c->in_len, WRBUF - c->in_len,
			 MSG_DONTWAIT);

	if (n == 0 && !c->eof) {
		c->eof = 1;
		wviolation(WV_CONN, "connection %d.%d: the peer read EOF",
			   c->mux, c->idx);
	}
	if (n < 0 && c->tls && !wtransient(errno) && !c->rd_err) {
		c->rd_err = errno;
		wviolation(WV_CONN, "connection %d.%d (kTLS %s): peer read: %s",
			   c->mux, c->idx, c->tls->name, strerror(errno));
	}
	if (n <= 0)
		return;
	if (c->broken)
		return;
	c->in_len += n;
	while (c->in_len - pos >= 4) {
		const unsigned char *b = c->in + pos;
		size_t len = ((size_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]) + 4;

		if (len < KCM_MSG_MIN || len > WMSG_MAX) {
			wviolation(WV_CORRUPT_TX, "connection %d.%d: a frame of %zu bytes at stream offset %llu: the stream is lost",
				   c->mux, c->idx, len, c->in_base + pos);
			c->broken = 1;
			c->in_len = 0;
			return;
		}
		if (c->in_len - pos < len)
			break;
		wpeer_got(c, b, len);
		pos += len;
	}
	memmove(c->in, c->in + pos, c->in_len - pos);
	c->in_len -= pos;
	c->in_base += pos;
}

static void wpeer_write(struct wconn *c, uint64_t *rng)
{
	size_t left, piece;
	ssize_t n;
	int i;

	if (!c->out_active) {
		if (__atomic_load_n(&wit_stopping, __ATOMIC_RELAXED) ||
		    wid_outstanding(&c->rx) >= WWINDOW ||
		    c->rx.next >= WSEQ_MAX - WCHUNK)
			return;
		c->out_n = 1 + wrand(rng, WCHUNK);
		c->out_len = 0;
		for (i = 0; i < c->out_n; i++) {
			/* Linux's kcm.ko frames from the start of the skb,
			 * not of the message: with one size per connection
			 * the wrong bytes give the right length.
			 */
			size_t len = wit_plain ? 64 + 700 * (size_t)c->idx :
				     wmsg_size(rng);

			kcm_msg_build(c->out + c->out_len, len, c->rx.id,
				      c->rx.next);
			c->out_seq[i] = c->rx.next++;
			c->out_len += len;
			c->out_end[i] = c->out_len;
		}
		c->out_off = 0;
		c->out_done = 0;
		c->out_active = 1;
	}
	left = c->out_len - c->out_off;
	piece = left;
	if (!wit_plain && wrand(rng, 100) < 50)
		piece = 1 + wrand(rng, left);
	n = send(c->peer, c->out + c->out_off, piece,
		 MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0) {
		if (!wtransient(errno))
			wviolation(WV_CONN, "connection %d.%d: peer write: %s",
				   c->mux, c->idx, strerror(errno));
		return;
	}
	c->out_off += n;
	while (c->out_done < c->out_n && c->out_end[c->out_done] <= c->out_off)
		wid_sent(&c->rx, c->out_seq[c->out_done++]);
	if (c->out_off == c->out_len)
		c->out_active = 0;
}

/* The peer ends of every witness connection, and their attached ends'
 * errors: one thread that never blocks, so it never waits on itself.
 */
static void *wpeer_main(void *arg)
{
	struct pollfd p[2 * NWMUX * NWCONN];
	uint64_t rng = fuzz_seed ^ 0x5745534eull;
	int m, c, i;

	(void)arg;
	wpeer_ktid = gettid();
	register_tid();
	if (fs_mode == FS_TASK)
		kcm_write_file("/proc/thread-self/make-it-fail", "1");
	while (!__atomic_load_n(&wit_end, __ATOMIC_RELAXED)) {
		for (i = 0, m = 0; m < NWMUX; m++) {
			for (c = 0; c < NWCONN; c++, i += 2) {
				struct wconn *wc = &wmux[m].conn[c];

				p[i].fd = wc->peer;
				p[i].events = POLLIN;
				if (wc->out_active ||
				    (!__atomic_load_n(&wit_stopping, __ATOMIC_RELAXED) &&
				     wid_outstanding(&wc->rx) < WWINDOW))
					p[i].events |= POLLOUT;
				p[i + 1].fd = wc->tcp;
				p[i + 1].events = 0;
			}
		}
		if (poll(p, i, 20) < 0) {
			if (errno == EINTR)
				wpeer_eintr++;
			continue;
		}
		for (i = 0, m = 0; m < NWMUX; m++) {
			for (c = 0; c < NWCONN; c++, i += 2) {
				struct wconn *wc = &wmux[m].conn[c];

				if (p[i + 1].revents & POLLERR && !wc->err) {
					wc->err = kcm_so_error(wc->tcp);
					wviolation(WV_CONN, "connection %d.%d: the module failed it: %s (POLLERR on the attached socket)",
						   m, c, strerror(wc->err));
				}
				if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
					wpeer_read(wc);
				if (p[i].revents & POLLOUT)
					wpeer_write(wc, &rng);
			}
		}
	}
	__atomic_store_n(&wpeer_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void witness_setup(void)
{
	int m, k, c, prog = kcm_prog_len32();

	wit_plain = kcm_lane_is_linux();
	for (m = 0; m < NWMUX; m++) {
		struct wmux *x = &wmux[m];

		x->type = m == 0 ? SOCK_DGRAM : SOCK_SEQPACKET;
		for (k = 0; k < NWKCM; k++) {
			struct wsock *s = &x->sock[k];
			int one = 1;

			s->mux = m;
			s->idx = k;
			s->type = x->type;
			s->fd = wfd_high(k ? kcm_clone(x->sock[0].fd) :
					 kcm_socket(x->type));
			ASSERT_GE(s->fd, 0);
			kcm_set_rcvtimeo(s->fd, 50);
			kcm_set_sndtimeo(s->fd, 50);
			/* Our extension, where it tells something: where a
			 * message came from, checked against its id.
			 */
			if (m == 0 && !kcm_lane_is_linux())
				s->origin = !setsockopt(s->fd, SOL_KCM,
							KCM_RECV_ORIGIN, &one,
							sizeof(one));
			s->rng = fuzz_seed * 31 + 1000 + m * NWKCM + k;
			s->rbuf = kcm_xmalloc(WRBUF);
			s->sbuf = kcm_xmalloc(WCHUNK * 4096 + WMSG_MAX);
			wid_init(&s->tx, WID_TX(m, k), 1);
		}
		wid_init(&x->chaos, WID_TX(m, NWKCM), 0);
		for (c = 0; c < NWCONN; c++) {
			struct wconn *wc = &x->conn[c];
			socklen_t len = sizeof(wc->cookie);
			int a, b;

			wc->mux = m;
			wc->idx = c;
			kcm_tcp_pair(AF_INET, &a, &b);
			if (c == NWCONN - 1 && fs_mode == FS_OFF) {
				wc->tls = m ? &tls13_gcm : &tls12_gcm;
				ktls_key(a, TLS_TX, wc->tls, 2 * m + 1);
				ktls_key(b, TLS_RX, wc->tls, 2 * m + 1);
				wc->tls_rx = !kcm_lane_is_linux();
				if (wc->tls_rx) {
					ktls_key(b, TLS_TX, wc->tls, 2 * m + 2);
					ktls_key(a, TLS_RX, wc->tls, 2 * m + 2);
				}
			}
			ASSERT_OK(kcm_attach(x->sock[0].fd, a, prog));
			wc->tcp = wfd_high(a);
			wc->peer = wfd_high(b);
			kcm_set_nonblock(wc->peer, 1);
			getsockopt(wc->tcp, SOL_SOCKET, SO_COOKIE, &wc->cookie,
				   &len);
			wid_init(&wc->rx, WID_RX(m, c), 1);
			wc->out = kcm_xmalloc(WCHUNK * WMSG_MAX);
			wc->in = kcm_xmalloc(WRBUF);
		}
	}
	close(prog);
}

static void witness_start(void)
{
	int m, k;

	for (m = 0; m < NWMUX; m++)
		for (k = 0; k < NWKCM; k++)
			ASSERT_EQ(pthread_create(&wmux[m].sock[k].tid, NULL,
						 wsock_main, &wmux[m].sock[k]), 0);
	ASSERT_EQ(pthread_create(&wpeer_tid, NULL, wpeer_main, NULL), 0);
}

/* All sends finished and every message accepted arrived. */
static int witness_settled(void)
{
	int m, k, c;

	for (m = 0; m < NWMUX; m++) {
		if (wid_outstanding(&wmux[m].chaos))
			return 0;
		for (k = 0; k < NWKCM; k++) {
			struct wsock *s = &wmux[m].sock[k];

			if (__atomic_load_n(&s->busy, __ATOMIC_SEQ_CST) ||
			    s->s_active || s->batch_open ||
			    wid_outstanding(&s->tx))
				return 0;
		}
		for (c = 0; c < NWCONN; c++)
			if (wmux[m].conn[c].out_active ||
			    wid_outstanding(&wmux[m].conn[c].rx))
				return 0;
	}
	return 1;
}

struct wtotal {
	unsigned long sent, got, lost, dup, phantom;
};

/* Compares the bitmaps of d; the first few missing ones are named. */
static void wid_tally(struct wid *d, struct wtotal *t)
{
	uint32_t seq;

	for (seq = 0; seq < d->next && seq < WSEQ_MAX; seq++) {
		int s = bit_test(d->sent, seq) != 0, g = bit_test(d->got, seq) != 0;

		if (s && !g && t->lost++ < 5)
			kcm_diag("witness: lost: id %#x seq %u (%lu of its %lu sent arrived; seed %llu)",
				 d->id, seq, d->ngot, d->nsent, fuzz_seed);
		if (!s && g && t->phantom++ < 5)
			kcm_diag("witness: id %#x seq %u arrived, but its send had failed (seed %llu)",
				 d->id, seq, fuzz_seed);
	}
	t->sent += d->nsent;
	t->got += d->ngot;
	t->dup += d->ndup;
}

/* Prints the counts; returns the number of violations. */
static unsigned long witness_report(void)
{
	struct wtotal rx = { 0 }, tx = { 0 };
	unsigned long bad, eintr = wpeer_eintr, eagain = 0, nomem = 0;
	int m, k, c, i;

	for (m = 0; m < NWMUX; m++) {
		for (c = 0; c < NWCONN; c++)
			wid_tally(&wmux[m].conn[c].rx, &rx);
		for (k = 0; k < NWKCM; k++) {
			wid_tally(&wmux[m].sock[k].tx, &tx);
			eintr += wmux[m].sock[k].eintr;
			eagain += wmux[m].sock[k].eagain;
			nomem += wmux[m].sock[k].nomem;
		}
		wid_tally(&wmux[m].chaos, &tx);
	}
	kcm_diag("witness peer->kcm: %lu sent, %lu received, %lu lost, %lu duplicated, %lu corrupted, %lu arrived unsent",
		 rx.sent, rx.got, rx.lost, rx.dup, wv[WV_CORRUPT_RX], rx.phantom);
	kcm_diag("witness kcm->peer: %lu sent, %lu received, %lu lost, %lu duplicated, %lu corrupted, %lu arrived unsent",
		 tx.sent, tx.got, tx.lost, tx.dup, wv[WV_CORRUPT_TX], tx.phantom);
	for (m = 0; m < NWMUX; m++)
		for (c = 0; c < NWCONN; c++)
			if (wmux[m].conn[c].tls)
				kcm_diag("witness connection %d.%d: kTLS %s, %s",
					 m, c, wmux[m].conn[c].tls->name,
					 wmux[m].conn[c].tls_rx ? "both ways" :
					 "KCM -> peer (the peer writes in the clear)");
	kcm_diag("witness: %lu reordered on the second mux (allowed: clones closed), %lu EINTR %lu EAGAIN %lu ENOMEM/ENOBUFS on the witness threads, %lu signals caught, %s traffic",
		 reorder_loose, eintr, eagain, nomem, signals_caught,
		 wit_plain ? "plain (one size per connection, whole writes)" :
		 "mixed");
	bad = rx.lost + rx.dup + rx.phantom + tx.lost + tx.dup + tx.phantom;
	for (i = 0; i < NWV; i++) {
		if (wv[i])
			kcm_diag("witness: %lu %s", wv[i], wv_name[i]);
		bad += wv[i];
	}
	if (!rx.sent || !tx.sent) {
		kcm_diag("witness: no traffic in one direction");
		bad++;
	}
	if (bad)
		kcm_dump_proc("witness data check failed");
	return bad;
}

static void witness_close(void)
{
	int m, k, c;

	for (m = 0; m < NWMUX; m++) {
		for (k = 0; k < NWKCM; k++) {
			close(wmux[m].sock[k].fd);
			free(wmux[m].sock[k].rbuf);
			free(wmux[m].sock[k].sbuf);
		}
		for (c = 0; c < NWCONN; c++) {
			close(wmux[m].conn[c].tcp);
			close(wmux[m].conn[c].peer);
			free(wmux[m].conn[c].out);
			free(wmux[m].conn[c].in);
		}
	}
}

/* ---- chaos operations on the witnesses, and the new ones ---------------------- */

/*
 * A clone of the second witness mux, made, peeked at and closed by a child
 * that shares our memory but has a copy of our descriptor table: in ours,
 * its number could be one a chaos thread still holds from a closed socket,
 * and a receive through that stale number would take a witness message.
 * The messages steered to the clone go to the other sockets when it closes.
 */
struct wclone_arg {
	struct worker *w;
	int peek, sleep_ms, flags;
	size_t cap;
};

static int wclone_child(void *arg)
{
	struct wclone_arg *a = arg;
	int fd = kcm_clone(wmux[1].sock[0].fd);

	if (fd < 0)
		_exit(1);
	set_timeouts(fd, 1 + a->sleep_ms);
	if (a->peek)
		recv(fd, a->w->buf, a->cap, MSG_PEEK | a->flags);
	if (a->sleep_ms)
		kcm_msleep(a->sleep_ms);
	close(fd);
	_exit(0);
}

static long witness_clone(struct worker *w)
{
	struct wclone_arg a = {
		.w = w, .peek = chance(w, 50), .cap = recv_cap(w),
		.flags = chance(w, 50) ? MSG_DONTWAIT : 0,
		.sleep_ms = chance(w, 30) ? (int)rnd(w, 20) : 0,
	};
	int status = 0;
	pid_t pid;

	if (!w->stack)
		w->stack = malloc(WCLONE_STACK);
	if (!w->stack)
		return -1;
	/* CLONE_VFORK: we go on once the child has exited. */
	pid = clone(wclone_child, w->stack + WCLONE_STACK,
		    CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
	if (pid < 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -1;
}

/* Harmless to the witnesses' data; see the witness comment above. */
static void op_witness(struct worker *w)
{
	struct wmux *x = &wmux[rnd(w, NWMUX)];
	struct wsock *s = &x->sock[rnd(w, NWKCM)];
	struct wconn *c = &x->conn[rnd(w, NWCONN)];
	struct pollfd p[3];
	long r = -1;
	int v = 0;

	switch (rnd(w, 6)) {
	case 0:			/* look without taking */
		r = recv(s->fd, w->buf, recv_cap(w), MSG_PEEK | MSG_DONTWAIT |
			 (chance(w, 20) ? MSG_TRUNC : 0));
		break;
	case 1:
		p[0].fd = s->fd;
		p[1].fd = c->tcp;
		p[2].fd = c->peer;
		p[0].events = p[1].events = p[2].events = POLLIN | POLLOUT | POLLRDHUP;
		r = poll(p, 3, rnd(w, 5));
		break;
	case 2:
		switch (rnd(w, 4)) {
		case 0:
			r = ioctl(s->fd, chance(w, 50) ? FIONREAD : SIOCOUTQ, &v);
			break;
		case 1:
			r = ioctl(c->tcp, chance(w, 50) ? FIONREAD : SIOCOUTQ, &v);
			break;
		default: {
			struct tcp_info ti;
			socklen_t len = sizeof(ti);

			r = chance(w, 50) ?
			    getsockopt(c->tcp, IPPROTO_TCP, TCP_INFO, &ti, &len) :
			    getsockopt(s->fd, SOL_KCM, KCM_RECV_DISABLE, &ti, &len);
			break;
		}
		}
		break;
	case 3:			/* a clone of the second mux comes and goes */
		r = witness_clone(w);
		break;
	default: {		/* a whole message on a mux's first socket */
		struct wid *d = &x->chaos;
		size_t len = KCM_MSG_MIN + rnd(w, 4096);
		uint32_t seq = __atomic_fetch_add(&d->next, 1, __ATOMIC_RELAXED);
		int flags = MSG_NOSIGNAL | (x->type == SOCK_SEQPACKET ? MSG_EOR : 0) |
			    (chance(w, 70) ? MSG_DONTWAIT : 0);
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(uint64_t))];
		} ctl;
		struct iovec iov = { .iov_base = w->buf, .iov_len = len };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

		if (seq >= WSEQ_MAX)
			break;
		kcm_msg_build(w->buf, len, d->id, seq);
		/* Our extension: on a chosen witness connection. */
		if (!kcm_lane_is_linux() && chance(w, 30)) {
			memset(&ctl, 0, sizeof(ctl));
			ctl.h.cmsg_level = SOL_KCM;
			ctl.h.cmsg_type = KCM_ORIGIN;
			ctl.h.cmsg_len = CMSG_LEN(sizeof(uint64_t));
			memcpy(CMSG_DATA(&ctl.h), &c->cookie, sizeof(uint64_t));
			m.msg_control = &ctl;
			m.msg_controllen = sizeof(ctl);
		}
		r = sendmsg(x->sock[0].fd, &m, flags);
		if (r == (long)len)
			wid_sent(d, seq);
		else if (r >= 0)
			wviolation(WV_SHORT_SEND, "%ld of %zu bytes on kcm socket %d.0",
				   r, len, (int)(x - wmux));
		break;
	}
	}
	count(OP_WITNESS, r);
}

/* A SOCK_DGRAM message in MSG_MORE pieces (on SOCK_SEQPACKET it is just a
 * flag); sometimes it never ends, and the socket keeps the partial message
 * until it is closed.
 */
static void op_msg_more(struct worker *w)
{
	int fd = bounded_dup(any_kcm(w), SO_SNDTIMEO);
	size_t len = make_msg(w, BUF_SIZE), off = 0;
	int pieces = 1 + rnd(w, 6), i, end = chance(w, 85);
	long r = 0;

	for (i = 0; i < pieces && off < len && r >= 0; i++) {
		size_t piece = i == pieces - 1 ? len - off : rnd(w, len - off + 1);
		int f = MSG_NOSIGNAL |
			(chance(w, 70) || fuzz_dontwait ? MSG_DONTWAIT : 0);

		if (i < pieces - 1 || !end)
			f |= MSG_MORE;
		if (chance(w, 10))
			f |= MSG_BATCH;
		r = send(fd, w->buf + off, piece, f);
		if (r > 0)
			off += r;
	}
	count(OP_MSG_MORE, r);
	close_dup(fd);
}

/* epoll: a per-thread instance that keeps its registrations from call to
 * call, so that sockets are closed, reset and unattached while an epoll
 * watches them, and is itself closed now and then with sockets in it.
 */
static void op_epoll(struct worker *w)
{
	static const int ctls[] = { EPOLL_CTL_ADD, EPOLL_CTL_ADD, EPOLL_CTL_MOD,
				    EPOLL_CTL_DEL };
	struct epoll_event ev[8];
	int n, i, fd;

	if (w->epfd < 0 || chance(w, 5)) {
		if (w->epfd >= 0)
			close(w->epfd);
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (w->epfd < 0) {
			count(OP_EPOLL, -1);
			return;
		}
	}
	for (i = rnd(w, 3); i >= 0; i--) {
		struct epoll_event e = { 0 };
		int witness = chance(w, 20);

		if (witness) {
			struct wmux *x = &wmux[rnd(w, NWMUX)];

			fd = chance(w, 60) ? x->sock[rnd(w, NWKCM)].fd :
			     chance(w, 50) ? x->conn[rnd(w, NWCONN)].tcp :
			     x->conn[rnd(w, NWCONN)].peer;
		} else {
			fd = chance(w, 60) ? any_kcm(w) : any_tcp(w);
		}
		e.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
		if (chance(w, 30))
			e.events |= EPOLLET;
		if (chance(w, 10))
			e.events |= EPOLLONESHOT;
		else if (chance(w, 10))
			e.events |= EPOLLEXCLUSIVE;	/* ADD only */
		/* A witness is only watched: the number tells them apart. */
		e.data.u64 = (uint64_t)(uint32_t)fd | (uint64_t)witness << 32;
		epoll_ctl(w->epfd, ctls[rnd(w, 4)], fd, &e);
	}
	n = epoll_wait(w->epfd, ev, 8, rnd(w, 5));
	count(OP_EPOLL, n);
	for (i = 0; i < n; i++) {
		fd = (int)(uint32_t)ev[i].data.u64;
		if (!(ev[i].data.u64 >> 32) && ev[i].events & EPOLLIN &&
		    chance(w, 50))
			recv(fd, w->buf, recv_cap(w), MSG_DONTWAIT);
	}
}

static void (*const op_fn[NOPS])(struct worker *) = {
	[OP_MUX] = op_mux, [OP_CLONE] = op_clone, [OP_PAIR] = op_pair,
	[OP_PROG] = op_prog, [OP_ATTACH] = op_attach,
	[OP_ATTACH_BAD] = op_attach_bad, [OP_UNATTACH] = op_unattach,
	[OP_SEND] = op_send, [OP_SENDMMSG] = op_sendmmsg,
	[OP_SEQPART] = op_seqpart, [OP_SENDFILE] = op_sendfile,
	[OP_RECV] = op_recv, [OP_RECVMMSG] = op_recvmmsg,
	[OP_RECV_WAIT] = op_recv_wait, [OP_SPLICE] = op_splice,
	[OP_TCP_WRITE] = op_tcp_write, [OP_TCP_READ] = op_tcp_read,
	[OP_RECV_DISABLE] = op_recv_disable, [OP_POLL] = op_poll,
	[OP_SOCKOPT] = op_sockopt, [OP_SHUTDOWN] = op_shutdown,
	[OP_CLOSE] = op_close, [OP_RESET] = op_reset, [OP_PROC] = op_proc,
	[OP_IOCTL] = op_ioctl, [OP_SCM] = op_scm, [OP_NETNS] = op_netns,
	[OP_MSG_MORE] = op_msg_more, [OP_EPOLL] = op_epoll,
	[OP_SIGNAL] = op_signal, [OP_WITNESS] = op_witness,
	[OP_KTLS] = op_ktls, [OP_KTLS_UNATTACH] = op_ktls_unattach,
};

/*
 * Linux's kcm.ko soft-locks a CPU on 6.12 when an attached socket is keyed
 * with kTLS to receive and records arrive together: its stream parser
 * reads through kTLS's read_sock, whose wait for a record calls the
 * data-ready callback, the parser's, again (a soft lockup in
 * tls_rx_reader_acquire(), CI of 2026-12-07; reproduced by kcm_ktls's
 * tls_rx_after_attach_many_records).  On its lane the chaos operations key
 * no socket and make no kTLS pair; the witnesses' kTLS is send-only there
 * (witness_setup()).
 */
static int op_weight(int i)
{
	if (kcm_lane_is_linux() && (i == OP_KTLS || i == OP_KTLS_UNATTACH))
		return 0;
	return ops[i].weight;
}

static enum op pick_op(struct worker *w)
{
	int i, r = 0;

	for (i = 0; i < NOPS; i++)
		r += op_weight(i);
	r = rnd(w, r);
	for (i = 0; i < NOPS; i++) {
		r -= op_weight(i);
		if (r < 0)
			return (enum op)i;
	}
	return OP_POLL;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int sv[2];

	w->ktid = gettid();
	register_tid();

	w->netns_ms = kcm_now_ms();
	w->listener = loopback_listener();
	w->udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	w->unconn = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	w->unix_fd = -1;
	if (!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		w->unix_fd = sv[0];
		close(sv[1]);
	}
	if (pipe2(sv, O_NONBLOCK | O_CLOEXEC)) {
		sv[0] = -1;
		sv[1] = -1;
	}
	w->pipe_rd = sv[0];
	w->pipe_wr = sv[1];
	w->memfd = memfd_create("kcm_fuzz", MFD_CLOEXEC);
	if (w->memfd >= 0) {
		kcm_msg_build(w->buf, 65536, (uint32_t)w->id, 0);
		if (write(w->memfd, w->buf, 65536) < 0)
			kcm_diag("thread %d: memfd write: %s", w->id, strerror(errno));
	}

	/* From here on this thread's allocations may fail (task mode). */
	if (fs_mode == FS_TASK &&
	    kcm_write_file("/proc/thread-self/make-it-fail", "1"))
		kcm_diag("thread %d: make-it-fail: %s", w->id, strerror(errno));

	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		enum op op = pick_op(w);

		__atomic_store_n(&w->cur_op, op, __ATOMIC_RELAXED);
		op_fn[op](w);
	}
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

#define STUCK_MS 30000

/* The socket a stuck call waits on (the first argument of the socket calls
 * in /proc/.../syscall): a timeout of 0 is forever, and then the fuzzer,
 * not the kernel, is to blame.
 */
static void report_stuck_fd(const char *syscall)
{
	struct timeval rcv = { 0 }, snd = { 0 };
	socklen_t len = sizeof(rcv);
	unsigned long nr, fd;
	int dom = -1, type = -1;

	if (sscanf(syscall, "%lu %lx", &nr, &fd) != 2 || fd > 1 << 20)
		return;
	getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, &len);
	len = sizeof(snd);
	getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, &len);
	len = sizeof(dom);
	getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len);
	len = sizeof(type);
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
	kcm_diag("  fd %lu: domain %d type %d, SO_RCVTIMEO %ld ms, SO_SNDTIMEO %ld ms, flags %#x",
		 fd, dom, type, rcv.tv_sec * 1000 + rcv.tv_usec / 1000,
		 snd.tv_sec * 1000 + snd.tv_usec / 1000, fcntl(fd, F_GETFL));
}

/* Where a stuck thread is: its operation, its system call and arguments
 * (/proc/.../syscall: number, then arguments in hex), and its kernel stack.
 */
static void report_stuck_tid(pid_t tid)
{
	static const char *const files[] = { "syscall", "wchan", "stack" };
	char path[96], *text;
	size_t j;

	for (j = 0; j < sizeof(files) / sizeof(files[0]); j++) {
		snprintf(path, sizeof(path), "/proc/self/task/%d/%s", (int)tid,
			 files[j]);
		text = kcm_read_file(path);
		kcm_diag("  %s: %s", files[j], text ? text : "(unreadable)");
		if (text && j == 0)
			report_stuck_fd(text);
		free(text);
	}
}

static void report_stuck(struct worker *w)
{
	kcm_diag("thread %d (tid %d) stuck in operation %s", w->id, (int)w->ktid,
		 ops[__atomic_load_n(&w->cur_op, __ATOMIC_RELAXED)].name);
	report_stuck_tid(w->ktid);
}

/*
 * The end of the witnesses: once the chaos is over, they send nothing new
 * but finish the messages they began, and keep reading until every message
 * accepted has arrived or WDRAIN_MS have passed; then their threads
 * return (every call of theirs is bounded by 50 ms).
 */
static void witness_stop(long long end)
{
	long long t0 = kcm_now_ms();
	int m, k, busy;

	while (!witness_settled() && kcm_now_ms() - end < WDRAIN_MS)
		kcm_msleep(20);
	kcm_diag("witness: drained in %lld ms%s", kcm_now_ms() - t0,
		 witness_settled() ? "" : " (gave up: not settled)");
	__atomic_store_n(&wit_end, 1, __ATOMIC_RELAXED);
	t0 = kcm_now_ms();
	do {
		busy = !__atomic_load_n(&wpeer_done, __ATOMIC_ACQUIRE);
		for (m = 0; m < NWMUX; m++)
			for (k = 0; k < NWKCM; k++)
				busy += !__atomic_load_n(&wmux[m].sock[k].done,
							 __ATOMIC_ACQUIRE);
		if (busy && kcm_now_ms() - t0 > 10000) {
			for (m = 0; m < NWMUX; m++)
				for (k = 0; k < NWKCM; k++)
					if (!wmux[m].sock[k].done) {
						kcm_diag("witness thread %d.%d stuck",
							 m, k);
						report_stuck_tid(wmux[m].sock[k].ktid);
					}
			if (!wpeer_done) {
				kcm_diag("witness peer thread stuck");
				report_stuck_tid(wpeer_ktid);
			}
			KCM_FAIL("%d witness thread(s) still in a system call 10 s after the drain",
				 busy);
		}
		kcm_msleep(20);
	} while (busy);
	for (m = 0; m < NWMUX; m++)
		for (k = 0; k < NWKCM; k++)
			pthread_join(wmux[m].sock[k].tid, NULL);
	pthread_join(wpeer_tid, NULL);
}

/* After the storm: a new multiplexor must still carry a message. */
static int sanity_check(void)
{
	unsigned char out[256], in[512];
	int kfd, a, b, prog, ok = 0;
	ssize_t n;

	kcm_tcp_pair(AF_INET, &a, &b);
	kfd = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	if (kcm_attach(kfd, a, prog)) {
		kcm_diag("sanity: attach: %s", strerror(errno));
		return -1;
	}
	kcm_msg_build(out, sizeof(out), 7, 7);
	kcm_write_all(b, out, sizeof(out));
	n = kcm_recv_timeout(kfd, in, sizeof(in), 0, 10000);
	if (n == (ssize_t)sizeof(out) && !memcmp(in, out, sizeof(out)))
		ok = 1;
	else
		kcm_diag("sanity: recv returned %zd (%s)", n,
			 n < 0 ? strerror(errno) : "wrong message");
	close(kfd);
	close(a);
	close(b);
	close(prog);
	return ok ? 0 : -1;
}

/*
 * What Linux's kcm.ko did with the witnesses (plain traffic, see
 * witness_setup()), in about half of the 60 s runs: a message sent on a
 * witness KCM socket was cut short in its TCP stream, the next one written
 * right after it, so the peer lost the stream (6.12 seed 1796607383073190,
 * 30 s); on 6.1 (seed 1796608127028580) it also failed a healthy witness
 * connection with EPIPE and lost the messages behind it.
 */
KCM_TEST(fuzz, KCM_TIMEOUT(FUZZ_DEFAULT_SECONDS + 120),
	 KCM_LINUX_RACE("witness data: a sent message cut short in its TCP stream; a healthy connection failed with EPIPE"))
{
	struct worker w[FUZZ_MAX_THREADS];
	const char *t = getenv("KCM_FUZZ_THREADS");
	int nthreads = t && atoi(t) > 0 ? atoi(t) : FUZZ_DEFAULT_THREADS;
	struct sigaction sa = { .sa_handler = on_sigusr1 };
	long long start, end;
	unsigned long wbad;
	long injected = 0;
	char fs_env[80];
	int i;

	if (!fuzz_seconds)
		kcm_skip("KCM_FUZZ_SECONDS=0");
	if (nthreads > FUZZ_MAX_THREADS)
		nthreads = FUZZ_MAX_THREADS;
	snprintf(fs_env, sizeof(fs_env), "KCM_FUZZ_FAILSLAB=%s KCM_FUZZ_FAILSLAB_PERCENT=%d ",
		 fs_mode_name[fs_mode], fs_percent);
	kcm_diag("seed %llu, %d s, %d threads%s%s (replay: %s%skcm_fuzz %llu %d)",
		 fuzz_seed, fuzz_seconds, nthreads,
		 fuzz_dontwait ? ", sends never block" : "",
		 fs_mode != FS_OFF ? ", allocations fail" : "",
		 fuzz_dontwait ? "KCM_FUZZ_DONTWAIT=1 " : "",
		 fs_mode != FS_OFF ? fs_env : "", fuzz_seed, fuzz_seconds);

	for (i = 0; i < NKCM; i++)
		kcm_slot[i] = -1;
	for (i = 0; i < NTCP; i++)
		tcp_slot[i] = -1;
	for (i = 0; i < NPROG; i++)
		prog_slot[i] = -1;

	/* No SA_RESTART: a signal ends a blocked call with EINTR. */
	sigemptyset(&sa.sa_mask);
	ASSERT_OK(sigaction(SIGUSR1, &sa, NULL));
	witness_setup();

	memset(w, 0, sizeof(w));
	for (i = 0; i < nthreads; i++) {
		w[i].id = i;
		w[i].epfd = -1;
		/* splitmix64 of the seed: distinct, never-zero thread streams */
		w[i].rng = fuzz_seed + 0x9e3779b97f4a7c15ull * (i + 1);
		w[i].rng = (w[i].rng ^ (w[i].rng >> 30)) * 0xbf58476d1ce4e5b9ull;
		w[i].rng = (w[i].rng ^ (w[i].rng >> 27)) * 0x94d049bb133111ebull;
		w[i].rng ^= w[i].rng >> 31;
		if (!w[i].rng)
			w[i].rng = 1;
		w[i].buf = malloc(BUF_SIZE);
		ASSERT_TRUE(w[i].buf);
	}
	if (fs_mode != FS_OFF)
		failslab_start();
	witness_start();
	for (i = 0; i < nthreads; i++)
		ASSERT_EQ(pthread_create(&w[i].tid, NULL, worker_main, &w[i]), 0);

	start = kcm_now_ms();
	end = start + fuzz_seconds * 1000LL;
	while (kcm_now_ms() < end)
		kcm_msleep(100);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&wit_stopping, 1, __ATOMIC_SEQ_CST);
	/* The drain runs without injected failures: a message accepted
	 * while allocations failed must arrive all the same.
	 */
	if (fs_mode != FS_OFF)
		injected = failslab_stop();
	/* Every call is non-blocking or has a timeout of at most 200 ms, so
	 * a thread that has not returned after STUCK_MS is stuck in the
	 * kernel: say where, and fail.
	 */
	for (;;) {
		int busy = 0;

		for (i = 0; i < nthreads; i++)
			busy += !__atomic_load_n(&w[i].done, __ATOMIC_ACQUIRE);
		if (!busy)
			break;
		if (kcm_now_ms() - end > STUCK_MS) {
			for (i = 0; i < nthreads; i++)
				if (!__atomic_load_n(&w[i].done, __ATOMIC_ACQUIRE))
					report_stuck(&w[i]);
			KCM_FAIL("%d thread(s) still in a system call %d s after the end",
				 busy, STUCK_MS / 1000);
		}
		kcm_msleep(100);
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(w[i].tid, NULL);
	kcm_diag("ran %lld ms", kcm_now_ms() - start);
	witness_stop(end);

	for (i = 0; i < NOPS; i++)
		kcm_diag("%-16s %8lu calls %8lu errors %8lu ENOMEM/ENOBUFS %6lu EINTR",
			 ops[i].name, op_calls[i], op_fails[i], op_nomem[i],
			 op_eintr[i]);
	/* Every request of op_attach_bad() has a defect that no race and no
	 * failed allocation can repair (a number that is not a KCM socket, a
	 * socket that is no established TCP socket, a program of the wrong
	 * type): none may succeed.
	 */
	EXPECT_EQ(op_fails[OP_ATTACH_BAD], op_calls[OP_ATTACH_BAD]);
	kcm_diag("blocking calls that found their socket with no timeout (set to 200 ms): %lu KCM, %lu other",
		 unbounded_kcm, unbounded_other);
	wbad = witness_report();
	if (fs_mode != FS_OFF) {
		unsigned long calls = 0, nomem = 0;

		for (i = 0; i < NOPS; i++) {
			calls += op_calls[i];
			nomem += op_nomem[i];
		}
		kcm_diag("failslab: %ld allocation failures injected (%s mode, %d%%); %lu of %lu calls returned ENOMEM/ENOBUFS",
			 injected, fs_mode_name[fs_mode], fs_percent, nomem,
			 calls);
		/* None at all: the filter matched nothing, the run proved
		 * nothing about the failure paths.
		 */
		EXPECT_GT(injected, 0);
	}

	for (i = 0; i < NKCM; i++)
		slot_put(kcm_slot, i, -1);
	for (i = 0; i < NTCP; i++)
		slot_put(tcp_slot, i, -1);
	for (i = 0; i < NPROG; i++)
		slot_put(prog_slot, i, -1);
	for (i = 0; i < nthreads; i++) {
		int fds[] = { w[i].listener, w[i].udp, w[i].unix_fd, w[i].unconn,
			      w[i].pipe_rd, w[i].pipe_wr, w[i].memfd, w[i].epfd };
		size_t j;

		for (j = 0; j < sizeof(fds) / sizeof(fds[0]); j++)
			if (fds[j] > 2)
				close(fds[j]);
		free(w[i].buf);
		free(w[i].stack);
	}

	witness_close();

	if (sanity_check())
		KCM_FAIL("a new multiplexor no longer works after the fuzz run");
	if (wbad)
		KCM_FAIL("witness data check: %lu violation(s) (seed %llu; replay: see the first line)",
			 wbad, fuzz_seed);
}

/*
 * kcm_fuzz SEED SECONDS: the runner in kcm_test.c takes command-line
 * arguments as names of cases to run.  glibc hands argc/argv to
 * constructors, so the numbers are read here and replaced by "fuzz", the
 * only case, which the runner then selects.
 */
__attribute__((constructor)) static void fuzz_args(int argc, char **argv)
{
	static char fuzz_name[] = "fuzz";
	const char *s = getenv("KCM_FUZZ_SEED");
	const char *d = getenv("KCM_FUZZ_SECONDS");
	const char *nw = getenv("KCM_FUZZ_DONTWAIT");
	const char *fs;
	char *end;
	int i, pos = 0;

	if (s && *s) {
		fuzz_seed = strtoull(s, NULL, 0);
		fuzz_seed_given = 1;
	}
	fuzz_dontwait = nw && *nw && strcmp(nw, "0");
	fs = getenv("KCM_FUZZ_FAILSLAB");
	if (fs && !strcmp(fs, "task"))
		fs_mode = FS_TASK;
	else if (fs && !strcmp(fs, "module"))
		fs_mode = FS_MODULE;
	else if (fs && *fs && strcmp(fs, "off") && strcmp(fs, "0"))
		fprintf(stderr, "kcm_fuzz: KCM_FUZZ_FAILSLAB=%s: want task, module or off\n",
			fs);
	fs = getenv("KCM_FUZZ_FAILSLAB_PERCENT");
	if (fs && atoi(fs) > 0 && atoi(fs) <= 100)
		fs_percent = atoi(fs);
	fs = getenv("KCM_FUZZ_FAILSLAB_STACKS");
	fs_stacks = fs && *fs && strcmp(fs, "0");
	if (d && *d)
		fuzz_seconds = atoi(d) > 0 ? atoi(d) : 0;	/* 0: skip */
	for (i = 1; argv && i < argc; i++) {
		unsigned long long v = strtoull(argv[i], &end, 0);

		if (!*argv[i] || *end)
			continue;	/* a case name */
		if (pos == 0) {
			fuzz_seed = v;
			fuzz_seed_given = 1;
		} else if (pos == 1 && v > 0) {
			fuzz_seconds = (int)v;
		}
		pos++;
		argv[i] = fuzz_name;
	}
	if (!fuzz_seed_given) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		fuzz_seed = (unsigned long long)ts.tv_sec * 1000003ull ^
			    (unsigned long long)ts.tv_nsec ^ (unsigned long long)getpid();
	}
	/* Time to wind down and run the sanity check on a slow VM. */
	kcm_case_fuzz.timeout = fuzz_seconds + 120;
}
