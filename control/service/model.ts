// The service model, pure: Services + EndpointSlices (+ this node) → the
// frontends, backends and node addresses the datapath should hold, plus the
// problems found on the way. No ids here: ids.ts and the reconciler give them.
//
// Semantics follow kube-proxy: endpoints come from EndpointSlices by port
// name; ready endpoints are used, serving+terminating ones only when no ready
// one is left; traffic policy Local restricts a scope to this node's
// endpoints. A malformed object is reported and skipped; a Service whose own
// object or one of whose slices is malformed keeps what it had before (the
// `previous` result), so bad input never removes what is programmed.
import { BackendState, LbAlgorithm, SvcFlags, SvcScope } from '../datapath/types.gen.js';
import { MAGLEV_M_DEFAULT } from './maglev.js';
import {
  DEFAULT_AFFINITY_TIMEOUT,
  IPPROTO_TCP,
  IPPROTO_UDP,
  LB_ALGORITHM_ANNOTATION,
  SERVICE_NAME_LABEL,
  backendKey,
  frontendKey,
  isIPv6,
  parseIPv4,
  type DesiredBackend,
  type DesiredFrontend,
  type DesiredState,
  type LbAlgorithmName,
  type Problem,
  type ServiceDesired,
  type ServiceSource,
  type V1EndpointSlice,
  type V1Node,
  type V1Service,
} from './types.js';

export interface ModelInput {
  services: readonly V1Service[];
  slices: readonly V1EndpointSlice[];
  /** This node's name: endpoints with this nodeName are local. */
  nodeName: string;
  /** This node's object: its InternalIP/ExternalIP addresses serve NodePorts. */
  node?: V1Node;
  /** Addresses to add to the node's (e.g. the agent's --node-ip). */
  extraNodeAddrs?: readonly number[];
  /** --lb-algorithm. */
  defaultAlgorithm: LbAlgorithmName;
  /** Maglev table size: a Maglev frontend with more backends than this falls back to random. */
  maglevM?: number;
  /** Node name → node id for backend4.node_id (0 when unknown). */
  nodeId?: (nodeName: string) => number | undefined;
}

export interface ModelOutput {
  state: DesiredState;
  /** Per "namespace/name": pass back as `previous` next time. */
  services: Map<string, ServiceDesired>;
  problems: Problem[];
}

const ALGORITHMS: Record<string, number> = { random: LbAlgorithm.LB_ALG_RANDOM, maglev: LbAlgorithm.LB_ALG_MAGLEV };

/** Thrown inside the per-object parsers: the object is skipped. */
class Malformed extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

interface ParsedPort {
  name: string;
  port: number;
  proto: number;
  nodePort?: number;
}

interface ParsedService {
  key: string;
  namespace: string;
  name: string;
  clusterIP: number;
  ports: ParsedPort[];
  externalIPs: number[];
  lbIPs: number[];
  etpLocal: boolean;
  itpLocal: boolean;
  affinityTimeout: number; // 0: no affinity
  algorithm: number;
}

interface Candidate extends DesiredBackend {
  ready: boolean;
  serving: boolean;
  /** The endpoint's terminating condition (DesiredBackend.terminating is "used though not ready"). */
  ending: boolean;
}

function validPort(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;
}

/** Protocol name → IPPROTO; SCTP is valid Kubernetes but not supported here. */
function protocol(v: unknown, field: string): number | 'sctp' {
  if (v === undefined || v === 'TCP') return IPPROTO_TCP;
  if (v === 'UDP') return IPPROTO_UDP;
  if (v === 'SCTP') return 'sctp';
  throw new Malformed(field, `bad protocol ${JSON.stringify(v)} (TCP, UDP or SCTP)`);
}

function ipv4(v: unknown, field: string): number {
  const n = parseIPv4(v);
  if (n === undefined) throw new Malformed(field, `invalid IPv4 address ${JSON.stringify(v)}`);
  return n;
}

