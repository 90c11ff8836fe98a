// Wire format interop: a weir node and a node running Linux's own `vxlan`
// device the way flannel sets it up (id 1, dstport 8472, no weir programs:
// vxlan device + routes + static neighbour and fdb entries), each with pods
// behind it. Pods on both sides ping and exchange TCP both ways, so weir's
// encapsulation is read by the kernel's vxlan driver and the other way round.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireNetns } from '../lib/netns.js';
import { RouteLab, type Pod, type WeirNode } from './lab.js';

const skip = requireNetns('VXLAN interop with a Linux vxlan device', ['ping', 'bridge', 'iptables']);

describe.skipIf(skip)('weir node <-> Linux vxlan (flannel data path) node', () => {
  const r = new RouteLab();
  let n1: WeirNode;
  let weirPods: Pod[];
  let flannelPod: { ns: string; ip: string; name: string };

  beforeAll(async () => {
    await r.createFabric();
    n1 = await r.weirNode('n1', '192.168.77.1', '10.244.1.0/24', 1);
    weirPods = [await r.pod(n1, 'a', '10.244.1.11', 11), await r.pod(n1, 'b', '10.244.1.12', 12)];

    // The flannel node: eth0 on the fabric, flannel.1 = vxlan id 1 port 8472.
    const fl = await r.fabricHost('fl', '192.168.77.3');
    const ip = (args: string[]) => r.lab.ip(fl.ns, args);
    await ip(['link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'dstport', '8472', 'local', '192.168.77.3', 'dev', 'eth0', 'nolearning']);
    await ip(['link', 'set', 'flannel.1', 'mtu', '1450', 'up']);
    await ip(['addr', 'add', '10.244.3.0/32', 'dev', 'flannel.1']);
    const vtepMac = (await r.lab.link(fl.ns, 'flannel.1')).address!;
    await r.lab.nsenter(fl.ns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    // flannel's per-remote-node state: route via the remote vtep address, its MAC, and where that MAC lives.
    // A weir node's vtep MAC is its uplink MAC.
    await ip(['route', 'add', '10.244.1.0/24', 'via', '10.244.1.0', 'dev', 'flannel.1', 'onlink']);
    await ip(['neigh', 'add', '10.244.1.0', 'lladdr', n1.mac, 'dev', 'flannel.1', 'nud', 'permanent']);
    await r.lab.nsenter(fl.ns, 'bridge', ['fdb', 'append', n1.mac, 'dev', 'flannel.1', 'dst', n1.ip]);
    // Its pod, behind a plain veth with the gateway on the node side.
    const podNs = await r.lab.createNetns('f');
    await r.lab.veth({ a: { ns: fl.ns, name: 'vethf', addr: '10.244.3.1/24' }, b: { ns: podNs, name: 'eth0', addr: '10.244.3.31/24' }, mtu: 1450 });
    await r.lab.ip(podNs, ['route', 'add', 'default', 'via', '10.244.3.1']);
    flannelPod = { ns: podNs, ip: '10.244.3.31', name: 'f' };

    // weir's side: the tunnel entry routes.ts makes from the flannel Node (VtepMAC from its annotation).
    r.tunnel(n1, { ip: '192.168.77.3', mac: fl.mac, podCidr: '10.244.3.0/24', vtepMac }, 3);
    // ... and the /32 for the node's own address that routes.ts adds next to it.
    r.tunnel(n1, { ip: '192.168.77.3', mac: fl.mac, podCidr: '192.168.77.3/32', vtepMac }, 3);
  }, 60_000);

  afterAll(async () => {
    await r.cleanup();
  });

  it('ping both ways between weir pods and the flannel pod', async () => {
    for (const p of weirPods) {
      expect((await r.lab.ping(p.ns, flannelPod.ip, { count: 2 })).received, `${p.name} -> f`).toBe(2);
      expect((await r.lab.ping(flannelPod.ns, p.ip, { count: 2 })).received, `f -> ${p.name}`).toBe(2);
    }
  }, 30_000);

  it('TCP both ways, addresses preserved end to end', async () => {
    const servers = await Promise.all([...weirPods.map((p) => r.tcpServer(p.ns, 8080)), r.tcpServer(flannelPod.ns, 8080)]);
    try {
      for (const p of weirPods) {
        const out = await r.tcpClient(p.ns, flannelPod.ip, 8080, 300_000);
        expect(out.server).toEqual({ peer: p.ip, local: flannelPod.ip, bytes: 300_000 });
        expect(out.local).toBe(p.ip);
        const back = await r.tcpClient(flannelPod.ns, p.ip, 8080, 300_000);
        expect(back.server).toEqual({ peer: flannelPod.ip, local: p.ip, bytes: 300_000 });
      }
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  }, 60_000);

  it("with the /32 entry, traffic to the flannel node's SNAT port range goes through its vxlan device, unmasqueraded", async () => {
    const fl = r.lab.namespaces.find((n) => n.endsWith('-fl'))!;
    const srv = await r.tcpServer(fl, 62000);
    try {
      for (const p of weirPods) {
        const out = await r.tcpClient(p.ns, '192.168.77.3', 62000, 100_000);
        expect(out.server).toEqual({ peer: p.ip, local: '192.168.77.3', bytes: 100_000 });
      }
    } finally {
      await srv.stop();
    }
  }, 30_000);

  it('the flannel node itself reaches weir pods (source: its vtep address)', async () => {
    const fl = r.lab.namespaces.find((n) => n.endsWith('-fl'))!;
    expect((await r.lab.ping(fl, weirPods[0].ip, { count: 2 })).received).toBe(2);
  }, 30_000);
});
