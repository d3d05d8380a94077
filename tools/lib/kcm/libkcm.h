/* SPDX-License-Identifier: GPL-2.0 */
/*
 * libkcm: small helpers for AF_KCM applications.
 *
 *  - KCM sockets: create, clone, attach and unattach TCP sockets;
 *  - framing programs built at run time, without a compiler: the library
 *    emits the BPF instructions of a "length field" parser and loads them
 *    with the bpf() system call as a BPF_PROG_TYPE_SOCKET_FILTER program
 *    (license "GPL").
 *
 * A framing is described by struct libkcm_framing:
 *
 *	message length = value of the length field + adj
 *
 * where the length field is @width bytes (1, 2 or 4) at byte @offset of the
 * message, big or little endian.  Examples:
 *
 *	4-byte big-endian prefix that excludes itself (Thrift framed):
 *		{ .offset = 0, .width = 4, .endian = LIBKCM_BIG_ENDIAN, .adj = 4 }
 *	memcached binary protocol (body length at 8, 24-byte header):
 *		{ .offset = 8, .width = 4, .endian = LIBKCM_BIG_ENDIAN, .adj = 24 }
 *
 * The generated program returns, for the message at offset 0:
 *	0		when the bytes up to the end of the length field have not
 *			all arrived yet (the kernel runs it again later);
 *	-EBADMSG	when the length is smaller than offset + width (a message
 *			always contains its own length field);
 *	-EMSGSIZE	when the length exceeds @max_len (or INT_MAX when
 *			@max_len is 0);
 *	the length	otherwise.
 *
 * Every function returns -1 and sets errno on failure (like a system call)
 * unless said otherwise.  Bad framings are refused before anything is
 * loaded:
 *	EINVAL	@width not 1, 2 or 4; @endian not LIBKCM_BIG_ENDIAN or
 *		LIBKCM_LITTLE_ENDIAN; @max_len non-zero but smaller than
 *		offset + width; @flags not 0; a NULL pointer;
 *	ERANGE	@offset + @width beyond LIBKCM_MAX_OFFSET; @adj outside
 *		[-LIBKCM_MAX_ADJ, LIBKCM_MAX_ADJ]; @max_len above INT_MAX.
 * libkcm_framing_strerror() says in words what is wrong with a framing.
 */
#ifndef LIBKCM_H
#define LIBKCM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LIBKCM_BIG_ENDIAN	0
#define LIBKCM_LITTLE_ENDIAN	1

/* Limits of a framing (see ERANGE above). */
#define LIBKCM_MAX_OFFSET	65535		/* offset + width <= this */
#define LIBKCM_MAX_ADJ		(1 << 24)	/* |adj| <= this */

/* Instructions a framing program has at most. */
#define LIBKCM_MAX_INSNS	32

struct libkcm_framing {
	uint32_t offset;	/* byte offset of the length field */
	uint32_t width;		/* 1, 2 or 4 bytes */
	uint32_t endian;	/* LIBKCM_BIG_ENDIAN or LIBKCM_LITTLE_ENDIAN */
	int32_t adj;		/* message length = field + adj */
	uint32_t max_len;	/* 0: no limit but INT_MAX */
	uint32_t flags;		/* must be 0 */
};

struct bpf_insn;

/* ---- KCM sockets ------------------------------------------------------- */

/* socket(AF_KCM, @type, KCMPROTO_CONNECTED); @type SOCK_DGRAM or
 * SOCK_SEQPACKET.  Creates a mux and its first KCM socket.
 */
int libkcm_socket(int type);
/* SIOCKCMCLONE: a new KCM socket on the mux of @kcmfd. */
int libkcm_clone(int kcmfd);
/* SIOCKCMATTACH of the TCP socket @tcpfd with the framing program @progfd;
 * the program fd may be closed afterwards.  0 or -1.
 */
int libkcm_attach(int kcmfd, int tcpfd, int progfd);
/* SIOCKCMUNATTACH.  0 or -1. */
int libkcm_unattach(int kcmfd, int tcpfd);
/* Attach @tcpfd framed by @f: read by the kernel itself where it can
 * (SIOCKCMATTACHLEN: no program, no privilege needed), else with the
 * program of @f (Linux's kcm.ko answers that ioctl ENOTTY).  0 or -1.
 */
int libkcm_attach_framing(int kcmfd, int tcpfd,
			  const struct libkcm_framing *f);
/* Build and load the program of @f, attach @tcpfd with it and close the
 * program, whatever the kernel can do.  0 or -1.
 */
int libkcm_attach_framing_prog(int kcmfd, int tcpfd,
			       const struct libkcm_framing *f);

/* ---- framing programs -------------------------------------------------- */

/* 0 if @f is valid, else -1 with errno (EINVAL, ERANGE). */
int libkcm_framing_check(const struct libkcm_framing *f);
/* NULL if @f is valid, else a sentence saying what is wrong. */
const char *libkcm_framing_strerror(const struct libkcm_framing *f);
/*
 * Write the program of @f into @insns (room for @cap instructions;
 * LIBKCM_MAX_INSNS always suffice).  Returns the number of instructions,
 * or -1 with errno (EINVAL, ERANGE, ENOSPC when @cap is too small).
 */
int libkcm_framing_build(const struct libkcm_framing *f,
			 struct bpf_insn *insns, int cap);
/*
 * Build and load the program of @f.  Returns the program fd, or -1 with
 * errno: a bad framing as above, or the bpf() error (EPERM without
 * CAP_BPF/CAP_SYS_ADMIN, ...).  If @log is not NULL, it receives the
 * verifier's log of a failed load (NUL-terminated, at most @log_size bytes).
 */
int libkcm_framing_load(const struct libkcm_framing *f, char *log,
			size_t log_size);
/* Load @cnt raw instructions as a socket filter with license "GPL". */
int libkcm_prog_load(const struct bpf_insn *insns, int cnt, char *log,
		     size_t log_size);

/* Shorthand: libkcm_framing_load() of { offset, width, endian, adj, max }. */
int libkcm_length_prog(uint32_t offset, uint32_t width, uint32_t endian,
		       int32_t adj, uint32_t max_len);

/* Write the length field of @f for a message of @total bytes into @hdr,
 * which must have offset + width bytes.  0, or -1 with errno (ERANGE when
 * the field cannot hold total - adj).
 */
int libkcm_framing_put(const struct libkcm_framing *f, void *hdr,
		       uint64_t total);

#ifdef __cplusplus
}
#endif

#endif /* LIBKCM_H */
