// Watches the objects the agent programs from, with @kubernetes/client-node
// informers. An informer that errors (API server gone, network) keeps its
// cache and is restarted with backoff, so an outage changes nothing in the
// maps; a 410 Gone relists and reports only what really changed.
import { EventEmitter } from 'node:events';
import {
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  NetworkingV1Api,
  makeInformer,
  type Informer,
  type KubernetesObject,
  type ObjectCache,
  type V1EndpointSlice,
  type V1Namespace,
  type V1NetworkPolicy,
  type V1Node,
  type V1Pod,
  type V1Service,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { AgentMetrics } from './metrics.js';

export interface ClusterState {
  nodes: readonly V1Node[];
  namespaces: readonly V1Namespace[];
  pods: readonly V1Pod[];
  services: readonly V1Service[];
  endpointSlices: readonly V1EndpointSlice[];
  networkPolicies: readonly V1NetworkPolicy[];
}

export type Resource = keyof ClusterState;

type Entry<T extends KubernetesObject> = { informer: Informer<T> & ObjectCache<T>; synced: boolean; backoffMs: number; timer?: NodeJS.Timeout };

export const objectRef = (o: KubernetesObject) => (o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata?.name}` : `${o.metadata?.name}`);

export class ClusterWatch extends EventEmitter {
  private entries = new Map<Resource, Entry<KubernetesObject>>();
  private stopped = false;

  constructor(
    private kc: KubeConfig,
    private log: Logger,
    private metrics?: AgentMetrics,
  ) {
    super();
    const core = kc.makeApiClient(CoreV1Api);
    const disc = kc.makeApiClient(DiscoveryV1Api);
    const net = kc.makeApiClient(NetworkingV1Api);
    this.add('nodes', '/api/v1/nodes', () => core.listNode());
    this.add('namespaces', '/api/v1/namespaces', () => core.listNamespace());
    this.add('pods', '/api/v1/pods', () => core.listPodForAllNamespaces());
    this.add('services', '/api/v1/services', () => core.listServiceForAllNamespaces());
    this.add('endpointSlices', '/apis/discovery.k8s.io/v1/endpointslices', () => disc.listEndpointSliceForAllNamespaces());
    this.add('networkPolicies', '/apis/networking.k8s.io/v1/networkpolicies', () => net.listNetworkPolicyForAllNamespaces());
  }

  private add<T extends KubernetesObject>(res: Resource, path: string, list: () => Promise<{ items: T[] }>): void {
    const informer = makeInformer<T>(this.kc, path, list as never);
    const entry: Entry<T> = { informer, synced: false, backoffMs: 500 };
    for (const verb of ['add', 'update', 'delete'] as const) {
      informer.on(verb, (obj: T) => {
        this.metrics?.watchEvents.inc({ resource: res, type: verb });
        this.log.debug({ resource: res, event: verb, object: objectRef(obj) }, 'watch event');
        entry.backoffMs = 500;
        this.emit('change', res);
      });
    }
    informer.on('connect', () => {
      entry.backoffMs = 500;
    });
    informer.on('error', (err: unknown) => {
      if (this.stopped) return;
      const e = err as { message?: string; code?: string; statusCode?: number };
      this.log.warn({ resource: res, err: e?.message ?? String(err), retryInMs: entry.backoffMs }, 'watch failed; keeping the last known state and retrying');
      clearTimeout(entry.timer);
      entry.timer = setTimeout(() => this.restart(res), entry.backoffMs);
      entry.backoffMs = Math.min(entry.backoffMs * 2, 30_000);
    });
    this.entries.set(res, entry as unknown as Entry<KubernetesObject>);
  }

  private restart(res: Resource): void {
    const e = this.entries.get(res)!;
    if (this.stopped) return;
    e.informer.start().then(
      () => {
        if (!e.synced) {
          e.synced = true;
          this.emit('change', res);
        }
      },
      () => {
        /* the error callback schedules the next try */
      },
    );
  }

  /** Starts every informer; resolves once each has listed once (retrying until it can). */
  async start(): Promise<void> {
    await Promise.all(
      [...this.entries].map(async ([res, e]) => {
        for (;;) {
          if (this.stopped) return;
          try {
            await e.informer.start();
            e.synced = true;
            return;
          } catch (err) {
            this.log.warn({ resource: res, err: (err as Error).message, retryInMs: e.backoffMs }, 'initial list failed; retrying');
            await new Promise((r) => setTimeout(r, e.backoffMs));
            e.backoffMs = Math.min(e.backoffMs * 2, 30_000);
          }
        }
      }),
    );
  }

  get synced(): boolean {
    return [...this.entries.values()].every((e) => e.synced);
  }

  snapshot(): ClusterState {
    const l = <T>(r: Resource) => this.entries.get(r)!.informer.list() as unknown as readonly T[];
    return {
      nodes: l('nodes'),
      namespaces: l('namespaces'),
      pods: l('pods'),
      services: l('services'),
      endpointSlices: l('endpointSlices'),
      networkPolicies: l('networkPolicies'),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const e of this.entries.values()) {
      clearTimeout(e.timer);
      await e.informer.stop().catch(() => undefined);
    }
  }
}

/** A KubeConfig from a file, the in-cluster service account, or just a server URL (the lab). */
export function loadKubeConfig(opts: { kubeconfig?: string; apiServer?: string }): KubeConfig {
  const kc = new KubeConfig();
  if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
  else if (opts.apiServer) {
    kc.loadFromOptions({
      clusters: [{ name: 'weir', server: opts.apiServer, skipTLSVerify: true }],
      users: [{ name: 'weir' }],
      contexts: [{ name: 'weir', cluster: 'weir', user: 'weir' }],
      currentContext: 'weir',
    });
    return kc;
  } else kc.loadFromCluster();
  if (opts.apiServer) {
    const cluster = kc.getCurrentCluster();
    if (cluster) (cluster as { server: string }).server = opts.apiServer;
  }
  return kc;
}
