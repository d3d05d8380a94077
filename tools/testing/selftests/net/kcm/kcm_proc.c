// SPDX-License-Identifier: GPL-2.0
/*
 * AF_KCM /proc files: /proc/net/kcm (one row per mux, then one per KCM
 * socket and per attached TCP socket of that mux) and /proc/net/kcm_stats
 * (totals of the network namespace), their exact headers as Linux's kcm.ko
 * prints them, their counters, and their per-network-namespace scope.
 *
 * Most cases first move into a fresh network namespace, so that nothing
 * left by other cases (or other tests) shows up in the files.
 */
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kcm_test.h"

#define PROC_KCM	"/proc/net/kcm"
#define PROC_STATS	"/proc/net/kcm_stats"

/* Headers exactly as Linux's kcm.ko prints them (6.1 and 6.12). */
static const char kcm_title_fmt[] = "*** KCM statistics (%d MUX) ****";
static const char kcm_hdr[] =
	"Object         RX-Msgs    RX-Bytes         TX-Msgs    TX-Bytes         "
	"Recv-Q   Rmem     Send-Q   Smem     Status";
static const char mux_hdr[] =
	"MUX      RX-Msgs    RX-Bytes         TX-Msgs    TX-Bytes         "
	"TX-Retries Attach     Unattach   UnattchRsvd RX-RdyDrops";
static const char psock_hdr[] =
	"Psock    RX-Msgs    RX-Bytes         TX-Msgs    TX-Bytes         "
	"Reserved   Unreserved RX-Aborts  RX-Intr    RX-Unrecov RX-MemFail "
	"RX-NeedMor RX-BadLen  RX-TooBig  RX-Timeout TX-Aborts ";

/* ---- parsing ------------------------------------------------------------ */

#define MAX_LINES 256
#define MAX_TOKS 32

struct lines {
	char *buf;
	int n;
	char *l[MAX_LINES];
};

static void read_lines(const char *path, struct lines *ls)
{
	char *p;

	ls->buf = kcm_read_file(path);
	if (!ls->buf)
		KCM_FAIL("cannot read %s: %s", path, strerror(errno));
	ls->n = 0;
	p = ls->buf;
	while (*p && ls->n < MAX_LINES) {
		char *nl = strchr(p, '\n');

		ls->l[ls->n++] = p;
		if (!nl)
			KCM_FAIL("%s: last line has no newline", path);
		*nl = 0;
		p = nl + 1;
	}
}

/* Split a copy of @line on blanks into @tok; returns the count. */
static int tokens(const char *line, char *copy, size_t cap, char **tok)
{
	int n = 0;
	char *save = NULL, *t;

	snprintf(copy, cap, "%s", line);
	for (t = strtok_r(copy, " ", &save); t && n < MAX_TOKS;
	     t = strtok_r(NULL, " ", &save))
		tok[n++] = t;
	return n;
}

/*
 * Text of column @col in @row, into @out, where @hdr is the header line
 * naming the columns.  @label: the row starts with a label token, as the
 * header does (rows of /proc/net/kcm); kcm_stats value rows have none.
 */
static void field(const char *hdr, const char *row, const char *col,
		  int label, char *out, size_t cap)
{
	char hc[512], rc[512], *ht[MAX_TOKS], *rt[MAX_TOKS];
	int nh = tokens(hdr, hc, sizeof(hc), ht);
	int nr = tokens(row, rc, sizeof(rc), rt);
	int i, k;

	for (i = 0; i < nh; i++)
		if (!strcmp(ht[i], col))
			break;
	if (i == nh)
		KCM_FAIL("no column %s in \"%s\"", col, hdr);
	k = label ? i : i - 1;
	if (k < 0 || k >= nr)
		KCM_FAIL("row \"%s\" has no column %s", row, col);
	snprintf(out, cap, "%s", rt[k]);
}

/* Value of column @col in @row, which must be a number (see field()). */
static long long column(const char *hdr, const char *row, const char *col,
			int label)
{
	char text[64], *end;
	long long v;

	field(hdr, row, col, label, text, sizeof(text));
	v = strtoll(text, &end, 10);
	if (!*text || *end)
		KCM_FAIL("column %s of \"%s\" is \"%s\", not a number", col,
			 row, text);
	return v;
}

