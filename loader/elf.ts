/**
 * A minimal, defensive reader for the ELF objects clang emits for BPF
 * (`clang -target bpf -c`): ELF64, little-endian, e_machine EM_BPF,
 * relocatable (ET_REL). It exposes sections, the symbol table and the
 * REL/RELA relocation entries; interpreting them (programs, maps, global
 * data) is the collection's job.
 *
 * Every offset, size and count read from the file is bounds-checked before
 * use; anything malformed raises LoaderError naming the file and what is
 * wrong. Nothing here allocates more than the file size, except NOBITS
 * sections whose zero-filled data is allocated lazily and capped.
 */
import { LoaderError, guardParse } from './errors.js';

export const SHT = {
  NULL: 0,
  PROGBITS: 1,
  SYMTAB: 2,
  STRTAB: 3,
  RELA: 4,
  HASH: 5,
  DYNAMIC: 6,
  NOTE: 7,
  NOBITS: 8,
  REL: 9,
  SHLIB: 10,
  DYNSYM: 11,
  INIT_ARRAY: 14,
  FINI_ARRAY: 15,
  PREINIT_ARRAY: 16,
  GROUP: 17,
  SYMTAB_SHNDX: 18,
  LLVM_ADDRSIG: 0x6fff4c03,
} as const;

export const SHF = {
  WRITE: 0x1,
  ALLOC: 0x2,
  EXECINSTR: 0x4,
  MERGE: 0x10,
  STRINGS: 0x20,
  INFO_LINK: 0x40,
} as const;

export const STT = { NOTYPE: 0, OBJECT: 1, FUNC: 2, SECTION: 3, FILE: 4 } as const;
export const STB = { LOCAL: 0, GLOBAL: 1, WEAK: 2 } as const;
export const STV = { DEFAULT: 0, INTERNAL: 1, HIDDEN: 2, PROTECTED: 3 } as const;
/** Special section indices (st_shndx). */
export const SHN = { UNDEF: 0, LORESERVE: 0xff00, ABS: 0xfff1, COMMON: 0xfff2, XINDEX: 0xffff } as const;

export const EM_BPF = 247;
export const ET_REL = 1;

/** BPF relocation types (r_info & 0xffffffff). */
export const R_BPF_NONE = 0;
export const R_BPF_64_64 = 1;
export const R_BPF_64_ABS64 = 2;
export const R_BPF_64_ABS32 = 3;
export const R_BPF_64_NODYLD32 = 4;
export const R_BPF_64_32 = 10;

/** Largest NOBITS section we are willing to materialise. */
export const MAX_NOBITS_SIZE = 256 * 1024 * 1024;

export interface ElfSection {
  index: number;
  name: string;
  type: number;
  flags: number;
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: number;
  entsize: number;
  /** File bytes (a copy); for NOBITS a zero-filled Buffer of `size`, allocated on first access. */
  data: Buffer;
}

export interface ElfSymbol {
  index: number;
  name: string;
  value: number;
  size: number;
  type: number;
  bind: number;
  visibility: number;
  shndx: number;
}

export interface ElfRelocation {
  offset: number;
  symbol: ElfSymbol;
  /** R_BPF_*: 1=64_64, 2=64_ABS64, 3=64_ABS32, 4=64_NODYLD32, 10=64_32 */
  type: number;
  /** Only for RELA sections. */
  addend?: bigint;
}

export interface ElfFile {
  /** File name for messages, or '<buffer>'. */
  source: string;
  /** All section headers; sections[i].index === i (sections[0] is the NULL section). */
  sections: ElfSection[];
  /** The whole symbol table; symbols[i].index === i (symbols[0] is the null symbol). Empty when there is no .symtab. */
  symbols: ElfSymbol[];
  section(name: string): ElfSection | undefined;
  /** Relocations that apply TO section `targetIndex` (from .rel<name> / .rela<name> sections with sh_info == targetIndex), sorted by offset. */
  relocations(targetIndex: number): ElfRelocation[];
  /** Symbols defined in section `index`, sorted by value. */
  symbolsIn(index: number): ElfSymbol[];
}

