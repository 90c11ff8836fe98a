// The lab API server's in-process API: CRUD, errors as Status objects, service allocation and
// validation, selectors, watch semantics, patches, namespaces, graceful pod deletion, snapshots.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ApiError, ApiServer, type KObject, type WatchEvent } from '../../control/lab/apiserver/index.js';

function pod(name: string, labels: Record<string, string> = {}, extra: Partial<KObject> = {}): KObject {
  return {
    metadata: { name, labels },
    spec: { containers: [{ name: 'c', image: 'weir/echo', ports: [{ containerPort: 8080, name: 'http' }] }] },
    ...extra,
  };
}

function svc(name: string, spec: Record<string, unknown>): KObject {
  return { metadata: { name }, spec: { selector: { app: name }, ...spec } };
}

function apiError(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error('expected an ApiError');
}

/** Collects watch events until `n` have arrived. */
function collect(api: ApiServer, resource: string, opts: Parameters<ApiServer['watch']>[1]) {
  const events: WatchEvent[] = [];
  const handle = api.watch(resource, opts, (e) => events.push(e));
  return {
    events,
    handle,
    async waitFor(n: number): Promise<WatchEvent[]> {
      // A bound on waiting, not a timing assertion: the test checks which events came.
      for (let i = 0; i < 2000 && events.length < n; i++) await new Promise((r) => setTimeout(r, i < 50 ? 0 : 5));
      return events;
    },
  };
}

const names = (events: WatchEvent[]) => events.map((e) => `${e.type} ${(e.object as KObject).metadata.name ?? ''}`);