static int starts_with(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

/*
 * The text after the first 9 columns of a /proc/net/kcm row: a mux row's
 * "KCMs: 2, Psocks 1", a KCM socket's or psock's status words.
 */
static const char *row_status(const char *row)
{
	const char *p = row;
	int n;

	/* label + 8 columns, then the status; kcm and psock rows are
	 * indented.
	 */
	while (*p == ' ')
		p++;
	for (n = 0; n < 9; n++) {
		while (*p && *p != ' ')
			p++;
		while (*p == ' ')
			p++;
	}
	return p;
}

static void dump(const char *path)
{
	char *s = kcm_read_file(path);

	kcm_diag("%s:\n%s", path, s ? s : "(unreadable)");
	free(s);
}

/* Number of muxes in the title line of /proc/net/kcm. */
static int mux_count(struct lines *ls)
{
	int n = -1;
	char want[64];

	ASSERT_GE(ls->n, 2);
	if (sscanf(ls->l[0], "*** KCM statistics (%d MUX) ****", &n) != 1)
		KCM_FAIL("title line \"%s\"", ls->l[0]);
	snprintf(want, sizeof(want), kcm_title_fmt, n);
	ASSERT_STREQ(ls->l[0], want);
	return n;
}

/* ---- helpers ------------------------------------------------------------ */

struct mux {
	int kcm, prog;
	int peer, tcp;
};

static void mux_with_psock(struct mux *m, int type)
{
	m->kcm = kcm_socket(type);
	m->prog = kcm_prog_len32();
	kcm_tcp_pair(AF_INET, &m->peer, &m->tcp);
	ASSERT_OK(kcm_attach(m->kcm, m->tcp, m->prog));
}

/* Send messages of @sizes one at a time, reading each before the next. */
static void lockstep(struct mux *m, const size_t *sizes, int n,
		     long long *bytes)
{
	char msg[4096], got[4096];
	int i;

	*bytes = 0;
	for (i = 0; i < n; i++) {
		kcm_msg_build(msg, sizes[i], 0, i);
		kcm_write_all(m->peer, msg, sizes[i]);
		ASSERT_EQ(kcm_recv_timeout(m->kcm, got, sizeof(got), 0, 5000),
			  sizes[i]);
		*bytes += sizes[i];
	}
}

/* ---- cases ---------------------------------------------------------------- */

KCM_TEST(proc_files_exist)
{
	int fd = kcm_socket(SOCK_DGRAM);
	struct lines a, b;

	read_lines(PROC_KCM, &a);
	read_lines(PROC_STATS, &b);
	ASSERT_GE(a.n, 2);
	ASSERT_EQ(b.n, 4);
	ASSERT_GE(mux_count(&a), 1);
	close(fd);
}

KCM_TEST(proc_kcm_header)
{
	char want[512];
	char *s;

	kcm_new_netns();
	s = kcm_read_file(PROC_KCM);
	ASSERT_TRUE(s);
	/* An empty namespace: just the two header lines. */
	snprintf(want, sizeof(want), kcm_title_fmt, 0);
	strcat(want, "\n");
	strcat(want, kcm_hdr);
	strcat(want, "\n");
	ASSERT_STREQ(s, want);
}

KCM_TEST(proc_stats_header)
{
	struct lines ls;
	char c[512], *t[MAX_TOKS];
	int i;

	kcm_new_netns();
	read_lines(PROC_STATS, &ls);
	ASSERT_EQ(ls.n, 4);
	ASSERT_STREQ(ls.l[0], mux_hdr);
	ASSERT_STREQ(ls.l[2], psock_hdr);
	/* One value per column but the label, all zero in a new namespace. */
	ASSERT_EQ(tokens(ls.l[1], c, sizeof(c), t),
		  tokens(mux_hdr, c, sizeof(c), t) - 1);
	ASSERT_EQ(tokens(ls.l[3], c, sizeof(c), t),
		  tokens(psock_hdr, c, sizeof(c), t) - 1);
	for (i = 1; i < 3; i += 2) {
		int n = tokens(ls.l[i], c, sizeof(c), t), k;

		for (k = 0; k < n; k++)
			ASSERT_STREQ(t[k], "0");
	}
}

/* A mux row, then its KCM socket rows, then its psock rows. */
KCM_TEST(proc_mux_rows)
{
	struct lines ls;
	struct mux m;
	int c, other, i, found = 0;

	kcm_new_netns();
	mux_with_psock(&m, SOCK_DGRAM);
	c = ASSERT_OK(kcm_clone(m.kcm));
	other = kcm_socket(SOCK_SEQPACKET);
	read_lines(PROC_KCM, &ls);
	ASSERT_EQ(mux_count(&ls), 2);
	ASSERT_STREQ(ls.l[1], kcm_hdr);
	ASSERT_EQ(ls.n, 2 + 1 + 2 + 1 + 1 + 1);
	for (i = 2; i < ls.n; i++) {
		if (!starts_with(ls.l[i], "mux "))
			continue;
		if (!strcmp(row_status(ls.l[i]), "KCMs: 2, Psocks 1")) {
			ASSERT_LT(i + 3, ls.n);
			ASSERT_TRUE(starts_with(ls.l[i + 1], "   kcm-"));
			ASSERT_TRUE(starts_with(ls.l[i + 2], "   kcm-"));
			ASSERT_TRUE(starts_with(ls.l[i + 3], "   psock-"));
			found |= 1;
		} else if (!strcmp(row_status(ls.l[i]), "KCMs: 1, Psocks 0")) {
			ASSERT_LT(i + 1, ls.n);
			ASSERT_TRUE(starts_with(ls.l[i + 1], "   kcm-"));
			found |= 2;
		} else {
			KCM_FAIL("unexpected mux row \"%s\"", ls.l[i]);
		}
		/* No traffic yet. */
		ASSERT_EQ(column(kcm_hdr, ls.l[i], "RX-Msgs", 1), 0);
		ASSERT_EQ(column(kcm_hdr, ls.l[i], "TX-Msgs", 1), 0);
	}
	if (found != 3) {
		dump(PROC_KCM);
		KCM_FAIL("mux rows found: mask %d of 3", found);
	}
	close(c);
	close(other);
}

static int count_prefix(struct lines *ls, const char *p)
{
	int i, n = 0;

	for (i = 2; i < ls->n; i++)
		n += starts_with(ls->l[i], p);
	return n;
}

static void expect_status(const char *want)
{
	struct lines ls;
	int i;

	read_lines(PROC_KCM, &ls);
	ASSERT_EQ(mux_count(&ls), 1);
	for (i = 2; i < ls.n; i++)
		if (starts_with(ls.l[i], "mux "))
			break;
	ASSERT_LT(i, ls.n);
	ASSERT_STREQ(row_status(ls.l[i]), want);
	free(ls.buf);
}

/* The rows follow clones, attaches, unattaches and closes. */
KCM_TEST(proc_rows_follow_changes)
{
	int kcm, c, prog, p1, t1, p2, t2;
	long long t0;
	struct lines ls;

	kcm_new_netns();
	prog = kcm_prog_len32();
	kcm = kcm_socket(SOCK_DGRAM);
	expect_status("KCMs: 1, Psocks 0");
	c = ASSERT_OK(kcm_clone(kcm));
	expect_status("KCMs: 2, Psocks 0");
	kcm_tcp_pair(AF_INET, &p1, &t1);
	kcm_tcp_pair(AF_INET6, &p2, &t2);
	ASSERT_OK(kcm_attach(kcm, t1, prog));
	expect_status("KCMs: 2, Psocks 1");
	ASSERT_OK(kcm_attach(c, t2, prog));
	expect_status("KCMs: 2, Psocks 2");
	read_lines(PROC_KCM, &ls);
	ASSERT_EQ(count_prefix(&ls, "   kcm-"), 2);
	ASSERT_EQ(count_prefix(&ls, "   psock-"), 2);
	ASSERT_OK(kcm_unattach(kcm, t1));
	expect_status("KCMs: 2, Psocks 1");
	ASSERT_OK(close(kcm));
	expect_status("KCMs: 1, Psocks 1");
	ASSERT_OK(close(c));
	/* The mux goes away once its last KCM socket is closed. */
	t0 = kcm_now_ms();
	for (;;) {
		read_lines(PROC_KCM, &ls);
		if (mux_count(&ls) == 0 && ls.n == 2)
			break;
		if (kcm_now_ms() - t0 > 3000) {
			dump(PROC_KCM);
			KCM_FAIL("mux still listed 3 s after the last close");
		}
		free(ls.buf);
		kcm_msleep(50);
	}
}

/*
 * A mux is listed in the /proc/net/kcm of its own network namespace only.
 * The case process moves to a fresh namespace A and creates a mux with one
 * KCM socket; a child moves on to namespace B and creates a mux with three.
 */
KCM_TEST(proc_per_netns)
{
	int ready[2], done[2];
	struct lines ls;
	char path[64];
	pid_t pid;
	int kcm, st;
	char ch;

	kcm_new_netns();
	kcm = kcm_socket(SOCK_DGRAM);
	ASSERT_OK(pipe(ready));
	ASSERT_OK(pipe(done));
	pid = ASSERT_OK(fork());
	if (!pid) {
		int a, b, c;

		kcm_new_netns();
		a = kcm_socket(SOCK_SEQPACKET);
		b = ASSERT_OK(kcm_clone(a));
		c = ASSERT_OK(kcm_clone(a));
		read_lines(PROC_KCM, &ls);
		ASSERT_EQ(mux_count(&ls), 1);
		ASSERT_STREQ(row_status(ls.l[2]), "KCMs: 3, Psocks 0");
		ASSERT_EQ(write(ready[1], "r", 1), 1);
		ASSERT_EQ(read(done[0], &ch, 1), 1);
		close(a);
		close(b);
		close(c);
		_exit(0);
	}
	close(ready[1]);
	close(done[0]);
	ASSERT_EQ(read(ready[0], &ch, 1), 1);
	/* Namespace A: only our own mux. */
	read_lines(PROC_KCM, &ls);
	ASSERT_EQ(mux_count(&ls), 1);
	ASSERT_STREQ(row_status(ls.l[2]), "KCMs: 1, Psocks 0");
	/* Namespace B, seen through the child's /proc entry: only its mux. */
	snprintf(path, sizeof(path), "/proc/%d/net/kcm", pid);
	read_lines(path, &ls);
	ASSERT_EQ(mux_count(&ls), 1);
	ASSERT_STREQ(row_status(ls.l[2]), "KCMs: 3, Psocks 0");
	ASSERT_EQ(write(done[1], "d", 1), 1);
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
	close(kcm);
}

/*
 * K messages of B bytes in all on one psock: the psock row of
 * /proc/net/kcm, the row of the KCM socket that read them, and the Psock
 * totals of /proc/net/kcm_stats say K and B.
 */
static const size_t stat_sizes[] = { 16, 100, 1000, 2000, 17, 333, 4000 };
#define NSTAT ((int)(sizeof(stat_sizes) / sizeof(stat_sizes[0])))

static const char *row_of(struct lines *ls, const char *prefix)
{
	int i;

	for (i = 2; i < ls->n; i++)
		if (starts_with(ls->l[i], prefix))
			return ls->l[i];
	dump(PROC_KCM);
	KCM_FAIL("no row starting with \"%s\"", prefix);
}

KCM_TEST(proc_psock_counters)
{
	struct lines ls, st;
	const char *r;
	long long bytes;
	struct mux m;

	kcm_new_netns();
	mux_with_psock(&m, SOCK_DGRAM);
	lockstep(&m, stat_sizes, NSTAT, &bytes);
	kcm_msleep(50);

	read_lines(PROC_KCM, &ls);
	r = row_of(&ls, "   psock-");
	EXPECT_EQ(column(kcm_hdr, r, "RX-Msgs", 1), NSTAT);
	EXPECT_EQ(column(kcm_hdr, r, "RX-Bytes", 1), bytes);
	EXPECT_EQ(column(kcm_hdr, r, "TX-Msgs", 1), 0);
	EXPECT_EQ(column(kcm_hdr, r, "TX-Bytes", 1), 0);
	r = row_of(&ls, "   kcm-");
	EXPECT_EQ(column(kcm_hdr, r, "RX-Msgs", 1), NSTAT);
	EXPECT_EQ(column(kcm_hdr, r, "RX-Bytes", 1), bytes);
	EXPECT_EQ(column(kcm_hdr, r, "TX-Msgs", 1), 0);
	EXPECT_EQ(column(kcm_hdr, r, "Recv-Q", 1), 0);

	read_lines(PROC_STATS, &st);
	ASSERT_EQ(st.n, 4);
	EXPECT_EQ(column(psock_hdr, st.l[3], "RX-Msgs", 0), NSTAT);
	EXPECT_EQ(column(psock_hdr, st.l[3], "RX-Bytes", 0), bytes);
	EXPECT_EQ(column(psock_hdr, st.l[3], "TX-Msgs", 0), 0);
	EXPECT_EQ(column(psock_hdr, st.l[3], "RX-TooBig", 0), 0);
	EXPECT_EQ(column(mux_hdr, st.l[1], "Attach", 0), 1);
	EXPECT_EQ(column(mux_hdr, st.l[1], "Unattach", 0), 0);
	if (kcm_case_failed) {
		dump(PROC_KCM);
		dump(PROC_STATS);
	}
}

/*
 * Messages that arrive in one write are counted one by one, on the psock
 * and on the socket, and Recv-Q counts messages while they wait.
 */
KCM_TEST(proc_counters_one_write)
{
	enum { N = 200, SIZE = 64 };
	char *buf = kcm_xmalloc(N * SIZE);
	struct lines ls, st;
	const char *r;
	struct mux m;
	int i;

	kcm_new_netns();
	mux_with_psock(&m, SOCK_DGRAM);
	/* Room for all of them on Linux too, which charges each message the
	 * truesize of the whole TCP skb it came in.
	 */
	kcm_set_int_opt(m.kcm, SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20);
	for (i = 0; i < N; i++)
		kcm_msg_build(buf + i * SIZE, SIZE, 0, i);
	kcm_write_all(m.peer, buf, N * SIZE);
	ASSERT_TRUE(kcm_poll1(m.kcm, POLLIN, 5000) & POLLIN);
	kcm_msleep(100);

	read_lines(PROC_KCM, &ls);
	r = row_of(&ls, "   kcm-");
	EXPECT_EQ(column(kcm_hdr, r, "Recv-Q", 1), N);
	EXPECT_GT(column(kcm_hdr, r, "Rmem", 1), N * SIZE);
	for (i = 0; i < N; i++)
		ASSERT_EQ(kcm_recv_timeout(m.kcm, buf, SIZE, 0, 5000), SIZE);

	read_lines(PROC_KCM, &ls);
	r = row_of(&ls, "   psock-");
	EXPECT_EQ(column(kcm_hdr, r, "RX-Msgs", 1), N);
	EXPECT_EQ(column(kcm_hdr, r, "RX-Bytes", 1), N * SIZE);
	r = row_of(&ls, "   kcm-");
	EXPECT_EQ(column(kcm_hdr, r, "RX-Msgs", 1), N);
	EXPECT_EQ(column(kcm_hdr, r, "RX-Bytes", 1), N * SIZE);
	EXPECT_EQ(column(kcm_hdr, r, "Recv-Q", 1), 0);
	EXPECT_EQ(column(kcm_hdr, r, "Rmem", 1), 0);
	read_lines(PROC_STATS, &st);
	EXPECT_EQ(column(psock_hdr, st.l[3], "RX-Msgs", 0), N);
	EXPECT_EQ(column(psock_hdr, st.l[3], "RX-Bytes", 0), N * SIZE);
	if (kcm_case_failed) {
		dump(PROC_KCM);
		dump(PROC_STATS);
	}
	free(buf);
}

/* The mux row of /proc/net/kcm and the MUX totals of kcm_stats. */
KCM_TEST(proc_mux_counters,
	 KCM_LINUX_BUG("mux RX-Bytes lags: a psock's last message is counted only when its next one starts"))
{
	struct lines ls, st;
	const char *r;
	long long bytes;
	struct mux m;

	kcm_new_netns();
	mux_with_psock(&m, SOCK_DGRAM);
	lockstep(&m, stat_sizes, NSTAT, &bytes);
	kcm_msleep(50);

	read_lines(PROC_KCM, &ls);
	r = row_of(&ls, "mux ");
	EXPECT_EQ(column(kcm_hdr, r, "RX-Msgs", 1), NSTAT);
	EXPECT_EQ(column(kcm_hdr, r, "RX-Bytes", 1), bytes);
	EXPECT_EQ(column(kcm_hdr, r, "TX-Msgs", 1), 0);
	read_lines(PROC_STATS, &st);
	EXPECT_EQ(column(mux_hdr, st.l[1], "RX-Msgs", 0), NSTAT);
	EXPECT_EQ(column(mux_hdr, st.l[1], "RX-Bytes", 0), bytes);
	EXPECT_EQ(column(mux_hdr, st.l[1], "TX-Msgs", 0), 0);
	if (kcm_case_failed) {
		dump(PROC_KCM);
		dump(PROC_STATS);
	}
}

/* kcm_stats totals cover the whole namespace's life, closed muxes too. */
KCM_TEST(proc_stats_survive_close)
{
	struct lines st;
	long long bytes, t0;
	struct mux m;

	kcm_new_netns();
	mux_with_psock(&m, SOCK_DGRAM);
	lockstep(&m, stat_sizes, NSTAT, &bytes);
	ASSERT_OK(kcm_unattach(m.kcm, m.tcp));
	close(m.kcm);
	t0 = kcm_now_ms();
	for (;;) {
		struct lines ls;

		read_lines(PROC_KCM, &ls);
		if (mux_count(&ls) == 0)
			break;
		if (kcm_now_ms() - t0 > 3000)
			KCM_FAIL("mux still listed 3 s after close");
		kcm_msleep(50);
	}
	read_lines(PROC_STATS, &st);
	EXPECT_EQ(column(psock_hdr, st.l[3], "RX-Msgs", 0), NSTAT);
	EXPECT_EQ(column(psock_hdr, st.l[3], "RX-Bytes", 0), bytes);
	EXPECT_EQ(column(mux_hdr, st.l[1], "Attach", 0), 1);
	if (kcm_case_failed)
		dump(PROC_STATS);
}

KCM_TEST(proc_stats_attach_counters)
{
	int kcm, prog, p[3], t[3], i;
	struct lines st;

	kcm_new_netns();
	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	for (i = 0; i < 3; i++) {
		kcm_tcp_pair(AF_INET, &p[i], &t[i]);
		ASSERT_OK(kcm_attach(kcm, t[i], prog));
	}
	/* Failed attaches do not count. */
	ASSERT_ERRNO(kcm_attach(kcm, t[0], prog), EALREADY);
	read_lines(PROC_STATS, &st);
	EXPECT_EQ(column(mux_hdr, st.l[1], "Attach", 0), 3);
	EXPECT_EQ(column(mux_hdr, st.l[1], "Unattach", 0), 0);
	EXPECT_EQ(column(mux_hdr, st.l[1], "UnattchRsvd", 0), 0);
	if (kcm_case_failed)
		dump(PROC_STATS);
}

/*
 * Unattaching a psock that no KCM socket has reserved for sending counts
 * under Unattach; UnattchRsvd is for reserved ones.
 */
KCM_TEST(proc_stats_unattach_counter,
	 KCM_LINUX_BUG("an unreserved psock's unattach is counted under UnattchRsvd"))
{
	int kcm, prog, p[3], t[3], i;
	struct lines st;

	kcm_new_netns();
	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	for (i = 0; i < 3; i++) {
		kcm_tcp_pair(AF_INET, &p[i], &t[i]);
		ASSERT_OK(kcm_attach(kcm, t[i], prog));
	}
	ASSERT_OK(kcm_unattach(kcm, t[1]));
	ASSERT_OK(kcm_unattach(kcm, t[2]));
	read_lines(PROC_STATS, &st);
	EXPECT_EQ(column(mux_hdr, st.l[1], "Attach", 0), 3);
	EXPECT_EQ(column(mux_hdr, st.l[1], "Unattach", 0), 2);
	EXPECT_EQ(column(mux_hdr, st.l[1], "UnattchRsvd", 0), 0);
	if (kcm_case_failed)
		dump(PROC_STATS);
}

/* ---- queues, status words and the other counters --------------------- */

/* The @n-th row (from 0) starting with @prefix. */
static const char *row_nth(struct lines *ls, const char *prefix, int n)
{
	int i;

	for (i = 2; i < ls->n; i++)
		if (starts_with(ls->l[i], prefix) && !n--)
			return ls->l[i];
	dump(PROC_KCM);
	KCM_FAIL("no row %d starting with \"%s\"", n, prefix);
}

/* Whether the status of a kcm or psock row has the word @w. */
static int has_word(const char *row, const char *w)
{
	char c[512], *t[MAX_TOKS];
	int i, n = tokens(row_status(row), c, sizeof(c), t);

	for (i = 0; i < n; i++)
		if (!strcmp(t[i], w))
			return 1;
	return 0;
}

/* The N of a "   kcm-N" or "   psock-N" row. */
static int row_index(const char *row)
{
	const char *dash = strchr(row, '-');

	if (!dash)
		KCM_FAIL("row \"%s\" has no index", row);
	return atoi(dash + 1);
}

/* Column @col of the Psock (@psock) or MUX row of /proc/net/kcm_stats. */
static long long stat_of(int psock, const char *col)
{
	struct lines st;
	long long v;

	read_lines(PROC_STATS, &st);
	ASSERT_EQ(st.n, 4);
	v = psock ? column(psock_hdr, st.l[3], col, 0) :
		    column(mux_hdr, st.l[1], col, 0);
	free(st.buf);
	return v;
}

#define PSOCK_STAT(col) stat_of(1, col)
#define MUX_STAT(col) stat_of(0, col)

/*
 * Waits up to 5 s for the @n-th row starting with @prefix to have (@want 1)
 * or lack (@want 0) the status word @w.
 */
static void wait_word(const char *prefix, int n, const char *w, int want)
{
	long long t0 = kcm_now_ms();
	struct lines ls;

	for (;;) {
		read_lines(PROC_KCM, &ls);
		if (has_word(row_nth(&ls, prefix, n), w) == want)
			break;
		free(ls.buf);
		if (kcm_now_ms() - t0 > 5000) {
			dump(PROC_KCM);
			KCM_FAIL("%s%d: status word %s still %s after 5 s",
				 prefix, n, w, want ? "missing" : "there");
		}
		kcm_msleep(20);
	}
	free(ls.buf);
}

/* Waits up to 5 s for kcm_stats' Psock column @col to reach @v. */
static void wait_psock_stat(const char *col, long long v)
{
	long long t0 = kcm_now_ms();

	while (PSOCK_STAT(col) < v) {
		if (kcm_now_ms() - t0 > 5000) {
			dump(PROC_STATS);
			KCM_FAIL("Psock %s still below %lld after 5 s", col, v);
		}
		kcm_msleep(20);
	}
}

/*
 * While no psock has gone, the Psock totals of kcm_stats are the sums of
 * the psock rows of /proc/net/kcm, column by column.  Call when nothing
 * moves: the two files are not read at once.
 */
static void expect_totals_are_row_sums(void)
{
	static const char *const cols[] = {
		"RX-Msgs", "RX-Bytes", "TX-Msgs", "TX-Bytes",
	};
	struct lines ls;
	int c, i;

	read_lines(PROC_KCM, &ls);
	for (c = 0; c < 4; c++) {
		long long sum = 0;

		for (i = 2; i < ls.n; i++)
			if (starts_with(ls.l[i], "   psock-"))
				sum += column(kcm_hdr, ls.l[i], cols[c], 1);
		EXPECT_EQ(PSOCK_STAT(cols[c]), sum);
	}
	free(ls.buf);
}

static void kill_peer(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	ASSERT_OK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	ASSERT_OK(close(fd));
}

/* ---- receive side: a KCM socket that is full ---- */

enum { RX_NMSG = 12, RX_SIZE = 1000 };

/* A mux whose KCM socket has the smallest receive buffer. */
static void small_rcvbuf_mux(struct mux *m)
{
	kcm_new_netns();
	mux_with_psock(m, SOCK_DGRAM);
	kcm_set_int_opt(m->kcm, SOL_SOCKET, SO_RCVBUF, 1);
}

/*
 * The peer sends RX_NMSG messages of RX_SIZE bytes, more than the KCM
 * socket can hold, so that the psock ends up holding a message that no
 * socket can take, its parser paused.
 */
static void fill_kcm(struct mux *m)
{
	char msg[RX_SIZE];
	int i;

	for (i = 0; i < RX_NMSG; i++) {
		kcm_msg_build(msg, RX_SIZE, 0, i);
		kcm_write_all(m->peer, msg, RX_SIZE);
	}
	wait_word("   psock-", 0, "RdyRx", 1);
}

/* Reads one message of the peer's from @fd, which must be number @seq. */
static void expect_seq(int fd, uint32_t seq)
{
	char got[RX_SIZE + 16];
	uint32_t conn, q;

	ASSERT_EQ(kcm_recv_timeout(fd, got, sizeof(got), 0, 5000), RX_SIZE);
	ASSERT_EQ(kcm_msg_check(got, RX_SIZE, &conn, &q), 0);
	ASSERT_EQ(q, seq);
}

/*
 * A KCM socket with room is ready to receive (RxWait, as Linux names it: it
 * waits for messages); once full it is not, and the psock that holds a
 * message for it is paused (RxPause) with a message ready (RdyRx).  When
 * the reader has drained the socket every message has come, in order, and
 * the states are gone.
 */
KCM_TEST(proc_status_rx_full)
{
	struct lines ls;
	const char *r;
	struct mux m;
	int i, queued;

	small_rcvbuf_mux(&m);
	read_lines(PROC_KCM, &ls);
	EXPECT_STREQ(row_status(row_of(&ls, "   kcm-")), "RxWait ");
	EXPECT_STREQ(row_status(row_of(&ls, "   psock-")), "");

	fill_kcm(&m);
	read_lines(PROC_KCM, &ls);
	r = row_of(&ls, "   kcm-");
	EXPECT_FALSE(has_word(r, "RxWait"));
	queued = column(kcm_hdr, r, "Recv-Q", 1);
	EXPECT_GE(queued, 1);
	EXPECT_LT(queued, RX_NMSG);
	r = row_of(&ls, "   psock-");
	EXPECT_TRUE(has_word(r, "RxPause"));
	EXPECT_TRUE(has_word(r, "RdyRx"));
	/*
	 * Held messages are parsed already: counted, not yet delivered.
	 * Linux holds one; ours may hold the rest of the pass that filled
	 * the socket.
	 */
	EXPECT_GE(column(kcm_hdr, r, "RX-Msgs", 1), queued + 1);
	EXPECT_LE(column(kcm_hdr, r, "RX-Msgs", 1), RX_NMSG);
	if (kcm_case_failed)
		dump(PROC_KCM);

	for (i = 0; i < RX_NMSG; i++)
		expect_seq(m.kcm, i);
	/* Linux settles after the last read (its psock shows RxWait while
	 * TCP still queues what its parser took; seen once on 6.12).
	 */
	wait_word("   kcm-", 0, "RxWait", 1);
	wait_word("   psock-", 0, "RxWait", 0);
	read_lines(PROC_KCM, &ls);
	r = row_of(&ls, "   kcm-");
	EXPECT_STREQ(row_status(r), "RxWait ");
	EXPECT_EQ(column(kcm_hdr, r, "Recv-Q", 1), 0);
	EXPECT_EQ(column(kcm_hdr, r, "RX-Msgs", 1), RX_NMSG);
	r = row_of(&ls, "   psock-");
	EXPECT_STREQ(row_status(r), "");
	EXPECT_EQ(column(kcm_hdr, r, "RX-Msgs", 1), RX_NMSG);
	EXPECT_EQ(MUX_STAT("RX-RdyDrops"), 0);
	if (kcm_case_failed)
		dump(PROC_KCM);
}

/*
 * Unattaching the psock while it holds a message ready for a full socket
 * loses nothing: each message arrives exactly once, in order, on the KCM
 * socket (the held one once the reader makes room) or, not yet parsed, on
 * the TCP socket, which is a plain TCP socket again (kcm.rst: every byte
 * not part of a delivered message stays readable on it).  RX-RdyDrops,
 * which counts ready messages dropped so, stays 0.
 */
KCM_TEST(proc_rdydrops_unattach,
	 KCM_LINUX_BUG("a message held ready on a psock is dropped at unattach (RX-RdyDrops)"))
{
	char buf[RX_SIZE];
	uint32_t next = 0, conn, q;
	ssize_t n;
	struct mux m;

	small_rcvbuf_mux(&m);
	fill_kcm(&m);
	ASSERT_OK(kcm_unattach(m.kcm, m.tcp));
	EXPECT_EQ(MUX_STAT("RX-RdyDrops"), 0);

	/* What the KCM socket has, then what is left on the TCP socket. */
	while ((n = kcm_recv_timeout(m.kcm, buf, sizeof(buf), 0, 1000)) >= 0) {
		ASSERT_EQ(n, RX_SIZE);
		ASSERT_EQ(kcm_msg_check(buf, n, &conn, &q), 0);
		ASSERT_EQ(q, next);
		next++;
	}
	ASSERT_EQ(errno, EAGAIN);
	KCM_LOG("%u messages on the KCM socket", next);
	kcm_set_nonblock(m.tcp, 1);
	while (next < RX_NMSG) {
		n = recv(m.tcp, buf, sizeof(buf), MSG_WAITALL);
		if (n < 0)
			KCM_FAIL("message %u is neither on the KCM nor on the TCP socket: %s",
				 next, kcm_errname(errno));
		ASSERT_EQ(n, RX_SIZE);
		ASSERT_EQ(kcm_msg_check(buf, n, &conn, &q), 0);
		ASSERT_EQ(q, next);
		next++;
	}
	ASSERT_ERRNO(recv(m.tcp, buf, sizeof(buf), 0), EAGAIN);
	EXPECT_EQ(MUX_STAT("RX-RdyDrops"), 0);
	if (kcm_case_failed)
		dump(PROC_STATS);
}

/* KCM_RECV_DISABLE: the socket is not ready (no RxWait) but RxDis. */
KCM_TEST(proc_status_rx_disabled, KCM_EXT)
{
	struct lines ls;
	struct mux m;
	int c;

	kcm_new_netns();
	mux_with_psock(&m, SOCK_DGRAM);
	c = ASSERT_OK(kcm_clone(m.kcm));
	kcm_set_int_opt(c, SOL_KCM, KCM_RECV_DISABLE, 1);
	read_lines(PROC_KCM, &ls);
	EXPECT_STREQ(row_status(row_nth(&ls, "   kcm-", 0)), "RxWait ");
	EXPECT_STREQ(row_status(row_nth(&ls, "   kcm-", 1)), "RxDis ");
	kcm_set_int_opt(c, SOL_KCM, KCM_RECV_DISABLE, 0);
	read_lines(PROC_KCM, &ls);
	EXPECT_STREQ(row_status(row_nth(&ls, "   kcm-", 1)), "RxWait ");
	if (kcm_case_failed)
		dump(PROC_KCM);
}

/* ---- transmit side: TCP cannot take more ---- */

enum { TX_SIZE = 2000 };

struct backlog {
	struct mux m;
	int accepted;		/* messages the KCM socket took */
	int sendq;		/* of the kcm row, once settled */
	int psock_tx;		/* the psock row's TX-Msgs, once settled */
	struct lines ls;	/* /proc/net/kcm, once settled */
};

/*
 * A psock whose TCP socket has a small send buffer, towards a peer with a
 * small receive buffer that reads nothing; the KCM socket is sent messages
 * of TX_SIZE bytes until it refuses more.  Then the messages are partly in
 * TCP (the psock's Send-Q) and partly on the KCM socket (the kcm row's
 * Send-Q): together with those TCP took whole, all the KCM socket took.
 */
static void backlog(struct backlog *b)
{
	char msg[TX_SIZE];
	long long t0;

	kcm_new_netns();
	b->m.kcm = kcm_socket(SOCK_DGRAM);
	b->m.prog = kcm_prog_len32();
	kcm_tcp_pair_tiny(&b->m.tcp, &b->m.peer);
	ASSERT_OK(kcm_attach(b->m.kcm, b->m.tcp, b->m.prog));

	kcm_set_nonblock(b->m.kcm, 1);
	for (b->accepted = 0;; b->accepted++) {
		ssize_t n;

		kcm_msg_build(msg, TX_SIZE, 0, b->accepted);
		n = send(b->m.kcm, msg, TX_SIZE, 0);
		if (n < 0) {
			ASSERT_EQ(errno, EAGAIN);
			break;
		}
		ASSERT_EQ(n, TX_SIZE);
	}
	KCM_LOG("the KCM socket took %d messages", b->accepted);
	ASSERT_GT(b->accepted, 2);

	/* The transmit work may still be pushing what TCP has room for. */
	t0 = kcm_now_ms();
	for (;;) {
		read_lines(PROC_KCM, &b->ls);
		b->sendq = column(kcm_hdr, row_of(&b->ls, "   kcm-"),
				  "Send-Q", 1);
		b->psock_tx = column(kcm_hdr, row_of(&b->ls, "   psock-"),
				     "TX-Msgs", 1);
		if (b->sendq + b->psock_tx == b->accepted)
			break;
		if (kcm_now_ms() - t0 > 5000) {
			dump(PROC_KCM);
			KCM_FAIL("kcm Send-Q %d + psock TX-Msgs %d is not %d",
				 b->sendq, b->psock_tx, b->accepted);
		}
		free(b->ls.buf);
		kcm_msleep(20);
	}
}

/* The peer on @fd reads @n messages of TX_SIZE bytes, numbered from 0. */
static void peer_reads(int fd, int n)
{
	char got[TX_SIZE];
	uint32_t conn, q;
	int i;

	kcm_set_rcvtimeo(fd, 5000);
	for (i = 0; i < n; i++) {
		kcm_read_all(fd, got, TX_SIZE);
		ASSERT_EQ(kcm_msg_check(got, TX_SIZE, &conn, &q), 0);
		ASSERT_EQ(q, (uint32_t)i);
	}
}

/*
 * The KCM socket keeps its psock reserved while its messages wait (Psck-N
 * on the kcm row names the psock, Rsvd-N on the psock row the socket);
 * a second KCM socket with a message to send waits for a psock (TxWait).
 * Once the peer reads, everything goes out and the states are gone, and
 * every reservation has ended.
 */
KCM_TEST(proc_status_tx_backlog)
{
	const char *k, *p;
	struct backlog b;
	struct lines ls;
	char msg[TX_SIZE], want[32];
	int c, c_index, i;

	backlog(&b);
	k = row_of(&b.ls, "   kcm-");
	p = row_of(&b.ls, "   psock-");
	EXPECT_GE(b.sendq, 1);
	EXPECT_GE(column(kcm_hdr, p, "Send-Q", 1), 1);
	snprintf(want, sizeof(want), "Psck-%d", row_index(p));
	EXPECT_TRUE(has_word(k, want));
	EXPECT_FALSE(has_word(k, "TxWait"));
	snprintf(want, sizeof(want), "Rsvd-%d", row_index(k));
	EXPECT_TRUE(has_word(p, want));
	EXPECT_FALSE(has_word(p, "TxStop"));

	c = ASSERT_OK(kcm_clone(b.m.kcm));
	kcm_msg_build(msg, TX_SIZE, 0, b.accepted);
	ASSERT_EQ(send(c, msg, TX_SIZE, MSG_DONTWAIT), TX_SIZE);
	read_lines(PROC_KCM, &ls);
	k = row_nth(&ls, "   kcm-", 1);
	c_index = row_index(k);
	EXPECT_TRUE(has_word(k, "TxWait"));
	EXPECT_FALSE(starts_with(row_status(k), "Psck-"));
	EXPECT_EQ(column(kcm_hdr, k, "Send-Q", 1), 1);
	if (kcm_case_failed)
		dump(PROC_KCM);

	peer_reads(b.m.peer, b.accepted + 1);
	/* The second socket had the psock last. */
	snprintf(want, sizeof(want), "Rsvd-%d", c_index);
	wait_word("   psock-", 0, want, 0);
	read_lines(PROC_KCM, &ls);
	for (i = 0; i < 2; i++) {
		k = row_nth(&ls, "   kcm-", i);
		EXPECT_STREQ(row_status(k), "RxWait ");
		EXPECT_EQ(column(kcm_hdr, k, "Send-Q", 1), 0);
	}
	p = row_of(&ls, "   psock-");
	EXPECT_STREQ(row_status(p), "");
	EXPECT_EQ(column(kcm_hdr, p, "TX-Msgs", 1), b.accepted + 1);
	EXPECT_EQ(column(kcm_hdr, p, "TX-Bytes", 1),
		  (long long)(b.accepted + 1) * TX_SIZE);
	/*
	 * The first socket's queue may have run empty between its sends
	 * (TCP took each whole until it filled up), ending its reservation
	 * and starting another: at least its one and the second socket's.
	 */
	EXPECT_GE(PSOCK_STAT("Reserved"), 2);
	EXPECT_EQ(PSOCK_STAT("Unreserved"), PSOCK_STAT("Reserved"));
	expect_totals_are_row_sums();
	if (kcm_case_failed) {
		dump(PROC_KCM);
		dump(PROC_STATS);
	}
}

/*
 * A message sent while no TCP socket is attached waits on the KCM socket
 * (Send-Q 1), which waits for a psock (TxWait); attaching one sends it.
 */
KCM_TEST(proc_status_tx_wait_no_psock)
{
	char msg[200], got[200];
	struct lines ls;
	const char *r;
	struct mux m;

	kcm_new_netns();
	m.kcm = kcm_socket(SOCK_DGRAM);
	m.prog = kcm_prog_len32();
	kcm_msg_build(msg, sizeof(msg), 0, 0);
	ASSERT_EQ(send(m.kcm, msg, sizeof(msg), 0), sizeof(msg));
	read_lines(PROC_KCM, &ls);
	r = row_of(&ls, "   kcm-");
	EXPECT_STREQ(row_status(r), "TxWait RxWait ");
	EXPECT_EQ(column(kcm_hdr, r, "Send-Q", 1), 1);

	kcm_tcp_pair(AF_INET, &m.peer, &m.tcp);
	ASSERT_OK(kcm_attach(m.kcm, m.tcp, m.prog));
	kcm_set_rcvtimeo(m.peer, 5000);
	kcm_read_all(m.peer, got, sizeof(got));
	ASSERT_MEMEQ(got, msg, sizeof(msg));
	wait_word("   kcm-", 0, "TxWait", 0);
	read_lines(PROC_KCM, &ls);
	r = row_of(&ls, "   kcm-");
	EXPECT_STREQ(row_status(r), "RxWait ");
	EXPECT_EQ(column(kcm_hdr, r, "Send-Q", 1), 0);
	EXPECT_EQ(PSOCK_STAT("Reserved"), 1);
	if (kcm_case_failed)
		dump(PROC_KCM);
}

/*
 * Ours prints the memory of a KCM socket's queued messages (Smem: its
 * sk_wmem_queued) where Linux prints "-", and a psock's Smem is its TCP
 * socket's sk_wmem_queued (Linux: sk_wmem_alloc), which covers the bytes
 * TCP has not had acknowledged.
 */
KCM_TEST(proc_smem_tx_backlog, KCM_EXT)
{
	const char *k, *p;
	struct backlog b;
	int outq;

	backlog(&b);
	k = row_of(&b.ls, "   kcm-");
	p = row_of(&b.ls, "   psock-");
	/* All queued messages but the first are whole in it. */
	EXPECT_GE(column(kcm_hdr, k, "Smem", 1),
		  (long long)(b.sendq - 1) * TX_SIZE + 1);
	ASSERT_OK(ioctl(b.m.tcp, SIOCOUTQ, &outq));
	EXPECT_GT(outq, 0);
	EXPECT_GE(column(kcm_hdr, p, "Smem", 1), outq);
	if (kcm_case_failed)
		dump(PROC_KCM);

	peer_reads(b.m.peer, b.accepted);
	wait_word("   kcm-", 0, "Psck-0", 0);
	read_lines(PROC_KCM, &b.ls);
	EXPECT_EQ(column(kcm_hdr, row_of(&b.ls, "   kcm-"), "Smem", 1), 0);
	if (kcm_case_failed)
		dump(PROC_KCM);
}

/*
 * A SOCK_DGRAM send is one message, for which the sending socket reserves
 * a psock and gives it back once TCP has taken it: Reserved and Unreserved
 * count one each per message.  Received messages are counted on the psock
 * they came from; the kcm_stats totals are the sums of the psock rows.
 */
KCM_TEST(proc_reserved_dgram)
{
	enum { NTX = 5, NRX = 3 };
	char msg[200], got[200];
	int kcm, prog, p[2], t[2], i;
	struct lines ls;
	const char *r;

	kcm_new_netns();
	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	/* One psock sends (the only one then), the other receives. */
	kcm_tcp_pair(AF_INET, &p[0], &t[0]);
	ASSERT_OK(kcm_attach(kcm, t[0], prog));
	kcm_set_rcvtimeo(p[0], 5000);
	for (i = 0; i < NTX; i++) {
		kcm_msg_build(msg, sizeof(msg), 0, i);
		ASSERT_EQ(send(kcm, msg, sizeof(msg), 0), sizeof(msg));
		kcm_read_all(p[0], got, sizeof(got));
		ASSERT_MEMEQ(got, msg, sizeof(msg));
	}
	kcm_tcp_pair(AF_INET, &p[1], &t[1]);
	ASSERT_OK(kcm_attach(kcm, t[1], prog));
	for (i = 0; i < NRX; i++) {
		kcm_msg_build(msg, sizeof(msg), 1, i);
		kcm_write_all(p[1], msg, sizeof(msg));
		ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0, 5000),
			  sizeof(got));
	}
	EXPECT_EQ(PSOCK_STAT("Reserved"), NTX);
	EXPECT_EQ(PSOCK_STAT("Unreserved"), NTX);
	read_lines(PROC_KCM, &ls);
	r = row_nth(&ls, "   psock-", 0);
	EXPECT_EQ(column(kcm_hdr, r, "TX-Msgs", 1), NTX);
	EXPECT_EQ(column(kcm_hdr, r, "TX-Bytes", 1), NTX * sizeof(msg));
	EXPECT_EQ(column(kcm_hdr, r, "RX-Msgs", 1), 0);
	r = row_nth(&ls, "   psock-", 1);
	EXPECT_EQ(column(kcm_hdr, r, "TX-Msgs", 1), 0);
	EXPECT_EQ(column(kcm_hdr, r, "RX-Msgs", 1), NRX);
	EXPECT_EQ(column(kcm_hdr, r, "RX-Bytes", 1), NRX * sizeof(msg));
	r = row_of(&ls, "   kcm-");
	EXPECT_EQ(column(kcm_hdr, r, "TX-Msgs", 1), NTX);
	EXPECT_EQ(column(kcm_hdr, r, "TX-Bytes", 1), NTX * sizeof(msg));
	EXPECT_STREQ(row_status(r), "RxWait ");
	expect_totals_are_row_sums();
	if (kcm_case_failed) {
		dump(PROC_KCM);
		dump(PROC_STATS);
	}
}

