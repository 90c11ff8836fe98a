// tc / XDP / tcx attach through the netns option, with real traffic (root).
// Everything happens inside two namespaces made here (weirtest-att-<pid>-0/1)
// joined by a veth pair created directly inside them; the root namespace's
// interfaces are never touched. afterAll deletes the namespaces (and with
// them the veths, qdiscs and attachments) even when a test failed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BpfError,
  BpfLink,
  BpfMap,
  BpfProgram,
  MapType,
  ProgType,
  TcAction,
  XdpAction,
  ifindex,
  tc,
  xdp,
} from '../../native/index.js';
import { NetnsLab } from '../lib/netns.js';
import { counterProg, fdTracker, requireKernel, u32 } from './helpers.js';

const enabled = requireKernel();

const { track, closeAll } = fdTracker();

function counter(name: string): BpfMap {
  return track(BpfMap.create({ type: MapType.ARRAY, name, keySize: 4, valueSize: 8, maxEntries: 1 }));
}
function count(m: BpfMap): bigint {
  return m.lookup(u32(0))!.readBigUInt64LE();
}

describe.skipIf(!enabled)('attach in network namespaces', () => {
  const lab = new NetnsLab();
  let a = '';
  let b = '';
  let nsA = '';
  let nsB = '';
  let ifB = 0;

  /** Three pings A -> B; throws if they do not all get through. */
  async function ping(): Promise<void> {
    const r = await lab.ping(a, '10.199.0.2', { count: 3, intervalSec: 0.1, timeoutSec: 5 });
    if (r.received !== 3) throw new Error(`ping A -> B: ${r.received}/3 replies\n${r.output}`);
  }

  beforeAll(async () => {
    a = await lab.createNetns('att-a');
    b = await lab.createNetns('att-b');
    nsA = lab.nsPath(a);
    nsB = lab.nsPath(b);
    await lab.veth({ a: { ns: a, name: 'weirtA', addr: '10.199.0.1/24' }, b: { ns: b, name: 'weirtB', addr: '10.199.0.2/24' } });
    ifB = ifindex('weirtB', nsB);
  });

  afterAll(async () => {
    closeAll();
    await lab.cleanup();
  });

  it('ifindex resolves names inside the namespace only', async () => {
    expect(ifB).toBeGreaterThan(0);
    expect(ifindex('lo', nsB)).toBe(1);
    expect(ifindex('weirtA', nsA)).toBeGreaterThan(0);
    expect(() => ifindex('weirtB', nsA)).toThrow(expect.objectContaining({ code: 'ENODEV', syscall: 'if_nametoindex' }));
    expect(() => ifindex('lo', '/run/netns/weirtest-does-not-exist')).toThrow(
      expect.objectContaining({ code: 'ENOENT', syscall: 'open' }),
    );
  });

  it('tc ingress: attach, query, replace, count real packets, detach', async () => {
    const c1 = counter('weirtest_tc1');
    const c2 = counter('weirtest_tc2');
    const p1 = track(await BpfProgram.load({ type: ProgType.SCHED_CLS, name: 'weirtest_tc1', license: 'GPL', insns: counterProg(c1.fd, TcAction.OK) }));
    const p2 = track(await BpfProgram.load({ type: ProgType.SCHED_CLS, name: 'weirtest_tc2', license: 'GPL', insns: counterProg(c2.fd, TcAction.OK) }));

    expect(tc.query({ ifindex: ifB, attachPoint: 'ingress', priority: 1, handle: 1, netns: nsB })).toBeUndefined();
    const at = tc.attach({ ifindex: ifB, attachPoint: 'ingress', prog: p1, netns: nsB });
    expect(at).toEqual({ priority: 1, handle: 1 });
    expect(tc.query({ ifindex: ifB, attachPoint: 'ingress', ...at, netns: nsB })).toEqual({ progId: p1.info.id });
    // An independent witness: iproute2's tc sees our filter in that namespace.
    expect((await lab.execOk(b, 'tc', ['filter', 'show', 'dev', 'weirtB', 'ingress'])).stdout).toContain('weirtest_tc1');

    await ping();
    expect(count(c1)).toBeGreaterThanOrEqual(3n);

    // Without replace the slot is taken; with replace the new program takes over.
    expect(() => tc.attach({ ifindex: ifB, attachPoint: 'ingress', prog: p2, netns: nsB })).toThrow(
      expect.objectContaining({ code: 'EEXIST', message: expect.stringContaining('replace: true') }),
    );
    tc.attach({ ifindex: ifB, attachPoint: 'ingress', prog: p2.fd, replace: true, netns: nsB });
    expect(tc.query({ ifindex: ifB, attachPoint: 'ingress', ...at, netns: nsB })).toEqual({ progId: p2.info.id });
    const before = count(c1);
    await ping();
    expect(count(c2)).toBeGreaterThanOrEqual(3n);
    expect(count(c1)).toBe(before);

    // An egress filter with its own priority/handle.
    const eg = tc.attach({ ifindex: ifB, attachPoint: 'egress', prog: p1, priority: 7, handle: 9, netns: nsB });
    expect(eg).toEqual({ priority: 7, handle: 9 });
    expect(tc.query({ ifindex: ifB, attachPoint: 'egress', ...eg, netns: nsB })).toEqual({ progId: p1.info.id });

    tc.detach({ ifindex: ifB, attachPoint: 'ingress', ...at, netns: nsB });
    expect(tc.query({ ifindex: ifB, attachPoint: 'ingress', ...at, netns: nsB })).toBeUndefined();
    expect(() => tc.detach({ ifindex: ifB, attachPoint: 'ingress', ...at, netns: nsB })).toThrow(BpfError);
    const after = count(c2);
    await ping();
    expect(count(c2)).toBe(after);

    tc.destroyHook({ ifindex: ifB, netns: nsB });
    expect(tc.query({ ifindex: ifB, attachPoint: 'egress', ...eg, netns: nsB })).toBeUndefined();
    tc.destroyHook({ ifindex: ifB, netns: nsB }); // missing is fine
    tc.createHook({ ifindex: ifB, netns: nsB });
    tc.createHook({ ifindex: ifB, netns: nsB }); // existing is fine
    tc.destroyHook({ ifindex: ifB, netns: nsB });
  });

  it('XDP defaults to native mode and refuses a device without it instead of falling back', async () => {
    const m = track(BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1 }));
    const p = track(await BpfProgram.load({ type: ProgType.XDP, license: 'GPL', insns: counterProg(m.fd, XdpAction.PASS) }));
    // Default mode on a veth (which has native XDP) is native.
    xdp.attach({ ifindex: ifB, prog: p, netns: nsB });
    expect(xdp.query({ ifindex: ifB, netns: nsB })?.mode).toBe('native');
    xdp.detach({ ifindex: ifB, netns: nsB });
    // Loopback has no driver XDP: native fails, naming the way out.
    const ifD = ifindex('lo', nsB);
    expect(() => xdp.attach({ ifindex: ifD, prog: p, netns: nsB })).toThrow(/no native \(driver\) XDP; pass mode: 'generic'/);
    expect(xdp.query({ ifindex: ifD, netns: nsB })).toBeUndefined();
    xdp.attach({ ifindex: ifD, prog: p, mode: 'generic', netns: nsB });
    expect(xdp.query({ ifindex: ifD, netns: nsB })).toEqual({ progId: p.info.id, mode: 'generic' });
    xdp.detach({ ifindex: ifD, netns: nsB });
  });

  it('XDP native: attach, query, refuse without replace, replace, count real packets, detach', async () => {
    const c1 = counter('weirtest_xdp1');
    const c2 = counter('weirtest_xdp2');
    const p1 = track(await BpfProgram.load({ type: ProgType.XDP, name: 'weirtest_xdp1', license: 'GPL', insns: counterProg(c1.fd, XdpAction.PASS) }));
    const p2 = track(await BpfProgram.load({ type: ProgType.XDP, name: 'weirtest_xdp2', license: 'GPL', insns: counterProg(c2.fd, XdpAction.PASS) }));

    expect(xdp.query({ ifindex: ifB, netns: nsB })).toBeUndefined();
    xdp.attach({ ifindex: ifB, prog: p1, mode: 'native', netns: nsB });
    expect(xdp.query({ ifindex: ifB, netns: nsB })).toEqual({ progId: p1.info.id, mode: 'native' });
    await ping();
    expect(count(c1)).toBeGreaterThanOrEqual(3n);

    expect(() => xdp.attach({ ifindex: ifB, prog: p2, mode: 'native', netns: nsB })).toThrow(
      expect.objectContaining({ code: 'EBUSY', message: expect.stringContaining('already attached') }),
    );
    xdp.attach({ ifindex: ifB, prog: p2, mode: 'native', replace: true, netns: nsB });
    expect(xdp.query({ ifindex: ifB, netns: nsB })).toEqual({ progId: p2.info.id, mode: 'native' });
    await ping();
    expect(count(c2)).toBeGreaterThanOrEqual(3n);

    xdp.detach({ ifindex: ifB, netns: nsB });
    expect(xdp.query({ ifindex: ifB, netns: nsB })).toBeUndefined();
    xdp.detach({ ifindex: ifB, netns: nsB }); // nothing attached is fine

    // Generic mode, detached with an explicit mode.
    xdp.attach({ ifindex: ifB, prog: p1, mode: 'generic', netns: nsB });
    expect(xdp.query({ ifindex: ifB, netns: nsB })).toEqual({ progId: p1.info.id, mode: 'generic' });
    xdp.detach({ ifindex: ifB, mode: 'generic', netns: nsB });
    expect(xdp.query({ ifindex: ifB, netns: nsB })).toBeUndefined();
  });

  it('tcx link: attach, count real packets, detach on close', async () => {
    const c = counter('weirtest_tcx');
    const p = track(await BpfProgram.load({ type: ProgType.SCHED_CLS, name: 'weirtest_tcx', license: 'GPL', insns: counterProg(c.fd, TcAction.OK) }));
    const link = BpfLink.tcx({ ifindex: ifB, attachPoint: 'ingress', prog: p, netns: nsB });
    try {
      expect(link.info.progId).toBe(p.info.id);
      await ping();
      expect(count(c)).toBeGreaterThanOrEqual(3n);
    } finally {
      link.close();
    }
    const n = count(c);
    await ping();
    expect(count(c)).toBe(n);
  });
});
