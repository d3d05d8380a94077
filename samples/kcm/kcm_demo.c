// SPDX-License-Identifier: GPL-2.0
/*
 * kcm_demo: a short tour of the AF_KCM user-space ABI.
 *
 * Creates a KCM socket (which creates a multiplexor), clones it twice,
 * reads one socket option back, shows the kernel's view of it in
 * /proc/net/kcm and /proc/net/kcm_stats, then closes everything; then runs
 * the message server demo (kcm_server --demo) if it is there.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>	/* SIOCPROTOPRIVATE, used by linux/kcm.h */
#include <linux/kcm.h>

#ifndef AF_KCM
#define AF_KCM 41
#endif
#ifndef SOL_KCM
#define SOL_KCM 281
#endif

#define NSOCKS 3

/* Return a new KCM socket on the same multiplexor as @fd, or -1. */
static int kcm_clone(int fd)
{
	struct kcm_clone clone = { .fd = -1 };

	if (ioctl(fd, SIOCKCMCLONE, &clone) < 0)
		return -1;
	return clone.fd;
}

static void show_file(const char *path)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	printf("--- %s\n", path);
	if (!f) {
		printf("(cannot open: %s)\n", strerror(errno));
		return;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stdout);
	fclose(f);
}

/*
 * Then the real thing, when it was built next to this binary: the message
 * server with 4 workers over 3 connections, its client, kcmstat and a
 * connection reset (samples/kcm/kcm_server.c, "--demo").
 */
static int server_demo(void)
{
	char path[4096];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 32);
	char *slash;

	if (n <= 0)
		return 0;
	path[n] = 0;
	slash = strrchr(path, '/');
	if (!slash)
		return 0;
	strcpy(slash + 1, "kcm_server");
	if (access(path, X_OK) != 0)
		return 0;
	printf("\n--- %s --demo\n", path);
	fflush(stdout);
	execl(path, "kcm_server", "--demo", (char *)NULL);
	perror("exec kcm_server");
	return 1;
}

int main(void)
{
	int fds[NSOCKS];
	int i, disabled;
	socklen_t len = sizeof(disabled);

	fds[0] = socket(AF_KCM, SOCK_DGRAM, KCMPROTO_CONNECTED);
	if (fds[0] < 0) {
		perror("socket(AF_KCM, SOCK_DGRAM)");
		return 1;
	}
	for (i = 1; i < NSOCKS; i++) {
		fds[i] = kcm_clone(fds[0]);
		if (fds[i] < 0) {
			perror("ioctl(SIOCKCMCLONE)");
			return 1;
		}
	}
	printf("KCM socket: fd %d; clones: fd %d, fd %d\n", fds[0], fds[1], fds[2]);

	if (getsockopt(fds[0], SOL_KCM, KCM_RECV_DISABLE, &disabled, &len) < 0) {
		perror("getsockopt(KCM_RECV_DISABLE)");
		return 1;
	}
	printf("KCM_RECV_DISABLE on fd %d: %d\n", fds[0], disabled);

	show_file("/proc/net/kcm");
	show_file("/proc/net/kcm_stats");

	for (i = 0; i < NSOCKS; i++)
		close(fds[i]);
	printf("closed %d KCM sockets\n", NSOCKS);
	return server_demo();
}
