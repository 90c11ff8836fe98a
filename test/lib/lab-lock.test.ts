// The lab lock on its own (temporary paths, no lab): a second holder waits for
// the first, a killed holder never keeps the lock, a timeout names the holder.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireLabLock } from './lab-lock.js';

const hasFlock = spawnSync('sh', ['-c', 'command -v flock']).status === 0;
if (!hasFlock && process.env.CI) throw new Error('flock (util-linux) is not installed');

describe.skipIf(!hasFlock)('lab lock', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weir-lab-lock-'));
  const paths = { lockPath: join(dir, 'lock'), ownerPath: join(dir, 'owner'), lab: false, log: () => {} };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a second holder waits until the first releases; the owner file names the holder', async () => {
    const first = await acquireLabLock('first', paths);
    expect(JSON.parse(readFileSync(paths.ownerPath, 'utf8'))).toMatchObject({ pid: process.pid, who: 'first' });
    let got = 0;
    const second = acquireLabLock('second', paths).then((l) => {
      got = Date.now();
      return l;
    });
    await new Promise((r) => setTimeout(r, 400));
    expect(got).toBe(0);
    const released = Date.now();
    await first.release();
    const l2 = await second;
    expect(got).toBeGreaterThanOrEqual(released);
    await l2.release();
    await l2.release(); // idempotent
  });

  it('a holder that dies (SIGKILL) does not keep the lock', async () => {
    // Its own process group, so the kill below reaches flock and its child (which shares the lock's descriptor).
    const holder = spawn('flock', ['-x', paths.lockPath, 'sh', '-c', 'echo locked; sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    await new Promise<void>((r) => holder.stdout!.on('data', () => r()));
    let got = false;
    const waiting = acquireLabLock('after-kill', { ...paths, timeoutMs: 20_000 }).then((l) => ((got = true), l));
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toBe(false);
    process.kill(-holder.pid!, 'SIGKILL');
    const l = await waiting;
    await l.release();
  });

  it('times out naming the holder', async () => {
    const first = await acquireLabLock('holder-x', paths);
    try {
      await expect(acquireLabLock('late', { ...paths, timeoutMs: 1000 })).rejects.toThrow(/still held after 1s.*holder-x/);
    } finally {
      await first.release();
    }
  });
});