/*
 * A SOCK_SEQPACKET message sent in pieces is built on the KCM socket and
 * reserves a psock only once complete (MSG_EOR): one reservation a
 * message, none while it is being built.
 */
KCM_TEST(proc_reserved_seqpacket_pieces)
{
	enum { NMSG = 2, PIECE = 100 };
	char msg[3 * PIECE], got[3 * PIECE];
	struct lines ls;
	struct mux m;
	int i, j;

	kcm_new_netns();
	mux_with_psock(&m, SOCK_SEQPACKET);
	for (i = 0; i < NMSG; i++) {
		kcm_msg_build(msg, sizeof(msg), 0, i);
		for (j = 0; j < 3; j++) {
			ASSERT_EQ(send(m.kcm, msg + j * PIECE, PIECE,
				       j == 2 ? MSG_EOR : 0), PIECE);
			if (j == 2)
				break;
			read_lines(PROC_KCM, &ls);
			EXPECT_STREQ(row_status(row_of(&ls, "   kcm-")),
				     "RxWait ");
			EXPECT_STREQ(row_status(row_of(&ls, "   psock-")), "");
			EXPECT_EQ(PSOCK_STAT("Reserved"), i);
		}
		kcm_read_all(m.peer, got, sizeof(got));
		ASSERT_MEMEQ(got, msg, sizeof(msg));
	}
	EXPECT_EQ(PSOCK_STAT("Reserved"), NMSG);
	EXPECT_EQ(PSOCK_STAT("Unreserved"), NMSG);
	EXPECT_EQ(PSOCK_STAT("TX-Msgs"), NMSG);
	if (kcm_case_failed) {
		dump(PROC_KCM);
		dump(PROC_STATS);
	}
}

