// Writes a DesiredState into the service maps. The maps are the source of
// truth: at start the reconciler reads them (never flushes), recovers every
// id from them, and from then on writes only differences.
//
// Order, so a packet never follows a reference to something not yet there:
//   backends → reverse-NAT → slots / Maglev tables → service entries,
// and for removal the reverse: service entries → Maglev tables / slots →
// reverse-NAT → backends. Slots keep their place when the backend set
// changes: a removed backend's slot gets the last backend, a new backend takes
// the first free slot, so one endpoint change is a write or two.
import { createHash } from 'node:crypto';
import type { Backend4, LbSlotKey, NodeAddrValue, Revnat4, Svc4Key, SvcValue } from '../datapath/types.gen.js';
import { BackendFlags, LbAlgorithm } from '../datapath/types.gen.js';
import { IdAllocator } from './ids.js';
import { maglevTable } from './maglev.js';
import { backendState } from './model.js';
import { backendKey, frontendKey, revnatKey, type DesiredFrontend, type DesiredState } from './types.js';

/** One map as the reconciler sees it: the shape of control/datapath/maps.ts TypedMap. */
export interface Table<K, V> {
  get(k: K): V | undefined;
  set(k: K, v: V): void;
  delete(k: K): boolean;
  entries(): Iterable<[K, V]>;
  setMany(entries: Array<[K, V]>): void;
  deleteMany(keys: K[]): void;
}

/**
 * weir_maglev: svc_id → a table of M backend ids, replaced whole. Each table
 * carries a tag (maglevTag: a digest of what it was built from) so a restart
 * knows what is in place without reading M entries per service.
 */
export interface MaglevStore {
  readonly m: number;
  /** svc_id → tag of every table in place ('' when it has none). */
  tags(): Iterable<[number, string]>;
  /** Builds new tables and swaps them in (each swap is one update of the outer map). */
  replaceMany(tables: Array<{ svcId: number; table: Uint32Array; tag: string }>): void;
  deleteMany(svcIds: number[]): void;
}

/** 13 hex digits of a digest of (M, backend identity → id): fits a map name with a 2-char prefix. */
export function maglevTag(m: number, keys: readonly string[], ids: readonly number[]): string {
  const h = createHash('sha256').update(`${m}|`);
  keys.forEach((k, i) => h.update(`${k}=${ids[i]},`));
  return h.digest('hex').slice(0, 13);
}

export interface ServiceTables {
  svc4: Table<Svc4Key, SvcValue>;
  backend4: Table<number, Backend4>;
  lbSlots: Table<LbSlotKey, number>;
  revnat4: Table<number, Revnat4>;
  node4: Table<number, NodeAddrValue>;
  maglev: MaglevStore;
}

export type TableName = keyof ServiceTables;
/** Entries written and deleted per map (Maglev: tables replaced / deleted). */
export type WriteCounters = Record<TableName, { writes: number; deletes: number }>;

/** Maglev tables built before they are handed to the store. */
const MAGLEV_FLUSH = 64;

const emptyCounters = (): WriteCounters => ({
  svc4: { writes: 0, deletes: 0 },
  backend4: { writes: 0, deletes: 0 },
  lbSlots: { writes: 0, deletes: 0 },
  revnat4: { writes: 0, deletes: 0 },
  node4: { writes: 0, deletes: 0 },
  maglev: { writes: 0, deletes: 0 },
});

const sameBackend = (a: Backend4, b: Backend4) =>
  a.addr === b.addr && a.port === b.port && a.proto === b.proto && a.state === b.state && a.node_id === b.node_id && a.flags === b.flags;
const sameSvc = (a: SvcValue, b: SvcValue) =>
  a.svc_id === b.svc_id && a.count === b.count && a.revnat_id === b.revnat_id && a.affinity_timeout === b.affinity_timeout && a.flags === b.flags && a.algorithm === b.algorithm;

