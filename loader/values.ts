// Decoding map keys and values by their BTF types, so tools can show
// `{ proto: 17, dir: 0 }` instead of hex, as bpftool does.
import type { Btf } from './btf.js';
import { LoaderError } from './errors.js';

export type Decoded = number | bigint | string | boolean | Decoded[] | { [field: string]: Decoded };

const MAX_DEPTH = 16;

/** Decodes `buf` (starting at `offset`) as BTF type `typeId`. */
export function decodeValue(btf: Btf, typeId: number, buf: Buffer, offset = 0, depth = 0): Decoded {
  if (depth > MAX_DEPTH) throw new LoaderError(`type ${btf.describe(typeId)} nests deeper than ${MAX_DEPTH}`);
  const t = btf.resolve(typeId);
  const size = btf.sizeOf(typeId);
  if (offset + size > buf.length) {
    throw new LoaderError(`${btf.describe(typeId)} needs ${size} bytes at offset ${offset}, buffer has ${buf.length}`);
  }
  switch (t.kind) {
    case 'int':
    case 'enum':
    case 'enum64': {
      const signed = t.kind === 'int' ? ((t.intEncoding ?? 0) & 1) !== 0 : !!t.signed;
      if (t.kind === 'int' && (t.intEncoding ?? 0) & 4 && size === 1) return buf[offset] !== 0; // bool
      const v = readInt(buf, offset, size, signed);
      if (t.kind !== 'int') {
        const name = t.enumValues?.find((e) => e.value === BigInt(v))?.name;
        if (name) return name;
      }
      return v;
    }
    case 'ptr':
      return readInt(buf, offset, 8, false);
    case 'array': {
      const a = t.array!;
      const esize = btf.sizeOf(a.type);
      const elem = btf.resolve(a.type);
      // char[N]: show as text when it is printable.
      if (elem.kind === 'int' && esize === 1 && (elem.intEncoding ?? 0) & 2) {
        const raw = buf.subarray(offset, offset + a.nelems);
        const text = raw.toString('latin1').replace(/\0+$/, '');
        if (/^[\x20-\x7e]*$/.test(text)) return text;
      }
      const out: Decoded[] = [];
      for (let i = 0; i < a.nelems; i++) out.push(decodeValue(btf, a.type, buf, offset + i * esize, depth + 1));
      return out;
    }
    case 'struct':
    case 'union':
    case 'datasec': {
      const out: { [field: string]: Decoded } = {};
      if (t.kind === 'datasec') {
        for (const s of t.secinfo ?? []) {
          const v = btf.type(s.type);
          out[v.name] = decodeValue(btf, v.type!, buf, offset + s.offset, depth + 1);
        }
        return out;
      }
      for (const m of t.members!) {
        const mt = btf.resolve(m.type);
        if (m.bitSize) {
          const signed = mt.kind === 'int' ? ((mt.intEncoding ?? 0) & 1) !== 0 : !!mt.signed;
          out[m.name] = readBits(buf, offset, m.bitOffset, m.bitSize, signed);
        } else if (!m.name && (mt.kind === 'struct' || mt.kind === 'union')) {
          // Anonymous members are lifted into the parent, as C (and codecFor) see them.
          Object.assign(out, decodeValue(btf, m.type, buf, offset + m.bitOffset / 8, depth + 1));
        } else {
          out[m.name] = decodeValue(btf, m.type, buf, offset + m.bitOffset / 8, depth + 1);
        }
      }
      return out;
    }
    case 'float':
      return size === 4 ? buf.readFloatLE(offset) : buf.readDoubleLE(offset);
    default:
      throw new LoaderError(`cannot decode a value of kind ${t.kind} (${btf.describe(typeId)})`);
  }
}

function readInt(buf: Buffer, offset: number, size: number, signed: boolean): number | bigint {
  switch (size) {
    case 1:
      return signed ? buf.readInt8(offset) : buf.readUInt8(offset);
    case 2:
      return signed ? buf.readInt16LE(offset) : buf.readUInt16LE(offset);
    case 4:
      return signed ? buf.readInt32LE(offset) : buf.readUInt32LE(offset);
    case 8: {
      const v = signed ? buf.readBigInt64LE(offset) : buf.readBigUInt64LE(offset);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
    }
    default: {
      let v = 0n;
      for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[offset + i]);
      return v;
    }
  }
}

function readBits(buf: Buffer, offset: number, bitOffset: number, bits: number, signed: boolean): number | bigint {
  let v = 0n;
  for (let i = 0; i < bits; i++) {
    const bit = bitOffset + i;
    if ((buf[offset + (bit >> 3)] >> (bit & 7)) & 1) v |= 1n << BigInt(i);
  }
  const n = signed ? BigInt.asIntN(bits, v) : v;
  return bits <= 32 ? Number(n) : n;
}
