// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel Connection Multiplexor: /proc/net/kcm and /proc/net/kcm_stats.
 *
 * The column names are Linux's, so that existing tools keep reading them.
 * Every statistics row is printed from a column table that also prints its
 * header, so a header and its values cannot drift apart.
 */

#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <net/kcm.h>
#include <net/netns/generic.h>
#include <net/tcp.h>

/*
 * Everything a statistics row can show, summed over what it covers.
 * RX-Intr, RX-Unrecov and RX-BadLen stay 0: they count failures of Linux's
 * parser that ours does not have.
 */
struct kcm_proc_sums {
	struct kcm_psock_stats ps;
	struct kcm_mux_stats mux;
	u64 rx_intr, rx_unrecov, rx_bad_len;
};

struct kcm_proc_col {
	const char *name;
	int width;
	size_t offset;
};

#define KCM_COL(name, width, field) \
	{ name, width, offsetof(struct kcm_proc_sums, field) }

/* The first four columns of every statistics row. */
static const struct kcm_proc_col kcm_object_cols[] = {
	KCM_COL("RX-Msgs", 10, ps.rx_msgs),
	KCM_COL("RX-Bytes", 16, ps.rx_bytes),
	KCM_COL("TX-Msgs", 10, ps.tx_msgs),
	KCM_COL("TX-Bytes", 16, ps.tx_bytes),
};

/* The columns that follow them in /proc/net/kcm_stats. */
static const struct kcm_proc_col kcm_mux_cols[] = {
	KCM_COL("TX-Retries", 10, mux.tx_retries),
	KCM_COL("Attach", 10, mux.attach),
	KCM_COL("Unattach", 10, mux.unattach),
	KCM_COL("UnattchRsvd", 10, mux.unattach_rsvd),
	KCM_COL("RX-RdyDrops", 10, mux.rx_ready_drops),
};

static const struct kcm_proc_col kcm_psock_cols[] = {
	KCM_COL("Reserved", 10, ps.reserved),
	KCM_COL("Unreserved", 10, ps.unreserved),
	KCM_COL("RX-Aborts", 10, ps.rx_aborts),
	KCM_COL("RX-Intr", 10, rx_intr),
	KCM_COL("RX-Unrecov", 10, rx_unrecov),
	KCM_COL("RX-MemFail", 10, ps.rx_mem_fail),
	KCM_COL("RX-NeedMor", 10, ps.rx_need_more),
	KCM_COL("RX-BadLen", 10, rx_bad_len),
	KCM_COL("RX-TooBig", 10, ps.rx_too_big),
	KCM_COL("RX-Timeout", 10, ps.rx_timeouts),
	KCM_COL("TX-Aborts", 10, ps.tx_aborts),
};

static void kcm_proc_header(struct seq_file *seq, const char *first,
			    int first_width, const struct kcm_proc_col *cols,
			    size_t n)
{
	size_t i;

	seq_printf(seq, "%-*s", first_width, first);
	for (i = 0; i < ARRAY_SIZE(kcm_object_cols); i++)
		seq_printf(seq, " %-*s", kcm_object_cols[i].width,
			   kcm_object_cols[i].name);
	for (i = 0; i < n; i++)
		seq_printf(seq, " %-*s", cols[i].width, cols[i].name);
}

static void kcm_proc_print(struct seq_file *seq,
			   const struct kcm_proc_sums *sums,
			   const struct kcm_proc_col *cols, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		seq_printf(seq, " %-*llu", cols[i].width,
			   *(const u64 *)((const char *)sums + cols[i].offset));
}

/* The object columns, then n more. */
static void kcm_proc_values(struct seq_file *seq,
			    const struct kcm_proc_sums *sums,
			    const struct kcm_proc_col *cols, size_t n)
{
	kcm_proc_print(seq, sums, kcm_object_cols,
		       ARRAY_SIZE(kcm_object_cols));
	kcm_proc_print(seq, sums, cols, n);
}

/*
 * Counters a mux keeps, and those of its psocks gone: under mux->lock, or
 * for knet->gone (the counters of muxes gone) under knet->lock.
 */
