/* Values shared by the datapath and the control plane (mirrored in
 * control/datapath/constants.ts; a test checks them against this object's BTF
 * enums). */
#pragma once

/* svc_value.algorithm */
enum lb_algorithm {
	LB_ALG_RANDOM = 0,
	LB_ALG_MAGLEV = 1,
};

/* svc4_key.scope: the external scope holds every service; a service whose
 * internal and external backend sets differ (a traffic policy Local) gets a
 * second, internal-scope entry and SVC_F_TWO_SCOPES on the external one. */
enum svc_scope {
	SVC_SCOPE_EXT = 0,
	SVC_SCOPE_INT = 1,
};

/* svc_value.flags */
enum svc_flags {
	SVC_F_CLUSTERIP = 1 << 0,
	SVC_F_NODEPORT = 1 << 1,
	SVC_F_EXTERNALIP = 1 << 2,
	SVC_F_LOADBALANCER = 1 << 3,
	SVC_F_AFFINITY = 1 << 4,     /* sessionAffinity: ClientIP */
	SVC_F_ETP_LOCAL = 1 << 5,    /* externalTrafficPolicy: Local */
	SVC_F_ITP_LOCAL = 1 << 6,    /* internalTrafficPolicy: Local */
	SVC_F_TWO_SCOPES = 1 << 7,   /* look up the internal scope for in-cluster clients */
};

/* backend4.state */
enum backend_state {
	BACKEND_ACTIVE = 0,
	BACKEND_TERMINATING = 1,     /* serving but terminating: used only when no active ones remain */
};

/* backend4.flags */
enum backend_flags {
	BACKEND_F_LOCAL = 1 << 0,    /* the backend runs on this node */
};

/* ct4_key.flags */
enum ct_key_flags {
	CT_KEY_SERVICE = 1 << 0,     /* pre-DNAT tuple (client -> frontend): holds the backend choice */
	CT_KEY_POLICY = 1 << 1,      /* a flow to/from a local endpoint, keyed as the pods see it
	                              * (after DNAT, before reverse NAT): its policy verdict */
};

/* ct_entry.flags */
enum ct_flags {
	CT_F_SERVICE = 1 << 0,       /* the flow was DNATed to a backend (revnat_id names the frontend) */
	CT_F_NODEPORT = 1 << 1,      /* arrived at the uplink for a NodePort/externalIP/LB address */
	CT_F_SNAT = 1 << 2,          /* source rewritten to the node (nat_addr/nat_port) */
	CT_F_HAIRPIN = 1 << 3,       /* client and backend are the same pod */
	CT_F_POLICY_ALLOWED = 1 << 4,/* policy verdict cached at policy_gen */
};

/* ct_entry.tcp_state bits */
enum ct_tcp_state {
	CT_TCP_SYN_FWD = 1 << 0,
	CT_TCP_SYN_REV = 1 << 1,
	CT_TCP_FIN_FWD = 1 << 2,
	CT_TCP_FIN_REV = 1 << 3,
	CT_TCP_RST = 1 << 4,
	CT_TCP_ESTABLISHED = 1 << 5,
};

/* endpoint_info.flags */
enum endpoint_flags {
	EP_F_HOST = 1 << 0,          /* the node itself (gateway address), not a pod */
};

/* Why a packet was dropped or passed; metrics_key.reason and event.reason. */
enum weir_reason {
	REASON_FORWARDED = 0,
	REASON_POLICY_DENIED_INGRESS = 1,
	REASON_POLICY_DENIED_EGRESS = 2,
	REASON_NO_ROUTE = 3,
	REASON_INVALID_PACKET = 4,
	REASON_NO_BACKEND = 5,       /* service without ready backends: rejected */
	REASON_SPOOFED_SOURCE = 6,
	REASON_UNSUPPORTED = 7,
	REASON_CT_FULL = 8,
	REASON_FRAG_DENIED = 9,
	REASON_ENCAP_FAILED = 10,
	REASON_MTU_EXCEEDED = 11,
	REASON_FRAG_UNKNOWN = 12,    /* a later fragment whose first fragment was not seen */
	REASON_MAX,
};

/* metrics_key.dir */
enum weir_dir {
	DIR_EGRESS = 0,              /* leaving a pod */
	DIR_INGRESS = 1,             /* entering a pod */
	DIR_UPLINK = 2,              /* arriving at the node's uplink */
};

/* Reserved identities (ipcache_value.identity, policy4_key.identity). */
enum policy_identity {
	ID_ANY = 0,                  /* policy4_key only: any peer */
	ID_HOST = 1,                 /* this node's own addresses */
	ID_WORLD = 2,                /* no ipcache entry: outside the cluster */
	ID_REMOTE_NODE = 3,          /* other nodes' addresses */
	ID_FIRST_DYNAMIC = 256,      /* pods, and reserved kinds within policy ipBlocks */
};

/* policy_value.flags */
enum policy_flags {
	POLICY_F_ALLOW = 1 << 0,
	POLICY_F_L4 = 1 << 1,        /* the entry names a protocol (and maybe ports) */
};

/* event.match: what let a flow through (or nothing) */
enum policy_match {
	MATCH_NONE = 0,              /* denied */
	MATCH_L3_L4 = 1,             /* the peer's identity, with protocol/port */
	MATCH_L3 = 2,                /* the peer's identity, any port */
	MATCH_L4 = 3,                /* any peer, with protocol/port */
	MATCH_ALL = 4,               /* any peer, any port */
	MATCH_NOT_ISOLATED = 5,      /* no policy selects the endpoint in this direction */
	MATCH_TRACKED = 6,           /* a reply / packet of a flow already allowed */
};

/* frag_value.flags */
enum frag_flags {
	FRAG_F_ALLOWED = 1 << 0,
};

/* event.type */
enum weir_event_type {
	EVENT_DROP = 1,
	EVENT_POLICY_VERDICT = 2,
	EVENT_TRACE = 3,
};
