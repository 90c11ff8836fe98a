// Values decoded by their BTF types (what map dumps and the demo print).
import { describe, expect, it } from 'vitest';
import { decodeValue, loadCollectionSpec } from '../../loader/index.js';
import { fixture } from '../lib/fixtures.js';

describe('decodeValue', () => {
  const maps = loadCollectionSpec(fixture('maps'));
  const kinds = loadCollectionSpec(fixture('kinds'));

  it('decodes structs by field name, 64-bit counters as numbers', () => {
    const btf = maps.btf!;
    expect(decodeValue(btf, maps.maps.proto_stats.btfKeyTypeId, Buffer.from([6, 1, 0, 0]))).toEqual({ proto: 6, dir: 1, pad: 0 });
    const v = Buffer.alloc(16);
    v.writeBigUInt64LE(3n, 0);
    v.writeBigUInt64LE(2n ** 60n, 8);
    expect(decodeValue(btf, maps.maps.proto_stats.btfValueTypeId, v)).toEqual({ packets: 3, bytes: 2n ** 60n });
  });

  it('decodes a data section by variable', () => {
    const ro = maps.maps['.rodata'];
    expect(decodeValue(maps.btf!, ro.btfValueTypeId, ro.contents[0].value as Buffer)).toEqual({
      xdp_verdict: 2,
      tc_verdict: 0,
      count_dir: 0,
    });
  });

  it('decodes enums by name, bitfields and floats', () => {
    const btf = kinds.btf!;
    const colour = kinds.variables.g_colour;
    expect(decodeValue(btf, colour.typeId, Buffer.from([2, 0, 0, 0]))).toBe('GREEN');
    expect(decodeValue(btf, colour.typeId, Buffer.from([9, 0, 0, 0]))).toBe(9);
    const bits = kinds.variables.g_bits;
    const b = Buffer.alloc(bits.size);
    b.writeUInt16LE(5 | (17 << 3) | (33 << 8)); // a=5 (3 bits), b=17 (5 bits), c=33 (7 bits)
    expect(decodeValue(btf, bits.typeId, b)).toMatchObject({ a: 5, b: 17, c: 33 });
    const f = Buffer.alloc(16);
    f.writeFloatLE(1.5, 0);
    f.writeDoubleLE(-2.25, 8);
    expect(decodeValue(btf, kinds.variables.g_float.typeId, f)).toEqual({ f: 1.5, d: -2.25 });
  });

  it('refuses a buffer shorter than the type', () => {
    expect(() => decodeValue(maps.btf!, maps.maps.proto_stats.btfValueTypeId, Buffer.alloc(8))).toThrow(/needs 16 bytes.*has 8/);
  });
});
