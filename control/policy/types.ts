// The policy compiler's output: what control/policy/compile.ts makes from the
// cluster (pure), and what control/policy/reconciler.ts writes to the maps
// (weir_ipcache4, weir_ep_policy, weir_policy4, weir_policy_gen; the layouts
// are in bpf/include/structs.h, the design in control/policy/README.md).
import type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '@kubernetes/client-node';

/** Reserved identities (bpf/include/constants.h enum policy_identity). */
export const ID_ANY = 0;
export const ID_HOST = 1;
export const ID_WORLD = 2;
export const ID_REMOTE_NODE = 3;
export const ID_FIRST_DYNAMIC = 256;

export type IdentityKind = 'pod' | 'host' | 'remote-node' | 'world';

/** What an identity stands for: a class of addresses no policy can tell apart. */
export interface IdentityInfo {
  id: number;
  kind: IdentityKind;
  /** Pods: their namespace and labels. */
  namespace?: string;
  labels?: Record<string, string>;
  /** The policy ipBlocks ("cidr except a,b") whose ranges hold these addresses, sorted. */
  cidrs: string[];
  /** The canonical string the id was allocated for (stable across syncs and restarts). */
  key: string;
}

/**
 * One allowed (peer, protocol, ports) for a policy id. identity ID_ANY: any
 * peer. proto 0: any protocol (then port = endPort = 0). port 0 with a proto:
 * any port of it. Otherwise ports port..endPort inclusive (endPort = port for
 * one port).
 */
export interface PolicyEntry {
  identity: number;
  proto: number;
  port: number;
  endPort: number;
}

/** The compiled rules of one local endpoint in one direction: sorted, deduplicated. */
export interface RuleSet {
  entries: PolicyEntry[];
  /** "namespace/name" of every policy that selects the endpoint in this direction. */
  policies: string[];
}

export interface EndpointPolicy {
  endpointId: number;
  /** "namespace/name" of the pod, or the address if no Pod object names it. */
  pod: string;
  ip: string;
  /** undefined: not isolated in that direction (everything allowed). */
  ingress?: RuleSet;
  egress?: RuleSet;
}

/** A problem with one object (the rest compiles): namespace/name and field named. */
export interface PolicyProblem {
  object: string;
  kind: 'NetworkPolicy' | 'Pod' | 'Namespace';
  field: string;
  message: string;
}

export interface CompiledPolicy {
  identities: Map<number, IdentityInfo>;
  /** "a.b.c.d/len" -> identity: pod /32s, node /32s, policy CIDRs and excepts. */
  ipcache: Map<string, number>;
  /** Local endpoints by endpoint id; an endpoint absent here is not isolated. */
  endpoints: Map<number, EndpointPolicy>;
  problems: PolicyProblem[];
}

/** A local endpoint the agent manages (from the EndpointManager's records). */
export interface LocalEndpoint {
  endpointId: number;
  ip: string;
  podNamespace?: string;
  podName?: string;
}

export interface PolicyInput {
  pods: V1Pod[];
  namespaces: V1Namespace[];
  policies: V1NetworkPolicy[];
  nodes: V1Node[];
  /** This node's name: its addresses are ID_HOST-kind, other nodes' ID_REMOTE_NODE-kind. */
  nodeName: string;
  /** Extra addresses of this node (e.g. the pod gateway) that are host-kind. */
  hostAddresses?: string[];
  endpoints: LocalEndpoint[];
}

/**
 * Stable identity numbers: the compiler asks for the id of a canonical key;
 * the same key keeps its number across syncs (and, recovered from the pins,
 * across restarts). Keys for reserved kinds without CIDRs map to the reserved
 * ids (ID_HOST, ID_WORLD, ID_REMOTE_NODE) without asking.
 */
export interface IdentityAllocator {
  idFor(key: string): number;
  /** Forget keys not used in the last compile (their numbers may be reused later). */
  retain(keys: Set<string>): void;
}
