/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small test framework for the AF_KCM selftests.
 *
 * A test binary is a list of cases declared with KCM_TEST().  main() (in
 * kcm_test.c) runs every case in its own forked child, in its own process
 * group, under a timeout, and prints the outcome as TAP version 13 on
 * stdout.  A case that crashes, hangs or fails only fails itself.
 *
 * Environment:
 *   KCM_LANE=ours|linux   which implementation is loaded (default: ours)
 *   KCM_RUN_ALL=1         run KCM_LINUX_CRASH cases on lane linux too
 *   KCM_ONLY=a,b,c        run only the named cases (others are skipped)
 *   KCM_VERBOSE=1         print extra "# " lines from KCM_LOG()
 * Command-line arguments, if any, work like KCM_ONLY.
 */
#ifndef KCM_TEST_H
#define KCM_TEST_H

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <linux/kcm.h>

#ifndef AF_KCM
#define AF_KCM 41
#endif
#ifndef PF_KCM
#define PF_KCM AF_KCM
#endif
#ifndef SOL_KCM
#define SOL_KCM 281
#endif
/* Older libc headers lack these. */
#ifndef MSG_BATCH
#define MSG_BATCH 0x40000
#endif
#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

/* ---- case registration ------------------------------------------------ */

struct kcm_case {
	const char *name;
	void (*fn)(void);
	int ext;		/* uses an extension: skipped on lane linux */
	const char *linux_bug;	/* documented Linux bug: must fail on lane linux */
	const char *linux_crash; /* ... and it takes Linux's kernel down */
	int linux_race;		/* ... that shows only now and then */
	int timeout;		/* seconds; 0 means the default (30) */
};

void kcm_register(struct kcm_case *c);

/*
 * KCM_TEST(name [, option ...]) { body }
 * Options: KCM_EXT, KCM_LINUX_BUG("why"), KCM_LINUX_CRASH("why"),
 * KCM_LINUX_RACE("why"), KCM_TIMEOUT(seconds).
 *
 * On lane linux a KCM_LINUX_BUG case runs and must fail: it is reported as
 * an expected failure ("not ok ... # TODO linux bug: why"); if it passes,
 * the mark or the test is wrong, and that is a failure.  A KCM_LINUX_CRASH
 * case (a Linux bug that panics or wedges the kernel, which would end the
 * VM and every case after it) is not run there: a skip that says why.  A
 * KCM_LINUX_RACE case is a Linux bug that shows only now and then however
 * the case provokes it: an expected failure when it shows, a skip that
 * says it did not when the case passes.
 * On lane ours every case must pass: a skip is a failure there.
 */
