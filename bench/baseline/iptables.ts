// kube-proxy's iptables proxier, as iptables-restore input: the same chains,
// rules, argument order, comments and probabilities that
// pkg/proxy/iptables/proxier.go (syncProxyRules) writes for ClusterIP and
// NodePort services with Cluster traffic policy, endpoints on any node and the
// cluster-CIDR local-traffic detector. See bench/README.md for what is left out.
import { CLUSTER_CIDR, servicePortNameString, type BenchEndpoint, type BenchService } from './services.js';
import { sha256Base32 } from './kube-hash.js';

export interface IptablesOptions {
  /** --cluster-cidr: traffic from outside it to a ClusterIP is masqueraded. */
  clusterCidr?: string;
  /** 1 << --iptables-masquerade-bit (14). */
  masqueradeMark?: string;
  /** kube-proxy adds --random-fully when iptables supports it (1.8.9 does). */
  randomFully?: boolean;
}

/** Above this many endpoints kube-proxy stops writing per-endpoint comments (largeClusterEndpointsThreshold). */
export const LARGE_CLUSTER_ENDPOINTS = 1000;

const proto = (s: BenchService) => s.protocol.toLowerCase();
const epString = (e: BenchEndpoint) => `${e.ip}:${e.port}`;

/** KUBE-SVC-<16 chars of base32(sha256(servicePortName + protocol))>. */
export const svcChainName = (nameString: string, protocol: string): string => 'KUBE-SVC-' + sha256Base32(nameString + protocol).slice(0, 16);
export const extChainName = (nameString: string, protocol: string): string => 'KUBE-EXT-' + sha256Base32(nameString + protocol).slice(0, 16);
/** KUBE-SEP-<16 chars of base32(sha256(servicePortName + protocol + "ip:port"))>. */
export const sepChainName = (nameString: string, protocol: string, endpoint: string): string =>
  'KUBE-SEP-' + sha256Base32(nameString + protocol + endpoint).slice(0, 16);

/** computeProbability: fmt.Sprintf("%0.10f", 1.0/float64(n)). */
export const computeProbability = (n: number): string => (1 / n).toFixed(10);

const chainLine = (c: string) => `:${c} - [0:0]`;

interface Buffers {
  natChains: string[];
  natRules: string[];
}

/** What one service contributes to the nat table's top-level chains (always rewritten, even in a partial sync). */
function topLevelRules(s: BenchService, out: string[]): void {
  const name = servicePortNameString(s);
  const p = proto(s);
  out.push(`-A KUBE-SERVICES -m comment --comment "${name} cluster IP" -m ${p} -p ${p} -d ${s.clusterIP} --dport ${s.port} -j ${svcChainName(name, p)}`);
  if (s.nodePort) out.push(`-A KUBE-NODEPORTS -m comment --comment ${name} -m ${p} -p ${p} --dport ${s.nodePort} -j ${extChainName(name, p)}`);
}

/** The service's own chains: SVC (and EXT), one SEP per endpoint. Skipped for unchanged services in a partial sync. */
function serviceChains(s: BenchService, o: Required<IptablesOptions>, large: boolean, buf: Buffers): void {
  const name = servicePortNameString(s);
  const p = proto(s);
  const svc = svcChainName(name, p);
  const comment = (c: string) => (large ? '' : ` -m comment --comment ${c}`);
  // Off-cluster sources reaching the ClusterIP are masqueraded (localDetector.IfNotLocal).
  buf.natRules.push(`-A ${svc} -m comment --comment "${name} cluster IP" -m ${p} -p ${p} -d ${s.clusterIP} --dport ${s.port} ! -s ${o.clusterCidr} -j KUBE-MARK-MASQ`);
  if (s.nodePort) {
    const ext = extChainName(name, p);
    buf.natChains.push(chainLine(ext));
    buf.natRules.push(`-A ${ext} -m comment --comment "masquerade traffic for ${name} external destinations" -j KUBE-MARK-MASQ`);
    buf.natRules.push(`-A ${ext} -j ${svc}`);
  }
  buf.natChains.push(chainLine(svc));
  const n = s.endpoints.length;
  s.endpoints.forEach((e, i) => {
    const stat = i < n - 1 ? ` -m statistic --mode random --probability ${computeProbability(n - i)}` : '';
    buf.natRules.push(`-A ${svc}${comment(`"${name} -> ${epString(e)}"`)}${stat} -j ${sepChainName(name, p, epString(e))}`);
  });
  for (const e of s.endpoints) {
    const sep = sepChainName(name, p, epString(e));
    buf.natChains.push(chainLine(sep));
    buf.natRules.push(`-A ${sep}${comment(name)} -s ${e.ip} -j KUBE-MARK-MASQ`);
    buf.natRules.push(`-A ${sep}${comment(name)} -m ${p} -p ${p} -j DNAT --to-destination ${epString(e)}`);
  }
}

