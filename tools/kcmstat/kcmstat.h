/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcmstat: reading /proc/net/kcm and /proc/net/kcm_stats.
 *
 * Both files are parsed by column name, so the same code reads Linux's
 * kcm.ko and our module, whatever the column widths: /proc/net/kcm has a
 * header line naming the columns ("Object RX-Msgs ... Status"), then one
 * row per mux ("mux"), followed by that mux's KCM sockets ("kcm-N") and
 * attached TCP sockets ("psock-N" here, "psk-N" in Linux).  /proc/net/
 * kcm_stats has sections of two lines each: a header whose first word
 * names the section ("MUX", "Psock") and a line of values for the other
 * columns.
 */
#ifndef KCMSTAT_H
#define KCMSTAT_H

#include <stdint.h>
#include <stdio.h>

enum kcmstat_kind { KCMSTAT_MUX, KCMSTAT_KCM, KCMSTAT_PSOCK, KCMSTAT_OTHER };

struct kcmstat_obj {
	enum kcmstat_kind kind;
	int mux;			/* index of its mux, in file order */
	char name[32];			/* "mux", "kcm-3", "psock-0", "psk-0" */
	uint64_t rx_msgs, rx_bytes, tx_msgs, tx_bytes;
	long long recv_q, rmem, send_q, smem;	/* -1 when shown as "-" */
	char status[160];
	int kcms, psocks;		/* mux rows: "KCMs: N, Psocks M" */
};

#define KCMSTAT_MAX_STATS 64

struct kcmstat_stat {
	char section[16];		/* "MUX", "Psock" */
	char name[24];			/* "RX-Msgs", "Attach", ... */
	uint64_t value;
};

struct kcmstat_snap {
	double time;			/* CLOCK_MONOTONIC seconds */
	int title_muxes;		/* "(N MUX)" of the title, or -1 */
	int nmux;			/* mux rows */
	int nobj;
	struct kcmstat_obj *obj;
	int nstat;
	struct kcmstat_stat stat[KCMSTAT_MAX_STATS];
};

/*
 * Parse the text of /proc/net/kcm (and of /proc/net/kcm_stats, which may
 * be NULL) into @s (to be freed with kcmstat_free).  0, or -1 with a
 * message in @err.
 */
int kcmstat_parse(struct kcmstat_snap *s, const char *kcm_text,
		  const char *stats_text, char *err, size_t errlen);
/* Read both files from @dir (default "/proc/net") and parse them. */
int kcmstat_read(struct kcmstat_snap *s, const char *dir, char *err,
		 size_t errlen);
void kcmstat_free(struct kcmstat_snap *s);

/* A kcm_stats value by section and column name, or -1 if missing. */
long long kcmstat_stat(const struct kcmstat_snap *s, const char *section,
		       const char *name);
/* The object of @s named @name in mux @mux, or NULL. */
const struct kcmstat_obj *kcmstat_find(const struct kcmstat_snap *s,
				       int mux, const char *name);

/*
 * Output: a table (or one JSON object on one line).  With @prev (an
 * earlier snapshot), per-second rates of messages and bytes are shown too.
 */
void kcmstat_print_table(FILE *f, const struct kcmstat_snap *cur,
			 const struct kcmstat_snap *prev);
void kcmstat_print_json(FILE *f, const struct kcmstat_snap *cur,
			const struct kcmstat_snap *prev);

#endif /* KCMSTAT_H */
