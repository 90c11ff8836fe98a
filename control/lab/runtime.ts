// The lab's container runtime: what containerd + kubelet do for a pod. It
// makes the pod's netns, calls the CNI plugin binary exactly as containerd
// does (env vars + network config JSON on stdin, from the node's netns), and
// starts the pod's containers as processes inside the pod's netns.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { repoRoot } from '../paths.js';
import { LAB_PREFIX, STATE_DIR, nsPath, type LabNode } from './topology.js';

export interface CniResult {
  cniVersion: string;
  interfaces?: Array<{ name: string; mac?: string; sandbox?: string }>;
  ips?: Array<{ address: string; gateway?: string; interface?: number }>;
  routes?: Array<{ dst: string; gw?: string }>;
}

export class CniError extends Error {
  constructor(
    readonly code: number,
    msg: string,
    readonly details = '',
  ) {
    super(`CNI error ${code}: ${msg}${details ? ` (${details})` : ''}`);
  }
}

export interface PodRecord {
  uid: string;
  namespace: string;
  name: string;
  node: string;
  containerId: string;
  netns: string;
  ip: string;
  pids: number[];
}

const podsDir = () => join(STATE_DIR, 'pods');
const recordPath = (uid: string) => join(podsDir(), `${uid}.json`);

export const cniBinary = () => join(repoRoot(), 'bin', 'weir-cni');

/** The network config weir-cni gets on stdin: the conflist's plugin with the node's socket. */
export function networkConfig(node: LabNode, conflistPath = join(repoRoot(), 'manifests', '10-weir.conflist')): Record<string, unknown> {
  const list = JSON.parse(readFileSync(conflistPath, 'utf8')) as { cniVersion: string; name: string; plugins: Array<Record<string, unknown>> };
  const plugin = list.plugins.find((p) => p.type === 'weir-cni' || p.type === 'weir');
  if (!plugin) throw new Error(`${conflistPath}: no weir plugin in plugins[]`);
  // containerd hands each plugin its own entry plus the list's name and version.
  return { ...plugin, cniVersion: list.cniVersion, name: list.name, socketPath: node.cniSocket };
}

/** Runs weir-cni inside the node's netns, the way containerd does. */
export function callCni(node: LabNode, command: 'ADD' | 'DEL' | 'CHECK', o: { containerId: string; netns: string; pod: V1Pod; prevResult?: CniResult }): CniResult | undefined {
  const conf: Record<string, unknown> = networkConfig(node);
  if (o.prevResult) conf.prevResult = o.prevResult;
  const args = [
    'IgnoreUnknown=1',
    `K8S_POD_NAMESPACE=${o.pod.metadata?.namespace ?? 'default'}`,
    `K8S_POD_NAME=${o.pod.metadata?.name}`,
    `K8S_POD_INFRA_CONTAINER_ID=${o.containerId}`,
    `K8S_POD_UID=${o.pod.metadata?.uid ?? ''}`,
  ].join(';');
  const r = spawnSync('nsenter', [`--net=${nsPath(node.netns)}`, cniBinary()], {
    input: JSON.stringify(conf),
    encoding: 'utf8',
    timeout: 30_000,
    env: {
      PATH: process.env.PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: o.containerId,
      CNI_NETNS: o.netns,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: args,
      CNI_PATH: join(repoRoot(), 'bin'),
    },
  });
  if (r.error) throw new Error(`running weir-cni ${command}: ${r.error.message}`);
  const out = (r.stdout ?? '').trim();
  if (r.status !== 0) {
    try {
      const e = JSON.parse(out) as { code: number; msg: string; details?: string };
      throw new CniError(e.code, e.msg, e.details);
    } catch (e) {
      if (e instanceof CniError) throw e;
      throw new Error(`weir-cni ${command} exited ${r.status}: ${out || r.stderr}`);
    }
  }
  return command === 'ADD' ? (JSON.parse(out) as CniResult) : undefined;
}

