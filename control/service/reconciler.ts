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
//
// Failures stay with their frontend: each map is written in one batch, and
// when the batch fails, entry by entry (slots: frontend by frontend) to find
// the culprit. A frontend whose backend, reverse NAT, slots or Maglev table
// was refused gets no new service entry (the old one keeps working, and
// nothing it names is removed); slots it wrote past its count are taken back
// so it does not hold room others need. sync returns the failed frontends and
// tries them again next time.
//
// Incremental: a frontend (backend) whose desired object is the very one
// programmed by an earlier sync is not diffed again; the model hands back the
// same objects for unchanged Services (README "Incremental updates").
import { createHash } from 'node:crypto';
import type { Backend4, LbSlotKey, NodeAddrValue, Revnat4, Svc4Key, SvcValue } from '../datapath/types.gen.js';
import { BackendFlags, LbAlgorithm } from '../datapath/types.gen.js';
import { IdAllocator } from './ids.js';
import { maglevTable } from './maglev.js';
import { backendState } from './model.js';
import { backendKey, frontendKey, ipString, revnatKey, type DesiredBackend, type DesiredFrontend, type DesiredState } from './types.js';

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

/** A frontend (or a leftover) whose writes the kernel refused this sync. */
export interface SyncFailure {
  /** frontendKey; for a write tied to no desired frontend, the map and key ("node4 192.168.1.10"). */
  frontend: string;
  /** "namespace/name" of the Service ('' when not known, e.g. an entry recovered at start). */
  service: string;
  portName: string;
  error: Error;
}

export interface SyncResult {
  /** Empty when the maps hold everything desired. */
  failed: SyncFailure[];
}

// Errors of the map itself, not of one entry: every write would fail alike.
const EPERM = 1;
const EBADF = 9;
const EACCES = 13;
const EFAULT = 14;
const WHOLE_MAP_ERRNOS = new Set([EPERM, EBADF, EACCES, EFAULT]);

/** True for an error no other entry would escape (a closed map, no permission): sync throws it. */
export function affectsEverything(e: unknown): boolean {
  return WHOLE_MAP_ERRNOS.has((e as { errno?: number } | undefined)?.errno ?? 0);
}

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

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

/** A frontend as the last sync programmed it: skipped while the very same object stays desired. */
interface Done {
  f: DesiredFrontend;
  svcId: number;
  revnatId: number;
  revnat: Revnat4;
  ids: number[];
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
  /** frontendKey → its Service, for reporting a failure to remove it. */
  readonly #names = new Map<string, { service: string; portName: string }>();
  readonly #m: number;
  /**
   * fk → the frontend as programmed by an earlier sync. The model hands back
   * the same DesiredFrontend object for a Service whose inputs did not
   * change; such a frontend is not diffed again (its entry, slots, table and
   * reverse NAT are as it left them). Dropped when it fails or goes.
   */
  readonly #done = new Map<string, Done>();
  /** bk → a backend as written (or found equal) by an earlier sync, its id and value: skipped while the same object stays desired. */
  readonly #doneBackends = new Map<string, { b: DesiredBackend; id: number; value: Backend4 }>();
  /** How many frontends and backends the last sync diffed (the others were the same objects as already programmed). */
  lastDiffed = { frontends: 0, backends: 0 };

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

