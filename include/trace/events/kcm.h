/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Tracepoints of the Kernel Connection Multiplexor (subsystem kcm).
 *
 * A KCM socket is named by its index and a psock by its index, as in
 * /proc/net/kcm (kcm-N, psock-N); a psock's TCP socket also by its cookie
 * (SO_COOKIE, KCM_ORIGIN).  Off, each costs a static branch.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM kcm

#if !defined(_TRACE_KCM_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TRACE_KCM_H

#include <linux/tracepoint.h>

/* A whole message cut out of psock's stream. */
TRACE_EVENT(kcm_rx_parse,
	TP_PROTO(u32 psock, u64 cookie, u32 len),
	TP_ARGS(psock, cookie, len),
	TP_STRUCT__entry(
		__field(u32, psock)
		__field(u64, cookie)
		__field(u32, len)
	),
	TP_fast_assign(
		__entry->psock = psock;
		__entry->cookie = cookie;
		__entry->len = len;
	),
	TP_printk("psock=%u cookie=%llu len=%u", __entry->psock,
		  __entry->cookie, __entry->len)
);

/* Messages of psock queued on KCM socket kcm, or held (kcm=-1) because
 * no socket can take them: the parser pauses.
 */
TRACE_EVENT(kcm_rx_steer,
	TP_PROTO(u32 psock, s64 kcm, u32 msgs, u32 bytes),
	TP_ARGS(psock, kcm, msgs, bytes),
	TP_STRUCT__entry(
		__field(u32, psock)
		__field(s64, kcm)
		__field(u32, msgs)
		__field(u32, bytes)
	),
	TP_fast_assign(
		__entry->psock = psock;
		__entry->kcm = kcm;
		__entry->msgs = msgs;
		__entry->bytes = bytes;
	),
	TP_printk("psock=%u kcm=%lld msgs=%u bytes=%u", __entry->psock,
		  __entry->kcm, __entry->msgs, __entry->bytes)
);

/* psock's parser resumes: the mux no longer holds a message of it. */
TRACE_EVENT(kcm_rx_resume,
	TP_PROTO(u32 psock),
	TP_ARGS(psock),
	TP_STRUCT__entry(
		__field(u32, psock)
	),
	TP_fast_assign(
		__entry->psock = psock;
	),
	TP_printk("psock=%u", __entry->psock)
);

/* The application read msgs whole messages, bytes in all, on kcm. */
TRACE_EVENT(kcm_rx_read,
	TP_PROTO(u32 kcm, u32 msgs, u32 bytes),
	TP_ARGS(kcm, msgs, bytes),
	TP_STRUCT__entry(
		__field(u32, kcm)
		__field(u32, msgs)
		__field(u32, bytes)
	),
	TP_fast_assign(
		__entry->kcm = kcm;
		__entry->msgs = msgs;
		__entry->bytes = bytes;
	),
	TP_printk("kcm=%u msgs=%u bytes=%u", __entry->kcm, __entry->msgs,
		  __entry->bytes)
);

/* KCM socket kcm reserves psock for sending, or ends that (retry: its
 * message begun there goes again, elsewhere).
 */
DECLARE_EVENT_CLASS(kcm_tx_reservation,
	TP_PROTO(u32 kcm, u32 psock, bool retry),
	TP_ARGS(kcm, psock, retry),
	TP_STRUCT__entry(
		__field(u32, kcm)
		__field(u32, psock)
		__field(bool, retry)
	),
	TP_fast_assign(
		__entry->kcm = kcm;
		__entry->psock = psock;
		__entry->retry = retry;
	),
	TP_printk("kcm=%u psock=%u retry=%d", __entry->kcm, __entry->psock,
		  __entry->retry)
);

DEFINE_EVENT(kcm_tx_reservation, kcm_tx_reserve,
	TP_PROTO(u32 kcm, u32 psock, bool retry),
	TP_ARGS(kcm, psock, retry)
);

DEFINE_EVENT(kcm_tx_reservation, kcm_tx_unreserve,
	TP_PROTO(u32 kcm, u32 psock, bool retry),
	TP_ARGS(kcm, psock, retry)
);

/* A message of len bytes sent on kcm is all in psock's TCP socket. */
TRACE_EVENT(kcm_tx_sent,
	TP_PROTO(u32 kcm, u32 psock, u64 cookie, u32 len),
	TP_ARGS(kcm, psock, cookie, len),
	TP_STRUCT__entry(
		__field(u32, kcm)
		__field(u32, psock)
		__field(u64, cookie)
		__field(u32, len)
	),
	TP_fast_assign(
		__entry->kcm = kcm;
		__entry->psock = psock;
		__entry->cookie = cookie;
		__entry->len = len;
	),
	TP_printk("kcm=%u psock=%u cookie=%llu len=%u", __entry->kcm,
		  __entry->psock, __entry->cookie, __entry->len)
);

/* err is posted on psock's TCP socket; where: the function that failed it. */
TRACE_EVENT(kcm_psock_error,
	TP_PROTO(u32 psock, u64 cookie, int err, unsigned long where),
	TP_ARGS(psock, cookie, err, where),
	TP_STRUCT__entry(
		__field(u32, psock)
		__field(u64, cookie)
		__field(int, err)
		__field(unsigned long, where)
	),
	TP_fast_assign(
		__entry->psock = psock;
		__entry->cookie = cookie;
		__entry->err = err;
		__entry->where = where;
	),
	TP_printk("psock=%u cookie=%llu err=%d where=%pS", __entry->psock,
		  __entry->cookie, __entry->err, (void *)__entry->where)
);

#endif /* _TRACE_KCM_H */

#include <trace/define_trace.h>
