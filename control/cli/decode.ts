// Decoding any pinned map's entries field by field for `weir map dump`.
// The types come from the map's own BTF as the kernel holds it (so an older
// or newer datapath still reads right), else from the contract object's BTF
// by map name, else the bytes stay hex. __be16/__be32 fields are read in
// network order; addresses print as dotted quads, MACs as aa:bb:.., flag and
// enum fields as the names of the enum consts in types.gen.ts.
import { Btf as KernelBtf, type BpfMap, isPerCpuMapType, possibleCpus } from '../../native/index.js';
import { decodeValue, findType, parseBtf, type Btf } from '../../loader/index.js';
import { contractBtf } from '../datapath/maps.js';
import * as T from '../datapath/types.gen.js';
import { enumName, flagNames, ip4, mac, protoName } from './format.js';

export type Shown = number | string | string[] | Shown[] | { [field: string]: Shown };

/** Fields holding an IPv4 address (all __be32 in the contract). */
const ADDR_FIELDS = new Set(['addr', 'saddr', 'daddr', 'node_addr', 'client', 'nat_addr']);

/** struct.field -> [enum table, is a bit set]. */
const NAMED: Record<string, [Record<string, number>, boolean]> = {
  'svc4_key.scope': [T.SvcScope, false],
  'svc_value.flags': [T.SvcFlags, true],
  'svc_value.algorithm': [T.LbAlgorithm, false],
  'backend4.state': [T.BackendState, false],
  'backend4.flags': [T.BackendFlags, true],
  'ct4_key.flags': [T.CtKeyFlags, true],
  'ct_entry.flags': [T.CtFlags, true],
  'ct_entry.tcp_state': [T.CtTcpState, true],
  'endpoint_info.flags': [T.EndpointFlags, true],
  'metrics_key.reason': [T.WeirReason, false],
  'metrics_key.dir': [T.WeirDir, false],
  'event.reason': [T.WeirReason, false],
  'event.dir': [T.WeirDir, false],
  'event.type': [T.WeirEventType, false],
};

/** Contract types of each pinned map, for maps whose kernel BTF is absent. */
const CONTRACT_TYPES: Record<string, [string, string]> = {
  weir_svc4: ['struct svc4_key', 'struct svc_value'],
  weir_backend4: ['__u32', 'struct backend4'],
  weir_lb_slots: ['struct lb_slot_key', '__u32'],
  weir_maglev: ['__u32', '__u32'],
  weir_revnat4: ['__u32', 'struct revnat4'],
  weir_ct4: ['struct ct4_key', 'struct ct_entry'],
  weir_affinity4: ['struct affinity4_key', 'struct affinity_value'],
  weir_ep4: ['struct endpoint4_key', 'struct endpoint_info'],
  weir_tunnel4: ['struct tunnel4_key', 'struct tunnel_info'],
  weir_node4: ['__be32', 'struct node_addr_value'],
  weir_metrics: ['struct metrics_key', 'struct metrics_value'],
};

/** What a bare (non-struct) key or value of a map means, so it is labelled and formatted. */
const KEY_NAMES: Record<string, string> = { weir_backend4: 'backend_id', weir_revnat4: 'revnat_id', weir_maglev: 'svc_id', weir_node4: 'addr' };
const VALUE_NAMES: Record<string, string> = { weir_lb_slots: 'backend_id', weir_maglev: 'inner_map_id' };

const BE = /^__be(16|32|64)$/;

/** True when a typedef chain passes through __be16/__be32/__be64. */
function isBigEndian(btf: Btf, typeId: number): boolean {
  let t = btf.type(typeId);
  for (let i = 0; i < 32; i++) {
    if (t.kind === 'typedef' && BE.test(t.name)) return true;
    if (!['typedef', 'const', 'volatile', 'restrict', 'type_tag'].includes(t.kind)) return false;
    t = btf.type(t.type!);
  }
  return false;
}