#define KCM_TEST(cname, ...)						\
	static void kcm_body_##cname(void);				\
	static struct kcm_case kcm_case_##cname = {			\
		.name = #cname, .fn = kcm_body_##cname, __VA_ARGS__	\
	};								\
	__attribute__((constructor)) static void kcm_reg_##cname(void)	\
	{								\
		kcm_register(&kcm_case_##cname);			\
	}								\
	static void kcm_body_##cname(void)

#define KCM_EXT			.ext = 1
#define KCM_LINUX_BUG(why)	.linux_bug = (why)
#define KCM_LINUX_CRASH(why)	.linux_bug = (why), .linux_crash = (why)
#define KCM_LINUX_RACE(why)	.linux_bug = (why), .linux_race = 1
#define KCM_TIMEOUT(s)		.timeout = (s)

/* ---- outcome ---------------------------------------------------------- */

extern int kcm_case_failed;	/* set by EXPECT_* failures */

__attribute__((noreturn)) void kcm_fail_now(void);
__attribute__((noreturn, format(printf, 1, 2))) void kcm_skip(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void kcm_diag(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void kcm_log(const char *fmt, ...);
const char *kcm_errname(int e);

/* Which implementation is under test. */
int kcm_lane_is_linux(void);

#define KCM_LOG(...) kcm_log(__VA_ARGS__)

/*
 * Report helpers used by the macros.  @what is the stringified expression.
 */
void kcm_report_cmp(const char *file, int line, const char *what,
		    const char *op, long long exp, long long got, int err);
void kcm_report_errno(const char *file, int line, const char *what,
		      int exp_errno, long long got, int err);
void kcm_report_ok(const char *file, int line, const char *what,
		   long long got, int err);
void kcm_report_str(const char *file, int line, const char *what,
		    const char *exp, const char *got);
void kcm_report_mem(const char *file, int line, const char *what,
		    const void *exp, const void *got, size_t n);

/* On failure: ASSERT_* ends the case, EXPECT_* marks it failed and goes on. */
#define KCM__ON_FAIL_ASSERT kcm_fail_now()
#define KCM__ON_FAIL_EXPECT (kcm_case_failed = 1)

#define KCM__CMP(fatal, a, op, b) do {					\
	long long kcm__b = (long long)(b);				\
	long long kcm__a = (long long)(a);				\
	int kcm__e = errno;						\
	if (!(kcm__a op kcm__b)) {					\
		kcm_report_cmp(__FILE__, __LINE__, #a " " #op " " #b,	\
			       #op, kcm__b, kcm__a, kcm__e);		\
		fatal;							\
	}								\
} while (0)

#define ASSERT_EQ(a, b) KCM__CMP(KCM__ON_FAIL_ASSERT, a, ==, b)
#define ASSERT_NE(a, b) KCM__CMP(KCM__ON_FAIL_ASSERT, a, !=, b)
#define ASSERT_GE(a, b) KCM__CMP(KCM__ON_FAIL_ASSERT, a, >=, b)
#define ASSERT_GT(a, b) KCM__CMP(KCM__ON_FAIL_ASSERT, a, >, b)
#define ASSERT_LE(a, b) KCM__CMP(KCM__ON_FAIL_ASSERT, a, <=, b)
#define ASSERT_LT(a, b) KCM__CMP(KCM__ON_FAIL_ASSERT, a, <, b)
#define EXPECT_EQ(a, b) KCM__CMP(KCM__ON_FAIL_EXPECT, a, ==, b)
#define EXPECT_NE(a, b) KCM__CMP(KCM__ON_FAIL_EXPECT, a, !=, b)
#define EXPECT_GE(a, b) KCM__CMP(KCM__ON_FAIL_EXPECT, a, >=, b)
#define EXPECT_GT(a, b) KCM__CMP(KCM__ON_FAIL_EXPECT, a, >, b)
#define EXPECT_LE(a, b) KCM__CMP(KCM__ON_FAIL_EXPECT, a, <=, b)
#define EXPECT_LT(a, b) KCM__CMP(KCM__ON_FAIL_EXPECT, a, <, b)
#define ASSERT_TRUE(c)  ASSERT_NE(!!(c), 0)
#define ASSERT_FALSE(c) ASSERT_EQ(!!(c), 0)
#define EXPECT_TRUE(c)  EXPECT_NE(!!(c), 0)
#define EXPECT_FALSE(c) EXPECT_EQ(!!(c), 0)

/* A system call that must succeed (result >= 0).  Yields the result. */
#define KCM__OK(fatal, expr) ({						\
	long long kcm__r = (long long)(expr);				\
	int kcm__e = errno;						\
	if (kcm__r < 0) {						\
		kcm_report_ok(__FILE__, __LINE__, #expr, kcm__r, kcm__e); \
		fatal;							\
	}								\
	errno = kcm__e;							\
	kcm__r;								\
})
#define ASSERT_OK(expr) KCM__OK(KCM__ON_FAIL_ASSERT, expr)
#define EXPECT_OK(expr) KCM__OK(KCM__ON_FAIL_EXPECT, expr)

/* A system call that must fail with -1 and exactly errno @e. */
#define KCM__ERR(fatal, expr, e) do {					\
	long long kcm__r = (long long)(expr);				\
	int kcm__e = errno;						\
	if (kcm__r != -1 || kcm__e != (e)) {				\
		kcm_report_errno(__FILE__, __LINE__, #expr, (e),	\
				 kcm__r, kcm__e);			\
		fatal;							\
	}								\
} while (0)
#define ASSERT_ERRNO(expr, e) KCM__ERR(KCM__ON_FAIL_ASSERT, expr, e)
#define EXPECT_ERRNO(expr, e) KCM__ERR(KCM__ON_FAIL_EXPECT, expr, e)

#define KCM__STREQ(fatal, a, b) do {					\
	const char *kcm__sa = (a), *kcm__sb = (b);			\
	if (!kcm__sa || !kcm__sb || strcmp(kcm__sa, kcm__sb)) {	\
		kcm_report_str(__FILE__, __LINE__, #a, kcm__sb, kcm__sa); \
		fatal;							\
	}								\
} while (0)
#define ASSERT_STREQ(a, b) KCM__STREQ(KCM__ON_FAIL_ASSERT, a, b)
#define EXPECT_STREQ(a, b) KCM__STREQ(KCM__ON_FAIL_EXPECT, a, b)

#define KCM__MEMEQ(fatal, a, b, n) do {					\
	const void *kcm__ma = (a), *kcm__mb = (b);			\
	size_t kcm__n = (n);						\
	if (memcmp(kcm__ma, kcm__mb, kcm__n)) {				\
		kcm_report_mem(__FILE__, __LINE__, #a, kcm__mb, kcm__ma, \
			       kcm__n);					\
		fatal;							\
	}								\
} while (0)
#define ASSERT_MEMEQ(a, b, n) KCM__MEMEQ(KCM__ON_FAIL_ASSERT, a, b, n)
#define EXPECT_MEMEQ(a, b, n) KCM__MEMEQ(KCM__ON_FAIL_EXPECT, a, b, n)

