// Two weir nodes on a fabric (a bridge in its own netns), pods created through
// bin/weir-cni: node -> pod and pod -> pod ping on every pair, TCP both ways
// with the address a pod sees for itself equal to what its peer sees, pod ->
// a host outside the cluster masqueraded to the node's address, and agent
// restarts under a continuous cross-node ping.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsLab, parsePingOutput, requireNetns, type LabProcess } from '../lib/netns.js';
import { callCni, cniBuilt, TestNode } from './agent-fixture.js';
import { tcpProbe, tcpServer } from './tcp.js';

const skip = requireNetns('two-node pod network through weir-cni', ['ping', 'iptables']) || (!cniBuilt() && 'dist/ is not built (make dist)');
if (!cniBuilt() && process.env.CI) throw new Error('dist/ is not built; make test builds it before vitest');

interface Pod {
  name: string;
  ns: string;
  ip: string;
  node: TestNode;
  id: string;
}

describe.skipIf(skip)('two nodes, pods through weir-cni', () => {
  const lab = new NetnsLab({ prefix: 'weirtest-h4-' });
  let fabric: string;
  let ext: string;
  const nodes: TestNode[] = [];
  const pods: Pod[] = [];
  const servers: LabProcess[] = [];

  beforeAll(async () => {
    fabric = await lab.createNetns('fabric');
    await lab.ip(fabric, ['link', 'add', 'br0', 'type', 'bridge']);
    await lab.ip(fabric, ['link', 'set', 'br0', 'up']);
    // A host outside the cluster, on the fabric.
    ext = await lab.createNetns('outside');
    await lab.veth({ a: { ns: ext, name: 'eth0', addr: '192.168.60.100/24' }, b: { ns: fabric, name: 'pext' } });
    await lab.ip(fabric, ['link', 'set', 'pext', 'master', 'br0']);
    for (const [i, name] of ['n1', 'n2'].entries()) {
      const n = await TestNode.create(lab, {
        name,
        podCidr: `10.244.${i + 1}.0/24`,
        nodeIp: `192.168.60.${i + 1}/24`,
        id: i + 1,
        uplinkPeerNs: fabric,
        uplinkPeerName: `p${i + 1}`,
      });
      await lab.ip(fabric, ['link', 'set', `p${i + 1}`, 'master', 'br0']);
      nodes.push(n);
    }
    nodes[0].routeTo([nodes[1]]);
    nodes[1].routeTo([nodes[0]]);
    for (const n of nodes) {
      for (const k of ['a', 'b']) {
        const name = `${n.spec.name}${k}`;
        const ns = await lab.createNetns(name);
        const id = randomBytes(16).toString('hex');
        const r = await callCni({ command: 'ADD', containerId: id, netns: lab.nsPath(ns), args: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${name}`, conf: n.conf() });
        if (r.code !== 0) throw new Error(`ADD ${name}: ${r.stdout} ${r.stderr}`);
        pods.push({ name, ns, ip: r.json!.ips[0].address.replace('/32', ''), node: n, id });
      }
    }
  });

  afterAll(async () => {
    for (const s of servers) await s.stop();
    for (const n of nodes) await n.destroy();
    await lab.cleanup();
  });

  it('gives each node its own CIDR', () => {
    expect(pods.map((p) => p.ip)).toEqual([expect.stringMatching(/^10\.244\.1\./), expect.stringMatching(/^10\.244\.1\./), expect.stringMatching(/^10\.244\.2\./), expect.stringMatching(/^10\.244\.2\./)]);
  });

  it('every node reaches its pods, every pod reaches every pod (ping)', async () => {
    const failures: string[] = [];
    for (const p of pods) {
      const s = await lab.ping(p.node.ns, p.ip, { count: 2 });
      if (s.received !== 2) failures.push(`${p.node.spec.name} -> ${p.name}: ${s.received}/2`);
    }
    for (const a of pods) {
      for (const b of pods) {
        if (a === b) continue;
        const s = await lab.ping(a.ns, b.ip, { count: 2 });
        if (s.received !== 2) failures.push(`${a.name} -> ${b.name}: ${s.received}/2`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('TCP both ways across nodes and on one node; the address a pod sees for itself is the one its peer sees', async () => {
    for (const p of pods) servers.push(await tcpServer(lab, p.ns, 7070));
    const pairs: Array<[Pod, Pod]> = [
      [pods[0], pods[2]],
      [pods[2], pods[0]],
      [pods[1], pods[3]],
      [pods[3], pods[1]],
      [pods[0], pods[1]],
    ];
    for (const [client, server] of pairs) {
      const r = await tcpProbe(lab, client.ns, server.ip, 7070);
      expect(r, `${client.name} -> ${server.name}`).toEqual({ local: client.ip, seen: client.ip, at: server.ip });
    }
  });

  it('a pod reaching a host outside the cluster is masqueraded to its node\'s address', async () => {
    servers.push(await tcpServer(lab, ext, 7071));
    for (const p of [pods[0], pods[2]]) {
      const r = await tcpProbe(lab, p.ns, '192.168.60.100', 7071);
      expect(r.local).toBe(p.ip);
      expect(r.seen).toBe(p.node.spec.nodeIp.split('/')[0]);
    }
  });

  it('agent restarts on both nodes: a continuous cross-node ping loses nothing, and new pods get fresh addresses', async () => {
    const [a, b] = [pods[0], pods[3]];
    // Runs until interrupted (SIGINT makes ping print its summary).
    const ping = lab.spawn(a.ns, 'ping', ['-n', '-i', '0.02', '-W', '1', b.ip], { timeoutMs: 120_000 });
    await ping.waitForLine(/bytes from/, 5_000);
    const before = nodes.map((n) => n.ipam.list().map((x) => x.ip));
    for (const n of nodes) {
      await n.stop();
      await n.start();
      n.routeTo(nodes.filter((o) => o !== n));
    }
    const seen = ping.lines.filter((l) => /bytes from/.test(l)).length;
    await ping.waitUntil(() => ping.lines.filter((l) => /bytes from/.test(l)).length >= seen + 20, 10_000, '20 more replies after the restarts');
    expect(ping.running).toBe(true);
    process.kill(-ping.child.pid!, 'SIGINT');
    const done = await ping.exited;
    const stats = parsePingOutput(done.stdout, done.code);
    // The window holds replies from before the first stop and 20 after the last start.
    expect(stats.transmitted).toBeGreaterThanOrEqual(seen + 20);
    // Bound: nothing lost but, at most, the one echo in flight when ping was interrupted. The
    // datapath never stops during an agent restart (pinned maps, filters replaced in place).
    expect(stats.received).toBeGreaterThanOrEqual(stats.transmitted - 1);

    for (const [i, n] of nodes.entries()) {
      const ns = await lab.createNetns(`${n.spec.name}new`);
      const r = await callCni({ command: 'ADD', containerId: randomBytes(8).toString('hex'), netns: lab.nsPath(ns), conf: n.conf() });
      expect(r.code, r.stdout).toBe(0);
      const ip = r.json!.ips[0].address.replace('/32', '');
      expect(before[i]).not.toContain(ip);
      expect((await lab.ping(ns, a.ip, { count: 2 })).received).toBe(2);
    }
  });
});
