// SPDX-License-Identifier: GPL-2.0
/*
 * kcmstat: parsing and printing /proc/net/kcm and /proc/net/kcm_stats.
 * See kcmstat.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kcmstat.h"

#define MAX_COLS 40

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Split @line (modified) on blanks: returns the number of words. */
static int split(char *line, char **w, int max)
{
	int n = 0;
	char *p = line;

	while (*p && n < max) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		w[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = 0;
	}
	return n;
}

/* Next line of *@pos (modified in place), or NULL at the end. */
static char *next_line(char **pos)
{
	char *l = *pos, *nl;

	if (!l || !*l)
		return NULL;
	nl = strchr(l, '\n');
	if (nl) {
		*nl = 0;
		*pos = nl + 1;
	} else {
		*pos = l + strlen(l);
	}
	return l;
}

static int col_of(char **hdr, int n, const char *name)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(hdr[i], name))
			return i;
	return -1;
}

static uint64_t u64_of(char **w, int n, int col)
{
	if (col < 0 || col >= n)
		return 0;
	return strtoull(w[col], NULL, 10);
}

static long long ll_of(char **w, int n, int col)
{
	if (col < 0 || col >= n || w[col][0] == '-')
		return -1;
	return strtoll(w[col], NULL, 10);
}

static enum kcmstat_kind kind_of(const char *name)
{
	if (!strcmp(name, "mux"))
		return KCMSTAT_MUX;
	if (!strncmp(name, "kcm-", 4))
		return KCMSTAT_KCM;
	if (!strncmp(name, "psock-", 6) || !strncmp(name, "psk-", 4))
		return KCMSTAT_PSOCK;
	return KCMSTAT_OTHER;
}

static int parse_kcm(struct kcmstat_snap *s, char *text, char *err,
		     size_t errlen)
{
	static const char *const need[] = { "Object", "RX-Msgs", "RX-Bytes",
		"TX-Msgs", "TX-Bytes", "Status" };
	char *pos = text, *line, *hdr[MAX_COLS], *w[MAX_COLS];
	int nh, c_rxm, c_rxb, c_txm, c_txb, c_rq, c_rm, c_sq, c_sm, c_st;
	int cap = 0;
	size_t i;

	line = next_line(&pos);
	if (!line || sscanf(line, "*** KCM statistics (%d MUX)",
			    &s->title_muxes) != 1) {
		seterr(err, errlen, "/proc/net/kcm: no \"*** KCM statistics\" title");
		return -1;
	}
	line = next_line(&pos);
	if (!line) {
		seterr(err, errlen, "/proc/net/kcm: no header line");
		return -1;
	}
	nh = split(line, hdr, MAX_COLS);
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (col_of(hdr, nh, need[i]) < 0) {
			seterr(err, errlen, "/proc/net/kcm: no column \"%s\"",
			       need[i]);
			return -1;
		}
	}
	c_rxm = col_of(hdr, nh, "RX-Msgs");
	c_rxb = col_of(hdr, nh, "RX-Bytes");
	c_txm = col_of(hdr, nh, "TX-Msgs");
	c_txb = col_of(hdr, nh, "TX-Bytes");
	c_rq = col_of(hdr, nh, "Recv-Q");
	c_rm = col_of(hdr, nh, "Rmem");
	c_sq = col_of(hdr, nh, "Send-Q");
	c_sm = col_of(hdr, nh, "Smem");
	c_st = col_of(hdr, nh, "Status");

	while ((line = next_line(&pos))) {
		struct kcmstat_obj *o;
		int n, k;

		n = split(line, w, MAX_COLS);
		if (!n)
			continue;
		if (s->nobj == cap) {
			struct kcmstat_obj *no;

			cap = cap ? 2 * cap : 32;
			no = realloc(s->obj, (size_t)cap * sizeof(*no));
			if (!no) {
				seterr(err, errlen, "out of memory");
				return -1;
			}
			s->obj = no;
		}
		o = &s->obj[s->nobj];
		memset(o, 0, sizeof(*o));
		snprintf(o->name, sizeof(o->name), "%s", w[0]);
		o->kind = kind_of(w[0]);
		if (o->kind == KCMSTAT_MUX)
			s->nmux++;
		o->mux = s->nmux - 1;
		o->rx_msgs = u64_of(w, n, c_rxm);
		o->rx_bytes = u64_of(w, n, c_rxb);
		o->tx_msgs = u64_of(w, n, c_txm);
		o->tx_bytes = u64_of(w, n, c_txb);
		o->recv_q = ll_of(w, n, c_rq);
		o->rmem = ll_of(w, n, c_rm);
		o->send_q = ll_of(w, n, c_sq);
		o->smem = ll_of(w, n, c_sm);
		o->kcms = o->psocks = -1;
		for (k = c_st; k < n; k++) {
			size_t used = strlen(o->status);

			snprintf(o->status + used, sizeof(o->status) - used,
				 "%s%s", used ? " " : "", w[k]);
		}
		if (o->kind == KCMSTAT_MUX)
			sscanf(o->status, "KCMs: %d, Psocks %d", &o->kcms,
			       &o->psocks);
		s->nobj++;
	}
	return 0;
}

