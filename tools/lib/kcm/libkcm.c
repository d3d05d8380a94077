// SPDX-License-Identifier: GPL-2.0
/*
 * libkcm: KCM socket helpers and run-time framing programs.  See libkcm.h.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include <linux/sockios.h>
#include <linux/kcm.h>

#include "libkcm.h"

#ifndef AF_KCM
#define AF_KCM 41
#endif

/* ---- KCM sockets ------------------------------------------------------- */

int libkcm_socket(int type)
{
	return socket(AF_KCM, type, KCMPROTO_CONNECTED);
}

int libkcm_clone(int kcmfd)
{
	struct kcm_clone req;

	memset(&req, 0, sizeof(req));
	req.fd = -1;
	if (ioctl(kcmfd, SIOCKCMCLONE, &req) < 0)
		return -1;
	return req.fd;
}

int libkcm_attach(int kcmfd, int tcpfd, int progfd)
{
	struct kcm_attach req;

	memset(&req, 0, sizeof(req));
	req.fd = tcpfd;
	req.bpf_fd = progfd;
	return ioctl(kcmfd, SIOCKCMATTACH, &req) < 0 ? -1 : 0;
}

int libkcm_unattach(int kcmfd, int tcpfd)
{
	struct kcm_unattach req;

	memset(&req, 0, sizeof(req));
	req.fd = tcpfd;
	return ioctl(kcmfd, SIOCKCMUNATTACH, &req) < 0 ? -1 : 0;
}

int libkcm_attach_framing(int kcmfd, int tcpfd,
			  const struct libkcm_framing *f)
{
	struct kcm_attach_len req;

	if (libkcm_framing_check(f))
		return -1;
	memset(&req, 0, sizeof(req));
	req.fd = tcpfd;
	req.flags = f->endian == LIBKCM_LITTLE_ENDIAN ? KCM_LEN_LITTLE_ENDIAN : 0;
	req.offset = f->offset;
	req.width = f->width;
	req.adjust = f->adj;
	req.max_len = f->max_len;
	if (!ioctl(kcmfd, SIOCKCMATTACHLEN, &req))
		return 0;
	/* A kernel without it (Linux's kcm.ko): the same framing, as a
	 * program.
	 */
	if (errno != ENOTTY)
		return -1;
	return libkcm_attach_framing_prog(kcmfd, tcpfd, f);
}

int libkcm_attach_framing_prog(int kcmfd, int tcpfd,
			       const struct libkcm_framing *f)
{
	int prog, ret, err;

	prog = libkcm_framing_load(f, NULL, 0);
	if (prog < 0)
		return -1;
	ret = libkcm_attach(kcmfd, tcpfd, prog);
	err = errno;
	close(prog);
	errno = err;
	return ret;
}

/* ---- framing checks ---------------------------------------------------- */

/* The first problem of @f: a sentence and the errno that goes with it. */
static const char *framing_problem(const struct libkcm_framing *f, int *err)
{
	*err = EINVAL;
	if (!f)
		return "no framing given (NULL)";
	if (f->flags)
		return "unknown flags (must be 0)";
	if (f->width != 1 && f->width != 2 && f->width != 4)
		return "the length field's width must be 1, 2 or 4 bytes";
	if (f->endian != LIBKCM_BIG_ENDIAN && f->endian != LIBKCM_LITTLE_ENDIAN)
		return "endian must be LIBKCM_BIG_ENDIAN or LIBKCM_LITTLE_ENDIAN";
	*err = ERANGE;
	if (f->offset > LIBKCM_MAX_OFFSET ||
	    f->offset + f->width > LIBKCM_MAX_OFFSET)
		return "the length field ends beyond LIBKCM_MAX_OFFSET";
	if (f->adj > LIBKCM_MAX_ADJ || f->adj < -LIBKCM_MAX_ADJ)
		return "adj is outside [-LIBKCM_MAX_ADJ, LIBKCM_MAX_ADJ]";
	if (f->max_len > INT_MAX)
		return "max_len is above INT_MAX";
	*err = EINVAL;
	if (f->max_len && f->max_len < f->offset + f->width)
		return "max_len is smaller than the header (offset + width)";
	*err = 0;
	return NULL;
}

int libkcm_framing_check(const struct libkcm_framing *f)
{
	int err;

	if (framing_problem(f, &err)) {
		errno = err;
		return -1;
	}
	return 0;
}

const char *libkcm_framing_strerror(const struct libkcm_framing *f)
{
	int err;

	return framing_problem(f, &err);
}

/* ---- program generation ------------------------------------------------ */

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src,
			    int16_t off, int32_t imm)
{
	struct bpf_insn i;

	memset(&i, 0, sizeof(i));
	i.code = code;
	i.dst_reg = dst;
	i.src_reg = src;
	i.off = off;
	i.imm = imm;
	return i;
}

/*
 * The program (r6 must hold the context for the legacy packet loads, which
 * return from the program with 0 when the packet is too short - exactly
 * "not enough bytes yet" for KCM):
 *
 *	r6 = r1
 *   big endian:
 *	r0 = be load of width bytes at offset		(BPF_LD|BPF_ABS)
 *   little endian (endian-neutral: one byte at a time, last byte first):
 *	r7 = byte[offset + width - 1]
 *	r7 = (r7 << 8) | byte[offset + k]	for k = width - 2 .. 0
 *	r0 = r7
 *	r0 += adj				(64-bit: cannot overflow)
 *	if (s64)r0 < offset + width goto bad
 *	if r0 > limit goto big
 *	exit
 * bad:	r0 = -EBADMSG; exit
 * big:	r0 = -EMSGSIZE; exit
 */
