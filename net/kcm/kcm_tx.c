// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel Connection Multiplexor: the transmit path.
 *
 * sendmsg() copies a message into page fragments and queues it, complete,
 * on the socket's write queue; a SOCK_SEQPACKET message (or a SOCK_DGRAM one
 * sent with MSG_MORE) is built up in kcm->tx_partial until the piece that
 * ends it.  kcm_tx_push() then hands queued messages, without copying, to
 * the TCP socket of a reserved psock (kcm_mux.c).  When TCP runs out of
 * room the psock stays reserved and the psock's write-space callback
 * resumes the push from kcm->tx_work.  If the psock fails before a message
 * is wholly in TCP, the message is sent again, whole, on another psock.
 * A small complete message sent while nothing is queued takes a shorter
 * way (kcm_tx_fast()): it is made into a message skb only if TCP does not
 * take it all at once.
 *
 * A message is laid out as a head skb without data whose frag_list chains
 * skbs of page fragments; the head's len and truesize cover them all.
 */

#include <linux/bvec.h>
#include <linux/skbuff.h>
#include <linux/uio.h>
#include <net/kcm.h>
#include <net/sock.h>

#include "compat.h"
#include <trace/events/kcm.h>

#define KCM_TX_BVECS	32

/*
 * The largest message.  A message is accepted whatever its size while the
 * send buffer has room, and charged to sk_wmem_queued (an int) as it is
 * copied: without a bound one sendmsg() of 2 GiB would wrap that charge
 * negative, and every later send would pass the memory check.
 */
#define KCM_TX_MSG_MAX	(INT_MAX / 4)

/*
 * The largest message sendmsg() may hand to TCP itself, without a message
 * skb of ours (kcm_tx_fast()), when nothing is queued before it.  It is
 * copied into one run of the socket's page fragment, whose pages are of
 * this size when skb_page_frag_refill() can have them (it falls back to a
 * single page): kcm_tx_fast_room() says whether the run is there.
 */
#define KCM_TX_FAST_MAX	(PAGE_SIZE << SKB_FRAG_PAGE_ORDER)

static struct sk_buff *kcm_tx_alloc(struct sock *sk)
{
	struct sk_buff *skb = alloc_skb(0, sk->sk_allocation);

	if (skb)
		sk_wmem_queued_add(sk, skb->truesize);
	return skb;
}

static void kcm_tx_free(struct sock *sk, struct sk_buff *head)
{
	sk_wmem_queued_add(sk, -head->truesize);
	consume_skb(head);
}

static struct sk_buff *kcm_tx_last(struct sk_buff *head)
{
	struct sk_buff *skb = skb_shinfo(head)->frag_list;

	while (skb && skb->next)
		skb = skb->next;
	return skb;
}

/* The data skb to add a fragment to: tail, or a new one after it. */
static struct sk_buff *kcm_tx_tail(struct sock *sk, struct sk_buff *head,
				   struct sk_buff *tail)
{
	struct sk_buff *skb;

	if (tail && skb_shinfo(tail)->nr_frags < MAX_SKB_FRAGS)
		return tail;
	skb = kcm_tx_alloc(sk);
	if (!skb)
		return NULL;
	if (tail)
		tail->next = skb;
	else
		skb_shinfo(head)->frag_list = skb;
	head->truesize += skb->truesize;
	return skb;
}

/* Adds len bytes of page at off to tail, a data skb of message head; takes
 * over the caller's reference to the page.
 */
static void kcm_tx_add_frag(struct sock *sk, struct sk_buff *head,
			    struct sk_buff *tail, struct page *page,
			    unsigned int off, unsigned int len)
{
	struct skb_shared_info *shinfo = skb_shinfo(tail);
	int i = shinfo->nr_frags;

	if (i && skb_can_coalesce(tail, i, page, off)) {
		skb_frag_size_add(&shinfo->frags[i - 1], len);
		put_page(page);
	} else {
		skb_fill_page_desc(tail, i, page, off, len);
	}
	tail->len += len;
	tail->data_len += len;
	tail->truesize += len;
	head->len += len;
	head->data_len += len;
	head->truesize += len;
	sk_wmem_queued_add(sk, len);
}

/*
 * Cuts message head back to its first len bytes: what a failed append added
 * goes, what earlier calls appended (and were told was accepted) stays.
 */
