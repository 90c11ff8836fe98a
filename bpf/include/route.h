/* Pod routing: local delivery, VXLAN encapsulation to remote nodes, decap.
 * STUB: the pod-network issue fills these in. */
#pragma once
#include "common.h"
#include "maps.h"
#include "config.h"
#include "parse.h"

/* Forward a (possibly translated) IPv4 packet a pod sent. */
static __always_inline int route_from_pod(struct __sk_buff *skb, struct pkt *p)
{
	return TC_ACT_OK;
}

/* Non-IPv4 from a pod (ARP, IPv6 ND): answered or passed. */
static __always_inline int route_from_pod_other(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

/* The uplink received a packet. If it is VXLAN for this node, strip the outer
 * headers and return WEIR_CONTINUE (caller re-parses the inner packet);
 * otherwise return WEIR_CONTINUE without touching it and set *decapped = 0. */
static __always_inline int route_decap(struct __sk_buff *skb, struct pkt *p, int *decapped)
{
	*decapped = 0;
	return WEIR_CONTINUE;
}

/* Deliver to a local pod or forward onward after the uplink's processing. */
static __always_inline int route_from_uplink(struct __sk_buff *skb, struct pkt *p)
{
	return TC_ACT_OK;
}
