/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Kernel Connection Multiplexor: the objects shared by net/kcm/.
 *
 * Three kinds of object make a multiplexor work:
 *
 *   struct kcm_sock   the AF_KCM socket an application reads and writes;
 *   struct kcm_psock  one attached TCP socket with its stream parser;
 *   struct kcm_mux    what ties N KCM sockets to M psocks, and steers
 *                     messages between them.
 *
 * Where the code lives: kcmsock.c (socket family, ioctls, options),
 * kcm_mux.c (steering and reservation), kcm_psock.c (attach, unattach,
 * failure), kcm_parser.c (receive: TCP bytes to messages), kcm_rxbuf.c
 * (the buffers of full receive batches), kcm_tls.c
 * (receive: kTLS's plaintext to the parser), kcm_rx.c
 * (receive: messages to the reader), kcm_tx.c (transmit path), kcmproc.c
 * (/proc/net/kcm and /proc/net/kcm_stats).
 *
 * Locks, outermost first:
 *
 *   kcm_net.lock    mutex; the list of muxes of a network namespace.
 *   KCM sk lock     lock_sock() of a KCM socket; its transmit state and the
 *                   consumption side of its receive queue.
 *   psock tx_lock   mutex; a send through kTLS on the psock, or its
 *                   unattach (struct kcm_psock_tls).
 *   TCP sk lock     lock_sock() or bh_lock_sock() of an attached socket;
 *                   held by the stream parser during a pass, by the
 *                   transmit path while it pushes bytes, and around attach
 *                   (which tcp_disconnect() holds too).
 *   sk_callback_lock  rwlock of an attached TCP socket: its callbacks and
 *                   sk_user_data; a reader may take mux->lock under it.
 *   kcm_mux.lock    BH spinlock; every list of the mux, the receive-ready
 *                   state of its KCM sockets, psock reservations and the
 *                   messages held for lack of a receiver.  Nothing sleeps
 *                   under it; the only locks taken under it are leaves of
 *                   other subsystems: a KCM socket's receive queue and wait
 *                   queue (queueing a message, waking its reader) and the
 *                   workqueue's (queue_work()).
 *
 * Functions documented "Under mux->lock" assert it (lockdep_assert_held()),
 * so do those "Under the KCM socket lock" (sock_owned_by_me()) and the
 * parser's pass and the mux's entry for it (the TCP socket's lock, either
 * kind); lockdep checks the order above on a debug kernel, KCSAN the
 * lock-free reads.
 *
 * One owner for each piece of state: the mux's lists, reservations and the
 * fields marked "the mux's" are changed only in kcm_mux.c, which the other
 * files ask (kcm_mux_*()); the parser's only in kcm_parser.c; a KCM
 * socket's transmit state only in kcm_tx.c.  Lifecycle preconditions (a
 * psock unattached before it is freed, its parser stopped before it is
 * done, no reservation on a socket that leaves) are WARN_ON_ONCE()s.
 *
 * Lifetimes:
 *
 *   A mux lives while at least one KCM socket is joined to it; the last
 *   socket to leave unattaches every psock and frees the mux.
 *   A psock is counted by kref: one reference while it is attached (on the
 *   mux's psock list), one while a KCM socket has it reserved for sending,
 *   one while /proc/net/kcm is at its row (within one read()).
 *   It holds a reference to the TCP socket's file, so closing the TCP fd in
 *   user space while attached is harmless.
 *   A KCM socket is a struct sock with the usual reference counting; its
 *   transmit work is cancelled before it leaves the mux.
 */
#ifndef __NET_KCM_H_
#define __NET_KCM_H_

#include <linux/kref.h>
#include <linux/rhashtable-types.h>
#include <linux/u64_stats_sync.h>
#include <linux/workqueue.h>
#include <net/sock.h>
#include <uapi/linux/kcm.h>

struct bpf_prog;

/*
 * Counters.  Those written and read under mux->lock are plain integers.
 * Those written under another lock, while /proc reads them under mux->lock,
 * are u64_stats_t in a block with its own syncp, one writer at a time (the
 * lock named at the block): a read never tears, on 32-bit either, and is
 * no data race.
 */

/* A psock's counts, and the sums of psocks gone (plain: a snapshot). */
struct kcm_psock_stats {
	u64 rx_msgs;
	u64 rx_bytes;
	u64 tx_msgs;
	u64 tx_bytes;
	u64 reserved;
	u64 unreserved;
	u64 rx_aborts;
	u64 tx_aborts;
	/* The parser's: allocation failures, passes that ended on a partial
	 * header, messages longer than the receive buffer, time limits hit.
	 */
	u64 rx_mem_fail;
	u64 rx_need_more;
	u64 rx_too_big;
	u64 rx_timeouts;
};

/* The parser's counters of a psock: under the TCP socket lock. */
struct kcm_parser_stats {
	struct u64_stats_sync syncp;
	u64_stats_t aborts;
	u64_stats_t mem_fail;
	u64_stats_t need_more;
	u64_stats_t too_big;
	u64_stats_t timeouts;
};

/* Transmit counters of a KCM socket (under its lock), or of a psock (under
 * the lock of the KCM socket that has it reserved).
 */
struct kcm_tx_stats {
	struct u64_stats_sync syncp;
	u64_stats_t msgs;
	u64_stats_t bytes;
	u64_stats_t aborts;
};

/* Counters kept by the mux itself, under its lock. */
struct kcm_mux_stats {
	u64 tx_retries;
	u64 attach;
	u64 unattach;
	u64 unattach_rsvd;
	u64 rx_ready_drops;
};

/* Adds n to a counter of the block whose syncp is given. */
static inline void kcm_stats_add(struct u64_stats_sync *syncp,
				 u64_stats_t *counter, u64 n)
{
	unsigned long flags = u64_stats_update_begin_irqsave(syncp);

	u64_stats_add(counter, n);
	u64_stats_update_end_irqrestore(syncp, flags);
}

struct kcm_mux {
	struct kcm_net *knet;
	struct list_head knet_node;	/* in knet->muxes, under knet->lock */
	u64 index;			/* knet->muxes is in index order */
	spinlock_t lock;

	/* All under lock. */
	struct list_head socks;		/* every KCM socket of the mux */
	struct list_head psocks;	/* every attached psock */
	u64 join_seq;			/* the last mux_seq given: both */
					/* lists are in mux_seq order */
	struct rhashtable by_cookie;	/* those not unattached, by cookie */
	unsigned int sock_count;
	unsigned int psock_count;

	struct list_head rx_ready;	/* KCM sockets that can take a message */
	struct list_head rx_held;	/* psocks paused holding a message */
	struct sk_buff_head rx_orphans;	/* messages whose socket went away */

	struct list_head tx_idle;	/* psocks free for any sender */
	struct list_head tx_waiters;	/* KCM sockets waiting for any psock */
	u64 tx_wait_seq;		/* the next waiter's place in line */

	struct kcm_mux_stats stats;
	struct kcm_psock_stats gone;	/* counters of unattached psocks */
};

/* Per network namespace state. */
struct kcm_net {
	struct mutex lock;		/* protects all of it */
	struct list_head muxes;
	unsigned int mux_count;
	u32 next_sock_index;
	u32 next_psock_index;
	u64 next_mux_index;
	struct kcm_mux gone;		/* only the counters of muxes gone */
};

/* A length-field framing (SIOCKCMATTACHLEN), checked at attach. */
struct kcm_len_framing {
	u32 offset;			/* of the field in the message */
	u32 width;			/* 1, 2, 4 or 8 bytes */
	bool little_endian;
	s32 adjust;			/* length = field value + adjust */
	u32 max_len;			/* INT_MAX when none was given */
};

/*
 * 512 bytes on x86-64: a kmalloc-512 object; one byte more and it takes
 * 1 KiB.  With the skb of the view (768 to 896 bytes), it is most of what
 * a psock costs (README, "Scale").
 */
/*
 * The kTLS side of a psock whose TCP socket has kTLS keyed in software
 * (kcm_psock_check_ulp()).  Made at attach, freed with the psock; a plain
 * psock has none (and stays within its 512-byte slab object).
 *
 * tx and rx are set at attach, then constant: the socket sends through
 * kTLS (TLS_TX), receives through it (TLS_RX), or both.  tx_lock is held
 * by a send through kTLS, which takes the TCP socket lock itself
 * (sk_prot->sendmsg), and by unattach: a send in progress finishes first,
 * and the next one sees unattached.  Taken under the lock of the sending
 * KCM socket, before the TCP socket's.  rx_wait, on the socket's wait
 * queue while attached, learns that kTLS has a record (kcm_tls.c); its
 * private is the psock.
 */
struct kcm_psock_tls {
	bool tx;
	bool rx;
	struct mutex tx_lock;
	struct wait_queue_entry rx_wait;
};

struct kcm_psock {
	struct kref ref;
	u32 index;
	struct kcm_mux *mux;
	struct sock *sk;		/* the TCP socket */
	struct file *file;		/* keeps sk alive while attached */
	struct bpf_prog *prog;		/* the framing program, or NULL: */
	struct kcm_len_framing len_framing;	/* ... framed by this */
	bool saved_urginline;		/* SO_OOBINLINE before attach */
	bool established;		/* connected once: a failure is EPIPE */
	u64 cookie;			/* SO_COOKIE of sk */

	/* Saved at attach, restored at unattach, under sk_callback_lock
	 * (write) and the TCP socket lock (and saved_urginline above).
	 */
	void (*saved_data_ready)(struct sock *sk);
	void (*saved_write_space)(struct sock *sk);
	void (*saved_state_change)(struct sock *sk);
	void (*saved_error_report)(struct sock *sk);
	struct kcm_psock_tls *tls;	/* set at attach on a kTLS socket */

	/* Parser state (kcm_parser.c), under the TCP socket lock, but for
	 * rx_stopped, which a disconnect may also set, in any context (it
	 * only ever goes up).  rx_batch is set only within a pass, whose
	 * end hands it on; rx_hold too, the mux's answer that it holds a
	 * message of this pass, and rx_ended, that the pass's last skb went
	 * to the mux with the pass's end.
	 */
	struct work_struct rx_work;	/* a pass in process context */
	struct delayed_work rx_timeout;	/* message assembly time limit */
	struct sk_buff *view;		/* message prefix the program sees */
					/* (NULL when framed by length) */
	struct sk_buff *rx_batch;	/* small messages not yet steered */
	struct sk_buff *rx_head;	/* message taken out as it arrives */
	struct sk_buff *rx_tail;	/* last of rx_head's fragments */
	u32 rx_offset;			/* of its first byte in rx_head */
	u32 rx_have;			/* its bytes in rx_head */
	u32 rx_len;			/* length of the message begun, or 0 */
	bool rx_timing;			/* rx_timeout runs for it */
	bool rx_stopped;
	bool rx_hold;
	bool rx_ended;
	unsigned long rx_deadline;	/* jiffies: its time limit */
	struct kcm_parser_stats rx_stats;

	/* The mux's (kcm_mux.c), under mux->lock.  Read without it:
	 * rx_paused by the parser, failed and unattached by the transmit
	 * path (which rechecks under the lock where it matters).
	 */
	struct list_head mux_node;	/* in mux->psocks */
	u64 mux_seq;			/* its place there */
	struct rhash_head cookie_node;	/* in mux->by_cookie */
	struct list_head rx_node;	/* in mux->rx_held while held */
	struct sk_buff_head rx_held;	/* parsed, waiting for a socket */
	struct kcm_sock *rx_target;	/* this pass's socket, woken at its end */
	struct list_head tx_node;	/* in mux->tx_idle while idle */
	struct list_head tx_directed;	/* KCM sockets waiting for us */
	struct kcm_sock *tx_kcm;	/* socket that reserved us */
	bool rx_paused;			/* rx_held not empty: no pass */
	bool failed;			/* error posted: no more sending */
	bool unattached;
	u64 rx_msgs;
	u64 rx_bytes;
	u64 reserved;
	u64 unreserved;

	/* Under the lock of tx_kcm. */
	struct kcm_tx_stats tx_stats;
};

struct kcm_sock {
	struct sock sk;
	struct kcm_mux *mux;
	u32 index;

	/* Under mux->lock; rx_ready and rx_disabled are also read without
	 * it (a reader that freed room, getsockopt), and so is tx_psock, by
	 * the socket itself under its own lock: the mux may hand it a psock
	 * at any moment, but only the socket ends its reservation.
	 */
	struct list_head mux_node;	/* in mux->socks */
	u64 mux_seq;			/* its place there */
	struct list_head rx_node;	/* in mux->rx_ready while ready */
	bool rx_ready;
	bool rx_disabled;
	bool leaving;			/* being released */
	struct list_head tx_node;	/* while waiting: in mux->tx_waiters, */
					/* or the tx_directed of its psock */
	bool tx_waiting;
	struct kcm_psock *tx_wait_psock;	/* waited for, or NULL: any */
	u64 tx_wait_seq;		/* place in line, across both lists */
	struct kcm_psock *tx_psock;	/* reserved psock, or NULL */
	u64 rx_msgs;
	u64 rx_bytes;

	/* Under the KCM socket lock; the options are also read without it
	 * (getsockopt).
	 */
	bool rx_origin;			/* KCM_RECV_ORIGIN */
	bool rx_batch_recv;		/* KCM_RECV_BATCH */
	struct sk_buff *tx_partial;	/* message not yet complete */
	u64 tx_partial_cookie;		/* KCM_ORIGIN of tx_partial, or 0 */
	u32 tx_sent;			/* bytes of the head message sent */
	bool tx_stopped;		/* released: send nothing more */
	bool tx_series;			/* a MSG_BATCH series is open: */
					/* tx_psock stays reserved */
	struct work_struct tx_work;
	struct kcm_tx_stats tx_stats;
};

/* The largest receive batch, skb_shared_info included (kcm_rxbuf.c). */
#define KCM_RX_BATCH_MAX	16384

/*
 * Control block of a message skb, once the parser has handed it over.  On
 * receive an skb holds one message, or is a batch: small messages copied one
 * after the other, each after its length as a u32 (kcm_rx.c).  offset and
 * len are those of the message being read.
 */
struct kcm_msg_cb {
	u64 cookie;			/* psock cookie (rx) or target (tx) */
	u32 offset;			/* first byte not yet read */
	u32 len;			/* bytes not yet read */
	u32 charge;			/* rx: charged to the socket's rmem */
	u32 msgs;			/* rx: messages not yet consumed */
	bool batch;
	bool started;			/* rx: current message partly read */
};

static inline struct kcm_msg_cb *kcm_msg_cb(struct sk_buff *skb)
{
	BUILD_BUG_ON(sizeof(struct kcm_msg_cb) > sizeof(skb->cb));
	return (struct kcm_msg_cb *)skb->cb;
}

/* Bytes of a receive skb not yet read, a batch's length words included. */
static inline u32 kcm_msg_unread(struct sk_buff *skb)
{
	struct kcm_msg_cb *cb = kcm_msg_cb(skb);

	return cb->batch ? skb->len - cb->offset : cb->len;
}

/* Message bytes of a receive skb not yet read. */
static inline u32 kcm_msg_payload(struct sk_buff *skb)
{
	return kcm_msg_unread(skb) -
	       (kcm_msg_cb(skb)->msgs - 1) * sizeof(u32);
}

static inline struct kcm_sock *kcm_sk(const struct sock *sk)
{
	return (struct kcm_sock *)sk;
}

/* psock sends through kTLS. */
static inline bool kcm_psock_tls_tx(const struct kcm_psock *psock)
{
	return psock->tls && psock->tls->tx;
}

/* psock's messages are framed from kTLS's plaintext. */
static inline bool kcm_psock_tls_rx(const struct kcm_psock *psock)
{
	return psock->tls && psock->tls->rx;
}

extern unsigned int kcm_net_id;
extern struct workqueue_struct *kcm_wq;

/* kcm_mux.c */
struct kcm_mux *kcm_mux_create(struct net *net);
void kcm_mux_add_sock(struct kcm_mux *mux, struct kcm_sock *kcm);
void kcm_mux_remove_sock(struct kcm_sock *kcm);
bool kcm_mux_has_cookie(struct kcm_mux *mux, u64 cookie);
int kcm_mux_add_psock(struct kcm_mux *mux, struct kcm_psock *psock);
struct kcm_psock *kcm_mux_claim_psock(struct kcm_mux *mux, u64 cookie);
void kcm_mux_remove_psock(struct kcm_mux *mux, struct kcm_psock *psock);
bool kcm_mux_psock_stop_tx(struct kcm_psock *psock);
void kcm_mux_tx_wake_owner(struct kcm_psock *psock);
bool kcm_mux_rx_deliver(struct kcm_mux *mux, struct kcm_psock *psock,
			struct sk_buff *skb, bool end);
void kcm_mux_rx_batch_end(struct kcm_psock *psock);
void kcm_mux_rx_space(struct kcm_sock *kcm);
void kcm_mux_rx_set_disabled(struct kcm_sock *kcm, bool disabled);
struct kcm_psock *kcm_mux_tx_reserve(struct kcm_sock *kcm, u64 cookie,
				     int *err);
void kcm_mux_tx_unreserve(struct kcm_sock *kcm, bool retry);
int kcm_mux_tx_check_cookie(struct kcm_mux *mux, u64 cookie);
void kcm_mux_tx_cancel_wait(struct kcm_sock *kcm);

/* kcm_psock.c */
int kcm_psock_attach(struct kcm_sock *kcm, int fd, int bpf_fd,
		     const struct kcm_len_framing *len_framing);
int kcm_psock_unattach_fd(struct kcm_sock *kcm, int fd);
void kcm_psock_unattach(struct kcm_psock *psock);
void kcm_psock_fail(struct kcm_psock *psock, int err);
bool kcm_psock_ulp_changed(struct kcm_psock *psock);
void kcm_psock_put(struct kcm_psock *psock);
void kcm_psock_stats_read(const struct kcm_psock *psock,
			  struct kcm_psock_stats *sum);
void kcm_psock_stats_add(struct kcm_psock_stats *to,
			 const struct kcm_psock_stats *from);

/* kcm_parser.c */
struct kcm_attach_len;
int kcm_parser_len_init(struct kcm_len_framing *f,
			const struct kcm_attach_len *info);
void kcm_parser_init(struct kcm_psock *psock);
void kcm_parser_start(struct kcm_psock *psock);
void kcm_parser_data_ready(struct kcm_psock *psock);
void kcm_parser_resume(struct kcm_psock *psock);
void kcm_parser_stop(struct kcm_psock *psock);
void kcm_parser_done(struct kcm_psock *psock);
int kcm_parser_pass_plain(struct kcm_psock *psock, struct sk_buff_head *queue,
			  u32 len, u32 *taken);
void kcm_parser_fail(struct kcm_psock *psock, int err);

/* kcm_rxbuf.c */
struct sk_buff *kcm_rxbuf_alloc(void);
int kcm_rxbuf_init(void);
void kcm_rxbuf_exit(void);

/* kcm_tls.c */
void kcm_tls_rx_hook(struct kcm_psock *psock);
void kcm_tls_rx_unhook(struct kcm_psock *psock);
void kcm_tls_rx_work(struct kcm_psock *psock);

/* kcm_rx.c */
int kcm_rx_recvmsg(struct socket *sock, struct msghdr *msg, size_t len,
		   int flags);
ssize_t kcm_rx_splice_read(struct socket *sock, loff_t *ppos,
			   struct pipe_inode_info *pipe, size_t len,
			   unsigned int flags);
void kcm_rx_skb_destructor(struct sk_buff *skb);
struct sk_buff *kcm_rx_split_started(struct sk_buff *skb);

/* kcm_tx.c */
int kcm_tx_sendmsg(struct socket *sock, struct msghdr *msg, size_t len);
void kcm_tx_work(struct work_struct *work);
void kcm_tx_write_space(struct sock *sk);
void kcm_tx_release(struct kcm_sock *kcm);
void kcm_tx_stats_read(const struct kcm_tx_stats *stats, u64 *msgs,
		       u64 *bytes, u64 *aborts);

/* kcmproc.c */
int kcm_proc_init_net(struct net *net);
void kcm_proc_exit_net(struct net *net);

#endif /* __NET_KCM_H_ */
