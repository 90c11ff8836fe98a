/* Programs on the host side of every pod's veth. */
#include "common.h"
#include "config.h"
#include "maps.h"
#include "parse.h"
#include "lb.h"      /* service DNAT / reverse NAT */
#include "route.h"   /* local delivery, VXLAN to other nodes */

char LICENSE[] SEC("license") = "GPL";

/* tc ingress of the host-side veth: everything the pod sends. */
SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	struct pkt p = {};
	int ret = parse_ipv4(skb, &p);

	if (ret == PARSE_NOT_IPV4)
		return route_from_pod_other(skb);
	if (ret < 0)
		return TC_ACT_SHOT;

	ret = lb_from_pod(skb, &p);
	if (ret != WEIR_CONTINUE)
		return ret;
	/* NetworkPolicy egress: the policy issue. */
	return route_from_pod(skb, &p);
}

/* tc egress of the host-side veth: what the node's own stack sends to the
 * pod (node -> pod, replies to masqueraded flows). Traffic BPF redirects
 * straight into the pod skips this hook, so route.h does the same work there. */
SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	struct pkt p = {};
	int ret = parse_ipv4(skb, &p);

	if (ret != PARSE_OK)
		return TC_ACT_OK;
	ret = lb_rev_nat(skb, &p);
	if (ret != WEIR_CONTINUE)
		return ret;
	return TC_ACT_OK;
}
