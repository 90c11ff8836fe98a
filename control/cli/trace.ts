// `weir trace` logic: the lookups from_pod / from_uplink make for one packet
// SRC -> DST:PORT, replayed in TypeScript over the pinned maps (lb.h,
// lb_select.h, conntrack.h, route.h, policy.h). Read-only: nothing is
// written, so affinity and conntrack entries are shown, never created. The
// policy verdicts use the kernel's own LPM lookups (weir_ipcache4,
// weir_policy4), so they are the datapath's answers, not a re-implementation.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BpfMap } from '../../native/index.js';
import type { DatapathMaps } from '../datapath/maps.js';
import { flowHash } from '../datapath/flowhash.js';
import * as T from '../datapath/types.gen.js';
import { CliError, EXIT_USAGE } from './context.js';
import { enumName, flagNames, ip4, mac, monotonicNs, parseIp4, protoName } from './format.js';
import {
  backendView,
  frontend,
  identityMeaning,
  lpmMatch,
  policyKeyRange,
  policyLpmMatch,
  portText,
  type BackendView,
  type PolicySnapshotView,
} from './views.js';

const HAIRPIN_IP = 0xa9fe2a01; // lb.h LB_HAIRPIN_IP 169.254.42.1
const SNAT_PORT_MIN = 61000; // lb.h LB_SNAT_PORT_MIN

export interface TraceQuery {
  src: number;
  dst: number;
  port: number;
  proto: number;
  sport?: number;
}

export interface TraceStep {
  step: string;
  /** Policy steps: the direction checked (egress of the sender, ingress of the receiver). */
  dir?: 'egress' | 'ingress';
  map: string | null;
  key: unknown;
  entry: unknown;
  result: string;
}

export interface TraceResult {
  packet: { src: string; dst: string; sport: number | null; dport: number; proto: string };
  program: string;
  steps: TraceStep[];
  verdict: string;
}

/** SRC, DST:PORT[/PROTO] and --sport checked; bad ones are usage errors (exit 2). */
export function parseTraceArgs(src: string, dst: string, sport?: string): TraceQuery {
  const s = parseIp4(src);
  if (s === undefined) throw new CliError(`SRC '${src}' is not an IPv4 address`, EXIT_USAGE);
  const m = /^([^:/]+):([^/]+)(?:\/(.+))?$/.exec(dst);
  if (!m) throw new CliError(`DST '${dst}' must be ADDR:PORT[/PROTO] (e.g. 10.96.0.10:80/tcp)`, EXIT_USAGE);
  const d = parseIp4(m[1]);
  if (d === undefined) throw new CliError(`DST address '${m[1]}' is not an IPv4 address`, EXIT_USAGE);
  const port = portOf(m[2], 'DST port');
  const protoName = (m[3] ?? 'tcp').toLowerCase();
  const proto = protoName === 'tcp' ? 6 : protoName === 'udp' ? 17 : undefined;
  if (proto === undefined) throw new CliError(`DST protocol '${m[3]}' is unknown (tcp or udp)`, EXIT_USAGE);
  return { src: s, dst: d, port, proto, sport: sport === undefined ? undefined : portOf(sport, '--sport') };
}

function portOf(s: string, what: string): number {
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new CliError(`${what} '${s}' is not a port (1..65535)`, EXIT_USAGE);
  return n;
}

/** Longest-prefix match over the dumped weir_tunnel4 entries (what the LPM trie does). */
export function lpmLookup(routes: Array<[T.Tunnel4Key, T.TunnelInfo]>, addr: number): [T.Tunnel4Key, T.TunnelInfo] | undefined {
  let best: [T.Tunnel4Key, T.TunnelInfo] | undefined;
  for (const r of routes) {
    const len = r[0].prefixlen;
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    if (((addr & mask) >>> 0) === ((r[0].addr & mask) >>> 0) && (!best || len > best[0].prefixlen)) best = r;
  }
  return best;
}

