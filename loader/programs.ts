// Programs from an object: split executable sections into functions, record
// what each instruction refers to (maps, global data, other functions), then
// link each program with the subprograms it calls — cilium/ebpf's approach,
// in plain TypeScript.
import type { Btf } from './btf.js';
import type { BtfExt, LineInfoRec } from './btf_ext.js';
import type { ElfFile, ElfSection, ElfSymbol } from './elf.js';
import { SHF, SHT, STB, STT } from './elf.js';
import { LoaderError } from './errors.js';
import { isDataSection } from './maps.js';
import { knownSections, sectionKind } from './sections.js';

export const INSN_SIZE = 8;
const OP_LD_IMM64 = 0x18; // BPF_LD | BPF_IMM | BPF_DW
const OP_CALL = 0x85; // BPF_JMP | BPF_CALL
export const PSEUDO_MAP_FD = 1;
export const PSEUDO_MAP_VALUE = 2;
const PSEUDO_CALL = 1;
const PSEUDO_KFUNC_CALL = 2;
const PSEUDO_FUNC = 4;

/** A map reference the loader resolves at load time by writing the map's fd. */
export interface MapRef {
  /** Instruction index (of the ld_imm64) in the linked program. */
  insn: number;
  map: string;
  /** Byte offset into the map value (global data); undefined for a plain map fd. */
  offset?: number;
}

export interface FuncInfo {
  insn: number;
  typeId: number;
}

/** A line_info record rebased onto the linked program (instruction index, not bytes). */
export type LineInfo = Omit<LineInfoRec, 'insnOff'> & { insn: number };

export interface ProgramSpec {
  name: string;
  section: string;
  /** 'xdp', 'tc', 'tcx/ingress', ... */
  kind: string;
  type: number;
  attachType: number;
  /** BPF_F_* load flags implied by the section (xdp.frags → XDP_HAS_FRAGS). */
  flags: number;
  license: string;
  /** Linked instructions; map fds are filled in at load from `mapRefs`. */
  instructions: Buffer;
  mapRefs: MapRef[];
  /** Where each linked function starts (the program itself first). */
  functions: { name: string; insn: number }[];
  funcInfo: FuncInfo[];
  lineInfo: LineInfo[];
}

type Ref =
  | { insn: number; kind: 'map'; map: string; offset?: number }
  | { insn: number; kind: 'call' | 'funcPtr'; target: string };

interface Func {
  key: string; // `${sectionIndex}:${startInsn}`
  name: string;
  section: ElfSection;
  start: number; // instruction index within its section
  end: number;
  isProgram: boolean;
  refs: Ref[];
}

const funcKey = (sec: number, insn: number) => `${sec}:${insn}`;

function isExecSection(sec: ElfSection): boolean {
  return sec.type === SHT.PROGBITS && (sec.flags & SHF.EXECINSTR) !== 0 && sec.size > 0;
}

function splitFunctions(elf: ElfFile, sec: ElfSection, isProgSection: boolean): Func[] {
  if (sec.size % INSN_SIZE !== 0) {
    throw new LoaderError(`${elf.source}: section ${sec.name} size ${sec.size} is not a multiple of ${INSN_SIZE}`);
  }
  const n = sec.size / INSN_SIZE;
  const syms = elf.symbolsIn(sec.index).filter((s) => s.type === STT.FUNC);
  if (syms.length === 0) throw new LoaderError(`${elf.source}: section ${sec.name} holds code but no function symbol`);
  const funcs: Func[] = [];
  syms.forEach((s, i) => {
    if (!s.name) throw new LoaderError(`${elf.source}: section ${sec.name} has a function symbol with no name`);
    if (s.value % INSN_SIZE !== 0) throw new LoaderError(`${elf.source}: function ${s.name} starts at unaligned offset ${s.value}`);
    const start = s.value / INSN_SIZE;
    const next = i + 1 < syms.length ? syms[i + 1].value / INSN_SIZE : n;
    const end = s.size > 0 ? start + s.size / INSN_SIZE : next;
    if (start >= n || end > n || end <= start || !Number.isInteger(end)) {
      throw new LoaderError(`${elf.source}: function ${s.name} (offset ${s.value}, size ${s.size}) lies outside section ${sec.name}`);
    }
    funcs.push({
      key: funcKey(sec.index, start),
      name: s.name,
      section: sec,
      start,
      end,
      // In a program section every global function is a program; `.text` holds subprograms.
      isProgram: isProgSection && s.bind !== STB.LOCAL,
      refs: [],
    });
  });
  return funcs;
}

