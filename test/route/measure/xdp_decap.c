/* Measurement only (bpf/ROUTING.md, "Decap: tc, not XDP"): the same VXLAN
 * strip as encap.h's vxlan_decap, at XDP. The inner packet then reaches
 * from_uplink at tc as plain IPv4 and is delivered there. */
#include "common.h"
#include "config.h"
#include "encap.h"

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_vxlan_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct vxlan_headers *h = data;

	if ((void *)(h + 1) > end)
		return XDP_PASS;
	if (h->eth.h_proto != bpf_htons(ETH_P_IP) || h->ip.ihl != 5 || h->ip.protocol != IPPROTO_UDP)
		return XDP_PASS;
	if (h->ip.daddr != NODE_IP || h->udp.dest != bpf_htons(VXLAN_PORT) || (h->ip.frag_off & bpf_htons(0x3fff)))
		return XDP_PASS;
	if (!(h->vx.flags & bpf_htonl(VXLAN_F_VNI)) || bpf_ntohl(h->vx.vni) >> 8 != VXLAN_VNI)
		return XDP_PASS;
	if (h->inner.h_proto != bpf_htons(ETH_P_IP))
		return XDP_DROP;

	struct ethhdr outer;
	__builtin_memcpy(&outer, &h->eth, sizeof(outer));
	if (bpf_xdp_adjust_head(ctx, VXLAN_OVERHEAD))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(eth, &outer, sizeof(outer));
	return XDP_PASS;
}