/** What a container runs, picked by its image (see README: weir/echo, weir/client, anything else). */
export function containerCommand(c: V1Container, pod: { name: string; namespace: string; ip: string }): string[] {
  if (c.image === 'weir/echo' || c.image?.startsWith('weir/echo:')) {
    // echo serves TCP and UDP on every port it is given: a port declared for
    // both protocols (two containerPorts) is one --port, not two listeners.
    const ports = [...new Set((c.ports ?? []).map((p) => p.containerPort).filter((p) => p > 0))];
    const echo = join(repoRoot(), 'dist', 'control', 'lab', 'echo.js');
    return [process.execPath, echo, '--pod', pod.name, '--namespace', pod.namespace, '--ip', pod.ip, ...(ports.length ? ports : [8080]).flatMap((p) => ['--port', String(p)])];
  }
  if (c.image === 'weir/client' || c.image?.startsWith('weir/client:')) return ['sleep', 'infinity'];
  const cmd = [...(c.command ?? []), ...(c.args ?? [])];
  if (cmd.length === 0) throw new Error(`container ${c.name} (image ${c.image}): the lab runs host programs, so give it a command`);
  return cmd;
}

/** Creates the pod's sandbox, networks it through weir-cni, starts its containers. */
export function startPod(node: LabNode, pod: V1Pod): PodRecord {
  const uid = pod.metadata?.uid ?? randomBytes(8).toString('hex');
  const containerId = randomBytes(32).toString('hex');
  const netns = `${LAB_PREFIX}pod-${containerId.slice(0, 12)}`;
  mkdirSync(podsDir(), { recursive: true });
  const rec: PodRecord = { uid, namespace: pod.metadata?.namespace ?? 'default', name: pod.metadata!.name!, node: node.name, containerId, netns, ip: '', pids: [] };
  writeFileSync(recordPath(uid), JSON.stringify(rec));
  const run = (args: string[]) => {
    const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8', timeout: 15_000 });
    if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr || r.error?.message}`);
  };
  try {
    run(['ip', 'netns', 'add', netns]);
    run(['ip', '-n', netns, 'link', 'set', 'lo', 'up']);
    const result = callCni(node, 'ADD', { containerId, netns: nsPath(netns), pod })!;
    const ip = result.ips?.[0]?.address?.split('/')[0];
    if (!ip) throw new Error(`weir-cni ADD returned no address: ${JSON.stringify(result)}`);
    rec.ip = ip;
    const logDir = join(STATE_DIR, 'logs');
    mkdirSync(logDir, { recursive: true });
    for (const c of pod.spec?.containers ?? []) {
      const cmd = containerCommand(c, { name: rec.name, namespace: rec.namespace, ip });
      const log = openSync(join(logDir, `pod-${rec.namespace}-${rec.name}-${c.name}.log`), 'a');
      const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOSTNAME: rec.name, POD_NAME: rec.name, POD_NAMESPACE: rec.namespace, POD_IP: ip };
      for (const e of c.env ?? []) if (e.value !== undefined) (env as Record<string, string>)[e.name] = e.value;
      const child = spawn('nsenter', [`--net=${nsPath(netns)}`, ...cmd], { detached: true, stdio: ['ignore', log, log], env });
      child.unref();
      rec.pids.push(child.pid!);
    }
    writeFileSync(recordPath(uid), JSON.stringify(rec));
    return rec;
  } catch (e) {
    stopPod(node, rec, pod);
    throw e;
  }
}

function kill(pid: number): void {
  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        /* already gone */
      }
    }
  }
}

/** Stops the containers, calls CNI DEL, removes the sandbox. Safe to repeat. */
export function stopPod(node: LabNode, rec: PodRecord, pod?: V1Pod): void {
  for (const pid of rec.pids) kill(pid);
  if (existsSync(nsPath(rec.netns)) || rec.ip) {
    try {
      callCni(node, 'DEL', { containerId: rec.containerId, netns: nsPath(rec.netns), pod: pod ?? ({ metadata: { name: rec.name, namespace: rec.namespace, uid: rec.uid } } as V1Pod) });
    } catch {
      /* DEL is best effort here; the agent's GC reclaims what is left */
    }
  }
  spawnSync('ip', ['netns', 'del', rec.netns]);
  rmSync(recordPath(rec.uid), { force: true });
}

export function podRecords(): PodRecord[] {
  if (!existsSync(podsDir())) return [];
  return readdirSync(podsDir())
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(podsDir(), f), 'utf8')) as PodRecord);
}

/** Kills every pod process a lab run left (used by down / up after a crash). */
export function killAllPods(): void {
  for (const r of podRecords()) for (const pid of r.pids) kill(pid);
}
