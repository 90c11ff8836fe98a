// Program tests for pod routing: pod.o / uplink.o loaded through
// loadDatapath and run with BPF_PROG_TEST_RUN. Each asserts the verdict and
// the exact bytes that come out (MAC rewrite, VXLAN headers, decap, ARP).
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadDatapath, type Datapath } from '../../control/datapath/programs.js';
import { reconcileTunnels } from '../../control/datapath/routes.js';
import { WeirReason, WeirDir, EndpointFlags } from '../../control/datapath/types.gen.js';
import { possibleCpus } from '../../native/index.js';
import { requireRoot } from '../lib/netns.js';
import { ETH_P_ARP, eth, ipToNumber, parseMac, parsePacket, verifyChecksums } from '../lib/packet.js';

const skip = requireRoot('BPF_PROG_TEST_RUN');
const pinRoot = `/sys/fs/bpf/h3-route-progs-${process.pid}`;
const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;

const NODE = {
  ip: '192.168.77.1',
  id: 1,
  podCidr: '10.244.1.0/24',
  clusterCidr: '10.244.0.0/16',
  gatewayIp: '10.244.1.1',
  uplinkIfindex: 7,
  uplinkMac: '02:aa:00:00:00:01',
};
const REMOTE = { ip: '192.168.77.2', mac: '02:aa:00:00:00:02', cidr: '10.244.2.0/24' };
const POD_A = { ip: '10.244.1.4', mac: '0a:00:00:00:01:04', hostMac: '0e:00:00:00:01:04', ifindex: 1 };
const POD_B = { ip: '10.244.1.5', mac: '0a:00:00:00:01:05', hostMac: '0e:00:00:00:01:05', ifindex: 42 };

const ep = (p: typeof POD_A, id: number) => ({
  ifindex: p.ifindex,
  endpoint_id: id,
  mac: parseMac(p.mac),
  node_mac: parseMac(p.hostMac),
  flags: 0,
  identity: 0,
});

/** A packet as the pod sends it: to its gateway's MAC (the host veth). */
const fromPodA = (dst: string, l4: 'tcp' | 'udp' | 'icmp' = 'tcp', sport = 40000) => {
  const b = eth({ src: POD_A.mac, dst: POD_A.hostMac }).ipv4({ src: POD_A.ip, dst, id: 7, df: true });
  if (l4 === 'udp') return b.udp({ sport, dport: 53 }).payload('weir-udp').build();
  if (l4 === 'icmp') return b.icmpv4({ type: 'echo-request', id: 9, seq: 1 }).payload('ping').build();
  return b.tcp({ sport, dport: 80, flags: ['SYN'], seq: 1 }).build();
};

/** A backend pod's reply to a flow another node SNATed to itself: to that node, a port of its SNAT range (61000-65535). */
const replyFromPodA = (dst: string, l4: 'tcp' | 'udp', dport: number) => {
  const b = eth({ src: POD_A.mac, dst: POD_A.hostMac }).ipv4({ src: POD_A.ip, dst, id: 8, df: true });
  if (l4 === 'udp') return b.udp({ sport: 8080, dport }).payload('weir-reply').build();
  return b.tcp({ sport: 8080, dport, flags: ['SYN', 'ACK'], seq: 5, ack: 2 }).build();
};

function arpRequest(o: { senderMac: string; senderIp: string; targetIp: string; op?: number }): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0);
  a.writeUInt16BE(0x0800, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(o.op ?? 1, 6);
  parseMac(o.senderMac).copy(a, 8);
  a.writeUInt32BE(ipToNumber(o.senderIp), 14);
  a.writeUInt32BE(ipToNumber(o.targetIp), 24);
  return eth({ src: o.senderMac, dst: 'ff:ff:ff:ff:ff:ff', type: ETH_P_ARP }).payload(a).build();
}

function metric(dp: Datapath, reason: number, dir: number, endpointId = 0): bigint {
  const k = Buffer.alloc(8);
  k.writeUInt32LE(endpointId, 0);
  k[4] = reason;
  k[5] = dir;
  const v = dp.maps.metrics.lookup(k);
  if (!v) return 0n;
  let n = 0n;
  const stride = v.length / possibleCpus();
  for (let c = 0; c < possibleCpus(); c++) n += v.readBigUInt64LE(c * stride);
  return n;
}

