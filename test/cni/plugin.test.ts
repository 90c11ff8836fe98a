// CNI protocol tests through bin/weir-cni, called exactly as a runtime calls
// it (CNI_* variables, config on stdin), against a real agent side (Ipam +
// EndpointManager + serveCni) programming a node netns with weir's datapath.
// Every failure case asserts that nothing was left half-made: links, routes,
// addresses, IPAM allocations, endpoint records, weir_ep4 entries.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseIpv4 } from '../../control/datapath/routes.js';
import { EndpointManager } from '../../control/endpoint/manager.js';
import { Ipam } from '../../control/ipam/allocator.js';
import { tc, TC_DEFAULT_HANDLE, TC_DEFAULT_PRIORITY } from '../../native/index.js';
import { NetnsLab, requireNetns, runOk } from '../lib/netns.js';
import { callCni, cniBuilt, TestNode } from './agent-fixture.js';

const skip = requireNetns('weir-cni against a node netns', ['ping', 'iptables']) || (!cniBuilt() && 'dist/ is not built (make dist)');
if (!cniBuilt() && process.env.CI) throw new Error('dist/ is not built; make test builds it before vitest');

const cid = () => randomBytes(16).toString('hex');
const ARGS = (pod: string) => `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod};K8S_POD_INFRA_CONTAINER_ID=x`;

