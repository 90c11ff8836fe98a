import { describe, expect, it } from 'vitest';
import { parseElf, SHF, SHN, SHT, STB, STT, R_BPF_64_64, R_BPF_64_32, R_BPF_64_ABS64, type ElfFile } from '../../../loader/elf.js';
import { FIXTURES, fixture, fixturePath, run, toolAvailable } from './fixtures.js';

const haveReadobj = toolAvailable('llvm-readobj') && toolAvailable('llvm-readelf');

function load(name: string): ElfFile {
  return parseElf(fixture(name), `${name}.o`);
}

interface ReadobjSection {
  Index: number; Name: { Value: string }; Type: { RawValue: number }; Flags: { RawFlags: number };
  Offset: number; Size: number; Link: number; Info: number; AddressAlignment: number; EntrySize: number;
}
interface ReadobjSymbol {
  Name: { Value: string; RawValue: number }; Value: number; Size: number; Binding: { RawValue: number };
  Type: { RawValue: number }; Other: number; Section: { RawValue: number };
}

function readobj<T>(name: string, flag: string, key: string, inner: string): T[] {
  const path = fixturePath(name);
  const json = JSON.parse(run('llvm-readobj', ['--elf-output-style=JSON', flag, path]));
  return (json[0][path][key] as Record<string, T>[]).map((x) => x[inner]);
}

/** Parse `llvm-readelf -r` (GNU style): { relSectionName: [{offset, type, symValue, symName}] } */
function readelfRelocs(name: string): Map<string, { offset: number; type: string; sym: string }[]> {
  const out = new Map<string, { offset: number; type: string; sym: string }[]>();
  let cur: { offset: number; type: string; sym: string }[] | undefined;
  for (const line of run('llvm-readelf', ['-r', '-W', fixturePath(name)]).split('\n')) {
    const head = /^Relocation section '([^']+)'/.exec(line);
    if (head) {
      cur = [];
      out.set(head[1], cur);
      continue;
    }
    const m = /^([0-9a-f]{16})\s+[0-9a-f]{16}\s+(R_BPF_\w+)\s+[0-9a-f]{16}\s+(\S+)/.exec(line);
    if (m && cur) cur.push({ offset: parseInt(m[1], 16), type: m[2], sym: m[3] });
  }
  return out;
}

const R_NAMES: Record<number, string> = { 1: 'R_BPF_64_64', 2: 'R_BPF_64_ABS64', 3: 'R_BPF_64_ABS32', 4: 'R_BPF_64_NODYLD32', 10: 'R_BPF_64_32' };

