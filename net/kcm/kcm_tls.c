// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel Connection Multiplexor: receiving through kTLS.
 *
 * On a TCP socket that kTLS decrypts (TLS_RX), the TCP receive queue holds
 * records, which kTLS's own parser reads: the psock leaves the socket's
 * data-ready callback to kTLS and frames the plaintext instead.
 *
 * kTLS calls the data-ready callback it replaced (TCP's, which wakes the
 * socket's wait queue with EPOLLIN) once a record is whole: an entry of
 * the psock's on that wait queue queues psock->rx_work then.  The work
 * reads the plaintext kTLS has ready with the socket's own recvmsg, which
 * takes the socket lock itself: Linux 6.12 has read_sock for kTLS, Linux
 * 6.1 does not, and recvmsg works on both.  It reads with MSG_PEEK into
 * pages of its own, frames them under the socket lock with the parser that
 * serves TCP sockets (kcm_parser_pass_plain(): skbs numbered from 0 as TCP
 * numbers its own), and only then consumes from kTLS the bytes of the
 * messages the pass took, with a read into a scratch buffer.  So a message
 * not yet whole stays in kTLS, and an unattach leaves it there for the
 * application's recv(), as TCP's bytes are left in TCP.  Passes run only
 * from the work, one at a time: no second pass peeks what the first took
 * before it is consumed, and unattach waits for the work to finish.
 *
 * kTLS hands a record of another type than data (an alert, a handshake
 * message) to a reader alone: the peer's close_notify ends the stream as
 * a TCP close does (EPIPE), anything else fails it (EPROTO).  A record
 * that does not decrypt is kTLS's EBADMSG, which it posts itself; an error
 * kTLS takes off the socket to give to its reader (one the peer's close or
 * reset posted) is posted again, for the application to see.
 */

#include <linux/mm.h>
#include <linux/net.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/socket.h>
#include <linux/uio.h>
#include <net/kcm.h>
#include <net/sock.h>
#include <net/tcp.h>
#include <net/tls.h>

/*
 * The plaintext a pass peeks at least: many small messages, or the head
 * of a long one, whose length the framing then tells (a pass peeks a whole
 * message, which the parser bounds by the receive buffer).
 */
#define KCM_TLS_PEEK_MIN	65536

/* Pages of plaintext per skb of a pass. */
#define KCM_TLS_SKB_PAGES	16

/* The scratch buffer the bytes of messages taken are consumed into. */
#define KCM_TLS_SCRATCH		16384

#define KCM_TLS_ALERT		21
#define KCM_TLS_DATA		23
#define KCM_TLS_CLOSE_NOTIFY	0

/* kTLS has a record ready: a pass reads it.  The socket's wait queue
 * lock is held; any context.
 */
static int kcm_tls_wake(struct wait_queue_entry *wait, unsigned int mode,
			int sync, void *key)
{
	struct kcm_psock *psock = wait->private;
	__poll_t events = key_to_poll(key);

	if (events && !(events & (EPOLLIN | EPOLLRDNORM)))
		return 0;
	if (!READ_ONCE(psock->rx_stopped) && !READ_ONCE(psock->rx_paused))
		queue_work(kcm_wq, &psock->rx_work);
	return 0;
}

/* Starts listening for kTLS's records.  Under the socket's process lock
 * and its sk_callback_lock, at attach.
 */
void kcm_tls_rx_hook(struct kcm_psock *psock)
{
	struct wait_queue_entry *wait = &psock->tls->rx_wait;

	init_waitqueue_func_entry(wait, kcm_tls_wake);
	wait->private = psock;
	add_wait_queue(sk_sleep(psock->sk), wait);
}

/* Stops listening: no wake runs after this returns. */
void kcm_tls_rx_unhook(struct kcm_psock *psock)
{
	remove_wait_queue(sk_sleep(psock->sk), &psock->tls->rx_wait);
}

/*
 * Peeks up to npages pages of plaintext, into the pages of bv; sets *type
 * to the record type kTLS gave.  The bytes peeked, or -errno.
 */
static int kcm_tls_peek(struct kcm_psock *psock, struct bio_vec *bv,
			unsigned int npages, u8 *type)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(u8))];
	} cmsg;
	struct msghdr msg = {
		.msg_control = &cmsg,
		.msg_controllen = sizeof(cmsg),
	};
	struct socket *sock = psock->sk->sk_socket;
	int ret;

	iov_iter_bvec(&msg.msg_iter, ITER_DEST, bv, npages,
		      (size_t)npages * PAGE_SIZE);
	ret = sock_recvmsg(sock, &msg, MSG_PEEK | MSG_DONTWAIT);
	*type = KCM_TLS_DATA;
	if (ret > 0 && msg.msg_controllen < sizeof(cmsg))
		*type = *(u8 *)CMSG_DATA(&cmsg.hdr);
	return ret;
}