/** Slot → backend id, keeping backends that stay where they are. */
export function assignSlots(current: Map<number, number> | undefined, wanted: number[]): Map<number, number> {
  const n = wanted.length;
  const want = new Set(wanted);
  const out = new Map<number, number>();
  const placed = new Set<number>();
  for (const [slot, id] of current ?? []) {
    if (slot >= 1 && slot <= n && want.has(id) && !placed.has(id)) {
      out.set(slot, id);
      placed.add(id);
    }
  }
  const rest = wanted.filter((id) => !placed.has(id));
  let slot = 1;
  for (const id of rest) {
    while (out.has(slot)) slot++;
    out.set(slot, id);
  }
  return out;
}

export class ServiceReconciler {
  readonly svcIds = new IdAllocator('service');
  readonly backendIds = new IdAllocator('backend');
  readonly revnatIds = new IdAllocator('revnat');
  counters: WriteCounters = emptyCounters();

  // What the maps hold (as read at start, then as written).
  readonly #svc = new Map<string, { key: Svc4Key; value: SvcValue }>();
  readonly #backends = new Map<number, Backend4>();
  readonly #revnat = new Map<number, Revnat4>();
  readonly #slots = new Map<number, Map<number, number>>();
  /** svc_id → tag of the table in place. */
  readonly #maglev = new Map<number, string>();
  readonly #nodeAddrs = new Set<number>();
  readonly #m: number;

  /** The Maglev table size is the store's (it must match the loaded weir_maglev inner map). */
  constructor(readonly tables: ServiceTables) {
    this.#m = tables.maglev.m;
    this.#recover();
  }

