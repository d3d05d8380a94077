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
 * Value of column @col in @row, where @hdr is the header line naming the
 * columns.  @label: the row starts with a label token, as the header does
 * (rows of /proc/net/kcm); kcm_stats value rows have none.
 */
static long long column(const char *hdr, const char *row, const char *col,
			int label)
{
	char hc[512], rc[512], *ht[MAX_TOKS], *rt[MAX_TOKS], *end;
	int nh = tokens(hdr, hc, sizeof(hc), ht);
	int nr = tokens(row, rc, sizeof(rc), rt);
	int i, k;
	long long v;

	for (i = 0; i < nh; i++)
		if (!strcmp(ht[i], col))
			break;
	if (i == nh)
		KCM_FAIL("no column %s in \"%s\"", col, hdr);
	k = label ? i : i - 1;
	if (k < 0 || k >= nr)
		KCM_FAIL("row \"%s\" has no column %s", row, col);
	v = strtoll(rt[k], &end, 10);
	if (*end)
		KCM_FAIL("column %s of \"%s\" is \"%s\", not a number", col,
			 row, rt[k]);
	return v;
}

static int starts_with(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

/* The text after the 9 counter columns of a mux row ("KCMs: 2, Psocks 1"). */
static const char *mux_status(const char *row)
{
	const char *p = row;
	int field;

	/* label + 8 columns, then the status */
	for (field = 0; field < 9; field++) {
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
		if (!strcmp(mux_status(ls.l[i]), "KCMs: 2, Psocks 1")) {
			ASSERT_LT(i + 3, ls.n);
			ASSERT_TRUE(starts_with(ls.l[i + 1], "   kcm-"));
			ASSERT_TRUE(starts_with(ls.l[i + 2], "   kcm-"));
			ASSERT_TRUE(starts_with(ls.l[i + 3], "   psock-"));
			found |= 1;
		} else if (!strcmp(mux_status(ls.l[i]), "KCMs: 1, Psocks 0")) {
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
	ASSERT_STREQ(mux_status(ls.l[i]), want);
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
		ASSERT_STREQ(mux_status(ls.l[2]), "KCMs: 3, Psocks 0");
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
	ASSERT_STREQ(mux_status(ls.l[2]), "KCMs: 1, Psocks 0");
	/* Namespace B, seen through the child's /proc entry: only its mux. */
	snprintf(path, sizeof(path), "/proc/%d/net/kcm", pid);
	read_lines(path, &ls);
	ASSERT_EQ(mux_count(&ls), 1);
	ASSERT_STREQ(mux_status(ls.l[2]), "KCMs: 3, Psocks 0");
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