const epShown = (e: T.EndpointInfo) => ({
  ifindex: e.ifindex,
  endpoint_id: e.endpoint_id,
  mac: mac(e.mac),
  node_mac: mac(e.node_mac),
  flags: flagNames(e.flags, T.EndpointFlags),
  identity: e.identity,
});
const tunnelKey = (k: T.Tunnel4Key) => `${ip4(k.addr)}/${k.prefixlen}`;
const tunnelShown = (v: T.TunnelInfo) => ({ node_addr: ip4(v.node_addr), node_id: v.node_id, node_mac: mac(v.node_mac), vtep_mac: mac(v.vtep_mac) });
const svcShown = (v: T.SvcValue) => ({
  svc_id: v.svc_id,
  count: v.count,
  revnat_id: v.revnat_id,
  affinity_timeout: v.affinity_timeout,
  flags: flagNames(v.flags, T.SvcFlags),
  algorithm: enumName(v.algorithm, T.LbAlgorithm),
});
const ctKeyShown = (k: T.Ct4Key) => ({
  saddr: ip4(k.saddr), daddr: ip4(k.daddr), sport: k.sport, dport: k.dport, proto: protoName(k.proto), flags: flagNames(k.flags, T.CtKeyFlags),
});
const ctShown = (e: T.CtEntry) => ({
  backend_id: e.backend_id,
  revnat_id: e.revnat_id,
  flags: flagNames(e.flags, T.CtFlags),
  nat_addr: ip4(e.nat_addr),
  nat_port: e.nat_port,
  tcp_state: flagNames(e.tcp_state, T.CtTcpState),
  packets_fwd: e.packets_fwd,
  packets_rev: e.packets_rev,
});

interface Candidate {
  backend: BackendView;
  slots?: number;
  share: number;
}

function where(b: BackendView): string {
  return b.flags.includes('local') ? 'on this node' : b.nodeId ? `on node_id ${b.nodeId}` : 'node unknown';
}

/** What the policy steps name things with: the agent's snapshot, and the lab's other nodes. */
export interface TraceOptions {
  snapshot?: PolicySnapshotView;
  /** This node's pin root: other lab nodes are its sibling folders (for "trace there with --node X"). */
  pinRoot?: string;
}

