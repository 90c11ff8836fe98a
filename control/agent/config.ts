// The agent's configuration: defaults < file (the ConfigMap's agent.yaml in a
// cluster) < environment (WEIR_*) < flags. Every value is validated here, so
// a bad setting stops the agent at start with the setting's name and source.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';

export interface AgentConfig {
  nodeName: string;
  /** Path to a kubeconfig; empty = in-cluster config (service account). */
  kubeconfig: string;
  /** Overrides the kubeconfig's server (the lab points agents at its API server). */
  apiServer: string;
  bpffsRoot: string;
  uplink: string;
  clusterCidr: string;
  serviceCidr: string;
  /** Empty: taken from Node.spec.podCIDR. */
  podCidr: string;
  lbAlgorithm: 'random' | 'maglev';
  maglevTableSize: number;
  ctEntries: number;
  metricsPort: number;
  metricsHost: string;
  cniSocket: string;
  stateDir: string;
  logLevel: string;
}

export const DEFAULTS: AgentConfig = {
  nodeName: '',
  kubeconfig: '',
  apiServer: '',
  bpffsRoot: '/sys/fs/bpf/weir',
  uplink: 'eth0',
  clusterCidr: '10.244.0.0/16',
  serviceCidr: '10.96.0.0/12',
  podCidr: '',
  lbAlgorithm: 'random',
  maglevTableSize: 16381,
  ctEntries: 524288,
  metricsPort: 9962,
  metricsHost: '0.0.0.0',
  cniSocket: '/run/weir/cni.sock',
  stateDir: '/var/lib/weir',
  logLevel: 'info',
};

type Key = keyof AgentConfig;

/** Flag and env spellings: --node-name / WEIR_NODE_NAME / nodeName in the file. */
export const SETTINGS: Record<Key, { flag: string; env: string; help: string }> = {
  nodeName: { flag: 'node-name', env: 'WEIR_NODE_NAME', help: 'this node (default: $NODE_NAME or the hostname)' },
  kubeconfig: { flag: 'kubeconfig', env: 'KUBECONFIG', help: 'kubeconfig path (default: in-cluster config)' },
  apiServer: { flag: 'api-server', env: 'WEIR_API_SERVER', help: 'API server URL overriding the kubeconfig' },
  bpffsRoot: { flag: 'bpffs-root', env: 'WEIR_BPFFS_ROOT', help: 'pin root of the maps' },
  uplink: { flag: 'uplink', env: 'WEIR_UPLINK', help: 'the interface facing other nodes' },
  clusterCidr: { flag: 'cluster-cidr', env: 'WEIR_CLUSTER_CIDR', help: 'all pod addresses' },
  serviceCidr: { flag: 'service-cidr', env: 'WEIR_SERVICE_CIDR', help: 'ClusterIP range' },
  podCidr: { flag: 'pod-cidr', env: 'WEIR_POD_CIDR', help: "this node's pod CIDR (default: Node.spec.podCIDR)" },
  lbAlgorithm: { flag: 'lb-algorithm', env: 'WEIR_LB_ALGORITHM', help: 'random | maglev' },
  maglevTableSize: { flag: 'maglev-table-size', env: 'WEIR_MAGLEV_TABLE_SIZE', help: 'Maglev M, a prime (16381, 65521, ...)' },
  ctEntries: { flag: 'ct-entries', env: 'WEIR_CT_ENTRIES', help: 'conntrack table size' },
  metricsPort: { flag: 'metrics-port', env: 'WEIR_METRICS_PORT', help: '/metrics, /healthz, /readyz port' },
  metricsHost: { flag: 'metrics-host', env: 'WEIR_METRICS_HOST', help: 'address the metrics server binds' },
  cniSocket: { flag: 'cni-socket', env: 'WEIR_CNI_SOCKET', help: 'unix socket weir-cni talks to' },
  stateDir: { flag: 'state-dir', env: 'WEIR_STATE_DIR', help: 'IPAM state and endpoint records' },
  logLevel: { flag: 'log-level', env: 'WEIR_LOG_LEVEL', help: 'trace | debug | info | warn | error' },
};

