// SPDX-License-Identifier: GPL-2.0
/*
 * libkcm (tools/lib/kcm): the framing programs it builds at run time.
 *
 * Every bad framing is refused with its errno before anything is loaded;
 * the programs give the right answer for headers run through
 * BPF_PROG_TEST_RUN (length, 0 for "not enough bytes", -EBADMSG,
 * -EMSGSIZE); and real TCP streams attached with them to a KCM mux come
 * out as the messages that were sent, for several offsets, widths, byte
 * orders, adjustments and limits.
 *
 * Linux's kcm.ko runs the program at the start of the skb rather than of
 * the message, so on lane linux the stream cases send one message per
 * write and wait for it before sending the next; the cases that pack
 * messages back to back into the stream are skipped there.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/bpf.h>

#include "kcm_test.h"
#include "libkcm.h"

#define BE LIBKCM_BIG_ENDIAN
#define LE LIBKCM_LITTLE_ENDIAN

/* ---- bad framings -------------------------------------------------------- */

static void expect_refused(struct libkcm_framing f, int err)
{
	struct bpf_insn p[LIBKCM_MAX_INSNS];
	char log[64];

	EXPECT_ERRNO(libkcm_framing_check(&f), err);
	EXPECT_ERRNO(libkcm_framing_build(&f, p, LIBKCM_MAX_INSNS), err);
	EXPECT_ERRNO(libkcm_framing_load(&f, log, sizeof(log)), err);
	if (!f.flags)	/* the shorthand has no flags */
		EXPECT_ERRNO(libkcm_length_prog(f.offset, f.width, f.endian,
						f.adj, f.max_len), err);
	EXPECT_TRUE(libkcm_framing_strerror(&f) != NULL);
	if (libkcm_framing_strerror(&f))
		KCM_LOG("refused: %s", libkcm_framing_strerror(&f));
}

KCM_TEST(lib_bad_width)
{
	static const uint32_t widths[] = { 0, 3, 5, 8, 16, 0xffffffffu };
	size_t i;

	for (i = 0; i < sizeof(widths) / sizeof(widths[0]); i++)
		expect_refused((struct libkcm_framing){ .width = widths[i] },
			       EINVAL);
}

KCM_TEST(lib_bad_endian)
{
	expect_refused((struct libkcm_framing){ .width = 2, .endian = 2 },
		       EINVAL);
	expect_refused((struct libkcm_framing){ .width = 4, .endian = 0x100 },
		       EINVAL);
}

KCM_TEST(lib_offset_too_big)
{
	expect_refused((struct libkcm_framing){ .offset = LIBKCM_MAX_OFFSET,
						.width = 1 }, ERANGE);
	expect_refused((struct libkcm_framing){ .offset = LIBKCM_MAX_OFFSET - 3,
						.width = 4 }, ERANGE);
	expect_refused((struct libkcm_framing){ .offset = 0xfffffffeu,
						.width = 4 }, ERANGE);
	/* The last offset that fits is accepted. */
	EXPECT_OK(libkcm_framing_check(&(struct libkcm_framing){
		.offset = LIBKCM_MAX_OFFSET - 4, .width = 4 }));
}

KCM_TEST(lib_adj_out_of_range)
{
	expect_refused((struct libkcm_framing){ .width = 4,
					.adj = LIBKCM_MAX_ADJ + 1 }, ERANGE);
	expect_refused((struct libkcm_framing){ .width = 4,
					.adj = -LIBKCM_MAX_ADJ - 1 }, ERANGE);
	expect_refused((struct libkcm_framing){ .width = 4, .adj = INT32_MIN },
		       ERANGE);
	EXPECT_OK(libkcm_framing_check(&(struct libkcm_framing){
		.width = 4, .adj = -LIBKCM_MAX_ADJ }));
	EXPECT_OK(libkcm_framing_check(&(struct libkcm_framing){
		.width = 4, .adj = LIBKCM_MAX_ADJ }));
}

KCM_TEST(lib_bad_max_len)
{
	/* Above INT_MAX: ERANGE; below the header: EINVAL. */
	expect_refused((struct libkcm_framing){ .width = 4,
					.max_len = 0x80000000u }, ERANGE);
	expect_refused((struct libkcm_framing){ .offset = 8, .width = 4,
					.max_len = 11 }, EINVAL);
	EXPECT_OK(libkcm_framing_check(&(struct libkcm_framing){
		.offset = 8, .width = 4, .max_len = 12 }));
}

