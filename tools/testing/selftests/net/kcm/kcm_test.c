// SPDX-License-Identifier: GPL-2.0
/*
 * Test runner and helpers for the AF_KCM selftests: see kcm_test.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kcm_test.h"

#define KCM_MAX_CASES		256
#define KCM_DEFAULT_TIMEOUT	30
#define KCM_EXIT_SKIP		77

static struct kcm_case *cases[KCM_MAX_CASES];
static int ncases;
static int lane_linux = -1;
static int verbose;

int kcm_case_failed;

/* Shared with the parent: why the running case skipped itself. */
static char *skip_reason;
#define SKIP_REASON_LEN 256

void kcm_register(struct kcm_case *c)
{
	if (ncases >= KCM_MAX_CASES) {
		fprintf(stderr, "kcm_test: too many cases\n");
		exit(1);
	}
	cases[ncases++] = c;
}

int kcm_lane_is_linux(void)
{
	if (lane_linux < 0) {
		const char *l = getenv("KCM_LANE");

		lane_linux = l && !strcmp(l, "linux");
	}
	return lane_linux;
}

const char *kcm_errname(int e)
{
	const char *n = e ? strerrorname_np(e) : "0";

	return n ? n : "E?";
}

static void vdiag(const char *fmt, va_list ap)
{
	char buf[1024];
	char *line, *save = NULL;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	/* Every output line must be a TAP diagnostic. */
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		printf("# %s\n", line);
	fflush(stdout);
}

void kcm_diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(fmt, ap);
	va_end(ap);
}

void kcm_log(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	vdiag(fmt, ap);
	va_end(ap);
}

static const char *base(const char *file)
{
	const char *s = strrchr(file, '/');

	return s ? s + 1 : file;
}

void kcm_fail_now(void)
{
	fflush(stdout);
	_exit(1);
}

