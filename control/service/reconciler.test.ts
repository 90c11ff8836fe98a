import { describe, expect, it } from 'vitest';
import { BackendFlags, BackendState, LbAlgorithm, type Backend4, type LbSlotKey, type Svc4Key, type SvcValue } from '../datapath/types.gen.js';
import { E2BIG, EBADF, EINVAL, ENOSPC, fakeTables, mapError, type FakeTable, type FakeTables } from './fake.js';
import { IdAllocator } from './ids.js';
import { maglevTable } from './maglev.js';
import { buildDesired } from './model.js';
import { ServiceReconciler, assignSlots, type WriteCounters } from './reconciler.js';
import { port, service, slice, type Ep } from './testobjects.js';
import { backendKey, frontendKey, parseIPv4, type DesiredState } from './types.js';

const ip = (s: string) => parseIPv4(s)!;
const ME = 'node-a';

/** A desired state: one Service "web" (ClusterIP 10.96.0.10:80) with the given endpoints, plus extra services. */
function desired(eps: Ep[], opts: { maglev?: boolean; extra?: number; nodeAddrs?: string[] } = {}): DesiredState {
  const ann = opts.maglev ? { metadata: { annotations: { 'weir.io/lb-algorithm': 'maglev' } } } : {};
  const services = [service('web', { ports: [port(80, { name: 'http' })] }, ann)];
  const slices = [slice('web-1', 'web', [{ name: 'http', port: 8080 }], eps)];
  for (let i = 0; i < (opts.extra ?? 0); i++) {
    services.push(service(`s${i}`, { clusterIP: `10.97.${i >> 8}.${i & 255}`, ports: [port(443, { name: 'https' })] }));
    slices.push(slice(`s${i}-1`, `s${i}`, [{ name: 'https', port: 8443 }], [{ ip: `10.245.${i >> 8}.${i & 255}` }, { ip: `10.246.${i >> 8}.${i & 255}` }]));
  }
  const out = buildDesired({ services, slices, nodeName: ME, defaultAlgorithm: 'random', extraNodeAddrs: (opts.nodeAddrs ?? ['192.168.1.10']).map(ip) });
  expect(out.problems).toEqual([]);
  return out.state;
}

const eps = (n: number, from = 1): Ep[] => Array.from({ length: n }, (_, i) => ({ ip: `10.244.0.${from + i}`, node: i === 0 ? ME : 'node-b' }));
const WEB: Svc4Key = { addr: ip('10.96.0.10'), port: 80, proto: 6, scope: 0 };

function total(c: WriteCounters): number {
  return Object.values(c).reduce((a, x) => a + x.writes + x.deletes, 0);
}

/** The backends behind a frontend, read from the tables as the datapath would. */
function readService(t: FakeTables, key: Svc4Key): { value: SvcValue; backends: Backend4[] } {
  const value = t.svc4.get(key);
  if (!value) throw new Error('no service entry');
  const backends: Backend4[] = [];
  for (let slot = 1; slot <= value.count; slot++) {
    const id = t.lbSlots.get({ svc_id: value.svc_id, slot });
    if (id === undefined) throw new Error(`slot ${slot} missing`);
    const b = t.backend4.get(id);
    if (!b) throw new Error(`backend ${id} missing`);
    backends.push(b);
  }
  return { value, backends };
}

const addrs = (bs: Backend4[]) => bs.map((b) => `${b.addr >>> 24}.${(b.addr >>> 16) & 255}.${(b.addr >>> 8) & 255}.${b.addr & 255}:${b.port}`).sort();

