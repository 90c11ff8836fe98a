/* NetworkPolicy enforcement: identities (weir_ipcache4), per-endpoint policy
 * ids (weir_ep_policy), allow entries (weir_policy4), verdicts cached in
 * conntrack (weir_ct4, CT_KEY_POLICY entries at weir_policy_gen), fragments
 * (weir_frag4), counters (weir_metrics) and events (events.h).
 * Design and limits: bpf/POLICY.md.
 *
 * One call of pol_enforce() per packet and program covers every check this
 * node makes on it: egress of the sending local endpoint (from_pod) and
 * ingress of the receiving local endpoint. The flow's single policy CT entry
 * is created only when all of them allowed it, so a hit stands for all. */
#pragma once
#include "common.h"
#include "config.h"
#include "maps.h"
#include "parse.h"
#include "conntrack.h"
#include "events.h"

#ifndef LB_HAIRPIN_IP
#define LB_HAIRPIN_IP bpf_htonl(0xa9fe2a01)   /* lb.h: the source of hairpinned flows */
#endif

/* ---- counters ---- */

static __always_inline void pol_count(struct __sk_buff *skb, __u32 endpoint_id, __u8 reason, __u8 dir)
{
	struct metrics_key k = { .endpoint_id = endpoint_id, .reason = reason, .dir = dir };
	struct metrics_value *v = bpf_map_lookup_elem(&weir_metrics, &k);

	if (v) {
		v->packets++;   /* per-CPU values: no other CPU writes this slot */
		v->bytes += skb->len;
	} else {
		struct metrics_value init = { .packets = 1, .bytes = skb->len };
		bpf_map_update_elem(&weir_metrics, &k, &init, BPF_NOEXIST);
	}
}

/* ---- lookups ---- */

static __always_inline __u32 pol_identity(__be32 addr)
{
	struct ipcache4_key k = { .prefixlen = 32, .addr = addr };
	struct ipcache_value *v = bpf_map_lookup_elem(&weir_ipcache4, &k);

	return v ? v->identity : ID_WORLD;
}

static __always_inline __u32 pol_gen(void)
{
	__u32 zero = 0;
	struct policy_gen *g = bpf_map_lookup_elem(&weir_policy_gen, &zero);

	return g ? g->gen : 0;
}

/* Ports name a flow's responder only for these; the rest (ICMP, ...) match
 * entries without a protocol (prefixlen 64) only. */
static __always_inline int pol_has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == 132 /* SCTP */;
}

/* 1 when policy_id allows (identity, proto, port); *match says how. Two LPM
 * lookups at most: the peer's own identity, then ID_ANY. */
static __always_inline int pol_verdict(__u32 policy_id, __u32 identity, __u8 proto, __be16 port, __u8 *match)
{
	struct policy4_key k = { .policy_id = policy_id, .identity = identity };

	if (pol_has_ports(proto)) {
		k.prefixlen = 96;
		k.proto = proto;
		k.port = port;
	} else {
		k.prefixlen = 64;
	}
	struct policy_value *v = bpf_map_lookup_elem(&weir_policy4, &k);
	if (v && (v->flags & POLICY_F_ALLOW)) {
		*match = (v->flags & POLICY_F_L4) ? MATCH_L3_L4 : MATCH_L3;
		return 1;
	}
	k.identity = ID_ANY;
	v = bpf_map_lookup_elem(&weir_policy4, &k);
	if (v && (v->flags & POLICY_F_ALLOW)) {
		*match = (v->flags & POLICY_F_L4) ? MATCH_L4 : MATCH_ALL;
		return 1;
	}
	*match = MATCH_NONE;
	return 0;
}

/* The endpoint's policy ids (0, 0 when none). */
static __always_inline void pol_ids(__u32 endpoint_id, __u32 *ingress_id, __u32 *egress_id)
{
	struct ep_policy *e = bpf_map_lookup_elem(&weir_ep_policy, &endpoint_id);

	*ingress_id = e ? e->ingress_id : 0;
	*egress_id = e ? e->egress_id : 0;
}