function parseService(svc: V1Service, defaultAlgorithm: number, report: (p: Omit<Problem, 'kind' | 'namespace' | 'name'>) => void): ParsedService | 'ignored' {
  const spec = svc.spec;
  if (!spec) throw new Malformed('spec', 'missing spec');
  const type = spec.type ?? 'ClusterIP';
  if (type === 'ExternalName') return 'ignored';
  if (!['ClusterIP', 'NodePort', 'LoadBalancer'].includes(type)) throw new Malformed('spec.type', `unknown type ${JSON.stringify(type)}`);
  if (spec.clusterIP === 'None') return 'ignored'; // headless: DNS only
  const ips = spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
  if (ips.length === 0) throw new Malformed('spec.clusterIP', 'missing clusterIP');
  const v4 = ips.findIndex((ip) => !isIPv6(ip));
  if (v4 < 0) throw new Malformed('spec.clusterIPs', 'IPv6-only services are not supported yet');
  const clusterIP = ipv4(ips[v4], spec.clusterIPs?.length ? `spec.clusterIPs[${v4}]` : 'spec.clusterIP');

  if (!Array.isArray(spec.ports) || spec.ports.length === 0) throw new Malformed('spec.ports', 'missing ports');
  const ports: ParsedPort[] = [];
  const seen = new Set<string>();
  spec.ports.forEach((p, i) => {
    const f = `spec.ports[${i}]`;
    if (!validPort(p?.port)) throw new Malformed(`${f}.port`, `port ${JSON.stringify(p?.port)} is not in 1..65535`);
    const proto = protocol(p.protocol, `${f}.protocol`);
    const wantNodePort = type === 'NodePort' || (type === 'LoadBalancer' && spec.allocateLoadBalancerNodePorts !== false);
    if (p.nodePort !== undefined && p.nodePort !== 0 && !validPort(p.nodePort)) {
      throw new Malformed(`${f}.nodePort`, `nodePort ${JSON.stringify(p.nodePort)} is not in 1..65535`);
    }
    if (type === 'NodePort' && !p.nodePort) throw new Malformed(`${f}.nodePort`, 'missing nodePort');
    if (proto === 'sctp') {
      report({ field: `${f}.protocol`, message: 'SCTP is not supported; port skipped', skipped: 'field' });
      return;
    }
    const id = `${p.port}/${proto}`;
    if (seen.has(id)) throw new Malformed(`${f}.port`, `duplicate port ${id}`);
    seen.add(id);
    ports.push({ name: p.name ?? '', port: p.port, proto, nodePort: wantNodePort && p.nodePort ? p.nodePort : undefined });
  });

  const externalIPs: number[] = [];
  (spec.externalIPs ?? []).forEach((ip, i) => {
    if (!isIPv6(ip)) externalIPs.push(ipv4(ip, `spec.externalIPs[${i}]`));
  });
  const lbIPs: number[] = [];
  if (type === 'LoadBalancer') {
    (svc.status?.loadBalancer?.ingress ?? []).forEach((ing, i) => {
      // ipMode Proxy: the load balancer proxies to the node; traffic does not arrive for this IP.
      if (!ing.ip || isIPv6(ing.ip) || ing.ipMode === 'Proxy') return;
      lbIPs.push(ipv4(ing.ip, `status.loadBalancer.ingress[${i}].ip`));
    });
  }

  const policy = (v: string | undefined, field: string): boolean => {
    if (v === undefined || v === 'Cluster') return false;
    if (v === 'Local') return true;
    report({ field, message: `unknown traffic policy ${JSON.stringify(v)}; using Cluster`, skipped: 'field' });
    return false;
  };
  const etpLocal = policy(spec.externalTrafficPolicy, 'spec.externalTrafficPolicy');
  const itpLocal = policy(spec.internalTrafficPolicy, 'spec.internalTrafficPolicy');

  let affinityTimeout = 0;
  if (spec.sessionAffinity === 'ClientIP') {
    const t = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
    if (t === undefined) affinityTimeout = DEFAULT_AFFINITY_TIMEOUT;
    else if (Number.isInteger(t) && t >= 1 && t <= 86400) affinityTimeout = t;
    else {
      report({ field: 'spec.sessionAffinityConfig.clientIP.timeoutSeconds', message: `timeout ${JSON.stringify(t)} is not in 1..86400; using ${DEFAULT_AFFINITY_TIMEOUT}`, skipped: 'field' });
      affinityTimeout = DEFAULT_AFFINITY_TIMEOUT;
    }
  } else if (spec.sessionAffinity !== undefined && spec.sessionAffinity !== 'None') {
    report({ field: 'spec.sessionAffinity', message: `unknown sessionAffinity ${JSON.stringify(spec.sessionAffinity)}; using None`, skipped: 'field' });
  }

  let algorithm = defaultAlgorithm;
  const ann = svc.metadata?.annotations?.[LB_ALGORITHM_ANNOTATION];
  if (ann !== undefined) {
    if (ann in ALGORITHMS) algorithm = ALGORITHMS[ann];
    else report({ field: `metadata.annotations["${LB_ALGORITHM_ANNOTATION}"]`, message: `unknown algorithm ${JSON.stringify(ann)} (maglev or random); using the default`, skipped: 'field' });
  }

  const namespace = svc.metadata!.namespace!;
  const name = svc.metadata!.name!;
  return { key: `${namespace}/${name}`, namespace, name, clusterIP, ports, externalIPs, lbIPs, etpLocal, itpLocal, affinityTimeout, algorithm };
}

