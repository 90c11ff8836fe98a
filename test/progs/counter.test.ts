// Program tests: the maps.o fixture loaded for real and run with
// BPF_PROG_TEST_RUN on packets built in TypeScript. Asserts the verdict, the
// bytes that come out and the map state, as Cilium's bpf/tests do.
import { describe, expect, it } from 'vitest';
import { Collection, ConstValue, loadCollectionSpec } from '../../loader/index.js';
import { BpfMap, possibleCpus } from '../../native/index.js';
import { fixtureCollections } from '../lib/collections.js';
import { fixture } from '../lib/fixtures.js';
import { requireRoot } from '../lib/netns.js';
import { eth, verifyChecksums } from '../lib/packet.js';

const skip = requireRoot('BPF_PROG_TEST_RUN');
const pinRoot = `/sys/fs/bpf/weirtest-progs-${process.pid}`;
const XDP_DROP = 1;
const XDP_PASS = 2;
const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;

const MACS = { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' };
const udp = () =>
  eth(MACS).ipv4({ src: '10.244.1.2', dst: '10.96.0.10' }).udp({ sport: 40000, dport: 53 }).payload('weir-udp').build();
const tcpSyn = () =>
  eth(MACS).ipv4({ src: '10.244.1.2', dst: '10.96.0.1' }).tcp({ sport: 40001, dport: 443, flags: ['SYN'], seq: 1 }).build();

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const protoKey = (proto: number, dir: number) => Buffer.from([proto, dir, 0, 0]);
const stats = (m: BpfMap, proto: number, dir = 0) => {
  const v = m.lookup(protoKey(proto, dir));
  return v && { packets: Number(v.readBigUInt64LE(0)), bytes: Number(v.readBigUInt64LE(8)) };
};
const global64 = (c: Collection, sec: string) => c.maps[sec].lookup(u32(0))!.readBigUInt64LE(0);

describe.skipIf(skip)('maps.o under BPF_PROG_TEST_RUN', () => {
  const colls = fixtureCollections(pinRoot);
  const load = (constants?: Record<string, ConstValue>) => colls.load('maps', { constants });

  it('XDP: passes a UDP packet unchanged and counts it by protocol', async () => {
    const c = await load();
    const pkt = udp();
    const r = await c.programs.xdp_count.testRun({ data: pkt });
    expect(r.retval).toBe(XDP_PASS);
    expect(r.data.equals(pkt)).toBe(true);
    expect(verifyChecksums(r.data).ok).toBe(true);
    expect(stats(c.maps.proto_stats, 17)).toEqual({ packets: 1, bytes: pkt.length });
    expect(stats(c.maps.proto_stats, 6)).toBeUndefined();
    expect(c.maps.verdicts.lookup(u32(XDP_PASS))!.readBigUInt64LE(0)).toBe(1n);
    // .data started at 7 (its initialiser) and the subprogram bumped it.
    expect(global64(c, '.data')).toBe(8n);
    expect(global64(c, '.bss')).toBe(0n);
  });

  it('XDP: repeat runs the program N times', async () => {
    const c = await load();
    const r = await c.programs.xdp_count.testRun({ data: tcpSyn(), repeat: 50 });
    expect(r.retval).toBe(XDP_PASS);
    expect(stats(c.maps.proto_stats, 6)?.packets).toBe(50);
    // Per-CPU map: one 8-byte slot per possible CPU; the runs all land somewhere.
    const per = c.maps.percpu_hits.lookup(u32(0))!;
    expect(per.length).toBe(8 * possibleCpus());
    let sum = 0n;
    for (let i = 0; i < possibleCpus(); i++) sum += per.readBigUInt64LE(i * 8);
    expect(sum).toBe(50n);
  });

  it('XDP: non-IP, IPv6 and truncated frames take the non-IP path', async () => {
    const c = await load();
    const arp = eth({ ...MACS, type: 0x0806 }).payload(Buffer.alloc(28)).build();
    const v6 = eth(MACS).ipv6({ src: 'fd00::1', dst: 'fd00::2' }).udp({ sport: 1, dport: 2 }).build();
    const short = udp().subarray(0, 20); // Ethernet + 6 bytes of IPv4 header
    for (const data of [arp, v6, short]) {
      expect((await c.programs.xdp_count.testRun({ data })).retval).toBe(XDP_PASS);
    }
    expect(global64(c, '.bss')).toBe(3n);
    expect([...c.maps.proto_stats.keys()]).toHaveLength(0);
  });

  it('XDP: a VXLAN frame is counted as UDP with its full length', async () => {
    const c = await load();
    const inner = eth(MACS).ipv4({ src: '10.244.1.2', dst: '10.244.2.3' }).icmpv4({ type: 'echo-request', id: 1, seq: 1 });
    const pkt = eth(MACS)
      .ipv4({ src: '192.168.50.1', dst: '192.168.50.2' })
      .vxlan({ vni: 1 })
      .eth(MACS)
      .ipv4({ src: '10.244.1.2', dst: '10.244.2.3' })
      .icmpv4({ type: 'echo-request', id: 1, seq: 1 })
      .build();
    expect(pkt.length).toBe(inner.build().length + 50);
    await c.programs.xdp_count.testRun({ data: pkt });
    expect(stats(c.maps.proto_stats, 17)).toEqual({ packets: 1, bytes: pkt.length });
  });

  it('constants set before load change the verdict and the key', async () => {
    const c = await load({ xdp_verdict: XDP_DROP, count_dir: 1 });
    const r = await c.programs.xdp_count.testRun({ data: udp() });
    expect(r.retval).toBe(XDP_DROP);
    expect(stats(c.maps.proto_stats, 17, 1)?.packets).toBe(1);
    expect(stats(c.maps.proto_stats, 17, 0)).toBeUndefined();
    expect(c.maps.verdicts.lookup(u32(XDP_DROP))!.readBigUInt64LE(0)).toBe(1n);
    // .rodata is frozen: user space cannot change it after load.
    expect(() => c.maps['.rodata'].update(u32(0), Buffer.alloc(c.maps['.rodata'].info.valueSize))).toThrow(/EPERM|Operation not permitted/);
  });

  it('tc: counts skb->len and returns the configured action', async () => {
    const c = await load();
    const pkt = tcpSyn();
    const r = await c.programs.tc_count.testRun({ data: pkt });
    expect(r.retval).toBe(TC_ACT_OK);
    expect(r.data.equals(pkt)).toBe(true);
    expect(stats(c.maps.proto_stats, 6)).toEqual({ packets: 1, bytes: pkt.length });

    const shot = await load({ tc_verdict: TC_ACT_SHOT });
    expect((await shot.programs.tc_count.testRun({ data: pkt })).retval).toBe(TC_ACT_SHOT);
  });

  it('tc: reads through the map-in-map the loader filled from the static initialiser', async () => {
    const c = await load();
    const pkt = tcpSyn();
    // outer[1] = inner_a (from `.values = { [1] = &inner_a }`), inner_a[0] = 0.
    expect(c.maps.outer.lookup(u32(1))!.readUInt32LE(0)).toBe(c.maps.inner_a.info.id);
    expect((await c.programs.tc_inner.testRun({ data: pkt })).retval).toBe(0);
    c.maps.inner_a.update(u32(0), u32(7));
    expect((await c.programs.tc_inner.testRun({ data: pkt })).retval).toBe(7);

    // Swap in a map made at run time with the inner shape.
    const other = BpfMap.create({ type: 2, name: 'other_inner', keySize: 4, valueSize: 4, maxEntries: 8 });
    try {
      other.update(u32(0), u32(3));
      c.maps.outer.update(u32(1), u32(other.fd));
      expect((await c.programs.tc_inner.testRun({ data: pkt })).retval).toBe(3);
    } finally {
      other.close();
    }
    c.maps.outer.delete(u32(1));
    expect((await c.programs.tc_inner.testRun({ data: pkt })).retval).toBe(TC_ACT_SHOT);
  });

  it('the spec is editable before load: map sizes, and which programs load', async () => {
    const spec = loadCollectionSpec(fixture('maps'));
    spec.maps.proto_stats.maxEntries = 4096;
    spec.maps.lru_sizes.maxEntries = 77;
    const c = await spec.load({ pinRoot, programs: ['xdp_count'] });
    colls.keep(c);
    expect(c.maps.proto_stats.info.maxEntries).toBe(4096);
    expect(c.maps.lru_sizes.info.maxEntries).toBe(77);
    expect(Object.keys(c.programs)).toEqual(['xdp_count']);
    expect((await c.programs.xdp_count.testRun({ data: udp() })).retval).toBe(XDP_PASS);
    await expect(spec.load({ pinRoot, programs: ['nope'] })).rejects.toThrow(/no program named nope \(programs: xdp_count, tc_count, tc_inner\)/);
  });

  it('constants given to load() apply to that load only', async () => {
    const spec = loadCollectionSpec(fixture('maps'));
    const drop = await spec.load({ pinRoot, constants: { xdp_verdict: XDP_DROP } });
    colls.keep(drop);
    const plain = await spec.load({ pinRoot });
    colls.keep(plain);
    expect((await drop.programs.xdp_count.testRun({ data: udp() })).retval).toBe(XDP_DROP);
    expect((await plain.programs.xdp_count.testRun({ data: udp() })).retval).toBe(XDP_PASS);
  });

  it('the pinned map is shared by every load under the same root', async () => {
    const a = await load();
    const b = await load();
    expect(a.maps.pinned_counts.info.id).toBe(b.maps.pinned_counts.info.id);
    expect(a.maps.proto_stats.info.id).not.toBe(b.maps.proto_stats.info.id);
  });
});
