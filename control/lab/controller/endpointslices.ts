// EndpointSlices from a Service and its namespace's Pods, as kube-controller-manager's
// endpointslice controller computes them. Pure: no API calls here.
import type { KObject } from '../apiserver/resources.js';
import { matchSelectorMap } from '../apiserver/selectors.js';
import { canonicalJson, shortHash } from './hash.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const MANAGED_BY = 'endpointslice-controller.k8s.io';
export const HEADLESS_LABEL = 'service.kubernetes.io/headless';
export const MAX_ENDPOINTS_PER_SLICE = 100;

export interface EndpointPort {
  name: string;
  port: number;
  protocol: string;
  appProtocol?: string;
}

export interface Endpoint {
  addresses: string[];
  conditions: { ready: boolean; serving: boolean; terminating: boolean };
  hostname?: string;
  nodeName?: string;
  zone?: string;
  targetRef: { kind: 'Pod'; namespace: string; name: string; uid: string };
}

export function podIp(pod: KObject): string | undefined {
  return pod.status?.podIP || pod.status?.podIPs?.[0]?.ip || undefined;
}

export function isPodReady(pod: KObject): boolean {
  return (pod.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
}

/** Pods the controller lists: those with an IP that have not finished (terminating ones stay, flagged). */
export function podBelongsInSlices(pod: KObject): boolean {
  const phase = pod.status?.phase;
  return !!podIp(pod) && phase !== 'Succeeded' && phase !== 'Failed';
}

/** Whether the controller manages slices for this Service (it has a selector and is not ExternalName). */
export function managesService(svc: KObject): boolean {
  return svc.spec?.type !== 'ExternalName' && !!svc.spec?.selector && Object.keys(svc.spec.selector).length > 0;
}

/**
 * The port a service port reaches on a pod: a number as is; a name looked up among the pod's
 * containerPorts with the same protocol. Undefined when the pod has no such named port.
 */
export function resolveTargetPort(pod: KObject, servicePort: any): number | undefined {
  const tp = servicePort.targetPort ?? servicePort.port;
  if (typeof tp === 'number') return tp;
  if (/^\d+$/.test(String(tp))) return Number(tp);
  const protocol = servicePort.protocol ?? 'TCP';
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports ?? []) if (p.name === tp && (p.protocol ?? 'TCP') === protocol) return p.containerPort;
  }
  return undefined;
}

function endpointPorts(svc: KObject, pod: KObject): EndpointPort[] {
  const out: EndpointPort[] = [];
  for (const sp of svc.spec?.ports ?? []) {
    const port = resolveTargetPort(pod, sp);
    if (port === undefined) continue; // as upstream: a pod without the named port gets no entry for it
    const ep: EndpointPort = { name: sp.name ?? '', port, protocol: sp.protocol ?? 'TCP' };
    if (sp.appProtocol) ep.appProtocol = sp.appProtocol;
    out.push(ep);
  }
  return out;
}

function podToEndpoint(svc: KObject, pod: KObject, nodes: Map<string, KObject>): Endpoint {
  const publish = !!svc.spec?.publishNotReadyAddresses;
  const serving = publish || isPodReady(pod);
  const terminating = !!pod.metadata.deletionTimestamp;
  const ep: Endpoint = {
    addresses: [podIp(pod)!],
    // A terminating pod is never "ready" (unless the service publishes not-ready addresses), but may still serve.
    conditions: { ready: publish || (serving && !terminating), serving, terminating },
    targetRef: { kind: 'Pod', namespace: pod.metadata.namespace!, name: pod.metadata.name!, uid: pod.metadata.uid! },
  };
  if (pod.spec?.hostname && pod.spec?.subdomain === svc.metadata.name) ep.hostname = pod.spec.hostname;
  if (pod.spec?.nodeName) {
    ep.nodeName = pod.spec.nodeName;
    const zone = nodes.get(pod.spec.nodeName)?.metadata.labels?.['topology.kubernetes.io/zone'];
    if (zone) ep.zone = zone;
  }
  return ep;
}

function sliceName(svc: KObject, key: string, chunk: number): string {
  return `${svc.metadata.name}-${shortHash(`${svc.metadata.uid}/${key}/${chunk}`)}`;
}

/**
 * The EndpointSlices a Service should have, given every Pod (any namespace; filtered here) and,
 * optionally, Nodes (for zones). One slice per distinct set of resolved ports, split every
 * MAX_ENDPOINTS_PER_SLICE endpoints; with no endpoints, one empty placeholder slice, as upstream.
 */
export function desiredEndpointSlices(svc: KObject, pods: KObject[], nodes: KObject[] = []): KObject[] {
  if (!managesService(svc)) return [];
  const ns = svc.metadata.namespace!;
  const nodeMap = new Map(nodes.map((n) => [n.metadata.name!, n]));
  const groups = new Map<string, { ports: EndpointPort[]; endpoints: Endpoint[] }>();
  const selected = pods
    .filter((p) => p.metadata.namespace === ns && matchSelectorMap(svc.spec.selector, p.metadata.labels) && podBelongsInSlices(p))
    .sort((a, b) => a.metadata.name!.localeCompare(b.metadata.name!));
  for (const pod of selected) {
    const ports = endpointPorts(svc, pod);
    const key = canonicalJson(ports);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { ports, endpoints: [] }));
    g.endpoints.push(podToEndpoint(svc, pod, nodeMap));
  }
  if (groups.size === 0) groups.set('[]', { ports: [], endpoints: [] });

  const labels: Record<string, string> = { ...svc.metadata.labels, [SERVICE_NAME_LABEL]: svc.metadata.name!, [MANAGED_BY_LABEL]: MANAGED_BY };
  if (svc.spec?.clusterIP === 'None') labels[HEADLESS_LABEL] = '';
  const owner = { apiVersion: 'v1', kind: 'Service', name: svc.metadata.name!, uid: svc.metadata.uid!, controller: true, blockOwnerDeletion: true };
  const out: KObject[] = [];
  for (const [key, g] of [...groups.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const chunks = Math.max(1, Math.ceil(g.endpoints.length / MAX_ENDPOINTS_PER_SLICE));
    for (let i = 0; i < chunks; i++) {
      out.push({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: sliceName(svc, key, i), namespace: ns, labels: { ...labels }, ownerReferences: [{ ...owner }] },
        addressType: 'IPv4',
        endpoints: g.endpoints.slice(i * MAX_ENDPOINTS_PER_SLICE, (i + 1) * MAX_ENDPOINTS_PER_SLICE),
        ports: g.ports,
      });
    }
  }
  return out;
}

/** Whether an existing slice already says what a desired one says (labels, owner, endpoints, ports). */
export function sliceUpToDate(existing: KObject, desired: KObject): boolean {
  const pick = (s: KObject) => canonicalJson({
    labels: s.metadata.labels ?? {},
    owners: s.metadata.ownerReferences ?? [],
    addressType: s.addressType,
    endpoints: s.endpoints ?? [],
    ports: s.ports ?? [],
  });
  return pick(existing) === pick(desired);
}

/** The slices of a service this controller manages, among all slices. */
export function ownedSlices(svcNamespace: string, svcName: string, slices: KObject[]): KObject[] {
  return slices.filter(
    (s) => s.metadata.namespace === svcNamespace && s.metadata.labels?.[SERVICE_NAME_LABEL] === svcName && s.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY,
  );
}
