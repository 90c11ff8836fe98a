// Interop: kubectl (a client nobody here wrote) against the lab API server: get, create -f, delete.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiServer, labKubeconfig } from '../../control/lab/apiserver/index.js';
import { which } from '../lib/netns.js';

const run = promisify(execFile);

function requireKubectl(): string | false {
  if (which('kubectl')) return false;
  const reason = "kubectl interop: 'kubectl' not installed (apt-get install kubernetes-client)";
  if (process.env.CI) throw new Error(`${reason} — CI must run interop tests`);
  console.warn(`[skip] ${reason}`);
  return reason;
}

// kubectl on PATH, plus any other builds listed in WEIR_TEST_KUBECTL (colon-separated paths),
// e.g. Debian's 1.20 kubernetes-client unpacked beside a newer one.
const BINARIES = ['kubectl', ...(process.env.WEIR_TEST_KUBECTL ?? '').split(':').filter(Boolean)];

const MANIFEST = `
apiVersion: v1
kind: Pod
metadata:
  name: echo-1
  labels: {app: echo}
spec:
  containers:
  - name: echo
    image: weir/echo
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  type: NodePort
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: http, nodePort: 30080}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: fe
spec:
  replicas: 2
  selector: {matchLabels: {app: fe}}
  template:
    metadata: {labels: {app: fe}}
    spec:
      containers: [{name: fe, image: weir/echo}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: only-fe
spec:
  podSelector: {matchLabels: {app: echo}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: fe}}}]
`;

describe.skipIf(requireKubectl()).each(BINARIES)('%s against the lab API server', (binary) => {
  let api: ApiServer;
  let dir: string;
  let kubeconfig: string;
  const kubectl = async (...args: string[]) => {
    try {
      const r = await run(binary, args, { env: { ...process.env, KUBECONFIG: kubeconfig, HOME: dir }, timeout: 30_000 });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e: any) {
      return { code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string };
    }
  };

  beforeAll(async () => {
    api = new ApiServer();
    const port = await api.listen(0);
    dir = mkdtempSync(join(tmpdir(), 'h5-kubectl-'));
    kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, labKubeconfig(`http://127.0.0.1:${port}`));
    writeFileSync(join(dir, 'app.yaml'), MANIFEST);
  });
  afterAll(async () => {
    await api?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('create -f makes every object of a multi-document manifest', async () => {
    const r = await kubectl('create', '-f', join(dir, 'app.yaml'));
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['pod/echo-1 created', 'service/echo created', 'deployment.apps/fe created', 'networkpolicy.networking.k8s.io/only-fe created']);
    expect(api.get('services', 'echo').spec.ports[0]).toMatchObject({ port: 80, targetPort: 'http', nodePort: 30080 });
    expect(api.get('deployments', 'fe').spec.replicas).toBe(2);
  });

  it('get prints server-side tables, -o json parses back, short names resolve', async () => {
    const svc = await kubectl('get', 'svc');
    expect(svc.code).toBe(0);
    const lines = svc.stdout.trim().split('\n');
    expect(lines[0].split(/\s+/)).toEqual(['NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)', 'AGE']);
    const echo = lines.find((l) => l.startsWith('echo '))!.split(/\s+/);
    expect(echo.slice(0, 5)).toEqual(['echo', 'NodePort', api.get('services', 'echo').spec.clusterIP, '<none>', '80:30080/TCP']);

    api.patch('pods', 'echo-1', { spec: { nodeName: 'node-1' } });
    api.patch('pods', 'echo-1', { status: { phase: 'Running', podIP: '10.244.1.7' } }, { subresource: 'status' });
    const wide = await kubectl('get', 'po', '-o', 'wide');
    const row = wide.stdout.split('\n').find((l) => l.startsWith('echo-1'))!.split(/\s+/);
    expect(row).toContain('Running');
    expect(row).toContain('10.244.1.7');
    expect(row).toContain('node-1');

    const json = JSON.parse((await kubectl('get', 'pods', '-l', 'app=echo', '-o', 'json')).stdout);
    expect(json.items.map((p: any) => p.metadata.name)).toEqual(['echo-1']);
    const one = JSON.parse((await kubectl('get', 'service', 'echo', '-o', 'json')).stdout);
    expect(one.spec.selector).toEqual({ app: 'echo' });
    const nps = await kubectl('get', 'netpol', '-o', 'name');
    expect(nps.stdout.trim()).toBe('networkpolicy.networking.k8s.io/only-fe');
    const byField = await kubectl('get', 'pods', '--field-selector', 'spec.nodeName=node-1', '-o', 'name');
    expect(byField.stdout.trim()).toBe('pod/echo-1');
  });

  it('shows the server validation errors and a non-zero exit', async () => {
    writeFileSync(join(dir, 'bad.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 80}]\n');
    const r = await kubectl('create', '-f', join(dir, 'bad.yaml'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('The Service "bad" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767');
    const dup = await kubectl('create', '-f', join(dir, 'app.yaml'));
    expect(dup.code).not.toBe(0);
    expect(dup.stderr).toContain('pods "echo-1" already exists');
    const missing = await kubectl('get', 'pod', 'nope');
    expect(missing.stderr).toContain('pods "nope" not found');
  });

  it('apply, scale and label work on existing objects', async () => {
    const applied = await kubectl('apply', '-f', join(dir, 'app.yaml'));
    expect(applied.code).toBe(0);
    expect(applied.stdout).toContain('service/echo configured');
    writeFileSync(join(dir, 'app2.yaml'), MANIFEST.replace('replicas: 2', 'replicas: 3').replace('image: weir/echo', 'image: weir/echo:v2'));
    expect((await kubectl('apply', '-f', join(dir, 'app2.yaml'))).stdout).toContain('deployment.apps/fe configured');
    expect((await kubectl('apply', '-f', join(dir, 'app2.yaml'))).stdout).toContain('pod/echo-1 unchanged');
    expect(api.get('deployments', 'fe').spec.replicas).toBe(3);
    // apply sends a strategic merge patch: the container keeps the fields the patch does not name.
    expect(api.get('pods', 'echo-1').spec.containers).toEqual([{ name: 'echo', image: 'weir/echo:v2', imagePullPolicy: 'Always', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }]);
    const scaled = await kubectl('scale', 'deployment', 'fe', '--replicas=1');
    expect(scaled.stdout.trim()).toBe('deployment.apps/fe scaled');
    expect(api.get('deployments', 'fe').spec.replicas).toBe(1);
    const labelled = await kubectl('label', 'pod', 'echo-1', 'tier=backend');
    expect(labelled.stdout.trim()).toBe('pod/echo-1 labeled');
    expect(api.get('pods', 'echo-1').metadata.labels).toEqual({ app: 'echo', tier: 'backend' });
  });

  it('delete removes objects by name and by file', async () => {
    const one = await kubectl('delete', 'networkpolicy', 'only-fe');
    expect(one.stdout.trim()).toBe('networkpolicy.networking.k8s.io "only-fe" deleted');
    // echo-1 is bound to a node, so its delete is graceful; --grace-period=0 --force removes it at once, as on a real cluster.
    const rest = await kubectl('delete', '-f', join(dir, 'app.yaml'), '--ignore-not-found', '--grace-period=0', '--force');
    expect(rest.code).toBe(0);
    expect(api.list('pods').items).toEqual([]);
    expect(api.list('services').items.map((s) => s.metadata.name)).toEqual(['kubernetes']);
    expect(api.list('deployments').items).toEqual([]);
  });
});
