// The collection API, shaped like cilium/ebpf's: parse an object into an
// inspectable, editable CollectionSpec, then load it into the kernel as a
// Collection of map and program handles.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Btf, parseBtf } from './btf.js';
import { BtfExt, parseBtfExt } from './btf_ext.js';
import { ElfFile, parseElf } from './elf.js';
import { LoaderError } from './errors.js';
import { MapSpec, Variable, parseBtfMaps, parseDataMaps, parseVariables } from './maps.js';
import { ProgramSpec, parsePrograms } from './programs.js';

export type ConstValue = number | bigint | boolean | Buffer;

export class CollectionSpec {
  constructor(
    readonly source: string,
    readonly maps: Record<string, MapSpec>,
    readonly programs: Record<string, ProgramSpec>,
    readonly variables: Record<string, Variable>,
    readonly license: string,
    /** The object's BTF with DATASEC sizes and variable offsets filled in. */
    readonly btf: Btf | undefined,
    /** The same BTF as raw bytes, ready for the kernel. */
    readonly kernelBtf: Buffer | undefined,
    readonly btfExt: BtfExt | undefined,
  ) {}

  /**
   * Sets `volatile const` globals (in .rodata) before load, like cilium/ebpf's
   * RewriteConstants: the value is checked against the variable's BTF type.
   */
  setConstants(values: Record<string, ConstValue>): void {
    for (const [name, value] of Object.entries(values)) {
      const v = this.variables[name];
      if (!v) {
        const known = Object.values(this.variables).filter((x) => x.constant).map((x) => x.name);
        throw new LoaderError(`${this.source}: no constant named '${name}' (constants: ${known.join(', ') || 'none'})`);
      }
      if (!v.constant) {
        throw new LoaderError(`${this.source}: '${name}' lives in ${v.section}, not .rodata; only 'volatile const' globals can be set before load`);
      }
      const map = this.maps[v.section];
      const data = map?.contents[0]?.value;
      if (!Buffer.isBuffer(data)) throw new LoaderError(`${this.source}: no data map for ${v.section}`);
      encodeConstant(this.btf!, v, value).copy(data, v.offset);
    }
  }

  /** A deep copy: editing or setting constants on it leaves this spec alone. */
  copy(): CollectionSpec {
    const copyMap = (m: MapSpec): MapSpec => ({
      ...m,
      inner: m.inner && copyMap(m.inner),
      contents: m.contents.map((c) => ({ key: Buffer.from(c.key), value: Buffer.isBuffer(c.value) ? Buffer.from(c.value) : { ...c.value } })),
    });
    const maps = Object.fromEntries(Object.entries(this.maps).map(([k, m]) => [k, copyMap(m)]));
    const programs = Object.fromEntries(
      Object.entries(this.programs).map(([k, p]) => [
        k,
        { ...p, instructions: Buffer.from(p.instructions), mapRefs: p.mapRefs.map((r) => ({ ...r })), functions: [...p.functions], funcInfo: [...p.funcInfo], lineInfo: [...p.lineInfo] },
      ]),
    );
    const variables = Object.fromEntries(Object.entries(this.variables).map(([k, v]) => [k, { ...v }]));
    return new CollectionSpec(this.source, maps, programs, variables, this.license, this.btf, this.kernelBtf, this.btfExt);
  }

  /**
   * Creates (or reuses pinned) maps and loads the programs. `constants` apply
   * to this load only; the spec itself is not changed.
   */
  async load(opts: LoadOptions = {}): Promise<Collection> {
    const { loadCollection } = await import('./load.js');
    return loadCollection(this, opts);
  }
}

export interface LoadOptions {
  /** Directory for maps with `pinning = LIBBPF_PIN_BY_NAME` (e.g. /sys/fs/bpf/weir). */
  pinRoot?: string;
  constants?: Record<string, ConstValue>;
  /** Use these already-open maps instead of creating the named ones (shapes are checked). */
  mapReplacements?: Record<string, import('../native/index.js').BpfMap>;
  /** Load only these programs (default: all). */
  programs?: string[];
  /** Verifier log level for successful loads (failures always carry a log). */
  logLevel?: number;
}

export interface Collection {
  maps: Record<string, import('../native/index.js').BpfMap>;
  programs: Record<string, import('../native/index.js').BpfProgram>;
  /** Closes every handle; pinned maps stay in bpffs. */
  close(): void;
}

export function loadCollectionSpec(path: string): CollectionSpec {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new LoaderError(`cannot read BPF object ${path}: ${(e as Error).message}`, { cause: e });
  }
  return parseCollectionSpec(buf, path);
}

