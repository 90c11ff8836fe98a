// The lab API server over HTTP, driven by @kubernetes/client-node as the agent drives it:
// typed CRUD clients, informers (list + watch), 410 relists, bookmarks, and server restarts.
import {
  ApiException, CoreV1Api, DiscoveryV1Api, KubeConfig, makeInformer, NetworkingV1Api, PatchStrategy, setHeaderOptions, Watch,
  ListWatch, type Informer, type ObjectCache, type KubernetesObject, type V1Pod,
} from '@kubernetes/client-node';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiServer, labKubeconfig, type ApiServerOptions } from '../../control/lab/apiserver/index.js';

function kubeConfig(port: number): KubeConfig {
  // The same kubeconfig the lab hands to agents and kubectl.
  const kc = new KubeConfig();
  kc.loadFromString(labKubeconfig(`http://127.0.0.1:${port}`));
  return kc;
}

/** Polls until `cond` holds; a bound on waiting, never a timing assertion. */
async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function podBody(name: string, labels: Record<string, string> = {}): V1Pod {
  return { metadata: { name, labels }, spec: { containers: [{ name: 'c', image: 'weir/echo' }] } };
}

async function started(opts: ApiServerOptions = {}, port = 0): Promise<{ api: ApiServer; port: number }> {
  const api = new ApiServer(opts);
  return { api, port: await api.listen(port) };
}

