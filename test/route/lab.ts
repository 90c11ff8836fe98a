// A small cluster in network namespaces for the routing tests: a fabric
// (a bridge in its own netns), weir nodes with the datapath loaded and
// attached, pods set up the way the endpoint code does it (/32 address,
// default route via the gateway, host-side veth with from_pod/to_pod,
// endpoint map entry, /32 host route on the node), and TCP helpers.
import { rmSync } from 'node:fs';
import { loadDatapath, type Datapath } from '../../control/datapath/programs.js';
import { podMtu, setupNode, uplinkInfo } from '../../control/datapath/node.js';
import { possibleCpus } from '../../native/index.js';
import { NetnsLab, type LabProcess } from '../lib/netns.js';
import { ipToNumber, parseMac } from '../lib/packet.js';

export const CLUSTER_CIDR = '10.244.0.0/16';
export const UPLINK_MTU = 1500;

export interface WeirNode {
  name: string;
  ns: string;
  nsPath: string;
  ip: string;
  mac: string;
  podCidr: string;
  gateway: string;
  dp: Datapath;
  pinRoot: string;
}

export interface Pod {
  name: string;
  ns: string;
  ip: string;
  node: string;
}

/** Packets weir_metrics counted for (endpoint, reason, direction), summed over CPUs. */
export function metricPackets(n: WeirNode, endpointId: number, reason: number, dir: number): bigint {
  const k = Buffer.alloc(8);
  k.writeUInt32LE(endpointId, 0);
  k[4] = reason;
  k[5] = dir;
  const v = n.dp.maps.metrics.lookup(k);
  if (!v) return 0n;
  const stride = v.length / possibleCpus();
  let s = 0n;
  for (let c = 0; c < possibleCpus(); c++) s += v.readBigUInt64LE(c * stride);
  return s;
}

export class RouteLab {
  readonly lab: NetnsLab;
  readonly nodes: WeirNode[] = [];
  readonly #pinPrefix: string;

  /** `prefix` names the namespaces, `pinPrefix` the pin dirs (/sys/fs/bpf/<pinPrefix>-*). */
  constructor(o: { prefix?: string; pinPrefix?: string } = {}) {
    this.lab = new NetnsLab({ prefix: o.prefix ?? 'weirtest-h3-' });
    this.#pinPrefix = o.pinPrefix ?? 'h3';
  }

  fabric!: string;
  #fabricPorts = 0;

  async createFabric(): Promise<void> {
    this.fabric = await this.lab.createNetns('fab');
    await this.lab.ip(this.fabric, ['link', 'add', 'br0', 'type', 'bridge']);
    await this.lab.ip(this.fabric, ['link', 'set', 'br0', 'up']);
  }

  /** A netns with `eth0` on the fabric at `ip`/24. */
  async fabricHost(name: string, ip: string): Promise<{ ns: string; mac: string; ifindex: number }> {
    const ns = await this.lab.createNetns(name);
    const port = `p${this.#fabricPorts++}`;
    const pair = await this.lab.veth({ a: { ns, name: 'eth0', addr: `${ip}/24` }, b: { ns: this.fabric, name: port }, mtu: UPLINK_MTU });
    await this.lab.ip(this.fabric, ['link', 'set', port, 'master', 'br0']);
    return { ns, mac: pair.a.mac, ifindex: pair.a.ifindex };
  }

  /** A weir node: datapath loaded with this node's constants, uplink plumbed and attached. */
  async weirNode(name: string, ip: string, podCidr: string, id: number): Promise<WeirNode> {
    const host = await this.fabricHost(name, ip);
    const nsPath = this.lab.nsPath(host.ns);
    const up = await uplinkInfo({ netns: nsPath, uplink: 'eth0' });
    const gateway = podCidr.replace(/\.0\/\d+$/, '.1');
    const pinRoot = `/sys/fs/bpf/${this.#pinPrefix}-${process.pid}-${this.lab.namePrefix.split('-').at(-2)}-${name}`;
    const dp = await loadDatapath({
      pinRoot,
      node: { ip, id, podCidr, clusterCidr: CLUSTER_CIDR, gatewayIp: gateway, uplinkIfindex: up.ifindex, uplinkMac: up.mac },
    });
    const node: WeirNode = { name, ns: host.ns, nsPath, ip, mac: up.mac, podCidr, gateway, dp, pinRoot };
    this.nodes.push(node);
    await setupNode(dp, { netns: nsPath, uplink: 'eth0', podCidr, clusterCidr: CLUSTER_CIDR, gatewayIp: gateway });
    return node;
  }