static void kcm_tx_trim(struct sock *sk, struct sk_buff *head,
			unsigned int len)
{
	struct sk_buff **link = &skb_shinfo(head)->frag_list;
	unsigned int at = 0;
	struct sk_buff *skb;

	while ((skb = *link) && at + skb->len <= len) {
		at += skb->len;
		link = &skb->next;
	}
	if (skb && at < len) {
		struct skb_shared_info *shinfo = skb_shinfo(skb);
		unsigned int keep = len - at, cut, kept = 0;
		int i, n = 0;

		for (i = 0; i < shinfo->nr_frags; i++) {
			skb_frag_t *frag = &shinfo->frags[i];
			unsigned int size = skb_frag_size(frag);

			if (kept >= keep) {
				put_page(skb_frag_page(frag));
				continue;
			}
			if (kept + size > keep)
				skb_frag_size_set(frag, keep - kept);
			kept += skb_frag_size(frag);
			n++;
		}
		shinfo->nr_frags = n;
		cut = skb->len - keep;
		skb->len = keep;
		skb->data_len = keep;
		skb->truesize -= cut;
		head->len -= cut;
		head->data_len -= cut;
		head->truesize -= cut;
		sk_wmem_queued_add(sk, -cut);
		link = &skb->next;
	}
	while ((skb = *link)) {
		*link = skb->next;
		skb->next = NULL;
		head->len -= skb->len;
		head->data_len -= skb->len;
		head->truesize -= skb->truesize;
		sk_wmem_queued_add(sk, -skb->truesize);
		consume_skb(skb);
	}
}

/* Copies len bytes from the iterator onto the end of message head. */
static int kcm_tx_append_copy(struct sock *sk, struct sk_buff *head,
			      struct sk_buff **tailp, struct iov_iter *from,
			      size_t len)
{
	struct page_frag *pfrag = &sk->sk_frag;

	while (len) {
		size_t copy;

		*tailp = kcm_tx_tail(sk, head, *tailp);
		if (!*tailp ||
		    !skb_page_frag_refill(32U, pfrag, sk->sk_allocation))
			return -ENOMEM;
		copy = min_t(size_t, len, pfrag->size - pfrag->offset);
		if (copy_page_from_iter(pfrag->page, pfrag->offset, copy,
					from) != copy)
			return -EFAULT;
		get_page(pfrag->page);
		kcm_tx_add_frag(sk, head, *tailp, pfrag->page, pfrag->offset,
				copy);
		pfrag->offset += copy;
		len -= copy;
	}
	return 0;
}

/*
 * Appends len bytes to message head: copied, or with MSG_SPLICE_PAGES (a
 * splice, or sendpage on 6.1) by reference to the pages themselves, except
 * pages that cannot be sent that way, which are copied.
 */
static int kcm_tx_append(struct sock *sk, struct sk_buff *head,
			 struct iov_iter *from, size_t len, bool splice)
{
	struct sk_buff *tail = kcm_tx_last(head);

	if (!splice)
		return kcm_tx_append_copy(sk, head, &tail, from, len);

	while (len) {
		struct page *page;
		ssize_t got;
		size_t off;
		int err;

		tail = kcm_tx_tail(sk, head, tail);
		if (!tail)
			return -ENOMEM;
		got = iov_iter_get_pages2(from, &page, len, 1, &off);
		if (got <= 0)
			return got ? got : -EFAULT;
		if (!sendpage_ok(page)) {
			put_page(page);
			iov_iter_revert(from, got);
			err = kcm_tx_append_copy(sk, head, &tail, from, got);
			if (err)
				return err;
		} else {
			kcm_tx_add_frag(sk, head, tail, page, off, got);
		}
		len -= got;
	}
	return 0;
}

/* Fills bv with the bytes of head from offset on; returns their count. */
static unsigned int kcm_tx_bvecs(struct sk_buff *head, unsigned int offset,
				 struct bio_vec *bv, size_t *len)
{
	unsigned int nr = 0;
	struct sk_buff *skb;
	int i;

