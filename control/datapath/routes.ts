// Pod routes across nodes, pure: Node objects -> the weir_tunnel4 entries
// (remote pod CIDR -> node underlay address and uplink MAC), and a reconcile
// that turns the map's current contents into the writes and deletes that make
// it match. Also the small address parsers the datapath code shares.
import type { TunnelInfo, Tunnel4Key } from './types.gen.js';

/** Annotation carrying a node's uplink MAC, so no node ARPs for another across the fabric. */
export const UPLINK_MAC_ANNOTATION = 'weir.io/uplink-mac';
/** flannel's per-node annotation; its VtepMAC is the inner MAC a flannel node's vxlan device accepts. */
export const FLANNEL_BACKEND_ANNOTATION = 'flannel.alpha.coreos.com/backend-data';

/** Dotted-quad IPv4 -> host-order number; a clear error naming `what` otherwise. */
export function parseIpv4(s: unknown, what = 'address'): number {
  if (typeof s !== 'string') throw new TypeError(`${what}: expected an IPv4 address string, got ${typeof s}`);
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  const parts = m?.slice(1).map(Number);
  if (!parts || parts.some((p) => p > 255)) throw new TypeError(`${what}: '${s}' is not an IPv4 address`);
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Cidr {
  /** Network address, host order, host bits cleared. */
  addr: number;
  prefixlen: number;
  /** Netmask, host order. */
  mask: number;
}

/** 'a.b.c.d/n' -> Cidr. Host bits set is an error (10.244.1.5/24 is a typo, not a network). */
export function parseCidr(s: unknown, what = 'CIDR'): Cidr {
  if (typeof s !== 'string') throw new TypeError(`${what}: expected an IPv4 CIDR string, got ${typeof s}`);
  const [ip, len, extra] = s.split('/');
  if (len === undefined || extra !== undefined || !/^\d{1,2}$/.test(len) || Number(len) > 32) {
    throw new TypeError(`${what}: '${s}' is not an IPv4 CIDR (a.b.c.d/n)`);
  }
  const prefixlen = Number(len);
  const addr = parseIpv4(ip, what);
  const mask = prefixlen === 0 ? 0 : (0xffffffff << (32 - prefixlen)) >>> 0;
  if ((addr & mask) >>> 0 !== addr) throw new TypeError(`${what}: '${s}' has host bits set`);
  return { addr, prefixlen, mask };
}

export const cidrContains = (c: Cidr, ip: number) => ((ip & c.mask) >>> 0) === c.addr;
export const formatCidr = (c: Cidr) => `${formatIpv4(c.addr)}/${c.prefixlen}`;

/** 'aa:bb:cc:dd:ee:ff' (or a 6-byte Buffer) -> 6-byte Buffer. */
export function parseMac(s: unknown, what = 'MAC'): Buffer {
  if (Buffer.isBuffer(s)) {
    if (s.length !== 6) throw new TypeError(`${what}: expected 6 bytes, got ${s.length}`);
    return Buffer.from(s);
  }
  if (typeof s !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(s)) {
    throw new TypeError(`${what}: '${String(s)}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  }
  return Buffer.from(s.split(':').map((x) => parseInt(x, 16)));
}

export const formatMac = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

/** What the routing code needs from a Node object. */
export interface NodeRoute {
  name: string;
  /** Node.spec.podCIDR (IPv4 entry of podCIDRs). */
  podCidr: string;
  /** The node's InternalIP: the VXLAN outer destination. */
  internalIp: string;
  /** The node's uplink MAC (annotation weir.io/uplink-mac): outer destination MAC. */
  uplinkMac: string;
  /** The MAC its VXLAN device expects as inner destination (a Linux/flannel vtep); default: uplinkMac. */
  vtepMac?: string;
  /** Stable numeric node id (0 = unknown). */
  id?: number;
}

export interface TunnelEntry {
  key: Tunnel4Key;
  value: TunnelInfo;
}

/**
 * The weir_tunnel4 entries this node wants: two per other node, its pod CIDR
 * and its own InternalIP as a /32 (both to the same tunnel_info; see
 * bpf/ROUTING.md). A node that names itself (`self`) is skipped (its pods
 * are local).
 * Invalid nodes are reported in `errors` and left out, so one bad Node never
 * takes the others' routes away; two nodes claiming the same CIDR or the same
 * InternalIP is an error for the second one (by name order, so every agent
 * picks the same one). A node left out gets neither entry.
 */
export function desiredTunnels(nodes: NodeRoute[], self: string): { entries: TunnelEntry[]; errors: string[] } {
  const entries: TunnelEntry[] = [];
  const errors: string[] = [];
  const owner = new Map<string, string>();
  const addrOwner = new Map<number, string>();
  // A /32 for our own address would send our pods' packets for it away.
  const me = nodes.find((n) => n.name === self);
  if (me) {
    try {
      addrOwner.set(parseIpv4(me.internalIp), self);
    } catch {
      /* our own Node without an address yet: nothing to protect */
    }
  }
  for (const n of [...nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (n.name === self) continue;
    try {
      const cidr = parseCidr(n.podCidr, `node ${n.name}: podCIDR`);
      const addr = parseIpv4(n.internalIp, `node ${n.name}: InternalIP`);
      const mac = parseMac(n.uplinkMac, `node ${n.name}: annotation ${UPLINK_MAC_ANNOTATION}`);
      const vtep = n.vtepMac === undefined ? Buffer.alloc(6) : parseMac(n.vtepMac, `node ${n.name}: vtepMac`);
      const k = formatCidr(cidr);
      const prev = owner.get(k);
      if (prev) throw new Error(`node ${n.name}: podCIDR ${k} is already node ${prev}'s`);
      // The address gets a /32 entry of its own: two nodes cannot share it.
      const prevAddr = addrOwner.get(addr);
      if (prevAddr) throw new Error(`node ${n.name}: InternalIP ${n.internalIp} is already node ${prevAddr}'s`);
      owner.set(k, n.name);
      addrOwner.set(addr, n.name);
      const value = { node_addr: addr, node_id: n.id ?? 0, node_mac: mac, vtep_mac: vtep };
      entries.push({ key: { prefixlen: cidr.prefixlen, addr: cidr.addr }, value });
      // The node's own address too: a backend pod's replies to NodePort flows
      // that node SNATed to itself go to it through the tunnel, unmasqueraded
      // (route.h route_snat_reply; bpf/ROUTING.md).
      entries.push({ key: { prefixlen: 32, addr }, value });
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  return { entries, errors };
}

const keyStr = (k: Tunnel4Key) => `${formatIpv4(k.addr)}/${k.prefixlen}`;
const sameInfo = (a: TunnelInfo, b: TunnelInfo) =>
  a.node_addr === b.node_addr &&
  a.node_id === b.node_id &&
  Buffer.compare(a.node_mac, b.node_mac) === 0 &&
  Buffer.compare(a.vtep_mac, b.vtep_mac) === 0;

/** The writes and deletes that turn `current` into `desired` (unchanged entries are left alone). */
export function diffTunnels(current: Array<[Tunnel4Key, TunnelInfo]>, desired: TunnelEntry[]): { set: TunnelEntry[]; del: Tunnel4Key[] } {
  const cur = new Map(current.map(([k, v]) => [keyStr(k), v]));
  const want = new Set(desired.map((d) => keyStr(d.key)));
  const set = desired.filter((d) => {
    const c = cur.get(keyStr(d.key));
    return !c || !sameInfo(c, d.value);
  });
  const del = current.filter(([k]) => !want.has(keyStr(k))).map(([k]) => k);
  return { set, del };
}

/** The part of a TypedMap reconcileTunnels uses (weir_tunnel4). */
export interface TunnelTable {
  dump(): Array<[Tunnel4Key, TunnelInfo]>;
  set(k: Tunnel4Key, v: TunnelInfo): void;
  delete(k: Tunnel4Key): boolean;
}

/**
 * Makes weir_tunnel4 match the Nodes: new and changed routes are written
 * first, stale ones deleted after, so a moving CIDR never has a gap.
 */
export function reconcileTunnels(table: TunnelTable, nodes: NodeRoute[], self: string): { set: number; deleted: number; errors: string[] } {
  const { entries, errors } = desiredTunnels(nodes, self);
  const { set, del } = diffTunnels(table.dump(), entries);
  for (const e of set) table.set(e.key, e.value);
  for (const k of del) table.delete(k);
  return { set: set.length, deleted: del.length, errors };
}

/** Node object (as @kubernetes/client-node returns it) -> NodeRoute, or a reason it cannot route. */
export function nodeRouteFromObject(node: {
  metadata?: { name?: string; annotations?: Record<string, string> };
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { addresses?: Array<{ type: string; address: string }> };
}): NodeRoute | string {
  const name = node.metadata?.name;
  if (!name) return 'node without metadata.name';
  const podCidr = [...(node.spec?.podCIDRs ?? []), node.spec?.podCIDR].find((c) => c && !c.includes(':'));
  if (!podCidr) return `node ${name}: no IPv4 spec.podCIDR yet`;
  const internalIp = node.status?.addresses?.find((a) => a.type === 'InternalIP' && !a.address.includes(':'))?.address;
  if (!internalIp) return `node ${name}: no IPv4 InternalIP in status.addresses`;
  const uplinkMac = node.metadata?.annotations?.[UPLINK_MAC_ANNOTATION];
  if (!uplinkMac) return `node ${name}: no ${UPLINK_MAC_ANNOTATION} annotation (its agent sets it)`;
  let vtepMac: string | undefined;
  const flannel = node.metadata?.annotations?.[FLANNEL_BACKEND_ANNOTATION];
  if (flannel) {
    try {
      vtepMac = (JSON.parse(flannel) as { VtepMAC?: string }).VtepMAC;
    } catch {
      return `node ${name}: annotation ${FLANNEL_BACKEND_ANNOTATION} is not JSON`;
    }
  }
  return { name, podCidr, internalIp, uplinkMac, ...(vtepMac ? { vtepMac } : {}) };
}
