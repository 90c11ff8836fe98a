/**
 * Packet builder, parser and checksum verifier for weir's tests.
 *
 * Building: compose layers outer → inner with the immutable fluent builder
 *
 *   const syn = eth({ src: MAC_A, dst: MAC_B })
 *     .ipv4({ src: '10.244.1.2', dst: '10.96.0.10' })
 *     .tcp({ sport: 40000, dport: 80, flags: ['SYN'] })
 *     .build();
 *
 * or with `buildPacket([{ kind: 'eth', ... }, { kind: 'ipv4', ... }, ...])`.
 * The layer list is linear; encapsulation is expressed by simply continuing
 * the chain: layers after `vxlan()` form the inner Ethernet frame, layers after
 * an ICMP error (`dest-unreachable`, `packet-too-big`, `time-exceeded`) form
 * the quoted original packet. Lengths, ethertypes, IP protocol / next-header
 * values and all checksums are computed unless overridden; every layer has
 * knobs for producing deliberately broken packets (`checksum`, `badChecksum`,
 * length overrides, `PacketBuilder.truncate`).
 *
 * Parsing: `parsePacket(buf)` decodes the same layers into plain objects
 * (`p.eth`, `p.ipv4`, `p.tcp`, ..., `p.inner` for VXLAN / ICMP-quoted packets).
 * `verifyChecksums(buf)` checks every checksum, recursively.
 */

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;
export const ETH_P_IPV6 = 0x86dd;

export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_ICMPV6 = 58;

/** Linux's default VXLAN port (what weir uses). */
export const VXLAN_PORT_LINUX = 8472;
/** IANA-assigned VXLAN port (RFC 7348). */
export const VXLAN_PORT_IANA = 4789;
export const VXLAN_PORTS: readonly number[] = [VXLAN_PORT_LINUX, VXLAN_PORT_IANA];

export const ETH_HLEN = 14;
export const VLAN_HLEN = 4;
export const IPV4_HLEN = 20;
export const IPV6_HLEN = 40;
export const TCP_HLEN = 20;
export const UDP_HLEN = 8;
export const ICMP_HLEN = 8;
export const VXLAN_HLEN = 8;

export const TCP_FLAGS = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;
export type TcpFlagName = keyof typeof TCP_FLAGS;
const TCP_FLAG_ORDER: readonly TcpFlagName[] = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'];

export const ICMPV4_TYPES = {
  'echo-reply': 0,
  'dest-unreachable': 3,
  'echo-request': 8,
  'time-exceeded': 11,
  'parameter-problem': 12,
} as const;
export type Icmpv4TypeName = keyof typeof ICMPV4_TYPES;

export const ICMPV4_UNREACH_CODES = {
  'net-unreachable': 0,
  'host-unreachable': 1,
  'protocol-unreachable': 2,
  'port-unreachable': 3,
  'frag-needed': 4,
  'source-route-failed': 5,
  'admin-prohibited': 13,
} as const;
export type Icmpv4UnreachCode = keyof typeof ICMPV4_UNREACH_CODES;

export const ICMPV6_TYPES = {
  'dest-unreachable': 1,
  'packet-too-big': 2,
  'time-exceeded': 3,
  'parameter-problem': 4,
  'echo-request': 128,
  'echo-reply': 129,
} as const;
export type Icmpv6TypeName = keyof typeof ICMPV6_TYPES;

export const ICMPV6_UNREACH_CODES = {
  'no-route': 0,
  'admin-prohibited': 1,
  'beyond-scope': 2,
  'address-unreachable': 3,
  'port-unreachable': 4,
} as const;
export type Icmpv6UnreachCode = keyof typeof ICMPV6_UNREACH_CODES;

/** ICMPv4 types whose body quotes the offending datagram. */
const ICMPV4_ERROR_TYPES: ReadonlySet<number> = new Set([3, 4, 5, 11, 12]);
/** ICMPv6 types (< 128) whose body quotes the offending packet. */
const ICMPV6_ERROR_TYPES: ReadonlySet<number> = new Set([1, 2, 3, 4]);

// ---------------------------------------------------------------------------
// Address helpers
// ---------------------------------------------------------------------------

/** Parse a dotted-quad IPv4 address strictly. */
export function ipv4ToBuffer(ip: string): Buffer {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new Error(`invalid IPv4 address: ${JSON.stringify(ip)}`);
  const out = Buffer.alloc(4);
  parts.forEach((p, i) => {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`invalid IPv4 address: ${JSON.stringify(ip)}`);
    out[i] = Number(p);
  });
  return out;
}

