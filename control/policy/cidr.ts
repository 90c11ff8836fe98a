// IPv4 addresses and CIDR prefixes (the ipcache is IPv4 only).

export interface Prefix4 {
  /** Network address as an unsigned 32-bit number (host bits zero). */
  addr: number;
  len: number;
}

export function parseIPv4(s: string): number | undefined {
  if (typeof s !== 'string') return undefined;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    if (m[i].length > 1 && m[i][0] === '0') return undefined; // no ambiguous leading zeros
    const o = Number(m[i]);
    if (o > 255) return undefined;
    v = v * 256 + o;
  }
  return v;
}

export function formatIPv4(v: number): string {
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

export function maskOf(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/** Parses "a.b.c.d/len" (host bits are masked off, as Kubernetes does). */
export function parseCidr(s: string): Prefix4 | undefined {
  if (typeof s !== 'string') return undefined;
  const i = s.indexOf('/');
  if (i < 0) return undefined;
  const addr = parseIPv4(s.slice(0, i));
  const lenS = s.slice(i + 1);
  if (addr === undefined || !/^\d{1,2}$/.test(lenS)) return undefined;
  const len = Number(lenS);
  if (len > 32) return undefined;
  return { addr: (addr & maskOf(len)) >>> 0, len };
}

export function isIPv6Cidr(s: string): boolean {
  return typeof s === 'string' && s.includes(':');
}

export function formatCidr(p: Prefix4): string {
  return `${formatIPv4(p.addr)}/${p.len}`;
}

export function prefixContainsAddr(p: Prefix4, addr: number): boolean {
  return ((addr & maskOf(p.len)) >>> 0) === p.addr;
}

/** outer ⊇ inner */
export function prefixCovers(outer: Prefix4, inner: Prefix4): boolean {
  return outer.len <= inner.len && prefixContainsAddr(outer, inner.addr);
}

export interface IpBlock {
  cidr: Prefix4;
  except: Prefix4[];
  /** Canonical "cidr except e1,e2" (excepts sorted, deduplicated). */
  canonical: string;
}

export interface IpBlockError {
  field: string;
  message: string;
}

/**
 * Validates a NetworkPolicyPeer.ipBlock: cidr a valid IPv4 CIDR, each except a
 * valid IPv4 CIDR strictly inside cidr. IPv6 blocks are reported as such
 * (`ipv6: true`): they cannot match an IPv4 address.
 */
export function parseIpBlock(
  b: { cidr?: string; except?: string[] } | undefined,
  field: string,
): { ok: true; block: IpBlock } | { ok: false; ipv6?: boolean; errors: IpBlockError[] } {
  if (!b || typeof b !== 'object') return { ok: false, errors: [{ field, message: 'must be an object' }] };
  if (typeof b.cidr !== 'string' || b.cidr === '') {
    return { ok: false, errors: [{ field: `${field}.cidr`, message: 'required' }] };
  }
  if (isIPv6Cidr(b.cidr)) {
    return { ok: false, ipv6: true, errors: [{ field: `${field}.cidr`, message: `IPv6 block ${b.cidr} unsupported (IPv4 only): matches nothing` }] };
  }
  const cidr = parseCidr(b.cidr);
  if (!cidr) return { ok: false, errors: [{ field: `${field}.cidr`, message: `invalid IPv4 CIDR ${JSON.stringify(b.cidr)}` }] };
  const errors: IpBlockError[] = [];
  const except: Prefix4[] = [];
  const ex = b.except ?? [];
  if (!Array.isArray(ex)) errors.push({ field: `${field}.except`, message: 'must be a list' });
  else
    ex.forEach((e, i) => {
      const p = parseCidr(e);
      if (!p) errors.push({ field: `${field}.except[${i}]`, message: `invalid IPv4 CIDR ${JSON.stringify(e)}` });
      else if (!(prefixCovers(cidr, p) && p.len > cidr.len)) {
        errors.push({ field: `${field}.except[${i}]`, message: `${e} is not strictly inside cidr ${b.cidr}` });
      } else except.push(p);
    });
  if (errors.length) return { ok: false, errors };
  const exStr = [...new Set(except.map(formatCidr))].sort(compareCidrStrings);
  const uniq = exStr.map((s) => parseCidr(s)!);
  const canonical = exStr.length ? `${formatCidr(cidr)} except ${exStr.join(',')}` : formatCidr(cidr);
  return { ok: true, block: { cidr, except: uniq, canonical } };
}

export function compareCidrStrings(a: string, b: string): number {
  const pa = parseCidr(a)!;
  const pb = parseCidr(b)!;
  return pa.addr - pb.addr || pa.len - pb.len;
}

/** Direct membership of an address in an ipBlock. */
export function ipBlockContains(b: IpBlock, addr: number): boolean {
  return prefixContainsAddr(b.cidr, addr) && !b.except.some((e) => prefixContainsAddr(e, addr));
}
