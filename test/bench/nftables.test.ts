// The nftables baseline: kube-proxy's nftables-mode structure (verdict maps
// for service lookup, a numgen vmap per service, dnat per endpoint), checked as
// text, then loaded with nft into a namespace this test makes and read back.
import { afterAll, describe, expect, it } from 'vitest';
import { deleteTable, endpointChain, externalChain, fullTransaction, partialTransaction, serviceChain } from '../../bench/baseline/nftables.js';
import { buildCluster, replaceLastEndpoint, type BenchService } from '../../bench/baseline/services.js';
import { NetnsLab, requireNetns, runOk } from '../lib/netns.js';

const SVC: BenchService = {
  namespace: 'ns1',
  name: 'svc1',
  portName: 'p80',
  protocol: 'TCP',
  clusterIP: '172.30.0.41',
  port: 80,
  endpoints: [{ ip: '10.180.0.1', port: 80 }],
};

describe('nftables ruleset text', () => {
  it('names chains as kube-proxy does (hash-prefixed, slash-separated)', () => {
    // kube-proxy's own test fixtures use these names for this service and endpoint.
    expect(serviceChain(SVC)).toBe('service-ULMVA6XW-ns1/svc1/tcp/p80');
    expect(endpointChain(SVC, SVC.endpoints[0])).toBe('endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80');
    expect(externalChain(SVC)).toBe('external-ULMVA6XW-ns1/svc1/tcp/p80');
  });

  it('looks services up in the service-ips verdict map and balances with numgen', () => {
    const services = buildCluster({ services: 12, endpoints: 3, nodePortEvery: 5 });
    const lines = fullTransaction(services).trim().split('\n');
    expect(lines[0]).toBe('add table ip kube-proxy { comment "rules for kube-proxy" ; }');
    expect(lines).toContain('add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }');
    expect(lines).toContain('add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips');
    expect(lines).toContain('add rule ip kube-proxy nat-prerouting jump services');
    expect(lines).toContain('add rule ip kube-proxy nat-postrouting jump masquerading');
    expect(lines.filter((l) => l.startsWith('add element ip kube-proxy service-ips '))).toHaveLength(13);
    expect(lines.filter((l) => l.startsWith('add element ip kube-proxy service-nodeports '))).toHaveLength(2);
    const s = services[4];
    const chain = serviceChain(s);
    expect(lines).toContain(`add element ip kube-proxy service-ips { ${s.clusterIP} . tcp . 80 : goto ${chain} }`);
    expect(lines).toContain(
      `add rule ip kube-proxy ${chain} numgen random mod 3 vmap { ${s.endpoints.map((e, i) => `${i} : goto ${endpointChain(s, e)}`).join(' , ')} }`,
    );
    for (const e of s.endpoints) {
      expect(lines).toContain(`add rule ip kube-proxy ${endpointChain(s, e)} ip saddr ${e.ip} jump mark-for-masquerade`);
      expect(lines).toContain(`add rule ip kube-proxy ${endpointChain(s, e)} meta l4proto tcp dnat to ${e.ip}:${e.port}`);
    }
    // One rule per service for off-cluster sources, no per-service rule in a shared chain.
    expect(lines.filter((l) => l.includes('ip saddr != 10.244.0.0/16 jump mark-for-masquerade'))).toHaveLength(13);
  });

  it('a partial sync touches only the changed service\'s chains', () => {
    const services = buildCluster({ services: 12, endpoints: 3 });
    const c = replaceLastEndpoint(services, 6);
    const lines = partialTransaction(c.services[6], [c.removed]).trim().split('\n');
    const chains = new Set(lines.map((l) => l.split(' ')[4]));
    expect(chains).toEqual(new Set([serviceChain(c.services[6]), ...c.services[6].endpoints.map((e) => endpointChain(c.services[6], e)), endpointChain(c.services[6], c.removed)]));
    expect(lines).toContain(`flush chain ip kube-proxy ${endpointChain(c.services[6], c.removed)}`);
    expect(lines.some((l) => l.includes('add element'))).toBe(false);
  });
});

const skip = requireNetns('nft ruleset load', ['nft']);
describe.skipIf(skip)('nftables ruleset in a namespace', () => {
  const lab = new NetnsLab();
  afterAll(() => lab.cleanup());

  it('nft accepts the full and partial transactions and holds what they say', async () => {
    const ns = await lab.createNetns('nft');
    const nft = (args: string[], input?: string) => runOk('nsenter', [`--net=${lab.nsPath(ns)}`, 'nft', ...args], { input, timeoutMs: 30_000 });
    const services = buildCluster({ services: 40, endpoints: 5 });
    await nft(['-f', '-'], fullTransaction(services));
    const json = JSON.parse((await nft(['-j', 'list', 'map', 'ip', 'kube-proxy', 'service-ips'])).stdout);
    const map = json.nftables.find((x: { map?: unknown }) => x.map).map;
    expect(map.elem).toHaveLength(41);
    const c = replaceLastEndpoint(services, 20);
    await nft(['-f', '-'], partialTransaction(c.services[20], [c.removed]));
    const chain = (await nft(['list', 'chain', 'ip', 'kube-proxy', serviceChain(c.services[20])])).stdout;
    expect(chain).toContain(endpointChain(c.services[20], c.added));
    expect(chain).not.toContain(endpointChain(c.services[20], c.removed));
    await nft(['-f', '-'], deleteTable);
    expect((await nft(['list', 'tables'])).stdout).not.toContain('kube-proxy');
  });
});
