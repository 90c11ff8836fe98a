// Collection specs from the fixtures, without a kernel: programs, linking,
// map specs from BTF, global data, constants, CO-RE rejection, bad sections.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LoaderError, loadCollectionSpec, parseCollectionSpec } from '../../loader/index.js';
import { fixture } from '../lib/fixtures.js';

const OP_CALL = 0x85;

describe('maps.o', () => {
  const spec = loadCollectionSpec(fixture('maps'));

  it('finds every program with its section kind and license', () => {
    expect(Object.keys(spec.programs).sort()).toEqual(['tc_count', 'tc_inner', 'xdp_count']);
    expect(spec.programs.xdp_count).toMatchObject({ section: 'xdp', kind: 'xdp', type: 6, attachType: 37, license: 'GPL' });
    expect(spec.programs.tc_count).toMatchObject({ section: 'tc', kind: 'tc', type: 3, attachType: 0 });
  });

  it('links the .text subprogram after the program and fixes the call offset', () => {
    for (const name of ['xdp_count', 'tc_count']) {
      const p = spec.programs[name];
      expect(p.functions.map((f) => f.name)).toEqual([name, 'count_packet']);
      const callee = p.functions[1].insn;
      // Exactly the bpf-to-bpf call (src_reg 1) must land on the callee's first instruction.
      const calls: number[] = [];
      for (let i = 0; i < p.instructions.length / 8; i++) {
        const op = p.instructions[i * 8];
        const src = p.instructions[i * 8 + 1] >> 4;
        if (op === OP_CALL && src === 1) calls.push(i + p.instructions.readInt32LE(i * 8 + 4) + 1);
      }
      expect(calls).toEqual([callee]);
      // The subprogram's references come along, rebased.
      const refsInCallee = p.mapRefs.filter((r) => r.insn >= callee).map((r) => r.map);
      expect(refsInCallee).toContain('proto_stats');
      expect(refsInCallee).toContain('.data');
    }
  });

  it('records map and global-data references with offsets', () => {
    const refs = spec.programs.xdp_count.mapRefs;
    const maps = new Set(refs.map((r) => r.map));
    for (const m of ['proto_stats', 'verdicts', 'percpu_hits', '.rodata', '.data', '.bss']) expect(maps).toContain(m);
    const rodata = refs.filter((r) => r.map === '.rodata');
    const xdpVerdict = spec.variables.xdp_verdict;
    expect(rodata.some((r) => r.offset === xdpVerdict.offset)).toBe(true);
    // ld_imm64 src_reg is MAP_FD (1) for maps and MAP_VALUE (2) for globals.
    for (const r of refs) {
      const src = spec.programs.xdp_count.instructions[r.insn * 8 + 1] >> 4;
      expect(src).toBe(r.offset === undefined ? 1 : 2);
    }
  });

  it('carries func_info and line_info for every linked function', () => {
    const p = spec.programs.xdp_count;
    expect(p.funcInfo.map((f) => f.insn)).toEqual(p.functions.map((f) => f.insn));
    expect(p.lineInfo.length).toBeGreaterThan(5);
    expect(p.lineInfo[0].insn).toBe(0);
    const insns = p.lineInfo.map((l) => l.insn);
    expect([...insns].sort((a, b) => a - b)).toEqual(insns);
    expect(p.lineInfo.some((l) => l.line.includes('bpf_map_lookup_elem(&proto_stats'))).toBe(true);
  });

  it('reads BTF map definitions', () => {
    expect(spec.maps.proto_stats).toMatchObject({ type: 1, keySize: 4, valueSize: 16, maxEntries: 256, flags: 0, pinning: 0 });
    expect(spec.btf!.describe(spec.maps.proto_stats.btfKeyTypeId)).toBe('struct proto_key');
    expect(spec.maps.lru_sizes).toMatchObject({ type: 9, keySize: 4, valueSize: 8, btfKeyTypeId: 0, btfValueTypeId: 0 });
    expect(spec.maps.cidrs).toMatchObject({ type: 11, keySize: 8, valueSize: 4, flags: 1 });
    expect(spec.maps.percpu_hits).toMatchObject({ type: 6, valueSize: 8 });
    expect(spec.maps.pinned_counts.pinning).toBe(1);
  });

  it('reads map-in-map with its inner definition and static initialiser', () => {
    const outer = spec.maps.outer;
    expect(outer).toMatchObject({ type: 12, keySize: 4, valueSize: 4, maxEntries: 4, btfValueTypeId: 0 });
    expect(outer.inner).toMatchObject({ type: 2, keySize: 4, valueSize: 4, maxEntries: 8 });
    expect(outer.contents).toEqual([{ key: Buffer.from([1, 0, 0, 0]), value: { map: 'inner_a' } }]);
  });

  it('turns .rodata/.data/.bss into single-element arrays', () => {
    const ro = spec.maps['.rodata'];
    expect(ro).toMatchObject({ type: 2, keySize: 4, maxEntries: 1, flags: 128, freeze: true });
    expect(spec.btf!.type(ro.btfValueTypeId).kind).toBe('datasec');
    expect(spec.maps['.data']).toMatchObject({ flags: 0, freeze: false, valueSize: 8 });
    expect((spec.maps['.data'].contents[0].value as Buffer).readBigUInt64LE(0)).toBe(7n);
    expect(spec.maps['.bss']).toMatchObject({ valueSize: 8 });
    expect((spec.maps['.bss'].contents[0].value as Buffer).equals(Buffer.alloc(8))).toBe(true);
  });

  it('sets constants with type and range checks', () => {
    const s = loadCollectionSpec(fixture('maps'));
    s.setConstants({ xdp_verdict: 1, count_dir: 200, tc_verdict: 2 });
    const ro = s.maps['.rodata'].contents[0].value as Buffer;
    expect(ro.readUInt32LE(s.variables.xdp_verdict.offset)).toBe(1);
    expect(ro.readUInt8(s.variables.count_dir.offset)).toBe(200);
    expect(() => s.setConstants({ count_dir: 256 })).toThrow(/count_dir.*out of range 0\.\.255/);
    expect(() => s.setConstants({ xdp_verdict: -1 })).toThrow(/out of range/);
    expect(() => s.setConstants({ xdp_verdict: 1.5 })).toThrow(/not an integer/);
    expect(() => s.setConstants({ xdp_verdict: Buffer.alloc(2) })).toThrow(/2-byte buffer/);
    expect(() => s.setConstants({ nope: 1 })).toThrow(/no constant named 'nope'.*xdp_verdict/);
    expect(() => s.setConstants({ seen_total: 1 })).toThrow(/lives in \.data, not \.rodata/);
    // The untouched spec keeps the compiled defaults.
    expect((spec.maps['.rodata'].contents[0].value as Buffer).readUInt32LE(spec.variables.xdp_verdict.offset)).toBe(2);
  });

  it('fills DATASEC sizes and offsets in the BTF given to the kernel', () => {
    const fixed = parseBtfFrom(spec.kernelBtf!);
    const ds = fixed.find('datasec', '.rodata')!;
    expect(ds.size).toBe(spec.maps['.rodata'].valueSize);
    const offsets = ds.secinfo!.map((s) => [fixed.type(s.type).name, s.offset]);
    expect(Object.fromEntries(offsets)).toMatchObject({ xdp_verdict: spec.variables.xdp_verdict.offset, count_dir: spec.variables.count_dir.offset });
  });
});

