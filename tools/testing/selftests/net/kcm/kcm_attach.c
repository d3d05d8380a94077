// SPDX-License-Identifier: GPL-2.0
/*
 * AF_KCM: attaching and unattaching TCP sockets (SIOCKCMATTACH,
 * SIOCKCMUNATTACH), the errors for sockets and programs that cannot be
 * attached, and tearing down with sockets attached.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

#include "kcm_test.h"

/* A plain TCP round trip in both directions over the pair (a, b). */
static void check_plain_tcp(int a, int b)
{
	char out[] = "plain tcp still works", in[sizeof(out)];

	kcm_write_all(a, out, sizeof(out));
	kcm_set_rcvtimeo(b, 5000);
	kcm_read_all(b, in, sizeof(in));
	ASSERT_MEMEQ(in, out, sizeof(out));
	kcm_write_all(b, out, sizeof(out));
	kcm_set_rcvtimeo(a, 5000);
	kcm_read_all(a, in, sizeof(in));
	ASSERT_MEMEQ(in, out, sizeof(out));
}

/* One framed message from @peer arrives whole on @kcm. */
static void check_kcm_rx(int peer, int kcm, uint32_t seq)
{
	char msg[100], got[200];
	uint32_t c, s;

	kcm_msg_build(msg, sizeof(msg), 9, seq);
	kcm_write_all(peer, msg, sizeof(msg));
	ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0, 5000),
		  sizeof(msg));
	ASSERT_EQ(kcm_msg_check(got, sizeof(msg), &c, &s), 0);
	ASSERT_EQ(s, seq);
}

KCM_TEST(attach_unattach_basic)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int peer, tcp;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	check_kcm_rx(peer, kcm, 1);
	check_kcm_rx(peer, kcm, 2);
	ASSERT_OK(kcm_unattach(kcm, tcp));
	/* Back to a plain TCP socket: bytes go to the TCP fd, not KCM. */
	check_plain_tcp(peer, tcp);
	{
		char b[8];

		EXPECT_ERRNO(kcm_recv_timeout(kcm, b, sizeof(b), 0, 200),
			     EAGAIN);
	}
	close(peer);
	close(tcp);
	close(prog);
	close(kcm);
}

KCM_TEST(attach_ipv6)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int peer, tcp;

	kcm_tcp_pair(AF_INET6, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	check_kcm_rx(peer, kcm, 1);
	ASSERT_OK(kcm_unattach(kcm, tcp));
	check_plain_tcp(peer, tcp);
	close(kcm);
}

KCM_TEST(attach_the_connecting_side)
{
	int kcm = kcm_socket(SOCK_SEQPACKET), prog = kcm_prog_len32();
	int peer, tcp;

	/* Either end of a connection can be attached. */
	kcm_tcp_pair(AF_INET, &tcp, &peer);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	check_kcm_rx(peer, kcm, 5);
	close(kcm);
}

KCM_TEST(attach_with_data_already_queued)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	char msgs[3][64], got[128];
	int peer, tcp, i;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	for (i = 0; i < 3; i++) {
		kcm_msg_build(msgs[i], sizeof(msgs[i]), 0, i);
		kcm_write_all(peer, msgs[i], sizeof(msgs[i]));
	}
	/* Let the data reach the receive queue before attaching. */
	ASSERT_TRUE(kcm_poll1(tcp, POLLIN, 5000) & POLLIN);
	kcm_msleep(100);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0, 5000),
			  sizeof(msgs[i]));
		ASSERT_MEMEQ(got, msgs[i], sizeof(msgs[i]));
	}
	close(kcm);
}

KCM_TEST(reattach_to_another_mux)
{
	int k1 = kcm_socket(SOCK_DGRAM), k2 = kcm_socket(SOCK_DGRAM);
	int prog = kcm_prog_len32();
	int peer, tcp;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(k1, tcp, prog));
	check_kcm_rx(peer, k1, 1);
	ASSERT_OK(kcm_unattach(k1, tcp));
	ASSERT_OK(kcm_attach(k2, tcp, prog));
	check_kcm_rx(peer, k2, 2);
	ASSERT_OK(kcm_unattach(k2, tcp));
	ASSERT_OK(kcm_attach(k1, tcp, prog));
	check_kcm_rx(peer, k1, 3);
	close(k1);
	close(k2);
}

