// `weir lab ...`: brings the embedded default cluster up and down, and talks
// to its API server over the unix socket the lab daemon serves, so these
// commands work from the root netns without any route into the lab.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../paths.js';
import { API_SOCKET } from './daemon.js';
import { killAllPods, podRecords } from './runtime.js';
import { API_PORT, CLUSTER_CIDR, FABRIC_IP, FABRIC_NS, PIN_BASE, SERVICE_CIDR, STATE_DIR, UPLINK, createTopology, labNamespaces, labNode, nsPath, removeTopology, type LabNode } from './topology.js';
import { findResource, resourceForKind, type KObject } from './apiserver/resources.js';

export class LabError extends Error {}

const pidDir = () => join(STATE_DIR, 'pids');
const logDir = () => join(STATE_DIR, 'logs');
const cliJs = () => join(repoRoot(), 'bin', 'weir');
const nodesFile = () => join(STATE_DIR, 'nodes.json');

export function labNodes(): LabNode[] {
  if (!existsSync(nodesFile())) return [];
  const n = JSON.parse(readFileSync(nodesFile(), 'utf8')) as { count: number };
  return Array.from({ length: n.count }, (_, i) => labNode(i + 1));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function startProcess(name: string, netns: string, args: string[]): number {
  mkdirSync(pidDir(), { recursive: true });
  mkdirSync(logDir(), { recursive: true });
  const log = openSync(join(logDir(), `${name}.log`), 'a');
  const child = spawn('nsenter', [`--net=${nsPath(netns)}`, process.execPath, cliJs(), ...args], { detached: true, stdio: ['ignore', log, log] });
  child.unref();
  writeFileSync(join(pidDir(), `${name}.pid`), `${child.pid}\n`);
  return child.pid!;
}

function stopProcesses(filter: (name: string) => boolean = () => true, signal: NodeJS.Signals = 'SIGTERM'): string[] {
  if (!existsSync(pidDir())) return [];
  const stopped: string[] = [];
  for (const f of readdirSync(pidDir())) {
    const name = f.replace(/\.pid$/, '');
    if (!filter(name)) continue;
    const pid = Number(readFileSync(join(pidDir(), f), 'utf8'));
    if (pid > 0 && alive(pid)) {
      try {
        process.kill(pid, signal);
      } catch {
        /* raced with its exit */
      }
      const end = Date.now() + 5000;
      while (alive(pid) && Date.now() < end) spawnSync('sleep', ['0.05']);
      if (alive(pid)) process.kill(pid, 'SIGKILL');
      stopped.push(name);
    }
    rmSync(join(pidDir(), f), { force: true });
  }
  return stopped;
}

export function agentArgs(n: LabNode): string[] {
  return [
    'agent',
    '--node-name', n.name,
    '--api-server', `http://${FABRIC_IP}:${API_PORT}`,
    '--bpffs-root', n.pinRoot,
    '--uplink', UPLINK,
    '--cluster-cidr', CLUSTER_CIDR,
    '--service-cidr', SERVICE_CIDR,
    '--cni-socket', n.cniSocket,
    '--state-dir', n.stateDir,
    // All addresses of the node's netns: the node IP for probes from the
    // fabric, 127.0.0.1 for `weir --node N --netns NS status`.
    '--metrics-host', '0.0.0.0',
    '--metrics-port', String(n.metricsPort),
  ];
}

export function startAgent(n: LabNode): number {
  mkdirSync(n.stateDir, { recursive: true });
  return startProcess(`agent-${n.name}`, n.netns, agentArgs(n));
}

export function stopAgent(n: LabNode, signal: NodeJS.Signals = 'SIGTERM'): boolean {
  return stopProcesses((name) => name === `agent-${n.name}`, signal).length > 0;
}

/** The daemon's pid while it runs (it serves the API and runs the kubelets). */
export function labDaemonPid(): number | undefined {
  const f = join(pidDir(), 'lab-daemon.pid');
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, 'utf8'));
  return pid > 0 && alive(pid) ? pid : undefined;
}

/**
 * Stops the lab control plane, as an API server crash would: SIGKILL by
 * default, because a SIGTERM also makes its kubelets stop every pod.
 * Pods, agents and datapaths keep running; the store is on disk.
 */
export function stopLabDaemon(signal: NodeJS.Signals = 'SIGKILL'): boolean {
  return stopProcesses((name) => name === 'lab-daemon', signal).length > 0;
}

/** Starts the lab control plane again (objects from its snapshot, running pods adopted); resolves when it serves. */
export async function startLabDaemon(timeoutMs = 30_000): Promise<number> {
  const count = labNodes().length;
  if (count === 0) throw new LabError('the lab is not up: run weir lab up');
  rmSync(join(STATE_DIR, 'daemon.ready'), { force: true });
  const pid = startProcess('lab-daemon', FABRIC_NS, ['lab', 'daemon', '--nodes', String(count)]);
  await waitFor('the lab API server', () => existsSync(join(STATE_DIR, 'daemon.ready')), timeoutMs);
  return pid;
}

