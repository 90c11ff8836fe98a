/* Service load balancing (kube-proxy replacement): the entry points the
 * programs call. New flows to a frontend pick a backend (lb_select.h), are
 * DNATed (nat.h) and tracked (conntrack.h); later packets follow their CT
 * entry, also when the backend set changes; replies are reverse-NATed; ICMP
 * errors about translated flows are translated (icmp_err.h); frontends
 * without backends reject (reject.h).
 *
 * Hairpin (a pod reaching itself through its Service) SNATs the source to
 * LB_HAIRPIN_IP so the pod's reply leaves the pod again and comes back
 * through from_pod, where it is translated back. Remote NodePort backends get
 * the source SNATed to NODE_IP with a port from LB_SNAT_PORT_MIN.. (unless
 * externalTrafficPolicy Local keeps the client address). */
#pragma once
#include "common.h"
#include "maps.h"
#include "config.h"
#include "parse.h"
#include "csum.h"
#include "nat.h"
#include "conntrack.h"
#include "lb_select.h"
#include "lb_metrics.h"
#include "reject.h"
#include "icmp_err.h"

/* 169.254.42.1: link-local, never a pod or node address; pods reach it via
 * their default route (the host veth), so hairpin replies come back to us. */
#define LB_HAIRPIN_IP bpf_htonl(0xa9fe2a01)
/* Source ports for NodePort SNAT: above Linux's default ephemeral range
 * (32768-60999), so the node's own connections do not collide. */
#define LB_SNAT_PORT_MIN 61000
#define LB_SNAT_PORT_COUNT 4536
#define LB_SNAT_TRIES 8

enum lb_origin {
	LB_FROM_POD = 0,        /* an in-cluster client */
	LB_FROM_UPLINK = 1,     /* outside the cluster, arriving at a node address */
};

/* Rewrites a forward packet: destination -> backend, and the source when the
 * flow is SNATed or hairpinned (the service entry holds the new source). */
static __always_inline int lb_dnat(struct __sk_buff *skb, struct pkt *p, __u16 ct_flags, __be32 nat_addr,
				   __be16 nat_port, struct backend4 *be)
{
	__be32 baddr = be->addr;
	__be16 bport = be->port;

	if ((ct_flags & (CT_F_SNAT | CT_F_HAIRPIN)) && nat_rewrite(skb, p, NAT_SRC, nat_addr, nat_port))
		return -1;
	return nat_rewrite(skb, p, NAT_DST, baddr, bport);
}

/* The plain (post-translation) CT entry: what a reply looks up. */
static __always_inline int lb_ct_plain(struct pkt *p, struct ct4_key *pk, __u32 backend_id, __u32 revnat_id,
				       __u16 flags, __be32 nat_addr, __be16 nat_port, __u64 update_flags)
{
	struct ct_entry e;

	ct_entry_init(&e, p, 0);
	e.packets_fwd = 0;
	e.bytes_fwd = 0;
	e.backend_id = backend_id;
	e.revnat_id = revnat_id;
	e.flags = flags;
	e.nat_addr = nat_addr;
	e.nat_port = nat_port;
	return bpf_map_update_elem(&weir_ct4, pk, &e, update_flags);
}

/* A new flow to a frontend: choose, record, translate. */
static __always_inline int lb_new_flow(struct __sk_buff *skb, struct pkt *p, struct svc_value *svc,
				       struct ct4_key *sk, int origin, __u8 dir)
{
	struct backend4 *be = NULL;
	__u32 count = svc->count;

	if (count == 0)
		return lb_reject(skb, p, dir);
	__u32 backend_id = lb_select(svc, p, &be);
	if (!backend_id || !be)
		return lb_reject(skb, p, dir);

	__u16 flags = CT_F_SERVICE | (origin == LB_FROM_UPLINK ? CT_F_NODEPORT : 0);
	__be32 client = p->saddr, frontend = p->daddr;
	__be16 cport = p->sport, fport = p->dport;
	__be32 baddr = be->addr;
	__be16 bport = be->port;
	__be32 src = client;      /* the source the translated packets carry */
	__be16 sport = cport;
	struct ct4_key pk;

	if (origin == LB_FROM_POD && baddr == client) {
		flags |= CT_F_HAIRPIN;
		src = LB_HAIRPIN_IP;
	}

