// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel Connection Multiplexor: the stream parser.
 *
 * Cuts the byte stream of an attached TCP socket into messages and hands
 * them to the mux (kcm_mux_rx_deliver()).  A parser pass runs when data is
 * ready, in softirq under the TCP socket's bh lock, or from psock->rx_work
 * under its process lock (the socket was busy, the mux resumed a paused
 * parser, or an allocation failed).
 *
 * A pass walks the TCP receive queue from the first unconsumed byte.  For
 * each message the framing program tells its length, seeing the message's
 * first byte at offset 0, or the parser reads it from the message's length
 * field itself (SIOCKCMATTACHLEN), where it lies, copying only a field that
 * straddles two pieces of memory.  A message whose bytes are all in is
 * taken out of the queue:
 *
 *   - a small one is copied into a batch, a linear skb that holds the small
 *     messages of the pass one after the other, each after its length
 *     (see struct kcm_msg_cb), sized for the bytes the pass has;
 *   - a large one, or one alone in its pass, becomes a clone of the TCP
 *     skb it lies in, or an empty skb whose fragment list holds clones of
 *     the TCP skbs it spans.
 *
 * Nothing is allocated for a message that is not whole yet: its bytes wait
 * in the TCP socket, where unattach leaves them for user space.  Only a
 * message too large for that is taken out as it arrives, into rx_head, or
 * TCP's window would close on it: one longer than a quarter of the receive
 * buffer, or one whose bytes would leave TCP holding more than half of it
 * after the pass (the skbs they lie in count, not the bytes).  That goes
 * for a message whose length is not known yet too (a partial header): the
 * program then runs on what rx_head has of it followed by what TCP has.
 * Bytes of whole messages are consumed once, at the end of the pass.
 *
 * Failures stop the parser and post an error on the TCP socket: a message
 * longer than its receive buffer, or a program answer of 2^31 or more that
 * is not an errno (EMSGSIZE), a message not assembled within its
 * SO_RCVTIMEO (ETIMEDOUT, counted from its first byte), a program error
 * from -4095 to -1 (posted as it is, as Linux does), a length shorter than
 * the bytes the program needed first once those were taken out (EPROTO);
 * with a length field, a length shorter than the field's end (EBADMSG).
 */

#include <linux/filter.h>
#include <linux/skbuff.h>
#include <net/kcm.h>
#include <net/tcp.h>

#include "compat.h"
#include <trace/events/kcm.h>

/*
 * The program sees the message at offset 0: at the head of a TCP skb's
 * linear part the skb itself is shifted for the run; elsewhere a prefix of
 * the message is copied into the psock's view skb.  A program that wants
 * more than the prefix fails its load and returns 0 (need more), and runs
 * again on a prefix twice as long, up to all the bytes received but no more
 * than KCM_RX_VIEW_MAX: a program that cannot tell the length from that
 * much fails the stream (EMSGSIZE) rather than make every pass copy more,
 * with GFP_ATOMIC, in softirq.  The first prefix is short: framing headers
 * are, and the copy is paid every message.
 */
#define KCM_RX_VIEW_PREFIX	32
#define KCM_RX_VIEW_MAX		65536

/*
 * Messages up to this length are copied into batches.  Measured under TCG
 * with the stream benchmark on 6.12: copying 516-byte messages instead of
 * cloning the TCP skb for each made the 512-byte stream 17% faster;
 * copying 4100-byte ones made the 4 KiB stream a third slower.
 */
#define KCM_RX_COPY_MAX		2048

/*
 * A place in a queue of received bytes: stream byte seq, at offset in skb.
 * The queue is the TCP receive queue, or the plaintext read from kTLS
 * (kcm_tls.c), whose skbs carry sequence numbers as TCP's do.
 * Offsets come from sequence numbers, never from adding up lengths: an skb
 * may begin with bytes that its predecessor holds already (a retransmitted
 * segment that overlapped what had arrived).  data and room are the bytes
 * from there that lie one after the other in memory, to the end of the
 * linear part or of the page fragment; data is NULL where they are not
 * mapped (a fragment list, fragments the CPU cannot read, highmem), and
 * skb_copy_bits() copies them.
 */
struct kcm_rx_pos {
	struct sk_buff_head *queue;
	struct sk_buff *skb;
	u32 offset;
	u32 seq;
	const u8 *data;
	u32 room;
};

/* Where stream byte seq is in skb; skb->len or more if not in it. */
static u32 kcm_parser_offset(struct sk_buff *skb, u32 seq)
{
	u32 offset = seq - TCP_SKB_CB(skb)->seq;

	if (TCP_SKB_CB(skb)->tcp_flags & TCPHDR_SYN)
		offset--;
	return offset;
}

