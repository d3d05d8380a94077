// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel Connection Multiplexor: the AF_KCM socket family.
 *
 * Socket creation and release, SIOCKCMCLONE and the other ioctls, socket
 * options, poll, and the module's registration.  The receive path is in
 * kcm_rx.c, the transmit path in kcm_tx.c, steering in kcm_mux.c.
 */

#include <linux/file.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/poll.h>
#include <linux/uaccess.h>
#include <net/kcm.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>

#define CREATE_TRACE_POINTS
#include <trace/events/kcm.h>

#include "compat.h"

unsigned int kcm_net_id __read_mostly;
struct workqueue_struct *kcm_wq __read_mostly;

static struct proto kcm_proto = {
	.name		= "KCM",
	.owner		= THIS_MODULE,
	.obj_size	= sizeof(struct kcm_sock),
};

static const struct proto_ops kcm_ops;

static void kcm_sock_destruct(struct sock *sk)
{
	struct kcm_sock *kcm = kcm_sk(sk);

	WARN_ON_ONCE(kcm->mux || kcm->tx_psock || kcm->tx_partial ||
		     !skb_queue_empty(&sk->sk_write_queue));
	skb_queue_purge(&sk->sk_receive_queue);
}

/* Makes sk a KCM socket of mux; the caller holds the mux alive. */
static void kcm_sock_init(struct sock *sk, struct socket *sock,
			  struct kcm_mux *mux)
{
	struct kcm_sock *kcm = kcm_sk(sk);

	sock_init_data(sock, sk);
	sk->sk_destruct = kcm_sock_destruct;
	sk->sk_write_space = kcm_tx_write_space;
	INIT_LIST_HEAD(&kcm->rx_node);
	INIT_LIST_HEAD(&kcm->tx_node);
	INIT_WORK(&kcm->tx_work, kcm_tx_work);
	u64_stats_init(&kcm->tx_stats.syncp);
	kcm_mux_add_sock(mux, kcm);
}

static __net_init int kcm_net_init(struct net *net)
{
	struct kcm_net *knet = net_generic(net, kcm_net_id);

	mutex_init(&knet->lock);
	INIT_LIST_HEAD(&knet->muxes);
	INIT_LIST_HEAD(&knet->gone.psocks);
	return kcm_proc_init_net(net);
}

static __net_exit void kcm_net_exit(struct net *net)
{
	struct kcm_net *knet = net_generic(net, kcm_net_id);

	kcm_proc_exit_net(net);
	/* Every KCM socket holds its netns, so none can be left. */
	WARN_ON(!list_empty(&knet->muxes));
}

static struct pernet_operations kcm_net_ops = {
	.init	= kcm_net_init,
	.exit	= kcm_net_exit,
	.id	= &kcm_net_id,
	.size	= sizeof(struct kcm_net),
};

/*
 * SIOCKCMCLONE makes its socket with __sock_create(), as socket() does, so
 * that a clone passes the same security hooks (creation, which a policy may
 * refuse, and labelling) and audit as any socket.  kcm_create() then joins
 * the cloned socket's mux instead of making one: kcm_clone_task is the task
 * cloning, kcm_clone_mux that mux, both set under kcm_clone_lock around the
 * call (one clone at a time), kcm_clone_mux read by that task only.
 */
static DEFINE_MUTEX(kcm_clone_lock);
static struct task_struct *kcm_clone_task;
static struct kcm_mux *kcm_clone_mux;

/* The mux a new socket joins: a new one, or for a clone the cloned one's. */
static struct kcm_mux *kcm_create_mux(struct net *net)
{
	if (READ_ONCE(kcm_clone_task) == current)
		return kcm_clone_mux;
	return kcm_mux_create(net);
}

static int kcm_create(struct net *net, struct socket *sock, int protocol,
		      int kern)
{
	struct kcm_mux *mux;
	struct sock *sk;

	if (sock->type != SOCK_DGRAM && sock->type != SOCK_SEQPACKET)
		return -ESOCKTNOSUPPORT;
	if (protocol != KCMPROTO_CONNECTED)
		return -EPROTONOSUPPORT;

	sk = sk_alloc(net, PF_KCM, GFP_KERNEL, &kcm_proto, kern);
	mux = sk ? kcm_create_mux(net) : NULL;
	if (!mux) {
		if (sk)
			sk_free(sk);
		return -ENOMEM;
	}

	sock->ops = &kcm_ops;
	kcm_sock_init(sk, sock, mux);
	return 0;
}

