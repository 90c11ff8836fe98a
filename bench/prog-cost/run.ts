// ns per packet of weir's service path (from_pod in build/bpf/pod.o) under
// BPF_PROG_TEST_RUN with 10, 10k and 100k services programmed. A benchmark,
// not a test: it prints a table. Needs root and bpffs. See README.md.
import { mkdirSync, rmSync } from 'node:fs';
import { loadCollectionSpec } from '../../loader/index.js';
import { BpfMap, type BpfProgram } from '../../native/index.js';
import { typedMaps, type DatapathMaps } from '../../control/datapath/maps.js';
import { bpfObject } from '../../control/paths.js';
import type { Svc4Key, SvcValue, LbSlotKey, Backend4 } from '../../control/datapath/types.gen.js';

const REPEAT = Number(process.env.REPEAT ?? 1_000_000);
const CALLS = Number(process.env.CALLS ?? 20_000);
const SIZES = (process.env.SIZES ?? '10,10000,100000').split(',').map(Number);

const ip = (s: string) => s.split('.').reduce((a, o) => (a << 8) | Number(o), 0) >>> 0;
const be32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const CLIENT = ip('10.244.1.5');
const VIP_BASE = ip('10.96.0.0');
const BACKENDS = [ip('10.244.1.21'), ip('10.244.1.22'), ip('10.244.1.23')];

/** Ethernet + IPv4 + TCP (no options), checksums filled. */
function tcpFrame(src: number, dst: number, sport: number, dport: number, flags: number): Buffer {
  const b = Buffer.alloc(14 + 20 + 20);
  b.write('020000000002020000000001', 0, 'hex');
  b.writeUInt16BE(0x0800, 12);
  b.writeUInt8(0x45, 14);
  b.writeUInt16BE(40, 16);
  b.writeUInt8(64, 22);
  b.writeUInt8(6, 23);
  b.writeUInt32BE(src, 26);
  b.writeUInt32BE(dst, 30);
  b.writeUInt16BE(csum(b.subarray(14, 34)), 24);
  b.writeUInt16BE(sport, 34);
  b.writeUInt16BE(dport, 36);
  b.writeUInt32BE(1000, 38);
  b.writeUInt8(5 << 4, 46);
  b.writeUInt8(flags, 47);
  b.writeUInt16BE(65535, 48);
  const pseudo = Buffer.alloc(12);
  pseudo.writeUInt32BE(src, 0);
  pseudo.writeUInt32BE(dst, 4);
  pseudo.writeUInt16BE(6, 8);
  pseudo.writeUInt16BE(20, 10);
  b.writeUInt16BE(csum(Buffer.concat([pseudo, b.subarray(34)])), 50);
  return b;
}
function csum(buf: Buffer): number {
  let s = 0;
  for (let i = 0; i < buf.length; i += 2) s += buf.readUInt16BE(i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}
const SYN = 0x02;
const ACK = 0x10;

function program(m: DatapathMaps, n: number): void {
  const backends: Array<[number, Backend4]> = BACKENDS.map((a, i) => [i + 1, { addr: a, port: 8080, proto: 6, state: 0, node_id: 1, flags: 1, pad: Buffer.alloc(3) }]);
  // Ping-pong (see README): service 1 (VIP 1:80) -> backend 9 = VIP 2:81,
  // service 2 (VIP 2:81) -> backend 10 = VIP 1:80.
  backends.push([9, { addr: VIP_BASE + 2, port: 81, proto: 6, state: 0, node_id: 1, flags: 1, pad: Buffer.alloc(3) }]);
  backends.push([10, { addr: VIP_BASE + 1, port: 80, proto: 6, state: 0, node_id: 1, flags: 1, pad: Buffer.alloc(3) }]);
  m.backend4.setMany(backends);
  const svcs: Array<[Svc4Key, SvcValue]> = [];
  const slots: Array<[LbSlotKey, number]> = [];
  for (let i = 1; i <= n; i++) {
    const port = i === 2 ? 81 : 80;
    svcs.push([{ addr: VIP_BASE + i, port, proto: 6, scope: 0 }, { svc_id: i, count: 3, revnat_id: i, affinity_timeout: 0, flags: 1, algorithm: 0, pad: 0 }]);
    for (let s = 1; s <= 3; s++) slots.push([{ svc_id: i, slot: s }, i === 1 ? 9 : i === 2 ? 10 : s]);
  }
  m.lbSlots.setMany(slots);
  m.revnat4.setMany(svcs.map(([k, v]) => [v.revnat_id, { addr: k.addr, port: k.port, pad: 0 }]));
  m.svc4.setMany(svcs);
  // from_pod drops sources that are not the veth's own endpoint (anti-spoofing): the
  // clients are pods behind the veth the test run uses (ifindex 1).
  for (const a of [CLIENT, CLIENT + 1, CLIENT + 2]) {
    m.ep4.set({ addr: a }, { ifindex: 1, endpoint_id: a & 0xff, mac: Buffer.alloc(6, 4), node_mac: Buffer.alloc(6, 5), flags: 0, identity: 0 });
  }
  for (const a of BACKENDS) {
    m.ep4.set({ addr: a }, { ifindex: 1, endpoint_id: a & 0xff, mac: Buffer.alloc(6, 2), node_mac: Buffer.alloc(6, 3), flags: 0, identity: 0 });
  }
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`prog-cost: ${what}; the numbers would not measure the service path`);
}