const MACHINES: Record<number, string> = {
  0: 'none',
  3: 'x86',
  8: 'MIPS',
  20: 'PowerPC',
  21: 'PowerPC64',
  22: 'S/390',
  40: 'ARM',
  62: 'x86-64',
  183: 'AArch64',
  243: 'RISC-V',
  258: 'LoongArch',
  247: 'BPF',
};

const ELF_TYPES: Record<number, string> = {
  0: 'ET_NONE',
  1: 'ET_REL (relocatable)',
  2: 'ET_EXEC (executable)',
  3: 'ET_DYN (shared object)',
  4: 'ET_CORE (core dump)',
};

const EHDR_SIZE = 64;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;
const REL_SIZE = 16;
const RELA_SIZE = 24;

/**
 * NUL-terminated strings from a string table, looked up by byte offset.
 * One pass over the table finds every NUL, so each lookup is a binary
 * search rather than a scan (a crafted file with many names pointing into
 * one long unterminated run would otherwise cost quadratic time); ASCII
 * tables are decoded once and names are cheap substrings of that.
 */
export class StringTable {
  private nuls: Int32Array | undefined;
  private ascii = true;
  private text: string | undefined;
  private readonly cache = new Map<number, string>();

  constructor(
    private readonly buf: Buffer,
    private readonly start = 0,
    readonly length = buf.length - start,
  ) {}

  private index(): Int32Array {
    if (this.nuls) return this.nuls;
    let n = 0;
    const end = this.start + this.length;
    for (let i = this.start; i < end; i++) {
      const c = this.buf[i];
      if (c === 0) n++;
      else if (c >= 0x80) this.ascii = false;
    }
    const nuls = new Int32Array(n);
    for (let i = this.start, j = 0; i < end; i++) if (this.buf[i] === 0) nuls[j++] = i - this.start;
    this.nuls = nuls;
    return nuls;
  }

  /** The string at `off`, or an error message (the caller adds context). */
  lookup(off: number): { ok: true; value: string } | { ok: false; error: string } {
    if (!Number.isInteger(off) || off < 0 || off >= this.length) {
      return { ok: false, error: `string offset ${off} is outside the string table (${this.length} bytes)` };
    }
    const hit = this.cache.get(off);
    if (hit !== undefined) return { ok: true, value: hit };
    const nuls = this.index();
    let lo = 0;
    let hi = nuls.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (nuls[mid] < off) lo = mid + 1;
      else hi = mid;
    }
    if (lo === nuls.length) return { ok: false, error: `string at offset ${off} is not NUL-terminated` };
    const end = nuls[lo];
    let value: string;
    if (this.ascii) {
      this.text ??= this.buf.toString('latin1', this.start, this.start + this.length);
      value = this.text.substring(off, end);
    } else {
      value = this.buf.toString('utf8', this.start + off, this.start + end);
    }
    this.cache.set(off, value);
    return { ok: true, value };
  }
}

/**
 * Build a section record. `data` is a plain property holding a copy of the
 * file bytes, except for NOBITS where it is an own enumerable getter that
 * allocates the zero-filled buffer on first access (so parsing a file that
 * claims a large .bss costs nothing until someone asks for the bytes).
 */
function makeSection(fields: Omit<ElfSection, 'data'>, fileData: Buffer | undefined): ElfSection {
  if (fileData !== undefined) return { ...fields, data: fileData };
  let cached: Buffer | undefined;
  const sec = { ...fields } as ElfSection;
  Object.defineProperty(sec, 'data', {
    enumerable: true,
    configurable: true,
    get: () => (cached ??= Buffer.alloc(fields.size)),
  });
  return sec;
}

class ElfFileImpl implements ElfFile {
  private readonly byName = new Map<string, ElfSection>();
  private readonly relocsByTarget = new Map<number, ElfRelocation[]>();
  private readonly symsBySection = new Map<number, ElfSymbol[]>();

