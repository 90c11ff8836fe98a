/**
 * Parser for the BPF Type Format (.BTF section) as emitted by clang, laid
 * out per the kernel's Documentation/bpf/btf.rst and
 * include/uapi/linux/btf.h:
 *
 *   struct btf_header { u16 magic (0xeB9F); u8 version (1); u8 flags;
 *                       u32 hdr_len; u32 type_off; u32 type_len;
 *                       u32 str_off; u32 str_len; }
 *
 * followed (at hdr_len) by the type section and the string section, whose
 * offsets are relative to the end of the header. Each type is a 12-byte
 * `struct btf_type { u32 name_off; u32 info; u32 size_or_type; }` plus
 * kind-specific trailing data. Type ids are implicit: the first record is
 * id 1 (id 0 is void).
 *
 * Parsing is eager and defensive: every record must lie inside the type
 * section, every string offset inside the string section, and every type id
 * a record refers to must exist. Anything else raises LoaderError.
 */
import { StringTable } from './elf.js';
import { LoaderError, guardParse } from './errors.js';

export type BtfKind =
  | 'void'
  | 'int'
  | 'ptr'
  | 'array'
  | 'struct'
  | 'union'
  | 'enum'
  | 'fwd'
  | 'typedef'
  | 'volatile'
  | 'const'
  | 'restrict'
  | 'func'
  | 'func_proto'
  | 'var'
  | 'datasec'
  | 'float'
  | 'decl_tag'
  | 'type_tag'
  | 'enum64';

/** Kind names indexed by the BTF_KIND_* number (0 is BTF_KIND_UNKN, used here for void). */
export const BTF_KINDS: readonly BtfKind[] = [
  'void',
  'int',
  'ptr',
  'array',
  'struct',
  'union',
  'enum',
  'fwd',
  'typedef',
  'volatile',
  'const',
  'restrict',
  'func',
  'func_proto',
  'var',
  'datasec',
  'float',
  'decl_tag',
  'type_tag',
  'enum64',
];

export const BTF_MAGIC = 0xeb9f;
export const BTF_VERSION = 1;
/** Kernel limit on the number of types in one BTF blob (BTF_MAX_TYPE). */
export const BTF_MAX_TYPE = 0xfffff;
/** Depth limit for following type references (libbpf uses 32 too). */
export const MAX_RESOLVE_DEPTH = 32;

/** Limits on describe(): total type nodes visited, and parameters shown per prototype. */
const DESCRIBE_BUDGET = 256;
const MAX_DESCRIBED_PARAMS = 16;
const MAX_DESCRIBE_LEN = 1000;

/** BTF_INT_* encoding bits. */
export const BTF_INT_SIGNED = 1;
export const BTF_INT_CHAR = 2;
export const BTF_INT_BOOL = 4;

/** Linkage values for FUNC and VAR. */
export const BTF_LINKAGE_STATIC = 0;
export const BTF_LINKAGE_GLOBAL = 1;
export const BTF_LINKAGE_EXTERN = 2;

export interface BtfMember {
  name: string;
  type: number;
  bitOffset: number;
  /** 0 unless a bitfield (struct/union kind_flag set). */
  bitSize: number;
}
export interface BtfParam {
  name: string;
  type: number;
}
export interface BtfVarSecinfo {
  /** VAR or FUNC id */
  type: number;
  offset: number;
  size: number;
}
export interface BtfType {
  id: number;
  kind: BtfKind;
  name: string;
  nameOff: number;
  // per kind (undefined when not applicable):
  /** int, struct, union, enum, enum64, datasec, float */
  size?: number;
  /** ptr, typedef, volatile, const, restrict, func, var, decl_tag, type_tag, func_proto (return type) */
  type?: number;
  intEncoding?: number;
  intOffset?: number;
  intBits?: number;
  array?: { type: number; indexType: number; nelems: number };
  /** struct/union */
  members?: BtfMember[];
  /** enum/enum64 */
  enumValues?: { name: string; value: bigint }[];
  signed?: boolean;
  /** func_proto */
  params?: BtfParam[];
  /** func (0 static, 1 global, 2 extern), var (0 static, 1 global, 2 extern) */
  linkage?: number;
  /** datasec */
  secinfo?: BtfVarSecinfo[];
  /** fwd */
  fwdUnion?: boolean;
  /** decl_tag: -1 for the whole type, else member/param index */
  componentIdx?: number;
}