/* ---- the checks ---- */

struct pol_who {
	__u32 src_ep;           /* sending local endpoint (egress), 0: none */
	__u32 dst_ep;           /* receiving local endpoint (ingress), 0: none */
	__u8 dir;               /* where a plain (not policy) drop is counted */
};

/* Evaluates the flow t against every applicable policy. 1: allowed. 0:
 * denied, *reason / *dir / *ep say by which side. Sends a verdict event
 * for each isolated side it evaluated. */
static __always_inline int pol_evaluate(struct __sk_buff *skb, const struct ev_tuple *t, const struct pol_who *w,
					__u8 *reason, __u8 *dir, __u32 *ep)
{
	__u32 in_id, out_id;
	__u8 match;

	if (w->src_ep) {
		pol_ids(w->src_ep, &in_id, &out_id);
		if (out_id) {
			__u32 peer = pol_identity(t->daddr);
			int ok = pol_verdict(out_id, peer, t->proto, t->dport, &match);
			ev_send(skb, EVENT_POLICY_VERDICT, ok ? REASON_FORWARDED : REASON_POLICY_DENIED_EGRESS,
				DIR_EGRESS, w->src_ep, peer, match, out_id, t);
			if (!ok) {
				*reason = REASON_POLICY_DENIED_EGRESS;
				*dir = DIR_EGRESS;
				*ep = w->src_ep;
				return 0;
			}
		}
	}
	if (w->dst_ep) {
		pol_ids(w->dst_ep, &in_id, &out_id);
		if (in_id) {
			/* hairpin: the pod reaching itself through a Service */
			__u32 peer = pol_identity(t->saddr == LB_HAIRPIN_IP ? t->daddr : t->saddr);
			int ok = pol_verdict(in_id, peer, t->proto, t->dport, &match);
			ev_send(skb, EVENT_POLICY_VERDICT, ok ? REASON_FORWARDED : REASON_POLICY_DENIED_INGRESS,
				DIR_INGRESS, w->dst_ep, peer, match, in_id, t);
			if (!ok) {
				*reason = REASON_POLICY_DENIED_INGRESS;
				*dir = DIR_INGRESS;
				*ep = w->dst_ep;
				return 0;
			}
		}
	}
	return 1;
}

/* 1 when one of the endpoints is isolated in its direction (*reason, *dir,
 * *ep name the first such side). */
static __always_inline int pol_isolated(const struct pol_who *w, __u8 *reason, __u8 *dir, __u32 *ep)
{
	__u32 in_id, out_id;

	if (w->src_ep) {
		pol_ids(w->src_ep, &in_id, &out_id);
		if (out_id) {
			*reason = REASON_POLICY_DENIED_EGRESS;
			*dir = DIR_EGRESS;
			*ep = w->src_ep;
			return 1;
		}
	}
	if (w->dst_ep) {
		pol_ids(w->dst_ep, &in_id, &out_id);
		if (in_id) {
			*reason = REASON_POLICY_DENIED_INGRESS;
			*dir = DIR_INGRESS;
			*ep = w->dst_ep;
			return 1;
		}
	}
	return 0;
}

static __always_inline int pol_drop(struct __sk_buff *skb, const struct ev_tuple *t, __u8 reason, __u8 dir, __u32 ep)
{
	pol_count(skb, ep, reason, dir);
	ev_send(skb, EVENT_DROP, reason, dir, ep, 0, MATCH_NONE, 0, t);
	return TC_ACT_SHOT;
}

static __always_inline int pol_tracked(__be32 s, __be32 d, __be16 sp, __be16 dp, __u8 proto)
{
	struct ct4_key k;

	ct_key_of(&k, s, d, sp, dp, proto, CT_KEY_POLICY);
	if (bpf_map_lookup_elem(&weir_ct4, &k))
		return 1;
	ct_key_of(&k, d, s, dp, sp, proto, CT_KEY_POLICY);
	return bpf_map_lookup_elem(&weir_ct4, &k) != NULL;
}