/** Replays the datapath for one packet; `maps` stays open (the caller closes it). */
export function trace(m: DatapathMaps, q: TraceQuery, opts: TraceOptions = {}): TraceResult {
  const steps: TraceStep[] = [];
  const pctx: PolicyCtx = { m, q, opts, steps, srcEp: undefined, srcNode: undefined };
  const add = (s: TraceStep) => steps.push(s);
  const routes = m.tunnel4.dump();
  const tuple = `${ip4(q.src)}${q.sport ? `:${q.sport}` : ''} -> ${ip4(q.dst)}:${q.port}/${protoName(q.proto)}`;
  const out = (program: string, verdict: string): TraceResult => ({
    packet: { src: ip4(q.src), dst: ip4(q.dst), sport: q.sport ?? null, dport: q.port, proto: protoName(q.proto) },
    program,
    steps,
    verdict,
  });

  // 1. Which program sees the packet first.
  const srcEp = m.ep4.get({ addr: q.src });
  let origin: 'pod' | 'uplink' | 'host';
  let program: string;
  if (srcEp && !(srcEp.flags & T.EndpointFlags.EP_F_HOST)) {
    origin = 'pod';
    pctx.srcEp = srcEp;
    program = `from_pod (tc ingress of ifindex ${srcEp.ifindex})`;
    add({ step: 'source', map: 'weir_ep4', key: { addr: ip4(q.src) }, entry: epShown(srcEp), result: `local pod, endpoint ${srcEp.endpoint_id}: ${program} sees it` });
  } else if (srcEp) {
    origin = 'host';
    program = 'node stack (to_uplink routes only)';
    add({ step: 'source', map: 'weir_ep4', key: { addr: ip4(q.src) }, entry: epShown(srcEp), result: 'the node itself (EP_F_HOST): its packets pass no weir load balancer; the node stack routes them' });
  } else {
    const r = lpmLookup(routes, q.src);
    if (r && !(r[0].prefixlen === 32 && r[1].node_addr === q.src)) {
      // A pod of another node: its own node's from_pod translates it (same service maps).
      origin = 'pod';
      pctx.srcNode = r[1];
      program = `from_pod on node ${ip4(r[1].node_addr)} (node_id ${r[1].node_id})`;
      add({ step: 'source', map: 'weir_tunnel4', key: tunnelKey(r[0]), entry: tunnelShown(r[1]), result: `not local: a pod of node ${ip4(r[1].node_addr)}; ${program} handles it (trace there with --node for its routes)` });
    } else {
      origin = 'uplink';
      program = 'from_uplink';
      add({ step: 'source', map: 'weir_ep4', key: { addr: ip4(q.src) }, entry: null, result: 'not a local endpoint: the packet arrives on the uplink, from_uplink sees it' });
    }
  }

  if (origin === 'host') return finish(pctx, routes, origin, [{ addr: q.dst, port: q.port }], out, program, null);

  // 2. Conntrack: an established service flow follows its backend.
  const ctBase = { saddr: q.src, daddr: q.dst, dport: q.port, proto: q.proto, flags: T.CtKeyFlags.CT_KEY_SERVICE, pad: 0 };
  if (q.sport !== undefined) {
    const sk = { ...ctBase, sport: q.sport };
    const se = m.ct4.get(sk);
    const be = se ? m.backend4.get(se.backend_id) : undefined;
    if (se && be) {
      const nat = se.flags & (T.CtFlags.CT_F_SNAT | T.CtFlags.CT_F_HAIRPIN);
      const pk = { saddr: nat ? se.nat_addr : q.src, daddr: be.addr, sport: nat ? se.nat_port : q.sport, dport: be.port, proto: q.proto, flags: 0, pad: 0 };
      const pe = m.ct4.get(pk);
      if (pe) {
        add({ step: 'conntrack', map: 'weir_ct4', key: ctKeyShown(sk), entry: ctShown(se), result: `established service flow: follows backend ${se.backend_id} ${ip4(be.addr)}:${be.port} (reply entry present)` });
        const bv = backendView(se.backend_id, be);
        return finish(pctx, routes, origin, [{ addr: be.addr, port: be.port, backend: bv }], out, program, nat ? se.nat_addr : null);
      }
      add({ step: 'conntrack', map: 'weir_ct4', key: ctKeyShown(sk), entry: ctShown(se), result: 'service entry without its reply entry (evicted): a new backend is picked' });
    } else {
      add({ step: 'conntrack', map: 'weir_ct4', key: ctKeyShown(sk), entry: se ? ctShown(se) : null, result: se ? `entry names backend ${se.backend_id}, which is gone: a new backend is picked` : 'no entry: a new flow' });
    }
  } else {
    const flows = m.ct4
      .dump()
      .filter(([k]) => k.saddr === q.src && k.daddr === q.dst && k.dport === q.port && k.proto === q.proto && k.flags & T.CtKeyFlags.CT_KEY_SERVICE)
      .map(([k, v]) => ({ sport: k.sport, ...ctShown(v) }));
    add({
      step: 'conntrack',
      map: 'weir_ct4',
      key: { ...ctKeyShown({ ...ctBase, sport: 0 }), sport: '*' },
      entry: flows,
      result: flows.length ? `${flows.length} established flow(s) from this source (give --sport to follow one); a new flow picks below` : 'no established flow from this source (any port): a new flow',
    });
  }

  // 3. Service frontend (lb_svc_lookup).
  let key: T.Svc4Key = { addr: q.dst, port: q.port, proto: q.proto, scope: T.SvcScope.SVC_SCOPE_EXT };
  let svc = m.svc4.get(key);
  let how = 'exact frontend';
  if (!svc && m.node4.get(q.dst)) {
    key = { ...key, addr: 0 };
    svc = m.svc4.get(key);
    how = `NodePort (${ip4(q.dst)} is in weir_node4)`;
  }
  const keyShown = (k: T.Svc4Key) => ({ addr: ip4(k.addr), port: k.port, proto: protoName(k.proto), scope: enumName(k.scope, T.SvcScope) });
  if (!svc) {
    add({ step: 'service', map: 'weir_svc4', key: keyShown(key), entry: null, result: `${frontend(q.dst, q.port, q.proto)} is not a service frontend: no translation` });
    return finish(pctx, routes, origin, [{ addr: q.dst, port: q.port }], out, program, null);
  }
  if (origin === 'pod' && svc.flags & T.SvcFlags.SVC_F_TWO_SCOPES) {
    const ik = { ...key, scope: T.SvcScope.SVC_SCOPE_INT };
    const iv = m.svc4.get(ik);
    add({ step: 'service', map: 'weir_svc4', key: keyShown(key), entry: svcShown(svc), result: `${how}; SVC_F_TWO_SCOPES: in-cluster client uses the internal scope` });
    if (iv) {
      key = ik;
      svc = iv;
    }
  }
  const alg = svc.algorithm === T.LbAlgorithm.LB_ALG_MAGLEV ? 'maglev' : 'random';
  add({ step: 'service', map: 'weir_svc4', key: keyShown(key), entry: svcShown(svc), result: `${how}: svc_id ${svc.svc_id}, ${svc.count} backend(s), ${alg}` });
  if (svc.count === 0) return out(program, 'rejected (no ready backends): TCP RST / ICMP port unreachable');

  // 4. Backend choice (lb_select).
  const cands = chooseBackends(m, q, svc, add);
  if (cands.length === 0) return out(program, 'rejected (no backend in the service slots): TCP RST / ICMP port unreachable');
  let srcNat: number | null = null;
  if (cands.length === 1) {
    const b = cands[0].backend;
    if (origin === 'pod' && b.addr === ip4(q.src)) srcNat = HAIRPIN_IP;
    else if (origin === 'uplink' && !b.flags.includes('local') && !(svc.flags & T.SvcFlags.SVC_F_ETP_LOCAL)) srcNat = -1;
  }
  return finish(pctx, routes, origin, cands.map((c) => ({ addr: parseIp4(c.backend.addr)!, port: c.backend.port, backend: c.backend })), out, program, srcNat);
}

