import { describe, expect, it } from 'vitest';
import { parseBtf } from '../../../loader/btf.js';
import { parseBtfExt } from '../../../loader/btf_ext.js';
import { parseElf } from '../../../loader/elf.js';
import { LoaderError } from '../../../loader/errors.js';
import { BtfBuilder, KIND } from './btf_builder.js';
import { fixture } from './fixtures.js';

/** Expect fn to throw a LoaderError whose message matches re (and is not the generic safety net). */
function rejects(fn: () => unknown, re: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected a LoaderError matching ${re}`).toBeInstanceOf(LoaderError);
  expect((err as Error).message).toMatch(re);
  expect((err as Error).message).not.toMatch(/unexpected parse failure/);
}

const MAPS = fixture('maps');
const CORE = fixture('core');
const elfMaps = parseElf(MAPS, 'maps.o');
const SHOFF = Number(MAPS.readBigUInt64LE(40));
const shdr = (i: number) => SHOFF + i * 64;
const idx = (name: string) => elfMaps.section(name)!.index;
const patched = (f: (b: Buffer) => void, base = MAPS) => {
  const b = Buffer.from(base);
  f(b);
  return b;
};
const parse = (b: Buffer) => () => parseElf(b, 'bad.o');

describe('malformed ELF', () => {
  it('truncated at many lengths', () => {
    const lengths = [...Array(160).keys(), ...Array.from({ length: Math.ceil(MAPS.length / 37) }, (_, i) => i * 37), MAPS.length - 1];
    for (const n of lengths) {
      if (n >= MAPS.length) continue;
      rejects(parse(MAPS.subarray(0, n)), /bad\.o: /);
    }
    rejects(parse(Buffer.alloc(0)), /not an ELF file: only 0 bytes/);
    rejects(parse(MAPS.subarray(0, 40)), /truncated ELF header/);
  });

  it('names the file', () => {
    rejects(() => parseElf(Buffer.from('hello world, not elf')), /^<buffer>: not an ELF file: bad magic/);
    rejects(() => parseElf(Buffer.from('hello world, not elf'), '/x/y.o'), /^\/x\/y\.o: /);
  });

  it('wrong machine, class, endianness, type, version', () => {
    rejects(parse(patched((b) => b.writeUInt16LE(62, 18))), /not a BPF object: machine is x86-64 \(62\)/);
    rejects(parse(patched((b) => b.writeUInt16LE(183, 18))), /machine is AArch64 \(183\)/);
    rejects(parse(patched((b) => b.writeUInt16LE(9999, 18))), /unknown machine 9999/);
    rejects(parse(patched((b) => (b[5] = 2))), /big-endian ELF is not supported/);
    rejects(parse(patched((b) => (b[5] = 7))), /bad EI_DATA 7/);
    rejects(parse(patched((b) => (b[4] = 1))), /32-bit ELF is not supported/);
    rejects(parse(patched((b) => (b[4] = 3))), /bad EI_CLASS 3/);
    rejects(parse(patched((b) => b.writeUInt16LE(2, 16))), /not a relocatable BPF object: e_type is ET_EXEC/);
    rejects(parse(patched((b) => b.writeUInt16LE(3, 16))), /ET_DYN/);
    rejects(parse(patched((b) => (b[6] = 2))), /ident version/);
    rejects(parse(patched((b) => b.writeUInt32LE(5, 20))), /unsupported ELF version 5/);
    rejects(parse(patched((b) => (b[0] = 0))), /bad magic/);
  });

  it('bad section header table', () => {
    rejects(parse(patched((b) => b.writeBigUInt64LE(0n, 40))), /no section header table/);
    rejects(parse(patched((b) => b.writeBigUInt64LE(BigInt(MAPS.length), 40))), /section header table at offset \d+ is outside the file/);
    rejects(parse(patched((b) => b.writeBigUInt64LE(1n << 60n, 40))), /e_shoff is too large/);
    rejects(parse(patched((b) => b.writeUInt16LE(1000, 60))), /section header table \(1000 entries.*extends past the end/);
    rejects(parse(patched((b) => b.writeUInt16LE(40, 58))), /bad e_shentsize 40/);
    rejects(parse(patched((b) => b.writeUInt16LE(200, 62))), /bad e_shstrndx 200: only 35 sections/);
    rejects(parse(patched((b) => b.writeUInt16LE(0, 62))), /no section name string table/);
    rejects(parse(patched((b) => b.writeUInt16LE(idx('.text'), 62))), /section name table \(section 2\) has type 1, expected SHT_STRTAB/);
  });

  it('bad section offsets, sizes and names', () => {
    const t = idx('.text');
    rejects(parse(patched((b) => b.writeBigUInt64LE(BigInt(MAPS.length), shdr(t) + 24))), /section 2: data \(offset \d+, size \d+\) extends past the end of the file/);
    rejects(parse(patched((b) => b.writeBigUInt64LE(1n << 40n, shdr(t) + 32))), /section 2: data .* extends past the end/);
    rejects(parse(patched((b) => b.writeBigUInt64LE(0xffffffffffffffffn, shdr(t) + 32))), /section 2 sh_size is too large/);
    rejects(parse(patched((b) => b.writeBigUInt64LE(1n << 30n, shdr(idx('.bss')) + 32))), /section 12: NOBITS section size \d+ exceeds/);
    rejects(parse(patched((b) => b.writeUInt32LE(0xffffff, shdr(4)))), /name of section 4: string offset 16777215 is outside the string table/);
    // name running off the end of the string table without a NUL
    const strtab = elfMaps.sections[1];
    rejects(parse(patched((b) => b.writeUInt32LE(strtab.size - 1, shdr(4)) && b.writeUInt8(0x41, strtab.offset + strtab.size - 1))), /not NUL-terminated/);
  });

  it('bad symbol table', () => {
    const st = elfMaps.section('.symtab')!;
    const sym = (i: number) => st.offset + i * 24;
    rejects(parse(patched((b) => b.writeUInt32LE(0xfffffff, sym(5)))), /name of symbol 5: string offset 268435455/);
    rejects(parse(patched((b) => b.writeUInt16LE(500, sym(5) + 6))), /symbol 5 \(count_packet\) refers to section 500/);
    rejects(parse(patched((b) => b.writeBigUInt64LE(1n << 62n, sym(5) + 8))), /symbol 5 st_value is too large/);
    rejects(parse(patched((b) => b.writeBigUInt64LE(20n, shdr(st.index) + 56))), /section 34 \(\.symtab\): bad sh_entsize 20/);
    rejects(parse(patched((b) => b.writeBigUInt64LE(BigInt(st.size - 1), shdr(st.index) + 32))), /not a multiple of 24/);
    rejects(parse(patched((b) => b.writeUInt32LE(999, shdr(st.index) + 40))), /bad string table link 999/);
    rejects(parse(patched((b) => b.writeUInt32LE(idx('.text'), shdr(st.index) + 40))), /is not a string table/);
    rejects(parse(patched((b) => b.writeUInt32LE(2, shdr(idx('.llvm_addrsig')) + 4))), /2 symbol tables/);
  });

  it('bad relocations', () => {
    const rs = elfMaps.section('.relxdp')!;
    rejects(parse(patched((b) => b.writeUInt32LE(9999, rs.offset + 12))), /section 5 \(\.relxdp\) entry 0: symbol index 9999 out of range \(43 symbols\)/);
    rejects(parse(patched((b) => b.writeBigUInt64LE(0x1000n, rs.offset))), /\.relxdp\) entry 0: offset 4096 is outside target section 4 \(xdp\)/);
    rejects(parse(patched((b) => b.writeUInt32LE(999, shdr(rs.index) + 44))), /\.relxdp\): relocation target section 999 does not exist/);
    rejects(parse(patched((b) => b.writeUInt32LE(0, shdr(rs.index) + 44))), /relocation target section 0 does not exist/);
    rejects(parse(patched((b) => b.writeUInt32LE(1, shdr(rs.index) + 40))), /linked to section 1, expected the symbol table/);
    rejects(parse(patched((b) => b.writeBigUInt64LE(24n, shdr(rs.index) + 56))), /bad sh_entsize 24, expected 16/);
    // a REL section turned into RELA must then have 24-byte entries
    rejects(parse(patched((b) => b.writeUInt32LE(4, shdr(rs.index) + 4))), /bad sh_entsize 16, expected 24/);
  });

  it('RELA sections are read with addends', () => {
    // rewrite .rel.text (3 x 16 bytes) as a RELA section with 2 x 24-byte entries
    const rs = elfMaps.section('.rel.text')!;
    const b = patched((x) => {
      x.writeUInt32LE(4, shdr(rs.index) + 4);
      x.writeBigUInt64LE(24n, shdr(rs.index) + 56);
      const ents: [bigint, number, bigint][] = [[0xd0n, 38, -8n], [0x38n, 32, 5n]];
      ents.forEach(([off, sym, add], i) => {
        const o = rs.offset + i * 24;
        x.writeBigUInt64LE(off, o);
        x.writeBigUInt64LE((BigInt(sym) << 32n) | 1n, o + 8);
        x.writeBigInt64LE(add, o + 16);
      });
    });
    const relocs = parseElf(b).relocations(idx('.text'));
    expect(relocs.map((r) => [r.offset, r.symbol.name, r.type, r.addend])).toEqual([
      [0x38, 'proto_stats', 1, 5n],
      [0xd0, 'inner_a', 1, -8n],
    ]);
  });
});

describe('malformed BTF', () => {
  const BTF = elfMaps.section('.BTF')!.data;
  const p = (f: (b: Buffer) => void) => () => parseBtf(patched(f, BTF), 'bad.o');

  it('truncated at many lengths', () => {
    for (let n = 0; n < BTF.length; n += n < 100 ? 1 : 13) rejects(() => parseBtf(BTF.subarray(0, n), 'bad.o'), /^bad\.o: BTF: /);
  });

  it('bad header', () => {
    rejects(p((b) => b.writeUInt16LE(0x1234, 0)), /BTF: bad magic 0x1234, expected 0xeb9f/);
    rejects(p((b) => b.writeUInt16LE(0x9feb, 0)), /big-endian BTF/);
    rejects(p((b) => (b[2] = 2)), /unsupported version 2/);
    rejects(p((b) => b.writeUInt32LE(8, 4)), /header length 8 is smaller than 24/);
    rejects(p((b) => b.writeUInt32LE(BTF.length + 4, 4)), /header length \d+ exceeds the section size/);
    // a longer header is fine as long as the unknown fields are zero
    const good = new BtfBuilder();
    good.int('int', 4);
    const g = good.build();
    const longHdr = (fill: number) => {
      const b = Buffer.concat([g.subarray(0, 24), Buffer.alloc(4, fill), g.subarray(24)]);
      b.writeUInt32LE(28, 4);
      return b;
    };
    expect(parseBtf(longHdr(0)).types).toHaveLength(2);
    rejects(() => parseBtf(longHdr(1)), /unknown non-zero header field at byte 24/);
    rejects(p((b) => b.writeUInt32LE(BTF.length, 8)), /type section \(offset \d+, length \d+\) extends past the end/);
    rejects(p((b) => b.writeUInt32LE(0xffffffff, 12)), /type section .* extends past the end/);
    rejects(p((b) => b.writeUInt32LE(0xfffffff0, 16)), /string section .* extends past the end/);
    rejects(p((b) => b.writeUInt32LE(0xffffffff, 20)), /string section .* extends past the end/);
    rejects(p((b) => b.writeUInt32LE(0, 20)), /string section is empty/);
    rejects(p((b) => b.writeUInt32LE(2, 8)), /type section offset 2 is not 4-byte aligned/);
    rejects(p((b) => b.writeUInt32LE(0, 16)), /overlaps/);
  });

  it('bad type records', () => {
    // type 1 is `PTR -> 3` at offset 24, type 2 is INT 'int' at 36
    expect(BTF.readUInt32LE(28) >>> 24).toBe(KIND.PTR);
    rejects(p((b) => b.writeUInt32LE(9999, 32)), /type 1 ptr '': type refers to type 9999, but there are only 98 types/);
    rejects(p((b) => b.writeUInt32LE(25 << 24, 28)), /type 1 \(at type-section offset 0\): unknown kind 25/);
    rejects(p((b) => b.writeUInt32LE(0, 28)), /unknown kind 0/);
    rejects(p((b) => b.writeUInt32LE(0xffffff, 36)), /type 2 \(at type-section offset 12\) int name: string offset 16777215 is outside the string table \(\d+ bytes\)/);
    rejects(p((b) => b.writeUInt32LE((KIND.PTR << 24) | 0x10000, 28)), /reserved bits/);
    // a struct claiming 0xffff members
    const bb = new BtfBuilder();
    const i = bb.int('int', 4, 32, 1);
    bb.struct('s', 4, [['a', i, 0]]);
    const good = bb.build();
    parseBtf(good);
    const structInfo = 24 + 16 + 4;
    rejects(() => parseBtf(patched((b) => b.writeUInt32LE((KIND.STRUCT << 24) | 0xffff, structInfo), good), 'bad.o'), /type 2 .*struct 's': 786420 bytes of trailing data \(vlen 65535\) extend past the end/);
    // type section cut mid-record
    rejects(() => parseBtf(patched((b) => b.writeUInt32LE(b.readUInt32LE(12) - 4, 12), good), 'bad.o'), /extend past the end of the type section|record truncated/);
  });

  it('bad references between kinds', () => {
    const mk = (f: (b: BtfBuilder, int: number) => void) => {
      const b = new BtfBuilder();
      const i = b.int('int', 4, 32, 1);
      f(b, i);
      return () => parseBtf(b.build(), 'bad.o');
    };
    rejects(mk((b, i) => b.add(KIND.FUNC, 'f', { sizeOrType: i })), /func 'f': type 1 is a int, expected func_proto/);
    rejects(mk((b) => b.add(KIND.VAR, 'v', { sizeOrType: 0, extra: [1] })), /var 'v' has type void/);
    rejects(mk((b, i) => b.add(KIND.DATASEC, '.data', { vlen: 1, extra: [i, 0, 4] })), /datasec '\.data': entry 0 refers to a int/);
    rejects(mk((b, i) => b.add(KIND.ARRAY, '', { extra: [i, 77, 2] })), /index type refers to type 77/);
    rejects(mk((b) => b.struct('s', 4, [['m', 55, 0]])), /member 0 \(m\) refers to type 55/);
    rejects(mk((b, i) => b.add(KIND.FUNC_PROTO, '', { vlen: 1, sizeOrType: i, extra: [0, 66] })), /param 0 \(anon\) refers to type 66/);
    rejects(mk((b, i) => b.add(KIND.FUNC, 'f', { vlen: 3, sizeOrType: i })), /invalid linkage 3/);
    rejects(mk((b) => b.add(KIND.FLOAT, 'f', { sizeOrType: 3 })), /invalid float size 3/);
    rejects(mk((b) => b.int('wide', 4, 64)), /bits 0\+64 do not fit in 4 bytes/);
    rejects(mk((b, i) => b.add(KIND.DECL_TAG, 't', { sizeOrType: i, extra: [0xfffffff0] })), /invalid component index/);
    rejects(mk((b, i) => b.add(KIND.ENUM, 'e', { vlen: 1, sizeOrType: 4, extra: [0xffff, 1] })), /type 2 .*enum 'e' value 0 name: string offset 65535 is outside/);
    rejects(mk((b, i) => b.add(20, 'x', { sizeOrType: i })), /unknown kind 20/);
  });
});

describe('malformed BTF.ext', () => {
  const BTF = parseBtf(elfMaps.section('.BTF')!.data, 'maps.o');
  const EXT = elfMaps.section('.BTF.ext')!.data;
  const hdrLen = EXT.readUInt32LE(4);
  const funcOff = EXT.readUInt32LE(8);
  const lineOff = EXT.readUInt32LE(16);
  const p = (f: (b: Buffer) => void) => () => parseBtfExt(patched(f, EXT), BTF, 'bad.o');

  it('truncated at many lengths', () => {
    for (let n = 0; n < EXT.length; n += n < 100 ? 1 : 7) rejects(() => parseBtfExt(EXT.subarray(0, n), BTF, 'bad.o'), /^bad\.o: BTF\.ext: /);
  });

  it('bad header and areas', () => {
    rejects(p((b) => b.writeUInt16LE(0x1111, 0)), /BTF\.ext: bad magic 0x1111/);
    rejects(p((b) => (b[2] = 9)), /unsupported version 9/);
    rejects(p((b) => b.writeUInt32LE(4, 4)), /header length 4 is smaller than 24/);
    rejects(p((b) => b.writeUInt32LE(EXT.length + 1, 4)), /header length \d+ exceeds/);
    rejects(p((b) => b.writeUInt32LE(EXT.length, 8)), /func_info \(offset \d+, length \d+\) extends past the end/);
    rejects(p((b) => b.writeUInt32LE(0xffffffff, 12)), /func_info .* extends past the end/);
    rejects(p((b) => b.writeUInt32LE(0xffffffff, 20)), /line_info .* extends past the end/);
    rejects(p((b) => b.writeUInt32LE(2, 8)), /func_info offset 2 is not 4-byte aligned/);
  });

  it('bad records', () => {
    const f = hdrLen + funcOff; // u32 rec_size, then { sec_name_off, num_info, recs }
    rejects(p((b) => b.writeUInt32LE(4, f)), /func_info: bad record size 4/);
    rejects(p((b) => b.writeUInt32LE(0xfffffffc, f)), /func_info: bad record size|extend past the end/);
    rejects(p((b) => b.writeUInt32LE(0xfffffff, f + 4)), /func_info block at offset 4: section name: bad string offset 268435455/);
    rejects(p((b) => b.writeUInt32LE(0x10000000, f + 8)), /func_info for section \S+: 268435456 records of 8 bytes extend past the end/);
    rejects(p((b) => b.writeUInt32LE(5000, f + 16)), /func_info for section \S+ record 0: type id 5000 does not exist \(98 types\)/);
    rejects(p((b) => b.writeUInt32LE(2, f + 16)), /record 0: type 2 is a int, expected func/);
    const l = hdrLen + lineOff;
    rejects(p((b) => b.writeUInt32LE(12, l)), /line_info: bad record size 12/);
    rejects(p((b) => b.writeUInt32LE(0xffffff, l + 12 + 4)), /line_info for section \S+ record 0: file name: bad string offset 16777215/);
    rejects(p((b) => b.writeUInt32LE(0xffffff, l + 12 + 8)), /record 0: line: bad string offset/);
  });

  it('bad CO-RE relocations', () => {
    const elf = parseElf(CORE, 'core.o');
    const btf = parseBtf(elf.section('.BTF')!.data, 'core.o');
    const ext = elf.section('.BTF.ext')!.data;
    expect(ext.readUInt32LE(4)).toBe(32);
    const c = 32 + ext.readUInt32LE(24);
    parseBtfExt(ext, btf);
    const p2 = (f: (b: Buffer) => void) => () => parseBtfExt(patched(f, ext), btf, 'core.o');
    rejects(p2((b) => b.writeUInt32LE(8, c)), /core_relo: bad record size 8/);
    rejects(p2((b) => b.writeUInt32LE(7777, c + 12 + 4)), /CO-RE relocation for section socket record 0: type id 7777 does not exist/);
    rejects(p2((b) => b.writeUInt32LE(0xfffffff, c + 12 + 8)), /CO-RE relocation for section socket record 0: access string: bad string offset/);
    rejects(p2((b) => b.writeUInt32LE(0xffffffff, 28)), /core_relo .* extends past the end/);
  });
});

describe('pathological but well-formed input stays fast', () => {
  it('many names pointing into one huge string', () => {
    const n = 50_000;
    const strs = Buffer.concat([Buffer.from([0]), Buffer.alloc(2_000_000, 0x61), Buffer.from([0])]);
    const types = Buffer.alloc(n * 12);
    for (let i = 0; i < n; i++) {
      types.writeUInt32LE(1 + i * 37, i * 12);
      types.writeUInt32LE(KIND.PTR << 24, i * 12 + 4);
    }
    const hdr = Buffer.alloc(24);
    hdr.writeUInt16LE(0xeb9f, 0);
    hdr[2] = 1;
    hdr.writeUInt32LE(24, 4);
    hdr.writeUInt32LE(types.length, 12);
    hdr.writeUInt32LE(types.length, 16);
    hdr.writeUInt32LE(strs.length, 20);
    const t0 = performance.now();
    const btf = parseBtf(Buffer.concat([hdr, types, strs]));
    expect(btf.types).toHaveLength(n + 1);
    expect(btf.types[n].name.length).toBe(2_000_000 - (n - 1) * 37);
    expect(btf.find('ptr', 'nope')).toBeUndefined();
    expect(performance.now() - t0).toBeLessThan(3000);
  });
});
