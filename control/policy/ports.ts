// Port ranges as LPM prefixes over the 16-bit port (weir_policy4 keys
// prefixlen 80 + bits). The greedy cover by maximal aligned blocks is the
// minimal exact prefix cover of a range; worst case 30 prefixes (e.g. 1-65534).

export interface PortPrefix {
  /** First port of the block (its low 16 - bits bits are zero). */
  port: number;
  /** Prefix length within the port, 0..16 (16 = exactly `port`). */
  bits: number;
}

export function rangeToPrefixes(port: number, endPort: number): PortPrefix[] {
  if (!Number.isInteger(port) || !Number.isInteger(endPort) || port < 0 || endPort > 65535 || port > endPort) {
    throw new RangeError(`bad port range ${port}-${endPort} (need 0 <= port <= endPort <= 65535)`);
  }
  const out: PortPrefix[] = [];
  let lo = port;
  while (lo <= endPort) {
    // the largest aligned block starting at lo that stays within endPort
    let size = lo === 0 ? 65536 : lo & -lo;
    while (lo + size - 1 > endPort) size >>>= 1;
    out.push({ port: lo, bits: 16 - Math.log2(size) });
    lo += size;
  }
  return out;
}

/** Whether `port` lies in the prefix. */
export function prefixContains(p: PortPrefix, port: number): boolean {
  const shift = 16 - p.bits;
  return port >>> shift === p.port >>> shift;
}

/** One weir_policy4 key (without policy_id): prefixlen counts from policy_id. */
export interface PolicyKeyParts {
  prefixlen: number;
  identity: number;
  proto: number;
  /** Host byte order; the writer stores it big-endian. */
  port: number;
}

/**
 * The LPM keys of one PolicyEntry: proto 0 -> one key at 64 (any protocol and
 * port); port 0 -> one key at 80 (the protocol, any port); otherwise the
 * prefixes of port..endPort at 80 + bits.
 */
export function entryKeys(e: { identity: number; proto: number; port: number; endPort: number }): PolicyKeyParts[] {
  if (e.proto === 0) return [{ prefixlen: 64, identity: e.identity, proto: 0, port: 0 }];
  if (e.port === 0) return [{ prefixlen: 80, identity: e.identity, proto: e.proto, port: 0 }];
  return rangeToPrefixes(e.port, e.endPort).map((p) => ({
    prefixlen: 80 + p.bits,
    identity: e.identity,
    proto: e.proto,
    port: p.port,
  }));
}
