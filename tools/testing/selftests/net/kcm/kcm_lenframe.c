// SPDX-License-Identifier: GPL-2.0
/*
 * SIOCKCMATTACHLEN: a TCP socket framed by a length field that the module
 * reads itself, with no program (an extension; include/uapi/linux/kcm.h).
 * The framings libkcm can describe are also run through libkcm in kcm_lib;
 * here: what only the ioctl offers (8-byte fields), fields that straddle
 * TCP segments or were taken out of TCP before they were whole, the
 * checks of a description, the errors posted on the TCP socket, and
 * attaching without privilege.
 */
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/bpf.h>

#include "kcm_test.h"

static int attach_len(int kcm, int tcp, uint32_t flags, uint32_t offset,
		      uint32_t width, int32_t adjust, uint32_t max_len)
{
	struct kcm_attach_len a = {
		.fd = tcp, .flags = flags, .offset = offset, .width = width,
		.adjust = adjust, .max_len = max_len,
	};

	return ioctl(kcm, SIOCKCMATTACHLEN, &a);
}

struct framing {
	uint32_t flags, offset, width;
	int32_t adjust;
};

/*
 * A message of total bytes for f: a pattern of seed, with the length field
 * written over it.
 */
static void build(const struct framing *f, uint8_t *m, size_t total,
		  uint32_t seed)
{
	uint64_t v = total - f->adjust;
	uint32_t k;

	for (k = 0; k < total; k++)
		m[k] = (uint8_t)(seed * 167 + k * 13 + (k >> 7));
	for (k = 0; k < f->width; k++) {
		uint32_t shift = f->flags & KCM_LEN_LITTLE_ENDIAN ?
				 8 * k : 8 * (f->width - 1 - k);

		m[f->offset + k] = (uint8_t)(v >> shift);
	}
}

/* The lane's answer to the ioctl: ours attaches, Linux's has no such
 * ioctl (ENOTTY, as documented in the uapi header and relied on by
 * libkcm's fallback).
 */
KCM_TEST(len_ioctl_answer)
{
	int kcm = kcm_socket(SOCK_DGRAM), peer, tcp;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	if (kcm_lane_is_linux())
		ASSERT_ERRNO(attach_len(kcm, tcp, 0, 0, 4, 4, 0), ENOTTY);
	else
		ASSERT_OK(attach_len(kcm, tcp, 0, 0, 4, 4, 0));
	close(kcm);
	close(tcp);
	close(peer);
}

/* Each bad description is refused with EINVAL and attaches nothing. */
KCM_TEST(len_invalid_descriptions_einval, KCM_EXT)
{
	static const struct {
		uint32_t flags, offset, width;
		uint32_t max_len;
	} bad[] = {
		{ 2, 0, 4, 0 },			/* unknown flag */
		{ 0x80000000, 0, 4, 0 },
		{ 0, 0, 0, 0 },			/* widths */
		{ 0, 0, 3, 0 },
		{ 0, 0, 5, 0 },
		{ 0, 0, 16, 0 },
		{ 0, 65532, 4, 0 },		/* field ends past 65535 */
		{ 0, 65535, 1, 0 },
		{ 0, 0xfffffffc, 4, 0 },	/* offset + width wraps */
		{ 0, 4, 4, 7 },			/* max_len under the header */
		{ 0, 0, 4, 0x80000000u },	/* max_len above INT_MAX */
	};
	int kcm = kcm_socket(SOCK_DGRAM), peer, tcp;
	char m[8] = { 0, 0, 0, 4, 'a', 'b', 'c', 'd' };
	size_t i;

	kcm_tcp_pair(AF_INET, &peer, &tcp);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		if (attach_len(kcm, tcp, bad[i].flags, bad[i].offset,
			       bad[i].width, 0, bad[i].max_len) != -1 ||
		    errno != EINVAL)
			KCM_FAIL("description %zu: %s, not EINVAL", i,
				 errno ? kcm_errname(errno) : "attached");
	}
	/* The edges that are allowed. */
	ASSERT_OK(attach_len(kcm, tcp, 0, 65531, 4, 0, 65535));
	ASSERT_OK(kcm_unattach(kcm, tcp));
	/* Still a plain TCP socket, then attached for real. */
	ASSERT_OK(attach_len(kcm, tcp, 0, 0, 4, 4, 0));
	kcm_write_all(peer, m, sizeof(m));
	ASSERT_EQ(kcm_recv_timeout(kcm, m, sizeof(m), 0, 5000), 8);
	close(kcm);
	close(tcp);
	close(peer);
}

/*
 * A stream of messages of sizes 16..2000, packed back to back and written
 * in chunks of 1 to 3000 bytes by a child, received whole and in order.
 */