/* Sets data and room for pos->offset in pos->skb. */
static void kcm_parser_map(struct kcm_rx_pos *pos)
{
	struct sk_buff *skb = pos->skb;
	u32 start = skb_headlen(skb);
	int i;

	if (pos->offset < start) {
		pos->data = skb->data + pos->offset;
		pos->room = start - pos->offset;
		return;
	}
	pos->data = NULL;
	pos->room = 0;
	if (IS_ENABLED(CONFIG_HIGHMEM) || !kcm_compat_frags_readable(skb))
		return;
	for (i = 0; i < skb_shinfo(skb)->nr_frags; i++) {
		const skb_frag_t *frag = &skb_shinfo(skb)->frags[i];
		u32 end = start + skb_frag_size(frag);

		if (pos->offset < end) {
			pos->data = skb_frag_address(frag) + pos->offset - start;
			pos->room = end - pos->offset;
			return;
		}
		start = end;
	}
}

/* Moves pos on to the first skb from pos->skb on that holds pos->seq;
 * pos->skb is NULL if none does.
 */
static void kcm_parser_settle(struct kcm_rx_pos *pos)
{
	while (pos->skb) {
		pos->offset = kcm_parser_offset(pos->skb, pos->seq);
		if (pos->offset < pos->skb->len) {
			kcm_parser_map(pos);
			return;
		}
		pos->skb = skb_queue_is_last(pos->queue, pos->skb) ?
			   NULL : pos->skb->next;
	}
}

/* Finds stream byte seq in queue; false if not there. */
static bool kcm_parser_find(struct sk_buff_head *queue, u32 seq,
			    struct kcm_rx_pos *pos)
{
	pos->queue = queue;
	pos->skb = skb_peek(queue);
	pos->seq = seq;
	kcm_parser_settle(pos);
	return pos->skb;
}

/* The stream sequence number just past the last byte received. */
static u32 kcm_parser_end(struct sock *sk)
{
	struct sk_buff *tail = skb_peek_tail(&sk->sk_receive_queue);

	if (!tail)
		return tcp_sk(sk)->copied_seq;
	return TCP_SKB_CB(tail)->end_seq -
	       !!(TCP_SKB_CB(tail)->tcp_flags & TCPHDR_FIN);
}

/* Moves pos on by len bytes, which are in the queue (pos->skb is NULL at
 * its end).
 */
static void kcm_parser_advance(struct kcm_rx_pos *pos, u32 len)
{
	pos->seq += len;
	if (len < pos->room) {
		pos->offset += len;
		pos->data += len;
		pos->room -= len;
		return;
	}
	kcm_parser_settle(pos);
}

/* Copies len received bytes from pos on. */
static void kcm_parser_copy(struct kcm_rx_pos pos, void *to, u32 len)
{
	for (;;) {
		u32 n;

		if (pos.data) {
			n = min(len, pos.room);
			memcpy(to, pos.data, n);
		} else {
			n = min(len, pos.skb->len - pos.offset);
			skb_copy_bits(pos.skb, pos.offset, to, n);
		}
		len -= n;
		if (!len)
			return;
		to += n;
		kcm_parser_advance(&pos, n);
	}
}

/*
 * Runs the program on skb.  The pass has disabled migration; the program
 * finds the control block's scratch area zeroed, as bpf_prog_run_save_cb()
 * would leave it, and the caller restores what it needs of it.
 */
static int kcm_parser_run(struct bpf_prog *prog, struct sk_buff *skb)
{
	if (unlikely(prog->cb_access))
		memset(bpf_skb_cb(skb), 0, BPF_SKB_CB_LEN);
	return bpf_prog_run(prog, skb);
}

/* The view, emptied and len bytes long; NULL if it could not grow so. */
static u8 *kcm_parser_view(struct kcm_psock *psock, u32 len)
{
	struct sk_buff *view = psock->view;

	if (skb_end_offset(view) < len) {
		view = alloc_skb(len, GFP_ATOMIC);
		if (!view)
			return NULL;
		consume_skb(psock->view);
		psock->view = view;
	}
	__skb_trim(view, 0);
	return __skb_put(view, len);
}

/* Runs the program on the first len bytes of the message at pos; false if
 * the view could not grow to that.
 */
static bool kcm_parser_run_view(struct kcm_psock *psock,
				struct kcm_rx_pos *pos, u32 len, int *ret)
{
	u8 *buf = kcm_parser_view(psock, len);

	if (!buf)
		return false;
	kcm_parser_copy(*pos, buf, len);
	*ret = kcm_parser_run(psock->prog, psock->view);
	return true;
}

/* Runs the program on the TCP skb itself, shifted to the message.  Its
 * control block is TCP's: all of it is kept, not only what the run saves.
 */
static int kcm_parser_run_skb(struct kcm_psock *psock, struct sk_buff *skb,
			      u32 offset)
{
	char cb[sizeof(skb->cb)];
	int ret;

	memcpy(cb, skb->cb, sizeof(cb));
	__skb_pull(skb, offset);
	ret = kcm_parser_run(psock->prog, skb);
	__skb_push(skb, offset);
	memcpy(skb->cb, cb, sizeof(cb));
	return ret;
}

/*
 * Runs the framing program on the message at pos, of which avail bytes are
 * in.  Sets *ret to its answer: the length, 0 if it needs more, or an
 * error.  False if memory ran out.
 */
