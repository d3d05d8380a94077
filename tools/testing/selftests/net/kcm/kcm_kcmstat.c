// SPDX-License-Identifier: GPL-2.0
/*
 * kcmstat (tools/kcmstat): its parser and output against the real
 * /proc/net/kcm and /proc/net/kcm_stats of the module under test, and the
 * kcmstat binary itself when the VM has it (/samples/kcmstat, or $KCMSTAT).
 *
 * Each case moves into a fresh network namespace first, so only its own
 * mux shows up.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>

#include "kcm_test.h"
#include "kcmstat.h"

#define MSG 100

struct rig {
	int kcm[3];
	int peer[2], tcp[2];
};

/* A mux of 3 KCM sockets and 2 attached TCP sockets. */
static void rig_up(struct rig *r)
{
	int prog, i;

	kcm_new_netns();
	r->kcm[0] = kcm_socket(SOCK_DGRAM);
	r->kcm[1] = ASSERT_OK(kcm_clone(r->kcm[0]));
	r->kcm[2] = ASSERT_OK(kcm_clone(r->kcm[0]));
	prog = kcm_prog_len32();
	for (i = 0; i < 2; i++) {
		kcm_tcp_pair(AF_INET, &r->peer[i], &r->tcp[i]);
		ASSERT_OK(kcm_attach(r->kcm[0], r->tcp[i], prog));
	}
	close(prog);
}

/* @n messages in on connection @c, one at a time (fine for Linux too). */
static void rig_rx(struct rig *r, int c, int n)
{
	char m[MSG], b[2 * MSG];
	int i, k;

	for (i = 0; i < n; i++) {
		kcm_msg_build(m, MSG, (uint32_t)c, (uint32_t)i);
		kcm_write_all(r->peer[c], m, MSG);
		for (k = 0;; k = (k + 1) % 3) {
			if (kcm_recv_timeout(r->kcm[k], b, sizeof(b), 0,
					     k == 2 ? 50 : 0) == MSG)
				break;
			if (k == 2 && errno != EAGAIN)
				KCM_FAIL("recv: %s", kcm_errname(errno));
		}
	}
}

/* @n messages out from KCM socket 0, read back on whichever peer. */
static void rig_tx(struct rig *r, int n)
{
	char m[MSG], b[MSG];
	int i, got = 0;

	for (i = 0; i < n; i++) {
		kcm_msg_build(m, MSG, 9, (uint32_t)i);
		ASSERT_EQ(send(r->kcm[0], m, MSG, 0), MSG);
	}
	while (got < n) {
		int c;

		for (c = 0; c < 2 && got < n; c++) {
			if (kcm_poll1(r->peer[c], POLLIN, 20) & POLLIN) {
				kcm_read_all(r->peer[c], b, MSG);
				got++;
			}
		}
	}
}

static void snap(struct kcmstat_snap *s)
{
	char err[256];

	if (kcmstat_read(s, NULL, err, sizeof(err)) < 0)
		KCM_FAIL("kcmstat_read: %s", err);
}

static int count_kind(const struct kcmstat_snap *s, enum kcmstat_kind k)
{
	int i, n = 0;

	for (i = 0; i < s->nobj; i++)
		n += s->obj[i].kind == k;
	return n;
}

static uint64_t sum_of(const struct kcmstat_snap *s, enum kcmstat_kind k,
		       size_t field)
{
	uint64_t t = 0;
	int i;

	for (i = 0; i < s->nobj; i++)
		if (s->obj[i].kind == k)
			t += *(const uint64_t *)((const char *)&s->obj[i] +
						 field);
	return t;
}

#define SUM(s, k, f) sum_of(s, k, offsetof(struct kcmstat_obj, f))

static void dump_proc(void)
{
	char *a = kcm_read_file("/proc/net/kcm");
	char *b = kcm_read_file("/proc/net/kcm_stats");

	kcm_diag("/proc/net/kcm:\n%s", a ? a : "(none)");
	kcm_diag("/proc/net/kcm_stats:\n%s", b ? b : "(none)");
	free(a);
	free(b);
}

