// `make demo` / `weir lab demo`: the seeds' story on one machine. Brings the
// lab up with two nodes, deploys seed 000's guestbook, and shows pod
// networking, services, NodePort and load balancing working, with every
// probe's result printed. It leaves the lab running for inspection.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../paths.js';
import { labApply, labUp, listPods, api, findPodNetns } from './lab.js';
import { EXT_NS, labNode, nsPath, type LabNode } from './topology.js';

const out = (s = '') => process.stdout.write(s + '\n');
const head = (s: string) => out(`\n== ${s}`);

export function inNs(ns: string, cmd: string[], timeoutMs = 10_000) {
  const r = spawnSync('nsenter', [`--net=${nsPath(ns)}`, ...cmd], { encoding: 'utf8', timeout: timeoutMs });
  return { ok: r.status === 0, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export const ping = (ns: string, ip: string) => inNs(ns, ['ping', '-c', '1', '-W', '2', ip]).ok;
export const curl = (ns: string, url: string) => inNs(ns, ['curl', '-s', '--max-time', '3', url]);

export interface PodView {
  namespace: string;
  name: string;
  ip: string;
  node: string;
  phase: string;
  labels: Record<string, string>;
}

export async function pods(): Promise<PodView[]> {
  return (await listPods()).map((p) => ({
    namespace: p.metadata.namespace!,
    name: p.metadata.name!,
    ip: (p.status as { podIP?: string })?.podIP ?? '',
    node: (p.spec as { nodeName?: string })?.nodeName ?? '',
    phase: (p.status as { phase?: string })?.phase ?? 'Pending',
    labels: p.metadata.labels ?? {},
  }));
}

export async function waitForPods(n: number, timeoutMs = 120_000): Promise<PodView[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ps = await pods();
    if (ps.length >= n && ps.every((p) => p.phase === 'Running' && p.ip)) return ps;
    if (Date.now() > end) throw new Error(`pods not running after ${timeoutMs / 1000}s: ${ps.filter((p) => p.phase !== 'Running').map((p) => p.name).join(', ')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function serviceView(name: string, namespace = 'default') {
  const r = await api('GET', `/api/v1/namespaces/${namespace}/services/${name}`);
  if (r.status !== 200) throw new Error(`service ${namespace}/${name}: ${r.body?.message ?? r.status}`);
  const spec = r.body.spec as { clusterIP: string; ports: Array<{ port: number; nodePort?: number }> };
  return { clusterIP: spec.clusterIP, port: spec.ports[0].port, nodePort: spec.ports[0].nodePort };
}

export async function runDemo(opts: { nodes?: number } = {}): Promise<number> {
  let failures = 0;
  const check = (ok: boolean, what: string, detail = '') => {
    if (!ok) failures++;
    out(`  ${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? `  ${detail}` : ''}`);
    return ok;
  };
  head('weir lab up --nodes 2');
  const nodes: LabNode[] = await labUp({ nodes: opts.nodes ?? 2, log: (s) => out(`  ${s}`) });

  head('weir lab apply -f control/lab/examples/guestbook.yaml  (seed 000: frontend x3, redis-master, redis-slave x2)');
  for (const l of await labApply(join(repoRoot(), 'control', 'lab', 'examples', 'guestbook.yaml'))) out(`  ${l}`);
  const ps = await waitForPods(7);

  head('pods (get po -o wide)');
  out(`  ${'NAME'.padEnd(34)}${'STATUS'.padEnd(10)}${'IP'.padEnd(16)}NODE`);
  for (const p of ps) out(`  ${p.name.padEnd(34)}${p.phase.padEnd(10)}${p.ip.padEnd(16)}${p.node}`);

  head('every node pings every pod');
  for (const n of nodes) for (const p of ps) check(ping(n.netns, p.ip), `${n.name} -> ${p.name} (${p.ip})`);

  head('a pod pings pods on the other node');
  const client = ps.find((p) => p.name === 'client')!;
  const clientNs = findPodNetns('client').netns;
  for (const p of ps.filter((x) => x.node !== client.node)) check(ping(clientNs, p.ip), `client@${client.node} -> ${p.name}@${p.node}`);

  head('each service VIP answers (curl from the client pod)');
  for (const name of ['frontend', 'redis-master', 'redis-slave']) {
    const s = await serviceView(name);
    const r = curl(clientNs, `http://${s.clusterIP}:${s.port}/`);
    check(r.ok && r.stdout.length > 0, `${name} ${s.clusterIP}:${s.port}`, r.stdout.trim() || r.stderr.trim());
  }

  head('NodePort from a host outside the cluster (netns weir-lab-ext)');
  const fe = await serviceView('frontend');
  for (const n of nodes) {
    const r = curl(EXT_NS, `http://${n.ip}:${fe.nodePort}/`);
    check(r.ok && r.stdout.startsWith('frontend-'), `${n.ip}:${fe.nodePort}`, r.stdout.trim() || r.stderr.trim());
  }

  head('frontend: which backend answered 300 requests');
  const counts = new Map<string, number>();
  const loop = inNs(clientNs, ['sh', '-c', `for i in $(seq 300); do curl -s --max-time 2 http://${fe.clusterIP}:${fe.port}/ | cut -d' ' -f1; done`], 120_000);
  for (const line of loop.stdout.split('\n').filter(Boolean)) counts.set(line, (counts.get(line) ?? 0) + 1);
  for (const [pod, c] of [...counts].sort()) out(`  ${pod.padEnd(34)}${String(c).padStart(4)}  ${'#'.repeat(Math.round(c / 5))}`);
  check(counts.size === 3 && [...counts.values()].reduce((a, b) => a + b, 0) === 300, 'all 300 answered, spread over the 3 frontends');

  head('the VIP is not a host: it answers TCP, not ping');
  check(curl(clientNs, `http://${fe.clusterIP}:${fe.port}/`).ok, `TCP to ${fe.clusterIP}:${fe.port} answers`);
  const pinged = ping(clientNs, fe.clusterIP);
  out(`  ping ${fe.clusterIP}: ${pinged ? 'answered' : 'no answer'} — as with kube-proxy's iptables mode, a ClusterIP only exists for its service ports`);

  head('NetworkPolicy');
  out('  Not enforced yet: NetworkPolicy in BPF is the next piece of work (issue 5). Today every pod reaches every pod.');

  head(failures ? `${failures} check(s) FAILED` : 'all checks passed');
  out(`
The lab keeps running. Look inside:
  weir lab status                        nodes, agents, pods
  weir --node node-1 service list        node-1's services and backends, from its pinned maps
  weir --node node-1 ct list             connections the demo made
  weir --node node-1 maglev show ...     (for services annotated weir.io/lb-algorithm: maglev)
  weir --node node-2 endpoint list       pods on node-2
  weir --node node-1 route list          where the other node's pods are
  weir --node ${client.node} trace ${client.ip} ${fe.clusterIP}:${fe.port}   what the datapath does for client -> frontend
  weir lab exec client -- curl -s http://${fe.clusterIP}/
Tear it down:
  weir lab down`);
  return failures;
}

export { labNode };
