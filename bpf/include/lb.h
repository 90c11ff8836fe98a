/* Service load balancing (kube-proxy replacement). STUB: the service issue
 * replaces these with DNAT, reverse NAT, conntrack and backend selection. */
#pragma once
#include "common.h"
#include "maps.h"
#include "config.h"
#include "parse.h"

/* A pod sent a packet: translate a new flow to a service frontend (DNAT), or
 * an established one by its conntrack entry. WEIR_CONTINUE to go on routing. */
static __always_inline int lb_from_pod(struct __sk_buff *skb, struct pkt *p)
{
	return WEIR_CONTINUE;
}

/* A packet about to be delivered to a local pod: if it is the reply of a
 * DNATed flow, restore the frontend as its source (reverse NAT). */
static __always_inline int lb_rev_nat(struct __sk_buff *skb, struct pkt *p)
{
	return WEIR_CONTINUE;
}

/* A packet arrived on the uplink for a NodePort / externalIP / LoadBalancer address. */
static __always_inline int lb_from_uplink(struct __sk_buff *skb, struct pkt *p)
{
	return WEIR_CONTINUE;
}
