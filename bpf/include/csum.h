/* Checksum helpers for NAT: incremental updates of the IPv4 header and L4
 * checksums when an address or port changes, and full sums for headers built
 * from scratch (reject replies). */
#pragma once
#include "common.h"
#include "parse.h"

#define IP_CSUM_OFF(l3) ((l3) + offsetof(struct iphdr, check))
#define IP_SADDR_OFF(l3) ((l3) + offsetof(struct iphdr, saddr))
#define IP_DADDR_OFF(l3) ((l3) + offsetof(struct iphdr, daddr))

/* Offset of the TCP/UDP checksum field, or 0 when the packet has none we keep. */
static __always_inline __u32 csum_l4_off(__u8 proto, __u32 l4_off)
{
	if (proto == IPPROTO_TCP)
		return l4_off + offsetof(struct tcphdr, check);
	if (proto == IPPROTO_UDP)
		return l4_off + offsetof(struct udphdr, check);
	return 0;
}

/* UDP over IPv4 may carry checksum 0 ("none"): BPF_F_MARK_MANGLED_0 leaves a
 * 0 as 0 and writes a computed 0 as 0xffff. */
static __always_inline __u64 csum_l4_flags(__u8 proto)
{
	return proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Internet checksum of a 20-byte IPv4 header on the stack (check field zeroed). */
static __always_inline __u16 csum_ipv4_hdr(struct iphdr *ip)
{
	ip->check = 0;
	return csum_fold(bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0));
}
