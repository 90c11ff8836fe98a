// The NetworkPolicy compiler (pure): cluster objects -> identities, ipcache
// and per-endpoint rule sets (control/policy/README.md has the design).
import type { V1NetworkPolicy, V1NetworkPolicyPeer, V1NetworkPolicyPort, V1Pod } from '@kubernetes/client-node';
import {
  formatCidr,
  parseIPv4,
  parseIpBlock,
  prefixCovers,
  type IpBlock,
  type Prefix4,
} from './cidr.js';
import { identityKey } from './identity.js';
import { compileSelector, type LabelMatcher, type Labels } from './selector.js';
import {
  ID_ANY,
  ID_HOST,
  ID_REMOTE_NODE,
  ID_WORLD,
  type CompiledPolicy,
  type EndpointPolicy,
  type IdentityAllocator,
  type IdentityInfo,
  type IdentityKind,
  type PolicyEntry,
  type PolicyInput,
  type PolicyProblem,
  type RuleSet,
} from './types.js';

export const NS_NAME_LABEL = 'kubernetes.io/metadata.name';
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_SCTP = 132;

type Dir = 'ingress' | 'egress';

/** Shared by every identity in no ipBlock (never mutated). */
const NO_CIDRS = Object.freeze([]) as unknown as string[];

/** A peer after validation. nsSel undefined: the policy's own namespace. */
type Peer =
  | { type: 'any' }
  | { type: 'pods'; nsSel?: LabelMatcher; podSel: LabelMatcher }
  | { type: 'block'; block: IpBlock };

type Port =
  | { type: 'all' }
  | { type: 'num'; proto: number; port: number; endPort: number }
  | { type: 'named'; proto: number; name: string };

interface Rule {
  peers: Peer[];
  ports: Port[];
  /** Cached peer identities (computed on first use). */
  ids?: number[];
}

interface ParsedPolicy {
  ref: string;
  namespace: string;
  /** Which pods of the namespace it selects (an invalid spec.podSelector: all of them, with no rules: fail closed). */
  select: LabelMatcher;
  types: Set<Dir>;
  rules: Record<Dir, Rule[]>;
}

interface PodIdentity {
  id: number;
  namespace: string;
  labels: Labels;
  /** "name/PROTO" -> container ports */
  namedPorts: Map<string, number[]>;
}

const protoName = (p: number) => (p === PROTO_TCP ? 'TCP' : p === PROTO_UDP ? 'UDP' : String(p));

function parseProtocol(p: unknown): number | 'sctp' | undefined {
  if (p === undefined || p === null || p === '') return PROTO_TCP;
  if (p === 'TCP') return PROTO_TCP;
  if (p === 'UDP') return PROTO_UDP;
  if (p === 'SCTP') return 'sctp';
  return undefined;
}

const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
function validPortName(s: string): boolean {
  return s.length <= 15 && IANA_SVC_NAME.test(s) && /[a-z]/.test(s) && !s.includes('--');
}

function objRef(meta: { namespace?: string; name?: string } | undefined): string {
  return `${meta?.namespace ?? ''}/${meta?.name ?? ''}`;
}

/** Named container ports of a pod: "name/PROTO" -> ports. */
function podNamedPorts(pod: V1Pod): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const containers = [
    ...(pod.spec?.containers ?? []),
    // sidecars (restartable init containers) serve ports too
    ...(pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === 'Always'),
  ];
  for (const c of containers) {
    for (const p of c.ports ?? []) {
      if (!p.name || !Number.isInteger(p.containerPort) || p.containerPort < 1 || p.containerPort > 65535) continue;
      const proto = parseProtocol(p.protocol);
      if (typeof proto !== 'number') continue;
      const k = `${p.name}/${protoName(proto)}`;
      const l = m.get(k) ?? [];
      if (!l.includes(p.containerPort)) l.push(p.containerPort);
      m.set(k, l.sort((a, b) => a - b));
    }
  }
  return m;
}

