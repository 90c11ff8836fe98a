// The lab's API server: Kubernetes verbs over the in-memory store, callable in-process (the lab
// controller) and over HTTP (agents, @kubernetes/client-node, kubectl) via listen().
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  alreadyExists, ApiError, badRequest, conflict, expired, field, invalid, notFound, success, type FieldError, type Status,
} from './errors.js';
import { applyPatch, type PatchType } from './patch.js';
import { apiVersionOf, resource as resourceInfo, type KObject, type ResourceInfo } from './resources.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { defaultService, ServiceAllocations, validateService } from './services.js';
import { keyOf, Store } from './store.js';
import { defaultObject, validateMeta, validateObject } from './validation.js';
import { Watcher, type WatchEvent } from './watch.js';
import { createHttpServer } from './http.js';

export interface ApiServerOptions {
  /** Service ClusterIP range; default 10.96.0.0/12 (10.96.0.1 goes to the `kubernetes` service). */
  serviceCidr?: string;
  /** NodePort range, inclusive; default [30000, 32767]. */
  nodePortRange?: [number, number];
  /** Changes kept for watches that resume from a resourceVersion; older ones get 410 Gone. Default 1000. */
  historySize?: number;
  /** Interval between BOOKMARK events on watches that allow them. Default 60 s, as the real server. */
  bookmarkIntervalMs?: number;
  /** JSON file the store is saved to after changes and loaded from at start. */
  snapshotPath?: string;
  /** Remove a terminating pod by itself once its grace period ends (the lab's stand-in for the kubelet). Default true. */
  finalizeTerminatingPods?: boolean;
  /** Reported by /version. */
  gitVersion?: string;
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface ListResult {
  items: KObject[];
  resourceVersion: string;
}

export interface WatchOptions extends ListOptions {
  /** '' or '0' (or unset): start with ADDED for every current object; 'N': changes after N, or 410. */
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
}

export interface WriteOptions {
  namespace?: string;
  subresource?: 'status';
  dryRun?: boolean;
}

export interface DeleteOptions {
  namespace?: string;
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
}

export interface WatchHandle {
  stop(): void;
}

const GENERATE_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

function randomSuffix(n = 5): string {
  let s = '';
  for (let i = 0; i < n; i++) s += GENERATE_CHARS[Math.floor(Math.random() * GENERATE_CHARS.length)];
  return s;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

/** Everything but metadata and status: a change here bumps metadata.generation. */
function specPart(o: KObject): string {
  const { metadata: _m, status: _s, ...rest } = o;
  return JSON.stringify(rest);
}

export class ApiServer {
  readonly store: Store;
  readonly allocations: ServiceAllocations;
  readonly options: Required<Omit<ApiServerOptions, 'snapshotPath'>> & { snapshotPath?: string };
  private http?: Server;
  private podTimers = new Map<string, NodeJS.Timeout>();

  constructor(opts: ApiServerOptions = {}) {
    this.options = {
      serviceCidr: opts.serviceCidr ?? '10.96.0.0/12',
      nodePortRange: opts.nodePortRange ?? [30000, 32767],
      historySize: opts.historySize ?? 1000,
      bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 60_000,
      snapshotPath: opts.snapshotPath,
      finalizeTerminatingPods: opts.finalizeTerminatingPods ?? true,
      gitVersion: opts.gitVersion ?? 'v1.31.0-weir-lab',
    };
    this.allocations = new ServiceAllocations(this.options.serviceCidr, this.options.nodePortRange);
    this.store = new Store(this.options.historySize, this.options.snapshotPath);
    for (const svc of this.store.all('services')) this.allocations.restore(svc);
    for (const pod of this.store.all('pods')) if (pod.metadata.deletionTimestamp) this.scheduleFinalize(pod);
    this.bootstrap();
  }

  /** The namespaces and the `kubernetes` service every cluster starts with. */
  private bootstrap(): void {
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      if (!this.store.get('namespaces', ns)) this.create('namespaces', { metadata: { name: ns } });
    }
    if (!this.store.get('services', keyOf('default', 'kubernetes'))) {
      this.create('services', {
        metadata: { name: 'kubernetes', namespace: 'default', labels: { component: 'apiserver', provider: 'kubernetes' } },
        spec: {
          clusterIP: this.allocations.ips.first,
          ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: 6443 }],
        },
      });
    }
  }

  // ---- in-process API -------------------------------------------------------------------------

  get(resource: string, name: string, namespace?: string): KObject {
    const r = resourceInfo(resource);
    const obj = this.store.get(r.name, this.key(r, namespace, name));
    if (!obj) throw notFound(r, name);
    return clone(obj);
  }

  list(resource: string, opts: ListOptions = {}): ListResult {
    const r = resourceInfo(resource);
    const w = this.filter(r, opts);
    const items = this.store.all(r.name).filter((o) => w.matches(o));
    items.sort((a, b) => keyOf(a.metadata.namespace, a.metadata.name!).localeCompare(keyOf(b.metadata.namespace, b.metadata.name!)));
    return { items: clone(items), resourceVersion: String(this.store.rv) };
  }

  /**
   * Like list, without copying: the stored objects themselves, for hot read-only loops (the lab
   * controller). Callers must not modify what they get.
   */
  peek(resource: string, opts: ListOptions = {}): readonly KObject[] {
    const r = resourceInfo(resource);
    const w = this.filter(r, opts);
    return this.store.all(r.name).filter((o) => w.matches(o));
  }

  create(resource: string, body: KObject, opts: WriteOptions = {}): KObject {
    const r = resourceInfo(resource);
    const obj = clone(body);
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw badRequest(`the body of a ${r.kind} create must be a JSON object`);
    obj.metadata ??= {};
    if (typeof obj.metadata !== 'object' || Array.isArray(obj.metadata)) throw badRequest(`${r.kind} metadata must be an object`);
    this.checkKind(r, obj);
    const meta = obj.metadata;
    if (r.namespaced) {
      const ns = opts.namespace ?? meta.namespace ?? 'default';
      if (meta.namespace && opts.namespace && meta.namespace !== opts.namespace) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      meta.namespace = ns;
      if (!this.store.get('namespaces', ns)) throw notFound(resourceInfo('namespaces'), ns);
    } else delete meta.namespace;
    if (!meta.name && meta.generateName) {
      do meta.name = meta.generateName + randomSuffix();
      while (this.store.get(r.name, this.key(r, meta.namespace, meta.name)));
    }
    const errs = validateMeta(r, obj);
    if (errs.length) throw invalid(r, meta.name ?? meta.generateName ?? '', errs);
    if (this.store.get(r.name, this.key(r, meta.namespace, meta.name!))) throw alreadyExists(r, meta.name!);

    for (const k of ['uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds']) delete meta[k];
    meta.uid = randomUUID();
    meta.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    meta.generation = 1;
    const { apiVersion: _a, kind: _k, ...rest } = obj;
    const full: KObject = { apiVersion: apiVersionOf(r), kind: r.kind, ...rest };
    this.admit(r, full, undefined, !!opts.dryRun);
    if (opts.dryRun) return full;
    return clone(this.store.commit(r.name, 'ADDED', full));
  }

  update(resource: string, body: KObject, opts: WriteOptions = {}): KObject {
    const r = resourceInfo(resource);
    if (!body?.metadata?.name) throw invalid(r, '', [field.required('metadata.name')]);
    const name = body.metadata.name;
    const ns = r.namespaced ? (opts.namespace ?? body.metadata.namespace ?? 'default') : undefined;
    if (r.namespaced && body.metadata.namespace && opts.namespace && body.metadata.namespace !== opts.namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    const old = this.store.get(r.name, this.key(r, ns, name));
    if (!old) throw notFound(r, name);
    return this.replace(r, old, clone(body), opts);
  }

  patch(resource: string, name: string, patch: unknown, opts: WriteOptions & { type?: PatchType } = {}): KObject {
    const r = resourceInfo(resource);
    const old = this.store.get(r.name, this.key(r, opts.namespace ?? (r.namespaced ? 'default' : undefined), name));
    if (!old) throw notFound(r, name);
    const merged = applyPatch(clone(old), patch, opts.type ?? 'merge') as KObject;
    if (!merged || typeof merged !== 'object' || !merged.metadata) throw badRequest('the patch removed metadata');
    if (merged.metadata.name !== name) throw badRequest(`the patch may not change metadata.name (from "${name}" to "${merged.metadata.name}")`);
    return this.replace(r, old, merged, opts);
  }

  delete(resource: string, name: string, opts: DeleteOptions = {}): KObject | Status {
    const r = resourceInfo(resource);
    const old = this.store.get(r.name, this.key(r, opts.namespace ?? (r.namespaced ? 'default' : undefined), name));
    if (!old) throw notFound(r, name);
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== old.metadata.uid) {
      throw conflict(r, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`);
    }
    if (pre?.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion) {
      throw conflict(r, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`);
    }
    if (opts.dryRun) return r.returnsDeletedObject ? clone(old) : success(r, name, old.metadata.uid);

    if (r.name === 'pods') {
      const graceful = this.gracefulPodDelete(old, opts.gracePeriodSeconds);
      if (graceful) return graceful;
    }
    if (r.name === 'namespaces') {
      // The namespace controller's job, done at once: every object in the namespace goes first.
      for (const other of ['pods', 'services', 'endpointslices', 'networkpolicies', 'deployments']) {
        for (const o of this.store.all(other)) if (o.metadata.namespace === name) this.remove(resourceInfo(other), o);
      }
    }
    const gone = this.remove(r, old);
    if (r.name === 'namespaces') gone.status = { phase: 'Terminating' };
    return r.returnsDeletedObject ? clone(gone) : success(r, name, old.metadata.uid);
  }

  /** Deletes every object a list with these options would return. */
  deleteCollection(resource: string, opts: ListOptions & DeleteOptions = {}): KObject[] {
    const out: KObject[] = [];
    for (const o of this.list(resource, opts).items) {
      const res = this.delete(resource, o.metadata.name!, { ...opts, namespace: o.metadata.namespace });
      if ((res as KObject).metadata?.name) out.push(res as KObject);
    }
    return out;
  }

  /**
   * Watches a resource. Events arrive on microtasks in resourceVersion order; objects are copies.
   * A resourceVersion older than the history (or newer than the store) gets one ERROR event with a
   * 410 Expired Status, then the watch ends, as the real server does.
   */
  watch(resource: string, opts: WatchOptions, onEvent: (e: WatchEvent) => void): WatchHandle {
    return this.openWatch(resource, opts, (e) => onEvent(clone(e)));
  }

  /** The watch used by the HTTP layer: events are not copied (they are serialized at once). */
  openWatch(resource: string, opts: WatchOptions, onEvent: (e: WatchEvent) => void, onEnd?: () => void): WatchHandle {
    const r = resourceInfo(resource);
    const w = new Watcher(this.filter(r, opts).filter, onEvent, (me) => {
      this.store.watchers.delete(me);
      onEnd?.();
    });
    const rvText = opts.resourceVersion ?? '';
    if (rvText === '' || rvText === '0') {
      for (const o of this.store.all(r.name)) if (w.matches(o)) w.push({ type: 'ADDED', object: o });
    } else {
      const rv = Number(rvText);
      if (!Number.isSafeInteger(rv)) throw badRequest(`invalid resourceVersion ${JSON.stringify(rvText)}: not a number`);
      const changes = this.store.since(rv);
      if (!changes) {
        const why = rv > this.store.rv ? 'too large resource version' : 'too old resource version';
        w.fail({ type: 'ERROR', object: expired(`${why}: ${rv} (${this.store.compactedRv + 1})`).status });
        return { stop: () => w.stop() };
      }
      for (const c of changes) w.offer(c);
    }
    this.store.watchers.add(w);
    if (opts.allowWatchBookmarks) {
      w.bookmarkTimer = setInterval(() => {
        w.push({ type: 'BOOKMARK', object: { kind: r.kind, apiVersion: apiVersionOf(r), metadata: { resourceVersion: String(this.store.rv) } } });
      }, this.options.bookmarkIntervalMs);
      w.bookmarkTimer.unref();
    }
    return { stop: () => w.stop() };
  }

  // ---- HTTP -----------------------------------------------------------------------------------

  /** Serves the REST API; resolves with the bound port (pass 0 for any free one). */
  listen(port: number, host = '127.0.0.1'): Promise<number> {
    const srv = createHttpServer(this);
    this.http = srv;
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, host, () => {
        srv.off('error', reject);
        resolve((srv.address() as AddressInfo).port);
      });
    });
  }

  get port(): number | undefined {
    const a = this.http?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  /** Stops serving: open watches are cut (clients see the stream end), the snapshot is written. */
  async close(): Promise<void> {
    for (const w of [...this.store.watchers]) w.stop();
    for (const t of this.podTimers.values()) clearTimeout(t);
    this.podTimers.clear();
    this.store.flush();
    const srv = this.http;
    this.http = undefined;
    if (srv) {
      await new Promise<void>((resolve) => {
        srv.close(() => resolve());
        srv.closeAllConnections();
      });
    }
  }

  // ---- internals ------------------------------------------------------------------------------

  private key(r: ResourceInfo, namespace: string | undefined, name: string): string {
    return keyOf(r.namespaced ? (namespace ?? 'default') : undefined, name);
  }

  private filter(r: ResourceInfo, opts: ListOptions) {
    return new Watcher(
      {
        resource: r.name,
        namespace: r.namespaced ? opts.namespace || undefined : undefined,
        labels: opts.labelSelector ? parseLabelSelector(opts.labelSelector) : [],
        fields: opts.fieldSelector ? parseFieldSelector(opts.fieldSelector, r) : [],
      },
      () => {},
      () => {},
    );
  }

  private checkKind(r: ResourceInfo, obj: KObject): void {
    if (obj.kind !== undefined && obj.kind !== r.kind) {
      throw badRequest(`the kind ${JSON.stringify(obj.kind)} of the provided object does not match the resource ${r.name} (kind ${r.kind})`);
    }
    if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersionOf(r)) {
      throw badRequest(`the apiVersion ${JSON.stringify(obj.apiVersion)} of the provided object does not match ${apiVersionOf(r)} for ${r.name}`);
    }
  }

  /** Defaulting, validation and (for services) allocation; throws 422 and leaves nothing allocated on error. */
  private admit(r: ResourceInfo, obj: KObject, old: KObject | undefined, dryRun: boolean): void {
    if (!old) defaultObject(r, obj);
    const name = obj.metadata.name!;
    const errs: FieldError[] = [...validateObject(r, obj)];
    if (r.name === 'services') {
      defaultService(obj);
      errs.push(...validateService(obj));
      if (errs.length === 0) {
        if (dryRun) {
          // Allocate then give back, so a dry run reports the same errors without keeping anything.
          const probe = clone(obj);
          const aerrs = this.allocations.allocate(probe, old);
          if (aerrs.length) throw invalid(r, name, aerrs);
          this.allocations.releaseDropped(probe, old);
          return;
        }
        errs.push(...this.allocations.allocate(obj, old));
      }
    }
    if (errs.length) throw invalid(r, name, errs);
  }

  private replace(r: ResourceInfo, old: KObject, obj: KObject, opts: WriteOptions): KObject {
    const name = old.metadata.name!;
    this.checkKind(r, obj);
    obj.metadata ??= {};
    const sent = obj.metadata.resourceVersion;
    if (sent !== undefined && sent !== '' && sent !== old.metadata.resourceVersion) throw conflict(r, name);
    if (opts.subresource === 'status') {
      if (!r.hasStatus) throw badRequest(`${r.name} has no status subresource`);
      // A status write changes only status.
      obj = { ...clone(old), status: obj.status };
    } else {
      if (r.hasStatus) obj.status = clone(old.status);
      // Fields the server owns.
      for (const k of ['uid', 'creationTimestamp', 'generation', 'namespace', 'deletionTimestamp', 'deletionGracePeriodSeconds']) {
        if (old.metadata[k] === undefined) delete obj.metadata[k];
        else obj.metadata[k] = old.metadata[k];
      }
      obj.metadata.name = name;
    }
    obj.apiVersion = apiVersionOf(r);
    obj.kind = r.kind;
    if (r.name === 'services' && opts.subresource !== 'status') {
      const reachable = (t: string) => t === 'NodePort' || t === 'LoadBalancer';
      // Leaving NodePort/LoadBalancer gives the node ports back, as the real server does.
      if (reachable(old.spec?.type) && !reachable(obj.spec?.type ?? 'ClusterIP')) for (const p of obj.spec?.ports ?? []) delete p.nodePort;
      this.admit(r, obj, old, !!opts.dryRun);
    } else if (opts.subresource !== 'status') {
      const errs = [...validateMeta(r, obj), ...validateObject(r, obj)];
      if (errs.length) throw invalid(r, name, errs);
    }
    if (r.name === 'namespaces') obj.metadata.labels = { ...obj.metadata.labels, 'kubernetes.io/metadata.name': name };
    if (opts.subresource !== 'status' && specPart(obj) !== specPart(old)) obj.metadata.generation = (old.metadata.generation ?? 1) + 1;
    if (opts.dryRun) return obj;
    if (r.name === 'services') this.allocations.releaseDropped(old, obj);
    if (JSON.stringify({ ...obj, metadata: { ...obj.metadata, resourceVersion: '' } }) ===
        JSON.stringify({ ...old, metadata: { ...old.metadata, resourceVersion: '' } })) {
      return clone(old); // no-op writes do not bump the version, as with etcd's guaranteed update
    }
    return clone(this.store.commit(r.name, 'MODIFIED', obj, old));
  }

  private remove(r: ResourceInfo, old: KObject): KObject {
    if (r.name === 'services') this.allocations.releaseDropped(old);
    if (r.name === 'pods') {
      const k = keyOf(old.metadata.namespace, old.metadata.name!);
      clearTimeout(this.podTimers.get(k));
      this.podTimers.delete(k);
    }
    return this.store.commit(r.name, 'DELETED', clone(old));
  }

  /**
   * Pods on a node are deleted gracefully, as the real server does: deletionTimestamp is set and the
   * pod stays (terminating) until a delete with grace 0 or the end of its grace period.
   * Returns the terminating pod, or undefined when it should go at once.
   */
  private gracefulPodDelete(pod: KObject, requested?: number): KObject | undefined {
    const phase = pod.status?.phase;
    if (!pod.spec?.nodeName || phase === 'Succeeded' || phase === 'Failed') return undefined;
    const grace = requested ?? pod.metadata.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
    if (grace <= 0) return undefined;
    if (pod.metadata.deletionGracePeriodSeconds !== undefined && pod.metadata.deletionGracePeriodSeconds <= grace) return clone(pod);
    const next = clone(pod);
    next.metadata.deletionTimestamp = new Date(Date.now() + grace * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    next.metadata.deletionGracePeriodSeconds = grace;
    const out = this.store.commit('pods', 'MODIFIED', next, pod);
    this.scheduleFinalize(out);
    return clone(out);
  }

  private scheduleFinalize(pod: KObject): void {
    if (!this.options.finalizeTerminatingPods) return;
    const k = keyOf(pod.metadata.namespace, pod.metadata.name!);
    clearTimeout(this.podTimers.get(k));
    const ms = Math.max(0, Date.parse(pod.metadata.deletionTimestamp!) - Date.now());
    const t = setTimeout(() => {
      this.podTimers.delete(k);
      const cur = this.store.get('pods', k);
      if (cur && cur.metadata.uid === pod.metadata.uid) this.remove(resourceInfo('pods'), cur);
    }, ms);
    t.unref();
    this.podTimers.set(k, t);
  }
}

export { ApiError };
