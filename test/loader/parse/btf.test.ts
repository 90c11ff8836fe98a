import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Btf, parseBtf, type BtfType } from '../../../loader/btf.js';
import { parseElf, type ElfFile } from '../../../loader/elf.js';
import { LoaderError } from '../../../loader/errors.js';
import { BtfBuilder, KIND } from './btf_builder.js';
import { BPFTOOL, FIXTURES, REPO, fixture, fixturePath, run, toolAvailable } from './fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'weir-btf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const haveReadobj = toolAvailable('llvm-readobj');

function loadObj(path: string): { elf: ElfFile; btf: Btf } {
  const elf = parseElf(readFileSync(path), path);
  return { elf, btf: parseBtf(elf.section('.BTF')!.data, path) };
}

/** Our type in the shape of `bpftool -j btf dump` output. */
function asBpftool(t: BtfType): Record<string, unknown> {
  const anon = (s: string) => s || '(anon)';
  const o: Record<string, unknown> = { id: t.id, kind: t.kind.toUpperCase(), name: anon(t.name) };
  const linkage = (l: number) => ['static', 'global', 'extern'][l] ?? '(unknown)';
  switch (t.kind) {
    case 'int':
      Object.assign(o, {
        size: t.size, bits_offset: t.intOffset, nr_bits: t.intBits,
        encoding: ({ 1: 'SIGNED', 2: 'CHAR', 4: 'BOOL' } as Record<number, string>)[t.intEncoding!] ?? '(none)',
      });
      break;
    case 'ptr': case 'typedef': case 'volatile': case 'const': case 'restrict': case 'type_tag':
      o.type_id = t.type;
      break;
    case 'array':
      Object.assign(o, { type_id: t.array!.type, index_type_id: t.array!.indexType, nr_elems: t.array!.nelems });
      break;
    case 'struct': case 'union':
      Object.assign(o, {
        size: t.size, vlen: t.members!.length,
        members: t.members!.map((m) => ({ name: anon(m.name), type_id: m.type, bits_offset: m.bitOffset, ...(m.bitSize ? { bitfield_size: m.bitSize } : {}) })),
      });
      break;
    case 'enum':
      Object.assign(o, {
        encoding: t.signed ? 'SIGNED' : 'UNSIGNED', size: t.size, vlen: t.enumValues!.length,
        values: t.enumValues!.map((v) => ({ name: v.name, val: BigInt.asUintN(t.size! * 8, v.value).toString() })),
      });
      break;
    case 'fwd':
      o.fwd_kind = t.fwdUnion ? 'union' : 'struct';
      break;
    case 'func':
      Object.assign(o, { type_id: t.type, linkage: linkage(t.linkage!) });
      break;
    case 'func_proto':
      Object.assign(o, { ret_type_id: t.type, vlen: t.params!.length, params: t.params!.map((p) => ({ name: anon(p.name), type_id: p.type })) });
      break;
    case 'var':
      Object.assign(o, { type_id: t.type, linkage: linkage(t.linkage!) });
      break;
    case 'datasec':
      Object.assign(o, { size: t.size, vlen: t.secinfo!.length, vars: t.secinfo!.map((v) => ({ type_id: v.type, offset: v.offset, size: v.size })) });
      break;
    case 'float':
      o.size = t.size;
      break;
    case 'decl_tag':
      Object.assign(o, { type_id: t.type, component_idx: t.componentIdx });
      break;
    default:
      throw new Error(`no bpftool mapping for ${t.kind}`);
  }
  return o;
}

/** bpftool's JSON, with enum values normalised like ours (it prints them as u64; keep them exact as strings). */
function bpftoolTypes(file: string): Record<string, unknown>[] {
  const text = run(BPFTOOL!, ['-j', 'btf', 'dump', 'file', file]).replace(/("val":\s*)(-?\d+)/g, '$1"$2"');
  const types = JSON.parse(text).types as Record<string, unknown>[];
  for (const t of types) {
    if (t.kind === 'ENUM') {
      for (const v of t.values as { val: string }[]) v.val = BigInt.asUintN((t.size as number) * 8, BigInt(v.val)).toString();
    }
  }
  return types;
}

