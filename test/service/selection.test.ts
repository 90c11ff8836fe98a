// Backend choice in the real pod.o: session affinity (sticks within the
// timeout, expires after it), terminating-only fallback, Maglev consistency,
// and the random choice's distribution (chi-square).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ipToNumber } from '../lib/packet.js';
import { requireRoot } from '../lib/netns.js';
import { maglevTable } from '../../control/service/maglev.js';
import {
  LbAlgorithm, Lb, SvcFlags, TCP, loadLb, setBackend, setEndpoint, setMaglev, setService, tcpPkt, tupleOf,
} from './harness.js';
import { flowHash } from './flowhash.js';

const skip = requireRoot('BPF_PROG_TEST_RUN on build/bpf/pod.o');
const VIP = '10.96.0.20';
const M = 16381; // MAGLEV_M default (the inner map template's size)
const backends = [
  { id: 21, addr: '10.244.1.21', port: 8080 },
  { id: 22, addr: '10.244.1.22', port: 8080 },
  { id: 23, addr: '10.244.1.23', port: 8080 },
  { id: 24, addr: '10.244.1.24', port: 8080 },
];
const byAddr = new Map(backends.map((b) => [b.addr, b.id]));
const identity = (b: (typeof backends)[number]) => `${b.addr}:${b.port}/tcp`;