describe('typed clients', () => {
  let api: ApiServer;
  let core: CoreV1Api;
  let discovery: DiscoveryV1Api;
  let networking: NetworkingV1Api;
  beforeAll(async () => {
    const s = await started();
    api = s.api;
    const kc = kubeConfig(s.port);
    core = kc.makeApiClient(CoreV1Api);
    discovery = kc.makeApiClient(DiscoveryV1Api);
    networking = kc.makeApiClient(NetworkingV1Api);
  });
  afterAll(() => api.close());

  it('creates, reads, lists, patches and deletes pods', async () => {
    const created = await core.createNamespacedPod({ namespace: 'default', body: podBody('p1', { app: 'web' }) });
    expect(created.metadata?.uid).toBeTruthy();
    expect((await core.readNamespacedPod({ name: 'p1', namespace: 'default' })).metadata?.labels).toEqual({ app: 'web' });
    await core.createNamespacedPod({ namespace: 'default', body: podBody('p2', { app: 'db' }) });
    const web = await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=web' });
    expect(web.items.map((p) => p.metadata?.name)).toEqual(['p1']);
    const all = await core.listPodForAllNamespaces();
    expect(all.items.map((p) => p.metadata?.name).sort()).toEqual(['p1', 'p2']);
    expect(Number(all.metadata?.resourceVersion)).toBeGreaterThan(0);

    const merged = await core.patchNamespacedPod(
      { name: 'p1', namespace: 'default', body: { metadata: { labels: { tier: 'fe' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(merged.metadata?.labels).toEqual({ app: 'web', tier: 'fe' });
    const jsonPatched = await core.patchNamespacedPod({
      name: 'p1', namespace: 'default', body: [{ op: 'add', path: '/metadata/labels/v', value: '2' }],
    });
    expect(jsonPatched.metadata?.labels?.v).toBe('2');
    const status = await core.replaceNamespacedPodStatus({
      name: 'p1', namespace: 'default', body: { ...jsonPatched, status: { phase: 'Running', podIP: '10.244.0.5' } },
    });
    expect(status.status?.podIP).toBe('10.244.0.5');

    await core.deleteNamespacedPod({ name: 'p2', namespace: 'default' });
    const left = await core.listNamespacedPod({ namespace: 'default' });
    expect(left.items.map((p) => p.metadata?.name)).toEqual(['p1']);
  });

  it('errors reach the client as Status bodies with the right codes', async () => {
    const err = await core.readNamespacedPod({ name: 'missing', namespace: 'default' }).catch((e) => e);
    expect(err).toBeInstanceOf(ApiException);
    expect(err.code).toBe(404);
    expect(JSON.parse(err.body)).toMatchObject({ kind: 'Status', reason: 'NotFound' });

    const invalid = await core.createNamespacedService({
      namespace: 'default', body: { metadata: { name: 'bad' }, spec: { ports: [{ port: 80, protocol: 'TCP' }, { port: 81, protocol: 'TCP' }] } },
    }).catch((e) => e);
    expect(invalid.code).toBe(422);
    expect(JSON.parse(invalid.body).details.causes.map((c: any) => c.field)).toEqual(['spec.ports[0].name', 'spec.ports[1].name']);

    const p = await core.readNamespacedPod({ name: 'p1', namespace: 'default' });
    await core.patchNamespacedPod({ name: 'p1', namespace: 'default', body: [{ op: 'add', path: '/metadata/labels/w', value: '1' }] });
    const stale = await core.replaceNamespacedPod({ name: 'p1', namespace: 'default', body: p }).catch((e) => e);
    expect(stale.code).toBe(409);
    expect(JSON.parse(stale.body).reason).toBe('Conflict');
  });

  it('services, endpointslices and networkpolicies through their group clients', async () => {
    const svc = await core.createNamespacedService({
      namespace: 'default', body: { metadata: { name: 'web' }, spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http' as any }] } },
    });
    expect(svc.spec?.clusterIP).toMatch(/^10\.(9[6-9]|10[0-9]|11[01])\./);
    expect(svc.spec?.ports?.[0].nodePort).toBeGreaterThanOrEqual(30000);

    await discovery.createNamespacedEndpointSlice({
      namespace: 'default',
      body: {
        metadata: { name: 'web-abcde', labels: { 'kubernetes.io/service-name': 'web' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['10.244.0.5'], conditions: { ready: true } }],
        ports: [{ name: '', port: 8080, protocol: 'TCP' }],
      },
    });
    const slices = await discovery.listNamespacedEndpointSlice({ namespace: 'default', labelSelector: 'kubernetes.io/service-name=web' });
    expect(slices.items[0].endpoints[0].addresses).toEqual(['10.244.0.5']);

    const np = await networking.createNamespacedNetworkPolicy({
      namespace: 'default',
      body: { metadata: { name: 'only-fe' }, spec: { podSelector: { matchLabels: { app: 'redis' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { app: 'fe' } } }] }] } },
    });
    expect(np.spec?.policyTypes).toEqual(['Ingress']);
    // The client's `_from` went over the wire as `from`.
    expect(api.get('networkpolicies', 'only-fe').spec.ingress).toEqual([{ from: [{ podSelector: { matchLabels: { app: 'fe' } } }] }]);
    const nps = await networking.listNetworkPolicyForAllNamespaces();
    expect(nps.items.map((n) => n.metadata?.name)).toEqual(['only-fe']);
  });
});

describe('informers', () => {
  it('see ADDED, MODIFIED and DELETED for pods, services and endpointslices', async () => {
    const { api, port } = await started();
    const kc = kubeConfig(port);
    const core = kc.makeApiClient(CoreV1Api);
    const disc = kc.makeApiClient(DiscoveryV1Api);
    const seen: string[] = [];
    const informers = [
      makeInformer(kc, '/api/v1/pods', () => core.listPodForAllNamespaces()),
      makeInformer(kc, '/api/v1/namespaces/default/services', () => core.listNamespacedService({ namespace: 'default' })),
      makeInformer(kc, '/apis/discovery.k8s.io/v1/endpointslices', () => disc.listEndpointSliceForAllNamespaces()),
    ] as unknown as (Informer<KubernetesObject> & ObjectCache<KubernetesObject>)[];
    const kinds = ['pod', 'svc', 'slice'];
    informers.forEach((inf, i) => {
      const log = (verb: string) => (o: KubernetesObject) => {
        seen.push(`${kinds[i]} ${verb} ${o.metadata?.name}`);
      };
      inf.on('add', log('add'));
      inf.on('update', log('update'));
      inf.on('delete', log('delete'));
      inf.on('error', (e) => seen.push(`${kinds[i]} error ${e}`));
    });
    await Promise.all(informers.map((i) => i.start()));
    await until('initial list', () => seen.includes('svc add kubernetes'));

    api.create('pods', podBody('w1', { app: 'web' }) as any);
    api.create('services', { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } });
    api.create('endpointslices', { metadata: { name: 'web-1' }, addressType: 'IPv4', endpoints: [], ports: [] });
    api.patch('pods', 'w1', { status: { phase: 'Running' } }, { subresource: 'status' });
    api.delete('pods', 'w1');
    api.delete('endpointslices', 'web-1');
    await until('all events', () => seen.includes('slice delete web-1') && seen.includes('pod delete w1'));
    expect(seen.filter((s) => s.startsWith('pod'))).toEqual(['pod add w1', 'pod update w1', 'pod delete w1']);
    expect(seen.filter((s) => s.startsWith('slice'))).toEqual(['slice add web-1', 'slice delete web-1']);
    expect(seen.filter((s) => s.startsWith('svc'))).toEqual(['svc add kubernetes', 'svc add web']);
    expect(informers[0].list().map((p) => p.metadata?.name)).toEqual([]);
    for (const i of informers) await i.stop();
    await api.close();
  });

  it('a watch from a too-old resourceVersion gets 410 and the informer relists', async () => {
    const { api, port } = await started({ historySize: 5 });
    const kc = kubeConfig(port);
    const core = kc.makeApiClient(CoreV1Api);
    // Count lists the informer makes, to see the relist happen.
    let lists = 0;
    const inf = makeInformer(kc, '/api/v1/namespaces/default/pods', () => {
      lists++;
      return core.listNamespacedPod({ namespace: 'default' });
    });
    const added: string[] = [];
    const errors: unknown[] = [];
    inf.on('add', (p) => added.push(p.metadata!.name!));
    // While the server is away the re-watch fails; start again a little later, as an agent does.
    inf.on('error', (e) => {
      errors.push(e);
      setTimeout(() => void inf.start().catch(() => {}), 50);
    });
    await inf.start();
    expect(lists).toBe(1);
    const staleRv = (inf as unknown as ListWatch<V1Pod>).latestResourceVersion();

    // The raw watch from that version, once history has moved past it, is a 410 ERROR event.
    for (let i = 0; i < 10; i++) api.create('pods', podBody(`burst-${i}`) as any);
    const events: { type: string; obj: any }[] = [];
    await new Promise<void>((resolve) => {
      new Watch(kc).watch('/api/v1/namespaces/default/pods', { resourceVersion: staleRv }, (type, obj) => events.push({ type, obj }), () => resolve());
    });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'ERROR', obj: { kind: 'Status', code: 410, reason: 'Expired' } });

    // Make the informer's own watch end while history moves past its version: it must relist.
    await api.close();
    for (let i = 10; i < 20; i++) api.create('pods', podBody(`burst-${i}`) as any);
    await api.listen(port);
    await until('relist after 410', () => added.length === 20 && lists >= 2);
    expect(added.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `burst-${i}`).sort());
    expect(inf.list().length).toBe(20);
    await inf.stop();
    await api.close();
  });

  it('bookmarks arrive on watches that allow them', async () => {
    const { api, port } = await started({ bookmarkIntervalMs: 20 });
    const kc = kubeConfig(port);
    const events: { type: string; obj: any }[] = [];
    const ctl = await new Watch(kc).watch(
      '/api/v1/pods', { allowWatchBookmarks: true, resourceVersion: api.list('pods').resourceVersion },
      (type, obj) => events.push({ type, obj }), () => {},
    );
    api.create('pods', podBody('bm') as any);
    await until('a bookmark', () => events.some((e) => e.type === 'BOOKMARK'));
    const bm = events.find((e) => e.type === 'BOOKMARK')!;
    expect(bm.obj).toMatchObject({ kind: 'Pod', apiVersion: 'v1' });
    expect(Number(bm.obj.metadata.resourceVersion)).toBeGreaterThanOrEqual(Number(events[0].obj.metadata.resourceVersion));
    ctl.abort();
    await api.close();
  });

  it('an API server restart mid-watch: the informer reconnects and converges on the new state', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'h5-restart-'));
    try {
      const snapshotPath = join(dir, 'store.json');
      const first = await started({ snapshotPath });
      const port = first.port;
      first.api.create('pods', podBody('before') as any);
      const kc = kubeConfig(port);
      const core = kc.makeApiClient(CoreV1Api);
      const inf = makeInformer(kc, '/api/v1/namespaces/default/pods', () => core.listNamespacedPod({ namespace: 'default' }));
      const log: string[] = [];
      inf.on('add', (p) => log.push(`add ${p.metadata!.name}`));
      inf.on('delete', (p) => log.push(`delete ${p.metadata!.name}`));
      // What an agent does: on a watch error (server down), start again a little later.
      inf.on('error', () => {
        setTimeout(() => void inf.start().catch(() => {}), 100);
      });
      await inf.start();
      await until('initial add', () => log.includes('add before'));

      await first.api.close();
      const second = await started({ snapshotPath }, port);
      // Changes made while the client was away, including a delete, show up after reconnecting.
      second.api.delete('pods', 'before');
      second.api.create('pods', podBody('after') as any);
      await until('converged after restart', () => log.includes('add after') && log.includes('delete before'));
      expect(inf.list().map((p) => p.metadata!.name)).toEqual(['after']);
      second.api.create('pods', podBody('later') as any);
      await until('live watch after restart', () => log.includes('add later'));
      expect(log.filter((l) => l === 'add before')).toHaveLength(1);
      await inf.stop();
      await second.api.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
