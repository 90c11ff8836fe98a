// Program-test harness for the service datapath: loads the REAL
// build/bpf/pod.o and uplink.o with a private pin root (so the two share
// maps, as on a node), fills the maps through the typed tables and runs
// packets with BPF_PROG_TEST_RUN.
import { mkdirSync, rmSync } from 'node:fs';
import { Collection, loadCollectionSpec } from '../../loader/index.js';
import { BpfMap, MapFlags, MapType } from '../../native/index.js';
import { typedMaps, type DatapathMaps } from '../../control/datapath/maps.js';
import { CtFlags, CtKeyFlags, SvcFlags, SvcScope, LbAlgorithm, BackendFlags } from '../../control/datapath/types.gen.js';
import { bpfObject } from '../../control/paths.js';
import { eth, ipToNumber, parsePacket, verifyChecksums, type ParsedPacket } from '../lib/packet.js';

export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;
/** What a packet delivered to a local pod gets from the routing step after lb. */
export const FORWARDED = [TC_ACT_REDIRECT];
export const TCP = 6;
export const UDP = 17;

export const NODE_IP = '192.168.50.10';
export const HAIRPIN_IP = '169.254.42.1';
export const MACS = { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' };
export { CtFlags, CtKeyFlags, SvcFlags, SvcScope, LbAlgorithm, BackendFlags };

const be32 = (ip: string) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ipToNumber(ip));
  return b;
};

export interface Lb {
  pod: Collection;
  uplink: Collection;
  maps: DatapathMaps;
  fromPod(data: Buffer): Promise<Run>;
  toPod(data: Buffer): Promise<Run>;
  fromUplink(data: Buffer): Promise<Run>;
  close(): void;
}

export interface Run {
  retval: number;
  data: Buffer;
  p: ParsedPacket;
}

let seq = 0;
/** Loads pod.o and uplink.o under a fresh pin root (fresh, empty maps). */
export async function loadLb(prefix = 'h1-svc', constants: Record<string, number | Buffer> = {}): Promise<Lb> {
  const pinRoot = `/sys/fs/bpf/${prefix}-${process.pid}-${seq++}`;
  mkdirSync(pinRoot, { recursive: true });
  // This node owns 10.244.1.0/24 of the cluster's 10.244.0.0/16 (route.h
  // delivers local pods from ep4 and tunnels the rest).
  const consts = {
    NODE_IP: be32(NODE_IP),
    NODE_ID: 1,
    POD_CIDR: be32('10.244.1.0'),
    POD_CIDR_MASK: be32('255.255.255.0'),
    CLUSTER_CIDR: be32('10.244.0.0'),
    CLUSTER_CIDR_MASK: be32('255.255.0.0'),
    GATEWAY_IP: be32('10.244.1.1'),
    ...constants,
  };
  const pod = await loadCollectionSpec(bpfObject('pod')).load({ pinRoot, constants: consts });
  const uplink = await loadCollectionSpec(bpfObject('uplink')).load({ pinRoot, constants: consts });
  const maps = typedMaps((name) => BpfMap.fromPin(`${pinRoot}/${name}`));
  const run = async (c: Collection, prog: string, data: Buffer): Promise<Run> => {
    const r = await c.programs[prog].testRun({ data });
    return { retval: r.retval, data: r.data, p: parsePacket(r.data) };
  };
  return {
    pod,
    uplink,
    maps,
    fromPod: (d) => run(pod, 'from_pod', d),
    toPod: (d) => run(pod, 'to_pod', d),
    fromUplink: (d) => run(uplink, 'from_uplink', d),
    close() {
      maps.close();
      pod.close();
      uplink.close();
      rmSync(pinRoot, { recursive: true, force: true });
    },
  };
}

export interface BackendSpec {
  id: number;
  addr: string;
  port: number;
  proto?: number;
  terminating?: boolean;
  local?: boolean;
  nodeId?: number;
}

export function setBackend(m: DatapathMaps, b: BackendSpec): void {
  m.backend4.set(b.id, {
    addr: ipToNumber(b.addr),
    port: b.port,
    proto: b.proto ?? TCP,
    state: b.terminating ? 1 : 0,
    node_id: b.nodeId ?? 1,
    flags: b.local === false ? 0 : BackendFlags.BACKEND_F_LOCAL,
    pad: Buffer.alloc(3),
  });
}

