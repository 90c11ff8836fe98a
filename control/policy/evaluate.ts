// A pure model of the datapath's policy check over a CompiledPolicy: the same
// lookups the BPF makes in weir_ipcache4 / weir_ep_policy / weir_policy4.
import { formatCidr, maskOf, parseIPv4 } from './cidr.js';
import { entryKeys, prefixContains } from './ports.js';
import { ID_ANY, ID_WORLD, type CompiledPolicy, type PolicyEntry } from './types.js';

export type Direction = 'ingress' | 'egress';
export type Match = 'l3-l4' | 'l3' | 'l4' | 'all' | 'not-isolated' | 'none';

export interface Verdict {
  allowed: boolean;
  match: Match;
  /** The peer's identity (ipcache longest prefix; no match: ID_WORLD). */
  identity: number;
}

/** Longest-prefix lookup of an IPv4 address in the ipcache; a miss is ID_WORLD. */
export function ipcacheLookup(compiled: CompiledPolicy, ip: string): number {
  const a = parseIPv4(ip);
  if (a === undefined) throw new Error(`not an IPv4 address: ${ip}`);
  for (let len = 32; len >= 0; len--) {
    const id = compiled.ipcache.get(formatCidr({ addr: (a & maskOf(len)) >>> 0, len }));
    if (id !== undefined) return id;
  }
  return ID_WORLD;
}

/**
 * One weir_policy4 LPM lookup for (identity, proto, port): the longest key of
 * that identity matching, or undefined. Returns whether it names a protocol
 * (POLICY_F_L4).
 */
export function policyLookup(entries: PolicyEntry[], identity: number, proto: number, port: number): { l4: boolean; prefixlen: number } | undefined {
  let best: { l4: boolean; prefixlen: number } | undefined;
  for (const e of entries) {
    if (e.identity !== identity) continue;
    for (const k of entryKeys(e)) {
      let hit: boolean;
      if (k.prefixlen === 64) hit = true;
      else if (k.proto !== proto) hit = false;
      else hit = k.prefixlen === 80 || prefixContains({ port: k.port, bits: k.prefixlen - 80 }, port);
      if (hit && (!best || k.prefixlen > best.prefixlen)) best = { l4: e.proto !== 0, prefixlen: k.prefixlen };
    }
  }
  return best;
}

/**
 * The verdict for a new flow of local endpoint `endpointId` with a peer at
 * `peerIp` (the source for ingress, the destination for egress): the peer's
 * own identity first, then ID_ANY.
 */
export function verdict(
  compiled: CompiledPolicy,
  endpointId: number,
  dir: Direction,
  peerIp: string,
  proto: number,
  port: number,
): Verdict {
  const identity = ipcacheLookup(compiled, peerIp);
  const rs = compiled.endpoints.get(endpointId)?.[dir];
  if (!rs) return { allowed: true, match: 'not-isolated', identity };
  const own = policyLookup(rs.entries, identity, proto, port);
  if (own) return { allowed: true, match: own.l4 ? 'l3-l4' : 'l3', identity };
  const any = policyLookup(rs.entries, ID_ANY, proto, port);
  if (any) return { allowed: true, match: any.l4 ? 'l4' : 'all', identity };
  return { allowed: false, match: 'none', identity };
}

/**
 * Whether a connection from `src` to `dst` on (proto, port) gets through:
 * egress of the source endpoint (if local) and ingress of the destination
 * endpoint (if local), both must allow.
 */
export function connectionAllowed(
  compiled: CompiledPolicy,
  src: { endpointId?: number; ip: string },
  dst: { endpointId?: number; ip: string },
  proto: number,
  port: number,
): boolean {
  if (src.endpointId !== undefined && !verdict(compiled, src.endpointId, 'egress', dst.ip, proto, port).allowed) return false;
  if (dst.endpointId !== undefined && !verdict(compiled, dst.endpointId, 'ingress', src.ip, proto, port).allowed) return false;
  return true;
}