/*
 * Sends a @len-byte message on @kcm (directed at @cookie, if not 0) and
 * waits for its first bytes at @peer, whose side reads nothing: the message
 * is then begun on that connection, and stuck there.
 */
static void send_stuck(int kcm, int peer, unsigned char *msg, size_t len,
		       uint64_t cookie)
{
	unsigned char peek[64];

	kcm_msg_build(msg, len, 0, 0);
	if (cookie)
		ASSERT_EQ(kcm_send_directed(kcm, msg, len, cookie, 0),
			  (ssize_t)len);
	else
		ASSERT_EQ(send(kcm, msg, len, 0), (ssize_t)len);
	ASSERT_TRUE(kcm_poll1(peer, POLLIN, 5000) & POLLIN);
	ASSERT_GT(recv(peer, peek, sizeof(peek), MSG_PEEK), 0);
}

/*
 * A message half-way out on a connection that is reset: the application
 * unattaches the dead socket (as kcm.rst asks on POLLERR), and the message
 * goes again, whole, on the other connection.  Its first psock aborted a
 * message (TX-Aborts 1), and the mux moved one (TX-Retries 1).  Linux
 * counts both, but its kcm_stats never sums TX-Retries, and it adds an
 * unattached psock's counters to the totals before the abort that its
 * unattach counts.
 */