static void kcm_proc_add_mux(struct kcm_proc_sums *s, struct kcm_mux *mux)
{
	s->mux.tx_retries += mux->stats.tx_retries;
	s->mux.attach += mux->stats.attach;
	s->mux.unattach += mux->stats.unattach;
	s->mux.unattach_rsvd += mux->stats.unattach_rsvd;
	s->mux.rx_ready_drops += mux->stats.rx_ready_drops;
	kcm_psock_stats_add(&s->ps, &mux->gone);
}

/*
 * Sums of a mux and of all its psocks, past and present: those attached,
 * those gone, and those unattached but still reserved by a socket, whose
 * counters join the ones gone only when that reservation ends.  Under
 * mux->lock.
 */
static void kcm_proc_mux_sums(struct kcm_proc_sums *s, struct kcm_mux *mux)
{
	struct kcm_psock *psock;
	struct kcm_sock *kcm;

	lockdep_assert_held(&mux->lock);
	kcm_proc_add_mux(s, mux);
	list_for_each_entry(psock, &mux->psocks, mux_node)
		kcm_psock_stats_read(psock, &s->ps);
	list_for_each_entry(kcm, &mux->socks, mux_node) {
		psock = kcm->tx_psock;
		if (psock && list_empty(&psock->mux_node))
			kcm_psock_stats_read(psock, &s->ps);
	}
}

static int kcm_proc_stats_show(struct seq_file *seq, void *v)
{
	struct kcm_net *knet = net_generic(seq_file_single_net(seq),
					   kcm_net_id);
	struct kcm_proc_sums sums = {};
	struct kcm_mux *mux;

	mutex_lock(&knet->lock);
	kcm_proc_add_mux(&sums, &knet->gone);
	list_for_each_entry(mux, &knet->muxes, knet_node) {
		spin_lock_bh(&mux->lock);
		kcm_proc_mux_sums(&sums, mux);
		spin_unlock_bh(&mux->lock);
	}
	mutex_unlock(&knet->lock);

	kcm_proc_header(seq, "MUX", 8, kcm_mux_cols, ARRAY_SIZE(kcm_mux_cols));
	seq_printf(seq, "\n%-8s", "");
	kcm_proc_values(seq, &sums, kcm_mux_cols, ARRAY_SIZE(kcm_mux_cols));
	seq_puts(seq, "\n");

	kcm_proc_header(seq, "Psock", 8, kcm_psock_cols,
			ARRAY_SIZE(kcm_psock_cols));
	seq_printf(seq, "\n%-8s", "");
	kcm_proc_values(seq, &sums, kcm_psock_cols,
			ARRAY_SIZE(kcm_psock_cols));
	seq_puts(seq, "\n");
	return 0;
}

/*
 * Messages queued on a KCM socket, as Linux counts them (its queue holds an
 * skb a message; a batch of ours holds several).  The reader may be
 * consuming one meanwhile: the count is a snapshot.
 */
static unsigned int kcm_proc_queued_msgs(struct sock *sk)
{
	struct sk_buff_head *q = &sk->sk_receive_queue;
	unsigned int msgs = 0;
	struct sk_buff *skb;
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	skb_queue_walk(q, skb)
		msgs += READ_ONCE(kcm_msg_cb(skb)->msgs);
	spin_unlock_irqrestore(&q->lock, flags);
	return msgs;
}

static void kcm_proc_show_sock(struct seq_file *seq, struct kcm_mux *mux,
			       struct kcm_sock *kcm)
{
	struct kcm_proc_sums s = {
		.ps.rx_msgs = kcm->rx_msgs, .ps.rx_bytes = kcm->rx_bytes,
	};
	struct sock *sk = &kcm->sk;

	lockdep_assert_held(&mux->lock);
	kcm_tx_stats_read(&kcm->tx_stats, &s.ps.tx_msgs, &s.ps.tx_bytes,
			  &s.ps.tx_aborts);
	seq_printf(seq, "   kcm-%-7u", kcm->index);
	kcm_proc_values(seq, &s, NULL, 0);
	seq_printf(seq, " %-8u %-8d %-8u %-8d ",
		   kcm_proc_queued_msgs(sk),
		   atomic_read(&sk->sk_rmem_alloc),
		   skb_queue_len_lockless(&sk->sk_write_queue),
		   READ_ONCE(sk->sk_wmem_queued));
	/* Linux's words, in Linux's order, for the states both have; RxDis
	 * (receiving disabled) is ours only.
	 */
	if (kcm->tx_psock)
		seq_printf(seq, "Psck-%u ", kcm->tx_psock->index);
	if (kcm->tx_waiting)
		seq_puts(seq, "TxWait ");
	if (kcm->rx_ready)
		seq_puts(seq, "RxWait ");
	if (kcm->rx_disabled)
		seq_puts(seq, "RxDis ");
	seq_puts(seq, "\n");
}