interface ParsedSlice {
  service: string; // namespace/name
  ports: Array<{ name: string; port: number; proto: number }>;
  endpoints: Array<{ addr: number; ready: boolean; serving: boolean; terminating: boolean; nodeName?: string }>;
}

function parseSlice(s: V1EndpointSlice): ParsedSlice | 'ignored' {
  const svcName = s.metadata?.labels?.[SERVICE_NAME_LABEL];
  if (!svcName) return 'ignored'; // not managed for a Service
  if (s.addressType !== 'IPv4') return 'ignored'; // IPv6 and FQDN slices: not for this datapath
  const ports: ParsedSlice['ports'] = [];
  (s.ports ?? []).forEach((p, i) => {
    const f = `ports[${i}]`;
    if (!validPort(p.port)) throw new Malformed(`${f}.port`, `port ${JSON.stringify(p.port)} is not in 1..65535`);
    const proto = protocol(p.protocol, `${f}.protocol`);
    if (proto !== 'sctp') ports.push({ name: p.name ?? '', port: p.port, proto });
  });
  if (!Array.isArray(s.endpoints)) throw new Malformed('endpoints', 'missing endpoints');
  const endpoints = s.endpoints.map((e, i) => {
    if (!Array.isArray(e.addresses) || e.addresses.length === 0) throw new Malformed(`endpoints[${i}].addresses`, 'missing addresses');
    // Consumers use the first address (the API's own rule).
    const addr = ipv4(e.addresses[0], `endpoints[${i}].addresses[0]`);
    const ready = e.conditions?.ready ?? true;
    return { addr, ready, serving: e.conditions?.serving ?? ready, terminating: e.conditions?.terminating ?? false, nodeName: e.nodeName };
  });
  return { service: `${s.metadata!.namespace}/${svcName}`, ports, endpoints };
}

/** kube-proxy's rule: ready endpoints; if none, the serving and terminating ones. */
function usable(cands: Candidate[]): Candidate[] {
  const ready = cands.filter((c) => c.ready);
  return ready.length > 0 ? ready : cands.filter((c) => c.serving && c.ending);
}

