// EndpointSlices from a Service and Pods, as kube-controller-manager computes them (pure functions).
import { describe, expect, it } from 'vitest';
import type { KObject } from '../../control/lab/apiserver/index.js';
import {
  desiredEndpointSlices, MANAGED_BY, MAX_ENDPOINTS_PER_SLICE, resolveTargetPort, sliceUpToDate,
} from '../../control/lab/controller/index.js';

function service(spec: Record<string, unknown>, name = 'web', labels: Record<string, string> = {}): KObject {
  return { metadata: { name, namespace: 'default', uid: 'svc-uid-1', labels }, spec: { selector: { app: 'web' }, ...spec } };
}

interface PodOpts {
  ns?: string;
  labels?: Record<string, string>;
  ip?: string;
  ready?: boolean;
  node?: string;
  terminating?: boolean;
  phase?: string;
  ports?: { name?: string; containerPort: number; protocol?: string }[];
}

function pod(name: string, o: PodOpts = {}): KObject {
  return {
    metadata: {
      name, namespace: o.ns ?? 'default', uid: `uid-${name}`, labels: o.labels ?? { app: 'web' },
      ...(o.terminating ? { deletionTimestamp: '2026-01-01T00:00:30Z' } : {}),
    },
    spec: { nodeName: o.node ?? 'node-1', containers: [{ name: 'c', image: 'weir/echo', ports: o.ports ?? [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }] },
    status: {
      phase: o.phase ?? 'Running',
      ...(o.ip === '' ? {} : { podIP: o.ip ?? `10.244.1.${name.length}` }),
      conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
    },
  };
}

const port80 = { ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] };

