// routes.ts (pure): Node objects -> weir_tunnel4 entries, the diff against
// the map, and the reconcile that applies it; plus the address parsers and
// loadDatapath's input checks (errors name the field, nothing is loaded).
import { describe, expect, it } from 'vitest';
import {
  FLANNEL_BACKEND_ANNOTATION,
  UPLINK_MAC_ANNOTATION,
  desiredTunnels,
  diffTunnels,
  nodeRouteFromObject,
  parseCidr,
  parseIpv4,
  parseMac,
  reconcileTunnels,
  type NodeRoute,
  type TunnelTable,
} from '../../control/datapath/routes.js';
import { nodeConstants } from '../../control/datapath/programs.js';
import type { Tunnel4Key, TunnelInfo } from '../../control/datapath/types.gen.js';

const nodes: NodeRoute[] = [
  { name: 'n1', podCidr: '10.244.1.0/24', internalIp: '192.168.77.1', uplinkMac: '02:00:00:00:00:01', id: 1 },
  { name: 'n2', podCidr: '10.244.2.0/24', internalIp: '192.168.77.2', uplinkMac: '02:00:00:00:00:02', id: 2 },
  { name: 'fl', podCidr: '10.244.3.0/24', internalIp: '192.168.77.3', uplinkMac: '02:00:00:00:00:03', vtepMac: '6e:00:00:00:00:03' },
];

class FakeTable implements TunnelTable {
  m = new Map<string, [Tunnel4Key, TunnelInfo]>();
  writes = 0;
  dump() {
    return [...this.m.values()];
  }
  set(k: Tunnel4Key, v: TunnelInfo) {
    this.writes++;
    this.m.set(`${k.addr}/${k.prefixlen}`, [k, v]);
  }
  delete(k: Tunnel4Key) {
    return this.m.delete(`${k.addr}/${k.prefixlen}`);
  }
}

describe('address parsing', () => {
  it('parses and rejects with the field named', () => {
    expect(parseIpv4('10.244.1.1')).toBe(0x0af40101);
    expect(parseCidr('10.244.0.0/16')).toEqual({ addr: 0x0af40000, prefixlen: 16, mask: 0xffff0000 });
    expect(parseCidr('0.0.0.0/0')).toEqual({ addr: 0, prefixlen: 0, mask: 0 });
    expect(parseMac('02:AA:00:00:00:01').equals(Buffer.from([2, 0xaa, 0, 0, 0, 1]))).toBe(true);
    expect(() => parseIpv4('10.244.1.256', 'node.ip')).toThrow(/node.ip: '10.244.1.256' is not an IPv4 address/);
    expect(() => parseCidr('10.244.1.5/24', 'podCidr')).toThrow(/podCidr: .* host bits set/);
    expect(() => parseCidr('10.244.1.0/33', 'podCidr')).toThrow(/podCidr/);
    expect(() => parseMac('02:aa:00:00:01', 'uplinkMac')).toThrow(/uplinkMac/);
  });
});