	*len = 0;
	skb_walk_frags(head, skb) {
		for (i = 0; i < skb_shinfo(skb)->nr_frags; i++) {
			const skb_frag_t *frag = &skb_shinfo(skb)->frags[i];
			unsigned int size = skb_frag_size(frag);

			if (offset >= size) {
				offset -= size;
				continue;
			}
			bvec_set_page(&bv[nr], skb_frag_page(frag),
				      size - offset, skb_frag_off(frag) + offset);
			*len += size - offset;
			offset = 0;
			if (++nr == KCM_TX_BVECS)
				return nr;
		}
	}
	return nr;
}

/* Counts a message of len bytes sent.  Under the lock of the KCM socket
 * that sent it (see struct kcm_tx_stats).
 */
static void kcm_tx_count(struct kcm_tx_stats *stats, unsigned int len)
{
	unsigned long flags = u64_stats_update_begin_irqsave(&stats->syncp);

	u64_stats_inc(&stats->msgs);
	u64_stats_add(&stats->bytes, len);
	u64_stats_update_end_irqrestore(&stats->syncp, flags);
}

/* Adds the counters of stats to the three sums, at any time. */
void kcm_tx_stats_read(const struct kcm_tx_stats *stats, u64 *msgs,
		       u64 *bytes, u64 *aborts)
{
	u64 m, b, a;
	unsigned int start;

	do {
		start = u64_stats_fetch_begin(&stats->syncp);
		m = u64_stats_read(&stats->msgs);
		b = u64_stats_read(&stats->bytes);
		a = u64_stats_read(&stats->aborts);
	} while (u64_stats_fetch_retry(&stats->syncp, start));
	*msgs += m;
	*bytes += b;
	*aborts += a;
}

/*
 * Sends what is left of message head through psock's kTLS, which encrypts
 * it into records and takes the TCP socket lock itself: its tx_lock
 * keeps unattach out meanwhile.  The message's bytes go with MSG_MORE but
 * its last, which closes the record: a record left open for the next
 * message would hold this one's end until that one is sent, and nothing
 * sends it if the KCM socket closes first (kTLS has no timer to flush it,
 * as TCP's queue has).  kTLS takes its own mutex interruptibly: a signal
 * pending on the sender is no error, the push resumes from the work item.
 * Returns as kcm_tx_send_msg().
 */
static int kcm_tx_send_tls(struct kcm_sock *kcm, struct kcm_psock *psock,
			   struct sk_buff *head)
{
	struct bio_vec bv[KCM_TX_BVECS];
	struct sock *sk = psock->sk;
	int ret = 0;

	mutex_lock(&psock->tls->tx_lock);
	if (READ_ONCE(psock->failed) || READ_ONCE(psock->unattached)) {
		ret = -EPIPE;
		goto out;
	}
	while (kcm->tx_sent < head->len) {
		struct msghdr msg = { .msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL };
		unsigned int nr;
		size_t len;

		nr = kcm_tx_bvecs(head, kcm->tx_sent, bv, &len);
		if (kcm->tx_sent + len < head->len)
			msg.msg_flags |= MSG_MORE;
		iov_iter_bvec(&msg.msg_iter, ITER_SOURCE, bv, nr, len);
		ret = READ_ONCE(sk->sk_prot)->sendmsg(sk, &msg, len);
		if (ret == -EINTR || ret == -ERESTARTSYS) {
			queue_work(kcm_wq, &kcm->tx_work);
			ret = -EAGAIN;
		}
		if (ret < 0)
			goto out;
		kcm->tx_sent += ret;
		if (ret < len) {
			ret = -EAGAIN;
			goto out;
		}
		ret = 0;
	}
	kcm_tx_count(&psock->tx_stats, head->len);
out:
	mutex_unlock(&psock->tls->tx_lock);
	if (ret && ret != -EAGAIN)
		kcm_psock_fail(psock, EPIPE);
	return ret;
}

/*
 * Takes the lock of psock's TCP socket to send on it.  -EPIPE, and the lock
 * not held, when the psock takes nothing more: failed, unattached, or with
 * a ULP (kTLS) installed since attach, which writes the stream now.
 */
static int kcm_tx_lock_tcp(struct kcm_psock *psock)
{
	lock_sock(psock->sk);
	if (unlikely(kcm_psock_ulp_changed(psock)))
		kcm_psock_fail(psock, EPROTO);
	if (READ_ONCE(psock->failed) || READ_ONCE(psock->unattached)) {
		release_sock(psock->sk);
		return -EPIPE;
	}
	return 0;
}

