// The lab's control plane process, run inside the fabric netns: the embedded
// API server (on the fabric for the agents, on a unix socket for the `weir
// lab` CLI in the root netns), the lab controller (EndpointSlices,
// Deployments), a scheduler, and a kubelet per node that runs pods through
// the lab runtime (which calls weir-cni as containerd does).
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import pino from 'pino';
import { ApiServer } from './apiserver/index.js';
import { createHttpServer } from './apiserver/http.js';
import type { KObject } from './apiserver/resources.js';
import { LabController } from './controller/index.js';
import { UPLINK_MAC_ANNOTATION } from '../datapath/routes.js';
import { CniError, podRecords, startPod, stopPod, type PodRecord } from './runtime.js';
import { API_PORT, FABRIC_IP, SERVICE_CIDR, STATE_DIR, labNode, type LabNode } from './topology.js';

export const API_SOCKET = join(STATE_DIR, 'api.sock');

const log = pino({ base: { component: 'lab' } });

function nodeObject(n: LabNode): KObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      labels: { 'kubernetes.io/hostname': n.name, 'kubernetes.io/os': 'linux' },
      annotations: { [UPLINK_MAC_ANNOTATION]: n.mac },
    },
    spec: { podCIDR: n.podCidr, podCIDRs: [n.podCidr] },
    status: {
      addresses: [
        { type: 'InternalIP', address: n.ip },
        { type: 'Hostname', address: n.name },
      ],
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'lab node' }],
    },
  } as KObject;
}

const ref = (p: KObject) => `${p.metadata.namespace}/${p.metadata.name}`;

/** One node's kubelet: starts pods scheduled here, stops deleted ones, retries while the agent is not ready. */
class Kubelet {
  private running = new Map<string, PodRecord>();
  private busy = false;
  private pending = false;

  constructor(
    readonly node: LabNode,
    private api: ApiServer,
  ) {
    for (const r of podRecords()) if (r.node === node.name) this.running.set(r.uid, r);
  }

  kick(): void {
    if (this.busy) {
      this.pending = true;
      return;
    }
    this.busy = true;
    setImmediate(() => {
      try {
        this.pass();
      } finally {
        this.busy = false;
        if (this.pending) {
          this.pending = false;
          this.kick();
        }
      }
    });
  }