KCM_TEST(attach_through_clone_unattach_through_other)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int c = ASSERT_OK(kcm_clone(kcm));
	int peer, tcp;

	/* Attach and unattach act on the mux, whichever socket is used. */
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(c, tcp, prog));
	ASSERT_OK(kcm_unattach(kcm, tcp));
	check_plain_tcp(peer, tcp);
	close(c);
	close(kcm);
}

/* ---- attach rejects -------------------------------------------------- */

/*
 * Linux's kcm.ko answers EOPNOTSUPP for any socket that is not an
 * established TCP socket over IPv4 or IPv6: UDP, unix, KCM, raw, listening
 * or unconnected TCP.
 */
KCM_TEST(attach_rejects_udp)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int udp = ASSERT_OK(socket(AF_INET, SOCK_DGRAM, 0));
	int udp6 = ASSERT_OK(socket(AF_INET6, SOCK_DGRAM, 0));

	ASSERT_ERRNO(kcm_attach(kcm, udp, prog), EOPNOTSUPP);
	ASSERT_ERRNO(kcm_attach(kcm, udp6, prog), EOPNOTSUPP);
	close(kcm);
}

KCM_TEST(attach_rejects_unix)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int sv[2];

	ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	ASSERT_ERRNO(kcm_attach(kcm, sv[0], prog), EOPNOTSUPP);
	/* No side effect on the unix socket. */
	kcm_write_all(sv[1], "x", 1);
	{
		char ch = 0;

		ASSERT_EQ(read(sv[0], &ch, 1), 1);
		ASSERT_EQ(ch, 'x');
	}
	close(kcm);
}

KCM_TEST(attach_rejects_kcm_socket)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int other = kcm_socket(SOCK_DGRAM);
	int c = ASSERT_OK(kcm_clone(kcm));

	ASSERT_ERRNO(kcm_attach(kcm, kcm, prog), EOPNOTSUPP);
	ASSERT_ERRNO(kcm_attach(kcm, c, prog), EOPNOTSUPP);
	ASSERT_ERRNO(kcm_attach(kcm, other, prog), EOPNOTSUPP);
	close(kcm);
}

KCM_TEST(attach_rejects_raw_ip_tcp_protocol)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int raw = socket(AF_INET, SOCK_RAW, IPPROTO_TCP);

	if (raw < 0)
		kcm_skip("no raw socket: %s", strerror(errno));
	/* A raw socket with protocol IPPROTO_TCP is not a TCP socket. */
	ASSERT_ERRNO(kcm_attach(kcm, raw, prog), EOPNOTSUPP);
	close(kcm);
}

/* Linux's kcm.ko answers ENOENT when the fd is not a socket at all. */
KCM_TEST(attach_rejects_non_socket_fd)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int p[2];

	ASSERT_OK(pipe(p));
	ASSERT_ERRNO(kcm_attach(kcm, p[0], prog), ENOENT);
	ASSERT_ERRNO(kcm_attach(kcm, -1, prog), ENOENT);
	ASSERT_ERRNO(kcm_attach(kcm, 12345, prog), ENOENT);
	close(kcm);
}

KCM_TEST(attach_rejects_listening_tcp)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int lfd = kcm_tcp_listener(AF_INET, 4);
	int c, a;

	ASSERT_ERRNO(kcm_attach(kcm, lfd, prog), EOPNOTSUPP);
	/* The listener still accepts connections. */
	c = kcm_tcp_connect_to(lfd);
	kcm_set_rcvtimeo(lfd, 5000);
	a = ASSERT_OK(accept(lfd, NULL, NULL));
	check_plain_tcp(c, a);
	close(kcm);
}

KCM_TEST(attach_rejects_unconnected_tcp)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int t = ASSERT_OK(socket(AF_INET, SOCK_STREAM, 0));
	int lfd = kcm_tcp_listener(AF_INET, 1);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int a;

	ASSERT_ERRNO(kcm_attach(kcm, t, prog), EOPNOTSUPP);
	/* The socket can still connect and carry plain TCP. */
	ASSERT_OK(getsockname(lfd, (struct sockaddr *)&ss, &len));
	ASSERT_OK(connect(t, (struct sockaddr *)&ss, len));
	a = ASSERT_OK(accept(lfd, NULL, NULL));
	check_plain_tcp(t, a);
	close(kcm);
}

