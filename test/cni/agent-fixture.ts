// A node for CNI tests: a netns with an uplink, weir's datapath loaded for it
// (pins under /sys/fs/bpf/h4-*), and the agent's CNI side (Ipam +
// EndpointManager + serveCni) running in the test process. Plus a helper that
// calls bin/weir-cni exactly as a runtime does: env variables and stdin JSON.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveCni, type CniServer } from '../../control/agent/cni-server.js';
import { loadDatapath, type Datapath } from '../../control/datapath/programs.js';
import { podMtu, setupNode } from '../../control/datapath/node.js';
import { reconcileTunnels } from '../../control/datapath/routes.js';
import { EndpointManager } from '../../control/endpoint/manager.js';
import { Ipam } from '../../control/ipam/allocator.js';
import { repoRoot } from '../lib/fixtures.js';
import { run, type NetnsLab } from '../lib/netns.js';

export const CNI_BIN = join(repoRoot, 'bin', 'weir-cni');
export const cniBuilt = () => existsSync(join(repoRoot, 'dist', 'control', 'cni', 'main.js'));

export interface NodeSpec {
  name: string;
  /** e.g. 10.244.1.0/24 */
  podCidr: string;
  /** Underlay address of the uplink, with prefix, e.g. 192.168.50.1/24. */
  nodeIp: string;
  id: number;
  /** The other end of the uplink: a netns (fabric bridge or peer). */
  uplinkPeerNs: string;
  uplinkPeerName: string;
  uplinkPeerAddr?: string;
  uplinkMtu?: number;
}

export class TestNode {
  readonly stateDir: string;
  readonly socketPath: string;
  readonly pinRoot: string;
  datapath!: Datapath;
  ipam!: Ipam;
  manager!: EndpointManager;
  server: CniServer | undefined;
  uplinkIfindex = 0;
  uplinkMac = '';

  private constructor(
    readonly lab: NetnsLab,
    readonly spec: NodeSpec,
    readonly ns: string,
  ) {
    this.stateDir = mkdtempSync(join(tmpdir(), `h4-${spec.name}-`));
    this.socketPath = join(this.stateDir, 'cni.sock');
    this.pinRoot = `/sys/fs/bpf/h4-${process.pid}-${spec.name}`;
  }

  get nsPath(): string {
    return this.lab.nsPath(this.ns);
  }

  /** The first address of the pod CIDR: the pods' gateway. */
  get gateway(): string {
    const [a, b, c, d] = this.spec.podCidr.split('/')[0].split('.').map(Number);
    return `${a}.${b}.${c}.${d + 1}`;
  }

  static async create(lab: NetnsLab, spec: NodeSpec): Promise<TestNode> {
    const ns = await lab.createNetns(spec.name);
    const node = new TestNode(lab, spec, ns);
    const pair = await lab.veth({
      a: { ns, name: 'uplink0', addr: spec.nodeIp },
      b: { ns: spec.uplinkPeerNs, name: spec.uplinkPeerName, ...(spec.uplinkPeerAddr ? { addr: spec.uplinkPeerAddr } : {}) },
      mtu: spec.uplinkMtu ?? 1500,
    });
    node.uplinkIfindex = pair.a.ifindex;
    node.uplinkMac = pair.a.mac;
    await node.start();
    return node;
  }

  /** Loads the datapath and starts the agent's CNI side (again, after stop(): an agent restart). */
  async start(): Promise<void> {
    mkdirSync(this.pinRoot, { recursive: true });
    this.datapath = await loadDatapath({
      pinRoot: this.pinRoot,
      node: {
        ip: this.spec.nodeIp.split('/')[0],
        id: this.spec.id,
        podCidr: this.spec.podCidr,
        clusterCidr: '10.244.0.0/16',
        gatewayIp: this.gateway,
        uplinkIfindex: this.uplinkIfindex,
        uplinkMac: this.uplinkMac,
      },
    });
    // Forwarding, rp_filter, the gateway on lo, masquerade, from_uplink: all inside the node's netns.
    await setupNode(this.datapath, {
      netns: this.nsPath,
      uplink: 'uplink0',
      podCidr: this.spec.podCidr,
      clusterCidr: '10.244.0.0/16',
      gatewayIp: this.gateway,
    });
    this.ipam = Ipam.open({ cidr: this.spec.podCidr, stateFile: join(this.stateDir, 'ipam.json') });
    this.manager = EndpointManager.open({
      ipam: this.ipam,
      datapath: this.datapath,
      stateFile: join(this.stateDir, 'endpoints.json'),
      mtu: podMtu(this.spec.uplinkMtu ?? 1500),
      nodeNetns: this.nsPath,
    });
    await this.manager.resync();
    this.server = await serveCni({ socketPath: this.socketPath, manager: this.manager });
  }