KCM_TEST(kcmstat_empty_namespace)
{
	struct kcmstat_snap s;

	kcm_new_netns();
	snap(&s);
	EXPECT_EQ(s.title_muxes, 0);
	EXPECT_EQ(s.nmux, 0);
	EXPECT_EQ(s.nobj, 0);
	EXPECT_EQ(kcmstat_stat(&s, "MUX", "Attach"), 0);
	EXPECT_EQ(kcmstat_stat(&s, "Psock", "RX-Msgs"), 0);
	EXPECT_EQ(kcmstat_stat(&s, "Psock", "No-Such-Column"), -1);
	kcmstat_free(&s);
}

KCM_TEST(kcmstat_live_mux)
{
	struct kcmstat_snap s;
	const struct kcmstat_obj *mux;
	struct rig r;
	uint64_t a, b;
	int i;

	rig_up(&r);
	rig_rx(&r, 0, 4);
	rig_rx(&r, 1, 2);
	rig_tx(&r, 3);
	kcm_msleep(50);
	snap(&s);

	EXPECT_EQ(s.title_muxes, 1);
	ASSERT_EQ(s.nmux, 1);
	mux = kcmstat_find(&s, 0, "mux");
	ASSERT_TRUE(mux);
	EXPECT_EQ(mux->kcms, 3);
	EXPECT_EQ(mux->psocks, 2);
	EXPECT_EQ(mux->recv_q, -1);	/* "-" */
	EXPECT_EQ(count_kind(&s, KCMSTAT_KCM), 3);
	EXPECT_EQ(count_kind(&s, KCMSTAT_PSOCK), 2);
	EXPECT_EQ(count_kind(&s, KCMSTAT_OTHER), 0);
	EXPECT_EQ(SUM(&s, KCMSTAT_KCM, rx_msgs), 6);
	EXPECT_EQ(SUM(&s, KCMSTAT_KCM, rx_bytes), 6 * MSG);
	EXPECT_EQ(SUM(&s, KCMSTAT_KCM, tx_msgs), 3);
	EXPECT_EQ(SUM(&s, KCMSTAT_KCM, tx_bytes), 3 * MSG);
	EXPECT_EQ(SUM(&s, KCMSTAT_PSOCK, rx_msgs), 6);
	EXPECT_EQ(SUM(&s, KCMSTAT_PSOCK, rx_bytes), 6 * MSG);
	EXPECT_EQ(SUM(&s, KCMSTAT_PSOCK, tx_msgs), 3);
	/* One psock got 4 messages, the other 2. */
	a = b = 0;
	for (i = 0; i < s.nobj; i++) {
		if (s.obj[i].kind != KCMSTAT_PSOCK)
			continue;
		if (!a)
			a = s.obj[i].rx_msgs;
		else
			b = s.obj[i].rx_msgs;
		EXPECT_GE(s.obj[i].recv_q, 0);
		EXPECT_EQ(s.obj[i].mux, 0);
	}
	EXPECT_EQ(a * b, 8);
	EXPECT_EQ(a + b, 6);
	for (i = 0; i < s.nobj; i++)
		if (s.obj[i].kind == KCMSTAT_KCM)
			EXPECT_EQ(s.obj[i].recv_q, 0);
	EXPECT_EQ(kcmstat_stat(&s, "MUX", "Attach"), 2);
	EXPECT_EQ(kcmstat_stat(&s, "MUX", "Unattach"), 0);
	EXPECT_EQ(kcmstat_stat(&s, "Psock", "RX-Msgs"), 6);
	EXPECT_EQ(kcmstat_stat(&s, "Psock", "RX-Bytes"), 6 * MSG);
	EXPECT_EQ(kcmstat_stat(&s, "Psock", "TX-Msgs"), 3);
	EXPECT_EQ(kcmstat_stat(&s, "Psock", "RX-TooBig"), 0);
	if (kcm_case_failed)
		dump_proc();
	kcmstat_free(&s);
}

/* The mux row's own counters (Linux's lag: see kcm_proc). */
KCM_TEST(kcmstat_mux_row_counters,
	 KCM_LINUX_BUG("mux RX-Bytes lags: a psock's last message is counted only when its next one starts"))
{
	struct kcmstat_snap s;
	const struct kcmstat_obj *mux;
	struct rig r;

	rig_up(&r);
	rig_rx(&r, 0, 5);
	kcm_msleep(50);
	snap(&s);
	mux = kcmstat_find(&s, 0, "mux");
	ASSERT_TRUE(mux);
	EXPECT_EQ(mux->rx_msgs, 5);
	EXPECT_EQ(mux->rx_bytes, 5 * MSG);
	EXPECT_EQ(kcmstat_stat(&s, "MUX", "RX-Msgs"), 5);
	kcmstat_free(&s);
}