describe('service reconciler', () => {
  it('programs a service: backends, slots, revnat, node addresses, service entry', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(3)));
    const { value, backends } = readService(t, WEB);
    expect(value.count).toBe(3);
    expect(value.algorithm).toBe(LbAlgorithm.LB_ALG_RANDOM);
    expect(addrs(backends)).toEqual(['10.244.0.1:8080', '10.244.0.2:8080', '10.244.0.3:8080']);
    const local = backends.find((b) => b.addr === ip('10.244.0.1'))!;
    expect(local.flags).toBe(BackendFlags.BACKEND_F_LOCAL);
    expect(local.state).toBe(BackendState.BACKEND_ACTIVE);
    expect(t.revnat4.get(value.revnat_id)).toMatchObject({ addr: WEB.addr, port: 80 });
    expect(value.svc_id).toBeGreaterThan(0);
    expect(value.revnat_id).toBeGreaterThan(0);
    expect([...t.node4.entries()].map(([a]) => a)).toEqual([ip('192.168.1.10')]);
    expect(t.maglev.data.size).toBe(0);
  });

  it('writes backends before slots before the service entry, and removes in reverse', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(2)));
    const order = t.log.map(([table]) => table);
    expect(order.lastIndexOf('backend4')).toBeLessThan(order.indexOf('lbSlots'));
    expect(order.lastIndexOf('revnat4')).toBeLessThan(order.indexOf('svc4'));
    expect(order.lastIndexOf('lbSlots')).toBeLessThan(order.indexOf('svc4'));
    t.log.length = 0;
    r.sync({ frontends: new Map(), backends: new Map(), nodeAddrs: new Set() });
    const del = t.log.map(([table, op]) => `${table}.${op}`);
    expect(del.every((x) => x.endsWith('delete'))).toBe(true);
    expect(del.lastIndexOf('svc4.delete')).toBeLessThan(del.indexOf('lbSlots.delete'));
    expect(del.lastIndexOf('lbSlots.delete')).toBeLessThan(del.indexOf('backend4.delete'));
    expect(del.lastIndexOf('svc4.delete')).toBeLessThan(del.indexOf('revnat4.delete'));
    for (const tb of [t.svc4, t.backend4, t.lbSlots, t.revnat4, t.node4]) expect(tb.data.size).toBe(0);
  });

  it('an unchanged desired state writes nothing', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(3), { maglev: true, extra: 5 }));
    r.resetCounters();
    r.sync(desired(eps(3), { maglev: true, extra: 5 }));
    expect(total(r.counters)).toBe(0);
  });

  it('one endpoint added writes the backend, one slot and the service count only', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(3), { extra: 20 }));
    r.resetCounters();
    r.sync(desired(eps(4), { extra: 20 }));
    expect(r.counters).toMatchObject({
      backend4: { writes: 1, deletes: 0 },
      lbSlots: { writes: 1, deletes: 0 },
      svc4: { writes: 1, deletes: 0 },
      revnat4: { writes: 0, deletes: 0 },
      maglev: { writes: 0, deletes: 0 },
    });
    expect(readService(t, WEB).value.count).toBe(4);
  });

  it('one endpoint removed: its slot takes the last backend, the last slot and the backend go', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(5), { extra: 20 }));
    const before = readService(t, WEB);
    r.resetCounters();
    const fewer = eps(5).filter((e) => e.ip !== '10.244.0.2');
    r.sync(desired(fewer, { extra: 20 }));
    expect(r.counters).toMatchObject({
      backend4: { writes: 0, deletes: 1 },
      lbSlots: { writes: 1, deletes: 1 },
      svc4: { writes: 1, deletes: 0 },
    });
    const after = readService(t, WEB);
    expect(addrs(after.backends)).toEqual(['10.244.0.1:8080', '10.244.0.3:8080', '10.244.0.4:8080', '10.244.0.5:8080']);
    // Backends that stayed keep their ids.
    const idOf = (t2: FakeTables, a: string) => [...t2.backend4.entries()].find(([, b]) => b.addr === ip(a))![0];
    expect(before.value.svc_id).toBe(after.value.svc_id);
    expect(idOf(t, '10.244.0.5')).toBe(r.backendIds.get('10.244.0.5:8080/6'));
  });

  it('a backend turning terminating rewrites only its backend entry', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    const e = [{ ip: '10.244.0.1', ready: false, serving: true, terminating: true }];
    r.sync(desired([{ ip: '10.244.0.1' }]));
    r.resetCounters();
    r.sync(desired(e));
    expect(total(r.counters)).toBe(1);
    expect(r.counters.backend4.writes).toBe(1);
    expect(readService(t, WEB).backends[0].state).toBe(BackendState.BACKEND_TERMINATING);
  });

  it('Maglev: the table holds backend ids, built from backend identities; one change replaces it once', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(3), { maglev: true }));
    const { value } = readService(t, WEB);
    expect(value.algorithm).toBe(LbAlgorithm.LB_ALG_MAGLEV);
    const table = t.maglev.data.get(value.svc_id)!;
    expect(table.length).toBe(16381);
    const keys = ['10.244.0.1:8080/6', '10.244.0.2:8080/6', '10.244.0.3:8080/6'];
    const expected = maglevTable(keys).map((i) => r.backendIds.get(keys[i])!);
    expect(Buffer.from(table.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    r.resetCounters();
    r.sync(desired(eps(4), { maglev: true }));
    expect(r.counters.maglev).toEqual({ writes: 1, deletes: 0 });
    // No backends left: reject (count 0) and no table.
    r.sync(desired([], { maglev: true }));
    expect(readService(t, WEB).value.count).toBe(0);
    expect(t.maglev.data.size).toBe(0);
  });

  it('Maglev: two nodes with different ids hold tables that pick the same backend per slot', () => {
    const a = fakeTables();
    const b = fakeTables();
    const ra = new ServiceReconciler(a);
    const rb = new ServiceReconciler(b);
    // Node b has seen other backends first, so its ids differ.
    rb.sync(desired([{ ip: '10.244.9.1' }, { ip: '10.244.9.2' }]));
    const d = desired(eps(5), { maglev: true });
    ra.sync(d);
    rb.sync(desired(eps(5), { maglev: true }));
    expect(ra.backendIds.get('10.244.0.1:8080/6')).not.toBe(rb.backendIds.get('10.244.0.1:8080/6'));
    const who = (t: FakeTables) => {
      const table = t.maglev.data.get(t.svc4.get(WEB)!.svc_id)!;
      return Array.from(table, (id) => t.backend4.get(id)!.addr);
    };
    expect(who(a)).toEqual(who(b));
  });

  it('Maglev → random drops the table after the service entry is rewritten', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(3), { maglev: true }));
    t.log.length = 0;
    r.sync(desired(eps(3)));
    expect(t.maglev.data.size).toBe(0);
    const ops = t.log.map(([table, op]) => `${table}.${op}`);
    expect(ops).toEqual(['svc4.set', 'maglev.delete']);
  });

  it('restart: a new reconciler over the same maps recovers every id and writes nothing', () => {
    const t = fakeTables();
    const r1 = new ServiceReconciler(t);
    const d = desired(eps(4), { maglev: true, extra: 30 });
    r1.sync(d);
    const r2 = new ServiceReconciler(t);
    for (const alloc of ['svcIds', 'backendIds', 'revnatIds'] as const) {
      expect(new Map(r2[alloc].entries())).toEqual(new Map(r1[alloc].entries()));
    }
    r2.sync(desired(eps(4), { maglev: true, extra: 30 }));
    expect(total(r2.counters)).toBe(0);
    // And it carries on from there: a change after the restart is small.
    r2.sync(desired(eps(5), { maglev: true, extra: 30 }));
    expect(r2.counters.backend4.writes).toBe(1);
    expect(r2.counters.maglev.writes).toBe(1);
  });

  it('restart: a Maglev table left stale (crash between slots and table) or untagged is rewritten', () => {
    const t = fakeTables();
    new ServiceReconciler(t).sync(desired(eps(3), { maglev: true }));
    const svcId = t.svc4.get(WEB)!.svc_id;
    const good = t.maglev.data.get(svcId)!.slice();
    // The table in place was built for another backend set (its tag says so).
    t.maglev.data.get(svcId)!.fill(1);
    t.maglev.tagOf.set(svcId, 'feedfacecafe0');
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(3), { maglev: true }));
    expect(r.counters.maglev.writes).toBe(1);
    expect(t.maglev.data.get(svcId)).toEqual(good);
    // A table without a tag (not made by this reconciler) is not trusted either.
    t.maglev.tagOf.set(svcId, '');
    const r2 = new ServiceReconciler(t);
    r2.sync(desired(eps(3), { maglev: true }));
    expect(r2.counters.maglev.writes).toBe(1);
  });

  it('restart: leftovers (slots of a vanished service, a duplicate backend) are cleaned, ids are not reused', () => {
    const t = fakeTables();
    new ServiceReconciler(t).sync(desired(eps(2)));
    // Left by a crash: slots of a service entry already deleted; a second id for an existing backend.
    t.lbSlots.set({ svc_id: 900, slot: 1 } as LbSlotKey, 1);
    const dupe = { ...t.backend4.get(1)! };
    t.backend4.set(77, dupe);
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(3)));
    expect(t.lbSlots.get({ svc_id: 900, slot: 1 })).toBeUndefined();
    expect(t.backend4.get(77)).toBeUndefined();
    expect(t.backend4.get(1)).toBeDefined();
    // The new backend got an id past everything seen, not a reused one.
    expect(r.backendIds.get('10.244.0.3:8080/6')).toBe(78);
    const svcId = r.svcIds.acquire('new');
    expect(svcId).toBeGreaterThan(900);
  });

  it('a freed backend id is not handed to the next new backend', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(3)));
    const gone = r.backendIds.get('10.244.0.3:8080/6')!;
    r.sync(desired(eps(2)));
    r.sync(desired([...eps(2), { ip: '10.244.0.9' }]));
    expect(r.backendIds.get('10.244.0.9:8080/6')).not.toBe(gone);
    expect(r.backendIds.get('10.244.0.9:8080/6')).toBeGreaterThan(gone);
  });

  it('a large sync is written in batches, not entry by entry', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(3), { extra: 1000 }));
    expect(r.counters.svc4.writes).toBe(1001);
    expect(r.counters.lbSlots.writes).toBe(2003);
    for (const tb of [t.svc4, t.backend4, t.lbSlots, t.revnat4]) expect(tb.batches).toBe(1);
    expect(t.log.filter(([table]) => table === 'svc4').length).toBe(1001);
  });

  it('node addresses follow the desired set', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired([], { nodeAddrs: ['192.168.1.10', '10.0.0.5'] }));
    r.resetCounters();
    r.sync(desired([], { nodeAddrs: ['192.168.1.10', '10.0.0.6'] }));
    expect(r.counters.node4).toEqual({ writes: 1, deletes: 1 });
    expect([...t.node4.entries()].map(([a]) => a).sort()).toEqual([ip('10.0.0.6'), ip('192.168.1.10')].sort());
  });

  it('a desired frontend naming an unknown backend is an error, before anything is written', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    const d = desired(eps(1));
    d.backends.delete(backendKey({ addr: ip('10.244.0.1'), port: 8080, proto: 6 }));
    expect(() => r.sync(d)).toThrow(/names backend 10.244.0.1:8080\/6/);
    expect(t.log).toEqual([]);
  });
});

