// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel Connection Multiplexor: the receive path, reader's side.
 *
 * The parser (kcm_parser.c) cuts messages out of the TCP streams and the
 * mux (kcm_mux.c) queues them on KCM sockets.  recvmsg() and splice_read()
 * consume them here, a message at a time, from batches too.
 */

#include <linux/skbuff.h>
#include <linux/splice.h>
#include <net/kcm.h>
#include <trace/events/kcm.h>

void kcm_rx_skb_destructor(struct sk_buff *skb)
{
	atomic_sub(kcm_msg_cb(skb)->charge, &skb->sk->sk_rmem_alloc);
}

/* The first message of sk, waiting as allowed.  Under the socket lock. */
static struct sk_buff *kcm_rx_wait(struct sock *sk, long timeo, int *err)
{
	struct sk_buff *skb;

	sock_owned_by_me(sk);
	while (!(skb = skb_peek(&sk->sk_receive_queue))) {
		*err = sock_error(sk);
		if (*err)
			return NULL;
		if (!timeo) {
			*err = -EAGAIN;
			return NULL;
		}
		if (signal_pending(current)) {
			*err = sock_intr_errno(timeo);
			return NULL;
		}
		sk_wait_data(sk, &timeo, NULL);
	}
	return skb;
}

/*
 * The first n messages of skb from its current one are read; byte end of
 * skb follows the last of them.  The next message of a batch becomes
 * current, and the socket is charged only for what is left; a read skb is
 * freed.  Under the socket lock (/proc counts msgs without it).
 */
static void kcm_rx_done_msgs(struct kcm_sock *kcm, struct sk_buff *skb,
			     u32 n, u32 end)
{
	struct kcm_msg_cb *cb = kcm_msg_cb(skb);
	struct sock *sk = &kcm->sk;
	u32 charge;

	sock_owned_by_me(sk);
	WRITE_ONCE(cb->msgs, cb->msgs - n);
	cb->started = false;
	if (cb->msgs) {
		memcpy(&cb->len, skb->data + end, sizeof(u32));
		cb->offset = end + sizeof(u32);
		charge = kcm_msg_unread(skb) + sizeof(struct sk_buff);
		atomic_sub(cb->charge - charge, &sk->sk_rmem_alloc);
		cb->charge = charge;
	} else {
		skb_unlink(skb, &sk->sk_receive_queue);
		consume_skb(skb);
	}
}

/* Consumes len bytes of the current message of skb, the head of kcm's
 * queue.
 */
static void kcm_rx_consume(struct kcm_sock *kcm, struct sk_buff *skb,
			   unsigned int len)
{
	struct kcm_msg_cb *cb = kcm_msg_cb(skb);

	cb->offset += len;
	cb->len -= len;
	if (cb->len) {
		cb->started = true;
		return;
	}
	kcm_rx_done_msgs(kcm, skb, 1, cb->offset);
	kcm_mux_rx_space(kcm);
}

/*
 * skb, taken off its socket's queue, has its current message partly read:
 * that rest belongs to the reader who began it, and is no message another
 * socket could take.  skb is cut to that message and stays (charged to its
 * socket for it alone); the messages after it in a batch come back as a
 * clone of skb, for another socket, or NULL if there are none.  Under
 * mux->lock, with no reader on the socket (its lock held, or closing).
 */
struct sk_buff *kcm_rx_split_started(struct sk_buff *skb)
{
	struct kcm_msg_cb *cb = kcm_msg_cb(skb), *rcb;
	u32 end = cb->offset + cb->len, charge;
	struct sk_buff *rest;

	lockdep_assert_held(&kcm_sk(skb->sk)->mux->lock);
	if (!cb->batch || cb->msgs == 1)
		return NULL;
	rest = skb_clone(skb, GFP_ATOMIC);
	if (!rest)
		return NULL;	/* all of it stays, rather than any lost */

	rcb = kcm_msg_cb(rest);
	rcb->msgs = cb->msgs - 1;
	rcb->started = false;
	memcpy(&rcb->len, skb->data + end, sizeof(u32));
	rcb->offset = end + sizeof(u32);

