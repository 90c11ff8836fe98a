// The endpoint side's small pieces without a kernel: the operation lock
// (per-attachment serial, parallel across attachments, exclusive GC) and the
// endpoint record store (atomic, restart-safe, refuses damaged files).
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hostIfnameFor } from '../../control/endpoint/manager.js';
import { OpLock } from '../../control/endpoint/lock.js';
import { EndpointStore, FIRST_ENDPOINT_ID, type EndpointRecord } from '../../control/endpoint/store.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('OpLock', () => {
  it('runs one key at a time, other keys alongside, and an exclusive call alone', async () => {
    const lock = new OpLock();
    const log: string[] = [];
    const gates = new Map<string, () => void>();
    const op = (name: string, key: string) =>
      lock.withKey(key, async () => {
        log.push(`start ${name}`);
        await new Promise<void>((r) => gates.set(name, r));
        log.push(`end ${name}`);
      });
    const a1 = op('a1', 'a');
    const a2 = op('a2', 'a');
    const b1 = op('b1', 'b');
    await tick();
    await tick();
    expect(log).toEqual(['start a1', 'start b1']); // a2 waits for a1; b1 runs alongside
    const gc = lock.exclusive(async () => {
      log.push('gc');
    });
    const c1 = op('c1', 'c'); // arrives after the exclusive call: waits for it
    await tick();
    expect(log).toEqual(['start a1', 'start b1']);
    gates.get('a1')!();
    await tick();
    await tick();
    expect(log.slice(2)).toEqual(['end a1', 'start a2']);
    gates.get('a2')!();
    gates.get('b1')!();
    await Promise.all([a1, a2, b1, gc]);
    await tick();
    expect(log.slice(4)).toEqual(['end a2', 'end b1', 'gc', 'start c1']);
    gates.get('c1')!();
    await c1;
  });

  it('a failing call releases its key', async () => {
    const lock = new OpLock();
    await expect(lock.withKey('k', async () => Promise.reject(new Error('no')))).rejects.toThrow('no');
    await expect(lock.withKey('k', async () => 7)).resolves.toBe(7);
    await expect(lock.exclusive(async () => 8)).resolves.toBe(8);
  });
});

describe('EndpointStore', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'h4-store-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const rec = (id: string, endpointId: number): EndpointRecord => ({
    containerId: id,
    ifname: 'eth0',
    netns: `/run/netns/${id}`,
    ip: '10.244.1.2',
    gateway: '10.244.1.1',
    endpointId,
    hostIfname: hostIfnameFor(id, 'eth0'),
    hostIfindex: 5,
    hostMac: '02:00:00:00:00:01',
    podMac: '02:00:00:00:00:02',
    mtu: 1450,
    createdAt: new Date(0).toISOString(),
  });

  it('persists records and the id counter; a reopened store continues after the last id', () => {
    const file = join(dir, 'endpoints.json');
    const s = EndpointStore.open(file);
    const first = s.takeId();
    expect(first).toBe(FIRST_ENDPOINT_ID);
    s.put(rec('a', first));
    s.put(rec('b', s.takeId()));
    s.delete({ containerId: 'a', ifname: 'eth0' });
    const again = EndpointStore.open(file);
    expect(again.list().map((r) => r.containerId)).toEqual(['b']);
    expect(again.takeId()).toBe(FIRST_ENDPOINT_ID + 2);
    expect(readdirSync(dir)).toEqual(['endpoints.json']);
  });

  it('refuses a damaged file, naming it', () => {
    const file = join(dir, 'endpoints.json');
    writeFileSync(file, '{"version":1,"nextId":300,"endpoints":[{"containerId":"x"}]}');
    expect(() => EndpointStore.open(file)).toThrow(/endpoints\.json: endpoints\[0\] lacks/);
    writeFileSync(file, 'garbage');
    expect(() => EndpointStore.open(file)).toThrow(/endpoints\.json: not valid JSON/);
  });

  it('names host veths lxc + 12 hex, distinct per container and per interface', () => {
    const a = hostIfnameFor('abc', 'eth0');
    expect(a).toMatch(/^lxc[0-9a-f]{12}$/);
    expect(a).toBe(hostIfnameFor('abc', 'eth0'));
    expect(hostIfnameFor('abc', 'net1')).not.toBe(a);
    expect(hostIfnameFor('abd', 'eth0')).not.toBe(a);
    expect(hostIfnameFor('abc', 'eth0', 'wr')).toMatch(/^wr[0-9a-f]{13}$/);
  });
});