KCM_TEST(lib_bad_flags_and_null)
{
	struct bpf_insn p[LIBKCM_MAX_INSNS];
	struct libkcm_framing ok = { .width = 4, .adj = 4 };

	expect_refused((struct libkcm_framing){ .width = 4, .flags = 1 },
		       EINVAL);
	EXPECT_ERRNO(libkcm_framing_check(NULL), EINVAL);
	EXPECT_ERRNO(libkcm_framing_build(NULL, p, LIBKCM_MAX_INSNS), EINVAL);
	EXPECT_ERRNO(libkcm_framing_build(&ok, NULL, LIBKCM_MAX_INSNS), EINVAL);
	EXPECT_ERRNO(libkcm_framing_load(NULL, NULL, 0), EINVAL);
	EXPECT_ERRNO(libkcm_attach_framing(-1, -1, NULL), EINVAL);
	EXPECT_ERRNO(libkcm_prog_load(NULL, 1, NULL, 0), EINVAL);
	EXPECT_ERRNO(libkcm_prog_load(p, 0, NULL, 0), EINVAL);
	EXPECT_TRUE(libkcm_framing_strerror(NULL) != NULL);
	EXPECT_TRUE(libkcm_framing_strerror(&ok) == NULL);
}

KCM_TEST(lib_build_capacity)
{
	static const uint32_t widths[] = { 1, 2, 4 };
	struct bpf_insn p[LIBKCM_MAX_INSNS];
	size_t i;
	int e, n;

	for (i = 0; i < 3; i++) {
		for (e = BE; e <= LE; e++) {
			struct libkcm_framing f = { .offset = 3,
				.width = widths[i], .endian = (uint32_t)e,
				.adj = 7, .max_len = 1000 };

			n = ASSERT_OK(libkcm_framing_build(&f, p,
							   LIBKCM_MAX_INSNS));
			EXPECT_LE(n, LIBKCM_MAX_INSNS);
			EXPECT_ERRNO(libkcm_framing_build(&f, p, n - 1), ENOSPC);
			EXPECT_EQ(libkcm_framing_build(&f, p, n), n);
		}
	}
}

KCM_TEST(lib_framing_put)
{
	struct libkcm_framing be = { .offset = 1, .width = 2, .endian = BE,
				     .adj = 3 };
	struct libkcm_framing le = { .offset = 0, .width = 4, .endian = LE,
				     .adj = -4 };
	unsigned char h[8] = { 0 };

	ASSERT_OK(libkcm_framing_put(&be, h, 0x1234 + 3));
	EXPECT_EQ(h[1], 0x12);
	EXPECT_EQ(h[2], 0x34);
	ASSERT_OK(libkcm_framing_put(&le, h, 0x01020304 - 4));
	EXPECT_EQ(h[0], 0x04);
	EXPECT_EQ(h[3], 0x01);
	EXPECT_ERRNO(libkcm_framing_put(&be, h, 0x10000 + 3), ERANGE);
	EXPECT_ERRNO(libkcm_framing_put(&be, h, 2), ERANGE);
	EXPECT_ERRNO(libkcm_framing_put(&be, NULL, 10), EINVAL);
}

/* ---- programs, run by the kernel on test packets --------------------------- */

/*
 * BPF_PROG_TEST_RUN of a socket filter: the kernel treats the first 14
 * bytes of the input as an Ethernet header and runs the program on what
 * follows, so the "message" starts at data + 14.  Returns the program's
 * return value as an int.
 */
static int test_run(int prog, const void *msg, size_t len)
{
	unsigned char pkt[14 + 512];
	union bpf_attr attr;

	ASSERT_LE(len, sizeof(pkt) - 14);
	memset(pkt, 0, 14);
	/* A local experimental EtherType: with ETH_P_IP the kernel would
	 * want a whole IP header.
	 */
	pkt[12] = 0x88;
	pkt[13] = 0xb5;
	memcpy(pkt + 14, msg, len);
	memset(&attr, 0, sizeof(attr));
	attr.test.prog_fd = (uint32_t)prog;
	attr.test.data_in = (uint64_t)(uintptr_t)pkt;
	attr.test.data_size_in = (uint32_t)(14 + len);
	attr.test.repeat = 1;
	ASSERT_OK(syscall(__NR_bpf, BPF_PROG_TEST_RUN, &attr, sizeof(attr)));
	return (int)attr.test.retval;
}

struct combo {
	uint32_t offset, width, endian;
	int32_t adj;
	uint32_t max_len;
};