function namedPortList(m: Map<string, number[]>): string[] {
  const out: string[] = [];
  for (const [k, ports] of m) for (const p of ports) out.push(`${k}=${p}`);
  return out.sort();
}

/** The IPv4 address of a pod (status.podIP, or the IPv4 one of status.podIPs). */
function podIPv4(pod: V1Pod): number | undefined {
  const cands = [pod.status?.podIP, ...(pod.status?.podIPs ?? []).map((p) => p.ip)];
  for (const c of cands) {
    if (!c) continue;
    const a = parseIPv4(c);
    if (a !== undefined) return a;
  }
  return undefined;
}

function parsePolicy(pol: V1NetworkPolicy, problems: PolicyProblem[]): ParsedPolicy {
  const ref = objRef(pol.metadata);
  const namespace = pol.metadata?.namespace ?? 'default';
  const problem = (field: string, message: string) => problems.push({ object: ref, kind: 'NetworkPolicy', field, message });
  const spec = pol.spec ?? ({} as NonNullable<V1NetworkPolicy['spec']>);

  // spec.podSelector: invalid -> select every pod of the namespace, allow nothing through this policy.
  let select: LabelMatcher;
  let failClosed = false;
  const ps = compileSelector(spec.podSelector, 'spec.podSelector');
  if (ps.ok) select = ps.matches;
  else {
    for (const e of ps.errors) problem(e.field, `${e.message}; policy isolates every pod of namespace ${namespace} and allows nothing`);
    select = () => true;
    failClosed = true;
  }

  const types = new Set<Dir>();
  if (spec.policyTypes !== undefined && spec.policyTypes !== null) {
    if (!Array.isArray(spec.policyTypes)) problem('spec.policyTypes', 'must be a list');
    else
      spec.policyTypes.forEach((t, i) => {
        if (t === 'Ingress') types.add('ingress');
        else if (t === 'Egress') types.add('egress');
        else problem(`spec.policyTypes[${i}]`, `unknown policy type ${JSON.stringify(t)} (Ingress, Egress); ignored`);
      });
  }
  if (types.size === 0) {
    // the default (also when every listed type was invalid)
    types.add('ingress');
    if (Array.isArray(spec.egress) && spec.egress.length > 0) types.add('egress');
  }

  const rules: Record<Dir, Rule[]> = { ingress: [], egress: [] };
  if (!failClosed) {
    for (const dir of ['ingress', 'egress'] as const) {
      const list = spec[dir];
      if (list === undefined || list === null) continue;
      if (!Array.isArray(list)) {
        problem(`spec.${dir}`, 'must be a list; no rules used');
        continue;
      }
      list.forEach((r, i) => {
        const f = `spec.${dir}[${i}]`;
        const peerField = dir === 'ingress' ? 'from' : 'to';
        // typed (ObjectSerializer) objects carry ingress "from" as "_from"; raw JSON (watch events, YAML) as "from"
        const rr = (r ?? {}) as Record<string, unknown>;
        const rawPeers = (dir === 'ingress' ? (rr._from ?? rr.from) : rr.to) as V1NetworkPolicyPeer[] | undefined;
        let peers: Peer[];
        if (rawPeers === undefined || rawPeers === null || (Array.isArray(rawPeers) && rawPeers.length === 0)) {
          peers = [{ type: 'any' }];
        } else if (!Array.isArray(rawPeers)) {
          problem(`${f}.${peerField}`, 'must be a list; rule skipped');
          return;
        } else {
          peers = [];
          rawPeers.forEach((p, j) => {
            const peer = parsePeer(p, `${f}.${peerField}[${j}]`, problem);
            if (peer) peers.push(peer);
          });
          // every peer invalid: the rule allows no one (never "everyone")
        }
        const rawPorts = r?.ports;
        let ports: Port[];
        if (rawPorts === undefined || rawPorts === null || (Array.isArray(rawPorts) && rawPorts.length === 0)) {
          ports = [{ type: 'all' }];
        } else if (!Array.isArray(rawPorts)) {
          problem(`${f}.ports`, 'must be a list; rule skipped');
          return;
        } else {
          ports = [];
          rawPorts.forEach((p, j) => {
            const port = parsePort(p, `${f}.ports[${j}]`, problem);
            if (port) ports.push(port);
          });
          // every port skipped (e.g. only SCTP): the rule allows nothing (never "all ports")
        }
        rules[dir].push({ peers, ports });
      });
    }
  }
  return { ref, namespace, select, types, rules };
}