  /** Reads every map and takes over the ids in them. */
  #recover(): void {
    const t = this.tables;
    for (const [key, value] of t.svc4.entries()) {
      const fk = frontendKey(key);
      this.#svc.set(fk, { key, value });
      // A clashing svc_id (never written by us) stays unrestored: the entry gets a new one.
      this.svcIds.restore(fk, value.svc_id);
    }
    for (const [id, value] of t.backend4.entries()) {
      this.#backends.set(id, value);
      this.backendIds.restore(backendKey(value), id);
    }
    for (const [id, value] of t.revnat4.entries()) {
      this.#revnat.set(id, value);
      this.revnatIds.restore(revnatKey(value), id);
    }
    for (const [key, id] of t.lbSlots.entries()) {
      this.svcIds.seen(key.svc_id);
      let m = this.#slots.get(key.svc_id);
      if (!m) this.#slots.set(key.svc_id, (m = new Map()));
      m.set(key.slot, id);
    }
    for (const [id, tag] of t.maglev.tags()) {
      this.svcIds.seen(id);
      this.#maglev.set(id, tag);
    }
    for (const [addr] of t.node4.entries()) this.#nodeAddrs.add(addr);
  }

  resetCounters(): void {
    this.counters = emptyCounters();
  }

  #setMany<K, V>(name: Exclude<TableName, 'maglev'>, entries: Array<[K, V]>): void {
    if (entries.length === 0) return;
    (this.tables[name] as unknown as Table<K, V>).setMany(entries);
    this.counters[name].writes += entries.length;
  }

  #deleteMany<K>(name: Exclude<TableName, 'maglev'>, keys: K[]): void {
    if (keys.length === 0) return;
    (this.tables[name] as unknown as Table<K, unknown>).deleteMany(keys);
    this.counters[name].deletes += keys.length;
  }

  /** Makes the maps hold `desired`. Throws on a map error; what was written stays consistent. */
  sync(desired: DesiredState): void {
    const t = this.tables;

    // Ids and values of everything wanted.
    const wantBackends = new Map<number, Backend4>();
    for (const [bk, b] of desired.backends) {
      wantBackends.set(this.backendIds.acquire(bk), {
        addr: b.addr,
        port: b.port,
        proto: b.proto,
        state: backendState(b),
        node_id: b.nodeId,
        flags: b.local ? BackendFlags.BACKEND_F_LOCAL : 0,
        pad: Buffer.alloc(3),
      });
    }
    const wantRevnat = new Map<number, Revnat4>();
    interface Planned {
      fk: string;
      f: DesiredFrontend;
      key: Svc4Key;
      value: SvcValue;
      ids: number[];
    }
    const planned: Planned[] = [];
    for (const [fk, f] of desired.frontends) {
      const revnatId = this.revnatIds.acquire(revnatKey(f.revnat));
      wantRevnat.set(revnatId, { addr: f.revnat.addr, port: f.revnat.port, pad: 0 });
      const ids = f.backends.map((bk) => {
        const id = this.backendIds.get(bk);
        if (id === undefined) throw new Error(`service ${f.service}: frontend ${fk} names backend ${bk} that is not in the desired backends`);
        return id;
      });
      if (f.algorithm === LbAlgorithm.LB_ALG_MAGLEV && ids.length > this.#m) {
        throw new Error(`service ${f.service}: frontend ${fk} has ${ids.length} backends, more than the Maglev table size ${this.#m}`);
      }
      const svcId = this.svcIds.acquire(fk);
      planned.push({
        fk,
        f,
        ids,
        key: { addr: f.addr, port: f.port, proto: f.proto, scope: f.scope },
        value: { svc_id: svcId, count: ids.length, revnat_id: revnatId, affinity_timeout: f.affinityTimeout, flags: f.flags, algorithm: f.algorithm, pad: 0 },
      });
    }

    // 0. Node addresses appear before the NodePorts that need them.
    const nodeAdds = [...desired.nodeAddrs].filter((a) => !this.#nodeAddrs.has(a));
    this.#setMany('node4', nodeAdds.map((a) => [a, { flags: 0 }] as [number, NodeAddrValue]));
    nodeAdds.forEach((a) => this.#nodeAddrs.add(a));

    // 1. Backends.
    const backendWrites: Array<[number, Backend4]> = [];
    for (const [id, v] of wantBackends) {
      const have = this.#backends.get(id);
      if (!have || !sameBackend(have, v)) backendWrites.push([id, v]);
    }
    this.#setMany('backend4', backendWrites);
    for (const [id, v] of backendWrites) this.#backends.set(id, v);

    // 2. Reverse NAT.
    const revnatWrites: Array<[number, Revnat4]> = [];
    for (const [id, v] of wantRevnat) {
      const have = this.#revnat.get(id);
      if (!have || have.addr !== v.addr || have.port !== v.port) revnatWrites.push([id, v]);
    }
    this.#setMany('revnat4', revnatWrites);
    for (const [id, v] of revnatWrites) this.#revnat.set(id, v);

    // 3. Slots and Maglev tables.
    const slotWrites: Array<[LbSlotKey, number]> = [];
    const slotDeletes: LbSlotKey[] = [];
    for (const p of planned) {
      const svcId = p.value.svc_id;
      const cur = this.#slots.get(svcId);
      const next = assignSlots(cur, p.ids);
      for (const [slot, id] of next) if (cur?.get(slot) !== id) slotWrites.push([{ svc_id: svcId, slot }, id]);
      for (const slot of cur?.keys() ?? []) if (!next.has(slot)) slotDeletes.push({ svc_id: svcId, slot });
    }
    this.#setMany('lbSlots', slotWrites);
    for (const [k, id] of slotWrites) {
      let m = this.#slots.get(k.svc_id);
      if (!m) this.#slots.set(k.svc_id, (m = new Map()));
      m.set(k.slot, id);
    }
    const wantMaglev = new Set<number>();
    // Written in chunks: a table is M*4 bytes; thousands at once would not fit memory well.
    const maglevWrites: Array<{ svcId: number; table: Uint32Array; tag: string }> = [];
    const flushMaglev = () => {
      if (maglevWrites.length === 0) return;
      t.maglev.replaceMany(maglevWrites);
      this.counters.maglev.writes += maglevWrites.length;
      for (const w of maglevWrites) this.#maglev.set(w.svcId, w.tag);
      maglevWrites.length = 0;
    };
    for (const p of planned) {
      if (p.f.algorithm !== LbAlgorithm.LB_ALG_MAGLEV || p.ids.length === 0) continue;
      const svcId = p.value.svc_id;
      wantMaglev.add(svcId);
      const tag = maglevTag(this.#m, p.f.backends, p.ids);
      if (this.#maglev.get(svcId) === tag) continue;
      // Hash on the backend identity (the same on every node), store the ids.
      const idx = maglevTable(p.f.backends, this.#m);
      const table = new Uint32Array(idx.length);
      for (let i = 0; i < idx.length; i++) table[i] = p.ids[idx[i]];
      maglevWrites.push({ svcId, table, tag });
      if (maglevWrites.length >= MAGLEV_FLUSH) flushMaglev();
    }
    flushMaglev();

    // 4. Service entries.
    const svcWrites: Array<[Svc4Key, SvcValue]> = [];
    for (const p of planned) {
      const have = this.#svc.get(p.fk);
      if (!have || !sameSvc(have.value, p.value)) svcWrites.push([p.key, p.value]);
    }
    this.#setMany('svc4', svcWrites);
    for (const [key, value] of svcWrites) this.#svc.set(frontendKey(key), { key, value });

    // 5. Removal, in reverse: service entries first.
    const goneSvc = [...this.#svc.keys()].filter((fk) => !desired.frontends.has(fk));
    this.#deleteMany('svc4', goneSvc.map((fk) => this.#svc.get(fk)!.key));
    const liveIds = new Set(planned.map((p) => p.value.svc_id));
    for (const fk of goneSvc) {
      const id = this.#svc.get(fk)!.value.svc_id;
      this.#svc.delete(fk);
      if (this.svcIds.get(fk) === id) this.svcIds.release(fk);
    }
    const maglevGone = [...this.#maglev.keys()].filter((id) => !wantMaglev.has(id));
    if (maglevGone.length > 0) {
      t.maglev.deleteMany(maglevGone);
      this.counters.maglev.deletes += maglevGone.length;
      maglevGone.forEach((id) => this.#maglev.delete(id));
    }
    for (const [svcId, slots] of this.#slots) {
      if (liveIds.has(svcId)) continue;
      for (const slot of slots.keys()) slotDeletes.push({ svc_id: svcId, slot });
    }
    this.#deleteMany('lbSlots', slotDeletes);
    for (const k of slotDeletes) {
      const m = this.#slots.get(k.svc_id);
      m?.delete(k.slot);
      if (m && m.size === 0) this.#slots.delete(k.svc_id);
    }

    const goneRevnat = [...this.#revnat.keys()].filter((id) => !wantRevnat.has(id));
    this.#deleteMany('revnat4', goneRevnat);
    for (const id of goneRevnat) {
      const key = this.revnatIds.keyOf(id);
      if (key !== undefined) this.revnatIds.release(key);
      this.#revnat.delete(id);
    }
    for (const [key, id] of [...this.revnatIds.entries()]) if (!wantRevnat.has(id)) this.revnatIds.release(key);

    const goneBackends = [...this.#backends.keys()].filter((id) => !wantBackends.has(id));
    this.#deleteMany('backend4', goneBackends);
    for (const id of goneBackends) {
      const key = this.backendIds.keyOf(id);
      if (key !== undefined) this.backendIds.release(key);
      this.#backends.delete(id);
    }
    for (const [key, id] of [...this.backendIds.entries()]) if (!wantBackends.has(id)) this.backendIds.release(key);

    // Ids taken for frontends that are no longer wanted (and never written).
    for (const [key] of [...this.svcIds.entries()]) if (!desired.frontends.has(key)) this.svcIds.release(key);

    const nodeGone = [...this.#nodeAddrs].filter((a) => !desired.nodeAddrs.has(a));
    this.#deleteMany('node4', nodeGone);
    nodeGone.forEach((a) => this.#nodeAddrs.delete(a));
  }
}