/** Removes everything a lab run made: processes, pods, netns, pins, state. */
export function labDown(): { processes: string[]; namespaces: string[] } {
  const processes = stopProcesses();
  killAllPods();
  const namespaces = removeTopology();
  rmSync(PIN_BASE, { recursive: true, force: true });
  rmSync(STATE_DIR, { recursive: true, force: true });
  return { processes, namespaces };
}

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new LabError(`timed out after ${timeoutMs / 1000}s waiting for ${what} (logs: ${logDir()})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** GET http://<node ip>:<port>/readyz from inside the node's netns. */
export function agentReady(n: LabNode): boolean {
  const r = spawnSync('nsenter', [`--net=${nsPath(n.netns)}`, process.execPath, '-e', `fetch('http://${n.ip}:${n.metricsPort}/readyz').then(r=>process.exit(r.status===200?0:1),()=>process.exit(2))`], { timeout: 5000 });
  return r.status === 0;
}

export async function labUp(opts: { nodes: number; log?: (s: string) => void }): Promise<LabNode[]> {
  const say = opts.log ?? (() => {});
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > 50) throw new LabError(`--nodes ${opts.nodes}: expected 1..50`);
  if (!existsSync(join(repoRoot(), 'dist', 'control', 'cli', 'main.js'))) throw new LabError(`weir is not built: run 'make build' first`);
  if (labNamespaces().length || existsSync(STATE_DIR) || existsSync(PIN_BASE)) {
    const gone = labDown();
    say(`cleaned up a previous lab (${gone.namespaces.length} netns, ${gone.processes.length} processes)`);
  }
  const nodes = Array.from({ length: opts.nodes }, (_, i) => labNode(i + 1));
  mkdirSync(STATE_DIR, { recursive: true });
  writeFileSync(nodesFile(), JSON.stringify({ count: opts.nodes }));
  try {
    createTopology(nodes);
    say(`fabric ${FABRIC_NS} with ${nodes.map((n) => `${n.name} (${n.ip}, pods ${n.podCidr})`).join(', ')}`);
    startProcess('lab-daemon', FABRIC_NS, ['lab', 'daemon', '--nodes', String(opts.nodes)]);
    await waitFor('the lab API server', () => existsSync(join(STATE_DIR, 'daemon.ready')), 30_000);
    say(`API server at http://${FABRIC_IP}:${API_PORT} (from the root netns: weir lab kubectl ...)`);
    for (const n of nodes) startAgent(n);
    for (const n of nodes) await waitFor(`the agent on ${n.name} to be ready`, () => agentReady(n), 60_000);
    say(`agents ready on ${nodes.map((n) => n.name).join(', ')}`);
    return nodes;
  } catch (e) {
    throw e;
  }
}

// ---- the API over the lab's unix socket ----

