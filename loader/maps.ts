// Map specs from an object: BTF-defined maps in `.maps` (libbpf's
// `__uint/__type/__array` macros) and global data sections as single-entry
// array maps, as libbpf and cilium/ebpf do.
import type { Btf, BtfType } from './btf.js';
import type { ElfFile, ElfSection } from './elf.js';
import { SHF, SHT, STT } from './elf.js';
import { LoaderError } from './errors.js';
import { MapFlags, MapType } from '../native/index.js';

export const PIN_NONE = 0;
export const PIN_BY_NAME = 1;
const MapKind = MapType;

/** One initial element. `value` is raw bytes, or the name of another map (map-in-map) or program (prog array). */
export interface MapEntry {
  key: Buffer;
  value: Buffer | { map: string } | { program: string };
}

export interface MapSpec {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  pinning: number;
  numaNode?: number;
  mapExtra?: bigint;
  /** BTF type ids in the object's BTF (0 = none). */
  btfKeyTypeId: number;
  btfValueTypeId: number;
  /** For ARRAY_OF_MAPS / HASH_OF_MAPS: the inner map's shape. */
  inner?: MapSpec;
  /** Initial contents written after creation (never into a reused pinned map). */
  contents: MapEntry[];
  /** Freeze after writing contents (read-only global data). */
  freeze: boolean;
  /** Set for global data maps: the ELF section the map mirrors. */
  dataSection?: string;
}

const isMapInMap = (t: number) => t === MapKind.ARRAY_OF_MAPS || t === MapKind.HASH_OF_MAPS;

/** `__uint(name, N)` is `int (*name)[N]`: a pointer to an array of N elements. */
function uintMember(btf: Btf, mapName: string, member: string, typeId: number): number {
  const ptr = btf.resolve(typeId);
  if (ptr.kind !== 'ptr' || ptr.type === undefined) {
    throw new LoaderError(`map ${mapName}: field ${member} is not declared with __uint() (got ${btf.describe(typeId)})`);
  }
  const arr = btf.resolve(ptr.type);
  if (arr.kind !== 'array' || !arr.array) {
    throw new LoaderError(`map ${mapName}: field ${member} is not declared with __uint() (got ${btf.describe(typeId)})`);
  }
  return arr.array.nelems;
}

/** `__type(name, T)` is `typeof(T) *name`. Returns T's id. */
function typeMember(btf: Btf, mapName: string, member: string, typeId: number): number {
  const ptr = btf.resolve(typeId);
  if (ptr.kind !== 'ptr' || ptr.type === undefined) {
    throw new LoaderError(`map ${mapName}: field ${member} is not declared with __type() (got ${btf.describe(typeId)})`);
  }
  return ptr.type;
}

