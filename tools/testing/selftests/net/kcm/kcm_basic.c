// SPDX-License-Identifier: GPL-2.0
/*
 * AF_KCM foundation: socket creation, SIOCKCMCLONE, closing, and the
 * socket calls a KCM socket does not support.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kcm_test.h"

static void check_kcm_identity(int fd, int type)
{
	EXPECT_EQ(kcm_get_int_opt(fd, SOL_SOCKET, SO_DOMAIN), AF_KCM);
	EXPECT_EQ(kcm_get_int_opt(fd, SOL_SOCKET, SO_TYPE), type);
	EXPECT_EQ(kcm_get_int_opt(fd, SOL_SOCKET, SO_PROTOCOL),
		  KCMPROTO_CONNECTED);
}

/*
 * Prove that @a and @b belong to one multiplexor: a message arriving on a
 * TCP socket attached through @a is received on @b, whose only sibling
 * (@a) has receiving disabled.
 */
static void check_same_mux(int a, int b)
{
	int peer, tcp, prog = kcm_prog_len32();
	char msg[64], got[128];
	int one = 1;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(setsockopt(a, SOL_KCM, KCM_RECV_DISABLE, &one, sizeof(one)));
	ASSERT_OK(kcm_attach(a, tcp, prog));
	kcm_msg_build(msg, sizeof(msg), 1, 7);
	kcm_write_all(peer, msg, sizeof(msg));
	ASSERT_EQ(kcm_recv_timeout(b, got, sizeof(got), 0, 5000), sizeof(msg));
	ASSERT_MEMEQ(got, msg, sizeof(msg));
	close(peer);
	close(tcp);
	close(prog);
}

KCM_TEST(socket_dgram)
{
	int fd = ASSERT_OK(socket(AF_KCM, SOCK_DGRAM, KCMPROTO_CONNECTED));

	check_kcm_identity(fd, SOCK_DGRAM);
	ASSERT_OK(close(fd));
}

KCM_TEST(socket_seqpacket)
{
	int fd = ASSERT_OK(socket(AF_KCM, SOCK_SEQPACKET, KCMPROTO_CONNECTED));

	check_kcm_identity(fd, SOCK_SEQPACKET);
	ASSERT_OK(close(fd));
}

KCM_TEST(socket_cloexec_nonblock_flags)
{
	int fd = ASSERT_OK(socket(AF_KCM, SOCK_DGRAM | SOCK_CLOEXEC |
				  SOCK_NONBLOCK, KCMPROTO_CONNECTED));
	char buf[16];

	EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	EXPECT_TRUE(fcntl(fd, F_GETFL) & O_NONBLOCK);
	/* Nothing attached: a non-blocking read finds nothing. */
	EXPECT_ERRNO(recv(fd, buf, sizeof(buf), 0), EAGAIN);
	close(fd);
}

/* Linux's kcm.ko gives ESOCKTNOSUPPORT for any type but DGRAM/SEQPACKET. */
KCM_TEST(socket_stream_rejected)
{
	ASSERT_ERRNO(socket(AF_KCM, SOCK_STREAM, KCMPROTO_CONNECTED),
		     ESOCKTNOSUPPORT);
}

KCM_TEST(socket_raw_rejected)
{
	ASSERT_ERRNO(socket(AF_KCM, SOCK_RAW, KCMPROTO_CONNECTED),
		     ESOCKTNOSUPPORT);
}

KCM_TEST(socket_rdm_rejected)
{
	ASSERT_ERRNO(socket(AF_KCM, SOCK_RDM, KCMPROTO_CONNECTED),
		     ESOCKTNOSUPPORT);
}

/* Linux's kcm.ko gives EPROTONOSUPPORT for a protocol other than 0. */
KCM_TEST(socket_bad_protocol)
{
	ASSERT_ERRNO(socket(AF_KCM, SOCK_DGRAM, 1), EPROTONOSUPPORT);
	ASSERT_ERRNO(socket(AF_KCM, SOCK_SEQPACKET, 1), EPROTONOSUPPORT);
	ASSERT_ERRNO(socket(AF_KCM, SOCK_DGRAM, IPPROTO_TCP),
		     EPROTONOSUPPORT);
}