	__skb_trim(skb, end);
	WRITE_ONCE(cb->msgs, 1);
	charge = kcm_msg_unread(skb) + sizeof(struct sk_buff);
	atomic_sub(cb->charge - charge, &skb->sk->sk_rmem_alloc);
	cb->charge = charge;
	return rest;
}

/*
 * Copies len bytes of skb's message data from offset on to msg.  Bytes in
 * the linear part of an skb whose head is page memory (a batch from the
 * page pool, kcm_rxbuf.c) are copied as page data, as the bytes of skb
 * fragments are, within the bounds of that (compound) page; the rest as
 * skb_copy_datagram_msg() copies it.  0 or -EFAULT.
 */
static int kcm_rx_copy(const struct sk_buff *skb, u32 offset,
		       struct msghdr *msg, u32 len)
{
	const u8 *from = skb->data + offset;
	struct page *page;

	if (!skb->head_frag || offset + len > skb_headlen(skb))
		return skb_copy_datagram_msg(skb, offset, msg, len);
	page = virt_to_head_page(from);
	if (copy_page_to_iter(page, from - (u8 *)page_address(page), len,
			      &msg->msg_iter) != len)
		return -EFAULT;
	return 0;
}

/*
 * How many of skb's messages, from its current one on and each after its
 * length word, fit in room bytes.  *end is set past the last of them.
 */
static u32 kcm_rx_batch_span(struct sk_buff *skb, size_t room, u32 *end)
{
	struct kcm_msg_cb *cb = kcm_msg_cb(skb);
	u32 len = cb->len, at = cb->offset;
	u32 n = 0;

	*end = at;
	while (sizeof(u32) + len <= room) {
		room -= sizeof(u32) + len;
		*end = at + len;
		if (++n == cb->msgs)
			break;
		memcpy(&len, skb->data + *end, sizeof(u32));
		at = *end + sizeof(u32);
	}
	return n;
}

/* The skb after skb in sk's receive queue, or NULL. */
static struct sk_buff *kcm_rx_next_skb(struct sock *sk, struct sk_buff *skb)
{
	unsigned long flags;

	spin_lock_irqsave(&sk->sk_receive_queue.lock, flags);
	skb = skb_peek_next(skb, &sk->sk_receive_queue);
	spin_unlock_irqrestore(&sk->sk_receive_queue.lock, flags);
	return skb;
}

/*
 * The first message does not fit the buffer, length word included: what
 * fits of both is copied, and the message is consumed but for a peek.
 */
static int kcm_rx_batch_trunc(struct kcm_sock *kcm, struct sk_buff *skb,
			      struct msghdr *msg, size_t size, int flags)
{
	struct kcm_msg_cb *cb = kcm_msg_cb(skb);
	size_t head = min(size, sizeof(u32));
	size_t body = min_t(size_t, size - head, cb->len);
	int err;

	err = memcpy_to_msg(msg, &cb->len, head);
	if (!err)
		err = kcm_rx_copy(skb, cb->offset, msg, body);
	if (err)
		return err;
	msg->msg_flags |= MSG_TRUNC;
	if (!(flags & MSG_PEEK)) {
		trace_kcm_rx_read(kcm->index, 1, head + body);
		kcm_rx_consume(kcm, skb, cb->len);
	}
	return head + body;
}

/*
 * KCM_RECV_BATCH: copies whole messages, each after its length as a u32,
 * while they fit in size bytes; with KCM_RECV_ORIGIN only those that came
 * from the first one's TCP socket.  skb is the head of kcm's queue.  Bytes
 * are consumed once copied, so a fault returns what was read before it.
 */
static int kcm_rx_recv_batch(struct kcm_sock *kcm, struct sk_buff *skb,
			     struct msghdr *msg, size_t size, int flags)
{
	u64 cookie = kcm_msg_cb(skb)->cookie;
	struct sock *sk = &kcm->sk;
	size_t copied = 0;
	u32 msgs = 0;
	int err = 0;