  private pass(): void {
    const pods = this.api.list('pods', { fieldSelector: `spec.nodeName=${this.node.name}` }).items;
    const wanted = new Map(pods.filter((p) => !p.metadata.deletionTimestamp).map((p) => [p.metadata.uid!, p]));
    // Stop what is gone or terminating first: its address returns to the pool.
    for (const [uid, rec] of this.running) {
      if (wanted.has(uid)) continue;
      stopPod(this.node, rec);
      this.running.delete(uid);
      log.info({ pod: `${rec.namespace}/${rec.name}`, node: this.node.name }, 'pod stopped');
      const p = pods.find((x) => x.metadata.uid === uid);
      if (p) this.api.delete('pods', p.metadata.name!, { namespace: p.metadata.namespace, gracePeriodSeconds: 0 });
    }
    for (const p of pods) {
      if (p.metadata.deletionTimestamp && !this.running.has(p.metadata.uid!)) {
        try {
          this.api.delete('pods', p.metadata.name!, { namespace: p.metadata.namespace, gracePeriodSeconds: 0 });
        } catch {
          /* already gone */
        }
      }
    }
    for (const [uid, p] of wanted) {
      if (this.running.has(uid)) continue;
      try {
        const rec = startPod(this.node, p as unknown as V1Pod);
        this.running.set(uid, rec);
        const now = new Date().toISOString();
        this.api.patch(
          'pods',
          p.metadata.name!,
          {
            status: {
              phase: 'Running',
              hostIP: this.node.ip,
              hostIPs: [{ ip: this.node.ip }],
              podIP: rec.ip,
              podIPs: [{ ip: rec.ip }],
              startTime: now,
              conditions: [
                { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
                { type: 'Initialized', status: 'True', lastTransitionTime: now },
                { type: 'ContainersReady', status: 'True', lastTransitionTime: now },
                { type: 'Ready', status: 'True', lastTransitionTime: now },
              ],
              containerStatuses: ((p.spec as V1Pod['spec'])?.containers ?? []).map((c) => ({ name: c.name, image: c.image, ready: true, started: true, restartCount: 0, state: { running: { startedAt: now } } })),
            },
          },
          { namespace: p.metadata.namespace, subresource: 'status', type: 'merge' },
        );
        log.info({ pod: ref(p), node: this.node.name, ip: rec.ip }, 'pod running');
      } catch (e) {
        const retry = e instanceof CniError && e.code === 11;
        log[retry ? 'info' : 'error']({ pod: ref(p), node: this.node.name, err: (e as Error).message }, retry ? 'agent not ready; retrying' : 'pod failed to start; retrying');
        setTimeout(() => this.kick(), retry ? 500 : 3000);
      }
    }
  }

  stopAll(): void {
    for (const rec of this.running.values()) stopPod(this.node, rec);
    this.running.clear();
  }
}

/** Assigns unscheduled pods to the node with the fewest pods (ties: lowest index). */
function schedule(api: ApiServer, nodes: LabNode[]): void {
  const pods = api.list('pods').items;
  const load = new Map(nodes.map((n) => [n.name, 0]));
  for (const p of pods) {
    const n = (p.spec as { nodeName?: string })?.nodeName;
    if (n && load.has(n)) load.set(n, load.get(n)! + 1);
  }
  for (const p of pods) {
    const spec = p.spec as { nodeName?: string; nodeSelector?: Record<string, string> };
    if (spec?.nodeName || p.metadata.deletionTimestamp) continue;
    const wantHost = spec?.nodeSelector?.['kubernetes.io/hostname'];
    const candidates = nodes.filter((n) => !wantHost || n.name === wantHost);
    if (candidates.length === 0) continue;
    const target = candidates.reduce((a, b) => (load.get(b.name)! < load.get(a.name)! ? b : a));
    api.patch('pods', p.metadata.name!, { spec: { nodeName: target.name } }, { namespace: p.metadata.namespace, type: 'merge' });
    load.set(target.name, load.get(target.name)! + 1);
    log.info({ pod: ref(p), node: target.name }, 'pod scheduled');
  }
}

export async function runLabDaemon(nodeCount: number): Promise<void> {
  mkdirSync(STATE_DIR, { recursive: true });
  const nodes = Array.from({ length: nodeCount }, (_, i) => labNode(i + 1));
  const api = new ApiServer({ serviceCidr: SERVICE_CIDR, snapshotPath: join(STATE_DIR, 'store.json'), bookmarkIntervalMs: 5000 });
  for (const n of nodes) {
    try {
      api.create('nodes', nodeObject(n));
    } catch {
      /* kept from the snapshot */
    }
  }
  await api.listen(API_PORT, FABRIC_IP);
  if (existsSync(API_SOCKET)) rmSync(API_SOCKET);
  const local = createHttpServer(api);
  await new Promise<void>((r) => local.listen(API_SOCKET, () => r()));
  const controller = new LabController(api, { onError: (err, key) => log.warn({ object: key, err: (err as Error).message }, 'controller retry') });
  controller.start();
  const kubelets = nodes.map((n) => new Kubelet(n, api));
  api.watch('pods', {}, (e) => {
    if (e.type === 'BOOKMARK' || e.type === 'ERROR') return;
    setImmediate(() => {
      try {
        schedule(api, nodes);
      } catch (err) {
        log.error({ err: (err as Error).message }, 'scheduling failed');
      }
      for (const k of kubelets) k.kick();
    });
  });
  for (const k of kubelets) k.kick();
  writeFileSync(join(STATE_DIR, 'daemon.ready'), `${process.pid}\n`);
  log.info({ api: `http://${FABRIC_IP}:${API_PORT}`, socket: API_SOCKET, nodes: nodes.map((n) => n.name) }, 'lab control plane up');
  const stop = async () => {
    controller.stop();
    for (const k of kubelets) k.stopAll();
    await api.close();
    local.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}