  /** Tunnel entries for the other nodes' pod CIDRs (what the agent keeps from Node objects). */
  routeTo(peers: TestNode[]): void {
    const nodes = [this, ...peers].map((n) => ({
      name: n.spec.name,
      podCidr: n.spec.podCidr,
      internalIp: n.spec.nodeIp.split('/')[0],
      uplinkMac: n.uplinkMac,
      id: n.spec.id,
    }));
    const r = reconcileTunnels(this.datapath.maps.tunnel4, nodes, this.spec.name);
    if (r.errors.length) throw new Error(r.errors.join('; '));
  }

  /** Stops serving and closes this process's handles; pins, links and state files stay (as when an agent exits). */
  async stop(): Promise<void> {
    await this.server?.close(2_000);
    this.server = undefined;
    this.datapath?.close();
  }

  async destroy(): Promise<void> {
    await this.stop().catch(() => undefined);
    rmSync(this.pinRoot, { recursive: true, force: true });
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  conf(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { cniVersion: '1.1.0', name: 'weir', type: 'weir-cni', socketPath: this.socketPath, timeoutSeconds: 20, ...extra };
  }

  /** What the node holds, to compare before and after a failed call. */
  async snapshot(podNs: string[] = []): Promise<Record<string, unknown>> {
    const links = async (ns: string) =>
      (JSON.parse((await this.lab.ip(ns, ['-j', 'link', 'show'])).stdout) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
    const routes = (JSON.parse((await this.lab.ip(this.ns, ['-j', 'route', 'show'])).stdout) as Array<{ dst: string; dev?: string }>)
      .map((r) => `${r.dst} ${r.dev ?? ''}`)
      .sort();
    const pods: Record<string, string[]> = {};
    for (const p of podNs) pods[p] = await links(p);
    return {
      nodeLinks: await links(this.ns),
      nodeRoutes: routes,
      pods,
      ipam: this.ipam.list().map((a) => `${a.ip} ${a.containerId}/${a.ifname}`).sort(),
      endpoints: this.manager.list().map((r) => `${r.containerId}/${r.ifname}`).sort(),
      ep4: [...this.datapath.maps.ep4.entries()].map(([k, v]) => `${k.addr}:${v.ifindex}`).sort(),
    };
  }
}

export interface CniCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  /** Network configuration (stdin), or raw text. */
  conf: Record<string, unknown> | string;
  /** Leave these variables out. */
  omit?: string[];
}

export interface CniOutput {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed (undefined when empty). */
  json?: Record<string, any>;
}

/** Runs bin/weir-cni as containerd does: CNI_* in the environment, the config on stdin. */
export async function callCni(c: CniCall): Promise<CniOutput> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    CNI_COMMAND: c.command,
    CNI_PATH: '/opt/cni/bin',
    ...(c.containerId !== undefined ? { CNI_CONTAINERID: c.containerId } : {}),
    ...(c.netns !== undefined ? { CNI_NETNS: c.netns } : {}),
    ...(c.ifname !== undefined || c.containerId !== undefined ? { CNI_IFNAME: c.ifname ?? 'eth0' } : {}),
    ...(c.args !== undefined ? { CNI_ARGS: c.args } : {}),
  };
  for (const k of c.omit ?? []) delete env[k];
  const r = await run(CNI_BIN, [], { env, input: typeof c.conf === 'string' ? c.conf : JSON.stringify(c.conf), timeoutMs: 40_000 });
  let json: Record<string, any> | undefined;
  if (r.stdout.trim()) json = JSON.parse(r.stdout);
  return { code: r.code, stdout: r.stdout, stderr: r.stderr, json };
}