export class ConfigError extends Error {}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let i = 2; i * i <= n; i++) if (n % i === 0) return false;
  return true;
}

export function parseCidr(s: string): { addr: number; bits: number } | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s);
  if (!m) return undefined;
  const o = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (o.some((x) => x > 255) || bits > 32) return undefined;
  const addr = ((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]) >>> 0;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  if ((addr & mask) >>> 0 !== addr) return undefined;
  return { addr, bits };
}

function coerce(k: Key, raw: unknown, source: string): AgentConfig[Key] {
  const bad = (why: string): never => {
    throw new ConfigError(`${source}: ${SETTINGS[k].flag}=${JSON.stringify(raw)}: ${why}`);
  };
  const num = (min: number, max: number) => {
    const n = typeof raw === 'number' ? raw : /^\d+$/.test(String(raw)) ? Number(raw) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) bad(`expected an integer in ${min}..${max}`);
    return n;
  };
  switch (k) {
    case 'metricsPort':
      return num(1, 65535);
    case 'ctEntries':
      return num(1024, 1 << 26);
    case 'maglevTableSize': {
      const n = num(7, 1 << 20);
      if (!isPrime(n)) bad('the Maglev table size must be a prime (e.g. 16381 or 65521)');
      return n;
    }
    case 'lbAlgorithm':
      if (raw !== 'random' && raw !== 'maglev') bad('expected random or maglev');
      return raw as 'random' | 'maglev';
    case 'clusterCidr':
    case 'serviceCidr':
      if (!parseCidr(String(raw))) bad('expected an IPv4 CIDR like 10.244.0.0/16 (host bits zero)');
      return String(raw);
    case 'podCidr':
      if (raw !== '' && !parseCidr(String(raw))) bad('expected an IPv4 CIDR like 10.244.1.0/24 (host bits zero)');
      return String(raw);
    case 'logLevel':
      if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(String(raw))) bad('expected trace|debug|info|warn|error');
      return String(raw);
    default:
      if (typeof raw !== 'string') bad('expected a string');
      return raw as string;
  }
}

export interface ConfigSources {
  flags?: Partial<Record<string, string>>;
  env?: NodeJS.ProcessEnv;
  /** A YAML or JSON file of { nodeName: ..., lbAlgorithm: ... }. */
  file?: string;
}

export function resolveConfig(src: ConfigSources): AgentConfig {
  const cfg: AgentConfig = { ...DEFAULTS };
  const set = (k: Key, raw: unknown, source: string) => {
    (cfg as unknown as Record<string, unknown>)[k] = coerce(k, raw, source);
  };
  if (src.file) {
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(src.file, 'utf8'));
    } catch (e) {
      throw new ConfigError(`config file ${src.file}: ${(e as Error).message}`);
    }
    if (doc !== null && doc !== undefined) {
      if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file ${src.file}: expected a mapping of settings`);
      for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
        if (!(k in SETTINGS)) throw new ConfigError(`config file ${src.file}: unknown setting '${k}' (known: ${Object.keys(SETTINGS).join(', ')})`);
        set(k as Key, typeof v === 'number' ? v : String(v), `config file ${src.file}`);
      }
    }
  }
  const env = src.env ?? {};
  for (const k of Object.keys(SETTINGS) as Key[]) {
    const v = env[SETTINGS[k].env];
    if (v !== undefined && v !== '') set(k, v, `environment ${SETTINGS[k].env}`);
  }
  for (const [flag, v] of Object.entries(src.flags ?? {})) {
    if (v === undefined) continue;
    const k = (Object.keys(SETTINGS) as Key[]).find((x) => SETTINGS[x].flag === flag);
    if (!k) throw new ConfigError(`unknown flag --${flag}`);
    set(k, v, 'flag');
  }
  if (!cfg.nodeName) cfg.nodeName = env.NODE_NAME || hostname();
  return cfg;
}
