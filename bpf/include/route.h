/* Pod routing: same-node delivery straight into the destination pod,
 * VXLAN to the node that owns a remote pod CIDR (and replies to another
 * node's NodePort SNAT to that node), decap on the uplink, and everything else
 * (this node, outside the cluster) handed to the node's stack, which
 * masquerades it. Design notes: bpf/ROUTING.md. */
#pragma once
#include "common.h"
#include "maps.h"
#include "config.h"
#include "parse.h"
#include "encap.h"
#include "neigh.h"
#include "events.h"
#include "policy.h"

#ifndef LB_SNAT_PORT_MIN
#define LB_SNAT_PORT_MIN 61000   /* lb.h: first port of the NodePort SNAT range */
#endif

static __always_inline void route_count(struct __sk_buff *skb, __u32 endpoint_id, __u8 reason, __u8 dir)
{
	struct metrics_key k = { .endpoint_id = endpoint_id, .reason = reason, .dir = dir };
	struct metrics_value *v = bpf_map_lookup_elem(&weir_metrics, &k);

	if (v) {
		v->packets++;
		v->bytes += skb->len;
	} else {
		struct metrics_value init = { .packets = 1, .bytes = skb->len };
		bpf_map_update_elem(&weir_metrics, &k, &init, BPF_NOEXIST);
	}
}

static __always_inline int route_drop(struct __sk_buff *skb, __u8 reason, __u8 dir)
{
	route_count(skb, 0, reason, dir);
	ev_drop_skb(skb, reason, dir, 0);
	return TC_ACT_SHOT;
}

static __always_inline int in_pod_cidr(__be32 a)
{
	return (a & POD_CIDR_MASK) == POD_CIDR;
}

static __always_inline int in_cluster(__be32 a)
{
	return (a & CLUSTER_CIDR_MASK) == CLUSTER_CIDR;
}

static __always_inline struct endpoint_info *route_endpoint(__be32 addr)
{
	struct endpoint4_key k = { .addr = addr };
	return bpf_map_lookup_elem(&weir_ep4, &k);
}

/* Into a local pod: the MACs its interface expects (to it, from its gateway),
 * then straight to the pod-side veth, skipping the node's stack. Only from a
 * tc ingress hook (bpf_redirect_peer). */
static __always_inline int route_to_endpoint(struct __sk_buff *skb, const struct endpoint_info *ep, __u8 dir)
{
	__u8 macs[12];

	__builtin_memcpy(macs, ep->mac, ETH_ALEN);
	__builtin_memcpy(macs + ETH_ALEN, ep->node_mac, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0))
		return route_drop(skb, REASON_INVALID_PACKET, dir);
	route_count(skb, ep->endpoint_id, REASON_FORWARDED, DIR_INGRESS);
	return bpf_redirect_peer(ep->ifindex, 0);
}

/* A pod address of another node: VXLAN to it. No tunnel entry is a drop, not
 * the node's default route: pod traffic must not leak unencapsulated. */
static __always_inline int route_to_remote(struct __sk_buff *skb, __be32 daddr, __u8 dir)
{
	struct tunnel4_key k = { .prefixlen = 32, .addr = daddr };
	struct tunnel_info *ti = bpf_map_lookup_elem(&weir_tunnel4, &k);

	if (!ti)
		return route_drop(skb, REASON_NO_ROUTE, dir);
	if (vxlan_encap(skb, ti) < 0)
		return route_drop(skb, REASON_ENCAP_FAILED, dir);
	route_count(skb, 0, REASON_FORWARDED, dir);
	return bpf_redirect(UPLINK_IFINDEX, 0);
}

/* A backend's reply to a NodePort flow another node SNATed to itself: to
 * that node's address and one of the ports its SNAT hands out (lb.h). It goes
 * through the tunnel (the control plane adds a /32 per node), unmasqueraded,
 * or the node could not match it to the flow. Only these: a pod's own new
 * flow to another node's address keeps going through this node's stack and
 * masquerade, because a NodePort there may pick a backend on a third node,
 * and a decapsulated packet cannot be encapsulated again by BPF on this
 * kernel (skb->encapsulation stays set: bpf_skb_adjust_room -EALREADY). */
static __always_inline int route_snat_reply(const struct pkt *p)
{
	return (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) && p->has_l4 &&
	       bpf_ntohs(p->dport) >= LB_SNAT_PORT_MIN;
}

/* Where a pod's (translated) packet goes on this node: its ep4 entry, NULL
 * for the gateway and addresses that are not local endpoints. */
static __always_inline struct endpoint_info *route_dst_endpoint(const struct pkt *p)
{
	if (p->daddr == GATEWAY_IP)
		return NULL;
	return route_endpoint(p->daddr);
}

