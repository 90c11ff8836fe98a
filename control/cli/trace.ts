// `weir trace` logic: the lookups from_pod / from_uplink make for one packet
// SRC -> DST:PORT, replayed in TypeScript over the pinned maps (lb.h,
// lb_select.h, conntrack.h, route.h). Read-only: nothing is written, so
// affinity and conntrack entries are shown, never created.
import { BpfMap } from '../../native/index.js';
import type { DatapathMaps } from '../datapath/maps.js';
import { flowHash } from '../datapath/flowhash.js';
import * as T from '../datapath/types.gen.js';
import { CliError, EXIT_USAGE } from './context.js';
import { enumName, flagNames, ip4, mac, monotonicNs, parseIp4, protoName } from './format.js';
import { backendView, frontend, type BackendView } from './views.js';

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

/** Replays the datapath for one packet; `maps` stays open (the caller closes it). */
export function trace(m: DatapathMaps, q: TraceQuery): TraceResult {
  const steps: TraceStep[] = [];
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
      program = `from_pod on node ${ip4(r[1].node_addr)} (node_id ${r[1].node_id})`;
      add({ step: 'source', map: 'weir_tunnel4', key: tunnelKey(r[0]), entry: tunnelShown(r[1]), result: `not local: a pod of node ${ip4(r[1].node_addr)}; ${program} handles it (trace there with --node for its routes)` });
    } else {
      origin = 'uplink';
      program = 'from_uplink';
      add({ step: 'source', map: 'weir_ep4', key: { addr: ip4(q.src) }, entry: null, result: 'not a local endpoint: the packet arrives on the uplink, from_uplink sees it' });
    }
  }

  if (origin === 'host') return finish(m, q, steps, routes, origin, [{ addr: q.dst, port: q.port }], out, program, null);

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
        return finish(m, q, steps, routes, origin, [{ addr: be.addr, port: be.port, backend: bv }], out, program, nat ? se.nat_addr : null);
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
    return finish(m, q, steps, routes, origin, [{ addr: q.dst, port: q.port }], out, program, null);
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
  return finish(m, q, steps, routes, origin, cands.map((c) => ({ addr: parseIp4(c.backend.addr)!, port: c.backend.port, backend: c.backend })), out, program, srcNat);
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
  m: DatapathMaps,
  q: TraceQuery,
  steps: TraceStep[],
  routes: Array<[T.Tunnel4Key, T.TunnelInfo]>,
  origin: 'pod' | 'uplink' | 'host',
  dests: Dest[],
  out: (program: string, verdict: string) => TraceResult,
  program: string,
  srcNat: number | null,
): TraceResult {
  const outcomes: string[] = [];
  for (const d of dests) {
    const r = route(m, routes, origin, d.addr, q.sport);
    steps.push(r.step);
    const target = `${ip4(d.addr)}:${d.port}${d.backend ? ` (backend ${d.backend.id})` : ''}`;
    outcomes.push(`${r.verdict} -> ${target}`);
  }
  steps.push({ step: 'policy', map: null, key: null, entry: null, result: 'not enforced yet (issue 5): allowed' });
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