/** Frontend key of the extra service s<i> (ClusterIP 10.97.0.i:443/TCP). */
const extraKey = (i: number): Svc4Key => ({ addr: ip(`10.97.0.${i}`), port: 443, proto: 6, scope: 0 });
const extraFk = (i: number) => frontendKey(extraKey(i));

/**
 * What a packet could follow is all there: each service entry's slots, their
 * backends, its reverse NAT and (Maglev) every backend its table names.
 */
function expectConsistent(t: FakeTables): void {
  for (const [key, value] of t.svc4.entries()) {
    expect(() => readService(t, key), frontendKey(key)).not.toThrow();
    expect(t.revnat4.get(value.revnat_id), `revnat of ${frontendKey(key)}`).toBeDefined();
    if (value.algorithm === LbAlgorithm.LB_ALG_MAGLEV && value.count > 0) {
      const table = t.maglev.data.get(value.svc_id);
      expect(table, `Maglev table of ${frontendKey(key)}`).toBeDefined();
      for (const id of new Set(table)) expect(t.backend4.get(id), `backend ${id} in the table of ${frontendKey(key)}`).toBeDefined();
    }
  }
}

describe('service reconciler: a failing frontend does not block the others', () => {
  it('a refused service entry fails only its frontend; the others are programmed, it is retried next sync', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    t.svc4.failures.push((op, k) => (op === 'set' && frontendKey(k) === extraFk(2) ? mapError('ENOSPC', ENOSPC) : undefined));
    const res = r.sync(desired(eps(3), { extra: 5 }));
    expect(res.failed).toHaveLength(1);
    expect(res.failed[0]).toMatchObject({ frontend: extraFk(2), service: 'default/s2', portName: 'https' });
    expect(res.failed[0].error.message).toMatch(/ENOSPC/);
    // The batch fell back to single writes: every other entry is in.
    expect(t.svc4.get(extraKey(2))).toBeUndefined();
    expect(addrs(readService(t, WEB).backends)).toEqual(['10.244.0.1:8080', '10.244.0.2:8080', '10.244.0.3:8080']);
    for (const i of [0, 1, 3, 4]) expect(readService(t, extraKey(i)).value.count).toBe(2);
    expect(r.counters.svc4.writes).toBe(5);
    expectConsistent(t);

    // Unchanged desired state, the kernel takes it now: only the failed entry is written.
    t.svc4.failures.length = 0;
    r.resetCounters();
    t.log.length = 0;
    expect(r.sync(desired(eps(3), { extra: 5 })).failed).toEqual([]);
    expect(addrs(readService(t, extraKey(2)).backends)).toEqual(['10.245.0.2:8443', '10.246.0.2:8443']);
    expect(t.log).toEqual([['svc4', 'set', JSON.stringify(extraKey(2))]]);
    expect(total(r.counters)).toBe(1);
  });

  it('slots that do not fit: the frontend gives the room back, later frontends get it, counters count what was written', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    // s2's second slot is refused; the batch stops there, then per frontend.
    t.lbSlots.failures.push((op, k) =>
      op === 'set' && k.svc_id === r.svcIds.get(extraFk(2)) && k.slot === 2 ? mapError('E2BIG', E2BIG) : undefined,
    );
    const res = r.sync(desired(eps(3), { extra: 5 }));
    expect(res.failed.map((f) => f.service)).toEqual(['default/s2']);
    expect(res.failed[0].error.message).toMatch(/slots of service id \d+: .*E2BIG/);
    const s2 = r.svcIds.get(extraFk(2))!;
    // Its slot 1 was written and taken back: no slot of s2 left, no entry for it.
    expect([...t.lbSlots.entries()].filter(([k]) => k.svc_id === s2)).toEqual([]);
    expect(t.svc4.get(extraKey(2))).toBeUndefined();
    for (const i of [0, 1, 3, 4]) expect(readService(t, extraKey(i)).value.count).toBe(2);
    // 3 + 2 + 2 + (s2's slot 1) + 2 + 2 written one group at a time; s2's slot 1 deleted again.
    expect(r.counters.lbSlots).toEqual({ writes: 12, deletes: 1 });
    expect(t.lbSlots.data.size).toBe(11);
    expect(r.counters.svc4.writes).toBe(5);
    // Its backends and reverse NAT are written (shared entries, harmless without an entry) and kept for the retry.
    expect(r.counters.backend4.writes).toBe(13);
    expectConsistent(t);

    t.lbSlots.failures.length = 0;
    r.resetCounters();
    expect(r.sync(desired(eps(3), { extra: 5 })).failed).toEqual([]);
    expect(r.counters.lbSlots).toEqual({ writes: 2, deletes: 0 });
    expect(r.counters.svc4.writes).toBe(1);
    expect(addrs(readService(t, extraKey(2)).backends)).toEqual(['10.245.0.2:8443', '10.246.0.2:8443']);
  });

  it('a service growing past a full slots map keeps its old entry and backends; a new small service still gets in', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(3), { extra: 1 }));
    t.lbSlots.maxEntries = t.lbSlots.data.size + 3; // room for 3 more slots
    // web: backend 3 goes, 4 new ones come (needs slots 3..6); s1 (new, 2 slots) after it.
    const d = desired([...eps(2), ...eps(4, 10)], { extra: 2 });
    const res = r.sync(d);
    expect(res.failed.map((f) => [f.service, f.portName])).toEqual([['default/web', 'http']]);
    expect(res.failed[0].error.message).toMatch(/E2BIG/);
    // web still answers with 3 backends: slot 3 took a new backend (in place), the old entry counts 3.
    const web = readService(t, WEB);
    expect(web.value.count).toBe(3);
    expect(web.backends).toHaveLength(3);
    expect(readService(t, extraKey(1)).value.count).toBe(2);
    expectConsistent(t);

    t.lbSlots.maxEntries = Infinity;
    expect(r.sync(d).failed).toEqual([]);
    expect(addrs(readService(t, WEB).backends)).toEqual(
      ['10.244.0.1:8080', '10.244.0.2:8080', '10.244.0.10:8080', '10.244.0.11:8080', '10.244.0.12:8080', '10.244.0.13:8080'].sort(),
    );
    expectConsistent(t);
  });

  it('a refused Maglev table: the old table and every backend it names stay until the new one is in', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(3), { maglev: true, extra: 2 }));
    const svcId = readService(t, WEB).value.svc_id;
    const oldTable = t.maglev.data.get(svcId)!.slice();
    const gone = r.backendIds.get('10.244.0.3:8080/6')!;
    expect(oldTable).toContain(gone);
    t.maglev.failures.push((op, id) => (op === 'set' && id === svcId ? mapError('EINVAL', EINVAL) : undefined));

    // Backend 3 replaced by 9, and a new service s2 at the same time.
    const d = desired([...eps(2), { ip: '10.244.0.9' }], { maglev: true, extra: 3 });
    const res = r.sync(d);
    expect(res.failed).toHaveLength(1);
    expect(res.failed[0]).toMatchObject({ frontend: frontendKey(WEB), service: 'default/web' });
    expect(res.failed[0].error.message).toMatch(/Maglev table of service id \d+: .*EINVAL/);
    expect(t.maglev.data.get(svcId)).toEqual(oldTable);
    expect(t.backend4.get(gone)).toBeDefined(); // still named by the table in place
    expect(readService(t, extraKey(2)).value.count).toBe(2);
    expectConsistent(t);

    t.maglev.failures.length = 0;
    expect(r.sync(d).failed).toEqual([]);
    expect(t.backend4.get(gone)).toBeUndefined();
    expect(t.maglev.data.get(svcId)).not.toContain(gone);
    expectConsistent(t);
  });

  it('a refused entry rewrite: the old entry keeps its slots past the new count and its Maglev table', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(4), { maglev: true, extra: 1 }));
    const before = readService(t, WEB);
    t.svc4.failures.push((op, k) => (op === 'set' && frontendKey(k) === frontendKey(WEB) ? mapError('EINVAL', EINVAL) : undefined));
    // web shrinks to 2 backends and turns random: slots 3-4, backends 3-4 and the table are still named.
    const res = r.sync(desired(eps(2), { extra: 1 }));
    expect(res.failed.map((f) => f.service)).toEqual(['default/web']);
    expect(readService(t, WEB).value).toEqual(before.value);
    expect(addrs(readService(t, WEB).backends)).toEqual(addrs(before.backends));
    expect(t.maglev.data.has(before.value.svc_id)).toBe(true);
    expectConsistent(t);
    t.svc4.failures.length = 0;
    expect(r.sync(desired(eps(2), { extra: 1 })).failed).toEqual([]);
    expect(readService(t, WEB).value).toMatchObject({ count: 2, algorithm: LbAlgorithm.LB_ALG_RANDOM });
    expect(t.maglev.data.size).toBe(0);
    expect(t.lbSlots.data.size).toBe(4);
    expect(t.backend4.data.size).toBe(4);
  });

  it('a refused Maglev swap in a chunk retries table by table: only the culprit fails', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    const d = (n: number) => {
      const x = desired(eps(n), { maglev: true, extra: 3 });
      for (const f of x.frontends.values()) f.algorithm = LbAlgorithm.LB_ALG_MAGLEV;
      return x;
    };
    t.maglev.failures.push((op, id) => (op === 'set' && id === r.svcIds.get(extraFk(1)) ? mapError('ENOMEM', 12) : undefined));
    const res = r.sync(d(3));
    expect(res.failed.map((f) => f.frontend)).toEqual([extraFk(1)]);
    expect(t.maglev.calls).toBe(1 + 4); // one chunk, then one per table
    expect(r.counters.maglev.writes).toBe(3);
    for (const k of [WEB, extraKey(0), extraKey(2)]) expect(readService(t, k).value.algorithm).toBe(LbAlgorithm.LB_ALG_MAGLEV);
    expect(t.svc4.get(extraKey(1))).toBeUndefined();
    expectConsistent(t);
  });

  it('a backend the map refuses fails only the frontends that name it', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(2), { extra: 1 }));
    t.backend4.maxEntries = t.backend4.data.size + 2; // s1's two backends fit, s2's do not
    const res = r.sync(desired(eps(2), { extra: 3 }));
    expect(res.failed.map((f) => f.service)).toEqual(['default/s2']);
    expect(res.failed[0].error.message).toMatch(/backend 10.24[56].0.2:8443\/6: .*E2BIG/);
    expect(readService(t, extraKey(1)).value.count).toBe(2);
    expect(t.svc4.get(extraKey(2))).toBeUndefined();
    expect([...t.lbSlots.entries()].filter(([k]) => k.svc_id === r.svcIds.get(extraFk(2)))).toEqual([]);
    expectConsistent(t);
    t.backend4.maxEntries = Infinity;
    expect(r.sync(desired(eps(2), { extra: 3 })).failed).toEqual([]);
    expect(readService(t, extraKey(2)).value.count).toBe(2);
  });

  it('write order holds with failures: each programmed frontend has its backends and slots before its entry', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    t.lbSlots.failures.push((op, k) => (op === 'set' && k.svc_id === r.svcIds.get(extraFk(0)) ? mapError('E2BIG', E2BIG) : undefined));
    r.sync(desired(eps(2), { extra: 3 }));
    const at = (table: string, op: string, key: string) => t.log.findIndex(([a, b, c]) => a === table && b === op && c === key);
    for (const [key, value] of t.svc4.entries()) {
      const entryAt = at('svc4', 'set', JSON.stringify(key));
      for (let slot = 1; slot <= value.count; slot++) {
        const k = { svc_id: value.svc_id, slot };
        const slotAt = t.log.map(([a, b, c]) => `${a} ${b} ${c}`).lastIndexOf(`lbSlots set ${JSON.stringify(k)}`);
        expect(slotAt).toBeGreaterThanOrEqual(0);
        expect(slotAt).toBeLessThan(entryAt);
        expect(at('backend4', 'set', String(t.lbSlots.get(k)))).toBeLessThan(slotAt);
      }
    }
    expect(t.svc4.get(extraKey(0))).toBeUndefined();
    expect(t.svc4.data.size).toBe(3);
  });

  it('a service entry that cannot be deleted keeps its slots, backends and reverse NAT; the next sync removes it', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    r.sync(desired(eps(2), { extra: 2 }));
    const s1 = readService(t, extraKey(1));
    t.svc4.failures.push((op, k) => (op === 'delete' && frontendKey(k) === extraFk(1) ? mapError('EINVAL', EINVAL) : undefined));
    const res = r.sync(desired(eps(2), { extra: 1 })); // s1 goes
    expect(res.failed).toHaveLength(1);
    expect(res.failed[0]).toMatchObject({ frontend: extraFk(1), service: 'default/s1', portName: 'https' });
    expect(readService(t, extraKey(1))).toEqual(s1);
    expectConsistent(t);
    t.svc4.failures.length = 0;
    expect(r.sync(desired(eps(2), { extra: 1 })).failed).toEqual([]);
    expect(t.svc4.get(extraKey(1))).toBeUndefined();
    expect([...t.lbSlots.entries()].filter(([k]) => k.svc_id === s1.value.svc_id)).toEqual([]);
    expect(t.revnat4.get(s1.value.revnat_id)).toBeUndefined();
    expect(t.backend4.data.size).toBe(4);
  });

  it('an error of the map itself (EBADF) still throws', () => {
    const t = fakeTables();
    const r = new ServiceReconciler(t);
    t.svc4.failures.push(() => mapError('EBADF', EBADF));
    expect(() => r.sync(desired(eps(2), { extra: 2 }))).toThrow(/EBADF/);
  });
});

