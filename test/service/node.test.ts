// Node tier: a client namespace and three backend namespaces joined by a
// "node" namespace that routes between them. weir's from_pod sits at tc
// ingress and to_pod at tc egress of the client's host-side veth (as on a
// node), the client talks to a ClusterIP with real TCP and UDP sockets, and
// every backend answers with its name. Everything is removed in afterAll.
import { mkdirSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Collection, loadCollectionSpec } from '../../loader/index.js';
import { BpfMap, tc } from '../../native/index.js';
import { typedMaps, type DatapathMaps } from '../../control/datapath/maps.js';
import { bpfObject } from '../../control/paths.js';
import { ipToNumber } from '../lib/packet.js';
import { LabProcess, NetnsLab, requireNetns } from '../lib/netns.js';
import { SvcFlags, TCP, UDP, setBackend, setService } from './harness.js';

const skip = requireNetns('service load balancing between netns');
const pinRoot = `/sys/fs/bpf/h1-node-${process.pid}`;
const VIP = '10.96.0.10';
const VIP_EMPTY = '10.96.0.11';
const VIP_SELF = '10.96.0.12'; // its only backend is the client itself (hairpin)
const CLIENT = '10.244.1.5';
const GATEWAY = '10.244.1.1';
const NODE = process.execPath;
const NODE_IP = '192.168.77.1'; // the node's uplink address (NodePort frontend)
const EXT = '192.168.77.2'; // a client outside the cluster

const be32 = (ip: string) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ipToNumber(ip));
  return b;
};

// Answers every TCP connection and UDP datagram on :8080 with its name.
const SERVER = `
const net = require('net'), dgram = require('dgram');
const name = process.argv[1];
let up = 0;
const ready = () => { if (++up === 2) console.log('ready'); };
net.createServer((s) => { s.end(name + '\\n'); s.on('error', () => {}); }).listen(8080, '0.0.0.0', ready);
const u = dgram.createSocket('udp4');
u.on('message', (m, r) => u.send(name, r.port, r.address));
u.bind(8080, '0.0.0.0', ready);
`;

// n TCP connections and n UDP exchanges to addr:80; prints one JSON line.
const CLIENT_SCRIPT = `
const net = require('net'), dgram = require('dgram');
const [addr, n, port] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3] || 80)];
const tcp = () => new Promise((res) => {
  const s = net.connect(port, addr); let d = '';
  const t = setTimeout(() => { s.destroy(); res('timeout'); }, 3000);
  s.on('data', (x) => (d += x));
  s.on('end', () => { clearTimeout(t); res(d.trim()); });
  s.on('error', (e) => { clearTimeout(t); res(e.code); });
});
const udp = () => new Promise((res) => {
  const s = dgram.createSocket('udp4');
  const t = setTimeout(() => { s.close(); res('timeout'); }, 3000);
  s.on('message', (m) => { clearTimeout(t); s.close(); res(m.toString()); });
  s.on('error', (e) => { clearTimeout(t); s.close(); res(e.code); });
  s.connect(port, addr, () => s.send('hi'));
});
(async () => {
  const out = { tcp: [], udp: [] };
  for (let i = 0; i < n; i++) { out.tcp.push(await tcp()); out.udp.push(await udp()); }
  console.log(JSON.stringify(out));
})();
`;