const kindsObj = fixturePath('kinds');

describe('parseBtf on maps.o', () => {
  const { elf, btf } = loadObj(fixturePath('maps'));

  it('header and raw', () => {
    expect(btf.raw.equals(elf.section('.BTF')!.data)).toBe(true);
    expect(btf.types[0]).toMatchObject({ id: 0, kind: 'void' });
    btf.types.forEach((t, i) => expect(t.id).toBe(i));
    expect(btf.string(0)).toBe('');
  });

  it('struct proto_key', () => {
    const pk = btf.find('struct', 'proto_key')!;
    expect(pk.size).toBe(4);
    expect(pk.members!.map((m) => [m.name, m.bitOffset, m.bitSize, btf.describe(m.type), btf.sizeOf(m.type)])).toEqual([
      ['proto', 0, 0, '__u8', 1],
      ['dir', 8, 0, '__u8', 1],
      ['pad', 16, 0, '__u16', 2],
    ]);
    expect(btf.describe(pk.id)).toBe('struct proto_key');
    expect(btf.sizeOf(pk.id)).toBe(4);
    expect(btf.resolve(pk.members![0].type)).toMatchObject({ kind: 'int', name: 'unsigned char', intBits: 8 });
    const ps = btf.find('struct', 'proto_stats')!;
    expect(ps.members!.map((m) => [m.name, m.bitOffset])).toEqual([['packets', 0], ['bytes', 64]]);
    expect(btf.sizeOf(ps.id)).toBe(16);
  });

  it('.maps DATASEC lists the map variables', () => {
    const ds = btf.find('datasec', '.maps')!;
    const names = ds.secinfo!.map((v) => btf.type(v.type).name);
    expect(names).toEqual(['inner_a', 'outer', 'proto_stats', 'verdicts', 'percpu_hits', 'lru_sizes', 'cidrs', 'pinned_counts']);
    for (const v of ds.secinfo!) {
      const vt = btf.type(v.type);
      expect(vt.kind).toBe('var');
      expect(vt.linkage).toBe(1);
      if (vt.name === 'outer') {
        // the flexible `values[]` array grows the object past its type's size with the static initialiser
        expect(btf.sizeOf(vt.type!)).toBe(24);
        expect(v.size).toBe(40);
      } else {
        expect(btf.sizeOf(vt.type!)).toBe(v.size);
        expect(btf.sizeOf(vt.id)).toBe(v.size);
      }
    }
    // clang leaves these zero in the object
    expect(ds.size).toBe(0);
    // __uint(max_entries, 256) is `int (*max_entries)[256]`
    const mapDef = btf.resolve(btf.find('var', 'proto_stats')!.type!);
    const maxEntries = mapDef.members!.find((m) => m.name === 'max_entries')!;
    expect(btf.describe(maxEntries.type)).toBe('int (*)[256]');
    const ptr = btf.resolve(maxEntries.type);
    expect(btf.resolve(ptr.type!).array!.nelems).toBe(256);
    expect(btf.describe(mapDef.members!.find((m) => m.name === 'key')!.type)).toBe('struct proto_key *');
  });

  it('.rodata DATASEC and const volatile vars', () => {
    const ds = btf.find('datasec', '.rodata')!;
    expect(ds.secinfo!.map((v) => btf.type(v.type).name)).toEqual(['xdp_verdict', 'tc_verdict', 'count_dir']);
    const xv = btf.find('var', 'xdp_verdict')!;
    expect(btf.describe(xv.type!)).toBe('const volatile __u32');
    expect(btf.describe(xv.id)).toBe('const volatile __u32 xdp_verdict');
    expect(btf.resolve(xv.type!)).toMatchObject({ kind: 'int', name: 'unsigned int', size: 4 });
    expect(btf.sizeOf(xv.type!)).toBe(4);
  });

  it('functions and describe()', () => {
    const f = btf.find('func', 'count_packet')!;
    expect(f.linkage).toBe(0);
    const proto = btf.type(f.type!);
    expect(proto.kind).toBe('func_proto');
    expect(proto.params!.map((p) => p.name)).toEqual(['proto', 'dir', 'len']);
    expect(btf.describe(f.id)).toBe('int count_packet(__u8 proto, __u8 dir, __u32 len)');
    expect(btf.describe(btf.find('func', 'xdp_count')!.id)).toBe('int xdp_count(struct xdp_md *ctx)');
    expect(btf.find('func', 'xdp_count')!.linkage).toBe(1);
    expect(btf.describe(btf.find('var', 'LICENSE')!.type!)).toBe('char[4]');
    expect(btf.describe(0)).toBe('void');
    expect(btf.find('fwd', 'bpf_sock')).toMatchObject({ fwdUnion: false });
    expect(btf.find('struct', 'nope')).toBeUndefined();
  });

  it('sizeOf / type / string errors are LoaderErrors', () => {
    expect(() => btf.sizeOf(0)).toThrow(LoaderError);
    expect(() => btf.sizeOf(btf.find('func', 'xdp_count')!.id)).toThrow(/func/);
    expect(() => btf.sizeOf(btf.find('func', 'xdp_count')!.type!)).toThrow(/func_proto/);
    expect(() => btf.sizeOf(btf.find('fwd', 'bpf_sock')!.id)).toThrow(LoaderError);
    expect(() => btf.type(btf.types.length)).toThrow(/type id \d+ does not exist/);
    expect(() => btf.type(-1)).toThrow(LoaderError);
    expect(() => btf.type(1.5)).toThrow(LoaderError);
    expect(() => btf.string(1 << 30)).toThrow(/string offset/);
    expect(() => btf.describe(99999)).toThrow(LoaderError);
    expect(() => btf.resolve(99999)).toThrow(LoaderError);
  });

  it.skipIf(!BPFTOOL || !haveReadobj)('fixupDatasecs fills sizes/offsets matching llvm-readobj (checked with bpftool)', () => {
    const path = fixturePath('maps');
    const secs = JSON.parse(run('llvm-readobj', ['--elf-output-style=JSON', '--sections', path]))[0][path].Sections.map(
      (s: { Section: { Name: { Value: string }; Size: number; Index: number } }) => s.Section,
    );
    const syms = JSON.parse(run('llvm-readobj', ['--elf-output-style=JSON', '--symbols', path]))[0][path].Symbols.map(
      (s: { Symbol: { Name: { Value: string }; Value: number; Section: { RawValue: number } } }) => s.Symbol,
    );
    const secSize = new Map<string, number>(secs.map((s: { Name: { Value: string }; Size: number }) => [s.Name.Value, s.Size]));
    const secIndex = new Map<string, number>(secs.map((s: { Name: { Value: string }; Index: number }) => [s.Name.Value, s.Index]));
    const symOff = (sec: string, name: string) =>
      syms.find((s: { Name: { Value: string }; Section: { RawValue: number } }) => s.Name.Value === name && s.Section.RawValue === secIndex.get(sec))?.Value as number | undefined;

    const fixed = btf.fixupDatasecs(
      (n) => elf.section(n)?.size,
      (sec, v) => elf.symbolsIn(elf.section(sec)!.index).find((s) => s.name === v)?.value,
    );
    expect(btf.raw.equals(elf.section('.BTF')!.data)).toBe(true); // original untouched
    expect(fixed.length).toBe(btf.raw.length);
    const file = join(tmp, 'maps.fixed.btf');
    writeFileSync(file, fixed);
    const dumped = bpftoolTypes(file);
    const datasecs = dumped.filter((t) => t.kind === 'DATASEC');
    expect(datasecs.map((d) => d.name).sort()).toEqual(['.bss', '.data', '.maps', '.rodata', 'license']);
    for (const ds of datasecs) {
      expect(ds.size, String(ds.name)).toBe(secSize.get(ds.name as string));
      const vars = ds.vars as { type_id: number; offset: number; size: number }[];
      let last = -1;
      for (const v of vars) {
        const varName = btf.type(v.type_id).name;
        expect(v.offset, `${ds.name}/${varName}`).toBe(symOff(ds.name as string, varName));
        expect(v.offset).toBeGreaterThanOrEqual(last);
        last = v.offset;
      }
    }
    const maps = datasecs.find((d) => d.name === '.maps')!;
    expect((maps.vars as { offset: number }[]).map((v) => v.offset)).toEqual([0, 0x20, 0x48, 0x68, 0x88, 0xa8, 0xc8, 0xf0]);
    // everything else is byte-for-byte what bpftool saw before
    const again = parseBtf(fixed, 'fixed');
    for (const t of btf.types) if (t.kind !== 'datasec') expect(again.types[t.id]).toEqual(t);
  });
});

