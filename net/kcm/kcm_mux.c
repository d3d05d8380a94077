// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel Connection Multiplexor: the mux.
 *
 * Receive steering: a message parsed on a psock goes to the first KCM socket
 * on mux->rx_ready.  The socket chosen for the first message of a parser
 * pass (one data-ready) takes the rest of that pass too, and moves to the
 * back of the list when the pass ends, so passes rotate over the sockets.
 * A socket leaves rx_ready when its receive queue is full, when receiving is
 * disabled on it, or when it closes.  A message that no socket can take
 * stays with its psock, whose parser is paused until a socket has room:
 * TCP's own flow control then holds the sender back.  Messages that lose
 * their socket (recv-disable, close, unattach of a holding psock) wait on
 * mux->rx_orphans and are delivered before any held by a psock.
 *
 * Transmit reservation: a KCM socket with messages to send reserves a psock
 * from mux->tx_idle and keeps it until its queue is empty, so a message is
 * never interleaved with another on a stream.  A socket that finds no idle
 * psock waits on mux->tx_waiters and is handed the next psock that frees up.
 * A message directed at one connection (KCM_ORIGIN) reserves that psock,
 * found by its cookie in mux->by_cookie, or waits on that psock's
 * tx_directed: a psock that frees up goes to its own waiters first, so
 * neither a lookup nor an offer walks the mux's other psocks or senders.
 */

#include <linux/rhashtable.h>
#include <linux/slab.h>
#include <net/kcm.h>
#include <net/netns/generic.h>
#include <trace/events/kcm.h>

static const struct rhashtable_params kcm_mux_cookie_params = {
	.key_len = sizeof(u64),
	.key_offset = offsetof(struct kcm_psock, cookie),
	.head_offset = offsetof(struct kcm_psock, cookie_node),
	.automatic_shrinking = true,
};

struct kcm_mux *kcm_mux_create(struct net *net)
{
	struct kcm_net *knet = net_generic(net, kcm_net_id);
	struct kcm_mux *mux;

	mux = kzalloc(sizeof(*mux), GFP_KERNEL);
	if (!mux)
		return NULL;
	if (rhashtable_init(&mux->by_cookie, &kcm_mux_cookie_params)) {
		kfree(mux);
		return NULL;
	}

	mux->knet = knet;
	spin_lock_init(&mux->lock);
	INIT_LIST_HEAD(&mux->socks);
	INIT_LIST_HEAD(&mux->psocks);
	INIT_LIST_HEAD(&mux->rx_ready);
	INIT_LIST_HEAD(&mux->rx_held);
	skb_queue_head_init(&mux->rx_orphans);
	INIT_LIST_HEAD(&mux->tx_idle);
	INIT_LIST_HEAD(&mux->tx_waiters);

	mutex_lock(&knet->lock);
	mux->index = knet->next_mux_index++;
	list_add_tail(&mux->knet_node, &knet->muxes);
	knet->mux_count++;
	mutex_unlock(&knet->lock);
	return mux;
}

/* The namespace's totals keep what mux counted, as it goes away.  Under
 * knet->lock.
 */
static void kcm_mux_stats_to_net(struct kcm_net *knet, struct kcm_mux *mux)
{
	struct kcm_mux_stats *to = &knet->gone.stats;

	lockdep_assert_held(&knet->lock);
	to->tx_retries += mux->stats.tx_retries;
	to->attach += mux->stats.attach;
	to->unattach += mux->stats.unattach;
	to->unattach_rsvd += mux->stats.unattach_rsvd;
	to->rx_ready_drops += mux->stats.rx_ready_drops;
	kcm_psock_stats_add(&knet->gone.gone, &mux->gone);
}

