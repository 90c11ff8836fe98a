// PolicyReconciler over in-memory maps that check, after every single write,
// that no probe allowed both before and after the sync is denied in between
// (the datapath's lookups are modelled: ipcache LPM, ep_policy, policy4 LPM
// with the peer identity, then ID_ANY).
import { describe, expect, it } from 'vitest';
import type { EpPolicy, Ipcache4Key, IpcacheValue, Policy4Key, PolicyGen, PolicyValue } from '../datapath/types.gen.js';
import { encodePolicy, formatPrefix, parsePrefix, type DesiredPolicyMaps } from './maps.js';
import { PolicyReconciler, type PolicyTable, type PolicyTables } from './reconciler.js';
import { ID_WORLD, type CompiledPolicy, type PolicyEntry, type RuleSet } from './types.js';

class Fake<K, V> implements PolicyTable<K, V> {
  data = new Map<string, [K, V]>();
  writes = 0;
  batches = 0;
  /** Throws on the write with this index (counted over all tables through `counter`). */
  constructor(
    private readonly counter: { n: number; failAt: number; after: () => void },
  ) {}
  get(k: K) {
    return this.data.get(JSON.stringify(k))?.[1];
  }
  #write(fn: () => void) {
    if (this.counter.n++ === this.counter.failAt) throw Object.assign(new Error('injected write failure'), { errno: 12 });
    fn();
    this.writes++;
    this.counter.after();
  }
  set(k: K, v: V) {
    this.#write(() => this.data.set(JSON.stringify(k), [structuredClone(k), structuredClone(v)]));
  }
  delete(k: K) {
    const had = this.data.has(JSON.stringify(k));
    this.#write(() => this.data.delete(JSON.stringify(k)));
    return had;
  }
  *entries(): Generator<[K, V]> {
    for (const [k, v] of this.data.values()) yield [structuredClone(k), structuredClone(v)];
  }
  setMany(entries: Array<[K, V]>) {
    this.batches++;
    for (const [k, v] of entries) this.set(k, v);
  }
}

interface World {
  tables: PolicyTables & { ipcache4: Fake<Ipcache4Key, IpcacheValue>; epPolicy: Fake<number, EpPolicy>; policy4: Fake<Policy4Key, PolicyValue>; policyGen: Fake<number, PolicyGen> };
  counter: { n: number; failAt: number; after: () => void };
}

function world(): World {
  const counter = { n: 0, failAt: -1, after: () => undefined };
  return { counter, tables: { ipcache4: new Fake(counter), epPolicy: new Fake(counter), policy4: new Fake(counter), policyGen: new Fake(counter) } };
}

const ip = (s: string) => parsePrefix(`${s}/32`).addr;

/** The datapath's verdict for a packet of `ep` in `dir` with peer address `peer`. */
function verdict(t: World['tables'], ep: number, dir: 'ingress' | 'egress', peer: number, proto: number, port: number): boolean {
  const pol = t.epPolicy.get(ep);
  const id = pol ? (dir === 'ingress' ? pol.ingress_id : pol.egress_id) : 0;
  if (!id) return true;
  let best: [number, number] | undefined;
  for (const [k, v] of t.ipcache4.data.values()) {
    const m = k.prefixlen === 0 ? 0 : (0xffffffff << (32 - k.prefixlen)) >>> 0;
    if (((peer & m) >>> 0) === k.addr && (!best || k.prefixlen > best[0])) best = [k.prefixlen, v.identity];
  }
  const identity = best ? best[1] : ID_WORLD;
  const lookup = (ident: number) => {
    for (const [k, v] of t.policy4.data.values()) {
      if (k.policy_id !== id || k.identity !== ident || !(v.flags & 1)) continue;
      if (k.prefixlen === 64) return true;
      if (k.proto !== proto) continue;
      const bits = k.prefixlen - 80;
      if (bits === 0 || port >>> (16 - bits) === k.port >>> (16 - bits)) return true;
    }
    return false;
  };
  return lookup(identity) || lookup(0);
}

interface Probe {
  ep: number;
  dir: 'ingress' | 'egress';
  peer: number;
  proto: number;
  port: number;
}

const probeKey = (p: Probe) => `${p.ep} ${p.dir} ${formatPrefix({ prefixlen: 32, addr: p.peer })} ${p.proto}:${p.port}`;

function verdicts(t: World['tables'], probes: Probe[]): Map<string, boolean> {
  return new Map(probes.map((p) => [probeKey(p), verdict(t, p.ep, p.dir, p.peer, p.proto, p.port)]));
}