static const struct combo combos[] = {
	{ 0, 4, BE, 4, 0 },		/* Thrift framed */
	{ 0, 2, BE, 2, 0 },		/* 2-byte prefix */
	{ 8, 4, BE, 24, 0 },		/* memcached binary */
	{ 0, 1, BE, 1, 0 },		/* 1-byte prefix */
	{ 3, 2, LE, 0, 0 },		/* LE, length includes the header */
	{ 5, 4, LE, 9, 70000 },		/* LE with a limit */
	{ 1, 4, BE, -1, 0 },		/* negative adjustment */
	{ 2, 1, LE, 3, 200 },		/* width 1 "LE" and a limit */
	{ 6, 2, BE, 8, 4000 },
};
#define NCOMBOS (sizeof(combos) / sizeof(combos[0]))

static struct libkcm_framing framing_of(const struct combo *c)
{
	return (struct libkcm_framing){ .offset = c->offset,
		.width = c->width, .endian = c->endian, .adj = c->adj,
		.max_len = c->max_len };
}

static uint64_t field_max(const struct combo *c)
{
	return c->width == 4 ? 0xffffffffull : (1ull << (8 * c->width)) - 1;
}

/* Smallest and largest total length the framing can express and accept. */
static void total_range(const struct combo *c, uint64_t *lo, uint64_t *hi)
{
	int64_t hdr = c->offset + c->width;
	int64_t a = c->adj > hdr ? c->adj : hdr;
	int64_t b = (int64_t)field_max(c) + c->adj;

	if (c->max_len && b > c->max_len)
		b = c->max_len;
	if (b > 0x7fffffff)
		b = 0x7fffffff;
	*lo = (uint64_t)a;
	*hi = (uint64_t)b;
}

KCM_TEST(lib_programs_test_run)
{
	unsigned char m[64];
	size_t i;

	for (i = 0; i < NCOMBOS; i++) {
		const struct combo *c = &combos[i];
		struct libkcm_framing f = framing_of(c);
		uint32_t hdr = c->offset + c->width;
		uint64_t lo, hi, t;
		char log[4096];
		int prog;

		prog = libkcm_framing_load(&f, log, sizeof(log));
		if (prog < 0) {
			kcm_diag("%s", log);
			KCM_FAIL("combo %zu: load: %s", i, strerror(errno));
		}
		total_range(c, &lo, &hi);
		memset(m, 0xa5, sizeof(m));
		/* Accepted lengths come back as they are. */
		for (t = lo; t <= hi; t = t * 3 + 1) {
			ASSERT_OK(libkcm_framing_put(&f, m, t));
			EXPECT_EQ(test_run(prog, m, hdr), (int)t);
			EXPECT_EQ(test_run(prog, m, sizeof(m)), (int)t);
		}
		ASSERT_OK(libkcm_framing_put(&f, m, hi));
		EXPECT_EQ(test_run(prog, m, hdr), (int)hi);
		/* Not enough bytes for the length field: 0. */
		EXPECT_EQ(test_run(prog, m, hdr - 1), 0);
		if (c->offset)
			EXPECT_EQ(test_run(prog, m, 1), 0);
		/* Beyond the limit: -EMSGSIZE. */
		if (c->max_len && (int64_t)field_max(c) + c->adj > c->max_len) {
			ASSERT_OK(libkcm_framing_put(&f, m, c->max_len + 1ull));
			EXPECT_EQ(test_run(prog, m, hdr), -EMSGSIZE);
		}
		if (!c->max_len && c->width == 4 && c->adj > 0) {
			memset(m + c->offset, 0xff, 4);
			EXPECT_EQ(test_run(prog, m, hdr), -EMSGSIZE);
		}
		/* Shorter than its own header: -EBADMSG. */
		if (c->adj < (int32_t)hdr) {
			memset(m + c->offset, 0, c->width);
			EXPECT_EQ(test_run(prog, m, hdr), -EBADMSG);
		}
		close(prog);
	}
}

/* ---- real streams through a KCM mux ------------------------------------------ */

/* A message of @total bytes for combo @c: header with the length field, then
 * a pattern of @seed over every other byte.
 */
static void build_msg(const struct combo *c, unsigned char *m, size_t total,
		      uint32_t seed)
{
	struct libkcm_framing f = framing_of(c);
	size_t k;

	for (k = 0; k < total; k++)
		m[k] = (unsigned char)(seed * 131 + k * 7 + (k >> 8));
	ASSERT_OK(libkcm_framing_put(&f, m, total));
}