function chooseBackends(m: DatapathMaps, q: TraceQuery, svc: T.SvcValue, add: (s: TraceStep) => void): Candidate[] {
  const backend = (id: number) => {
    const b = id ? m.backend4.get(id) : undefined;
    return b ? backendView(id, b) : undefined;
  };
  const describe = (b: BackendView) => `backend ${b.id} ${b.addr}:${b.port} (${b.state}, ${where(b)})`;
  if (svc.flags & T.SvcFlags.SVC_F_AFFINITY) {
    const ak = { client: q.src, svc_id: svc.svc_id };
    const av = m.affinity4.get(ak);
    const fresh = av && monotonicNs() - av.last_used <= BigInt(svc.affinity_timeout) * 1_000_000_000n;
    const b = av && fresh ? backend(av.backend_id) : undefined;
    add({
      step: 'affinity',
      map: 'weir_affinity4',
      key: { client: ip4(q.src), svc_id: svc.svc_id },
      entry: av ? { backend_id: av.backend_id, last_used: av.last_used } : null,
      result: b ? `ClientIP affinity: ${describe(b)}` : av ? 'affinity entry expired or its backend is gone: choose anew' : 'no affinity entry yet: choose anew (then remembered)',
    });
    if (b) return [{ backend: b, share: 1 }];
  }
  if (svc.algorithm === T.LbAlgorithm.LB_ALG_MAGLEV) {
    const k = Buffer.alloc(4);
    k.writeUInt32LE(svc.svc_id);
    const innerId = m.maglev.lookup(k)?.readUInt32LE(0);
    if (innerId !== undefined) {
      const inner = BpfMap.fromId(innerId);
      try {
        const size = inner.info.maxEntries;
        if (q.sport !== undefined) {
          const hash = flowHash(q.src, q.dst, q.sport, q.port, q.proto);
          const slot = hash % size;
          const ik = Buffer.alloc(4);
          ik.writeUInt32LE(slot);
          const id = inner.lookup(ik)?.readUInt32LE(0) ?? 0;
          const b = backend(id);
          add({
            step: 'backend',
            map: 'weir_maglev',
            key: { svc_id: svc.svc_id, slot },
            entry: { backend_id: id, backend: b ?? null },
            result: b ? `maglev: flow hash 0x${hash.toString(16)} % ${size} = slot ${slot}: ${describe(b)}` : `maglev slot ${slot} holds backend ${id}, which is not in weir_backend4: rejected`,
          });
          return b ? [{ backend: b, slots: 1, share: 1 }] : [];
        }
        const counts = new Map<number, number>();
        for (const id of readSlots(inner)) counts.set(id, (counts.get(id) ?? 0) + 1);
        const cands = [...counts]
          .map(([id, n]) => ({ b: backend(id), n }))
          .filter((c): c is { b: BackendView; n: number } => c.b !== undefined)
          .map((c) => ({ backend: c.b, slots: c.n, share: c.n / size }))
          .sort((a, b) => b.slots - a.slots || a.backend.id - b.backend.id);
        add({
          step: 'backend',
          map: 'weir_maglev',
          key: { svc_id: svc.svc_id },
          entry: cands.map((c) => ({ backend_id: c.backend.id, slots: c.slots, share: c.share })),
          result: `maglev table of ${size} slots; the flow hash needs the source port (--sport) to pick one of ${cands.length}: ${cands.map((c) => `${describe(c.backend)} ${(100 * c.share).toFixed(1)}%`).join('; ')}`,
        });
        return cands;
      } finally {
        inner.close();
      }
    }
    add({ step: 'backend', map: 'weir_maglev', key: { svc_id: svc.svc_id }, entry: null, result: 'no maglev table yet: falls back to a random slot' });
  }
  const cands: Candidate[] = [];
  const slots: unknown[] = [];
  for (let slot = 1; slot <= svc.count; slot++) {
    const id = m.lbSlots.get({ svc_id: svc.svc_id, slot }) ?? 0;
    const b = backend(id);
    slots.push({ slot, backend_id: id });
    if (b) cands.push({ backend: b, slots: 1, share: 1 / svc.count });
  }
  add({
    step: 'backend',
    map: 'weir_lb_slots',
    key: { svc_id: svc.svc_id, slot: `1..${svc.count}` },
    entry: slots,
    result: `random over ${svc.count} slot(s): ${cands.map((c) => `${describe(c.backend)} ${(100 * c.share).toFixed(1)}%`).join('; ')}`,
  });
  return cands;
}

