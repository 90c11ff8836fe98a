// The lab controller's loop: watches the in-process API server and keeps EndpointSlices (from
// Services and Pods) and Deployment pods as kube-controller-manager would.
import { ApiError } from '../apiserver/errors.js';
import type { KObject } from '../apiserver/resources.js';
import type { ApiServer, WatchHandle } from '../apiserver/server.js';
import { planDeployment } from './deployments.js';
import { desiredEndpointSlices, managesService, MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, sliceUpToDate } from './endpointslices.js';
import { matchSelectorMap } from '../apiserver/selectors.js';
import { canonicalJson } from './hash.js';
import { needsScheduling, pickNode } from './scheduler.js';

const SUFFIX_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

function randomSuffix(): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += SUFFIX_CHARS[Math.floor(Math.random() * SUFFIX_CHARS.length)];
  return s;
}

export interface LabControllerOptions {
  /** Called for each error the loop recovers from (it retries the object). */
  onError?: (err: unknown, key: string) => void;
  /** Delay before retrying an object whose reconcile failed. Default 100 ms. */
  retryMs?: number;
  /** Also bind pending pods to Ready nodes (kube-scheduler's part). Default false. */
  schedule?: boolean;
}

export class LabController {
  private watches: WatchHandle[] = [];
  private queue = new Set<string>();
  private running = false;
  private scheduled = false;
  private stopped = true;
  private retries = new Set<NodeJS.Timeout>();
  /** Last labels seen per pod, so a label change also requeues the services that selected the pod before. */
  private podLabels = new Map<string, Record<string, string>>();

  constructor(
    private readonly api: ApiServer,
    private readonly opts: LabControllerOptions = {},
  ) {}

  /** Starts watching; every existing Service and Deployment is reconciled once at start. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const on = (resource: string, fn: (o: KObject, type: string) => void) =>
      this.watches.push(this.api.watch(resource, {}, (e) => {
        if (e.type === 'ADDED' || e.type === 'MODIFIED' || e.type === 'DELETED') fn(e.object as KObject, e.type);
      }));
    on('services', (s) => this.enqueue(`svc:${s.metadata.namespace}/${s.metadata.name}`));
    on('deployments', (d) => this.enqueue(`deploy:${d.metadata.namespace}/${d.metadata.name}`));
    on('endpointslices', (s) => {
      const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
      if (svc && s.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY) this.enqueue(`svc:${s.metadata.namespace}/${svc}`);
    });
    on('pods', (p, type) => {
      if (this.opts.schedule && needsScheduling(p)) this.enqueue(`sched:${p.metadata.namespace}/${p.metadata.name}`);
      // Services that select the pod now or selected it before (its labels may just have changed).
      const key = `${p.metadata.namespace}/${p.metadata.name}`;
      const before = this.podLabels.get(key);
      if (type === 'DELETED') this.podLabels.delete(key);
      else this.podLabels.set(key, p.metadata.labels ?? {});
      for (const s of this.api.peek('services', { namespace: p.metadata.namespace })) {
        const sel = s.spec?.selector;
        if (!sel || !(matchSelectorMap(sel, p.metadata.labels) || (before && matchSelectorMap(sel, before)))) continue;
        this.enqueue(`svc:${s.metadata.namespace}/${s.metadata.name}`);
      }
      for (const o of p.metadata.ownerReferences ?? []) {
        if (o.kind === 'Deployment') this.enqueue(`deploy:${p.metadata.namespace}/${o.name}`);
      }
    });
    on('nodes', () => {
      for (const s of this.api.list('services').items) this.enqueue(`svc:${s.metadata.namespace}/${s.metadata.name}`);
      if (this.opts.schedule) {
        for (const p of this.api.list('pods', { fieldSelector: 'spec.nodeName=' }).items) {
          if (needsScheduling(p)) this.enqueue(`sched:${p.metadata.namespace}/${p.metadata.name}`);
        }
      }
    });
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.watches) w.stop();
    this.watches = [];
    for (const t of this.retries) clearTimeout(t);
    this.retries.clear();
    this.queue.clear();
    this.podLabels.clear();
  }

  /**
   * Resolves once every queued object has been reconciled and nothing new arrived meanwhile.
   * Keys whose reconcile failed are retried later and not waited for (see onError), so a bad
   * object cannot hang the caller.
   */
  async idle(): Promise<void> {
    for (;;) {
      await new Promise((r) => setImmediate(r));
      if (!this.running && !this.scheduled && this.queue.size === 0) return;
    }
  }

  private enqueue(key: string): void {
    if (this.stopped) return;
    this.queue.add(key);
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    setImmediate(() => this.drain());
  }