/* Linux's kcm.ko answers EALREADY for a socket that is already attached. */
KCM_TEST(attach_rejects_already_attached_same_mux)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int c = ASSERT_OK(kcm_clone(kcm));
	int peer, tcp;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	ASSERT_ERRNO(kcm_attach(kcm, tcp, prog), EALREADY);
	ASSERT_ERRNO(kcm_attach(c, tcp, prog), EALREADY);
	/* The first attachment is unharmed. */
	check_kcm_rx(peer, kcm, 1);
	close(c);
	close(kcm);
}

KCM_TEST(attach_rejects_already_attached_other_mux)
{
	int k1 = kcm_socket(SOCK_DGRAM), k2 = kcm_socket(SOCK_DGRAM);
	int prog = kcm_prog_len32();
	int peer, tcp;
	char b[8];

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(k1, tcp, prog));
	ASSERT_ERRNO(kcm_attach(k2, tcp, prog), EALREADY);
	check_kcm_rx(peer, k1, 1);
	EXPECT_ERRNO(kcm_recv_timeout(k2, b, sizeof(b), 0, 200), EAGAIN);
	close(k1);
	close(k2);
}

/* Linux's kcm.ko: EBADF for a closed/invalid bpf fd, EINVAL for an fd that
 * is not a BPF program or a program of another type.
 */
KCM_TEST(attach_rejects_bad_bpf_fd)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int peer, tcp;
	int p[2];

	ASSERT_OK(pipe(p));
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_ERRNO(kcm_attach(kcm, tcp, -1), EBADF);
	ASSERT_ERRNO(kcm_attach(kcm, tcp, 12345), EBADF);
	ASSERT_ERRNO(kcm_attach(kcm, tcp, p[0]), EINVAL);
	ASSERT_ERRNO(kcm_attach(kcm, tcp, tcp), EINVAL);
	/* No side effect: still plain TCP, and still attachable. */
	check_plain_tcp(peer, tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	check_kcm_rx(peer, kcm, 1);
	close(kcm);
}

KCM_TEST(attach_rejects_wrong_prog_type)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int wrong = kcm_prog_wrong_type();
	int peer, tcp;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_ERRNO(kcm_attach(kcm, tcp, wrong), EINVAL);
	check_plain_tcp(peer, tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	check_kcm_rx(peer, kcm, 1);
	close(kcm);
}

/* ---- unattach -------------------------------------------------------- */

/* Linux's kcm.ko answers ENOENT for anything that is not one of the mux's
 * attached sockets.
 */
KCM_TEST(unattach_bad_fd)
{
	int kcm = kcm_socket(SOCK_DGRAM);
	int p[2];

	ASSERT_OK(pipe(p));
	ASSERT_ERRNO(kcm_unattach(kcm, -1), ENOENT);
	ASSERT_ERRNO(kcm_unattach(kcm, 12345), ENOENT);
	ASSERT_ERRNO(kcm_unattach(kcm, p[0]), ENOENT);
	close(kcm);
}

KCM_TEST(unattach_not_attached)
{
	int kcm = kcm_socket(SOCK_DGRAM);
	int udp = ASSERT_OK(socket(AF_INET, SOCK_DGRAM, 0));
	int peer, tcp;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_ERRNO(kcm_unattach(kcm, tcp), ENOENT);
	ASSERT_ERRNO(kcm_unattach(kcm, udp), ENOENT);
	ASSERT_ERRNO(kcm_unattach(kcm, kcm), ENOENT);
	check_plain_tcp(peer, tcp);
	close(kcm);
}

KCM_TEST(unattach_attached_to_other_mux)
{
	int k1 = kcm_socket(SOCK_DGRAM), k2 = kcm_socket(SOCK_DGRAM);
	int prog = kcm_prog_len32();
	int peer, tcp;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(k1, tcp, prog));
	ASSERT_ERRNO(kcm_unattach(k2, tcp), ENOENT);
	check_kcm_rx(peer, k1, 1);
	close(k1);
	close(k2);
}

KCM_TEST(unattach_twice)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int peer, tcp;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	ASSERT_OK(kcm_unattach(kcm, tcp));
	ASSERT_ERRNO(kcm_unattach(kcm, tcp), ENOENT);
	check_plain_tcp(peer, tcp);
	close(kcm);
}

/*
 * Half a message has arrived when the socket is unattached: the bytes KCM
 * has not delivered are still readable on the TCP socket, followed by the
 * rest of the stream.  Linux's kcm.ko has already taken them off the TCP
 * receive queue into its parser, and they are lost.
 */