KCM_TEST(proc_tx_retry_and_abort, KCM_TIMEOUT(40),
	 KCM_LINUX_BUG("kcm_stats: TX-Retries never summed, and the TX-Abort counted at unattach is lost"))
{
	enum { BIG = 150000 };
	unsigned char *msg = kcm_xmalloc(BIG), *got = kcm_xmalloc(BIG);
	int kcm, a0, b0, a1, b1, prog;

	kcm_new_netns();
	prog = kcm_prog_len32();
	kcm = kcm_socket(SOCK_DGRAM);
	kcm_tcp_pair_tiny(&a0, &b0);
	ASSERT_OK(kcm_attach(kcm, a0, prog));

	/* Begun on connection 0, whose peer reads nothing. */
	send_stuck(kcm, b0, msg, BIG, 0);
	EXPECT_EQ(MUX_STAT("TX-Retries"), 0);
	EXPECT_EQ(PSOCK_STAT("TX-Aborts"), 0);

	kcm_tcp_pair(AF_INET, &a1, &b1);
	ASSERT_OK(kcm_attach(kcm, a1, prog));
	kill_peer(b0);
	ASSERT_TRUE(kcm_poll1(a0, 0, 3000) & POLLERR);
	ASSERT_OK(kcm_unattach(kcm, a0));
	kcm_set_rcvtimeo(b1, 5000);
	kcm_read_all(b1, got, BIG);
	ASSERT_MEMEQ(got, msg, BIG);

	EXPECT_EQ(MUX_STAT("TX-Retries"), 1);
	EXPECT_EQ(PSOCK_STAT("TX-Aborts"), 1);
	EXPECT_EQ(PSOCK_STAT("TX-Msgs"), 1);
	if (kcm_case_failed)
		dump(PROC_STATS);
	free(msg);
	free(got);
}

