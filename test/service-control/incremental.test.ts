// Incremental model + reconciler: after any sequence of changes, reusing the
// previous results gives exactly what a from-scratch build and a fresh
// reconciler give; unchanged Services are neither recomputed nor diffed.
import { describe, expect, it } from 'vitest';
import { ENOSPC, fakeTables, mapError, type FakeTables } from '../../control/service/fake.js';
import { buildDesired, type ModelInput } from '../../control/service/model.js';
import { ServiceReconciler, type WriteCounters } from '../../control/service/reconciler.js';
import { node, port, service, slice, type Ep } from '../../control/service/testobjects.js';
import { backendKey, frontendKey, revnatKey, type ServiceDesired, type V1EndpointSlice, type V1Node, type V1Service } from '../../control/service/types.js';
import { rng as mulberry32 } from '../../bench/stats.js';

const ME = 'node-a';
const M = 251; // a small prime: Maglev tables compared slot by slot stay cheap

/** mulberry32 (the bench's): a fixed seed gives the same sequence on every run. */
function rng(seed: number) {
  const next = mulberry32(seed);
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)], chance: (p: number) => next() < p };
}

/** The model's result without what lets it reuse anything: the next build computes every Service. */
const strip = (m: Map<string, ServiceDesired>) => new Map([...m].map(([k, sd]) => [k, { frontends: sd.frontends, backends: sd.backends }]));

/** The tables as the datapath reads them, ids resolved to what they name (ids differ between reconcilers). */
function view(t: FakeTables) {
  const backends = new Map([...t.backend4.data.values()].map(([id, b]) => [id, `${backendKey(b)} s${b.state} f${b.flags} n${b.node_id}`]));
  const revnat = new Map([...t.revnat4.data.values()].map(([id, r]) => [id, revnatKey(r)]));
  const slots = new Map<number, Map<number, number>>();
  for (const [k, id] of t.lbSlots.data.values()) {
    if (!slots.has(k.svc_id)) slots.set(k.svc_id, new Map());
    slots.get(k.svc_id)!.set(k.slot, id);
  }
  const svc: Record<string, unknown> = {};
  for (const [k, v] of t.svc4.data.values()) {
    const mine = slots.get(v.svc_id) ?? new Map<number, number>();
    const named = Array.from({ length: v.count }, (_, i) => backends.get(mine.get(i + 1)!) ?? `missing slot ${i + 1}`);
    const table = t.maglev.data.get(v.svc_id);
    svc[frontendKey(k)] = {
      count: v.count,
      extraSlots: mine.size - v.count,
      flags: v.flags,
      algorithm: v.algorithm,
      affinity: v.affinity_timeout,
      revnat: revnat.get(v.revnat_id) ?? 'missing',
      backends: named.sort(),
      maglev: table ? Array.from(table, (id) => backends.get(id)?.split(' ')[0] ?? 'missing').join(',') : undefined,
    };
  }
  return {
    svc,
    backends: [...backends.values()].sort(),
    revnat: [...revnat.values()].sort(),
    node4: [...t.node4.data.values()].map(([a]) => a).sort(),
    slots: t.lbSlots.data.size,
    maglevTables: t.maglev.data.size,
  };
}

const total = (c: WriteCounters) => Object.values(c).reduce((a, x) => a + x.writes + x.deletes, 0);

/** A small random cluster whose objects are replaced (never mutated) on change, as an informer does. */
class World {
  services: V1Service[] = [];
  slices: V1EndpointSlice[] = [];
  node: V1Node = node(ME, [['InternalIP', '192.168.1.10']]);
  ids = new Map([
    ['node-a', 1],
    ['node-b', 2],
  ]);
  defaultAlgorithm: 'random' | 'maglev' = 'random';
  #rv = 0;
  constructor(readonly r: ReturnType<typeof rng>) {}

