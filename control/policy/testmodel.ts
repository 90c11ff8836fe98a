// The upstream sig-network netpol test model (namespaces x, y, z; pods a, b,
// c in each; ports 80, 81 over TCP and UDP, each served on a named container
// port "serve-<port>-<proto>") for the compiler's model tests, plus a
// reachability truth table like the upstream "probe connectivity" tests.
import type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '@kubernetes/client-node';
import { compilePolicy } from './compile.js';
import { verdict } from './evaluate.js';
import { MemoryIdentityAllocator } from './identity.js';
import type { CompiledPolicy, IdentityAllocator, LocalEndpoint, PolicyInput } from './types.js';

export const NAMESPACES = ['x', 'y', 'z'];
export const POD_NAMES = ['a', 'b', 'c'];
export const ALL_PODS = NAMESPACES.flatMap((ns) => POD_NAMES.map((p) => `${ns}/${p}`));
export const SELF_NODE_IP = '192.168.0.1';
export const REMOTE_NODE_IP = '192.168.0.2';
export const GATEWAY_IP = '10.244.0.1';
export const TCP = 6;
export const UDP = 17;

/** x/a = 10.244.1.10, x/b = 10.244.1.11, y/a = 10.244.2.10, ... */
export function podIp(pod: string): string {
  const [ns, name] = pod.split('/');
  return `10.244.${NAMESPACES.indexOf(ns) + 1}.${POD_NAMES.indexOf(name) + 10}`;
}

export function endpointId(pod: string): number {
  return ALL_PODS.indexOf(pod) + 1;
}

export interface ModelOptions {
  /** Extra namespace labels by namespace. */
  nsLabels?: Record<string, Record<string, string>>;
  /** Extra pod labels by "ns/pod". */
  podLabels?: Record<string, Record<string, string>>;
}

export function modelPod(pod: string, labels: Record<string, string> = {}, ports = [80, 81]): V1Pod {
  const [ns, name] = pod.split('/');
  return {
    metadata: { namespace: ns, name, labels: { pod: name, ...labels } },
    spec: {
      containers: ports.flatMap((p) =>
        ['TCP', 'UDP'].map((proto) => ({
          name: `cont-${p}-${proto.toLowerCase()}`,
          image: 'agnhost',
          ports: [{ name: `serve-${p}-${proto.toLowerCase()}`, containerPort: p, protocol: proto }],
        })),
      ),
    },
    status: { podIP: podIp(pod), phase: 'Running' },
  };
}

export function nodes(): V1Node[] {
  return [
    { metadata: { name: 'node1' }, status: { addresses: [{ type: 'InternalIP', address: SELF_NODE_IP }] } },
    { metadata: { name: 'node2' }, status: { addresses: [{ type: 'InternalIP', address: REMOTE_NODE_IP }] } },
  ];
}

/** The model cluster; every pod is a local endpoint so both directions are checked on one compile. */
export function modelInput(policies: V1NetworkPolicy[], opts: ModelOptions = {}): PolicyInput {
  const namespaces: V1Namespace[] = NAMESPACES.map((ns) => ({
    metadata: { name: ns, labels: { ns, ...(opts.nsLabels?.[ns] ?? {}) } },
  }));
  const pods = ALL_PODS.map((p) => modelPod(p, opts.podLabels?.[p]));
  const endpoints: LocalEndpoint[] = ALL_PODS.map((p) => {
    const [ns, name] = p.split('/');
    return { endpointId: endpointId(p), ip: podIp(p), podNamespace: ns, podName: name };
  });
  return { pods, namespaces, policies, nodes: nodes(), nodeName: 'node1', hostAddresses: [GATEWAY_IP], endpoints };
}

/** A policy as raw JSON has it (ingress peers in "from"; the typed client objects use "_from"). */
export function policy(ns: string, name: string, spec: object): V1NetworkPolicy {
  return { metadata: { namespace: ns, name }, spec: spec as V1NetworkPolicy['spec'] };
}

export function compileModel(
  policies: V1NetworkPolicy[],
  opts: ModelOptions = {},
  alloc: IdentityAllocator = new MemoryIdentityAllocator(),
): CompiledPolicy {
  return compilePolicy(modelInput(policies, opts), alloc);
}

export type Matrix = Map<string, Map<string, boolean>>;

/** Probes every (client, server) pair (loopback excluded, as upstream) on one port and protocol. */
export function probe(compiled: CompiledPolicy, port: number, proto: number): Matrix {
  const m: Matrix = new Map();
  for (const from of ALL_PODS) {
    const row = new Map<string, boolean>();
    for (const to of ALL_PODS) {
      if (from === to) continue;
      const out = verdict(compiled, endpointId(from), 'egress', podIp(to), proto, port).allowed;
      const inn = verdict(compiled, endpointId(to), 'ingress', podIp(from), proto, port).allowed;
      row.set(to, out && inn);
    }
    m.set(from, row);
  }
  return m;
}

