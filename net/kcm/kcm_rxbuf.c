// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel Connection Multiplexor: the buffers of full receive batches.
 *
 * The parser (kcm_parser.c) copies the small messages of a pass into a
 * batch, a linear skb that lives until the reader has read its last
 * message.  A full batch is KCM_RX_BATCH_MAX bytes: from the slab, an
 * order-2 page allocation that the kernel clears whole before it is
 * written (init_on_alloc, on in Debian's kernels), then freed by the
 * reader.  The profile of the 512-byte stream put that at more than the
 * copy of the messages into it.  A full batch takes its buffer from the
 * page pool of the CPU the parser runs on instead, and freeing the batch
 * gives the buffer back to that pool: a buffer is cleared once, when the
 * pool first takes it from the page allocator.  What an earlier batch left
 * in it is never read: a batch is read only up to its length, all of it
 * written by the parser.
 *
 * A CPU's pool is allocated from only on that CPU with bottom halves
 * disabled, which serializes its allocations as page_pool requires.
 * Buffers come back to it from any context but hard interrupts, through
 * its ring; one that comes back while something else still holds a
 * reference to its page (a splice) goes back to the page allocator.
 */

#include <linux/percpu.h>
#include <linux/skbuff.h>
#include <net/kcm.h>

#include "compat.h"

/*
 * The buffers a CPU's pool keeps for reuse.  A batch's buffer goes back to
 * the pool when its reader is done with it, so what a stream needs is the
 * few on their way between the reader's free and the parser's next
 * allocation; this many more than covers them.  At most twice as many stay
 * with the pool while the module is loaded (its ring and its cache): 512 KiB
 * a CPU that has parsed, none for a CPU that never has.
 */
#define KCM_RXBUF_POOL_SIZE	16

static DEFINE_PER_CPU(struct page_pool *, kcm_rxbuf_pool);

/*
 * A linear skb whose buffer is KCM_RX_BATCH_MAX bytes, skb_shared_info
 * included, from this CPU's pool; NULL if none could be had.
 */
struct sk_buff *kcm_rxbuf_alloc(void)
{
	struct page_pool *pool;
	struct sk_buff *skb;
	struct page *page;

	local_bh_disable();
	pool = this_cpu_read(kcm_rxbuf_pool);
	page = page_pool_dev_alloc_pages(pool);
	local_bh_enable();
	if (!page)
		return NULL;

	skb = build_skb(page_address(page), KCM_RX_BATCH_MAX);
	if (!skb) {
		page_pool_put_full_page(pool, page, false);
		return NULL;
	}
	skb_mark_for_recycle(skb);
	return skb;
}

/* At module load, a pool for every possible CPU.  0 or -errno. */
int kcm_rxbuf_init(void)
{
	struct page_pool_params params = {
		.order = get_order(KCM_RX_BATCH_MAX),
		.pool_size = KCM_RXBUF_POOL_SIZE,
	};
	struct page_pool *pool;
	int cpu;

	BUILD_BUG_ON(PAGE_SIZE << get_order(KCM_RX_BATCH_MAX) != KCM_RX_BATCH_MAX);
	for_each_possible_cpu(cpu) {
		params.nid = cpu_to_node(cpu);
		pool = page_pool_create(&params);
		if (IS_ERR(pool)) {
			kcm_rxbuf_exit();
			return PTR_ERR(pool);
		}
		per_cpu(kcm_rxbuf_pool, cpu) = pool;
	}
	return 0;
}

/*
 * At module unload (or a failed load): no socket is left, so no batch
 * either.  page_pool_destroy() frees a pool once every buffer it gave out
 * has come back.
 */
void kcm_rxbuf_exit(void)
{
	int cpu;

	for_each_possible_cpu(cpu) {
		page_pool_destroy(per_cpu(kcm_rxbuf_pool, cpu));
		per_cpu(kcm_rxbuf_pool, cpu) = NULL;
	}
}