static void kcm_proc_show_psock(struct seq_file *seq, struct kcm_psock *psock)
{
	struct kcm_proc_sums s = {};
	struct sock *sk = psock->sk;

	lockdep_assert_held(&psock->mux->lock);
	kcm_psock_stats_read(psock, &s.ps);
	seq_printf(seq, "   psock-%-5u", psock->index);
	kcm_proc_values(seq, &s, NULL, 0);
	seq_printf(seq, " %-8u %-8d %-8u %-8d ",
		   skb_queue_len_lockless(&sk->sk_receive_queue),
		   atomic_read(&sk->sk_rmem_alloc),
		   skb_queue_len_lockless(&sk->sk_write_queue),
		   READ_ONCE(sk->sk_wmem_queued));
	/* Linux's words, in Linux's order. */
	if (psock->failed)
		seq_puts(seq, "TxStop ");
	if (READ_ONCE(psock->rx_stopped))
		seq_puts(seq, "RxStop ");
	if (psock->tx_kcm)
		seq_printf(seq, "Rsvd-%u ", psock->tx_kcm->index);
	if (psock->rx_paused)
		seq_puts(seq, "RxPause ");
	if (!skb_queue_empty(&psock->rx_held))
		seq_puts(seq, "RdyRx ");
	seq_puts(seq, "\n");
}

/* The mux's row: its sums, and how many sockets and psocks it has. */
static void kcm_proc_show_mux(struct seq_file *seq, struct kcm_mux *mux)
{
	struct kcm_proc_sums s = {};

	lockdep_assert_held(&mux->lock);
	kcm_proc_mux_sums(&s, mux);
	seq_printf(seq, "%-6s%-8s", "mux", "");
	kcm_proc_values(seq, &s, NULL, 0);
	seq_printf(seq, " %-8s %-8s %-8s %-8s KCMs: %u, Psocks %u\n",
		   "-", "-", "-", "-", mux->sock_count, mux->psock_count);
}

/*
 * /proc/net/kcm is produced a row at a time (a seq_file record each; the
 * two header lines are one), and each read() goes on from the row where
 * the last one stopped.  Nothing is held from one read() to the next: where
 * the dump stands is kept as keys, which outlive what they name, and the
 * next read starts at the first row at or after them.  The rows come in
 * the order of those keys: the muxes by index, and within a mux its KCM
 * sockets, then its psocks, each by mux_seq (the order of the lists).  So
 * an object there from the first read() of a dump to the last is listed
 * once, at its place; one that comes or goes meanwhile is listed if it is
 * there when the dump reaches its place: a psock attached during a dump,
 * at the end of its mux, is.
 *
 * Within one read(), from start() to stop(): knet->lock, which keeps every
 * mux on knet->muxes where it is; mux->lock only for a row; a reference on
 * the KCM socket or psock of the current row, so that the next row is the
 * one after it on its list, found at once, while it is still there.  The
 * mux's row sums all its psocks in one hold of mux->lock, as
 * /proc/net/kcm_stats does: the sums must be of one moment.
 */
enum kcm_proc_row {
	KCM_PROC_HEADER,
	KCM_PROC_MUX,
	KCM_PROC_SOCK,
	KCM_PROC_PSOCK,
	KCM_PROC_END,
};

struct kcm_proc_iter {
	struct seq_net_private p;	/* first, for seq_file_net() */

	/* The row at the dump's position: kept between reads. */
	enum kcm_proc_row row;
	u64 mux_index;			/* of its mux */
	u64 mux_seq;			/* of its KCM socket or psock */

	/* Within one read, under knet->lock. */
	struct kcm_mux *mux;		/* with index mux_index, or NULL */
	struct kcm_proc_held {
		struct kcm_sock *kcm;	/* of a KCM_PROC_SOCK row */
		struct kcm_psock *psock;	/* of a KCM_PROC_PSOCK row */
	} held;
};