/* Fail with a free-form message. */
#define KCM_FAIL(...) kcm_fail_msg(__FILE__, __LINE__, __VA_ARGS__)
__attribute__((noreturn, format(printf, 3, 4)))
void kcm_fail_msg(const char *file, int line, const char *fmt, ...);

/* ---- helpers: sockets ------------------------------------------------- */

/* A connected loopback TCP pair: *a is the connecting side, *b the
 * accepted one.  family is AF_INET or AF_INET6.  Asserts on failure.
 */
void kcm_tcp_pair(int family, int *a, int *b);
/* A connected IPv4 loopback TCP pair that a few KiB fill: *a, the
 * connecting side, has a 4 KiB send buffer; *b, the accepted one, a 4 KiB
 * receive buffer (set on the listener, so the window is small from the
 * handshake on).
 */
void kcm_tcp_pair_tiny(int *a, int *b);
/* A listening loopback TCP socket on an ephemeral port. */
int kcm_tcp_listener(int family, int backlog);
/* Connect a new TCP socket to the listener @lfd; returns it. */
int kcm_tcp_connect_to(int lfd);

/* socket(AF_KCM, type, KCMPROTO_CONNECTED); asserts on failure. */
int kcm_socket(int type);
/* SIOCKCMCLONE on @fd: returns the new fd, or -1 with errno. */
int kcm_clone(int fd);
/* SIOCKCMATTACH / SIOCKCMUNATTACH: ioctl result, errno preserved. */
int kcm_attach(int kcmfd, int tcpfd, int bpffd);
int kcm_unattach(int kcmfd, int tcpfd);

/* Set SO_RCVTIMEO / SO_SNDTIMEO in milliseconds. */
void kcm_set_rcvtimeo(int fd, int ms);
void kcm_set_sndtimeo(int fd, int ms);
void kcm_set_nonblock(int fd, int on);
void kcm_set_int_opt(int fd, int level, int name, int val);
int kcm_get_int_opt(int fd, int level, int name);
/* SO_ERROR (read and cleared). */
int kcm_so_error(int fd);
/* poll() one fd for @events; returns revents (0 on timeout). */
int kcm_poll1(int fd, short events, int timeout_ms);
/* sendmsg() of @len bytes on the TCP connection whose SO_COOKIE is @cookie
 * (a SOL_KCM/KCM_ORIGIN control message: ours, not Linux's).
 */
ssize_t kcm_send_directed(int kcm, const void *buf, size_t len,
			  uint64_t cookie, int flags);

/* ---- helpers: BPF ------------------------------------------------------ */

struct bpf_insn;

/* Raw BPF_PROG_LOAD; returns the fd or -1 with errno.  On failure the
 * verifier log is printed as diagnostics.
 */
int kcm_bpf_load(int prog_type, const struct bpf_insn *insns, int cnt);

/* BPF_PROG_TYPE_SOCKET_FILTER programs; each asserts on failure. */
int kcm_prog_len32(void);	/* 4-byte BE length (excl. itself) + 4 */
int kcm_prog_len16(void);	/* 2-byte BE length (excl. itself) + 2 */
int kcm_prog_const(int value);	/* returns @value */
/* A program of another type (BPF_PROG_TYPE_SCHED_CLS / kprobe fallback). */
int kcm_prog_wrong_type(void);

/* ---- helpers: I/O and messages --------------------------------------- */

/* Write/read all @len bytes (blocking); assert on error or EOF, and (read)
 * on 10 s without a byte: a stall.
 */