/*
 * Makes len bytes of plaintext in the pages of bv a queue of skbs, the
 * first byte numbered 0; the pages past them are freed.  The queue holds
 * the pages' references.  0 or -ENOMEM (the queue then holds what it
 * could, the pages it could not are freed).
 */
static int kcm_tls_queue(struct sk_buff_head *queue, struct bio_vec *bv,
			 unsigned int npages, u32 len)
{
	struct sk_buff *skb = NULL;
	unsigned int i;
	u32 seq = 0;
	int err = 0;

	for (i = 0; i < npages; i++) {
		u32 n = min_t(u32, len - seq, PAGE_SIZE);

		if (!n || err) {
			put_page(bv[i].bv_page);
			continue;
		}
		if (!skb || skb_shinfo(skb)->nr_frags == KCM_TLS_SKB_PAGES) {
			skb = alloc_skb(0, GFP_KERNEL);
			if (!skb) {
				err = -ENOMEM;
				put_page(bv[i].bv_page);
				continue;
			}
			TCP_SKB_CB(skb)->seq = seq;
			TCP_SKB_CB(skb)->tcp_flags = 0;
			__skb_queue_tail(queue, skb);
		}
		skb_fill_page_desc(skb, skb_shinfo(skb)->nr_frags,
				   bv[i].bv_page, 0, n);
		skb->len += n;
		skb->data_len += n;
		skb->truesize += PAGE_SIZE;
		seq += n;
		TCP_SKB_CB(skb)->end_seq = seq;
	}
	return err;
}

/* Reads len bytes of plaintext from kTLS and drops them: those of the
 * messages a pass took.  0 or -errno.
 */
static int kcm_tls_consume(struct kcm_psock *psock, u32 len)
{
	struct socket *sock = psock->sk->sk_socket;
	void *scratch;
	int ret = 0;

	scratch = kmalloc(min_t(u32, len, KCM_TLS_SCRATCH), GFP_KERNEL);
	if (!scratch)
		return -ENOMEM;
	while (len) {
		struct kvec kv = {
			.iov_base = scratch,
			.iov_len = min_t(u32, len, KCM_TLS_SCRATCH),
		};
		struct msghdr msg = {};

		iov_iter_kvec(&msg.msg_iter, ITER_DEST, &kv, 1, kv.iov_len);
		ret = sock_recvmsg(sock, &msg, MSG_DONTWAIT);
		if (ret <= 0) {
			ret = ret ?: -EPIPE;
			break;
		}
		len -= ret;
		ret = 0;
	}
	kfree(scratch);
	return ret;
}

/*
 * A record that is not data came first: the peer's close_notify ends the
 * stream as its close would; anything else fails it.  Under the socket's
 * process lock.
 */
static void kcm_tls_control(struct kcm_psock *psock, u8 type,
			    struct bio_vec *bv, int len)
{
	const u8 *alert = page_address(bv[0].bv_page);

	if (type == KCM_TLS_ALERT && len == 2 &&
	    alert[1] == KCM_TLS_CLOSE_NOTIFY)
		kcm_parser_fail(psock, -EPIPE);
	else
		kcm_parser_fail(psock, -EPROTO);
}

/*
 * kTLS's recvmsg failed with err.  An error it took off the socket (kTLS
 * hands a pending one to its reader) is the application's: it goes back.
 * Under the socket's process lock.
 */