static size_t pick_size(const struct combo *c, uint64_t *rnd, int j)
{
	uint64_t lo, hi, span;

	total_range(c, &lo, &hi);
	if (hi > 20000)
		hi = 20000;
	span = hi - lo + 1;
	if (j == 0)
		return (size_t)lo;
	if (j == 1)
		return (size_t)hi;
	return (size_t)(lo + kcm_rand(rnd) % (span < 3000 ? span : 3000));
}

/* How a case attaches: with the program always, or as the kernel can. */
typedef int (*attach_fn)(int kcmfd, int tcpfd,
			 const struct libkcm_framing *f);

/*
 * Frame @nmsg messages of combo @c sent over one TCP connection into a KCM
 * socket attached by @attach.  @packed: write the messages back to back in
 * chunks of random sizes (our module only); otherwise one message per
 * write, each received before the next is sent (what Linux's kcm.ko
 * handles).
 */
static void stream_combo(const struct combo *c, int nmsg, int packed,
			 attach_fn attach)
{
	static unsigned char out[70000], in[70000 + 16];
	unsigned char *all = NULL;
	size_t *sizes, used = 0, off = 0;
	uint64_t rnd = 0x9e3779b97f4a7c15ull ^ (c->offset * 31 + c->width);
	int kcm, peer, tcp, i;

	kcm = kcm_socket(SOCK_DGRAM);
	kcm_tcp_pair(AF_INET, &peer, &tcp);
	ASSERT_OK(attach(kcm, tcp,
			 &(struct libkcm_framing){ .offset = c->offset,
			 .width = c->width, .endian = c->endian,
			 .adj = c->adj, .max_len = c->max_len }));
	close(tcp);	/* the mux keeps it */

	sizes = calloc((size_t)nmsg, sizeof(*sizes));
	ASSERT_TRUE(sizes);
	for (i = 0; i < nmsg; i++)
		sizes[i] = pick_size(c, &rnd, i);
	if (packed) {
		for (i = 0; i < nmsg; i++)
			used += sizes[i];
		all = malloc(used);
		ASSERT_TRUE(all);
		for (i = 0, off = 0; i < nmsg; off += sizes[i], i++)
			build_msg(c, all + off, sizes[i], (uint32_t)i);
		/* A writer child, so that a full socket cannot block us. */
		if (fork() == 0) {
			for (off = 0; off < used;) {
				size_t n = 1 + kcm_rand(&rnd) % 3000;

				if (n > used - off)
					n = used - off;
				kcm_write_all(peer, all + off, n);
				off += n;
			}
			_exit(0);
		}
	}
	for (i = 0; i < nmsg; i++) {
		ssize_t n;

		build_msg(c, out, sizes[i], (uint32_t)i);
		if (!packed)
			kcm_write_all(peer, out, sizes[i]);
		n = kcm_recv_timeout(kcm, in, sizeof(in), 0, 10000);
		if (n < 0)
			KCM_FAIL("message %d (%zu bytes): %s (SO_ERROR on the "
				 "TCP socket: see the kernel)", i, sizes[i],
				 kcm_errname(errno));
		ASSERT_EQ(n, (ssize_t)sizes[i]);
		ASSERT_MEMEQ(in, out, sizes[i]);
	}
	EXPECT_EQ(kcm_recv_timeout(kcm, in, sizeof(in), 0, 100), -1);
	free(all);
	free(sizes);
	close(peer);
	close(kcm);
}

/*
 * Each combo with its program, and as libkcm_attach_framing() attaches it:
 * read by our module itself (SIOCKCMATTACHLEN), with the program on
 * Linux's, which has no such ioctl.
 */