function parsePeer(p: V1NetworkPolicyPeer, f: string, problem: (field: string, msg: string) => void): Peer | undefined {
  if (!p || typeof p !== 'object') {
    problem(f, 'must be an object; peer skipped');
    return undefined;
  }
  const hasPod = p.podSelector !== undefined && p.podSelector !== null;
  const hasNs = p.namespaceSelector !== undefined && p.namespaceSelector !== null;
  const hasBlock = p.ipBlock !== undefined && p.ipBlock !== null;
  if (hasBlock) {
    if (hasPod || hasNs) {
      problem(f, 'ipBlock cannot be combined with podSelector or namespaceSelector; peer skipped');
      return undefined;
    }
    const b = parseIpBlock(p.ipBlock as { cidr?: string; except?: string[] }, `${f}.ipBlock`);
    if (!b.ok) {
      for (const e of b.errors) problem(e.field, b.ipv6 ? e.message : `${e.message}; peer skipped`);
      return undefined;
    }
    return { type: 'block', block: b.block };
  }
  if (!hasPod && !hasNs) {
    problem(f, 'must specify podSelector, namespaceSelector or ipBlock; peer skipped');
    return undefined;
  }
  let nsSel: LabelMatcher | undefined;
  let podSel: LabelMatcher = () => true;
  let bad = false;
  if (hasNs) {
    const s = compileSelector(p.namespaceSelector, `${f}.namespaceSelector`);
    if (s.ok) nsSel = s.matches;
    else {
      bad = true;
      for (const e of s.errors) problem(e.field, `${e.message}; peer skipped`);
    }
  }
  if (hasPod) {
    const s = compileSelector(p.podSelector, `${f}.podSelector`);
    if (s.ok) podSel = s.matches;
    else {
      bad = true;
      for (const e of s.errors) problem(e.field, `${e.message}; peer skipped`);
    }
  }
  if (bad) return undefined;
  return { type: 'pods', nsSel, podSel };
}

function parsePort(p: V1NetworkPolicyPort, f: string, problem: (field: string, msg: string) => void): Port | undefined {
  if (!p || typeof p !== 'object') {
    problem(f, 'must be an object; port skipped');
    return undefined;
  }
  const proto = parseProtocol(p.protocol);
  if (proto === 'sctp') {
    problem(`${f}.protocol`, 'SCTP unsupported; port entry skipped (allows nothing)');
    return undefined;
  }
  if (proto === undefined) {
    problem(`${f}.protocol`, `unknown protocol ${JSON.stringify(p.protocol)} (TCP, UDP, SCTP); port entry skipped`);
    return undefined;
  }
  const hasEnd = p.endPort !== undefined && p.endPort !== null;
  if (p.port === undefined || p.port === null) {
    if (hasEnd) {
      problem(`${f}.endPort`, 'endPort requires a numeric port; port entry skipped');
      return undefined;
    }
    return { type: 'num', proto, port: 0, endPort: 0 };
  }
  if (typeof p.port === 'string') {
    if (hasEnd) {
      problem(`${f}.endPort`, 'endPort cannot be used with a named port; port entry skipped');
      return undefined;
    }
    if (!validPortName(p.port)) {
      problem(`${f}.port`, `invalid port name ${JSON.stringify(p.port)}; port entry skipped`);
      return undefined;
    }
    return { type: 'named', proto, name: p.port };
  }
  if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) {
    problem(`${f}.port`, `port ${JSON.stringify(p.port)} out of range 1-65535; port entry skipped`);
    return undefined;
  }
  let endPort = p.port;
  if (hasEnd) {
    if (!Number.isInteger(p.endPort) || p.endPort! < p.port || p.endPort! > 65535) {
      problem(`${f}.endPort`, `endPort ${JSON.stringify(p.endPort)} must be an integer in ${p.port}-65535; port entry skipped`);
      return undefined;
    }
    endPort = p.endPort!;
  }
  return { type: 'num', proto, port: p.port, endPort };
}