function readSlots(inner: BpfMap): number[] {
  const out: number[] = [];
  try {
    for (const [, v] of inner.lookupBatch()) out.push(v.readUInt32LE(0));
  } catch {
    const k = Buffer.alloc(4);
    for (let i = 0; i < inner.info.maxEntries; i++) {
      k.writeUInt32LE(i);
      out.push(inner.lookup(k)?.readUInt32LE(0) ?? 0);
    }
  }
  return out;
}

interface Dest {
  addr: number;
  port: number;
  backend?: BackendView;
}

/** Steps 5 (route to each possible destination) and 6 (policy), then the verdict. */
function finish(
  pctx: PolicyCtx,
  routes: Array<[T.Tunnel4Key, T.TunnelInfo]>,
  origin: 'pod' | 'uplink' | 'host',
  dests: Dest[],
  out: (program: string, verdict: string) => TraceResult,
  program: string,
  srcNat: number | null,
): TraceResult {
  const { m, q, steps } = pctx;
  const outcomes: string[] = [];
  for (const d of dests) {
    const r = route(m, routes, origin, d.addr, q.sport);
    steps.push(r.step);
    const target = `${ip4(d.addr)}:${d.port}${d.backend ? ` (backend ${d.backend.id})` : ''}`;
    const denied = policySteps(pctx, origin, d, srcNat);
    outcomes.push(denied ? `${denied} -> ${target}` : `${r.verdict} -> ${target}`);
  }
  let verdict = dests.length === 1 ? outcomes[0] : `one of ${dests.length} backends: ${outcomes.join(' | ')}`;
  if (dests.length === 1 && dests[0].backend) verdict = `DNAT to ${ip4(dests[0].addr)}:${dests[0].port}; ${verdict}`;
  if (srcNat === HAIRPIN_IP) verdict += `; hairpin: source SNATed to ${ip4(HAIRPIN_IP)}`;
  else if (srcNat === -1) verdict += '; remote NodePort backend: source SNATed to this node (port 61000+)';
  return out(program, verdict);
}

function route(m: DatapathMaps, routes: Array<[T.Tunnel4Key, T.TunnelInfo]>, origin: string, daddr: number, sport?: number): { step: TraceStep; verdict: string } {
  const node = (v: T.TunnelInfo) => `node ${ip4(v.node_addr)} (node_id ${v.node_id})`;
  const ep = m.ep4.get({ addr: daddr });
  if (ep) {
    const step = { step: 'route', map: 'weir_ep4', key: { addr: ip4(daddr) }, entry: epShown(ep), result: '' };
    if (ep.flags & T.EndpointFlags.EP_F_HOST) {
      step.result = 'the node itself (gateway address): passed to the node stack';
      return { step, verdict: 'delivered to the node stack' };
    }
    step.result = `local pod, endpoint ${ep.endpoint_id}: redirect_peer to ifindex ${ep.ifindex}`;
    return { step, verdict: `delivered to local pod (redirect_peer to ifindex ${ep.ifindex})` };
  }
  const self = m.node4.get(daddr);
  if (self) {
    return {
      step: { step: 'route', map: 'weir_node4', key: ip4(daddr), entry: { flags: self.flags }, result: 'an address of this node: passed to the node stack' },
      verdict: 'delivered to the node itself (node stack)',
    };
  }
  const r = lpmLookup(routes, daddr);
  if (r) {
    const key = tunnelKey(r[0]);
    // The per-node /32 entries carry only replies to another node's NodePort SNAT (route_snat_reply).
    const nodeAddr = r[0].prefixlen === 32 && r[1].node_addr === daddr;
    if (!nodeAddr) {
      return {
        step: { step: 'route', map: 'weir_tunnel4', key, entry: tunnelShown(r[1]), result: `remote pod CIDR ${key}: VXLAN to ${node(r[1])}` },
        verdict: `VXLAN to ${node(r[1])}`,
      };
    }
    if (origin === 'pod' && sport !== undefined && sport >= SNAT_PORT_MIN) {
      return {
        step: { step: 'route', map: 'weir_tunnel4', key, entry: tunnelShown(r[1]), result: `another node's address and a NodePort SNAT port: VXLAN to ${node(r[1])}` },
        verdict: `VXLAN to ${node(r[1])}`,
      };
    }
    return {
      step: { step: 'route', map: 'weir_tunnel4', key, entry: tunnelShown(r[1]), result: `the address of ${node(r[1])}: not a pod, so the node stack routes it (masqueraded)` },
      verdict: 'node stack (masqueraded)',
    };
  }
  return {
    step: {
      step: 'route',
      map: 'weir_tunnel4',
      key: ip4(daddr),
      entry: null,
      result: 'no local endpoint, node address or pod CIDR route: outside the cluster, the node stack routes it (masqueraded)',
    },
    verdict: 'outside the cluster: node stack (masqueraded)',
  };
}