#define COMBO_CASE(i)							\
	KCM_TEST(lib_stream_combo_##i, KCM_TIMEOUT(120))		\
	{								\
		stream_combo(&combos[i], 24, 0,				\
			     libkcm_attach_framing_prog);		\
	}								\
	KCM_TEST(lib_packed_combo_##i, KCM_TIMEOUT(120),		\
		 KCM_LINUX_BUG("the program runs at the start of the skb, " \
			       "not of the message"))			\
	{								\
		stream_combo(&combos[i], 200, 1,			\
			     libkcm_attach_framing_prog);		\
	}								\
	KCM_TEST(lib_native_stream_combo_##i, KCM_TIMEOUT(120))	\
	{								\
		stream_combo(&combos[i], 24, 0, libkcm_attach_framing);	\
	}								\
	KCM_TEST(lib_native_packed_combo_##i, KCM_TIMEOUT(120), KCM_EXT) \
	{								\
		stream_combo(&combos[i], 200, 1, libkcm_attach_framing); \
	}

COMBO_CASE(0)
COMBO_CASE(1)
COMBO_CASE(2)
COMBO_CASE(3)
COMBO_CASE(4)
COMBO_CASE(5)
COMBO_CASE(6)
COMBO_CASE(7)
COMBO_CASE(8)

/*
 * A length above max_len posts EMSGSIZE on the TCP socket, a length shorter
 * than the header EBADMSG; another connection of the mux goes on working.
 */
static void stream_error(int too_big, attach_fn attach)
{
	/* LE 2-byte field at 2, +4, at most 100: 0xffff is too big.
	 * BE 2-byte field at 2, +0: a field of 3 is shorter than 4.
	 */
	struct libkcm_framing big = { .offset = 2, .width = 2, .endian = LE,
				      .adj = 4, .max_len = 100 };
	struct libkcm_framing shortf = { .offset = 2, .width = 2,
					 .endian = BE, .adj = 0 };
	unsigned char m[128];
	int kcm, p1, t1, p2, t2;

	kcm = kcm_socket(SOCK_DGRAM);
	kcm_tcp_pair(AF_INET, &p1, &t1);
	kcm_tcp_pair(AF_INET, &p2, &t2);
	ASSERT_OK(attach(kcm, t1, too_big ? &big : &shortf));
	ASSERT_OK(attach(kcm, t2, &big));
	memset(m, 0x33, sizeof(m));
	if (too_big) {
		m[2] = 0xff;
		m[3] = 0xff;
	} else {
		m[2] = 0;
		m[3] = 3;
	}
	kcm_write_all(p1, m, 8);
	EXPECT_TRUE(kcm_poll1(t1, POLLERR, 5000) & POLLERR);
	EXPECT_EQ(kcm_so_error(t1), too_big ? EMSGSIZE : EBADMSG);

	ASSERT_OK(libkcm_framing_put(&big, m, 100));
	kcm_write_all(p2, m, 100);
	EXPECT_EQ(kcm_recv_timeout(kcm, m, sizeof(m), 0, 5000), 100);
	close(kcm);
}

KCM_TEST(lib_stream_too_big_emsgsize)
{
	stream_error(1, libkcm_attach_framing_prog);
}

KCM_TEST(lib_stream_short_length_ebadmsg)
{
	stream_error(0, libkcm_attach_framing_prog);
}

KCM_TEST(lib_native_stream_too_big_emsgsize)
{
	stream_error(1, libkcm_attach_framing);
}

KCM_TEST(lib_native_stream_short_length_ebadmsg)
{
	stream_error(0, libkcm_attach_framing);
}

/* The socket helpers: clone, attach, unattach, errors passed through. */
KCM_TEST(lib_socket_helpers)
{
	struct libkcm_framing f = { .width = 4, .adj = 4 };
	unsigned char m[32], in[64];
	int kcm, k2, peer, tcp, prog;

	kcm = ASSERT_OK(libkcm_socket(SOCK_SEQPACKET));
	k2 = ASSERT_OK(libkcm_clone(kcm));
	EXPECT_ERRNO(libkcm_clone(-1), EBADF);
	EXPECT_ERRNO(libkcm_socket(SOCK_STREAM), ESOCKTNOSUPPORT);
	kcm_tcp_pair(AF_INET6, &peer, &tcp);
	prog = ASSERT_OK(libkcm_framing_load(&f, NULL, 0));
	ASSERT_OK(libkcm_attach(k2, tcp, prog));
	EXPECT_ERRNO(libkcm_attach(kcm, tcp, prog), EALREADY);
	memset(m, 7, sizeof(m));
	ASSERT_OK(libkcm_framing_put(&f, m, sizeof(m)));
	kcm_write_all(peer, m, sizeof(m));
	EXPECT_EQ(kcm_recv_timeout(kcm, in, sizeof(in), 0, 5000), 32);
	ASSERT_OK(libkcm_unattach(kcm, tcp));
	EXPECT_ERRNO(libkcm_unattach(kcm, tcp), ENOENT);
	/* A plain TCP socket again. */
	kcm_write_all(peer, m, 4);
	kcm_read_all(tcp, in, 4);
	close(prog);
	close(k2);
	close(kcm);
	close(peer);
	close(tcp);
}
