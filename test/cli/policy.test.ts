// `weir policy get/list`, `weir identity list`, the policy steps of `weir
// trace` and `weir monitor`, against the REAL pod.o/uplink.o loaded under
// /sys/fs/bpf/wpl-cli-* with hand-filled policy maps (ipcache, ep_policy,
// policy4, policy_gen) and a policy snapshot written by the agent's own
// writer (control/policy/snapshot.ts) into a private state dir. Every trace
// verdict is checked against the datapath: the same packet runs through
// from_pod / from_uplink (BPF_PROG_TEST_RUN) and must pass or drop as the
// trace says; monitor must print the events those packets produce.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfMap, MapType, possibleCpus } from '../../native/index.js';
import * as T from '../../control/datapath/types.gen.js';
import { writePolicySnapshot, type PolicySnapshot } from '../../control/policy/snapshot.js';
import { repoRoot } from '../lib/fixtures.js';
import { requireRoot, run } from '../lib/netns.js';
import { ipToNumber } from '../lib/packet.js';
import { loadLb, NODE_IP, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, tcpPkt, udpPkt, type Lb } from '../service/harness.js';
import type { TraceResult, TraceStep } from '../../control/cli/trace.js';

const bin = join(repoRoot, 'bin', 'weir');
const built = existsSync(join(repoRoot, 'dist', 'control', 'cli', 'main.js'));
if (!built && process.env.CI) throw new Error('dist/ is not built; make test builds it before running vitest');

const CLIENT = '10.244.1.5'; // default/client, app=frontend: egress limited, ingress denied
const SERVER = '10.244.1.6'; // default/server, app=server: ingress limited
const REMOTE = '10.244.2.9'; // other/db on node 2
const GATEWAY = '10.244.1.1';
const EP_CLIENT = 11;
const EP_SERVER = 12;
const ID_FRONTEND = 300;
const ID_SERVER = 301;
const ID_DB = 302;
const ID_PARTNER = 303; // world in 203.0.113.0/24
const P_SERVER_IN = 7;
const P_CLIENT_OUT = 8;
const P_CLIENT_IN = 9; // no entries: nobody may reach the client
const GEN = 5;
const { POLICY_F_ALLOW: ALLOW, POLICY_F_L4: L4 } = T.PolicyFlags;

type Step = TraceStep;
type Trace = TraceResult;

