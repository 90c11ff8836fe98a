// Map key/value codecs driven by BTF: the map contract is defined once, in C
// (bpf/include/), and TypeScript reads its layout from the compiled object.
// A codec encodes plain objects into the exact bytes the C struct has (padding
// zeroed) and decodes them back. A layout generated at build time (see
// gen-types.ts) or written by hand is checked against the object's BTF field
// by field when the codec is made: a drift is an error, never a misread.
import type { Btf, BtfType } from './btf.js';
import { LoaderError } from './errors.js';

export type Value = number | bigint | boolean | Buffer | Value[] | { [field: string]: Value };

export interface FieldLayout {
  name: string;
  /** Byte offset in the outer type. */
  offset: number;
  /** Size in bytes (for bitfields: of the storage unit). */
  size: number;
  /** C-ish type, for messages: 'u32', 'struct proto_key', 'u8[16]'. */
  type: string;
  /** Bitfields only. */
  bitOffset?: number;
  bitSize?: number;
  signed?: boolean;
  /** Members of one union share a group; `alt` tells the members apart. */
  union?: { group: string; alt: number };
}

export interface Layout {
  name: string;
  size: number;
  fields: FieldLayout[];
}

/** What hand-written or generated code expects: size and each field's place. */
export interface ExpectedLayout {
  size: number;
  fields: Record<string, { offset: number; size: number }>;
}

export interface Codec<T = { [field: string]: Value }> {
  readonly name: string;
  readonly size: number;
  readonly layout: Layout;
  encode(value: T): Buffer;
  encodeInto(value: T, buf: Buffer, offset?: number): void;
  decode(buf: Buffer, offset?: number): T;
}

/** Finds a struct/union (or typedef of one) by 'struct foo', 'union foo' or 'foo'. */
export function findType(btf: Btf, ref: string | number): BtfType {
  if (typeof ref === 'number') return btf.type(ref);
  const m = /^(struct|union|enum)\s+(\S+)$/.exec(ref.trim());
  if (m) {
    const t = btf.find(m[1] as 'struct' | 'union' | 'enum', m[2]);
    if (!t) throw new LoaderError(`BTF has no ${m[1]} named ${m[2]}`);
    return t;
  }
  for (const kind of ['struct', 'union', 'typedef', 'enum', 'int'] as const) {
    const t = btf.find(kind, ref);
    if (t) return t;
  }
  throw new LoaderError(`BTF has no type named ${ref}`);
}

/** A layout as checkLayout expects it: size and each field's place. */
export function expectedLayoutOf(layout: Layout): ExpectedLayout {
  return { size: layout.size, fields: Object.fromEntries(layout.fields.map((f) => [f.name, { offset: f.offset, size: f.size }])) };
}

/** The flattened field list of a struct/union: nested anonymous members are lifted, as in C. */
export function layoutOf(btf: Btf, ref: string | number): Layout {
  const t = findType(btf, ref);
  const r = btf.resolve(t.id);
  if (r.kind !== 'struct' && r.kind !== 'union') {
    throw new LoaderError(`${btf.describe(t.id)} is a ${r.kind}, not a struct or union`);
  }
  const fields: FieldLayout[] = [];
  const walk = (type: BtfType, base: number, inUnion?: FieldLayout['union']) => {
    (type.members ?? []).forEach((m, i) => {
      const union = type.kind === 'union' ? { group: `${type.id}@${base}`, alt: i } : inUnion;
      const mt = btf.resolve(m.type);
      if (!m.name && (mt.kind === 'struct' || mt.kind === 'union')) {
        walk(mt, base + Math.floor(m.bitOffset / 8), union);
        return;
      }
      const f: FieldLayout = m.bitSize
        ? (() => {
            const unit = btf.sizeOf(m.type);
            const start = Math.floor(m.bitOffset / (unit * 8)) * unit;
            const signed = mt.kind === 'int' ? ((mt.intEncoding ?? 0) & 1) !== 0 : !!mt.signed;
            return { name: m.name, offset: base + start, size: unit, type: btf.describe(m.type), bitOffset: m.bitOffset - start * 8, bitSize: m.bitSize, signed };
          })()
        : { name: m.name, offset: base + m.bitOffset / 8, size: btf.sizeOf(m.type), type: btf.describe(m.type) };
      if (union) f.union = union;
      fields.push(f);
    });
  };
  walk(r, 0);
  return { name: btf.describe(t.id), size: btf.sizeOf(t.id), fields };
}

/** Names for the two sides in messages: `btf` is `actual`, `expected` is `expected`. */
export interface LayoutLabels {
  actual: string;
  expected: string;
}

