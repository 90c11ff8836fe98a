/* Programs on the host side of every pod's veth. */
#include "common.h"
#include "config.h"
#include "maps.h"
#include "parse.h"
#include "lb.h"      /* service DNAT / reverse NAT */
#include "route.h"   /* local delivery, VXLAN to other nodes */

char LICENSE[] SEC("license") = "GPL";

/* Parse, pulling the headers into the linear area once if they are not. */
static __always_inline int pod_parse(struct __sk_buff *skb, struct pkt *p)
{
	int ret = parse_ipv4(skb, p);

	if (unlikely(ret == PARSE_INVALID) && bpf_skb_pull_data(skb, 0) == 0)
		ret = parse_ipv4(skb, p);
	return ret;
}

/* tc ingress of the host-side veth: everything the pod sends. */
SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	struct pkt p = {};
	int ret = pod_parse(skb, &p);

	if (ret == PARSE_NOT_IPV4)
		return route_from_pod_other(skb);
	if (ret < 0) {
		ev_drop_skb(skb, REASON_INVALID_PACKET, DIR_EGRESS, 0);
		pol_count(skb, 0, REASON_INVALID_PACKET, DIR_EGRESS);
		return TC_ACT_SHOT;
	}
	/* Anti-spoofing: only the veth's own endpoint address as source. */
	struct endpoint_info *src = pol_source_endpoint(skb, &p);
	if (!src)
		return pol_drop_pkt(skb, &p, REASON_SPOOFED_SOURCE, DIR_EGRESS, 0);
	__u32 src_ep = src->endpoint_id;
	pol_prepare(skb, &p);

	ret = lb_from_pod(skb, &p);
	if (ret != WEIR_CONTINUE)
		return ret;

	/* NetworkPolicy: egress of this pod, and ingress of the destination
	 * when it is a pod on this node; one verdict for both. */
	struct endpoint_info *dst = route_dst_endpoint(&p);
	struct pol_who w = { .src_ep = src_ep, .dst_ep = route_local_pod(dst), .dir = DIR_EGRESS };
	ret = pol_enforce(skb, &p, &w);
	if (ret != WEIR_CONTINUE)
		return ret;
	if (unlikely(p.reply_out)) {
		ret = lb_reply_out(skb, &p);
		if (ret != WEIR_CONTINUE)
			return ret;
	}
	return route_from_pod(skb, &p, dst);
}

/* tc egress of the host-side veth: what the node's own stack sends to the
 * pod (node -> pod, replies to masqueraded flows). Traffic BPF redirects
 * straight into the pod skips this hook, so route.h does the same work there. */
SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	struct pkt p = {};
	int ret = pod_parse(skb, &p);

	if (ret == PARSE_NOT_IPV4)
		return TC_ACT_OK;
	if (ret < 0) {
		ev_drop_skb(skb, REASON_INVALID_PACKET, DIR_INGRESS, 0);
		pol_count(skb, 0, REASON_INVALID_PACKET, DIR_INGRESS);
		return TC_ACT_SHOT;
	}
	pol_prepare(skb, &p);
	ret = lb_rev_nat(skb, &p);
	if (ret != WEIR_CONTINUE)
		return ret;
	/* NetworkPolicy ingress of the pod behind this veth. */
	struct endpoint_info *dst = route_endpoint(p.daddr);
	__u32 dst_ep = route_local_pod(dst);
	if (!dst_ep)
		return TC_ACT_OK;
	struct pol_who w = { .dst_ep = dst_ep, .dir = DIR_INGRESS };
	ret = pol_enforce(skb, &p, &w);
	if (ret != WEIR_CONTINUE)
		return ret;
	route_count(skb, dst_ep, REASON_FORWARDED, DIR_INGRESS);
	return TC_ACT_OK;
}