  /**
   * Writes entries as one batch; when the batch fails, one by one, so one
   * bad entry costs only itself. Returns index → error of the entries not
   * written. An error that affects the whole map (see affectsEverything) is
   * thrown.
   */
  #setEach<K, V>(name: Exclude<TableName, 'maglev'>, entries: Array<[K, V]>): Map<number, Error> {
    const failed = new Map<number, Error>();
    if (entries.length === 0) return failed;
    const table = this.tables[name] as unknown as Table<K, V>;
    try {
      table.setMany(entries);
      this.counters[name].writes += entries.length;
      return failed;
    } catch (e) {
      if (affectsEverything(e)) throw e;
    }
    // A batch may have stopped part way: rewriting the entries before the culprit is harmless.
    entries.forEach(([k, v], i) => {
      try {
        table.set(k, v);
        this.counters[name].writes++;
      } catch (e) {
        if (affectsEverything(e)) throw e;
        failed.set(i, asError(e));
      }
    });
    return failed;
  }

  /** deleteMany, falling back to one by one; index → error of the keys left in place. */
  #deleteEach<K>(name: Exclude<TableName, 'maglev'>, keys: K[]): Map<number, Error> {
    const failed = new Map<number, Error>();
    if (keys.length === 0) return failed;
    const table = this.tables[name] as unknown as Table<K, unknown>;
    try {
      table.deleteMany(keys);
      this.counters[name].deletes += keys.length;
      return failed;
    } catch (e) {
      if (affectsEverything(e)) throw e;
    }
    keys.forEach((k, i) => {
      try {
        table.delete(k);
        this.counters[name].deletes++;
      } catch (e) {
        if (affectsEverything(e)) throw e;
        failed.set(i, asError(e));
      }
    });
    return failed;
  }

  /** Maglev tables swapped in; when a chunk fails, one table at a time. Returns the svc_ids not swapped. */
  #replaceEach(writes: Array<{ svcId: number; table: Uint32Array; tag: string }>): Map<number, Error> {
    const failed = new Map<number, Error>();
    const done = (w: { svcId: number; tag: string }) => {
      this.counters.maglev.writes++;
      this.#maglev.set(w.svcId, w.tag);
    };
    try {
      this.tables.maglev.replaceMany(writes);
      writes.forEach(done);
      return failed;
    } catch (e) {
      if (affectsEverything(e)) throw e;
    }
    for (const w of writes) {
      try {
        this.tables.maglev.replaceMany([w]);
        done(w);
      } catch (e) {
        if (affectsEverything(e)) throw e;
        failed.set(w.svcId, asError(e));
      }
    }
    return failed;
  }

  /**
   * Makes the maps hold `desired`, as far as the kernel takes it. A frontend
   * whose writes fail (a full map, a refused Maglev table, ...) is returned
   * in `failed` and left as it was: its service entry is written only after
   * everything it names, and nothing it still names is removed. The next
   * sync tries it again. Every other frontend is programmed.
   *
   * Throws for a desired state that contradicts itself (before anything is
   * written) and for a map error that affects every entry (a closed map,
   * EPERM): those are not one service's problem.
   */
  sync(desired: DesiredState): SyncResult {
    const t = this.tables;
    /** frontendKey → the first error of its writes this sync. */
    const failedFk = new Map<string, Error>();
    const fail = (fk: string, e: Error) => {
      if (!failedFk.has(fk)) failedFk.set(fk, e);
    };
    /** Failures not tied to a desired frontend (node addresses, leftovers not removed). */
    const other: SyncFailure[] = [];
    const otherFailure = (what: string, error: Error, fk = '') =>
      other.push({ frontend: fk || what, service: this.#names.get(fk)?.service ?? '', portName: this.#names.get(fk)?.portName ?? '', error });

    // Ids and values of everything wanted.
    const wantBackends = new Map<number, Backend4>();
    /** Backends diffed this sync (not the same objects as already programmed). */
    const diffedBackends: Array<{ bk: string; b: DesiredBackend; id: number; value: Backend4 }> = [];
    let doneSeen = 0;
    for (const [bk, b] of desired.backends) {
      const done = this.#doneBackends.get(bk);
      if (done) doneSeen++;
      if (done?.b === b) {
        wantBackends.set(done.id, done.value);
        continue;
      }
      const id = this.backendIds.acquire(bk);
      const value: Backend4 = {
        addr: b.addr,
        port: b.port,
        proto: b.proto,
        state: backendState(b),
        node_id: b.nodeId,
        flags: b.local ? BackendFlags.BACKEND_F_LOCAL : 0,
        pad: Buffer.alloc(3),
      };
      wantBackends.set(id, value);
      diffedBackends.push({ bk, b, id, value });
    }
    if (doneSeen < this.#doneBackends.size) for (const bk of this.#doneBackends.keys()) if (!desired.backends.has(bk)) this.#doneBackends.delete(bk);
    const wantRevnat = new Map<number, Revnat4>();
    interface Planned {
      fk: string;
      f: DesiredFrontend;
      key: Svc4Key;
      value: SvcValue;
      ids: number[];
      slotWrites: Array<[LbSlotKey, number]>;
      slotDeletes: LbSlotKey[];
      /** Backend ids in its slots before this sync (Maglev only: what the table in place may name). */
      before?: number[];
    }
    const planned: Planned[] = [];
    /** Frontends programmed by an earlier sync from this very object: not diffed. */
    const kept: Array<[string, Done]> = [];
    for (const [fk, f] of desired.frontends) {
      const done = this.#done.get(fk);
      if (done?.f === f && done.ids.every((id) => wantBackends.has(id))) {
        wantRevnat.set(done.revnatId, done.revnat);
        kept.push([fk, done]);
        continue;
      }
      this.#done.delete(fk);
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
        slotWrites: [],
        slotDeletes: [],
      });
    }

    // 0. Node addresses appear before the NodePorts that need them.
    const nodeAdds = [...desired.nodeAddrs].filter((a) => !this.#nodeAddrs.has(a));
    const nodeFailed = this.#setEach('node4', nodeAdds.map((a) => [a, { flags: 0 }] as [number, NodeAddrValue]));
    nodeAdds.forEach((a, i) => {
      const e = nodeFailed.get(i);
      if (e) otherFailure(`node4 ${ipString(a)}`, e);
      else this.#nodeAddrs.add(a);
    });

    // 1. Backends. A frontend naming one not written fails (its entry stays as it was).
    const backendWrites: Array<[number, Backend4]> = [];
    for (const { id, value: v } of diffedBackends) {
      const have = this.#backends.get(id);
      if (!have || !sameBackend(have, v)) backendWrites.push([id, v]);
    }
    const backendFailed = new Map<number, Error>();
    const bf = this.#setEach('backend4', backendWrites);
    backendWrites.forEach(([id, v], i) => {
      const e = bf.get(i);
      if (e) backendFailed.set(id, new Error(`backend ${this.backendIds.keyOf(id) ?? id}: ${e.message}`, { cause: e }));
      else this.#backends.set(id, v);
    });

    // 2. Reverse NAT.
    const revnatWrites: Array<[number, Revnat4]> = [];
    for (const [id, v] of wantRevnat) {
      const have = this.#revnat.get(id);
      if (!have || have.addr !== v.addr || have.port !== v.port) revnatWrites.push([id, v]);
    }
    const revnatFailed = new Map<number, Error>();
    const rf = this.#setEach('revnat4', revnatWrites);
    revnatWrites.forEach(([id, v], i) => {
      const e = rf.get(i);
      if (e) revnatFailed.set(id, new Error(`reverse NAT ${id}: ${e.message}`, { cause: e }));
      else this.#revnat.set(id, v);
    });
    for (const d of diffedBackends) if (!backendFailed.has(d.id)) this.#doneBackends.set(d.bk, d);
    if (backendFailed.size > 0 || revnatFailed.size > 0) {
      for (const p of planned) {
        const e = revnatFailed.get(p.value.revnat_id) ?? p.ids.map((id) => backendFailed.get(id)).find((x) => x !== undefined);
        if (e) fail(p.fk, e);
      }
      // A kept frontend naming a backend whose new value was refused fails too (its entry stays).
      for (const [fk, d] of kept) {
        const e = d.ids.map((id) => backendFailed.get(id)).find((x) => x !== undefined);
        if (e) fail(fk, e);
      }
    }

    // 3. Slots (one batch for all; on failure per frontend) and Maglev tables.
    const slotBatch: Array<[LbSlotKey, number]> = [];
    for (const p of planned) {
      const svcId = p.value.svc_id;
      const cur = this.#slots.get(svcId);
      if (p.f.algorithm === LbAlgorithm.LB_ALG_MAGLEV) p.before = cur ? [...cur.values()] : [];
      const next = assignSlots(cur, p.ids);
      for (const [slot, id] of next) if (cur?.get(slot) !== id) p.slotWrites.push([{ svc_id: svcId, slot }, id]);
      for (const slot of cur?.keys() ?? []) if (!next.has(slot)) p.slotDeletes.push({ svc_id: svcId, slot });
      if (!failedFk.has(p.fk)) for (const w of p.slotWrites) slotBatch.push(w);
    }
    const noteSlot = (k: LbSlotKey, id: number) => {
      let m = this.#slots.get(k.svc_id);
      if (!m) this.#slots.set(k.svc_id, (m = new Map()));
      m.set(k.slot, id);
    };
    let slotsWritten = false;
    if (slotBatch.length > 0) {
      try {
        t.lbSlots.setMany(slotBatch);
        this.counters.lbSlots.writes += slotBatch.length;
        slotsWritten = true;
      } catch (e) {
        if (affectsEverything(e)) throw e;
      }
    }
    for (const p of planned) {
      if (failedFk.has(p.fk) || p.slotWrites.length === 0) continue;
      if (slotsWritten) {
        for (const [k, id] of p.slotWrites) noteSlot(k, id);
        continue;
      }
      const cur = this.#slots.get(p.value.svc_id);
      const errs = this.#setEach('lbSlots', p.slotWrites);
      if (errs.size === 0) {
        for (const [k, id] of p.slotWrites) noteSlot(k, id);
        continue;
      }
      fail(p.fk, new Error(`slots of service id ${p.value.svc_id}: ${errs.values().next().value!.message}`, { cause: errs.values().next().value }));
      // Slots its entry already counts may keep their new backend (written in
      // step 1); slots past its count go again, so a frontend that does not
      // fit leaves the room to others.
      for (const [i, [k, id]] of p.slotWrites.entries()) {
        if (cur?.has(k.slot)) {
          if (!errs.has(i)) noteSlot(k, id);
          continue;
        }
        try {
          if (t.lbSlots.delete(k)) this.counters.lbSlots.deletes++;
        } catch (e) {
          if (affectsEverything(e)) throw e;
          noteSlot(k, id); // still there: removed with the frontend's leftovers later
        }
      }
    }

    const wantMaglev = new Set<number>();
    for (const [, d] of kept) if (d.f.algorithm === LbAlgorithm.LB_ALG_MAGLEV && d.ids.length > 0) wantMaglev.add(d.svcId);
    // Written in chunks: a table is M*4 bytes; thousands at once would not fit memory well.
    const maglevWrites: Array<{ svcId: number; table: Uint32Array; tag: string }> = [];
    const maglevFk = new Map<number, string>();
    const flushMaglev = () => {
      if (maglevWrites.length === 0) return;
      for (const [svcId, e] of this.#replaceEach(maglevWrites)) fail(maglevFk.get(svcId)!, new Error(`Maglev table of service id ${svcId}: ${e.message}`, { cause: e }));
      maglevWrites.length = 0;
    };
    for (const p of planned) {
      if (p.f.algorithm !== LbAlgorithm.LB_ALG_MAGLEV || p.ids.length === 0) continue;
      const svcId = p.value.svc_id;
      wantMaglev.add(svcId);
      if (failedFk.has(p.fk)) continue;
      const tag = maglevTag(this.#m, p.f.backends, p.ids);
      if (this.#maglev.get(svcId) === tag) continue;
      // Hash on the backend identity (the same on every node), store the ids.
      const idx = maglevTable(p.f.backends, this.#m);
      const table = new Uint32Array(idx.length);
      for (let i = 0; i < idx.length; i++) table[i] = p.ids[idx[i]];
      maglevWrites.push({ svcId, table, tag });
      maglevFk.set(svcId, p.fk);
      if (maglevWrites.length >= MAGLEV_FLUSH) flushMaglev();
    }
    flushMaglev();

    // 4. Service entries, of the frontends whose references are all in place.
    const svcWrites: Array<[Svc4Key, SvcValue]> = [];
    const svcWriteFk: Planned[] = [];
    for (const p of planned) {
      if (failedFk.has(p.fk)) continue;
      const have = this.#svc.get(p.fk);
      if (!have || !sameSvc(have.value, p.value)) {
        svcWrites.push([p.key, p.value]);
        svcWriteFk.push(p);
      }
    }
    const sf = this.#setEach('svc4', svcWrites);
    svcWrites.forEach(([key, value], i) => {
      const p = svcWriteFk[i];
      const e = sf.get(i);
      if (e) return fail(p.fk, e);
      this.#svc.set(p.fk, { key, value });
      this.#names.set(p.fk, { service: p.f.service, portName: p.f.portName });
    });

    // 5. Removal, in reverse: service entries first. Nothing an entry still
    // in the map names (a failed frontend's old entry, an entry that could
    // not be deleted) is removed.
    // Every desired frontend is in the map unless one failed: equal sizes then mean nothing to remove.
    const goneSvc = failedFk.size === 0 && this.#svc.size === desired.frontends.size ? [] : [...this.#svc.keys()].filter((fk) => !desired.frontends.has(fk));
    const gf = this.#deleteEach('svc4', goneSvc.map((fk) => this.#svc.get(fk)!.key));
    goneSvc.forEach((fk, i) => {
      const e = gf.get(i);
      if (e) return otherFailure(fk, e, fk);
      const id = this.#svc.get(fk)!.value.svc_id;
      this.#svc.delete(fk);
      this.#names.delete(fk);
      if (this.svcIds.get(fk) === id) this.svcIds.release(fk);
    });
    const liveIds = new Set(planned.map((p) => p.value.svc_id));
    for (const [, d] of kept) liveIds.add(d.svcId);
    const inUseMaglev = new Set(wantMaglev);
    for (const { value } of this.#svc.values()) {
      liveIds.add(value.svc_id);
      if (value.algorithm === LbAlgorithm.LB_ALG_MAGLEV && value.count > 0) inUseMaglev.add(value.svc_id);
    }
    const maglevGone = [...this.#maglev.keys()].filter((id) => !inUseMaglev.has(id));
    if (maglevGone.length > 0) {
      try {
        t.maglev.deleteMany(maglevGone);
        this.counters.maglev.deletes += maglevGone.length;
        maglevGone.forEach((id) => this.#maglev.delete(id));
      } catch (e) {
        if (affectsEverything(e)) throw e;
        for (const id of maglevGone) {
          try {
            t.maglev.deleteMany([id]);
            this.counters.maglev.deletes++;
            this.#maglev.delete(id);
          } catch (e2) {
            if (affectsEverything(e2)) throw e2;
            otherFailure(`maglev ${id}`, asError(e2));
          }
        }
      }
    }
    const slotDeletes: LbSlotKey[] = [];
    for (const p of planned) if (!failedFk.has(p.fk)) slotDeletes.push(...p.slotDeletes);
    for (const [svcId, slots] of this.#slots) {
      if (liveIds.has(svcId)) continue;
      for (const slot of slots.keys()) slotDeletes.push({ svc_id: svcId, slot });
    }
    const slf = this.#deleteEach('lbSlots', slotDeletes);
    /** svc_ids with a slot left that should have gone: their frontends are diffed again next sync. */
    const slotsLeft = new Set<number>();
    slotDeletes.forEach((k, i) => {
      const e = slf.get(i);
      if (e) {
        slotsLeft.add(k.svc_id);
        return otherFailure(`lbSlots ${k.svc_id}/${k.slot}`, e);
      }
      const m = this.#slots.get(k.svc_id);
      m?.delete(k.slot);
      if (m && m.size === 0) this.#slots.delete(k.svc_id);
    });

    const revnatInUse = new Set<number>();
    for (const { value } of this.#svc.values()) revnatInUse.add(value.revnat_id);
    const goneRevnat = [...this.#revnat.keys()].filter((id) => !wantRevnat.has(id) && !revnatInUse.has(id));
    const grf = this.#deleteEach('revnat4', goneRevnat);
    goneRevnat.forEach((id, i) => {
      const e = grf.get(i);
      if (e) return otherFailure(`revnat4 ${id}`, e);
      const key = this.revnatIds.keyOf(id);
      if (key !== undefined) this.revnatIds.release(key);
      this.#revnat.delete(id);
    });
    if (this.revnatIds.size > wantRevnat.size) for (const [key, id] of [...this.revnatIds.entries()]) if (!wantRevnat.has(id) && !this.#revnat.has(id)) this.revnatIds.release(key);

    // Every wanted backend is in the map unless one failed: equal sizes then mean nothing to remove.
    let goneBackends = backendFailed.size === 0 && this.#backends.size === wantBackends.size ? [] : [...this.#backends.keys()].filter((id) => !wantBackends.has(id));
    if (goneBackends.length > 0) {
      // Still named by a slot in the map, or by the Maglev table a failed frontend keeps.
      const named = new Set<number>();
      for (const slots of this.#slots.values()) for (const id of slots.values()) named.add(id);
      for (const p of planned) if (failedFk.has(p.fk)) for (const id of p.before ?? []) named.add(id);
      goneBackends = goneBackends.filter((id) => !named.has(id));
    }
    const gbf = this.#deleteEach('backend4', goneBackends);
    goneBackends.forEach((id, i) => {
      const e = gbf.get(i);
      if (e) return otherFailure(`backend4 ${id}`, e);
      const key = this.backendIds.keyOf(id);
      if (key !== undefined) this.backendIds.release(key);
      this.#backends.delete(id);
    });
    // Every wanted backend has an id: equal counts mean no other id is held.
    if (this.backendIds.size > wantBackends.size) for (const [key, id] of [...this.backendIds.entries()]) if (!wantBackends.has(id) && !this.#backends.has(id)) this.backendIds.release(key);

    // Ids taken for frontends that are no longer wanted (and not in the map).
    if (this.svcIds.size > desired.frontends.size) for (const [key] of [...this.svcIds.entries()]) if (!desired.frontends.has(key) && !this.#svc.has(key)) this.svcIds.release(key);

    const nodeGone = [...this.#nodeAddrs].filter((a) => !desired.nodeAddrs.has(a));
    const ngf = this.#deleteEach('node4', nodeGone);
    nodeGone.forEach((a, i) => {
      const e = ngf.get(i);
      if (e) return otherFailure(`node4 ${ipString(a)}`, e);
      this.#nodeAddrs.delete(a);
    });

    // Remember what is programmed now, to skip it next time while its object stays the same.
    let doneNow = 0; // entries of #done that are desired frontends
    for (const p of planned) {
      if (failedFk.has(p.fk) || slotsLeft.has(p.value.svc_id)) continue;
      doneNow++;
      this.#done.set(p.fk, { f: p.f, svcId: p.value.svc_id, revnatId: p.value.revnat_id, revnat: wantRevnat.get(p.value.revnat_id)!, ids: p.ids });
    }
    for (const [fk] of kept) {
      if (failedFk.has(fk)) this.#done.delete(fk);
      else doneNow++;
    }
    // Entries of frontends no longer desired go (one may come back with the same object, e.g. after a conflict).
    if (this.#done.size > doneNow) for (const fk of this.#done.keys()) if (!desired.frontends.has(fk)) this.#done.delete(fk);
    this.lastDiffed = { frontends: planned.length, backends: diffedBackends.length };

    const failed: SyncFailure[] = [];
    for (const [fk, error] of failedFk) {
      const f = desired.frontends.get(fk)!;
      failed.push({ frontend: fk, service: f.service, portName: f.portName, error });
    }
    return { failed: [...failed, ...other] };
  }
}