let epSeq = 100;
/** Registers a local pod in ep4 so the routing step after lb delivers to it. */
export function setEndpoint(m: DatapathMaps, addr: string, ifindex = 1): void {
  m.ep4.set({ addr: ipToNumber(addr) }, {
    ifindex,
    endpoint_id: epSeq++,
    mac: Buffer.from([2, 0, 0, 0, 1, epSeq & 0xff]),
    node_mac: Buffer.from([2, 0, 0, 0, 2, epSeq & 0xff]),
    flags: 0,
    identity: 0,
  });
}

export interface ServiceSpec {
  id: number;
  addr: string; // '0.0.0.0' for NodePort
  port: number;
  proto?: number;
  scope?: number;
  flags?: number;
  algorithm?: number;
  affinityTimeout?: number;
  /** Backend ids in slot order (slot 1..n). */
  backends: number[];
  /** The frontend replies carry (defaults to addr:port). */
  revnat?: { addr: string; port: number };
}

/** Writes a service the way the reconciler does: slots, revnat, then the service entry. */
export function setService(m: DatapathMaps, s: ServiceSpec): void {
  const proto = s.proto ?? TCP;
  s.backends.forEach((b, i) => m.lbSlots.set({ svc_id: s.id, slot: i + 1 }, b));
  const rn = s.revnat ?? { addr: s.addr, port: s.port };
  m.revnat4.set(s.id, { addr: ipToNumber(rn.addr), port: rn.port, pad: 0 });
  m.svc4.set(
    { addr: ipToNumber(s.addr), port: s.port, proto, scope: s.scope ?? SvcScope.SVC_SCOPE_EXT },
    {
      svc_id: s.id,
      count: s.backends.length,
      revnat_id: s.id,
      affinity_timeout: s.affinityTimeout ?? 0,
      flags: s.flags ?? SvcFlags.SVC_F_CLUSTERIP,
      algorithm: s.algorithm ?? LbAlgorithm.LB_ALG_RANDOM,
      pad: 0,
    },
  );
}

/** A Maglev table (backend ids) as an inner array map set for `svcId`. */
export function setMaglev(m: DatapathMaps, svcId: number, table: Uint32Array | number[]): void {
  const inner = BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: table.length, name: 'maglev_inner', flags: MapFlags.MMAPABLE }); // as the template
  try {
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    table.forEach((id, i) => {
      const k = Buffer.alloc(4);
      k.writeUInt32LE(i);
      const v = Buffer.alloc(4);
      v.writeUInt32LE(id);
      keys.push(k);
      values.push(v);
    });
    inner.updateBatch(keys, values);
    const k = Buffer.alloc(4);
    k.writeUInt32LE(svcId);
    const fd = Buffer.alloc(4);
    fd.writeUInt32LE(inner.fd);
    m.maglev.update(k, fd);
  } finally {
    inner.close();
  }
}

export interface Flow {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

export const tcpPkt = (f: Flow, flags: Array<'SYN' | 'ACK' | 'FIN' | 'RST' | 'PSH'> = ['SYN'], payload = '', seq = 1000, ack = 0) =>
  eth(MACS).ipv4({ src: f.src, dst: f.dst }).tcp({ sport: f.sport, dport: f.dport, flags, seq, ack }).payload(payload).build();

export const udpPkt = (f: Flow, payload = 'weir', zeroChecksum = false) =>
  eth(MACS).ipv4({ src: f.src, dst: f.dst }).udp({ sport: f.sport, dport: f.dport, zeroChecksum }).payload(payload).build();

/** The L4 tuple of a parsed TCP/UDP packet. */
export function tupleOf(p: ParsedPacket): Flow {
  const l4 = p.tcp ?? p.udp;
  if (!p.ipv4 || !l4) throw new Error('not an IPv4 TCP/UDP packet');
  return { src: p.ipv4.src, dst: p.ipv4.dst, sport: l4.sport, dport: l4.dport };
}

/** Asserts checksums are right; returns the report's errors for expect(). */
export function csumErrors(data: Buffer): string[] {
  return verifyChecksums(data).errors;
}

/** Sum of a per-CPU metrics counter (reason, dir). */
export function metric(m: DatapathMaps, reason: number, dir: number): number {
  const k = Buffer.from([0, 0, 0, 0, reason, dir, 0, 0]);
  const v = m.metrics.lookup(k);
  if (!v) return 0;
  let n = 0n;
  for (let off = 0; off < v.length; off += 16) n += v.readBigUInt64LE(off);
  return Number(n);
}
