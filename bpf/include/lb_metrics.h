/* Per-reason packet counters of the service path in weir_metrics. */
#pragma once
#include "common.h"
#include "maps.h"
#include "events.h"

static __always_inline void lb_count(__u8 reason, __u8 dir, __u32 bytes)
{
	struct metrics_key k = { .endpoint_id = 0, .reason = reason, .dir = dir };
	struct metrics_value *v = bpf_map_lookup_elem(&weir_metrics, &k);

	if (!v) {
		struct metrics_value zero = {};
		bpf_map_update_elem(&weir_metrics, &k, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&weir_metrics, &k);
		if (!v)
			return;
	}
	/* Per-CPU values: no other CPU writes this slot. */
	v->packets += 1;
	v->bytes += bytes;
}

static __always_inline int lb_drop(struct __sk_buff *skb, __u8 reason, __u8 dir)
{
	lb_count(reason, dir, skb->len);
	ev_drop_skb(skb, reason, dir, 0);
	return TC_ACT_SHOT;
}