void kcm_fail_msg(const char *file, int line, const char *fmt, ...)
{
	char buf[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	kcm_diag("%s:%d: %s", base(file), line, buf);
	kcm_fail_now();
}

void kcm_skip(const char *fmt, ...)
{
	va_list ap;

	/* A failed expectation before is the outcome, not the skip. */
	if (kcm_case_failed) {
		kcm_diag("failed before it skipped");
		kcm_fail_now();
	}
	va_start(ap, fmt);
	if (skip_reason)
		vsnprintf(skip_reason, SKIP_REASON_LEN, fmt, ap);
	va_end(ap);
	fflush(stdout);
	_exit(KCM_EXIT_SKIP);
}

static void errstr(char *out, size_t n, int err)
{
	if (err)
		snprintf(out, n, " (errno %d %s: %s)", err, kcm_errname(err),
			 strerror(err));
	else
		snprintf(out, n, " (errno 0)");
}

void kcm_report_cmp(const char *file, int line, const char *what,
		    const char *op, long long exp, long long got, int err)
{
	char e[128] = "";

	/* errno only means something when a call failed. */
	if (got < 0)
		errstr(e, sizeof(e), err);
	kcm_diag("%s:%d: %s: expected %s %lld, got %lld%s", base(file), line,
		 what, op, exp, got, e);
}

void kcm_report_errno(const char *file, int line, const char *what,
		      int exp_errno, long long got, int err)
{
	char e[128];

	errstr(e, sizeof(e), err);
	kcm_diag("%s:%d: %s: expected -1 with errno %d %s, got %lld%s",
		 base(file), line, what, exp_errno, kcm_errname(exp_errno), got, e);
}

void kcm_report_ok(const char *file, int line, const char *what,
		   long long got, int err)
{
	char e[128];

	errstr(e, sizeof(e), err);
	kcm_diag("%s:%d: %s: expected success, got %lld%s", base(file), line, what,
		 got, e);
}

void kcm_report_str(const char *file, int line, const char *what,
		    const char *exp, const char *got)
{
	kcm_diag("%s:%d: %s: expected \"%s\", got \"%s\"", base(file), line, what,
		 exp ? exp : "(null)", got ? got : "(null)");
}

void kcm_report_mem(const char *file, int line, const char *what,
		    const void *exp, const void *got, size_t n)
{
	const unsigned char *a = exp, *b = got;
	size_t i;

	for (i = 0; i < n && a[i] == b[i]; i++)
		;
	kcm_diag("%s:%d: %s: %zu bytes differ first at offset %zu: expected 0x%02x, got 0x%02x",
		 base(file), line, what, n, i, i < n ? a[i] : 0, i < n ? b[i] : 0);
}

/* ---- runner ---------------------------------------------------------- */

static int selected(const char *name, int argc, char **argv)
{
	const char *only = getenv("KCM_ONLY");
	int i;

	if (argc > 1) {
		for (i = 1; i < argc; i++)
			if (!strcmp(argv[i], name))
				return 1;
		return 0;
	}
	if (only && *only) {
		size_t n = strlen(name);
		const char *p = only;

		while (*p) {
			const char *end = strchr(p, ',');
			size_t len = end ? (size_t)(end - p) : strlen(p);

			if (len == n && !strncmp(p, name, n))
				return 1;
			p += len;
			if (*p == ',')
				p++;
		}
		return 0;
	}
	return 1;
}

/* Outcome: 0 pass, 1 fail, 2 skip. */
static int run_case(struct kcm_case *c)
{
	int timeout = c->timeout > 0 ? c->timeout : KCM_DEFAULT_TIMEOUT;
	long long deadline;
	sigset_t set, old;
	int status = 0;
	pid_t pid, w;

	skip_reason[0] = 0;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		kcm_diag("fork: %s", strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		return 1;
	}
	if (!pid) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		setpgid(0, 0);
		signal(SIGPIPE, SIG_IGN);
		kcm_case_failed = 0;
		c->fn();
		fflush(stdout);
		_exit(kcm_case_failed ? 1 : 0);
	}
	setpgid(pid, pid);

	deadline = kcm_now_ms() + timeout * 1000LL;
	for (;;) {
		long long left;
		struct timespec ts;

		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		left = deadline - kcm_now_ms();
		if (left <= 0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			kcm_diag("%s: timed out after %d s", c->name, timeout);
			sigprocmask(SIG_SETMASK, &old, NULL);
			return 1;
		}
		if (left > 200)
			left = 200;
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (left % 1000) * 1000000L;
		sigtimedwait(&set, NULL, &ts);
	}
	/* Whatever the case left behind in its process group goes too. */
	kill(-pid, SIGKILL);
	sigprocmask(SIG_SETMASK, &old, NULL);

	if (WIFSIGNALED(status)) {
		kcm_diag("%s: killed by signal %d (%s)", c->name,
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
		return 1;
	}
	if (WEXITSTATUS(status) == KCM_EXIT_SKIP)
		return 2;
	return WEXITSTATUS(status) ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *v = getenv("KCM_VERBOSE");
	const char *all = getenv("KCM_RUN_ALL");
	int run_all = all && *all && strcmp(all, "0");
	int pass = 0, fail = 0, skip = 0, xfail = 0;
	int i;

	verbose = v && *v && strcmp(v, "0");
	setvbuf(stdout, NULL, _IOLBF, 0);
	skip_reason = mmap(NULL, SKIP_REASON_LEN, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (skip_reason == MAP_FAILED) {
		perror("mmap");
		return 1;
	}

	printf("TAP version 13\n");
	printf("1..%d\n", ncases);
	kcm_diag("lane: %s", kcm_lane_is_linux() ? "linux" : "ours");
	for (i = 0; i < ncases; i++) {
		struct kcm_case *c = cases[i];
		long long t0;
		int r;

		if (!selected(c->name, argc, argv)) {
			printf("ok %d %s # SKIP not selected\n", i + 1, c->name);
			skip++;
			continue;
		}
		if (c->ext && kcm_lane_is_linux()) {
			printf("ok %d %s # SKIP extension\n", i + 1, c->name);
			skip++;
			continue;
		}
		if (c->linux_crash && kcm_lane_is_linux() && !run_all) {
			printf("ok %d %s # SKIP linux bug, not run: it takes the kernel down: %s\n",
			       i + 1, c->name, c->linux_crash);
			skip++;
			continue;
		}
		t0 = kcm_now_ms();
		r = run_case(c);
		/* Where the suite's time goes, for the slow cases. */
		t0 = kcm_now_ms() - t0;
		if (t0 >= 1000)
			kcm_diag("%s took %lld.%lld s", c->name, t0 / 1000,
				 t0 % 1000 / 100);
		if (c->linux_bug && kcm_lane_is_linux()) {
			if (r == 1) {
				printf("not ok %d %s # TODO linux bug: %s\n",
				       i + 1, c->name, c->linux_bug);
				xfail++;
				continue;
			}
			if (r == 0 && c->linux_race) {
				printf("ok %d %s # SKIP linux bug not shown this run (a race): %s\n",
				       i + 1, c->name, c->linux_bug);
				skip++;
				continue;
			}
			if (r == 0) {
				printf("not ok %d %s # marked as a Linux bug, but it passed on Linux: %s\n",
				       i + 1, c->name, c->linux_bug);
				fail++;
				continue;
			}
		}
		if (r == 0) {
			printf("ok %d %s\n", i + 1, c->name);
			pass++;
		} else if (r == 2 && !kcm_lane_is_linux()) {
			printf("not ok %d %s # a skip on our module is a failure: %s\n",
			       i + 1, c->name,
			       skip_reason[0] ? skip_reason : "skipped");
			fail++;
		} else if (r == 2) {
			printf("ok %d %s # SKIP %s\n", i + 1, c->name,
			       skip_reason[0] ? skip_reason : "skipped");
			skip++;
		} else {
			printf("not ok %d %s\n", i + 1, c->name);
			fail++;
		}
	}
	kcm_diag("%d passed, %d failed, %d skipped, %d expected failures",
		 pass, fail, skip, xfail);
	return fail ? 1 : 0;
}

/* ---- helpers: time ------------------------------------------------------ */

long long kcm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

long long kcm_tick_ms(void)
{
	struct tms t;

	/* times() returns jiffies_64 converted to clock ticks. */
	return (long long)times(&t) * 1000 / sysconf(_SC_CLK_TCK);
}

void kcm_msleep(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ---- helpers: sockets ---------------------------------------------------- */

static socklen_t loopback_addr(int family, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		return sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*s4);
	}
}

int kcm_tcp_listener(int family, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback_addr(family, &ss);
	int one = 1;
	int fd;

	fd = ASSERT_OK(socket(family, SOCK_STREAM, 0));
	ASSERT_OK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)));
	ASSERT_OK(bind(fd, (struct sockaddr *)&ss, len));
	ASSERT_OK(listen(fd, backlog));
	return fd;
}