const HDR_MIN = 24;
const TYPE_HDR = 12;

export class Btf {
  readonly types: BtfType[];
  readonly raw: Buffer;
  readonly source: string;
  private readonly strings: StringTable;
  private readonly recordOffsets: number[];
  private byKindName: Map<BtfKind, Map<string, BtfType>> | undefined;

  /** Use parseBtf(); this constructor trusts its (already validated) arguments. */
  constructor(raw: Buffer, types: BtfType[], recordOffsets: number[], strings: StringTable, source: string) {
    this.raw = raw;
    this.types = types;
    this.recordOffsets = recordOffsets;
    this.strings = strings;
    this.source = source;
  }

  private fail(msg: string): never {
    throw new LoaderError(`${this.source}: BTF: ${msg}`);
  }

  /** Size of the BTF string table in bytes. */
  get stringTableLength(): number {
    return this.strings.length;
  }

  /** A NUL-terminated string from the BTF string table. */
  string(off: number): string {
    const r = this.strings.lookup(off);
    if (!r.ok) this.fail(r.error);
    return (r as { value: string }).value;
  }

  type(id: number): BtfType {
    if (!Number.isInteger(id) || id < 0 || id >= this.types.length) {
      this.fail(`type id ${id} does not exist (${this.types.length} types)`);
    }
    return this.types[id];
  }

  find(kind: BtfKind, name: string): BtfType | undefined {
    if (!this.byKindName) {
      this.byKindName = new Map();
      for (const t of this.types) {
        let byName = this.byKindName.get(t.kind);
        if (!byName) this.byKindName.set(t.kind, (byName = new Map()));
        if (!byName.has(t.name)) byName.set(t.name, t);
      }
    }
    return this.byKindName.get(kind)?.get(name);
  }

  /** Follow typedef/volatile/const/restrict/type_tag to the underlying type. */
  resolve(id: number): BtfType {
    let t = this.type(id);
    for (let depth = 0; ; depth++) {
      switch (t.kind) {
        case 'typedef':
        case 'volatile':
        case 'const':
        case 'restrict':
        case 'type_tag':
          if (depth >= MAX_RESOLVE_DEPTH) this.fail(`type ${id}: reference chain too deep or cyclic (stopped at type ${t.id})`);
          t = this.type(t.type!);
          break;
        default:
          return t;
      }
    }
  }

  /** Byte size of a type. */
  sizeOf(id: number): number {
    return this.sizeOfDepth(id, 0);
  }

  private sizeOfDepth(id: number, depth: number): number {
    if (depth > MAX_RESOLVE_DEPTH) this.fail(`type ${id}: reference chain too deep or cyclic while computing its size`);
    const t = this.type(id);
    switch (t.kind) {
      case 'int':
      case 'struct':
      case 'union':
      case 'enum':
      case 'enum64':
      case 'datasec':
      case 'float':
        return t.size!;
      case 'ptr':
        return 8;
      case 'array': {
        const n = t.array!.nelems;
        if (n === 0) return 0;
        const elem = this.sizeOfDepth(t.array!.type, depth + 1);
        const total = elem * n;
        if (total > 0xffffffff) this.fail(`type ${id} (${this.describe(id)}): array size ${total} overflows`);
        return total;
      }
      case 'typedef':
      case 'volatile':
      case 'const':
      case 'restrict':
      case 'type_tag':
      case 'var':
        return this.sizeOfDepth(t.type!, depth + 1);
      default:
        this.fail(`type ${id} (${this.describe(id)}) is a ${t.kind} and has no size`);
    }
  }

  /** C-like name for messages: 'struct proto_key', 'u32 *', '__u64[4]'. */
  describe(id: number): string {
    this.type(id); // bad id → LoaderError
    const s = this.describeDepth(id, 0, { left: DESCRIBE_BUDGET });
    return s.length > MAX_DESCRIBE_LEN ? `${s.slice(0, MAX_DESCRIBE_LEN)}...` : s;
  }

