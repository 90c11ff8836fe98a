// Per-node plumbing around the BPF datapath: what the node's own stack must
// do for pods (forwarding, loose reverse-path checks, the gateway address,
// masquerade to outside the cluster) and the uplink attach. Everything runs
// inside the node's network namespace (`netns`), never another one.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Datapath } from './programs.js';
import { cidrContains, formatCidr, formatIpv4, parseCidr, parseIpv4 } from './routes.js';

const run = promisify(execFile);

/** The comment every weir iptables rule carries, so teardown removes only ours. */
export const MASQ_COMMENT = 'weir: masquerade pods leaving the cluster';

export interface NodeNet {
  /** The node's netns (/run/netns/NAME or /proc/PID/ns/net). Omit only when this process already runs in the node's namespace (a real node's agent). */
  netns?: string;
  /** Uplink interface name (towards other nodes). */
  uplink: string;
}

export interface UplinkInfo {
  ifindex: number;
  mac: string;
  mtu: number;
  /** First IPv4 address on the uplink (the node's underlay address). */
  ip?: string;
}

export interface NodePlumbing extends NodeNet {
  podCidr: string;
  clusterCidr: string;
  /** Gateway pods route via; added as a /32 on the node's loopback so the node answers pings to it and uses it as source towards pods. */
  gatewayIp: string;
  /** iptables MASQUERADE for pod CIDR -> outside the cluster CIDR (default true). */
  masquerade?: boolean;
}

async function inNetns(netns: string | undefined, cmd: string, args: string[]): Promise<string> {
  const [file, argv] = netns ? ['nsenter', [`--net=${netns}`, '--', cmd, ...args]] : [cmd, args];
  try {
    const r = await run(file, argv, { timeout: 15_000 });
    return r.stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}${netns ? ` (netns ${netns})` : ''}: ${(err.stderr || err.message).trim()}`, { cause: e });
  }
}

/** The uplink's index, MAC, MTU and IPv4 address: what loadDatapath's `node` needs. */
export async function uplinkInfo(o: NodeNet): Promise<UplinkInfo> {
  if (typeof o?.uplink !== 'string' || !o.uplink) throw new TypeError('uplinkInfo: uplink (interface name) is required');
  const out = await inNetns(o.netns, 'ip', ['-j', 'addr', 'show', 'dev', o.uplink]);
  const [link] = JSON.parse(out) as Array<{ ifindex: number; address: string; mtu: number; addr_info?: Array<{ family: string; local: string }> }>;
  if (!link) throw new Error(`uplink ${o.uplink}: no such interface`);
  return { ifindex: link.ifindex, mac: link.address, mtu: link.mtu, ip: link.addr_info?.find((a) => a.family === 'inet')?.local };
}

/** Pod MTU for VXLAN: the uplink's minus outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
export const podMtu = (uplinkMtu: number) => uplinkMtu - 50;

function validate(o: NodePlumbing) {
  const pod = parseCidr(o.podCidr, 'podCidr');
  const cluster = parseCidr(o.clusterCidr, 'clusterCidr');
  const gw = parseIpv4(o.gatewayIp, 'gatewayIp');
  if (!cidrContains(pod, gw)) throw new TypeError(`gatewayIp: ${o.gatewayIp} is not inside podCidr ${o.podCidr}`);
  if (gw === pod.addr) throw new TypeError(`gatewayIp: ${o.gatewayIp} is the network address of podCidr ${o.podCidr} (the overlay next hop); use another`);
  if (typeof o.uplink !== 'string' || !o.uplink) throw new TypeError('uplink: interface name required');
  return { pod: formatCidr(pod), cluster: formatCidr(cluster), hop: formatIpv4(pod.addr) };
}

const masqRule = (pod: string, cluster: string) => ['-s', pod, '!', '-d', cluster, '-m', 'comment', '--comment', MASQ_COMMENT, '-j', 'MASQUERADE'];

/**
 * Prepares the node's stack for the datapath, idempotently: IPv4 forwarding,
 * rp_filter off (decapsulated and pod packets arrive on interfaces the node
 * has no route back through), the gateway /32 on lo, the cluster route out
 * of the uplink (node -> remote pods), the masquerade rule, and the uplink
 * programs.
 */
export async function setupNode(dp: Datapath, o: NodePlumbing): Promise<{ uplinkIfindex: number }> {
  const { pod, cluster, hop } = validate(o);
  // Slash form: an interface name may contain dots (eth0.100).
  for (const [key, value] of [
    ['net/ipv4/ip_forward', '1'],
    ['net/ipv4/conf/all/rp_filter', '0'],
    ['net/ipv4/conf/default/rp_filter', '0'],
    [`net/ipv4/conf/${o.uplink}/rp_filter`, '0'],
  ]) {
    await inNetns(o.netns, 'sysctl', ['-q', '-w', `${key}=${value}`]);
  }
  await inNetns(o.netns, 'ip', ['addr', 'replace', `${o.gatewayIp}/32`, 'dev', 'lo']);
  // The node's own traffic to other nodes' pods: out of the uplink, where
  // to_uplink encapsulates it. Source = the gateway, so replies come back
  // through the overlay (a node address would be masqueraded by the peer).
  // The next hop is the pod CIDR's network address (flannel's style: never
  // a host) with a permanent neighbour entry, so no ARP ever goes out for it;
  // to_uplink rewrites the frame anyway. Local pods' /32 routes are more
  // specific.
  const up = await uplinkInfo(o);
  await inNetns(o.netns, 'ip', ['neigh', 'replace', hop, 'lladdr', up.mac, 'dev', o.uplink, 'nud', 'permanent']);
  await inNetns(o.netns, 'ip', ['route', 'replace', cluster, 'via', hop, 'dev', o.uplink, 'onlink', 'src', o.gatewayIp, 'mtu', String(podMtu(up.mtu))]);
  if (o.masquerade ?? true) {
    const rule = masqRule(pod, cluster);
    const present = await inNetns(o.netns, 'iptables', ['-t', 'nat', '-C', 'POSTROUTING', ...rule]).then(
      () => true,
      () => false,
    );
    if (!present) await inNetns(o.netns, 'iptables', ['-t', 'nat', '-A', 'POSTROUTING', ...rule]);
  }
  const uplinkIfindex = dp.attachUplink({ ifname: o.uplink, netns: o.netns });
  return { uplinkIfindex };
}

/** Undoes setupNode's rule, address and attach (sysctls stay: other things may rely on forwarding). */
export async function teardownNode(dp: Datapath | undefined, o: NodePlumbing): Promise<void> {
  const { pod, cluster, hop } = validate(o);
  const rule = masqRule(pod, cluster);
  while (await inNetns(o.netns, 'iptables', ['-t', 'nat', '-D', 'POSTROUTING', ...rule]).then(() => true, () => false));
  await inNetns(o.netns, 'ip', ['route', 'del', cluster, 'via', hop, 'dev', o.uplink]).catch(() => undefined);
  await inNetns(o.netns, 'ip', ['neigh', 'del', hop, 'dev', o.uplink]).catch(() => undefined);
  await inNetns(o.netns, 'ip', ['addr', 'del', `${o.gatewayIp}/32`, 'dev', 'lo']).catch(() => undefined);
  dp?.detachUplink({ ifname: o.uplink, netns: o.netns });
}