/*
 * Sends what is left of message head on psock's TCP socket.  Returns 0 when
 * all of it is in TCP, -EAGAIN when TCP has no room (its write-space
 * callback will wake us), another -errno when the psock is unusable.
 */
static int kcm_tx_send_msg(struct kcm_sock *kcm, struct kcm_psock *psock,
			   struct sk_buff *head, bool more)
{
	struct bio_vec bv[KCM_TX_BVECS];
	struct sock *sk = psock->sk;
	int ret;

	sock_owned_by_me(&kcm->sk);
	WARN_ON_ONCE(kcm->tx_psock != psock);
	if (kcm_psock_tls_tx(psock))
		return kcm_tx_send_tls(kcm, psock, head);
	ret = kcm_tx_lock_tcp(psock);
	if (ret)
		goto out;
	while (kcm->tx_sent < head->len) {
		unsigned int nr;
		size_t len;
		int flags = MSG_DONTWAIT | MSG_NOSIGNAL;

		nr = kcm_tx_bvecs(head, kcm->tx_sent, bv, &len);
		if (more || kcm->tx_sent + len < head->len)
			flags |= MSG_MORE;
		ret = kcm_compat_tcp_send_pages(sk, bv, nr, len, flags);
		if (ret < 0)
			goto out_unlock;
		kcm->tx_sent += ret;
		if (ret < len) {
			ret = -EAGAIN;
			goto out_unlock;
		}
		ret = 0;
	}
	kcm_tx_count(&psock->tx_stats, head->len);
out_unlock:
	release_sock(sk);
out:
	if (ret && ret != -EAGAIN)
		kcm_psock_fail(psock, EPIPE);
	return ret;
}

/* A message of len bytes is wholly in psock's TCP socket. */
static void kcm_tx_sent(struct kcm_sock *kcm, struct kcm_psock *psock,
			unsigned int len)
{
	trace_kcm_tx_sent(kcm->index, psock->index, psock->cookie, len);
	kcm_tx_count(&kcm->tx_stats, len);
}

/*
 * kcm gives up a message of which its reserved psock's TCP socket has the
 * first bytes: that stream, cut inside a message, can never be framed
 * again.  Every path that does so comes here, once per message: the psock
 * counts the abort (TX-Aborts) and is failed, if nothing failed it before.
 * Under the KCM socket lock.
 */
static void kcm_tx_abort(struct kcm_sock *kcm)
{
	struct kcm_psock *psock = kcm->tx_psock;

	sock_owned_by_me(&kcm->sk);
	kcm_stats_add(&psock->tx_stats.syncp, &psock->tx_stats.aborts, 1);
	kcm_psock_fail(psock, EPIPE);
}

/*
 * The reserved psock is gone: start the head message again elsewhere.  One
 * directed at that psock's connection (a cookie) has nowhere else to go:
 * the next push drops it, and it counts no retry (TX-Retries).
 */
static void kcm_tx_failover(struct kcm_sock *kcm, u64 cookie)
{
	bool begun = kcm->tx_sent;

	if (begun)
		kcm_tx_abort(kcm);
	kcm->tx_sent = 0;
	kcm_mux_tx_unreserve(kcm, begun && !cookie);
}

/*
 * Sends queued messages until the queue is empty or the psock has no room.
 * Under the KCM socket lock.
 */
