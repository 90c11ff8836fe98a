// `weir trace` against a real pinned datapath: pod.o and uplink.o loaded by
// the loader under /sys/fs/bpf/h13-*, services, backends, endpoints and
// tunnels written through the typed maps, `weir trace -o json` read back step
// by step. Where the program can run (BPF_PROG_TEST_RUN), the same packet is
// sent through from_pod / from_uplink and the trace must name the backend and
// route the datapath actually used.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCollectionSpec, type Collection } from '../../loader/index.js';
import { BpfMap } from '../../native/index.js';
import { typedMaps, type DatapathMaps } from '../../control/datapath/maps.js';
import { flowHash } from '../../control/datapath/flowhash.js';
import { maglevTable, MAGLEV_M_DEFAULT } from '../../control/service/maglev.js';
import { PinnedMaglev } from '../../control/service/maps.js';
import * as T from '../../control/datapath/types.gen.js';
import { bpfObject } from '../../control/paths.js';
import { repoRoot } from '../lib/fixtures.js';
import { requireRoot, run } from '../lib/netns.js';
import { ipToNumber, parsePacket } from '../lib/packet.js';
import { setBackend, setEndpoint, setService, tcpPkt, udpPkt, TCP, UDP, TC_ACT_OK, TC_ACT_REDIRECT } from '../service/harness.js';
import type { TraceResult, TraceStep } from '../../control/cli/trace.js';

const bin = join(repoRoot, 'bin', 'weir');
const built = existsSync(join(repoRoot, 'dist', 'control', 'cli', 'main.js'));
if (!built && process.env.CI) throw new Error('dist/ is not built; make test builds it before running vitest');

const be32 = (ip: string) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ipToNumber(ip));
  return b;
};

type Step = TraceStep;
type Trace = TraceResult;

const NODE_IP = '192.168.1.1';
const VIP_LOCAL = '10.96.0.10'; // random, one local backend
const VIP_REMOTE = '10.96.0.11'; // random, one backend on node 2
const VIP_MAGLEV = '10.96.0.12'; // maglev over a local and a remote backend
const VIP_EMPTY = '10.96.0.13'; // no backends
const CLIENT = '10.244.1.5';

