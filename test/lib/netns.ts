/**
 * Network-namespace lab for root tests, with guaranteed cleanup.
 *
 *   const skip = requireNetns('veth datapath');
 *   describe.skipIf(skip)('datapath', () => {
 *     const lab = new NetnsLab();
 *     afterAll(() => lab.cleanup());
 *     it('pings', async () => {
 *       const a = await lab.createNetns('a');
 *       const b = await lab.createNetns('b');
 *       await lab.veth({ a: { ns: a, name: 'veth0', addr: '10.99.0.1/24' },
 *                        b: { ns: b, name: 'veth0', addr: '10.99.0.2/24' } });
 *       expect((await lab.ping(a, '10.99.0.2')).received).toBe(3);
 *     });
 *   });
 *
 * Rules this module keeps: every command touching the network runs against a
 * namespace the lab created (`ip -n NS`, `ip netns exec NS`, `nsenter
 * --net=/run/netns/NS`); the root namespace's links, routes and firewall are
 * never changed. Every child process is bounded by a timeout. Namespaces are
 * named `weirtest-<pid>-<random>-<name>`, so parallel test files don't clash
 * and `sweepStale()` can tell leftovers of dead processes from live ones.
 */

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export const NETNS_PREFIX = 'weirtest-';
export const NETNS_RUN_DIR = '/run/netns';
/** Default bound for one command. */
export const DEFAULT_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------------------
// Bounded child processes
// ---------------------------------------------------------------------------

export interface ExecOptions {
  /** Kill the process (group) after this long; default 15 s. */
  timeoutMs?: number;
  /** Written to stdin, which is then closed (stdin is always closed). */
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
}

export interface ExecResult {
  cmd: string;
  args: readonly string[];
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
  /** code === 0 and not timed out. */
  ok: boolean;
}

export class CommandError extends Error {
  override name = 'CommandError';
  constructor(readonly result: ExecResult) {
    super(
      `${[result.cmd, ...result.args].join(' ')} ` +
        (result.timedOut ? `timed out after ${result.durationMs} ms` : `exited with ${result.code ?? result.signal}`) +
        (result.stderr.trim() ? `: ${result.stderr.trim().slice(0, 2000)}` : ''),
    );
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal); // detached: the child leads its own process group
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

/**
 * Run a command to completion with a hard timeout (SIGKILL to its whole
 * process group). Resolves with the result whatever the exit status; rejects
 * only if the program cannot be started.
 */
export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => undefined); // EPIPE if the child doesn't read
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        cmd,
        args,
        code,
        signal,
        stdout,
        stderr,
        timedOut,
        durationMs: Date.now() - started,
        ok: code === 0 && !timedOut,
      });
    });
  });
}

/** Like `run`, but rejects with CommandError unless the command succeeded. */
export async function runOk(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const r = await run(cmd, args, opts);
  if (!r.ok) throw new CommandError(r);
  return r;
}

export interface SpawnOptions {
  /** SIGKILL the process after this long even if nobody stops it; default 60 s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** A long-running child (server, receiver) with line-oriented stdout. */
export class LabProcess {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  stderr = '';
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExecResult>;
  #waiters = new Set<() => void>();
  #done = false;