describe('parseElf on the fixtures', () => {
  it('maps.o: basic layout', () => {
    const elf = load('maps');
    expect(elf.source).toBe('maps.o');
    expect(elf.sections[0].type).toBe(SHT.NULL);
    elf.sections.forEach((s, i) => expect(s.index).toBe(i));
    elf.symbols.forEach((s, i) => expect(s.index).toBe(i));
    const text = elf.section('.text')!;
    expect(text.type).toBe(SHT.PROGBITS);
    expect(text.flags & (SHF.ALLOC | SHF.EXECINSTR)).toBe(SHF.ALLOC | SHF.EXECINSTR);
    expect(text.data.length).toBe(text.size);
    expect(text.size % 8).toBe(0);
    const bss = elf.section('.bss')!;
    expect(bss.type).toBe(SHT.NOBITS);
    expect(bss.data).toEqual(Buffer.alloc(8));
    expect(elf.section('license')!.data.toString('latin1')).toBe('GPL\0');
    expect(elf.section('.maps')!.flags & SHF.WRITE).toBeTruthy();
    expect(elf.section('.rodata')!.flags & SHF.WRITE).toBe(0);
    expect(elf.section('nope')).toBeUndefined();
  });

  it('maps.o: symbols', () => {
    const elf = load('maps');
    const sym = (n: string) => elf.symbols.find((s) => s.name === n)!;
    const cp = sym('count_packet');
    expect(cp).toMatchObject({ type: STT.FUNC, bind: STB.LOCAL, shndx: elf.section('.text')!.index, value: 0 });
    expect(cp.size).toBeGreaterThan(0);
    expect(sym('xdp_count')).toMatchObject({ type: STT.FUNC, bind: STB.GLOBAL, shndx: elf.section('xdp')!.index, value: 0 });
    expect(sym('tc_inner')).toMatchObject({ type: STT.FUNC, shndx: elf.section('tc')!.index });
    expect(sym('tc_inner').value).toBeGreaterThan(0);
    expect(sym('proto_stats')).toMatchObject({ type: STT.OBJECT, shndx: elf.section('.maps')!.index, size: 32 });
    expect(sym('xdp_verdict')).toMatchObject({ type: STT.OBJECT, shndx: elf.section('.rodata')!.index, size: 4 });
    expect(sym('seen_non_ip')).toMatchObject({ shndx: elf.section('.bss')!.index, size: 8 });
    expect(sym('maps.c')).toMatchObject({ type: STT.FILE, shndx: SHN.ABS });

    const tcSyms = elf.symbolsIn(elf.section('tc')!.index);
    expect(tcSyms.filter((s) => s.type === STT.FUNC).map((s) => s.name)).toEqual(['tc_count', 'tc_inner']);
    for (let i = 1; i < tcSyms.length; i++) expect(tcSyms[i].value).toBeGreaterThanOrEqual(tcSyms[i - 1].value);
    const mapSyms = elf.symbolsIn(elf.section('.maps')!.index).map((s) => s.name);
    expect(mapSyms).toEqual(['inner_a', 'outer', 'proto_stats', 'verdicts', 'percpu_hits', 'lru_sizes', 'cidrs', 'pinned_counts']);
    expect(elf.symbolsIn(9999)).toEqual([]);
  });

  it('maps.o: relocations', () => {
    const elf = load('maps');
    const rel = (sec: string) => elf.relocations(elf.section(sec)!.index).map((r) => [r.offset, r.symbol.name, r.type] as const);
    // count_packet (noinline, in .text) is what touches proto_stats: a lookup
    // and an update, each an ld_imm64 (exact offsets depend on codegen and are
    // cross-checked against llvm-readelf below).
    const text = elf.section('.text')!;
    const toMap = rel('.text').filter((r) => r[1] === 'proto_stats');
    expect(toMap).toHaveLength(2);
    for (const [off, , type] of toMap) {
      expect(type).toBe(R_BPF_64_64);
      expect(off % 8).toBe(0);
      expect(text.data[off]).toBe(0x18); // BPF_LD | BPF_IMM | BPF_DW
    }
    const xdp = rel('xdp');
    expect(xdp.map((r) => r[1])).toEqual(expect.arrayContaining(['verdicts', 'percpu_hits', 'xdp_verdict', 'count_dir', 'seen_non_ip']));
    // the bpf-to-bpf call to count_packet is against the .text section symbol
    const call = elf.relocations(elf.section('xdp')!.index).find((r) => r.type === R_BPF_64_32)!;
    expect(call.symbol.type).toBe(STT.SECTION);
    expect(call.symbol.shndx).toBe(elf.section('.text')!.index);
    expect(rel('tc').map((r) => r[1])).toContain('outer');
    for (const s of ['xdp', 'tc', '.text']) {
      const offs = rel(s).map((r) => r[0]);
      expect([...offs].sort((a, b) => a - b)).toEqual(offs);
      for (const o of offs) expect(o % 8).toBe(0);
    }
    // static map-in-map initialiser: outer.values[1] = &inner_a
    expect(rel('.maps')).toEqual([[0x40, 'inner_a', R_BPF_64_ABS64]]);
    expect(elf.relocations(elf.section('.rodata')!.index)).toEqual([]);
    expect(elf.relocations(12345)).toEqual([]);
    for (const r of elf.relocations(elf.section('xdp')!.index)) expect(r.addend).toBeUndefined();
  });

  it('sections.o: one program per section', () => {
    const elf = load('sections');
    const progs: Record<string, string> = {
      xdp: 's_xdp', tc: 's_tc', classifier: 's_classifier', 'tcx/ingress': 's_tcx_ingress', 'tcx/egress': 's_tcx_egress',
      socket: 's_socket', 'cgroup/connect4': 's_connect4', 'cgroup/sendmsg4': 's_sendmsg4', 'cgroup/recvmsg4': 's_recvmsg4',
      'cgroup_skb/ingress': 's_skb_ingress', 'cgroup_skb/egress': 's_skb_egress',
    };
    for (const [sec, fn] of Object.entries(progs)) {
      const s = elf.section(sec)!;
      expect(s, sec).toBeDefined();
      expect(s.flags & SHF.EXECINSTR).toBeTruthy();
      const funcs = elf.symbolsIn(s.index).filter((x) => x.type === STT.FUNC);
      expect(funcs.map((f) => f.name)).toEqual([fn]);
    }
  });

  describe.skipIf(!haveReadobj)('matches llvm-readobj / llvm-readelf', () => {
    for (const name of FIXTURES) {
      it(`${name}.o sections`, () => {
        const elf = load(name);
        const want = readobj<ReadobjSection>(name, '--sections', 'Sections', 'Section');
        expect(elf.sections.length).toBe(want.length);
        for (const w of want) {
          const s = elf.sections[w.Index];
          expect({ name: s.name, type: s.type, flags: s.flags, offset: s.offset, size: s.size, link: s.link, info: s.info, addralign: s.addralign, entsize: s.entsize }).toEqual({
            name: w.Name.Value, type: w.Type.RawValue, flags: w.Flags.RawFlags, offset: w.Offset, size: w.Size, link: w.Link, info: w.Info, addralign: w.AddressAlignment, entsize: w.EntrySize,
          });
          if (s.type !== SHT.NOBITS && s.type !== SHT.NULL) expect(s.data.equals(fixture(name).subarray(s.offset, s.offset + s.size))).toBe(true);
        }
      });

      it(`${name}.o symbols`, () => {
        const elf = load(name);
        const want = readobj<ReadobjSymbol>(name, '--symbols', 'Symbols', 'Symbol');
        expect(elf.symbols.length).toBe(want.length);
        want.forEach((w, i) => {
          const s = elf.symbols[i];
          // readobj shows section symbols under their section's name; the raw st_name is 0
          expect({ name: s.name, value: s.value, size: s.size, bind: s.bind, type: s.type, visibility: s.visibility, shndx: s.shndx }).toEqual({
            name: w.Name.RawValue === 0 ? '' : w.Name.Value, value: w.Value, size: w.Size, bind: w.Binding.RawValue, type: w.Type.RawValue, visibility: w.Other & 3, shndx: w.Section.RawValue,
          });
        });
      });

      it(`${name}.o relocations`, () => {
        const elf = load(name);
        const want = readelfRelocs(name);
        const relSecs = elf.sections.filter((s) => s.type === SHT.REL || s.type === SHT.RELA);
        expect(relSecs.map((s) => s.name).sort()).toEqual([...want.keys()].sort());
        for (const rs of relSecs) {
          const got = elf.relocations(rs.info).map((r) => ({
            offset: r.offset,
            type: R_NAMES[r.type] ?? String(r.type),
            sym: r.symbol.type === STT.SECTION ? elf.sections[r.symbol.shndx].name : r.symbol.name,
          }));
          const exp = [...want.get(rs.name)!].sort((a, b) => a.offset - b.offset);
          expect(got.map((g) => g.offset)).toEqual(exp.map((e) => e.offset));
          expect(new Set(got.map((g) => JSON.stringify(g)))).toEqual(new Set(exp.map((e) => JSON.stringify(e))));
        }
      });
    }
  });
});
