/* The map contract: every key and value weir's maps hold, defined once.
 * TypeScript reads these layouts from the compiled object's BTF (codecFor),
 * so a change here that the control plane does not follow fails at load.
 *
 * IPv4 today. IPv6 is designed in, Cilium-style: v6 gets parallel maps with
 * 16-byte address keys (svc6_key, backend6, ct6_key, ...) while every id
 * (svc_id, backend_id, revnat_id, endpoint_id) lives in one 32-bit space
 * shared by both families, so the value structs and the slot/Maglev maps
 * stay as they are. */
#pragma once
#include "common.h"
#include "constants.h"

/* ---- services (kube-proxy replacement) ---- */

/* One entry per ClusterIP, externalIP and LoadBalancer ingress IP, per port
 * and protocol; NodePorts use addr 0 and match any address in node_addrs. */
struct svc4_key {
	__be32 addr;
	__be16 port;
	__u8 proto;             /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 scope;             /* enum svc_scope */
};

struct svc_value {
	__u32 svc_id;           /* stable 32-bit id of this frontend (and scope) */
	__u32 count;            /* backends in lb_slots (slot 1..count); 0 = reject */
	__u32 revnat_id;        /* replies are rewritten to revnat[revnat_id] */
	__u32 affinity_timeout; /* seconds; used with SVC_F_AFFINITY */
	__u16 flags;            /* enum svc_flags */
	__u8 algorithm;         /* enum lb_algorithm */
	__u8 pad;
};

struct backend4 {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 state;             /* enum backend_state */
	__u32 node_id;          /* node the backend runs on (0 = unknown/external) */
	__u8 flags;             /* enum backend_flags */
	__u8 pad[3];
};

struct lb_slot_key {
	__u32 svc_id;
	__u32 slot;             /* 1..count */
};

struct revnat4 {
	__be32 addr;
	__be16 port;
	__u16 pad;
};

struct affinity4_key {
	__be32 client;
	__u32 svc_id;
};

struct affinity_value {
	__u64 last_used;        /* bpf_ktime_get_ns() */
	__u32 backend_id;
	__u32 pad;
};

/* ---- connection tracking ----
 * Keys are in the flow's original direction (initiator -> responder); a
 * reply looks up its swapped tuple. A service flow has two entries: the
 * CT_KEY_SERVICE one keyed by the pre-DNAT tuple (client -> frontend), which
 * pins the backend, and a plain one keyed by the post-DNAT tuple (client ->
 * backend), which names the frontend to restore (revnat_id). ICMP echo uses
 * the echo id as both ports. */
struct ct4_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 flags;             /* enum ct_key_flags */
	__u16 pad;
};

struct ct_entry {
	__u64 created;          /* bpf_ktime_get_ns() */
	__u64 last_seen;
	__u64 packets_fwd;
	__u64 bytes_fwd;
	__u64 packets_rev;
	__u64 bytes_rev;
	__u32 backend_id;       /* the chosen backend (service entries) */
	__u32 revnat_id;        /* 0: not a service flow */
	__u32 policy_gen;       /* policy generation the cached verdict belongs to */
	__be32 nat_addr;        /* CT_F_SNAT: the node address the source became */
	__be16 nat_port;
	__u16 tcp_state;        /* enum ct_tcp_state */
	__u16 flags;            /* enum ct_flags */
	__u16 pad;
};

/* ---- pod network ---- */

/* Local endpoints by pod address (and the node's own gateway address). */
struct endpoint4_key {
	__be32 addr;
};

struct endpoint_info {
	__u32 ifindex;          /* host-side veth */
	__u32 endpoint_id;      /* stable id; metrics and policy key on it */
	__u8 mac[6];            /* the pod's interface MAC */
	__u8 node_mac[6];       /* the host-side veth MAC: the gateway the pod sees */
	__u32 flags;            /* enum endpoint_flags */
	__u32 identity;         /* unused (0): identities live in weir_ipcache4 */
};

/* Remote pod CIDRs -> the node that owns them (LPM). */
struct tunnel4_key {
	__u32 prefixlen;
	__be32 addr;
};

