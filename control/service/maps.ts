// The reconciler's tables over the real pinned maps, and the Maglev map-in-map:
// a new inner ARRAY per table change, filled, then swapped into weir_maglev
// with one update of the outer map (a packet sees the old table or the new
// one, never a mix).
import type { CollectionSpec } from '../../loader/index.js';
import type { DatapathMaps } from '../datapath/maps.js';
import { BpfMap, MapType } from '../../native/index.js';
import { MAGLEV_M_DEFAULT, isPrime } from './maglev.js';
import type { MaglevStore, ServiceTables } from './reconciler.js';

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};

export class PinnedMaglev implements MaglevStore {
  constructor(
    readonly outer: BpfMap,
    readonly m: number = MAGLEV_M_DEFAULT,
  ) {}

  /** Inner maps are named TAG_PREFIX + tag (map names hold 15 characters). */
  static readonly TAG_PREFIX = 'wm';

  *tags(): Generator<[number, string]> {
    for (const k of this.outer.keys()) {
      // From user space a map-in-map lookup yields the inner map's id.
      const v = this.outer.lookup(k);
      if (!v) continue;
      let name = '';
      try {
        const inner = BpfMap.fromId(v.readUInt32LE(0));
        name = inner.info.name;
        inner.close();
      } catch {
        // Gone meanwhile: no tag, the table is rebuilt.
      }
      yield [k.readUInt32LE(0), name.startsWith(PinnedMaglev.TAG_PREFIX) ? name.slice(PinnedMaglev.TAG_PREFIX.length) : ''];
    }
  }

  // Slot keys 0..M-1 and a value buffer with its per-slot views, made once
  // (updateBatch copies them out before it returns).
  #keys?: Buffer[];
  #vb?: Buffer;
  #values?: Buffer[];

  /** One new inner map holding `table`; the caller closes it. */
  #build(table: Uint32Array, tag: string): BpfMap {
    if (table.length !== this.m) throw new RangeError(`maglev: table of ${table.length} entries for M=${this.m}`);
    if (!this.#keys || !this.#vb || !this.#values) {
      const kb = Buffer.alloc(this.m * 4);
      const vb = Buffer.alloc(this.m * 4);
      this.#keys = Array.from({ length: this.m }, (_, i) => (kb.writeUInt32LE(i, i * 4), kb.subarray(i * 4, i * 4 + 4)));
      this.#values = Array.from({ length: this.m }, (_, i) => vb.subarray(i * 4, i * 4 + 4));
      this.#vb = vb;
    }
    // Uint32Array is host (little-endian) order, as the kernel reads __u32.
    Buffer.from(table.buffer, table.byteOffset, table.byteLength).copy(this.#vb);
    const inner = BpfMap.create({ type: MapType.ARRAY, name: PinnedMaglev.TAG_PREFIX + tag, keySize: 4, valueSize: 4, maxEntries: this.m });
    try {
      inner.updateBatch(this.#keys, this.#values);
      return inner;
    } catch (e) {
      inner.close();
      throw e;
    }
  }

  /**
   * Every map-in-map update waits for an RCU grace period (the kernel makes
   * sure no program still uses the old inner map), ~10-20 ms each; a batch
   * update waits once. So tables are swapped in chunks with one batch each.
   */
  replaceMany(tables: Array<{ svcId: number; table: Uint32Array; tag: string }>): void {
    const CHUNK = 64; // at most 64 new tables (4-16 MiB) held at once
    for (let at = 0; at < tables.length; at += CHUNK) {
      const chunk = tables.slice(at, at + CHUNK);
      const inners: BpfMap[] = [];
      try {
        for (const { table, tag } of chunk) inners.push(this.#build(table, tag));
        // The outer map takes its own references; ours go in finally.
        const keys = chunk.map((c) => u32(c.svcId));
        const values = inners.map((m) => u32(m.fd));
        try {
          this.outer.updateBatch(keys, values);
        } catch (e) {
          if (!notSupported(e)) throw e;
          keys.forEach((k, i) => this.outer.update(k, values[i]));
        }
      } finally {
        for (const m of inners) m.close();
      }
    }
  }

  replace(svcId: number, table: Uint32Array, tag = ''): void {
    this.replaceMany([{ svcId, table, tag }]);
  }

  deleteMany(svcIds: number[]): void {
    if (svcIds.length === 0) return;
    const keys = svcIds.map(u32);
    try {
      this.outer.deleteBatch(keys);
    } catch (e) {
      // ENOENT: a key already gone stops the batch; the rest go one by one.
      if (!notSupported(e) && (e as { errno?: number }).errno !== 2) throw e;
      for (const k of keys) this.outer.delete(k);
    }
  }
}

const notSupported = (e: unknown) => [22, 95, 524].includes((e as { errno?: number }).errno ?? 0);

/** The service tables of a set of datapath maps. */
export function serviceTables(maps: DatapathMaps, m: number = MAGLEV_M_DEFAULT): ServiceTables & { maglev: PinnedMaglev } {
  return {
    svc4: maps.svc4,
    backend4: maps.backend4,
    lbSlots: maps.lbSlots,
    revnat4: maps.revnat4,
    node4: maps.node4,
    maglev: new PinnedMaglev(maps.maglev, m),
  };
}

/**
 * Sets the Maglev table size before load: the weir_maglev inner template's
 * max_entries and the MAGLEV_M constant the programs index with. An existing
 * pinned weir_maglev keeps the size it was made with.
 */
export function configureMaglev(spec: CollectionSpec, m: number): void {
  if (!isPrime(m)) throw new RangeError(`maglev table size ${m} is not a prime`);
  const outer = spec.maps['weir_maglev'];
  if (!outer?.inner) throw new Error(`${spec.source}: no weir_maglev map-in-map`);
  outer.inner.maxEntries = m;
  if (spec.variables['MAGLEV_M']) spec.setConstants({ MAGLEV_M: m });
}
