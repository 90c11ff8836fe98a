/* Connection tracking for service flows (weir_ct4, LRU).
 *
 * A translated flow has two entries:
 *  - the service entry, keyed by the tuple as the client sent it
 *    (client -> frontend, flags CT_KEY_SERVICE): it pins the backend, and for
 *    CT_F_SNAT / CT_F_HAIRPIN holds in nat_addr/nat_port the source the
 *    packets are rewritten to;
 *  - the plain entry, keyed by the tuple as it leaves translated
 *    (source' -> backend): a reply looks it up by its swapped tuple. It names
 *    the frontend (revnat_id) and, for CT_F_SNAT / CT_F_HAIRPIN, holds in
 *    nat_addr/nat_port the client's own address and port to restore; for
 *    other flows nat_addr/nat_port hold the frontend the client used (the
 *    reply source for NodePort frontends, whose revnat address is 0). */
#pragma once
#include "common.h"
#include "maps.h"
#include "parse.h"

#define NSEC_PER_SEC 1000000000ULL

static __always_inline void ct_key_of(struct ct4_key *k, __be32 saddr, __be32 daddr, __be16 sport, __be16 dport,
				      __u8 proto, __u8 flags)
{
	k->saddr = saddr;
	k->daddr = daddr;
	k->sport = sport;
	k->dport = dport;
	k->proto = proto;
	k->flags = flags;
	k->pad = 0;
}

/* TCP state bits from the flags of one packet. */
static __always_inline void ct_tcp_update(struct ct_entry *e, __u8 proto, __u8 tcp_flags, int reply)
{
	if (proto != IPPROTO_TCP)
		return;
	__u16 st = e->tcp_state;
	if (tcp_flags & TCP_FLAG_SYN)
		st |= reply ? CT_TCP_SYN_REV : CT_TCP_SYN_FWD;
	if (tcp_flags & TCP_FLAG_FIN)
		st |= reply ? CT_TCP_FIN_REV : CT_TCP_FIN_FWD;
	if (tcp_flags & TCP_FLAG_RST)
		st |= CT_TCP_RST;
	if ((tcp_flags & TCP_FLAG_ACK) && (st & CT_TCP_SYN_FWD) && (st & CT_TCP_SYN_REV))
		st |= CT_TCP_ESTABLISHED;
	if (st != e->tcp_state)
		e->tcp_state = st;
}

/* Counts one packet on an entry. Counters are shared by every CPU: atomic adds. */
static __always_inline void ct_touch(struct ct_entry *e, struct pkt *p, int reply)
{
	__u64 now = bpf_ktime_get_ns();

	/* Writing last_seen on every packet bounces the cache line between CPUs:
	 * only move it when it is more than ~1 ms old. */
	if (now - e->last_seen > 1000000)
		e->last_seen = now;
	if (reply) {
		__sync_fetch_and_add(&e->packets_rev, 1);
		__sync_fetch_and_add(&e->bytes_rev, p->tot_len);
	} else {
		__sync_fetch_and_add(&e->packets_fwd, 1);
		__sync_fetch_and_add(&e->bytes_fwd, p->tot_len);
	}
	ct_tcp_update(e, p->proto, p->tcp_flags, reply);
}

/* A bare SYN on a tuple whose connection was closed starts a new connection
 * (port reuse): it picks a backend afresh, as a new conntrack entry would. */
static __always_inline int ct_tcp_reopened(struct ct_entry *e, struct pkt *p)
{
	if (p->proto != IPPROTO_TCP || (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
		return 0;
	return (e->tcp_state & CT_TCP_RST) ||
	       ((e->tcp_state & (CT_TCP_FIN_FWD | CT_TCP_FIN_REV)) == (CT_TCP_FIN_FWD | CT_TCP_FIN_REV));
}

static __always_inline void ct_entry_init(struct ct_entry *e, struct pkt *p, int reply)
{
	__u64 now = bpf_ktime_get_ns();

	__builtin_memset(e, 0, sizeof(*e));
	e->created = now;
	e->last_seen = now;
	if (reply) {
		e->packets_rev = 1;
		e->bytes_rev = p->tot_len;
	} else {
		e->packets_fwd = 1;
		e->bytes_fwd = p->tot_len;
	}
	ct_tcp_update(e, p->proto, p->tcp_flags, reply);
}