  constructor(readonly cmd: string, readonly args: readonly string[], opts: SpawnOptions = {}) {
    const started = Date.now();
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: opts.env ?? process.env });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(this.child);
    }, opts.timeoutMs ?? 60_000);
    let partial = '';
    let stdout = '';
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      partial += d;
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      this.lines.push(...parts);
      this.#notify();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
        clearTimeout(timer);
        if (partial) this.lines.push(partial);
        partial = '';
        this.#done = true;
        this.#notify();
        resolve({
          cmd,
          args,
          code,
          signal,
          stdout,
          stderr: this.stderr,
          timedOut,
          durationMs: Date.now() - started,
          ok: code === 0 && !timedOut,
        });
      };
      this.child.on('error', (err) => {
        this.stderr += `spawn error: ${err.message}\n`;
        finish(null, null);
      });
      this.child.on('close', finish);
    });
  }

  get running(): boolean {
    return !this.#done;
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /**
   * Wait until `cond()` holds (re-checked on every stdout chunk). Rejects on
   * timeout, or if the process exits while `cond()` is still false.
   */
  waitUntil(cond: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
    return new Promise((resolve, reject) => {
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        if (err) reject(err);
        else resolve();
      };
      const check = (): void => {
        if (cond()) return finish();
        if (this.#done) {
          finish(new Error(`${this.cmd} exited before ${what}; stderr: ${this.stderr.trim().slice(0, 1000)}`));
        }
      };
      const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  /** Wait until some stdout line matches and return it. */
  async waitForLine(match: RegExp | ((line: string) => boolean), timeoutMs = 5_000): Promise<string> {
    const test = typeof match === 'function' ? match : (l: string): boolean => match.test(l);
    let found: string | undefined;
    await this.waitUntil(() => (found = this.lines.find(test)) !== undefined, timeoutMs, `a line matching ${String(match)}`);
    return found!;
  }

  /** Kill the process group (SIGTERM, then SIGKILL after `graceMs`) and wait for exit. */
  async stop(graceMs = 1_000): Promise<ExecResult> {
    if (this.#done) return this.exited;
    killGroup(this.child, 'SIGTERM');
    const t = setTimeout(() => killGroup(this.child, 'SIGKILL'), graceMs);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }

  /** Synchronous best-effort kill (for process-exit hooks). */
  killNow(): void {
    killGroup(this.child, 'SIGKILL');
  }
}

// ---------------------------------------------------------------------------
// Skipping / requiring privileges
// ---------------------------------------------------------------------------

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;

function effectiveCaps(): bigint | undefined {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? BigInt(`0x${m[1]}`) : undefined;
  } catch {
    return undefined;
  }
}

/** Find an executable on PATH (plus the sbin directories, which non-login shells may lack). */
export function which(tool: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, tool);
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export interface RequireOptions {
  /** Executables that must be present (e.g. ['ip', 'nsenter', 'ping']). */
  tools?: readonly string[];
}

/**
 * For privileged tests. Returns false when the process is root with
 * CAP_NET_ADMIN + CAP_SYS_ADMIN (and the listed tools exist); otherwise a
 * reason string to skip with — `describe.skipIf(requireRoot('x'))(...)`.
 * When `process.env.CI` is set a missing requirement throws instead, so CI
 * fails loudly rather than silently skipping.
 */
export function requireRoot(feature: string, opts: RequireOptions = {}): string | false {
  const problems: string[] = [];
  const uid = process.getuid?.();
  if (uid !== 0) problems.push(`not root (uid ${uid ?? 'unknown'})`);
  const caps = effectiveCaps();
  if (caps !== undefined) {
    for (const [bit, name] of [
      [CAP_NET_ADMIN, 'CAP_NET_ADMIN'],
      [CAP_SYS_ADMIN, 'CAP_SYS_ADMIN'],
    ] as const) {
      if ((caps & (1n << BigInt(bit))) === 0n) problems.push(`missing ${name}`);
    }
  }
  for (const t of opts.tools ?? []) if (!which(t)) problems.push(`'${t}' not installed`);
  if (problems.length === 0) return false;
  const reason = `${feature}: ${problems.join(', ')}`;
  if (process.env.CI) throw new Error(`${reason} — CI must be able to run privileged tests`);
  console.warn(`[skip] ${reason}`);
  return reason;
}

/** requireRoot plus the tools NetnsLab needs (`ip`, `nsenter`) and any extra ones. */
export function requireNetns(feature: string, extraTools: readonly string[] = []): string | false {
  return requireRoot(feature, { tools: ['ip', 'nsenter', ...extraTools] });
}

// ---------------------------------------------------------------------------
// Stale namespace sweeping
// ---------------------------------------------------------------------------

/** All named network namespaces (`ip netns list`). */
export async function listNetns(): Promise<string[]> {
  const r = await runOk('ip', ['-j', 'netns', 'list'], { timeoutMs: 5_000 });
  const text = r.stdout.trim();
  if (!text) return [];
  return (JSON.parse(text) as Array<{ name: string }>).map((n) => n.name);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The owning pid encoded in a lab namespace name, if any. */
export function ownerPid(name: string, prefix = NETNS_PREFIX): number | undefined {
  if (!name.startsWith(prefix)) return undefined;
  const m = /^(\d+)(?:-|$)/.exec(name.slice(prefix.length));
  return m ? Number(m[1]) : undefined;
}

/**
 * Delete namespaces named `<prefix><pid>-...` whose pid is no longer running
 * (left over by crashed test runs). Returns the names deleted. Namespaces of
 * live processes, and names without a pid, are left alone.
 */
export async function sweepStale(prefix = NETNS_PREFIX): Promise<string[]> {
  if (!prefix.startsWith('weirtest')) throw new Error(`refusing to sweep namespaces outside weirtest*: ${prefix}`);
  const deleted: string[] = [];
  for (const name of await listNetns()) {
    const pid = ownerPid(name, prefix);
    if (pid === undefined || pid === process.pid || pidAlive(pid)) continue;
    const r = await run('ip', ['netns', 'del', name], { timeoutMs: 10_000 });
    if (r.ok) deleted.push(name);
  }
  return deleted;
}

// ---------------------------------------------------------------------------
// The lab
// ---------------------------------------------------------------------------

export interface VethEnd {
  ns: string;
  /** Interface name inside `ns` (max 15 chars). */
  name: string;
  /** Address with prefix, e.g. '10.99.0.1/24' or 'fd00:99::1/64'. */
  addr?: string;
  /** More addresses. */
  addrs?: readonly string[];
  mac?: string;
}

export interface VethSpec {
  a: VethEnd;
  b: VethEnd;
  mtu?: number;
  /** Bring both ends up (default true). */
  up?: boolean;
}

export interface VethEndInfo {
  ns: string;
  name: string;
  ifindex: number;
  mac: string;
  addrs: string[];
}

export interface VethPair {
  a: VethEndInfo;
  b: VethEndInfo;
}

/** The fields of `ip -j link show` we rely on (others are kept). */
export interface LinkInfo {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  operstate: string;
  address?: string;
  link?: string;
  link_index?: number;
  link_netnsid?: number;
  [key: string]: unknown;
}

export interface PingOptions {
  count?: number; // default 3
  /** Seconds to wait for each reply (ping -W); default 2. */
  timeoutSec?: number;
  /** Seconds between requests (ping -i); default 0.2. */
  intervalSec?: number;
  /** Payload size (ping -s). */
  size?: number;
  /** Set DF / prohibit fragmentation (ping -M do). */
  dontFragment?: boolean;
}

export interface PingStats {
  transmitted: number;
  received: number;
  lossPercent: number;
  /** Round-trip times in ms; undefined when nothing came back. */
  rtt?: { min: number; avg: number; max: number; mdev: number };
  /** ping's exit code (0 = at least one reply). */
  exitCode: number | null;
  output: string;
}

export interface UdpSendOptions {
  addr: string;
  port: number;
  /** Number of datagrams (default 1). */
  count?: number;
  /** Payload of every datagram, or one per datagram; default 'weir-<i>'. */
  payload?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Source address/port to bind to. */
  bindAddr?: string;
  sport?: number;
  /** Pause between datagrams. */
  intervalMs?: number;
  timeoutMs?: number;
}

export interface UdpMessage {
  from: string;
  sport: number;
  data: Buffer;
}

export interface UdpReceiverOptions {
  /** 0 picks a free port (see `UdpReceiver.port`). */
  port: number;
  /** Bind address; default '0.0.0.0' ('::' when `ipv6`). */
  addr?: string;
  ipv6?: boolean;
  /** The receiver exits by itself after this long (default 30 s). */
  timeoutMs?: number;
  /** ...or after this many datagrams. */
  maxMessages?: number;
}

export interface UdpReceiver {
  port: number;
  /** Messages received so far. */
  readonly messages: UdpMessage[];
  /** Wait until at least `n` messages arrived; rejects after timeoutMs with what arrived so far. */
  waitFor(n: number, timeoutMs?: number): Promise<UdpMessage[]>;
  /** Stop the receiver; returns everything received. */
  stop(): Promise<UdpMessage[]>;
  readonly process: LabProcess;
}

const IFNAMSIZ = 16;

/** Node one-liners run inside namespaces (CommonJS, as `node -e` evaluates). */
const UDP_SEND_SCRIPT = String.raw`
const dgram = require('node:dgram');
let input = '';
process.stdin.setEncoding('utf8').on('data', (d) => (input += d)).on('end', async () => {
  const o = JSON.parse(input);
  const s = dgram.createSocket(o.addr.includes(':') ? 'udp6' : 'udp4');
  s.on('error', (e) => { console.error(String(e)); process.exit(2); });
  if (o.bindAddr || o.sport) await new Promise((r) => s.bind({ address: o.bindAddr, port: o.sport || 0 }, r));
  let sent = 0;
  for (const p of o.payloads) {
    await new Promise((res, rej) => s.send(Buffer.from(p, 'base64'), o.port, o.addr, (e) => (e ? rej(e) : res())));
    sent++;
    if (o.intervalMs) await new Promise((r) => setTimeout(r, o.intervalMs));
  }
  s.close();
  process.stdout.write(JSON.stringify({ sent }) + '\n');
});
`;

const UDP_RECV_SCRIPT = String.raw`
const dgram = require('node:dgram');
const o = JSON.parse(process.argv[1]);
const s = dgram.createSocket(o.ipv6 ? 'udp6' : 'udp4');
let n = 0;
s.on('error', (e) => { console.error(String(e)); process.exit(2); });
s.on('message', (m, r) => {
  process.stdout.write(JSON.stringify({ from: r.address, sport: r.port, data: m.toString('base64') }) + '\n');
  if (o.maxMessages && ++n >= o.maxMessages) process.exit(0);
});
s.bind(o.port, o.addr, () => process.stdout.write('READY ' + s.address().port + '\n'));
setTimeout(() => process.exit(0), o.timeoutMs);
`;

/** Labs with resources, cleaned synchronously if the process exits early. */
const liveLabs = new Set<NetnsLab>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.cleanupSync();
  });
}

