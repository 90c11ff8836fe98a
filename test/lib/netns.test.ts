import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CommandError,
  NetnsLab,
  listNetns,
  ownerPid,
  parsePingOutput,
  requireNetns,
  requireRoot,
  run,
  sweepStale,
} from './netns.js';

const PING_OUTPUT = `PING 10.99.0.2 (10.99.0.2) 56(84) bytes of data.

--- 10.99.0.2 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 404ms
rtt min/avg/max/mdev = 0.031/0.047/0.071/0.017 ms
`;

describe('netns helpers (no privileges needed)', () => {
  it('parses ping statistics', () => {
    expect(parsePingOutput(PING_OUTPUT, 0)).toMatchObject({
      transmitted: 3,
      received: 3,
      lossPercent: 0,
      exitCode: 0,
      rtt: { min: 0.031, avg: 0.047, max: 0.071, mdev: 0.017 },
    });
    const lost = parsePingOutput('2 packets transmitted, 0 received, 100% packet loss, time 1001ms\n', 1);
    expect(lost).toMatchObject({ transmitted: 2, received: 0, lossPercent: 100 });
    expect(lost.rtt).toBeUndefined();
  });

  it('reads the owner pid out of lab namespace names', () => {
    expect(ownerPid('weirtest-1234-abcdef-a')).toBe(1234);
    expect(ownerPid('weirtest-77')).toBe(77);
    expect(ownerPid('weirtest-x-1')).toBeUndefined();
    expect(ownerPid('other-1234-a')).toBeUndefined();
  });

  it('names namespaces with prefix, pid and a random part; refuses foreign prefixes', () => {
    const a = new NetnsLab();
    const b = new NetnsLab();
    expect(a.namePrefix).toMatch(new RegExp(`^weirtest-${process.pid}-[0-9a-f]{6}-$`));
    expect(a.namePrefix).not.toBe(b.namePrefix);
    expect(() => new NetnsLab({ prefix: 'prod-' })).toThrow(/weirtest/);
  });

  it('refuses to touch namespaces it did not create', async () => {
    const lab = new NetnsLab();
    expect(() => lab.nsPath('weirtest-1-foreign')).toThrow(/does not belong/);
    await expect(lab.exec('weirtest-1-foreign', 'true')).rejects.toThrow(/does not belong/);
    await expect(lab.ip('weirtest-1-foreign', ['link'])).rejects.toThrow(/does not belong/);
    await lab.cleanup(); // nothing to do, must not throw
  });

  it('bounds commands with a timeout that kills the whole process group', async () => {
    const started = Date.now();
    const r = await run('bash', ['-c', 'sleep 30 & sleep 30; echo never'], { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(r.ok).toBe(false);
    expect(r.stdout).toBe('');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('requireRoot returns a reason (or throws under CI) when something is missing', () => {
    const saved = process.env.CI;
    try {
      delete process.env.CI;
      const reason = requireRoot('fake feature', { tools: ['weir-no-such-tool-xyz'] });
      expect(reason).toMatch(/^fake feature: .*'weir-no-such-tool-xyz' not installed/);
      process.env.CI = 'true';
      expect(() => requireRoot('fake feature', { tools: ['weir-no-such-tool-xyz'] })).toThrow(/CI must/);
    } finally {
      if (saved === undefined) delete process.env.CI;
      else process.env.CI = saved;
    }
  });
});

const skip = requireNetns('netns lab', ['ping']);

describe.skipIf(skip)('NetnsLab (root)', () => {
  const lab = new NetnsLab();
  const ours = async (prefix: string): Promise<string[]> => (await listNetns()).filter((n) => n.startsWith(prefix));

  afterAll(async () => {
    await lab.cleanup();
    expect(await ours(lab.namePrefix)).toEqual([]);
  });

  it('connects two namespaces with a veth pair and pings across', async () => {
    const a = await lab.createNetns('a');
    const b = await lab.createNetns('b');
    expect(a.startsWith(`weirtest-${process.pid}-`)).toBe(true);
    expect(existsSync(lab.nsPath(a))).toBe(true);
    const pair = await lab.veth({
      a: { ns: a, name: 'veth-a', addr: '10.99.0.1/24', addrs: ['fd00:99::1/64'], mac: '02:99:00:00:00:01' },
      b: { ns: b, name: 'veth-b', addr: '10.99.0.2/24', addrs: ['fd00:99::2/64'] },
      mtu: 1400,
    });
    expect(pair.a.mac).toBe('02:99:00:00:00:01');
    expect(pair.a.ifindex).toBe(await lab.ifindex(a, 'veth-a'));
    expect(pair.b.ifindex).toBe(await lab.ifindex(b, 'veth-b'));
    const link = await lab.link(b, 'veth-b');
    expect(link.mtu).toBe(1400);
    expect(link.flags).toContain('UP');

    // The veth never appeared in the root namespace.
    const root = await run('ip', ['-j', 'link', 'show'], { timeoutMs: 5_000 });
    expect(root.stdout).not.toContain('veth-a');

    const v4 = await lab.ping(a, '10.99.0.2', { count: 3 });
    expect(v4).toMatchObject({ transmitted: 3, received: 3, lossPercent: 0, exitCode: 0 });
    expect(v4.rtt?.avg).toBeGreaterThan(0);
    const v6 = await lab.ping(b, 'fd00:99::1', { count: 2 });
    expect(v6.received).toBe(2);
    // DF ping larger than the MTU fails locally with EMSGSIZE-like errors → no replies.
    const big = await lab.ping(a, '10.99.0.2', { count: 1, size: 1500, dontFragment: true, timeoutSec: 1 });
    expect(big.received).toBe(0);
  });

  it('reports loss without throwing when nobody answers', async () => {
    const a = await lab.createNetns('lonely-a');
    const b = await lab.createNetns('lonely-b');
    await lab.veth({ a: { ns: a, name: 'v0', addr: '192.0.2.1/24' }, b: { ns: b, name: 'v0', addr: '192.0.2.2/24' } });
    const started = Date.now();
    // 192.0.2.3 is on-link but nobody owns it: ARP fails, no replies.
    const r = await lab.ping(a, '192.0.2.3', { count: 2, timeoutSec: 1, intervalSec: 0.2 });
    expect(r.received).toBe(0);
    expect(r.lossPercent).toBe(100);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('delivers UDP datagrams between namespaces (v4 and v6)', async () => {
    const a = await lab.createNetns('udp-a');
    const b = await lab.createNetns('udp-b');
    await lab.veth({
      a: { ns: a, name: 'eth0', addr: '10.99.1.1/24', addrs: ['fd00:98::1/64'] },
      b: { ns: b, name: 'eth0', addr: '10.99.1.2/24', addrs: ['fd00:98::2/64'] },
    });
    const rx = await lab.udpReceiver(b, { port: 0 });
    expect(rx.port).toBeGreaterThan(0);
    const sent = await lab.sendUdp(a, { addr: '10.99.1.2', port: rx.port, count: 5, sport: 40001 });
    expect(sent.sent).toBe(5);
    const got = await rx.waitFor(5);
    expect(got.map((m) => m.data.toString())).toEqual(['weir-0', 'weir-1', 'weir-2', 'weir-3', 'weir-4']);
    expect(got.every((m) => m.from === '10.99.1.1' && m.sport === 40001)).toBe(true);
    await rx.stop();

    const rx6 = await lab.udpReceiver(a, { port: 5006, ipv6: true, maxMessages: 2 });
    await lab.sendUdp(b, { addr: 'fd00:98::1', port: 5006, payload: [Buffer.from([0, 1, 2]), 'two'], count: 2 });
    const got6 = await rx6.waitFor(2);
    expect(got6[0].data).toEqual(Buffer.from([0, 1, 2]));
    expect(got6[1].data.toString()).toBe('two');
    expect(got6[0].from).toBe('fd00:98::2');
    await rx6.process.exited; // exits by itself after maxMessages
    expect(rx6.process.running).toBe(false);
  });

  it('waitFor fails (bounded) when datagrams do not arrive', async () => {
    const a = await lab.createNetns('udp-none');
    const rx = await lab.udpReceiver(a, { port: 0, addr: '127.0.0.1' });
    await expect(rx.waitFor(1, 300)).rejects.toThrow(/expected 1 UDP datagrams .* got 0/);
    await rx.stop();
  });

  it('exec uses ip netns exec; nsenter switches only the network namespace', async () => {
    const a = await lab.createNetns('exec');
    const rootNet = (await run('readlink', ['/proc/self/ns/net'])).stdout.trim();
    const viaExec = await lab.execOk(a, 'readlink', ['/proc/self/ns/net']);
    const viaNsenter = await lab.nsenter(a, 'readlink', ['/proc/self/ns/net']);
    expect(viaExec.stdout.trim()).toBe(viaNsenter.stdout.trim());
    expect(viaExec.stdout.trim()).not.toBe(rootNet);
    const rootMnt = (await run('readlink', ['/proc/self/ns/mnt'])).stdout.trim();
    expect((await lab.nsenter(a, 'readlink', ['/proc/self/ns/mnt'])).stdout.trim()).toBe(rootMnt);

    const failed = await lab.exec(a, 'false');
    expect(failed.code).toBe(1);
    await expect(lab.execOk(a, 'false')).rejects.toBeInstanceOf(CommandError);
    const slow = await lab.exec(a, 'sleep', ['30'], { timeoutMs: 200 });
    expect(slow.timedOut).toBe(true);
  });

  it('cleanup deletes everything even when the test body throws', async () => {
    const lab2 = new NetnsLab();
    const body = async (): Promise<void> => {
      const x = await lab2.createNetns('x');
      const y = await lab2.createNetns('y');
      await lab2.veth({ a: { ns: x, name: 'v0', addr: '10.99.2.1/24' }, b: { ns: y, name: 'v0', addr: '10.99.2.2/24' } });
      lab2.spawn(x, 'sleep', ['100']);
      throw new Error('boom');
    };
    await expect(
      (async () => {
        try {
          await body();
        } finally {
          await lab2.cleanup();
        }
      })(),
    ).rejects.toThrow('boom');
    expect(await ours(lab2.namePrefix)).toEqual([]);
    expect(lab2.namespaces).toEqual([]);
    await lab2.cleanup(); // idempotent
  });

  it('cleanup covers a namespace whose setup failed half way', async () => {
    const lab3 = new NetnsLab();
    const x = await lab3.createNetns('half');
    await expect(
      lab3.veth({ a: { ns: x, name: 'v0', mac: 'not-a-mac' }, b: { ns: x, name: 'v1' } }),
    ).rejects.toBeInstanceOf(CommandError);
    await expect(lab3.createNetns('half')).rejects.toThrow(/already exists/);
    await lab3.cleanup();
    expect(await ours(lab3.namePrefix)).toEqual([]);
  });

  it('cleanup kills processes it started', async () => {
    const lab4 = new NetnsLab();
    const x = await lab4.createNetns('procs');
    const p = lab4.spawn(x, 'bash', ['-c', 'echo started; sleep 100']);
    await p.waitForLine(/started/);
    expect(p.running).toBe(true);
    await lab4.cleanup();
    expect(p.running).toBe(false);
  });

  it('sweepStale removes namespaces of dead processes only', async () => {
    // A process that creates a namespace named after itself and "crashes" (exits without cleanup).
    const crashed = await run('bash', ['-c', 'ip netns add weirtest-$$-deadbeef-crash && echo weirtest-$$-deadbeef-crash'], {
      timeoutMs: 10_000,
    });
    expect(crashed.ok).toBe(true);
    const stale = crashed.stdout.trim();
    const live = await lab.createNetns('live');
    expect(await listNetns()).toContain(stale);

    const deleted = await sweepStale();
    expect(deleted).toContain(stale);
    const after = await listNetns();
    expect(after).not.toContain(stale);
    expect(after).toContain(live);
    await expect(sweepStale('prod-')).rejects.toThrow(/refusing/);
  });
});