	if (origin == LB_FROM_UPLINK && !(be->flags & BACKEND_F_LOCAL) && !(svc->flags & SVC_F_ETP_LOCAL)) {
		/* Remote backend: SNAT to this node so the reply comes back here.
		 * The port is free when the plain entry can be created NOEXIST. */
		flags |= CT_F_SNAT;
		src = NODE_IP;
		int ok = 0;
		for (int i = 0; i < LB_SNAT_TRIES; i++) {
			sport = bpf_htons(LB_SNAT_PORT_MIN + bpf_get_prandom_u32() % LB_SNAT_PORT_COUNT);
			ct_key_of(&pk, src, baddr, sport, bport, p->proto, 0);
			if (lb_ct_plain(p, &pk, backend_id, svc->revnat_id, flags, client, cport, BPF_NOEXIST) == 0) {
				ok = 1;
				break;
			}
		}
		if (!ok)
			return lb_drop(skb, REASON_CT_FULL, dir);
	} else {
		ct_key_of(&pk, src, baddr, sport, bport, p->proto, 0);
		/* SNAT/hairpin: restore the client; otherwise remember the frontend. */
		__be32 keep = (flags & CT_F_HAIRPIN) ? client : frontend;
		__be16 keep_port = (flags & CT_F_HAIRPIN) ? cport : fport;
		if (lb_ct_plain(p, &pk, backend_id, svc->revnat_id, flags, keep, keep_port, BPF_ANY))
			return lb_drop(skb, REASON_CT_FULL, dir);
	}

	struct ct_entry se;
	ct_entry_init(&se, p, 0);
	se.backend_id = backend_id;
	se.revnat_id = svc->revnat_id;
	se.flags = flags;
	se.nat_addr = src;
	se.nat_port = sport;
	if (bpf_map_update_elem(&weir_ct4, sk, &se, BPF_ANY))
		return lb_drop(skb, REASON_CT_FULL, dir);
	if (lb_dnat(skb, p, flags, src, sport, be))
		return lb_drop(skb, REASON_INVALID_PACKET, dir);
	return WEIR_CONTINUE;
}

/* A packet towards a frontend, or of an established service flow. */
static __always_inline int lb_forward(struct __sk_buff *skb, struct pkt *p, int origin, __u8 dir)
{
	struct ct4_key sk;

	ct_key_of(&sk, p->saddr, p->daddr, p->sport, p->dport, p->proto, CT_KEY_SERVICE);
	struct ct_entry *se = bpf_map_lookup_elem(&weir_ct4, &sk);
	if (se) {
		__u32 bid = se->backend_id;
		struct backend4 *be = bpf_map_lookup_elem(&weir_backend4, &bid);
		if (be) {
			struct ct4_key pk;
			__be32 baddr = be->addr;
			__be16 bport = be->port;
			__u16 flags = se->flags;
			ct_key_of(&pk, (flags & (CT_F_SNAT | CT_F_HAIRPIN)) ? se->nat_addr : p->saddr, baddr,
				  (flags & (CT_F_SNAT | CT_F_HAIRPIN)) ? se->nat_port : p->sport, bport, p->proto, 0);
			struct ct_entry *pe = bpf_map_lookup_elem(&weir_ct4, &pk);
			if (pe && !ct_tcp_reopened(pe, p)) {
				ct_touch(se, p, 0);
				ct_tcp_update(pe, p->proto, p->tcp_flags, 0);
				if (lb_dnat(skb, p, flags, se->nat_addr, se->nat_port, be))
					return lb_drop(skb, REASON_INVALID_PACKET, dir);
				return WEIR_CONTINUE;
			}
			/* The reply entry was evicted, or the connection reopened: start over. */
		}
		/* The backend is gone (or the flow ended): pick anew below. */
	}

	struct svc_value *svc = lb_svc_lookup(p->daddr, p->dport, p->proto, origin == LB_FROM_POD);
	if (!svc)
		return WEIR_CONTINUE;
	return lb_new_flow(skb, p, svc, &sk, origin, dir);
}

/* A reply of a translated flow (backend -> client'), found by its swapped
 * tuple: source -> frontend, destination -> the client for SNAT/hairpin.
 * Returns 1 when translated (*ct_flags: the flow's CT_F_*), 0 when not a
 * service reply, -1 on failure. */
static __always_inline int lb_reply(struct __sk_buff *skb, struct pkt *p, __u16 *ct_flags)
{
	struct ct4_key k;

	ct_key_of(&k, p->daddr, p->saddr, p->dport, p->sport, p->proto, 0);
	struct ct_entry *ce = bpf_map_lookup_elem(&weir_ct4, &k);
	if (!ce || !(ce->flags & CT_F_SERVICE))
		return 0;
	__u32 rid = ce->revnat_id;
	struct revnat4 *rn = bpf_map_lookup_elem(&weir_revnat4, &rid);
	if (!rn)
		return 0; /* the service is gone: nothing to restore */
	__be32 fe = lb_frontend_addr(ce, rn);
	__be16 fport = rn->port;
	*ct_flags = ce->flags;
	ct_touch(ce, p, 1);
	/* Policy matches the reply by the tuple the pods saw (policy.h). */
	p->revnat = 1;
	p->pol_saddr = p->saddr;
	p->pol_daddr = p->daddr;
	p->pol_sport = p->sport;
	p->pol_dport = p->dport;
	if (nat_rewrite(skb, p, NAT_SRC, fe, fport))
		return -1;
	if ((ce->flags & (CT_F_SNAT | CT_F_HAIRPIN)) && nat_rewrite(skb, p, NAT_DST, ce->nat_addr, ce->nat_port))
		return -1;
	return 1;
}