/** Parses one BTF map definition struct into a spec (without contents). */
function mapFromBtf(btf: Btf, name: string, def: BtfType, inner: boolean): MapSpec {
  if (def.kind !== 'struct' || !def.members) {
    throw new LoaderError(`map ${name}: definition in .maps must be a struct, got ${def.kind}`);
  }
  const spec: MapSpec = {
    name,
    type: 0,
    keySize: 0,
    valueSize: 0,
    maxEntries: 0,
    flags: 0,
    pinning: PIN_NONE,
    btfKeyTypeId: 0,
    btfValueTypeId: 0,
    contents: [],
    freeze: false,
  };
  let keySizeField: number | undefined;
  let valueSizeField: number | undefined;
  for (const m of def.members) {
    switch (m.name) {
      case 'type':
        spec.type = uintMember(btf, name, m.name, m.type);
        break;
      case 'max_entries':
        spec.maxEntries = uintMember(btf, name, m.name, m.type);
        break;
      case 'map_flags':
        spec.flags = uintMember(btf, name, m.name, m.type);
        break;
      case 'numa_node':
        spec.numaNode = uintMember(btf, name, m.name, m.type);
        break;
      case 'map_extra':
        spec.mapExtra = BigInt(uintMember(btf, name, m.name, m.type));
        break;
      case 'pinning': {
        const p = uintMember(btf, name, m.name, m.type);
        if (p !== PIN_NONE && p !== PIN_BY_NAME) {
          throw new LoaderError(`map ${name}: pinning ${p} is not supported (only LIBBPF_PIN_NONE and LIBBPF_PIN_BY_NAME)`);
        }
        if (inner && p !== PIN_NONE) throw new LoaderError(`map ${name}: an inner map cannot be pinned`);
        spec.pinning = p;
        break;
      }
      case 'key_size':
        keySizeField = uintMember(btf, name, m.name, m.type);
        break;
      case 'value_size':
        valueSizeField = uintMember(btf, name, m.name, m.type);
        break;
      case 'key': {
        const t = typeMember(btf, name, m.name, m.type);
        spec.btfKeyTypeId = t;
        spec.keySize = btf.sizeOf(t);
        break;
      }
      case 'value': {
        const t = typeMember(btf, name, m.name, m.type);
        spec.btfValueTypeId = t;
        spec.valueSize = btf.sizeOf(t);
        break;
      }
      case 'values': {
        // __array(values, T): `typeof(T) *values[]` — an array of pointers.
        const arr = btf.resolve(m.type);
        if (arr.kind !== 'array' || !arr.array) {
          throw new LoaderError(`map ${name}: field values must be declared with __array()`);
        }
        if (arr.array.nelems !== 0) {
          throw new LoaderError(`map ${name}: __array(values, ...) must be a flexible array`);
        }
        const ptr = btf.resolve(arr.array.type);
        if (ptr.kind !== 'ptr' || ptr.type === undefined) {
          throw new LoaderError(`map ${name}: values must be an array of pointers`);
        }
        const target = btf.resolve(ptr.type);
        if (target.kind === 'struct') {
          if (inner) throw new LoaderError(`map ${name}: nested map-in-map is not supported`);
          spec.inner = mapFromBtf(btf, `${name}.inner`, target, true);
        } else if (target.kind !== 'func_proto') {
          throw new LoaderError(`map ${name}: values must point to a map definition or a program, got ${target.kind}`);
        }
        break;
      }
      default:
        throw new LoaderError(`map ${name}: unknown field '${m.name}' in map definition`);
    }
  }
  if (spec.type === 0) throw new LoaderError(`map ${name}: missing map type (__uint(type, ...))`);
  if (keySizeField !== undefined) {
    if (spec.btfKeyTypeId && keySizeField !== spec.keySize) {
      throw new LoaderError(`map ${name}: key_size ${keySizeField} disagrees with key type size ${spec.keySize}`);
    }
    spec.keySize = keySizeField;
  }
  if (valueSizeField !== undefined) {
    if (spec.btfValueTypeId && valueSizeField !== spec.valueSize) {
      throw new LoaderError(`map ${name}: value_size ${valueSizeField} disagrees with value type size ${spec.valueSize}`);
    }
    spec.valueSize = valueSizeField;
  }
  if (isMapInMap(spec.type) || spec.type === MapKind.PROG_ARRAY) {
    // Values are fds as far as user space is concerned; the kernel wants no value BTF.
    if (spec.valueSize !== 0 && spec.valueSize !== 4) {
      throw new LoaderError(`map ${name}: value size of a map-in-map or program array must be 4, got ${spec.valueSize}`);
    }
    spec.valueSize = 4;
    spec.btfValueTypeId = 0;
    if (isMapInMap(spec.type) && !spec.inner) {
      throw new LoaderError(`map ${name}: map-in-map needs an inner map definition (__array(values, struct ...))`);
    }
  }
  if (spec.type === MapKind.RINGBUF || spec.type === MapKind.PERF_EVENT_ARRAY) {
    spec.btfKeyTypeId = 0;
    spec.btfValueTypeId = 0;
  }
  if (spec.type === MapKind.PERF_EVENT_ARRAY) {
    spec.keySize ||= 4;
    spec.valueSize ||= 4;
  }
  return spec;
}

