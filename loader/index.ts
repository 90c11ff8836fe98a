// The loader's public surface: read clang's BPF objects the way cilium/ebpf
// does, then create their maps and programs through native/.
export { LoaderError } from './errors.js';
export { CollectionSpec, loadCollectionSpec, parseCollectionSpec } from './collection.js';
export type { Collection, ConstValue, LoadOptions } from './collection.js';
export type { MapSpec, MapEntry, Variable } from './maps.js';
export type { ProgramSpec, MapRef, FuncInfo, LineInfo } from './programs.js';
export { sectionKind, knownSections } from './sections.js';
export { parseElf } from './elf.js';
export { parseBtf, Btf } from './btf.js';
export { parseBtfExt } from './btf_ext.js';
export { decodeValue } from './values.js';
export type { Decoded } from './values.js';
export { codecFor, checkLayout, layoutOf, findType } from './codec.js';
export type { Codec, ExpectedLayout, FieldLayout, Layout, Value } from './codec.js';
export { generateTypes, pascalCase } from './gen-types.js';
