// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel Connection Multiplexor: the receive path.
 *
 * Each psock runs the kernel's stream parser on its TCP socket.  The parser
 * asks kcm_rx_parse() for the length of the message it is assembling and
 * hands the whole message to kcm_rx_rcv_msg(), which steers it to a KCM
 * socket (kcm_mux.c).  recvmsg() and splice_read() then consume messages
 * from that socket's receive queue.
 */

#include <linux/filter.h>
#include <linux/skbuff.h>
#include <linux/splice.h>
#include <net/kcm.h>
#include <net/tcp.h>

/*
 * The framing program must see the first byte of the message at offset 0,
 * wherever the message begins in the parser's skb.  At the head of the skb
 * or inside its linear part the skb itself is shifted for the run; further
 * in, a prefix of the message is copied into the psock's view skb.  A
 * program that wants more of the message than the prefix holds fails its
 * load and returns 0 (need more), and is run again on a prefix twice as
 * long, up to all the bytes received so far.  The first prefix is short:
 * framing headers are, and the copy is paid for every message.
 */
#define KCM_RX_VIEW_PREFIX	32

static int kcm_rx_run_view(struct kcm_psock *psock, struct sk_buff *skb,
			   unsigned int offset, unsigned int len)
{
	struct sk_buff *view = psock->view;

	if (skb_end_offset(view) < len) {
		view = alloc_skb(len, GFP_ATOMIC);
		if (!view)
			return -ENOMEM;
		consume_skb(psock->view);
		psock->view = view;
	}

	__skb_trim(view, 0);
	if (skb_copy_bits(skb, offset, skb_put(view, len), len))
		return -EFAULT;
	return bpf_prog_run_save_cb(psock->prog, view);
}

static int kcm_rx_parse(struct strparser *strp, struct sk_buff *skb)
{
	struct kcm_psock *psock = container_of(strp, struct kcm_psock, strp);
	unsigned int offset = strp_msg(skb)->offset;
	unsigned int avail, len;
	int ret;

	if (likely(offset <= skb_headlen(skb))) {
		__skb_pull(skb, offset);
		ret = bpf_prog_run_save_cb(psock->prog, skb);
		__skb_push(skb, offset);
		return ret;
	}

	avail = skb->len - offset;
	len = min_t(unsigned int, avail, KCM_RX_VIEW_PREFIX);
	for (;;) {
		ret = kcm_rx_run_view(psock, skb, offset, len);
		if (ret || len == avail)
			return ret;
		len = min(avail, len * 2);
	}
}

static int kcm_rx_skip(read_descriptor_t *desc, struct sk_buff *skb,
		       unsigned int offset, size_t len)
{
	size_t n = min_t(size_t, len, desc->count);

	desc->count -= n;
	return n;
}

/* Bytes of the message the parser is assembling, or 0 between messages. */
static u32 kcm_rx_partial_len(struct strparser *strp)
{
	struct sk_buff *head = strp->skb_head;

	if (!head)
		return 0;
	return container_of(strp_msg(head), struct _strp_msg, strp)->accum_len;
}

/*
 * Whether the partial message may wait in the TCP socket: not when it is
 * longer than a quarter of the receive buffer, for all of it would have to
 * fit in TCP's window at once, and the parser reads again only when the
 * rest of the message is in: a window smaller than that would never open.
 */
static bool kcm_rx_keepable(struct strparser *strp)
{
	u32 limit = READ_ONCE(strp->sk->sk_rcvbuf) / 4;

	return strp_msg(strp->skb_head)->full_len <= limit;
}

/*
 * Feeds the parser from the TCP socket.  The bytes of a message still being
 * assembled are left in the TCP receive queue (the parser holds clones of
 * them, and psock->rx_kept counts them), so that unattach gives them back
 * to user space; only the bytes of whole messages are consumed.  Once they
 * fill half of the socket's receive buffer, the rest of that message is
 * consumed as it arrives instead, or TCP's window would close on it.
 * Called by the parser with the TCP socket locked.
 */
static int kcm_rx_read_sock(struct strparser *strp, read_descriptor_t *desc,
			    sk_read_actor_t actor)
{
	struct kcm_psock *psock = container_of(strp, struct kcm_psock, strp);
	struct sock *sk = strp->sk;
	u32 start = tcp_sk(sk)->copied_seq;
	u32 seq = start + psock->rx_kept;
	read_descriptor_t skip = {};
	struct sk_buff *skb;
	u32 kept;

	skb_queue_walk(&sk->sk_receive_queue, skb) {
		u32 offset = seq - TCP_SKB_CB(skb)->seq;
		int used;

		if (TCP_SKB_CB(skb)->tcp_flags & TCPHDR_SYN)
			offset--;
		if (offset >= skb->len)
			continue;
		used = actor(desc, skb, offset, skb->len - offset);
		if (used <= 0)
			break;
		seq += used;
		if (used < skb->len - offset || !desc->count)
			break;
	}

	/* Once some of a message's bytes are consumed, all of them are: the
	 * decision is taken once per message.
	 */
	kept = kcm_rx_partial_len(strp);
	if (!kept)
		psock->rx_spill = false;
	else if (psock->rx_spill || !kcm_rx_keepable(strp))
		psock->rx_spill = true;
	if (psock->rx_spill)
		kept = 0;
	skip.count = seq - start - kept;
	if (skip.count)
		tcp_read_sock(sk, &skip, kcm_rx_skip);

	if (kept && atomic_read(&sk->sk_rmem_alloc) >
		    READ_ONCE(sk->sk_rcvbuf) / 2) {
		psock->rx_spill = true;
		skip.count = kept;
		tcp_read_sock(sk, &skip, kcm_rx_skip);
		kept = 0;
	}
	psock->rx_kept = kept;
	return seq - start;
}