int kcm_tcp_connect_to(int lfd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int one = 1;
	int fd;

	ASSERT_OK(getsockname(lfd, (struct sockaddr *)&ss, &len));
	fd = ASSERT_OK(socket(ss.ss_family, SOCK_STREAM, 0));
	ASSERT_OK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)));
	ASSERT_OK(connect(fd, (struct sockaddr *)&ss, len));
	return fd;
}

void kcm_tcp_pair(int family, int *a, int *b)
{
	int lfd = kcm_tcp_listener(family, 1);
	int one = 1;

	*a = kcm_tcp_connect_to(lfd);
	*b = ASSERT_OK(accept(lfd, NULL, NULL));
	ASSERT_OK(setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)));
	close(lfd);
}

void kcm_tcp_pair_tiny(int *a, int *b)
{
	int lfd = kcm_tcp_listener(AF_INET, 1);

	kcm_set_int_opt(lfd, SOL_SOCKET, SO_RCVBUF, 4096);
	*a = kcm_tcp_connect_to(lfd);
	*b = ASSERT_OK(accept(lfd, NULL, NULL));
	close(lfd);
	kcm_set_int_opt(*a, SOL_SOCKET, SO_SNDBUF, 4096);
}

int kcm_socket(int type)
{
	return ASSERT_OK(socket(AF_KCM, type, KCMPROTO_CONNECTED));
}