/** The map variable (an OBJECT symbol in .maps) that starts at `offset`. */
export function mapSymbolAt(elf: ElfFile, maps: ElfSection, offset: number, where: string): string {
  const s = elf.symbolsIn(maps.index).find((x) => x.type === STT.OBJECT && x.value === offset);
  if (!s) throw new LoaderError(`${elf.source}: ${where} refers to offset ${offset} of .maps, where no map starts`);
  return s.name;
}

function funcAt(funcs: Func[], insn: number): Func | undefined {
  return funcs.find((f) => insn >= f.start && insn < f.end);
}

/** Records every reference in the section's instructions (relocated or plain bpf-to-bpf calls). */
function collectRefs(elf: ElfFile, sec: ElfSection, funcs: Func[], funcsBySection: Map<number, Func[]>): void {
  const code = sec.data;
  const relocated = new Set<number>();
  const targetFunc = (targetSec: number, insn: number, from: string): string => {
    const f = funcsBySection.get(targetSec)?.find((x) => x.start === insn);
    if (!f) throw new LoaderError(`${elf.source}: ${from} refers to instruction ${insn} of section ${elf.sections[targetSec]?.name ?? targetSec}, which starts no function`);
    return f.key;
  };

  for (const r of elf.relocations(sec.index)) {
    if (r.offset % INSN_SIZE !== 0 || r.offset + INSN_SIZE > code.length) {
      throw new LoaderError(`${elf.source}: relocation at offset ${r.offset} in ${sec.name} is not on an instruction`);
    }
    const i = r.offset / INSN_SIZE;
    const fn = funcAt(funcs, i);
    if (!fn) throw new LoaderError(`${elf.source}: relocation at offset ${r.offset} in ${sec.name} lies outside every function`);
    const op = code[r.offset];
    const src = code[r.offset + 1] >> 4;
    const imm = code.readInt32LE(r.offset + 4);
    const sym: ElfSymbol = r.symbol;
    const where = `${fn.name} (${sec.name}+${r.offset})`;
    const target = sym.shndx > 0 && sym.shndx < 0xff00 ? elf.sections[sym.shndx] : undefined;
    if (!target) {
      const what = op === OP_CALL && src === PSEUDO_KFUNC_CALL ? 'kfunc' : 'extern (kconfig/ksym)';
      throw new LoaderError(`${elf.source}: ${where} uses ${what} symbol '${sym.name}', which weir's loader does not support`);
    }
    relocated.add(i);
    const rel = i - fn.start;
    if (target.name === '.maps') {
      if (op !== OP_LD_IMM64) throw new LoaderError(`${elf.source}: ${where} refers to map ${sym.name} from a non-ld_imm64 instruction`);
      // A static map is relocated against the section symbol, its offset in imm.
      const name = sym.type === STT.SECTION ? mapSymbolAt(elf, target, imm, where) : sym.name;
      fn.refs.push({ insn: rel, kind: 'map', map: name });
    } else if (isDataSection(target)) {
      if (op !== OP_LD_IMM64) throw new LoaderError(`${elf.source}: ${where} refers to ${target.name} from a non-ld_imm64 instruction`);
      const offset = (sym.type === STT.SECTION ? 0 : sym.value) + imm;
      // The kernel refuses offsets at or past the end of the value.
      if (offset < 0 || offset >= target.size) throw new LoaderError(`${elf.source}: ${where} points ${offset} bytes into ${target.name} (size ${target.size})`);
      fn.refs.push({ insn: rel, kind: 'map', map: target.name, offset });
    } else if (isExecSection(target)) {
      if (op === OP_CALL && src === PSEUDO_CALL) {
        // For a static callee the symbol is the section and imm holds the offset.
        const t = sym.value / INSN_SIZE + imm + 1;
        fn.refs.push({ insn: rel, kind: 'call', target: targetFunc(target.index, t, where) });
      } else if (op === OP_LD_IMM64) {
        const t = (sym.value + imm) / INSN_SIZE;
        fn.refs.push({ insn: rel, kind: 'funcPtr', target: targetFunc(target.index, t, where) });
      } else {
        throw new LoaderError(`${elf.source}: ${where} refers to code in ${target.name} from an instruction that is neither a call nor ld_imm64`);
      }
    } else {
      throw new LoaderError(`${elf.source}: ${where} refers to symbol '${sym.name}' in section ${target.name}, which is neither a map, global data nor code`);
    }
  }

  // bpf-to-bpf calls inside one section may come without a relocation.
  for (const fn of funcs) {
    for (let i = fn.start; i < fn.end; i++) {
      const off = i * INSN_SIZE;
      if (relocated.has(i)) continue;
      if (code[off] === OP_CALL && code[off + 1] >> 4 === PSEUDO_CALL) {
        const t = i + code.readInt32LE(off + 4) + 1;
        fn.refs.push({ insn: i - fn.start, kind: 'call', target: targetFunc(sec.index, t, `${fn.name} (${sec.name}+${off})`) });
      }
      if (code[off] === OP_LD_IMM64) i++; // second half of a 16-byte instruction
    }
  }
}

