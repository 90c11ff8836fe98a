// The bench's synthetic services as the Kubernetes objects weir's service
// model reads (Service + EndpointSlice), so the weir side goes through the
// same model -> reconciler path as the agent in a cluster.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { BenchService } from '../baseline/services.js';

export function toService(s: BenchService): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: s.namespace, name: s.name },
    spec: {
      type: s.nodePort ? 'NodePort' : 'ClusterIP',
      clusterIP: s.clusterIP,
      clusterIPs: [s.clusterIP],
      ports: [{ name: s.portName || undefined, port: s.port, protocol: s.protocol, targetPort: s.endpoints[0]?.port as never, nodePort: s.nodePort }],
    },
  };
}

export function toSlice(s: BenchService): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: s.namespace, name: `${s.name}-bench`, labels: { 'kubernetes.io/service-name': s.name } },
    addressType: 'IPv4',
    ports: [{ name: s.portName || undefined, port: s.endpoints[0]?.port, protocol: s.protocol }],
    endpoints: s.endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'bench-backends' })),
  };
}
