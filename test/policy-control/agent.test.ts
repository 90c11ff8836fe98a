// The agent's policy subsystem on real pinned maps: identity numbers survive
// an agent restart, an invalid policy keeps its last good version, the CLI
// snapshot is written, and a CNI ADD returns only after the new endpoint's
// ep_policy entry is in the map (the agent's Agent loop, CNI socket and
// policy subsystem as runAgent wires them; the endpoint side is a stand-in
// that records endpoints as EndpointManager does).
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../control/agent/agent.js';
import { serveCni, type CniHandler } from '../../control/agent/cni-server.js';
import { agentMetrics } from '../../control/agent/metrics.js';
import { policySubsystem, withPolicy } from '../../control/agent/policy.js';
import type { ClusterState } from '../../control/agent/watch.js';
import { callAgent } from '../../control/cni/client.js';
import { WIRE_VERSION } from '../../control/cni/wire.js';
import type { DatapathMaps } from '../../control/datapath/maps.js';
import { compilePolicy } from '../../control/policy/compile.js';
import { MemoryIdentityAllocator } from '../../control/policy/identity.js';
import { readPolicySnapshot } from '../../control/policy/snapshot.js';
import type { LocalEndpoint } from '../../control/policy/types.js';
import { requireRoot } from '../lib/netns.js';
import { cleanupPins, cluster, ipNum, namespace, netpol, node, pinnedMaps, pod } from './harness.js';

const skip = requireRoot('policy subsystem on pinned maps');
const dirs: string[] = [];
afterAll(() => {
  cleanupPins();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'wpc-'));
  dirs.push(d);
  return d;
};

function captureLog() {
  const warnings: Array<{ obj: Record<string, unknown>; msg: string }> = [];
  const log = { info() {}, debug() {}, error() {}, warn: (obj: Record<string, unknown>, msg: string) => void warnings.push({ obj, msg }) };
  return { log: log as never, warnings };
}

const webIn = (ports: unknown[]) =>
  netpol('a', 'web-in', { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports }] });

function state(extraPods: ClusterState['pods'] = [], policies = [webIn([{ protocol: 'TCP', port: 8080 }])]): ClusterState {
  return cluster({
    namespaces: [namespace('a'), namespace('b')],
    nodes: [node('n1', '192.168.50.1'), node('n2', '192.168.50.2')],
    pods: [...extraPods, pod('a', 'web', '10.244.1.10', { app: 'web' }), pod('a', 'client', '10.244.1.11', { app: 'client' }), pod('b', 'x', '10.244.2.20', { app: 'x' })],
    networkPolicies: policies,
  });
}

const EPS: LocalEndpoint[] = [{ endpointId: 300, ip: '10.244.1.10', podNamespace: 'a', podName: 'web' }];

function subsystem(maps: DatapathMaps, st: () => ClusterState, o: { stateDir?: string; endpoints?: () => LocalEndpoint[]; log?: never } = {}) {
  return policySubsystem({
    maps,
    nodeName: 'n1',
    hostAddresses: ['10.244.1.1'],
    stateDir: o.stateDir,
    endpoints: o.endpoints ?? (() => EPS),
    cluster: st,
    log: o.log ?? captureLog().log,
    metrics: agentMetrics(),
  });
}

const allows = (m: DatapathMaps, ep: number, peer: string, port: number) => {
  const id = m.epPolicy.get(ep)?.ingress_id;
  if (!id) return true;
  const identity = m.ipcache4.get({ prefixlen: 32, addr: ipNum(peer) })?.identity ?? 2;
  return !!(m.policy4.get({ prefixlen: 96, policy_id: id, identity, proto: 6, pad: 0, port }) ?? m.policy4.get({ prefixlen: 96, policy_id: id, identity: 0, proto: 6, pad: 0, port }));
};