describe.skipIf(!BPFTOOL)('matches bpftool btf dump', () => {
  for (const name of FIXTURES) {
    it(`${name}.o`, () => {
      const path = fixturePath(name);
      const { btf } = loadObj(path);
      const want = bpftoolTypes(path);
      expect(btf.types.length - 1).toBe(want.length);
      for (const w of want) expect(asBpftool(btf.types[w.id as number])).toEqual(w);
      // the text dump agrees on ids, kinds and names too
      const text = run(BPFTOOL!, ['btf', 'dump', 'file', path]);
      const heads = [...text.matchAll(/^\[(\d+)\] (\w+) '([^']*)'/gm)].map((m) => [Number(m[1]), m[2], m[3]]);
      expect(heads).toEqual(btf.types.slice(1).map((t) => [t.id, t.kind.toUpperCase(), t.name || '(anon)']));
    });
  }

  it('kinds.c (enum, float, bitfields, fwd union, decl/type tags)', () => {
    const { btf } = loadObj(kindsObj);
    const want = bpftoolTypes(kindsObj);
    expect(btf.types.length - 1).toBe(want.length);
    for (const w of want) expect(asBpftool(btf.types[w.id as number])).toEqual(w);
    const kinds = new Set(btf.types.map((t) => t.kind));
    for (const k of ['enum', 'float', 'decl_tag', 'type_tag', 'fwd', 'union'] as const) expect(kinds.has(k), k).toBe(true);

    const bits = btf.find('struct', 'bits')!;
    expect(bits.members!.slice(0, 3).map((m) => [m.name, m.bitOffset, m.bitSize])).toEqual([['a', 0, 3], ['b', 3, 5], ['c', 8, 7]]);
    expect(btf.describe(bits.members!.find((m) => m.name === 'fwd')!.type)).toBe('union u_fwd *');
    const tagged = bits.members!.find((m) => m.name === 'tagged')!;
    expect(btf.resolve(btf.resolve(tagged.type).type!)).toMatchObject({ kind: 'int', name: 'int' });
    expect(btf.describe(tagged.type)).toContain('btf_type_tag("user")');
    const colour = btf.find('enum', 'colour')!;
    expect(colour.enumValues!.map((v) => v.name)).toEqual(['RED', 'GREEN', 'BLUE']);
    expect(btf.sizeOf(colour.id)).toBe(4);
    expect(btf.describe(colour.id)).toBe('enum colour');
    expect(btf.find('float', 'double')!.size).toBe(8);
    expect(btf.find('decl_tag', 'param_tag')!.componentIdx).toBe(0);
    expect(btf.find('decl_tag', 'struct_tag')!.componentIdx).toBe(-1);
    expect(btf.find('var', 's_counter')!.linkage).toBe(0);
    expect(btf.find('datasec', '.data.bits')).toBeDefined();
  });
});