int libkcm_framing_build(const struct libkcm_framing *f,
			 struct bpf_insn *insns, int cap)
{
	struct bpf_insn p[LIBKCM_MAX_INSNS];
	static const uint8_t size_of[5] = { 0, BPF_B, BPF_H, 0, BPF_W };
	int n = 0, k, jbad, jbig;
	int32_t limit;

	if (libkcm_framing_check(f) < 0)
		return -1;
	if (!insns) {
		errno = EINVAL;
		return -1;
	}
	limit = f->max_len ? (int32_t)f->max_len : INT_MAX;

	p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_1, 0, 0);
	if (f->endian == LIBKCM_BIG_ENDIAN || f->width == 1) {
		p[n++] = insn(BPF_LD | size_of[f->width] | BPF_ABS, 0, 0, 0,
			      (int32_t)f->offset);
	} else {
		/* Loads clobber r0-r5: accumulate in r7. */
		p[n++] = insn(BPF_LD | BPF_B | BPF_ABS, 0, 0, 0,
			      (int32_t)(f->offset + f->width - 1));
		p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_7,
			      BPF_REG_0, 0, 0);
		for (k = (int)f->width - 2; k >= 0; k--) {
			p[n++] = insn(BPF_LD | BPF_B | BPF_ABS, 0, 0, 0,
				      (int32_t)(f->offset + k));
			p[n++] = insn(BPF_ALU64 | BPF_LSH | BPF_K, BPF_REG_7,
				      0, 0, 8);
			p[n++] = insn(BPF_ALU64 | BPF_OR | BPF_X, BPF_REG_7,
				      BPF_REG_0, 0, 0);
		}
		p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_0,
			      BPF_REG_7, 0, 0);
	}
	if (f->adj)
		p[n++] = insn(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_0, 0, 0,
			      f->adj);
	jbad = n++;
	jbig = n++;
	p[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	/* bad: */
	p[jbad] = insn(BPF_JMP | BPF_JSLT | BPF_K, BPF_REG_0, 0,
		       (int16_t)(n - jbad - 1),
		       (int32_t)(f->offset + f->width));
	p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, -EBADMSG);
	p[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	/* big: */
	p[jbig] = insn(BPF_JMP | BPF_JGT | BPF_K, BPF_REG_0, 0,
		       (int16_t)(n - jbig - 1), limit);
	p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, -EMSGSIZE);
	p[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);

	if (n > cap) {
		errno = ENOSPC;
		return -1;
	}
	memcpy(insns, p, (size_t)n * sizeof(p[0]));
	return n;
}

int libkcm_prog_load(const struct bpf_insn *insns, int cnt, char *log,
		     size_t log_size)
{
	static const char license[] = "GPL";
	union bpf_attr attr;
	int fd, err;

	if (!insns || cnt <= 0) {
		errno = EINVAL;
		return -1;
	}
	if (log && log_size)
		log[0] = 0;
	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insns = (uint64_t)(uintptr_t)insns;
	attr.insn_cnt = (uint32_t)cnt;
	attr.license = (uint64_t)(uintptr_t)license;
	fd = (int)syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	if (fd >= 0 || !log || log_size < 2)
		return fd;

	/* Once more with the verifier's log, for the caller. */
	err = errno;
	attr.log_buf = (uint64_t)(uintptr_t)log;
	attr.log_size = log_size > UINT32_MAX ? UINT32_MAX : (uint32_t)log_size;
	attr.log_level = 1;
	fd = (int)syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	if (fd >= 0)
		return fd;
	log[log_size - 1] = 0;
	errno = err;
	return -1;
}

int libkcm_framing_load(const struct libkcm_framing *f, char *log,
			size_t log_size)
{
	struct bpf_insn p[LIBKCM_MAX_INSNS];
	int n;

	n = libkcm_framing_build(f, p, LIBKCM_MAX_INSNS);
	if (n < 0)
		return -1;
	return libkcm_prog_load(p, n, log, log_size);
}

int libkcm_length_prog(uint32_t offset, uint32_t width, uint32_t endian,
		       int32_t adj, uint32_t max_len)
{
	struct libkcm_framing f = {
		.offset = offset, .width = width, .endian = endian,
		.adj = adj, .max_len = max_len,
	};

	return libkcm_framing_load(&f, NULL, 0);
}

int libkcm_framing_put(const struct libkcm_framing *f, void *hdr,
		       uint64_t total)
{
	unsigned char *b = hdr;
	int64_t field;
	uint32_t k;

	if (libkcm_framing_check(f) < 0)
		return -1;
	if (!hdr) {
		errno = EINVAL;
		return -1;
	}
	field = (int64_t)total - f->adj;
	if (total > INT_MAX || field < 0 ||
	    (f->width < 4 && field >> (8 * f->width)) || field > UINT32_MAX) {
		errno = ERANGE;
		return -1;
	}
	for (k = 0; k < f->width; k++) {
		uint32_t shift = f->endian == LIBKCM_BIG_ENDIAN ?
				 8 * (f->width - 1 - k) : 8 * k;

		b[f->offset + k] = (unsigned char)(field >> shift);
	}
	return 0;
}
