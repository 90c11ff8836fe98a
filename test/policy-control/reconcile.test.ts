// The policy reconciler on real pinned maps (pod.o's, no programs), read back
// with the kernel's own lookups: weir_ipcache4 and weir_policy4 are LPM tries,
// so BpfMap lookups do the same longest-prefix match the datapath does. The
// kernel's answers are compared with the pure model (control/policy/evaluate.ts)
// over a matrix of probes, port-range edges ±1 included.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatapathMaps } from '../../control/datapath/maps.js';
import { PolicyFlags } from '../../control/datapath/types.gen.js';
import { compilePolicy } from '../../control/policy/compile.js';
import { verdict } from '../../control/policy/evaluate.js';
import { MemoryIdentityAllocator } from '../../control/policy/identity.js';
import { encodePolicy } from '../../control/policy/maps.js';
import { PolicyReconciler } from '../../control/policy/reconciler.js';
import { ID_WORLD, type CompiledPolicy, type PolicyInput } from '../../control/policy/types.js';
import { requireRoot } from '../lib/netns.js';
import { cleanupPins, ipNum, namespace, netpol, node, pinnedMaps, pod } from './harness.js';

const skip = requireRoot('policy reconciler on pinned maps');
afterAll(cleanupPins);

const TCP = 6;
const UDP = 17;

/** What the kernel says for a new flow of `ep` with `peer` (the datapath's two lookups). */
function kernelVerdict(m: DatapathMaps, ep: number, dir: 'ingress' | 'egress', peer: string, proto: number, port: number) {
  const identity = m.ipcache4.get({ prefixlen: 32, addr: ipNum(peer) })?.identity ?? ID_WORLD;
  const pol = m.epPolicy.get(ep);
  const id = pol ? (dir === 'ingress' ? pol.ingress_id : pol.egress_id) : 0;
  if (!id) return { allowed: true, match: 'not-isolated', identity };
  const own = m.policy4.get({ prefixlen: 96, policy_id: id, identity, proto, pad: 0, port });
  if (own) return { allowed: true, match: own.flags & PolicyFlags.POLICY_F_L4 ? 'l3-l4' : 'l3', identity };
  const any = m.policy4.get({ prefixlen: 96, policy_id: id, identity: 0, proto, pad: 0, port });
  if (any) return { allowed: true, match: any.flags & PolicyFlags.POLICY_F_L4 ? 'l4' : 'all', identity };
  return { allowed: false, match: 'none', identity };
}

const EP_WEB = 300;
const EP_CLIENT = 301;
const PEERS = ['10.244.1.10', '10.244.1.11', '10.244.2.20', '10.244.2.21', '192.168.50.1', '192.168.50.2', '10.244.1.1', '172.16.0.9', '172.16.5.9', '172.16.255.255', '8.8.8.8'];
const PORTS: Array<[number, number]> = [
  [TCP, 7999],
  [TCP, 8000],
  [TCP, 8001],
  [TCP, 8050],
  [TCP, 8099],
  [TCP, 8100],
  [TCP, 8101],
  [TCP, 9000],
  [TCP, 32767],
  [TCP, 32768],
  [TCP, 40000],
  [TCP, 40001],
  [UDP, 52],
  [UDP, 53],
  [UDP, 54],
  [TCP, 53],
];

function input(o: { webLabels?: Record<string, string>; ranges?: Array<[number, number]>; extraPods?: PolicyInput['pods'] } = {}): PolicyInput {
  const ranges = o.ranges ?? [
    [8000, 8100],
    [32768, 40000],
  ];
  return {
    namespaces: [namespace('a', { team: 'a' }), namespace('b', { team: 'b' })],
    pods: [
      ...(o.extraPods ?? []),
      pod('a', 'web', '10.244.1.10', o.webLabels ?? { app: 'web' }),
      pod('a', 'client', '10.244.1.11', { app: 'client' }),
      pod('b', 'client', '10.244.2.20', { app: 'client' }),
      pod('b', 'db', '10.244.2.21', { app: 'db' }),
    ],
    nodes: [node('n1', '192.168.50.1'), node('n2', '192.168.50.2')],
    nodeName: 'n1',
    hostAddresses: ['10.244.1.1'],
    endpoints: [
      { endpointId: EP_WEB, ip: '10.244.1.10', podNamespace: 'a', podName: 'web' },
      { endpointId: EP_CLIENT, ip: '10.244.1.11', podNamespace: 'a', podName: 'client' },
    ],
    policies: [
      netpol('a', 'web-in', {
        podSelector: { matchLabels: { app: 'web' } },
        policyTypes: ['Ingress'],
        ingress: [
          { from: [{ podSelector: { matchLabels: { app: 'client' } }, namespaceSelector: {} }], ports: ranges.map(([port, endPort]) => ({ protocol: 'TCP', port, endPort })) },
          { from: [{ podSelector: {} }], ports: [{ protocol: 'UDP', port: 53 }] },
          { from: [{ ipBlock: { cidr: '172.16.0.0/16', except: ['172.16.5.0/24'] } }] },
        ],
      }),
      netpol('a', 'client-out', {
        podSelector: { matchLabels: { app: 'client' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: { matchLabels: { team: 'b' } } }], ports: [{ protocol: 'TCP', port: 9000 }] }, { ports: [{ protocol: 'UDP', port: 53 }] }],
      }),
    ],
  };
}