int kcm_clone(int fd)
{
	struct kcm_clone info;

	memset(&info, 0, sizeof(info));
	info.fd = -1;
	if (ioctl(fd, SIOCKCMCLONE, &info) < 0)
		return -1;
	return info.fd;
}

int kcm_attach(int kcmfd, int tcpfd, int bpffd)
{
	struct kcm_attach info;

	memset(&info, 0, sizeof(info));
	info.fd = tcpfd;
	info.bpf_fd = bpffd;
	return ioctl(kcmfd, SIOCKCMATTACH, &info);
}

int kcm_unattach(int kcmfd, int tcpfd)
{
	struct kcm_unattach info;

	memset(&info, 0, sizeof(info));
	info.fd = tcpfd;
	return ioctl(kcmfd, SIOCKCMUNATTACH, &info);
}

static void set_timeo(int fd, int opt, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	ASSERT_OK(setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)));
}

void kcm_set_rcvtimeo(int fd, int ms)
{
	set_timeo(fd, SO_RCVTIMEO, ms);
}

void kcm_set_sndtimeo(int fd, int ms)
{
	set_timeo(fd, SO_SNDTIMEO, ms);
}

void kcm_set_nonblock(int fd, int on)
{
	int fl = ASSERT_OK(fcntl(fd, F_GETFL));

	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	ASSERT_OK(fcntl(fd, F_SETFL, fl));
}

void kcm_set_int_opt(int fd, int level, int name, int val)
{
	ASSERT_OK(setsockopt(fd, level, name, &val, sizeof(val)));
}

int kcm_get_int_opt(int fd, int level, int name)
{
	int val = 0;
	socklen_t len = sizeof(val);

	ASSERT_OK(getsockopt(fd, level, name, &val, &len));
	ASSERT_EQ(len, sizeof(val));
	return val;
}

int kcm_so_error(int fd)
{
	return kcm_get_int_opt(fd, SOL_SOCKET, SO_ERROR);
}

ssize_t kcm_send_directed(int kcm, const void *buf, size_t len,
			  uint64_t cookie, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(uint64_t))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

	memset(&ctl, 0, sizeof(ctl));
	cm->cmsg_level = SOL_KCM;
	cm->cmsg_type = KCM_ORIGIN;
	cm->cmsg_len = CMSG_LEN(sizeof(cookie));
	memcpy(CMSG_DATA(cm), &cookie, sizeof(cookie));
	return sendmsg(kcm, &m, flags);
}

int kcm_poll1(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	do {
		n = poll(&p, 1, timeout_ms);
	} while (n < 0 && errno == EINTR);
	ASSERT_OK(n);
	return n ? p.revents : 0;
}

/* ---- helpers: BPF ---------------------------------------------------------- */

#define INSN(c, d, s, o, i) \
	((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), \
			    .off = (o), .imm = (i) })
/* r_dst = r_src */
#define MOV64_REG(d, s)		INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
/* r_dst = imm */
#define MOV64_IMM(d, i)		INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
/* r_dst += imm */
#define ADD64_IMM(d, i)		INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, i)
/* r0 = big-endian load of @size at packet offset @off (needs r6 = ctx) */
#define LD_ABS(size, off)	INSN(BPF_LD | (size) | BPF_ABS, 0, 0, 0, off)
#define EXIT_INSN()		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

static char bpf_log[8192];