static bool kcm_parser_frame(struct kcm_psock *psock, struct kcm_rx_pos *pos,
			     u32 avail, int *ret)
{
	struct sk_buff *skb = pos->skb;
	u32 offset = pos->offset;
	u32 len;

	if (offset <= skb_headlen(skb)) {
		*ret = kcm_parser_run_skb(psock, skb, offset);
		if (*ret || skb->len - offset >= avail)
			return true;
	}

	avail = min_t(u32, avail, KCM_RX_VIEW_MAX);
	len = min_t(u32, avail, KCM_RX_VIEW_PREFIX);
	for (;;) {
		if (!kcm_parser_run_view(psock, pos, len, ret))
			return false;
		if (*ret || len == avail)
			return true;
		len = min(avail, len * 2);
	}
}

/*
 * Runs the framing program on the message whose first rx_have bytes were
 * taken out into rx_head before its length was known; avail more bytes
 * are in from pos on.  The view holds both, one after the other; it starts
 * at twice what the program found too short.
 */
static bool kcm_parser_frame_head(struct kcm_psock *psock,
				  struct kcm_rx_pos *pos, u32 avail, int *ret)
{
	u32 have = psock->rx_have;
	u32 total = min_t(u32, have + avail, KCM_RX_VIEW_MAX);
	u32 len = min(total, max_t(u32, KCM_RX_VIEW_PREFIX, 2 * have));

	for (;;) {
		u8 *buf = kcm_parser_view(psock, len);
		u32 n = min(len, have);

		if (!buf)
			return false;
		if (skb_copy_bits(psock->rx_head, psock->rx_offset, buf, n))
			return false;
		if (len > n)
			kcm_parser_copy(*pos, buf + n, len - n);
		*ret = kcm_parser_run(psock->prog, psock->view);
		if (*ret || len == total)
			return true;
		len = min(total, len * 2);
	}
}

/* Counts one event in a parser counter of psock.  Under the TCP socket
 * lock, which makes the parser the counters' only writer.
 */
static void kcm_parser_count(struct kcm_psock *psock, u64_stats_t *counter)
{
	kcm_stats_add(&psock->rx_stats.syncp, counter, 1);
}

/*
 * The framing of SIOCKCMATTACHLEN, checked: 0 or -EINVAL.  A field ends
 * within KCM_LEN_MAX_HEADER bytes, less than KCM_RX_VIEW_MAX, so a header
 * not yet complete is no longer than a program's view could be.
 */
int kcm_parser_len_init(struct kcm_len_framing *f,
			const struct kcm_attach_len *info)
{
	u32 end = info->offset + info->width;

	if (info->flags & ~KCM_LEN_LITTLE_ENDIAN)
		return -EINVAL;
	if (info->width != 1 && info->width != 2 && info->width != 4 &&
	    info->width != 8)
		return -EINVAL;
	if (info->offset > KCM_LEN_MAX_HEADER || end > KCM_LEN_MAX_HEADER)
		return -EINVAL;
	if (info->max_len && (info->max_len < end || info->max_len > INT_MAX))
		return -EINVAL;
	f->offset = info->offset;
	f->width = info->width;
	f->little_endian = info->flags & KCM_LEN_LITTLE_ENDIAN;
	f->adjust = info->adjust;
	f->max_len = info->max_len ?: INT_MAX;
	return 0;
}

/* The value of a length field of f's width and byte order. */
static u64 kcm_parser_len_value(const struct kcm_len_framing *f,
				const u8 *field)
{
	switch (f->width) {
	case 1:
		return *field;
	case 2:
		return f->little_endian ? get_unaligned_le16(field) :
					  get_unaligned_be16(field);
	case 4:
		return f->little_endian ? get_unaligned_le32(field) :
					  get_unaligned_be32(field);
	default:
		return f->little_endian ? get_unaligned_le64(field) :
					  get_unaligned_be64(field);
	}
}

/*
 * Reads the length field of the message at pos, whose first have bytes
 * were taken out into rx_head; avail more are in from pos on, enough to
 * hold the field.  In place where the field lies in one piece of memory
 * in TCP's queue; copied into buf otherwise.
 */
static const u8 *kcm_parser_len_field(struct kcm_psock *psock,
				      struct kcm_rx_pos *pos, u32 have,
				      u8 *buf)
{
	const struct kcm_len_framing *f = &psock->len_framing;
	u32 start = f->offset, end = f->offset + f->width;
	struct kcm_rx_pos p = *pos;
	u8 *to = buf;

	if (!have && p.data && p.room >= end)
		return p.data + start;
	if (start < have) {
		u32 n = min(end, have) - start;

		if (skb_copy_bits(psock->rx_head, psock->rx_offset + start,
				  to, n))
			return NULL;
		to += n;
		start += n;
	}
	if (start < end) {
		if (start > have)
			kcm_parser_advance(&p, start - have);
		kcm_parser_copy(p, to, end - start);
	}
	return buf;
}

/*
 * The length of the message at pos, read from its length field, into
 * *ret as a program would answer it: 0 while the field is not all in, the
 * length, or -EBADMSG (shorter than its own header), -EMSGSIZE (longer
 * than max_len) or -EPROTO (taken-out bytes that cannot be read back).
 * avail bytes are in from pos on.  Always true: it allocates nothing.
 */