function serviceFrontends(
  svc: ParsedService,
  slices: ParsedSlice[],
  input: ModelInput,
  nodeId: (nodeName: string) => number,
  report: (p: Omit<Problem, 'kind' | 'namespace' | 'name'>) => void,
): ServiceDesired {
  const frontends: DesiredFrontend[] = [];
  const backends = new Map<string, DesiredBackend>();
  for (const port of svc.ports) {
    // Candidates: every slice port with this Service port's name and protocol.
    const cands = new Map<string, Candidate>();
    for (const sl of slices) {
      for (const sp of sl.ports) {
        if (sp.name !== port.name || sp.proto !== port.proto) continue;
        for (const e of sl.endpoints) {
          const c: Candidate = {
            addr: e.addr,
            port: sp.port,
            proto: sp.proto,
            ready: e.ready,
            serving: e.serving,
            terminating: !e.ready,
            ending: e.terminating,
            local: e.nodeName === input.nodeName,
            nodeName: e.nodeName,
            nodeId: e.nodeName ? nodeId(e.nodeName) : 0,
          };
          const k = backendKey(c);
          const prev = cands.get(k);
          // Duplicates (the same endpoint in two slices while it moves): the more usable wins.
          if (!prev || (!prev.ready && (c.ready || (c.serving && !prev.serving)))) cands.set(k, c);
        }
      }
    }
    const all = usable([...cands.values()]);
    const local = usable([...cands.values()].filter((c) => c.local));
    for (const b of [...all, ...local]) {
      const { ready: _r, serving: _s, ending: _e, ...backend } = b;
      backends.set(backendKey(b), backend);
    }
    const keys = (set: Candidate[]) => set.map(backendKey).sort();

    const make = (addr: number, fport: number, typeFlag: number, external: boolean) => {
      const extLocal = external && svc.etpLocal;
      const intLocal = svc.itpLocal;
      let flags = typeFlag | (svc.affinityTimeout ? SvcFlags.SVC_F_AFFINITY : 0) | (intLocal ? SvcFlags.SVC_F_ITP_LOCAL : 0);
      if (extLocal) flags |= SvcFlags.SVC_F_ETP_LOCAL;
      const twoScopes = extLocal !== intLocal;
      const base = {
        addr,
        port: fport,
        proto: port.proto,
        service: svc.key,
        portName: port.name,
        algorithm: svc.algorithm,
        affinityTimeout: svc.affinityTimeout,
        revnat: { addr, port: fport },
      };
      const push = (scope: number, fl: number, set: Candidate[]) => {
        let algorithm = base.algorithm;
        if (algorithm === LbAlgorithm.LB_ALG_MAGLEV && set.length > (input.maglevM ?? MAGLEV_M_DEFAULT)) {
          report({ field: 'metadata.annotations', message: `${set.length} backends do not fit a Maglev table of ${input.maglevM ?? MAGLEV_M_DEFAULT}; using random`, skipped: 'field' });
          algorithm = LbAlgorithm.LB_ALG_RANDOM;
        }
        frontends.push({ ...base, algorithm, scope, flags: fl, backends: keys(set) });
      };
      push(SvcScope.SVC_SCOPE_EXT, flags | (twoScopes ? SvcFlags.SVC_F_TWO_SCOPES : 0), extLocal ? local : all);
      if (twoScopes) push(SvcScope.SVC_SCOPE_INT, flags, intLocal ? local : all);
    };
    make(svc.clusterIP, port.port, SvcFlags.SVC_F_CLUSTERIP, false);
    if (port.nodePort) make(0, port.nodePort, SvcFlags.SVC_F_NODEPORT, true);
    for (const ip of svc.externalIPs) make(ip, port.port, SvcFlags.SVC_F_EXTERNALIP, true);
    for (const ip of svc.lbIPs) make(ip, port.port, SvcFlags.SVC_F_LOADBALANCER, true);
  }
  return { frontends, backends, keys: frontends.map(frontendKey) };
}

function nodeAddresses(input: ModelInput, problems: Problem[]): Set<number> {
  const addrs = new Set<number>(input.extraNodeAddrs ?? []);
  const node = input.node;
  if (!node) return addrs;
  const name = node.metadata?.name ?? '';
  if (name !== input.nodeName) {
    problems.push({ kind: 'Node', name, field: 'metadata.name', message: `expected this node (${input.nodeName})`, skipped: 'object' });
    return addrs;
  }
  (node.status?.addresses ?? []).forEach((a, i) => {
    if (a.type !== 'InternalIP' && a.type !== 'ExternalIP') return;
    if (isIPv6(a.address)) return;
    const n = parseIPv4(a.address);
    if (n === undefined) {
      problems.push({ kind: 'Node', name, field: `status.addresses[${i}].address`, message: `invalid IPv4 address ${JSON.stringify(a.address)}`, skipped: 'field' });
    } else addrs.add(n);
  });
  return addrs;
}

function usedBackends(frontends: readonly DesiredFrontend[]): string[] {
  const used = new Set<string>();
  for (const f of frontends) for (const b of f.backends) used.add(b);
  return [...used];
}