int kcm_bpf_load(int prog_type, const struct bpf_insn *insns, int cnt)
{
	static const char license[] = "GPL";
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = prog_type;
	attr.insns = (uint64_t)(uintptr_t)insns;
	attr.insn_cnt = cnt;
	attr.license = (uint64_t)(uintptr_t)license;
	fd = syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	if (fd >= 0)
		return fd;

	/* Load again with a log, for the diagnostics. */
	{
		int err = errno;

		bpf_log[0] = 0;
		attr.log_buf = (uint64_t)(uintptr_t)bpf_log;
		attr.log_size = sizeof(bpf_log);
		attr.log_level = 1;
		/* A transient failure (ENOMEM under failslab) may not happen
		 * again: a program loaded now is not the caller's, close it.
		 */
		fd = syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
		if (fd >= 0)
			close(fd);
		kcm_diag("BPF_PROG_LOAD(type %d): %s", prog_type,
			 strerror(err));
		if (bpf_log[0])
			kcm_diag("%s", bpf_log);
		errno = err;
	}
	return -1;
}

int kcm_prog_len32(void)
{
	const struct bpf_insn prog[] = {
		MOV64_REG(BPF_REG_6, BPF_REG_1),
		LD_ABS(BPF_W, 0),
		ADD64_IMM(BPF_REG_0, 4),
		EXIT_INSN(),
	};

	return ASSERT_OK(kcm_bpf_load(BPF_PROG_TYPE_SOCKET_FILTER, prog,
				      sizeof(prog) / sizeof(prog[0])));
}

int kcm_prog_len16(void)
{
	const struct bpf_insn prog[] = {
		MOV64_REG(BPF_REG_6, BPF_REG_1),
		LD_ABS(BPF_H, 0),
		ADD64_IMM(BPF_REG_0, 2),
		EXIT_INSN(),
	};

	return ASSERT_OK(kcm_bpf_load(BPF_PROG_TYPE_SOCKET_FILTER, prog,
				      sizeof(prog) / sizeof(prog[0])));
}

int kcm_prog_const(int value)
{
	const struct bpf_insn prog[] = {
		MOV64_IMM(BPF_REG_0, value),
		EXIT_INSN(),
	};

	return ASSERT_OK(kcm_bpf_load(BPF_PROG_TYPE_SOCKET_FILTER, prog,
				      sizeof(prog) / sizeof(prog[0])));
}

int kcm_prog_wrong_type(void)
{
	const struct bpf_insn prog[] = {
		MOV64_IMM(BPF_REG_0, 0),
		EXIT_INSN(),
	};

	return ASSERT_OK(kcm_bpf_load(BPF_PROG_TYPE_SCHED_CLS, prog,
				      sizeof(prog) / sizeof(prog[0])));
}

/* ---- helpers: I/O and messages ------------------------------------------ */

void kcm_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, p + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			KCM_FAIL("write(fd %d): %zd after %zu of %zu bytes: %s",
				 fd, n, done, len, n ? kcm_errname(errno) : "");
		done += n;
	}
}

void kcm_read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n;

		if (!kcm_poll1(fd, POLLIN, 10000))
			KCM_FAIL("read(fd %d): nothing for 10 s after %zu of %zu bytes",
				 fd, done, len);
		n = read(fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			KCM_FAIL("read(fd %d): %zd after %zu of %zu bytes: %s",
				 fd, n, done, len, n ? kcm_errname(errno) : "EOF");
		done += n;
	}
}

static void put_be32(void *p, uint32_t v)
{
	unsigned char *b = p;

	b[0] = v >> 24;
	b[1] = v >> 16;
	b[2] = v >> 8;
	b[3] = v;
}

static uint32_t get_be32(const void *p)
{
	const unsigned char *b = p;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	       (uint32_t)b[2] << 8 | b[3];
}

size_t kcm_frame(void *out, const void *payload, size_t len)
{
	put_be32(out, (uint32_t)len);
	if (len)
		memcpy((char *)out + 4, payload, len);
	return len + 4;
}

void kcm_send_framed(int fd, const void *payload, size_t len)
{
	char *buf = malloc(len + 4);

	ASSERT_TRUE(buf);
	kcm_frame(buf, payload, len);
	kcm_write_all(fd, buf, len + 4);
	free(buf);
}

