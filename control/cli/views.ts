// The datapath maps read back as services, backends and frontends: the
// shared reading behind `weir service list`, `backend list`, `ct list` and
// `maglev show`; and the policy maps with the agent's policy snapshot.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { POLICY_SNAPSHOT_FILE, readPolicySnapshot, type PolicySnapshot, type SnapshotEndpoint } from '../policy/snapshot.js';
import type { DatapathMaps, TypedMap } from '../datapath/maps.js';
import { ID_ANY, ID_HOST, ID_REMOTE_NODE, ID_WORLD, type IdentityInfo, type PolicyEntry, type PolicyProblem, type RuleSet } from '../policy/types.js';
import * as T from '../datapath/types.gen.js';
import { CliError, EXIT_USAGE } from './context.js';
import { enumName, flagNames, ip4, parseIp4, protoName, protoNumber } from './format.js';

/** Every entry of a typed map: batch reads where the kernel has them (a large conntrack table in a few syscalls), else key by key. */
export function dumpAll<K, V>(m: TypedMap<K, V>): Array<[K, V]> {
  let raw: Array<[Buffer, Buffer]>;
  try {
    raw = m.map.lookupBatch();
  } catch {
    return m.dump();
  }
  return raw.map(([k, v]) => [m.key.decode(k), m.value.decode(v)]);
}

export interface BackendView {
  id: number;
  addr: string;
  port: number;
  proto: string;
  state: string;
  nodeId: number;
  flags: string[];
}

export interface ServiceView {
  /** "10.96.0.10:80/tcp"; NodePorts (addr 0) as "*:30080/tcp". */
  frontend: string;
  addr: string;
  port: number;
  proto: string;
  scope: string;
  svcId: number;
  revnatId: number;
  flags: string[];
  algorithm: string | number;
  /** Seconds of ClientIP affinity; null when the service has none. */
  affinityTimeout: number | null;
  /** Backends in slot order (slot 1..count); a missing slot or backend shows as null. */
  backends: Array<(BackendView & { slot: number }) | { slot: number; missing: string }>;
}

export function frontend(addr: number, port: number, proto: number): string {
  return `${addr === 0 ? '*' : ip4(addr)}:${port}/${protoName(proto)}`;
}

export function backendView(id: number, b: T.Backend4): BackendView {
  return {
    id,
    addr: ip4(b.addr),
    port: b.port,
    proto: protoName(b.proto),
    state: String(enumName(b.state, T.BackendState, 'BACKEND_')),
    nodeId: b.node_id,
    flags: flagNames(b.flags, T.BackendFlags, 'BACKEND_F_'),
  };
}

export function serviceViews(m: DatapathMaps): ServiceView[] {
  const out: ServiceView[] = [];
  for (const [k, v] of m.svc4.entries()) {
    const backends: ServiceView['backends'] = [];
    for (let slot = 1; slot <= v.count; slot++) {
      const id = m.lbSlots.get({ svc_id: v.svc_id, slot });
      if (id === undefined) {
        backends.push({ slot, missing: `slot ${slot} of svc_id ${v.svc_id} is not in weir_lb_slots` });
        continue;
      }
      const b = m.backend4.get(id);
      backends.push(b ? { slot, ...backendView(id, b) } : { slot, missing: `backend ${id} is not in weir_backend4` });
    }
    out.push({
      frontend: frontend(k.addr, k.port, k.proto),
      addr: k.addr === 0 ? '*' : ip4(k.addr),
      port: k.port,
      proto: protoName(k.proto),
      scope: String(enumName(k.scope, T.SvcScope, 'SVC_SCOPE_')),
      svcId: v.svc_id,
      revnatId: v.revnat_id,
      flags: flagNames(v.flags, T.SvcFlags, 'SVC_F_'),
      algorithm: enumName(v.algorithm, T.LbAlgorithm, 'LB_ALG_'),
      affinityTimeout: v.flags & T.SvcFlags.SVC_F_AFFINITY ? v.affinity_timeout : null,
      backends,
    });
  }
  return out.sort((a, b) => a.frontend.localeCompare(b.frontend, 'en', { numeric: true }) || a.scope.localeCompare(b.scope));
}

/** A service selector: "ADDR", "ADDR:PORT", "ADDR:PORT/PROTO" or a numeric svc_id. */
export interface ServiceSelector {
  addr?: number;
  port?: number;
  proto?: number;
  svcId?: number;
  text: string;
}

