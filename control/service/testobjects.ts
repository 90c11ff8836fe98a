// Small builders of Kubernetes objects for the service model's tests.
import type { V1EndpointSlice, V1Node, V1Service, V1ServicePort } from '@kubernetes/client-node';
import type { V1Endpoint } from '@kubernetes/client-node';

export function service(name: string, spec: V1Service['spec'], extra: Partial<V1Service> = {}, namespace = 'default'): V1Service {
  return { metadata: { name, namespace, ...extra.metadata }, spec: { clusterIP: '10.96.0.10', ...spec }, status: extra.status };
}

export const port = (p: number, extra: Partial<V1ServicePort> = {}): V1ServicePort => ({ port: p, protocol: 'TCP', ...extra });

export interface Ep {
  ip: string;
  node?: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

export function slice(
  name: string,
  svc: string,
  ports: Array<{ name?: string; port?: number; protocol?: string }>,
  eps: Ep[],
  namespace = 'default',
): V1EndpointSlice {
  const endpoints: V1Endpoint[] = eps.map((e) => {
    const conditions: Record<string, boolean> = {};
    if (e.ready !== undefined) conditions.ready = e.ready;
    if (e.serving !== undefined) conditions.serving = e.serving;
    if (e.terminating !== undefined) conditions.terminating = e.terminating;
    return { addresses: [e.ip], nodeName: e.node, conditions };
  });
  return {
    addressType: 'IPv4',
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': svc } },
    ports: ports.map((p) => ({ protocol: 'TCP', ...p })),
    endpoints,
  };
}

export function node(name: string, addrs: Array<[string, string]>): V1Node {
  return { metadata: { name }, status: { addresses: addrs.map(([type, address]) => ({ type, address })) } };
}