static unsigned char filler(uint32_t conn, uint32_t seq, size_t i)
{
	uint32_t x = seq * 2654435761u + conn * 40503u + (uint32_t)i * 97u;

	return (unsigned char)(x ^ (x >> 11) ^ (i >> 8));
}

void kcm_msg_build(void *buf, size_t size, uint32_t conn, uint32_t seq)
{
	unsigned char *b = buf;
	size_t i;

	if (size < KCM_MSG_MIN)
		KCM_FAIL("kcm_msg_build: size %zu too small", size);
	put_be32(b, (uint32_t)(size - 4));
	put_be32(b + 4, conn);
	put_be32(b + 8, seq);
	put_be32(b + 12, (uint32_t)size ^ 0x5a5a5a5a);
	for (i = KCM_MSG_MIN; i < size; i++)
		b[i] = filler(conn, seq, i);
}

void kcm_write_msgs(int fd, const size_t *sizes, int n, uint32_t conn,
		    uint32_t seq0)
{
	size_t total = 0, off = 0;
	char *buf;
	int i;

	for (i = 0; i < n; i++)
		total += sizes[i];
	buf = kcm_xmalloc(total);
	for (i = 0; i < n; i++) {
		kcm_msg_build(buf + off, sizes[i], conn, seq0 + i);
		off += sizes[i];
	}
	kcm_write_all(fd, buf, total);
	free(buf);
}

int kcm_msg_check(const void *buf, size_t len, uint32_t *conn, uint32_t *seq)
{
	const unsigned char *b = buf;
	uint32_t c, s;
	size_t i;

	if (len < KCM_MSG_MIN)
		return -1;
	if (get_be32(b) != len - 4)
		return -1;
	if (get_be32(b + 12) != ((uint32_t)len ^ 0x5a5a5a5a))
		return -1;
	c = get_be32(b + 4);
	s = get_be32(b + 8);
	for (i = KCM_MSG_MIN; i < len; i++)
		if (b[i] != filler(c, s, i))
			return -1;
	if (conn)
		*conn = c;
	if (seq)
		*seq = s;
	return 0;
}

ssize_t kcm_recv_timeout(int fd, void *buf, size_t cap, int flags, int ms)
{
	long long deadline = kcm_now_ms() + ms;

	for (;;) {
		long long left = deadline - kcm_now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (left < 0)
			left = 0;
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return -1;
		n = recv(fd, buf, cap, flags | MSG_DONTWAIT);
		if (n >= 0 || errno != EAGAIN || left == 0)
			return n;
	}
}

ssize_t kcm_recv_watching(int kcm, int tcp, void *buf, size_t cap, int ms)
{
	long long now = kcm_now_ms(), deadline = now + ms, give_up = deadline;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = kcm, .events = POLLIN },
			{ .fd = tcp },
		};
		long long left;
		ssize_t n;

		now = kcm_now_ms();
		left = (give_up < deadline ? give_up : deadline) - now;
		if (left < 0)
			left = 0;
		if (poll(p, 2, left > 100 ? 100 : (int)left) < 0 &&
		    errno != EINTR)
			return -1;
		n = recv(kcm, buf, cap, MSG_DONTWAIT);
		if (n >= 0 || errno != EAGAIN || left == 0)
			return n;
		if ((p[1].revents & POLLERR) && give_up == deadline)
			give_up = kcm_now_ms() + 1000;
	}
}

uint64_t kcm_csum(const void *buf, size_t len)
{
	const unsigned char *b = buf;
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

uint32_t kcm_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return (uint32_t)(x >> 16);
}

void kcm_new_netns(void)
{
	struct ifreq ifr;
	int fd;

	ASSERT_OK(unshare(CLONE_NEWNET));
	fd = ASSERT_OK(socket(AF_INET, SOCK_DGRAM, 0));
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	ASSERT_OK(ioctl(fd, SIOCGIFFLAGS, &ifr));
	ifr.ifr_flags |= IFF_UP;
	ASSERT_OK(ioctl(fd, SIOCSIFFLAGS, &ifr));
	close(fd);
}