  /** `budget` bounds the total work: function prototypes fan out, so depth alone is not enough. */
  private describeDepth(id: number, depth: number, budget: { left: number }): string {
    if (depth > MAX_RESOLVE_DEPTH || --budget.left < 0) return '...';
    const t = this.type(id);
    const d = (x: number) => this.describeDepth(x, depth + 1, budget);
    const anon = (s: string) => s || '(anon)';
    switch (t.kind) {
      case 'void':
        return 'void';
      case 'int':
      case 'float':
      case 'typedef':
        return t.name;
      case 'struct':
      case 'union':
        return `${t.kind} ${anon(t.name)}`;
      case 'enum':
      case 'enum64':
        return `enum ${anon(t.name)}`;
      case 'fwd':
        return `${t.fwdUnion ? 'union' : 'struct'} ${t.name}`;
      case 'ptr': {
        const target = this.type(t.type!);
        if (target.kind === 'func_proto') return `${d(target.type!)} (*)(${this.paramList(target, depth + 1, budget)})`;
        if (target.kind === 'array') return `${d(target.array!.type)} (*)[${target.array!.nelems}]`;
        const inner = d(t.type!);
        return inner.endsWith('*') ? `${inner}*` : `${inner} *`;
      }
      case 'array':
        return `${d(t.array!.type)}[${t.array!.nelems}]`;
      case 'const':
      case 'volatile':
      case 'restrict':
        return `${t.kind} ${d(t.type!)}`;
      case 'type_tag':
        return `${d(t.type!)} __attribute__((btf_type_tag("${t.name}")))`;
      case 'func': {
        const proto = this.type(t.type!);
        if (proto.kind !== 'func_proto') return `func ${t.name}`;
        return `${d(proto.type!)} ${t.name}(${this.paramList(proto, depth + 1, budget)})`;
      }
      case 'func_proto':
        return `${d(t.type!)} (${this.paramList(t, depth, budget)})`;
      case 'var':
        return joinDecl(d(t.type!), t.name);
      case 'datasec':
        return `section ${t.name}`;
      case 'decl_tag':
        return `decl_tag ${t.name}`;
    }
  }

  private paramList(proto: BtfType, depth: number, budget: { left: number }): string {
    const ps = proto.params ?? [];
    if (ps.length === 0) return 'void';
    const shown = ps.slice(0, MAX_DESCRIBED_PARAMS).map((p, i) => {
      if (i === ps.length - 1 && p.type === 0 && p.name === '') return '...';
      const ty = this.describeDepth(p.type, depth + 1, budget);
      return p.name ? joinDecl(ty, p.name) : ty;
    });
    if (ps.length > MAX_DESCRIBED_PARAMS) shown.push('...');
    return shown.join(', ');
  }

  /**
   * A copy of the raw BTF with each DATASEC's size and its VARs' offsets
   * filled in (clang leaves them 0 in objects; the kernel wants the real
   * ELF section size and symbol offsets). Secinfo entries are re-sorted by
   * offset as the kernel requires. When a callback returns undefined the
   * corresponding field is left as it is.
   *
   * Also gives FUNCs and VARs with extern linkage static linkage, since the
   * kernel refuses extern linkage for both.
   */
  fixupDatasecs(
    sectionSize: (secName: string) => number | undefined,
    symbolOffset: (secName: string, varName: string) => number | undefined,
  ): Buffer {
    const out = Buffer.from(this.raw);
    for (const t of this.types) {
      if (t.id === 0) continue;
      const rec = this.recordOffsets[t.id];
      if (t.kind === 'func' && t.linkage === BTF_LINKAGE_EXTERN) {
        const info = out.readUInt32LE(rec + 4);
        out.writeUInt32LE(((info & 0xffff0000) | BTF_LINKAGE_STATIC) >>> 0, rec + 4);
      } else if (t.kind === 'var' && t.linkage === BTF_LINKAGE_EXTERN) {
        out.writeUInt32LE(BTF_LINKAGE_STATIC, rec + TYPE_HDR);
      } else if (t.kind === 'datasec') {
        const size = sectionSize(t.name);
        if (size !== undefined) out.writeUInt32LE(checkU32(size, `size of section ${t.name}`, (m) => this.fail(m)), rec + 8);
        const entries = t.secinfo!.map((v) => ({ ...v }));
        for (const e of entries) {
          const v = this.types[e.type];
          if (v.kind !== 'var' && v.kind !== 'func') continue;
          const off = symbolOffset(t.name, v.name);
          if (off !== undefined) e.offset = checkU32(off, `offset of ${v.name} in ${t.name}`, (m) => this.fail(m));
        }
        entries.sort((a, b) => a.offset - b.offset); // stable: ties keep declaration order
        entries.forEach((e, i) => {
          const o = rec + TYPE_HDR + i * 12;
          out.writeUInt32LE(e.type, o);
          out.writeUInt32LE(e.offset, o + 4);
          out.writeUInt32LE(e.size, o + 8);
        });
      }
    }
    return out;
  }
}