/** Throws a LoaderError naming every field whose place differs from what the code expects. */
export function checkLayout(btf: Btf, ref: string | number, expected: ExpectedLayout, labels: LayoutLabels = { actual: 'BTF', expected: 'the code' }): Layout {
  const actual = layoutOf(btf, ref);
  const { actual: A, expected: E } = labels;
  const problems: string[] = [];
  if (actual.size !== expected.size) problems.push(`size is ${actual.size} in ${A} but ${expected.size} in ${E}`);
  const byName = new Map(actual.fields.map((f) => [f.name, f]));
  for (const [name, want] of Object.entries(expected.fields)) {
    const got = byName.get(name);
    if (!got) {
      problems.push(`field ${name} is missing from ${A}`);
      continue;
    }
    if (got.offset !== want.offset) problems.push(`field ${name} is at offset ${got.offset} in ${A} but ${want.offset} in ${E}`);
    if (got.size !== want.size) problems.push(`field ${name} is ${got.size} bytes in ${A} but ${want.size} in ${E}`);
  }
  for (const f of actual.fields) {
    if (!(f.name in expected.fields)) problems.push(`field ${f.name} (${f.type}, offset ${f.offset}) is in ${A} but not in ${E}`);
  }
  if (problems.length) throw new LoaderError(`layout of ${actual.name} drifted: ${problems.join('; ')}`);
  return actual;
}

type Coder = { enc: (v: unknown, buf: Buffer, off: number, path: string) => void; dec: (buf: Buffer, off: number) => Value };

// Network-order integers: the kernel's __be16/__be32/__be64 typedefs survive in
// BTF, so fields declared with them read and write as big-endian numbers
// (10.0.0.1 is 0x0a000001, port 80 is 80) instead of byte-swapped ones.
function isBigEndianTypedef(btf: Btf, typeId: number): boolean {
  let t = btf.type(typeId);
  for (let i = 0; i < 16 && t; i++) {
    if (t.kind === 'typedef' && /^__be(16|32|64)$/.test(t.name)) return true;
    if (t.kind !== 'typedef' && t.kind !== 'const' && t.kind !== 'volatile' && t.kind !== 'restrict' && t.kind !== 'type_tag') return false;
    t = btf.type(t.type!);
  }
  return false;
}