/*
 * A KCM socket closed while its message is half-way out on a connection
 * whose peer reads nothing: the stream, cut inside a message, is failed
 * with EPIPE (kcm.rst, "Sending"), and its psock counts the message it
 * aborted (TX-Aborts 1), as when the connection fails under a message.
 * A clone keeps the mux, and the psock, alive; the count is kept, once,
 * when the psock is unattached and the mux is gone.
 */
KCM_TEST(proc_tx_abort_on_close, KCM_TIMEOUT(40))
{
	enum { BIG = 150000 };
	unsigned char *msg = kcm_xmalloc(BIG);
	int kcm, clone, a0, b0, prog;
	long long t0;

	kcm_new_netns();
	prog = kcm_prog_len32();
	kcm = kcm_socket(SOCK_DGRAM);
	clone = ASSERT_OK(kcm_clone(kcm));
	kcm_tcp_pair_tiny(&a0, &b0);
	ASSERT_OK(kcm_attach(kcm, a0, prog));

	send_stuck(kcm, b0, msg, BIG, 0);
	EXPECT_EQ(PSOCK_STAT("TX-Aborts"), 0);

	ASSERT_OK(close(kcm));
	ASSERT_TRUE(kcm_poll1(a0, 0, 3000) & POLLERR);
	EXPECT_EQ(kcm_so_error(a0), EPIPE);
	EXPECT_EQ(PSOCK_STAT("TX-Aborts"), 1);
	EXPECT_EQ(PSOCK_STAT("TX-Msgs"), 0);

	ASSERT_OK(kcm_unattach(clone, a0));
	ASSERT_OK(close(clone));
	for (t0 = kcm_now_ms();; kcm_msleep(50)) {
		struct lines ls;
		int n;

		read_lines(PROC_KCM, &ls);
		n = mux_count(&ls);
		free(ls.buf);
		if (!n)
			break;
		if (kcm_now_ms() - t0 > 3000)
			KCM_FAIL("mux still listed 3 s after close");
	}
	EXPECT_EQ(PSOCK_STAT("TX-Aborts"), 1);
	if (kcm_case_failed)
		dump(PROC_STATS);
	free(msg);
}

