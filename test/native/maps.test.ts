// Maps through the native facade, against the running kernel (root).
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BpfError,
  BpfMap,
  BpfProgram,
  MapFlags,
  MapType,
  ProgType,
  UpdateFlags,
  possibleCpus,
  unpin,
} from '../../native/index.js';
import { fdTracker, pinDir, requireKernel, retProg, u32, u64 } from './helpers.js';

const enabled = requireKernel();

const { track, closeAll } = fdTracker();

function hash(maxEntries = 64, name = 'weirtest_hash'): BpfMap {
  return track(BpfMap.create({ type: MapType.HASH, name, keySize: 4, valueSize: 8, maxEntries }));
}

describe.skipIf(!enabled)('BpfMap', () => {
  let pins: ReturnType<typeof pinDir>;
  beforeAll(() => {
    pins = pinDir('maps');
  });
  afterAll(() => {
    closeAll();
    pins?.remove();
  });

  it('creates a map and reports its info', () => {
    const m = hash(16, 'a-very-long-map-name!');
    const info = m.info;
    expect(info.id).toBeGreaterThan(0);
    expect(info.name).toBe('a_very_long_map'); // sanitized, 15 chars
    expect(info).toMatchObject({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 16, flags: 0 });
    expect(m.valueBufferSize).toBe(8);
    expect(m.fd).toBeGreaterThan(2);
  });

  it('lookup / update with ANY, NOEXIST, EXIST / delete', () => {
    const m = hash();
    expect(m.lookup(u32(1))).toBeUndefined();
    m.update(u32(1), u64(10));
    expect(m.lookup(u32(1))).toEqual(u64(10));
    m.update(u32(1), u64(11), UpdateFlags.ANY);
    expect(m.lookup(u32(1))?.readBigUInt64LE()).toBe(11n);

    // NOEXIST on an existing key: EEXIST, and the value is untouched.
    const e1 = (() => {
      try {
        m.update(u32(1), u64(12), UpdateFlags.NOEXIST);
      } catch (e) {
        return e;
      }
    })() as BpfError;
    expect(e1).toBeInstanceOf(BpfError);
    expect(e1.code).toBe('EEXIST');
    expect(e1.errno).toBe(17);
    expect(e1.syscall).toBe('bpf_map_update_elem');
    expect(e1.message).toContain('weirtest_hash');
    expect(m.lookup(u32(1))?.readBigUInt64LE()).toBe(11n);

    // EXIST on a missing key: ENOENT.
    expect(() => m.update(u32(2), u64(1), UpdateFlags.EXIST)).toThrow(
      expect.objectContaining({ code: 'ENOENT', syscall: 'bpf_map_update_elem' }),
    );
    m.update(u32(2), u64(2), UpdateFlags.NOEXIST);
    m.update(u32(2), u64(3), UpdateFlags.EXIST);
    expect(m.lookup(u32(2))?.readBigUInt64LE()).toBe(3n);

    expect(m.delete(u32(2))).toBe(true);
    expect(m.delete(u32(2))).toBe(false);
    expect(m.lookup(u32(2))).toBeUndefined();
  });

  it('rejects wrong key / value sizes with a clear error before the kernel sees them', () => {
    const m = hash();
    expect(() => m.update(u32(1), u32(1))).toThrow(/value is 4 bytes but map weirtest_hash .* needs 8/);
    expect(() => m.lookup(u64(1))).toThrow(/key is 8 bytes but map weirtest_hash .* has key_size 4/);
    expect(() => m.update('x' as unknown as Buffer, u64(1))).toThrow(TypeError);
  });

  it('a full map is E2BIG', () => {
    const m = hash(2);
    m.update(u32(1), u64(1));
    m.update(u32(2), u64(2));
    expect(() => m.update(u32(3), u64(3))).toThrow(expect.objectContaining({ code: 'E2BIG' }));
  });

  it('iterates with nextKey / keys / entries', () => {
    const m = hash();
    for (let i = 0; i < 10; i++) m.update(u32(i), u64(i * 100));
    const keys = [...m.keys()].map((k) => k.readUInt32LE()).sort((a, b) => a - b);
    expect(keys).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const entries = new Map([...m.entries()].map(([k, v]) => [k.readUInt32LE(), v.readBigUInt64LE()]));
    expect(entries.get(7)).toBe(700n);
    expect(entries.size).toBe(10);
    const first = m.nextKey();
    expect(first).toBeDefined();
    const empty = hash();
    expect(empty.nextKey()).toBeUndefined();
    expect([...empty.entries()]).toEqual([]);
  });

  it('lookupAndDelete on a HASH map and pop on a QUEUE', () => {
    const m = hash();
    m.update(u32(5), u64(55));
    expect(m.lookupAndDelete(u32(5))?.readBigUInt64LE()).toBe(55n);
    expect(m.lookup(u32(5))).toBeUndefined();
    expect(m.lookupAndDelete(u32(5))).toBeUndefined();

    const q = track(BpfMap.create({ type: MapType.QUEUE, name: 'weirtest_q', keySize: 0, valueSize: 4, maxEntries: 8 }));
    q.update(undefined, u32(1));
    q.update(Buffer.alloc(0), u32(2));
    expect(q.lookup()?.readUInt32LE()).toBe(1); // peek
    expect(q.lookupAndDelete()?.readUInt32LE()).toBe(1);
    expect(q.lookupAndDelete()?.readUInt32LE()).toBe(2);
    expect(q.lookupAndDelete()).toBeUndefined();
  });

  it('batch lookup / update / delete on a HASH map', () => {
    const m = hash(4096, 'weirtest_batch');
    const n = 1000;
    const keys = Array.from({ length: n }, (_, i) => u32(i));
    const values = Array.from({ length: n }, (_, i) => u64(i * 3));
    expect(m.updateBatch(keys, values)).toBe(n);

    // Small chunks force many BPF_MAP_LOOKUP_BATCH calls (and bucket regrowth).
    const all = m.lookupBatch({ batchSize: 7 });
    expect(all.length).toBe(n);
    const seen = new Map(all.map(([k, v]) => [k.readUInt32LE(), v.readBigUInt64LE()]));
    for (let i = 0; i < n; i++) expect(seen.get(i)).toBe(BigInt(i * 3));
    expect(m.lookupBatch().length).toBe(n);

    // The kernel's batch update has no NOEXIST/EXIST; we say so up front.
    expect(() => m.updateBatch([u32(5000)], [u64(1)], UpdateFlags.NOEXIST)).toThrow(/only UpdateFlags.ANY or F_LOCK/);
    expect(m.updateBatch([u32(5000), u32(1)], [u64(1), u64(4)])).toBe(2);
    expect(m.lookup(u32(1))?.readBigUInt64LE()).toBe(4n);

    // Absent keys are skipped, not fatal.
    expect(m.deleteBatch([u32(0), u32(1), u32(99999), u32(2)])).toBe(3);
    expect(m.lookup(u32(1))).toBeUndefined();
    expect(m.lookupBatch({ batchSize: 64 }).length).toBe(n - 3 + 1); // + key 5000 from the partial batch
  });

  it('batch ops on map types without them fail with a clear fallback error', () => {
    const q = track(BpfMap.create({ type: MapType.QUEUE, name: 'weirtest_bq', keySize: 0, valueSize: 4, maxEntries: 4 }));
    let err: BpfError | undefined;
    try {
      q.lookupBatch();
    } catch (e) {
      err = e as BpfError;
    }
    expect(err).toBeInstanceOf(BpfError);
    expect(['ENOTSUPP', 'EINVAL', 'EOPNOTSUPP']).toContain(err!.code);
    expect(err!.syscall).toBe('bpf_map_lookup_batch');
    expect(err!.message).toContain('batch ops are not supported for map type QUEUE; use lookup/update per key');

    const arr = track(BpfMap.create({ type: MapType.ARRAY, name: 'weirtest_ba', keySize: 4, valueSize: 4, maxEntries: 4 }));
    expect(() => arr.deleteBatch([u32(0)])).toThrow(/batch ops are not supported for map type ARRAY/);
  });

  it('LPM_TRIE: lookups work; batch ops either work (newer kernels) or fail with the clear error', () => {
    const lpm = track(
      BpfMap.create({
        type: MapType.LPM_TRIE,
        name: 'weirtest_lpm',
        keySize: 8,
        valueSize: 4,
        maxEntries: 16,
        flags: MapFlags.NO_PREALLOC,
      }),
    );
    const key = Buffer.from([24, 0, 0, 0, 10, 1, 2, 0]); // 10.1.2.0/24
    lpm.update(key, u32(7));
    expect(lpm.lookup(Buffer.from([32, 0, 0, 0, 10, 1, 2, 9]))?.readUInt32LE()).toBe(7);
    let entries: Array<[Buffer, Buffer]> | undefined;
    try {
      entries = lpm.lookupBatch();
    } catch (e) {
      expect(e).toBeInstanceOf(BpfError);
      expect((e as Error).message).toContain('batch ops are not supported for map type LPM_TRIE; use lookup/update per key');
    }
    if (entries) expect(entries).toEqual([[key, u32(7)]]);
  });

  it('per-CPU maps use roundup(valueSize, 8) * possibleCpus() value buffers', () => {
    const cpus = possibleCpus();
    expect(cpus).toBeGreaterThan(0);
    const pc = track(
      BpfMap.create({ type: MapType.PERCPU_ARRAY, name: 'weirtest_pcpu', keySize: 4, valueSize: 4, maxEntries: 2 }),
    );
    expect(pc.valueBufferSize).toBe(8 * cpus);
    const v = Buffer.alloc(8 * cpus);
    for (let c = 0; c < cpus; c++) v.writeUInt32LE(c + 1, c * 8);
    pc.update(u32(1), v);
    const got = pc.lookup(u32(1))!;
    expect(got.length).toBe(8 * cpus);
    for (let c = 0; c < cpus; c++) expect(got.readUInt32LE(c * 8)).toBe(c + 1);
    expect(() => pc.update(u32(1), u32(1))).toThrow(/per-CPU/);
    const batch = pc.lookupBatch();
    expect(batch.length).toBe(2);
    expect(batch[1][1]).toEqual(v);

    const ph = track(
      BpfMap.create({ type: MapType.PERCPU_HASH, name: 'weirtest_pch', keySize: 4, valueSize: 12, maxEntries: 4 }),
    );
    expect(ph.valueBufferSize).toBe(16 * cpus);
  });

  it('creates map-in-map with innerMapFd and stores inner maps by fd', () => {
    const inner = track(BpfMap.create({ type: MapType.ARRAY, name: 'weirtest_inner', keySize: 4, valueSize: 4, maxEntries: 4 }));
    const outer = track(
      BpfMap.create({
        type: MapType.ARRAY_OF_MAPS,
        name: 'weirtest_outer',
        keySize: 4,
        valueSize: 4,
        maxEntries: 4,
        innerMapFd: inner.fd,
      }),
    );
    outer.update(u32(0), u32(inner.fd));
    // The kernel reports the inner map's id on lookup.
    expect(outer.lookup(u32(0))?.readUInt32LE()).toBe(inner.info.id);
    const other = track(BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 4 }));
    expect(() => outer.update(u32(1), u32(other.fd))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('pins, reopens from the pin and by id, and unpins', () => {
    const m = hash(8, 'weirtest_pin');
    m.update(u32(3), u64(33));
    const path = `${pins.path}/m`;
    m.pin(path);
    expect(existsSync(path)).toBe(true);
    const again = track(BpfMap.fromPin(path));
    expect(again.info.id).toBe(m.info.id);
    expect(again.lookup(u32(3))?.readBigUInt64LE()).toBe(33n);
    const byId = track(BpfMap.fromId(m.info.id));
    expect(byId.info.name).toBe('weirtest_pin');
    expect(() => m.pin(path)).toThrow(expect.objectContaining({ code: 'EEXIST', syscall: 'bpf_obj_pin' }));
    unpin(path);
    expect(existsSync(path)).toBe(false);
    expect(() => unpin(path)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(() => BpfMap.fromPin(path)).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'bpf_obj_get' }));
    expect(() => unpin('/tmp')).toThrow(/not on a bpf filesystem/);
  });

  it('fromPin of a program is a clear error', async () => {
    const p = track(await BpfProgram.load({ type: ProgType.XDP, license: 'GPL', insns: retProg(2) }));
    const path = `${pins.path}/p`;
    p.pin(path);
    expect(() => BpfMap.fromPin(path)).toThrow(/is a BPF prog, not a map/);
    expect(BpfProgram.fromPin(path).info.id).toBe(p.info.id);
    unpin(path);
  });

  it('freeze makes the map read-only for user space', () => {
    const m = track(BpfMap.create({ type: MapType.ARRAY, name: 'weirtest_frz', keySize: 4, valueSize: 4, maxEntries: 1 }));
    m.update(u32(0), u32(9));
    m.freeze();
    expect(() => m.update(u32(0), u32(1))).toThrow(expect.objectContaining({ code: 'EPERM' }));
    expect(m.lookup(u32(0))?.readUInt32LE()).toBe(9);
  });

  it('close is idempotent and a closed map fails clearly', () => {
    const m = BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 4, maxEntries: 1 });
    const d = m.dup();
    expect(d.fd).not.toBe(m.fd);
    m.close();
    m.close();
    expect(m.closed).toBe(true);
    expect(() => m.fd).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => m.lookup(u32(0))).toThrow(/closed/);
    // The dup still works.
    d.update(u32(0), u32(1));
    expect(d.lookup(u32(0))?.readUInt32LE()).toBe(1);
    d.close();
  });

  it('map creation failures name the map', () => {
    expect(() => BpfMap.create({ type: MapType.HASH, name: 'weirtest_bad', keySize: 0, valueSize: 4, maxEntries: 1 })).toThrow(
      expect.objectContaining({ code: 'EINVAL', syscall: 'bpf_map_create', message: expect.stringContaining('weirtest_bad') }),
    );
    expect(() => BpfMap.create({ type: MapType.HASH, keySize: -1, valueSize: 4, maxEntries: 1 })).toThrow(RangeError);
    expect(() => BpfMap.fromId(0x7ffffff0)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});