function compareEntries(a: PolicyEntry, b: PolicyEntry): number {
  return a.identity - b.identity || a.proto - b.proto || a.port - b.port || a.endPort - b.endPort;
}

/**
 * Sorts, deduplicates and merges entries without changing any verdict or
 * match kind: per (identity, protocol) a whole-protocol entry absorbs its port
 * entries, and overlapping or adjacent ranges join. Entries of different
 * protocols (or proto 0 vs a protocol) are left alone: LPM returns the longest
 * one, and the match kind (l3 vs l3-l4) depends on which.
 */
export function normalizeEntries(entries: PolicyEntry[]): PolicyEntry[] {
  return normalizeOwned(entries.map((e) => ({ ...e })));
}

/** normalizeEntries on entries the caller owns: sorts and merges in place. */
function normalizeOwned(entries: PolicyEntry[]): PolicyEntry[] {
  entries.sort(compareEntries);
  const out: PolicyEntry[] = [];
  for (const e of entries) {
    const last = out[out.length - 1];
    if (last && last.identity === e.identity && last.proto === e.proto) {
      if (e.proto === 0) continue;
      if (last.port === 0) continue; // whole protocol already
      if (e.port <= last.endPort + 1) {
        last.endPort = Math.max(last.endPort, e.endPort);
        continue;
      }
    }
    out.push(e);
  }
  return out;
}