/*
 * Small messages are copied out of the TCP skbs into batches: one linear skb
 * holds the small messages of a pass, each after its length, until it is
 * full; a new one, twice as large, takes the rest.  The reader then copies
 * from plain memory, and the messages cost one allocation and one free a
 * batch instead of a clone each, which the reader frees on its own CPU.
 * A message alone in its pass is not copied: it stays the parser's clone.
 * Sizes are those of the whole allocation, skb_shared_info included.
 */
#define KCM_RX_COPY_MAX		512
#define KCM_RX_BATCH_MIN	2048
#define KCM_RX_BATCH_MAX	16384

/* Hands on the pass's pending message or batch. */
static void kcm_rx_flush(struct kcm_psock *psock)
{
	struct sk_buff *skb = psock->rx_pending;

	if (!skb)
		return;
	psock->rx_pending = NULL;
	kcm_mux_rx_deliver(psock->mux, psock, skb);
}

static void kcm_rx_batch_copy(struct sk_buff *batch, struct sk_buff *skb)
{
	struct kcm_msg_cb *cb = kcm_msg_cb(skb);

	skb_put_data(batch, &cb->len, sizeof(u32));
	skb_copy_bits(skb, cb->offset, skb_put(batch, cb->len), cb->len);
	kcm_msg_cb(batch)->msgs++;
}

/* A batch starting with the message of first, or NULL. */
static struct sk_buff *kcm_rx_batch_start(struct kcm_psock *psock,
					  struct sk_buff *first)
{
	unsigned int size = psock->rx_batch_size ?: KCM_RX_BATCH_MIN;
	struct kcm_msg_cb *cb;
	struct sk_buff *batch;

	batch = alloc_skb(SKB_WITH_OVERHEAD(size), GFP_ATOMIC);
	if (!batch)
		return NULL;
	psock->rx_batch_size = min(size * 2, KCM_RX_BATCH_MAX);

	cb = kcm_msg_cb(batch);
	cb->cookie = psock->cookie;
	cb->offset = sizeof(u32);
	cb->len = kcm_msg_cb(first)->len;
	cb->msgs = 0;
	cb->batch = true;
	kcm_rx_batch_copy(batch, first);
	consume_skb(first);
	return batch;
}

/* Adds a small message to the pass's batch. */
static void kcm_rx_batch_add(struct kcm_psock *psock, struct sk_buff *skb)
{
	struct sk_buff *batch = psock->rx_pending;

	if (batch && !kcm_msg_cb(batch)->batch) {
		batch = kcm_rx_batch_start(psock, batch);
		if (batch)
			psock->rx_pending = batch;
	}
	if (!batch || skb_tailroom(batch) < sizeof(u32) + kcm_msg_cb(skb)->len) {
		kcm_rx_flush(psock);
		psock->rx_pending = skb;
		return;
	}
	kcm_rx_batch_copy(batch, skb);
	consume_skb(skb);
}

static void kcm_rx_rcv_msg(struct strparser *strp, struct sk_buff *skb)
{
	struct kcm_psock *psock = container_of(strp, struct kcm_psock, strp);
	struct strp_msg stm = *strp_msg(skb);
	struct kcm_msg_cb *cb = kcm_msg_cb(skb);

	cb->cookie = psock->cookie;
	cb->offset = stm.offset;
	cb->len = stm.full_len;
	cb->msgs = 1;
	cb->batch = false;
	if (cb->len <= KCM_RX_COPY_MAX) {
		kcm_rx_batch_add(psock, skb);
		return;
	}
	kcm_rx_flush(psock);
	kcm_mux_rx_deliver(psock->mux, psock, skb);
}

static int kcm_rx_read_sock_done(struct strparser *strp, int err)
{
	struct kcm_psock *psock = container_of(strp, struct kcm_psock, strp);

	kcm_rx_flush(psock);
	psock->rx_batch_size = 0;
	kcm_mux_rx_batch_end(psock);
	return err;
}

/*
 * The parser gave up on the stream: a message too long for the TCP socket's
 * receive buffer (EMSGSIZE), not assembled in time (ETIMEDOUT), or the
 * program returned an error, which is posted as it is, as Linux does.  The
 * stream cannot be resynchronised, so the psock stops.
 */
static void kcm_rx_abort(struct strparser *strp, int err)
{
	struct kcm_psock *psock = container_of(strp, struct kcm_psock, strp);

	kcm_rx_flush(psock);
	strp_stop(strp);
	psock->stats.rx_aborts++;
	kcm_psock_fail(psock, -err);
}

const struct strp_callbacks kcm_rx_strp_callbacks = {
	.parse_msg	= kcm_rx_parse,
	.rcv_msg	= kcm_rx_rcv_msg,
	.read_sock	= kcm_rx_read_sock,
	.read_sock_done	= kcm_rx_read_sock_done,
	.abort_parser	= kcm_rx_abort,
};

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