export function parseCollectionSpec(buf: Buffer, source = '<buffer>'): CollectionSpec {
  try {
    return parse(buf, source);
  } catch (e) {
    if (e instanceof LoaderError) throw e;
    // Anything else is a malformed object we failed to anticipate: still a LoaderError for the caller.
    throw new LoaderError(`${source}: malformed BPF object (${(e as Error).message})`, { cause: e });
  }
}

function parse(buf: Buffer, source: string): CollectionSpec {
  const elf = parseElf(buf, source);
  const btfSec = elf.section('.BTF');
  const btf = btfSec ? parseBtf(btfSec.data, source) : undefined;
  const extSec = elf.section('.BTF.ext');
  const ext = extSec && btf ? parseBtfExt(extSec.data, btf, source) : undefined;
  if (elf.section('maps')) {
    throw new LoaderError(`${source}: legacy 'maps' section (struct bpf_map_def) is not supported; declare maps in SEC(".maps") with BTF`);
  }
  const licSec = elf.section('license');
  const license = licSec ? licSec.data.toString('latin1').replace(/\0.*$/s, '') : '';

  const maps: Record<string, MapSpec> = {};
  for (const m of [...parseBtfMaps(elf, btf), ...parseDataMaps(elf, btf)]) {
    if (maps[m.name]) throw new LoaderError(`${source}: two maps named ${m.name}`);
    maps[m.name] = m;
  }
  const variables: Record<string, Variable> = {};
  for (const v of parseVariables(elf, btf)) variables[v.name] = v;

  const programs: Record<string, ProgramSpec> = {};
  for (const p of parsePrograms(elf, btf, ext, license)) {
    for (const r of p.mapRefs) {
      if (!maps[r.map]) throw new LoaderError(`${source}: program ${p.name} refers to unknown map ${r.map}`);
    }
    programs[p.name] = p;
  }
  for (const m of Object.values(maps)) {
    for (const c of m.contents) {
      if (Buffer.isBuffer(c.value)) continue;
      const ref = 'map' in c.value ? maps[c.value.map] : programs[c.value.program];
      if (!ref) throw new LoaderError(`${source}: map ${m.name} is initialised with unknown ${'map' in c.value ? 'map' : 'program'} ${'map' in c.value ? c.value.map : c.value.program}`);
    }
  }

  // Expose the fixed-up BTF: same types, but DATASEC offsets are real, so
  // tools decoding global data by variable read the right bytes.
  const kernelBtf = btf ? fixupBtf(elf, btf) : undefined;
  const fixed = kernelBtf ? parseBtf(kernelBtf, source) : undefined;
  return new CollectionSpec(source, maps, programs, variables, license, fixed, kernelBtf, ext);
}

function fixupBtf(elf: ElfFile, btf: Btf): Buffer {
  return btf.fixupDatasecs(
    (sec) => elf.section(sec)?.size,
    (sec, name) => {
      const s = elf.section(sec);
      if (!s) return undefined;
      return elf.symbolsIn(s.index).find((x) => x.name === name)?.value;
    },
  );
}

function encodeConstant(btf: Btf, v: Variable, value: ConstValue): Buffer {
  const t = btf.resolve(v.typeId);
  const out = Buffer.alloc(v.size);
  const what = `constant ${v.name} (${btf.describe(v.typeId)}, ${v.size} bytes)`;
  if (Buffer.isBuffer(value)) {
    if (value.length !== v.size) throw new LoaderError(`${what}: got a ${value.length}-byte buffer`);
    return Buffer.from(value);
  }
  let signed: boolean;
  if (t.kind === 'int') signed = ((t.intEncoding ?? 0) & 1) !== 0;
  else if (t.kind === 'enum' || t.kind === 'enum64') signed = !!t.signed;
  else throw new LoaderError(`${what}: only integer, bool and enum constants take a number; pass a Buffer for ${t.kind}`);
  let n: bigint;
  if (typeof value === 'boolean') n = value ? 1n : 0n;
  else if (typeof value === 'bigint') n = value;
  else if (Number.isInteger(value)) n = BigInt(value);
  else throw new LoaderError(`${what}: ${value} is not an integer`);
  const bits = BigInt(v.size * 8);
  const min = signed ? -(1n << (bits - 1n)) : 0n;
  const max = signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n;
  if (n < min || n > max) throw new LoaderError(`${what}: ${value} is out of range ${min}..${max}`);
  const u = BigInt.asUintN(Number(bits), n);
  for (let i = 0; i < v.size; i++) out[i] = Number((u >> BigInt(8 * i)) & 0xffn);
  return out;
}

export const pinPath = (root: string, name: string) => join(root, name);