void kcm_write_all(int fd, const void *buf, size_t len);
void kcm_read_all(int fd, void *buf, size_t len);

/* Put a 4-byte big-endian length header in front of @payload in @out
 * (which must hold len + 4 bytes); returns len + 4.
 */
size_t kcm_frame(void *out, const void *payload, size_t len);
/* Frame and write a message on a TCP socket. */
void kcm_send_framed(int fd, const void *payload, size_t len);

/*
 * Test messages: a framed message of @size total bytes (header included,
 * size >= 16) carrying a connection id, a sequence number and a filler
 * derived from both.  kcm_msg_check() verifies a received message (the
 * whole frame, header included, as KCM delivers it) and returns 0 if it is
 * well formed, filling *conn and *seq, or -1.
 */
#define KCM_MSG_MIN 16
void kcm_msg_build(void *buf, size_t size, uint32_t conn, uint32_t seq);
/* Writes messages seq0.. of sizes[0..n) of connection @conn in one write. */
void kcm_write_msgs(int fd, const size_t *sizes, int n, uint32_t conn,
		    uint32_t seq0);
int kcm_msg_check(const void *buf, size_t len, uint32_t *conn, uint32_t *seq);

/*
 * recv() with a deadline: waits up to @ms for the socket to become
 * readable (poll), then recv(fd, buf, cap, flags | MSG_DONTWAIT).  Returns
 * what recv returned; on timeout -1 with errno EAGAIN.
 */
ssize_t kcm_recv_timeout(int fd, void *buf, size_t cap, int flags, int ms);

/*
 * kcm_recv_timeout(kcm, buf, cap, 0, ms) that also watches @tcp, a TCP
 * socket attached to @kcm's mux: once @tcp shows an error (POLLERR, read
 * without clearing it) and nothing has come on @kcm for a second more, no
 * message is coming and it gives up early, -1 with errno EAGAIN.  A
 * message parsed before the error is queued on a KCM socket before the
 * error is posted, so the second is slack, not a guess.
 */
ssize_t kcm_recv_watching(int kcm, int tcp, void *buf, size_t cap, int ms);

/* 64-bit FNV-1a checksum. */
uint64_t kcm_csum(const void *buf, size_t len);

/* Deterministic pseudo-random numbers (xorshift). */
uint32_t kcm_rand(uint64_t *state);
/* A seed for kcm_rand(): $KCM_SEED if set (to replay a run), else fresh;
 * printed as a diagnostic either way. */
uint64_t kcm_seed(void);
/* malloc() that fails the case instead of returning NULL. */
void *kcm_xmalloc(size_t n);
/*
 * The address where an unwritable page starts, after a writable one: a
 * buffer there faults at once, one at that address minus n after n bytes.
 * Unmapped when the case ends (its process exits).
 */
char *kcm_fault_page(void);

/* Monotonic time in milliseconds. */
long long kcm_now_ms(void);
/*
 * The kernel's tick clock (jiffies, read through times()) in milliseconds,
 * to the resolution of a clock tick (sysconf(_SC_CLK_TCK), 10 ms).  The
 * clock that SO_RCVTIMEO, SO_SNDTIMEO and delayed work count in: a case
 * that checks one of those did not end early measures it with this, not
 * with kcm_now_ms().  Jiffies fall behind CLOCK_MONOTONIC while the guest's
 * timer interrupts come late (QEMU TCG on a loaded host: by 100 ms and
 * more), and a timeout armed then ends that much early on CLOCK_MONOTONIC;
 * on this clock it never ends early.
 */
long long kcm_tick_ms(void);
void kcm_msleep(int ms);

/* ---- helpers: namespaces and /proc ------------------------------------ */

/* Move the calling process into a new network namespace with "lo" up. */
void kcm_new_netns(void);

/* Read a whole file into a malloc'd NUL-terminated buffer (or NULL). */
char *kcm_read_file(const char *path);
int kcm_write_file(const char *path, const char *text);	/* 0 or -errno */
void kcm_wait_acked(int fd);	/* all written on @fd acked, within 10 s */
/* The loaded kcm module's text, for failslab's stack filter: from its
 * start to the nearest section above it (or 64 KiB past its last text
 * symbol).
 */
void kcm_module_text(unsigned long *start, unsigned long *end);
/* Diagnostics: @why, then /proc/net/kcm and /proc/net/kcm_stats. */
void kcm_dump_proc(const char *why);

#endif /* KCM_TEST_H */
