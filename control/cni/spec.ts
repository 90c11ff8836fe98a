// CNI spec types and version handling. weir implements spec 1.1.0 and answers
// configs declaring 0.3.1, 0.4.0, 1.0.0 or 1.1.0 in that version's result
// format. Pure: no I/O, so the plugin starts fast and tests need no kernel.
import { CniError, ErrorCode } from './errors.js';

export const SPEC_VERSION = '1.1.0';
/** Every cniVersion weir reads and writes, oldest first. */
export const SUPPORTED_VERSIONS = ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
export const COMMANDS: readonly Command[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

/** "1.0.0" -> [1, 0, 0]; undefined when not a plain x.y.z. */
export function parseSemver(v: unknown): [number, number, number] | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

export function compareVersions(a: string, b: string): number {
  const x = parseSemver(a) ?? [0, 0, 0];
  const y = parseSemver(b) ?? [0, 0, 0];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}

export const isSupported = (v: unknown): v is CniVersion => (SUPPORTED_VERSIONS as readonly unknown[]).includes(v);

/**
 * A conflist's version choice (SPEC 1.1.0 "cniVersions"): the highest version
 * both the list and weir support; else its `cniVersion` if weir supports it.
 * Runtimes do this themselves; it is here for tests and `weir` tooling.
 */
export function negotiateVersion(conflist: { cniVersion?: unknown; cniVersions?: unknown }): CniVersion {
  const offered = Array.isArray(conflist.cniVersions) ? conflist.cniVersions.filter((v): v is string => typeof v === 'string') : [];
  const common = offered.filter(isSupported).sort(compareVersions);
  if (common.length) return common[common.length - 1];
  if (isSupported(conflist.cniVersion)) return conflist.cniVersion;
  const asked = [...offered, ...(typeof conflist.cniVersion === 'string' ? [conflist.cniVersion] : [])];
  throw new CniError(
    ErrorCode.IncompatibleVersion,
    'incompatible CNI version',
    `the configuration declares ${asked.length ? asked.join(', ') : 'no cniVersion'}; weir supports ${SUPPORTED_VERSIONS.join(', ')}`,
  );
}

// ---- results (spec 1.1.0 shape; older versions are derived from it) ----

export interface CniInterface {
  name: string;
  mac?: string;
  /** 1.1.0 */
  mtu?: number;
  /** The netns path for the container's interface; absent for host interfaces. */
  sandbox?: string;
}

export interface CniIpConfig {
  /** CIDR, e.g. 10.244.1.5/32. */
  address: string;
  gateway?: string;
  /** Index into interfaces. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

/** A 1.1.0 result rewritten for the version the runtime asked for. */
export function formatResult(r: Omit<CniResult, 'cniVersion'>, version: CniVersion): Record<string, unknown> {
  const v1 = compareVersions(version, '1.0.0') >= 0;
  const interfaces = (r.interfaces ?? []).map((i) => {
    const o: Record<string, unknown> = { name: i.name };
    if (i.mac !== undefined) o.mac = i.mac;
    if (i.mtu !== undefined && compareVersions(version, '1.1.0') >= 0) o.mtu = i.mtu;
    if (i.sandbox !== undefined) o.sandbox = i.sandbox;
    return o;
  });
  const ips = (r.ips ?? []).map((ip) => {
    // 0.3.x/0.4.0 name the family; 1.0.0 dropped the field (the address says it).
    const o: Record<string, unknown> = v1 ? {} : { version: ip.address.includes(':') ? '6' : '4' };
    o.address = ip.address;
    if (ip.gateway !== undefined) o.gateway = ip.gateway;
    if (ip.interface !== undefined) o.interface = ip.interface;
    return o;
  });
  return {
    cniVersion: version,
    interfaces,
    ips,
    routes: (r.routes ?? []).map((rt) => (rt.gw !== undefined ? { dst: rt.dst, gw: rt.gw } : { dst: rt.dst })),
    dns: r.dns ?? {},
  };
}

/** The address and interface a prevResult (any supported version) names for `ifname`. */
export function prevResultAddress(prev: unknown, ifname: string): { address?: string; mac?: string; sandbox?: string } {
  if (!prev || typeof prev !== 'object') return {};
  const p = prev as { interfaces?: unknown; ips?: unknown };
  const ifs = Array.isArray(p.interfaces) ? (p.interfaces as Array<Record<string, unknown>>) : [];
  const idx = ifs.findIndex((i) => i && i.name === ifname && typeof i.sandbox === 'string' && i.sandbox !== '');
  const ips = Array.isArray(p.ips) ? (p.ips as Array<Record<string, unknown>>) : [];
  const ip = ips.find((x) => x && (idx < 0 || x.interface === idx) && typeof x.address === 'string' && !(x.address as string).includes(':'));
  return {
    address: ip?.address as string | undefined,
    mac: idx >= 0 ? (ifs[idx].mac as string | undefined) : undefined,
    sandbox: idx >= 0 ? (ifs[idx].sandbox as string | undefined) : undefined,
  };
}