static void kcm_tls_error(struct kcm_psock *psock, int err)
{
	struct sock *sk = psock->sk;

	if (!READ_ONCE(sk->sk_err)) {
		WRITE_ONCE(sk->sk_err, -err);
		sk_error_report(sk);
	}
	kcm_parser_fail(psock, err);
}

/* The pass may run: neither stopped nor held by the mux. */
static bool kcm_tls_may_run(struct kcm_psock *psock)
{
	return !READ_ONCE(psock->rx_stopped) && !READ_ONCE(psock->rx_paused);
}

/* npages pages to peek into, or NULL. */
static struct bio_vec *kcm_tls_pages(unsigned int npages)
{
	struct bio_vec *bv;
	unsigned int i;

	bv = kvmalloc_array(npages, sizeof(*bv), GFP_KERNEL);
	if (!bv)
		return NULL;
	for (i = 0; i < npages; i++) {
		struct page *page = alloc_page(GFP_KERNEL);

		if (!page)
			goto err_put_pages;
		bvec_set_page(&bv[i], page, PAGE_SIZE, 0);
	}
	return bv;

err_put_pages:
	while (i--)
		put_page(bv[i].bv_page);
	kvfree(bv);
	return NULL;
}

static void kcm_tls_pages_free(struct bio_vec *bv, unsigned int npages)
{
	unsigned int i;

	for (i = 0; i < npages; i++)
		put_page(bv[i].bv_page);
	kvfree(bv);
}

/*
 * Frames the len bytes of plaintext peeked into the npages pages of bv,
 * and consumes from kTLS those of the messages taken.  The pages go to
 * the skbs of the pass, or are freed.  True if another pass is to run:
 * memory ran out, or the peek was full and more may be ready.
 */
static bool kcm_tls_frame(struct kcm_psock *psock, struct bio_vec *bv,
			  unsigned int npages, u32 len)
{
	struct sock *sk = psock->sk;
	struct sk_buff_head queue;
	u32 taken = 0;
	int err;

	__skb_queue_head_init(&queue);
	err = kcm_tls_queue(&queue, bv, npages, len);
	lock_sock(sk);
	if (!err && kcm_tls_may_run(psock))
		err = kcm_parser_pass_plain(psock, &queue, len, &taken);
	release_sock(sk);
	__skb_queue_purge(&queue);

	if (taken && kcm_tls_consume(psock, taken)) {
		lock_sock(sk);
		kcm_parser_fail(psock, -EPROTO);
		release_sock(sk);
		return false;
	}
	return err == -ENOMEM || (taken && len == npages * PAGE_SIZE);
}

/*
 * A pass over the plaintext kTLS has ready, from psock->rx_work.  The
 * socket is not locked: kTLS's recvmsg takes the lock itself.
 */
void kcm_tls_rx_work(struct kcm_psock *psock)
{
	struct sock *sk = psock->sk;
	unsigned int npages;
	struct bio_vec *bv;
	u32 want;
	int ret;
	u8 type;

	lock_sock(sk);
	want = max_t(u32, psock->rx_len, KCM_TLS_PEEK_MIN);
	release_sock(sk);
	if (!kcm_tls_may_run(psock))
		return;

	npages = DIV_ROUND_UP(want, PAGE_SIZE);
	bv = kcm_tls_pages(npages);
	if (!bv) {
		queue_work(kcm_wq, &psock->rx_work);
		return;
	}
	ret = kcm_tls_peek(psock, bv, npages, &type);
	if (ret > 0 && type == KCM_TLS_DATA) {
		if (kcm_tls_frame(psock, bv, npages, ret))
			queue_work(kcm_wq, &psock->rx_work);
		kvfree(bv);
		return;
	}

	lock_sock(sk);
	if (kcm_tls_may_run(psock)) {
		if (ret > 0)
			kcm_tls_control(psock, type, bv, ret);
		else if (ret < 0 && ret != -EAGAIN)
			kcm_tls_error(psock, ret);
	}
	release_sock(sk);
	kcm_tls_pages_free(bv, npages);
}