/* The local endpoint a packet is delivered to (policy ingress), or 0. */
static __always_inline __u32 route_local_pod(const struct endpoint_info *ep)
{
	return (ep && !(ep->flags & EP_F_HOST)) ? ep->endpoint_id : 0;
}

/* Forward a (possibly translated) IPv4 packet a pod sent; ep is
 * route_dst_endpoint(p), looked up once by the caller for policy too. */
static __always_inline int route_from_pod(struct __sk_buff *skb, struct pkt *p, struct endpoint_info *ep)
{
	__be32 daddr = p->daddr;

	if (daddr == GATEWAY_IP)
		return TC_ACT_OK;
	if (ep) {
		if (ep->flags & EP_F_HOST)
			return TC_ACT_OK;
		return route_to_endpoint(skb, ep, DIR_EGRESS);
	}
	if (!in_cluster(daddr)) {
		if (route_snat_reply(p) && daddr != NODE_IP) {
			struct tunnel4_key k = { .prefixlen = 32, .addr = daddr };
			if (bpf_map_lookup_elem(&weir_tunnel4, &k))
				return route_to_remote(skb, daddr, DIR_EGRESS);
		}
		return TC_ACT_OK;       /* this node, or outside: the node's stack (masquerade) */
	}
	if (in_pod_cidr(daddr))
		return route_drop(skb, REASON_NO_ROUTE, DIR_EGRESS);   /* no such local pod */
	return route_to_remote(skb, daddr, DIR_EGRESS);
}

/* Non-IPv4 from a pod (ARP, IPv6 ND): answered or passed. */
static __always_inline int route_from_pod_other(struct __sk_buff *skb)
{
	return arp_answer(skb);
}

/* The uplink received a packet. If it is VXLAN for this node, strip the outer
 * headers and return WEIR_CONTINUE (caller re-parses the inner packet);
 * otherwise return WEIR_CONTINUE without touching it and set *decapped = 0. */
static __always_inline int route_decap(struct __sk_buff *skb, struct pkt *p, int *decapped)
{
	*decapped = 0;
	switch (vxlan_decap(skb, p)) {
	case VXLAN_DECAPPED:
		*decapped = 1;
		return WEIR_CONTINUE;
	case VXLAN_NOT_OURS:
		return WEIR_CONTINUE;
	case VXLAN_NOT_LOCAL:
		return route_drop(skb, REASON_NO_ROUTE, DIR_UPLINK);
	default:
		return route_drop(skb, REASON_INVALID_PACKET, DIR_UPLINK);
	}
}

/* Deliver to a local pod or forward onward after the uplink's processing. */
static __always_inline int route_from_uplink(struct __sk_buff *skb, struct pkt *p)
{
	__be32 daddr = p->daddr;

	if (daddr == GATEWAY_IP || daddr == NODE_IP)
		return TC_ACT_OK;
	struct endpoint_info *ep = route_endpoint(daddr);
	if (ep) {
		if (ep->flags & EP_F_HOST)
			return TC_ACT_OK;
		/* NetworkPolicy ingress: decapsulated, or a NodePort's local backend. */
		struct pol_who w = { .dst_ep = ep->endpoint_id, .dir = DIR_INGRESS };
		int ret = pol_enforce(skb, p, &w);
		if (ret != WEIR_CONTINUE)
			return ret;
		return route_to_endpoint(skb, ep, DIR_UPLINK);
	}
	if (in_pod_cidr(daddr))
		return route_drop(skb, REASON_NO_ROUTE, DIR_UPLINK);
	/* A service on this node translated to another node's pod. */
	if (in_cluster(daddr))
		return route_to_remote(skb, daddr, DIR_UPLINK);
	return TC_ACT_OK;
}

/* The node's own stack sends a packet out of the uplink (tc egress). For a
 * pod on another node: VXLAN in place, the frame then leaves as encapsulated. */
static __always_inline int route_to_uplink(struct __sk_buff *skb, struct pkt *p)
{
	__be32 daddr = p->daddr;

	if (!in_cluster(daddr))
		return TC_ACT_OK;
	if (in_pod_cidr(daddr))
		return route_drop(skb, REASON_NO_ROUTE, DIR_EGRESS);  /* a local pod never leaves here */
	struct tunnel4_key k = { .prefixlen = 32, .addr = daddr };
	struct tunnel_info *ti = bpf_map_lookup_elem(&weir_tunnel4, &k);
	if (!ti)
		return route_drop(skb, REASON_NO_ROUTE, DIR_EGRESS);
	if (vxlan_encap(skb, ti) < 0)
		return route_drop(skb, REASON_ENCAP_FAILED, DIR_EGRESS);
	return TC_ACT_OK;
}
