import { describe, expect, it } from 'vitest';
import { MAGLEV_M_DEFAULT, MAGLEV_M_LARGE, isPrime, maglevPermutation, maglevTable, murmur3, slotCounts } from './maglev.js';

const ident = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8080/6`;
const backends = (n: number) => Array.from({ length: n }, (_, i) => ident(i));

/** Share of the slots NOT owned by backends[removed] that change owner when it goes away. */
function disruption(bs: string[], m: number, removed: number): { others: number; moved: number; orphaned: number } {
  const full = maglevTable(bs, m);
  const rest = bs.filter((_, i) => i !== removed);
  const after = maglevTable(rest, m);
  let others = 0;
  let moved = 0;
  let orphaned = 0;
  for (let s = 0; s < m; s++) {
    if (rest[after[s]] === undefined) orphaned++;
    if (full[s] === removed) continue;
    others++;
    if (rest[after[s]] !== bs[full[s]]) moved++;
  }
  return { others, moved, orphaned };
}

describe('maglev table', () => {
  it('uses prime table sizes only', () => {
    expect(isPrime(MAGLEV_M_DEFAULT)).toBe(true);
    expect(isPrime(MAGLEV_M_LARGE)).toBe(true);
    expect(() => maglevTable(['a'], 16380)).toThrow(/prime/);
  });

  it('murmur3 matches the reference vectors', () => {
    // Published MurmurHash3_x86_32 test vectors.
    expect(murmur3('', 0)).toBe(0);
    expect(murmur3('', 1)).toBe(0x514e28b7);
    expect(murmur3('hello', 0)).toBe(0x248bfa47);
    expect(murmur3('The quick brown fox jumps over the lazy dog', 0)).toBe(0x2e4ff723);
  });

  it('skip is in 1..M-1 and offset in 0..M-1', () => {
    for (const id of backends(200)) {
      const p = maglevPermutation(id, 7);
      expect(p.offset).toBeGreaterThanOrEqual(0);
      expect(p.offset).toBeLessThan(7);
      expect(p.skip).toBeGreaterThanOrEqual(1);
      expect(p.skip).toBeLessThan(7);
    }
  });

  it('no backends gives an empty table; duplicates and N > M are refused', () => {
    expect(maglevTable([], MAGLEV_M_DEFAULT).length).toBe(0);
    expect(() => maglevTable(['a', 'b', 'a'])).toThrow(/duplicate backend identity a/);
    expect(() => maglevTable(backends(8), 7)).toThrow(/do not fit/);
  });

  for (const m of [MAGLEV_M_DEFAULT, MAGLEV_M_LARGE]) {
    for (const n of [1, 2, 3, 10, 100, 1000]) {
      it(`M=${m} N=${n}: every backend gets floor(M/N) or ceil(M/N) slots`, () => {
        const t = maglevTable(backends(n), m);
        expect(t.length).toBe(m);
        const counts = slotCounts(t, n);
        expect(counts.reduce((a, b) => a + b, 0)).toBe(m);
        for (const c of counts) {
          expect(c === Math.floor(m / n) || c === Math.ceil(m / n)).toBe(true);
        }
      });
    }
  }

  it('same input gives the identical table; input order does not matter', () => {
    const bs = backends(57);
    const a = maglevTable(bs);
    const b = maglevTable([...bs]);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    // Reverse and shuffle deterministically: compare tables by identity.
    const shuffled = [...bs].reverse();
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = (i * 7919) % (i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
    }
    const c = maglevTable(shuffled);
    for (let s = 0; s < a.length; s++) expect(shuffled[c[s]]).toBe(bs[a[s]]);
  });

  // Bounds just above the measured worst case over the removals tried
  // (figures in control/service/README.md).
  const bounds: Record<number, Record<number, number>> = {
    [MAGLEV_M_DEFAULT]: { 3: 0.001, 10: 0.008, 100: 0.017, 1000: 0.008 },
    [MAGLEV_M_LARGE]: { 3: 0.0005, 10: 0.004, 100: 0.008, 1000: 0.008 },
  };
  for (const m of [MAGLEV_M_DEFAULT, MAGLEV_M_LARGE]) {
    for (const n of [3, 10, 100, 1000]) {
      it(`M=${m} N=${n}: removing a backend moves all its slots and few others`, () => {
        const bs = backends(n);
        const trials = Math.min(n, n === 1000 ? 20 : 100);
        let worst = 0;
        for (let k = 0; k < trials; k++) {
          const removed = Math.floor((k * n) / trials);
          const d = disruption(bs, m, removed);
          expect(d.orphaned).toBe(0); // every slot of the removed backend went to a remaining one
          worst = Math.max(worst, d.moved / d.others);
        }
        expect(worst).toBeLessThan(bounds[m][n]);
        expect(worst).toBeGreaterThan(0); // sanity: the measurement sees movement at all
      });
    }
  }
});
