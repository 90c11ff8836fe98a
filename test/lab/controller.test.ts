// The lab controller loop over the in-process API server: EndpointSlices follow Services and Pods,
// Deployments keep their pods, and owners' deletion cleans up what they owned.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiServer, type KObject } from '../../control/lab/apiserver/index.js';
import { LabController, MANAGED_BY_LABEL, POD_TEMPLATE_HASH_LABEL, SERVICE_NAME_LABEL } from '../../control/lab/controller/index.js';

let api: ApiServer;
let ctl: LabController;
const errors: unknown[] = [];

beforeEach(() => {
  api = new ApiServer({ finalizeTerminatingPods: false });
  errors.length = 0;
  ctl = new LabController(api, { onError: (e) => errors.push(e) });
  ctl.start();
});
afterEach(async () => {
  ctl.stop();
  await api.close();
  expect(errors).toEqual([]);
});

function runPod(name: string, labels: Record<string, string>, ip: string, ready = true, node = 'node-1'): void {
  api.create('pods', { metadata: { name, labels }, spec: { containers: [{ name: 'c', image: 'weir/echo', ports: [{ name: 'http', containerPort: 8080 }] }] } });
  api.patch('pods', name, { spec: { nodeName: node } });
  setPodStatus(name, ip, ready);
}

function setPodStatus(name: string, ip: string, ready: boolean): void {
  api.patch('pods', name, { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] } }, { subresource: 'status' });
}

function slicesOf(svc: string): KObject[] {
  return api.list('endpointslices', { labelSelector: `${SERVICE_NAME_LABEL}=${svc}` }).items;
}

function endpointsOf(svc: string): string[] {
  return slicesOf(svc).flatMap((s) => s.endpoints.map((e: any) => `${e.addresses[0]} ${e.conditions.ready ? 'ready' : 'notready'}${e.conditions.terminating ? ' terminating' : ''}`)).sort();
}

describe('EndpointSlices', () => {
  it('a service gets one slice that follows its pods: add, readiness, label change, delete', async () => {
    api.create('services', { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } });
    await ctl.idle();
    expect(slicesOf('web')).toHaveLength(1);
    expect(slicesOf('web')[0]).toMatchObject({ endpoints: [], ports: [] });

    runPod('web-1', { app: 'web' }, '10.244.1.2');
    runPod('web-2', { app: 'web' }, '10.244.2.2', false, 'node-2');
    runPod('db-1', { app: 'db' }, '10.244.1.3');
    await ctl.idle();
    const [slice] = slicesOf('web');
    expect(slice.metadata.labels![MANAGED_BY_LABEL]).toBe('endpointslice-controller.k8s.io');
    expect(slice.ports).toEqual([{ name: 'http', port: 8080, protocol: 'TCP' }]);
    expect(endpointsOf('web')).toEqual(['10.244.1.2 ready', '10.244.2.2 notready']);
    expect(slice.endpoints.find((e: any) => e.addresses[0] === '10.244.2.2').nodeName).toBe('node-2');

    setPodStatus('web-2', '10.244.2.2', true);
    api.patch('pods', 'db-1', { metadata: { labels: { app: 'web' } } });
    await ctl.idle();
    expect(endpointsOf('web')).toEqual(['10.244.1.2 ready', '10.244.1.3 ready', '10.244.2.2 ready']);
    expect(slicesOf('web')).toHaveLength(1);

    // Graceful delete: terminating first (not ready), gone once the pod is removed.
    api.delete('pods', 'web-1');
    await ctl.idle();
    expect(endpointsOf('web')).toEqual(['10.244.1.2 notready terminating', '10.244.1.3 ready', '10.244.2.2 ready']);
    api.delete('pods', 'web-1', { gracePeriodSeconds: 0 });
    await ctl.idle();
    expect(endpointsOf('web')).toEqual(['10.244.1.3 ready', '10.244.2.2 ready']);
  });

  it('a slice changed or deleted behind its back is put right; a deleted service takes its slices', async () => {
    api.create('services', { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } });
    runPod('web-1', { app: 'web' }, '10.244.1.2');
    await ctl.idle();
    const [slice] = slicesOf('web');
    api.update('endpointslices', { ...slice, endpoints: [] });
    await ctl.idle();
    expect(endpointsOf('web')).toEqual(['10.244.1.2 ready']);
    api.delete('endpointslices', slice.metadata.name!);
    await ctl.idle();
    expect(endpointsOf('web')).toEqual(['10.244.1.2 ready']);
    expect(slicesOf('web')[0].metadata.name!).toBe(slice.metadata.name!);

    api.delete('services', 'web');
    await ctl.idle();
    expect(slicesOf('web')).toEqual([]);
  });

  it('slices are made for services that existed before the controller started; ones without a selector are left alone', async () => {
    ctl.stop();
    api.create('services', { metadata: { name: 'early' }, spec: { selector: { app: 'early' }, ports: [{ port: 80 }] } });
    runPod('early-1', { app: 'early' }, '10.244.1.9');
    api.create('services', { metadata: { name: 'manual' }, spec: { ports: [{ port: 80 }] } });
    api.create('endpointslices', { metadata: { name: 'manual-1', labels: { [SERVICE_NAME_LABEL]: 'manual' } }, addressType: 'IPv4', endpoints: [{ addresses: ['192.0.2.1'] }], ports: [] });
    ctl = new LabController(api, { onError: (e) => errors.push(e) });
    ctl.start();
    await ctl.idle();
    expect(endpointsOf('early')).toEqual(['10.244.1.9 ready']);
    expect(slicesOf('manual').map((s) => s.metadata.name!)).toEqual(['manual-1']);
    expect(slicesOf('kubernetes')).toEqual([]);
  });

  it('a service port change re-resolves ports', async () => {
    api.create('services', { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } });
    runPod('web-1', { app: 'web' }, '10.244.1.2');
    await ctl.idle();
    expect(slicesOf('web')[0].ports).toEqual([{ name: '', port: 80, protocol: 'TCP' }]);
    api.patch('services', 'web', { spec: { ports: [{ port: 80, targetPort: 'http', protocol: 'TCP' }] } });
    await ctl.idle();
    expect(slicesOf('web')[0].ports).toEqual([{ name: '', port: 8080, protocol: 'TCP' }]);
  });
});