/** A field's value for people: address, MAC, protocol, names of enums and flags. */
function present(struct: string, field: string, v: number | bigint | Buffer, be: boolean): Shown {
  if (Buffer.isBuffer(v)) return /mac/.test(field) && v.length === 6 ? mac(v) : v.toString('hex');
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (be && ADDR_FIELDS.has(field)) return ip4(v);
  if (field === 'proto') return protoName(v);
  const named = NAMED[`${struct}.${field}`];
  if (named) return named[1] ? flagNames(v, named[0]) : enumName(v, named[0]);
  return v;
}

type Reader = (buf: Buffer, off: number) => Shown;

/** Plain integers read little-endian (host order on the architectures weir runs on). */
function intReader(size: number, signed: boolean): ((buf: Buffer, off: number) => number | bigint) | undefined {
  switch (size) {
    case 1:
      return signed ? (b, o) => b.readInt8(o) : (b, o) => b.readUInt8(o);
    case 2:
      return signed ? (b, o) => b.readInt16LE(o) : (b, o) => b.readUInt16LE(o);
    case 4:
      return signed ? (b, o) => b.readInt32LE(o) : (b, o) => b.readUInt32LE(o);
    case 8:
      return signed ? (b, o) => b.readBigInt64LE(o) : (b, o) => b.readBigUInt64LE(o);
    default:
      return undefined;
  }
}

/**
 * A reader for BTF type `typeId` that formats as `present` does; `struct` and
 * `field` name the place. Built once per map side, so a large table decodes
 * without walking the BTF per entry.
 */
export function shownReader(btf: Btf, typeId: number, struct = '', field = ''): Reader {
  const t = btf.resolve(typeId);
  const size = btf.sizeOf(typeId);
  if (isBigEndian(btf, typeId) && size <= 8) {
    return size === 8 ? (b, o) => present(struct, field, b.readBigUInt64BE(o), true) : (b, o) => present(struct, field, b.readUIntBE(o, size), true);
  }
  if (t.kind === 'array') {
    const elem = btf.resolve(t.array!.type);
    const esize = btf.sizeOf(t.array!.type);
    if (elem.kind === 'int' && esize === 1) return (b, o) => present(struct, field, b.subarray(o, o + size), false);
    const one = shownReader(btf, t.array!.type, struct, field);
    return (b, o) => Array.from({ length: t.array!.nelems }, (_, i) => one(b, o + i * esize));
  }
  if ((t.kind === 'struct' || t.kind === 'union') && !(t.members ?? []).some((m) => m.bitSize)) {
    const members = (t.members ?? []).map((m) => ({
      name: m.name,
      at: m.bitOffset / 8,
      size: btf.sizeOf(m.type),
      // Padding is shown only when it is not zero (which would be a bug worth seeing).
      pad: /^pad\d*$/.test(m.name),
      read: shownReader(btf, m.type, t.name, m.name),
    }));
    return (b, o) => {
      const out: { [f: string]: Shown } = {};
      for (const m of members) {
        const mo = o + m.at;
        if (m.pad && b.subarray(mo, mo + m.size).every((x) => x === 0)) continue;
        const v = m.read(b, mo);
        if (!m.name && v && typeof v === 'object' && !Array.isArray(v)) Object.assign(out, v);
        else out[m.name] = v;
      }
      return out;
    };
  }
  if (t.kind === 'int' && !((t.intEncoding ?? 0) & 4)) {
    const read = intReader(size, ((t.intEncoding ?? 0) & 1) !== 0);
    if (read) return (b, o) => present(struct, field, read(b, o), false);
  }
  // Enums, bools, floats, odd sizes: the loader's generic decoder.
  return (b, o) => {
    const d = decodeValue(btf, typeId, b, o);
    if (typeof d === 'number' || typeof d === 'bigint') return present(struct, field, d, false);
    return JSON.parse(JSON.stringify(d, (_k, x) => (typeof x === 'bigint' ? x.toString() : x))) as Shown;
  };
}

