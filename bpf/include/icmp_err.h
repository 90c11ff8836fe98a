/* ICMP errors about translated flows (destination unreachable incl.
 * fragmentation needed, time exceeded). The error quotes the offending
 * packet's IP header and first L4 bytes; both the outer header and the quote
 * are rewritten so the receiver matches the error to its own socket.
 *
 *  - error about a client -> backend packet (sent by the backend or a router
 *    on the way, towards the client): the quote holds the translated tuple,
 *    found as the plain CT entry. Quote destination -> frontend, quote source
 *    and outer destination -> the client (SNAT / hairpin), outer source ->
 *    frontend when the backend itself sent it.
 *  - error about a reply (sent by the client or a router, towards the
 *    frontend): the quote holds frontend -> client, found by the service CT
 *    entry. Quote source and outer destination -> the backend. */
#pragma once
#include "common.h"
#include "csum.h"
#include "maps.h"
#include "parse.h"

struct icmp_quote {
	struct iphdr ip;
	__be16 sport;
	__be16 dport;
};

/* Rewrites one address and port of the quoted packet: the quoted IP header
 * checksum, the quoted L4 checksum when the quote holds it, and the ICMP
 * checksum (plain, no pseudo header) for every 16-bit word that changes. */
static __always_inline int icmp_quote_rewrite(struct __sk_buff *skb, __u32 icmp_csum, __u32 qip, __u8 proto, int src,
					      __be32 old_addr, __be32 addr, __be16 old_port, __be16 port)
{
	__u32 addr_off = src ? IP_SADDR_OFF(qip) : IP_DADDR_OFF(qip);
	__u32 port_off = qip + sizeof(struct iphdr) + (src ? 0 : 2);
	__u32 l4csum = csum_l4_off(proto, qip + sizeof(struct iphdr));
	__u16 before, after;

	if (old_addr == addr && old_port == port)
		return 0;
	/* quoted IP header checksum, and the ICMP checksum for its change */
	if (bpf_skb_load_bytes(skb, IP_CSUM_OFF(qip), &before, 2) ||
	    bpf_l3_csum_replace(skb, IP_CSUM_OFF(qip), old_addr, addr, 4) ||
	    bpf_skb_load_bytes(skb, IP_CSUM_OFF(qip), &after, 2) ||
	    bpf_l4_csum_replace(skb, icmp_csum, before, after, 2))
		return -1;
	/* quoted TCP/UDP checksum, when the quote is long enough to hold it */
	if (l4csum + 2 <= skb->len && bpf_skb_load_bytes(skb, l4csum, &before, 2) == 0 &&
	    !(proto == IPPROTO_UDP && before == 0)) {
		if (bpf_l4_csum_replace(skb, l4csum, old_addr, addr, 4) ||
		    bpf_l4_csum_replace(skb, l4csum, old_port, port, 2) ||
		    bpf_skb_load_bytes(skb, l4csum, &after, 2) ||
		    bpf_l4_csum_replace(skb, icmp_csum, before, after, 2))
			return -1;
	}
	if (bpf_skb_store_bytes(skb, addr_off, &addr, 4, 0) ||
	    bpf_l4_csum_replace(skb, icmp_csum, old_addr, addr, 4) ||
	    bpf_skb_store_bytes(skb, port_off, &port, 2, 0) ||
	    bpf_l4_csum_replace(skb, icmp_csum, old_port, port, 2))
		return -1;
	return 0;
}

static __always_inline int icmp_outer_rewrite(struct __sk_buff *skb, struct pkt *p, int src, __be32 addr)
{
	__be32 old = src ? p->saddr : p->daddr;

	if (old == addr)
		return 0;
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF(p->l3_off), old, addr, 4) ||
	    bpf_skb_store_bytes(skb, src ? IP_SADDR_OFF(p->l3_off) : IP_DADDR_OFF(p->l3_off), &addr, 4, 0))
		return -1;
	if (src)
		p->saddr = addr;
	else
		p->daddr = addr;
	return 0;
}