/**
 * Syncs `to` and checks after every write that whatever `from` and `to`
 * both allow stays allowed; returns the number of writes.
 */
function syncChecked(w: World, r: PolicyReconciler, to: DesiredPolicyMaps, probes: Probe[], expectedAfter?: Map<string, boolean>) {
  const before = verdicts(w.tables, probes);
  const states: Array<Map<string, boolean>> = [];
  w.counter.after = () => states.push(verdicts(w.tables, probes));
  let res;
  try {
    res = r.sync(to);
  } finally {
    w.counter.after = () => undefined;
  }
  const after = verdicts(w.tables, probes);
  if (expectedAfter) expect(after).toEqual(expectedAfter);
  states.forEach((s, i) => {
    for (const [k, was] of before) if (was && after.get(k)) expect(s.get(k), `write ${i + 1}/${states.length}: ${k} allowed before and after, denied in between`).toBe(true);
  });
  return { res, writes: states.length };
}

const rs = (entries: PolicyEntry[]): RuleSet => ({ entries, policies: ['ns/p'] });
const any = (identity: number): PolicyEntry => ({ identity, proto: 0, port: 0, endPort: 0 });
const tcp = (identity: number, port: number, endPort = port): PolicyEntry => ({ identity, proto: 6, port, endPort });

function compiled(ipcache: Record<string, number>, endpoints: Record<number, { ingress?: RuleSet; egress?: RuleSet }>): CompiledPolicy {
  return {
    identities: new Map(),
    ipcache: new Map(Object.entries(ipcache)),
    endpoints: new Map(Object.entries(endpoints).map(([id, e]) => [Number(id), { endpointId: Number(id), pod: `ns/p${id}`, ip: '10.244.0.9', ...e }])),
    problems: [],
  };
}