/* Unattach shows in the rows and the totals. */
KCM_TEST(kcmstat_unattach)
{
	struct kcmstat_snap s;
	struct rig r;

	rig_up(&r);
	rig_rx(&r, 1, 3);
	ASSERT_OK(kcm_unattach(r.kcm[0], r.tcp[0]));
	close(r.kcm[2]);
	snap(&s);
	ASSERT_TRUE(kcmstat_find(&s, 0, "mux"));
	EXPECT_EQ(kcmstat_find(&s, 0, "mux")->psocks, 1);
	EXPECT_EQ(kcmstat_find(&s, 0, "mux")->kcms, 2);
	EXPECT_EQ(count_kind(&s, KCMSTAT_PSOCK), 1);
	EXPECT_EQ(count_kind(&s, KCMSTAT_KCM), 2);
	EXPECT_EQ(SUM(&s, KCMSTAT_PSOCK, rx_msgs), 3);
	EXPECT_EQ(kcmstat_stat(&s, "MUX", "Attach"), 2);
	EXPECT_EQ(kcmstat_stat(&s, "MUX", "Unattach") +
		  kcmstat_stat(&s, "MUX", "UnattchRsvd"), 1);
	if (kcm_case_failed)
		dump_proc();
	kcmstat_free(&s);
}

static char *print_to_string(const struct kcmstat_snap *cur,
			     const struct kcmstat_snap *prev, int json)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ASSERT_TRUE(f);
	if (json)
		kcmstat_print_json(f, cur, prev);
	else
		kcmstat_print_table(f, cur, prev);
	fclose(f);
	return buf;
}

/* Rates between two samples, in the table and in the JSON. */
KCM_TEST(kcmstat_rates_and_output)
{
	struct kcmstat_snap s0, s1;
	const struct kcmstat_obj *p;
	struct rig r;
	char *t, *j;
	int i;

	rig_up(&r);
	snap(&s0);
	rig_rx(&r, 0, 10);
	snap(&s1);
	s0.time = s1.time - 2.0;	/* as if two seconds apart */
	t = print_to_string(&s1, &s0, 0);
	j = print_to_string(&s1, &s0, 1);
	KCM_LOG("table:\n%s", t);
	KCM_LOG("json: %s", j);
	EXPECT_TRUE(strstr(t, "RX-MSG/S"));
	EXPECT_TRUE(strstr(t, "mux 0"));
	EXPECT_TRUE(strstr(t, "3 KCM sockets, 2 psocks"));
	EXPECT_TRUE(strstr(j, "\"interval\":2.000"));
	EXPECT_TRUE(strstr(j, "\"kcms\":3,\"psocks\":2"));
	EXPECT_TRUE(strstr(j, "\"rates\":{\"rx_msgs\":5.0,\"rx_bytes\":500.0"));
	EXPECT_TRUE(strstr(j, "\"totals\":{\"MUX\":{"));
	EXPECT_EQ(j[strlen(j) - 1], '\n');
	EXPECT_TRUE(strchr(j, '\n') == j + strlen(j) - 1);	/* one line */
	/* The psock that carried the traffic: 10 messages in 2 s. */
	for (i = 0, p = NULL; i < s1.nobj; i++)
		if (s1.obj[i].kind == KCMSTAT_PSOCK && s1.obj[i].rx_msgs)
			p = &s1.obj[i];
	ASSERT_TRUE(p);
	EXPECT_EQ(p->rx_msgs, 10);
	free(t);
	free(j);
	kcmstat_free(&s0);
	kcmstat_free(&s1);
}

