// How the CLI decodes maps that carry no BTF of their own (contract types by
// map name, else hex), and how it counts entries of arrays.
import { afterEach, describe, expect, it } from 'vitest';
import { BpfMap, MapType } from '../../native/index.js';
import { decoderFor } from '../../control/cli/decode.js';
import { countEntries } from '../../control/cli/commands/map.js';
import { requireRoot } from '../lib/netns.js';

describe.skipIf(requireRoot('CLI map decoding'))('CLI map decoding without kernel BTF', () => {
  const open: BpfMap[] = [];
  const create = (o: Parameters<typeof BpfMap.create>[0]) => {
    const m = BpfMap.create(o);
    open.push(m);
    return m;
  };
  afterEach(() => {
    for (const m of open.splice(0)) m.close();
  });

  it('falls back to the contract types by map name', () => {
    const m = create({ type: MapType.HASH, keySize: 4, valueSize: 16, maxEntries: 4 });
    expect(m.info.btfId).toBe(0);
    const key = Buffer.alloc(4);
    key.writeUInt32LE(11);
    const value = Buffer.from([10, 244, 1, 5, 0x1f, 0x90, 6, 1, 2, 0, 0, 0, 1, 0, 0, 0]);
    const d = decoderFor('weir_backend4', m);
    expect(d.source).toBe('contract BTF');
    expect(d.key(key)).toBe(11);
    expect(d.value(value)).toEqual({
      value: { addr: '10.244.1.5', port: 8080, proto: 'tcp', state: 'BACKEND_TERMINATING', node_id: 2, flags: ['BACKEND_F_LOCAL'] },
    });
    // Non-zero padding is shown, never hidden.
    value[13] = 0xff;
    expect(d.value(value).value).toMatchObject({ pad: 'ff0000' });
  });

  it('keeps bytes as hex for a map it has no types for, or whose sizes do not match the contract', () => {
    const m = create({ type: MapType.HASH, keySize: 4, valueSize: 3, maxEntries: 4 });
    for (const name of ['someone_elses_map', 'weir_backend4']) {
      const d = decoderFor(name, m);
      expect(d.value(Buffer.from([1, 2, 3])).value).toBe('010203');
    }
    expect(decoderFor('someone_elses_map', m).source).toBe('none (hex)');
  });

  it('counts keys for hashes and non-zero slots for arrays (every array slot always exists)', () => {
    const h = create({ type: MapType.HASH, keySize: 4, valueSize: 4, maxEntries: 8 });
    const a = create({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 8 });
    const k = (i: number) => Buffer.from([i, 0, 0, 0]);
    for (const i of [1, 2, 3]) h.update(k(i), Buffer.alloc(4));
    a.update(k(2), Buffer.from([1, 0, 0, 0]));
    a.update(k(5), Buffer.from([0, 0, 0, 9]));
    expect(countEntries(h)).toEqual({ entries: 3, counted: 'keys' });
    expect(countEntries(a)).toEqual({ entries: 2, counted: 'non-zero slots' });
  });
});
