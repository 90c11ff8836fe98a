// Tail calls through a program array the loader fills from the object's
// static initialiser, and bpf_loop callbacks (BPF_PSEUDO_FUNC relocations).
import { describe, expect, it } from 'vitest';
import { ConstValue, loadCollectionSpec } from '../../loader/index.js';
import { fixtureCollections } from '../lib/collections.js';
import { fixture } from '../lib/fixtures.js';
import { requireRoot } from '../lib/netns.js';
import { eth } from '../lib/packet.js';

const skip = requireRoot('tail calls and callbacks');
const XDP_DROP = 1;
const XDP_PASS = 2;
const XDP_TX = 3;
const pkt = eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' }).ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }).udp({ sport: 1, dport: 2 }).build();

describe.skipIf(skip)('calls.o', () => {
  const colls = fixtureCollections();
  const load = (constants?: Record<string, ConstValue>) => colls.load('calls', { constants });

  it('reads the program array initialiser: slot 0 and 2 filled, the rest empty', async () => {
    const spec = loadCollectionSpec(fixture('calls'));
    expect(spec.maps.jump.contents.map((c) => [c.key.readUInt32LE(0), c.value])).toEqual([
      [0, { program: 'xdp_tail_drop' }],
      [2, { program: 'xdp_tail_tx' }],
    ]);
    const c = await load();
    const slot = (i: number) => c.maps.jump.lookup(Buffer.from([i, 0, 0, 0]))?.readUInt32LE(0);
    expect(slot(0)).toBe(c.programs.xdp_tail_drop.info.id);
    expect(slot(2)).toBe(c.programs.xdp_tail_tx.info.id);
    expect(slot(1)).toBeUndefined();
  });

  it('tail-calls into the slot the constant names, and falls through on an empty one', async () => {
    expect((await (await load()).programs.xdp_entry.testRun({ data: pkt })).retval).toBe(XDP_DROP);
    expect((await (await load({ jump_slot: 2 })).programs.xdp_entry.testRun({ data: pkt })).retval).toBe(XDP_TX);
    expect((await (await load({ jump_slot: 1 })).programs.xdp_entry.testRun({ data: pkt })).retval).toBe(XDP_PASS);
  });

  it('runs a bpf_loop callback linked in from .text', async () => {
    const spec = loadCollectionSpec(fixture('calls'));
    expect(spec.programs.xdp_loop.functions.map((f) => f.name)).toEqual(['xdp_loop', 'add_index']);
    expect((await (await load()).programs.xdp_loop.testRun({ data: pkt })).retval).toBe(10);
    expect((await (await load({ loop_limit: 3 })).programs.xdp_loop.testRun({ data: pkt })).retval).toBe(3);
  });
});