describe.skipIf(skip)('agent policy subsystem', () => {
  it('an agent restart keeps every identity number (a fresh allocator would renumber)', async () => {
    const pins = await pinnedMaps('restart');
    // History: two pods (at the lowest and highest addresses) came and went, so
    // this agent's numbers have holes a fresh allocator would close.
    const s0 = state([pod('z', 'lo', '10.0.0.1', { app: 'gone1' }), pod('z', 'hi', '10.255.255.1', { app: 'gone2' })]);
    const s1 = state();
    const a = subsystem(pins.maps, () => s1);
    await a.start!();
    await a.sync(s0);
    await a.sync(s1);
    const before = new Map(pins.maps.ipcache4.dump().map(([k, v]) => [`${k.addr}/${k.prefixlen}`, v.identity]));
    const gen = pins.maps.policyGen.get(0)!.gen;

    // While the agent was down a pod appeared.
    const s2 = state([pod('0first', 'p', '10.244.3.3', { app: 'first' })]);
    const fresh = compilePolicy({ ...s2, policies: s2.networkPolicies, nodeName: 'n1', hostAddresses: ['10.244.1.1'], endpoints: EPS } as never, new MemoryIdentityAllocator());
    const renumbered = [...before].filter(([k, id]) => {
      const [addr, len] = k.split('/').map(Number);
      const p = `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}/${len}`;
      return fresh.ipcache.get(p) !== undefined && fresh.ipcache.get(p) !== id;
    });
    expect(renumbered.length, 'the scenario must renumber without recovery').toBeGreaterThan(0);

    const b = subsystem(pins.reopen(), () => s2);
    await b.start!();
    await b.sync(s2);
    const after = new Map(pins.maps.ipcache4.dump().map(([k, v]) => [`${k.addr}/${k.prefixlen}`, v.identity]));
    for (const [k, id] of before) expect(after.get(k), k).toBe(id);
    expect(after.size).toBe(before.size + 1);
    expect(after.get(`${ipNum('10.244.3.3')}/32`)).toBeGreaterThanOrEqual(256);
    expect(pins.maps.policyGen.get(0)!.gen).toBe(gen + 1);

    // And a restart with nothing changed writes nothing at all.
    const c = subsystem(pins.reopen(), () => s2);
    await c.start!();
    await c.sync(s2);
    expect(pins.maps.policyGen.get(0)!.gen).toBe(gen + 1);
  });

  it('writes the CLI snapshot; an invalid policy keeps its last good version and is logged once', async () => {
    const pins = await pinnedMaps('snap');
    const dir = tmp();
    const { log, warnings } = captureLog();
    let st = state();
    const s = subsystem(pins.maps, () => st, { stateDir: dir, log });
    await s.start!();
    await s.sync(st);
    const snap = readPolicySnapshot(join(dir, 'policy.msgpack'));
    expect(snap.gen).toBe(pins.maps.policyGen.get(0)!.gen);
    expect(snap.endpoints).toEqual([expect.objectContaining({ endpointId: 300, pod: 'a/web', ip: '10.244.1.10', ingress: expect.objectContaining({ policies: ['a/web-in'] }) })]);
    expect(snap.policyIds['300']).toEqual(pins.maps.epPolicy.get(300));
    expect(snap.identities.some((i) => i.kind === 'pod' && i.namespace === 'a' && i.labels?.app === 'client')).toBe(true);
    expect(allows(pins.maps, 300, '10.244.1.11', 8080)).toBe(true);

    // The policy is edited into something invalid: port 70000. Its last good version stays in force.
    st = state([], [webIn([{ protocol: 'TCP', port: 70000 }])]);
    await s.sync(st);
    await s.sync(st);
    expect(allows(pins.maps, 300, '10.244.1.11', 8080)).toBe(true);
    const problems = warnings.filter((w) => w.obj.object === 'a/web-in' && w.obj.field);
    expect(problems).toHaveLength(1);
    expect(problems[0].obj).toMatchObject({ kind: 'NetworkPolicy', object: 'a/web-in', field: expect.stringContaining('port') });
    expect(readPolicySnapshot(join(dir, 'policy.msgpack')).problems).toEqual([expect.objectContaining({ object: 'a/web-in' })]);

    // Fixed: the new version applies.
    st = state([], [webIn([{ protocol: 'TCP', port: 9090 }])]);
    await s.sync(st);
    expect(allows(pins.maps, 300, '10.244.1.11', 8080)).toBe(false);
    expect(allows(pins.maps, 300, '10.244.1.11', 9090)).toBe(true);
  });

  it('a CNI ADD returns only once the new endpoint has its ep_policy entry; DEL removes it', async () => {
    const pins = await pinnedMaps('cni');
    const dir = tmp();
    // The endpoint side: records endpoints as EndpointManager does (podNamespace/podName from CNI_ARGS).
    const records = new Map<string, LocalEndpoint>();
    let nextId = 400;
    const handler: CniHandler & { get(k: { containerId: string; ifname: string }): LocalEndpoint | undefined } = {
      async add(req) {
        await new Promise((r) => setTimeout(r, 5));
        const n = nextId++;
        records.set(`${req.containerId}/${req.ifname}`, { endpointId: n, ip: `10.244.1.${n - 380}`, podNamespace: req.args?.K8S_POD_NAMESPACE, podName: req.args?.K8S_POD_NAME });
        return { hostIfname: 'x', hostMac: '', podIfname: req.ifname, podMac: '', sandbox: req.netns, mtu: 1450, address: `10.244.1.${n - 380}/32`, gateway: '10.244.1.1', routes: [] };
      },
      async del(req) {
        records.delete(`${req.containerId}/${req.ifname}`);
      },
      async check() {},
      async gc() {},
      status: () => ({ ready: true, endpoints: records.size, freeAddresses: 100 }),
      get: (k) => records.get(`${k.containerId}/${k.ifname}`),
    };
    // The informer already holds the new pods (labels set; no podIP yet); no watch event reaches the agent loop.
    let st = state([
      { ...pod('a', 'web-2', '', { app: 'web' }), status: { phase: 'Pending' } },
      { ...pod('a', 'web-3', '', { app: 'web' }), status: { phase: 'Pending' } },
    ]);
    class Source extends EventEmitter {
      async start() {}
      async stop() {}
      snapshot() {
        return st;
      }
    }
    const source = new Source();
    const policy = subsystem(pins.maps, () => source.snapshot(), { stateDir: dir, endpoints: () => [...records.values()] });
    const agent = new Agent({ log: pino({ level: 'silent' }), metrics: agentMetrics(), source, subsystems: [policy], debounceMs: 5 });
    await agent.start();
    const withP = await serveCni({ socketPath: join(dir, 'cni.sock'), manager: withPolicy(handler, policy, handler) });
    const without = await serveCni({ socketPath: join(dir, 'plain.sock'), manager: handler });
    try {
      const req = (id: string, name: string) => ({ v: WIRE_VERSION, op: 'ADD' as const, network: 'weir', containerId: id, ifname: 'eth0', netns: '/proc/self/ns/net', args: { K8S_POD_NAMESPACE: 'a', K8S_POD_NAME: name } });
      const res = await callAgent(join(dir, 'cni.sock'), req('c1', 'web-2'), 5000);
      // Read synchronously at the reply: nothing else could have run in between.
      const at = pins.maps.epPolicy.get(400);
      expect(res.ok).toBe(true);
      expect(at?.ingress_id ?? 0).toBeGreaterThan(0);
      expect(allows(pins.maps, 400, '10.244.1.11', 8080)).toBe(true);
      expect(allows(pins.maps, 400, '10.244.2.20', 8080)).toBe(false);

      // The control: the same ADD through a socket without the policy step is not programmed at reply time.
      const res2 = await callAgent(join(dir, 'plain.sock'), req('c2', 'web-3'), 5000);
      expect(res2.ok).toBe(true);
      expect(pins.maps.epPolicy.get(401)).toBeUndefined();

      // The informer lags: the Pod shows up 300 ms into the ADD; the ADD waits for it.
      setTimeout(() => {
        st = { ...st, pods: [...st.pods, { ...pod('a', 'web-4', '', { app: 'web' }), status: { phase: 'Pending' } }] };
      }, 300);
      const res3 = await callAgent(join(dir, 'cni.sock'), req('c3', 'web-4'), 5000);
      expect(res3.ok).toBe(true);
      expect(pins.maps.epPolicy.get(402)?.ingress_id ?? 0).toBeGreaterThan(0);

      const del = await callAgent(join(dir, 'cni.sock'), { v: WIRE_VERSION, op: 'DEL', network: 'weir', containerId: 'c1', ifname: 'eth0' }, 5000);
      expect(del.ok).toBe(true);
      expect(pins.maps.epPolicy.get(400)).toBeUndefined();
    } finally {
      await withP.close(1000);
      await without.close(1000);
      await agent.stop();
    }
  });
});