export function parseServiceSelector(s: string, what = 'service'): ServiceSelector {
  if (/^\d+$/.test(s)) return { svcId: Number(s), text: s };
  const m = /^(\*|[\d.]+)(?::(\d+))?(?:\/([a-z0-9]+))?$/i.exec(s);
  const addr = m ? (m[1] === '*' ? 0 : parseIp4(m[1])) : undefined;
  const port = m?.[2] !== undefined ? Number(m[2]) : undefined;
  const proto = m?.[3] !== undefined ? protoNumber(m[3]) : undefined;
  if (!m || addr === undefined || (port !== undefined && port > 65535) || (m[3] !== undefined && proto === undefined)) {
    throw new CliError(`${what} '${s}' is not ADDR[:PORT[/PROTO]] (e.g. 10.96.0.10:80/tcp) or a svc_id`, EXIT_USAGE);
  }
  return { addr, port, proto, text: s };
}

export function matchesFrontend(sel: ServiceSelector, addr: number, port: number, proto: number, svcId?: number): boolean {
  if (sel.svcId !== undefined) return svcId === sel.svcId;
  return sel.addr === addr && (sel.port === undefined || sel.port === port) && (sel.proto === undefined || sel.proto === proto);
}

// ---------------------------------------------------------------------------
// Policy: the agent's snapshot of the compiled policy (names and labels) and
// the policy maps read back as rules (weir policy get / list, identity list,
// monitor, trace).
// ---------------------------------------------------------------------------

export type { SnapshotEndpoint };

/** The snapshot (control/policy/snapshot.ts) indexed by number for the views. */
export interface PolicySnapshotView {
  path: string;
  gen: number | null;
  writtenAt: string | null;
  identities: Map<number, IdentityInfo>;
  endpoints: Map<number, SnapshotEndpoint>;
  /** endpoint id -> the policy ids the agent programmed for it. */
  policyIds: Map<number, { ingress_id: number; egress_id: number }>;
  problems: PolicyProblem[];
}

export function snapshotView(raw: PolicySnapshot, path: string): PolicySnapshotView {
  const identities = new Map<number, IdentityInfo>();
  for (const i of raw.identities) if (i && typeof i.id === 'number') identities.set(i.id, i);
  const endpoints = new Map<number, SnapshotEndpoint>();
  for (const e of raw.endpoints) if (e && typeof e.endpointId === 'number') endpoints.set(e.endpointId, e);
  const policyIds = new Map<number, { ingress_id: number; egress_id: number }>();
  for (const [k, v] of Object.entries(raw.policyIds ?? {})) policyIds.set(Number(k), v);
  return { path, gen: raw.gen, writtenAt: raw.writtenAt ?? null, identities, endpoints, policyIds, problems: raw.problems };
}

/**
 * The agent's policy snapshot under `stateDir` (read by the agent's own
 * reader, control/policy/snapshot.ts), or why there is none: the views then
 * show numbers only.
 */
export function loadPolicySnapshot(stateDir: string): { snapshot?: PolicySnapshotView; problem?: string } {
  const path = join(stateDir, POLICY_SNAPSHOT_FILE);
  if (!existsSync(path)) return { problem: `no policy snapshot at ${path} (agent not running here, or another --state-dir): names and labels unknown` };
  try {
    return { snapshot: snapshotView(readPolicySnapshot(path), path) };
  } catch (e) {
    return { problem: `${(e as Error).message.startsWith('policy snapshot') ? '' : `policy snapshot ${path}: `}${(e as Error).message}` };
  }
}

const RESERVED: Record<number, string> = {
  [ID_ANY]: 'any peer',
  [ID_HOST]: 'host (this node)',
  [ID_WORLD]: 'world (outside the cluster)',
  [ID_REMOTE_NODE]: 'remote-node (other nodes)',
};
const KIND_WORDS: Record<string, string> = { host: 'host', 'remote-node': 'remote-node', world: 'world' };

