// SPDX-License-Identifier: GPL-2.0
/*
 * kcmstat: show the KCM multiplexors, KCM sockets and attached TCP sockets
 * of this network namespace, from /proc/net/kcm and /proc/net/kcm_stats.
 *
 *   kcmstat              one table
 *   kcmstat -i 1 [-c N]  every second (N times), with rates per second
 *   kcmstat -j           JSON, one object per line per sample
 *   kcmstat -p DIR       read DIR/kcm and DIR/kcm_stats instead
 *   kcmstat -V           print the version
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kcmstat.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kcmstat [-j] [-i SECONDS [-c COUNT]] [-p DIR]\n"
		"       kcmstat -h | -V\n"
		"  -i SECONDS     print every SECONDS, with rates per second\n"
		"  -c COUNT       stop after COUNT samples (default: 1 without\n"
		"                 -i, forever with -i)\n"
		"  -j             JSON, one object per line per sample\n"
		"  -p DIR         read DIR/kcm and DIR/kcm_stats (default\n"
		"                 /proc/net)\n"
		"  -h, --help     this help\n"
		"  -V, --version  the version\n");
}

static const struct option long_opts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

int main(int argc, char **argv)
{
	struct kcmstat_snap cur, prev;
	const char *dir = "/proc/net";
	double interval = 0;
	long count = -1, n;
	int json = 0, have_prev = 0, opt;
	char err[256], *end;

	while ((opt = getopt_long(argc, argv, "hVji:c:p:", long_opts,
				  NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = 1;
			break;
		case 'i':
			interval = strtod(optarg, &end);
			if (*end || interval <= 0 || interval > 86400) {
				fprintf(stderr, "kcmstat: bad interval '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'c':
			count = strtol(optarg, &end, 10);
			if (*end || count <= 0) {
				fprintf(stderr, "kcmstat: bad count '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'p':
			dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("kcmstat %s\n", KCM_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (count < 0)
		count = interval > 0 ? 0 : 1;	/* 0: forever */

	for (n = 0; !count || n < count; n++) {
		if (n) {
			struct timespec ts = {
				.tv_sec = (time_t)interval,
				.tv_nsec = (long)((interval - (time_t)interval) * 1e9),
			};

			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}
		if (kcmstat_read(&cur, dir, err, sizeof(err)) < 0) {
			fprintf(stderr, "kcmstat: %s\n", err);
			if (have_prev)
				kcmstat_free(&prev);
			return 1;
		}
		if (json) {
			kcmstat_print_json(stdout, &cur,
					   have_prev ? &prev : NULL);
		} else {
			if (n)
				printf("\n");
			kcmstat_print_table(stdout, &cur,
					    have_prev ? &prev : NULL);
		}
		fflush(stdout);
		if (have_prev)
			kcmstat_free(&prev);
		prev = cur;
		have_prev = interval > 0;
		if (!have_prev)
			kcmstat_free(&cur);
	}
	if (have_prev)
		kcmstat_free(&prev);
	return 0;
}
