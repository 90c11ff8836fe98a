// Node tier: two weir nodes on a fabric (a bridge in its own netns), two pods
// on the first and one on the second, an external host on the fabric. Real
// ping and TCP through the programs: same-node redirect, VXLAN between
// nodes, node -> pod, pod -> node, pod -> outside masqueraded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeirDir, WeirReason } from '../../control/datapath/types.gen.js';
import { loadDatapath } from '../../control/datapath/programs.js';
import { uplinkInfo } from '../../control/datapath/node.js';
import { tc } from '../../native/index.js';
import { requireNetns } from '../lib/netns.js';
import { ipToNumber } from '../lib/packet.js';
import { CLUSTER_CIDR, RouteLab, metricPackets, type Pod, type WeirNode } from './lab.js';

const skip = requireNetns('pod routing between netns nodes', ['ping', 'iptables']);

const forwarded = (n: WeirNode, endpointId: number) => metricPackets(n, endpointId, WeirReason.REASON_FORWARDED, WeirDir.DIR_INGRESS);

describe.skipIf(skip)('pod routing across two weir nodes', () => {
  const r = new RouteLab();
  let n1: WeirNode;
  let n2: WeirNode;
  let ext: string;
  const pods: Pod[] = [];

  beforeAll(async () => {
    await r.createFabric();
    n1 = await r.weirNode('n1', '192.168.77.1', '10.244.1.0/24', 1);
    n2 = await r.weirNode('n2', '192.168.77.2', '10.244.2.0/24', 2);
    r.tunnel(n1, n2, 2);
    r.tunnel(n2, n1, 1);
    ext = (await r.fabricHost('ext', '192.168.77.100')).ns;
    pods.push(await r.pod(n1, 'a', '10.244.1.11', 11));
    pods.push(await r.pod(n1, 'b', '10.244.1.12', 12));
    pods.push(await r.pod(n2, 'c', '10.244.2.21', 21));
  }, 60_000);

  afterAll(async () => {
    await r.cleanup();
  });

  it('every pod pings every other pod (same node and across nodes)', async () => {
    for (const from of pods) {
      for (const to of pods) {
        if (from === to) continue;
        const p = await r.lab.ping(from.ns, to.ip, { count: 2, intervalSec: 0.2, timeoutSec: 2 });
        expect(p.received, `${from.name} -> ${to.name}`).toBe(2);
      }
    }
    // Same-node traffic went by redirect_peer (counted by the program), not through the node's stack.
    expect(forwarded(n1, 12)).toBeGreaterThanOrEqual(2n);
    expect(forwarded(n2, 21)).toBeGreaterThanOrEqual(2n);
  }, 60_000);

  it('full-size packets (pod MTU, DF) and UDP cross the overlay', async () => {
    const [a, b, c] = pods;
    // 1450 - 20 (IP) - 8 (ICMP) = 1422 bytes of payload: exactly the pod MTU, 1500 on the fabric.
    expect((await r.lab.ping(a.ns, c.ip, { count: 2, size: 1422, dontFragment: true })).received).toBe(2);
    expect((await r.lab.ping(c.ns, b.ip, { count: 2, size: 1422, dontFragment: true })).received).toBe(2);
    const rx = await r.lab.udpReceiver(c.ns, { port: 5353 });
    await r.lab.sendUdp(a.ns, { addr: c.ip, port: 5353, count: 5, payload: Buffer.alloc(1400, 1) });
    const got = await rx.waitFor(5, 10_000);
    await rx.stop();
    expect(got.map((m) => [m.from, m.data.length])).toEqual(Array(5).fill([a.ip, 1400]));
  }, 30_000);

  it('every node pings every pod; each pod pings its gateway and both nodes', async () => {
    for (const pod of pods) {
      const node = pod.node === 'n1' ? n1 : n2;
      for (const n of [n1, n2]) {
        expect((await r.lab.ping(n.ns, pod.ip, { count: 2 })).received, `${n.name} -> ${pod.name}`).toBe(2);
        expect((await r.lab.ping(pod.ns, n.ip, { count: 2 })).received, `${pod.name} -> ${n.name}`).toBe(2);
      }
      expect((await r.lab.ping(pod.ns, node.gateway, { count: 2 })).received, `${pod.name} -> gateway`).toBe(2);
    }
  }, 60_000);

  it('TCP from each node to every pod: the pod sees the node by its gateway address, with no NAT', async () => {
    const servers = await Promise.all(pods.map((p) => r.tcpServer(p.ns, 8081)));
    try {
      for (const n of [n1, n2]) {
        for (const pod of pods) {
          const res = await r.tcpClient(n.ns, pod.ip, 8081, 200_000);
          expect(res.local, `${n.name} -> ${pod.name}`).toBe(n.gateway);
          expect(res.server).toEqual({ peer: n.gateway, local: pod.ip, bytes: 200_000 });
        }
      }
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  }, 60_000);

  it('TCP both ways between every pair: the server sees the address the client has for itself', async () => {
    const servers = await Promise.all(pods.map((p) => r.tcpServer(p.ns, 8080)));
    try {
      for (const from of pods) {
        for (const to of pods) {
          if (from === to) continue;
          // 300 kB: many full-sized segments (and GSO super-packets) through redirect and VXLAN.
          const res = await r.tcpClient(from.ns, to.ip, 8080, 300_000);
          expect(res.local, `${from.name} -> ${to.name}`).toBe(from.ip);
          expect(res.server.peer, `${from.name} -> ${to.name}`).toBe(from.ip);
          expect(res.server.local).toBe(to.ip);
          expect(res.server.bytes).toBe(300_000);
        }
      }
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  }, 90_000);

  it('pods reach a host outside the cluster as their node (masquerade), and replies come back', async () => {
    const srv = await r.tcpServer(ext, 9090);
    try {
      for (const pod of pods) {
        const node = pod.node === 'n1' ? n1 : n2;
        expect((await r.lab.ping(pod.ns, '192.168.77.100', { count: 2 })).received, `${pod.name} -> ext`).toBe(2);
        const res = await r.tcpClient(pod.ns, '192.168.77.100', 9090, 100_000);
        expect(res.local).toBe(pod.ip);
        expect(res.server.peer, `${pod.name} seen from outside`).toBe(node.ip);
        expect(res.server.bytes).toBe(100_000);
      }
    } finally {
      await srv.stop();
    }
  }, 60_000);

  it('an address in a pod CIDR with no pod gets no answer, and no ARP for remote pods appears on the fabric or in the node', async () => {
    const p = await r.lab.ping(pods[0].ns, '10.244.2.99', { count: 1, timeoutSec: 1 });
    expect(p.received).toBe(0);
    // Pods only ever resolve their gateway; the node never resolves remote pods.
    const neigh = (await r.lab.ip(pods[0].ns, ['-j', 'neigh', 'show'])).stdout;
    const entries = JSON.parse(neigh) as Array<{ dst: string }>;
    expect(entries.map((e) => e.dst)).toEqual([n1.gateway]);
    const nodeNeigh = JSON.parse((await r.lab.ip(n1.ns, ['-j', 'neigh', 'show'])).stdout) as Array<{ dst: string }>;
    expect(nodeNeigh.filter((e) => e.dst.startsWith('10.244.2.'))).toEqual([]);
  }, 30_000);

  it('cross-node traffic follows the tunnel map: without the entry it is dropped, not leaked to the node stack', async () => {
    const [a, , c] = pods;
    const key = { prefixlen: 24, addr: 0x0af40200 };
    const saved = n1.dp.maps.tunnel4.get(key)!;
    expect(saved).toBeDefined();
    n1.dp.maps.tunnel4.delete(key);
    try {
      expect((await r.lab.ping(a.ns, c.ip, { count: 1, timeoutSec: 1 })).received).toBe(0);
    } finally {
      n1.dp.maps.tunnel4.set(key, saved);
    }
    expect((await r.lab.ping(a.ns, c.ip, { count: 2 })).received).toBe(2);
  }, 30_000);

  it("with the /32 entry for a node's own address, pods' traffic to its SNAT port range goes through the tunnel unmasqueraded; other ports stay masqueraded", async () => {
    const [a, , c] = pods;
    const addr = (n: WeirNode) => ({ prefixlen: 32, addr: ipToNumber(n.ip) });
    // What desiredTunnels adds next to each pod CIDR entry: the same tunnel, keyed by the node's address.
    n1.dp.maps.tunnel4.set(addr(n2), n1.dp.maps.tunnel4.get({ prefixlen: 24, addr: 0x0af40200 })!);
    n2.dp.maps.tunnel4.set(addr(n1), n2.dp.maps.tunnel4.get({ prefixlen: 24, addr: 0x0af40100 })!);
    // 62000 is in the NodePort SNAT range (61000-65535): where a backend's replies to another node go.
    const servers = await Promise.all([r.tcpServer(n1.ns, 62000), r.tcpServer(n2.ns, 62000), r.tcpServer(n1.ns, 9191), r.tcpServer(n2.ns, 9191)]);
    try {
      for (const [pod, n, own] of [[a, n2, n1], [c, n1, n2]] as const) {
        const tunnelled = await r.tcpClient(pod.ns, n.ip, 62000, 100_000);
        expect(tunnelled.server, `${pod.name} -> ${n.name}:62000`).toEqual({ peer: pod.ip, local: n.ip, bytes: 100_000 });
        const masqueraded = await r.tcpClient(pod.ns, n.ip, 9191, 1000);
        expect(masqueraded.server.peer, `${pod.name} -> ${n.name}:9191 via ${own.name}'s stack`).toBe(own.ip);
        expect((await r.lab.ping(pod.ns, n.ip, { count: 2 })).received, `${pod.name} pings ${n.name}`).toBe(2);
      }
      // Without the entry the same port goes through the node's stack: masqueraded.
      n1.dp.maps.tunnel4.delete(addr(n2));
      expect((await r.tcpClient(a.ns, n2.ip, 62000, 1000)).server.peer).toBe(n1.ip);
    } finally {
      n1.dp.maps.tunnel4.delete(addr(n2));
      n2.dp.maps.tunnel4.delete(addr(n1));
      await Promise.all(servers.map((x) => x.stop()));
    }
  }, 60_000);

  it('a reload (agent restart / upgrade) reuses the pinned maps and swaps the programs in place without losing a ping', async () => {
    const [a, b, c] = pods;
    const up = await uplinkInfo({ netns: n1.nsPath, uplink: 'eth0' });
    // A ping stream across nodes runs through the whole reload and re-attach.
    const stream = r.lab.spawn(a.ns, 'ping', ['-n', '-q', '-i', '0.05', '-c', '60', '-W', '1', c.ip], { timeoutMs: 30_000 });
    await new Promise((res) => setTimeout(res, 500));
    const next = await loadDatapath({
      pinRoot: n1.pinRoot,
      node: { ip: n1.ip, id: 1, podCidr: n1.podCidr, clusterCidr: CLUSTER_CIDR, gatewayIp: n1.gateway, uplinkIfindex: up.ifindex, uplinkMac: up.mac },
    });
    try {
      // Same maps: the endpoints and tunnels the old programs used are there.
      expect(next.maps.ep4.get({ addr: 0x0af4010b })?.endpoint_id).toBe(11);
      expect(next.maps.tunnel4.dump()).toHaveLength(1);
      const idx = next.attachPod({ ifname: 'lxca', netns: n1.nsPath });
      next.attachPod({ ifname: 'lxcb', netns: n1.nsPath });
      next.attachUplink({ ifname: 'eth0', netns: n1.nsPath });
      const done = await stream.exited;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(done.stdout);
      expect(m, done.stdout).not.toBeNull();
      expect(Number(m![1])).toBe(60);
      expect(Number(m![2]), 'pings lost across the reload').toBe(60);
      const q = tc.query({ ifindex: idx, attachPoint: 'ingress', priority: 1, handle: 1, netns: n1.nsPath });
      expect(q?.progId).toBe(next.programs.fromPod.info.id);
      expect(q?.progId).not.toBe(n1.dp.programs.fromPod.info.id);
      for (const [x, y] of [[a, b], [a, c], [c, b]]) {
        expect((await r.lab.ping(x.ns, y.ip, { count: 2 })).received, `${x.name} -> ${y.name} after reload`).toBe(2);
      }
      // detachPod removes both filters; a second call (or a vanished device) is fine.
      next.detachPod({ ifname: 'lxcb', netns: n1.nsPath });
      next.detachPod({ ifname: 'lxcb', netns: n1.nsPath });
      next.detachPod({ ifname: 'nosuchdev', netns: n1.nsPath });
      const bIdx = (await r.lab.link(n1.ns, 'lxcb')).ifindex;
      expect(tc.query({ ifindex: bIdx, attachPoint: 'ingress', priority: 1, handle: 1, netns: n1.nsPath })).toBeUndefined();
      expect(tc.query({ ifindex: bIdx, attachPoint: 'egress', priority: 1, handle: 1, netns: n1.nsPath })).toBeUndefined();
      next.attachPod({ ifname: 'lxcb', netns: n1.nsPath });
      expect((await r.lab.ping(b.ns, c.ip, { count: 2 })).received).toBe(2);
    } finally {
      next.close();
    }
  }, 60_000);
});