	do {
		struct kcm_msg_cb *cb = kcm_msg_cb(skb);
		struct sk_buff *next;
		u32 n, end;

		n = kcm_rx_batch_span(skb, size - copied, &end);
		if (!n)
			break;
		err = memcpy_to_msg(msg, &cb->len, sizeof(u32));
		if (!err)
			err = kcm_rx_copy(skb, cb->offset, msg,
					  end - cb->offset);
		if (err)
			break;
		copied += sizeof(u32) + end - cb->offset;

		next = n == cb->msgs ? kcm_rx_next_skb(sk, skb) : NULL;
		msgs += n;
		if (!(flags & MSG_PEEK))
			kcm_rx_done_msgs(kcm, skb, n, end);
		skb = next;
	} while (skb && (!kcm->rx_origin ||
			 kcm_msg_cb(skb)->cookie == cookie));

	if (!copied)
		return err ?: kcm_rx_batch_trunc(kcm, skb, msg, size, flags);
	if (!(flags & MSG_PEEK)) {
		trace_kcm_rx_read(kcm->index, msgs, copied);
		kcm_mux_rx_space(kcm);
	}
	msg->msg_flags |= MSG_EOR;
	return copied;
}

int kcm_rx_recvmsg(struct socket *sock, struct msghdr *msg, size_t len,
		   int flags)
{
	struct sock *sk = sock->sk;
	struct kcm_sock *kcm = kcm_sk(sk);
	struct kcm_msg_cb *cb;
	struct sk_buff *skb;
	size_t copied;
	int err;

	if (flags & MSG_OOB)
		return -EOPNOTSUPP;

	lock_sock(sk);
	skb = kcm_rx_wait(sk, sock_rcvtimeo(sk, flags & MSG_DONTWAIT), &err);
	if (!skb)
		goto out;

	if (kcm->rx_batch_recv) {
		u64 cookie = kcm_msg_cb(skb)->cookie;

		err = kcm_rx_recv_batch(kcm, skb, msg, len, flags);
		if (err >= 0 && kcm->rx_origin)
			put_cmsg(msg, SOL_KCM, KCM_ORIGIN, sizeof(cookie),
				 &cookie);
		goto out;
	}

	cb = kcm_msg_cb(skb);
	copied = min_t(size_t, len, cb->len);
	err = kcm_rx_copy(skb, cb->offset, msg, copied);
	if (err)
		goto out;
	if (kcm->rx_origin)
		put_cmsg(msg, SOL_KCM, KCM_ORIGIN, sizeof(cb->cookie),
			 &cb->cookie);

	if (copied == cb->len)
		msg->msg_flags |= MSG_EOR;
	else if (sock->type == SOCK_DGRAM)
		msg->msg_flags |= MSG_TRUNC;

	if (!(flags & MSG_PEEK)) {
		trace_kcm_rx_read(kcm->index, copied == cb->len ||
				  sock->type == SOCK_DGRAM, copied);
		kcm_rx_consume(kcm, skb, sock->type == SOCK_DGRAM ?
			       cb->len : copied);
	}
	err = copied;
out:
	release_sock(sk);
	return err;
}

ssize_t kcm_rx_splice_read(struct socket *sock, loff_t *ppos,
			   struct pipe_inode_info *pipe, size_t len,
			   unsigned int flags)
{
	struct sock *sk = sock->sk;
	struct kcm_msg_cb *cb;
	struct sk_buff *skb;
	long timeo;
	int err;

	timeo = sock_rcvtimeo(sk, (flags & SPLICE_F_NONBLOCK) ||
			      (sock->file->f_flags & O_NONBLOCK));
	lock_sock(sk);
	skb = kcm_rx_wait(sk, timeo, &err);
	if (!skb)
		goto out;

	cb = kcm_msg_cb(skb);
	err = skb_splice_bits(skb, sk, cb->offset, pipe,
			      min_t(size_t, len, cb->len), flags);
	if (err > 0) {
		trace_kcm_rx_read(kcm_sk(sk)->index, err == cb->len, err);
		kcm_rx_consume(kcm_sk(sk), skb, err);
	}
out:
	release_sock(sk);
	return err;
}
