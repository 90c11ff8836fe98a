// BTF-driven codecs and generated layouts: the C struct is the contract,
// TypeScript follows it, and a drift is an error naming the field.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { checkLayout, codecFor, decodeValue, generateTypes, layoutOf, loadCollectionSpec } from '../../loader/index.js';
import { fixture, repoRoot } from '../lib/fixtures.js';

const maps = loadCollectionSpec(fixture('maps')).btf!;
const kinds = loadCollectionSpec(fixture('kinds')).btf!;
const tmp = mkdtempSync(join(tmpdir(), 'weir-gen-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('codecFor', () => {
  it('encodes and decodes a struct by field with exact bytes', () => {
    const key = codecFor(maps, 'struct proto_key');
    expect(key.size).toBe(4);
    expect(key.encode({ proto: 17, dir: 1 })).toEqual(Buffer.from([17, 1, 0, 0]));
    expect(key.decode(Buffer.from([6, 0, 0, 0]))).toEqual({ proto: 6, dir: 0, pad: 0 });
    const stats = codecFor(maps, 'proto_stats');
    const bytes = stats.encode({ packets: 3n, bytes: 2n ** 40n });
    expect(bytes.readBigUInt64LE(0)).toBe(3n);
    expect(stats.decode(bytes)).toEqual({ packets: 3n, bytes: 2n ** 40n });
  });

  it('rejects unknown fields, wrong types and out-of-range values, naming the path', () => {
    const key = codecFor(maps, 'struct proto_key');
    expect(() => key.encode({ proto: 6, prot: 1 } as never)).toThrow(/struct proto_key has no field 'prot' \(fields: proto, dir, pad\)/);
    expect(() => key.encode({ proto: 256 })).toThrow(/struct proto_key\.proto: 256 does not fit in 1 byte/);
    expect(() => key.encode({ proto: 'tcp' } as never)).toThrow(/proto: expected an integer/);
    expect(() => key.decode(Buffer.alloc(3))).toThrow(/needs 4 bytes/);
  });

  it('handles bitfields, enums, floats-free structs and byte arrays', () => {
    const bits = codecFor(kinds, 'struct bits');
    const layout = layoutOf(kinds, 'struct bits');
    expect(layout.fields.filter((f) => f.bitSize).map((f) => [f.name, f.bitSize])).toEqual([['a', 3], ['b', 5], ['c', 7]]);
    const b = bits.encode({ a: 5, b: 17, c: 33, d: 9n });
    expect(b.readUInt16LE(0) & 0x7fff).toBe(5 | (17 << 3) | (33 << 8));
    expect(bits.decode(b)).toMatchObject({ a: 5, b: 17, c: 33, d: 9n });
    expect(() => bits.encode({ a: 8 })).toThrow(/a: expected an integer in 0\.\.7/);
  });

  it('takes one member per union and sign-extends signed bitfields', () => {
    const addr = codecFor(kinds, 'struct addr');
    const layout = layoutOf(kinds, 'struct addr');
    expect(layout.fields.map((f) => [f.name, f.offset])).toEqual([['family', 0], ['v4', 4], ['v6', 4], ['delta', 20]]);
    const v4 = addr.encode({ family: 2, v4: 0x0a000001, delta: -3 });
    const back = addr.decode(v4);
    expect(back).toMatchObject({ family: 2, v4: 0x0a000001, delta: -3 });
    expect((back.v6 as Buffer).subarray(0, 4)).toEqual(Buffer.from([1, 0, 0, 10]));
    expect(() => addr.encode({ v4: 1, v6: Buffer.alloc(16) })).toThrow(/'v4' and 'v6' are members of the same union; set only one/);
    expect(() => addr.encode({ delta: 8 })).toThrow(/delta: expected an integer in -8\.\.7/);
    expect(decodeValue(kinds, kinds.find('struct', 'addr')!.id, v4)).toMatchObject({ family: 2, v4: 0x0a000001, delta: -3 });
  });

  it('checks a hand-written layout field by field', () => {
    expect(() => checkLayout(maps, 'struct proto_key', { size: 4, fields: { proto: { offset: 0, size: 1 }, dir: { offset: 1, size: 1 }, pad: { offset: 2, size: 2 } } })).not.toThrow();
    expect(() => checkLayout(maps, 'struct proto_key', { size: 4, fields: { proto: { offset: 0, size: 1 }, dir: { offset: 2, size: 1 }, pad: { offset: 2, size: 2 } } })).toThrow(
      /layout of struct proto_key drifted: field dir is at offset 1 in BTF but 2 in the code/,
    );
    expect(() => checkLayout(maps, 'struct proto_key', { size: 8, fields: { proto: { offset: 0, size: 1 } } })).toThrow(
      /size is 4 in BTF but 8 in the code.*field dir \(__u8, offset 1\) is in BTF but not in the code/,
    );
  });
});

describe('generateTypes (bpf2go-like)', () => {
  it('generates strict TypeScript whose layouts match the object and catch drift', async () => {
    const src = generateTypes(maps, ['struct proto_key', 'struct proto_stats', 'struct lpm_v4_key'], { source: 'maps.o' });
    expect(src).toContain('export interface ProtoKey {');
    expect(src).toMatch(/packets: bigint;/);
    const kindsSrc = generateTypes(kinds, ['struct bits', 'struct addr', 'enum colour']);
    expect(kindsSrc).toMatch(/  v4\?: number;\n  v6\?: Buffer;/);
    expect(kindsSrc).toMatch(/export const Colour = \{\n  RED: 1,\n  GREEN: 2,/);

    // The generated files typecheck under strict settings.
    const files = [join(tmp, 'maps.gen.ts'), join(tmp, 'kinds.gen.ts')];
    writeFileSync(files[0], src);
    writeFileSync(files[1], kindsSrc);
    const program = ts.createProgram(files, {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      typeRoots: [join(repoRoot, 'node_modules', '@types')],
      types: ['node'],
    });
    const diags = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(diags).toEqual([]);

    // And their layouts are what the codecs check against.
    const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } }).outputText;
    const mod = await import(`data:text/javascript,${encodeURIComponent(js)}`);
    const codec = codecFor(maps, 'struct proto_stats', mod.ProtoStatsLayout);
    expect(codec.decode(codec.encode({ packets: 1n, bytes: 2n }))).toEqual({ packets: 1n, bytes: 2n });
    expect(() => codecFor(maps, 'struct proto_key', mod.ProtoStatsLayout)).toThrow(/layout of struct proto_key drifted/);
  });
});
