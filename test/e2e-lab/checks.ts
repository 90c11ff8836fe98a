// The demo's story (`weir lab demo`) as assertions against a running lab with
// the guestbook deployed.
import { expect } from 'vitest';
import { curl, ping, POLICY_EXAMPLE, policyCast, policyExpected, probePolicyCells, probePolicyUntil, serviceView, waitPolicyProgrammed, type PodView, type PolicyCell } from '../../control/lab/demo.js';
import { findPodNetns, labApply, labDelete } from '../../control/lab/lab.js';
import { EXT_NS, type LabNode } from '../../control/lab/topology.js';
import { ipInCidr, nsenter, weir, weirJson } from './helpers.js';

// Enough requests that a frontend never answering is not chance: with 3
// backends picked at random, P(one gets none of 60) = 3·(2/3)^60 ≈ 1e-10.
const SPREAD_REQUESTS = 60;

/** "NAME NAMESPACE IP client=ADDR:PORT" from weir/echo. */
function echoReply(body: string) {
  const [pod, , ip, client] = body.trim().split(' ');
  return { pod, ip, client: client?.replace(/^client=/, '').split(':')[0] };
}

export async function runDemoChecks(o: { nodes: LabNode[]; all: PodView[]; client: PodView; clientNs: string }): Promise<void> {
  const { nodes, all, client, clientNs } = o;

  // Pods Running, each with an address in its node's pod CIDR, no two alike.
  for (const p of all) {
    const n = nodes.find((x) => x.name === p.node);
    expect(n, `${p.name} is on a lab node`).toBeDefined();
    expect(p.phase).toBe('Running');
    expect(ipInCidr(p.ip, n!.podCidr), `${p.name} ${p.ip} in ${n!.podCidr}`).toBe(true);
  }
  expect(new Set(all.map((p) => p.ip)).size).toBe(all.length);
  expect(new Set(all.map((p) => p.node)).size).toBe(2);

  // Every node pings every pod.
  const failedPings = nodes.flatMap((n) => all.filter((p) => !ping(n.netns, p.ip)).map((p) => `${n.name} -> ${p.name} (${p.ip})`));
  expect(failedPings).toEqual([]);

  // The client pings every pod on the other node.
  const remote = all.filter((p) => p.node !== client.node);
  expect(remote.length).toBeGreaterThan(0);
  expect(remote.filter((p) => !ping(clientNs, p.ip)).map((p) => p.name)).toEqual([]);

  // Pod to pod, direct and across nodes: the server sees the client pod's own
  // address (no NAT inside the cluster), and answers as itself.
  for (const p of all.filter((x) => x.labels.tier === 'frontend')) {
    const r = curl(clientNs, `http://${p.ip}:80/`);
    expect(r.ok, `client -> ${p.name} ${r.stderr}`).toBe(true);
    const reply = echoReply(r.stdout);
    expect(reply.pod).toBe(p.name);
    expect(reply.ip).toBe(p.ip);
    expect(reply.client).toBe(client.ip);
  }
  // And from a pod on the other node back to the client's node.
  const far = all.find((p) => p.node !== client.node && p.labels.role === 'slave') ?? all.find((p) => p.node !== client.node && p.labels.tier)!;
  const farNs = findPodNetns(far.name).netns;
  const near = all.find((p) => p.node === client.node && p.labels.tier === 'frontend');
  if (near) {
    const r = curl(farNs, `http://${near.ip}:80/`);
    expect(echoReply(r.stdout)).toEqual({ pod: near.name, ip: near.ip, client: far.ip });
  }

  // Every service VIP answers, with a body starting with one of its backends' names,
  // and the backend sees the client pod's address (no SNAT for pod → service).
  const backendsOf: Record<string, PodView[]> = {
    frontend: all.filter((p) => p.labels.tier === 'frontend'),
    'redis-master': all.filter((p) => p.labels.role === 'master'),
    'redis-slave': all.filter((p) => p.labels.role === 'slave'),
  };
  for (const [name, backends] of Object.entries(backendsOf)) {
    const s = await serviceView(name);
    const r = curl(clientNs, `http://${s.clusterIP}:${s.port}/`);
    expect(r.ok, `${name} ${s.clusterIP}:${s.port}: ${r.stderr}`).toBe(true);
    const reply = echoReply(r.stdout);
    expect(backends.map((b) => b.name)).toContain(reply.pod);
    expect(reply.client).toBe(client.ip);
  }

  // NodePort from the outside host on every node's address.
  const fe = await serviceView('frontend');
  expect(fe.nodePort).toBe(30080);
  for (const n of nodes) {
    const r = curl(EXT_NS, `http://${n.ip}:${fe.nodePort}/`);
    expect(r.ok, `ext -> ${n.ip}:${fe.nodePort}: ${r.stderr}`).toBe(true);
    expect(backendsOf.frontend.map((b) => b.name)).toContain(echoReply(r.stdout).pod);
  }

  // The frontend's requests spread over all 3 frontends, every one answered.
  const loop = nsenter(clientNs, ['sh', '-c', `for i in $(seq ${SPREAD_REQUESTS}); do curl -s --max-time 3 http://${fe.clusterIP}:${fe.port}/ | cut -d' ' -f1; echo; done`], 120_000);
  const answers = loop.stdout.split('\n').filter(Boolean);
  expect(answers.length).toBe(SPREAD_REQUESTS);
  const counts = new Map<string, number>();
  for (const a of answers) counts.set(a, (counts.get(a) ?? 0) + 1);
  expect([...counts.keys()].sort()).toEqual(backendsOf.frontend.map((b) => b.name).sort());

  // `weir lab status -o json` parses and agrees.
  const status = weirJson<{ up: boolean; nodes: Array<{ name: string; agent: string }>; pods: Array<{ name: string; ip: string; phase: string }> }>(['lab', 'status']);
  expect(status.up).toBe(true);
  expect(status.nodes.map((n) => `${n.name}:${n.agent}`)).toEqual(['node-1:ready', 'node-2:ready']);
  expect(status.pods.map((p) => `${p.name}=${p.ip}:${p.phase}`).sort()).toEqual(all.map((p) => `${p.name}=${p.ip}:Running`).sort());

  await runPolicyDemoChecks(nodes, all);
}

