// Discovery documents (/api, /apis, /api/v1, /apis/<group>/<version>) so clients find the resources.
import { RESOURCES, type ResourceInfo } from './resources.js';

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function groups(): Map<string, ResourceInfo[]> {
  const m = new Map<string, ResourceInfo[]>();
  for (const r of RESOURCES) {
    if (!r.group) continue;
    const k = `${r.group}/${r.version}`;
    m.set(k, [...(m.get(k) ?? []), r]);
  }
  return m;
}

export function apiVersions(serverAddress: string): object {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

function groupEntry(groupVersion: string): object {
  const [name, version] = groupVersion.split('/');
  return { name, versions: [{ groupVersion, version }], preferredVersion: { groupVersion, version } };
}

export function apiGroupList(): object {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: [...groups().keys()].map(groupEntry) };
}

export function apiGroup(group: string): object | undefined {
  const gv = [...groups().keys()].find((k) => k.split('/')[0] === group);
  return gv ? { kind: 'APIGroup', apiVersion: 'v1', ...groupEntry(gv) } : undefined;
}

export function apiResourceList(groupVersion: string): object | undefined {
  const list = groupVersion === 'v1' ? RESOURCES.filter((r) => !r.group) : groups().get(groupVersion);
  if (!list) return undefined;
  const resources: object[] = [];
  for (const r of list) {
    resources.push({
      name: r.name, singularName: r.singularName, namespaced: r.namespaced, kind: r.kind, verbs: VERBS,
      ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
    });
    if (r.hasStatus) resources.push({ name: `${r.name}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] });
    if (r.name === 'deployments') {
      resources.push({ name: 'deployments/scale', singularName: '', namespaced: true, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] });
    }
    if (r.name === 'pods') resources.push({ name: 'pods/binding', singularName: '', namespaced: true, kind: 'Binding', verbs: ['create'] });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion, resources };
}

export function version(gitVersion: string): object {
  const m = gitVersion.match(/^v(\d+)\.(\d+)/);
  return {
    major: m?.[1] ?? '1', minor: m?.[2] ?? '31', gitVersion, gitCommit: 'weir-lab', gitTreeState: 'clean',
    buildDate: '2026-01-01T00:00:00Z', goVersion: 'n/a (node.js)', compiler: 'n/a', platform: `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`,
  };
}