describe('desiredEndpointSlices', () => {
  it('one slice for the service: name, labels, owner, address type, endpoints and ports', () => {
    const [s, ...more] = desiredEndpointSlices(service(port80, 'web', { team: 'a' }), [pod('a', { ip: '10.244.1.2' }), pod('b', { ip: '10.244.2.3', node: 'node-2' })]);
    expect(more).toEqual([]);
    expect(s.metadata.name!).toMatch(/^web-[a-z0-9]{5}$/);
    expect(s.metadata.labels).toEqual({ team: 'a', 'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': MANAGED_BY });
    expect(s.metadata.ownerReferences).toEqual([{ apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'svc-uid-1', controller: true, blockOwnerDeletion: true }]);
    expect(s.addressType).toBe('IPv4');
    expect(s.ports).toEqual([{ name: 'http', port: 8080, protocol: 'TCP' }]);
    expect(s.endpoints).toEqual([
      { addresses: ['10.244.1.2'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node-1', targetRef: { kind: 'Pod', namespace: 'default', name: 'a', uid: 'uid-a' } },
      { addresses: ['10.244.2.3'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node-2', targetRef: { kind: 'Pod', namespace: 'default', name: 'b', uid: 'uid-b' } },
    ]);
  });

  it('the name is stable for the same service and differs for another service uid', () => {
    const a = desiredEndpointSlices(service(port80), [pod('a')])[0].metadata.name;
    const b = desiredEndpointSlices(service(port80), [pod('a'), pod('b')])[0].metadata.name;
    const other = desiredEndpointSlices({ ...service(port80), metadata: { ...service(port80).metadata, uid: 'svc-uid-2' } }, [pod('a')])[0].metadata.name;
    expect(a).toBe(b);
    expect(other).not.toBe(a);
  });

  it('selects by labels within the service namespace only; skips pods without IP and finished pods', () => {
    const s = desiredEndpointSlices(service(port80), [
      pod('yes'),
      pod('other-label', { labels: { app: 'db' } }),
      pod('other-ns', { ns: 'kube-system' }),
      pod('no-ip', { ip: '' }),
      pod('done', { phase: 'Succeeded' }),
      pod('failed', { phase: 'Failed' }),
    ])[0];
    expect(s.endpoints.map((e: any) => e.targetRef.name)).toEqual(['yes']);
  });

  it('conditions: ready from the pod Ready condition; terminating pods are not ready but may serve', () => {
    const s = desiredEndpointSlices(service(port80), [
      pod('ready'),
      pod('notready', { ready: false }),
      pod('term-ready', { terminating: true }),
      pod('term-notready', { terminating: true, ready: false }),
    ])[0];
    const c = Object.fromEntries(s.endpoints.map((e: any) => [e.targetRef.name, e.conditions]));
    expect(c).toEqual({
      ready: { ready: true, serving: true, terminating: false },
      notready: { ready: false, serving: false, terminating: false },
      'term-ready': { ready: false, serving: true, terminating: true },
      'term-notready': { ready: false, serving: false, terminating: true },
    });
  });

  it('publishNotReadyAddresses makes every endpoint ready and serving', () => {
    const s = desiredEndpointSlices(service({ ...port80, publishNotReadyAddresses: true }), [pod('nr', { ready: false }), pod('t', { terminating: true })])[0];
    expect(s.endpoints.map((e: any) => e.conditions)).toEqual([
      { ready: true, serving: true, terminating: false },
      { ready: true, serving: true, terminating: true },
    ]);
  });

  it('resolves named targetPorts per pod from containerPorts with the same protocol', () => {
    const svc = service({ ports: [{ name: 'web', port: 80, targetPort: 'http', protocol: 'TCP' }, { name: 'dns', port: 53, targetPort: 'dns', protocol: 'UDP' }] });
    const p = pod('a', { ports: [{ name: 'http', containerPort: 9090, protocol: 'TCP' }, { name: 'dns', containerPort: 5353, protocol: 'UDP' }, { name: 'dns', containerPort: 7000, protocol: 'TCP' }] });
    expect(resolveTargetPort(p, svc.spec.ports[0])).toBe(9090);
    expect(resolveTargetPort(p, svc.spec.ports[1])).toBe(5353);
    expect(resolveTargetPort(p, { port: 80, targetPort: 'missing', protocol: 'TCP' })).toBeUndefined();
    expect(resolveTargetPort(p, { port: 80, targetPort: 81, protocol: 'TCP' })).toBe(81);
    const [s] = desiredEndpointSlices(svc, [p]);
    expect(s.ports).toEqual([{ name: 'web', port: 9090, protocol: 'TCP' }, { name: 'dns', port: 5353, protocol: 'UDP' }]);
  });

  it('pods that resolve a named port differently land in different slices, as upstream groups by port set', () => {
    const svc = service({ ports: [{ name: 'web', port: 80, targetPort: 'http', protocol: 'TCP' }] });
    const slices = desiredEndpointSlices(svc, [
      pod('a', { ports: [{ name: 'http', containerPort: 8080 }] }),
      pod('b', { ports: [{ name: 'http', containerPort: 9090 }] }),
      pod('c', { ports: [{ name: 'http', containerPort: 8080 }] }),
      pod('none', { ports: [] }),
    ]);
    const summary = slices.map((s) => `${JSON.stringify(s.ports.map((p: any) => p.port))}: ${s.endpoints.map((e: any) => e.targetRef.name).join(',')}`).sort();
    expect(summary).toEqual(['[8080]: a,c', '[9090]: b', '[]: none']);
    expect(new Set(slices.map((s) => s.metadata.name!)).size).toBe(3);
  });

  it('no matching pods: one empty placeholder slice', () => {
    const slices = desiredEndpointSlices(service(port80), []);
    expect(slices).toHaveLength(1);
    expect(slices[0]).toMatchObject({ endpoints: [], ports: [] });
  });

  it(`splits at ${MAX_ENDPOINTS_PER_SLICE} endpoints per slice`, () => {
    const pods = Array.from({ length: 250 }, (_, i) => pod(`p${String(i).padStart(3, '0')}`, { ip: `10.244.${Math.floor(i / 200)}.${i % 200 + 1}` }));
    const slices = desiredEndpointSlices(service(port80), pods);
    expect(slices.map((s) => s.endpoints.length)).toEqual([100, 100, 50]);
    expect(new Set(slices.flatMap((s) => s.endpoints.map((e: any) => e.addresses[0]))).size).toBe(250);
  });

  it('no slices for services without a selector or of type ExternalName; headless ones are labelled', () => {
    expect(desiredEndpointSlices({ metadata: { name: 'x', namespace: 'default', uid: 'u' }, spec: { ports: [{ port: 80 }] } }, [pod('a')])).toEqual([]);
    expect(desiredEndpointSlices(service({ type: 'ExternalName', externalName: 'example.invalid' }), [pod('a')])).toEqual([]);
    const [h] = desiredEndpointSlices(service({ ...port80, clusterIP: 'None' }), [pod('a')]);
    expect(h.metadata.labels!['service.kubernetes.io/headless']).toBe('');
  });

  it('hostname for pods whose subdomain is the service; zone from the node', () => {
    const p = pod('a');
    p.spec.hostname = 'a-host';
    p.spec.subdomain = 'web';
    const nodes = [{ metadata: { name: 'node-1', labels: { 'topology.kubernetes.io/zone': 'z1' } } }];
    const [s] = desiredEndpointSlices(service(port80), [p], nodes);
    expect(s.endpoints[0]).toMatchObject({ hostname: 'a-host', zone: 'z1', nodeName: 'node-1' });
  });

  it('sliceUpToDate ignores server metadata and sees endpoint changes', () => {
    const [want] = desiredEndpointSlices(service(port80), [pod('a')]);
    const stored = { ...want, metadata: { ...want.metadata, uid: 'x', resourceVersion: '7', creationTimestamp: 't' } };
    expect(sliceUpToDate(stored, want)).toBe(true);
    const [changed] = desiredEndpointSlices(service(port80), [pod('a', { ready: false })]);
    expect(sliceUpToDate(stored, changed)).toBe(false);
  });
});
