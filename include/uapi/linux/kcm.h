/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Kernel Connection Multiplexor (AF_KCM): user-space ABI.
 *
 * This header is binary-compatible with the linux/kcm.h that Linux has
 * shipped since 4.6: every number and structure layout below is fixed.
 *
 * A socket(AF_KCM, SOCK_DGRAM or SOCK_SEQPACKET, KCMPROTO_CONNECTED) call
 * creates a multiplexor together with its first KCM socket.  The ioctls,
 * issued on any KCM socket of a multiplexor, act on that multiplexor:
 *
 * SIOCKCMATTACH takes a struct kcm_attach: @fd names an established TCP
 *	socket and @bpf_fd a BPF_PROG_TYPE_SOCKET_FILTER program.  The program
 *	is run at the start of every message with the message's first byte at
 *	offset 0 and returns the length of the whole message.
 * SIOCKCMUNATTACH takes a struct kcm_unattach: @fd names a TCP socket
 *	previously attached to this multiplexor; it becomes a plain TCP socket
 *	again.
 * SIOCKCMCLONE takes a struct kcm_clone: on return @fd holds a new KCM
 *	socket joined to the same multiplexor.
 *
 * setsockopt(fd, SOL_KCM, KCM_RECV_DISABLE, &int, sizeof(int)) with a
 * non-zero value stops new messages reaching that socket and moves the
 * messages already queued on it to the other sockets of the multiplexor;
 * zero enables receiving again.  getsockopt reads the setting back.
 *
 * Extensions of this implementation (numbered from 100 up so that they can
 * never collide with an option Linux defines):
 *
 * KCM_RECV_ORIGIN (int, SOL_KCM): when non-zero, every message received on
 *	the socket carries a control message of level SOL_KCM and type
 *	KCM_ORIGIN whose data is the __u64 socket cookie (SO_COOKIE) of the TCP
 *	socket the message arrived on.  Off by default.
 * KCM_ORIGIN (cmsg type, SOL_KCM): given to sendmsg with a __u64 socket
 *	cookie, sends the message on the attached TCP socket with that cookie
 *	and on no other.
 * KCM_RECV_BATCH (int, SOL_KCM, SOCK_DGRAM sockets only): when non-zero,
 *	one recvmsg returns as many whole messages as fit in its buffer, in
 *	order, each preceded by its length as a __u32 in host byte order,
 *	with no padding.  The return value is the bytes copied, headers
 *	included.  If the first message does not fit, its header and what
 *	fits of it are copied, MSG_TRUNC is set and the message is consumed,
 *	as a SOCK_DGRAM recvmsg does.  With KCM_RECV_ORIGIN on, the messages
 *	of one call all came from one TCP socket, named by one KCM_ORIGIN
 *	control message.  MSG_PEEK copies the same and consumes nothing.
 *	Off by default; setting it on a SOCK_SEQPACKET socket fails with
 *	EOPNOTSUPP.
 * SIOCKCMATTACHLEN (ioctl) takes a struct kcm_attach_len: attaches @fd as
 *	SIOCKCMATTACH does, but frames its stream by a length field that the
 *	kernel reads itself, with no program: the field is @width bytes (1,
 *	2, 4 or 8) at byte @offset of each message, big-endian, or
 *	little-endian with KCM_LEN_LITTLE_ENDIAN in @flags; the message,
 *	its header included, is the field's value plus @adjust bytes long
 *	(@adjust = @offset + @width for a field that counts only what follows
 *	it).  A length shorter than @offset + @width posts EBADMSG on the TCP
 *	socket, one longer than @max_len (when not 0) or than the receive
 *	buffer posts EMSGSIZE.  EINVAL for @width not 1, 2, 4 or 8, unknown
 *	@flags, @offset + @width above KCM_LEN_MAX_HEADER, a @max_len under
 *	@offset + @width or above INT_MAX.  No BPF program is loaded, so no
 *	privilege is needed.  Linux's module answers ENOTTY.
 */
#ifndef _UAPI_LINUX_KCM_H
#define _UAPI_LINUX_KCM_H

#include <linux/types.h>

struct kcm_attach {
	int fd;
	int bpf_fd;
};

struct kcm_unattach {
	int fd;
};

struct kcm_clone {
	int fd;
};

#define SIOCKCMATTACH	(SIOCPROTOPRIVATE + 0)
#define SIOCKCMUNATTACH	(SIOCPROTOPRIVATE + 1)
#define SIOCKCMCLONE	(SIOCPROTOPRIVATE + 2)

/* Extension: see above.  Far from Linux's three in the private range. */
struct kcm_attach_len {
	int fd;
	__u32 flags;
	__u32 offset;
	__u32 width;
	__s32 adjust;
	__u32 max_len;
};

#define KCM_LEN_LITTLE_ENDIAN	1
#define KCM_LEN_MAX_HEADER	65535

#define SIOCKCMATTACHLEN	(SIOCPROTOPRIVATE + 8)

#define KCMPROTO_CONNECTED	0

/* Socket options (level SOL_KCM) */
#define KCM_RECV_DISABLE	1

/* Extensions of this implementation: see above */
#define KCM_RECV_ORIGIN		100
#define KCM_ORIGIN		101
#define KCM_RECV_BATCH		102

#endif /* _UAPI_LINUX_KCM_H */
