/* Service lookup and backend choice: random slots, Maglev, session affinity. */
#pragma once
#include "common.h"
#include "config.h"
#include "maps.h"
#include "conntrack.h"

/* The frontend a packet is addressed to. Exact (ClusterIP, externalIP,
 * LoadBalancer IP) first, then NodePort (addr 0) when the destination is one
 * of this node's addresses. In-cluster clients use the internal scope of a
 * service whose traffic policies split its backend sets. */
static __always_inline struct svc_value *lb_svc_lookup(__be32 daddr, __be16 dport, __u8 proto, int in_cluster)
{
	struct svc4_key k = { .addr = daddr, .port = dport, .proto = proto, .scope = SVC_SCOPE_EXT };
	struct svc_value *v = bpf_map_lookup_elem(&weir_svc4, &k);

	if (!v) {
		if (!bpf_map_lookup_elem(&weir_node4, &daddr))
			return NULL;
		k.addr = 0;
		v = bpf_map_lookup_elem(&weir_svc4, &k);
		if (!v)
			return NULL;
	}
	if (in_cluster && (v->flags & SVC_F_TWO_SCOPES)) {
		k.scope = SVC_SCOPE_INT;
		struct svc_value *iv = bpf_map_lookup_elem(&weir_svc4, &k);
		if (iv)
			v = iv;
	}
	return v;
}

static __always_inline __u32 lb_rotl(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 lb_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = lb_rotl(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = lb_rotl(h, 13);
	return h * 5 + 0xe6546b64;
}

/* Flow hash for Maglev (murmur3-style over host-order words, so every node
 * and the TypeScript tests compute the same value; see test/service/). */
static __always_inline __u32 lb_flow_hash(__be32 saddr, __be32 daddr, __be16 sport, __be16 dport, __u8 proto)
{
	__u32 h = 0x9747b28c ^ proto;

	h = lb_mix(h, bpf_ntohl(saddr));
	h = lb_mix(h, bpf_ntohl(daddr));
	h = lb_mix(h, ((__u32)bpf_ntohs(sport) << 16) | bpf_ntohs(dport));
	h ^= 12;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 lb_pick_random(struct svc_value *svc)
{
	struct lb_slot_key sk = { .svc_id = svc->svc_id, .slot = bpf_get_prandom_u32() % svc->count + 1 };
	__u32 *id = bpf_map_lookup_elem(&weir_lb_slots, &sk);

	return id ? *id : 0;
}

/* Maglev: the flow hash indexes the service's table of MAGLEV_M backend ids.
 * Without a table (not written yet) the service falls back to its slots. */
static __always_inline __u32 lb_pick_maglev(struct svc_value *svc, struct pkt *p)
{
	__u32 svc_id = svc->svc_id;
	void *table = bpf_map_lookup_elem(&weir_maglev, &svc_id);

	if (!table)
		return lb_pick_random(svc);
	__u32 idx = lb_flow_hash(p->saddr, p->daddr, p->sport, p->dport, p->proto) % MAGLEV_M;
	__u32 *id = bpf_map_lookup_elem(table, &idx);
	return id ? *id : 0;
}

/* Picks the backend of a new flow. Returns its id (0: none) and the backend. */
static __always_inline __u32 lb_select(struct svc_value *svc, struct pkt *p, struct backend4 **be)
{
	struct affinity4_key ak = { .client = p->saddr, .svc_id = svc->svc_id };
	__u64 now = 0;
	__u32 id;

	*be = NULL;
	if (svc->flags & SVC_F_AFFINITY) {
		struct affinity_value *av = bpf_map_lookup_elem(&weir_affinity4, &ak);
		now = bpf_ktime_get_ns();
		if (av && now - av->last_used <= (__u64)svc->affinity_timeout * NSEC_PER_SEC) {
			id = av->backend_id;
			*be = bpf_map_lookup_elem(&weir_backend4, &id);
			if (*be) {
				av->last_used = now;
				return id;
			}
		}
	}

	id = svc->algorithm == LB_ALG_MAGLEV ? lb_pick_maglev(svc, p) : lb_pick_random(svc);
	if (!id)
		return 0;
	*be = bpf_map_lookup_elem(&weir_backend4, &id);
	if (!*be)
		return 0;
	if (svc->flags & SVC_F_AFFINITY) {
		struct affinity_value nv = { .last_used = now, .backend_id = id };
		bpf_map_update_elem(&weir_affinity4, &ak, &nv, BPF_ANY);
	}
	return id;
}
