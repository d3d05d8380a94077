/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What differs between the kernels we build for (6.1 and 6.12).
 *
 * Linux 6.5 replaced ->sendpage with sendmsg(MSG_SPLICE_PAGES).  Debian's
 * 6.1 defines MSG_SPLICE_PAGES without TCP honouring it, so the version,
 * not the flag, decides.  Linux 6.12 has skb fragments the CPU cannot
 * read (device memory), and its unaligned access helpers and page pool
 * API in other headers.
 */
#ifndef _KCM_COMPAT_H
#define _KCM_COMPAT_H

#include <linux/version.h>
#include <linux/bvec.h>
#include <net/tcp.h>

/* Linux 6.12 moved the unaligned access helpers to <linux/unaligned.h>. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 12, 0)
#include <asm/unaligned.h>
#else
#include <linux/unaligned.h>
#endif

/* Linux 6.6 split <net/page_pool.h> into <net/page_pool/>. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 6, 0)
#include <net/page_pool.h>
#else
#include <net/page_pool/helpers.h>
#endif

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 5, 0)
#define KCM_HAVE_SENDPAGE 1
ssize_t kcm_tx_sendpage(struct socket *sock, struct page *page, int offset,
			size_t size, int flags);
#define KCM_COMPAT_SENDPAGE .sendpage = kcm_tx_sendpage,
#else
#define KCM_COMPAT_SENDPAGE
#endif

/* sendpage on 6.1 tells kcm_tx_sendmsg() its pages are to be referenced. */
#ifndef MSG_SPLICE_PAGES
#define MSG_SPLICE_PAGES 0x8000000
#endif

/*
 * Queues the pages of bv on TCP socket sk without copying them; the caller
 * holds the socket lock.  Returns the bytes queued, or -errno when none
 * were.
 */
static inline int kcm_compat_tcp_send_pages(struct sock *sk,
					    struct bio_vec *bv,
					    unsigned int nr, size_t len,
					    int flags)
{
#ifdef KCM_HAVE_SENDPAGE
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < nr; i++) {
		int more = i + 1 < nr ? MSG_SENDPAGE_NOTLAST | MSG_MORE : 0;
		ssize_t ret;

		ret = do_tcp_sendpages(sk, bv[i].bv_page, bv[i].bv_offset,
				       bv[i].bv_len, flags | more);
		if (ret <= 0)
			return done ? done : ret;
		done += ret;
		if (ret < bv[i].bv_len)
			break;
	}
	return done;
#else
	struct msghdr msg = { .msg_flags = flags | MSG_SPLICE_PAGES };

	iov_iter_bvec(&msg.msg_iter, ITER_SOURCE, bv, nr, len);
	return tcp_sendmsg_locked(sk, &msg, len);
#endif
}

/* Linux 6.12 can receive into device memory that the CPU cannot read. */
static inline bool kcm_compat_frags_readable(const struct sk_buff *skb)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
	return skb_frags_readable(skb);
#else
	return true;
#endif
}

#endif /* _KCM_COMPAT_H */