/* Reads the quote of an ICMP error at the packet's current state into q_*.
 * 0 when readable. */
static __always_inline int pol_read_quote(struct __sk_buff *skb, struct pkt *p)
{
	struct iphdr ip;
	__u32 off = p->l4_off + sizeof(struct icmphdr);

	if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) || ip.version != 4 || ip.ihl < 5)
		return -1;
	p->q_saddr = ip.saddr;
	p->q_daddr = ip.daddr;
	p->q_proto = ip.protocol;
	p->q_sport = p->q_dport = 0;
	off += ip.ihl * 4;
	if (pol_has_ports(ip.protocol)) {
		__be16 ports[2];
		if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)))
			return -1;
		p->q_sport = ports[0];
		p->q_dport = ports[1];
	} else if (ip.protocol == IPPROTO_ICMP) {
		struct icmphdr ic;
		if (bpf_skb_load_bytes(skb, off, &ic, sizeof(ic)))
			return -1;
		if (ic.type == ICMP_ECHO || ic.type == ICMP_ECHOREPLY)
			p->q_sport = p->q_dport = ic.un.echo.id;
	}
	return 0;
}

static __always_inline int pol_is_icmp_error(const struct pkt *p)
{
	return p->proto == IPPROTO_ICMP && p->has_l4 && p->frag == FRAG_NONE &&
	       (p->icmp_type == ICMP_DEST_UNREACH || p->icmp_type == ICMP_TIME_EXCEEDED || p->icmp_type == 12 /* param problem */);
}

/* Right after parsing, before lb translates anything: the arrival addresses
 * (fragment key) and an ICMP error's quote as it arrived. */
static __always_inline void pol_prepare(struct __sk_buff *skb, struct pkt *p)
{
	p->in_saddr = p->saddr;
	p->in_daddr = p->daddr;
	if (unlikely(pol_is_icmp_error(p)))
		p->icmp_err = pol_read_quote(skb, p) == 0 ? 1 : 2;
}

static __always_inline void pol_frag_remember(const struct pkt *p, const struct ev_tuple *t, int allowed)
{
	struct frag4_key k = { .saddr = p->in_saddr, .daddr = p->in_daddr, .id = p->ip_id, .proto = p->proto };
	struct frag_value v = { .sport = t->sport, .dport = t->dport, .flags = allowed ? FRAG_F_ALLOWED : 0 };

	bpf_map_update_elem(&weir_frag4, &k, &v, BPF_ANY);
}

/* The policy step. WEIR_CONTINUE: allowed (counted per sending endpoint as
 * REASON_FORWARDED egress; ingress is counted where it is delivered).
 * TC_ACT_SHOT: dropped, counted and reported. */