describe('desiredTunnels / diffTunnels / reconcileTunnels', () => {
  it("two entries per other node (pod CIDR and its own address /32, same tunnel); the own node is skipped; a missing vtep MAC is zero (use node_mac)", () => {
    const { entries, errors } = desiredTunnels(nodes, 'n1');
    expect(errors).toEqual([]);
    expect(entries.map((e) => [e.key, e.value.node_addr, e.value.node_id])).toEqual([
      [{ prefixlen: 24, addr: 0x0af40300 }, 0xc0a84d03, 0],
      [{ prefixlen: 32, addr: 0xc0a84d03 }, 0xc0a84d03, 0],
      [{ prefixlen: 24, addr: 0x0af40200 }, 0xc0a84d02, 2],
      [{ prefixlen: 32, addr: 0xc0a84d02 }, 0xc0a84d02, 2],
    ]);
    // The node's own address is reached exactly like its pods (flannel vtep MAC included).
    expect(entries[1].value).toEqual(entries[0].value);
    expect(entries[3].value).toEqual(entries[2].value);
    expect(entries[0].value.vtep_mac.equals(parseMac('6e:00:00:00:00:03'))).toBe(true);
    expect(entries[2].value.vtep_mac.equals(Buffer.alloc(6))).toBe(true);
    expect(entries[2].value.node_mac.equals(parseMac('02:00:00:00:00:02'))).toBe(true);
    // Our own address never gets an entry.
    expect(entries.some((e) => e.key.addr === 0xc0a84d01)).toBe(false);
  });

  it('a bad node is reported and left out (neither entry) without taking the others away; a duplicate CIDR loses by name order', () => {
    const bad = [...nodes, { name: 'zz', podCidr: '10.244.2.0/24', internalIp: '192.168.77.9', uplinkMac: '02:00:00:00:00:09' }, { name: 'bad', podCidr: '10.244.9.0/24', internalIp: 'x', uplinkMac: '02:00:00:00:00:0a' }];
    const { entries, errors } = desiredTunnels(bad, 'n1');
    expect(entries.map((e) => `${e.key.addr.toString(16)}/${e.key.prefixlen}`)).toEqual(['af40300/24', 'c0a84d03/32', 'af40200/24', 'c0a84d02/32']);
    expect(errors).toEqual(["node bad: InternalIP: 'x' is not an IPv4 address", "node zz: podCIDR 10.244.2.0/24 is already node n2's"]);
    // Neither the pod CIDR of the node without a valid InternalIP nor the loser's address appears.
    expect(entries.some((e) => e.key.addr === 0x0af40900 || e.key.addr === 0xc0a84d09)).toBe(false);
  });

  it("two nodes with one InternalIP: the second (by name) is an error with neither entry; claiming our own address is one too", () => {
    const dup = [...nodes, { name: 'n9', podCidr: '10.244.9.0/24', internalIp: '192.168.77.2', uplinkMac: '02:00:00:00:00:09' }, { name: 'n8', podCidr: '10.244.8.0/24', internalIp: '192.168.77.1', uplinkMac: '02:00:00:00:00:08' }];
    const { entries, errors } = desiredTunnels(dup, 'n1');
    expect(errors).toEqual(["node n8: InternalIP 192.168.77.1 is already node n1's", "node n9: InternalIP 192.168.77.2 is already node n2's"]);
    expect(entries).toHaveLength(4);
    expect(entries.filter((e) => e.key.addr === 0xc0a84d02).map((e) => e.value.node_id)).toEqual([2]);
    expect(entries.some((e) => e.key.addr === 0x0af40900 || e.key.addr === 0x0af40800 || e.key.addr === 0xc0a84d01)).toBe(false);
  });

  it('reconcile writes new and changed entries, deletes stale ones, and leaves equal ones alone', () => {
    const t = new FakeTable();
    expect(reconcileTunnels(t, nodes, 'n1')).toEqual({ set: 4, deleted: 0, errors: [] });
    expect(reconcileTunnels(t, nodes, 'n1')).toEqual({ set: 0, deleted: 0, errors: [] });
    // n2 moves to another address: its CIDR entry changes, its old /32 goes, a new /32 comes; fl leaves (2 deletes).
    const moved = nodes.map((n) => (n.name === 'n2' ? { ...n, internalIp: '192.168.77.22' } : n)).filter((n) => n.name !== 'fl');
    expect(reconcileTunnels(t, moved, 'n1')).toEqual({ set: 2, deleted: 3, errors: [] });
    expect(t.dump().map(([k, v]) => [k.addr, k.prefixlen, v.node_addr])).toEqual([
      [0x0af40200, 24, 0xc0a84d16],
      [0xc0a84d16, 32, 0xc0a84d16],
    ]);
    expect(diffTunnels(t.dump(), desiredTunnels(moved, 'n1').entries)).toEqual({ set: [], del: [] });
    // A node whose InternalIP turns invalid loses both entries at the next reconcile.
    const broken = moved.map((n) => (n.name === 'n2' ? { ...n, internalIp: '' } : n));
    const r = reconcileTunnels(t, broken, 'n1');
    expect(r).toMatchObject({ set: 0, deleted: 2 });
    expect(r.errors).toEqual(["node n2: InternalIP: '' is not an IPv4 address"]);
    expect(t.dump()).toEqual([]);
  });

  it('reads Node objects: podCIDR, InternalIP, weir.io/uplink-mac, flannel VtepMAC', () => {
    const obj = {
      metadata: { name: 'fl', annotations: { [UPLINK_MAC_ANNOTATION]: '02:00:00:00:00:03', [FLANNEL_BACKEND_ANNOTATION]: '{"VNI":1,"VtepMAC":"6e:00:00:00:00:03"}' } },
      spec: { podCIDR: '10.244.3.0/24', podCIDRs: ['fd00::/64', '10.244.3.0/24'] },
      status: { addresses: [{ type: 'Hostname', address: 'fl' }, { type: 'InternalIP', address: '192.168.77.3' }] },
    };
    expect(nodeRouteFromObject(obj)).toEqual({
      name: 'fl',
      podCidr: '10.244.3.0/24',
      internalIp: '192.168.77.3',
      uplinkMac: '02:00:00:00:00:03',
      vtepMac: '6e:00:00:00:00:03',
    });
    expect(nodeRouteFromObject({ metadata: { name: 'x' }, spec: {} })).toMatch(/node x: no IPv4 spec.podCIDR/);
    expect(nodeRouteFromObject({ ...obj, metadata: { name: 'fl' } })).toMatch(/no weir.io\/uplink-mac annotation/);
  });
});

describe('loadDatapath input checks', () => {
  const node = { ip: '192.168.77.1', id: 1, podCidr: '10.244.1.0/24', clusterCidr: '10.244.0.0/16', gatewayIp: '10.244.1.1', uplinkIfindex: 3, uplinkMac: '02:00:00:00:00:01' };
  it('turns the node into config.h constants (network order for __be32)', () => {
    const c = nodeConstants({ pinRoot: '/x', node });
    expect((c.NODE_IP as Buffer).toString('hex')).toBe('c0a84d01');
    expect((c.POD_CIDR_MASK as Buffer).toString('hex')).toBe('ffffff00');
    expect((c.GATEWAY_IP as Buffer).toString('hex')).toBe('0af40101');
    expect(c.VXLAN_VNI).toBe(1);
    expect(c.VXLAN_PORT).toBe(8472);
  });
  it('names the bad field', () => {
    expect(() => nodeConstants({ pinRoot: '/x', node: { ...node, podCidr: '10.245.1.0/24' } })).toThrow(/node.podCidr: 10.245.1.0\/24 is not inside node.clusterCidr/);
    expect(() => nodeConstants({ pinRoot: '/x', node: { ...node, uplinkIfindex: 0 } })).toThrow(/node.uplinkIfindex/);
    expect(() => nodeConstants({ pinRoot: '/x', node: { ...node, uplinkMac: 'nope' } })).toThrow(/node.uplinkMac/);
    expect(() => nodeConstants({ pinRoot: '/x', node: { ...node, vxlanVni: 1 << 24 } })).toThrow(/node.vxlanVni/);
    expect(() => nodeConstants({ pinRoot: '/x', node: { ...node, gatewayIp: '10.244.1' } })).toThrow(/node.gatewayIp/);
  });
});