/** What identity `id` stands for, e.g. "ns=default app=frontend", "world in 10.0.0.0/8 except 10.1.0.0/16". */
export function identityMeaning(id: number, snap?: PolicySnapshotView): string {
  const info = snap?.identities.get(id);
  if (!info) {
    if (RESERVED[id] !== undefined) return RESERVED[id];
    return snap ? `identity ${id} (not in the snapshot: stale?)` : `identity ${id}`;
  }
  const cidrs = info.cidrs?.length ? ` in ${info.cidrs.join(', ')}` : '';
  if (info.kind === 'pod') {
    const labels = Object.entries(info.labels ?? {})
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`);
    return [`ns=${info.namespace ?? '?'}`, ...labels].join(' ') + cidrs;
  }
  return (cidrs ? KIND_WORDS[info.kind] ?? info.kind : RESERVED[id] ?? KIND_WORDS[info.kind] ?? info.kind) + cidrs;
}

/** One allowed (peer identity, protocol, port range): proto 0 = any protocol. */
export interface PolicyRange {
  identity: number;
  proto: number;
  from: number;
  to: number;
}

/** A weir_policy4 key as the range it covers (prefixlen 64: any proto/port; 80: any port; 80+k: a port prefix). */
export function policyKeyRange(k: T.Policy4Key): PolicyRange {
  if (k.prefixlen <= 64) return { identity: k.identity, proto: 0, from: 0, to: 65535 };
  const bits = Math.min(16, Math.max(0, k.prefixlen - 80));
  const span = 2 ** (16 - bits);
  const from = bits === 0 ? 0 : k.port - (k.port % span);
  return { identity: k.identity, proto: k.proto, from, to: from + span - 1 };
}

/** Ranges merged per (identity, proto): overlapping and adjacent port ranges become one; sorted. */
export function mergeRanges(rs: PolicyRange[]): PolicyRange[] {
  const sorted = [...rs].sort((a, b) => a.identity - b.identity || a.proto - b.proto || a.from - b.from || a.to - b.to);
  const out: PolicyRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && last.identity === r.identity && last.proto === r.proto && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else out.push({ ...r });
  }
  return out;
}

/** A compiled RuleSet's entries as ranges (what the maps should hold). */
export function ruleSetRanges(rs: RuleSet): PolicyRange[] {
  return mergeRanges(
    rs.entries.map((e: PolicyEntry) =>
      e.proto === 0 ? { identity: e.identity, proto: 0, from: 0, to: 65535 } : e.port === 0 ? { identity: e.identity, proto: e.proto, from: 0, to: 65535 } : { identity: e.identity, proto: e.proto, from: e.port, to: e.endPort || e.port },
    ),
  );
}

/** Every weir_policy4 entry, grouped by policy id. */
export function policyEntriesById(m: DatapathMaps): Map<number, Array<[T.Policy4Key, T.PolicyValue]>> {
  const out = new Map<number, Array<[T.Policy4Key, T.PolicyValue]>>();
  for (const e of m.policy4.dump()) {
    const list = out.get(e[0].policy_id) ?? [];
    list.push(e);
    out.set(e[0].policy_id, list);
  }
  return out;
}

/** "80", "8000-8100", "any" */
export function portText(r: { from: number; to: number }): string {
  if (r.from === 0 && r.to === 65535) return 'any';
  return r.from === r.to ? String(r.from) : `${r.from}-${r.to}`;
}

export function rangeKey(r: PolicyRange): string {
  return `${r.identity}/${r.proto}/${r.from}-${r.to}`;
}

/** The weir_policy4 entry the kernel's LPM lookup of (policy, identity, proto, port) matches (shown next to the kernel's answer). */
export function policyLpmMatch(entries: Array<[T.Policy4Key, T.PolicyValue]>, policyId: number, identity: number, proto: number, port: number): [T.Policy4Key, T.PolicyValue] | undefined {
  let best: [T.Policy4Key, T.PolicyValue] | undefined;
  for (const e of entries) {
    const k = e[0];
    if (k.policy_id !== policyId || k.identity !== identity) continue;
    const r = policyKeyRange(k);
    const hit = k.prefixlen <= 64 || (k.proto === proto && port >= r.from && port <= r.to);
    if (hit && (!best || k.prefixlen > best[0].prefixlen)) best = e;
  }
  return best;
}

/** Longest-prefix match over dumped {prefixlen, addr} keys (what an LPM trie does). */
export function lpmMatch<K extends { prefixlen: number; addr: number }, V>(entries: Array<[K, V]>, addr: number): [K, V] | undefined {
  let best: [K, V] | undefined;
  for (const r of entries) {
    const len = r[0].prefixlen;
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    if (((addr & mask) >>> 0) === ((r[0].addr & mask) >>> 0) && (!best || len > best[0].prefixlen)) best = r;
  }
  return best;
}

/** The local endpoint with this address (weir_ep4), with its pod name from the snapshot. */
export function podName(endpointId: number, addr: number, snap?: PolicySnapshotView): string {
  return snap?.endpoints.get(endpointId)?.pod ?? ip4(addr);
}
