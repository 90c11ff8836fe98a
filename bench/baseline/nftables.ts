// kube-proxy's nftables proxier (pkg/proxy/nftables/proxier.go, 1.31+), as
// `nft -f` input: table ip kube-proxy, its base chains, the service-ips and
// service-nodeports verdict maps, one service-* chain per service port with
// `numgen random mod N vmap`, one endpoint-* chain per endpoint with dnat.
// Same transaction order as setupNFTables + syncProxyRules (knftables writes
// one command per line). Differences from kube-proxy: bench/README.md.
import { CLUSTER_CIDR, SERVICE_CIDR, type BenchEndpoint, type BenchService } from './services.js';
import { sha256Base32 } from './kube-hash.js';

export const NFT_TABLE = 'kube-proxy';
const T = `ip ${NFT_TABLE}`;
const MARK = '0x4000';

/** hashAndTruncate: 8 chars of base32(sha256(name)), "-", name (never truncated at our lengths). */
const hashed = (name: string) => `${sha256Base32(name).slice(0, 8)}-${name}`;
const proto = (s: BenchService) => s.protocol.toLowerCase();
/** servicePortChainNameBase: "ns/name/proto/portName". */
const base = (s: BenchService) => `${s.namespace}/${s.name}/${proto(s)}/${s.portName}`;
export const serviceChain = (s: BenchService): string => 'service-' + hashed(base(s));
export const externalChain = (s: BenchService): string => 'external-' + hashed(base(s));
/** servicePortEndpointChainNameBase: "ns/name/proto/portName__ip/port". */
export const endpointChain = (s: BenchService, e: BenchEndpoint): string => 'endpoint-' + hashed(`${base(s)}__${e.ip}/${e.port}`);

// Priorities as numbers: dstnat is -100 and srcnat 100 for the ip family (knftables
// writes "dstnat-10" etc.; nft resolves them to these values).
const BASE_CHAINS: Array<[name: string, type: string, hook: string, prio: number]> = [
  ['filter-prerouting', 'filter', 'prerouting', -110],
  ['filter-input', 'filter', 'input', -110],
  ['filter-forward', 'filter', 'forward', -110],
  ['filter-output', 'filter', 'output', -110],
  ['filter-output-post-dnat', 'filter', 'output', -90],
  ['nat-prerouting', 'nat', 'prerouting', -100],
  ['nat-output', 'nat', 'output', -100],
  ['nat-postrouting', 'nat', 'postrouting', 100],
];

const JUMP_CHAINS: Array<[dst: string, src: string, extra: string]> = [
  ['nodeport-endpoints-check', 'filter-input', 'ct state new '],
  ['service-endpoints-check', 'filter-input', 'ct state new '],
  ['service-endpoints-check', 'filter-forward', 'ct state new '],
  ['service-endpoints-check', 'filter-output', 'ct state new '],
  ['firewall-check', 'filter-prerouting', 'ct state new '],
  ['firewall-check', 'filter-output', 'ct state new '],
  ['services', 'nat-output', ''],
  ['services', 'nat-prerouting', ''],
  ['masquerading', 'nat-postrouting', ''],
  ['cluster-ips-check', 'filter-forward', 'ct state new '],
  ['cluster-ips-check', 'filter-output-post-dnat', 'ct state new '],
];

