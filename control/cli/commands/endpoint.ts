// `weir endpoint list`: the local pods (and the node's own gateway address)
// the datapath delivers to, from weir_ep4.
import { readdirSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import * as T from '../../datapath/types.gen.js';
import { globals, openMaps, type GlobalOptions } from '../context.js';
import { flagNames, ip4, mac, table, toJson, write } from '../format.js';

/** ifindex -> name in the CLI's own network namespace (a lab node's veths live in the node's netns, so these may be absent). */
function interfaceNames(): Map<number, string> {
  const out = new Map<number, string>();
  try {
    for (const name of readdirSync('/sys/class/net')) {
      const idx = Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim());
      if (Number.isInteger(idx)) out.set(idx, name);
    }
  } catch {
    /* no sysfs: ifindex only */
  }
  return out;
}

function list(g: GlobalOptions): void {
  const m = openMaps(g);
  try {
    const names = interfaceNames();
    const endpoints = m.ep4
      .dump()
      .map(([k, v]) => ({
        addr: ip4(k.addr),
        endpointId: v.endpoint_id,
        ifindex: v.ifindex,
        ifname: names.get(v.ifindex) ?? null,
        mac: mac(v.mac),
        gatewayMac: mac(v.node_mac),
        flags: flagNames(v.flags, T.EndpointFlags, 'EP_F_'),
        identity: v.identity,
      }))
      .sort((a, b) => a.endpointId - b.endpointId);
    if (g.output === 'json') return write(toJson({ endpoints }));
    write(
      table(
        ['ADDRESS', 'ENDPOINT_ID', 'IFINDEX', 'MAC', 'GATEWAY_MAC', 'FLAGS', 'IDENTITY'],
        endpoints.map((e) => [e.addr, e.endpointId, `${e.ifindex}${e.ifname ? ` (${e.ifname})` : ''}`, e.mac, e.gatewayMac, e.flags.join(',') || '-', e.identity]),
      ),
    );
  } finally {
    m.close();
  }
}

export function registerEndpoint(program: Command): void {
  program
    .command('endpoint')
    .description('local endpoints')
    .command('list')
    .description('every local pod address with its host-side interface, MACs, endpoint id and identity')
    .action((_o, cmd: Command) => list(globals(cmd)));
}
