// PinnedMaglev fills inner maps through mmap (BPF_F_MMAPABLE, as pod.o's
// template says), and still works over a weir_maglev pinned by an older agent
// whose inner template has no flags (root; pins under /sys/fs/bpf/h10-*).
import { mkdirSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCollectionSpec } from '../../loader/index.js';
import { bpfObject } from '../../control/paths.js';
import { openPinnedMaps, type DatapathMaps } from '../../control/datapath/maps.js';
import { BpfError, BpfMap, MapFlags } from '../../native/index.js';
import { PinnedMaglev } from '../../control/service/maps.js';
import { MAGLEV_M_DEFAULT, MAGLEV_M_LARGE, maglevTable } from '../../control/service/maglev.js';
import { requireRoot } from '../lib/netns.js';

const skip = requireRoot('PinnedMaglev over pinned maps');
const roots: string[] = [];

/** pod.o's maps pinned under a fresh directory; innerFlags overrides the inner template's flags (an older object). */
async function pinMaps(innerFlags?: number): Promise<DatapathMaps> {
  const pinRoot = `/sys/fs/bpf/h10-mag-${process.pid}-${roots.length}`;
  roots.push(pinRoot);
  mkdirSync(pinRoot, { recursive: true });
  const spec = loadCollectionSpec(bpfObject('pod'));
  if (innerFlags !== undefined) spec.maps['weir_maglev'].inner!.flags = innerFlags;
  (await spec.load({ pinRoot, programs: [] })).close();
  return openPinnedMaps(pinRoot);
}

/** The inner map in place for svcId: its flags and its M values. */
function readTable(maps: DatapathMaps, svcId: number): { flags: number; name: string; ids: Uint32Array } {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(svcId);
  const inner = BpfMap.fromId(maps.maglev.lookup(k)!.readUInt32LE(0));
  try {
    const ids = new Uint32Array(inner.info.maxEntries);
    for (const [key, val] of inner.lookupBatch()) ids[key.readUInt32LE(0)] = val.readUInt32LE(0);
    return { flags: inner.info.flags, name: inner.info.name, ids };
  } finally {
    inner.close();
  }
}

const tableOf = (n: number, base: number) =>
  maglevTable(Array.from({ length: n }, (_, i) => `10.9.${base}.${i + 1}:80/6`)).map((x) => base * 100 + x + 1);

describe.skipIf(skip)('PinnedMaglev fill modes', () => {
  afterAll(() => {
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it('fills mmap-able inner maps through the mapping: every slot as given, over several swap chunks', async () => {
    const maps = await pinMaps();
    try {
      const store = new PinnedMaglev(maps.maglev);
      expect(store.fillMode).toBeUndefined();
      const tables = Array.from({ length: 70 }, (_, i) => ({ svcId: 500 + i, table: tableOf(3 + (i % 5), i), tag: `t${i}` }));
      store.replaceMany(tables);
      expect(store.fillMode).toBe('mmap');
      for (const i of [0, 63, 64, 69]) {
        const t = readTable(maps, 500 + i);
        expect(t.flags & MapFlags.MMAPABLE).toBe(MapFlags.MMAPABLE);
        expect(t.name).toBe(`wmt${i}`);
        expect(Buffer.from(t.ids.buffer).equals(Buffer.from(tables[i].table.buffer))).toBe(true);
      }
      // A replaced table is a new map; the old contents are gone.
      store.replace(500, tableOf(2, 99), 'again');
      expect(Buffer.from(readTable(maps, 500).ids.buffer).equals(Buffer.from(tableOf(2, 99).buffer))).toBe(true);
      store.deleteMany(tables.map((t) => t.svcId));
      expect(maps.maglev.keys().next().value).toBeUndefined();
    } finally {
      maps.close();
    }
  });

  it('over an outer map pinned with a plain inner template: falls back to batch-filled plain tables, and a restart knows it', async () => {
    const maps = await pinMaps(0);
    try {
      const store = new PinnedMaglev(maps.maglev);
      const t = tableOf(4, 1);
      store.replace(7, t, 'old');
      expect(store.fillMode).toBe('batch');
      const got = readTable(maps, 7);
      expect(got.flags & MapFlags.MMAPABLE).toBe(0);
      expect(Buffer.from(got.ids.buffer).equals(Buffer.from(t.buffer))).toBe(true);

      // A new store over the same pins learns the mode from the table in place.
      const again = new PinnedMaglev(maps.maglev);
      again.replaceMany([{ svcId: 8, table: tableOf(5, 2), tag: 'x' }]);
      expect(again.fillMode).toBe('batch');
      expect(Buffer.from(readTable(maps, 8).ids.buffer).equals(Buffer.from(tableOf(5, 2).buffer))).toBe(true);
      expect(Buffer.from(readTable(maps, 7).ids.buffer).equals(Buffer.from(t.buffer))).toBe(true);
    } finally {
      maps.close();
    }
  });

  it('a table the outer map refuses for another reason (wrong M) is an error, and nothing is lost', async () => {
    const maps = await pinMaps();
    try {
      const good = new PinnedMaglev(maps.maglev);
      good.replace(1, tableOf(3, 1), 'ok');
      const wrong = new PinnedMaglev(maps.maglev, MAGLEV_M_LARGE);
      let err: unknown;
      try {
        wrong.replace(2, new Uint32Array(MAGLEV_M_LARGE).fill(9), 'big');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BpfError);
      expect((err as BpfError).code).toBe('EINVAL');
      expect(readTable(maps, 1).ids.length).toBe(MAGLEV_M_DEFAULT);
      expect(Buffer.from(readTable(maps, 1).ids.buffer).equals(Buffer.from(tableOf(3, 1).buffer))).toBe(true);
      expect(maps.maglev.lookup(Buffer.from([2, 0, 0, 0]))).toBeUndefined();
      // The existing table settled the mode; a bad table does not change it.
      expect(wrong.fillMode).toBe('mmap');
      const fresh = new PinnedMaglev(maps.maglev);
      fresh.replace(3, tableOf(2, 3), 'n');
      expect(readTable(maps, 3).flags & MapFlags.MMAPABLE).toBe(MapFlags.MMAPABLE);
    } finally {
      maps.close();
    }
  });

  it('with an empty outer map, a refused first table leaves the mode unsettled instead of switching to batch', async () => {
    const maps = await pinMaps();
    try {
      const wrong = new PinnedMaglev(maps.maglev, MAGLEV_M_LARGE);
      expect(() => wrong.replace(2, new Uint32Array(MAGLEV_M_LARGE), 'big')).toThrow(BpfError);
      expect(wrong.fillMode).toBeUndefined();
      expect(maps.maglev.keys().next().value).toBeUndefined();
    } finally {
      maps.close();
    }
  });
});