/*
 * A message directed at a connection (KCM_ORIGIN) is half-way out on it
 * when it is reset: the message is dropped, never sent on another
 * (kcm.rst, "Sending on a chosen connection": no failover).  The psock
 * counts the abort (TX-Aborts 1), the mux no retry (TX-Retries 0), and the
 * other connection carries nothing of it, only the next message.
 */
KCM_TEST(proc_tx_abort_directed, KCM_EXT, KCM_TIMEOUT(40))
{
	enum { BIG = 150000, SMALL = 300 };
	unsigned char *msg = kcm_xmalloc(BIG);
	unsigned char small[SMALL], got[SMALL];
	socklen_t len = sizeof(uint64_t);
	int kcm, a0, b0, a1, b1, prog;
	uint64_t cookie = 0;

	kcm_new_netns();
	prog = kcm_prog_len32();
	kcm = kcm_socket(SOCK_DGRAM);
	kcm_tcp_pair_tiny(&a0, &b0);
	kcm_tcp_pair(AF_INET, &a1, &b1);
	ASSERT_OK(kcm_attach(kcm, a0, prog));
	ASSERT_OK(kcm_attach(kcm, a1, prog));
	ASSERT_OK(getsockopt(a0, SOL_SOCKET, SO_COOKIE, &cookie, &len));

	send_stuck(kcm, b0, msg, BIG, cookie);
	kill_peer(b0);
	ASSERT_TRUE(kcm_poll1(a0, 0, 3000) & POLLERR);

	/* Sent after the failover, or its push does the failover first. */
	kcm_msg_build(small, SMALL, 0, 1);
	ASSERT_EQ(send(kcm, small, SMALL, 0), SMALL);
	kcm_set_rcvtimeo(b1, 5000);
	kcm_read_all(b1, got, SMALL);
	ASSERT_MEMEQ(got, small, SMALL);
	kcm_msleep(200);
	EXPECT_ERRNO(recv(b1, got, 1, MSG_DONTWAIT), EAGAIN);

	EXPECT_EQ(PSOCK_STAT("TX-Aborts"), 1);
	EXPECT_EQ(MUX_STAT("TX-Retries"), 0);
	EXPECT_EQ(PSOCK_STAT("TX-Msgs"), 1);
	if (kcm_case_failed)
		dump(PROC_STATS);
	free(msg);
}

/*
 * A connection reset while idle: the mux sends nothing more on it (TxStop
 * on its psock row) and the next message goes on the other connection.
 */
