// SPDX-License-Identifier: GPL-2.0
/*
 * An AF_KCM socket in a VM that has no kcm module loaded: the
 * kernel loads one for the family (request_module("net-pf-41")), through
 * modprobe.  Exit 0 if the socket was made; the module stays loaded.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/kcm.h>

#ifndef AF_KCM
#define AF_KCM 41
#endif

int main(void)
{
	int fd = socket(AF_KCM, SOCK_DGRAM, KCMPROTO_CONNECTED);

	if (fd < 0) {
		printf("socket(AF_KCM): %s\n", strerror(errno));
		return 1;
	}
	close(fd);
	return 0;
}
