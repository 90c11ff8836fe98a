// The install manifests agree with each other, with the agent's config
// reader, with the CNI conflist and with the image the Dockerfile builds.
// (The image itself cannot be built here: no container registry.)
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { SETTINGS, resolveConfig } from '../../control/agent/config.js';
import { repoRoot } from '../lib/fixtures.js';

const dir = join(repoRoot, 'manifests');

interface K8s {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [k: string]: unknown;
}
/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

const yamlFiles = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
const docs: Array<K8s & { file: string }> = yamlFiles.flatMap((file) =>
  parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    return { ...(d.toJS() as K8s), file };
  }),
);
const one = (kind: string): Any => {
  const found = docs.filter((d) => d.kind === kind);
  expect(found, `exactly one ${kind}`).toHaveLength(1);
  return found[0];
};

describe('manifests/', () => {
  const ds = one('DaemonSet');
  const pod = ds.spec.template.spec;
  const agent = pod.containers.find((c: Any) => c.name === 'agent');
  const containers: Any[] = [...(pod.initContainers ?? []), ...pod.containers];

  it('every YAML document parses and names its kind, version and object', () => {
    expect(yamlFiles.sort()).toEqual(['configmap.yaml', 'daemonset.yaml', 'rbac.yaml']);
    for (const d of docs) {
      expect(d.apiVersion, d.file).toMatch(/^(v1|apps\/v1|rbac\.authorization\.k8s\.io\/v1)$/);
      expect(d.metadata.name, d.file).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
    const kust = parseAllDocuments(readFileSync(join(dir, 'kustomization.yaml'), 'utf8'))[0].toJS();
    expect(kust.resources.sort()).toEqual(yamlFiles.sort());
  });

  it('RBAC: the DaemonSet runs as the ServiceAccount the binding names, bound to the ClusterRole', () => {
    const sa = one('ServiceAccount');
    const role = one('ClusterRole');
    const binding = one('ClusterRoleBinding');
    expect(pod.serviceAccountName).toBe(sa.metadata.name);
    expect(sa.metadata.namespace).toBe(ds.metadata.namespace);
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
  });

  it('RBAC: get/list/watch on exactly what the agent watches, plus patch on nodes (its uplink MAC annotation)', () => {
    const role = one('ClusterRole');
    const granted: Record<string, string[]> = {};
    for (const r of role.rules) {
      if (r.verbs.includes('patch')) {
        expect(r).toMatchObject({ apiGroups: [''], resources: ['nodes'], verbs: ['patch'] });
        continue;
      }
      expect(r.verbs.every((v: string) => ['get', 'list', 'watch'].includes(v)), `verbs ${r.verbs}`).toBe(true);
      expect(r.verbs).toEqual(expect.arrayContaining(['list', 'watch']));
      expect(r.resourceNames).toBeUndefined();
      for (const g of r.apiGroups) for (const res of r.resources) granted[`${g || 'core'}/${res}`] = r.verbs;
    }
    expect(Object.keys(granted).sort()).toEqual([
      'core/namespaces', 'core/nodes', 'core/pods', 'core/services', 'discovery.k8s.io/endpointslices', 'networking.k8s.io/networkpolicies',
    ]);
  });

  it('the ConfigMap the DaemonSet mounts exists with the keys it projects, and the agent accepts it', () => {
    const cm = one('ConfigMap');
    const vol = pod.volumes.find((v: Any) => v.configMap);
    expect(vol.configMap.name).toBe(cm.metadata.name);
    expect(cm.metadata.namespace).toBe(ds.metadata.namespace);
    for (const item of vol.configMap.items) expect(Object.keys(cm.data)).toContain(item.key);
    // The agent reads /etc/weir/agent.yaml: the mount and the --config argument agree.
    const mount = agent.volumeMounts.find((m: Any) => m.name === vol.name);
    const path = `${mount.mountPath}/${vol.configMap.items.find((i: Any) => i.key === 'agent.yaml').path}`;
    expect(agent.command).toEqual(['/opt/weir/bin/weir', 'agent', '--config', path]);
    // Every key is a setting control/agent/config.ts knows, and the values pass its validation.
    const settings = parseAllDocuments(cm.data['agent.yaml'])[0].toJS();
    for (const k of Object.keys(settings)) expect(Object.keys(SETTINGS), `setting ${k}`).toContain(k);
    const tmp = mkdtempSync(join(tmpdir(), 'h7-cm-'));
    try {
      writeFileSync(join(tmp, 'agent.yaml'), cm.data['agent.yaml']);
      const cfg = resolveConfig({ file: join(tmp, 'agent.yaml'), env: { NODE_NAME: 'node-1' } });
      expect(cfg).toMatchObject({ nodeName: 'node-1', metricsPort: settings.metricsPort, ctEntries: settings.ctEntries });
    } finally {
      rmSync(tmp, { recursive: true });
    }
  });

  it('the agent gets its node name from the pod spec', () => {
    expect(agent.env).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
  });

  it('probes: /healthz and /readyz on the metrics port the ConfigMap sets', () => {
    const settings = parseAllDocuments(one('ConfigMap').data['agent.yaml'])[0].toJS();
    const port = agent.ports.find((p: Any) => p.name === 'metrics');
    expect(port).toMatchObject({ containerPort: settings.metricsPort, protocol: 'TCP' });
    const probePort = (p: Any) => (typeof p.httpGet.port === 'string' ? agent.ports.find((x: Any) => x.name === p.httpGet.port)?.containerPort : p.httpGet.port);
    for (const [probe, path] of [['livenessProbe', '/healthz'], ['startupProbe', '/healthz'], ['readinessProbe', '/readyz']]) {
      expect(agent[probe]?.httpGet?.path, probe).toBe(path);
      expect(probePort(agent[probe]), probe).toBe(settings.metricsPort);
    }
  });

  it('volumes and mounts: every mount names a volume, every volume is mounted, host paths are the expected ones', () => {
    const volumes = new Map<string, Any>(pod.volumes.map((v: Any) => [v.name, v]));
    expect(volumes.size).toBe(pod.volumes.length);
    const used = new Set<string>();
    for (const c of containers) {
      for (const m of c.volumeMounts ?? []) {
        expect(volumes.has(m.name), `${c.name} mounts ${m.name}`).toBe(true);
        used.add(m.name);
        // Bidirectional propagation is only allowed in privileged containers.
        if (m.mountPropagation === 'Bidirectional') expect(c.securityContext?.privileged, `${c.name}`).toBe(true);
      }
    }
    expect([...volumes.keys()].filter((v) => !used.has(v))).toEqual([]);
    const hostPathOf = (c: Any, mountPath: string) => volumes.get(c.volumeMounts.find((m: Any) => m.mountPath === mountPath)?.name)?.hostPath?.path;
    const settings = parseAllDocuments(one('ConfigMap').data['agent.yaml'])[0].toJS();
    expect(hostPathOf(agent, '/sys/fs/bpf')).toBe('/sys/fs/bpf');
    expect(settings.bpffsRoot.startsWith('/sys/fs/bpf/')).toBe(true);
    expect(hostPathOf(agent, '/run/weir')).toBe('/run/weir');
    expect(settings.cniSocket.startsWith('/run/weir/')).toBe(true);
    expect(hostPathOf(agent, settings.stateDir)).toBe(settings.stateDir);
    expect(hostPathOf(agent, '/run/netns')).toBe('/run/netns');
    expect(hostPathOf(agent, '/proc/sys/net')).toBe('/proc/sys/net'); // sysctls: /proc/sys is read-only otherwise
    expect(hostPathOf(agent, '/run/xtables.lock')).toBe('/run/xtables.lock');
    const install = pod.initContainers.find((c: Any) => c.name === 'install-cni');
    expect(hostPathOf(install, '/host/opt/cni/bin')).toBe('/opt/cni/bin');
    expect(hostPathOf(install, '/host/etc/cni/net.d')).toBe('/etc/cni/net.d');
    expect(hostPathOf(install, '/host/opt/weir')).toBe('/opt/weir');
  });

  it('runs on every node, on the host network, with capabilities instead of privileged for the agent', () => {
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
    expect(agent.securityContext.privileged).toBe(false);
    expect(agent.securityContext.capabilities.drop).toEqual(['ALL']);
    // Kubernetes spells capabilities without the CAP_ prefix.
    expect(agent.securityContext.capabilities.add).toEqual(expect.arrayContaining(['BPF', 'PERFMON', 'NET_ADMIN', 'SYS_ADMIN']));
    expect(agent.securityContext.capabilities.add.every((c: string) => /^[A-Z_]+$/.test(c) && !c.startsWith('CAP_'))).toBe(true);
    expect(new Set(containers.map((c) => c.image)).size).toBe(1);
  });

  it('the conflist the init container installs is in manifests/, in the image, and names weir-cni with the agent socket', () => {
    const install = pod.initContainers.find((c: Any) => c.name === 'install-cni');
    const name = install.env.find((e: Any) => e.name === 'CNI_CONFLIST').value;
    const conflist = JSON.parse(readFileSync(join(dir, name), 'utf8'));
    expect(conflist.plugins[0].type).toBe('weir-cni');
    const settings = parseAllDocuments(one('ConfigMap').data['agent.yaml'])[0].toJS();
    expect(conflist.plugins[0].socketPath ?? '/run/weir/cni.sock').toBe(settings.cniSocket);
    // The init container runs the script from where the Dockerfile puts it, beside the conflist.
    const dockerfile = readFileSync(join(dir, 'Dockerfile'), 'utf8');
    expect(install.command).toEqual(['/opt/weir/manifests/install-cni.sh']);
    expect(dockerfile).toMatch(new RegExp(`^WORKDIR /opt/weir$`, 'm'));
    expect(dockerfile).toMatch(new RegExp(`^COPY manifests/${name.replace('.', '\\.')} manifests/install-cni\\.sh manifests/$`, 'm'));
    accessSync(join(dir, 'install-cni.sh'), constants.X_OK);
  });

  it('the Dockerfile builds on Debian 12 and compiles the BPF objects, the addon and dist/', () => {
    const dockerfile = readFileSync(join(dir, 'Dockerfile'), 'utf8');
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(froms).toEqual(['node:${NODE_VERSION}-bookworm', 'node:${NODE_VERSION}-bookworm-slim']);
    expect(dockerfile).toMatch(/^ARG NODE_VERSION=20$/m);
    expect(dockerfile).toMatch(/^RUN make bpf native dist/m);
    // The runtime stage has the libraries the addon links and the tools the agent and `weir status` run.
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    for (const pkg of ['libbpf1', 'libelf1', 'zlib1g', 'iproute2', 'iptables', 'procps', 'bpftool']) expect(runtime).toMatch(new RegExp(`install .*\\b${pkg}\\b`));
    // Every COPY source from the build context exists in the checkout.
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) (\S+)$/gm)) {
      for (const src of m[1].split(/\s+/)) expect(existsSync(join(repoRoot, src)), `COPY ${src}`).toBe(true);
    }
  });
});