describe.skipIf(skip)('service load balancing between namespaces', () => {
  const lab = new NetnsLab({ prefix: 'weirtest-h1-' });
  let nodeNs: string;
  let clientNs: string;
  let hostIfindex = 0;
  let extNs: string;
  const colls: Collection[] = [];
  let maps: DatapathMaps | undefined;
  const servers: LabProcess[] = [];

  beforeAll(async () => {
    mkdirSync(pinRoot, { recursive: true });
    nodeNs = await lab.createNetns('node');
    clientNs = await lab.createNetns('client');
    const c = await lab.veth({ a: { ns: clientNs, name: 'eth0', addr: `${CLIENT}/24` }, b: { ns: nodeNs, name: 'h1-cli', addr: `${GATEWAY}/24` } });
    hostIfindex = c.b.ifindex;
    await lab.ip(clientNs, ['route', 'add', 'default', 'via', GATEWAY]);
    for (let i = 1; i <= 3; i++) {
      const ns = await lab.createNetns(`b${i}`);
      await lab.veth({ a: { ns, name: 'eth0', addr: `10.245.${i}.2/24` }, b: { ns: nodeNs, name: `h1-b${i}`, addr: `10.245.${i}.1/24` } });
      await lab.ip(ns, ['route', 'add', 'default', 'via', `10.245.${i}.1`]);
      const p = lab.spawn(ns, NODE, ['-e', SERVER, `backend-${i}`], { timeoutMs: 120_000 });
      servers.push(p);
    }
    await lab.execOk(nodeNs, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    extNs = await lab.createNetns('ext');
    const up = await lab.veth({ a: { ns: extNs, name: 'eth0', addr: `${EXT}/24` }, b: { ns: nodeNs, name: 'h1-up', addr: `${NODE_IP}/24` } });
    const b1Host = await lab.link(nodeNs, 'h1-b1');
    const b1Pod = await lab.link((await lab.namespaces).find((n) => n.endsWith('-b1'))!, 'eth0');

    const constants = {
      NODE_IP: be32(NODE_IP),
      NODE_ID: 1,
      POD_CIDR: be32('10.244.1.0'),
      POD_CIDR_MASK: be32('255.255.255.0'),
      CLUSTER_CIDR: be32('10.244.0.0'),
      CLUSTER_CIDR_MASK: be32('255.255.0.0'),
      GATEWAY_IP: be32(GATEWAY),
    };
    const pod = await loadCollectionSpec(bpfObject('pod')).load({ pinRoot, constants });
    const uplink = await loadCollectionSpec(bpfObject('uplink')).load({ pinRoot, constants });
    colls.push(pod, uplink);
    maps = typedMaps((n) => BpfMap.fromPin(`${pinRoot}/${n}`));
    // The client is a local pod (ARP for its gateway is answered from ep4).
    maps.ep4.set({ addr: ipToNumber(CLIENT) }, {
      ifindex: hostIfindex,
      endpoint_id: 1,
      mac: Buffer.from(c.a.mac.split(':').map((x) => parseInt(x, 16))),
      node_mac: Buffer.from(c.b.mac.split(':').map((x) => parseInt(x, 16))),
      flags: 0,
      identity: 0,
    });
    // Backend 1 is a local pod too: weir on its veth (its replies to NodePort
    // clients are reverse-NATed in its from_pod).
    maps.ep4.set({ addr: ipToNumber('10.245.1.2') }, {
      ifindex: b1Host.ifindex,
      endpoint_id: 2,
      mac: Buffer.from(b1Pod.address!.split(':').map((x) => parseInt(x, 16))),
      node_mac: Buffer.from(b1Host.address!.split(':').map((x) => parseInt(x, 16))),
      flags: 0,
      identity: 0,
    });
    maps.node4.set(ipToNumber(NODE_IP), { flags: 0 });
    for (let i = 1; i <= 3; i++) {
      setBackend(maps, { id: i, addr: `10.245.${i}.2`, port: 8080, proto: TCP });
      setBackend(maps, { id: 10 + i, addr: `10.245.${i}.2`, port: 8080, proto: UDP });
    }
    setService(maps, { id: 1, addr: VIP, port: 80, proto: TCP, backends: [1, 2, 3] });
    setService(maps, { id: 2, addr: VIP, port: 80, proto: UDP, backends: [11, 12, 13] });
    setService(maps, { id: 3, addr: VIP_EMPTY, port: 80, proto: TCP, backends: [], flags: SvcFlags.SVC_F_CLUSTERIP });
    setService(maps, { id: 4, addr: VIP_EMPTY, port: 80, proto: UDP, backends: [] });
    // UDP :81 goes to a port nothing listens on: the backend answers ICMP port unreachable.
    setBackend(maps, { id: 20, addr: '10.245.1.2', port: 9999, proto: UDP });
    setService(maps, { id: 5, addr: VIP, port: 81, proto: UDP, backends: [20] });
    setBackend(maps, { id: 21, addr: CLIENT, port: 8080, proto: TCP });
    setBackend(maps, { id: 22, addr: CLIENT, port: 8080, proto: UDP });
    setService(maps, { id: 6, addr: VIP_SELF, port: 80, proto: TCP, backends: [21] });
    setService(maps, { id: 7, addr: VIP_SELF, port: 80, proto: UDP, backends: [22] });
    servers.push(lab.spawn(clientNs, NODE, ['-e', SERVER, 'client-itself'], { timeoutMs: 120_000 }));
    setService(maps, { id: 8, addr: '0.0.0.0', port: 30080, proto: TCP, backends: [1], flags: SvcFlags.SVC_F_NODEPORT, revnat: { addr: '0.0.0.0', port: 30080 } });
    setService(maps, { id: 9, addr: '0.0.0.0', port: 30080, proto: UDP, backends: [11], flags: SvcFlags.SVC_F_NODEPORT, revnat: { addr: '0.0.0.0', port: 30080 } });
    tc.attach({ ifindex: b1Host.ifindex, attachPoint: 'ingress', prog: pod.programs.from_pod, netns: lab.nsPath(nodeNs) });
    tc.attach({ ifindex: b1Host.ifindex, attachPoint: 'egress', prog: pod.programs.to_pod, netns: lab.nsPath(nodeNs) });
    tc.attach({ ifindex: up.b.ifindex, attachPoint: 'ingress', prog: uplink.programs.from_uplink, netns: lab.nsPath(nodeNs) });
    tc.attach({ ifindex: hostIfindex, attachPoint: 'ingress', prog: pod.programs.from_pod, netns: lab.nsPath(nodeNs) });
    tc.attach({ ifindex: hostIfindex, attachPoint: 'egress', prog: pod.programs.to_pod, netns: lab.nsPath(nodeNs) });
    for (const s of servers) await s.waitForLine(/^ready$/, 15_000);
  }, 60_000);

  afterAll(async () => {
    maps?.close();
    for (const c of colls) c.close();
    await lab.cleanup();
    rmSync(pinRoot, { recursive: true, force: true });
  });

  const runClient = async (addr: string, n: number, port = 80, ns = clientNs) => {
    const r = await lab.nsenter(ns, NODE, ['-e', CLIENT_SCRIPT, addr, String(n), String(port)], { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { tcp: string[]; udp: string[] };
  };

  it('TCP and UDP to the ClusterIP complete, and reach all three backends', async () => {
    const out = await runClient(VIP, 30);
    const names = new Set(['backend-1', 'backend-2', 'backend-3']);
    for (const r of [...out.tcp, ...out.udp]) expect(names).toContain(r);
    expect(new Set(out.tcp)).toEqual(names);
    expect(new Set(out.udp)).toEqual(names);
    // It went through weir's conntrack (the VIP has no route in the node).
    const svcFlows = maps!.ct4.dump().filter(([k]) => k.daddr === ipToNumber(VIP) && k.flags === 1);
    expect(svcFlows.filter(([k]) => k.proto === TCP).length).toBe(30);
    expect(svcFlows.filter(([k]) => k.proto === UDP).length).toBeGreaterThan(25);
    expect(svcFlows.every(([, v]) => v.packets_fwd >= 1n)).toBe(true);
  }, 90_000);

  it('a service without backends is refused (TCP RST, ICMP port unreachable)', async () => {
    const out = await runClient(VIP_EMPTY, 2);
    expect(out.tcp).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
    expect(out.udp).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
  }, 30_000);

  it('an ICMP port unreachable from the backend reaches the client socket translated (ECONNREFUSED)', async () => {
    const out = await runClient(VIP, 1, 81);
    expect(out.udp).toEqual(['ECONNREFUSED']);
  }, 30_000);

  it('hairpin: the client reaches itself through a service whose backend it is', async () => {
    const out = await runClient(VIP_SELF, 3);
    expect(out.tcp).toEqual(['client-itself', 'client-itself', 'client-itself']);
    expect(out.udp).toEqual(['client-itself', 'client-itself', 'client-itself']);
  }, 30_000);

  it('NodePort from outside the cluster: DNAT on the uplink, the backend pod\'s reply leaves from the node address', async () => {
    const out = await runClient(NODE_IP, 3, 30080, extNs);
    expect(out.tcp).toEqual(['backend-1', 'backend-1', 'backend-1']);
    expect(out.udp).toEqual(['backend-1', 'backend-1', 'backend-1']);
    const np = maps!.ct4.dump().filter(([k, v]) => k.saddr === ipToNumber(EXT) && k.flags === 1 && (v.flags & 2) !== 0);
    expect(np.length).toBeGreaterThanOrEqual(4); // CT_F_NODEPORT service entries
  }, 30_000);
});
