// Pinned maps outlive the process that made them and are reused, contents
// intact, by the next; a pin whose shape differs is refused, field named.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCollectionSpec } from '../../loader/index.js';
import { fixture, repoRoot } from '../lib/fixtures.js';
import { requireRoot } from '../lib/netns.js';

const skip = requireRoot('bpffs pinning');
const pinRoot = `/sys/fs/bpf/weirtest-pin-${process.pid}`;

describe.skipIf(skip)('pinning', () => {
  beforeAll(() => {
    mkdirSync(pinRoot, { recursive: true });
  });
  afterAll(() => {
    rmSync(pinRoot, { recursive: true, force: true });
  });

  it('a map pinned by one process is reused with its contents by another', async () => {
    const out = execFileSync(join(repoRoot, 'node_modules', '.bin', 'vite-node'), [join(repoRoot, 'test/progs/pin-child.ts'), pinRoot, fixture('pin_v1')], {
      cwd: repoRoot,
      timeout: 60_000,
      encoding: 'utf8',
    });
    expect(out).toContain('pinned');
    expect(existsSync(join(pinRoot, 'shared_state'))).toBe(true);

    const coll = await loadCollectionSpec(fixture('pin_v1')).load({ pinRoot });
    try {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(1);
      expect(coll.maps.shared_state.lookup(key)?.readBigUInt64LE(0)).toBe(0x1234_5678_9abcn);
      // The program loaded in this process uses the same kernel map.
      expect(coll.programs.xdp_touch.info.mapIds).toContain(coll.maps.shared_state.info.id);
    } finally {
      coll.close();
    }
  });

  it('refuses a pinned map whose shape differs, naming the field', async () => {
    const err = await loadCollectionSpec(fixture('pin_v2'))
      .load({ pinRoot })
      .then((c) => (c.close(), undefined), (e: unknown) => e as Error);
    expect(err?.message).toMatch(/pinned map .*shared_state: valueSize is 8 in the existing map but 4 in the spec/);
    // The refusal touched nothing: the old pin and its contents are still there.
    const coll = await loadCollectionSpec(fixture('pin_v1')).load({ pinRoot });
    const key = Buffer.alloc(4);
    key.writeUInt32LE(1);
    expect(coll.maps.shared_state.lookup(key)?.readBigUInt64LE(0)).toBe(0x1234_5678_9abcn);
    coll.close();
  });

  it('refuses a pinned map whose value has the same size but another layout', async () => {
    const v1 = await loadCollectionSpec(fixture('layout_v1')).load({ pinRoot });
    v1.close();
    // Same name, same 8-byte value, fields reordered: reusing it would misread every entry.
    await expect(loadCollectionSpec(fixture('layout_v2')).load({ pinRoot })).rejects.toThrow(
      /pinned map .*flows: value of flows: layout of struct flow drifted: field packets is at offset 4 in the new object but 0 in the existing map; field bytes is at offset 0 in the new object but 4 in the existing map; refusing to reuse it/,
    );
    // Same size, a counter instead of a struct.
    await expect(loadCollectionSpec(fixture('layout_v3')).load({ pinRoot })).rejects.toThrow(
      /value of flows is struct flow in the existing map but __u64 in the new object; refusing to reuse it/,
    );
    // The same layout is reused as before.
    const again = await loadCollectionSpec(fixture('layout_v1')).load({ pinRoot });
    again.close();
  });

  it('needs a pin root for maps pinned by name', async () => {
    await expect(loadCollectionSpec(fixture('pin_v1')).load()).rejects.toThrow(/shared_state is pinned by name but no pinRoot/);
  });
});