static __always_inline int pol_enforce(struct __sk_buff *skb, struct pkt *p, const struct pol_who *w)
{
	struct ev_tuple t;
	__u8 reason = 0, dir = w->dir;
	__u32 ep = 0;

	if (!w->src_ep && !w->dst_ep)
		return WEIR_CONTINUE;
	if (p->revnat) {
		t.saddr = p->pol_saddr;
		t.daddr = p->pol_daddr;
		t.sport = p->pol_sport;
		t.dport = p->pol_dport;
	} else {
		t.saddr = p->saddr;
		t.daddr = p->daddr;
		t.sport = p->sport;
		t.dport = p->dport;
	}
	t.proto = p->proto;

	/* A later fragment follows its first fragment's verdict. */
	if (unlikely(p->frag == FRAG_LATER)) {
		struct frag4_key fk = { .saddr = p->in_saddr, .daddr = p->in_daddr, .id = p->ip_id, .proto = p->proto };
		struct frag_value *fv = bpf_map_lookup_elem(&weir_frag4, &fk);
		if (fv) {
			t.sport = fv->sport;
			t.dport = fv->dport;
			if (!(fv->flags & FRAG_F_ALLOWED)) {
				pol_isolated(w, &reason, &dir, &ep);
				return pol_drop(skb, &t, REASON_FRAG_DENIED, dir, ep);
			}
			goto allowed;
		}
		if (pol_isolated(w, &reason, &dir, &ep))
			return pol_drop(skb, &t, REASON_FRAG_UNKNOWN, dir, ep);
		goto allowed;
	}

	/* An ICMP error about a tracked flow is part of it (RELATED): its quote
	 * as it arrived or as lb translated it, in either direction. */
	if (unlikely(p->icmp_err)) {
		if (p->icmp_err == 1 && pol_tracked(p->q_saddr, p->q_daddr, p->q_sport, p->q_dport, p->q_proto))
			goto allowed;
		if (p->icmp_err == 1 && pol_read_quote(skb, p) == 0 &&
		    pol_tracked(p->q_saddr, p->q_daddr, p->q_sport, p->q_dport, p->q_proto))
			goto allowed;
		/* not about a flow we know: allowed only where nothing is isolated */
		if (pol_isolated(w, &reason, &dir, &ep))
			return pol_drop(skb, &t, reason, dir, ep);
		goto allowed;
	}

	__u32 gen = pol_gen();
	struct ct4_key k;
	ct_key_of(&k, t.saddr, t.daddr, t.sport, t.dport, t.proto, CT_KEY_POLICY);
	struct ct_entry *e = bpf_map_lookup_elem(&weir_ct4, &k);
	if (likely(e != NULL)) {
		/* No per-packet bookkeeping on the entry (no clock read, no shared
		 * cache-line writes): it lives until the LRU evicts it. */
		if (likely(e->policy_gen == gen))
			goto allowed;
		/* The policy changed since the verdict: decide again. */
		if (!pol_evaluate(skb, &t, w, &reason, &dir, &ep)) {
			bpf_map_delete_elem(&weir_ct4, &k);
			goto denied;
		}
		e->policy_gen = gen;
		goto allowed;
	}

	/* A reply of a flow already allowed. */
	struct ct4_key rk;
	ct_key_of(&rk, t.daddr, t.saddr, t.dport, t.sport, t.proto, CT_KEY_POLICY);
	if (bpf_map_lookup_elem(&weir_ct4, &rk))
		goto allowed;

	/* A new flow. */
	if (!pol_evaluate(skb, &t, w, &reason, &dir, &ep))
		goto denied;
	{
		struct ct_entry ne;
		ct_entry_init(&ne, p, 0);
		ne.flags = CT_F_POLICY_ALLOWED;
		ne.policy_gen = gen;
		/* A full table does not block traffic that policy allows: the
		 * verdict is taken again on the next packet. */
		bpf_map_update_elem(&weir_ct4, &k, &ne, BPF_ANY);
	}

allowed:
	if (p->frag == FRAG_FIRST)
		pol_frag_remember(p, &t, 1);
	if (w->src_ep)
		pol_count(skb, w->src_ep, REASON_FORWARDED, DIR_EGRESS);
	return WEIR_CONTINUE;

denied:
	if (p->frag == FRAG_FIRST)
		pol_frag_remember(p, &t, 0);
	return pol_drop(skb, &t, reason, dir, ep);
}

/* Anti-spoofing (from_pod): the IPv4 source must be the endpoint bound to
 * the veth the packet came from. Returns that endpoint, or NULL. */
static __always_inline struct endpoint_info *pol_source_endpoint(struct __sk_buff *skb, const struct pkt *p)
{
	struct endpoint4_key k = { .addr = p->saddr };
	struct endpoint_info *ep = bpf_map_lookup_elem(&weir_ep4, &k);

	if (!ep || ep->ifindex != skb->ifindex || (ep->flags & EP_F_HOST))
		return NULL;
	return ep;
}

static __always_inline int pol_drop_pkt(struct __sk_buff *skb, const struct pkt *p, __u8 reason, __u8 dir, __u32 ep)
{
	struct ev_tuple t = { .saddr = p->saddr, .daddr = p->daddr, .sport = p->sport, .dport = p->dport, .proto = p->proto };

	return pol_drop(skb, &t, reason, dir, ep);
}