export interface NetnsLabOptions {
  /** Namespace prefix; must start with 'weirtest'. Default 'weirtest-'. */
  prefix?: string;
}

/**
 * Owns a set of network namespaces and processes. Every method that takes a
 * namespace only accepts namespaces this lab created.
 */
export class NetnsLab {
  readonly prefix: string;
  /** `<prefix><pid>-<random>-`: the start of every namespace name of this lab. */
  readonly namePrefix: string;
  readonly #netns = new Set<string>();
  readonly #procs = new Set<LabProcess>();

  constructor(opts: NetnsLabOptions = {}) {
    this.prefix = opts.prefix ?? NETNS_PREFIX;
    if (!this.prefix.startsWith('weirtest')) throw new Error(`netns prefix must start with 'weirtest': ${this.prefix}`);
    this.namePrefix = `${this.prefix}${process.pid}-${randomBytes(3).toString('hex')}-`;
  }

  /** Namespaces currently owned. */
  get namespaces(): string[] {
    return [...this.#netns];
  }

  /** Path of the namespace's bind mount, for `nsenter --net=` or setns(). */
  nsPath(ns: string): string {
    this.#own(ns);
    return `${NETNS_RUN_DIR}/${ns}`;
  }

  #own(ns: string): void {
    if (!this.#netns.has(ns)) throw new Error(`namespace ${ns} does not belong to this lab`);
  }

  /** Create `<namePrefix><name>` with loopback up; returns the full name. */
  async createNetns(name: string): Promise<string> {
    if (!/^[A-Za-z0-9_.-]{1,40}$/.test(name)) throw new Error(`bad netns name: ${name}`);
    const full = `${this.namePrefix}${name}`;
    if (this.#netns.has(full)) throw new Error(`namespace ${full} already exists in this lab`);
    this.#netns.add(full); // before creating, so cleanup covers a half-made namespace
    liveLabs.add(this);
    installExitHook();
    await runOk('ip', ['netns', 'add', full], { timeoutMs: 10_000 });
    await runOk('ip', ['-n', full, 'link', 'set', 'dev', 'lo', 'up'], { timeoutMs: 5_000 });
    return full;
  }

  /** `ip -n ns ...` in one of the lab's namespaces. */
  async ip(ns: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    this.#own(ns);
    return runOk('ip', ['-n', ns, ...args], { timeoutMs: 10_000, ...opts });
  }

  /** Create a veth pair directly between two lab namespaces (never visible in the root namespace). */
  async veth(spec: VethSpec): Promise<VethPair> {
    const { a, b } = spec;
    this.#own(a.ns);
    this.#own(b.ns);
    for (const e of [a, b]) {
      if (e.name.length >= IFNAMSIZ || !/^[A-Za-z0-9_.-]+$/.test(e.name)) throw new Error(`bad interface name: ${e.name}`);
    }
    const mac = (e: VethEnd): string[] => (e.mac ? ['address', e.mac] : []);
    const mtu = spec.mtu !== undefined ? ['mtu', String(spec.mtu)] : [];
    await this.ip(a.ns, [
      'link', 'add', a.name, ...mac(a), ...mtu, 'type', 'veth',
      'peer', 'name', b.name, ...mac(b), ...mtu, 'netns', b.ns,
    ]);
    const ends: VethEndInfo[] = [];
    for (const e of [a, b]) {
      const addrs = [...(e.addr ? [e.addr] : []), ...(e.addrs ?? [])];
      for (const addr of addrs) {
        await this.ip(e.ns, ['addr', 'add', addr, 'dev', e.name, ...(addr.includes(':') ? ['nodad'] : [])]);
      }
      if (spec.up ?? true) await this.ip(e.ns, ['link', 'set', 'dev', e.name, 'up']);
      const info = await this.link(e.ns, e.name);
      ends.push({ ns: e.ns, name: e.name, ifindex: info.ifindex, mac: info.address ?? '', addrs });
    }
    return { a: ends[0], b: ends[1] };
  }

  /** `ip -j link show dev X` inside ns. */
  async link(ns: string, ifname: string): Promise<LinkInfo> {
    const r = await this.ip(ns, ['-j', 'link', 'show', 'dev', ifname]);
    const arr = JSON.parse(r.stdout) as LinkInfo[];
    if (!arr[0]) throw new Error(`no link ${ifname} in ${ns}`);
    return arr[0];
  }

  async ifindex(ns: string, ifname: string): Promise<number> {
    return (await this.link(ns, ifname)).ifindex;
  }

  /**
   * Run a command in ns via `ip netns exec` (which also remounts /sys, hiding
   * /sys/fs/bpf — use `nsenter()` for anything that needs bpffs). Resolves with
   * the result whatever the exit code.
   */
  async exec(ns: string, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    this.#own(ns);
    return run('ip', ['netns', 'exec', ns, cmd, ...args], opts);
  }

  /** `exec` that rejects with CommandError unless the command succeeded. */
  async execOk(ns: string, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    const r = await this.exec(ns, cmd, args, opts);
    if (!r.ok) throw new CommandError(r);
    return r;
  }

  /** Run a command with only the network namespace switched (mounts, /sys/fs/bpf untouched). */
  async nsenter(ns: string, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    return run('nsenter', [`--net=${this.nsPath(ns)}`, '--', cmd, ...args], opts);
  }

  /** Start a long-running process in ns (via nsenter); killed by cleanup() at the latest. */
  spawn(ns: string, cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): LabProcess {
    const p = new LabProcess('nsenter', [`--net=${this.nsPath(ns)}`, '--', cmd, ...args], opts);
    this.#procs.add(p);
    void p.exited.then(() => this.#procs.delete(p));
    return p;
  }

  /** ping from a lab namespace; never throws for lost packets — inspect the stats. */
  async ping(fromNs: string, addr: string, opts: PingOptions = {}): Promise<PingStats> {
    const count = opts.count ?? 3;
    const wait = opts.timeoutSec ?? 2;
    const interval = opts.intervalSec ?? 0.2;
    const deadline = Math.ceil(count * interval + wait);
    const args = ['-n', '-q', '-c', String(count), '-i', String(interval), '-W', String(wait), '-w', String(deadline)];
    if (addr.includes(':')) args.unshift('-6');
    if (opts.size !== undefined) args.push('-s', String(opts.size));
    if (opts.dontFragment) args.push('-M', 'do');
    args.push(addr);
    const r = await this.exec(fromNs, 'ping', args, { timeoutMs: (deadline + 5) * 1000 });
    if (r.code === null || (r.code !== 0 && r.code !== 1)) throw new CommandError(r);
    return parsePingOutput(r.stdout, r.code);
  }

  /** Send UDP datagrams from a lab namespace (a bounded node child under nsenter). */
  async sendUdp(fromNs: string, o: UdpSendOptions): Promise<{ sent: number }> {
    const count = o.count ?? 1;
    const payloads: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const p = Array.isArray(o.payload) ? o.payload[i % o.payload.length] : (o.payload ?? `weir-${i}`);
      payloads.push(Buffer.isBuffer(p) ? p : Buffer.from(p as string));
    }
    const input = JSON.stringify({
      addr: o.addr,
      port: o.port,
      bindAddr: o.bindAddr,
      sport: o.sport,
      intervalMs: o.intervalMs ?? 0,
      payloads: payloads.map((p) => p.toString('base64')),
    });
    const r = await this.nsenter(fromNs, process.execPath, ['-e', UDP_SEND_SCRIPT], {
      input,
      timeoutMs: o.timeoutMs ?? 10_000 + count * (o.intervalMs ?? 0),
    });
    if (!r.ok) throw new CommandError(r);
    return JSON.parse(r.stdout.trim()) as { sent: number };
  }

  /** Start a UDP receiver in a lab namespace; resolves once it is bound. */
  async udpReceiver(ns: string, o: UdpReceiverOptions): Promise<UdpReceiver> {
    const timeoutMs = o.timeoutMs ?? 30_000;
    const cfg = { port: o.port, addr: o.addr ?? (o.ipv6 ? '::' : '0.0.0.0'), ipv6: !!o.ipv6, timeoutMs, maxMessages: o.maxMessages ?? 0 };
    const proc = this.spawn(ns, process.execPath, ['-e', UDP_RECV_SCRIPT, JSON.stringify(cfg)], { timeoutMs: timeoutMs + 5_000 });
    const ready = await proc.waitForLine(/^READY \d+$/, 10_000);
    const port = Number(ready.split(' ')[1]);
    const messages: UdpMessage[] = [];
    const collect = (): UdpMessage[] => {
      const msgLines = proc.lines.filter((l) => l.startsWith('{'));
      for (const l of msgLines.slice(messages.length)) {
        const m = JSON.parse(l) as { from: string; sport: number; data: string };
        messages.push({ from: m.from, sport: m.sport, data: Buffer.from(m.data, 'base64') });
      }
      return messages;
    };
    return {
      port,
      process: proc,
      get messages() {
        return collect();
      },
      async waitFor(n: number, waitMs = 5_000): Promise<UdpMessage[]> {
        try {
          await proc.waitUntil(() => collect().length >= n, waitMs, `${n} datagrams`);
        } catch (e) {
          throw new Error(`expected ${n} UDP datagrams on port ${port}, got ${collect().length}: ${(e as Error).message}`);
        }
        return collect();
      },
      async stop(): Promise<UdpMessage[]> {
        await proc.stop();
        return collect();
      },
    };
  }

  /**
   * Kill every process and delete every namespace this lab created
   * (interfaces inside go with them). Idempotent; reports what it could not delete.
   */
  async cleanup(): Promise<void> {
    const errors: string[] = [];
    await Promise.all([...this.#procs].map((p) => p.stop(500)));
    this.#procs.clear();
    for (const ns of [...this.#netns]) {
      const r = await run('ip', ['netns', 'del', ns], { timeoutMs: 10_000 });
      if (r.ok || /No such file|not found|Invalid argument/i.test(r.stderr)) this.#netns.delete(ns);
      else errors.push(`${ns}: ${r.stderr.trim() || `exit ${r.code}`}`);
    }
    if (this.#netns.size === 0) liveLabs.delete(this);
    if (errors.length) throw new Error(`NetnsLab cleanup failed: ${errors.join('; ')}`);
  }

  /** Synchronous best-effort cleanup (used from the process 'exit' hook). */
  cleanupSync(): void {
    for (const p of this.#procs) p.killNow();
    this.#procs.clear();
    for (const ns of this.#netns) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5_000 });
      } catch {
        /* best effort */
      }
    }
    this.#netns.clear();
    liveLabs.delete(this);
  }
}

/** Parse iputils ping summary output. */
export function parsePingOutput(output: string, exitCode: number | null = null): PingStats {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received.*?([\d.]+)% packet loss/.exec(output);
  const stats: PingStats = {
    transmitted: m ? Number(m[1]) : 0,
    received: m ? Number(m[2]) : 0,
    lossPercent: m ? Number(m[3]) : 100,
    exitCode,
    output,
  };
  const rtt = /(?:rtt|round-trip) min\/avg\/max\/(?:mdev|stddev) = ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(output);
  if (rtt) stats.rtt = { min: Number(rtt[1]), avg: Number(rtt[2]), max: Number(rtt[3]), mdev: Number(rtt[4]) };
  return stats;
}
