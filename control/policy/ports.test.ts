import { describe, expect, it } from 'vitest';
import { entryKeys, prefixContains, rangeToPrefixes } from './ports.js';
import { rng } from './testmodel.js';


/** Minimal exact prefix cover size, computed independently by walking the 16-bit trie. */
function minCover(lo: number, hi: number, base = 0, size = 65536): number {
  const end = base + size - 1;
  if (end < lo || base > hi) return 0;
  if (base >= lo && end <= hi) return 1;
  return minCover(lo, hi, base, size / 2) + minCover(lo, hi, base + size / 2, size / 2);
}

function check(lo: number, hi: number) {
  const ps = rangeToPrefixes(lo, hi);
  // exactly [lo, hi]: sizes add up, blocks are aligned, contiguous, in order
  let next = lo;
  for (const p of ps) {
    const size = 2 ** (16 - p.bits);
    expect(p.port % size, `aligned ${JSON.stringify(p)}`).toBe(0);
    expect(p.port).toBe(next);
    next += size;
  }
  expect(next - 1).toBe(hi);
  expect(ps.length).toBe(minCover(lo, hi));
  // and membership agrees at the edges
  for (const port of [lo - 1, lo, hi, hi + 1]) {
    if (port < 0 || port > 65535) continue;
    expect(ps.some((p) => prefixContains(p, port)), `port ${port} in ${lo}-${hi}`).toBe(port >= lo && port <= hi);
  }
}

describe('rangeToPrefixes', () => {
  it('known cases', () => {
    expect(rangeToPrefixes(80, 80)).toEqual([{ port: 80, bits: 16 }]);
    expect(rangeToPrefixes(80, 81)).toEqual([{ port: 80, bits: 15 }]);
    expect(rangeToPrefixes(0, 65535)).toEqual([{ port: 0, bits: 0 }]);
    expect(rangeToPrefixes(1, 65535)).toHaveLength(16);
    expect(rangeToPrefixes(1, 65534)).toHaveLength(30); // the worst case
    expect(rangeToPrefixes(1024, 2047)).toEqual([{ port: 1024, bits: 6 }]);
  });

  it('random ranges: exact cover with the minimal number of prefixes', () => {
    const r = rng(42);
    let worst = 0;
    for (let i = 0; i < 3000; i++) {
      const a = Math.floor(r() * 65536);
      const b = i % 3 === 0 ? Math.min(65535, a + Math.floor(r() * 64)) : Math.floor(r() * 65536);
      const [lo, hi] = a <= b ? [a, b] : [b, a];
      check(lo, hi);
      worst = Math.max(worst, rangeToPrefixes(lo, hi).length);
    }
    expect(worst).toBeLessThanOrEqual(30);
  });

  it('rejects bad ranges', () => {
    expect(() => rangeToPrefixes(81, 80)).toThrow(/bad port range/);
    expect(() => rangeToPrefixes(1, 65536)).toThrow(/bad port range/);
    expect(() => rangeToPrefixes(1.5, 2)).toThrow(/bad port range/);
  });

  it('entryKeys: prefix lengths as in weir_policy4', () => {
    expect(entryKeys({ identity: 5, proto: 0, port: 0, endPort: 0 })).toEqual([{ prefixlen: 64, identity: 5, proto: 0, port: 0 }]);
    expect(entryKeys({ identity: 5, proto: 6, port: 0, endPort: 0 })).toEqual([{ prefixlen: 80, identity: 5, proto: 6, port: 0 }]);
    expect(entryKeys({ identity: 5, proto: 17, port: 53, endPort: 53 })).toEqual([{ prefixlen: 96, identity: 5, proto: 17, port: 53 }]);
    expect(entryKeys({ identity: 5, proto: 6, port: 8000, endPort: 8003 })).toEqual([{ prefixlen: 94, identity: 5, proto: 6, port: 8000 }]);
  });
});