  constructor(
    readonly source: string,
    readonly sections: ElfSection[],
    readonly symbols: ElfSymbol[],
    relocs: Map<number, ElfRelocation[]>,
  ) {
    for (const s of sections) if (!this.byName.has(s.name) && s.index !== 0) this.byName.set(s.name, s);
    for (const [k, v] of relocs) {
      v.sort((a, b) => a.offset - b.offset);
      this.relocsByTarget.set(k, v);
    }
    for (const sym of symbols) {
      if (sym.index === 0) continue;
      if (sym.shndx === SHN.UNDEF || sym.shndx >= SHN.LORESERVE) continue;
      let list = this.symsBySection.get(sym.shndx);
      if (!list) this.symsBySection.set(sym.shndx, (list = []));
      list.push(sym);
    }
    for (const list of this.symsBySection.values()) list.sort((a, b) => a.value - b.value || a.index - b.index);
  }

  section(name: string): ElfSection | undefined {
    return this.byName.get(name);
  }

  relocations(targetIndex: number): ElfRelocation[] {
    return [...(this.relocsByTarget.get(targetIndex) ?? [])];
  }

  symbolsIn(index: number): ElfSymbol[] {
    return [...(this.symsBySection.get(index) ?? [])];
  }
}

function describeMachine(m: number): string {
  const n = MACHINES[m];
  return n ? `${n} (${m})` : `unknown machine ${m}`;
}

/** Parse an ELF64 little-endian EM_BPF relocatable object. */
export function parseElf(buf: Buffer, source = '<buffer>'): ElfFile {
  return guardParse('ELF', source, () => parseElfInner(buf, source));
}