static bool kcm_parser_frame_len(struct kcm_psock *psock,
				 struct kcm_rx_pos *pos, u32 avail, int *ret)
{
	const struct kcm_len_framing *f = &psock->len_framing;
	u32 have = psock->rx_head ? psock->rx_have : 0;
	u32 end = f->offset + f->width;
	const u8 *field;
	u8 buf[8];
	s64 len;
	u64 v;

	if (have + avail < end) {
		*ret = 0;
		return true;
	}
	field = kcm_parser_len_field(psock, pos, have, buf);
	if (WARN_ON_ONCE(!field)) {
		/* Bytes taken out that cannot be read back: not a lack of
		 * memory that a retry would cure.
		 */
		*ret = -EPROTO;
		return true;
	}
	v = kcm_parser_len_value(f, field);
	len = v > U32_MAX ? S64_MAX : (s64)v + f->adjust;
	if (len < end) {
		*ret = -EBADMSG;
	} else if (len > f->max_len) {
		kcm_parser_count(psock, &psock->rx_stats.too_big);
		*ret = -EMSGSIZE;
	} else {
		*ret = len;
	}
	return true;
}

/*
 * Hands skb to the mux; if the mux holds it, the pass ends.  end: skb is
 * the pass's last, and the mux ends the pass with it (one hold of its lock
 * for both: a lone request's pass takes it once).
 */
static void kcm_parser_hand_on(struct kcm_psock *psock, struct sk_buff *skb,
			       bool end)
{
	if (kcm_mux_rx_deliver(psock->mux, psock, skb, end))
		psock->rx_hold = true;
	if (end)
		psock->rx_ended = true;
}

/* Hands on the pass's batch, if any; end as for kcm_parser_hand_on(). */
static void kcm_parser_flush(struct kcm_psock *psock, bool end)
{
	struct sk_buff *batch = psock->rx_batch;

	if (!batch)
		return;
	psock->rx_batch = NULL;
	kcm_parser_hand_on(psock, batch, end);
}

static void kcm_parser_deliver(struct kcm_psock *psock, struct sk_buff *skb,
			       u32 offset, u32 len, bool end)
{
	struct kcm_msg_cb *cb = kcm_msg_cb(skb);

	cb->cookie = psock->cookie;
	cb->offset = offset;
	cb->len = len;
	cb->msgs = 1;
	cb->batch = false;
	kcm_parser_flush(psock, false);
	kcm_parser_hand_on(psock, skb, end);
}

/*
 * An empty batch with room for size bytes at least: a whole buffer of a
 * page pool for one that would fill more than half of it (kcm_rxbuf.c),
 * else one from the slab, cleared no more than it needs.
 */
static struct sk_buff *kcm_parser_batch_alloc(u32 size)
{
	if (size > SKB_WITH_OVERHEAD(KCM_RX_BATCH_MAX) / 2)
		return kcm_rxbuf_alloc();
	return alloc_skb(size, GFP_ATOMIC);
}

/*
 * Copies the small message at pos into the pass's batch; avail bytes are
 * in from pos on, which sizes a new batch.
 */
static int kcm_parser_take_small(struct kcm_psock *psock,
				 struct kcm_rx_pos *pos, u32 len, u32 avail)
{
	struct sk_buff *batch = psock->rx_batch;
	struct kcm_msg_cb *cb;

	if (batch && skb_tailroom(batch) < sizeof(u32) + len) {
		kcm_parser_flush(psock, false);
		batch = NULL;
	}
	if (!batch) {
		/* Room for the rest of what is in, with a length word every
		 * 32 bytes.
		 */
		u32 size = avail + avail / 8 + sizeof(u32);

		size = min_t(u32, size, SKB_WITH_OVERHEAD(KCM_RX_BATCH_MAX));
		batch = kcm_parser_batch_alloc(size);
		if (!batch)
			return -ENOMEM;
		cb = kcm_msg_cb(batch);
		cb->cookie = psock->cookie;
		cb->offset = sizeof(u32);
		cb->len = len;
		cb->msgs = 0;
		cb->batch = true;
		psock->rx_batch = batch;
	}
	memcpy(__skb_put(batch, sizeof(u32)), &len, sizeof(u32));
	kcm_parser_copy(*pos, __skb_put(batch, len), len);
	kcm_msg_cb(batch)->msgs++;
	return 0;
}

/*
 * Appends the received bytes [pos, pos + len) to the fragment list of head,
 * whose last fragment is *tail: clones of the TCP skbs, or a copy where a
 * piece would not continue the message (it starts inside a TCP skb).
 * Returns the bytes appended, fewer than len if an allocation failed.
 */
