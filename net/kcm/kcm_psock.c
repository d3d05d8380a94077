// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel Connection Multiplexor: attaching and unattaching TCP sockets.
 *
 * Attaching takes over the TCP socket's data-ready, write-space,
 * state-change and error-report callbacks (under its sk_callback_lock, with
 * sk_user_data pointing at the psock) and starts a stream parser on it.
 * Unattaching gives them back, and so does the application disconnecting
 * the socket (the stream is over; the socket is the application's again).
 * A psock that fails (parser error, peer gone, send error) posts the error
 * on its TCP socket, so that user space sees POLLERR and SO_ERROR, and the
 * mux sends nothing more on it.
 */

#include <linux/bpf.h>
#include <linux/file.h>
#include <linux/filter.h>
#include <linux/net.h>
#include <linux/slab.h>
#include <linux/sock_diag.h>
#include <net/inet_connection_sock.h>
#include <net/kcm.h>
#include <net/netns/generic.h>
#include <net/tcp.h>
#include <net/tls.h>
#include <trace/events/kcm.h>

#define KCM_PSOCK_VIEW_SIZE	128

static void kcm_psock_data_ready(struct sock *sk)
{
	struct kcm_psock *psock;

	read_lock_bh(&sk->sk_callback_lock);
	psock = sk->sk_user_data;
	if (likely(psock))
		kcm_parser_data_ready(psock);
	read_unlock_bh(&sk->sk_callback_lock);
}

/* Marks psock failed and posts err on its TCP socket, once. */
void kcm_psock_fail(struct kcm_psock *psock, int err)
{
	struct sock *sk = psock->sk;

	if (!kcm_mux_psock_stop_tx(psock))
		return;
	trace_kcm_psock_error(psock->index, psock->cookie, err,
			      _RET_IP_);
	WRITE_ONCE(sk->sk_err, err);
	sk_error_report(sk);
}

/*
 * Wakes the psock's sender.  On a kTLS socket the callback we replaced is
 * kTLS's own, which schedules the encrypted records TCP had no room for:
 * it runs too, after the unlock, as a state change's does.
 */
static void kcm_psock_write_space(struct sock *sk)
{
	void (*saved)(struct sock *sk) = NULL;
	struct kcm_psock *psock;

	read_lock_bh(&sk->sk_callback_lock);
	psock = sk->sk_user_data;
	if (likely(psock)) {
		if (kcm_psock_tls_tx(psock))
			saved = psock->saved_write_space;
		kcm_mux_tx_wake_owner(psock);
	}
	read_unlock_bh(&sk->sk_callback_lock);
	if (saved)
		saved(sk);
}

static void kcm_psock_state_change(struct sock *sk)
{
	void (*saved)(struct sock *sk) = NULL;
	struct kcm_psock *psock;

	read_lock_bh(&sk->sk_callback_lock);
	psock = sk->sk_user_data;
	if (likely(psock)) {
		saved = psock->saved_state_change;
		if (sk->sk_state == TCP_ESTABLISHED) {
			/* Attached while connecting: a message reserved
			 * meanwhile may go now.
			 */
			WRITE_ONCE(psock->established, true);
			kcm_mux_tx_wake_owner(psock);
		} else if (!READ_ONCE(psock->established)) {
			/* A connect that failed: TCP's own error
			 * (ECONNREFUSED, ETIMEDOUT) is the one to see.
			 */
			kcm_mux_psock_stop_tx(psock);
		} else {
			/* A disconnect stops sending; what was received
			 * before it is still parsed and delivered.
			 */
			kcm_psock_fail(psock, EPIPE);
		}
	}
	read_unlock_bh(&sk->sk_callback_lock);
	/* Unattached meanwhile: sk's own callback is back in place. */
	if (!saved)
		saved = READ_ONCE(sk->sk_state_change);
	if (saved != kcm_psock_state_change)
		saved(sk);
}

/*
 * tcp_disconnect() reports with the socket closed but not shut down, as
 * nothing else does (tcp_done() shuts it down): the application ended the
 * stream itself, with connect(AF_UNSPEC) or a shutdown() while connecting,
 * holding the socket's process lock.  Others may report meanwhile without
 * that lock (an error queue read, a transmit timestamp): they see the same
 * state, and act the same.
 */
static bool kcm_psock_disconnected(struct sock *sk)
{
	return sk->sk_state == TCP_CLOSE && !READ_ONCE(sk->sk_shutdown) &&
	       sock_owned_by_user_nocheck(sk);
}

static void kcm_psock_unhook(struct kcm_psock *psock);

/*
 * What the application does next with a disconnected socket (connect it
 * again, listen on it) is not KCM's: the callbacks go back at once, so that
 * a new stream is never parsed as the old one's rest and a listener's
 * children never inherit them.  The psock stays on the mux, stopped and
 * failed, until it is unattached; the socket keeps TCP's own error.
 *
 * The read lock pins the psock and its mux (unattach unhooks under the
 * write lock before it puts either); a reference keeps the psock past it,
 * for the unhook, which takes the write lock.
 */
static void kcm_psock_error_report(struct sock *sk)
{
	void (*saved)(struct sock *sk) = NULL;
	struct kcm_psock *psock;
	bool disconnected = false;

	read_lock_bh(&sk->sk_callback_lock);
	psock = sk->sk_user_data;
	if (likely(psock)) {
		saved = psock->saved_error_report;
		disconnected = kcm_psock_disconnected(sk);
		if (disconnected) {
			kref_get(&psock->ref);
			kcm_parser_stop(psock);
			kcm_mux_psock_stop_tx(psock);
		}
	}
	read_unlock_bh(&sk->sk_callback_lock);

	if (disconnected) {
		kcm_psock_unhook(psock);
		kcm_psock_put(psock);
	}
	if (!saved)
		saved = READ_ONCE(sk->sk_error_report);
	if (saved != kcm_psock_error_report)
		saved(sk);
}

/* SO_COOKIE of sk, made now if user space never asked for it. */
static u64 kcm_psock_cookie(struct sock *sk)
{
	u32 halves[2];

	sock_diag_save_cookie(sk, halves);
	return halves[0] | (u64)halves[1] << 32;
}

/* Frees psock's kTLS side, if it has one (kcm_psock_check_ulp()). */
static void kcm_psock_free_tls(struct kcm_psock *psock)
{
	if (!psock->tls)
		return;
	mutex_destroy(&psock->tls->tx_lock);
	kfree(psock->tls);
}

/* The last reference: unattached, its parser done, nobody's reservation. */
static void kcm_psock_free(struct kref *ref)
{
	struct kcm_psock *psock = container_of(ref, struct kcm_psock, ref);

	WARN_ON_ONCE(!psock->unattached || !READ_ONCE(psock->rx_stopped) ||
		     psock->rx_head || psock->rx_batch || psock->tx_kcm ||
		     !skb_queue_empty(&psock->rx_held) ||
		     !list_empty(&psock->tx_directed));
	consume_skb(psock->view);
	if (psock->prog)
		bpf_prog_put(psock->prog);
	fput(psock->file);
	kcm_psock_free_tls(psock);
	kfree(psock);
}

void kcm_psock_put(struct kcm_psock *psock)
{
	kref_put(&psock->ref, kcm_psock_free);
}

/* Adds psock's counters to sum.  Under mux->lock. */
void kcm_psock_stats_read(const struct kcm_psock *psock,
			  struct kcm_psock_stats *sum)
{
	const struct kcm_parser_stats *rx = &psock->rx_stats;
	u64 aborts, mem_fail, need_more, too_big, timeouts;
	unsigned int start;

	lockdep_assert_held(&psock->mux->lock);
	sum->rx_msgs += psock->rx_msgs;
	sum->rx_bytes += psock->rx_bytes;
	sum->reserved += psock->reserved;
	sum->unreserved += psock->unreserved;
	do {
		start = u64_stats_fetch_begin(&rx->syncp);
		aborts = u64_stats_read(&rx->aborts);
		mem_fail = u64_stats_read(&rx->mem_fail);
		need_more = u64_stats_read(&rx->need_more);
		too_big = u64_stats_read(&rx->too_big);
		timeouts = u64_stats_read(&rx->timeouts);
	} while (u64_stats_fetch_retry(&rx->syncp, start));
	sum->rx_aborts += aborts;
	sum->rx_mem_fail += mem_fail;
	sum->rx_need_more += need_more;
	sum->rx_too_big += too_big;
	sum->rx_timeouts += timeouts;
	kcm_tx_stats_read(&psock->tx_stats, &sum->tx_msgs, &sum->tx_bytes,
			  &sum->tx_aborts);
}

void kcm_psock_stats_add(struct kcm_psock_stats *to,
			 const struct kcm_psock_stats *from)
{
	to->rx_msgs += from->rx_msgs;
	to->rx_bytes += from->rx_bytes;
	to->tx_msgs += from->tx_msgs;
	to->tx_bytes += from->tx_bytes;
	to->reserved += from->reserved;
	to->unreserved += from->unreserved;
	to->rx_aborts += from->rx_aborts;
	to->tx_aborts += from->tx_aborts;
	to->rx_mem_fail += from->rx_mem_fail;
	to->rx_need_more += from->rx_need_more;
	to->rx_too_big += from->rx_too_big;
	to->rx_timeouts += from->rx_timeouts;
}

/* Why sk cannot be attached to kcm's mux, or 0. */
static int kcm_psock_check(struct kcm_sock *kcm, struct sock *sk)
{
	if ((sk->sk_family != AF_INET && sk->sk_family != AF_INET6) ||
	    sk->sk_type != SOCK_STREAM || sk->sk_protocol != IPPROTO_TCP)
		return -EOPNOTSUPP;
	if (sk->sk_state == TCP_LISTEN || sk->sk_state == TCP_CLOSE)
		return -EOPNOTSUPP;
	if (!net_eq(sock_net(sk), sock_net(&kcm->sk)))
		return -EINVAL;
	return 0;
}

/* sk's ULP is kTLS. */
static bool kcm_psock_has_tls(struct sock *sk)
{
	return inet_csk_has_ulp(sk) &&
	       !strcmp(inet_csk(sk)->icsk_ulp_ops->name, "tls");
}

/*
 * What a ULP on sk means for its psock: none, or kTLS in software keyed to
 * send (TLS_TX), to receive (TLS_RX) or both, is attached; any other ULP,
 * kTLS without keys or offloaded to a device, is refused (EALREADY).
 * kTLS's sendmsg then carries the messages, and its plaintext is parsed
 * (kcm_tls.c): the psock gets its kTLS side (struct kcm_psock_tls).
 */
static int kcm_psock_check_ulp(struct kcm_psock *psock)
{
	struct sock *sk = psock->sk;
	const struct tls_context *tls;

	sock_owned_by_me(sk);
	if (!inet_csk_has_ulp(sk))
		return 0;
	if (!kcm_psock_has_tls(sk))
		return -EALREADY;
	tls = tls_get_ctx(sk);
	if ((tls->tx_conf != TLS_SW && tls->tx_conf != TLS_BASE) ||
	    (tls->rx_conf != TLS_SW && tls->rx_conf != TLS_BASE) ||
	    (tls->tx_conf == TLS_BASE && tls->rx_conf == TLS_BASE))
		return -EALREADY;
	psock->tls = kzalloc(sizeof(*psock->tls), GFP_KERNEL);
	if (!psock->tls)
		return -ENOMEM;
	psock->tls->tx = tls->tx_conf == TLS_SW;
	psock->tls->rx = tls->rx_conf == TLS_SW;
	mutex_init(&psock->tls->tx_lock);
	return 0;
}

/*
 * A ULP was installed on psock's socket after attach, or kTLS keyed in a
 * direction it was not keyed in then: the stream is read or written by
 * another layer now.  A ULP cannot be removed, nor kTLS's keys.  Under the
 * TCP socket lock, which setsockopt holds.
 */
bool kcm_psock_ulp_changed(struct kcm_psock *psock)
{
	struct sock *sk = psock->sk;
	const struct tls_context *tls;

	lockdep_assert(lockdep_sock_is_held(sk));
	if (!inet_csk_has_ulp(sk))
		return false;
	if (!psock->tls)
		return true;
	tls = tls_get_ctx(sk);
	return tls->tx_conf != (psock->tls->tx ? TLS_SW : TLS_BASE) ||
	       tls->rx_conf != (psock->tls->rx ? TLS_SW : TLS_BASE);
}

/*
 * Takes over sk's callbacks, unless another user has them, the mux has the
 * socket already (disconnected, not yet unattached), or it is no longer
 * connected.  Under sk's process lock, which a disconnect holds too: a
 * socket disconnected before is refused, never hooked while closed.
 *
 * The peer's urgent bytes stay in the stream (SO_OOBINLINE) while attached:
 * otherwise TCP may step over an urgent byte that begins a message the
 * parser has not taken yet.
 */
static int kcm_psock_hook(struct kcm_psock *psock)
{
	struct sock *sk = psock->sk;
	int err;

	sock_owned_by_me(sk);
	if (sk->sk_state == TCP_LISTEN || sk->sk_state == TCP_CLOSE)
		return -EOPNOTSUPP;
	if (kcm_mux_has_cookie(psock->mux, psock->cookie))
		return -EALREADY;

	err = kcm_psock_check_ulp(psock);
	if (err)
		return err;

	write_lock_bh(&sk->sk_callback_lock);
	if (sk->sk_user_data) {
		write_unlock_bh(&sk->sk_callback_lock);
		return -EALREADY;
	}
	psock->saved_data_ready = sk->sk_data_ready;
	psock->saved_write_space = sk->sk_write_space;
	psock->saved_state_change = sk->sk_state_change;
	psock->saved_error_report = sk->sk_error_report;
	psock->saved_urginline = sock_flag(sk, SOCK_URGINLINE);
	sock_set_flag(sk, SOCK_URGINLINE);
	psock->established = sk->sk_state != TCP_SYN_SENT;
	sk->sk_user_data = psock;
	/* kTLS reads the records: it keeps its data-ready callback. */
	if (kcm_psock_tls_rx(psock))
		kcm_tls_rx_hook(psock);
	else
		WRITE_ONCE(sk->sk_data_ready, kcm_psock_data_ready);
	WRITE_ONCE(sk->sk_write_space, kcm_psock_write_space);
	WRITE_ONCE(sk->sk_state_change, kcm_psock_state_change);
	WRITE_ONCE(sk->sk_error_report, kcm_psock_error_report);
	write_unlock_bh(&sk->sk_callback_lock);
	return 0;
}

/*
 * kTLS keyed since attach (the psock failed then) saved our data-ready or
 * write-space callback as the one it calls after its own, and put its own
 * on sk: its saved one is given back, and sk keeps kTLS's.  Under the
 * socket's process lock, which kTLS's setsockopt holds too.
 */
static void kcm_psock_unhook_tls(struct kcm_psock *psock)
{
	struct sock *sk = psock->sk;
	struct tls_context *tls;

	if (!kcm_psock_has_tls(sk))
		return;
	tls = tls_get_ctx(sk);
	if (tls->sk_write_space == kcm_psock_write_space)
		WRITE_ONCE(tls->sk_write_space, psock->saved_write_space);
	if (tls->rx_conf == TLS_SW &&
	    tls_sw_ctx_rx(tls)->saved_data_ready == kcm_psock_data_ready)
		WRITE_ONCE(tls_sw_ctx_rx(tls)->saved_data_ready,
			   psock->saved_data_ready);
}

/* Gives sk's callbacks back, if psock still has them: a disconnect gave
 * them back already, and the socket may have been attached again since.
 */
static void kcm_psock_unhook(struct kcm_psock *psock)
{
	struct sock *sk = psock->sk;

	write_lock_bh(&sk->sk_callback_lock);
	if (sk->sk_user_data == psock) {
		sk->sk_user_data = NULL;
		if (kcm_psock_tls_rx(psock))
			kcm_tls_rx_unhook(psock);
		if (sk->sk_data_ready == kcm_psock_data_ready)
			WRITE_ONCE(sk->sk_data_ready, psock->saved_data_ready);
		if (sk->sk_write_space == kcm_psock_write_space)
			WRITE_ONCE(sk->sk_write_space,
				   psock->saved_write_space);
		kcm_psock_unhook_tls(psock);
		WRITE_ONCE(sk->sk_state_change, psock->saved_state_change);
		WRITE_ONCE(sk->sk_error_report, psock->saved_error_report);
		if (!psock->saved_urginline)
			sock_reset_flag(sk, SOCK_URGINLINE);
	}
	write_unlock_bh(&sk->sk_callback_lock);
}

/*
 * Attaches TCP socket fd, framed by program bpf_fd or, if len_framing is
 * not NULL, by that length field.
 */
int kcm_psock_attach(struct kcm_sock *kcm, int fd, int bpf_fd,
		     const struct kcm_len_framing *len_framing)
{
	struct kcm_mux *mux = kcm->mux;
	struct kcm_net *knet = mux->knet;
	struct bpf_prog *prog = NULL;
	struct kcm_psock *psock;
	struct socket *sock;
	int err;

	/* Linux's kcm.ko answers ENOENT for an fd that is not a socket. */
	sock = sockfd_lookup(fd, &err);
	if (!sock)
		return -ENOENT;

	if (!len_framing) {
		prog = bpf_prog_get_type(bpf_fd, BPF_PROG_TYPE_SOCKET_FILTER);
		if (IS_ERR(prog)) {
			err = PTR_ERR(prog);
			goto err_put_sock;
		}
	}

	err = kcm_psock_check(kcm, sock->sk);
	if (err)
		goto err_put_prog;

	err = -ENOMEM;
	psock = kzalloc(sizeof(*psock), GFP_KERNEL);
	if (!psock)
		goto err_put_prog;
	if (prog) {
		psock->view = alloc_skb(KCM_PSOCK_VIEW_SIZE, GFP_KERNEL);
		if (!psock->view)
			goto err_free_psock;
	} else {
		psock->len_framing = *len_framing;
	}

	kref_init(&psock->ref);
	psock->mux = mux;
	psock->sk = sock->sk;
	psock->file = sock->file;
	psock->prog = prog;
	psock->cookie = kcm_psock_cookie(sock->sk);
	INIT_LIST_HEAD(&psock->rx_node);
	__skb_queue_head_init(&psock->rx_held);
	INIT_LIST_HEAD(&psock->tx_node);
	INIT_LIST_HEAD(&psock->tx_directed);
	u64_stats_init(&psock->tx_stats.syncp);

	kcm_parser_init(psock);

	mutex_lock(&knet->lock);
	psock->index = knet->next_psock_index++;
	mutex_unlock(&knet->lock);

	lock_sock(sock->sk);
	err = kcm_psock_hook(psock);
	if (err) {
		release_sock(sock->sk);
		goto err_free_view;
	}

	/* Once on the mux, a clone's SIOCKCMUNATTACH may unattach and put
	 * the psock at any moment: keep it until we are done with it.
	 */
	kref_get(&psock->ref);
	err = kcm_mux_add_psock(mux, psock);
	if (err)
		goto err_unhook;

	/* The peer is gone already (CLOSE_WAIT, ...): nothing to send on. */
	if (!((1 << sock->sk->sk_state) &
	      (TCPF_ESTABLISHED | TCPF_SYN_SENT | TCPF_SYN_RECV)))
		kcm_psock_fail(psock, EPIPE);
	/* Parse what arrived before we were attached.  An unattach from
	 * now on waits for the socket lock to stop the parser, and then
	 * cancels this work (kcm_parser_done()).
	 */
	kcm_parser_start(psock);
	release_sock(sock->sk);
	kcm_psock_put(psock);
	return 0;

err_unhook:
	/* Callbacks since the hook may have queued a parser pass; nothing
	 * else took a reference (the socket stayed locked, the psock off the
	 * mux): it is freed whatever its count.
	 */
	kcm_parser_stop(psock);
	kcm_psock_unhook(psock);
	release_sock(sock->sk);
	kcm_parser_done(psock);
err_free_view:
	kcm_psock_free_tls(psock);
	kfree_skb(psock->view);
err_free_psock:
	kfree(psock);
err_put_prog:
	if (prog)
		bpf_prog_put(prog);
err_put_sock:
	sockfd_put(sock);
	return err;
}

/*
 * Gives the TCP socket back to user space.  The caller has claimed psock
 * (kcm_mux_claim_psock()), so nobody else unattaches it.
 */
void kcm_psock_unattach(struct kcm_psock *psock)
{
	struct sock *sk = psock->sk;

	WARN_ON_ONCE(!READ_ONCE(psock->unattached));

	/* Under the socket lock: a send in progress finishes first, and the
	 * transmit path sees unattached before it sends again.  The parser
	 * stops with the callbacks given back, in one hold of the lock: an
	 * attach of the socket (to this mux again, say), which takes the
	 * lock, cannot come between them and have a pass of ours, queued
	 * before, parse its stream.  A send through kTLS holds tx_lock, not
	 * the socket lock, throughout.
	 */
	if (psock->tls)
		mutex_lock(&psock->tls->tx_lock);
	lock_sock(sk);
	kcm_psock_unhook(psock);
	kcm_parser_stop(psock);
	release_sock(sk);
	if (psock->tls)
		mutex_unlock(&psock->tls->tx_lock);
	kcm_parser_done(psock);

	kcm_mux_remove_psock(psock->mux, psock);
	kcm_psock_put(psock);
}

int kcm_psock_unattach_fd(struct kcm_sock *kcm, int fd)
{
	struct kcm_psock *psock;
	struct socket *sock;
	int err;

	sock = sockfd_lookup(fd, &err);
	if (!sock)
		return -ENOENT;

	psock = kcm_mux_claim_psock(kcm->mux, kcm_psock_cookie(sock->sk));
	if (psock)
		kcm_psock_unattach(psock);
	sockfd_put(sock);
	return psock ? 0 : -ENOENT;
}