describe('objects and metadata', () => {
  const api = new ApiServer();

  it('starts with the usual namespaces and the kubernetes service on the first service IP', () => {
    expect(api.list('namespaces').items.map((n) => n.metadata.name)).toEqual(['default', 'kube-node-lease', 'kube-public', 'kube-system']);
    const k = api.get('services', 'kubernetes', 'default');
    expect(k.spec.clusterIP).toBe('10.96.0.1');
    expect(k.spec.ports[0]).toMatchObject({ port: 443, protocol: 'TCP' });
  });

  it('create sets uid, creationTimestamp, resourceVersion, generation, kind and defaults the namespace', () => {
    const p = api.create('pods', pod('a'));
    expect(p.metadata.namespace).toBe('default');
    expect(p.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(Date.parse(p.metadata.creationTimestamp!)).not.toBeNaN();
    expect(p.metadata.generation).toBe(1);
    expect(p).toMatchObject({ apiVersion: 'v1', kind: 'Pod', status: { phase: 'Pending' } });
    expect(p.spec.containers[0].ports[0].protocol).toBe('TCP');
    expect(Number(p.metadata.resourceVersion)).toBeGreaterThan(0);
  });

  it('resourceVersion is one global counter that grows with every write, across resources', () => {
    const a = Number(api.create('pods', pod('rv1')).metadata.resourceVersion);
    const b = Number(api.create('services', svc('rv2', { ports: [{ port: 80 }] })).metadata.resourceVersion);
    const c = Number(api.patch('pods', 'rv1', { metadata: { labels: { x: 'y' } } }).metadata.resourceVersion);
    expect(b).toBe(a + 1);
    expect(c).toBe(b + 1);
    expect(api.list('pods').resourceVersion).toBe(String(c));
  });

  it('generateName makes a unique name with a 5-character suffix', () => {
    const a = api.create('pods', { ...pod(''), metadata: { generateName: 'gen-' } });
    const b = api.create('pods', { ...pod(''), metadata: { generateName: 'gen-' } });
    expect(a.metadata.name).toMatch(/^gen-[a-z0-9]{5}$/);
    expect(a.metadata.name).not.toBe(b.metadata.name);
  });

  it('errors are Status objects: AlreadyExists 409, NotFound 404, namespace NotFound', () => {
    const dup = apiError(() => api.create('pods', pod('a')));
    expect(dup.status).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'AlreadyExists', code: 409, message: 'pods "a" already exists' });
    const nf = apiError(() => api.get('pods', 'nope'));
    expect(nf.status).toMatchObject({ reason: 'NotFound', code: 404, message: 'pods "nope" not found', details: { name: 'nope', kind: 'pods' } });
    const ns = apiError(() => api.create('pods', { ...pod('x'), metadata: { name: 'x', namespace: 'missing' } }));
    expect(ns.status).toMatchObject({ reason: 'NotFound', code: 404, message: 'namespaces "missing" not found' });
    const grp = apiError(() => api.get('endpointslices', 'nope'));
    expect(grp.status.message).toBe('endpointslices.discovery.k8s.io "nope" not found');
  });

  it('invalid names and pods are 422 with causes naming the field', () => {
    const bad = apiError(() => api.create('pods', pod('Bad_Name')));
    expect(bad.status).toMatchObject({ reason: 'Invalid', code: 422, details: { name: 'Bad_Name', kind: 'Pod' } });
    expect(bad.status.details!.causes![0]).toMatchObject({ reason: 'FieldValueInvalid', field: 'metadata.name' });
    const noImage = apiError(() => api.create('pods', { metadata: { name: 'noimg' }, spec: { containers: [{ name: 'c' }] } }));
    expect(noImage.status.details!.causes).toEqual([{ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.containers[0].image' }]);
    expect(noImage.status.message).toBe('Pod "noimg" is invalid: spec.containers[0].image: Required value');
  });

  it('update with a stale resourceVersion is a 409 Conflict; a current one succeeds', () => {
    const p = api.create('pods', pod('upd'));
    const p2 = api.update('pods', { ...p, metadata: { ...p.metadata, labels: { v: '2' } } });
    expect(p2.metadata.labels).toEqual({ v: '2' });
    const c = apiError(() => api.update('pods', { ...p, metadata: { ...p.metadata, labels: { v: '3' } } }));
    expect(c.status).toMatchObject({ reason: 'Conflict', code: 409 });
    expect(c.status.message).toContain('the object has been modified');
    expect(api.get('pods', 'upd').metadata.labels).toEqual({ v: '2' });
  });

  it('generation grows with spec changes only; status goes through the status subresource', () => {
    const p = api.create('pods', pod('gen'));
    const labelled = api.patch('pods', 'gen', { metadata: { labels: { a: 'b' } } });
    expect(labelled.metadata.generation).toBe(1);
    const spec = api.patch('pods', 'gen', { spec: { nodeName: 'n1' } });
    expect(spec.metadata.generation).toBe(2);
    // A status written through the main resource is ignored, as on a real server...
    const ignored = api.update('pods', { ...spec, status: { phase: 'Running' } });
    expect(ignored.status.phase).toBe('Pending');
    // ...and the status subresource changes status only.
    const st = api.update('pods', { ...spec, spec: { ...spec.spec, nodeName: 'other' }, status: { phase: 'Running', podIP: '10.244.1.5' } }, { subresource: 'status' });
    expect(st.status).toMatchObject({ phase: 'Running', podIP: '10.244.1.5' });
    expect(st.spec.nodeName).toBe('n1');
    const patched = api.patch('pods', 'gen', { status: { podIP: '10.244.1.6' } }, { subresource: 'status' });
    expect(patched.status).toMatchObject({ phase: 'Running', podIP: '10.244.1.6' });
    expect(p.metadata.uid).toBe(patched.metadata.uid);
  });

  it('merge patch removes keys set to null; JSON patch and strategic patch work for plain fields', () => {
    api.create('pods', pod('pt', { a: '1', b: '2' }));
    expect(api.patch('pods', 'pt', { metadata: { labels: { a: null, c: '3' } } }).metadata.labels).toEqual({ b: '2', c: '3' });
    expect(api.patch('pods', 'pt', [{ op: 'replace', path: '/metadata/labels/b', value: 'x' }], { type: 'json' }).metadata.labels).toEqual({ b: 'x', c: '3' });
    expect(api.patch('pods', 'pt', { $setElementOrder: [], metadata: { labels: { d: '4' } } }, { type: 'strategic' }).metadata.labels).toEqual({ b: 'x', c: '3', d: '4' });
    expect(apiError(() => api.patch('pods', 'pt', [{ op: 'remove', path: '/nope' }], { type: 'json' })).code).toBe(400);
  });

  it('a no-op update does not bump resourceVersion', () => {
    const p = api.create('pods', pod('noop'));
    const same = api.patch('pods', 'noop', { metadata: { labels: {} } });
    expect(same.metadata.resourceVersion).toBe(p.metadata.resourceVersion);
  });

  it('delete returns the object for pods and a Success Status for endpointslices', () => {
    api.create('pods', pod('del'));
    expect((api.delete('pods', 'del') as KObject).metadata.name).toBe('del');
    api.create('endpointslices', { metadata: { name: 's1' }, addressType: 'IPv4', endpoints: [], ports: [] });
    expect(api.delete('endpointslices', 's1')).toMatchObject({ kind: 'Status', status: 'Success', details: { name: 's1', kind: 'endpointslices', group: 'discovery.k8s.io' } });
    expect(apiError(() => api.delete('pods', 'del')).code).toBe(404);
  });

  it('delete preconditions on uid are checked', () => {
    api.create('pods', pod('pre'));
    expect(apiError(() => api.delete('pods', 'pre', { preconditions: { uid: 'other' } })).status.reason).toBe('Conflict');
  });

  it('nodes and namespaces are cluster-scoped', () => {
    const n = api.create('nodes', { metadata: { name: 'n1', namespace: 'ignored' } });
    expect(n.metadata.namespace).toBeUndefined();
    expect(api.get('nodes', 'n1').metadata.name).toBe('n1');
  });
});

describe('selectors', () => {
  const api = new ApiServer();
  api.create('pods', pod('web-1', { app: 'web', tier: 'fe' }));
  api.create('pods', pod('web-2', { app: 'web' }));
  api.create('pods', pod('db-1', { app: 'db' }));
  api.patch('pods', 'web-1', { spec: { nodeName: 'n1' } });
  api.patch('pods', 'db-1', { spec: { nodeName: 'n2' } });
  const list = (o: object) => api.list('pods', o).items.map((p) => p.metadata.name);

  it('label selectors: =, !=, in, notin, exists, !exists', () => {
    expect(list({ labelSelector: 'app=web' })).toEqual(['web-1', 'web-2']);
    expect(list({ labelSelector: 'app!=web' })).toEqual(['db-1']);
    expect(list({ labelSelector: 'app in (db, web),tier' })).toEqual(['web-1']);
    expect(list({ labelSelector: 'app notin (web)' })).toEqual(['db-1']);
    expect(list({ labelSelector: 'app,!tier' })).toEqual(['db-1', 'web-2']);
  });

  it('field selectors: spec.nodeName and metadata.name; unknown fields are a 400', () => {
    expect(list({ fieldSelector: 'spec.nodeName=n1' })).toEqual(['web-1']);
    expect(list({ fieldSelector: 'spec.nodeName=' })).toEqual(['web-2']);
    expect(list({ fieldSelector: 'metadata.name!=web-1,spec.nodeName!=n2' })).toEqual(['web-2']);
    expect(apiError(() => list({ fieldSelector: 'spec.foo=1' })).status).toMatchObject({ code: 400, message: 'field label not supported: spec.foo' });
    expect(apiError(() => list({ labelSelector: 'a in b' })).code).toBe(400);
  });

  it('namespace scoping', () => {
    api.create('namespaces', { metadata: { name: 'other' } });
    api.create('pods', { ...pod('web-1', { app: 'web' }), metadata: { name: 'web-1', namespace: 'other', labels: { app: 'web' } } });
    expect(list({ namespace: 'other' })).toEqual(['web-1']);
    expect(api.list('pods', { labelSelector: 'app=web' }).items.map((p) => `${p.metadata.namespace}/${p.metadata.name}`)).toEqual(['default/web-1', 'default/web-2', 'other/web-1']);
  });
});

describe('services: allocation and validation', () => {
  const api = new ApiServer({ serviceCidr: '10.96.0.0/12', nodePortRange: [30000, 32767] });
  const invalidFields = (body: KObject) => apiError(() => api.create('services', body)).status.details!.causes!.map((c) => `${c.field}: ${c.message}`);

  it('defaults type, sessionAffinity, protocol and targetPort; allocates a ClusterIP in range', () => {
    const s = api.create('services', svc('web', { ports: [{ port: 80 }] }));
    expect(s.spec).toMatchObject({ type: 'ClusterIP', sessionAffinity: 'None', ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }] });
    const ip = s.spec.clusterIP.split('.').map(Number);
    expect(ip[0]).toBe(10);
    expect(ip[1] & 0xf0).toBe(96);
    expect(s.spec.clusterIP).not.toBe('10.96.0.1');
    expect(s.spec.clusterIPs).toEqual([s.spec.clusterIP]);
    expect(s.spec.ports[0].nodePort).toBeUndefined();
  });

  it('gives every service a different ClusterIP', () => {
    const ips = new Set<string>();
    for (let i = 0; i < 20; i++) ips.add(api.create('services', svc(`many-${i}`, { ports: [{ port: 80 }] })).spec.clusterIP);
    expect(ips.size).toBe(20);
  });

  it('takes an explicit free ClusterIP; refuses one in use or out of range', () => {
    expect(api.create('services', svc('fixed', { clusterIP: '10.96.0.10', ports: [{ port: 53, protocol: 'UDP' }] })).spec.clusterIP).toBe('10.96.0.10');
    expect(invalidFields(svc('fixed2', { clusterIP: '10.96.0.10', ports: [{ port: 80 }] }))).toEqual([
      'spec.clusterIPs[0]: Invalid value: "10.96.0.10": failed to allocate IP 10.96.0.10: provided IP is already allocated',
    ]);
    expect(invalidFields(svc('fixed3', { clusterIP: '192.168.1.1', ports: [{ port: 80 }] }))).toEqual([
      'spec.clusterIPs[0]: Invalid value: "192.168.1.1": failed to allocate IP 192.168.1.1: the provided IP (192.168.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12',
    ]);
    expect(invalidFields(svc('fixed4', { clusterIP: '10.96.0.1', ports: [{ port: 80 }] }))[0]).toContain('already allocated');
  });

  it('headless services get clusterIP None and no allocation', () => {
    const s = api.create('services', svc('headless', { clusterIP: 'None', ports: [{ port: 80 }] }));
    expect(s.spec.clusterIP).toBe('None');
    expect(invalidFields(svc('hnp', { type: 'NodePort', clusterIP: 'None', ports: [{ port: 80 }] }))[0]).toContain("may not be set to 'None' for NodePort services");
  });

  it('NodePort services get a nodePort in range; explicit ones are validated and unique per protocol', () => {
    const s = api.create('services', svc('np', { type: 'NodePort', ports: [{ name: 'a', port: 80 }, { name: 'b', port: 81, nodePort: 30080 }] }));
    const auto = s.spec.ports[0].nodePort;
    expect(auto).toBeGreaterThanOrEqual(30000);
    expect(auto).toBeLessThanOrEqual(32767);
    expect(s.spec.ports[1].nodePort).toBe(30080);
    expect(s.spec.externalTrafficPolicy).toBe('Cluster');
    expect(invalidFields(svc('np2', { type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }] }))).toEqual([
      'spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated',
    ]);
    // The same number over UDP is a different port.
    expect(api.create('services', svc('np3', { type: 'NodePort', ports: [{ port: 80, protocol: 'UDP', nodePort: 30080 }] })).spec.ports[0].nodePort).toBe(30080);
    expect(invalidFields(svc('np4', { type: 'NodePort', ports: [{ port: 80, nodePort: 8080 }] }))).toEqual([
      'spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767',
    ]);
    expect(invalidFields(svc('np5', { ports: [{ port: 80, nodePort: 30500 }] }))).toEqual([
      "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
    ]);
    const lb = api.create('services', svc('lb', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', ports: [{ port: 443 }] }));
    expect(lb.spec.ports[0].nodePort).toBeGreaterThanOrEqual(30000);
    expect(lb.spec.healthCheckNodePort).toBeGreaterThanOrEqual(30000);
  });

  it('a failed create allocates nothing', () => {
    // Port 0 fails validation; the explicit IP must still be free afterwards.
    expect(invalidFields(svc('partial', { clusterIP: '10.96.0.50', ports: [{ port: 0 }] }))[0]).toContain('spec.ports[0].port');
    // The nodePort is taken, so the whole create fails: its explicit IP must not stay allocated.
    expect(invalidFields(svc('partial2', { type: 'NodePort', clusterIP: '10.96.0.51', ports: [{ port: 80, nodePort: 30080 }] }))[0]).toContain('already allocated');
    expect(api.create('services', svc('after', { clusterIP: '10.96.0.51', ports: [{ port: 80 }] })).spec.clusterIP).toBe('10.96.0.51');
  });

  it('port validation: range, protocol, required and unique names, duplicates, targetPort names', () => {
    expect(invalidFields(svc('v1', { ports: [{ port: 70000 }] }))).toEqual([
      'spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive',
      'spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive',
    ]);
    expect(invalidFields(svc('v2', { ports: [{ port: 80, protocol: 'ICMP' }] }))).toEqual([
      'spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
    ]);
    expect(invalidFields(svc('v3', { ports: [{ port: 80 }, { name: 'b', port: 81 }] }))).toEqual(['spec.ports[0].name: Required value']);
    expect(invalidFields(svc('v4', { ports: [{ name: 'a', port: 80 }, { name: 'a', port: 81 }] }))).toEqual(['spec.ports[1].name: Duplicate value: "a"']);
    expect(invalidFields(svc('v5', { ports: [{ name: 'a', port: 80 }, { name: 'b', port: 80 }] }))[0]).toMatch(/^spec\.ports\[1\]: Duplicate value/);
    expect(invalidFields(svc('v6', { ports: [{ port: 80, targetPort: 'Not_A_Name' }] }))[0]).toMatch(/^spec\.ports\[0\]\.targetPort: Invalid value: "Not_A_Name"/);
    expect(invalidFields(svc('v7', {}))).toEqual(['spec.ports: Required value']);
    expect(invalidFields(svc('v8', { type: 'Weird', ports: [{ port: 80 }] }))[0]).toBe(
      'spec.type: Unsupported value: "Weird": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
    );
    expect(invalidFields(svc('9bad', { ports: [{ port: 80 }] }))[0]).toMatch(/^metadata\.name: Invalid value: "9bad": a DNS-1035 label/);
    const msg = apiError(() => api.create('services', svc('v9', { ports: [{ port: 0 }] }))).message;
    expect(msg).toBe('Service "v9" is invalid: [spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive]');
  });

  it('sessionAffinity ClientIP gets the default timeout', () => {
    const s = api.create('services', svc('aff', { sessionAffinity: 'ClientIP', ports: [{ port: 80 }] }));
    expect(s.spec.sessionAffinityConfig).toEqual({ clientIP: { timeoutSeconds: 10800 } });
  });

  it('clusterIP is immutable; updates that omit it keep it; leaving NodePort frees the node ports', () => {
    const s = api.create('services', svc('imm', { type: 'NodePort', ports: [{ port: 80, nodePort: 31000 }] }));
    expect(apiError(() => api.patch('services', 'imm', { spec: { clusterIP: '10.96.0.99' } })).status.details!.causes![0]).toMatchObject({ field: 'spec.clusterIPs[0]' });
    const { clusterIP: _c, clusterIPs: _cs, ...rest } = s.spec;
    const kept = api.update('services', { ...s, spec: rest });
    expect(kept.spec.clusterIP).toBe(s.spec.clusterIP);
    expect(kept.spec.ports[0].nodePort).toBe(31000);
    const cip = api.patch('services', 'imm', { spec: { type: 'ClusterIP', externalTrafficPolicy: null } });
    expect(cip.spec.ports[0].nodePort).toBeUndefined();
    expect(api.create('services', svc('reuse', { type: 'NodePort', ports: [{ port: 80, nodePort: 31000 }] })).spec.ports[0].nodePort).toBe(31000);
  });

  it('deleting a service frees its ClusterIP and nodePorts', () => {
    api.create('services', svc('tmp', { type: 'NodePort', clusterIP: '10.96.0.77', ports: [{ port: 80, nodePort: 31111 }] }));
    api.delete('services', 'tmp');
    const again = api.create('services', svc('tmp2', { type: 'NodePort', clusterIP: '10.96.0.77', ports: [{ port: 80, nodePort: 31111 }] }));
    expect(again.spec.clusterIP).toBe('10.96.0.77');
  });

  it('a small CIDR runs out with a clear error', () => {
    const small = new ApiServer({ serviceCidr: '10.100.0.0/29' });
    const got: string[] = [];
    // /29: 6 usable addresses, one taken by `kubernetes`.
    for (let i = 0; i < 5; i++) got.push(small.create('services', svc(`s${i}`, { ports: [{ port: 80 }] })).spec.clusterIP);
    expect(new Set(got).size).toBe(5);
    expect(apiError(() => small.create('services', svc('full', { ports: [{ port: 80 }] }))).message).toContain('range is full');
  });
});