static void parse_stats(struct kcmstat_snap *s, char *text)
{
	char *pos = text, *line, *hdr[MAX_COLS], *w[MAX_COLS];
	int nh, n, k;

	while ((line = next_line(&pos))) {
		if (line[0] == ' ' || !line[0])
			continue;	/* values without a header */
		nh = split(line, hdr, MAX_COLS);
		line = next_line(&pos);
		if (!line)
			break;
		n = split(line, w, MAX_COLS);
		/* The values line has no first column (the section name). */
		for (k = 1; k < nh && k - 1 < n; k++) {
			struct kcmstat_stat *st;

			if (s->nstat == KCMSTAT_MAX_STATS)
				return;
			st = &s->stat[s->nstat++];
			snprintf(st->section, sizeof(st->section), "%s", hdr[0]);
			snprintf(st->name, sizeof(st->name), "%s", hdr[k]);
			st->value = strtoull(w[k - 1], NULL, 10);
		}
	}
}

int kcmstat_parse(struct kcmstat_snap *s, const char *kcm_text,
		  const char *stats_text, char *err, size_t errlen)
{
	struct timespec ts;
	char *copy;
	int ret;

	memset(s, 0, sizeof(*s));
	s->title_muxes = -1;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	s->time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	copy = strdup(kcm_text ? kcm_text : "");
	if (!copy) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	ret = parse_kcm(s, copy, err, errlen);
	free(copy);
	if (ret < 0) {
		kcmstat_free(s);
		return -1;
	}
	if (stats_text) {
		copy = strdup(stats_text);
		if (!copy) {
			kcmstat_free(s);
			seterr(err, errlen, "out of memory");
			return -1;
		}
		parse_stats(s, copy);
		free(copy);
	}
	return 0;
}