/** 'struct x *' + 'p' → 'struct x *p'; 'int' + 'p' → 'int p'. */
function joinDecl(ty: string, name: string): string {
  return ty.endsWith('*') ? `${ty}${name}` : `${ty} ${name}`;
}

function checkU32(v: number, what: string, fail: (m: string) => never): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) fail(`${what} (${v}) is not a valid u32`);
  return v;
}

function readString(tab: StringTable, off: number, what: () => string, fail: (m: string) => never): string {
  const r = tab.lookup(off);
  if (!r.ok) fail(`${what()}: ${r.error}`);
  return (r as { value: string }).value;
}

/** Parse a .BTF section. */
export function parseBtf(buf: Buffer, source = '<buffer>'): Btf {
  return guardParse('BTF', source, () => parseBtfInner(buf, source));
}

function parseBtfInner(input: Buffer, source: string): Btf {
  const fail = (msg: string): never => {
    throw new LoaderError(`${source}: BTF: ${msg}`);
  };
  if (!Buffer.isBuffer(input)) fail('data is not a Buffer');
  const buf = Buffer.from(input);
  if (buf.length < HDR_MIN) fail(`too short for a header: ${buf.length} bytes, need ${HDR_MIN}`);
  const magic = buf.readUInt16LE(0);
  if (magic === 0x9feb) fail('big-endian BTF is not supported');
  if (magic !== BTF_MAGIC) fail(`bad magic 0x${magic.toString(16)}, expected 0xeb9f`);
  const version = buf[2];
  if (version !== BTF_VERSION) fail(`unsupported version ${version}, expected ${BTF_VERSION}`);
  const hdrLen = buf.readUInt32LE(4);
  if (hdrLen < HDR_MIN) fail(`header length ${hdrLen} is smaller than ${HDR_MIN}`);
  if (hdrLen > buf.length) fail(`header length ${hdrLen} exceeds the section size (${buf.length} bytes)`);
  if (hdrLen % 4 !== 0) fail(`header length ${hdrLen} is not 4-byte aligned`);
  for (let i = HDR_MIN; i < hdrLen; i++) if (buf[i] !== 0) fail(`unknown non-zero header field at byte ${i} (header length ${hdrLen})`);
  const typeOff = buf.readUInt32LE(8);
  const typeLen = buf.readUInt32LE(12);
  const strOff = buf.readUInt32LE(16);
  const strLen = buf.readUInt32LE(20);
  const dataLen = buf.length - hdrLen;
  if (typeOff > dataLen || typeLen > dataLen - typeOff) {
    fail(`type section (offset ${typeOff}, length ${typeLen}) extends past the end of the data (${dataLen} bytes)`);
  }
  if (strOff > dataLen || strLen > dataLen - strOff) {
    fail(`string section (offset ${strOff}, length ${strLen}) extends past the end of the data (${dataLen} bytes)`);
  }
  if (typeOff % 4 !== 0) fail(`type section offset ${typeOff} is not 4-byte aligned`);
  if (typeLen % 4 !== 0) fail(`type section length ${typeLen} is not a multiple of 4`);
  if (typeLen > 0 && strLen > 0 && typeOff < strOff + strLen && strOff < typeOff + typeLen) {
    fail(`type section (${typeOff}+${typeLen}) overlaps string section (${strOff}+${strLen})`);
  }
  if (strLen === 0) fail('string section is empty');
  const strStart = hdrLen + strOff;
  if (buf[strStart] !== 0) fail('string section does not start with an empty string');

  const strings = new StringTable(buf, strStart, strLen);
  const str = (off: number, what: () => string) => readString(strings, off, what, fail);

  const types: BtfType[] = [{ id: 0, kind: 'void', name: '', nameOff: 0 }];
  const recordOffsets: number[] = [-1];
  const typeStart = hdrLen + typeOff;
  const typeEnd = typeStart + typeLen;
  let off = typeStart;
  while (off < typeEnd) {
    const id = types.length;
    if (id > BTF_MAX_TYPE) fail(`more than ${BTF_MAX_TYPE} types`);
    const at = () => `type ${id} (at type-section offset ${off - typeStart})`;
    if (typeEnd - off < TYPE_HDR) fail(`${at()}: record truncated (${typeEnd - off} bytes left, need ${TYPE_HDR})`);
    const nameOff = buf.readUInt32LE(off);
    const info = buf.readUInt32LE(off + 4);
    const sizeOrType = buf.readUInt32LE(off + 8);
    const vlen = info & 0xffff;
    const kindNum = (info >>> 24) & 0x1f;
    const kflag = info >>> 31 === 1;
    if (kindNum === 0 || kindNum >= BTF_KINDS.length) fail(`${at()}: unknown kind ${kindNum}`);
    if ((info & 0x60ff0000) !== 0) fail(`${at()}: reserved bits set in info 0x${info.toString(16)}`);
    const kind = BTF_KINDS[kindNum];
    const name = str(nameOff, () => `${at()} ${kind} name`);
    const label = () => `${at()} ${kind} '${name}'`;

    let extra: number;
    switch (kind) {
      case 'int':
      case 'var':
      case 'decl_tag':
        extra = 4;
        break;
      case 'array':
        extra = 12;
        break;
      case 'struct':
      case 'union':
      case 'datasec':
      case 'enum64':
        extra = vlen * 12;
        break;
      case 'enum':
      case 'func_proto':
        extra = vlen * 8;
        break;
      default:
        extra = 0;
    }
    if (typeEnd - off - TYPE_HDR < extra) {
      fail(`${label()}: ${extra} bytes of trailing data (vlen ${vlen}) extend past the end of the type section`);
    }
    const p = off + TYPE_HDR;
    const t: BtfType = { id, kind, name, nameOff };
    switch (kind) {
      case 'int': {
        const d = buf.readUInt32LE(p);
        t.size = sizeOrType;
        t.intEncoding = (d >>> 24) & 0x0f;
        t.intOffset = (d >>> 16) & 0xff;
        t.intBits = d & 0xff;
        if ((d & 0xf0000000) !== 0 || (d & 0x0000ff00) !== 0) fail(`${label()}: reserved bits set in int data 0x${d.toString(16)}`);
        if (t.intBits > 128) fail(`${label()}: ${t.intBits} bits is more than 128`);
        if (t.intOffset + t.intBits > sizeOrType * 8) fail(`${label()}: bits ${t.intOffset}+${t.intBits} do not fit in ${sizeOrType} bytes`);
        break;
      }
      case 'ptr':
      case 'typedef':
      case 'volatile':
      case 'const':
      case 'restrict':
      case 'type_tag':
        t.type = sizeOrType;
        break;
      case 'func':
        t.type = sizeOrType;
        t.linkage = vlen;
        if (vlen > BTF_LINKAGE_EXTERN) fail(`${label()}: invalid linkage ${vlen}`);
        break;
      case 'var':
        t.type = sizeOrType;
        t.linkage = buf.readUInt32LE(p);
        break;
      case 'decl_tag':
        t.type = sizeOrType;
        t.componentIdx = buf.readInt32LE(p);
        if (t.componentIdx < -1) fail(`${label()}: invalid component index ${t.componentIdx}`);
        break;
      case 'array':
        t.array = { type: buf.readUInt32LE(p), indexType: buf.readUInt32LE(p + 4), nelems: buf.readUInt32LE(p + 8) };
        break;
      case 'struct':
      case 'union': {
        t.size = sizeOrType;
        t.members = [];
        for (let i = 0; i < vlen; i++) {
          const m = p + i * 12;
          const mNameOff = buf.readUInt32LE(m);
          const mType = buf.readUInt32LE(m + 4);
          const mOff = buf.readUInt32LE(m + 8);
          const mName = str(mNameOff, () => `${label()} member ${i} name`);
          t.members.push(
            kflag
              ? { name: mName, type: mType, bitOffset: mOff & 0xffffff, bitSize: mOff >>> 24 }
              : { name: mName, type: mType, bitOffset: mOff, bitSize: 0 },
          );
        }
        break;
      }
      case 'enum': {
        t.size = sizeOrType;
        t.signed = kflag;
        t.enumValues = [];
        for (let i = 0; i < vlen; i++) {
          const m = p + i * 8;
          const eNameOff = buf.readUInt32LE(m);
          const value = BigInt(kflag ? buf.readInt32LE(m + 4) : buf.readUInt32LE(m + 4));
          t.enumValues.push({ name: str(eNameOff, () => `${label()} value ${i} name`), value });
        }
        break;
      }
      case 'enum64': {
        t.size = sizeOrType;
        t.signed = kflag;
        t.enumValues = [];
        for (let i = 0; i < vlen; i++) {
          const m = p + i * 12;
          const eNameOff = buf.readUInt32LE(m);
          const raw = (BigInt(buf.readUInt32LE(m + 8)) << 32n) | BigInt(buf.readUInt32LE(m + 4));
          const value = kflag ? BigInt.asIntN(64, raw) : raw;
          t.enumValues.push({ name: str(eNameOff, () => `${label()} value ${i} name`), value });
        }
        break;
      }
      case 'fwd':
        t.fwdUnion = kflag;
        break;
      case 'func_proto': {
        t.type = sizeOrType;
        t.params = [];
        for (let i = 0; i < vlen; i++) {
          const m = p + i * 8;
          const pNameOff = buf.readUInt32LE(m);
          t.params.push({ name: str(pNameOff, () => `${label()} param ${i} name`), type: buf.readUInt32LE(m + 4) });
        }
        break;
      }
      case 'datasec': {
        t.size = sizeOrType;
        t.secinfo = [];
        for (let i = 0; i < vlen; i++) {
          const m = p + i * 12;
          t.secinfo.push({ type: buf.readUInt32LE(m), offset: buf.readUInt32LE(m + 4), size: buf.readUInt32LE(m + 8) });
        }
        break;
      }
      case 'float':
        t.size = sizeOrType;
        if (![2, 4, 8, 12, 16].includes(sizeOrType)) fail(`${label()}: invalid float size ${sizeOrType}`);
        break;
      case 'void':
        break;
    }
    types.push(t);
    recordOffsets.push(off);
    off = p + extra;
  }

  // Every type id a record refers to must exist.
  const n = types.length;
  const check = (t: BtfType, ref: number, what: string) => {
    if (ref >= n) fail(`type ${t.id} ${t.kind} '${t.name}': ${what} refers to type ${ref}, but there are only ${n} types`);
  };
  for (const t of types) {
    if (t.type !== undefined) check(t, t.type, t.kind === 'func_proto' ? 'return type' : 'type');
    if (t.array) {
      check(t, t.array.type, 'element type');
      check(t, t.array.indexType, 'index type');
    }
    if (t.members) t.members.forEach((m, i) => check(t, m.type, `member ${i} (${m.name || 'anon'})`));
    if (t.params) t.params.forEach((p, i) => check(t, p.type, `param ${i} (${p.name || 'anon'})`));
    if (t.secinfo) {
      t.secinfo.forEach((v, i) => {
        check(t, v.type, `variable ${i}`);
        const k = types[v.type].kind;
        if (k !== 'var' && k !== 'func') fail(`type ${t.id} datasec '${t.name}': entry ${i} refers to a ${k} (type ${v.type}), expected var or func`);
      });
    }
    if (t.kind === 'func' && types[t.type!].kind !== 'func_proto') {
      fail(`type ${t.id} func '${t.name}': type ${t.type} is a ${types[t.type!].kind}, expected func_proto`);
    }
    if (t.kind === 'var' && t.type === 0) fail(`type ${t.id} var '${t.name}' has type void`);
  }

  return new Btf(buf, types, recordOffsets, strings, source);
}