/** Plain-data equality (Kubernetes objects: JSON values, and Dates the client library makes). */
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof Date || b instanceof Date) return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], bb[i])) return false;
    return true;
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  for (const k in ao) if (!deepEqual(ao[k], bo[k])) return false;
  for (const k in bo) if (!(k in ao) && bo[k] !== undefined) return false;
  return true;
}

type Meta = { metadata?: { uid?: string; resourceVersion?: string } };

/**
 * The same Kubernetes object, cheaply: the same instance (an informer cache
 * hands back unchanged objects as they were), else the same uid and
 * resourceVersion (the API server bumps it on every change), else, for
 * objects built without a resourceVersion, the same content.
 */
export function sameObject(a: object, b: object): boolean {
  if (a === b) return true;
  const ma = (a as Meta).metadata;
  const mb = (b as Meta).metadata;
  if (ma?.resourceVersion !== undefined || mb?.resourceVersion !== undefined) {
    return ma?.resourceVersion === mb?.resourceVersion && ma?.uid === mb?.uid;
  }
  return deepEqual(a, b);
}

/** True when a ServiceDesired computed from `src` is what these inputs give too. */
function unchanged(src: ServiceSource, svc: V1Service, slices: readonly V1EndpointSlice[], input: ModelInput, defaultAlgorithm: number, maglevM: number): boolean {
  if (src.nodeName !== input.nodeName || src.defaultAlgorithm !== defaultAlgorithm || src.maglevM !== maglevM) return false;
  if (src.slices.length !== slices.length || !sameObject(src.service, svc)) return false;
  for (let i = 0; i < slices.length; i++) if (!sameObject(src.slices[i], slices[i])) return false;
  for (const [n, id] of src.nodeIds) if ((input.nodeId?.(n) || 0) !== id) return false;
  return true;
}

/**
 * Builds the desired datapath state. `previous` is the `services` of the last
 * result: a Service that cannot be read this time keeps its previous entries,
 * and a Service whose inputs did not change keeps its previous result object
 * (not computed again; the reconciler skips what it names). Inputs are read,
 * never changed, and must not be changed in place afterwards (an informer's
 * objects are replaced, not mutated).
 */