  /** A pod on `node`, set up as the CNI endpoint code does. */
  async pod(node: WeirNode, name: string, ip: string, endpointId: number): Promise<Pod> {
    const ns = await this.lab.createNetns(name);
    const host = `lxc${name}`;
    const pair = await this.lab.veth({ a: { ns: node.ns, name: host }, b: { ns, name: 'eth0', addr: `${ip}/32` }, mtu: podMtu(UPLINK_MTU) });
    await this.lab.ip(ns, ['route', 'add', node.gateway, 'dev', 'eth0', 'scope', 'link']);
    await this.lab.ip(ns, ['route', 'add', 'default', 'via', node.gateway, 'dev', 'eth0']);
    await this.lab.ip(node.ns, ['route', 'add', `${ip}/32`, 'dev', host, 'scope', 'link']);
    node.dp.maps.ep4.set(
      { addr: ipToNumber(ip) },
      { ifindex: pair.a.ifindex, endpoint_id: endpointId, mac: parseMac(pair.b.mac), node_mac: parseMac(pair.a.mac), flags: 0, identity: 0 },
    );
    node.dp.attachPod({ ifname: host, netns: node.nsPath });
    return { name, ns, ip, node: node.name };
  }

  /** Routes between weir nodes from their pod CIDRs (what routes.ts makes from Node objects). */
  tunnel(from: WeirNode, to: { ip: string; mac: string; podCidr: string; vtepMac?: string }, id = 0): void {
    const [net, len] = to.podCidr.split('/');
    from.dp.maps.tunnel4.set(
      { prefixlen: Number(len), addr: ipToNumber(net) },
      { node_addr: ipToNumber(to.ip), node_id: id, node_mac: parseMac(to.mac), vtep_mac: to.vtepMac ? parseMac(to.vtepMac) : Buffer.alloc(6) },
    );
  }

  /** A TCP server on `port` that reports, per connection, who it saw and how many bytes came. */
  async tcpServer(ns: string, port: number): Promise<LabProcess> {
    const script = `
      const net = require('net');
      net.createServer((c) => {
        let n = 0;
        c.on('data', (d) => { n += d.length; });
        c.on('end', () => c.end(JSON.stringify({ peer: c.remoteAddress, local: c.localAddress, bytes: n })));
        c.on('error', () => {});
      }).listen(${port}, '0.0.0.0', () => console.log('READY'));`;
    const p = this.lab.spawn(ns, process.execPath, ['-e', script], { timeoutMs: 120_000 });
    await p.waitForLine(/^READY$/, 10_000);
    return p;
  }

  /** Connects from `ns`, sends `bytes`, half-closes; returns its own address and the server's report. */
  async tcpClient(ns: string, addr: string, port: number, bytes: number): Promise<{ local: string; server: { peer: string; local: string; bytes: number } }> {
    const script = `
      const net = require('net');
      const s = net.connect(${port}, '${addr}', () => {
        const local = s.localAddress;
        s.end(Buffer.alloc(${bytes}, 7));
        let r = '';
        s.on('data', (d) => { r += d; });
        s.on('end', () => { console.log(JSON.stringify({ local, server: JSON.parse(r) })); process.exit(0); });
      });
      s.setTimeout(8000, () => { console.error('timeout'); process.exit(2); });
      s.on('error', (e) => { console.error(e.message); process.exit(1); });`;
    const r = await this.lab.nsenter(ns, process.execPath, ['-e', script], { timeoutMs: 15_000 });
    if (!r.ok) throw new Error(`TCP ${ns} -> ${addr}:${port} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
    return JSON.parse(r.stdout.trim());
  }

  async cleanup(): Promise<void> {
    for (const n of this.nodes) {
      n.dp.close();
      rmSync(n.pinRoot, { recursive: true, force: true });
    }
    await this.lab.cleanup();
  }
}
