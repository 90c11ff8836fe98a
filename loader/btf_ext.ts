/**
 * Parser for the .BTF.ext section clang emits next to .BTF:
 *
 *   struct btf_ext_header { u16 magic (0xeB9F); u8 version (1); u8 flags;
 *                           u32 hdr_len;
 *                           u32 func_info_off, func_info_len;
 *                           u32 line_info_off, line_info_len;
 *                           u32 core_relo_off, core_relo_len;   // if hdr_len >= 32 }
 *
 * Offsets are relative to the end of the header. Each of the three info
 * areas is `u32 rec_size` followed by per-ELF-section blocks
 * `{ u32 sec_name_off; u32 num_info; u8 records[num_info * rec_size]; }`.
 * Records may be larger than we know (newer producers); only the known
 * prefix is read. In object files insn_off is a byte offset from the start
 * of the ELF section (the kernel wants instruction indices; conversion is
 * the loader's job).
 */
import type { Btf } from './btf.js';
import { LoaderError, guardParse } from './errors.js';

export interface FuncInfoRec {
  /** BYTES from section start, as in the object */
  insnOff: number;
  typeId: number;
}
export interface LineInfoRec {
  /** bytes */
  insnOff: number;
  fileNameOff: number;
  lineOff: number;
  lineCol: number;
  fileName: string;
  /** source text of the line */
  line: string;
  lineNum: number;
  col: number;
}
export interface CoreReloRec {
  insnOff: number;
  typeId: number;
  accessStr: string;
  kind: number;
}
export interface BtfExt {
  funcInfoRecSize: number;
  lineInfoRecSize: number;
  coreReloRecSize: number;
  /** by ELF section name */
  funcInfo: Map<string, FuncInfoRec[]>;
  lineInfo: Map<string, LineInfoRec[]>;
  coreRelos: Map<string, CoreReloRec[]>;
}

export const BTF_EXT_MAGIC = 0xeb9f;
const HDR_MIN = 24;
const HDR_WITH_CORE = 32;
const MIN_FUNC_REC = 8;
const MIN_LINE_REC = 16;
const MIN_CORE_REC = 16;

/** Parse a .BTF.ext section; strings and type ids are checked against `btf`. */
export function parseBtfExt(buf: Buffer, btf: Btf, source = '<buffer>'): BtfExt {
  return guardParse('BTF.ext', source, () => parseBtfExtInner(buf, btf, source));
}