/* Called when the last KCM socket has left: nothing else can reach mux. */
static void kcm_mux_destroy(struct kcm_mux *mux)
{
	struct kcm_net *knet = mux->knet;
	struct kcm_psock *psock;

	/* One at a time, each in process context: thousands of them must
	 * not hold the CPU on a kernel that preempts nobody.
	 */
	while ((psock = kcm_mux_claim_psock(mux, 0))) {
		kcm_psock_unattach(psock);
		cond_resched();
	}
	WARN_ON_ONCE(!list_empty(&mux->psocks) || !list_empty(&mux->socks) ||
		     !list_empty(&mux->rx_ready) || !list_empty(&mux->rx_held) ||
		     !list_empty(&mux->tx_idle) ||
		     !list_empty(&mux->tx_waiters));

	mutex_lock(&knet->lock);
	list_del(&mux->knet_node);
	knet->mux_count--;
	kcm_mux_stats_to_net(knet, mux);
	mutex_unlock(&knet->lock);

	skb_queue_purge(&mux->rx_orphans);
	rhashtable_destroy(&mux->by_cookie);
	kfree(mux);
}

/*
 * Queues a whole message on kcm.  Under mux->lock, kcm ready.  Without
 * wake, the reader is woken later: the parser's messages are queued a pass
 * at a time and the pass's socket is woken once (kcm_mux_rx_wake_target()).
 *
 * The socket is charged for the message's bytes, not for the truesize of
 * its skb: that is a clone sharing the data of the TCP skbs it was parsed
 * from, and counts all of them, so a 64-byte message cut from a 64 KiB skb
 * would fill the receive buffer three messages at a time.
 */
static void kcm_mux_rx_queue(struct kcm_sock *kcm, struct sk_buff *skb,
			     bool wake)
{
	struct kcm_msg_cb *cb = kcm_msg_cb(skb);
	struct sock *sk = &kcm->sk;

	lockdep_assert_held(&kcm->mux->lock);
	kcm->rx_msgs += cb->msgs;
	kcm->rx_bytes += kcm_msg_payload(skb);
	cb->charge = kcm_msg_unread(skb) + sizeof(struct sk_buff);
	skb->sk = sk;
	skb->destructor = kcm_rx_skb_destructor;
	atomic_add(cb->charge, &sk->sk_rmem_alloc);
	skb_queue_tail(&sk->sk_receive_queue, skb);
	if (wake)
		sk->sk_data_ready(sk);

	if (atomic_read(&sk->sk_rmem_alloc) < READ_ONCE(sk->sk_rcvbuf))
		return;
	list_del_init(&kcm->rx_node);
	WRITE_ONCE(kcm->rx_ready, false);
	/* Pairs with kcm_mux_rx_space(): a reader that freed room meanwhile
	 * either sees rx_ready false or is seen here.
	 */
	smp_mb();
	if (atomic_read(&sk->sk_rmem_alloc) < READ_ONCE(sk->sk_rcvbuf)) {
		list_add_tail(&kcm->rx_node, &kcm->mux->rx_ready);
		WRITE_ONCE(kcm->rx_ready, true);
	}
}

/* Gives orphaned and held messages to ready sockets.  Under mux->lock. */
static void kcm_mux_rx_drain(struct kcm_mux *mux)
{
	struct kcm_psock *psock;
	struct kcm_sock *kcm;
	struct sk_buff *skb;

	lockdep_assert_held(&mux->lock);
	while ((kcm = list_first_entry_or_null(&mux->rx_ready,
					       struct kcm_sock, rx_node))) {
		skb = __skb_dequeue(&mux->rx_orphans);
		if (skb) {
			kcm_mux_rx_queue(kcm, skb, true);
			continue;
		}

		psock = list_first_entry_or_null(&mux->rx_held,
						 struct kcm_psock, rx_node);
		if (!psock)
			break;
		skb = __skb_dequeue(&psock->rx_held);
		kcm_mux_rx_queue(kcm, skb, true);
		if (!skb_queue_empty(&psock->rx_held))
			continue;
		list_del_init(&psock->rx_node);
		WARN_ON_ONCE(!psock->rx_paused);
		WRITE_ONCE(psock->rx_paused, false);
		/* Unattached: its parser is stopped and maybe done already
		 * (kcm_psock_unattach() runs kcm_parser_done() before it
		 * takes the psock off rx_held); new work would outlive the
		 * psock.
		 */
		if (!psock->unattached) {
			trace_kcm_rx_resume(psock->index);
			kcm_parser_resume(psock);
		}
	}
}

