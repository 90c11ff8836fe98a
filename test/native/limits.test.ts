// Bounds the facade keeps so a call cannot abort the process, hold a pool
// thread for long, or send packets outside a namespace.
import { describe, expect, it } from 'vitest';
import { BpfMap, BpfProgram, MapType, ProgType, TcAction, XdpAction } from '../../native/index.js';
import { requireKernel, retProg, udpFrame } from './helpers.js';

const enabled = requireKernel();

describe.skipIf(!enabled)('native limits', () => {
  it('lookupBatch with a huge batch size on big per-CPU values stays bounded', () => {
    const m = BpfMap.create({ type: MapType.PERCPU_ARRAY, keySize: 4, valueSize: 32768, maxEntries: 4 });
    try {
      const all = m.lookupBatch({ batchSize: 1 << 20 });
      expect(all).toHaveLength(4);
    } finally {
      m.close();
    }
  });

  it('testRun gives the return value signed: TC_ACT_UNSPEC is -1', async () => {
    const p = await BpfProgram.load({ type: ProgType.SCHED_CLS, license: 'GPL', insns: retProg(TcAction.UNSPEC) });
    try {
      expect((await p.testRun({ data: udpFrame() })).retval).toBe(TcAction.UNSPEC);
    } finally {
      p.close();
    }
  });

  it('testRun refuses live frames unless asked, and caps repeat', async () => {
    const p = await BpfProgram.load({ type: ProgType.XDP, license: 'GPL', insns: retProg(XdpAction.PASS) });
    try {
      await expect(p.testRun({ data: udpFrame(), flags: 2 })).rejects.toThrow(/LIVE_FRAMES sends real packets; pass allowLiveFrames/);
      await expect(p.testRun({ data: udpFrame(), repeat: 20_000_000 })).rejects.toThrow(/repeat must be in \[0, 10000000\]/);
    } finally {
      p.close();
    }
  });
});