// ---------------------------------------------------------------------------
// Policy (bpf/include/policy.h pol_enforce / pol_evaluate): the flow's policy
// conntrack entry, then for each side this node enforces — egress of a local
// sender, ingress of a local receiver — ep_policy -> policy id, ipcache ->
// the peer's identity, and the weir_policy4 lookups (peer identity, then
// ID_ANY). The verdicts come from the kernel's own LPM lookups; the matched
// entry shown next to them is found by the same rule over the dumped keys.
// ---------------------------------------------------------------------------

interface PolicyCtx {
  m: DatapathMaps;
  q: TraceQuery;
  opts: TraceOptions;
  steps: TraceStep[];
  /** The sending local endpoint (from_pod on this node). */
  srcEp: T.EndpointInfo | undefined;
  /** The sending pod's node when it is a pod of another node. */
  srcNode: T.TunnelInfo | undefined;
  dumps?: { ipcache: Array<[T.Ipcache4Key, T.IpcacheValue]>; policy: Array<[T.Policy4Key, T.PolicyValue]> };
}

const MATCH_TEXT: Record<number, string> = {
  [T.PolicyMatch.MATCH_L3_L4]: 'peer identity + port',
  [T.PolicyMatch.MATCH_L3]: 'peer identity, any port',
  [T.PolicyMatch.MATCH_L4]: 'any peer, this port',
  [T.PolicyMatch.MATCH_ALL]: 'any peer, any port',
};

/** The lab node (a sibling pin folder of this node's) whose weir_node4 holds `addr`. */
export function labNodeOf(pinRoot: string | undefined, addr: number): string | undefined {
  if (!pinRoot) return undefined;
  const base = dirname(pinRoot);
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return undefined;
  }
  const key = Buffer.alloc(4);
  key.writeUInt32BE(addr >>> 0);
  for (const n of names) {
    const pin = join(base, n, 'weir_node4');
    if (!existsSync(pin)) continue;
    try {
      const m = BpfMap.fromPin(pin);
      try {
        if (m.lookup(key)) return n;
      } finally {
        m.close();
      }
    } catch {
      /* not a map we can read */
    }
  }
  return undefined;
}

function elsewhere(c: PolicyCtx, node: T.TunnelInfo, what: string): string {
  const name = labNodeOf(c.opts.pinRoot, node.node_addr);
  const p = c.q;
  const cmd = `trace ${ip4(p.src)} ${ip4(p.dst)}:${p.port}/${protoName(p.proto)}${p.sport ? ` --sport ${p.sport}` : ''}`;
  return (
    `${what} is enforced by node ${ip4(node.node_addr)} (node_id ${node.node_id}) with its own identities and policy maps: ` +
    (name ? `trace there: weir --node ${name} ${cmd}` : `run weir ${cmd} on that node`)
  );
}

const epName = (c: PolicyCtx, id: number, addr: number) => `endpoint ${id} (${c.opts.snapshot?.endpoints.get(id)?.pod ?? ip4(addr)})`;

/** The policy steps for one destination; returns the drop verdict, or null when the packet passes. */
function policySteps(c: PolicyCtx, origin: string, d: Dest, srcNat: number | null): string | null {
  const { m, q, steps } = c;
  const snap = c.opts.snapshot;
  const dstEpRaw = m.ep4.get({ addr: d.addr });
  const dstEp = dstEpRaw && !(dstEpRaw.flags & T.EndpointFlags.EP_F_HOST) ? dstEpRaw : undefined;
  const srcEp = origin === 'pod' ? c.srcEp : undefined;
  if (c.srcNode) steps.push({ step: 'policy', dir: 'egress', map: null, key: null, entry: null, result: elsewhere(c, c.srcNode, `egress of ${ip4(q.src)}`) });
  let remote: TraceStep | undefined;
  if (!dstEp && !m.node4.get(d.addr)) {
    const r = lpmLookup(m.tunnel4.dump(), d.addr);
    if (r && !(r[0].prefixlen === 32 && r[1].node_addr === d.addr)) {
      remote = { step: 'policy', dir: 'ingress', map: null, key: null, entry: null, result: elsewhere(c, r[1], `ingress of ${ip4(d.addr)}`) };
    }
  }
  if (!srcEp && !dstEp) {
    if (remote) steps.push(remote);
    else if (!c.srcNode) steps.push({ step: 'policy', map: null, key: null, entry: null, result: 'no local pod sends or receives this packet: this node checks no policy on it' });
    return null;
  }
  const denied = localPolicySteps(c, d, srcEp, dstEp, srcNat);
  // A packet this node drops never reaches the node that would check its ingress.
  if (remote && !denied) steps.push(remote);
  return denied;
}