describe('PolicyReconciler', () => {
  it('programs the desired state, shares ids by content, and a second sync writes nothing', () => {
    const w = world();
    const r = new PolicyReconciler(w.tables);
    const d = encodePolicy(
      compiled({ '10.244.0.2/32': 300, '10.244.0.3/32': 301, '192.168.0.0/16': 302 }, { 256: { ingress: rs([any(1), tcp(300, 80)]) }, 257: { ingress: rs([any(1), tcp(300, 80)]), egress: rs([any(1)]) } }),
    );
    const { res } = syncChecked(w, r, d, []);
    expect(res.changed).toBe(true);
    expect(res.gen).toBe(1);
    expect(w.tables.policyGen.get(0)).toEqual({ gen: 1 });
    const e256 = w.tables.epPolicy.get(256)!;
    const e257 = w.tables.epPolicy.get(257)!;
    expect(e256.egress_id).toBe(0);
    expect(e257.ingress_id).toBe(e256.ingress_id);
    expect(e257.egress_id).not.toBe(e256.ingress_id);
    expect(w.tables.ipcache4.data.size).toBe(3);
    expect(w.tables.policy4.data.size).toBe(3);
    expect(verdict(w.tables, 256, 'ingress', ip('10.244.0.2'), 6, 80)).toBe(true);
    expect(verdict(w.tables, 256, 'ingress', ip('10.244.0.2'), 6, 81)).toBe(false);
    expect(verdict(w.tables, 256, 'ingress', ip('10.244.0.3'), 6, 80)).toBe(false);
    expect(verdict(w.tables, 256, 'egress', ip('8.8.8.8'), 17, 53)).toBe(true);

    const again = syncChecked(w, r, d, []);
    expect(again.writes).toBe(0);
    expect(again.res.changed).toBe(false);
    expect(again.res.gen).toBe(1);
  });

  it('a restarted reconciler recovers ids from the maps: no writes, no renumbering', () => {
    const w = world();
    const d = encodePolicy(
      compiled({ '10.244.0.2/32': 300 }, { 256: { ingress: rs([any(1), tcp(300, 80, 90)]) }, 257: { ingress: rs([]) }, 258: { egress: rs([any(0)]), ingress: rs([tcp(0, 53)]) } }),
    );
    new PolicyReconciler(w.tables).sync(d);
    const ids = new Map([...w.tables.epPolicy.data.values()].map(([k, v]) => [k, v]));
    const r2 = new PolicyReconciler(w.tables);
    const { writes, res } = syncChecked(w, r2, d, []);
    expect(writes).toBe(0);
    expect(res.changed).toBe(false);
    expect(new Map([...w.tables.epPolicy.data.values()].map(([k, v]) => [k, v]))).toEqual(ids);
    // 257's empty rule set (isolated, nothing allowed) has an id with no entries; recovered too.
    expect(w.tables.epPolicy.get(257)!.ingress_id).not.toBe(0);
    expect(r2.contentOf(w.tables.epPolicy.get(257)!.ingress_id)).toBe('');
  });

  it('relabelling a peer (its identity changes) never denies it in between', () => {
    const w = world();
    const r = new PolicyReconciler(w.tables);
    const probes: Probe[] = [
      { ep: 256, dir: 'ingress', peer: ip('10.244.0.2'), proto: 6, port: 80 },
      { ep: 256, dir: 'ingress', peer: ip('10.244.0.3'), proto: 6, port: 80 },
      { ep: 256, dir: 'egress', peer: ip('10.244.0.2'), proto: 6, port: 443 },
    ];
    r.sync(encodePolicy(compiled({ '10.244.0.2/32': 300, '10.244.0.3/32': 301 }, { 256: { ingress: rs([any(1), tcp(300, 80)]), egress: rs([any(1), tcp(300, 443)]) } })));
    // The pod at .2 gets new labels: identity 302 (300 is gone); the policy now names 302.
    const after = encodePolicy(compiled({ '10.244.0.2/32': 302, '10.244.0.3/32': 301 }, { 256: { ingress: rs([any(1), tcp(302, 80)]), egress: rs([any(1), tcp(302, 443)]) } }));
    const { res } = syncChecked(w, r, after, probes);
    expect(res.transitional).toBe(1);
    expect(verdict(w.tables, 256, 'ingress', ip('10.244.0.2'), 6, 80)).toBe(true);
    // Only the final ids remain, and the gen moved on.
    const e = w.tables.epPolicy.get(256)!;
    const ids = new Set([...w.tables.policy4.data.values()].map(([k]) => k.policy_id));
    expect(ids).toEqual(new Set([e.ingress_id, e.egress_id]));
    expect(res.gen).toBe(2);
  });

  it('random changes: every intermediate state keeps what is allowed before and after; the end state is exact', () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return (seed >>> 12) % n;
    };
    const peers = ['10.244.0.2', '10.244.0.3', '10.244.1.4', '10.244.1.5', '192.168.1.1', '192.168.2.9'];
    const eps = [256, 257, 258];
    const probes: Probe[] = [];
    for (const ep of eps) for (const dir of ['ingress', 'egress'] as const) for (const p of peers) for (const [proto, port] of [[6, 79], [6, 80], [6, 85], [6, 91], [17, 53]]) probes.push({ ep, dir, peer: ip(p), proto, port });

    const randomState = (): DesiredPolicyMaps => {
      const ipcache: Record<string, number> = {};
      for (const p of peers.slice(0, 4)) ipcache[`${p}/32`] = 300 + rnd(4);
      if (rnd(2)) ipcache['192.168.0.0/16'] = 310 + rnd(2);
      if (rnd(2)) ipcache['192.168.2.0/24'] = 312;
      if (rnd(2)) ipcache['192.168.2.9/32'] = 300 + rnd(4);
      const ruleset = () => {
        const entries: PolicyEntry[] = [any(1)];
        for (let i = rnd(4); i > 0; i--) {
          const identity = [0, 300, 301, 302, 303, 310, 311, 312, 2][rnd(9)];
          const kind = rnd(4);
          if (kind === 0) entries.push(any(identity));
          else if (kind === 1) entries.push({ identity, proto: 17, port: 0, endPort: 0 });
          else { const lo = 78 + rnd(10); entries.push(tcp(identity, lo, lo + rnd(10))); }
        }
        return rs(entries);
      };
      const endpoints: Record<number, { ingress?: RuleSet; egress?: RuleSet }> = {};
      for (const ep of eps) {
        const e: { ingress?: RuleSet; egress?: RuleSet } = {};
        if (rnd(3)) e.ingress = ruleset();
        if (rnd(3)) e.egress = ruleset();
        endpoints[ep] = e;
      }
      return encodePolicy(compiled(ipcache, endpoints));
    };

    // The reference: a fresh map set programmed straight to the target.
    const reference = (d: DesiredPolicyMaps) => {
      const w = world();
      new PolicyReconciler(w.tables).sync(d);
      return verdicts(w.tables, probes);
    };

    const w = world();
    let r = new PolicyReconciler(w.tables);
    let transitions = 0;
    let failures = 0;
    for (let step = 0; step < 60; step++) {
      const d = randomState();
      // Every 7th step a write fails midway: the state stays safe, the next sync completes it.
      if (step % 7 === 3) {
        w.counter.failAt = w.counter.n + 1 + rnd(6);
        const before = verdicts(w.tables, probes);
        const states: Array<Map<string, boolean>> = [];
        w.counter.after = () => states.push(verdicts(w.tables, probes));
        let failed = false;
        try {
          r.sync(d);
        } catch (e) {
          expect((e as Error).message).toMatch(/injected/);
          failed = true;
        }
        failures += failed ? 1 : 0;
        w.counter.after = () => undefined;
        w.counter.failAt = -1;
        const want = reference(d);
        states.forEach((s) => {
          for (const [k, was] of before) if (was && want.get(k)) expect(s.get(k), `failed sync ${step}: ${k}`).toBe(true);
        });
        // Half the time the agent restarts after the failure.
        if (rnd(2)) r = new PolicyReconciler(w.tables);
        // The retry is checked from the partial state: allowed there and after stays allowed.
      }
      const { res } = syncChecked(w, r, d, probes, reference(d));
      transitions += res.transitional;
      // Nothing stale is left: only the ids endpoints name have entries.
      const named = new Set([...w.tables.epPolicy.data.values()].flatMap(([, v]) => [v.ingress_id, v.egress_id]));
      for (const [, [k]] of w.tables.policy4.data) expect(named.has(k.policy_id)).toBe(true);
      expect(new Set([...w.tables.ipcache4.data.values()].map(([k]) => formatPrefix(k)))).toEqual(new Set(d.ipcache.keys()));
    }
    expect(transitions).toBeGreaterThan(0);
    expect(failures).toBeGreaterThan(3);
  });

  it('nested prefixes: sets go longest first and deletes shortest first, so an address never sees a third identity', () => {
    const probes: Probe[] = [{ ep: 256, dir: 'ingress', peer: ip('192.168.2.9'), proto: 6, port: 80 }];
    const rules = { 256: { ingress: rs([any(1), tcp(300, 80), tcp(310, 80)]) } };
    const outer = encodePolicy(compiled({ '192.168.0.0/16': 310 }, rules));
    const nested = encodePolicy(compiled({ '192.168.0.0/16': 310, '192.168.2.0/24': 312, '192.168.2.9/32': 300 }, rules));
    const w = world();
    const r = new PolicyReconciler(w.tables);
    r.sync(outer);
    const allowed = new Map([[probeKey(probes[0]), true]]);
    syncChecked(w, r, nested, probes, allowed);
    syncChecked(w, r, outer, probes, allowed);
  });

  it('never reuses an id that is still named in the maps for different content within a sync', () => {
    const w = world();
    const r = new PolicyReconciler(w.tables);
    r.sync(encodePolicy(compiled({}, { 256: { ingress: rs([any(1)]) }, 257: { ingress: rs([any(1), tcp(0, 80)]) } })));
    const old = w.tables.epPolicy.get(256)!.ingress_id;
    // 256 moves to new content while its old content disappears: the new content must not take the old id in this sync.
    const probes: Probe[] = [{ ep: 256, dir: 'ingress', peer: ip('10.1.1.1'), proto: 6, port: 80 }];
    syncChecked(w, r, encodePolicy(compiled({ '10.1.1.1/32': 400 }, { 256: { ingress: rs([any(1), tcp(400, 80)]) }, 257: { ingress: rs([any(1), tcp(0, 80)]) } })), probes);
    expect(w.tables.epPolicy.get(256)!.ingress_id).not.toBe(old);
  });

  it('removeEndpoint deletes the ep_policy entry; the next sync collects its policy', () => {
    const w = world();
    const r = new PolicyReconciler(w.tables);
    r.sync(encodePolicy(compiled({}, { 256: { ingress: rs([any(1)]) } })));
    expect(r.removeEndpoint(256)).toBe(true);
    expect(w.tables.epPolicy.get(256)).toBeUndefined();
    expect(r.removeEndpoint(256)).toBe(false);
    r.sync(encodePolicy(compiled({}, {})));
    expect(w.tables.policy4.data.size).toBe(0);
  });

  it('batches large writes', () => {
    const w = world();
    const r = new PolicyReconciler(w.tables);
    const ipcache: Record<string, number> = {};
    for (let i = 0; i < 500; i++) ipcache[`10.244.${i >> 8}.${i & 255}/32`] = 256 + (i % 7);
    r.sync(encodePolicy(compiled(ipcache, { 256: { ingress: rs([any(1), ...Array.from({ length: 40 }, (_, i) => tcp(256 + (i % 7), 1000 + i * 3))]) } })));
    expect(w.tables.ipcache4.batches).toBe(1);
    expect(w.tables.policy4.batches).toBe(1);
  });
});
