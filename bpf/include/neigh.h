/* Neighbour resolution without a shared L2: a pod's ARP request never leaves
 * its veth. The program on the host side answers it with the host veth's MAC
 * (the MAC every pod's gateway has), so pods never ARP for one another, no
 * broadcast crosses the overlay, and the node's neighbour tables hold nothing
 * per remote pod (tunnel_info carries the remote node's MAC). */
#pragma once
#include "common.h"
#include "maps.h"

#ifndef ETH_P_ARP
#define ETH_P_ARP 0x0806
#endif
#define ARPOP_REQUEST 1
#define ARPOP_REPLY 2

/* ARP for Ethernet/IPv4 (RFC 826), as on the wire. */
struct arp4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[ETH_ALEN];
	__be32 spa;
	__u8 tha[ETH_ALEN];
	__be32 tpa;
} __attribute__((packed));

/* A pod's ARP request, answered in place and sent back out of the veth it
 * came in on; the answer is the host veth MAC for every address but the
 * pod's own (a duplicate-address probe or a gratuitous ARP gets no answer).
 * Anything else from the pod that is not IPv4 goes on to the node unchanged. */
static __always_inline int arp_answer(struct __sk_buff *skb)
{
	struct {
		struct ethhdr eth;
		struct arp4 arp;
	} __attribute__((packed)) f;

	if (bpf_skb_load_bytes(skb, 0, &f, sizeof(f)))
		return TC_ACT_OK;
	if (f.eth.h_proto != bpf_htons(ETH_P_ARP) || f.arp.htype != bpf_htons(1) ||
	    f.arp.ptype != bpf_htons(ETH_P_IP) || f.arp.hlen != ETH_ALEN || f.arp.plen != 4 ||
	    f.arp.op != bpf_htons(ARPOP_REQUEST))
		return TC_ACT_OK;
	if (f.arp.spa == 0 || f.arp.spa == f.arp.tpa)
		return TC_ACT_OK;

	/* The asker must be the pod behind this veth: its entry names the MAC to answer with. */
	struct endpoint4_key k = { .addr = f.arp.spa };
	struct endpoint_info *ep = bpf_map_lookup_elem(&weir_ep4, &k);
	if (!ep || ep->ifindex != skb->ifindex)
		return TC_ACT_SHOT;

	__be32 target = f.arp.tpa;
	__builtin_memcpy(f.eth.h_dest, f.arp.sha, ETH_ALEN);
	__builtin_memcpy(f.eth.h_source, ep->node_mac, ETH_ALEN);
	f.arp.op = bpf_htons(ARPOP_REPLY);
	__builtin_memcpy(f.arp.tha, f.arp.sha, ETH_ALEN);
	f.arp.tpa = f.arp.spa;
	__builtin_memcpy(f.arp.sha, ep->node_mac, ETH_ALEN);
	f.arp.spa = target;
	if (bpf_skb_store_bytes(skb, 0, &f, sizeof(f), 0))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}