export function buildDesired(input: ModelInput, previous?: Map<string, ServiceDesired>): ModelOutput {
  const defaultAlgorithm = ALGORITHMS[input.defaultAlgorithm];
  if (defaultAlgorithm === undefined) throw new RangeError(`lb algorithm ${JSON.stringify(input.defaultAlgorithm)}: expected random or maglev`);
  const maglevM = input.maglevM ?? MAGLEV_M_DEFAULT;
  const stale = new Set<string>(); // services whose input is broken: keep previous

  // Slice problems by input index: reported in input order, before the Services'.
  const sliceProblems: Array<[number, Problem]> = [];
  const sliceProblem = (i: number, s: V1EndpointSlice, e: Malformed) =>
    sliceProblems.push([i, { kind: 'EndpointSlice', namespace: s.metadata?.namespace, name: s.metadata?.name ?? '', field: e.field, message: e.message, skipped: 'object' }]);

  // Slices grouped by the Service their label names; parsed only for a Service computed again.
  const groups = new Map<string, { raw: V1EndpointSlice[]; index: number[]; parsed?: ParsedSlice[] }>();
  input.slices.forEach((s, i) => {
    const ns = s.metadata?.namespace;
    const svcName = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!ns || !s.metadata?.name) {
      sliceProblem(i, s, new Malformed(!ns ? 'metadata.namespace' : 'metadata.name', 'missing'));
      if (ns && svcName) stale.add(`${ns}/${svcName}`);
      return;
    }
    if (!svcName) return; // not managed for a Service
    const key = `${ns}/${svcName}`;
    const g = groups.get(key);
    if (g) {
      g.raw.push(s);
      g.index.push(i);
    } else groups.set(key, { raw: [s], index: [i] });
  });
  const parseGroup = (key: string): ParsedSlice[] => {
    const g = groups.get(key);
    if (!g) return [];
    if (!g.parsed) {
      const parsed: ParsedSlice[] = (g.parsed = []);
      g.raw.forEach((s, j) => {
        try {
          const p = parseSlice(s);
          if (p !== 'ignored') parsed.push(p);
        } catch (e) {
          if (!(e instanceof Malformed)) throw e;
          sliceProblem(g.index[j], s, e);
          stale.add(key);
        }
      });
    }
    return g.parsed;
  };

  const svcProblems: Problem[] = [];
  const services = new Map<string, ServiceDesired>();
  for (const svc of input.services) {
    const namespace = svc.metadata?.namespace;
    const name = svc.metadata?.name ?? '';
    const key = `${namespace}/${name}`;
    const prev = previous?.get(key);
    const group = groups.get(key);
    if (prev?.source && !stale.has(key) && unchanged(prev.source, svc, group?.raw ?? [], input, defaultAlgorithm, maglevM)) {
      // Same inputs, same result. Its slices parsed cleanly when it was computed.
      if (group) group.parsed = [];
      services.set(key, prev);
      svcProblems.push(...prev.source.problems);
      continue;
    }
    const own: Problem[] = [];
    const report = (pr: Omit<Problem, 'kind' | 'namespace' | 'name'>) => own.push({ kind: 'Service', namespace, name, ...pr });
    try {
      if (!namespace || !name) throw new Malformed(!namespace ? 'metadata.namespace' : 'metadata.name', 'missing');
      const p = parseService(svc, defaultAlgorithm, report);
      if (p !== 'ignored') {
        const slices = parseGroup(key);
        if (stale.has(key) && prev) services.set(key, prev);
        else {
          const nodeIds = new Map<string, number>();
          const nodeId = (n: string) => {
            let id = nodeIds.get(n);
            if (id === undefined) nodeIds.set(n, (id = input.nodeId?.(n) || 0));
            return id;
          };
          const sd = serviceFrontends(p, slices, input, nodeId, report);
          if (!stale.has(key)) sd.source = { service: svc, slices: group?.raw ?? [], nodeName: input.nodeName, defaultAlgorithm, maglevM, nodeIds, problems: own };
          services.set(key, sd);
        }
      }
    } catch (e) {
      if (!(e instanceof Malformed)) throw e;
      own.push({ kind: 'Service', namespace, name, field: e.field, message: e.message, skipped: 'object' });
      if (prev) services.set(key, prev);
    }
    svcProblems.push(...own);
  }
  // Slices of no (readable) Service are still checked, for their problems.
  for (const key of groups.keys()) parseGroup(key);
  const problems: Problem[] = sliceProblems.sort((a, b) => a[0] - b[0]).map(([, p]) => p);
  problems.push(...svcProblems);

  // Flatten in name order: a frontend claimed twice goes to the first Service.
  // Recomputed every time over the per-Service results (cheap): a change to
  // one Service can move a frontend between two others.
  const state: DesiredState = { frontends: new Map(), backends: new Map(), nodeAddrs: nodeAddresses(input, problems) };
  for (const key of [...services.keys()].sort()) {
    const sd = services.get(key)!;
    const keys = sd.keys ?? (sd.keys = sd.frontends.map(frontendKey));
    let lost = false;
    sd.frontends.forEach((f, i) => {
      const fk = keys[i];
      const owner = state.frontends.get(fk);
      if (owner && owner.service !== key) {
        const [namespace, name] = key.split('/');
        problems.push({ kind: 'Service', namespace, name, field: 'spec.ports', message: `frontend ${fk} is already used by ${owner.service}; skipped`, skipped: 'field' });
        lost = true;
        return;
      }
      state.frontends.set(fk, f);
    });
    // The backends its frontends name (those of the frontends it keeps, after a conflict).
    const used = lost ? usedBackends(sd.frontends.filter((f, i) => state.frontends.get(keys[i]) === f)) : (sd.used ??= usedBackends(sd.frontends));
    for (const bk of used) {
      const b = sd.backends.get(bk)!;
      const have = state.backends.get(bk);
      // Shared by two services: active wins over terminating (a new object only when that changes it).
      state.backends.set(bk, !have ? b : have.terminating && !b.terminating ? { ...have, terminating: false } : have);
    }
  }
  return { state, services, problems };
}

/** backend4.state for a desired backend. */
export const backendState = (b: DesiredBackend) => (b.terminating ? BackendState.BACKEND_TERMINATING : BackendState.BACKEND_ACTIVE);