async function perCall(prog: BpfProgram, frames: Buffer[]): Promise<number> {
  let total = 0;
  for (const data of frames) total += (await prog.testRun({ data, repeat: 1 })).durationNs;
  return total / frames.length;
}

async function measure(n: number): Promise<Record<string, number>> {
  const pinRoot = `/sys/fs/bpf/h1-bench-${process.pid}-${n}`;
  mkdirSync(pinRoot, { recursive: true });
  const constants = {
    NODE_IP: be32(ip('192.168.50.10')),
    POD_CIDR: be32(ip('10.244.1.0')),
    POD_CIDR_MASK: be32(ip('255.255.255.0')),
    CLUSTER_CIDR: be32(ip('10.244.0.0')),
    CLUSTER_CIDR_MASK: be32(ip('255.255.0.0')),
    GATEWAY_IP: be32(ip('10.244.1.1')),
  };
  let coll: Awaited<ReturnType<ReturnType<typeof loadCollectionSpec>['load']>> | undefined;
  let maps: DatapathMaps | undefined;
  try {
    // inside the try: a load or pin failure (e.g. an object older than the
    // map contract) must not leave the pins behind
    coll = await loadCollectionSpec(bpfObject('pod')).load({ pinRoot, constants });
    maps = typedMaps((name) => BpfMap.fromPin(`${pinRoot}/${name}`));
    program(maps, n);
    const prog = coll.programs.from_pod;
    const mid = Math.max(2, Math.floor(n / 2));
    const out: Record<string, number> = {};

    // 1. Established flows with the real DNAT, repeat ≥ 1e6. test_run runs
    //    every repeat on the same skb, so services 1 and 2 point at each
    //    other: each repeat DNATs VIP1:80 -> VIP2:81 or back, following the
    //    CT entry made by the first two repeats.
    const pingpong = tcpFrame(CLIENT, VIP_BASE + 1, 40000, 80, ACK);
    const one = await prog.testRun({ data: pingpong, repeat: 1 });
    check(one.data.readUInt32BE(30) === VIP_BASE + 2 && one.data.readUInt16BE(36) === 81, 'ping-pong: VIP1:80 was not DNATed to VIP2:81');
    const two = await prog.testRun({ data: pingpong, repeat: 2 });
    check(two.data.readUInt32BE(30) === VIP_BASE + 1 && two.data.readUInt16BE(36) === 80, 'ping-pong: two repeats must come back to VIP1:80');
    check(maps.ct4.get({ saddr: CLIENT, daddr: VIP_BASE + 2, sport: 40000, dport: 81, proto: 6, flags: 1, pad: 0 })?.backend_id === 10, 'ping-pong: no CT entry for the second leg');
    out['established + DNAT, repeat'] = (await prog.testRun({ data: pingpong, repeat: REPEAT })).durationNs;

    // 2. A packet to no service (pod -> local pod): the cost lb adds to all traffic.
    const plain = tcpFrame(CLIENT, BACKENDS[0], 40001, 8080, ACK);
    out['not a service, repeat'] = (await prog.testRun({ data: plain, repeat: REPEAT })).durationNs;

    // 3. Established flow with the real DNAT rewrite: one call per packet.
    const est = tcpFrame(CLIENT, VIP_BASE + mid, 40002, 80, ACK);
    const dnat = await prog.testRun({ data: est });
    check(BACKENDS.includes(dnat.data.readUInt32BE(30)) && dnat.data.readUInt16BE(36) === 8080, 'established flow was not DNATed');
    out['established + DNAT, per call'] = await perCall(prog, Array.from({ length: CALLS }, () => est));

    // 4. New flows: distinct source ports, backend choice and two CT inserts each.
    const fresh = Array.from({ length: CALLS }, (_, i) => tcpFrame(CLIENT + 1 + (i >> 14), VIP_BASE + 1 + (i % n), 1024 + (i & 0x3fff), 80, SYN));
    // (service 1 is the fixed point; the rest DNAT to real backends)
    out['new flow + DNAT, per call'] = await perCall(prog, fresh);
    return out;
  } finally {
    maps?.close();
    coll?.close();
    rmSync(pinRoot, { recursive: true, force: true });
  }
}

const rows: Array<[number, Record<string, number>]> = [];
for (const n of SIZES) rows.push([n, await measure(n)]);
const cols = Object.keys(rows[0][1]);
console.log(`weir service path (from_pod), ns per packet; repeat=${REPEAT}, per-call rows = mean of ${CALLS} single runs`);
console.log(['services', ...cols].map((c, i) => (i === 0 ? c.padEnd(10) : c.padStart(36))).join(''));
for (const [n, r] of rows) console.log([String(n).padEnd(10), ...cols.map((c) => r[c].toFixed(1).padStart(36))].join(''));