describe.skipIf(skip)('bin/weir-cni with a node agent', () => {
  const lab = new NetnsLab({ prefix: 'weirtest-h4-' });
  let ext: string;
  let node: TestNode;
  const extra: TestNode[] = [];

  beforeAll(async () => {
    ext = await lab.createNetns('ext');
    node = await TestNode.create(lab, { name: 'n1', podCidr: '10.244.1.0/24', nodeIp: '192.168.50.1/24', id: 1, uplinkPeerNs: ext, uplinkPeerName: 'ext0', uplinkPeerAddr: '192.168.50.254/24' });
  });

  afterAll(async () => {
    for (const n of [node, ...extra]) await n?.destroy();
    await lab.cleanup();
  });

  const add = (ns: string, id: string, o: { conf?: Record<string, unknown>; ifname?: string; n?: TestNode } = {}) =>
    callCni({ command: 'ADD', containerId: id, netns: lab.nsPath(ns), ifname: o.ifname, args: ARGS(id.slice(0, 8)), conf: o.conf ?? (o.n ?? node).conf() });

  it('ADD -> CHECK -> DEL -> DEL again: the pod is wired, verified, then removed without a trace', async () => {
    const pod = await lab.createNetns('p1');
    const id = cid();
    const before = await node.snapshot([pod]);

    const r = await add(pod, id);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const res = r.json!;
    expect(res.cniVersion).toBe('1.1.0');
    const hostIf = node.manager.hostIfname(id, 'eth0');
    expect(hostIf).toMatch(/^lxc[0-9a-f]{12}$/);
    expect(res.interfaces).toEqual([
      { name: hostIf, mac: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/) },
      { name: 'eth0', mac: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/), mtu: 1450, sandbox: lab.nsPath(pod) },
    ]);
    const ip = (res.ips[0].address as string).replace('/32', '');
    // The snapshot used to prove "nothing left" does see an endpoint.
    const during = await node.snapshot([pod]);
    for (const k of ['nodeLinks', 'nodeRoutes', 'ipam', 'endpoints', 'ep4'] as const) {
      expect((during[k] as string[]).length, k).toBe((before[k] as string[]).length + 1);
    }
    expect((during.pods as Record<string, string[]>)[pod]).toEqual(['eth0', 'lo']);
    expect(res.ips).toEqual([{ address: `${ip}/32`, gateway: '10.244.1.1', interface: 1 }]);
    expect(res.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.244.1.1' }]);
    expect(ip).toMatch(/^10\.244\.1\.\d+$/);

    // Inside the pod: the interface, its /32, MTU, default route via the gateway.
    const link = await lab.link(pod, 'eth0');
    expect(link.mtu).toBe(1450);
    expect(link.address).toBe(res.interfaces[1].mac);
    expect(link.flags).toContain('UP');
    const addrs = JSON.parse((await lab.ip(pod, ['-j', '-4', 'addr', 'show', 'dev', 'eth0'])).stdout);
    expect(addrs[0].addr_info.map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`)).toEqual([`${ip}/32`]);
    const routes = JSON.parse((await lab.ip(pod, ['-j', '-4', 'route', 'show'])).stdout) as Array<{ dst: string; gateway?: string; dev: string }>;
    expect(routes).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: 'default', gateway: '10.244.1.1', dev: 'eth0' }),
      expect.objectContaining({ dst: '10.244.1.1', dev: 'eth0', scope: 'link' }),
    ]));
    // On the node: host veth, /32 route, programs, map entry, IPAM record with the pod's name.
    const host = await lab.link(node.ns, hostIf);
    expect(host.mtu).toBe(1450);
    const nodeRoute = JSON.parse((await lab.ip(node.ns, ['-j', 'route', 'show', 'exact', `${ip}/32`])).stdout);
    expect(nodeRoute).toEqual([expect.objectContaining({ dev: hostIf, scope: 'link' })]);
    const q = (attachPoint: 'ingress' | 'egress') => tc.query({ ifindex: host.ifindex, attachPoint, priority: TC_DEFAULT_PRIORITY, handle: TC_DEFAULT_HANDLE, netns: node.nsPath });
    expect(q('ingress')?.progId).toBe(node.datapath.programs.fromPod.info.id);
    expect(q('egress')?.progId).toBe(node.datapath.programs.toPod.info.id);
    const entry = node.datapath.maps.ep4.get({ addr: parseIpv4(ip) });
    expect(entry).toMatchObject({ ifindex: host.ifindex, flags: 0 });
    expect(entry!.mac).toEqual(Buffer.from(link.address!.split(':').map((x) => parseInt(x, 16))));
    expect(entry!.node_mac).toEqual(Buffer.from(host.address!.split(':').map((x) => parseInt(x, 16))));
    expect(node.ipam.get({ containerId: id, ifname: 'eth0' })).toMatchObject({ ip, podNamespace: 'default', podName: id.slice(0, 8) });

    // CHECK with the runtime's prevResult: success prints nothing.
    const check = await callCni({ command: 'CHECK', containerId: id, netns: lab.nsPath(pod), conf: node.conf({ prevResult: res }) });
    expect(check).toMatchObject({ code: 0, stdout: '' });
    // CHECK notices a broken endpoint (and names what is wrong), then passes again once repaired.
    await lab.ip(pod, ['route', 'del', 'default']);
    const bad = await callCni({ command: 'CHECK', containerId: id, netns: lab.nsPath(pod), conf: node.conf({ prevResult: res }) });
    expect(bad.code).toBe(1);
    expect(bad.json).toMatchObject({ code: 101, msg: 'endpoint check failed' });
    expect(bad.json!.details).toContain('default route via 10.244.1.1 dev eth0 is missing');
    await lab.ip(pod, ['route', 'add', 'default', 'via', '10.244.1.1', 'dev', 'eth0']);
    const wrongPrev = structuredClone(res);
    wrongPrev.ips[0].address = '10.244.1.250/32';
    const bad2 = await callCni({ command: 'CHECK', containerId: id, netns: lab.nsPath(pod), conf: node.conf({ prevResult: wrongPrev }) });
    expect(bad2.json?.details).toContain('prevResult names address 10.244.1.250/32');
    expect((await callCni({ command: 'CHECK', containerId: id, netns: lab.nsPath(pod), conf: node.conf({ prevResult: res }) })).code).toBe(0);

    const del = await callCni({ command: 'DEL', containerId: id, netns: lab.nsPath(pod), conf: node.conf({ prevResult: res }) });
    expect(del).toMatchObject({ code: 0, stdout: '' });
    expect(await node.snapshot([pod])).toEqual(before);
    // DEL again, with and without a netns: still success, still nothing there.
    expect((await callCni({ command: 'DEL', containerId: id, netns: lab.nsPath(pod), conf: node.conf({ prevResult: res }) })).code).toBe(0);
    expect((await callCni({ command: 'DEL', containerId: id, netns: '', conf: node.conf() })).code).toBe(0);
    expect(await node.snapshot([pod])).toEqual(before);
    // CHECK after DEL: the endpoint is unknown.
    expect((await callCni({ command: 'CHECK', containerId: id, netns: lab.nsPath(pod), conf: node.conf({ prevResult: res }) })).json?.code).toBe(101);
  });

  it('DEL after the pod netns is gone cleans up (the runtime may delete the netns first)', async () => {
    const pod = await lab.createNetns('p-gone');
    const before = await node.snapshot();
    const id = cid();
    const r = await add(pod, id);
    expect(r.code).toBe(0);
    await lab.ip(pod, ['link', 'show']); // exists
    await runOk('ip', ['netns', 'del', pod]);
    const del = await callCni({ command: 'DEL', containerId: id, netns: lab.nsPath(pod), conf: node.conf() });
    expect(del.code).toBe(0);
    expect(await node.snapshot()).toEqual(before);
  });

  it('parallel ADDs and DELs (as a runtime starting many pods): distinct addresses, everything wired, then nothing left', async () => {
    const before = await node.snapshot();
    const pods = await Promise.all(Array.from({ length: 8 }, (_, i) => lab.createNetns(`par${i}`)));
    const ids = pods.map(() => cid());
    const results = await Promise.all(pods.map((p, i) => add(p, ids[i])));
    expect(results.map((r) => r.code)).toEqual(pods.map(() => 0));
    const ips = results.map((r) => r.json!.ips[0].address);
    expect(new Set(ips).size).toBe(8);
    const checks = await Promise.all(pods.map((p, i) => callCni({ command: 'CHECK', containerId: ids[i], netns: lab.nsPath(p), conf: node.conf({ prevResult: results[i].json }) })));
    expect(checks.map((c) => c.code)).toEqual(pods.map(() => 0));
    expect((await lab.ping(pods[0], ips[7].replace('/32', ''), { count: 2 })).received).toBe(2);
    const dels = await Promise.all(pods.map((p, i) => callCni({ command: 'DEL', containerId: ids[i], netns: lab.nsPath(p), conf: node.conf() })));
    expect(dels.map((d) => d.code)).toEqual(pods.map(() => 0));
    expect(await node.snapshot()).toEqual(before);
  });

  it('a host veth and address left by a crashed ADD are taken over by the retried ADD', async () => {
    const pod = await lab.createNetns('crash');
    const id = cid();
    const before = await node.snapshot([pod]);
    // What an agent killed between allocating and recording leaves: the address and a host veth.
    const held = node.ipam.allocate({ containerId: id, ifname: 'eth0' }).ip;
    await lab.ip(node.ns, ['link', 'add', node.manager.hostIfname(id, 'eth0'), 'type', 'veth', 'peer', 'name', 'crash-peer']);
    const r = await add(pod, id);
    expect(r.code, r.stdout).toBe(0);
    expect(r.json!.ips[0].address).toBe(`${held}/32`);
    expect((await callCni({ command: 'CHECK', containerId: id, netns: lab.nsPath(pod), conf: node.conf({ prevResult: r.json }) })).code).toBe(0);
    expect((await callCni({ command: 'DEL', containerId: id, netns: lab.nsPath(pod), conf: node.conf() })).code).toBe(0);
    expect(await node.snapshot([pod])).toEqual(before);
  });

  it('answers in the configured cniVersion (0.3.1, 0.4.0, 1.0.0)', async () => {
    for (const v of ['0.3.1', '0.4.0', '1.0.0']) {
      const pod = await lab.createNetns(`pv${v.replace(/\./g, '')}`);
      const id = cid();
      const r = await add(pod, id, { conf: node.conf({ cniVersion: v }) });
      expect(r.code, r.stdout).toBe(0);
      expect(r.json!.cniVersion).toBe(v);
      expect(r.json!.ips[0].version === '4').toBe(v !== '1.0.0');
      expect('mtu' in r.json!.interfaces[1]).toBe(false);
      if (v !== '0.3.1') expect((await callCni({ command: 'CHECK', containerId: id, netns: lab.nsPath(pod), conf: node.conf({ cniVersion: v, prevResult: r.json }) })).code).toBe(0);
      expect((await callCni({ command: 'DEL', containerId: id, netns: lab.nsPath(pod), conf: node.conf({ cniVersion: v }) })).code).toBe(0);
    }
  });

  it('VERSION lists the supported versions; STATUS is 0 with an agent and 50 without', async () => {
    const v = await callCni({ command: 'VERSION', conf: '{"cniVersion":"1.1.0"}' });
    expect(v.code).toBe(0);
    expect(v.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    expect(await callCni({ command: 'STATUS', conf: node.conf() })).toMatchObject({ code: 0, stdout: '' });
    const none = await callCni({ command: 'STATUS', conf: node.conf({ socketPath: join(node.stateDir, 'absent.sock') }) });
    expect(none.code).toBe(1);
    expect(none.json).toMatchObject({ cniVersion: '1.1.0', code: 50 });
    expect(none.json!.details).toContain('absent.sock');
    const addNoAgent = await callCni({ command: 'ADD', containerId: cid(), netns: '/run/netns/whatever', conf: node.conf({ socketPath: join(node.stateDir, 'absent.sock') }) });
    expect(addNoAgent.json).toMatchObject({ code: 11, msg: 'weir agent is not running' });
  });

  it('GC removes every attachment not in cni.dev/valid-attachments, and leaked host veths', async () => {
    const before = await node.snapshot();
    const pods = await Promise.all(['ga', 'gb', 'gc'].map((n) => lab.createNetns(n)));
    const ids = pods.map(() => cid());
    for (const [i, p] of pods.entries()) expect((await add(p, ids[i])).code).toBe(0);
    // A host veth a crashed agent left behind (weir's naming, no endpoint).
    await lab.ip(node.ns, ['link', 'add', 'lxc0123456789ab', 'type', 'veth', 'peer', 'name', 'leak-peer']);
    const keep = { containerID: ids[0], ifname: 'eth0' };
    const gc = await callCni({ command: 'GC', conf: node.conf({ 'cni.dev/valid-attachments': [keep] }) });
    expect(gc).toMatchObject({ code: 0, stdout: '' });
    expect(node.manager.list().map((r) => r.containerId)).toEqual([ids[0]]);
    expect(node.ipam.list().map((a) => a.containerId)).toEqual([ids[0]]);
    const links = (JSON.parse((await lab.ip(node.ns, ['-j', 'link', 'show'])).stdout) as Array<{ ifname: string }>).map((l) => l.ifname);
    expect(links).not.toContain('lxc0123456789ab');
    expect(links).not.toContain(node.manager.hostIfname(ids[1], 'eth0'));
    expect(links).toContain(node.manager.hostIfname(ids[0], 'eth0'));
    expect((await callCni({ command: 'CHECK', containerId: ids[0], netns: lab.nsPath(pods[0]), conf: node.conf() })).code).toBe(0);
    // The removed pods lost their interface too (the veth pair goes as one).
    expect(JSON.parse((await lab.ip(pods[1], ['-j', 'link', 'show'])).stdout).map((l: { ifname: string }) => l.ifname)).toEqual(['lo']);
    await callCni({ command: 'DEL', containerId: ids[0], netns: lab.nsPath(pods[0]), conf: node.conf() });
    expect(await node.snapshot()).toEqual(before);
  });

  describe('bad input leaves nothing half-made', () => {
    type BadCase = [string, number, { conf?: string; omit?: string[]; confOverride?: Record<string, unknown>; netns?: string }];
    const cases: BadCase[] = [
      ['malformed JSON', 6, { conf: '{"cniVersion": "1.1.0", "name": "weir", ' }],
      ['missing CNI_NETNS', 4, { omit: ['CNI_NETNS'] }],
      ['unknown cniVersion', 1, { confOverride: { cniVersion: '2.7.0' } }],
      ['a netns path that does not exist', 3, { netns: '/run/netns/weirtest-h4-no-such-netns' }],
      ['an ipam section (weir allocates itself)', 2, { confOverride: { ipam: { type: 'host-local', subnet: '10.1.0.0/16' } } }],
    ];
    it.each(cases)('%s -> code %i', async (_what, code, o) => {
      const pod = await lab.createNetns(`bad${code}`);
      const before = await node.snapshot([pod]);
      const r = await callCni({
        command: 'ADD',
        containerId: cid(),
        netns: o.netns ?? lab.nsPath(pod),
        conf: o.conf ?? node.conf(o.confOverride),
        omit: o.omit,
      });
      expect(r.code).not.toBe(0);
      expect(r.json).toMatchObject({ code });
      expect(typeof r.json!.msg).toBe('string');
      expect(await node.snapshot([pod])).toEqual(before);
    });

    it('CNI_IFNAME already taken in the pod -> code 104, the half-made veth and address are rolled back', async () => {
      const pod = await lab.createNetns('taken');
      const other = await lab.createNetns('taken-peer');
      await lab.veth({ a: { ns: pod, name: 'eth0' }, b: { ns: other, name: 'x0' } });
      const before = await node.snapshot([pod]);
      const r = await add(pod, cid());
      expect(r.json).toMatchObject({ code: 104, msg: 'interface eth0 already exists in the container' });
      expect(await node.snapshot([pod])).toEqual(before);
    });

    it('a datapath failure after the veth, routes and map entry are made rolls all of them back (code 105)', async () => {
      const stateDir = join(node.stateDir, 'broken');
      const ipam = Ipam.open({ cidr: '10.244.1.0/24', stateFile: join(stateDir, 'ipam.json') });
      const broken = EndpointManager.open({
        ipam,
        stateFile: join(stateDir, 'endpoints.json'),
        mtu: 1450,
        nodeNetns: node.nsPath,
        datapath: {
          maps: node.datapath.maps,
          attachPod: () => {
            throw new Error('injected attach failure');
          },
          detachPod: (l) => node.datapath.detachPod(l),
        },
      });
      const pod = await lab.createNetns('broken');
      const before = await node.snapshot([pod]);
      await expect(broken.add({ containerId: cid(), ifname: 'eth0', netns: lab.nsPath(pod) })).rejects.toMatchObject({ code: 105, details: 'injected attach failure' });
      expect(await node.snapshot([pod])).toEqual(before);
      expect(ipam.list()).toEqual([]);
      expect(broken.list()).toEqual([]);
    });

    it('an exhausted pool (a /30) -> code 102 and STATUS 50; nothing made, the first pod untouched', async () => {
      const peer = await lab.createNetns('ext2');
      const tiny = await TestNode.create(lab, { name: 'n30', podCidr: '10.244.9.0/30', nodeIp: '192.168.51.1/24', id: 9, uplinkPeerNs: peer, uplinkPeerName: 'ext0' });
      extra.push(tiny);
      const p1 = await lab.createNetns('tiny1');
      const p2 = await lab.createNetns('tiny2');
      const first = await add(p1, cid(), { n: tiny });
      expect(first.json!.ips[0].address).toBe('10.244.9.2/32');
      const before = await tiny.snapshot([p1, p2]);
      const r = await add(p2, cid(), { n: tiny });
      expect(r.code).toBe(1);
      expect(r.json).toMatchObject({ code: 102, msg: 'no free pod address' });
      expect(r.json!.details).toContain('10.244.9.0/30');
      expect(await tiny.snapshot([p1, p2])).toEqual(before);
      const status = await callCni({ command: 'STATUS', conf: tiny.conf() });
      expect(status.json).toMatchObject({ code: 50, details: 'no free address in the pod CIDR 10.244.9.0/30' });
    });
  });

  it('agent restart: endpoints survive (CHECK passes, traffic flows), new ADDs get fresh addresses', async () => {
    const pa = await lab.createNetns('ra');
    const ida = cid();
    const a = await add(pa, ida);
    expect(a.code).toBe(0);
    const ipA = a.json!.ips[0].address.replace('/32', '');
    // A pod whose netns the runtime deletes while the agent is down.
    const pg = await lab.createNetns('rgone');
    const idg = cid();
    const g = await add(pg, idg);
    expect(g.code).toBe(0);
    const ipG = g.json!.ips[0].address.replace('/32', '');
    const usedBefore = node.ipam.list().map((x) => x.ip);
    const oldProg = node.datapath.programs.fromPod.info.id;

    await node.stop();
    await runOk('ip', ['netns', 'del', pg]);
    // While the agent is down the plugin says "try again later".
    const pDown = await lab.createNetns('rdown');
    expect((await add(pDown, cid())).json).toMatchObject({ code: 11 });
    expect((await lab.ping(node.ns, ipA, { count: 2 })).received).toBe(2); // the datapath keeps working without the agent

    await node.start();
    expect(node.datapath.programs.fromPod.info.id).not.toBe(oldProg); // reloaded; resync re-attached
    // resync dropped the vanished pod's map entry; its record and address wait for the runtime's DEL.
    expect(node.datapath.maps.ep4.get({ addr: parseIpv4(ipG) })).toBeUndefined();
    expect(node.ipam.byIp(ipG)?.containerId).toBe(idg);
    expect((await callCni({ command: 'DEL', containerId: idg, netns: '', conf: node.conf() })).code).toBe(0);
    expect(node.ipam.byIp(ipG)).toBeUndefined();
    expect(node.manager.get({ containerId: idg, ifname: 'eth0' })).toBeUndefined();
    expect((await callCni({ command: 'CHECK', containerId: ida, netns: lab.nsPath(pa), conf: node.conf({ prevResult: a.json }) })).code).toBe(0);
    const pb = await lab.createNetns('rb');
    const b = await add(pb, cid());
    expect(b.code).toBe(0);
    const ipB = b.json!.ips[0].address.replace('/32', '');
    expect(usedBefore).not.toContain(ipB);
    expect(ipB).not.toBe(ipA);
    expect((await lab.ping(pa, ipB, { count: 2 })).received).toBe(2);
  });
});