static u32 kcm_parser_chain(struct kcm_psock *psock, struct sk_buff *head,
			    struct sk_buff **tail, struct kcm_rx_pos *pos,
			    u32 len)
{
	u32 done = 0;

	while (done < len) {
		u32 n = min(len - done, pos->skb->len - pos->offset);
		struct sk_buff *piece;

		if (pos->offset && head->len) {
			piece = alloc_skb(n, GFP_ATOMIC);
			if (piece)
				kcm_parser_copy(*pos, skb_put(piece, n), n);
		} else {
			piece = skb_clone(pos->skb, GFP_ATOMIC);
		}
		if (!piece)
			break;

		if (*tail)
			(*tail)->next = piece;
		else
			skb_shinfo(head)->frag_list = piece;
		*tail = piece;
		head->len += piece->len;
		head->data_len += piece->len;
		head->truesize += piece->truesize;
		done += n;
		kcm_parser_advance(pos, n);
	}
	return done;
}

/*
 * Takes the large message at pos, all of whose len bytes are in; last: no
 * byte follows it in this pass.
 */
static int kcm_parser_take_large(struct kcm_psock *psock,
				 struct kcm_rx_pos pos, u32 len, bool last)
{
	struct sk_buff *skb, *tail = NULL;
	u32 offset = pos.offset;

	if (offset + len <= pos.skb->len) {
		skb = skb_clone(pos.skb, GFP_ATOMIC);
		if (!skb)
			return -ENOMEM;
	} else {
		skb = alloc_skb(0, GFP_ATOMIC);
		if (!skb)
			return -ENOMEM;
		if (kcm_parser_chain(psock, skb, &tail, &pos, len) < len) {
			kfree_skb(skb);
			return -ENOMEM;
		}
	}
	kcm_parser_deliver(psock, skb, offset, len, last);
	return 0;
}

/*
 * The whole message begun is copied into a batch: it is small and not
 * alone in the pass.  For a lone message (request-response traffic) a
 * clone of its TCP skb is one allocation, a batch two.
 */
static bool kcm_parser_batched(struct kcm_psock *psock, u32 avail)
{
	return psock->rx_len <= KCM_RX_COPY_MAX &&
	       (psock->rx_batch || avail > psock->rx_len);
}

/*
 * The partial message at pos, of which need bytes at least are to come in
 * all, may wait in TCP (see the top of this file): it is not long, and
 * once the pass has consumed what comes before it, what TCP holds (the
 * skbs it lies in and whatever follows) is half of the receive buffer at
 * most.  Past that TCP would shrink its window below a segment, or close
 * it, and the bytes that complete the message would never come.  The
 * memory counts, not the bytes: a 3-byte header can pin a 64 KiB skb.
 */
static bool kcm_parser_keep(struct sock *sk, struct kcm_rx_pos *pos, u32 need)
{
	int rcvbuf = READ_ONCE(sk->sk_rcvbuf);
	int held = atomic_read(&sk->sk_rmem_alloc);
	struct sk_buff *skb;

	/* Plaintext peeked from kTLS is a copy: the bytes wait in kTLS,
	 * which reads TCP's queue on as the peek asks for more.
	 */
	if (pos->queue != &sk->sk_receive_queue)
		return true;
	if (need > rcvbuf / 4)
		return false;
	skb_queue_walk(&sk->sk_receive_queue, skb) {
		if (skb == pos->skb)
			break;
		held -= skb->truesize;
	}
	return held <= rcvbuf / 2;
}

/* The message is complete: its time limit no longer runs. */
static void kcm_parser_msg_done(struct kcm_psock *psock)
{
	psock->rx_len = 0;
	psock->rx_have = 0;
	if (psock->rx_timing) {
		cancel_delayed_work(&psock->rx_timeout);
		psock->rx_timing = false;
	}
}

/* Starts the time limit of the message begun, if the socket has one. */
static void kcm_parser_start_timer(struct kcm_psock *psock)
{
	long timeo = READ_ONCE(psock->sk->sk_rcvtimeo);

	if (psock->rx_timing || !timeo || timeo == MAX_SCHEDULE_TIMEOUT)
		return;
	psock->rx_deadline = jiffies + timeo;
	queue_delayed_work(kcm_wq, &psock->rx_timeout, timeo);
	psock->rx_timing = true;
}

/* Stops the parser for good and posts -err on the TCP socket. */
static void kcm_parser_abort(struct kcm_psock *psock, int err)
{
	kcm_parser_flush(psock, false);
	WRITE_ONCE(psock->rx_stopped, true);
	kfree_skb(psock->rx_head);
	psock->rx_head = NULL;
	kcm_parser_msg_done(psock);
	kcm_parser_count(psock, &psock->rx_stats.aborts);
	kcm_psock_fail(psock, -err);
}

/* Starts taking the message begun out of TCP as it arrives; its first
 * add says where it starts.
 */
static bool kcm_parser_take_out(struct kcm_psock *psock)
{
	psock->rx_head = alloc_skb(0, GFP_ATOMIC);
	if (!psock->rx_head)
		return false;
	psock->rx_tail = NULL;
	psock->rx_have = 0;
	return true;
}

/* Adds n bytes from pos to the message being taken out; the bytes added,
 * or -ENOMEM.
 */
