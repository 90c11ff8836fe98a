// Interop with a tool nobody here wrote: bpftool reads our pinned maps with
// their BTF types (fields by name) and lists our programs by name.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Collection, loadCollectionSpec } from '../../loader/index.js';
import { fixture } from '../lib/fixtures.js';
import { requireRoot } from '../lib/netns.js';

const skip = requireRoot('bpftool interop');
const pinRoot = `/sys/fs/bpf/weirtest-bpftool-${process.pid}`;

function bpftool(args: string[]): unknown {
  return JSON.parse(execFileSync('bpftool', ['-j', ...args], { encoding: 'utf8', timeout: 30_000 }));
}

describe.skipIf(skip)('bpftool', () => {
  let coll: Collection;
  beforeAll(async () => {
    mkdirSync(pinRoot, { recursive: true });
    coll = await loadCollectionSpec(fixture('maps')).load({ pinRoot });
  });
  afterAll(() => {
    coll?.close();
    rmSync(pinRoot, { recursive: true, force: true });
  });

  it('dumps a pinned map with BTF-typed keys and values by field name', () => {
    const key = Buffer.from([17, 1, 0, 0]); // proto 17 (UDP), dir 1
    const value = Buffer.alloc(16);
    value.writeBigUInt64LE(3n, 0);
    value.writeBigUInt64LE(180n, 8);
    coll.maps.proto_stats.update(key, value);
    const path = join(pinRoot, 'proto_stats');
    coll.maps.proto_stats.pin(path);

    const dump = bpftool(['map', 'dump', 'pinned', path]) as Array<{ key: unknown; value: unknown; formatted?: { key: unknown; value: unknown } }>;
    expect(dump).toHaveLength(1);
    const entry = dump[0].formatted ?? dump[0];
    expect(entry.key).toEqual({ proto: 17, dir: 1, pad: 0 });
    expect(entry.value).toEqual({ packets: 3, bytes: 180 });
  });

  it('shows the map pinned by name by the loader', () => {
    const info = bpftool(['map', 'show', 'pinned', join(pinRoot, 'pinned_counts')]) as { name: string; type: string; bytes_key: number };
    expect(info).toMatchObject({ name: 'pinned_counts', type: 'hash', bytes_key: 4 });
  });

  it('lists our programs by name with their types', () => {
    const progs = bpftool(['prog', 'show']) as Array<{ id: number; name?: string; type: string }>;
    for (const [name, type] of [['xdp_count', 'xdp'], ['tc_count', 'sched_cls']] as const) {
      const id = coll.programs[name].info.id;
      expect(progs.find((p) => p.id === id)).toMatchObject({ name, type });
    }
  });
});
