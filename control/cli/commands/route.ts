// `weir route list`: remote pod CIDRs and the node that owns each (the
// weir_tunnel4 LPM trie: VXLAN outer destination), plus this node's own
// addresses (weir_node4, which NodePort frontends match). A zero vtep_mac
// means the inner frame goes to node_mac.
import type { Command } from 'commander';
import { globals, openMaps, type GlobalOptions } from '../context.js';
import { ip4, mac, table, toJson, write } from '../format.js';

function list(g: GlobalOptions): void {
  const m = openMaps(g);
  try {
    const routes = m.tunnel4
      .dump()
      .map(([k, v]) => ({ cidr: `${ip4(k.addr)}/${k.prefixlen}`, nodeAddr: ip4(v.node_addr), nodeId: v.node_id, nodeMac: mac(v.node_mac), vtepMac: mac(v.vtep_mac), sort: k.addr }))
      .sort((a, b) => a.sort - b.sort)
      .map(({ sort: _s, ...r }) => r);
    const nodeAddresses = m.node4
      .dump()
      .map(([addr, v]) => ({ addr: ip4(addr), flags: v.flags }))
      .sort((a, b) => a.addr.localeCompare(b.addr, 'en', { numeric: true }));
    if (g.output === 'json') return write(toJson({ routes, nodeAddresses }));
    write(
      table(['POD_CIDR', 'VIA_NODE', 'NODE_ID', 'NODE_MAC', 'VTEP_MAC'], routes.map((r) => [r.cidr, r.nodeAddr, r.nodeId, r.nodeMac, r.vtepMac === '00:00:00:00:00:00' ? '(node mac)' : r.vtepMac])) +
        `\nthis node's addresses (NodePort frontends): ${nodeAddresses.map((a) => a.addr).join(', ') || '(none)'}\n`,
    );
  } finally {
    m.close();
  }
}

export function registerRoute(program: Command): void {
  program
    .command('route')
    .description('routes to other nodes')
    .command('list')
    .description('remote pod CIDRs with the node (underlay address, id, MAC) that owns each, and this node\'s addresses')
    .action((_o, cmd: Command) => list(globals(cmd)));
}