static int kcm_parser_add(struct kcm_psock *psock, struct kcm_rx_pos *pos,
			  u32 n)
{
	u32 done;

	/* The message's first byte: where it is now, if a first add failed
	 * (TCP may have collapsed its queue since).
	 */
	if (!psock->rx_have)
		psock->rx_offset = pos->offset;
	done = kcm_parser_chain(psock, psock->rx_head, &psock->rx_tail, pos,
				n);

	if (done < n)
		kcm_parser_count(psock, &psock->rx_stats.mem_fail);
	psock->rx_have += done;
	return done || !n ? done : -ENOMEM;
}

/*
 * Adds what is in of the message being taken out, whose length is known;
 * hands it on once whole.  Returns the bytes added, or -ENOMEM.
 */
static int kcm_parser_spill(struct kcm_psock *psock, struct kcm_rx_pos *pos,
			    u32 avail)
{
	struct sk_buff *head = psock->rx_head;
	int ret;

	ret = kcm_parser_add(psock, pos,
			     min(avail, psock->rx_len - psock->rx_have));
	if (ret >= 0 && psock->rx_have == psock->rx_len) {
		psock->rx_head = NULL;
		trace_kcm_rx_parse(psock->index, psock->cookie, psock->rx_len);
		kcm_parser_deliver(psock, head, psock->rx_offset,
				   psock->rx_len, false);
		kcm_parser_msg_done(psock);
	}
	return ret;
}

/*
 * The program needs more than the avail bytes from pos on, all of them the
 * message's: they wait in TCP, or are taken out (see kcm_parser_keep()).
 * A message whose length is still unknown after KCM_RX_VIEW_MAX bytes, or a
 * receive buffer's worth, is too long.  0 or -ENOMEM.
 */
static int kcm_parser_need_more(struct kcm_psock *psock,
				struct kcm_rx_pos *pos, u32 avail)
{
	struct sock *sk = psock->sk;
	int ret;

	if (psock->rx_have + avail >= KCM_RX_VIEW_MAX) {
		kcm_parser_count(psock, &psock->rx_stats.too_big);
		kcm_parser_abort(psock, -EMSGSIZE);
		return 0;
	}
	if (!psock->rx_head) {
		if (kcm_parser_keep(sk, pos, avail))
			return 0;
		if (!kcm_parser_take_out(psock)) {
			kcm_parser_count(psock, &psock->rx_stats.mem_fail);
			return -ENOMEM;
		}
	}
	ret = kcm_parser_add(psock, pos, avail);
	if (ret < 0)
		return ret;
	if (psock->rx_have > READ_ONCE(sk->sk_rcvbuf)) {
		kcm_parser_count(psock, &psock->rx_stats.too_big);
		kcm_parser_abort(psock, -EMSGSIZE);
	}
	return 0;
}

/*
 * The program answered ret, not 0: the length of the message begun, or a
 * reason to stop the parser.  False if it stopped.
 */
static bool kcm_parser_set_len(struct kcm_psock *psock, int ret)
{
	if (ret < 0 && ret >= -MAX_ERRNO) {
		kcm_parser_abort(psock, ret);
		return false;
	}
	/* Longer than the buffer, or 2^31 or more read as unsigned (not an
	 * errno: a length field that big).
	 */
	if (ret < 0 || ret > READ_ONCE(psock->sk->sk_rcvbuf)) {
		kcm_parser_count(psock, &psock->rx_stats.too_big);
		kcm_parser_abort(psock, -EMSGSIZE);
		return false;
	}
	/* Shorter than the bytes the program needed first, which were taken
	 * out of TCP: what follows the message cannot be put back.
	 */
	if (psock->rx_head && ret < psock->rx_have) {
		kcm_parser_abort(psock, -EPROTO);
		return false;
	}
	psock->rx_len = ret;
	return true;
}

/* tcp_read_sock() actor consuming desc->count bytes: those of the
 * messages taken.
 */
static int kcm_parser_skip(read_descriptor_t *desc, struct sk_buff *skb,
			   unsigned int offset, size_t len)
{
	size_t n = min_t(size_t, len, desc->count);

	desc->count -= n;
	return n;
}

/*
 * Consumes count bytes of whole messages; returns how many of them TCP
 * did not give up (0).  tcp_read_sock() stops short at a peer's urgent
 * byte, which it leaves for MSG_OOB; the framing read the stream as it is,
 * the urgent byte as a byte of its message (as SO_OOBINLINE would), so the
 * byte is consumed inline: the urgent mark is
 * dropped, as tcp_recvmsg() drops it once past it.
 */
static u32 kcm_parser_consume(struct sock *sk, u32 count)
{
	read_descriptor_t desc = { .count = count };
	struct tcp_sock *tp = tcp_sk(sk);

	for (;;) {
		tcp_read_sock(sk, &desc, kcm_parser_skip);
		if (!desc.count)
			return 0;
		if (!READ_ONCE(tp->urg_data) || tp->urg_seq != tp->copied_seq)
			return desc.count;
		WRITE_ONCE(tp->urg_data, 0);
		tcp_fast_path_check(sk);
	}
}

/*
 * Frame step: the length of the message at pos, of which avail bytes are
 * in, into rx_len.  0 once it is known; -EAGAIN if the pass ends here (the
 * program needs more bytes, or its answer stopped the parser); -ENOMEM.
 */
