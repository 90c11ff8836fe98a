// One lab per machine. The lab's names are fixed (netns weir-lab-*, /run/weir-lab,
// /sys/fs/bpf/weir-lab), so two test files that each bring a lab up (or two
// vitest runs started by different people) must never overlap. Every test
// file that runs `labUp` takes this lock first and holds it until after its
// `labDown`:
//
//   const lease = await acquireLabLock('e2e-policy');   // waits for the holder
//   try { await labUp(...) ... } finally { await lease.release(); }  // labDown + unlock
//
// The lock is flock(2) on LAB_LOCK, held by a `flock` child whose stdin is a
// pipe from this process: when this process exits or is killed, the pipe
// closes, the child exits and the kernel drops the lock. A dead holder can
// therefore never keep it (the stale-holder check is the kernel's). The lab
// itself outlives a killed test (its daemon and agents are detached), so the
// holder also writes LAB_OWNER before `labUp`; the next holder that finds a
// lab running takes it down if LAB_OWNER names a process that is gone, and
// refuses (touching nothing) if the lab was not started by a test, e.g. by
// `weir lab demo`.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { labDaemonPid, labDown } from '../../control/lab/lab.js';

export const LAB_LOCK = '/run/weir-lab.lock';
export const LAB_OWNER = '/run/weir-lab.owner';

export interface LabLease {
  /** Who holds it (for messages). */
  readonly who: string;
  /** Takes the lab down (if this lease may have brought it up) and drops the lock. Safe to repeat. */
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwnerFile(path: string): { pid: number; who: string; since: string } | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Waits (up to timeoutMs) for the machine's lab lock, then makes sure no lab
 * is running: a lab left by a test process that is gone is taken down; any
 * other running lab is an error (nothing is touched, the lock is dropped).
 * Records this process as the lab's owner, so release() (or the next holder,
 * if this process dies) takes down whatever labUp then makes.
 */
export async function acquireLabLock(
  who: string,
  o: {
    timeoutMs?: number;
    log?: (s: string) => void;
    /** For the lock's own tests: other paths, and no lab handling (no check, no labDown). */
    lockPath?: string;
    ownerPath?: string;
    lab?: boolean;
  } = {},
): Promise<LabLease> {
  const { timeoutMs = 540_000, log = (s: string) => console.log(s), lockPath = LAB_LOCK, ownerPath = LAB_OWNER, lab = true } = o;
  const readOwner = () => readOwnerFile(ownerPath);
  const t0 = Date.now();
  const child: ChildProcess = spawn('flock', ['-x', '-w', String(Math.ceil(timeoutMs / 1000)), lockPath, 'sh', '-c', 'echo locked; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const waiting = setTimeout(() => {
    const o = readOwner();
    log(`[lab-lock] ${who}: waiting for ${lockPath}${o ? ` (held by ${o.who}, pid ${o.pid}, since ${o.since})` : ''}`);
  }, 2000);
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('locked')) resolve();
      });
      child.once('error', (e) => reject(new Error(`${who}: cannot run flock for ${lockPath}: ${e.message}`)));
      child.once('exit', (code) =>
        reject(new Error(code === 1 ? `${who}: ${lockPath} still held after ${timeoutMs / 1000}s (holder: ${JSON.stringify(readOwner() ?? 'unknown')})` : `${who}: flock ${lockPath} exited ${code}: ${stderr.trim()}`)),
      );
    });
  } finally {
    clearTimeout(waiting);
  }
  // Neither the flock child nor its pipes may keep this process alive.
  child.unref();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  const waited = Date.now() - t0;
  if (waited > 2000) log(`[lab-lock] ${who}: got ${lockPath} after ${(waited / 1000).toFixed(1)} s`);

  let held = true;
  const unlock = async () => {
    if (!held) return;
    held = false;
    const exited = new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
    child.stdin!.end();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
  };

  const daemon = lab ? labDaemonPid() : undefined;
  if (daemon) {
    const owner = readOwner();
    if (owner && !alive(owner.pid)) {
      log(`[lab-lock] ${who}: taking down a lab left by ${owner.who} (pid ${owner.pid}, gone)`);
      labDown();
    } else {
      await unlock();
      throw new Error(
        `a lab is already running (lab daemon pid ${daemon}${owner ? `, started by ${owner.who} pid ${owner.pid}` : ', not started by a test'}); ${who} needs it to itself: run 'weir lab down' first`,
      );
    }
  }
  writeFileSync(ownerPath, JSON.stringify({ pid: process.pid, who, since: new Date().toISOString() }));

  return {
    who,
    async release() {
      if (!held) return;
      try {
        const o = readOwner();
        if (o?.pid === process.pid) {
          if (lab) labDown();
          rmSync(ownerPath, { force: true });
        }
      } finally {
        await unlock();
      }
    },
  };
}

/** True while some process holds the lab lock (for diagnostics; racy by nature). */
export function labLockOwner(): { pid: number; who: string; since: string } | undefined {
  const o = existsSync(LAB_OWNER) ? readOwnerFile(LAB_OWNER) : undefined;
  return o && alive(o.pid) ? o : undefined;
}
