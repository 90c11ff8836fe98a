// In-memory service tables for unit tests: the same interface as the pinned maps.
import type { Backend4, LbSlotKey, NodeAddrValue, Revnat4, Svc4Key, SvcValue } from '../datapath/types.gen.js';
import { MAGLEV_M_DEFAULT } from './maglev.js';
import type { MaglevStore, ServiceTables, Table } from './reconciler.js';

/** An error shaped like a BpfError of the native addon (errno, code). */
export function mapError(code: string, errno: number, message = `map update failed (${code})`): Error & { errno: number; code: string } {
  return Object.assign(new Error(message), { errno, code });
}
export const E2BIG = 7;
export const ENOSPC = 28;
export const EINVAL = 22;
export const EBADF = 9;

/** Decides per write whether it fails: the error to throw, or undefined. */
export type FailRule<K> = (op: 'set' | 'delete', key: K) => Error | undefined;

export class FakeTable<K, V> implements Table<K, V> {
  readonly data = new Map<string, [K, V]>();
  /** Injected failures: a write any rule answers with an error throws it and changes nothing. */
  readonly failures: Array<FailRule<K>> = [];
  /** Optional capacity: a set of a new key beyond it fails with E2BIG, as a full BPF hash does. */
  maxEntries = Infinity;
  /** setMany/deleteMany calls (batches), to tell batch syncs from per-entry ones. */
  batches = 0;
  /** get/entries calls: the reconciler reads the maps once, at start. */
  reads = 0;
  /** Every call that wrote, for order checks: [table, op, key]. */
  constructor(
    readonly name: string,
    readonly log: Array<[string, 'set' | 'delete', string]>,
  ) {}
  #k = (k: K) => JSON.stringify(k);
  get(k: K): V | undefined {
    this.reads++;
    return this.data.get(this.#k(k))?.[1];
  }
  #check(op: 'set' | 'delete', k: K): void {
    for (const rule of this.failures) {
      const e = rule(op, k);
      if (e) throw e;
    }
    if (op === 'set' && this.data.size >= this.maxEntries && !this.data.has(this.#k(k))) throw mapError('E2BIG', E2BIG);
  }
  set(k: K, v: V): void {
    this.#check('set', k);
    this.log.push([this.name, 'set', this.#k(k)]);
    this.data.set(this.#k(k), [structuredClone(k), structuredClone(v)]);
  }
  delete(k: K): boolean {
    this.#check('delete', k);
    this.log.push([this.name, 'delete', this.#k(k)]);
    return this.data.delete(this.#k(k));
  }
  *entries(): Generator<[K, V]> {
    this.reads++;
    for (const [k, v] of this.data.values()) yield [structuredClone(k), structuredClone(v)];
  }
  /** Like BPF_MAP_UPDATE_BATCH: entries before the first failing one stay written. */
  setMany(entries: Array<[K, V]>): void {
    this.batches++;
    for (const [k, v] of entries) this.set(k, v);
  }
  deleteMany(keys: K[]): void {
    this.batches++;
    for (const k of keys) this.delete(k);
  }
}

export class FakeMaglev implements MaglevStore {
  readonly data = new Map<number, Uint32Array>();
  readonly tagOf = new Map<number, string>();
  /** Injected failures by svc_id: the swap of that table throws (the ones before it in the call stay swapped). */
  readonly failures: Array<(op: 'set' | 'delete', svcId: number) => Error | undefined> = [];
  /** replaceMany calls, to tell chunked swaps from per-table retries. */
  calls = 0;
  /** tags() calls. */
  reads = 0;
  #check(op: 'set' | 'delete', svcId: number): void {
    for (const rule of this.failures) {
      const e = rule(op, svcId);
      if (e) throw e;
    }
  }
  constructor(
    readonly log: Array<[string, 'set' | 'delete', string]>,
    readonly m: number = MAGLEV_M_DEFAULT,
  ) {}
  tags(): Iterable<[number, string]> {
    this.reads++;
    return [...this.tagOf];
  }
  replaceMany(tables: Array<{ svcId: number; table: Uint32Array; tag: string }>): void {
    this.calls++;
    for (const { svcId, table, tag } of tables) {
      this.#check('set', svcId);
      if (table.length !== this.m) throw new RangeError(`table of ${table.length} for M=${this.m}`);
      this.log.push(['maglev', 'set', String(svcId)]);
      this.data.set(svcId, table.slice());
      this.tagOf.set(svcId, tag);
    }
  }
  deleteMany(svcIds: number[]): void {
    for (const svcId of svcIds) {
      this.#check('delete', svcId);
      this.log.push(['maglev', 'delete', String(svcId)]);
      this.data.delete(svcId);
      this.tagOf.delete(svcId);
    }
  }
}

export interface FakeTables extends ServiceTables {
  log: Array<[string, 'set' | 'delete', string]>;
  svc4: FakeTable<Svc4Key, SvcValue>;
  backend4: FakeTable<number, Backend4>;
  lbSlots: FakeTable<LbSlotKey, number>;
  revnat4: FakeTable<number, Revnat4>;
  node4: FakeTable<number, NodeAddrValue>;
  maglev: FakeMaglev;
}

export function fakeTables(m?: number): FakeTables {
  const log: Array<[string, 'set' | 'delete', string]> = [];
  return {
    log,
    svc4: new FakeTable('svc4', log),
    backend4: new FakeTable('backend4', log),
    lbSlots: new FakeTable('lbSlots', log),
    revnat4: new FakeTable('revnat4', log),
    node4: new FakeTable('node4', log),
    maglev: new FakeMaglev(log, m),
  };
}