static void kcm_mux_rx_make_ready(struct kcm_sock *kcm)
{
	struct kcm_mux *mux = kcm->mux;

	lockdep_assert_held(&mux->lock);
	if (kcm->rx_ready || kcm->rx_disabled || kcm->leaving)
		return;
	if (atomic_read(&kcm->sk.sk_rmem_alloc) >= READ_ONCE(kcm->sk.sk_rcvbuf))
		return;
	list_add_tail(&kcm->rx_node, &mux->rx_ready);
	WRITE_ONCE(kcm->rx_ready, true);
	kcm_mux_rx_drain(mux);
}

/*
 * Takes kcm out of steering and hands its queued messages to the others,
 * but for a message its reader has begun (SOCK_SEQPACKET, a short read or
 * a splice): that stays, for the reader to finish or to go with the socket.
 * Under mux->lock.
 */
static void kcm_mux_rx_evict(struct kcm_sock *kcm)
{
	struct sk_buff_head *queue = &kcm->sk.sk_receive_queue;
	struct sk_buff *skb, *started = NULL;
	struct kcm_mux *mux = kcm->mux;

	lockdep_assert_held(&mux->lock);
	WARN_ON_ONCE(!kcm->rx_disabled && !kcm->leaving);
	if (kcm->rx_ready) {
		list_del_init(&kcm->rx_node);
		WRITE_ONCE(kcm->rx_ready, false);
	}
	while ((skb = skb_dequeue(queue))) {
		if (kcm_msg_cb(skb)->started) {
			started = skb;
			skb = kcm_rx_split_started(started);
			if (!skb)
				continue;
		}
		skb_orphan(skb);
		__skb_queue_tail(&mux->rx_orphans, skb);
	}
	if (started)
		skb_queue_head(queue, started);
	kcm_mux_rx_drain(mux);
}

void kcm_mux_add_sock(struct kcm_mux *mux, struct kcm_sock *kcm)
{
	struct kcm_net *knet = mux->knet;

	kcm->mux = mux;
	mutex_lock(&knet->lock);
	kcm->index = knet->next_sock_index++;
	mutex_unlock(&knet->lock);

	spin_lock_bh(&mux->lock);
	kcm->mux_seq = ++mux->join_seq;
	list_add_tail(&kcm->mux_node, &mux->socks);
	mux->sock_count++;
	kcm_mux_rx_make_ready(kcm);
	spin_unlock_bh(&mux->lock);
}

/* The socket's transmit side is already shut down (kcm_tx_release). */
void kcm_mux_remove_sock(struct kcm_sock *kcm)
{
	struct kcm_mux *mux = kcm->mux;
	struct kcm_psock *psock;
	bool last;

	spin_lock_bh(&mux->lock);
	WARN_ON_ONCE(!kcm->tx_stopped || kcm->tx_psock || kcm->tx_waiting);
	kcm->leaving = true;
	kcm_mux_rx_evict(kcm);
	list_for_each_entry(psock, &mux->psocks, mux_node)
		if (psock->rx_target == kcm)
			psock->rx_target = NULL;
	list_del(&kcm->mux_node);
	last = --mux->sock_count == 0;
	spin_unlock_bh(&mux->lock);

	kcm->mux = NULL;
	if (last)
		kcm_mux_destroy(mux);
}

/*
 * Ends psock's batch on its current socket: wakes that socket's reader for
 * the messages queued without a wake-up.  Under mux->lock.
 */
static void kcm_mux_rx_wake_target(struct kcm_psock *psock)
{
	struct kcm_sock *kcm = psock->rx_target;

	lockdep_assert_held(&psock->mux->lock);
	if (!kcm)
		return;
	kcm->sk.sk_data_ready(&kcm->sk);
	psock->rx_target = NULL;
}

/*
 * End of a parser pass on psock: its socket's reader is woken, and the next
 * pass goes to another socket.  Under mux->lock.
 */
static void kcm_mux_rx_end_pass(struct kcm_psock *psock)
{
	struct kcm_sock *kcm = psock->rx_target;

	lockdep_assert_held(&psock->mux->lock);
	if (kcm && kcm->rx_ready)
		list_move_tail(&kcm->rx_node, &psock->mux->rx_ready);
	kcm_mux_rx_wake_target(psock);
}

