// CompiledPolicy → the entries weir_ipcache4, weir_ep_policy and weir_policy4
// should hold (pure; the reconciler writes the difference).
//
// Policy ids are content-addressed: a direction's RuleSet is encoded into its
// weir_policy4 keys (minus the policy id), and the sorted, deduplicated list
// of those keys is the "content" the id stands for. Endpoints whose rules
// encode to the same keys share one id; the content can be read back from
// the pinned map (group weir_policy4 by policy_id), so ids survive restarts.
//
// LPM key layout (bpf/include/structs.h struct policy4_key): prefixlen counts
// bits after the prefixlen field: policy_id (32) + identity (32) = 64 →
// any protocol and port; + proto (8) + pad (8) = 80 → that protocol, any
// port; 80 + k → the first k bits of the big-endian port. The codec writes
// __be16 port big-endian from a host-order number, so a port prefix of k bits
// is `port & ~((1 << (16-k)) - 1)` as a number.
import type { Ipcache4Key, Policy4Key, PolicyValue } from '../datapath/types.gen.js';
import { PolicyFlags } from '../datapath/types.gen.js';
import { rangeToPrefixes } from './ports.js';
import type { CompiledPolicy, PolicyEntry, RuleSet } from './types.js';

export const PREFIX_ANY_PROTO = 64;
export const PREFIX_ANY_PORT = 80;

/** One weir_policy4 entry of a policy id, without the id. */
export interface PolicySlot {
  identity: number;
  proto: number;
  /** 64, 80 or 80 + port bits. */
  prefixlen: number;
  /** Host-order port, host bits beyond the prefix cleared. */
  port: number;
  flags: number;
}

const mask32 = (len: number) => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);
const portMask = (bits: number) => (bits <= 0 ? 0 : (0xffff << (16 - bits)) & 0xffff);

/** "a.b.c.d/len" (or "a.b.c.d" = /32) → an LPM key with the host bits cleared. */
export function parsePrefix(s: string): Ipcache4Key {
  const [addr, lenText] = s.split('/');
  const len = lenText === undefined ? 32 : Number(lenText);
  const parts = addr.split('.');
  if (parts.length !== 4 || !Number.isInteger(len) || len < 0 || len > 32 || lenText === '') throw new Error(`ipcache prefix ${JSON.stringify(s)}: expected a.b.c.d/len`);
  let n = 0;
  for (const p of parts) {
    const b = Number(p);
    if (!/^\d{1,3}$/.test(p) || b > 255) throw new Error(`ipcache prefix ${JSON.stringify(s)}: bad address`);
    n = n * 256 + b;
  }
  return { prefixlen: len, addr: (n & mask32(len)) >>> 0 };
}

export function formatPrefix(k: Ipcache4Key): string {
  const a = k.addr >>> 0;
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${k.prefixlen}`;
}

/** The weir_policy4 slots one PolicyEntry needs (several for a port range). */
export function entrySlots(e: PolicyEntry): PolicySlot[] {
  if (e.proto === 0) return [{ identity: e.identity, proto: 0, prefixlen: PREFIX_ANY_PROTO, port: 0, flags: PolicyFlags.POLICY_F_ALLOW }];
  const flags = PolicyFlags.POLICY_F_ALLOW | PolicyFlags.POLICY_F_L4;
  if (e.port === 0) return [{ identity: e.identity, proto: e.proto, prefixlen: PREFIX_ANY_PORT, port: 0, flags }];
  const end = e.endPort && e.endPort >= e.port ? e.endPort : e.port;
  return rangeToPrefixes(e.port, end).map((p) => ({ identity: e.identity, proto: e.proto, prefixlen: PREFIX_ANY_PORT + p.bits, port: p.port & portMask(p.bits), flags }));
}

export const slotString = (s: PolicySlot) => `${s.identity}/${s.proto}/${s.prefixlen}/${s.port}/${s.flags}`;

export function parseSlot(s: string): PolicySlot {
  const [identity, proto, prefixlen, port, flags] = s.split('/').map(Number);
  return { identity, proto, prefixlen, port, flags };
}

/** The canonical content of a set of slots: sorted, deduplicated slot strings. "" = allows nothing. */
export function contentOf(slots: Iterable<PolicySlot>): string {
  return [...new Set([...slots].map(slotString))].sort().join(' ');
}

export const contentSlots = (content: string): PolicySlot[] => (content === '' ? [] : content.split(' ').map(parseSlot));

/**
 * The content of a RuleSet (what its policy id stands for), in a canonical
 * form: per (identity, protocol) the allowed ports are merged into disjoint
 * ranges before the prefix cover, and an any-port entry absorbs the port
 * entries of its protocol; so two rule sets allowing the same traffic get the
 * same content (and share a policy id). An any-protocol entry does not absorb
 * protocol entries: the datapath reports which one matched (l3 vs l3-l4,
 * POLICY_F_L4), as control/policy/compile.ts's normalizeEntries keeps them.
 */
export function ruleSetContent(rs: RuleSet): string {
  const groups = new Map<string, { identity: number; proto: number; ranges: Array<[number, number]> | 'any' }>();
  for (const e of rs.entries) {
    const k = `${e.identity}/${e.proto}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { identity: e.identity, proto: e.proto, ranges: [] }));
    if (g.ranges === 'any') continue;
    if (e.proto === 0 || e.port === 0) g.ranges = 'any';
    else g.ranges.push([e.port, e.endPort && e.endPort >= e.port ? e.endPort : e.port]);
  }
  const out: PolicyEntry[] = [];
  for (const { identity, proto, ranges } of groups.values()) {
    if (ranges === 'any') {
      out.push({ identity, proto, port: 0, endPort: 0 });
      continue;
    }
    ranges.sort((a, b) => a[0] - b[0]);
    let [lo, hi] = ranges[0];
    for (const [a, b] of ranges.slice(1)) {
      if (a <= hi + 1) hi = Math.max(hi, b);
      else {
        out.push({ identity, proto, port: lo, endPort: hi });
        [lo, hi] = [a, b];
      }
    }
    out.push({ identity, proto, port: lo, endPort: hi });
  }
  return contentOf(out.flatMap(entrySlots));
}