describe.skipIf(skip)('service datapath: backend selection', () => {
  let lb: Lb;
  beforeEach(async () => {
    lb = await loadLb('h1-sel');
    for (const b of backends) {
      setBackend(lb.maps, b);
      setEndpoint(lb.maps, b.addr);
    }
  });
  afterEach(() => lb.close());

  const pick = async (src: string, sport: number) => {
    // from_pod drops sources that are not the veth's endpoint (anti-spoofing): the client is a pod on this veth.
    if (!lb.maps.ep4.get({ addr: ipToNumber(src) })) setEndpoint(lb.maps, src);
    return byAddr.get(tupleOf((await lb.fromPod(tcpPkt({ src, dst: VIP, sport, dport: 80 }, ['SYN']))).p).dst);
  };

  it('session affinity: a client sticks to its backend within the timeout, and picks anew after it', async () => {
    setService(lb.maps, { id: 5, addr: VIP, port: 80, backends: [21, 22, 23], flags: SvcFlags.SVC_F_CLUSTERIP | SvcFlags.SVC_F_AFFINITY, affinityTimeout: 1 });
    const first = await pick('10.244.1.50', 30000);
    for (let i = 1; i <= 20; i++) expect(await pick('10.244.1.50', 30000 + i)).toBe(first);
    const aff = lb.maps.affinity4.get({ client: ipToNumber('10.244.1.50'), svc_id: 5 });
    expect(aff!.backend_id).toBe(first);

    // Only 24 is left in the slots: the client still sticks to its backend,
    // another client gets 24.
    setService(lb.maps, { id: 5, addr: VIP, port: 80, backends: [24], flags: SvcFlags.SVC_F_CLUSTERIP | SvcFlags.SVC_F_AFFINITY, affinityTimeout: 1 });
    expect(await pick('10.244.1.50', 31000)).toBe(first);
    expect(await pick('10.244.1.51', 31000)).toBe(24);

    // Expire: last used long ago (more than 1 s before now).
    lb.maps.affinity4.set({ client: ipToNumber('10.244.1.50'), svc_id: 5 }, { ...aff!, last_used: 0n });
    expect(await pick('10.244.1.50', 31001)).toBe(24);
    expect(lb.maps.affinity4.get({ client: ipToNumber('10.244.1.50'), svc_id: 5 })!.backend_id).toBe(24);
  });

  it('without affinity the same client spreads over backends', async () => {
    setService(lb.maps, { id: 5, addr: VIP, port: 80, backends: [21, 22, 23] });
    const seen = new Set<number | undefined>();
    for (let i = 0; i < 60; i++) seen.add(await pick('10.244.1.50', 32000 + i));
    expect(seen).toEqual(new Set([21, 22, 23]));
  });

  it('terminating-only fallback: a service whose slots hold only terminating backends is still served', async () => {
    setBackend(lb.maps, { ...backends[0], terminating: true });
    setBackend(lb.maps, { ...backends[1], terminating: true });
    setService(lb.maps, { id: 5, addr: VIP, port: 80, backends: [21, 22] });
    const got = new Set<number | undefined>();
    for (let i = 0; i < 40; i++) got.add(await pick('10.244.1.60', 33000 + i));
    expect(got).toEqual(new Set([21, 22]));
  });

  it('Maglev: every flow lands on table[hash % M]; adding a backend keeps flows off it where they were', async () => {
    const before = backends.slice(0, 3);
    const t1 = Array.from(maglevTable(before.map(identity), M), (i) => before[i].id);
    const t2 = Array.from(maglevTable(backends.map(identity), M), (i) => backends[i].id);
    setService(lb.maps, { id: 6, addr: VIP, port: 80, backends: before.map((b) => b.id), algorithm: LbAlgorithm.LB_ALG_MAGLEV });
    setMaglev(lb.maps, 6, t1);

    const N = 600;
    const flows = Array.from({ length: N }, (_, i) => ({ src: `10.244.${1 + (i % 7)}.${10 + (i % 200)}`, sport: 20000 + i }));
    const first: Array<number | undefined> = [];
    for (const f of flows) {
      const got = await pick(f.src, f.sport);
      expect(got).toBe(t1[flowHash(ipToNumber(f.src), ipToNumber(VIP), f.sport, 80, TCP) % M]);
      first.push(got);
    }
    // Same tuples again as NEW flows (conntrack emptied), with a 4th backend added.
    for (const [k] of lb.maps.ct4.dump()) lb.maps.ct4.delete(k);
    setService(lb.maps, { id: 6, addr: VIP, port: 80, backends: backends.map((b) => b.id), algorithm: LbAlgorithm.LB_ALG_MAGLEV });
    setMaglev(lb.maps, 6, t2);
    let kept = 0;
    let toNew = 0;
    for (let i = 0; i < N; i++) {
      const f = flows[i];
      const got = await pick(f.src, f.sport);
      const idx = flowHash(ipToNumber(f.src), ipToNumber(VIP), f.sport, 80, TCP) % M;
      expect(got).toBe(t2[idx]);
      if (t1[idx] === t2[idx]) expect(got).toBe(first[i]); // the tuple keeps its backend
      if (got === first[i]) kept++;
      else if (got === 24) toNew++;
    }
    // ~1/4 of the flows move, nearly all of them to the new backend.
    expect(kept / N).toBeGreaterThan(0.6);
    expect((N - kept - toNew) / N).toBeLessThan(0.05);
  });

  it('random: 10k flows over 3 backends pass a chi-square test at p > 0.001', async () => {
    setService(lb.maps, { id: 5, addr: VIP, port: 80, backends: [21, 22, 23] });
    const counts = new Map<number, number>([[21, 0], [22, 0], [23, 0]]);
    const N = 10_000;
    for (let i = 0; i < N; i++) {
      const src = `10.244.${1 + (i >> 13)}.${2 + ((i >> 8) & 31)}`;
      const id = await pick(src, 1024 + (i & 0xff) + ((i >> 13) << 8));
      counts.set(id!, counts.get(id!)! + 1);
    }
    const expected = N / 3;
    const chi2 = [...counts.values()].reduce((s, o) => s + (o - expected) ** 2 / expected, 0);
    expect([...counts.values()].reduce((a, b) => a + b)).toBe(N);
    expect(chi2).toBeLessThan(13.82); // chi-square, 2 degrees of freedom, p = 0.001
  }, 120_000);
});
