// SPDX-License-Identifier: GPL-2.0
/*
 * /proc/net/kcm read in pieces (1, 100, 4096 bytes a read(), and sizes
 * that change from one read to the next) while muxes, KCM sockets and
 * psocks come and go between the reads or meanwhile in another thread.
 *
 * Every line of every dump must be a whole row of its kind, every row in
 * its place (a mux row, its KCM sockets', its psocks'), and every object
 * there from the first read to the last listed exactly once, in order,
 * under its own mux.  The objects are told apart by their counters: the
 * k-th stable psock of mux A has received k messages of 16 bytes, B's and
 * C's psocks 50 and 60.  Our module also lists what a dump reaches after it
 * came (a psock attached meanwhile, at the end of its mux) and not what
 * left before the dump reached it, with the counters of that moment.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "kcm_test.h"

#define PROC_KCM	"/proc/net/kcm"

/* Mux A: STABLE psocks, the k-th (from 1) with k messages of MSG bytes. */
#define STABLE		40
#define MSG		16
#define A_MSGS		(STABLE * (STABLE + 1) / 2)
#define B_MSGS		50
#define C_MSGS		60
#define PRE		4	/* muxes made before B, closed during a dump */
#define LATE		4	/* psocks attached to A during a dump */
#define DOOMED		4	/* psocks of A unattached during a dump */
#define LATE_BYTES	1000	/* the j-th late psock: one message of */
#define DOOMED_BYTES	500	/* LATE_BYTES + j bytes, a doomed one */

/* ---- rows ----------------------------------------------------------------- */

enum row_kind { ROW_MUX, ROW_KCM, ROW_PSOCK };

struct row {
	enum row_kind kind;
	long long rx_msgs, rx_bytes, tx_msgs, tx_bytes;
};