static int kcm_parser_frame_step(struct kcm_psock *psock,
				 struct kcm_rx_pos *pos, u32 avail)
{
	bool framed;
	int ret;

	if (!psock->prog)
		framed = kcm_parser_frame_len(psock, pos, avail, &ret);
	else if (psock->rx_head)
		framed = kcm_parser_frame_head(psock, pos, avail, &ret);
	else
		framed = kcm_parser_frame(psock, pos, avail, &ret);
	if (!framed) {
		kcm_parser_count(psock, &psock->rx_stats.mem_fail);
		return -ENOMEM;
	}
	if (!ret) {
		kcm_parser_count(psock, &psock->rx_stats.need_more);
		return kcm_parser_need_more(psock, pos, avail) ?: -EAGAIN;
	}
	return kcm_parser_set_len(psock, ret) ? 0 : -EAGAIN;
}

/*
 * Take step: the message at pos, of known length, avail bytes of it in, is
 * taken whole (pos moves past it), or its bytes are added to rx_head, or
 * it waits in TCP for the rest.  0 if the pass goes on; -EAGAIN if it ends
 * here (the message waits in TCP); -ENOMEM.
 */
static int kcm_parser_take_step(struct kcm_psock *psock,
				struct kcm_rx_pos *pos, u32 avail)
{
	int ret;

	if (psock->rx_head) {
		ret = kcm_parser_spill(psock, pos, avail);
		return ret < 0 ? ret : 0;
	}
	if (avail < psock->rx_len) {
		if (kcm_parser_keep(psock->sk, pos, psock->rx_len))
			return -EAGAIN;
		if (!kcm_parser_take_out(psock)) {
			kcm_parser_count(psock, &psock->rx_stats.mem_fail);
			return -ENOMEM;
		}
		return 0;
	}

	if (kcm_parser_batched(psock, avail))
		ret = kcm_parser_take_small(psock, pos, psock->rx_len, avail);
	else
		ret = kcm_parser_take_large(psock, *pos, psock->rx_len,
					    avail == psock->rx_len);
	if (ret) {
		kcm_parser_count(psock, &psock->rx_stats.mem_fail);
		return ret;
	}
	trace_kcm_rx_parse(psock->index, psock->cookie, psock->rx_len);
	kcm_parser_advance(pos, psock->rx_len);
	kcm_parser_msg_done(psock);
	return 0;
}

/* Hands on the pass's batch and ends the pass, with it if there is one. */
static void kcm_parser_end_pass(struct kcm_psock *psock)
{
	kcm_parser_flush(psock, true);
	if (!psock->rx_ended)
		kcm_mux_rx_batch_end(psock);
}

/*
 * Commit step, at the end of a pass: hands on its batch, wakes its reader,
 * then consumes [start, seq), the bytes of the messages taken (readers
 * first: consuming may send a window update).  TCP must give up exactly
 * those: bytes it kept would be parsed again as the start of a message, so
 * the stream fails instead (EPROTO).
 */
static void kcm_parser_commit(struct kcm_psock *psock, u32 start, u32 seq)
{
	struct sock *sk = psock->sk;

	kcm_parser_end_pass(psock);
	if (seq != start && WARN_ON_ONCE(kcm_parser_consume(sk, seq - start)))
		kcm_parser_abort(psock, -EPROTO);
}

/*
 * Frames and takes the messages of the bytes [start, end) of queue; *seq
 * is where the pass stopped, past the last message taken.  Migration is
 * disabled, for the program runs.
 */
static int kcm_parser_walk(struct kcm_psock *psock,
			   struct sk_buff_head *queue, u32 start, u32 end,
			   u32 *seq)
{
	struct kcm_rx_pos pos;
	int err = 0;

	WARN_ON_ONCE(psock->rx_batch);
	psock->rx_hold = false;
	psock->rx_ended = false;
	*seq = start;
	if (!kcm_parser_find(queue, start, &pos))
		return 0;

	while (!READ_ONCE(psock->rx_stopped) && !psock->rx_hold &&
	       pos.seq != end) {
		u32 avail = end - pos.seq;

		if (!psock->rx_len) {
			err = kcm_parser_frame_step(psock, &pos, avail);
			if (err)
				break;
		}
		err = kcm_parser_take_step(psock, &pos, avail);
		if (err)
			break;
	}
	if (err == -EAGAIN)
		err = 0;

	if ((pos.seq != end || psock->rx_head) && !READ_ONCE(psock->rx_stopped) &&
	    !psock->rx_hold)
		kcm_parser_start_timer(psock);
	*seq = pos.seq;
	return err;
}

/* A ULP (kTLS) installed since attach reads the stream now. */
static bool kcm_parser_ulp_changed(struct kcm_psock *psock)
{
	if (likely(!kcm_psock_ulp_changed(psock)))
		return false;
	kcm_parser_abort(psock, -EPROTO);
	return true;
}

