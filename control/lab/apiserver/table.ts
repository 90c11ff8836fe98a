// Server-side printing (meta.k8s.io/v1 Table), which kubectl asks for on `get`.
import type { IncomingMessage } from 'node:http';
import type { KObject, ResourceInfo } from './resources.js';

interface Column {
  name: string;
  type: 'string' | 'integer' | 'date';
  priority?: number;
  cell: (o: KObject) => string | number;
}

export function age(ts: string | undefined, now = Date.now()): string {
  if (!ts) return '<unknown>';
  const s = Math.max(0, Math.floor((now - Date.parse(ts)) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m}m${s % 60 ? `${s % 60}s` : ''}`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

function selectorText(sel: Record<string, string> | undefined): string {
  const e = Object.entries(sel ?? {});
  return e.length ? e.map(([k, v]) => `${k}=${v}`).join(',') : '<none>';
}

function podStatus(p: KObject): string {
  if (p.metadata.deletionTimestamp) return 'Terminating';
  return p.status?.reason ?? p.status?.phase ?? 'Pending';
}

function podReady(p: KObject): string {
  const total = p.spec?.containers?.length ?? 0;
  const ready = (p.status?.containerStatuses ?? []).filter((c: any) => c.ready).length;
  return `${ready}/${total}`;
}

const name: Column = { name: 'Name', type: 'string', cell: (o) => o.metadata.name! };
const ageCol: Column = { name: 'Age', type: 'string', cell: (o) => age(o.metadata.creationTimestamp) };

const COLUMNS: Record<string, Column[]> = {
  pods: [
    name,
    { name: 'Ready', type: 'string', cell: podReady },
    { name: 'Status', type: 'string', cell: podStatus },
    { name: 'Restarts', type: 'string', cell: (p) => String((p.status?.containerStatuses ?? []).reduce((n: number, c: any) => n + (c.restartCount ?? 0), 0)) },
    ageCol,
    { name: 'IP', type: 'string', priority: 1, cell: (p) => p.status?.podIP ?? '<none>' },
    { name: 'Node', type: 'string', priority: 1, cell: (p) => p.spec?.nodeName ?? '<none>' },
  ],
  services: [
    name,
    { name: 'Type', type: 'string', cell: (s) => s.spec?.type ?? '' },
    { name: 'Cluster-IP', type: 'string', cell: (s) => s.spec?.clusterIP ?? '<none>' },
    { name: 'External-IP', type: 'string', cell: (s) => (s.spec?.externalIPs ?? []).join(',') || (s.spec?.type === 'LoadBalancer' ? '<pending>' : '<none>') },
    {
      name: 'Port(s)', type: 'string',
      cell: (s) => (s.spec?.ports ?? []).map((p: any) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol}`).join(',') || '<none>',
    },
    ageCol,
    { name: 'Selector', type: 'string', priority: 1, cell: (s) => selectorText(s.spec?.selector) },
  ],
  nodes: [
    name,
    {
      name: 'Status', type: 'string',
      cell: (n) => {
        const ready = (n.status?.conditions ?? []).find((c: any) => c.type === 'Ready');
        return ready?.status === 'True' ? 'Ready' : ready ? 'NotReady' : 'Unknown';
      },
    },
    ageCol,
    { name: 'Internal-IP', type: 'string', priority: 1, cell: (n) => (n.status?.addresses ?? []).find((a: any) => a.type === 'InternalIP')?.address ?? '<none>' },
    { name: 'Pod-CIDR', type: 'string', priority: 1, cell: (n) => n.spec?.podCIDR ?? '<none>' },
  ],
  namespaces: [name, { name: 'Status', type: 'string', cell: (n) => n.status?.phase ?? '' }, ageCol],
  endpointslices: [
    name,
    { name: 'AddressType', type: 'string', cell: (s) => s.addressType ?? '' },
    { name: 'Ports', type: 'string', cell: (s) => (s.ports ?? []).map((p: any) => p.port).join(',') || '<unset>' },
    { name: 'Endpoints', type: 'string', cell: (s) => (s.endpoints ?? []).flatMap((e: any) => e.addresses ?? []).join(',') || '<unset>' },
    ageCol,
  ],
  networkpolicies: [name, { name: 'Pod-Selector', type: 'string', cell: (p) => selectorText(p.spec?.podSelector?.matchLabels) }, ageCol],
  deployments: [
    name,
    { name: 'Ready', type: 'string', cell: (d) => `${d.status?.readyReplicas ?? 0}/${d.spec?.replicas ?? 0}` },
    { name: 'Up-to-date', type: 'integer', cell: (d) => d.status?.updatedReplicas ?? 0 },
    { name: 'Available', type: 'integer', cell: (d) => d.status?.availableReplicas ?? 0 },
    ageCol,
  ],
};

export function wantsTable(req: IncomingMessage): boolean {
  return /as=Table/.test(String(req.headers.accept ?? ''));
}

export function toTable(r: ResourceInfo, items: KObject[], resourceVersion: string): object {
  const cols = COLUMNS[r.name] ?? [name, ageCol];
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: cols.map((c) => ({ name: c.name, type: c.type, format: c.name === 'Name' ? 'name' : '', description: c.name, priority: c.priority ?? 0 })),
    rows: items.map((o) => ({
      cells: cols.map((c) => c.cell(o)),
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
    })),
  };
}