static struct kcm_net *kcm_proc_knet(struct seq_file *seq)
{
	return net_generic(seq_file_net(seq), kcm_net_id);
}

/*
 * The first mux with an index of at least index: after prev (which came
 * before it) if prev is given, else searched from the start.  Under
 * knet->lock.
 */
static struct kcm_mux *kcm_proc_mux_from(struct kcm_net *knet,
					 struct kcm_mux *prev, u64 index)
{
	struct kcm_mux *mux = list_prepare_entry(prev, &knet->muxes,
						 knet_node);

	lockdep_assert_held(&knet->lock);
	list_for_each_entry_continue(mux, &knet->muxes, knet_node)
		if (mux->index >= index)
			return mux;
	return NULL;
}

/*
 * The first KCM socket of mux with a mux_seq of at least seq: after prev
 * (which came before it) if prev is still on mux->socks, else searched
 * from the start.  Under mux->lock.
 */
static struct kcm_sock *kcm_proc_sock_from(struct kcm_mux *mux,
					   struct kcm_sock *prev, u64 seq)
{
	struct kcm_sock *kcm;

	lockdep_assert_held(&mux->lock);
	if (prev && prev->leaving)
		prev = NULL;
	kcm = list_prepare_entry(prev, &mux->socks, mux_node);
	list_for_each_entry_continue(kcm, &mux->socks, mux_node)
		if (kcm->mux_seq >= seq)
			return kcm;
	return NULL;
}

/* The same for a psock of mux. */
static struct kcm_psock *kcm_proc_psock_from(struct kcm_mux *mux,
					     struct kcm_psock *prev, u64 seq)
{
	struct kcm_psock *psock;

	lockdep_assert_held(&mux->lock);
	if (prev && list_empty(&prev->mux_node))
		prev = NULL;
	psock = list_prepare_entry(prev, &mux->psocks, mux_node);
	list_for_each_entry_continue(psock, &mux->psocks, mux_node)
		if (psock->mux_seq >= seq)
			return psock;
	return NULL;
}

static void kcm_proc_put(struct kcm_proc_held *held)
{
	if (held->kcm)
		sock_put(&held->kcm->sk);
	if (held->psock)
		kcm_psock_put(held->psock);
	*held = (struct kcm_proc_held){};
}

/*
 * Takes it to the first row at or after its keys; returns it, or
 * SEQ_START_TOKEN for the header, or NULL past the end.  The KCM socket or
 * psock it holds, that of the row before, is where the search in its mux
 * starts; its reference is dropped, and one taken on the new row's.
 */
static void *kcm_proc_settle(struct seq_file *seq, struct kcm_proc_iter *it)
{
	struct kcm_net *knet = kcm_proc_knet(seq);
	struct kcm_proc_held prev = it->held;
	struct kcm_proc_held *held = &it->held;
	struct kcm_mux *mux;

	lockdep_assert_held(&knet->lock);
	*held = (struct kcm_proc_held){};
	for (;;) {
		if (it->row == KCM_PROC_HEADER || it->row == KCM_PROC_END)
			break;
		if (!it->mux || it->mux->index != it->mux_index)
			it->mux = kcm_proc_mux_from(knet, it->mux,
						    it->mux_index);
		mux = it->mux;
		if (!mux) {
			it->row = KCM_PROC_END;
			break;
		}
		if (mux->index != it->mux_index) {
			/* That mux is gone, and what was left of its rows. */
			it->mux_index = mux->index;
			it->row = KCM_PROC_MUX;
		}
		if (it->row == KCM_PROC_MUX)
			break;

		spin_lock_bh(&mux->lock);
		if (it->row == KCM_PROC_SOCK) {
			held->kcm = kcm_proc_sock_from(mux, prev.kcm,
						       it->mux_seq);
			if (held->kcm) {
				sock_hold(&held->kcm->sk);
				it->mux_seq = held->kcm->mux_seq;
			} else {
				it->row = KCM_PROC_PSOCK;
				it->mux_seq = 0;
			}
		}
		if (it->row == KCM_PROC_PSOCK) {
			held->psock = kcm_proc_psock_from(mux, prev.psock,
							  it->mux_seq);
			if (held->psock) {
				kref_get(&held->psock->ref);
				it->mux_seq = held->psock->mux_seq;
			}
		}
		spin_unlock_bh(&mux->lock);
		if (held->kcm || held->psock)
			break;

		/* Past the mux's last row: the next mux's. */
		kcm_proc_put(&prev);
		it->row = KCM_PROC_MUX;
		it->mux_index = mux->index + 1;
	}
	kcm_proc_put(&prev);

	switch (it->row) {
	case KCM_PROC_HEADER:
		return SEQ_START_TOKEN;
	case KCM_PROC_END:
		return NULL;
	default:
		return it;
	}
}