static void kcm_tx_push(struct kcm_sock *kcm)
{
	struct sock *sk = &kcm->sk;
	struct sk_buff *head;
	bool freed = false;
	int err;

	sock_owned_by_me(sk);
	while (!kcm->tx_stopped && (head = skb_peek(&sk->sk_write_queue))) {
		u64 cookie = kcm_msg_cb(head)->cookie;
		struct kcm_psock *psock = READ_ONCE(kcm->tx_psock);

		/* Between messages: a directed one may need another psock. */
		if (psock && cookie && cookie != psock->cookie) {
			kcm_mux_tx_unreserve(kcm, false);
			psock = NULL;
		}
		if (!psock) {
			psock = kcm_mux_tx_reserve(kcm, cookie, &err);
			if (err) {
				/* Its connection is gone: drop it. */
				__skb_unlink(head, &sk->sk_write_queue);
				kcm_tx_free(sk, head);
				freed = true;
				continue;
			}
			if (!psock)
				break;
		}

		err = kcm_tx_send_msg(kcm, psock, head,
				      !skb_queue_is_last(&sk->sk_write_queue,
							 head));
		if (err == -EAGAIN)
			break;
		if (err) {
			kcm_tx_failover(kcm, cookie);
			continue;
		}

		__skb_unlink(head, &sk->sk_write_queue);
		kcm->tx_sent = 0;
		kcm_tx_sent(kcm, psock, head->len);
		kcm_tx_free(sk, head);
		freed = true;
	}

	/* The parts of an open series go on the psock of its first. */
	if (READ_ONCE(kcm->tx_psock) && skb_queue_empty(&sk->sk_write_queue) &&
	    !kcm->tx_series)
		kcm_mux_tx_unreserve(kcm, false);
	if (freed)
		sk->sk_write_space(sk);
}

/*
 * The psock a message to cookie (0: any) can go on at once, without kTLS:
 * the one reserved, or one free now.  NULL when there is none, or when the
 * one reserved is not the message's; what is reserved stays reserved.
 * *err: the message cannot be sent at all (no psock with that cookie, or
 * it failed), found by the reservation itself: a directed message takes
 * the mux's lock once here, not once more to check its cookie first.
 */
static struct kcm_psock *kcm_tx_fast_psock(struct kcm_sock *kcm, u64 cookie,
					   int *err)
{
	struct kcm_psock *psock = READ_ONCE(kcm->tx_psock);

	*err = 0;
	if (!psock)
		psock = kcm_mux_tx_reserve(kcm, cookie, err);
	else if (cookie)
		*err = kcm_mux_tx_check_cookie(kcm->mux, cookie);
	if (!psock || (cookie && cookie != psock->cookie) ||
	    kcm_psock_tls_tx(psock))
		return NULL;
	return psock;
}

/*
 * Sends a whole message, the len bytes of bv, on psock's TCP socket.
 * Returns the bytes TCP took; the psock is failed if it takes no more.
 */
static int kcm_tx_send_fast(struct kcm_sock *kcm, struct kcm_psock *psock,
			    struct bio_vec *bv, unsigned int len)
{
	struct sock *sk = psock->sk;
	int ret;

	sock_owned_by_me(&kcm->sk);
	WARN_ON_ONCE(kcm->tx_psock != psock);
	ret = kcm_tx_lock_tcp(psock);
	if (ret)
		goto out;
	ret = kcm_compat_tcp_send_pages(sk, bv, 1, len,
					MSG_DONTWAIT | MSG_NOSIGNAL);
	if (ret == len)
		kcm_tx_count(&psock->tx_stats, len);
	release_sock(sk);
out:
	if (ret >= 0)
		return ret;
	if (ret != -EAGAIN)
		kcm_psock_fail(psock, EPIPE);
	return 0;
}

/*
 * The socket's page fragment has a run of len bytes at its offset, refilled
 * if need be: a message longer than a page needs the compound page that
 * skb_page_frag_refill() may not get, and a page it reuses keeps its size.
 */
static bool kcm_tx_fast_room(struct sock *sk, unsigned int len)
{
	struct page_frag *pfrag = &sk->sk_frag;

	return skb_page_frag_refill(len, pfrag, sk->sk_allocation) &&
	       pfrag->size - pfrag->offset >= len;
}

/*
 * Sends a complete message of len bytes while nothing is queued, without a
 * message skb: it is copied into the run of the socket's page fragment that
 * kcm_tx_fast_room() found, as the slow path copies it, so that a faulting
 * buffer stops it before a byte of it is in TCP, and TCP takes the pages
 * from there.  What TCP does not take is queued as a message of that page
 * fragment, with kcm->tx_sent the bytes TCP has, on the psock kept
 * reserved: the push finishes it there, or sends it whole elsewhere.
 */
