// The lab's network: one fabric netns holding a bridge (the "switch"), one
// netns per node with its uplink on that bridge, and an "outside" host on the
// fabric for NodePort traffic. Every name starts with weir-lab-, so `down`
// (and `up` after a crash) can find and remove exactly what the lab made.
// Nothing here touches the root namespace's links, routes or firewall.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

export const LAB_PREFIX = 'weir-lab-';
export const FABRIC_NS = `${LAB_PREFIX}fabric`;
export const EXT_NS = `${LAB_PREFIX}ext`;
export const FABRIC_BRIDGE = 'br0';
export const FABRIC_IP = '172.18.0.1';
export const FABRIC_PREFIX = 24;
export const EXT_IP = '172.18.0.200';
export const API_PORT = 6443;
export const STATE_DIR = '/run/weir-lab';
export const PIN_BASE = '/sys/fs/bpf/weir-lab';
export const CLUSTER_CIDR = '10.244.0.0/16';
export const SERVICE_CIDR = '10.96.0.0/12';
export const UPLINK = 'eth0';

export interface LabNode {
  name: string;
  index: number;
  netns: string;
  ip: string;
  mac: string;
  podCidr: string;
  pinRoot: string;
  cniSocket: string;
  metricsPort: number;
  stateDir: string;
}

export function labNode(index: number): LabNode {
  if (!Number.isInteger(index) || index < 1 || index > 50) throw new Error(`lab node index ${index}: expected 1..50`);
  const name = `node-${index}`;
  return {
    name,
    index,
    netns: `${LAB_PREFIX}${name}`,
    ip: `172.18.0.${10 + index}`,
    // Locally administered, derived from the address: the control plane knows
    // every node's MAC, so no ARP crosses the fabric for overlay traffic.
    mac: `02:00:ac:12:00:${(10 + index).toString(16).padStart(2, '0')}`,
    podCidr: `10.244.${index}.0/24`,
    pinRoot: `${PIN_BASE}/${name}`,
    cniSocket: `${STATE_DIR}/${name}/cni.sock`,
    metricsPort: 9962,
    stateDir: `${STATE_DIR}/${name}`,
  };
}

export const nsPath = (ns: string) => `/run/netns/${ns}`;

function sh(cmd: string, args: string[], opts: { ok?: boolean } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });
  } catch (e) {
    if (opts.ok) return '';
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(err.stderr ?? '').trim() || err.message}`);
  }
}

export const ipIn = (ns: string, args: string[]) => sh('ip', ['-n', ns, ...args]);

/** Namespaces the lab made (from /run/netns). */
export function labNamespaces(): string[] {
  if (!existsSync('/run/netns')) return [];
  return readdirSync('/run/netns').filter((n) => n.startsWith(LAB_PREFIX));
}

/** Builds fabric, nodes and the outside host. */
export function createTopology(nodes: LabNode[]): void {
  sh('ip', ['netns', 'add', FABRIC_NS]);
  ipIn(FABRIC_NS, ['link', 'set', 'lo', 'up']);
  ipIn(FABRIC_NS, ['link', 'add', FABRIC_BRIDGE, 'type', 'bridge']);
  ipIn(FABRIC_NS, ['addr', 'add', `${FABRIC_IP}/${FABRIC_PREFIX}`, 'dev', FABRIC_BRIDGE]);
  ipIn(FABRIC_NS, ['link', 'set', FABRIC_BRIDGE, 'up']);
  const attach = (ns: string, port: string, ip: string, mac?: string) => {
    sh('ip', ['netns', 'add', ns]);
    ipIn(ns, ['link', 'set', 'lo', 'up']);
    // Create the pair inside the fabric, then move one end to the host's netns.
    ipIn(FABRIC_NS, ['link', 'add', port, 'type', 'veth', 'peer', 'name', `${port}-up`]);
    ipIn(FABRIC_NS, ['link', 'set', `${port}-up`, 'netns', ns]);
    ipIn(ns, ['link', 'set', `${port}-up`, 'name', UPLINK]);
    if (mac) ipIn(ns, ['link', 'set', UPLINK, 'address', mac]);
    ipIn(ns, ['addr', 'add', `${ip}/${FABRIC_PREFIX}`, 'dev', UPLINK]);
    ipIn(ns, ['link', 'set', UPLINK, 'up']);
    ipIn(FABRIC_NS, ['link', 'set', port, 'master', FABRIC_BRIDGE]);
    ipIn(FABRIC_NS, ['link', 'set', port, 'up']);
  };
  for (const n of nodes) attach(n.netns, n.name, n.ip, n.mac);
  attach(EXT_NS, 'ext', EXT_IP);
}

/** Removes every weir-lab-* netns (their veths go with them). */
export function removeTopology(): string[] {
  const gone: string[] = [];
  for (const ns of labNamespaces()) {
    sh('ip', ['netns', 'del', ns], { ok: true });
    gone.push(ns);
  }
  return gone;
}