const cellText = (c: PolicyCell) => `${c.client.label} -> ${c.server.label}: ${c.verdict}`;

/**
 * The demo's NetworkPolicy step: guestbook-policy.yaml lets only the frontend
 * reach the redis pods. Before it every cell is allowed; after it exactly the
 * cells below; after deleting it every cell is allowed again.
 */
async function runPolicyDemoChecks(nodes: LabNode[], all: PodView[]): Promise<void> {
  const cast = policyCast(all);
  const everyoneAllowed = cast.clients.flatMap((c) => cast.servers.map((s) => `${c.label} -> ${s.label}: allowed`));
  expect((await probePolicyCells(cast)).map(cellText)).toEqual(everyoneAllowed);
  const redis = all.filter((p) => p.labels.app === 'redis');
  expect(redis.length).toBe(3);
  await labApply(POLICY_EXAMPLE);
  try {
    await waitPolicyProgrammed(all, nodes, redis.map((p) => p.name));
    expect((await probePolicyUntil(cast, policyExpected)).map(cellText)).toEqual([
      'frontend -> redis-master: allowed',
      'frontend -> redis-slave: allowed',
      'frontend -> frontend: allowed',
      'redis-slave -> redis-master: denied',
      'redis-slave -> redis-slave: denied',
      'redis-slave -> frontend: allowed',
      'client -> redis-master: denied',
      'client -> redis-slave: denied',
      'client -> frontend: allowed',
    ]);
    // `weir policy get` on the master's node reads the same thing back from its maps.
    const master = redis.find((p) => p.labels.role === 'master')!;
    const view = weirJson<{ ingress: { isolated: boolean; policies: string[] | null }; egress: { isolated: boolean } }>(['--node', master.node, 'policy', 'get', `default/${master.name}`]);
    expect(view).toMatchObject({ ingress: { isolated: true, policies: ['default/redis-from-frontend'] }, egress: { isolated: false } });
    expect(weir(['--node', master.node, 'policy', 'get', `default/${master.name}`]).stdout).toContain('redis-from-frontend');
  } finally {
    await labDelete(POLICY_EXAMPLE);
  }
  await waitPolicyProgrammed(all, nodes, []);
  expect((await probePolicyUntil(cast, () => true)).map(cellText)).toEqual(everyoneAllowed);
}
