/* VXLAN (RFC 7348) encapsulation and decapsulation in tc, on the wire the way
 * Linux's vxlan driver and flannel put it: outer IPv4/UDP (checksum 0),
 * 8-byte VXLAN header with the I flag and a 24-bit VNI, the inner Ethernet
 * frame. The inner IP packet is never touched, so a Linux vxlan peer and a
 * weir node read each other's packets. */
#pragma once
#include "common.h"
#include "config.h"
#include "structs.h"
#include "parse.h"

/* Newer than the uapi header this builds against (kernel 6.3+): after a
 * decap the skb's GSO state no longer claims a UDP tunnel. */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#endif

struct vxlanhdr {
	__be32 flags;           /* VXLAN_F_VNI: the VNI field is valid */
	__be32 vni;             /* VNI << 8 */
};
#define VXLAN_F_VNI 0x08000000

/* Everything before the inner IP header: outer Ethernet, IPv4, UDP, VXLAN,
 * inner Ethernet. */
struct vxlan_headers {
	struct ethhdr eth;
	struct iphdr ip;
	struct udphdr udp;
	struct vxlanhdr vx;
	struct ethhdr inner;
} __attribute__((packed));

/* Bytes added in front of the inner IP packet (the outer Ethernet header
 * takes the old one's place). */
#define VXLAN_OVERHEAD (sizeof(struct vxlan_headers) - sizeof(struct ethhdr))

/* Linux's default ephemeral range, as its vxlan driver picks source ports. */
#define VXLAN_SPORT_MIN 32768
#define VXLAN_SPORT_MAX 61000

static __always_inline __u16 vxlan_csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

/* Wraps the IPv4 packet in skb (Ethernet framed) in VXLAN to `ti`: outer
 * source NODE_IP / UPLINK_MAC, destination ti->node_addr / ti->node_mac. The
 * UDP source port is a flow hash, so the fabric's ECMP and the receiver's RSS
 * spread flows as they do for Linux. Returns 0, or < 0 when the skb could
 * not grow. */
static __always_inline int vxlan_encap(struct __sk_buff *skb, const struct tunnel_info *ti)
{
	__u32 inner_ip_len = skb->len - sizeof(struct ethhdr);
	__u32 hash = bpf_get_hash_recalc(skb);
	struct vxlan_headers h = {};

	if (inner_ip_len + VXLAN_OVERHEAD > 0xffff)   /* the outer tot_len must fit */
		return -1;
	if (bpf_skb_adjust_room(skb, VXLAN_OVERHEAD, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
				BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
				BPF_F_ADJ_ROOM_ENCAP_L2(sizeof(struct ethhdr))))
		return -1;

	__builtin_memcpy(h.eth.h_dest, ti->node_mac, ETH_ALEN);
	/* Byte by byte: a memcpy would drop `volatile` and fold the zero initialiser. */
#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		h.eth.h_source[i] = h.inner.h_source[i] = UPLINK_MAC[i];
	h.eth.h_proto = bpf_htons(ETH_P_IP);

	struct iphdr ip = {};   /* built apart: the packed copy is unaligned for csum_diff */
	ip.version = 4;
	ip.ihl = 5;
	ip.tot_len = bpf_htons(inner_ip_len + VXLAN_OVERHEAD);
	ip.id = bpf_htons(bpf_get_prandom_u32() & 0xffff);
	ip.ttl = 64;
	ip.protocol = IPPROTO_UDP;
	ip.saddr = NODE_IP;
	ip.daddr = ti->node_addr;
	ip.check = vxlan_csum_fold(bpf_csum_diff(0, 0, (__be32 *)&ip, sizeof(ip), 0));
	__builtin_memcpy(&h.ip, &ip, sizeof(ip));

	h.udp.source = bpf_htons(VXLAN_SPORT_MIN + (((__u64)hash * (VXLAN_SPORT_MAX - VXLAN_SPORT_MIN)) >> 32));
	h.udp.dest = bpf_htons(VXLAN_PORT);
	h.udp.len = bpf_htons(inner_ip_len + VXLAN_OVERHEAD - sizeof(struct iphdr));
	h.udp.check = 0;

	h.vx.flags = bpf_htonl(VXLAN_F_VNI);
	h.vx.vni = bpf_htonl(VXLAN_VNI << 8);

	/* The peer's vxlan device drops frames not addressed to its own MAC. */
	const __u8 *vtep = ti->vtep_mac;
	if (!(vtep[0] | vtep[1] | vtep[2] | vtep[3] | vtep[4] | vtep[5]))
		vtep = ti->node_mac;
	__builtin_memcpy(h.inner.h_dest, vtep, ETH_ALEN);
	h.inner.h_proto = bpf_htons(ETH_P_IP);

	return bpf_skb_store_bytes(skb, 0, &h, sizeof(h), 0);
}

enum vxlan_decap_result {
	VXLAN_NOT_OURS = 0,     /* not VXLAN for this node's VNI: leave it alone */
	VXLAN_DECAPPED = 1,
	VXLAN_BAD = -1,         /* ours but malformed, or the skb could not shrink */
	VXLAN_NOT_LOCAL = -2,   /* inner destination is neither a local pod nor this node */
};

/* `p` is the outer packet (parse_ipv4 on the uplink). Strips outer IPv4, UDP,
 * VXLAN and the inner Ethernet header, keeping the outer Ethernet header
 * (addressed to this node, type IPv4) in front of the inner IP packet. */
static __always_inline int vxlan_decap(struct __sk_buff *skb, const struct pkt *p)
{
	struct {
		struct vxlanhdr vx;
		struct ethhdr eth;
		struct iphdr ip;
	} __attribute__((packed)) in;

	if (p->proto != IPPROTO_UDP || !p->has_l4 || p->frag != FRAG_NONE)
		return VXLAN_NOT_OURS;
	if (p->daddr != NODE_IP || p->dport != bpf_htons(VXLAN_PORT))
		return VXLAN_NOT_OURS;

	__u32 vx_off = p->l4_off + sizeof(struct udphdr);
	if (bpf_skb_load_bytes(skb, vx_off, &in, sizeof(in)))
		return VXLAN_BAD;
	if (!(in.vx.flags & bpf_htonl(VXLAN_F_VNI)) || bpf_ntohl(in.vx.vni) >> 8 != VXLAN_VNI)
		return VXLAN_NOT_OURS;
	if (in.eth.h_proto != bpf_htons(ETH_P_IP) || in.ip.version != 4)
		return VXLAN_BAD;
	/* Only for this node: a packet for another node's pods would bounce
	 * between tunnels otherwise. */
	if ((in.ip.daddr & POD_CIDR_MASK) != POD_CIDR && in.ip.daddr != NODE_IP)
		return VXLAN_NOT_LOCAL;

	/* Outer IP + UDP + VXLAN + inner Ethernet: from the end of the outer
	 * Ethernet header (ETH_HLEN) to the inner IP header (vx_off + 8 + ETH_HLEN). */
	__u32 strip = vx_off + sizeof(struct vxlanhdr);
	if (bpf_skb_adjust_room(skb, -(__s32)strip, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_DECAP_L3_IPV4))
		return VXLAN_BAD;
	return VXLAN_DECAPPED;
}