/** setupNFTables: the table, base chains, helper chains, sets and maps (full syncs only). */
function setup(out: string[]): void {
  out.push(`add table ${T} { comment "rules for kube-proxy" ; }`);
  for (const [name, type, hook, prio] of BASE_CHAINS) {
    out.push(`add chain ${T} ${name} { type ${type} hook ${hook} priority ${prio} ; }`, `flush chain ${T} ${name}`);
  }
  const created = new Set<string>();
  const ensure = (c: string) => {
    if (created.has(c)) return;
    created.add(c);
    out.push(`add chain ${T} ${c}`, `flush chain ${T} ${c}`);
  };
  for (const [dst, src, extra] of JUMP_CHAINS) {
    ensure(dst);
    out.push(`add rule ${T} ${src} ${extra}jump ${dst}`);
  }
  for (const c of ['services', 'cluster-ips-check', 'masquerading', 'mark-for-masquerade']) ensure(c);
  out.push(
    `add rule ${T} mark-for-masquerade mark set mark or ${MARK}`,
    `add rule ${T} masquerading mark and ${MARK} == 0 return`,
    `add rule ${T} masquerading mark set mark xor ${MARK}`,
    `add rule ${T} masquerading masquerade fully-random`,
    `add set ${T} cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }`,
    `add rule ${T} cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"`,
    `add rule ${T} cluster-ips-check ip daddr { ${SERVICE_CIDR} } drop comment "Drop traffic to unallocated ClusterIPs"`,
    // nodePortAddresses matches all: the nodeport-ips set is created and deleted again.
    `add set ${T} nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }`,
    `delete set ${T} nodeport-ips`,
    `add map ${T} no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }`,
    `add map ${T} no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }`,
    `add chain ${T} reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }`,
    `flush chain ${T} reject-chain`,
    `add rule ${T} reject-chain reject`,
    `add rule ${T} service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services`,
    `add rule ${T} nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports`,
    `add map ${T} firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }`,
  );
  ensure('firewall-check');
  out.push(
    `add rule ${T} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips`,
    `add map ${T} service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`,
    `add map ${T} service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }`,
    `add rule ${T} services ip daddr . meta l4proto . th dport vmap @service-ips`,
    `add rule ${T} services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports`,
  );
  for (const c of ['cluster-ips', 'service-ips', 'firewall-ips', 'no-endpoint-services', 'no-endpoint-nodeports', 'service-nodeports']) {
    out.push(c === 'cluster-ips' ? `flush set ${T} ${c}` : `flush map ${T} ${c}`);
  }
}

/** One service's chains and rules (written in full syncs, and in partial syncs for changed services). */
function serviceChains(s: BenchService, out: string[]): void {
  const p = proto(s);
  const svc = serviceChain(s);
  out.push(`add rule ${T} ${svc} ip daddr ${s.clusterIP} ${p} dport ${s.port} ip saddr != ${CLUSTER_CIDR} jump mark-for-masquerade`);
  if (s.nodePort) {
    out.push(`add rule ${T} ${externalChain(s)} jump mark-for-masquerade`, `add rule ${T} ${externalChain(s)} goto ${svc}`);
  }
  const vmap = s.endpoints.map((e, i) => `${i} : goto ${endpointChain(s, e)}`).join(' , ');
  out.push(`add rule ${T} ${svc} numgen random mod ${s.endpoints.length} vmap { ${vmap} }`);
  for (const e of s.endpoints) {
    const ep = endpointChain(s, e);
    out.push(`add rule ${T} ${ep} ip saddr ${e.ip} jump mark-for-masquerade`, `add rule ${T} ${ep} meta l4proto ${p} dnat to ${e.ip}:${e.port}`);
  }
}

function chainsFor(s: BenchService): string[] {
  return [...s.endpoints.map((e) => endpointChain(s, e)), serviceChain(s), ...(s.nodePort ? [externalChain(s)] : [])];
}

/** A full sync from scratch: what `nft -f -` receives on kube-proxy's first sync. */
export function fullTransaction(services: BenchService[]): string {
  const out: string[] = [];
  setup(out);
  for (const s of services) {
    for (const c of chainsFor(s)) out.push(`add chain ${T} ${c}`, `flush chain ${T} ${c}`);
    const p = proto(s);
    out.push(`add element ${T} cluster-ips { ${s.clusterIP} }`);
    out.push(`add element ${T} service-ips { ${s.clusterIP} . ${p} . ${s.port} : goto ${serviceChain(s)} }`);
    if (s.nodePort) out.push(`add element ${T} service-nodeports { ${p} . ${s.nodePort} : goto ${externalChain(s)} }`);
    serviceChains(s, out);
  }
  return out.join('\n') + '\n';
}

/**
 * The partial sync after one service's endpoints changed: its chains are re-added,
 * flushed and refilled; the map elements of every service already exist (ensureElem
 * writes nothing for them); the removed endpoint's chain is flushed now and deleted
 * by a later transaction (kube-proxy waits a second), which is not on this path.
 */
export function partialTransaction(changed: BenchService, removed: BenchEndpoint[]): string {
  const out: string[] = [];
  for (const c of chainsFor(changed)) out.push(`add chain ${T} ${c}`, `flush chain ${T} ${c}`);
  serviceChains(changed, out);
  for (const e of removed) out.push(`flush chain ${T} ${endpointChain(changed, e)}`);
  return out.join('\n') + '\n';
}

export const deleteTable = `delete table ${T}\n`;