static int kcm_tx_fast(struct kcm_sock *kcm, struct iov_iter *from,
		       unsigned int len, u64 cookie)
{
	struct sock *sk = &kcm->sk;
	struct page_frag *pfrag = &sk->sk_frag;
	struct kcm_psock *psock;
	struct sk_buff *head, *tail;
	struct bio_vec bv;
	int sent = 0, err;

	sock_owned_by_me(sk);
	if (copy_page_from_iter(pfrag->page, pfrag->offset, len, from) != len) {
		/* As on the queued way: a bad cookie is found first. */
		err = cookie ? kcm_mux_tx_check_cookie(kcm->mux, cookie) : 0;
		return err ?: -EFAULT;
	}

	psock = kcm_tx_fast_psock(kcm, cookie, &err);
	if (err)
		return err;
	bvec_set_page(&bv, pfrag->page, len, pfrag->offset);
	pfrag->offset += len;
	if (psock) {
		sent = kcm_tx_send_fast(kcm, psock, &bv, len);
		if (sent == len) {
			kcm_tx_sent(kcm, psock, len);
			kcm_mux_tx_unreserve(kcm, false);
			return 0;
		}
	}

	head = kcm_tx_alloc(sk);
	if (!head)
		goto err_unreserve;
	tail = kcm_tx_tail(sk, head, NULL);
	if (!tail)
		goto err_free_head;
	get_page(bv.bv_page);
	kcm_tx_add_frag(sk, head, tail, bv.bv_page, bv.bv_offset, len);
	kcm_msg_cb(head)->cookie = cookie;
	kcm->tx_sent = sent;
	__skb_queue_tail(&sk->sk_write_queue, head);
	kcm_tx_push(kcm);
	return 0;

err_free_head:
	kcm_tx_free(sk, head);
err_unreserve:
	/* TCP has the message's first bytes and can never have the rest. */
	if (sent)
		kcm_tx_abort(kcm);
	/* Nothing is queued: off the waiters (kcm_tx_fast_psock() may have
	 * put us in line), and the push gives up the reservation.
	 */
	kcm_mux_tx_cancel_wait(kcm);
	kcm_tx_push(kcm);
	return -ENOMEM;
}

void kcm_tx_work(struct work_struct *work)
{
	struct kcm_sock *kcm = container_of(work, struct kcm_sock, tx_work);

	lock_sock(&kcm->sk);
	kcm_tx_push(kcm);
	release_sock(&kcm->sk);
}

/* sk_write_space of a KCM socket: wake senders when there is room. */
void kcm_tx_write_space(struct sock *sk)
{
	struct socket_wq *wq;

	if (!sk_stream_memory_free(sk))
		return;
	rcu_read_lock();
	wq = rcu_dereference(sk->sk_wq);
	if (skwq_has_sleeper(wq))
		wake_up_interruptible_poll(&wq->wait, EPOLLOUT | EPOLLWRNORM |
					   EPOLLWRBAND);
	if (wq && wq->fasync_list && !(sk->sk_shutdown & SEND_SHUTDOWN))
		sock_wake_async(wq, SOCK_WAKE_SPACE, POLL_OUT);
	rcu_read_unlock();
}

/* The KCM_ORIGIN control message of msg, if any, in *cookie. */
static int kcm_tx_cookie(struct msghdr *msg, u64 *cookie)
{
	struct cmsghdr *cmsg;

	*cookie = 0;
	for_each_cmsghdr(cmsg, msg) {
		if (!CMSG_OK(msg, cmsg))
			return -EINVAL;
		if (cmsg->cmsg_level != SOL_KCM ||
		    cmsg->cmsg_type != KCM_ORIGIN ||
		    cmsg->cmsg_len != CMSG_LEN(sizeof(u64)))
			return -EINVAL;
		memcpy(cookie, CMSG_DATA(cmsg), sizeof(u64));
		if (!*cookie)
			return -EINVAL;
	}
	return 0;
}