static int starts_with(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

static int is_number(const char *t)
{
	if (!*t)
		return 0;
	for (; *t; t++)
		if (*t < '0' || *t > '9')
			return 0;
	return 1;
}

/* "Psck-12" is prefix "Psck-" and a number. */
static int is_labelled_number(const char *t, const char *prefix)
{
	return starts_with(t, prefix) && is_number(t + strlen(prefix));
}

static int is_one_of(const char *t, const char *const *words)
{
	for (; *words; words++)
		if (!strcmp(t, *words))
			return 1;
	return 0;
}

/* Ours and Linux's (WMore, Done, a psock's RxWait). */
static const char *const kcm_words[] = { "TxWait", "RxWait", "RxDis", "WMore",
					 NULL };
static const char *const psock_words[] = { "TxStop", "RxStop", "RxPause",
					   "RdyRx", "Done", "RxWait", NULL };

/*
 * Parses line as a whole row: 0, or -1 if it is not one.  A mux row is
 * "mux", four numbers, four dashes and "KCMs: N, Psocks N"; a KCM socket's
 * row "kcm-N", a psock's "psock-N" (each indented by three blanks), four
 * numbers, four numbers or dashes (Linux prints some as "-"), and only
 * status words of its kind.
 */
static int parse_row(const char *line, struct row *r)
{
	char copy[512], *save = NULL, *t[40];
	int n = 0, i;

	if (strlen(line) >= sizeof(copy))
		return -1;
	memcpy(copy, line, strlen(line) + 1);
	for (t[n] = strtok_r(copy, " ", &save); t[n] && n < 39;
	     t[n] = strtok_r(NULL, " ", &save))
		n++;
	memset(r, 0, sizeof(*r));
	if (starts_with(line, "mux ")) {
		size_t len;

		r->kind = ROW_MUX;
		if (n != 13 || strcmp(t[0], "mux"))
			return -1;
		for (i = 5; i < 9; i++)
			if (strcmp(t[i], "-"))
				return -1;
		len = strlen(t[10]);
		if (strcmp(t[9], "KCMs:") || len < 2 || t[10][len - 1] != ',' ||
		    strcmp(t[11], "Psocks") || !is_number(t[12]))
			return -1;
		t[10][len - 1] = 0;
		if (!is_number(t[10]))
			return -1;
		n = 5;
	} else if (starts_with(line, "   kcm-")) {
		r->kind = ROW_KCM;
		if (n < 9 || !is_labelled_number(t[0], "kcm-"))
			return -1;
		for (i = 9; i < n; i++)
			if (!is_labelled_number(t[i], "Psck-") &&
			    !is_one_of(t[i], kcm_words))
				return -1;
		n = 9;
	} else if (starts_with(line, "   psock-")) {
		r->kind = ROW_PSOCK;
		if (n < 9 || !is_labelled_number(t[0], "psock-"))
			return -1;
		for (i = 9; i < n; i++)
			if (!is_labelled_number(t[i], "Rsvd-") &&
			    !is_one_of(t[i], psock_words))
				return -1;
		n = 9;
	} else {
		return -1;
	}
	for (i = 1; i < n; i++)
		if (!is_number(t[i]) && (i < 5 || strcmp(t[i], "-")))
			return -1;
	r->rx_msgs = atoll(t[1]);
	r->rx_bytes = atoll(t[2]);
	r->tx_msgs = atoll(t[3]);
	r->tx_bytes = atoll(t[4]);
	return 0;
}

/* ---- a dump, and what it must show ---------------------------------------- */

struct dump {
	char *text;
	size_t len, cap;
	size_t scanned;		/* up to the end of the last whole line */
	int reads;
	int lines;		/* whole lines in text */
	int nrows;
	struct row *rows;	/* the rows after the two header lines */
};

static void dump_fail(struct dump *d, const char *why)
{
	kcm_diag("the dump, %d reads:\n%s", d->reads, d->text);
	KCM_FAIL("%s", why);
}

/*
 * Takes the lines text has completed since the last call: the header
 * lines, then rows, each of which must be whole.  Returns the index of
 * the first new row (new rows are d->rows[first..d->nrows)).
 */
static int dump_take_lines(struct dump *d)
{
	int first = d->nrows;
	char *line, *nl;

	while ((nl = strchr(d->text + d->scanned, '\n'))) {
		line = d->text + d->scanned;
		*nl = 0;
		if (d->lines == 0) {
			int muxes;

			if (sscanf(line, "*** KCM statistics (%d MUX) ****",
				   &muxes) != 1)
				dump_fail(d, "bad title line");
		} else if (d->lines == 1) {
			if (!starts_with(line, "Object ") ||
			    !strstr(line, " Status"))
				dump_fail(d, "bad header line");
		} else {
			struct row r;

			if (parse_row(line, &r)) {
				kcm_diag("line %d: \"%s\"", d->lines, line);
				*nl = '\n';
				dump_fail(d, "a line that is not a whole row");
			}
			d->rows = realloc(d->rows,
					  (d->nrows + 1) * sizeof(*d->rows));
			if (!d->rows)
				KCM_FAIL("out of memory");
			d->rows[d->nrows++] = r;
		}
		*nl = '\n';
		d->lines++;
		d->scanned = nl + 1 - d->text;
	}
	return first;
}

/* One read() of size bytes into d: 0 at the end of the file. */
static ssize_t dump_read(struct dump *d, int fd, size_t size)
{
	ssize_t n;

	if (d->len + size + 1 > d->cap) {
		d->cap = 2 * (d->len + size + 1);
		d->text = realloc(d->text, d->cap);
		if (!d->text)
			KCM_FAIL("out of memory");
	}
	n = read(fd, d->text + d->len, size);
	if (n < 0)
		KCM_FAIL("read of %s: %s", PROC_KCM, strerror(errno));
	d->reads++;
	d->len += n;
	d->text[d->len] = 0;
	return n;
}

static void dump_free(struct dump *d)
{
	free(d->rows);
	free(d->text);
	memset(d, 0, sizeof(*d));
}

/* Which stable psock of A a psock row is (1..STABLE), or 0. */
static int stable_k(const struct row *r)
{
	if (r->kind != ROW_PSOCK || r->rx_msgs < 1 || r->rx_msgs > STABLE ||
	    r->rx_bytes != r->rx_msgs * MSG)
		return 0;
	return r->rx_msgs;
}

/* Which late (LATE_BYTES) or doomed (DOOMED_BYTES) psock: 0.., or -1. */
static int one_message_of(const struct row *r, int base, int count)
{
	if (r->kind != ROW_PSOCK || r->rx_msgs != 1 ||
	    r->rx_bytes < base || r->rx_bytes >= base + count)
		return -1;
	return r->rx_bytes - base;
}

/*
 * The checks every dump must pass: the rows are in mux blocks (a mux row,
 * its KCM sockets' rows, then its psocks'); B's block (its psock has
 * B_MSGS), A's (its stable psocks) and C's (C_MSGS) are there once each,
 * in the order the muxes were made (Linux lists the newest first); A's
 * stable psocks are all there once, in order, and its KCM socket a0
 * (which received every message of A) once.
 */
struct blocks {
	int b, a, c;		/* row index of each one's mux row */
};

static void check_dump(struct dump *d, struct blocks *bl, int a_msgs)
{
	int i, mux = -1, psocks = 0, k_next = 1, a0 = 0;
	int *owner = kcm_xmalloc((d->nrows + 1) * sizeof(int));

	bl->b = bl->a = bl->c = -1;
	for (i = 0; i < d->nrows; i++) {
		const struct row *r = &d->rows[i];
		int k = stable_k(r);

		if (r->kind == ROW_MUX) {
			mux = i;
			psocks = 0;
			owner[i] = i;
			continue;
		}
		if (mux < 0)
			dump_fail(d, "a row before any mux row");
		owner[i] = mux;
		if (r->kind == ROW_KCM) {
			if (psocks)
				dump_fail(d, "a KCM socket's row after a psock's");
			continue;
		}
		psocks++;
		if (r->rx_msgs == B_MSGS && r->rx_bytes == B_MSGS * MSG) {
			if (bl->b >= 0)
				dump_fail(d, "mux B's psock twice");
			bl->b = mux;
		} else if (r->rx_msgs == C_MSGS &&
			   r->rx_bytes == C_MSGS * MSG) {
			if (bl->c >= 0)
				dump_fail(d, "mux C's psock twice");
			bl->c = mux;
		} else if (k) {
			if (bl->a < 0)
				bl->a = mux;
			if (bl->a != mux)
				dump_fail(d, "A's stable psocks in two muxes");
			if (k != k_next) {
				kcm_diag("stable psock %d where %d was due", k,
					 k_next);
				dump_fail(d, "A's stable psocks not each once, in order");
			}
			k_next++;
		}
	}
	if (bl->b < 0 || bl->a < 0 || bl->c < 0)
		dump_fail(d, "mux B, A or C missing");
	if (kcm_lane_is_linux() ? !(bl->c < bl->a && bl->a < bl->b) :
				  !(bl->b < bl->a && bl->a < bl->c))
		dump_fail(d, "muxes B, A, C not in the order they were made");
	if (k_next != STABLE + 1) {
		kcm_diag("%d of %d stable psocks", k_next - 1, STABLE);
		dump_fail(d, "A's stable psocks missing");
	}
	for (i = 0; i < d->nrows; i++)
		if (owner[i] == bl->a && d->rows[i].kind == ROW_KCM &&
		    d->rows[i].rx_msgs == a_msgs)
			a0++;
	if (a0 != 1) {
		kcm_diag("A's KCM socket that received %d messages listed %d times",
			 a_msgs, a0);
		dump_fail(d, "A's KCM socket a0 not listed once");
	}
	free(owner);
}

/* ---- the namespace the dumps list ------------------------------------------ */

struct pair {
	int peer, tcp;
};

struct world {
	int prog;
	int pre[PRE];
	int b, c, d;
	struct pair pb, pc;
	int a0, a1;
	struct pair stable[STABLE], doomed[DOOMED], late[LATE];
	int nlate;
};

/* n messages of size bytes through pair p to KCM socket kcm, each read. */
static void deliver(int kcm, struct pair *p, int n, size_t size)
{
	char *buf = kcm_xmalloc(size);
	int i;

	for (i = 0; i < n; i++) {
		kcm_msg_build(buf, size, 0, i);
		kcm_write_all(p->peer, buf, size);
	}
	for (i = 0; i < n; i++)
		if (kcm_recv_timeout(kcm, buf, size, 0, 5000) != (ssize_t)size)
			KCM_FAIL("message %d of %d (%zu bytes) not received",
				 i, n, size);
	free(buf);
}

static void attach_pair(int kcm, int prog, struct pair *p)
{
	kcm_tcp_pair(AF_INET, &p->peer, &p->tcp);
	ASSERT_OK(kcm_attach(kcm, p->tcp, prog));
}

/*
 * Muxes pre[], then B, A, C, D, in that order.  A's KCM socket a1 has
 * receiving disabled, so that a0 receives every message of A; doomed
 * psocks come after the stable ones, and got a message each.
 */
static void world_make(struct world *w, int doomed)
{
	int i, one = 1;

	memset(w, 0, sizeof(*w));
	kcm_new_netns();
	w->prog = kcm_prog_len32();
	for (i = 0; i < PRE; i++)
		w->pre[i] = kcm_socket(SOCK_DGRAM);
	w->b = kcm_socket(SOCK_DGRAM);
	w->a0 = kcm_socket(SOCK_DGRAM);
	w->c = kcm_socket(SOCK_DGRAM);
	w->d = kcm_socket(SOCK_DGRAM);
	w->a1 = ASSERT_OK(kcm_clone(w->a0));
	ASSERT_OK(setsockopt(w->a1, SOL_KCM, KCM_RECV_DISABLE, &one,
			     sizeof(one)));
	attach_pair(w->b, w->prog, &w->pb);
	deliver(w->b, &w->pb, B_MSGS, MSG);
	attach_pair(w->c, w->prog, &w->pc);
	deliver(w->c, &w->pc, C_MSGS, MSG);
	for (i = 0; i < STABLE; i++) {
		attach_pair(w->a0, w->prog, &w->stable[i]);
		deliver(w->a0, &w->stable[i], i + 1, MSG);
	}
	for (i = 0; doomed && i < DOOMED; i++) {
		attach_pair(w->a0, w->prog, &w->doomed[i]);
		deliver(w->a0, &w->doomed[i], 1, DOOMED_BYTES + i);
	}
}

/*
 * Objects made and dropped while a dump is read: none has traffic, and the
 * KCM sockets do not receive (A's messages all go to a0).
 */
struct churn {
	struct pair psock[8];
	int clone[8], mux[8];
	int npsock, nclone, nmux;
};

static void churn_step(struct world *w, struct churn *ch, unsigned int step)
{
	switch (step % 6) {
	case 0:
		if (ch->npsock < 8)
			attach_pair(w->a0, w->prog, &ch->psock[ch->npsock++]);
		break;
	case 1:
		if (ch->nclone < 8) {
			int fd = ASSERT_OK(kcm_clone(w->a0)), one = 1;

			ASSERT_OK(setsockopt(fd, SOL_KCM, KCM_RECV_DISABLE,
					     &one, sizeof(one)));
			ch->clone[ch->nclone++] = fd;
		}
		break;
	case 2:
		if (ch->nmux < 8)
			ch->mux[ch->nmux++] = kcm_socket(SOCK_DGRAM);
		break;
	case 3:
		if (ch->npsock) {
			struct pair *p = &ch->psock[0];

			ASSERT_OK(kcm_unattach(w->a0, p->tcp));
			close(p->tcp);
			close(p->peer);
			memmove(p, p + 1, --ch->npsock * sizeof(*p));
		}
		break;
	case 4:
		if (ch->nclone) {
			close(ch->clone[0]);
			memmove(ch->clone, ch->clone + 1,
				--ch->nclone * sizeof(int));
		}
		break;
	case 5:
		if (ch->nmux) {
			close(ch->mux[0]);
			memmove(ch->mux, ch->mux + 1,
				--ch->nmux * sizeof(int));
		}
		break;
	}
}

/* ---- one thread: changes between the reads ---------------------------------- */

/*
 * What happens as the dump's rows come in: after every row, a churn step;
 * after A's stable psock k: the pre-made muxes close (k = 2, 4, 6, 8),
 * psocks are attached to A and get one message each (k = 3, 5, 7, 9),
 * the doomed psocks are unattached (k = 10..13).  The dump has reached at
 * most the row after the last one read (seq_file makes a row only when it
 * is to be read), so all of that happens ahead of it.
 */
static void on_row(struct world *w, struct churn *ch, struct dump *d,
		   const struct row *r, unsigned int *steps)
{
	int k = stable_k(r), i;

	churn_step(w, ch, (*steps)++);
	if (!k || k >= 10 + DOOMED)
		return;
	/* The premise: A's last stable psock not read yet. */
	for (i = 0; i < d->nrows; i++)
		if (stable_k(&d->rows[i]) == STABLE)
			dump_fail(d, "one read went past A's stable psocks: make STABLE larger");
	if (k % 2 == 0 && k / 2 - 1 < PRE) {
		close(w->pre[k / 2 - 1]);
		w->pre[k / 2 - 1] = -1;
	}
	if (k % 2 == 1 && k >= 3 && w->nlate < LATE) {
		struct pair *p = &w->late[w->nlate];

		attach_pair(w->a0, w->prog, p);
		deliver(w->a0, p, 1, LATE_BYTES + w->nlate);
		w->nlate++;
	}
	if (k >= 10 && k < 10 + DOOMED) {
		struct pair *p = &w->doomed[k - 10];

		ASSERT_OK(kcm_unattach(w->a0, p->tcp));
		close(p->tcp);
		close(p->peer);
	}
}

/*
 * What our module shows besides: the psocks attached during the dump once
 * each, in order, at the end of A; none of the doomed ones.
 */
static void check_ours(struct dump *d, const struct blocks *bl)
{
	int i, late_next = 0, stable_done = 0, in_a = 0;

	for (i = 0; i < d->nrows; i++) {
		const struct row *r = &d->rows[i];
		int j;

		if (r->kind == ROW_MUX) {
			in_a = i == bl->a;
			continue;
		}
		if (r->kind == ROW_KCM)
			continue;
		if (stable_k(r) == STABLE)
			stable_done = 1;
		if (one_message_of(r, DOOMED_BYTES, DOOMED) >= 0)
			dump_fail(d, "a psock unattached before the dump reached it is listed");
		j = one_message_of(r, LATE_BYTES, LATE);
		if (j < 0)
			continue;
		if (!in_a || !stable_done)
			dump_fail(d, "a psock attached during the dump is not at the end of A");
		if (j != late_next)
			dump_fail(d, "the psocks attached during the dump not each once, in order");
		late_next++;
	}
	if (late_next != LATE) {
		kcm_diag("%d of the %d psocks attached during the dump listed",
			 late_next, LATE);
		dump_fail(d, "a psock attached during the dump, ahead of it, is missing");
	}
}

static void dump_with_changes(size_t size)
{
	unsigned int steps = 0;
	struct dump d = { 0 };
	struct churn ch = { 0 };
	struct blocks bl;
	struct world w;
	int fd, i;

	world_make(&w, 1);
	fd = ASSERT_OK(open(PROC_KCM, O_RDONLY));
	while (dump_read(&d, fd, size) > 0) {
		int first = dump_take_lines(&d);

		for (i = first; i < d.nrows; i++)
			on_row(&w, &ch, &d, &d.rows[i], &steps);
	}
	close(fd);
	if (d.len && d.text[d.len - 1] != '\n')
		dump_fail(&d, "the dump ends in the middle of a line");
	if (w.nlate != LATE)
		dump_fail(&d, "the dump never reached A's stable psocks");
	check_dump(&d, &bl, A_MSGS + DOOMED);
	check_ours(&d, &bl);
	kcm_diag("%d reads of %zu bytes, %d rows, %u changes between them",
		 d.reads, size, d.nrows, steps);
	dump_free(&d);
}

/*
 * Changes between two reads of one dump: muxes listed before the dump's
 * place close, psocks are attached ahead of it and others unattached,
 * KCM sockets and muxes come and go.  Linux's module prints a mux at a
 * time and finds its place again by counting muxes from the first: one
 * closed behind it makes it skip the next (C); and it prints a whole mux
 * in one piece, so a psock attached meanwhile is never listed and one
 * unattached meanwhile still is.
 */
KCM_TEST(proc_dump_pieces_1_byte, KCM_EXT, KCM_TIMEOUT(120))
{
	dump_with_changes(1);
}

KCM_TEST(proc_dump_pieces_100_bytes, KCM_EXT, KCM_TIMEOUT(120))
{
	dump_with_changes(100);
}

KCM_TEST(proc_dump_pieces_4096_bytes, KCM_EXT, KCM_TIMEOUT(120))
{
	dump_with_changes(4096);
}

/*
 * Muxes listed before the dump's place close while it is inside A: pre[0]
 * (the first one made: the first listed by ours) and D (the last one
 * made: the first listed by Linux's module, which lists the newest first
 * and finds its place again by counting muxes: then it skips B).
 */
KCM_TEST(proc_dump_mux_closed_behind,
	 KCM_LINUX_BUG("/proc/net/kcm read in pieces skips a mux when one listed before it closes (its place is a count of muxes)"))
{
	struct dump d = { 0 };
	struct blocks bl;
	struct world w;
	int fd, i, closed = 0;

	world_make(&w, 0);
	fd = ASSERT_OK(open(PROC_KCM, O_RDONLY));
	while (dump_read(&d, fd, 100) > 0) {
		int first = dump_take_lines(&d);

		for (i = first; i < d.nrows; i++)
			if (stable_k(&d.rows[i]) == 2 && !closed++) {
				close(w.pre[0]);
				close(w.d);
			}
	}
	close(fd);
	ASSERT_EQ(closed, 1);
	check_dump(&d, &bl, A_MSGS);
	dump_free(&d);
}

/* ---- two threads: changes while a read runs ---------------------------------- */

struct churner {
	struct world *w;
	atomic_int stop;
	atomic_uint steps;
	pthread_t th;
};

static void *churner_fn(void *arg)
{
	struct churner *c = arg;
	struct churn ch = { 0 };
	int i;

	while (!atomic_load(&c->stop))
		churn_step(c->w, &ch, atomic_fetch_add(&c->steps, 1));
	for (i = 0; i < ch.npsock; i++) {
		close(ch.psock[i].tcp);
		close(ch.psock[i].peer);
	}
	for (i = 0; i < ch.nclone; i++)
		close(ch.clone[i]);
	for (i = 0; i < ch.nmux; i++)
		close(ch.mux[i]);
	return NULL;
}

/*
 * Dumps read in pieces of changing sizes while another thread attaches and
 * unattaches psocks of A, clones and closes KCM sockets of A, makes and
 * closes muxes, until it has made 400 changes: each dump has every stable
 * object once, in its place, and only whole rows.  On Linux's module a
 * mux made or closed before the dump's place (it lists the newest first)
 * makes it repeat or skip one: whether a change does so depends on when
 * it comes.
 */
KCM_TEST(proc_dump_pieces_while_changing, KCM_TIMEOUT(180),
	 KCM_LINUX_RACE("/proc/net/kcm read in pieces skips or repeats a mux when muxes are made or closed meanwhile (its place is a count of muxes)"))
{
	static const size_t sizes[] = { 1, 7, 100, 333, 4096, 65536 };
	struct churner c = { 0 };
	struct blocks bl;
	struct world w;
	int round, reads = 0, rows = 0;

	world_make(&w, 0);
	c.w = &w;
	ASSERT_EQ(pthread_create(&c.th, NULL, churner_fn, &c), 0);
	for (round = 0; round < 12 || atomic_load(&c.steps) < 400; round++) {
		size_t size = sizes[round % 6];
		struct dump d = { 0 };
		int fd = ASSERT_OK(open(PROC_KCM, O_RDONLY));
		unsigned int n = 0;

		while (dump_read(&d, fd, size + n++ % 5) > 0)
			dump_take_lines(&d);
		close(fd);
		if (d.len && d.text[d.len - 1] != '\n')
			dump_fail(&d, "the dump ends in the middle of a line");
		check_dump(&d, &bl, A_MSGS);
		reads += d.reads;
		rows += d.nrows;
		dump_free(&d);
	}
	atomic_store(&c.stop, 1);
	ASSERT_EQ(pthread_join(c.th, NULL), 0);
	kcm_diag("%d dumps, %d reads, %d rows, %u changes meanwhile", round,
		 reads, rows, atomic_load(&c.steps));
}
