// The Kubernetes objects the service model reads, and what it produces.
// Inputs are the client library's own types; only the fields named in
// model.ts are read.
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';

export type { V1EndpointSlice, V1Node, V1Service };

export type LbAlgorithmName = 'random' | 'maglev';

/** The label that ties an EndpointSlice to its Service (same namespace). */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** Per-service override of the agent's --lb-algorithm. */
export const LB_ALGORITHM_ANNOTATION = 'weir.io/lb-algorithm';
/** sessionAffinityConfig.clientIP.timeoutSeconds when unset (Kubernetes' default). */
export const DEFAULT_AFFINITY_TIMEOUT = 10800;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** Something wrong with one object: logged, and the object (or just the field) skipped. */
export interface Problem {
  kind: 'Service' | 'EndpointSlice' | 'Node';
  namespace?: string;
  name: string;
  /** The offending field, as a path (e.g. "spec.ports[1].port"). */
  field: string;
  message: string;
  /** 'object': the whole object was skipped; 'field': only that part was (or a default used). */
  skipped: 'object' | 'field';
}

/** One backend as the datapath's backend4 entry holds it. Identity: addr:port/proto. */
export interface DesiredBackend {
  addr: number; // host-order IPv4
  port: number;
  proto: number;
  terminating: boolean;
  local: boolean;
  nodeName?: string;
  nodeId: number; // 0: unknown
}

/** One svc4 entry (a frontend in one scope) with its backend set. */
export interface DesiredFrontend {
  addr: number; // 0 for NodePort
  port: number;
  proto: number;
  scope: number; // SvcScope
  /** "namespace/name" and the Service port's name (for logs and tests). */
  service: string;
  portName: string;
  flags: number; // SvcFlags
  algorithm: number; // LbAlgorithm
  affinityTimeout: number; // seconds, 0 without affinity
  /** Backend identities (backendKey), sorted: slot i+1 holds backends[i]. */
  backends: string[];
  /** What replies are rewritten to (addr 0: a NodePort, the address the client used). */
  revnat: { addr: number; port: number };
}

/** Everything one Service contributes. */
export interface ServiceDesired {
  frontends: DesiredFrontend[];
  backends: Map<string, DesiredBackend>;
  /** frontendKey of each frontend (same order), kept so a reused result costs no key building. */
  keys?: string[];
  /** The backends its frontends name, in first-named order (computed once, when first flattened). */
  used?: string[];
  /**
   * What it was computed from (model.ts): when the next build's inputs for
   * this Service are the same, this very object is reused, and the
   * reconciler, seeing the same frontend objects, skips them.
   */
  source?: ServiceSource;
}

/** The inputs one ServiceDesired was computed from. Objects are compared by identity, uid+resourceVersion, or content. */
export interface ServiceSource {
  service: V1Service;
  /** Every EndpointSlice labelled for the Service, in input order. */
  slices: V1EndpointSlice[];
  nodeName: string;
  defaultAlgorithm: number;
  maglevM: number;
  /** Node name → node id as looked up for its endpoints. */
  nodeIds: Map<string, number>;
  /** Problems found computing it, reported again when it is reused. */
  problems: Problem[];
}

export interface DesiredState {
  /** By frontendKey. */
  frontends: Map<string, DesiredFrontend>;
  /** By backendKey. */
  backends: Map<string, DesiredBackend>;
  /** This node's IPv4 addresses (weir_node4): NodePorts answer on them. */
  nodeAddrs: Set<number>;
}

export const backendKey = (b: { addr: number; port: number; proto: number }) => `${ipString(b.addr)}:${b.port}/${b.proto}`;
export const frontendKey = (f: { addr: number; port: number; proto: number; scope: number }) =>
  `${ipString(f.addr)}:${f.port}/${f.proto}#${f.scope}`;
export const revnatKey = (r: { addr: number; port: number }) => `${ipString(r.addr)}:${r.port}`;

export function ipString(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Strict dotted-quad IPv4 → host-order number; undefined when not one. */
export function parseIPv4(s: unknown): number | undefined {
  if (typeof s !== 'string') return undefined;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p, i) => p > 255 || (m[i + 1].length > 1 && m[i + 1][0] === '0'))) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

export const isIPv6 = (s: unknown) => typeof s === 'string' && s.includes(':');
