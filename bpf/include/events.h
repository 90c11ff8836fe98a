/* Drop and policy-verdict events to the weir_events ring buffer, rate
 * limited per CPU: at most EVENTS_PER_SEC events per CPU per one-second
 * window (weir_event_limit); the rest are counted in event_limit.suppressed,
 * as are events the ring had no room for. Design: bpf/POLICY.md. */
#pragma once
#include "common.h"
#include "config.h"
#include "maps.h"
#include "parse.h"

#ifndef NSEC_PER_SEC
#define NSEC_PER_SEC 1000000000ULL
#endif

/* 1: the caller may send one event now (and it is counted as sent). */
static __always_inline int ev_admit(__u64 now)
{
	__u32 zero = 0;
	struct event_limit *l = bpf_map_lookup_elem(&weir_event_limit, &zero);

	if (!l)
		return 0;
	__u64 window = now / NSEC_PER_SEC;
	if (l->window != window) {
		l->window = window;
		l->sent = 0;
	}
	if (l->sent >= EVENTS_PER_SEC) {
		l->suppressed++;
		return 0;
	}
	l->sent++;
	return 1;
}

static __always_inline void ev_lost(void)
{
	__u32 zero = 0;
	struct event_limit *l = bpf_map_lookup_elem(&weir_event_limit, &zero);

	if (l)
		l->suppressed++;
}

struct ev_tuple {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
};

static __always_inline void ev_send(struct __sk_buff *skb, __u8 type, __u8 reason, __u8 dir, __u32 endpoint_id,
				    __u32 identity, __u8 match, __u32 policy_id, const struct ev_tuple *t)
{
	__u64 now = bpf_ktime_get_ns();

	if (!ev_admit(now))
		return;
	struct event e = {
		.time = now,
		.endpoint_id = endpoint_id,
		.identity = identity,
		.saddr = t->saddr,
		.daddr = t->daddr,
		.sport = t->sport,
		.dport = t->dport,
		.proto = t->proto,
		.type = type,
		.reason = reason,
		.dir = dir,
		.ifindex = skb->ifindex,
		.len = skb->len,
		.match = match,
		.policy_id = policy_id,
	};
	if (bpf_ringbuf_output(&weir_events, &e, sizeof(e), 0))
		ev_lost();
}

/* A drop event for a packet without a parsed summary (route/lb drops): the
 * tuple is read from the frame (Ethernet + IPv4; ports when unfragmented
 * TCP/UDP). Only on drop paths. */
static __always_inline void ev_drop_skb(struct __sk_buff *skb, __u8 reason, __u8 dir, __u32 endpoint_id)
{
	struct ev_tuple t = {};
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr), &ip, sizeof(ip)) == 0 && ip.version == 4) {
		t.saddr = ip.saddr;
		t.daddr = ip.daddr;
		t.proto = ip.protocol;
		if ((ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP) && !(ip.frag_off & bpf_htons(0x1fff))) {
			__be16 ports[2];
			if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + ip.ihl * 4, ports, sizeof(ports)) == 0) {
				t.sport = ports[0];
				t.dport = ports[1];
			}
		}
	}
	ev_send(skb, EVENT_DROP, reason, dir, endpoint_id, 0, MATCH_NONE, 0, &t);
}
