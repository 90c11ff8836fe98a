// Node tier: NodePort across nodes. Two weir nodes (A, B) on a fabric and an
// external client; the service's only backend is a pod on A. Services are
// programmed on both nodes the way the agent does it (buildDesired →
// ServiceReconciler over the pinned maps), tunnels with reconcileTunnels.
// The client talks to B's address: B SNATs to itself and tunnels to the pod;
// the pod's reply, addressed to B, must go back through the tunnel (the /32
// entry for B's own address) — through A's stack it would be masqueraded and
// the flow lost. Everything is removed in afterAll.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcileTunnels, type NodeRoute } from '../../control/datapath/routes.js';
import { CtFlags, WeirDir, WeirReason } from '../../control/datapath/types.gen.js';
import { buildDesired } from '../../control/service/model.js';
import { ServiceReconciler } from '../../control/service/reconciler.js';
import { serviceTables } from '../../control/service/maps.js';
import { node as nodeObject, port, service, slice } from '../../control/service/testobjects.js';
import { requireNetns, type LabProcess } from '../lib/netns.js';
import { ipToNumber } from '../lib/packet.js';
import { RouteLab, metricPackets, type Pod, type WeirNode } from '../route/lab.js';

const skip = requireNetns('NodePort with a backend on another node', ['iptables']);
const CLIENT_IP = '192.168.77.100';
const NP_CLUSTER = 30080; // externalTrafficPolicy: Cluster
const NP_LOCAL = 30081; // externalTrafficPolicy: Local

// TCP and UDP on :8080; every answer says who the server saw as its peer.
const SERVER = `
const net = require('net'), dgram = require('dgram');
let up = 0;
const ready = () => { if (++up === 2) console.log('READY'); };
net.createServer((s) => { s.end(JSON.stringify({ name: 'pod-a', peer: s.remoteAddress }) + '\\n'); s.on('error', () => {}); }).listen(8080, '0.0.0.0', ready);
const u = dgram.createSocket('udp4');
u.on('message', (m, r) => u.send(JSON.stringify({ name: 'pod-a', peer: r.address }), r.port, r.address));
u.bind(8080, '0.0.0.0', ready);
`;

// One TCP connection and one UDP exchange to addr:port; prints {tcp, udp}:
// the server's answer (parsed) or an error code / 'timeout'.
const CLIENT = `
const net = require('net'), dgram = require('dgram');
const [addr, port] = [process.argv[1], Number(process.argv[2])];
const parse = (d) => { try { return JSON.parse(d); } catch { return d; } };
const tcp = () => new Promise((res) => {
  const s = net.connect(port, addr); let d = '';
  const t = setTimeout(() => { s.destroy(); res('timeout'); }, 3000);
  s.on('data', (x) => (d += x));
  s.on('end', () => { clearTimeout(t); res(parse(d.trim())); });
  s.on('error', (e) => { clearTimeout(t); res(e.code); });
});
const udp = () => new Promise((res) => {
  const s = dgram.createSocket('udp4');
  const t = setTimeout(() => { s.close(); res('timeout'); }, 3000);
  s.on('message', (m) => { clearTimeout(t); s.close(); res(parse(m.toString())); });
  s.on('error', (e) => { clearTimeout(t); s.close(); res(e.code); });
  s.connect(port, addr, () => s.send('hi'));
});
(async () => { console.log(JSON.stringify({ tcp: await tcp(), udp: await udp() })); })();
`;

type Answer = { name: string; peer: string } | string;

/** The cluster's objects: one pod on node "a" behind two NodePort services (TCP and UDP each). */
function objects() {
  const ports = (np: number) => [
    port(80, { name: 'tcp', targetPort: 8080, nodePort: np }),
    port(80, { name: 'udp', protocol: 'UDP', targetPort: 8080, nodePort: np }),
  ];
  const services = [
    service('web', { type: 'NodePort', clusterIP: '10.96.0.10', externalTrafficPolicy: 'Cluster', ports: ports(NP_CLUSTER) }),
    service('web-local', { type: 'NodePort', clusterIP: '10.96.0.11', externalTrafficPolicy: 'Local', ports: ports(NP_LOCAL) }),
  ];
  const slicePorts = [{ name: 'tcp', port: 8080, protocol: 'TCP' }, { name: 'udp', port: 8080, protocol: 'UDP' }];
  const slices = [
    slice('web-1', 'web', slicePorts, [{ ip: '10.244.1.11', node: 'a' }]),
    slice('web-local-1', 'web-local', slicePorts, [{ ip: '10.244.1.11', node: 'a' }]),
  ];
  return { services, slices };
}

const metric = (n: WeirNode, reason: number, dir: number) => metricPackets(n, 0, reason, dir);