export function parsePrograms(elf: ElfFile, btf: Btf | undefined, ext: BtfExt | undefined, license: string): ProgramSpec[] {
  const funcsBySection = new Map<number, Func[]>();
  const byKey = new Map<string, Func>();
  for (const sec of elf.sections) {
    if (!isExecSection(sec)) continue;
    const isText = sec.name === '.text';
    if (!isText && !sectionKind(sec.name)) {
      throw new LoaderError(
        `${elf.source}: unknown program section '${sec.name}' (known: ${knownSections().join(', ')})`,
      );
    }
    const funcs = splitFunctions(elf, sec, !isText);
    funcsBySection.set(sec.index, funcs);
    for (const f of funcs) byKey.set(f.key, f);
  }
  for (const [idx, funcs] of funcsBySection) collectRefs(elf, elf.sections[idx], funcs, funcsBySection);

  const programs: ProgramSpec[] = [];
  for (const funcs of funcsBySection.values()) {
    for (const entry of funcs) {
      if (!entry.isProgram) continue;
      programs.push(link(elf, entry, byKey, btf, ext, license));
    }
  }
  return programs;
}

/** Lays out the entry function then every function it reaches, and fixes calls. */
function link(elf: ElfFile, entry: Func, byKey: Map<string, Func>, btf: Btf | undefined, ext: BtfExt | undefined, license: string): ProgramSpec {
  const kind = sectionKind(entry.section.name)!;
  const order: Func[] = [entry];
  const layout = new Map<string, number>([[entry.key, 0]]);
  let total = entry.end - entry.start;
  for (let k = 0; k < order.length; k++) {
    for (const ref of order[k].refs) {
      if (ref.kind === 'map' || layout.has(ref.target)) continue;
      const callee = byKey.get(ref.target)!;
      layout.set(callee.key, total);
      total += callee.end - callee.start;
      order.push(callee);
    }
  }

  const insns = Buffer.alloc(total * INSN_SIZE);
  const mapRefs: MapRef[] = [];
  for (const f of order) {
    const base = layout.get(f.key)!;
    f.section.data.copy(insns, base * INSN_SIZE, f.start * INSN_SIZE, f.end * INSN_SIZE);
    for (const ref of f.refs) {
      const at = base + ref.insn;
      const off = at * INSN_SIZE;
      if (ref.kind === 'map') {
        if (off + 2 * INSN_SIZE > insns.length) throw new LoaderError(`${elf.source}: ${f.name}: truncated ld_imm64 at instruction ${ref.insn}`);
        const isValue = ref.offset !== undefined;
        insns[off + 1] = (insns[off + 1] & 0x0f) | ((isValue ? PSEUDO_MAP_VALUE : PSEUDO_MAP_FD) << 4);
        insns.writeInt32LE(0, off + 4);
        insns.writeInt32LE(isValue ? ref.offset! : 0, off + INSN_SIZE + 4);
        mapRefs.push({ insn: at, map: ref.map, offset: ref.offset });
      } else {
        const target = layout.get(ref.target)!;
        if (ref.kind === 'funcPtr') insns[off + 1] = (insns[off + 1] & 0x0f) | (PSEUDO_FUNC << 4);
        insns.writeInt32LE(target - at - 1, off + 4);
      }
    }
  }

  const name = entry.name;
  // CO-RE relocations would need the kernel's BTF matched field by field; we do not do that.
  const core = ext?.coreRelos;
  if (core) {
    for (const f of order) {
      const n = (core.get(f.section.name) ?? []).filter((r) => r.insnOff / INSN_SIZE >= f.start && r.insnOff / INSN_SIZE < f.end).length;
      if (n > 0) {
        throw new LoaderError(`${elf.source}: program ${name} needs ${n} CO-RE relocation(s) (in ${f.name}); weir's loader does not implement CO-RE`);
      }
    }
  }

  const { funcInfo, lineInfo } = debugInfo(order, layout, btf, ext);
  return {
    name,
    section: entry.section.name,
    kind: kind.kind,
    type: kind.progType,
    attachType: kind.attachType,
    flags: kind.progFlags ?? 0,
    license,
    instructions: insns,
    mapRefs,
    functions: order.map((f) => ({ name: f.name, insn: layout.get(f.key)! })),
    funcInfo,
    lineInfo,
  };
}