/** Decodes `buf` at `off` as BTF type `typeId` (see shownReader). */
export function decodeShown(btf: Btf, typeId: number, buf: Buffer, off = 0, struct = '', field = ''): Shown {
  return shownReader(btf, typeId, struct, field)(buf, off);
}

/** Sums per-CPU slots: numeric leaves add up, anything else is taken from CPU 0. */
export function sumPerCpu(slots: Shown[]): Shown {
  const [first] = slots;
  if (typeof first === 'number') return slots.reduce<number>((a, s) => a + (typeof s === 'number' ? s : 0), 0);
  if (first && typeof first === 'object' && !Array.isArray(first)) {
    const out: { [f: string]: Shown } = {};
    for (const k of Object.keys(first)) out[k] = sumPerCpu(slots.map((s) => (s as { [f: string]: Shown })[k]));
    return out;
  }
  return first;
}

export interface EntryDecoder {
  /** Where the types came from. */
  source: 'kernel BTF' | 'contract BTF' | 'none (hex)';
  key(b: Buffer): Shown;
  /** Per-CPU maps: the sum over CPUs as value, each CPU's slot in perCpu. */
  value(b: Buffer): { value: Shown; perCpu?: Shown[] };
}

interface Side {
  btf: Btf;
  typeId: number;
}

function kernelSides(m: BpfMap): { key?: Side; value?: Side } {
  const info = m.info;
  if (!info.btfId) return {};
  let btf: Btf;
  const k = KernelBtf.fromId(info.btfId);
  try {
    btf = parseBtf(k.raw(), `BTF of map ${info.name}`);
  } finally {
    k.close();
  }
  const side = (id: number, size: number) => (id && btf.sizeOf(id) === size ? { btf, typeId: id } : undefined);
  return { key: side(info.btfKeyTypeId, info.keySize), value: side(info.btfValueTypeId, info.valueSize) };
}

function contractSide(name: string, which: 0 | 1, size: number): Side | undefined {
  const ref = CONTRACT_TYPES[name]?.[which];
  if (!ref) return undefined;
  let btf: Btf;
  try {
    btf = contractBtf();
  } catch {
    return undefined; // build/bpf/contract.o absent: hex
  }
  const id = findType(btf, ref).id;
  return btf.sizeOf(id) === size ? { btf, typeId: id } : undefined;
}

/** A decoder for the entries of pinned map `name`. */
export function decoderFor(name: string, m: BpfMap): EntryDecoder {
  const info = m.info;
  let kernel: { key?: Side; value?: Side } = {};
  try {
    kernel = kernelSides(m);
  } catch {
    /* BTF by id needs CAP_SYS_ADMIN, and a kernel's BTF may use kinds the parser lacks: use the contract */
  }
  const keySide = kernel.key ?? contractSide(name, 0, info.keySize);
  const valueSide = kernel.value ?? contractSide(name, 1, info.valueSize);
  const source = kernel.key || kernel.value ? 'kernel BTF' : keySide || valueSide ? 'contract BTF' : 'none (hex)';
  const perCpu = isPerCpuMapType(info.type);
  const stride = Math.ceil(info.valueSize / 8) * 8;
  const reader = (side: Side | undefined, label: string | undefined): ((b: Buffer) => Shown) => {
    if (!side) return (b) => b.toString('hex');
    const read = shownReader(side.btf, side.typeId, '', label ?? '');
    return (b) => read(b, 0);
  };
  const key = reader(keySide, KEY_NAMES[name]);
  const value = reader(valueSide, VALUE_NAMES[name]);
  return {
    source,
    key,
    value: (b) => {
      if (!perCpu) return { value: value(b) };
      const slots = Array.from({ length: possibleCpus() }, (_, i) => value(b.subarray(i * stride, i * stride + info.valueSize)));
      return { value: sumPerCpu(slots), perCpu: slots };
    },
  };
}
