/* Address and port rewriting with incremental checksum updates (IPv4 header
 * checksum, TCP/UDP checksum over the pseudo header). Keeps struct pkt in
 * step so later steps see the translated tuple. */
#pragma once
#include "common.h"
#include "csum.h"
#include "parse.h"

enum nat_side {
	NAT_SRC = 0,
	NAT_DST = 1,
};

/* Rewrites the source or destination address and port of a TCP/UDP packet.
 * Returns 0, or -1 when a helper failed (the caller drops). */
static __always_inline int nat_rewrite(struct __sk_buff *skb, struct pkt *p, int side, __be32 addr, __be16 port)
{
	__be32 old_addr = side == NAT_SRC ? p->saddr : p->daddr;
	__be16 old_port = side == NAT_SRC ? p->sport : p->dport;
	__u32 addr_off = side == NAT_SRC ? IP_SADDR_OFF(p->l3_off) : IP_DADDR_OFF(p->l3_off);
	__u32 port_off = p->l4_off + (side == NAT_SRC ? 0 : 2); /* source/dest are the first two 16-bit fields of TCP and UDP */
	__u32 l4csum = csum_l4_off(p->proto, p->l4_off);
	__u64 l4flags = csum_l4_flags(p->proto);

	if (old_addr != addr) {
		if (l4csum && bpf_l4_csum_replace(skb, l4csum, old_addr, addr, l4flags | BPF_F_PSEUDO_HDR | sizeof(addr)))
			return -1;
		if (bpf_l3_csum_replace(skb, IP_CSUM_OFF(p->l3_off), old_addr, addr, sizeof(addr)))
			return -1;
		if (bpf_skb_store_bytes(skb, addr_off, &addr, sizeof(addr), 0))
			return -1;
	}
	if (old_port != port && p->has_l4) {
		if (l4csum && bpf_l4_csum_replace(skb, l4csum, old_port, port, l4flags | sizeof(port)))
			return -1;
		if (bpf_skb_store_bytes(skb, port_off, &port, sizeof(port), 0))
			return -1;
	}
	if (side == NAT_SRC) {
		p->saddr = addr;
		p->sport = port;
	} else {
		p->daddr = addr;
		p->dport = port;
	}
	return 0;
}
