// Times the agent's policy sync (compile + reconcile) on real pinned maps:
// P pods in N namespaces, K policies, E local endpoints; the first sync, a
// sync with nothing changed, and one pod label change (median of R).
// `npx vite-node test/policy-control/bench.ts [pods=5000] [policies=300] [endpoints=50]` (root)
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { agentMetrics } from '../../control/agent/metrics.js';
import { policySubsystem } from '../../control/agent/policy.js';
import type { ClusterState } from '../../control/agent/watch.js';
import { cleanupPins, cluster, namespace, netpol, node, pinnedMaps, pod } from './harness.js';

const P = Number(process.argv[2] ?? 5000);
const K = Number(process.argv[3] ?? 300);
const E = Number(process.argv[4] ?? 50);
const NS = 50;
const R = 5;

const ipOf = (i: number) => `10.${244 + (i >> 16)}.${(i >> 8) & 255}.${(i & 255) || 1}`;
const labelsOf = (i: number, gen = 0) => ({ app: `app-${(Math.floor(i / NS) + gen) % 20}`, tier: `t${(i * 7) % 3}`, ...(gen ? { rev: String(gen) } : {}) });
let pods: V1Pod[] = Array.from({ length: P }, (_, i) => pod(`ns-${i % NS}`, `pod-${i}`, ipOf(i + 2), labelsOf(i), [{ name: 'http', containerPort: 8080 }]));
const policies: V1NetworkPolicy[] = Array.from({ length: K }, (_, k) => {
  const ns = `ns-${k % NS}`;
  const sel = { matchLabels: { app: `app-${k % 20}` } };
  switch (k % 5) {
    case 0:
      return netpol(ns, `p${k}`, { podSelector: sel, ingress: [{ from: [{ podSelector: { matchLabels: { app: `app-${(k + 1) % 20}` } } }], ports: [{ protocol: 'TCP', port: 8080 }] }] });
    case 1:
      return netpol(ns, `p${k}`, { podSelector: sel, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: `t${k % 4}` } }, podSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['t0', 't1'] }] } }], ports: [{ protocol: 'TCP', port: 9000, endPort: 9100 }] }] });
    case 2:
      return netpol(ns, `p${k}`, { podSelector: sel, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `172.${16 + (k % 8)}.0.0/16`, except: [`172.${16 + (k % 8)}.1.0/24`] } }] }, { ports: [{ protocol: 'UDP', port: 53 }] }] });
    case 3:
      return netpol(ns, `p${k}`, { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] });
    default:
      return netpol(ns, `p${k}`, { podSelector: sel, ingress: [{ from: [{ podSelector: { matchLabels: { tier: `t${k % 3}` } }, namespaceSelector: {} }], ports: [{ protocol: 'TCP', port: 'http' }] }] });
  }
});
const namespaces = Array.from({ length: NS }, (_, i) => namespace(`ns-${i}`, { team: `t${i % 4}` }));
const nodes = Array.from({ length: 20 }, (_, i) => node(`n${i + 1}`, `192.168.50.${i + 1}`));
const endpoints = Array.from({ length: E }, (_, j) => {
  const i = j * Math.floor(P / E) + (j % NS);
  return { endpointId: 256 + j, ip: ipOf(i + 2), podNamespace: `ns-${i % NS}`, podName: `pod-${i}` };
});
const state = (): ClusterState => cluster({ namespaces, nodes, pods, networkPolicies: policies });

const pins = await pinnedMaps('bench');
const metrics = agentMetrics();
const log = { info() {}, warn() {}, error() {}, debug() {} } as never;
let st = state();
const stateDir = mkdtempSync(join(tmpdir(), 'wpc-bench-'));
const sub = policySubsystem({ stateDir, maps: pins.maps, nodeName: 'n1', hostAddresses: ['10.244.0.1'], endpoints: () => endpoints, cluster: () => st, log, metrics });
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const phase = (p: string) => {
  const m = metrics.policySyncDuration.samples().find((s) => s.startsWith(`weir_policy_sync_duration_seconds_sum{phase="${p}"}`));
  return Number(m?.split(' ')[1] ?? 0) * 1000;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
try {
  await sub.start!();
  let t0 = process.hrtime.bigint();
  await sub.sync(st);
  const first = ms(t0);
  const c = sub.compiled!;
  const firstCompile = phase('compile');
  const firstReconcile = phase('reconcile');
  console.log(`pods ${P}, policies ${K}, local endpoints ${E}: identities ${c.identities.size}, ipcache ${c.ipcache.size}, weir_policy4 ${[...pins.maps.policy4.entries()].length}, problems ${c.problems.length}`);
  console.log(`snapshot ${join(stateDir, 'policy.msgpack')}: ${(statSync(join(stateDir, 'policy.msgpack')).size / 1024).toFixed(0)} KiB`);
  console.log(`first sync: ${first.toFixed(1)} ms incl. snapshot write (compile incl. identity recovery ${firstCompile.toFixed(1)} ms, reconcile ${firstReconcile.toFixed(1)} ms)`);
  const [uc, ur] = [phase('compile'), phase('reconcile')];
  t0 = process.hrtime.bigint();
  await sub.sync(st);
  console.log(`unchanged sync: ${ms(t0).toFixed(1)} ms (compile ${(phase('compile') - uc).toFixed(1)} ms, reconcile ${(phase('reconcile') - ur).toFixed(1)} ms)`);
  const times: number[] = [];
  const comp: number[] = [];
  const rec: number[] = [];
  for (let r = 1; r <= R; r++) {
    // One pod (a peer many policies select) gets new labels.
    const i = (r * 7) % P;
    pods = pods.map((p, j) => (j === i ? { ...p, metadata: { ...p.metadata, labels: labelsOf(i, r) } } : p));
    st = state();
    const [c0, r0] = [phase('compile'), phase('reconcile')];
    t0 = process.hrtime.bigint();
    await sub.sync(st);
    times.push(ms(t0));
    comp.push(phase('compile') - c0);
    rec.push(phase('reconcile') - r0);
  }
  console.log(`one label change: median ${median(times).toFixed(1)} ms (compile ${median(comp).toFixed(1)} ms, reconcile ${median(rec).toFixed(1)} ms) over ${R}`);
} finally {
  cleanupPins();
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(pins.pinRoot, { recursive: true, force: true });
}