/*
 * Steers a message (or a batch of them) parsed on psock.  Runs under the
 * TCP socket lock, from the parser.  When no socket can take it, the psock
 * keeps it and is paused (rx_paused) until a socket takes it, and the
 * answer is true: the parser ends its pass.  What the pass had parsed
 * before may still come: it waits behind the held skb.  end: skb is the
 * pass's last, and the pass ends here as in kcm_mux_rx_batch_end(), under
 * the same hold of the lock.
 */
bool kcm_mux_rx_deliver(struct kcm_mux *mux, struct kcm_psock *psock,
			struct sk_buff *skb, bool end)
{
	struct kcm_sock *kcm;
	bool held = true;

	lockdep_assert(lockdep_sock_is_held(psock->sk));
	spin_lock_bh(&mux->lock);
	psock->rx_msgs += kcm_msg_cb(skb)->msgs;
	psock->rx_bytes += kcm_msg_payload(skb);
	if (!skb_queue_empty(&psock->rx_held)) {
		__skb_queue_tail(&psock->rx_held, skb);
		goto out;
	}

	kcm = psock->rx_target;
	if (!kcm || !kcm->rx_ready) {
		kcm_mux_rx_wake_target(psock);
		kcm = list_first_entry_or_null(&mux->rx_ready,
					       struct kcm_sock, rx_node);
	}
	trace_kcm_rx_steer(psock->index,
			   kcm && skb_queue_empty(&mux->rx_orphans) ?
			   (s64)kcm->index : -1, kcm_msg_cb(skb)->msgs,
			   kcm_msg_payload(skb));
	if (kcm && skb_queue_empty(&mux->rx_orphans)) {
		kcm_mux_rx_queue(kcm, skb, false);
		psock->rx_target = kcm;
		held = false;
	} else {
		__skb_queue_tail(&psock->rx_held, skb);
		list_add_tail(&psock->rx_node, &mux->rx_held);
		WRITE_ONCE(psock->rx_paused, true);
	}
out:
	if (end)
		kcm_mux_rx_end_pass(psock);
	spin_unlock_bh(&mux->lock);
	return held;
}

/* End of a parser pass on psock whose end did not go with a delivery. */
void kcm_mux_rx_batch_end(struct kcm_psock *psock)
{
	struct kcm_mux *mux = psock->mux;

	spin_lock_bh(&mux->lock);
	kcm_mux_rx_end_pass(psock);
	spin_unlock_bh(&mux->lock);
}

/*
 * kcm's receive queue shrank: it may be ready again.  A socket that filled
 * up rejoins steering only once its reader has drained it to half of the
 * receive buffer, so that a paused parser resumes for a batch of messages,
 * not for one message per message read (each resumption is a work item).
 * The queue is never stuck above half: its messages are still there to
 * read, and reading the last one brings it to zero.
 */
void kcm_mux_rx_space(struct kcm_sock *kcm)
{
	struct kcm_mux *mux = kcm->mux;
	struct sock *sk = &kcm->sk;

	/* Pairs with kcm_mux_rx_queue(); the room was freed before. */
	smp_mb();
	if (READ_ONCE(kcm->rx_ready))
		return;
	if (atomic_read(&sk->sk_rmem_alloc) > READ_ONCE(sk->sk_rcvbuf) / 2)
		return;
	spin_lock_bh(&mux->lock);
	kcm_mux_rx_make_ready(kcm);
	spin_unlock_bh(&mux->lock);
}

void kcm_mux_rx_set_disabled(struct kcm_sock *kcm, bool disabled)
{
	struct kcm_mux *mux = kcm->mux;

	sock_owned_by_me(&kcm->sk);
	spin_lock_bh(&mux->lock);
	WRITE_ONCE(kcm->rx_disabled, disabled);
	if (disabled)
		kcm_mux_rx_evict(kcm);
	else
		kcm_mux_rx_make_ready(kcm);
	spin_unlock_bh(&mux->lock);
}