/** func_info and line_info rebased onto the linked layout; all or nothing, as the kernel requires. */
function debugInfo(order: Func[], layout: Map<string, number>, btf: Btf | undefined, ext: BtfExt | undefined) {
  const none = { funcInfo: [] as FuncInfo[], lineInfo: [] as LineInfo[] };
  if (!btf || !ext) return none;
  const funcInfo: FuncInfo[] = [];
  const lineInfo: LineInfo[] = [];
  for (const f of order) {
    const base = layout.get(f.key)!;
    const fi = (ext.funcInfo.get(f.section.name) ?? []).find((r) => r.insnOff === f.start * INSN_SIZE);
    if (!fi) return none;
    funcInfo.push({ insn: base, typeId: fi.typeId });
    const lines = (ext.lineInfo.get(f.section.name) ?? []).filter(
      (r: LineInfoRec) => r.insnOff >= f.start * INSN_SIZE && r.insnOff < f.end * INSN_SIZE,
    );
    for (const r of lines) {
      const { insnOff, ...rest } = r;
      lineInfo.push({ ...rest, insn: base + insnOff / INSN_SIZE - f.start });
    }
  }
  return { funcInfo, lineInfo };
}

/** Encodes func_info records for BPF_PROG_LOAD (struct bpf_func_info). */
export function encodeFuncInfo(recs: FuncInfo[]): Buffer {
  const b = Buffer.alloc(recs.length * 8);
  recs.forEach((r, i) => {
    b.writeUInt32LE(r.insn, i * 8);
    b.writeUInt32LE(r.typeId, i * 8 + 4);
  });
  return b;
}

/** Encodes line_info records for BPF_PROG_LOAD (struct bpf_line_info). */
export function encodeLineInfo(recs: LineInfo[]): Buffer {
  const b = Buffer.alloc(recs.length * 16);
  recs.forEach((r, i) => {
    b.writeUInt32LE(r.insn, i * 16);
    b.writeUInt32LE(r.fileNameOff, i * 16 + 4);
    b.writeUInt32LE(r.lineOff, i * 16 + 8);
    b.writeUInt32LE(r.lineCol, i * 16 + 12);
  });
  return b;
}
