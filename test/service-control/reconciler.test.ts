// The service reconciler against the real pinned maps of build/bpf/pod.o:
// programmed entries read back as the datapath sees them, an agent restart
// recovers every id and writes nothing, and Maglev tables swap in as inner maps.
import { mkdirSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCollectionSpec } from '../../loader/index.js';
import { bpfObject } from '../../control/paths.js';
import { openPinnedMaps, type DatapathMaps } from '../../control/datapath/maps.js';
import { BpfMap, MapType } from '../../native/index.js';
import { LbAlgorithm } from '../../control/datapath/types.gen.js';
import { buildDesired } from '../../control/service/model.js';
import { ServiceReconciler } from '../../control/service/reconciler.js';
import { configureMaglev, serviceTables } from '../../control/service/maps.js';
import { MAGLEV_M_DEFAULT, MAGLEV_M_LARGE, maglevTable } from '../../control/service/maglev.js';
import { port, service, slice, type Ep } from '../../control/service/testobjects.js';
import { parseIPv4 } from '../../control/service/types.js';
import { requireRoot } from '../lib/netns.js';

const skip = requireRoot('service reconciler on pinned maps');
const roots: string[] = [];
const ip = (s: string) => parseIPv4(s)!;

/** Creates the pinned maps (no programs) under a fresh /sys/fs/bpf/h2-* directory. */
async function pinMaps(m?: number): Promise<string> {
  const pinRoot = `/sys/fs/bpf/h2-svc-${process.pid}-${roots.length}`;
  roots.push(pinRoot);
  mkdirSync(pinRoot, { recursive: true });
  const spec = loadCollectionSpec(bpfObject('pod'));
  if (m !== undefined) configureMaglev(spec, m);
  const coll = await spec.load({ pinRoot, programs: [] });
  coll.close();
  return pinRoot;
}

function desired(webEps: Ep[]) {
  const mag = { metadata: { annotations: { 'weir.io/lb-algorithm': 'maglev' } } };
  const out = buildDesired({
    services: [
      service('web', { type: 'NodePort', ports: [port(80, { name: 'http', nodePort: 30080 })] }),
      service('dns', { clusterIP: '10.96.0.53', ports: [port(53, { name: 'dns', protocol: 'UDP' })] }, mag),
    ],
    slices: [
      slice('web-1', 'web', [{ name: 'http', port: 8080 }], webEps),
      slice('dns-1', 'dns', [{ name: 'dns', port: 5353, protocol: 'UDP' }], [{ ip: '10.244.0.20' }, { ip: '10.244.1.20' }, { ip: '10.244.2.20' }]),
    ],
    nodeName: 'node-a',
    defaultAlgorithm: 'random',
    extraNodeAddrs: [ip('192.168.1.10')],
  });
  expect(out.problems).toEqual([]);
  return out.state;
}

const eps = (n: number): Ep[] => Array.from({ length: n }, (_, i) => ({ ip: `10.244.0.${i + 1}`, node: i === 0 ? 'node-a' : 'node-b' }));

/** The Maglev table in place for svcId, read through the outer map. */
function readMaglev(maps: DatapathMaps, svcId: number): { maxEntries: number; ids: Uint32Array } | undefined {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(svcId);
  const v = maps.maglev.lookup(k);
  if (!v) return undefined;
  const inner = BpfMap.fromId(v.readUInt32LE(0));
  try {
    expect(inner.info.type).toBe(MapType.ARRAY);
    const ids = new Uint32Array(inner.info.maxEntries);
    for (const [key, val] of inner.lookupBatch()) ids[key.readUInt32LE(0)] = val.readUInt32LE(0);
    return { maxEntries: inner.info.maxEntries, ids };
  } finally {
    inner.close();
  }
}

