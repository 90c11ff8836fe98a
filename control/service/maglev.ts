// Maglev consistent hashing (Eisenbud et al., NSDI 2016, section 3.4): the
// lookup-table population algorithm. Each backend gets a permutation of the
// M slots from two independent hashes of its identity (offset, skip); the
// backends take turns claiming their next free preferred slot until the table
// is full. Every node computes the same table from the same backend set, so a
// flow hashes to the same backend wherever it lands.
//
// Pure: no maps, no I/O. The reconciler writes the result into an inner array.

/** Default table size (bpf/include/maps.h MAGLEV_M_DEFAULT). A prime. */
export const MAGLEV_M_DEFAULT = 16381;
/** The larger prime offered for services with many backends. */
export const MAGLEV_M_LARGE = 65521;

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** MurmurHash3 x86_32 over the UTF-8 bytes of `s`. Two seeds give the two
 *  independent hashes the paper asks for. */
export function murmur3(s: string, seed: number): number {
  const data = Buffer.from(s, 'utf8');
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const nblocks = data.length >>> 2;
  for (let i = 0; i < nblocks; i++) {
    let k = data.readUInt32LE(i * 4);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  // Tail: the last 1..3 bytes, little-endian.
  const tail = nblocks * 4;
  const rest = data.length & 3;
  if (rest > 0) {
    let k = 0;
    for (let i = rest - 1; i >= 0; i--) k = (k << 8) | data[tail + i];
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= data.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// Fixed seeds: changing them reshuffles every table in the cluster.
const OFFSET_SEED = 0x5745_4952; // "WEIR"
const SKIP_SEED = 0x4d41_474c; // "MAGL"

/** The permutation parameters of one backend identity for table size M. */
export function maglevPermutation(identity: string, m: number): { offset: number; skip: number } {
  return { offset: murmur3(identity, OFFSET_SEED) % m, skip: (murmur3(identity, SKIP_SEED) % (m - 1)) + 1 };
}

/**
 * Populates a Maglev lookup table of size `m` for `backends` (identities such
 * as "10.0.0.1:8080/6", unique). Entry i of the result is an index into
 * `backends`. The table depends only on the SET of identities: they are
 * processed in sorted order, so the order they are given in does not matter.
 * An empty backend list gives an empty table (the service rejects).
 */
export function maglevTable(backends: readonly string[], m: number = MAGLEV_M_DEFAULT): Uint32Array {
  if (!isPrime(m)) throw new RangeError(`maglev: table size M=${m} must be a prime`);
  const n = backends.length;
  if (n === 0) return new Uint32Array(0);
  if (n > m) throw new RangeError(`maglev: ${n} backends do not fit a table of M=${m}`);
  // Canonical order: sort indices by identity.
  const order = backends.map((_, i) => i).sort((a, b) => (backends[a] < backends[b] ? -1 : backends[a] > backends[b] ? 1 : 0));
  for (let i = 1; i < n; i++) {
    if (backends[order[i]] === backends[order[i - 1]]) throw new RangeError(`maglev: duplicate backend identity ${backends[order[i]]}`);
  }
  const offset = new Uint32Array(n);
  const skip = new Uint32Array(n);
  const next = new Uint32Array(n); // the position each backend tries next
  for (let r = 0; r < n; r++) {
    const p = maglevPermutation(backends[order[r]], m);
    offset[r] = p.offset;
    skip[r] = p.skip;
    next[r] = p.offset;
  }
  const EMPTY = 0xffffffff;
  const table = new Uint32Array(m).fill(EMPTY);
  let filled = 0;
  // Round robin over backends; each claims the first free slot of its permutation.
  for (;;) {
    for (let r = 0; r < n; r++) {
      let c = next[r];
      while (table[c] !== EMPTY) {
        c += skip[r];
        if (c >= m) c -= m;
      }
      table[c] = order[r];
      c += skip[r];
      if (c >= m) c -= m;
      next[r] = c;
      if (++filled === m) return table;
    }
  }
}

/** Slots per backend index in a table (for tests and diagnostics). */
export function slotCounts(table: Uint32Array, n: number): number[] {
  const counts = new Array<number>(n).fill(0);
  for (const b of table) counts[b]++;
  return counts;
}