/** The union of two contents (a policy allowing what either allows). */
export function unionContent(a: string, b: string): string {
  if (a === b) return a;
  return [...new Set([...(a ? a.split(' ') : []), ...(b ? b.split(' ') : [])])].sort().join(' ');
}

export function policyKey(policyId: number, s: PolicySlot): Policy4Key {
  return { prefixlen: s.prefixlen, policy_id: policyId, identity: s.identity, proto: s.proto, pad: 0, port: s.port };
}

export function slotOfKey(k: Policy4Key, v: PolicyValue): PolicySlot {
  const bits = Math.max(0, k.prefixlen - PREFIX_ANY_PORT);
  return {
    identity: k.identity >>> 0,
    proto: k.prefixlen >= PREFIX_ANY_PORT ? k.proto : 0,
    prefixlen: k.prefixlen,
    port: k.prefixlen > PREFIX_ANY_PORT ? k.port & portMask(bits) : 0,
    flags: v.flags,
  };
}

/** What the maps should say for one endpoint: undefined = not isolated in that direction. */
export interface DesiredEndpoint {
  ingress?: string;
  egress?: string;
}

/** The desired contents of the policy maps, with policy ids still to be assigned (by content). */
export interface DesiredPolicyMaps {
  /** formatPrefix(key) → identity. */
  ipcache: Map<string, number>;
  /** endpoint id → content per direction; endpoints isolated in neither direction are absent. */
  endpoints: Map<number, DesiredEndpoint>;
}

const canonical = new Map<string, string>();
/** formatPrefix(parsePrefix(p)), remembered (the same few thousand prefixes come back every sync). */
function canonicalPrefix(p: string): string {
  let c = canonical.get(p);
  if (c === undefined) {
    if (canonical.size > 200_000) canonical.clear();
    canonical.set(p, (c = formatPrefix(parsePrefix(p))));
  }
  return c;
}

/** Encodes a compiled policy as desired map contents. */
export function encodePolicy(c: CompiledPolicy): DesiredPolicyMaps {
  const ipcache = new Map<string, number>();
  for (const [prefix, identity] of c.ipcache) ipcache.set(canonicalPrefix(prefix), identity);
  const endpoints = new Map<number, DesiredEndpoint>();
  const memo = new Map<RuleSet, string>();
  const content = (rs: RuleSet) => {
    let s = memo.get(rs);
    if (s === undefined) memo.set(rs, (s = ruleSetContent(rs)));
    return s;
  };
  for (const [id, ep] of c.endpoints) {
    if (!ep.ingress && !ep.egress) continue;
    endpoints.set(id, { ...(ep.ingress ? { ingress: content(ep.ingress) } : {}), ...(ep.egress ? { egress: content(ep.egress) } : {}) });
  }
  return { ipcache, endpoints };
}