static const struct net_proto_family kcm_family = {
	.family	= PF_KCM,
	.create	= kcm_create,
	.owner	= THIS_MODULE,
};

static int kcm_release(struct socket *sock)
{
	struct sock *sk = sock->sk;
	struct kcm_sock *kcm;

	if (!sk)
		return 0;
	kcm = kcm_sk(sk);

	kcm_tx_release(kcm);
	kcm_mux_remove_sock(kcm);
	sock_orphan(sk);

	sock->sk = NULL;
	sock_put(sk);
	return 0;
}

/* SIOCKCMCLONE: a new socket of the same type on the same mux. */
static int kcm_clone(struct socket *osock, struct kcm_clone __user *uinfo)
{
	struct kcm_clone info = {};
	struct socket *newsock;
	struct file *file;
	int fd, err;

	fd = get_unused_fd_flags(0);
	if (fd < 0)
		return fd;

	mutex_lock(&kcm_clone_lock);
	kcm_clone_mux = kcm_sk(osock->sk)->mux;
	WRITE_ONCE(kcm_clone_task, current);
	err = __sock_create(sock_net(osock->sk), PF_KCM, osock->type,
			    KCMPROTO_CONNECTED, &newsock, 0);
	WRITE_ONCE(kcm_clone_task, NULL);
	kcm_clone_mux = NULL;
	mutex_unlock(&kcm_clone_lock);
	if (err)
		goto err_put_fd;

	/* On failure sock_alloc_file() releases newsock, and with it sk. */
	file = sock_alloc_file(newsock, 0, NULL);
	if (IS_ERR(file)) {
		err = PTR_ERR(file);
		goto err_put_fd;
	}

	info.fd = fd;
	if (copy_to_user(uinfo, &info, sizeof(info))) {
		err = -EFAULT;
		goto err_fput;
	}
	fd_install(fd, file);
	return 0;

err_fput:
	fput(file);
err_put_fd:
	put_unused_fd(fd);
	return err;
}

static int kcm_ioctl(struct socket *sock, unsigned int cmd, unsigned long arg)
{
	struct kcm_sock *kcm = kcm_sk(sock->sk);
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case SIOCKCMATTACH: {
		struct kcm_attach info;

		if (copy_from_user(&info, uarg, sizeof(info)))
			return -EFAULT;
		return kcm_psock_attach(kcm, info.fd, info.bpf_fd, NULL);
	}
	case SIOCKCMATTACHLEN: {
		struct kcm_len_framing framing;
		struct kcm_attach_len info;
		int err;

		if (copy_from_user(&info, uarg, sizeof(info)))
			return -EFAULT;
		err = kcm_parser_len_init(&framing, &info);
		if (err)
			return err;
		return kcm_psock_attach(kcm, info.fd, -1, &framing);
	}
	case SIOCKCMUNATTACH: {
		struct kcm_unattach info;

		if (copy_from_user(&info, uarg, sizeof(info)))
			return -EFAULT;
		return kcm_psock_unattach_fd(kcm, info.fd);
	}
	case SIOCKCMCLONE:
		return kcm_clone(sock, uarg);
	default:
		return -ENOIOCTLCMD;
	}
}

static int kcm_setsockopt(struct socket *sock, int level, int optname,
			  sockptr_t optval, unsigned int optlen)
{
	struct kcm_sock *kcm = kcm_sk(sock->sk);
	int val;

	if (level != SOL_KCM)
		return -ENOPROTOOPT;
	if (optlen < sizeof(int))
		return -EINVAL;
	if (copy_from_sockptr(&val, optval, sizeof(int)))
		return -EFAULT;

	switch (optname) {
	case KCM_RECV_DISABLE:
		lock_sock(&kcm->sk);
		kcm_mux_rx_set_disabled(kcm, val != 0);
		release_sock(&kcm->sk);
		return 0;
	case KCM_RECV_ORIGIN:
		lock_sock(&kcm->sk);
		WRITE_ONCE(kcm->rx_origin, val != 0);
		release_sock(&kcm->sk);
		return 0;
	case KCM_RECV_BATCH:
		if (sock->type != SOCK_DGRAM)
			return -EOPNOTSUPP;
		lock_sock(&kcm->sk);
		WRITE_ONCE(kcm->rx_batch_recv, val != 0);
		release_sock(&kcm->sk);
		return 0;
	default:
		return -ENOPROTOOPT;
	}
}

