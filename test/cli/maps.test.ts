// The map commands and domain views of bin/weir against a real pinned
// datapath: pod.o loaded by the loader under /sys/fs/bpf/h7-*, a few entries
// written through the typed maps, every command run in table and JSON form
// and the JSON read back field by field.
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCollectionSpec, type Collection } from '../../loader/index.js';
import { BpfMap, MapFlags, MapType, possibleCpus, tc, unpin } from '../../native/index.js';
import { typedMaps, type DatapathMaps } from '../../control/datapath/maps.js';
import * as T from '../../control/datapath/types.gen.js';
import { bpfObject } from '../../control/paths.js';
import { repoRoot } from '../lib/fixtures.js';
import { NetnsLab, requireNetns, run } from '../lib/netns.js';

const bin = join(repoRoot, 'bin', 'weir');
const built = existsSync(join(repoRoot, 'dist', 'control', 'cli', 'main.js'));
if (!built && process.env.CI) throw new Error('dist/ is not built; make test builds it before running vitest');

const ip = (s: string) => s.split('.').reduce((a, o) => (a << 8) | Number(o), 0) >>> 0;
const MAGLEV_M = 16381; // bpf/include/maps.h MAGLEV_M_DEFAULT: the inner map template's size

describe.skipIf(!built || requireNetns('weir CLI on pinned maps', ['bpftool']))('weir CLI on a pinned datapath', () => {
  // Laid out as a lab: BASE/NODE, so --node can be checked too.
  const base = `/sys/fs/bpf/h7-cli-${process.pid}`;
  const root = `${base}/node-a`;
  const lab = new NetnsLab({ prefix: 'weirtest-h7-' });
  let coll: Collection;
  let maps: DatapathMaps;
  let health: Server | undefined;

  const weir = (args: string[], opts: { ns?: string } = {}) =>
    opts.ns ? lab.nsenter(opts.ns, bin, ['--bpffs', root, ...args], { timeoutMs: 30_000 }) : run(bin, ['--bpffs', root, ...args], { timeoutMs: 30_000 });
  const json = async (...args: string[]) => {
    const r = await weir([...args, '-o', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout);
  };
  const text = async (...args: string[]) => {
    const r = await weir(args);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    mkdirSync(root, { recursive: true });
    coll = await loadCollectionSpec(bpfObject('pod')).load({ pinRoot: root });
    maps = typedMaps((n) => coll.maps[n].dup());
    const S = T.SvcFlags;
    // A ClusterIP service with Maglev and ClientIP affinity: two backends, one terminating.
    maps.svc4.set({ addr: ip('10.96.0.10'), port: 80, proto: 6, scope: T.SvcScope.SVC_SCOPE_EXT }, {
      svc_id: 7, count: 2, revnat_id: 7, affinity_timeout: 10800, flags: S.SVC_F_CLUSTERIP | S.SVC_F_AFFINITY, algorithm: T.LbAlgorithm.LB_ALG_MAGLEV, pad: 0,
    });
    // A NodePort (addr 0) with no backends: rejected.
    maps.svc4.set({ addr: 0, port: 30080, proto: 17, scope: 0 }, { svc_id: 9, count: 0, revnat_id: 9, affinity_timeout: 0, flags: S.SVC_F_NODEPORT, algorithm: 0, pad: 0 });
    maps.backend4.set(11, { addr: ip('10.244.1.5'), port: 8080, proto: 6, state: T.BackendState.BACKEND_ACTIVE, node_id: 1, flags: T.BackendFlags.BACKEND_F_LOCAL, pad: Buffer.alloc(3) });
    maps.backend4.set(12, { addr: ip('10.244.2.6'), port: 8080, proto: 6, state: T.BackendState.BACKEND_TERMINATING, node_id: 2, flags: 0, pad: Buffer.alloc(3) });
    maps.lbSlots.set({ svc_id: 7, slot: 1 }, 11);
    maps.lbSlots.set({ svc_id: 7, slot: 2 }, 12);
    maps.revnat4.set(7, { addr: ip('10.96.0.10'), port: 80, pad: 0 });
    // Maglev table: backend 11 owns slots i % 3 != 0, backend 12 the rest.
    const inner = BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: MAGLEV_M, name: 'h7_maglev', flags: MapFlags.MMAPABLE });
    const k = Buffer.alloc(4);
    const v = Buffer.alloc(4);
    for (let i = 0; i < MAGLEV_M; i++) {
      k.writeUInt32LE(i);
      v.writeUInt32LE(i % 3 === 0 ? 12 : 11);
      inner.update(k, v);
    }
    k.writeUInt32LE(7);
    v.writeUInt32LE(inner.fd);
    maps.maglev.update(k, v);
    inner.close(); // the outer map holds it
    const now = process.hrtime.bigint();
    const ct = {
      created: now - 90_000_000_000n, last_seen: now - 2_000_000_000n, packets_fwd: 10n, bytes_fwd: 1000n, packets_rev: 8n, bytes_rev: 5000n,
      backend_id: 11, revnat_id: 7, policy_gen: 0, nat_addr: 0, nat_port: 0, tcp_state: T.CtTcpState.CT_TCP_ESTABLISHED, flags: T.CtFlags.CT_F_SERVICE, pad: 0,
    };
    maps.ct4.set({ saddr: ip('10.244.3.7'), daddr: ip('10.96.0.10'), sport: 40000, dport: 80, proto: 6, flags: T.CtKeyFlags.CT_KEY_SERVICE, pad: 0 }, ct);
    maps.ct4.set({ saddr: ip('10.244.3.7'), daddr: ip('10.244.1.5'), sport: 40000, dport: 8080, proto: 6, flags: 0, pad: 0 }, ct);
    maps.ct4.set({ saddr: ip('10.244.3.8'), daddr: ip('10.244.1.5'), sport: 5353, dport: 53, proto: 17, flags: 0, pad: 0 }, {
      ...ct, backend_id: 0, revnat_id: 0, flags: T.CtFlags.CT_F_SNAT, nat_addr: ip('192.168.1.1'), nat_port: 61000, tcp_state: 0,
    });
    maps.ep4.set({ addr: ip('10.244.1.5') }, { ifindex: 5, endpoint_id: 3, mac: Buffer.from('aabbcc000102', 'hex'), node_mac: Buffer.from('eeeeeeeeeeee', 'hex'), flags: 0, identity: 4 });
    maps.ep4.set({ addr: ip('10.244.1.1') }, { ifindex: 1, endpoint_id: 1, mac: Buffer.alloc(6), node_mac: Buffer.alloc(6), flags: T.EndpointFlags.EP_F_HOST, identity: 0 });
    maps.tunnel4.set({ prefixlen: 24, addr: ip('10.244.2.0') }, { node_addr: ip('192.168.1.2'), node_id: 2, node_mac: Buffer.from('020000000002', 'hex') } as T.TunnelInfo);
    maps.node4.set(ip('192.168.1.1'), { flags: 0 });
    // Per-CPU metrics: CPU 0 and (when there is one) CPU 1 both count drops.
    const ncpu = possibleCpus();
    const mv = Buffer.alloc(16 * ncpu);
    mv.writeBigUInt64LE(3n, 0);
    mv.writeBigUInt64LE(300n, 8);
    if (ncpu > 1) {
      mv.writeBigUInt64LE(4n, 16);
      mv.writeBigUInt64LE(400n, 24);
    }
    const mk = Buffer.alloc(8);
    mk.writeUInt32LE(3, 0);
    mk.writeUInt8(T.WeirReason.REASON_NO_BACKEND, 4);
    mk.writeUInt8(T.WeirDir.DIR_EGRESS, 5);
    maps.metrics.update(mk, mv);
  });

  afterAll(async () => {
    health?.close();
    maps?.close();
    coll?.close();
    await lab.cleanup();
    if (existsSync(root)) {
      for (const f of readdirSync(root)) unpin(join(root, f));
      rmdirSync(root);
    }
    if (existsSync(base)) rmdirSync(base);
  });

  it('map list: every pinned map with type, sizes, max entries, entries and fill', async () => {
    const out = await json('map', 'list');
    expect(out.pinRoot).toBe(root);
    const by = Object.fromEntries(out.maps.map((m: { name: string }) => [m.name, m]));
    expect(Object.keys(by).sort()).toEqual(expect.arrayContaining(['weir_svc4', 'weir_ct4', 'weir_maglev', 'weir_events', 'weir_metrics']));
    expect(by.weir_svc4).toMatchObject({ type: 'HASH', keySize: 8, valueSize: 20, maxEntries: 131072, entries: 2, counted: 'keys' });
    expect(by.weir_svc4.fill).toBeCloseTo(2 / 131072, 12);
    expect(by.weir_ct4).toMatchObject({ type: 'LRU_HASH', entries: 3 });
    expect(by.weir_tunnel4).toMatchObject({ type: 'LPM_TRIE', entries: 1 });
    expect(by.weir_maglev).toMatchObject({ type: 'HASH_OF_MAPS', entries: 1 });
    expect(by.weir_metrics).toMatchObject({ type: 'PERCPU_HASH', entries: 1 });
    expect(by.weir_events).toMatchObject({ type: 'RINGBUF', entries: null, fill: null, counted: 'n/a' });
    const t = await text('map', 'list');
    expect(t).toMatch(/^weir_svc4\s+HASH\s+8B\s+20B\s+131072\s+2\s+0\.002%/m);
    expect(t).toMatch(/^weir_events\s+RINGBUF\s+0B\s+0B\s+1048576\s+-\s+-/m);
  });

  it('map dump: entries decoded field by field through the kernel BTF, or raw hex', async () => {
    const svc = await json('map', 'dump', 'weir_svc4');
    expect(svc.decodedWith).toBe('kernel BTF');
    const cip = svc.entries.find((e: { key: { port: number } }) => e.key.port === 80);
    expect(cip.key).toEqual({ addr: '10.96.0.10', port: 80, proto: 'tcp', scope: 'SVC_SCOPE_EXT' });
    expect(cip.value).toEqual({
      svc_id: 7, count: 2, revnat_id: 7, affinity_timeout: 10800, flags: ['SVC_F_CLUSTERIP', 'SVC_F_AFFINITY'], algorithm: 'LB_ALG_MAGLEV',
    });
    const np = svc.entries.find((e: { key: { port: number } }) => e.key.port === 30080);
    expect(np.key).toMatchObject({ addr: '0.0.0.0', proto: 'udp' });
    // Short names work; a __be32 key reads as an address; MACs as aa:bb:..
    const node = await json('map', 'dump', 'node4');
    expect(node.entries).toEqual([{ key: '192.168.1.1', value: { flags: 0 } }]);
    const ep = await json('map', 'dump', 'ep4');
    expect(ep.entries.find((e: { key: { addr: string } }) => e.key.addr === '10.244.1.5').value).toMatchObject({
      ifindex: 5, endpoint_id: 3, mac: 'aa:bb:cc:00:01:02', node_mac: 'ee:ee:ee:ee:ee:ee', flags: [], identity: 4,
    });
    const ct = await json('map', 'dump', 'ct4');
    const snat = ct.entries.find((e: { key: { proto: string } }) => e.key.proto === 'udp');
    expect(snat.key).toEqual({ saddr: '10.244.3.8', daddr: '10.244.1.5', sport: 5353, dport: 53, proto: 'udp', flags: [] });
    expect(snat.value).toMatchObject({ nat_addr: '192.168.1.1', nat_port: 61000, flags: ['CT_F_SNAT'], tcp_state: [], packets_fwd: 10, bytes_rev: 5000 });
    const tun = await json('map', 'dump', 'tunnel4');
    expect(tun.entries[0]).toMatchObject({ key: { prefixlen: 24, addr: '10.244.2.0' }, value: { node_addr: '192.168.1.2', node_id: 2, node_mac: '02:00:00:00:00:02' } });
    // Per-CPU values: summed, with each CPU's slot alongside.
    const met = await json('map', 'dump', 'metrics');
    expect(met.entries[0].key).toEqual({ endpoint_id: 3, reason: 'REASON_NO_BACKEND', dir: 'DIR_EGRESS' });
    const cpus = met.entries[0].perCpu.length;
    expect(cpus).toBeGreaterThanOrEqual(1);
    expect(met.entries[0].value).toEqual(cpus > 1 ? { packets: 7, bytes: 700 } : { packets: 3, bytes: 300 });
    expect(met.entries[0].perCpu[0]).toEqual({ packets: 3, bytes: 300 });
    // Raw: the bytes as the kernel holds them (network order for __be fields).
    const raw = await json('map', 'dump', 'svc4', '--raw');
    expect(raw.entries.map((e: { key: string }) => e.key)).toContain('0a60000a00500600');
    const t = await text('map', 'dump', 'svc4');
    expect(t).toMatch(/addr=10\.96\.0\.10 port=80 proto=tcp scope=SVC_SCOPE_EXT\s+svc_id=7 count=2 .*flags=SVC_F_CLUSTERIP,SVC_F_AFFINITY algorithm=LB_ALG_MAGLEV/);
  });

  it('service list and backend list: frontends with their backends, algorithm, affinity and flags', async () => {
    const { services } = await json('service', 'list');
    expect(services).toHaveLength(2);
    const cip = services.find((s: { port: number }) => s.port === 80);
    expect(cip).toMatchObject({
      frontend: '10.96.0.10:80/tcp', scope: 'ext', svcId: 7, flags: ['clusterip', 'affinity'], algorithm: 'maglev', affinityTimeout: 10800,
    });
    expect(cip.backends).toEqual([
      { slot: 1, id: 11, addr: '10.244.1.5', port: 8080, proto: 'tcp', state: 'active', nodeId: 1, flags: ['local'] },
      { slot: 2, id: 12, addr: '10.244.2.6', port: 8080, proto: 'tcp', state: 'terminating', nodeId: 2, flags: [] },
    ]);
    const np = services.find((s: { port: number }) => s.port === 30080);
    expect(np).toMatchObject({ frontend: '*:30080/udp', flags: ['nodeport'], algorithm: 'random', affinityTimeout: null, backends: [] });
    const t = await text('service', 'list');
    expect(t).toMatch(/^10\.96\.0\.10:80\/tcp\s+ext\s+7\s+clusterip,affinity\s+maglev\s+clientip 10800s\s+10\.244\.1\.5:8080 \(local\), 10\.244\.2\.6:8080 \(terminating\)$/m);
    expect(t).toMatch(/^\*:30080\/udp .*\(none: rejected\)$/m);

    const { backends } = await json('backend', 'list');
    expect(backends).toEqual([
      { id: 11, addr: '10.244.1.5', port: 8080, proto: 'tcp', state: 'active', nodeId: 1, flags: ['local'], services: ['10.96.0.10:80/tcp'] },
      { id: 12, addr: '10.244.2.6', port: 8080, proto: 'tcp', state: 'terminating', nodeId: 2, flags: [], services: ['10.96.0.10:80/tcp'] },
    ]);
    expect(await text('backend', 'list')).toMatch(/^12\s+10\.244\.2\.6:8080\/tcp\s+terminating\s+2\s+-\s+10\.96\.0\.10:80\/tcp$/m);
  });

  it('ct list: flows with service, backend, age from the monotonic clock, counters, filters and a summary', async () => {
    const all = await json('ct', 'list');
    expect(all.entries).toHaveLength(3);
    const pre = all.entries.find((e: { serviceKey: boolean }) => e.serviceKey);
    expect(pre).toMatchObject({
      src: '10.244.3.7:40000', dst: '10.96.0.10:80', proto: 'tcp', service: '10.96.0.10:80/tcp', backend: '10.244.1.5:8080',
      packetsFwd: 10, bytesFwd: 1000, packetsRev: 8, bytesRev: 5000, tcpState: ['established'], flags: ['service'],
    });
    // created 90 s before the test wrote it, on the clock bpf_ktime_get_ns reads: a wrong clock would be off by years.
    expect(pre.ageSeconds).toBeGreaterThanOrEqual(90);
    expect(pre.ageSeconds).toBeLessThan(3600);
    expect(pre.idleSeconds).toBeGreaterThanOrEqual(2);
    expect(pre.idleSeconds).toBeLessThan(pre.ageSeconds);
    const post = all.entries.find((e: { dst: string }) => e.dst === '10.244.1.5:8080');
    expect(post).toMatchObject({ serviceKey: false, service: '10.96.0.10:80/tcp' }); // via revnat_id 7
    const snat = all.entries.find((e: { proto: string }) => e.proto === 'udp');
    expect(snat).toMatchObject({ service: null, backend: null, nat: '192.168.1.1:61000', flags: ['snat'] });
    expect(all.summary).toMatchObject({
      entries: 3, maxEntries: 524288, shown: 3,
      topSources: [{ source: '10.244.3.7', entries: 2 }, { source: '10.244.3.8', entries: 1 }],
      topServices: [{ service: '10.96.0.10:80/tcp', entries: 2 }, { service: '(not a service flow)', entries: 1 }],
      byProto: { tcp: 2, udp: 1 },
    });
    const svc = await json('ct', 'list', '--service', '10.96.0.10:80');
    expect(svc.entries).toHaveLength(2);
    expect((await json('ct', 'list', '--service', '7')).entries).toHaveLength(2); // by svc_id
    expect((await json('ct', 'list', '--service', '10.96.0.10:80/udp')).entries).toHaveLength(0);
    const pod = await json('ct', 'list', '--pod', '10.244.3.8');
    expect(pod.entries.map((e: { src: string }) => e.src)).toEqual(['10.244.3.8:5353']);
    expect(pod.summary.entries).toBe(3); // the summary is about the whole table
    const t = await text('ct', 'list');
    expect(t).toMatch(/^10\.244\.3\.7:40000\s+10\.96\.0\.10:80\s+tcp\s+10\.96\.0\.10:80\/tcp \(pre-DNAT\)\s+10\.244\.1\.5:8080\s+\dm\d\ds\s+\S+\s+10\/8\s+1000\/5000\s+established\s+service$/m);
    expect(t).toContain('3 of 524288 entries');
    expect(t).toMatch(/top sources: +10\.244\.3\.7 2, 10\.244\.3\.8 1/);
  });

  it('maglev show: slots per backend from the inner table', async () => {
    const { maglev } = await json('maglev', 'show', '10.96.0.10:80/tcp');
    expect(maglev).toHaveLength(1);
    const third = Math.ceil(MAGLEV_M / 3); // i % 3 == 0 for i in 0..M-1
    expect(maglev[0]).toMatchObject({ svcId: 7, frontends: ['10.96.0.10:80/tcp'], tableSize: MAGLEV_M });
    expect(maglev[0].backends).toEqual([
      { id: 11, backend: '10.244.1.5:8080', slots: MAGLEV_M - third, share: (MAGLEV_M - third) / MAGLEV_M },
      { id: 12, backend: '10.244.2.6:8080', slots: third, share: third / MAGLEV_M },
    ]);
    expect((await json('maglev', 'show', '7')).maglev[0].svcId).toBe(7);
    expect(await text('maglev', 'show', '10.96.0.10')).toMatch(new RegExp(`^\\s+11\\s+10\\.244\\.1\\.5:8080\\s+${MAGLEV_M - third}\\s+67%$`, 'm'));
    const random = await weir(['maglev', 'show', '*:30080']);
    expect(random.code).toBe(1);
    expect(random.stderr).toMatch(/weir maglev show: service \*:30080\/udp \(svc_id 9\) has no Maglev table in weir_maglev/);
    const none = await weir(['maglev', 'show', '10.1.2.3:80']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("no service frontend matches '10.1.2.3:80'");
  });

  it('endpoint list and route list', async () => {
    const { endpoints } = await json('endpoint', 'list');
    expect(endpoints).toEqual([
      expect.objectContaining({ addr: '10.244.1.1', endpointId: 1, flags: ['host'] }),
      expect.objectContaining({ addr: '10.244.1.5', endpointId: 3, ifindex: 5, mac: 'aa:bb:cc:00:01:02', gatewayMac: 'ee:ee:ee:ee:ee:ee', flags: [], identity: 4 }),
    ]);
    expect(await text('endpoint', 'list')).toMatch(/^10\.244\.1\.5\s+3\s+5.*aa:bb:cc:00:01:02\s+ee:ee:ee:ee:ee:ee\s+-\s+4$/m);
    const r = await json('route', 'list');
    expect(r.routes).toEqual([{ cidr: '10.244.2.0/24', nodeAddr: '192.168.1.2', nodeId: 2, nodeMac: '02:00:00:00:00:02', vtepMac: '00:00:00:00:00:00' }]);
    expect(r.nodeAddresses).toEqual([{ addr: '192.168.1.1', flags: 0 }]);
    const t = await text('route', 'list');
    expect(t).toMatch(/^10\.244\.2\.0\/24\s+192\.168\.1\.2\s+2\s+02:00:00:00:00:02\s+\(node mac\)$/m);
    expect(t).toContain("this node's addresses (NodePort frontends): 192.168.1.1");
  });

  it('status: map fill, programs using these maps and where tc attached them, agent health', async () => {
    // Attach from_pod on a veth inside a netns of ours, then run the CLI in that netns.
    const a = await lab.createNetns('a');
    const b = await lab.createNetns('b');
    const pair = await lab.veth({ a: { ns: a, name: 'h7pod' }, b: { ns: b, name: 'h7peer' } });
    tc.attach({ ifindex: pair.a.ifindex, attachPoint: 'ingress', prog: coll.programs.from_pod, netns: lab.nsPath(a) });
    health = createServer((req, res) => {
      if (req.url === '/healthz') res.writeHead(200).end('ok');
      else res.writeHead(503).end('not synced');
    });
    await new Promise<void>((resolve) => health!.listen(0, '127.0.0.1', resolve));
    const port = (health.address() as AddressInfo).port;

    // --netns re-runs the command in that namespace (nsenter --net: the pins stay visible).
    const r = await weir(['status', '--netns', lab.nsPath(a), '--metrics-port', String(port), '-o', 'json']);
    expect(r.stderr).toBe('');
    const s = JSON.parse(r.stdout);
    expect(s.maps.find((m: { name: string }) => m.name === 'weir_ct4')).toMatchObject({ entries: 3, maxEntries: 524288 });
    const progs = Object.fromEntries(s.programs.map((p: { name: string }) => [p.name, p]));
    expect(Object.keys(progs).sort()).toEqual(['from_pod', 'to_pod']);
    expect(progs.from_pod.id).toBe(coll.programs.from_pod.info.id);
    expect(progs.from_pod.attached).toEqual([`h7pod (ifindex ${pair.a.ifindex}) tc ingress`]);
    expect(progs.to_pod.attached).toEqual([]);
    // The health server listens in the root netns: from inside `a` it is not reachable ...
    expect(s.agent).toMatchObject({ reachable: false });
    // ... from the root netns it is.
    const here = await json('status', '--metrics-port', String(port));
    expect(here.agent).toMatchObject({ reachable: true, healthz: { status: 200, body: 'ok' }, readyz: { status: 503, body: 'not synced' } });
    expect(here.programs.map((p: { name: string }) => p.name).sort()).toEqual(['from_pod', 'to_pod']);
    const t = (await weir(['status', '--metrics-port', String(port)], { ns: a })).stdout;
    expect(t).toMatch(/^\s*\d+\s+from_pod\s+sched_cls\s+h7pod \(ifindex \d+\) tc ingress$/m);
    expect(t).toMatch(/^\s*\d+\s+to_pod\s+sched_cls\s+\(not attached in this network namespace\)$/m);
    expect(t).toContain('agent not reachable');
  });

  it('--node NAME reads the lab node\'s pin root and wins over --bpffs', async () => {
    const env = { ...process.env, WEIR_LAB_PIN_BASE: base };
    const r = await run(bin, ['--bpffs', '/sys/fs/bpf/h7-not-this', '--node', 'node-a', 'map', 'list', '-o', 'json'], { env, timeoutMs: 30_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout).pinRoot).toBe(root);
    const other = await run(bin, ['--node', 'node-b', 'service', 'list'], { env, timeoutMs: 30_000 });
    expect(other.code).toBe(1);
    expect(other.stderr).toContain(`no weir maps under ${base}/node-b — is the agent running / is this the right --node?`);
  });

  it('bad arguments: a clear message naming the problem and a non-zero exit', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['map', 'dump', 'nope'], 1, /^weir map dump: no map named 'nope' under \/sys\/fs\/bpf\/h7-cli-\d+\/node-a; pinned maps: .*weir_svc4/],
      [['map', 'dump', 'events'], 1, /weir_events is a ring buffer/],
      [['map', 'dump'], 2, /missing required argument 'name'/],
      [['ct', 'list', '--pod', 'frontend-abc'], 2, /--pod 'frontend-abc' is not an IPv4 address/],
      [['ct', 'list', '--service', '10.96.0.300:80'], 2, /--service '10\.96\.0\.300:80' is not ADDR\[:PORT\[\/PROTO\]\]/],
      [['maglev', 'show', '10.96.0.10:80/xyz'], 2, /service '10\.96\.0\.10:80\/xyz' is not ADDR/],
      [['map', 'list', '-o', 'yaml'], 2, /argument 'yaml' is invalid. Allowed choices are table, json/],
      [['status', '--metrics-port', '99999'], 2, /--metrics-port '99999' is not a port number/],
      [['service', 'lst'], 2, /unknown command 'lst'/],
      [['map', 'list', 'extra'], 2, /too many arguments/],
    ];
    for (const [args, code, msg] of cases) {
      const r = await weir(args);
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code, stdout: '' });
      expect(r.stderr).toMatch(msg);
    }
    // A missing pin root or lab node names the place it looked.
    for (const [args, where] of [
      [['--bpffs', '/sys/fs/bpf/h7-nothing-here', 'service', 'list'], '/sys/fs/bpf/h7-nothing-here'],
      [['--node', 'h7-no-such-node', 'map', 'list'], '/sys/fs/bpf/weir-lab/h7-no-such-node'],
    ] as const) {
      const r = await run(bin, [...args], { timeoutMs: 30_000 });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`no weir maps under ${where} — is the agent running / is this the right --node?`);
    }
    const badNode = await run(bin, ['--node', '../etc', 'map', 'list']);
    expect(badNode.code).toBe(2);
    expect(badNode.stderr).toContain("--node '../etc' is not a node name");
  });
});