int kcm_tx_sendmsg(struct socket *sock, struct msghdr *msg, size_t len)
{
	struct sock *sk = sock->sk;
	struct kcm_sock *kcm = kcm_sk(sk);
	int flags = msg->msg_flags;
	struct sk_buff *head;
	unsigned int accepted;
	bool eor;
	long timeo;
	u64 cookie;
	int err;

	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	err = kcm_tx_cookie(msg, &cookie);
	if (err)
		return err;

	eor = sock->type == SOCK_DGRAM ? !(flags & MSG_MORE) :
					 !!(flags & MSG_EOR);
	timeo = sock_sndtimeo(sk, flags & MSG_DONTWAIT);

	lock_sock(sk);
	while (!sk_stream_memory_free(sk)) {
		kcm_tx_push(kcm);
		if (sk_stream_memory_free(sk))
			break;
		err = sk_stream_wait_memory(sk, &timeo);
		if (err)
			goto out;
	}

	/* Only now: while we waited, another thread may have completed (and
	 * sent, and freed) the partial message.
	 */
	head = kcm->tx_partial;
	if (head && cookie != kcm->tx_partial_cookie) {
		err = -EINVAL;
		goto out;
	}
	/* The fast path checks the cookie as it reserves (no message that
	 * short is too long).
	 */
	if (!head && eor && len && len <= KCM_TX_FAST_MAX &&
	    !(flags & (MSG_BATCH | MSG_SPLICE_PAGES)) && !kcm->tx_series &&
	    skb_queue_empty(&sk->sk_write_queue) &&
	    kcm_tx_fast_room(sk, len)) {
		err = kcm_tx_fast(kcm, &msg->msg_iter, len, cookie);
		if (!err)
			err = len;
		goto out;
	}
	if (cookie) {
		err = kcm_mux_tx_check_cookie(kcm->mux, cookie);
		if (err)
			goto out;
	}
	if (len > KCM_TX_MSG_MAX - (head ? head->len : 0)) {
		err = -EMSGSIZE;
		goto out;
	}

	if (!head) {
		head = kcm_tx_alloc(sk);
		if (!head) {
			err = -ENOMEM;
			goto out;
		}
	}
	kcm->tx_partial = NULL;

	accepted = head->len;
	err = kcm_tx_append(sk, head, &msg->msg_iter, len,
			    flags & MSG_SPLICE_PAGES);
	if (err) {
		/* Never send part of a message.  The pieces accepted before
		 * stay: this one may be sent again, and the message goes on
		 * with its first bytes (its header) where they were.
		 */
		if (!accepted) {
			kcm_tx_free(sk, head);
			goto out;
		}
		kcm_tx_trim(sk, head, accepted);
		kcm->tx_partial = head;
		goto out;
	}

	if (!eor) {
		kcm->tx_partial = head;
		kcm->tx_partial_cookie = cookie;
	} else {
		kcm_msg_cb(head)->cookie = cookie;
		__skb_queue_tail(&sk->sk_write_queue, head);
		kcm->tx_series = flags & MSG_BATCH;
		if (!kcm->tx_series)
			kcm_tx_push(kcm);
	}
	err = len;
out:
	release_sock(sk);
	return err;
}

#ifdef KCM_HAVE_SENDPAGE
/* sendpage (6.1): a sendmsg that takes the page by reference. */
ssize_t kcm_tx_sendpage(struct socket *sock, struct page *page, int offset,
			size_t size, int flags)
{
	struct msghdr msg = { .msg_flags = flags | MSG_SPLICE_PAGES };
	struct bio_vec bv;

	bvec_set_page(&bv, page, size, offset);
	iov_iter_bvec(&msg.msg_iter, WRITE, &bv, 1, size);
	return kcm_tx_sendmsg(sock, &msg, size);
}
#endif

/*
 * Closing: stop sending, give up the reservation and the wait for a psock.
 * A message cut short on its psock leaves that stream unusable: it is
 * aborted there (kcm_tx_abort()); messages not yet begun are dropped.
 */
void kcm_tx_release(struct kcm_sock *kcm)
{
	struct sock *sk = &kcm->sk;
	struct sk_buff *head;

	lock_sock(sk);
	kcm_tx_push(kcm);
	kcm->tx_stopped = true;
	/* Off the waiters first: a psock offered to a waiter could otherwise
	 * be linked to us after the unreserve below.
	 */
	kcm_mux_tx_cancel_wait(kcm);
	if (READ_ONCE(kcm->tx_psock) && kcm->tx_sent)
		kcm_tx_abort(kcm);
	kcm_mux_tx_unreserve(kcm, false);
	release_sock(sk);

	cancel_work_sync(&kcm->tx_work);

	lock_sock(sk);
	if (kcm->tx_partial) {
		kcm_tx_free(sk, kcm->tx_partial);
		kcm->tx_partial = NULL;
	}
	while ((head = __skb_dequeue(&sk->sk_write_queue)))
		kcm_tx_free(sk, head);
	release_sock(sk);
}