static char *slurp(const char *path)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *nb;
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	do {
		if (cap - len < 4096) {
			cap = cap ? 2 * cap : 16384;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = 0;
	return buf;
}

int kcmstat_read(struct kcmstat_snap *s, const char *dir, char *err,
		 size_t errlen)
{
	char path[512];
	char *kcm, *stats;
	int ret;

	if (!dir)
		dir = "/proc/net";
	snprintf(path, sizeof(path), "%s/kcm", dir);
	kcm = slurp(path);
	if (!kcm) {
		seterr(err, errlen, "%s: %s%s", path, strerror(errno),
		       errno == ENOENT ? " (is the kcm module loaded?)" : "");
		memset(s, 0, sizeof(*s));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/kcm_stats", dir);
	stats = slurp(path);
	ret = kcmstat_parse(s, kcm, stats, err, errlen);
	free(kcm);
	free(stats);
	return ret;
}

void kcmstat_free(struct kcmstat_snap *s)
{
	free(s->obj);
	s->obj = NULL;
	s->nobj = 0;
}

long long kcmstat_stat(const struct kcmstat_snap *s, const char *section,
		       const char *name)
{
	int i;

	for (i = 0; i < s->nstat; i++)
		if (!strcmp(s->stat[i].section, section) &&
		    !strcmp(s->stat[i].name, name))
			return (long long)s->stat[i].value;
	return -1;
}

const struct kcmstat_obj *kcmstat_find(const struct kcmstat_snap *s,
				       int mux, const char *name)
{
	int i;

	for (i = 0; i < s->nobj; i++)
		if (s->obj[i].mux == mux && !strcmp(s->obj[i].name, name))
			return &s->obj[i];
	return NULL;
}

/* ---- output ------------------------------------------------------------ */

struct rates {
	int valid;
	double rx_msgs, rx_bytes, tx_msgs, tx_bytes;
};

static double delta(uint64_t now, uint64_t then, double secs)
{
	return now >= then ? (double)(now - then) / secs : 0.0;
}

static struct rates rates_of(const struct kcmstat_obj *o,
			     const struct kcmstat_snap *cur,
			     const struct kcmstat_snap *prev)
{
	struct rates r = { 0 };
	const struct kcmstat_obj *p;
	double secs;

	if (!prev)
		return r;
	secs = cur->time - prev->time;
	p = kcmstat_find(prev, o->mux, o->name);
	if (!p || secs <= 0)
		return r;
	r.valid = 1;
	r.rx_msgs = delta(o->rx_msgs, p->rx_msgs, secs);
	r.rx_bytes = delta(o->rx_bytes, p->rx_bytes, secs);
	r.tx_msgs = delta(o->tx_msgs, p->tx_msgs, secs);
	r.tx_bytes = delta(o->tx_bytes, p->tx_bytes, secs);
	return r;
}

static void print_ll(FILE *f, long long v, int width)
{
	if (v < 0)
		fprintf(f, " %*s", width, "-");
	else
		fprintf(f, " %*lld", width, v);
}

static const char *kind_name(enum kcmstat_kind k)
{
	switch (k) {
	case KCMSTAT_MUX: return "mux";
	case KCMSTAT_KCM: return "kcm";
	case KCMSTAT_PSOCK: return "psock";
	default: return "other";
	}
}

void kcmstat_print_table(FILE *f, const struct kcmstat_snap *cur,
			 const struct kcmstat_snap *prev)
{
	static const char *const totals[][2] = {
		{ "MUX", "Attach" }, { "MUX", "Unattach" },
		{ "MUX", "UnattchRsvd" }, { "MUX", "TX-Retries" },
		{ "MUX", "RX-RdyDrops" }, { "Psock", "RX-Aborts" },
		{ "Psock", "TX-Aborts" }, { "Psock", "RX-BadLen" },
		{ "Psock", "RX-TooBig" }, { "Psock", "RX-Timeout" },
		{ "Psock", "RX-MemFail" },
	};
	int i, shown = 0;

	fprintf(f, "%d mux%s", cur->nmux, cur->nmux == 1 ? "" : "es");
	if (prev)
		fprintf(f, ", rates over %.2f s", cur->time - prev->time);
	fprintf(f, "\n%-12s %10s %12s %10s %12s %7s %8s %7s %8s",
		"OBJECT", "RX-MSGS", "RX-BYTES", "TX-MSGS", "TX-BYTES",
		"RECV-Q", "RMEM", "SEND-Q", "SMEM");
	if (prev)
		fprintf(f, " %9s %11s %9s %11s", "RX-MSG/S", "RX-BYTE/S",
			"TX-MSG/S", "TX-BYTE/S");
	fprintf(f, "  STATUS\n");
	for (i = 0; i < cur->nobj; i++) {
		const struct kcmstat_obj *o = &cur->obj[i];
		char name[48];

		if (o->kind == KCMSTAT_MUX)
			snprintf(name, sizeof(name), "mux %d", o->mux);
		else
			snprintf(name, sizeof(name), "  %s", o->name);
		fprintf(f, "%-12s %10llu %12llu %10llu %12llu", name,
			(unsigned long long)o->rx_msgs,
			(unsigned long long)o->rx_bytes,
			(unsigned long long)o->tx_msgs,
			(unsigned long long)o->tx_bytes);
		print_ll(f, o->recv_q, 7);
		print_ll(f, o->rmem, 8);
		print_ll(f, o->send_q, 7);
		print_ll(f, o->smem, 8);
		if (prev) {
			struct rates r = rates_of(o, cur, prev);

			if (r.valid)
				fprintf(f, " %9.0f %11.0f %9.0f %11.0f",
					r.rx_msgs, r.rx_bytes, r.tx_msgs,
					r.tx_bytes);
			else
				fprintf(f, " %9s %11s %9s %11s", "new", "new",
					"new", "new");
		}
		if (o->kind == KCMSTAT_MUX && o->kcms >= 0)
			fprintf(f, "  %d KCM socket%s, %d psock%s\n", o->kcms,
				o->kcms == 1 ? "" : "s", o->psocks,
				o->psocks == 1 ? "" : "s");
		else
			fprintf(f, "%s%s\n", o->status[0] ? "  " : "", o->status);
	}
	if (!cur->nstat)
		return;
	fprintf(f, "totals (kcm_stats):");
	for (i = 0; i < (int)(sizeof(totals) / sizeof(totals[0])); i++) {
		long long v = kcmstat_stat(cur, totals[i][0], totals[i][1]);

		if (v < 0)
			continue;
		fprintf(f, "%s %s %lld", shown++ % 6 ? "," : shown > 1 ?
			"\n                   " : "", totals[i][1], v);
	}
	fprintf(f, "\n");
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_ll(FILE *f, const char *key, long long v)
{
	fprintf(f, ",\"%s\":", key);
	if (v < 0)
		fprintf(f, "null");
	else
		fprintf(f, "%lld", v);
}

static void json_obj(FILE *f, const struct kcmstat_obj *o,
		     const struct kcmstat_snap *cur,
		     const struct kcmstat_snap *prev)
{
	struct rates r = rates_of(o, cur, prev);

	fprintf(f, "{\"name\":");
	json_str(f, o->name);
	fprintf(f, ",\"kind\":\"%s\",\"rx_msgs\":%llu,\"rx_bytes\":%llu,"
		"\"tx_msgs\":%llu,\"tx_bytes\":%llu", kind_name(o->kind),
		(unsigned long long)o->rx_msgs,
		(unsigned long long)o->rx_bytes,
		(unsigned long long)o->tx_msgs,
		(unsigned long long)o->tx_bytes);
	json_ll(f, "recv_q", o->recv_q);
	json_ll(f, "rmem", o->rmem);
	json_ll(f, "send_q", o->send_q);
	json_ll(f, "smem", o->smem);
	fprintf(f, ",\"status\":");
	json_str(f, o->status);
	if (r.valid)
		fprintf(f, ",\"rates\":{\"rx_msgs\":%.1f,\"rx_bytes\":%.1f,"
			"\"tx_msgs\":%.1f,\"tx_bytes\":%.1f}", r.rx_msgs,
			r.rx_bytes, r.tx_msgs, r.tx_bytes);
}

void kcmstat_print_json(FILE *f, const struct kcmstat_snap *cur,
			const struct kcmstat_snap *prev)
{
	int i, m, first;

	fprintf(f, "{\"interval\":");
	if (prev)
		fprintf(f, "%.3f", cur->time - prev->time);
	else
		fprintf(f, "null");
	fprintf(f, ",\"muxes\":[");
	for (m = 0; m < cur->nmux; m++) {
		const struct kcmstat_obj *mux = NULL;

		for (i = 0; i < cur->nobj; i++)
			if (cur->obj[i].mux == m &&
			    cur->obj[i].kind == KCMSTAT_MUX)
				mux = &cur->obj[i];
		fprintf(f, "%s", m ? "," : "");
		json_obj(f, mux, cur, prev);
		fprintf(f, ",\"index\":%d", m);
		json_ll(f, "kcms", mux->kcms);
		json_ll(f, "psocks", mux->psocks);
		fprintf(f, ",\"sockets\":[");
		for (i = 0, first = 1; i < cur->nobj; i++) {
			if (cur->obj[i].mux != m ||
			    cur->obj[i].kind != KCMSTAT_KCM)
				continue;
			fprintf(f, "%s", first ? "" : ",");
			first = 0;
			json_obj(f, &cur->obj[i], cur, prev);
			fprintf(f, "}");
		}
		fprintf(f, "],\"attached\":[");
		for (i = 0, first = 1; i < cur->nobj; i++) {
			if (cur->obj[i].mux != m ||
			    cur->obj[i].kind == KCMSTAT_MUX ||
			    cur->obj[i].kind == KCMSTAT_KCM)
				continue;
			fprintf(f, "%s", first ? "" : ",");
			first = 0;
			json_obj(f, &cur->obj[i], cur, prev);
			fprintf(f, "}");
		}
		fprintf(f, "]}");
	}
	fprintf(f, "],\"totals\":{");
	for (i = 0; i < cur->nstat; i++) {
		const char *sec = cur->stat[i].section;

		if (!i || strcmp(sec, cur->stat[i - 1].section)) {
			if (i)
				fprintf(f, "},");
			json_str(f, sec);
			fprintf(f, ":{");
		} else {
			fprintf(f, ",");
		}
		json_str(f, cur->stat[i].name);
		fprintf(f, ":%llu", (unsigned long long)cur->stat[i].value);
	}
	fprintf(f, "%s}}\n", cur->nstat ? "}" : "");
}