describe('service reconciler: Maglev limits', () => {
  it('a Maglev frontend with more backends than M is refused before anything is written', () => {
    const t = fakeTables(7);
    const r = new ServiceReconciler(t);
    expect(() => r.sync(desired(eps(8), { maglev: true }))).toThrow(/default\/web: frontend .* has 8 backends, more than the Maglev table size 7/);
    expect(t.log).toEqual([]);
  });
});

describe('slot assignment', () => {
  it('keeps backends in place, fills holes, compacts from the end', () => {
    const cur = new Map([
      [1, 10],
      [2, 20],
      [3, 30],
      [4, 40],
    ]);
    expect([...assignSlots(cur, [10, 30, 40])].sort((a, b) => a[0] - b[0])).toEqual([
      [1, 10],
      [2, 40],
      [3, 30],
    ]);
    expect([...assignSlots(cur, [10, 20, 30, 40, 50])].sort((a, b) => a[0] - b[0])).toEqual([
      [1, 10],
      [2, 20],
      [3, 30],
      [4, 40],
      [5, 50],
    ]);
    expect(assignSlots(undefined, []).size).toBe(0);
  });
});

describe('id allocator', () => {
  it('restores, refuses clashes, allocates past what it saw, wraps skipping ids in use', () => {
    const a = new IdAllocator('test', 5);
    expect(a.restore('x', 3)).toBe(true);
    expect(a.restore('y', 3)).toBe(false);
    expect(a.restore('x', 4)).toBe(false);
    expect(a.acquire('y')).toBe(5); // past the 4 seen
    expect(a.acquire('z')).toBe(1); // wrapped
    expect(a.acquire('y')).toBe(5);
    a.release('z');
    expect(a.acquire('w')).toBe(2); // the counter moves on, 1 is not reused at once
    expect(a.acquire('v')).toBe(4); // 3 is in use
    expect(a.acquire('u')).toBe(1); // wrapped past 5 (in use) to the freed 1
    expect(() => a.acquire('t')).toThrow(/exhausted/);
  });
});
