/* Packet parsing into a small summary every step reads. Direct packet
 * access: call parse_ipv4() again after anything that moves skb->data
 * (adjust_room, store_bytes on a cloned skb, ...). */
#pragma once
#include "common.h"

enum parse_result {
	PARSE_OK = 0,
	PARSE_NOT_IPV4 = 1,     /* ARP, IPv6, ...: not ours to translate */
	PARSE_INVALID = -1,     /* truncated or malformed header */
};

/* pkt.frag */
enum pkt_frag {
	FRAG_NONE = 0,
	FRAG_FIRST = 1,         /* MF set, offset 0: carries the L4 header */
	FRAG_LATER = 2,         /* offset > 0: no L4 header */
};

struct pkt {
	__u32 l3_off;           /* offset of the IPv4 header from skb->data */
	__u32 l4_off;           /* l3_off + IHL*4 (IP options honoured) */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;           /* TCP/UDP ports; ICMP echo: the echo id in both */
	__be16 dport;
	__u16 tot_len;          /* IPv4 total length (host order) */
	__u8 proto;
	__u8 frag;              /* enum pkt_frag */
	__u8 tcp_flags;         /* TCP: FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 has_l4;            /* ports/ICMP fields are valid */
	__u8 ip_options;        /* IHL > 5 */
	__be16 ip_id;           /* IPv4 identification: fragments of one datagram share it */
	__u8 revnat;            /* lb_reply rewrote it: pol_* holds the tuple as it arrived */
	__u8 reply_out;         /* lb_from_pod: a NodePort reply to send out directly (lb_reply_out) */
	__u8 icmp_err;          /* policy.h: an ICMP error whose quote was read (pol_q*) */
	__u8 pad[3];
	/* Policy's view of the flow (policy.h): the tuple before reverse NAT
	 * (lb_reply fills it), and the arrival addresses (fragment key). */
	__be32 pol_saddr;
	__be32 pol_daddr;
	__be16 pol_sport;
	__be16 pol_dport;
	__be32 in_saddr;        /* addresses as the packet arrived, before any NAT */
	__be32 in_daddr;
	/* ICMP error: the quoted packet's tuple as it arrived (before lb_icmp_error) */
	__be32 q_saddr;
	__be32 q_daddr;
	__be16 q_sport;
	__be16 q_dport;
	__u8 q_proto;
	__u8 q_pad[3];
};

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return PARSE_INVALID;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PARSE_NOT_IPV4;

	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return PARSE_INVALID;
	__u32 ihl = ip->ihl * 4;
	if (ip->version != 4 || ihl < sizeof(*ip))
		return PARSE_INVALID;
	if ((void *)ip + ihl > end)
		return PARSE_INVALID;

	__u16 tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < ihl)
		return PARSE_INVALID;

	p->l3_off = sizeof(*eth);
	p->l4_off = sizeof(*eth) + ihl;
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->tot_len = tot_len;
	p->proto = ip->protocol;
	p->ip_options = ihl > sizeof(*ip);
	p->ip_id = ip->id;
	p->has_l4 = 0;
	p->sport = p->dport = 0;
	p->tcp_flags = p->icmp_type = p->icmp_code = 0;

	__u16 frag = bpf_ntohs(ip->frag_off);
	if (frag & 0x1fff) {
		p->frag = FRAG_LATER;
		/* RFC 1858: a TCP fragment at offset 8 bytes can only be meant to
		 * overwrite the first fragment's ports or flags. */
		if ((frag & 0x1fff) == 1 && p->proto == IPPROTO_TCP)
			return PARSE_INVALID;
		return PARSE_OK;
	}
	p->frag = (frag & 0x2000) ? FRAG_FIRST : FRAG_NONE;

	void *l4 = (void *)ip + ihl;
	switch (p->proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end)
			return PARSE_INVALID;
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
		p->has_l4 = 1;
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > end)
			return PARSE_INVALID;
		p->sport = uh->source;
		p->dport = uh->dest;
		p->has_l4 = 1;
		break;
	}
	case IPPROTO_ICMP: {
		struct icmphdr *ic = l4;
		if ((void *)(ic + 1) > end)
			return PARSE_INVALID;
		p->icmp_type = ic->type;
		p->icmp_code = ic->code;
		if (ic->type == ICMP_ECHO || ic->type == ICMP_ECHOREPLY) {
			p->sport = ic->un.echo.id;
			p->dport = ic->un.echo.id;
		}
		p->has_l4 = 1;
		break;
	}
	default:
		break;
	}
	return PARSE_OK;
}