describe('watch', () => {
  it('from no resourceVersion: ADDED for existing objects, then live changes in order', async () => {
    const api = new ApiServer();
    api.create('pods', pod('old'));
    const w = collect(api, 'pods', {});
    await w.waitFor(1);
    api.create('pods', pod('new'));
    api.patch('pods', 'new', { metadata: { labels: { x: '1' } } });
    api.delete('pods', 'new');
    const ev = await w.waitFor(4);
    expect(names(ev)).toEqual(['ADDED old', 'ADDED new', 'MODIFIED new', 'DELETED new']);
    const rvs = ev.slice(1).map((e) => Number((e.object as KObject).metadata.resourceVersion));
    expect(rvs[1]).toBe(rvs[0] + 1);
    expect(rvs[2]).toBe(rvs[1] + 1); // a delete has its own, newer version
    w.handle.stop();
  });

  it('from a resourceVersion: replays later changes only', async () => {
    const api = new ApiServer();
    api.create('pods', pod('a'));
    const rv = api.list('pods').resourceVersion;
    api.create('pods', pod('b'));
    api.create('services', svc('s', { ports: [{ port: 80 }] }));
    api.delete('pods', 'a');
    const w = collect(api, 'pods', { resourceVersion: rv });
    expect(names(await w.waitFor(2))).toEqual(['ADDED b', 'DELETED a']);
    w.handle.stop();
  });

  it('too old a resourceVersion: one ERROR event with a 410 Expired Status, then the watch ends', async () => {
    const api = new ApiServer({ historySize: 3 });
    const rv = api.list('pods').resourceVersion;
    for (let i = 0; i < 5; i++) api.create('pods', pod(`p${i}`));
    const w = collect(api, 'pods', { resourceVersion: rv });
    const ev = await w.waitFor(1);
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({ type: 'ERROR', object: { kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 } });
    expect((ev[0].object as any).message).toMatch(/^too old resource version: \d+ \(\d+\)$/);
    api.create('pods', pod('after'));
    await new Promise((r) => setImmediate(r));
    expect(ev).toHaveLength(1);
    expect(api.store.watchers.size).toBe(0);
    // The newest versions are still in the window.
    const ok = collect(api, 'pods', { resourceVersion: String(api.store.rv - 1) });
    expect(names(await ok.waitFor(1))).toEqual(['ADDED after']);
    ok.handle.stop();
  });

  it('selectors turn label changes into ADDED/DELETED, as the real server does', async () => {
    const api = new ApiServer();
    const w = collect(api, 'pods', { labelSelector: 'app=web' });
    api.create('pods', pod('p', { app: 'db' }));
    api.patch('pods', 'p', { metadata: { labels: { app: 'web' } } });
    api.patch('pods', 'p', { metadata: { labels: { v: '2' } } });
    api.patch('pods', 'p', { metadata: { labels: { app: 'db' } } });
    expect(names(await w.waitFor(3))).toEqual(['ADDED p', 'MODIFIED p', 'DELETED p']);
    w.handle.stop();
  });

  it('bookmarks carry the current resourceVersion when asked for', async () => {
    const api = new ApiServer({ bookmarkIntervalMs: 10 });
    const w = collect(api, 'pods', { allowWatchBookmarks: true, resourceVersion: api.list('pods').resourceVersion });
    api.create('pods', pod('b'));
    const rv = api.store.rv;
    for (let i = 0; i < 500 && !w.events.some((e) => e.type === 'BOOKMARK'); i++) await new Promise((r) => setTimeout(r, 5));
    const bm = w.events.find((e) => e.type === 'BOOKMARK')!;
    expect(bm).toMatchObject({ object: { kind: 'Pod', apiVersion: 'v1' } });
    expect(Number((bm.object as KObject).metadata.resourceVersion)).toBeGreaterThanOrEqual(rv);
    w.handle.stop();
    const plain = collect(api, 'pods', { resourceVersion: String(api.store.rv) });
    await new Promise((r) => setTimeout(r, 50));
    expect(plain.events.filter((e) => e.type === 'BOOKMARK')).toEqual([]);
    plain.handle.stop();
  });
});

