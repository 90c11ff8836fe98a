// Helpers for the lab end-to-end tests: the weir CLI as a user runs it,
// commands inside lab netns, raw dumps of a node's pinned maps, and
// background processes (load, ping) that are stopped with a signal and
// report what they saw.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { BpfMap } from '../../native/index.js';
import { repoRoot } from '../../control/paths.js';

export const weirBin = () => join(repoRoot(), 'bin', 'weir');
export const here = join(repoRoot(), 'test', 'e2e-lab');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function weir(args: string[], timeoutMs = 30_000): CliResult {
  const r = spawnSync(process.execPath, [weirBin(), ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** `weir ... -o json ARGS`, parsed; throws with stderr when it fails. */
export function weirJson<T = any>(args: string[]): T {
  const r = weir(['-o', 'json', ...args]);
  if (r.code !== 0) throw new Error(`weir ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

export function nsenter(netns: string, cmd: string[], timeoutMs = 30_000) {
  const r = spawnSync('nsenter', [`--net=/run/netns/${netns}`, ...cmd], { encoding: 'utf8', timeout: timeoutMs });
  return { ok: r.status === 0, code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Every entry of the named pinned maps as hex "key=value" strings, sorted. */
export function rawDump(pinRoot: string, names: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const name of names) {
    const m = BpfMap.fromPin(join(pinRoot, name));
    try {
      out[name] = [...m.entries()].map(([k, v]) => `${k.toString('hex')}=${v.toString('hex')}`).sort();
    } finally {
      m.close();
    }
  }
  return out;
}

/** What changed between two dumps: entries gone, added, or with another value. */
export function dumpDiff(before: Record<string, string[]>, after: Record<string, string[]>): string[] {
  const diffs: string[] = [];
  for (const name of Object.keys(before)) {
    const a = new Set(before[name]);
    const b = new Set(after[name] ?? []);
    for (const e of a) if (!b.has(e)) diffs.push(`${name}: lost ${e}`);
    for (const e of b) if (!a.has(e)) diffs.push(`${name}: new ${e}`);
  }
  return diffs;
}

/** A process inside a netns whose stdout is collected until it exits. */
export class Background {
  private out = '';
  private err = '';
  readonly exited: Promise<number | null>;
  private child;

  constructor(netns: string, cmd: string[]) {
    this.child = spawn('nsenter', [`--net=/run/netns/${netns}`, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    this.child.stderr.setEncoding('utf8').on('data', (d: string) => (this.err += d));
    this.exited = new Promise((r) => this.child.on('exit', (code) => r(code)));
  }

  get stdout() {
    return this.out;
  }
  get stderr() {
    return this.err;
  }

  async waitFor(text: string, timeoutMs = 10_000): Promise<void> {
    await until(`"${text}" from ${this.child.spawnargs.join(' ')} (stderr: ${this.err})`, () => this.out.includes(text), timeoutMs);
  }

  /** Signals the process (nsenter execs it, so the pid is the command's) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<string> {
    this.child.kill(signal);
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(t);
    return this.out;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function ipInCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const n = (s: string) => s.split('.').reduce((a, o) => (a << 8) + Number(o), 0) >>> 0;
  const mask = Number(bits) === 0 ? 0 : (~0 << (32 - Number(bits))) >>> 0;
  return (n(ip) & mask) === (n(base) & mask);
}

/** `ping -q` summary: "N packets transmitted, M received". */
export function pingSummary(out: string): { sent: number; received: number } {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  if (!m) throw new Error(`no ping summary in: ${out}`);
  return { sent: Number(m[1]), received: Number(m[2]) };
}

/**
 * Dumps the maps every 100 ms until stop() and collects every difference from
 * the first dump: an entry that disappears, appears or changes, even briefly.
 */
export function watchMaps(pinRoot: string, names: string[]) {
  const baseline = rawDump(pinRoot, names);
  const changes: string[] = [];
  let polls = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      polls++;
      for (const d of dumpDiff(baseline, rawDump(pinRoot, names))) changes.push(`poll ${polls}: ${d}`);
      await sleep(100);
    }
  })();
  return {
    async stop(): Promise<{ polls: number; changes: string[] }> {
      running = false;
      await loop;
      return { polls, changes };
    },
  };
}

/** "Name: k1 k2 ...\nName: v1 v2 ..." pairs of /proc/net/{snmp,netstat} as one record. */
function procNetCounters(text: string, prefix: string): Record<string, number> {
  const rows = text.split('\n').filter((l) => l.startsWith(`${prefix}:`));
  if (rows.length < 2) throw new Error(`no ${prefix} counters`);
  const names = rows[0].split(/\s+/).slice(1);
  const values = rows[1].split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(names.map((n, i) => [n, values[i]]));
}

/**
 * TCP retransmission counters of a netns. A SYN the datapath dropped is
 * retried by TCP a second later and the connection still succeeds, so only
 * these counters show that a packet was lost.
 */
export function tcpCounters(netns: string): { synRetrans: number; retransSegs: number } {
  const r = nsenter(netns, ['cat', '/proc/net/snmp', '/proc/net/netstat']);
  if (!r.ok) throw new Error(`reading TCP counters in ${netns}: ${r.stderr}`);
  return { synRetrans: procNetCounters(r.stdout, 'TcpExt').TCPSynRetrans, retransSegs: procNetCounters(r.stdout, 'Tcp').RetransSegs };
}

/** Segments retransmitted on the established connections to DST (ip:port), from `ss -ti`; undefined when none is open. */
export function socketRetrans(netns: string, dst: string): number | undefined {
  const r = nsenter(netns, ['ss', '-tinH', 'state', 'established', 'dst', dst]);
  if (!r.ok || !r.stdout.trim()) return undefined;
  return [...r.stdout.matchAll(/retrans:\d+\/(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
}