/** Parse an IPv6 address ('::' compression and a trailing dotted quad allowed). */
export function ipv6ToBuffer(ip: string): Buffer {
  const bad = (): never => {
    throw new Error(`invalid IPv6 address: ${JSON.stringify(ip)}`);
  };
  let s = ip;
  const pct = s.indexOf('%'); // zone id: ignored
  if (pct >= 0) s = s.slice(0, pct);
  // Embedded IPv4 in the last 32 bits (e.g. ::ffff:10.0.0.1): rewrite as two hex groups.
  const lastColon = s.lastIndexOf(':');
  if (lastColon >= 0 && s.slice(lastColon + 1).includes('.')) {
    const v4 = ipv4ToBuffer(s.slice(lastColon + 1));
    s = `${s.slice(0, lastColon + 1)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) bad();
  const parseGroups = (h: string): number[] =>
    h === ''
      ? []
      : h.split(':').map((g) => {
          if (!/^[0-9a-fA-F]{1,4}$/.test(g)) bad();
          return parseInt(g, 16);
        });
  let groups: number[];
  if (halves.length === 2) {
    const head = parseGroups(halves[0]);
    const rest = parseGroups(halves[1]);
    const fill = 8 - head.length - rest.length;
    if (fill < 1) bad();
    groups = [...head, ...new Array<number>(fill).fill(0), ...rest];
  } else {
    groups = parseGroups(halves[0]);
  }
  if (groups.length !== 8) bad();
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** Parse an IPv4 or IPv6 address into 4 or 16 bytes. */
export function ipToBuffer(ip: string): Buffer {
  return ip.includes(':') ? ipv6ToBuffer(ip) : ipv4ToBuffer(ip);
}

/** IPv4 address → unsigned 32-bit number (host order value, e.g. 10.0.0.1 → 0x0a000001). */
export function ipToNumber(ip: string): number {
  return ipv4ToBuffer(ip).readUInt32BE(0);
}

/** Unsigned 32-bit number → dotted-quad IPv4 address. */
export function numberToIp(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`invalid IPv4 number: ${n}`);
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

/** Format 16 bytes as an RFC 5952 canonical IPv6 string. */
export function formatIpv6(buf: Buffer): string {
  if (buf.length !== 16) throw new Error(`IPv6 address must be 16 bytes, got ${buf.length}`);
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(buf.readUInt16BE(i));
  // Longest run (>= 2) of zero groups; first one wins a tie.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestLen < 2) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** Format 4 or 16 bytes as an IP address string. */
export function bufferToIp(buf: Buffer): string {
  if (buf.length === 4) return numberToIp(buf.readUInt32BE(0));
  if (buf.length === 16) return formatIpv6(buf);
  throw new Error(`IP address must be 4 or 16 bytes, got ${buf.length}`);
}

/** Normalize any IPv6 spelling to canonical form (handy for comparisons). */
export function canonicalIpv6(ip: string): string {
  return formatIpv6(ipv6ToBuffer(ip));
}

/** 'aa:bb:cc:dd:ee:ff' (or '-' separated) → 6 bytes. */
export function parseMac(mac: string): Buffer {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new Error(`invalid MAC address: ${JSON.stringify(mac)}`);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** 6 bytes → lower-case 'aa:bb:cc:dd:ee:ff'. */
export function formatMac(buf: Buffer): string {
  if (buf.length !== 6) throw new Error(`MAC address must be 6 bytes, got ${buf.length}`);
  return [...buf].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

// ---------------------------------------------------------------------------
// Checksums (RFC 1071, RFC 1624)
// ---------------------------------------------------------------------------

/**
 * Add `buf` as big-endian 16-bit words (odd trailing byte padded with zero)
 * to a running one's-complement sum. Returns the unfolded sum.
 */
export function onesSum(buf: Buffer, initial = 0): number {
  let sum = initial;
  const even = buf.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (buf.length & 1) sum += buf[buf.length - 1] << 8;
  // JS numbers are exact to 2^53, so no intermediate folding is needed; callers fold.
  return sum;
}

/** Fold a 32-bit+ sum into 16 bits with end-around carry. */
export function foldSum(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/**
 * RFC 1071 Internet checksum of `buf` (plus an optional pre-computed partial
 * sum, e.g. a pseudo-header): the one's complement of the one's complement sum.
 * Over data that already contains a correct checksum the result is 0.
 */
export function internetChecksum(buf: Buffer, initial = 0): number {
  return ~foldSum(onesSum(buf, initial)) & 0xffff;
}

/** Unfolded one's-complement sum of the TCP/UDP/ICMPv6 pseudo-header. */
export function pseudoHeaderSum(src: string | Buffer, dst: string | Buffer, protocol: number, length: number): number {
  const s = typeof src === 'string' ? ipToBuffer(src) : src;
  const d = typeof dst === 'string' ? ipToBuffer(dst) : dst;
  if (s.length !== d.length) throw new Error('pseudo-header: src and dst address families differ');
  let sum = onesSum(s) + onesSum(d);
  if (s.length === 4) {
    sum += protocol + length; // zero byte + protocol, 16-bit length
  } else {
    sum += Math.floor(length / 0x10000) + (length & 0xffff) + protocol; // 32-bit length, 3 zero bytes + next header
  }
  return sum;
}

/**
 * RFC 1624 incremental update (eqn. 3: HC' = ~(~HC + ~m + m')) for one 16-bit
 * word changing from `oldWord` to `newWord`.
 */
export function checksumUpdate16(checksum: number, oldWord: number, newWord: number): number {
  const sum = (~checksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  return ~foldSum(sum) & 0xffff;
}

/** RFC 1624 update for a 32-bit field (e.g. an IPv4 address or TCP seq). */
export function checksumUpdate32(checksum: number, oldValue: number, newValue: number): number {
  let c = checksumUpdate16(checksum, oldValue >>> 16, newValue >>> 16);
  c = checksumUpdate16(c, oldValue & 0xffff, newValue & 0xffff);
  return c;
}

/**
 * RFC 1624 update for an arbitrary even-length, 16-bit aligned field
 * (IPv4/IPv6 address, port, ...). `oldBytes` and `newBytes` must be the same length.
 */
export function checksumUpdateBytes(checksum: number, oldBytes: Buffer, newBytes: Buffer): number {
  if (oldBytes.length !== newBytes.length || oldBytes.length % 2 !== 0) {
    throw new Error('checksumUpdateBytes: fields must be of equal, even length');
  }
  let sum = ~checksum & 0xffff;
  for (let i = 0; i < oldBytes.length; i += 2) {
    sum += ~oldBytes.readUInt16BE(i) & 0xffff;
    sum += newBytes.readUInt16BE(i);
  }
  return ~foldSum(sum) & 0xffff;
}

/**
 * True when two checksum field values are equal in one's complement
 * arithmetic (0x0000 and 0xffff are both "zero"). Useful when comparing an
 * incrementally updated checksum with a full recomputation. Note that for UDP
 * a field of 0 means "no checksum" — compare UDP checksums exactly.
 */
export function checksumsEquivalent(a: number, b: number): boolean {
  const n = (x: number): number => (x & 0xffff) === 0xffff ? 0 : x & 0xffff;
  return n(a) === n(b);
}

// ---------------------------------------------------------------------------
// Layer specs (builder input)
// ---------------------------------------------------------------------------

export type Bytes = Buffer | Uint8Array | string;

function toBuffer(b: Bytes): Buffer {
  if (typeof b === 'string') return Buffer.from(b, 'utf8');
  return Buffer.isBuffer(b) ? b : Buffer.from(b);
}

/** Options shared by every layer that carries a checksum. */
export interface ChecksumOptions {
  /** Write exactly this checksum value instead of computing it. */
  checksum?: number;
  /** Compute the checksum, then flip a bit so it is guaranteed wrong. */
  badChecksum?: boolean;
}

export interface VlanTag {
  id: number;
  /** Priority code point, 0-7. */
  pcp?: number;
  /** Drop eligible indicator. */
  dei?: boolean;
  /** Tag protocol id; default 0x8100. */
  tpid?: number;
}

export interface EthOptions {
  src: string;
  dst: string;
  /** Ethertype; default inferred from the next layer (IPv4/IPv6). */
  type?: number;
  /** Insert one 802.1Q tag (or several, outermost first, for QinQ). */
  vlan?: VlanTag | VlanTag[];
  /** Pad the frame with zeros up to the 60-byte Ethernet minimum (no FCS). */
  padToMin?: boolean;
}

export interface Ipv4Options extends ChecksumOptions {
  src: string;
  dst: string;
  ttl?: number; // default 64
  id?: number; // default 0
  tos?: number; // whole byte (DSCP << 2 | ECN); default 0
  /** Don't-fragment flag (default false). */
  df?: boolean;
  /** More-fragments flag (default false). */
  mf?: boolean;
  /** The reserved/evil bit. */
  reservedFlag?: boolean;
  /** Fragment offset in 8-byte units, as in the header. */
  fragOffset?: number;
  /** Protocol; default inferred from the next layer. */
  protocol?: number;
  /** Raw option bytes; zero-padded to a multiple of 4. */
  options?: Bytes;
  /** Override the total-length field (default: header + payload). */
  totalLength?: number;
  /** Override the IHL field (in 32-bit words). */
  ihl?: number;
}

export interface Ipv6Options {
  src: string;
  dst: string;
  hopLimit?: number; // default 64
  trafficClass?: number; // default 0
  flowLabel?: number; // default 0
  /** Next header; default inferred from the next layer. */
  nextHeader?: number;
  /** Override the payload-length field. */
  payloadLength?: number;
}

export interface TcpOptions extends ChecksumOptions {
  sport: number;
  dport: number;
  seq?: number; // default 0
  ack?: number; // default 0
  flags?: readonly TcpFlagName[]; // default []
  window?: number; // default 65535
  urgentPointer?: number;
  /** Raw option bytes (see `tcpOptions()`); zero-padded to a multiple of 4. */
  options?: Bytes;
  /** Override the data-offset field (32-bit words). */
  dataOffset?: number;
}

export interface UdpOptions extends ChecksumOptions {
  sport: number;
  dport: number;
  /** Send checksum 0 ("no checksum"; valid on IPv4 only). */
  zeroChecksum?: boolean;
  /** Override the length field (default: header + payload). */
  length?: number;
}

interface IcmpCommon extends ChecksumOptions {
  /**
   * For error messages: quote at most this many bytes of the inner packet
   * (default: all of it). RFC 792 hosts quote IP header + 8 bytes.
   */
  quoteBytes?: number;
}

export type Icmpv4Options =
  | (IcmpCommon & { type: 'echo-request' | 'echo-reply'; id?: number; seq?: number; code?: number })
  | (IcmpCommon & {
      type: 'dest-unreachable';
      code: Icmpv4UnreachCode | number;
      /** Next-hop MTU for 'frag-needed' (RFC 1191). */
      mtu?: number;
    })
  | (IcmpCommon & { type: 'time-exceeded'; code?: number })
  | (IcmpCommon & { type: Icmpv4TypeName | number; code?: number; /** bytes 4..7 of the header */ rest?: number });

export type Icmpv6Options =
  | (IcmpCommon & { type: 'echo-request' | 'echo-reply'; id?: number; seq?: number; code?: number })
  | (IcmpCommon & { type: 'dest-unreachable'; code: Icmpv6UnreachCode | number })
  | (IcmpCommon & { type: 'packet-too-big'; mtu: number; code?: number })
  | (IcmpCommon & { type: 'time-exceeded'; code?: number })
  | (IcmpCommon & { type: Icmpv6TypeName | number; code?: number; rest?: number });

export interface VxlanOptions {
  vni: number;
  /** Flags byte; default 0x08 (I flag: VNI valid). */
  flags?: number;
  /** Values for the reserved fields (24 bits after flags, 8 bits after VNI); default 0. */
  reserved1?: number;
  reserved2?: number;
}

/** `vxlan()` on the builder may insert the UDP header for you. */
export interface VxlanBuilderOptions extends VxlanOptions {
  /** UDP source port when the UDP layer is auto-inserted; default 49152. */
  sport?: number;
  /** UDP destination port when the UDP layer is auto-inserted; default 8472. */
  dport?: number;
  /** Auto-inserted UDP sends checksum 0 (as Linux does by default on IPv4). */
  udpZeroChecksum?: boolean;
}

export type LayerSpec =
  | ({ kind: 'eth' } & EthOptions)
  | ({ kind: 'ipv4' } & Ipv4Options)
  | ({ kind: 'ipv6' } & Ipv6Options)
  | ({ kind: 'tcp' } & TcpOptions)
  | ({ kind: 'udp' } & UdpOptions)
  | ({ kind: 'icmpv4' } & Icmpv4Options)
  | ({ kind: 'icmpv6' } & Icmpv6Options)
  | ({ kind: 'vxlan' } & VxlanOptions)
  | { kind: 'raw'; data: Bytes };

export type LayerKind = LayerSpec['kind'];

export interface BuildOptions {
  /** Cut the finished packet to this many bytes. */
  truncate?: number;
}

// ---------------------------------------------------------------------------
// TCP options helper
// ---------------------------------------------------------------------------

export interface TcpOptionSpec {
  mss?: number;
  sackPermitted?: boolean;
  /** Window scale shift. */
  wscale?: number;
  /** [TSval, TSecr]. */
  timestamps?: readonly [number, number];
}

/** Encode common TCP options in Linux's SYN order (MSS, SACK-perm, TS, NOP, WS). */
export function tcpOptions(o: TcpOptionSpec): Buffer {
  const parts: Buffer[] = [];
  if (o.mss !== undefined) {
    const b = Buffer.alloc(4);
    b[0] = 2;
    b[1] = 4;
    b.writeUInt16BE(o.mss, 2);
    parts.push(b);
  }
  if (o.sackPermitted && o.timestamps) {
    const b = Buffer.alloc(12); // SACK-permitted, then timestamps
    b[0] = 4;
    b[1] = 2;
    b[2] = 8;
    b[3] = 10;
    b.writeUInt32BE(o.timestamps[0] >>> 0, 4);
    b.writeUInt32BE(o.timestamps[1] >>> 0, 8);
    parts.push(b);
  } else {
    if (o.sackPermitted) parts.push(Buffer.from([1, 1, 4, 2]));
    if (o.timestamps) {
      const b = Buffer.alloc(12);
      b[0] = 1;
      b[1] = 1;
      b[2] = 8;
      b[3] = 10;
      b.writeUInt32BE(o.timestamps[0] >>> 0, 4);
      b.writeUInt32BE(o.timestamps[1] >>> 0, 8);
      parts.push(b);
    }
  }
  if (o.wscale !== undefined) parts.push(Buffer.from([1, 3, 3, o.wscale]));
  return Buffer.concat(parts);
}

export interface ParsedTcpOption {
  kind: number;
  name: 'eol' | 'nop' | 'mss' | 'wscale' | 'sack-permitted' | 'sack' | 'timestamps' | 'unknown';
  data: Buffer;
  mss?: number;
  wscale?: number;
  timestamps?: [number, number];
}

/** Decode TCP option bytes (stops at EOL or a malformed option). */
export function parseTcpOptions(buf: Buffer): ParsedTcpOption[] {
  const out: ParsedTcpOption[] = [];
  let i = 0;
  while (i < buf.length) {
    const kind = buf[i];
    if (kind === 0) {
      out.push({ kind, name: 'eol', data: Buffer.alloc(0) });
      break;
    }
    if (kind === 1) {
      out.push({ kind, name: 'nop', data: Buffer.alloc(0) });
      i++;
      continue;
    }
    if (i + 1 >= buf.length) break;
    const len = buf[i + 1];
    if (len < 2 || i + len > buf.length) break;
    const data = buf.subarray(i + 2, i + len);
    const opt: ParsedTcpOption = { kind, name: 'unknown', data };
    if (kind === 2 && len === 4) Object.assign(opt, { name: 'mss', mss: data.readUInt16BE(0) });
    else if (kind === 3 && len === 3) Object.assign(opt, { name: 'wscale', wscale: data[0] });
    else if (kind === 4 && len === 2) opt.name = 'sack-permitted';
    else if (kind === 5) opt.name = 'sack';
    else if (kind === 8 && len === 10) {
      Object.assign(opt, { name: 'timestamps', timestamps: [data.readUInt32BE(0), data.readUInt32BE(4)] });
    }
    out.push(opt);
    i += len;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------

function padTo4(b: Buffer): Buffer {
  const rem = b.length % 4;
  return rem === 0 ? b : Buffer.concat([b, Buffer.alloc(4 - rem)]);
}

function applyChecksumOptions(computed: number, o: ChecksumOptions, zeroIsNone = false): number {
  if (o.checksum !== undefined) return o.checksum & 0xffff;
  if (!o.badChecksum) return computed;
  let bad = computed ^ 0x0001; // a single-bit flip is never one's-complement equivalent
  if (zeroIsNone && bad === 0) bad = computed ^ 0x8000;
  return bad;
}

function u16(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new Error(`${what} out of range: ${v}`);
  return v;
}

function nextKind(layers: readonly LayerSpec[], i: number): LayerKind | undefined {
  return layers[i + 1]?.kind;
}

function inferEthertype(k: LayerKind | undefined): number {
  if (k === 'ipv4') return ETH_P_IP;
  if (k === 'ipv6') return ETH_P_IPV6;
  throw new Error(`eth: cannot infer ethertype for next layer ${k ?? '(none)'}; set 'type'`);
}

function inferIpProto(k: LayerKind | undefined, v6: boolean): number {
  switch (k) {
    case 'tcp':
      return IPPROTO_TCP;
    case 'udp':
      return IPPROTO_UDP;
    case 'icmpv4':
      return IPPROTO_ICMP;
    case 'icmpv6':
      return IPPROTO_ICMPV6;
    case 'ipv4':
      return IPPROTO_IPIP;
    case 'ipv6':
      return IPPROTO_IPV6;
    default:
      throw new Error(`${v6 ? 'ipv6' : 'ipv4'}: cannot infer protocol for next layer ${k ?? '(none)'}; set it explicitly`);
  }
}

/** Pseudo-header sum for the transport layer at index i, or undefined if it isn't directly inside IP. */
function enclosingPseudoSum(layers: readonly LayerSpec[], i: number, proto: number, len: number): number | undefined {
  const prev = layers[i - 1];
  if (prev?.kind === 'ipv4' || prev?.kind === 'ipv6') return pseudoHeaderSum(prev.src, prev.dst, proto, len);
  return undefined;
}

function buildEth(o: EthOptions, payload: Buffer, next: LayerKind | undefined): Buffer {
  const tags = o.vlan === undefined ? [] : Array.isArray(o.vlan) ? o.vlan : [o.vlan];
  const hdr = Buffer.alloc(ETH_HLEN + tags.length * VLAN_HLEN);
  parseMac(o.dst).copy(hdr, 0);
  parseMac(o.src).copy(hdr, 6);
  let off = 12;
  for (const t of tags) {
    if (t.id < 0 || t.id > 4095) throw new Error(`vlan id out of range: ${t.id}`);
    hdr.writeUInt16BE(t.tpid ?? ETH_P_8021Q, off);
    hdr.writeUInt16BE((((t.pcp ?? 0) & 7) << 13) | ((t.dei ? 1 : 0) << 12) | t.id, off + 2);
    off += 4;
  }
  hdr.writeUInt16BE(u16(o.type ?? inferEthertype(next), 'ethertype'), off);
  const frame = Buffer.concat([hdr, payload]);
  if (o.padToMin && frame.length < 60) return Buffer.concat([frame, Buffer.alloc(60 - frame.length)]);
  return frame;
}

function buildIpv4(o: Ipv4Options, payload: Buffer, next: LayerKind | undefined): Buffer {
  const opts = o.options === undefined ? Buffer.alloc(0) : padTo4(toBuffer(o.options));
  const hlen = IPV4_HLEN + opts.length;
  if (hlen > 60) throw new Error(`ipv4: options too long (${opts.length} bytes)`);
  const h = Buffer.alloc(hlen);
  h[0] = 0x40 | ((o.ihl ?? hlen / 4) & 0x0f);
  h[1] = (o.tos ?? 0) & 0xff;
  h.writeUInt16BE(u16(o.totalLength ?? hlen + payload.length, 'ipv4 total length'), 2);
  h.writeUInt16BE(u16(o.id ?? 0, 'ipv4 id'), 4);
  const frag = o.fragOffset ?? 0;
  if (frag < 0 || frag > 0x1fff) throw new Error(`ipv4 fragment offset out of range: ${frag}`);
  h.writeUInt16BE((o.reservedFlag ? 0x8000 : 0) | (o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | frag, 6);
  h[8] = o.ttl ?? 64;
  h[9] = o.protocol ?? inferIpProto(next, false);
  ipv4ToBuffer(o.src).copy(h, 12);
  ipv4ToBuffer(o.dst).copy(h, 16);
  opts.copy(h, 20);
  h.writeUInt16BE(applyChecksumOptions(internetChecksum(h), o), 10);
  return Buffer.concat([h, payload]);
}

function buildIpv6(o: Ipv6Options, payload: Buffer, next: LayerKind | undefined): Buffer {
  const h = Buffer.alloc(IPV6_HLEN);
  const tc = (o.trafficClass ?? 0) & 0xff;
  const fl = (o.flowLabel ?? 0) & 0xfffff;
  h.writeUInt32BE(((6 << 28) | (tc << 20) | fl) >>> 0, 0);
  h.writeUInt16BE(u16(o.payloadLength ?? payload.length, 'ipv6 payload length'), 4);
  h[6] = o.nextHeader ?? inferIpProto(next, true);
  h[7] = o.hopLimit ?? 64;
  ipv6ToBuffer(o.src).copy(h, 8);
  ipv6ToBuffer(o.dst).copy(h, 24);
  return Buffer.concat([h, payload]);
}

function buildTcp(layers: readonly LayerSpec[], i: number, o: TcpOptions, payload: Buffer): Buffer {
  const opts = o.options === undefined ? Buffer.alloc(0) : padTo4(toBuffer(o.options));
  const hlen = TCP_HLEN + opts.length;
  if (hlen > 60) throw new Error(`tcp: options too long (${opts.length} bytes)`);
  const h = Buffer.alloc(hlen);
  h.writeUInt16BE(u16(o.sport, 'tcp sport'), 0);
  h.writeUInt16BE(u16(o.dport, 'tcp dport'), 2);
  h.writeUInt32BE((o.seq ?? 0) >>> 0, 4);
  h.writeUInt32BE((o.ack ?? 0) >>> 0, 8);
  h[12] = ((o.dataOffset ?? hlen / 4) & 0x0f) << 4;
  h[13] = tcpFlagsToByte(o.flags ?? []);
  h.writeUInt16BE(u16(o.window ?? 65535, 'tcp window'), 14);
  h.writeUInt16BE(u16(o.urgentPointer ?? 0, 'tcp urgent pointer'), 18);
  opts.copy(h, 20);
  const seg = Buffer.concat([h, payload]);
  const ph = enclosingPseudoSum(layers, i, IPPROTO_TCP, seg.length);
  const computed = ph === undefined ? 0 : internetChecksum(seg, ph);
  seg.writeUInt16BE(applyChecksumOptions(computed, o), 16);
  return seg;
}

function buildUdp(layers: readonly LayerSpec[], i: number, o: UdpOptions, payload: Buffer): Buffer {
  const dgram = Buffer.alloc(UDP_HLEN + payload.length);
  dgram.writeUInt16BE(u16(o.sport, 'udp sport'), 0);
  dgram.writeUInt16BE(u16(o.dport, 'udp dport'), 2);
  dgram.writeUInt16BE(u16(o.length ?? dgram.length, 'udp length'), 4);
  payload.copy(dgram, UDP_HLEN);
  let computed = 0;
  if (!o.zeroChecksum) {
    const ph = enclosingPseudoSum(layers, i, IPPROTO_UDP, dgram.length);
    if (ph !== undefined) {
      computed = internetChecksum(dgram, ph);
      if (computed === 0) computed = 0xffff; // RFC 768: transmitted as all ones
    }
  }
  dgram.writeUInt16BE(applyChecksumOptions(computed, o, true), 6);
  return dgram;
}

function icmpHeader(type: number, code: number, rest: number): Buffer {
  const h = Buffer.alloc(ICMP_HLEN);
  h[0] = type;
  h[1] = code;
  h.writeUInt32BE(rest >>> 0, 4);
  return h;
}

function quote(payload: Buffer, o: IcmpCommon): Buffer {
  return o.quoteBytes === undefined ? payload : payload.subarray(0, o.quoteBytes);
}

function buildIcmpv4(o: Icmpv4Options, payload: Buffer): Buffer {
  let h: Buffer;
  let body = payload;
  if (o.type === 'echo-request' || o.type === 'echo-reply') {
    const e = o as Extract<Icmpv4Options, { type: 'echo-request' | 'echo-reply' }>;
    h = icmpHeader(ICMPV4_TYPES[o.type], e.code ?? 0, (((e.id ?? 0) & 0xffff) << 16 | ((e.seq ?? 0) & 0xffff)) >>> 0);
  } else if (o.type === 'dest-unreachable') {
    const u = o as Extract<Icmpv4Options, { type: 'dest-unreachable' }>;
    const code = typeof u.code === 'string' ? ICMPV4_UNREACH_CODES[u.code] : (u.code ?? 0);
    h = icmpHeader(3, code, (u.mtu ?? 0) & 0xffff);
    body = quote(payload, o);
  } else {
    const g = o as Extract<Icmpv4Options, { rest?: number }>;
    const type = typeof o.type === 'number' ? o.type : ICMPV4_TYPES[o.type];
    h = icmpHeader(type, g.code ?? 0, g.rest ?? 0);
    if (ICMPV4_ERROR_TYPES.has(type)) body = quote(payload, o);
  }
  const msg = Buffer.concat([h, body]);
  msg.writeUInt16BE(applyChecksumOptions(internetChecksum(msg), o), 2);
  return msg;
}

function buildIcmpv6(layers: readonly LayerSpec[], i: number, o: Icmpv6Options, payload: Buffer): Buffer {
  let h: Buffer;
  let body = payload;
  if (o.type === 'echo-request' || o.type === 'echo-reply') {
    const e = o as Extract<Icmpv6Options, { type: 'echo-request' | 'echo-reply' }>;
    h = icmpHeader(ICMPV6_TYPES[o.type], e.code ?? 0, (((e.id ?? 0) & 0xffff) << 16 | ((e.seq ?? 0) & 0xffff)) >>> 0);
  } else if (o.type === 'dest-unreachable') {
    const u = o as Extract<Icmpv6Options, { type: 'dest-unreachable' }>;
    h = icmpHeader(1, typeof u.code === 'string' ? ICMPV6_UNREACH_CODES[u.code] : (u.code ?? 0), 0);
    body = quote(payload, o);
  } else if (o.type === 'packet-too-big') {
    const p = o as Extract<Icmpv6Options, { type: 'packet-too-big' }>;
    h = icmpHeader(2, p.code ?? 0, p.mtu);
    body = quote(payload, o);
  } else {
    const g = o as Extract<Icmpv6Options, { rest?: number }>;
    const type = typeof o.type === 'number' ? o.type : ICMPV6_TYPES[o.type];
    h = icmpHeader(type, g.code ?? 0, g.rest ?? 0);
    if (ICMPV6_ERROR_TYPES.has(type)) body = quote(payload, o);
  }
  const msg = Buffer.concat([h, body]);
  const ph = enclosingPseudoSum(layers, i, IPPROTO_ICMPV6, msg.length);
  const computed = ph === undefined ? 0 : internetChecksum(msg, ph);
  msg.writeUInt16BE(applyChecksumOptions(computed, o), 2);
  return msg;
}

function buildVxlan(o: VxlanOptions, payload: Buffer): Buffer {
  if (o.vni < 0 || o.vni > 0xffffff) throw new Error(`vxlan vni out of range: ${o.vni}`);
  const h = Buffer.alloc(VXLAN_HLEN);
  h.writeUInt32BE((((o.flags ?? 0x08) & 0xff) << 24 | ((o.reserved1 ?? 0) & 0xffffff)) >>> 0, 0);
  h.writeUInt32BE(((o.vni << 8) | ((o.reserved2 ?? 0) & 0xff)) >>> 0, 4);
  return Buffer.concat([h, payload]);
}

/** Build a packet from a linear list of layers (outermost first). */
export function buildPacket(layers: readonly LayerSpec[], opts: BuildOptions = {}): Buffer {
  let inner: Buffer = Buffer.alloc(0);
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i];
    const next = nextKind(layers, i);
    switch (l.kind) {
      case 'raw':
        inner = Buffer.concat([toBuffer(l.data), inner]);
        break;
      case 'eth':
        inner = buildEth(l, inner, next);
        break;
      case 'ipv4':
        inner = buildIpv4(l, inner, next);
        break;
      case 'ipv6':
        inner = buildIpv6(l, inner, next);
        break;
      case 'tcp':
        inner = buildTcp(layers, i, l, inner);
        break;
      case 'udp':
        inner = buildUdp(layers, i, l, inner);
        break;
      case 'icmpv4':
        inner = buildIcmpv4(l, inner);
        break;
      case 'icmpv6':
        inner = buildIcmpv6(layers, i, l, inner);
        break;
      case 'vxlan':
        inner = buildVxlan(l, inner);
        break;
    }
  }
  if (opts.truncate !== undefined) inner = Buffer.from(inner.subarray(0, opts.truncate));
  return inner;
}

/** Encode a list of TCP flag names as the flags byte. */
export function tcpFlagsToByte(flags: readonly TcpFlagName[]): number {
  let b = 0;
  for (const f of flags) {
    const bit = TCP_FLAGS[f];
    if (bit === undefined) throw new Error(`unknown TCP flag ${String(f)}`);
    b |= bit;
  }
  return b;
}

/** Decode the TCP flags byte into names (order: FIN SYN RST PSH ACK URG ECE CWR). */
export function tcpFlagsFromByte(b: number): TcpFlagName[] {
  return TCP_FLAG_ORDER.filter((f) => (b & TCP_FLAGS[f]) !== 0);
}

/**
 * Immutable fluent packet builder. Each method returns a new builder, so a
 * common prefix can be shared:
 *
 *   const base = eth({src, dst}).ipv4({src: a, dst: b});
 *   const syn = base.tcp({sport: 1, dport: 80, flags: ['SYN']}).build();
 *   const dns = base.udp({sport: 2, dport: 53}).payload(query).build();
 */
export class PacketBuilder {
  readonly layers: readonly LayerSpec[];
  readonly #opts: BuildOptions;

  constructor(layers: readonly LayerSpec[] = [], opts: BuildOptions = {}) {
    this.layers = layers;
    this.#opts = opts;
  }

  /** Append an arbitrary layer spec. */
  layer(spec: LayerSpec): PacketBuilder {
    return new PacketBuilder([...this.layers, spec], this.#opts);
  }

  eth(o: EthOptions): PacketBuilder {
    return this.layer({ kind: 'eth', ...o });
  }
  ipv4(o: Ipv4Options): PacketBuilder {
    return this.layer({ kind: 'ipv4', ...o });
  }
  ipv6(o: Ipv6Options): PacketBuilder {
    return this.layer({ kind: 'ipv6', ...o });
  }
  tcp(o: TcpOptions): PacketBuilder {
    return this.layer({ kind: 'tcp', ...o });
  }
  udp(o: UdpOptions): PacketBuilder {
    return this.layer({ kind: 'udp', ...o });
  }
  icmpv4(o: Icmpv4Options): PacketBuilder {
    return this.layer({ kind: 'icmpv4', ...o } as LayerSpec);
  }
  icmpv6(o: Icmpv6Options): PacketBuilder {
    return this.layer({ kind: 'icmpv6', ...o } as LayerSpec);
  }

  /**
   * VXLAN header. If the previous layer is not UDP, a UDP header
   * (sport 49152, dport 8472 unless given) is inserted first. Continue the
   * chain with `.eth(...)` for the inner frame.
   */
  vxlan(o: VxlanBuilderOptions): PacketBuilder {
    const { sport, dport, udpZeroChecksum, ...vx } = o;
    let b: PacketBuilder = this;
    if (this.layers[this.layers.length - 1]?.kind !== 'udp') {
      b = b.udp({ sport: sport ?? 49152, dport: dport ?? VXLAN_PORT_LINUX, zeroChecksum: udpZeroChecksum });
    }
    return b.layer({ kind: 'vxlan', ...vx });
  }

  /** Append payload bytes (strings are UTF-8). */
  payload(data: Bytes): PacketBuilder {
    return this.layer({ kind: 'raw', data });
  }

  /** Cut the built packet to `bytes` bytes (for truncation tests). */
  truncate(bytes: number): PacketBuilder {
    return new PacketBuilder(this.layers, { ...this.#opts, truncate: bytes });
  }

  build(): Buffer {
    return buildPacket(this.layers, this.#opts);
  }
}

/** Start an empty builder. */
export function packet(): PacketBuilder {
  return new PacketBuilder();
}
/** Start a builder with an Ethernet header. */
export function eth(o: EthOptions): PacketBuilder {
  return packet().eth(o);
}
/** Start a builder with an IPv4 header (no L2). */
export function ipv4(o: Ipv4Options): PacketBuilder {
  return packet().ipv4(o);
}
/** Start a builder with an IPv6 header (no L2). */
export function ipv6(o: Ipv6Options): PacketBuilder {
  return packet().ipv6(o);
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

interface ParsedBase {
  /** Byte offset of this header within the buffer given to parsePacket. */
  offset: number;
  /** Header length in bytes. */
  headerLength: number;
  /** True when the buffer ended inside this header (missing bytes read as zero). */
  truncated: boolean;
}

export interface ParsedEth extends ParsedBase {
  kind: 'eth';
  dst: string;
  src: string;
  /** The final ethertype (after any VLAN tags). */
  type: number;
  vlan: Array<{ tpid: number; id: number; pcp: number; dei: boolean }>;
}

export interface ParsedIpv4 extends ParsedBase {
  kind: 'ipv4';
  version: number;
  ihl: number;
  tos: number;
  dscp: number;
  ecn: number;
  totalLength: number;
  id: number;
  df: boolean;
  mf: boolean;
  reservedFlag: boolean;
  /** In 8-byte units, as in the header. */
  fragOffset: number;
  ttl: number;
  protocol: number;
  checksum: number;
  src: string;
  dst: string;
  options: Buffer;
  /** Bytes of payload actually present (bounded by totalLength and the buffer). */
  payloadLength: number;
}

export interface ParsedIpv6 extends ParsedBase {
  kind: 'ipv6';
  version: number;
  trafficClass: number;
  flowLabel: number;
  payloadLength: number;
  /** Next header of the fixed header. */
  nextHeader: number;
  /** Upper-layer protocol after skipping extension headers. */
  upperProtocol: number;
  hopLimit: number;
  src: string;
  dst: string;
  extHeaders: Array<{ type: number; length: number }>;
}

export interface ParsedTcp extends ParsedBase {
  kind: 'tcp';
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  dataOffset: number;
  flags: TcpFlagName[];
  flagsByte: number;
  window: number;
  checksum: number;
  urgentPointer: number;
  options: Buffer;
}

export interface ParsedUdp extends ParsedBase {
  kind: 'udp';
  sport: number;
  dport: number;
  length: number;
  checksum: number;
}

export interface ParsedIcmp extends ParsedBase {
  type: number;
  code: number;
  /** e.g. 'echo-request'; undefined for types without a name here. */
  typeName?: string;
  checksum: number;
  /** Bytes 4..7 of the header as a 32-bit number. */
  rest: number;
  /** Echo id/seq (echo types only). */
  id?: number;
  seq?: number;
  /** v4 frag-needed next-hop MTU / v6 packet-too-big MTU. */
  mtu?: number;
  /** True for error messages that quote a packet (parsed into `inner`). */
  isError: boolean;
}

export interface ParsedIcmpv4 extends ParsedIcmp {
  kind: 'icmpv4';
}

export interface ParsedIcmpv6 extends ParsedIcmp {
  kind: 'icmpv6';
}

export interface ParsedVxlan extends ParsedBase {
  kind: 'vxlan';
  flags: number;
  /** I flag (0x08) set. */
  vniValid: boolean;
  vni: number;
  reserved1: number;
  reserved2: number;
}

export type ParsedLayer =
  | ParsedEth
  | ParsedIpv4
  | ParsedIpv6
  | ParsedTcp
  | ParsedUdp
  | ParsedIcmpv4
  | ParsedIcmpv6
  | ParsedVxlan;

export interface ParsedPacket {
  /** Decoded headers of this nesting level, outermost first. */
  layers: ParsedLayer[];
  eth?: ParsedEth;
  ipv4?: ParsedIpv4;
  ipv6?: ParsedIpv6;
  tcp?: ParsedTcp;
  udp?: ParsedUdp;
  icmpv4?: ParsedIcmpv4;
  icmpv6?: ParsedIcmpv6;
  vxlan?: ParsedVxlan;
  /**
   * Bytes after the last decoded header (application data; for VXLAN the
   * inner frame, for ICMP errors the quoted packet), bounded by IP/UDP lengths.
   */
  payload: Buffer;
  /** Offset of `payload` within the parsed buffer. */
  payloadOffset: number;
  /** VXLAN inner frame or the packet quoted by an ICMP error. */
  inner?: ParsedPacket;
  /** Offset where the bytes available to this level end (enclosing lengths / buffer end). */
  limit: number;
  /** The buffer ended before a length field said it would. */
  truncated: boolean;
  /** True for packets quoted inside an ICMP error (truncation expected). */
  quoted: boolean;
  /** Non-fatal anomalies (length mismatches, unknown protocols, ...). */
  notes: string[];
}

export type FirstLayer = 'eth' | 'ipv4' | 'ipv6' | 'ip';

export interface ParseOptions {
  /** What the buffer starts with; 'ip' picks v4/v6 by version nibble. Default 'eth'. */
  first?: FirstLayer;
  /** UDP destination ports decoded as VXLAN; default 8472 and 4789. */
  vxlanPorts?: readonly number[];
}

export class PacketParseError extends Error {
  override name = 'PacketParseError';
}

/** A view of `buf` from `off` of at least `len` bytes, zero-filled past the end. */
function sliceOrZeroFill(buf: Buffer, off: number, len: number): { b: Buffer; truncated: boolean } {
  const avail = Math.max(0, Math.min(len, buf.length - off));
  if (avail === len) return { b: buf.subarray(off, off + len), truncated: false };
  const b = Buffer.alloc(len);
  if (avail > 0) buf.copy(b, 0, off, off + avail);
  return { b, truncated: true };
}

const IPV6_EXT_HEADERS: ReadonlySet<number> = new Set([0, 43, 44, 60]);

function icmpTypeName(table: Record<string, number>, type: number): string | undefined {
  for (const [k, v] of Object.entries(table)) if (v === type) return k;
  return undefined;
}

class Parser {
  readonly pkt: ParsedPacket;
  /** The bytes this level may see: the whole buffer cut at `limit`, so offsets stay absolute. */
  private readonly buf: Buffer;
  /** End of meaningful data at this level (tightened by IP/UDP length fields). */
  private end: number;

  constructor(
    whole: Buffer,
    start: number,
    limit: number,
    quoted: boolean,
    private readonly opts: Required<Pick<ParseOptions, 'vxlanPorts'>>,
  ) {
    this.buf = whole.subarray(0, limit);
    this.end = limit;
    this.pkt = {
      layers: [],
      payload: Buffer.alloc(0),
      payloadOffset: start,
      limit,
      truncated: false,
      quoted,
      notes: [],
    };
  }

  private add<L extends ParsedLayer>(l: L): L {
    this.pkt.layers.push(l);
    (this.pkt as unknown as Record<string, ParsedLayer>)[l.kind] ??= l;
    if (l.truncated) this.pkt.truncated = true;
    return l;
  }

  private setPayload(off: number): void {
    const end = Math.max(off, Math.min(this.end, this.buf.length));
    this.pkt.payloadOffset = off;
    this.pkt.payload = this.buf.subarray(off, end);
  }

  /** Bound the meaningful end by a length field; flags truncation. */
  private bound(claimedEnd: number, what: string): void {
    if (claimedEnd > this.buf.length) {
      this.pkt.truncated = true;
      if (!this.pkt.quoted) this.pkt.notes.push(`${what}: length says ${claimedEnd} but buffer ends at ${this.buf.length}`);
    }
    if (claimedEnd < this.end) this.end = claimedEnd;
  }

  run(first: FirstLayer, off: number): ParsedPacket {
    if (first === 'eth') this.eth(off);
    else if (first === 'ipv4') this.ipv4(off);
    else if (first === 'ipv6') this.ipv6(off);
    else this.ip(off);
    return this.pkt;
  }

  private ip(off: number): void {
    if (off >= this.buf.length) {
      this.pkt.truncated = true;
      this.setPayload(off);
      return;
    }
    const v = this.buf[off] >> 4;
    if (v === 4) this.ipv4(off);
    else if (v === 6) this.ipv6(off);
    else {
      this.pkt.notes.push(`unknown IP version ${v}`);
      this.setPayload(off);
    }
  }

  private eth(off: number): void {
    let { b, truncated } = sliceOrZeroFill(this.buf, off, ETH_HLEN);
    const vlan: ParsedEth['vlan'] = [];
    let typeOff = 12;
    let type = b.readUInt16BE(12);
    while ((type === ETH_P_8021Q || type === ETH_P_8021AD) && vlan.length < 4) {
      const w = sliceOrZeroFill(this.buf, off + typeOff, 6);
      truncated ||= w.truncated;
      const tci = w.b.readUInt16BE(2);
      vlan.push({ tpid: type, id: tci & 0x0fff, pcp: tci >> 13, dei: (tci & 0x1000) !== 0 });
      typeOff += 4;
      type = w.b.readUInt16BE(4);
    }
    const hlen = typeOff + 2;
    this.add<ParsedEth>({
      kind: 'eth',
      offset: off,
      headerLength: hlen,
      truncated,
      dst: formatMac(b.subarray(0, 6)),
      src: formatMac(b.subarray(6, 12)),
      type,
      vlan,
    });
    if (truncated) return this.setPayload(Math.min(off + hlen, this.buf.length));
    if (type === ETH_P_IP) this.ipv4(off + hlen);
    else if (type === ETH_P_IPV6) this.ipv6(off + hlen);
    else this.setPayload(off + hlen);
  }

  private ipv4(off: number): void {
    const base = sliceOrZeroFill(this.buf, off, IPV4_HLEN);
    const b0 = base.b;
    const ihl = b0[0] & 0x0f;
    const hlen = Math.max(ihl * 4, IPV4_HLEN);
    const { b, truncated } = sliceOrZeroFill(this.buf, off, hlen);
    const totalLength = b.readUInt16BE(2);
    const fragWord = b.readUInt16BE(6);
    const l: ParsedIpv4 = this.add<ParsedIpv4>({
      kind: 'ipv4',
      offset: off,
      headerLength: hlen,
      truncated,
      version: b[0] >> 4,
      ihl,
      tos: b[1],
      dscp: b[1] >> 2,
      ecn: b[1] & 3,
      totalLength,
      id: b.readUInt16BE(4),
      reservedFlag: (fragWord & 0x8000) !== 0,
      df: (fragWord & 0x4000) !== 0,
      mf: (fragWord & 0x2000) !== 0,
      fragOffset: fragWord & 0x1fff,
      ttl: b[8],
      protocol: b[9],
      checksum: b.readUInt16BE(10),
      src: bufferToIp(b.subarray(12, 16)),
      dst: bufferToIp(b.subarray(16, 20)),
      options: Buffer.from(b.subarray(20, hlen)),
      payloadLength: 0,
    });
    if (ihl < 5) this.pkt.notes.push(`ipv4: bad IHL ${ihl}`);
    if (l.version !== 4) this.pkt.notes.push(`ipv4: version field is ${l.version}`);
    if (totalLength < hlen) this.pkt.notes.push(`ipv4: total length ${totalLength} < header length ${hlen}`);
    this.bound(off + Math.max(totalLength, hlen), 'ipv4');
    const pOff = off + hlen;
    l.payloadLength = Math.max(0, Math.min(this.end, this.buf.length) - pOff);
    if (truncated || ihl < 5) return this.setPayload(Math.min(pOff, this.buf.length));
    if (l.fragOffset !== 0) {
      this.pkt.notes.push('ipv4: non-first fragment; transport header not decoded');
      return this.setPayload(pOff);
    }
    this.transport(l.protocol, pOff, 4);
  }

  private ipv6(off: number): void {
    const { b, truncated } = sliceOrZeroFill(this.buf, off, IPV6_HLEN);
    const w0 = b.readUInt32BE(0);
    const payloadLength = b.readUInt16BE(4);
    const l = this.add<ParsedIpv6>({
      kind: 'ipv6',
      offset: off,
      headerLength: IPV6_HLEN,
      truncated,
      version: w0 >>> 28,
      trafficClass: (w0 >>> 20) & 0xff,
      flowLabel: w0 & 0xfffff,
      payloadLength,
      nextHeader: b[6],
      upperProtocol: b[6],
      hopLimit: b[7],
      src: bufferToIp(b.subarray(8, 24)),
      dst: bufferToIp(b.subarray(24, 40)),
      extHeaders: [],
    });
    if (l.version !== 6) this.pkt.notes.push(`ipv6: version field is ${l.version}`);
    this.bound(off + IPV6_HLEN + payloadLength, 'ipv6');
    if (truncated) return this.setPayload(Math.min(off + IPV6_HLEN, this.buf.length));
    let nh = l.nextHeader;
    let p = off + IPV6_HLEN;
    while (IPV6_EXT_HEADERS.has(nh)) {
      const w = sliceOrZeroFill(this.buf, p, 8);
      if (w.truncated) {
        this.pkt.truncated = true;
        return this.setPayload(Math.min(p, this.buf.length));
      }
      const len = nh === 44 ? 8 : (w.b[1] + 1) * 8;
      l.extHeaders.push({ type: nh, length: len });
      if (nh === 44 && (w.b.readUInt16BE(2) & 0xfff8) !== 0) {
        this.pkt.notes.push('ipv6: non-first fragment; transport header not decoded');
        l.upperProtocol = w.b[0];
        return this.setPayload(p + len);
      }
      nh = w.b[0];
      p += len;
    }
    l.upperProtocol = nh;
    this.transport(nh, p, 6);
  }

  private transport(proto: number, off: number, ipVersion: 4 | 6): void {
    if (proto === IPPROTO_TCP) this.tcp(off);
    else if (proto === IPPROTO_UDP) this.udp(off);
    else if (proto === IPPROTO_ICMP && ipVersion === 4) this.icmp(off, 'icmpv4');
    else if (proto === IPPROTO_ICMPV6 && ipVersion === 6) this.icmp(off, 'icmpv6');
    else if (proto === IPPROTO_IPIP) this.ipv4(off);
    else if (proto === IPPROTO_IPV6) this.ipv6(off);
    else this.setPayload(off);
  }

  private tcp(off: number): void {
    const base = sliceOrZeroFill(this.buf, off, TCP_HLEN);
    const dataOffset = base.b[12] >> 4;
    const hlen = Math.max(dataOffset * 4, TCP_HLEN);
    const { b, truncated } = sliceOrZeroFill(this.buf, off, hlen);
    const flagsByte = b[13];
    this.add<ParsedTcp>({
      kind: 'tcp',
      offset: off,
      headerLength: hlen,
      truncated,
      sport: b.readUInt16BE(0),
      dport: b.readUInt16BE(2),
      seq: b.readUInt32BE(4),
      ack: b.readUInt32BE(8),
      dataOffset,
      flags: tcpFlagsFromByte(flagsByte),
      flagsByte,
      window: b.readUInt16BE(14),
      checksum: b.readUInt16BE(16),
      urgentPointer: b.readUInt16BE(18),
      options: Buffer.from(b.subarray(20, hlen)),
    });
    if (dataOffset < 5 && this.buf.length > off + 12) this.pkt.notes.push(`tcp: bad data offset ${dataOffset}`);
    this.setPayload(Math.min(off + hlen, this.buf.length));
  }

  private udp(off: number): void {
    const { b, truncated } = sliceOrZeroFill(this.buf, off, UDP_HLEN);
    const l = this.add<ParsedUdp>({
      kind: 'udp',
      offset: off,
      headerLength: UDP_HLEN,
      truncated,
      sport: b.readUInt16BE(0),
      dport: b.readUInt16BE(2),
      length: b.readUInt16BE(4),
      checksum: b.readUInt16BE(6),
    });
    if (truncated) return this.setPayload(Math.min(off + UDP_HLEN, this.buf.length));
    const ipEnd = this.end;
    if (l.length < UDP_HLEN) this.pkt.notes.push(`udp: length ${l.length} < 8`);
    else if (!this.pkt.quoted && off + l.length !== ipEnd) {
      this.pkt.notes.push(`udp: length ${l.length} disagrees with IP payload length ${ipEnd - off}`);
    }
    if (l.length >= UDP_HLEN) this.bound(off + l.length, 'udp');
    const pOff = off + UDP_HLEN;
    if (this.opts.vxlanPorts.includes(l.dport)) this.vxlan(pOff);
    else this.setPayload(pOff);
  }

  private icmp(off: number, kind: 'icmpv4' | 'icmpv6'): void {
    const { b, truncated } = sliceOrZeroFill(this.buf, off, ICMP_HLEN);
    const type = b[0];
    const code = b[1];
    const rest = b.readUInt32BE(4);
    const v4 = kind === 'icmpv4';
    const isError = v4 ? ICMPV4_ERROR_TYPES.has(type) : ICMPV6_ERROR_TYPES.has(type);
    const l: ParsedIcmpv4 | ParsedIcmpv6 = {
      kind,
      offset: off,
      headerLength: ICMP_HLEN,
      truncated,
      type,
      code,
      typeName: icmpTypeName(v4 ? ICMPV4_TYPES : ICMPV6_TYPES, type),
      checksum: b.readUInt16BE(2),
      rest,
      isError,
    };
    const echo = v4 ? type === 0 || type === 8 : type === 128 || type === 129;
    if (echo) {
      l.id = rest >>> 16;
      l.seq = rest & 0xffff;
    }
    if (v4 && type === 3 && code === 4) l.mtu = rest & 0xffff;
    if (!v4 && type === 2) l.mtu = rest;
    this.add(l);
    const pOff = Math.min(off + ICMP_HLEN, this.buf.length);
    this.setPayload(pOff);
    if (truncated || !isError) return;
    // Quoted packet: bounded by this level's end, expected to be truncated.
    const end = Math.min(this.end, this.buf.length);
    if (pOff >= end) return;
    const inner = new Parser(this.buf, pOff, end, true, this.opts);
    this.pkt.inner = inner.run('ip', pOff);
  }

  private vxlan(off: number): void {
    const { b, truncated } = sliceOrZeroFill(this.buf, off, VXLAN_HLEN);
    const w0 = b.readUInt32BE(0);
    const w1 = b.readUInt32BE(4);
    this.add<ParsedVxlan>({
      kind: 'vxlan',
      offset: off,
      headerLength: VXLAN_HLEN,
      truncated,
      flags: w0 >>> 24,
      vniValid: (w0 >>> 24 & 0x08) !== 0,
      reserved1: w0 & 0xffffff,
      vni: w1 >>> 8,
      reserved2: w1 & 0xff,
    });
    const pOff = Math.min(off + VXLAN_HLEN, this.buf.length);
    this.setPayload(pOff);
    if (truncated) return;
    const end = Math.min(this.end, this.buf.length);
    if (pOff >= end) return;
    const inner = new Parser(this.buf, pOff, end, this.pkt.quoted, this.opts);
    this.pkt.inner = inner.run('eth', pOff);
    if (this.pkt.inner.truncated) this.pkt.truncated = true;
  }
}

/**
 * Decode a packet. Never throws on malformed input: headers cut short are
 * zero-filled and marked `truncated`; anomalies go to `notes`.
 */
export function parsePacket(buf: Buffer, opts: ParseOptions = {}): ParsedPacket {
  const p = new Parser(buf, 0, buf.length, false, { vxlanPorts: opts.vxlanPorts ?? VXLAN_PORTS });
  return p.run(opts.first ?? 'eth', 0);
}

/** One-line human summary, e.g. for assertion messages. */
export function describePacket(p: ParsedPacket): string {
  const parts: string[] = [];
  for (const l of p.layers) {
    switch (l.kind) {
      case 'eth':
        parts.push(`eth ${l.src}>${l.dst}${l.vlan.map((v) => ` vlan ${v.id}`).join('')} type 0x${l.type.toString(16).padStart(4, '0')}`);
        break;
      case 'ipv4':
        parts.push(`ipv4 ${l.src}>${l.dst} ttl ${l.ttl} proto ${l.protocol} len ${l.totalLength}${l.df ? ' DF' : ''}${l.mf ? ' MF' : ''}`);
        break;
      case 'ipv6':
        parts.push(`ipv6 ${l.src}>${l.dst} hlim ${l.hopLimit} nh ${l.nextHeader} plen ${l.payloadLength}`);
        break;
      case 'tcp':
        parts.push(`tcp ${l.sport}>${l.dport} [${l.flags.join(',')}] seq ${l.seq} ack ${l.ack}`);
        break;
      case 'udp':
        parts.push(`udp ${l.sport}>${l.dport} len ${l.length}`);
        break;
      case 'icmpv4':
      case 'icmpv6':
        parts.push(`${l.kind} ${l.typeName ?? l.type}/${l.code}${l.id !== undefined ? ` id ${l.id} seq ${l.seq}` : ''}${l.mtu !== undefined ? ` mtu ${l.mtu}` : ''}`);
        break;
      case 'vxlan':
        parts.push(`vxlan vni ${l.vni}`);
        break;
    }
  }
  let s = parts.join(' | ');
  if (p.payload.length > 0 && !p.inner) s += ` | ${p.payload.length}B payload`;
  if (p.truncated) s += ' (truncated)';
  if (p.inner) s += ` || inner: ${describePacket(p.inner)}`;
  return s;
}

// ---------------------------------------------------------------------------
// Checksum verification
// ---------------------------------------------------------------------------

export interface ChecksumReport {
  ok: boolean;
  errors: string[];
  /** What was checked, e.g. ['ipv4', 'tcp', 'inner.ipv4', ...]. */
  checked: string[];
}

/** The checksum a field should hold: computed over `data` with the field at `csumOff` zeroed. */
function expectedChecksum(data: Buffer, csumOff: number, initial: number): number {
  const copy = Buffer.from(data);
  copy.writeUInt16BE(0, csumOff);
  return internetChecksum(copy, initial);
}

const hex4 = (n: number): string => `0x${n.toString(16).padStart(4, '0')}`;

function verifyLevel(whole: Buffer, p: ParsedPacket, path: string, rep: ChecksumReport): void {
  const buf = whole.subarray(0, p.limit);
  const where = (k: string): string => (path ? `${path}.${k}` : k);
  let ip: ParsedIpv4 | ParsedIpv6 | undefined;
  let ipEnd = buf.length;
  for (const l of p.layers) {
    if (l.truncated && (l.kind === 'eth' || l.kind === 'ipv4' || l.kind === 'ipv6' || l.kind === 'vxlan')) {
      // Nothing after a cut-short header was decoded. Expected inside ICMP quotes.
      if (!p.quoted) rep.errors.push(`${where(l.kind)}: header truncated, checksums not verifiable`);
      break;
    }
    if (l.kind === 'ipv4') {
      ip = l;
      ipEnd = l.offset + l.totalLength;
      const hdr = buf.subarray(l.offset, l.offset + l.headerLength);
      rep.checked.push(where('ipv4'));
      if (internetChecksum(hdr) !== 0) {
        rep.errors.push(
          `${where('ipv4')}: header checksum ${hex4(l.checksum)} is wrong (expected ${hex4(expectedChecksum(hdr, 10, 0))})`,
        );
      }
      continue;
    }
    if (l.kind === 'ipv6') {
      ip = l;
      ipEnd = l.offset + IPV6_HLEN + l.payloadLength;
      continue;
    }
    if (l.kind !== 'tcp' && l.kind !== 'udp' && l.kind !== 'icmpv4' && l.kind !== 'icmpv6') continue;
    const name = where(l.kind);
    if (!ip) {
      rep.errors.push(`${name}: not inside IP, checksum not verifiable`);
      continue;
    }
    if (ip.kind === 'ipv4' && (ip.mf || ip.fragOffset !== 0)) continue; // checksum spans fragments
    if (ip.kind === 'ipv6' && ip.extHeaders.some((e) => e.type === 44)) continue;
    let end = ipEnd;
    if (l.kind === 'udp' && l.length >= UDP_HLEN) end = l.offset + l.length;
    if (end > buf.length || l.truncated) {
      // A quoted (ICMP error) packet is normally cut short: nothing to verify.
      if (!p.quoted) rep.errors.push(`${name}: packet truncated (${end - buf.length} bytes missing), checksum not verifiable`);
      continue;
    }
    const seg = buf.subarray(l.offset, end);
    rep.checked.push(name);
    const v6 = ip.kind === 'ipv6';
    if (l.kind === 'udp' && l.checksum === 0) {
      if (v6) rep.errors.push(`${name}: checksum 0 is not allowed over IPv6`);
      continue;
    }
    let initial = 0;
    if (l.kind !== 'icmpv4') {
      const proto = l.kind === 'tcp' ? IPPROTO_TCP : l.kind === 'udp' ? IPPROTO_UDP : IPPROTO_ICMPV6;
      initial = pseudoHeaderSum(ip.src, ip.dst, proto, seg.length);
    }
    if (l.kind === 'icmpv4' && v6) rep.errors.push(`${name}: ICMPv4 inside IPv6`);
    if (l.kind === 'icmpv6' && !v6) rep.errors.push(`${name}: ICMPv6 inside IPv4`);
    const csumOff = l.kind === 'tcp' ? 16 : l.kind === 'udp' ? 6 : 2;
    if (internetChecksum(seg, initial) !== 0) {
      let exp = expectedChecksum(seg, csumOff, initial);
      if (l.kind === 'udp' && exp === 0) exp = 0xffff;
      rep.errors.push(`${name}: checksum ${hex4(l.checksum)} is wrong (expected ${hex4(exp)})`);
    }
  }
  if (p.inner) verifyLevel(whole, p.inner, where('inner'), rep);
}

/**
 * Verify IPv4 header, TCP, UDP, ICMPv4 and ICMPv6 checksums, recursively into
 * VXLAN inner frames and ICMP-quoted packets (quoted transport headers are
 * usually truncated and then skipped). Truncation of the outer packet is an error.
 */
export function verifyChecksums(buf: Buffer, opts: ParseOptions = {}): ChecksumReport {
  const rep: ChecksumReport = { ok: true, errors: [], checked: [] };
  verifyLevel(buf, parsePacket(buf, opts), '', rep);
  rep.ok = rep.errors.length === 0;
  return rep;
}

/**
 * Recompute every checksum (IPv4 header, TCP, UDP, ICMPv4/v6) of a packet,
 * innermost first, leaving all other bytes alone — e.g. to "fix up" a packet
 * after hand-editing an address. UDP-over-IPv4 checksums of 0 stay 0; quoted
 * (truncated) transport headers inside ICMP errors are left as they are.
 */
export function fixChecksums(buf: Buffer, opts: ParseOptions = {}): Buffer {
  const out = Buffer.from(buf);
  const fixLevel = (p: ParsedPacket): void => {
    if (p.inner) fixLevel(p.inner); // inner first: outer checksums cover it
    const data = out.subarray(0, p.limit);
    let ip: ParsedIpv4 | ParsedIpv6 | undefined;
    let ipEnd = data.length;
    for (const l of p.layers) {
      if (l.kind === 'ipv4' || l.kind === 'ipv6') {
        ip = l;
        ipEnd = l.kind === 'ipv4' ? l.offset + l.totalLength : l.offset + IPV6_HLEN + l.payloadLength;
        continue;
      }
      if (!ip || (l.kind !== 'tcp' && l.kind !== 'udp' && l.kind !== 'icmpv4' && l.kind !== 'icmpv6')) continue;
      const end = l.kind === 'udp' && l.length >= UDP_HLEN ? l.offset + l.length : ipEnd;
      if (end > data.length || l.truncated) continue;
      if (l.kind === 'udp' && l.checksum === 0 && ip.kind === 'ipv4') continue;
      const seg = data.subarray(l.offset, end);
      const csumOff = l.kind === 'tcp' ? 16 : l.kind === 'udp' ? 6 : 2;
      seg.writeUInt16BE(0, csumOff);
      let initial = 0;
      if (l.kind !== 'icmpv4') {
        const proto = l.kind === 'tcp' ? IPPROTO_TCP : l.kind === 'udp' ? IPPROTO_UDP : IPPROTO_ICMPV6;
        initial = pseudoHeaderSum(ip.src, ip.dst, proto, seg.length);
      }
      let c = internetChecksum(seg, initial);
      if (l.kind === 'udp' && c === 0) c = 0xffff;
      seg.writeUInt16BE(c, csumOff);
    }
    for (const l of p.layers) {
      if (l.kind === 'ipv4' && !l.truncated) {
        const hdr = data.subarray(l.offset, l.offset + l.headerLength);
        hdr.writeUInt16BE(0, 10);
        hdr.writeUInt16BE(internetChecksum(hdr), 10);
      }
    }
  };
  fixLevel(parsePacket(out, opts));
  return out;
}
