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

void kcm_rx_skb_destructor(struct sk_buff *skb)
{
	atomic_sub(kcm_msg_cb(skb)->charge, &skb->sk->sk_rmem_alloc);
}

/* The first message of sk, waiting as allowed.  Under the socket lock. */
static struct sk_buff *kcm_rx_wait(struct sock *sk, long timeo, int *err)
{
	struct sk_buff *skb;

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
 * Consumes len bytes of skb, the head of kcm's queue.  Once its message is
 * read, the next message of a batch becomes current, and the socket is
 * charged only for what is left.
 */
static void kcm_rx_consume(struct kcm_sock *kcm, struct sk_buff *skb,
			   unsigned int len)
{
	struct kcm_msg_cb *cb = kcm_msg_cb(skb);
	struct sock *sk = &kcm->sk;
	u32 charge;

	cb->offset += len;
	cb->len -= len;
	if (cb->len)
		return;
	if (--cb->msgs) {
		memcpy(&cb->len, skb->data + cb->offset, sizeof(u32));
		cb->offset += sizeof(u32);
		charge = kcm_msg_unread(skb) + sizeof(struct sk_buff);
		atomic_sub(cb->charge - charge, &sk->sk_rmem_alloc);
		cb->charge = charge;
	} else {
		skb_unlink(skb, &sk->sk_receive_queue);
		consume_skb(skb);
	}
	kcm_mux_rx_space(kcm);
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

	cb = kcm_msg_cb(skb);
	copied = min_t(size_t, len, cb->len);
	err = skb_copy_datagram_msg(skb, cb->offset, msg, copied);
	if (err)
		goto out;
	if (kcm->rx_origin)
		put_cmsg(msg, SOL_KCM, KCM_ORIGIN, sizeof(cb->cookie),
			 &cb->cookie);

	if (copied == cb->len)
		msg->msg_flags |= MSG_EOR;
	else if (sock->type == SOCK_DGRAM)
		msg->msg_flags |= MSG_TRUNC;

	if (!(flags & MSG_PEEK))
		kcm_rx_consume(kcm, skb, sock->type == SOCK_DGRAM ?
			       cb->len : copied);
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
	if (err > 0)
		kcm_rx_consume(kcm_sk(sk), skb, err);
out:
	release_sock(sk);
	return err;
}