/** Maps declared in the `.maps` section (BTF-defined). */
export function parseBtfMaps(elf: ElfFile, btf: Btf | undefined): MapSpec[] {
  const sec = elf.section('.maps');
  if (!sec) return [];
  if (!btf) throw new LoaderError(`${elf.source}: section .maps needs BTF (compile with -g)`);
  const datasec = btf.find('datasec', '.maps');
  if (!datasec || !datasec.secinfo) throw new LoaderError(`${elf.source}: no BTF DATASEC for .maps`);

  const specs: MapSpec[] = [];
  // Symbol offsets: the DATASEC in an object may hold 0 offsets; symbols hold the truth.
  const symByName = new Map(elf.symbolsIn(sec.index).map((s) => [s.name, s]));
  const relocs = elf.relocations(sec.index);
  for (const vsi of datasec.secinfo) {
    const v = btf.type(vsi.type);
    if (v.kind !== 'var' || v.type === undefined) {
      throw new LoaderError(`${elf.source}: .maps holds a ${v.kind}, expected variables`);
    }
    if (!v.name) throw new LoaderError(`${elf.source}: .maps holds a map variable with no name`);
    const def = btf.resolve(v.type);
    const spec = mapFromBtf(btf, v.name, def, false);

    // Static initialisers of `values` arrive as relocations inside the map's bytes.
    const sym = symByName.get(v.name);
    const valuesMember = def.members?.find((m) => m.name === 'values');
    if (sym && valuesMember) {
      const base = sym.value + valuesMember.bitOffset / 8;
      for (const r of relocs) {
        if (r.offset < base || r.offset >= sym.value + Math.max(sym.size, btf.sizeOf(v.type))) continue;
        const slot = (r.offset - base) / 8;
        if (!Number.isInteger(slot) || slot < 0) {
          throw new LoaderError(`map ${v.name}: misaligned initialiser relocation at offset ${r.offset}`);
        }
        const key = Buffer.alloc(spec.keySize);
        if (spec.keySize !== 4) throw new LoaderError(`map ${v.name}: initial values need a 4-byte key`);
        key.writeUInt32LE(slot);
        // A static map or program is relocated against its section symbol,
        // with its offset as the addend stored in the slot.
        let target = r.symbol.name;
        if (r.symbol.type === STT.SECTION) {
          const at = Number(sec.data.readBigUInt64LE(r.offset));
          const home = elf.sections[r.symbol.shndx];
          const hit = home && elf.symbolsIn(home.index).find((x) => (x.type === STT.OBJECT || x.type === STT.FUNC) && x.value === at);
          if (!hit) throw new LoaderError(`map ${v.name}: initialiser slot ${slot} points at offset ${at} of ${home?.name ?? 'an unknown section'}, where nothing starts`);
          target = hit.name;
        }
        spec.contents.push({ key, value: spec.type === MapKind.PROG_ARRAY ? { program: target } : { map: target } });
      }
      if (spec.contents.length && spec.type !== MapKind.PROG_ARRAY && !isMapInMap(spec.type)) {
        throw new LoaderError(`map ${v.name}: values can only be initialised for map-in-map and program arrays`);
      }
    }
    specs.push(spec);
  }
  return specs;
}

/** `.rodata*`, `.data*`, `.bss*`: one-element arrays whose value is the section. */
export function isDataSection(sec: ElfSection): boolean {
  if (!(sec.flags & SHF.ALLOC) || sec.flags & SHF.EXECINSTR) return false;
  if (sec.type !== SHT.PROGBITS && sec.type !== SHT.NOBITS) return false;
  return /^\.(rodata|data|bss)(\.|$)/.test(sec.name);
}

export function parseDataMaps(elf: ElfFile, btf: Btf | undefined): MapSpec[] {
  const specs: MapSpec[] = [];
  for (const sec of elf.sections) {
    if (!isDataSection(sec) || sec.size === 0) continue;
    // Only sections that code references need a map; string-literal sections
    // always are referenced when present.
    const readonly = sec.name.startsWith('.rodata');
    const datasec = btf?.find('datasec', sec.name);
    specs.push({
      name: sec.name,
      type: MapKind.ARRAY,
      keySize: 4,
      valueSize: sec.size,
      maxEntries: 1,
      flags: readonly ? MapFlags.RDONLY_PROG : 0,
      pinning: PIN_NONE,
      btfKeyTypeId: 0,
      btfValueTypeId: datasec ? datasec.id : 0,
      contents: [{ key: Buffer.alloc(4), value: Buffer.from(sec.type === SHT.NOBITS ? Buffer.alloc(sec.size) : sec.data) }],
      freeze: readonly,
      dataSection: sec.name,
    });
  }
  return specs;
}

/** A global variable in a data section, for constants and inspection. */
export interface Variable {
  name: string;
  section: string;
  offset: number;
  size: number;
  typeId: number;
  /** true for `const` (in .rodata): settable only before load. */
  constant: boolean;
}

export function parseVariables(elf: ElfFile, btf: Btf | undefined): Variable[] {
  const vars: Variable[] = [];
  for (const sec of elf.sections) {
    if (!isDataSection(sec)) continue;
    const datasec = btf?.find('datasec', sec.name);
    const syms = new Map(elf.symbolsIn(sec.index).filter((s) => s.type === STT.OBJECT).map((s) => [s.name, s]));
    for (const vsi of datasec?.secinfo ?? []) {
      const v = btf!.type(vsi.type);
      if (v.kind !== 'var' || v.type === undefined) continue;
      const sym = syms.get(v.name);
      const offset = sym ? sym.value : vsi.offset;
      const size = btf!.sizeOf(v.type);
      if (offset + size > sec.size) {
        throw new LoaderError(`${elf.source}: variable ${v.name} (offset ${offset}, size ${size}) lies outside ${sec.name}`);
      }
      vars.push({ name: v.name, section: sec.name, offset, size, typeId: v.type, constant: sec.name.startsWith('.rodata') });
    }
  }
  return vars;
}