describe('synthetic BTF', () => {
  it('enum64, signed enums, float, fwd union, restrict and describe()', () => {
    const b = new BtfBuilder();
    const u64 = b.int('unsigned long long', 8);
    const i32 = b.int('int', 4, 32, 1);
    const e64 = b.add(KIND.ENUM64, 'e64', { vlen: 2, kflag: false, sizeOrType: 8, extra: [b.str('A'), 0xffffffff, 0xffffffff, b.str('B'), 1, 2] });
    const e64s = b.add(KIND.ENUM64, 'e64s', { vlen: 1, kflag: true, sizeOrType: 8, extra: [b.str('M'), 0xfffffffe, 0xffffffff] });
    const es = b.add(KIND.ENUM, 'es', { vlen: 1, kflag: true, sizeOrType: 4, extra: [b.str('N'), 0xffffffff] });
    const eu = b.add(KIND.ENUM, 'eu', { vlen: 1, kflag: false, sizeOrType: 4, extra: [b.str('P'), 0xffffffff] });
    const f = b.add(KIND.FLOAT, 'float', { sizeOrType: 4 });
    const fu = b.add(KIND.FWD, 'fu', { kflag: true });
    const p = b.ref(KIND.PTR, '', i32);
    const r = b.ref(KIND.RESTRICT, '', p);
    const arr = b.add(KIND.ARRAY, '', { extra: [u64, i32, 4] });
    const arr2 = b.add(KIND.ARRAY, '', { extra: [arr, i32, 3] });
    const td = b.ref(KIND.TYPEDEF, 'u64_t', u64);
    const fp = b.add(KIND.FUNC_PROTO, '', { vlen: 2, sizeOrType: 0, extra: [b.str('a'), i32, 0, 0] });
    const fptr = b.ref(KIND.PTR, '', fp);
    const btf = parseBtf(b.build(), 'synthetic');
    expect(btf.type(e64).enumValues).toEqual([{ name: 'A', value: 0xffffffffffffffffn }, { name: 'B', value: 0x200000001n }]);
    expect(btf.type(e64s).enumValues![0].value).toBe(-2n);
    expect(btf.type(es).enumValues![0].value).toBe(-1n);
    expect(btf.type(eu).enumValues![0].value).toBe(0xffffffffn);
    expect(btf.type(e64).signed).toBe(false);
    expect(btf.sizeOf(e64)).toBe(8);
    expect(btf.sizeOf(f)).toBe(4);
    expect(btf.type(fu).fwdUnion).toBe(true);
    expect(btf.describe(fu)).toBe('union fu');
    expect(btf.describe(r)).toBe('restrict int *');
    expect(btf.sizeOf(r)).toBe(8);
    expect(btf.describe(arr)).toBe('unsigned long long[4]');
    expect(btf.describe(arr2)).toBe('unsigned long long[4][3]');
    expect(btf.sizeOf(arr2)).toBe(96);
    expect(btf.describe(td)).toBe('u64_t');
    expect(btf.describe(fptr)).toBe('void (*)(int a, ...)');
    expect(btf.describe(e64)).toBe('enum e64');
  });

  it('reference cycles do not hang resolve/sizeOf/describe', () => {
    const b = new BtfBuilder();
    const self = b.ref(KIND.TYPEDEF, 'loop', 1); // typedef loop -> itself
    const c = b.ref(KIND.CONST, '', 3); // const -> volatile -> const
    b.ref(KIND.VOLATILE, '', c);
    const arr = b.add(KIND.ARRAY, '', { extra: [4, 0, 2] }); // array of itself
    const ptrLoop = b.ref(KIND.PTR, '', 5); // pointer to itself: has a size, describe must stop
    const btf = parseBtf(b.build(), 'cycles');
    const t0 = Date.now();
    expect(() => btf.resolve(self)).toThrow(/too deep or cyclic/);
    expect(() => btf.sizeOf(self)).toThrow(LoaderError);
    expect(() => btf.resolve(c)).toThrow(/cyclic/);
    expect(() => btf.sizeOf(c)).toThrow(LoaderError);
    expect(() => btf.sizeOf(arr)).toThrow(LoaderError);
    expect(btf.sizeOf(ptrLoop)).toBe(8);
    for (const id of [self, c, arr, ptrLoop]) expect(typeof btf.describe(id)).toBe('string');
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('describe() of self-referencing prototypes with many params stays bounded', () => {
    const b = new BtfBuilder();
    // proto 1 takes 64 params, each a pointer (type 2) back to proto 1
    const extra: number[] = [];
    for (let i = 0; i < 64; i++) extra.push(b.str(`p${i}`), 2);
    const proto = b.add(KIND.FUNC_PROTO, '', { vlen: 64, sizeOrType: 2, extra });
    b.ref(KIND.PTR, '', proto);
    const f = b.add(KIND.FUNC, 'f', { sizeOrType: proto });
    const btf = parseBtf(b.build());
    const t0 = Date.now();
    const s = btf.describe(f);
    expect(Date.now() - t0).toBeLessThan(500);
    expect(s.length).toBeLessThanOrEqual(1003);
    expect(s).toContain('(*)');
  });

  it('array size overflow is a LoaderError', () => {
    const b = new BtfBuilder();
    const u64 = b.int('u64', 8);
    const big = b.add(KIND.ARRAY, '', { extra: [u64, u64, 0xffffffff] });
    expect(() => parseBtf(b.build()).sizeOf(big)).toThrow(/overflows/);
  });

  it('fixupDatasecs: sorts entries by offset, skips unknowns, fixes extern linkage', () => {
    const b = new BtfBuilder();
    const i32 = b.int('int', 4, 32, 1);
    const va = b.add(KIND.VAR, 'a', { sizeOrType: i32, extra: [1] });
    const vb = b.add(KIND.VAR, 'b', { sizeOrType: i32, extra: [1] });
    const vx = b.add(KIND.VAR, 'x', { sizeOrType: i32, extra: [2] }); // extern
    const fp = b.add(KIND.FUNC_PROTO, '', { sizeOrType: i32 });
    const fx = b.add(KIND.FUNC, 'fx', { vlen: 2, sizeOrType: fp }); // extern func
    const ds = b.add(KIND.DATASEC, '.data', { vlen: 2, sizeOrType: 0, extra: [va, 0, 4, vb, 0, 4] });
    const ks = b.add(KIND.DATASEC, '.kconfig', { vlen: 1, sizeOrType: 0, extra: [vx, 0, 4] });
    const btf = parseBtf(b.build(), 'fixup');
    const fixed = parseBtf(
      btf.fixupDatasecs(
        (n) => (n === '.data' ? 8 : undefined),
        (sec, v) => (sec === '.data' ? ({ a: 4, b: 0 } as Record<string, number>)[v] : undefined),
      ),
    );
    expect(fixed.type(ds).size).toBe(8);
    expect(fixed.type(ds).secinfo).toEqual([{ type: vb, offset: 0, size: 4 }, { type: va, offset: 4, size: 4 }]);
    expect(fixed.type(ks)).toMatchObject({ size: 0, secinfo: [{ type: vx, offset: 0, size: 4 }] });
    expect(fixed.type(vx).linkage).toBe(0);
    expect(fixed.type(fx).linkage).toBe(0);
    expect(fixed.type(va).linkage).toBe(1);
    expect(() => btf.fixupDatasecs(() => -1, () => undefined)).toThrow(LoaderError);
    expect(() => btf.fixupDatasecs(() => undefined, () => 2 ** 40)).toThrow(LoaderError);
  });
});

describe('fixture sanity', () => {
  it('every fixture has BTF that parses', () => {
    for (const name of FIXTURES) {
      const elf = parseElf(fixture(name), name);
      const btf = parseBtf(elf.section('.BTF')!.data, name);
      expect(btf.types.length).toBeGreaterThan(5);
      for (const t of btf.types) expect(typeof btf.describe(t.id)).toBe('string');
    }
  });
});