KCM_TEST(clone_basic)
{
	int fd = kcm_socket(SOCK_DGRAM);
	int c = kcm_clone(fd);

	ASSERT_OK(c);
	ASSERT_NE(c, fd);
	/* The new fd is a real, open file descriptor. */
	ASSERT_OK(fcntl(c, F_GETFD));
	check_kcm_identity(c, SOCK_DGRAM);
	check_same_mux(fd, c);
	ASSERT_OK(close(c));
	ASSERT_OK(close(fd));
}

KCM_TEST(clone_seqpacket_keeps_type)
{
	int fd = kcm_socket(SOCK_SEQPACKET);
	int c = ASSERT_OK(kcm_clone(fd));

	check_kcm_identity(c, SOCK_SEQPACKET);
	check_same_mux(fd, c);
	close(c);
	close(fd);
}

KCM_TEST(clone_of_clone)
{
	int fd = kcm_socket(SOCK_DGRAM);
	int c1 = ASSERT_OK(kcm_clone(fd));
	int c2 = ASSERT_OK(kcm_clone(c1));

	ASSERT_NE(c2, c1);
	ASSERT_NE(c2, fd);
	check_kcm_identity(c2, SOCK_DGRAM);
	/* c2 is on fd's mux even though it was cloned from c1. */
	close(c1);
	check_same_mux(fd, c2);
	close(c2);
	close(fd);
}

KCM_TEST(clone_separate_muxes)
{
	int a = kcm_socket(SOCK_DGRAM);
	int b = kcm_socket(SOCK_DGRAM);
	int peer, tcp, prog = kcm_prog_len32();
	char msg[32], got[64];

	/* Two socket() calls make two muxes: a message for a's mux never
	 * reaches b.
	 */
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(a, tcp, prog));
	kcm_msg_build(msg, sizeof(msg), 0, 1);
	kcm_write_all(peer, msg, sizeof(msg));
	ASSERT_ERRNO(kcm_recv_timeout(b, got, sizeof(got), 0, 300), EAGAIN);
	ASSERT_EQ(kcm_recv_timeout(a, got, sizeof(got), 0, 5000), sizeof(msg));
	close(a);
	close(b);
}

KCM_TEST(clone_many_then_close_in_any_order)
{
	enum { N = 32 };
	int fds[N + 1];
	uint64_t rs = 42;
	int i, left;

	fds[0] = kcm_socket(SOCK_DGRAM);
	for (i = 1; i <= N; i++) {
		fds[i] = ASSERT_OK(kcm_clone(fds[(i - 1) / 2]));
		check_kcm_identity(fds[i], SOCK_DGRAM);
	}
	/* Close the original first, then the rest in a shuffled order;
	 * until the last one, the remaining ones still work.
	 */
	ASSERT_OK(close(fds[0]));
	fds[0] = -1;
	for (left = N; left > 0; left--) {
		int k = kcm_rand(&rs) % left, j, seen = -1;

		for (j = 1; j <= N; j++) {
			if (fds[j] < 0)
				continue;
			if (++seen == k)
				break;
		}
		if (left == N / 2) {
			int other = -1, m, one = 1;

			/* Leave exactly one receiver besides fds[j]. */
			for (m = 1; m <= N; m++) {
				if (fds[m] < 0 || m == j)
					continue;
				if (other >= 0)
					ASSERT_OK(setsockopt(other, SOL_KCM,
							     KCM_RECV_DISABLE,
							     &one, sizeof(one)));
				other = fds[m];
			}
			check_same_mux(fds[j], other);
		}
		ASSERT_OK(close(fds[j]));
		fds[j] = -1;
	}
}

KCM_TEST(clone_survives_close_of_original)
{
	int fd = kcm_socket(SOCK_DGRAM);
	int c = ASSERT_OK(kcm_clone(fd));
	int c2 = ASSERT_OK(kcm_clone(c));

	ASSERT_OK(close(fd));
	check_same_mux(c, c2);
	close(c);
	close(c2);
}

/* Linux's kcm.ko gives EFAULT for an unreadable/unwritable argument. */
KCM_TEST(clone_bad_pointer)
{
	int fd = kcm_socket(SOCK_DGRAM);

	ASSERT_ERRNO(ioctl(fd, SIOCKCMCLONE, (void *)8), EFAULT);
	close(fd);
}