function intCoder(size: number, signed: boolean, isBool: boolean, bigEndian = false): Coder {
  const at = (i: number) => (bigEndian ? size - 1 - i : i);
  const bits = BigInt(size * 8);
  const min = signed ? -(1n << (bits - 1n)) : 0n;
  const max = signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n;
  return {
    enc(v, buf, off, path) {
      let n: bigint;
      if (typeof v === 'boolean') n = v ? 1n : 0n;
      else if (typeof v === 'bigint') n = v;
      else if (typeof v === 'number' && Number.isInteger(v)) n = BigInt(v);
      else throw new LoaderError(`${path}: expected an integer, got ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
      if (n < min || n > max) throw new LoaderError(`${path}: ${n} does not fit in ${size} byte(s)${signed ? ' signed' : ''}`);
      const u = BigInt.asUintN(size * 8, n);
      for (let i = 0; i < size; i++) buf[off + at(i)] = Number((u >> BigInt(8 * i)) & 0xffn);
    },
    dec(buf, off) {
      let u = 0n;
      for (let i = size - 1; i >= 0; i--) u = (u << 8n) | BigInt(buf[off + at(i)]);
      const n = signed ? BigInt.asIntN(size * 8, u) : u;
      if (isBool) return n !== 0n;
      return size <= 4 ? Number(n) : n;
    },
  };
}

function coderFor(btf: Btf, typeId: number, depth: number): Coder {
  if (depth > 16) throw new LoaderError(`${btf.describe(typeId)} nests too deeply`);
  const t = btf.resolve(typeId);
  const size = btf.sizeOf(typeId);
  switch (t.kind) {
    case 'int':
      return intCoder(size, ((t.intEncoding ?? 0) & 1) !== 0, ((t.intEncoding ?? 0) & 4) !== 0, isBigEndianTypedef(btf, typeId));
    case 'enum':
    case 'enum64':
      return intCoder(size, !!t.signed, false);
    case 'ptr':
      return intCoder(8, false, false);
    case 'array': {
      const a = t.array!;
      const esize = btf.sizeOf(a.type);
      const elem = btf.resolve(a.type);
      if (elem.kind === 'int' && esize === 1) {
        // Byte arrays (u8[N], char[N]) travel as Buffers: addresses, MACs, names.
        return {
          enc(v, buf, off, path) {
            if (!Buffer.isBuffer(v)) throw new LoaderError(`${path}: expected a Buffer of ${a.nelems} bytes`);
            if (v.length > a.nelems) throw new LoaderError(`${path}: ${v.length} bytes do not fit in ${a.nelems}`);
            v.copy(buf, off);
          },
          dec: (buf, off) => Buffer.from(buf.subarray(off, off + a.nelems)),
        };
      }
      const inner = coderFor(btf, a.type, depth + 1);
      return {
        enc(v, buf, off, path) {
          if (!Array.isArray(v) || v.length > a.nelems) throw new LoaderError(`${path}: expected an array of at most ${a.nelems} elements`);
          v.forEach((x, i) => inner.enc(x, buf, off + i * esize, `${path}[${i}]`));
        },
        dec(buf, off) {
          const out: Value[] = [];
          for (let i = 0; i < a.nelems; i++) out.push(inner.dec(buf, off + i * esize));
          return out;
        },
      };
    }
    case 'struct':
    case 'union':
      return structCoder(btf, t.id, layoutOf(btf, t.id), depth);
    default:
      throw new LoaderError(`no codec for ${t.kind} (${btf.describe(typeId)})`);
  }
}

function structCoder(btf: Btf, typeId: number, layout: Layout, depth: number): Coder {
  // Member type ids for each flattened field, found by walking the same way layoutOf does.
  const ids = new Map<string, number>();
  const walk = (type: BtfType) => {
    for (const m of type.members ?? []) {
      const mt = btf.resolve(m.type);
      if (!m.name && (mt.kind === 'struct' || mt.kind === 'union')) walk(mt);
      else ids.set(m.name, m.type);
    }
  };
  walk(btf.resolve(typeId));
  const fields = layout.fields.map((f) => {
    if (f.bitSize) {
      const bits = BigInt(f.bitSize);
      const shift = f.bitOffset!;
      const min = f.signed ? -(1n << (bits - 1n)) : 0n;
      const max = f.signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n;
      const coder: Coder = {
        enc(v, buf, off, path) {
          const n = typeof v === 'bigint' ? v : typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : undefined;
          if (n === undefined || n < min || n > max) throw new LoaderError(`${path}: expected an integer in ${min}..${max}`);
          const u = BigInt.asUintN(Number(bits), n);
          for (let i = 0; i < Number(bits); i++) {
            const bit = shift + i;
            const byte = off + (bit >> 3);
            if ((u >> BigInt(i)) & 1n) buf[byte] |= 1 << (bit & 7);
            else buf[byte] &= ~(1 << (bit & 7));
          }
        },
        dec(buf, off) {
          let u = 0n;
          for (let i = 0; i < Number(bits); i++) {
            const bit = shift + i;
            if ((buf[off + (bit >> 3)] >> (bit & 7)) & 1) u |= 1n << BigInt(i);
          }
          const n = f.signed ? BigInt.asIntN(Number(bits), u) : u;
          return bits <= 32n ? Number(n) : n;
        },
      };
      return { f, coder };
    }
    return { f, coder: coderFor(btf, ids.get(f.name)!, depth + 1) };
  });
  const known = new Set(layout.fields.map((f) => f.name));
  return {
    enc(v, buf, off, path) {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || Buffer.isBuffer(v)) {
        throw new LoaderError(`${path}: expected an object for ${layout.name}`);
      }
      for (const k of Object.keys(v)) {
        if (!known.has(k)) throw new LoaderError(`${path}: ${layout.name} has no field '${k}' (fields: ${[...known].join(', ')})`);
      }
      // Members of one union overlap: setting two would silently keep only the last.
      const chosen = new Map<string, { alt: number; name: string }>();
      for (const f of layout.fields) {
        if (!f.union || (v as Record<string, unknown>)[f.name] === undefined) continue;
        const prev = chosen.get(f.union.group);
        if (prev && prev.alt !== f.union.alt) {
          throw new LoaderError(`${path}: '${prev.name}' and '${f.name}' are members of the same union; set only one`);
        }
        chosen.set(f.union.group, { alt: f.union.alt, name: f.name });
      }
      for (const { f, coder } of fields) {
        const x = (v as Record<string, unknown>)[f.name];
        if (x !== undefined) coder.enc(x, buf, off + f.offset, `${path}.${f.name}`);
      }
    },
    dec(buf, off) {
      const out: { [k: string]: Value } = {};
      for (const { f, coder } of fields) out[f.name] = coder.dec(buf, off + f.offset);
      return out;
    },
  };
}

/**
 * A codec for a struct or union in `btf`. With `expected` (a generated or
 * hand-written layout), the BTF must match it exactly first.
 * Decoding a union gives every member's reading of the bytes; encoding
 * takes at most one member per union.
 * Values: integers up to 4 bytes are numbers, 8-byte integers bigints, bools
 * booleans, byte arrays Buffers, other arrays arrays, nested structs objects.
 * Fields left out encode as zero; unknown fields are an error.
 */
export function codecFor<T = { [field: string]: Value }>(btf: Btf, ref: string | number, expected?: ExpectedLayout): Codec<T> {
  const id = findType(btf, ref).id;
  const layout = expected ? checkLayout(btf, id, expected) : layoutOf(btf, id);
  const coder = structCoder(btf, id, layout, 0);
  return {
    name: layout.name,
    size: layout.size,
    layout,
    encode(value: T): Buffer {
      const buf = Buffer.alloc(layout.size);
      coder.enc(value, buf, 0, layout.name);
      return buf;
    },
    encodeInto(value: T, buf: Buffer, offset = 0): void {
      if (offset + layout.size > buf.length) throw new LoaderError(`${layout.name}: ${layout.size} bytes do not fit at offset ${offset}`);
      buf.fill(0, offset, offset + layout.size);
      coder.enc(value, buf, offset, layout.name);
    },
    decode(buf: Buffer, offset = 0): T {
      if (offset + layout.size > buf.length) {
        throw new LoaderError(`${layout.name}: needs ${layout.size} bytes at offset ${offset}, buffer has ${buf.length}`);
      }
      return coder.dec(buf, offset) as T;
    },
  };
}
