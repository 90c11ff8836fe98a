// The FinalizationRegistry safety net: a handle that is dropped without
// close() still gets its fd closed once it is garbage collected.
import { readlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BpfMap, MapType } from '../../native/index.js';
import { requireKernel } from './helpers.js';

const enabled = requireKernel();
const gc = (globalThis as { gc?: () => void }).gc;
if (enabled && !gc && process.env.CI) throw new Error('vitest must run with --expose-gc (vitest.config.ts)');

function fdTarget(fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

describe.skipIf(!enabled || !gc)('fd finalizer', () => {
  it('closes the fds of handles dropped without close()', async () => {
    const fds = (() => {
      const out: number[] = [];
      for (let i = 0; i < 20; i++) {
        out.push(BpfMap.create({ type: MapType.ARRAY, name: 'leaky', keySize: 4, valueSize: 4, maxEntries: 1 }).fd);
      }
      return out;
    })();
    expect(fds.every((fd) => fdTarget(fd) === 'anon_inode:bpf-map')).toBe(true);
    // Finalizers run some time after a collection; retry a few rounds, bounded.
    for (let round = 0; round < 50 && fds.some((fd) => fdTarget(fd) === 'anon_inode:bpf-map'); round++) {
      gc!();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(fds.filter((fd) => fdTarget(fd) === 'anon_inode:bpf-map')).toEqual([]);
  });

  it('never closes an fd twice: explicit close() unregisters the finalizer', async () => {
    const kept = BpfMap.create({ type: MapType.ARRAY, name: 'kept', keySize: 4, valueSize: 4, maxEntries: 1 });
    (() => {
      const m = BpfMap.create({ type: MapType.ARRAY, name: 'closed', keySize: 4, valueSize: 4, maxEntries: 1 });
      m.close();
    })();
    // The closed fd number is free and may be reused by the next map; a stray
    // finalizer for the closed handle would close this one.
    const reuse = BpfMap.create({ type: MapType.ARRAY, name: 'reuse', keySize: 4, valueSize: 4, maxEntries: 1 });
    for (let i = 0; i < 5; i++) {
      gc!();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(fdTarget(reuse.fd)).toBe('anon_inode:bpf-map');
    expect(reuse.info.name).toBe('reuse');
    reuse.close();
    kept.close();
  });
});