struct tunnel_info {
	__be32 node_addr;       /* remote node's underlay address: VXLAN outer destination */
	__u32 node_id;
	__u8 node_mac[6];       /* remote node's uplink MAC: no ARP across the fabric */
	__u8 vtep_mac[6];       /* inner destination MAC its VXLAN device expects (a
	                         * Linux/flannel node's vtep); all zero: node_mac */
};

/* Addresses of this node: NodePort frontends (addr 0) match any of them. */
struct node_addr_value {
	__u32 flags;
};

/* ---- network policy (bpf/POLICY.md, control/policy/README.md) ----
 *
 * Identities are node-local numbers for classes of addresses that no policy
 * can tell apart: (namespace, pod labels, the policy ipBlocks holding the
 * address) for pods; (host | remote-node | world, ipBlocks) for the rest.
 * weir_ipcache4 maps every address (LPM: pod /32s, node /32s, policy CIDRs
 * and their excepts) to one. A local endpoint that policies isolate has a
 * policy id per direction (weir_ep_policy); weir_policy4 holds, per policy
 * id, the (peer identity, protocol, port prefix) it allows. Endpoints whose
 * compiled rules are identical share one policy id. */

struct ipcache4_key {
	__u32 prefixlen;        /* 0..32 */
	__be32 addr;
};

struct ipcache_value {
	__u32 identity;         /* enum policy_identity or >= ID_FIRST_DYNAMIC */
	__u32 flags;            /* 0 (reserved) */
};

/* weir_ep_policy[endpoint_id]; no entry: the endpoint is isolated in neither
 * direction. A zero id: not isolated in that direction. */
struct ep_policy {
	__u32 ingress_id;
	__u32 egress_id;
};

/* LPM key. prefixlen counts from policy_id: 64 = (policy, identity), any
 * protocol and port; 80 = that protocol, any port; 80 + k = the first k bits
 * of port (an endPort range is a few such prefixes). identity ID_ANY: any
 * peer, looked up after the peer's own identity. policy_id and identity are
 * always matched whole, so their byte order does not matter; port is
 * big-endian so its prefixes are ranges. */
struct policy4_key {
	__u32 prefixlen;
	__u32 policy_id;
	__u32 identity;
	__u8 proto;             /* IPPROTO_*; 0 with prefixlen 64 */
	__u8 pad;
	__be16 port;
};

struct policy_value {
	__u32 flags;            /* enum policy_flags */
};

/* weir_policy_gen[0]: bumped by the control plane after every change to the
 * policy maps; a conntrack entry's cached verdict holds for its gen only. */
struct policy_gen {
	__u32 gen;
};

/* Non-first IPv4 fragments carry no ports: the first fragment's ports and
 * verdict are remembered by (addresses, IP id, protocol). */
struct frag4_key {
	__be32 saddr;
	__be32 daddr;
	__be16 id;
	__u8 proto;
	__u8 pad;
};

struct frag_value {
	__be16 sport;
	__be16 dport;
	__u8 flags;             /* enum frag_flags */
	__u8 pad[3];
};

/* ---- observability ---- */

struct metrics_key {
	__u32 endpoint_id;      /* 0: not tied to an endpoint */
	__u8 reason;            /* enum weir_reason */
	__u8 dir;               /* enum weir_dir */
	__u16 pad;
};

struct metrics_value {
	__u64 packets;
	__u64 bytes;
};

struct event {
	__u64 time;             /* bpf_ktime_get_ns() */
	__u32 endpoint_id;
	__u32 identity;         /* peer identity (policy) */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 type;              /* enum weir_event_type */
	__u8 reason;            /* enum weir_reason */
	__u8 dir;               /* enum weir_dir */
	__u32 ifindex;
	__u32 len;
	__u8 match;             /* enum policy_match (EVENT_POLICY_VERDICT) */
	__u8 pad[3];
	__u32 policy_id;        /* the local endpoint's policy id in dir (0: none) */
};

/* weir_event_limit (per CPU): the ring-buffer rate limit, EVENTS_PER_SEC per
 * CPU per one-second window; events over it are counted, not sent. */
struct event_limit {
	__u64 window;           /* bpf_ktime_get_ns() / 1e9 of the current window */
	__u64 sent;             /* in this window */
	__u64 suppressed;       /* in total */
};