  #meta<T extends { metadata?: object }>(o: T, uid: string): T {
    o.metadata = { ...o.metadata, uid, resourceVersion: String(++this.#rv) };
    return o;
  }
  newService(name: string): V1Service {
    const r = this.r;
    const ports = [port(80, { name: 'http', nodePort: 30000 + r.int(3) })];
    if (r.chance(0.4)) ports.push(port(53, { name: 'dns', protocol: 'UDP', nodePort: 30000 + r.int(3) }));
    // Few ClusterIPs and NodePorts for many names: Services collide on frontends.
    const spec: V1Service['spec'] = { clusterIP: `10.96.0.${10 + r.int(5)}`, type: r.chance(0.4) ? 'NodePort' : 'ClusterIP', ports };
    if (r.chance(0.3)) spec.externalTrafficPolicy = 'Local';
    if (r.chance(0.2)) spec.internalTrafficPolicy = 'Local';
    if (r.chance(0.2)) spec.sessionAffinity = 'ClientIP';
    if (r.chance(0.2)) spec.externalIPs = [`203.0.113.${r.int(3) + 1}`];
    if (r.chance(0.05)) ports[0].port = 0; // malformed: keeps its previous state
    const ann = r.chance(0.3) ? { metadata: { annotations: { 'weir.io/lb-algorithm': r.chance(0.9) ? 'maglev' : 'bogus' } } } : {};
    return this.#meta(service(name, spec, ann), `svc-${name}`);
  }
  newSlice(name: string, svc: string): V1EndpointSlice {
    const r = this.r;
    const eps: Ep[] = Array.from({ length: r.int(5) }, () => {
      const ready = r.chance(0.7) ? undefined : r.chance(0.5);
      return { ip: `10.244.0.${1 + r.int(12)}`, node: r.pick(['node-a', 'node-b', 'node-c']), ready, serving: r.chance(0.8) ? undefined : r.chance(0.5), terminating: ready === false ? r.chance(0.6) : undefined };
    });
    if (r.chance(0.04)) eps.push({ ip: '10.244.0.999' }); // malformed
    const ports = [{ name: 'http', port: 8080 }, ...(r.chance(0.5) ? [{ name: 'dns', port: 5353, protocol: 'UDP' }] : [])];
    return this.#meta(slice(name, svc, ports, eps), `slice-${name}`);
  }
  step(): string {
    const r = this.r;
    const names = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    switch (r.int(10)) {
      case 0:
      case 1: {
        const name = r.pick(names);
        const i = this.services.findIndex((s) => s.metadata!.name === name);
        if (i >= 0) this.services[i] = this.newService(name);
        else this.services.push(this.newService(name));
        return `service ${name} set`;
      }
      case 2: {
        if (this.services.length === 0) return 'nothing';
        const i = r.int(this.services.length);
        const [gone] = this.services.splice(i, 1);
        return `service ${gone.metadata!.name} removed`;
      }
      case 3:
      case 4:
      case 5: {
        const svc = r.pick(names);
        const name = `${svc}-${r.int(2)}`;
        const i = this.slices.findIndex((s) => s.metadata!.name === name);
        if (i >= 0) this.slices[i] = this.newSlice(name, svc);
        else this.slices.push(this.newSlice(name, svc));
        return `slice ${name} set`;
      }
      case 6: {
        if (this.slices.length === 0) return 'nothing';
        const [gone] = this.slices.splice(r.int(this.slices.length), 1);
        return `slice ${gone.metadata!.name} removed`;
      }
      case 7: {
        const addrs: Array<[string, string]> = [['InternalIP', `192.168.1.${10 + r.int(2)}`]];
        if (r.chance(0.5)) addrs.push(['ExternalIP', `198.51.100.${r.int(2) + 1}`]);
        this.node = node(ME, addrs);
        return 'node addresses';
      }
      case 8: {
        // A new map, as the agent builds it each pass; sometimes an id changes or appears.
        this.ids = new Map(this.ids);
        this.ids.set(r.pick(['node-b', 'node-c']), 2 + r.int(3));
        return 'node ids';
      }
      default: {
        if (r.chance(0.2)) {
          this.defaultAlgorithm = this.defaultAlgorithm === 'random' ? 'maglev' : 'random';
          return 'default algorithm';
        }
        // A relist: every object a new instance with the same uid and resourceVersion.
        this.services = this.services.map((s) => structuredClone(s));
        this.slices = this.slices.map((s) => structuredClone(s));
        return 'relist';
      }
    }
  }
  input(): ModelInput {
    const ids = this.ids;
    return { services: [...this.services], slices: [...this.slices], nodeName: ME, node: this.node, defaultAlgorithm: this.defaultAlgorithm, maglevM: M, nodeId: (n) => ids.get(n) };
  }
}

describe('incremental service model and reconciler', () => {
  for (const seed of [1, 2, 3]) {
    it(`random changes (seed ${seed}): the same desired state, problems and tables as a from-scratch build`, () => {
      const w = new World(rng(seed));
      const inc = fakeTables(M);
      const rec = new ServiceReconciler(inc);
      let prev: Map<string, ServiceDesired> | undefined;
      let refPrev: Map<string, ServiceDesired> | undefined;
      let reused = 0;
      for (let step = 0; step < 250; step++) {
        const what = w.step();
        const input = w.input();
        const out = buildDesired(input, prev);
        const ref = buildDesired(input, refPrev && strip(refPrev));
        const ctx = `seed ${seed} step ${step} (${what})`;
        expect(out.state, ctx).toEqual(ref.state);
        expect([...out.state.frontends.keys()], ctx).toEqual([...ref.state.frontends.keys()]);
        expect(out.problems, ctx).toEqual(ref.problems);
        for (const [k, sd] of out.services) if (prev?.get(k) === sd) reused++;
        prev = out.services;
        refPrev = ref.services;

        expect(rec.sync(out.state).failed, ctx).toEqual([]);
        const fresh = fakeTables(M);
        expect(new ServiceReconciler(fresh).sync(ref.state).failed, ctx).toEqual([]);
        expect(view(inc), ctx).toEqual(view(fresh));
        // The reconciler's mirror matches the maps: one recovering from them has nothing to write.
        if (step % 10 === 0) {
          const again = new ServiceReconciler(inc);
          again.sync(out.state);
          expect(total(again.counters), ctx).toBe(0);
        }
      }
      // The sequence did exercise reuse (and recomputation, by the equalities above).
      expect(reused).toBeGreaterThan(100);
    });
  }

  /** Counts reads of an object's fields (by object name): a Service that is reused is not looked into. */
  function watched<T extends { metadata?: { name?: string } }>(o: T, reads: Map<string, number>): T {
    return new Proxy(o, {
      get(target, p, recv) {
        const name = target.metadata!.name!;
        if (p !== 'metadata') reads.set(name, (reads.get(name) ?? 0) + 1);
        return Reflect.get(target, p, recv);
      },
    });
  }

  it('an unchanged Service is neither read nor diffed; only the changed one is', () => {
    const N = 40;
    const reads = new Map<string, number>();
    const services = Array.from({ length: N }, (_, i) =>
      watched(service(`s${i}`, { clusterIP: `10.96.1.${i + 1}`, ports: [port(80, { name: 'http' })] }), reads),
    );
    const eps = (i: number, n: number): Ep[] => Array.from({ length: n }, (_, j) => ({ ip: `10.244.${i}.${j + 1}`, node: j === 0 ? ME : 'node-b' }));
    const slices = Array.from({ length: N }, (_, i) => watched(slice(`s${i}-1`, `s${i}`, [{ name: 'http', port: 8080 }], eps(i, 3)), reads));
    const t = fakeTables();
    const rec = new ServiceReconciler(t);
    const input = (): ModelInput => ({ services, slices, nodeName: ME, defaultAlgorithm: 'random' });
    const first = buildDesired(input());
    rec.sync(first.state);
    expect(rec.lastDiffed).toEqual({ frontends: N, backends: 3 * N });

    // One endpoint added to s7: a new slice object, everything else as it was.
    slices[7] = slice('s7-1', 's7', [{ name: 'http', port: 8080 }], eps(7, 4));
    reads.clear();
    const tables = [t.svc4, t.backend4, t.lbSlots, t.revnat4, t.node4, t.maglev];
    for (const x of tables) x.reads = 0;
    const second = buildDesired(input(), first.services);
    // No field of an unchanged Service or slice read. The changed one's old slice is compared
    // (content: these objects have no resourceVersion) and its Service parsed again.
    expect([...reads.keys()].sort()).toEqual(['s7', 's7-1']);
    for (const [k, sd] of second.services) {
      if (k === 'default/s7') expect(sd).not.toBe(first.services.get(k));
      else expect(sd).toBe(first.services.get(k));
    }
    rec.resetCounters();
    expect(rec.sync(second.state).failed).toEqual([]);
    expect(tables.map((x) => x.reads)).toEqual([0, 0, 0, 0, 0, 0]); // the maps are not read back
    expect(rec.lastDiffed).toEqual({ frontends: 1, backends: 4 }); // s7's frontend and its 4 backends
    // One endpoint added = 1 backend + 1 slot + the service count.
    expect(rec.counters.backend4.writes).toBe(1);
    expect(rec.counters.lbSlots.writes).toBe(1);
    expect(rec.counters.svc4.writes).toBe(1);
    expect(total(rec.counters)).toBe(3);

    // Nothing changed: nothing read, nothing diffed, nothing written.
    reads.clear();
    const third = buildDesired(input(), second.services);
    expect(reads.size).toBe(0);
    rec.resetCounters();
    rec.sync(third.state);
    expect(rec.lastDiffed).toEqual({ frontends: 0, backends: 0 });
    expect(total(rec.counters)).toBe(0);
  });

  it('reuse: the same instance, the same uid+resourceVersion, or the same content without a resourceVersion', () => {
    const svc = (rv?: string, clusterIP = '10.96.0.10') => service('web', { clusterIP, ports: [port(80, { name: 'http' })] }, { metadata: { uid: 'u1', resourceVersion: rv } });
    const sl = slice('web-1', 'web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.1' }]);
    const build = (s: V1Service, prev?: Map<string, ServiceDesired>, nodeId?: (n: string) => number | undefined) =>
      buildDesired({ services: [s], slices: [sl], nodeName: ME, defaultAlgorithm: 'random', nodeId }, prev).services;
    const a = build(svc('5'));
    expect(build(svc('5'), a).get('default/web')).toBe(a.get('default/web')); // same uid+rv, another instance
    expect(build(svc('6'), a).get('default/web')).not.toBe(a.get('default/web'));
    const b = build(svc(undefined));
    expect(build(svc(undefined), b).get('default/web')).toBe(b.get('default/web')); // same content
    const c = build(svc(undefined, '10.96.0.11'), b).get('default/web')!;
    expect(c).not.toBe(b.get('default/web'));
    expect(c.frontends[0].addr).toBe(0x0a60000b);
    // A fact outside the objects: the node id of an endpoint's node.
    const sl2 = slice('web-1', 'web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.1', node: 'node-b' }]);
    const withIds = (id: number, prev?: Map<string, ServiceDesired>) =>
      buildDesired({ services: [svc('5')], slices: [sl2], nodeName: ME, defaultAlgorithm: 'random', nodeId: () => id }, prev).services;
    const d = withIds(2);
    expect(withIds(2, d).get('default/web')).toBe(d.get('default/web'));
    const e = withIds(3, d).get('default/web')!;
    expect(e).not.toBe(d.get('default/web'));
    expect([...e.backends.values()][0].nodeId).toBe(3);
  });

  it('an unchanged frontend naming a backend whose new value is refused fails with it, and is retried', () => {
    const sv = (name: string, ip: string) => service(name, { clusterIP: ip, ports: [port(80, { name: 'http' })] });
    const ending: Ep = { ip: '10.244.0.5', ready: false, serving: true, terminating: true };
    const a = sv('a', '10.96.0.10');
    const b = sv('b', '10.96.0.11');
    const slA = slice('a-1', 'a', [{ name: 'http', port: 8080 }], [ending]);
    const input = (slB: V1EndpointSlice): ModelInput => ({ services: [a, b], slices: [slA, slB], nodeName: ME, defaultAlgorithm: 'random' });
    const t = fakeTables();
    const rec = new ServiceReconciler(t);
    const first = buildDesired(input(slice('b-1', 'b', [{ name: 'http', port: 8080 }], [ending])));
    expect(rec.sync(first.state).failed).toEqual([]);
    // b's copy of the shared endpoint becomes ready: the backend turns active; a is unchanged.
    const second = buildDesired(input(slice('b-1', 'b', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.5' }])), first.services);
    expect(second.services.get('default/a')).toBe(first.services.get('default/a'));
    const fail = (op: 'set' | 'delete') => (op === 'set' ? mapError('ENOSPC', ENOSPC) : undefined);
    t.backend4.failures.push(fail);
    const res = rec.sync(second.state);
    expect(res.failed.map((f) => f.service).sort()).toEqual(['default/a', 'default/b']);
    expect(rec.lastDiffed.frontends).toBe(1); // b's (recomputed); a's was skipped, and still reported
    t.backend4.failures.length = 0;
    rec.resetCounters();
    expect(rec.sync(second.state).failed).toEqual([]);
    expect(rec.counters.backend4.writes).toBe(1);
    expect(rec.lastDiffed.frontends).toBe(2); // the failed ones are diffed again
    const fresh = fakeTables();
    new ServiceReconciler(fresh).sync(buildDesired(input(slice('b-1', 'b', [{ name: 'http', port: 8080 }], [{ ip: '10.244.0.5' }]))).state);
    expect(view(t)).toEqual(view(fresh));
  });

  it('frontend conflicts resolve as from scratch when only one claimant changes', () => {
    const sv = (name: string, ip: string) => service(name, { clusterIP: ip, ports: [port(80, { name: 'http' })] });
    const sl = (svc: string, ip: string) => slice(`${svc}-1`, svc, [{ name: 'http', port: 8080 }], [{ ip }]);
    const t = fakeTables();
    const rec = new ServiceReconciler(t);
    let prev: Map<string, ServiceDesired> | undefined;
    const run = (services: V1Service[], slices: V1EndpointSlice[]) => {
      const input: ModelInput = { services, slices, nodeName: ME, defaultAlgorithm: 'random' };
      const out = buildDesired(input, prev);
      const ref = buildDesired(input);
      expect(out.state).toEqual(ref.state);
      expect(out.problems).toEqual(ref.problems);
      prev = out.services;
      expect(rec.sync(out.state).failed).toEqual([]);
      const fresh = fakeTables();
      new ServiceReconciler(fresh).sync(ref.state);
      expect(view(t)).toEqual(view(fresh));
      return out;
    };
    const b = sv('b', '10.96.0.10');
    const c = sv('c', '10.96.0.10');
    const slB = sl('b', '10.244.0.2');
    const slC = sl('c', '10.244.0.3');
    // b and c claim 10.96.0.10:80: b (first by name) has it.
    let out = run([c, b], [slB, slC]);
    expect(out.problems.map((p) => `${p.name}: ${p.message}`)).toEqual(['c: frontend 10.96.0.10:80/6#0 is already used by default/b; skipped']);
    expect(view(t).svc['10.96.0.10:80/6#0']).toMatchObject({ backends: ['10.244.0.2:8080/6 s0 f0 n0'] });
    // a appears and takes it from b; b and c are unchanged (reused) and both lose it.
    const a = sv('a', '10.96.0.10');
    const before = prev!;
    out = run([c, b, a], [slB, slC, sl('a', '10.244.0.1')]);
    expect(out.services.get('default/b')).toBe(before.get('default/b'));
    expect(out.services.get('default/c')).toBe(before.get('default/c'));
    expect(out.problems.map((p) => p.name)).toEqual(['b', 'c']);
    expect(view(t).svc['10.96.0.10:80/6#0']).toMatchObject({ backends: ['10.244.0.1:8080/6 s0 f0 n0'] });
    // a goes: b, unchanged, gets it back.
    out = run([c, b], [slB, slC]);
    expect(out.problems.map((p) => p.name)).toEqual(['c']);
    expect(view(t).svc['10.96.0.10:80/6#0']).toMatchObject({ backends: ['10.244.0.2:8080/6 s0 f0 n0'] });
    // b moves away: c, unchanged, gets it.
    out = run([c, sv('b', '10.96.0.20')], [slB, slC]);
    expect(out.problems).toEqual([]);
    expect(view(t).svc['10.96.0.10:80/6#0']).toMatchObject({ backends: ['10.244.0.3:8080/6 s0 f0 n0'] });
    expect(view(t).svc['10.96.0.20:80/6#0']).toMatchObject({ backends: ['10.244.0.2:8080/6 s0 f0 n0'] });
  });
});
