// A service the kernel refuses must not block the others, on real pinned maps:
// weir_lb_slots or weir_maglev made tiny before load so one service does not
// fit. The one that does not fit is reported and left as it was; every other
// service is programmed; once there is room it goes in on the next sync.
import { mkdirSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCollectionSpec } from '../../loader/index.js';
import { bpfObject } from '../../control/paths.js';
import { openPinnedMaps, type DatapathMaps } from '../../control/datapath/maps.js';
import type { Svc4Key } from '../../control/datapath/types.gen.js';
import { LbAlgorithm } from '../../control/datapath/types.gen.js';
import { BpfMap } from '../../native/index.js';
import { buildDesired } from '../../control/service/model.js';
import { ServiceReconciler } from '../../control/service/reconciler.js';
import { serviceTables } from '../../control/service/maps.js';
import { port, service, slice } from '../../control/service/testobjects.js';
import { frontendKey, parseIPv4, type DesiredState } from '../../control/service/types.js';
import { requireRoot } from '../lib/netns.js';

const skip = requireRoot('service failure isolation on pinned maps');
const roots: string[] = [];
const ip = (s: string) => parseIPv4(s)!;

/** Pinned maps (no programs) under /sys/fs/bpf/h11-*, with some maps' max_entries shrunk. */
async function pinMaps(maxEntries: Record<string, number>): Promise<string> {
  const pinRoot = `/sys/fs/bpf/h11-svcfail-${process.pid}-${roots.length}`;
  roots.push(pinRoot);
  mkdirSync(pinRoot, { recursive: true });
  const spec = loadCollectionSpec(bpfObject('pod'));
  for (const [name, n] of Object.entries(maxEntries)) spec.maps[name].maxEntries = n;
  const coll = await spec.load({ pinRoot, programs: [] });
  coll.close();
  return pinRoot;
}

interface Svc {
  name: string;
  clusterIP: string;
  eps: number;
  /** Endpoints are 10.<net>.0.1.. */
  net: number;
  maglev?: boolean;
}

/** ClusterIP services on port 80 → 8080. */
function desired(svcs: Svc[]): DesiredState {
  const mag = { metadata: { annotations: { 'weir.io/lb-algorithm': 'maglev' } } };
  const out = buildDesired({
    services: svcs.map((s) => service(s.name, { clusterIP: s.clusterIP, ports: [port(80, { name: 'http' })] }, s.maglev ? mag : {})),
    slices: svcs.map((s) =>
      slice(`${s.name}-1`, s.name, [{ name: 'http', port: 8080 }], Array.from({ length: s.eps }, (_, j) => ({ ip: `10.${s.net}.0.${j + 1}` }))),
    ),
    nodeName: 'node-a',
    defaultAlgorithm: 'random',
  });
  expect(out.problems).toEqual([]);
  return out.state;
}

const key = (clusterIP: string): Svc4Key => ({ addr: ip(clusterIP), port: 80, proto: 6, scope: 0 });

/** The backend addresses a packet to clusterIP:80 could reach, read as the datapath does (slots → backends). */
function reachable(maps: DatapathMaps, clusterIP: string): string[] | undefined {
  const v = maps.svc4.get(key(clusterIP));
  if (!v) return undefined;
  const out: string[] = [];
  for (let slot = 1; slot <= v.count; slot++) {
    const id = maps.lbSlots.get({ svc_id: v.svc_id, slot });
    expect(id, `${clusterIP} slot ${slot}`).toBeDefined();
    const b = maps.backend4.get(id!);
    expect(b, `${clusterIP} backend ${id}`).toBeDefined();
    out.push(`${b!.addr >>> 24}.${(b!.addr >>> 16) & 255}.${(b!.addr >>> 8) & 255}.${b!.addr & 255}`);
  }
  return out.sort();
}

/** The backend addresses the Maglev table in place for clusterIP's service names (each must exist). */
function maglevBackends(maps: DatapathMaps, clusterIP: string): string[] {
  const v = maps.svc4.get(key(clusterIP))!;
  expect(v.algorithm).toBe(LbAlgorithm.LB_ALG_MAGLEV);
  const k = Buffer.alloc(4);
  k.writeUInt32LE(v.svc_id);
  const inner = BpfMap.fromId(maps.maglev.lookup(k)!.readUInt32LE(0));
  try {
    const ids = new Set<number>();
    for (const [, val] of inner.lookupBatch()) ids.add(val.readUInt32LE(0));
    return [...ids].map((id) => {
      const b = maps.backend4.get(id);
      expect(b, `${clusterIP}: Maglev table names backend ${id}`).toBeDefined();
      return `${b!.addr >>> 24}.${(b!.addr >>> 16) & 255}.${(b!.addr >>> 8) & 255}.${b!.addr & 255}`;
    }).sort();
  } finally {
    inner.close();
  }
}

