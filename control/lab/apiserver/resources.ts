// The resource kinds the lab API server serves, and how each maps onto REST paths.

/** A Kubernetes object as stored: plain JSON. */
export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: any;
  status?: any;
  [field: string]: any;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  [field: string]: any;
}

export interface ResourceInfo {
  /** Plural, as in the URL: 'pods'. */
  name: string;
  singularName: string;
  kind: string;
  /** '' for the core group. */
  group: string;
  version: string;
  namespaced: boolean;
  shortNames: string[];
  /** Has a /status subresource: the main resource ignores status writes and vice versa. */
  hasStatus: boolean;
  /** DELETE answers with the object (pods, services, ...) rather than a Status. */
  returnsDeletedObject: boolean;
  /** Field selectors accepted besides metadata.name and metadata.namespace. */
  fieldSelectors: string[];
}

export const RESOURCES: ResourceInfo[] = [
  {
    name: 'namespaces', singularName: 'namespace', kind: 'Namespace', group: '', version: 'v1',
    namespaced: false, shortNames: ['ns'], hasStatus: true, returnsDeletedObject: true,
    fieldSelectors: ['status.phase'],
  },
  {
    name: 'nodes', singularName: 'node', kind: 'Node', group: '', version: 'v1',
    namespaced: false, shortNames: ['no'], hasStatus: true, returnsDeletedObject: false,
    fieldSelectors: ['spec.unschedulable'],
  },
  {
    name: 'pods', singularName: 'pod', kind: 'Pod', group: '', version: 'v1',
    namespaced: true, shortNames: ['po'], hasStatus: true, returnsDeletedObject: true,
    fieldSelectors: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName',
      'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.nominatedNodeName'],
  },
  {
    name: 'services', singularName: 'service', kind: 'Service', group: '', version: 'v1',
    namespaced: true, shortNames: ['svc'], hasStatus: true, returnsDeletedObject: true,
    fieldSelectors: ['spec.clusterIP', 'spec.type'],
  },
  {
    name: 'endpointslices', singularName: 'endpointslice', kind: 'EndpointSlice', group: 'discovery.k8s.io',
    version: 'v1', namespaced: true, shortNames: [], hasStatus: false, returnsDeletedObject: false,
    fieldSelectors: ['addressType'],
  },
  {
    name: 'networkpolicies', singularName: 'networkpolicy', kind: 'NetworkPolicy', group: 'networking.k8s.io',
    version: 'v1', namespaced: true, shortNames: ['netpol'], hasStatus: false, returnsDeletedObject: false,
    fieldSelectors: [],
  },
  {
    name: 'deployments', singularName: 'deployment', kind: 'Deployment', group: 'apps', version: 'v1',
    namespaced: true, shortNames: ['deploy'], hasStatus: true, returnsDeletedObject: false,
    fieldSelectors: [],
  },
];

const byName = new Map(RESOURCES.map((r) => [r.name, r]));

/** The resource for a plural name ('pods'), a kind ('Pod') or a short name ('po'), or undefined. */
export function findResource(name: string): ResourceInfo | undefined {
  const hit = byName.get(name);
  if (hit) return hit;
  const lower = name.toLowerCase();
  return RESOURCES.find((r) => r.kind.toLowerCase() === lower || r.singularName === lower || r.shortNames.includes(lower));
}

/** The resource for a plural name; throws on an unknown one (a programming error in the caller). */
export function resource(name: string): ResourceInfo {
  const r = findResource(name);
  if (!r) throw new Error(`unknown resource ${JSON.stringify(name)}; served: ${RESOURCES.map((x) => x.name).join(', ')}`);
  return r;
}

export function apiVersionOf(r: ResourceInfo): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

/** The resource an (apiVersion, kind) pair names, as in a manifest. */
export function resourceForKind(apiVersion: string, kind: string): ResourceInfo | undefined {
  return RESOURCES.find((r) => r.kind === kind && apiVersionOf(r) === apiVersion);
}