describe('Deployments', () => {
  const template = { metadata: { labels: { app: 'fe' } }, spec: { containers: [{ name: 'fe', image: 'weir/echo' }] } };

  it('keeps spec.replicas pods, scales, rolls a new template and reports status', async () => {
    api.create('deployments', { metadata: { name: 'fe' }, spec: { replicas: 3, selector: { matchLabels: { app: 'fe' } }, template } });
    await ctl.idle();
    let pods = api.list('pods', { labelSelector: 'app=fe' }).items;
    expect(pods).toHaveLength(3);
    const hash = pods[0].metadata.labels![POD_TEMPLATE_HASH_LABEL];
    for (const p of pods) {
      expect(p.metadata.name!).toMatch(new RegExp(`^fe-${hash}-[a-z0-9]{5}$`));
      expect(p.metadata.ownerReferences![0]).toMatchObject({ kind: 'Deployment', name: 'fe', uid: api.get('deployments', 'fe').metadata.uid });
    }
    expect(api.get('deployments', 'fe').status).toMatchObject({ replicas: 3, updatedReplicas: 3, readyReplicas: 0 });

    // A pod deleted by hand is replaced.
    api.delete('pods', pods[0].metadata.name!);
    await ctl.idle();
    expect(api.list('pods', { labelSelector: 'app=fe' }).items).toHaveLength(3);

    api.patch('deployments', 'fe', { spec: { replicas: 1 } });
    await ctl.idle();
    expect(api.list('pods', { labelSelector: 'app=fe' }).items).toHaveLength(1);

    api.patch('deployments', 'fe', { spec: { template: { spec: { containers: [{ name: 'fe', image: 'weir/echo:v2' }] } } } });
    await ctl.idle();
    pods = api.list('pods', { labelSelector: 'app=fe' }).items;
    expect(pods).toHaveLength(1);
    expect(pods[0].metadata.labels![POD_TEMPLATE_HASH_LABEL]).not.toBe(hash);
    expect(pods[0].spec.containers[0].image).toBe('weir/echo:v2');
    expect(api.get('deployments', 'fe').status.observedGeneration).toBe(api.get('deployments', 'fe').metadata.generation);
  });

  it('deleting a deployment deletes its pods; their service slice empties', async () => {
    api.create('deployments', { metadata: { name: 'fe' }, spec: { replicas: 2, selector: { matchLabels: { app: 'fe' } }, template } });
    api.create('services', { metadata: { name: 'fe' }, spec: { selector: { app: 'fe' }, ports: [{ port: 80 }] } });
    await ctl.idle();
    const pods = api.list('pods', { labelSelector: 'app=fe' }).items;
    pods.forEach((p, i) => {
      api.patch('pods', p.metadata.name!, { spec: { nodeName: 'node-1' } });
      setPodStatus(p.metadata.name!, `10.244.1.${20 + i}`, true);
    });
    await ctl.idle();
    expect(endpointsOf('fe')).toEqual(['10.244.1.20 ready', '10.244.1.21 ready']);
    expect(api.get('deployments', 'fe').status.readyReplicas).toBe(2);

    api.delete('deployments', 'fe');
    await ctl.idle();
    // Bound pods terminate gracefully first...
    expect(endpointsOf('fe')).toEqual(['10.244.1.20 notready terminating', '10.244.1.21 notready terminating']);
    for (const p of pods) api.delete('pods', p.metadata.name!, { gracePeriodSeconds: 0 });
    await ctl.idle();
    expect(api.list('pods').items).toEqual([]);
    expect(endpointsOf('fe')).toEqual([]);
  });
});
