// The synthetic cluster every side of the benchmark programs: N services x E
// endpoints, plus one UDP service for the request/response test. Plain data;
// the iptables, nftables and weir sides each translate it their own way.

export type Protocol = 'TCP' | 'UDP';

export interface BenchEndpoint {
  ip: string;
  port: number;
}

/** One Service port as kube-proxy sees it (a ServicePortName plus its frontends and endpoints). */
export interface BenchService {
  namespace: string;
  name: string;
  /** spec.ports[].name; '' for an unnamed port (kube-proxy then omits ":<name>"). */
  portName: string;
  protocol: Protocol;
  clusterIP: string;
  port: number;
  /** spec.ports[].nodePort, when the Service is type NodePort. */
  nodePort?: number;
  endpoints: BenchEndpoint[];
}

export interface ClusterSpec {
  services: number;
  endpoints: number;
  /** Every k-th TCP service is type NodePort (0: none). NodePorts are scarce (30000-32767). */
  nodePortEvery?: number;
}

export const BENCH_NAMESPACE = 'bench';
export const CLUSTER_CIDR = '10.244.0.0/16';
export const SERVICE_CIDR = '10.96.0.0/12';
/** 10.244.255.0/24 is kept out of the endpoint pool: the client and replacement endpoints live there. */
export const CLIENT_IP = '10.244.255.250';
export const SERVICE_PORT = 80;
export const TARGET_PORT = 8080;
export const UDP_PORT = 53;
export const UDP_TARGET_PORT = 5353;
const ENDPOINT_POOL = 255 * 256 - 1; // 10.244.0.1 .. 10.244.254.255
const NODEPORT_MIN = 30000;
const NODEPORT_MAX = 32767;

export const ipToInt = (ip: string): number => {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`bad IPv4 address '${ip}'`);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
};
export const intToIp = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

const CLUSTER_BASE = ipToInt('10.244.0.0');
const SERVICE_BASE = ipToInt('10.96.0.0');

/** The i-th pod address of the endpoint pool (0-based). */
export const podIp = (i: number): string => intToIp(CLUSTER_BASE + 1 + i);
/** ClusterIPs start at 10.96.0.10 (10.96.0.1 is the API server, .10 DNS, by convention). */
export const clusterIp = (i: number): string => intToIp(SERVICE_BASE + 11 + i);

/** Build the synthetic services. Index 0 is the UDP echo service; 1..N are the TCP services. */
export function buildCluster(spec: ClusterSpec): BenchService[] {
  const { services: n, endpoints: e } = spec;
  if (!Number.isInteger(n) || n < 1) throw new Error(`cluster spec: services must be a positive integer (got ${n})`);
  if (!Number.isInteger(e) || e < 1) throw new Error(`cluster spec: endpoints must be a positive integer (got ${e})`);
  if ((n + 1) * e > ENDPOINT_POOL) throw new Error(`cluster spec: services x endpoints = ${(n + 1) * e} exceeds the ${ENDPOINT_POOL} pod addresses of ${CLUSTER_CIDR}`);
  if (n > ipToInt('10.111.255.254') - SERVICE_BASE - 11) throw new Error(`cluster spec: services (${n}) exceeds ${SERVICE_CIDR}`);
  const every = spec.nodePortEvery ?? 10;
  const out: BenchService[] = [];
  out.push({
    namespace: BENCH_NAMESPACE,
    name: 'udp-echo',
    portName: 'dns',
    protocol: 'UDP',
    clusterIP: clusterIp(0),
    port: UDP_PORT,
    endpoints: Array.from({ length: e }, (_, j) => ({ ip: podIp(j), port: UDP_TARGET_PORT })),
  });
  let nodePort = NODEPORT_MIN;
  for (let i = 1; i <= n; i++) {
    const s: BenchService = {
      namespace: BENCH_NAMESPACE,
      name: `svc-${i}`,
      portName: 'http',
      protocol: 'TCP',
      clusterIP: clusterIp(i),
      port: SERVICE_PORT,
      endpoints: Array.from({ length: e }, (_, j) => ({ ip: podIp(i * e + j), port: TARGET_PORT })),
    };
    if (every > 0 && i % every === 0 && nodePort <= NODEPORT_MAX) s.nodePort = nodePort++;
    out.push(s);
  }
  return out;
}

/** The change the "one endpoint" measurement makes: service `index`'s last endpoint moves to a new pod. */
export function replaceLastEndpoint(services: BenchService[], index: number, generation = 0): { services: BenchService[]; removed: BenchEndpoint; added: BenchEndpoint } {
  const s = services[index];
  if (!s) throw new Error(`replaceLastEndpoint: no service at index ${index}`);
  const removed = s.endpoints[s.endpoints.length - 1];
  const added = { ip: intToIp(ipToInt('10.244.255.1') + (generation % 200)), port: removed.port };
  const next = services.slice();
  next[index] = { ...s, endpoints: [...s.endpoints.slice(0, -1), added] };
  return { services: next, removed, added };
}

/** kube-proxy's ServicePortName.String(): "ns/name" plus ":port" when the port is named. */
export const servicePortNameString = (s: Pick<BenchService, 'namespace' | 'name' | 'portName'>): string =>
  `${s.namespace}/${s.name}${s.portName ? ':' + s.portName : ''}`;