function localPolicySteps(c: PolicyCtx, d: Dest, srcEp: T.EndpointInfo | undefined, dstEp: T.EndpointInfo | undefined, srcNat: number | null): string | null {
  const { m, q, steps } = c;
  const snap = c.opts.snapshot;
  c.dumps ??= { ipcache: m.ipcache4.dump(), policy: m.policy4.dump() };
  const gen = m.policyGen.get(0)?.gen ?? 0;

  // The tuple as the pods see it: after DNAT; a hairpinned flow has the hairpin source.
  const saddr = srcNat === HAIRPIN_IP ? HAIRPIN_IP : q.src;
  const ctKey = (s: number, dd: number, sp: number, dp: number) => ({ saddr: s, daddr: dd, sport: sp, dport: dp, proto: q.proto, flags: T.CtKeyFlags.CT_KEY_POLICY, pad: 0 });
  let tracked: 'current' | 'reply' | 'stale' | null = null;
  if (q.sport !== undefined) {
    const fk = ctKey(saddr, d.addr, q.sport, d.port);
    const fe = m.ct4.get(fk);
    const rk = ctKey(d.addr, saddr, d.port, q.sport);
    const re = fe ? undefined : m.ct4.get(rk);
    if (fe) tracked = fe.policy_gen === gen ? 'current' : 'stale';
    else if (re) tracked = 'reply';
    steps.push({
      step: 'policy-ct',
      map: 'weir_ct4',
      key: ctKeyShown(re ? rk : fk),
      entry: fe ? { ...ctShown(fe), policy_gen: fe.policy_gen } : re ? { ...ctShown(re), policy_gen: re.policy_gen } : null,
      result:
        tracked === 'current'
          ? `tracked flow allowed at policy generation ${gen} (the current one): passes without a policy lookup`
          : tracked === 'stale'
            ? `tracked flow of generation ${fe!.policy_gen}, policy is now at ${gen}: decided again below (the entry is deleted if now denied)`
            : tracked === 'reply'
              ? 'the reversed tuple is a tracked flow: this packet is a reply and passes'
              : 'no policy entry for this tuple or its reply: a new flow, decided below',
    });
  } else {
    const flows = m.ct4
      .dump()
      .filter(([k]) => k.flags & T.CtKeyFlags.CT_KEY_POLICY && k.saddr === saddr && k.daddr === d.addr && k.dport === d.port && k.proto === q.proto)
      .map(([k, v]) => ({ sport: k.sport, policy_gen: v.policy_gen, flags: flagNames(v.flags, T.CtFlags) }));
    steps.push({
      step: 'policy-ct',
      map: 'weir_ct4',
      key: { ...ctKeyShown(ctKey(saddr, d.addr, 0, d.port)), sport: '*' },
      entry: flows,
      result: flows.length
        ? `${flows.length} tracked flow(s) from this source (give --sport to check one); a new flow is decided below`
        : 'no tracked flow from this source (any port): a new flow, decided below',
    });
  }

  let denied: string | null = null;
  const sides: Array<{ dir: 'egress' | 'ingress'; ep: T.EndpointInfo; epAddr: number; peer: number }> = [];
  if (srcEp) sides.push({ dir: 'egress', ep: srcEp, epAddr: q.src, peer: d.addr });
  if (dstEp) sides.push({ dir: 'ingress', ep: dstEp, epAddr: d.addr, peer: saddr === HAIRPIN_IP ? d.addr : saddr });
  for (const side of sides) {
    const { dir, ep } = side;
    const who = epName(c, ep.endpoint_id, side.epAddr);
    const epp = m.epPolicy.get(ep.endpoint_id);
    const id = epp ? (dir === 'egress' ? epp.egress_id : epp.ingress_id) : 0;
    const names = snap?.endpoints.get(ep.endpoint_id)?.[dir]?.policies;
    const byNames = names?.length ? ` (${names.join(', ')})` : '';
    steps.push({
      step: 'ep_policy',
      dir,
      map: 'weir_ep_policy',
      key: ep.endpoint_id,
      entry: epp ? { ingress_id: epp.ingress_id, egress_id: epp.egress_id } : null,
      result: id ? `${who} is isolated for ${dir}: policy id ${id}${byNames}` : `${who} is not isolated for ${dir} (no policy selects it): allowed`,
    });
    if (!id) continue;
    // The peer's identity: the kernel's LPM answer, and the prefix that gave it.
    const iv = m.ipcache4.get({ prefixlen: 32, addr: side.peer });
    const identity = iv ? iv.identity : T.PolicyIdentity.ID_WORLD;
    const im = lpmMatch(c.dumps.ipcache, side.peer);
    const meaning = identityMeaning(identity, snap);
    steps.push({
      step: 'ipcache',
      dir,
      map: 'weir_ipcache4',
      key: im ? `${ip4(im[0].addr)}/${im[0].prefixlen}` : `${ip4(side.peer)}/32`,
      entry: iv ? { identity: iv.identity } : null,
      result: iv
        ? `${dir === 'egress' ? 'destination' : 'source'} ${ip4(side.peer)} is identity ${identity} (${meaning})${im ? ` by prefix ${ip4(im[0].addr)}/${im[0].prefixlen}` : ''}`
        : `${dir === 'egress' ? 'destination' : 'source'} ${ip4(side.peer)} has no ipcache entry: identity ${identity} (${meaning})`,
    });
    // pol_verdict: (policy, peer identity, proto, port) then (policy, ID_ANY, proto, port).
    let match = 0;
    for (const [lookupId, kind] of [
      [identity, 'peer'],
      [T.PolicyIdentity.ID_ANY, 'any'],
    ] as const) {
      const key: T.Policy4Key = { prefixlen: 96, policy_id: id, identity: lookupId, proto: q.proto, pad: 0, port: d.port };
      const v = m.policy4.get(key);
      const ok = !!v && (v.flags & T.PolicyFlags.POLICY_F_ALLOW) !== 0;
      const hit = ok ? policyLpmMatch(c.dumps.policy, id, lookupId, q.proto, d.port) : undefined;
      const r = hit ? policyKeyRange(hit[0]) : undefined;
      const entryText = r ? (hit![0].prefixlen <= 64 ? 'any protocol and port' : `${protoName(r.proto)} ports ${portText(r)}`) : '';
      if (ok) match = kind === 'peer' ? (v!.flags & T.PolicyFlags.POLICY_F_L4 ? T.PolicyMatch.MATCH_L3_L4 : T.PolicyMatch.MATCH_L3) : v!.flags & T.PolicyFlags.POLICY_F_L4 ? T.PolicyMatch.MATCH_L4 : T.PolicyMatch.MATCH_ALL;
      steps.push({
        step: 'policy4',
        dir,
        map: 'weir_policy4',
        key: { policy_id: id, identity: lookupId, proto: protoName(q.proto), port: d.port },
        entry: hit ? { prefixlen: hit[0].prefixlen, identity: hit[0].identity, proto: protoName(hit[0].proto), port: hit[0].port, flags: flagNames(hit[1].flags, T.PolicyFlags) } : v ? { flags: flagNames(v.flags, T.PolicyFlags) } : null,
        result: ok
          ? `policy id ${id} allows ${kind === 'peer' ? `identity ${identity}` : 'any peer (ID_ANY)'}${entryText ? ` on ${entryText}` : ''}`
          : kind === 'peer'
            ? `no entry of policy id ${id} for identity ${identity} on ${protoName(q.proto)}/${d.port}: try ID_ANY`
            : `no entry of policy id ${id} for any peer on ${protoName(q.proto)}/${d.port}`,
      });
      if (ok) break;
    }
    if (match) {
      steps.push({ step: 'policy', dir, map: null, key: null, entry: null, result: `${dir} allowed (match: ${MATCH_TEXT[match]})` });
      continue;
    }
    const reason = dir === 'egress' ? 'policy denied egress' : 'policy denied ingress';
    const why = `${who}: policy id ${id}${byNames} allows nothing for ${dir === 'egress' ? 'destination' : 'source'} ${ip4(side.peer)} = identity ${identity} (${meaning}) on ${protoName(q.proto)}/${d.port}`;
    steps.push({ step: 'policy', dir, map: null, key: null, entry: null, result: `${reason.toUpperCase()}: ${why}` });
    denied = `dropped: ${reason} (${why})`;
    break;
  }
  if (denied && (tracked === 'current' || tracked === 'reply')) {
    steps.push({
      step: 'policy',
      map: null,
      key: null,
      entry: null,
      result: `this packet passes anyway as part of a tracked flow (${tracked === 'reply' ? 'a reply' : `allowed at generation ${gen}`}); a new flow would be ${denied}`,
    });
    return null;
  }
  return denied;
}
