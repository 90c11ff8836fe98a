/* Programs on the node's uplink (the interface facing other nodes). */
#include "common.h"
#include "config.h"
#include "maps.h"
#include "parse.h"
#include "lb.h"
#include "route.h"

char LICENSE[] SEC("license") = "GPL";

/* tc ingress of the uplink: VXLAN from other nodes, NodePort / externalIP /
 * LoadBalancer traffic from outside. */
SEC("tc")
int from_uplink(struct __sk_buff *skb)
{
	struct pkt p = {};
	int decapped = 0;
	int ret = parse_ipv4(skb, &p);

	if (ret != PARSE_OK)
		return TC_ACT_OK;
	ret = route_decap(skb, &p, &decapped);
	if (ret != WEIR_CONTINUE)
		return ret;
	if (decapped) {
		if (parse_ipv4(skb, &p) != PARSE_OK)
			return route_drop(skb, REASON_INVALID_PACKET, DIR_UPLINK);
		pol_prepare(skb, &p);
		ret = lb_rev_nat(skb, &p);
	} else {
		pol_prepare(skb, &p);
		ret = lb_from_uplink(skb, &p);
	}
	if (ret != WEIR_CONTINUE)
		return ret;
	return route_from_uplink(skb, &p);
}

/* tc egress of the uplink: the node's own packets for pods on other nodes
 * (setupNode routes the cluster CIDR out of the uplink) get VXLAN here.
 * Packets from_pod already encapsulated pass through untouched. */
SEC("tc")
int to_uplink(struct __sk_buff *skb)
{
	struct pkt p = {};

	if (parse_ipv4(skb, &p) != PARSE_OK)
		return TC_ACT_OK;
	return route_to_uplink(skb, &p);
}