/* By column name: the parser does not care about the order or widths. */
KCM_TEST(kcmstat_parse_by_name)
{
	static const char kcm[] =
		"*** KCM statistics (1 MUX) ****\n"
		"Object TX-Bytes TX-Msgs Rmem Recv-Q RX-Bytes RX-Msgs Smem Send-Q Status\n"
		"mux 40 2 - - 300 3 - - KCMs: 1, Psocks 1\n"
		"   kcm-0 40 2 512 1 300 3 - 0 RxWait\n"
		"   psock-7 40 2 0 0 300 3 9 0 RxPause Rsvd-0\n";
	static const char stats[] =
		"MUX      Attach TX-Retries\n"
		"         4 1\n"
		"Psock    RX-Msgs\n"
		"         3\n";
	struct kcmstat_snap s;
	const struct kcmstat_obj *o;
	char err[128];

	ASSERT_OK(kcmstat_parse(&s, kcm, stats, err, sizeof(err)));
	ASSERT_EQ(s.nobj, 3);
	o = kcmstat_find(&s, 0, "kcm-0");
	ASSERT_TRUE(o);
	EXPECT_EQ(o->rx_msgs, 3);
	EXPECT_EQ(o->rx_bytes, 300);
	EXPECT_EQ(o->tx_msgs, 2);
	EXPECT_EQ(o->tx_bytes, 40);
	EXPECT_EQ(o->recv_q, 1);
	EXPECT_EQ(o->rmem, 512);
	EXPECT_EQ(o->smem, -1);
	EXPECT_STREQ(o->status, "RxWait");
	o = kcmstat_find(&s, 0, "psock-7");
	ASSERT_TRUE(o);
	EXPECT_EQ(o->kind, KCMSTAT_PSOCK);
	EXPECT_STREQ(o->status, "RxPause Rsvd-0");
	EXPECT_EQ(kcmstat_stat(&s, "MUX", "Attach"), 4);
	EXPECT_EQ(kcmstat_stat(&s, "MUX", "TX-Retries"), 1);
	EXPECT_EQ(kcmstat_stat(&s, "Psock", "RX-Msgs"), 3);
	kcmstat_free(&s);
	/* A missing column or title is an error, with a message. */
	EXPECT_EQ(kcmstat_parse(&s, "garbage\n", NULL, err, sizeof(err)), -1);
	EXPECT_TRUE(strstr(err, "title"));
	EXPECT_EQ(kcmstat_parse(&s, "*** KCM statistics (0 MUX) ****\n"
				"Object RX-Msgs\n", NULL, err, sizeof(err)), -1);
	EXPECT_TRUE(strstr(err, "RX-Bytes"));
}

/* The kcmstat binary, when the VM has it. */
static const char *kcmstat_bin(void)
{
	const char *p = getenv("KCMSTAT");

	if (p && access(p, X_OK) == 0)
		return p;
	if (access("/samples/kcmstat", X_OK) == 0)
		return "/samples/kcmstat";
	kcm_skip("no kcmstat binary (/samples/kcmstat or $KCMSTAT)");
}

static char *run_cmd(const char *cmd, int *status)
{
	char *buf = NULL;
	size_t len = 0, n;
	char chunk[4096];
	FILE *out = open_memstream(&buf, &len);
	FILE *p = popen(cmd, "r");

	ASSERT_TRUE(out);
	ASSERT_TRUE(p);
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		fwrite(chunk, 1, n, out);
	*status = pclose(p);
	fclose(out);
	return buf;
}

KCM_TEST(kcmstat_binary_watch_json, KCM_TIMEOUT(60))
{
	const char *bin = kcmstat_bin();
	char cmd[512], *out, *l;
	struct rig r;
	int st, lines = 0;

	rig_up(&r);
	rig_rx(&r, 0, 3);
	snprintf(cmd, sizeof(cmd), "%s -j -i 0.2 -c 3", bin);
	out = run_cmd(cmd, &st);
	KCM_LOG("%s", out);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (l = out; (l = strchr(l, '\n')); l++)
		lines++;
	EXPECT_EQ(lines, 3);
	EXPECT_EQ(out[0], '{');
	EXPECT_TRUE(strstr(out, "\"interval\":null"));
	EXPECT_TRUE(strstr(out, "\"kcms\":3,\"psocks\":2"));
	EXPECT_TRUE(strstr(out, "\"rates\":{"));
	free(out);

	snprintf(cmd, sizeof(cmd), "%s", bin);
	out = run_cmd(cmd, &st);
	kcm_diag("kcmstat:\n%s", out);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	EXPECT_TRUE(strstr(out, "3 KCM sockets, 2 psocks"));
	EXPECT_TRUE(strstr(out, "totals (kcm_stats): Attach 2"));
	free(out);

	snprintf(cmd, sizeof(cmd), "%s -c 0 2>/dev/null", bin);
	out = run_cmd(cmd, &st);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2);
	free(out);
}