const built = existsSync(join(repoRoot, 'dist', 'control', 'cni', 'main.js'));
if (!built && process.env.CI) throw new Error('dist/ is not built; make test builds it before running vitest');

describe.skipIf(!built)('install-cni.sh', () => {
  const host = mkdtempSync(join(tmpdir(), 'h7-host-'));
  afterAll(() => rmSync(host, { recursive: true, force: true }));

  it('installs a weir-cni that runs with its own Node.js and the conflist; a re-run replaces the old copy', () => {
    const env = {
      ...process.env,
      WEIR_APP: repoRoot,
      HOST_CNI_BIN: join(host, 'opt/cni/bin'),
      HOST_CNI_CONF: join(host, 'etc/cni/net.d'),
      HOST_WEIR: join(host, 'opt/weir'),
      HOST_WEIR_PATH: join(host, 'opt/weir'),
      CNI_CONFLIST: '10-weir.conflist',
    };
    const install = () => spawnSync(join(dir, 'install-cni.sh'), [], { env, encoding: 'utf8', timeout: 30_000 });
    const first = install();
    expect(first.stderr).toBe('');
    expect(first.status).toBe(0);
    expect(readFileSync(join(host, 'etc/cni/net.d/10-weir.conflist'), 'utf8')).toBe(readFileSync(join(dir, '10-weir.conflist'), 'utf8'));
    // The runtime's VERSION call, through the wrapper and the copied runtime only.
    const plugin = join(host, 'opt/cni/bin/weir-cni');
    const version = spawnSync(plugin, [], { env: { PATH: '/nonexistent', CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8', timeout: 30_000 });
    expect(version.status).toBe(0);
    expect(JSON.parse(version.stdout).supportedVersions).toEqual(expect.arrayContaining(['1.0.0', '1.1.0']));
    const before = readdirSync(join(host, 'opt/weir'));
    expect(before).toHaveLength(1);
    expect(install().status).toBe(0);
    const after = readdirSync(join(host, 'opt/weir'));
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(before[0]);
    expect(readFileSync(plugin, 'utf8')).toContain(`${join(host, 'opt/weir')}/${after[0]}/node`);
    expect(spawnSync(plugin, [], { env: { CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8' }).status).toBe(0);
  });
});
