/* Every map weir's programs share. All are pinned by name under the node's
 * pin root (default /sys/fs/bpf/weir), so pod.o and uplink.o share them and
 * an agent restart or program upgrade finds them again, never flushed.
 * Sizes here are defaults; the agent overrides max_entries from its flags.
 * Hash maps the control plane writes are BPF_F_NO_PREALLOC so their kernel
 * memory follows the cluster's size; conntrack and affinity are LRU. */
#pragma once
#include "structs.h"

#ifndef LIBBPF_PIN_BY_NAME
#define LIBBPF_PIN_BY_NAME 1
#endif

/* Maglev table size M (a prime). The agent sets the inner map's max_entries
 * and the MAGLEV_M constant together. */
#define MAGLEV_M_DEFAULT 16381

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct svc4_key);
	__type(value, struct svc_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_svc4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);                    /* backend_id */
	__type(value, struct backend4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_backend4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1048576);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb_slot_key);
	__type(value, __u32);                  /* backend_id */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_lb_slots SEC(".maps");

/* svc_id -> an array of M backend ids, only for Maglev services. A new table
 * is built in a fresh inner map and swapped in with one update, so a packet
 * never sees a half-written table. BPF_F_MMAPABLE lets the agent fill the
 * fresh table through a mapping (a copy) instead of M map updates; the kernel
 * requires every inner map to carry the template's flags. */
struct weir_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAGLEV_M_DEFAULT);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 65536);
	__type(key, __u32);                    /* svc_id */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct weir_maglev_inner);
} weir_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);                    /* revnat_id */
	__type(value, struct revnat4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_revnat4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 524288);
	__type(key, struct ct4_key);
	__type(value, struct ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ct4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct affinity4_key);
	__type(value, struct affinity_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_affinity4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct endpoint4_key);
	__type(value, struct endpoint_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ep4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tunnel4_key);
	__type(value, struct tunnel_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_tunnel4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __be32);                   /* an address of this node */
	__type(value, struct node_addr_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_node4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct metrics_key);
	__type(value, struct metrics_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_metrics SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_events SEC(".maps");

/* ---- network policy ---- */

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache4_key);
	__type(value, struct ipcache_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ipcache4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);                    /* endpoint_id */
	__type(value, struct ep_policy);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ep_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy4_key);
	__type(value, struct policy_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_policy4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct policy_gen);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_policy_gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct frag4_key);
	__type(value, struct frag_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_frag4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event_limit);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_event_limit SEC(".maps");