/* Links kcm and psock for sending.  Under mux->lock. */
static void kcm_mux_tx_link(struct kcm_sock *kcm, struct kcm_psock *psock)
{
	lockdep_assert_held(&kcm->mux->lock);
	WARN_ON_ONCE(psock->tx_kcm || kcm->tx_psock ||
		     !list_empty(&psock->tx_node));
	trace_kcm_tx_reserve(kcm->index, psock->index, false);
	kref_get(&psock->ref);
	psock->tx_kcm = kcm;
	psock->reserved++;
	WRITE_ONCE(kcm->tx_psock, psock);
}

static bool kcm_mux_psock_usable(const struct kcm_psock *psock)
{
	lockdep_assert_held(&psock->mux->lock);
	return !psock->failed && !psock->unattached;
}

/* The attached psock with that cookie, not unattached.  Under mux->lock. */
static struct kcm_psock *kcm_mux_find_cookie(struct kcm_mux *mux, u64 cookie)
{
	lockdep_assert_held(&mux->lock);
	return rhashtable_lookup_fast(&mux->by_cookie, &cookie,
				      kcm_mux_cookie_params);
}

/* Whether a message directed at cookie can be sent: 0, -ENOENT or -EPIPE. */
int kcm_mux_tx_check_cookie(struct kcm_mux *mux, u64 cookie)
{
	struct kcm_psock *psock;
	int err = 0;

	spin_lock_bh(&mux->lock);
	psock = kcm_mux_find_cookie(mux, cookie);
	if (!psock)
		err = -ENOENT;
	else if (psock->failed)
		err = -EPIPE;
	spin_unlock_bh(&mux->lock);
	return err;
}

/*
 * Reserves a psock for kcm's head message: any idle one, or with a non-zero
 * cookie the one attached socket with that cookie.  Returns NULL when kcm
 * must wait (it is then on tx_waiters, or that psock's tx_directed, and its
 * work runs when a psock frees up), or with *err set when the message
 * cannot be sent at all.
 */
struct kcm_psock *kcm_mux_tx_reserve(struct kcm_sock *kcm, u64 cookie,
				     int *err)
{
	struct kcm_psock *psock = NULL, *target = NULL;
	struct kcm_mux *mux = kcm->mux;

	*err = 0;
	sock_owned_by_me(&kcm->sk);
	spin_lock_bh(&mux->lock);
	/* A psock may have been handed to us since the caller looked. */
	psock = kcm->tx_psock;
	if (psock) {
		spin_unlock_bh(&mux->lock);
		return psock;
	}
	if (cookie) {
		target = kcm_mux_find_cookie(mux, cookie);
		if (!target)
			*err = -ENOENT;
		else if (target->failed)
			*err = -EPIPE;
		else if (!list_empty(&target->tx_node))
			psock = target;
	} else {
		psock = list_first_entry_or_null(&mux->tx_idle,
						 struct kcm_psock, tx_node);
	}

	if (kcm->tx_waiting && (psock || *err ||
				kcm->tx_wait_psock != target)) {
		list_del_init(&kcm->tx_node);
		kcm->tx_waiting = false;
	}
	if (psock) {
		list_del_init(&psock->tx_node);
		kcm_mux_tx_link(kcm, psock);
	} else if (!*err && !kcm->tx_waiting) {
		/* In line for that psock, or for any. */
		kcm->tx_wait_psock = target;
		kcm->tx_wait_seq = mux->tx_wait_seq++;
		list_add_tail(&kcm->tx_node, target ? &target->tx_directed :
						      &mux->tx_waiters);
		kcm->tx_waiting = true;
	}
	spin_unlock_bh(&mux->lock);
	return psock;
}

/*
 * Hands a free psock to the socket that has waited longest of those waiting
 * for it and those waiting for any psock (each list is in order), else
 * makes it idle.  Under mux->lock.
 */
