// iproute2 in a given network namespace. `ip -n` only takes names under
// /run/netns, and `ip netns exec` remounts /sys; nsenter --net switches only
// the network namespace and takes any path (/run/netns/X, /proc/PID/ns/net).
import { execFile } from 'node:child_process';

export interface IpError extends Error {
  /** ip's stderr, trimmed. */
  stderr: string;
  exitCode: number | null;
}

const TIMEOUT_MS = 10_000;

/** Runs `ip ARGS` inside `netns` (undefined: this process's namespace). Rejects with ip's stderr. */
export function ip(netns: string | undefined, args: readonly string[], input?: string): Promise<string> {
  const [cmd, argv] = netns ? ['nsenter', [`--net=${netns}`, '--', 'ip', ...args]] : ['ip', [...args]];
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, argv, { timeout: TIMEOUT_MS, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const text = String(stderr).trim() || err.message;
      const e = new Error(`ip ${args.join(' ')}${netns ? ` (in ${netns})` : ''}: ${text}`) as IpError;
      e.stderr = String(stderr).trim();
      e.exitCode = typeof err.code === 'number' ? err.code : null;
      reject(e);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Several ip commands in one process (`ip -batch -`); stops at the first failure. */
export function ipBatch(netns: string | undefined, lines: readonly string[]): Promise<string> {
  return ip(netns, ['-batch', '-'], lines.join('\n') + '\n');
}

export interface LinkJson {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  operstate: string;
  address?: string;
  link_type?: string;
  linkinfo?: { info_kind?: string };
}

/** `ip -d -j link show dev NAME`, or undefined when there is no such device. */
export async function linkShow(netns: string | undefined, ifname: string): Promise<LinkJson | undefined> {
  try {
    const out = await ip(netns, ['-d', '-j', 'link', 'show', 'dev', ifname]);
    return (JSON.parse(out) as LinkJson[])[0];
  } catch (e) {
    if (/does not exist|Cannot find device/i.test((e as IpError).stderr ?? '')) return undefined;
    throw e;
  }
}

/** Every link of a namespace. */
export async function linkList(netns: string | undefined): Promise<LinkJson[]> {
  return JSON.parse(await ip(netns, ['-d', '-j', 'link', 'show'])) as LinkJson[];
}

/** Deletes a link; a missing one is fine (false). */
export async function linkDelete(netns: string | undefined, ifname: string): Promise<boolean> {
  try {
    await ip(netns, ['link', 'del', 'dev', ifname]);
    return true;
  } catch (e) {
    if (/does not exist|Cannot find device/i.test((e as IpError).stderr ?? '')) return false;
    throw e;
  }
}

export interface AddrJson {
  ifname: string;
  addr_info: Array<{ family: string; local: string; prefixlen: number }>;
}

export interface RouteJson {
  dst: string;
  gateway?: string;
  dev?: string;
  scope?: string;
  flags?: string[];
}