KCM_TEST(ioctl_unknown)
{
	int fd = kcm_socket(SOCK_DGRAM);
	int arg[4] = { 0 };

	ASSERT_ERRNO(ioctl(fd, SIOCPROTOPRIVATE + 3, arg), ENOTTY);
	ASSERT_ERRNO(ioctl(fd, SIOCPROTOPRIVATE + 15, arg), ENOTTY);
	close(fd);
}

KCM_TEST(ioctl_attach_bad_pointer)
{
	int fd = kcm_socket(SOCK_DGRAM);

	ASSERT_ERRNO(ioctl(fd, SIOCKCMATTACH, (void *)8), EFAULT);
	ASSERT_ERRNO(ioctl(fd, SIOCKCMUNATTACH, (void *)8), EFAULT);
	close(fd);
}

/* The BSD socket calls that make no sense on a KCM socket. */
KCM_TEST(unsupported_socket_calls)
{
	int fd = kcm_socket(SOCK_DGRAM);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int sv[2];

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_KCM;
	EXPECT_ERRNO(bind(fd, (struct sockaddr *)&ss, sizeof(ss)), EOPNOTSUPP);
	EXPECT_ERRNO(connect(fd, (struct sockaddr *)&ss, sizeof(ss)),
		     EOPNOTSUPP);
	EXPECT_ERRNO(listen(fd, 1), EOPNOTSUPP);
	EXPECT_ERRNO(accept(fd, NULL, NULL), EOPNOTSUPP);
	len = sizeof(ss);
	EXPECT_ERRNO(getsockname(fd, (struct sockaddr *)&ss, &len),
		     EOPNOTSUPP);
	len = sizeof(ss);
	EXPECT_ERRNO(getpeername(fd, (struct sockaddr *)&ss, &len),
		     EOPNOTSUPP);
	EXPECT_ERRNO(shutdown(fd, SHUT_RDWR), EOPNOTSUPP);
	EXPECT_ERRNO(socketpair(AF_KCM, SOCK_DGRAM, KCMPROTO_CONNECTED, sv),
		     EOPNOTSUPP);
	EXPECT_ERRNO((long)mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0),
		     ENODEV);
	close(fd);
}

KCM_TEST(unsupported_socket_calls_seqpacket)
{
	int fd = kcm_socket(SOCK_SEQPACKET);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_KCM;
	EXPECT_ERRNO(bind(fd, (struct sockaddr *)&ss, sizeof(ss)), EOPNOTSUPP);
	EXPECT_ERRNO(connect(fd, (struct sockaddr *)&ss, sizeof(ss)),
		     EOPNOTSUPP);
	EXPECT_ERRNO(listen(fd, 1), EOPNOTSUPP);
	EXPECT_ERRNO(accept(fd, NULL, NULL), EOPNOTSUPP);
	EXPECT_ERRNO(getsockname(fd, (struct sockaddr *)&ss, &len),
		     EOPNOTSUPP);
	EXPECT_ERRNO(shutdown(fd, SHUT_RD), EOPNOTSUPP);
	close(fd);
}

KCM_TEST(close_everything)
{
	int fds[4], tcps[3], peers[3], prog = kcm_prog_len32();
	int i;

	fds[0] = kcm_socket(SOCK_SEQPACKET);
	for (i = 1; i < 4; i++)
		fds[i] = ASSERT_OK(kcm_clone(fds[0]));
	for (i = 0; i < 3; i++) {
		kcm_tcp_pair(AF_INET, &peers[i], &tcps[i]);
		ASSERT_OK(kcm_attach(fds[i], tcps[i], prog));
	}
	close(prog);
	for (i = 0; i < 4; i++)
		ASSERT_OK(close(fds[i]));
	for (i = 0; i < 3; i++) {
		ASSERT_OK(close(tcps[i]));
		ASSERT_OK(close(peers[i]));
	}
	/* The family is still usable afterwards. */
	fds[0] = kcm_socket(SOCK_DGRAM);
	check_kcm_identity(fds[0], SOCK_DGRAM);
	close(fds[0]);
}