describe.skipIf(skip)('service failure isolation on pinned maps', () => {
  afterAll(() => {
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it('a service too big for a full weir_lb_slots fails alone: a new ClusterIP service and a Maglev one are programmed', async () => {
    // 9 slots: web (3) now; then big (10) does not fit, small (2) and dns (3) do.
    const pinRoot = await pinMaps({ weir_lb_slots: 9 });
    const maps = openPinnedMaps(pinRoot);
    try {
      const r = new ServiceReconciler(serviceTables(maps));
      const web: Svc = { name: 'web', clusterIP: '10.96.0.10', eps: 3, net: 200 };
      expect(r.sync(desired([web])).failed).toEqual([]);
      const webBefore = reachable(maps, '10.96.0.10');
      expect(webBefore).toHaveLength(3);

      const big: Svc = { name: 'big', clusterIP: '10.96.0.20', eps: 10, net: 201 };
      const small: Svc = { name: 'small', clusterIP: '10.96.0.30', eps: 2, net: 202 };
      const dns: Svc = { name: 'dns', clusterIP: '10.96.0.40', eps: 3, net: 203, maglev: true };
      const res = r.sync(desired([web, big, small, dns]));
      expect(res.failed.map((f) => [f.service, f.frontend])).toEqual([['default/big', frontendKey(key('10.96.0.20'))]]);
      expect((res.failed[0].error.cause as { code?: string }).code).toBe('E2BIG');
      expect(reachable(maps, '10.96.0.20')).toBeUndefined();
      expect(reachable(maps, '10.96.0.10')).toEqual(webBefore);
      expect(reachable(maps, '10.96.0.30')).toEqual(['10.202.0.1', '10.202.0.2']);
      expect(reachable(maps, '10.96.0.40')).toEqual(['10.203.0.1', '10.203.0.2', '10.203.0.3']);
      expect(maglevBackends(maps, '10.96.0.40')).toEqual(['10.203.0.1', '10.203.0.2', '10.203.0.3']);
      // big gave back the slots it could write: the map holds exactly the others' slots.
      expect(maps.lbSlots.dump()).toHaveLength(3 + 2 + 3);

      // Retried each sync; fits once it shrinks to the one free slot.
      expect(r.sync(desired([web, big, small, dns])).failed.map((f) => f.service)).toEqual(['default/big']);
      expect(r.sync(desired([web, { ...big, eps: 1 }, small, dns])).failed).toEqual([]);
      expect(reachable(maps, '10.96.0.20')).toEqual(['10.201.0.1']);
      expect(maps.lbSlots.dump()).toHaveLength(9);
    } finally {
      maps.close();
    }
  });

  it('a Maglev table the kernel refuses (weir_maglev full) fails that service alone; the old tables stay', async () => {
    const pinRoot = await pinMaps({ weir_maglev: 2 });
    const maps = openPinnedMaps(pinRoot);
    try {
      const r = new ServiceReconciler(serviceTables(maps));
      const m1: Svc = { name: 'm1', clusterIP: '10.96.1.1', eps: 2, net: 210, maglev: true };
      const m2: Svc = { name: 'm2', clusterIP: '10.96.1.2', eps: 2, net: 211, maglev: true };
      const m3: Svc = { name: 'm3', clusterIP: '10.96.1.3', eps: 2, net: 212, maglev: true };
      const plain: Svc = { name: 'plain', clusterIP: '10.96.1.4', eps: 2, net: 213 };
      const res = r.sync(desired([m1, m2, m3, plain]));
      expect(res.failed.map((f) => f.service)).toEqual(['default/m3']);
      expect(res.failed[0].error.message).toMatch(/Maglev table of service id \d+: .*E2BIG/);
      expect(reachable(maps, '10.96.1.3')).toBeUndefined();
      for (const s of [m1, m2]) expect(reachable(maps, s.clusterIP)).toHaveLength(2);
      expect(reachable(maps, '10.96.1.4')).toEqual(['10.213.0.1', '10.213.0.2']);
      for (const s of [m1, m2]) expect(maglevBackends(maps, s.clusterIP)).toEqual([`10.${s.net}.0.1`, `10.${s.net}.0.2`]);
      expect([...maps.maglev.keys()]).toHaveLength(2);

      // m1 goes away: its table is deleted, m3's goes in on the same sync.
      const res2 = r.sync(desired([m2, m3, plain]));
      expect(res2.failed.map((f) => f.service)).toEqual(['default/m3']); // removal comes after writes
      expect(r.sync(desired([m2, m3, plain])).failed).toEqual([]);
      expect(maglevBackends(maps, '10.96.1.3')).toEqual(['10.212.0.1', '10.212.0.2']);
      expect(reachable(maps, '10.96.1.1')).toBeUndefined();
    } finally {
      maps.close();
    }
  });
});