/* The value of a SOL_KCM option, or -ENOPROTOOPT. */
static int kcm_option_value(struct kcm_sock *kcm, int optname, int *val)
{
	switch (optname) {
	case KCM_RECV_DISABLE:
		*val = READ_ONCE(kcm->rx_disabled);
		return 0;
	case KCM_RECV_ORIGIN:
		*val = READ_ONCE(kcm->rx_origin);
		return 0;
	case KCM_RECV_BATCH:
		*val = READ_ONCE(kcm->rx_batch_recv);
		return 0;
	default:
		return -ENOPROTOOPT;
	}
}

static int kcm_getsockopt(struct socket *sock, int level, int optname,
			  char __user *optval, int __user *optlen)
{
	unsigned int size;
	int len, val;

	if (level != SOL_KCM ||
	    kcm_option_value(kcm_sk(sock->sk), optname, &val))
		return -ENOPROTOOPT;
	if (get_user(len, optlen))
		return -EFAULT;
	/* A shorter buffer gets the first bytes of the int. */
	size = min_t(unsigned int, len, sizeof(val));
	if (len < 0)
		return -EINVAL;
	if (copy_to_user(optval, &val, size) || put_user(size, optlen))
		return -EFAULT;
	return 0;
}

static __poll_t kcm_poll(struct file *file, struct socket *sock,
			 poll_table *wait)
{
	struct sock *sk = sock->sk;
	__poll_t mask = 0;

	sock_poll_wait(file, sock, wait);

	if (READ_ONCE(sk->sk_err))
		mask |= EPOLLERR;
	if (!skb_queue_empty_lockless(&sk->sk_receive_queue))
		mask |= EPOLLIN | EPOLLRDNORM;
	if (sk_stream_memory_free(sk))
		mask |= EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND;
	else
		sk_set_bit(SOCKWQ_ASYNC_NOSPACE, sk);
	return mask;
}

/*
 * SOCK_DGRAM and SOCK_SEQPACKET differ only where the code tests sock->type.
 * KCM sockets have no address: the calls about addresses are refused.
 */
static const struct proto_ops kcm_ops = {
	.family		= PF_KCM,
	.owner		= THIS_MODULE,
	.release	= kcm_release,
	.ioctl		= kcm_ioctl,
	.setsockopt	= kcm_setsockopt,
	.getsockopt	= kcm_getsockopt,
	.poll		= kcm_poll,
	.sendmsg	= kcm_tx_sendmsg,
	.recvmsg	= kcm_rx_recvmsg,
	.splice_read	= kcm_rx_splice_read,
	KCM_COMPAT_SENDPAGE
	.bind		= sock_no_bind,
	.connect	= sock_no_connect,
	.listen		= sock_no_listen,
	.accept		= sock_no_accept,
	.getname	= sock_no_getname,
	.socketpair	= sock_no_socketpair,
	.shutdown	= sock_no_shutdown,
	.mmap		= sock_no_mmap,
};

static int __init kcm_init(void)
{
	int err;

	kcm_wq = alloc_workqueue("kcm", WQ_UNBOUND, 0);
	if (!kcm_wq)
		return -ENOMEM;

	err = kcm_rxbuf_init();
	if (err)
		goto err_destroy_wq;

	/* Namespaces first: a socket can be made as soon as the family is. */
	err = register_pernet_subsys(&kcm_net_ops);
	if (err)
		goto err_rxbuf_exit;

	err = proto_register(&kcm_proto, 1);
	if (err)
		goto err_unregister_pernet;

	err = sock_register(&kcm_family);
	if (err)
		goto err_unregister_proto;

	return 0;

err_unregister_proto:
	proto_unregister(&kcm_proto);
err_unregister_pernet:
	unregister_pernet_subsys(&kcm_net_ops);
err_rxbuf_exit:
	kcm_rxbuf_exit();
err_destroy_wq:
	destroy_workqueue(kcm_wq);
	return err;
}

static void __exit kcm_exit(void)
{
	sock_unregister(PF_KCM);
	proto_unregister(&kcm_proto);
	unregister_pernet_subsys(&kcm_net_ops);
	kcm_rxbuf_exit();
	destroy_workqueue(kcm_wq);
}

module_init(kcm_init);
module_exit(kcm_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Kernel Connection Multiplexor (AF_KCM)");
/*
 * The package's version: an installed module replaces only an older one.
 * net/kcm/Makefile defines it.
 */
#ifndef KCM_VERSION
#error "KCM_VERSION undefined: build with net/kcm/Makefile"
#endif
MODULE_VERSION(KCM_VERSION);
MODULE_ALIAS_NETPROTO(PF_KCM);
