// Loading weir's datapath (build/bpf/pod.o and uplink.o) for one node and
// attaching it: from_pod / to_pod on every pod's host-side veth, from_uplink
// on the node's uplink. Maps are pinned by name under pinRoot, so a reload
// (agent restart, upgrade, new node constants) finds every entry again; tc
// filters are replaced in place, so an upgrade swaps programs atomically.
import { mkdirSync } from 'node:fs';
import { loadCollectionSpec, type Collection, type ConstValue } from '../../loader/index.js';
import { BpfError, BpfProgram, ifindex as ifindexOf, tc, TC_DEFAULT_HANDLE, TC_DEFAULT_PRIORITY } from '../../native/index.js';
import { bpfObject } from '../paths.js';
import { typedMaps, type DatapathMaps } from './maps.js';
import { cidrContains, parseCidr, parseIpv4, parseMac } from './routes.js';

/** This node, as the programs see it (config.h's constants). */
export interface NodeConfig {
  /** Underlay address: VXLAN outer source, and what pods are masqueraded to. */
  ip: string;
  /** Stable numeric node id (0..2^32-1). */
  id: number;
  /** This node's pod CIDR, e.g. '10.244.1.0/24'. */
  podCidr: string;
  /** Every pod in the cluster, e.g. '10.244.0.0/16'. */
  clusterCidr: string;
  /** The address pods route via; the node answers ARP for it (see bpf/ROUTING.md). */
  gatewayIp: string;
  /** ifindex of the uplink (in the node's netns): where VXLAN leaves. */
  uplinkIfindex: number;
  /** The uplink's MAC ('aa:bb:..' or 6 bytes): outer source MAC. */
  uplinkMac: string | Buffer;
  /** VXLAN VNI (default 1, flannel's). */
  vxlanVni?: number;
  /** VXLAN UDP port (default 8472, flannel's and Linux's). */
  vxlanPort?: number;
}

export interface LoadDatapathOptions {
  /** bpffs folder for the pinned maps, e.g. /sys/fs/bpf/weir (created if absent). */
  pinRoot: string;
  node: NodeConfig;
  /** Maglev table size (a prime); sets MAGLEV_M and the inner map size together. */
  maglevM?: number;
  /** weir_ct4 max_entries. */
  ctEntries?: number;
  /** Default LB algorithm (enum lb_algorithm). */
  lbDefaultAlg?: number;
  /** Ring-buffer events per second per CPU. */
  eventsPerSec?: number;
  /** Other objects than build/bpf/{pod,uplink}.o (tests). */
  objects?: { pod?: string; uplink?: string };
}

/** Where a pod's host-side veth is: a name or an index, in a netns (default: this process's). */
export interface LinkRef {
  ifname?: string;
  ifindex?: number;
  /** /run/netns/NAME, /proc/PID/ns/net or NAME. */
  netns?: string;
}

export interface Datapath {
  readonly programs: { fromPod: BpfProgram; toPod: BpfProgram; fromUplink: BpfProgram; toUplink: BpfProgram };
  /** Typed views over the pinned maps (ep4, tunnel4, ...). */
  readonly maps: DatapathMaps;
  /** The collections as loaded (raw map and program handles). */
  readonly collections: { pod: Collection; uplink: Collection };
  /** from_pod at tc ingress, to_pod at tc egress of a pod's host-side veth. Returns its ifindex. */
  attachPod(link: LinkRef): number;
  /** Removes both filters; a missing filter or device is fine. */
  detachPod(link: LinkRef): void;
  /** from_uplink at tc ingress, to_uplink (the node's own traffic to remote pods) at tc egress of the uplink. Returns its ifindex. */
  attachUplink(link: LinkRef): number;
  detachUplink(link: LinkRef): void;
  /** Closes this process's handles; pinned maps and attached filters stay. */
  close(): void;
}

/** The config.h constants for `node`, validated (errors name the field). */
export function nodeConstants(o: LoadDatapathOptions): Record<string, ConstValue> {
  const n = o.node;
  if (!n || typeof n !== 'object') throw new TypeError('loadDatapath: node is required');
  const be32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    return b;
  };
  const int = (v: unknown, what: string, max: number) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new TypeError(`${what}: expected an integer 0..${max}, got ${String(v)}`);
    return v;
  };
  const ip = parseIpv4(n.ip, 'node.ip');
  const pod = parseCidr(n.podCidr, 'node.podCidr');
  const cluster = parseCidr(n.clusterCidr, 'node.clusterCidr');
  const gw = parseIpv4(n.gatewayIp, 'node.gatewayIp');
  if (!cidrContains(cluster, pod.addr) || pod.prefixlen < cluster.prefixlen) {
    throw new TypeError(`node.podCidr: ${n.podCidr} is not inside node.clusterCidr ${n.clusterCidr}`);
  }
  if (int(n.uplinkIfindex, 'node.uplinkIfindex', 0x7fffffff) === 0) throw new TypeError('node.uplinkIfindex: must be > 0');
  const c: Record<string, ConstValue> = {
    NODE_IP: be32(ip),
    NODE_ID: int(n.id, 'node.id', 0xffffffff),
    UPLINK_IFINDEX: n.uplinkIfindex,
    UPLINK_MAC: parseMac(n.uplinkMac, 'node.uplinkMac'),
    POD_CIDR: be32(pod.addr),
    POD_CIDR_MASK: be32(pod.mask),
    CLUSTER_CIDR: be32(cluster.addr),
    CLUSTER_CIDR_MASK: be32(cluster.mask),
    GATEWAY_IP: be32(gw),
    VXLAN_VNI: int(n.vxlanVni ?? 1, 'node.vxlanVni', 0xffffff),
    VXLAN_PORT: int(n.vxlanPort ?? 8472, 'node.vxlanPort', 0xffff),
  };
  if (o.maglevM !== undefined) c.MAGLEV_M = int(o.maglevM, 'maglevM', 0xffffffff);
  if (o.lbDefaultAlg !== undefined) c.LB_DEFAULT_ALG = int(o.lbDefaultAlg, 'lbDefaultAlg', 255);
  if (o.eventsPerSec !== undefined) c.EVENTS_PER_SEC = int(o.eventsPerSec, 'eventsPerSec', 0xffffffff);
  return c;
}

