// Shared helpers for the loader parse tests: locating (and if needed
// building) the compiled fixture objects, and running the cross-check tools.
import { execFileSync } from 'node:child_process';
import { fixture as libFixture } from '../../lib/fixtures.js';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const FIXTURES = ['maps', 'sections', 'reject', 'pin_v1', 'pin_v2', 'core', 'kinds', 'calls'] as const;
export type FixtureName = (typeof FIXTURES)[number];

export const BPFTOOL = ['/usr/sbin/bpftool', '/usr/bin/bpftool', '/usr/local/sbin/bpftool'].find((p) => existsSync(p));
if (!BPFTOOL && process.env.CI) throw new Error('bpftool is missing; make test installs it (scripts/deps.sh)');

/** Whether a cross-check tool runs; under CI a missing one is a failure, not a skip. */
export function toolAvailable(cmd: string): boolean {
  try {
    execFileSync(cmd, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.CI) throw new Error(`${cmd} is missing; make test installs it (scripts/deps.sh)`);
    console.warn(`[skip] ${cmd} is not installed: its cross-checks are skipped`);
    return false;
  }
}

/** Path of build/fixtures/<name>.o (the Makefile compiles test/fixtures/<name>.c). */
export function fixturePath(name: string): string {
  return libFixture(name);
}

export function fixture(name: string): Buffer {
  return readFileSync(fixturePath(name));
}

export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}
