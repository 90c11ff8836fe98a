// The bench topology: three network namespaces made for the run.
//
//   <p>-cli (client pod)        <p>-node (the node: rules / weir live here)       <p>-be (backends)
//   eth0 10.244.255.250/29 ---- <p>c0 10.244.255.249/29                            lo: endpoint IPs /32
//                               <p>b0 192.168.251.1/30 ------------------------- eth0 192.168.251.2/30
//                               route 10.244.0.0/16 via 192.168.251.2            default via .1
//
// The client sends to ClusterIPs (10.96.0.0/12) via the node; the node's
// iptables/nftables rules or weir's programs DNAT to a pod address that lives
// in the backend netns. Nothing here touches the root namespace.
import { run, runOk } from './exec.js';
import { CLIENT_IP } from './baseline/services.js';

export interface Topology {
  prefix: string;
  cli: string;
  node: string;
  be: string;
  /** Host-side (node netns) veth of the client pod: where weir's from_pod/to_pod attach. */
  nodeCliIf: string;
  nodeBeIf: string;
  clientIp: string;
  /** Endpoint addresses currently on the backend netns' lo. */
  backendIps: Set<string>;
}

const ip = (args: string[]) => runOk('ip', args, { timeoutMs: 10_000 });

export async function netnsExists(name: string): Promise<boolean> {
  const r = await run('ip', ['netns', 'list']);
  return r.stdout.split('\n').some((l) => l.split(' ')[0] === name);
}

/** Create the three netns and their links. A leftover topology with the same prefix is removed first. */
export async function createTopology(prefix: string): Promise<Topology> {
  const t: Topology = {
    prefix,
    cli: `${prefix}-cli`,
    node: `${prefix}-node`,
    be: `${prefix}-be`,
    nodeCliIf: `${prefix}c0`,
    nodeBeIf: `${prefix}b0`,
    clientIp: CLIENT_IP,
    backendIps: new Set(),
  };
  await destroyTopology(t);
  for (const ns of [t.cli, t.node, t.be]) await ip(['netns', 'add', ns]);
  for (const ns of [t.cli, t.node, t.be]) await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  await ip(['-n', t.node, 'link', 'add', t.nodeCliIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', t.cli]);
  await ip(['-n', t.node, 'link', 'add', t.nodeBeIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', t.be]);
  await ip(['-n', t.node, 'addr', 'add', '10.244.255.249/29', 'dev', t.nodeCliIf]);
  await ip(['-n', t.node, 'addr', 'add', '192.168.251.1/30', 'dev', t.nodeBeIf]);
  await ip(['-n', t.cli, 'addr', 'add', `${CLIENT_IP}/29`, 'dev', 'eth0']);
  await ip(['-n', t.be, 'addr', 'add', '192.168.251.2/30', 'dev', 'eth0']);
  for (const [ns, dev] of [[t.node, t.nodeCliIf], [t.node, t.nodeBeIf], [t.cli, 'eth0'], [t.be, 'eth0']]) {
    await ip(['-n', ns, 'link', 'set', dev, 'up']);
  }
  await ip(['-n', t.cli, 'route', 'add', 'default', 'via', '10.244.255.249']);
  await ip(['-n', t.be, 'route', 'add', 'default', 'via', '192.168.251.1']);
  await ip(['-n', t.node, 'route', 'add', '10.244.0.0/16', 'via', '192.168.251.2']);
  // The node forwards; these sysctls are the bench netns' own (nsenter: /proc/sys/net is per netns).
  await runOk('sysctl', ['-qw', 'net.ipv4.ip_forward=1'], { netns: t.node });
  await runOk('sysctl', ['-qw', 'net.ipv4.tcp_syncookies=0', 'net.core.somaxconn=4096', 'net.ipv4.tcp_max_syn_backlog=4096'], { netns: t.be });
  await runOk('sysctl', ['-qw', 'net.ipv4.ip_local_port_range=1024 65000'], { netns: t.cli });
  return t;
}

/** Put the endpoints the traffic tests reach on the backend netns (a /32 each on lo). */
export async function addBackendIps(t: Topology, ips: string[]): Promise<void> {
  for (const a of ips) {
    if (t.backendIps.has(a)) continue;
    await ip(['-n', t.be, 'addr', 'add', `${a}/32`, 'dev', 'lo']);
    t.backendIps.add(a);
  }
}

/** Remove the netns (their links go with them). Safe to call twice or on a half-made topology. */
export async function destroyTopology(t: Pick<Topology, 'cli' | 'node' | 'be'>): Promise<void> {
  for (const ns of [t.cli, t.node, t.be]) {
    if (await netnsExists(ns)) await run('ip', ['netns', 'del', ns]);
  }
}
