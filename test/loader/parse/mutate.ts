// Deterministic input mutation for fuzz-style robustness tests. Reusable by
// any parser test: `for (const m of mutations(buf, seed, 1000)) ...`.

/** mulberry32: a tiny seeded PRNG returning floats in [0, 1) (the bench's, shared). */
export { rng as mulberry32 } from '../../../bench/stats.js';
import { rng as mulberry32 } from '../../../bench/stats.js';

export type MutationKind =
  | 'bitflip'
  | 'bitflips'
  | 'byte'
  | 'u16'
  | 'u32'
  | 'u64'
  | 'truncate'
  | 'dup-overwrite'
  | 'dup-insert'
  | 'zero-range'
  | 'multi';

export const MUTATION_KINDS: readonly MutationKind[] = [
  'bitflip', 'bitflips', 'byte', 'u16', 'u32', 'u64', 'truncate', 'dup-overwrite', 'dup-insert', 'zero-range', 'multi',
];

/**
 * Yields `count` mutated copies of `buf` (the input is never modified).
 * The same (buf, seed, count) always yields the same sequence.
 * Positions are biased towards the first 64 bytes (headers) and the last
 * few KiB (where clang puts the ELF section header table), the rest uniform.
 */
export function* mutations(buf: Buffer, seed: number, count: number): Generator<Buffer> {
  const rnd = mulberry32(seed);
  for (let i = 0; i < count; i++) yield mutateOnce(buf, rnd);
}

/** Like mutations() but also reports which kind of mutation produced each buffer. */
export function* labelledMutations(buf: Buffer, seed: number, count: number): Generator<{ kind: MutationKind; data: Buffer }> {
  const rnd = mulberry32(seed);
  for (let i = 0; i < count; i++) {
    const kind = MUTATION_KINDS[Math.floor(rnd() * MUTATION_KINDS.length)];
    yield { kind, data: apply(kind, Buffer.from(buf), rnd) };
  }
}

function mutateOnce(buf: Buffer, rnd: () => number): Buffer {
  const kind = MUTATION_KINDS[Math.floor(rnd() * MUTATION_KINDS.length)];
  return apply(kind, Buffer.from(buf), rnd);
}

const INTERESTING_U32 = [0, 1, 2, 4, 8, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

function int(rnd: () => number, n: number): number {
  return n <= 0 ? 0 : Math.floor(rnd() * n);
}

function pos(buf: Buffer, rnd: () => number, width = 1): number {
  const max = Math.max(0, buf.length - width);
  const r = rnd();
  let p: number;
  if (r < 0.2) p = int(rnd, Math.min(64, max + 1));
  else if (r < 0.4) p = max - int(rnd, Math.min(4096, max + 1));
  else p = int(rnd, max + 1);
  return Math.max(0, Math.min(max, p));
}

function interesting(buf: Buffer, rnd: () => number): number {
  const r = rnd();
  if (r < 0.6) return INTERESTING_U32[int(rnd, INTERESTING_U32.length)];
  if (r < 0.75) return (buf.length + int(rnd, 9) - 4) >>> 0;
  if (r < 0.9) return int(rnd, 256);
  return int(rnd, 0x100000000);
}

function apply(kind: MutationKind, b: Buffer, rnd: () => number): Buffer {
  if (b.length === 0) return b;
  switch (kind) {
    case 'bitflip': {
      const p = pos(b, rnd);
      b[p] ^= 1 << int(rnd, 8);
      return b;
    }
    case 'bitflips': {
      const n = 2 + int(rnd, 7);
      for (let i = 0; i < n; i++) {
        const p = pos(b, rnd);
        b[p] ^= 1 << int(rnd, 8);
      }
      return b;
    }
    case 'byte': {
      const p = pos(b, rnd);
      const r = rnd();
      b[p] = r < 0.33 ? 0 : r < 0.66 ? 0xff : int(rnd, 256);
      return b;
    }
    case 'u16': {
      if (b.length < 2) return b;
      const p = pos(b, rnd, 2) & ~1;
      b.writeUInt16LE(interesting(b, rnd) & 0xffff, p);
      return b;
    }
    case 'u32': {
      if (b.length < 4) return b;
      const p = pos(b, rnd, 4) & ~3;
      b.writeUInt32LE(interesting(b, rnd), p);
      return b;
    }
    case 'u64': {
      if (b.length < 8) return b;
      const p = pos(b, rnd, 8) & ~7;
      const r = rnd();
      const v = r < 0.3 ? 0xffffffffffffffffn : r < 0.5 ? 1n << BigInt(32 + int(rnd, 32)) : BigInt(interesting(b, rnd));
      b.writeBigUInt64LE(v, p);
      return b;
    }
    case 'truncate':
      return b.subarray(0, int(rnd, b.length));
    case 'dup-overwrite': {
      const len = 1 + int(rnd, 128);
      const src = int(rnd, b.length);
      const dst = pos(b, rnd);
      b.copy(b, dst, src, Math.min(b.length, src + len));
      return b;
    }
    case 'dup-insert': {
      const len = 1 + int(rnd, 128);
      const src = int(rnd, b.length);
      const dst = pos(b, rnd);
      return Buffer.concat([b.subarray(0, dst), b.subarray(src, Math.min(b.length, src + len)), b.subarray(dst)]);
    }
    case 'zero-range': {
      const p = pos(b, rnd);
      b.fill(0, p, Math.min(b.length, p + 1 + int(rnd, 64)));
      return b;
    }
    case 'multi': {
      let out = b;
      const n = 2 + int(rnd, 3);
      for (let i = 0; i < n; i++) {
        const k = MUTATION_KINDS[int(rnd, MUTATION_KINDS.length - 1)]; // never nests 'multi'
        out = apply(k, out, rnd);
      }
      return out;
    }
  }
}