describe.skipIf(!built || requireRoot('weir policy/trace/monitor on pinned maps'))('weir policy, trace and monitor on a pinned datapath with policy', () => {
  let lb: Lb;
  let root: string;
  const state = mkdtempSync(join(tmpdir(), 'wpl-state-'));

  const weir = (args: string[], stateDir = state) => run(bin, ['--bpffs', root, '--state-dir', stateDir, ...args], { timeoutMs: 30_000 });
  const json = async (...args: string[]) => {
    const r = await weir([...args, '-o', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout);
  };
  const trace = async (...args: string[]): Promise<Trace> => json('trace', ...args);
  const steps = (t: Trace, name: string, dir?: string) => t.steps.filter((s) => s.step === name && (dir === undefined || s.dir === dir));

  /** (policy, identity[, proto, port, bits of port]) -> allow. */
  const allow = (policy: number, identity: number, l4?: { proto: number; port: number; bits: number }) =>
    lb.maps.policy4.set(
      { prefixlen: l4 ? 80 + l4.bits : 64, policy_id: policy, identity, proto: l4?.proto ?? 0, pad: 0, port: l4?.port ?? 0 },
      { flags: ALLOW | (l4 ? L4 : 0) },
    );
  const endpoint = (addr: string, id: number, flags = 0) =>
    lb.maps.ep4.set({ addr: ipToNumber(addr) }, { ifindex: 1, endpoint_id: id, mac: Buffer.from([2, 0, 0, 0, 1, id]), node_mac: Buffer.from([2, 0, 0, 0, 2, id]), flags, identity: 0 });
  const ipcache = (prefix: string, identity: number) => {
    const [a, len] = prefix.split('/');
    lb.maps.ipcache4.set({ prefixlen: Number(len), addr: ipToNumber(a) }, { identity, flags: 0 });
  };

  const snapshot: PolicySnapshot = {
    version: 1,
    gen: GEN,
    writtenAt: new Date().toISOString(),
    node: 'node-1',
    identities: [
      { id: 1, kind: 'host', cidrs: [], key: 'host' },
      { id: ID_FRONTEND, kind: 'pod', namespace: 'default', labels: { app: 'frontend' }, cidrs: [], key: 'pod:default:app=frontend' },
      { id: ID_SERVER, kind: 'pod', namespace: 'default', labels: { app: 'server', tier: 'web' }, cidrs: [], key: 'pod:default:app=server,tier=web' },
      { id: ID_DB, kind: 'pod', namespace: 'other', labels: { app: 'db' }, cidrs: [], key: 'pod:other:app=db' },
      { id: ID_PARTNER, kind: 'world', cidrs: ['203.0.113.0/24'], key: 'world:203.0.113.0/24' },
    ],
    endpoints: [
      {
        endpointId: EP_CLIENT,
        pod: 'default/client',
        ip: CLIENT,
        ingress: { entries: [], policies: ['default/deny-all-ingress'] },
        egress: {
          entries: [
            { identity: 0, proto: 17, port: 53, endPort: 53 },
            { identity: 1, proto: 0, port: 0, endPort: 0 },
            { identity: ID_SERVER, proto: 6, port: 80, endPort: 95 },
            { identity: ID_SERVER, proto: 6, port: 8000, endPort: 8015 },
          ],
          policies: ['default/client-egress'],
        },
      },
      {
        endpointId: EP_SERVER,
        pod: 'default/server',
        ip: SERVER,
        ingress: {
          entries: [
            { identity: 0, proto: 17, port: 53, endPort: 53 },
            { identity: 1, proto: 0, port: 0, endPort: 0 },
            { identity: ID_FRONTEND, proto: 6, port: 80, endPort: 80 },
            { identity: ID_FRONTEND, proto: 6, port: 8000, endPort: 8015 },
            { identity: ID_PARTNER, proto: 6, port: 80, endPort: 80 },
          ],
          policies: ['default/allow-frontend', 'default/allow-dns'],
        },
      },
    ],
    ipcache: [],
    problems: [{ object: 'default/bad', kind: 'NetworkPolicy', field: 'spec.ingress[0].ports[0].protocol', message: 'SCTP is not supported' }],
    policyIds: { [EP_CLIENT]: { ingress_id: P_CLIENT_IN, egress_id: P_CLIENT_OUT }, [EP_SERVER]: { ingress_id: P_SERVER_IN, egress_id: 0 } },
  };

  beforeAll(async () => {
    lb = await loadLb('wpl-cli');
    const mine = readdirSync('/sys/fs/bpf').filter((n) => n.startsWith(`wpl-cli-${process.pid}-`));
    expect(mine).toHaveLength(1);
    root = join('/sys/fs/bpf', mine[0]);
    const m = lb.maps;
    m.node4.set(ipToNumber(NODE_IP), { flags: 0 });
    endpoint(CLIENT, EP_CLIENT);
    endpoint(SERVER, EP_SERVER);
    endpoint(GATEWAY, 1, T.EndpointFlags.EP_F_HOST);
    const tunnel = { node_addr: ipToNumber('192.168.77.2'), node_id: 2, node_mac: Buffer.from('020000000002', 'hex'), vtep_mac: Buffer.alloc(6) };
    m.tunnel4.set({ prefixlen: 24, addr: ipToNumber('10.244.2.0') }, tunnel);
    ipcache(`${CLIENT}/32`, ID_FRONTEND);
    ipcache(`${SERVER}/32`, ID_SERVER);
    ipcache(`${REMOTE}/32`, ID_DB);
    ipcache(`${GATEWAY}/32`, 1);
    ipcache(`${NODE_IP}/32`, 1);
    ipcache('203.0.113.0/24', ID_PARTNER);
    // Server ingress: frontend on 80 and 8000-8015 (one /12 port prefix), the host, DNS from anyone, the partner range on 80.
    allow(P_SERVER_IN, ID_FRONTEND, { proto: 6, port: 80, bits: 16 });
    allow(P_SERVER_IN, ID_FRONTEND, { proto: 6, port: 8000, bits: 12 });
    allow(P_SERVER_IN, 1);
    allow(P_SERVER_IN, 0, { proto: 17, port: 53, bits: 16 });
    allow(P_SERVER_IN, ID_PARTNER, { proto: 6, port: 80, bits: 16 });
    // Client egress: the server on 80-95, the host, DNS anywhere.
    allow(P_CLIENT_OUT, ID_SERVER, { proto: 6, port: 80, bits: 12 });
    allow(P_CLIENT_OUT, ID_SERVER, { proto: 6, port: 8000, bits: 12 });
    allow(P_CLIENT_OUT, 1);
    allow(P_CLIENT_OUT, 0, { proto: 17, port: 53, bits: 16 });
    m.epPolicy.set(EP_CLIENT, { ingress_id: P_CLIENT_IN, egress_id: P_CLIENT_OUT });
    m.epPolicy.set(EP_SERVER, { ingress_id: P_SERVER_IN, egress_id: 0 });
    m.policyGen.set(0, { gen: GEN });
    writePolicySnapshot(join(state, 'policy.msgpack'), snapshot);
  });

  afterAll(() => {
    lb?.close();
    rmSync(state, { recursive: true, force: true });
  });

  describe('policy get / list, identity list', () => {
    it('policy get NAMESPACE/NAME: isolation per direction, the policies, and the rules read back from weir_policy4 with labels', async () => {
      const v = await json('policy', 'get', 'default/server');
      expect(v).toMatchObject({ pod: 'default/server', ip: SERVER, endpointId: EP_SERVER, gen: GEN, snapshotGen: GEN, warnings: [] });
      expect(v.ingress).toMatchObject({ isolated: true, policyId: P_SERVER_IN, policies: ['default/allow-frontend', 'default/allow-dns'] });
      // LPM port prefixes decoded back to ranges, sorted by identity.
      expect(v.ingress.rows.map((r: { identity: number; peer: string; proto: string; ports: string }) => [r.identity, r.peer, r.proto, r.ports])).toEqual([
        [0, 'any peer', 'udp', '53'],
        [1, 'host (this node)', 'any', 'any'],
        [ID_FRONTEND, 'ns=default app=frontend', 'tcp', '80'],
        [ID_FRONTEND, 'ns=default app=frontend', 'tcp', '8000-8015'],
        [ID_PARTNER, 'world in 203.0.113.0/24', 'tcp', '80'],
      ]);
      expect(v.egress).toEqual({ isolated: false, policyId: 0, policies: [], rows: [] });
    });

    it('prints readable rows in table mode; a bare NAME is in namespace default', async () => {
      const r = await weir(['policy', 'get', 'server']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^pod default\/server \(10\.244\.1\.6\), endpoint 12$/m);
      expect(r.stdout).toMatch(/^ingress: isolated by default\/allow-frontend, default\/allow-dns — policy id 7$/m);
      expect(r.stdout).toMatch(/^ {2}may reach it:$/m);
      expect(r.stdout).toMatch(/^ {4}ns=default app=frontend +300 +tcp +80, 8000-8015$/m);
      expect(r.stdout).toMatch(/^ {4}world in 203\.0\.113\.0\/24 +303 +tcp +80$/m);
      expect(r.stdout).toMatch(/^egress: not isolated \(no policy selects it for egress\): it may reach anyone$/m);
      expect(r.stdout).not.toMatch(/warning/);
    });

    it('by IP: an isolated direction without entries means nobody', async () => {
      const v = await json('policy', 'get', CLIENT);
      expect(v.pod).toBe('default/client');
      expect(v.ingress).toEqual({ isolated: true, policyId: P_CLIENT_IN, policies: ['default/deny-all-ingress'], rows: [] });
      expect(v.egress.rows.map((r: { peer: string; ports: string }) => `${r.peer} ${r.ports}`)).toEqual(['any peer 53', 'host (this node) any', 'ns=default app=server tier=web 80-95', 'ns=default app=server tier=web 8000-8015']);
      const t = await weir(['policy', 'get', CLIENT]);
      expect(t.stdout).toMatch(/^ {2}may reach it: nobody \(everything to it is denied\)$/m);
    });

    it('warns when the maps and the snapshot disagree (stale snapshot), and names what differs', async () => {
      const extra = { prefixlen: 96, policy_id: P_SERVER_IN, identity: 0, proto: 6, pad: 0, port: 443 };
      lb.maps.policy4.set(extra, { flags: ALLOW | L4 });
      lb.maps.policyGen.set(0, { gen: GEN + 1 });
      lb.maps.epPolicy.set(EP_CLIENT, { ingress_id: 0, egress_id: P_CLIENT_OUT });
      try {
        const v = await json('policy', 'get', 'default/server');
        expect(v.ingress.rows).toContainEqual(expect.objectContaining({ identity: 0, peer: 'any peer', proto: 'tcp', ports: '443' }));
        expect(v.warnings).toEqual([
          `the snapshot is of policy generation ${GEN}, the maps are at ${GEN + 1}: the agent is mid-sync, down, or wrote the maps without a new snapshot`,
          'ingress: the maps and the snapshot disagree (maps lack nothing; maps have extra 0/6/443-443 — as identity/proto/ports): stale snapshot or a sync in progress',
        ]);
        const c = await json('policy', 'get', 'default/client');
        expect(c.warnings).toContain(
          'ingress: the snapshot says isolated by default/deny-all-ingress, weir_ep_policy says not isolated: stale snapshot or the agent is down',
        );
        expect(c.warnings.some((w: string) => w.startsWith(`the snapshot says endpoint ${EP_CLIENT} has policy ids ingress ${P_CLIENT_IN} / egress ${P_CLIENT_OUT}, weir_ep_policy holds 0 / ${P_CLIENT_OUT}`))).toBe(true);
        const t = await weir(['policy', 'get', 'default/server']);
        expect(t.stdout).toMatch(/^warning: ingress: the maps and the snapshot disagree/m);
      } finally {
        lb.maps.policy4.delete(extra);
        lb.maps.policyGen.set(0, { gen: GEN });
        lb.maps.epPolicy.set(EP_CLIENT, { ingress_id: P_CLIENT_IN, egress_id: P_CLIENT_OUT });
      }
    });

    it('without a snapshot: numbers only and a warning by IP; a name cannot be resolved (exit 1)', async () => {
      const none = join(state, 'none');
      const r = await weir(['policy', 'get', SERVER, '-o', 'json'], none);
      expect(r.code).toBe(0);
      const v = JSON.parse(r.stdout);
      expect(v.pod).toBe(SERVER);
      expect(v.ingress.policies).toBeNull();
      expect(v.ingress.rows.map((x: { peer: string }) => x.peer)).toContain(`identity ${ID_FRONTEND}`);
      expect(v.warnings).toEqual([`no policy snapshot at ${none}/policy.msgpack (agent not running here, or another --state-dir): names and labels unknown`]);
      const byName = await weir(['policy', 'get', 'default/server'], none);
      expect(byName.code).toBe(1);
      expect(byName.stdout).toBe('');
      expect(byName.stderr).toMatch(/^weir policy get: cannot resolve pod name 'default\/server': no policy snapshot at .*; give the pod's IP address instead\n$/);
    });

    it('bad arguments exit 2, a pod of another node or missing pins exit 1, each with a message', async () => {
      for (const [arg, msg] of [
        ['a/b/c', "POD 'a/b/c' is not a pod: give NAMESPACE/NAME, NAME (namespace default) or an IPv4 address"],
        ['Server_1', "POD 'Server_1' is not a pod: give NAMESPACE/NAME, NAME (namespace default) or an IPv4 address"],
      ]) {
        const r = await weir(['policy', 'get', arg]);
        expect({ arg, code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ arg, code: 2, stdout: '', stderr: `weir policy get: ${msg}\n` });
      }
      const remote = await weir(['policy', 'get', REMOTE]);
      expect(remote.code).toBe(1);
      expect(remote.stderr).toContain(`${REMOTE} is not a local pod endpoint of this node (no entry in weir_ep4): it is in the pod CIDR of node 192.168.77.2 (node_id 2)`);
      const gw = await weir(['policy', 'get', GATEWAY]);
      expect(gw.code).toBe(1);
      expect(gw.stderr).toContain('or it is the gateway');
      const unknown = await weir(['policy', 'get', 'default/nope']);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain('pod default/nope is not a local endpoint of this node');
      const missing = await run(bin, ['--bpffs', `${root}-none`, 'policy', 'get', SERVER]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain(`no weir maps under ${root}-none`);
    });

    it('policy list: every endpoint with its policy ids and names; identity list: the ipcache with meanings', async () => {
      const l = await json('policy', 'list');
      expect(l.endpoints).toEqual([
        { pod: 'default/client', ip: CLIENT, endpointId: EP_CLIENT, ingressId: P_CLIENT_IN, egressId: P_CLIENT_OUT, ingressPolicies: ['default/deny-all-ingress'], egressPolicies: ['default/client-egress'] },
        { pod: 'default/server', ip: SERVER, endpointId: EP_SERVER, ingressId: P_SERVER_IN, egressId: 0, ingressPolicies: ['default/allow-frontend', 'default/allow-dns'], egressPolicies: [] },
      ]);
      expect(l.policies).toEqual([
        { policyId: P_SERVER_IN, entries: 5 },
        { policyId: P_CLIENT_OUT, entries: 4 },
      ]);
      expect(l.problems).toHaveLength(1);
      const t = await weir(['policy', 'list']);
      expect(t.stdout).toMatch(/^default\/server +10\.244\.1\.6 +12 +id 7 \(default\/allow-frontend, default\/allow-dns\) +open$/m);
      expect(t.stdout).toMatch(/^problem: NetworkPolicy default\/bad spec\.ingress\[0\]\.ports\[0\]\.protocol: SCTP is not supported$/m);
      const i = await json('identity', 'list');
      expect(i.entries).toEqual([
        { prefix: `${GATEWAY}/32`, identity: 1, meaning: 'host (this node)' },
        { prefix: `${CLIENT}/32`, identity: ID_FRONTEND, meaning: 'ns=default app=frontend' },
        { prefix: `${SERVER}/32`, identity: ID_SERVER, meaning: 'ns=default app=server tier=web' },
        { prefix: `${REMOTE}/32`, identity: ID_DB, meaning: 'ns=other app=db' },
        { prefix: `${NODE_IP}/32`, identity: 1, meaning: 'host (this node)' },
        { prefix: '203.0.113.0/24', identity: ID_PARTNER, meaning: 'world in 203.0.113.0/24' },
      ]);
    });
  });

  describe('trace: the policy step agrees with the datapath', () => {
    it('allowed both ways: each lookup shown (ep_policy, ipcache, policy4) with the match; the datapath delivers and tracks the flow', async () => {
      const t = await trace(CLIENT, `${SERVER}:80`, '--sport', '40100');
      expect(t.steps.slice(t.steps.findIndex((s) => s.step === 'policy-ct')).map((s) => `${s.step}${s.dir ? `/${s.dir}` : ''}`)).toEqual([
        'policy-ct',
        'ep_policy/egress',
        'ipcache/egress',
        'policy4/egress',
        'policy/egress',
        'ep_policy/ingress',
        'ipcache/ingress',
        'policy4/ingress',
        'policy/ingress',
      ]);
      expect(steps(t, 'ep_policy', 'egress')[0]).toMatchObject({ key: EP_CLIENT, entry: { ingress_id: P_CLIENT_IN, egress_id: P_CLIENT_OUT } });
      expect(steps(t, 'ep_policy', 'egress')[0].result).toBe(`endpoint ${EP_CLIENT} (default/client) is isolated for egress: policy id ${P_CLIENT_OUT} (default/client-egress)`);
      expect(steps(t, 'ipcache', 'egress')[0]).toMatchObject({ key: `${SERVER}/32`, entry: { identity: ID_SERVER } });
      expect(steps(t, 'policy4', 'egress')[0]).toMatchObject({
        key: { policy_id: P_CLIENT_OUT, identity: ID_SERVER, proto: 'tcp', port: 80 },
        entry: { prefixlen: 92, identity: ID_SERVER, port: 80, flags: ['POLICY_F_ALLOW', 'POLICY_F_L4'] },
        result: `policy id ${P_CLIENT_OUT} allows identity ${ID_SERVER} on tcp ports 80-95`,
      });
      expect(steps(t, 'policy', 'egress')[0].result).toBe('egress allowed (match: peer identity + port)');
      expect(steps(t, 'ipcache', 'ingress')[0].result).toBe(`source ${CLIENT} is identity ${ID_FRONTEND} (ns=default app=frontend) by prefix ${CLIENT}/32`);
      expect(steps(t, 'policy', 'ingress')[0].result).toBe('ingress allowed (match: peer identity + port)');
      expect(t.verdict).toBe(`delivered to local pod (redirect_peer to ifindex 1) -> ${SERVER}:80`);
      const r = await lb.fromPod(tcpPkt({ src: CLIENT, dst: SERVER, sport: 40100, dport: 80 }));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      // The datapath's policy CT entry, now shown as a tracked flow of the current generation.
      const again = await trace(CLIENT, `${SERVER}:80`, '--sport', '40100');
      expect(steps(again, 'policy-ct')[0]).toMatchObject({ entry: { policy_gen: GEN, flags: ['CT_F_POLICY_ALLOWED'] } });
      expect(steps(again, 'policy-ct')[0].result).toBe(`tracked flow allowed at policy generation ${GEN} (the current one): passes without a policy lookup`);
    });

    it('denied ingress: both policy4 lookups miss and the verdict says who denies what; the datapath drops it', async () => {
      const t = await trace(CLIENT, `${SERVER}:81`, '--sport', '40101');
      expect(steps(t, 'policy', 'egress')[0].result).toBe('egress allowed (match: peer identity + port)');
      expect(steps(t, 'policy4', 'ingress').map((s) => s.result)).toEqual([
        `no entry of policy id ${P_SERVER_IN} for identity ${ID_FRONTEND} on tcp/81: try ID_ANY`,
        `no entry of policy id ${P_SERVER_IN} for any peer on tcp/81`,
      ]);
      const why = `endpoint ${EP_SERVER} (default/server): policy id ${P_SERVER_IN} (default/allow-frontend, default/allow-dns) allows nothing for source ${CLIENT} = identity ${ID_FRONTEND} (ns=default app=frontend) on tcp/81`;
      expect(steps(t, 'policy', 'ingress')[0].result).toBe(`POLICY DENIED INGRESS: ${why}`);
      expect(t.verdict).toBe(`dropped: policy denied ingress (${why}) -> ${SERVER}:81`);
      const r = await lb.fromPod(tcpPkt({ src: CLIENT, dst: SERVER, sport: 40101, dport: 81 }));
      expect(r.retval).toBe(TC_ACT_SHOT);
      // Inside the 8000-8015 prefix both ways: allowed, as the datapath agrees.
      const inRange = await trace(CLIENT, `${SERVER}:8007`, '--sport', '40102');
      expect(inRange.verdict).toMatch(/^delivered to local pod/);
      expect(steps(inRange, 'policy4', 'ingress')[0].entry).toMatchObject({ prefixlen: 92, port: 8000 });
      expect((await lb.fromPod(tcpPkt({ src: CLIENT, dst: SERVER, sport: 40102, dport: 8007 }))).retval).toBe(TC_ACT_REDIRECT);
      // Just past it: 8016 is denied.
      expect((await trace(CLIENT, `${SERVER}:8016`, '--sport', '40104')).verdict).toMatch(/^dropped: policy denied egress/);
      expect((await lb.fromPod(tcpPkt({ src: CLIENT, dst: SERVER, sport: 40104, dport: 8016 }))).retval).toBe(TC_ACT_SHOT);
    });

    it('denied egress to a remote pod: the verdict names the egress policy and the peer; the datapath drops it', async () => {
      const t = await trace(CLIENT, `${REMOTE}:5432`, '--sport', '40103');
      expect(steps(t, 'ipcache', 'egress')[0].result).toBe(`destination ${REMOTE} is identity ${ID_DB} (ns=other app=db) by prefix ${REMOTE}/32`);
      expect(t.verdict).toBe(
        `dropped: policy denied egress (endpoint ${EP_CLIENT} (default/client): policy id ${P_CLIENT_OUT} (default/client-egress) allows nothing for destination ${REMOTE} = identity ${ID_DB} (ns=other app=db) on tcp/5432) -> ${REMOTE}:5432`,
      );
      // Dropped here, so nothing about the remote node's ingress.
      expect(steps(t, 'policy', 'ingress')).toEqual([]);
      expect((await lb.fromPod(tcpPkt({ src: CLIENT, dst: REMOTE, sport: 40103, dport: 5432 }))).retval).toBe(TC_ACT_SHOT);
    });

    it('ID_ANY entries: DNS to anywhere passes egress with match "any peer, this port"', async () => {
      const t = await trace(CLIENT, '8.8.8.8:53/udp', '--sport', '5353');
      expect(steps(t, 'ipcache', 'egress')[0]).toMatchObject({ entry: null, result: 'destination 8.8.8.8 has no ipcache entry: identity 2 (world (outside the cluster))' });
      expect(steps(t, 'policy4', 'egress').map((s) => (s.key as { identity: number }).identity)).toEqual([2, 0]);
      expect(steps(t, 'policy', 'egress')[0].result).toBe('egress allowed (match: any peer, this port)');
      expect((await lb.fromPod(udpPkt({ src: CLIENT, dst: '8.8.8.8', sport: 5353, dport: 53 }))).retval).toBe(TC_ACT_OK);
    });

    it('a reply of a tracked flow passes an ingress that denies new flows; a new flow the other way is dropped', async () => {
      // Reply of the client -> server:80 flow the first test ran through the datapath.
      const reply = await trace(SERVER, `${CLIENT}:40100`, '--sport', '80');
      expect(steps(reply, 'policy-ct')[0].result).toBe('the reversed tuple is a tracked flow: this packet is a reply and passes');
      expect(steps(reply, 'policy', 'ingress')[0].result).toMatch(/^POLICY DENIED INGRESS: endpoint 11 \(default\/client\): policy id 9 \(default\/deny-all-ingress\) allows nothing/);
      expect(reply.steps[reply.steps.length - 1].result).toMatch(/^this packet passes anyway as part of a tracked flow \(a reply\); a new flow would be dropped: policy denied ingress/);
      expect(reply.verdict).toBe(`delivered to local pod (redirect_peer to ifindex 1) -> ${CLIENT}:40100`);
      expect((await lb.fromPod(tcpPkt({ src: SERVER, dst: CLIENT, sport: 80, dport: 40100 }, ['SYN', 'ACK']))).retval).toBe(TC_ACT_REDIRECT);
      const fresh = await trace(SERVER, `${CLIENT}:40100`, '--sport', '12345');
      expect(fresh.verdict).toMatch(/^dropped: policy denied ingress \(endpoint 11 \(default\/client\)/);
      expect((await lb.fromPod(tcpPkt({ src: SERVER, dst: CLIENT, sport: 12345, dport: 40100 }))).retval).toBe(TC_ACT_SHOT);
    });

    it('from the uplink: the partner range reaches the server on 80, the rest of the world does not', async () => {
      const ok = await trace('203.0.113.9', `${SERVER}:80`, '--sport', '50000');
      expect(steps(ok, 'ep_policy', 'egress')).toEqual([]);
      expect(steps(ok, 'ipcache', 'ingress')[0]).toMatchObject({ key: '203.0.113.0/24', entry: { identity: ID_PARTNER } });
      expect(ok.verdict).toMatch(/^delivered to local pod/);
      expect((await lb.fromUplink(tcpPkt({ src: '203.0.113.9', dst: SERVER, sport: 50000, dport: 80 }))).retval).toBe(TC_ACT_REDIRECT);
      const no = await trace('198.51.100.1', `${SERVER}:80`, '--sport', '50001');
      expect(no.verdict).toMatch(/^dropped: policy denied ingress \(.* source 198\.51\.100\.1 = identity 2 \(world \(outside the cluster\)\) on tcp\/80\)/);
      expect((await lb.fromUplink(tcpPkt({ src: '198.51.100.1', dst: SERVER, sport: 50001, dport: 80 }))).retval).toBe(TC_ACT_SHOT);
    });

    it('a destination on another lab node: says which node enforces its ingress and how to trace (or policy get) there', async () => {
      // A lab layout: this node's pins and a second node's, side by side under one base (WEIR_LAB_PIN_BASE).
      const other = `wpl-node2-${process.pid}`;
      const node4 = BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 4, maxEntries: 4, name: 'weir_node4' });
      const k = Buffer.alloc(4);
      k.writeUInt32BE(ipToNumber('192.168.77.2'));
      node4.update(k, Buffer.alloc(4));
      const dir = join('/sys/fs/bpf', other);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
      node4.pin(join(dir, 'weir_node4'));
      try {
        const env = { ...process.env, WEIR_LAB_PIN_BASE: '/sys/fs/bpf' };
        const r = await run(bin, ['--node', root.slice('/sys/fs/bpf/'.length), '--state-dir', state, 'trace', SERVER, `${REMOTE}:5432`, '-o', 'json'], { env, timeoutMs: 30_000 });
        expect(r.stderr).toBe('');
        const t = JSON.parse(r.stdout) as Trace;
        expect(steps(t, 'policy', 'ingress')[0].result).toBe(
          `ingress of ${REMOTE} is enforced by node 192.168.77.2 (node_id 2) with its own identities and policy maps: trace there: weir --node ${other} trace ${SERVER} ${REMOTE}:5432/tcp`,
        );
        expect(steps(t, 'ep_policy', 'egress')[0].result).toBe(`endpoint ${EP_SERVER} (default/server) is not isolated for egress (no policy selects it): allowed`);
        expect(t.verdict).toBe(`VXLAN to node 192.168.77.2 (node_id 2) -> ${REMOTE}:5432`);
        // policy get of that pod here names the node to ask.
        const g = await run(bin, ['--node', root.slice('/sys/fs/bpf/'.length), '--state-dir', state, 'policy', 'get', REMOTE], { env, timeoutMs: 30_000 });
        expect(g.code).toBe(1);
        expect(g.stderr).toContain(`whose agent enforces its policy — run this there (weir --node ${other} policy get ${REMOTE})`);
      } finally {
        node4.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('table mode shows the direction of each policy step', async () => {
      const r = await weir(['trace', CLIENT, `${SERVER}:81`]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^\d+\. ipcache \(ingress\): source 10\.244\.1\.5 is identity 300 \(ns=default app=frontend\)/m);
      expect(r.stdout).toMatch(/^ {3}weir_policy4 \[\{"policy_id":7,"identity":300,"proto":"tcp","port":81\}\] = \(none\)$/m);
      expect(r.stdout).toMatch(/^verdict: dropped: policy denied ingress/m);
    });
  });

  describe('monitor', () => {
    /** Starts `weir monitor ARGS`; resolves once it listens. */
    const startMonitor = async (args: string[]) => {
      const child = spawn(bin, ['--bpffs', root, '--state-dir', state, 'monitor', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      const exited = new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`monitor did not start: ${stderr}`)), 20_000);
        child.stderr.on('data', (d) => {
          stderr += d;
          if (stderr.includes('listening on')) {
            clearTimeout(t);
            resolve();
          }
        });
        child.on('exit', () => reject(new Error(`monitor exited: ${stderr}`)));
      });
      return {
        done: async () => {
          const code = await exited;
          return { code, stdout, stderr };
        },
      };
    };

    it('prints the drop event of a packet the datapath drops (JSON, one object per line), then a summary', async () => {
      const mon = await startMonitor(['-o', 'json', '--type', 'drop', '--count', '1', '--duration', '20']);
      const before = Date.now();
      // An allowed packet first (verdict events only, filtered out), then a denied one.
      expect((await lb.fromPod(tcpPkt({ src: CLIENT, dst: SERVER, sport: 40200, dport: 80 }))).retval).toBe(TC_ACT_REDIRECT);
      expect((await lb.fromPod(tcpPkt({ src: CLIENT, dst: SERVER, sport: 40201, dport: 81 }))).retval).toBe(TC_ACT_SHOT);
      const r = await mon.done();
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatchObject({
        type: 'drop',
        reason: 'policy denied ingress',
        reasonCode: T.WeirReason.REASON_POLICY_DENIED_INGRESS,
        dir: 'ingress',
        proto: 'tcp',
        src: CLIENT,
        sport: 40201,
        dst: SERVER,
        dport: 81,
        endpointId: EP_SERVER,
        endpoint: 'default/server',
      });
      expect(Math.abs(Date.parse(lines[0].time) - before)).toBeLessThan(10_000);
      expect(lines[1]).toMatchObject({ type: 'summary', shown: 1 });
    });

    it('policy verdicts in table mode: direction, peer labels, match and policy id; --pod filters; suppressed events are summed over CPUs', async () => {
      const mon = await startMonitor(['--type', 'policy-verdict', '--pod', 'default/server', '--count', '2', '--duration', '20']);
      // Not about the server: filtered out.
      await lb.fromPod(udpPkt({ src: CLIENT, dst: '8.8.4.4', sport: 5400, dport: 53 }));
      // Suppressed events appear in the pinned per-CPU weir_event_limit (as the datapath counts them).
      const limit = lb.maps.eventLimit;
      const k = Buffer.alloc(4);
      const cur = limit.lookup(k)!;
      const v = Buffer.from(cur);
      const stride = 24;
      v.writeBigUInt64LE(v.readBigUInt64LE(16) + 7n, 16);
      if (possibleCpus() > 1) v.writeBigUInt64LE(v.readBigUInt64LE(stride + 16) + 5n, stride + 16);
      limit.update(k, v);
      const added = possibleCpus() > 1 ? 12 : 7;
      expect((await lb.fromPod(tcpPkt({ src: CLIENT, dst: SERVER, sport: 40300, dport: 80 }))).retval).toBe(TC_ACT_REDIRECT);
      const r = await mon.done();
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines).toHaveLength(3);
      expect(lines[0]).toMatch(
        new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  POLICY-VERDICT  allowed  egress  ${CLIENT}:40300 -> ${SERVER}:80 tcp  endpoint ${EP_CLIENT} \\(default/client\\)  peer ${ID_SERVER} \\(ns=default app=server tier=web\\)  match: peer identity \\+ port  policy ${P_CLIENT_OUT}$`),
      );
      expect(lines[1]).toMatch(/ {2}allowed {2}ingress {2}.* {2}endpoint 12 \(default\/server\) {2}peer 300 \(ns=default app=frontend\) {2}match: peer identity \+ port {2}policy 7$/);
      expect(lines[2]).toBe(`2 events shown; ${added} suppressed by the rate limit while monitoring`);
    });

    it('reports suppressed events every 5 s while running (JSON)', async () => {
      const mon = await startMonitor(['-o', 'json', '--type', 'drop', '--pod', '10.9.9.9', '--duration', '6']);
      const k = Buffer.alloc(4);
      const v = Buffer.from(lb.maps.eventLimit.lookup(k)!);
      v.writeBigUInt64LE(v.readBigUInt64LE(16) + 40n, 16);
      lb.maps.eventLimit.update(k, v);
      const r = await mon.done();
      expect(r.code).toBe(0);
      expect(r.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([
        { type: 'suppressed', events: 40, seconds: 5 },
        { type: 'summary', shown: 0, suppressed: 40, skippedBacklog: expect.any(Number) },
      ]);
    });

    it('--backlog prints events from before it started; the default skips them', async () => {
      expect((await lb.fromPod(tcpPkt({ src: CLIENT, dst: REMOTE, sport: 40400, dport: 5432 }))).retval).toBe(TC_ACT_SHOT);
      const mon = await startMonitor(['-o', 'json', '--backlog', '--type', 'drop', '--pod', REMOTE, '--count', '1', '--duration', '10']);
      const r = await mon.done();
      const first = JSON.parse(r.stdout.split('\n')[0]);
      expect(first).toMatchObject({ type: 'drop', reason: 'policy denied egress', dir: 'egress', dst: REMOTE, dport: 5432, endpoint: 'default/client' });
      // Without --backlog an old event is skipped: nothing within a second.
      expect((await lb.fromPod(tcpPkt({ src: CLIENT, dst: REMOTE, sport: 40401, dport: 5432 }))).retval).toBe(TC_ACT_SHOT);
      const quiet = await startMonitor(['-o', 'json', '--type', 'drop', '--duration', '1']);
      const q = await quiet.done();
      expect(q.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([{ type: 'summary', shown: 0, suppressed: 0, skippedBacklog: expect.any(Number) }]);
    });

    it('bad arguments exit 2; missing pins exit 1', async () => {
      for (const [args, msg] of [
        [['--type', 'nope'], "--type 'nope' is not one of drop, policy-verdict, trace, all"],
        [['--count', '0'], "--count '0' is not a positive whole number"],
        [['--duration', 'x'], "--duration 'x' is not a positive number of seconds"],
        [['--pod', 'a/b/c'], "--pod 'a/b/c' is not a pod: give NAMESPACE/NAME, NAME (namespace default) or an IPv4 address"],
      ] as const) {
        const r = await weir(['monitor', ...args]);
        expect({ args, code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ args, code: 2, stdout: '', stderr: `weir monitor: ${msg}\n` });
      }
      const missing = await run(bin, ['--bpffs', `${root}-none`, 'monitor', '--count', '1']);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain(`no weir maps under ${root}-none`);
    });
  });
});