function resolve(link: LinkRef, what: string): number {
  if (!link || typeof link !== 'object') throw new TypeError(`${what}: a { ifname | ifindex, netns } object is required`);
  if (link.ifindex !== undefined) {
    if (!Number.isInteger(link.ifindex) || link.ifindex <= 0) throw new TypeError(`${what}: ifindex ${String(link.ifindex)} is not a positive integer`);
    return link.ifindex;
  }
  if (typeof link.ifname !== 'string' || link.ifname === '') throw new TypeError(`${what}: ifname or ifindex is required`);
  return ifindexOf(link.ifname, link.netns);
}

/** ENOENT/ENODEV/EINVAL on detach mean "already gone". */
function gone(e: unknown): boolean {
  return e instanceof BpfError && ['ENOENT', 'ENODEV', 'EINVAL'].includes(e.code ?? '');
}

/** Loads pod.o and uplink.o for `node`; maps are created or reused under pinRoot. */
export async function loadDatapath(o: LoadDatapathOptions): Promise<Datapath> {
  if (typeof o?.pinRoot !== 'string' || !o.pinRoot.startsWith('/')) throw new TypeError('loadDatapath: pinRoot must be an absolute path');
  const constants = nodeConstants(o);
  mkdirSync(o.pinRoot, { recursive: true });

  const spec = (path: string) => {
    const s = loadCollectionSpec(path);
    if (o.ctEntries !== undefined) {
      if (!Number.isInteger(o.ctEntries) || o.ctEntries < 1) throw new TypeError(`ctEntries: ${o.ctEntries} is not a positive integer`);
      s.maps.weir_ct4.maxEntries = o.ctEntries;
    }
    if (o.maglevM !== undefined && s.maps.weir_maglev?.inner) s.maps.weir_maglev.inner.maxEntries = o.maglevM;
    return s;
  };
  const pod = await spec(o.objects?.pod ?? bpfObject('pod')).load({ pinRoot: o.pinRoot, constants });
  let uplink: Collection;
  try {
    uplink = await spec(o.objects?.uplink ?? bpfObject('uplink')).load({ pinRoot: o.pinRoot, constants });
  } catch (e) {
    pod.close();
    throw e;
  }
  const programs = { fromPod: pod.programs.from_pod, toPod: pod.programs.to_pod, fromUplink: uplink.programs.from_uplink, toUplink: uplink.programs.to_uplink };
  let maps: DatapathMaps;
  try {
    for (const [k, p] of Object.entries(programs)) if (!p) throw new Error(`datapath object lacks program ${k}`);
    maps = typedMaps((name) => {
      const m = pod.maps[name];
      if (!m) throw new Error(`pod.o has no map ${name}`);
      return m.dup();
    });
  } catch (e) {
    pod.close();
    uplink.close();
    throw e;
  }

  const attach = (idx: number, netns: string | undefined, point: 'ingress' | 'egress', prog: BpfProgram) =>
    tc.attach({ ifindex: idx, attachPoint: point, prog, priority: TC_DEFAULT_PRIORITY, handle: TC_DEFAULT_HANDLE, replace: true, netns });
  const detach = (idx: number, netns: string | undefined, point: 'ingress' | 'egress') => {
    try {
      tc.detach({ ifindex: idx, attachPoint: point, priority: TC_DEFAULT_PRIORITY, handle: TC_DEFAULT_HANDLE, netns });
    } catch (e) {
      if (!gone(e)) throw e;
    }
  };
  const lookupOrGone = (link: LinkRef, what: string): number | undefined => {
    try {
      return resolve(link, what);
    } catch (e) {
      if (gone(e)) return undefined;
      throw e;
    }
  };

  /** One program at tc ingress and one at tc egress of a link (pod veth or uplink). */
  const attachPair = (link: LinkRef, what: string, ingress: BpfProgram, egress: BpfProgram): number => {
    const idx = resolve(link, what);
    tc.createHook({ ifindex: idx, netns: link.netns });
    attach(idx, link.netns, 'ingress', ingress);
    attach(idx, link.netns, 'egress', egress);
    return idx;
  };
  const detachPair = (link: LinkRef, what: string): void => {
    const idx = lookupOrGone(link, what);
    if (idx === undefined) return;
    detach(idx, link.netns, 'ingress');
    detach(idx, link.netns, 'egress');
  };

  return {
    programs,
    maps,
    collections: { pod, uplink },
    attachPod: (link) => attachPair(link, 'attachPod', programs.fromPod, programs.toPod),
    detachPod: (link) => detachPair(link, 'detachPod'),
    attachUplink: (link) => attachPair(link, 'attachUplink', programs.fromUplink, programs.toUplink),
    detachUplink: (link) => detachPair(link, 'detachUplink'),
    close() {
      maps.close();
      pod.close();
      uplink.close();
    },
  };
}