describe.skipIf(skip)('NodePort on one node, backend pod on another', () => {
  const r = new RouteLab({ prefix: 'weirtest-h9-', pinPrefix: 'h9-np' });
  let a: WeirNode;
  let b: WeirNode;
  let client: string;
  let pod: Pod;
  let cli: Pod;
  let server: LabProcess | undefined;
  let routes: NodeRoute[];

  beforeAll(async () => {
    await r.createFabric();
    a = await r.weirNode('a', '192.168.77.1', '10.244.1.0/24', 1);
    b = await r.weirNode('b', '192.168.77.2', '10.244.2.0/24', 2);
    client = (await r.fabricHost('client', CLIENT_IP)).ns;
    pod = await r.pod(a, 'srv', '10.244.1.11', 11);
    cli = await r.pod(a, 'cli', '10.244.1.12', 12);
    routes = [a, b].map((n) => ({ name: n.name, podCidr: n.podCidr, internalIp: n.ip, uplinkMac: n.mac }));
    for (const n of [a, b]) {
      const t = reconcileTunnels(n.dp.maps.tunnel4, routes, n.name);
      expect(t).toEqual({ set: 2, deleted: 0, errors: [] }); // the other node's pod CIDR and its address
      const { services, slices } = objects();
      const out = buildDesired({ services, slices, nodeName: n.name, node: nodeObject(n.name, [['InternalIP', n.ip]]), defaultAlgorithm: 'random' });
      expect(out.problems).toEqual([]);
      new ServiceReconciler(serviceTables(n.dp.maps)).sync(out.state);
    }
    server = r.lab.spawn(pod.ns, process.execPath, ['-e', SERVER], { timeoutMs: 120_000 });
    await server.waitForLine(/^READY$/, 15_000);
  }, 90_000);

  afterAll(async () => {
    await server?.stop();
    await r.cleanup();
  });

  const call = async (addr: string, port: number, from = client): Promise<{ tcp: Answer; udp: Answer }> => {
    const res = await r.lab.nsenter(from, process.execPath, ['-e', CLIENT, addr, String(port)], { timeoutMs: 30_000 });
    expect(res.stderr).toBe('');
    return JSON.parse(res.stdout.trim().split('\n').pop()!);
  };

  it("externalTrafficPolicy Cluster: the client reaches the pod on A through B's address; the pod sees B (SNAT)", async () => {
    const tunnelledBefore = metric(a, WeirReason.REASON_FORWARDED, WeirDir.DIR_EGRESS);
    for (let i = 0; i < 3; i++) {
      const out = await call(b.ip, NP_CLUSTER);
      expect(out.tcp).toEqual({ name: 'pod-a', peer: b.ip });
      expect(out.udp).toEqual({ name: 'pod-a', peer: b.ip });
    }
    // B translated these flows: SNAT to its own address towards the pod, for our client.
    const snat = b.dp.maps.ct4.dump().filter(([k, v]) => k.saddr === ipToNumber(b.ip) && k.daddr === ipToNumber(pod.ip) && (v.flags & CtFlags.CT_F_SNAT) !== 0);
    expect(snat.length).toBeGreaterThanOrEqual(6);
    expect(snat.every(([, v]) => v.nat_addr === ipToNumber(CLIENT_IP) && v.packets_rev >= 1n)).toBe(true);
    // The pod's replies left A through the tunnel (not A's stack, which would masquerade them).
    expect(metric(a, WeirReason.REASON_FORWARDED, WeirDir.DIR_EGRESS) - tunnelledBefore).toBeGreaterThanOrEqual(6n);
  }, 60_000);

  it("a pod on A reaches the NodePort on B's address (through the tunnel), B's SNAT included", async () => {
    for (let i = 0; i < 2; i++) {
      const out = await call(b.ip, NP_CLUSTER, cli.ns);
      expect(out.tcp).toEqual({ name: 'pod-a', peer: b.ip });
      expect(out.udp).toEqual({ name: 'pod-a', peer: b.ip });
    }
  }, 30_000);

  it('the same service on A (local backend) also works: no SNAT, the pod sees the client itself', async () => {
    const out = await call(a.ip, NP_CLUSTER);
    expect(out.tcp).toEqual({ name: 'pod-a', peer: CLIENT_IP });
    expect(out.udp).toEqual({ name: 'pod-a', peer: CLIENT_IP });
  }, 30_000);

  it('externalTrafficPolicy Local: B has no local backend and rejects (TCP RST, ICMP port unreachable); A serves it keeping the client address', async () => {
    const seen = () => b.dp.maps.ct4.dump().filter(([k]) => k.daddr === ipToNumber(pod.ip)).length;
    const before = seen();
    const rejectedBefore = metric(b, WeirReason.REASON_NO_BACKEND, WeirDir.DIR_UPLINK);
    const onB = await call(b.ip, NP_LOCAL);
    expect(onB).toEqual({ tcp: 'ECONNREFUSED', udp: 'ECONNREFUSED' });
    expect(seen()).toBe(before); // nothing was sent towards the pod
    expect(metric(b, WeirReason.REASON_NO_BACKEND, WeirDir.DIR_UPLINK) - rejectedBefore).toBeGreaterThanOrEqual(2n);
    const onA = await call(a.ip, NP_LOCAL);
    expect(onA.tcp).toEqual({ name: 'pod-a', peer: CLIENT_IP });
    expect(onA.udp).toEqual({ name: 'pod-a', peer: CLIENT_IP });
  }, 30_000);

  it("without the /32 entry for B's address on A, the reply goes through A's masquerade and the flow fails", async () => {
    const key = { prefixlen: 32, addr: ipToNumber(b.ip) };
    const saved = a.dp.maps.tunnel4.get(key);
    expect(saved).toBeDefined();
    a.dp.maps.tunnel4.delete(key);
    try {
      const out = await call(b.ip, NP_CLUSTER);
      // The client gets no answer (an error code or 'timeout', never the pod's reply).
      expect(typeof out.tcp).toBe('string');
      expect(typeof out.udp).toBe('string');
    } finally {
      // Put back the way the agent does it.
      expect(reconcileTunnels(a.dp.maps.tunnel4, routes, 'a')).toMatchObject({ set: 1, deleted: 0 });
    }
    expect((await call(b.ip, NP_CLUSTER)).tcp).toEqual({ name: 'pod-a', peer: b.ip });
  }, 60_000);
});