static void len_stream(const struct framing *f, int family, int nmsg)
{
	uint8_t *all, *want, got[2100];
	size_t *sizes, used = 0, off;
	uint64_t rnd = 0x51ab1e ^ (f->offset * 131 + f->width * 7 + f->flags);
	int kcm, peer, tcp, i;
	pid_t pid;

	kcm = kcm_socket(SOCK_DGRAM);
	kcm_tcp_pair(family, &peer, &tcp);
	ASSERT_OK(attach_len(kcm, tcp, f->flags, f->offset, f->width,
			     f->adjust, 0));
	sizes = kcm_xmalloc(nmsg * sizeof(*sizes));
	for (i = 0; i < nmsg; i++) {
		sizes[i] = 16 + kcm_rand(&rnd) % 1985;
		used += sizes[i];
	}
	all = kcm_xmalloc(used);
	for (i = 0, off = 0; i < nmsg; off += sizes[i], i++)
		build(f, all + off, sizes[i], i);
	pid = ASSERT_OK(fork());
	if (!pid) {
		for (off = 0; off < used;) {
			size_t n = 1 + kcm_rand(&rnd) % 3000;

			n = n < used - off ? n : used - off;
			kcm_write_all(peer, all + off, n);
			off += n;
		}
		_exit(0);
	}
	for (i = 0, want = all; i < nmsg; want += sizes[i], i++) {
		ssize_t n = kcm_recv_timeout(kcm, got, sizeof(got), 0, 10000);

		if (n < 0)
			KCM_FAIL("message %d of %d (%zu bytes): %s, SO_ERROR of the TCP socket %s",
				 i, nmsg, sizes[i], kcm_errname(errno),
				 kcm_errname(kcm_so_error(tcp)));
		ASSERT_EQ(n, (ssize_t)sizes[i]);
		ASSERT_MEMEQ(got, want, sizes[i]);
	}
	ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0, 100), -1);
	waitpid(pid, NULL, 0);
	free(all);
	free(sizes);
	close(kcm);
	close(tcp);
	close(peer);
}

/* 8-byte fields, which libkcm's programs do not do, in both byte orders. */
KCM_TEST(len_width8_big_endian, KCM_EXT)
{
	len_stream(&(struct framing){ 0, 2, 8, 10 }, AF_INET, 300);
}

KCM_TEST(len_width8_little_endian, KCM_EXT)
{
	len_stream(&(struct framing){ KCM_LEN_LITTLE_ENDIAN, 0, 8, 0 },
		   AF_INET6, 300);
}

/* A 2-byte little-endian field at 13, after a header the field excludes. */
KCM_TEST(len_width2_far_field, KCM_EXT)
{
	len_stream(&(struct framing){ KCM_LEN_LITTLE_ENDIAN, 13, 2, 15 },
		   AF_INET, 300);
}

/*
 * Each message written a byte at a time up to the end of its length field,
 * every byte its own TCP segment (TCP_NODELAY, each acknowledged before the
 * next is written): the field lies across several skbs, and the module
 * reads it from all of them.
 */
/*
 * A KCM socket and a TCP pair attached with @f, the peer sending each write
 * at once (TCP_NODELAY); @rcvbuf, if not 0, the attached socket's
 * SO_RCVBUF.
 */
static int segments_pair(const struct framing *f, int family, int rcvbuf,
			 int *peer, int *tcp)
{
	int kcm = kcm_socket(SOCK_DGRAM), one = 1;

	kcm_tcp_pair(family, peer, tcp);
	if (rcvbuf)
		ASSERT_OK(setsockopt(*tcp, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
				     sizeof(rcvbuf)));
	ASSERT_OK(setsockopt(*peer, IPPROTO_TCP, TCP_NODELAY, &one,
			     sizeof(one)));
	ASSERT_OK(attach_len(kcm, *tcp, f->flags, f->offset, f->width,
			     f->adjust, 0));
	return kcm;
}

static void field_across_segments(int family)
{
	const struct framing f = { 0, 5, 4, 0 };
	uint8_t m[300], got[300];
	int kcm, peer, tcp, i;

	kcm = segments_pair(&f, family, 0, &peer, &tcp);
	for (i = 0; i < 6; i++) {
		size_t size = 20 + 47 * i, k;

		build(&f, m, size, i);
		for (k = 0; k < f.offset + f.width; k++) {
			kcm_write_all(peer, m + k, 1);
			kcm_wait_acked(peer);
			/* Not a message yet. */
			ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0,
						   0), -1);
		}
		kcm_write_all(peer, m + k, size - k);
		ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0, 5000),
			  (ssize_t)size);
		ASSERT_MEMEQ(got, m, size);
	}
	close(kcm);
	close(tcp);
	close(peer);
}

KCM_TEST(len_field_across_segments_v4, KCM_EXT, KCM_TIMEOUT(60))
{
	field_across_segments(AF_INET);
}

KCM_TEST(len_field_across_segments_v6, KCM_EXT, KCM_TIMEOUT(60))
{
	field_across_segments(AF_INET6);
}

/*
 * A field at offset 3000 behind a tiny receive buffer, its bytes arriving
 * in 100-byte segments: the header's skbs would hold more than half of the
 * buffer, so the module takes them out of TCP before the field is in, and
 * reads the field partly from what it took out, partly from TCP.
 */
