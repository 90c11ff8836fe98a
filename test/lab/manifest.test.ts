// `weir lab apply/delete -f`: multi-document YAML through the in-process API.
import { describe, expect, it } from 'vitest';
import { ApiError, ApiServer, applyManifest, deleteManifest, parseManifest } from '../../control/lab/apiserver/index.js';

const YAML = `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: fe, namespace: shop}
spec:
  type: NodePort
  selector: {app: fe}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: fe, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: fe}}
  template:
    metadata: {labels: {app: fe}}
    spec: {containers: [{name: fe, image: weir/echo}]}
`;

describe('manifests', () => {
  it('apply creates, then reports unchanged, then configured; server-set fields survive', () => {
    const api = new ApiServer();
    expect(applyManifest(api, parseManifest(YAML)).map((r) => `${r.ref} ${r.action}`)).toEqual([
      'namespace/shop created', 'service/fe created', 'deployment.apps/fe created',
    ]);
    const ip = api.get('services', 'fe', 'shop').spec.clusterIP;
    const nodePort = api.get('services', 'fe', 'shop').spec.ports[0].nodePort;
    expect(applyManifest(api, parseManifest(YAML)).map((r) => r.action)).toEqual(['unchanged', 'unchanged', 'unchanged']);
    const changed = applyManifest(api, parseManifest(YAML.replace('replicas: 1', 'replicas: 3')));
    expect(changed.map((r) => r.action)).toEqual(['unchanged', 'unchanged', 'configured']);
    expect(api.get('deployments', 'fe', 'shop').spec.replicas).toBe(3);
    expect(api.get('services', 'fe', 'shop').spec.clusterIP).toBe(ip);
    expect(api.get('services', 'fe', 'shop').spec.ports[0].nodePort).toBe(nodePort);
    expect(deleteManifest(api, parseManifest(YAML).reverse()).map((r) => `${r.ref} ${r.action}`)).toEqual([
      'deployment.apps/fe deleted', 'service/fe deleted', 'namespace/shop deleted',
    ]);
    expect(deleteManifest(api, parseManifest(YAML)).map((r) => r.action)).toEqual(['not found', 'not found', 'not found']);
  });

  it('bad documents name the document and the problem; invalid objects get the server error', () => {
    expect(() => parseManifest('kind: Pod\n', 'x.yaml')).toThrow('x.yaml: document 1: apiVersion and kind are required');
    expect(() => parseManifest('apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n', 'x.yaml')).toThrow(/x\.yaml: document 1: v1 Secret is not served by the lab/);
    expect(() => parseManifest('a: [\n', 'x.yaml')).toThrow(/^x\.yaml: document 1:/);
    const api = new ApiServer();
    const objs = parseManifest('apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 99999}]}\n');
    let err: unknown;
    try {
      applyManifest(api, objs);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).message).toContain('spec.ports[0].port: Invalid value: 99999');
  });
});