function parseElfInner(buf: Buffer, source: string): ElfFile {
  const fail = (msg: string): never => {
    throw new LoaderError(`${source}: ${msg}`);
  };
  if (!Buffer.isBuffer(buf)) fail('object is not a Buffer');
  if (buf.length < 16) fail(`not an ELF file: only ${buf.length} bytes`);
  if (buf[0] !== 0x7f || buf[1] !== 0x45 || buf[2] !== 0x4c || buf[3] !== 0x46) fail('not an ELF file: bad magic');
  const cls = buf[4];
  if (cls === 1) fail('32-bit ELF is not supported: BPF objects are ELF64');
  if (cls !== 2) fail(`not a valid ELF file: bad EI_CLASS ${cls}`);
  const data = buf[5];
  if (data === 2) fail('big-endian ELF is not supported: expected a little-endian BPF object (-target bpf / bpfel)');
  if (data !== 1) fail(`not a valid ELF file: bad EI_DATA ${data}`);
  if (buf[6] !== 1) fail(`unsupported ELF ident version ${buf[6]}`);
  if (buf.length < EHDR_SIZE) fail(`truncated ELF header: ${buf.length} bytes, need ${EHDR_SIZE}`);

  const eType = buf.readUInt16LE(16);
  const eMachine = buf.readUInt16LE(18);
  const eVersion = buf.readUInt32LE(20);
  if (eMachine !== EM_BPF) fail(`not a BPF object: machine is ${describeMachine(eMachine)}`);
  if (eType !== ET_REL) {
    fail(`not a relocatable BPF object: e_type is ${ELF_TYPES[eType] ?? `unknown (${eType})`}, expected ET_REL (compile with -c)`);
  }
  if (eVersion !== 1) fail(`unsupported ELF version ${eVersion}`);

  const shoff = u64num(buf, 40, 'e_shoff', fail);
  const shentsize = buf.readUInt16LE(58);
  let shnum = buf.readUInt16LE(60);
  let shstrndx = buf.readUInt16LE(62);

  if (shoff === 0) fail('ELF has no section header table (e_shoff is 0)');
  if (shentsize !== SHDR_SIZE) fail(`bad e_shentsize ${shentsize}, expected ${SHDR_SIZE}`);
  if (shoff > buf.length || buf.length - shoff < SHDR_SIZE) {
    fail(`section header table at offset ${shoff} is outside the file (${buf.length} bytes)`);
  }
  // Extended numbering: real counts live in section 0.
  if (shnum === 0) shnum = u64num(buf, shoff + 32, 'section 0 sh_size (extended e_shnum)', fail);
  if (shstrndx === SHN.XINDEX) shstrndx = buf.readUInt32LE(shoff + 40);
  if (shnum === 0) fail('ELF has no sections');
  if (shnum > (buf.length - shoff) / SHDR_SIZE) {
    fail(`section header table (${shnum} entries at offset ${shoff}) extends past the end of the file (${buf.length} bytes)`);
  }
  if (shstrndx === SHN.UNDEF) fail('ELF has no section name string table (e_shstrndx is 0)');
  if (shstrndx >= shnum) fail(`bad e_shstrndx ${shstrndx}: only ${shnum} sections`);

  // Raw headers first, names once the name table is known to be valid.
  const sections: ElfSection[] = [];
  const nameOffs: number[] = [];
  for (let i = 0; i < shnum; i++) {
    const h = shoff + i * SHDR_SIZE;
    const what = `section ${i}`;
    const nameOff = buf.readUInt32LE(h);
    const type = buf.readUInt32LE(h + 4);
    const flags = u64num(buf, h + 8, `${what} sh_flags`, fail);
    const offset = u64num(buf, h + 24, `${what} sh_offset`, fail);
    const size = u64num(buf, h + 32, `${what} sh_size`, fail);
    const link = buf.readUInt32LE(h + 40);
    const info = buf.readUInt32LE(h + 44);
    const addralign = u64num(buf, h + 48, `${what} sh_addralign`, fail);
    const entsize = u64num(buf, h + 56, `${what} sh_entsize`, fail);
    let fileData: Buffer | undefined;
    if (i === 0 || type === SHT.NULL) {
      fileData = Buffer.alloc(0);
    } else if (type === SHT.NOBITS) {
      if (size > MAX_NOBITS_SIZE) fail(`${what}: NOBITS section size ${size} exceeds the ${MAX_NOBITS_SIZE}-byte limit`);
    } else {
      if (offset > buf.length || size > buf.length - offset) {
        fail(`${what}: data (offset ${offset}, size ${size}) extends past the end of the file (${buf.length} bytes)`);
      }
      fileData = Buffer.from(buf.subarray(offset, offset + size));
    }
    nameOffs.push(nameOff);
    sections.push(makeSection({ index: i, name: '', type, flags, offset, size, link, info, addralign, entsize }, fileData));
  }

  const shstr = sections[shstrndx];
  if (shstr.type !== SHT.STRTAB) fail(`section name table (section ${shstrndx}) has type ${shstr.type}, expected SHT_STRTAB`);
  const shstrTab = new StringTable(shstr.data);
  for (let i = 1; i < shnum; i++) {
    sections[i].name = cstring(shstrTab, nameOffs[i], () => `name of section ${i}`, fail);
  }
  const secLabel = (i: number) => `section ${i} (${sections[i].name || '<unnamed>'})`;

  // Symbol table.
  const symtabs = sections.filter((s) => s.type === SHT.SYMTAB);
  if (symtabs.length > 1) fail(`ELF has ${symtabs.length} symbol tables, expected at most one`);
  const symbols: ElfSymbol[] = [];
  const symtab = symtabs[0];
  if (symtab) {
    const label = secLabel(symtab.index);
    if (symtab.entsize !== SYM_SIZE) fail(`${label}: bad sh_entsize ${symtab.entsize}, expected ${SYM_SIZE}`);
    if (symtab.size % SYM_SIZE !== 0) fail(`${label}: size ${symtab.size} is not a multiple of ${SYM_SIZE}`);
    if (symtab.link === 0 || symtab.link >= shnum) fail(`${label}: bad string table link ${symtab.link}`);
    const strtab = sections[symtab.link];
    if (strtab.type !== SHT.STRTAB) fail(`${label}: linked section ${secLabel(strtab.index)} is not a string table`);
    const count = symtab.size / SYM_SIZE;
    const strTab = new StringTable(strtab.data);
    // Optional extended section indices.
    const shndxSec = sections.find((s) => s.type === SHT.SYMTAB_SHNDX && s.link === symtab.index);
    if (shndxSec && shndxSec.size < count * 4) fail(`${secLabel(shndxSec.index)}: too small for ${count} symbols`);
    const d = symtab.data;
    for (let i = 0; i < count; i++) {
      const o = i * SYM_SIZE;
      const nameOff = d.readUInt32LE(o);
      const infoByte = d[o + 4];
      const other = d[o + 5];
      let shndx = d.readUInt16LE(o + 6);
      const value = u64num(d, o + 8, `symbol ${i} st_value`, fail);
      const size = u64num(d, o + 16, `symbol ${i} st_size`, fail);
      const name = cstring(strTab, nameOff, () => `name of symbol ${i}`, fail);
      if (shndx === SHN.XINDEX && shndxSec) shndx = shndxSec.data.readUInt32LE(i * 4);
      if (i > 0 && shndx !== SHN.UNDEF && shndx < SHN.LORESERVE && shndx >= shnum) {
        fail(`symbol ${i} (${name || '<unnamed>'}) refers to section ${shndx}, but there are only ${shnum} sections`);
      }
      symbols.push({ index: i, name, value, size, type: infoByte & 0xf, bind: infoByte >> 4, visibility: other & 3, shndx });
    }
  }

  // Relocations.
  const relocs = new Map<number, ElfRelocation[]>();
  for (const rs of sections) {
    if (rs.type !== SHT.REL && rs.type !== SHT.RELA) continue;
    const label = secLabel(rs.index);
    const isRela = rs.type === SHT.RELA;
    const entsize = isRela ? RELA_SIZE : REL_SIZE;
    if (rs.entsize !== entsize) fail(`${label}: bad sh_entsize ${rs.entsize}, expected ${entsize}`);
    if (rs.size % entsize !== 0) fail(`${label}: size ${rs.size} is not a multiple of ${entsize}`);
    if (rs.info === 0 || rs.info >= shnum) fail(`${label}: relocation target section ${rs.info} does not exist`);
    if (!symtab) fail(`${label}: relocations present but the object has no symbol table`);
    if (rs.link !== symtab!.index) fail(`${label}: linked to section ${rs.link}, expected the symbol table (section ${symtab!.index})`);
    const target = sections[rs.info];
    const d = rs.data;
    let list = relocs.get(rs.info);
    if (!list) relocs.set(rs.info, (list = []));
    for (let o = 0, n = 0; o < d.length; o += entsize, n++) {
      const offset = u64num(d, o, `${label} entry ${n} r_offset`, fail);
      const type = d.readUInt32LE(o + 8);
      const symIdx = d.readUInt32LE(o + 12);
      if (symIdx >= symbols.length) {
        fail(`${label} entry ${n}: symbol index ${symIdx} out of range (${symbols.length} symbols)`);
      }
      if (offset >= target.size) {
        fail(`${label} entry ${n}: offset ${offset} is outside target ${secLabel(target.index)} (size ${target.size})`);
      }
      const r: ElfRelocation = { offset, symbol: symbols[symIdx], type };
      if (isRela) r.addend = d.readBigInt64LE(o + 16);
      list.push(r);
    }
  }

  return new ElfFileImpl(source, sections, symbols, relocs);
}

function u64num(b: Buffer, off: number, what: string, fail: (m: string) => never): number {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} is too large (${v})`);
  return Number(v);
}

function cstring(tab: StringTable, off: number, what: () => string, fail: (m: string) => never): string {
  if (off === 0 && tab.length === 0) return ''; // empty table: offset 0 means "no name"
  const r = tab.lookup(off);
  if (!r.ok) fail(`${what()}: ${r.error}`);
  return (r as { value: string }).value;
}