KCM_TEST(len_field_after_take_out, KCM_EXT, KCM_TIMEOUT(60))
{
	/* Little-endian: the bytes taken out are the value's low ones. */
	const struct framing f = { KCM_LEN_LITTLE_ENDIAN, 3000, 4, 0 };
	static uint8_t m[3300], got[3300];
	int kcm, peer, tcp, round;

	kcm = segments_pair(&f, AF_INET, 4096, &peer, &tcp);
	for (round = 0; round < 3; round++) {
		size_t size = 3004 + 100 * round, k;

		build(&f, m, size, round);
		/* Up to two bytes into the field, 100 bytes a segment. */
		for (k = 0; k < f.offset + 2; k += 100) {
			size_t n = f.offset + 2 - k < 100 ? f.offset + 2 - k :
							    100;

			kcm_write_all(peer, m + k, n);
			kcm_wait_acked(peer);
		}
		ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0, 0), -1);
		kcm_write_all(peer, m + f.offset + 2, size - f.offset - 2);
		ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0, 5000),
			  (ssize_t)size);
		ASSERT_MEMEQ(got, m, size);
	}
	close(kcm);
	close(tcp);
	close(peer);
}

/*
 * An 8-byte field whose value does not fit 32 bits is too long a message:
 * EMSGSIZE on the TCP socket, as one longer than max_len is.
 */
KCM_TEST(len_width8_huge_emsgsize, KCM_EXT)
{
	uint8_t m[16] = { 0, 0, 0, 1, 0, 0, 0, 16 };	/* 2^32 + 16 */
	int kcm, peer, tcp;

	kcm = kcm_socket(SOCK_DGRAM);
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(attach_len(kcm, tcp, 0, 0, 8, 0, 0));
	kcm_write_all(peer, m, sizeof(m));
	ASSERT_TRUE(kcm_poll1(tcp, POLLERR, 5000) & POLLERR);
	ASSERT_EQ(kcm_so_error(tcp), EMSGSIZE);
	close(kcm);
	close(tcp);
	close(peer);
}

/* Unattached in the middle of a message: its bytes stay on the socket. */
KCM_TEST(len_unattach_mid_message_keeps_bytes, KCM_EXT)
{
	const struct framing f = { 0, 0, 2, 2 };
	uint8_t m[200], got[200];
	int kcm, peer, tcp;

	kcm = kcm_socket(SOCK_DGRAM);
	kcm_tcp_pair(AF_INET6, &peer, &tcp);
	ASSERT_OK(attach_len(kcm, tcp, f.flags, f.offset, f.width, f.adjust,
			     0));
	build(&f, m, sizeof(m), 7);
	kcm_write_all(peer, m, 120);
	kcm_wait_acked(peer);
	ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0, 0), -1);
	ASSERT_OK(kcm_unattach(kcm, tcp));
	kcm_write_all(peer, m + 120, 80);
	kcm_read_all(tcp, got, sizeof(m));
	ASSERT_MEMEQ(got, m, sizeof(m));
	close(kcm);
	close(tcp);
	close(peer);
}

/* Drops to an unprivileged user: no capabilities left. */
static void become_nobody(void)
{
	ASSERT_OK(setgroups(0, NULL));
	ASSERT_OK(setresgid(65534, 65534, 65534));
	ASSERT_OK(setresuid(65534, 65534, 65534));
}

/*
 * In a child dropped to nobody: a KCM socket, a TCP pair, attached framed
 * by @prog, or by the same 4-byte length field read by the module when
 * @prog is -1; one message must come through whole.
 */
static void exchange_as_nobody(int prog)
{
	const struct framing f = { 0, 0, 4, 4 };	/* kcm_prog_len32()'s */
	int st;
	pid_t pid = ASSERT_OK(fork());

	if (!pid) {
		uint8_t m[64], got[64];
		int kcm, peer, tcp;

		become_nobody();
		kcm = kcm_socket(SOCK_DGRAM);
		kcm_tcp_pair(AF_INET, &peer, &tcp);
		if (prog < 0)
			ASSERT_OK(attach_len(kcm, tcp, f.flags, f.offset,
					     f.width, f.adjust, 0));
		else
			ASSERT_OK(kcm_attach(kcm, tcp, prog));
		build(&f, m, sizeof(m), 3);
		kcm_write_all(peer, m, sizeof(m));
		ASSERT_EQ(kcm_recv_timeout(kcm, got, sizeof(got), 0, 5000),
			  (ssize_t)sizeof(m));
		ASSERT_MEMEQ(got, m, sizeof(m));
		_exit(kcm_case_failed);
	}
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
}

/*
 * A process with no privilege attaches with a length field and receives
 * its messages: no BPF program is loaded, so nothing that Debian's
 * unprivileged_bpf_disabled refuses is needed.
 */
KCM_TEST(len_attach_unprivileged, KCM_EXT)
{
	exchange_as_nobody(-1);
}

/*
 * A program loaded by a privileged process and passed down attaches in an
 * unprivileged one, on both modules: attaching asks no more than Linux's
 * does.
 */
KCM_TEST(prog_attach_unprivileged_passed_fd)
{
	exchange_as_nobody(kcm_prog_len32());
}