function filterTable(o: Required<IptablesOptions>): string[] {
  return [
    '*filter',
    ...['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL', 'KUBE-FIREWALL'].map(chainLine),
    // localhostNodePorts (the default) brings kubelet's localnet guard with it.
    '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${o.masqueradeMark}/${o.masqueradeMark} -j ACCEPT`,
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    'COMMIT',
  ];
}

function opts(o: IptablesOptions): Required<IptablesOptions> {
  return { clusterCidr: o.clusterCidr ?? CLUSTER_CIDR, masqueradeMark: o.masqueradeMark ?? '0x4000', randomFully: o.randomFully ?? true };
}

const totalEndpoints = (services: BenchService[]) => services.reduce((n, s) => n + s.endpoints.length, 0);

/**
 * One syncProxyRules' iptables-restore input (kube-proxy runs it with --noflush --counters).
 * `changed` null: a full sync. Otherwise a partial sync (MinimizeIPTablesRestore, GA in 1.28):
 * only the named services' chains are written, and `deletedChains` are flushed and removed.
 */
export function restoreInput(services: BenchService[], o: IptablesOptions = {}, changed: Set<string> | null = null, deletedChains: string[] = []): string {
  const oo = opts(o);
  const large = totalEndpoints(services) > LARGE_CLUSTER_ENDPOINTS;
  const buf: Buffers = { natChains: ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'].map(chainLine), natRules: [] };
  buf.natRules.push(
    `-A KUBE-POSTROUTING -m mark ! --mark ${oo.masqueradeMark}/${oo.masqueradeMark} -j RETURN`,
    // Clear the mark so a packet re-traversing the stack is not masqueraded twice.
    `-A KUBE-POSTROUTING -j MARK --xor-mark ${oo.masqueradeMark}`,
    `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE${oo.randomFully ? ' --random-fully' : ''}`,
    `-A KUBE-MARK-MASQ -j MARK --or-mark ${oo.masqueradeMark}`,
  );
  const skipped: Buffers = { natChains: [], natRules: [] };
  for (const s of services) {
    if (s.endpoints.length === 0) throw new Error(`service ${servicePortNameString(s)}: the bench generates services with endpoints only`);
    topLevelRules(s, buf.natRules);
    const write = changed === null || changed.has(servicePortNameString(s));
    serviceChains(s, oo, large, write ? buf : skipped);
  }
  for (const c of deletedChains) {
    buf.natChains.push(chainLine(c));
    buf.natRules.push(`-X ${c}`);
  }
  buf.natRules.push('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS');
  return [...filterTable(oo), '*nat', ...buf.natChains, ...buf.natRules, 'COMMIT', ''].join('\n');
}

/** The partial restore kube-proxy runs after one service's endpoints changed. */
export function partialRestoreInput(services: BenchService[], changedService: BenchService, removed: BenchEndpoint[], o: IptablesOptions = {}): string {
  const name = servicePortNameString(changedService);
  // Stale chains are deleted in the same restore unless in large-cluster mode (then only once per sync period).
  const large = totalEndpoints(services) > LARGE_CLUSTER_ENDPOINTS;
  const deleted = large ? [] : removed.map((e) => sepChainName(name, proto(changedService), epString(e)));
  return restoreInput(services, o, new Set([name]), deleted);
}

/**
 * The jumps from the built-in chains, which kube-proxy installs with
 * `iptables -I` (EnsureRule) outside the restore. Applied once per bench netns.
 */
export function jumpRulesInput(): string {
  return [
    '*filter',
    ...['KUBE-PROXY-FIREWALL', 'KUBE-NODEPORTS', 'KUBE-EXTERNAL-SERVICES', 'KUBE-SERVICES', 'KUBE-FORWARD', 'KUBE-FIREWALL'].map(chainLine),
    '-I INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
    '-I INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-I FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
    '-I FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-I FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-I OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-I INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-I OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-I FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-I INPUT -j KUBE-FIREWALL',
    '-I OUTPUT -j KUBE-FIREWALL',
    'COMMIT',
    '*nat',
    ...['KUBE-SERVICES', 'KUBE-POSTROUTING'].map(chainLine),
    '-I OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-I PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-I POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    'COMMIT',
    '',
  ].join('\n');
}

/** Count of rules (-A lines) in a restore input, for the report. */
export const ruleCount = (input: string): number => input.split('\n').filter((l) => l.startsWith('-A ')).length;
