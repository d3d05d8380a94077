// SPDX-License-Identifier: GPL-2.0
/*
 * Framing programs for AF_KCM, in BPF C (clang -target bpf -O2).
 *
 * Each is a BPF_PROG_TYPE_SOCKET_FILTER program ("socket" section) that KCM
 * runs at the start of a message, with the message's first byte at offset
 * 0.  It returns the length of the whole message, 0 while the header has
 * not fully arrived, or a negative errno to fail the connection.
 *
 *   kcm_thrift     4-byte big-endian length that excludes itself
 *                  (Thrift's TFramedTransport)
 *   kcm_len16      2-byte big-endian length that excludes itself
 *   kcm_memcache   memcached binary protocol: 24-byte header with the
 *                  magic (0x80 request, 0x81 response) at 0 and the body
 *                  length, 4 bytes big-endian, at 8
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define KCM_MAX_MSG	(16 << 20)	/* longer messages: -EMSGSIZE */
#define EMSGSIZE	90
#define EPROTO		71

static __always_inline __u32 be32(const __u8 *b)
{
	return ((__u32)b[0] << 24) | ((__u32)b[1] << 16) |
	       ((__u32)b[2] << 8) | b[3];
}

static __always_inline int checked(__u64 total)
{
	return total > KCM_MAX_MSG ? -EMSGSIZE : (int)total;
}

SEC("socket")
int kcm_thrift(struct __sk_buff *skb)
{
	__u8 h[4];

	if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)) < 0)
		return 0;		/* not all of the header yet */
	return checked((__u64)be32(h) + 4);
}

SEC("socket")
int kcm_len16(struct __sk_buff *skb)
{
	__u8 h[2];

	if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)) < 0)
		return 0;
	return ((int)h[0] << 8 | h[1]) + 2;
}

SEC("socket")
int kcm_memcache(struct __sk_buff *skb)
{
	__u8 h[12];

	if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)) < 0)
		return 0;
	if (h[0] != 0x80 && h[0] != 0x81)
		return -EPROTO;
	return checked((__u64)be32(h + 8) + 24);
}

char LICENSE[] SEC("license") = "GPL";
