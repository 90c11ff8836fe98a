import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBtf, type Btf } from '../../../loader/btf.js';
import { parseBtfExt, type BtfExt } from '../../../loader/btf_ext.js';
import { parseElf, STT, type ElfFile } from '../../../loader/elf.js';
import { FIXTURES, REPO, fixture } from './fixtures.js';

function load(name: string): { elf: ElfFile; btf: Btf; ext: BtfExt } {
  const elf = parseElf(fixture(name), `${name}.o`);
  const btf = parseBtf(elf.section('.BTF')!.data, `${name}.o`);
  return { elf, btf, ext: parseBtfExt(elf.section('.BTF.ext')!.data, btf, `${name}.o`) };
}

describe('parseBtfExt', () => {
  it('maps.o func_info for xdp, tc and .text', () => {
    const { elf, btf, ext } = load('maps');
    expect(ext.funcInfoRecSize).toBe(8);
    expect(ext.lineInfoRecSize).toBe(16);
    expect([...ext.funcInfo.keys()].sort()).toEqual(['.text', 'tc', 'xdp']);
    const names = (sec: string) => ext.funcInfo.get(sec)!.map((f) => [f.insnOff, btf.type(f.typeId).name]);
    expect(names('xdp')).toEqual([[0, 'xdp_count']]);
    expect(names('.text')).toEqual([[0, 'count_packet']]);
    const tcInner = elf.symbols.find((s) => s.name === 'tc_inner')!;
    expect(names('tc')).toEqual([[0, 'tc_count'], [tcInner.value, 'tc_inner']]);
    expect(ext.coreRelos.size).toBe(0);
  });

  for (const name of FIXTURES) {
    it(`${name}.o: func_info matches the ELF function symbols`, () => {
      const { elf, btf, ext } = load(name);
      for (const sec of elf.sections) {
        const funcs = elf.symbolsIn(sec.index).filter((s) => s.type === STT.FUNC);
        const fi = ext.funcInfo.get(sec.name) ?? [];
        expect(fi.map((f) => [f.insnOff, btf.type(f.typeId).kind, btf.type(f.typeId).name]), sec.name).toEqual(
          funcs.map((s) => [s.value, 'func', s.name]),
        );
      }
    });

    it(`${name}.o: line_info carries the real source lines`, () => {
      const { elf, ext } = load(name);
      const src = readFileSync(join(REPO, 'test/fixtures', `${name}.c`), 'utf8').split('\n');
      let checked = 0;
      for (const [secName, lines] of ext.lineInfo) {
        const sec = elf.section(secName)!;
        expect(sec, secName).toBeDefined();
        let last = -1;
        for (const l of lines) {
          expect(l.insnOff % 8).toBe(0);
          expect(l.insnOff).toBeLessThan(sec.size);
          expect(l.insnOff).toBeGreaterThanOrEqual(last);
          last = l.insnOff;
          expect(l.lineNum).toBe(l.lineCol >>> 10);
          expect(l.col).toBe(l.lineCol & 0x3ff);
          if (l.lineNum === 0) {
            expect(l.line).toBe(''); // compiler-generated code has no source line
          } else if (basename(l.fileName) === `${name}.c`) {
            expect(l.line, `${secName}@${l.insnOff}`).toBe(src[l.lineNum - 1]);
            checked++;
          }
        }
      }
      expect(checked).toBeGreaterThan(0);
    });
  }

  it('maps.o: line_info text includes the helper calls', () => {
    const { ext } = load('maps');
    const all = [...ext.lineInfo.values()].flat();
    expect(all.some((l) => l.line.includes('bpf_map_lookup_elem'))).toBe(true);
    expect(ext.lineInfo.get('.text')!.some((l) => l.line.includes('bpf_map_update_elem'))).toBe(true);
    expect(all.every((l) => l.fileName.endsWith('maps.c') || l.fileName.endsWith('.h'))).toBe(true);
  });

  it('core.o has CO-RE relocations', () => {
    const { elf, btf, ext } = load('core');
    expect(ext.coreReloRecSize).toBe(16);
    const relos = ext.coreRelos.get('socket')!;
    expect(relos.length).toBeGreaterThan(0);
    const sec = elf.section('socket')!;
    for (const r of relos) {
      expect(r.insnOff % 8).toBe(0);
      expect(r.insnOff).toBeLessThan(sec.size);
    }
    const tgid = relos.find((r) => btf.describe(r.typeId) === 'struct task_like')!;
    expect(tgid).toBeDefined();
    expect(tgid.accessStr).toBe('0:1'); // t->tgid: member 1 of *t
    expect(tgid.kind).toBe(0); // BPF_CORE_FIELD_BYTE_OFFSET
  });
});