/* The frontend address replies of a flow carry (see conntrack.h). */
static __always_inline __be32 lb_frontend_addr(struct ct_entry *ce, struct revnat4 *rn)
{
	if (rn->addr)
		return rn->addr;
	if (ce->flags & (CT_F_SNAT | CT_F_HAIRPIN))
		return NODE_IP;
	return ce->nat_addr;
}

/* Translates an ICMP error about a service flow. WEIR_CONTINUE when done or
 * not ours, TC_ACT_SHOT when a rewrite failed. */
static __always_inline int lb_icmp_error(struct __sk_buff *skb, struct pkt *p)
{
	struct icmp_quote q;
	struct ct4_key k;

	if (p->proto != IPPROTO_ICMP || !p->has_l4 || p->frag != FRAG_NONE ||
	    (p->icmp_type != ICMP_DEST_UNREACH && p->icmp_type != ICMP_TIME_EXCEEDED))
		return WEIR_CONTINUE;
	__u32 qip = p->l4_off + sizeof(struct icmphdr);
	__u32 icmp_csum = p->l4_off + offsetof(struct icmphdr, checksum);
	if (bpf_skb_load_bytes(skb, qip, &q, sizeof(q)))
		return WEIR_CONTINUE;
	if (q.ip.ihl != 5 || (q.ip.protocol != IPPROTO_TCP && q.ip.protocol != IPPROTO_UDP))
		return WEIR_CONTINUE;

	/* error about a forward packet: the quote is the translated tuple */
	ct_key_of(&k, q.ip.saddr, q.ip.daddr, q.sport, q.dport, q.ip.protocol, 0);
	struct ct_entry *ce = bpf_map_lookup_elem(&weir_ct4, &k);
	if (ce && (ce->flags & CT_F_SERVICE)) {
		__u32 rid = ce->revnat_id;
		struct revnat4 *rn = bpf_map_lookup_elem(&weir_revnat4, &rid);
		if (!rn)
			return WEIR_CONTINUE;
		__be32 fe = lb_frontend_addr(ce, rn);
		if (icmp_quote_rewrite(skb, icmp_csum, qip, q.ip.protocol, 0, q.ip.daddr, fe, q.dport, rn->port))
			return TC_ACT_SHOT;
		if (ce->flags & (CT_F_SNAT | CT_F_HAIRPIN)) {
			if (icmp_quote_rewrite(skb, icmp_csum, qip, q.ip.protocol, 1, q.ip.saddr, ce->nat_addr, q.sport,
					       ce->nat_port) ||
			    icmp_outer_rewrite(skb, p, 0, ce->nat_addr))
				return TC_ACT_SHOT;
		}
		if (p->saddr == q.ip.daddr && icmp_outer_rewrite(skb, p, 1, fe))
			return TC_ACT_SHOT;
		return WEIR_CONTINUE;
	}

	/* error about a reply: the quote is frontend -> client */
	ct_key_of(&k, q.ip.daddr, q.ip.saddr, q.dport, q.sport, q.ip.protocol, CT_KEY_SERVICE);
	ce = bpf_map_lookup_elem(&weir_ct4, &k);
	if (ce && (ce->flags & CT_F_SERVICE) && !(ce->flags & (CT_F_SNAT | CT_F_HAIRPIN))) {
		__u32 bid = ce->backend_id;
		struct backend4 *be = bpf_map_lookup_elem(&weir_backend4, &bid);
		if (!be)
			return WEIR_CONTINUE;
		if (icmp_quote_rewrite(skb, icmp_csum, qip, q.ip.protocol, 1, q.ip.saddr, be->addr, q.sport, be->port))
			return TC_ACT_SHOT;
		if (p->daddr == q.ip.saddr && icmp_outer_rewrite(skb, p, 0, be->addr))
			return TC_ACT_SHOT;
	}
	return WEIR_CONTINUE;
}
