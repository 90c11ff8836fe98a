// The REST surface itself: discovery, paths, subresources (status, binding, scale), tables,
// dry runs, collection deletes and HTTP-level errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiServer } from '../../control/lab/apiserver/index.js';

let api: ApiServer;
let base: string;

beforeAll(async () => {
  api = new ApiServer();
  base = `http://127.0.0.1:${await api.listen(0)}`;
});
afterAll(() => api.close());

async function call(method: string, path: string, body?: unknown, contentType = 'application/json', accept = 'application/json') {
  const res = await fetch(base + path, {
    method,
    headers: { 'Content-Type': contentType, Accept: accept },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const podBody = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, labels }, spec: { containers: [{ name: 'c', image: 'weir/echo' }] },
});

describe('discovery', () => {
  it('/api, /apis, /api/v1, group versions and /version describe what is served', async () => {
    expect((await call('GET', '/api')).body).toMatchObject({ kind: 'APIVersions', versions: ['v1'] });
    const groups = (await call('GET', '/apis')).body;
    expect(groups.groups.map((g: any) => g.preferredVersion.groupVersion).sort()).toEqual(['apps/v1', 'discovery.k8s.io/v1', 'networking.k8s.io/v1']);
    const core = (await call('GET', '/api/v1')).body;
    const byName = Object.fromEntries(core.resources.map((r: any) => [r.name, r]));
    expect(byName.pods).toMatchObject({ kind: 'Pod', namespaced: true, shortNames: ['po'] });
    expect(byName.pods.verbs).toEqual(expect.arrayContaining(['create', 'get', 'list', 'watch', 'update', 'patch', 'delete']));
    expect(byName.nodes.namespaced).toBe(false);
    expect(byName['pods/status']).toBeDefined();
    const disc = (await call('GET', '/apis/discovery.k8s.io/v1')).body;
    expect(disc.resources.map((r: any) => r.name)).toEqual(['endpointslices']);
    expect((await call('GET', '/apis/apps')).body).toMatchObject({ kind: 'APIGroup', name: 'apps' });
    expect((await call('GET', '/version')).body).toMatchObject({ major: '1', gitVersion: expect.stringMatching(/^v1\./) });
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('unknown paths and resources are 404 Status objects; wrong group paths too', async () => {
    expect(await call('GET', '/api/v1/secrets')).toMatchObject({ status: 404, body: { kind: 'Status', reason: 'NotFound' } });
    expect((await call('GET', '/apis/apps/v1/pods')).status).toBe(404);
    expect((await call('GET', '/api/v1/deployments')).status).toBe(404);
  });
});

describe('verbs over HTTP', () => {
  it('POST/GET/PUT/PATCH/DELETE on namespaced and cluster paths', async () => {
    const created = await call('POST', '/api/v1/namespaces/default/pods', podBody('h1', { app: 'a' }));
    expect(created.status).toBe(201);
    expect(created.body.metadata.namespace).toBe('default');
    expect((await call('GET', '/api/v1/namespaces/default/pods/h1')).body.metadata.uid).toBe(created.body.metadata.uid);
    const list = await call('GET', '/api/v1/pods?labelSelector=app%3Da');
    expect(list.body).toMatchObject({ kind: 'PodList', apiVersion: 'v1' });
    expect(list.body.items.map((p: any) => p.metadata.name)).toEqual(['h1']);
    const put = await call('PUT', '/api/v1/namespaces/default/pods/h1', { ...created.body, metadata: { ...created.body.metadata, labels: { app: 'b' } } });
    expect(put.body.metadata.labels).toEqual({ app: 'b' });
    const stale = await call('PUT', '/api/v1/namespaces/default/pods/h1', created.body);
    expect(stale).toMatchObject({ status: 409, body: { reason: 'Conflict' } });
    const patched = await call('PATCH', '/api/v1/namespaces/default/pods/h1', { metadata: { labels: { c: 'd' } } }, 'application/merge-patch+json');
    expect(patched.body.metadata.labels).toEqual({ app: 'b', c: 'd' });
    expect((await call('PATCH', '/api/v1/namespaces/default/pods/h1', {}, 'text/plain')).status).toBe(415);
    const node = await call('POST', '/api/v1/nodes', { metadata: { name: 'node-1' } });
    expect(node.status).toBe(201);
    expect((await call('GET', '/api/v1/nodes/node-1')).body.metadata.name).toBe('node-1');
    expect((await call('DELETE', '/api/v1/namespaces/default/pods/h1')).body.metadata.name).toBe('h1');
    expect((await call('GET', '/api/v1/namespaces/default/pods/h1')).status).toBe(404);
  });

  it('rejects a body whose namespace or name disagrees with the URL, and bad JSON', async () => {
    const ns = await call('POST', '/api/v1/namespaces/default/pods', { ...podBody('x'), metadata: { name: 'x', namespace: 'kube-system' } });
    expect(ns).toMatchObject({ status: 400, body: { reason: 'BadRequest' } });
    expect((await call('POST', '/api/v1/namespaces/default/pods', '{nope')).status).toBe(400);
    expect((await call('POST', '/api/v1/namespaces/default/services', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'k' } })).status).toBe(400);
  });

  it('status, binding and scale subresources', async () => {
    await call('POST', '/api/v1/namespaces/default/pods', podBody('b1'));
    const bound = await call('POST', '/api/v1/namespaces/default/pods/b1/binding', { apiVersion: 'v1', kind: 'Binding', metadata: { name: 'b1' }, target: { kind: 'Node', name: 'node-1' } });
    expect(bound.status).toBe(201);
    expect(api.get('pods', 'b1').spec.nodeName).toBe('node-1');
    expect((await call('POST', '/api/v1/namespaces/default/pods/b1/binding', { target: { name: 'node-2' } })).status).toBe(409);
    const st = await call('PATCH', '/api/v1/namespaces/default/pods/b1/status', { status: { phase: 'Running', podIP: '10.244.1.4' } }, 'application/strategic-merge-patch+json');
    expect(st.body.status).toMatchObject({ phase: 'Running', podIP: '10.244.1.4' });

    await call('POST', '/apis/apps/v1/namespaces/default/deployments', {
      metadata: { name: 'd' }, spec: { replicas: 2, selector: { matchLabels: { app: 'd' } }, template: { metadata: { labels: { app: 'd' } }, spec: { containers: [{ name: 'c', image: 'x' }] } } },
    });
    expect((await call('GET', '/apis/apps/v1/namespaces/default/deployments/d/scale')).body).toMatchObject({ kind: 'Scale', spec: { replicas: 2 }, status: { selector: 'app=d' } });
    const scaled = await call('PATCH', '/apis/apps/v1/namespaces/default/deployments/d/scale', { spec: { replicas: 5 } }, 'application/merge-patch+json');
    expect(scaled.body.spec.replicas).toBe(5);
    expect(api.get('deployments', 'd').spec.replicas).toBe(5);
  });

  it('deployment validation: the selector must match the template labels', async () => {
    const bad = await call('POST', '/apis/apps/v1/namespaces/default/deployments', {
      metadata: { name: 'bad' }, spec: { selector: { matchLabels: { app: 'x' } }, template: { metadata: { labels: { app: 'y' } }, spec: { containers: [{ name: 'c', image: 'x' }] } } },
    });
    expect(bad.status).toBe(422);
    expect(bad.body.details.causes[0].field).toBe('spec.template.metadata.labels');
  });

  it('dryRun=All validates and allocates nothing', async () => {
    const dry = await call('POST', '/api/v1/namespaces/default/services?dryRun=All', { metadata: { name: 'dry' }, spec: { clusterIP: '10.96.0.33', ports: [{ port: 80 }] } });
    expect(dry.status).toBe(201);
    expect(dry.body.spec.clusterIP).toBe('10.96.0.33');
    expect((await call('GET', '/api/v1/namespaces/default/services/dry')).status).toBe(404);
    const real = await call('POST', '/api/v1/namespaces/default/services', { metadata: { name: 'real' }, spec: { clusterIP: '10.96.0.33', ports: [{ port: 80 }] } });
    expect(real.body.spec.clusterIP).toBe('10.96.0.33');
    const dryBad = await call('POST', '/api/v1/namespaces/default/services?dryRun=All', { metadata: { name: 'dry2' }, spec: { clusterIP: '10.96.0.33', ports: [{ port: 80 }] } });
    expect(dryBad.status).toBe(422);
  });

  it('DELETE on a collection deletes what the selector picks', async () => {
    for (const n of ['c1', 'c2', 'c3']) await call('POST', '/api/v1/namespaces/default/pods', podBody(n, { batch: n === 'c3' ? 'keep' : 'drop' }));
    const res = await call('DELETE', '/api/v1/namespaces/default/pods?labelSelector=batch%3Ddrop');
    expect(res.body.items.map((p: any) => p.metadata.name).sort()).toEqual(['c1', 'c2']);
    expect(api.list('pods', { labelSelector: 'batch' }).items.map((p) => p.metadata.name)).toEqual(['c3']);
  });

  it('tables for kubectl: columns and one row per object', async () => {
    const t = await call('GET', '/api/v1/namespaces/default/services', undefined, 'application/json', 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json');
    expect(t.body.kind).toBe('Table');
    expect(t.body.columnDefinitions.map((c: any) => c.name)).toEqual(['Name', 'Type', 'Cluster-IP', 'External-IP', 'Port(s)', 'Age', 'Selector']);
    const real = t.body.rows.find((r: any) => r.cells[0] === 'real');
    expect(real.cells.slice(0, 5)).toEqual(['real', 'ClusterIP', '10.96.0.33', '<none>', '80/TCP']);
  });
});

describe('watch over HTTP', () => {
  async function readEvents(path: string, count: number, act: () => Promise<void> | void): Promise<any[]> {
    const ctl = new AbortController();
    const res = await fetch(base + path, { signal: ctl.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const events: any[] = [];
    let buf = '';
    await act();
    while (events.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += Buffer.from(value).toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        events.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    }
    ctl.abort();
    return events;
  }

  it('streams one JSON event per line, filtered by namespace and field selector', async () => {
    const rv = api.list('pods').resourceVersion;
    const ev = await readEvents(`/api/v1/namespaces/default/pods?watch=true&resourceVersion=${rv}&fieldSelector=metadata.name%3Dw1`, 2, async () => {
      await call('POST', '/api/v1/namespaces/default/pods', podBody('w0'));
      await call('POST', '/api/v1/namespaces/default/pods', podBody('w1'));
      await call('DELETE', '/api/v1/namespaces/default/pods/w1');
    });
    expect(ev.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['ADDED w1', 'DELETED w1']);
  });

  it('the /watch/ path form and timeoutSeconds end the stream', async () => {
    const res = await fetch(`${base}/api/v1/watch/namespaces/default/pods?timeoutSeconds=1&resourceVersion=${api.list('pods').resourceVersion}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
  });

  it('a bad resourceVersion is a 400 before streaming', async () => {
    expect((await call('GET', '/api/v1/pods?watch=1&resourceVersion=abc')).status).toBe(400);
  });
});