/** Every probe: the kernel's verdict equals the model's, and the whole matrix is returned. */
function compareAll(m: DatapathMaps, c: CompiledPolicy): Map<string, boolean> {
  const out = new Map<string, boolean>();
  const mismatches: string[] = [];
  for (const ep of [EP_WEB, EP_CLIENT])
    for (const dir of ['ingress', 'egress'] as const)
      for (const peer of PEERS)
        for (const [proto, port] of PORTS) {
          const want = verdict(c, ep, dir, peer, proto, port);
          const got = kernelVerdict(m, ep, dir, peer, proto, port);
          const k = `${ep} ${dir} ${peer} ${proto}:${port}`;
          out.set(k, got.allowed);
          if (got.allowed !== want.allowed || got.match !== want.match || got.identity !== want.identity) mismatches.push(`${k}: kernel ${JSON.stringify(got)} model ${JSON.stringify(want)}`);
        }
  expect(mismatches).toEqual([]);
  return out;
}

describe.skipIf(skip)('policy reconciler on pinned maps', () => {
  let pins: Awaited<ReturnType<typeof pinnedMaps>>;
  beforeAll(async () => {
    pins = await pinnedMaps('rec');
  });

  it('programs a compiled policy; kernel LPM lookups agree with the model, port-range edges ±1 included', () => {
    const alloc = new MemoryIdentityAllocator();
    const c = compilePolicy(input(), alloc);
    expect(c.problems).toEqual([]);
    const r = new PolicyReconciler(pins.maps);
    const res = r.sync(encodePolicy(c));
    expect(res.changed).toBe(true);
    expect(pins.maps.policyGen.get(0)?.gen).toBe(res.gen);
    const matrix = compareAll(pins.maps, c);
    // Spot checks, so a model and a kernel both wrong the same way still fail.
    const a = (k: string) => matrix.get(k);
    expect(a(`${EP_WEB} ingress 10.244.2.20 6:7999`)).toBe(false);
    expect(a(`${EP_WEB} ingress 10.244.2.20 6:8000`)).toBe(true);
    expect(a(`${EP_WEB} ingress 10.244.2.20 6:8100`)).toBe(true);
    expect(a(`${EP_WEB} ingress 10.244.2.20 6:8101`)).toBe(false);
    expect(a(`${EP_WEB} ingress 10.244.1.11 6:32767`)).toBe(false);
    expect(a(`${EP_WEB} ingress 10.244.1.11 6:32768`)).toBe(true);
    expect(a(`${EP_WEB} ingress 10.244.1.11 6:40000`)).toBe(true);
    expect(a(`${EP_WEB} ingress 10.244.1.11 6:40001`)).toBe(false);
    expect(a(`${EP_WEB} ingress 10.244.2.21 6:8050`)).toBe(false); // app=db
    expect(a(`${EP_WEB} ingress 10.244.2.21 17:53`)).toBe(false); // podSelector {} is namespace a only
    expect(a(`${EP_WEB} ingress 10.244.1.11 17:53`)).toBe(true);
    expect(a(`${EP_WEB} ingress 172.16.0.9 6:9000`)).toBe(true);
    expect(a(`${EP_WEB} ingress 172.16.5.9 6:9000`)).toBe(false); // except
    expect(a(`${EP_WEB} ingress 192.168.50.1 6:9000`)).toBe(true);
    expect(a(`${EP_WEB} ingress 10.244.1.1 6:9000`)).toBe(true); // the gateway is host
    expect(a(`${EP_WEB} ingress 192.168.50.2 6:9000`)).toBe(false); // remote node
    expect(a(`${EP_WEB} egress 8.8.8.8 6:9000`)).toBe(true); // not isolated for egress
    expect(a(`${EP_CLIENT} egress 10.244.2.21 6:9000`)).toBe(true);
    expect(a(`${EP_CLIENT} egress 10.244.1.10 6:9000`)).toBe(false);
    expect(a(`${EP_CLIENT} egress 8.8.8.8 17:53`)).toBe(true);
    expect(a(`${EP_CLIENT} egress 8.8.8.8 6:53`)).toBe(false);

    // The same desired state again: nothing written, gen unchanged.
    const again = r.sync(encodePolicy(compilePolicy(input(), alloc)));
    expect(again.changed).toBe(false);
    expect(again.gen).toBe(res.gen);
  });

  it('a restarted reconciler on the same pins writes nothing and renumbers nothing', () => {
    const alloc = new MemoryIdentityAllocator();
    const c = compilePolicy(input(), alloc);
    const r1 = new PolicyReconciler(pins.maps);
    r1.sync(encodePolicy(c));
    const before = { ep: pins.maps.epPolicy.dump(), ipcache: pins.maps.ipcache4.dump(), policy: pins.maps.policy4.dump().length, gen: pins.maps.policyGen.get(0)!.gen };
    const maps2 = pins.reopen();
    const r2 = new PolicyReconciler(maps2);
    const res = r2.sync(encodePolicy(c));
    expect(res).toMatchObject({ changed: false, ipcacheSet: 0, ipcacheDeleted: 0, policyEntriesSet: 0, policyEntriesDeleted: 0, epPolicySet: 0, epPolicyDeleted: 0 });
    expect(maps2.epPolicy.dump()).toEqual(before.ep);
    expect(maps2.ipcache4.dump()).toEqual(before.ipcache);
    expect(maps2.policy4.dump().length).toBe(before.policy);
    expect(maps2.policyGen.get(0)!.gen).toBe(before.gen);
  });

  it('a policy change bumps the gen; the kernel follows the new ranges at their edges', () => {
    const alloc = new MemoryIdentityAllocator();
    const r = new PolicyReconciler(pins.maps);
    r.sync(encodePolicy(compilePolicy(input(), alloc)));
    const gen0 = pins.maps.policyGen.get(0)!.gen;
    const c = compilePolicy(input({ ranges: [[8050, 8060], [1, 65535]] }), alloc);
    const res = r.sync(encodePolicy(c));
    expect(res.changed).toBe(true);
    expect(pins.maps.policyGen.get(0)!.gen).toBe(gen0 + 1);
    compareAll(pins.maps, c);
    expect(kernelVerdict(pins.maps, EP_WEB, 'ingress', '10.244.2.20', TCP, 65535).allowed).toBe(true);
    expect(kernelVerdict(pins.maps, EP_WEB, 'ingress', '10.244.2.20', TCP, 1).allowed).toBe(true);
    expect(kernelVerdict(pins.maps, EP_WEB, 'ingress', '10.244.2.20', TCP, 0).allowed).toBe(false);
    // Old ids are gone: only what ep_policy names is in weir_policy4.
    const named = new Set(pins.maps.epPolicy.dump().flatMap(([, v]) => [v.ingress_id, v.egress_id]));
    for (const [k] of pins.maps.policy4.dump()) expect(named.has(k.policy_id)).toBe(true);

    // A label change: web loses app=web, so no policy selects it; its ep_policy entry goes.
    const c2 = compilePolicy(input({ webLabels: { app: 'web2' } }), alloc);
    r.sync(encodePolicy(c2));
    expect(pins.maps.epPolicy.get(EP_WEB)).toBeUndefined();
    expect(pins.maps.policyGen.get(0)!.gen).toBe(gen0 + 2);
    compareAll(pins.maps, c2);
  });

  it('odd range edges: every single-port boundary of a cover is exact in the kernel', () => {
    const alloc = new MemoryIdentityAllocator();
    const r = new PolicyReconciler(pins.maps);
    const ranges: Array<[number, number]> = [
      [1, 1],
      [3, 5],
      [1023, 1025],
      [4097, 12287],
      [65534, 65535],
    ];
    const c = compilePolicy(input({ ranges }), alloc);
    r.sync(encodePolicy(c));
    for (const [lo, hi] of ranges)
      for (const p of [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1]) {
        if (p < 0 || p > 65535) continue;
        const inside = ranges.some(([a, b]) => p >= a && p <= b);
        expect(kernelVerdict(pins.maps, EP_WEB, 'ingress', '10.244.2.20', TCP, p).allowed, `port ${p}`).toBe(inside);
        expect(verdict(c, EP_WEB, 'ingress', '10.244.2.20', TCP, p).allowed, `model port ${p}`).toBe(inside);
      }
  });
});