/* The reply of a flow that came in from outside (NodePort, externalIP, LB IP)
 * now carries the frontend as source; for a NodePort that is this node's own
 * address, which the stack drops as a martian when it arrives on an
 * interface. Such replies leave directly: FIB lookup, then redirect (with the
 * neighbour resolved by the kernel when it is not known yet). */
static __always_inline int lb_reply_out(struct __sk_buff *skb, struct pkt *p)
{
	struct bpf_fib_lookup fib = {
		.family = 2, /* AF_INET */
		.l4_protocol = p->proto,
		.sport = p->sport,
		.dport = p->dport,
		.tot_len = p->tot_len,
		.ipv4_src = p->saddr,
		.ipv4_dst = p->daddr,
		.ifindex = skb->ifindex,
	};
	struct endpoint4_key ek = { .addr = p->daddr };

	if (bpf_map_lookup_elem(&weir_ep4, &ek))
		return WEIR_CONTINUE; /* a client on this node: normal delivery */
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);

	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		__u8 macs[2 * ETH_ALEN];
		__builtin_memcpy(macs, fib.dmac, ETH_ALEN);
		__builtin_memcpy(macs + ETH_ALEN, fib.smac, ETH_ALEN);
		if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0))
			return TC_ACT_SHOT;
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
	return WEIR_CONTINUE; /* let the stack try (and count) */
}

static __always_inline int lb_l4_ok(struct pkt *p)
{
	return p->has_l4 && (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP);
}

/* A pod sent a packet: a flow to a frontend (DNAT), a packet of an
 * established one, or a backend pod's reply (reverse NAT here, since a reply
 * to a local client never passes to_pod when BPF redirects it). Later
 * fragments carry no ports and pass untranslated (see bpf/README). A NodePort
 * reply that must leave directly sets p->reply_out: from_pod checks policy
 * first, then calls lb_reply_out. */
static __always_inline int lb_from_pod(struct __sk_buff *skb, struct pkt *p)
{
	if (p->proto == IPPROTO_ICMP)
		return lb_icmp_error(skb, p);
	if (!lb_l4_ok(p))
		return WEIR_CONTINUE;
	int ret = lb_forward(skb, p, LB_FROM_POD, DIR_EGRESS);
	if (ret != WEIR_CONTINUE)
		return ret;
	if (p->daddr == p->saddr)
		return WEIR_CONTINUE;
	__u16 flags = 0;
	ret = lb_reply(skb, p, &flags);
	if (ret < 0)
		return lb_drop(skb, REASON_INVALID_PACKET, DIR_EGRESS);
	if (ret > 0 && (flags & CT_F_NODEPORT))
		p->reply_out = 1;
	return WEIR_CONTINUE;
}

/* A packet about to be delivered to a local pod (to_pod, or decapsulated on
 * the uplink): if it is the reply of a translated flow, restore the frontend. */
static __always_inline int lb_rev_nat(struct __sk_buff *skb, struct pkt *p)
{
	if (p->proto == IPPROTO_ICMP)
		return lb_icmp_error(skb, p);
	if (!lb_l4_ok(p))
		return WEIR_CONTINUE;
	__u16 flags = 0;
	int ret = lb_reply(skb, p, &flags);
	if (ret < 0)
		return lb_drop(skb, REASON_INVALID_PACKET, DIR_INGRESS);
	/* A NodePort reply decapsulated on the uplink goes back out directly. */
	if (ret > 0 && (flags & CT_F_NODEPORT))
		return lb_reply_out(skb, p);
	return WEIR_CONTINUE;
}

/* A packet arrived on the uplink (not VXLAN): replies of SNATed NodePort
 * flows (addressed to this node), and NodePort / externalIP / LoadBalancer
 * frontends. */
static __always_inline int lb_from_uplink(struct __sk_buff *skb, struct pkt *p)
{
	if (p->proto == IPPROTO_ICMP)
		return lb_icmp_error(skb, p);
	if (!lb_l4_ok(p))
		return WEIR_CONTINUE;
	if (bpf_map_lookup_elem(&weir_node4, &p->daddr)) {
		__u16 flags = 0;
		int r = lb_reply(skb, p, &flags);
		if (r < 0)
			return lb_drop(skb, REASON_INVALID_PACKET, DIR_UPLINK);
		if (r > 0)
			return lb_reply_out(skb, p);
	}
	return lb_forward(skb, p, LB_FROM_UPLINK, DIR_UPLINK);
}