describe('namespaces and pods', () => {
  it('deleting a namespace deletes everything in it and frees its services', async () => {
    const api = new ApiServer();
    api.create('namespaces', { metadata: { name: 'team' } });
    api.create('pods', { ...pod('p'), metadata: { name: 'p', namespace: 'team' } });
    api.create('services', { metadata: { name: 's', namespace: 'team' }, spec: { clusterIP: '10.96.0.20', ports: [{ port: 80 }] } });
    const w = collect(api, 'pods', { namespace: 'team', resourceVersion: api.list('pods').resourceVersion });
    const ns = api.delete('namespaces', 'team') as KObject;
    expect(ns.status.phase).toBe('Terminating');
    expect(api.list('pods', { namespace: 'team' }).items).toEqual([]);
    expect(api.list('services', { namespace: 'team' }).items).toEqual([]);
    expect(apiError(() => api.get('namespaces', 'team')).code).toBe(404);
    expect(names(await w.waitFor(1))).toEqual(['DELETED p']);
    expect(api.create('services', svc('s2', { clusterIP: '10.96.0.20', ports: [{ port: 80 }] })).spec.clusterIP).toBe('10.96.0.20');
    w.handle.stop();
  });

  it('a pod bound to a node is deleted gracefully: terminating first, gone on grace 0', () => {
    const api = new ApiServer({ finalizeTerminatingPods: false });
    api.create('pods', pod('g', {}, { spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'x' }] } }));
    const t = api.delete('pods', 'g') as KObject;
    expect(t.metadata.deletionTimestamp).toBeDefined();
    expect(t.metadata.deletionGracePeriodSeconds).toBe(30);
    expect(api.get('pods', 'g').metadata.deletionTimestamp).toBe(t.metadata.deletionTimestamp);
    api.delete('pods', 'g', { gracePeriodSeconds: 0 });
    expect(apiError(() => api.get('pods', 'g')).code).toBe(404);
    // Unscheduled pods go at once.
    api.create('pods', pod('u'));
    api.delete('pods', 'u');
    expect(apiError(() => api.get('pods', 'u')).code).toBe(404);
  });

  it('a terminating pod goes by itself at the end of its grace period (the lab kubelet stand-in)', async () => {
    const api = new ApiServer();
    api.create('pods', pod('short', {}, { spec: { nodeName: 'n1', terminationGracePeriodSeconds: 1, containers: [{ name: 'c', image: 'x' }] } }));
    const w = collect(api, 'pods', { resourceVersion: api.list('pods').resourceVersion });
    api.delete('pods', 'short');
    expect(names(await w.waitFor(2))).toEqual(['MODIFIED short', 'DELETED short']);
    w.handle.stop();
    await api.close();
  });
});

describe('snapshot', () => {
  const dir = mkdtempSync(join(tmpdir(), 'h5-snap-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a restarted server has the objects, keeps allocations and never reuses a resourceVersion', async () => {
    const path = join(dir, 'store.json');
    const a = new ApiServer({ snapshotPath: path });
    const s = a.create('services', svc('keep', { type: 'NodePort', ports: [{ port: 80 }] }));
    a.create('pods', pod('keep'));
    const lastRv = a.store.rv;
    await a.close();
    const b = new ApiServer({ snapshotPath: path });
    const again = b.get('services', 'keep');
    expect(again.spec.clusterIP).toBe(s.spec.clusterIP);
    expect(again.metadata.uid).toBe(s.metadata.uid);
    expect(apiError(() => b.create('services', svc('clash', { clusterIP: s.spec.clusterIP, ports: [{ port: 80 }] }))).message).toContain('already allocated');
    expect(Number(b.create('pods', pod('next')).metadata.resourceVersion)).toBeGreaterThan(lastRv);
    // History is gone: resuming from before the restart gets 410, so clients relist.
    const w = collect(b, 'pods', { resourceVersion: String(lastRv - 1) });
    expect((await w.waitFor(1))[0].type).toBe('ERROR');
    await b.close();
  });
});