/* Waits up to 10 s for everything written on @fd to be acknowledged. */
void kcm_wait_acked(int fd)
{
	long long end = kcm_now_ms() + 10000;
	int outq;

	for (;;) {
		ASSERT_OK(ioctl(fd, SIOCOUTQ, &outq));
		if (!outq)
			return;
		if (kcm_now_ms() > end)
			KCM_FAIL("%d bytes still not acknowledged", outq);
		kcm_msleep(5);
	}
}

int kcm_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), err = 0;
	size_t len = strlen(text);

	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		err = errno ? -errno : -EIO;
	close(fd);
	return err;
}

char *kcm_read_file(const char *path)
{
	size_t cap = 4096, len = 0;
	char *buf;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	buf = malloc(cap);
	for (;;) {
		ssize_t n;

		if (!buf)
			break;
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
	}
	close(fd);
	if (buf)
		buf[len] = 0;
	return buf;
}

uint64_t kcm_seed(void)
{
	const char *s = getenv("KCM_SEED");
	uint64_t seed;

	if (s && *s)
		seed = strtoull(s, NULL, 0);
	else
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	kcm_diag("seed %llu (KCM_SEED=%llu replays it)",
		 (unsigned long long)seed, (unsigned long long)seed);
	return seed;
}

void *kcm_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		KCM_FAIL("out of memory (%zu bytes)", n);
	return p;
}

char *kcm_fault_page(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *map;

	map = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		KCM_FAIL("mmap: %s", kcm_errname(errno));
	if (mprotect(map + pg, pg, PROT_NONE))
		KCM_FAIL("mprotect: %s", kcm_errname(errno));
	return map + pg;
}

void kcm_dump_proc(const char *why)
{
	static const char *const files[] = {
		"/proc/net/kcm", "/proc/net/kcm_stats",
	};
	unsigned int i;

	kcm_diag("%s; state follows", why);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *text = kcm_read_file(files[i]), *line, *save;

		kcm_diag("%s:", files[i]);
		if (!text)
			continue;
		for (line = strtok_r(text, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save))
			kcm_diag("  %s", line);
		free(text);
	}
}

static unsigned long read_hex(const char *path)
{
	char *text = kcm_read_file(path);
	unsigned long v = text ? strtoul(text, NULL, 16) : 0;

	free(text);
	return v;
}

/*
 * The module's .text: from its start (/sys/module/kcm/sections/.text) to the
 * nearest section the loader placed above it, which cannot overlap it, and
 * no further than 64 KiB past the module's last text symbol in
 * /proc/kallsyms (when the next section is far away, the gap may hold
 * other code, e.g. JITed BPF programs).
 */
void kcm_module_text(unsigned long *start, unsigned long *end)
{
	const char *dir = "/sys/module/kcm/sections";
	unsigned long next = ~0UL, last = 0, a;
	char path[512], line[512], type;
	struct dirent *de;
	FILE *f;
	DIR *d;

	snprintf(path, sizeof(path), "%s/.text", dir);
	*start = read_hex(path);
	if (!*start)
		KCM_FAIL("no address in %s (kcm not loaded?)", path);
	d = opendir(dir);
	if (!d)
		KCM_FAIL("%s: %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' && (!de->d_name[1] ||
		    !strcmp(de->d_name, "..")))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		a = read_hex(path);
		if (a > *start && a < next)
			next = a;
	}
	closedir(d);
	f = fopen("/proc/kallsyms", "re");
	if (!f)
		KCM_FAIL("/proc/kallsyms: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx %c", &a, &type) == 2 &&
		    (type == 't' || type == 'T') && strstr(line, "\t[kcm]") &&
		    a > last)
			last = a;
	}
	fclose(f);
	if (last < *start)
		KCM_FAIL("no text symbol of kcm in /proc/kallsyms");
	*end = next < last + 65536 ? next : last + 65536;
}