export function compilePolicy(input: PolicyInput, alloc: IdentityAllocator): CompiledPolicy {
  const problems: PolicyProblem[] = [];

  // ---- namespaces (labels incl. the automatic name label) ----
  const nsLabels = new Map<string, Labels>();
  const nsOf = (name: string): Labels => {
    let l = nsLabels.get(name);
    if (!l) {
      l = { [NS_NAME_LABEL]: name };
      nsLabels.set(name, l);
    }
    return l;
  };
  for (const ns of input.namespaces) {
    const name = ns.metadata?.name;
    if (!name) continue;
    nsLabels.set(name, { ...(ns.metadata?.labels ?? {}), [NS_NAME_LABEL]: name });
  }

  // ---- policies ----
  const policies = [...input.policies]
    .sort((a, b) => (objRef(a.metadata) < objRef(b.metadata) ? -1 : objRef(a.metadata) > objRef(b.metadata) ? 1 : 0))
    .map((p) => parsePolicy(p, problems));
  const blocks = new Map<string, IpBlock>();
  for (const p of policies)
    for (const dir of ['ingress', 'egress'] as const)
      for (const r of p.rules[dir]) for (const peer of r.peers) if (peer.type === 'block') blocks.set(peer.block.canonical, peer.block);
  const blockList = [...blocks.values()].sort((a, b) => (a.canonical < b.canonical ? -1 : 1));

  // ---- pods with identities: a podIP, not hostNetwork, not finished ----
  const podByIp = new Map<number, V1Pod>();
  // A local pod's address is known from its endpoint before the API shows
  // status.podIP (the kubelet reports it after CNI ADD): use it, so peers on
  // this node see the new pod's identity from its first packet, not WORLD.
  const localIp = new Map<string, number>();
  for (const ep of input.endpoints) {
    const a = parseIPv4(ep.ip);
    if (ep.podNamespace && ep.podName && a !== undefined) localIp.set(`${ep.podNamespace}/${ep.podName}`, a);
  }
  const rank = (p: V1Pod) => [p.metadata?.deletionTimestamp ? 0 : 1, p.metadata?.creationTimestamp ? new Date(p.metadata.creationTimestamp).getTime() : 0];
  for (const pod of input.pods) {
    if (pod.spec?.hostNetwork) continue;
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') continue; // its address is released
    const addr = podIPv4(pod) ?? localIp.get(objRef(pod.metadata));
    if (addr === undefined) {
      if (pod.status?.podIP && parseIPv4(pod.status.podIP) === undefined && !pod.status.podIP.includes(':')) {
        problems.push({ object: objRef(pod.metadata), kind: 'Pod', field: 'status.podIP', message: `invalid address ${JSON.stringify(pod.status.podIP)}` });
      }
      continue;
    }
    const other = podByIp.get(addr);
    if (other) {
      // two pods claim one address (a stale object): prefer the live, newest one, then the name
      const [ra, rb] = [rank(pod), rank(other)];
      const better = ra[0] !== rb[0] ? ra[0] > rb[0] : ra[1] !== rb[1] ? ra[1] > rb[1] : objRef(pod.metadata) < objRef(other.metadata);
      if (!better) continue;
    }
    podByIp.set(addr, pod);
  }

  // ---- ipcache prefixes: later kinds override earlier ones for the same prefix ----
  interface Slot {
    prefix: Prefix4;
    kind: IdentityKind;
    pod?: V1Pod;
  }
  const slots = new Map<string, Slot>();
  const put = (prefix: Prefix4, kind: IdentityKind, pod?: V1Pod) => slots.set(formatCidr(prefix), { prefix, kind, pod });
  for (const b of blockList) {
    put(b.cidr, 'world');
    for (const e of b.except) put(e, 'world');
  }
  const nodeAddrs = (self: boolean) => {
    for (const n of input.nodes) {
      if ((n.metadata?.name === input.nodeName) !== self) continue;
      for (const a of n.status?.addresses ?? []) {
        if (a.type !== 'InternalIP') continue;
        const v = parseIPv4(a.address);
        if (v !== undefined) put({ addr: v, len: 32 }, self ? 'host' : 'remote-node');
      }
    }
  };
  nodeAddrs(false);
  nodeAddrs(true);
  for (const h of input.hostAddresses ?? []) {
    const v = parseIPv4(h);
    if (v !== undefined) put({ addr: v, len: 32 }, 'host');
  }
  for (const [addr, pod] of podByIp) put({ addr, len: 32 }, 'pod', pod);

  // ---- identities: the key of every slot, allocated in sorted key order ----
  interface SlotId {
    prefixKey: string;
    slot: Slot;
    key: string;
    cidrs: string[];
    namedPorts?: Map<string, number[]>;
  }
  const slotIds: SlotId[] = [];
  for (const [prefixKey, slot] of slots) {
    // membership of everything whose longest ipcache match is this prefix (README: "LPM membership")
    let cidrs: string[] = NO_CIDRS;
    for (const b of blockList) {
      if (!prefixCovers(b.cidr, slot.prefix)) continue;
      let excepted = false;
      for (const e of b.except) if (prefixCovers(e, slot.prefix)) excepted = true;
      if (!excepted) (cidrs === NO_CIDRS ? (cidrs = []) : cidrs).push(b.canonical);
    }
    let key: string;
    let namedPorts: Map<string, number[]> | undefined;
    if (slot.kind === 'pod') {
      namedPorts = podNamedPorts(slot.pod!);
      key = identityKey({
        kind: 'pod',
        namespace: slot.pod!.metadata?.namespace ?? 'default',
        labels: slot.pod!.metadata?.labels ?? {},
        namedPorts: namedPortList(namedPorts),
        cidrs,
      });
    } else key = identityKey({ kind: slot.kind, cidrs });
    slotIds.push({ prefixKey, slot, key, cidrs, namedPorts });
  }
  const reservedKeys = new Map<string, number>([
    [identityKey({ kind: 'host', cidrs: [] }), ID_HOST],
    [identityKey({ kind: 'world', cidrs: [] }), ID_WORLD],
    [identityKey({ kind: 'remote-node', cidrs: [] }), ID_REMOTE_NODE],
  ]);
  // new keys are numbered in address order of their first prefix: deterministic, and cheaper than sorting the keys
  slotIds.sort((a, b) => a.slot.prefix.addr - b.slot.prefix.addr || a.slot.prefix.len - b.slot.prefix.len);
  const idOfKey = new Map(reservedKeys);
  const dynKeys: string[] = [];
  for (const s of slotIds)
    if (!idOfKey.has(s.key)) {
      idOfKey.set(s.key, alloc.idFor(s.key));
      dynKeys.push(s.key);
    }

  const identities = new Map<number, IdentityInfo>();
  identities.set(ID_HOST, { id: ID_HOST, kind: 'host', cidrs: [], key: identityKey({ kind: 'host', cidrs: [] }) });
  identities.set(ID_WORLD, { id: ID_WORLD, kind: 'world', cidrs: [], key: identityKey({ kind: 'world', cidrs: [] }) });
  identities.set(ID_REMOTE_NODE, { id: ID_REMOTE_NODE, kind: 'remote-node', cidrs: [], key: identityKey({ kind: 'remote-node', cidrs: [] }) });
  const podIds = new Map<number, PodIdentity>();
  const ipcacheList: [Prefix4, string, number][] = [];
  for (const s of slotIds) {
    const id = idOfKey.get(s.key)!;
    ipcacheList.push([s.slot.prefix, s.prefixKey, id]);
    if (identities.has(id)) continue;
    const info: IdentityInfo = { id, kind: s.slot.kind, cidrs: s.cidrs, key: s.key };
    if (s.slot.kind === 'pod') {
      const namespace = s.slot.pod!.metadata?.namespace ?? 'default';
      const labels = s.slot.pod!.metadata?.labels ?? {};
      info.namespace = namespace;
      info.labels = labels;
      podIds.set(id, { id, namespace, labels, namedPorts: s.namedPorts! });
      nsOf(namespace);
    }
    identities.set(id, info);
  }
  const ipcache = new Map(ipcacheList.map(([, k, id]) => [k, id]));

  // ---- indexes for peer selection ----
  const podIdsByNs = new Map<string, PodIdentity[]>();
  for (const pi of [...podIds.values()].sort((a, b) => a.id - b.id)) {
    const l = podIdsByNs.get(pi.namespace) ?? [];
    l.push(pi);
    podIdsByNs.set(pi.namespace, l);
  }
  const idsByBlock = new Map<string, number[]>();
  for (const info of [...identities.values()].sort((a, b) => a.id - b.id))
    for (const c of info.cidrs) {
      const l = idsByBlock.get(c) ?? [];
      l.push(info.id);
      idsByBlock.set(c, l);
    }
  const nsNames = [...nsLabels.keys()].sort();
  const hostIds = [...identities.values()].filter((i) => i.kind === 'host').map((i) => i.id).sort((a, b) => a - b);
  const allPodIds = [...podIds.values()].sort((a, b) => a.id - b.id);

  const peerIds = (pol: ParsedPolicy, rule: Rule): number[] => {
    if (rule.ids) return rule.ids;
    const set = new Set<number>();
    for (const peer of rule.peers) {
      if (peer.type === 'any') set.add(ID_ANY);
      else if (peer.type === 'block') for (const id of idsByBlock.get(peer.block.canonical) ?? []) set.add(id);
      else {
        const namespaces = peer.nsSel ? nsNames.filter((n) => peer.nsSel!(nsLabels.get(n)!)) : [pol.namespace];
        for (const n of namespaces) for (const pi of podIdsByNs.get(n) ?? []) if (peer.podSel(pi.labels)) set.add(pi.id);
      }
    }
    rule.ids = [...set].sort((a, b) => a - b);
    return rule.ids;
  };

  // ---- local endpoints ----
  const podByName = new Map<string, V1Pod>();
  for (const p of input.pods) podByName.set(objRef(p.metadata), p);
  const endpoints = new Map<number, EndpointPolicy>();
  const policiesByNs = new Map<string, ParsedPolicy[]>();
  for (const p of policies) {
    const l = policiesByNs.get(p.namespace) ?? [];
    l.push(p);
    policiesByNs.set(p.namespace, l);
  }

  for (const ep of [...input.endpoints].sort((a, b) => a.endpointId - b.endpointId)) {
    let pod: V1Pod | undefined;
    if (ep.podNamespace && ep.podName) pod = podByName.get(`${ep.podNamespace}/${ep.podName}`);
    if (!pod) {
      const a = parseIPv4(ep.ip);
      if (a !== undefined) pod = podByIp.get(a);
    }
    const out: EndpointPolicy = { endpointId: ep.endpointId, pod: pod ? objRef(pod.metadata) : ep.ip, ip: ep.ip };
    if (pod) {
      const ns = pod.metadata?.namespace ?? 'default';
      const labels = pod.metadata?.labels ?? {};
      const selecting = (policiesByNs.get(ns) ?? []).filter((p) => p.select(labels));
      const localNamed = podNamedPorts(pod);
      for (const dir of ['ingress', 'egress'] as const) {
        const pols = selecting.filter((p) => p.types.has(dir));
        if (pols.length === 0) continue;
        // (proto, port, endPort) -> peer identities; sets keep the union cheap
        const byPorts = new Map<string, Set<number>>();
        const add = (proto: number, port: number, endPort: number, ids: Iterable<number>) => {
          const k = `${proto}/${port}/${endPort}`;
          let s = byPorts.get(k);
          if (!s) byPorts.set(k, (s = new Set()));
          for (const id of ids) s.add(id);
        };
        add(0, 0, 0, hostIds);
        for (const pol of pols)
          for (const rule of pol.rules[dir]) {
            if (rule.ports.length === 0 || rule.peers.length === 0) continue;
            const ids = peerIds(pol, rule);
            if (ids.length === 0) continue;
            for (const port of rule.ports) {
              if (port.type === 'all') add(0, 0, 0, ids);
              else if (port.type === 'num') add(port.proto, port.port, port.endPort, ids);
              else {
                const k = `${port.name}/${protoName(port.proto)}`;
                if (dir === 'ingress') {
                  // resolved against this (destination) pod's container ports
                  for (const num of localNamed.get(k) ?? []) add(port.proto, num, num, ids);
                } else {
                  // resolved against each destination pod's container ports, per identity
                  const dests = ids[0] === ID_ANY ? allPodIds : ids.map((id) => podIds.get(id)).filter((x): x is PodIdentity => !!x);
                  for (const pi of dests) for (const num of pi.namedPorts.get(k) ?? []) add(port.proto, num, num, [pi.id]);
                }
              }
            }
          }
        const entries: PolicyEntry[] = [];
        for (const [k, ids] of byPorts) {
          const [proto, port, endPort] = k.split('/').map(Number);
          for (const identity of ids) entries.push({ identity, proto, port, endPort });
        }
        const rs: RuleSet = { entries: normalizeOwned(entries), policies: pols.map((p) => p.ref).sort() };
        out[dir] = rs;
      }
    }
    endpoints.set(ep.endpointId, out);
  }

  const used = new Set(dynKeys);
  alloc.retain(used);
  return { identities: new Map([...identities].sort((a, b) => a[0] - b[0])), ipcache, endpoints, problems };
}
