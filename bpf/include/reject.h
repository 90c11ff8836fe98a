/* Rejecting a connection to a service without backends, as kube-proxy's
 * REJECT rules do: TCP gets a RST, UDP an ICMP port unreachable. The reply is
 * built in place of the packet and sent back out of the interface the packet
 * came in on (for a pod's veth: back into the pod). */
#pragma once
#include "common.h"
#include "csum.h"
#include "parse.h"
#include "lb_metrics.h"

/* pad: puts the IP header on a 4-byte boundary; the frame starts at eth. */
struct reject_tcp {
	__u16 pad;
	struct ethhdr eth;
	struct iphdr ip;
	struct tcphdr tcp;
};

struct reject_icmp {
	__u16 pad;
	struct ethhdr eth;
	struct iphdr ip;
	struct icmphdr icmp;
	__u8 quote[28];         /* the offending packet's IP header + 8 bytes (RFC 792) */
};

struct csum_pseudo {
	__be32 saddr;
	__be32 daddr;
	__u8 zero;
	__u8 proto;
	__be16 len;
};

static __always_inline void reject_ip(struct iphdr *ip, __be32 saddr, __be32 daddr, __u8 proto, __u16 len)
{
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(len);
	ip->id = 0;
	ip->frag_off = bpf_htons(0x4000); /* DF */
	ip->ttl = 64;
	ip->protocol = proto;
	ip->saddr = saddr;
	ip->daddr = daddr;
	ip->check = csum_ipv4_hdr(ip);
}

static __always_inline int reject_send(struct __sk_buff *skb, void *hdr, __u32 len)
{
	if (bpf_skb_change_tail(skb, len, 0))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, 0, hdr, len, 0))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/* RST for a TCP segment (RFC 793 "reset generation"). */
static __always_inline int reject_tcp_rst(struct __sk_buff *skb, struct pkt *p)
{
	struct reject_tcp r = {};
	struct tcphdr in;

	if (bpf_skb_load_bytes(skb, 0, &r.eth, sizeof(r.eth)) ||
	    bpf_skb_load_bytes(skb, p->l4_off, &in, sizeof(in)))
		return TC_ACT_SHOT;
	if (in.rst)
		return TC_ACT_SHOT; /* never answer a RST */

	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, r.eth.h_source, ETH_ALEN);
	__builtin_memcpy(r.eth.h_source, r.eth.h_dest, ETH_ALEN);
	__builtin_memcpy(r.eth.h_dest, mac, ETH_ALEN);
	r.eth.h_proto = bpf_htons(ETH_P_IP);

	reject_ip(&r.ip, p->daddr, p->saddr, IPPROTO_TCP, sizeof(r.ip) + sizeof(r.tcp));

	r.tcp.source = p->dport;
	r.tcp.dest = p->sport;
	r.tcp.doff = 5;
	r.tcp.rst = 1;
	if (in.ack) {
		r.tcp.seq = in.ack_seq;
	} else {
		__u32 seglen = p->tot_len - (p->l4_off - p->l3_off) - in.doff * 4;
		seglen += in.syn + in.fin;
		r.tcp.ack_seq = bpf_htonl(bpf_ntohl(in.seq) + seglen);
		r.tcp.ack = 1;
	}

	struct csum_pseudo ph = { .saddr = r.ip.saddr, .daddr = r.ip.daddr, .proto = IPPROTO_TCP,
				  .len = bpf_htons(sizeof(r.tcp)) };
	__u32 sum = bpf_csum_diff(0, 0, (__be32 *)&ph, sizeof(ph), 0);
	sum = bpf_csum_diff(0, 0, (__be32 *)&r.tcp, sizeof(r.tcp), sum);
	r.tcp.check = csum_fold(sum);

	return reject_send(skb, &r.eth, sizeof(r) - sizeof(r.pad));
}

/* ICMP destination unreachable / port unreachable quoting the packet. */
static __always_inline int reject_icmp_port(struct __sk_buff *skb, struct pkt *p)
{
	struct reject_icmp r = {};

	/* The quote is the original header + 8 bytes: options would make it
	 * variable-sized; such packets are dropped (counted as NO_BACKEND). */
	if (p->ip_options)
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, 0, &r.eth, sizeof(r.eth)) ||
	    bpf_skb_load_bytes(skb, p->l3_off, r.quote, sizeof(r.quote)))
		return TC_ACT_SHOT;

	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, r.eth.h_source, ETH_ALEN);
	__builtin_memcpy(r.eth.h_source, r.eth.h_dest, ETH_ALEN);
	__builtin_memcpy(r.eth.h_dest, mac, ETH_ALEN);
	r.eth.h_proto = bpf_htons(ETH_P_IP);

	reject_ip(&r.ip, p->daddr, p->saddr, IPPROTO_ICMP, sizeof(r.ip) + sizeof(r.icmp) + sizeof(r.quote));
	r.icmp.type = ICMP_DEST_UNREACH;
	r.icmp.code = ICMP_PORT_UNREACH;
	__u32 sum = bpf_csum_diff(0, 0, (__be32 *)&r.icmp, sizeof(r.icmp) + sizeof(r.quote), 0);
	r.icmp.checksum = csum_fold(sum);

	return reject_send(skb, &r.eth, sizeof(r) - sizeof(r.pad));
}

static __always_inline int lb_reject(struct __sk_buff *skb, struct pkt *p, __u8 dir)
{
	lb_count(REASON_NO_BACKEND, dir, skb->len);
	if (p->frag == FRAG_LATER)
		return TC_ACT_SHOT;
	if (p->proto == IPPROTO_TCP)
		return reject_tcp_rst(skb, p);
	return reject_icmp_port(skb, p);
}
