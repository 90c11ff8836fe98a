// Loading the same object again over its pins, as an agent restart or an
// upgrade does, and maps handed in by the caller.
import { describe, expect, it } from 'vitest';
import { ConstValue, LoadOptions, loadCollectionSpec } from '../../loader/index.js';
import { BpfMap, possibleCpus } from '../../native/index.js';
import { fixtureCollections } from '../lib/collections.js';
import { fixture } from '../lib/fixtures.js';
import { requireRoot } from '../lib/netns.js';
import { eth } from '../lib/packet.js';

const skip = requireRoot('reloading over pins');
const pinRoot = `/sys/fs/bpf/weirtest-reuse-${process.pid}`;
const XDP_DROP = 1;
const XDP_PASS = 2;
const XDP_TX = 3;
const pkt = eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' }).ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }).udp({ sport: 1, dport: 2 }).build();
const u32 = (n: number) => Buffer.from([n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24]);

describe.skipIf(skip)('reloading and replacements', () => {
  const colls = fixtureCollections(pinRoot);
  const load = (name: string, constants?: Record<string, ConstValue>, extra: LoadOptions = {}) => colls.load(name, { constants, ...extra });

  it('an upgrade reuses the pinned devmap and points the pinned program array at the new programs', async () => {
    const v1 = await load('upgrade');
    expect((await v1.programs.xdp_up_entry.testRun({ data: pkt })).retval).toBe(XDP_DROP);
    const v2 = await load('upgrade', { up_version: 2 });
    expect(v2.maps.up_devs.info.id).toBe(v1.maps.up_devs.info.id);
    expect(v2.maps.up_jumps.info.id).toBe(v1.maps.up_jumps.info.id);
    expect(v2.maps.up_jumps.lookup(u32(0))!.readUInt32LE(0)).toBe(v2.programs.xdp_up_target.info.id);
    // The old entry program now tail-calls into the new target too: one shared table.
    expect((await v2.programs.xdp_up_entry.testRun({ data: pkt })).retval).toBe(XDP_TX);
    expect((await v1.programs.xdp_up_entry.testRun({ data: pkt })).retval).toBe(XDP_TX);
  });

  it('gives a perf event array without max_entries one slot per CPU', async () => {
    const c = await load('upgrade');
    expect(c.maps.up_perf.info.maxEntries).toBe(possibleCpus());
  });

  it('loads static maps, found by their offset in .maps', async () => {
    const c = colls.keep(await loadCollectionSpec(fixture('static_maps')).load());
    expect(c.maps.outer_static.lookup(u32(1))!.readUInt32LE(0)).toBe(c.maps.second_static.info.id);
    c.maps.first_static.update(u32(1), u32(1));
    c.maps.second_static.update(u32(0), u32(1));
    expect((await c.programs.xdp_static.testRun({ data: pkt })).retval).toBe(XDP_PASS);
  });

  it('uses a replacement map without taking ownership of the caller’s handle', async () => {
    const mine = BpfMap.create({ type: 2, name: 'mine', keySize: 4, valueSize: 8, maxEntries: 4 });
    try {
      const c = await load('maps', undefined, { mapReplacements: { verdicts: mine } });
      await c.programs.xdp_count.testRun({ data: pkt });
      c.close();
      // Still open and holding what the program counted.
      expect(mine.lookup(u32(XDP_PASS))!.readBigUInt64LE(0)).toBe(1n);
      const wrong = BpfMap.create({ type: 2, name: 'wrong', keySize: 4, valueSize: 4, maxEntries: 4 });
      await expect(load('maps', undefined, { mapReplacements: { verdicts: wrong } })).rejects.toThrow(
        /replacement for map verdicts: valueSize is 4 in the existing map but 8 in the spec/,
      );
      wrong.close();
    } finally {
      mine.close();
    }
  });
});