/** Expected connectivity, built up like the upstream Reachability helper. */
export class Reachability {
  readonly m: Matrix = new Map();
  constructor(allowed: boolean) {
    for (const from of ALL_PODS) {
      const row = new Map<string, boolean>();
      for (const to of ALL_PODS) if (from !== to) row.set(to, allowed);
      this.m.set(from, row);
    }
  }
  private static sel(spec: string): string[] {
    // "x/a" one pod, "x/*" a namespace, "*" everyone
    if (spec === '*') return ALL_PODS;
    if (spec.endsWith('/*')) return ALL_PODS.filter((p) => p.startsWith(spec.slice(0, -1)));
    if (!ALL_PODS.includes(spec)) throw new Error(`no pod ${spec}`);
    return [spec];
  }
  expect(from: string, to: string, allowed: boolean): this {
    for (const f of Reachability.sel(from)) for (const t of Reachability.sel(to)) if (f !== t) this.m.get(f)!.set(t, allowed);
    return this;
  }
  expectAllIngress(to: string, allowed: boolean): this {
    return this.expect('*', to, allowed);
  }
  expectAllEgress(from: string, allowed: boolean): this {
    return this.expect(from, '*', allowed);
  }
}

export function formatMatrix(m: Matrix): string {
  const lines = ['      ' + ALL_PODS.map((p) => p.padEnd(4)).join('')];
  for (const from of ALL_PODS) {
    lines.push(from.padEnd(6) + ALL_PODS.map((to) => (from === to ? '-' : m.get(from)!.get(to) ? '.' : 'X').padEnd(4)).join(''));
  }
  return lines.join('\n');
}

/** undefined if equal; otherwise both tables (X = denied, . = allowed) and the differing pairs. */
export function diffMatrix(expected: Matrix, actual: Matrix, what = ''): string | undefined {
  const diffs: string[] = [];
  for (const from of ALL_PODS)
    for (const to of ALL_PODS) {
      if (from === to) continue;
      const e = expected.get(from)!.get(to);
      const a = actual.get(from)!.get(to);
      if (e !== a) diffs.push(`${from} -> ${to}: expected ${e ? 'allowed' : 'denied'}, got ${a ? 'allowed' : 'denied'}`);
    }
  if (!diffs.length) return undefined;
  return `${what}\nexpected:\n${formatMatrix(expected)}\nactual:\n${formatMatrix(actual)}\n${diffs.join('\n')}`;
}

/** mulberry32: a fixed seed gives the same sequence on every run (the tests' random cases). */
export function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A synthetic cluster for the scale test: 5000 pods, 500 namespaces, 350 policies, 50 nodes, 50 local endpoints. */
export function scaleInput(): PolicyInput {
  const r = rng(2024);
  const input: PolicyInput = { pods: [], namespaces: [], policies: [], nodes: [], nodeName: 'n0', hostAddresses: ['10.0.0.1'], endpoints: [] };
  for (let n = 0; n < 50; n++) input.nodes.push({ metadata: { name: `n${n}` }, status: { addresses: [{ type: 'InternalIP', address: `192.168.${n >> 8}.${(n & 255) + 1}` }] } });
  for (let i = 0; i < 500; i++) input.namespaces.push({ metadata: { name: `ns${i}`, labels: { team: `t${i % 20}`, env: i % 3 ? 'prod' : 'dev' } } });
  for (let i = 0; i < 5000; i++) {
    const ns = `ns${i % 500}`;
    const app = `app${i % 40}`;
    input.pods.push({
      metadata: { namespace: ns, name: `p${i}`, labels: { app, version: `v${i % 3}`, 'pod-template-hash': `h${(i * 7919) % 1000}` } },
      spec: { containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8000 + (i % 5) }, { name: 'dns', containerPort: 53, protocol: 'UDP' }] }] },
      status: { podIP: `10.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, phase: 'Running' },
    });
    if (i % 100 === 0) input.endpoints.push({ endpointId: i + 1, ip: `10.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, podNamespace: ns, podName: `p${i}` });
  }
  for (let i = 0; i < 300; i++) {
    const ns = `ns${Math.floor(r() * 500)}`;
    const kind = i % 6;
    const spec: Record<string, unknown> & { policyTypes?: string[] } = { podSelector: i % 4 === 0 ? {} : { matchLabels: { app: `app${i % 40}` } } };
    if (kind === 0) spec.ingress = [{ from: [{ namespaceSelector: { matchLabels: { team: `t${i % 20}` } } }], ports: [{ port: 'http' }] }];
    if (kind === 1) spec.ingress = [{ from: [{ podSelector: { matchExpressions: [{ key: 'version', operator: 'In', values: ['v1', 'v2'] }] } }] }];
    if (kind === 2) {
      spec.policyTypes = ['Egress'];
      spec.egress = [{ to: [{ ipBlock: { cidr: `10.${16 + (i % 2)}.0.0/16`, except: [`10.16.${i % 250}.0/24`] } }], ports: [{ port: 443 }, { port: 30000, endPort: 32767 }] }];
    }
    if (kind === 3) {
      spec.policyTypes = ['Egress'];
      spec.egress = [{ to: [{ namespaceSelector: { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['dev'] }] }, podSelector: { matchLabels: { app: `app${i % 40}` } } }], ports: [{ port: 'dns', protocol: 'UDP' }] }];
    }
    if (kind === 4) spec.ingress = [{ from: [{ ipBlock: { cidr: `172.${16 + (i % 16)}.0.0/12` } }, { namespaceSelector: {} }] }];
    if (kind === 5) spec.ingress = [];
    input.policies.push(policy(ns, `pol${i}`, spec));
  }
  // make sure the local endpoints' namespaces carry some policies too
  for (let i = 0; i < 50; i++) input.policies.push(policy(`ns${(i * 100) % 500}`, `local${i}`, { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: `t${i % 20}` } } }], ports: [{ port: 'http' }] }] }));
  return input;
}