function parseBtfExtInner(buf: Buffer, btf: Btf, source: string): BtfExt {
  const fail = (msg: string): never => {
    throw new LoaderError(`${source}: BTF.ext: ${msg}`);
  };
  if (!Buffer.isBuffer(buf)) fail('data is not a Buffer');
  if (buf.length < HDR_MIN) fail(`too short for a header: ${buf.length} bytes, need ${HDR_MIN}`);
  const magic = buf.readUInt16LE(0);
  if (magic === 0x9feb) fail('big-endian BTF.ext is not supported');
  if (magic !== BTF_EXT_MAGIC) fail(`bad magic 0x${magic.toString(16)}, expected 0xeb9f`);
  if (buf[2] !== 1) fail(`unsupported version ${buf[2]}, expected 1`);
  const hdrLen = buf.readUInt32LE(4);
  if (hdrLen < HDR_MIN) fail(`header length ${hdrLen} is smaller than ${HDR_MIN}`);
  if (hdrLen > buf.length) fail(`header length ${hdrLen} exceeds the section size (${buf.length} bytes)`);
  const data = buf.subarray(hdrLen);

  // Wrap btf lookups so their errors say where in .BTF.ext the bad reference is.
  const str = (off: number, what: string): string => {
    try {
      return btf.string(off);
    } catch {
      return fail(`${what}: bad string offset ${off} (BTF string table is ${btf.stringTableLength} bytes, or the string is unterminated)`);
    }
  };
  const typeId = (id: number, what: string, wantFunc: boolean): number => {
    if (id >= btf.types.length) fail(`${what}: type id ${id} does not exist (${btf.types.length} types)`);
    if (wantFunc && btf.types[id].kind !== 'func') fail(`${what}: type ${id} is a ${btf.types[id].kind}, expected func`);
    return id;
  };

  /** Walk one info area, calling `rec(sec, recOffset, index)` for each record. */
  function area<T>(
    label: string,
    offField: number,
    minRec: number,
    parse: (secName: string, at: number, idx: number) => T,
  ): { recSize: number; bySec: Map<string, T[]> } {
    const bySec = new Map<string, T[]>();
    const off = buf.readUInt32LE(offField);
    const len = buf.readUInt32LE(offField + 4);
    if (len === 0) return { recSize: 0, bySec };
    if (off > data.length || len > data.length - off) {
      fail(`${label} (offset ${off}, length ${len}) extends past the end of the section (${data.length} bytes after the header)`);
    }
    if (off % 4 !== 0) fail(`${label} offset ${off} is not 4-byte aligned`);
    const a = data.subarray(off, off + len);
    if (a.length < 4) fail(`${label}: too short for a record size (${a.length} bytes)`);
    const recSize = a.readUInt32LE(0);
    if (recSize < minRec || recSize % 4 !== 0) fail(`${label}: bad record size ${recSize} (need a multiple of 4, at least ${minRec})`);
    let p = 4;
    while (p < a.length) {
      if (a.length - p < 8) fail(`${label}: truncated section header at offset ${p}`);
      const nameOff = a.readUInt32LE(p);
      const num = a.readUInt32LE(p + 4);
      const secName = str(nameOff, `${label} block at offset ${p}: section name`);
      p += 8;
      if (num * recSize > a.length - p) {
        fail(`${label} for section ${secName}: ${num} records of ${recSize} bytes extend past the end (${a.length - p} bytes left)`);
      }
      let list = bySec.get(secName);
      if (!list) bySec.set(secName, (list = []));
      for (let i = 0; i < num; i++) {
        list.push(parse(secName, off + p, i));
        p += recSize;
      }
    }
    return { recSize, bySec };
  }

  const d = data;
  const func = area('func_info', 8, MIN_FUNC_REC, (sec, at, i) => {
    const what = `func_info for section ${sec} record ${i}`;
    return { insnOff: d.readUInt32LE(at), typeId: typeId(d.readUInt32LE(at + 4), what, true) };
  });
  const line = area('line_info', 16, MIN_LINE_REC, (sec, at, i) => {
    const what = `line_info for section ${sec} record ${i}`;
    const fileNameOff = d.readUInt32LE(at + 4);
    const lineOff = d.readUInt32LE(at + 8);
    const lineCol = d.readUInt32LE(at + 12);
    return {
      insnOff: d.readUInt32LE(at),
      fileNameOff,
      lineOff,
      lineCol,
      fileName: str(fileNameOff, `${what}: file name`),
      line: str(lineOff, `${what}: line`),
      lineNum: lineCol >>> 10,
      col: lineCol & 0x3ff,
    };
  });
  let core: { recSize: number; bySec: Map<string, CoreReloRec[]> } = { recSize: 0, bySec: new Map() };
  if (hdrLen >= HDR_WITH_CORE) {
    core = area('core_relo', 24, MIN_CORE_REC, (sec, at, i) => {
      const what = `CO-RE relocation for section ${sec} record ${i}`;
      return {
        insnOff: d.readUInt32LE(at),
        typeId: typeId(d.readUInt32LE(at + 4), what, false),
        accessStr: str(d.readUInt32LE(at + 8), `${what}: access string`),
        kind: d.readUInt32LE(at + 12),
      };
    });
  }

  return {
    funcInfoRecSize: func.recSize,
    lineInfoRecSize: line.recSize,
    coreReloRecSize: core.recSize,
    funcInfo: func.bySec,
    lineInfo: line.bySec,
    coreRelos: core.bySec,
  };
}