#define UNATTACH_LOSES_BYTES \
	"unattach drops the bytes of a partly received message"

KCM_TEST(unattach_mid_message_keeps_bytes,
	 KCM_LINUX_BUG(UNATTACH_LOSES_BYTES))
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	char msg[200], got[200];
	int peer, tcp;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	check_kcm_rx(peer, kcm, 1);
	kcm_msg_build(msg, sizeof(msg), 3, 3);
	kcm_write_all(peer, msg, 80);
	kcm_msleep(300);
	ASSERT_ERRNO(kcm_recv_timeout(kcm, got, sizeof(got), 0, 100), EAGAIN);
	ASSERT_OK(kcm_unattach(kcm, tcp));
	kcm_write_all(peer, msg + 80, sizeof(msg) - 80);
	kcm_set_rcvtimeo(tcp, 5000);
	kcm_read_all(tcp, got, sizeof(msg));
	ASSERT_MEMEQ(got, msg, sizeof(msg));
	check_plain_tcp(peer, tcp);
	close(kcm);
}

KCM_TEST(unattach_mid_header_keeps_bytes,
	 KCM_LINUX_BUG(UNATTACH_LOSES_BYTES))
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	char msg[40], got[40];
	int peer, tcp;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	kcm_msg_build(msg, sizeof(msg), 3, 3);
	kcm_write_all(peer, msg, 2);
	kcm_msleep(300);
	ASSERT_OK(kcm_unattach(kcm, tcp));
	kcm_write_all(peer, msg + 2, sizeof(msg) - 2);
	kcm_set_rcvtimeo(tcp, 5000);
	kcm_read_all(tcp, got, sizeof(msg));
	ASSERT_MEMEQ(got, msg, sizeof(msg));
	close(kcm);
}

/* ---- teardown -------------------------------------------------------- */

KCM_TEST(close_kcm_with_psocks_attached)
{
	enum { NT = 3 };
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int c = ASSERT_OK(kcm_clone(kcm));
	int peers[NT], tcps[NT], i;

	for (i = 0; i < NT; i++) {
		kcm_tcp_pair(AF_INET, &peers[i], &tcps[i]);
		ASSERT_OK(kcm_attach(kcm, tcps[i], prog));
	}
	check_kcm_rx(peers[0], kcm, 1);
	/* One message left queued on the mux when it goes away. */
	{
		char msg[64];

		kcm_msg_build(msg, sizeof(msg), 0, 2);
		kcm_write_all(peers[1], msg, sizeof(msg));
		kcm_msleep(100);
	}
	ASSERT_OK(close(kcm));
	ASSERT_OK(close(c));
	close(prog);
	/* With the mux gone the TCP sockets are plain TCP again. */
	kcm_msleep(200);
	for (i = 0; i < NT; i++)
		if (i != 1)
			check_plain_tcp(peers[i], tcps[i]);
	for (i = 0; i < NT; i++) {
		ASSERT_OK(close(tcps[i]));
		ASSERT_OK(close(peers[i]));
	}
}

KCM_TEST(close_tcp_fd_while_attached)
{
	int kcm = kcm_socket(SOCK_DGRAM), prog = kcm_prog_len32();
	int p1, t1, p2, t2;

	kcm_tcp_pair(AF_INET, &p1, &t1);
	kcm_tcp_pair(AF_INET, &p2, &t2);
	ASSERT_OK(kcm_attach(kcm, t1, prog));
	ASSERT_OK(kcm_attach(kcm, t2, prog));
	check_kcm_rx(p1, kcm, 1);
	/* Userspace drops its reference to an attached socket. */
	ASSERT_OK(close(t1));
	kcm_msleep(100);
	/* The other psock keeps working, and so does the mux. */
	check_kcm_rx(p2, kcm, 2);
	ASSERT_OK(kcm_unattach(kcm, t2));
	check_plain_tcp(p2, t2);
	close(p1);
	kcm_msleep(100);
	ASSERT_OK(close(kcm));
}

KCM_TEST(close_peer_then_kcm)
{
	int kcm = kcm_socket(SOCK_SEQPACKET), prog = kcm_prog_len32();
	int peer, tcp;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(kcm_attach(kcm, tcp, prog));
	check_kcm_rx(peer, kcm, 1);
	ASSERT_OK(close(peer));
	kcm_msleep(100);
	ASSERT_OK(close(kcm));
	ASSERT_OK(close(tcp));
}