import { parseBtf } from '../../loader/index.js';
const parseBtfFrom = (b: Buffer) => parseBtf(b);

describe('sections.o', () => {
  it('maps every libbpf section name to its program and attach type', () => {
    const spec = loadCollectionSpec(fixture('sections'));
    const got = Object.fromEntries(Object.values(spec.programs).map((p) => [p.section, [p.type, p.attachType]]));
    expect(spec.programs.s_xdp_frags.flags).toBe(32); // BPF_F_XDP_HAS_FRAGS
    expect(spec.programs.s_xdp.flags).toBe(0);
    expect(got).toEqual({
      'xdp.frags': [6, 37],
      xdp: [6, 37],
      tc: [3, 0],
      classifier: [3, 0],
      'tcx/ingress': [3, 46],
      'tcx/egress': [3, 47],
      socket: [1, 0],
      'cgroup/connect4': [18, 10],
      'cgroup/sendmsg4': [18, 14],
      'cgroup/recvmsg4': [18, 19],
      'cgroup_skb/ingress': [8, 0],
      'cgroup_skb/egress': [8, 1],
    });
  });

  it('rejects an unknown section name, naming it', () => {
    const buf = readFileSync(fixture('sections'));
    // Rename "socket" to "sockex" in .strtab (the last string table; the
    // section name shares its bytes with the tail of the symbol "s_socket").
    const at = buf.lastIndexOf(Buffer.from('socket\0'));
    expect(at).toBeGreaterThan(0);
    const bad = Buffer.from(buf);
    bad.write('sockex', at, 'latin1');
    expect(() => parseCollectionSpec(bad, 'renamed.o')).toThrow(/unknown program section 'sockex'/);
  });
});

describe('rejections', () => {
  it('rejects CO-RE relocations naming the program', () => {
    expect(() => loadCollectionSpec(fixture('core'))).toThrow(/program core_reader needs \d+ CO-RE relocation/);
  });

  it('a missing file is a LoaderError naming it', () => {
    expect(() => loadCollectionSpec('/nonexistent/x.o')).toThrow(LoaderError);
    expect(() => loadCollectionSpec('/nonexistent/x.o')).toThrow(/\/nonexistent\/x\.o/);
  });
});