KCM_TEST(proc_status_tx_stopped)
{
	int kcm, prog, a[2], b[2], i;
	char msg[200], got[200];
	struct lines ls;

	kcm_new_netns();
	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	for (i = 0; i < 2; i++) {
		kcm_tcp_pair(AF_INET, &a[i], &b[i]);
		ASSERT_OK(kcm_attach(kcm, a[i], prog));
	}
	kill_peer(b[0]);
	ASSERT_TRUE(kcm_poll1(a[0], 0, 3000) & POLLERR);
	kcm_msg_build(msg, sizeof(msg), 0, 0);
	ASSERT_EQ(send(kcm, msg, sizeof(msg), 0), sizeof(msg));
	kcm_set_rcvtimeo(b[1], 5000);
	kcm_read_all(b[1], got, sizeof(got));
	ASSERT_MEMEQ(got, msg, sizeof(msg));

	read_lines(PROC_KCM, &ls);
	EXPECT_TRUE(has_word(row_nth(&ls, "   psock-", 0), "TxStop"));
	EXPECT_FALSE(has_word(row_nth(&ls, "   psock-", 1), "TxStop"));
	EXPECT_EQ(column(kcm_hdr, row_nth(&ls, "   psock-", 1), "TX-Msgs", 1),
		  1);
	if (kcm_case_failed)
		dump(PROC_KCM);
}

/* ---- receive errors ---- */

/* A psock attached with @prog, @rcvbuf and @rcvtimeo_ms (0: defaults). */
static void psock_with(struct mux *m, int kcm, int prog, int rcvbuf,
		       int rcvtimeo_ms)
{
	m->kcm = kcm;
	m->prog = prog;
	kcm_tcp_pair(AF_INET, &m->peer, &m->tcp);
	if (rcvbuf)
		kcm_set_int_opt(m->tcp, SOL_SOCKET, SO_RCVBUF, rcvbuf);
	if (rcvtimeo_ms)
		kcm_set_rcvtimeo(m->tcp, rcvtimeo_ms);
	ASSERT_OK(kcm_attach(kcm, m->tcp, prog));
}

/* Waits for the error @err on the TCP socket of @m. */
static void expect_posted(struct mux *m, int err)
{
	int got;

	ASSERT_TRUE(kcm_poll1(m->tcp, 0, 10000) & POLLERR);
	got = kcm_so_error(m->tcp);
	if (got != err)
		KCM_FAIL("SO_ERROR %d %s, not %d %s", got, kcm_errname(got),
			 err, kcm_errname(err));
}

/* A header claiming twice the TCP socket's SO_RCVBUF: EMSGSIZE, and the
 * message is counted too big.
 */
static void too_big(struct mux *m)
{
	unsigned char hdr[64];
	unsigned int len;

	len = 2 * kcm_get_int_opt(m->tcp, SOL_SOCKET, SO_RCVBUF);
	memset(hdr, 0xab, sizeof(hdr));
	hdr[0] = len >> 24;
	hdr[1] = len >> 16;
	hdr[2] = len >> 8;
	hdr[3] = len;
	kcm_write_all(m->peer, hdr, sizeof(hdr));
	expect_posted(m, EMSGSIZE);
}

/* 50 bytes of a 200-byte message, and no more within SO_RCVTIMEO. */
static void timed_out(struct mux *m)
{
	char msg[200];

	kcm_msg_build(msg, sizeof(msg), 0, 0);
	kcm_write_all(m->peer, msg, 50);
	expect_posted(m, ETIMEDOUT);
}

KCM_TEST(proc_rx_too_big)
{
	struct mux m;

	kcm_new_netns();
	psock_with(&m, kcm_socket(SOCK_DGRAM), kcm_prog_len32(), 8192, 0);
	too_big(&m);
	EXPECT_EQ(PSOCK_STAT("RX-TooBig"), 1);
	EXPECT_EQ(PSOCK_STAT("RX-Timeout"), 0);
	EXPECT_EQ(PSOCK_STAT("RX-NeedMor"), 0);
	EXPECT_EQ(PSOCK_STAT("RX-Msgs"), 0);
	if (kcm_case_failed)
		dump(PROC_STATS);
}

KCM_TEST(proc_rx_timeout)
{
	struct mux m;

	kcm_new_netns();
	psock_with(&m, kcm_socket(SOCK_DGRAM), kcm_prog_len32(), 0, 300);
	timed_out(&m);
	EXPECT_EQ(PSOCK_STAT("RX-Timeout"), 1);
	EXPECT_EQ(PSOCK_STAT("RX-TooBig"), 0);
	/* The header was whole: the pass did not end inside it. */
	EXPECT_EQ(PSOCK_STAT("RX-NeedMor"), 0);
	EXPECT_EQ(PSOCK_STAT("RX-Msgs"), 0);
	if (kcm_case_failed)
		dump(PROC_STATS);
}

/*
 * 2 bytes of a 4-byte header wait on the TCP socket when it is attached:
 * the pass over them that attach starts ends inside the header (RX-NeedMor
 * 1).  The rest completes the message, which is delivered; that pass found
 * the header whole.  (The bytes are there before attach so that one pass
 * only sees them: attach's pass and a data-ready's could both see bytes
 * that arrive as attach returns.)
 */
KCM_TEST(proc_rx_need_more)
{
	char msg[200], got[200];
	struct mux m;

	kcm_new_netns();
	m.kcm = kcm_socket(SOCK_DGRAM);
	m.prog = kcm_prog_len32();
	kcm_tcp_pair(AF_INET, &m.peer, &m.tcp);
	kcm_msg_build(msg, sizeof(msg), 0, 0);
	kcm_write_all(m.peer, msg, 2);
	ASSERT_TRUE(kcm_poll1(m.tcp, POLLIN, 5000) & POLLIN);
	ASSERT_OK(kcm_attach(m.kcm, m.tcp, m.prog));
	wait_psock_stat("RX-NeedMor", 1);
	kcm_write_all(m.peer, msg + 2, sizeof(msg) - 2);
	ASSERT_EQ(kcm_recv_timeout(m.kcm, got, sizeof(got), 0, 5000),
		  sizeof(got));
	ASSERT_MEMEQ(got, msg, sizeof(msg));
	EXPECT_EQ(PSOCK_STAT("RX-NeedMor"), 1);
	EXPECT_EQ(PSOCK_STAT("RX-Msgs"), 1);
	EXPECT_EQ(PSOCK_STAT("RX-Timeout"), 0);
	if (kcm_case_failed)
		dump(PROC_STATS);
}

/*
 * RX-Aborts counts psocks whose parser stopped on an error: a program
 * error, a message too big, one that timed out.  Linux's stream parser
 * never counts it.
 */
KCM_TEST(proc_rx_aborts, KCM_EXT)
{
	struct mux bad, big, slow;
	int kcm, prog;
	char msg[200];

	kcm_new_netns();
	kcm = kcm_socket(SOCK_DGRAM);
	prog = kcm_prog_len32();
	psock_with(&bad, kcm, kcm_prog_const(-EBADMSG), 0, 0);
	psock_with(&big, kcm, prog, 8192, 0);
	psock_with(&slow, kcm, prog, 0, 300);
	EXPECT_EQ(PSOCK_STAT("RX-Aborts"), 0);

	kcm_msg_build(msg, sizeof(msg), 0, 0);
	kcm_write_all(bad.peer, msg, sizeof(msg));
	expect_posted(&bad, EBADMSG);
	EXPECT_EQ(PSOCK_STAT("RX-Aborts"), 1);
	too_big(&big);
	EXPECT_EQ(PSOCK_STAT("RX-Aborts"), 2);
	timed_out(&slow);
	EXPECT_EQ(PSOCK_STAT("RX-Aborts"), 3);
	EXPECT_EQ(PSOCK_STAT("RX-TooBig"), 1);
	EXPECT_EQ(PSOCK_STAT("RX-Timeout"), 1);
	/* The counters of a psock stay in the totals once it is gone. */
	ASSERT_OK(kcm_unattach(kcm, bad.tcp));
	EXPECT_EQ(PSOCK_STAT("RX-Aborts"), 3);
	if (kcm_case_failed)
		dump(PROC_STATS);
}