static void kcm_mux_tx_offer(struct kcm_mux *mux, struct kcm_psock *psock)
{
	struct kcm_sock *kcm, *any;

	lockdep_assert_held(&mux->lock);
	if (!kcm_mux_psock_usable(psock) || psock->tx_kcm)
		return;

	kcm = list_first_entry_or_null(&psock->tx_directed, struct kcm_sock,
				       tx_node);
	any = list_first_entry_or_null(&mux->tx_waiters, struct kcm_sock,
				       tx_node);
	if (!kcm || (any && any->tx_wait_seq < kcm->tx_wait_seq))
		kcm = any;
	if (!kcm) {
		list_add_tail(&psock->tx_node, &mux->tx_idle);
		return;
	}
	list_del_init(&kcm->tx_node);
	kcm->tx_waiting = false;
	kcm_mux_tx_link(kcm, psock);
	queue_work(kcm_wq, &kcm->tx_work);
}

/*
 * psock failed or went away: the sockets waiting for it stop waiting and
 * find out (their message is dropped).  Under mux->lock.
 */
static void kcm_mux_tx_wake_directed(struct kcm_mux *mux,
				     struct kcm_psock *psock)
{
	struct kcm_sock *kcm, *tmp;

	lockdep_assert_held(&mux->lock);
	list_for_each_entry_safe(kcm, tmp, &psock->tx_directed, tx_node) {
		list_del_init(&kcm->tx_node);
		kcm->tx_waiting = false;
		queue_work(kcm_wq, &kcm->tx_work);
	}
}

/* Wakes the socket that has psock reserved, to send.  Under mux->lock. */
static void kcm_mux_tx_wake_reserver(struct kcm_psock *psock)
{
	lockdep_assert_held(&psock->mux->lock);
	if (psock->tx_kcm)
		queue_work(kcm_wq, &psock->tx_kcm->tx_work);
}

/* Whether the TCP socket with that cookie is attached to mux. */
bool kcm_mux_has_cookie(struct kcm_mux *mux, u64 cookie)
{
	bool found;

	spin_lock_bh(&mux->lock);
	found = kcm_mux_find_cookie(mux, cookie);
	spin_unlock_bh(&mux->lock);
	return found;
}

/* Under the TCP socket lock (attach).  0, or -errno if it could not be
 * indexed.
 */
int kcm_mux_add_psock(struct kcm_mux *mux, struct kcm_psock *psock)
{
	int err;

	lockdep_assert(lockdep_sock_is_held(psock->sk));
	spin_lock_bh(&mux->lock);
	/* Fails only if the table had to grow at once and could not (an
	 * atomic allocation): out of memory, for the caller.
	 */
	err = rhashtable_insert_fast(&mux->by_cookie, &psock->cookie_node,
				     kcm_mux_cookie_params) ? -ENOMEM : 0;
	if (!err) {
		psock->mux_seq = ++mux->join_seq;
		list_add_tail(&psock->mux_node, &mux->psocks);
		mux->psock_count++;
		mux->stats.attach++;
		kcm_mux_tx_offer(mux, psock);
	}
	spin_unlock_bh(&mux->lock);
	return err;
}

/*
 * The attached psock of the TCP socket with that cookie (of any with cookie
 * 0), which the caller is then the one to unattach (kcm_psock_unattach()):
 * it is marked so, and nobody else finds it here.  NULL if there is none.
 */
struct kcm_psock *kcm_mux_claim_psock(struct kcm_mux *mux, u64 cookie)
{
	struct kcm_psock *psock = NULL, *p;

	spin_lock_bh(&mux->lock);
	if (cookie) {
		psock = kcm_mux_find_cookie(mux, cookie);
	} else {
		list_for_each_entry(p, &mux->psocks, mux_node) {
			if (!p->unattached) {
				psock = p;
				break;
			}
		}
	}
	if (psock) {
		WRITE_ONCE(psock->unattached, true);
		rhashtable_remove_fast(&mux->by_cookie, &psock->cookie_node,
				       kcm_mux_cookie_params);
	}
	spin_unlock_bh(&mux->lock);
	return psock;
}

/*
 * Forgets psock, whose parser is done: its held messages go to another
 * socket, the socket that has it reserved sends elsewhere, and its counters
 * are kept in the mux's totals: now, or if it is reserved when that
 * reservation ends (kcm_mux_tx_unreserve()), since the socket that has it
 * still counts on it (the Unreserved, and a message aborted on it).
 */