describe.skipIf(skip)('service reconciler on pinned maps', () => {
  afterAll(() => {
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it('programs services, survives a restart with the same ids and no writes, then writes only a change', async () => {
    const pinRoot = await pinMaps();
    let maps = openPinnedMaps(pinRoot);
    try {
      const r1 = new ServiceReconciler(serviceTables(maps));
      r1.sync(desired(eps(3)));

      // Read back as the datapath would: frontend → slots → backends.
      const np = maps.svc4.get({ addr: 0, port: 30080, proto: 6, scope: 0 })!;
      expect(np.count).toBe(3);
      const backends = [];
      for (let s = 1; s <= np.count; s++) backends.push(maps.backend4.get(maps.lbSlots.get({ svc_id: np.svc_id, slot: s })!)!);
      expect(backends.map((b) => b.addr).sort()).toEqual([ip('10.244.0.1'), ip('10.244.0.2'), ip('10.244.0.3')]);
      expect(backends.every((b) => b.port === 8080 && b.proto === 6)).toBe(true);
      expect(maps.revnat4.get(np.revnat_id)).toMatchObject({ addr: 0, port: 30080 });
      expect(maps.node4.get(ip('192.168.1.10'))).toEqual({ flags: 0 });

      const dns = maps.svc4.get({ addr: ip('10.96.0.53'), port: 53, proto: 17, scope: 0 })!;
      expect(dns.algorithm).toBe(LbAlgorithm.LB_ALG_MAGLEV);
      const table = readMaglev(maps, dns.svc_id)!;
      expect(table.maxEntries).toBe(MAGLEV_M_DEFAULT);
      const keys = ['10.244.0.20:5353/17', '10.244.1.20:5353/17', '10.244.2.20:5353/17'];
      const expected = maglevTable(keys).map((i) => r1.backendIds.get(keys[i])!);
      expect(Buffer.from(table.ids.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
      expect(maps.maglev.keys().next()).toBeDefined();

      // Agent restart: everything from the pins.
      const idsBefore = [...r1.svcIds.entries(), ...r1.backendIds.entries(), ...r1.revnatIds.entries()];
      maps.close();
      maps = openPinnedMaps(pinRoot);
      const r2 = new ServiceReconciler(serviceTables(maps));
      expect([...r2.svcIds.entries(), ...r2.backendIds.entries(), ...r2.revnatIds.entries()]).toEqual(expect.arrayContaining(idsBefore));
      expect(r2.svcIds.size + r2.backendIds.size + r2.revnatIds.size).toBe(idsBefore.length);
      r2.sync(desired(eps(3)));
      expect(Object.values(r2.counters).every((c) => c.writes === 0 && c.deletes === 0)).toBe(true);

      // One endpoint more for "web" (two frontends: ClusterIP and NodePort):
      // one backend, one slot and the count of each frontend, nothing else.
      r2.sync(desired(eps(4)));
      expect(r2.counters).toMatchObject({ backend4: { writes: 1, deletes: 0 }, lbSlots: { writes: 2, deletes: 0 }, svc4: { writes: 2, deletes: 0 }, revnat4: { writes: 0, deletes: 0 }, maglev: { writes: 0, deletes: 0 }, node4: { writes: 0, deletes: 0 } });
      expect(maps.svc4.get({ addr: 0, port: 30080, proto: 6, scope: 0 })!.count).toBe(4);

      // Everything removed: the maps are empty again.
      r2.sync({ frontends: new Map(), backends: new Map(), nodeAddrs: new Set() });
      for (const t of [maps.svc4, maps.backend4, maps.lbSlots, maps.revnat4, maps.node4]) expect(t.dump()).toEqual([]);
      expect(maps.maglev.keys().next().value).toBeUndefined();
    } finally {
      maps.close();
    }
  });

  it('M=65521: configureMaglev sizes the inner template; tables of that size swap in', async () => {
    const pinRoot = await pinMaps(MAGLEV_M_LARGE);
    const maps = openPinnedMaps(pinRoot);
    try {
      const r = new ServiceReconciler(serviceTables(maps, MAGLEV_M_LARGE));
      r.sync(desired(eps(2)));
      const dns = maps.svc4.get({ addr: ip('10.96.0.53'), port: 53, proto: 17, scope: 0 })!;
      const table = readMaglev(maps, dns.svc_id)!;
      expect(table.maxEntries).toBe(MAGLEV_M_LARGE);
      const keys = ['10.244.0.20:5353/17', '10.244.1.20:5353/17', '10.244.2.20:5353/17'];
      const expected = maglevTable(keys, MAGLEV_M_LARGE).map((i) => r.backendIds.get(keys[i])!);
      expect(Buffer.from(table.ids.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
      // A table of the default size does not fit this outer map: the kernel refuses it.
      const wrong = serviceTables(maps, MAGLEV_M_DEFAULT).maglev;
      expect(() => wrong.replace(999, new Uint32Array(MAGLEV_M_DEFAULT))).toThrow();
      r.sync({ frontends: new Map(), backends: new Map(), nodeAddrs: new Set() });
    } finally {
      maps.close();
    }
  });
  it('many Maglev services in one sync: every table swapped in (batched) and removed again', async () => {
    const pinRoot = await pinMaps();
    const maps = openPinnedMaps(pinRoot);
    try {
      const n = 150; // more than one swap chunk (64)
      const mag = { metadata: { annotations: { 'weir.io/lb-algorithm': 'maglev' } } };
      const out = buildDesired({
        services: Array.from({ length: n }, (_, i) => service(`m${i}`, { clusterIP: `10.97.0.${i + 1}`, ports: [port(80, { name: 'http' })] }, mag)),
        slices: Array.from({ length: n }, (_, i) => slice(`m${i}-1`, `m${i}`, [{ name: 'http', port: 8080 }], [{ ip: `10.245.${i}.1` }, { ip: `10.245.${i}.2` }])),
        nodeName: 'node-a',
        defaultAlgorithm: 'random',
      });
      const r = new ServiceReconciler(serviceTables(maps));
      r.sync(out.state);
      expect(r.counters.maglev.writes).toBe(n);
      for (const i of [0, 63, 64, 149]) {
        const v = maps.svc4.get({ addr: ip(`10.97.0.${i + 1}`), port: 80, proto: 6, scope: 0 })!;
        const keys = [`10.245.${i}.1:8080/6`, `10.245.${i}.2:8080/6`];
        const expected = maglevTable(keys).map((x) => r.backendIds.get(keys[x])!);
        const table = readMaglev(maps, v.svc_id)!;
        expect(Buffer.from(table.ids.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
      }
      r.sync({ frontends: new Map(), backends: new Map(), nodeAddrs: new Set() });
      expect(r.counters.maglev.deletes).toBe(n);
      expect(maps.maglev.keys().next().value).toBeUndefined();
    } finally {
      maps.close();
    }
  });
});