static void *kcm_proc_start(struct seq_file *seq, loff_t *pos)
{
	struct kcm_proc_iter *it = seq->private;

	/* seq_file asks for 0 to begin, else for where the last read()
	 * stopped: the row the keys name.
	 */
	if (!*pos)
		it->row = KCM_PROC_HEADER;
	mutex_lock(&kcm_proc_knet(seq)->lock);
	return kcm_proc_settle(seq, it);
}

static void *kcm_proc_next(struct seq_file *seq, void *v, loff_t *pos)
{
	struct kcm_proc_iter *it = seq->private;

	++*pos;
	switch (it->row) {
	case KCM_PROC_HEADER:
		it->row = KCM_PROC_MUX;
		it->mux_index = 0;
		break;
	case KCM_PROC_MUX:
		it->row = KCM_PROC_SOCK;
		it->mux_seq = 0;
		break;
	case KCM_PROC_SOCK:
	case KCM_PROC_PSOCK:
		it->mux_seq++;
		break;
	case KCM_PROC_END:
		WARN_ON_ONCE(1);
		return NULL;
	}
	return kcm_proc_settle(seq, it);
}

static void kcm_proc_stop(struct seq_file *seq, void *v)
{
	struct kcm_proc_iter *it = seq->private;

	kcm_proc_put(&it->held);
	it->mux = NULL;
	mutex_unlock(&kcm_proc_knet(seq)->lock);
}

/*
 * A KCM socket or psock that left the mux since next() found it has no
 * row: the dump reached its place after it left.
 */
static int kcm_proc_show(struct seq_file *seq, void *v)
{
	struct kcm_net *knet = kcm_proc_knet(seq);
	struct kcm_proc_iter *it = seq->private;
	struct kcm_mux *mux = it->mux;

	lockdep_assert_held(&knet->lock);
	if (v == SEQ_START_TOKEN) {
		seq_printf(seq, "*** KCM statistics (%u MUX) ****\n",
			   knet->mux_count);
		kcm_proc_header(seq, "Object", 14, NULL, 0);
		seq_printf(seq, " %-8s %-8s %-8s %-8s %s\n",
			   "Recv-Q", "Rmem", "Send-Q", "Smem", "Status");
		return 0;
	}

	spin_lock_bh(&mux->lock);
	switch (it->row) {
	case KCM_PROC_MUX:
		kcm_proc_show_mux(seq, mux);
		break;
	case KCM_PROC_SOCK:
		if (!it->held.kcm->leaving)
			kcm_proc_show_sock(seq, mux, it->held.kcm);
		break;
	case KCM_PROC_PSOCK:
		if (!list_empty(&it->held.psock->mux_node))
			kcm_proc_show_psock(seq, it->held.psock);
		break;
	default:
		WARN_ON_ONCE(1);
	}
	spin_unlock_bh(&mux->lock);
	return 0;
}

static const struct seq_operations kcm_proc_ops = {
	.start	= kcm_proc_start,
	.next	= kcm_proc_next,
	.stop	= kcm_proc_stop,
	.show	= kcm_proc_show,
};

int kcm_proc_init_net(struct net *net)
{
	if (!proc_create_net_single("kcm_stats", 0444, net->proc_net,
				    kcm_proc_stats_show, NULL))
		goto err;
	if (!proc_create_net("kcm", 0444, net->proc_net, &kcm_proc_ops,
			     sizeof(struct kcm_proc_iter)))
		goto err_remove_stats;
	return 0;

err_remove_stats:
	remove_proc_entry("kcm_stats", net->proc_net);
err:
	return -ENOMEM;
}

void kcm_proc_exit_net(struct net *net)
{
	remove_proc_entry("kcm", net->proc_net);
	remove_proc_entry("kcm_stats", net->proc_net);
}
