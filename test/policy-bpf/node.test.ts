// Node tier: NetworkPolicy maps filled by hand on two weir nodes in network
// namespaces (test/route/lab.ts), real TCP and UDP through the programs.
// Same-node and cross-node (VXLAN, checked after decap) ingress, egress,
// replies, a policy change taking effect for new connections, the node's own
// traffic, and a spoofed source from a real pod.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeirDir, WeirReason, PolicyIdentity } from '../../control/datapath/types.gen.js';
import { requireNetns } from '../lib/netns.js';
import { RouteLab, metricPackets, type Pod, type WeirNode } from '../route/lab.js';
import { allow, bumpGen, isolate, setIdentity } from './harness.js';

const skip = requireNetns('NetworkPolicy between netns nodes');
const TCP = 6;
const UDP = 17;
const ID = { a: 300, b: 301, c: 302 };

describe.skipIf(skip)('NetworkPolicy on two weir nodes (netns, real TCP)', () => {
  const r = new RouteLab({ prefix: 'weirtest-wpb-', pinPrefix: 'wpb' });
  let n1: WeirNode;
  let n2: WeirNode;
  let a: Pod;
  let b: Pod;
  let c: Pod;

  /** One TCP connect + request/response with a short timeout: 'ok' or why not. */
  const probe = async (from: Pod | WeirNode, to: Pod, port: number): Promise<string> => {
    const script = `
      const net = require('net');
      const s = net.connect(${port}, '${to.ip}', () => s.end('x'));
      let got = '';
      s.on('data', (d) => { got += d; });
      s.on('end', () => { console.log(got.includes('bytes') ? 'ok' : 'short'); process.exit(0); });
      s.setTimeout(1500, () => { console.log('timeout'); process.exit(0); });
      s.on('error', (e) => { console.log(e.code || e.message); process.exit(0); });`;
    const res = await r.lab.nsenter(from.ns, process.execPath, ['-e', script], { timeoutMs: 10_000 });
    return res.stdout.trim();
  };

  beforeAll(async () => {
    await r.createFabric();
    n1 = await r.weirNode('n1', '192.168.78.1', '10.244.1.0/24', 1);
    n2 = await r.weirNode('n2', '192.168.78.2', '10.244.2.0/24', 2);
    r.tunnel(n1, n2, 2);
    r.tunnel(n2, n1, 1);
    a = await r.pod(n1, 'a', '10.244.1.11', 11);
    b = await r.pod(n1, 'b', '10.244.1.12', 12);
    c = await r.pod(n2, 'c', '10.244.2.21', 21);
    // Each node's ipcache: the pods, itself (and its gateway) as host, the other node.
    for (const [n, other] of [[n1, n2], [n2, n1]] as const) {
      setIdentity(n.dp.maps, a.ip, ID.a);
      setIdentity(n.dp.maps, b.ip, ID.b);
      setIdentity(n.dp.maps, c.ip, ID.c);
      setIdentity(n.dp.maps, n.ip, PolicyIdentity.ID_HOST);
      setIdentity(n.dp.maps, n.gateway, PolicyIdentity.ID_HOST);
      setIdentity(n.dp.maps, other.ip, PolicyIdentity.ID_REMOTE_NODE);
      bumpGen(n.dp.maps);
    }
  }, 60_000);

  afterAll(async () => {
    await r.cleanup();
  });

  it('default allow, then ingress isolation of b: only a on 8081 (same node); c over VXLAN and other ports are dropped', async () => {
    const servers = await Promise.all([r.tcpServer(b.ns, 8081), r.tcpServer(b.ns, 8082), r.tcpServer(a.ns, 8081), r.tcpServer(c.ns, 8081)]);
    try {
      expect(await probe(c, b, 8082)).toBe('ok'); // no policy yet
      // b's ingress: a on TCP 8081, and the host (the compiler adds it to every ruleset)
      allow(n1.dp.maps, 7, ID.a, TCP, 8081);
      allow(n1.dp.maps, 7, PolicyIdentity.ID_HOST);
      isolate(n1.dp.maps, 12, { ingress: 7 });
      bumpGen(n1.dp.maps);
      const matrix = {
        'a->b:8081': await probe(a, b, 8081),
        'a->b:8082': await probe(a, b, 8082),
        'c->b:8081': await probe(c, b, 8081),
        'n1->b:8082': await probe(n1, b, 8082),
        'b->a:8081': await probe(b, a, 8081),
        'b->c:8081': await probe(b, c, 8081),
      };
      expect(matrix).toEqual({
        'a->b:8081': 'ok',
        'a->b:8082': 'timeout',
        'c->b:8081': 'timeout',
        'n1->b:8082': 'ok',
        'b->a:8081': 'ok',
        'b->c:8081': 'ok',
      });
      expect(metricPackets(n1, 12, WeirReason.REASON_POLICY_DENIED_INGRESS, WeirDir.DIR_INGRESS)).toBeGreaterThanOrEqual(2n);

      // a policy change applies to new connections at once: c allowed too
      allow(n1.dp.maps, 7, ID.c, TCP, 8081);
      bumpGen(n1.dp.maps);
      expect(await probe(c, b, 8081)).toBe('ok');
    } finally {
      for (const s of servers) await s.stop();
    }
  }, 60_000);

  it('egress isolation of a: only b on 8081; replies of connections to a still flow', async () => {
    const servers = await Promise.all([r.tcpServer(b.ns, 8081), r.tcpServer(c.ns, 8081), r.tcpServer(a.ns, 8083)]);
    try {
      allow(n1.dp.maps, 9, ID.b, TCP, 8081);
      isolate(n1.dp.maps, 11, { egress: 9 });
      bumpGen(n1.dp.maps);
      expect(await probe(a, b, 8081)).toBe('ok');
      expect(await probe(a, c, 8081)).toBe('timeout');
      // b -> a: b's egress is open, a's ingress is open, a's replies are replies
      expect(await probe(b, a, 8083)).toBe('ok');
      expect(metricPackets(n1, 11, WeirReason.REASON_POLICY_DENIED_EGRESS, WeirDir.DIR_EGRESS)).toBeGreaterThanOrEqual(1n);
      isolate(n1.dp.maps, 11, {});
      bumpGen(n1.dp.maps);
      expect(await probe(a, c, 8081)).toBe('ok');
    } finally {
      for (const s of servers) await s.stop();
    }
  }, 60_000);

  it('a pod sending from an address that is not its own is dropped at its veth', async () => {
    await r.lab.ip(a.ns, ['addr', 'add', '10.244.1.99/32', 'dev', 'eth0']);
    const rx = await r.lab.udpReceiver(c.ns, { port: 5353 });
    try {
      await r.lab.sendUdp(a.ns, { addr: c.ip, port: 5353, count: 3, payload: Buffer.from('spoof'), bindAddr: '10.244.1.99' });
      await r.lab.sendUdp(a.ns, { addr: c.ip, port: 5353, count: 2, payload: Buffer.from('real') });
      const got = await rx.waitFor(2, 5_000);
      await new Promise((res) => setTimeout(res, 300));
      const all = await rx.stop();
      expect(got.map((m) => m.from)).toEqual([a.ip, a.ip]);
      expect(all.every((m) => m.from === a.ip)).toBe(true);
      expect(metricPackets(n1, 0, WeirReason.REASON_SPOOFED_SOURCE, WeirDir.DIR_EGRESS)).toBeGreaterThanOrEqual(3n);
    } finally {
      await r.lab.ip(a.ns, ['addr', 'del', '10.244.1.99/32', 'dev', 'eth0']);
    }
  }, 30_000);

  it('UDP across nodes under egress and ingress policy: allowed datagrams arrive, others do not', async () => {
    allow(n2.dp.maps, 5, ID.a, UDP, 5353);
    isolate(n2.dp.maps, 21, { ingress: 5 });
    bumpGen(n2.dp.maps);
    const rx = await r.lab.udpReceiver(c.ns, { port: 5353 });
    const rx2 = await r.lab.udpReceiver(c.ns, { port: 5354 });
    try {
      await r.lab.sendUdp(a.ns, { addr: c.ip, port: 5353, count: 2, payload: Buffer.from('a') });
      await r.lab.sendUdp(b.ns, { addr: c.ip, port: 5353, count: 2, payload: Buffer.from('b') });
      await r.lab.sendUdp(a.ns, { addr: c.ip, port: 5354, count: 2, payload: Buffer.from('a2') });
      await rx.waitFor(2, 5_000);
      await new Promise((res) => setTimeout(res, 500));
      expect((await rx.stop()).map((m) => m.from)).toEqual([a.ip, a.ip]);
      expect(await rx2.stop()).toEqual([]);
      expect(metricPackets(n2, 21, WeirReason.REASON_POLICY_DENIED_INGRESS, WeirDir.DIR_INGRESS)).toBe(4n);

      // 3000-byte datagrams leave the pods as IPv4 fragments (pod MTU 1450): the allowed one is
      // reassembled in c, every fragment of the denied one is dropped at n2 after decap.
      const big = await r.lab.udpReceiver(c.ns, { port: 5353 });
      await r.lab.sendUdp(b.ns, { addr: c.ip, port: 5353, count: 1, payload: Buffer.alloc(3000, 2) });
      await r.lab.sendUdp(a.ns, { addr: c.ip, port: 5353, count: 1, payload: Buffer.alloc(3000, 1) });
      await big.waitFor(1, 5_000);
      await new Promise((res) => setTimeout(res, 500));
      expect((await big.stop()).map((m) => [m.from, m.data.length])).toEqual([[a.ip, 3000]]);
      expect(metricPackets(n2, 21, WeirReason.REASON_FRAG_DENIED, WeirDir.DIR_INGRESS)).toBe(2n);
    } finally {
      isolate(n2.dp.maps, 21, {});
    }
  }, 30_000);
});
