// The reconciler's tables over the real pinned maps, and the Maglev map-in-map:
// a new inner ARRAY per table change, filled (through an mmap of the fresh
// array), then swapped into weir_maglev with one update of the outer map (a
// packet sees the old table or the new one, never a mix).
import type { CollectionSpec } from '../../loader/index.js';
import type { DatapathMaps } from '../datapath/maps.js';
import { BpfMap, MapFlags, MapType } from '../../native/index.js';
import { MAGLEV_M_DEFAULT, isPrime } from './maglev.js';
import type { MaglevStore, ServiceTables } from './reconciler.js';

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};

const EINVAL = 22;

export type FillMode = 'mmap' | 'batch';

/**
 * Writes `table` into a fresh BPF_F_MMAPABLE inner map through a mapping: M
 * stores instead of M map updates. The kernel strides array values to 8
 * bytes, so slot i's u32 is word 2i (its upper half stays zero). The map is
 * not in the outer map yet, so no packet sees it half written.
 */
function fillMapped(inner: BpfMap, table: Uint32Array): void {
  const mm = inner.mmap();
  try {
    const words = new Uint32Array(mm.buffer.buffer, mm.buffer.byteOffset, (table.length * mm.stride) / 4);
    const step = mm.stride / 4;
    for (let i = 0; i < table.length; i++) words[i * step] = table[i];
  } finally {
    mm.close();
  }
}

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

  /**
   * How new tables are filled: 'mmap' (BPF_F_MMAPABLE inner maps written
   * through a mapping, the default of bpf/include/maps.h) or 'batch' (plain
   * inner maps written with BPF_MAP_UPDATE_BATCH, for a weir_maglev pinned
   * by an older agent whose inner template lacks the flag: the kernel refuses
   * inner maps whose flags differ from the template's). Undefined until the
   * first existing or newly swapped table settles it.
   */
  get fillMode(): FillMode | undefined {
    return this.#modeKnown ? this.#mode : undefined;
  }

  #mode: FillMode = 'mmap';
  #modeKnown = false;

  /** The flags of a table already in the outer map tell which inner maps it takes. */
  #learnMode(): void {
    if (this.#modeKnown) return;
    for (const k of this.outer.keys()) {
      const v = this.outer.lookup(k);
      if (!v) continue;
      let inner: BpfMap;
      try {
        inner = BpfMap.fromId(v.readUInt32LE(0));
      } catch {
        continue; // gone meanwhile
      }
      try {
        this.#mode = inner.info.flags & MapFlags.MMAPABLE ? 'mmap' : 'batch';
        this.#modeKnown = true;
      } finally {
        inner.close();
      }
      return;
    }
  }

  /** One new inner map holding `table`; the caller closes it. */
  #build(table: Uint32Array, tag: string, mode: FillMode): BpfMap {
    if (table.length !== this.m) throw new RangeError(`maglev: table of ${table.length} entries for M=${this.m}`);
    const inner = BpfMap.create({
      type: MapType.ARRAY,
      name: PinnedMaglev.TAG_PREFIX + tag,
      keySize: 4,
      valueSize: 4,
      maxEntries: this.m,
      flags: mode === 'mmap' ? MapFlags.MMAPABLE : 0,
    });
    try {
      if (mode === 'mmap') fillMapped(inner, table);
      else this.#fillBatch(inner, table);
      return inner;
    } catch (e) {
      inner.close();
      throw e;
    }
  }

  // For 'batch': slot keys 0..M-1 and a value buffer with its per-slot
  // views, made once (updateBatch copies them out before it returns).
  #keys?: Buffer[];
  #vb?: Buffer;
  #values?: Buffer[];

  #fillBatch(inner: BpfMap, table: Uint32Array): void {
    if (!this.#keys || !this.#vb || !this.#values) {
      const kb = Buffer.alloc(this.m * 4);
      const vb = Buffer.alloc(this.m * 4);
      this.#keys = Array.from({ length: this.m }, (_, i) => (kb.writeUInt32LE(i, i * 4), kb.subarray(i * 4, i * 4 + 4)));
      this.#values = Array.from({ length: this.m }, (_, i) => vb.subarray(i * 4, i * 4 + 4));
      this.#vb = vb;
    }
    // Uint32Array is host (little-endian) order, as the kernel reads __u32.
    Buffer.from(table.buffer, table.byteOffset, table.byteLength).copy(this.#vb);
    inner.updateBatch(this.#keys, this.#values);
  }

  /** Builds the chunk's inner maps and swaps them in with one outer batch update. */
  #swapChunk(chunk: Array<{ svcId: number; table: Uint32Array; tag: string }>, mode: FillMode): void {
    const inners: BpfMap[] = [];
    try {
      for (const { table, tag } of chunk) inners.push(this.#build(table, tag, mode));
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

  /**
   * Every map-in-map update waits for an RCU grace period (the kernel makes
   * sure no program still uses the old inner map), ~10-20 ms each; a batch
   * update waits once. So tables are swapped in chunks with one batch each.
   */
  replaceMany(tables: Array<{ svcId: number; table: Uint32Array; tag: string }>): void {
    const CHUNK = 64; // at most 64 new tables (8-32 MiB) held at once
    this.#learnMode();
    for (let at = 0; at < tables.length; at += CHUNK) {
      const chunk = tables.slice(at, at + CHUNK);
      try {
        this.#swapChunk(chunk, this.#mode);
      } catch (e) {
        // An outer map pinned with a plain inner template refuses mmap-able
        // tables (EINVAL): fall back to plain ones, if they are taken.
        if (this.#modeKnown || this.#mode !== 'mmap' || (e as { errno?: number }).errno !== EINVAL) throw e;
        try {
          this.#swapChunk(chunk, 'batch');
        } catch {
          throw e; // not the template's flags: report the first failure
        }
        this.#mode = 'batch';
      }
      this.#modeKnown = true;
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
