// Node tier: real veths between two namespaces this test creates, programs
// from maps.o attached through the addon (tc and XDP, into the namespaces by
// path), real ping and UDP traffic counted in maps. Everything goes with the
// namespaces in afterAll, also when a test fails.
import { mkdirSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Collection, loadCollectionSpec } from '../../loader/index.js';
import { BpfMap, tc, xdp } from '../../native/index.js';
import { fixture } from '../lib/fixtures.js';
import { NetnsLab, VethPair, requireNetns } from '../lib/netns.js';

const skip = requireNetns('tc/XDP attach in netns', ['ping']);
const pinRoot = `/sys/fs/bpf/weirtest-attach-${process.pid}`;
const XDP_DROP = 1;
const ICMP = 1;
const UDP = 17;

const packets = (m: BpfMap, proto: number, dir: number) =>
  Number(m.lookup(Buffer.from([proto, dir, 0, 0]))?.readBigUInt64LE(0) ?? 0n);

describe.skipIf(skip)('attach to veths in namespaces', () => {
  const lab = new NetnsLab();
  let nsA: string;
  let nsB: string;
  let pair: VethPair;
  let ingress: Collection; // XDP on B's veth, counts with dir 0
  let egress: Collection; // tc egress on A's veth, counts with dir 1
  const colls: Collection[] = [];

  beforeAll(async () => {
    mkdirSync(pinRoot, { recursive: true });
    nsA = await lab.createNetns('a');
    nsB = await lab.createNetns('b');
    pair = await lab.veth({
      a: { ns: nsA, name: 'veth-a', addr: '10.99.0.1/24' },
      b: { ns: nsB, name: 'veth-b', addr: '10.99.0.2/24' },
    });
    ingress = await loadCollectionSpec(fixture('maps')).load({ pinRoot, constants: { count_dir: 0 } });
    egress = await loadCollectionSpec(fixture('maps')).load({ pinRoot, constants: { count_dir: 1 } });
    colls.push(ingress, egress);
  });

  afterAll(async () => {
    for (const c of colls) c.close();
    await lab.cleanup();
    rmSync(pinRoot, { recursive: true, force: true });
  });

  it('resolves interface indexes inside a namespace', async () => {
    const { ifindex } = await import('../../native/index.js');
    expect(ifindex('veth-b', lab.nsPath(nsB))).toBe(pair.b.ifindex);
    expect(() => ifindex('veth-b', lab.nsPath(nsA))).toThrow(/veth-b/);
  });

  it('attaches XDP (native) and tc egress, and the kernel reports them', () => {
    xdp.attach({ ifindex: pair.b.ifindex, prog: ingress.programs.xdp_count, netns: lab.nsPath(nsB) });
    const q = xdp.query({ ifindex: pair.b.ifindex, netns: lab.nsPath(nsB) });
    expect(q).toEqual({ progId: ingress.programs.xdp_count.info.id, mode: 'native' });

    const h = tc.attach({ ifindex: pair.a.ifindex, attachPoint: 'egress', prog: egress.programs.tc_count, priority: 1, handle: 1, netns: lab.nsPath(nsA) });
    expect(h).toEqual({ priority: 1, handle: 1 });
    expect(tc.query({ ifindex: pair.a.ifindex, attachPoint: 'egress', priority: 1, handle: 1, netns: lab.nsPath(nsA) })).toEqual({
      progId: egress.programs.tc_count.info.id,
    });
  });

  it('counts real ICMP and UDP traffic on both hooks', async () => {
    const ping = await lab.ping(nsA, '10.99.0.2', { count: 3, intervalSec: 0.2, timeoutSec: 10 });
    expect(ping.received).toBe(3);
    // Echo requests leave A through tc egress and arrive at B through XDP.
    expect(packets(egress.maps.proto_stats, ICMP, 1)).toBeGreaterThanOrEqual(3);
    expect(packets(ingress.maps.proto_stats, ICMP, 0)).toBeGreaterThanOrEqual(3);

    const rx = await lab.udpReceiver(nsB, { port: 9999 });
    await lab.sendUdp(nsA, { addr: '10.99.0.2', port: 9999, count: 5, payload: 'weir' });
    expect(await rx.waitFor(5, 10_000)).toHaveLength(5);
    await rx.stop();
    expect(packets(ingress.maps.proto_stats, UDP, 0)).toBe(5);
    expect(packets(egress.maps.proto_stats, UDP, 1)).toBe(5);
    // ARP went through too, on the non-IP path (.bss counter).
    expect(ingress.maps['.bss'].lookup(Buffer.alloc(4))!.readBigUInt64LE(0)).toBeGreaterThan(0n);
  });

  it('replaces the XDP program atomically: a DROP program stops traffic, detach restores it', async () => {
    const dropper = await loadCollectionSpec(fixture('maps')).load({ pinRoot, constants: { xdp_verdict: XDP_DROP } });
    colls.push(dropper);
    // Without replace an attached program is not silently swapped.
    expect(() => xdp.attach({ ifindex: pair.b.ifindex, prog: dropper.programs.xdp_count, netns: lab.nsPath(nsB) })).toThrow();
    xdp.attach({ ifindex: pair.b.ifindex, prog: dropper.programs.xdp_count, replace: true, netns: lab.nsPath(nsB) });
    expect(xdp.query({ ifindex: pair.b.ifindex, netns: lab.nsPath(nsB) })?.progId).toBe(dropper.programs.xdp_count.info.id);

    const dropped = await lab.ping(nsA, '10.99.0.2', { count: 2, intervalSec: 0.2, timeoutSec: 3 });
    expect(dropped.received).toBe(0);
    expect(dropper.maps.verdicts.lookup(Buffer.from([XDP_DROP, 0, 0, 0]))!.readBigUInt64LE(0)).toBeGreaterThanOrEqual(2n);

    xdp.detach({ ifindex: pair.b.ifindex, netns: lab.nsPath(nsB) });
    expect(xdp.query({ ifindex: pair.b.ifindex, netns: lab.nsPath(nsB) })).toBeUndefined();
    // Neighbour entries may have gone stale while dropping; allow a resolve.
    const back = await lab.ping(nsA, '10.99.0.2', { count: 2, intervalSec: 0.2, timeoutSec: 10 });
    expect(back.received).toBe(2);
  });

  it('detaches tc and leaves no filter behind', async () => {
    const before = packets(egress.maps.proto_stats, ICMP, 1);
    tc.detach({ ifindex: pair.a.ifindex, attachPoint: 'egress', priority: 1, handle: 1, netns: lab.nsPath(nsA) });
    expect(tc.query({ ifindex: pair.a.ifindex, attachPoint: 'egress', priority: 1, handle: 1, netns: lab.nsPath(nsA) })).toBeUndefined();
    await lab.ping(nsA, '10.99.0.2', { count: 1, timeoutSec: 5 });
    expect(packets(egress.maps.proto_stats, ICMP, 1)).toBe(before);
    tc.destroyHook({ ifindex: pair.a.ifindex, netns: lab.nsPath(nsA) });
    const qdisc = await lab.execOk(nsA, 'tc', ['qdisc', 'show', 'dev', 'veth-a']);
    expect(qdisc.stdout).not.toContain('clsact');
  });
});