void kcm_mux_remove_psock(struct kcm_mux *mux, struct kcm_psock *psock)
{
	spin_lock_bh(&mux->lock);
	WARN_ON_ONCE(!psock->unattached || !READ_ONCE(psock->rx_stopped));
	list_del_init(&psock->mux_node);
	mux->psock_count--;
	mux->stats.unattach++;
	list_del_init(&psock->tx_node);
	kcm_mux_rx_wake_target(psock);
	if (!skb_queue_empty(&psock->rx_held)) {
		list_del_init(&psock->rx_node);
		skb_queue_splice_tail_init(&psock->rx_held, &mux->rx_orphans);
		WRITE_ONCE(psock->rx_paused, false);
		kcm_mux_rx_drain(mux);
	}
	if (psock->tx_kcm)
		mux->stats.unattach_rsvd++;
	kcm_mux_tx_wake_reserver(psock);
	kcm_mux_tx_wake_directed(mux, psock);

	if (!psock->tx_kcm)
		kcm_psock_stats_read(psock, &mux->gone);
	spin_unlock_bh(&mux->lock);
}

/* psock's TCP socket has room again, or has connected: the socket that has
 * it reserved may send.
 */
void kcm_mux_tx_wake_owner(struct kcm_psock *psock)
{
	struct kcm_mux *mux = psock->mux;

	spin_lock_bh(&mux->lock);
	kcm_mux_tx_wake_reserver(psock);
	spin_unlock_bh(&mux->lock);
}

/*
 * Marks psock failed, once: the mux sends nothing more on it, and the
 * socket that has it reserved is woken to send its message elsewhere.
 * True the first time; false too once unattached: the TCP socket is the
 * application's again, and nothing is to be posted on it.  Callable from
 * any context that may take mux->lock.
 */
bool kcm_mux_psock_stop_tx(struct kcm_psock *psock)
{
	struct kcm_mux *mux = psock->mux;
	bool stopped = false;

	spin_lock_bh(&mux->lock);
	if (!psock->failed && !psock->unattached) {
		WRITE_ONCE(psock->failed, true);
		list_del_init(&psock->tx_node);
		kcm_mux_tx_wake_reserver(psock);
		kcm_mux_tx_wake_directed(mux, psock);
		stopped = true;
	}
	spin_unlock_bh(&mux->lock);
	return stopped;
}

/* Ends kcm's reservation, if any; retry: the message begun on it goes
 * again, whole, elsewhere (TX-Retries).  Under the KCM socket lock.
 */
void kcm_mux_tx_unreserve(struct kcm_sock *kcm, bool retry)
{
	struct kcm_mux *mux = kcm->mux;
	struct kcm_psock *psock;

	sock_owned_by_me(&kcm->sk);
	spin_lock_bh(&mux->lock);
	psock = kcm->tx_psock;
	if (psock) {
		WARN_ON_ONCE(psock->tx_kcm != kcm);
		trace_kcm_tx_unreserve(kcm->index, psock->index, retry);
		WRITE_ONCE(kcm->tx_psock, NULL);
		psock->tx_kcm = NULL;
		psock->unreserved++;
		if (retry)
			mux->stats.tx_retries++;
		/* Removed while reserved: its counts are final now. */
		if (list_empty(&psock->mux_node))
			kcm_psock_stats_read(psock, &mux->gone);
		kcm_mux_tx_offer(mux, psock);
	}
	spin_unlock_bh(&mux->lock);

	if (psock)
		kcm_psock_put(psock);
}

/* kcm stops waiting for a psock.  Under the KCM socket lock. */
void kcm_mux_tx_cancel_wait(struct kcm_sock *kcm)
{
	struct kcm_mux *mux = kcm->mux;

	sock_owned_by_me(&kcm->sk);
	spin_lock_bh(&mux->lock);
	if (kcm->tx_waiting) {
		list_del_init(&kcm->tx_node);
		kcm->tx_waiting = false;
	}
	spin_unlock_bh(&mux->lock);
}
