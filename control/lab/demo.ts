// `make demo` / `weir lab demo`: the seeds' story on one machine. Brings the
// lab up with two nodes, deploys seed 000's guestbook, and shows pod
// networking, services, NodePort and load balancing working, with every
// probe's result printed. It leaves the lab running for inspection.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../paths.js';
import { labApply, labUp, listPods, api, findPodNetns } from './lab.js';
import { EXT_NS, labNode, nsPath, type LabNode } from './topology.js';
import { openPinnedMaps } from '../datapath/maps.js';

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

// ---- the NetworkPolicy step ----

export const POLICY_EXAMPLE = join(repoRoot(), 'control', 'lab', 'examples', 'guestbook-policy.yaml');

export interface CastMember {
  label: string;
  pod: PodView;
  port?: number;
}

/**
 * Who probes whom in the policy step. Clients: a frontend, a redis-slave and
 * the client pod. Servers: redis-master and redis-slave on 6379, and a
 * frontend on 80; the server pod of a role is another pod than the client of
 * that role, so no cell is a pod talking to itself.
 */
export function policyCast(ps: PodView[]): { clients: CastMember[]; servers: CastMember[] } {
  const byName = (a: PodView, b: PodView) => a.name.localeCompare(b.name);
  const fe = ps.filter((p) => p.labels.tier === 'frontend').sort(byName);
  const slaves = ps.filter((p) => p.labels.role === 'slave').sort(byName);
  const master = ps.find((p) => p.labels.role === 'master');
  const client = ps.find((p) => p.name === 'client');
  if (fe.length < 2 || slaves.length < 2 || !master || !client) throw new Error(`the guestbook is not complete: ${ps.map((p) => p.name).join(', ')}`);
  return {
    clients: [
      { label: 'frontend', pod: fe[0] },
      { label: 'redis-slave', pod: slaves[0] },
      { label: 'client', pod: client },
    ],
    servers: [
      { label: 'redis-master', pod: master, port: 6379 },
      { label: 'redis-slave', pod: slaves[1], port: 6379 },
      { label: 'frontend', pod: fe[1], port: 80 },
    ],
  };
}

/** What guestbook-policy.yaml means, written out: redis only from the frontend; the frontend from anyone. */
export const policyExpected = (client: string, server: string) => server === 'frontend' || client === 'frontend';

export interface PolicyCell {
  client: CastMember;
  server: CastMember;
  /** allowed: the server answered as itself; denied: no answer in 2 s; refused/error: not a policy verdict. */
  verdict: 'allowed' | 'denied' | 'refused' | 'error';
  detail: string;
}

function inNsAsync(ns: string, cmd: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn('nsenter', [`--net=${nsPath(ns)}`, ...cmd], { stdio: ['ignore', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout });
    });
  });
}

/** One HTTP GET per (client, server), each client's in parallel from inside its pod. */
export async function probePolicyCells(cast: { clients: CastMember[]; servers: CastMember[] }): Promise<PolicyCell[]> {
  const rows = await Promise.all(
    cast.clients.map(async (c) => {
      const ns = findPodNetns(c.pod.name).netns;
      // "<index> <curl exit> <first word of the answer>" per server.
      const script = cast.servers.map((s, i) => `( a=$(curl -s --max-time 2 http://${s.pod.ip}:${s.port}/); echo "${i} $? \${a%% *}" ) &`).join('\n') + '\nwait';
      const r = await inNsAsync(ns, ['sh', '-c', script], 15_000);
      const got = new Map(
        r.stdout
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split(' '))
          .map(([i, code, who]) => [Number(i), { code: Number(code), who: who ?? '' }]),
      );
      return cast.servers.map((s, i): PolicyCell => {
        const g = got.get(i);
        if (!g) return { client: c, server: s, verdict: 'error', detail: 'no result' };
        if (g.code === 0 && g.who === s.pod.name) return { client: c, server: s, verdict: 'allowed', detail: '' };
        if (g.code === 28) return { client: c, server: s, verdict: 'denied', detail: '' };
        if (g.code === 7) return { client: c, server: s, verdict: 'refused', detail: '(connection refused)' };
        return { client: c, server: s, verdict: 'error', detail: `(curl exit ${g.code}, answered by "${g.who}")` };
      });
    }),
  );
  return rows.flat();
}