describe.skipIf(skip)('routing programs under BPF_PROG_TEST_RUN', () => {
  let dp: Datapath;

  beforeAll(async () => {
    dp = await loadDatapath({ pinRoot, node: NODE });
  });
  afterAll(() => {
    dp?.close();
    rmSync(pinRoot, { recursive: true, force: true });
  });
  beforeEach(() => {
    for (const [k] of dp.maps.ep4.dump()) dp.maps.ep4.delete(k);
    for (const [k] of dp.maps.tunnel4.dump()) dp.maps.tunnel4.delete(k);
    dp.maps.ep4.set({ addr: ipToNumber(POD_A.ip) }, ep(POD_A, 104));
    dp.maps.ep4.set({ addr: ipToNumber(POD_B.ip) }, ep(POD_B, 105));
    dp.maps.tunnel4.set(
      { prefixlen: 24, addr: ipToNumber('10.244.2.0') },
      { node_addr: ipToNumber(REMOTE.ip), node_id: 2, node_mac: parseMac(REMOTE.mac), vtep_mac: Buffer.alloc(6) },
    );
  });

  /** from_pod on `pkt` must VXLAN it to REMOTE with exact outer headers (VNI 1, UDP 8472, checksum 0, flow-hash source port). */
  const expectVxlanToRemote = async (pkt: Buffer, what = 'vxlan') => {
    const r = await dp.programs.fromPod.testRun({ data: pkt });
    expect(r.retval, what).toBe(TC_ACT_REDIRECT);
    expect(r.data.length).toBe(pkt.length + 50);
    const out = parsePacket(r.data);
    expect(out.eth).toMatchObject({ dst: REMOTE.mac, src: NODE.uplinkMac, type: 0x0800 });
    expect(out.ipv4).toMatchObject({ src: NODE.ip, dst: REMOTE.ip, protocol: 17, ttl: 64, ihl: 5, totalLength: pkt.length - 14 + 50, mf: false, fragOffset: 0 });
    expect(out.udp).toMatchObject({ dport: 8472, checksum: 0, length: pkt.length - 14 + 30 });
    expect(out.udp!.sport).toBeGreaterThanOrEqual(32768);
    expect(out.udp!.sport).toBeLessThan(61000);
    expect(out.vxlan).toMatchObject({ vniValid: true, vni: 1, flags: 0x08, reserved1: 0, reserved2: 0 });
    return { r, out };
  };

  it('same node: rewrites the MACs to what the destination pod expects and redirects to its veth peer', async () => {
    for (const l4 of ['tcp', 'udp', 'icmp'] as const) {
      const pkt = fromPodA(POD_B.ip, l4);
      const r = await dp.programs.fromPod.testRun({ data: pkt });
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      const out = parsePacket(r.data);
      expect(out.eth).toMatchObject({ dst: POD_B.mac, src: POD_B.hostMac, type: 0x0800 });
      // Only the MACs change: the IP packet is delivered as the pod sent it.
      expect(r.data.subarray(12).equals(pkt.subarray(12))).toBe(true);
      expect(verifyChecksums(r.data).ok).toBe(true);
    }
    expect(metric(dp, WeirReason.REASON_FORWARDED, WeirDir.DIR_INGRESS, 105)).toBeGreaterThanOrEqual(3n);
  });

  it('another node: VXLAN to the tunnel entry with exact outer headers and the inner packet unchanged', async () => {
    const pkt = fromPodA('10.244.2.7', 'udp');
    const { r, out } = await expectVxlanToRemote(pkt);
    // Inner frame: to the remote vtep (its uplink MAC when no vtep MAC is known), from ours.
    expect(out.inner!.eth).toMatchObject({ dst: REMOTE.mac, src: NODE.uplinkMac, type: 0x0800 });
    expect(r.data.subarray(64).equals(pkt.subarray(14))).toBe(true);
    const sums = verifyChecksums(r.data);
    expect(sums.ok).toBe(true);
    expect(sums.checked.length).toBeGreaterThanOrEqual(2); // outer IPv4 and inner IPv4 at least
  });

  it('VXLAN to a Linux/flannel vtep puts its MAC in the inner frame', async () => {
    const vtep = '6e:11:22:33:44:55';
    dp.maps.tunnel4.set(
      { prefixlen: 24, addr: ipToNumber('10.244.3.0') },
      { node_addr: ipToNumber('192.168.77.3'), node_id: 3, node_mac: parseMac('02:aa:00:00:00:03'), vtep_mac: parseMac(vtep) },
    );
    const r = await dp.programs.fromPod.testRun({ data: fromPodA('10.244.3.9', 'tcp') });
    expect(r.retval).toBe(TC_ACT_REDIRECT);
    const out = parsePacket(r.data);
    expect(out.eth!.dst).toBe('02:aa:00:00:00:03');
    expect(out.ipv4!.dst).toBe('192.168.77.3');
    expect(out.inner!.eth!.dst).toBe(vtep);
    expect(out.inner!.tcp).toMatchObject({ sport: 40000, dport: 80 });
  });

  it('the UDP source port follows the flow: same flow same port, different flows spread', async () => {
    const sport = async (p: number) => parsePacket((await dp.programs.fromPod.testRun({ data: fromPodA('10.244.2.7', 'tcp', p) })).data).udp!.sport;
    const first = await sport(40000);
    expect(await sport(40000)).toBe(first);
    const ports = new Set<number>();
    for (let p = 41000; p < 41016; p++) ports.add(await sport(p));
    expect(ports.size).toBeGreaterThan(4);
  });

  it('no route: a cluster address without a tunnel, or a missing local pod, is dropped and counted', async () => {
    const before = metric(dp, WeirReason.REASON_NO_ROUTE, WeirDir.DIR_EGRESS);
    for (const dst of ['10.244.9.9', '10.244.1.200']) {
      const r = await dp.programs.fromPod.testRun({ data: fromPodA(dst) });
      expect(r.retval).toBe(TC_ACT_SHOT);
    }
    expect(metric(dp, WeirReason.REASON_NO_ROUTE, WeirDir.DIR_EGRESS) - before).toBe(2n);
  });

  it('the gateway, the node and the outside go to the node stack unchanged', async () => {
    dp.maps.ep4.set({ addr: ipToNumber('10.244.1.250') }, { ...ep(POD_B, 0), flags: EndpointFlags.EP_F_HOST });
    for (const dst of [NODE.gatewayIp, NODE.ip, '198.51.100.7', '10.244.1.250']) {
      const pkt = fromPodA(dst, 'icmp');
      const r = await dp.programs.fromPod.testRun({ data: pkt });
      expect(r.retval, dst).toBe(TC_ACT_OK);
      expect(r.data.equals(pkt), dst).toBe(true);
    }
  });

  it("a reply to another node's NodePort SNAT (its address, port 61000-65535) with its /32 entry: VXLAN to that node, exact outer headers, unmasqueraded", async () => {
    dp.maps.tunnel4.set(
      { prefixlen: 32, addr: ipToNumber(REMOTE.ip) },
      { node_addr: ipToNumber(REMOTE.ip), node_id: 2, node_mac: parseMac(REMOTE.mac), vtep_mac: Buffer.alloc(6) },
    );
    const before = metric(dp, WeirReason.REASON_FORWARDED, WeirDir.DIR_EGRESS);
    const cases = [['tcp', 61000], ['udp', 62164], ['tcp', 65535]] as const;
    for (const [l4, dport] of cases) {
      const pkt = replyFromPodA(REMOTE.ip, l4, dport);
      const { r, out } = await expectVxlanToRemote(pkt, `${l4} ${dport}`);
      expect(out.inner!.eth).toMatchObject({ dst: REMOTE.mac, src: NODE.uplinkMac, type: 0x0800 });
      // The pod's source address and port are kept: no masquerade on the way.
      expect(out.inner!.ipv4).toMatchObject({ src: POD_A.ip, dst: REMOTE.ip });
      expect(r.data.subarray(64).equals(pkt.subarray(14))).toBe(true);
      expect(verifyChecksums(r.data).ok).toBe(true);
    }
    expect(metric(dp, WeirReason.REASON_FORWARDED, WeirDir.DIR_EGRESS) - before).toBe(BigInt(cases.length));
  });

  it("another node's address otherwise goes to the node stack unchanged: no /32 entry, a port below the SNAT range, ICMP, our own address", async () => {
    const stack = async (pkt: Buffer, what: string) => {
      const r = await dp.programs.fromPod.testRun({ data: pkt });
      expect(r.retval, what).toBe(TC_ACT_OK);
      expect(r.data.equals(pkt), what).toBe(true);
    };
    // The remote pod CIDR entry (beforeEach) does not cover the node's address.
    await stack(replyFromPodA(REMOTE.ip, 'tcp', 62000), 'no /32 entry');
    dp.maps.tunnel4.set(
      { prefixlen: 32, addr: ipToNumber(REMOTE.ip) },
      { node_addr: ipToNumber(REMOTE.ip), node_id: 2, node_mac: parseMac(REMOTE.mac), vtep_mac: Buffer.alloc(6) },
    );
    // A pod's own flows to that node (a NodePort there, ssh, ...) keep the masquerade path.
    await stack(replyFromPodA(REMOTE.ip, 'tcp', 60999), 'port 60999');
    await stack(replyFromPodA(REMOTE.ip, 'udp', 30080), 'udp to a NodePort');
    await stack(fromPodA(REMOTE.ip, 'tcp'), 'tcp :80');
    await stack(fromPodA(REMOTE.ip, 'icmp'), 'ping');
    // A stale entry for our own address never sends our pods' packets away.
    dp.maps.tunnel4.set(
      { prefixlen: 32, addr: ipToNumber(NODE.ip) },
      { node_addr: ipToNumber(REMOTE.ip), node_id: 2, node_mac: parseMac(REMOTE.mac), vtep_mac: Buffer.alloc(6) },
    );
    await stack(replyFromPodA(NODE.ip, 'udp', 62000), 'own address');
  });

  it("decap: VXLAN whose inner destination is this node's own address goes to the node stack, inner packet intact", async () => {
    for (const l4 of ['tcp', 'udp', 'icmp'] as const) {
      const b = eth({ src: REMOTE.mac, dst: NODE.uplinkMac }).ipv4({ src: '10.244.2.7', dst: NODE.ip, id: 4, df: true });
      const inner = (l4 === 'tcp'
        ? b.tcp({ sport: 8080, dport: 61234, flags: ['SYN', 'ACK'], seq: 9, ack: 2 })
        : l4 === 'udp'
          ? b.udp({ sport: 8080, dport: 61234 }).payload('reply')
          : b.icmpv4({ type: 'echo-request', id: 5, seq: 2 }).payload('ping')
      ).build();
      const pkt = eth({ src: REMOTE.mac, dst: NODE.uplinkMac })
        .ipv4({ src: REMOTE.ip, dst: NODE.ip, id: 1 })
        .vxlan({ vni: 1, sport: 45678, udpZeroChecksum: true })
        .payload(inner)
        .build();
      const r = await dp.programs.fromUplink.testRun({ data: pkt });
      expect(r.retval, l4).toBe(TC_ACT_OK);
      expect(r.data.length).toBe(inner.length);
      const out = parsePacket(r.data);
      // The outer Ethernet header (to this node) stays in front of the inner IP packet.
      expect(out.eth).toMatchObject({ dst: NODE.uplinkMac, src: REMOTE.mac, type: 0x0800 });
      expect(out.ipv4).toMatchObject({ src: '10.244.2.7', dst: NODE.ip });
      expect(r.data.subarray(14).equals(inner.subarray(14))).toBe(true);
      expect(verifyChecksums(r.data).ok).toBe(true);
    }
  });

  it('decap: VXLAN for this node is stripped and delivered into the local pod', async () => {
    const inner = eth({ src: '6e:11:22:33:44:55', dst: NODE.uplinkMac })
      .ipv4({ src: '10.244.2.7', dst: POD_B.ip, id: 3 })
      .tcp({ sport: 5555, dport: 80, flags: ['SYN', 'ACK'], seq: 9, ack: 2 })
      .build();
    const pkt = eth({ src: REMOTE.mac, dst: NODE.uplinkMac })
      .ipv4({ src: REMOTE.ip, dst: NODE.ip, id: 1 })
      .vxlan({ vni: 1, sport: 45678, udpZeroChecksum: true })
      .payload(inner)
      .build();
    const r = await dp.programs.fromUplink.testRun({ data: pkt });
    expect(r.retval).toBe(TC_ACT_REDIRECT);
    expect(r.data.length).toBe(inner.length);
    const out = parsePacket(r.data);
    expect(out.eth).toMatchObject({ dst: POD_B.mac, src: POD_B.hostMac, type: 0x0800 });
    expect(r.data.subarray(14).equals(inner.subarray(14))).toBe(true);
    expect(verifyChecksums(r.data).ok).toBe(true);
  });

  it('decap: a wrong VNI or VXLAN for another address is left alone; an inner packet for elsewhere is dropped', async () => {
    const vx = (o: { vni: number; outerDst: string; innerDst: string }) =>
      eth({ src: REMOTE.mac, dst: NODE.uplinkMac })
        .ipv4({ src: REMOTE.ip, dst: o.outerDst })
        .vxlan({ vni: o.vni, udpZeroChecksum: true })
        .eth({ src: REMOTE.mac, dst: NODE.uplinkMac })
        .ipv4({ src: '10.244.2.7', dst: o.innerDst })
        .udp({ sport: 1, dport: 2 })
        .build();
    for (const pkt of [vx({ vni: 2, outerDst: NODE.ip, innerDst: POD_B.ip }), vx({ vni: 1, outerDst: '192.168.77.9', innerDst: POD_B.ip })]) {
      const r = await dp.programs.fromUplink.testRun({ data: pkt });
      expect(r.retval).toBe(TC_ACT_OK);
      expect(r.data.equals(pkt)).toBe(true);
    }
    // A packet for another node's pod would ping-pong between tunnels.
    const r = await dp.programs.fromUplink.testRun({ data: vx({ vni: 1, outerDst: NODE.ip, innerDst: '10.244.2.8' }) });
    expect(r.retval).toBe(TC_ACT_SHOT);
  });

  it('uplink: plain traffic to the node passes; to a local pod address it is delivered', async () => {
    const toNode = eth({ src: REMOTE.mac, dst: NODE.uplinkMac }).ipv4({ src: '198.51.100.7', dst: NODE.ip }).tcp({ sport: 1, dport: 22, flags: ['SYN'] }).build();
    let r = await dp.programs.fromUplink.testRun({ data: toNode });
    expect(r.retval).toBe(TC_ACT_OK);
    expect(r.data.equals(toNode)).toBe(true);
    const toGone = eth({ src: REMOTE.mac, dst: NODE.uplinkMac }).ipv4({ src: '198.51.100.7', dst: '10.244.1.99' }).udp({ sport: 1, dport: 2 }).build();
    r = await dp.programs.fromUplink.testRun({ data: toGone });
    expect(r.retval).toBe(TC_ACT_SHOT);
  });

  it('ARP: a pod asking for its gateway (or anything) gets the host veth MAC back out of its own veth', async () => {
    for (const target of [NODE.gatewayIp, '10.244.2.7', '8.8.8.8']) {
      const req = arpRequest({ senderMac: POD_A.mac, senderIp: POD_A.ip, targetIp: target });
      const r = await dp.programs.fromPod.testRun({ data: req });
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      const d = r.data;
      expect(d.subarray(0, 6).equals(parseMac(POD_A.mac))).toBe(true);
      expect(d.subarray(6, 12).equals(parseMac(POD_A.hostMac))).toBe(true);
      expect(d.readUInt16BE(12)).toBe(ETH_P_ARP);
      expect(d.readUInt16BE(14 + 6)).toBe(2); // reply
      expect(d.subarray(14 + 8, 14 + 14).equals(parseMac(POD_A.hostMac))).toBe(true); // sender MAC
      expect(d.readUInt32BE(14 + 14)).toBe(ipToNumber(target)); // sender IP: what was asked for
      expect(d.subarray(14 + 18, 14 + 24).equals(parseMac(POD_A.mac))).toBe(true); // target MAC
      expect(d.readUInt32BE(14 + 24)).toBe(ipToNumber(POD_A.ip));
    }
  });

  it('ARP: probes and gratuitous ARP get no answer; an unknown or foreign sender is dropped', async () => {
    const pass = [
      arpRequest({ senderMac: POD_A.mac, senderIp: '0.0.0.0', targetIp: POD_A.ip }),
      arpRequest({ senderMac: POD_A.mac, senderIp: POD_A.ip, targetIp: POD_A.ip }),
      arpRequest({ senderMac: POD_A.mac, senderIp: POD_A.ip, targetIp: NODE.gatewayIp, op: 2 }),
    ];
    for (const p of pass) {
      const r = await dp.programs.fromPod.testRun({ data: p });
      expect(r.retval).toBe(TC_ACT_OK);
      expect(r.data.equals(p)).toBe(true);
    }
    // 10.244.1.77 is no endpoint; POD_B lives behind ifindex 42, not this veth (test runs on ifindex 1).
    for (const senderIp of ['10.244.1.77', POD_B.ip]) {
      const r = await dp.programs.fromPod.testRun({ data: arpRequest({ senderMac: POD_A.mac, senderIp, targetIp: NODE.gatewayIp }) });
      expect(r.retval).toBe(TC_ACT_SHOT);
    }
  });

  it("uplink egress: the node's own packet for a remote pod is encapsulated in place; others pass", async () => {
    const own = eth({ src: NODE.uplinkMac, dst: NODE.uplinkMac }).ipv4({ src: NODE.gatewayIp, dst: '10.244.2.7' }).icmpv4({ type: 'echo-request', id: 3, seq: 1 }).build();
    const r = await dp.programs.toUplink.testRun({ data: own });
    expect(r.retval).toBe(TC_ACT_OK);
    const out = parsePacket(r.data);
    expect(out.ipv4).toMatchObject({ src: NODE.ip, dst: REMOTE.ip });
    expect(out.vxlan?.vni).toBe(1);
    expect(r.data.subarray(64).equals(own.subarray(14))).toBe(true);
    expect(verifyChecksums(r.data).ok).toBe(true);
    // Already-encapsulated and non-cluster traffic is left alone; a local pod address never leaves.
    for (const pkt of [r.data, eth({ src: NODE.uplinkMac, dst: REMOTE.mac }).ipv4({ src: NODE.ip, dst: '198.51.100.7' }).udp({ sport: 1, dport: 2 }).build()]) {
      const again = await dp.programs.toUplink.testRun({ data: pkt });
      expect(again.retval).toBe(TC_ACT_OK);
      expect(again.data.equals(pkt)).toBe(true);
    }
    const local = eth({ src: NODE.uplinkMac, dst: REMOTE.mac }).ipv4({ src: NODE.ip, dst: POD_B.ip }).udp({ sport: 1, dport: 2 }).build();
    expect((await dp.programs.toUplink.testRun({ data: local })).retval).toBe(TC_ACT_SHOT);
  });

  it('reconcileTunnels (routes.ts) programs the real map: Node objects decide where VXLAN goes', async () => {
    const nodes = [
      { name: 'self', podCidr: NODE.podCidr, internalIp: NODE.ip, uplinkMac: NODE.uplinkMac },
      { name: 'n2', podCidr: '10.244.2.0/24', internalIp: '192.168.77.22', uplinkMac: '02:aa:00:00:00:22' },
      { name: 'fl', podCidr: '10.244.5.0/24', internalIp: '192.168.77.5', uplinkMac: '02:aa:00:00:00:05', vtepMac: '6e:00:00:00:00:05' },
    ];
    // beforeEach left n2's CIDR pointing at 192.168.77.2: it changes; each node's own /32 and fl's CIDR are new.
    expect(reconcileTunnels(dp.maps.tunnel4, nodes, 'self')).toEqual({ set: 4, deleted: 0, errors: [] });
    const outer = async (dst: string) => parsePacket((await dp.programs.fromPod.testRun({ data: fromPodA(dst, 'udp') })).data);
    expect((await outer('10.244.2.7')).ipv4?.dst).toBe('192.168.77.22');
    // Replies to the node's NodePort SNAT go through its tunnel too; to our own address they do not.
    const n2 = parsePacket((await dp.programs.fromPod.testRun({ data: replyFromPodA('192.168.77.22', 'udp', 62000) })).data);
    expect(n2.ipv4?.dst).toBe('192.168.77.22');
    expect(n2.inner?.ipv4?.dst).toBe('192.168.77.22');
    expect((await dp.programs.fromPod.testRun({ data: replyFromPodA(NODE.ip, 'udp', 62000) })).retval).toBe(TC_ACT_OK);
    const fl = await outer('10.244.5.9');
    expect(fl.ipv4?.dst).toBe('192.168.77.5');
    expect(fl.eth?.dst).toBe('02:aa:00:00:00:05');
    expect(fl.inner?.eth?.dst).toBe('6e:00:00:00:00:05');
    // A node that leaves takes both its routes with it: its pods are unreachable, its address is the stack's again.
    expect(reconcileTunnels(dp.maps.tunnel4, nodes.slice(0, 2), 'self')).toEqual({ set: 0, deleted: 2, errors: [] });
    expect((await dp.programs.fromPod.testRun({ data: fromPodA('10.244.5.9') })).retval).toBe(TC_ACT_SHOT);
    const toFl = replyFromPodA('192.168.77.5', 'tcp', 62000);
    const r = await dp.programs.fromPod.testRun({ data: toFl });
    expect(r.retval).toBe(TC_ACT_OK);
    expect(r.data.equals(toFl)).toBe(true);
  });
});