  private drain(): void {
    this.scheduled = false;
    if (this.stopped) return;
    this.running = true;
    try {
      while (this.queue.size > 0) {
        const key = this.queue.values().next().value as string;
        this.queue.delete(key);
        try {
          this.reconcile(key);
        } catch (err) {
          this.opts.onError?.(err, key);
          const t = setTimeout(() => {
            this.retries.delete(t);
            this.enqueue(key);
          }, this.opts.retryMs ?? 100);
          this.retries.add(t);
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** Reconciles one `svc:ns/name` or `deploy:ns/name` key now. */
  reconcile(key: string): void {
    const [kind, rest] = key.split(':');
    const [ns, name] = rest.split('/');
    if (kind === 'svc') this.reconcileService(ns, name);
    else if (kind === 'deploy') this.reconcileDeployment(ns, name);
    else if (kind === 'sched') this.schedulePod(ns, name);
  }

  /** Binds one pending pod, or records why it cannot be placed (PodScheduled=False, Unschedulable). */
  schedulePod(ns: string, name: string): void {
    const pod = this.find('pods', name, ns);
    if (!pod || !needsScheduling(pod)) return;
    const placement = pickNode(pod, [...this.api.peek('nodes')], [...this.api.peek('pods')]);
    const conditions = (pod.status?.conditions ?? []).filter((c: any) => c.type !== 'PodScheduled');
    if (placement.node) {
      // The resourceVersion makes this a compare-and-swap, as a binding is: never bind twice.
      this.api.patch('pods', name, { metadata: { resourceVersion: pod.metadata.resourceVersion }, spec: { nodeName: placement.node } }, { namespace: ns });
      this.api.patch('pods', name, { status: { conditions: [...conditions, { type: 'PodScheduled', status: 'True' }] } }, { namespace: ns, subresource: 'status' });
      return;
    }
    const cond = { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: placement.reason };
    const had = (pod.status?.conditions ?? []).find((c: any) => c.type === 'PodScheduled');
    if (had?.message !== cond.message || had?.status !== 'False') {
      this.api.patch('pods', name, { status: { conditions: [...conditions, cond] } }, { namespace: ns, subresource: 'status' });
    }
  }

  private find(resource: string, name: string, ns?: string): KObject | undefined {
    try {
      return this.api.get(resource, name, ns);
    } catch (e) {
      if (e instanceof ApiError && e.code === 404) return undefined;
      throw e;
    }
  }

  reconcileService(ns: string, name: string): void {
    const svc = this.find('services', name, ns);
    const existing = this.api.list('endpointslices', {
      namespace: ns,
      labelSelector: `${SERVICE_NAME_LABEL}=${name},${MANAGED_BY_LABEL}=${MANAGED_BY}`,
    }).items;
    const desired = svc && managesService(svc)
      ? desiredEndpointSlices(svc, [...this.api.peek('pods', { namespace: ns })], [...this.api.peek('nodes')])
      : [];
    const byName = new Map(existing.map((s) => [s.metadata.name!, s]));
    for (const want of desired) {
      const have = byName.get(want.metadata.name!);
      byName.delete(want.metadata.name!);
      if (!have) this.api.create('endpointslices', want);
      else if (!sliceUpToDate(have, want)) {
        this.api.update('endpointslices', { ...want, metadata: { ...have.metadata, labels: want.metadata.labels, ownerReferences: want.metadata.ownerReferences } });
      }
    }
    for (const extra of byName.values()) this.deleteIfPresent('endpointslices', extra.metadata.name!, ns);
  }

  reconcileDeployment(ns: string, name: string): void {
    const deploy = this.find('deployments', name, ns);
    const pods = [...this.api.peek('pods', { namespace: ns })];
    // Garbage collection: pods of a deleted (or deleted and recreated) deployment of this name.
    for (const p of pods) {
      const owner = (p.metadata.ownerReferences ?? []).find((o) => o.kind === 'Deployment' && o.name === name);
      if (owner && owner.uid !== deploy?.metadata.uid && !p.metadata.deletionTimestamp) this.deleteIfPresent('pods', p.metadata.name!, ns);
    }
    if (!deploy) return;
    const plan = planDeployment(deploy, pods, () => randomSuffix());
    for (const pod of plan.create) this.api.create('pods', pod);
    for (const podName of plan.delete) this.deleteIfPresent('pods', podName, ns);
    if (canonicalJson(deploy.status ?? {}) !== canonicalJson(plan.status)) {
      this.api.update('deployments', { ...deploy, status: plan.status }, { subresource: 'status' });
    }
  }

  private deleteIfPresent(resource: string, name: string, ns: string): void {
    try {
      this.api.delete(resource, name, { namespace: ns });
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 404)) throw e;
    }
  }
}