describe.skipIf(!built || requireRoot('weir trace on pinned maps'))('weir trace on a pinned datapath', () => {
  const root = `/sys/fs/bpf/h13-trace-${process.pid}`;
  let pod: Collection;
  let uplink: Collection;
  let maps: DatapathMaps;
  let maglev: Uint32Array; // slot -> backend id, as written

  const weir = (args: string[]) => run(bin, ['--bpffs', root, ...args], { timeoutMs: 30_000 });
  const trace = async (...args: string[]): Promise<Trace> => {
    const r = await weir(['trace', ...args, '-o', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout);
  };
  const step = (t: Trace, name: string) => {
    const s = t.steps.filter((x) => x.step === name);
    expect(s.length, `steps named ${name}`).toBeGreaterThan(0);
    return s[s.length - 1];
  };
  const fromPod = async (data: Buffer) => {
    const r = await pod.programs.from_pod.testRun({ data });
    return { retval: r.retval, p: parsePacket(r.data) };
  };

  beforeAll(async () => {
    mkdirSync(root, { recursive: true });
    // This node owns 10.244.1.0/24 of 10.244.0.0/16 (route.h's constants).
    const constants = {
      NODE_IP: be32(NODE_IP),
      NODE_ID: 1,
      UPLINK_IFINDEX: 1,
      POD_CIDR: be32('10.244.1.0'),
      POD_CIDR_MASK: be32('255.255.255.0'),
      CLUSTER_CIDR: be32('10.244.0.0'),
      CLUSTER_CIDR_MASK: be32('255.255.0.0'),
      GATEWAY_IP: be32('10.244.1.1'),
    };
    pod = await loadCollectionSpec(bpfObject('pod')).load({ pinRoot: root, constants });
    uplink = await loadCollectionSpec(bpfObject('uplink')).load({ pinRoot: root, constants });
    maps = typedMaps((n) => BpfMap.fromPin(join(root, n)));

    maps.node4.set(ipToNumber(NODE_IP), { flags: 0 });
    setEndpoint(maps, CLIENT, 1); // the client pod (ifindex 1: lo, so test runs can redirect)
    setEndpoint(maps, '10.244.1.6', 1);
    maps.ep4.set({ addr: ipToNumber('10.244.1.1') }, { ifindex: 1, endpoint_id: 1, mac: Buffer.alloc(6), node_mac: Buffer.alloc(6), flags: T.EndpointFlags.EP_F_HOST, identity: 0 });
    const tunnel = { node_addr: ipToNumber('192.168.1.2'), node_id: 2, node_mac: Buffer.from('020000000002', 'hex'), vtep_mac: Buffer.alloc(6) };
    maps.tunnel4.set({ prefixlen: 24, addr: ipToNumber('10.244.2.0') }, tunnel);
    maps.tunnel4.set({ prefixlen: 32, addr: ipToNumber('192.168.1.2') }, tunnel); // the per-node /32

    setBackend(maps, { id: 11, addr: '10.244.1.6', port: 8080, local: true, nodeId: 1 });
    setBackend(maps, { id: 12, addr: '10.244.2.7', port: 8080, local: false, nodeId: 2 });
    setBackend(maps, { id: 13, addr: '10.244.2.8', port: 8443, local: false, nodeId: 2, terminating: true });
    setService(maps, { id: 1, addr: VIP_LOCAL, port: 80, backends: [11] });
    setService(maps, { id: 2, addr: VIP_REMOTE, port: 80, backends: [12] });
    setService(maps, { id: 3, addr: VIP_MAGLEV, port: 443, backends: [11, 13], algorithm: T.LbAlgorithm.LB_ALG_MAGLEV });
    setService(maps, { id: 4, addr: '0.0.0.0', port: 30080, backends: [12], flags: T.SvcFlags.SVC_F_NODEPORT });
    setService(maps, { id: 5, addr: VIP_EMPTY, port: 53, proto: UDP, backends: [] });
    // The Maglev table as the reconciler builds it (identities -> indices -> backend ids).
    const ids = [11, 13];
    maglev = Uint32Array.from(maglevTable(['10.244.1.6:8080/6', '10.244.2.8:8443/6'], MAGLEV_M_DEFAULT), (i) => ids[i]);
    new PinnedMaglev(maps.maglev).replace(3, maglev);
  });

  afterAll(() => {
    maps?.close();
    pod?.close();
    uplink?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('ClusterIP -> local backend: from_pod, new flow, random slot, redirect_peer into the backend pod', async () => {
    const t = await trace(CLIENT, `${VIP_LOCAL}:80`, '--sport', '40001');
    expect(t.packet).toEqual({ src: CLIENT, dst: VIP_LOCAL, sport: 40001, dport: 80, proto: 'tcp' });
    expect(t.steps.map((s) => s.step)).toEqual(['source', 'conntrack', 'service', 'backend', 'route', 'policy-ct', 'ep_policy', 'ep_policy']);
    expect(step(t, 'source')).toMatchObject({ map: 'weir_ep4', key: { addr: CLIENT }, entry: { ifindex: 1 } });
    expect(t.program).toBe('from_pod (tc ingress of ifindex 1)');
    expect(step(t, 'conntrack')).toMatchObject({ map: 'weir_ct4', entry: null, result: 'no entry: a new flow' });
    expect(step(t, 'service')).toMatchObject({
      map: 'weir_svc4',
      key: { addr: VIP_LOCAL, port: 80, proto: 'tcp', scope: 'SVC_SCOPE_EXT' },
      entry: { svc_id: 1, count: 1, flags: ['SVC_F_CLUSTERIP'], algorithm: 'LB_ALG_RANDOM' },
    });
    expect(step(t, 'backend')).toMatchObject({ map: 'weir_lb_slots', entry: [{ slot: 1, backend_id: 11 }] });
    expect(step(t, 'route')).toMatchObject({ map: 'weir_ep4', key: { addr: '10.244.1.6' } });
    // No policy selects either pod: both sides say so (no weir_ep_policy entry).
    expect(t.steps.filter((s) => s.step === 'ep_policy').map((s) => [s.dir, s.entry, s.result.replace(/endpoint \d+/, 'endpoint N')])).toEqual([
      ['egress', null, `endpoint N (${CLIENT}) is not isolated for egress (no policy selects it): allowed`],
      ['ingress', null, 'endpoint N (10.244.1.6) is not isolated for ingress (no policy selects it): allowed'],
    ]);
    expect(step(t, 'policy-ct')).toMatchObject({ map: 'weir_ct4', entry: null, result: 'no policy entry for this tuple or its reply: a new flow, decided below' });
    expect(t.verdict).toBe('DNAT to 10.244.1.6:8080; delivered to local pod (redirect_peer to ifindex 1) -> 10.244.1.6:8080 (backend 11)');
    // The datapath agrees: DNAT to that backend and a redirect.
    const r = await fromPod(tcpPkt({ src: CLIENT, dst: VIP_LOCAL, sport: 40001, dport: 80 }));
    expect(r.retval).toBe(TC_ACT_REDIRECT);
    expect(r.p.ipv4?.dst).toBe('10.244.1.6');
  });

  it('follows the established flow the datapath created (conntrack step)', async () => {
    // The previous test's packet created the flow's entries.
    const t = await trace(CLIENT, `${VIP_LOCAL}:80`, '--sport', '40001');
    expect(step(t, 'conntrack')).toMatchObject({
      key: { saddr: CLIENT, daddr: VIP_LOCAL, sport: 40001, dport: 80, proto: 'tcp', flags: ['CT_KEY_SERVICE'] },
      entry: { backend_id: 11, flags: ['CT_F_SERVICE'] },
    });
    expect(step(t, 'conntrack').result).toMatch(/^established service flow: follows backend 11 10\.244\.1\.6:8080/);
    expect(t.steps.map((s) => s.step)).toEqual(['source', 'conntrack', 'route', 'policy-ct', 'ep_policy', 'ep_policy']);
    // The datapath tracked the flow for policy too (not isolated: tracked anyway, at generation 0).
    expect(step(t, 'policy-ct')).toMatchObject({ key: { saddr: CLIENT, daddr: '10.244.1.6', sport: 40001, dport: 8080, flags: ['CT_KEY_POLICY'] }, entry: { policy_gen: 0 } });
    // Without --sport: the flows from this source to that frontend are listed.
    const all = await trace(CLIENT, `${VIP_LOCAL}:80`);
    expect(step(all, 'conntrack').entry).toEqual([expect.objectContaining({ sport: 40001, backend_id: 11 })]);
  });

  it('ClusterIP -> remote backend: VXLAN to the node owning its pod CIDR (LPM over weir_tunnel4)', async () => {
    const t = await trace(CLIENT, `${VIP_REMOTE}:80`, '--sport', '40002');
    expect(step(t, 'backend').entry).toEqual([{ slot: 1, backend_id: 12 }]);
    expect(step(t, 'backend').result).toContain('backend 12 10.244.2.7:8080 (active, on node_id 2)');
    expect(step(t, 'route')).toMatchObject({ map: 'weir_tunnel4', key: '10.244.2.0/24', entry: { node_addr: '192.168.1.2', node_id: 2 } });
    expect(t.verdict).toBe('DNAT to 10.244.2.7:8080; VXLAN to node 192.168.1.2 (node_id 2) -> 10.244.2.7:8080 (backend 12)');
    const r = await fromPod(tcpPkt({ src: CLIENT, dst: VIP_REMOTE, sport: 40002, dport: 80 }));
    expect(r.retval).toBe(TC_ACT_REDIRECT);
    expect(r.p.ipv4?.dst).toBe('192.168.1.2'); // outer header: encapsulated to node 2
  });

  it('Maglev with --sport names exactly the backend of the table slot the flow hash picks, as the datapath does', async () => {
    const src = ipToNumber(CLIENT);
    const dst = ipToNumber(VIP_MAGLEV);
    // One source port landing on each backend.
    const ports = new Map<number, number>();
    for (let sp = 41000; ports.size < 2; sp++) {
      const id = maglev[flowHash(src, dst, sp, 443, TCP) % MAGLEV_M_DEFAULT];
      if (!ports.has(id)) ports.set(id, sp);
    }
    for (const [id, sp] of ports) {
      const slot = flowHash(src, dst, sp, 443, TCP) % MAGLEV_M_DEFAULT;
      const t = await trace(CLIENT, `${VIP_MAGLEV}:443/tcp`, '--sport', String(sp));
      expect(step(t, 'backend')).toMatchObject({ map: 'weir_maglev', key: { svc_id: 3, slot }, entry: { backend_id: id } });
      const addr = id === 11 ? '10.244.1.6' : '10.244.2.8';
      expect(t.verdict.startsWith(`DNAT to ${addr}:`)).toBe(true);
      const r = await fromPod(tcpPkt({ src: CLIENT, dst: VIP_MAGLEV, sport: sp, dport: 443 }));
      const ct = maps.ct4.get({ saddr: src, daddr: dst, sport: sp, dport: 443, proto: TCP, flags: T.CtKeyFlags.CT_KEY_SERVICE, pad: 0 });
      expect(ct?.backend_id).toBe(id); // the datapath chose the same backend
      expect(r.retval).toBe(TC_ACT_REDIRECT);
    }
    // Without --sport: the candidates with their share of the table.
    const t = await trace(CLIENT, `${VIP_MAGLEV}:443`);
    const counts = [11, 13].map((id) => maglev.filter((x) => x === id).length);
    expect(step(t, 'backend').entry).toEqual(
      expect.arrayContaining([
        { backend_id: 11, slots: counts[0], share: counts[0] / MAGLEV_M_DEFAULT },
        { backend_id: 13, slots: counts[1], share: counts[1] / MAGLEV_M_DEFAULT },
      ]),
    );
    expect(step(t, 'backend').result).toContain('backend 13 10.244.2.8:8443 (terminating, on node_id 2)');
    expect(t.steps.filter((s) => s.step === 'route')).toHaveLength(2);
    expect(t.verdict).toMatch(/^one of 2 backends: /);
  });

  it('ClientIP affinity: a fresh affinity entry wins over the slots, as in the datapath', async () => {
    const vip = '10.96.0.14';
    setService(maps, { id: 6, addr: vip, port: 80, backends: [11, 12], flags: T.SvcFlags.SVC_F_CLUSTERIP | T.SvcFlags.SVC_F_AFFINITY, affinityTimeout: 3600 });
    const none = await trace(CLIENT, `${vip}:80`);
    expect(step(none, 'affinity')).toMatchObject({ map: 'weir_affinity4', key: { client: CLIENT, svc_id: 6 }, entry: null });
    expect(step(none, 'backend').entry).toEqual([{ slot: 1, backend_id: 11 }, { slot: 2, backend_id: 12 }]);
    maps.affinity4.set({ client: ipToNumber(CLIENT), svc_id: 6 }, { last_used: process.hrtime.bigint(), backend_id: 12, pad: 0 });
    const t = await trace(CLIENT, `${vip}:80`, '--sport', '40010');
    expect(step(t, 'affinity')).toMatchObject({ entry: { backend_id: 12 } });
    expect(t.steps.map((x) => x.step)).toEqual(['source', 'conntrack', 'service', 'affinity', 'route', 'policy-ct', 'ep_policy', 'policy']);
    expect(t.verdict).toMatch(/^DNAT to 10\.244\.2\.7:8080; VXLAN/);
    await fromPod(tcpPkt({ src: CLIENT, dst: vip, sport: 40010, dport: 80 }));
    const ct = maps.ct4.get({ saddr: ipToNumber(CLIENT), daddr: ipToNumber(vip), sport: 40010, dport: 80, proto: TCP, flags: T.CtKeyFlags.CT_KEY_SERVICE, pad: 0 });
    expect(ct?.backend_id).toBe(12);
  });

  it('a service with no backends is rejected', async () => {
    const t = await trace(CLIENT, `${VIP_EMPTY}:53/udp`);
    expect(step(t, 'service')).toMatchObject({ key: { addr: VIP_EMPTY, port: 53, proto: 'udp' }, entry: { svc_id: 5, count: 0 } });
    expect(t.verdict).toBe('rejected (no ready backends): TCP RST / ICMP port unreachable');
    expect(t.steps.map((s) => s.step)).toEqual(['source', 'conntrack', 'service']);
    // The datapath answers with an ICMP port unreachable back to the client.
    const r = await fromPod(udpPkt({ src: CLIENT, dst: VIP_EMPTY, sport: 5000, dport: 53 }));
    expect(r.p.icmpv4).toMatchObject({ type: 3, code: 3 });
    expect(r.p.ipv4?.dst).toBe(CLIENT);
  });

  it('pod -> remote pod without a service: no translation, VXLAN to its node', async () => {
    const t = await trace(CLIENT, '10.244.2.9:8080', '--sport', '40003');
    expect(step(t, 'service')).toMatchObject({ entry: null, result: '10.244.2.9:8080/tcp is not a service frontend: no translation' });
    expect(step(t, 'route')).toMatchObject({ map: 'weir_tunnel4', key: '10.244.2.0/24' });
    expect(t.verdict).toBe('VXLAN to node 192.168.1.2 (node_id 2) -> 10.244.2.9:8080');
    const r = await fromPod(tcpPkt({ src: CLIENT, dst: '10.244.2.9', sport: 40003, dport: 8080 }));
    expect(r.retval).toBe(TC_ACT_REDIRECT);
    expect(r.p.ipv4?.dst).toBe('192.168.1.2');
  });

  it('outside destinations and other nodes\' addresses go to the node stack, masqueraded', async () => {
    const t = await trace(CLIENT, '8.8.8.8:53/udp');
    expect(step(t, 'route')).toMatchObject({ map: 'weir_tunnel4', key: '8.8.8.8', entry: null });
    expect(t.verdict).toBe('outside the cluster: node stack (masqueraded) -> 8.8.8.8:53');
    const r = await fromPod(udpPkt({ src: CLIENT, dst: '8.8.8.8', sport: 5001, dport: 53 }));
    expect(r.retval).toBe(TC_ACT_OK);
    // Node 2's own address matches its /32, which carries only NodePort SNAT replies.
    const n = await trace(CLIENT, '192.168.1.2:22');
    expect(step(n, 'route')).toMatchObject({ map: 'weir_tunnel4', key: '192.168.1.2/32' });
    expect(n.verdict).toBe('node stack (masqueraded) -> 192.168.1.2:22');
    const nr = await fromPod(tcpPkt({ src: CLIENT, dst: '192.168.1.2', sport: 40004, dport: 22 }));
    expect(nr.retval).toBe(TC_ACT_OK);
  });

  it('NodePort from an outside client: from_uplink, addr-0 frontend, remote backend SNATed and tunnelled', async () => {
    const t = await trace('203.0.113.9', `${NODE_IP}:30080`, '--sport', '50000');
    expect(t.program).toBe('from_uplink');
    expect(step(t, 'source')).toMatchObject({ entry: null });
    expect(step(t, 'service')).toMatchObject({ key: { addr: '0.0.0.0', port: 30080 }, entry: { svc_id: 4, flags: ['SVC_F_NODEPORT'] } });
    expect(step(t, 'service').result).toContain(`NodePort (${NODE_IP} is in weir_node4)`);
    expect(t.verdict).toBe(
      'DNAT to 10.244.2.7:8080; VXLAN to node 192.168.1.2 (node_id 2) -> 10.244.2.7:8080 (backend 12); remote NodePort backend: source SNATed to this node (port 61000+)',
    );
    const r = await uplink.programs.from_uplink.testRun({ data: tcpPkt({ src: '203.0.113.9', dst: NODE_IP, sport: 50000, dport: 30080 }) });
    expect(r.retval).toBe(TC_ACT_REDIRECT);
    expect(parsePacket(r.data).ipv4?.dst).toBe('192.168.1.2');
  });

  it('prints a numbered step list in table mode', async () => {
    const r = await weir(['trace', CLIENT, `${VIP_REMOTE}:80`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^trace 10\.244\.1\.5 -> 10\.96\.0\.11:80\/tcp \(first program: from_pod/);
    expect(r.stdout).toMatch(/^1\. source: local pod/m);
    expect(r.stdout).toMatch(/^3\. service: exact frontend: svc_id 2, 1 backend\(s\), random$/m);
    expect(r.stdout).toMatch(/^ {3}weir_svc4 \[\{"addr":"10\.96\.0\.11"/m);
    expect(r.stdout).toMatch(/^6\. policy-ct: (\d+ tracked flow\(s\)|no tracked flow) from this source/m);
    expect(r.stdout).toMatch(/^7\. ep_policy \(egress\): endpoint \d+ \(10\.244\.1\.5\) is not isolated for egress/m);
    expect(r.stdout).toMatch(/^8\. policy \(ingress\): ingress of 10\.244\.2\.7 is enforced by node 192\.168\.1\.2 \(node_id 2\) with its own identities and policy maps: run weir trace 10\.244\.1\.5 10\.96\.0\.11:80\/tcp on that node$/m);
    expect(r.stdout).toMatch(/^verdict: DNAT to 10\.244\.2\.7:8080; VXLAN to node 192\.168\.1\.2/m);
  });

  it('bad arguments exit 2 with a message naming the argument; missing pins exit 1', async () => {
    for (const [args, msg] of [
      [['10.244.1', `${VIP_LOCAL}:80`], "SRC '10.244.1' is not an IPv4 address"],
      [[CLIENT, 'svc:80'], "DST address 'svc' is not an IPv4 address"],
      [[CLIENT, VIP_LOCAL], `DST '${VIP_LOCAL}' must be ADDR:PORT[/PROTO] (e.g. 10.96.0.10:80/tcp)`],
      [[CLIENT, `${VIP_LOCAL}:0`], "DST port '0' is not a port (1..65535)"],
      [[CLIENT, `${VIP_LOCAL}:65536`], "DST port '65536' is not a port (1..65535)"],
      [[CLIENT, `${VIP_LOCAL}:80/sctp`], "DST protocol 'sctp' is unknown (tcp or udp)"],
      [[CLIENT, `${VIP_LOCAL}:80`, '--sport', '70000'], "--sport '70000' is not a port (1..65535)"],
    ] as const) {
      const r = await weir(['trace', ...args]);
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(r.stderr).toBe(`weir trace: ${msg}\n`);
    }
    const missing = await run(bin, ['--bpffs', `${root}-none`, 'trace', CLIENT, `${VIP_LOCAL}:80`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`no weir maps under ${root}-none`);
  });
});