/* One pass over the TCP socket's received bytes.  Under its lock. */
static int kcm_parser_pass(struct kcm_psock *psock)
{
	struct sock *sk = psock->sk;
	u32 start = tcp_sk(sk)->copied_seq;
	int err;
	u32 seq;

	lockdep_assert(lockdep_sock_is_held(sk));
	if (kcm_parser_ulp_changed(psock))
		return 0;
	migrate_disable();
	err = kcm_parser_walk(psock, &sk->sk_receive_queue, start,
			      kcm_parser_end(sk), &seq);
	kcm_parser_commit(psock, start, seq);
	migrate_enable();
	return err;
}

/*
 * One pass over len bytes of plaintext peeked from kTLS into queue, whose
 * skbs are numbered from 0 (kcm_tls.c).  *taken is the bytes of the
 * messages taken, for the caller to consume from kTLS once the socket is
 * unlocked.  Under the TCP socket's process lock.
 */
int kcm_parser_pass_plain(struct kcm_psock *psock, struct sk_buff_head *queue,
			  u32 len, u32 *taken)
{
	int err;

	sock_owned_by_me(psock->sk);
	*taken = 0;
	if (kcm_parser_ulp_changed(psock))
		return 0;
	migrate_disable();
	err = kcm_parser_walk(psock, queue, 0, len, taken);
	kcm_parser_end_pass(psock);
	migrate_enable();
	return err;
}

/* The source of the bytes failed: stops the parser for good and posts
 * -err.  Under the TCP socket's process lock.
 */
void kcm_parser_fail(struct kcm_psock *psock, int err)
{
	sock_owned_by_me(psock->sk);
	if (!READ_ONCE(psock->rx_stopped))
		kcm_parser_abort(psock, err);
}

/* The TCP socket has data.  Under its bh lock, in softirq or not. */
void kcm_parser_data_ready(struct kcm_psock *psock)
{
	if (unlikely(READ_ONCE(psock->rx_stopped)) || READ_ONCE(psock->rx_paused))
		return;
	/* Its owner holds the process lock: the pass waits for the work. */
	if (sock_owned_by_user_nocheck(psock->sk)) {
		queue_work(kcm_wq, &psock->rx_work);
		return;
	}
	if (kcm_parser_pass(psock) == -ENOMEM)
		queue_work(kcm_wq, &psock->rx_work);
}

static void kcm_parser_work(struct work_struct *work)
{
	struct kcm_psock *psock = container_of(work, struct kcm_psock,
					       rx_work);
	struct sock *sk = psock->sk;

	if (kcm_psock_tls_rx(psock)) {
		kcm_tls_rx_work(psock);
		return;
	}
	lock_sock(sk);
	if (!READ_ONCE(psock->rx_stopped) && !READ_ONCE(psock->rx_paused) &&
	    kcm_parser_pass(psock) == -ENOMEM)
		queue_work(kcm_wq, &psock->rx_work);
	release_sock(sk);
}

static void kcm_parser_timeout(struct work_struct *work)
{
	struct kcm_psock *psock = container_of(to_delayed_work(work),
					       struct kcm_psock, rx_timeout);
	struct sock *sk = psock->sk;

	lock_sock(sk);
	/* The message this work was queued for may have completed while it
	 * waited for the lock (the cancel came too late), and the next one
	 * started its own limit, which this run is not.
	 */
	if (psock->rx_timing && !READ_ONCE(psock->rx_stopped) &&
	    time_after_eq(jiffies, psock->rx_deadline)) {
		psock->rx_timing = false;
		kcm_parser_count(psock, &psock->rx_stats.timeouts);
		kcm_parser_abort(psock, -ETIMEDOUT);
	}
	release_sock(sk);
}

void kcm_parser_init(struct kcm_psock *psock)
{
	INIT_WORK(&psock->rx_work, kcm_parser_work);
	u64_stats_init(&psock->rx_stats.syncp);
	INIT_DELAYED_WORK(&psock->rx_timeout, kcm_parser_timeout);
}

/* Parses what is there already, from a work item. */
void kcm_parser_start(struct kcm_psock *psock)
{
	queue_work(kcm_wq, &psock->rx_work);
}

/* The mux no longer holds a message of psock's (it cleared rx_paused): a
 * pass parses what waited meanwhile.  Under mux->lock.
 */
void kcm_parser_resume(struct kcm_psock *psock)
{
	lockdep_assert_held(&psock->mux->lock);
	WARN_ON_ONCE(psock->rx_paused);
	queue_work(kcm_wq, &psock->rx_work);
}

/* No pass starts after this.  Under the TCP socket's process lock, or
 * from a disconnect's report in any context: the flag only ever goes up.
 */
void kcm_parser_stop(struct kcm_psock *psock)
{
	WRITE_ONCE(psock->rx_stopped, true);
}

/*
 * Waits for the parser's work items and frees what it holds.  Stopped
 * already; the TCP socket is not locked.  The bytes of a partial message
 * that waited in TCP stay there, for user space.
 */
void kcm_parser_done(struct kcm_psock *psock)
{
	WARN_ON_ONCE(!READ_ONCE(psock->rx_stopped));
	cancel_work_sync(&psock->rx_work);
	cancel_delayed_work_sync(&psock->rx_timeout);
	kfree_skb(psock->rx_head);
	psock->rx_head = NULL;
}
