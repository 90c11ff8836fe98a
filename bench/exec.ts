// Child processes for the bench: bounded by a timeout, killed with their
// process group, and run inside a bench netns when asked (nsenter --net keeps
// /sys/fs/bpf visible, unlike `ip netns exec`).
import { spawn, type ChildProcess } from 'node:child_process';

export interface RunResult {
  code: number | null;
  /** Killed at its timeout. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  /** Run inside /run/netns/<netns>. */
  netns?: string;
  /** Pin to these CPUs (taskset -c). */
  cpus?: string;
  /** Start inside this cgroup: the path of its cgroup.procs file. */
  cgroupProcs?: string;
}

const live = new Set<ChildProcess>();

export function wrap(cmd: string, args: string[], o: RunOptions): [string, string[]] {
  let c = cmd;
  let a = args;
  if (o.cpus !== undefined) [c, a] = ['taskset', ['-c', o.cpus, c, ...a]];
  if (o.netns) [c, a] = ['nsenter', [`--net=/run/netns/${o.netns}`, '--', c, ...a]];
  // The shell joins the cgroup, then becomes the command: every allocation it makes is charged there.
  if (o.cgroupProcs) [c, a] = ['/bin/sh', ['-c', 'echo $$ > "$0" && exec "$@"', o.cgroupProcs, c, ...a]];
  return [c, a];
}

/** Run to completion; resolves with the result whatever the exit status. */
export function run(cmd: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  const [c, a] = wrap(cmd, args, o);
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(c, a, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => undefined);
    child.stdin.end(o.input ?? '');
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killTree(child);
    }, o.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      live.delete(child);
      reject(new Error(`cannot run ${c}: ${e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, timedOut, stdout, stderr, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
    });
  });
}

/** A command stopped at its timeout (the bench's budget, or a hang). */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
  constructor(
    readonly cmd: string,
    readonly ms: number,
  ) {
    super(`${cmd} did not finish within ${(ms / 1000).toFixed(0)} s and was stopped`);
  }
}

export async function runOk(cmd: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, o);
  if (r.timedOut) throw new TimeoutError(cmd, r.ms);
  if (r.code !== 0) {
    throw new Error(`${[cmd, ...args].join(' ')}${o.netns ? ` (in netns ${o.netns})` : ''} exited with ${r.code}: ${r.stderr.trim().slice(0, 1500)}`);
  }
  return r;
}

/** A long-running child (servers); stopped by stopAll() on cleanup. */
export function start(cmd: string, args: string[], o: RunOptions = {}): ChildProcess {
  const [c, a] = wrap(cmd, args, o);
  const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  live.add(child);
  child.on('close', () => live.delete(child));
  child.on('error', () => live.delete(child));
  return child;
}

export function killTree(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

/** Kill every child this process started (cleanup, Ctrl-C). */
export function stopAll(): void {
  for (const c of live) killTree(c);
  live.clear();
}