export function api(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: any }> {
  if (!existsSync(API_SOCKET)) return Promise.reject(new LabError('the lab is not up (no API socket): run weir lab up'));
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    // agent: false = a connection per call: a kept-alive socket the server
    // closes while idle fails the next request with EPIPE.
    const req = request({ socketPath: API_SOCKET, agent: false, method, path, headers: data ? { 'content-type': contentType, 'content-length': Buffer.byteLength(data) } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => (text += d));
      res.on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

export function objectPath(o: KObject, withName = true): string {
  const r = resourceForKind(o.apiVersion ?? '', o.kind ?? '');
  if (!r) throw new LabError(`${o.kind ?? '(no kind)'} ${o.metadata?.name ?? ''}: the lab does not serve ${o.apiVersion}/${o.kind}`);
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  const ns = r.namespaced ? `/namespaces/${o.metadata?.namespace ?? 'default'}` : '';
  return `${base}${ns}/${r.name}${withName ? `/${o.metadata?.name}` : ''}`;
}

export function readManifests(file: string): KObject[] {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (e) {
    throw new LabError(`${file}: ${(e as Error).message}`);
  }
  const out: KObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new LabError(`${file}: ${doc.errors[0].message}`);
    const o = doc.toJS() as KObject | null;
    if (!o) continue;
    if (o.kind === 'List' && Array.isArray((o as unknown as { items?: KObject[] }).items)) out.push(...(o as unknown as { items: KObject[] }).items);
    else out.push(o);
  }
  return out;
}

/** create, or replace when it exists (like kubectl apply without three-way merge). */
export async function labApply(file: string): Promise<string[]> {
  const lines: string[] = [];
  for (const o of readManifests(file)) {
    if (!o.kind || !o.apiVersion || !o.metadata?.name) throw new LabError(`${file}: every object needs apiVersion, kind and metadata.name`);
    const what = `${o.kind.toLowerCase()}/${o.metadata.name}`;
    const created = await api('POST', objectPath(o, false), o);
    if (created.status === 201 || created.status === 200) {
      lines.push(`${what} created`);
      continue;
    }
    if (created.status !== 409) throw new LabError(`${what}: ${created.body?.message ?? JSON.stringify(created.body)}`);
    const patched = await api('PATCH', objectPath(o), o, 'application/merge-patch+json');
    if (patched.status !== 200) throw new LabError(`${what}: ${patched.body?.message ?? JSON.stringify(patched.body)}`);
    lines.push(`${what} configured`);
  }
  return lines;
}

export async function labDelete(file: string): Promise<string[]> {
  const lines: string[] = [];
  for (const o of readManifests(file).reverse()) {
    const what = `${o.kind?.toLowerCase()}/${o.metadata?.name}`;
    const r = await api('DELETE', objectPath(o));
    if (r.status === 404) lines.push(`${what} not found`);
    else if (r.status >= 300) throw new LabError(`${what}: ${r.body?.message ?? JSON.stringify(r.body)}`);
    else lines.push(`${what} deleted`);
  }
  return lines;
}

export async function listPods(): Promise<KObject[]> {
  const r = await api('GET', '/api/v1/pods');
  if (r.status !== 200) throw new LabError(`listing pods: ${r.body?.message ?? r.status}`);
  return r.body.items as KObject[];
}

/** Finds a running pod by NAME or NAMESPACE/NAME and its sandbox netns. */
export function findPodNetns(ref: string): { netns: string; namespace: string; name: string; ip: string } {
  const [ns, name] = ref.includes('/') ? ref.split('/', 2) : ['default', ref];
  const rec = podRecords().find((r) => r.namespace === ns && r.name === name);
  if (!rec) throw new LabError(`pod ${ns}/${name} is not running in the lab (see weir lab status)`);
  return { netns: rec.netns, namespace: rec.namespace, name: rec.name, ip: rec.ip };
}

/** Runs CMD inside the pod's netns with this terminal's stdio; returns its exit code. */
export function labExec(ref: string, cmd: string[]): number {
  if (cmd.length === 0) throw new LabError('weir lab exec POD -- CMD...: no command given');
  const { netns } = findPodNetns(ref);
  const r = spawnSync('nsenter', [`--net=${nsPath(netns)}`, ...cmd], { stdio: 'inherit' });
  if (r.error) throw new LabError(`${cmd[0]}: ${r.error.message}`);
  return r.status ?? 1;
}

/** kubectl against the lab API server (Debian's kubernetes-client), run inside the fabric netns. */
export function labKubectl(args: string[]): number {
  const kubectl = spawnSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' }).stdout.trim();
  if (!kubectl) throw new LabError('kubectl is not installed (apt-get install kubernetes-client); weir lab apply/delete/status work without it');
  const r = spawnSync('nsenter', [`--net=${nsPath(FABRIC_NS)}`, kubectl, `--server=http://${FABRIC_IP}:${API_PORT}`, ...args], { stdio: 'inherit' });
  return r.status ?? 1;
}

export interface LabStatus {
  up: boolean;
  nodes: Array<{ name: string; ip: string; podCidr: string; agent: 'ready' | 'not ready' | 'down' }>;
  pods: Array<{ namespace: string; name: string; node: string; ip: string; phase: string }>;
}

export async function labStatus(): Promise<LabStatus> {
  const nodes = labNodes();
  if (nodes.length === 0 || !existsSync(API_SOCKET)) return { up: false, nodes: [], pods: [] };
  const pids = existsSync(pidDir()) ? readdirSync(pidDir()) : [];
  const pods = (await listPods()).map((p) => ({
    namespace: p.metadata.namespace!,
    name: p.metadata.name!,
    node: (p.spec as { nodeName?: string })?.nodeName ?? '',
    ip: (p.status as { podIP?: string })?.podIP ?? '',
    phase: (p.status as { phase?: string })?.phase ?? 'Pending',
  }));
  return {
    up: true,
    nodes: nodes.map((n) => {
      const pidFile = pids.find((f) => f === `agent-${n.name}.pid`);
      const pid = pidFile ? Number(readFileSync(join(pidDir(), pidFile), 'utf8')) : 0;
      return { name: n.name, ip: n.ip, podCidr: n.podCidr, agent: !pid || !alive(pid) ? 'down' : agentReady(n) ? 'ready' : 'not ready' };
    }),
    pods,
  };
}

export { execFileSync, findResource };