/** Probes until every cell is what WANT says, for at most timeoutMs (policy reaching both nodes); returns the last matrix. */
export async function probePolicyUntil(cast: { clients: CastMember[]; servers: CastMember[] }, want: (client: string, server: string) => boolean, timeoutMs = 10_000): Promise<PolicyCell[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const cells = await probePolicyCells(cast);
    if (cells.every((c) => c.verdict === (want(c.client.label, c.server.label) ? 'allowed' : 'denied')) || Date.now() > end) return cells;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Rows are clients, columns servers, as the upstream netpol e2e prints them. */
export function formatPolicyMatrix(cast: { clients: CastMember[]; servers: CastMember[] }, cells: PolicyCell[]): string[] {
  const w = 20;
  const rowName = (c: CastMember) => `${c.label} (${c.pod.ip})`;
  const first = Math.max(...cast.clients.map((c) => rowName(c).length)) + 2;
  const lines = [
    `${'client \\ server'.padEnd(first)}${cast.servers.map((s) => s.label.padEnd(w)).join('')}`,
    `${''.padEnd(first)}${cast.servers.map((s) => `${s.pod.ip}:${s.port}`.padEnd(w)).join('')}`,
  ];
  for (const c of cast.clients) {
    const row = cast.servers.map((s) => cells.find((x) => x.client === c && x.server === s)?.verdict ?? '?');
    lines.push(`${rowName(c).padEnd(first)}${row.map((v) => v.padEnd(w)).join('').trimEnd()}`);
  }
  return lines;
}

/**
 * Waits until every node's pinned weir_ep_policy isolates (ingress) exactly
 * the pods named in ISOLATED among PS, each on its own node; returns the ms it took.
 */
export async function waitPolicyProgrammed(ps: PodView[], nodes: LabNode[], isolated: string[], timeoutMs = 20_000): Promise<number> {
  const start = Date.now();
  const ipNum = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  const opened = nodes.map((n) => ({ n, maps: openPinnedMaps(n.pinRoot) }));
  try {
    for (;;) {
      const wrong = ps.filter((p) => {
        const m = opened.find((o) => o.n.name === p.node)?.maps;
        const ep = m?.ep4.get({ addr: ipNum(p.ip) });
        const pol = ep ? m!.epPolicy.get(ep.endpoint_id) : undefined;
        return !!pol?.ingress_id !== isolated.includes(p.name);
      });
      if (wrong.length === 0) return Date.now() - start;
      if (Date.now() - start > timeoutMs) throw new Error(`after ${timeoutMs / 1000}s the agents' weir_ep_policy still disagrees for: ${wrong.map((p) => `${p.name}@${p.node} (want ${isolated.includes(p.name) ? 'isolated' : 'open'})`).join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    for (const o of opened) o.maps.close();
  }
}

export async function runDemo(opts: { nodes?: number } = {}): Promise<number> {
  let failures = 0;
  let policyHints: string[] = [];
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

  head('NetworkPolicy: only the frontend may reach redis  (weir lab apply -f control/lab/examples/guestbook-policy.yaml)');
  const cast = policyCast(ps);
  const open = await probePolicyCells(cast);
  out('  before, with no policy (every pod reaches every pod):');
  for (const l of formatPolicyMatrix(cast, open)) out(`  ${l}`);
  check(open.every((c) => c.verdict === 'allowed'), `all ${open.length} allowed before any policy`, open.filter((c) => c.verdict !== 'allowed').map((c) => `${c.client.label} -> ${c.server.label}: ${c.verdict}`).join(', '));
  for (const l of await labApply(POLICY_EXAMPLE)) out(`  ${l}`);
  const programmed = await waitPolicyProgrammed(ps, nodes, ps.filter((p) => p.labels.app === 'redis').map((p) => p.name));
  out(`  both agents programmed it ${programmed} ms after the API write (weir_ep_policy isolates exactly the 3 redis pods)`);
  const after = await probePolicyUntil(cast, policyExpected);
  out('  after:');
  for (const l of formatPolicyMatrix(cast, after)) out(`  ${l}`);
  for (const c of after) {
    const want = policyExpected(c.client.label, c.server.label) ? 'allowed' : 'denied';
    check(c.verdict === want, `${c.client.label} -> ${c.server.label} ${want}`, c.verdict === want ? '' : `got ${c.verdict} ${c.detail}`);
  }
  const master = cast.servers.find((s) => s.label === 'redis-master')!.pod;
  const masterNode = nodes.find((n) => n.name === master.node)!;
  out(`\n  $ weir --node ${master.node} policy get default/${master.name}`);
  const got = spawnSync(process.execPath, [join(repoRoot(), 'bin', 'weir'), '--node', master.node, 'policy', 'get', `default/${master.name}`], { encoding: 'utf8', timeout: 30_000 });
  for (const l of `${got.stdout ?? ''}${got.stderr ?? ''}`.trimEnd().split('\n')) out(`    ${l}`);
  check(got.status === 0 && (got.stdout ?? '').includes('redis-from-frontend'), `weir policy get names default/redis-from-frontend for ${master.name}`);
  policyHints = [
    `  weir --node ${master.node} policy get default/${master.name}   who may reach redis-master (from ${master.node}'s maps)`,
    `  weir --node ${master.node} monitor --type drop     live drops on ${master.node}; then in another terminal:`,
    `      weir lab exec client -- curl -s --max-time 2 http://${master.ip}:6379/`,
    `  weir --node ${masterNode.name} trace ${cast.clients.find((c) => c.label === 'client')!.pod.ip} ${master.ip}:6379   why client -> redis-master is dropped, step by step`,
    `  weir lab delete -f control/lab/examples/guestbook-policy.yaml   back to everything open`,
  ];

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
NetworkPolicy (redis-from-frontend is still applied):
${policyHints.join('\n')}
Tear it down:
  weir lab down`);
  return failures;
}

export { labNode };
